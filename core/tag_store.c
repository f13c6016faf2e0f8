/* core/tag_store.c - the tag store's files under <results>/tags/<dataset>/<key>/ (layout at the
 * top of core/tags.c): written vocab.tsv, scores.tsv, then meta.json, and read back. */
#include "tags_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "host.h"
#include "util.h"

#define STORE_FORMAT TEMA_TAG_STORE_FORMAT

float *tema_tag_table_row(const tema_tag_table *t, int d, int64_t item)
{
    int32_t nt = d ? t->n_tags - t->n_tags_x : t->n_tags_x;
    return (d ? t->score_y : t->score_x) + item * nt;
}

tema_status tema_tag_table_alloc(tema_tag_table *t, tema_err *err)
{
    t->tag_names = calloc((size_t)(t->n_tags > 0 ? t->n_tags : 1), sizeof *t->tag_names);
    t->score_x = calloc((size_t)t->n_x * (size_t)t->n_tags_x + 1, sizeof *t->score_x);
    t->score_y = calloc((size_t)t->n_y * (size_t)(t->n_tags - t->n_tags_x) + 1, sizeof *t->score_y);
    if (!t->tag_names || !t->score_x || !t->score_y)
        return tema_fail(err, TEMA_ENOMEM, "out of memory for %d tags of %d + %d items", (int)t->n_tags, (int)t->n_x,
                         (int)t->n_y);
    return TEMA_OK;
}

/* vocab.tsv: every tag with its domain. */
static tema_status write_vocab_tsv(const tema_tag_table *t, tema_err *err)
{
    char path[4300];
    tema_sb b = {0};
    tema_sb_printf(&b, "tag\tdomain\tdomain_name\tname\n");
    for (int32_t k = 0; k < t->n_tags; k++) {
        int d = k >= t->n_tags_x;
        tema_sb_printf(&b, "%d\t%c\t%s\t%s\n", (int)k, d ? 'Y' : 'X', t->domain[d], t->tag_names[k]);
    }
    snprintf(path, sizeof path, "%s/vocab.tsv", t->dir);
    tema_status st = b.oom ? tema_fail(err, TEMA_ENOMEM, "out of memory") : tema_write_file_atomic(path, b.p, b.n, err);
    free(b.p);
    return st;
}

/* scores.tsv: the nonzero scores, counted in *nonzero, and per domain the items with any. */
static tema_status write_scores_tsv(const tema_tag_table *t, int64_t *nonzero, int64_t tagged[2], tema_err *err)
{
    char path[4300];
    tema_sb b = {0};
    tema_sb_printf(&b, "item\ttag\tscore\n");
    for (int d = 0; d < 2; d++) {
        int64_t n = d ? t->n_y : t->n_x;
        int32_t nt = d ? t->n_tags - t->n_tags_x : t->n_tags_x, base = d ? t->n_tags_x : 0;
        for (int64_t i = 0; i < n; i++) {
            const float *row = tema_tag_table_row(t, d, i);
            bool any = false;
            for (int32_t k = 0; k < nt; k++)
                if (row[k] > 0) {
                    tema_sb_printf(&b, "%lld\t%d\t%.9g\n", (long long)(i + (d ? t->n_x : 0)), (int)(base + k),
                                   (double)row[k]);
                    (*nonzero)++;
                    any = true;
                }
            tagged[d] += any;
        }
    }
    snprintf(path, sizeof path, "%s/scores.tsv", t->dir);
    tema_status st = b.oom ? tema_fail(err, TEMA_ENOMEM, "out of memory") : tema_write_file_atomic(path, b.p, b.n, err);
    free(b.p);
    return st;
}

/* meta.json: what made the store and its counts; written last, it marks the store complete. */
static tema_status write_meta_json(const tema_tag_table *t, const tema_plugin *tp, const char *settings_json,
                                   const tema_env_fallback *env, int n_env, const tema_dataset *ds, uint64_t key,
                                   int64_t nonzero, const int64_t tagged[2], tema_err *err)
{
    json_object *m = json_object_new_object();
    json_object *settings = json_tokener_parse(settings_json);
    json_object *domains = json_object_new_array(), *items = json_object_new_array(), *tags = json_object_new_array(),
                *tg = json_object_new_array();
    char keyhex[32];
    snprintf(keyhex, sizeof keyhex, "%016" PRIx64, key);
    json_object_object_add(m, "format", json_object_new_string(STORE_FORMAT));
    json_object_object_add(m, "key", json_object_new_string(keyhex));
    json_object_object_add(m, "tagger", json_object_new_string(tp->name));
    json_object_object_add(m, "version", json_object_new_string(tp->version));
    json_object_object_add(m, "settings", settings ? settings : json_object_new_string(settings_json));
    if (n_env > 0) {
        json_object *e = json_object_new_object();
        for (int i = 0; i < n_env; i++)
            json_object_object_add(e, env[i].name, env[i].value ? json_object_new_string(env[i].value) : NULL);
        json_object_object_add(m, "environment", e);
    }
    json_object_object_add(m, "dataset", json_object_new_string(ds->path));
    for (int d = 0; d < 2; d++) {
        json_object_array_add(domains, json_object_new_string(t->domain[d]));
        json_object_array_add(items, json_object_new_int64(d ? t->n_y : t->n_x));
        json_object_array_add(tags, json_object_new_int(d ? t->n_tags - t->n_tags_x : t->n_tags_x));
        json_object_array_add(tg, json_object_new_int64(tagged[d]));
    }
    json_object_object_add(m, "domains", domains);
    json_object_object_add(m, "n_items", items);
    json_object_object_add(m, "n_tags", tags);
    json_object_object_add(m, "items_with_tags", tg);
    json_object_object_add(m, "nonzero_scores", json_object_new_int64(nonzero));
    json_object_object_add(m, "seconds", json_object_new_double(t->seconds));
    if (t->incomplete > 0) json_object_object_add(m, "incomplete", json_object_new_int64(t->incomplete));
    json_object_object_add(m, "tema_commit", json_object_new_string(tema_git_commit()));
    const char *text = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
    char path[4300];
    snprintf(path, sizeof path, "%s/meta.json", t->dir);
    size_t tl = strlen(text);
    char *withnl = malloc(tl + 2);
    tema_status st;
    if (!withnl) st = tema_fail(err, TEMA_ENOMEM, "out of memory");
    else {
        memcpy(withnl, text, tl);
        withnl[tl] = '\n';
        st = tema_write_file_atomic(path, withnl, tl + 1, err);
        free(withnl);
    }
    json_object_put(m);
    return st;
}

tema_status tema_tag_store_write(const tema_tag_table *t, const tema_plugin *tp, const char *settings_json,
                               const tema_env_fallback *env, int n_env, const tema_dataset *ds, uint64_t key, tema_err *err)
{
    tema_status st = tema_mkdirs(t->dir, err);
    if (st != TEMA_OK) return st;
    char path[4300];
    /* a rebuild first marks the folder incomplete, so no reader mixes old and new files */
    snprintf(path, sizeof path, "%s/meta.json", t->dir);
    if (remove(path) != 0 && errno != ENOENT)
        return tema_fail(err, TEMA_EIO, "cannot replace %s: %s", path, strerror(errno));
    int64_t nonzero = 0, tagged[2] = {0, 0};
    st = write_vocab_tsv(t, err);
    if (st == TEMA_OK) st = write_scores_tsv(t, &nonzero, tagged, err);
    if (st != TEMA_OK) return st;
    return write_meta_json(t, tp, settings_json, env, n_env, ds, key, nonzero, tagged, err);
}

/* Next tab-separated field of a line (NUL-terminated in place); NULL at the line's end. */
static char *next_field(char **p)
{
    if (!*p) return NULL;
    char *f = *p, *tab = strchr(f, '\t');
    if (tab) {
        *tab = '\0';
        *p = tab + 1;
    } else {
        *p = NULL;
    }
    return f;
}

static bool parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno || v < lo || v > hi) return false;
    *out = v;
    return true;
}

#define BAD_STORE_HINT "hint: delete that folder and the tags are rebuilt"

/* meta.json at path: whether it describes a complete store for keyhex (*ok), its tag
 * counts per domain and how many items or queries had no answer. */
static tema_status read_meta(const char *path, const char *keyhex, bool *ok_out, int64_t ntd[2], int64_t *incomplete,
                             tema_err *err)
{
    char *text = NULL;
    size_t len = 0;
    tema_status st = tema_read_file(path, &text, &len, err);
    if (st != TEMA_OK) return st;
    json_object *m = json_tokener_parse(text);
    free(text);
    json_object *v, *tags;
    bool ok = m && json_object_object_get_ex(m, "format", &v) && json_object_is_type(v, json_type_string) &&
              !strcmp(json_object_get_string(v), STORE_FORMAT) && json_object_object_get_ex(m, "key", &v) &&
              json_object_is_type(v, json_type_string) && !strcmp(json_object_get_string(v), keyhex) &&
              json_object_object_get_ex(m, "n_tags", &tags) && json_object_is_type(tags, json_type_array) &&
              json_object_array_length(tags) == 2;
    for (int d = 0; ok && d < 2; d++) {
        ntd[d] = json_object_get_int64(json_object_array_get_idx(tags, (size_t)d));
        ok = ntd[d] >= 0 && ntd[d] < INT32_MAX / 2;
    }
    if (ok && json_object_object_get_ex(m, "incomplete", &v)) *incomplete = json_object_get_int64(v);
    json_object_put(m);
    *ok_out = ok;
    return TEMA_OK;
}

/* vocab.tsv into t->tag_names: tag ids 0.. in order, each in its domain. */
static tema_status read_vocab_tsv(tema_tag_table *t, tema_err *err)
{
    char path[4300], *text = NULL;
    size_t len = 0;
    tema_status st;
    snprintf(path, sizeof path, "%s/vocab.tsv", t->dir);
    if ((st = tema_read_file(path, &text, &len, err)) != TEMA_OK) return st;
    int64_t line_no = 0, seen = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && st == TEMA_OK; line = strtok_r(NULL, "\n", &save)) {
        if (++line_no == 1) continue; /* header */
        char *p = line, *f_id = next_field(&p), *f_dom = next_field(&p), *f_dn = next_field(&p), *f_name = next_field(&p);
        int64_t id;
        if (!f_name || p || !parse_i64(f_id, 0, t->n_tags - 1, &id) || id != seen ||
            strcmp(f_dom, id < t->n_tags_x ? "X" : "Y") != 0 || !*f_name) {
            st = tema_fail(err, TEMA_EFORMAT, "%s:%lld: expected 'tag<TAB>X|Y<TAB>domain<TAB>name' with tag = %lld; "
                                              BAD_STORE_HINT, path, (long long)line_no, (long long)seen);
            break;
        }
        (void)f_dn;
        if (!(t->tag_names[seen++] = strdup(f_name))) st = tema_fail(err, TEMA_ENOMEM, "out of memory");
    }
    free(text);
    if (st == TEMA_OK && seen != t->n_tags)
        st = tema_fail(err, TEMA_EFORMAT, "%s: %lld tags, meta.json says %d; " BAD_STORE_HINT, path, (long long)seen,
                       (int)t->n_tags);
    return st;
}

/* scores.tsv into the table: positive scores of an item and a tag of the same domain. */
static tema_status read_scores_tsv(tema_tag_table *t, tema_err *err)
{
    char path[4300], *text = NULL;
    size_t len = 0;
    tema_status st;
    snprintf(path, sizeof path, "%s/scores.tsv", t->dir);
    if ((st = tema_read_file(path, &text, &len, err)) != TEMA_OK) return st;
    const int64_t n_items = (int64_t)t->n_x + t->n_y;
    int64_t line_no = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && st == TEMA_OK; line = strtok_r(NULL, "\n", &save)) {
        if (++line_no == 1) continue;
        char *p = line, *f_item = next_field(&p), *f_tag = next_field(&p), *f_score = next_field(&p);
        int64_t item, tag;
        char *end = NULL;
        double s = f_score ? strtod(f_score, &end) : NAN;
        if (!f_score || p || !parse_i64(f_item, 0, n_items - 1, &item) || !parse_i64(f_tag, 0, t->n_tags - 1, &tag) ||
            *end || !(s > 0) || !isfinite(s) || (item >= t->n_x) != (tag >= t->n_tags_x)) {
            st = tema_fail(err, TEMA_EFORMAT, "%s:%lld: expected 'item<TAB>tag<TAB>score' with an item and a tag of "
                                              "the same domain and a score > 0; " BAD_STORE_HINT,
                           path, (long long)line_no);
            break;
        }
        int d = item >= t->n_x;
        tema_tag_table_row(t, d, item - (d ? t->n_x : 0))[tag - (d ? t->n_tags_x : 0)] = (float)s;
    }
    free(text);
    return st;
}

/* Read a complete store; *found = false (no error) when a file of it is missing. */
tema_status tema_tag_store_read(tema_tag_table *t, const char *keyhex, bool *found, tema_err *err)
{
    *found = false;
    char path[4300];
    static const char *const files[] = {"vocab.tsv", "scores.tsv", "meta.json"};
    for (int i = 0; i < 3; i++) {
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", t->dir, files[i]);
        if (stat(path, &sb) != 0) return TEMA_OK;
    }
    bool ok = false;
    int64_t ntd[2] = {0, 0}, incomplete = 0;
    tema_status st = read_meta(path, keyhex, &ok, ntd, &incomplete, err);
    if (st != TEMA_OK) return st;
    if (ok && incomplete > 0) { /* a partial answer is never reused: the tagger is asked again */
        tema_host_get()->log(TEMA_LOG_INFO, "tags", "%s: stored incomplete (%lld items or queries had no answer); tagging again",
                 t->dir, (long long)incomplete);
        return TEMA_OK;
    }
    if (!ok) return tema_fail(err, TEMA_EFORMAT, "%s: not a complete tag store for key %s; " BAD_STORE_HINT, path,
                              keyhex);
    t->n_tags_x = (int32_t)ntd[0];
    t->n_tags = (int32_t)(ntd[0] + ntd[1]);
    if ((st = tema_tag_table_alloc(t, err)) != TEMA_OK || (st = read_vocab_tsv(t, err)) != TEMA_OK ||
        (st = read_scores_tsv(t, err)) != TEMA_OK)
        return st;
    *found = true;
    return TEMA_OK;
}

