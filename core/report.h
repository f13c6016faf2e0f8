/* core/report.h - `tema report`: the tables, plots and HTML page of an experiment,
 * regenerated from its run folders alone (core-internal).
 *
 * Which runs: every finished run (DONE) under RESULTS/<name>/, where <name> is the
 * experiment file's `name:`. When the experiment expands into a manifest (core/grid.h;
 * this needs the plugins and the dataset path to be resolvable here), only the runs of the
 * manifest count, so runs of an earlier version of the grid are left out, and unfinished
 * entries are listed as pending; otherwise (or with all_runs) every finished run folder does.
 *
 * The `report:` block of the experiment file (all keys optional):
 *
 *   report:
 *     curves: true              # training curves per cell (loss, valid MRR per epoch, a line per seed)
 *     timing: true              # the timing and memory table
 *     latex:                    # how every table's .tex is set (timing.tex too); a table's own
 *                               # latex: overrides key by key
 *       float: table            # table (one column, default) | table* (spans both columns of a
 *                               # two-column paper)
 *       size: small             # a type size for the tabular: tiny, scriptsize, footnotesize,
 *                               # small, normalsize; default none (the document's)
 *       siunitx: true           # numbers in siunitx \tablenum boxes, aligned on the decimal point
 *                               # (default; needs \usepackage{siunitx}); false: plain text
 *       fit: false              # true: a tabular wider than the line is scaled down to it
 *                               # (graphicx's \resizebox; never up)
 *     tables:
 *       - name: table2          # file stem and HTML anchor: letters, digits, '-', '_', '.'
 *         title: "Food-Kitchen (%)"          # caption; default: the name
 *         rows: model.attention.plugin       # the row axis (see axes below)
 *         row_title: Model                   # header of the label column
 *         columns: [domain]                  # column axes, outermost first; metrics innermost
 *         domains: [X, Y]                    # which domains (default both)
 *         metrics: [mrr, ndcg@5, ndcg@10]    # default: the runs' eval.metrics
 *         rule: optimistic                   # optimistic (C2DSR, default) | pessimistic | mid
 *         split: test                        # test (default) | valid
 *         baseline: SASRec                   # a row (its label or its value): marks on the others
 *         where: {dataset.max_len: 15}       # only runs with these values (a list = any of them)
 *         percent: false                     # values x 100 (paper style); digits default 2, else 4
 *         digits: 4
 *         alpha: 0.05                        # significance level of the marks
 *         heatmap: mrr                       # metric of the heatmap, or false; default: the first
 *                                            # metric, drawn when rows and columns are one key each
 *         bars: true                         # bar chart with error bars, a panel per metric
 *         latex: {float: table*}             # this table's LaTeX (keys as report.latex)
 *
 * An axis (rows, or one entry of columns) is one of:
 *   KEY                        a key path of the resolved config (config.json of the runs), e.g.
 *                              model.attention.lambda_1 or model.encoders.0.dim; one row per value
 *                              found in the runs (grid order when the manifest is known, else
 *                              sorted, numbers numerically). Values compare as numbers where both
 *                              are (0.20 == 0.2). A plugin sub-config (model.attention) is labelled
 *                              by its plugin name and the options that tell two values of the same
 *                              plugin apart ("single blocks=2");
 *   {key: KEY, labels: {VALUE: LABEL, ...}}   the same with display labels; labelled values
 *                              come first, in the order of `labels`;
 *   domain                     (columns only) the target domain X / Y, with optional
 *                              {key: domain, labels: {X: Food, Y: Kitchen}};
 *   [{label: L, where: {KEY: VALUE, ...}}, ...]   explicit entries (e.g. the rows of an
 *                              ablation that differ in several keys), in the given order;
 *                              `KEY: null` matches the runs that lack KEY (model.encoders.2: null).
 * rows may also be a list of axes (one row per combination found in the runs). When
 * `domain` is not among the columns it is added as the innermost column axis.
 *
 * A cell holds the runs that match its row and column (and `where`); they should differ only
 * in train.seed (a warning names the first other key that differs). It shows mean +- sample
 * std over those runs of final.json's SPLIT.DOMAIN.RULE.METRIC. For each row other than the
 * baseline, three two-sided tests compare the cell with the baseline's cell in the same
 * column (runs paired by train.seed):
 *   *  per-user paired t-test on the metric of each test case (ranks.tsv, paired by user id
 *      and seed, pooled over the seeds both cells ran);
 *   †  Wilcoxon signed-rank test on the same pairs (core/stats.h, continuity corrected);
 *   ‡  run-level paired t-test on the per-seed metric values (needs >= 2 common seeds).
 * A mark means p < alpha. The per-user tests need split: test (ranks.tsv is test only).
 * Best value per column is bold; the second best is underlined in LaTeX and HTML and
 * italic in Markdown (only with three or more rows); best is decided on the printed values.
 * In LaTeX with siunitx a cell is \mbox{\tablenum{26.62}${}\pm{}$\tablenum{0.93}} (bold:
 * \bfseries, which siunitx's detect-weight carries into the boxes; second: \underline), the
 * formats set by a \sisetup local to the float; the marks stand in a column of their own
 * after each value, so they never push a number out of line.
 * Without a report: block (or without tables) there is one table named `results` over the
 * grid's keys (without a manifest: the config keys in which the runs differ); with two such
 * keys they become rows x columns, which also draws the heatmap.
 *
 * Files, written atomically into OUT (default RESULTS/<name>/report/):
 *   <table>.md / .tex / .csv   the table (CSV: one line per cell and metric with the raw values,
 *                              never scaled by percent, std, seeds, the three p-values, the number
 *                              of user and seed pairs, the marks and best/second)
 *   timing.md / .tex / .csv    seconds per epoch, epochs run / early stops, best epoch,
 *                              total time, peak memory, backend, threads per cell
 *   report.md                  everything printed to stdout
 *   plots/<table>-bars.*       a table's bar chart: a panel per metric (MRR and HR@10 never
 *                              share an axis), the columns as groups, a bar per row with its std
 *   plots/<table>-heatmap-<domain>.*   the heatmap of a rows x columns table, per domain
 *   plots/curves-<cell>.*      the training curves of a cell, titled by its grid values and
 *                              named by them: <cell> is the cell's label ("extractor=bert,
 *                              tagger=lexical") in lower-case letters and digits, every other
 *                              run of characters one '-' (curves-extractor-bert-tagger-lexical);
 *                              a clash gets -2, -3, ...
 *                              Each chart as .svg, .png (200 dpi) and .pdf (fonts embedded),
 *                              drawn with PLplot (core/plot.h); a format whose PLplot driver is
 *                              missing is left out with a note, and chart files in plots/ that
 *                              the report did not write (an earlier version's names) are named
 *                              in a note, never deleted
 *   report.html                with --html: one self-contained page (tables, plots as data:
 *                              URIs, the resolved configs, links between them)
 */
#ifndef TEMA_CORE_REPORT_H
#define TEMA_CORE_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#include "tema/status.h"

enum { TEMA_REPORT_MD = 1, TEMA_REPORT_LATEX = 2, TEMA_REPORT_CSV = 4, TEMA_REPORT_ALL = 7 };

typedef struct tema_report_opts {
    const char *results_dir;  /* NULL: "results" */
    const char *out_dir;      /* NULL: RESULTS/<name>/report */
    unsigned formats;         /* TEMA_REPORT_* bits for the per-table files; 0: all */
    bool html;                /* also write report.html */
    bool no_plots;            /* skip the PLplot charts */
    bool all_runs;            /* every finished run folder, even when a manifest is known */
    const char *const *overrides; /* `--set key=value` of the runs (as given to tema run); borrowed */
    int n_overrides;
    FILE *out;                /* the Markdown of every table; NULL: none */
    FILE *diag;               /* notes and warnings; NULL: none */
} tema_report_opts;

/* Regenerate every table and chart of the experiment file `exp_path` from its run folders.
 * Errors name the experiment file's line for a bad report: block and end with a hint. */
tema_status tema_report(const char *exp_path, const tema_report_opts *opts, tema_err *err);

/* `tema report EXP.yaml [--format md|latex|csv|all] [--out DIR] [--results DIR] [--html]
 *  [--no-plots] [--all-runs] [--set key=value]...`: argv holds the arguments after "report"; returns the exit
 * status (0 ok, 1 error, 2 usage). */
int tema_report_main(int argc, char **argv);

/* The experiment file's report: block checked as `tema report` will read it (keys, axes, metrics,
 * formats; located errors), without runs: what `tema check` and `tema run` do first, so a typo
 * shows before the training, not after. */
tema_status tema_report_check(const char *exp_path, tema_err *err);

#endif
