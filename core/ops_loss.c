/* core/ops_loss.c - reductions and the pieces of losses: sum and mean, weighted_mean,
 * cross_entropy, rowdot, lse_chunked, bce_with_logits, and infonce composed of them; each
 * forward followed by its backward. */
#include <math.h>
#include <string.h>

#include "graph_internal.h"

/* ---------------------------------------------------------------- sum, mean */

static tema_tensor *reduce_forward(tema_graph *g, tema_tensor *x, bool mean)
{
    if (!check_input(g, x, mean ? "mean" : "sum")) return NULL;
    tema_tensor *out = new_tensor(g, 1, (int64_t[]){1});
    if (!out) return NULL;
    float scale = mean ? (x->size ? 1.0f / (float)x->size : 0.0f) : 1.0f;
    g_be->dot(g_bs, x->size, x->data, NULL, scale, out->data);
    if (needs_grad(x)) {
        node *n = tape_push(g, OP_SUM, out);
        if (n) n->sum = (struct op_sum){.x = x, .scale = scale};
    }
    return out;
}

tema_tensor *sum_forward(tema_graph *g, tema_tensor *x) { return reduce_forward(g, x, false); }
tema_tensor *mean_forward(tema_graph *g, tema_tensor *x) { return reduce_forward(g, x, true); }

void sum_backward(tema_graph *g, const node *n)
{
    const struct op_sum *op = &n->sum;
    float *dx = grad_of(g, op->x);
    if (dx) g_be->axpy_scalar(g_bs, op->x->size, n->out->grad, op->scale, NULL, dx);
}

/* ---------------------------------------------------------------- weighted_mean */

tema_tensor *weighted_mean_forward(tema_graph *g, tema_tensor *x, const float *w)
{
    if (!check_input(g, x, "weighted_mean")) return NULL;
    if (!w && x->size) return graph_fail(g, "weighted_mean: weights are NULL");
    double sw = 0.0;
    for (int64_t i = 0; i < x->size; i++) sw += w[i];
    float *dw = dev_floats(g, x->size);
    tema_tensor *out = new_tensor(g, 1, (int64_t[]){1});
    if (!dw || !out) return NULL;
    float scale = sw != 0.0 ? (float)(1.0 / sw) : 0.0f;
    if (x->size) g_be->to_device(g_bs, dw, w, sizeof(float) * (size_t)x->size);
    g_be->dot(g_bs, x->size, x->data, dw, scale, out->data);
    if (needs_grad(x)) {
        node *n = tape_push(g, OP_WEIGHTED_MEAN, out);
        if (n) n->weighted_mean = (struct op_weighted_mean){.x = x, .w = dw, .scale = scale};
    }
    return out;
}

void weighted_mean_backward(tema_graph *g, const node *n)
{
    const struct op_weighted_mean *op = &n->weighted_mean;
    float *dx = grad_of(g, op->x);
    if (dx) g_be->axpy_scalar(g_bs, op->x->size, n->out->grad, op->scale, op->w, dx);
}

/* ---------------------------------------------------------------- cross_entropy */

tema_tensor *cross_entropy_forward(tema_graph *g, tema_tensor *logits, const int32_t *targets)
{
    if (!check_input(g, logits, "cross_entropy")) return NULL;
    int64_t C = last_dim(logits), rows = rows_of(logits);
    if (!check_ids(g, "cross_entropy", targets, rows, C)) return NULL;
    int64_t valid = 0;
    for (int64_t r = 0; r < rows; r++) valid += targets[r] >= 0;
    tema_tensor *out = new_tensor(g, 1, (int64_t[]){1});
    float *loss = dev_floats(g, 2 * rows); /* per-row loss, then per-row lse */
    int32_t *t = dev_ids(g, targets, rows);
    if (!out || !loss || !t) return NULL;
    float scale = valid ? 1.0f / (float)valid : 0.0f;
    g_be->xent(g_bs, rows, C, logits->data, t, loss, loss + rows);
    g_be->dot(g_bs, rows, loss, NULL, scale, out->data);
    if (needs_grad(logits)) {
        node *n = tape_push(g, OP_CROSS_ENTROPY, out);
        if (n)
            n->cross_entropy = (struct op_cross_entropy){
                .logits = logits, .targets = t, .lse = loss + rows, .scale = scale, .rows = rows, .classes = C};
    }
    return out;
}

void cross_entropy_backward(tema_graph *g, const node *n)
{
    const struct op_cross_entropy *op = &n->cross_entropy;
    float *dx = grad_of(g, op->logits);
    if (dx)
        g_be->xent_bwd(g_bs, op->rows, op->classes, op->logits->data, op->targets, op->lse, n->out->grad, op->scale,
                       dx);
}

/* ---------------------------------------------------------------- rowdot */

tema_tensor *rowdot_forward(tema_graph *g, tema_tensor *h, tema_tensor *items, const int32_t *targets, float inv_temp)
{
    if (!check_input(g, h, "rowdot") || !check_input(g, items, "rowdot")) return NULL;
    int64_t d = last_dim(h), rows = rows_of(h);
    if (items->ndim != 2 || items->shape[1] != d)
        return graph_fail(g, "rowdot: items must be [n, %lld] to match h", (long long)d);
    if (!check_ids(g, "rowdot", targets, rows, items->shape[0])) return NULL;
    tema_tensor *out = new_tensor(g, 1, (int64_t[]){rows});
    int32_t *t = dev_ids(g, targets, rows);
    if (!out || !t) return NULL;
    g_be->rowdot(g_bs, rows, d, inv_temp, h->data, items->data, t, out->data);
    if (needs_grad(h) || needs_grad(items)) {
        node *n = tape_push(g, OP_ROWDOT, out);
        if (n)
            n->rowdot = (struct op_rowdot){.h = h,
                                           .items = items,
                                           .targets = t,
                                           .host_targets = host_ids_of_param(g, items, targets, rows),
                                           .inv_temp = inv_temp,
                                           .rows = rows,
                                           .dim = d};
    }
    return out;
}

void rowdot_backward(tema_graph *g, const node *n)
{
    const struct op_rowdot *op = &n->rowdot;
    float *dh = grad_of(g, op->h), *di = grad_of_rows(g, op->items, op->host_targets, op->rows);
    g_be->rowdot_bwd(g_bs, op->rows, op->dim, op->inv_temp, op->h->data, op->items->data, op->targets, n->out->grad,
                     dh, di);
}

/* ---------------------------------------------------------------- lse_chunked
 * Rows are grouped by their exact [lo,hi) range (usually one group per domain), and each
 * group runs over its own range only, so two domains cost rows_x*n_x + rows_y*n_y
 * products instead of all rows times the union. With too many distinct ranges the rows
 * form one group over the union and the kernels mask per row. */
#define LSE_MAX_GROUPS 8

typedef struct lse_group {
    int64_t rows;
    int32_t lo, hi;          /* union range of the group */
    int32_t *perm;           /* backend: rows of h in this group (NULL = all rows, in order) */
    int32_t *lo_d, *hi_d;    /* backend: per-row ranges of the group */
    float *h;                /* backend: the group's rows of h (== h->data when perm is NULL) */
    float *lse;              /* backend: [rows] results */
} lse_group;

/* The grouping of the rows, worked out on the host before anything is allocated. */
typedef struct lse_plan {
    int n_groups;            /* 0 when every row is empty */
    bool union_range;        /* too many distinct ranges: one group over their union */
    int64_t nonempty;        /* rows with lo < hi */
    int32_t lo[LSE_MAX_GROUPS], hi[LSE_MAX_GROUPS];
    int64_t rows[LSE_MAX_GROUPS];
} lse_plan;

static lse_plan lse_plan_groups(const int32_t *lo, const int32_t *hi, int64_t R)
{
    lse_plan p = {0};
    for (int64_t r = 0; r < R && !p.union_range; r++) {
        if (lo[r] >= hi[r]) continue;
        p.nonempty++;
        int k = 0;
        while (k < p.n_groups && !(p.lo[k] == lo[r] && p.hi[k] == hi[r])) k++;
        if (k == p.n_groups) {
            if (p.n_groups == LSE_MAX_GROUPS) {
                p.union_range = true;
                break;
            }
            p.lo[p.n_groups] = lo[r], p.hi[p.n_groups] = hi[r], p.n_groups++;
        }
        p.rows[k]++;
    }
    if (p.union_range) {
        p.n_groups = 1;
        p.lo[0] = INT32_MAX, p.hi[0] = 0, p.rows[0] = 0;
        for (int64_t r = 0; r < R; r++)
            if (lo[r] < hi[r]) {
                p.rows[0]++;
                p.lo[0] = lo[r] < p.lo[0] ? lo[r] : p.lo[0];
                p.hi[0] = hi[r] > p.hi[0] ? hi[r] : p.hi[0];
            }
        p.nonempty = p.rows[0];
    }
    return p;
}

/* The groups of a plan with their rows' ranges and rows of h in backend memory; a group of
 * every row in order uses h in place. */
static lse_group *lse_make_groups(tema_graph *g, const lse_plan *p, const tema_tensor *h, const int32_t *lo,
                                  const int32_t *hi, int64_t *max_rows)
{
    int64_t R = rows_of(h), d = last_dim(h);
    lse_group *groups = host_alloc(g, sizeof(lse_group) * (size_t)p->n_groups);
    int32_t *hbuf = host_alloc(g, sizeof(int32_t) * 3 * (size_t)(R > 0 ? R : 1));
    if (!groups || !hbuf) return NULL;
    *max_rows = 0;
    for (int k = 0; k < p->n_groups; k++) {
        lse_group *gr = &groups[k];
        memset(gr, 0, sizeof *gr);
        gr->rows = p->rows[k];
        gr->lo = p->lo[k], gr->hi = p->hi[k];
        *max_rows = gr->rows > *max_rows ? gr->rows : *max_rows;
        bool all_in_order = p->n_groups == 1 && p->nonempty == R;
        int32_t *perm = hbuf, *glo_h = hbuf + R, *ghi_h = hbuf + 2 * R;
        int64_t j = 0;
        for (int64_t r = 0; r < R; r++) {
            bool in = p->union_range ? lo[r] < hi[r] : (lo[r] == p->lo[k] && hi[r] == p->hi[k]);
            if (!in) continue;
            perm[j] = (int32_t)r, glo_h[j] = lo[r], ghi_h[j] = hi[r], j++;
        }
        gr->lo_d = dev_ids(g, glo_h, gr->rows);
        gr->hi_d = dev_ids(g, ghi_h, gr->rows);
        gr->lse = dev_floats(g, gr->rows);
        if (!gr->lo_d || !gr->hi_d || !gr->lse) return NULL;
        if (all_in_order) {
            gr->h = h->data;
        } else {
            gr->perm = dev_ids(g, perm, gr->rows);
            gr->h = dev_floats(g, gr->rows * d);
            if (!gr->perm || !gr->h) return NULL;
            g_be->gather(g_bs, gr->rows, d, gr->perm, h->data, gr->h);
        }
    }
    return groups;
}

/* One group's online log-sum-exp, chunk by chunk; m and s are its running max and sum. */
static void lse_forward_group(tema_graph *g, const lse_group *gr, const float *items, int64_t d, float inv_temp,
                              int64_t chunk, float *logits, float *m, float *s)
{
    g_be->lse_init(g_bs, gr->rows, m, s);
    for (int64_t c0 = gr->lo; c0 < gr->hi; c0 += chunk) {
        int64_t cols = gr->hi - c0 < chunk ? gr->hi - c0 : chunk;
        graph_sgemm(g, false, true, gr->rows, cols, d, inv_temp, gr->h, d, 0, items + c0 * d, d, 0, 0.0f, logits,
                    cols, 0, 1);
        g_be->lse_update(g_bs, gr->rows, cols, c0, logits, cols, gr->lo_d, gr->hi_d, m, s);
    }
    g_be->lse_finish(g_bs, gr->rows, m, s, gr->lse);
}

tema_tensor *lse_chunked_forward(tema_graph *g, tema_tensor *h, tema_tensor *items, const int32_t *lo,
                                 const int32_t *hi, float inv_temp, int64_t chunk)
{
    if (!check_input(g, h, "lse_chunked") || !check_input(g, items, "lse_chunked")) return NULL;
    int64_t d = last_dim(h), R = rows_of(h), N = items->shape[0];
    if (items->ndim != 2 || items->shape[1] != d)
        return graph_fail(g, "lse_chunked: items must be [n, %lld] to match h", (long long)d);
    if (chunk < 1) return graph_fail(g, "lse_chunked: chunk = %lld must be >= 1", (long long)chunk);
    if (R > 0 && (!lo || !hi)) return graph_fail(g, "lse_chunked: lo/hi arrays are NULL");
    for (int64_t r = 0; r < R; r++)
        if (lo[r] < 0 || hi[r] > N || (lo[r] < hi[r] && lo[r] >= N))
            return graph_fail(g, "lse_chunked: row %lld has range [%d, %d) outside [0, %lld)", (long long)r, lo[r],
                              hi[r], (long long)N);
    tema_tensor *out = new_tensor(g, 1, (int64_t[]){R});
    if (!out) return NULL;
    g_be->memset0(g_bs, out->data, (size_t)R * sizeof(float));
    lse_plan plan = lse_plan_groups(lo, hi, R);
    if (plan.n_groups == 0) return out; /* every row empty: all zeros, no gradient */
    int64_t max_rows = 0;
    lse_group *groups = lse_make_groups(g, &plan, h, lo, hi, &max_rows);
    if (!groups) return NULL;
    int64_t span = 0;
    for (int k = 0; k < plan.n_groups; k++) span = plan.hi[k] - plan.lo[k] > span ? plan.hi[k] - plan.lo[k] : span;
    int64_t cw = chunk < span ? chunk : span;
    float *logits = dev_floats(g, max_rows * cw);
    float *ms = dev_floats(g, 2 * max_rows); /* running max, then running sum; backward's dout later */
    if (!logits || !ms) return NULL;
    for (int k = 0; k < plan.n_groups; k++) {
        lse_group *gr = &groups[k];
        lse_forward_group(g, gr, items->data, d, inv_temp, chunk, logits, ms, ms + max_rows);
        if (gr->perm) g_be->scatter_add(g_bs, gr->rows, 1, gr->perm, gr->lse, out->data);
        else g_be->copy(g_bs, out->data, gr->lse, (size_t)R * sizeof(float));
    }
    if (needs_grad(h) || needs_grad(items)) {
        node *n = tape_push(g, OP_LSE_CHUNKED, out);
        if (n)
            n->lse_chunked = (struct op_lse_chunked){.h = h, .items = items, .groups = groups,
                                                     .n_groups = plan.n_groups, .logits = logits, .dout = ms,
                                                     .inv_temp = inv_temp, .dim = d, .chunk = chunk};
    }
    return out;
}

/* Recomputes each chunk's logits, turns them into d lse / d logit in place, and forms dh and
 * ditems from them with two products; a permuted group's dh is scattered back at the end. */
void lse_chunked_backward(tema_graph *g, const node *n)
{
    const struct op_lse_chunked *op = &n->lse_chunked;
    tema_tensor *h = op->h, *items = op->items;
    int64_t d = op->dim, chunk = op->chunk;
    float inv_temp = op->inv_temp;
    float *dh = grad_of(g, h), *ditems = grad_of(g, items);
    float *logits = op->logits, *dout_g = op->dout; /* forward scratch, free again now */
    for (int k = 0; k < op->n_groups; k++) {
        lse_group *gr = &op->groups[k];
        float *dhg = NULL;
        if (gr->perm) {
            g_be->gather(g_bs, gr->rows, 1, gr->perm, n->out->grad, dout_g);
            if (dh) {
                dhg = dev_floats(g, gr->rows * d);
                if (!dhg) return;
                g_be->memset0(g_bs, dhg, (size_t)(gr->rows * d) * sizeof(float));
            }
        } else {
            g_be->copy(g_bs, dout_g, n->out->grad, (size_t)gr->rows * sizeof(float));
            dhg = dh;
        }
        for (int64_t c0 = gr->lo; c0 < gr->hi; c0 += chunk) {
            int64_t cols = gr->hi - c0 < chunk ? gr->hi - c0 : chunk;
            const float *ic = items->data + c0 * d;
            graph_sgemm(g, false, true, gr->rows, cols, d, inv_temp, gr->h, d, 0, ic, d, 0, 0.0f, logits, cols, 0, 1);
            g_be->lse_grad(g_bs, gr->rows, cols, c0, logits, cols, gr->lo_d, gr->hi_d, gr->lse, dout_g, inv_temp);
            if (dhg)
                graph_sgemm(g, false, false, gr->rows, d, cols, 1.0f, logits, cols, 0, ic, d, 0, 1.0f, dhg, d, 0, 1);
            if (ditems)
                graph_sgemm(g, true, false, cols, d, gr->rows, 1.0f, logits, cols, 0, gr->h, d, 0, 1.0f,
                            ditems + c0 * d, d, 0, 1);
        }
        if (gr->perm && dh) g_be->scatter_add(g_bs, gr->rows, d, gr->perm, dhg, dh);
    }
}

/* ---------------------------------------------------------------- infonce
 * Composed: cross_entropy over the [B, B] logits a @ b^T / tau with targets 0..B-1 is exactly
 * mean_i -log softmax_j(<a_i,b_j>/tau)[i], through the stable log-sum-exp of xent; B x B is
 * a batch's worth, so nothing is gained by fusing. */

tema_tensor *infonce_forward(tema_graph *g, tema_tensor *a, tema_tensor *b, float tau)
{
    if (!check_input(g, a, "infonce") || !check_input(g, b, "infonce")) return NULL;
    if (a->ndim != 2 || b->ndim != 2 || a->shape[0] != b->shape[0] || a->shape[1] != b->shape[1]) {
        char s1[96], s2[96];
        return graph_fail(g, "infonce: a %s and b %s must both be [B, D]", shape_str(a, s1, sizeof s1),
                          shape_str(b, s2, sizeof s2));
    }
    if (!(tau > 0.0f) || !isfinite(tau)) return graph_fail(g, "infonce: temperature %g must be > 0", (double)tau);
    const int64_t B = a->shape[0];
    int32_t *diag = host_alloc(g, sizeof(int32_t) * (size_t)(B ? B : 1));
    if (!diag) return NULL;
    for (int64_t i = 0; i < B; i++) diag[i] = (int32_t)i;
    tema_tensor *logits = scale_forward(g, matmul_forward(g, a, false, b, true), 1.0f / tau);
    return logits ? cross_entropy_forward(g, logits, diag) : NULL;
}

/* ---------------------------------------------------------------- bce_with_logits
 * softplus(z) - z y with softplus(z) = log(exp(z) + exp(0)) from the logaddexp kernel, which
 * shifts by the max: no overflow for any z, and log1p-level accuracy is not needed at float. */

tema_tensor *bce_with_logits_forward(tema_graph *g, tema_tensor *logits, const float *labels)
{
    if (!check_input(g, logits, "bce_with_logits")) return NULL;
    const int64_t n = logits->size;
    if (n && !labels) return graph_fail(g, "bce_with_logits: labels are NULL");
    for (int64_t i = 0; i < n; i++)
        if (!(labels[i] >= 0.0f && labels[i] <= 1.0f))
            return graph_fail(g, "bce_with_logits: labels[%lld] is %g, outside [0, 1]", (long long)i,
                              (double)labels[i]);
    tema_tensor *out = new_tensor(g, 1, (int64_t[]){1});
    float *y = dev_floats(g, n), *elem = dev_floats(g, n), *zero = dev_floats(g, n);
    if (!out || !y || !elem || !zero) return NULL;
    const float scale = n ? 1.0f / (float)n : 0.0f;
    if (n) g_be->to_device(g_bs, y, labels, sizeof(float) * (size_t)n);
    g_be->memset0(g_bs, zero, sizeof(float) * (size_t)(n ? n : 1));
    g_be->logaddexp(g_bs, n, logits->data, 0.0f, zero, 0.0f, elem);     /* softplus(z) */
    g_be->binary(g_bs, TEMA_BINARY_MUL, n, logits->data, y, n, zero);   /* z y, into the zeros */
    g_be->axpy(g_bs, n, -1.0f, zero, elem);
    g_be->dot(g_bs, n, elem, NULL, scale, out->data);
    if (needs_grad(logits)) {
        node *nd = tape_push(g, OP_BCE_WITH_LOGITS, out);
        if (nd) nd->bce_with_logits = (struct op_bce_with_logits){.logits = logits, .labels = y, .scale = scale};
    }
    return out;
}

/* dz += scale * dout * (sigmoid(z) - y) */
void bce_with_logits_backward(tema_graph *g, const node *n)
{
    const struct op_bce_with_logits *op = &n->bce_with_logits;
    const int64_t len = op->logits->size;
    float *dz = grad_of(g, op->logits), *p = dev_floats(g, len);
    if (!dz || !p) return;
    g_be->unary(g_bs, TEMA_UNARY_SIGMOID, len, 1.0f, op->logits->data, p);
    g_be->axpy(g_bs, len, -1.0f, op->labels, p);
    g_be->axpy_scalar(g_bs, len, n->out->grad, op->scale, p, dz);
}
