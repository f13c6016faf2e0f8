/* plugins/loss/sampled_softmax.c - sampled softmax with shared negatives and the log-Q
 * correction (Bengio & Senecal 2008; Jean et al. 2015; as TensorFlow's
 * sampled_softmax_loss with remove_accidental_hits).
 *
 * Per batch and per target domain [lo, hi), K candidates c_1..c_K are drawn with
 * replacement from q (uniform over the domain, or proportional to (count+1)^0.75), seeded
 * by t->seed, and shared by every row of that domain. Row r with target t then uses
 *   z_t = <h, e_t> tau,   z_k = <h, e_{c_k}> tau - log(K q(c_k))   (z_k = -inf if c_k == t)
 *   log p(t) = z_t - log(exp z_t + sum_k exp z_k)
 * The log-Q term makes (1/K) sum_k exp(<h,e_{c_k}> tau) / q(c_k) an unbiased estimate of
 * sum_{j != t} exp(<h,e_j> tau) (masking the accidental hits keeps exactly the j != t
 * part), so the loss tends to the full softmax loss as K grows; without it popular
 * negatives would be over-counted. Several streams combine through host->mixture_nll
 * (sequence groups of modality mixtures), as in full_softmax. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../plugin_opts.h"
#include "tema/plugin.h"

static const tema_option sampled_options[] = {
    {"positions", TEMA_OPT_INT, "10", 1, 100000, NULL, "train on the last N positions of each sequence that have a target"},
    {"negatives", TEMA_OPT_INT, "2000", 1, 1 << 24, NULL, "shared negatives drawn per batch and target domain"},
    {"sampler", TEMA_OPT_ENUM, "uniform", 0, -1, "uniform|pop", "negative distribution: uniform, or training count^0.75"},
};

#define SAMPLED_MAX_GROUPS 8
#define MASKED_LOGIT (-1e30f)

typedef struct sampled_loss {
    const tema_host *host;
    int64_t k;
    bool pop;
    int64_t n_items;
    double *cdf;            /* [n_items+1] prefix sums of (count+1)^0.75; pop only */
    /* host scratch, grown as needed */
    int32_t *cand, *grp_rows, *grp_tgt, *grp_lo, *grp_hi;
    float *corr, *tcorr, *w;   /* tcorr: [K] -log(K q(c_k)) */
    size_t cand_cap, rows_cap, corr_cap;
} sampled_loss;

static tema_status sampled_create(const tema_model_info *info, const tema_cfg *opts, void **self, tema_err *err)
{
    const tema_host *host = info->host;
    int64_t k;
    const char *sampler;
    tema_status st;
    if ((st = plugin_opt_int(host, opts, "loss sampled_softmax", "negatives", &k, err)) != TEMA_OK ||
        (st = plugin_opt_str(host, opts, "loss sampled_softmax", "sampler", &sampler, err)) != TEMA_OK)
        return st;
    bool pop = !strcmp(sampler, "pop");
    if (!pop && strcmp(sampler, "uniform") != 0)
        return tema_fail(err, TEMA_EINVAL, "loss sampled_softmax: sampler must be 'uniform' or 'pop', got '%s'", sampler);
    sampled_loss *l = calloc(1, sizeof *l);
    if (!l) return tema_fail(err, TEMA_ENOMEM, "loss sampled_softmax: out of memory");
    l->host = host;
    l->k = k;
    l->pop = pop;
    l->n_items = (int64_t)info->n_x + info->n_y;
    if (pop) {
        l->cdf = malloc((size_t)(l->n_items + 1) * sizeof *l->cdf);
        if (!l->cdf) {
            free(l);
            return tema_fail(err, TEMA_ENOMEM, "loss sampled_softmax: out of memory");
        }
        l->cdf[0] = 0;
        for (int64_t i = 0; i < l->n_items; i++)
            l->cdf[i + 1] = l->cdf[i] + pow(1.0 + (double)(info->train_counts ? info->train_counts[i] : 0), 0.75);
    }
    *self = l;
    return TEMA_OK;
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double unit(uint64_t *s) { return (double)(splitmix64(s) >> 11) * (1.0 / 9007199254740992.0); }

/* log of the per-draw probability of item j in [lo, hi) */
static float log_q(const sampled_loss *l, int32_t j, int32_t lo, int32_t hi)
{
    if (!l->pop) return -logf((float)(hi - lo));
    double total = l->cdf[hi] - l->cdf[lo];
    return (float)log((l->cdf[j + 1] - l->cdf[j]) / total);
}

static void draw(const sampled_loss *l, uint64_t seed, int32_t lo, int32_t hi, int64_t k, int32_t *out)
{
    uint64_t s = seed ^ ((uint64_t)(uint32_t)lo * 0x100000001B3ull) ^ ((uint64_t)(uint32_t)hi << 32);
    for (int64_t i = 0; i < k; i++) {
        if (!l->pop) {
            out[i] = lo + (int32_t)(unit(&s) * (double)(hi - lo));
            if (out[i] >= hi) out[i] = hi - 1;
            continue;
        }
        double u = l->cdf[lo] + unit(&s) * (l->cdf[hi] - l->cdf[lo]);
        int32_t a = lo, b = hi - 1; /* largest j in [lo,hi) with cdf[j] <= u */
        while (a < b) {
            int32_t m = a + (b - a + 1) / 2;
            if (l->cdf[m] <= u) a = m;
            else b = m - 1;
        }
        out[i] = a;
    }
}

static bool grow(void **p, size_t *cap, size_t n, size_t elem)
{
    if (n <= *cap) return true;
    void *q = realloc(*p, n * elem);
    if (!q) return false;
    *p = q;
    *cap = n;
    return true;
}

#define NN_CHECK(x)                                                                                \
    do {                                                                                           \
        if (!(x)) return tema_fail(err, TEMA_EINTERNAL, "loss sampled_softmax: %s", nn->error(g)); \
    } while (0)

/* The batch's rows grouped by target domain [lo, hi); each group shares one candidate set. */
typedef struct target_groups {
    int32_t lo[SAMPLED_MAX_GROUPS], hi[SAMPLED_MAX_GROUPS];
    int64_t n[SAMPLED_MAX_GROUPS];
    int count;
} target_groups;

static tema_status group_targets(const sampled_loss *l, const tema_targets *t, target_groups *gr, tema_err *err)
{
    memset(gr, 0, sizeof *gr);
    for (int64_t r = 0; r < t->rows; r++) {
        if (t->lo[r] >= t->hi[r] || t->target[r] < t->lo[r] || t->target[r] >= t->hi[r] || t->hi[r] > l->n_items)
            return tema_fail(err, TEMA_EINVAL, "loss sampled_softmax: row %lld: target %d outside its range [%d, %d)",
                             (long long)r, (int)t->target[r], (int)t->lo[r], (int)t->hi[r]);
        int gi = 0;
        while (gi < gr->count && (gr->lo[gi] != t->lo[r] || gr->hi[gi] != t->hi[r])) gi++;
        if (gi == gr->count) {
            if (gr->count == SAMPLED_MAX_GROUPS)
                return tema_fail(err, TEMA_EUNSUPPORTED, "loss sampled_softmax: more than %d distinct target ranges",
                                 SAMPLED_MAX_GROUPS);
            gr->lo[gi] = t->lo[r];
            gr->hi[gi] = t->hi[r];
            gr->count++;
        }
        gr->n[gi]++;
    }
    return TEMA_OK;
}

/* The host scratch grown to R rows, K candidates and the largest group's [Rg, K] corrections. */
static bool reserve_scratch(sampled_loss *l, const target_groups *gr, int64_t R, int64_t K)
{
    size_t corr_need = 0;
    for (int gi = 0; gi < gr->count; gi++)
        corr_need = corr_need > (size_t)(gr->n[gi] * K) ? corr_need : (size_t)(gr->n[gi] * K);
    size_t kcap = l->cand_cap;
    /* tcorr first: it shares cand's capacity, which only grows once both have */
    bool ok = grow((void **)&l->tcorr, &kcap, (size_t)K, sizeof(float)) &&
              grow((void **)&l->cand, &l->cand_cap, (size_t)K, sizeof(int32_t)) &&
              grow((void **)&l->corr, &l->corr_cap, corr_need, sizeof(float));
    if (ok && (size_t)R > l->rows_cap) {
        size_t c;
        c = l->rows_cap; ok = ok && grow((void **)&l->grp_rows, &c, (size_t)R, sizeof(int32_t));
        c = l->rows_cap; ok = ok && grow((void **)&l->grp_tgt, &c, (size_t)R, sizeof(int32_t));
        c = l->rows_cap; ok = ok && grow((void **)&l->w, &c, (size_t)R, sizeof(float));
        c = l->rows_cap; ok = ok && grow((void **)&l->grp_lo, &c, (size_t)R, sizeof(int32_t));
        c = l->rows_cap; ok = ok && grow((void **)&l->grp_hi, &c, (size_t)R, sizeof(int32_t));
        if (ok) l->rows_cap = (size_t)R;
    }
    return ok;
}

/* Group gi's rows (grp_rows, grp_tgt; weights and ranges at `done`, where the groups before
 * it end), its candidates (cand) and their corrections (corr [Rg, K], accidental hits masked). */
static void prepare_group(sampled_loss *l, const tema_targets *t, const target_groups *gr, int gi, int64_t done)
{
    const int32_t lo = gr->lo[gi], hi = gr->hi[gi];
    const int64_t R = t->rows, K = l->k, Rg = gr->n[gi];
    int64_t n = 0;
    for (int64_t r = 0; r < R; r++)
        if (t->lo[r] == lo && t->hi[r] == hi) {
            l->grp_rows[n] = t->row_index[r];
            l->grp_tgt[n] = t->target[r];
            l->w[done + n] = t->weight ? t->weight[r] : 1.0f;
            l->grp_lo[done + n] = lo;
            l->grp_hi[done + n] = hi;
            n++;
        }
    draw(l, t->seed, lo, hi, K, l->cand);
    const float log_k = logf((float)K);
    for (int64_t k = 0; k < K; k++) l->tcorr[k] = -log_k - log_q(l, l->cand[k], lo, hi);
    for (int64_t r = 0; r < Rg; r++)
        for (int64_t k = 0; k < K; k++) l->corr[r * K + k] = l->cand[k] == l->grp_tgt[r] ? MASKED_LOGIT : l->tcorr[k];
}

/* log p(target) [Rg] of one stream over one group: z_t - log(exp z_t + sum_k exp z_k). The
 * temperature scales h ([Rg, d]) rather than the logits, and z_t joins the candidates' log-sum-exp
 * as a [Rg] logaddexp rather than a concatenated column: [Rg, K] is the loss's largest shape, and
 * every tensor of it (and its gradient, zeroed in backward) costs a pass over memory. */
static tema_status group_logp(const tema_nn_api *nn, tema_graph *g, const tema_stream *st, const int32_t *rows,
                              const int32_t *tgt, const int32_t *cand, tema_tensor *corr, int64_t Rg, int64_t K,
                              tema_tensor **out, tema_err *err)
{
    tema_tensor *h = nn->gather_rows(g, st->h, rows, Rg);
    NN_CHECK(h);
    tema_tensor *e = nn->gather_rows(g, st->items, cand, K);
    NN_CHECK(e);
    tema_tensor *hs = nn->scale(g, h, st->inv_temp);
    NN_CHECK(hs);
    tema_tensor *z = nn->matmul(g, hs, false, e, true); /* [Rg, K] */
    NN_CHECK(z);
    NN_CHECK(z = nn->add(g, z, corr));
    tema_tensor *lz = nn->logsumexp(g, z);
    NN_CHECK(lz);
    tema_tensor *zt = nn->rowdot(g, h, st->items, tgt, st->inv_temp);
    NN_CHECK(zt);
    tema_tensor *terms[2] = {zt, lz};
    const float no_weight[2] = {0.0f, 0.0f};
    tema_tensor *lse = nn->logaddexp_n(g, terms, no_weight, 2);
    NN_CHECK(lse);
    NN_CHECK(lse = nn->scale(g, lse, -1.0f));
    NN_CHECK(*out = nn->add(g, zt, lse));
    return TEMA_OK;
}

static tema_status sampled_forward(void *self, tema_graph *g, const tema_stream *streams, int n_streams,
                                   const tema_targets *t, tema_tensor **loss, tema_err *err)
{
    sampled_loss *l = self;
    const tema_nn_api *nn = l->host->nn;
    const int64_t R = t->rows, K = l->k;
    if (n_streams < 1 || n_streams > TEMA_MAX_STREAMS)
        return tema_fail(err, TEMA_EINVAL, "loss sampled_softmax: %d streams (expected 1..%d)", n_streams,
                         TEMA_MAX_STREAMS);
    if (R < 1) return tema_fail(err, TEMA_EINVAL, "loss sampled_softmax: no target rows in this batch");
    target_groups gr;
    tema_status st = group_targets(l, t, &gr, err);
    if (st != TEMA_OK) return st;
    if (!reserve_scratch(l, &gr, R, K)) return tema_fail(err, TEMA_ENOMEM, "loss sampled_softmax: out of memory");

    tema_tensor *parts[TEMA_MAX_STREAMS][SAMPLED_MAX_GROUPS];
    int64_t done = 0;
    for (int gi = 0; gi < gr.count; gi++) {
        const int64_t Rg = gr.n[gi];
        prepare_group(l, t, &gr, gi, done);
        int32_t *rows = nn->ids(g, l->grp_rows, Rg), *tgt = nn->ids(g, l->grp_tgt, Rg), *cand = nn->ids(g, l->cand, K);
        NN_CHECK(rows && tgt && cand);
        int64_t cshape[2] = {Rg, K};
        tema_tensor *corr = nn->tensor(g, 2, cshape, l->corr);
        NN_CHECK(corr);
        for (int s = 0; s < n_streams; s++)
            if ((st = group_logp(nn, g, &streams[s], rows, tgt, cand, corr, Rg, K, &parts[s][gi], err)) != TEMA_OK)
                return st;
        done += Rg;
    }
    /* rows now run domain group by domain group: hand mixture_nll targets in that order */
    tema_tensor *logp[TEMA_MAX_STREAMS];
    for (int s = 0; s < n_streams; s++) {
        logp[s] = parts[s][0];
        if (gr.count > 1) {
            tema_tensor *cols[SAMPLED_MAX_GROUPS];
            for (int gi = 0; gi < gr.count; gi++) cols[gi] = parts[s][gi];
            NN_CHECK(logp[s] = nn->concat(g, cols, gr.count)); /* [R]: 1-D parts join end to end */
        }
    }
    tema_targets perm = *t;
    perm.row_index = l->grp_rows; /* not read by mixture_nll */
    perm.lo = l->grp_lo;
    perm.hi = l->grp_hi;
    perm.weight = l->w;
    perm.target = NULL;
    return l->host->mixture_nll(g, logp, streams, n_streams, &perm, loss, err);
}

static void sampled_destroy(void *self)
{
    sampled_loss *l = self;
    if (!l) return;
    free(l->cdf);
    free(l->cand);
    free(l->grp_rows);
    free(l->grp_tgt);
    free(l->corr);
    free(l->tcorr);
    free(l->w);
    free(l->grp_lo);
    free(l->grp_hi);
    free(l);
}

static const tema_loss_ops sampled_ops = {.create = sampled_create, .forward = sampled_forward,
                                          .destroy = sampled_destroy};

static const tema_plugin sampled_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_LOSS, "sampled_softmax", "1.1.0",
                       "sampled softmax with shared negatives and log-Q correction", sampled_options, sampled_ops)};
TEMA_PLUGIN_DEFINE(sampled_plugin)
