/* core/plot_cli.c - `tema plot`: line charts of a CSV file (benchmark curves, anything a
 * script measured), drawn by the report's PLplot charts (core/plot.h) as SVG, PNG and PDF.
 *
 * The CSV has a header line; fields are separated by commas and may be double-quoted (RFC
 * 4180: "" inside quotes is a quote). One panel per --y column against the --x column; with
 * --series, one line per distinct value of that column (in order of first appearance), else
 * one line per panel. An empty cell is a missing point; any other cell of an x or y column
 * must be a number. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"
#include "util.h"

#define PLOT_MAX_PANELS 8
#define PLOT_MAX_SERIES 16

void tema_csv_free(tema_csv *t)
{
    free(t->text);
    free(t->cells);
    free(t->line);
    memset(t, 0, sizeof *t);
}

/* Splits one record starting at *p into fields (in place); advances *p past its line end.
 * Returns the field count, or -1 for an unterminated quote. */
static int csv_record(char **p, int *line, char **fields, int max)
{
    char *s = *p, *w;
    int n = 0;
    for (;;) {
        char *start = s;
        w = s;
        if (*s == '"') {
            start = w = ++s;
            for (;;) {
                if (!*s) return -1;
                if (*s == '"' && s[1] == '"') *w++ = '"', s += 2;
                else if (*s == '"') { s++; break; }
                else {
                    if (*s == '\n') (*line)++;
                    *w++ = *s++;
                }
            }
            while (*s && *s != ',' && *s != '\n' && *s != '\r') s++; /* text after the closing quote */
        } else {
            while (*s && *s != ',' && *s != '\n' && *s != '\r') *w++ = *s++;
        }
        char sep = *s;
        *w = '\0';
        if (n < max) fields[n] = start;
        n++;
        if (sep == ',') { s++; continue; }
        if (sep == '\r') s++; /* *s itself may be the '\0' just written: test the saved sep */
        if (sep == '\n' || (sep == '\r' && *s == '\n')) s++;
        break;
    }
    *p = s;
    return n;
}

tema_status tema_csv_read(const char *path, tema_csv *t, tema_err *err)
{
    size_t len = 0;
    memset(t, 0, sizeof *t);
    tema_status st = tema_read_file(path, &t->text, &len, err);
    if (st != TEMA_OK) return st;
    int cap = 64, line = 1;
    t->cells = malloc((size_t)cap * PLOT_MAX_COLS * sizeof *t->cells);
    t->line = malloc((size_t)cap * sizeof *t->line);
    if (!t->cells || !t->line) return tema_fail(err, TEMA_ENOMEM, "%s: out of memory", path);
    for (char *p = t->text; *p;) {
        if (*p == '\n' || (*p == '\r' && p[1] == '\n')) { /* blank line */
            p += *p == '\r' ? 2 : 1;
            line++;
            continue;
        }
        if (t->rows == cap) {
            cap *= 2;
            char **c = realloc(t->cells, (size_t)cap * PLOT_MAX_COLS * sizeof *c);
            if (c) t->cells = c;
            int *l = realloc(t->line, (size_t)cap * sizeof *l);
            if (l) t->line = l;
            if (!c || !l) return tema_fail(err, TEMA_ENOMEM, "%s: out of memory", path);
        }
        int at = line;
        int n = csv_record(&p, &line, t->cells + (size_t)t->rows * PLOT_MAX_COLS, PLOT_MAX_COLS);
        if (n < 0) return tema_fail(err, TEMA_EFORMAT, "%s:%d: a quoted field is never closed; hint: a quote inside quotes is written \"\"", path, at);
        if (n > PLOT_MAX_COLS) return tema_fail(err, TEMA_EFORMAT, "%s:%d: %d columns (at most %d)", path, at, n, PLOT_MAX_COLS);
        if (t->rows == 0) t->cols = n;
        else if (n != t->cols)
            return tema_fail(err, TEMA_EFORMAT, "%s:%d: %d fields, the header has %d; hint: quote a field that holds a comma",
                             path, at, n, t->cols);
        t->line[t->rows++] = at;
        line++;
    }
    if (t->rows < 1) return tema_fail(err, TEMA_EFORMAT, "%s: empty; hint: the first line names the columns", path);
    return TEMA_OK;
}

const char *tema_csv_cell(const tema_csv *t, int r, int c) { return t->cells[(size_t)r * PLOT_MAX_COLS + c]; }

static const char *cell(const tema_csv *t, int r, int c) { return tema_csv_cell(t, r, c); }

static int column(const tema_csv *t, const char *path, const char *name, tema_err *err)
{
    for (int c = 0; c < t->cols; c++)
        if (!strcmp(cell(t, 0, c), name)) return c;
    char have[600] = "";
    for (int c = 0; c < t->cols && strlen(have) < sizeof have - 80; c++)
        snprintf(have + strlen(have), sizeof have - strlen(have), "%s'%s'", c ? ", " : "", cell(t, 0, c));
    tema_fail(err, TEMA_EINVAL, "%s:1: no column '%s'; hint: the header has %s", path, name, have);
    return -1;
}

/* The number in row r, column c: NaN for an empty cell, an error for anything else. */
static tema_status number(const tema_csv *t, const char *path, int r, int c, double *out, tema_err *err)
{
    const char *s = cell(t, r, c);
    while (*s == ' ') s++;
    if (!*s) {
        *out = NAN;
        return TEMA_OK;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    while (*end == ' ') end++;
    if (*end || errno == ERANGE)
        return tema_fail(err, TEMA_EFORMAT, "%s:%d: column '%s' holds '%s', not a number; hint: leave a missing value empty",
                         path, t->line[r], cell(t, 0, c), cell(t, r, c));
    *out = v;
    return TEMA_OK;
}

typedef struct plot_args {
    const char *csv, *x, *series, *title, *xlabel, *out;
    char *y[PLOT_MAX_PANELS], *ylabel[PLOT_MAX_PANELS];
    int n_y, n_ylabel;
} plot_args;

static int split_list(char *s, char **out, int max)
{
    int n = 0;
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
        if (n == max) return -1;
        out[n++] = tok;
    }
    return n;
}

static int plot_usage(const char *msg)
{
    if (msg) fprintf(stderr, "tema plot: %s\n", msg);
    fprintf(stderr, "usage: tema plot CSV --x COL --y COL[,COL...] [--series COL] [--title TEXT] [--xlabel TEXT]\n"
                    "                 [--ylabel TEXT[,TEXT...]] [--out STEM]\n");
    return 2;
}

static int parse_plot_args(int argc, char **argv, plot_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        const char *k = argv[i];
        if (k[0] != '-') {
            if (a->csv) return plot_usage("more than one CSV file");
            a->csv = k;
            continue;
        }
        if (i + 1 >= argc) return plot_usage("every option takes a value");
        char *v = argv[++i];
        if (!strcmp(k, "--x")) a->x = v;
        else if (!strcmp(k, "--y")) { if ((a->n_y = split_list(v, a->y, PLOT_MAX_PANELS)) < 0) return plot_usage("at most 8 --y columns"); }
        else if (!strcmp(k, "--ylabel")) { if ((a->n_ylabel = split_list(v, a->ylabel, PLOT_MAX_PANELS)) < 0) return plot_usage("at most 8 --ylabel texts"); }
        else if (!strcmp(k, "--series")) a->series = v;
        else if (!strcmp(k, "--title")) a->title = v;
        else if (!strcmp(k, "--xlabel")) a->xlabel = v;
        else if (!strcmp(k, "--out")) a->out = v;
        else {
            fprintf(stderr, "tema plot: unknown option '%s'\n", k);
            return plot_usage(NULL);
        }
    }
    if (!a->csv) return plot_usage("a CSV file is required");
    if (!a->x || a->n_y < 1) return plot_usage("--x and --y are required");
    if (a->n_ylabel && a->n_ylabel != a->n_y) return plot_usage("--ylabel needs one text per --y column");
    return 0;
}

/* Row indices of each series (by the --series column's value, first appearance order). */
static tema_status group_series(const tema_csv *t, const char *path, int scol, const char **names, int **rows,
                                int *counts, int *n_series, tema_err *err)
{
    *n_series = 0;
    for (int r = 1; r < t->rows; r++) {
        const char *name = scol >= 0 ? cell(t, r, scol) : "";
        int s = 0;
        while (s < *n_series && strcmp(names[s], name)) s++;
        if (s == *n_series) {
            if (s == PLOT_MAX_SERIES)
                return tema_fail(err, TEMA_EINVAL, "%s:%d: more than %d series in column '%s'", path, t->line[r],
                                 PLOT_MAX_SERIES, cell(t, 0, scol));
            names[s] = name;
            if (!(rows[s] = malloc((size_t)t->rows * sizeof **rows))) return tema_fail(err, TEMA_ENOMEM, "out of memory");
            counts[s] = 0;
            (*n_series)++;
        }
        rows[s][counts[s]++] = r;
    }
    return TEMA_OK;
}

static int cmp_by_x(const void *a, const void *b)
{
    const double *u = a, *v = b;
    return (u[0] > v[0]) - (u[0] < v[0]);
}

/* Fills x/y of one series in one panel, sorted by x; rows with no x are left out. */
static tema_status series_points(const tema_csv *t, const char *path, const int *rows, int n, int xc, int yc,
                                 double *x, double *y, int *out_n, tema_err *err)
{
    double *xy = malloc((size_t)(n > 0 ? n : 1) * 2 * sizeof *xy);
    if (!xy) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    int k = 0;
    tema_status st = TEMA_OK;
    for (int i = 0; i < n && st == TEMA_OK; i++) {
        double xv, yv;
        if ((st = number(t, path, rows[i], xc, &xv, err)) == TEMA_OK && (st = number(t, path, rows[i], yc, &yv, err)) == TEMA_OK &&
            !isnan(xv))
            xy[2 * k] = xv, xy[2 * k + 1] = yv, k++;
    }
    qsort(xy, (size_t)k, 2 * sizeof *xy, cmp_by_x);
    for (int i = 0; i < k; i++) x[i] = xy[2 * i], y[i] = xy[2 * i + 1];
    *out_n = k;
    free(xy);
    return st;
}

int tema_plot_cli(int argc, char **argv)
{
    plot_args a;
    int rc = parse_plot_args(argc, argv, &a);
    if (rc) return rc;
    tema_err err = {0};
    tema_csv t;
    const char *names[PLOT_MAX_SERIES];
    int *rows[PLOT_MAX_SERIES] = {0}, counts[PLOT_MAX_SERIES], n_series = 0;
    double *buf = NULL;
    tema_status st = tema_csv_read(a.csv, &t, &err);
    int xc = -1, yc[PLOT_MAX_PANELS], sc = -1;
    if (st == TEMA_OK && (xc = column(&t, a.csv, a.x, &err)) < 0) st = err.code;
    for (int p = 0; st == TEMA_OK && p < a.n_y; p++)
        if ((yc[p] = column(&t, a.csv, a.y[p], &err)) < 0) st = err.code;
    if (st == TEMA_OK && a.series && (sc = column(&t, a.csv, a.series, &err)) < 0) st = err.code;
    if (st == TEMA_OK) st = group_series(&t, a.csv, sc, names, rows, counts, &n_series, &err);
    if (st == TEMA_OK && t.rows < 2) st = tema_fail(&err, TEMA_EINVAL, "%s: a header and no data rows", a.csv);
    tema_plot_panel panels[PLOT_MAX_PANELS];
    tema_plot_series ser[PLOT_MAX_PANELS][PLOT_MAX_SERIES];
    if (st == TEMA_OK && !(buf = malloc((size_t)a.n_y * n_series * 2 * (size_t)t.rows * sizeof *buf)))
        st = tema_fail(&err, TEMA_ENOMEM, "out of memory");
    for (int p = 0; st == TEMA_OK && p < a.n_y; p++) {
        for (int s = 0; st == TEMA_OK && s < n_series; s++) {
            double *x = buf + ((size_t)p * n_series + s) * 2 * (size_t)t.rows, *y = x + t.rows;
            ser[p][s] = (tema_plot_series){.label = sc >= 0 ? names[s] : a.y[p], .x = x, .y = y};
            st = series_points(&t, a.csv, rows[s], counts[s], xc, yc[p], x, y, &ser[p][s].n, &err);
        }
        panels[p] = (tema_plot_panel){.title = a.n_y < 2 ? NULL : a.n_ylabel ? a.ylabel[p] : a.y[p], .xlabel = a.xlabel ? a.xlabel : a.x,
                                      .ylabel = a.n_ylabel ? a.ylabel[p] : a.y[p], .series = ser[p],
                                      .n_series = n_series};
    }
    char stem[4096];
    if (a.out) snprintf(stem, sizeof stem, "%s", a.out);
    else {
        snprintf(stem, sizeof stem, "%s", a.csv);
        char *dot = strrchr(stem, '.'), *slash = strrchr(stem, '/');
        if (dot && (!slash || dot > slash)) *dot = '\0';
    }
    tema_plot_out po = {0};
    if (st == TEMA_OK) st = tema_plot_lines(stem, a.title ? a.title : "", panels, a.n_y, &po, &err);
    if (st == TEMA_OK) {
        static const char *const ext[] = {".svg", ".png", ".pdf"};
        fprintf(stderr, "tema plot: wrote");
        for (int k = 0; k < 3; k++)
            if (po.written & (1u << k)) fprintf(stderr, " %s%s", stem, ext[k]);
        fprintf(stderr, "\n");
        if (po.missing[0]) fprintf(stderr, "tema plot: %s\n", po.missing);
    } else {
        fprintf(stderr, "tema: error: %s\n", err.msg);
    }
    for (int s = 0; s < n_series; s++) free(rows[s]);
    free(buf);
    tema_csv_free(&t);
    return st == TEMA_OK ? 0 : 1;
}
