/* core/grid.h - experiment grids: the `grid:` block of an experiment, its manifest (one
 * resolved run per entry), running it locally (N child processes at a time) or on Slurm,
 * and the state of each run (core-internal).
 *
 * The grid block:
 *   grid:
 *     train.lr: [1e-3, 1e-4]                 # a key path and its values: one axis
 *     model.attention:                       # values may be whole plugin sub-configs
 *       - {plugin: single, blocks: 1}
 *       - {plugin: single, blocks: 2}
 *     zip:                                   # keys that vary together (equal lengths);
 *       - {train.lr: [1e-3, 5e-4], train.batch_size: [128, 256]}  # a map or a list of maps
 *     seeds: [1, 2, 3]                       # every cell once per seed (sets train.seed)
 * Axes are taken in file order (a zip group at the position of its `zip:` key), the last
 * axis varies fastest and the seed fastest of all; a nested map (`train: {lr: [..]}`) is
 * the same as its dotted paths. Each run is the experiment file without its `grid:` and
 * `report:` blocks, the cell's values applied like --set (a value replaces what was
 * there), then the --set overrides, then validation as in tema_cfg_resolve; errors name
 * the grid entry's FILE:LINE:COL. An experiment without a grid is a grid of one run.
 *
 * The run id is the hash of the run's identity (run_id.h: its resolved config with the data
 * named by content, execution details and plugin defaults left out), so report layouts,
 * grid edits, thread counts and where the data lives never change the ids of runs whose
 * config is unchanged, and a cell that is also a standalone experiment shares its folder.
 *
 * Run folder files added here (beside those of core/results.h):
 *   lock     held (fcntl write lock) by the process running the run; holds "PID HOST"
 *   log.txt  stdout + stderr of the run when a parallel grid ran it in a child process
 *   failed   JSON {"exit_code":N|null,"signal":N|null,"error":"...","host":"...",
 *            "time":"ISO 8601 UTC"}, written atomically when a run fails, removed when
 *            it starts again. */
#ifndef TEMA_CORE_GRID_H
#define TEMA_CORE_GRID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "registry.h"

/* One varying value of a run: the key path and the value as the grid wrote it. */
typedef struct tema_grid_value {
    const char *key;       /* "train.lr", "model.attention", "train.seed" (for seeds:) */
    const char *text;      /* compact flow YAML of the value: "1e-4", "{plugin: single, blocks: 2}" */
    const tema_cfg *node;  /* the value as written (positions in the experiment file) */
} tema_grid_value;

typedef struct tema_grid_run {
    size_t index;          /* position in the manifest, 0-based */
    size_t cell;           /* runs with the same cell differ only in the seed */
    char id[17];           /* run id (16 hex digits; run_id.h) */
    char *dir;             /* results_dir/name/id as given to tema_grid_expand */
    tema_cfg *cfg;         /* resolved config of this run */
    tema_grid_value *values; /* n_keys entries, in the order of tema_grid.keys */
} tema_grid_run;

typedef struct tema_grid {
    char *path;            /* the experiment file as given */
    char *name;            /* experiment name: the results go to results_dir/name/ */
    char *results_dir;     /* as given ("results" by default) */
    bool has_grid;         /* the file has a `grid:` block */
    size_t n_keys;         /* varying keys, axis order; "train.seed" last when `seeds:` is given */
    char **keys;
    size_t n_cells, n_seeds; /* n_runs = n_cells * n_seeds; n_seeds = 1 without `seeds:` */
    size_t n_runs;
    tema_grid_run *runs;
    tema_cfg *tree_;       /* private: values' storage */
} tema_grid;

/* Expand an experiment file into its runs under results_dir (NULL: the file's `results_dir`,
 * else "results"; g->results_dir is the one used). overrides are "key.path=value" as for --set
 * (applied after the grid values; setting a grid key is an error). Problems are printed to
 * diag as "FILE:LINE:COL: message" (diag may be NULL) and the first goes into err. Two
 * entries that resolve to the same config are an error. A run folder under the old id
 * scheme is renamed to the run's id when that one does not exist yet
 * (tema_run_migrate). *out is owned by the caller: free with tema_grid_free. */
tema_status tema_grid_expand(const char *path, const char *const *overrides, int n_overrides, tema_registry *reg,
                             const char *results_dir, FILE *diag, tema_grid **out, tema_err *err);
void tema_grid_free(tema_grid *g);

/* The value of `key` in run r ("" when key is not one of g->keys); owned by g. */
const char *tema_grid_value_text(const tema_grid *g, const tema_grid_run *r, const char *key);

/* "train.lr=1e-4 model.attention={plugin: single, blocks: 2} train.seed=1" for run r into
 * buf (truncated to cap); with_seed false leaves the seed out (the cell's label). */
void tema_grid_label(const tema_grid *g, const tema_grid_run *r, bool with_seed, char *buf, size_t cap);

/* The manifest: a '#' header, then one line per run "INDEX  RUN-ID  key=value ...".
 * json: one JSON object {"experiment","file","results","keys","runs":[{"index","cell",
 * "run_id","dir","values":{key: text}}]} instead. Deterministic for a given file. */
void tema_grid_print_manifest(const tema_grid *g, bool json, FILE *out);

typedef enum tema_grid_state {
    TEMA_GRID_PENDING = 0,     /* never started */
    TEMA_GRID_INTERRUPTED,     /* started, stopped without finishing or failing: resumes */
    TEMA_GRID_RUNNING,         /* a process holds the run's lock */
    TEMA_GRID_FAILED,          /* the `failed` file is there */
    TEMA_GRID_DONE             /* DONE is there */
} tema_grid_state;
const char *tema_grid_state_name(tema_grid_state s); /* "pending", ... (static) */

/* State of a run from its folder. note (may be NULL) gets a short detail: "epoch 3/20",
 * "pid 123 on host", the failure message. */
tema_grid_state tema_grid_run_state(const tema_grid_run *r, char *note, size_t cap);

/* `tema results`: RESULTS/<name>/runs.csv and runs.jsonl, one row per run of the manifest
 * with its grid values, state, final record and every metric (core/runs_table.c). csv_path
 * gets the CSV's path; *n_final the number of runs with a final record. */
tema_status tema_grid_write_runs_table(const tema_grid *g, char *csv_path, size_t cap, size_t *n_final, tema_err *err);

/* `tema status`: a table (index, run id, state, epochs, values, note) and the totals.
 * counts (may be NULL) gets the number of runs per tema_grid_state. */
void tema_grid_print_status(const tema_grid *g, FILE *out, size_t counts[5]);

/* Run entry `index` in this process (what `tema run EXP.yaml --index I` and a grid of one
 * run do): takes the run's lock (a run locked by another process is an error), removes a
 * stale `failed`, runs it with tema_run_experiment and, when it fails, writes `failed`
 * (an interruption is not a failure). */
tema_status tema_grid_run_one(const tema_grid *g, size_t index, tema_registry *reg, bool force, tema_err *err);

/* Exit statuses of `tema run` that the local runner reads from its children. */
#define TEMA_EXIT_INTERRUPTED 130  /* stopped by a signal; the run resumes later */
#define TEMA_EXIT_BUSY 75          /* another process holds the run's lock */

/* Options of a local grid run. */
typedef struct tema_grid_exec {
    int jobs;                       /* runs at a time (>= 1) */
    bool force;                     /* re-run finished runs too */
    const char *exe;                /* the tema binary for the children; NULL = /proc/self/exe */
    const char *const *overrides;   /* passed on to the children as --set */
    int n_overrides;
    FILE *log;                      /* progress lines (start, done, failed); NULL = stderr */
} tema_grid_exec;

typedef struct tema_grid_outcome {
    size_t skipped_done;            /* finished before (not re-run) */
    size_t skipped_busy;            /* locked by another process (running elsewhere) */
    size_t ok, failed, interrupted; /* of the runs started */
} tema_grid_outcome;

/* Run every unfinished entry, `jobs` at a time, each as a child process
 * `tema run PATH --index I --results DIR` with stdout and stderr into its log.txt (with one
 * job they go to this process's stdout and stderr). Each child gets max(1, threads / jobs)
 * OpenMP / OpenBLAS threads in its environment, threads being the run's backend.threads.
 * SIGINT / SIGTERM stop starting new runs and are passed on to the running children.
 * A failed run is recorded and the others go on; the outcome says how many failed. */
tema_status tema_grid_run_local(const tema_grid *g, const tema_grid_exec *ex, tema_grid_outcome *outcome,
                                tema_err *err);

/* Options of `tema slurm`. */
typedef struct tema_slurm_opts {
    const char *partition;          /* NULL: the cluster's default */
    const char *time;               /* NULL: the partition's default; e.g. "02:00:00" */
    const char *mem;                /* per node, as sbatch --mem takes it ("8G", "500M"); NULL: the default */
    int cpus;                       /* per task; 0: the largest backend.threads of the runs */
    int gpus;                       /* per task; 0: none */
    int max_parallel;               /* the array's %K; 0: all at once */
    const char *tema;               /* --tema: the command that runs tema, written verbatim (it may be
                                     * "apptainer exec tema.sif tema"); NULL: `tema` when the one on PATH
                                     * is this program, else this binary's absolute path */
    const char *const *setup;       /* --setup: each a file (its text goes in) or a shell line, run
                                     * before tema (module load, source venv/bin/activate) */
    int n_setup;
    const tema_registry *reg;       /* whether a cuda backend is built (for --gpus); NULL: unknown */
    const char *const *overrides;   /* passed on as --set */
    int n_overrides;
} tema_slurm_opts;

/* The checks of the options that need no grid: --mem's form, and a cuda backend for --gpus
 * (when o->reg is given). tema_grid_write_slurm makes them too. */
tema_status tema_slurm_check_opts(const tema_slurm_opts *o, tema_err *err);

/* What tema_grid_write_slurm wrote. */
typedef struct tema_slurm_script {
    char *path;                     /* results_dir/NAME/slurm/NAME.sbatch as results_dir was given;
                                     * NULL when no run is left to do (no script written) */
    size_t n_tasks;                 /* array tasks: the runs neither done nor running */
    size_t n_done, n_running;       /* runs left out of the array */
} tema_slurm_script;

/* Write results_dir/name/slurm/NAME.sbatch: a job array over the entries that are neither
 * done nor running (`--array=3,5,7-9%K`), task i running `tema run EXP --index i --results
 * DIR` with EXP and DIR as given, after a `cd "$SLURM_SUBMIT_DIR"`: submitted from the
 * folder `tema slurm` ran in, it works wherever a cluster mounts that folder. The thread
 * environment is set to the CPUs per task. With every run done or running, nothing is
 * written (out->path NULL, TEMA_OK).
 * --gpus needs runs on the cuda backend: a cpu run is refused rather than switched, because
 * the backend is part of the resolved config and so of the run id; switched here, the runs
 * would get ids that `tema status` / `tema report` of the same file never look for. The fix
 * the error names, --set backend.plugin=cuda, is given to those commands too.
 * Also writes the seeded synthetic datasets the runs share, so that concurrent tasks never
 * generate the same one. out->path: caller frees. */
tema_status tema_grid_write_slurm(const tema_grid *g, const tema_slurm_opts *o, tema_slurm_script *out,
                                  tema_err *err);

/* `sbatch --parsable SCRIPT`; job_id (cap bytes) gets the job id sbatch printed. */
tema_status tema_grid_submit_slurm(const char *script_path, char *job_id, size_t cap, tema_err *err);

#endif
