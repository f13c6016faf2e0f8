/* plugins/attention/single.c - SASRec-style causal self-attention over the merged
 * sequence S^{X+Y} (Kang & McAuley 2018; layout of the pmixer/SASRec.pytorch reference).
 *
 *   x = E[s] * sqrt(d) + P[pos]; x = dropout(x)
 *   per block:  q = LN1(x)
 *               x = q + Wo . MHA(q W_q, x W_k, x W_v)   causal, padded keys masked
 *               y = LN2(x)
 *               x = y + dropout(W2 . dropout(gelu(W1 y)))
 *   h = LN_final(x)
 *
 * As in the reference, queries come from the normalised stream and keys/values from the
 * raw one, and the attention residual starts from the normalised q. Padding keys are
 * masked, so a padded (left) position can never influence a real one; the reference's
 * "timeline mask" that zeroes padding rows after every block is therefore not needed for
 * correctness and is skipped (padding rows stay finite: an all-masked softmax row is 0).
 * Output: one stream, h [B*L, d], scored against the first encoder's table. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tema/plugin.h"

#define SINGLE_MAX_BLOCKS 32

static const tema_option single_options[] = {
    {"blocks", TEMA_OPT_INT, "2", 1, SINGLE_MAX_BLOCKS, NULL, "number of transformer blocks"},
    {"heads", TEMA_OPT_INT, "1", 1, 64, NULL, "attention heads (must divide the encoder dim)"},
    {"dropout", TEMA_OPT_FLOAT, "0.2", 0, 0.95, NULL, "dropout rate (embeddings, attention weights, feed-forward)"},
    {"ffn_mult", TEMA_OPT_INT, "1", 1, 16, NULL, "feed-forward width as a multiple of d (SASRec uses 1)"},
};

typedef struct single_block {
    tema_tensor *ln1_g, *ln1_b, *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo;
    tema_tensor *ln2_g, *ln2_b, *w1, *b1, *w2, *b2;
} single_block;

typedef struct single_attn {
    const tema_host *host;
    int64_t d, heads, n_blocks, max_len, ffn;
    float dropout;
    tema_tensor *pos, *lnf_g, *lnf_b;
    single_block blocks[SINGLE_MAX_BLOCKS];
    /* host scratch reused across steps (grown, never shrunk) */
    int32_t *pos_ids;
    uint8_t *mask;
    size_t pos_cap, mask_cap;
} single_attn;

/* Parameter names must outlive the parameter store; the text for block i is the same on
 * every create(), so one static table serves every instance. */
static char single_names[SINGLE_MAX_BLOCKS][16][40];
static const char *const single_fields[16] = {"ln1.g", "ln1.b", "wq", "bq", "wk", "bk", "wv", "bv",
                                              "wo",    "bo",    "ln2.g", "ln2.b", "w1", "b1", "w2", "b2"};

static tema_tensor *declare(single_attn *a, tema_params *p, int blk, int field, int64_t r, int64_t c,
                            tema_init init, float scale, uint32_t flags)
{
    char *name = single_names[blk][field];
    snprintf(name, sizeof single_names[blk][field], "attention.single.b%d.%s", blk, single_fields[field]);
    int64_t shape[2] = {r, c};
    return a->host->nn->param(p, name, c ? 2 : 1, c ? shape : &shape[0], init, scale, flags);
}

static tema_status single_create(const tema_model_info *info, const tema_cfg *opts, const int64_t *enc_dims,
                                 const char *const *enc_modalities, int n_enc, void **self, tema_err *err)
{
    (void)enc_modalities;
    const tema_host *host = info->host;
    int64_t blocks = 2, heads = 1, ffn_mult = 1;
    double dropout = 0.2;
    if (opts) {
        if (host->cfg_int(opts, "blocks", &blocks) == TEMA_EINVAL || host->cfg_int(opts, "heads", &heads) == TEMA_EINVAL ||
            host->cfg_float(opts, "dropout", &dropout) == TEMA_EINVAL ||
            host->cfg_int(opts, "ffn_mult", &ffn_mult) == TEMA_EINVAL)
            return tema_fail(err, TEMA_EINVAL, "attention single: an option has the wrong type; hint: tema plugins --describe single");
    }
    if (n_enc < 1) return tema_fail(err, TEMA_EINVAL, "attention single: needs at least one encoder (model.encoders)");
    if (blocks < 1 || blocks > SINGLE_MAX_BLOCKS)
        return tema_fail(err, TEMA_EINVAL, "attention single: blocks must be in [1, %d], got %lld", SINGLE_MAX_BLOCKS,
                         (long long)blocks);
    int64_t d = enc_dims[0];
    if (heads < 1 || d % heads != 0)
        return tema_fail(err, TEMA_EINVAL, "attention single: heads (%lld) must divide the encoder dim (%lld)",
                         (long long)heads, (long long)d);
    if (dropout < 0 || dropout >= 1)
        return tema_fail(err, TEMA_EINVAL, "attention single: dropout must be in [0, 1), got %g", dropout);
    if (info->max_len < 1)
        return tema_fail(err, TEMA_EINVAL, "attention single: max_len must be positive, got %d", (int)info->max_len);

    single_attn *a = calloc(1, sizeof *a);
    if (!a) return tema_fail(err, TEMA_ENOMEM, "attention single: out of memory");
    a->host = host;
    a->d = d;
    a->heads = heads;
    a->n_blocks = blocks;
    a->max_len = info->max_len;
    a->ffn = d * ffn_mult;
    a->dropout = (float)dropout;
    const tema_nn_api *nn = host->nn;
    tema_params *p = info->params;
    int64_t shape[2] = {info->max_len, d};
    a->pos = nn->param(p, "attention.single.pos", 2, shape, TEMA_INIT_NORMAL, 0.02f, 0);
    int64_t dshape[1] = {d};
    a->lnf_g = nn->param(p, "attention.single.lnf.g", 1, dshape, TEMA_INIT_ONES, 1, TEMA_TENSOR_NO_DECAY);
    a->lnf_b = nn->param(p, "attention.single.lnf.b", 1, dshape, TEMA_INIT_ZEROS, 1, TEMA_TENSOR_NO_DECAY);
    bool ok = a->pos && a->lnf_g && a->lnf_b;
    for (int i = 0; ok && i < blocks; i++) {
        single_block *k = &a->blocks[i];
        const uint32_t nd = TEMA_TENSOR_NO_DECAY;
        k->ln1_g = declare(a, p, i, 0, d, 0, TEMA_INIT_ONES, 1, nd);
        k->ln1_b = declare(a, p, i, 1, d, 0, TEMA_INIT_ZEROS, 1, nd);
        k->wq = declare(a, p, i, 2, d, d, TEMA_INIT_XAVIER, 1, 0);
        k->bq = declare(a, p, i, 3, d, 0, TEMA_INIT_ZEROS, 1, nd);
        k->wk = declare(a, p, i, 4, d, d, TEMA_INIT_XAVIER, 1, 0);
        k->bk = declare(a, p, i, 5, d, 0, TEMA_INIT_ZEROS, 1, nd);
        k->wv = declare(a, p, i, 6, d, d, TEMA_INIT_XAVIER, 1, 0);
        k->bv = declare(a, p, i, 7, d, 0, TEMA_INIT_ZEROS, 1, nd);
        k->wo = declare(a, p, i, 8, d, d, TEMA_INIT_XAVIER, 1, 0);
        k->bo = declare(a, p, i, 9, d, 0, TEMA_INIT_ZEROS, 1, nd);
        k->ln2_g = declare(a, p, i, 10, d, 0, TEMA_INIT_ONES, 1, nd);
        k->ln2_b = declare(a, p, i, 11, d, 0, TEMA_INIT_ZEROS, 1, nd);
        k->w1 = declare(a, p, i, 12, a->ffn, d, TEMA_INIT_XAVIER, 1, 0);
        k->b1 = declare(a, p, i, 13, a->ffn, 0, TEMA_INIT_ZEROS, 1, nd);
        k->w2 = declare(a, p, i, 14, d, a->ffn, TEMA_INIT_XAVIER, 1, 0);
        k->b2 = declare(a, p, i, 15, d, 0, TEMA_INIT_ZEROS, 1, nd);
        ok = k->ln1_g && k->ln1_b && k->wq && k->bq && k->wk && k->bk && k->wv && k->bv && k->wo && k->bo &&
             k->ln2_g && k->ln2_b && k->w1 && k->b1 && k->w2 && k->b2;
    }
    if (!ok) {
        free(a);
        return tema_fail(err, TEMA_ENOMEM, "attention single: cannot declare parameters");
    }
    *self = a;
    return TEMA_OK;
}

static bool grow(void **buf, size_t *cap, size_t bytes)
{
    if (bytes <= *cap) return true;
    void *p = realloc(*buf, bytes);
    if (!p) return false;
    *buf = p;
    *cap = bytes;
    return true;
}

#define NN_CHECK(x)                                                                                 \
    do {                                                                                            \
        if (!(x))                                                                                   \
            return tema_fail(err, TEMA_EINTERNAL, "attention single: %s", nn->error(g));           \
    } while (0)

static tema_status single_forward(void *self, tema_graph *g, const tema_batch *b, tema_tensor *const *items,
                                  int n_enc, tema_stream *streams, int *n_streams, tema_err *err)
{
    single_attn *a = self;
    const tema_nn_api *nn = a->host->nn;
    if (n_enc < 1 || !items[0]) return tema_fail(err, TEMA_EINVAL, "attention single: no item table");
    if (b->L > a->max_len || b->L < 1)
        return tema_fail(err, TEMA_EINVAL, "attention single: batch length %d exceeds max_len %lld", (int)b->L,
                         (long long)a->max_len);
    const int64_t B = b->B, L = b->L, d = a->d, H = a->heads, Dh = d / H, BL = B * L;
    if (items[0]->ndim != 2 || items[0]->shape[1] != d)
        return tema_fail(err, TEMA_EINVAL, "attention single: item table width %lld != %lld",
                         (long long)items[0]->shape[items[0]->ndim - 1], (long long)d);

    /* index arrays and the key mask live in the arena so backward can still read them */
    if (!grow((void **)&a->pos_ids, &a->pos_cap, (size_t)BL * sizeof(int32_t)))
        return tema_fail(err, TEMA_ENOMEM, "attention single: out of memory");
    size_t mask_n = (size_t)(B * H * L * L), mask_words = (mask_n + 3) / 4;
    if (!grow((void **)&a->mask, &a->mask_cap, mask_words * 4))
        return tema_fail(err, TEMA_ENOMEM, "attention single: out of memory");
    for (int64_t i = 0; i < BL; i++) a->pos_ids[i] = b->seq[i] >= 0 ? (int32_t)(i % L) : -1;
    for (int64_t bb = 0; bb < B; bb++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t q = 0; q < L; q++) {
                uint8_t *row = a->mask + ((bb * H + h) * L + q) * L;
                for (int64_t k = 0; k < L; k++) row[k] = b->seq[bb * L + k] >= 0;
            }
    int32_t *seq = nn->ids(g, b->seq, BL);
    int32_t *pos = nn->ids(g, a->pos_ids, BL);
    const uint8_t *mask = (const uint8_t *)nn->ids(g, (const int32_t *)a->mask, (int64_t)mask_words);
    NN_CHECK(seq && pos && mask);

    tema_tensor *x = nn->embedding(g, items[0], seq, BL);
    NN_CHECK(x);
    NN_CHECK(x = nn->scale(g, x, sqrtf((float)d)));
    tema_tensor *pe = nn->embedding(g, a->pos, pos, BL);
    NN_CHECK(pe);
    NN_CHECK(x = nn->add(g, x, pe));
    NN_CHECK(x = nn->dropout(g, x, a->dropout));

    const float att_scale = 1.0f / sqrtf((float)Dh);
    for (int64_t i = 0; i < a->n_blocks; i++) {
        single_block *k = &a->blocks[i];
        tema_tensor *q = nn->layernorm(g, x, k->ln1_g, k->ln1_b, 1e-8f);
        NN_CHECK(q);
        tema_tensor *Q = nn->linear(g, q, k->wq, k->bq), *K = nn->linear(g, x, k->wk, k->bk),
                    *V = nn->linear(g, x, k->wv, k->bv);
        NN_CHECK(Q && K && V);
        int64_t s4[4] = {B, L, H, Dh}, s3[3] = {B * H, L, Dh};
        if (H > 1) {
            NN_CHECK(Q = nn->reshape(g, Q, 4, s4));
            NN_CHECK(Q = nn->transpose12(g, Q));
            NN_CHECK(K = nn->reshape(g, K, 4, s4));
            NN_CHECK(K = nn->transpose12(g, K));
            NN_CHECK(V = nn->reshape(g, V, 4, s4));
            NN_CHECK(V = nn->transpose12(g, V));
        }
        NN_CHECK(Q = nn->reshape(g, Q, 3, s3));
        NN_CHECK(K = nn->reshape(g, K, 3, s3));
        NN_CHECK(V = nn->reshape(g, V, 3, s3));
        tema_tensor *S = nn->matmul(g, Q, false, K, true); /* [B*H, L, L] */
        NN_CHECK(S);
        NN_CHECK(S = nn->scale(g, S, att_scale));
        int64_t s2[2] = {B * H * L, L};
        NN_CHECK(S = nn->reshape(g, S, 2, s2));
        NN_CHECK(S = nn->softmax(g, S, mask, true));
        NN_CHECK(S = nn->dropout(g, S, a->dropout));
        int64_t sl[3] = {B * H, L, L};
        NN_CHECK(S = nn->reshape(g, S, 3, sl));
        tema_tensor *O = nn->matmul(g, S, false, V, false); /* [B*H, L, Dh] */
        NN_CHECK(O);
        if (H > 1) {
            int64_t o4[4] = {B, H, L, Dh};
            NN_CHECK(O = nn->reshape(g, O, 4, o4));
            NN_CHECK(O = nn->transpose12(g, O));
        }
        int64_t o2[2] = {BL, d};
        NN_CHECK(O = nn->reshape(g, O, 2, o2));
        NN_CHECK(O = nn->linear(g, O, k->wo, k->bo));
        NN_CHECK(x = nn->add(g, q, O));
        tema_tensor *y = nn->layernorm(g, x, k->ln2_g, k->ln2_b, 1e-8f);
        NN_CHECK(y);
        tema_tensor *f = nn->linear(g, y, k->w1, k->b1);
        NN_CHECK(f);
        NN_CHECK(f = nn->gelu(g, f));
        NN_CHECK(f = nn->dropout(g, f, a->dropout));
        NN_CHECK(f = nn->linear(g, f, k->w2, k->b2));
        NN_CHECK(f = nn->dropout(g, f, a->dropout));
        NN_CHECK(x = nn->add(g, y, f));
    }
    NN_CHECK(x = nn->layernorm(g, x, a->lnf_g, a->lnf_b, 1e-8f));
    streams[0] = (tema_stream){.h = x, .items = items[0], .weight = 1.0f, .inv_temp = 1.0f, .sequence = TEMA_SEQ_MERGED};
    *n_streams = 1;
    return TEMA_OK;
}

static void single_destroy(void *self)
{
    single_attn *a = self;
    if (!a) return;
    free(a->pos_ids);
    free(a->mask);
    free(a);
}

static const tema_attention_ops single_ops = {.create = single_create, .forward = single_forward,
                                              .destroy = single_destroy};

static const tema_plugin single_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_ATTENTION, "single", "1.0.0",
                       "SASRec causal self-attention over the merged sequence (one stream)", single_options,
                       single_ops)};
TEMA_PLUGIN_DEFINE(single_plugin)
