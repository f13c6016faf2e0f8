/* core/cli.c - subcommands of the tema program. */
#include "cli.h"
#include "host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dataset.h"
#include "grid.h"
#include "plot.h"
#include "registry.h"
#include "report.h"
#include "tags.h"
#include "tema_build_config.h"
#include "train.h"

#define STR_(x) #x
#define STR(x) STR_(x) /* a default into the usage text: it lives in its header */

static const char usage_text[] =
    "usage: tema <command> [options]\n"
    "\n"
    "commands:\n"
    "  run EXP.yaml [--set key.path=value]... [--results DIR] [--force] [-j N] [--index I]\n"
    "                         validate and run an experiment (results in DIR; default: the\n"
    "                         file's results_dir, else results/; the same for every command);\n"
    "                         a grid runs every unfinished entry, N at a time (threads split\n"
    "                         between them), or only entry I; exit status = failed runs\n"
    "  check EXP.yaml [--set key.path=value]... [--print] [--index I]\n"
    "                         validate an experiment (every grid entry) without running it\n"
    "  bench EXP.yaml [--steps N] [--warmup W] [--eval] [--set ...]... [--index I] [--results DIR]\n"
    "        [--threads N]\n"
    "                         time W warm-up (default " STR(TEMA_BENCH_WARMUP) ") then N training steps (default "
    STR(TEMA_BENCH_STEPS) ")\n"
    "                         of the experiment (a grid: entry I, default 0; --run I is the same) on\n"
    "                         its data, --eval also one validation pass; one JSON line on stdout:\n"
    "                         ms per step, GFLOP per step and per second, the sgemm peak, peak RSS\n"
    "                         of the steps and of the evaluation, arena sizes. Writes no run folder\n"
    "  manifest EXP.yaml [--set ...]... [--results DIR] [--json]\n"
    "                         list the runs of a grid: index, run id, the entry's values\n"
    "  status EXP.yaml [--set ...]... [--results DIR]\n"
    "                         done / running / failed / pending per run, and totals\n"
    "  results EXP.yaml [--set ...]... [--results DIR]\n"
    "                         one row per run (grid values, state, every metric under every rule,\n"
    "                         time, memory) into DIR/NAME/runs.csv and runs.jsonl, for pandas\n"
    "  slurm EXP.yaml [--partition P] [--time T] [--cpus C] [--mem M] [--gpus G]\n"
    "        [--max-parallel K] [--setup FILE|LINE]... [--tema CMD] [--results DIR]\n"
    "        [--set ...]... [--submit]\n"
    "                         write DIR/NAME/slurm/NAME.sbatch, a job array over the runs not done\n"
    "                         (task i runs `tema run EXP.yaml --index i`), and sbatch it with\n"
    "                         --submit; nothing to do: no script, exit 0. Paths stay as given,\n"
    "                         relative to the folder it is submitted from (submit from here).\n"
    "                         --mem M: sbatch --mem (8G); --gpus G: a GPU per task, for runs on\n"
    "                         backend.plugin=cuda only; --max-parallel K: the array's %K;\n"
    "                         --setup: a file, or a shell line (repeatable), run before tema\n"
    "                         ('module load cuda', 'source venv/bin/activate'); --tema CMD: the\n"
    "                         command that runs tema there (default: `tema` if the one on PATH\n"
    "                         is this program, else this binary's absolute path)\n"
    "  report EXP.yaml [--format md|latex|csv|all] [--out DIR] [--results DIR] [--html]\n"
    "                         tables with significance marks, timing, plots (and an HTML page)\n"
    "  tags EXP.yaml [--set ...]... [--results DIR] [--force]   tag the items once (stored in DIR/tags/)\n"
    "  export RUN [--out DIR] [--checkpoint best|last] [--split test|valid|train] [--threads N]\n"
    "                         a trained run's item tables and user states as .npy, with index files\n"
    "  recommend RUN [--users FILE] [--k K] [--domain x|y] [--keep-seen] [--out FILE] [--split S]\n"
    "                [--checkpoint best|last] [--threads N]\n"
    "                         the top-K items of each user by the model's ranking score, as TSV\n"
    "  plugins [--describe NAME]\n"
    "                         list the plugins found, or one plugin's options\n"
    "  data stats PATH        statistics of a dataset folder or archive\n"
    "  data synth --out DIR [--seed N] [--users N] [--items-x N] [--items-y N]\n"
    "             [--categories N] [--min-len N] [--max-len N] [--preset small|food-kitchen]\n"
    "                         write a seeded synthetic two-domain dataset\n"
    "  plot CSV --x COL --y COL[,COL...] [--series COL] [--title TEXT] [--xlabel TEXT]\n"
    "       [--ylabel TEXT[,TEXT...]] [--out STEM]\n"
    "                         line charts of a CSV file (one panel per --y column, one line per\n"
    "                         --series value) as STEM.svg, .png and .pdf (STEM: the CSV's name)\n"
    "  version                print the version\n"
    "\n"
    "Plugins are searched in $TEMA_PLUGIN_PATH (colon separated), the build tree and the\n"
    "install folder.\n";

static int usage(const char *msg)
{
    if (msg) fprintf(stderr, "tema: %s\n\n", msg);
    fputs(usage_text, stderr);
    return 2;
}

static int fail(const tema_err *err)
{
    fprintf(stderr, "tema: error: %s\n", err->msg[0] ? err->msg : tema_status_name(err->code));
    return 1;
}

static tema_registry *load_registry(bool quiet)
{
    tema_registry *r = tema_registry_new(tema_host_get());
    if (!r) return NULL;
    tema_registry_scan(r);
    if (!quiet)
        for (size_t i = 0; i < tema_registry_error_count(r); i++)
            fprintf(stderr, "tema: plugin error: %s\n", tema_registry_error_at(r, i));
    return r;
}

static int cmd_plugins(int argc, char **argv)
{
    const char *describe = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--describe") && i + 1 < argc) describe = argv[++i];
        else return usage("plugins: unknown option (expected --describe NAME)");
    }
    tema_registry *r = load_registry(false);
    if (!r) return 1;
    int rc = 0;
    if (describe) {
        tema_err err = {0};
        if (tema_registry_describe(r, describe, stdout, &err) != TEMA_OK) rc = fail(&err);
    } else {
        tema_registry_print(r, stdout);
    }
    tema_registry_free(r);
    return rc;
}

typedef enum exp_mode { MODE_CHECK, MODE_RUN, MODE_MANIFEST, MODE_STATUS, MODE_SLURM, MODE_RESULTS, MODE_BENCH } exp_mode;

typedef struct exp_args {
    const char *path;
    const char *overrides[128];
    int n_overrides;
    const char *results;
    const char *setup[64];
    bool force, print, json, submit;
    long jobs;       /* run: -j N */
    long index;      /* run / check / bench: --index I; -1 = every entry */
    tema_slurm_opts slurm;
    long steps, warmup, threads; /* bench */
    bool eval;                   /* bench */
} exp_args;

static int parse_int_arg(const char *name, const char *v, long lo, long hi, long *out);

/* The options only `tema bench` takes; 0 when o is none of them, else 1 (taken) or a usage
 * exit status. */
static int parse_bench_arg(exp_args *a, const char *o, const char *v, int *i)
{
    long *dst = !strcmp(o, "--steps") ? &a->steps : !strcmp(o, "--warmup") ? &a->warmup
              : !strcmp(o, "--threads") ? &a->threads : !strcmp(o, "--run") ? &a->index : NULL;
    if (!strcmp(o, "--eval")) {
        a->eval = true;
        return 1;
    }
    if (!dst || !v) return 0;
    long lo = dst == &a->warmup || dst == &a->index ? 0 : 1, hi = dst == &a->threads ? 256 : 100000000;
    int rc = parse_int_arg(o, v, lo, hi, dst);
    ++*i;
    return rc ? rc : 1;
}


static int parse_exp_args(int argc, char **argv, exp_args *a, exp_mode mode)
{
    memset(a, 0, sizeof *a);
    a->results = NULL; /* the experiment's results_dir, else results/ (tema_grid_expand) */
    a->jobs = 1;
    a->index = -1;
    a->steps = TEMA_BENCH_STEPS;
    a->warmup = TEMA_BENCH_WARMUP;
    const bool run = mode == MODE_RUN;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x = 0;
        int rc = mode == MODE_BENCH ? parse_bench_arg(a, o, v, &i) : 0;
        if (rc > 1) return rc;
        if (rc == 1) {
            continue;
        } else if (!strcmp(o, "--set") && v) {
            if (a->n_overrides == 128) return usage("too many --set options");
            a->overrides[a->n_overrides++] = argv[++i];
        } else if (!strncmp(o, "--set=", 6)) {
            if (a->n_overrides == 128) return usage("too many --set options");
            a->overrides[a->n_overrides++] = o + 6;
        } else if (mode != MODE_CHECK && !strcmp(o, "--results") && v) {
            a->results = argv[++i];
        } else if (run && !strcmp(o, "--force")) {
            a->force = true;
        } else if (run && (!strcmp(o, "-j") || !strcmp(o, "--jobs")) && v) {
            if ((rc = parse_int_arg(o, argv[++i], 1, 1024, &x))) return rc;
            a->jobs = x;
        } else if (run && !strncmp(o, "-j", 2) && o[2]) {
            if ((rc = parse_int_arg("-j", o + 2, 1, 1024, &x))) return rc;
            a->jobs = x;
        } else if ((run || mode == MODE_CHECK || mode == MODE_BENCH) && !strcmp(o, "--index") && v) {
            if ((rc = parse_int_arg(o, argv[++i], 0, 100000000, &x))) return rc;
            a->index = x;
        } else if (mode == MODE_CHECK && !strcmp(o, "--print")) {
            a->print = true;
        } else if (mode == MODE_MANIFEST && !strcmp(o, "--json")) {
            a->json = true;
        } else if (mode == MODE_SLURM && !strcmp(o, "--submit")) {
            a->submit = true;
        } else if (mode == MODE_SLURM && !strcmp(o, "--partition") && v) {
            a->slurm.partition = argv[++i];
        } else if (mode == MODE_SLURM && !strcmp(o, "--time") && v) {
            a->slurm.time = argv[++i];
        } else if (mode == MODE_SLURM && !strcmp(o, "--cpus") && v) {
            if ((rc = parse_int_arg(o, argv[++i], 1, 4096, &x))) return rc;
            a->slurm.cpus = (int)x;
        } else if (mode == MODE_SLURM && !strcmp(o, "--gpus") && v) {
            if ((rc = parse_int_arg(o, argv[++i], 0, 64, &x))) return rc;
            a->slurm.gpus = (int)x;
        } else if (mode == MODE_SLURM && !strcmp(o, "--mem") && v) {
            a->slurm.mem = argv[++i];
        } else if (mode == MODE_SLURM && !strcmp(o, "--tema") && v) {
            a->slurm.tema = argv[++i];
        } else if (mode == MODE_SLURM && !strcmp(o, "--setup") && v) {
            if (a->slurm.n_setup == 64) return usage("too many --setup options");
            a->setup[a->slurm.n_setup++] = argv[++i];
        } else if (mode == MODE_SLURM && !strcmp(o, "--max-parallel") && v) {
            if ((rc = parse_int_arg(o, argv[++i], 1, 100000, &x))) return rc;
            a->slurm.max_parallel = (int)x;
        } else if (o[0] == '-' && o[1]) {
            fprintf(stderr, "tema: unknown option '%s'%s (see tema --help)\n", o,
                    v || strchr(o, '=') ? "" : " or it needs a value");
            return 2;
        } else if (!a->path) {
            a->path = o;
        } else {
            return usage("only one experiment file may be given");
        }
    }
    if (!a->path) return usage("missing the experiment file (EXP.yaml)");
    a->slurm.setup = a->setup;
    return 0;
}

/* The runs of an experiment (one when it has no grid); NULL after printing the problems. */
static tema_grid *expand(const exp_args *a, tema_registry *r)
{
    tema_err err = {0};
    tema_grid *g = NULL;
    /* The problems go to a temporary file first: the error returned repeats the first of them,
     * and a problem printed twice reads like two. (Not open_memstream: with it, LeakSanitizer's
     * tracer crashed at exit in `tema slurm`, "Tracer caught signal 11", every time.) */
    FILE *diag = tmpfile();
    tema_status st = tema_grid_expand(a->path, a->overrides, a->n_overrides, r, a->results, diag ? diag : stderr, &g,
                                      &err);
    bool repeated = false;
    if (diag) {
        char line[4096];
        rewind(diag);
        while (fgets(line, sizeof line, diag)) {
            fputs(line, stderr);
            repeated |= err.msg[0] && strstr(line, err.msg) != NULL;
        }
        fclose(diag);
    }
    if (st != TEMA_OK && !repeated) fail(&err);
    return st == TEMA_OK ? g : NULL;
}

/* Every entry's cross-option constraints (tema_model_check); the first error names its entry. */
static tema_status check_models(const tema_grid *g, tema_registry *r, tema_err *err)
{
    for (size_t i = 0; i < g->n_runs; i++) {
        tema_status st = tema_model_check(g->runs[i].cfg, r, err);
        if (st != TEMA_OK) {
            if (g->has_grid) {
                char msg[sizeof err->msg];
                snprintf(msg, sizeof msg, "%s", err->msg);
                tema_fail(err, st, "%s (grid entry %zu)", msg, i);
            }
            return st;
        }
    }
    return TEMA_OK;
}

/* --index names an entry of the grid (or is not given); else says so. */
static bool index_in_range(const exp_args *a, const tema_grid *g)
{
    if (a->index < (long)g->n_runs) return true;
    fprintf(stderr, "tema: error: --index %ld: %s has %zu run%s (0..%zu); hint: see `tema manifest %s`\n", a->index,
            a->path, g->n_runs, g->n_runs == 1 ? "" : "s", g->n_runs - 1, a->path);
    return false;
}

/* `tema bench`: one entry of the experiment (the first of a grid unless --index), timed. */
static int cmd_bench(int argc, char **argv)
{
    exp_args a;
    int rc = parse_exp_args(argc, argv, &a, MODE_BENCH);
    if (rc) return rc;
    tema_registry *r = load_registry(false);
    if (!r) return 1;
    tema_grid *g = expand(&a, r);
    tema_err err = {0};
    const size_t k = a.index >= 0 ? (size_t)a.index : 0;
    if (!g) {
        rc = 1;
    } else if (!index_in_range(&a, g)) {
        rc = 2;
    } else if (tema_model_check(g->runs[k].cfg, r, &err) != TEMA_OK) {
        rc = fail(&err);
    } else {
        tema_bench_opts o = {.steps = (int)a.steps, .warmup = (int)a.warmup, .eval = a.eval, .threads = (int)a.threads,
                             .results_dir = g->results_dir, .experiment = g->name, .run = g->has_grid ? (long)k : -1};
        if (tema_bench(g->runs[k].cfg, r, &o, stdout, &err) != TEMA_OK) rc = fail(&err);
    }
    tema_grid_free(g);
    tema_registry_free(r);
    return rc;
}

/* `tema run` / `tema check`: a grid runs every entry (children, -j at a time), --index one
 * entry in this process, an experiment without a grid its one run in this process. Exit
 * status of a grid: the number of failed runs (at most 125), 130 when interrupted. */
static int cmd_experiment(int argc, char **argv, bool run)
{
    exp_args a;
    int rc = parse_exp_args(argc, argv, &a, run ? MODE_RUN : MODE_CHECK);
    if (rc) return rc;
    tema_registry *r = load_registry(false);
    if (!r) return 1;
    tema_grid *g = expand(&a, r);
    tema_err err = {0};
    if (!g) {
        rc = 1;
    } else if (tema_report_check(a.path, &err) != TEMA_OK || check_models(g, r, &err) != TEMA_OK) {
        rc = fail(&err);
    } else if (!index_in_range(&a, g)) {
        rc = 2;
    } else if (!run) {
        for (size_t i = 0; a.print && i < g->n_runs; i++) {
            if (a.index >= 0 && (size_t)a.index != i) continue;
            char *y = tema_cfg_to_yaml(g->runs[i].cfg);
            if (g->has_grid) {
                char label[2048];
                tema_grid_label(g, &g->runs[i], true, label, sizeof label);
                printf("--- # entry %zu, run %s: %s\n", i, g->runs[i].id, label);
            }
            if (y) fputs(y, stdout);
            free(y);
        }
        if (g->has_grid) printf("%s: ok (grid of %zu run%s)\n", a.path, g->n_runs, g->n_runs == 1 ? "" : "s");
        else printf("%s: ok\n", a.path);
    } else if (a.index >= 0 || g->n_runs == 1) {
        tema_status st = tema_grid_run_one(g, a.index >= 0 ? (size_t)a.index : 0, r, a.force, &err);
        if (st == TEMA_EINTERRUPTED) {
            fprintf(stderr, "tema: %s\n", err.msg); /* where the state is and how to resume */
            rc = TEMA_EXIT_INTERRUPTED;
        } else if (st != TEMA_OK) {
            rc = fail(&err);
        }
        if (st == TEMA_EUNSUPPORTED) rc = TEMA_EXIT_BUSY;
    } else {
        tema_grid_exec ex = {.jobs = (int)a.jobs, .force = a.force, .overrides = a.overrides,
                             .n_overrides = a.n_overrides};
        tema_grid_outcome out;
        tema_status st = tema_grid_run_local(g, &ex, &out, &err);
        if (st == TEMA_EINTERRUPTED) {
            fail(&err);
            rc = TEMA_EXIT_INTERRUPTED;
        } else if (st != TEMA_OK) {
            rc = fail(&err);
        } else {
            rc = out.failed > 125 ? 125 : (int)out.failed;
            if (out.failed)
                fprintf(stderr, "tema: %zu run%s failed; `tema status %s` lists them, each run folder's `failed` "
                                "file has the error\n",
                        out.failed, out.failed == 1 ? "" : "s", a.path);
        }
    }
    tema_grid_free(g);
    tema_registry_free(r);
    return rc;
}

/* `tema slurm` after expansion: the script over the runs left (none: a message, exit 0),
 * submitted with --submit. */
static int slurm_write(exp_args *a, const tema_grid *g, tema_err *err)
{
    a->slurm.overrides = a->overrides;
    a->slurm.n_overrides = a->n_overrides;
    tema_slurm_script s;
    if (tema_grid_write_slurm(g, &a->slurm, &s, err) != TEMA_OK) return fail(err);
    char left[160] = "";
    if (s.n_done || s.n_running)
        snprintf(left, sizeof left, "; left out: %zu done, %zu running elsewhere", s.n_done, s.n_running);
    if (!s.path) {
        printf("nothing to submit: every run of %s is done or running (%zu done, %zu running); no script written\n",
               a->path, s.n_done, s.n_running);
        return 0;
    }
    printf("%s\n%zu array task%s of %zu run%s%s\n", s.path, s.n_tasks, s.n_tasks == 1 ? "" : "s", g->n_runs,
           g->n_runs == 1 ? "" : "s", left);
    int rc = 0;
    if (a->submit) {
        char job[128];
        if (tema_grid_submit_slurm(s.path, job, sizeof job, err) != TEMA_OK) rc = fail(err);
        else printf("submitted job %s (%zu array task%s); follow with `tema status %s`\n", job, s.n_tasks,
                    s.n_tasks == 1 ? "" : "s", a->path);
    }
    free(s.path);
    return rc;
}

/* `tema manifest` / `tema status` / `tema slurm` */
static int cmd_grid_tool(int argc, char **argv, exp_mode mode)
{
    exp_args a;
    int rc = parse_exp_args(argc, argv, &a, mode);
    if (rc) return rc;
    tema_registry *r = load_registry(mode != MODE_SLURM);
    if (!r) return 1;
    tema_err err = {0};
    a.slurm.reg = r;
    /* before expanding: --gpus of a cuda experiment without a cuda build says so, not "unknown plugin" */
    if (mode == MODE_SLURM && tema_slurm_check_opts(&a.slurm, &err) != TEMA_OK) {
        tema_registry_free(r);
        return fail(&err);
    }
    tema_grid *g = expand(&a, r);
    if (!g) {
        rc = 1;
    } else if (mode == MODE_MANIFEST) {
        tema_grid_print_manifest(g, a.json, stdout);
    } else if (mode == MODE_STATUS) {
        tema_grid_print_status(g, stdout, NULL);
    } else if (mode == MODE_RESULTS) {
        char csv[4200];
        size_t n_final = 0;
        if (tema_grid_write_runs_table(g, csv, sizeof csv, &n_final, &err) != TEMA_OK) rc = fail(&err);
        else printf("%s (%zu runs, %zu with results; JSON lines beside it)\n", csv, g->n_runs, n_final);
    } else {
        rc = slurm_write(&a, g, &err);
    }
    tema_grid_free(g);
    tema_registry_free(r);
    return rc;
}

static int cmd_manifest(int argc, char **argv) { return cmd_grid_tool(argc, argv, MODE_MANIFEST); }
static int cmd_status(int argc, char **argv) { return cmd_grid_tool(argc, argv, MODE_STATUS); }
static int cmd_results(int argc, char **argv) { return cmd_grid_tool(argc, argv, MODE_RESULTS); }
static int cmd_slurm(int argc, char **argv) { return cmd_grid_tool(argc, argv, MODE_SLURM); }

static int parse_int_arg(const char *name, const char *v, long lo, long hi, long *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) {
        fprintf(stderr, "tema: %s must be an integer in [%ld, %ld], got '%s'\n", name, lo, hi, v);
        return 2;
    }
    *out = x;
    return 0;
}

static int cmd_data(int argc, char **argv)
{
    if (argc < 1) return usage("data: expected 'stats PATH' or 'synth --out DIR'");
    tema_err err = {0};
    if (!strcmp(argv[0], "stats")) {
        if (argc != 2) return usage("data stats: expected exactly one PATH");
        return tema_dataset_print_stats(argv[1], stdout, &err) == TEMA_OK ? 0 : fail(&err);
    }
    if (strcmp(argv[0], "synth") != 0) return usage("data: unknown subcommand");
    tema_synth_opts o;
    tema_synth_defaults(&o);
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (i + 1 >= argc) return usage("data synth: every option takes a value");
        const char *v = argv[++i];
        long x = 0;
        int rc = 0;
        if (!strcmp(k, "--out")) out = v;
        else if (!strcmp(k, "--preset")) {
            if (!strcmp(v, "food-kitchen")) {
                /* as large as ../shared/data/food-kitchen-c2dsr, for benchmarks */
                o.n_users = 16579;
                o.n_x = 29207;
                o.n_y = 34886;
            } else if (strcmp(v, "small") != 0) {
                fprintf(stderr, "tema: --preset must be 'small' or 'food-kitchen', got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(k, "--seed")) {
            char *end;
            unsigned long long s = strtoull(v, &end, 10);
            if (!*v || *end) return usage("--seed must be a non-negative integer");
            o.seed = s;
        } else if (!strcmp(k, "--users")) { if (!(rc = parse_int_arg(k, v, 10, 10000000, &x))) o.n_users = (int32_t)x; }
        else if (!strcmp(k, "--items-x")) { if (!(rc = parse_int_arg(k, v, 2, 10000000, &x))) o.n_x = (int32_t)x; }
        else if (!strcmp(k, "--items-y")) { if (!(rc = parse_int_arg(k, v, 2, 10000000, &x))) o.n_y = (int32_t)x; }
        else if (!strcmp(k, "--categories")) { if (!(rc = parse_int_arg(k, v, 1, 100000, &x))) o.n_categories = (int32_t)x; }
        else if (!strcmp(k, "--min-len")) { if (!(rc = parse_int_arg(k, v, 3, 10000, &x))) o.min_len = (int32_t)x; }
        else if (!strcmp(k, "--max-len")) { if (!(rc = parse_int_arg(k, v, 3, 10000, &x))) o.max_len = (int32_t)x; }
        else {
            fprintf(stderr, "tema: data synth: unknown option '%s'\n", k);
            return 2;
        }
        if (rc) return rc;
    }
    if (!out) return usage("data synth: --out DIR is required");
    if (o.min_len > o.max_len) return usage("data synth: --min-len must not exceed --max-len");
    if (tema_synth_write(&o, out, &err) != TEMA_OK) return fail(&err);
    fprintf(stderr, "tema: wrote synthetic dataset to %s\n", out);
    return tema_dataset_print_stats(out, stdout, &err) == TEMA_OK ? 0 : fail(&err);
}

/* The lines of usage_text that describe `cmd` (its line and the indented ones below it);
 * false when no command line starts with it. */
static bool print_command_help(const char *cmd, FILE *f)
{
    size_t cl = strlen(cmd);
    bool found = false, inside = false;
    for (const char *p = usage_text; *p;) {
        size_t len = strcspn(p, "\n");
        bool command_line = len > 2 && p[0] == ' ' && p[1] == ' ' && p[2] != ' ';
        if (command_line) inside = !strncmp(p + 2, cmd, cl) && (p[2 + cl] == ' ' || p[2 + cl] == '\n');
        else if (len == 0 || p[0] != ' ') inside = false;
        if (inside) fprintf(f, "%.*s\n", (int)len, p), found = true;
        p += len + (p[len] == '\n');
    }
    return found;
}

/* `tema help CMD` and `tema CMD --help` (or -h): that command's usage, exit 0. */
static int command_help(const char *cmd)
{
    if (!strcmp(cmd, "report")) {
        char *help[] = {"--help"};
        return tema_report_main(1, help);
    }
    printf("usage:\n");
    if (!print_command_help(cmd, stdout)) {
        fprintf(stderr, "tema: unknown command '%s'\n\n", cmd);
        fputs(usage_text, stderr);
        return 2;
    }
    return 0;
}

int tema_cli_main(int argc, char **argv)
{
    if (argc < 2) return usage(NULL);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        if (argc > 2 && strcmp(cmd, "help") == 0) return command_help(argv[2]);
        fputs(usage_text, stdout);
        return 0;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return command_help(cmd);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("tema %s (ABI %d.%d)\n", TEMA_VERSION, TEMA_ABI_MAJOR, TEMA_ABI_MINOR);
        return 0;
    }
    if (!strcmp(cmd, "plugins")) return cmd_plugins(argc - 2, argv + 2);
    if (!strcmp(cmd, "check")) return cmd_experiment(argc - 2, argv + 2, false);
    if (!strcmp(cmd, "run")) return cmd_experiment(argc - 2, argv + 2, true);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 2, argv + 2);
    if (!strcmp(cmd, "data")) return cmd_data(argc - 2, argv + 2);
    if (!strcmp(cmd, "tags")) return tema_tags_cli(argc - 2, argv + 2);
    if (!strcmp(cmd, "manifest")) return cmd_manifest(argc - 2, argv + 2);
    if (!strcmp(cmd, "status")) return cmd_status(argc - 2, argv + 2);
    if (!strcmp(cmd, "results")) return cmd_results(argc - 2, argv + 2);
    if (!strcmp(cmd, "slurm")) return cmd_slurm(argc - 2, argv + 2);
    if (!strcmp(cmd, "report")) return tema_report_main(argc - 2, argv + 2);
    if (!strcmp(cmd, "export")) return tema_export_cli(argc - 2, argv + 2);
    if (!strcmp(cmd, "recommend")) return tema_recommend_cli(argc - 2, argv + 2);
    if (!strcmp(cmd, "plot")) return tema_plot_cli(argc - 2, argv + 2);
    fprintf(stderr, "tema: unknown command '%s'\n\n", cmd);
    fputs(usage_text, stderr);
    return 2;
}
