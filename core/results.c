/* core/results.c - run folders, JSON records, the ranks table and the run summary. */
#include "results.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tema_build_config.h"
#include "util.h"

struct tema_run {
    char *dir;
    char id[17];
    char *exp_name;
    char *config_json;
    char *config_yaml;
    char *best_path;
    char *last_path;
    time_t start;
};

static const char *const domain_names[2] = {"X", "Y"};

void tema_results_run_id(const char *config_json, char id[17])
{
    uint64_t h = tema_hash64(config_json, strlen(config_json));
    snprintf(id, 17, "%016" PRIx64, h);
}

/* malloc'ed "a/b"; NULL on OOM. */
static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (!p)
        return NULL;
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

void tema_results_close(tema_run *run)
{
    if (!run)
        return;
    free(run->dir);
    free(run->exp_name);
    free(run->config_json);
    free(run->config_yaml);
    free(run->best_path);
    free(run->last_path);
    free(run);
}

tema_status tema_results_open(const char *results_dir, const char *exp_name, const char *config_json,
                              const char *config_yaml, tema_run **out, tema_run_state *state, tema_err *err)
{
    return tema_results_open_id(results_dir, exp_name, NULL, config_json, config_yaml, out, state, err);
}

tema_status tema_results_open_id(const char *results_dir, const char *exp_name, const char *run_id,
                                 const char *config_json, const char *config_yaml, tema_run **out,
                                 tema_run_state *state, tema_err *err)
{
    *out = NULL;
    if (!exp_name || !*exp_name || strchr(exp_name, '/') || !strcmp(exp_name, ".") || !strcmp(exp_name, ".."))
        return tema_fail(err, TEMA_EINVAL,
                         "experiment name '%s' cannot be a folder name; use letters, digits, '-', '_' and '.'",
                         exp_name ? exp_name : "(null)");
    if (!config_json)
        return tema_fail(err, TEMA_EINVAL, "results: no resolved config JSON given (internal error)");
    if (!results_dir || !*results_dir)
        results_dir = "results";
    tema_run *run = calloc(1, sizeof *run);
    if (!run)
        return tema_fail(err, TEMA_ENOMEM, "results: out of memory");
    if (run_id) snprintf(run->id, sizeof run->id, "%s", run_id);
    else tema_results_run_id(config_json, run->id);
    char *exp_dir = join(results_dir, exp_name);
    run->dir = exp_dir ? join(exp_dir, run->id) : NULL;
    free(exp_dir);
    run->exp_name = strdup(exp_name);
    run->config_json = strdup(config_json);
    run->config_yaml = xstrdup(config_yaml);
    run->best_path = run->dir ? join(run->dir, "best.bin") : NULL;
    run->last_path = run->dir ? join(run->dir, "last.bin") : NULL;
    if (!run->dir || !run->exp_name || !run->config_json || (config_yaml && !run->config_yaml) ||
        !run->best_path || !run->last_path) {
        tema_results_close(run);
        return tema_fail(err, TEMA_ENOMEM, "results: out of memory");
    }
    tema_status st = tema_mkdirs(run->dir, err);
    if (st != TEMA_OK) {
        tema_results_close(run);
        return st;
    }
    tema_remove_stale_temps(run->dir);
    if (tema_file_exists(run->dir, "DONE"))
        *state = TEMA_RUN_FINISHED;
    else if (tema_file_exists(run->dir, "status") || tema_file_exists(run->dir, "config.json"))
        *state = TEMA_RUN_INTERRUPTED;
    else
        *state = TEMA_RUN_NEW;
    run->start = time(NULL);
    *out = run;
    return TEMA_OK;
}

const char *tema_results_dir(const tema_run *run) { return run->dir; }
const char *tema_results_id(const tema_run *run) { return run->id; }
const char *tema_results_best_path(const tema_run *run) { return run->best_path; }
const char *tema_results_last_path(const tema_run *run) { return run->last_path; }

static tema_status write_text(const tema_run *run, const char *name, const char *text, tema_err *err)
{
    char *path = join(run->dir, name);
    if (!path)
        return tema_fail(err, TEMA_ENOMEM, "results: out of memory");
    tema_status st = tema_write_file_atomic(path, text, strlen(text), err);
    free(path);
    return st;
}

static tema_status remove_file(const tema_run *run, const char *name, tema_err *err)
{
    char *path = join(run->dir, name);
    if (!path)
        return tema_fail(err, TEMA_ENOMEM, "results: out of memory");
    tema_status st = TEMA_OK;
    if (unlink(path) != 0 && errno != ENOENT)
        st = tema_fail(err, TEMA_EIO, "%s: cannot remove: %s; check the folder's permissions", path,
                       strerror(errno));
    free(path);
    return st;
}

/* Writes obj (consumed) as a pretty JSON file with a trailing newline. */
static tema_status write_json(const tema_run *run, const char *name, json_object *obj, tema_err *err)
{
    if (!obj)
        return tema_fail(err, TEMA_ENOMEM, "results: out of memory");
    const char *s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                            JSON_C_TO_STRING_NOSLASHESCAPE);
    tema_status st;
    size_t len = s ? strlen(s) : 0;
    char *text = s ? malloc(len + 2) : NULL;
    if (!text) {
        st = tema_fail(err, TEMA_ENOMEM, "results: out of memory");
    } else {
        memcpy(text, s, len);
        text[len] = '\n';
        text[len + 1] = '\0';
        st = write_text(run, name, text, err);
        free(text);
    }
    json_object_put(obj);
    return st;
}

tema_status tema_results_begin(tema_run *run, bool fresh, tema_err *err)
{
    static const char *const always[] = {"DONE", "final.json", "ranks.tsv"};
    static const char *const fresh_only[] = {"epochs.jsonl", "meta.json", "best.bin", "last.bin"};
    tema_status st;
    /* DONE goes first so a crash during cleanup never leaves a "finished" run with
     * missing files. */
    for (size_t i = 0; i < sizeof always / sizeof always[0]; i++)
        if ((st = remove_file(run, always[i], err)) != TEMA_OK)
            return st;
    if (fresh)
        for (size_t i = 0; i < sizeof fresh_only / sizeof fresh_only[0]; i++)
            if ((st = remove_file(run, fresh_only[i], err)) != TEMA_OK)
                return st;
    if ((st = write_text(run, "status", "running\n", err)) != TEMA_OK)
        return st;
    size_t len = strlen(run->config_json);
    char *json = malloc(len + 2);
    if (!json)
        return tema_fail(err, TEMA_ENOMEM, "results: out of memory");
    memcpy(json, run->config_json, len + 1);
    if (len == 0 || json[len - 1] != '\n') {
        json[len] = '\n';
        json[len + 1] = '\0';
    }
    st = write_text(run, "config.json", json, err);
    free(json);
    if (st == TEMA_OK && run->config_yaml)
        st = write_text(run, "config.yaml", run->config_yaml, err);
    run->start = time(NULL);
    return st;
}

/* ---- meta.json ---------------------------------------------------------------------- */

/* Runs a command and returns its stdout (malloc'ed) when it exits 0, else NULL. */
static char *run_capture(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return NULL;
    size_t cap = 256, len = 0;
    char *buf = malloc(cap);
    int c;
    while (buf && (c = fgetc(p)) != EOF) {
        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        buf[len++] = (char)c;
    }
    if (buf)
        buf[len] = '\0';
    if (pclose(p) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Single-quotes a path for /bin/sh; NULL on OOM. */
static char *shell_quote(const char *s)
{
    size_t n = 3;
    for (const char *p = s; *p; p++)
        n += *p == '\'' ? 4 : 1;
    char *q = malloc(n), *w = q;
    if (!q)
        return NULL;
    *w++ = '\'';
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            memcpy(w, "'\\''", 4);
            w += 4;
        } else {
            *w++ = *p;
        }
    }
    *w++ = '\'';
    *w = '\0';
    return q;
}

/* The commit and dirty flag at run time: the binary may be older than the tree it is run
 * from, and the tree is what the results are attributed to. dirty = -1 when unknown. */
static void git_state(const char *root, char *commit, size_t cap, int *dirty)
{
    snprintf(commit, cap, "%s", tema_git_commit());
    *dirty = -1;
    char *q = shell_quote(root);
    if (!q)
        return;
    size_t n = strlen(q) + 80;
    char *cmd = malloc(n);
    if (cmd) {
        snprintf(cmd, n, "git -C %s rev-parse HEAD 2>/dev/null", q);
        char *head = run_capture(cmd);
        if (head) {
            head[strcspn(head, "\r\n")] = '\0';
            if (strlen(head) >= 7) {
                snprintf(commit, cap, "%s", head);
                snprintf(cmd, n, "git -C %s status --porcelain 2>/dev/null", q);
                char *porc = run_capture(cmd);
                if (porc)
                    *dirty = porc[0] != '\0';
                free(porc);
            }
            free(head);
        }
        free(cmd);
    }
    free(q);
}

void tema_results_git_state(char *commit, size_t cap, int *dirty) { git_state(TEMA_SOURCE_ROOT, commit, cap, dirty); }

static json_object *str_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

static void iso_time(time_t t, char *buf, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Which build made the run: an optimised and a sanitizer build of the same commit may differ in
 * the last bits of a float, so two runs of one id can be told apart by this. */
static json_object *build_identity(void)
{
    json_object *b = json_object_new_object();
#ifdef __OPTIMIZE__
    json_object_object_add(b, "optimized", json_object_new_boolean(1));
#else
    json_object_object_add(b, "optimized", json_object_new_boolean(0));
#endif
    const char *san = ""
#ifdef __SANITIZE_ADDRESS__
                      "address"
#endif
        ;
    json_object_object_add(b, "sanitizers", json_object_new_string(san));
    json_object_object_add(b, "compiler", json_object_new_string(__VERSION__));
    return b;
}

tema_status tema_results_meta(tema_run *run, const tema_run_meta *meta, tema_err *err)
{
    json_object *o = json_object_new_object();
    if (!o)
        return tema_fail(err, TEMA_ENOMEM, "results: out of memory");
    json_object *plugins = json_object_new_array();
    for (int i = 0; plugins && i < meta->n_plugins; i++) {
        const tema_plugin_record *p = &meta->plugins[i];
        json_object *po = json_object_new_object();
        json_object_object_add(po, "kind", str_or_null(p->kind));
        json_object_object_add(po, "name", str_or_null(p->name));
        json_object_object_add(po, "version", str_or_null(p->version));
        json_object_object_add(po, "file", str_or_null(p->file));
        if (p->file_hash) json_object_object_add(po, "file_hash", json_object_new_string(p->file_hash));
        json_object_array_add(plugins, po);
    }
    char commit[128], host[256] = "unknown", start[32];
    int dirty;
    git_state(meta->source_root ? meta->source_root : TEMA_SOURCE_ROOT, commit, sizeof commit, &dirty);
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    iso_time(run->start, start, sizeof start);
    json_object_object_add(o, "experiment", json_object_new_string(run->exp_name));
    json_object_object_add(o, "run_id", json_object_new_string(run->id));
    json_object_object_add(o, "tema_version", json_object_new_string(TEMA_VERSION));
    json_object_object_add(o, "git_commit", json_object_new_string(commit));
    json_object_object_add(o, "git_dirty", dirty < 0 ? NULL : json_object_new_boolean(dirty));
    json_object_object_add(o, "host", json_object_new_string(host));
    json_object_object_add(o, "build", build_identity());
    json_object_object_add(o, "start_time", json_object_new_string(start));
    json_object_object_add(o, "threads", json_object_new_int(meta->threads));
    json_object_object_add(o, "backend", str_or_null(meta->backend));
    json_object_object_add(o, "config_path", str_or_null(meta->config_path));
    if (meta->identity_json) json_object_object_add(o, "identity", json_tokener_parse(meta->identity_json));
    json_object_object_add(o, "plugins", plugins);
    return write_json(run, "meta.json", o, err);
}

/* ---- metrics ------------------------------------------------------------------------ */

/* The shortest of %.15g / %.16g / %.17g that reads back exactly, so files show 0.64 rather than
 * 0.64000000000000001 without losing a bit. */
static json_object *num(double v)
{
    if (!isfinite(v))
        return NULL;
    char buf[40];
    snprintf(buf, sizeof buf, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, sizeof buf, "%.16g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, sizeof buf, "%.17g", v);
    if (!strpbrk(buf, ".eE"))
        strcat(buf, ".0"); /* keep it a JSON double on read-back */
    return json_object_new_double_s(v, buf);
}

/* {"X":{"cases":n,"optimistic":{..},"pessimistic":{..},"mid":{..}},"Y":{..}}; NULL acc -> null. */
static json_object *metrics_json(const tema_metric_acc *acc)
{
    if (!acc)
        return NULL;
    json_object *o = json_object_new_object();
    for (int d = 0; o && d < 2; d++) {
        json_object *dom = json_object_new_object();
        json_object_object_add(dom, "cases", json_object_new_int64(acc->count[d]));
        for (int r = 0; r < TEMA_RANK_RULES; r++) {
            json_object *rule = json_object_new_object();
            for (int m = 0; m < acc->spec.n; m++)
                json_object_object_add(rule, acc->spec.name[m], num(tema_metric_acc_mean(acc, d, r, m)));
            json_object_object_add(dom, tema_rank_rule_name((tema_rank_rule)r), rule);
        }
        json_object_object_add(o, domain_names[d], dom);
    }
    return o;
}

tema_status tema_results_epoch(tema_run *run, const tema_epoch_record *rec, tema_err *err)
{
    json_object *o = json_object_new_object();
    if (!o)
        return tema_fail(err, TEMA_ENOMEM, "results: out of memory");
    json_object_object_add(o, "epoch", json_object_new_int(rec->epoch));
    json_object_object_add(o, "steps", json_object_new_int64(rec->steps));
    json_object_object_add(o, "train_loss", num(rec->train_loss));
    json_object_object_add(o, "seconds", num(rec->seconds));
    if (rec->valid)
        json_object_object_add(o, "valid", metrics_json(rec->valid));
    const char *line = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    tema_status st;
    char *path = join(run->dir, "epochs.jsonl");
    if (!line || !path)
        st = tema_fail(err, TEMA_ENOMEM, "results: out of memory");
    else
        st = tema_append_line(path, line, err);
    free(path);
    json_object_put(o);
    return st;
}

tema_status tema_results_truncate_epochs(tema_run *run, int last_epoch, tema_err *err)
{
    char *path = join(run->dir, "epochs.jsonl");
    if (!path)
        return tema_fail(err, TEMA_ENOMEM, "results: out of memory");
    struct stat sb;
    if (stat(path, &sb) != 0) {
        free(path);
        return TEMA_OK;
    }
    char *data;
    size_t len;
    tema_status st = tema_read_file(path, &data, &len, err);
    if (st != TEMA_OK) {
        free(path);
        return st;
    }
    char *kept = malloc(len + 1);
    size_t klen = 0;
    if (!kept) {
        free(data);
        free(path);
        return tema_fail(err, TEMA_ENOMEM, "results: out of memory");
    }
    int lineno = 0;
    for (char *line = data; *line;) {
        char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line) : strlen(line);
        lineno++;
        char save = line[ll];
        line[ll] = '\0';
        if (ll > 0) {
            json_object *o = json_tokener_parse(line);
            json_object *e;
            if ((!o || !json_object_object_get_ex(o, "epoch", &e)) && !nl) {
                /* a torn last record (killed or out of space mid-append): its epoch is not in the
                 * checkpoint either, so it goes, and the resume redoes that epoch */
                json_object_put(o);
                fprintf(stderr, "tema: %s:%d: dropping a torn last record (%zu bytes)\n", path, lineno, ll);
                line[ll] = save;
                break;
            }
            if (!o || !json_object_object_get_ex(o, "epoch", &e)) {
                json_object_put(o);
                st = tema_fail(err, TEMA_EFORMAT,
                               "%s:%d: not a JSON object with an \"epoch\" field; delete the run folder "
                               "or re-run with --force",
                               path, lineno);
                break;
            }
            if (json_object_get_int(e) <= last_epoch) {
                memcpy(kept + klen, line, ll);
                klen += ll;
                kept[klen++] = '\n';
            }
            json_object_put(o);
        }
        line[ll] = save;
        line += ll + (nl ? 1 : 0);
    }
    if (st == TEMA_OK)
        st = tema_write_file_atomic(path, kept, klen, err);
    free(kept);
    free(data);
    free(path);
    return st;
}

/* ---- final.json, ranks.tsv, status ---------------------------------------------------- */

bool tema_results_tie_warning(const tema_metric_acc *acc, int domain, char *buf, size_t cap)
{
    if (cap)
        buf[0] = '\0';
    if (!acc || (domain != 0 && domain != 1) || acc->count[domain] == 0 || acc->spec.n < 1)
        return false;
    int m = tema_metric_index(&acc->spec, "mrr");
    if (m < 0)
        m = 0;
    double opt = tema_metric_acc_mean(acc, domain, TEMA_RANK_OPTIMISTIC, m);
    double pes = tema_metric_acc_mean(acc, domain, TEMA_RANK_PESSIMISTIC, m);
    if (!isfinite(opt) || !isfinite(pes) || opt <= 0)
        return false;
    if ((opt - pes) / opt <= 0.10)
        return false;
    if (cap)
        snprintf(buf, cap,
                 "ties flatter this model: domain %s %s %.4f (optimistic, C2DSR) vs %.4f (pessimistic), "
                 "%.0f%% lower; many candidates get the target's score, so report the mid or pessimistic rank",
                 domain_names[domain], acc->spec.name[m], opt, pes, 100.0 * (opt - pes) / opt);
    return true;
}

tema_status tema_results_final(tema_run *run, const tema_final_record *rec, tema_err *err)
{
    json_object *o = json_object_new_object();
    if (!o)
        return tema_fail(err, TEMA_ENOMEM, "results: out of memory");
    double per_epoch = rec->seconds_per_epoch;
    if (per_epoch <= 0)
        per_epoch = rec->epochs_run > 0 ? rec->total_seconds / rec->epochs_run : NAN;
    size_t peak = rec->peak_memory_bytes ? rec->peak_memory_bytes : tema_peak_rss();
    json_object_object_add(o, "test", metrics_json(rec->test));
    json_object_object_add(o, "valid", metrics_json(rec->valid));
    json_object_object_add(o, "best_epoch", json_object_new_int(rec->best_epoch));
    json_object_object_add(o, "epochs_run", json_object_new_int(rec->epochs_run));
    json_object_object_add(o, "stopped_early", json_object_new_boolean(rec->stopped_early));
    json_object_object_add(o, "total_seconds", num(rec->total_seconds));
    json_object_object_add(o, "seconds_per_epoch", num(per_epoch));
    json_object_object_add(o, "peak_memory_bytes", json_object_new_int64((int64_t)peak));
    json_object *w = json_object_new_array();
    for (int i = 0; w && rec->warnings && i < rec->n_warnings; i++)
        json_object_array_add(w, json_object_new_string(rec->warnings[i]));
    for (int d = 0; w && d < 2; d++) {
        char buf[512];
        if (tema_results_tie_warning(rec->test, d, buf, sizeof buf))
            json_object_array_add(w, json_object_new_string(buf));
    }
    json_object_object_add(o, "warnings", w);
    return write_json(run, "final.json", o, err);
}

tema_status tema_results_ranks(tema_run *run, int64_t n, const tema_rank_row *rows, tema_err *err)
{
    static const char header[] = "user\tdomain\ttarget\toptimistic\tpessimistic\tmid\n";
    /* Longest row: 20 + 1 + 1 + 11 + 3 * (up to ~24 for %.1f of a rank) + tabs. */
    size_t cap = sizeof header + (size_t)(n > 0 ? n : 0) * 128;
    char *buf = malloc(cap);
    if (!buf)
        return tema_fail(err, TEMA_ENOMEM, "results: out of memory for %" PRId64 " rank rows", n);
    size_t len = sizeof header - 1;
    memcpy(buf, header, len);
    for (int64_t i = 0; i < n; i++) {
        const tema_rank_row *r = &rows[i];
        int w = snprintf(buf + len, cap - len, "%" PRId64 "\t%s\t%" PRId32 "\t%.1f\t%.1f\t%.1f\n", r->user,
                         r->domain == 0 ? "X" : r->domain == 1 ? "Y" : "?", r->target,
                         r->rank[TEMA_RANK_OPTIMISTIC], r->rank[TEMA_RANK_PESSIMISTIC], r->rank[TEMA_RANK_MID]);
        if (w < 0 || (size_t)w >= cap - len) {
            free(buf);
            return tema_fail(err, TEMA_EINTERNAL, "results: rank row %" PRId64 " does not fit (internal error)", i);
        }
        len += (size_t)w;
    }
    char *path = join(run->dir, "ranks.tsv");
    tema_status st = path ? tema_write_file_atomic(path, buf, len, err)
                          : tema_fail(err, TEMA_ENOMEM, "results: out of memory");
    free(path);
    free(buf);
    return st;
}

tema_status tema_results_interrupted(tema_run *run, tema_err *err)
{
    return write_text(run, "status", "interrupted\n", err);
}

tema_status tema_results_finish(tema_run *run, tema_err *err)
{
    tema_status st = write_text(run, "status", "done\n", err);
    if (st != TEMA_OK)
        return st;
    char when[32], text[64];
    iso_time(time(NULL), when, sizeof when);
    snprintf(text, sizeof text, "%s\n", when);
    return write_text(run, "DONE", text, err);
}

/* ---- summary ------------------------------------------------------------------------ */


char *tema_results_summary(const tema_run *run, const tema_metric_acc *test, int best_epoch, int epochs_run)
{
    tema_sb b = {0};
    if (run)
        tema_sb_printf(&b, "run %s/%s  best epoch %d of %d\n", run->exp_name, run->id, best_epoch, epochs_run);
    if (test) {
        for (int d = 0; d < 2; d++) {
            tema_sb_printf(&b, "domain %s (%" PRId64 " test cases)\n", domain_names[d], test->count[d]);
            if (test->count[d] == 0)
                continue;
            tema_sb_printf(&b, "  %-10s %12s %12s %12s\n", "metric", "optimistic", "pessimistic", "mid-rank");
            for (int m = 0; m < test->spec.n; m++)
                tema_sb_printf(&b, "  %-10s %12.4f %12.4f %12.4f\n", test->spec.name[m],
                          tema_metric_acc_mean(test, d, TEMA_RANK_OPTIMISTIC, m),
                          tema_metric_acc_mean(test, d, TEMA_RANK_PESSIMISTIC, m),
                          tema_metric_acc_mean(test, d, TEMA_RANK_MID, m));
        }
        tema_sb_printf(&b, "(optimistic = C2DSR rule: ties within 1e-5 count for the target)\n");
        for (int d = 0; d < 2; d++) {
            char buf[512];
            if (tema_results_tie_warning(test, d, buf, sizeof buf))
                tema_sb_printf(&b, "warning: %s\n", buf);
        }
    }
    if (run)
        tema_sb_printf(&b, "results in %s\n", run->dir);
    return tema_sb_take(&b);
}

/* ---- the summary of an already finished run ------------------------------------------ */

tema_status tema_results_print_finished(const tema_run *run, const tema_metric_spec *spec, tema_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/final.json", tema_results_dir(run));
    json_object *o = json_object_from_file(path);
    if (!o)
        return tema_fail(err, TEMA_EFORMAT, "%s: cannot read the finished run's results; hint: re-run with --force",
                         path);
    tema_metric_acc acc;
    tema_metric_acc_init(&acc, spec);
    json_object *test, *v;
    int best = 0, epochs = 0;
    if (json_object_object_get_ex(o, "best_epoch", &v)) best = json_object_get_int(v);
    if (json_object_object_get_ex(o, "epochs_run", &v)) epochs = json_object_get_int(v);
    if (json_object_object_get_ex(o, "test", &test) && test) {
        static const char *const dn[2] = {"X", "Y"};
        for (int d = 0; d < 2; d++) {
            json_object *dom, *cases, *rule, *val;
            if (!json_object_object_get_ex(test, dn[d], &dom) || !dom) continue;
            if (json_object_object_get_ex(dom, "cases", &cases)) acc.count[d] = json_object_get_int64(cases);
            for (int r = 0; r < TEMA_RANK_RULES; r++) {
                if (!json_object_object_get_ex(dom, tema_rank_rule_name((tema_rank_rule)r), &rule) || !rule) continue;
                for (int m = 0; m < acc.spec.n; m++)
                    if (json_object_object_get_ex(rule, acc.spec.name[m], &val) && val)
                        acc.sum[d][r][m] = json_object_get_double(val) * (double)acc.count[d];
            }
        }
    }
    json_object_put(o);
    char *text = tema_results_summary(run, &acc, best, epochs);
    if (!text) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    fprintf(stderr, "tema: run %s is already finished (results in %s); showing its summary. hint: --force re-runs it\n",
            tema_results_id(run), tema_results_dir(run));
    fputs(text, stdout);
    fflush(stdout);
    free(text);
    return TEMA_OK;
}
