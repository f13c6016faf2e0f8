/* core/tags.c - the tag pipeline: tagger -> stored item-tag scores -> tag_select ->
 * tag_repr -> tema_model_info, and `tema tags`.
 *
 * Store layout, <results>/tags/<dataset name>/<key>/ with key = 16 hex digits of a hash of
 * the tagger's part (core/store_key.h: name, version, settings, the files its path options
 * name, the environment its empty options fall back to, nested plugins), the domain names, and the
 * dataset's item counts and titles. A changed vocabulary file or title is a new key, so
 * stale scores are never read; editing any file of the vocabulary folder re-tags every
 * dataset (cheap for the lexical tagger; an LLM tagger answers from its cache).
 *   vocab.tsv   tag <TAB> domain (X|Y) <TAB> domain name <TAB> tag name   (header line first)
 *   scores.tsv  item <TAB> tag <TAB> score   global ids, nonzero scores only, by item then tag
 *   meta.json   format, tagger, version, settings, domains, counts, seconds; written last,
 *               so a folder without it is an interrupted build and is rebuilt. */
#include "tags.h"
#include "host.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset.h"
#include "text_features.h"
#include "stop.h"
#include "tags_internal.h"
#include "store_key.h"
#include "util.h"


/* ---- small helpers ---- */

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ---- domain names ---- */

static bool valid_domain(const char *d)
{
    if (!d || !*d || strlen(d) >= TEMA_TAGS_DOMAIN_MAX) return false;
    for (; *d; d++)
        if (!(islower((unsigned char)*d) || isdigit((unsigned char)*d) || *d == '_' || *d == '-')) return false;
    return true;
}

/* "X = Food" in a README line: the word after "<letter> = ", lower-cased. */
static bool readme_domain(const char *text, char letter, char *out)
{
    char pat[8];
    snprintf(pat, sizeof pat, "%c = ", letter);
    for (const char *p = strstr(text, pat); p; p = strstr(p + 1, pat)) {
        if (p > text && isalnum((unsigned char)p[-1])) continue;
        const char *w = p + 4;
        size_t n = 0;
        while (isalpha((unsigned char)w[n]) && n + 1 < TEMA_TAGS_DOMAIN_MAX) n++;
        if (n == 0) continue;
        for (size_t i = 0; i < n; i++) out[i] = (char)tolower((unsigned char)w[i]);
        out[n] = '\0';
        return true;
    }
    return false;
}

static void strip_archive_ext(char *name)
{
    static const char *const exts[] = {".tar.gz", ".tgz", ".tar.zst", ".tar.xz", ".tar.bz2", ".tar", ".zip"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        size_t m = strlen(exts[i]);
        if (n > m && !strcmp(name + n - m, exts[i])) {
            name[n - m] = '\0';
            return;
        }
    }
}

tema_status tema_tags_domains(const tema_cfg *cfg, const tema_dataset *ds, char out[2][TEMA_TAGS_DOMAIN_MAX],
                              tema_err *err)
{
    out[0][0] = out[1][0] = '\0';
    const tema_cfg *dl = tema_cfg_get(cfg, "dataset.domains");
    if (dl && dl->type != TEMA_CFG_NULL) {
        if (dl->type != TEMA_CFG_LIST || dl->n_items != 2)
            return tema_fail(err, TEMA_EINVAL, "%s:%d: dataset.domains must list exactly two names (domain X, then Y), "
                                               "e.g. [food, kitchen]", dl->file ? dl->file : "config", dl->line);
        for (int d = 0; d < 2; d++) {
            const tema_cfg *e = dl->items[d];
            if (e->type != TEMA_CFG_SCALAR || !valid_domain(e->value))
                return tema_fail(err, TEMA_EINVAL, "%s:%d: dataset.domains.%d: '%s' is not a domain name; hint: use "
                                                   "lower-case letters, digits, '_' or '-' (it names the tag "
                                                   "vocabulary file)",
                                 e->file ? e->file : "config", e->line, d,
                                 e->type == TEMA_CFG_SCALAR ? e->value : "(not a word)");
            snprintf(out[d], TEMA_TAGS_DOMAIN_MAX, "%s", e->value);
        }
        return TEMA_OK;
    }
    const char *cfg_path = tema_cfg_str(cfg, "dataset.path", "");
    char readme[4200];
    snprintf(readme, sizeof readme, "%s/README.md", ds->path);
    char *text = NULL;
    size_t len = 0;
    tema_err ignored = {0};
    if (tema_is_dir(ds->path) && tema_read_file(readme, &text, &len, &ignored) != TEMA_OK) text = NULL;
    bool synthetic = !strcmp(cfg_path, "synthetic") || !strncmp(base_name(ds->path), "synthetic", 9) ||
                     (text && !strncmp(text, "# Synthetic two-domain dataset", 30));
    if (synthetic) {
        free(text);
        snprintf(out[0], TEMA_TAGS_DOMAIN_MAX, "synth_food");
        snprintf(out[1], TEMA_TAGS_DOMAIN_MAX, "synth_kitchen");
        return TEMA_OK;
    }
    bool from_readme = text && readme_domain(text, 'X', out[0]) && readme_domain(text, 'Y', out[1]);
    free(text);
    if (from_readme && valid_domain(out[0]) && valid_domain(out[1]) && strcmp(out[0], out[1]) != 0) return TEMA_OK;
    char name[256];
    snprintf(name, sizeof name, "%s", base_name(ds->path));
    strip_archive_ext(name);
    for (char *p = name; *p; p++) *p = (char)tolower((unsigned char)*p);
    char *save = NULL, *a = strtok_r(name, "-_.", &save), *b = a ? strtok_r(NULL, "-_.", &save) : NULL;
    if (a && b && valid_domain(a) && valid_domain(b) && strcmp(a, b) != 0) {
        snprintf(out[0], TEMA_TAGS_DOMAIN_MAX, "%s", a);
        snprintf(out[1], TEMA_TAGS_DOMAIN_MAX, "%s", b);
        return TEMA_OK;
    }
    return tema_fail(err, TEMA_EINVAL, "cannot tell the two domain names of dataset %s (its README says no 'X = ... "
                                       "Y = ...' and its name is not like food-kitchen); hint: set dataset.domains, "
                                       "e.g. domains: [food, kitchen]",
                     ds->path);
}

/* ---- the store key ---- */

/* The tagger of one domain: model.domain_taggers.<domain> where the experiment gives one (a
 * domain tagged another way, e.g. by an LLM on one domain only), else model.tagger. */
typedef struct domain_tagger {
    const tema_plugin *tp;
    const tema_cfg *opts;
    const char *key;          /* the config key it came from, for messages */
    bool own;                 /* from model.domain_taggers */
} domain_tagger;

static tema_status find_taggers(const tema_cfg *cfg, tema_registry *reg, char domains[2][TEMA_TAGS_DOMAIN_MAX],
                                domain_tagger dt[2], tema_err *err)
{
    const tema_cfg *over = tema_cfg_get(cfg, "model.domain_taggers");
    for (size_t i = 0; over && over->type == TEMA_CFG_MAP && i < over->n_items; i++)
        if (strcmp(over->items[i]->key, domains[0]) && strcmp(over->items[i]->key, domains[1]))
            return tema_fail(err, TEMA_EINVAL, "config model.domain_taggers.%s: the dataset has no domain '%s'; hint: "
                                               "its domains are %s and %s (dataset.domains)",
                             over->items[i]->key, over->items[i]->key, domains[0], domains[1]);
    static char keys[2][96];
    for (int d = 0; d < 2; d++) {
        snprintf(keys[d], sizeof keys[d], "model.domain_taggers.%s", domains[d]);
        const tema_cfg *node = tema_cfg_get(cfg, keys[d]);
        dt[d].own = node != NULL;
        dt[d].key = node ? keys[d] : "model.tagger";
        const char *name = NULL;
        dt[d].opts = tema_cfg_plugin_node(node ? node : tema_cfg_get(cfg, "model.tagger"), &name);
        tema_status st = tema_registry_find_plugin(reg, TEMA_KIND_TAGGER, name, dt[d].key,
                                                   offsetof(tema_tagger_ops, create_with_host), &dt[d].tp, err);
        if (st != TEMA_OK) return st;
    }
    return TEMA_OK;
}

static uint64_t store_key(const tema_cfg *root, const tema_plugin *tp, const tema_cfg *opts, tema_registry *reg,
                          char domains[2][TEMA_TAGS_DOMAIN_MAX], const domain_tagger *dt, const tema_dataset *ds)
{
    uint64_t h = tema_key_mix_str(0x74656d612d746167ull, TEMA_TAG_STORE_FORMAT);
    h = tema_key_mix_plugin(h, tp, opts, reg);
    /* a domain with its own tagger (model.domain_taggers); without one the key is as before */
    for (int d = 0; d < 2; d++) {
        if (!dt[d].own) continue;
        h = tema_key_mix_str(tema_key_mix_str(h, "domain tagger"), domains[d]);
        h = tema_key_mix_plugin(h, dt[d].tp, dt[d].opts, reg);
    }
    h = tema_key_mix_backend(h, root, reg); /* the embedding tagger's products */
    h = tema_key_mix_str(h, domains[0]);
    h = tema_key_mix_str(h, domains[1]);
    int32_t counts[2] = {ds->n_x, ds->n_y};
    h = tema_key_mix(h, counts, sizeof counts);
    for (int64_t i = 0; i < (int64_t)ds->n_x + ds->n_y; i++) {
        const char *t = ds->title ? ds->title[i] : NULL;
        h = t ? tema_key_mix_str(h, t) : tema_key_mix(h, "\001", 1);
    }
    return h;
}

/* ---- the table ---- */

void tema_tag_table_free(tema_tag_table *t)
{
    if (!t) return;
    for (int32_t i = 0; t->tag_names && i < t->n_tags; i++) free(t->tag_names[i]);
    free(t->tag_names);
    free(t->score_x);
    free(t->score_y);
    free(t->dir);
    memset(t, 0, sizeof *t);
}

tema_status tema_tagger_create(const tema_plugin *p, const tema_cfg *opts, const char *domain, void **self,
                               tema_err *err)
{
    const tema_tagger_ops *ops = p->ops;
    if (p->ops_size >= offsetof(tema_tagger_ops, create_with_host) + sizeof(void *) && ops->create_with_host)
        return ops->create_with_host(tema_host_get(), opts, domain, self, err);
    return ops->create(opts, domain, self, err);
}

tema_status tema_tag_select_call(const tema_plugin *p, const tema_cfg *opts, const tema_tag_scores *s,
                                 tema_tag_selection *out, tema_err *err)
{
    const tema_tag_select_ops *ops = p->ops;
    if (p->ops_size >= offsetof(tema_tag_select_ops, select_with_host) + sizeof(void *) && ops->select_with_host)
        return ops->select_with_host(tema_host_get(), opts, s, out, err);
    return ops->select(opts, s, out, err);
}

tema_status tema_tag_repr_call(const tema_plugin *p, const tema_cfg *opts, tema_tag_selection *sel, tema_err *err)
{
    const tema_tag_repr_ops *ops = p->ops;
    if (p->ops_size >= offsetof(tema_tag_repr_ops, weights_with_host) + sizeof(void *) && ops->weights_with_host)
        return ops->weights_with_host(tema_host_get(), opts, sel, err);
    return ops->weights(opts, sel, err);
}

/* Run each domain's tagger on its items. */
static tema_status compute_table(const domain_tagger dt[2], const tema_dataset *ds, tema_tag_table *t, tema_err *err)
{
    const tema_host *host = tema_host_get();
    tema_tag_vocab v[2] = {{0}};
    tema_status st = TEMA_OK;
    const char **no_titles = NULL;
    double t0 = tema_now();
    for (int d = 0; d < 2 && st == TEMA_OK; d++) {
        int64_t n = d ? ds->n_y : ds->n_x;
        const char *const *titles = ds->title ? (const char *const *)ds->title + (d ? ds->n_x : 0) : NULL;
        if (!titles) {
            int64_t most = ds->n_x > ds->n_y ? ds->n_x : ds->n_y;
            no_titles = no_titles ? no_titles : calloc((size_t)(most > 0 ? most : 1), sizeof *no_titles);
            if (!no_titles) {
                st = tema_fail(err, TEMA_ENOMEM, "out of memory");
                break;
            }
            titles = no_titles;
        }
        const tema_plugin *tp = dt[d].tp;
        const tema_tagger_ops *ops = tp->ops;
        void *self = NULL;
        st = tema_tagger_create(tp, dt[d].opts, t->domain[d], &self, err);
        if (st == TEMA_OK) {
            st = ops->tag(self, titles, n, &v[d], err);
            ops->destroy(self);
        }
        if (st != TEMA_OK) {
            /* say which domain failed unless the plugin did */
            if (!strstr(err->msg, t->domain[d])) {
                char msg[sizeof err->msg], own[160];
                snprintf(own, sizeof own, "tagger %s: ", tp->name);
                const char *m = strncmp(err->msg, own, strlen(own)) ? err->msg : err->msg + strlen(own);
                snprintf(msg, sizeof msg, "%s", m);
                tema_fail(err, st, "tagger %s, domain %s: %s", tp->name, t->domain[d], msg);
            }
            break;
        }
        if (v[d].n_tags < 0 || (v[d].n_tags > 0 && (!v[d].tags || (n > 0 && !v[d].score)))) {
            st = tema_fail(err, TEMA_EINTERNAL, "tagger %s, domain %s returned an invalid vocabulary (%d tags); a bug "
                                                "in the plugin", tp->name, t->domain[d], (int)v[d].n_tags);
            break;
        }
        for (int32_t k = 0; k < v[d].n_tags && st == TEMA_OK; k++) {
            const char *name = v[d].tags[k];
            if (!name || !*name || strpbrk(name, "\t\n\r"))
                st = tema_fail(err, TEMA_EINTERNAL, "tagger %s, domain %s: tag %d has %s name; a bug in the plugin",
                               tp->name, t->domain[d], (int)k, !name || !*name ? "an empty" : "a tab or line break in its");
        }
        for (int64_t j = 0; j < n * v[d].n_tags && st == TEMA_OK; j++)
            if (!(v[d].score[j] >= 0) || !isfinite(v[d].score[j]))
                st = tema_fail(err, TEMA_EINTERNAL, "tagger %s, domain %s: item %lld, tag %lld has score %g (need a "
                                                    "finite score >= 0); a bug in the plugin",
                               tp->name, t->domain[d], (long long)(j / v[d].n_tags), (long long)(j % v[d].n_tags),
                               (double)v[d].score[j]);
    }
    free(no_titles);
    if (st == TEMA_OK) {
        t->n_x = ds->n_x;
        t->n_y = ds->n_y;
        t->n_tags_x = v[0].n_tags;
        t->n_tags = v[0].n_tags + v[1].n_tags;
        t->incomplete = (v[0].n_incomplete > 0 ? v[0].n_incomplete : 0) + (v[1].n_incomplete > 0 ? v[1].n_incomplete : 0);
        st = tema_tag_table_alloc(t, err);
    }
    for (int d = 0; d < 2 && st == TEMA_OK; d++) {
        int32_t base = d ? t->n_tags_x : 0;
        for (int32_t k = 0; k < v[d].n_tags && st == TEMA_OK; k++)
            if (!(t->tag_names[base + k] = strdup(v[d].tags[k]))) st = tema_fail(err, TEMA_ENOMEM, "out of memory");
        size_t cells = (size_t)(d ? t->n_y : t->n_x) * (size_t)v[d].n_tags;
        if (cells) memcpy(d ? t->score_y : t->score_x, v[d].score, cells * sizeof(float));
    }
    for (int d = 0; d < 2; d++) {
        for (int32_t k = 0; v[d].tags && k < v[d].n_tags; k++) host->free(v[d].tags[k]);
        host->free(v[d].tags);
        host->free(v[d].score);
    }
    t->seconds = tema_now() - t0;
    return st;
}

tema_status tema_tag_table_get(const tema_cfg *cfg, tema_registry *reg, const tema_dataset *ds,
                               const char *results_dir, bool force, tema_tag_table *out, tema_err *err)
{
    tema_err local = {0};
    if (!err) err = &local;
    memset(out, 0, sizeof *out);
    const char *name = NULL;
    const tema_cfg *opts = tema_cfg_plugin_node(tema_cfg_get(cfg, "model.tagger"), &name);
    const tema_plugin *tp = NULL;
    tema_status st = tema_registry_find_plugin(reg, TEMA_KIND_TAGGER, name, "model.tagger",
                                               offsetof(tema_tagger_ops, create_with_host), &tp, err);
    if (st != TEMA_OK) return st;
    st = tema_tags_domains(cfg, ds, out->domain, err);
    domain_tagger dt[2];
    if (st == TEMA_OK) st = find_taggers(cfg, reg, out->domain, dt, err);
    if (st != TEMA_OK) return st;
    out->n_x = ds->n_x;
    out->n_y = ds->n_y;
    if (dt[0].own || dt[1].own)
        snprintf(out->tagger, sizeof out->tagger, "%s %s (%s), %s %s (%s)", dt[0].tp->name, dt[0].tp->version,
                 out->domain[0], dt[1].tp->name, dt[1].tp->version, out->domain[1]);
    else
        snprintf(out->tagger, sizeof out->tagger, "%s %s", tp->name, tp->version);
    char *settings = tema_cfg_to_json(opts ? opts : tema_cfg_get(cfg, "model.tagger"));
    if (!settings) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    tema_env_fallback env[TEMA_MAX_ENV_FALLBACKS];
    const int n_env = tema_env_fallbacks(tp, opts, env);
    const uint64_t key = store_key(cfg, tp, opts, reg, out->domain, dt, ds);
    char keyhex[32], dsname[256];
    snprintf(keyhex, sizeof keyhex, "%016" PRIx64, key);
    snprintf(dsname, sizeof dsname, "%s", base_name(ds->path));
    strip_archive_ext(dsname);
    size_t n = strlen(results_dir ? results_dir : "results") + strlen(dsname) + 64;
    out->dir = malloc(n);
    if (!out->dir) {
        free(settings);
        return tema_fail(err, TEMA_ENOMEM, "out of memory");
    }
    snprintf(out->dir, n, "%s/tags/%s/%s", results_dir ? results_dir : "results", dsname, keyhex);
    bool found = false;
    if (!force) {
        double t0 = tema_now();
        st = tema_tag_store_read(out, keyhex, &found, err);
        out->seconds = tema_now() - t0;
        out->reused = found;
    }
    if (st == TEMA_OK && !found) {
        /* a half-read store must not leak into the computed table */
        for (int32_t i = 0; out->tag_names && i < out->n_tags; i++) free(out->tag_names[i]);
        free(out->tag_names);
        free(out->score_x);
        free(out->score_y);
        out->tag_names = NULL;
        out->score_x = out->score_y = NULL;
        /* a tagger may ask for text features; outside a run the context lasts for this call */
        const bool own_context = tema_features_context_default(reg, cfg, results_dir);
        tema_stop_listen(); /* Ctrl-C: a tagger stops between requests (host->interrupted) */
        st = compute_table(dt, ds, out, err);
        tema_stop_unlisten();
        if (own_context) tema_features_context(NULL, NULL, NULL);
        if (st == TEMA_OK) st = tema_tag_store_write(out, tp, settings, env, n_env, ds, key, err);
    }
    free(settings);
    if (st != TEMA_OK) tema_tag_table_free(out);
    return st;
}

/* ---- selection and weights ---- */

void tema_tag_selection_free(tema_tag_selection *s)
{
    if (!s) return;
    const tema_host *host = tema_host_get();
    host->free(s->off);
    host->free(s->tag);
    host->free(s->score);
    memset(s, 0, sizeof *s);
}

/* The plugin's output must be a valid selection over n items and nt tags. */
static tema_status check_selection(const tema_tag_selection *s, int64_t n, int32_t nt, const char *who, bool sorted,
                                   bool weights, tema_err *err)
{
    if (s->n_items != n || !s->off || s->off[0] != 0 || (s->off[n] > 0 && (!s->tag || !s->score)))
        return tema_fail(err, TEMA_EINTERNAL, "%s returned a malformed selection (%lld items, expected %lld); a bug in "
                                              "the plugin", who, (long long)s->n_items, (long long)n);
    for (int64_t i = 0; i < n; i++) {
        if (s->off[i + 1] < s->off[i])
            return tema_fail(err, TEMA_EINTERNAL, "%s: offsets decrease at item %lld; a bug in the plugin", who,
                             (long long)i);
        double sum = 0;
        for (int64_t k = s->off[i]; k < s->off[i + 1]; k++) {
            if (s->tag[k] < 0 || s->tag[k] >= nt || (sorted && k > s->off[i] && s->tag[k] <= s->tag[k - 1]))
                return tema_fail(err, TEMA_EINTERNAL, "%s: item %lld has tag %d out of range [0, %d) or out of "
                                                      "ascending order; a bug in the plugin",
                                 who, (long long)i, (int)s->tag[k], (int)nt);
            if (!isfinite(s->score[k]) || s->score[k] < 0 || (weights && s->score[k] > 1.0f + 1e-5f))
                return tema_fail(err, TEMA_EINTERNAL, "%s: item %lld, tag %d has %s %g; a bug in the plugin", who,
                                 (long long)i, (int)s->tag[k], weights ? "weight" : "score", (double)s->score[k]);
            sum += s->score[k];
        }
        if (weights && s->off[i + 1] > s->off[i] && fabs(sum - 1.0) > 1e-3)
            return tema_fail(err, TEMA_EINTERNAL, "%s: the weights of item %lld sum to %g, not 1; a bug in the plugin",
                             who, (long long)i, sum);
    }
    return TEMA_OK;
}

/* The tag_select and tag_repr plugins and their options. Absent from the config: hybrid and
 * weighted (the paper's pipeline) with their declared defaults, in *sdef / *rdef (the
 * caller frees them). (Not schema defaults: those would change the resolved config, and with
 * it the run id, of every stored experiment.) */
static tema_status find_select_repr(const tema_cfg *cfg, tema_registry *reg, const tema_plugin **sp,
                                    const tema_cfg **sopts, const tema_plugin **rp, const tema_cfg **ropts,
                                    tema_cfg **sdef, tema_cfg **rdef, tema_err *err)
{
    const tema_cfg *snode = tema_cfg_get(cfg, "model.tag_select"), *rnode = tema_cfg_get(cfg, "model.tag_repr");
    tema_status fst = snode ? TEMA_OK : tema_cfg_plugin_defaults("tag_select", "hybrid", reg, sdef, err);
    if (fst == TEMA_OK && !rnode) fst = tema_cfg_plugin_defaults("tag_repr", "weighted", reg, rdef, err);
    const char *sname = NULL, *rname = NULL;
    *sopts = fst == TEMA_OK ? tema_cfg_plugin_node(snode ? snode : *sdef, &sname) : NULL;
    *ropts = fst == TEMA_OK ? tema_cfg_plugin_node(rnode ? rnode : *rdef, &rname) : NULL;
    if (fst == TEMA_OK)
        fst = tema_registry_find_plugin(reg, TEMA_KIND_TAG_SELECT, sname, "model.tag_select",
                                     offsetof(tema_tag_select_ops, select_with_host), sp, err);
    if (fst == TEMA_OK)
        fst = tema_registry_find_plugin(reg, TEMA_KIND_TAG_REPR, rname, "model.tag_repr",
                                     offsetof(tema_tag_repr_ops, weights_with_host), rp, err);
    return fst;
}

/* Each domain's selection by plugin sp, checked. */
static tema_status select_domains(const tema_plugin *sp, const tema_cfg *sopts, const tema_tag_table *t,
                                  tema_tag_selection part[2], tema_err *err)
{
    char who[160];
    snprintf(who, sizeof who, "tag_select plugin '%s'", sp->name);
    tema_status st = TEMA_OK;
    for (int d = 0; d < 2 && st == TEMA_OK; d++) {
        int32_t nt = d ? t->n_tags - t->n_tags_x : t->n_tags_x;
        int64_t n = d ? t->n_y : t->n_x;
        tema_tag_scores s = {.n_items = n, .n_tags = nt, .score = d ? t->score_y : t->score_x};
        st = tema_tag_select_call(sp, sopts, &s, &part[d], err);
        if (st != TEMA_OK) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            tema_fail(err, st, "config model.tag_select: %s", msg);
        } else {
            st = check_selection(&part[d], n, nt, who, true, false, err);
        }
    }
    return st;
}

/* The two domains' selections as one (host memory): Y's items after X's, Y's tag ids after X's. */
static tema_status merge_domains(const tema_tag_table *t, const tema_tag_selection part[2], tema_tag_selection *out,
                                 tema_err *err)
{
    const tema_host *host = tema_host_get();
    const int64_t n = (int64_t)t->n_x + t->n_y, total = part[0].off[t->n_x] + part[1].off[t->n_y];
    out->n_items = n;
    out->off = host->alloc((size_t)(n + 1) * sizeof *out->off);
    out->tag = host->alloc((size_t)(total > 0 ? total : 1) * sizeof *out->tag);
    out->score = host->alloc((size_t)(total > 0 ? total : 1) * sizeof *out->score);
    if (!out->off || !out->tag || !out->score) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    for (int d = 0; d < 2; d++) {
        const int64_t first = d ? t->n_x : 0, base = d ? part[0].off[t->n_x] : 0, nd = d ? t->n_y : t->n_x;
        const int32_t tag_base = d ? t->n_tags_x : 0;
        for (int64_t i = 0; i <= nd; i++) out->off[first + i] = base + part[d].off[i];
        for (int64_t k = 0; k < part[d].off[nd]; k++) {
            out->tag[base + k] = part[d].tag[k] + tag_base;
            out->score[base + k] = part[d].score[k];
        }
    }
    return TEMA_OK;
}

/* The selection's scores turned into weights by plugin rp, checked. */
static tema_status apply_repr(const tema_plugin *rp, const tema_cfg *ropts, int32_t n_tags, tema_tag_selection *out,
                              tema_err *err)
{
    tema_status st = tema_tag_repr_call(rp, ropts, out, err);
    if (st != TEMA_OK) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        tema_fail(err, st, "config model.tag_repr: %s", msg);
        return st;
    }
    char who[160];
    snprintf(who, sizeof who, "tag_repr plugin '%s'", rp->name);
    return check_selection(out, out->n_items, n_tags, who, true, true, err);
}

tema_status tema_tags_select(const tema_cfg *cfg, tema_registry *reg, const tema_tag_table *t, tema_tag_selection *out,
                             const char **select_name, const char **repr_name, tema_err *err)
{
    tema_err local = {0};
    if (!err) err = &local;
    memset(out, 0, sizeof *out);
    const tema_plugin *sp = NULL, *rp = NULL;
    const tema_cfg *sopts = NULL, *ropts = NULL;
    tema_cfg *sdef = NULL, *rdef = NULL;
    tema_status st = find_select_repr(cfg, reg, &sp, &sopts, &rp, &ropts, &sdef, &rdef, err);
    if (st != TEMA_OK) {
        tema_cfg_free(sdef);
        tema_cfg_free(rdef);
        return st;
    }
    if (select_name) *select_name = sp->name;
    if (repr_name) *repr_name = rp->name;
    tema_tag_selection part[2] = {{0}};
    st = select_domains(sp, sopts, t, part, err);
    if (st == TEMA_OK) st = merge_domains(t, part, out, err);
    tema_tag_selection_free(&part[0]);
    tema_tag_selection_free(&part[1]);
    if (st == TEMA_OK) st = apply_repr(rp, ropts, t->n_tags, out, err);
    if (st != TEMA_OK) tema_tag_selection_free(out);
    tema_cfg_free(sdef);
    tema_cfg_free(rdef);
    return st;
}

/* ---- summaries ---- */

static int64_t items_with_score(const tema_tag_table *t, int d)
{
    int64_t n = d ? t->n_y : t->n_x, c = 0;
    int32_t nt = d ? t->n_tags - t->n_tags_x : t->n_tags_x;
    for (int64_t i = 0; i < n; i++) {
        const float *row = tema_tag_table_row(t, d, i);
        for (int32_t k = 0; k < nt; k++)
            if (row[k] > 0) {
                c++;
                break;
            }
    }
    return c;
}

static void print_summary(FILE *f, const tema_tag_table *t, const char *const *titles, const tema_tag_selection *sel,
                          const char *sname, const char *rname)
{
    fprintf(f, "tags: %s, %s in %.2f s; stored in %s\n", t->tagger, t->reused ? "reused (loaded)" : "computed",
            t->seconds, t->dir);
    if (t->incomplete > 0)
        fprintf(f, "tags: incomplete: %lld items or queries got no answer this time (their scores are 0); stored "
                   "marked incomplete, so the next run or `tema tags` asks the tagger again\n",
                (long long)t->incomplete);
    int64_t *freq = calloc((size_t)(t->n_tags > 0 ? t->n_tags : 1), sizeof *freq);
    for (int d = 0; d < 2; d++) {
        const int64_t n = d ? t->n_y : t->n_x, first = d ? t->n_x : 0;
        const int32_t nt = d ? t->n_tags - t->n_tags_x : t->n_tags_x, base = d ? t->n_tags_x : 0;
        int64_t scored = items_with_score(t, d), selected = 0, sum = 0, titled = 0;
        for (int64_t i = 0; titles && i < n; i++) titled += titles[first + i] && titles[first + i][0];
        for (int64_t i = first; sel && i < first + n; i++) {
            int64_t k = sel->off[i + 1] - sel->off[i];
            selected += k > 0;
            sum += k;
            for (int64_t j = sel->off[i]; freq && j < sel->off[i + 1]; j++) freq[sel->tag[j]]++;
        }
        fprintf(f, "  domain %c (%s): %d tags; %lld of %lld items (%lld titled) score > 0 on some tag", d ? 'Y' : 'X',
                t->domain[d], (int)nt, (long long)scored, (long long)n, (long long)titled);
        if (sel)
            fprintf(f, "; after %s: %lld items with >= 1 tag, %.2f tags per item (%.2f per tagged item)", sname,
                    (long long)selected, n ? (double)sum / (double)n : 0.0,
                    selected ? (double)sum / (double)selected : 0.0);
        fputc('\n', f);
        if (sel && freq && nt > 0 && selected > 0) {
            fprintf(f, "    most selected:");
            for (int shown = 0; shown < 5 && shown < nt; shown++) {
                int32_t best = -1;
                for (int32_t k = base; k < base + nt; k++)
                    if (freq[k] >= 0 && (best < 0 || freq[k] > freq[best])) best = k;
                if (best < 0 || freq[best] <= 0) break;
                fprintf(f, "%s %s (%lld)", shown ? "," : "", t->tag_names[best], (long long)freq[best]);
                freq[best] = -1; /* shown */
            }
            fputc('\n', f);
        }
    }
    if (sel) fprintf(f, "  weights: tag_repr %s\n", rname);
    free(freq);
}

/* ---- training ---- */

tema_status tema_tags_attach(const tema_cfg *cfg, tema_registry *reg, const tema_dataset *ds, const char *results_dir,
                             tema_model_info *info, tema_err *err)
{
    const tema_cfg *tagger = tema_cfg_get(cfg, "model.tagger");
    if (!tagger || tagger->type == TEMA_CFG_NULL) {
        const char *extra = tema_cfg_get(cfg, "model.tag_select") ? "model.tag_select"
                            : tema_cfg_get(cfg, "model.tag_repr") ? "model.tag_repr" : NULL;
        if (extra)
            return tema_fail(err, TEMA_EINVAL, "config %s is set but model.tagger is not, so there are no tags to "
                                               "select; hint: add `tagger: {plugin: lexical}` under model", extra);
        return TEMA_OK;
    }
    tema_tag_table t;
    tema_status st = tema_tag_table_get(cfg, reg, ds, results_dir, false, &t, err);
    if (st != TEMA_OK) return st;
    tema_tag_selection *sel = calloc(1, sizeof *sel);
    const char **names = calloc((size_t)(t.n_tags > 0 ? t.n_tags : 1), sizeof *names);
    int32_t *dom = calloc((size_t)(t.n_tags > 0 ? t.n_tags : 1), sizeof *dom);
    const char *sname = NULL, *rname = NULL;
    if (!sel || !names || !dom) st = tema_fail(err, TEMA_ENOMEM, "out of memory");
    else st = tema_tags_select(cfg, reg, &t, sel, &sname, &rname, err);
    if (st == TEMA_OK) {
        print_summary(stderr, &t, (const char *const *)ds->title, sel, sname, rname);
        /* the names move from the table to info */
        for (int32_t k = 0; k < t.n_tags; k++) {
            names[k] = t.tag_names[k];
            t.tag_names[k] = NULL;
            dom[k] = k >= t.n_tags_x;
        }
        info->n_tags = t.n_tags;
        info->tag_names = names;
        info->tag_domain = dom;
        info->item_tags = sel;
    } else {
        free(sel);
        free(names);
        free(dom);
    }
    tema_tag_table_free(&t);
    return st;
}

void tema_tags_detach(tema_model_info *info)
{
    if (!info || info->struct_size < offsetof(tema_model_info, item_tags) + sizeof(void *)) return;
    for (int32_t k = 0; info->tag_names && k < info->n_tags; k++) free((void *)info->tag_names[k]);
    free((void *)info->tag_names);
    free((void *)info->tag_domain);
    if (info->item_tags) {
        tema_tag_selection_free((tema_tag_selection *)info->item_tags);
        free((void *)info->item_tags);
    }
    info->n_tags = 0;
    info->tag_names = NULL;
    info->tag_domain = NULL;
    info->item_tags = NULL;
}

/* ---- tema tags ---- */

static int usage(const char *msg)
{
    fprintf(stderr, "tema: %s\nusage: tema tags EXP.yaml [--set key.path=value]... [--results DIR] [--force]\n", msg);
    return 2;
}

/* The dataset of a resolved config; `synthetic` is generated once per seed under
 * <results>/_data/ exactly as `tema run` does, so both see the same data. */
static tema_status load_dataset(const tema_cfg *cfg, const char *results_dir, tema_dataset **out, tema_err *err)
{
    const char *path = tema_cfg_str(cfg, "dataset.path", NULL);
    if (!path || !*path) return tema_fail(err, TEMA_EINVAL, "config dataset.path: missing");
    tema_dataset_files files = {.train = tema_cfg_str(cfg, "dataset.train_file", NULL),
                                .valid = tema_cfg_str(cfg, "dataset.valid_file", NULL),
                                .test = tema_cfg_str(cfg, "dataset.test_file", NULL)};
    char synth_dir[4096];
    if (tema_synth_is_path(path)) {
        int64_t seed;
        tema_status st = tema_cfg_need_int(cfg, "train.seed", &seed, err);
        if (st == TEMA_OK) st = tema_synth_dataset(results_dir, (uint64_t)seed, synth_dir, sizeof synth_dir, err);
        if (st != TEMA_OK) return st;
        path = synth_dir;
    }
    return tema_dataset_load(path, &files, out, err);
}

int tema_tags_cli(int argc, char **argv)
{
    const char *exp = NULL, *results = NULL, *overrides[128]; /* NULL: the experiment's results_dir */
    int n_over = 0;
    bool force = false;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            if (n_over == 128) return usage("too many --set options");
            overrides[n_over++] = argv[++i];
        } else if (!strncmp(argv[i], "--set=", 6)) {
            if (n_over == 128) return usage("too many --set options");
            overrides[n_over++] = argv[i] + 6;
        } else if (!strcmp(argv[i], "--results") && i + 1 < argc) {
            results = argv[++i];
        } else if (!strcmp(argv[i], "--force")) {
            force = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "tema: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!exp) {
            exp = argv[i];
        } else {
            return usage("only one experiment file may be given");
        }
    }
    if (!exp) return usage("tags: missing the experiment file (EXP.yaml)");
    tema_registry *reg = tema_registry_new(tema_host_get());
    if (!reg) return 1;
    tema_registry_scan(reg);
    for (size_t i = 0; i < tema_registry_error_count(reg); i++)
        fprintf(stderr, "tema: plugin error: %s\n", tema_registry_error_at(reg, i));
    tema_err err = {0};
    tema_cfg *cfg = NULL;
    tema_dataset *ds = NULL;
    tema_tag_table t = {0};
    tema_tag_selection sel = {0};
    const char *sname = NULL, *rname = NULL;
    tema_status st = tema_cfg_resolve(exp, overrides, n_over, reg, stderr, &cfg, &err);
    if (st == TEMA_OK && !tema_cfg_get(cfg, "model.tagger"))
        st = tema_fail(&err, TEMA_EINVAL, "%s has no model.tagger, so there is nothing to tag; hint: add `tagger: "
                                          "{plugin: lexical}` under model", exp);
    results = tema_cfg_results_dir(st == TEMA_OK ? cfg : NULL, results);
    if (st == TEMA_OK) st = load_dataset(cfg, results, &ds, &err);
    if (st == TEMA_OK) st = tema_tag_table_get(cfg, reg, ds, results, force, &t, &err);
    if (st == TEMA_OK) st = tema_tags_select(cfg, reg, &t, &sel, &sname, &rname, &err);
    if (st == TEMA_OK) print_summary(stdout, &t, (const char *const *)ds->title, &sel, sname, rname);
    else fprintf(stderr, "tema: error: %s\n", err.msg[0] ? err.msg : tema_status_name(err.code));
    tema_tag_selection_free(&sel);
    tema_tag_table_free(&t);
    tema_dataset_free(ds);
    tema_cfg_free(cfg);
    tema_registry_free(reg);
    return st == TEMA_OK ? 0 : 1;
}
