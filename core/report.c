/* core/report.c - `tema report`: tables with significance marks, timing, PLplot charts and
 * an HTML page, regenerated from the run folders of an experiment (see report.h).
 *
 * Over 1,000 lines: tables, statistics marks, timing, plots and HTML are its seams; the
 * split is part of issue 11, the house redesign.
 */
#include "report.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "eval.h"
#include "grid.h"
#include "plot.h"
#include "registry.h"
#include "stats.h"
#include "util.h"

/* ---- arena: everything the report builds lives until the end of tema_report ---------- */

typedef struct arena_block {
    struct arena_block *next;
    max_align_t data[];
} arena_block;

typedef struct arena {
    arena_block *head;
    bool oom;
} arena;

static void *ar_alloc(arena *a, size_t n)
{
    arena_block *b = calloc(1, sizeof *b + (n ? n : 1));
    if (!b) {
        a->oom = true;
        return NULL;
    }
    b->next = a->head;
    a->head = b;
    return b->data;
}

static char *ar_strdup(arena *a, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *p = ar_alloc(a, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static void ar_free(arena *a)
{
    for (arena_block *b = a->head, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    a->head = NULL;
}

/* ---- values: JSON lookups, canonical text, comparisons -------------------------------- */

/* The node at a dotted path ("model.encoders.0.dim"); NULL when absent. */
static json_object *jget(json_object *o, const char *path)
{
    const char *p = path;
    while (o && *p) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        char key[256];
        if (len >= sizeof key)
            return NULL;
        memcpy(key, p, len);
        key[len] = '\0';
        if (json_object_is_type(o, json_type_object)) {
            json_object *next = NULL;
            if (!json_object_object_get_ex(o, key, &next))
                return NULL;
            o = next;
        } else if (json_object_is_type(o, json_type_array)) {
            char *end;
            long i = strtol(key, &end, 10);
            if (!*key || *end || i < 0 || (size_t)i >= json_object_array_length(o))
                return NULL;
            o = json_object_array_get_idx(o, (size_t)i);
        } else {
            return NULL;
        }
        p = dot ? dot + 1 : p + len;
    }
    return o;
}

static double jnum(json_object *o, const char *path)
{
    json_object *v = path ? jget(o, path) : o;
    if (!v || !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
        return NAN;
    return json_object_get_double(v);
}

/* Shortest %g that reads back exactly, as core/results.c writes numbers. */
static void fmt_double(double v, char *buf, size_t cap)
{
    snprintf(buf, cap, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, cap, "%.17g", v);
}

/* Canonical text of a config value into the arena: strings as they are, numbers shortest,
 * maps and lists as compact JSON; an absent value is "null". */
static char *jtext(arena *a, json_object *v)
{
    char buf[64];
    switch (v ? json_object_get_type(v) : json_type_null) {
    case json_type_null:
        return ar_strdup(a, "null");
    case json_type_boolean:
        return ar_strdup(a, json_object_get_boolean(v) ? "true" : "false");
    case json_type_int:
        snprintf(buf, sizeof buf, "%lld", (long long)json_object_get_int64(v));
        return ar_strdup(a, buf);
    case json_type_double:
        fmt_double(json_object_get_double(v), buf, sizeof buf);
        return ar_strdup(a, buf);
    case json_type_string:
        return ar_strdup(a, json_object_get_string(v));
    default:
        return ar_strdup(a, json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    }
}

static bool parse_number(const char *s, double *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || isnan(v))
        return false;
    *out = v;
    return true;
}

static bool is_true_word(const char *s)
{
    return !strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on");
}
static bool is_false_word(const char *s)
{
    return !strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off");
}

/* Does a value written in the report block (YAML text) name this config value? Numbers
 * compare as numbers (0.20 == 0.2 == 2e-1), booleans in any YAML spelling. */
static bool value_matches(const char *config_text, const char *yaml_text)
{
    if (!strcmp(config_text, yaml_text))
        return true;
    double a, b;
    if (parse_number(config_text, &a) && parse_number(yaml_text, &b))
        return a == b || fabs(a - b) <= 1e-12 * fmax(fabs(a), fabs(b));
    if (is_true_word(config_text) && is_true_word(yaml_text))
        return true;
    if (is_false_word(config_text) && is_false_word(yaml_text))
        return true;
    return false;
}

/* Natural order: digit runs compare as numbers, so "lr=1e-4" < "lr=2e-4" and "b2" < "b10". */
static int natural_cmp(const char *a, const char *b)
{
    double x, y;
    if (parse_number(a, &x) && parse_number(b, &y))
        return (x > y) - (x < y);
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            char *ea, *eb;
            double va = strtod(a, &ea), vb = strtod(b, &eb);
            if (va != vb)
                return va < vb ? -1 : 1;
            a = ea;
            b = eb;
            continue;
        }
        if (*a != *b)
            return (unsigned char)*a - (unsigned char)*b;
        a++;
        b++;
    }
    return (unsigned char)*a - (unsigned char)*b;
}

/* The first leaf path (outside train.seed) where two configs differ, into out; false if none. */
static bool first_diff(json_object *a, json_object *b, const char *prefix, char *out, size_t cap)
{
    if (!strcmp(prefix, "train.seed"))
        return false;
    json_type ta = a ? json_object_get_type(a) : json_type_null, tb = b ? json_object_get_type(b) : json_type_null;
    if (ta == json_type_object && tb == json_type_object) {
        char path[512];
        json_object_object_foreach(a, k, va) {
            snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", k);
            json_object *vb = NULL;
            json_object_object_get_ex(b, k, &vb);
            if (first_diff(va, vb, path, out, cap))
                return true;
        }
        json_object_object_foreach(b, k2, vb2) {
            (void)vb2;
            if (!json_object_object_get_ex(a, k2, NULL)) {
                snprintf(out, cap, "%s%s%s", prefix, *prefix ? "." : "", k2);
                return true;
            }
        }
        return false;
    }
    if (ta == json_type_array && tb == json_type_array) {
        size_t na = json_object_array_length(a), nb = json_object_array_length(b);
        char path[512];
        for (size_t i = 0; i < na || i < nb; i++) {
            snprintf(path, sizeof path, "%s%s%zu", prefix, *prefix ? "." : "", i);
            if (i >= na || i >= nb) {
                snprintf(out, cap, "%s", path);
                return true;
            }
            if (first_diff(json_object_array_get_idx(a, i), json_object_array_get_idx(b, i), path, out, cap))
                return true;
        }
        return false;
    }
    if (!json_object_equal(a, b)) {
        /* 1 and 1.0 are the same setting */
        double x = jnum(a, NULL), y = jnum(b, NULL);
        if (!(isfinite(x) && x == y)) {
            snprintf(out, cap, "%s", *prefix ? prefix : "(the whole config)");
            return true;
        }
    }
    return false;
}

/* ---- the runs ------------------------------------------------------------------------ */

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
    char *curves_stem;       /* "curves-3" once drawn */
} group;

typedef struct output_file {
    char *path;
} output_file;

typedef struct report_ctx {
    arena ar;
    FILE *diag;
    char *exp_path, *name, *results_dir, *exp_dir, *out_dir, *plot_dir;
    tema_cfg *yaml;
    const tema_cfg *report_node;
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
} report_ctx;

static void note(report_ctx *R, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(report_ctx *R, const char *fmt, ...)
{
    R->n_warnings++;
    if (!R->diag)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("tema: report: ", R->diag);
    vfprintf(R->diag, fmt, ap);
    fputc('\n', R->diag);
    va_end(ap);
}

static char *path_join(arena *a, const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = ar_alloc(a, n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Parses dir/name as JSON; NULL (and *missing = true) when the file is absent. */
static tema_status read_json(const char *dir, const char *name, json_object **out, bool *missing, tema_err *err)
{
    *out = NULL;
    if (missing)
        *missing = false;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = NULL;
    size_t len = 0;
    struct stat st;
    if (stat(path, &st) != 0) {
        if (missing)
            *missing = true;
        return TEMA_OK;
    }
    tema_status s = tema_read_file(path, &text, &len, err);
    if (s != TEMA_OK)
        return s;
    json_tokener *tok = json_tokener_new();
    if (!tok) {
        free(text);
        return tema_fail(err, TEMA_ENOMEM, "%s: out of memory", path);
    }
    json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error je = json_tokener_get_error(tok);
    json_tokener_free(tok);
    free(text);
    if (!o || je != json_tokener_success) {
        if (o)
            json_object_put(o);
        return tema_fail(err, TEMA_EFORMAT, "%s: not valid JSON (%s); was the run interrupted while writing it? "
                         "Re-run it with tema run --force", path, json_tokener_error_desc(je));
    }
    *out = o;
    return TEMA_OK;
}

static int cmp_case(const void *pa, const void *pb)
{
    const rank_case *a = pa, *b = pb;
    if (a->domain != b->domain)
        return a->domain < b->domain ? -1 : 1;
    if (a->user != b->user)
        return a->user < b->user ? -1 : 1;
    return (a->line > b->line) - (a->line < b->line);
}

/* ranks.tsv: "user domain target optimistic pessimistic mid" after a header line. */
static tema_status load_ranks(report_ctx *R, run *r, tema_err *err)
{
    if (r->ranks_state)
        return TEMA_OK;
    r->ranks_state = -1;
    char path[4096];
    snprintf(path, sizeof path, "%s/ranks.tsv", r->dir);
    struct stat st;
    if (stat(path, &st) != 0) {
        note(R, "%s is missing: the per-user tests leave this run out", path);
        return TEMA_OK;
    }
    char *text = NULL;
    size_t len = 0;
    tema_status s = tema_read_file(path, &text, &len, err);
    if (s != TEMA_OK)
        return s;
    int64_t cap = 1;
    for (size_t i = 0; i < len; i++)
        cap += text[i] == '\n';
    r->cases = ar_alloc(&R->ar, (size_t)cap * sizeof *r->cases);
    if (!r->cases) {
        free(text);
        return tema_fail(err, TEMA_ENOMEM, "%s: out of memory", path);
    }
    int line_no = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        if (line_no == 1 && !strncmp(line, "user", 4))
            continue;
        if (!*line || *line == '\r')
            continue;
        rank_case c = {.line = line_no};
        char dom[8] = "";
        int target = 0;
        if (sscanf(line, "%" SCNd64 " %7s %d %lf %lf %lf", &c.user, dom, &target, &c.rank[0], &c.rank[1],
                   &c.rank[2]) != 6 ||
            (strcmp(dom, "X") && strcmp(dom, "Y"))) {
            free(text);
            return tema_fail(err, TEMA_EFORMAT,
                             "%s:%d: expected 'user domain target optimistic pessimistic mid' with domain X or "
                             "Y; re-run the run to rewrite it",
                             path, line_no);
        }
        c.domain = dom[0] == 'Y';
        r->cases[r->n_cases++] = c;
    }
    free(text);
    qsort(r->cases, (size_t)r->n_cases, sizeof *r->cases, cmp_case);
    r->domain_start[0] = 0;
    int64_t k = 0;
    while (k < r->n_cases && r->cases[k].domain == 0)
        k++;
    r->domain_start[1] = k;
    r->domain_start[2] = r->n_cases;
    r->ranks_state = 1;
    return TEMA_OK;
}

/* epochs.jsonl: train loss and validation MRR (rule of the first table) per epoch. */
static void load_epochs(report_ctx *R, run *r)
{
    if (r->epochs_state)
        return;
    r->epochs_state = -1;
    char path[4096];
    snprintf(path, sizeof path, "%s/epochs.jsonl", r->dir);
    char *text = NULL;
    size_t len = 0;
    tema_err e = {0};
    struct stat st;
    if (stat(path, &st) != 0 || tema_read_file(path, &text, &len, &e) != TEMA_OK)
        return;
    int cap = 1;
    for (size_t i = 0; i < len; i++)
        cap += text[i] == '\n';
    r->epochs = ar_alloc(&R->ar, (size_t)cap * sizeof *r->epochs);
    if (!r->epochs) {
        free(text);
        return;
    }
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_object *o = json_tokener_parse(line);
        if (!o)
            continue; /* a line cut by a crash: the rest is still worth plotting */
        epoch_point p = {.epoch = (int)jnum(o, "epoch"), .loss = jnum(o, "train_loss"), .seconds = jnum(o, "seconds")};
        for (int d = 0; d < 2; d++) {
            char key[64];
            snprintf(key, sizeof key, "valid.%s.%s.mrr", d ? "Y" : "X", R->rule_for_curves);
            p.valid_mrr[d] = jnum(o, key);
        }
        json_object_put(o);
        if (p.epoch > 0)
            r->epochs[r->n_epochs++] = p;
    }
    free(text);
    r->epochs_state = 1;
}

static int cmp_str_natural(const void *a, const void *b)
{
    return natural_cmp(*(char *const *)a, *(char *const *)b);
}

/* Finished run folders of the experiment (those with config.json and DONE). */
static tema_status scan_runs(report_ctx *R, tema_err *err)
{
    DIR *d = opendir(R->exp_dir);
    if (!d)
        return tema_fail(err, TEMA_ENOTFOUND,
                         "%s: no results for experiment '%s' (%s); run it first with tema run %s, or point "
                         "--results at the folder that holds %s/",
                         R->exp_dir, R->name, strerror(errno), R->exp_path, R->name);
    int cap = 16, n = 0;
    char **ids = malloc((size_t)cap * sizeof *ids);
    int unfinished = 0;
    for (struct dirent *e; ids && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char *dir = path_join(&R->ar, R->exp_dir, e->d_name);
        if (!dir || !tema_file_exists(dir, "config.json"))
            continue;
        if (!tema_file_exists(dir, "DONE")) {
            unfinished++;
            continue;
        }
        if (n == cap) {
            char **grown = realloc(ids, (size_t)(cap *= 2) * sizeof *ids);
            if (!grown) {
                free(ids);
                ids = NULL;
                break;
            }
            ids = grown;
        }
        ids[n++] = ar_strdup(&R->ar, e->d_name);
    }
    closedir(d);
    if (!ids || R->ar.oom) {
        free(ids);
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    }
    qsort(ids, (size_t)n, sizeof *ids, cmp_str_natural);
    R->runs = ar_alloc(&R->ar, (size_t)(n ? n : 1) * sizeof *R->runs);
    if (!R->runs) {
        free(ids);
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    }
    tema_status st = TEMA_OK;
    for (int i = 0; i < n && st == TEMA_OK; i++) {
        run *r = &R->runs[R->n_runs];
        memset(r, 0, sizeof *r);
        r->id = ids[i];
        r->dir = path_join(&R->ar, R->exp_dir, ids[i]);
        r->order = -1;
        bool missing = false;
        if ((st = read_json(r->dir, "config.json", &r->config, NULL, err)) != TEMA_OK)
            break;
        if ((st = read_json(r->dir, "final.json", &r->final, &missing, err)) != TEMA_OK)
            break;
        if (missing) {
            note(R, "%s has DONE but no final.json: left out; re-run it with tema run --force", r->dir);
            json_object_put(r->config);
            continue;
        }
        if ((st = read_json(r->dir, "meta.json", &r->meta, NULL, err)) != TEMA_OK)
            break;
        json_object *seed = jget(r->config, "train.seed");
        r->seed = seed ? json_object_get_int64(seed) : -1;
        R->n_runs++;
    }
    free(ids);
    R->n_unfinished = unfinished;
    return st;
}

/* Runs of the manifest only, in its order; unfinished entries are counted as pending. */
static void apply_manifest(report_ctx *R)
{
    tema_registry *reg = tema_registry_new();
    if (!reg)
        return;
    tema_registry_scan(reg);
    tema_grid *g = NULL;
    tema_err e = {0};
    if (tema_grid_expand(R->exp_path, NULL, 0, reg, R->results_dir, NULL, &g, &e) != TEMA_OK) {
        note(R, "cannot expand %s into its runs here (%s); reporting every finished run under %s", R->exp_path,
             e.msg, R->exp_dir);
        tema_registry_free(reg);
        return;
    }
    R->have_manifest = true;
    R->grid_keys = ar_alloc(&R->ar, (g->n_keys + 1) * sizeof *R->grid_keys);
    for (size_t k = 0; R->grid_keys && k < g->n_keys; k++)
        if (strcmp(g->keys[k], "train.seed"))
            R->grid_keys[R->n_grid_keys++] = ar_strdup(&R->ar, g->keys[k]);
    for (size_t i = 0; i < g->n_runs; i++) {
        bool found = false;
        for (int k = 0; k < R->n_runs; k++)
            if (!strcmp(R->runs[k].id, g->runs[i].id)) {
                R->runs[k].order = (long)i;
                found = true;
            }
        if (!found)
            R->n_pending++;
    }
    tema_grid_free(g);
    tema_registry_free(reg);
    int kept = 0;
    for (int k = 0; k < R->n_runs; k++) {
        if (R->runs[k].order < 0) {
            R->n_stale++;
            json_object_put(R->runs[k].config);
            json_object_put(R->runs[k].final);
            json_object_put(R->runs[k].meta);
            continue;
        }
        R->runs[kept++] = R->runs[k];
    }
    R->n_runs = kept;
    if (R->n_stale)
        note(R, "%d finished run(s) under %s are not in the current grid of %s (an earlier version?): left out; "
             "--all-runs includes them", R->n_stale, R->exp_dir, R->exp_path);
}

static int cmp_run_order(const void *pa, const void *pb)
{
    const run *a = pa, *b = pb;
    if (a->order != b->order)
        return a->order < b->order ? -1 : 1;
    if (a->group != b->group)
        return a->group < b->group ? -1 : 1;
    return (a->seed > b->seed) - (a->seed < b->seed);
}

typedef struct key_list {
    char **keys;
    int n, cap;
} key_list;

static void key_list_add(arena *ar, key_list *l, const char *key)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->keys[i], key))
            return;
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 8;
        char **grown = ar_alloc(ar, (size_t)nc * sizeof *grown);
        if (!grown)
            return;
        if (l->n)
            memcpy(grown, l->keys, (size_t)l->n * sizeof *grown);
        l->keys = grown;
        l->cap = nc;
    }
    char *k = ar_strdup(ar, key);
    if (k)
        l->keys[l->n++] = k;
}

/* Collects every leaf path where a and b differ (not only the first), train.seed aside. */
static void all_diffs(arena *ar, key_list *out, json_object *a, json_object *b, const char *prefix)
{
    if (!strcmp(prefix, "train.seed"))
        return;
    json_type ta = a ? json_object_get_type(a) : json_type_null, tb = b ? json_object_get_type(b) : json_type_null;
    char path[512];
    if (ta == json_type_object && tb == json_type_object) {
        json_object_object_foreach(a, k, va) {
            snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", k);
            json_object *vb = NULL;
            json_object_object_get_ex(b, k, &vb);
            all_diffs(ar, out, va, vb, path);
        }
        json_object_object_foreach(b, k2, vb2) {
            if (json_object_object_get_ex(a, k2, NULL))
                continue;
            snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", k2);
            all_diffs(ar, out, NULL, vb2, path);
        }
        return;
    }
    if (ta == json_type_array && tb == json_type_array) {
        size_t na = json_object_array_length(a), nb = json_object_array_length(b);
        for (size_t i = 0; i < na || i < nb; i++) {
            snprintf(path, sizeof path, "%s%s%zu", prefix, *prefix ? "." : "", i);
            all_diffs(ar, out, i < na ? json_object_array_get_idx(a, i) : NULL,
                      i < nb ? json_object_array_get_idx(b, i) : NULL, path);
        }
        return;
    }
    char one[512];
    if (first_diff(a, b, prefix, one, sizeof one))
        key_list_add(ar, out, *prefix ? prefix : one);
}

/* The name a key goes by in labels: its last part; for a plugin choice the part before
 * (model.tag_repr.plugin is "tag_repr": "plugin=weighted" would not say which plugin); a list
 * index keeps its list's name (model.encoders.1.plugin is "encoders.1"). */
static size_t key_name(const char *key, const char **name)
{
    size_t end = strlen(key), start;
    const char *dot = strrchr(key, '.');
    if (dot && !strcmp(dot + 1, "plugin"))
        end = (size_t)(dot - key);
    for (start = end; start > 0 && key[start - 1] != '.'; start--) {}
    if (start > 1 && strspn(key + start, "0123456789") == end - start)
        for (start--; start > 0 && key[start - 1] != '.'; start--) {}
    if (start == end) /* an empty part: the whole key */
        start = 0, end = strlen(key);
    *name = key + start;
    return end - start;
}

/* Short name of a key for labels: its name, or the whole path when two varying keys go by
 * the same name (model.attention.dropout vs model.encoders.0.dropout; a sub-config and its
 * own .plugin are one thing). */
static const char *short_key(report_ctx *R, const char *key)
{
    const char *name, *other;
    size_t n = key_name(key, &name);
    for (int i = 0; i < R->n_varying; i++) {
        const char *o = R->varying[i];
        size_t lo = strlen(o), lk = strlen(key);
        bool same = !strcmp(o, key) || (lo == lk + 7 && !strncmp(o, key, lk) && !strcmp(o + lk, ".plugin")) ||
                    (lk == lo + 7 && !strncmp(key, o, lo) && !strcmp(key + lo, ".plugin"));
        if (!same && key_name(o, &other) == n && !strncmp(other, name, n))
            return key;
    }
    if (!name[n])
        return name;
    char *out = ar_alloc(&R->ar, n + 1);
    if (!out)
        return key;
    memcpy(out, name, n);
    out[n] = '\0';
    return out;
}

/* Leaf paths of a config in document order, each as "\nPATH\n" searchable. */
static void leaf_paths(json_object *o, const char *prefix, tema_sb *out)
{
    char path[512];
    if (o && json_object_is_type(o, json_type_object)) {
        json_object_object_foreach(o, k, v) {
            snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", k);
            leaf_paths(v, path, out);
        }
    } else if (o && json_object_is_type(o, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(o); i++) {
            snprintf(path, sizeof path, "%s%s%zu", prefix, *prefix ? "." : "", i);
            leaf_paths(json_object_array_get_idx(o, i), path, out);
        }
    } else {
        tema_sb_printf(out, "%s\n", prefix);
    }
}

/* Rank of a varying key for labels: grid order first (a key under a grid key sorts with it),
 * then the order of the config itself. */
static long varying_rank(const report_ctx *R, const char *key, const char *doc)
{
    long grid = R->n_grid_keys;
    for (int k = 0; k < R->n_grid_keys; k++) {
        size_t n = strlen(R->grid_keys[k]);
        if (!strncmp(key, R->grid_keys[k], n) && (key[n] == '\0' || key[n] == '.')) {
            grid = k;
            break;
        }
    }
    char needle[520];
    const char *dot = strrchr(key, '.');
    bool plugin = !strcmp(dot ? dot + 1 : key, "plugin");
    if (plugin && dot) /* "model.attention.plugin" sorts before "model.attention.blocks" */
        snprintf(needle, sizeof needle, "\n%.*s.", (int)(dot - key), key);
    else
        snprintf(needle, sizeof needle, "\n%s\n", key);
    const char *at = doc ? strstr(doc, needle) : NULL;
    long pos = at ? (long)(at - doc) * 2 - plugin : 1L << 30;
    return grid * (1L << 31) + pos;
}

static void sort_varying(report_ctx *R)
{
    if (R->n_varying < 2 || R->n_runs == 0)
        return;
    tema_sb doc = {0};
    tema_sb_add(&doc, "\n");
    leaf_paths(R->runs[0].config, "", &doc);
    for (int i = 1; i < R->n_varying; i++)
        for (int j = i; j > 0 && varying_rank(R, R->varying[j - 1], doc.p) > varying_rank(R, R->varying[j], doc.p); j--) {
            char *t = R->varying[j];
            R->varying[j] = R->varying[j - 1];
            R->varying[j - 1] = t;
        }
    tema_sb_free(&doc);
}

/* Groups = runs whose configs are equal up to train.seed (the cells of a grid). */
static tema_status make_groups(report_ctx *R, tema_err *err)
{
    qsort(R->runs, (size_t)R->n_runs, sizeof *R->runs, cmp_run_order); /* manifest order first */
    R->groups = ar_alloc(&R->ar, (size_t)(R->n_runs ? R->n_runs : 1) * sizeof *R->groups);
    if (!R->groups)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    for (int i = 0; i < R->n_runs; i++) {
        run *r = &R->runs[i];
        json_object *copy = NULL;
        if (json_object_deep_copy(r->config, &copy, NULL) != 0)
            return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
        json_object *train = jget(copy, "train");
        if (train && json_object_is_type(train, json_type_object))
            json_object_object_del(train, "seed");
        char *key = ar_strdup(&R->ar, json_object_to_json_string_ext(copy, JSON_C_TO_STRING_PLAIN));
        json_object_put(copy);
        if (!key)
            return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
        int g = 0;
        while (g < R->n_groups && strcmp(R->groups[g].key, key))
            g++;
        if (g == R->n_groups) {
            memset(&R->groups[g], 0, sizeof R->groups[g]);
            R->groups[g].key = key;
            R->groups[g].runs = ar_alloc(&R->ar, (size_t)R->n_runs * sizeof(int));
            if (!R->groups[g].runs)
                return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
            R->n_groups++;
        }
        r->group = g;
    }
    key_list diffs = {0};
    for (int g = 1; g < R->n_groups; g++) {
        int a = -1, b = -1;
        for (int i = 0; i < R->n_runs; i++) {
            if (R->runs[i].group == 0 && a < 0)
                a = i;
            if (R->runs[i].group == g && b < 0)
                b = i;
        }
        all_diffs(&R->ar, &diffs, R->runs[a].config, R->runs[b].config, "");
    }
    /* keep the keys that tell groups apart: a plugin's own option (attention.heads when one
     * group runs pop) is no label unless it differs between the groups that have it */
    R->varying = diffs.keys;
    R->n_varying = 0;
    for (int k = 0; k < diffs.n; k++) {
        char *key = diffs.keys[k];
        const char *dot = strrchr(key, '.');
        bool keep = !strcmp(dot ? dot + 1 : key, "plugin");
        const char *seen = NULL;
        for (int g = 0; !keep && g < R->n_groups; g++) {
            int first = -1;
            for (int i = 0; i < R->n_runs && first < 0; i++)
                if (R->runs[i].group == g)
                    first = i;
            json_object *v = jget(R->runs[first].config, key);
            if (!v)
                continue;
            char *t = jtext(&R->ar, v);
            if (seen && t && strcmp(seen, t))
                keep = true;
            if (!seen)
                seen = t;
        }
        if (keep)
            R->varying[R->n_varying++] = key;
    }
    sort_varying(R);
    /* Labels from the varying keys; then order the groups: manifest order, else labels. */
    for (int g = 0; g < R->n_groups; g++) {
        int first = -1;
        for (int i = 0; i < R->n_runs && first < 0; i++)
            if (R->runs[i].group == g)
                first = i;
        tema_sb lab = {0};
        for (int k = 0; k < R->n_varying; k++) {
            json_object *v = jget(R->runs[first].config, R->varying[k]);
            if (!v)
                continue;
            char *t = jtext(&R->ar, v);
            tema_sb_printf(&lab, "%s%s=%s", lab.n ? ", " : "", short_key(R, R->varying[k]), t ? t : "");
        }
        R->groups[g].label = ar_strdup(&R->ar, lab.n ? tema_sb_str(&lab) : R->name);
        tema_sb_free(&lab);
    }
    if (!R->have_manifest) {
        /* group order by label, so the report does not depend on run-id hashes */
        int *perm = malloc((size_t)R->n_groups * sizeof *perm), *inv = malloc((size_t)R->n_groups * sizeof *inv);
        if (!perm || !inv) {
            free(perm);
            free(inv);
            return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
        }
        for (int g = 0; g < R->n_groups; g++)
            perm[g] = g;
        for (int i = 1; i < R->n_groups; i++)
            for (int j = i; j > 0 && natural_cmp(R->groups[perm[j - 1]].label, R->groups[perm[j]].label) > 0; j--) {
                int t = perm[j];
                perm[j] = perm[j - 1];
                perm[j - 1] = t;
            }
        group *sorted = ar_alloc(&R->ar, (size_t)(R->n_groups ? R->n_groups : 1) * sizeof *sorted);
        if (!sorted) {
            free(perm);
            free(inv);
            return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
        }
        for (int g = 0; g < R->n_groups; g++) {
            sorted[g] = R->groups[perm[g]];
            inv[perm[g]] = g;
        }
        for (int i = 0; i < R->n_runs; i++)
            R->runs[i].group = inv[R->runs[i].group];
        R->groups = sorted;
        free(perm);
        free(inv);
    }
    qsort(R->runs, (size_t)R->n_runs, sizeof *R->runs, cmp_run_order);
    for (int i = 0; i < R->n_runs; i++) {
        group *g = &R->groups[R->runs[i].group];
        g->runs[g->n_runs++] = i;
    }
    for (int g = 0; g < R->n_groups; g++) {
        char a[32];
        snprintf(a, sizeof a, "cfg-%d", g + 1);
        R->groups[g].anchor = ar_strdup(&R->ar, a);
    }
    return R->ar.oom ? tema_fail(err, TEMA_ENOMEM, "report: out of memory") : TEMA_OK;
}

/* ---- the report: block ------------------------------------------------------------------ */

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
} table_spec;

static tema_status spec_fail(tema_err *err, const tema_cfg *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static tema_status spec_fail(tema_err *err, const tema_cfg *node, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (node && node->file && node->line)
        return tema_fail(err, TEMA_EINVAL, "%s:%d:%d: %s", node->file, node->line, node->col, msg);
    return tema_fail(err, TEMA_EINVAL, "%s", msg);
}

static const tema_cfg *child(const tema_cfg *map, const char *key)
{
    if (!map || map->type != TEMA_CFG_MAP)
        return NULL;
    for (size_t i = 0; i < map->n_items; i++)
        if (map->items[i]->key && !strcmp(map->items[i]->key, key))
            return map->items[i];
    return NULL;
}

static bool valid_name(const char *s)
{
    if (!*s || !strcmp(s, ".") || !strcmp(s, ".."))
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-_.", *p))
            return false;
    return true;
}

/* where: {KEY: VALUE or [VALUES], ...} */
static tema_status parse_where(report_ctx *R, const tema_cfg *node, const char *ctx, cond **out, int *n_out,
                               tema_err *err)
{
    *out = NULL;
    *n_out = 0;
    if (!node)
        return TEMA_OK;
    if (node->type != TEMA_CFG_MAP)
        return spec_fail(err, node, "%s: expected a map of key paths to values, like {model.attention.plugin: multi}",
                         ctx);
    cond *c = ar_alloc(&R->ar, (node->n_items ? node->n_items : 1) * sizeof *c);
    if (!c)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    for (size_t i = 0; i < node->n_items; i++) {
        const tema_cfg *v = node->items[i];
        c[i].key = v->key;
        if (v->type == TEMA_CFG_SCALAR) {
            c[i].values = ar_alloc(&R->ar, sizeof *c[i].values);
            if (!c[i].values)
                return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
            c[i].values[0] = v->value;
            c[i].n_values = 1;
        } else if (v->type == TEMA_CFG_LIST && v->n_items > 0) {
            c[i].values = ar_alloc(&R->ar, v->n_items * sizeof *c[i].values);
            if (!c[i].values)
                return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
            for (size_t k = 0; k < v->n_items; k++) {
                if (v->items[k]->type != TEMA_CFG_SCALAR)
                    return spec_fail(err, v->items[k], "%s.%s: expected plain values; to match a plugin sub-config, "
                                     "name one of its keys, e.g. %s.plugin", ctx, v->key, v->key);
                c[i].values[k] = v->items[k]->value;
            }
            c[i].n_values = (int)v->n_items;
        } else {
            return spec_fail(err, v, "%s.%s: expected a value or a list of values; to match a plugin sub-config, "
                             "name one of its keys, e.g. %s.plugin", ctx, v->key, v->key);
        }
    }
    *out = c;
    *n_out = (int)node->n_items;
    return TEMA_OK;
}

static bool is_explicit_list(const tema_cfg *node)
{
    if (!node || node->type != TEMA_CFG_LIST || node->n_items == 0)
        return false;
    for (size_t i = 0; i < node->n_items; i++)
        if (node->items[i]->type != TEMA_CFG_MAP || !child(node->items[i], "where"))
            return false;
    return true;
}

static tema_status parse_axis(report_ctx *R, const tema_cfg *node, const char *ctx, bool allow_domain, axis *ax,
                              tema_err *err)
{
    memset(ax, 0, sizeof *ax);
    ax->node = node;
    if (is_explicit_list(node)) {
        ax->kind = AX_EXPLICIT;
        ax->n_vals = (int)node->n_items;
        ax->vals = ar_alloc(&R->ar, node->n_items * sizeof *ax->vals);
        if (!ax->vals)
            return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
        for (size_t i = 0; i < node->n_items; i++) {
            const tema_cfg *e = node->items[i], *label = child(e, "label");
            for (size_t k = 0; k < e->n_items; k++)
                if (strcmp(e->items[k]->key, "label") && strcmp(e->items[k]->key, "where"))
                    return spec_fail(err, e->items[k], "%s: unknown key '%s' in an entry; an entry has label and where",
                                     ctx, e->items[k]->key);
            if (!label || label->type != TEMA_CFG_SCALAR)
                return spec_fail(err, e, "%s: every entry needs a label: {label: NAME, where: {...}}", ctx);
            ax->vals[i].label = label->value;
            ax->vals[i].domain = -1;
            tema_status st = parse_where(R, child(e, "where"), ctx, &ax->vals[i].conds, &ax->vals[i].n_conds, err);
            if (st != TEMA_OK)
                return st;
        }
        return TEMA_OK;
    }
    const tema_cfg *key = node;
    if (node->type == TEMA_CFG_MAP) {
        key = child(node, "key");
        ax->labels = child(node, "labels");
        for (size_t k = 0; k < node->n_items; k++)
            if (strcmp(node->items[k]->key, "key") && strcmp(node->items[k]->key, "labels"))
                return spec_fail(err, node->items[k], "%s: unknown key '%s'; an axis is KEY, {key: KEY, labels: "
                                 "{VALUE: LABEL}} or a list of {label: L, where: {...}}", ctx, node->items[k]->key);
        if (ax->labels && ax->labels->type != TEMA_CFG_MAP)
            return spec_fail(err, ax->labels, "%s.labels: expected a map VALUE: LABEL", ctx);
    }
    if (!key || key->type != TEMA_CFG_SCALAR || !key->value[0])
        return spec_fail(err, node, "%s: expected a key path (e.g. model.attention.plugin), {key: KEY, labels: {...}}, "
                         "domain, or a list of {label: L, where: {KEY: VALUE}}", ctx);
    ax->key = key->value;
    if (!strcmp(key->value, "domain")) {
        if (!allow_domain)
            return spec_fail(err, node, "%s: domain can only be a column axis; put it in columns", ctx);
        ax->kind = AX_DOMAIN;
    } else {
        ax->kind = AX_KEY;
    }
    return TEMA_OK;
}

/* rows / columns: one axis, or a list of axes (a list of {label, where} maps is one axis). */
static tema_status parse_axes(report_ctx *R, const tema_cfg *node, const char *ctx, bool allow_domain, axis **out,
                              int *n_out, tema_err *err)
{
    int n = node->type == TEMA_CFG_LIST && !is_explicit_list(node) ? (int)node->n_items : 1;
    if (n == 0)
        return spec_fail(err, node, "%s: empty list; give at least one key path", ctx);
    axis *ax = ar_alloc(&R->ar, (size_t)(n + 1) * sizeof *ax); /* +1: room for an implicit domain axis */
    if (!ax)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    for (int i = 0; i < n; i++) {
        const tema_cfg *a = n == 1 && !(node->type == TEMA_CFG_LIST && !is_explicit_list(node)) ? node : node->items[i];
        tema_status st = parse_axis(R, a, ctx, allow_domain, &ax[i], err);
        if (st != TEMA_OK)
            return st;
    }
    *out = ax;
    *n_out = n;
    return TEMA_OK;
}

static const char *scalar(const tema_cfg *n) { return n && n->type == TEMA_CFG_SCALAR ? n->value : NULL; }

static tema_status parse_table(report_ctx *R, const tema_cfg *node, int index, table_spec *t, tema_err *err)
{
    static const char *const known[] = {"name", "title", "rows", "row_title", "columns", "domains", "metrics",
                                        "rule", "split", "baseline", "where", "percent", "digits", "alpha",
                                        "heatmap", "bars"};
    char ctx[64];
    snprintf(ctx, sizeof ctx, "report.tables[%d]", index);
    memset(t, 0, sizeof *t);
    t->node = node;
    if (node->type != TEMA_CFG_MAP)
        return spec_fail(err, node, "%s: expected a map with name, rows, columns, metrics, ...", ctx);
    for (size_t i = 0; i < node->n_items; i++) {
        bool ok = false;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            ok |= !strcmp(node->items[i]->key, known[k]);
        if (!ok)
            return spec_fail(err, node->items[i], "%s: unknown key '%s'; a table takes name, title, rows, row_title, "
                             "columns, domains, metrics, rule, split, baseline, where, percent, digits, alpha, "
                             "heatmap, bars", ctx, node->items[i]->key);
    }
    const tema_cfg *v;
    t->name = scalar(child(node, "name"));
    if (!t->name || !valid_name(t->name))
        return spec_fail(err, child(node, "name") ? child(node, "name") : node,
                         "%s.name: %s; give a file name like table2 (letters, digits, '-', '_', '.')", ctx,
                         t->name ? "not usable as a file name" : "missing");
    t->title = scalar(child(node, "title"));
    if (!t->title)
        t->title = t->name;
    t->row_title = scalar(child(node, "row_title"));
    tema_status st;
    if ((v = child(node, "rows"))) {
        if ((st = parse_axes(R, v, ctx, false, &t->rows, &t->n_rows, err)) != TEMA_OK)
            return st;
    }
    if ((v = child(node, "columns"))) {
        if ((st = parse_axes(R, v, ctx, true, &t->cols, &t->n_cols, err)) != TEMA_OK)
            return st;
    } else {
        t->cols = ar_alloc(&R->ar, sizeof *t->cols);
        if (!t->cols)
            return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    }
    int n_domain_axes = 0;
    for (int i = 0; i < t->n_cols; i++)
        n_domain_axes += t->cols[i].kind == AX_DOMAIN;
    if (n_domain_axes > 1)
        return spec_fail(err, v, "%s.columns: domain appears twice", ctx);
    if (!n_domain_axes) {
        memset(&t->cols[t->n_cols], 0, sizeof t->cols[0]);
        t->cols[t->n_cols].kind = AX_DOMAIN;
        t->cols[t->n_cols++].key = "domain";
    }
    t->domains = ar_alloc(&R->ar, 2 * sizeof *t->domains);
    if (!t->domains)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    if ((v = child(node, "domains"))) {
        const tema_cfg *items[2];
        int n = 0;
        if (v->type == TEMA_CFG_SCALAR) {
            items[n++] = v;
        } else if (v->type == TEMA_CFG_LIST && v->n_items >= 1 && v->n_items <= 2) {
            for (size_t i = 0; i < v->n_items; i++)
                items[n++] = v->items[i];
        } else {
            return spec_fail(err, v, "%s.domains: expected X, Y or [X, Y]", ctx);
        }
        for (int i = 0; i < n; i++) {
            const char *d = scalar(items[i]);
            if (!d || (strcmp(d, "X") && strcmp(d, "Y")))
                return spec_fail(err, items[i], "%s.domains: expected X or Y, got '%s'", ctx, d ? d : "(a map)");
            t->domains[t->n_domains++] = d;
        }
    } else {
        t->domains[0] = "X";
        t->domains[1] = "Y";
        t->n_domains = 2;
    }
    if ((v = child(node, "metrics"))) {
        const char *names[TEMA_MAX_METRICS + 1];
        int n = 0;
        if (v->type == TEMA_CFG_SCALAR)
            names[n++] = v->value;
        else if (v->type == TEMA_CFG_LIST)
            for (size_t i = 0; i < v->n_items && n <= TEMA_MAX_METRICS; i++) {
                if (!scalar(v->items[i]))
                    return spec_fail(err, v->items[i], "%s.metrics: expected names like mrr, ndcg@10, hr@5", ctx);
                names[n++] = v->items[i]->value;
            }
        tema_err e = {0};
        if (tema_metric_parse(names, n, &t->metrics, &e) != TEMA_OK)
            return spec_fail(err, v, "%s.metrics: %s", ctx, e.msg);
    }
    t->rule = TEMA_RANK_OPTIMISTIC;
    if ((v = child(node, "rule"))) {
        const char *s = scalar(v);
        int r = -1;
        for (int k = 0; s && k < TEMA_RANK_RULES; k++)
            if (!strcmp(s, tema_rank_rule_name((tema_rank_rule)k)))
                r = k;
        if (r < 0)
            return spec_fail(err, v, "%s.rule: expected optimistic (C2DSR), pessimistic or mid, got '%s'", ctx,
                             s ? s : "(not a word)");
        t->rule = (tema_rank_rule)r;
    }
    t->split = "test";
    if ((v = child(node, "split"))) {
        const char *s = scalar(v);
        if (!s || (strcmp(s, "test") && strcmp(s, "valid")))
            return spec_fail(err, v, "%s.split: expected test or valid", ctx);
        t->split = s;
    }
    if ((v = child(node, "baseline"))) {
        if (!scalar(v))
            return spec_fail(err, v, "%s.baseline: expected a row label or value", ctx);
        t->baseline = v->value;
        t->baseline_node = v;
    }
    if ((st = parse_where(R, child(node, "where"), ctx, &t->where, &t->n_where, err)) != TEMA_OK)
        return st;
    t->percent = false;
    if ((v = child(node, "percent"))) {
        const char *s = scalar(v);
        if (!s || !(is_true_word(s) || is_false_word(s)))
            return spec_fail(err, v, "%s.percent: expected true or false", ctx);
        t->percent = is_true_word(s);
    }
    t->digits = t->percent ? 2 : 4;
    if ((v = child(node, "digits"))) {
        double d;
        if (!parse_number(scalar(v), &d) || d != floor(d) || d < 0 || d > 10)
            return spec_fail(err, v, "%s.digits: expected an integer from 0 to 10", ctx);
        t->digits = (int)d;
    }
    t->alpha = 0.05;
    if ((v = child(node, "alpha"))) {
        if (!parse_number(scalar(v), &t->alpha) || !(t->alpha > 0 && t->alpha < 1))
            return spec_fail(err, v, "%s.alpha: expected a number between 0 and 1, like 0.05", ctx);
    }
    t->heatmap = -1;
    if ((v = child(node, "heatmap"))) {
        const char *s = scalar(v);
        if (s && is_false_word(s)) {
            t->heatmap = 0;
        } else if (s && is_true_word(s)) {
            t->heatmap = 1;
        } else {
            tema_metric_spec one;
            tema_err e = {0};
            if (!s || tema_metric_parse(&s, 1, &one, &e) != TEMA_OK)
                return spec_fail(err, v, "%s.heatmap: expected false or a metric name like mrr", ctx);
            t->heatmap = 1;
            snprintf(t->heatmap_metric, sizeof t->heatmap_metric, "%s", one.name[0]);
        }
    }
    t->bars = true;
    if ((v = child(node, "bars"))) {
        const char *s = scalar(v);
        if (!s || !(is_true_word(s) || is_false_word(s)))
            return spec_fail(err, v, "%s.bars: expected true or false", ctx);
        t->bars = is_true_word(s);
    }
    return TEMA_OK;
}

/* The table of an experiment without report.tables: rows over the keys in which the runs
 * differ (two keys: rows x columns, which also gives the heatmap of a 2-D grid). */
static tema_status default_table(report_ctx *R, table_spec *t, tema_err *err)
{
    memset(t, 0, sizeof *t);
    t->name = "results";
    t->title = R->name;
    /* a grid over whole plugin sub-configs varies many leaves: its own keys are the axes */
    char **keys = R->have_manifest ? R->grid_keys : R->varying;
    int n_keys = R->have_manifest ? R->n_grid_keys : R->n_varying;
    t->domains = ar_alloc(&R->ar, 2 * sizeof *t->domains);
    t->rows = ar_alloc(&R->ar, (size_t)(n_keys + 1) * sizeof *t->rows);
    t->cols = ar_alloc(&R->ar, 2 * sizeof *t->cols);
    if (!t->domains || !t->rows || !t->cols)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    t->domains[0] = "X";
    t->domains[1] = "Y";
    t->n_domains = 2;
    if (n_keys == 0) {
        t->rows[0].kind = AX_EXPLICIT;
        t->rows[0].vals = ar_alloc(&R->ar, sizeof *t->rows[0].vals);
        if (!t->rows[0].vals)
            return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
        t->rows[0].vals[0].label = R->name;
        t->rows[0].vals[0].domain = -1;
        t->rows[0].n_vals = 1;
        t->n_rows = 1;
        t->row_title = "experiment";
    } else if (n_keys == 2) {
        t->rows[0].kind = AX_KEY;
        t->rows[0].key = keys[0];
        t->n_rows = 1;
        t->cols[0].kind = AX_KEY;
        t->cols[0].key = keys[1];
        t->n_cols = 1;
    } else {
        for (int i = 0; i < n_keys; i++) {
            t->rows[i].kind = AX_KEY;
            t->rows[i].key = keys[i];
        }
        t->n_rows = n_keys;
    }
    t->cols[t->n_cols].kind = AX_DOMAIN;
    t->cols[t->n_cols++].key = "domain";
    t->rule = TEMA_RANK_OPTIMISTIC;
    t->split = "test";
    t->digits = 4;
    t->alpha = 0.05;
    t->heatmap = -1;
    t->bars = true;
    return TEMA_OK;
}

/* ---- building a table ------------------------------------------------------------------ */

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

static bool cond_ok(report_ctx *R, const run *r, const cond *c)
{
    json_object *v = jget(r->config, c->key);
    char *t = jtext(&R->ar, v);
    if (!t) { /* `KEY: null` (or ~) selects the runs without that key, e.g. a shorter encoder list */
        for (int i = 0; i < c->n_values; i++)
            if (!strcmp(c->values[i], "null") || !strcmp(c->values[i], "~") || !c->values[i][0])
                return true;
        return false;
    }
    for (int i = 0; i < c->n_values; i++)
        if (value_matches(t, c->values[i]))
            return true;
    return false;
}

static bool conds_ok(report_ctx *R, const run *r, const cond *c, int n)
{
    for (int i = 0; i < n; i++)
        if (!cond_ok(R, r, &c[i]))
            return false;
    return true;
}

/* Display label of an AX_KEY value: `labels` first, then a plugin map by its plugin name. */
static const char *value_label(const axis *ax, const char *raw, json_object *v)
{
    if (ax->labels)
        for (size_t i = 0; i < ax->labels->n_items; i++) {
            const tema_cfg *l = ax->labels->items[i];
            if (l->type == TEMA_CFG_SCALAR && value_matches(raw, l->key))
                return l->value;
        }
    if (v && json_object_is_type(v, json_type_object)) {
        json_object *p = NULL;
        if (json_object_object_get_ex(v, "plugin", &p) && json_object_is_type(p, json_type_string))
            return json_object_get_string(p);
    }
    return raw;
}

static int label_rank(const axis *ax, const char *raw)
{
    if (ax->labels)
        for (size_t i = 0; i < ax->labels->n_items; i++)
            if (value_matches(raw, ax->labels->items[i]->key))
                return (int)i;
    return -1;
}

/* Fills an AX_KEY axis with the values its key takes in the runs that pass `where`. */
static tema_status fill_key_axis(report_ctx *R, table *T, axis *ax, int **run_val, const char *ctx, tema_err *err)
{
    int *rv = ar_alloc(&R->ar, (size_t)(R->n_runs ? R->n_runs : 1) * sizeof *rv);
    const char **raw = ar_alloc(&R->ar, (size_t)(R->n_runs ? R->n_runs : 1) * sizeof *raw);
    json_object **node = ar_alloc(&R->ar, (size_t)(R->n_runs ? R->n_runs : 1) * sizeof *node);
    if (!rv || !raw || !node)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    int n = 0, present = 0;
    for (int i = 0; i < R->n_runs; i++) {
        rv[i] = -1;
        if (!T->run_ok[i])
            continue;
        json_object *v = jget(R->runs[i].config, ax->key);
        present += v != NULL;
        char *t = jtext(&R->ar, v);
        if (!t)
            return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
        int k = 0;
        while (k < n && strcmp(raw[k], t))
            k++;
        if (k == n) {
            raw[n] = t;
            node[n++] = v;
        }
        rv[i] = k;
    }
    if (!present && n > 0) {
        tema_sb keys = {0};
        for (int k = 0; k < R->n_varying; k++)
            tema_sb_printf(&keys, "%s%s", k ? ", " : "", R->varying[k]);
        tema_status st = spec_fail(err, ax->node, "%s: no run has the key '%s'; the runs differ in: %s", ctx, ax->key,
                                   keys.n ? tema_sb_str(&keys) : "(nothing but the seed)");
        tema_sb_free(&keys);
        return st;
    }
    /* order: labelled values in the order of `labels`, then grid order (manifest) or sorted */
    int *perm = ar_alloc(&R->ar, (size_t)(n ? n : 1) * sizeof *perm);
    if (!perm)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    for (int k = 0; k < n; k++)
        perm[k] = k;
    for (int i = 1; i < n; i++) {
        for (int j = i; j > 0; j--) {
            int a = perm[j - 1], b = perm[j];
            int la = label_rank(ax, raw[a]), lb = label_rank(ax, raw[b]);
            int c;
            if (la >= 0 || lb >= 0)
                c = la < 0 ? 1 : lb < 0 ? -1 : la - lb;
            else
                c = R->have_manifest ? 0 : natural_cmp(raw[a], raw[b]);
            if (c <= 0)
                break;
            perm[j - 1] = b;
            perm[j] = a;
        }
    }
    int *inv = ar_alloc(&R->ar, (size_t)(n ? n : 1) * sizeof *inv);
    ax->vals = ar_alloc(&R->ar, (size_t)(n ? n : 1) * sizeof *ax->vals);
    if (!inv || !ax->vals)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    /* plugin sub-configs: the plugin name plus the options in which the values differ */
    key_list sub = {0};
    bool objects = n > 1;
    for (int k = 0; k < n; k++)
        objects = objects && node[k] && json_object_is_type(node[k], json_type_object);
    for (int k = 1; objects && k < n; k++)
        all_diffs(&R->ar, &sub, node[0], node[k], "");
    for (int k = 0; k < n; k++) {
        inv[perm[k]] = k;
        axis_value *av = &ax->vals[k];
        memset(av, 0, sizeof *av);
        av->raw = raw[perm[k]];
        av->label = value_label(ax, av->raw, node[perm[k]]);
        av->domain = -1;
        if (objects && label_rank(ax, av->raw) < 0) {
            tema_sb lab = {0};
            json_object *plugin = jget(node[perm[k]], "plugin");
            if (plugin && json_object_is_type(plugin, json_type_string))
                tema_sb_add(&lab, json_object_get_string(plugin));
            const char *me = plugin ? json_object_get_string(plugin) : "";
            for (int d = 0; d < sub.n; d++) {
                json_object *v = jget(node[perm[k]], sub.keys[d]);
                if (!strcmp(sub.keys[d], "plugin") || !v)
                    continue;
                char *t = jtext(&R->ar, v);
                /* an option tells values apart only next to another value of the same plugin */
                bool differs = false;
                for (int j = 0; t && j < n && !differs; j++) {
                    json_object *pj = jget(node[j], "plugin");
                    const char *other = pj && json_object_is_type(pj, json_type_string) ? json_object_get_string(pj) : "";
                    char *tj = j != perm[k] && !strcmp(me, other) ? jtext(&R->ar, jget(node[j], sub.keys[d])) : NULL;
                    differs = tj && strcmp(tj, t);
                }
                if (differs)
                    tema_sb_printf(&lab, "%s%s=%s", lab.n ? " " : "", sub.keys[d], t);
            }
            if (lab.n)
                av->label = ar_strdup(&R->ar, tema_sb_str(&lab));
            tema_sb_free(&lab);
        }
    }
    ax->n_vals = n;
    for (int i = 0; i < R->n_runs; i++)
        if (rv[i] >= 0)
            rv[i] = inv[rv[i]];
    *run_val = rv;
    return TEMA_OK;
}

static void fill_domain_axis(report_ctx *R, const table_spec *t, axis *ax)
{
    ax->vals = ar_alloc(&R->ar, 2 * sizeof *ax->vals);
    if (!ax->vals)
        return;
    ax->n_vals = 0;
    for (int i = 0; i < t->n_domains; i++) {
        axis_value *av = &ax->vals[ax->n_vals++];
        memset(av, 0, sizeof *av);
        av->raw = t->domains[i];
        av->domain = t->domains[i][0] == 'Y';
        av->label = av->raw;
        if (ax->labels)
            for (size_t k = 0; k < ax->labels->n_items; k++)
                if (!strcmp(ax->labels->items[k]->key, av->raw) && ax->labels->items[k]->type == TEMA_CFG_SCALAR)
                    av->label = ax->labels->items[k]->value;
    }
}

/* Does run i sit at value vi of axis a (of rows when a < n_rows, else of columns)? */
static bool run_at(report_ctx *R, table *T, int a, int vi, int i)
{
    axis *ax = a < T->spec.n_rows ? &T->spec.rows[a] : &T->spec.cols[a - T->spec.n_rows];
    switch (ax->kind) {
    case AX_KEY:
        return T->axis_run_val[a][i] == vi;
    case AX_DOMAIN:
        return true;
    case AX_EXPLICIT:
        return conds_ok(R, &R->runs[i], ax->vals[vi].conds, ax->vals[vi].n_conds);
    }
    return false;
}

/* All combinations of the axes [a0, a1) that hold at least one run (explicit-only: all). */
static tema_status make_combos(report_ctx *R, table *T, int a0, int a1, bool is_row, combo **out, int *n_out,
                               tema_err *err)
{
    axis *axes = is_row ? T->spec.rows : T->spec.cols;
    int n_axes = a1 - a0;
    size_t total = 1;
    bool keep_empty = true;
    for (int a = 0; a < n_axes; a++) {
        total *= (size_t)(axes[a].n_vals > 0 ? axes[a].n_vals : 0);
        if (axes[a].kind == AX_KEY)
            keep_empty = false;
        if (total > 100000)
            return tema_fail(err, TEMA_EINVAL, "report table %s: more than 100000 %s; use fewer axes or a where:",
                             T->spec.name, is_row ? "rows" : "columns");
    }
    combo *c = ar_alloc(&R->ar, (total ? total : 1) * sizeof *c);
    if (!c)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    int n = 0;
    int *idx = ar_alloc(&R->ar, (size_t)(n_axes ? n_axes : 1) * sizeof *idx);
    if (!idx)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    for (size_t k = 0; k < total; k++) {
        size_t rest = k;
        for (int a = n_axes - 1; a >= 0; a--) {
            idx[a] = (int)(rest % (size_t)axes[a].n_vals);
            rest /= (size_t)axes[a].n_vals;
        }
        bool any = keep_empty;
        for (int i = 0; !any && i < R->n_runs; i++) {
            if (!T->run_ok[i])
                continue;
            bool all = true;
            for (int a = 0; all && a < n_axes; a++)
                all = run_at(R, T, a0 + a, idx[a], i);
            any = all;
        }
        if (!any)
            continue;
        combo *cb = &c[n++];
        cb->vi = ar_alloc(&R->ar, (size_t)(n_axes ? n_axes : 1) * sizeof *cb->vi);
        if (!cb->vi)
            return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
        memcpy(cb->vi, idx, (size_t)n_axes * sizeof *idx);
        cb->domain = -1;
        tema_sb lab = {0};
        for (int a = 0; a < n_axes; a++) {
            const axis_value *av = &axes[a].vals[idx[a]];
            if (av->domain >= 0)
                cb->domain = av->domain;
            tema_sb_printf(&lab, "%s%s", a ? (is_row ? ", " : " ") : "", av->label);
        }
        cb->label = ar_strdup(&R->ar, tema_sb_str(&lab));
        tema_sb_free(&lab);
    }
    *out = c;
    *n_out = n;
    return R->ar.oom ? tema_fail(err, TEMA_ENOMEM, "report: out of memory") : TEMA_OK;
}

/* Metric value of one run: final.json SPLIT.DOMAIN.RULE.METRIC. */
static double run_metric(const run *r, const table_spec *t, int domain, int m)
{
    char key[96];
    snprintf(key, sizeof key, "%s.%s.%s.%s", t->split, domain ? "Y" : "X", tema_rank_rule_name(t->rule),
             t->metrics.name[m]);
    return jnum(r->final, key);
}

typedef struct rank_pair {
    double a, b;
} rank_pair;

/* Pairs the test cases of runs a and b in domain d by user (and occurrence), appending
 * their ranks under `rule` to *pairs. Returns the cases left without a partner. */
static int64_t pair_cases(const run *a, const run *b, int d, tema_rank_rule rule, rank_pair *pairs, int64_t *n)
{
    int64_t i = a->domain_start[d], ie = a->domain_start[d + 1];
    int64_t j = b->domain_start[d], je = b->domain_start[d + 1];
    int64_t unmatched = 0;
    while (i < ie && j < je) {
        int64_t ua = a->cases[i].user, ub = b->cases[j].user;
        if (ua < ub) {
            i++;
            unmatched++;
        } else if (ub < ua) {
            j++;
            unmatched++;
        } else {
            pairs[*n].a = a->cases[i].rank[rule];
            pairs[*n].b = b->cases[j].rank[rule];
            (*n)++;
            i++;
            j++;
        }
    }
    return unmatched + (ie - i) + (je - j);
}

/* The three tests of one cell against the baseline's cell in the same column. */
static tema_status test_cell(report_ctx *R, table *T, cell *c, const cell *base, int domain, tema_err *err)
{
    const table_spec *t = &T->spec;
    int nm = t->metrics.n;
    for (int m = 0; m < nm; m++)
        c->p_user_t[m] = c->p_user_w[m] = c->p_run_t[m] = NAN;
    /* seeds both cells ran; one run per seed and side */
    int n_seeds = 0;
    int *ra = malloc(((size_t)c->n_runs + 1) * sizeof *ra), *rb = malloc(((size_t)c->n_runs + 1) * sizeof *rb);
    if (!ra || !rb) {
        free(ra);
        free(rb);
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    }
    for (int i = 0; i < c->n_runs; i++) {
        const run *x = &R->runs[c->runs[i]];
        bool dup = false;
        for (int k = 0; k < n_seeds; k++)
            dup |= R->runs[ra[k]].seed == x->seed;
        if (dup)
            continue;
        for (int j = 0; j < base->n_runs; j++)
            if (R->runs[base->runs[j]].seed == x->seed) {
                ra[n_seeds] = c->runs[i];
                rb[n_seeds++] = base->runs[j];
                break;
            }
    }
    c->n_run_pairs = n_seeds;
    tema_status st = TEMA_OK;
    double *va = malloc(((size_t)n_seeds + 1) * sizeof *va), *vb = malloc(((size_t)n_seeds + 1) * sizeof *vb);
    if (!va || !vb)
        st = tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    for (int m = 0; st == TEMA_OK && m < nm && n_seeds >= 2; m++) {
        int k = 0;
        for (int s = 0; s < n_seeds; s++) {
            double x = run_metric(&R->runs[ra[s]], t, domain, m), y = run_metric(&R->runs[rb[s]], t, domain, m);
            if (isfinite(x) && isfinite(y)) {
                va[k] = x;
                vb[k++] = y;
            }
        }
        tema_ttest tt;
        tema_stats_ttest_paired(va, vb, k, &tt);
        c->p_run_t[m] = tt.p;
    }
    free(va);
    free(vb);
    if (st == TEMA_OK && T->user_tests && n_seeds > 0) {
        int64_t cap = 0;
        for (int s = 0; st == TEMA_OK && s < n_seeds; s++) {
            if ((st = load_ranks(R, &R->runs[ra[s]], err)) != TEMA_OK || (st = load_ranks(R, &R->runs[rb[s]], err)) != TEMA_OK)
                break;
            if (R->runs[ra[s]].ranks_state > 0 && R->runs[rb[s]].ranks_state > 0)
                cap += R->runs[ra[s]].n_cases;
        }
        rank_pair *pairs = st == TEMA_OK ? malloc(((size_t)cap + 1) * sizeof *pairs) : NULL;
        double *xa = st == TEMA_OK ? malloc(((size_t)cap + 1) * sizeof *xa) : NULL;
        double *xb = st == TEMA_OK ? malloc(((size_t)cap + 1) * sizeof *xb) : NULL;
        if (st == TEMA_OK && (!pairs || !xa || !xb))
            st = tema_fail(err, TEMA_ENOMEM, "report: out of memory for %lld test cases", (long long)cap);
        int64_t n = 0;
        for (int s = 0; st == TEMA_OK && s < n_seeds; s++) {
            const run *a = &R->runs[ra[s]], *b = &R->runs[rb[s]];
            if (a->ranks_state <= 0 || b->ranks_state <= 0)
                continue;
            int64_t lost = pair_cases(a, b, domain, t->rule, pairs, &n);
            if (lost)
                note(R, "table %s: %lld test cases of runs %s and %s (domain %s) have no partner in the other run; "
                     "were they evaluated on the same test set?", t->name, (long long)lost, a->id, b->id,
                     domain ? "Y" : "X");
        }
        c->n_user_pairs = n;
        for (int m = 0; st == TEMA_OK && m < nm && n > 0; m++) {
            for (int64_t k = 0; k < n; k++) {
                xa[k] = tema_metric_value(t->metrics.name[m], pairs[k].a);
                xb[k] = tema_metric_value(t->metrics.name[m], pairs[k].b);
            }
            tema_ttest tt;
            tema_stats_ttest_paired(xa, xb, n, &tt);
            c->p_user_t[m] = tt.p;
            tema_wilcoxon w;
            if ((st = tema_stats_wilcoxon(xa, xb, n, true, &w, err)) == TEMA_OK)
                c->p_user_w[m] = w.p;
        }
        free(pairs);
        free(xa);
        free(xb);
    }
    for (int m = 0; m < nm; m++)
        c->mark[m] = (c->p_user_t[m] < t->alpha ? MARK_USER_T : 0) | (c->p_user_w[m] < t->alpha ? MARK_WILCOXON : 0) |
                     (c->p_run_t[m] < t->alpha ? MARK_RUN_T : 0);
    free(ra);
    free(rb);
    return st;
}

static double display_value(const table_spec *t, double v)
{
    double scaled = t->percent ? v * 100 : v;
    double p = pow(10, t->digits);
    return round(scaled * p) / p;
}

static tema_status build_table(report_ctx *R, table *T, int index, tema_err *err)
{
    table_spec *t = &T->spec;
    char ctx[64];
    snprintf(ctx, sizeof ctx, "report.tables[%d]", index);
    if (!strcmp(t->name, "timing") || !strcmp(t->name, "report"))
        return spec_fail(err, t->node, "%s.name: '%s' is the name of the report's own file; pick another", ctx,
                         t->name);
    if (t->metrics.n == 0) {
        /* the runs' eval.metrics */
        json_object *list = R->n_runs ? jget(R->runs[0].config, "eval.metrics") : NULL;
        const char *names[TEMA_MAX_METRICS];
        int n = 0;
        for (size_t i = 0; list && json_object_is_type(list, json_type_array) && i < json_object_array_length(list) &&
                           n < TEMA_MAX_METRICS;
             i++)
            names[n++] = json_object_get_string(json_object_array_get_idx(list, i));
        if (n == 0)
            names[n++] = "mrr";
        tema_err e = {0};
        if (tema_metric_parse(names, n, &t->metrics, &e) != TEMA_OK)
            return tema_fail(err, TEMA_EFORMAT, "%s: eval.metrics of the runs: %s", R->runs[0].dir, e.msg);
    }
    T->run_ok = ar_alloc(&R->ar, (size_t)(R->n_runs ? R->n_runs : 1) * sizeof *T->run_ok);
    T->axis_run_val = ar_alloc(&R->ar, (size_t)(t->n_rows + t->n_cols) * sizeof *T->axis_run_val);
    if (!T->run_ok || !T->axis_run_val)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    int n_ok = 0;
    for (int i = 0; i < R->n_runs; i++)
        n_ok += T->run_ok[i] = conds_ok(R, &R->runs[i], t->where, t->n_where);
    if (n_ok == 0 && t->n_where)
        note(R, "table %s: no finished run matches its where:", t->name);
    tema_status st;
    for (int a = 0; a < t->n_rows + t->n_cols; a++) {
        axis *ax = a < t->n_rows ? &t->rows[a] : &t->cols[a - t->n_rows];
        if (ax->kind == AX_KEY && (st = fill_key_axis(R, T, ax, &T->axis_run_val[a], ctx, err)) != TEMA_OK)
            return st;
        if (ax->kind == AX_DOMAIN)
            fill_domain_axis(R, t, ax);
    }
    if ((st = make_combos(R, T, 0, t->n_rows, true, &T->rows, &T->n_rows, err)) != TEMA_OK ||
        (st = make_combos(R, T, t->n_rows, t->n_rows + t->n_cols, false, &T->cols, &T->n_cols, err)) != TEMA_OK)
        return st;
    /* the baseline row: by label, or by value for a one-key row axis */
    T->baseline = -1;
    if (t->baseline) {
        for (int r = 0; r < T->n_rows && T->baseline < 0; r++)
            if (!strcmp(T->rows[r].label, t->baseline))
                T->baseline = r;
        for (int r = 0; r < T->n_rows && T->baseline < 0 && t->n_rows == 1 && t->rows[0].kind == AX_KEY; r++)
            if (value_matches(t->rows[0].vals[T->rows[r].vi[0]].raw, t->baseline))
                T->baseline = r;
        if (T->baseline < 0) {
            tema_sb rows = {0};
            for (int r = 0; r < T->n_rows; r++)
                tema_sb_printf(&rows, "%s'%s'", r ? ", " : "", T->rows[r].label);
            st = spec_fail(err, t->baseline_node, "%s.baseline: '%s' is not one of the rows (%s)", ctx, t->baseline,
                           rows.n ? tema_sb_str(&rows) : "none: no finished run matches");
            tema_sb_free(&rows);
            return st;
        }
    }
    size_t n_cells = (size_t)T->n_rows * (size_t)T->n_cols;
    T->cells = ar_alloc(&R->ar, (n_cells ? n_cells : 1) * sizeof *T->cells);
    if (!T->cells)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    T->seeds_min = INT32_MAX;
    T->seeds_max = 0;
    T->user_tests = !strcmp(t->split, "test");
    bool warned_mix = false;
    for (int r = 0; r < T->n_rows; r++)
        for (int c = 0; c < T->n_cols; c++) {
            cell *ce = &T->cells[r * T->n_cols + c];
            memset(ce, 0, sizeof *ce);
            ce->runs = ar_alloc(&R->ar, (size_t)(R->n_runs ? R->n_runs : 1) * sizeof *ce->runs);
            if (!ce->runs)
                return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
            for (int i = 0; i < R->n_runs; i++) {
                if (!T->run_ok[i])
                    continue;
                bool in = true;
                for (int a = 0; in && a < t->n_rows; a++)
                    in = run_at(R, T, a, T->rows[r].vi[a], i);
                for (int a = 0; in && a < t->n_cols; a++)
                    in = run_at(R, T, t->n_rows + a, T->cols[c].vi[a], i);
                if (in)
                    ce->runs[ce->n_runs++] = i;
            }
            /* a cell is one grid cell over seeds; anything else is probably a missing axis */
            for (int k = 1; k < ce->n_runs && !warned_mix; k++) {
                const run *x = &R->runs[ce->runs[0]], *y = &R->runs[ce->runs[k]];
                char key[512];
                if (x->group != y->group && first_diff(x->config, y->config, "", key, sizeof key)) {
                    note(R, "table %s, row '%s', column '%s': its runs differ in %s, not only in train.seed; "
                         "they are averaged as if they were seeds. Add %s to rows, columns or where:",
                         t->name, T->rows[r].label, T->cols[c].label, key, key);
                    warned_mix = true;
                } else if (x->group == y->group && x->seed == y->seed) {
                    note(R, "table %s: runs %s and %s have the same config and seed", t->name, x->id, y->id);
                    warned_mix = true;
                }
            }
            if (ce->n_runs) {
                T->seeds_min = ce->n_runs < T->seeds_min ? ce->n_runs : T->seeds_min;
                T->seeds_max = ce->n_runs > T->seeds_max ? ce->n_runs : T->seeds_max;
            }
            for (int m = 0; m < t->metrics.n; m++) {
                double *v = malloc(((size_t)ce->n_runs + 1) * sizeof *v);
                if (!v)
                    return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
                int k = 0;
                for (int i = 0; i < ce->n_runs; i++) {
                    double x = run_metric(&R->runs[ce->runs[i]], t, T->cols[c].domain, m);
                    if (isfinite(x))
                        v[k++] = x;
                }
                ce->n_vals[m] = k;
                ce->mean[m] = tema_stats_mean(v, k);
                ce->std[m] = tema_stats_std(v, k);
                ce->p_user_t[m] = ce->p_user_w[m] = ce->p_run_t[m] = NAN;
                free(v);
            }
        }
    if (T->seeds_min == INT32_MAX)
        T->seeds_min = 0;
    if (T->baseline >= 0)
        for (int r = 0; r < T->n_rows; r++)
            for (int c = 0; c < T->n_cols && r != T->baseline; c++) {
                cell *ce = &T->cells[r * T->n_cols + c], *base = &T->cells[T->baseline * T->n_cols + c];
                if (ce->n_runs && base->n_runs && (st = test_cell(R, T, ce, base, T->cols[c].domain, err)) != TEMA_OK)
                    return st;
            }
    /* best and second best per column, on the values as printed */
    int with_values = 0;
    for (int r = 0; r < T->n_rows; r++) {
        bool any = false;
        for (int c = 0; c < T->n_cols; c++)
            for (int m = 0; m < t->metrics.n; m++)
                any |= T->cells[r * T->n_cols + c].n_vals[m] > 0;
        with_values += any;
    }
    T->rows_with_values = with_values;
    for (int c = 0; c < T->n_cols; c++)
        for (int m = 0; m < t->metrics.n; m++) {
            double best = -INFINITY, second = -INFINITY;
            for (int r = 0; r < T->n_rows; r++) {
                const cell *ce = &T->cells[r * T->n_cols + c];
                if (!ce->n_vals[m])
                    continue;
                double v = display_value(t, ce->mean[m]);
                if (v > best) {
                    second = best;
                    best = v;
                } else if (v < best && v > second) {
                    second = v;
                }
            }
            for (int r = 0; r < T->n_rows; r++) {
                cell *ce = &T->cells[r * T->n_cols + c];
                if (!ce->n_vals[m] || !isfinite(best))
                    continue;
                double v = display_value(t, ce->mean[m]);
                if (v == best && with_values >= 2)
                    ce->best[m] = 1;
                else if (v == second && with_values >= 3)
                    ce->best[m] = 2;
            }
        }
    return R->ar.oom ? tema_fail(err, TEMA_ENOMEM, "report: out of memory") : TEMA_OK;
}

/* ---- rendering --------------------------------------------------------------------------- */

typedef enum fmt { FMT_MD, FMT_TEX, FMT_HTML } fmt;

static void add_escaped(tema_sb *b, const char *s, fmt f)
{
    for (const char *p = s; *p; p++) {
        char c = *p;
        switch (f) {
        case FMT_MD:
            /* '_' stays: snake_case keys are everywhere and intraword '_' is no emphasis */
            if (strchr("|*\\`<", c))
                tema_sb_addn(b, "\\", 1);
            if (c == '\n')
                c = ' ';
            tema_sb_addn(b, &c, 1);
            break;
        case FMT_TEX:
            if (strchr("&%$#_{}", c)) {
                tema_sb_addn(b, "\\", 1);
                tema_sb_addn(b, &c, 1);
            } else if (c == '~') {
                tema_sb_add(b, "\\textasciitilde{}");
            } else if (c == '^') {
                tema_sb_add(b, "\\textasciicircum{}");
            } else if (c == '\\') {
                tema_sb_add(b, "\\textbackslash{}");
            } else {
                tema_sb_addn(b, &c, 1);
            }
            break;
        case FMT_HTML:
            if (c == '<')
                tema_sb_add(b, "&lt;");
            else if (c == '>')
                tema_sb_add(b, "&gt;");
            else if (c == '&')
                tema_sb_add(b, "&amp;");
            else if (c == '"')
                tema_sb_add(b, "&quot;");
            else
                tema_sb_addn(b, &c, 1);
            break;
        }
    }
}

static void add_csv_field(tema_sb *b, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        tema_sb_add(b, s);
        return;
    }
    tema_sb_addn(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            tema_sb_addn(b, "\"", 1);
        tema_sb_addn(b, p, 1);
    }
    tema_sb_addn(b, "\"", 1);
}

static void add_csv_num(tema_sb *b, double v)
{
    if (isfinite(v))
        tema_sb_printf(b, "%.10g", v);
}

static void metric_title(const char *name, char *buf, size_t cap)
{
    size_t i = 0;
    for (; name[i] && i + 1 < cap; i++)
        buf[i] = (char)toupper((unsigned char)name[i]);
    buf[i] = '\0';
}

static const char *row_title(report_ctx *R, const table *T)
{
    const table_spec *t = &T->spec;
    if (t->row_title)
        return t->row_title;
    tema_sb s = {0};
    for (int a = 0; a < t->n_rows; a++) {
        const char *k = t->rows[a].kind == AX_KEY ? short_key(R, t->rows[a].key) : "run";
        tema_sb_printf(&s, "%s%s", a ? ", " : "", k);
    }
    const char *out = ar_strdup(&R->ar, s.n ? tema_sb_str(&s) : "run");
    tema_sb_free(&s);
    return out ? out : "run";
}

/* "mean ± std" (or the mean alone with one run) in the format's notation. */
static void add_value(tema_sb *b, const table_spec *t, const cell *ce, int m, fmt f)
{
    if (!ce->n_vals[m]) {
        tema_sb_add(b, f == FMT_TEX ? "--" : "\xe2\x80\x94"); /* em dash */
        return;
    }
    double mean = t->percent ? ce->mean[m] * 100 : ce->mean[m], std = t->percent ? ce->std[m] * 100 : ce->std[m];
    if (isfinite(std))
        tema_sb_printf(b, "%.*f %s %.*f", t->digits, mean, f == FMT_TEX ? "$\\pm$" : "\xc2\xb1", t->digits, std);
    else
        tema_sb_printf(b, "%.*f", t->digits, mean);
}

static void add_marks(tema_sb *b, unsigned mark, fmt f)
{
    if (!mark)
        return;
    if (f == FMT_TEX) {
        tema_sb_add(b, "$^{");
        if (mark & MARK_USER_T)
            tema_sb_add(b, "*");
        if (mark & MARK_WILCOXON)
            tema_sb_add(b, "\\dagger");
        if (mark & MARK_RUN_T)
            tema_sb_add(b, "\\ddagger");
        tema_sb_add(b, "}$");
        return;
    }
    if (f == FMT_HTML)
        tema_sb_add(b, "<sup class=\"sig\">");
    if (mark & MARK_USER_T)
        tema_sb_add(b, f == FMT_MD ? "\\*" : "*");
    if (mark & MARK_WILCOXON)
        tema_sb_add(b, "\xe2\x80\xa0");
    if (mark & MARK_RUN_T)
        tema_sb_add(b, "\xe2\x80\xa1");
    if (f == FMT_HTML)
        tema_sb_add(b, "</sup>");
}

static void add_legend(tema_sb *b, const table *T, fmt f)
{
    const table_spec *t = &T->spec;
    const char *pm = f == FMT_TEX ? "$\\pm$" : "\xc2\xb1";
    if (T->seeds_max <= 1)
        tema_sb_printf(b, "One run per cell");
    else if (T->seeds_min == T->seeds_max)
        tema_sb_printf(b, "Mean %s sample std over %d seeds", pm, T->seeds_max);
    else
        tema_sb_printf(b, "Mean %s sample std over %d to %d seeds per cell", pm, T->seeds_min, T->seeds_max);
    tema_sb_printf(b, "; %s split, %s ranks%s%s.", t->split, tema_rank_rule_name(t->rule),
              t->rule == TEMA_RANK_OPTIMISTIC ? " (C2DSR)" : "",
              !t->percent ? "" : f == FMT_TEX ? ", values in \\%" : ", values in %");
    if (T->rows_with_values >= 2)
        tema_sb_add(b, f == FMT_TEX ? " Bold: best per column" : f == FMT_HTML ? " <b>Bold</b>: best per column"
                                                                           : " **Bold**: best per column");
    if (T->rows_with_values >= 3)
        tema_sb_add(b, f == FMT_TEX ? "; underlined: second best" : f == FMT_HTML ? "; <u>underlined</u>: second best"
                                                                              : "; _italic_: second best");
    if (T->rows_with_values >= 2)
        tema_sb_add(b, ".");
    if (T->baseline < 0)
        return;
    tema_sb_add(b, " Marks against ");
    add_escaped(b, T->rows[T->baseline].label, f);
    const char *star = f == FMT_MD ? "\\*" : "*";
    const char *dag = f == FMT_TEX ? "$^{\\dagger}$" : "\xe2\x80\xa0", *ddag = f == FMT_TEX ? "$^{\\ddagger}$" : "\xe2\x80\xa1";
    if (f == FMT_TEX)
        tema_sb_printf(b, " (two-sided, $p < %g$): ", t->alpha); /* a bare '<' is an inverted '!' in OT1 */
    else
        tema_sb_printf(b, " (two-sided, p %s %g): ", f == FMT_HTML ? "&lt;" : "<", t->alpha);
    if (f == FMT_TEX)
        star = "$^{*}$";
    if (T->user_tests)
        tema_sb_printf(b, "%s per-user paired t-test, %s Wilcoxon signed-rank test (per user, pooled over seeds), ", star,
                  dag);
    tema_sb_printf(b, "%s paired t-test over seeds.", ddag);
    if (!T->user_tests)
        tema_sb_add(b, " (The per-user tests need split: test.)");
}

static void render_md(report_ctx *R, const table *T, tema_sb *b)
{
    const table_spec *t = &T->spec;
    tema_sb_add(b, "### ");
    add_escaped(b, t->title, FMT_MD);
    tema_sb_add(b, "\n\n| ");
    add_escaped(b, row_title(R, T), FMT_MD);
    for (int c = 0; c < T->n_cols; c++)
        for (int m = 0; m < t->metrics.n; m++) {
            char mt[24];
            metric_title(t->metrics.name[m], mt, sizeof mt);
            tema_sb_add(b, " | ");
            add_escaped(b, T->cols[c].label, FMT_MD);
            tema_sb_printf(b, " %s", mt);
        }
    tema_sb_add(b, " |\n|:---");
    for (int c = 0; c < T->n_cols * t->metrics.n; c++)
        tema_sb_add(b, "|---:");
    tema_sb_add(b, "|\n");
    for (int r = 0; r < T->n_rows; r++) {
        tema_sb_add(b, "| ");
        add_escaped(b, T->rows[r].label, FMT_MD);
        for (int c = 0; c < T->n_cols; c++)
            for (int m = 0; m < t->metrics.n; m++) {
                const cell *ce = &T->cells[r * T->n_cols + c];
                const char *deco = ce->best[m] == 1 ? "**" : ce->best[m] == 2 ? "_" : "";
                tema_sb_printf(b, " | %s", deco);
                add_value(b, t, ce, m, FMT_MD);
                tema_sb_printf(b, "%s", deco);
                add_marks(b, ce->mark[m], FMT_MD);
            }
        tema_sb_add(b, " |\n");
    }
    tema_sb_add(b, "\n");
    add_legend(b, T, FMT_MD);
    tema_sb_add(b, "\n");
}

static void render_tex(report_ctx *R, const table *T, tema_sb *b)
{
    const table_spec *t = &T->spec;
    int nm = t->metrics.n;
    tema_sb_add(b, "% generated by tema report; needs \\usepackage{booktabs}\n\\begin{table}[t]\n\\centering\n\\caption{");
    add_escaped(b, t->title, FMT_TEX);
    tema_sb_printf(b, "}\n\\label{tab:%s}\n\\begin{tabular}{l", t->name);
    for (int c = 0; c < T->n_cols * nm; c++)
        tema_sb_add(b, "c");
    tema_sb_add(b, "}\n\\toprule\n");
    /* the column combinations over their metrics */
    for (int c = 0; c < T->n_cols; c++) {
        tema_sb_printf(b, " & \\multicolumn{%d}{c}{", nm);
        add_escaped(b, T->cols[c].label, FMT_TEX);
        tema_sb_add(b, "}");
    }
    tema_sb_add(b, " \\\\\n");
    for (int c = 0; c < T->n_cols; c++)
        tema_sb_printf(b, "\\cmidrule(lr){%d-%d}", 2 + c * nm, 1 + (c + 1) * nm);
    tema_sb_add(b, "\n");
    add_escaped(b, row_title(R, T), FMT_TEX);
    for (int c = 0; c < T->n_cols; c++)
        for (int m = 0; m < nm; m++) {
            char mt[24];
            metric_title(t->metrics.name[m], mt, sizeof mt);
            tema_sb_add(b, " & ");
            add_escaped(b, mt, FMT_TEX);
        }
    tema_sb_add(b, " \\\\\n\\midrule\n");
    for (int r = 0; r < T->n_rows; r++) {
        add_escaped(b, T->rows[r].label, FMT_TEX);
        for (int c = 0; c < T->n_cols; c++)
            for (int m = 0; m < nm; m++) {
                const cell *ce = &T->cells[r * T->n_cols + c];
                tema_sb_add(b, " & ");
                if (ce->best[m] == 1)
                    tema_sb_add(b, "\\textbf{");
                else if (ce->best[m] == 2)
                    tema_sb_add(b, "\\underline{");
                add_value(b, t, ce, m, FMT_TEX);
                if (ce->best[m])
                    tema_sb_add(b, "}");
                add_marks(b, ce->mark[m], FMT_TEX);
            }
        tema_sb_add(b, " \\\\\n");
    }
    tema_sb_add(b, "\\bottomrule\n\\end{tabular}\n\\par\\smallskip{\\footnotesize ");
    add_legend(b, T, FMT_TEX);
    tema_sb_add(b, "}\n\\end{table}\n");
}

static void render_csv(report_ctx *R, const table *T, tema_sb *b)
{
    const table_spec *t = &T->spec;
    tema_sb_add(b, "table,row,column,domain,metric,rule,split,runs,seeds,mean,std,is_baseline,p_user_ttest,"
              "p_user_wilcoxon,p_run_ttest,user_pairs,seed_pairs,marks,best\n");
    for (int r = 0; r < T->n_rows; r++)
        for (int c = 0; c < T->n_cols; c++)
            for (int m = 0; m < t->metrics.n; m++) {
                const cell *ce = &T->cells[r * T->n_cols + c];
                add_csv_field(b, t->name);
                tema_sb_add(b, ",");
                add_csv_field(b, T->rows[r].label);
                tema_sb_add(b, ",");
                add_csv_field(b, T->cols[c].label);
                tema_sb_printf(b, ",%s,%s,%s,%s,%d,", T->cols[c].domain ? "Y" : "X", t->metrics.name[m],
                          tema_rank_rule_name(t->rule), t->split, ce->n_runs);
                /* seeds are ';'-separated so the field needs no quoting */
                for (int i = 0; i < ce->n_runs; i++)
                    tema_sb_printf(b, "%s%lld", i ? ";" : "", (long long)R->runs[ce->runs[i]].seed);
                tema_sb_add(b, ",");
                add_csv_num(b, ce->n_vals[m] ? ce->mean[m] : NAN);
                tema_sb_add(b, ",");
                add_csv_num(b, ce->std[m]);
                tema_sb_printf(b, ",%d,", r == T->baseline);
                add_csv_num(b, ce->p_user_t[m]);
                tema_sb_add(b, ",");
                add_csv_num(b, ce->p_user_w[m]);
                tema_sb_add(b, ",");
                add_csv_num(b, ce->p_run_t[m]);
                if (r == T->baseline || T->baseline < 0)
                    tema_sb_add(b, ",,,");
                else
                    tema_sb_printf(b, ",%lld,%d,", (long long)ce->n_user_pairs, ce->n_run_pairs);
                tema_sb_printf(b, "%s%s%s", ce->mark[m] & MARK_USER_T ? "*" : "",
                          ce->mark[m] & MARK_WILCOXON ? "\xe2\x80\xa0" : "", ce->mark[m] & MARK_RUN_T ? "\xe2\x80\xa1" : "");
                tema_sb_printf(b, ",%s\n", ce->best[m] == 1 ? "best" : ce->best[m] == 2 ? "second" : "");
            }
}

static void render_html_table(report_ctx *R, const table *T, tema_sb *b)
{
    const table_spec *t = &T->spec;
    int nm = t->metrics.n;
    tema_sb_printf(b, "<table class=\"results\" id=\"tab-%s\">\n<thead><tr><th rowspan=\"2\">", t->name);
    add_escaped(b, row_title(R, T), FMT_HTML);
    tema_sb_add(b, "</th>");
    for (int c = 0; c < T->n_cols; c++) {
        tema_sb_printf(b, "<th colspan=\"%d\">", nm);
        add_escaped(b, T->cols[c].label, FMT_HTML);
        tema_sb_add(b, "</th>");
    }
    tema_sb_add(b, "</tr>\n<tr>");
    for (int c = 0; c < T->n_cols; c++)
        for (int m = 0; m < nm; m++) {
            char mt[24];
            metric_title(t->metrics.name[m], mt, sizeof mt);
            tema_sb_printf(b, "<th>%s</th>", mt);
        }
    tema_sb_add(b, "</tr></thead>\n<tbody>\n");
    for (int r = 0; r < T->n_rows; r++) {
        int first_run = -1;
        for (int c = 0; c < T->n_cols && first_run < 0; c++)
            if (T->cells[r * T->n_cols + c].n_runs)
                first_run = T->cells[r * T->n_cols + c].runs[0];
        tema_sb_add(b, "<tr data-row=\"");
        add_escaped(b, T->rows[r].label, FMT_HTML);
        tema_sb_printf(b, "\"%s><th scope=\"row\">", r == T->baseline ? " class=\"baseline\"" : "");
        if (first_run >= 0)
            tema_sb_printf(b, "<a href=\"#%s\">", R->groups[R->runs[first_run].group].anchor);
        add_escaped(b, T->rows[r].label, FMT_HTML);
        tema_sb_add(b, first_run >= 0 ? "</a></th>" : "</th>");
        for (int c = 0; c < T->n_cols; c++)
            for (int m = 0; m < nm; m++) {
                const cell *ce = &T->cells[r * T->n_cols + c];
                tema_sb_add(b, "<td");
                if (T->baseline >= 0 && r != T->baseline && ce->n_vals[m])
                    tema_sb_printf(b, " title=\"p: per-user t %.3g, Wilcoxon %.3g, run-level t %.3g\"", ce->p_user_t[m],
                              ce->p_user_w[m], ce->p_run_t[m]);
                tema_sb_add(b, ">");
                tema_sb_add(b, ce->best[m] == 1 ? "<b>" : ce->best[m] == 2 ? "<u>" : "");
                add_value(b, t, ce, m, FMT_HTML);
                tema_sb_add(b, ce->best[m] == 1 ? "</b>" : ce->best[m] == 2 ? "</u>" : "");
                add_marks(b, ce->mark[m], FMT_HTML);
                tema_sb_add(b, "</td>");
            }
        tema_sb_add(b, "</tr>\n");
    }
    tema_sb_add(b, "</tbody>\n</table>\n<p class=\"legend\">");
    add_legend(b, T, FMT_HTML);
    tema_sb_add(b, "</p>\n");
}

/* ---- timing and memory --------------------------------------------------------------------- */

typedef struct timing_row {
    int n;
    double spe_mean, spe_std, epochs_mean, best_mean, total_mean, total_sum, peak_max;
    int n_early;
    char backend[64], threads[64];
} timing_row;

static void add_distinct(char *list, size_t cap, const char *item)
{
    size_t n = strlen(item);
    for (const char *p = list; (p = strstr(p, item));) {
        bool start = p == list || p[-1] == '/', end = p[n] == '\0' || p[n] == '/';
        if (start && end)
            return;
        p += n;
    }
    size_t len = strlen(list);
    snprintf(list + len, cap - len, "%s%s", len ? "/" : "", item);
}

static void timing_of(report_ctx *R, const group *g, timing_row *t)
{
    memset(t, 0, sizeof *t);
    double *spe = malloc(((size_t)g->n_runs + 1) * sizeof *spe), epochs = 0, best = 0, total = 0;
    int n_spe = 0;
    t->peak_max = NAN;
    for (int i = 0; i < g->n_runs; i++) {
        run *r = &R->runs[g->runs[i]];
        double s = jnum(r->final, "seconds_per_epoch");
        if (!isfinite(s) || s <= 0) {
            /* older runs: the mean of the epochs' own timings */
            load_epochs(R, r);
            double sum = 0;
            for (int k = 0; k < r->n_epochs; k++)
                sum += r->epochs[k].seconds;
            s = r->n_epochs ? sum / r->n_epochs : NAN;
        }
        if (isfinite(s) && spe)
            spe[n_spe++] = s;
        epochs += jnum(r->final, "epochs_run");
        best += jnum(r->final, "best_epoch");
        double tot = jnum(r->final, "total_seconds");
        total += tot;
        json_object *early = jget(r->final, "stopped_early");
        t->n_early += early && json_object_get_boolean(early);
        double peak = jnum(r->final, "peak_memory_bytes");
        if (isfinite(peak) && !(peak <= t->peak_max))
            t->peak_max = peak;
        json_object *b = r->meta ? jget(r->meta, "backend") : NULL;
        add_distinct(t->backend, sizeof t->backend,
                     b && json_object_is_type(b, json_type_string) ? json_object_get_string(b) : "?");
        char th[24] = "?";
        double threads = r->meta ? jnum(r->meta, "threads") : NAN;
        if (isfinite(threads))
            snprintf(th, sizeof th, "%.0f", threads);
        add_distinct(t->threads, sizeof t->threads, th);
    }
    t->n = g->n_runs;
    t->spe_mean = tema_stats_mean(spe, n_spe);
    t->spe_std = tema_stats_std(spe, n_spe);
    free(spe);
    t->epochs_mean = epochs / g->n_runs;
    t->best_mean = best / g->n_runs;
    t->total_mean = total / g->n_runs;
    t->total_sum = total;
}

static void fmt_duration(double s, char *buf, size_t cap)
{
    if (!isfinite(s))
        snprintf(buf, cap, "?");
    else if (s < 100)
        snprintf(buf, cap, "%.1f s", s);
    else if (s < 6000)
        snprintf(buf, cap, "%.1f min", s / 60);
    else
        snprintf(buf, cap, "%.2f h", s / 3600);
}

static void fmt_count(double v, char *buf, size_t cap)
{
    if (!isfinite(v))
        snprintf(buf, cap, "?");
    else if (v == floor(v))
        snprintf(buf, cap, "%.0f", v);
    else
        snprintf(buf, cap, "%.1f", v);
}

static void render_timing(report_ctx *R, tema_sb *md, tema_sb *tex, tema_sb *csv, tema_sb *html)
{
    static const char *const heads[] = {"cell", "runs", "s/epoch", "epochs run", "early stops", "best epoch",
                                        "time per run", "peak memory", "backend", "threads"};
    int nh = (int)(sizeof heads / sizeof heads[0]);
    tema_sb_add(md, "### Timing and memory\n\n|");
    tema_sb_add(tex, "% generated by tema report; needs \\usepackage{booktabs}\n\\begin{table}[t]\n\\centering\n"
                "\\caption{Timing and memory}\n\\label{tab:timing}\n\\begin{tabular}{lrrrrrrrll}\n\\toprule\n");
    tema_sb_add(csv, "cell,runs,seconds_per_epoch,seconds_per_epoch_std,epochs_run,early_stops,best_epoch,"
                "total_seconds_mean,total_seconds_sum,peak_memory_bytes,backend,threads\n");
    tema_sb_add(html, "<table class=\"timing\" id=\"tab-timing\">\n<thead><tr>");
    for (int h = 0; h < nh; h++) {
        tema_sb_printf(md, " %s |", heads[h]);
        tema_sb_printf(tex, "%s%s", h ? " & " : "", heads[h]);
        tema_sb_printf(html, "<th>%s</th>", heads[h]);
    }
    tema_sb_add(md, "\n|:---|");
    for (int h = 1; h < nh; h++)
        tema_sb_add(md, h >= nh - 2 ? ":---|" : "---:|");
    tema_sb_add(md, "\n");
    tema_sb_add(tex, " \\\\\n\\midrule\n");
    tema_sb_add(html, "</tr></thead>\n<tbody>\n");
    double all_total = 0;
    int all_runs = 0;
    for (int g = 0; g < R->n_groups; g++) {
        timing_row t;
        timing_of(R, &R->groups[g], &t);
        all_total += t.total_sum;
        all_runs += t.n;
        char spe[64], ep[32], best[32], total[32], peak[32], early[32];
        if (!isfinite(t.spe_mean))
            snprintf(spe, sizeof spe, "n/a");
        else if (isfinite(t.spe_std))
            snprintf(spe, sizeof spe, "%.2f \xc2\xb1 %.2f", t.spe_mean, t.spe_std);
        else
            snprintf(spe, sizeof spe, "%.2f", t.spe_mean);
        fmt_count(t.epochs_mean, ep, sizeof ep);
        fmt_count(t.best_mean, best, sizeof best);
        fmt_duration(t.total_mean, total, sizeof total);
        if (isfinite(t.peak_max))
            snprintf(peak, sizeof peak, "%.0f MiB", t.peak_max / 1048576.0);
        else
            snprintf(peak, sizeof peak, "?");
        snprintf(early, sizeof early, "%d/%d", t.n_early, t.n);
        const char *label = R->groups[g].label;
        const char *cols[] = {spe, ep, early, best, total, peak, t.backend, t.threads};
        tema_sb_add(md, "| ");
        add_escaped(md, label, FMT_MD);
        tema_sb_printf(md, " | %d", t.n);
        add_escaped(tex, label, FMT_TEX);
        tema_sb_printf(tex, " & %d", t.n);
        tema_sb_printf(html, "<tr data-row=\"");
        add_escaped(html, label, FMT_HTML);
        tema_sb_printf(html, "\"><th scope=\"row\"><a href=\"#%s\">", R->groups[g].anchor);
        add_escaped(html, label, FMT_HTML);
        tema_sb_printf(html, "</a></th><td>%d</td>", t.n);
        for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++) {
            tema_sb_add(md, " | ");
            add_escaped(md, cols[k], FMT_MD);
            tema_sb_add(tex, " & ");
            if (k == 0 && isfinite(t.spe_std))
                tema_sb_printf(tex, "%.2f $\\pm$ %.2f", t.spe_mean, t.spe_std);
            else
                add_escaped(tex, cols[k], FMT_TEX);
            tema_sb_add(html, "<td>");
            add_escaped(html, cols[k], FMT_HTML);
            tema_sb_add(html, "</td>");
        }
        tema_sb_add(md, " |\n");
        tema_sb_add(tex, " \\\\\n");
        tema_sb_add(html, "</tr>\n");
        add_csv_field(csv, label);
        tema_sb_printf(csv, ",%d,", t.n);
        add_csv_num(csv, t.spe_mean);
        tema_sb_add(csv, ",");
        add_csv_num(csv, t.spe_std);
        tema_sb_add(csv, ",");
        add_csv_num(csv, t.epochs_mean);
        tema_sb_printf(csv, ",%d,", t.n_early);
        add_csv_num(csv, t.best_mean);
        tema_sb_add(csv, ",");
        add_csv_num(csv, t.total_mean);
        tema_sb_add(csv, ",");
        add_csv_num(csv, t.total_sum);
        tema_sb_add(csv, ",");
        add_csv_num(csv, t.peak_max);
        tema_sb_add(csv, ",");
        add_csv_field(csv, t.backend);
        tema_sb_add(csv, ",");
        add_csv_field(csv, t.threads);
        tema_sb_add(csv, "\n");
    }
    char total[32];
    fmt_duration(all_total, total, sizeof total);
    tema_sb_printf(md, "\n%d runs, %s of training in all. s/epoch: mean \xc2\xb1 std over the seeds (validation "
                  "included); epochs run: mean (early stops: runs stopped by patience); time per run: mean of "
                  "total_seconds; peak memory: the largest peak RSS of a run.\n", all_runs, total);
    tema_sb_printf(tex, "\\bottomrule\n\\end{tabular}\n\\par\\smallskip{\\footnotesize %d runs, ", all_runs);
    add_escaped(tex, total, FMT_TEX);
    tema_sb_add(tex, " of training in all.}\n\\end{table}\n");
    tema_sb_printf(html, "</tbody>\n</table>\n<p class=\"legend\">%d runs, %s of training in all.</p>\n", all_runs, total);
}

/* ---- charts ---------------------------------------------------------------------------------- */

static char *plot_stem(report_ctx *R, const char *name)
{
    return path_join(&R->ar, R->plot_dir, name);
}

static void record_plot(report_ctx *R, const char *stem)
{
    char name[4200];
    for (int k = 0; k < 2; k++) {
        snprintf(name, sizeof name, "%s.%s", stem, k ? "png" : "svg");
        if (R->n_files == R->cap_files) {
            int nc = R->cap_files ? R->cap_files * 2 : 16;
            output_file *grown = ar_alloc(&R->ar, (size_t)nc * sizeof *grown);
            if (!grown)
                return;
            if (R->n_files)
                memcpy(grown, R->files, (size_t)R->n_files * sizeof *grown);
            R->files = grown;
            R->cap_files = nc;
        }
        R->files[R->n_files++].path = ar_strdup(&R->ar, name);
    }
}

static void table_bars(report_ctx *R, table *T)
{
    const table_spec *t = &T->spec;
    int ng = T->n_cols * t->metrics.n, nb = T->n_rows;
    if (!t->bars || ng == 0 || nb == 0)
        return;
    const char **groups = ar_alloc(&R->ar, (size_t)ng * sizeof *groups);
    const char **bars = ar_alloc(&R->ar, (size_t)nb * sizeof *bars);
    double *mean = ar_alloc(&R->ar, (size_t)(ng * nb) * sizeof *mean), *sd = ar_alloc(&R->ar, (size_t)(ng * nb) * sizeof *sd);
    char *stem = plot_stem(R, t->name);
    if (!groups || !bars || !mean || !sd || !stem)
        return;
    char *full = ar_alloc(&R->ar, strlen(stem) + 8);
    if (!full)
        return;
    sprintf(full, "%s-bars", stem);
    /* a legend of bare values ("0.2", "0.3") names its key: "lambda_1 = 0.2" */
    const bool bare = t->n_rows == 1 && t->rows[0].kind == AX_KEY && !t->rows[0].labels;
    const char *title = bare ? short_key(R, t->rows[0].key) : NULL;
    for (int r = 0; r < nb; r++) {
        bars[r] = T->rows[r].label;
        char *named = title ? ar_alloc(&R->ar, strlen(title) + strlen(bars[r]) + 4) : NULL;
        if (named) {
            sprintf(named, "%s = %s", title, bars[r]);
            bars[r] = named;
        }
    }
    for (int c = 0; c < T->n_cols; c++)
        for (int m = 0; m < t->metrics.n; m++) {
            int g = c * t->metrics.n + m;
            char mt[24], lab[256];
            metric_title(t->metrics.name[m], mt, sizeof mt);
            snprintf(lab, sizeof lab, "%s %s", T->cols[c].label, mt);
            groups[g] = ar_strdup(&R->ar, lab);
            for (int r = 0; r < nb; r++) {
                const cell *ce = &T->cells[r * T->n_cols + c];
                double scale = t->percent ? 100 : 1;
                mean[g * nb + r] = ce->n_vals[m] ? ce->mean[m] * scale : NAN;
                sd[g * nb + r] = ce->std[m] * scale;
            }
        }
    char ylabel[64];
    snprintf(ylabel, sizeof ylabel, "%s%s", t->split, t->percent ? " (%)" : "");
    tema_err e = {0};
    if (tema_plot_bars(full, t->title, ylabel, groups, ng, bars, nb, mean, sd, &e) != TEMA_OK) {
        note(R, "bar chart of table %s: %s", t->name, e.msg);
        return;
    }
    T->bars_stem = full;
    record_plot(R, full);
}

/* A heatmap when the rows are one key and the columns one key (besides the domain). */
static tema_status table_heatmaps(report_ctx *R, table *T, int index, tema_err *err)
{
    const table_spec *t = &T->spec;
    if (t->heatmap == 0)
        return TEMA_OK;
    int key_col = -1, dom_col = -1, n_other = 0;
    for (int a = 0; a < t->n_cols; a++) {
        if (t->cols[a].kind == AX_DOMAIN)
            dom_col = a;
        else {
            key_col = a;
            n_other++;
        }
    }
    bool shape = t->n_rows == 1 && t->rows[0].kind != AX_DOMAIN && n_other == 1;
    if (!shape) {
        if (t->heatmap == 1)
            note(R, "table %s: a heatmap needs one row axis and one column axis besides the domain; skipped", t->name);
        return TEMA_OK;
    }
    const axis *cax = &t->cols[key_col];
    if (t->heatmap < 0 && (t->rows[0].n_vals < 2 || cax->n_vals < 2))
        return TEMA_OK;
    int m = 0;
    if (t->heatmap_metric[0]) {
        m = tema_metric_index(&t->metrics, t->heatmap_metric);
        if (m < 0) {
            char ctx[64];
            snprintf(ctx, sizeof ctx, "report.tables[%d].heatmap", index);
            return spec_fail(err, t->node, "%s: '%s' is not one of the table's metrics; add it to metrics", ctx,
                             t->heatmap_metric);
        }
    }
    int nr = T->n_rows, nc = cax->n_vals;
    const char **rl = ar_alloc(&R->ar, (size_t)nr * sizeof *rl), **cl = ar_alloc(&R->ar, (size_t)nc * sizeof *cl);
    double *v = ar_alloc(&R->ar, (size_t)(nr * nc) * sizeof *v);
    if (!rl || !cl || !v)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    for (int r = 0; r < nr; r++)
        rl[r] = T->rows[r].label;
    for (int c = 0; c < nc; c++)
        cl[c] = cax->vals[c].label;
    const axis *dax = &t->cols[dom_col];
    for (int d = 0; d < dax->n_vals; d++) {
        for (int k = 0; k < nr * nc; k++)
            v[k] = NAN;
        for (int c = 0; c < T->n_cols; c++) {
            if (T->cols[c].vi[dom_col] != d)
                continue;
            for (int r = 0; r < nr; r++) {
                const cell *ce = &T->cells[r * T->n_cols + c];
                if (ce->n_vals[m])
                    v[r * nc + T->cols[c].vi[key_col]] = t->percent ? ce->mean[m] * 100 : ce->mean[m];
            }
        }
        char mt[24], title[512], name[256];
        metric_title(t->metrics.name[m], mt, sizeof mt);
        snprintf(title, sizeof title, "mean %s %s%s, domain %s", t->split, mt, t->percent ? " (%)" : "",
                 dax->vals[d].label);
        snprintf(name, sizeof name, "%s-heatmap-%s", t->name, dax->vals[d].raw);
        char *stem = plot_stem(R, name);
        if (!stem)
            return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
        tema_err e = {0};
        const char *ylabel = t->rows[0].kind == AX_KEY ? t->rows[0].key : row_title(R, T);
        if (tema_plot_heatmap(stem, title, cax->kind == AX_KEY ? cax->key : "", ylabel, rl, nr, cl, nc, v, t->digits,
                              &e) != TEMA_OK) {
            note(R, "heatmap of table %s: %s", t->name, e.msg);
            continue;
        }
        T->heatmap_stems[dax->vals[d].domain] = stem;
        record_plot(R, stem);
    }
    return TEMA_OK;
}

static void group_curves(report_ctx *R, group *g, int index)
{
    int ns = g->n_runs;
    tema_plot_series *loss = ar_alloc(&R->ar, (size_t)ns * sizeof *loss);
    tema_plot_series *mrr[2] = {ar_alloc(&R->ar, (size_t)ns * sizeof *loss), ar_alloc(&R->ar, (size_t)ns * sizeof *loss)};
    if (!loss || !mrr[0] || !mrr[1])
        return;
    int have_loss = 0, have_mrr[2] = {0, 0};
    for (int i = 0; i < ns; i++) {
        run *r = &R->runs[g->runs[i]];
        load_epochs(R, r);
        double *x = ar_alloc(&R->ar, ((size_t)r->n_epochs + 1) * sizeof *x);
        double *yl = ar_alloc(&R->ar, ((size_t)r->n_epochs + 1) * sizeof *yl);
        double *ym[2] = {ar_alloc(&R->ar, ((size_t)r->n_epochs + 1) * sizeof *x),
                         ar_alloc(&R->ar, ((size_t)r->n_epochs + 1) * sizeof *x)};
        char label[48];
        snprintf(label, sizeof label, "seed %lld", (long long)r->seed);
        const char *lab = ar_strdup(&R->ar, label);
        if (!x || !yl || !ym[0] || !ym[1] || !lab)
            return;
        for (int k = 0; k < r->n_epochs; k++) {
            x[k] = r->epochs[k].epoch;
            yl[k] = r->epochs[k].loss;
            have_loss += isfinite(yl[k]);
            for (int d = 0; d < 2; d++) {
                ym[d][k] = r->epochs[k].valid_mrr[d];
                have_mrr[d] += isfinite(ym[d][k]);
            }
        }
        loss[i] = (tema_plot_series){lab, x, yl, r->n_epochs};
        for (int d = 0; d < 2; d++)
            mrr[d][i] = (tema_plot_series){lab, x, ym[d], r->n_epochs};
    }
    if (!have_loss && !have_mrr[0] && !have_mrr[1])
        return; /* no epochs.jsonl (e.g. a model without training) */
    tema_plot_panel panels[3];
    int np = 0;
    char title[3][160];
    snprintf(title[0], sizeof title[0], "training loss");
    panels[np++] = (tema_plot_panel){title[0], "epoch", "loss", loss, ns};
    for (int d = 0; d < 2; d++)
        if (have_mrr[d]) {
            snprintf(title[d + 1], sizeof title[d + 1], "valid MRR, domain %s (%s)", d ? "Y" : "X", R->rule_for_curves);
            panels[np++] = (tema_plot_panel){title[d + 1], "epoch", "MRR", mrr[d], ns};
        }
    char name[64];
    snprintf(name, sizeof name, "curves-%d", index + 1);
    char *stem = plot_stem(R, name);
    if (!stem)
        return;
    tema_err e = {0};
    if (tema_plot_lines(stem, panels, np, &e) != TEMA_OK) {
        note(R, "training curves of %s: %s", g->label, e.msg);
        return;
    }
    g->curves_stem = stem;
    record_plot(R, stem);
}

/* ---- HTML page ------------------------------------------------------------------------------ */

static void add_base64(tema_sb *b, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char out[4];
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        out[0] = tab[v >> 18 & 63];
        out[1] = tab[v >> 12 & 63];
        out[2] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[3] = i + 2 < n ? tab[v & 63] : '=';
        tema_sb_addn(b, out, 4);
    }
}

/* <figure> with the chart as a data: URI (SVG, else PNG); nothing when neither file exists. */
static void add_figure(tema_sb *b, const char *stem, const char *id, const char *caption)
{
    if (!stem)
        return;
    static const char *const kinds[][2] = {{".svg", "image/svg+xml"}, {".png", "image/png"}};
    for (int k = 0; k < 2; k++) {
        char path[4200];
        snprintf(path, sizeof path, "%s%s", stem, kinds[k][0]);
        char *data = NULL;
        size_t len = 0;
        tema_err e = {0};
        struct stat st;
        if (stat(path, &st) != 0 || tema_read_file(path, &data, &len, &e) != TEMA_OK)
            continue;
        tema_sb_printf(b, "<figure id=\"%s\"><img alt=\"", id);
        add_escaped(b, caption, FMT_HTML);
        tema_sb_printf(b, "\" src=\"data:%s;base64,", kinds[k][1]);
        add_base64(b, (const unsigned char *)data, len);
        tema_sb_add(b, "\"><figcaption>");
        add_escaped(b, caption, FMT_HTML);
        tema_sb_add(b, "</figcaption></figure>\n");
        free(data);
        return;
    }
}

static void render_html(report_ctx *R, table *tables, int n_tables, const tema_sb *timing_html, tema_sb *b)
{
    tema_sb_add(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>tema report: ");
    add_escaped(b, R->name, FMT_HTML);
    tema_sb_add(b, "</title>\n<style>\n"
              "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}\n"
              "nav{background:#f6f8fa;padding:.5em 1em;border-radius:6px}\n"
              "table{border-collapse:collapse;margin:1em 0;font-variant-numeric:tabular-nums}\n"
              "th,td{padding:.3em .7em;text-align:right;border-bottom:1px solid #ddd}\n"
              "th[scope=row],td:first-child{text-align:left}\n"
              "thead th{border-bottom:2px solid #444;text-align:center}\n"
              "tr.baseline{background:#f4f4f4}\n.sig{color:#b00020}\n.legend{font-size:90%;color:#555}\n"
              "figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}\n"
              "pre{background:#f6f8fa;padding:1em;overflow:auto;font-size:85%}\n"
              "</style>\n</head>\n<body>\n<h1>Experiment ");
    add_escaped(b, R->name, FMT_HTML);
    tema_sb_printf(b, "</h1>\n<p>%d finished runs in %d cells", R->n_runs, R->n_groups);
    if (R->n_pending)
        tema_sb_printf(b, ", %d pending", R->n_pending);
    tema_sb_add(b, "; from ");
    add_escaped(b, R->exp_dir, FMT_HTML);
    tema_sb_add(b, ".</p>\n<nav><ul>\n");
    for (int i = 0; i < n_tables; i++) {
        tema_sb_printf(b, "<li><a href=\"#table-%s\">", tables[i].spec.name);
        add_escaped(b, tables[i].spec.title, FMT_HTML);
        tema_sb_add(b, "</a></li>\n");
    }
    if (timing_html)
        tema_sb_add(b, "<li><a href=\"#timing\">Timing and memory</a></li>\n");
    tema_sb_add(b, "<li><a href=\"#curves\">Training curves</a></li>\n<li><a href=\"#configs\">Configurations</a></li>\n"
              "</ul></nav>\n");
    for (int i = 0; i < n_tables; i++) {
        table *T = &tables[i];
        tema_sb_printf(b, "<section id=\"table-%s\">\n<h2>", T->spec.name);
        add_escaped(b, T->spec.title, FMT_HTML);
        tema_sb_add(b, "</h2>\n");
        render_html_table(R, T, b);
        char id[300], cap[600];
        snprintf(id, sizeof id, "fig-%s-bars", T->spec.name);
        snprintf(cap, sizeof cap, "%s: mean and std per cell", T->spec.title);
        add_figure(b, T->bars_stem, id, cap);
        for (int d = 0; d < 2; d++) {
            snprintf(id, sizeof id, "fig-%s-heatmap-%s", T->spec.name, d ? "Y" : "X");
            snprintf(cap, sizeof cap, "%s: heatmap, domain %s", T->spec.title, d ? "Y" : "X");
            add_figure(b, T->heatmap_stems[d], id, cap);
        }
        tema_sb_add(b, "</section>\n");
    }
    if (timing_html) {
        tema_sb_add(b, "<section id=\"timing\">\n<h2>Timing and memory</h2>\n");
        tema_sb_add(b, tema_sb_str(timing_html));
        tema_sb_add(b, "</section>\n");
    }
    tema_sb_add(b, "<section id=\"curves\">\n<h2>Training curves</h2>\n");
    bool any = false;
    for (int g = 0; g < R->n_groups; g++) {
        char id[64], cap[600];
        snprintf(id, sizeof id, "curves-%d", g + 1);
        snprintf(cap, sizeof cap, "%s: loss and validation MRR per epoch, one line per seed", R->groups[g].label);
        if (R->groups[g].curves_stem) {
            add_figure(b, R->groups[g].curves_stem, id, cap);
            tema_sb_printf(b, "<p><a href=\"#%s\">configuration</a></p>\n", R->groups[g].anchor);
            any = true;
        }
    }
    if (!any)
        tema_sb_add(b, "<p>No training curves (no epochs.jsonl, or plots were turned off).</p>\n");
    tema_sb_add(b, "</section>\n<section id=\"configs\">\n<h2>Configurations</h2>\n");
    for (int g = 0; g < R->n_groups; g++) {
        group *gr = &R->groups[g];
        tema_sb_printf(b, "<details id=\"%s\" open><summary>", gr->anchor);
        add_escaped(b, gr->label, FMT_HTML);
        tema_sb_printf(b, " &mdash; %d run%s:", gr->n_runs, gr->n_runs == 1 ? "" : "s");
        for (int i = 0; i < gr->n_runs; i++) {
            const run *r = &R->runs[gr->runs[i]];
            tema_sb_printf(b, " <code>%s</code> (seed %lld)", r->id, (long long)r->seed);
        }
        if (gr->curves_stem)
            tema_sb_printf(b, " &middot; <a href=\"#curves-%d\">curves</a>", g + 1);
        tema_sb_add(b, "</summary>\n<pre>");
        const run *r0 = &R->runs[gr->runs[0]];
        char *yaml = NULL;
        size_t len = 0;
        tema_err e = {0};
        char path[4200];
        snprintf(path, sizeof path, "%s/config.yaml", r0->dir);
        struct stat st;
        if (stat(path, &st) == 0 && tema_read_file(path, &yaml, &len, &e) == TEMA_OK) {
            add_escaped(b, yaml, FMT_HTML);
            free(yaml);
        } else {
            add_escaped(b, json_object_to_json_string_ext(r0->config, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED),
                        FMT_HTML);
        }
        tema_sb_add(b, "</pre>\n</details>\n");
    }
    /* lets a headless browser (tests/test_report.c) tell that every chart decoded */
    tema_sb_add(b, "</section>\n<script>\nwindow.addEventListener('load', function () {\n"
              "  var ok = 0, im = document.images;\n"
              "  for (var i = 0; i < im.length; i++) if (im[i].complete && im[i].naturalWidth > 0) ok++;\n"
              "  document.body.setAttribute('data-images-ok', ok + '/' + im.length);\n});\n</script>\n"
              "</body>\n</html>\n");
}

/* ---- the command --------------------------------------------------------------------------- */

static tema_status write_out(report_ctx *R, const char *name, const tema_sb *text, tema_err *err)
{
    if (text->oom)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    char *path = path_join(&R->ar, R->out_dir, name);
    if (!path)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    tema_status st = tema_write_file_atomic(path, tema_sb_str(text), text->n, err);
    if (st == TEMA_OK && R->n_files < R->cap_files) {
        R->files[R->n_files++].path = path;
    } else if (st == TEMA_OK) {
        int nc = R->cap_files ? R->cap_files * 2 : 16;
        output_file *grown = ar_alloc(&R->ar, (size_t)nc * sizeof *grown);
        if (!grown)
            return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
        if (R->n_files)
            memcpy(grown, R->files, (size_t)R->n_files * sizeof *grown);
        R->files = grown;
        R->cap_files = nc;
        R->files[R->n_files++].path = path;
    }
    return st;
}

static tema_status report_block(report_ctx *R, table **tables, int *n_tables, bool *curves, bool *timing,
                                tema_err *err)
{
    const tema_cfg *rep = R->report_node;
    const tema_cfg *list = NULL;
    *curves = *timing = true;
    if (rep && rep->type != TEMA_CFG_NULL) {
        if (rep->type != TEMA_CFG_MAP)
            return spec_fail(err, rep, "report: expected a map with tables, curves, timing");
        for (size_t i = 0; i < rep->n_items; i++) {
            const tema_cfg *c = rep->items[i];
            const char *s = scalar(c);
            if (!strcmp(c->key, "tables")) {
                list = c;
                if (c->type != TEMA_CFG_LIST)
                    return spec_fail(err, c, "report.tables: expected a list of tables ({name: ..., rows: ...})");
            } else if (!strcmp(c->key, "curves") || !strcmp(c->key, "timing")) {
                if (!s || !(is_true_word(s) || is_false_word(s)))
                    return spec_fail(err, c, "report.%s: expected true or false", c->key);
                *(strcmp(c->key, "curves") ? timing : curves) = is_true_word(s);
            } else {
                return spec_fail(err, c, "report: unknown key '%s'; the report block takes tables, curves, timing",
                                 c->key);
            }
        }
    }
    int n = list && list->n_items ? (int)list->n_items : 1;
    *tables = ar_alloc(&R->ar, (size_t)n * sizeof **tables);
    if (!*tables)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    memset(*tables, 0, (size_t)n * sizeof **tables);
    tema_status st = TEMA_OK;
    if (list && list->n_items) {
        for (int i = 0; i < n && st == TEMA_OK; i++) {
            st = parse_table(R, list->items[i], i, &(*tables)[i].spec, err);
            for (int k = 0; st == TEMA_OK && k < i; k++)
                if (!strcmp((*tables)[k].spec.name, (*tables)[i].spec.name))
                    st = spec_fail(err, list->items[i], "report.tables[%d].name: '%s' is already the name of table %d",
                                   i, (*tables)[i].spec.name, k);
        }
    } else {
        st = default_table(R, &(*tables)[0].spec, err);
    }
    *n_tables = n;
    return st;
}

tema_status tema_report(const char *exp_path, const tema_report_opts *o, tema_err *err)
{
    static const tema_report_opts defaults = {0};
    if (!o)
        o = &defaults;
    report_ctx ctx = {0}, *R = &ctx;
    R->diag = o->diag;
    snprintf(R->rule_for_curves, sizeof R->rule_for_curves, "optimistic");
    tema_sb md = {0}, text = {0}, html_timing = {0}, html = {0};
    tema_sb tex_t = {0}, csv_t = {0};
    tema_status st = tema_cfg_load(exp_path, &R->yaml, err);
    if (st != TEMA_OK)
        goto done;
    R->exp_path = ar_strdup(&R->ar, exp_path);
    R->name = ar_strdup(&R->ar, tema_cfg_str(R->yaml, "name", NULL));
    if (!R->name || !valid_name(R->name)) {
        st = spec_fail(err, tema_cfg_get(R->yaml, "name") ? tema_cfg_get(R->yaml, "name") : R->yaml,
                       "%s: %s; the report reads RESULTS/<name>/", exp_path,
                       R->name ? "the name is not a folder name" : "no name: key");
        goto done;
    }
    R->results_dir = ar_strdup(&R->ar, o->results_dir && *o->results_dir ? o->results_dir : "results");
    R->exp_dir = path_join(&R->ar, R->results_dir, R->name);
    R->out_dir = o->out_dir && *o->out_dir ? ar_strdup(&R->ar, o->out_dir) : path_join(&R->ar, R->exp_dir, "report");
    R->plot_dir = R->out_dir ? path_join(&R->ar, R->out_dir, "plots") : NULL;
    R->report_node = tema_cfg_get(R->yaml, "report");
    if (!R->exp_dir || !R->out_dir || !R->plot_dir) {
        st = tema_fail(err, TEMA_ENOMEM, "report: out of memory");
        goto done;
    }
    if ((st = scan_runs(R, err)) != TEMA_OK)
        goto done;
    if (!o->all_runs)
        apply_manifest(R);
    if (!R->have_manifest && R->n_unfinished)
        note(R, "%d run folder(s) under %s have not finished (no DONE): left out", R->n_unfinished, R->exp_dir);
    if (R->n_runs == 0) {
        if (R->n_stale)
            st = tema_fail(err, TEMA_ENOTFOUND, "%s: no finished run of the current %s; run it with tema run %s, "
                           "or report the %d run(s) of its earlier version with --all-runs", R->exp_dir, exp_path,
                           exp_path, R->n_stale);
        else
            st = tema_fail(err, TEMA_ENOTFOUND, "%s: no finished runs of %s%s; run it with tema run %s", R->exp_dir,
                           exp_path, R->n_pending ? " yet" : "", exp_path);
        goto done;
    }
    if ((st = make_groups(R, err)) != TEMA_OK)
        goto done;
    table *tables = NULL;
    int n_tables = 0;
    bool curves = true, timing = true;
    if ((st = report_block(R, &tables, &n_tables, &curves, &timing, err)) != TEMA_OK)
        goto done;
    snprintf(R->rule_for_curves, sizeof R->rule_for_curves, "%s", tema_rank_rule_name(tables[0].spec.rule));
    for (int i = 0; i < n_tables; i++)
        if ((st = build_table(R, &tables[i], i, err)) != TEMA_OK)
            goto done;
    if ((st = tema_mkdirs(R->out_dir, err)) != TEMA_OK)
        goto done;
    if (!o->no_plots && (st = tema_mkdirs(R->plot_dir, err)) != TEMA_OK)
        goto done;
    unsigned formats = o->formats ? o->formats : TEMA_REPORT_ALL;
    tema_sb_printf(&md, "# Experiment %s\n\n%d finished run%s in %d cell%s", R->name, R->n_runs, R->n_runs == 1 ? "" : "s",
              R->n_groups, R->n_groups == 1 ? "" : "s");
    if (R->n_pending)
        tema_sb_printf(&md, ", %d pending", R->n_pending);
    tema_sb_printf(&md, " (%s).\n\n", R->exp_dir);
    for (int i = 0; i < n_tables && st == TEMA_OK; i++) {
        table *T = &tables[i];
        char name[300];
        tema_sb_reset(&text);
        render_md(R, T, &text);
        tema_sb_add(&md, tema_sb_str(&text));
        tema_sb_add(&md, "\n");
        if (formats & TEMA_REPORT_MD) {
            snprintf(name, sizeof name, "%s.md", T->spec.name);
            st = write_out(R, name, &text, err);
        }
        if (st == TEMA_OK && (formats & TEMA_REPORT_LATEX)) {
            tema_sb_reset(&text);
            render_tex(R, T, &text);
            snprintf(name, sizeof name, "%s.tex", T->spec.name);
            st = write_out(R, name, &text, err);
        }
        if (st == TEMA_OK && (formats & TEMA_REPORT_CSV)) {
            tema_sb_reset(&text);
            render_csv(R, T, &text);
            snprintf(name, sizeof name, "%s.csv", T->spec.name);
            st = write_out(R, name, &text, err);
        }
    }
    if (st != TEMA_OK)
        goto done;
    if (timing) {
        tema_sb_reset(&text);
        render_timing(R, &text, &tex_t, &csv_t, &html_timing);
        tema_sb_add(&md, tema_sb_str(&text));
        if (formats & TEMA_REPORT_MD)
            st = write_out(R, "timing.md", &text, err);
        if (st == TEMA_OK && (formats & TEMA_REPORT_LATEX))
            st = write_out(R, "timing.tex", &tex_t, err);
        if (st == TEMA_OK && (formats & TEMA_REPORT_CSV))
            st = write_out(R, "timing.csv", &csv_t, err);
        if (st != TEMA_OK)
            goto done;
    }
    if (!o->no_plots) {
        for (int i = 0; i < n_tables && st == TEMA_OK; i++) {
            table_bars(R, &tables[i]);
            st = table_heatmaps(R, &tables[i], i, err);
        }
        for (int g = 0; curves && st == TEMA_OK && g < R->n_groups; g++)
            group_curves(R, &R->groups[g], g);
        if (st != TEMA_OK)
            goto done;
    }
    if (R->n_pending)
        tema_sb_printf(&md, "\nNote: %d run%s of the grid %s not finished yet; `tema status %s` lists them.\n",
                  R->n_pending, R->n_pending == 1 ? "" : "s", R->n_pending == 1 ? "has" : "have", exp_path);
    if ((st = write_out(R, "report.md", &md, err)) != TEMA_OK)
        goto done;
    if (o->html) {
        render_html(R, tables, n_tables, timing ? &html_timing : NULL, &html);
        if ((st = write_out(R, "report.html", &html, err)) != TEMA_OK)
            goto done;
    }
    if (o->out) {
        fputs(tema_sb_str(&md), o->out);
        fflush(o->out);
    }
    if (R->diag) {
        fprintf(R->diag, "tema: report: wrote %d files to %s/", R->n_files, R->out_dir);
        for (int i = 0; i < R->n_files; i++)
            if (strstr(R->files[i].path, "report.html"))
                fprintf(R->diag, " (open %s)", R->files[i].path);
        fputc('\n', R->diag);
    }
done:
    if (st == TEMA_OK && (R->ar.oom || md.oom || text.oom || html.oom))
        st = tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    for (int i = 0; i < R->n_runs; i++) {
        json_object_put(R->runs[i].config);
        json_object_put(R->runs[i].final);
        json_object_put(R->runs[i].meta);
    }
    tema_cfg_free(R->yaml);
    tema_sb_free(&md);
    tema_sb_free(&text);
    tema_sb_free(&html_timing);
    tema_sb_free(&html);
    tema_sb_free(&tex_t);
    tema_sb_free(&csv_t);
    ar_free(&R->ar);
    return st;
}

static const char report_usage[] =
    "usage: tema report EXP.yaml [--format md|latex|csv|all] [--out DIR] [--results DIR] [--html]\n"
    "                  [--no-plots] [--all-runs]\n"
    "  Regenerates the tables (Markdown, LaTeX, CSV), the timing table and the plots of an\n"
    "  experiment from its run folders; prints the Markdown. --format takes a comma list.\n"
    "  --html also writes an HTML page; --no-plots skips the charts; --all-runs reports every finished\n"
    "  run folder of the experiment, not only those of its current grid.\n";

static int usage(const char *msg)
{
    if (msg)
        fprintf(stderr, "tema: report: %s\n\n", msg);
    fputs(report_usage, stderr);
    return 2;
}

int tema_report_main(int argc, char **argv)
{
    tema_report_opts o = {.out = stdout, .diag = stderr};
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "--format") || !strcmp(a, "--out") || !strcmp(a, "--results")) && i + 1 >= argc)
            return usage("this option takes a value");
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(report_usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--format")) {
            const char *v = argv[++i];
            o.formats = 0;
            char buf[128];
            snprintf(buf, sizeof buf, "%s", v);
            char *save = NULL;
            for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (!strcmp(tok, "md") || !strcmp(tok, "markdown"))
                    o.formats |= TEMA_REPORT_MD;
                else if (!strcmp(tok, "latex") || !strcmp(tok, "tex"))
                    o.formats |= TEMA_REPORT_LATEX;
                else if (!strcmp(tok, "csv"))
                    o.formats |= TEMA_REPORT_CSV;
                else if (!strcmp(tok, "all"))
                    o.formats |= TEMA_REPORT_ALL;
                else {
                    fprintf(stderr, "tema: report: --format: unknown format '%s'; use md, latex, csv or all\n", tok);
                    return 2;
                }
            }
        } else if (!strcmp(a, "--out")) {
            o.out_dir = argv[++i];
        } else if (!strcmp(a, "--results")) {
            o.results_dir = argv[++i];
        } else if (!strcmp(a, "--html")) {
            o.html = true;
        } else if (!strcmp(a, "--no-plots")) {
            o.no_plots = true;
        } else if (!strcmp(a, "--all-runs")) {
            o.all_runs = true;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "tema: report: unknown option '%s'\n", a);
            return usage(NULL);
        } else if (!path) {
            path = a;
        } else {
            return usage("only one experiment file may be given");
        }
    }
    if (!path)
        return usage("missing the experiment file (EXP.yaml)");
    tema_err err = {0};
    if (tema_report(path, &o, &err) != TEMA_OK) {
        fprintf(stderr, "tema: error: %s\n", err.msg[0] ? err.msg : tema_status_name(err.code));
        return 1;
    }
    return 0;
}
