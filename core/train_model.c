/* core/train_model.c - assembling a model from plugins, building batches, evaluation. */
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "train_internal.h"
#include "losses.h"
#include "util.h"

static tema_status plugin_error(tema_status st, tema_err *err, const char *kind, const char *name)
{
    if (st == TEMA_OK) return st;
    if (!err || !err->msg[0]) return tema_fail(err, st, "%s plugin '%s' failed (%s)", kind, name, tema_status_name(st));
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    return tema_fail(err, st, "%s plugin '%s': %s", kind, name, msg);
}

tema_status tema_model_build(tema_model *m, const tema_cfg *cfg, tema_registry *reg, tema_err *err)
{
    const tema_cfg *encs = tema_cfg_get(cfg, "model.encoders");
    const tema_cfg *single_enc = NULL;
    size_t n_enc = 0;
    if (encs && encs->type == TEMA_CFG_LIST) n_enc = encs->n_items;
    else if (encs) {
        single_enc = encs;
        n_enc = 1;
    }
    if (n_enc > TEMA_TRAIN_MAX_ENCODERS)
        return tema_fail(err, TEMA_EINVAL, "config model.encoders: %zu encoders, at most %d are supported", n_enc,
                         TEMA_TRAIN_MAX_ENCODERS);
    int64_t dims[TEMA_TRAIN_MAX_ENCODERS];
    const char *mods[TEMA_TRAIN_MAX_ENCODERS];
    for (size_t i = 0; i < n_enc; i++) {
        const char *name;
        const tema_cfg *node = single_enc ? single_enc : encs->items[i];
        const tema_cfg *opts = tema_cfg_plugin_node(node, &name);
        char where[64];
        snprintf(where, sizeof where, "model.encoders.%zu", i);
        tema_status st =
            tema_registry_find_plugin(reg, TEMA_KIND_ENCODER, name, where, sizeof(tema_encoder_ops), &m->enc_p[i], err);
        if (st != TEMA_OK) return st;
        m->enc_ops[i] = m->enc_p[i]->ops;
        st = m->enc_ops[i]->create(&m->info, opts, &m->enc[i], err);
        if (st != TEMA_OK) return plugin_error(st, err, "encoder", name);
        m->n_enc = (int)i + 1;
        dims[i] = m->enc_ops[i]->dim(m->enc[i]);
        mods[i] = m->enc_ops[i]->modality(m->enc[i]);
    }
    const char *name;
    const tema_cfg *opts = tema_cfg_plugin_node(tema_cfg_get(cfg, "model.attention"), &name);
    tema_status st = tema_registry_find_plugin(reg, TEMA_KIND_ATTENTION, name, "model.attention",
                                            offsetof(tema_attention_ops, sequence_weights), &m->att_p, err);
    if (st != TEMA_OK) return st;
    m->att_ops = m->att_p->ops;
    st = m->att_ops->create(&m->info, opts, dims, mods, m->n_enc, &m->att, err);
    if (st != TEMA_OK) return plugin_error(st, err, "attention", name);
    opts = tema_cfg_plugin_node(tema_cfg_get(cfg, "loss"), &name);
    st = tema_registry_find_plugin(reg, TEMA_KIND_LOSS, name, "loss", sizeof(tema_loss_ops), &m->loss_p, err);
    if (st != TEMA_OK) return st;
    m->loss_ops = m->loss_p->ops;
    st = m->loss_ops->create(&m->info, opts, &m->loss, err);
    if (st != TEMA_OK) return plugin_error(st, err, "loss", name);
    return tema_params_finalize(m->params, err);
}

void tema_model_destroy(tema_model *m)
{
    if (m->loss && m->loss_ops) m->loss_ops->destroy(m->loss);
    if (m->att && m->att_ops) m->att_ops->destroy(m->att);
    for (int i = 0; i < m->n_enc; i++)
        if (m->enc[i]) m->enc_ops[i]->destroy(m->enc[i]);
    tema_params_free(m->params);
    memset(m, 0, sizeof *m);
}

tema_status tema_model_forward(tema_model *m, tema_graph *g, const tema_batch *b, tema_stream *streams,
                               int *n_streams, tema_err *err)
{
    tema_tensor *items[TEMA_TRAIN_MAX_ENCODERS] = {0};
    for (int i = 0; i < m->n_enc; i++) {
        tema_status st = m->enc_ops[i]->forward(m->enc[i], g, &items[i], err);
        if (st != TEMA_OK) return plugin_error(st, err, "encoder", m->enc_p[i]->name);
    }
    *n_streams = 0;
    tema_status st = m->att_ops->forward(m->att, g, b, items, m->n_enc, streams, n_streams, err);
    if (st != TEMA_OK) return plugin_error(st, err, "attention", m->att_p->name);
    if (*n_streams < 1 || *n_streams > TEMA_MAX_STREAMS)
        return tema_fail(err, TEMA_EINTERNAL, "attention plugin '%s' returned %d streams (expected 1..%d)",
                         m->att_p->name, *n_streams, TEMA_MAX_STREAMS);
    int64_t rows = (int64_t)b->B * b->L;
    for (int k = 0; k < *n_streams; k++) {
        const tema_stream *s = &streams[k];
        if (!s->h || !s->items || s->h->ndim != 2 || s->items->ndim != 2 || s->h->shape[0] != rows ||
            s->h->shape[1] != s->items->shape[1] || s->items->shape[0] != (int64_t)m->info.n_x + m->info.n_y)
            return tema_fail(err, TEMA_EINTERNAL, "attention plugin '%s': stream %d has wrong shapes (need h [%lld, d] "
                                                  "and items [%d, d])",
                             m->att_p->name, k, (long long)rows, (int)(m->info.n_x + m->info.n_y));
    }
    return TEMA_OK;
}

tema_status tema_model_add_aux_loss(tema_model *m, tema_graph *g, const tema_batch *b, const tema_targets *t,
                                    tema_tensor **loss, tema_err *err)
{
    if (!m->att_p || m->att_p->ops_size < offsetof(tema_attention_ops, aux_loss) + sizeof(void *) ||
        !m->att_ops->aux_loss)
        return TEMA_OK;
    tema_tensor *aux = NULL;
    tema_status st = m->att_ops->aux_loss(m->att, g, b, t, &aux, err);
    if (st != TEMA_OK) return plugin_error(st, err, "attention", m->att_p->name);
    if (!aux) return TEMA_OK;
    if (aux->size != 1)
        return tema_fail(err, TEMA_EINTERNAL, "attention plugin '%s': aux_loss returned %lld elements, not a [1] tensor",
                         m->att_p->name, (long long)aux->size);
    const tema_nn_api *nn = tema_nn();
    tema_tensor *sum = *loss ? nn->add(g, *loss, nn->reshape(g, aux, (*loss)->ndim, (*loss)->shape)) : aux;
    if (!sum) return tema_fail(err, TEMA_EINTERNAL, "attention plugin '%s': adding aux_loss: %s", m->att_p->name,
                               nn->error(g));
    *loss = sum;
    return TEMA_OK;
}

void tema_model_seq_weights(const tema_model *m, float w[2][3])
{
    for (int d = 0; d < 2; d++)
        for (int q = 0; q < 3; q++) w[d][q] = 1.0f;
    if (m->att_p && m->att_p->ops_size >= offsetof(tema_attention_ops, sequence_weights) + sizeof(void *) &&
        m->att_ops->sequence_weights)
        m->att_ops->sequence_weights(m->att, w);
}

tema_status tema_batch_buf_init(tema_batch_buf *bb, int32_t B, int32_t L, int32_t P, tema_err *err)
{
    memset(bb, 0, sizeof *bb);
    bb->B = B;
    bb->L = L;
    bb->P = P;
    size_t n = (size_t)B * L, r = (size_t)B * (size_t)(P < L ? P : L);
    bb->seq = malloc(n * sizeof(int32_t));
    bb->seq_x = malloc(n * sizeof(int32_t));
    bb->seq_y = malloc(n * sizeof(int32_t));
    bb->row_index = malloc(r * sizeof(int32_t));
    bb->target = malloc(r * sizeof(int32_t));
    bb->lo = malloc(r * sizeof(int32_t));
    bb->hi = malloc(r * sizeof(int32_t));
    bb->weight = malloc(r * sizeof(float));
    bb->eval_target = malloc((size_t)B * sizeof(int32_t));
    if (!bb->seq || !bb->seq_x || !bb->seq_y || !bb->row_index || !bb->target || !bb->lo || !bb->hi || !bb->weight ||
        !bb->eval_target) {
        tema_batch_buf_free(bb);
        return tema_fail(err, TEMA_ENOMEM, "training: out of memory for a batch of %d x %d", (int)B, (int)L);
    }
    return TEMA_OK;
}

void tema_batch_buf_free(tema_batch_buf *bb)
{
    free(bb->seq);
    free(bb->seq_x);
    free(bb->seq_y);
    free(bb->row_index);
    free(bb->target);
    free(bb->lo);
    free(bb->hi);
    free(bb->weight);
    free(bb->eval_target);
    memset(bb, 0, sizeof *bb);
}

/* Right-align items[0..n) into row[0..L), pad left with -1; also the domain subsequences. */
static void fill_row(int32_t *row, int32_t *row_x, int32_t *row_y, int32_t L, const int32_t *items, int64_t n,
                     int32_t n_x)
{
    for (int32_t p = 0; p < L; p++) row[p] = row_x[p] = row_y[p] = -1;
    for (int64_t i = 0; i < n; i++) row[L - n + i] = items[i];
    int32_t px = L, py = L;
    for (int64_t i = n - 1; i >= 0; i--) {
        if (items[i] < n_x) row_x[--px] = items[i];
        else row_y[--py] = items[i];
    }
}

void tema_batch_train(tema_batch_buf *bb, const tema_split *sp, int32_t n_x, int32_t n_y, const int64_t *lines,
                      int nb, tema_batch *b, tema_targets *t)
{
    const int32_t L = bb->L, P = bb->P < bb->L ? bb->P : bb->L;
    int64_t R = 0;
    for (int i = 0; i < nb; i++) {
        int64_t line = lines[i];
        const int32_t *it = sp->items + sp->off[line];
        int64_t n = sp->off[line + 1] - sp->off[line];
        if (n > L + 1) {
            it += n - (L + 1);
            n = L + 1;
        }
        int64_t n_in = n > 0 ? n - 1 : 0; /* inputs; input j has target it[j+1] */
        fill_row(bb->seq + (int64_t)i * L, bb->seq_x + (int64_t)i * L, bb->seq_y + (int64_t)i * L, L, it, n_in, n_x);
        int64_t first = n_in - P > 0 ? n_in - P : 0;
        for (int64_t j = first; j < n_in; j++) {
            int32_t tgt = it[j + 1];
            bb->row_index[R] = (int32_t)((int64_t)i * L + (L - n_in + j));
            bb->target[R] = tgt;
            bb->lo[R] = tgt < n_x ? 0 : n_x;
            bb->hi[R] = tgt < n_x ? n_x : n_x + n_y;
            bb->weight[R] = 1.0f;
            R++;
        }
    }
    *b = (tema_batch){.struct_size = sizeof(tema_batch), .B = nb, .L = L, .seq = bb->seq, .seq_x = bb->seq_x,
                      .seq_y = bb->seq_y};
    *t = (tema_targets){.struct_size = sizeof(tema_targets), .rows = R, .row_index = bb->row_index,
                        .target = bb->target, .lo = bb->lo, .hi = bb->hi, .weight = bb->weight};
}

void tema_batch_eval(tema_batch_buf *bb, const tema_split *sp, int32_t n_x, const int64_t *lines, int nb,
                     tema_batch *b)
{
    const int32_t L = bb->L;
    for (int i = 0; i < nb; i++) {
        int64_t line = lines[i];
        const int32_t *it = sp->items + sp->off[line];
        int64_t n = sp->off[line + 1] - sp->off[line];
        if (n > L) {
            it += n - L;
            n = L;
        }
        bb->eval_target[i] = sp->target[line];
        fill_row(bb->seq + (int64_t)i * L, bb->seq_x + (int64_t)i * L, bb->seq_y + (int64_t)i * L, L, it, n, n_x);
    }
    *b = (tema_batch){.struct_size = sizeof(tema_batch), .B = nb, .L = L, .seq = bb->seq, .seq_x = bb->seq_x,
                      .seq_y = bb->seq_y};
}

/* Evaluation memory. A batch's forward pass is one graph step; its users are then scored in
 * chunks of as many rows as give EVAL_CHUNK_BYTES of logits against the larger domain, and
 * ranked chunk by chunk. Scored whole, a batch of 512 users of food-kitchen-c2dsr held its
 * logits, their scaled copy and the host scores (~70 MiB each) and a mixture in double over the
 * whole domain (~140 MiB) at once, and an evaluation pass of SASRec took more memory than a
 * training step (754 against 700 MiB peak RSS, `tema bench --eval`). Smaller chunks repack the
 * item table for more products: 8 MiB evaluated 8% slower than whole batches, 32 MiB as fast.
 * A user's scores do not depend on the chunk it is in: each row is its own product. */
#define EVAL_CHUNK_BYTES ((size_t)32 << 20)

static int eval_chunk_rows(const tema_eval_ctx *c, int B, int32_t nd_max)
{
    size_t rows = c->chunk_rows > 0 ? (size_t)c->chunk_rows
                                    : EVAL_CHUNK_BYTES / ((size_t)(nd_max > 0 ? nd_max : 1) * sizeof(float));
    return rows < 1 ? 1 : rows < (size_t)B ? (int)rows : B;
}

/* The domain's rows lo..lo+nd of a stream's item table [n_x + n_y, d], in place: one domain's
 * items are contiguous, so scoring reads them without a copy. A view on the host's stack: it
 * takes no gradient, so no op records it. */
static tema_tensor domain_items(const tema_tensor *items, int32_t lo, int32_t nd)
{
    const int64_t d = items->shape[1];
    return (tema_tensor){.data = items->data + (int64_t)lo * d, .ndim = 2, .shape = {nd, d}, .size = (int64_t)nd * d,
                         .name = items->name};
}

/* The model's forward pass over one evaluation batch (a graph step of its own). */
static tema_status eval_forward(tema_eval_ctx *c, const tema_batch *b, tema_stream *streams, int *ns, tema_err *err)
{
    tema_graph_reset(c->g, false, 0);
    return tema_model_forward(c->model, c->g, b, streams, ns, err);
}

/* Scores of nc users (rows last_rows[0..nc) of the forward's streams) against one domain (index
 * dom, items lo..lo+nd): out[i * nd + j] for item lo + j. Streams combine as
 * log sum_g w[dom][g] sum_{k in g} (w_k/W_g) softmax_k (each stream normalised over the domain,
 * Eq. 16), accumulated as probabilities in double (no underflow for any logit range a float
 * holds). With `cols` (n_cols local item indices per row, the sampled protocol's candidates)
 * only those entries of out are computed: the per-stream normalisers still read every item, but
 * the mixture is formed for the candidates alone. One stream keeps its raw logits (same ranking,
 * no rounding from the normalisation). Each stream's temporaries are dropped (rewound to
 * `forward`) once read. acc: [nc * width] scratch; lse_row: [nc] scratch. */
static tema_status chunk_scores(tema_eval_ctx *c, const tema_stream *streams, int ns, const tema_graph_mark *forward,
                                int dom, int32_t lo, int32_t nd, const int32_t *last_rows, int64_t nc,
                                const int32_t *cols, int32_t n_cols, float *out, double *acc, float *lse_row,
                                tema_err *err)
{
    const tema_nn_api *nn = tema_nn();
    const int64_t width = cols ? n_cols : nd; /* mixture entries per row */
    int group[TEMA_MAX_STREAMS];
    float logw[TEMA_MAX_STREAMS], sw[2][3];
    tema_stream_groups(streams, ns, group, logw);
    tema_model_seq_weights(c->model, sw);
    bool first = true;
    tema_status st;
    for (int k = 0; k < ns; k++) {
        const float gw = sw[dom][group[k]];
        if (ns > 1 && !(gw > 0)) continue;
        tema_graph_rewind(c->g, forward);
        tema_tensor e = domain_items(streams[k].items, lo, nd);
        tema_tensor *h = nn->gather_rows(c->g, streams[k].h, last_rows, nc);
        if (h) h->flags &= ~TEMA_TENSOR_NEEDS_GRAD; /* so no tape entry names the view on this stack */
        tema_tensor *z = h ? nn->matmul(c->g, h, false, &e, true) : NULL;
        if (!z) return tema_fail(err, TEMA_EINTERNAL, "evaluation: %s", nn->error(c->g));
        const float tau = streams[k].inv_temp;
        if (ns == 1) {
            c->be->to_host(c->bs, out, z->data, (size_t)(nc * nd) * sizeof(float));
            if ((st = c->be->sync(c->bs, err)) != TEMA_OK) return st; /* a device failure must not become scores */
            if (tau != 1.0f)
                for (int64_t i = 0; i < nc * nd; i++) out[i] *= tau;
            return TEMA_OK;
        }
        /* the normaliser over the whole domain is a row reduction the backend does where
         * the logits are (on a GPU the host would otherwise exp every logit of every stream);
         * the host forms the mixture only at the entries it needs */
        tema_tensor *zt = tau != 1.0f ? nn->scale(c->g, z, tau) : z;
        tema_tensor *lse = zt ? nn->logsumexp(c->g, zt) : NULL;
        if (!lse) return tema_fail(err, TEMA_EINTERNAL, "evaluation: %s", nn->error(c->g));
        c->be->to_host(c->bs, out, zt->data, (size_t)(nc * nd) * sizeof(float));
        c->be->to_host(c->bs, lse_row, lse->data, (size_t)nc * sizeof(float));
        if ((st = c->be->sync(c->bs, err)) != TEMA_OK) return st; /* a device failure must not become scores */
        const double w = exp((double)logw[k]) * gw;
        const bool init = first;
        first = false;
#pragma omp parallel for num_threads(c->threads) schedule(static)
        for (int64_t r = 0; r < nc; r++) {
            const float *row = out + r * nd;
            double *pr = acc + r * width;
            const double lr = lse_row[r];
            for (int64_t q = 0; q < width; q++) {
                const int32_t j = cols ? cols[r * n_cols + q] : (int32_t)q;
                double p = w * exp((double)row[j] - lr);
                pr[q] = init ? p : pr[q] + p;
            }
        }
    }
    if (first)
        return tema_fail(err, TEMA_EINVAL, "evaluation: every stream group has sequence weight 0 for domain %c; hint: "
                                           "check the attention plugin's lambdas", dom ? 'Y' : 'X');
#pragma omp parallel for num_threads(c->threads) schedule(static)
    for (int64_t r = 0; r < nc; r++)
        for (int64_t q = 0; q < width; q++) {
            double p = acc[r * width + q];
            out[r * nd + (cols ? cols[r * n_cols + q] : q)] = (float)log(p > 0 ? p : DBL_MIN);
        }
    return TEMA_OK;
}

tema_status tema_score_lines(tema_eval_ctx *c, const tema_split *sp, const int64_t *lines, int nb, int dom,
                             float *out, tema_err *err)
{
    const int32_t lo = dom ? c->n_x : 0, nd = dom ? c->n_y : c->n_x, L = c->bb->L;
    if (nb < 1 || nb > c->bb->B || nd < 1)
        return tema_fail(err, TEMA_EINVAL, "scoring: %d lines for a batch of %d, %d items", nb, (int)c->bb->B,
                         (int)nd);
    const int C = eval_chunk_rows(c, nb, nd);
    int32_t *last_rows = malloc((size_t)nb * sizeof *last_rows);
    double *mix = malloc((size_t)C * (size_t)nd * sizeof *mix);
    float *lse_row = malloc((size_t)C * sizeof *lse_row);
    tema_status st = last_rows && mix && lse_row ? TEMA_OK : tema_fail(err, TEMA_ENOMEM, "out of memory");
    tema_stream streams[TEMA_MAX_STREAMS];
    int ns = 0;
    if (st == TEMA_OK) {
        for (int b = 0; b < nb; b++) last_rows[b] = b * L + L - 1;
        tema_batch b;
        tema_batch_eval(c->bb, sp, c->n_x, lines, nb, &b);
        st = eval_forward(c, &b, streams, &ns, err);
    }
    const tema_graph_mark forward = tema_graph_mark_now(c->g);
    for (int r0 = 0; st == TEMA_OK && r0 < nb; r0 += C)
        st = chunk_scores(c, streams, ns, &forward, dom, lo, nd, last_rows + r0, nb - r0 < C ? nb - r0 : C, NULL, 0,
                          out + (int64_t)r0 * nd, mix, lse_row, err);
    free(last_rows);
    free(mix);
    free(lse_row);
    return st;
}

/* Buffers of one evaluation pass: the cases of a domain, and one chunk of C users' scores. */
typedef struct eval_scratch {
    int64_t *order;            /* [n] the cases of the domain being scored */
    int32_t *last_rows, *cols; /* [B], [C * (n_neg + 1)] */
    float *scores, *lse_row, *cand;
    double *mix, *ranks;
    int C;                     /* users per chunk */
} eval_scratch;

static void eval_scratch_free(eval_scratch *x)
{
    free(x->order);
    free(x->last_rows);
    free(x->scores);
    free(x->mix);
    free(x->lse_row);
    free(x->ranks);
    free(x->cand);
    free(x->cols);
}

static bool eval_scratch_alloc(eval_scratch *x, const tema_eval_ctx *c, int64_t n, int B, int32_t nd_max,
                               const int32_t *negatives, int32_t n_neg)
{
    memset(x, 0, sizeof *x);
    const int C = x->C = eval_chunk_rows(c, B, nd_max);
    x->order = malloc((size_t)(n > 0 ? n : 1) * sizeof *x->order);
    x->last_rows = malloc((size_t)B * sizeof *x->last_rows);
    x->scores = malloc((size_t)C * (size_t)nd_max * sizeof(float));
    /* mixture probabilities: a row's candidates (sampled), or its domain's items (full) */
    const int64_t mix_w = negatives ? n_neg + 1 : nd_max;
    x->mix = malloc((size_t)C * (size_t)mix_w * sizeof(double));
    x->lse_row = malloc((size_t)C * sizeof(float));
    x->ranks = malloc((size_t)C * TEMA_RANK_RULES * sizeof(double));
    x->cand = negatives ? malloc((size_t)C * (size_t)(n_neg + 1) * sizeof(float)) : NULL;
    x->cols = negatives ? malloc((size_t)C * (size_t)(n_neg + 1) * sizeof(int32_t)) : NULL;
    return x->order && x->last_rows && x->scores && x->mix && x->lse_row && x->ranks &&
           (!negatives || (x->cand && x->cols));
}

/* Ranks of the nb cases order[0..nb) from their score rows (sampled: the target among its
 * negatives; full: among the whole domain), added to acc and, when given, to rows. */
static void rank_cases(tema_eval_ctx *c, const tema_split *sp, eval_scratch *x, const int64_t *order, int nb, int dom,
                       int32_t lo, int32_t nd, const int32_t *negatives, int32_t n_neg, tema_metric_acc *acc,
                       tema_rank_row *rows)
{
#pragma omp parallel for num_threads(c->threads) schedule(dynamic, 4)
    for (int k = 0; k < nb; k++) {
        int64_t i = order[k];
        const float *row = x->scores + (int64_t)k * nd;
        int32_t t = sp->target[i] - lo;
        if (negatives) {
            float *cs = x->cand + (int64_t)k * (n_neg + 1);
            cs[0] = row[t];
            for (int32_t q = 0; q < n_neg; q++) cs[q + 1] = row[negatives[i * n_neg + q] - lo];
            tema_rank(cs, n_neg, x->ranks + (int64_t)k * TEMA_RANK_RULES);
        } else {
            tema_rank_full(row, nd, t, x->ranks + (int64_t)k * TEMA_RANK_RULES);
        }
    }
    for (int k = 0; k < nb; k++) {
        const double *r = x->ranks + (int64_t)k * TEMA_RANK_RULES;
        tema_metric_acc_add(acc, dom, r);
        if (rows) {
            tema_rank_row *row = &rows[order[k]];
            row->domain = dom;
            for (int q = 0; q < TEMA_RANK_RULES; q++) row->rank[q] = r[q];
        }
    }
}

/* The cases of domain dom, batch by batch: one forward pass per batch, then its users chunk by
 * chunk, each chunk one product per stream against the domain's items, ranked at once. */
static tema_status evaluate_domain(tema_eval_ctx *c, const tema_split *sp, eval_scratch *x, int B, int dom,
                                   const int32_t *negatives, int32_t n_neg, tema_metric_acc *acc, tema_rank_row *rows,
                                   tema_err *err)
{
    const int32_t n_x = c->n_x, n_y = c->n_y, lo = dom ? n_x : 0, nd = dom ? n_y : n_x;
    if (nd < 2) return TEMA_OK;
    int64_t m = 0;
    for (int64_t i = 0; i < sp->n_lines; i++) {
        int32_t t = sp->target[i];
        if (t < 0 || t >= n_x + n_y || (t >= n_x) != (dom == 1)) continue;
        if (negatives && negatives[i * n_neg] < 0) continue;
        x->order[m++] = i;
    }
    tema_stream streams[TEMA_MAX_STREAMS];
    int ns = 0;
    for (int64_t s = 0; s < m; s += B) {
        int nb = (int)(m - s < B ? m - s : B);
        tema_batch b;
        tema_batch_eval(c->bb, sp, n_x, x->order + s, nb, &b);
        tema_status st = eval_forward(c, &b, streams, &ns, err);
        if (st != TEMA_OK) return st;
        const tema_graph_mark forward = tema_graph_mark_now(c->g);
        for (int r0 = 0; r0 < nb; r0 += x->C) {
            const int nc = nb - r0 < x->C ? nb - r0 : x->C;
            const int64_t *cases = x->order + s + r0;
            for (int k = 0; negatives && k < nc; k++) {
                int32_t *row = x->cols + (int64_t)k * (n_neg + 1);
                row[0] = sp->target[cases[k]] - lo;
                for (int32_t q = 0; q < n_neg; q++) row[q + 1] = negatives[cases[k] * n_neg + q] - lo;
            }
            st = chunk_scores(c, streams, ns, &forward, dom, lo, nd, x->last_rows + r0, nc, negatives ? x->cols : NULL,
                              n_neg + 1, x->scores, x->mix, x->lse_row, err);
            if (st != TEMA_OK) return st;
            rank_cases(c, sp, x, cases, nc, dom, lo, nd, negatives, n_neg, acc, rows);
        }
    }
    return TEMA_OK;
}

tema_status tema_evaluate(tema_eval_ctx *c, const tema_split *sp, const int32_t *negatives, int32_t n_neg,
                          tema_metric_acc *acc, tema_rank_row *rows, tema_err *err)
{
    const int64_t n = sp->n_lines;
    const int32_t L = c->bb->L, nd_max = c->n_x > c->n_y ? c->n_x : c->n_y;
    const int B = c->batch_size < c->bb->B ? c->batch_size : c->bb->B;
    eval_scratch x;
    tema_status st = TEMA_OK;
    if (!eval_scratch_alloc(&x, c, n, B, nd_max, negatives, n_neg))
        st = tema_fail(err, TEMA_ENOMEM, "evaluation: out of memory (chunks of %d x %d items)", x.C, (int)nd_max);
    if (st == TEMA_OK && rows)
        for (int64_t i = 0; i < n; i++)
            rows[i] = (tema_rank_row){.user = sp->user ? sp->user[i] : i, .domain = -1, .target = sp->target[i]};
    for (int b = 0; st == TEMA_OK && b < B; b++) x.last_rows[b] = b * L + L - 1;
    /* X cases first, then Y */
    for (int dom = 0; dom < 2 && st == TEMA_OK; dom++)
        st = evaluate_domain(c, sp, &x, B, dom, negatives, n_neg, acc, rows, err);
    eval_scratch_free(&x);
    return st;
}

tema_status tema_model_check(const tema_cfg *cfg, tema_registry *reg, tema_err *err)
{
    const tema_cfg *node = tema_cfg_get(cfg, "model.attention"), *encs = tema_cfg_get(cfg, "model.encoders");
    const char *name = NULL;
    const tema_cfg *opts = tema_cfg_plugin_node(node, &name);
    const tema_plugin *p = name ? tema_registry_find(reg, TEMA_KIND_ATTENTION, name) : NULL;
    if (!p || p->ops_size < offsetof(tema_attention_ops, check) + sizeof(void *)) return TEMA_OK;
    const tema_attention_ops *ops = p->ops;
    if (!ops->check) return TEMA_OK;
    int64_t dims[TEMA_TRAIN_MAX_ENCODERS] = {0};
    int n = 0;
    for (size_t i = 0; encs && encs->type == TEMA_CFG_LIST && i < encs->n_items && n < TEMA_TRAIN_MAX_ENCODERS; i++)
        dims[n++] = tema_cfg_int(encs->items[i], "dim", 0); /* 0: an encoder without a dim option */
    tema_status st = ops->check(tema_host_get(), opts, dims, n, err);
    if (st != TEMA_OK && node) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        tema_fail(err, st, "%s:%d:%d: model.attention: %s", node->file ? node->file : "?", node->line, node->col, msg);
    }
    return st;
}
