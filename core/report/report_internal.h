/* core/report/report_internal.h - what the pieces of `tema report` share: the arena, the
 * runs and their groups, the parsed report: block, the built tables, and the functions one
 * piece calls in another (core-internal; the public API is core/report.h).
 *
 * The pieces (report.c: tema_report, which runs the others in this order, and the command):
 *   values.c        the arena, paths; JSON lookups, canonical value text, comparisons, differences
 *   runs.c          run folders: scanning, the manifest, ranks.tsv, epochs.jsonl
 *   groups.c        runs grouped by config up to the seed; the keys in which groups differ
 *   spec.c          the report: block and its tables (or the default table)
 *   tables.c        filling a table's axes and cells from the runs; best per column
 *   significance.c  the three tests of a cell against the baseline's cell
 *   render.c        a table as Markdown, LaTeX, CSV or HTML
 *   timing.c        the timing and memory table
 *   charts.c        bar charts, heatmaps and training curves (PLplot)
 *   html_page.c     the self-contained HTML page
 */
#ifndef TEMA_CORE_REPORT_INTERNAL_H
#define TEMA_CORE_REPORT_INTERNAL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../config.h"
#include "../eval.h"
#include "../util.h"
#include "tema/status.h"

/* ---- arena: everything the report builds lives until the end of tema_report ---------- */

typedef struct arena_block {
    struct arena_block *next;
    max_align_t data[];
} arena_block;

typedef struct arena {
    arena_block *head;
    bool oom;
} arena;

/* NULL (and a->oom set) when out of memory; the memory is zeroed. */
void *rep_alloc(arena *a, size_t n);
/* NULL for NULL, or when out of memory. */
char *rep_strdup(arena *a, const char *s);
void rep_arena_free(arena *a);
/* "dir/name" in the arena. */
char *rep_path_join(arena *a, const char *dir, const char *name);

/* ---- values (values.c) -------------------------------------------------------------- */

typedef struct key_list {
    char **keys;
    int n, cap;
} key_list;

/* The node at a dotted path ("model.encoders.0.dim"); NULL when absent. */
json_object *rep_jget(json_object *o, const char *path);
/* The number at a dotted path (o itself when path is NULL); NaN when absent or no number. */
double rep_jnum(json_object *o, const char *path);
/* Canonical text of a config value into the arena: strings as they are, numbers shortest,
 * maps and lists as compact JSON; an absent value is "null". */
char *rep_jtext(arena *a, json_object *v);
bool rep_parse_number(const char *s, double *out);
/* The YAML spellings of true (true, yes, on) and false (false, no, off), any case. */
bool rep_is_true_word(const char *s);
bool rep_is_false_word(const char *s);
/* s as a part of a file name: its letters (lower-cased) and digits, every run of other
 * characters one '-', none at the ends ("lr=0.001, blocks=2" -> "lr-0-001-blocks-2"); at most
 * REP_SLUG_MAX - 1 bytes, and "x" when nothing is left. */
#define REP_SLUG_MAX 96
void rep_slug(const char *s, char *out, size_t cap);
/* Does a value written in the report block (YAML text) name this config value? Numbers
 * compare as numbers (0.20 == 0.2 == 2e-1), booleans in any YAML spelling. */
bool rep_value_matches(const char *config_text, const char *yaml_text);
/* Natural order: digit runs compare as numbers, so "lr=1e-4" < "lr=2e-4" and "b2" < "b10". */
int rep_natural_cmp(const char *a, const char *b);
/* The first leaf path (outside train.seed) where two configs differ, into out; false if none. */
bool rep_first_diff(json_object *a, json_object *b, const char *prefix, char *out, size_t cap);
/* Adds to *out every leaf path where a and b differ (not only the first), train.seed aside. */
void rep_all_diffs(arena *ar, key_list *out, json_object *a, json_object *b, const char *prefix);

/* ---- the runs and their groups (runs.c, groups.c) ------------------------------------ */

typedef struct rank_case {
    int64_t user;
    int32_t domain;
    int32_t line;
    double rank[TEMA_RANK_RULES];
} rank_case;

typedef struct epoch_point {
    int epoch;
    double loss;
    double seconds;
    double valid_mrr[2];  /* NaN when not evaluated */
} epoch_point;

typedef struct run {
    char *id, *dir;
    json_object *config, *final, *meta;
    int64_t seed;            /* train.seed; -1 when absent */
    int group;
    long order;              /* manifest index, or -1 */
    int ranks_state;         /* 0 not read, 1 read, -1 missing or unreadable */
    rank_case *cases;        /* sorted by (domain, user, line) */
    int64_t n_cases;
    int64_t domain_start[3]; /* cases of domain d: [domain_start[d], domain_start[d + 1]) */
    int epochs_state;
    epoch_point *epochs;
    int n_epochs;
} run;

typedef struct group {
    int *runs;               /* indices into rep->runs, by seed */
    int n_runs;
    char *label;             /* the keys in which it differs from the other groups */
    char *key;               /* config JSON without train.seed */
    char *anchor;            /* "cfg-3" */
    char *slug;              /* rep_slug of the label, unique among the groups */
    char *curves_stem;       /* "<plot_dir>/curves-<slug>" once drawn */
} group;

typedef struct output_file {
    char *path;
} output_file;

/* How a table's LaTeX is set (report.latex, a table's latex: overriding each key). */
typedef struct latex_spec {
    const char *env;         /* "table" or "table*" (spans both columns of a two-column paper) */
    const char *size;        /* a font size command without its backslash ("small"), or NULL */
    bool siunitx;            /* numbers in siunitx \tablenum boxes, aligned on the decimal point */
    bool fit;                /* a tabular wider than the line is scaled down to it (graphicx) */
} latex_spec;

typedef struct report_ctx {
    arena ar;
    FILE *diag;
    char *exp_path, *name, *results_dir, *exp_dir, *out_dir, *plot_dir;
    tema_cfg *yaml;
    const tema_cfg *report_node;
    const char *const *overrides; /* --set of the runs: the manifest is the grid they made */
    int n_overrides;
    run *runs;
    int n_runs;
    group *groups;
    int n_groups;
    bool have_manifest;
    int n_pending;           /* manifest entries not finished */
    int n_stale;             /* finished runs not in the manifest (left out) */
    int n_unfinished;        /* run folders without DONE */
    char **varying;          /* config keys in which the groups differ (no train.seed) */
    int n_varying;
    char **grid_keys;        /* the manifest's varying keys without train.seed, grid order */
    int n_grid_keys;
    output_file *files;
    int n_files, cap_files;
    int n_warnings;
    char rule_for_curves[16];
    const char *domain_name[2]; /* for the curves: the domain labels of the first table that has them */
    bool said_missing_format;   /* the note that a chart format could not be drawn, said once */
    latex_spec latex;           /* report.latex: every table's default, and the timing table's */
} report_ctx;

/* A warning on R->diag ("tema: report: ..."), counted in R->n_warnings (report.c). */
void rep_note(report_ctx *R, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The finished run folders of the experiment (config.json and DONE) into R->runs. */
tema_status rep_scan_runs(report_ctx *R, tema_err *err);
/* Keeps the runs of the experiment's manifest, in its order, when it expands here. */
void rep_apply_manifest(report_ctx *R);
/* ranks.tsv of r, once; a missing file is a note (r->ranks_state -1), a bad one an error. */
tema_status rep_load_ranks(report_ctx *R, run *r, tema_err *err);
/* epochs.jsonl of r, once; a missing or unreadable file leaves r without epochs. */
void rep_load_epochs(report_ctx *R, run *r);
/* Groups the runs (configs equal up to train.seed), finds R->varying, labels the groups. */
tema_status rep_make_groups(report_ctx *R, tema_err *err);
/* Short name of a varying key for labels (see groups.c). */
const char *rep_short_key(report_ctx *R, const char *key);

/* ---- the report: block (spec.c) ------------------------------------------------------- */

typedef struct cond {
    const char *key;
    const char **values;     /* any of these (YAML text) */
    int n_values;
} cond;

typedef enum axis_kind { AX_KEY, AX_DOMAIN, AX_EXPLICIT } axis_kind;

/* One value of an axis: a row, or one level of a column. */
typedef struct axis_value {
    const char *label;
    const char *raw;         /* the config value (AX_KEY), "X"/"Y" (AX_DOMAIN), NULL (AX_EXPLICIT) */
    cond *conds;             /* AX_EXPLICIT: its where; AX_KEY: key == raw */
    int n_conds;
    int domain;              /* AX_DOMAIN: 0 or 1; else -1 */
} axis_value;

typedef struct axis {
    axis_kind kind;
    const char *key;
    const tema_cfg *labels;  /* map VALUE -> LABEL, or NULL */
    const tema_cfg *node;    /* where it was written (NULL for defaults) */
    axis_value *vals;        /* AX_EXPLICIT: from the spec; else filled from the runs */
    int n_vals;
} axis;

typedef struct table_spec {
    const char *name, *title, *row_title;
    const tema_cfg *node;
    axis *rows;
    int n_rows;
    axis *cols;              /* the domain axis is always among them */
    int n_cols;
    const char **domains;    /* ["X", "Y"] or a subset */
    int n_domains;
    tema_metric_spec metrics;/* n == 0: the runs' eval.metrics */
    tema_rank_rule rule;
    const char *split;       /* "test" or "valid" */
    const char *baseline;
    const tema_cfg *baseline_node;
    cond *where;
    int n_where;
    bool percent, bars;
    int digits;
    double alpha;
    int heatmap;             /* -1 auto, 0 off, 1 on */
    char heatmap_metric[16];
    latex_spec latex;
} table_spec;

/* ---- built tables (tables.c, significance.c) ------------------------------------------ */

enum { MARK_USER_T = 1, MARK_WILCOXON = 2, MARK_RUN_T = 4 };

typedef struct cell {
    int *runs;
    int n_runs;
    double mean[TEMA_MAX_METRICS], std[TEMA_MAX_METRICS];
    int n_vals[TEMA_MAX_METRICS];
    double p_user_t[TEMA_MAX_METRICS], p_user_w[TEMA_MAX_METRICS], p_run_t[TEMA_MAX_METRICS];
    int64_t n_user_pairs;
    int n_run_pairs;
    unsigned char mark[TEMA_MAX_METRICS];
    unsigned char best[TEMA_MAX_METRICS];   /* 1 best, 2 second best in its column */
} cell;

typedef struct combo {
    int *vi;                 /* value index per axis */
    const char *label;
    int domain;              /* columns: 0 X, 1 Y */
} combo;

typedef struct table {
    table_spec spec;
    combo *rows;
    int n_rows;
    combo *cols;
    int n_cols;
    cell *cells;             /* [row * n_cols + col] */
    int baseline;            /* row index, -1 without */
    int *run_ok;             /* runs passing `where` */
    int **axis_run_val;      /* per AX_KEY axis (rows then columns): value index of each run */
    int seeds_min, seeds_max;
    int rows_with_values;    /* bold needs 2, the second best 3 */
    bool user_tests;         /* split test and ranks read */
    char *heatmap_stems[2];
    char *bars_stem;
} table;

/* An error located at node's line in the experiment file (TEMA_EINVAL). */
tema_status rep_spec_fail(tema_err *err, const tema_cfg *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Usable as a file name: letters, digits, '-', '_', '.' (not "." or ".."). */
bool rep_valid_name(const char *s);
/* The report: block: its tables (only their specs filled; the default table without a
 * tables: list) and the curves and timing switches. */
tema_status rep_report_block(report_ctx *R, table **tables, int *n_tables, bool *curves, bool *timing,
                             tema_err *err);
/* Fills the axes, rows, columns and cells of a table from its spec (index: in report.tables). */
tema_status rep_build_table(report_ctx *R, table *T, int index, tema_err *err);
/* Metric m of one run: final.json SPLIT.DOMAIN.RULE.METRIC; NaN when absent. */
double rep_run_metric(const run *r, const table_spec *t, int domain, int m);
/* The three tests of cell c against the baseline's cell in the same column, and its marks. */
tema_status rep_test_cell(report_ctx *R, table *T, cell *c, const cell *base, int domain, tema_err *err);

/* ---- output (render.c, timing.c, charts.c, html_page.c) -------------------------------- */

typedef enum fmt { FMT_MD, FMT_TEX, FMT_HTML } fmt;

/* s with the characters that mean something in the format escaped. */
void rep_add_escaped(tema_sb *b, const char *s, fmt f);
void rep_add_csv_field(tema_sb *b, const char *s);
/* %.10g, or nothing for NaN and infinities. */
void rep_add_csv_num(tema_sb *b, double v);
/* "ndcg@10" -> "NDCG@10". */
void rep_metric_title(const char *name, char *buf, size_t cap);
/* Header of the label column: row_title, else the short names of the row keys. */
const char *rep_row_title(report_ctx *R, const table *T);
void rep_render_md(report_ctx *R, const table *T, tema_sb *b);
void rep_render_tex(report_ctx *R, const table *T, tema_sb *b);
/* The start of a LaTeX float in l's environment, after a comment naming the packages it
 * needs; the caller ends it with \end{l->env}. */
void rep_tex_begin(tema_sb *b, const latex_spec *l, bool siunitx);
/* The tabular with its top and bottom rules, in l's type size; with l->fit inside a
 * \resizebox that shrinks it to the line width when it is wider (never up). */
void rep_tex_tabular_begin(tema_sb *b, const latex_spec *l, const char *columns);
void rep_tex_tabular_end(tema_sb *b, const latex_spec *l);
void rep_render_csv(report_ctx *R, const table *T, tema_sb *b);
void rep_render_html_table(report_ctx *R, const table *T, tema_sb *b);
/* The timing and memory table of every group in all four formats at once. */
void rep_render_timing(report_ctx *R, tema_sb *md, tema_sb *tex, tema_sb *csv, tema_sb *html);
/* The charts: failures to draw are notes; only a bad heatmap: metric is an error. */
void rep_table_bars(report_ctx *R, table *T);
tema_status rep_table_heatmaps(report_ctx *R, table *T, int index, tema_err *err);
/* A note naming chart files in plots/ that this report did not write (stale names). */
void rep_note_stale_plots(report_ctx *R);
/* Training curves of a group, named by its slug; R->domain_name titles the panels. */
void rep_group_curves(report_ctx *R, group *g);
/* The whole page; timing_html NULL without the timing table. */
void rep_render_html(report_ctx *R, table *tables, int n_tables, const tema_sb *timing_html, tema_sb *b);

#endif
