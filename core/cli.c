/* core/cli.c - subcommands of the tema program. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dataset.h"
#include "registry.h"
#include "tema_build_config.h"
#include "train.h"

static const char usage_text[] =
    "usage: tema <command> [options]\n"
    "\n"
    "commands:\n"
    "  run EXP.yaml [--set key.path=value]... [--results DIR] [--force]\n"
    "                         validate and run an experiment (results in DIR, default results/)\n"
    "  check EXP.yaml [--set key.path=value]... [--print]\n"
    "                         validate an experiment without running it\n"
    "  plugins [--describe NAME]\n"
    "                         list the plugins found, or one plugin's options\n"
    "  data stats PATH        statistics of a dataset folder or archive\n"
    "  data synth --out DIR [--seed N] [--users N] [--items-x N] [--items-y N]\n"
    "             [--categories N] [--min-len N] [--max-len N] [--preset small|food-kitchen]\n"
    "                         write a seeded synthetic two-domain dataset\n"
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
    tema_registry *r = tema_registry_new();
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

typedef struct exp_args {
    const char *path;
    const char *overrides[128];
    int n_overrides;
    const char *results;
    bool force, print;
} exp_args;

static int parse_exp_args(int argc, char **argv, exp_args *a, bool run)
{
    memset(a, 0, sizeof *a);
    a->results = "results";
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            if (a->n_overrides == 128) return usage("too many --set options");
            a->overrides[a->n_overrides++] = argv[++i];
        } else if (!strncmp(argv[i], "--set=", 6)) {
            if (a->n_overrides == 128) return usage("too many --set options");
            a->overrides[a->n_overrides++] = argv[i] + 6;
        } else if (run && !strcmp(argv[i], "--results") && i + 1 < argc) {
            a->results = argv[++i];
        } else if (run && !strcmp(argv[i], "--force")) {
            a->force = true;
        } else if (!run && !strcmp(argv[i], "--print")) {
            a->print = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "tema: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!a->path) {
            a->path = argv[i];
        } else {
            return usage("only one experiment file may be given");
        }
    }
    if (!a->path) return usage("missing the experiment file (EXP.yaml)");
    return 0;
}

static int cmd_experiment(int argc, char **argv, bool run)
{
    exp_args a;
    int rc = parse_exp_args(argc, argv, &a, run);
    if (rc) return rc;
    tema_registry *r = load_registry(false);
    if (!r) return 1;
    tema_err err = {0};
    tema_cfg *cfg = NULL;
    if (tema_cfg_resolve(a.path, a.overrides, a.n_overrides, r, stderr, &cfg, &err) != TEMA_OK) {
        rc = fail(&err);
    } else if (!run) {
        if (a.print) {
            char *y = tema_cfg_to_yaml(cfg);
            if (y) fputs(y, stdout);
            free(y);
        }
        printf("%s: ok\n", a.path);
    } else {
        tema_run_opts o = {.results_dir = a.results, .config_path = a.path, .force = a.force};
        if (tema_run_experiment(cfg, r, &o, &err) != TEMA_OK) rc = fail(&err);
    }
    tema_cfg_free(cfg);
    tema_registry_free(r);
    return rc;
}

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

int tema_cli_main(int argc, char **argv)
{
    if (argc < 2) return usage(NULL);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("tema %s (ABI %d.%d)\n", TEMA_VERSION, TEMA_ABI_MAJOR, TEMA_ABI_MINOR);
        return 0;
    }
    if (!strcmp(cmd, "plugins")) return cmd_plugins(argc - 2, argv + 2);
    if (!strcmp(cmd, "check")) return cmd_experiment(argc - 2, argv + 2, false);
    if (!strcmp(cmd, "run")) return cmd_experiment(argc - 2, argv + 2, true);
    if (!strcmp(cmd, "data")) return cmd_data(argc - 2, argv + 2);
    fprintf(stderr, "tema: unknown command '%s'\n\n", cmd);
    fputs(usage_text, stderr);
    return 2;
}
