/* core/report/spec.c - the report: block of an experiment file: its tables and their axes,
 * checked with errors located at the file's lines, or the default table without one.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "report_internal.h"

tema_status rep_spec_fail(tema_err *err, const tema_cfg *node, const char *fmt, ...)
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

bool rep_valid_name(const char *s)
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
        return rep_spec_fail(err, node,
                             "%s: expected a map of key paths to values, like {model.attention.plugin: multi}", ctx);
    cond *c = rep_alloc(&R->ar, (node->n_items ? node->n_items : 1) * sizeof *c);
    if (!c)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    for (size_t i = 0; i < node->n_items; i++) {
        const tema_cfg *v = node->items[i];
        c[i].key = v->key;
        if (v->type == TEMA_CFG_SCALAR || v->type == TEMA_CFG_NULL) {
            c[i].values = rep_alloc(&R->ar, sizeof *c[i].values);
            if (!c[i].values)
                return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
            /* KEY: null selects the runs without that key (cond_ok), e.g. a shorter encoder list */
            c[i].values[0] = v->type == TEMA_CFG_NULL ? "null" : v->value;
            c[i].n_values = 1;
        } else if (v->type == TEMA_CFG_LIST && v->n_items > 0) {
            c[i].values = rep_alloc(&R->ar, v->n_items * sizeof *c[i].values);
            if (!c[i].values)
                return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
            for (size_t k = 0; k < v->n_items; k++) {
                if (v->items[k]->type != TEMA_CFG_SCALAR)
                    return rep_spec_fail(err, v->items[k],
                                         "%s.%s: expected plain values; to match a plugin sub-config, "
                                         "name one of its keys, e.g. %s.plugin", ctx, v->key, v->key);
                c[i].values[k] = v->items[k]->value;
            }
            c[i].n_values = (int)v->n_items;
        } else {
            return rep_spec_fail(err, v, "%s.%s: expected a value or a list of values; to match a plugin sub-config, "
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
        ax->vals = rep_alloc(&R->ar, node->n_items * sizeof *ax->vals);
        if (!ax->vals)
            return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
        for (size_t i = 0; i < node->n_items; i++) {
            const tema_cfg *e = node->items[i], *label = child(e, "label");
            for (size_t k = 0; k < e->n_items; k++)
                if (strcmp(e->items[k]->key, "label") && strcmp(e->items[k]->key, "where"))
                    return rep_spec_fail(err, e->items[k],
                                         "%s: unknown key '%s' in an entry; an entry has label and where", ctx,
                                         e->items[k]->key);
            if (!label || label->type != TEMA_CFG_SCALAR)
                return rep_spec_fail(err, e, "%s: every entry needs a label: {label: NAME, where: {...}}", ctx);
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
                return rep_spec_fail(err, node->items[k], "%s: unknown key '%s'; an axis is KEY, {key: KEY, labels: "
                                     "{VALUE: LABEL}} or a list of {label: L, where: {...}}", ctx, node->items[k]->key);
        if (ax->labels && ax->labels->type != TEMA_CFG_MAP)
            return rep_spec_fail(err, ax->labels, "%s.labels: expected a map VALUE: LABEL", ctx);
    }
    if (!key || key->type != TEMA_CFG_SCALAR || !key->value[0])
        return rep_spec_fail(err, node,
                             "%s: expected a key path (e.g. model.attention.plugin), {key: KEY, labels: {...}}, "
                             "domain, or a list of {label: L, where: {KEY: VALUE}}", ctx);
    ax->key = key->value;
    if (!strcmp(key->value, "domain")) {
        if (!allow_domain)
            return rep_spec_fail(err, node, "%s: domain can only be a column axis; put it in columns", ctx);
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
        return rep_spec_fail(err, node, "%s: empty list; give at least one key path", ctx);
    axis *ax = rep_alloc(&R->ar, (size_t)(n + 1) * sizeof *ax); /* +1: room for an implicit domain axis */
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

static tema_status check_table_keys(const tema_cfg *node, const char *ctx, tema_err *err)
{
    static const char *const known[] = {"name", "title", "rows", "row_title", "columns", "domains", "metrics",
                                        "rule", "split", "baseline", "where", "percent", "digits", "alpha",
                                        "heatmap", "bars", "latex"};
    for (size_t i = 0; i < node->n_items; i++) {
        bool ok = false;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            ok |= !strcmp(node->items[i]->key, known[k]);
        if (!ok)
            return rep_spec_fail(err, node->items[i],
                                 "%s: unknown key '%s'; a table takes name, title, rows, row_title, "
                                 "columns, domains, metrics, rule, split, baseline, where, percent, digits, alpha, "
                                 "heatmap, bars, latex", ctx, node->items[i]->key);
    }
    return TEMA_OK;
}

/* rows and columns; without a domain column axis, domain becomes the innermost one. */
static tema_status parse_table_axes(report_ctx *R, const tema_cfg *node, const char *ctx, table_spec *t,
                                    tema_err *err)
{
    const tema_cfg *v;
    tema_status st;
    if ((v = child(node, "rows"))) {
        if ((st = parse_axes(R, v, ctx, false, &t->rows, &t->n_rows, err)) != TEMA_OK)
            return st;
    }
    if ((v = child(node, "columns"))) {
        if ((st = parse_axes(R, v, ctx, true, &t->cols, &t->n_cols, err)) != TEMA_OK)
            return st;
    } else {
        t->cols = rep_alloc(&R->ar, sizeof *t->cols);
        if (!t->cols)
            return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    }
    int n_domain_axes = 0;
    for (int i = 0; i < t->n_cols; i++)
        n_domain_axes += t->cols[i].kind == AX_DOMAIN;
    if (n_domain_axes > 1)
        return rep_spec_fail(err, v, "%s.columns: domain appears twice", ctx);
    if (!n_domain_axes) {
        memset(&t->cols[t->n_cols], 0, sizeof t->cols[0]);
        t->cols[t->n_cols].kind = AX_DOMAIN;
        t->cols[t->n_cols++].key = "domain";
    }
    return TEMA_OK;
}

static tema_status parse_domains(report_ctx *R, const tema_cfg *node, const char *ctx, table_spec *t,
                                 tema_err *err)
{
    t->domains = rep_alloc(&R->ar, 2 * sizeof *t->domains);
    if (!t->domains)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    const tema_cfg *v = child(node, "domains");
    if (!v) {
        t->domains[0] = "X";
        t->domains[1] = "Y";
        t->n_domains = 2;
        return TEMA_OK;
    }
    const tema_cfg *items[2];
    int n = 0;
    if (v->type == TEMA_CFG_SCALAR) {
        items[n++] = v;
    } else if (v->type == TEMA_CFG_LIST && v->n_items >= 1 && v->n_items <= 2) {
        for (size_t i = 0; i < v->n_items; i++)
            items[n++] = v->items[i];
    } else {
        return rep_spec_fail(err, v, "%s.domains: expected X, Y or [X, Y]", ctx);
    }
    for (int i = 0; i < n; i++) {
        const char *d = scalar(items[i]);
        if (!d || (strcmp(d, "X") && strcmp(d, "Y")))
            return rep_spec_fail(err, items[i], "%s.domains: expected X or Y, got '%s'", ctx, d ? d : "(a map)");
        t->domains[t->n_domains++] = d;
    }
    return TEMA_OK;
}

/* What a cell shows: metrics, rule and split. */
static tema_status parse_cell_values(const tema_cfg *node, const char *ctx, table_spec *t, tema_err *err)
{
    const tema_cfg *v;
    if ((v = child(node, "metrics"))) {
        const char *names[TEMA_MAX_METRICS + 1];
        int n = 0;
        if (v->type == TEMA_CFG_SCALAR)
            names[n++] = v->value;
        else if (v->type == TEMA_CFG_LIST)
            for (size_t i = 0; i < v->n_items && n <= TEMA_MAX_METRICS; i++) {
                if (!scalar(v->items[i]))
                    return rep_spec_fail(err, v->items[i], "%s.metrics: expected names like mrr, ndcg@10, hr@5", ctx);
                names[n++] = v->items[i]->value;
            }
        tema_err e = {0};
        if (tema_metric_parse(names, n, &t->metrics, &e) != TEMA_OK)
            return rep_spec_fail(err, v, "%s.metrics: %s", ctx, e.msg);
    }
    t->rule = TEMA_RANK_OPTIMISTIC;
    if ((v = child(node, "rule"))) {
        const char *s = scalar(v);
        int r = -1;
        for (int k = 0; s && k < TEMA_RANK_RULES; k++)
            if (!strcmp(s, tema_rank_rule_name((tema_rank_rule)k)))
                r = k;
        if (r < 0)
            return rep_spec_fail(err, v, "%s.rule: expected optimistic (C2DSR), pessimistic or mid, got '%s'", ctx,
                                 s ? s : "(not a word)");
        t->rule = (tema_rank_rule)r;
    }
    t->split = "test";
    if ((v = child(node, "split"))) {
        const char *s = scalar(v);
        if (!s || (strcmp(s, "test") && strcmp(s, "valid")))
            return rep_spec_fail(err, v, "%s.split: expected test or valid", ctx);
        t->split = s;
    }
    return TEMA_OK;
}

/* An optional true/false key; *out keeps its default when the key is absent. */
static tema_status parse_flag(const tema_cfg *node, const char *key, const char *ctx, bool *out, tema_err *err)
{
    const tema_cfg *v = child(node, key);
    if (!v)
        return TEMA_OK;
    const char *s = scalar(v);
    if (!s || !(rep_is_true_word(s) || rep_is_false_word(s)))
        return rep_spec_fail(err, v, "%s.%s: expected true or false", ctx, key);
    *out = rep_is_true_word(s);
    return TEMA_OK;
}

/* How values print and which differences count: percent, digits, alpha. */
static tema_status parse_format(const tema_cfg *node, const char *ctx, table_spec *t, tema_err *err)
{
    t->percent = false;
    tema_status st = parse_flag(node, "percent", ctx, &t->percent, err);
    if (st != TEMA_OK)
        return st;
    const tema_cfg *v;
    t->digits = t->percent ? 2 : 4;
    if ((v = child(node, "digits"))) {
        double d;
        if (!rep_parse_number(scalar(v), &d) || d != floor(d) || d < 0 || d > 10)
            return rep_spec_fail(err, v, "%s.digits: expected an integer from 0 to 10", ctx);
        t->digits = (int)d;
    }
    t->alpha = 0.05;
    if ((v = child(node, "alpha"))) {
        if (!rep_parse_number(scalar(v), &t->alpha) || !(t->alpha > 0 && t->alpha < 1))
            return rep_spec_fail(err, v, "%s.alpha: expected a number between 0 and 1, like 0.05", ctx);
    }
    return TEMA_OK;
}

static tema_status parse_charts(const tema_cfg *node, const char *ctx, table_spec *t, tema_err *err)
{
    const tema_cfg *v;
    t->heatmap = -1;
    if ((v = child(node, "heatmap"))) {
        const char *s = scalar(v);
        if (s && rep_is_false_word(s)) {
            t->heatmap = 0;
        } else if (s && rep_is_true_word(s)) {
            t->heatmap = 1;
        } else {
            tema_metric_spec one;
            tema_err e = {0};
            if (!s || tema_metric_parse(&s, 1, &one, &e) != TEMA_OK)
                return rep_spec_fail(err, v, "%s.heatmap: expected false or a metric name like mrr", ctx);
            t->heatmap = 1;
            snprintf(t->heatmap_metric, sizeof t->heatmap_metric, "%s", one.name[0]);
        }
    }
    t->bars = true;
    return parse_flag(node, "bars", ctx, &t->bars, err);
}

/* latex: {float: table | table*, size: small, siunitx: true, fit: false}; keys left out
 * keep *l. */
static tema_status parse_latex(const tema_cfg *node, const char *ctx, latex_spec *l, tema_err *err)
{
    if (!node)
        return TEMA_OK;
    if (node->type != TEMA_CFG_MAP)
        return rep_spec_fail(err, node, "%s.latex: expected a map like {float: table*, size: small, fit: true}",
                             ctx);
    static const char *const sizes[] = {"tiny", "scriptsize", "footnotesize", "small", "normalsize"};
    char sub[96];
    snprintf(sub, sizeof sub, "%s.latex", ctx);
    for (size_t i = 0; i < node->n_items; i++) {
        const tema_cfg *v = node->items[i];
        const char *s = scalar(v);
        if (!strcmp(v->key, "float")) {
            if (!s || (strcmp(s, "table") && strcmp(s, "table*")))
                return rep_spec_fail(err, v, "%s.float: expected table or table* (table* spans both columns of a "
                                     "two-column paper)", sub);
            l->env = s;
        } else if (!strcmp(v->key, "size")) {
            bool ok = false;
            for (size_t k = 0; s && k < sizeof sizes / sizeof sizes[0]; k++)
                ok |= !strcmp(s, sizes[k]);
            if (!ok)
                return rep_spec_fail(err, v, "%s.size: expected tiny, scriptsize, footnotesize, small or normalsize",
                                     sub);
            l->size = s;
        } else if (!strcmp(v->key, "siunitx") || !strcmp(v->key, "fit")) {
            tema_status st = parse_flag(node, v->key, sub, v->key[0] == 's' ? &l->siunitx : &l->fit, err);
            if (st != TEMA_OK)
                return st;
        } else {
            return rep_spec_fail(err, v, "%s: unknown key '%s'; latex takes float, size, siunitx, fit", sub, v->key);
        }
    }
    return TEMA_OK;
}

static tema_status parse_table(report_ctx *R, const tema_cfg *node, int index, table_spec *t, tema_err *err)
{
    char ctx[64];
    snprintf(ctx, sizeof ctx, "report.tables[%d]", index);
    memset(t, 0, sizeof *t);
    t->node = node;
    if (node->type != TEMA_CFG_MAP)
        return rep_spec_fail(err, node, "%s: expected a map with name, rows, columns, metrics, ...", ctx);
    tema_status st = check_table_keys(node, ctx, err);
    if (st != TEMA_OK)
        return st;
    t->name = scalar(child(node, "name"));
    if (!t->name || !rep_valid_name(t->name))
        return rep_spec_fail(err, child(node, "name") ? child(node, "name") : node,
                             "%s.name: %s; give a file name like table2 (letters, digits, '-', '_', '.')", ctx,
                             t->name ? "not usable as a file name" : "missing");
    t->title = scalar(child(node, "title"));
    if (!t->title)
        t->title = t->name;
    t->row_title = scalar(child(node, "row_title"));
    if ((st = parse_table_axes(R, node, ctx, t, err)) != TEMA_OK ||
        (st = parse_domains(R, node, ctx, t, err)) != TEMA_OK || (st = parse_cell_values(node, ctx, t, err)) != TEMA_OK)
        return st;
    const tema_cfg *v;
    if ((v = child(node, "baseline"))) {
        if (!scalar(v))
            return rep_spec_fail(err, v, "%s.baseline: expected a row label or value", ctx);
        t->baseline = v->value;
        t->baseline_node = v;
    }
    t->latex = R->latex;
    if ((st = parse_where(R, child(node, "where"), ctx, &t->where, &t->n_where, err)) != TEMA_OK ||
        (st = parse_format(node, ctx, t, err)) != TEMA_OK || (st = parse_latex(child(node, "latex"), ctx, &t->latex,
                                                                                 err)) != TEMA_OK)
        return st;
    return parse_charts(node, ctx, t, err);
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
    t->domains = rep_alloc(&R->ar, 2 * sizeof *t->domains);
    t->rows = rep_alloc(&R->ar, (size_t)(n_keys + 1) * sizeof *t->rows);
    t->cols = rep_alloc(&R->ar, 2 * sizeof *t->cols);
    if (!t->domains || !t->rows || !t->cols)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    t->domains[0] = "X";
    t->domains[1] = "Y";
    t->n_domains = 2;
    if (n_keys == 0) {
        t->rows[0].kind = AX_EXPLICIT;
        t->rows[0].vals = rep_alloc(&R->ar, sizeof *t->rows[0].vals);
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
    t->latex = R->latex;
    return TEMA_OK;
}

tema_status rep_report_block(report_ctx *R, table **tables, int *n_tables, bool *curves, bool *timing,
                             tema_err *err)
{
    const tema_cfg *rep = R->report_node;
    const tema_cfg *list = NULL;
    *curves = *timing = true;
    R->latex = (latex_spec){"table", NULL, true, false};
    if (rep && rep->type != TEMA_CFG_NULL) {
        if (rep->type != TEMA_CFG_MAP)
            return rep_spec_fail(err, rep, "report: expected a map with tables, curves, timing, latex");
        for (size_t i = 0; i < rep->n_items; i++) {
            const tema_cfg *c = rep->items[i];
            const char *s = scalar(c);
            if (!strcmp(c->key, "tables")) {
                list = c;
                if (c->type != TEMA_CFG_LIST)
                    return rep_spec_fail(err, c, "report.tables: expected a list of tables ({name: ..., rows: ...})");
            } else if (!strcmp(c->key, "curves") || !strcmp(c->key, "timing")) {
                if (!s || !(rep_is_true_word(s) || rep_is_false_word(s)))
                    return rep_spec_fail(err, c, "report.%s: expected true or false", c->key);
                *(strcmp(c->key, "curves") ? timing : curves) = rep_is_true_word(s);
            } else if (!strcmp(c->key, "latex")) {
                tema_status st = parse_latex(c, "report", &R->latex, err);
                if (st != TEMA_OK)
                    return st;
            } else {
                return rep_spec_fail(err, c, "report: unknown key '%s'; the report block takes tables, curves, timing, "
                                     "latex", c->key);
            }
        }
    }
    int n = list && list->n_items ? (int)list->n_items : 1;
    *tables = rep_alloc(&R->ar, (size_t)n * sizeof **tables);
    if (!*tables)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    memset(*tables, 0, (size_t)n * sizeof **tables);
    tema_status st = TEMA_OK;
    if (list && list->n_items) {
        for (int i = 0; i < n && st == TEMA_OK; i++) {
            st = parse_table(R, list->items[i], i, &(*tables)[i].spec, err);
            for (int k = 0; st == TEMA_OK && k < i; k++)
                if (!strcmp((*tables)[k].spec.name, (*tables)[i].spec.name))
                    st = rep_spec_fail(err, list->items[i],
                                       "report.tables[%d].name: '%s' is already the name of table %d", i,
                                       (*tables)[i].spec.name, k);
        }
    } else {
        st = default_table(R, &(*tables)[0].spec, err);
    }
    *n_tables = n;
    return st;
}

tema_status tema_report_check(const char *exp_path, tema_err *err)
{
    report_ctx R;
    memset(&R, 0, sizeof R);
    tema_status st = tema_cfg_load(exp_path, &R.yaml, err);
    if (st != TEMA_OK) return st;
    R.report_node = tema_cfg_get(R.yaml, "report");
    R.name = rep_strdup(&R.ar, tema_cfg_str(R.yaml, "name", "experiment"));
    table *tables = NULL;
    int n = 0;
    bool curves, timing;
    /* no runs here: the checks that need them (a baseline that names no row) wait for the report */
    if (R.report_node) st = rep_report_block(&R, &tables, &n, &curves, &timing, err);
    tema_cfg_free(R.yaml);
    rep_arena_free(&R.ar);
    return st;
}
