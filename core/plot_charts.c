/* core/plot_charts.c - the three chart kinds of the report: line panels, bar panels and a
 * heatmap, laid out in points (plot_internal.h) and drawn in the child of plot.c.
 *
 * Layout is computed twice, once for the page size and once to draw; both come from the
 * same functions, so they agree.
 */
#include <math.h>
#include <plplot.h>
#include <stdlib.h>
#include <string.h>

#include "plot_internal.h"

#define PAD 6.0              /* page edge to content, points */
#define MAX_TITLE_LINES 3
#define TITLE_LEAD (PT_TITLE * 1.3)
#define PANEL_TITLE_H (PT_LABEL * 1.5)
#define BOX_H 110.0          /* data rectangle of a panel */
/* below a box: ticks, their labels, the axis label */
#define X_AXIS_H (TICK_LEN + 2.5 + PT_TICK + 4 + PT_LABEL + 2)

static int title_lines(const char *title, double width, char **lines)
{
    return title && *title ? plt_wrap(title, PT_TITLE, width - 2 * PAD, lines, MAX_TITLE_LINES) : 0;
}

static void finite_range(const double *v, int n, double *lo, double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) {
            *lo = fmin(*lo, v[i]);
            *hi = fmax(*hi, v[i]);
        }
}

/* matplotlib's margins: 5% of the span on each side; a flat range gets a visible span */
static void pad_range(double *lo, double *hi, double frac)
{
    if (!isfinite(*lo) || !isfinite(*hi)) {
        *lo = 0;
        *hi = 1;
    }
    double span = *hi - *lo;
    if (span <= 0)
        span = fabs(*hi) > 0 ? fabs(*hi) * 0.2 : 1;
    *lo -= span * frac;
    *hi += span * frac;
}

/* ---- line panels ------------------------------------------------------------------- */

#define LINE_PANEL_W 155.0   /* a panel with its margins: three fill 6.5 in, a two-column text width */
#define LINE_PANEL_RIGHT 10.0

static int n_series_max(const plt_lines_args *a)
{
    int n = 0;
    for (int p = 0; p < a->n_panels; p++)
        n = a->panels[p].n_series > n ? a->panels[p].n_series : n;
    return n;
}

/* The legend's labels: series s named by the first panel that has it. */
static const char **series_labels(const plt_lines_args *a, int n)
{
    const char **labels = calloc((size_t)n + 1, sizeof *labels);
    if (!labels)
        plt_die();
    for (int s = 0; s < n; s++)
        for (int p = 0; p < a->n_panels && !labels[s]; p++)
            if (s < a->panels[p].n_series)
                labels[s] = a->panels[p].series[s].label ? a->panels[p].series[s].label : "";
    return labels;
}

/* Dots show where the points (the evaluations) are; past 30 a line they would only blot it. */
static bool dotted_lines(const plt_lines_args *a)
{
    for (int p = 0; p < a->n_panels; p++)
        for (int s = 0; s < a->panels[p].n_series; s++)
            if (a->panels[p].series[s].n > 30)
                return false;
    return true;
}

typedef struct line_layout {
    char *title[MAX_TITLE_LINES];
    int n_title;
    double legend_h, box_top, box_bottom;
    plt_page_size page;
} line_layout;

static void layout_lines(const plt_lines_args *a, line_layout *L)
{
    double w = LINE_PANEL_W * a->n_panels;
    L->n_title = title_lines(a->title, w, L->title);
    int ns = n_series_max(a);
    L->legend_h = plt_legend(NULL, 0, 0, w - 2 * PAD, series_labels(a, ns), ns, LEGEND_LINE, false);
    double h = PAD + L->n_title * TITLE_LEAD + 4 + PANEL_TITLE_H + BOX_H + X_AXIS_H + 6 + L->legend_h + PAD;
    L->box_top = h - PAD - L->n_title * TITLE_LEAD - 4 - PANEL_TITLE_H;
    L->box_bottom = L->box_top - BOX_H;
    L->page = (plt_page_size){w, h};
}

plt_page_size plt_size_lines(const void *args)
{
    line_layout L;
    layout_lines(args, &L);
    return L.page;
}

/* The finite points of a series (PLplot draws no NaN); returns how many. */
static int finite_points(const tema_plot_series *se, PLFLT **x, PLFLT **y)
{
    *x = malloc(((size_t)se->n + 1) * sizeof **x);
    *y = malloc(((size_t)se->n + 1) * sizeof **y);
    if (!*x || !*y)
        plt_die();
    int m = 0;
    for (int k = 0; k < se->n; k++)
        if (isfinite(se->x[k]) && isfinite(se->y[k])) {
            (*x)[m] = se->x[k];
            (*y)[m++] = se->y[k];
        }
    return m;
}

/* The panel's data window: its points, 5% margins; the y ticks. */
static void line_window(const tema_plot_panel *pan, plt_box *b, plt_ticks *yt)
{
    b->xlo = b->ylo = INFINITY;
    b->xhi = b->yhi = -INFINITY;
    for (int s = 0; s < pan->n_series; s++) {
        const tema_plot_series *se = &pan->series[s];
        for (int k = 0; k < se->n; k++)
            if (isfinite(se->x[k]) && isfinite(se->y[k])) {
                b->xlo = fmin(b->xlo, se->x[k]);
                b->xhi = fmax(b->xhi, se->x[k]);
                b->ylo = fmin(b->ylo, se->y[k]);
                b->yhi = fmax(b->yhi, se->y[k]);
            }
    }
    pad_range(&b->xlo, &b->xhi, 0.05);
    pad_range(&b->ylo, &b->yhi, 0.08);
    plt_nice_ticks(b->ylo, b->yhi, 6, false, yt);
}

/* x ticks no closer than their labels are wide (plus a gap): labels never collide. */
static void x_ticks(const plt_box *b, bool integer, plt_ticks *xt)
{
    for (int max_n = 6;; max_n--) {
        plt_nice_ticks(b->xlo, b->xhi, max_n, integer, xt);
        if (max_n <= 2 || (b->x1 - b->x0) / xt->n >= plt_ticks_width(xt) + 6)
            return;
    }
}

static void draw_line_panel(const plt_page_size *pg, const tema_plot_panel *pan, double x, const line_layout *L,
                            bool dots)
{
    plt_box b;
    plt_ticks xt, yt;
    line_window(pan, &b, &yt);
    b.x0 = x + plt_left_margin(&yt, pan->ylabel && *pan->ylabel);
    b.x1 = x + LINE_PANEL_W - LINE_PANEL_RIGHT;
    b.y0 = L->box_bottom;
    b.y1 = L->box_top;
    x_ticks(&b, pan->integer_x, &xt);
    plt_grid(pg, &b, &xt, &yt);
    for (int s = 0; s < pan->n_series; s++) {
        PLFLT *px, *py;
        int m = finite_points(&pan->series[s], &px, &py);
        plt_box_begin(pg, &b);
        plcol0(COL_SERIES + s % N_SERIES_COLOURS);
        plt_line_width(LW_LINE);
        if (m > 1)
            plline(m, px, py);
        if (m == 1 || dots)
            plt_dots(pg, &b, px, py, m, DOT);
    }
    plt_axes(pg, &b, &xt, &yt, pan->xlabel, pan->ylabel);
    char *lines[1];
    if (plt_wrap(pan->title, PT_LABEL, b.x1 - b.x0 + 20, lines, 1))
        plt_text((b.x0 + b.x1) / 2, b.y1 + PANEL_TITLE_H / 2, 0.5, PT_LABEL, false, lines[0]);
}

void plt_draw_lines(const void *args, const plt_page_size *pg)
{
    const plt_lines_args *a = args;
    line_layout L;
    layout_lines(a, &L);
    plt_page(pg);
    plcol0(COL_FG);
    plt_text_block(pg->w / 2, pg->h - PAD, PT_TITLE, L.title, L.n_title);
    for (int p = 0; p < a->n_panels; p++)
        draw_line_panel(pg, &a->panels[p], p * LINE_PANEL_W, &L, dotted_lines(a));
    int ns = n_series_max(a);
    plt_legend(pg, pg->w / 2, PAD + L.legend_h, pg->w - 2 * PAD, series_labels(a, ns), ns,
               dotted_lines(a) ? LEGEND_LINE_DOT : LEGEND_LINE, true);
}

/* ---- bar panels -------------------------------------------------------------------- */

#define BAR_W 9.0            /* one bar, points */
#define BARS_PER_ROW 3
#define MAX_FIGURE_W 469.0   /* 6.5 in: the text width of a two-column article (IEEE, ACM: 7 in) */
#define MAX_GROUP_LINES 2

typedef struct bar_layout {
    char *title[MAX_TITLE_LINES];
    int n_title, cols, rows, group_lines;
    double slot, box_w, left, panel_w, row_h, legend_h, top;
    plt_page_size page;
} bar_layout;

/* The y window of panel p: from 0 (or the lowest bar) to the highest error bar, plus 5%. */
static void bar_window(const tema_plot_bar_chart *c, int p, plt_box *b, plt_ticks *yt)
{
    const tema_plot_bar_panel *pan = &c->panels[p];
    double lo = 0, hi = 0;
    for (int i = 0; i < c->n_groups * c->n_bars; i++) {
        double m = pan->mean[i], e = pan->err && isfinite(pan->err[i]) ? pan->err[i] : 0;
        if (!isfinite(m))
            continue;
        lo = fmin(lo, m - e);
        hi = fmax(hi, m + e);
    }
    if (hi <= lo)
        hi = lo + 1;
    /* bars stand on zero: the margin goes only where there is no bar end */
    double span = hi - lo;
    b->ylo = lo < 0 ? lo - span * 0.05 : 0;
    b->yhi = hi + span * 0.05;
    b->xlo = 0;
    b->xhi = c->n_groups;
    plt_nice_ticks(b->ylo, b->yhi, 6, false, yt);
}

static void layout_bars(const tema_plot_bar_chart *c, bar_layout *L)
{
    /* the narrowest group that fits its bars and its label in two lines (90 pt at most) */
    double left = 0, slot = c->n_bars * BAR_W / 0.8;
    int lines = 1;
    for (;; slot += 2) {
        lines = 1;
        for (int g = 0; g < c->n_groups; g++) {
            int n = plt_wrap_count(c->group_labels[g], PT_TICK, slot - 4);
            lines = n > lines ? n : lines;
        }
        if (lines <= MAX_GROUP_LINES || slot >= 90)
            break;
    }
    L->slot = slot;
    L->group_lines = lines < MAX_GROUP_LINES ? lines : MAX_GROUP_LINES;
    L->box_w = fmax(105, c->n_groups * L->slot);
    for (int p = 0; p < c->n_panels; p++) {
        plt_box b;
        plt_ticks yt;
        bar_window(c, p, &b, &yt);
        left = fmax(left, plt_left_margin(&yt, true));
    }
    L->left = left;
    L->panel_w = left + L->box_w + 8;
    /* up to three panels a row, as many as the width of a paper's text takes */
    L->cols = c->n_panels < BARS_PER_ROW ? c->n_panels : BARS_PER_ROW;
    while (L->cols > 1 && L->cols * L->panel_w + 2 * PAD > MAX_FIGURE_W)
        L->cols--;
    L->rows = (c->n_panels + L->cols - 1) / L->cols;
    double w = fmax(L->cols * L->panel_w + 2 * PAD, 200);
    L->n_title = title_lines(c->title, w, L->title);
    L->legend_h = plt_legend(NULL, 0, 0, w - 2 * PAD, c->bar_labels, c->n_bars, LEGEND_BOX, false);
    L->row_h = PANEL_TITLE_H + BOX_H + TICK_LEN + 2.5 + L->group_lines * PT_TICK * 1.25 + 5;
    double h = PAD + L->n_title * TITLE_LEAD + 4 + L->rows * L->row_h + 4 + L->legend_h + PAD;
    L->top = h - PAD - L->n_title * TITLE_LEAD - 4;
    L->page = (plt_page_size){w, h};
}

plt_page_size plt_size_bars(const void *args)
{
    bar_layout L;
    layout_bars(args, &L);
    return L.page;
}

/* The bars of one panel with their error bars (capped, as matplotlib's capsize). */
static void draw_bar_data(const tema_plot_bar_chart *c, const tema_plot_bar_panel *pan)
{
    double w = 0.8 / c->n_bars;
    for (int g = 0; g < c->n_groups; g++)
        for (int b = 0; b < c->n_bars; b++) {
            double m = pan->mean[g * c->n_bars + b];
            if (!isfinite(m))
                continue;
            PLFLT x0 = g + 0.1 + b * w, x1 = x0 + w * 0.92;
            PLFLT x[4] = {x0, x1, x1, x0}, y[4] = {0, 0, m, m};
            plcol0(COL_SERIES + b % N_SERIES_COLOURS);
            plfill(4, x, y);
            double e = pan->err ? pan->err[g * c->n_bars + b] : NAN;
            if (!(isfinite(e) && e > 0))
                continue;
            double xc = (x0 + x1) / 2, cap = (x1 - x0) * 0.25;
            plcol0(COL_FG);
            plt_line_width(0.9);
            plt_segment(xc, m - e, xc, m + e);
            plt_segment(xc - cap, m - e, xc + cap, m - e);
            plt_segment(xc - cap, m + e, xc + cap, m + e);
        }
}

static void draw_bar_panel(const plt_page_size *pg, const tema_plot_bar_chart *c, int p, const bar_layout *L)
{
    const tema_plot_bar_panel *pan = &c->panels[p];
    int row = p / L->cols, col = p % L->cols;
    /* a short last row is centred */
    int in_row = row == L->rows - 1 ? c->n_panels - row * L->cols : L->cols;
    double x = (pg->w - in_row * L->panel_w) / 2 + col * L->panel_w;
    plt_box b;
    plt_ticks yt;
    bar_window(c, p, &b, &yt);
    b.x0 = x + L->left;
    b.x1 = b.x0 + L->box_w;
    b.y1 = L->top - row * L->row_h - PANEL_TITLE_H;
    b.y0 = b.y1 - BOX_H;
    plt_grid(pg, &b, NULL, &yt);
    draw_bar_data(c, pan);
    plt_axes(pg, &b, NULL, &yt, NULL, pan->ylabel);
    plcol0(COL_FG);
    plt_text((b.x0 + b.x1) / 2, b.y1 + PANEL_TITLE_H / 2, 0.5, PT_LABEL, false, pan->title);
    double slot = (b.x1 - b.x0) / c->n_groups;
    for (int g = 0; g < c->n_groups; g++) {
        char *lines[MAX_GROUP_LINES];
        int n = plt_wrap(c->group_labels[g], PT_TICK, slot - 2, lines, L->group_lines);
        double xc = b.x0 + (g + 0.5) * slot;
        plt_line_width(LW_SPINE);
        plt_segment(xc, b.y0, xc, b.y0 - TICK_LEN);
        for (int i = 0; i < n; i++)
            plt_text(xc, b.y0 - TICK_LEN - 2.5 - PT_TICK * 0.36 - i * PT_TICK * 1.25, 0.5, PT_TICK, false,
                     lines[i]);
    }
}

void plt_draw_bars(const void *args, const plt_page_size *pg)
{
    const tema_plot_bar_chart *c = args;
    bar_layout L;
    layout_bars(c, &L);
    plt_page(pg);
    plcol0(COL_FG);
    plt_text_block(pg->w / 2, pg->h - PAD, PT_TITLE, L.title, L.n_title);
    for (int p = 0; p < c->n_panels; p++)
        draw_bar_panel(pg, c, p, &L);
    plt_legend(pg, pg->w / 2, PAD + L.legend_h, pg->w - 2 * PAD, c->bar_labels, c->n_bars, LEGEND_BOX, true);
}

/* ---- heatmap ----------------------------------------------------------------------- */

#define CELL_H 22.0
#define MAX_ROW_LABEL 130.0

typedef struct heat_layout {
    char *title[MAX_TITLE_LINES];
    int n_title;
    double cell_w, left, bottom, grid_top;
    plt_page_size page;
} heat_layout;

static void layout_heatmap(const tema_plot_heatmap_chart *c, heat_layout *L)
{
    double widest_col = 0, widest_row = 0, widest_value = 0;
    for (int j = 0; j < c->n_cols; j++)
        widest_col = fmax(widest_col, plt_text_width(c->col_labels[j] ? c->col_labels[j] : "", PT_TICK));
    for (int i = 0; i < c->n_rows; i++)
        widest_row = fmax(widest_row, plt_text_width(c->row_labels[i] ? c->row_labels[i] : "", PT_TICK));
    for (int k = 0; k < c->n_rows * c->n_cols; k++)
        if (isfinite(c->values[k])) {
            char s[64];
            snprintf(s, sizeof s, "%.*f", c->digits, c->values[k]);
            widest_value = fmax(widest_value, plt_text_width(s, PT_TICK));
        }
    L->cell_w = fmax(fmax(40, widest_col + 8), widest_value + 10);
    L->left = PAD + (c->ylabel && *c->ylabel ? PT_LABEL + 6 : 0) + fmin(widest_row, MAX_ROW_LABEL) + 6;
    L->bottom = PAD + (c->xlabel && *c->xlabel ? PT_LABEL + 6 : 0) + PT_TICK + 6;
    double w = fmax(L->left + c->n_cols * L->cell_w + PAD + 6, 220);
    L->n_title = title_lines(c->title, w, L->title);
    double h = L->bottom + c->n_rows * CELL_H + 6 + L->n_title * TITLE_LEAD + PAD;
    L->grid_top = L->bottom + c->n_rows * CELL_H;
    L->page = (plt_page_size){w, h};
}

plt_page_size plt_size_heatmap(const void *args)
{
    heat_layout L;
    layout_heatmap(args, &L);
    return L.page;
}

static void draw_heat_cells(const plt_page_size *pg, const tema_plot_heatmap_chart *c, const heat_layout *L)
{
    double lo, hi;
    finite_range(c->values, c->n_rows * c->n_cols, &lo, &hi);
    plt_page(pg);
    for (int r = 0; r < c->n_rows; r++)
        for (int j = 0; j < c->n_cols; j++) {
            double v = c->values[r * c->n_cols + j], frac = hi > lo ? (v - lo) / (hi - lo) : 0.5;
            double x0 = L->left + j * L->cell_w, y1 = L->grid_top - r * CELL_H, y0 = y1 - CELL_H;
            PLFLT x[4] = {x0, x0 + L->cell_w, x0 + L->cell_w, x0}, y[4] = {y0, y0, y1, y1};
            if (isfinite(v))
                plcol1(frac);
            else
                plcol0(COL_EMPTY);
            plfill(4, x, y);
            if (!isfinite(v))
                continue;
            char s[64];
            snprintf(s, sizeof s, "%.*f", c->digits, v);
            plcol0(frac > 0.55 ? COL_BG : COL_FG);
            plt_text(x0 + L->cell_w / 2, (y0 + y1) / 2, 0.5, PT_TICK, false, s);
        }
}

void plt_draw_heatmap(const void *args, const plt_page_size *pg)
{
    const tema_plot_heatmap_chart *c = args;
    heat_layout L;
    layout_heatmap(c, &L);
    draw_heat_cells(pg, c, &L);
    plcol0(COL_FG);
    plt_line_width(LW_SPINE);
    double x1 = L.left + c->n_cols * L.cell_w;
    plt_segment(L.left, L.bottom, x1, L.bottom);
    plt_segment(x1, L.bottom, x1, L.grid_top);
    plt_segment(x1, L.grid_top, L.left, L.grid_top);
    plt_segment(L.left, L.grid_top, L.left, L.bottom);
    for (int j = 0; j < c->n_cols; j++) {
        char *line[1];
        if (plt_wrap(c->col_labels[j], PT_TICK, L.cell_w - 2, line, 1))
            plt_text(L.left + (j + 0.5) * L.cell_w, L.bottom - 4 - PT_TICK * 0.36, 0.5, PT_TICK, false, line[0]);
    }
    for (int r = 0; r < c->n_rows; r++) {
        char *line[1];
        if (plt_wrap(c->row_labels[r], PT_TICK, MAX_ROW_LABEL, line, 1))
            plt_text(L.left - 5, L.grid_top - (r + 0.5) * CELL_H, 1, PT_TICK, false, line[0]);
    }
    if (c->xlabel && *c->xlabel)
        plt_text(L.left + c->n_cols * L.cell_w / 2, PAD + PT_LABEL * 0.4, 0.5, PT_LABEL, false, c->xlabel);
    char *yl[1];
    if (c->ylabel && *c->ylabel && plt_wrap(c->ylabel, PT_LABEL, fmax(L.grid_top - L.bottom, 40), yl, 1))
        plt_text(PAD + PT_LABEL * 0.4, (L.bottom + L.grid_top) / 2, 0.5, PT_LABEL, true, yl[0]);
    plt_text_block(pg->w / 2, pg->h - PAD, PT_TITLE, L.title, L.n_title);
}
