/* core/ops_matmul.c - the products: matmul (2-D, batched 3-D, [B,M,K] @ [K,N]) and linear,
 * each forward followed by its backward; bilinear, composed of matmul and rowdot. */
#include <string.h>

#include "graph_internal.h"

/* ---------------------------------------------------------------- matmul */

tema_tensor *matmul_forward(tema_graph *g, tema_tensor *a, bool ta, tema_tensor *b, bool tb)
{
    if (!check_input(g, a, "matmul") || !check_input(g, b, "matmul")) return NULL;
    char s1[96], s2[96];
    int64_t batch = 1, ra, ca, rb, cb;
    bool flat = false;
    if (a->ndim == 3 && b->ndim == 2 && !ta) { /* [B,M,K] @ [K,N]: one big product */
        flat = true;
        ra = a->shape[0] * a->shape[1];
        ca = a->shape[2];
    } else if (a->ndim == b->ndim && (a->ndim == 2 || (a->ndim == 3 && a->shape[0] == b->shape[0]))) {
        batch = a->ndim == 3 ? a->shape[0] : 1;
        ra = a->shape[a->ndim - 2];
        ca = a->shape[a->ndim - 1];
    } else {
        return graph_fail(g, "matmul: shapes %s and %s: both must be 2-D, or 3-D with the same batch",
                          shape_str(a, s1, sizeof s1), shape_str(b, s2, sizeof s2));
    }
    rb = b->shape[b->ndim - 2];
    cb = b->shape[b->ndim - 1];
    int64_t M = ta ? ca : ra, K = ta ? ra : ca, Kb = tb ? cb : rb, N = tb ? rb : cb;
    if (K != Kb)
        return graph_fail(g, "matmul: inner dimensions differ (%lld vs %lld) for %s%s @ %s%s", (long long)K,
                          (long long)Kb, shape_str(a, s1, sizeof s1), ta ? "^T" : "", shape_str(b, s2, sizeof s2),
                          tb ? "^T" : "");
    int64_t shape[3];
    int nd;
    if (flat) {
        shape[0] = a->shape[0], shape[1] = a->shape[1], shape[2] = N, nd = 3;
    } else if (batch > 1 || a->ndim == 3) {
        shape[0] = batch, shape[1] = M, shape[2] = N, nd = 3;
    } else {
        shape[0] = M, shape[1] = N, nd = 2;
    }
    tema_tensor *out = new_tensor(g, nd, shape);
    if (!out) return NULL;
    int64_t sa = ra * ca, sb = b->ndim == 3 ? rb * cb : 0;
    graph_sgemm(g, ta, tb, M, N, K, 1.0f, a->data, ca, sa, b->data, cb, sb, 0.0f, out->data, N, M * N, batch);
    if (needs_grad(a) || needs_grad(b)) {
        node *n = tape_push(g, OP_MATMUL, out);
        if (n)
            n->matmul = (struct op_matmul){
                .a = a, .b = b, .trans_a = ta, .trans_b = tb, .M = M, .N = N, .K = K, .batch = batch};
    }
    return out;
}

void matmul_backward(tema_graph *g, const node *n)
{
    const struct op_matmul *op = &n->matmul;
    tema_tensor *a = op->a, *b = op->b;
    bool ta = op->trans_a, tb = op->trans_b;
    int64_t M = op->M, N = op->N, K = op->K, batch = op->batch;
    int64_t ca = last_dim(a), cb = last_dim(b);
    int64_t sa = M * K, sb = b->ndim == 3 ? K * N : 0, sc = M * N;
    const float *dc = n->out->grad;
    float beta_a, beta_b;
    float *da = grad_to_write(g, a, &beta_a), *db = grad_to_write(g, b, &beta_b);
    if (da) {
        if (!ta) graph_sgemm(g, false, !tb, M, K, N, 1.0f, dc, N, sc, b->data, cb, sb, beta_a, da, ca, sa, batch);
        else graph_sgemm(g, tb, true, K, M, N, 1.0f, b->data, cb, sb, dc, N, sc, beta_a, da, ca, sa, batch);
    }
    if (db) {
        /* A 2-D b shared by a batch: accumulate batch by batch into the same gradient. */
        for (int64_t i = 0; i < (sb ? 1 : batch); i++) {
            int64_t nb = sb ? batch : 1, off_a = sb ? 0 : i * sa, off_c = sb ? 0 : i * sc;
            const float beta = i == 0 ? beta_b : 1.0f;
            if (!tb)
                graph_sgemm(g, !ta, false, K, N, M, 1.0f, a->data + off_a, ca, sa, dc + off_c, N, sc, beta, db, cb,
                            sb, nb);
            else
                graph_sgemm(g, true, ta, N, K, M, 1.0f, dc + off_c, N, sc, a->data + off_a, ca, sa, beta, db, cb,
                            sb, nb);
        }
    }
}

/* ---------------------------------------------------------------- linear */

tema_tensor *linear_forward(tema_graph *g, tema_tensor *x, tema_tensor *w, tema_tensor *b)
{
    if (!check_input(g, x, "linear") || !check_input(g, w, "linear") || (b && !check_input(g, b, "linear")))
        return NULL;
    char s1[96], s2[96];
    int64_t in = last_dim(x);
    if (w->ndim != 2 || w->shape[1] != in)
        return graph_fail(g, "linear: weight %s does not match input %s (want [out,%lld])",
                          shape_str(w, s1, sizeof s1), shape_str(x, s2, sizeof s2), (long long)in);
    int64_t outd = w->shape[0], rows = rows_of(x);
    if (b && b->size != outd)
        return graph_fail(g, "linear: bias has %lld elements, want %lld", (long long)b->size, (long long)outd);
    int64_t shape[TEMA_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = outd;
    tema_tensor *out = new_tensor(g, x->ndim, shape);
    if (!out) return NULL;
    graph_sgemm(g, false, true, rows, outd, in, 1.0f, x->data, in, 0, w->data, in, 0, 0.0f, out->data, outd, 0, 1);
    if (b) g_be->binary(g_bs, TEMA_BINARY_ADD, out->size, out->data, b->data, outd, out->data);
    if (needs_grad(x) || needs_grad(w) || needs_grad(b)) {
        node *n = tape_push(g, OP_LINEAR, out);
        if (n) n->linear = (struct op_linear){.x = x, .w = w, .b = b, .rows = rows, .in = in, .out_dim = outd};
    }
    return out;
}

void linear_backward(tema_graph *g, const node *n)
{
    const struct op_linear *op = &n->linear;
    tema_tensor *x = op->x, *w = op->w, *b = op->b;
    int64_t rows = op->rows, in = op->in, outd = op->out_dim;
    const float *dy = n->out->grad;
    float beta_x, beta_w;
    float *dx = grad_to_write(g, x, &beta_x), *dw = grad_to_write(g, w, &beta_w), *db = b ? grad_of(g, b) : NULL;
    if (dx) graph_sgemm(g, false, false, rows, in, outd, 1.0f, dy, outd, 0, w->data, in, 0, beta_x, dx, in, 0, 1);
    if (dw) graph_sgemm(g, true, false, outd, in, rows, 1.0f, dy, outd, 0, x->data, in, 0, beta_w, dw, in, 0, 1);
    if (db) g_be->binary_bwd(g_bs, TEMA_BINARY_ADD, rows * outd, NULL, NULL, outd, dy, NULL, db);
}

/* ---------------------------------------------------------------- bilinear
 * Composed: out[n] = <(x @ w)[n,:], y[n,:]> is rowdot of x @ w against y with targets 0..N-1
 * (each row of y its own "item"), plus the scalar bias broadcast as the last dim of [N, 1].
 * The backward is theirs: one [N,D1]x[D1,D2] product each way and two row passes. */

tema_tensor *bilinear_forward(tema_graph *g, tema_tensor *x, tema_tensor *w, tema_tensor *y, tema_tensor *b)
{
    if (!check_input(g, x, "bilinear") || !check_input(g, w, "bilinear") || !check_input(g, y, "bilinear") ||
        (b && !check_input(g, b, "bilinear")))
        return NULL;
    char s1[96], s2[96], s3[96];
    if (x->ndim != 2 || w->ndim != 2 || y->ndim != 2 || w->shape[0] != x->shape[1] || w->shape[1] != y->shape[1] ||
        y->shape[0] != x->shape[0])
        return graph_fail(g, "bilinear: x %s, w %s, y %s: want x [N, D1], w [D1, D2], y [N, D2]",
                          shape_str(x, s1, sizeof s1), shape_str(w, s2, sizeof s2), shape_str(y, s3, sizeof s3));
    if (b && b->size != 1) return graph_fail(g, "bilinear: bias has %lld elements, want 1", (long long)b->size);
    const int64_t N = x->shape[0];
    int32_t *self_rows = host_alloc(g, sizeof(int32_t) * (size_t)(N ? N : 1));
    if (!self_rows) return NULL;
    for (int64_t i = 0; i < N; i++) self_rows[i] = (int32_t)i;
    tema_tensor *out = rowdot_forward(g, matmul_forward(g, x, false, w, false), y, self_rows, 1.0f);
    if (!out || !b) return out;
    tema_tensor *col = add_forward(g, reshape_forward(g, out, 2, (int64_t[]){N, 1}), b);
    return col ? reshape_forward(g, col, 1, (int64_t[]){N}) : NULL;
}
