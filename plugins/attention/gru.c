/* plugins/attention/gru.c - GRU4Rec-style recurrent baseline (Hidasi et al. 2016) over the
 * merged sequence S^{X+Y}: one GRU layer, hidden width = item width d, built from nn ops
 * (PyTorch's gate layout):
 *
 *   x_t = dropout(E[s_t] * sqrt(d))            (the input scaling of `single`)
 *   r = sigmoid(W_r x_t + b_r + U_r h + c_r)    z = sigmoid(W_z x_t + b_z + U_z h + c_z)
 *   n = tanh(W_n x_t + b_n + r * (U_n h + c_n))
 *   h_t = (1 - z) * n + z * h_{t-1}              h = 0 before the first item
 *
 * Padding is on the left, so h stays 0 through it (padded positions are masked to 0).
 * Output: one stream, dropout(h_t) [B*L, d], scored by dot product against the first
 * encoder's table, like `single`. Causal by construction. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../plugin_opts.h"
#include "tema/plugin.h"

static const tema_option gru_options[] = {
    {"dropout", TEMA_OPT_FLOAT, "0.2", 0, 0.95, NULL, "dropout on the inputs and on the hidden states"},
};

typedef struct gru_attn {
    const tema_host *host;
    int64_t d, max_len;
    float dropout;
    tema_tensor *wx, *bx, *wh, *bh;
    /* host scratch reused across steps (grown, never shrunk) */
    int32_t *idx;
    uint8_t *keep;
    tema_tensor **outs;
    size_t idx_cap, keep_cap, outs_cap;
} gru_attn;

static bool grow(void **buf, size_t *cap, size_t bytes)
{
    if (bytes <= *cap) return true;
    void *p = realloc(*buf, bytes);
    if (!p) return false;
    *buf = p;
    *cap = bytes;
    return true;
}

static tema_status gru_create(const tema_model_info *info, const tema_cfg *opts, const int64_t *enc_dims,
                              const char *const *enc_modalities, int n_enc, void **self, tema_err *err)
{
    (void)enc_modalities;
    const tema_host *host = info->host;
    double dropout;
    tema_status st = plugin_opt_float(host, opts, "attention gru", "dropout", &dropout, err);
    if (st != TEMA_OK) return st;
    if (n_enc < 1) return tema_fail(err, TEMA_EINVAL, "attention gru: needs at least one encoder (model.encoders)");
    if (info->max_len < 1)
        return tema_fail(err, TEMA_EINVAL, "attention gru: max_len must be positive, got %d", (int)info->max_len);
    gru_attn *a = calloc(1, sizeof *a);
    if (!a) return tema_fail(err, TEMA_ENOMEM, "attention gru: out of memory");
    a->host = host;
    a->d = enc_dims[0];
    a->max_len = info->max_len;
    a->dropout = (float)dropout;
    const tema_nn_api *nn = host->nn;
    int64_t w[2] = {3 * a->d, a->d}, bsh = 3 * a->d;
    a->wx = nn->param(info->params, "attention.gru.wx", 2, w, TEMA_INIT_XAVIER, 1, 0);
    a->bx = nn->param(info->params, "attention.gru.bx", 1, &bsh, TEMA_INIT_ZEROS, 1, TEMA_TENSOR_NO_DECAY);
    a->wh = nn->param(info->params, "attention.gru.wh", 2, w, TEMA_INIT_XAVIER, 1, 0);
    a->bh = nn->param(info->params, "attention.gru.bh", 1, &bsh, TEMA_INIT_ZEROS, 1, TEMA_TENSOR_NO_DECAY);
    if (!a->wx || !a->bx || !a->wh || !a->bh) {
        free(a);
        return tema_fail(err, TEMA_ENOMEM, "attention gru: cannot declare parameters");
    }
    *self = a;
    return TEMA_OK;
}

#define NN_CHECK(x)                                                                                 \
    do {                                                                                            \
        if (!(x)) return tema_fail(err, TEMA_EINTERNAL, "attention gru: %s", nn->error(g));        \
    } while (0)

static tema_status gru_forward(void *self, tema_graph *g, const tema_batch *b, tema_tensor *const *items, int n_enc,
                               tema_stream *streams, int *n_streams, tema_err *err)
{
    gru_attn *a = self;
    const tema_nn_api *nn = a->host->nn;
    if (n_enc < 1 || !items[0]) return tema_fail(err, TEMA_EINVAL, "attention gru: no item table");
    const int64_t B = b->B, L = b->L, d = a->d, BL = B * L;
    if (L < 1 || L > a->max_len)
        return tema_fail(err, TEMA_EINVAL, "attention gru: batch length %lld outside [1, max_len %lld]", (long long)L,
                         (long long)a->max_len);
    if (items[0]->ndim != 2 || items[0]->shape[1] != d)
        return tema_fail(err, TEMA_EINVAL, "attention gru: item table width %lld != %lld",
                         (long long)items[0]->shape[items[0]->ndim - 1], (long long)d);
    if (!grow((void **)&a->idx, &a->idx_cap, (size_t)(B ? B : 1) * sizeof(int32_t)) ||
        !grow((void **)&a->keep, &a->keep_cap, (size_t)(B * d > 0 ? B * d : 1)) ||
        !grow((void **)&a->outs, &a->outs_cap, (size_t)L * sizeof(tema_tensor *)))
        return tema_fail(err, TEMA_ENOMEM, "attention gru: out of memory");

    tema_tensor *x = nn->embedding(g, items[0], b->seq, BL);
    NN_CHECK(x);
    NN_CHECK(x = nn->scale(g, x, sqrtf((float)d)));
    NN_CHECK(x = nn->dropout(g, x, a->dropout));
    tema_tensor *gx_all = nn->linear(g, x, a->wx, a->bx); /* [B*L, 3d]: input terms of every step at once */
    NN_CHECK(gx_all);
    int64_t hs[2] = {B, d};
    tema_tensor *h = nn->tensor(g, 2, hs, NULL); /* zeros */
    NN_CHECK(h);
    bool started = false;
    for (int64_t t = 0; t < L; t++) {
        int64_t live = 0;
        for (int64_t r = 0; r < B; r++) live += b->seq[r * L + t] >= 0;
        if (!started && live == 0) { /* padding in every row: the state stays 0 */
            a->outs[t] = h;
            continue;
        }
        started = true;
        for (int64_t r = 0; r < B; r++) a->idx[r] = (int32_t)(r * L + t);
        tema_tensor *gx = nn->gather_rows(g, gx_all, a->idx, B), *gh = nn->linear(g, h, a->wh, a->bh);
        NN_CHECK(gx && gh);
        tema_tensor *rz = nn->add(g, nn->slice(g, gx, 0, 2 * d), nn->slice(g, gh, 0, 2 * d));
        NN_CHECK(rz);
        NN_CHECK(rz = nn->sigmoid(g, rz));
        tema_tensor *r = nn->slice(g, rz, 0, d), *z = nn->slice(g, rz, d, d);
        NN_CHECK(r && z);
        tema_tensor *hn = nn->mul(g, r, nn->slice(g, gh, 2 * d, d));
        NN_CHECK(hn);
        tema_tensor *n = nn->add(g, nn->slice(g, gx, 2 * d, d), hn);
        NN_CHECK(n);
        NN_CHECK(n = nn->tanh(g, n));
        tema_tensor *diff = nn->add(g, h, nn->scale(g, n, -1.0f));
        NN_CHECK(diff);
        tema_tensor *hnew = nn->add(g, n, nn->mul(g, z, diff));
        NN_CHECK(hnew);
        if (live < B) { /* rows still in their left padding keep h = 0 */
            for (int64_t r = 0; r < B; r++) memset(a->keep + r * d, b->seq[r * L + t] >= 0, (size_t)d);
            NN_CHECK(hnew = nn->mask_rows(g, hnew, a->keep));
        }
        h = a->outs[t] = hnew;
    }
    /* [B, L*d] with block t = h_t is row-major [B*L, d] with row b*L+t */
    tema_tensor *out = L > 1 ? nn->concat(g, a->outs, (int)L) : a->outs[0];
    NN_CHECK(out);
    int64_t os[2] = {BL, d};
    NN_CHECK(out = nn->reshape(g, out, 2, os));
    NN_CHECK(out = nn->dropout(g, out, a->dropout));
    streams[0] = (tema_stream){.h = out, .items = items[0], .weight = 1.0f, .inv_temp = 1.0f,
                               .sequence = TEMA_SEQ_MERGED};
    *n_streams = 1;
    return TEMA_OK;
}

static void gru_destroy(void *self)
{
    gru_attn *a = self;
    if (!a) return;
    free(a->idx);
    free(a->keep);
    free(a->outs);
    free(a);
}

static const tema_attention_ops gru_ops = {.create = gru_create, .forward = gru_forward, .destroy = gru_destroy};

static const tema_plugin gru_plugin = {TEMA_PLUGIN_HEADER(TEMA_KIND_ATTENTION, "gru", "1.0.0",
                                                          "GRU4Rec-style recurrent baseline over the merged sequence "
                                                          "(one GRU layer, one stream)",
                                                          gru_options, gru_ops)};
TEMA_PLUGIN_DEFINE(gru_plugin)
