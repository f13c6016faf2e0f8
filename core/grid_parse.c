/* core/grid_parse.c - reading the `grid:` block: its keys (dotted paths), their lists of
 * values, the axes (one per key, one per zip group, the seeds last) and the located
 * problems. Separate from grid.c, which combines the axes into runs: this is the part that
 * knows the block's syntax. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grid_internal.h"

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
static bool add_key(tema_grid_block *gp, const char *key, const tema_cfg *list, const tema_cfg *at)
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

static bool add_axis(tema_grid_block *gp, size_t first, size_t count, size_t n_values)
{
    if (gp->n_axes == gp->cap_axes) {
        size_t cap = gp->cap_axes ? gp->cap_axes * 2 : 8;
        tema_grid_axis *a = realloc(gp->axes, cap * sizeof *a);
        if (!a) return false;
        gp->axes = a;
        gp->cap_axes = cap;
    }
    gp->axes[gp->n_axes++] = (tema_grid_axis){.first = first, .count = count, .n_values = n_values};
    return true;
}

static void join_key(char *out, size_t cap, const char *prefix, const char *key)
{
    if (*prefix) snprintf(out, cap, "%s.%s", prefix, key);
    else snprintf(out, cap, "%s", key);
}

/* The keys of a map (nested maps = dotted paths), each with a non-empty list. */
static void collect_lists(tema_grid_block *gp, const tema_cfg *map, const char *prefix, const char *ctx)
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

static void parse_zip_group(tema_grid_block *gp, const tema_cfg *group)
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

void tema_gridi_read_block(tema_grid_block *gp, const tema_cfg *grid)
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

void tema_gridi_block_free(tema_grid_block *gp)
{
    for (size_t i = 0; i < gp->n_keys; i++) free(gp->keys[i]);
    free(gp->keys);
    free(gp->lists);
    free(gp->axes);
}

/* ---- --set options against the grid ---- */

/* Does the --set assignment touch a grid key? */
static const char *override_hits(const tema_grid_block *gp, const char *assignment)
{
    const char *eq = strchr(assignment, '=');
    size_t n = eq ? (size_t)(eq - assignment) : strlen(assignment);
    char key[1024];
    snprintf(key, sizeof key, "%.*s", (int)(n < sizeof key ? n : sizeof key - 1), assignment);
    for (size_t i = 0; i < gp->n_keys; i++)
        if (keys_overlap(gp->keys[i], key)) return gp->keys[i];
    return NULL;
}

void tema_gridi_check_overrides(tema_grid_block *gp, const char *path, const char *const *overrides, int n_overrides)
{
    for (int i = 0; gp->ok && i < n_overrides; i++) {
        const char *hit = override_hits(gp, overrides[i]);
        if (hit) {
            tema_cfg_report(gp->d, TEMA_EINVAL, "<command line>",
                            "--set %s: '%s' is varied by the grid of %s, so the setting would override every cell; "
                            "change the grid instead",
                            overrides[i], hit, path);
            gp->ok = false;
        }
    }
}
