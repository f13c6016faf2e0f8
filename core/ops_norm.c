/* core/ops_norm.c - row-wise normalisations over the last dim: layernorm, l2norm, softmax,
 * logsumexp; each forward followed by its backward. */
#include "graph_internal.h"

/* ---------------------------------------------------------------- layernorm */

tema_tensor *layernorm_forward(tema_graph *g, tema_tensor *x, tema_tensor *gamma, tema_tensor *beta, float eps)
{
    if (!check_input(g, x, "layernorm") || (gamma && !check_input(g, gamma, "layernorm")) ||
        (beta && !check_input(g, beta, "layernorm")))
        return NULL;
    int64_t dim = last_dim(x), rows = rows_of(x);
    if ((gamma && gamma->size != dim) || (beta && beta->size != dim))
        return graph_fail(g, "layernorm: gamma/beta must have %lld elements (the last dim)", (long long)dim);
    if (!(eps > 0)) return graph_fail(g, "layernorm: eps must be > 0");
    tema_tensor *out = new_tensor(g, x->ndim, x->shape);
    float *stats = dev_floats(g, 2 * rows); /* mean, then rstd */
    if (!out || !stats) return NULL;
    g_be->layernorm(g_bs, rows, dim, eps, x->data, gamma ? gamma->data : NULL, beta ? beta->data : NULL, out->data,
                    stats, stats + rows);
    if (needs_grad(x) || needs_grad(gamma) || needs_grad(beta)) {
        node *n = tape_push(g, OP_LAYERNORM, out);
        if (n)
            n->layernorm = (struct op_layernorm){
                .x = x, .gamma = gamma, .beta = beta, .mean = stats, .rstd = stats + rows, .rows = rows, .dim = dim};
    }
    return out;
}

void layernorm_backward(tema_graph *g, const node *n)
{
    const struct op_layernorm *op = &n->layernorm;
    tema_tensor *x = op->x, *gamma = op->gamma, *beta = op->beta;
    float *dx = grad_of(g, x), *dg = gamma ? grad_of(g, gamma) : NULL, *dbeta = beta ? grad_of(g, beta) : NULL;
    g_be->layernorm_bwd(g_bs, op->rows, op->dim, x->data, gamma ? gamma->data : NULL, op->mean, op->rstd,
                        n->out->grad, dx, dg, dbeta);
}

/* ---------------------------------------------------------------- l2norm */

tema_tensor *l2norm_forward(tema_graph *g, tema_tensor *x, float eps)
{
    if (!check_input(g, x, "l2norm")) return NULL;
    if (!(eps > 0)) return graph_fail(g, "l2norm: eps must be > 0");
    int64_t dim = last_dim(x), rows = rows_of(x);
    tema_tensor *out = new_tensor(g, x->ndim, x->shape);
    float *norm = dev_floats(g, rows);
    if (!out || !norm) return NULL;
    g_be->l2norm(g_bs, rows, dim, eps, x->data, out->data, norm);
    if (needs_grad(x)) {
        node *n = tape_push(g, OP_L2NORM, out);
        if (n) n->l2norm = (struct op_l2norm){.x = x, .norm = norm, .eps = eps, .rows = rows, .dim = dim};
    }
    return out;
}

void l2norm_backward(tema_graph *g, const node *n)
{
    const struct op_l2norm *op = &n->l2norm;
    float *dx = grad_of(g, op->x);
    if (dx) g_be->l2norm_bwd(g_bs, op->rows, op->dim, op->eps, n->out->data, op->norm, n->out->grad, dx);
}

/* ---------------------------------------------------------------- softmax */

tema_tensor *softmax_forward(tema_graph *g, tema_tensor *x, const uint8_t *mask, bool causal)
{
    if (!check_input(g, x, "softmax")) return NULL;
    int64_t dim = last_dim(x), rows = rows_of(x);
    tema_tensor *out = new_tensor(g, x->ndim, x->shape);
    if (!out) return NULL;
    uint8_t *dmask = NULL;
    if (mask) {
        dmask = dev_alloc(g, (size_t)(x->size > 0 ? x->size : 1));
        if (!dmask) return NULL;
        g_be->to_device(g_bs, dmask, mask, (size_t)x->size);
    }
    g_be->softmax(g_bs, rows, dim, dmask, causal, x->data, out->data);
    if (needs_grad(x)) {
        node *n = tape_push(g, OP_SOFTMAX, out);
        if (n) n->softmax = (struct op_softmax){.x = x, .rows = rows, .dim = dim};
    }
    return out;
}

/* Masked entries have out == 0, so the gradient needs no mask. */
void softmax_backward(tema_graph *g, const node *n)
{
    const struct op_softmax *op = &n->softmax;
    float *dx = grad_of(g, op->x);
    if (dx) g_be->softmax_bwd(g_bs, op->rows, op->dim, n->out->data, n->out->grad, dx);
}

/* ---------------------------------------------------------------- logsumexp */

tema_tensor *logsumexp_forward(tema_graph *g, tema_tensor *x)
{
    if (!check_input(g, x, "logsumexp")) return NULL;
    int64_t dim = last_dim(x), rows = rows_of(x);
    /* [..., dim] -> [...], and a vector to [1]. */
    tema_tensor *out = x->ndim == 1 ? new_tensor(g, 1, (int64_t[]){1}) : new_tensor(g, x->ndim - 1, x->shape);
    if (!out) return NULL;
    g_be->logsumexp(g_bs, rows, dim, x->data, out->data);
    if (needs_grad(x)) {
        node *n = tape_push(g, OP_LOGSUMEXP, out);
        if (n) n->logsumexp = (struct op_logsumexp){.x = x, .rows = rows, .dim = dim};
    }
    return out;
}

void logsumexp_backward(tema_graph *g, const node *n)
{
    const struct op_logsumexp *op = &n->logsumexp;
    float *dx = grad_of(g, op->x);
    if (dx) g_be->logsumexp_bwd(g_bs, op->rows, op->dim, op->x->data, n->out->data, n->out->grad, dx);
}
