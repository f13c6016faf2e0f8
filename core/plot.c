/* core/plot.c - report charts with PLplot (see plot.h). */
#include "plot.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <plplot.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* cmap0: 0 background, 1 text and axes, 2 empty heatmap cells, 3.. series (matplotlib's
 * tab10, readable in colour and distinct in greyscale order). */
#define COL_BG 0
#define COL_FG 1
#define COL_EMPTY 2
#define COL_SERIES 3
static const unsigned char palette[][3] = {
    {255, 255, 255}, {0, 0, 0},      {200, 200, 200}, {31, 119, 180},  {255, 127, 14},  {44, 160, 44},
    {214, 39, 40},   {148, 103, 189}, {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34},
    {23, 190, 207},
};
#define N_PALETTE ((int)(sizeof palette / sizeof palette[0]))
#define N_SERIES_COLOURS (N_PALETTE - COL_SERIES)

typedef void (*draw_fn)(const void *args);

/* ---- in the child process ---------------------------------------------------------- */

static int child_exit_handler(PLCHAR_VECTOR msg)
{
    fprintf(stderr, "tema: PLplot: %s\n", msg ? msg : "error");
    _exit(3);
    return 0;
}

/* '#' starts a PLplot escape sequence; "##" is a literal '#'. malloc'ed (the child exits
 * right after drawing, so nothing here is freed). */
static char *esc(const char *s)
{
    if (!s)
        s = "";
    size_t n = strlen(s) + 1;
    for (const char *p = s; *p; p++)
        n += *p == '#';
    char *o = malloc(n), *w = o;
    if (!o)
        _exit(4);
    for (const char *p = s; *p; p++) {
        *w++ = *p;
        if (*p == '#')
            *w++ = '#';
    }
    *w = '\0';
    return o;
}

static void setup_colours(void)
{
    plscmap0n(N_PALETTE);
    for (int i = 0; i < N_PALETTE; i++)
        plscol0(i, palette[i][0], palette[i][1], palette[i][2]);
    /* cmap1: light yellow -> teal -> dark blue (ColorBrewer YlGnBu), for heatmaps */
    PLFLT pos[] = {0, 0.5, 1}, r[] = {1.0, 0.255, 0.031}, g[] = {1.0, 0.714, 0.114}, b[] = {0.851, 0.769, 0.345};
    plscmap1l(1, 3, pos, r, g, b, NULL);
}

static void finite_range(const double *v, int n, double *lo, double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (!isfinite(v[i]))
            continue;
        if (v[i] < *lo)
            *lo = v[i];
        if (v[i] > *hi)
            *hi = v[i];
    }
}

static void pad_range(double *lo, double *hi, double frac)
{
    if (!isfinite(*lo) || !isfinite(*hi)) {
        *lo = 0;
        *hi = 1;
    }
    double span = *hi - *lo;
    if (span <= 0)
        span = fabs(*hi) > 0 ? fabs(*hi) * 0.1 : 1e-3;
    *lo -= span * frac;
    *hi += span * frac;
}

/* ---- line charts ---- */

typedef struct lines_args {
    const tema_plot_panel *panels;
    int n_panels;
} lines_args;

/* The panel's axis ranges over its finite points (y padded); returns the sum over series of
 * +1 (last point above the first) or -1, which places the legend. */
static int panel_ranges(const tema_plot_panel *pan, double *xlo_out, double *xhi_out, double *ylo_out,
                        double *yhi_out)
{
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    int rising = 0;
    for (int s = 0; s < pan->n_series; s++) {
        const tema_plot_series *se = &pan->series[s];
        double first = NAN, last = NAN;
        for (int k = 0; k < se->n; k++) {
            if (!isfinite(se->y[k]) || !isfinite(se->x[k]))
                continue;
            if (isnan(first))
                first = se->y[k];
            last = se->y[k];
            xlo = fmin(xlo, se->x[k]);
            xhi = fmax(xhi, se->x[k]);
            ylo = fmin(ylo, se->y[k]);
            yhi = fmax(yhi, se->y[k]);
        }
        rising += last > first ? 1 : -1;
    }
    if (!isfinite(xlo)) {
        xlo = 0;
        xhi = 1;
    }
    if (xhi <= xlo) {
        xlo -= 0.5;
        xhi += 0.5;
    }
    pad_range(&ylo, &yhi, 0.06);
    *xlo_out = xlo;
    *xhi_out = xhi;
    *ylo_out = ylo;
    *yhi_out = yhi;
    return rising;
}

/* The legend entries of a panel, one per series (pllegend's parallel arrays). */
typedef struct legend {
    PLINT *opt, *colours, *styles, *ink;
    PLFLT *widths;
    const char **text;
} legend;

/* Series s of a panel as a line through its finite points with a marker on each, and its
 * legend entry. */
static void draw_series(const tema_plot_series *se, int s, legend *leg)
{
    PLFLT *x = malloc(((size_t)se->n + 1) * sizeof *x), *y = malloc(((size_t)se->n + 1) * sizeof *y);
    if (!x || !y)
        _exit(4);
    int m = 0;
    for (int k = 0; k < se->n; k++)
        if (isfinite(se->y[k]) && isfinite(se->x[k])) {
            x[m] = se->x[k];
            y[m++] = se->y[k];
        }
    int colour = COL_SERIES + s % N_SERIES_COLOURS;
    plcol0(colour);
    plwidth(2);
    if (m > 1)
        plline(m, x, y);
    plpoin(m, x, y, 17);
    leg->opt[s] = PL_LEGEND_LINE;
    leg->colours[s] = colour;
    leg->ink[s] = COL_FG;
    leg->styles[s] = 1;
    leg->widths[s] = 2;
    leg->text[s] = esc(se->label);
}

static void draw_panel(const tema_plot_panel *pan)
{
    pladv(0);
    plschr(0, 0.85);
    double xlo, xhi, ylo, yhi;
    int rising = panel_ranges(pan, &xlo, &xhi, &ylo, &yhi);
    plvsta();
    plwind(xlo, xhi, ylo, yhi);
    plcol0(COL_FG);
    plwidth(1);
    plbox("bcnst", 0, 0, "bcnstvf", 0, 0);
    pllab(esc(pan->xlabel), esc(pan->ylabel), esc(pan->title));
    int n_leg = pan->n_series;
    legend leg = {calloc((size_t)n_leg + 1, sizeof *leg.opt), calloc((size_t)n_leg + 1, sizeof *leg.colours),
                  calloc((size_t)n_leg + 1, sizeof *leg.styles), calloc((size_t)n_leg + 1, sizeof *leg.ink),
                  calloc((size_t)n_leg + 1, sizeof *leg.widths), calloc((size_t)n_leg + 1, sizeof *leg.text)};
    if (!leg.opt || !leg.colours || !leg.styles || !leg.ink || !leg.widths || !leg.text)
        _exit(4);
    for (int s = 0; s < pan->n_series; s++)
        draw_series(&pan->series[s], s, &leg);
    plwidth(1);
    if (n_leg > 0) {
        PLFLT lw, lh;
        /* a falling curve (loss) leaves the top right free, a rising one (MRR) the bottom */
        PLINT pos = PL_POSITION_INSIDE | PL_POSITION_RIGHT | (rising > 0 ? PL_POSITION_BOTTOM : PL_POSITION_TOP);
        pllegend(&lw, &lh, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX, pos, 0.02, 0.02, 0.08, COL_BG, COL_FG, 1,
                 0, 0, n_leg, leg.opt, 0.8, 0.7, 1.8, 0, leg.ink, leg.text, NULL, NULL, NULL, NULL, leg.colours,
                 leg.styles, leg.widths, NULL, NULL, NULL, NULL);
    }
}

static void draw_lines(const void *p)
{
    const lines_args *a = p;
    plssub(a->n_panels, 1);
    for (int i = 0; i < a->n_panels; i++)
        draw_panel(&a->panels[i]);
}

/* ---- heatmap ---- */

typedef struct heatmap_args {
    const char *title, *xlabel, *ylabel;
    const char *const *row_labels, *const *col_labels;
    int n_rows, n_cols;
    const double *values;
    int digits;
} heatmap_args;

static void draw_heatmap(const void *p)
{
    const heatmap_args *a = p;
    pladv(0);
    plschr(0, 1.0);
    plvpor(0.2, 0.95, 0.16, 0.88);
    plwind(0, a->n_cols, 0, a->n_rows);
    double lo, hi;
    finite_range(a->values, a->n_rows * a->n_cols, &lo, &hi);
    for (int r = 0; r < a->n_rows; r++) {
        for (int c = 0; c < a->n_cols; c++) {
            double v = a->values[r * a->n_cols + c];
            PLFLT y0 = a->n_rows - 1 - r, x[4] = {c, c + 1, c + 1, c}, y[4] = {y0, y0, y0 + 1, y0 + 1};
            double frac = hi > lo ? (v - lo) / (hi - lo) : 0.5;
            if (isfinite(v))
                plcol1(frac);
            else
                plcol0(COL_EMPTY);
            plfill(4, x, y);
            if (!isfinite(v))
                continue;
            char text[64];
            snprintf(text, sizeof text, "%.*f", a->digits, v);
            plcol0(frac > 0.55 ? COL_BG : COL_FG);
            plptex(c + 0.5, y0 + 0.45, 1, 0, 0.5, text);
        }
    }
    plcol0(COL_FG);
    plbox("bc", 1.0, 0, "bc", 1.0, 0);
    for (int c = 0; c < a->n_cols; c++)
        plmtex("b", 1.3, (c + 0.5) / a->n_cols, 0.5, esc(a->col_labels[c]));
    for (int r = 0; r < a->n_rows; r++)
        plmtex("lv", 0.8, 1 - (r + 0.5) / a->n_rows, 1.0, esc(a->row_labels[r]));
    plmtex("b", 3.0, 0.5, 0.5, esc(a->xlabel));
    plmtex("l", 7.0, 0.5, 0.5, esc(a->ylabel));
    plmtex("t", 1.5, 0.5, 0.5, esc(a->title));
}

/* ---- grouped bars ---- */

typedef struct bars_args {
    const char *title, *ylabel;
    const char *const *group_labels, *const *bar_labels;
    int n_groups, n_bars;
    const double *mean, *err;
} bars_args;

static void draw_bars(const void *p)
{
    const bars_args *a = p;
    int n = a->n_groups * a->n_bars;
    double lo = 0, hi = 0;
    for (int i = 0; i < n; i++) {
        double m = a->mean[i], e = a->err && isfinite(a->err[i]) ? a->err[i] : 0;
        if (!isfinite(m))
            continue;
        lo = fmin(lo, m - e);
        hi = fmax(hi, m + e);
    }
    if (hi <= lo)
        hi = lo + 1;
    hi += (hi - lo) * 0.08;
    pladv(0);
    plschr(0, 0.85);
    /* the legend goes under the chart, a row per bar, so long row labels are never cut off
     * at the right edge; the group labels take two lines below the axis */
    const double legend_h = 0.05 * a->n_bars;
    plvpor(0.1, 0.97, 0.2 + legend_h, 0.88);
    plwind(0, a->n_groups, lo, hi);
    double w = 0.8 / a->n_bars;
    PLINT *opt = calloc((size_t)a->n_bars, sizeof *opt), *colours = calloc((size_t)a->n_bars, sizeof *colours),
          *patterns = calloc((size_t)a->n_bars, sizeof *patterns), *ink = calloc((size_t)a->n_bars, sizeof *ink);
    PLFLT *scales = calloc((size_t)a->n_bars, sizeof *scales), *widths = calloc((size_t)a->n_bars, sizeof *widths);
    const char **text = calloc((size_t)a->n_bars, sizeof *text);
    if (!opt || !colours || !patterns || !ink || !scales || !widths || !text)
        _exit(4);
    for (int b = 0; b < a->n_bars; b++) {
        int colour = COL_SERIES + b % N_SERIES_COLOURS;
        for (int g = 0; g < a->n_groups; g++) {
            double m = a->mean[g * a->n_bars + b];
            if (!isfinite(m))
                continue;
            PLFLT x0 = g + 0.1 + b * w, x1 = x0 + w * 0.9;
            PLFLT x[4] = {x0, x1, x1, x0}, y[4] = {0, 0, m, m};
            plcol0(colour);
            plfill(4, x, y);
            double e = a->err ? a->err[g * a->n_bars + b] : NAN;
            if (isfinite(e) && e > 0) {
                PLFLT xc = (x0 + x1) / 2, ylo = m - e, yhi = m + e;
                plcol0(COL_FG);
                plerry(1, &xc, &ylo, &yhi);
            }
        }
        opt[b] = PL_LEGEND_COLOR_BOX;
        colours[b] = colour;
        ink[b] = COL_FG;
        patterns[b] = 0;
        scales[b] = 0.8;
        widths[b] = 1;
        text[b] = esc(a->bar_labels[b]);
    }
    plcol0(COL_FG);
    plbox("bc", 1.0, 0, "bcnstvf", 0, 0);
    for (int g = 0; g < a->n_groups; g++) {
        /* "Kitchen NDCG@10" as "Kitchen" over "NDCG@10" (the metric below): side by side they run together */
        char *label = esc(a->group_labels[g]), *space = strrchr(label, ' ');
        if (space)
            *space = '\0';
        plmtex("b", 1.3, (g + 0.5) / a->n_groups, 0.5, label);
        if (space)
            plmtex("b", 2.5, (g + 0.5) / a->n_groups, 0.5, space + 1);
    }
    plmtex("l", 5.0, 0.5, 0.5, esc(a->ylabel));
    plmtex("t", 1.5, 0.5, 0.5, esc(a->title));
    PLFLT lw, lh;
    pllegend(&lw, &lh, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX, PL_POSITION_OUTSIDE | PL_POSITION_BOTTOM, 0,
             0.2, 0.04, COL_BG, COL_FG, 1, 0, 0, a->n_bars, opt, 0.8, 0.7, 1.8, 0, ink, text, colours, patterns, scales,
             widths, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
}

/* ---- in the parent ----------------------------------------------------------------- */

/* Draws one file in a child: PLplot's global state and exit() on error stay there. */
static tema_status render_one(const char *device, const char *path, int width, int height, draw_fn draw,
                              const void *args, tema_err *err)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp)
        return tema_fail(err, TEMA_ENOMEM, "plot: out of memory");
    snprintf(tmp, n, "%s.tmp%ld", path, (long)getpid());
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        free(tmp);
        return tema_fail(err, TEMA_EIO, "%s: cannot start the plotting process: %s", path, strerror(errno));
    }
    if (pid == 0) {
        /* PLplot may chat on stdout, which carries the Markdown report */
        dup2(STDERR_FILENO, STDOUT_FILENO);
        plsexit(child_exit_handler);
        plsdev(device);
        plsfnam(tmp);
        plspage(0, 0, width, height, 0, 0);
        setup_colours();
        plinit();
        draw(args);
        plend();
        _exit(0); /* not exit(): the parent's atexit handlers must not run twice */
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    struct stat st;
    tema_status rc = TEMA_OK;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        rc = tema_fail(err, TEMA_EIO,
                       "%s: PLplot failed (%s %d); check that the '%s' driver is installed "
                       "(Debian: plplot-driver-cairo) and the folder is writable",
                       path, WIFEXITED(status) ? "exit status" : "signal",
                       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), device);
    } else if (stat(tmp, &st) != 0 || st.st_size == 0) {
        rc = tema_fail(err, TEMA_EIO, "%s: PLplot wrote nothing with the '%s' driver; is it installed?", path, device);
    } else {
        int fd = open(tmp, O_RDONLY);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
        if (rename(tmp, path) != 0)
            rc = tema_fail(err, TEMA_EIO, "%s: cannot rename the finished plot into place: %s", path, strerror(errno));
    }
    if (rc != TEMA_OK)
        unlink(tmp);
    free(tmp);
    return rc;
}

static tema_status render(const char *stem, int width, int height, draw_fn draw, const void *args, tema_err *err)
{
    static const char *const devices[][2] = {{"svg", ".svg"}, {"pngcairo", ".png"}};
    size_t n = strlen(stem) + 8;
    char *path = malloc(n);
    if (!path)
        return tema_fail(err, TEMA_ENOMEM, "plot: out of memory");
    tema_status st = TEMA_OK;
    for (size_t i = 0; st == TEMA_OK && i < sizeof devices / sizeof devices[0]; i++) {
        snprintf(path, n, "%s%s", stem, devices[i][1]);
        st = render_one(devices[i][0], path, width, height, draw, args, err);
    }
    free(path);
    return st;
}

tema_status tema_plot_lines(const char *stem, const tema_plot_panel *panels, int n_panels, tema_err *err)
{
    if (n_panels < 1 || n_panels > 8)
        return tema_fail(err, TEMA_EINVAL, "%s: a line chart needs 1 to 8 panels, got %d", stem, n_panels);
    lines_args a = {panels, n_panels};
    return render(stem, 420 * n_panels, 380, draw_lines, &a, err);
}

tema_status tema_plot_heatmap(const char *stem, const char *title, const char *xlabel, const char *ylabel,
                              const char *const *row_labels, int n_rows, const char *const *col_labels, int n_cols,
                              const double *values, int digits, tema_err *err)
{
    if (n_rows < 1 || n_cols < 1)
        return tema_fail(err, TEMA_EINVAL, "%s: a heatmap needs at least one row and one column", stem);
    heatmap_args a = {title, xlabel, ylabel, row_labels, col_labels, n_rows, n_cols, values, digits};
    int w = 200 + 90 * n_cols, h = 140 + 50 * n_rows;
    return render(stem, w < 520 ? 520 : w, h < 360 ? 360 : h, draw_heatmap, &a, err);
}

tema_status tema_plot_bars(const char *stem, const char *title, const char *ylabel, const char *const *group_labels,
                           int n_groups, const char *const *bar_labels, int n_bars, const double *mean,
                           const double *err_std, tema_err *err)
{
    if (n_groups < 1 || n_bars < 1)
        return tema_fail(err, TEMA_EINVAL, "%s: a bar chart needs at least one group and one bar", stem);
    bars_args a = {title, ylabel, group_labels, bar_labels, n_groups, n_bars, mean, err_std};
    int w = 260 + 22 * n_groups * n_bars + 30 * n_groups;
    return render(stem, w < 640 ? 640 : w, 400 + 24 * n_bars, draw_bars, &a, err);
}
