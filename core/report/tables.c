/* core/report/tables.c - a table built from its spec: axis values found in the runs, row and
 * column combinations, cells with mean and std per metric, best and second best per column.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../stats.h"
#include "report_internal.h"

static bool cond_ok(report_ctx *R, const run *r, const cond *c)
{
    json_object *v = rep_jget(r->config, c->key);
    char *t = rep_jtext(&R->ar, v);
    if (!t) { /* `KEY: null` (or ~) selects the runs without that key, e.g. a shorter encoder list */
        for (int i = 0; i < c->n_values; i++)
            if (!strcmp(c->values[i], "null") || !strcmp(c->values[i], "~") || !c->values[i][0])
                return true;
        return false;
    }
    for (int i = 0; i < c->n_values; i++)
        if (rep_value_matches(t, c->values[i]))
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
            if (l->type == TEMA_CFG_SCALAR && rep_value_matches(raw, l->key))
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
            if (rep_value_matches(raw, ax->labels->items[i]->key))
                return (int)i;
    return -1;
}

/* The distinct values of the axis key in the runs that pass `where` (raw text and node, in order
 * of first appearance) and rv[i], run i's value index (-1: left out). Returns how many runs have
 * the key, -1 when out of memory. */
static int collect_key_values(report_ctx *R, const table *T, const axis *ax, int *rv, const char **raw,
                              json_object **node, int *n_out)
{
    int n = 0, present = 0;
    for (int i = 0; i < R->n_runs; i++) {
        rv[i] = -1;
        if (!T->run_ok[i])
            continue;
        json_object *v = rep_jget(R->runs[i].config, ax->key);
        present += v != NULL;
        char *t = rep_jtext(&R->ar, v);
        if (!t)
            return -1;
        int k = 0;
        while (k < n && strcmp(raw[k], t))
            k++;
        if (k == n) {
            raw[n] = t;
            node[n++] = v;
        }
        rv[i] = k;
    }
    *n_out = n;
    return present;
}

/* Order: labelled values in the order of `labels`, then grid order (manifest) or sorted. */
static void order_key_values(const report_ctx *R, const axis *ax, const char **raw, int n, int *perm)
{
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
                c = R->have_manifest ? 0 : rep_natural_cmp(raw[a], raw[b]);
            if (c <= 0)
                break;
            perm[j - 1] = b;
            perm[j] = a;
        }
    }
}

/* Label of plugin sub-config node[self] among the n values (sub: the keys in which they
 * differ): the plugin name plus the options that tell it apart; av->label stays without them. */
static void plugin_value_label(report_ctx *R, json_object **node, int n, int self, const key_list *sub,
                               axis_value *av)
{
    tema_sb lab = {0};
    json_object *plugin = rep_jget(node[self], "plugin");
    if (plugin && json_object_is_type(plugin, json_type_string))
        tema_sb_add(&lab, json_object_get_string(plugin));
    const char *me = plugin ? json_object_get_string(plugin) : "";
    for (int d = 0; d < sub->n; d++) {
        json_object *v = rep_jget(node[self], sub->keys[d]);
        if (!strcmp(sub->keys[d], "plugin") || !v)
            continue;
        char *t = rep_jtext(&R->ar, v);
        /* an option tells values apart only next to another value of the same plugin */
        bool differs = false;
        for (int j = 0; t && j < n && !differs; j++) {
            json_object *pj = rep_jget(node[j], "plugin");
            const char *other = pj && json_object_is_type(pj, json_type_string) ? json_object_get_string(pj) : "";
            char *tj = j != self && !strcmp(me, other) ? rep_jtext(&R->ar, rep_jget(node[j], sub->keys[d])) : NULL;
            differs = tj && strcmp(tj, t);
        }
        if (differs)
            tema_sb_printf(&lab, "%s%s=%s", lab.n ? " " : "", sub->keys[d], t);
    }
    if (lab.n)
        av->label = rep_strdup(&R->ar, tema_sb_str(&lab));
    tema_sb_free(&lab);
}

/* Fills an AX_KEY axis with the values its key takes in the runs that pass `where`. */
static tema_status fill_key_axis(report_ctx *R, table *T, axis *ax, int **run_val, const char *ctx, tema_err *err)
{
    int *rv = rep_alloc(&R->ar, (size_t)(R->n_runs ? R->n_runs : 1) * sizeof *rv);
    const char **raw = rep_alloc(&R->ar, (size_t)(R->n_runs ? R->n_runs : 1) * sizeof *raw);
    json_object **node = rep_alloc(&R->ar, (size_t)(R->n_runs ? R->n_runs : 1) * sizeof *node);
    if (!rv || !raw || !node)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    int n = 0, present = collect_key_values(R, T, ax, rv, raw, node, &n);
    if (present < 0)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    if (!present && n > 0) {
        tema_sb keys = {0};
        for (int k = 0; k < R->n_varying; k++)
            tema_sb_printf(&keys, "%s%s", k ? ", " : "", R->varying[k]);
        tema_status st = rep_spec_fail(err, ax->node, "%s: no run has the key '%s'; the runs differ in: %s", ctx,
                                       ax->key, keys.n ? tema_sb_str(&keys) : "(nothing but the seed)");
        tema_sb_free(&keys);
        return st;
    }
    int *perm = rep_alloc(&R->ar, (size_t)(n ? n : 1) * sizeof *perm);
    if (!perm)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    order_key_values(R, ax, raw, n, perm);
    int *inv = rep_alloc(&R->ar, (size_t)(n ? n : 1) * sizeof *inv);
    ax->vals = rep_alloc(&R->ar, (size_t)(n ? n : 1) * sizeof *ax->vals);
    if (!inv || !ax->vals)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    /* plugin sub-configs: the plugin name plus the options in which the values differ */
    key_list sub = {0};
    bool objects = n > 1;
    for (int k = 0; k < n; k++)
        objects = objects && node[k] && json_object_is_type(node[k], json_type_object);
    for (int k = 1; objects && k < n; k++)
        rep_all_diffs(&R->ar, &sub, node[0], node[k], "");
    for (int k = 0; k < n; k++) {
        inv[perm[k]] = k;
        axis_value *av = &ax->vals[k];
        memset(av, 0, sizeof *av);
        av->raw = raw[perm[k]];
        av->label = value_label(ax, av->raw, node[perm[k]]);
        av->domain = -1;
        if (objects && label_rank(ax, av->raw) < 0)
            plugin_value_label(R, node, n, perm[k], &sub, av);
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
    ax->vals = rep_alloc(&R->ar, 2 * sizeof *ax->vals);
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
    combo *c = rep_alloc(&R->ar, (total ? total : 1) * sizeof *c);
    if (!c)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    int n = 0;
    int *idx = rep_alloc(&R->ar, (size_t)(n_axes ? n_axes : 1) * sizeof *idx);
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
        cb->vi = rep_alloc(&R->ar, (size_t)(n_axes ? n_axes : 1) * sizeof *cb->vi);
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
        cb->label = rep_strdup(&R->ar, tema_sb_str(&lab));
        tema_sb_free(&lab);
    }
    *out = c;
    *n_out = n;
    return R->ar.oom ? tema_fail(err, TEMA_ENOMEM, "report: out of memory") : TEMA_OK;
}

/* Metric value of one run: final.json SPLIT.DOMAIN.RULE.METRIC. */
double rep_run_metric(const run *r, const table_spec *t, int domain, int m)
{
    char key[96];
    snprintf(key, sizeof key, "%s.%s.%s.%s", t->split, domain ? "Y" : "X", tema_rank_rule_name(t->rule),
             t->metrics.name[m]);
    return rep_jnum(r->final, key);
}

static double display_value(const table_spec *t, double v)
{
    double scaled = t->percent ? v * 100 : v;
    double p = pow(10, t->digits);
    return round(scaled * p) / p;
}

/* The runs' eval.metrics, for a table that names none. */
static tema_status default_metrics(report_ctx *R, table_spec *t, tema_err *err)
{
    json_object *list = R->n_runs ? rep_jget(R->runs[0].config, "eval.metrics") : NULL;
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
    return TEMA_OK;
}

/* The runs that pass `where`, then the values of every axis found in them. */
static tema_status fill_axes(report_ctx *R, table *T, const char *ctx, tema_err *err)
{
    table_spec *t = &T->spec;
    T->run_ok = rep_alloc(&R->ar, (size_t)(R->n_runs ? R->n_runs : 1) * sizeof *T->run_ok);
    T->axis_run_val = rep_alloc(&R->ar, (size_t)(t->n_rows + t->n_cols) * sizeof *T->axis_run_val);
    if (!T->run_ok || !T->axis_run_val)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    int n_ok = 0;
    for (int i = 0; i < R->n_runs; i++)
        n_ok += T->run_ok[i] = conds_ok(R, &R->runs[i], t->where, t->n_where);
    if (n_ok == 0 && t->n_where)
        rep_note(R, "table %s: no finished run matches its where:", t->name);
    tema_status st;
    for (int a = 0; a < t->n_rows + t->n_cols; a++) {
        axis *ax = a < t->n_rows ? &t->rows[a] : &t->cols[a - t->n_rows];
        if (ax->kind == AX_KEY && (st = fill_key_axis(R, T, ax, &T->axis_run_val[a], ctx, err)) != TEMA_OK)
            return st;
        if (ax->kind == AX_DOMAIN)
            fill_domain_axis(R, t, ax);
    }
    return TEMA_OK;
}

/* The baseline row: by label, or by value for a one-key row axis. */
static tema_status find_baseline(table *T, const char *ctx, tema_err *err)
{
    const table_spec *t = &T->spec;
    T->baseline = -1;
    if (!t->baseline)
        return TEMA_OK;
    for (int r = 0; r < T->n_rows && T->baseline < 0; r++)
        if (!strcmp(T->rows[r].label, t->baseline))
            T->baseline = r;
    for (int r = 0; r < T->n_rows && T->baseline < 0 && t->n_rows == 1 && t->rows[0].kind == AX_KEY; r++)
        if (rep_value_matches(t->rows[0].vals[T->rows[r].vi[0]].raw, t->baseline))
            T->baseline = r;
    if (T->baseline >= 0 || T->n_rows == 0) /* no finished run yet: an empty table, already noted */
        return TEMA_OK;
    tema_sb rows = {0};
    for (int r = 0; r < T->n_rows; r++)
        tema_sb_printf(&rows, "%s'%s'", r ? ", " : "", T->rows[r].label);
    tema_status st = rep_spec_fail(err, t->baseline_node, "%s.baseline: '%s' is not one of the rows (%s)", ctx,
                                   t->baseline, rows.n ? tema_sb_str(&rows) : "none: no finished run matches");
    tema_sb_free(&rows);
    return st;
}

/* The runs of cell (r, c): those that pass `where` and sit at its row and column. */
static void cell_runs(report_ctx *R, table *T, int r, int c, cell *ce)
{
    const table_spec *t = &T->spec;
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
}

/* A cell is one grid cell over seeds; anything else is probably a missing axis (one warning
 * per table: *warned). */
static void check_cell_runs(report_ctx *R, const table *T, const cell *ce, int r, int c, bool *warned)
{
    const table_spec *t = &T->spec;
    for (int k = 1; k < ce->n_runs && !*warned; k++) {
        const run *x = &R->runs[ce->runs[0]], *y = &R->runs[ce->runs[k]];
        char key[512];
        if (x->group != y->group && rep_first_diff(x->config, y->config, "", key, sizeof key)) {
            rep_note(R, "table %s, row '%s', column '%s': its runs differ in %s, not only in train.seed; "
                     "they are averaged as if they were seeds. Add %s to rows, columns or where:",
                     t->name, T->rows[r].label, T->cols[c].label, key, key);
            *warned = true;
        } else if (x->group == y->group && x->seed == y->seed) {
            rep_note(R, "table %s: runs %s and %s have the same config and seed", t->name, x->id, y->id);
            *warned = true;
        }
    }
}

/* Mean and std of each metric over the cell's runs that have it (column c gives the domain). */
static tema_status cell_stats(report_ctx *R, const table *T, cell *ce, int c, tema_err *err)
{
    const table_spec *t = &T->spec;
    for (int m = 0; m < t->metrics.n; m++) {
        double *v = malloc(((size_t)ce->n_runs + 1) * sizeof *v);
        if (!v)
            return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
        int k = 0;
        for (int i = 0; i < ce->n_runs; i++) {
            double x = rep_run_metric(&R->runs[ce->runs[i]], t, T->cols[c].domain, m);
            if (isfinite(x))
                v[k++] = x;
        }
        ce->n_vals[m] = k;
        ce->mean[m] = tema_stats_mean(v, k);
        ce->std[m] = tema_stats_std(v, k);
        ce->p_user_t[m] = ce->p_user_w[m] = ce->p_run_t[m] = NAN;
        free(v);
    }
    return TEMA_OK;
}

static tema_status fill_cells(report_ctx *R, table *T, tema_err *err)
{
    size_t n_cells = (size_t)T->n_rows * (size_t)T->n_cols;
    T->cells = rep_alloc(&R->ar, (n_cells ? n_cells : 1) * sizeof *T->cells);
    if (!T->cells)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    T->seeds_min = INT32_MAX;
    T->seeds_max = 0;
    T->user_tests = !strcmp(T->spec.split, "test");
    bool warned_mix = false;
    for (int r = 0; r < T->n_rows; r++)
        for (int c = 0; c < T->n_cols; c++) {
            cell *ce = &T->cells[r * T->n_cols + c];
            memset(ce, 0, sizeof *ce);
            ce->runs = rep_alloc(&R->ar, (size_t)(R->n_runs ? R->n_runs : 1) * sizeof *ce->runs);
            if (!ce->runs)
                return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
            cell_runs(R, T, r, c, ce);
            check_cell_runs(R, T, ce, r, c, &warned_mix);
            if (ce->n_runs) {
                T->seeds_min = ce->n_runs < T->seeds_min ? ce->n_runs : T->seeds_min;
                T->seeds_max = ce->n_runs > T->seeds_max ? ce->n_runs : T->seeds_max;
            }
            tema_status st = cell_stats(R, T, ce, c, err);
            if (st != TEMA_OK)
                return st;
        }
    if (T->seeds_min == INT32_MAX)
        T->seeds_min = 0;
    return TEMA_OK;
}

/* The tests of every cell against the baseline's cell in its column. */
static tema_status test_cells(report_ctx *R, table *T, tema_err *err)
{
    tema_status st;
    if (T->baseline >= 0)
        for (int r = 0; r < T->n_rows; r++)
            for (int c = 0; c < T->n_cols && r != T->baseline; c++) {
                cell *ce = &T->cells[r * T->n_cols + c], *base = &T->cells[T->baseline * T->n_cols + c];
                if (ce->n_runs && base->n_runs &&
                    (st = rep_test_cell(R, T, ce, base, T->cols[c].domain, err)) != TEMA_OK)
                    return st;
            }
    return TEMA_OK;
}

/* Best and second best per column, on the values as printed. */
static void mark_best(table *T)
{
    const table_spec *t = &T->spec;
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
}

tema_status rep_build_table(report_ctx *R, table *T, int index, tema_err *err)
{
    table_spec *t = &T->spec;
    char ctx[64];
    snprintf(ctx, sizeof ctx, "report.tables[%d]", index);
    if (!strcmp(t->name, "timing") || !strcmp(t->name, "report"))
        return rep_spec_fail(err, t->node, "%s.name: '%s' is the name of the report's own file; pick another", ctx,
                             t->name);
    tema_status st;
    if ((t->metrics.n == 0 && (st = default_metrics(R, t, err)) != TEMA_OK) ||
        (st = fill_axes(R, T, ctx, err)) != TEMA_OK)
        return st;
    if ((st = make_combos(R, T, 0, t->n_rows, true, &T->rows, &T->n_rows, err)) != TEMA_OK ||
        (st = make_combos(R, T, t->n_rows, t->n_rows + t->n_cols, false, &T->cols, &T->n_cols, err)) != TEMA_OK)
        return st;
    if ((st = find_baseline(T, ctx, err)) != TEMA_OK || (st = fill_cells(R, T, err)) != TEMA_OK ||
        (st = test_cells(R, T, err)) != TEMA_OK)
        return st;
    mark_best(T);
    return R->ar.oom ? tema_fail(err, TEMA_ENOMEM, "report: out of memory") : TEMA_OK;
}
