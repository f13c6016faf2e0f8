/* core/report/runs.c - the run folders of an experiment: which finished runs count (the
 * manifest when it expands here), their config, final, meta, ranks.tsv and epochs.jsonl.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../grid.h"
#include "host.h"
#include "../registry.h"
#include "../run_id.h"
#include "report_internal.h"

/* Parses dir/name as JSON; NULL (and *missing = true) when the file is absent. */
static tema_status read_json(const char *dir, const char *name, json_object **out, bool *missing, tema_err *err)
{
    *out = NULL;
    if (missing)
        *missing = false;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = NULL;
    size_t len = 0;
    struct stat st;
    if (stat(path, &st) != 0) {
        if (missing)
            *missing = true;
        return TEMA_OK;
    }
    tema_status s = tema_read_file(path, &text, &len, err);
    if (s != TEMA_OK)
        return s;
    json_tokener *tok = json_tokener_new();
    if (!tok) {
        free(text);
        return tema_fail(err, TEMA_ENOMEM, "%s: out of memory", path);
    }
    json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error je = json_tokener_get_error(tok);
    json_tokener_free(tok);
    free(text);
    if (!o || je != json_tokener_success) {
        if (o)
            json_object_put(o);
        return tema_fail(err, TEMA_EFORMAT, "%s: not valid JSON (%s); was the run interrupted while writing it? "
                         "Re-run it with tema run --force", path, json_tokener_error_desc(je));
    }
    *out = o;
    return TEMA_OK;
}

static int cmp_case(const void *pa, const void *pb)
{
    const rank_case *a = pa, *b = pb;
    if (a->domain != b->domain)
        return a->domain < b->domain ? -1 : 1;
    if (a->user != b->user)
        return a->user < b->user ? -1 : 1;
    return (a->line > b->line) - (a->line < b->line);
}

/* ranks.tsv: "user domain target optimistic pessimistic mid" after a header line. */
tema_status rep_load_ranks(report_ctx *R, run *r, tema_err *err)
{
    if (r->ranks_state)
        return TEMA_OK;
    r->ranks_state = -1;
    char path[4096];
    snprintf(path, sizeof path, "%s/ranks.tsv", r->dir);
    struct stat st;
    if (stat(path, &st) != 0) {
        rep_note(R, "%s is missing: the per-user tests leave this run out", path);
        return TEMA_OK;
    }
    char *text = NULL;
    size_t len = 0;
    tema_status s = tema_read_file(path, &text, &len, err);
    if (s != TEMA_OK)
        return s;
    int64_t cap = 1;
    for (size_t i = 0; i < len; i++)
        cap += text[i] == '\n';
    r->cases = rep_alloc(&R->ar, (size_t)cap * sizeof *r->cases);
    if (!r->cases) {
        free(text);
        return tema_fail(err, TEMA_ENOMEM, "%s: out of memory", path);
    }
    int line_no = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        if (line_no == 1 && !strncmp(line, "user", 4))
            continue;
        if (!*line || *line == '\r')
            continue;
        rank_case c = {.line = line_no};
        char dom[8] = "";
        int target = 0;
        if (sscanf(line, "%" SCNd64 " %7s %d %lf %lf %lf", &c.user, dom, &target, &c.rank[0], &c.rank[1],
                   &c.rank[2]) != 6 ||
            (strcmp(dom, "X") && strcmp(dom, "Y"))) {
            free(text);
            return tema_fail(err, TEMA_EFORMAT,
                             "%s:%d: expected 'user domain target optimistic pessimistic mid' with domain X or "
                             "Y; re-run the run to rewrite it",
                             path, line_no);
        }
        c.domain = dom[0] == 'Y';
        r->cases[r->n_cases++] = c;
    }
    free(text);
    qsort(r->cases, (size_t)r->n_cases, sizeof *r->cases, cmp_case);
    r->domain_start[0] = 0;
    int64_t k = 0;
    while (k < r->n_cases && r->cases[k].domain == 0)
        k++;
    r->domain_start[1] = k;
    r->domain_start[2] = r->n_cases;
    r->ranks_state = 1;
    return TEMA_OK;
}

/* epochs.jsonl: train loss and validation MRR (rule of the first table) per epoch. */
void rep_load_epochs(report_ctx *R, run *r)
{
    if (r->epochs_state)
        return;
    r->epochs_state = -1;
    char path[4096];
    snprintf(path, sizeof path, "%s/epochs.jsonl", r->dir);
    char *text = NULL;
    size_t len = 0;
    tema_err e = {0};
    struct stat st;
    if (stat(path, &st) != 0 || tema_read_file(path, &text, &len, &e) != TEMA_OK)
        return;
    int cap = 1;
    for (size_t i = 0; i < len; i++)
        cap += text[i] == '\n';
    r->epochs = rep_alloc(&R->ar, (size_t)cap * sizeof *r->epochs);
    if (!r->epochs) {
        free(text);
        return;
    }
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_object *o = json_tokener_parse(line);
        if (!o)
            continue; /* a line cut by a crash: the rest is still worth plotting */
        epoch_point p = {.epoch = (int)rep_jnum(o, "epoch"), .loss = rep_jnum(o, "train_loss"),
                         .seconds = rep_jnum(o, "seconds")};
        for (int d = 0; d < 2; d++) {
            char key[64];
            snprintf(key, sizeof key, "valid.%s.%s.mrr", d ? "Y" : "X", R->rule_for_curves);
            p.valid_mrr[d] = rep_jnum(o, key);
        }
        json_object_put(o);
        if (p.epoch > 0)
            r->epochs[r->n_epochs++] = p;
    }
    free(text);
    r->epochs_state = 1;
}

static int cmp_str_natural(const void *a, const void *b)
{
    return rep_natural_cmp(*(char *const *)a, *(char *const *)b);
}

/* Finished run folders of the experiment (those with config.json and DONE). */
tema_status rep_scan_runs(report_ctx *R, tema_err *err)
{
    DIR *d = opendir(R->exp_dir);
    if (!d)
        return tema_fail(err, TEMA_ENOTFOUND,
                         "%s: no results for experiment '%s' (%s); run it first with tema run %s, or point "
                         "--results at the folder that holds %s/",
                         R->exp_dir, R->name, strerror(errno), R->exp_path, R->name);
    int cap = 16, n = 0;
    char **ids = malloc((size_t)cap * sizeof *ids);
    int unfinished = 0;
    for (struct dirent *e; ids && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char *dir = rep_path_join(&R->ar, R->exp_dir, e->d_name);
        if (!dir || !tema_file_exists(dir, "config.json"))
            continue;
        if (!tema_file_exists(dir, "DONE")) {
            unfinished++;
            continue;
        }
        if (n == cap) {
            char **grown = realloc(ids, (size_t)(cap *= 2) * sizeof *ids);
            if (!grown) {
                free(ids);
                ids = NULL;
                break;
            }
            ids = grown;
        }
        ids[n++] = rep_strdup(&R->ar, e->d_name);
    }
    closedir(d);
    if (!ids || R->ar.oom) {
        free(ids);
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    }
    qsort(ids, (size_t)n, sizeof *ids, cmp_str_natural);
    R->runs = rep_alloc(&R->ar, (size_t)(n ? n : 1) * sizeof *R->runs);
    if (!R->runs) {
        free(ids);
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    }
    tema_status st = TEMA_OK;
    for (int i = 0; i < n && st == TEMA_OK; i++) {
        run *r = &R->runs[R->n_runs];
        memset(r, 0, sizeof *r);
        r->id = ids[i];
        r->dir = rep_path_join(&R->ar, R->exp_dir, ids[i]);
        r->order = -1;
        bool missing = false;
        if ((st = read_json(r->dir, "config.json", &r->config, NULL, err)) != TEMA_OK)
            break;
        /* seeds of one cell may run at other thread counts (or resume): still one cell */
        tema_run_config_strip_execution(r->config);
        if ((st = read_json(r->dir, "final.json", &r->final, &missing, err)) != TEMA_OK)
            break;
        if (missing) {
            rep_note(R, "%s has DONE but no final.json: left out; re-run it with tema run --force", r->dir);
            json_object_put(r->config);
            continue;
        }
        if ((st = read_json(r->dir, "meta.json", &r->meta, NULL, err)) != TEMA_OK)
            break;
        json_object *seed = rep_jget(r->config, "train.seed");
        r->seed = seed ? json_object_get_int64(seed) : -1;
        R->n_runs++;
    }
    free(ids);
    R->n_unfinished = unfinished;
    return st;
}

/* Runs of the manifest only, in its order; unfinished entries are counted as pending. */
void rep_apply_manifest(report_ctx *R)
{
    tema_registry *reg = tema_registry_new(tema_host_get());
    if (!reg)
        return;
    tema_registry_scan(reg);
    tema_grid *g = NULL;
    tema_err e = {0};
    if (tema_grid_expand(R->exp_path, R->overrides, R->n_overrides, reg, R->results_dir, NULL, &g, &e) != TEMA_OK) {
        rep_note(R, "cannot expand %s into its runs here (%s); reporting every finished run under %s", R->exp_path,
                 e.msg, R->exp_dir);
        tema_registry_free(reg);
        return;
    }
    R->have_manifest = true;
    R->grid_keys = rep_alloc(&R->ar, (g->n_keys + 1) * sizeof *R->grid_keys);
    for (size_t k = 0; R->grid_keys && k < g->n_keys; k++)
        if (strcmp(g->keys[k], "train.seed"))
            R->grid_keys[R->n_grid_keys++] = rep_strdup(&R->ar, g->keys[k]);
    for (size_t i = 0; i < g->n_runs; i++) {
        bool found = false;
        for (int k = 0; k < R->n_runs; k++)
            if (!strcmp(R->runs[k].id, g->runs[i].id)) {
                R->runs[k].order = (long)i;
                found = true;
            }
        if (!found)
            R->n_pending++;
    }
    tema_grid_free(g);
    tema_registry_free(reg);
    int kept = 0;
    for (int k = 0; k < R->n_runs; k++) {
        if (R->runs[k].order < 0) {
            R->n_stale++;
            json_object_put(R->runs[k].config);
            json_object_put(R->runs[k].final);
            json_object_put(R->runs[k].meta);
            continue;
        }
        R->runs[kept++] = R->runs[k];
    }
    R->n_runs = kept;
    if (R->n_stale)
        rep_note(R, "%d finished run(s) under %s are not in the current grid of %s (an earlier version?): left out; "
                 "--all-runs includes them", R->n_stale, R->exp_dir, R->exp_path);
}
