/* core/report/timing.c - the timing and memory table: seconds per epoch, epochs, early
 * stops, time per run, peak memory, backend and threads of every cell, in all four formats.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../stats.h"
#include "report_internal.h"

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
        double s = rep_jnum(r->final, "seconds_per_epoch");
        if (!isfinite(s) || s <= 0) {
            /* older runs: the mean of the epochs' own timings */
            rep_load_epochs(R, r);
            double sum = 0;
            for (int k = 0; k < r->n_epochs; k++)
                sum += r->epochs[k].seconds;
            s = r->n_epochs ? sum / r->n_epochs : NAN;
        }
        if (isfinite(s) && spe)
            spe[n_spe++] = s;
        epochs += rep_jnum(r->final, "epochs_run");
        best += rep_jnum(r->final, "best_epoch");
        double tot = rep_jnum(r->final, "total_seconds");
        total += tot;
        json_object *early = rep_jget(r->final, "stopped_early");
        t->n_early += early && json_object_get_boolean(early);
        double peak = rep_jnum(r->final, "peak_memory_bytes");
        if (isfinite(peak) && !(peak <= t->peak_max))
            t->peak_max = peak;
        json_object *b = r->meta ? rep_jget(r->meta, "backend") : NULL;
        add_distinct(t->backend, sizeof t->backend,
                     b && json_object_is_type(b, json_type_string) ? json_object_get_string(b) : "?");
        char th[24] = "?";
        double threads = r->meta ? rep_jnum(r->meta, "threads") : NAN;
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

/* The table heads: its columns in Markdown, LaTeX and HTML, the CSV header line. */
static void timing_heads(const latex_spec *l, tema_sb *md, tema_sb *tex, tema_sb *csv, tema_sb *html)
{
    static const char *const heads[] = {"cell", "runs", "s/epoch", "epochs run", "early stops", "best epoch",
                                        "time per run", "peak memory", "backend", "threads"};
    int nh = (int)(sizeof heads / sizeof heads[0]);
    tema_sb_add(md, "### Timing and memory\n\n|");
    rep_tex_begin(tex, l, false);
    tema_sb_add(tex, "\\caption{Timing and memory}\n\\label{tab:timing}\n");
    rep_tex_tabular_begin(tex, l, "lrrrrrrrll");
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
}

/* The row of one cell in Markdown, LaTeX and HTML. */
static void timing_row_text(const group *gr, const timing_row *t, tema_sb *md, tema_sb *tex, tema_sb *html)
{
    char spe[64], ep[32], best[32], total[32], peak[32], early[32];
    if (!isfinite(t->spe_mean))
        snprintf(spe, sizeof spe, "n/a");
    else if (isfinite(t->spe_std))
        snprintf(spe, sizeof spe, "%.2f \xc2\xb1 %.2f", t->spe_mean, t->spe_std);
    else
        snprintf(spe, sizeof spe, "%.2f", t->spe_mean);
    fmt_count(t->epochs_mean, ep, sizeof ep);
    fmt_count(t->best_mean, best, sizeof best);
    fmt_duration(t->total_mean, total, sizeof total);
    if (isfinite(t->peak_max))
        snprintf(peak, sizeof peak, "%.0f MiB", t->peak_max / 1048576.0);
    else
        snprintf(peak, sizeof peak, "?");
    snprintf(early, sizeof early, "%d/%d", t->n_early, t->n);
    const char *label = gr->label;
    const char *cols[] = {spe, ep, early, best, total, peak, t->backend, t->threads};
    tema_sb_add(md, "| ");
    rep_add_escaped(md, label, FMT_MD);
    tema_sb_printf(md, " | %d", t->n);
    rep_add_escaped(tex, label, FMT_TEX);
    tema_sb_printf(tex, " & %d", t->n);
    tema_sb_printf(html, "<tr data-row=\"");
    rep_add_escaped(html, label, FMT_HTML);
    tema_sb_printf(html, "\"><th scope=\"row\"><a href=\"#%s\">", gr->anchor);
    rep_add_escaped(html, label, FMT_HTML);
    tema_sb_printf(html, "</a></th><td>%d</td>", t->n);
    for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++) {
        tema_sb_add(md, " | ");
        rep_add_escaped(md, cols[k], FMT_MD);
        tema_sb_add(tex, " & ");
        if (k == 0 && isfinite(t->spe_std))
            tema_sb_printf(tex, "%.2f $\\pm$ %.2f", t->spe_mean, t->spe_std);
        else
            rep_add_escaped(tex, cols[k], FMT_TEX);
        tema_sb_add(html, "<td>");
        rep_add_escaped(html, cols[k], FMT_HTML);
        tema_sb_add(html, "</td>");
    }
    tema_sb_add(md, " |\n");
    tema_sb_add(tex, " \\\\\n");
    tema_sb_add(html, "</tr>\n");
}

/* The CSV line of one cell: raw numbers, not the printed ones. */
static void timing_row_csv(const char *label, const timing_row *t, tema_sb *csv)
{
    rep_add_csv_field(csv, label);
    tema_sb_printf(csv, ",%d,", t->n);
    rep_add_csv_num(csv, t->spe_mean);
    tema_sb_add(csv, ",");
    rep_add_csv_num(csv, t->spe_std);
    tema_sb_add(csv, ",");
    rep_add_csv_num(csv, t->epochs_mean);
    tema_sb_printf(csv, ",%d,", t->n_early);
    rep_add_csv_num(csv, t->best_mean);
    tema_sb_add(csv, ",");
    rep_add_csv_num(csv, t->total_mean);
    tema_sb_add(csv, ",");
    rep_add_csv_num(csv, t->total_sum);
    tema_sb_add(csv, ",");
    rep_add_csv_num(csv, t->peak_max);
    tema_sb_add(csv, ",");
    rep_add_csv_field(csv, t->backend);
    tema_sb_add(csv, ",");
    rep_add_csv_field(csv, t->threads);
    tema_sb_add(csv, "\n");
}

void rep_render_timing(report_ctx *R, tema_sb *md, tema_sb *tex, tema_sb *csv, tema_sb *html)
{
    timing_heads(&R->latex, md, tex, csv, html);
    double all_total = 0;
    int all_runs = 0;
    for (int g = 0; g < R->n_groups; g++) {
        timing_row t;
        timing_of(R, &R->groups[g], &t);
        all_total += t.total_sum;
        all_runs += t.n;
        timing_row_text(&R->groups[g], &t, md, tex, html);
        timing_row_csv(R->groups[g].label, &t, csv);
    }
    char total[32];
    fmt_duration(all_total, total, sizeof total);
    tema_sb_printf(md, "\n%d runs, %s of training in all. s/epoch: mean \xc2\xb1 std over the seeds (validation "
                   "included); epochs run: mean (early stops: runs stopped by patience); time per run: mean of "
                   "total_seconds; peak memory: the largest peak RSS of a run.\n", all_runs, total);
    rep_tex_tabular_end(tex, &R->latex);
    tema_sb_printf(tex, "\\par\\smallskip{\\footnotesize %d runs, ", all_runs);
    rep_add_escaped(tex, total, FMT_TEX);
    tema_sb_printf(tex, " of training in all.}\n\\end{%s}\n", R->latex.env);
    tema_sb_printf(html, "</tbody>\n</table>\n<p class=\"legend\">%d runs, %s of training in all.</p>\n", all_runs,
                   total);
}
