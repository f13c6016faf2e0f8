/* plugins/text_features/bert/bert_model.c - BERT's forward pass on the backend's kernels:
 * sgemm for every product (the three attention projections fused into one), the backend's
 * fused inference attention with each sequence's length as the key mask, layernorm, exact
 * erf GELU.
 * Inference only, so no state is kept for a backward pass. */
#include "bert_model.h"

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

/* ---- config.json ---- */

static tema_status json_int(json_object *o, const char *path, const char *key, bool required, int64_t fallback,
                            int64_t *out, tema_err *err)
{
    json_object *v = NULL;
    *out = fallback;
    if (!json_object_object_get_ex(o, key, &v) || !v) {
        if (!required) return TEMA_OK;
        return tema_fail(err, TEMA_EFORMAT, "%s: missing field '%s'; hint: is this a BERT checkpoint's config.json?",
                         path, key);
    }
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1)
        return tema_fail(err, TEMA_EFORMAT, "%s: field '%s' must be a positive integer", path, key);
    *out = json_object_get_int64(v);
    return TEMA_OK;
}

tema_status bert_config_load(const char *dir, bert_config *c, tema_err *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    memset(c, 0, sizeof *c);
    json_object *o = json_object_from_file(path);
    if (!o) return tema_fail(err, TEMA_EFORMAT, "%s: not readable JSON (%s)", path, json_util_get_last_err());
    tema_status st = TEMA_OK;
    const char *model_type = NULL, *act = "gelu", *pos = "absolute";
    json_object *v = NULL;
    if (json_object_object_get_ex(o, "model_type", &v)) model_type = json_object_get_string(v);
    if (json_object_object_get_ex(o, "hidden_act", &v)) act = json_object_get_string(v);
    if (json_object_object_get_ex(o, "position_embedding_type", &v)) pos = json_object_get_string(v);
    if (model_type && strcmp(model_type, "bert") != 0)
        st = tema_fail(err, TEMA_EUNSUPPORTED, "%s: model_type '%s' is not bert; hint: this plugin reads BERT "
                                               "checkpoints (e.g. sentence-transformers all-MiniLM-L6-v2)", path,
                       model_type);
    else if (!act || (strcmp(act, "gelu") && strcmp(act, "gelu_new") && strcmp(act, "gelu_pytorch_tanh")))
        st = tema_fail(err, TEMA_EUNSUPPORTED, "%s: hidden_act '%s' is not supported (gelu, gelu_new, "
                                               "gelu_pytorch_tanh)", path, act ? act : "?");
    else if (!pos || strcmp(pos, "absolute") != 0)
        st = tema_fail(err, TEMA_EUNSUPPORTED, "%s: position_embedding_type '%s' is not supported (absolute)", path,
                       pos ? pos : "?");
    c->gelu_tanh = act && strcmp(act, "gelu") != 0;
    if (st == TEMA_OK) st = json_int(o, path, "hidden_size", true, 0, &c->hidden, err);
    if (st == TEMA_OK) st = json_int(o, path, "num_hidden_layers", true, 0, &c->layers, err);
    if (st == TEMA_OK) st = json_int(o, path, "num_attention_heads", true, 0, &c->heads, err);
    if (st == TEMA_OK) st = json_int(o, path, "intermediate_size", true, 0, &c->intermediate, err);
    if (st == TEMA_OK) st = json_int(o, path, "max_position_embeddings", true, 0, &c->max_positions, err);
    if (st == TEMA_OK) st = json_int(o, path, "vocab_size", true, 0, &c->vocab, err);
    if (st == TEMA_OK) st = json_int(o, path, "type_vocab_size", false, 2, &c->type_vocab, err);
    c->eps = 1e-12;
    if (st == TEMA_OK && json_object_object_get_ex(o, "layer_norm_eps", &v)) {
        c->eps = json_object_get_double(v);
        if (!(c->eps > 0 && c->eps < 1))
            st = tema_fail(err, TEMA_EFORMAT, "%s: layer_norm_eps must be in (0, 1)", path);
    }
    if (st == TEMA_OK && c->hidden % c->heads != 0)
        st = tema_fail(err, TEMA_EFORMAT, "%s: hidden_size %lld is not a multiple of num_attention_heads %lld", path,
                       (long long)c->hidden, (long long)c->heads);
    json_object_put(o);
    return st;
}

/* ---- weights: one backend buffer, carved in this order ---- */

typedef struct layer_w {
    size_t qkv_w, qkv_b, o_w, o_b, ln1_g, ln1_b, i_w, i_b, o2_w, o2_b, ln2_g, ln2_b; /* offsets in floats */
} layer_w;

typedef struct emb_w {
    size_t word, pos, type0, ln_g, ln_b;
} emb_w;

struct bert_layout {
    emb_w emb;
    layer_w layer[]; /* [layers] */
};

static size_t layout(const bert_config *c, emb_w *e, layer_w *l)
{
    const size_t H = (size_t)c->hidden, I = (size_t)c->intermediate;
    size_t at = 0;
    e->word = at, at += (size_t)c->vocab * H;
    e->pos = at, at += (size_t)c->max_positions * H;
    e->type0 = at, at += H;
    e->ln_g = at, at += H;
    e->ln_b = at, at += H;
    for (int64_t k = 0; l && k < c->layers; k++) {
        layer_w *w = &l[k];
        w->qkv_w = at, at += 3 * H * H;
        w->qkv_b = at, at += 3 * H;
        w->o_w = at, at += H * H;
        w->o_b = at, at += H;
        w->ln1_g = at, at += H;
        w->ln1_b = at, at += H;
        w->i_w = at, at += I * H;
        w->i_b = at, at += I;
        w->o2_w = at, at += H * I;
        w->o2_b = at, at += H;
        w->ln2_g = at, at += H;
        w->ln2_b = at, at += H;
    }
    return at;
}

typedef struct loader {
    const st_file *f;
    const char *prefix; /* "" or "bert." */
    bert_model *m;
    size_t rows_taken;  /* for tensors copied in part (the first rows of token types) */
} loader;

/* Copy tensor `name` of the given shape to weight offset `at` (only its first `rows` rows
 * when rows > 0: token type 0 of [type_vocab, H]). */
static tema_status put(loader *ld, const char *name, int ndim, int64_t d0, int64_t d1, size_t at, int64_t rows,
                       tema_err *err)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", ld->prefix, name);
    int64_t shape[2] = {d0, d1};
    const float *src = NULL;
    float *owned = NULL;
    tema_status st = st_get_f32(ld->f, full, ndim, shape, &src, &owned, err);
    if (st != TEMA_OK) return st;
    size_t n = (size_t)(rows > 0 ? rows : d0) * (size_t)(ndim > 1 ? d1 : 1);
    ld->m->be->to_device(ld->m->bs, ld->m->weights + at, src, n * sizeof(float));
    free(owned);
    return TEMA_OK;
}

static tema_status load_layer(loader *ld, int64_t k, const layer_w *w, tema_err *err)
{
    const bert_config *c = &ld->m->cfg;
    const int64_t H = c->hidden, I = c->intermediate;
    static const char *const qkv[3] = {"query", "key", "value"};
    char n[160];
    tema_status st = TEMA_OK;
    for (int j = 0; j < 3 && st == TEMA_OK; j++) { /* q, k, v stacked: one [3H, H] product */
        snprintf(n, sizeof n, "encoder.layer.%lld.attention.self.%s.weight", (long long)k, qkv[j]);
        st = put(ld, n, 2, H, H, w->qkv_w + (size_t)j * (size_t)(H * H), 0, err);
        snprintf(n, sizeof n, "encoder.layer.%lld.attention.self.%s.bias", (long long)k, qkv[j]);
        if (st == TEMA_OK) st = put(ld, n, 1, H, 0, w->qkv_b + (size_t)(j * H), 0, err);
    }
    struct { const char *name; int ndim; int64_t d0, d1; size_t at; } t[] = {
        {"attention.output.dense.weight", 2, H, H, w->o_w}, {"attention.output.dense.bias", 1, H, 0, w->o_b},
        {"attention.output.LayerNorm.weight", 1, H, 0, w->ln1_g}, {"attention.output.LayerNorm.bias", 1, H, 0, w->ln1_b},
        {"intermediate.dense.weight", 2, I, H, w->i_w}, {"intermediate.dense.bias", 1, I, 0, w->i_b},
        {"output.dense.weight", 2, H, I, w->o2_w}, {"output.dense.bias", 1, H, 0, w->o2_b},
        {"output.LayerNorm.weight", 1, H, 0, w->ln2_g}, {"output.LayerNorm.bias", 1, H, 0, w->ln2_b},
    };
    for (size_t j = 0; j < sizeof t / sizeof t[0] && st == TEMA_OK; j++) {
        snprintf(n, sizeof n, "encoder.layer.%lld.%s", (long long)k, t[j].name);
        st = put(ld, n, t[j].ndim, t[j].d0, t[j].d1, t[j].at, 0, err);
    }
    return st;
}

tema_status bert_model_load(bert_model *m, const char *dir, const bert_config *c, const tema_backend_ops *be, void *bs,
                            tema_err *err)
{
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    m->be = be;
    m->bs = bs;
    if (!(m->layout = calloc(1, sizeof *m->layout + (size_t)c->layers * sizeof(layer_w))))
        return tema_fail(err, TEMA_ENOMEM, "bert: out of memory");
    layer_w *lw = m->layout->layer;
    const emb_w ew = (m->n_weights = layout(c, &m->layout->emb, lw), m->layout->emb);
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_file f = {0};
    tema_status st = st_open(path, &f, err);
    if (st == TEMA_OK && !(m->weights = be->alloc(bs, m->n_weights * sizeof(float))))
        st = tema_fail(err, TEMA_ENOMEM, "bert: out of backend memory for %zu weights", m->n_weights);
    loader ld = {.f = &f, .prefix = "", .m = m};
    if (st == TEMA_OK && !st_find(&f, "embeddings.word_embeddings.weight") &&
        st_find(&f, "bert.embeddings.word_embeddings.weight"))
        ld.prefix = "bert."; /* saved from BertFor* rather than BertModel */
    const int64_t H = c->hidden;
    if (st == TEMA_OK) st = put(&ld, "embeddings.word_embeddings.weight", 2, c->vocab, H, ew.word, 0, err);
    if (st == TEMA_OK) st = put(&ld, "embeddings.position_embeddings.weight", 2, c->max_positions, H, ew.pos, 0, err);
    if (st == TEMA_OK) st = put(&ld, "embeddings.token_type_embeddings.weight", 2, c->type_vocab, H, ew.type0, 1, err);
    if (st == TEMA_OK) st = put(&ld, "embeddings.LayerNorm.weight", 1, H, 0, ew.ln_g, 0, err);
    if (st == TEMA_OK) st = put(&ld, "embeddings.LayerNorm.bias", 1, H, 0, ew.ln_b, 0, err);
    for (int64_t k = 0; k < c->layers && st == TEMA_OK; k++) st = load_layer(&ld, k, &lw[k], err);
    st_close(&f);
    if (st != TEMA_OK) bert_model_free(m);
    return st;
}

/* ---- activations: one backend buffer, carved per batch shape ---- */

typedef struct acts {
    int32_t *ids, *len;
    float *x, *h, *a1, *qkv, *ctx, *inter, *mean, *rstd;
} acts;

static size_t carve(const bert_config *c, int64_t tok, char *base, acts *a)
{
    const size_t H = (size_t)c->hidden, I = (size_t)c->intermediate, t = (size_t)tok;
    size_t at = 0;
#define TAKE(field, type, count)                                                   \
    do {                                                                           \
        if (base) a->field = (type *)(void *)(base + at);                          \
        at += (((count) * sizeof(type)) + 63) / 64 * 64;                           \
    } while (0)
    TAKE(ids, int32_t, t);
    TAKE(len, int32_t, t); /* [B], B <= tokens */
    TAKE(x, float, t * H);
    TAKE(h, float, t * H);
    TAKE(a1, float, t * H);
    TAKE(qkv, float, 3 * t * H);
    TAKE(ctx, float, t * H);
    TAKE(inter, float, t * I);
    TAKE(mean, float, t);
    TAKE(rstd, float, t);
#undef TAKE
    return at;
}

tema_status bert_model_reserve(bert_model *m, int64_t max_tokens, tema_err *err)
{
    if (m->act && max_tokens <= m->max_tokens) return TEMA_OK;
    if (m->act) m->be->free(m->bs, m->act);
    m->max_tokens = max_tokens;
    acts a = {0};
    size_t bytes = carve(&m->cfg, m->max_tokens, NULL, &a);
    if (!(m->act = m->be->alloc(m->bs, bytes)))
        return tema_fail(err, TEMA_ENOMEM, "bert: out of backend memory for activations (%zu MiB); hint: lower "
                                           "batch_tokens", bytes >> 20);
    return TEMA_OK;
}

/* y = x @ W^T + b (+ r) for x [rows, k], W [n, k], r [rows, n] or NULL: y starts as the bias
 * rows (plus the residual) and the product accumulates into it, so no pass zeroes y or adds
 * the bias afterwards (those passes were 12% of the time). */
static void linear(const bert_model *m, int64_t rows, int64_t n, int64_t k, const float *x, const float *w,
                   const float *b, const float *r, float *y)
{
    if (r) m->be->binary(m->bs, TEMA_BINARY_ADD, rows * n, r, b, n, y);
    else m->be->copy2d(m->bs, rows, n, b, 0, y, n, false);
    m->be->sgemm(m->bs, false, true, rows, n, k, 1.0f, x, k, 0, w, k, 0, 1.0f, y, n, 0, 1);
}

/* Self-attention of one layer: h [tok, H] -> a->ctx [tok, H] (heads merged, before the
 * output projection). The fused kernel reads q, k and v in place in qkv [tok, 3H]; the
 * per-(head, sequence) products it replaces were 13% of the time. */
static void attention(const bert_model *m, const layer_w *w, const acts *a, int64_t B, int64_t T)
{
    const int64_t H = m->cfg.hidden, nh = m->cfg.heads, hd = H / nh, tok = B * T;
    const float *W = m->weights;
    linear(m, tok, 3 * H, H, a->h, W + w->qkv_w, W + w->qkv_b, NULL, a->qkv);
    m->be->attention_infer(m->bs, B, T, nh, hd, 1.0f / sqrtf((float)hd), a->qkv, a->qkv + H, a->qkv + 2 * H, 3 * H,
                           a->len, a->ctx, H);
}

static void layer_forward(const bert_model *m, const layer_w *w, const acts *a, int64_t B, int64_t T)
{
    const tema_backend_ops *be = m->be;
    const int64_t H = m->cfg.hidden, I = m->cfg.intermediate, tok = B * T;
    const float *W = m->weights;
    const float eps = (float)m->cfg.eps;
    attention(m, w, a, B, T);
    linear(m, tok, H, H, a->ctx, W + w->o_w, W + w->o_b, a->h, a->x);
    be->layernorm(m->bs, tok, H, eps, a->x, W + w->ln1_g, W + w->ln1_b, a->a1, a->mean, a->rstd);
    linear(m, tok, I, H, a->a1, W + w->i_w, W + w->i_b, NULL, a->inter);
    be->unary(m->bs, m->cfg.gelu_tanh ? TEMA_UNARY_GELU : TEMA_UNARY_GELU_ERF, tok * I, 0.0f, a->inter, a->inter);
    linear(m, tok, H, I, a->inter, W + w->o2_w, W + w->o2_b, a->a1, a->x);
    be->layernorm(m->bs, tok, H, eps, a->x, W + w->ln2_g, W + w->ln2_b, a->h, a->mean, a->rstd);
}

tema_status bert_model_forward(bert_model *m, const int32_t *ids, const int32_t *len, int64_t B, int64_t T,
                               float *out, tema_err *err)
{
    const bert_config *c = &m->cfg;
    const int64_t H = c->hidden, tok = B * T;
    if (T > c->max_positions)
        return tema_fail(err, TEMA_EINVAL, "bert: %lld tokens exceed max_position_embeddings %lld", (long long)T,
                         (long long)c->max_positions);
    if (!TEMA_BACKEND_HAS(m->be, attention_infer))
        return tema_fail(err, TEMA_EUNSUPPORTED, "bert: the backend's kernel table (version %u) has no "
                                                 "attention_infer (version 5); hint: rebuild the backend", m->be->version);
    tema_status st = bert_model_reserve(m, tok, err);
    if (st != TEMA_OK) return st;
    acts a = {0};
    carve(c, m->max_tokens, m->act, &a);
    const tema_backend_ops *be = m->be;
    be->to_device(m->bs, a.len, len, (size_t)B * sizeof(int32_t));
    be->to_device(m->bs, a.ids, ids, (size_t)tok * sizeof(int32_t));
    const emb_w *ew = &m->layout->emb;
    const float *W = m->weights;
    be->gather(m->bs, tok, H, a.ids, W + ew->word, a.x);
    be->binary(m->bs, TEMA_BINARY_ADD, tok * H, a.x, W + ew->pos, T * H, a.x); /* positions 0..T-1 */
    be->binary(m->bs, TEMA_BINARY_ADD, tok * H, a.x, W + ew->type0, H, a.x);   /* token type 0 */
    be->layernorm(m->bs, tok, H, (float)c->eps, a.x, W + ew->ln_g, W + ew->ln_b, a.h, a.mean, a.rstd);
    for (int64_t k = 0; k < c->layers; k++) layer_forward(m, &m->layout->layer[k], &a, B, T);
    be->to_host(m->bs, out, a.h, (size_t)(tok * H) * sizeof(float));
    return be->sync ? be->sync(m->bs, err) : TEMA_OK;
}

void bert_model_free(bert_model *m)
{
    if (m->be && m->weights) m->be->free(m->bs, m->weights);
    if (m->be && m->act) m->be->free(m->bs, m->act);
    free(m->layout);
    memset(m, 0, sizeof *m);
}
