/* core/losses.c - the training objective the host offers plugins (host->mixture_nll, ABI 1.1):
 * the mixture of a model's scoring streams, grouped by the sequence they summarise (paper Eq.
 * 13-16), as a negative log-likelihood on the autograd. Loss plugins call it; the evaluation
 * uses the same grouping (tema_stream_groups) to rank. */
#include "losses.h"

#include <math.h>
#include <stdlib.h>

#include "engine.h"

/* Group weights inside each sequence group (log w_k / W_g) and the group of each stream. */
int tema_stream_groups(const tema_stream *streams, int n, int *group, float *logw)
{
    double total[3] = {0, 0, 0};
    for (int k = 0; k < n; k++) total[streams[k].sequence % 3] += streams[k].weight;
    int mask = 0;
    for (int k = 0; k < n; k++) {
        int s = streams[k].sequence % 3;
        group[k] = s;
        logw[k] = (float)log(streams[k].weight / total[s]);
        mask |= 1 << s;
    }
    return mask;
}

tema_status tema_mixture_nll(tema_graph *g, tema_tensor *const *logp, const tema_stream *streams, int n,
                               const tema_targets *t, tema_tensor **loss, tema_err *err)
{
    const tema_nn_api *nn = tema_nn();
    if (n < 1 || n > TEMA_MAX_STREAMS)
        return tema_fail(err, TEMA_EINVAL, "mixture_nll: %d streams (expected 1..%d)", n, TEMA_MAX_STREAMS);
    const int64_t R = t->rows;
    for (int k = 0; k < n; k++) {
        if (!logp[k] || logp[k]->size != R)
            return tema_fail(err, TEMA_EINVAL, "mixture_nll: stream %d: log-probabilities must be [%lld]", k,
                             (long long)R);
        if (!(streams[k].weight > 0) || (unsigned)streams[k].sequence > 2u)
            return tema_fail(err, TEMA_EINVAL, "mixture_nll: stream %d has weight %g / sequence %d (need weight > 0, "
                                               "sequence 0..2)", k, (double)streams[k].weight, (int)streams[k].sequence);
    }
    int group[TEMA_MAX_STREAMS];
    float logw[TEMA_MAX_STREAMS];
    int mask = tema_stream_groups(streams, n, group, logw);
    /* targets older than ABI 1.1 carry no sequence weights: every group weighs 1 */
    const bool has_sw = t->struct_size >= offsetof(tema_targets, seq_weight) + sizeof t->seq_weight;
    double wsum = 0;
    for (int64_t r = 0; r < R; r++) wsum += t->weight ? t->weight[r] : 1.0;
    if (!(wsum > 0)) return tema_fail(err, TEMA_EINVAL, "mixture_nll: the row weights sum to %g", wsum);
    float *wg = malloc((size_t)(R > 0 ? R : 1) * sizeof *wg);
    if (!wg) return tema_fail(err, TEMA_ENOMEM, "mixture_nll: out of memory");
    tema_tensor *total = NULL;
    tema_status st = TEMA_OK;
    for (int s = 0; s < 3 && st == TEMA_OK; s++) {
        if (!(mask & (1 << s))) continue;
        tema_tensor *xs[TEMA_MAX_STREAMS];
        float lw[TEMA_MAX_STREAMS];
        int m = 0;
        for (int k = 0; k < n; k++)
            if (group[k] == s) {
                xs[m] = logp[k];
                lw[m++] = logw[k];
            }
        double gsum = 0;
        for (int64_t r = 0; r < R; r++) {
            int d = t->lo[r] == 0 ? 0 : 1;
            float sw = has_sw ? t->seq_weight[d][s] : 1.0f;
            wg[r] = (t->weight ? t->weight[r] : 1.0f) * sw;
            gsum += wg[r];
        }
        if (!(gsum > 0)) continue;
        tema_tensor *lp = xs[0];
        if (m > 1 || lw[0] != 0.0f) lp = nn->logaddexp_n(g, xs, lw, m);
        float *w = lp ? (float *)nn->ids(g, (const int32_t *)wg, R) : NULL;
        tema_tensor *term = w ? nn->weighted_mean(g, lp, w) : NULL;
        if (term) term = nn->scale(g, term, (float)(-gsum / wsum));
        if (term && total) term = nn->add(g, total, term);
        if (!term) st = tema_fail(err, TEMA_EINTERNAL, "mixture_nll: %s", nn->error(g));
        total = term;
    }
    free(wg);
    if (st != TEMA_OK) return st;
    if (!total)
        return tema_fail(err, TEMA_EINVAL, "mixture_nll: every sequence group has weight 0 for these targets; hint: "
                                           "check the attention plugin's sequence weights (lambdas)");
    *loss = total;
    return TEMA_OK;
}
