/* plugins/encoder/frozen.h - what the text and image encoders share: frozen item features
 * [n_items, F] held as a constant of the parameter store, and the learnable projection
 * items = features @ W^T (+ b) to the encoder's width, the only part that trains.
 *
 * Header-only (static functions) because every plugin is one .so built from one file. */
#ifndef TEMA_PLUGINS_ENCODER_FROZEN_H
#define TEMA_PLUGINS_ENCODER_FROZEN_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tema/npy.h"
#include "tema/plugin.h"

typedef struct frozen_proj {
    tema_tensor *features; /* [n_items, F] constant */
    tema_tensor *weight;   /* [dim, F] learnable */
    tema_tensor *bias;     /* [dim] learnable, or NULL */
    int64_t n_items, n_features, dim;
} frozen_proj;

/* Rows to unit length; all-zero rows (items with nothing to encode) stay zero. */
static inline void frozen_l2_normalize(float *x, int64_t rows, int64_t cols)
{
    for (int64_t r = 0; r < rows; r++) {
        float *row = x + r * cols;
        double ss = 0;
        for (int64_t j = 0; j < cols; j++) ss += (double)row[j] * row[j];
        if (ss <= 0) continue;
        const double invd = 1.0 / sqrt(ss);
        const float inv = (float)invd;
        if (isfinite(inv))
            for (int64_t j = 0; j < cols; j++) row[j] *= inv;
        else /* denormal rows (1e-45): 1/|x| overflows a float, so divide in double */
            for (int64_t j = 0; j < cols; j++) row[j] = (float)((double)row[j] * invd);
    }
}

/* Declare the constant (copied from host_features, which stays the caller's) and the
 * projection. `prefix` names the parameters: "<prefix>.features", ".proj.weight", ".proj.bias". */
static inline tema_status frozen_declare(frozen_proj *fp, const tema_model_info *info, const char *who, const char *prefix,
                                  const float *host_features, int64_t n_items, int64_t n_features, int64_t dim,
                                  bool bias, tema_err *err)
{
    const tema_nn_api *nn = info->host->nn;
    char name[128];
    int64_t fshape[2] = {n_items, n_features}, wshape[2] = {dim, n_features}, bshape[1] = {dim};
    *fp = (frozen_proj){.n_items = n_items, .n_features = n_features, .dim = dim};
    snprintf(name, sizeof name, "%s.features", prefix);
    fp->features = nn->constant(info->params, name, 2, fshape, host_features);
    snprintf(name, sizeof name, "%s.proj.weight", prefix);
    fp->weight = nn->param(info->params, name, 2, wshape, TEMA_INIT_XAVIER, 1.0f, 0);
    if (bias) {
        snprintf(name, sizeof name, "%s.proj.bias", prefix);
        fp->bias = nn->param(info->params, name, 1, bshape, TEMA_INIT_ZEROS, 0.0f, TEMA_TENSOR_NO_DECAY);
    }
    if (!fp->features || !fp->weight || (bias && !fp->bias))
        return tema_fail(err, TEMA_ENOMEM,
                         "encoder %s: cannot declare the features [%lld, %lld] and projection [%lld, %lld]; hint: "
                         "parameter names must be unique (one %s encoder of this kind per model) and memory must "
                         "suffice",
                         who, (long long)n_items, (long long)n_features, (long long)dim, (long long)n_features, who);
    return TEMA_OK;
}

static inline tema_status frozen_forward(const frozen_proj *fp, tema_graph *g, const tema_nn_api *nn, const char *who,
                                  tema_tensor **items, tema_err *err)
{
    *items = nn->linear(g, fp->features, fp->weight, fp->bias);
    if (!*items) return tema_fail(err, TEMA_EINTERNAL, "encoder %s: %s", who, nn->error(g));
    return TEMA_OK;
}

/* Load a feature file with one row per item and check it fits the model. */
static inline tema_status frozen_load(const tema_model_info *info, const char *who, const char *path, bool normalize,
                               tema_npy_matrix *m, tema_err *err)
{
    const int64_t n_items = (int64_t)info->n_x + info->n_y;
    char what[96];
    snprintf(what, sizeof what, "items (%d in X + %d in Y)", (int)info->n_x, (int)info->n_y);
    tema_err e = {0};
    tema_status st = tema_npy_read(path, n_items, what, m, &e);
    if (st != TEMA_OK) return tema_fail(err, st, "encoder %s: %s", who, e.msg);
    if (m->cols < 1) {
        tema_npy_free(m);
        return tema_fail(err, TEMA_EINVAL, "encoder %s: %s has 0 feature columns; hint: save an [items, F] matrix",
                         who, path);
    }
    if (normalize) frozen_l2_normalize(m->data, m->rows, m->cols);
    return TEMA_OK;
}

#endif
