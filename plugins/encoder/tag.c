/* plugins/encoder/tag.c - the tag modality (paper III.D and III.E.4, Eq. 3/7): item v's
 * embedding is sum_i w_i^(v) E_tag[i] over its selected tags, with E_tag [n_tags, dim] a
 * learnable table and w the tag_repr weights of the experiment's tag pipeline
 * (tema_model_info.item_tags). Items without tags get a zero row, or with
 * `untagged: learned` one shared learnable "no tag" embedding (an extra table row).
 *
 * Two ways to compute the same thing from the generic ops (`method`):
 *  - dense: one matmul of a constant weight matrix W [n_items, n_tags] by the table; exact
 *    Eq. 7, cheap while n_tags is small (tag vocabularies of tens to hundreds of tags);
 *  - padded: every item padded to K = most tags of any item, an embedding lookup of the
 *    padded ids [n_items*K, dim] (-1 = zeros) and a batched [1,K] @ [K,dim] product per
 *    item; memory grows with K*dim instead of n_tags, for very large vocabularies.
 *  `auto` takes dense unless W would exceed 256 MB. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../plugin_opts.h"
#include "tema/plugin.h"

static const tema_option tag_options[] = {
    {"dim", TEMA_OPT_INT, "256", 1, 65536, NULL, "tag embedding width d_t"},
    {"init_std", TEMA_OPT_FLOAT, "0.02", 0, 10, NULL, "standard deviation of the N(0, std^2) table initialisation"},
    {"untagged", TEMA_OPT_ENUM, "zero", 0, -1, "zero|learned",
     "items without tags: a zero row, or one shared learnable no-tag embedding"},
    {"method", TEMA_OPT_ENUM, "auto", 0, -1, "auto|dense|padded",
     "dense weight matrix @ table, or padded lookup + batched product (same values)"},
};

typedef struct tag_encoder {
    const tema_nn_api *nn;
    tema_tensor *table;    /* [n_rows, dim]: n_tags (+1 no-tag row) */
    tema_tensor *weights;  /* dense: [n_items, n_rows]; padded: [n_items, 1, K] */
    int32_t *ids;          /* padded: [n_items * K], -1 = padding; plugin-owned */
    int64_t n_items, n_rows, dim, K;
    bool padded;
} tag_encoder;

static bool info_has_tags(const tema_model_info *info)
{
    return info->struct_size >= offsetof(tema_model_info, item_tags) + sizeof(void *) && info->n_tags > 0;
}

/* The options, each checked: untagged is zero|learned, method auto|dense|padded. */
static tema_status read_options(const tema_host *host, const tema_cfg *opts, int64_t *dim, double *std, bool *learned,
                                const char **method, tema_err *err)
{
    const char *untagged;
    tema_status st;
    if ((st = plugin_opt_int(host, opts, "encoder tag", "dim", dim, err)) != TEMA_OK ||
        (st = plugin_opt_float(host, opts, "encoder tag", "init_std", std, err)) != TEMA_OK ||
        (st = plugin_opt_str(host, opts, "encoder tag", "untagged", &untagged, err)) != TEMA_OK ||
        (st = plugin_opt_str(host, opts, "encoder tag", "method", method, err)) != TEMA_OK)
        return st;
    *learned = !strcmp(untagged, "learned");
    if (!*learned && strcmp(untagged, "zero") != 0)
        return tema_fail(err, TEMA_EINVAL, "encoder tag: option 'untagged' is '%s'; hint: use zero or learned", untagged);
    if (strcmp(*method, "auto") && strcmp(*method, "dense") && strcmp(*method, "padded"))
        return tema_fail(err, TEMA_EINVAL, "encoder tag: option 'method' is '%s'; hint: use auto, dense or padded",
                         *method);
    return TEMA_OK;
}

/* The item-tag selection of the n items, checked (it comes from plugins), with the most tags
 * of any item (K) and the number of untagged items. */
static tema_status scan_selection(const tema_model_info *info, int64_t n, int64_t *K_out, int64_t *n_untagged_out,
                                  tema_err *err)
{
    const tema_tag_selection *sel = info->item_tags;
    if (!sel || !sel->off || sel->n_items != n)
        return tema_fail(err, TEMA_EINTERNAL, "encoder tag: %d tags but no item-tag selection for the %lld items",
                         (int)info->n_tags, (long long)n);
    int64_t K = 0, n_untagged = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t c = sel->off[i + 1] - sel->off[i];
        if (c < 0)
            return tema_fail(err, TEMA_EINTERNAL, "encoder tag: item %lld has a negative tag count", (long long)i);
        if (c > K) K = c;
        n_untagged += c == 0;
        for (int64_t k = sel->off[i]; k < sel->off[i + 1]; k++) {
            if (sel->tag[k] < 0 || sel->tag[k] >= info->n_tags)
                return tema_fail(err, TEMA_EINTERNAL, "encoder tag: item %lld has tag id %d outside [0, %d)",
                                 (long long)i, (int)sel->tag[k], (int)info->n_tags);
            if (!isfinite(sel->score[k]))
                return tema_fail(err, TEMA_EINVAL,
                                 "encoder tag: item %lld, tag %d has a non-finite weight; hint: check the tag_repr "
                                 "plugin and the item-tag scores",
                                 (long long)i, (int)sel->tag[k]);
        }
    }
    *K_out = K;
    *n_untagged_out = n_untagged;
    return TEMA_OK;
}

/* dense: W [n_items, n_rows] with the item's tag weights, a learned no-tag row's weight 1.
 * NULL when out of memory. */
static float *dense_weights(const tag_encoder *e, const tema_model_info *info, bool learned)
{
    const tema_tag_selection *sel = info->item_tags;
    const int64_t n = e->n_items, n_rows = e->n_rows;
    float *w = calloc((size_t)(n * n_rows), sizeof *w);
    if (!w) return NULL;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t k = sel->off[i]; k < sel->off[i + 1]; k++) w[i * n_rows + sel->tag[k]] += sel->score[k];
        if (learned && sel->off[i + 1] == sel->off[i]) w[i * n_rows + info->n_tags] = 1.0f;
    }
    return w;
}

/* padded: e->ids [n_items * K] (-1 = padding) and the weights [n_items, 1, K] returned.
 * NULL when out of memory (e->ids may then be allocated: the caller frees it). */
static float *padded_weights(tag_encoder *e, const tema_model_info *info, bool learned)
{
    const tema_tag_selection *sel = info->item_tags;
    const int64_t n = e->n_items, K = e->K;
    float *w = calloc((size_t)(n * K), sizeof *w);
    e->ids = malloc((size_t)(n * K) * sizeof *e->ids);
    if (!w || !e->ids) {
        free(w);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t c = 0;
        for (int64_t k = sel->off[i]; k < sel->off[i + 1]; k++, c++) {
            e->ids[i * K + c] = sel->tag[k];
            w[i * K + c] = sel->score[k];
        }
        if (learned && c == 0) {
            e->ids[i * K + c] = info->n_tags;
            w[i * K + c] = 1.0f;
            c++;
        }
        for (; c < K; c++) e->ids[i * K + c] = -1;
    }
    return w;
}

static tema_status tag_create(const tema_model_info *info, const tema_cfg *opts, void **self, tema_err *err)
{
    const tema_host *host = info->host;
    const tema_nn_api *nn = host->nn;
    int64_t dim;
    double std;
    bool learned;
    const char *method;
    tema_status st = read_options(host, opts, &dim, &std, &learned, &method, err);
    if (st != TEMA_OK) return st;
    if (info->n_x < 1 || info->n_y < 0)
        return tema_fail(err, TEMA_EINVAL, "encoder tag: the dataset has no items (n_x=%d, n_y=%d)", (int)info->n_x,
                         (int)info->n_y);
    if (!info_has_tags(info))
        return tema_fail(err, TEMA_EUNSUPPORTED,
                         "encoder tag: the experiment configures no tags (n_tags = 0), so there is nothing to embed; "
                         "hint: configure the tag pipeline (tagger, tag_select, tag_repr) or remove the tag encoder "
                         "from model.encoders");
    const int64_t n = (int64_t)info->n_x + info->n_y;
    int64_t K = 0, n_untagged = 0;
    if ((st = scan_selection(info, n, &K, &n_untagged, err)) != TEMA_OK) return st;
    if (learned && K == 0) K = 1; /* every item untagged: each gets the no-tag row */
    const int64_t n_rows = info->n_tags + (learned ? 1 : 0);
    bool padded = !strcmp(method, "padded");
    if (!strcmp(method, "auto")) padded = (uint64_t)n * (uint64_t)n_rows * sizeof(float) > ((uint64_t)256 << 20);
    if (padded && K == 0) padded = false; /* no item has a tag: the dense form is all zeros and tiny per row */

    tag_encoder *e = calloc(1, sizeof *e);
    if (!e) return tema_fail(err, TEMA_ENOMEM, "encoder tag: out of memory");
    e->nn = nn;
    e->n_items = n;
    e->n_rows = n_rows;
    e->dim = dim;
    e->K = K;
    e->padded = padded;
    int64_t tshape[2] = {n_rows, dim};
    e->table = nn->param(info->params, "encoder.tag.table", 2, tshape, TEMA_INIT_NORMAL, (float)std, 0);
    float *w = padded ? padded_weights(e, info, learned) : dense_weights(e, info, learned);
    if (!w) {
        free(e->ids);
        free(e);
        return tema_fail(err, TEMA_ENOMEM, "encoder tag: out of memory for the item-tag weights of %lld items",
                         (long long)n);
    }
    int64_t dshape[2] = {n, n_rows}, pshape[3] = {n, 1, K};
    e->weights = padded ? nn->constant(info->params, "encoder.tag.weights", 3, pshape, w)
                        : nn->constant(info->params, "encoder.tag.weights", 2, dshape, w);
    free(w);
    if (!e->table || !e->weights) {
        free(e->ids);
        free(e);
        return tema_fail(err, TEMA_ENOMEM,
                         "encoder tag: cannot declare the tag table [%lld, %lld] and weights; hint: one tag encoder "
                         "per model (parameter names are fixed), and enough memory",
                         (long long)n_rows, (long long)dim);
    }
    if (host->log)
        host->log(TEMA_LOG_INFO, "encoder tag", "%d tags, %lld of %lld items untagged (%s), at most %lld tags per item, %s",
                  (int)info->n_tags, (long long)n_untagged, (long long)n, learned ? "learned no-tag row" : "zero rows",
                  (long long)K, padded ? "padded lookup" : "dense weights");
    *self = e;
    return TEMA_OK;
}

static tema_status tag_forward(void *self, tema_graph *g, tema_tensor **items, tema_err *err)
{
    tag_encoder *e = self;
    const tema_nn_api *nn = e->nn;
    tema_tensor *out;
    if (!e->padded) {
        out = nn->matmul(g, e->weights, false, e->table, false);
    } else {
        tema_tensor *emb = nn->embedding(g, e->table, e->ids, e->n_items * e->K);
        int64_t s3[3] = {e->n_items, e->K, e->dim}, s2[2] = {e->n_items, e->dim};
        tema_tensor *emb3 = emb ? nn->reshape(g, emb, 3, s3) : NULL;
        tema_tensor *sum3 = emb3 ? nn->matmul(g, e->weights, false, emb3, false) : NULL;
        out = sum3 ? nn->reshape(g, sum3, 2, s2) : NULL;
    }
    if (!out) return tema_fail(err, TEMA_EINTERNAL, "encoder tag: %s", nn->error(g));
    *items = out;
    return TEMA_OK;
}

static int64_t tag_dim(const void *self) { return ((const tag_encoder *)self)->dim; }
static const char *tag_modality(const void *self) { (void)self; return "tag"; }
static void tag_destroy(void *self)
{
    tag_encoder *e = self;
    if (!e) return;
    free(e->ids);
    free(e);
}

static const tema_encoder_ops tag_ops = {
    .create = tag_create, .forward = tag_forward, .dim = tag_dim, .modality = tag_modality, .destroy = tag_destroy};

static const tema_plugin tag_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_ENCODER, "tag", "1.0.0",
                       "weighted sum of learnable tag embeddings over each item's selected tags (Eq. 3/7)",
                       tag_options, tag_ops)};
TEMA_PLUGIN_DEFINE(tag_plugin)
