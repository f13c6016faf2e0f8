/* core/report/render.c - a built table as Markdown, LaTeX, CSV or an HTML table, with the
 * marks, the best values and the legend that explains them.
 */
#include <ctype.h>
#include <math.h>
#include <string.h>

#include "report_internal.h"

void rep_add_escaped(tema_sb *b, const char *s, fmt f)
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

void rep_add_csv_field(tema_sb *b, const char *s)
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

void rep_add_csv_num(tema_sb *b, double v)
{
    if (isfinite(v))
        tema_sb_printf(b, "%.10g", v);
}

void rep_metric_title(const char *name, char *buf, size_t cap)
{
    size_t i = 0;
    for (; name[i] && i + 1 < cap; i++)
        buf[i] = (char)toupper((unsigned char)name[i]);
    buf[i] = '\0';
}

const char *rep_row_title(report_ctx *R, const table *T)
{
    const table_spec *t = &T->spec;
    if (t->row_title)
        return t->row_title;
    tema_sb s = {0};
    for (int a = 0; a < t->n_rows; a++) {
        const char *k = t->rows[a].kind == AX_KEY ? rep_short_key(R, t->rows[a].key) : "run";
        tema_sb_printf(&s, "%s%s", a ? ", " : "", k);
    }
    const char *out = rep_strdup(&R->ar, s.n ? tema_sb_str(&s) : "run");
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
    rep_add_escaped(b, T->rows[T->baseline].label, f);
    const char *star = f == FMT_MD ? "\\*" : "*";
    const char *dag = f == FMT_TEX ? "$^{\\dagger}$" : "\xe2\x80\xa0";
    const char *ddag = f == FMT_TEX ? "$^{\\ddagger}$" : "\xe2\x80\xa1";
    if (f == FMT_TEX)
        tema_sb_printf(b, " (two-sided, $p < %g$): ", t->alpha); /* a bare '<' is an inverted '!' in OT1 */
    else
        tema_sb_printf(b, " (two-sided, p %s %g): ", f == FMT_HTML ? "&lt;" : "<", t->alpha);
    if (f == FMT_TEX)
        star = "$^{*}$";
    if (T->user_tests)
        tema_sb_printf(b, "%s per-user paired t-test, %s Wilcoxon signed-rank test (per user, pooled over seeds), ",
                       star, dag);
    tema_sb_printf(b, "%s paired t-test over seeds.", ddag);
    if (!T->user_tests)
        tema_sb_add(b, " (The per-user tests need split: test.)");
}

void rep_render_md(report_ctx *R, const table *T, tema_sb *b)
{
    const table_spec *t = &T->spec;
    tema_sb_add(b, "### ");
    rep_add_escaped(b, t->title, FMT_MD);
    tema_sb_add(b, "\n\n| ");
    rep_add_escaped(b, rep_row_title(R, T), FMT_MD);
    for (int c = 0; c < T->n_cols; c++)
        for (int m = 0; m < t->metrics.n; m++) {
            char mt[24];
            rep_metric_title(t->metrics.name[m], mt, sizeof mt);
            tema_sb_add(b, " | ");
            rep_add_escaped(b, T->cols[c].label, FMT_MD);
            tema_sb_printf(b, " %s", mt);
        }
    tema_sb_add(b, " |\n|:---");
    for (int c = 0; c < T->n_cols * t->metrics.n; c++)
        tema_sb_add(b, "|---:");
    tema_sb_add(b, "|\n");
    for (int r = 0; r < T->n_rows; r++) {
        tema_sb_add(b, "| ");
        rep_add_escaped(b, T->rows[r].label, FMT_MD);
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

void rep_render_tex(report_ctx *R, const table *T, tema_sb *b)
{
    const table_spec *t = &T->spec;
    int nm = t->metrics.n;
    tema_sb_add(b, "% generated by tema report; needs \\usepackage{booktabs}\n\\begin{table}[t]\n\\centering\n"
                "\\caption{");
    rep_add_escaped(b, t->title, FMT_TEX);
    tema_sb_printf(b, "}\n\\label{tab:%s}\n\\begin{tabular}{l", t->name);
    for (int c = 0; c < T->n_cols * nm; c++)
        tema_sb_add(b, "c");
    tema_sb_add(b, "}\n\\toprule\n");
    /* the column combinations over their metrics */
    for (int c = 0; c < T->n_cols; c++) {
        tema_sb_printf(b, " & \\multicolumn{%d}{c}{", nm);
        rep_add_escaped(b, T->cols[c].label, FMT_TEX);
        tema_sb_add(b, "}");
    }
    tema_sb_add(b, " \\\\\n");
    for (int c = 0; c < T->n_cols; c++)
        tema_sb_printf(b, "\\cmidrule(lr){%d-%d}", 2 + c * nm, 1 + (c + 1) * nm);
    tema_sb_add(b, "\n");
    rep_add_escaped(b, rep_row_title(R, T), FMT_TEX);
    for (int c = 0; c < T->n_cols; c++)
        for (int m = 0; m < nm; m++) {
            char mt[24];
            rep_metric_title(t->metrics.name[m], mt, sizeof mt);
            tema_sb_add(b, " & ");
            rep_add_escaped(b, mt, FMT_TEX);
        }
    tema_sb_add(b, " \\\\\n\\midrule\n");
    for (int r = 0; r < T->n_rows; r++) {
        rep_add_escaped(b, T->rows[r].label, FMT_TEX);
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

void rep_render_csv(report_ctx *R, const table *T, tema_sb *b)
{
    const table_spec *t = &T->spec;
    tema_sb_add(b, "table,row,column,domain,metric,rule,split,runs,seeds,mean,std,is_baseline,p_user_ttest,"
                "p_user_wilcoxon,p_run_ttest,user_pairs,seed_pairs,marks,best\n");
    for (int r = 0; r < T->n_rows; r++)
        for (int c = 0; c < T->n_cols; c++)
            for (int m = 0; m < t->metrics.n; m++) {
                const cell *ce = &T->cells[r * T->n_cols + c];
                rep_add_csv_field(b, t->name);
                tema_sb_add(b, ",");
                rep_add_csv_field(b, T->rows[r].label);
                tema_sb_add(b, ",");
                rep_add_csv_field(b, T->cols[c].label);
                tema_sb_printf(b, ",%s,%s,%s,%s,%d,", T->cols[c].domain ? "Y" : "X", t->metrics.name[m],
                               tema_rank_rule_name(t->rule), t->split, ce->n_runs);
                /* seeds are ';'-separated so the field needs no quoting */
                for (int i = 0; i < ce->n_runs; i++)
                    tema_sb_printf(b, "%s%lld", i ? ";" : "", (long long)R->runs[ce->runs[i]].seed);
                tema_sb_add(b, ",");
                rep_add_csv_num(b, ce->n_vals[m] ? ce->mean[m] : NAN);
                tema_sb_add(b, ",");
                rep_add_csv_num(b, ce->std[m]);
                tema_sb_printf(b, ",%d,", r == T->baseline);
                rep_add_csv_num(b, ce->p_user_t[m]);
                tema_sb_add(b, ",");
                rep_add_csv_num(b, ce->p_user_w[m]);
                tema_sb_add(b, ",");
                rep_add_csv_num(b, ce->p_run_t[m]);
                if (r == T->baseline || T->baseline < 0)
                    tema_sb_add(b, ",,,");
                else
                    tema_sb_printf(b, ",%lld,%d,", (long long)ce->n_user_pairs, ce->n_run_pairs);
                tema_sb_printf(b, "%s%s%s", ce->mark[m] & MARK_USER_T ? "*" : "",
                               ce->mark[m] & MARK_WILCOXON ? "\xe2\x80\xa0" : "",
                               ce->mark[m] & MARK_RUN_T ? "\xe2\x80\xa1" : "");
                tema_sb_printf(b, ",%s\n", ce->best[m] == 1 ? "best" : ce->best[m] == 2 ? "second" : "");
            }
}

void rep_render_html_table(report_ctx *R, const table *T, tema_sb *b)
{
    const table_spec *t = &T->spec;
    int nm = t->metrics.n;
    tema_sb_printf(b, "<table class=\"results\" id=\"tab-%s\">\n<thead><tr><th rowspan=\"2\">", t->name);
    rep_add_escaped(b, rep_row_title(R, T), FMT_HTML);
    tema_sb_add(b, "</th>");
    for (int c = 0; c < T->n_cols; c++) {
        tema_sb_printf(b, "<th colspan=\"%d\">", nm);
        rep_add_escaped(b, T->cols[c].label, FMT_HTML);
        tema_sb_add(b, "</th>");
    }
    tema_sb_add(b, "</tr>\n<tr>");
    for (int c = 0; c < T->n_cols; c++)
        for (int m = 0; m < nm; m++) {
            char mt[24];
            rep_metric_title(t->metrics.name[m], mt, sizeof mt);
            tema_sb_printf(b, "<th>%s</th>", mt);
        }
    tema_sb_add(b, "</tr></thead>\n<tbody>\n");
    for (int r = 0; r < T->n_rows; r++) {
        int first_run = -1;
        for (int c = 0; c < T->n_cols && first_run < 0; c++)
            if (T->cells[r * T->n_cols + c].n_runs)
                first_run = T->cells[r * T->n_cols + c].runs[0];
        tema_sb_add(b, "<tr data-row=\"");
        rep_add_escaped(b, T->rows[r].label, FMT_HTML);
        tema_sb_printf(b, "\"%s><th scope=\"row\">", r == T->baseline ? " class=\"baseline\"" : "");
        if (first_run >= 0)
            tema_sb_printf(b, "<a href=\"#%s\">", R->groups[R->runs[first_run].group].anchor);
        rep_add_escaped(b, T->rows[r].label, FMT_HTML);
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
