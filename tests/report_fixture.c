/* tests/report_fixture.c - the results folders test_report.c reports on, built by hand, and
 * helpers to read what the report wrote (report_fixture.h).
 *
 * The fixture: experiment "rep", three attention plugins (single = the baseline, multi, gru)
 * x seeds 1, 2, 3, 40 test users per domain. Ranks follow ranks() below; final.json holds
 * their means, so the expected numbers can be recomputed independently. They were printed
 * by this script (Python 3.11, numpy 2, scipy 1.17.1):
 *
 *   import numpy as np
 *   from scipy import stats
 *   N = 40                                    # test users per domain
 *   def ranks(k, s, d):                       # row k (0 single, 1 multi, 2 gru), seed s, domain d
 *       out = []
 *       for u in range(N):
 *           base = 1 + (u * 7 + s * 3 + d * 5) % 23
 *           if k == 0: r = base
 *           elif k == 1: r = max(1, base - 1 - (u % 3 == 0)) if d == 0 else base + (u + s) % 3 - 1
 *           else: r = base + 2 if d == 0 else base + (u % 3 == 0) - (u % 7 == 0)
 *           out.append(max(r, 1))
 *       return np.array(out, float)
 *   metric = {"mrr": lambda r: 1 / r, "ndcg@10": lambda r: np.where(r <= 10, 1 / np.log2(r + 1), 0.0)}
 *   seeds = [1, 2, 3]
 *   for k in (0, 1, 2):
 *       for d in (0, 1):
 *           for m, f in metric.items():
 *               per_seed = [f(ranks(k, s, d)).mean() for s in seeds]
 *               line = f"row {k} dom {'XY'[d]} {m}: mean={np.mean(per_seed):.4f} std={np.std(per_seed, ddof=1):.4f}"
 *               if k:
 *                   a = np.concatenate([f(ranks(k, s, d)) for s in seeds])
 *                   b = np.concatenate([f(ranks(0, s, d)) for s in seeds])
 *                   pt = stats.ttest_rel(a, b).pvalue
 *                   pw = stats.wilcoxon(a, b, correction=True).pvalue
 *                   pr = stats.ttest_rel(per_seed, [f(ranks(0, s, d)).mean() for s in seeds]).pvalue
 *                   line += f" p_user_t={pt!r} p_user_w={pw!r} p_run_t={pr!r}"
 *               print(line)
 */
#include "report_fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "report.h"
#include "results.h"
#include "testutil.h"
#include "util.h"

#define N_USERS 40
static const char *const plugins[3] = {"single", "multi", "gru"};
const char *fixture_encoders[3]; /* NULL: no model.encoders in run k's config */
const char *fixture_backend[5];  /* by seed; NULL: no backend section in the config */

static int fixture_rank(int k, int s, int d, int u)
{
    int base = 1 + (u * 7 + s * 3 + d * 5) % 23, r;
    if (k == 0)
        r = base;
    else if (k == 1)
        r = d == 0 ? base - 1 - (u % 3 == 0) : base + (u + s) % 3 - 1;
    else
        r = d == 0 ? base + 2 : base + (u % 3 == 0) - (u % 7 == 0);
    return r < 1 ? 1 : r;
}

static double ndcg10(double r) { return r <= 10 ? 1 / log2(r + 1) : 0; }

/* noinline: at -O3, GCC 12 takes the returned buffer for a pointer to the local `data`
 * (a false -Wdangling-pointer) */
__attribute__((noinline)) char *slurp(const char *path)
{
    char *data = NULL;
    size_t len;
    tema_err err = {0};
    ck_assert_msg(tema_read_file(path, &data, &len, &err) == TEMA_OK, "%s", err.msg);
    return data;
}

void write_file(const char *dir, const char *name, const char *text)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    tu_write(p, text);
}

/* One finished run folder of the "rep" experiment; returns its folder in `dir`. */
void make_run(const char *exp_dir, int k, int s, bool done, char *dir, size_t cap)
{
    char config[1024], enc[512] = "", be[256] = "";
    if (fixture_encoders[k]) snprintf(enc, sizeof enc, "\"encoders\":%s,", fixture_encoders[k]);
    if (fixture_backend[s]) snprintf(be, sizeof be, "\"backend\":%s,", fixture_backend[s]);
    snprintf(config, sizeof config,
             "{\"name\":\"rep\",%s\"dataset\":{\"path\":\"synthetic\"},\"model\":{%s\"attention\":{\"plugin\":\"%s\","
             "\"blocks\":2}},\"train\":{\"epochs\":20,\"seed\":%d},\"eval\":{\"metrics\":[\"mrr\",\"ndcg@10\"]}}",
             be, enc, plugins[k], s);
    char id[17];
    tema_results_run_id(config, id);
    snprintf(dir, cap, "%s/%s", exp_dir, id);
    tema_err err = {0};
    ck_assert_msg(tema_mkdirs(dir, &err) == TEMA_OK, "%s", err.msg);
    write_file(dir, "config.json", config);
    char yaml[256];
    snprintf(yaml, sizeof yaml, "name: rep\nmodel:\n  attention: {plugin: %s, blocks: 2}\ntrain: {seed: %d}\n",
             plugins[k], s);
    write_file(dir, "config.yaml", yaml);
    write_file(dir, "meta.json", "{\"backend\": \"cpu\", \"threads\": 2, \"tema_version\": \"0.1.0\"}\n");

    /* ranks.tsv and the means final.json reports; users of X are 0..39, of Y 100..139 */
    char *ranks = malloc(64 * (2 * N_USERS + 2));
    size_t n = (size_t)sprintf(ranks, "user\tdomain\ttarget\toptimistic\tpessimistic\tmid\n");
    double mean[2][3][2] = {{{0}}};
    for (int d = 0; d < 2; d++)
        for (int u = 0; u < N_USERS; u++) {
            double opt = fixture_rank(k, s, d, u), pes = opt + (u % 5 == 0), mid = (opt + pes) / 2;
            n += (size_t)sprintf(ranks + n, "%d\t%s\t%d\t%.1f\t%.1f\t%.1f\n", d * 100 + u, d ? "Y" : "X", 7 + u, opt,
                                 pes, mid);
            double rr[3] = {opt, pes, mid};
            for (int r = 0; r < 3; r++) {
                mean[d][r][0] += 1 / rr[r] / N_USERS;
                mean[d][r][1] += ndcg10(rr[r]) / N_USERS;
            }
        }
    write_file(dir, "ranks.tsv", ranks);
    free(ranks);

    static const char *const rules[3] = {"optimistic", "pessimistic", "mid"};
    char final[4096];
    n = (size_t)sprintf(final, "{\"test\": {");
    for (int d = 0; d < 2; d++) {
        n += (size_t)sprintf(final + n, "%s\"%s\": {\"cases\": %d", d ? ", " : "", d ? "Y" : "X", N_USERS);
        for (int r = 0; r < 3; r++)
            n += (size_t)sprintf(final + n, ", \"%s\": {\"mrr\": %.17g, \"ndcg@10\": %.17g}", rules[r], mean[d][r][0],
                                 mean[d][r][1]);
        n += (size_t)sprintf(final + n, "}");
    }
    double spe = 1.5 + 0.1 * s + 0.5 * k;
    int epochs = 10 + s;
    n += (size_t)sprintf(final + n,
                         "}, \"valid\": null, \"best_epoch\": %d, \"epochs_run\": %d, \"stopped_early\": %s, "
                         "\"total_seconds\": %.17g, \"seconds_per_epoch\": %.17g, \"peak_memory_bytes\": %d, "
                         "\"warnings\": []}\n",
                         5 + s, epochs, s == 2 ? "true" : "false", spe * epochs, spe, (100 + 10 * k + s) << 20);
    write_file(dir, "final.json", final);

    char *lines = malloc(256 * (size_t)(epochs + 1));
    n = 0;
    for (int e = 1; e <= epochs; e++) {
        n += (size_t)sprintf(lines + n, "{\"epoch\":%d,\"steps\":10,\"train_loss\":%.4f,\"seconds\":%.3f", e,
                             5 - 0.1 * e - 0.01 * s - 0.2 * k, spe);
        if (e % 2 == 0)
            n += (size_t)sprintf(lines + n,
                                 ",\"valid\":{\"X\":{\"cases\":40,\"optimistic\":{\"mrr\":%.4f}},\"Y\":{\"cases\":40,"
                                 "\"optimistic\":{\"mrr\":%.4f}}}",
                                 0.05 + 0.01 * e + 0.002 * s, 0.03 + 0.005 * e + 0.001 * k);
        n += (size_t)sprintf(lines + n, "}\n");
    }
    write_file(dir, "epochs.jsonl", lines);
    free(lines);
    write_file(dir, "status", done ? "done\n" : "running\n");
    if (done)
        write_file(dir, "DONE", "");
}

const char rep_yaml[] =
    "name: rep\n"
    "model:\n"
    "  attention: {plugin: single}\n"
    "report:\n"
    "  tables:\n"
    "    - name: main\n"
    "      title: Main results\n"
    "      rows: {key: model.attention.plugin, labels: {single: SASRec, multi: TEMA, gru: GRU4Rec}}\n"
    "      row_title: Model\n"
    "      columns: [domain]\n"
    "      metrics: [mrr, ndcg@10]\n"
    "      baseline: single\n"
    "    - name: ablation\n"
    "      rows:\n"
    "        - {label: Base, where: {model.attention.plugin: single}}\n"
    "        - {label: Multi-Attn, where: {model.attention.plugin: multi, model.attention.blocks: 2}}\n"
    "      domains: [X]\n"
    "      metrics: [mrr]\n"
    "      rule: mid\n"
    "      percent: true\n";

/* A fresh fixture: tmp/rep.yaml and tmp/results/rep/<9 finished runs + 1 unfinished>. */
const char *make_fixture(const char *yaml)
{
    static char root[512];
    snprintf(root, sizeof root, "%s", tu_tmpdir());
    char exp_dir[600], dir[700], path[600];
    snprintf(exp_dir, sizeof exp_dir, "%s/results/rep", root);
    for (int k = 0; k < 3; k++)
        for (int s = 1; s <= 3; s++)
            make_run(exp_dir, k, s, true, dir, sizeof dir);
    /* seed 4 of multi never finished: it must not count */
    make_run(exp_dir, 1, 4, false, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/rep.yaml", root);
    tu_write(path, yaml);
    return root;
}

tema_status report_in(const char *root, const char *yaml_name, bool html, tema_err *err)
{
    char yaml[600], results[600];
    snprintf(yaml, sizeof yaml, "%s/%s", root, yaml_name);
    snprintf(results, sizeof results, "%s/results", root);
    tema_report_opts o = {.results_dir = results, .html = html, .all_runs = true, .diag = stderr};
    return tema_report(yaml, &o, err);
}

char *report_file(const char *root, const char *exp, const char *name)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/results/%s/report/%s", root, exp, name);
    return slurp(p);
}

/* The line of the Markdown table whose first cell is `label`. */
char *md_row(const char *md, const char *label)
{
    char key[128];
    snprintf(key, sizeof key, "\n| %s |", label);
    const char *p = strstr(md, key);
    ck_assert_msg(p != NULL, "no row '%s' in:\n%s", label, md);
    p++;
    const char *end = strchr(p, '\n');
    return strndup(p, (size_t)(end - p));
}

void check_plot(const char *root, const char *exp, const char *stem)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/results/%s/report/plots", root, exp);
    check_plot_files(dir, stem);
}

void check_plot_files(const char *dir, const char *stem)
{
    static const char *const ext[3] = {"svg", "png", "pdf"};
    char p[1200];
    for (int k = 0; k < 3; k++) {
        snprintf(p, sizeof p, "%s/%s.%s", dir, stem, ext[k]);
        struct stat st;
        ck_assert_msg(stat(p, &st) == 0, "%s is missing", p);
        ck_assert_msg(st.st_size > 1000, "%s has only %lld bytes", p, (long long)st.st_size);
        char *data = slurp(p);
        if (k == 1)
            ck_assert_msg(!memcmp(data, "\x89PNG\r\n\x1a\n", 8), "%s is not a PNG", p);
        else if (k == 2)
            ck_assert_msg(!memcmp(data, "%PDF-", 5), "%s is not a PDF", p);
        else
            ck_assert_msg(!strncmp(data, "<?xml", 5) && strstr(data, "<svg") && strstr(data, "</svg>"),
                          "%s is not an SVG file", p);
        free(data);
    }
}

int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The text of a PLplot SVG, each <text> element a line (PLplot writes every character as a
 * numeric entity inside <tspan>s). Caller frees. */
char *svg_text(const char *path)
{
    char *svg = slurp(path), *out = calloc(strlen(svg) + 1, 1), *w = out;
    for (const char *p = svg; (p = strstr(p, "<tspan"));) {
        p = strchr(p, '>') + 1;
        const char *end = strstr(p, "</tspan>");
        while (p < end) {
            if (!strncmp(p, "&#x", 3)) {
                char *semi;
                *w++ = (char)strtol(p + 3, &semi, 16);
                p = semi + 1;
            } else {
                *w++ = *p++;
            }
        }
        if (!strncmp(end + 8, "</text>", 7)) *w++ = '\n';
        p = end;
    }
    free(svg);
    return out;
}
