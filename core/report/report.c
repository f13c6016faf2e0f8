/* core/report/report.c - `tema report` itself: tema_report, which runs the pieces in order and
 * writes the files, and the command line (see report.h; the pieces: report_internal.h).
 */
#include "../report.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "report_internal.h"

void rep_note(report_ctx *R, const char *fmt, ...)
{
    R->n_warnings++;
    if (!R->diag)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("tema: report: ", R->diag);
    vfprintf(R->diag, fmt, ap);
    fputc('\n', R->diag);
    va_end(ap);
}

static tema_status write_out(report_ctx *R, const char *name, const tema_sb *text, tema_err *err)
{
    if (text->oom)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    char *path = rep_path_join(&R->ar, R->out_dir, name);
    if (!path)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    tema_status st = tema_write_file_atomic(path, tema_sb_str(text), text->n, err);
    if (st == TEMA_OK && R->n_files < R->cap_files) {
        R->files[R->n_files++].path = path;
    } else if (st == TEMA_OK) {
        int nc = R->cap_files ? R->cap_files * 2 : 16;
        output_file *grown = rep_alloc(&R->ar, (size_t)nc * sizeof *grown);
        if (!grown)
            return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
        if (R->n_files)
            memcpy(grown, R->files, (size_t)R->n_files * sizeof *grown);
        R->files = grown;
        R->cap_files = nc;
        R->files[R->n_files++].path = path;
    }
    return st;
}

/* The texts tema_report builds: md becomes report.md (and stdout), text is one file at a time;
 * the timing table's formats are rendered together, its HTML kept for report.html. */
typedef struct report_texts {
    tema_sb md, text, html_timing, html;
    tema_sb tex_t, csv_t;
} report_texts;

/* The experiment file, its name and the folders the report reads and writes. */
static tema_status open_experiment(report_ctx *R, const char *exp_path, const tema_report_opts *o, tema_err *err)
{
    tema_status st = tema_cfg_load(exp_path, &R->yaml, err);
    if (st != TEMA_OK)
        return st;
    R->exp_path = rep_strdup(&R->ar, exp_path);
    R->name = rep_strdup(&R->ar, tema_cfg_str(R->yaml, "name", NULL));
    if (!R->name || !rep_valid_name(R->name))
        return rep_spec_fail(err, tema_cfg_get(R->yaml, "name") ? tema_cfg_get(R->yaml, "name") : R->yaml,
                             "%s: %s; the report reads RESULTS/<name>/", exp_path,
                             R->name ? "the name is not a folder name" : "no name: key");
    R->results_dir = rep_strdup(&R->ar, tema_cfg_results_dir(R->yaml, o->results_dir));
    R->exp_dir = rep_path_join(&R->ar, R->results_dir, R->name);
    R->out_dir = o->out_dir && *o->out_dir ? rep_strdup(&R->ar, o->out_dir)
                                           : rep_path_join(&R->ar, R->exp_dir, "report");
    R->plot_dir = R->out_dir ? rep_path_join(&R->ar, R->out_dir, "plots") : NULL;
    R->report_node = tema_cfg_get(R->yaml, "report");
    R->overrides = o->overrides;
    R->n_overrides = o->n_overrides;
    if (!R->exp_dir || !R->out_dir || !R->plot_dir)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    return TEMA_OK;
}

/* The runs that count, grouped; an error when none has finished. */
static tema_status find_runs(report_ctx *R, const char *exp_path, const tema_report_opts *o, tema_err *err)
{
    tema_status st = rep_scan_runs(R, err);
    if (st != TEMA_OK)
        return st;
    if (!o->all_runs)
        rep_apply_manifest(R);
    if (!R->have_manifest && R->n_unfinished)
        rep_note(R, "%d run folder(s) under %s have not finished (no DONE): left out", R->n_unfinished, R->exp_dir);
    if (R->n_runs == 0) {
        if (R->n_stale)
            return tema_fail(err, TEMA_ENOTFOUND, "%s: no finished run of the current %s; run it with tema run %s, "
                             "or report the %d run(s) of its earlier version with --all-runs", R->exp_dir, exp_path,
                             exp_path, R->n_stale);
        return tema_fail(err, TEMA_ENOTFOUND, "%s: no finished runs of %s%s; run it with tema run %s", R->exp_dir,
                         exp_path, R->n_pending ? " yet" : "", exp_path);
    }
    return rep_make_groups(R, err);
}

/* Every table in the formats asked for; its Markdown also goes into report.md. */
static tema_status write_tables(report_ctx *R, table *tables, int n_tables, unsigned formats, report_texts *x,
                                tema_err *err)
{
    tema_status st = TEMA_OK;
    for (int i = 0; i < n_tables && st == TEMA_OK; i++) {
        table *T = &tables[i];
        char name[300];
        tema_sb_reset(&x->text);
        rep_render_md(R, T, &x->text);
        tema_sb_add(&x->md, tema_sb_str(&x->text));
        tema_sb_add(&x->md, "\n");
        if (formats & TEMA_REPORT_MD) {
            snprintf(name, sizeof name, "%s.md", T->spec.name);
            st = write_out(R, name, &x->text, err);
        }
        if (st == TEMA_OK && (formats & TEMA_REPORT_LATEX)) {
            tema_sb_reset(&x->text);
            rep_render_tex(R, T, &x->text);
            snprintf(name, sizeof name, "%s.tex", T->spec.name);
            st = write_out(R, name, &x->text, err);
        }
        if (st == TEMA_OK && (formats & TEMA_REPORT_CSV)) {
            tema_sb_reset(&x->text);
            rep_render_csv(R, T, &x->text);
            snprintf(name, sizeof name, "%s.csv", T->spec.name);
            st = write_out(R, name, &x->text, err);
        }
    }
    return st;
}

static tema_status write_timing(report_ctx *R, unsigned formats, report_texts *x, tema_err *err)
{
    tema_status st = TEMA_OK;
    tema_sb_reset(&x->text);
    rep_render_timing(R, &x->text, &x->tex_t, &x->csv_t, &x->html_timing);
    tema_sb_add(&x->md, tema_sb_str(&x->text));
    if (formats & TEMA_REPORT_MD)
        st = write_out(R, "timing.md", &x->text, err);
    if (st == TEMA_OK && (formats & TEMA_REPORT_LATEX))
        st = write_out(R, "timing.tex", &x->tex_t, err);
    if (st == TEMA_OK && (formats & TEMA_REPORT_CSV))
        st = write_out(R, "timing.csv", &x->csv_t, err);
    return st;
}

/* The domains as the tables call them ("Food", not "X"): the first table that labels them. */
static void domain_names(report_ctx *R, const table *tables, int n_tables)
{
    for (int i = 0; i < n_tables; i++)
        for (int a = 0; a < tables[i].spec.n_cols; a++) {
            const axis *ax = &tables[i].spec.cols[a];
            if (ax->kind != AX_DOMAIN || !ax->labels)
                continue;
            for (int v = 0; v < ax->n_vals; v++)
                if (!R->domain_name[ax->vals[v].domain])
                    R->domain_name[ax->vals[v].domain] = ax->vals[v].label;
        }
}

static tema_status draw_charts(report_ctx *R, table *tables, int n_tables, bool curves, tema_err *err)
{
    tema_status st = TEMA_OK;
    for (int i = 0; i < n_tables && st == TEMA_OK; i++) {
        rep_table_bars(R, &tables[i]);
        st = rep_table_heatmaps(R, &tables[i], i, err);
    }
    domain_names(R, tables, n_tables);
    for (int g = 0; curves && st == TEMA_OK && g < R->n_groups; g++)
        rep_group_curves(R, &R->groups[g]);
    if (st == TEMA_OK)
        rep_note_stale_plots(R);
    return st;
}

/* report.md's own lines around the tables: what was read, and what is still pending. */
static void md_head(const report_ctx *R, tema_sb *md)
{
    tema_sb_printf(md, "# Experiment %s\n\n%d finished run%s in %d cell%s", R->name, R->n_runs,
                   R->n_runs == 1 ? "" : "s", R->n_groups, R->n_groups == 1 ? "" : "s");
    if (R->n_pending)
        tema_sb_printf(md, ", %d pending", R->n_pending);
    tema_sb_printf(md, " (%s).\n\n", R->exp_dir);
}

static void md_pending(const report_ctx *R, const char *exp_path, tema_sb *md)
{
    if (R->n_pending)
        tema_sb_printf(md, "\nNote: %d run%s of the grid %s not finished yet; `tema status %s` lists them.\n",
                       R->n_pending, R->n_pending == 1 ? "" : "s", R->n_pending == 1 ? "has" : "have", exp_path);
}

/* The last line on diag: how many files went where, and the page to open. */
static void say_written(const report_ctx *R)
{
    if (!R->diag)
        return;
    fprintf(R->diag, "tema: report: wrote %d files to %s/", R->n_files, R->out_dir);
    for (int i = 0; i < R->n_files; i++)
        if (strstr(R->files[i].path, "report.html"))
            fprintf(R->diag, " (open %s)", R->files[i].path);
    fputc('\n', R->diag);
}

static void free_report(report_ctx *R, report_texts *x)
{
    for (int i = 0; i < R->n_runs; i++) {
        json_object_put(R->runs[i].config);
        json_object_put(R->runs[i].final);
        json_object_put(R->runs[i].meta);
    }
    tema_cfg_free(R->yaml);
    tema_sb_free(&x->md);
    tema_sb_free(&x->text);
    tema_sb_free(&x->html_timing);
    tema_sb_free(&x->html);
    tema_sb_free(&x->tex_t);
    tema_sb_free(&x->csv_t);
    rep_arena_free(&R->ar);
}

tema_status tema_report(const char *exp_path, const tema_report_opts *o, tema_err *err)
{
    static const tema_report_opts defaults = {0};
    if (!o)
        o = &defaults;
    report_ctx ctx = {0}, *R = &ctx;
    R->diag = o->diag;
    snprintf(R->rule_for_curves, sizeof R->rule_for_curves, "optimistic");
    report_texts x = {0};
    table *tables = NULL;
    int n_tables = 0;
    bool curves = true, timing = true;
    tema_status st;
    if ((st = open_experiment(R, exp_path, o, err)) != TEMA_OK || (st = find_runs(R, exp_path, o, err)) != TEMA_OK ||
        (st = rep_report_block(R, &tables, &n_tables, &curves, &timing, err)) != TEMA_OK)
        goto done;
    snprintf(R->rule_for_curves, sizeof R->rule_for_curves, "%s", tema_rank_rule_name(tables[0].spec.rule));
    for (int i = 0; i < n_tables; i++)
        if ((st = rep_build_table(R, &tables[i], i, err)) != TEMA_OK)
            goto done;
    if ((st = tema_mkdirs(R->out_dir, err)) != TEMA_OK)
        goto done;
    if (!o->no_plots && (st = tema_mkdirs(R->plot_dir, err)) != TEMA_OK)
        goto done;
    unsigned formats = o->formats ? o->formats : TEMA_REPORT_ALL;
    md_head(R, &x.md);
    if ((st = write_tables(R, tables, n_tables, formats, &x, err)) != TEMA_OK ||
        (timing && (st = write_timing(R, formats, &x, err)) != TEMA_OK) ||
        (!o->no_plots && (st = draw_charts(R, tables, n_tables, curves, err)) != TEMA_OK))
        goto done;
    md_pending(R, exp_path, &x.md);
    if ((st = write_out(R, "report.md", &x.md, err)) != TEMA_OK)
        goto done;
    if (o->html) {
        rep_render_html(R, tables, n_tables, timing ? &x.html_timing : NULL, &x.html);
        if ((st = write_out(R, "report.html", &x.html, err)) != TEMA_OK)
            goto done;
    }
    if (o->out) {
        fputs(tema_sb_str(&x.md), o->out);
        fflush(o->out);
    }
    say_written(R);
done:
    if (st == TEMA_OK && (R->ar.oom || x.md.oom || x.text.oom || x.html.oom))
        st = tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    free_report(R, &x);
    return st;
}

static const char report_usage[] =
    "usage: tema report EXP.yaml [--format md|latex|csv|all] [--out DIR] [--results DIR] [--html]\n"
    "                  [--no-plots] [--all-runs] [--set key.path=value]...\n"
    "  Regenerates the tables (Markdown, LaTeX, CSV), the timing table and the plots of an\n"
    "  experiment from its run folders; prints the Markdown. --format takes a comma list.\n"
    "  --html also writes an HTML page; --no-plots skips the charts; --all-runs reports every finished\n"
    "  run folder of the experiment, not only those of its current grid. --set: the overrides the runs\n"
    "  were made with (as given to tema run), so the report finds that grid's runs.\n";

static int usage(const char *msg)
{
    if (msg)
        fprintf(stderr, "tema: report: %s\n\n", msg);
    fputs(report_usage, stderr);
    return 2;
}

int tema_report_main(int argc, char **argv)
{
    tema_report_opts o = {.out = stdout, .diag = stderr};
    const char *path = NULL;
    const char *sets[256]; /* --set values: argv's strings */
    o.overrides = sets;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "--format") || !strcmp(a, "--out") || !strcmp(a, "--results") || !strcmp(a, "--set")) &&
            i + 1 >= argc)
            return usage("this option takes a value");
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(report_usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--format")) {
            const char *v = argv[++i];
            o.formats = 0;
            char buf[128];
            snprintf(buf, sizeof buf, "%s", v);
            char *save = NULL;
            for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (!strcmp(tok, "md") || !strcmp(tok, "markdown"))
                    o.formats |= TEMA_REPORT_MD;
                else if (!strcmp(tok, "latex") || !strcmp(tok, "tex"))
                    o.formats |= TEMA_REPORT_LATEX;
                else if (!strcmp(tok, "csv"))
                    o.formats |= TEMA_REPORT_CSV;
                else if (!strcmp(tok, "all"))
                    o.formats |= TEMA_REPORT_ALL;
                else {
                    fprintf(stderr, "tema: report: --format: unknown format '%s'; use md, latex, csv or all\n", tok);
                    return 2;
                }
            }
        } else if (!strcmp(a, "--out")) {
            o.out_dir = argv[++i];
        } else if (!strcmp(a, "--results")) {
            o.results_dir = argv[++i];
        } else if (!strcmp(a, "--html")) {
            o.html = true;
        } else if (!strcmp(a, "--no-plots")) {
            o.no_plots = true;
        } else if (!strcmp(a, "--all-runs")) {
            o.all_runs = true;
        } else if (!strcmp(a, "--set")) {
            if (o.n_overrides == (int)(sizeof sets / sizeof sets[0]))
                return usage("more than 256 --set options");
            sets[o.n_overrides++] = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "tema: report: unknown option '%s'\n", a);
            return usage(NULL);
        } else if (!path) {
            path = a;
        } else {
            return usage("only one experiment file may be given");
        }
    }
    if (!path)
        return usage("missing the experiment file (EXP.yaml)");
    tema_err err = {0};
    if (tema_report(path, &o, &err) != TEMA_OK) {
        fprintf(stderr, "tema: error: %s\n", err.msg[0] ? err.msg : tema_status_name(err.code));
        return 1;
    }
    return 0;
}
