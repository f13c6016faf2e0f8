/* core/grid.c - experiment grids: the runs of an experiment file (every grid entry
 * resolved, its id and folder), their labels and the manifest. See grid.h for the format
 * and the files in a run folder. grid_parse.c reads the `grid:` block, grid_runs.c the run
 * folders; grid_local.c and grid_slurm.c run the entries. */
#include "grid.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "grid_internal.h"
#include "results.h"
#include "run_id.h"
#include "util.h"

/* A grid larger than this is almost certainly a mistake (and its manifest unreadable). */
#define MAX_RUNS 100000

/* ---- compact flow YAML of a value (the manifest's key=value) ---- */

static bool needs_quotes(const tema_cfg *n)
{
    const char *v = n->value ? n->value : "";
    if (!*v) return true;
    if (!n->quoted) return false; /* plain scalars read back as written */
    /* a quoted string that would read back as something else, or break the flow syntax */
    if (tema_cfg_is_number(v) || !strcmp(v, "true") || !strcmp(v, "false") || !strcmp(v, "null") ||
        !strcmp(v, "~"))
        return true;
    if (strpbrk(v, ",:{}[]#&*!|>'\"%@`\n\t") || v[0] == ' ' || v[0] == '-' || v[0] == '?' ||
        v[strlen(v) - 1] == ' ')
        return true;
    return false;
}

static void flow_yaml(tema_sb *b, const tema_cfg *n)
{
    switch (n->type) {
    case TEMA_CFG_NULL: tema_sb_add(b, "null"); return;
    case TEMA_CFG_SCALAR:
        if (!needs_quotes(n)) {
            tema_sb_add(b, n->value);
            return;
        }
        tema_sb_add(b, "\"");
        for (const char *p = n->value ? n->value : ""; *p; p++) {
            if (*p == '"' || *p == '\\') tema_sb_addn(b, "\\", 1);
            if (*p == '\n') tema_sb_add(b, "\\n");
            else if (*p == '\t') tema_sb_add(b, "\\t");
            else tema_sb_addn(b, p, 1);
        }
        tema_sb_add(b, "\"");
        return;
    case TEMA_CFG_MAP:
        tema_sb_add(b, "{");
        for (size_t i = 0; i < n->n_items; i++) {
            if (i) tema_sb_add(b, ", ");
            tema_sb_add(b, n->items[i]->key ? n->items[i]->key : "");
            tema_sb_add(b, ": ");
            flow_yaml(b, n->items[i]);
        }
        tema_sb_add(b, "}");
        return;
    case TEMA_CFG_LIST:
        tema_sb_add(b, "[");
        for (size_t i = 0; i < n->n_items; i++) {
            if (i) tema_sb_add(b, ", ");
            flow_yaml(b, n->items[i]);
        }
        tema_sb_add(b, "]");
        return;
    }
}

/* ---- applying a value at a key path ---- */

/* Puts `value` (owned; freed on failure) at the dotted path in root, creating maps on the
 * way (located at `at`). Problems go to d. */
static bool set_path(tema_cfg *root, const char *key, tema_cfg *value, const tema_cfg *at, tema_cfg_diag *d)
{
    char where[1400];
    tema_cfg_where(at, true, where, sizeof where);
    char *path = strdup(key);
    if (!path) {
        tema_cfg_free(value);
        tema_cfg_report(d, TEMA_ENOMEM, where, "grid: out of memory");
        return false;
    }
    tema_cfg *n = root;
    char *save = NULL;
    bool ok = true;
    for (char *seg = strtok_r(path, ".", &save); seg && ok;) {
        char *next = strtok_r(NULL, ".", &save);
        if (n->type == TEMA_CFG_NULL) tema_cfg_retype(n, TEMA_CFG_MAP);
        /* `loss: bpr` is {plugin: bpr}: grid keys may reach its options */
        if (!tema_cfg_expand_plugin(n)) {
            ok = false;
            tema_cfg_report(d, TEMA_ENOMEM, where, "grid: out of memory");
            break;
        }
        if (n->type == TEMA_CFG_MAP) {
            size_t i;
            tema_cfg *child = tema_cfg_child(n, seg, &i);
            if (!next) {
                free(value->key);
                value->key = strdup(seg);
                if (!value->key) {
                    ok = false; /* value is freed below */
                } else {
                    if (child) tema_cfg_replace(n, i, value);
                    else ok = tema_cfg_append(n, value); /* frees value on failure */
                    value = NULL;
                }
                if (!ok) tema_cfg_report(d, TEMA_ENOMEM, where, "grid: out of memory");
                break;
            }
            if (!child) {
                child = tema_cfg_new(TEMA_CFG_MAP, seg, at->file, at->line, at->col);
                if (!child || !tema_cfg_append(n, child)) {
                    ok = false;
                    tema_cfg_report(d, TEMA_ENOMEM, where, "grid: out of memory");
                    break;
                }
            }
            n = child;
        } else { /* a list: the segment is an index */
            char *end;
            errno = 0;
            unsigned long idx = strtoul(seg, &end, 10);
            if (!*seg || *end || errno || seg[0] == '-' || idx >= n->n_items) {
                tema_cfg_report(d, TEMA_EINVAL, where,
                                "grid: '%s': '%.*s' is a list of %zu element%s; '%s' is not an index (use 0..%zu)",
                                key, (int)(seg - path > 0 ? seg - path - 1 : 0), key, n->n_items,
                                n->n_items == 1 ? "" : "s", seg, n->n_items ? n->n_items - 1 : 0);
                ok = false;
                break;
            }
            if (!next) {
                free(value->key);
                value->key = NULL;
                tema_cfg_replace(n, idx, value);
                value = NULL;
                break;
            }
            n = n->items[idx];
        }
        seg = next;
    }
    tema_cfg_free(value);
    free(path);
    return ok;
}

/* ---- expansion ---- */

static void strip_key(tema_cfg *map, const char *key)
{
    size_t i;
    if (tema_cfg_child(map, key, &i)) tema_cfg_free(tema_cfg_take(map, i));
}

/* What every run of one expansion shares. */
typedef struct expansion {
    tema_grid *g;
    tema_grid_block *gp;     /* its keys move to g->keys once the grid is sized */
    tema_cfg *base;          /* the file without `grid` and `report` */
    const char *path;
    const char *const *overrides;
    int n_overrides;
    tema_registry *reg;
    FILE *diag;
} expansion;

/* The run that takes value pick[a] on each axis a, resolved as tema_cfg_resolve does with
 * the grid's values between the file and --set; a tree that did not take every value is
 * not validated, its errors would only echo the first problem. */
static tema_status resolve_one(const expansion *x, const size_t *pick, tema_cfg **out, tema_err *err)
{
    const tema_grid_block *gp = x->gp;
    *out = NULL;
    tema_cfg_diag d = {.out = x->diag, .err = err};
    tema_cfg *root = NULL;
    tema_err e = {0};
    if (tema_cfg_defaults(&root, &e) != TEMA_OK) {
        tema_cfg_report(&d, e.code, TEMA_CFG_DEFAULTS_LABEL, "%s", e.msg);
        return tema_cfg_diag_flush(&d);
    }
    tema_cfg *file = tema_cfg_clone(x->base);
    if (!file) {
        tema_cfg_free(root);
        return tema_fail(err, TEMA_ENOMEM, "out of memory");
    }
    tema_cfg_merge(root, file);
    for (size_t a = 0; a < gp->n_axes; a++) {
        const tema_grid_axis *ax = &gp->axes[a];
        for (size_t k = ax->first; k < ax->first + ax->count; k++) {
            const tema_cfg *v = gp->lists[k]->items[pick[a]];
            tema_cfg *c = tema_cfg_clone(v);
            if (!c) {
                tema_cfg_free(root);
                return tema_fail(err, TEMA_ENOMEM, "out of memory");
            }
            set_path(root, x->g->keys[k], c, v, &d);
        }
    }
    for (int i = 0; i < x->n_overrides; i++)
        if (tema_cfg_set(root, x->overrides[i], &e) != TEMA_OK) tema_cfg_report_located(&d, e.code, e.msg);
    if (d.n == 0) tema_cfg_validate(root, x->reg, &d);
    tema_status st = tema_cfg_diag_flush(&d);
    if (st != TEMA_OK) {
        tema_cfg_free(root);
        return st;
    }
    *out = root;
    return TEMA_OK;
}

void tema_grid_free(tema_grid *g)
{
    if (!g) return;
    for (size_t i = 0; i < g->n_runs; i++) {
        tema_grid_run *r = &g->runs[i];
        free(r->dir);
        tema_cfg_free(r->cfg);
        if (r->values)
            for (size_t k = 0; k < g->n_keys; k++) free((char *)r->values[k].text);
        free(r->values);
    }
    free(g->runs);
    for (size_t k = 0; k < g->n_keys; k++) free(g->keys[k]);
    free(g->keys);
    free(g->path);
    free(g->name);
    free(g->results_dir);
    tema_cfg_free(g->tree_);
    free(g);
}

static bool plain_folder_name(const char *s)
{
    return s && *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

/* The grid block of the loaded file into x->gp, and the --set options checked against it;
 * every problem goes to err. */
static tema_status read_grid(expansion *x, const tema_cfg *file, tema_err *err)
{
    tema_grid_block *gp = x->gp;
    const tema_cfg *grid = tema_cfg_child(file, "grid", NULL);
    x->g->has_grid = grid != NULL;
    /* the ids of runs must not change when a grid or a report layout is edited */
    strip_key(x->base, "grid");
    strip_key(x->base, "report");
    if (grid) tema_gridi_read_block(gp, grid);
    tema_gridi_check_overrides(gp, x->path, x->overrides, x->n_overrides);
    if (gp->ok && gp->d->n == 0) return TEMA_OK;
    tema_status st = tema_cfg_diag_flush(gp->d);
    if (st == TEMA_OK) st = tema_fail(err, TEMA_EINVAL, "%s: invalid grid", x->path);
    return st;
}

/* Runs, cells and seeds of g from the axes; the keys move from x->gp into g. */
static tema_status size_grid(expansion *x, tema_err *err)
{
    tema_grid_block *gp = x->gp;
    tema_grid *g = x->g;
    size_t n_cells = 1, n_seeds = gp->seeds ? gp->seeds->n_items : 1;
    for (size_t a = 0; a < gp->n_axes; a++) {
        if (gp->axes[a].n_values > MAX_RUNS / n_cells)
            return tema_fail(err, TEMA_EINVAL, "%s: the grid has more than %d runs; hint: split it into several "
                                               "experiments", x->path, MAX_RUNS);
        n_cells *= gp->axes[a].n_values;
    }
    size_t n_runs = n_cells; /* the seed axis is one of the axes */
    n_cells /= n_seeds;
    g->keys = gp->keys;
    g->n_keys = gp->n_keys;
    gp->keys = NULL;
    gp->n_keys = 0;
    g->n_cells = n_cells;
    g->n_seeds = n_seeds;
    g->runs = calloc(n_runs, sizeof *g->runs);
    if (!g->runs) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    g->n_runs = n_runs;
    return TEMA_OK;
}

/* The run's values as the manifest shows them (flow YAML), for the value picked on each axis. */
static tema_status fill_values(const expansion *x, tema_grid_run *run, const size_t *pick, tema_err *err)
{
    const tema_grid *g = x->g;
    const tema_grid_block *gp = x->gp;
    run->values = calloc(g->n_keys ? g->n_keys : 1, sizeof *run->values);
    if (!run->values) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    tema_status st = TEMA_OK;
    for (size_t a = 0; a < gp->n_axes; a++)
        for (size_t k = gp->axes[a].first; k < gp->axes[a].first + gp->axes[a].count; k++) {
            const tema_cfg *v = gp->lists[k]->items[pick[a]];
            tema_sb b = {0};
            flow_yaml(&b, v);
            run->values[k] = (tema_grid_value){.key = g->keys[k], .text = tema_sb_take(&b), .node = v};
            if (!run->values[k].text) st = tema_fail(err, TEMA_ENOMEM, "out of memory");
        }
    return st;
}

/* A problem in one entry names it: " (grid entry I: LABEL)" goes after err's message. */
static void blame_entry(const tema_grid *g, const tema_grid_run *run, tema_err *err)
{
    char label[700], msg[sizeof err->msg + 800];
    tema_grid_label(g, run, true, label, sizeof label);
    snprintf(msg, sizeof msg, "%s (grid entry %zu: %s)", err->msg, run->index, label);
    size_t len = strlen(msg) < sizeof err->msg ? strlen(msg) : sizeof err->msg - 1;
    memcpy(err->msg, msg, len);
    err->msg[len] = '\0';
}

/* The run's id (the hash of its identity, run_id.h) and folder RESULTS/NAME/ID; every run
 * must name the same experiment. */
static tema_status place_run(const expansion *x, tema_grid_run *run, tema_err *err)
{
    tema_grid *g = x->g;
    tema_status st = tema_run_ids(run->cfg, x->reg, run->id, NULL, err);
    if (st != TEMA_OK) return st;
    if (!g->name) {
        const char *name = tema_cfg_str(run->cfg, "name", NULL);
        if (!plain_folder_name(name))
            return tema_fail(err, TEMA_EINVAL,
                             "%s: name '%s' cannot be a folder name; use letters, digits, '-', '_' and '.'", x->path,
                             name ? name : "");
        g->name = strdup(name);
    } else if (strcmp(g->name, tema_cfg_str(run->cfg, "name", ""))) {
        return tema_fail(err, TEMA_EINVAL, "%s: the grid varies the experiment name; hint: keep `name` out of the "
                                           "grid (every run of an experiment lives under results/NAME/)",
                         x->path);
    }
    size_t n = strlen(g->results_dir) + strlen(g->name ? g->name : "") + 20;
    run->dir = malloc(n);
    if (!g->name || !run->dir) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    snprintf(run->dir, n, "%s/%s/%s", g->results_dir, g->name, run->id);
    return TEMA_OK;
}

/* Two entries that resolve to one configuration would share a run folder; the error points
 * at the first value where they differ as written. */
static tema_status check_duplicate(const expansion *x, size_t r, tema_err *err)
{
    const tema_grid *g = x->g;
    const tema_grid_run *run = &g->runs[r];
    for (size_t q = 0; q < r; q++) {
        if (strcmp(g->runs[q].id, run->id)) continue;
        char la[700], lb[700], where[1400];
        tema_grid_label(g, &g->runs[q], true, la, sizeof la);
        tema_grid_label(g, run, true, lb, sizeof lb);
        snprintf(where, sizeof where, "%s", x->path);
        for (size_t k = 0; k < g->n_keys; k++)
            if (strcmp(g->runs[q].values[k].text, run->values[k].text)) {
                tema_cfg_where(run->values[k].node, false, where, sizeof where);
                break;
            }
        return tema_fail(err, TEMA_EINVAL,
                         "%s: grid entries %zu (%s) and %zu (%s) resolve to the same configuration (run %s); "
                         "hint: remove the duplicate value (1e-3 and 0.001 are the same number; backend.threads "
                         "and a plugin option at its default are not part of a run id)",
                         where, q, la, r, lb, run->id);
    }
    return TEMA_OK;
}

/* Run r, for the value picked on each axis: values, resolved configuration, id, folder. */
static tema_status expand_run(const expansion *x, size_t r, const size_t *pick, tema_err *err)
{
    tema_grid *g = x->g;
    tema_grid_run *run = &g->runs[r];
    run->index = r;
    run->cell = r / g->n_seeds;
    tema_status st = fill_values(x, run, pick, err);
    if (st != TEMA_OK) return st;
    st = resolve_one(x, pick, &run->cfg, err);
    if (st != TEMA_OK) {
        if (g->n_keys) blame_entry(g, run, err);
        return st;
    }
    if ((st = place_run(x, run, err)) != TEMA_OK) return st;
    return check_duplicate(x, r, err);
}

static tema_status expand_runs(const expansion *x, tema_err *err)
{
    const tema_grid_block *gp = x->gp;
    size_t *pick = calloc(gp->n_axes + 1, sizeof *pick);
    if (!pick) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    tema_status st = TEMA_OK;
    for (size_t r = 0; r < x->g->n_runs && st == TEMA_OK; r++) {
        /* mixed radix, the last axis fastest */
        size_t rest = r;
        for (size_t a = gp->n_axes; a-- > 0;) {
            pick[a] = rest % gp->axes[a].n_values;
            rest /= gp->axes[a].n_values;
        }
        st = expand_run(x, r, pick, err);
    }
    free(pick);
    return st;
}

tema_status tema_grid_expand(const char *path, const char *const *overrides, int n_overrides, tema_registry *reg,
                             const char *results_dir, FILE *diag, tema_grid **out, tema_err *err)
{
    *out = NULL;
    tema_err local = {0};
    if (!err) err = &local;
    tema_cfg_diag d = {.out = diag, .err = err};
    tema_cfg *file = NULL;
    if (!tema_cfg_load_experiment(path, &d, &file)) return tema_cfg_diag_flush(&d);
    results_dir = tema_cfg_results_dir(file, results_dir);
    tema_grid *g = calloc(1, sizeof *g);
    if (!g) {
        tema_cfg_free(file);
        return tema_fail(err, TEMA_ENOMEM, "out of memory");
    }
    g->tree_ = file;
    g->path = strdup(path);
    g->results_dir = strdup(results_dir);
    tema_grid_block gp = {.d = &d, .ok = true};
    expansion x = {.g = g, .gp = &gp, .base = tema_cfg_clone(file), .path = path, .overrides = overrides,
                   .n_overrides = n_overrides, .reg = reg, .diag = diag};
    tema_status st;
    if (!g->path || !g->results_dir || !x.base) st = tema_fail(err, TEMA_ENOMEM, "out of memory");
    else if ((st = read_grid(&x, file, err)) == TEMA_OK && (st = size_grid(&x, err)) == TEMA_OK)
        st = expand_runs(&x, err);
    tema_gridi_block_free(&gp);
    tema_cfg_free(x.base);
    if (st != TEMA_OK) {
        tema_grid_free(g);
        return st;
    }
    /* The one folder this file touches: a run of the old id scheme is moved to its new id
     * here, where every command (run, status, manifest, report) finds its runs. */
    for (size_t i = 0; i < g->n_runs; i++) tema_run_migrate(g->results_dir, g->name, g->runs[i].cfg, g->runs[i].id);
    *out = g;
    return TEMA_OK;
}

const char *tema_grid_value_text(const tema_grid *g, const tema_grid_run *r, const char *key)
{
    for (size_t k = 0; k < g->n_keys; k++)
        if (!strcmp(g->keys[k], key)) return r->values[k].text ? r->values[k].text : "";
    return "";
}

void tema_grid_label(const tema_grid *g, const tema_grid_run *r, bool with_seed, char *buf, size_t cap)
{
    size_t off = 0;
    if (cap) buf[0] = '\0';
    for (size_t k = 0; k < g->n_keys && off < cap; k++) {
        if (!with_seed && g->n_seeds > 1 && k == g->n_keys - 1) break; /* the seed is the last key */
        int n = snprintf(buf + off, cap - off, "%s%s=%s", off ? " " : "", g->keys[k],
                         r->values[k].text ? r->values[k].text : "");
        if (n < 0) break;
        off += (size_t)n;
    }
}

/* ---- manifest ---- */

void tema_grid_print_manifest(const tema_grid *g, bool json, FILE *out)
{
    if (json) {
        json_object *o = json_object_new_object(), *keys = json_object_new_array(), *runs = json_object_new_array();
        json_object_object_add(o, "experiment", json_object_new_string(g->name));
        json_object_object_add(o, "file", json_object_new_string(g->path));
        json_object_object_add(o, "results", json_object_new_string(g->results_dir));
        for (size_t k = 0; k < g->n_keys; k++) json_object_array_add(keys, json_object_new_string(g->keys[k]));
        json_object_object_add(o, "keys", keys);
        for (size_t i = 0; i < g->n_runs; i++) {
            const tema_grid_run *r = &g->runs[i];
            json_object *jr = json_object_new_object(), *vals = json_object_new_object();
            json_object_object_add(jr, "index", json_object_new_int64((int64_t)r->index));
            json_object_object_add(jr, "cell", json_object_new_int64((int64_t)r->cell));
            json_object_object_add(jr, "run_id", json_object_new_string(r->id));
            json_object_object_add(jr, "dir", json_object_new_string(r->dir));
            for (size_t k = 0; k < g->n_keys; k++)
                json_object_object_add(vals, g->keys[k], json_object_new_string(r->values[k].text));
            json_object_object_add(jr, "values", vals);
            json_object_array_add(runs, jr);
        }
        json_object_object_add(o, "runs", runs);
        fprintf(out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
        return;
    }
    fprintf(out, "# experiment %s (%s): %zu run%s", g->name, g->path, g->n_runs, g->n_runs == 1 ? "" : "s");
    if (g->n_seeds > 1) fprintf(out, " = %zu cell%s x %zu seeds", g->n_cells, g->n_cells == 1 ? "" : "s", g->n_seeds);
    fprintf(out, ", results in %s/%s/\n", g->results_dir, g->name);
    fprintf(out, "# index  run-id            values\n");
    for (size_t i = 0; i < g->n_runs; i++) {
        char label[4096];
        tema_grid_label(g, &g->runs[i], true, label, sizeof label);
        fprintf(out, "%-7zu  %s  %s\n", g->runs[i].index, g->runs[i].id, g->n_keys ? label : "(no grid)");
    }
}

