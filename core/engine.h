/* core/engine.h - lifecycle of parameters, graphs and the optimizer; the autograd
 * implementation behind tema/nn.h (core-internal). */
#ifndef TEMA_CORE_ENGINE_H
#define TEMA_CORE_ENGINE_H

#include <stdint.h>
#include <stdio.h>

#include "tema/backend.h"
#include "tema/nn.h"

/* The nn op table handed to plugins through tema_host. */
const tema_nn_api *tema_nn(void);

/* Select the backend used by every later allocation and op (process-wide). */
void tema_engine_set_backend(const tema_backend_ops *ops, void *self);
const tema_backend_ops *tema_engine_backend(void);
void *tema_engine_backend_self(void);

/* Parameters: declare (tema_nn()->param / constant), then finalize: one buffer for all
 * values, one for gradients, one for each Adam moment. Initialisation is seeded. */
tema_params *tema_params_new(uint64_t seed);
tema_status tema_params_finalize(tema_params *p, tema_err *err);
void tema_params_free(tema_params *p);
int64_t tema_params_count(const tema_params *p);          /* learnable floats */
size_t tema_params_n(const tema_params *p);               /* number of tensors */
size_t tema_params_bytes(const tema_params *p);           /* values, gradients, Adam moments (finalized) */
tema_tensor *tema_params_at(tema_params *p, size_t i);
void tema_params_zero_grad(tema_params *p);

typedef struct tema_adam {
    float lr, beta1, beta2, eps, weight_decay;  /* as L2 added to the gradient (torch Adam), or decoupled */
    int64_t step;
    /* Lazy (sparse) Adam, train.optimizer: lazy_adam: of a table the step read by rows
     * (embedding, gather_rows, rowdot) only those rows are updated, and a tensor the gradient
     * did not reach is not updated at all; their moments do not decay meanwhile. Plain Adam
     * updates every tensor every step. */
    bool lazy;
    /* AdamW (train.optimizer: adamw, Loshchilov & Hutter): p *= 1 - lr * weight_decay, then the
     * Adam update of the gradient alone. Under the L2 form Adam divides the decay by the
     * gradient's scale, so a row no batch reads moves lr a step towards 0 whatever weight_decay
     * is; here it shrinks by the factor. Plain (not lazy) updates only: the trainer never sets
     * both, and lazy Adam keeps the L2 form. */
    bool decoupled;
} tema_adam;
void tema_adam_step(tema_params *p, tema_adam *opt);

/* Checkpoint: parameters + Adam moments + step, to a file (atomic write) and back.
 * Format (version 1, little-endian, what best.bin and last.bin of a run folder hold):
 *   char[8]  "TEMACKPT"
 *   u32      version (1)
 *   u32      T, the number of learnable tensors
 *   i64      Adam step
 *   T times: u32 name length, name bytes (no NUL), u32 ndim, i64[ndim] shape
 *   f32[N]   values of the T tensors, concatenated in that order (N = sum of their sizes)
 *   f32[N]   Adam first moments, same layout
 *   f32[N]   Adam second moments, same layout
 *   u64      tema_hash64 of every byte before it
 * Constant (non-learnable) tensors are not stored; they are rebuilt from the plugins. Loading
 * checks the names and shapes against the model's and refuses any difference. To read the
 * weights elsewhere, `tema export` writes the item tables and user states as .npy. */
tema_status tema_params_save(const tema_params *p, const tema_adam *opt, const char *path, tema_err *err);
tema_status tema_params_load(tema_params *p, tema_adam *opt, const char *path, tema_err *err);

/* Graph of one step: arena (grows to its high-water mark, then never reallocates) + tape. */
tema_graph *tema_graph_new(uint64_t seed);
void tema_graph_free(tema_graph *g);
void tema_graph_reset(tema_graph *g, bool training, uint64_t step_seed);
/* Backpropagate from a [1] tensor; accumulates into parameter gradients. */
tema_status tema_graph_backward(tema_graph *g, tema_tensor *loss, tema_err *err);
size_t tema_graph_peak_bytes(const tema_graph *g);
/* FLOP of every matrix product (dense and sparse) the graph's ops have run since
 * tema_graph_new, forward and backward: what `tema bench` divides by time. */
double tema_graph_flop(const tema_graph *g);
/* A point in a step to come back to: tema_graph_rewind() drops every tensor and tape entry
 * made after tema_graph_mark_now(), so a loop of temporaries over one forward pass
 * (evaluation, stream by stream) needs the memory of one iteration, not of all. Only for
 * steps that do not backpropagate (the dropped entries are gone from the tape), and only once
 * the backend has finished with the dropped tensors (after a sync). */
typedef struct tema_arena_mark {
    size_t used, n_extra, extra_used, step_bytes;
} tema_arena_mark;
typedef struct tema_graph_mark {
    tema_arena_mark dev, host;
    size_t nodes;
} tema_graph_mark;
tema_graph_mark tema_graph_mark_now(const tema_graph *g);
void tema_graph_rewind(tema_graph *g, const tema_graph_mark *m);

#endif
