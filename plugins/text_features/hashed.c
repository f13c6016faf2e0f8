/* plugins/text_features/hashed.c - a deterministic, model-free text encoder: the stand-in
 * for a pretrained one (CLIP, a sentence encoder) where none is installed.
 *
 * Hashed word unigrams, word bigrams and character 3..5-grams of each word (padded
 * "<word>"), each weighted by sublinear TF times a smoothed IDF over the texts of this call,
 * each of the three blocks L2-normalised and mixed 0.5 / 0.2 / 0.3 (squared norms), projected
 * to `dim` by a fixed sparse random projection (16 signed entries per hashed feature,
 * generated from the hash and `seed`, never stored) and L2-normalised. '|' separates
 * segments (a title and its tag names): no bigram crosses it. Empty texts get a zero row.
 * Same texts and options: the same features on every machine and thread count.
 * It knows no meaning: "espresso" and "coffee" share nothing (use plugin bert for that). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../plugin_opts.h"
#include "tema/plugin.h"

static const tema_option hashed_options[] = {
    {"dim", TEMA_OPT_INT, "512", 1, 65536, NULL, "width F of the features"},
    {"seed", TEMA_OPT_INT, "1", 0, 4294967295.0, NULL,
     "seed of the fixed random projection (independent of the training seed)"},
};

#define TF_BUCKET_BITS 23                  /* hashed feature space; df is [2^23] uint32 = 32 MB */
#define TF_BUCKET_MASK ((1u << TF_BUCKET_BITS) - 1u)
#define TF_BLOCKS 3                         /* word unigrams, word bigrams, char n-grams */
#define TF_NNZ 16                           /* signed entries per feature in the projection */
static const double tf_block_weight[TF_BLOCKS] = {0.5, 0.2, 0.3};
static const uint64_t tf_block_salt[TF_BLOCKS] = {0x9e3779b97f4a7c15ull, 0xc2b2ae3d27d4eb4full,
                                                  0x165667b19e3779f9ull};

static bool tf_isalnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static uint64_t tf_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t tf_fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Entry of a document's feature list: block in the top 2 bits, bucket below. */
static uint32_t tf_key(int block, uint64_t h)
{
    return (uint32_t)block << 30 | (uint32_t)(tf_mix(h) & TF_BUCKET_MASK);
}

typedef struct tf_scratch {
    char *text;      /* normalised text: words separated by ' ', segments by '|' */
    size_t cap_text;
    uint32_t *keys, *tmp;
    size_t n_keys, cap_keys, cap_tmp;
    double *w;       /* TF-IDF of each distinct key */
    size_t cap_w;
    float *acc;      /* [F] */
} tf_scratch;

typedef struct tf_input {
    int64_t n_items;
    const char *const *texts; /* [n_items], NULL entries = no text */
} tf_input;

static bool tf_reserve_text(tf_scratch *s, size_t need)
{
    if (need <= s->cap_text) return true;
    size_t cap = s->cap_text ? s->cap_text : 256;
    while (cap < need) cap *= 2;
    char *t = realloc(s->text, cap);
    if (!t) return false;
    s->text = t;
    s->cap_text = cap;
    return true;
}

static bool tf_push_key(tf_scratch *s, uint32_t key)
{
    if (s->n_keys == s->cap_keys) {
        size_t cap = s->cap_keys ? 2 * s->cap_keys : 512;
        uint32_t *k = realloc(s->keys, cap * sizeof *k);
        if (!k) return false;
        s->keys = k;
        s->cap_keys = cap;
    }
    s->keys[s->n_keys++] = key;
    return true;
}

/* Append raw text to s->text, lower-cased, words split at anything that is not a letter,
 * digit or non-ASCII byte; HTML entities (&amp;) and apostrophes dropped; '|' kept as a
 * segment boundary. */
static size_t tf_normalise(const char *src, char *dst, size_t k)
{
    bool in_word = false;
    for (const unsigned char *p = (const unsigned char *)src; *p;) {
        unsigned char c = *p;
        if (c == '&') { /* &name; or &#123; as in the bundled titles */
            const unsigned char *q = p + 1;
            int len = 0;
            while (len < 10 && (tf_isalnum(*q) || *q == '#')) q++, len++;
            if (len > 0 && *q == ';') {
                p = q + 1;
                in_word = false;
                continue;
            }
        }
        if (c == '\'') { /* kellogg's -> kelloggs */
            p++;
            continue;
        }
        if (c == '|') { /* a segment boundary: no bigram crosses it */
            if (k > 0 && dst[k - 1] != '|') dst[k++] = '|';
            in_word = false;
            p++;
            continue;
        }
        const bool word = tf_isalnum(c) || c >= 0x80;
        if (word) {
            if (!in_word && k > 0 && dst[k - 1] != '|') dst[k++] = ' ';
            dst[k++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            in_word = true;
        } else {
            in_word = false;
        }
        p++;
    }
    return k;
}

/* The item's normalised text in s->text; returns false on out of memory. */
static bool tf_item_text(const tf_input *in, int64_t i, tf_scratch *s, size_t *len)
{
    const char *text = in->texts[i];
    if (!tf_reserve_text(s, 2 * (text ? strlen(text) : 0) + 2)) return false;
    size_t k = text ? tf_normalise(text, s->text, 0) : 0;
    while (k > 0 && s->text[k - 1] == '|') k--;
    s->text[k] = '\0';
    *len = k;
    return true;
}

/* LSD radix sort of s->keys (a few hundred per title: several times faster than qsort). */
static bool tf_sort_keys(tf_scratch *s)
{
    if (s->n_keys < 2) return true;
    if (s->cap_tmp < s->n_keys) {
        uint32_t *t = realloc(s->tmp, s->cap_keys * sizeof *t);
        if (!t) return false;
        s->tmp = t;
        s->cap_tmp = s->cap_keys;
    }
    uint32_t *src = s->keys, *dst = s->tmp;
    for (int shift = 0; shift < 32; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < s->n_keys; i++) count[((src[i] >> shift) & 0xffu) + 1]++;
        for (int b = 0; b < 256; b++) count[b + 1] += count[b];
        for (size_t i = 0; i < s->n_keys; i++) dst[count[(src[i] >> shift) & 0xffu]++] = src[i];
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    return true; /* four passes: the result is back in s->keys */
}

/* Sorted feature keys of item i in s->keys (duplicates kept: their run length is the TF). */
static bool tf_item_keys(const tf_input *in, int64_t i, tf_scratch *s)
{
    size_t len = 0;
    s->n_keys = 0;
    if (!tf_item_text(in, i, s, &len)) return false;
    const char *t = s->text;
    const char *prev = NULL;
    size_t prev_len = 0;
    char padded[72];
    for (size_t a = 0; a < len;) {
        if (t[a] == ' ' || t[a] == '|') {
            if (t[a] == '|') prev = NULL;
            a++;
            continue;
        }
        size_t b = a;
        while (b < len && t[b] != ' ' && t[b] != '|') b++;
        const char *w = t + a;
        const size_t wl = b - a;
        bool ok = tf_push_key(s, tf_key(0, tf_fnv(tf_block_salt[0], w, wl)));
        if (prev) {
            uint64_t h = tf_fnv(tf_block_salt[1], prev, prev_len);
            h = tf_fnv(h, " ", 1);
            ok = ok && tf_push_key(s, tf_key(1, tf_fnv(h, w, wl)));
        }
        /* character n-grams of "<word>"; very long "words" (codes, URLs) keep their first 64 bytes */
        size_t pl = wl > 64 ? 64 : wl;
        padded[0] = '<';
        memcpy(padded + 1, w, pl);
        padded[pl + 1] = '>';
        pl += 2;
        for (size_t n = 3; n <= 5 && ok; n++)
            for (size_t p = 0; p + n <= pl && ok; p++)
                ok = tf_push_key(s, tf_key(2, tf_fnv(tf_block_salt[2] ^ n, padded + p, n)));
        if (!ok) return false;
        prev = w;
        prev_len = wl;
        a = b;
    }
    return tf_sort_keys(s);
}

/* Add the projection of feature `key` times v into acc[F]. */
static void tf_project(uint32_t key, uint64_t seed, float v, float *acc, int64_t F, int nnz)
{
    uint64_t state = tf_mix(seed ^ ((uint64_t)key * 0xd1b54a32d192ed03ull));
    for (int e = 0; e < nnz;) {
        uint64_t r = tf_mix(state++);
        /* three (position, sign) pairs per 64-bit draw: 20 bits of position, 1 of sign */
        for (int k = 0; k < 3 && e < nnz; k++, e++, r >>= 21) {
            const int64_t pos = (int64_t)(((r & 0xfffffu) * (uint64_t)F) >> 20);
            acc[pos] += (r & 0x100000u) ? -v : v;
        }
    }
}

static void tf_scratch_free(tf_scratch *s)
{
    free(s->text);
    free(s->keys);
    free(s->tmp);
    free(s->w);
    free(s->acc);
}

/* Pass 1: the document frequency of every hashed feature into df, and the number of items
 * with any feature. False when out of memory. */
static bool tf_document_frequencies(const tf_input *in, uint32_t *df, int64_t *n_docs_out)
{
    const int64_t n = in->n_items;
    int failed = 0;
    int64_t n_docs = 0;
#pragma omp parallel reduction(+ : n_docs)
    {
        tf_scratch s = {0};
#pragma omp for schedule(dynamic, 256)
        for (int64_t i = 0; i < n; i++) {
            int bad;
#pragma omp atomic read
            bad = failed;
            if (bad) continue;
            if (!tf_item_keys(in, i, &s)) {
#pragma omp atomic write
                failed = 1;
                continue;
            }
            if (s.n_keys > 0) n_docs++;
            for (size_t k = 0; k < s.n_keys; k++) {
                if (k > 0 && s.keys[k] == s.keys[k - 1]) continue;
#pragma omp atomic update
                df[s.keys[k] & TF_BUCKET_MASK]++;
            }
        }
        tf_scratch_free(&s);
    }
    *n_docs_out = n_docs;
    return !failed;
}

/* One item's row from its sorted keys in s->keys (some): TF-IDF per block, block mix,
 * projection, unit length. False when out of memory (the row is then left as it is). */
static bool tf_item_row(tf_scratch *s, const uint32_t *df, int64_t n_docs, uint64_t seed, int64_t F, float *row)
{
    const int nnz = F < TF_NNZ ? (int)F : TF_NNZ;
    const float inv_sqrt_nnz = (float)(1.0 / sqrt((double)nnz));
    if (s->cap_w < s->n_keys) {
        double *w = realloc(s->w, s->cap_keys * sizeof *w);
        if (!w) return false;
        s->w = w;
        s->cap_w = s->cap_keys;
    }
    /* TF-IDF of each distinct key (runs of equal keys), squared norm of each block */
    double norm2[TF_BLOCKS] = {0};
    size_t n_distinct = 0;
    for (size_t a = 0, b; a < s->n_keys; a = b) {
        for (b = a + 1; b < s->n_keys && s->keys[b] == s->keys[a]; b++) {}
        const double idf = log((1.0 + (double)n_docs) / (1.0 + df[s->keys[a] & TF_BUCKET_MASK])) + 1.0;
        const double w = (b - a == 1 ? 1.0 : 1.0 + log((double)(b - a))) * idf;
        s->keys[n_distinct] = s->keys[a];
        s->w[n_distinct++] = w;
        norm2[s->keys[a] >> 30] += w * w;
    }
    double present = 0;
    for (int k = 0; k < TF_BLOCKS; k++)
        if (norm2[k] > 0) present += tf_block_weight[k];
    double block_scale[TF_BLOCKS];
    for (int k = 0; k < TF_BLOCKS; k++)
        block_scale[k] = norm2[k] > 0 ? sqrt(tf_block_weight[k] / present / norm2[k]) : 0;
    memset(s->acc, 0, (size_t)F * sizeof *s->acc);
    for (size_t a = 0; a < n_distinct; a++)
        tf_project(s->keys[a], seed, (float)(s->w[a] * block_scale[s->keys[a] >> 30]) * inv_sqrt_nnz, s->acc, F, nnz);
    double ss = 0;
    for (int64_t j = 0; j < F; j++) ss += (double)s->acc[j] * s->acc[j];
    const float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
    for (int64_t j = 0; j < F; j++) row[j] = s->acc[j] * inv;
    return true;
}

/* Pass 2: every item's row of out [n_items * F] (empty texts: zero rows, counted in
 * *n_empty). False when out of memory. */
static bool tf_rows(const tf_input *in, const uint32_t *df, int64_t n_docs, int64_t F, uint64_t seed, float *out,
                    int64_t *n_empty)
{
    const int64_t n = in->n_items;
    int failed = 0;
    int64_t empty = 0;
#pragma omp parallel reduction(+ : empty)
    {
        tf_scratch s = {0};
        s.acc = malloc((size_t)F * sizeof *s.acc);
        if (!s.acc) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 256)
        for (int64_t i = 0; i < n; i++) {
            float *row = out + i * F;
            memset(row, 0, (size_t)F * sizeof *row);
            int bad;
#pragma omp atomic read
            bad = failed;
            if (bad) continue;
            if (!tf_item_keys(in, i, &s)) {
#pragma omp atomic write
                failed = 1;
                continue;
            }
            if (s.n_keys == 0) {
                empty++;
                continue;
            }
            if (!tf_item_row(&s, df, n_docs, seed, F, row)) {
#pragma omp atomic write
                failed = 1;
            }
        }
        tf_scratch_free(&s);
    }
    *n_empty = empty;
    return !failed;
}

/* Built-in features: out[n_items * F] (caller-owned); *n_empty = items with no text. */
static tema_status tf_compute(const tf_input *in, int64_t F, uint64_t seed, float *out, int64_t *n_empty,
                              tema_err *err)
{
    uint32_t *df = calloc((size_t)1 << TF_BUCKET_BITS, sizeof *df);
    if (!df) return tema_fail(err, TEMA_ENOMEM, "text_features hashed: out of memory for document frequencies (32 MB)");
    int64_t n_docs = 0;
    if (!tf_document_frequencies(in, df, &n_docs)) {
        free(df);
        return tema_fail(err, TEMA_ENOMEM, "text_features hashed: out of memory while hashing the titles");
    }
    int64_t empty = 0;
    const bool ok = tf_rows(in, df, n_docs, F, seed, out, &empty);
    free(df);
    if (!ok) return tema_fail(err, TEMA_ENOMEM, "text_features hashed: out of memory while projecting the titles");
    *n_empty = empty;
    return TEMA_OK;
}


/* ------------------------------------------------------------ the plugin */

typedef struct hashed_features {
    int64_t dim;
    uint64_t seed;
} hashed_features;

static tema_status hashed_create(const tema_host *host, const tema_cfg *opts, void **self, tema_err *err)
{
    int64_t dim, seed;
    tema_status st;
    if ((st = plugin_opt_int(host, opts, "text_features hashed", "dim", &dim, err)) != TEMA_OK ||
        (st = plugin_opt_int(host, opts, "text_features hashed", "seed", &seed, err)) != TEMA_OK)
        return st;
    hashed_features *h = calloc(1, sizeof *h);
    if (!h) return tema_fail(err, TEMA_ENOMEM, "text_features hashed: out of memory");
    h->dim = dim;
    h->seed = (uint64_t)seed;
    *self = h;
    return TEMA_OK;
}

static int64_t hashed_dim(const void *self) { return ((const hashed_features *)self)->dim; }
static const char *hashed_files(const void *self) { (void)self; return NULL; }

static tema_status hashed_compute(void *self, const char *const *texts, int64_t n, float *out,
                                  tema_progress_fn progress, void *progress_ctx, tema_err *err)
{
    const hashed_features *h = self;
    tf_input in = {.n_items = n, .texts = texts};
    int64_t n_empty = 0;
    tema_status st = tf_compute(&in, h->dim, h->seed, out, &n_empty, err);
    if (st == TEMA_OK && progress) progress(progress_ctx, n, n);
    return st;
}

static void hashed_destroy(void *self) { free(self); }

static const tema_text_features_ops hashed_ops = {.create = hashed_create, .dim = hashed_dim, .files = hashed_files,
                                                  .compute = hashed_compute, .destroy = hashed_destroy};

static const tema_plugin hashed_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_TEXT_FEATURES, "hashed", "2.0.0",
                       "hashed word and character n-gram TF-IDF through a fixed random projection (no model, no "
                       "meaning; the stand-in for a pretrained encoder)",
                       hashed_options, hashed_ops)};
TEMA_PLUGIN_DEFINE(hashed_plugin)
