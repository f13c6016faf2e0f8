/* core/report/charts.c - the PLplot charts of a report: a bar chart and heatmaps per table,
 * training curves per cell; every chart drawn is listed among the report's files.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../plot.h"
#include "report_internal.h"

static char *plot_stem(report_ctx *R, const char *name)
{
    return rep_path_join(&R->ar, R->plot_dir, name);
}

static void record_plot(report_ctx *R, const char *stem)
{
    char name[4200];
    for (int k = 0; k < 2; k++) {
        snprintf(name, sizeof name, "%s.%s", stem, k ? "png" : "svg");
        if (R->n_files == R->cap_files) {
            int nc = R->cap_files ? R->cap_files * 2 : 16;
            output_file *grown = rep_alloc(&R->ar, (size_t)nc * sizeof *grown);
            if (!grown)
                return;
            if (R->n_files)
                memcpy(grown, R->files, (size_t)R->n_files * sizeof *grown);
            R->files = grown;
            R->cap_files = nc;
        }
        R->files[R->n_files++].path = rep_strdup(&R->ar, name);
    }
}

void rep_table_bars(report_ctx *R, table *T)
{
    const table_spec *t = &T->spec;
    int ng = T->n_cols * t->metrics.n, nb = T->n_rows;
    if (!t->bars || ng == 0 || nb == 0)
        return;
    const char **groups = rep_alloc(&R->ar, (size_t)ng * sizeof *groups);
    const char **bars = rep_alloc(&R->ar, (size_t)nb * sizeof *bars);
    double *mean = rep_alloc(&R->ar, (size_t)(ng * nb) * sizeof *mean);
    double *sd = rep_alloc(&R->ar, (size_t)(ng * nb) * sizeof *sd);
    char *stem = plot_stem(R, t->name);
    if (!groups || !bars || !mean || !sd || !stem)
        return;
    char *full = rep_alloc(&R->ar, strlen(stem) + 8);
    if (!full)
        return;
    sprintf(full, "%s-bars", stem);
    /* a legend of bare values ("0.2", "0.3") names its key: "lambda_1 = 0.2" */
    const bool bare = t->n_rows == 1 && t->rows[0].kind == AX_KEY && !t->rows[0].labels;
    const char *title = bare ? rep_short_key(R, t->rows[0].key) : NULL;
    for (int r = 0; r < nb; r++) {
        bars[r] = T->rows[r].label;
        char *named = title ? rep_alloc(&R->ar, strlen(title) + strlen(bars[r]) + 4) : NULL;
        if (named) {
            sprintf(named, "%s = %s", title, bars[r]);
            bars[r] = named;
        }
    }
    for (int c = 0; c < T->n_cols; c++)
        for (int m = 0; m < t->metrics.n; m++) {
            int g = c * t->metrics.n + m;
            char mt[24], lab[256];
            rep_metric_title(t->metrics.name[m], mt, sizeof mt);
            snprintf(lab, sizeof lab, "%s %s", T->cols[c].label, mt);
            groups[g] = rep_strdup(&R->ar, lab);
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
        rep_note(R, "bar chart of table %s: %s", t->name, e.msg);
        return;
    }
    T->bars_stem = full;
    record_plot(R, full);
}

/* A heatmap when the rows are one key and the columns one key (besides the domain). */
tema_status rep_table_heatmaps(report_ctx *R, table *T, int index, tema_err *err)
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
            rep_note(R, "table %s: a heatmap needs one row axis and one column axis besides the domain; skipped",
                     t->name);
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
            return rep_spec_fail(err, t->node, "%s: '%s' is not one of the table's metrics; add it to metrics", ctx,
                                 t->heatmap_metric);
        }
    }
    int nr = T->n_rows, nc = cax->n_vals;
    const char **rl = rep_alloc(&R->ar, (size_t)nr * sizeof *rl), **cl = rep_alloc(&R->ar, (size_t)nc * sizeof *cl);
    double *v = rep_alloc(&R->ar, (size_t)(nr * nc) * sizeof *v);
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
        rep_metric_title(t->metrics.name[m], mt, sizeof mt);
        snprintf(title, sizeof title, "mean %s %s%s, domain %s", t->split, mt, t->percent ? " (%)" : "",
                 dax->vals[d].label);
        snprintf(name, sizeof name, "%s-heatmap-%s", t->name, dax->vals[d].raw);
        char *stem = plot_stem(R, name);
        if (!stem)
            return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
        tema_err e = {0};
        const char *ylabel = t->rows[0].kind == AX_KEY ? t->rows[0].key : rep_row_title(R, T);
        if (tema_plot_heatmap(stem, title, cax->kind == AX_KEY ? cax->key : "", ylabel, rl, nr, cl, nc, v, t->digits,
                              &e) != TEMA_OK) {
            rep_note(R, "heatmap of table %s: %s", t->name, e.msg);
            continue;
        }
        T->heatmap_stems[dax->vals[d].domain] = stem;
        record_plot(R, stem);
    }
    return TEMA_OK;
}

void rep_group_curves(report_ctx *R, group *g, int index)
{
    int ns = g->n_runs;
    tema_plot_series *loss = rep_alloc(&R->ar, (size_t)ns * sizeof *loss);
    tema_plot_series *mrr[2] = {rep_alloc(&R->ar, (size_t)ns * sizeof *loss),
                                rep_alloc(&R->ar, (size_t)ns * sizeof *loss)};
    if (!loss || !mrr[0] || !mrr[1])
        return;
    int have_loss = 0, have_mrr[2] = {0, 0};
    for (int i = 0; i < ns; i++) {
        run *r = &R->runs[g->runs[i]];
        rep_load_epochs(R, r);
        double *x = rep_alloc(&R->ar, ((size_t)r->n_epochs + 1) * sizeof *x);
        double *yl = rep_alloc(&R->ar, ((size_t)r->n_epochs + 1) * sizeof *yl);
        double *ym[2] = {rep_alloc(&R->ar, ((size_t)r->n_epochs + 1) * sizeof *x),
                         rep_alloc(&R->ar, ((size_t)r->n_epochs + 1) * sizeof *x)};
        char label[48];
        snprintf(label, sizeof label, "seed %lld", (long long)r->seed);
        const char *lab = rep_strdup(&R->ar, label);
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
        rep_note(R, "training curves of %s: %s", g->label, e.msg);
        return;
    }
    g->curves_stem = stem;
    record_plot(R, stem);
}
