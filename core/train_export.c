/* core/train_export.c - what a trained run gives out: `tema export` (item tables per encoder and
 * per scoring stream, each user's state per stream, with index files) and `tema recommend` (the
 * top-k items of each user by the model's own ranking score, Eq. 17, as evaluation ranks them).
 * Part of the training module: it opens a run with tema_trained_open and scores with the
 * evaluation's code, so a recommendation ranks items exactly as the reported metrics did. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "host.h"
#include "results.h"
#include "train.h"
#include "train_internal.h"
#include "util.h"

typedef struct export_args {
    const char *run, *out, *checkpoint, *split, *users_file, *domain;
    int k, threads;
    bool keep_seen;
} export_args;

static const char export_usage[] =
    "usage: tema export RUN [--out DIR] [--checkpoint best|last] [--split test|valid|train] [--threads N]\n"
    "  RUN is a run folder, <results>/<experiment>/<run id>. Writes into DIR (default RUN/export/):\n"
    "    items.tsv, items-<i>-<modality>.npy     every encoder's item table [n_x+n_y, dim]\n"
    "    streams.tsv, stream-<k>-items.npy      each scoring stream's item table (what scores use)\n"
    "    users.tsv, stream-<k>-users.npy        each user's state after their sequence, per stream\n"
    "  A single-stream model scores item j for user u as <users[u], items[j]> * inv_temp.\n";

static const char recommend_usage[] =
    "usage: tema recommend RUN [--users FILE] [--k K] [--domain x|y] [--split test|valid|train]\n"
    "                      [--keep-seen] [--checkpoint best|last] [--out FILE] [--threads N]\n"
    "  The K best items of each user of the split (default test; --users: a file of user ids, one\n"
    "  per line) in the domain of the user's evaluation target (or --domain), by the score the\n"
    "  evaluation ranks with; items in the user's sequence are left out unless --keep-seen.\n"
    "  TSV to stdout (or FILE): user, domain, rank, item, asin, score, title.\n";

static int usage_error(const char *usage, const char *msg)
{
    if (msg) fprintf(stderr, "tema: %s\n\n", msg);
    fputs(usage, stderr);
    return 2;
}

static int parse_args(int argc, char **argv, bool recommend, export_args *a)
{
    const char *usage = recommend ? recommend_usage : export_usage;
    *a = (export_args){.checkpoint = "best", .split = "test", .k = 10};
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (!strcmp(o, "--out") && v) a->out = v;
        else if (!strcmp(o, "--checkpoint") && v) a->checkpoint = v;
        else if (!strcmp(o, "--split") && v) a->split = v;
        else if (!strcmp(o, "--threads") && v) a->threads = atoi(v);
        else if (recommend && !strcmp(o, "--users") && v) a->users_file = v;
        else if (recommend && !strcmp(o, "--domain") && v) a->domain = v;
        else if (recommend && !strcmp(o, "--k") && v) a->k = atoi(v);
        else if (recommend && !strcmp(o, "--keep-seen")) a->keep_seen = true, takes = false;
        else if (o[0] != '-' && !a->run) a->run = o, takes = false;
        else {
            char msg[256];
            snprintf(msg, sizeof msg, "unknown option or missing value: %s", o);
            return usage_error(usage, msg);
        }
        if (takes) i++;
    }
    if (!a->run) return usage_error(usage, "missing the run folder");
    if (strcmp(a->split, "test") && strcmp(a->split, "valid") && strcmp(a->split, "train"))
        return usage_error(usage, "--split takes test, valid or train");
    if (a->k < 1) return usage_error(usage, "--k takes a positive number");
    if (a->domain && strcmp(a->domain, "x") && strcmp(a->domain, "y"))
        return usage_error(usage, "--domain takes x or y");
    return 0;
}

static const tema_split *split_of(const tema_dataset *ds, const char *name)
{
    return !strcmp(name, "train") ? &ds->train : !strcmp(name, "valid") ? &ds->valid : &ds->test;
}

/* ---- export ---- */

static tema_status write_text(const char *dir, const char *name, const tema_sb *b, tema_err *err)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (b->oom) return tema_fail(err, TEMA_ENOMEM, "out of memory writing %s", path);
    return tema_write_file_atomic(path, tema_sb_str(b), b->n, err);
}

/* A backend tensor [rows, cols] to a host buffer and a .npy file. */
static tema_status write_tensor(tema_eval_ctx *c, const tema_tensor *t, const char *dir, const char *name,
                                tema_err *err)
{
    const int64_t rows = t->shape[0], cols = t->ndim > 1 ? t->shape[t->ndim - 1] : 1;
    float *host = malloc((size_t)(rows * cols) * sizeof *host + 1);
    if (!host) return tema_fail(err, TEMA_ENOMEM, "out of memory for %s", name);
    c->be->to_host(c->bs, host, t->data, (size_t)(rows * cols) * sizeof *host);
    tema_status st = c->be->sync(c->bs, err);
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (st == TEMA_OK) st = tema_write_npy(path, host, rows, cols, err);
    free(host);
    return st;
}

static tema_status export_items(tema_trained *t, const char *dir, tema_err *err)
{
    tema_eval_ctx *c = &t->eval;
    tema_model *m = c->model;
    const tema_dataset *ds = t->ds;
    tema_sb idx = {0};
    tema_sb_printf(&idx, "row\titem\tdomain\tasin\ttitle\n");
    for (int32_t i = 0; i < ds->n_x + ds->n_y; i++)
        tema_sb_printf(&idx, "%d\t%d\t%s\t%s\t%s\n", (int)i, (int)i, i < ds->n_x ? "X" : "Y",
                       ds->asin && ds->asin[i] ? ds->asin[i] : "", ds->title && ds->title[i] ? ds->title[i] : "");
    tema_status st = write_text(dir, "items.tsv", &idx, err);
    tema_sb_free(&idx);
    tema_graph_reset(c->g, false, 0);
    for (int i = 0; i < m->n_enc && st == TEMA_OK; i++) {
        tema_tensor *items = NULL;
        st = m->enc_ops[i]->forward(m->enc[i], c->g, &items, err);
        char name[160];
        snprintf(name, sizeof name, "items-%d-%s.npy", i, m->enc_ops[i]->modality(m->enc[i]));
        if (st == TEMA_OK) st = write_tensor(c, items, dir, name, err);
    }
    return st;
}

static const char *sequence_name(tema_seq_kind k) { return k == TEMA_SEQ_X ? "X" : k == TEMA_SEQ_Y ? "Y" : "X+Y"; }

/* Users: the state at the last position of each line of the split, per stream, batch by batch. */
static tema_status export_users(tema_trained *t, const tema_split *sp, const char *dir, tema_err *err)
{
    tema_eval_ctx *c = &t->eval;
    const int64_t n = sp->n_lines, L = c->bb->L, B = c->bb->B;
    float *users[TEMA_MAX_STREAMS] = {0}, *h = NULL;
    int64_t dims[TEMA_MAX_STREAMS] = {0};
    int ns = 0;
    int64_t *lines = malloc((size_t)B * sizeof *lines);
    tema_status st = lines ? TEMA_OK : tema_fail(err, TEMA_ENOMEM, "out of memory");
    for (int64_t s = 0; s < n && st == TEMA_OK; s += B) {
        const int nb = (int)(n - s < B ? n - s : B);
        for (int k = 0; k < nb; k++) lines[k] = s + k;
        tema_batch b;
        tema_batch_eval(c->bb, sp, c->n_x, lines, nb, &b);
        tema_stream streams[TEMA_MAX_STREAMS];
        tema_graph_reset(c->g, false, 0);
        if ((st = tema_model_forward(c->model, c->g, &b, streams, &ns, err)) != TEMA_OK) break;
        for (int k = 0; k < ns && st == TEMA_OK; k++) {
            const int64_t d = streams[k].h->shape[streams[k].h->ndim - 1];
            if (s == 0) {
                char name[64];
                snprintf(name, sizeof name, "stream-%d-items.npy", k);
                dims[k] = d;
                users[k] = malloc((size_t)((n > 0 ? n : 1) * d) * sizeof(float));
                if (!users[k]) st = tema_fail(err, TEMA_ENOMEM, "out of memory for %lld users", (long long)n);
                if (st == TEMA_OK) st = write_tensor(c, streams[k].items, dir, name, err);
            }
            float *hb = st == TEMA_OK ? realloc(h, (size_t)(nb * L * d) * sizeof *h) : NULL;
            if (st == TEMA_OK && !hb) st = tema_fail(err, TEMA_ENOMEM, "out of memory");
            if (st != TEMA_OK) break;
            h = hb;
            c->be->to_host(c->bs, h, streams[k].h->data, (size_t)(nb * L * d) * sizeof *h);
            if ((st = c->be->sync(c->bs, err)) != TEMA_OK) break;
            for (int q = 0; q < nb; q++)
                memcpy(users[k] + (s + q) * d, h + ((int64_t)q * L + L - 1) * d, (size_t)d * sizeof *h);
        }
    }
    tema_sb idx = {0};
    tema_sb_printf(&idx, "stream\tsequence\tweight\tinv_temp\tdim\n");
    for (int k = 0; k < ns && st == TEMA_OK; k++) {
        char name[64], path[4400];
        snprintf(name, sizeof name, "stream-%d-users.npy", k);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        st = tema_write_npy(path, users[k], n, dims[k], err);
    }
    /* the streams' weights and temperatures of this model (the same for every batch) */
    if (st == TEMA_OK && n > 0) {
        int64_t first = 0;
        tema_batch b;
        tema_batch_eval(c->bb, sp, c->n_x, &first, 1, &b);
        tema_stream streams[TEMA_MAX_STREAMS];
        tema_graph_reset(c->g, false, 0);
        st = tema_model_forward(c->model, c->g, &b, streams, &ns, err);
        for (int k = 0; k < ns && st == TEMA_OK; k++)
            tema_sb_printf(&idx, "%d\t%s\t%.9g\t%.9g\t%lld\n", k, sequence_name(streams[k].sequence),
                           (double)streams[k].weight, (double)streams[k].inv_temp, (long long)dims[k]);
    }
    if (st == TEMA_OK) st = write_text(dir, "streams.tsv", &idx, err);
    tema_sb_free(&idx);
    tema_sb_printf(&idx, "row\tuser\ttarget_domain\n");
    for (int64_t i = 0; i < n; i++)
        tema_sb_printf(&idx, "%lld\t%d\t%s\n", (long long)i, (int)(sp->user ? sp->user[i] : i),
                       !sp->target ? "" : sp->target[i] < c->n_x ? "X" : "Y");
    if (st == TEMA_OK) st = write_text(dir, "users.tsv", &idx, err);
    tema_sb_free(&idx);
    for (int k = 0; k < TEMA_MAX_STREAMS; k++) free(users[k]);
    free(h);
    free(lines);
    return st;
}

typedef tema_status (*trained_work)(tema_trained *t, const export_args *a, tema_err *err);

/* Both commands: parse, open the run with every plugin the registry finds, do the work, close,
 * say what failed. Exit status 0 ok, 1 failed, 2 usage. */
static int trained_cli(int argc, char **argv, bool recommend, trained_work work)
{
    export_args a;
    int rc = parse_args(argc, argv, recommend, &a);
    if (rc) return rc;
    tema_err err = {0};
    tema_registry *reg = tema_registry_new(tema_host_get());
    tema_status st = reg ? TEMA_OK : tema_fail(&err, TEMA_ENOMEM, "out of memory");
    if (st == TEMA_OK) {
        tema_registry_scan(reg);
        tema_trained t;
        if ((st = tema_trained_open(a.run, reg, a.checkpoint, a.threads, &t, &err)) == TEMA_OK) {
            st = work(&t, &a, &err);
            tema_trained_close(&t);
        }
    }
    tema_registry_free(reg);
    if (st != TEMA_OK) fprintf(stderr, "tema: error: %s\n", err.msg);
    return st == TEMA_OK ? 0 : 1;
}

static tema_status export_run(tema_trained *t, const export_args *a, tema_err *err)
{
    char dir[4200];
    size_t len = strlen(a->run);
    while (len > 1 && a->run[len - 1] == '/') len--;
    if (a->out) snprintf(dir, sizeof dir, "%s", a->out);
    else snprintf(dir, sizeof dir, "%.*s/export", (int)len, a->run);
    const tema_split *sp = split_of(t->ds, a->split);
    tema_status st;
    if ((st = tema_mkdirs(dir, err)) == TEMA_OK && (st = export_items(t, dir, err)) == TEMA_OK &&
        (st = export_users(t, sp, dir, err)) == TEMA_OK)
        fprintf(stderr, "tema: exported %d items, %lld users of %s (checkpoint %s) to %s\n",
                (int)(t->ds->n_x + t->ds->n_y), (long long)sp->n_lines, sp->file, t->checkpoint, dir);
    return st;
}

int tema_export_cli(int argc, char **argv) { return trained_cli(argc, argv, false, export_run); }

/* ---- recommend ---- */

/* The split's lines to recommend for: all, or those of the users listed in a file (the first
 * line of each user). */
static tema_status pick_lines(const tema_split *sp, const char *file, int64_t **out, int64_t *n_out, tema_err *err)
{
    *out = malloc((size_t)(sp->n_lines > 0 ? sp->n_lines : 1) * sizeof **out);
    *n_out = 0;
    if (!*out) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    if (!file) {
        for (int64_t i = 0; i < sp->n_lines; i++) (*out)[(*n_out)++] = i;
        return TEMA_OK;
    }
    FILE *f = fopen(file, "r");
    if (!f) return tema_fail(err, TEMA_ENOTFOUND, "%s: %s; hint: one user id per line", file, strerror(errno));
    char line[256];
    tema_status st = TEMA_OK;
    for (int ln = 1; fgets(line, sizeof line, f) && st == TEMA_OK; ln++) {
        char *end, *p = line + strspn(line, " \t");
        if (*p == '\n' || *p == '\0' || *p == '#') continue;
        long u = strtol(p, &end, 10);
        end += strspn(end, " \t\r\n");
        if (end == p || *end) {
            st = tema_fail(err, TEMA_EFORMAT, "%s:%d: '%.*s' is not a user id; hint: one integer per line", file, ln,
                           (int)strcspn(p, "\r\n"), p);
            break;
        }
        int64_t found = -1;
        for (int64_t i = 0; i < sp->n_lines && found < 0; i++)
            if ((sp->user ? sp->user[i] : i) == u) found = i;
        if (found < 0 || *n_out >= sp->n_lines)
            st = tema_fail(err, TEMA_ENOTFOUND, "%s:%d: user %ld has no line in %s; hint: pick users of that split, "
                                                "or another one with --split", file, ln, u, sp->file);
        else (*out)[(*n_out)++] = found;
    }
    fclose(f);
    return st;
}

/* Indices of the k largest finite scores of row (ties: lower index first), best first. */
static int top_k(const float *row, int32_t n, int k, int32_t *idx)
{
    int m = 0;
    for (int32_t j = 0; j < n; j++) {
        if (!isfinite(row[j]) || (m == k && !(row[j] > row[idx[m - 1]]))) continue;
        int at = m < k ? m++ : m - 1;
        while (at > 0 && row[j] > row[idx[at - 1]]) {
            idx[at] = idx[at - 1];
            at--;
        }
        idx[at] = j;
    }
    return m;
}

static void emit_rows(const tema_trained *t, const tema_split *sp, int64_t line, int dom, const float *row,
                      int32_t nd, int k, int32_t *idx, tema_sb *out)
{
    const int32_t lo = dom ? t->ds->n_x : 0;
    const int m = top_k(row, nd, k, idx);
    for (int r = 0; r < m; r++) {
        const int32_t item = lo + idx[r];
        tema_sb_printf(out, "%d\t%c\t%d\t%d\t%s\t%.6g\t%s\n", (int)(sp->user ? sp->user[line] : line), dom ? 'Y' : 'X',
                       r + 1, (int)item, t->ds->asin && t->ds->asin[item] ? t->ds->asin[item] : "", (double)row[idx[r]],
                       t->ds->title && t->ds->title[item] ? t->ds->title[item] : "");
    }
}

/* Score the chosen lines domain by domain (one product per batch, as evaluation does). */
static tema_status recommend(tema_trained *t, const export_args *a, const tema_split *sp, const int64_t *lines,
                             int64_t n, tema_sb *out, tema_err *err)
{
    tema_eval_ctx *c = &t->eval;
    const int32_t n_x = t->ds->n_x, n_y = t->ds->n_y, nd_max = n_x > n_y ? n_x : n_y;
    const int B = c->bb->B;
    float *scores = malloc((size_t)B * (size_t)nd_max * sizeof *scores);
    int64_t *group = malloc((size_t)(n > 0 ? n : 1) * sizeof *group);
    int32_t *idx = malloc((size_t)a->k * sizeof *idx);
    tema_status st = scores && group && idx ? TEMA_OK : tema_fail(err, TEMA_ENOMEM, "out of memory");
    for (int dom = 0; dom < 2 && st == TEMA_OK; dom++) {
        const int32_t lo = dom ? n_x : 0, nd = dom ? n_y : n_x;
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++) {
            const int64_t l = lines[i];
            const int d = a->domain ? a->domain[0] == 'y' : sp->target ? sp->target[l] >= n_x : 0;
            if (d == dom) group[m++] = l;
        }
        for (int64_t s = 0; s < m && st == TEMA_OK; s += B) {
            const int nb = (int)(m - s < B ? m - s : B);
            if ((st = tema_score_lines(c, sp, group + s, nb, dom, scores, err)) != TEMA_OK) break;
            for (int q = 0; q < nb; q++) {
                float *row = scores + (int64_t)q * nd;
                if (!a->keep_seen)
                    for (int64_t e = sp->off[group[s + q]]; e < sp->off[group[s + q] + 1]; e++) {
                        const int32_t it = sp->items[e] - lo;
                        if (it >= 0 && it < nd) row[it] = -INFINITY;
                    }
                emit_rows(t, sp, group[s + q], dom, row, nd, a->k, idx, out);
            }
        }
    }
    free(scores);
    free(group);
    free(idx);
    return st;
}

static tema_status recommend_run(tema_trained *t, const export_args *a, tema_err *err)
{
    const tema_split *sp = split_of(t->ds, a->split);
    int64_t *lines = NULL, n = 0;
    tema_sb out = {0};
    tema_sb_printf(&out, "user\tdomain\trank\titem\tasin\tscore\ttitle\n");
    tema_status st = pick_lines(sp, a->users_file, &lines, &n, err);
    if (st == TEMA_OK) st = recommend(t, a, sp, lines, n, &out, err);
    if (st == TEMA_OK && out.oom) st = tema_fail(err, TEMA_ENOMEM, "out of memory");
    if (st == TEMA_OK && a->out) st = tema_write_file_atomic(a->out, out.p, out.n, err);
    else if (st == TEMA_OK) fwrite(tema_sb_str(&out), 1, out.n, stdout);
    if (st == TEMA_OK)
        fprintf(stderr, "tema: top %d items for %lld users of %s (checkpoint %s)%s%s\n", a->k, (long long)n, sp->file,
                t->checkpoint, a->out ? " in " : "", a->out ? a->out : "");
    tema_sb_free(&out);
    free(lines);
    return st;
}

int tema_recommend_cli(int argc, char **argv) { return trained_cli(argc, argv, true, recommend_run); }
