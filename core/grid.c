/* core/grid.c - experiment grids: expansion of the `grid:` block into resolved runs, the
 * manifest, run states from the run folders, the local runner (child processes) and the
 * Slurm job-array script. See grid.h for the format and the files in a run folder.
 *
 * Over 1,000 lines: expansion, manifest, local runner and Slurm script are its seams; the
 * split is part of issue 11, the house redesign.
 */
#include "grid.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "dataset.h"
#include "results.h"
#include "train.h"
#include "util.h"

extern char **environ;

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

/* ---- the grid block ---- */

typedef struct axis {
    size_t first, count;   /* its keys: gp.keys[first .. first+count) */
    size_t n_values;
} axis;

typedef struct gparse {
    tema_cfg_diag *d;
    char **keys;
    const tema_cfg **lists;  /* per key: the list of its values */
    size_t n_keys, cap_keys;
    axis *axes;
    size_t n_axes, cap_axes;
    const tema_cfg *seeds;   /* the `seeds:` list, NULL when absent */
    bool ok;
} gparse;

static void where_node(const tema_cfg *n, bool at_key, char *buf, size_t cap) { tema_cfg_where(n, at_key, buf, cap); }

static const char *got_text(const tema_cfg *n, char *buf, size_t cap)
{
    switch (n->type) {
    case TEMA_CFG_NULL: return "got nothing";
    case TEMA_CFG_MAP: return "got a map";
    case TEMA_CFG_LIST: return "got a list";
    case TEMA_CFG_SCALAR: break;
    }
    snprintf(buf, cap, "got '%.200s'", n->value);
    return buf;
}

static bool keys_overlap(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t n = la < lb ? la : lb;
    if (strncmp(a, b, n) != 0) return false;
    return la == lb || (la < lb ? b[la] == '.' : a[lb] == '.');
}

static bool valid_key_path(const char *k)
{
    if (!*k || k[0] == '.' || k[strlen(k) - 1] == '.' || strstr(k, "..")) return false;
    return true;
}

/* Adds a key with its list of values; reports and returns false on a problem. */
static bool add_key(gparse *gp, const char *key, const tema_cfg *list, const tema_cfg *at)
{
    char where[1400];
    where_node(at, true, where, sizeof where);
    if (!valid_key_path(key)) {
        tema_cfg_report(gp->d, TEMA_EINVAL, where, "grid: '%s' is not a key path; write dotted keys like train.lr",
                        key);
        return false;
    }
    for (size_t i = 0; i < gp->n_keys; i++)
        if (keys_overlap(gp->keys[i], key)) {
            tema_cfg_report(gp->d, TEMA_EINVAL, where,
                            "grid: '%s' %s '%s', which the grid already varies; list each key once (values of a "
                            "key may be whole maps)",
                            key, strcmp(gp->keys[i], key) ? "overlaps" : "repeats", gp->keys[i]);
            return false;
        }
    if (gp->n_keys == gp->cap_keys) {
        size_t cap = gp->cap_keys ? gp->cap_keys * 2 : 8;
        char **k = realloc(gp->keys, cap * sizeof *k);
        if (k) gp->keys = k;
        const tema_cfg **l = realloc(gp->lists, cap * sizeof *l);
        if (l) gp->lists = l;
        if (!k || !l) {
            tema_cfg_report(gp->d, TEMA_ENOMEM, where, "grid: out of memory");
            return false;
        }
        gp->cap_keys = cap;
    }
    char *dup = strdup(key);
    if (!dup) {
        tema_cfg_report(gp->d, TEMA_ENOMEM, where, "grid: out of memory");
        return false;
    }
    gp->keys[gp->n_keys] = dup;
    gp->lists[gp->n_keys] = list;
    gp->n_keys++;
    return true;
}

static bool add_axis(gparse *gp, size_t first, size_t count, size_t n_values)
{
    if (gp->n_axes == gp->cap_axes) {
        size_t cap = gp->cap_axes ? gp->cap_axes * 2 : 8;
        axis *a = realloc(gp->axes, cap * sizeof *a);
        if (!a) return false;
        gp->axes = a;
        gp->cap_axes = cap;
    }
    gp->axes[gp->n_axes++] = (axis){.first = first, .count = count, .n_values = n_values};
    return true;
}

static void join_key(char *out, size_t cap, const char *prefix, const char *key)
{
    if (*prefix) snprintf(out, cap, "%s.%s", prefix, key);
    else snprintf(out, cap, "%s", key);
}

/* The keys of a map (nested maps = dotted paths), each with a non-empty list. */
static void collect_lists(gparse *gp, const tema_cfg *map, const char *prefix, const char *ctx)
{
    char where[1400], g[256];
    for (size_t i = 0; i < map->n_items; i++) {
        const tema_cfg *c = map->items[i];
        char full[1024];
        join_key(full, sizeof full, prefix, c->key ? c->key : "");
        where_node(c, false, where, sizeof where);
        if (c->type == TEMA_CFG_MAP) {
            collect_lists(gp, c, full, ctx);
            continue;
        }
        if (c->type != TEMA_CFG_LIST) {
            tema_cfg_report(gp->d, TEMA_EINVAL, where,
                            "%s.%s: expected a list of values like [a, b] (one run each), %s; a single value "
                            "belongs outside the grid",
                            ctx, full, got_text(c, g, sizeof g));
            gp->ok = false;
            continue;
        }
        if (c->n_items == 0) {
            tema_cfg_report(gp->d, TEMA_EINVAL, where, "%s.%s: an empty list gives no runs; give at least one value",
                            ctx, full);
            gp->ok = false;
            continue;
        }
        if (!add_key(gp, full, c, c)) gp->ok = false;
    }
}

static void parse_zip_group(gparse *gp, const tema_cfg *group)
{
    char where[1400], g[256];
    where_node(group, false, where, sizeof where);
    if (group->type != TEMA_CFG_MAP || group->n_items == 0) {
        tema_cfg_report(gp->d, TEMA_EINVAL, where,
                        "grid.zip: expected a map of keys to lists of equal length, like {train.lr: [1e-3, 1e-4], "
                        "train.batch_size: [128, 256]}, %s",
                        group->type == TEMA_CFG_MAP ? "got an empty map" : got_text(group, g, sizeof g));
        gp->ok = false;
        return;
    }
    size_t first = gp->n_keys;
    bool was_ok = gp->ok;
    gp->ok = true;
    collect_lists(gp, group, "", "grid.zip");
    if (!gp->ok || gp->n_keys == first) {
        gp->ok = false;
        return;
    }
    gp->ok = was_ok;
    size_t n = gp->lists[first]->n_items;
    for (size_t k = first + 1; k < gp->n_keys; k++)
        if (gp->lists[k]->n_items != n) {
            where_node(gp->lists[k], false, where, sizeof where);
            tema_cfg_report(gp->d, TEMA_EINVAL, where,
                            "grid.zip: '%s' has %zu value%s but '%s' has %zu; zipped keys vary together, so their "
                            "lists need equal lengths",
                            gp->keys[k], gp->lists[k]->n_items, gp->lists[k]->n_items == 1 ? "" : "s",
                            gp->keys[first], n);
            gp->ok = false;
            return;
        }
    if (!add_axis(gp, first, gp->n_keys - first, n)) {
        tema_cfg_report(gp->d, TEMA_ENOMEM, where, "grid: out of memory");
        gp->ok = false;
    }
}

static void parse_grid(gparse *gp, const tema_cfg *grid)
{
    char where[1400], g[256];
    where_node(grid, false, where, sizeof where);
    if (grid->type == TEMA_CFG_NULL) return; /* `grid:` with nothing: one run */
    if (grid->type != TEMA_CFG_MAP) {
        tema_cfg_report(gp->d, TEMA_EINVAL, where,
                        "grid: expected a map of key paths to lists of values, like {train.lr: [1e-3, 1e-4]}, %s",
                        got_text(grid, g, sizeof g));
        gp->ok = false;
        return;
    }
    for (size_t i = 0; i < grid->n_items; i++) {
        const tema_cfg *c = grid->items[i];
        where_node(c, false, where, sizeof where);
        if (c->key && !strcmp(c->key, "zip")) {
            if (c->type == TEMA_CFG_LIST) {
                for (size_t z = 0; z < c->n_items; z++) parse_zip_group(gp, c->items[z]);
                if (c->n_items == 0) {
                    tema_cfg_report(gp->d, TEMA_EINVAL, where, "grid.zip: an empty list; give a map of keys to lists");
                    gp->ok = false;
                }
            } else {
                parse_zip_group(gp, c);
            }
            continue;
        }
        if (c->key && !strcmp(c->key, "seeds")) {
            if (c->type != TEMA_CFG_LIST || c->n_items == 0) {
                tema_cfg_report(gp->d, TEMA_EINVAL, where,
                                "grid.seeds: expected a non-empty list of seeds like [1, 2, 3] (every cell runs "
                                "once per seed), %s",
                                c->type == TEMA_CFG_LIST ? "got an empty list" : got_text(c, g, sizeof g));
                gp->ok = false;
            } else {
                gp->seeds = c;
            }
            continue;
        }
        size_t first = gp->n_keys;
        if (c->type == TEMA_CFG_MAP) {
            char full[1024];
            join_key(full, sizeof full, "", c->key ? c->key : "");
            collect_lists(gp, c, full, "grid");
        } else {
            /* the same checks as for nested keys, on a one-entry view */
            tema_cfg view = {.type = TEMA_CFG_MAP, .items = (tema_cfg **)&grid->items[i], .n_items = 1};
            collect_lists(gp, &view, "", "grid");
        }
        /* each key of a nested map is its own axis, in file order */
        for (size_t k = first; k < gp->n_keys; k++)
            if (!add_axis(gp, k, 1, gp->lists[k]->n_items)) {
                tema_cfg_report(gp->d, TEMA_ENOMEM, where, "grid: out of memory");
                gp->ok = false;
            }
    }
    if (gp->seeds) {
        /* the seed is an axis of its own, the fastest */
        size_t first = gp->n_keys;
        if (!add_key(gp, "train.seed", gp->seeds, gp->seeds) || !add_axis(gp, first, 1, gp->seeds->n_items))
            gp->ok = false;
    }
}

static void gparse_free(gparse *gp)
{
    for (size_t i = 0; i < gp->n_keys; i++) free(gp->keys[i]);
    free(gp->keys);
    free(gp->lists);
    free(gp->axes);
}

/* ---- applying a value at a key path ---- */

/* Puts `value` (owned; freed on failure) at the dotted path in root, creating maps on the
 * way (located at `at`). Problems go to d. */
static bool set_path(tema_cfg *root, const char *key, tema_cfg *value, const tema_cfg *at, tema_cfg_diag *d)
{
    char where[1400];
    where_node(at, true, where, sizeof where);
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

/* Does the --set assignment touch a grid key? */
static const char *override_hits(const gparse *gp, const char *assignment)
{
    const char *eq = strchr(assignment, '=');
    size_t n = eq ? (size_t)(eq - assignment) : strlen(assignment);
    char key[1024];
    snprintf(key, sizeof key, "%.*s", (int)(n < sizeof key ? n : sizeof key - 1), assignment);
    for (size_t i = 0; i < gp->n_keys; i++)
        if (keys_overlap(gp->keys[i], key)) return gp->keys[i];
    return NULL;
}

static tema_status resolve_one(const tema_cfg *base, const gparse *gp, const size_t *pick,
                               const char *const *overrides, int n_overrides, tema_registry *reg, FILE *diag,
                               tema_cfg **out, tema_err *err)
{
    *out = NULL;
    tema_cfg_diag d = {.out = diag, .err = err};
    tema_cfg *root = NULL;
    tema_err e = {0};
    if (tema_cfg_defaults(&root, &e) != TEMA_OK) {
        tema_cfg_report(&d, e.code, TEMA_CFG_DEFAULTS_LABEL, "%s", e.msg);
        return tema_cfg_diag_flush(&d);
    }
    tema_cfg *file = tema_cfg_clone(base);
    if (!file) {
        tema_cfg_free(root);
        return tema_fail(err, TEMA_ENOMEM, "out of memory");
    }
    tema_cfg_merge(root, file);
    for (size_t a = 0; a < gp->n_axes; a++) {
        const axis *ax = &gp->axes[a];
        for (size_t k = ax->first; k < ax->first + ax->count; k++) {
            const tema_cfg *v = gp->lists[k]->items[pick[a]];
            tema_cfg *c = tema_cfg_clone(v);
            if (!c) {
                tema_cfg_free(root);
                return tema_fail(err, TEMA_ENOMEM, "out of memory");
            }
            set_path(root, gp->keys[k], c, v, &d);
        }
    }
    for (int i = 0; i < n_overrides; i++)
        if (tema_cfg_set(root, overrides[i], &e) != TEMA_OK) tema_cfg_report_located(&d, e.code, e.msg);
    if (d.n == 0) tema_cfg_validate(root, reg, &d);
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

tema_status tema_grid_expand(const char *path, const char *const *overrides, int n_overrides, tema_registry *reg,
                             const char *results_dir, FILE *diag, tema_grid **out, tema_err *err)
{
    *out = NULL;
    tema_err local = {0};
    if (!err) err = &local;
    if (!results_dir || !*results_dir) results_dir = "results";
    tema_cfg_diag d = {.out = diag, .err = err};
    tema_cfg *file = NULL;
    if (!tema_cfg_load_experiment(path, &d, &file)) return tema_cfg_diag_flush(&d);
    tema_grid *g = calloc(1, sizeof *g);
    if (!g) {
        tema_cfg_free(file);
        return tema_fail(err, TEMA_ENOMEM, "out of memory");
    }
    g->tree_ = file;
    g->path = strdup(path);
    g->results_dir = strdup(results_dir);
    gparse gp = {.d = &d, .ok = true};
    tema_cfg *base = tema_cfg_clone(file);
    tema_status st = TEMA_OK;
    if (!g->path || !g->results_dir || !base) {
        st = tema_fail(err, TEMA_ENOMEM, "out of memory");
        goto done;
    }
    const tema_cfg *grid = tema_cfg_child(file, "grid", NULL);
    g->has_grid = grid != NULL;
    /* the ids of runs must not change when a grid or a report layout is edited */
    strip_key(base, "grid");
    strip_key(base, "report");
    if (grid) parse_grid(&gp, grid);
    for (int i = 0; gp.ok && i < n_overrides; i++) {
        const char *hit = override_hits(&gp, overrides[i]);
        if (hit) {
            tema_cfg_report(&d, TEMA_EINVAL, "<command line>",
                            "--set %s: '%s' is varied by the grid of %s, so the setting would override every cell; "
                            "change the grid instead",
                            overrides[i], hit, path);
            gp.ok = false;
        }
    }
    if (!gp.ok || d.n > 0) {
        st = tema_cfg_diag_flush(&d);
        if (st == TEMA_OK) st = tema_fail(err, TEMA_EINVAL, "%s: invalid grid", path);
        goto done;
    }
    size_t n_cells = 1, n_seeds = gp.seeds ? gp.seeds->n_items : 1;
    for (size_t a = 0; a < gp.n_axes; a++) {
        if (gp.axes[a].n_values > MAX_RUNS / n_cells) {
            st = tema_fail(err, TEMA_EINVAL, "%s: the grid has more than %d runs; hint: split it into several "
                                             "experiments", path, MAX_RUNS);
            goto done;
        }
        n_cells *= gp.axes[a].n_values;
    }
    size_t n_runs = n_cells; /* the seed axis is one of the axes */
    n_cells /= n_seeds;
    g->keys = gp.keys;
    g->n_keys = gp.n_keys;
    gp.keys = NULL;
    gp.n_keys = 0;
    g->n_cells = n_cells;
    g->n_seeds = n_seeds;
    g->runs = calloc(n_runs, sizeof *g->runs);
    size_t *pick = calloc(gp.n_axes + 1, sizeof *pick);
    if (!g->runs || !pick) {
        free(pick);
        st = tema_fail(err, TEMA_ENOMEM, "out of memory");
        goto done;
    }
    g->n_runs = n_runs;
    for (size_t r = 0; r < n_runs; r++) {
        /* mixed radix, the last axis fastest */
        size_t rest = r;
        for (size_t a = gp.n_axes; a-- > 0;) {
            pick[a] = rest % gp.axes[a].n_values;
            rest /= gp.axes[a].n_values;
        }
        tema_grid_run *run = &g->runs[r];
        run->index = r;
        run->cell = r / n_seeds;
        run->values = calloc(g->n_keys ? g->n_keys : 1, sizeof *run->values);
        if (!run->values) {
            st = tema_fail(err, TEMA_ENOMEM, "out of memory");
            break;
        }
        for (size_t a = 0; a < gp.n_axes; a++)
            for (size_t k = gp.axes[a].first; k < gp.axes[a].first + gp.axes[a].count; k++) {
                const tema_cfg *v = gp.lists[k]->items[pick[a]];
                tema_sb b = {0};
                flow_yaml(&b, v);
                run->values[k] = (tema_grid_value){.key = g->keys[k], .text = tema_sb_take(&b), .node = v};
                if (!run->values[k].text) st = tema_fail(err, TEMA_ENOMEM, "out of memory");
            }
        if (st != TEMA_OK) break;
        gp.keys = g->keys; /* resolve_one reads the keys through gp */
        st = resolve_one(base, &gp, pick, overrides, n_overrides, reg, diag, &run->cfg, err);
        gp.keys = NULL;
        if (st != TEMA_OK) {
            if (g->n_keys) {
                char label[700], msg[sizeof err->msg + 800];
                tema_grid_label(g, run, true, label, sizeof label);
                snprintf(msg, sizeof msg, "%s (grid entry %zu: %s)", err->msg, r, label);
                size_t len = strlen(msg) < sizeof err->msg ? strlen(msg) : sizeof err->msg - 1;
                memcpy(err->msg, msg, len);
                err->msg[len] = '\0';
            }
            break;
        }
        char *json = tema_cfg_to_json(run->cfg);
        if (!json) {
            st = tema_fail(err, TEMA_ENOMEM, "out of memory");
            break;
        }
        tema_results_run_id(json, run->id);
        free(json);
        if (!g->name) {
            const char *name = tema_cfg_str(run->cfg, "name", NULL);
            if (!plain_folder_name(name)) {
                st = tema_fail(err, TEMA_EINVAL,
                               "%s: name '%s' cannot be a folder name; use letters, digits, '-', '_' and '.'", path,
                               name ? name : "");
                break;
            }
            g->name = strdup(name);
        } else if (strcmp(g->name, tema_cfg_str(run->cfg, "name", ""))) {
            st = tema_fail(err, TEMA_EINVAL, "%s: the grid varies the experiment name; hint: keep `name` out of the "
                                             "grid (every run of an experiment lives under results/NAME/)",
                           path);
            break;
        }
        size_t n = strlen(results_dir) + strlen(g->name ? g->name : "") + 20;
        run->dir = malloc(n);
        if (!g->name || !run->dir) {
            st = tema_fail(err, TEMA_ENOMEM, "out of memory");
            break;
        }
        snprintf(run->dir, n, "%s/%s/%s", results_dir, g->name, run->id);
        for (size_t q = 0; q < r; q++)
            if (!strcmp(g->runs[q].id, run->id)) {
                char la[700], lb[700], where[1400];
                tema_grid_label(g, &g->runs[q], true, la, sizeof la);
                tema_grid_label(g, run, true, lb, sizeof lb);
                snprintf(where, sizeof where, "%s", path);
                for (size_t k = 0; k < g->n_keys; k++)
                    if (strcmp(g->runs[q].values[k].text, run->values[k].text)) {
                        where_node(run->values[k].node, false, where, sizeof where);
                        break;
                    }
                st = tema_fail(err, TEMA_EINVAL,
                               "%s: grid entries %zu (%s) and %zu (%s) resolve to the same configuration (run %s); "
                               "hint: remove the duplicate value (1e-3 and 0.001 are the same number)",
                               where, q, la, r, lb, run->id);
                break;
            }
        if (st != TEMA_OK) break;
    }
    free(pick);
done:
    gparse_free(&gp);
    tema_cfg_free(base);
    if (st != TEMA_OK) {
        tema_grid_free(g);
        return st;
    }
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

/* ---- run states ---- */

const char *tema_grid_state_name(tema_grid_state s)
{
    static const char *const names[] = {"pending", "interrupted", "running", "failed", "done"};
    return (unsigned)s < 5 ? names[s] : "?";
}

static bool exists_in(const char *dir, const char *name)
{
    char p[PATH_MAX];
    struct stat st;
    return snprintf(p, sizeof p, "%s/%s", dir, name) < (int)sizeof p && stat(p, &st) == 0;
}

/* Is the run's lock held by a process? *pid gets the holder (of this host). */
static bool lock_held(const char *dir, pid_t *pid)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/lock", dir);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
    bool held = fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
    if (held && pid) *pid = fl.l_pid;
    close(fd);
    return held;
}

/* Count of complete lines in dir/name. */
static long count_lines(const char *dir, const char *name)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    long n = 0;
    int c;
    while ((c = getc(f)) != EOF)
        if (c == '\n') n++;
    fclose(f);
    return n;
}

static void failed_message(const char *dir, char *note, size_t cap)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/failed", dir);
    json_object *o = json_object_from_file(p), *v;
    if (o && json_object_object_get_ex(o, "error", &v) && json_object_get_string(v))
        snprintf(note, cap, "%s", json_object_get_string(v));
    else snprintf(note, cap, "see %s", p);
    json_object_put(o);
}

tema_grid_state tema_grid_run_state(const tema_grid_run *r, char *note, size_t cap)
{
    char tmp[8];
    if (!note) {
        note = tmp;
        cap = sizeof tmp;
    }
    note[0] = '\0';
    int64_t epochs = tema_cfg_int(r->cfg, "train.epochs", 0);
    long done = count_lines(r->dir, "epochs.jsonl");
    pid_t pid = 0;
    if (lock_held(r->dir, &pid)) {
        /* the lock file says which host; the lock only knows a pid */
        char holder[300] = "", p[PATH_MAX];
        snprintf(p, sizeof p, "%s/lock", r->dir);
        FILE *f = fopen(p, "r");
        if (f) {
            if (!fgets(holder, sizeof holder, f)) holder[0] = '\0';
            fclose(f);
        }
        holder[strcspn(holder, "\n")] = '\0';
        if (!holder[0]) snprintf(holder, sizeof holder, "pid %ld", (long)pid);
        snprintf(note, cap, "%s, epoch %ld/%" PRId64, holder, done, epochs);
        return TEMA_GRID_RUNNING;
    }
    if (exists_in(r->dir, "DONE")) {
        snprintf(note, cap, "%ld epoch%s", done, done == 1 ? "" : "s");
        return TEMA_GRID_DONE;
    }
    if (exists_in(r->dir, "failed")) {
        failed_message(r->dir, note, cap);
        return TEMA_GRID_FAILED;
    }
    if (exists_in(r->dir, "status") || exists_in(r->dir, "config.json")) {
        snprintf(note, cap, "stopped at epoch %ld/%" PRId64 "; resumes", done, epochs);
        return TEMA_GRID_INTERRUPTED;
    }
    return TEMA_GRID_PENDING;
}

void tema_grid_print_status(const tema_grid *g, FILE *out, size_t counts[5])
{
    size_t local[5] = {0};
    if (!counts) counts = local;
    memset(counts, 0, 5 * sizeof *counts);
    size_t label_w = 6;
    char **labels = calloc(g->n_runs ? g->n_runs : 1, sizeof *labels);
    for (size_t i = 0; labels && i < g->n_runs; i++) {
        char l[4096];
        tema_grid_label(g, &g->runs[i], true, l, sizeof l);
        labels[i] = strdup(g->n_keys ? l : "(no grid)");
        if (labels[i] && strlen(labels[i]) > label_w) label_w = strlen(labels[i]);
    }
    if (label_w > 80) label_w = 80;
    fprintf(out, "experiment %s (%s), results in %s/%s/\n", g->name, g->path, g->results_dir, g->name);
    fprintf(out, "%-5s  %-16s  %-11s  %-*s  %s\n", "index", "run-id", "state", (int)label_w, "values", "note");
    for (size_t i = 0; i < g->n_runs; i++) {
        char note[512];
        tema_grid_state s = tema_grid_run_state(&g->runs[i], note, sizeof note);
        counts[s]++;
        fprintf(out, "%-5zu  %-16s  %-11s  %-*s  %s\n", i, g->runs[i].id, tema_grid_state_name(s), (int)label_w,
                labels && labels[i] ? labels[i] : "", note);
    }
    fprintf(out, "total %zu: %zu done, %zu running, %zu failed, %zu pending", g->n_runs, counts[TEMA_GRID_DONE],
            counts[TEMA_GRID_RUNNING], counts[TEMA_GRID_FAILED],
            counts[TEMA_GRID_PENDING] + counts[TEMA_GRID_INTERRUPTED]);
    if (counts[TEMA_GRID_INTERRUPTED])
        fprintf(out, " (%zu of them interrupted, resuming from their checkpoints)", counts[TEMA_GRID_INTERRUPTED]);
    fputc('\n', out);
    for (size_t i = 0; labels && i < g->n_runs; i++) free(labels[i]);
    free(labels);
}

/* ---- recording a failure ---- */

static void iso_now(char *buf, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* exit_code < 0: none (killed by `sig`); sig <= 0: none. */
static tema_status write_failed(const char *dir, int exit_code, int sig, const char *msg, tema_err *err)
{
    char host[256] = "", when[64];
    gethostname(host, sizeof host - 1);
    iso_now(when, sizeof when);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "exit_code", exit_code >= 0 ? json_object_new_int(exit_code) : NULL);
    json_object_object_add(o, "signal", sig > 0 ? json_object_new_int(sig) : NULL);
    json_object_object_add(o, "error", json_object_new_string(msg ? msg : ""));
    json_object_object_add(o, "host", json_object_new_string(host));
    json_object_object_add(o, "time", json_object_new_string(when));
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/failed", dir);
    tema_sb b = {0};
    tema_sb_add(&b, text);
    tema_sb_add(&b, "\n");
    json_object_put(o);
    char *s = tema_sb_take(&b);
    tema_status st = s ? tema_write_file_atomic(p, s, strlen(s), err) : tema_fail(err, TEMA_ENOMEM, "out of memory");
    free(s);
    return st;
}

/* ---- running one entry in this process ---- */

/* Takes the run's lock; returns the fd to keep open (closing it releases), or -1 with err
 * set (busy: TEMA_EUNSUPPORTED). */
static int lock_take(const char *dir, tema_err *err)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/lock", dir);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        tema_fail(err, TEMA_EIO, "%s: cannot open: %s; hint: is the results folder writable?", p, strerror(errno));
        return -1;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    /* `tema status` probes without taking the lock, so a short retry only covers a racing runner */
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        char holder[300] = "";
        ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
        holder[n > 0 ? n : 0] = '\0';
        holder[strcspn(holder, "\n")] = '\0';
        close(fd);
        tema_fail(err, TEMA_EUNSUPPORTED,
                  "%s is being run by another process (%s); hint: wait for it, or see `tema status`", dir,
                  holder[0] ? holder : "unknown");
        return -1;
    }
    char host[256] = "", text[320];
    gethostname(host, sizeof host - 1);
    int n = snprintf(text, sizeof text, "pid %ld on %s\n", (long)getpid(), host);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n) {
        /* the lock itself is what counts; its text is only for people */
    }
    return fd;
}

tema_status tema_grid_run_one(const tema_grid *g, size_t index, tema_registry *reg, bool force, tema_err *err)
{
    if (index >= g->n_runs)
        return tema_fail(err, TEMA_EINVAL, "--index %zu: %s has %zu run%s (0..%zu); hint: see `tema manifest %s`",
                         index, g->path, g->n_runs, g->n_runs == 1 ? "" : "s", g->n_runs ? g->n_runs - 1 : 0, g->path);
    const tema_grid_run *r = &g->runs[index];
    tema_status st = tema_mkdirs(r->dir, err);
    if (st != TEMA_OK) return st;
    int fd = lock_take(r->dir, err);
    if (fd < 0) return err->code;
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/failed", r->dir);
    unlink(p);
    if (g->n_keys) {
        char label[1024];
        tema_grid_label(g, r, true, label, sizeof label);
        fprintf(stderr, "tema: grid entry %zu of %zu: %s\n", index, g->n_runs, label);
    }
    tema_run_opts o = {.results_dir = g->results_dir, .config_path = g->path, .force = force};
    st = tema_run_experiment(r->cfg, reg, &o, err);
    if (st != TEMA_OK && st != TEMA_EINTERRUPTED) {
        tema_err ignored = {0};
        write_failed(r->dir, 1, 0, err->msg[0] ? err->msg : tema_status_name(st), &ignored);
    }
    close(fd);
    return st;
}

/* ---- the seeded synthetic data the runs share ---- */

/* rm -r of a folder that holds files only */
static void remove_flat_dir(const char *dir)
{
    DIR *dp = opendir(dir);
    if (dp) {
        struct dirent *e;
        while ((e = readdir(dp))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[PATH_MAX];
            if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < (int)sizeof p) unlink(p);
        }
        closedir(dp);
    }
    rmdir(dir);
}

/* train.c generates `synthetic` data on first use into RESULTS/_data/synthetic-SEED; runs
 * started together would write the same folder at once, so it is made here first, in a
 * temporary folder renamed into place (the same files as train.c writes). */
static tema_status prepare_synthetic(const tema_grid *g, const char *abs_results, tema_err *err)
{
    for (size_t i = 0; i < g->n_runs; i++) {
        const char *path = tema_cfg_str(g->runs[i].cfg, "dataset.path", "");
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        struct stat sb;
        if (strcmp(base, "synthetic") != 0 || stat(path, &sb) == 0) continue;
        uint64_t seed = (uint64_t)tema_cfg_int(g->runs[i].cfg, "train.seed", 42);
        char dir[PATH_MAX], tmp[PATH_MAX + 32], probe[PATH_MAX + 32];
        snprintf(dir, sizeof dir, "%s/_data/synthetic-%" PRIu64, abs_results, seed);
        snprintf(probe, sizeof probe, "%s/traindata_new.txt", dir);
        if (stat(probe, &sb) == 0) continue;
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dir, (long)getpid());
        tema_synth_opts so;
        tema_synth_defaults(&so);
        so.seed = seed;
        tema_status st = tema_synth_write(&so, tmp, err);
        if (st != TEMA_OK) return st;
        if (rename(tmp, dir) != 0) {
            /* someone else made it meanwhile (or a half-made one from train.c is there): keep theirs */
            remove_flat_dir(tmp);
            continue;
        }
        fprintf(stderr, "tema: wrote synthetic dataset (seed %" PRIu64 ") to %s\n", seed, dir);
    }
    return TEMA_OK;
}

/* ---- the local runner ---- */

static volatile sig_atomic_t g_stop_signal = 0;
static void on_stop_signal(int sig) { g_stop_signal = sig; }

static char *self_exe(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return NULL;
    buf[n] = '\0';
    return strdup(buf);
}

/* environ with the thread variables set to `threads` (TEMA_THREADS makes the backend use
 * them without changing the run id); the N_THREAD_VARS strings at the end are
 * ours (free_env frees them), the rest borrowed from environ. */
#define N_THREAD_VARS 4
static const char *const thread_vars[N_THREAD_VARS] = {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_THREAD_LIMIT",
                                                       "TEMA_THREADS"};

static char **child_env(int threads)
{
    size_t n = 0;
    while (environ[n]) n++;
    char **env = calloc(n + N_THREAD_VARS + 1, sizeof *env);
    if (!env) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool ours = false;
        for (int v = 0; v < N_THREAD_VARS; v++) {
            size_t l = strlen(thread_vars[v]);
            if (!strncmp(environ[i], thread_vars[v], l) && environ[i][l] == '=') ours = true;
        }
        if (!ours) env[k++] = environ[i];
    }
    for (int v = 0; v < N_THREAD_VARS; v++) {
        char *s = malloc(strlen(thread_vars[v]) + 16);
        if (!s) {
            for (int u = 0; u < v; u++) free(env[k - 1 - (size_t)u]);
            free(env);
            return NULL;
        }
        sprintf(s, "%s=%d", thread_vars[v], threads);
        env[k++] = s;
    }
    env[k] = NULL;
    return env;
}

static void free_env(char **env)
{
    if (!env) return;
    size_t n = 0;
    while (env[n]) n++;
    for (size_t i = n - N_THREAD_VARS; i < n; i++) free(env[i]);
    free(env);
}

/* fork + exec; the child dies with us (SIGTERM: it saves a checkpoint and stops). */
static pid_t spawn_child(const char *exe, char *const argv[], char *const envp[], const char *log_path)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) return pid;
    /* only async-signal-safe calls from here: the parent may have had threads (OpenBLAS) */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(TEMA_EXIT_INTERRUPTED);
    if (log_path) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            if (fd > 2) close(fd);
        }
    }
    execve(exe, argv, envp);
    _exit(127);
}

/* The last "error:" line of a log, else its last non-empty line. */
static void last_error_line(const char *log_path, char *out, size_t cap)
{
    out[0] = '\0';
    if (!log_path) return;
    FILE *f = fopen(log_path, "r");
    if (!f) return;
    char buf[8192];
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        fseek(f, size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0, SEEK_SET);
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char last[1024] = "", err_line[1024] = "";
    char *save = NULL;
    for (char *line = strtok_r(buf, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        if (!*line) continue;
        snprintf(last, sizeof last, "%s", line);
        if (strstr(line, "error:")) snprintf(err_line, sizeof err_line, "%s", line);
    }
    snprintf(out, cap, "%s", err_line[0] ? err_line : last);
}

typedef struct child {
    pid_t pid;
    size_t index;
    double t0;
} child;

/* A word for a shell command line: as it is when it is plain, else in single quotes. */
static void shell_word(tema_sb *b, const char *w)
{
    if (*w && strspn(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-=:,@+") == strlen(w)) {
        tema_sb_add(b, w);
        return;
    }
    tema_sb_add(b, "'");
    for (const char *p = w; *p; p++) {
        if (*p == '\'') tema_sb_add(b, "'\\''");
        else tema_sb_addn(b, p, 1);
    }
    tema_sb_add(b, "'");
}

/* The command that resumes this grid: the same file, --set options and results folder, so
 * the run ids come out the same. */
static void resume_command(const tema_grid *g, const tema_grid_exec *ex, char *out, size_t size)
{
    tema_sb b = {0};
    tema_sb_add(&b, "tema run ");
    shell_word(&b, g->path);
    for (int i = 0; i < ex->n_overrides; i++) {
        tema_sb_add(&b, " --set ");
        shell_word(&b, ex->overrides[i]);
    }
    if (g->results_dir && strcmp(g->results_dir, "results") != 0) {
        tema_sb_add(&b, " --results ");
        shell_word(&b, g->results_dir);
    }
    if (ex->jobs > 1) tema_sb_printf(&b, " -j %d", ex->jobs);
    snprintf(out, size, "%s", tema_sb_str(&b));
    tema_sb_free(&b);
}

tema_status tema_grid_run_local(const tema_grid *g, const tema_grid_exec *ex, tema_grid_outcome *outcome,
                                tema_err *err)
{
    memset(outcome, 0, sizeof *outcome);
    FILE *log = ex->log ? ex->log : stderr;
    int jobs = ex->jobs > 0 ? ex->jobs : 1;
    char *abs_path = tema_abspath(g->path), *abs_results = tema_abspath(g->results_dir);
    char *exe = ex->exe ? strdup(ex->exe) : self_exe();
    size_t *todo = calloc(g->n_runs ? g->n_runs : 1, sizeof *todo);
    child *kids = calloc((size_t)jobs, sizeof *kids);
    const char **argv = calloc(12 + 2 * (size_t)ex->n_overrides, sizeof *argv);
    tema_status st = TEMA_OK;
    if (!abs_path || !abs_results || !todo || !kids || !argv) {
        st = tema_fail(err, TEMA_ENOMEM, "out of memory");
        goto out;
    }
    if (!exe) {
        st = tema_fail(err, TEMA_EIO, "cannot find the tema binary (/proc/self/exe); hint: run tema from its path");
        goto out;
    }
    size_t n_todo = 0;
    for (size_t i = 0; i < g->n_runs; i++) {
        tema_grid_state s = tema_grid_run_state(&g->runs[i], NULL, 0);
        if (s == TEMA_GRID_RUNNING) outcome->skipped_busy++;
        else if (s == TEMA_GRID_DONE && !ex->force) outcome->skipped_done++;
        else todo[n_todo++] = i;
    }
    fprintf(log, "tema: grid %s: %zu run%s; %zu done before, %zu running elsewhere, %zu to run, %d at a time\n",
            g->name, g->n_runs, g->n_runs == 1 ? "" : "s", outcome->skipped_done, outcome->skipped_busy, n_todo,
            jobs);
    fflush(log);
    if (n_todo == 0) goto out;
    if ((st = prepare_synthetic(g, abs_results, err)) != TEMA_OK) goto out;

    char index_text[32];
    int na = 0;
    argv[na++] = exe;
    argv[na++] = "run";
    argv[na++] = abs_path;
    argv[na++] = "--index";
    int index_slot = na;
    argv[na++] = index_text;
    argv[na++] = "--results";
    argv[na++] = abs_results;
    for (int i = 0; i < ex->n_overrides; i++) {
        argv[na++] = "--set";
        argv[na++] = ex->overrides[i];
    }
    if (ex->force) argv[na++] = "--force";
    argv[na] = NULL;

    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal; /* no SA_RESTART: waitpid returns on a signal */
    sigemptyset(&sa.sa_mask);
    g_stop_signal = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    size_t next = 0, n_active = 0, started = 0;
    bool forwarded = false;
    while (next < n_todo || n_active > 0) {
        while (!g_stop_signal && n_active < (size_t)jobs && next < n_todo) {
            const tema_grid_run *r = &g->runs[todo[next++]];
            tema_err e = {0};
            if (tema_mkdirs(r->dir, &e) != TEMA_OK) {
                fprintf(log, "tema: run %zu: %s\n", r->index, e.msg);
                write_failed(r->dir, -1, 0, e.msg, &e);
                outcome->failed++;
                continue;
            }
            char logp[PATH_MAX], failp[PATH_MAX];
            snprintf(logp, sizeof logp, "%s/log.txt", r->dir);
            snprintf(failp, sizeof failp, "%s/failed", r->dir);
            unlink(failp);
            int threads = (int)tema_cfg_int(r->cfg, "backend.threads", 1) / jobs;
            char **env = child_env(threads < 1 ? 1 : threads);
            snprintf(index_text, sizeof index_text, "%zu", r->index);
            argv[index_slot] = index_text;
            pid_t pid = env ? spawn_child(exe, (char *const *)argv, env, jobs > 1 ? logp : NULL) : -1;
            free_env(env);
            if (pid < 0) {
                st = tema_fail(err, TEMA_EIO, "cannot start a run: %s", env ? strerror(errno) : "out of memory");
                g_stop_signal = SIGTERM;
                break;
            }
            size_t slot = 0;
            while (kids[slot].pid) slot++;
            kids[slot] = (child){.pid = pid, .index = r->index, .t0 = tema_now()};
            n_active++;
            started++;
            char label[1024];
            tema_grid_label(g, r, true, label, sizeof label);
            fprintf(log, "tema: [%zu/%zu] run %zu (%s) started%s%s%s\n", started, n_todo, r->index, r->id,
                    g->n_keys ? ": " : "", label, jobs > 1 ? "; log in log.txt" : "");
            fflush(log);
        }
        if (n_active == 0) break;
        int wstatus;
        pid_t pid = waitpid(-1, &wstatus, 0);
        if (pid < 0) {
            if (errno != EINTR) break;
            if (g_stop_signal && !forwarded) {
                forwarded = true;
                fprintf(log, "tema: stopping: %zu run%s still running, no new ones start\n", n_active,
                        n_active == 1 ? "" : "s");
                for (int k = 0; k < jobs; k++)
                    if (kids[k].pid) kill(kids[k].pid, g_stop_signal);
            }
            continue;
        }
        int slot = -1;
        for (int k = 0; k < jobs; k++)
            if (kids[k].pid == pid) slot = k;
        if (slot < 0) continue; /* not one of ours */
        const tema_grid_run *r = &g->runs[kids[slot].index];
        double secs = tema_now() - kids[slot].t0;
        kids[slot].pid = 0;
        n_active--;
        char logp[PATH_MAX], msg[1200] = "", failp[PATH_MAX];
        snprintf(logp, sizeof logp, "%s/log.txt", r->dir);
        snprintf(failp, sizeof failp, "%s/failed", r->dir);
        int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
        int sig = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;
        if (code == 0) {
            outcome->ok++;
            fprintf(log, "tema: run %zu (%s) done in %.1f s\n", r->index, r->id, secs);
        } else if (code == TEMA_EXIT_INTERRUPTED || (sig && g_stop_signal)) {
            outcome->interrupted++;
            fprintf(log, "tema: run %zu (%s) interrupted after %.1f s; it resumes on the next `tema run`\n", r->index,
                    r->id, secs);
        } else if (code == TEMA_EXIT_BUSY) {
            outcome->skipped_busy++;
            fprintf(log, "tema: run %zu (%s) is being run by another process; skipped\n", r->index, r->id);
        } else {
            outcome->failed++;
            struct stat sb;
            if (stat(failp, &sb) != 0) {
                /* the child could not record it itself (a crash, a kill, exec failing) */
                char last[1024];
                last_error_line(jobs > 1 ? logp : NULL, last, sizeof last);
                if (sig)
                    snprintf(msg, sizeof msg, "killed by signal %d (%s)%s%s", sig, strsignal(sig),
                             last[0] ? "; last output: " : "", last);
                else if (code == 127)
                    snprintf(msg, sizeof msg, "cannot run %s (exit status 127)", exe);
                else
                    snprintf(msg, sizeof msg, "exit status %d%s%s", code, last[0] ? "; last output: " : "", last);
                tema_err e = {0};
                write_failed(r->dir, code, sig, msg, &e);
            } else {
                failed_message(r->dir, msg, sizeof msg);
            }
            fprintf(log, "tema: run %zu (%s) FAILED after %.1f s: %s%s%s\n", r->index, r->id, secs, msg,
                    jobs > 1 ? "; log: " : "", jobs > 1 ? logp : "");
        }
        fflush(log);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (st == TEMA_OK && g_stop_signal) {
        outcome->interrupted += n_todo - next;
        char again[2048];
        resume_command(g, ex, again, sizeof again);
        st = tema_fail(err, TEMA_EINTERRUPTED, "grid %s stopped by %s; hint: `%s` resumes it", g->name,
                       g_stop_signal == SIGINT ? "SIGINT" : "SIGTERM", again);
    }
    fprintf(log, "tema: grid %s: %zu ran ok, %zu failed, %zu interrupted, %zu done before, %zu running elsewhere\n",
            g->name, outcome->ok, outcome->failed, outcome->interrupted, outcome->skipped_done,
            outcome->skipped_busy);
    fflush(log);
out:
    free(abs_path);
    free(abs_results);
    free(exe);
    free(todo);
    free(kids);
    free(argv);
    return st;
}

/* ---- Slurm ---- */

static void sh_quote(tema_sb *b, const char *s)
{
    tema_sb_add(b, "'");
    for (; *s; s++) {
        if (*s == '\'') tema_sb_add(b, "'\\''");
        else tema_sb_addn(b, s, 1);
    }
    tema_sb_add(b, "'");
}

tema_status tema_grid_write_slurm(const tema_grid *g, const tema_slurm_opts *o, char **script_path, tema_err *err)
{
    *script_path = NULL;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return tema_fail(err, TEMA_EIO, "cannot read the current folder: %s", strerror(errno));
    char *abs_path = tema_abspath(g->path), *abs_results = tema_abspath(g->results_dir);
    char *exe = o->exe ? tema_abspath(o->exe) : self_exe();
    char dir[PATH_MAX], path[PATH_MAX + 300];
    tema_sb b = {0};
    tema_status st = TEMA_OK;
    if (!abs_path || !abs_results || !exe) {
        st = tema_fail(err, TEMA_ENOMEM, "out of memory or no /proc/self/exe");
        goto out;
    }
    snprintf(dir, sizeof dir, "%s/%s/slurm", abs_results, g->name);
    snprintf(path, sizeof path, "%s/%s.sbatch", dir, g->name);
    if ((st = tema_mkdirs(dir, err)) != TEMA_OK) goto out;
    if ((st = prepare_synthetic(g, abs_results, err)) != TEMA_OK) goto out;
    int cpus = o->cpus;
    if (cpus <= 0)
        for (size_t i = 0; i < g->n_runs; i++) {
            int t = (int)tema_cfg_int(g->runs[i].cfg, "backend.threads", 1);
            if (t > cpus) cpus = t;
        }
    if (cpus <= 0) cpus = 1;
    int k = o->max_parallel > 0 ? o->max_parallel : (int)g->n_runs;
    tema_sb_add(&b, "#!/bin/bash\n");
    tema_sb_printf(&b, "# Written by `tema slurm` for experiment %s (%s): %zu run%s, one array task each.\n", g->name,
              abs_path, g->n_runs, g->n_runs == 1 ? "" : "s");
    tema_sb_printf(&b, "# Submit with: sbatch %s   (or: tema slurm %s --submit)\n", path, g->path);
    tema_sb_add(&b, "# Finished runs are skipped, interrupted ones resume; `tema status` shows the progress.\n");
    char jobname[200];
    snprintf(jobname, sizeof jobname, "tema-%s", g->name);
    for (char *c = jobname; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '_' || *c == '.')) *c = '_';
    tema_sb_printf(&b, "#SBATCH --job-name=%s\n", jobname);
    tema_sb_printf(&b, "#SBATCH --array=0-%zu%%%d\n", g->n_runs - 1, k);
    tema_sb_printf(&b, "#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=%d\n", cpus);
    if (o->partition && *o->partition) tema_sb_printf(&b, "#SBATCH --partition=%s\n", o->partition);
    if (o->time && *o->time) tema_sb_printf(&b, "#SBATCH --time=%s\n", o->time);
    if (o->gpus > 0) tema_sb_printf(&b, "#SBATCH --gres=gpu:%d\n", o->gpus);
    tema_sb_printf(&b, "#SBATCH --output=%s/%%A_%%a.out\n", dir);
    tema_sb_printf(&b, "#SBATCH --chdir=%s\n", cwd);
    tema_sb_add(&b, "set -eu\n");
    tema_sb_add(&b, "# relative paths in the experiment resolve against the folder it was written from\ncd ");
    sh_quote(&b, cwd);
    tema_sb_add(&b, "\n");
    tema_sb_printf(&b, "export OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d OMP_THREAD_LIMIT=%d\n", cpus, cpus, cpus);
    const char *pp = getenv("TEMA_PLUGIN_PATH");
    if (pp && *pp) {
        tema_sb_add(&b, "export TEMA_PLUGIN_PATH=");
        sh_quote(&b, pp);
        tema_sb_add(&b, "\n");
    }
    tema_sb_add(&b, "exec ");
    sh_quote(&b, exe);
    tema_sb_add(&b, " run ");
    sh_quote(&b, abs_path);
    tema_sb_add(&b, " --index \"$SLURM_ARRAY_TASK_ID\" --results ");
    sh_quote(&b, abs_results);
    for (int i = 0; i < o->n_overrides; i++) {
        tema_sb_add(&b, " --set ");
        sh_quote(&b, o->overrides[i]);
    }
    tema_sb_add(&b, "\n");
    char *text = tema_sb_take(&b);
    b.p = NULL;
    if (!text) {
        st = tema_fail(err, TEMA_ENOMEM, "out of memory");
        goto out;
    }
    st = tema_write_file_atomic(path, text, strlen(text), err);
    free(text);
    if (st == TEMA_OK) chmod(path, 0755);
    if (st == TEMA_OK && !(*script_path = strdup(path))) st = tema_fail(err, TEMA_ENOMEM, "out of memory");
out:
    free(b.p);
    free(abs_path);
    free(abs_results);
    free(exe);
    return st;
}

tema_status tema_grid_submit_slurm(const char *script_path, char *job_id, size_t cap, tema_err *err)
{
    if (cap) job_id[0] = '\0';
    int fds[2];
    if (pipe(fds) != 0) return tema_fail(err, TEMA_EIO, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return tema_fail(err, TEMA_EIO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execlp("sbatch", "sbatch", "--parsable", script_path, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char out[4096];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fds[0], out + n, sizeof out - 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
        if (n == sizeof out - 1) break;
    }
    out[n] = '\0';
    close(fds[0]);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
        int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
        if (code == 127)
            return tema_fail(err, TEMA_ENOTFOUND,
                             "sbatch not found; hint: submit %s on a Slurm login node, or install Slurm's client tools",
                             script_path);
        while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ')) out[--n] = '\0';
        return tema_fail(err, TEMA_EIO, "sbatch %s failed (exit status %d): %s; hint: does `sinfo` work here?",
                         script_path, code, out);
    }
    /* --parsable prints "JOBID" or "JOBID;CLUSTER" (after any warnings on their own lines) */
    char *line = out, *save = NULL, *last = NULL;
    for (char *l = strtok_r(line, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) last = l;
    if (!last) return tema_fail(err, TEMA_EFORMAT, "sbatch printed no job id");
    last[strcspn(last, ";")] = '\0';
    snprintf(job_id, cap, "%s", last);
    return TEMA_OK;
}
