/* core/plot.h - the charts of `tema report`, drawn with PLplot into SVG and PNG
 * (core-internal).
 *
 * Each call writes <stem>.svg (PLplot's svg driver) and <stem>.png (pngcairo), each
 * atomically (a temporary file renamed into place). PLplot keeps global state and its
 * error path calls exit(), so every file is drawn in a forked child process: a PLplot
 * failure becomes a TEMA_EIO for that chart and never ends tema. Strings are borrowed for
 * the call. Labels may hold any text; PLplot's escape character '#' is escaped here.
 */
#ifndef TEMA_CORE_PLOT_H
#define TEMA_CORE_PLOT_H

#include "tema/status.h"

/* One line: n points (x[i], y[i]); points with a NaN y are left out. */
typedef struct tema_plot_series {
    const char *label;
    const double *x, *y;
    int n;
} tema_plot_series;

typedef struct tema_plot_panel {
    const char *title, *xlabel, *ylabel;
    const tema_plot_series *series;
    int n_series;
} tema_plot_panel;

/* Line charts side by side, one panel each, one colour per series with a legend. */
tema_status tema_plot_lines(const char *stem, const tema_plot_panel *panels, int n_panels, tema_err *err);

/* A heatmap of values[r * n_cols + c] (NaN = empty cell, drawn grey): row 0 at the top,
 * each cell coloured on a light-to-dark scale from the smallest to the largest value and
 * annotated with the value printed with `digits` decimals. */
tema_status tema_plot_heatmap(const char *stem, const char *title, const char *xlabel, const char *ylabel,
                              const char *const *row_labels, int n_rows, const char *const *col_labels, int n_cols,
                              const double *values, int digits, tema_err *err);

/* Grouped bars: n_groups groups along x, n_bars bars in each (one colour per bar label,
 * with a legend); mean[g * n_bars + b] is the bar height and err_std[...] the half-length of
 * its error bar (NaN or NULL = none). NaN means are left out. */
tema_status tema_plot_bars(const char *stem, const char *title, const char *ylabel, const char *const *group_labels,
                           int n_groups, const char *const *bar_labels, int n_bars, const double *mean,
                           const double *err_std, tema_err *err);

#endif
