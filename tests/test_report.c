/* tests/test_report.c - `tema report` on results folders built by hand (report_fixture.c):
 * table values, bold / underline, significance marks against scipy's p-values, the timing
 * table, PLplot files, the HTML page in headless Chromium, and located errors for a bad
 * report: block.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "report.h"
#include "report_fixture.h"
#include "results.h"
#include "testutil.h"
#include "util.h"

START_TEST(markdown_values_bold_and_marks)
{
    const char *root = make_fixture(rep_yaml);
    tema_err err = {0};
    ck_assert_msg(report_in(root, "rep.yaml", false, &err) == TEMA_OK, "%s", err.msg);
    char *md = report_file(root, "rep", "main.md");
    ck_assert_msg(strstr(md, "| Model | X MRR | X NDCG@10 | Y MRR | Y NDCG@10 |"), "%s", md);
    /* rows in the order of labels; mean +- std over the 3 finished seeds (scipy script above);
     * best bold, second italic; marks: * per-user t, dagger Wilcoxon, double dagger run-level t */
    char *r;
    r = md_row(md, "SASRec");
    ck_assert_str_eq(r, "| SASRec | _0.1685 ± 0.0044_ | _0.2064 ± 0.0035_ | **0.1595 ± 0.0138** | "
                        "_0.1948 ± 0.0180_ |");
    free(r);
    r = md_row(md, "TEMA");
    ck_assert_str_eq(r, "| TEMA | **0.2267 ± 0.0122**\\*†‡ | **0.2646 ± 0.0092**\\*†‡ | _0.1591 ± 0.0140_ | "
                        "**0.1967 ± 0.0145** |");
    free(r);
    r = md_row(md, "GRU4Rec");
    ck_assert_str_eq(r, "| GRU4Rec | 0.1027 ± 0.0018\\*†‡ | 0.1310 ± 0.0036\\*†‡ | 0.1515 ± 0.0137† | "
                        "0.1840 ± 0.0126\\*† |");
    free(r);
    ck_assert_msg(strstr(md, "over 3 seeds"), "the unfinished seed 4 was counted:\n%s", md);
    ck_assert_msg(strstr(md, "Marks against SASRec"), "%s", md);
    free(md);

    /* explicit rows, one domain, mid ranks (u % 5 == 0 ties half a rank), in %:
     * the script above with mid = r + 0.5 * (u % 5 == 0) gives 16.39 +- 0.79 and 21.92 +- 1.80 */
    md = report_file(root, "rep", "ablation.md");
    ck_assert_msg(strstr(md, "| run | X MRR |"), "%s", md);
    r = md_row(md, "Base");
    ck_assert_str_eq(r, "| Base | 16.39 ± 0.79 |");
    free(r);
    r = md_row(md, "Multi-Attn");
    ck_assert_str_eq(r, "| Multi-Attn | **21.92 ± 1.80** |");
    free(r);
    ck_assert_msg(strstr(md, "mid ranks, values in %") && !strstr(md, "Marks"), "%s", md);
    free(md);
}
END_TEST

/* p-values of one CSV line (row, domain, metric) */
static void csv_p(const char *csv, const char *row, const char *dom, const char *metric, double p[3], int *runs)
{
    char key[128];
    snprintf(key, sizeof key, "\nmain,%s,%s,%s,%s,optimistic,test,", row, dom, dom, metric);
    const char *line = strstr(csv, key);
    ck_assert_msg(line != NULL, "no CSV line %s in:\n%s", key + 1, csv);
    line += strlen(key);
    /* runs,seeds,mean,std,is_baseline,p_user_ttest,p_user_wilcoxon,p_run_ttest,... */
    char seeds[64];
    double mean, std;
    int base;
    ck_assert_int_eq(sscanf(line, "%d,%63[^,],%lf,%lf,%d,%lf,%lf,%lf", runs, seeds, &mean, &std, &base, &p[0], &p[1],
                            &p[2]),
                     8);
    ck_assert_str_eq(seeds, "1;2;3");
    ck_assert_int_eq(base, 0);
}

#define ASSERT_P(got, want) \
    ck_assert_msg(fabs((got) - (want)) <= 1e-6 * (want), "p = %.10g, scipy says %.10g", (got), (want))

START_TEST(csv_p_values_match_scipy)
{
    const char *root = make_fixture(rep_yaml);
    tema_err err = {0};
    ck_assert_msg(report_in(root, "rep.yaml", false, &err) == TEMA_OK, "%s", err.msg);
    char *csv = report_file(root, "rep", "main.csv");
    ck_assert_msg(!strncmp(csv, "table,row,column,domain,metric,rule,split,runs,seeds,mean,std,is_baseline,"
                                "p_user_ttest,p_user_wilcoxon,p_run_ttest", 90), "%s", csv);
    double p[3];
    int runs;
    csv_p(csv, "TEMA", "X", "mrr", p, &runs);
    ck_assert_int_eq(runs, 3);
    ASSERT_P(p[0], 4.84328574545343e-06);
    ASSERT_P(p[1], 1.9294034386777776e-20);
    ASSERT_P(p[2], 0.006801508495626076);
    csv_p(csv, "TEMA", "Y", "ndcg@10", p, &runs);
    ASSERT_P(p[0], 0.7541807631678094);
    ASSERT_P(p[1], 0.9401864286155255);
    ASSERT_P(p[2], 0.4517398253469686);
    csv_p(csv, "GRU4Rec", "Y", "mrr", p, &runs);
    ASSERT_P(p[0], 0.0860203977892483);
    ASSERT_P(p[1], 0.00036660194449539605);
    ASSERT_P(p[2], 0.2285095974328745);
    csv_p(csv, "GRU4Rec", "Y", "ndcg@10", p, &runs);
    ASSERT_P(p[0], 0.027212488437085378);
    ASSERT_P(p[1], 0.011598296913003148);
    ASSERT_P(p[2], 0.1938755489225359);
    /* the baseline's own lines carry no test */
    ck_assert_msg(strstr(csv, "\nmain,SASRec,X,X,mrr,optimistic,test,3,1;2;3,0.1685"), "%s", csv);
    ck_assert_msg(strstr(csv, ",1,,,,,,,best\n") || strstr(csv, ",1,,,,,,,second\n"), "%s", csv);
    free(csv);
}
END_TEST

/* `base` with `insert` after the first line that starts with `after`; static buffer (two in
 * turn, so one call may take the last one's result). */
static const char *yaml_with(const char *base, const char *after, const char *insert)
{
    static char bufs[2][4096];
    static int turn;
    char *buf = bufs[turn ^= 1];
    const char *at = strstr(base, after);
    ck_assert(at != NULL);
    at = strchr(at, '\n') + 1;
    snprintf(buf, sizeof bufs[0], "%.*s%s%s", (int)(at - base), base, insert, at);
    return buf;
}

/* siunitx by default: every number in a \tablenum box, bold and underline around the boxes,
 * the marks in a column of their own so they never push a number out of line. */
START_TEST(latex_booktabs)
{
    const char *root = make_fixture(rep_yaml);
    tema_err err = {0};
    ck_assert_msg(report_in(root, "rep.yaml", false, &err) == TEMA_OK, "%s", err.msg);
    char *tex = report_file(root, "rep", "main.tex");
    ck_assert_msg(strstr(tex, "needs \\usepackage{booktabs,siunitx}\n\\begin{table}[t]\n"), "%s", tex);
    ck_assert_msg(strstr(tex, "\\toprule") && strstr(tex, "\\midrule") && strstr(tex, "\\bottomrule"), "%s", tex);
    ck_assert_msg(strstr(tex, "\\sisetup{detect-weight, group-digits=none, table-format=1.4}"), "%s", tex);
    ck_assert_msg(strstr(tex, "\\begin{tabular}{lc@{}lc@{}lc@{}lc@{}l}"), "%s", tex);
    ck_assert_msg(strstr(tex, "\\multicolumn{4}{c}{X} & \\multicolumn{4}{c}{Y}"), "%s", tex);
    ck_assert_msg(strstr(tex, "\\cmidrule(lr){2-5}\\cmidrule(lr){6-9}"), "%s", tex);
    ck_assert_msg(strstr(tex, "Model & \\multicolumn{2}{c}{MRR} & \\multicolumn{2}{c}{NDCG@10} & "), "%s", tex);
    ck_assert_msg(strstr(tex, "TEMA & {\\bfseries\\mbox{\\tablenum{0.2267}{\\boldmath${}\\pm{}$}\\tablenum{0.0122}}}"
                              " & $^{*\\dagger\\ddagger}$ & "
                              "{\\bfseries\\mbox{\\tablenum{0.2646}{\\boldmath${}\\pm{}$}\\tablenum{0.0092}}}"
                              " & $^{*\\dagger\\ddagger}$ & "
                              "\\underline{\\mbox{\\tablenum{0.1591}${}\\pm{}$\\tablenum{0.0140}}} & & "
                              "{\\bfseries\\mbox{\\tablenum{0.1967}{\\boldmath${}\\pm{}$}\\tablenum{0.0145}}} & \\\\"),
                  "%s", tex);
    ck_assert_msg(strstr(tex, "GRU4Rec & \\mbox{\\tablenum{0.1027}${}\\pm{}$\\tablenum{0.0018}} & "
                              "$^{*\\dagger\\ddagger}$ & "),
                  "%s", tex);
    ck_assert_msg(strstr(tex, "\\caption{Main results}") && strstr(tex, "\\label{tab:main}"), "%s", tex);
    free(tex);
    /* no baseline, no marks column; the stds' integer digits differ from the means' */
    tex = report_file(root, "rep", "ablation.tex");
    ck_assert_msg(strstr(tex, "table-format=2.2}") && strstr(tex, "\\begin{tabular}{lc}"), "%s", tex);
    ck_assert_msg(strstr(tex, "Base & \\mbox{\\tablenum{16.39}${}\\pm{}$\\tablenum[table-format=1.2]{0.79}} \\\\"),
                  "%s", tex);
    free(tex);
}
END_TEST

/* latex: {siunitx: false}: the values as text, as before siunitx; float and size apply. */
START_TEST(latex_without_siunitx)
{
    const char *latex = "      latex: {siunitx: false, float: table*, size: small}\n";
    const char *root = make_fixture(yaml_with(rep_yaml, "      baseline: single", latex));
    tema_err err = {0};
    ck_assert_msg(report_in(root, "rep.yaml", false, &err) == TEMA_OK, "%s", err.msg);
    char *tex = report_file(root, "rep", "main.tex");
    ck_assert_msg(strstr(tex, "needs \\usepackage{booktabs}\n\\begin{table*}[t]\n\\centering\n\\caption{"), "%s", tex);
    ck_assert_msg(strstr(tex, "\\label{tab:main}\n\\small\n\\begin{tabular}{lcccc}\n"), "%s", tex);
    ck_assert_msg(strstr(tex, "\\end{table*}\n") && !strstr(tex, "sisetup"), "%s", tex);
    ck_assert_msg(strstr(tex, "\\multicolumn{2}{c}{X} & \\multicolumn{2}{c}{Y}"), "%s", tex);
    ck_assert_msg(strstr(tex, "\\cmidrule(lr){2-3}\\cmidrule(lr){4-5}"), "%s", tex);
    ck_assert_msg(strstr(tex, "TEMA & \\textbf{0.2267 $\\pm$ 0.0122}$^{*\\dagger\\ddagger}$ & "
                              "\\textbf{0.2646 $\\pm$ 0.0092}$^{*\\dagger\\ddagger}$ & "
                              "\\underline{0.1591 $\\pm$ 0.0140} & \\textbf{0.1967 $\\pm$ 0.0145} \\\\"),
                  "%s", tex);
    ck_assert_msg(strstr(tex, "GRU4Rec & 0.1027 $\\pm$ 0.0018$^{*\\dagger\\ddagger}$ & "
                              "0.1310 $\\pm$ 0.0036$^{*\\dagger\\ddagger}$ & 0.1515 $\\pm$ 0.0137$^{\\dagger}$ & "
                              "0.1840 $\\pm$ 0.0126$^{*\\dagger}$ \\\\"),
                  "%s", tex);
    free(tex);
    /* the other table keeps the report's defaults */
    tex = report_file(root, "rep", "ablation.tex");
    ck_assert_msg(strstr(tex, "\\begin{table}[t]") && strstr(tex, "\\tablenum"), "%s", tex);
    free(tex);
}
END_TEST

START_TEST(timing_table)
{
    const char *root = make_fixture(rep_yaml);
    tema_err err = {0};
    ck_assert_msg(report_in(root, "rep.yaml", false, &err) == TEMA_OK, "%s", err.msg);
    char *md = report_file(root, "rep", "timing.md");
    /* single: s/epoch 1.6, 1.7, 1.8; epochs 11, 12, 13 (seed 2 stopped early); best 6, 7, 8;
     * time (17.6 + 20.4 + 23.4) / 3 = 20.47 s; peak 100 + 0 + 3 MiB */
    char *r = md_row(md, "attention=single");
    ck_assert_str_eq(r, "| attention=single | 3 | 1.70 ± 0.10 | 12 | 1/3 | 7 | 20.5 s | 103 MiB | cpu | 2 |");
    free(r);
    r = md_row(md, "attention=gru");
    /* 2.6, 2.7, 2.8 s/epoch; 120 + 3 MiB */
    ck_assert_str_eq(r, "| attention=gru | 3 | 2.70 ± 0.10 | 12 | 1/3 | 7 | 32.5 s | 123 MiB | cpu | 2 |");
    free(r);
    ck_assert_msg(strstr(md, "9 runs"), "%s", md);
    free(md);
    char *csv = report_file(root, "rep", "timing.csv");
    ck_assert_msg(strstr(csv, "\nattention=multi,3,2.2,0.1,12,1,7,"), "%s", csv);
    free(csv);
}
END_TEST

/* What a paper \inputs: the tables (siunitx, table*, scaled to fit) and the charts as PDF
 * figures, compiled by pdflatex in a two-column article. The PDF holds the tables' numbers,
 * and nothing is wider than its column or the page. */
START_TEST(latex_compiles_in_a_two_column_paper)
{
    const char *yaml = yaml_with(rep_yaml, "report:", "  latex: {fit: true}\n");
    const char *root = make_fixture(yaml_with(yaml, "      baseline: single", "      latex: {float: table*}\n"));
    tema_err err = {0};
    ck_assert_msg(report_in(root, "rep.yaml", false, &err) == TEMA_OK, "%s", err.msg);
    char *tex = report_file(root, "rep", "main.tex");
    ck_assert_msg(strstr(tex, "needs \\usepackage{booktabs,siunitx,graphicx}\n\\begin{table*}[t]\n") &&
                      strstr(tex, "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%\n"
                                  "\\begin{tabular}") && strstr(tex, "\\end{tabular}}\n"),
                  "%s", tex);
    free(tex);
    tex = report_file(root, "rep", "timing.tex");
    ck_assert_msg(strstr(tex, "\\begin{table}[t]") && strstr(tex, "\\resizebox{"), "%s", tex);
    free(tex);
    if (system("command -v pdflatex >/dev/null 2>&1") != 0) {
        tu_skip(__func__, "pdflatex is not installed (Debian: texlive-latex-base texlive-latex-recommended "
                          "texlive-science; .ci/install-deps installs them)");
        return;
    }
    char dir[700], path[800];
    snprintf(dir, sizeof dir, "%s/results/rep/report", root);
    write_file(dir, "paper.tex",
               "\\documentclass[twocolumn]{article}\n\\usepackage{booktabs,siunitx,graphicx}\n"
               "\\begin{document}\n\\input{main.tex}\n\\input{ablation.tex}\n\\input{timing.tex}\n"
               "\\begin{figure*}[t]\\centering\\includegraphics{plots/main-bars.pdf}\\caption{Bars}\\end{figure*}\n"
               "\\begin{figure*}[t]\\centering\\includegraphics{plots/curves-attention-multi.pdf}"
               "\\caption{Curves}\\end{figure*}\nText.\n\\end{document}\n");
    ck_assert_msg(tu_sh(dir, "timeout 120 pdflatex -interaction=nonstopmode -halt-on-error paper.tex >latex.out 2>&1",
                        "paper.log") == 0, "pdflatex failed; paper.log is printed above");
    snprintf(path, sizeof path, "%s/paper.log", dir);
    char *log = slurp(path);
    ck_assert_msg(strstr(log, "Output written on paper.pdf"), "no PDF; see %s", path);
    /* at natural size every chart and every table fits the text width */
    const char *wide = strstr(log, "Overfull \\hbox") ? strstr(log, "Overfull \\hbox") : strstr(log, "Float too large");
    ck_assert_msg(!wide, "%.300s", wide);
    free(log);
    if (system("command -v pdftotext >/dev/null 2>&1") != 0) {
        fprintf(stderr, "note: pdftotext is not installed (Debian: poppler-utils): the PDF's text is not checked\n");
        return;
    }
    ck_assert_int_eq(tu_sh(dir, "pdftotext paper.pdf paper.txt", NULL), 0);
    snprintf(path, sizeof path, "%s/paper.txt", dir);
    char *text = slurp(path);
    ck_assert_msg(strstr(text, "Main results") && strstr(text, "0.2267") && strstr(text, "0.1027") &&
                      strstr(text, "21.92") && strstr(text, "Timing and memory"), "%s", text);
    free(text);
}
END_TEST

/* Every chart in SVG, PNG and PDF; the curves named and titled by their cell, not numbered. */
START_TEST(plots_written)
{
    const char *root = make_fixture(rep_yaml);
    tema_err err = {0};
    ck_assert_msg(report_in(root, "rep.yaml", true, &err) == TEMA_OK, "%s", err.msg);
    check_plot(root, "rep", "main-bars");
    check_plot(root, "rep", "ablation-bars");
    static const char *const cells[3] = {"single", "multi", "gru"};
    for (int g = 0; g < 3; g++) {
        char stem[64];
        snprintf(stem, sizeof stem, "curves-attention-%s", cells[g]);
        check_plot(root, "rep", stem);
    }
    ck_assert(!tu_exists(root, "results/rep/report/plots/curves-1.svg"));
    ck_assert(!tu_exists(root, "results/rep/report/plots/curves-1.pdf"));
    /* rows x domain only: no heatmap */
    ck_assert(!tu_exists(root, "results/rep/report/plots/main-heatmap-X.svg"));
    ck_assert(!tu_exists(root, "results/rep/report/plots/main-bars.svg.tmp"));

    /* the figure says which cell it shows; one legend for the seeds */
    char path[1024];
    snprintf(path, sizeof path, "%s/results/rep/report/plots/curves-attention-multi.svg", root);
    char *text = svg_text(path);
    ck_assert_msg(!strncmp(text, "attention=multi\n", 16) && strstr(text, "\nTraining loss\n"), "%s", text);
    ck_assert_msg(strstr(text, "\nValidation, X\n") && strstr(text, "\nValidation, Y\n"), "%s", text);
    ck_assert_int_eq(count(text, "\nseed 1\n"), 1);
    free(text);
    /* one metric per panel: each metric titles one panel; the groups are the domains alone */
    snprintf(path, sizeof path, "%s/results/rep/report/plots/main-bars.svg", root);
    text = svg_text(path);
    ck_assert_msg(count(text, "\nMRR\n") == 1 && count(text, "\nNDCG@10\n") == 1, "%s", text);
    ck_assert_msg(count(text, "\nX\n") == 2 && count(text, "\nY\n") == 2 && !strstr(text, "X MRR"), "%s", text);
    ck_assert_msg(!strncmp(text, "Main results\n", 13) && count(text, "\nTEMA\n") == 1, "%s", text);
    free(text);
    /* the page links the figures by the cell's name */
    char *html = report_file(root, "rep", "report.html");
    ck_assert_msg(strstr(html, "<figure id=\"curves-attention-multi\">") &&
                      strstr(html, "<a href=\"#curves-attention-multi\">curves</a>"), "curves not linked by cell");
    ck_assert_msg(strstr(html, "(<a href=\"plots/curves-attention-multi.pdf\">pdf</a>, "), "no link to the PDF");
    free(html);
}
END_TEST

/* A PLplot driver that is missing costs its format, said once, and nothing else; a chart
 * left by an earlier report (an old name) is pointed out, not deleted. */
START_TEST(chart_notes_missing_driver_and_stale_files)
{
    const char *root = make_fixture(rep_yaml);
    char plots[700];
    snprintf(plots, sizeof plots, "%s/results/rep/report/plots", root);
    tema_err e = {0};
    ck_assert(tema_mkdirs(plots, &e) == TEMA_OK);
    write_file(plots, "curves-1.svg", "<svg/>");
    setenv("TEMA_TEST_PLOT_NO_DEVICE", "pdfcairo", 1);
    char yaml[600], results[600], *notes = NULL;
    size_t len = 0;
    snprintf(yaml, sizeof yaml, "%s/rep.yaml", root);
    snprintf(results, sizeof results, "%s/results", root);
    FILE *diag = open_memstream(&notes, &len);
    tema_report_opts o = {.results_dir = results, .all_runs = true, .diag = diag};
    tema_err err = {0};
    ck_assert_msg(tema_report(yaml, &o, &err) == TEMA_OK, "%s", err.msg);
    fclose(diag);
    unsetenv("TEMA_TEST_PLOT_NO_DEVICE");
    ck_assert(tu_exists(root, "results/rep/report/plots/main-bars.svg"));
    ck_assert(tu_exists(root, "results/rep/report/plots/curves-attention-gru.png"));
    ck_assert(!tu_exists(root, "results/rep/report/plots/main-bars.pdf"));
    ck_assert(!tu_exists(root, "results/rep/report/plots/curves-attention-gru.pdf"));
    ck_assert_msg(count(notes, "PDF: PLplot's pdfcairo driver is not installed (Debian: plplot-driver-cairo)") == 1,
                  "%s", notes);
    ck_assert_msg(strstr(notes, "holds 1 chart file(s) this report did not write (curves-1.svg)"), "%s", notes);
    ck_assert(tu_exists(plots, "curves-1.svg"));
    free(notes);
}
END_TEST

/* A 2 x 2 lambda grid with 2 seeds and final.json only (no ranks, no epochs). */
START_TEST(heatmap_of_two_axis_grid)
{
    const char *root = tu_tmpdir();
    char exp_dir[600], dir[700], path[700];
    snprintf(exp_dir, sizeof exp_dir, "%s/results/lam", root);
    const double l1[2] = {0.2, 0.3}, l2[2] = {0.05, 0.1};
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int s = 1; s <= 2; s++) {
                char config[400], id[17];
                snprintf(config, sizeof config,
                         "{\"name\":\"lam\",\"model\":{\"attention\":{\"plugin\":\"multi\",\"lambda_1\":%g,"
                         "\"lambda_2\":%g}},\"train\":{\"seed\":%d},\"eval\":{\"metrics\":[\"mrr\"]}}",
                         l1[a], l2[b], s);
                tema_results_run_id(config, id);
                snprintf(dir, sizeof dir, "%s/%s", exp_dir, id);
                tema_err err = {0};
                ck_assert(tema_mkdirs(dir, &err) == TEMA_OK);
                write_file(dir, "config.json", config);
                char final[300];
                /* MRR X = 0.1 + lambda_1 / 10 + lambda_2 + seed / 1000 */
                snprintf(final, sizeof final,
                         "{\"test\":{\"X\":{\"cases\":5,\"optimistic\":{\"mrr\":%.17g}},\"Y\":{\"cases\":5,"
                         "\"optimistic\":{\"mrr\":%.17g}}},\"epochs_run\":3,\"total_seconds\":3.0}",
                         0.1 + l1[a] / 10 + l2[b] + s / 1000.0, 0.05 + l2[b] / 10);
                write_file(dir, "final.json", final);
                write_file(dir, "DONE", "");
            }
    snprintf(path, sizeof path, "%s/lam.yaml", root);
    tu_write(path, "name: lam\n"
                   "report:\n"
                   "  timing: false\n"
                   "  tables:\n"
                   "    - {name: grid, rows: model.attention.lambda_1, columns: [model.attention.lambda_2],\n"
                   "       metrics: [mrr], domains: [X]}\n");
    tema_err err = {0};
    ck_assert_msg(report_in(root, "lam.yaml", true, &err) == TEMA_OK, "%s", err.msg);
    char *md = report_file(root, "lam", "grid.md");
    ck_assert_msg(strstr(md, "| lambda_1 | 0.05 X MRR | 0.1 X MRR |"), "%s", md);
    char *r = md_row(md, "0.2");
    /* 0.1 + 0.02 + 0.05 + {0.001, 0.002}: mean 0.1715, std 0.000707 */
    ck_assert_str_eq(r, "| 0.2 | 0.1715 ± 0.0007 | 0.2215 ± 0.0007 |");
    free(r);
    r = md_row(md, "0.3");
    /* two rows: the best is bold, nothing is second */
    ck_assert_str_eq(r, "| 0.3 | **0.1815 ± 0.0007** | **0.2315 ± 0.0007** |");
    free(r);
    free(md);
    check_plot(root, "lam", "grid-heatmap-X");
    ck_assert(!tu_exists(root, "results/lam/report/plots/grid-heatmap-Y.svg"));
    ck_assert(!tu_exists(root, "results/lam/report/timing.md"));
    /* no epochs.jsonl: no curves, and the page says so */
    ck_assert(!tu_exists(root, "results/lam/report/plots/curves-lambda-1-0-2-lambda-2-0-05.svg"));
    char *html = report_file(root, "lam", "report.html");
    ck_assert_msg(strstr(html, "id=\"fig-grid-heatmap-X\""), "heatmap missing from the page");
    free(html);
}
END_TEST

START_TEST(html_page_renders_in_chromium)
{
    const char *root = make_fixture(rep_yaml);
    char args[2048], *out = NULL, *errout = NULL;
    snprintf(args, sizeof args, "report '%s/rep.yaml' --results '%s/results' --all-runs --html --format md", root,
             root);
    int rc = tu_tema(args, &out, &errout);
    ck_assert_msg(rc == 0, "tema report failed (%d):\n%s", rc, errout);
    /* the Markdown goes to stdout; files and notes to stderr */
    ck_assert_msg(strstr(out, "### Main results") && strstr(out, "| TEMA | **0.2267 ± 0.0122**"), "%s", out);
    ck_assert_msg(strstr(errout, "report.html"), "%s", errout);
    free(out);
    free(errout);
    ck_assert(tu_exists(root, "results/rep/report/main.md"));
    ck_assert(!tu_exists(root, "results/rep/report/main.csv")); /* --format md only */

    char *html = report_file(root, "rep", "report.html");
    ck_assert_msg(!strncmp(html, "<!DOCTYPE html>", 15), "not an HTML page");
    ck_assert_int_eq(count(html, "<tr data-row=\""), 3 + 2 + 3);  /* main, ablation, timing rows */
    ck_assert_int_eq(count(html, "<img "), 2 + 3);                /* 2 bar charts + 3 curve figures */
    ck_assert_int_eq(count(html, "src=\"data:image/svg+xml;base64,"), 5);
    ck_assert_msg(!strstr(html, "src=\"http") && !strstr(html, "src=\"file:"), "the page is not self-contained");
    ck_assert_msg(strstr(html, "<a href=\"#cfg-1\">") && strstr(html, "<details id=\"cfg-1\""), "no config links");
    ck_assert_msg(strstr(html, "<sup class=\"sig\">*†‡</sup>"), "marks missing");
    ck_assert_msg(strstr(html, "plugin: multi"), "resolved configs missing");
    free(html);

    if (system("command -v chromium >/dev/null 2>&1") != 0) {
        tu_skip(__func__, "chromium is not installed (Debian: apt-get install chromium; .ci/install-deps installs it)");
        return;
    }
    char cmd[4096];
    const char *flags = "--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars "
                        "--no-first-run --disable-extensions --virtual-time-budget=5000";
    snprintf(cmd, sizeof cmd,
             "HOME='%s' timeout 120 chromium %s --user-data-dir='%s/chrome' --window-size=1280,2000 "
             "--screenshot='%s/shot.png' 'file://%s/results/rep/report/report.html' >chrome.log 2>&1",
             root, flags, root, root, root);
    ck_assert_msg(tu_sh(root, cmd, "chrome.log") == 0, "chromium --screenshot failed; chrome.log is printed above");
    char shot[600];
    snprintf(shot, sizeof shot, "%s/shot.png", root);
    struct stat st;
    ck_assert_msg(stat(shot, &st) == 0, "no screenshot");
    /* a blank 1280x2000 page compresses to a few kB; tables, text and charts do not */
    ck_assert_msg(st.st_size > 40000, "screenshot has only %lld bytes: nothing rendered?", (long long)st.st_size);
    char *png = slurp(shot);
    ck_assert(!memcmp(png, "\x89PNG\r\n\x1a\n", 8));
    free(png);

    snprintf(cmd, sizeof cmd,
             "HOME='%s' timeout 120 chromium %s --user-data-dir='%s/chrome' --dump-dom "
             "'file://%s/results/rep/report/report.html' >dom.html 2>chrome.log",
             root, flags, root, root);
    ck_assert_msg(tu_sh(root, cmd, "chrome.log") == 0, "chromium --dump-dom failed; chrome.log is printed above");
    snprintf(shot, sizeof shot, "%s/dom.html", root);
    char *dom = slurp(shot);
    ck_assert_msg(strstr(dom, "<tr data-row=\"SASRec\" class=\"baseline\">"), "DOM lacks the baseline row");
    ck_assert_msg(strstr(dom, "<tr data-row=\"TEMA\">") && strstr(dom, "<tr data-row=\"GRU4Rec\">"),
                  "DOM lacks the table rows");
    ck_assert_int_eq(count(dom, "<img "), 5);
    /* the page's script marks every image that decoded with its natural size */
    ck_assert_msg(strstr(dom, "data-images-ok=\"5/5\""), "not every chart decoded in Chromium");
    free(dom);
}
END_TEST

START_TEST(bad_report_block_is_located)
{
    const char *root = make_fixture(rep_yaml);
    char path[600];
    snprintf(path, sizeof path, "%s/bad.yaml", root);
    struct {
        const char *yaml, *want;
    } cases[] = {
        {"name: rep\nreport:\n  tables:\n    - name: t\n      rows: model.attention.plugin\n      colour: red\n",
         "bad.yaml:6:15: report.tables[0]: unknown key 'colour'"},
        {"name: rep\nreport:\n  tables:\n    - name: t\n      rows: model.attention.plugin\n      baseline: lstm\n",
         "bad.yaml:6:17: report.tables[0].baseline: 'lstm' is not one of the rows ('gru', 'multi', 'single')"},
        {"name: rep\nreport:\n  tables:\n    - name: t\n      rows: model.nothing\n",
         "report.tables[0]: no run has the key 'model.nothing'; the runs differ in: model.attention.plugin"},
        {"name: rep\nreport:\n  tables:\n    - name: t\n      metrics: [mrr, recall]\n",
         "bad.yaml:5:16: report.tables[0].metrics:"},
        {"name: rep\nreport:\n  tables:\n    - name: t\n      rows: domain\n",
         "domain can only be a column axis"},
        {"name: rep\nreport:\n  tablez: []\n", "bad.yaml:3:11: report: unknown key 'tablez'"},
        {"name: rep\nreport:\n  tables:\n    - name: t\n      latex: {float: figure}\n",
         "bad.yaml:5:22: report.tables[0].latex.float: expected table or table*"},
        {"name: rep\nreport:\n  latex: {size: huge}\n", "bad.yaml:3:17: report.latex.size: expected tiny,"},
        {"name: rep\nreport:\n  latex: {colour: red}\n", "report.latex: unknown key 'colour'; latex takes float"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tu_write(path, cases[i].yaml);
        tema_err err = {0};
        ck_assert_msg(report_in(root, "bad.yaml", false, &err) == TEMA_EINVAL, "case %zu passed", i);
        ck_assert_msg(strstr(err.msg, cases[i].want), "case %zu: got '%s', want '%s'", i, err.msg, cases[i].want);
    }
    /* no results at all: says where it looked and what to run */
    tu_write(path, "name: other\n");
    tema_err err = {0};
    ck_assert_int_eq(report_in(root, "bad.yaml", false, &err), TEMA_ENOTFOUND);
    ck_assert_msg(strstr(err.msg, "results/other") && strstr(err.msg, "tema run"), "%s", err.msg);
    /* usage errors of the command */
    char *out = NULL, *errout = NULL;
    ck_assert_int_eq(tu_tema("report", &out, &errout), 2);
    ck_assert_msg(strstr(errout, "missing the experiment file"), "%s", errout);
    free(out);
    free(errout);
    ck_assert_int_eq(tu_tema("report x.yaml --format pdf", &out, &errout), 2);
    ck_assert_msg(strstr(errout, "unknown format 'pdf'"), "%s", errout);
    free(out);
    free(errout);
}
END_TEST

/* tema check and tema run read the report: block first: a typo there stops them before any
 * training (it used to surface only at `tema report`, after the runs). */
START_TEST(check_and_run_refuse_a_bad_report_block_first)
{
    const char *tmp = tu_tmpdir();
    char exp[600], res[600], args[1400], text[1200];
    snprintf(exp, sizeof exp, "%s/exp.yaml", tmp);
    snprintf(res, sizeof res, "%s/results", tmp);
    const char *head = "name: r\ndataset: {path: synthetic}\ntrain: {epochs: 1}\n";
    snprintf(text, sizeof text, "%sreport:\n  tables:\n    - name: t\n      rows: model.attention.plugin\n"
                                "      metrics: [mrr, ndgc@5]\n", head);
    tu_write(exp, text);
    char *out, *err;
    snprintf(args, sizeof args, "check '%s'", exp);
    ck_assert_int_eq(tu_tema(args, &out, &err), 1);
    ck_assert_msg(strstr(err, "exp.yaml:8:") && strstr(err, "unknown metric 'ndgc@5'"), "%s", err);
    free(out);
    free(err);
    snprintf(args, sizeof args, "run '%s' --results '%s'", exp, res);
    ck_assert_int_eq(tu_tema(args, &out, &err), 1);
    ck_assert_msg(strstr(err, "unknown metric 'ndgc@5'"), "%s", err);
    ck_assert_msg(!tu_exists(res, "r"), "a run started before the report block was checked");
    free(out);
    free(err);
    /* `KEY: null` in a where: the runs without that key (an encoder list of another length) */
    snprintf(text, sizeof text, "%sreport:\n  tables:\n    - name: t\n      where: {model.encoders.1: null}\n",
             head);
    tu_write(exp, text);
    snprintf(args, sizeof args, "check '%s'", exp);
    ck_assert_msg(tu_tema(args, &out, &err) == 0, "%s", err);
    free(out);
    free(err);
}
END_TEST

/* Without a report: block: one table over the keys the runs differ in. */
START_TEST(default_table_without_report_block)
{
    const char *root = make_fixture("name: rep\n");
    tema_err err = {0};
    ck_assert_msg(report_in(root, "rep.yaml", false, &err) == TEMA_OK, "%s", err.msg);
    char *md = report_file(root, "rep", "results.md");
    ck_assert_msg(strstr(md, "| attention | X MRR | X NDCG@10 | Y MRR | Y NDCG@10 |"), "%s", md);
    char *r = md_row(md, "multi");
    ck_assert_str_eq(r, "| multi | **0.2267 ± 0.0122** | **0.2646 ± 0.0092** | _0.1591 ± 0.0140_ | "
                        "**0.1967 ± 0.0145** |");
    free(r);
    free(md);
}
END_TEST

/* Cells that differ in how many encoders they have (Table IV's "+ tag embedding") are told
 * apart by the list element one of them lacks, named by its plugin: they were all labelled
 * with the experiment's name. */
START_TEST(cells_with_one_more_encoder_get_their_own_labels)
{
    const char *two = "[{\"plugin\":\"id\",\"dim\":8},{\"plugin\":\"text\",\"dim\":8}]";
    const char *three = "[{\"plugin\":\"id\",\"dim\":8},{\"plugin\":\"text\",\"dim\":8},{\"plugin\":\"tag\",\"dim\":8}]";
    fixture_encoders[0] = two, fixture_encoders[1] = three, fixture_encoders[2] = three;
    const char *root = make_fixture("name: rep\n");
    fixture_encoders[0] = fixture_encoders[1] = fixture_encoders[2] = NULL;
    tema_err err = {0};
    ck_assert_msg(report_in(root, "rep.yaml", false, &err) == TEMA_OK, "%s", err.msg);
    char *md = report_file(root, "rep", "timing.md");
    ck_assert_msg(!strstr(md, "| rep |"), "%s", md);
    char *r = md_row(md, "attention=single, encoders.2=none");
    free(r);
    r = md_row(md, "attention=multi, encoders.2=tag");
    free(r);
    free(md);
}
END_TEST

/* Seeds of one cell that ran at other thread counts, on another device or resumed (the run
 * id leaves these out) are still one cell: one row of three runs per attention, no
 * "threads=" in a label. */
START_TEST(seeds_at_other_thread_counts_stay_one_cell)
{
    fixture_backend[1] = "{\"plugin\":\"cpu\",\"threads\":2}";
    fixture_backend[2] = "{\"plugin\":\"cpu\",\"threads\":1}";
    fixture_backend[3] = "{\"plugin\":\"cpu\",\"threads\":1,\"device\":3}";
    const char *root = make_fixture("name: rep\n");
    for (int s = 0; s < 5; s++) fixture_backend[s] = NULL;
    tema_err err = {0};
    ck_assert_msg(report_in(root, "rep.yaml", false, &err) == TEMA_OK, "%s", err.msg);
    char *md = report_file(root, "rep", "timing.md");
    ck_assert_msg(!strstr(md, "threads=") && !strstr(md, "device="), "%s", md);
    const char *cells[] = {"attention=single", "attention=multi", "attention=gru"};
    for (int c = 0; c < 3; c++) {
        char *r = md_row(md, cells[c]);
        ck_assert_msg(strncmp(r, "3 |", 3) == 0 || strstr(r, "| 3 |"), "%s: %s", cells[c], r);
        free(r);
    }
    ck_assert_int_eq(count(md, "| attention="), 3);
    free(md);
}
END_TEST

/* A grid half done: a table whose runs have not finished yet (its baseline among them) is
 * written empty and says so, and the tables that have runs are still written. */
START_TEST(table_without_finished_runs_is_empty_not_an_error)
{
    const char *root = make_fixture("name: rep\n"
                                    "report:\n"
                                    "  tables:\n"
                                    "    - name: done\n"
                                    "      rows: {key: model.attention.plugin}\n"
                                    "      where: {model.attention.plugin: single}\n"
                                    "      metrics: [mrr]\n"
                                    "    - name: pending\n"
                                    "      rows: {key: model.attention.plugin}\n"
                                    "      where: {model.attention.plugin: man}\n"
                                    "      metrics: [mrr]\n"
                                    "      baseline: man\n");
    tema_err err = {0};
    ck_assert_msg(report_in(root, "rep.yaml", false, &err) == TEMA_OK, "%s", err.msg);
    char *md = report_file(root, "rep", "pending.md");
    ck_assert_msg(strstr(md, "No finished run matches this table yet.") && !strstr(md, "Marks against"), "%s", md);
    free(md);
    md = report_file(root, "rep", "done.md");
    ck_assert_msg(strstr(md, "| single |"), "%s", md);
    free(md);
}
END_TEST

/* End to end: a real 2 x 2 grid with 2 seeds trained by `tema run -j 2` on tiny synthetic
 * data; the report follows the manifest (grid order, pending entries, stale runs). */
START_TEST(report_follows_the_manifest_of_a_real_grid)
{
    const char *root = tu_tmpdir();
    char args[2048], path[600];
    snprintf(args, sizeof args, "data synth --out '%s/data' --users 200 --items-x 80 --items-y 80", root);
    ck_assert_int_eq(tu_tema(args, NULL, NULL), 0);
    const char *head = "name: g\n"
                       "dataset: {path: data, max_len: 8}\n"
                       "backend: {plugin: cpu, threads: 1}\n"
                       "model:\n"
                       "  encoders: [{plugin: id, dim: 8}]\n"
                       "  attention: {plugin: single, blocks: 1, heads: 1}\n"
                       "train: {epochs: 2, batch_size: 64, eval_every: 1, patience: 0}\n"
                       "eval: {negatives: 20}\n";
    char yaml[2048];
    snprintf(yaml, sizeof yaml, "%sgrid:\n  train.lr: [3.0e-3, 1.0e-3]\n  model.attention.blocks: [1, 2]\n"
             "  seeds: [1, 2]\n", head);
    snprintf(path, sizeof path, "%s/g.yaml", root);
    tu_write(path, yaml);
    snprintf(args, sizeof args, "run g.yaml -j 2 --results results");
    char cmd[2600];
    const char *logs = "run.log err.log results/g/*/log.txt results/g/*/failed";
    snprintf(cmd, sizeof cmd, TU_GRID_ENV "'%s' %s >run.log 2>&1", getenv("TEMA_EXE"), args);
    ck_assert_msg(tu_sh(root, cmd, logs) == 0, "the grid failed; its logs are printed above");

    snprintf(cmd, sizeof cmd, "'%s' report g.yaml --html >out.md 2>err.log", getenv("TEMA_EXE"));
    ck_assert_msg(tu_sh(root, cmd, logs) == 0, "tema report failed; err.log is printed above");
    snprintf(path, sizeof path, "%s/out.md", root);
    char *md = slurp(path);
    /* no report: block and two grid keys: rows x columns, in grid order (3e-3 first) */
    ck_assert_msg(strstr(md, "8 finished runs in 4 cells (results/g)."), "%s", md);
    ck_assert_msg(strstr(md, "| lr | 1 X MRR |"), "%s", md);
    const char *r1 = strstr(md, "\n| 0.003 |"), *r2 = strstr(md, "\n| 0.001 |");
    bool grid_order = r1 && r2 && r1 < r2;
    ck_assert_msg(grid_order, "rows not in grid order:\n%s", md);
    ck_assert_msg(strstr(md, "over 2 seeds"), "%s", md);
    ck_assert_msg(strstr(md, "| lr=0.003, blocks=1 | 2 |") && strstr(md, "| cpu | 1 |"), "%s", md);
    free(md);
    ck_assert(tu_exists(root, "results/g/report/plots/results-heatmap-X.svg"));
    /* the bar chart's legend names the row key of bare values; metric labels are split */
    snprintf(path, sizeof path, "%s/results/g/report/plots/results-bars.svg", root);
    char *bars = svg_text(path);
    ck_assert_msg(strstr(bars, "\nlr = 0.003\n") && strstr(bars, "\nlr = 0.001\n"), "%s", bars);
    free(bars);
    ck_assert(tu_exists(root, "results/g/report/plots/results-heatmap-Y.png"));
    ck_assert(tu_exists(root, "results/g/report/plots/curves-lr-0-001-blocks-2.png"));
    ck_assert(tu_exists(root, "results/g/report/plots/curves-lr-0-001-blocks-2.pdf"));

    /* one more value: 4 pending entries; the finished ones still report */
    snprintf(yaml, sizeof yaml, "%sgrid:\n  train.lr: [3.0e-3, 1.0e-3]\n  model.attention.blocks: [1, 2, 3]\n"
             "  seeds: [1, 2]\n", head);
    snprintf(path, sizeof path, "%s/g.yaml", root);
    tu_write(path, yaml);
    ck_assert_int_eq(tu_sh(root, cmd, logs), 0);
    snprintf(path, sizeof path, "%s/out.md", root);
    md = slurp(path);
    ck_assert_msg(strstr(md, "8 finished runs in 4 cells, 4 pending"), "%s", md);
    free(md);

    /* a changed setting makes every run stale: say so, and --all-runs still reports them */
    snprintf(yaml, sizeof yaml, "%sgrid:\n  train.lr: [3.0e-3, 1.0e-3]\n  model.attention.blocks: [1, 2]\n"
             "  seeds: [1, 2]\n", head);
    char *p = strstr(yaml, "epochs: 2");
    p[8] = '3';
    snprintf(path, sizeof path, "%s/g.yaml", root);
    tu_write(path, yaml);
    ck_assert_int_ne(tu_sh(root, cmd, NULL), 0);
    snprintf(path, sizeof path, "%s/err.log", root);
    char *e = slurp(path);
    ck_assert_msg(strstr(e, "8 finished run(s)") && strstr(e, "--all-runs"), "%s", e);
    free(e);
    snprintf(cmd, sizeof cmd, "'%s' report g.yaml --all-runs --no-plots >out.md 2>err.log", getenv("TEMA_EXE"));
    ck_assert_int_eq(tu_sh(root, cmd, logs), 0);

    /* a grid over whole plugin sub-configs: rows are named by plugin and the options that
     * tell two values of the same plugin apart; pop trains no epoch */
    snprintf(yaml, sizeof yaml, "%sgrid:\n  model.attention:\n    - {plugin: single, blocks: 1}\n"
             "    - {plugin: single, blocks: 2}\n    - {plugin: pop}\n", head);
    char *n = strstr(yaml, "name: g");
    n[6] = 'h';
    snprintf(path, sizeof path, "%s/h.yaml", root);
    tu_write(path, yaml);
    snprintf(cmd, sizeof cmd, TU_GRID_ENV "'%s' run h.yaml >run.log 2>&1 && '%s' report h.yaml --no-plots >out.md 2>err.log",
             getenv("TEMA_EXE"), getenv("TEMA_EXE"));
    ck_assert_msg(tu_sh(root, cmd, "run.log err.log results/h/*/failed") == 0, "the run or the report failed; logs above");
    snprintf(path, sizeof path, "%s/out.md", root);
    md = slurp(path);
    ck_assert_msg(strstr(md, "\n| attention | X MRR |"), "%s", md);
    ck_assert_msg(strstr(md, "\n| single blocks=1 |") && strstr(md, "\n| single blocks=2 |") && strstr(md, "\n| pop |"),
                  "%s", md);
    ck_assert_msg(strstr(md, "\n| attention=single, blocks=2 | 1 |") && strstr(md, "\n| attention=pop | 1 | n/a |"), "%s", md);
    free(md);
}
END_TEST

/* `tema plot`: a CSV with quoted fields and an empty cell becomes one panel per --y column and
 * one line per --series value; bad input is located by file, line and column. */
START_TEST(plot_command_draws_a_csv)
{
    const char *root = tu_tmpdir();
    char path[1024], args[2400];
    snprintf(path, sizeof path, "%s/curve.csv", root);
    tu_write(path, "items,loss,ms per step,rss\n"
                   "64093,full,679.5,670\n256372,full,2700,1400\n64093,\"sampled, shared\",60,300\n"
                   "256372,\"sampled, shared\",62,\n");
    char *out, *errout;
    snprintf(args, sizeof args, "plot '%s' --x items --y 'ms per step,rss' --series loss --title 'Scale curve'", path);
    ck_assert_msg(tu_tema(args, &out, &errout) == 0, "%s", errout);
    free(out);
    free(errout);
    check_plot_files(root, "curve");
    snprintf(path, sizeof path, "%s/curve.svg", root);
    char *text = svg_text(path);
    ck_assert_msg(!strncmp(text, "Scale curve\n", 12) && strstr(text, "\nms per step\n") && strstr(text, "\nrss\n"),
                  "%s", text);
    ck_assert_msg(count(text, "\nfull\n") == 1 && count(text, "\nsampled, shared\n") == 1, "%s", text);
    free(text);

    snprintf(path, sizeof path, "%s/bad.csv", root);
    tu_write(path, "items,ms\n1,2\n3,fast\n");
    snprintf(args, sizeof args, "plot '%s' --x items --y ms", path);
    ck_assert_int_eq(tu_tema(args, &out, &errout), 1);
    ck_assert_msg(strstr(errout, "bad.csv:3: column 'ms' holds 'fast', not a number"), "%s", errout);
    free(out);
    free(errout);
    snprintf(args, sizeof args, "plot '%s' --x items --y seconds", path);
    ck_assert_int_eq(tu_tema(args, &out, &errout), 1);
    ck_assert_msg(strstr(errout, "bad.csv:1: no column 'seconds'; hint: the header has 'items', 'ms'"), "%s", errout);
    free(out);
    free(errout);
    snprintf(args, sizeof args, "plot '%s' --x items", path);
    ck_assert_int_eq(tu_tema(args, &out, &errout), 2);
    free(out);
    free(errout);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, markdown_values_bold_and_marks);
    tcase_add_test(tc, csv_p_values_match_scipy);
    tcase_add_test(tc, latex_booktabs);
    tcase_add_test(tc, latex_without_siunitx);
    tcase_add_test(tc, latex_compiles_in_a_two_column_paper);
    tcase_add_test(tc, timing_table);
    tcase_add_test(tc, plots_written);
    tcase_add_test(tc, chart_notes_missing_driver_and_stale_files);
    tcase_add_test(tc, heatmap_of_two_axis_grid);
    tcase_add_test(tc, html_page_renders_in_chromium);
    tcase_add_test(tc, bad_report_block_is_located);
    tcase_add_test(tc, check_and_run_refuse_a_bad_report_block_first);
    tcase_add_test(tc, default_table_without_report_block);
    tcase_add_test(tc, report_follows_the_manifest_of_a_real_grid);
    tcase_add_test(tc, plot_command_draws_a_csv);
    tcase_add_test(tc, table_without_finished_runs_is_empty_not_an_error);
    tcase_add_test(tc, cells_with_one_more_encoder_get_their_own_labels);
    tcase_add_test(tc, seeds_at_other_thread_counts_stay_one_cell);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
