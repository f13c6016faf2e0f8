/* plugins/attention/transformer_block.h - the SASRec transformer stack that the attention
 * plugins single, multi and fused share (static functions: every plugin .so gets its own
 * copy, so the plugins stay independent shared objects).
 *
 * One stack over a [B, L] layout of item ids (Kang & McAuley 2018; the layout of the
 * pmixer/SASRec.pytorch reference):
 *
 *   x = table[ids] * in_scale + P[pos_ids]; x = dropout(x)
 *   per block:  q = LN1(x)
 *               x = q + Wo . MHA(q W_q, x W_k, x W_v)   causal, padded keys masked
 *               y = LN2(x)
 *               x = y + dropout(W2 . dropout(gelu(W1 y)))   (relu with tb_config.relu: C2DSR)
 *   h = LN_final(x)                                      [B*L, d]
 *
 * As in the reference, queries come from the normalised stream and keys/values from the
 * raw one, and the attention residual starts from the normalised q. Keys whose id is -1
 * are masked, so a padded position never influences a real one, wherever it sits; the
 * reference's "timeline mask" that zeroes padding rows after every block is therefore not
 * needed for correctness and is skipped (padding rows stay finite: an all-masked softmax
 * row is 0). Positions are whatever the caller passes in pos_ids (-1: no position term),
 * so a stack can run over a subsequence while its positions count in another timeline. */
#ifndef TEMA_PLUGINS_ATTENTION_TRANSFORMER_BLOCK_H
#define TEMA_PLUGINS_ATTENTION_TRANSFORMER_BLOCK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../plugin_opts.h"
#include "tema/plugin.h"

#define TB_MAX_BLOCKS 32
#define TB_N_FIELDS 16
#define TB_POS_STD 0.02f /* N(0, std^2) init of the position table (SASRec's) */

/* The options every transformer plugin declares (same names, same meaning). */
typedef struct tb_config {
    int64_t blocks, heads, ffn_mult;
    double dropout;
    bool relu; /* feed-forward activation: relu instead of gelu (not an option of these names: a
                  plugin sets it after tb_read_config, which clears it) */
    float pos_std; /* N(0, pos_std^2) init of the position table; tb_read_config sets TB_POS_STD,
                      a plugin may change it after (c2dsr's pos_init_std) */
} tb_config;

typedef struct tb_block {
    tema_tensor *ln1_g, *ln1_b, *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo;
    tema_tensor *ln2_g, *ln2_b, *w1, *b1, *w2, *b2;
} tb_block;

typedef struct tb_stack {
    int64_t d, heads, n_blocks, max_len, ffn;
    float dropout;
    bool relu;
    tema_tensor *pos, *lnf_g, *lnf_b;
    tb_block blocks[TB_MAX_BLOCKS];
} tb_stack;

/* Host scratch of one plugin instance, reused by every stack and step (grown, never
 * shrunk; the graph copies what it keeps, so reuse within a step is safe). */
typedef struct tb_scratch {
    uint8_t *mask;
    size_t mask_cap;
} tb_scratch;

static inline bool tb_grow(void **buf, size_t *cap, size_t bytes)
{
    if (bytes <= *cap) return true;
    void *p = realloc(*buf, bytes);
    if (!p) return false;
    *buf = p;
    *cap = bytes;
    return true;
}

/* Reads blocks / heads / dropout / ffn_mult (declared by the plugin with these names; their
 * table holds the ranges, which the core checked). */
static inline tema_status tb_read_config(const tema_host *host, const tema_cfg *opts, const char *who, tb_config *c,
                                         tema_err *err)
{
    char w[64];
    snprintf(w, sizeof w, "attention %s", who);
    tema_status st;
    if ((st = plugin_opt_int(host, opts, w, "blocks", &c->blocks, err)) != TEMA_OK ||
        (st = plugin_opt_int(host, opts, w, "heads", &c->heads, err)) != TEMA_OK ||
        (st = plugin_opt_float(host, opts, w, "dropout", &c->dropout, err)) != TEMA_OK ||
        (st = plugin_opt_int(host, opts, w, "ffn_mult", &c->ffn_mult, err)) != TEMA_OK)
        return st;
    c->relu = false;
    c->pos_std = TB_POS_STD;
    /* the stack's fixed array, whatever a plugin's table allows */
    if (c->blocks > TB_MAX_BLOCKS)
        return tema_fail(err, TEMA_EINTERNAL, "%s: blocks = %lld exceeds the %d a stack holds; a bug: the option "
                                              "table's maximum must be TB_MAX_BLOCKS", w, (long long)c->blocks,
                         TB_MAX_BLOCKS);
    return TEMA_OK;
}

/* What `tema check` asks before any data is read (tema_attention_ops.check): heads must
 * divide the width d (0: not known there, nothing to check). create() checks the same in
 * tb_declare, with the real width. */
static inline tema_status tb_check_heads(const tema_host *host, const tema_cfg *opts, const char *who, int64_t d,
                                         tema_err *err)
{
    char w[64];
    snprintf(w, sizeof w, "attention %s", who);
    int64_t heads;
    tema_status st = plugin_opt_int(host, opts, w, "heads", &heads, err);
    if (st != TEMA_OK || d <= 0) return st;
    if (heads < 1 || d % heads != 0)
        return tema_fail(err, TEMA_EINVAL, "attention %s: heads (%lld) must divide the width (%lld); hint: set heads to a "
                                           "divisor of the encoder dim",
                         who, (long long)heads, (long long)d);
    return TEMA_OK;
}

/* Declares one stack's parameters, named `prefix`.pos, `prefix`.lnf.{g,b} and
 * `prefix`.b<i>.<field> (the store copies the names). */
static inline tema_status tb_declare(tb_stack *s, const tema_host *host, tema_params *p, const char *prefix, int64_t d,
                                     int64_t max_len, const tb_config *c, const char *who, tema_err *err)
{
    static const char *const fields[TB_N_FIELDS] = {"ln1.g", "ln1.b", "wq", "bq", "wk", "bk", "wv", "bv",
                                                    "wo",    "bo",    "ln2.g", "ln2.b", "w1", "b1", "w2", "b2"};
    if (d < 1) return tema_fail(err, TEMA_EINVAL, "attention %s: width must be positive, got %lld", who, (long long)d);
    if (c->heads < 1 || d % c->heads != 0)
        return tema_fail(err, TEMA_EINVAL, "attention %s: heads (%lld) must divide the width (%lld); hint: set heads to a "
                                           "divisor of the encoder dim",
                         who, (long long)c->heads, (long long)d);
    if (max_len < 1)
        return tema_fail(err, TEMA_EINVAL, "attention %s: max_len must be positive, got %lld", who, (long long)max_len);
    memset(s, 0, sizeof *s);
    s->d = d;
    s->heads = c->heads;
    s->n_blocks = c->blocks;
    s->max_len = max_len;
    s->ffn = d * c->ffn_mult;
    s->dropout = (float)c->dropout;
    s->relu = c->relu;
    const tema_nn_api *nn = host->nn;
    const uint32_t nd = TEMA_TENSOR_NO_DECAY;
    char name[256];
    int64_t shape[2] = {max_len, d};
    snprintf(name, sizeof name, "%s.pos", prefix);
    s->pos = nn->param(p, name, 2, shape, TEMA_INIT_NORMAL, c->pos_std, 0);
    snprintf(name, sizeof name, "%s.lnf.g", prefix);
    s->lnf_g = nn->param(p, name, 1, &d, TEMA_INIT_ONES, 1, nd);
    snprintf(name, sizeof name, "%s.lnf.b", prefix);
    s->lnf_b = nn->param(p, name, 1, &d, TEMA_INIT_ZEROS, 1, nd);
    bool ok = s->pos && s->lnf_g && s->lnf_b;
    for (int i = 0; ok && i < s->n_blocks; i++) {
        tb_block *k = &s->blocks[i];
        tema_tensor **slot[TB_N_FIELDS] = {&k->ln1_g, &k->ln1_b, &k->wq, &k->bq, &k->wk, &k->bk, &k->wv, &k->bv,
                                           &k->wo,    &k->bo,    &k->ln2_g, &k->ln2_b, &k->w1, &k->b1, &k->w2, &k->b2};
        /* rows, cols (0: a vector), init */
        const int64_t rows[TB_N_FIELDS] = {d, d, d, d, d, d, d, d, d, d, d, d, s->ffn, s->ffn, d, d};
        const int64_t cols[TB_N_FIELDS] = {0, 0, d, 0, d, 0, d, 0, d, 0, 0, 0, d, 0, s->ffn, 0};
        for (int f = 0; ok && f < TB_N_FIELDS; f++) {
            snprintf(name, sizeof name, "%s.b%d.%s", prefix, i, fields[f]);
            int64_t sh[2] = {rows[f], cols[f]};
            tema_init init = cols[f] ? TEMA_INIT_XAVIER : (f == 0 || f == 10) ? TEMA_INIT_ONES : TEMA_INIT_ZEROS;
            *slot[f] = nn->param(p, name, cols[f] ? 2 : 1, sh, init, 1, cols[f] ? 0 : nd);
            ok = *slot[f] != NULL;
        }
    }
    if (!ok) return tema_fail(err, TEMA_ENOMEM, "attention %s: cannot declare the parameters of %s", who, prefix);
    return TEMA_OK;
}

#define TB_CHECK(x)                                                                                 \
    do {                                                                                            \
        if (!(x)) return tema_fail(err, TEMA_EINTERNAL, "attention %s: %s", who, nn->error(g));    \
    } while (0)

/* Runs the stack over ids [B*L] (global item ids, -1 = padding) with positions pos_ids
 * [B*L] (rows of s->pos, -1 = none), embedding rows of `table` [n_items, d] scaled by
 * in_scale. *out: [B*L, d] on g. */
static inline tema_status tb_forward(const tb_stack *s, const tema_nn_api *nn, tema_graph *g, tb_scratch *sc,
                                     tema_tensor *table, float in_scale, const int32_t *ids, const int32_t *pos_ids,
                                     int64_t B, int64_t L, tema_tensor **out, const char *who, tema_err *err)
{
    const int64_t d = s->d, H = s->heads, Dh = d / H, BL = B * L;
    if (L > s->max_len) return tema_fail(err, TEMA_EINVAL, "attention %s: length %lld exceeds max_len %lld", who,
                                         (long long)L, (long long)s->max_len);
    if (table->ndim != 2 || table->shape[1] != d)
        return tema_fail(err, TEMA_EINVAL, "attention %s: item table width %lld != %lld", who,
                         (long long)table->shape[table->ndim - 1], (long long)d);
    size_t mask_n = (size_t)(B * H * L * L);
    if (!tb_grow((void **)&sc->mask, &sc->mask_cap, mask_n ? mask_n : 1))
        return tema_fail(err, TEMA_ENOMEM, "attention %s: out of memory for the attention mask", who);
    for (int64_t bb = 0; bb < B; bb++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t q = 0; q < L; q++) {
                uint8_t *row = sc->mask + ((bb * H + h) * L + q) * L;
                for (int64_t k = 0; k < L; k++) row[k] = ids[bb * L + k] >= 0;
            }

    tema_tensor *x = nn->embedding(g, table, ids, BL);
    TB_CHECK(x);
    if (in_scale != 1.0f) TB_CHECK(x = nn->scale(g, x, in_scale));
    tema_tensor *pe = nn->embedding(g, s->pos, pos_ids, BL);
    TB_CHECK(pe);
    TB_CHECK(x = nn->add(g, x, pe));
    TB_CHECK(x = nn->dropout(g, x, s->dropout));

    const float att_scale = 1.0f / sqrtf((float)Dh);
    for (int64_t i = 0; i < s->n_blocks; i++) {
        const tb_block *k = &s->blocks[i];
        tema_tensor *q = nn->layernorm(g, x, k->ln1_g, k->ln1_b, 1e-8f);
        TB_CHECK(q);
        tema_tensor *Q = nn->linear(g, q, k->wq, k->bq), *K = nn->linear(g, x, k->wk, k->bk),
                    *V = nn->linear(g, x, k->wv, k->bv);
        TB_CHECK(Q && K && V);
        int64_t s4[4] = {B, L, H, Dh}, s3[3] = {B * H, L, Dh};
        if (H > 1) {
            TB_CHECK(Q = nn->reshape(g, Q, 4, s4));
            TB_CHECK(Q = nn->transpose12(g, Q));
            TB_CHECK(K = nn->reshape(g, K, 4, s4));
            TB_CHECK(K = nn->transpose12(g, K));
            TB_CHECK(V = nn->reshape(g, V, 4, s4));
            TB_CHECK(V = nn->transpose12(g, V));
        }
        TB_CHECK(Q = nn->reshape(g, Q, 3, s3));
        TB_CHECK(K = nn->reshape(g, K, 3, s3));
        TB_CHECK(V = nn->reshape(g, V, 3, s3));
        tema_tensor *S = nn->matmul(g, Q, false, K, true); /* [B*H, L, L] */
        TB_CHECK(S);
        TB_CHECK(S = nn->scale(g, S, att_scale));
        int64_t s2[2] = {B * H * L, L};
        TB_CHECK(S = nn->reshape(g, S, 2, s2));
        TB_CHECK(S = nn->softmax(g, S, sc->mask, true));
        TB_CHECK(S = nn->dropout(g, S, s->dropout));
        int64_t sl[3] = {B * H, L, L};
        TB_CHECK(S = nn->reshape(g, S, 3, sl));
        tema_tensor *O = nn->matmul(g, S, false, V, false); /* [B*H, L, Dh] */
        TB_CHECK(O);
        if (H > 1) {
            int64_t o4[4] = {B, H, L, Dh};
            TB_CHECK(O = nn->reshape(g, O, 4, o4));
            TB_CHECK(O = nn->transpose12(g, O));
        }
        int64_t o2[2] = {BL, d};
        TB_CHECK(O = nn->reshape(g, O, 2, o2));
        TB_CHECK(O = nn->linear(g, O, k->wo, k->bo));
        TB_CHECK(x = nn->add(g, q, O));
        tema_tensor *y = nn->layernorm(g, x, k->ln2_g, k->ln2_b, 1e-8f);
        TB_CHECK(y);
        tema_tensor *f = nn->linear(g, y, k->w1, k->b1);
        TB_CHECK(f);
        TB_CHECK(f = s->relu ? nn->relu(g, f) : nn->gelu(g, f));
        TB_CHECK(f = nn->dropout(g, f, s->dropout));
        TB_CHECK(f = nn->linear(g, f, k->w2, k->b2));
        TB_CHECK(f = nn->dropout(g, f, s->dropout));
        TB_CHECK(x = nn->add(g, y, f));
    }
    TB_CHECK(x = nn->layernorm(g, x, s->lnf_g, s->lnf_b, 1e-8f));
    *out = x;
    return TEMA_OK;
}

#undef TB_CHECK

#endif
