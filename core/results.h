/* core/results.h - the run folder: results/<experiment>/<run-id>/ (core-internal).
 *
 * One run folder per (experiment name, run identity). The run id is the first 16 hex
 * digits of a 64-bit FNV-1a hash of the run's identity (run_id.h: the resolved config with
 * the data named by content, execution details and defaults left out), so re-running the
 * same experiment lands in the same folder and a changed config in a new one.
 *
 * Files in the run folder:
 *   config.yaml, config.json  resolved config (written by tema_results_open on a fresh start)
 *   meta.json                 plugins used (with a hash of each plugin file), git commit +
 *                             dirty flag, host, version, time, threads, backend, identity
 *   epochs.jsonl              one JSON object per epoch (appended and fsync'ed per line)
 *   final.json                valid + test metrics per domain and rank rule, best epoch, ...
 *   ranks.tsv                 one line per test case: user domain target optimistic
 *                             pessimistic mid (header line first)
 *   status                    "running", "interrupted" or "done" (one word + newline)
 *   DONE                      written last by tema_results_finish; its presence = finished
 *   best.bin, last.bin        checkpoints (written by the trainer; paths from here)
 * Whole files are written atomically (temp + fsync + rename), so a crash never leaves a
 * half-written JSON file behind.
 *
 * Typical trainer use:
 *   tema_run *run; tema_run_state st;
 *   tema_results_open(dir, name, json, yaml, &run, &st, err);
 *   if (st == TEMA_RUN_FINISHED && !force) { print "already done"; tema_results_close(run); }
 *   tema_results_begin(run, fresh, err);   fresh = force || st == TEMA_RUN_NEW || !resuming
 *   tema_results_meta(run, &meta, err);
 *   per epoch: tema_results_epoch(run, &rec, err);
 *   tema_results_ranks(run, n, rows, err); tema_results_final(run, &fin, err);
 *   tema_results_finish(run, err); text = tema_results_summary(...); tema_results_close(run);
 */
#ifndef TEMA_CORE_RESULTS_H
#define TEMA_CORE_RESULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eval.h"
#include "tema/status.h"

typedef struct tema_run tema_run; /* opaque; created by tema_results_open, freed by _close */

typedef enum tema_run_state {
    TEMA_RUN_NEW = 0,         /* folder did not exist or held no status file */
    TEMA_RUN_FINISHED = 1,    /* DONE marker present: a re-run may skip it */
    TEMA_RUN_INTERRUPTED = 2  /* a status file but no DONE: an earlier run died or was stopped */
} tema_run_state;

/* The run id of a canonical JSON text: 16 lowercase hex digits + NUL. Scheme 1 hashed the
 * resolved config's JSON; scheme 2 hashes the run's identity (run_id.h). */
void tema_results_run_id(const char *config_json, char id[17]);

/* Create (mkdir -p) results_dir/exp_name/<run-id>/ and report its state. Writes nothing
 * else; config files are written by tema_results_begin. exp_name must be a plain folder
 * name (no '/', not "." or ".."). *out is owned by the caller: free with tema_results_close. */
tema_status tema_results_open(const char *results_dir, const char *exp_name, const char *config_json,
                              const char *config_yaml, tema_run **out, tema_run_state *state, tema_err *err);

/* The same with the run id given (run_id.h's tema_run_ids); run_id NULL: the scheme-1 id of
 * config_json, as tema_results_open. */
tema_status tema_results_open_id(const char *results_dir, const char *exp_name, const char *run_id,
                                 const char *config_json, const char *config_yaml, tema_run **out,
                                 tema_run_state *state, tema_err *err);

/* Start (or resume) writing. fresh = true removes the outputs of any earlier attempt
 * (epochs.jsonl, final.json, ranks.tsv, meta.json, DONE, best.bin, last.bin);
 * fresh = false keeps them so a resumed run appends to epochs.jsonl. Both (re)write
 * config.yaml, config.json and status = "running", and reset the start time. */
tema_status tema_results_begin(tema_run *run, bool fresh, tema_err *err);

/* The run folder, run id and checkpoint paths; owned by run, valid until tema_results_close. */
const char *tema_results_dir(const tema_run *run);
const char *tema_results_id(const tema_run *run);
const char *tema_results_best_path(const tema_run *run);  /* <dir>/best.bin */
const char *tema_results_last_path(const tema_run *run);  /* <dir>/last.bin */

/* For resuming from a checkpoint of epoch `last_epoch`: rewrite epochs.jsonl keeping only the
 * lines whose "epoch" is <= last_epoch, so the resumed epochs are not logged twice.
 * A missing file is fine. */
tema_status tema_results_truncate_epochs(tema_run *run, int last_epoch, tema_err *err);

/* One plugin used by the run (strings borrowed for the call). */
typedef struct tema_plugin_record {
    const char *kind;     /* "model", "encoder", ... */
    const char *name;
    const char *version;
    const char *file;     /* path of the .so, or "builtin" */
    const char *file_hash;/* tema_file_fingerprint of file (NULL: not written); a resume checks it */
} tema_plugin_record;

typedef struct tema_run_meta {
    const char *source_root;            /* for `git rev-parse HEAD` / `git status --porcelain`;
                                           NULL = TEMA_SOURCE_ROOT of the build. When git fails,
                                           the commit falls back to tema_git_commit() and
                                           "dirty" is null. */
    const tema_plugin_record *plugins;
    int n_plugins;
    int threads;
    const char *backend;                /* "cpu", ... (NULL -> null) */
    const char *config_path;            /* the experiment file as given (NULL -> null) */
    const char *identity_json;          /* what the run id hashes (run_id.h; NULL -> left out) */
} tema_run_meta;
/* Write meta.json (adds host name, tema version, start time in UTC ISO 8601). */
tema_status tema_results_meta(tema_run *run, const tema_run_meta *meta, tema_err *err);

/* One line of epochs.jsonl:
 *   {"epoch":E,"steps":S,"train_loss":L,"seconds":T,
 *    "valid":{"X":{"cases":n,"optimistic":{"mrr":..,"ndcg@10":..},"pessimistic":{..},"mid":{..}},
 *             "Y":{..}}}          ("valid" only when valid != NULL)
 * Non-finite losses are written as null. */
typedef struct tema_epoch_record {
    int epoch;                       /* 1-based */
    int64_t steps;                   /* optimizer steps in this epoch */
    double train_loss;               /* mean training loss over the epoch */
    double seconds;                  /* wall time of the epoch incl. validation */
    const tema_metric_acc *valid;    /* NULL when not evaluated this epoch */
} tema_epoch_record;
tema_status tema_results_epoch(tema_run *run, const tema_epoch_record *rec, tema_err *err);

/* final.json:
 *   {"test":{"X":{...as above...},"Y":{..}}, "valid":{..}, "best_epoch":B, "epochs_run":E,
 *    "stopped_early":bool, "total_seconds":T, "seconds_per_epoch":T/E, "peak_memory_bytes":M,
 *    "warnings":[...]}
 * warnings = the caller's warnings followed by the tie warnings of the test metrics
 * (tema_results_tie_warning). test / valid may be NULL (written as null). */
typedef struct tema_final_record {
    const tema_metric_acc *valid;    /* metrics of the best checkpoint on the valid set */
    const tema_metric_acc *test;     /* metrics of the best checkpoint on the test set */
    int best_epoch;                  /* 1-based; 0 = none */
    int epochs_run;
    bool stopped_early;
    double total_seconds;
    double seconds_per_epoch;        /* <= 0: computed as total_seconds / epochs_run */
    size_t peak_memory_bytes;        /* 0: taken from tema_peak_rss() */
    const char *const *warnings;     /* borrowed; may be NULL */
    int n_warnings;
} tema_final_record;
tema_status tema_results_final(tema_run *run, const tema_final_record *rec, tema_err *err);

/* ranks.tsv: header "user\tdomain\ttarget\toptimistic\tpessimistic\tmid", then one row per
 * test case; domain written as X or Y; ranks as %.1f (mid ranks can be halves). */
typedef struct tema_rank_row {
    int64_t user;
    int32_t domain;                  /* 0 = X, 1 = Y */
    int32_t target;                  /* item id as in the dataset */
    double rank[TEMA_RANK_RULES];    /* indexed by tema_rank_rule */
} tema_rank_row;
tema_status tema_results_ranks(tema_run *run, int64_t n, const tema_rank_row *rows, tema_err *err);

/* Mark the run stopped ("interrupted") without finishing; DONE is not written. */
tema_status tema_results_interrupted(tema_run *run, tema_err *err);
/* status = "done", then the DONE marker (written last). */
tema_status tema_results_finish(tema_run *run, tema_err *err);
/* Free the handle (does not touch the folder). NULL is fine. */
void tema_results_close(tema_run *run);

/* Tie warning for one domain: when the optimistic and pessimistic MRR differ by more than
 * 10 % relative to the optimistic MRR, writes
 *   "ties flatter this model: domain X MRR 0.4120 (optimistic, C2DSR) vs 0.3012 (pessimistic)"
 * into buf and returns true; otherwise returns false and leaves buf empty. Uses "mrr" when the
 * spec has it, else the first metric (named in the message). Domains with no cases never warn. */
bool tema_results_tie_warning(const tema_metric_acc *acc, int domain, char *buf, size_t cap);

/* The run summary for stdout: per domain, a table with one row per metric and columns
 * optimistic (C2DSR) | pessimistic | mid, then any tie warnings, e.g.
 *   run food-kitchen/1a2b3c4d5e6f7a8b  best epoch 12 of 20
 *   domain X (1234 test cases)
 *     metric      optimistic  pessimistic    mid-rank
 *     mrr             0.0712       0.0712      0.0712
 *   ...
 *   warning: ties flatter this model: ...
 * run may be NULL (no first line). Returns a malloc'ed string the caller frees; NULL on OOM. */
char *tema_results_summary(const tema_run *run, const tema_metric_acc *test, int best_epoch, int epochs_run);
/* The commit of the source tree this binary was built from, read at run time as meta.json
 * records it (the binary may be older than the tree); dirty: uncommitted changes, -1 unknown. */
void tema_results_git_state(char *commit, size_t cap, int *dirty);
/* A finished run's summary read back from its final.json (the test metrics of `spec`) to
 * stdout, with a line on stderr saying the run was already finished. */
tema_status tema_results_print_finished(const tema_run *run, const tema_metric_spec *spec, tema_err *err);

#endif
