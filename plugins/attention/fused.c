/* plugins/attention/fused.c - early fusion (TEMA-LLM paper Eq. 9): every encoder's item
 * table, each row L2-normalised (so modalities of any scale enter alike), concatenated and
 * passed through a two-layer MLP with GELU to one item table [n_items, dim]:
 *
 *   E = W2 gelu(W1 [e_id ; e_img ; e_tex ; e_tag] + b1) + b2
 *
 * then one transformer stack per sequence S^X, S^Y, S^{X+Y} over E (three streams), with
 * the same alignment, cosine/temperature prediction and sequence weights lambda_1 /
 * lambda_2 as `multi` (seq_streams.h). No modality weights: the MLP mixes them. */
#include "seq_streams.h"

static const tema_option fused_options[] = {
    {"dim", TEMA_OPT_INT, "256", 1, 65536, NULL, "width q of the fused item vector (paper: 256)"},
    {"hidden", TEMA_OPT_INT, "0", 0, 65536, NULL, "hidden width of the fusion MLP (0: same as dim)"},
    {"blocks", TEMA_OPT_INT, "2", 1, TB_MAX_BLOCKS, NULL, "transformer blocks per stack"},
    {"heads", TEMA_OPT_INT, "1", 1, 64, NULL, "attention heads (must divide dim)"},
    {"dropout", TEMA_OPT_FLOAT, "0.3", 0, 0.95, NULL, "dropout rate (paper: 0.3)"},
    {"ffn_mult", TEMA_OPT_INT, "1", 1, 16, NULL, "feed-forward width as a multiple of dim"},
    {"lambda_1", TEMA_OPT_FLOAT, "0.3", 0, 1000, NULL, "weight of the other domain's sequence (Eq. 15-16)"},
    {"lambda_2", TEMA_OPT_FLOAT, "0.1", 0, 1000, NULL, "weight of the merged sequence (Eq. 15-16)"},
    {"sequences", TEMA_OPT_STRING, "x,y,merged", 0, -1, NULL, "sequences with a stack: a subset of x, y, merged"},
    {"temperature", TEMA_OPT_FLOAT, "0.07", 0.0101, 100, NULL, "cosine softmax temperature tau (logits = cos / tau)"},
    {"learnable_temperature", TEMA_OPT_BOOL, "false", 0, -1, NULL,
     "learn 1/tau per stream (starts at 1/temperature, at most 100)"},
};

#define FUSED_MAX_ENC 16

typedef struct fused_attn {
    const tema_host *host;
    int32_t n_x, max_len;
    int n_enc;
    int64_t dim, in_dim;
    int64_t enc_dim[FUSED_MAX_ENC];
    ss_config cfg;
    tema_tensor *w1, *b1, *w2, *b2;
    tb_stack stack[3];
    ss_head head[3];
    tb_scratch scratch;
    ss_scratch ss;
    ss_layout layout[3];
} fused_attn;

static void fused_destroy(void *self)
{
    fused_attn *a = self;
    if (!a) return;
    free(a->scratch.mask);
    ss_scratch_free(&a->ss);
    for (int q = 0; q < 3; q++) ss_layout_free(&a->layout[q]);
    free(a);
}

static tema_status fused_create(const tema_model_info *info, const tema_cfg *opts, const int64_t *enc_dims,
                                const char *const *enc_modalities, int n_enc, void **self, tema_err *err)
{
    (void)enc_modalities;
    const tema_host *host = info->host;
    tb_config tc;
    ss_config sc;
    int64_t dim, hidden;
    tema_status st = tb_read_config(host, opts, "fused", &tc, err);
    if (st == TEMA_OK) st = ss_read_config(host, opts, "fused", &sc, err);
    if (st == TEMA_OK) st = plugin_opt_int(host, opts, "attention fused", "dim", &dim, err);
    if (st == TEMA_OK) st = plugin_opt_int(host, opts, "attention fused", "hidden", &hidden, err);
    if (st != TEMA_OK) return st;
    if (hidden == 0) hidden = dim;
    if (n_enc < 1 || n_enc > FUSED_MAX_ENC)
        return tema_fail(err, TEMA_EINVAL, "attention fused: needs 1 to %d encoders, got %d", FUSED_MAX_ENC, n_enc);
    fused_attn *a = calloc(1, sizeof *a);
    if (!a) return tema_fail(err, TEMA_ENOMEM, "attention fused: out of memory");
    a->host = host;
    a->n_x = info->n_x;
    a->max_len = info->max_len;
    a->n_enc = n_enc;
    a->dim = dim;
    a->cfg = sc;
    for (int i = 0; i < n_enc; i++) a->in_dim += a->enc_dim[i] = enc_dims[i];
    const tema_nn_api *nn = host->nn;
    tema_params *p = info->params;
    const uint32_t nd = TEMA_TENSOR_NO_DECAY;
    int64_t s1[2] = {hidden, a->in_dim}, s2[2] = {dim, hidden};
    a->w1 = nn->param(p, "attention.fused.mlp.w1", 2, s1, TEMA_INIT_XAVIER, 1, 0);
    a->b1 = nn->param(p, "attention.fused.mlp.b1", 1, &hidden, TEMA_INIT_ZEROS, 1, nd);
    a->w2 = nn->param(p, "attention.fused.mlp.w2", 2, s2, TEMA_INIT_XAVIER, 1, 0);
    a->b2 = nn->param(p, "attention.fused.mlp.b2", 1, &dim, TEMA_INIT_ZEROS, 1, nd);
    if (!a->w1 || !a->b1 || !a->w2 || !a->b2) st = tema_fail(err, TEMA_ENOMEM, "attention fused: cannot declare the MLP");
    for (int q = 0; q < 3 && st == TEMA_OK; q++) {
        if (!sc.use[q]) continue;
        char prefix[64];
        snprintf(prefix, sizeof prefix, "attention.fused.%s", ss_seq_names[q]);
        st = tb_declare(&a->stack[q], host, p, prefix, dim, info->max_len, &tc, "fused", err);
        if (st == TEMA_OK) st = ss_declare_head(&a->head[q], host, p, prefix, dim, sc.learnable_temperature, "fused", err);
    }
    if (st != TEMA_OK) {
        fused_destroy(a);
        return st;
    }
    *self = a;
    return TEMA_OK;
}

#define NN_CHECK(x)                                                                                 \
    do {                                                                                            \
        if (!(x)) return tema_fail(err, TEMA_EINTERNAL, "attention fused: %s", nn->error(g));      \
    } while (0)

static tema_status fused_forward(void *self, tema_graph *g, const tema_batch *b, tema_tensor *const *items, int n_enc,
                                 tema_stream *streams, int *n_streams, tema_err *err)
{
    fused_attn *a = self;
    const tema_nn_api *nn = a->host->nn;
    if (n_enc != a->n_enc)
        return tema_fail(err, TEMA_EINVAL, "attention fused: built for %d encoders, given %d tables", a->n_enc, n_enc);
    if (b->L < 1 || b->L > a->max_len)
        return tema_fail(err, TEMA_EINVAL, "attention fused: batch length %d outside [1, max_len %d]", (int)b->L,
                         (int)a->max_len);
    tema_tensor *parts[FUSED_MAX_ENC];
    for (int i = 0; i < n_enc; i++) {
        if (!items[i] || items[i]->ndim != 2 || items[i]->shape[1] != a->enc_dim[i])
            return tema_fail(err, TEMA_EINVAL, "attention fused: encoder %d's table is not [n_items, %lld]", i,
                             (long long)a->enc_dim[i]);
        NN_CHECK(parts[i] = nn->l2norm(g, items[i], SS_NORM_EPS));
    }
    tema_tensor *e = n_enc > 1 ? nn->concat(g, parts, n_enc) : parts[0];
    NN_CHECK(e);
    NN_CHECK(e = nn->linear(g, e, a->w1, a->b1));
    NN_CHECK(e = nn->gelu(g, e));
    NN_CHECK(e = nn->linear(g, e, a->w2, a->b2));
    tema_tensor *normed = nn->l2norm(g, e, SS_NORM_EPS);
    NN_CHECK(normed);

    const int64_t B = b->B, BL = B * (int64_t)b->L;
    int n = 0;
    for (int q = 0; q < 3; q++) {
        if (!a->cfg.use[q]) continue;
        ss_layout *l = &a->layout[q];
        tema_status st = ss_build_layout(l, b, q, a->n_x, "fused", err);
        if (st != TEMA_OK) return st;
        tema_tensor *hs = NULL, *h = NULL;
        if (l->Lc > 0) {
            st = tb_forward(&a->stack[q], nn, g, &a->scratch, normed, sqrtf((float)a->dim), l->ids, l->pos, B, l->Lc,
                            &hs, "fused", err);
            if (st != TEMA_OK) return st;
        }
        float inv_temp = 1.0f;
        st = ss_head_output(&a->head[q], &a->cfg, &a->ss, nn, g, l, hs, BL, &h, &inv_temp, "fused", err);
        if (st != TEMA_OK) return st;
        streams[n++] = (tema_stream){.h = h, .items = normed, .weight = 1.0f, .inv_temp = inv_temp,
                                     .sequence = (tema_seq_kind)q};
    }
    *n_streams = n;
    return TEMA_OK;
}

static void fused_sequence_weights(const void *self, float w[2][3])
{
    ss_sequence_weights(&((const fused_attn *)self)->cfg, w);
}

/* the stack runs at the plugin's own `dim`, whatever the encoders' widths */
static tema_status fused_check(const tema_host *host, const tema_cfg *opts, const int64_t *enc_dims, int n_enc,
                               tema_err *err)
{
    (void)enc_dims, (void)n_enc;
    int64_t dim;
    tema_status st = plugin_opt_int(host, opts, "attention fused", "dim", &dim, err);
    return st == TEMA_OK ? tb_check_heads(host, opts, "fused", dim, err) : st;
}

static const tema_attention_ops fused_ops = {.create = fused_create, .forward = fused_forward,
                                             .destroy = fused_destroy, .sequence_weights = fused_sequence_weights,
                                             .check = fused_check};

static const tema_plugin fused_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_ATTENTION, "fused", "1.0.0",
                       "early fusion (MLP over the modalities, Eq. 9), one stack per sequence, cosine prediction",
                       fused_options, fused_ops)};
TEMA_PLUGIN_DEFINE(fused_plugin)
