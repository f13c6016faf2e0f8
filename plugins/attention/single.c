/* plugins/attention/single.c - SASRec-style causal self-attention over the merged
 * sequence S^{X+Y} (Kang & McAuley 2018; the stack is in transformer_block.h).
 *
 *   x = E[s] * sqrt(d) + P[pos]; blocks; h = LN_final(x)
 *
 * Positions are the merged sequence's own (right-aligned, so the most recent item always
 * sits at L-1). Output: one stream, h [B*L, d], scored by dot product against the first
 * encoder's table. */
#include "transformer_block.h"

static const tema_option single_options[] = {
    {"blocks", TEMA_OPT_INT, "2", 1, TB_MAX_BLOCKS, NULL, "number of transformer blocks"},
    {"heads", TEMA_OPT_INT, "1", 1, 64, NULL, "attention heads (must divide the encoder dim)"},
    {"dropout", TEMA_OPT_FLOAT, "0.2", 0, 0.95, NULL, "dropout rate (embeddings, attention weights, feed-forward)"},
    {"ffn_mult", TEMA_OPT_INT, "1", 1, 16, NULL, "feed-forward width as a multiple of d (SASRec uses 1)"},
};

typedef struct single_attn {
    const tema_host *host;
    tb_stack stack;
    tb_scratch scratch;
    int32_t *pos_ids; /* host scratch reused across steps (grown, never shrunk) */
    size_t pos_cap;
} single_attn;

static tema_status single_create(const tema_model_info *info, const tema_cfg *opts, const int64_t *enc_dims,
                                 const char *const *enc_modalities, int n_enc, void **self, tema_err *err)
{
    (void)enc_modalities;
    const tema_host *host = info->host;
    tb_config c;
    tema_status st = tb_read_config(host, opts, "single", &c, err);
    if (st != TEMA_OK) return st;
    if (n_enc < 1) return tema_fail(err, TEMA_EINVAL, "attention single: needs at least one encoder (model.encoders)");
    single_attn *a = calloc(1, sizeof *a);
    if (!a) return tema_fail(err, TEMA_ENOMEM, "attention single: out of memory");
    a->host = host;
    /* these names are what checkpoints of earlier versions hold: keep them */
    st = tb_declare(&a->stack, host, info->params, "attention.single", enc_dims[0], info->max_len, &c, "single", err);
    if (st != TEMA_OK) {
        free(a);
        return st;
    }
    *self = a;
    return TEMA_OK;
}

static tema_status single_forward(void *self, tema_graph *g, const tema_batch *b, tema_tensor *const *items,
                                  int n_enc, tema_stream *streams, int *n_streams, tema_err *err)
{
    single_attn *a = self;
    const tema_nn_api *nn = a->host->nn;
    if (n_enc < 1 || !items[0]) return tema_fail(err, TEMA_EINVAL, "attention single: no item table");
    if (b->L > a->stack.max_len || b->L < 1)
        return tema_fail(err, TEMA_EINVAL, "attention single: batch length %d outside [1, max_len %lld]", (int)b->L,
                         (long long)a->stack.max_len);
    const int64_t L = b->L, BL = (int64_t)b->B * L;
    if (!tb_grow((void **)&a->pos_ids, &a->pos_cap, (size_t)(BL ? BL : 1) * sizeof(int32_t)))
        return tema_fail(err, TEMA_ENOMEM, "attention single: out of memory");
    for (int64_t i = 0; i < BL; i++) a->pos_ids[i] = b->seq[i] >= 0 ? (int32_t)(i % L) : -1;
    tema_tensor *h = NULL;
    tema_status st = tb_forward(&a->stack, nn, g, &a->scratch, items[0], sqrtf((float)a->stack.d), b->seq,
                                a->pos_ids, b->B, L, &h, "single", err);
    if (st != TEMA_OK) return st;
    streams[0] = (tema_stream){.h = h, .items = items[0], .weight = 1.0f, .inv_temp = 1.0f, .sequence = TEMA_SEQ_MERGED};
    *n_streams = 1;
    return TEMA_OK;
}

static void single_destroy(void *self)
{
    single_attn *a = self;
    if (!a) return;
    free(a->pos_ids);
    free(a->scratch.mask);
    free(a);
}

static tema_status single_check(const tema_host *host, const tema_cfg *opts, const int64_t *enc_dims, int n_enc,
                                tema_err *err)
{
    return tb_check_heads(host, opts, "single", n_enc > 0 ? enc_dims[0] : 0, err);
}

static const tema_attention_ops single_ops = {.create = single_create, .forward = single_forward,
                                              .destroy = single_destroy, .check = single_check};

static const tema_plugin single_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_ATTENTION, "single", "1.0.0",
                       "SASRec causal self-attention over the merged sequence (one stream)", single_options,
                       single_ops)};
TEMA_PLUGIN_DEFINE(single_plugin)
