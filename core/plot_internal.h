/* core/plot_internal.h - what the chart kinds (plot_charts.c) share with the drawing
 * machinery (plot.c): the page in points, text, ticks, axes and legends (core-internal).
 *
 * Everything here runs in the forked child that draws one file (see plot.h), so the few
 * globals (the device scale) are the child's own. Coordinates are points on the page,
 * y up from the bottom edge, whatever the device: plt_page() makes PLplot's world window
 * the page in points, and plt_box() maps a data window onto a rectangle of the page.
 */
#ifndef TEMA_CORE_PLOT_INTERNAL_H
#define TEMA_CORE_PLOT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "plot.h"

/* cmap0 indices: background, text and spines, empty heatmap cells, grid lines, then the
 * series (matplotlib's tab10). */
enum { COL_BG, COL_FG, COL_EMPTY, COL_GRID, COL_SERIES };
#define N_SERIES_COLOURS 10

/* Type sizes (pt) and line widths (pt), after matplotlib's paper context. */
#define PT_TITLE 10.0
#define PT_LABEL 9.0
#define PT_TICK 8.0
#define PT_LEGEND 8.0
#define LW_SPINE 0.8
#define LW_LINE 1.5
#define TICK_LEN 3.5

typedef struct plt_page_size {
    double w, h;
} plt_page_size;

/* The draw function of a chart kind, and the size of its page in points. */
typedef void (*plt_draw_fn)(const void *args, const plt_page_size *page);
typedef plt_page_size (*plt_size_fn)(const void *args);

/* ---- the chart kinds (plot_charts.c), called in the child ---- */

typedef struct plt_lines_args {
    const char *title;
    const tema_plot_panel *panels;
    int n_panels;
} plt_lines_args;

plt_page_size plt_size_lines(const void *args);   /* plt_lines_args */
void plt_draw_lines(const void *args, const plt_page_size *pg);
plt_page_size plt_size_bars(const void *args);    /* tema_plot_bar_chart */
void plt_draw_bars(const void *args, const plt_page_size *pg);
plt_page_size plt_size_heatmap(const void *args); /* tema_plot_heatmap_chart */
void plt_draw_heatmap(const void *args, const plt_page_size *pg);

/* ---- the machinery (plot.c), in the child ---- */

/* Leaves the child on a failure of its own (out of memory). */
_Noreturn void plt_die(void);
/* s with PLplot's escape character doubled; malloc'ed, never freed (the child exits). */
char *plt_esc(const char *s);
/* Estimated width in points of s set at pt (DejaVu Sans, the font the cairo drivers pick). */
double plt_text_width(const char *s, double pt);
/* The same for the first n bytes of s. */
double plt_text_width_n(const char *s, size_t n, double pt);
/* Text at a point of the page (plt_page current): just 0 left, 0.5 centred, 1 right; y is the
 * middle of the capitals. vertical: rotated to read upwards. */
void plt_text(double x, double y, double just, double pt, bool vertical, const char *s);
void plt_line_width(double pt);
/* Diameter of the dots on a line (points). */
#define DOT 2.8
/* The world window = the page in points (for text, legends, ticks). */
void plt_page(const plt_page_size *pg);
/* A straight line between two points of the page. */
void plt_segment(double x0, double y0, double x1, double y1);
/* s wrapped at spaces into at most max_lines lines no wider than max_w at pt (a line still
 * too wide ends in "..."); returns the number of lines. lines[i] are malloc'ed. */
int plt_wrap(const char *s, double pt, double max_w, char **lines, int max_lines);
/* How many lines plt_wrap would need for all of s (1000 when a word alone is too wide). */
int plt_wrap_count(const char *s, double pt, double max_w);
/* The lines of plt_wrap centred at x, one below the other from y_top down (1.3 pt of
 * leading per pt); returns the height they take. */
double plt_text_block(double x, double y_top, double pt, char **lines, int n);

/* Tick positions: multiples of step from first, n of them, printed with `decimals`. */
typedef struct plt_ticks {
    double step, first;
    int n, decimals;
} plt_ticks;

/* Round ticks (1, 2, 2.5, 5 x 10^k) over [lo, hi], at most max_n, whole numbers only when
 * integer. */
void plt_nice_ticks(double lo, double hi, int max_n, bool integer, plt_ticks *t);
/* The widest tick label of t in points at PT_TICK. */
double plt_ticks_width(const plt_ticks *t);

/* A data rectangle: its place on the page (points) and its data window. */
typedef struct plt_box {
    double x0, y0, x1, y1;
    double xlo, xhi, ylo, yhi;
} plt_box;

/* Makes the box's data window current (PLplot clips to it). */
void plt_box_begin(const plt_page_size *pg, const plt_box *b);
/* Dots of diameter d at the data points (x[i], y[i]) of the box (in the current colour). */
void plt_dots(const plt_page_size *pg, const plt_box *b, const double *x, const double *y, int n, double d);
/* Light grid lines behind the data at the ticks given (NULL: none on that axis). */
void plt_grid(const plt_page_size *pg, const plt_box *b, const plt_ticks *xt, const plt_ticks *yt);
/* The frame, outward ticks with labels on the left and bottom (xt NULL: no x ticks), and the
 * axis labels; ends with the page window current. */
void plt_axes(const plt_page_size *pg, const plt_box *b, const plt_ticks *xt, const plt_ticks *yt, const char *xlabel,
              const char *ylabel);
/* Space the axes of plt_axes take left of a box with these y ticks and a y label. */
double plt_left_margin(const plt_ticks *yt, bool ylabel);

/* How a legend shows its entries: a colour box (bars), a line, or a line with a dot. */
typedef enum plt_legend_kind { LEGEND_BOX, LEGEND_LINE, LEGEND_LINE_DOT } plt_legend_kind;

/* A legend of n entries in as few rows as fit max_w, centred at x with its top at y_top;
 * only measured when draw is false. Entry i has colour COL_SERIES + i. Returns its height. */
double plt_legend(const plt_page_size *pg, double x, double y_top, double max_w, const char *const *labels, int n,
                  plt_legend_kind kind, bool draw);

#endif
