/* core/plot.h - the charts of `tema report`, drawn with PLplot into SVG, PNG and PDF
 * (core-internal).
 *
 * Each call writes <stem>.svg (PLplot's svg driver), <stem>.png (pngcairo, 200 dpi) and
 * <stem>.pdf (pdfcairo; fonts embedded as TrueType subsets, as publishers ask), each
 * atomically (a temporary file renamed into place). PLplot keeps global state and its
 * error path calls exit(), so every file is drawn in a forked child process: a PLplot
 * failure costs that file and never ends tema. A format whose driver is missing (Debian:
 * plplot-driver-cairo gives PNG and PDF) is left out and said in out->missing; only a chart
 * of which no format could be written is an error.
 *
 * Charts are laid out in points for print: text 8 to 10 pt, about 2.15 in per panel, so a
 * figure of three panels fits the 6.5 in text width of a two-column paper (article; IEEE and
 * ACM give 7 in) at its natural size: \includegraphics without a width keeps the type size.
 * Matplotlib's defaults are the model: outward ticks on the left and bottom only, light grid
 * lines behind the data, at most six labelled ticks per axis and never closer than their
 * labels are wide (whole numbers where the axis counts, like epochs), legends outside the
 * data, the tab10 colours. Strings are borrowed for the call. Labels may hold any text;
 * PLplot's escape character '#' is escaped here.
 */
#ifndef TEMA_CORE_PLOT_H
#define TEMA_CORE_PLOT_H

#include <stdbool.h>

#include "tema/status.h"

enum { TEMA_PLOT_SVG = 1, TEMA_PLOT_PNG = 2, TEMA_PLOT_PDF = 4 };

/* What one call wrote. */
typedef struct tema_plot_out {
    unsigned written;   /* TEMA_PLOT_* of the files written */
    char missing[400];  /* why the other formats were not written; "" when none is missing */
} tema_plot_out;

/* One line: n points (x[i], y[i]); points with a NaN y are left out. */
typedef struct tema_plot_series {
    const char *label;
    const double *x, *y;
    int n;
} tema_plot_series;

/* integer_x: x counts something (epochs): ticks only at whole numbers. */
typedef struct tema_plot_panel {
    const char *title, *xlabel, *ylabel;
    const tema_plot_series *series;
    int n_series;
    bool integer_x;
} tema_plot_panel;

/* Line charts side by side under the figure's title, one panel each. Series s has one colour
 * in every panel and one entry in the legend below the panels (its label in the first panel
 * that has series s). */
tema_status tema_plot_lines(const char *stem, const char *title, const tema_plot_panel *panels, int n_panels,
                            tema_plot_out *out, tema_err *err);

/* One panel of a bar chart, its own y axis: mean[g * n_bars + b] is the height of bar b in
 * group g and err[...] the half-length of its error bar (NaN or NULL = none); NaN means are
 * left out. */
typedef struct tema_plot_bar_panel {
    const char *title, *ylabel;
    const double *mean, *err;
} tema_plot_bar_panel;

/* Grouped bars as small multiples: every panel has the same n_groups groups along x and
 * n_bars bars in each (one colour per bar label, one legend below the panels); up to three
 * panels a row. */
typedef struct tema_plot_bar_chart {
    const char *title;
    const char *const *group_labels;
    int n_groups;
    const char *const *bar_labels;
    int n_bars;
    const tema_plot_bar_panel *panels;
    int n_panels;
} tema_plot_bar_chart;

tema_status tema_plot_bars(const char *stem, const tema_plot_bar_chart *chart, tema_plot_out *out, tema_err *err);

/* A heatmap of values[r * n_cols + c] (NaN = empty cell, drawn grey): row 0 at the top,
 * each cell coloured on a light-to-dark scale from the smallest to the largest value and
 * annotated with the value printed with `digits` decimals. */
typedef struct tema_plot_heatmap_chart {
    const char *title, *xlabel, *ylabel;
    const char *const *row_labels;
    int n_rows;
    const char *const *col_labels;
    int n_cols;
    const double *values;
    int digits;
} tema_plot_heatmap_chart;

tema_status tema_plot_heatmap(const char *stem, const tema_plot_heatmap_chart *chart, tema_plot_out *out,
                              tema_err *err);

/* A CSV file as `tema plot` reads it (core/plot_cli.c): a header line, fields separated by
 * commas, optionally double-quoted (RFC 4180; "" is a quote inside quotes), blank lines
 * skipped, every row as wide as the header (at most PLOT_MAX_COLS columns). Row 0 is the
 * header. The table owns its cells (views into its copy of the file); tema_csv_free frees it,
 * also after a failed read. */
#define PLOT_MAX_COLS 64
typedef struct tema_csv {
    char *text;   /* the file, split in place */
    char **cells; /* [rows * PLOT_MAX_COLS] */
    int *line;    /* [rows] the file line each row starts on */
    int rows, cols;
} tema_csv;
/* Errors name the file and line (an unclosed quote, a row of another width, no header). */
tema_status tema_csv_read(const char *path, tema_csv *t, tema_err *err);
const char *tema_csv_cell(const tema_csv *t, int r, int c);
void tema_csv_free(tema_csv *t);

/* `tema plot CSV ...` (core/plot_cli.c): the command line's exit status. */
int tema_plot_cli(int argc, char **argv);

#endif
