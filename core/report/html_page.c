/* core/report/html_page.c - report.html: one self-contained page with the tables, the charts
 * as data: URIs and the resolved configs, linked to each other.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "report_internal.h"

static void add_base64(tema_sb *b, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char out[4];
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        out[0] = tab[v >> 18 & 63];
        out[1] = tab[v >> 12 & 63];
        out[2] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[3] = i + 2 < n ? tab[v & 63] : '=';
        tema_sb_addn(b, out, 4);
    }
}

/* Links to the chart's files beside the page (plots/ next to report.html): the PDF for a
 * paper, the PNG for slides. */
static void add_file_links(tema_sb *b, const char *stem)
{
    const char *slash = strrchr(stem, '/');
    const char *name = slash ? slash + 1 : stem;
    static const char *const ext[] = {"pdf", "png", "svg"};
    bool first = true;
    for (size_t k = 0; k < sizeof ext / sizeof ext[0]; k++) {
        char path[4200];
        struct stat st;
        snprintf(path, sizeof path, "%s.%s", stem, ext[k]);
        if (stat(path, &st) != 0)
            continue;
        tema_sb_add(b, first ? " (" : ", ");
        tema_sb_add(b, "<a href=\"plots/");
        rep_add_escaped(b, name, FMT_HTML);
        tema_sb_printf(b, ".%s\">%s</a>", ext[k], ext[k]);
        first = false;
    }
    if (!first)
        tema_sb_add(b, ")");
}

/* <figure> with the chart as a data: URI (SVG, else PNG); nothing when neither file exists. */
static void add_figure(tema_sb *b, const char *stem, const char *id, const char *caption)
{
    if (!stem)
        return;
    static const char *const kinds[][2] = {{".svg", "image/svg+xml"}, {".png", "image/png"}};
    for (int k = 0; k < 2; k++) {
        char path[4200];
        snprintf(path, sizeof path, "%s%s", stem, kinds[k][0]);
        char *data = NULL;
        size_t len = 0;
        tema_err e = {0};
        struct stat st;
        if (stat(path, &st) != 0 || tema_read_file(path, &data, &len, &e) != TEMA_OK)
            continue;
        tema_sb_printf(b, "<figure id=\"%s\"><img alt=\"", id);
        rep_add_escaped(b, caption, FMT_HTML);
        tema_sb_printf(b, "\" src=\"data:%s;base64,", kinds[k][1]);
        add_base64(b, (const unsigned char *)data, len);
        tema_sb_add(b, "\"><figcaption>");
        rep_add_escaped(b, caption, FMT_HTML);
        add_file_links(b, stem);
        tema_sb_add(b, "</figcaption></figure>\n");
        free(data);
        return;
    }
}

/* From the doctype to the table of contents. */
static void html_head(report_ctx *R, table *tables, int n_tables, const tema_sb *timing_html, tema_sb *b)
{
    tema_sb_add(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>tema report: ");
    rep_add_escaped(b, R->name, FMT_HTML);
    tema_sb_add(b, "</title>\n<style>\n"
                "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}\n"
                "nav{background:#f6f8fa;padding:.5em 1em;border-radius:6px}\n"
                "table{border-collapse:collapse;margin:1em 0;font-variant-numeric:tabular-nums}\n"
                "th,td{padding:.3em .7em;text-align:right;border-bottom:1px solid #ddd}\n"
                "th[scope=row],td:first-child{text-align:left}\n"
                "thead th{border-bottom:2px solid #444;text-align:center}\n"
                "tr.baseline{background:#f4f4f4}\n.sig{color:#b00020}\n.legend{font-size:90%;color:#555}\n"
                "figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}\n"
                "pre{background:#f6f8fa;padding:1em;overflow:auto;font-size:85%}\n"
                "</style>\n</head>\n<body>\n<h1>Experiment ");
    rep_add_escaped(b, R->name, FMT_HTML);
    tema_sb_printf(b, "</h1>\n<p>%d finished runs in %d cells", R->n_runs, R->n_groups);
    if (R->n_pending)
        tema_sb_printf(b, ", %d pending", R->n_pending);
    tema_sb_add(b, "; from ");
    rep_add_escaped(b, R->exp_dir, FMT_HTML);
    tema_sb_add(b, ".</p>\n<nav><ul>\n");
    for (int i = 0; i < n_tables; i++) {
        tema_sb_printf(b, "<li><a href=\"#table-%s\">", tables[i].spec.name);
        rep_add_escaped(b, tables[i].spec.title, FMT_HTML);
        tema_sb_add(b, "</a></li>\n");
    }
    if (timing_html)
        tema_sb_add(b, "<li><a href=\"#timing\">Timing and memory</a></li>\n");
    tema_sb_add(b, "<li><a href=\"#curves\">Training curves</a></li>\n"
                "<li><a href=\"#configs\">Configurations</a></li>\n</ul></nav>\n");
}

static void html_tables(report_ctx *R, table *tables, int n_tables, tema_sb *b)
{
    for (int i = 0; i < n_tables; i++) {
        table *T = &tables[i];
        tema_sb_printf(b, "<section id=\"table-%s\">\n<h2>", T->spec.name);
        rep_add_escaped(b, T->spec.title, FMT_HTML);
        tema_sb_add(b, "</h2>\n");
        rep_render_html_table(R, T, b);
        char id[300], cap[600];
        snprintf(id, sizeof id, "fig-%s-bars", T->spec.name);
        snprintf(cap, sizeof cap, "%s: mean and std per cell, a panel per metric", T->spec.title);
        add_figure(b, T->bars_stem, id, cap);
        for (int d = 0; d < 2; d++) {
            snprintf(id, sizeof id, "fig-%s-heatmap-%s", T->spec.name, d ? "Y" : "X");
            snprintf(cap, sizeof cap, "%s: heatmap, domain %s", T->spec.title, d ? "Y" : "X");
            add_figure(b, T->heatmap_stems[d], id, cap);
        }
        tema_sb_add(b, "</section>\n");
    }
}

static void html_curves(report_ctx *R, tema_sb *b)
{
    tema_sb_add(b, "<section id=\"curves\">\n<h2>Training curves</h2>\n");
    bool any = false;
    for (int g = 0; g < R->n_groups; g++) {
        char id[REP_SLUG_MAX + 32], cap[600];
        snprintf(id, sizeof id, "curves-%s", R->groups[g].slug);
        snprintf(cap, sizeof cap, "%s: loss and validation MRR per epoch, one line per seed", R->groups[g].label);
        if (R->groups[g].curves_stem) {
            add_figure(b, R->groups[g].curves_stem, id, cap);
            tema_sb_printf(b, "<p><a href=\"#%s\">configuration</a></p>\n", R->groups[g].anchor);
            any = true;
        }
    }
    if (!any)
        tema_sb_add(b, "<p>No training curves (no epochs.jsonl, or plots were turned off).</p>\n");
    tema_sb_add(b, "</section>\n");
}

/* The resolved config of every cell: config.yaml as the run wrote it, else config.json. */
static void html_configs(report_ctx *R, tema_sb *b)
{
    tema_sb_add(b, "<section id=\"configs\">\n<h2>Configurations</h2>\n");
    for (int g = 0; g < R->n_groups; g++) {
        group *gr = &R->groups[g];
        tema_sb_printf(b, "<details id=\"%s\" open><summary>", gr->anchor);
        rep_add_escaped(b, gr->label, FMT_HTML);
        tema_sb_printf(b, " &mdash; %d run%s:", gr->n_runs, gr->n_runs == 1 ? "" : "s");
        for (int i = 0; i < gr->n_runs; i++) {
            const run *r = &R->runs[gr->runs[i]];
            tema_sb_printf(b, " <code>%s</code> (seed %lld)", r->id, (long long)r->seed);
        }
        if (gr->curves_stem)
            tema_sb_printf(b, " &middot; <a href=\"#curves-%s\">curves</a>", gr->slug);
        tema_sb_add(b, "</summary>\n<pre>");
        const run *r0 = &R->runs[gr->runs[0]];
        char *yaml = NULL;
        size_t len = 0;
        tema_err e = {0};
        char path[4200];
        snprintf(path, sizeof path, "%s/config.yaml", r0->dir);
        struct stat st;
        if (stat(path, &st) == 0 && tema_read_file(path, &yaml, &len, &e) == TEMA_OK) {
            rep_add_escaped(b, yaml, FMT_HTML);
            free(yaml);
        } else {
            int flags = JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED;
            rep_add_escaped(b, json_object_to_json_string_ext(r0->config, flags), FMT_HTML);
        }
        tema_sb_add(b, "</pre>\n</details>\n");
    }
    tema_sb_add(b, "</section>\n");
}

void rep_render_html(report_ctx *R, table *tables, int n_tables, const tema_sb *timing_html, tema_sb *b)
{
    html_head(R, tables, n_tables, timing_html, b);
    html_tables(R, tables, n_tables, b);
    if (timing_html) {
        tema_sb_add(b, "<section id=\"timing\">\n<h2>Timing and memory</h2>\n");
        tema_sb_add(b, tema_sb_str(timing_html));
        tema_sb_add(b, "</section>\n");
    }
    html_curves(R, b);
    html_configs(R, b);
    /* lets a headless browser (tests/test_report.c) tell that every chart decoded */
    tema_sb_add(b, "<script>\nwindow.addEventListener('load', function () {\n"
                "  var ok = 0, im = document.images;\n"
                "  for (var i = 0; i < im.length; i++) if (im[i].complete && im[i].naturalWidth > 0) ok++;\n"
                "  document.body.setAttribute('data-images-ok', ok + '/' + im.length);\n});\n</script>\n"
                "</body>\n</html>\n");
}
