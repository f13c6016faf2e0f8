/* plugins/encoder/id.c - one learnable embedding per item (the ID modality).
 *
 * The table is [n_x + n_y, dim], initialised N(0, 0.02^2) as in BERT4Rec / most
 * transformer recommenders (SASRec's reference code uses xavier; with the sqrt(d) input
 * scaling of the `single` attention both train alike, and the small normal keeps the
 * initial output logits near zero, i.e. a near-uniform first softmax). */
#include <stdlib.h>

#include "../plugin_opts.h"
#include "tema/plugin.h"

static const tema_option id_options[] = {
    {"dim", TEMA_OPT_INT, "256", 1, 65536, NULL, "embedding width d"},
    {"init_std", TEMA_OPT_FLOAT, "0.02", 0, 10, NULL, "standard deviation of the N(0, std^2) initialisation"},
};

typedef struct id_encoder {
    tema_tensor *table;
    int64_t dim;
} id_encoder;

static tema_status id_create(const tema_model_info *info, const tema_cfg *opts, void **self, tema_err *err)
{
    const tema_host *host = info->host;
    int64_t dim;
    double std;
    tema_status st;
    if ((st = plugin_opt_int(host, opts, "encoder id", "dim", &dim, err)) != TEMA_OK ||
        (st = plugin_opt_float(host, opts, "encoder id", "init_std", &std, err)) != TEMA_OK)
        return st;
    if (info->n_x < 1 || info->n_y < 0)
        return tema_fail(err, TEMA_EINVAL, "encoder id: the dataset has no items (n_x=%d, n_y=%d)", (int)info->n_x,
                         (int)info->n_y);
    id_encoder *e = calloc(1, sizeof *e);
    if (!e) return tema_fail(err, TEMA_ENOMEM, "encoder id: out of memory");
    int64_t shape[2] = {(int64_t)info->n_x + info->n_y, dim};
    e->table = host->nn->param(info->params, "encoder.id.items", 2, shape, TEMA_INIT_NORMAL, (float)std, 0);
    if (!e->table) {
        free(e);
        return tema_fail(err, TEMA_ENOMEM, "encoder id: cannot declare the item table [%lld, %lld]",
                         (long long)shape[0], (long long)shape[1]);
    }
    e->dim = dim;
    *self = e;
    return TEMA_OK;
}

static tema_status id_forward(void *self, tema_graph *g, tema_tensor **items, tema_err *err)
{
    (void)g;
    (void)err;
    *items = ((id_encoder *)self)->table;
    return TEMA_OK;
}

static int64_t id_dim(const void *self) { return ((const id_encoder *)self)->dim; }
static const char *id_modality(const void *self) { (void)self; return "id"; }
static void id_destroy(void *self) { free(self); }

static const tema_encoder_ops id_ops = {
    .create = id_create, .forward = id_forward, .dim = id_dim, .modality = id_modality, .destroy = id_destroy};

static const tema_plugin id_plugin = {TEMA_PLUGIN_HEADER(TEMA_KIND_ENCODER, "id", "1.0.0",
                                                         "learnable item-ID embeddings [n_items, dim]", id_options,
                                                         id_ops)};
TEMA_PLUGIN_DEFINE(id_plugin)
