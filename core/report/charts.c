/* core/report/charts.c - the PLplot charts of a report: a bar chart and heatmaps per table,
 * training curves per cell; every file drawn is listed among the report's files.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../plot.h"
#include "report_internal.h"

static char *plot_stem(report_ctx *R, const char *name)
{
    return rep_path_join(&R->ar, R->plot_dir, name);
}

static void add_file(report_ctx *R, const char *path)
{
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
    R->files[R->n_files++].path = rep_strdup(&R->ar, path);
}

/* The files of one chart; a format that could not be drawn is said once per report (it is
 * the same driver for every chart). */
static void record_plot(report_ctx *R, const char *stem, const tema_plot_out *out)
{
    static const struct {
        unsigned bit;
        const char *ext;
    } kinds[] = {{TEMA_PLOT_SVG, "svg"}, {TEMA_PLOT_PNG, "png"}, {TEMA_PLOT_PDF, "pdf"}};
    char name[4200];
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        if (out->written & kinds[k].bit) {
            snprintf(name, sizeof name, "%s.%s", stem, kinds[k].ext);
            add_file(R, name);
        }
    if (out->missing[0] && !R->said_missing_format) {
        R->said_missing_format = true;
        rep_note(R, "charts drawn without some formats: %s", out->missing);
    }
}

/* "test (%)": the split the values come from, and their unit. */
static void value_axis_label(const table_spec *t, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s", t->split, t->percent ? " (%)" : "");
}

/* One panel per metric (small multiples): MRR and HR@10 differ in scale, so they never share
 * an axis. Groups are the table's columns, bars its rows. */
void rep_table_bars(report_ctx *R, table *T)
{
    const table_spec *t = &T->spec;
    int ng = T->n_cols, nb = T->n_rows, nm = t->metrics.n;
    if (!t->bars || ng == 0 || nb == 0 || nm == 0)
        return;
    const char **groups = rep_alloc(&R->ar, (size_t)ng * sizeof *groups);
    const char **bars = rep_alloc(&R->ar, (size_t)nb * sizeof *bars);
    tema_plot_bar_panel *panels = rep_alloc(&R->ar, (size_t)nm * sizeof *panels);
    char *ylabel = rep_alloc(&R->ar, 64);
    char *full = rep_alloc(&R->ar, strlen(t->name) + 8);
    if (!groups || !bars || !panels || !ylabel || !full)
        return;
    sprintf(full, "%s-bars", t->name);
    char *stem = plot_stem(R, full);
    /* a legend of bare values ("0.2", "0.3") names its key: "lambda_1 = 0.2" */
    const bool bare = t->n_rows == 1 && t->rows[0].kind == AX_KEY && !t->rows[0].labels;
    const char *key = bare ? rep_short_key(R, t->rows[0].key) : NULL;
    for (int r = 0; r < nb; r++) {
        bars[r] = T->rows[r].label;
        char *named = key ? rep_alloc(&R->ar, strlen(key) + strlen(bars[r]) + 4) : NULL;
        if (named) {
            sprintf(named, "%s = %s", key, bars[r]);
            bars[r] = named;
        }
    }
    for (int c = 0; c < ng; c++)
        groups[c] = T->cols[c].label;
    value_axis_label(t, ylabel, 64);
    double scale = t->percent ? 100 : 1;
    for (int m = 0; m < nm; m++) {
        double *mean = rep_alloc(&R->ar, (size_t)(ng * nb) * sizeof *mean);
        double *sd = rep_alloc(&R->ar, (size_t)(ng * nb) * sizeof *sd);
        char *title = rep_alloc(&R->ar, 24);
        if (!mean || !sd || !title || !stem)
            return;
        rep_metric_title(t->metrics.name[m], title, 24);
        for (int c = 0; c < ng; c++)
            for (int r = 0; r < nb; r++) {
                const cell *ce = &T->cells[r * T->n_cols + c];
                mean[c * nb + r] = ce->n_vals[m] ? ce->mean[m] * scale : NAN;
                sd[c * nb + r] = ce->std[m] * scale;
            }
        panels[m] = (tema_plot_bar_panel){title, ylabel, mean, sd};
    }
    tema_plot_bar_chart chart = {t->title, groups, ng, bars, nb, panels, nm};
    tema_plot_out out;
    tema_err e = {0};
    if (tema_plot_bars(stem, &chart, &out, &e) != TEMA_OK) {
        rep_note(R, "bar chart of table %s: %s", t->name, e.msg);
        return;
    }
    T->bars_stem = stem;
    record_plot(R, stem, &out);
}

/* The heatmap's axes: rows one key, columns one key besides the domain; -1 when the table
 * has no such shape (and an error when a heatmap: metric is no metric of the table). */
static tema_status heatmap_shape(report_ctx *R, table *T, int index, int *key_col, int *dom_col, int *metric,
                                 tema_err *err)
{
    const table_spec *t = &T->spec;
    int n_other = 0;
    *key_col = *dom_col = -1;
    for (int a = 0; a < t->n_cols; a++) {
        if (t->cols[a].kind == AX_DOMAIN) {
            *dom_col = a;
        } else {
            *key_col = a;
            n_other++;
        }
    }
    if (!(t->n_rows == 1 && t->rows[0].kind != AX_DOMAIN && n_other == 1)) {
        if (t->heatmap == 1)
            rep_note(R, "table %s: a heatmap needs one row axis and one column axis besides the domain; skipped",
                     t->name);
        *key_col = -1;
        return TEMA_OK;
    }
    if (t->heatmap < 0 && (t->rows[0].n_vals < 2 || t->cols[*key_col].n_vals < 2)) {
        *key_col = -1;
        return TEMA_OK;
    }
    *metric = 0;
    if (t->heatmap_metric[0] && (*metric = tema_metric_index(&t->metrics, t->heatmap_metric)) < 0) {
        char ctx[64];
        snprintf(ctx, sizeof ctx, "report.tables[%d].heatmap", index);
        return rep_spec_fail(err, t->node, "%s: '%s' is not one of the table's metrics; add it to metrics", ctx,
                             t->heatmap_metric);
    }
    return TEMA_OK;
}

/* The heatmap of domain d: mean of metric m per row and key column value. */
static void heatmap_of_domain(const table *T, int key_col, int dom_col, int m, int d,
                              tema_plot_heatmap_chart *chart, double *v)
{
    const table_spec *t = &T->spec;
    int nr = T->n_rows, nc = t->cols[key_col].n_vals;
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
    chart->values = v;
}

/* A heatmap per domain when the rows are one key and the columns one key (besides the domain). */
tema_status rep_table_heatmaps(report_ctx *R, table *T, int index, tema_err *err)
{
    const table_spec *t = &T->spec;
    if (t->heatmap == 0)
        return TEMA_OK;
    int key_col, dom_col, m = 0;
    tema_status st = heatmap_shape(R, T, index, &key_col, &dom_col, &m, err);
    if (st != TEMA_OK || key_col < 0)
        return st;
    const axis *cax = &t->cols[key_col], *dax = &t->cols[dom_col];
    int nr = T->n_rows, nc = cax->n_vals;
    const char **rl = rep_alloc(&R->ar, (size_t)nr * sizeof *rl), **cl = rep_alloc(&R->ar, (size_t)nc * sizeof *cl);
    double *v = rep_alloc(&R->ar, (size_t)(nr * nc) * sizeof *v);
    if (!rl || !cl || !v)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    for (int r = 0; r < nr; r++)
        rl[r] = T->rows[r].label;
    for (int c = 0; c < nc; c++)
        cl[c] = cax->vals[c].label;
    const char *ylabel = rep_row_title(R, T), *xlabel = cax->kind == AX_KEY ? rep_short_key(R, cax->key) : "";
    for (int d = 0; d < dax->n_vals; d++) {
        char mt[24], title[512], name[256];
        rep_metric_title(t->metrics.name[m], mt, sizeof mt);
        snprintf(title, sizeof title, "%s: mean %s %s%s, %s", t->title, t->split, mt, t->percent ? " (%)" : "",
                 dax->vals[d].label);
        snprintf(name, sizeof name, "%s-heatmap-%s", t->name, dax->vals[d].raw);
        char *stem = plot_stem(R, name);
        if (!stem)
            return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
        tema_plot_heatmap_chart chart = {title, xlabel, ylabel, rl, nr, cl, nc, NULL, t->digits};
        heatmap_of_domain(T, key_col, dom_col, m, d, &chart, v);
        tema_plot_out out;
        tema_err e = {0};
        if (tema_plot_heatmap(stem, &chart, &out, &e) != TEMA_OK) {
            rep_note(R, "heatmap of table %s: %s", t->name, e.msg);
            continue;
        }
        T->heatmap_stems[dax->vals[d].domain] = stem;
        record_plot(R, stem, &out);
    }
    return TEMA_OK;
}

/* The series of one cell: loss and valid MRR per domain, a line per seed; false when the
 * runs logged no epoch (e.g. a model without training). */
static bool curve_series(report_ctx *R, group *g, tema_plot_series *loss, tema_plot_series *mrr[2], bool have_mrr[2])
{
    bool have_loss = false;
    have_mrr[0] = have_mrr[1] = false;
    for (int i = 0; i < g->n_runs; i++) {
        run *r = &R->runs[g->runs[i]];
        rep_load_epochs(R, r);
        size_t n = (size_t)r->n_epochs + 1;
        double *x = rep_alloc(&R->ar, n * sizeof *x), *yl = rep_alloc(&R->ar, n * sizeof *yl);
        double *ym[2] = {rep_alloc(&R->ar, n * sizeof *x), rep_alloc(&R->ar, n * sizeof *x)};
        char label[48];
        snprintf(label, sizeof label, "seed %lld", (long long)r->seed);
        const char *lab = rep_strdup(&R->ar, label);
        if (!x || !yl || !ym[0] || !ym[1] || !lab)
            return false;
        for (int k = 0; k < r->n_epochs; k++) {
            x[k] = r->epochs[k].epoch;
            yl[k] = r->epochs[k].loss;
            have_loss |= isfinite(yl[k]);
            for (int d = 0; d < 2; d++) {
                ym[d][k] = r->epochs[k].valid_mrr[d];
                have_mrr[d] |= isfinite(ym[d][k]);
            }
        }
        loss[i] = (tema_plot_series){lab, x, yl, r->n_epochs};
        for (int d = 0; d < 2; d++)
            mrr[d][i] = (tema_plot_series){lab, x, ym[d], r->n_epochs};
    }
    return have_loss || have_mrr[0] || have_mrr[1];
}

/* Training curves of one cell, titled by its grid values and named by them
 * (plots/curves-<slug>). */
void rep_group_curves(report_ctx *R, group *g)
{
    int ns = g->n_runs;
    tema_plot_series *loss = rep_alloc(&R->ar, (size_t)ns * sizeof *loss);
    tema_plot_series *mrr[2] = {rep_alloc(&R->ar, (size_t)ns * sizeof *loss),
                                rep_alloc(&R->ar, (size_t)ns * sizeof *loss)};
    bool have_mrr[2];
    if (!loss || !mrr[0] || !mrr[1] || !curve_series(R, g, loss, mrr, have_mrr))
        return;
    tema_plot_panel panels[3];
    int np = 0;
    char title[2][160], ylabel[64];
    panels[np++] = (tema_plot_panel){"Training loss", "epoch", "loss", loss, ns, true};
    snprintf(ylabel, sizeof ylabel, "valid MRR (%s)", R->rule_for_curves);
    for (int d = 0; d < 2; d++)
        if (have_mrr[d]) {
            const char *name = R->domain_name[d] ? R->domain_name[d] : d ? "Y" : "X";
            snprintf(title[d], sizeof title[d], "Validation, %s", name);
            panels[np++] = (tema_plot_panel){title[d], "epoch", ylabel, mrr[d], ns, true};
        }
    char *name = rep_alloc(&R->ar, strlen(g->slug) + 8);
    if (!name)
        return;
    sprintf(name, "curves-%s", g->slug);
    char *stem = plot_stem(R, name);
    if (!stem)
        return;
    tema_plot_out out;
    tema_err e = {0};
    if (tema_plot_lines(stem, g->label, panels, np, &out, &e) != TEMA_OK) {
        rep_note(R, "training curves of %s: %s", g->label, e.msg);
        return;
    }
    g->curves_stem = stem;
    record_plot(R, stem, &out);
}

/* Chart files in plots/ that this report did not write (an earlier report's curves-1.svg, a
 * cell no longer in the grid): said, never deleted, since the folder may hold the user's own. */
void rep_note_stale_plots(report_ctx *R)
{
    DIR *d = opendir(R->plot_dir);
    if (!d)
        return;
    int n = 0;
    char names[3][256];
    for (struct dirent *e; (e = readdir(d));) {
        const char *dot = strrchr(e->d_name, '.');
        if (!dot || (strcmp(dot, ".svg") && strcmp(dot, ".png") && strcmp(dot, ".pdf")))
            continue;
        bool ours = false;
        for (int i = 0; i < R->n_files && !ours; i++) {
            const char *slash = strrchr(R->files[i].path, '/');
            ours = !strcmp(slash ? slash + 1 : R->files[i].path, e->d_name);
        }
        if (!ours && n < 3)
            snprintf(names[n], sizeof names[n], "%s", e->d_name);
        n += !ours;
    }
    closedir(d);
    if (n)
        rep_note(R, "%s holds %d chart file(s) this report did not write (%s%s%s%s%s%s): left from an earlier "
                 "report; delete them, or report into a fresh --out", R->plot_dir, n, names[0], n > 1 ? ", " : "",
                 n > 1 ? names[1] : "", n > 2 ? ", " : "", n > 2 ? names[2] : "", n > 3 ? ", ..." : "");
}
