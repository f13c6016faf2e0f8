/* plugins/loss/full_softmax.c - cross-entropy over every item of the target's domain.
 *
 * For row r with target t and domain [lo, hi):
 *   log p_k(t) = <h_k[r], items_k[t]> tau_k - log sum_{j in [lo,hi)} exp(<h_k[r], items_k[j]> tau_k)
 *   loss       = host->mixture_nll(log p_k(t))  (one stream: mean of -log p(t); several:
 *                sequence groups of modality mixtures, see tema_stream)
 * The log-sum-exp runs in chunks of `chunk` items (nn->lse_chunked), so the [rows, items]
 * logits matrix is never stored, forward or backward. `positions` is read by the trainer:
 * it decides which rows (the last `positions` positions with a target) are passed in. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../plugin_opts.h"
#include "tema/plugin.h"

static const tema_option full_options[] = {
    {"positions", TEMA_OPT_INT, "10", 1, 100000, NULL, "train on the last N positions of each sequence that have a target"},
    {"chunk", TEMA_OPT_INT, "4096", 1, 1 << 24, NULL, "items per chunk of the log-sum-exp (memory vs. speed)"},
};

typedef struct full_loss {
    const tema_host *host;
    int64_t chunk;
} full_loss;

static tema_status full_create(const tema_model_info *info, const tema_cfg *opts, void **self, tema_err *err)
{
    const tema_host *host = info->host;
    int64_t chunk;
    tema_status st = plugin_opt_int(host, opts, "loss full_softmax", "chunk", &chunk, err);
    if (st != TEMA_OK) return st;
    full_loss *l = calloc(1, sizeof *l);
    if (!l) return tema_fail(err, TEMA_ENOMEM, "loss full_softmax: out of memory");
    l->host = host;
    l->chunk = chunk;
    *self = l;
    return TEMA_OK;
}

#define NN_CHECK(x)                                                                             \
    do {                                                                                        \
        if (!(x)) return tema_fail(err, TEMA_EINTERNAL, "loss full_softmax: %s", nn->error(g)); \
    } while (0)

static tema_status full_forward(void *self, tema_graph *g, const tema_stream *streams, int n_streams,
                                const tema_targets *t, tema_tensor **loss, tema_err *err)
{
    full_loss *l = self;
    const tema_nn_api *nn = l->host->nn;
    if (n_streams < 1 || n_streams > TEMA_MAX_STREAMS)
        return tema_fail(err, TEMA_EINVAL, "loss full_softmax: %d streams (expected 1..%d)", n_streams, TEMA_MAX_STREAMS);
    if (t->rows < 1) return tema_fail(err, TEMA_EINVAL, "loss full_softmax: no target rows in this batch");
    const int64_t R = t->rows;
    int32_t *rows = nn->ids(g, t->row_index, R), *tgt = nn->ids(g, t->target, R), *lo = nn->ids(g, t->lo, R),
            *hi = nn->ids(g, t->hi, R);
    NN_CHECK(rows && tgt && lo && hi);

    tema_tensor *logp[TEMA_MAX_STREAMS];
    for (int k = 0; k < n_streams; k++) {
        const tema_stream *s = &streams[k];
        tema_tensor *h = nn->gather_rows(g, s->h, rows, R);
        NN_CHECK(h);
        tema_tensor *pos = nn->rowdot(g, h, s->items, tgt, s->inv_temp);
        NN_CHECK(pos);
        tema_tensor *lse = nn->lse_chunked(g, h, s->items, lo, hi, s->inv_temp, l->chunk);
        NN_CHECK(lse);
        NN_CHECK(lse = nn->scale(g, lse, -1.0f));
        NN_CHECK(logp[k] = nn->add(g, pos, lse));
    }
    return l->host->mixture_nll(g, logp, streams, n_streams, t, loss, err);
}

static void full_destroy(void *self) { free(self); }

static const tema_loss_ops full_ops = {.create = full_create, .forward = full_forward, .destroy = full_destroy};

static const tema_plugin full_plugin = {TEMA_PLUGIN_HEADER(TEMA_KIND_LOSS, "full_softmax", "1.1.0",
                                                           "cross-entropy over the target's whole domain (chunked)",
                                                           full_options, full_ops)};
TEMA_PLUGIN_DEFINE(full_plugin)
