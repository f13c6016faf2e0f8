/* core/text_features.c - the text feature store (see features.h).
 *   <key>.npy   float32 C-order [n, F], rows in the order of the texts asked for
 *   <key>.json  format, plugin, version, settings, rows, width, seconds, commit; written
 *               after the .npy, so a key with no .json is recomputed.
 * Progress: a line on stderr every few seconds while a plugin computes (done/total, rate,
 * ETA), and one summary line per call (computed or reused). */
#include "text_features.h"
#include "host.h"
#include "stop.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "engine.h"
#include "store_key.h"
#include "tema/npy.h"
#include "util.h"

#define STORE_FORMAT "tema-features 1"

static struct {
    tema_registry *reg;
    const tema_cfg *root;
    char results[4096];
} ctx;

void tema_features_context(tema_registry *reg, const tema_cfg *root, const char *results_dir)
{
    ctx.reg = reg;
    ctx.root = reg ? root : NULL;
    snprintf(ctx.results, sizeof ctx.results, "%s", results_dir && *results_dir ? results_dir : "results");
}

bool tema_features_context_default(tema_registry *reg, const tema_cfg *root, const char *results_dir)
{
    if (ctx.reg) return false;
    tema_features_context(reg, root, results_dir);
    return true;
}

/* ---- .npy out (float32, C order; the reader is tema/npy.h) ---- */

/* ---- progress ---- */

typedef struct progress_state {
    const char *who, *plugin;
    double t0, last;
} progress_state;

static void progress_line(void *p, int64_t done, int64_t total)
{
    progress_state *s = p;
    double now = tema_now();
    if (now - s->last < 5.0 && done < total) return;
    s->last = now;
    double el = now - s->t0, rate = el > 0 ? (double)done / el : 0;
    double eta = rate > 0 ? (double)(total - done) / rate : 0;
    fprintf(stderr, "tema: %s: %s features %lld/%lld texts (%.0f%%), %.0f/s, ETA %.0f s\n", s->who, s->plugin,
            (long long)done, (long long)total, total ? 100.0 * (double)done / (double)total : 100.0, rate, eta);
}

/* A plugin's options as the plugin must receive them: a copy of its node validated against
 * its table, defaults filled. A node of a resolved experiment comes back the same; one that a
 * caller wrote by hand (a test's `extractor: hashed`) gets what resolution would give it. */
static tema_status resolved_plugin(const tema_cfg *node, const char *path, const char *kind, tema_cfg **out,
                                   tema_err *err)
{
    if (!(*out = tema_cfg_clone(node))) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    tema_status st = tema_cfg_plugin_validate(*out, path, kind, ctx.reg, err);
    if (st != TEMA_OK) {
        tema_cfg_free(*out);
        *out = NULL;
    }
    return st;
}

/* ---- a backend while none is active (tema tags) ---- */

typedef struct temp_backend {
    const tema_backend_ops *ops;
    void *self;
} temp_backend;

static tema_status ensure_backend(temp_backend *tb, tema_err *err)
{
    memset(tb, 0, sizeof *tb);
    if (tema_engine_backend()) return TEMA_OK;
    /* without an experiment, the backend the schema defaults to */
    tema_cfg *defaults = NULL, *opts = NULL;
    const tema_cfg *node = ctx.root ? tema_cfg_get(ctx.root, "backend") : NULL;
    tema_status st = node ? TEMA_OK : tema_cfg_defaults(&defaults, err);
    if (st == TEMA_OK)
        st = resolved_plugin(node ? node : tema_cfg_get(defaults, "backend"), "backend", "backend", &opts, err);
    tema_cfg_free(defaults);
    const tema_plugin *bp = NULL;
    if (st == TEMA_OK)
        st = tema_registry_find_plugin(ctx.reg, TEMA_KIND_BACKEND, tema_cfg_str(opts, "plugin", NULL), "backend",
                                       TEMA_BACKEND_OPS_MIN_SIZE, &bp, err);
    const tema_backend_ops *ops = st == TEMA_OK ? bp->ops : NULL;
    if (st == TEMA_OK) st = ops->init(tema_host_get(), opts, &tb->self, err);
    tema_cfg_free(opts);
    if (st != TEMA_OK) return st;
    tb->ops = ops;
    tema_engine_set_backend(ops, tb->self);
    return TEMA_OK;
}

static void release_backend(temp_backend *tb)
{
    if (!tb->ops) return;
    tema_engine_set_backend(NULL, NULL);
    tb->ops->destroy(tb->self);
}

/* ---- the service ---- */

static tema_status read_store(const char *npy, int64_t n, float **out, int64_t *dim, bool *found, tema_err *err)
{
    *found = false;
    char meta[4200];
    snprintf(meta, sizeof meta, "%.*s.json", (int)(strlen(npy) - 4), npy);
    if (access(meta, F_OK) != 0 || access(npy, F_OK) != 0) return TEMA_OK;
    tema_npy_matrix m = {0};
    tema_status st = tema_npy_read(npy, n, "texts", &m, err);
    if (st != TEMA_OK) return st;
    const tema_host *host = tema_host_get();
    *out = host->alloc((size_t)(m.rows * m.cols) * sizeof(float) + 1);
    if (!*out) {
        tema_npy_free(&m);
        return tema_fail(err, TEMA_ENOMEM, "out of memory reading %s", npy);
    }
    memcpy(*out, m.data, (size_t)(m.rows * m.cols) * sizeof(float));
    *dim = m.cols;
    tema_npy_free(&m);
    *found = true;
    return TEMA_OK;
}

static tema_status write_meta(const char *path, const tema_plugin *fp, const char *settings, int64_t n, int64_t F,
                              double seconds, tema_err *err)
{
    json_object *m = json_object_new_object(), *s = json_tokener_parse(settings);
    json_object_object_add(m, "format", json_object_new_string(STORE_FORMAT));
    json_object_object_add(m, "plugin", json_object_new_string(fp->name));
    json_object_object_add(m, "version", json_object_new_string(fp->version));
    json_object_object_add(m, "settings", s ? s : json_object_new_string(settings));
    json_object_object_add(m, "rows", json_object_new_int64(n));
    json_object_object_add(m, "width", json_object_new_int64(F));
    json_object_object_add(m, "seconds", json_object_new_double(seconds));
    json_object_object_add(m, "tema_commit", json_object_new_string(tema_git_commit()));
    const char *text = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
    tema_status st = tema_write_file_atomic(path, text, strlen(text), err);
    json_object_put(m);
    return st;
}

/* Run the plugin instance on the texts; *out host->alloc'ed [n * F]. */
static tema_status compute(const tema_plugin *fp, void *self, const char *const *texts, int64_t n, const char *who,
                           float **out, int64_t F, double *seconds, tema_err *err)
{
    const tema_text_features_ops *ops = fp->ops;
    const tema_host *host = tema_host_get();
    temp_backend tb;
    tema_status st = ensure_backend(&tb, err);
    if (st != TEMA_OK) return st;
    double t0 = tema_now();
    if (!(*out = host->alloc((size_t)(n * F) * sizeof(float) + 1)))
        st = tema_fail(err, TEMA_ENOMEM, "%s: out of memory for [%lld, %lld] text features", who, (long long)n,
                       (long long)F);
    else {
        progress_state ps = {.who = who, .plugin = fp->name, .t0 = t0, .last = t0};
        tema_stop_listen(); /* Ctrl-C: the plugin stops between batches (host->interrupted) */
        st = ops->compute(self, texts, n, *out, progress_line, &ps, err);
        tema_stop_unlisten();
    }
    release_backend(&tb);
    *seconds = tema_now() - t0;
    if (st != TEMA_OK) {
        host->free(*out);
        *out = NULL;
    }
    return st;
}

/* The store key: the plugin's part, the backend's numerics, the files it names, the texts. */
static uint64_t store_key(const tema_plugin *fp, const tema_cfg *opts, const char *files,
                          const char *const *texts, int64_t n)
{
    uint64_t h = tema_key_mix_plugin(tema_key_mix_str(0x74656d612d667431ull, STORE_FORMAT), fp, opts, ctx.reg);
    h = tema_key_mix_backend(h, ctx.root, ctx.reg);
    for (const char *f = files; f && *f;) {
        const char *nl = strchr(f, '\n');
        size_t len = nl ? (size_t)(nl - f) : strlen(f);
        char path[4096];
        snprintf(path, sizeof path, "%.*s", (int)len, f);
        h = tema_key_mix_path(h, path); /* by content, not by where it lies: a moved checkout keeps its features */
        f += len + (nl ? 1 : 0);
    }
    h = tema_key_mix(h, &n, sizeof n);
    for (int64_t i = 0; i < n; i++) h = texts[i] ? tema_key_mix_str(h, texts[i]) : tema_key_mix(h, "\001", 1);
    return h;
}

tema_status tema_features_get(const tema_cfg *c, const char *option, const char *const *texts, int64_t n,
                              const char *who, float **out, int64_t *dim, tema_err *err)
{
    *out = NULL;
    *dim = 0;
    if (!ctx.reg)
        return tema_fail(err, TEMA_EINTERNAL, "%s: text features asked for outside a run or tagging (no plugin "
                                              "registry); a bug in the caller", who);
    const tema_cfg *node = c ? tema_cfg_get(c, option) : NULL;
    const tema_plugin *fp = NULL;
    tema_cfg *opts = NULL;
    char where[160];
    snprintf(where, sizeof where, "%s.%s", who, option);
    tema_status st = node ? resolved_plugin(node, where, "text_features", &opts, err) : TEMA_OK;
    if (st == TEMA_OK)
        st = tema_registry_find_plugin(ctx.reg, TEMA_KIND_TEXT_FEATURES, opts ? tema_cfg_str(opts, "plugin", NULL) : NULL,
                                    where, sizeof(tema_text_features_ops), &fp, err);
    const tema_text_features_ops *ops = st == TEMA_OK ? fp->ops : NULL;
    void *self = NULL;
    if (st == TEMA_OK) st = ops->create(tema_host_get(), opts, &self, err);
    const int64_t F = st == TEMA_OK ? ops->dim(self) : 0;
    if (st == TEMA_OK && (F < 1 || F > (1 << 20)))
        st = tema_fail(err, TEMA_EINTERNAL, "text_features %s: width %lld; a bug in the plugin", fp->name,
                       (long long)F);
    char *settings = st == TEMA_OK ? tema_cfg_to_json(opts) : NULL;
    if (st == TEMA_OK && !settings) st = tema_fail(err, TEMA_ENOMEM, "out of memory");
    if (st != TEMA_OK) {
        if (self) ops->destroy(self);
        tema_cfg_free(opts);
        return st;
    }
    const uint64_t h = store_key(fp, opts, ops->files ? ops->files(self) : NULL, texts, n);
    char dir[4300], npy[4400], meta[4400], lock[4400];
    snprintf(dir, sizeof dir, "%s/features/%s", ctx.results, fp->name);
    snprintf(npy, sizeof npy, "%s/%016" PRIx64 ".npy", dir, h);
    snprintf(meta, sizeof meta, "%s/%016" PRIx64 ".json", dir, h);
    snprintf(lock, sizeof lock, "%s/%016" PRIx64 ".lock", dir, h);
    int lfd = -1;
    if ((st = tema_mkdirs(dir, err)) == TEMA_OK) {
        /* another process computing the same key: wait for it, then read its result */
        lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (lfd < 0 || flock(lfd, LOCK_EX) != 0)
            st = tema_fail(err, TEMA_EIO, "cannot lock %s: %s; hint: the results folder must be writable", lock,
                           strerror(errno));
    }
    bool found = false;
    double t0 = tema_now(), seconds = 0;
    if (st == TEMA_OK) st = read_store(npy, n, out, dim, &found, err);
    if (st == TEMA_OK && found && *dim != F)
        st = tema_fail(err, TEMA_EFORMAT, "%s has %lld columns, but %s gives %lld; hint: delete it to recompute", npy,
                       (long long)*dim, fp->name, (long long)F);
    if (st == TEMA_OK && found)
        fprintf(stderr, "tema: %s: %s features [%lld, %lld] reused from %s (%.2f s)\n", who, fp->name, (long long)n,
                (long long)*dim, npy, tema_now() - t0);
    else if (st == TEMA_OK) {
        remove(meta); /* a stale .json must not vouch for the new .npy */
        st = compute(fp, self, texts, n, who, out, F, &seconds, err);
        *dim = F;
        if (st == TEMA_OK) st = tema_write_npy(npy, *out, n, F, err);
        if (st == TEMA_OK) st = write_meta(meta, fp, settings, n, F, seconds, err);
        if (st == TEMA_OK)
            fprintf(stderr, "tema: %s: %s features [%lld, %lld] in %.1f s (%.0f texts/s), stored in %s\n", who,
                    fp->name, (long long)n, (long long)F, seconds, seconds > 0 ? (double)n / seconds : 0.0, npy);
    }
    ops->destroy(self);
    tema_cfg_free(opts);
    if (lfd >= 0) close(lfd); /* releases the lock */
    free(settings);
    if (st != TEMA_OK && *out) {
        tema_host_get()->free(*out);
        *out = NULL;
    }
    return st;
}
