/* core/ops_elementwise.c - elementwise ops: add and mul (with a last-dim broadcast),
 * mask_rows, the unary family (scale, gelu, relu, sigmoid, tanh), dropout, logaddexp_n;
 * each forward followed by its backward. */
#include <math.h>
#include <string.h>

#include "graph_internal.h"

/* ---------------------------------------------------------------- add, mul */

static tema_tensor *binary_forward(tema_graph *g, tema_tensor *a, tema_tensor *b, tema_binary_op fn,
                                   const char *what)
{
    if (!check_input(g, a, what) || !check_input(g, b, what)) return NULL;
    int64_t bn;
    if (b->size == a->size) bn = a->size;
    else if (b->ndim == 1 && b->size == last_dim(a)) bn = b->size;
    else {
        char s1[96], s2[96];
        return graph_fail(g, "%s: shapes %s and %s: b must have a's shape or be [last dim]", what,
                          shape_str(a, s1, sizeof s1), shape_str(b, s2, sizeof s2));
    }
    tema_tensor *out = new_tensor(g, a->ndim, a->shape);
    if (!out) return NULL;
    if (bn == 0) return out;
    g_be->binary(g_bs, fn, a->size, a->data, b->data, bn, out->data);
    if (needs_grad(a) || needs_grad(b)) {
        node *n = tape_push(g, OP_BINARY, out);
        if (n) n->binary = (struct op_binary){.a = a, .b = b, .fn = fn, .b_size = bn};
    }
    return out;
}

tema_tensor *add_forward(tema_graph *g, tema_tensor *a, tema_tensor *b)
{
    return binary_forward(g, a, b, TEMA_BINARY_ADD, "add");
}

tema_tensor *mul_forward(tema_graph *g, tema_tensor *a, tema_tensor *b)
{
    return binary_forward(g, a, b, TEMA_BINARY_MUL, "mul");
}

/* d(a + b)/da is dout itself: a's gradient, when this is its first writer, starts as a copy
 * of dout (and b's, when b is not broadcast) instead of zeros plus an accumulating pass (the
 * zeroing of first-written gradients was 12% of a TEMA-LLM step at q = 64). When a and b are
 * one tensor, the copy makes b's gradient already written, so it accumulates the second dout. */
static bool add_grad_by_copy(tema_graph *g, tema_tensor *t, const float *dout)
{
    if (!needs_grad(t) || t->grad) return false;
    if (!(t->grad = dev_floats(g, t->size))) return false;
    g_be->copy(g_bs, t->grad, dout, (size_t)t->size * sizeof(float));
    return true;
}

void binary_backward(tema_graph *g, const node *n)
{
    const struct op_binary *op = &n->binary;
    const float *dout = n->out->grad;
    bool a_done = false, b_done = false;
    if (op->fn == TEMA_BINARY_ADD) {
        a_done = add_grad_by_copy(g, op->a, dout);
        b_done = op->b_size == op->a->size && add_grad_by_copy(g, op->b, dout);
    }
    float *da = a_done ? NULL : grad_of(g, op->a), *db = b_done ? NULL : grad_of(g, op->b);
    if (da || db)
        g_be->binary_bwd(g_bs, op->fn, op->a->size, op->a->data, op->b->data, op->b_size, dout, da, db);
}

/* ---------------------------------------------------------------- mask_rows */

tema_tensor *mask_rows_forward(tema_graph *g, tema_tensor *x, const uint8_t *keep)
{
    if (!check_input(g, x, "mask_rows")) return NULL;
    if (!keep && x->size) return graph_fail(g, "mask_rows: mask is NULL");
    float *hm = host_alloc(g, sizeof(float) * (size_t)(x->size ? x->size : 1));
    float *dm = dev_floats(g, x->size);
    tema_tensor *out = new_tensor(g, x->ndim, x->shape);
    if (!hm || !dm || !out) return NULL;
    if (!x->size) return out;
    for (int64_t i = 0; i < x->size; i++) hm[i] = keep[i] ? 1.0f : 0.0f;
    g_be->to_device(g_bs, dm, hm, sizeof(float) * (size_t)x->size);
    g_be->binary(g_bs, TEMA_BINARY_MUL, x->size, x->data, dm, x->size, out->data);
    if (needs_grad(x)) {
        node *n = tape_push(g, OP_MASK_ROWS, out);
        if (n) n->mask_rows = (struct op_mask_rows){.x = x, .mask = dm};
    }
    return out;
}

/* The mask is a constant: only x gets a gradient. */
void mask_rows_backward(tema_graph *g, const node *n)
{
    const struct op_mask_rows *op = &n->mask_rows;
    float *dx = grad_of(g, op->x);
    if (dx)
        g_be->binary_bwd(g_bs, TEMA_BINARY_MUL, op->x->size, op->x->data, op->mask, op->x->size, n->out->grad, dx,
                         NULL);
}

/* ---------------------------------------------------------------- scale, gelu, relu, sigmoid, tanh */

static tema_tensor *unary_forward(tema_graph *g, tema_tensor *x, tema_unary_op fn, float alpha, const char *what)
{
    if (!check_input(g, x, what)) return NULL;
    tema_tensor *out = new_tensor(g, x->ndim, x->shape);
    if (!out) return NULL;
    g_be->unary(g_bs, fn, x->size, alpha, x->data, out->data);
    if (needs_grad(x)) {
        node *n = tape_push(g, OP_UNARY, out);
        if (n) n->unary = (struct op_unary){.x = x, .fn = fn, .alpha = alpha};
    }
    return out;
}

tema_tensor *scale_forward(tema_graph *g, tema_tensor *x, float s)
{
    return unary_forward(g, x, TEMA_UNARY_SCALE, s, "scale");
}

tema_tensor *gelu_forward(tema_graph *g, tema_tensor *x)
{
    return unary_forward(g, x, TEMA_UNARY_GELU, 0, "gelu");
}

tema_tensor *relu_forward(tema_graph *g, tema_tensor *x)
{
    return unary_forward(g, x, TEMA_UNARY_RELU, 0, "relu");
}

tema_tensor *sigmoid_forward(tema_graph *g, tema_tensor *x)
{
    return unary_forward(g, x, TEMA_UNARY_SIGMOID, 0, "sigmoid");
}

tema_tensor *tanh_forward(tema_graph *g, tema_tensor *x)
{
    return unary_forward(g, x, TEMA_UNARY_TANH, 0, "tanh");
}

void unary_backward(tema_graph *g, const node *n)
{
    const struct op_unary *op = &n->unary;
    float *dx = grad_of(g, op->x);
    if (dx) g_be->unary_bwd(g_bs, op->fn, op->x->size, op->alpha, op->x->data, n->out->data, n->out->grad, dx);
}

/* ---------------------------------------------------------------- dropout */

tema_tensor *dropout_forward(tema_graph *g, tema_tensor *x, float p)
{
    if (!check_input(g, x, "dropout")) return NULL;
    if (!(p >= 0.0f && p < 1.0f)) return graph_fail(g, "dropout: p = %g is outside [0, 1); hint: dropout: 0.1", p);
    if (!graph_training(g) || p == 0.0f) return x;
    uint64_t seed = next_dropout_seed(g);
    tema_tensor *out = new_tensor(g, x->ndim, x->shape);
    if (!out) return NULL;
    g_be->dropout(g_bs, x->size, p, seed, x->data, out->data);
    if (needs_grad(x)) {
        node *n = tape_push(g, OP_DROPOUT, out);
        if (n) n->dropout = (struct op_dropout){.x = x, .p = p, .seed = seed};
    }
    return out;
}

/* The mask is drawn again from the same seed rather than stored. */
void dropout_backward(tema_graph *g, const node *n)
{
    const struct op_dropout *op = &n->dropout;
    float beta;
    float *dx = grad_to_write(g, op->x, &beta);
    if (!dx) return;
    /* dropout is linear: a gradient written first is the forward's mask applied to dout, one
     * writing pass instead of zeroing and accumulating */
    if (beta == 0.0f) g_be->dropout(g_bs, op->x->size, op->p, op->seed, n->out->grad, dx);
    else g_be->dropout_bwd(g_bs, op->x->size, op->p, op->seed, n->out->grad, dx);
}

/* ---------------------------------------------------------------- logaddexp_n */

tema_tensor *logaddexp_n_forward(tema_graph *g, tema_tensor *const *xs, const float *log_w, int nx)
{
    if (!g) return NULL;
    if (nx < 1 || !xs) return graph_fail(g, "logaddexp_n: needs at least one tensor");
    bool any = false;
    for (int i = 0; i < nx; i++) {
        if (!check_input(g, xs[i], "logaddexp_n")) return NULL;
        if (xs[i]->size != xs[0]->size) return graph_fail(g, "logaddexp_n: tensor %d has a different size", i);
        any = any || needs_grad(xs[i]);
    }
    float *lw = host_alloc(g, sizeof(float) * (size_t)nx);
    if (!lw) return NULL;
    for (int i = 0; i < nx; i++) lw[i] = log_w ? log_w[i] : 0.0f;
    tema_tensor *out = new_tensor(g, xs[0]->ndim, xs[0]->shape);
    if (!out) return NULL;
    int64_t sz = out->size;
    if (nx == 1) g_be->logaddexp(g_bs, sz, xs[0]->data, lw[0], xs[0]->data, -INFINITY, out->data);
    else g_be->logaddexp(g_bs, sz, xs[0]->data, lw[0], xs[1]->data, lw[1], out->data);
    for (int i = 2; i < nx; i++) g_be->logaddexp(g_bs, sz, out->data, 0.0f, xs[i]->data, lw[i], out->data);
    if (any) {
        tema_tensor **ins = host_alloc(g, sizeof(tema_tensor *) * (size_t)nx);
        if (!ins) return NULL;
        memcpy(ins, xs, sizeof(tema_tensor *) * (size_t)nx);
        node *n = tape_push(g, OP_LOGADDEXP_N, out);
        if (n) n->logaddexp_n = (struct op_logaddexp_n){.xs = ins, .log_w = lw, .count = nx};
    }
    return out;
}

void logaddexp_n_backward(tema_graph *g, const node *n)
{
    const struct op_logaddexp_n *op = &n->logaddexp_n;
    for (int i = 0; i < op->count; i++) {
        float *dx = grad_of(g, op->xs[i]);
        if (dx) g_be->logaddexp_bwd(g_bs, n->out->size, op->xs[i]->data, op->log_w[i], n->out->data, n->out->grad, dx);
    }
}
