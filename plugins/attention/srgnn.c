/* plugins/attention/srgnn.c - SR-GNN (Wu et al., AAAI 2019, "Session-based Recommendation with
 * Graph Neural Networks") over the merged sequence S^{X+Y}, following the official code
 * (CRIPAC-DIG/SR-GNN, pytorch_code/model.py) and built from nn ops:
 *
 *   session graph of each prefix (srgnn_graph.h): nodes = its distinct items, A_in / A_out =
 *     the in- / out-degree normalised transition matrices;
 *   gated GNN, `step` times (GNNCell; hidden width = item width d):
 *     a = [A_in (H W_ein^T + b_ein) + b_iah ; A_out (H W_eout^T + b_eout) + b_oah]   [n, 2d]
 *     r = sigmoid(W_ih,r a + b_ih,r + W_hh,r H + b_hh,r)   z = likewise (the "input gate")
 *     c = tanh(W_ih,c a + b_ih,c + r * (W_hh,c H + b_hh,c))    H = c + z * (H - c)
 *     with H = E[node items] before the first step (no input scaling);
 *   readout (compute_scores): s_l = v_last, the node of the prefix's last item;
 *     alpha_i = q^T sigmoid(W1 s_l + b1 + W2 v_i + b2) (no softmax), s_g = sum over the
 *     prefix's positions i of alpha_i v_i (a node counted once per occurrence);
 *     s_h = W3 [s_g; s_l] + b3 (or s_g alone with nonhybrid);
 *   scores = s_h . E[j] (one stream, the first encoder's table, inv_temp 1).
 *
 * The state of position p is s_h of the prefix ending at p: the official preprocessing makes
 * every prefix of a session one training sample, and the trainer scores the item after p
 * against it, so no state sees a later item. Prefixes are grouped by node count (bucket n: a
 * dense [P_n, n, n] adjacency, one batched matmul per step), padding positions get zeros.
 * Every parameter starts U(-1/sqrt(d), 1/sqrt(d)) and is decayed, as reset_parameters() and
 * Adam(weight_decay = l2) do there. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../plugin_opts.h"
#include "srgnn_graph.h"
#include "tema/plugin.h"

/* One dense adjacency per prefix costs O(B L^3) floats a batch: beyond this, say so at
 * create() instead of running out of memory (the paper setups use L = 15). */
#define SRGNN_MAX_LEN 64

static const tema_option srgnn_options[] = {
    {"step", TEMA_OPT_INT, "1", 1, 16, NULL, "gated GNN propagation steps per prefix graph (official --step)"},
    {"nonhybrid", TEMA_OPT_BOOL, "false", 0, -1, NULL,
     "score with the global preference s_g alone instead of W3 [s_g; s_l] (official --nonhybrid)"},
};

typedef struct srgnn_attn {
    const tema_host *host;
    int64_t d, max_len, step;
    bool nonhybrid;
    /* official names: linear_edge_in / _out, b_iah / b_oah, w_ih, b_ih, w_hh, b_hh */
    tema_tensor *w_ein, *b_ein, *w_eout, *b_eout, *b_iah, *b_oah, *w_ih, *b_ih, *w_hh, *b_hh;
    /* linear_one, linear_two, linear_three (no bias), linear_transform (hybrid only) */
    tema_tensor *w_one, *b_one, *w_two, *b_two, *w_three, *w_tr, *b_tr;
    sg_layout lay;
    tema_tensor **sg, **vl; /* per bucket: s_g and s_l as [1, P_n*d] */
    size_t sg_cap, vl_cap;
} srgnn_attn;

static tema_tensor *srgnn_param(const tema_model_info *info, const char *name, int64_t rows, int64_t cols, float bound)
{
    int64_t shape[2] = {rows, cols};
    return info->host->nn->param(info->params, name, cols ? 2 : 1, shape, TEMA_INIT_UNIFORM, bound, 0);
}

static tema_status srgnn_declare(srgnn_attn *a, const tema_model_info *info, tema_err *err)
{
    const int64_t d = a->d;
    const float s = 1.0f / sqrtf((float)d);
    a->w_ein = srgnn_param(info, "attention.srgnn.edge_in.w", d, d, s);
    a->b_ein = srgnn_param(info, "attention.srgnn.edge_in.b", d, 0, s);
    a->w_eout = srgnn_param(info, "attention.srgnn.edge_out.w", d, d, s);
    a->b_eout = srgnn_param(info, "attention.srgnn.edge_out.b", d, 0, s);
    a->b_iah = srgnn_param(info, "attention.srgnn.b_iah", d, 0, s);
    a->b_oah = srgnn_param(info, "attention.srgnn.b_oah", d, 0, s);
    a->w_ih = srgnn_param(info, "attention.srgnn.gru.w_ih", 3 * d, 2 * d, s);
    a->b_ih = srgnn_param(info, "attention.srgnn.gru.b_ih", 3 * d, 0, s);
    a->w_hh = srgnn_param(info, "attention.srgnn.gru.w_hh", 3 * d, d, s);
    a->b_hh = srgnn_param(info, "attention.srgnn.gru.b_hh", 3 * d, 0, s);
    a->w_one = srgnn_param(info, "attention.srgnn.one.w", d, d, s);
    a->b_one = srgnn_param(info, "attention.srgnn.one.b", d, 0, s);
    a->w_two = srgnn_param(info, "attention.srgnn.two.w", d, d, s);
    a->b_two = srgnn_param(info, "attention.srgnn.two.b", d, 0, s);
    a->w_three = srgnn_param(info, "attention.srgnn.three.w", 1, d, s);
    bool ok = a->w_ein && a->b_ein && a->w_eout && a->b_eout && a->b_iah && a->b_oah && a->w_ih && a->b_ih &&
              a->w_hh && a->b_hh && a->w_one && a->b_one && a->w_two && a->b_two && a->w_three;
    if (!a->nonhybrid) {
        a->w_tr = srgnn_param(info, "attention.srgnn.transform.w", d, 2 * d, s);
        a->b_tr = srgnn_param(info, "attention.srgnn.transform.b", d, 0, s);
        ok = ok && a->w_tr && a->b_tr;
    }
    return ok ? TEMA_OK : tema_fail(err, TEMA_ENOMEM, "attention srgnn: cannot declare parameters");
}

static tema_status srgnn_check_encoders(int n_enc, tema_err *err)
{
    if (n_enc == 1) return TEMA_OK;
    return tema_fail(err, TEMA_EINVAL, "attention srgnn: needs exactly one encoder, got %d; hint: SR-GNN embeds "
                                       "and scores items with one table, e.g. model.encoders: [{plugin: id}]",
                     n_enc);
}

/* ABI 1.7: what `tema check` can see before any data is read (max_len comes with the data). */
static tema_status srgnn_check(const tema_host *host, const tema_cfg *opts, const int64_t *enc_dims, int n_enc,
                               tema_err *err)
{
    (void)host, (void)opts, (void)enc_dims;
    return srgnn_check_encoders(n_enc, err);
}

static tema_status srgnn_create(const tema_model_info *info, const tema_cfg *opts, const int64_t *enc_dims,
                                const char *const *enc_modalities, int n_enc, void **self, tema_err *err)
{
    (void)enc_modalities;
    const tema_host *host = info->host;
    int64_t step;
    bool nonhybrid;
    tema_status st;
    if ((st = plugin_opt_int(host, opts, "attention srgnn", "step", &step, err)) != TEMA_OK ||
        (st = plugin_opt_bool(host, opts, "attention srgnn", "nonhybrid", &nonhybrid, err)) != TEMA_OK)
        return st;
    if ((st = srgnn_check_encoders(n_enc, err)) != TEMA_OK) return st;
    if (info->max_len < 1 || info->max_len > SRGNN_MAX_LEN)
        return tema_fail(err, TEMA_EINVAL, "attention srgnn: dataset.max_len %d outside [1, %d]; hint: SR-GNN builds "
                                           "one session graph per prefix, memory grows as max_len^3 (the paper "
                                           "setups use 15)",
                         (int)info->max_len, SRGNN_MAX_LEN);
    srgnn_attn *a = calloc(1, sizeof *a);
    if (!a) return tema_fail(err, TEMA_ENOMEM, "attention srgnn: out of memory");
    a->host = host;
    a->d = enc_dims[0];
    a->max_len = info->max_len;
    a->step = step;
    a->nonhybrid = nonhybrid;
    if ((st = srgnn_declare(a, info, err)) != TEMA_OK) {
        free(a);
        return st;
    }
    *self = a;
    return TEMA_OK;
}

#define NN_CHECK(x)                                                                                 \
    do {                                                                                            \
        if (!(x)) return tema_fail(err, TEMA_EINTERNAL, "attention srgnn: %s", nn->error(g));      \
    } while (0)

/* One propagation step (GNNCell) over the node states H [Pn*n, d] of bucket n. */
static tema_tensor *srgnn_cell(const srgnn_attn *a, tema_graph *g, tema_tensor *a_in, tema_tensor *a_out,
                               tema_tensor *h, int64_t pn, int64_t n)
{
    const tema_nn_api *nn = a->host->nn;
    const int64_t d = a->d, s3[3] = {pn, n, d}, s2[2] = {pn * n, d};
    tema_tensor *ein = nn->reshape(g, nn->linear(g, h, a->w_ein, a->b_ein), 3, s3);
    tema_tensor *eout = nn->reshape(g, nn->linear(g, h, a->w_eout, a->b_eout), 3, s3);
    tema_tensor *m[2];
    m[0] = nn->add(g, nn->reshape(g, nn->matmul(g, a_in, false, ein, false), 2, s2), a->b_iah);
    m[1] = nn->add(g, nn->reshape(g, nn->matmul(g, a_out, false, eout, false), 2, s2), a->b_oah);
    tema_tensor *gi = nn->linear(g, nn->concat(g, m, 2), a->w_ih, a->b_ih);
    tema_tensor *gh = nn->linear(g, h, a->w_hh, a->b_hh);
    tema_tensor *rz = nn->sigmoid(g, nn->add(g, nn->slice(g, gi, 0, 2 * d), nn->slice(g, gh, 0, 2 * d)));
    tema_tensor *r = nn->slice(g, rz, 0, d), *z = nn->slice(g, rz, d, d);
    tema_tensor *c = nn->tanh(g, nn->add(g, nn->slice(g, gi, 2 * d, d), nn->mul(g, r, nn->slice(g, gh, 2 * d, d))));
    return nn->add(g, c, nn->mul(g, z, nn->add(g, h, nn->scale(g, c, -1.0f))));
}

/* Readout of bucket n's prefixes from their node states V [Pn*n, d]: s_g and s_l, each
 * flattened to [1, Pn*d] for the concatenation over buckets. */
static tema_status srgnn_readout(srgnn_attn *a, tema_graph *g, tema_tensor *v, int64_t n, tema_tensor **sg,
                                 tema_tensor **vl, tema_err *err)
{
    const tema_nn_api *nn = a->host->nn;
    const sg_layout *l = &a->lay;
    const int64_t d = a->d, pn = l->count[n], rows = pn * n, nb = l->node_off[n];
    const int64_t s3[3] = {pn, 1, n}, v3[3] = {pn, n, d}, cs[2] = {rows, 1}, flat[2] = {1, pn * d};
    tema_tensor *last = nn->gather_rows(g, v, l->last + l->pre_off[n], pn);                     /* [Pn, d] */
    tema_tensor *q1 = nn->gather_rows(g, nn->linear(g, last, a->w_one, a->b_one), l->bcast + nb, rows);
    tema_tensor *q = nn->sigmoid(g, nn->add(g, q1, nn->linear(g, v, a->w_two, a->b_two)));
    tema_tensor *alpha = nn->linear(g, q, a->w_three, NULL);                                    /* [rows, 1] */
    alpha = nn->mul(g, alpha, nn->tensor(g, 2, cs, l->cnt + nb));       /* once per occurrence */
    tema_tensor *s = nn->matmul(g, nn->reshape(g, alpha, 3, s3), false, nn->reshape(g, v, 3, v3), false);
    *sg = nn->reshape(g, s, 2, flat);
    *vl = nn->reshape(g, last, 2, flat);
    NN_CHECK(*sg && *vl);
    return TEMA_OK;
}

/* Bucket n: embed its nodes, propagate, read out. */
static tema_status srgnn_bucket(srgnn_attn *a, tema_graph *g, tema_tensor *table, int64_t n, tema_tensor **sg,
                                tema_tensor **vl, tema_err *err)
{
    const tema_nn_api *nn = a->host->nn;
    const sg_layout *l = &a->lay;
    const int64_t pn = l->count[n], as[3] = {pn, n, n};
    tema_tensor *h = nn->embedding(g, table, l->node_item + l->node_off[n], pn * n);
    tema_tensor *a_in = nn->tensor(g, 3, as, l->a_in + l->adj_off[n]);
    tema_tensor *a_out = nn->tensor(g, 3, as, l->a_out + l->adj_off[n]);
    for (int64_t s = 0; s < a->step; s++) h = srgnn_cell(a, g, a_in, a_out, h, pn, n);
    NN_CHECK(h);
    return srgnn_readout(a, g, h, n, sg, vl, err);
}

/* s_h [P, d] of every prefix, prefixes bucket-major as the layout orders them. */
static tema_status srgnn_session(srgnn_attn *a, tema_graph *g, tema_tensor *table, tema_tensor **sh, tema_err *err)
{
    const tema_nn_api *nn = a->host->nn;
    const sg_layout *l = &a->lay;
    const size_t nmax = (size_t)l->n_max;
    if (!sg_grow((void **)&a->sg, &a->sg_cap, nmax * sizeof(tema_tensor *)) ||
        !sg_grow((void **)&a->vl, &a->vl_cap, nmax * sizeof(tema_tensor *)))
        return tema_fail(err, TEMA_ENOMEM, "attention srgnn: out of memory");
    int nb = 0;
    for (int64_t n = 1; n <= l->n_max; n++) {
        if (!l->count[n]) continue;
        tema_status st = srgnn_bucket(a, g, table, n, &a->sg[nb], &a->vl[nb], err);
        if (st != TEMA_OK) return st;
        nb++;
    }
    const int64_t ps[2] = {l->P, a->d};
    tema_tensor *s_g = nn->reshape(g, nb > 1 ? nn->concat(g, a->sg, nb) : a->sg[0], 2, ps);
    if (a->nonhybrid) {
        *sh = s_g;
    } else {
        tema_tensor *cat[2] = {s_g, nn->reshape(g, nb > 1 ? nn->concat(g, a->vl, nb) : a->vl[0], 2, ps)};
        *sh = nn->linear(g, nn->concat(g, cat, 2), a->w_tr, a->b_tr); /* official order: [s_g; s_l] */
    }
    NN_CHECK(*sh);
    return TEMA_OK;
}

static tema_status srgnn_forward(void *self, tema_graph *g, const tema_batch *b, tema_tensor *const *items, int n_enc,
                                 tema_stream *streams, int *n_streams, tema_err *err)
{
    srgnn_attn *a = self;
    const tema_nn_api *nn = a->host->nn;
    if (n_enc < 1 || !items[0]) return tema_fail(err, TEMA_EINVAL, "attention srgnn: no item table");
    const int64_t B = b->B, L = b->L, d = a->d, BL = B * L;
    if (L < 1 || L > a->max_len)
        return tema_fail(err, TEMA_EINVAL, "attention srgnn: batch length %lld outside [1, max_len %lld]",
                         (long long)L, (long long)a->max_len);
    if (items[0]->ndim != 2 || items[0]->shape[1] != d)
        return tema_fail(err, TEMA_EINVAL, "attention srgnn: item table width %lld != %lld",
                         (long long)items[0]->shape[items[0]->ndim - 1], (long long)d);
    tema_status st = sg_build(&a->lay, b->seq, B, L, "attention srgnn", err);
    if (st != TEMA_OK) return st;
    tema_tensor *h;
    if (a->lay.P == 0) { /* padding only: every state 0 */
        const int64_t hs[2] = {BL, d};
        h = nn->tensor(g, 2, hs, NULL);
    } else {
        tema_tensor *sh = NULL;
        if ((st = srgnn_session(a, g, items[0], &sh, err)) != TEMA_OK) return st;
        h = nn->embedding(g, sh, a->lay.row, BL); /* row b*L+p <- its prefix; padding -> 0 */
    }
    NN_CHECK(h);
    streams[0] = (tema_stream){.h = h, .items = items[0], .weight = 1.0f, .inv_temp = 1.0f,
                               .sequence = TEMA_SEQ_MERGED};
    *n_streams = 1;
    return TEMA_OK;
}

static void srgnn_destroy(void *self)
{
    srgnn_attn *a = self;
    if (!a) return;
    sg_layout_free(&a->lay);
    free(a->sg);
    free(a->vl);
    free(a);
}

static const tema_attention_ops srgnn_ops = {.create = srgnn_create, .forward = srgnn_forward,
                                             .destroy = srgnn_destroy, .check = srgnn_check};

static const tema_plugin srgnn_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_ATTENTION, "srgnn", "1.0.0",
                       "SR-GNN session-graph baseline over the merged sequence (gated GNN per prefix graph, "
                       "attention readout, one stream)",
                       srgnn_options, srgnn_ops)};
TEMA_PLUGIN_DEFINE(srgnn_plugin)
