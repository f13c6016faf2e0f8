/* plugins/attention/pop.c - the most-popular baseline.
 *
 * Every position's state is the scalar 1 and every item's "embedding" is the constant
 * log(1 + training count), so the stream's score <h, item> = log(1 + count) ranks items by
 * their training frequency whatever the history (softmax over a domain = count+1 share).
 * Nothing is learnable: the trainer sees zero parameters and only evaluates. Items with
 * equal counts tie, which is what the tie-aware rank rules are for. */
#include <math.h>
#include <stdlib.h>

#include "../plugin_opts.h"
#include "tema/plugin.h"

static const tema_option pop_options[] = {
    {"smoothing", TEMA_OPT_FLOAT, "1", 0, 1e9, NULL, "score = log(smoothing + training count); must be > 0"},
};

typedef struct pop_attn {
    const tema_host *host;
    tema_tensor *logcount;   /* [n_items, 1] constant */
    float *ones;
    int64_t ones_cap;
} pop_attn;

static tema_status pop_create(const tema_model_info *info, const tema_cfg *opts, const int64_t *enc_dims,
                              const char *const *enc_modalities, int n_enc, void **self, tema_err *err)
{
    (void)enc_dims;
    (void)enc_modalities;
    (void)n_enc;
    const tema_host *host = info->host;
    double smoothing;
    tema_status st = plugin_opt_float(host, opts, "attention pop", "smoothing", &smoothing, err);
    if (st != TEMA_OK) return st;
    /* the table's range is inclusive; log(0 + count) is -inf for an unseen item */
    if (!(smoothing > 0)) return tema_fail(err, TEMA_EINVAL, "attention pop: smoothing must be > 0, got %g", smoothing);
    int64_t n = (int64_t)info->n_x + info->n_y;
    if (n < 1) return tema_fail(err, TEMA_EINVAL, "attention pop: the dataset has no items");
    pop_attn *a = calloc(1, sizeof *a);
    float *col = malloc((size_t)n * sizeof *col);
    if (!a || !col) {
        free(a);
        free(col);
        return tema_fail(err, TEMA_ENOMEM, "attention pop: out of memory");
    }
    for (int64_t i = 0; i < n; i++)
        col[i] = (float)log(smoothing + (double)(info->train_counts ? info->train_counts[i] : 0));
    int64_t shape[2] = {n, 1};
    a->host = host;
    a->logcount = host->nn->constant(info->params, "attention.pop.logcount", 2, shape, col);
    free(col);
    if (!a->logcount) {
        free(a);
        return tema_fail(err, TEMA_ENOMEM, "attention pop: cannot declare the count column");
    }
    *self = a;
    return TEMA_OK;
}

static tema_status pop_forward(void *self, tema_graph *g, const tema_batch *b, tema_tensor *const *items, int n_enc,
                               tema_stream *streams, int *n_streams, tema_err *err)
{
    (void)items;
    (void)n_enc;
    pop_attn *a = self;
    int64_t BL = (int64_t)b->B * b->L;
    if (BL > a->ones_cap) {
        float *p = realloc(a->ones, (size_t)BL * sizeof *p);
        if (!p) return tema_fail(err, TEMA_ENOMEM, "attention pop: out of memory");
        a->ones = p;
        for (int64_t i = a->ones_cap; i < BL; i++) p[i] = 1.0f;
        a->ones_cap = BL;
    }
    int64_t shape[2] = {BL, 1};
    tema_tensor *h = a->host->nn->tensor(g, 2, shape, a->ones);
    if (!h) return tema_fail(err, TEMA_EINTERNAL, "attention pop: %s", a->host->nn->error(g));
    streams[0] = (tema_stream){.h = h, .items = a->logcount, .weight = 1.0f, .inv_temp = 1.0f, .sequence = TEMA_SEQ_MERGED};
    *n_streams = 1;
    return TEMA_OK;
}

static void pop_destroy(void *self)
{
    pop_attn *a = self;
    if (!a) return;
    free(a->ones);
    free(a);
}

static const tema_attention_ops pop_ops = {.create = pop_create, .forward = pop_forward, .destroy = pop_destroy};

static const tema_plugin pop_plugin = {TEMA_PLUGIN_HEADER(TEMA_KIND_ATTENTION, "pop", "1.0.0",
                                                          "most-popular baseline: scores items by training count",
                                                          pop_options, pop_ops)};
TEMA_PLUGIN_DEFINE(pop_plugin)
