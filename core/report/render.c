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
    if (T->n_rows == 0) {
        tema_sb_add(b, "No finished run matches this table yet.");
        return;
    }
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

void rep_tex_begin(tema_sb *b, const latex_spec *l, bool siunitx)
{
    tema_sb_printf(b, "%% generated by tema report; needs \\usepackage{booktabs%s%s}\n\\begin{%s}[t]\n\\centering\n",
                   siunitx ? ",siunitx" : "", l->fit ? ",graphicx" : "", l->env);
}

void rep_tex_tabular_begin(tema_sb *b, const latex_spec *l, const char *columns)
{
    /* after the caption, which keeps the class's size */
    if (l->size)
        tema_sb_printf(b, "\\%s\n", l->size);
    /* graphicx's \width is the tabular's own width: never scaled up, only down */
    if (l->fit)
        tema_sb_add(b, "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%\n");
    tema_sb_printf(b, "\\begin{tabular}{%s}\n\\toprule\n", columns);
}

void rep_tex_tabular_end(tema_sb *b, const latex_spec *l)
{
    tema_sb_add(b, l->fit ? "\\bottomrule\n\\end{tabular}}\n" : "\\bottomrule\n\\end{tabular}\n");
}

/* What the siunitx columns reserve: integer digits of the means and stds as printed, a sign,
 * whether any cell has a std, and whether the table has marks (then each metric column is
 * followed by a column of marks, so the marks never push a number out of line). */
typedef struct tex_layout {
    int mean_int, std_int;
    bool negative, any_std, marks;
} tex_layout;

static int int_digits(double v, int decimals)
{
    char s[64];
    snprintf(s, sizeof s, "%.*f", decimals, fabs(v));
    return (int)strcspn(s, ".");
}

static void tex_layout_of(const table *T, tex_layout *x)
{
    const table_spec *t = &T->spec;
    double scale = t->percent ? 100 : 1;
    *x = (tex_layout){1, 1, false, false, T->baseline >= 0};
    for (int i = 0; i < T->n_rows * T->n_cols; i++)
        for (int m = 0; m < t->metrics.n; m++) {
            const cell *ce = &T->cells[i];
            if (!ce->n_vals[m])
                continue;
            double mean = ce->mean[m] * scale, std = ce->std[m] * scale;
            x->mean_int = int_digits(mean, t->digits) > x->mean_int ? int_digits(mean, t->digits) : x->mean_int;
            x->negative |= mean < 0 && int_digits(mean, t->digits) + t->digits > 0;
            if (isfinite(std)) {
                x->any_std = true;
                x->std_int = int_digits(std, t->digits) > x->std_int ? int_digits(std, t->digits) : x->std_int;
            }
        }
}

/* "\mbox{\tablenum{26.62}${}\pm{}$\tablenum[table-format=1.2]{0.93}}", bold or underlined as
 * the cell's rank says (bold reaches into the boxes through siunitx's detect-weight). The \mbox
 * keeps the boxes at their width: loose in a centred column, \tablenum's inner glue would
 * stretch and push the numbers apart by whatever room the column has. */
static void tex_si_value(tema_sb *b, const table_spec *t, const cell *ce, int m, const tex_layout *x)
{
    if (!ce->n_vals[m]) {
        tema_sb_add(b, "--");
        return;
    }
    double scale = t->percent ? 100 : 1, mean = ce->mean[m] * scale, std = ce->std[m] * scale;
    const bool bold = ce->best[m] == 1, under = ce->best[m] == 2;
    tema_sb_add(b, bold ? "{\\bfseries\\mbox{" : under ? "\\underline{\\mbox{" : "\\mbox{");
    tema_sb_printf(b, "\\tablenum{%.*f}", t->digits, mean);
    /* the std's own format only where it differs from the means' (\sisetup of the float) */
    char std_fmt[48] = "";
    if (x->std_int != x->mean_int || x->negative)
        snprintf(std_fmt, sizeof std_fmt, "[table-format=%d.%d]", x->std_int, t->digits);
    if (isfinite(std))
        tema_sb_printf(b, "%s\\tablenum%s{%.*f}", bold ? "{\\boldmath${}\\pm{}$}" : "${}\\pm{}$", std_fmt,
                       t->digits, std);
    else if (x->any_std) /* one run: room for the std the others have, so the numbers stay aligned */
        tema_sb_printf(b, "\\hphantom{${}\\pm{}$\\tablenum%s{0}}", std_fmt);
    tema_sb_add(b, bold || under ? "}}" : "}");
}

static void tex_marks_cell(tema_sb *b, unsigned mark)
{
    tema_sb_add(b, mark ? " & " : " &");
    add_marks(b, mark, FMT_TEX);
}

/* The two header lines: column combinations over their metrics, then the metrics. */
static void tex_head(report_ctx *R, const table *T, tema_sb *b, int per_metric, const char *col_align)
{
    const table_spec *t = &T->spec;
    int nm = t->metrics.n;
    tema_sb cols = {0};
    tema_sb_add(&cols, "l");
    for (int c = 0; c < T->n_cols * nm; c++)
        tema_sb_add(&cols, col_align);
    rep_tex_tabular_begin(b, &t->latex, tema_sb_str(&cols));
    tema_sb_free(&cols);
    for (int c = 0; c < T->n_cols; c++) {
        tema_sb_printf(b, " & \\multicolumn{%d}{c}{", nm * per_metric);
        rep_add_escaped(b, T->cols[c].label, FMT_TEX);
        tema_sb_add(b, "}");
    }
    tema_sb_add(b, " \\\\\n");
    for (int c = 0; c < T->n_cols; c++)
        tema_sb_printf(b, "\\cmidrule(lr){%d-%d}", 2 + c * nm * per_metric, 1 + (c + 1) * nm * per_metric);
    tema_sb_add(b, "\n");
    rep_add_escaped(b, rep_row_title(R, T), FMT_TEX);
    for (int c = 0; c < T->n_cols; c++)
        for (int m = 0; m < nm; m++) {
            char mt[24];
            rep_metric_title(t->metrics.name[m], mt, sizeof mt);
            tema_sb_add(b, per_metric > 1 ? " & \\multicolumn{2}{c}{" : " & ");
            rep_add_escaped(b, mt, FMT_TEX);
            tema_sb_add(b, per_metric > 1 ? "}" : "");
        }
    tema_sb_add(b, " \\\\\n\\midrule\n");
}

/* Without siunitx: "mean $\pm$ std" as text in centred columns, the marks after it. */
static void tex_plain_rows(const table *T, tema_sb *b)
{
    const table_spec *t = &T->spec;
    for (int r = 0; r < T->n_rows; r++) {
        rep_add_escaped(b, T->rows[r].label, FMT_TEX);
        for (int c = 0; c < T->n_cols; c++)
            for (int m = 0; m < t->metrics.n; m++) {
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
}

static void tex_si_rows(const table *T, tema_sb *b, const tex_layout *x)
{
    const table_spec *t = &T->spec;
    for (int r = 0; r < T->n_rows; r++) {
        rep_add_escaped(b, T->rows[r].label, FMT_TEX);
        for (int c = 0; c < T->n_cols; c++)
            for (int m = 0; m < t->metrics.n; m++) {
                const cell *ce = &T->cells[r * T->n_cols + c];
                tema_sb_add(b, " & ");
                tex_si_value(b, t, ce, m, x);
                if (x->marks)
                    tex_marks_cell(b, ce->mark[m]);
            }
        tema_sb_add(b, " \\\\\n");
    }
}

void rep_render_tex(report_ctx *R, const table *T, tema_sb *b)
{
    const table_spec *t = &T->spec;
    const latex_spec *l = &t->latex;
    tex_layout x;
    tex_layout_of(T, &x);
    rep_tex_begin(b, l, l->siunitx);
    if (l->siunitx)
        /* local to the float: the paper's own \sisetup stays as it is */
        tema_sb_printf(b, "\\sisetup{detect-weight, group-digits=none, table-format=%s%d.%d}\n", x.negative ? "-" : "",
                       x.mean_int, t->digits);
    tema_sb_add(b, "\\caption{");
    rep_add_escaped(b, t->title, FMT_TEX);
    tema_sb_printf(b, "}\n\\label{tab:%s}\n", t->name);
    if (l->siunitx) {
        tex_head(R, T, b, x.marks ? 2 : 1, x.marks ? "c@{}l" : "c");
        tex_si_rows(T, b, &x);
    } else {
        tex_head(R, T, b, 1, "c");
        tex_plain_rows(T, b);
    }
    rep_tex_tabular_end(b, l);
    tema_sb_add(b, "\\par\\smallskip{\\footnotesize ");
    add_legend(b, T, FMT_TEX);
    tema_sb_printf(b, "}\n\\end{%s}\n", l->env);
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
