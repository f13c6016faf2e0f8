/* core/train.h - running one experiment: data, model, training, evaluation, results
 * (core-internal). */
#ifndef TEMA_CORE_TRAIN_H
#define TEMA_CORE_TRAIN_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "registry.h"

typedef struct tema_run_opts {
    const char *results_dir;     /* default "results" */
    const char *config_path;     /* the experiment file, for the record */
    bool force;                  /* re-run even when the run is finished */
    int threads;                 /* > 0: backend threads for this process, overriding backend.threads
                                  * without changing the run id (0: $TEMA_THREADS if set, else the config) */
} tema_run_opts;

/* Run a resolved experiment (tema_cfg_resolve output). Writes
 * results_dir/<name>/<run-id>/ and prints progress to stderr, the summary to stdout. */
tema_status tema_run_experiment(const tema_cfg *resolved, tema_registry *reg, const tema_run_opts *opts,
                                tema_err *err);

/* The constraints between options that plugins check before any data is read (the attention
 * plugin's check, ABI 1.7), with the file position of the config node in the error. */
tema_status tema_model_check(const tema_cfg *resolved, tema_registry *reg, tema_err *err);

/* `tema bench`: the defaults of --steps and --warmup (here only; the usage text prints them). */
#define TEMA_BENCH_STEPS 20
#define TEMA_BENCH_WARMUP 3
typedef struct tema_bench_opts {
    int steps;                 /* timed training steps, >= 1 */
    int warmup;                /* untimed steps before them, >= 0 */
    bool eval;                 /* also time one evaluation pass over the validation split */
    int threads;               /* > 0: overrides backend.threads (else $TEMA_THREADS, else the config) */
    const char *results_dir;   /* synthetic data, tag and feature stores (nothing else is written) */
    const char *experiment;    /* for the record: the experiment's name */
    long run;                  /* for the record: the grid entry (-1: the file has no grid) */
} tema_bench_opts;
/* Builds the model of a resolved config on its data, runs o->warmup then o->steps training steps
 * (as `tema run` takes them), and writes ONE JSON line to `out`: time per step, FLOP per step
 * counted from the products the graph ran, the backend's measured sgemm peak, peak RSS, arena
 * sizes (core/train_bench.c; README, Benchmarking). Progress goes to stderr. */
tema_status tema_bench(const tema_cfg *resolved, tema_registry *reg, const tema_bench_opts *o, FILE *out,
                       tema_err *err);

/* `tema export RUN ...` and `tema recommend RUN ...` (core/train_export.c): argv after the
 * command word; exit status 0 ok, 1 failed, 2 usage. */
int tema_export_cli(int argc, char **argv);
int tema_recommend_cli(int argc, char **argv);

#endif
