/* core/train_internal.h - what core/train.c (the run: config, checkpoints, loop) and
 * core/train_model.c (model assembly, batches, evaluation) share. Not for other modules. */
#ifndef TEMA_CORE_TRAIN_INTERNAL_H
#define TEMA_CORE_TRAIN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "dataset.h"
#include "engine.h"
#include "eval.h"
#include "registry.h"
#include "results.h"
#include "tema/backend.h"
#include "tema/plugin.h"

#define TEMA_TRAIN_MAX_ENCODERS 8

/* ---- the trainer's state that survives an interruption (core/train_state.c) ---- */
typedef struct train_state {
    int epochs_done;          /* complete epochs */
    int64_t step_in_epoch;    /* steps done in epoch epochs_done+1 (mid-epoch stop) */
    int64_t global_step;
    double loss_sum;          /* of the current, unfinished epoch */
    double epoch_seconds;     /* of the current, unfinished epoch */
    int best_epoch;
    double best_score;
    double train_seconds;     /* all epochs so far */
    bool finished_training;   /* early stop or max_steps reached */
    bool stopped_early;
    int64_t adam_step;        /* must match last.bin */
} train_state;
/* last.state, or with prev the state of the checkpoint before (last.state.prev): last.bin and
 * last.state are two files, so a kill between their writes leaves last.bin one save behind
 * last.state, and then last.state.prev is the state that matches it. Caller frees. */
char *tema_train_state_path(const tema_run *run, bool prev);
/* Saves s as last.state (the old one becomes last.state.prev). */
tema_status tema_train_state_save(const tema_run *run, const train_state *s, tema_err *err);
bool tema_train_state_load(const tema_run *run, bool prev, train_state *s);

/* A model assembled from plugins: encoders -> attention -> streams, plus the loss. */
typedef struct tema_model {
    tema_model_info info;
    tema_params *params;                              /* owned */
    int n_enc;
    const tema_plugin *enc_p[TEMA_TRAIN_MAX_ENCODERS];
    const tema_encoder_ops *enc_ops[TEMA_TRAIN_MAX_ENCODERS];
    void *enc[TEMA_TRAIN_MAX_ENCODERS];
    const tema_plugin *att_p;
    const tema_attention_ops *att_ops;
    void *att;
    const tema_plugin *loss_p;
    const tema_loss_ops *loss_ops;
    void *loss;
} tema_model;

/* Build every plugin of resolved config `cfg` on `info` (its params must be a fresh store;
 * the model takes ownership of it) and finalise the parameters. The backend must be set. */
tema_status tema_model_build(tema_model *m, const tema_cfg *cfg, tema_registry *reg, tema_err *err);
void tema_model_destroy(tema_model *m);
/* Encoders + attention on one batch. */
tema_status tema_model_forward(tema_model *m, tema_graph *g, const tema_batch *b, tema_stream *streams,
                               int *n_streams, tema_err *err);

/* The attention plugin's auxiliary objective (ABI 1.6 aux_loss) added to *loss (a [1] tensor on
 * g) after forward() and the loss plugin on the same graph, batch and targets; a plugin without
 * one (every plugin before 1.6) leaves *loss untouched, so their runs are bit-identical. */
tema_status tema_model_add_aux_loss(tema_model *m, tema_graph *g, const tema_batch *b, const tema_targets *t,
                                    tema_tensor **loss, tema_err *err);

/* Sequence-group weights w[target domain][tema_seq_kind] from the attention plugin (all 1
 * when it declares none). */
void tema_model_seq_weights(const tema_model *m, float w[2][3]);

/* Host buffers of one batch (allocated once for the largest batch). */
typedef struct tema_batch_buf {
    int32_t B, L, P;         /* capacity: sequences, positions, loss positions per sequence */
    int32_t *seq, *seq_x, *seq_y;
    int32_t *row_index, *target, *lo, *hi;
    float *weight;
    int32_t *eval_target;    /* [B] eval batches: target of each sequence */
} tema_batch_buf;
tema_status tema_batch_buf_init(tema_batch_buf *bb, int32_t B, int32_t L, int32_t P, tema_err *err);
void tema_batch_buf_free(tema_batch_buf *bb);

/* Training batch of nb lines of `sp` (a training split): input = the most recent L+1
 * entries minus the last, right-aligned; targets at the last P positions that have one.
 * Fills b and t (pointing into bb). */
void tema_batch_train(tema_batch_buf *bb, const tema_split *sp, int32_t n_x, int32_t n_y, const int64_t *lines,
                      int nb, tema_batch *b, tema_targets *t);
/* Evaluation batch: input = the most recent L entries of each line (target excluded). */
void tema_batch_eval(tema_batch_buf *bb, const tema_split *sp, int32_t n_x, const int64_t *lines, int nb,
                     tema_batch *b);

/* Ranks every case of an evaluation split at the last position.
 * negatives: [n_lines * n_neg] C2DSR negatives (sampled protocol) or NULL (full ranking).
 * rows (optional, [n_lines]): per-case ranks in split order. Cases whose domain has no
 * other item are skipped (rank rows of them get domain -1). */
typedef struct tema_eval_ctx {
    tema_model *model;
    tema_graph *g;
    const tema_backend_ops *be;
    void *bs;
    int32_t n_x, n_y;
    int batch_size;
    int threads;
    tema_batch_buf *bb;
    int chunk_rows;          /* users scored per product; 0: as many as fit the chunk's logits
                              * (core/train_model.c), tests set a few to get several chunks */
} tema_eval_ctx;
tema_status tema_evaluate(tema_eval_ctx *c, const tema_split *sp, const int32_t *negatives, int32_t n_neg,
                          tema_metric_acc *acc, tema_rank_row *rows, tema_err *err);

/* Scores (Eq. 17's log-mixture; one stream: its logits) of every item of domain dom (0 = X,
 * 1 = Y) after the nb lines `lines` of split sp: out [nb * n_dom] row-major, local item ids. */
tema_status tema_score_lines(tema_eval_ctx *c, const tema_split *sp, const int64_t *lines, int nb, int dom,
                             float *out, tema_err *err);

/* A run opened for inference (tema export, tema recommend): its stored resolved config, its
 * data (regenerated when synthetic) and model with the parameters of checkpoint `which` (best or
 * last), built as the run built them. Release with tema_trained_close. */
typedef struct tema_trained {
    const tema_cfg *cfg;
    const tema_dataset *ds;
    tema_eval_ctx eval;         /* model, graph, backend, evaluation buffers */
    const char *checkpoint;     /* the file loaded (tema_trained_open) */
    const char *backend;        /* the backend plugin's name */
    int64_t steps_per_epoch;    /* tema_trained_fresh */
    struct tema_trained_impl *impl;
} tema_trained;
tema_status tema_trained_open(const char *run_dir, tema_registry *reg, const char *which, int threads,
                              tema_trained *out, tema_err *err);
void tema_trained_close(tema_trained *t);

/* A model built from resolved config `cfg` (borrowed; it must outlive the model) with fresh
 * parameters, ready to train as `tema run` would, without a run folder: what `tema bench`
 * times (core/train_bench.c). results_dir holds the synthetic data and the tag and feature
 * stores; threads > 0 overrides backend.threads. Refuses a model with nothing to train. Release
 * with tema_trained_close. */
tema_status tema_trained_fresh(const tema_cfg *cfg, tema_registry *reg, const char *results_dir, int threads,
                               tema_trained *out, tema_err *err);
/* Global training step `step` exactly as `tema run` takes it (its epoch's shuffle, seeds,
 * forward, loss, backward, clipping, Adam), waiting for the backend to finish; *loss its loss. */
tema_status tema_trained_step(tema_trained *t, int64_t step, double *loss, tema_err *err);
/* One evaluation pass over the validation split under the run's protocol and negatives. */
tema_status tema_trained_validate(tema_trained *t, tema_metric_acc *acc, tema_err *err);
/* Replaces the graph by a new one, its arenas freed: what the next pass allocates is its own
 * (`tema run` evaluates on the training graph, whose arena grows to the larger of the two). */
tema_status tema_trained_new_graph(tema_trained *t, tema_err *err);

#endif
