/* core/plot.c - the drawing machinery of the report charts (see plot.h): one forked child
 * per file and format, and the page, text, ticks, axes and legends the chart kinds
 * (plot_charts.c) draw with (plot_internal.h).
 */
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

#include "plot_internal.h"

static const unsigned char palette[][3] = {
    {255, 255, 255}, {0, 0, 0},       {200, 200, 200}, {232, 232, 232}, {31, 119, 180},
    {255, 127, 14},  {44, 160, 44},   {214, 39, 40},   {148, 103, 189}, {140, 86, 75},
    {227, 119, 194}, {127, 127, 127}, {188, 189, 34},  {23, 190, 207},
};
#define N_PALETTE ((int)(sizeof palette / sizeof palette[0]))

/* Exit statuses of the child besides 0: PLplot's own error, no memory, no such driver. */
enum { CHILD_PLPLOT = 3, CHILD_NOMEM = 4, CHILD_NO_DRIVER = 5 };

/* Device units per point: 1 for SVG and PDF (their unit is the point), 200/72 for PNG.
 * PLplot's cairo and svg drivers take the page at 72 units an inch whatever DPI they are
 * given, so text, line widths and marks are scaled here. */
static double dev_scale = 1;

_Noreturn void plt_die(void) { _exit(CHILD_NOMEM); }

static int child_exit_handler(PLCHAR_VECTOR msg)
{
    fprintf(stderr, "tema: PLplot: %s\n", msg ? msg : "error");
    _exit(CHILD_PLPLOT);
    return 0;
}

char *plt_esc(const char *s)
{
    if (!s)
        s = "";
    size_t n = strlen(s) + 1;
    for (const char *p = s; *p; p++)
        n += *p == '#';
    char *o = malloc(n), *w = o;
    if (!o)
        plt_die();
    for (const char *p = s; *p; p++) {
        *w++ = *p;
        if (*p == '#')
            *w++ = '#';
    }
    *w = '\0';
    return o;
}

/* Advance widths of DejaVu Sans (the font fontconfig gives the cairo drivers for "sans"),
 * characters 32 to 126, in hundredths of an em; read from DejaVuSans.ttf's hmtx table. */
static const unsigned char dejavu_width[95] = {
    32, 40, 46, 84, 64, 95, 78, 27, 39, 39, 50, 84, 32, 36, 32, 34, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 34, 34, 84, 84, 84, 53, 100, 68, 69, 70, 77, 63, 58, 77, 75, 29, 29, 66, 56, 86, 75, 79,
    60, 79, 69, 63, 61, 73, 68, 99, 69, 61, 69, 39, 34, 39, 84, 50, 50, 61, 63, 55, 63, 62, 35, 63,
    63, 28, 28, 58, 28, 97, 63, 61, 63, 63, 41, 52, 39, 63, 59, 82, 59, 59, 52, 64, 34, 64, 84,
};

double plt_text_width_n(const char *s, size_t n, double pt)
{
    double em = 0;
    for (size_t i = 0; i < n && s[i]; i++) {
        unsigned c = (unsigned char)s[i];
        if (c >= 32 && c < 127)
            em += dejavu_width[c - 32] / 100.0;
        else if (c >= 0xC0)
            em += 0.9; /* the lead byte of a UTF-8 character (±, em dash, ...); the rest add nothing */
    }
    return em * pt * 1.02; /* a little room for kerning and hinting */
}

double plt_text_width(const char *s, double pt) { return plt_text_width_n(s, strlen(s), pt); }

/* The cairo drivers set text at about 1.33 times PLplot's character height (measured on
 * DejaVu Sans; the svg driver at 1.25, a little smaller). */
static void set_font(double pt) { plschr(pt / 1.33 * 25.4 / 72 * dev_scale, 1.0); }

void plt_line_width(double pt) { plwidth(pt * dev_scale); }

/* A filled dot of diameter d at a point of the page (PLplot's own symbols come out at
 * different sizes in each driver). */
static void dot(double x, double y, double d)
{
    PLFLT xs[12], ys[12];
    for (int k = 0; k < 12; k++) {
        xs[k] = x + d / 2 * cos(k * M_PI / 6);
        ys[k] = y + d / 2 * sin(k * M_PI / 6);
    }
    plfill(12, xs, ys);
}

void plt_page(const plt_page_size *pg)
{
    plvpor(0, 1, 0, 1);
    plwind(0, pg->w, 0, pg->h);
}

void plt_text(double x, double y, double just, double pt, bool vertical, const char *s)
{
    set_font(pt);
    plptex(x, y, vertical ? 0 : 1, vertical ? 1 : 0, just, plt_esc(s));
}

void plt_segment(double x0, double y0, double x1, double y1)
{
    PLFLT x[2] = {x0, x1}, y[2] = {y0, y1};
    plline(2, x, y);
}

/* The end of the word after p (leading spaces skipped); p itself at the end of s. "q = 64"
 * is one word: a line never starts or ends at an '='. */
static const char *word_end(const char *p)
{
    for (;;) {
        while (*p == ' ')
            p++;
        const char *start = p;
        while (*p && *p != ' ')
            p++;
        const char *next = p;
        while (*next == ' ')
            next++;
        bool glued = *next == '=' || (p > start && p[-1] == '=' && *next);
        if (!glued)
            return p;
        p = next;
    }
}

/* line cut to fit max_w, ending in "..." (at a UTF-8 character boundary). */
static void ellipsize(char *line, double pt, double max_w)
{
    size_t len = strlen(line);
    if (plt_text_width(line, pt) <= max_w)
        return;
    while (len > 0 && plt_text_width_n(line, len, pt) + plt_text_width("...", pt) > max_w) {
        len--;
        while (len > 0 && ((unsigned char)line[len] & 0xC0) == 0x80)
            len--;
    }
    strcpy(line + len, "...");
}

int plt_wrap_count(const char *s, double pt, double max_w)
{
    int n = 0;
    const char *p = s ? s : "";
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *end = word_end(p);
        if (plt_text_width_n(p, (size_t)(end - p), pt) > max_w)
            return 1000; /* a word wider than the line */
        for (const char *next; *end && (next = word_end(end)) != end; end = next)
            if (plt_text_width_n(p, (size_t)(next - p), pt) > max_w)
                break;
        n++;
        p = end;
    }
    return n;
}

int plt_wrap(const char *s, double pt, double max_w, char **lines, int max_lines)
{
    int n = 0;
    const char *p = s ? s : "";
    while (n < max_lines) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *end = word_end(p);
        for (const char *next; *end && (next = word_end(end)) != end; end = next)
            if (plt_text_width_n(p, (size_t)(next - p), pt) > max_w)
                break;
        if (n == max_lines - 1)
            end = p + strlen(p); /* the last line takes the rest, cut below */
        /* room for the "..." that may replace the end */
        lines[n] = malloc((size_t)(end - p) + 4);
        if (!lines[n])
            plt_die();
        memcpy(lines[n], p, (size_t)(end - p));
        lines[n][end - p] = '\0';
        ellipsize(lines[n], pt, max_w);
        n++;
        p = end;
    }
    return n;
}

double plt_text_block(double x, double y_top, double pt, char **lines, int n)
{
    double lead = pt * 1.3;
    for (int i = 0; i < n; i++)
        plt_text(x, y_top - lead * (i + 0.5), 0.5, pt, false, lines[i]);
    return lead * n;
}

/* ---- ticks and axes ---- */

void plt_nice_ticks(double lo, double hi, int max_n, bool integer, plt_ticks *t)
{
    if (!(hi > lo))
        hi = lo + 1;
    /* the finest of 1, 2, 2.5, 5 x 10^k that puts at most max_n ticks in [lo, hi] */
    static const double mant[] = {1, 2, 2.5, 5};
    double step = 1;
    bool found = false;
    for (int e = (int)floor(log10(hi - lo)) - 2; !found; e++)
        for (size_t i = 0; i < sizeof mant / sizeof mant[0] && !found; i++) {
            step = mant[i] * pow(10, e);
            if (integer && (step < 1 || mant[i] == 2.5))
                continue; /* no tick between two epochs */
            double n = floor(hi / step + 1e-9) - ceil(lo / step - 1e-9) + 1;
            found = n <= max_n;
        }
    t->step = step;
    t->first = ceil(lo / step - 1e-9) * step;
    t->n = (int)floor((hi - t->first) / step + 1e-9) + 1;
    if (t->n < 1)
        t->n = 1;
    int dec = (int)ceil(-log10(step) - 1e-9);
    if (fabs(step * pow(10, dec) - round(step * pow(10, dec))) > 1e-6)
        dec++; /* 2.5 x 10^k needs one more digit than 10^k */
    t->decimals = dec > 0 ? dec : 0;
}

static double tick_value(const plt_ticks *t, int i)
{
    double v = t->first + i * t->step;
    return fabs(v) < t->step * 1e-9 ? 0 : v; /* no "-0.00" */
}

double plt_ticks_width(const plt_ticks *t)
{
    double w = 0;
    for (int i = 0; i < t->n; i++) {
        char s[64];
        snprintf(s, sizeof s, "%.*f", t->decimals, tick_value(t, i));
        w = fmax(w, plt_text_width(s, PT_TICK));
    }
    return w;
}

double plt_left_margin(const plt_ticks *yt, bool ylabel)
{
    return TICK_LEN + 2.5 + plt_ticks_width(yt) + (ylabel ? 4 + PT_LABEL : 0) + 2;
}

void plt_box_begin(const plt_page_size *pg, const plt_box *b)
{
    plvpor(b->x0 / pg->w, b->x1 / pg->w, b->y0 / pg->h, b->y1 / pg->h);
    plwind(b->xlo, b->xhi, b->ylo, b->yhi);
}

void plt_dots(const plt_page_size *pg, const plt_box *b, const double *x, const double *y, int n, double d)
{
    plt_page(pg);
    for (int i = 0; i < n; i++)
        dot(b->x0 + (x[i] - b->xlo) / (b->xhi - b->xlo) * (b->x1 - b->x0),
            b->y0 + (y[i] - b->ylo) / (b->yhi - b->ylo) * (b->y1 - b->y0), d);
}

void plt_grid(const plt_page_size *pg, const plt_box *b, const plt_ticks *xt, const plt_ticks *yt)
{
    plt_box_begin(pg, b);
    plcol0(COL_GRID);
    plt_line_width(0.6);
    for (int i = 0; xt && i < xt->n; i++)
        plt_segment(tick_value(xt, i), b->ylo, tick_value(xt, i), b->yhi);
    for (int i = 0; yt && i < yt->n; i++)
        plt_segment(b->xlo, tick_value(yt, i), b->xhi, tick_value(yt, i));
}

void plt_axes(const plt_page_size *pg, const plt_box *b, const plt_ticks *xt, const plt_ticks *yt, const char *xlabel,
              const char *ylabel)
{
    plt_page(pg);
    plcol0(COL_FG);
    plt_line_width(LW_SPINE);
    plt_segment(b->x0, b->y0, b->x1, b->y0);
    plt_segment(b->x1, b->y0, b->x1, b->y1);
    plt_segment(b->x1, b->y1, b->x0, b->y1);
    plt_segment(b->x0, b->y1, b->x0, b->y0);
    char s[64];
    for (int i = 0; xt && i < xt->n; i++) {
        double v = tick_value(xt, i), x = b->x0 + (v - b->xlo) / (b->xhi - b->xlo) * (b->x1 - b->x0);
        plt_segment(x, b->y0, x, b->y0 - TICK_LEN);
        snprintf(s, sizeof s, "%.*f", xt->decimals, v);
        plt_text(x, b->y0 - TICK_LEN - 2.5 - PT_TICK * 0.36, 0.5, PT_TICK, false, s);
    }
    for (int i = 0; yt && i < yt->n; i++) {
        double v = tick_value(yt, i), y = b->y0 + (v - b->ylo) / (b->yhi - b->ylo) * (b->y1 - b->y0);
        plt_segment(b->x0, y, b->x0 - TICK_LEN, y);
        snprintf(s, sizeof s, "%.*f", yt->decimals, v);
        plt_text(b->x0 - TICK_LEN - 2.5, y, 1, PT_TICK, false, s);
    }
    if (xlabel && *xlabel)
        plt_text((b->x0 + b->x1) / 2, b->y0 - TICK_LEN - 2.5 - PT_TICK - 4 - PT_LABEL * 0.36, 0.5, PT_LABEL, false,
                 xlabel);
    char *line[1];
    /* a y label no longer than the box (and a little more): it must not run into the title */
    if (ylabel && *ylabel && plt_wrap(ylabel, PT_LABEL, b->y1 - b->y0 + 16, line, 1)) {
        double x = b->x0 - plt_left_margin(yt, true) + 2 + PT_LABEL * 0.36;
        plt_text(x, (b->y0 + b->y1) / 2, 0.5, PT_LABEL, true, line[0]);
    }
}

/* ---- legends ---- */

#define LEGEND_SAMPLE 16.0 /* length of a line sample, points */
#define LEGEND_GAP 4.0     /* sample to text */
#define LEGEND_SEP 12.0    /* between entries of a row */

static void legend_sample(double x, double y, int colour, plt_legend_kind kind)
{
    plcol0(colour);
    if (kind == LEGEND_BOX) {
        double h = PT_LEGEND * 0.8;
        PLFLT xs[4] = {x + 3, x + LEGEND_SAMPLE - 3, x + LEGEND_SAMPLE - 3, x + 3};
        PLFLT ys[4] = {y - h / 2, y - h / 2, y + h / 2, y + h / 2};
        plfill(4, xs, ys);
        return;
    }
    plt_line_width(LW_LINE);
    plt_segment(x, y, x + LEGEND_SAMPLE, y);
    if (kind == LEGEND_LINE_DOT)
        dot(x + LEGEND_SAMPLE / 2, y, DOT);
}

double plt_legend(const plt_page_size *pg, double x, double y_top, double max_w, const char *const *labels, int n,
                  plt_legend_kind kind, bool draw)
{
    if (n <= 0)
        return 0;
    double entry = 0;
    for (int i = 0; i < n; i++)
        entry = fmax(entry, LEGEND_SAMPLE + LEGEND_GAP + plt_text_width(labels[i], PT_LEGEND));
    int cols = (int)((max_w + LEGEND_SEP) / (entry + LEGEND_SEP));
    if (cols < 1)
        cols = 1;
    if (cols > n)
        cols = n;
    int rows = (n + cols - 1) / cols;
    /* rows fill evenly: 4 entries in 3 columns become 2 + 2, not 3 + 1 */
    cols = (n + rows - 1) / rows;
    double row_h = PT_LEGEND * 1.6, width = cols * entry + (cols - 1) * LEGEND_SEP;
    if (draw) {
        plt_page(pg);
        for (int i = 0; i < n; i++) {
            int r = i / cols, c = i % cols;
            double ex = x - width / 2 + c * (entry + LEGEND_SEP), ey = y_top - row_h * r - row_h / 2;
            legend_sample(ex, ey, COL_SERIES + i % N_SERIES_COLOURS, kind);
            plcol0(COL_FG);
            plt_text(ex + LEGEND_SAMPLE + LEGEND_GAP, ey, 0, PT_LEGEND, false, labels[i]);
        }
    }
    return rows * row_h;
}

/* ---- in the parent: one child per file ---------------------------------------------- */

typedef struct plot_format {
    const char *device, *ext, *name;
    double scale;
    unsigned bit;
} plot_format;

static const plot_format formats[] = {
    {"svg", ".svg", "SVG", 1, TEMA_PLOT_SVG},
    {"pngcairo", ".png", "PNG", 200.0 / 72, TEMA_PLOT_PNG},
    {"pdfcairo", ".pdf", "PDF", 1, TEMA_PLOT_PDF},
};

static bool device_installed(const char *device)
{
#ifdef TEMA_TEST_HOOKS
    /* tests make a driver look absent: a comma list of device names */
    const char *hidden = getenv("TEMA_TEST_PLOT_NO_DEVICE");
    if (hidden && strstr(hidden, device))
        return false;
#endif
    const char **menu = NULL, **names = NULL;
    int n = 0;
    /* plgDevs fills at most n entries: ask for more than PLplot has */
    enum { MAX_DEVICES = 128 };
    menu = malloc(MAX_DEVICES * sizeof *menu);
    names = malloc(MAX_DEVICES * sizeof *names);
    if (!menu || !names)
        plt_die();
    n = MAX_DEVICES;
    plgDevs(&menu, &names, &n);
    for (int i = 0; i < n; i++)
        if (names[i] && !strcmp(names[i], device))
            return true;
    return false;
}

typedef struct draw_job {
    plt_size_fn size;
    plt_draw_fn draw;
    const void *args;
} draw_job;

static void setup_colours(void)
{
    plscmap0n(N_PALETTE);
    for (int i = 0; i < N_PALETTE; i++)
        plscol0(i, palette[i][0], palette[i][1], palette[i][2]);
    /* cmap1: light yellow -> teal -> dark blue (ColorBrewer YlGnBu), for heatmaps */
    PLFLT pos[] = {0, 0.5, 1}, r[] = {1.0, 0.255, 0.031}, g[] = {1.0, 0.714, 0.114}, b[] = {0.851, 0.769, 0.345};
    plscmap1l(1, 3, pos, r, g, b, NULL);
}

_Noreturn static void child_draw(const plot_format *f, const char *tmp, const draw_job *job)
{
    /* PLplot may chat on stdout, which carries the Markdown report */
    dup2(STDERR_FILENO, STDOUT_FILENO);
    /* an unknown device makes plinit ask on stdin: never let it */
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0)
        dup2(null_fd, STDIN_FILENO);
    if (!device_installed(f->device))
        _exit(CHILD_NO_DRIVER);
    dev_scale = f->scale;
    plsexit(child_exit_handler);
    plsdev(f->device);
    plsfnam(tmp);
    /* sized here, not in the parent: layout allocates, and the child may die of it */
    plt_page_size page = job->size(job->args);
    plspage(0, 0, (PLINT)lround(page.w * f->scale), (PLINT)lround(page.h * f->scale), 0, 0);
    setup_colours();
    plinit();
    pladv(0);
    job->draw(job->args, &page);
    plend();
    _exit(0); /* not exit(): the parent's atexit handlers must not run twice */
}

/* Why the child of format f failed, for out->missing and errors. */
static void child_failure(const plot_format *f, int status, char *buf, size_t cap)
{
    if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_NO_DRIVER)
        snprintf(buf, cap, "%s: PLplot's %s driver is not installed (Debian: %s)", f->name, f->device,
                 strcmp(f->device, "svg") ? "plplot-driver-cairo" : "libplplot17");
    else if (WIFEXITED(status))
        snprintf(buf, cap, "%s: PLplot's %s driver failed (exit status %d); is the folder writable?", f->name,
                 f->device, WEXITSTATUS(status));
    else
        snprintf(buf, cap, "%s: PLplot's %s driver died of signal %d", f->name, f->device, WTERMSIG(status));
}

/* Draws one file in a child and renames it into place; a failure is said in why. */
static bool render_one(const plot_format *f, const char *path, const draw_job *job, char *why, size_t cap)
{
    char *tmp = malloc(strlen(path) + 32);
    if (!tmp) {
        snprintf(why, cap, "%s: out of memory", f->name);
        return false;
    }
    sprintf(tmp, "%s.tmp%ld", path, (long)getpid());
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0)
        child_draw(f, tmp, job);
    bool ok = false;
    struct stat st;
    if (pid < 0) {
        snprintf(why, cap, "%s: cannot start the plotting process: %s", f->name, strerror(errno));
    } else {
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            child_failure(f, status, why, cap);
        } else if (stat(tmp, &st) != 0 || st.st_size == 0) {
            snprintf(why, cap, "%s: PLplot's %s driver wrote nothing", f->name, f->device);
        } else {
            int fd = open(tmp, O_RDONLY);
            if (fd >= 0) {
                fsync(fd);
                close(fd);
            }
            ok = rename(tmp, path) == 0;
            if (!ok)
                snprintf(why, cap, "%s: cannot rename the finished file into place: %s", f->name, strerror(errno));
        }
    }
    if (!ok)
        unlink(tmp);
    free(tmp);
    return ok;
}

static tema_status render(const char *stem, plt_size_fn size, plt_draw_fn draw, const void *args, tema_plot_out *out,
                          tema_err *err)
{
    tema_plot_out local;
    if (!out)
        out = &local;
    memset(out, 0, sizeof *out);
    draw_job job = {size, draw, args};
    size_t n = strlen(stem) + 8;
    char *path = malloc(n);
    if (!path)
        return tema_fail(err, TEMA_ENOMEM, "plot: out of memory");
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        char why[200];
        snprintf(path, n, "%s%s", stem, formats[i].ext);
        if (render_one(&formats[i], path, &job, why, sizeof why)) {
            out->written |= formats[i].bit;
        } else {
            size_t used = strlen(out->missing);
            snprintf(out->missing + used, sizeof out->missing - used, "%s%s", used ? "; " : "", why);
        }
    }
    free(path);
    if (!out->written)
        return tema_fail(err, TEMA_EIO, "%s: no format could be drawn (%s)", stem, out->missing);
    return TEMA_OK;
}

/* ---- the entry points (the drawing of each kind: plot_charts.c) ---- */

tema_status tema_plot_lines(const char *stem, const char *title, const tema_plot_panel *panels, int n_panels,
                            tema_plot_out *out, tema_err *err)
{
    if (n_panels < 1 || n_panels > 8)
        return tema_fail(err, TEMA_EINVAL, "%s: a line chart needs 1 to 8 panels, got %d", stem, n_panels);
    plt_lines_args a = {title, panels, n_panels};
    return render(stem, plt_size_lines, plt_draw_lines, &a, out, err);
}

tema_status tema_plot_bars(const char *stem, const tema_plot_bar_chart *chart, tema_plot_out *out, tema_err *err)
{
    if (chart->n_groups < 1 || chart->n_bars < 1 || chart->n_panels < 1)
        return tema_fail(err, TEMA_EINVAL, "%s: a bar chart needs at least one panel, group and bar", stem);
    return render(stem, plt_size_bars, plt_draw_bars, chart, out, err);
}

tema_status tema_plot_heatmap(const char *stem, const tema_plot_heatmap_chart *chart, tema_plot_out *out,
                              tema_err *err)
{
    if (chart->n_rows < 1 || chart->n_cols < 1)
        return tema_fail(err, TEMA_EINVAL, "%s: a heatmap needs at least one row and one column", stem);
    return render(stem, plt_size_heatmap, plt_draw_heatmap, chart, out, err);
}
