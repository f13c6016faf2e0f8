/* core/ops_shape.c - ops that move data without arithmetic on it: reshape, detach, embedding
 * and gather_rows, concat, slice, transpose12; each forward followed by its backward. */
#include <string.h>

#include "graph_internal.h"

/* ---------------------------------------------------------------- reshape */

tema_tensor *reshape_forward(tema_graph *g, tema_tensor *x, int ndim, const int64_t *shape)
{
    if (!check_input(g, x, "reshape")) return NULL;
    if (ndim < 1 || ndim > TEMA_MAX_DIMS || !shape)
        return graph_fail(g, "reshape: %d dimensions (1..4 allowed)", ndim);
    int64_t size = 1;
    for (int i = 0; i < ndim; i++) size *= shape[i];
    if (size != x->size)
        return graph_fail(g, "reshape: %lld elements cannot become %lld", (long long)x->size, (long long)size);
    tema_tensor *t = host_alloc(g, sizeof *t);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->data = x->data;
    t->ndim = ndim;
    t->size = size;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    /* The view's gradient is its own buffer, added into x's on the way back. */
    if (needs_grad(x)) {
        node *n = tape_push(g, OP_VIEW, t);
        if (n) n->view = (struct op_view){.x = x};
    }
    return t;
}

void view_backward(tema_graph *g, const node *n)
{
    const struct op_view *op = &n->view;
    if (needs_grad(op->x) && !op->x->grad) { /* x's first gradient is the view's, complete by now: share it */
        op->x->grad = n->out->grad;
        return;
    }
    float *dx = grad_of(g, op->x);
    if (dx) g_be->axpy(g_bs, op->x->size, 1.0f, n->out->grad, dx);
}

/* ---------------------------------------------------------------- detach */

/* x's values with no way back to x (torch's detach, TensorFlow's stop_gradient): a view of
 * the same data that never goes on the tape and does not need a gradient, so an op fed
 * with it records nothing towards x. It moves no data, hence no backend kernel and no
 * backward. (The MAN baseline's fusion and group attention read the encoders' states
 * through tf.stop_gradient.) */
tema_tensor *detach_forward(tema_graph *g, tema_tensor *x)
{
    if (!check_input(g, x, "detach")) return NULL;
    tema_tensor *t = host_alloc(g, sizeof *t);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->data = x->data;
    t->ndim = x->ndim;
    t->size = x->size;
    memcpy(t->shape, x->shape, sizeof t->shape);
    return t;
}

/* ---------------------------------------------------------------- embedding, gather_rows */

static tema_tensor *gather_forward(tema_graph *g, tema_tensor *x, const int32_t *idx, int64_t count, const char *what)
{
    if (!check_input(g, x, what)) return NULL;
    if (count < 0) return graph_fail(g, "%s: negative count", what);
    if (!check_ids(g, what, idx, count, x->shape[0])) return NULL;
    int64_t shape[TEMA_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[0] = count;
    int64_t dim = x->shape[0] ? x->size / x->shape[0] : 0;
    tema_tensor *out = new_tensor(g, x->ndim, shape);
    if (!out) return NULL;
    int32_t *ids = dev_ids(g, idx, count);
    if (!ids) return NULL;
    g_be->gather(g_bs, count, dim, ids, x->data, out->data);
    if (needs_grad(x)) {
        node *n = tape_push(g, OP_GATHER, out);
        if (n)
            n->gather = (struct op_gather){
                .x = x, .ids = ids, .host_ids = host_ids_of_param(g, x, idx, count), .n = count, .dim = dim};
    }
    return out;
}

tema_tensor *embedding_forward(tema_graph *g, tema_tensor *table, const int32_t *ids, int64_t n)
{
    if (table && table->ndim != 2) return graph_fail(g, "embedding: table must be 2-D [n_items, dim]");
    return gather_forward(g, table, ids, n, "embedding");
}

tema_tensor *gather_rows_forward(tema_graph *g, tema_tensor *x, const int32_t *idx, int64_t n)
{
    return gather_forward(g, x, idx, n, "gather_rows");
}

void gather_backward(tema_graph *g, const node *n)
{
    const struct op_gather *op = &n->gather;
    float *dx = grad_of_rows(g, op->x, op->host_ids, op->n);
    if (dx) g_be->scatter_add(g_bs, op->n, op->dim, op->ids, n->out->grad, dx);
}

/* ---------------------------------------------------------------- concat */

tema_tensor *concat_forward(tema_graph *g, tema_tensor *const *xs, int nx)
{
    if (!g) return NULL;
    if (nx < 1 || !xs) return graph_fail(g, "concat: needs at least one tensor");
    int64_t total = 0;
    for (int i = 0; i < nx; i++) {
        if (!check_input(g, xs[i], "concat")) return NULL;
        if (xs[i]->ndim != xs[0]->ndim || rows_of(xs[i]) != rows_of(xs[0]))
            return graph_fail(g, "concat: tensor %d has different leading dimensions than tensor 0", i);
        total += last_dim(xs[i]);
    }
    int64_t shape[TEMA_MAX_DIMS];
    memcpy(shape, xs[0]->shape, sizeof shape);
    shape[xs[0]->ndim - 1] = total;
    tema_tensor *out = new_tensor(g, xs[0]->ndim, shape);
    if (!out) return NULL;
    int64_t rows = rows_of(xs[0]), off = 0;
    bool any = false;
    for (int i = 0; i < nx; i++) {
        g_be->copy2d(g_bs, rows, last_dim(xs[i]), xs[i]->data, last_dim(xs[i]), out->data + off, total, false);
        off += last_dim(xs[i]);
        any = any || needs_grad(xs[i]);
    }
    if (any) {
        tema_tensor **ins = host_alloc(g, sizeof(tema_tensor *) * (size_t)nx);
        if (!ins) return NULL;
        memcpy(ins, xs, sizeof(tema_tensor *) * (size_t)nx);
        node *n = tape_push(g, OP_CONCAT, out);
        if (n) n->concat = (struct op_concat){.xs = ins, .count = nx, .rows = rows, .dim = total};
    }
    return out;
}

void concat_backward(tema_graph *g, const node *n)
{
    const struct op_concat *op = &n->concat;
    int64_t off = 0;
    for (int i = 0; i < op->count; i++) {
        tema_tensor *xi = op->xs[i];
        int64_t w = last_dim(xi);
        float *dx = grad_of(g, xi);
        if (dx) g_be->copy2d(g_bs, op->rows, w, n->out->grad + off, op->dim, dx, w, true);
        off += w;
    }
}

/* ---------------------------------------------------------------- slice */

tema_tensor *slice_forward(tema_graph *g, tema_tensor *x, int64_t start, int64_t len)
{
    if (!check_input(g, x, "slice")) return NULL;
    int64_t dim = last_dim(x), rows = rows_of(x);
    if (start < 0 || len < 0 || start + len > dim)
        return graph_fail(g, "slice: [%lld, %lld) is outside the last dimension (%lld)", (long long)start,
                          (long long)(start + len), (long long)dim);
    int64_t shape[TEMA_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = len;
    tema_tensor *out = new_tensor(g, x->ndim, shape);
    if (!out) return NULL;
    g_be->copy2d(g_bs, rows, len, x->data + start, dim, out->data, len, false);
    if (needs_grad(x)) {
        node *n = tape_push(g, OP_SLICE, out);
        if (n) n->slice = (struct op_slice){.x = x, .rows = rows, .dim = dim, .start = start, .len = len};
    }
    return out;
}

void slice_backward(tema_graph *g, const node *n)
{
    const struct op_slice *op = &n->slice;
    float *dx = grad_of(g, op->x);
    if (dx) g_be->copy2d(g_bs, op->rows, op->len, n->out->grad, op->len, dx + op->start, op->dim, true);
}

/* ---------------------------------------------------------------- transpose12 */

tema_tensor *transpose12_forward(tema_graph *g, tema_tensor *x)
{
    if (!check_input(g, x, "transpose12")) return NULL;
    if (x->ndim != 4) return graph_fail(g, "transpose12: needs a 4-D tensor [B,L,H,D], got %d-D", x->ndim);
    int64_t shape[4] = {x->shape[0], x->shape[2], x->shape[1], x->shape[3]};
    tema_tensor *out = new_tensor(g, 4, shape);
    if (!out) return NULL;
    g_be->permute0213(g_bs, x->shape[0], x->shape[1], x->shape[2], x->shape[3], x->data, out->data, false);
    if (needs_grad(x)) {
        node *n = tape_push(g, OP_TRANSPOSE12, out);
        if (n) n->transpose12 = (struct op_transpose12){.x = x};
    }
    return out;
}

/* The inverse permutation is the same kernel with L and H swapped. */
void transpose12_backward(tema_graph *g, const node *n)
{
    tema_tensor *x = n->transpose12.x;
    float *dx = grad_of(g, x);
    if (dx) g_be->permute0213(g_bs, x->shape[0], x->shape[2], x->shape[1], x->shape[3], n->out->grad, dx, true);
}
