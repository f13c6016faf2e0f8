/* plugins/tagger/embedding.c - zero-shot item tagging by sentence embeddings: offline and
 * deterministic like `lexical`, but a title relates to a tag when its embedding lies near
 * one of the tag's phrases, whether or not it contains the phrase's words.
 *
 * Vocabulary: <vocab_dir>/<domain>.yaml, the files of lexical (read by tag_vocab.h); the
 * name and every synonym of a tag is a phrase, embedded as written.
 * Embeddings: the `extractor` text_features plugin (bert: all-MiniLM-L6-v2) through
 * host->text_features, whose store keeps the rows, so re-tagging the same titles is cheap.
 * Rows are L2-normalised here, so a dot product is a cosine whatever the extractor.
 * Titles without a letter or digit (NULL, "", "!!!") have nothing to embed: 0 everywhere.
 *
 * Score: c(i, t) = max over the phrases p of tag t of cos(title i, p). Relevance: 0 below
 * `threshold`, else round(100 (c - threshold) / (S - threshold)) clamped to [1, 100], S the
 * `scale_quantile` quantile of the domain's cosines at or above the threshold: one monotone
 * map per domain, as in lexical, so an item's tag order is the cosine order. Whether a tag is
 * related depends on the title alone; only the 1..100 scale depends on the other items.
 *
 * Why (measured on all food-kitchen titles, 8661 food + 27637 kitchen, 39 + 40 tags, with
 * lexical as the reference: "unrelated" = lexical 0, "confident" = lexical >= 70; figures
 * are food / kitchen):
 *  - max over the phrases: the tag lexical is confident about is the best-cosine tag for
 *    72% / 85% of those pairs and among the best 3 for 94% / 97%; the tag name alone gives
 *    56% / 57% and 82% / 80%, the whole tag as one text ("name: syn, syn, ...") 64% / 72% and
 *    86% / 94%. (Stored relevance, after the threshold below: 68% / 80% best, 82% / 87% in
 *    the best 3.)
 *  - threshold 0.5: an item has ~38 unrelated tags, so 38 times the rate at which unrelated
 *    pairs pass the threshold is its expected number of spurious tags. Lexically unrelated
 *    pairs reach 0.50 at 1.3% / 1.4% (half a spurious tag per item; at 0.45: 4.2% / 3.4%,
 *    1.3-1.6 per item) while 82% / 88% of the confident pairs stay above it. Most lexically
 *    unrelated pairs just above 0.5 are wrong by eye (banana bread mix -> dried fruit), and
 *    the map gives them low relevance. 86% / 80% of the items get a tag (lexical: 96% / 89%).
 *  - known bias: a tag with more phrases takes the max of more cosines, so it sits higher on
 *    unrelated titles (its median over lexically unrelated pairs correlates with its phrase
 *    count, 0.54 / 0.58). Subtracting each phrase's median cosine over the domain's titles
 *    (an IDF of sorts) lifts the agreement above by 1-2 points, but would make an item's tags
 *    depend on the other items tagged with it; not done.
 * Cost: the embeddings (36k titles: ~3 min on one CPU thread, then read from the store);
 * the scoring itself takes under a second.
 *
 * The extractor is read in tag(), so the options create() receives must outlive tag() (the
 * host's tagger config does: core/tags.c creates, tags and destroys within one call). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tag_plugin.h"
#include "tag_vocab.h"

#define WHO "tagger embedding"

static const tema_option embedding_options[] = {
    {"vocab_dir", TEMA_OPT_STRING, TAG_VOCAB_DIR, 0, -1, NULL,
     "folder of the tag vocabularies, one <domain>.yaml per domain (relative to the current directory)"},
    {"extractor", TEMA_OPT_PLUGIN, "{plugin: bert}", 0, -1, "text_features",
     "sentence encoder of the titles and the tag phrases (bert: all-MiniLM-L6-v2)"},
    {"threshold", TEMA_OPT_FLOAT, "0.5", -1, 1, NULL,
     "cosine of title and best tag phrase under which the tag is unrelated to the item (relevance 0)"},
    {"scale_quantile", TEMA_OPT_FLOAT, "0.9", 0.5, 1, NULL,
     "cosine that maps to relevance 100: this quantile of the domain's cosines at or above the threshold"},
};

typedef struct embedding {
    const tema_host *host; /* outlives the instance */
    char *file;            /* the vocabulary file, for messages */
    const tema_cfg *opts;  /* create()'s options, read again by tag() for the extractor */
    double threshold, quantile;
    char **tag_name;
    size_t n_tags, cap_tag_name;
    /* phrases in file order, so a tag's phrases are ph[tag_off[t]..tag_off[t+1]) */
    char **ph;
    size_t n_ph, cap_ph;
    size_t *tag_off;
    size_t cap_tag_off;
} embedding;

static void embedding_free(embedding *em)
{
    if (!em) return;
    for (size_t t = 0; t < em->n_tags; t++) free(em->tag_name[t]);
    for (size_t p = 0; p < em->n_ph; p++) free(em->ph[p]);
    free(em->tag_name);
    free(em->ph);
    free(em->tag_off);
    free(em->file);
    free(em);
}

/* ---- the vocabulary (tag_vocab.h callbacks) ---- */

static tema_status add_phrase(embedding *em, const char *text, size_t len, size_t line, tema_err *err)
{
    while (len && (text[len - 1] == ' ' || text[len - 1] == '\t')) len--;
    while (len && (*text == ' ' || *text == '\t')) text++, len--;
    if (len == 0)
        return tema_fail(err, TEMA_EFORMAT, "%s:%zu: empty synonym of '%s'; hint: remove it or write a word",
                         em->file, line, em->tag_name[em->n_tags - 1]);
    char *copy = strndup(text, len);
    if (!copy || !tag_vocab_grow((void **)&em->ph, &em->cap_ph, em->n_ph + 1, sizeof *em->ph)) {
        free(copy);
        return tema_fail(err, TEMA_ENOMEM, WHO ": out of memory reading %s", em->file);
    }
    em->ph[em->n_ph++] = copy;
    em->tag_off[em->n_tags] = em->n_ph;
    return TEMA_OK;
}

static tema_status on_tag(void *ctx, const char *name, size_t len, size_t line, tema_err *err)
{
    embedding *em = ctx;
    char *copy = strndup(name, len);
    if (!copy || !tag_vocab_grow((void **)&em->tag_name, &em->cap_tag_name, em->n_tags + 1, sizeof *em->tag_name) ||
        !tag_vocab_grow((void **)&em->tag_off, &em->cap_tag_off, em->n_tags + 2, sizeof *em->tag_off)) {
        free(copy);
        return tema_fail(err, TEMA_ENOMEM, WHO ": out of memory reading %s", em->file);
    }
    em->tag_name[em->n_tags++] = copy;
    em->tag_off[0] = 0;
    em->tag_off[em->n_tags] = em->n_ph;
    return add_phrase(em, copy, len, line, err); /* the name is a phrase of its own tag */
}

static tema_status on_synonym(void *ctx, const char *text, size_t line, tema_err *err)
{
    return add_phrase(ctx, text, strlen(text), line, err);
}

static tema_status embedding_create(const tema_host *host, const tema_cfg *opts, const char *domain, void **self,
                                    tema_err *err)
{
    *self = NULL;
    tema_status st;
    if (!opts)
        return tema_fail(err, TEMA_EINVAL, WHO ": needs its options (at least the extractor); hint: create it "
                                           "through the registry, which fills the defaults");
    char *file = NULL;
    if ((st = tag_vocab_path(host, opts, domain, WHO, &file, err)) != TEMA_OK) return st;
    embedding *em = calloc(1, sizeof *em);
    if (!em) {
        free(file);
        return tema_fail(err, TEMA_ENOMEM, WHO ": out of memory");
    }
    em->host = host;
    em->file = file;
    em->opts = opts;
    if ((st = plugin_opt_float(host, opts, WHO, "threshold", &em->threshold, err)) != TEMA_OK ||
        (st = plugin_opt_float(host, opts, WHO, "scale_quantile", &em->quantile, err)) != TEMA_OK) {
        embedding_free(em);
        return st;
    }
    const tag_vocab_sink sink = {.who = WHO, .file = em->file, .ctx = em, .tag = on_tag, .synonym = on_synonym};
    if ((st = tag_vocab_load(&sink, domain, err)) != TEMA_OK) {
        embedding_free(em);
        return st;
    }
    *self = em;
    return TEMA_OK;
}

/* ---- scoring ---- */

/* A title with no letter or digit (empty, "!!! ---") has no words to embed: not an item
 * with a title. Non-ASCII bytes count as letters (other scripts, accents). */
static bool has_words(const char *s)
{
    if (!s) return false;
    for (; *s; s++)
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
            (unsigned char)*s >= 0x80)
            return true;
    return false;
}

/* Rows to unit length (all-zero rows stay zero), so a dot product is a cosine whatever the
 * extractor's own normalisation. */
static void normalize_rows(float *x, int64_t n, int64_t dim)
{
    for (int64_t i = 0; i < n; i++) {
        float *r = x + i * dim;
        double ss = 0;
        for (int64_t j = 0; j < dim; j++) ss += (double)r[j] * r[j];
        if (ss <= 0) continue;
        const float inv = (float)(1.0 / sqrt(ss));
        for (int64_t j = 0; j < dim; j++) r[j] *= inv;
    }
}

/* Eight partial sums in a fixed order: the same value on every run and thread count, and a
 * loop the compiler vectorises. */
static float dot(const float *a, const float *b, int64_t dim)
{
    float acc[8] = {0};
    int64_t j = 0;
    for (; j + 8 <= dim; j += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[j + k] * b[j + k];
    for (; j < dim; j++) acc[0] += a[j] * b[j];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* Rows of texts through the host's feature store; *rows is host memory. */
static tema_status features(const embedding *em, const char *const *texts, int64_t n, float **rows, int64_t *dim,
                            tema_err *err)
{
    tema_status st = em->host->text_features(em->opts, "extractor", texts, n, WHO, rows, dim, err);
    if (st == TEMA_OK) normalize_rows(*rows, n, *dim);
    return st;
}

#define UNTITLED (-2.0f) /* below every cosine */

/* raw[i * n_tags + t] = max over the phrases p of tag t of cos(title i, p); UNTITLED for
 * items without words. */
static tema_status raw_scores(const embedding *em, const char *const *titles, int64_t n_items, float *raw,
                              tema_err *err)
{
    const int64_t nt = (int64_t)em->n_tags, np = (int64_t)em->n_ph;
    const char **texts = calloc((size_t)(n_items > 0 ? n_items : 1), sizeof *texts);
    if (!texts) return tema_fail(err, TEMA_ENOMEM, WHO ": out of memory for %lld titles", (long long)n_items);
    int64_t n_titled = 0;
    for (int64_t i = 0; i < n_items; i++) {
        texts[i] = has_words(titles[i]) ? titles[i] : NULL;
        n_titled += texts[i] != NULL;
    }
    for (int64_t j = 0; j < n_items * nt; j++) raw[j] = UNTITLED;
    float *P = NULL, *T = NULL;
    int64_t dp = 0, dt = 0;
    tema_status st = TEMA_OK;
    if (n_titled > 0) st = features(em, (const char *const *)em->ph, np, &P, &dp, err);
    if (n_titled > 0 && st == TEMA_OK) st = features(em, texts, n_items, &T, &dt, err);
    if (st == TEMA_OK && n_titled > 0 && dp != dt)
        st = tema_fail(err, TEMA_EINTERNAL, WHO ": the extractor gave %lld-wide phrase rows but %lld-wide title rows",
                       (long long)dp, (long long)dt);
    if (st == TEMA_OK && n_titled > 0) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n_items; i++) {
            if (!texts[i]) continue;
            const float *ti = T + i * dt;
            float *r = raw + i * nt;
            for (int64_t t = 0; t < nt; t++) {
                float best = UNTITLED;
                for (size_t p = em->tag_off[t]; p < em->tag_off[t + 1]; p++) {
                    float c = dot(ti, P + (int64_t)p * dp, dt);
                    if (c > best) best = c;
                }
                r[t] = best;
            }
        }
    }
    if (P) em->host->free(P);
    if (T) em->host->free(T);
    free(texts);
    return st;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Raw cosines to relevance in place: under the threshold 0, else
 * round(100 (c - thr) / (S - thr)) clamped to [1, 100], S the quantile of the cosines at
 * or above the threshold (nearest rank). */
static tema_status map_scores(const embedding *em, float *score, size_t cells, tema_err *err)
{
    const float thr = (float)em->threshold;
    size_t n_pos = 0;
    for (size_t j = 0; j < cells; j++) n_pos += score[j] >= thr && score[j] != UNTITLED;
    float *pos = malloc((n_pos ? n_pos : 1) * sizeof *pos);
    if (!pos) return tema_fail(err, TEMA_ENOMEM, WHO ": out of memory");
    size_t k = 0;
    for (size_t j = 0; j < cells; j++)
        if (score[j] >= thr && score[j] != UNTITLED) pos[k++] = score[j];
    qsort(pos, n_pos, sizeof *pos, cmp_float);
    double S = thr;
    if (n_pos) {
        int64_t r = (int64_t)ceil(em->quantile * (double)n_pos) - 1;
        S = pos[r < 0 ? 0 : r >= (int64_t)n_pos ? (int64_t)n_pos - 1 : r];
    }
    free(pos);
    for (size_t j = 0; j < cells; j++) {
        if (score[j] == UNTITLED || !(score[j] >= thr)) {
            score[j] = 0;
            continue;
        }
        /* S == thr: the quantile sits on the threshold itself, nothing to scale by; all are 100 */
        double v = S > thr ? nearbyint(100.0 * ((double)score[j] - thr) / (S - thr)) : 100.0;
        score[j] = (float)(v < 1 ? 1 : v > 100 ? 100 : v);
    }
    return TEMA_OK;
}

static tema_status embedding_tag(void *self, const char *const *titles, int64_t n_items, tema_tag_vocab *out,
                                 tema_err *err)
{
    memset(out, 0, sizeof *out);
    const embedding *em = self;
    if (!em || n_items < 0 || (n_items > 0 && !titles))
        return tema_fail(err, TEMA_EINVAL, WHO ": tag() needs an instance and n_items >= 0 titles");
    const tema_host *host = em->host;
    tema_status st;
    if (!TEMA_HAS_FIELD(host, tema_host, text_features) || !host->text_features)
        return tema_fail(err, TEMA_EABI, WHO ": this tema has no text feature service (ABI < 1.2); hint: use the "
                                         "lexical tagger, or a newer tema");
    const size_t nt = em->n_tags, cells = (size_t)n_items * nt;
    out->n_tags = (int32_t)nt;
    out->tags = host->alloc(nt * sizeof *out->tags);
    out->score = host->alloc((cells ? cells : 1) * sizeof *out->score);
    bool ok = out->tags && out->score;
    if (out->tags) memset(out->tags, 0, nt * sizeof *out->tags);
    for (size_t t = 0; ok && t < nt; t++) {
        size_t len = strlen(em->tag_name[t]) + 1;
        if (!(out->tags[t] = host->alloc(len))) ok = false;
        else memcpy(out->tags[t], em->tag_name[t], len);
    }
    if (!ok) {
        tag_vocab_out_free(host, out);
        return tema_fail(err, TEMA_ENOMEM, WHO ": out of memory for %lld titles and %zu tags", (long long)n_items,
                         nt);
    }
    st = raw_scores(em, titles, n_items, out->score, err);
    if (st == TEMA_OK) st = map_scores(em, out->score, cells, err);
    if (st != TEMA_OK) tag_vocab_out_free(host, out);
    return st;
}

static void embedding_destroy(void *self) { embedding_free(self); }

static const tema_tagger_ops embedding_ops = {
    .create_with_host = embedding_create, .tag = embedding_tag, .destroy = embedding_destroy};

static const tema_plugin embedding_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_TAGGER, "embedding", "1.0.0", "zero-shot tagging by the cosine of title and tag "
                       "phrase sentence embeddings (experiments/tags/<domain>.yaml)", embedding_options,
                       embedding_ops)};

TEMA_PLUGIN_DEFINE(embedding_plugin)
