/* core/graph.c - the per-step graph: arena, tape, and every autograd op of tema/nn.h.
 *
 * All arithmetic on tensor data goes through the active backend's kernels
 * (tema/backend.h); this file only allocates, checks shapes and drives the kernels.
 *
 * Memory: a graph owns two arenas, one of backend memory (tensor data, saved
 * statistics, index arrays, lazily created activation gradients) and one of host memory
 * (tensor structs, host copies of ids). Each is ONE block reused every step. When a step
 * needs more, extra blocks are chained for the rest of that step only; the next
 * tema_graph_reset() frees them and reallocates the main block at the high-water mark
 * (plus 1/8 slack), so after the first step or two no allocation happens at all.
 *
 * Over 1,000 lines: the ops and their backward passes sit side by side (llm.c style); the
 * split along its seams (arena/tape vs op families) is part of issue 11, the house redesign.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "nn_internal.h"
#include "util.h"

/* ---------------------------------------------------------------- backend selection */

static const tema_backend_ops *g_be;
static void *g_bs;

void tema_engine_set_backend(const tema_backend_ops *ops, void *self)
{
    g_be = ops;
    g_bs = self;
}
const tema_backend_ops *tema_engine_backend(void) { return g_be; }
void *tema_engine_backend_self(void) { return g_bs; }

/* ---------------------------------------------------------------- arenas */

#define ALIGN 64
#define MIN_BLOCK ((size_t)1 << 20)

typedef struct block {
    char *base;
    size_t cap, used;
} block;

typedef struct arena {
    bool device;         /* backend memory (else malloc) */
    block main;
    block *extra;        /* overflow blocks of this step */
    size_t n_extra, cap_extra;
    size_t step_bytes;   /* bytes handed out this step */
    size_t high;         /* largest step_bytes seen */
} arena;

static void *raw_alloc(const arena *a, size_t bytes)
{
    if (a->device) return g_be ? g_be->alloc(g_bs, bytes) : NULL;
    void *p = NULL;
    return posix_memalign(&p, ALIGN, bytes) == 0 ? p : NULL;
}

static void raw_free(const arena *a, void *p)
{
    if (!p) return;
    if (a->device) {
        if (g_be) g_be->free(g_bs, p);
    } else {
        free(p);
    }
}

static void *arena_alloc(arena *a, size_t bytes)
{
    bytes = (bytes + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (bytes == 0) bytes = ALIGN;
    a->step_bytes += bytes;
    if (a->step_bytes > a->high) a->high = a->step_bytes;
    if (a->main.cap - a->main.used >= bytes) {
        a->main.used += bytes;
        return a->main.base + a->main.used - bytes;
    }
    if (a->n_extra) {
        block *b = &a->extra[a->n_extra - 1];
        if (b->cap - b->used >= bytes) {
            b->used += bytes;
            return b->base + b->used - bytes;
        }
    }
    if (a->n_extra == a->cap_extra) {
        size_t cap = a->cap_extra ? 2 * a->cap_extra : 8;
        block *e = realloc(a->extra, cap * sizeof *e);
        if (!e) return NULL;
        a->extra = e;
        a->cap_extra = cap;
    }
    size_t cap = bytes > MIN_BLOCK ? bytes : MIN_BLOCK;
    if (cap < a->main.cap / 4) cap = a->main.cap / 4;
    char *base = raw_alloc(a, cap);
    if (!base) return NULL;
    a->extra[a->n_extra++] = (block){base, cap, bytes};
    return base;
}

static void arena_reset(arena *a)
{
    if (a->n_extra) {
        for (size_t i = 0; i < a->n_extra; i++) raw_free(a, a->extra[i].base);
        a->n_extra = 0;
        raw_free(a, a->main.base);
        size_t cap = a->high + a->high / 8;
        a->main.base = raw_alloc(a, cap);
        a->main.cap = a->main.base ? cap : 0;
    }
    a->main.used = 0;
    a->step_bytes = 0;
}

static tema_arena_mark arena_mark(const arena *a)
{
    return (tema_arena_mark){.used = a->main.used,
                             .n_extra = a->n_extra,
                             .extra_used = a->n_extra ? a->extra[a->n_extra - 1].used : 0,
                             .step_bytes = a->step_bytes};
}

/* Back to a point of this step (see tema_graph_rewind): blocks chained after it are freed,
 * the high-water mark keeps what the step needed at its largest. */
static void arena_rewind(arena *a, const tema_arena_mark *m)
{
    for (size_t i = m->n_extra; i < a->n_extra; i++) raw_free(a, a->extra[i].base);
    a->n_extra = m->n_extra;
    if (m->n_extra) a->extra[m->n_extra - 1].used = m->extra_used;
    a->main.used = m->used;
    a->step_bytes = m->step_bytes;
}

static void arena_free(arena *a)
{
    for (size_t i = 0; i < a->n_extra; i++) raw_free(a, a->extra[i].base);
    raw_free(a, a->main.base);
    free(a->extra);
    memset(a, 0, sizeof *a);
}

static size_t arena_capacity(const arena *a)
{
    size_t c = a->main.cap;
    for (size_t i = 0; i < a->n_extra; i++) c += a->extra[i].cap;
    return c;
}

/* ---------------------------------------------------------------- graph and tape */

typedef enum op_kind {
    OP_VIEW, OP_MATMUL, OP_LINEAR, OP_GATHER, OP_BINARY, OP_UNARY, OP_LAYERNORM, OP_DROPOUT, OP_SOFTMAX,
    OP_CONCAT, OP_SLICE, OP_TRANSPOSE12, OP_L2NORM, OP_LOGSUMEXP, OP_SUM, OP_XENT, OP_ROWDOT, OP_LSE_CHUNKED,
    OP_LOGADDEXP_N, OP_WMEAN
} op_kind;

typedef struct lse_group lse_group;

typedef struct node {
    op_kind op;
    int sub;                 /* unary / binary op, or a flag */
    tema_tensor *out;
    tema_tensor *in[3];
    tema_tensor **ins;       /* concat / logaddexp_n inputs (host arena) */
    int n_in;
    bool b0, b1;             /* transposes */
    float f0;
    int64_t i0, i1, i2, i3;
    uint64_t seed;
    void *aux0, *aux1, *aux2; /* backend memory saved for backward */
    const float *hf;         /* host floats (log weights) */
    lse_group *groups;
} node;

struct tema_graph {
    uint64_t seed, step_seed;
    bool training;
    arena dev, host;
    node *nodes;
    size_t n_nodes, cap_nodes;
    uint64_t n_dropouts;     /* dropout calls this step, to derive their seeds */
    char err[1024];
};

tema_graph *tema_graph_new(uint64_t seed)
{
    tema_graph *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->seed = seed;
    g->dev.device = true;
    return g;
}

void tema_graph_free(tema_graph *g)
{
    if (!g) return;
    arena_free(&g->dev);
    arena_free(&g->host);
    free(g->nodes);
    free(g);
}

void tema_graph_reset(tema_graph *g, bool training, uint64_t step_seed)
{
    if (!g) return;
    arena_reset(&g->dev);
    arena_reset(&g->host);
    g->n_nodes = 0;
    g->training = training;
    g->step_seed = step_seed;
    g->n_dropouts = 0;
    g->err[0] = 0;
}

tema_graph_mark tema_graph_mark_now(const tema_graph *g)
{
    return (tema_graph_mark){.dev = arena_mark(&g->dev), .host = arena_mark(&g->host), .nodes = g->n_nodes};
}

void tema_graph_rewind(tema_graph *g, const tema_graph_mark *m)
{
    arena_rewind(&g->dev, &m->dev);
    arena_rewind(&g->host, &m->host);
    g->n_nodes = m->nodes;
}

size_t tema_graph_peak_bytes(const tema_graph *g)
{
    if (!g) return 0;
    size_t a = arena_capacity(&g->dev), b = g->dev.high;
    return a > b ? a : b;
}

__attribute__((format(printf, 2, 3))) static void *gfail(tema_graph *g, const char *fmt, ...)
{
    if (g && !g->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->err, sizeof g->err, fmt, ap);
        va_end(ap);
    }
    return NULL;
}

static void *dev_alloc(tema_graph *g, size_t bytes)
{
    void *p = arena_alloc(&g->dev, bytes);
    if (!p) gfail(g, "out of memory: the graph arena could not grow by %zu bytes; hint: lower batch_size", bytes);
    return p;
}

static void *host_alloc(tema_graph *g, size_t bytes)
{
    void *p = arena_alloc(&g->host, bytes);
    if (!p) gfail(g, "out of host memory (%zu bytes) in the graph arena", bytes);
    return p;
}

static bool needs_grad(const tema_tensor *t) { return t && (t->flags & TEMA_TENSOR_NEEDS_GRAD); }

static tema_tensor *new_tensor(tema_graph *g, int ndim, const int64_t *shape)
{
    if (ndim < 1 || ndim > TEMA_MAX_DIMS) return gfail(g, "tensor with %d dimensions (1..4 allowed)", ndim);
    tema_tensor *t = host_alloc(g, sizeof *t);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    t->size = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return gfail(g, "tensor with a negative dimension");
        t->shape[i] = shape[i];
        t->size *= shape[i];
    }
    t->data = dev_alloc(g, (size_t)t->size * sizeof(float));
    return t->data ? t : NULL;
}

static float *dev_floats(tema_graph *g, int64_t n) { return dev_alloc(g, (size_t)(n > 0 ? n : 1) * sizeof(float)); }

static int32_t *dev_ids(tema_graph *g, const int32_t *host, int64_t n)
{
    int32_t *d = dev_alloc(g, (size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    if (d && n > 0) g_be->to_device(g_bs, d, host, (size_t)n * sizeof(int32_t));
    return d;
}

/* Push a node when any input needs a gradient; marks the output. */
static node *record(tema_graph *g, op_kind op, tema_tensor *out, tema_tensor *a, tema_tensor *b, tema_tensor *c)
{
    if (!needs_grad(a) && !needs_grad(b) && !needs_grad(c)) return NULL;
    if (g->n_nodes == g->cap_nodes) {
        size_t cap = g->cap_nodes ? 2 * g->cap_nodes : 256;
        node *n = realloc(g->nodes, cap * sizeof *n);
        if (!n) return gfail(g, "out of memory growing the tape");
        g->nodes = n;
        g->cap_nodes = cap;
    }
    node *n = &g->nodes[g->n_nodes++];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->out = out;
    n->in[0] = a;
    n->in[1] = b;
    n->in[2] = c;
    out->flags |= TEMA_TENSOR_NEEDS_GRAD;
    return n;
}

/* Validates an input tensor; a NULL input means an earlier op failed (error kept). */
static bool ok_in(tema_graph *g, const tema_tensor *t, const char *op)
{
    if (!g) return false;
    if (!g_be) return gfail(g, "%s: no compute backend selected; hint: call tema_engine_set_backend()", op), false;
    if (!t) return gfail(g, "%s: input tensor is NULL (an earlier op failed?)", op), false;
    if (!t->data)
        return gfail(g, "%s: tensor '%s' has no data; hint: parameters are usable only after tema_params_finalize",
                     op, t->name ? t->name : "?"),
               false;
    return true;
}

static int64_t last_dim(const tema_tensor *t) { return t->shape[t->ndim - 1]; }
static int64_t rows_of(const tema_tensor *t) { int64_t d = last_dim(t); return d ? t->size / d : 0; }

static const char *shape_s(const tema_tensor *t, char *buf, size_t cap)
{
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < t->ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
    return buf;
}

/* Gradient buffer of t, created zeroed in the arena the first time backward needs it. */
static float *grad_of(tema_graph *g, tema_tensor *t)
{
    if (!needs_grad(t)) return NULL;
    if (!t->grad) {
        t->grad = dev_floats(g, t->size);
        if (t->grad) g_be->memset0(g_bs, t->grad, (size_t)t->size * sizeof(float));
    }
    return t->grad;
}

static bool check_ids(tema_graph *g, const char *op, const int32_t *ids, int64_t n, int64_t limit)
{
    if (n > 0 && !ids) return gfail(g, "%s: index array is NULL", op), false;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < -1 || ids[i] >= limit)
            return gfail(g, "%s: index %lld is %d, outside [-1, %lld); hint: item ids are 0-based global ids", op,
                         (long long)i, ids[i], (long long)limit),
                   false;
    return true;
}

/* ---------------------------------------------------------------- api: graph state */

static bool nn_training(const tema_graph *g) { return g && g->training; }
static const char *nn_error(const tema_graph *g) { return g ? g->err : "no graph"; }

static int32_t *nn_ids(tema_graph *g, const int32_t *host, int64_t n)
{
    if (!g) return NULL;
    if (n < 0 || (n > 0 && !host)) return gfail(g, "ids: bad array (n = %lld)", (long long)n);
    int32_t *p = host_alloc(g, (size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    if (p && n > 0) memcpy(p, host, (size_t)n * sizeof(int32_t));
    return p;
}

static tema_tensor *nn_tensor(tema_graph *g, int ndim, const int64_t *shape, const float *host)
{
    if (!g) return NULL;
    if (!g_be) return gfail(g, "tensor: no compute backend selected");
    if (!shape) return gfail(g, "tensor: shape is NULL");
    tema_tensor *t = new_tensor(g, ndim, shape);
    if (!t) return NULL;
    if (host) g_be->to_device(g_bs, t->data, host, (size_t)t->size * sizeof(float));
    else g_be->memset0(g_bs, t->data, (size_t)t->size * sizeof(float));
    return t;
}

static tema_tensor *nn_reshape(tema_graph *g, tema_tensor *x, int ndim, const int64_t *shape)
{
    if (!ok_in(g, x, "reshape")) return NULL;
    if (ndim < 1 || ndim > TEMA_MAX_DIMS || !shape) return gfail(g, "reshape: %d dimensions (1..4 allowed)", ndim);
    int64_t size = 1;
    for (int i = 0; i < ndim; i++) size *= shape[i];
    if (size != x->size)
        return gfail(g, "reshape: %lld elements cannot become %lld", (long long)x->size, (long long)size);
    tema_tensor *t = host_alloc(g, sizeof *t);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->data = x->data;
    t->ndim = ndim;
    t->size = size;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    /* The view's gradient is its own buffer, added into x's on the way back. */
    record(g, OP_VIEW, t, x, NULL, NULL);
    return t;
}

/* ---------------------------------------------------------------- api: ops */

static tema_tensor *nn_matmul(tema_graph *g, tema_tensor *a, bool ta, tema_tensor *b, bool tb)
{
    if (!ok_in(g, a, "matmul") || !ok_in(g, b, "matmul")) return NULL;
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
        return gfail(g, "matmul: shapes %s and %s: both must be 2-D, or 3-D with the same batch",
                     shape_s(a, s1, sizeof s1), shape_s(b, s2, sizeof s2));
    }
    rb = b->shape[b->ndim - 2];
    cb = b->shape[b->ndim - 1];
    int64_t M = ta ? ca : ra, K = ta ? ra : ca, Kb = tb ? cb : rb, N = tb ? rb : cb;
    if (K != Kb)
        return gfail(g, "matmul: inner dimensions differ (%lld vs %lld) for %s%s @ %s%s", (long long)K,
                     (long long)Kb, shape_s(a, s1, sizeof s1), ta ? "^T" : "", shape_s(b, s2, sizeof s2),
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
    g_be->sgemm(g_bs, ta, tb, M, N, K, 1.0f, a->data, ca, sa, b->data, cb, sb, 0.0f, out->data, N, M * N, batch);
    node *n = record(g, OP_MATMUL, out, a, b, NULL);
    if (n) {
        n->b0 = ta, n->b1 = tb;
        n->i0 = M, n->i1 = N, n->i2 = K, n->i3 = batch;
    }
    return out;
}

static void bwd_matmul(tema_graph *g, node *n)
{
    tema_tensor *a = n->in[0], *b = n->in[1];
    bool ta = n->b0, tb = n->b1;
    int64_t M = n->i0, N = n->i1, K = n->i2, batch = n->i3;
    int64_t ca = last_dim(a), cb = last_dim(b);
    int64_t sa = M * K, sb = b->ndim == 3 ? K * N : 0, sc = M * N;
    const float *dc = n->out->grad;
    float *da = grad_of(g, a), *db = grad_of(g, b);
    if (da) {
        if (!ta) g_be->sgemm(g_bs, false, !tb, M, K, N, 1.0f, dc, N, sc, b->data, cb, sb, 1.0f, da, ca, sa, batch);
        else g_be->sgemm(g_bs, tb, true, K, M, N, 1.0f, b->data, cb, sb, dc, N, sc, 1.0f, da, ca, sa, batch);
    }
    if (db) {
        /* A 2-D b shared by a batch: accumulate batch by batch into the same gradient. */
        for (int64_t i = 0; i < (sb ? 1 : batch); i++) {
            int64_t nb = sb ? batch : 1, off_a = sb ? 0 : i * sa, off_c = sb ? 0 : i * sc;
            if (!tb)
                g_be->sgemm(g_bs, !ta, false, K, N, M, 1.0f, a->data + off_a, ca, sa, dc + off_c, N, sc, 1.0f, db, cb,
                            sb, nb);
            else
                g_be->sgemm(g_bs, true, ta, N, K, M, 1.0f, dc + off_c, N, sc, a->data + off_a, ca, sa, 1.0f, db, cb,
                            sb, nb);
        }
    }
}

static tema_tensor *nn_linear(tema_graph *g, tema_tensor *x, tema_tensor *w, tema_tensor *b)
{
    if (!ok_in(g, x, "linear") || !ok_in(g, w, "linear") || (b && !ok_in(g, b, "linear"))) return NULL;
    char s1[96], s2[96];
    int64_t in = last_dim(x);
    if (w->ndim != 2 || w->shape[1] != in)
        return gfail(g, "linear: weight %s does not match input %s (want [out,%lld])", shape_s(w, s1, sizeof s1),
                     shape_s(x, s2, sizeof s2), (long long)in);
    int64_t outd = w->shape[0], rows = rows_of(x);
    if (b && b->size != outd) return gfail(g, "linear: bias has %lld elements, want %lld", (long long)b->size, (long long)outd);
    int64_t shape[TEMA_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = outd;
    tema_tensor *out = new_tensor(g, x->ndim, shape);
    if (!out) return NULL;
    g_be->sgemm(g_bs, false, true, rows, outd, in, 1.0f, x->data, in, 0, w->data, in, 0, 0.0f, out->data, outd, 0, 1);
    if (b) g_be->binary(g_bs, TEMA_BINARY_ADD, out->size, out->data, b->data, outd, out->data);
    node *n = record(g, OP_LINEAR, out, x, w, b);
    if (n) n->i0 = rows, n->i1 = in, n->i2 = outd;
    return out;
}

static void bwd_linear(tema_graph *g, node *n)
{
    tema_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    int64_t rows = n->i0, in = n->i1, outd = n->i2;
    const float *dy = n->out->grad;
    float *dx = grad_of(g, x), *dw = grad_of(g, w), *db = b ? grad_of(g, b) : NULL;
    if (dx) g_be->sgemm(g_bs, false, false, rows, in, outd, 1.0f, dy, outd, 0, w->data, in, 0, 1.0f, dx, in, 0, 1);
    if (dw) g_be->sgemm(g_bs, true, false, outd, in, rows, 1.0f, dy, outd, 0, x->data, in, 0, 1.0f, dw, in, 0, 1);
    if (db) g_be->binary_bwd(g_bs, TEMA_BINARY_ADD, rows * outd, NULL, NULL, outd, dy, NULL, db);
}

static tema_tensor *gather_common(tema_graph *g, tema_tensor *x, const int32_t *idx, int64_t n, const char *op)
{
    if (!ok_in(g, x, op)) return NULL;
    if (n < 0) return gfail(g, "%s: negative count", op);
    if (!check_ids(g, op, idx, n, x->shape[0])) return NULL;
    int64_t shape[TEMA_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[0] = n;
    int64_t dim = x->shape[0] ? x->size / x->shape[0] : 0;
    tema_tensor *out = new_tensor(g, x->ndim, shape);
    if (!out) return NULL;
    int32_t *ids = dev_ids(g, idx, n);
    if (!ids) return NULL;
    g_be->gather(g_bs, n, dim, ids, x->data, out->data);
    node *nd = record(g, OP_GATHER, out, x, NULL, NULL);
    if (nd) nd->aux0 = ids, nd->i0 = n, nd->i1 = dim;
    return out;
}

static tema_tensor *nn_embedding(tema_graph *g, tema_tensor *table, const int32_t *ids, int64_t n)
{
    if (table && table->ndim != 2) return gfail(g, "embedding: table must be 2-D [n_items, dim]");
    return gather_common(g, table, ids, n, "embedding");
}

static tema_tensor *nn_gather_rows(tema_graph *g, tema_tensor *x, const int32_t *idx, int64_t n)
{
    return gather_common(g, x, idx, n, "gather_rows");
}

static tema_tensor *binary_op(tema_graph *g, tema_tensor *a, tema_tensor *b, tema_binary_op op, const char *name)
{
    if (!ok_in(g, a, name) || !ok_in(g, b, name)) return NULL;
    int64_t bn;
    if (b->size == a->size) bn = a->size;
    else if (b->ndim == 1 && b->size == last_dim(a)) bn = b->size;
    else {
        char s1[96], s2[96];
        return gfail(g, "%s: shapes %s and %s: b must have a's shape or be [last dim]", name,
                     shape_s(a, s1, sizeof s1), shape_s(b, s2, sizeof s2));
    }
    tema_tensor *out = new_tensor(g, a->ndim, a->shape);
    if (!out) return NULL;
    if (bn == 0) return out;
    g_be->binary(g_bs, op, a->size, a->data, b->data, bn, out->data);
    node *n = record(g, OP_BINARY, out, a, b, NULL);
    if (n) n->sub = op, n->i0 = bn;
    return out;
}

static tema_tensor *nn_add(tema_graph *g, tema_tensor *a, tema_tensor *b) { return binary_op(g, a, b, TEMA_BINARY_ADD, "add"); }
static tema_tensor *nn_mul(tema_graph *g, tema_tensor *a, tema_tensor *b) { return binary_op(g, a, b, TEMA_BINARY_MUL, "mul"); }

static tema_tensor *unary_op(tema_graph *g, tema_tensor *x, tema_unary_op op, float alpha, const char *name)
{
    if (!ok_in(g, x, name)) return NULL;
    tema_tensor *out = new_tensor(g, x->ndim, x->shape);
    if (!out) return NULL;
    g_be->unary(g_bs, op, x->size, alpha, x->data, out->data);
    node *n = record(g, OP_UNARY, out, x, NULL, NULL);
    if (n) n->sub = op, n->f0 = alpha;
    return out;
}

static tema_tensor *nn_scale(tema_graph *g, tema_tensor *a, float s) { return unary_op(g, a, TEMA_UNARY_SCALE, s, "scale"); }
static tema_tensor *nn_gelu(tema_graph *g, tema_tensor *x) { return unary_op(g, x, TEMA_UNARY_GELU, 0, "gelu"); }
static tema_tensor *nn_relu(tema_graph *g, tema_tensor *x) { return unary_op(g, x, TEMA_UNARY_RELU, 0, "relu"); }
static tema_tensor *nn_sigmoid(tema_graph *g, tema_tensor *x) { return unary_op(g, x, TEMA_UNARY_SIGMOID, 0, "sigmoid"); }
static tema_tensor *nn_tanh(tema_graph *g, tema_tensor *x) { return unary_op(g, x, TEMA_UNARY_TANH, 0, "tanh"); }

static tema_tensor *nn_layernorm(tema_graph *g, tema_tensor *x, tema_tensor *gamma, tema_tensor *beta, float eps)
{
    if (!ok_in(g, x, "layernorm") || (gamma && !ok_in(g, gamma, "layernorm")) || (beta && !ok_in(g, beta, "layernorm")))
        return NULL;
    int64_t dim = last_dim(x), rows = rows_of(x);
    if ((gamma && gamma->size != dim) || (beta && beta->size != dim))
        return gfail(g, "layernorm: gamma/beta must have %lld elements (the last dim)", (long long)dim);
    if (!(eps > 0)) return gfail(g, "layernorm: eps must be > 0");
    tema_tensor *out = new_tensor(g, x->ndim, x->shape);
    float *stats = dev_floats(g, 2 * rows);
    if (!out || !stats) return NULL;
    g_be->layernorm(g_bs, rows, dim, eps, x->data, gamma ? gamma->data : NULL, beta ? beta->data : NULL, out->data,
                    stats, stats + rows);
    node *n = record(g, OP_LAYERNORM, out, x, gamma, beta);
    if (n) n->aux0 = stats, n->i0 = rows, n->i1 = dim;
    return out;
}

static void bwd_layernorm(tema_graph *g, node *n)
{
    tema_tensor *x = n->in[0], *gamma = n->in[1], *beta = n->in[2];
    float *stats = n->aux0;
    float *dx = grad_of(g, x), *dg = gamma ? grad_of(g, gamma) : NULL, *dbeta = beta ? grad_of(g, beta) : NULL;
    g_be->layernorm_bwd(g_bs, n->i0, n->i1, x->data, gamma ? gamma->data : NULL, stats, stats + n->i0,
                        n->out->grad, dx, dg, dbeta);
}

static tema_tensor *nn_dropout(tema_graph *g, tema_tensor *x, float p)
{
    if (!ok_in(g, x, "dropout")) return NULL;
    if (!(p >= 0.0f && p < 1.0f)) return gfail(g, "dropout: p = %g is outside [0, 1); hint: dropout: 0.1", p);
    if (!g->training || p == 0.0f) return x;
    /* One seed per dropout call: depends on the graph seed, the step seed and the call's
     * position in the step, so a rerun with the same seeds gives the same masks. */
    uint64_t key[3] = {g->seed, g->step_seed, g->n_dropouts++};
    uint64_t seed = tema_hash64(key, sizeof key);
    tema_tensor *out = new_tensor(g, x->ndim, x->shape);
    if (!out) return NULL;
    g_be->dropout(g_bs, x->size, p, seed, x->data, out->data);
    node *n = record(g, OP_DROPOUT, out, x, NULL, NULL);
    if (n) n->f0 = p, n->seed = seed;
    return out;
}

static tema_tensor *nn_softmax(tema_graph *g, tema_tensor *x, const uint8_t *mask, bool causal)
{
    if (!ok_in(g, x, "softmax")) return NULL;
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
    node *n = record(g, OP_SOFTMAX, out, x, NULL, NULL);
    if (n) n->i0 = rows, n->i1 = dim;
    return out;
}

static tema_tensor *nn_concat(tema_graph *g, tema_tensor *const *xs, int nx)
{
    if (!g) return NULL;
    if (nx < 1 || !xs) return gfail(g, "concat: needs at least one tensor");
    int64_t total = 0;
    for (int i = 0; i < nx; i++) {
        if (!ok_in(g, xs[i], "concat")) return NULL;
        if (xs[i]->ndim != xs[0]->ndim || rows_of(xs[i]) != rows_of(xs[0]))
            return gfail(g, "concat: tensor %d has different leading dimensions than tensor 0", i);
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
        out->flags |= TEMA_TENSOR_NEEDS_GRAD; /* `out` stands in for the n inputs */
        node *n = record(g, OP_CONCAT, out, out, NULL, NULL);
        if (n) n->ins = ins, n->n_in = nx, n->i0 = rows, n->i1 = total;
    }
    return out;
}

static tema_tensor *nn_slice(tema_graph *g, tema_tensor *x, int64_t start, int64_t len)
{
    if (!ok_in(g, x, "slice")) return NULL;
    int64_t dim = last_dim(x), rows = rows_of(x);
    if (start < 0 || len < 0 || start + len > dim)
        return gfail(g, "slice: [%lld, %lld) is outside the last dimension (%lld)", (long long)start,
                     (long long)(start + len), (long long)dim);
    int64_t shape[TEMA_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = len;
    tema_tensor *out = new_tensor(g, x->ndim, shape);
    if (!out) return NULL;
    g_be->copy2d(g_bs, rows, len, x->data + start, dim, out->data, len, false);
    node *n = record(g, OP_SLICE, out, x, NULL, NULL);
    if (n) n->i0 = rows, n->i1 = dim, n->i2 = start, n->i3 = len;
    return out;
}

static tema_tensor *nn_transpose12(tema_graph *g, tema_tensor *x)
{
    if (!ok_in(g, x, "transpose12")) return NULL;
    if (x->ndim != 4) return gfail(g, "transpose12: needs a 4-D tensor [B,L,H,D], got %d-D", x->ndim);
    int64_t shape[4] = {x->shape[0], x->shape[2], x->shape[1], x->shape[3]};
    tema_tensor *out = new_tensor(g, 4, shape);
    if (!out) return NULL;
    g_be->permute0213(g_bs, x->shape[0], x->shape[1], x->shape[2], x->shape[3], x->data, out->data, false);
    record(g, OP_TRANSPOSE12, out, x, NULL, NULL);
    return out;
}

static tema_tensor *nn_l2norm(tema_graph *g, tema_tensor *x, float eps)
{
    if (!ok_in(g, x, "l2norm")) return NULL;
    if (!(eps > 0)) return gfail(g, "l2norm: eps must be > 0");
    int64_t dim = last_dim(x), rows = rows_of(x);
    tema_tensor *out = new_tensor(g, x->ndim, x->shape);
    float *norm = dev_floats(g, rows);
    if (!out || !norm) return NULL;
    g_be->l2norm(g_bs, rows, dim, eps, x->data, out->data, norm);
    node *n = record(g, OP_L2NORM, out, x, NULL, NULL);
    if (n) n->aux0 = norm, n->i0 = rows, n->i1 = dim, n->f0 = eps;
    return out;
}

/* [..., dim] -> [...] ([1] for a vector). */
static tema_tensor *rows_tensor(tema_graph *g, const tema_tensor *x)
{
    if (x->ndim == 1) return new_tensor(g, 1, (int64_t[]){1});
    return new_tensor(g, x->ndim - 1, x->shape);
}

static tema_tensor *nn_logsumexp(tema_graph *g, tema_tensor *x)
{
    if (!ok_in(g, x, "logsumexp")) return NULL;
    int64_t dim = last_dim(x), rows = rows_of(x);
    tema_tensor *out = rows_tensor(g, x);
    if (!out) return NULL;
    g_be->logsumexp(g_bs, rows, dim, x->data, out->data);
    node *n = record(g, OP_LOGSUMEXP, out, x, NULL, NULL);
    if (n) n->i0 = rows, n->i1 = dim;
    return out;
}

static tema_tensor *reduce_op(tema_graph *g, tema_tensor *x, bool mean)
{
    if (!ok_in(g, x, mean ? "mean" : "sum")) return NULL;
    tema_tensor *out = new_tensor(g, 1, (int64_t[]){1});
    if (!out) return NULL;
    float scale = mean ? (x->size ? 1.0f / (float)x->size : 0.0f) : 1.0f;
    g_be->dot(g_bs, x->size, x->data, NULL, scale, out->data);
    node *n = record(g, OP_SUM, out, x, NULL, NULL);
    if (n) n->f0 = scale;
    return out;
}

static tema_tensor *nn_sum(tema_graph *g, tema_tensor *x) { return reduce_op(g, x, false); }
static tema_tensor *nn_mean(tema_graph *g, tema_tensor *x) { return reduce_op(g, x, true); }

static tema_tensor *nn_cross_entropy(tema_graph *g, tema_tensor *logits, const int32_t *targets)
{
    if (!ok_in(g, logits, "cross_entropy")) return NULL;
    int64_t C = last_dim(logits), rows = rows_of(logits);
    if (!check_ids(g, "cross_entropy", targets, rows, C)) return NULL;
    int64_t valid = 0;
    for (int64_t r = 0; r < rows; r++) valid += targets[r] >= 0;
    tema_tensor *out = new_tensor(g, 1, (int64_t[]){1});
    float *loss = dev_floats(g, 2 * rows);
    int32_t *t = dev_ids(g, targets, rows);
    if (!out || !loss || !t) return NULL;
    float scale = valid ? 1.0f / (float)valid : 0.0f;
    g_be->xent(g_bs, rows, C, logits->data, t, loss, loss + rows);
    g_be->dot(g_bs, rows, loss, NULL, scale, out->data);
    node *n = record(g, OP_XENT, out, logits, NULL, NULL);
    if (n) n->aux0 = t, n->aux1 = loss + rows, n->i0 = rows, n->i1 = C, n->f0 = scale;
    return out;
}

static tema_tensor *nn_rowdot(tema_graph *g, tema_tensor *h, tema_tensor *items, const int32_t *targets, float inv_temp)
{
    if (!ok_in(g, h, "rowdot") || !ok_in(g, items, "rowdot")) return NULL;
    int64_t d = last_dim(h), rows = rows_of(h);
    if (items->ndim != 2 || items->shape[1] != d)
        return gfail(g, "rowdot: items must be [n, %lld] to match h", (long long)d);
    if (!check_ids(g, "rowdot", targets, rows, items->shape[0])) return NULL;
    tema_tensor *out = new_tensor(g, 1, (int64_t[]){rows});
    int32_t *t = dev_ids(g, targets, rows);
    if (!out || !t) return NULL;
    g_be->rowdot(g_bs, rows, d, inv_temp, h->data, items->data, t, out->data);
    node *n = record(g, OP_ROWDOT, out, h, items, NULL);
    if (n) n->aux0 = t, n->i0 = rows, n->i1 = d, n->f0 = inv_temp;
    return out;
}

/* ---- lse_chunked ----
 * Rows are grouped by their exact [lo,hi) range (usually one group per domain), and each
 * group runs over its own range only, so two domains cost rows_x*n_x + rows_y*n_y
 * products instead of all rows times the union. With too many distinct ranges the rows
 * form one group over the union and the kernels mask per row. */
#define LSE_MAX_GROUPS 8

struct lse_group {
    int64_t rows;
    int32_t lo, hi;          /* union range of the group */
    int32_t *perm;           /* backend: rows of h in this group (NULL = all rows, in order) */
    int32_t *lo_d, *hi_d;    /* backend: per-row ranges of the group */
    float *h;                /* backend: the group's rows of h (== h->data when perm is NULL) */
    float *lse;              /* backend: [rows] results */
};

static void lse_forward_group(const lse_group *gr, const float *items, int64_t d, float inv_temp,
                              int64_t chunk, float *logits, float *m, float *s)
{
    g_be->lse_init(g_bs, gr->rows, m, s);
    for (int64_t c0 = gr->lo; c0 < gr->hi; c0 += chunk) {
        int64_t cols = gr->hi - c0 < chunk ? gr->hi - c0 : chunk;
        g_be->sgemm(g_bs, false, true, gr->rows, cols, d, inv_temp, gr->h, d, 0, items + c0 * d, d, 0, 0.0f, logits,
                    cols, 0, 1);
        g_be->lse_update(g_bs, gr->rows, cols, c0, logits, cols, gr->lo_d, gr->hi_d, m, s);
    }
    g_be->lse_finish(g_bs, gr->rows, m, s, gr->lse);
}

static tema_tensor *nn_lse_chunked(tema_graph *g, tema_tensor *h, tema_tensor *items, const int32_t *lo,
                                   const int32_t *hi, float inv_temp, int64_t chunk)
{
    if (!ok_in(g, h, "lse_chunked") || !ok_in(g, items, "lse_chunked")) return NULL;
    int64_t d = last_dim(h), R = rows_of(h), N = items->shape[0];
    if (items->ndim != 2 || items->shape[1] != d)
        return gfail(g, "lse_chunked: items must be [n, %lld] to match h", (long long)d);
    if (chunk < 1) return gfail(g, "lse_chunked: chunk = %lld must be >= 1", (long long)chunk);
    if (R > 0 && (!lo || !hi)) return gfail(g, "lse_chunked: lo/hi arrays are NULL");
    for (int64_t r = 0; r < R; r++)
        if (lo[r] < 0 || hi[r] > N || (lo[r] < hi[r] && lo[r] >= N))
            return gfail(g, "lse_chunked: row %lld has range [%d, %d) outside [0, %lld)", (long long)r, lo[r], hi[r],
                         (long long)N);
    tema_tensor *out = new_tensor(g, 1, (int64_t[]){R});
    if (!out) return NULL;
    g_be->memset0(g_bs, out->data, (size_t)R * sizeof(float));

    /* Group the non-empty rows by range. */
    int32_t glo[LSE_MAX_GROUPS], ghi[LSE_MAX_GROUPS];
    int64_t gcount[LSE_MAX_GROUPS] = {0};
    int ng = 0;
    bool many = false;
    int64_t nonempty = 0;
    for (int64_t r = 0; r < R && !many; r++) {
        if (lo[r] >= hi[r]) continue;
        nonempty++;
        int k = 0;
        while (k < ng && !(glo[k] == lo[r] && ghi[k] == hi[r])) k++;
        if (k == ng) {
            if (ng == LSE_MAX_GROUPS) {
                many = true;
                break;
            }
            glo[ng] = lo[r], ghi[ng] = hi[r], ng++;
        }
        gcount[k]++;
    }
    if (many) { /* one group over the union range */
        ng = 1;
        glo[0] = INT32_MAX, ghi[0] = 0, gcount[0] = 0;
        for (int64_t r = 0; r < R; r++)
            if (lo[r] < hi[r]) {
                gcount[0]++;
                glo[0] = lo[r] < glo[0] ? lo[r] : glo[0];
                ghi[0] = hi[r] > ghi[0] ? hi[r] : ghi[0];
            }
        nonempty = gcount[0];
    }
    if (ng == 0) { /* every row empty: all zeros, no gradient */
        record(g, OP_LSE_CHUNKED, out, NULL, NULL, NULL);
        return out;
    }
    lse_group *groups = host_alloc(g, sizeof(lse_group) * (size_t)ng);
    int32_t *hbuf = host_alloc(g, sizeof(int32_t) * 3 * (size_t)(R > 0 ? R : 1));
    if (!groups || !hbuf) return NULL;
    int64_t max_rows = 0;
    for (int k = 0; k < ng; k++) {
        lse_group *gr = &groups[k];
        memset(gr, 0, sizeof *gr);
        gr->rows = gcount[k];
        gr->lo = glo[k], gr->hi = ghi[k];
        max_rows = gr->rows > max_rows ? gr->rows : max_rows;
        bool all_in_order = ng == 1 && nonempty == R;
        int32_t *perm = hbuf, *glo_h = hbuf + R, *ghi_h = hbuf + 2 * R;
        int64_t j = 0;
        for (int64_t r = 0; r < R; r++) {
            bool in = many ? lo[r] < hi[r] : (lo[r] == glo[k] && hi[r] == ghi[k]);
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
    int64_t span = 0;
    for (int k = 0; k < ng; k++) span = ghi[k] - glo[k] > span ? ghi[k] - glo[k] : span;
    int64_t cw = chunk < span ? chunk : span;
    float *logits = dev_floats(g, max_rows * cw);
    float *ms = dev_floats(g, 2 * max_rows);
    if (!logits || !ms) return NULL;
    for (int k = 0; k < ng; k++) {
        lse_group *gr = &groups[k];
        lse_forward_group(gr, items->data, d, inv_temp, chunk, logits, ms, ms + max_rows);
        if (gr->perm) g_be->scatter_add(g_bs, gr->rows, 1, gr->perm, gr->lse, out->data);
        else g_be->copy(g_bs, out->data, gr->lse, (size_t)R * sizeof(float));
    }
    node *n = record(g, OP_LSE_CHUNKED, out, h, items, NULL);
    if (n) {
        n->groups = groups, n->n_in = ng, n->aux0 = logits, n->aux1 = ms;
        n->i0 = R, n->i1 = d, n->i2 = chunk, n->i3 = max_rows, n->f0 = inv_temp;
    }
    return out;
}

static void bwd_lse_chunked(tema_graph *g, node *n)
{
    tema_tensor *h = n->in[0], *items = n->in[1];
    int64_t d = n->i1, chunk = n->i2;
    float inv_temp = n->f0;
    float *dh = grad_of(g, h), *ditems = grad_of(g, items);
    float *logits = n->aux0, *dout_g = n->aux1; /* forward scratch, free again now */
    for (int k = 0; k < n->n_in; k++) {
        lse_group *gr = &n->groups[k];
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
            g_be->sgemm(g_bs, false, true, gr->rows, cols, d, inv_temp, gr->h, d, 0, ic, d, 0, 0.0f, logits, cols, 0, 1);
            g_be->lse_grad(g_bs, gr->rows, cols, c0, logits, cols, gr->lo_d, gr->hi_d, gr->lse, dout_g, inv_temp);
            if (dhg)
                g_be->sgemm(g_bs, false, false, gr->rows, d, cols, 1.0f, logits, cols, 0, ic, d, 0, 1.0f, dhg, d, 0, 1);
            if (ditems)
                g_be->sgemm(g_bs, true, false, cols, d, gr->rows, 1.0f, logits, cols, 0, gr->h, d, 0, 1.0f,
                            ditems + c0 * d, d, 0, 1);
        }
        if (gr->perm && dh) g_be->scatter_add(g_bs, gr->rows, d, gr->perm, dhg, dh);
    }
}

static tema_tensor *nn_logaddexp_n(tema_graph *g, tema_tensor *const *xs, const float *log_w, int nx)
{
    if (!g) return NULL;
    if (nx < 1 || !xs) return gfail(g, "logaddexp_n: needs at least one tensor");
    bool any = false;
    for (int i = 0; i < nx; i++) {
        if (!ok_in(g, xs[i], "logaddexp_n")) return NULL;
        if (xs[i]->size != xs[0]->size) return gfail(g, "logaddexp_n: tensor %d has a different size", i);
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
        out->flags |= TEMA_TENSOR_NEEDS_GRAD; /* `out` stands in for the n inputs */
        node *n = record(g, OP_LOGADDEXP_N, out, out, NULL, NULL);
        if (n) n->ins = ins, n->n_in = nx, n->hf = lw;
    }
    return out;
}

static tema_tensor *nn_mask_rows(tema_graph *g, tema_tensor *x, const uint8_t *keep)
{
    if (!ok_in(g, x, "mask_rows")) return NULL;
    if (!keep && x->size) return gfail(g, "mask_rows: mask is NULL");
    float *hm = host_alloc(g, sizeof(float) * (size_t)(x->size ? x->size : 1));
    float *dm = dev_floats(g, x->size);
    tema_tensor *out = new_tensor(g, x->ndim, x->shape);
    if (!hm || !dm || !out) return NULL;
    if (!x->size) return out;
    for (int64_t i = 0; i < x->size; i++) hm[i] = keep[i] ? 1.0f : 0.0f;
    g_be->to_device(g_bs, dm, hm, sizeof(float) * (size_t)x->size);
    g_be->binary(g_bs, TEMA_BINARY_MUL, x->size, x->data, dm, x->size, out->data);
    node *n = record(g, OP_BINARY, out, x, NULL, NULL); /* mask is a constant: no gradient */
    if (n) n->sub = TEMA_BINARY_MUL, n->i0 = x->size, n->aux0 = dm;
    return out;
}

static tema_tensor *nn_weighted_mean(tema_graph *g, tema_tensor *x, const float *w)
{
    if (!ok_in(g, x, "weighted_mean")) return NULL;
    if (!w && x->size) return gfail(g, "weighted_mean: weights are NULL");
    double sw = 0.0;
    for (int64_t i = 0; i < x->size; i++) sw += w[i];
    float *dw = dev_floats(g, x->size);
    tema_tensor *out = new_tensor(g, 1, (int64_t[]){1});
    if (!dw || !out) return NULL;
    float scale = sw != 0.0 ? (float)(1.0 / sw) : 0.0f;
    if (x->size) g_be->to_device(g_bs, dw, w, sizeof(float) * (size_t)x->size);
    g_be->dot(g_bs, x->size, x->data, dw, scale, out->data);
    node *n = record(g, OP_WMEAN, out, x, NULL, NULL);
    if (n) n->aux0 = dw, n->f0 = scale;
    return out;
}

/* ---------------------------------------------------------------- backward */

static void backward_node(tema_graph *g, node *n)
{
    tema_tensor *x = n->in[0], *b = n->in[1];
    const float *gy = n->out->grad;
    switch (n->op) {
    case OP_VIEW: {
        float *dx = grad_of(g, x);
        if (dx) g_be->axpy(g_bs, x->size, 1.0f, gy, dx);
        break;
    }
    case OP_MATMUL: bwd_matmul(g, n); break;
    case OP_LINEAR: bwd_linear(g, n); break;
    case OP_GATHER: {
        float *dx = grad_of(g, x);
        if (dx) g_be->scatter_add(g_bs, n->i0, n->i1, n->aux0, gy, dx);
        break;
    }
    case OP_BINARY: {
        if (n->aux0) { /* mask_rows: multiply by a constant mask */
            float *dx = grad_of(g, x);
            if (dx) g_be->binary_bwd(g_bs, TEMA_BINARY_MUL, x->size, x->data, n->aux0, n->i0, gy, dx, NULL);
            break;
        }
        float *da = grad_of(g, x), *db = grad_of(g, b);
        g_be->binary_bwd(g_bs, (tema_binary_op)n->sub, x->size, x->data, b->data, n->i0, gy, da, db);
        break;
    }
    case OP_UNARY: {
        float *dx = grad_of(g, x);
        if (dx) g_be->unary_bwd(g_bs, (tema_unary_op)n->sub, x->size, n->f0, x->data, n->out->data, gy, dx);
        break;
    }
    case OP_LAYERNORM: bwd_layernorm(g, n); break;
    case OP_DROPOUT: {
        float *dx = grad_of(g, x);
        if (dx) g_be->dropout_bwd(g_bs, x->size, n->f0, n->seed, gy, dx);
        break;
    }
    case OP_SOFTMAX: {
        float *dx = grad_of(g, x);
        if (dx) g_be->softmax_bwd(g_bs, n->i0, n->i1, n->out->data, gy, dx);
        break;
    }
    case OP_CONCAT: {
        int64_t off = 0;
        for (int i = 0; i < n->n_in; i++) {
            tema_tensor *xi = n->ins[i];
            int64_t w = last_dim(xi);
            float *dx = grad_of(g, xi);
            if (dx) g_be->copy2d(g_bs, n->i0, w, gy + off, n->i1, dx, w, true);
            off += w;
        }
        break;
    }
    case OP_SLICE: {
        float *dx = grad_of(g, x);
        if (dx) g_be->copy2d(g_bs, n->i0, n->i3, gy, n->i3, dx + n->i2, n->i1, true);
        break;
    }
    case OP_TRANSPOSE12: {
        float *dx = grad_of(g, x);
        if (dx) g_be->permute0213(g_bs, x->shape[0], x->shape[2], x->shape[1], x->shape[3], gy, dx, true);
        break;
    }
    case OP_L2NORM: {
        float *dx = grad_of(g, x);
        if (dx) g_be->l2norm_bwd(g_bs, n->i0, n->i1, n->f0, n->out->data, n->aux0, gy, dx);
        break;
    }
    case OP_LOGSUMEXP: {
        float *dx = grad_of(g, x);
        if (dx) g_be->logsumexp_bwd(g_bs, n->i0, n->i1, x->data, n->out->data, gy, dx);
        break;
    }
    case OP_SUM: {
        float *dx = grad_of(g, x);
        if (dx) g_be->axpy_scalar(g_bs, x->size, gy, n->f0, NULL, dx);
        break;
    }
    case OP_XENT: {
        float *dx = grad_of(g, x);
        if (dx) g_be->xent_bwd(g_bs, n->i0, n->i1, x->data, n->aux0, n->aux1, gy, n->f0, dx);
        break;
    }
    case OP_ROWDOT: {
        float *dh = grad_of(g, x), *di = grad_of(g, b);
        g_be->rowdot_bwd(g_bs, n->i0, n->i1, n->f0, x->data, b->data, n->aux0, gy, dh, di);
        break;
    }
    case OP_LSE_CHUNKED:
        if (x) bwd_lse_chunked(g, n);
        break;
    case OP_LOGADDEXP_N:
        for (int i = 0; i < n->n_in; i++) {
            float *dx = grad_of(g, n->ins[i]);
            if (dx) g_be->logaddexp_bwd(g_bs, n->out->size, n->ins[i]->data, n->hf[i], n->out->data, gy, dx);
        }
        break;
    case OP_WMEAN: {
        float *dx = grad_of(g, x);
        if (dx) g_be->axpy_scalar(g_bs, x->size, gy, n->f0, n->aux0, dx);
        break;
    }
    }
}

tema_status tema_graph_backward(tema_graph *g, tema_tensor *loss, tema_err *err)
{
    if (!g) return tema_fail(err, TEMA_EINVAL, "backward: no graph");
    if (g->err[0]) return tema_fail(err, TEMA_EINVAL, "backward: the forward pass failed: %s", g->err);
    if (!loss) return tema_fail(err, TEMA_EINVAL, "backward: loss is NULL");
    if (loss->size != 1)
        return tema_fail(err, TEMA_EINVAL, "backward: loss has %lld elements, want 1; hint: reduce with mean()",
                         (long long)loss->size);
    if (!needs_grad(loss)) return TEMA_OK; /* nothing learnable reached the loss */
    float one = 1.0f;
    float *gl = grad_of(g, loss);
    if (!gl) return tema_fail(err, TEMA_ENOMEM, "backward: %s", g->err);
    g_be->to_device(g_bs, gl, &one, sizeof one);
    for (size_t i = g->n_nodes; i-- > 0;) {
        node *n = &g->nodes[i];
        if (!n->out->grad) continue; /* no gradient reached this node */
        backward_node(g, n);
        if (g->err[0]) return tema_fail(err, TEMA_ENOMEM, "backward: %s", g->err);
    }
    return TEMA_OK;
}

/* ---------------------------------------------------------------- the table */

const tema_nn_api *tema_nn(void)
{
    static const tema_nn_api api = {
        .struct_size = sizeof(tema_nn_api),
        .param = tema_params_declare,
        .constant = tema_params_constant,
        .training = nn_training,
        .error = nn_error,
        .ids = nn_ids,
        .tensor = nn_tensor,
        .reshape = nn_reshape,
        .matmul = nn_matmul,
        .linear = nn_linear,
        .embedding = nn_embedding,
        .add = nn_add,
        .mul = nn_mul,
        .scale = nn_scale,
        .gelu = nn_gelu,
        .relu = nn_relu,
        .sigmoid = nn_sigmoid,
        .tanh = nn_tanh,
        .layernorm = nn_layernorm,
        .dropout = nn_dropout,
        .softmax = nn_softmax,
        .concat = nn_concat,
        .slice = nn_slice,
        .transpose12 = nn_transpose12,
        .l2norm = nn_l2norm,
        .logsumexp = nn_logsumexp,
        .gather_rows = nn_gather_rows,
        .sum = nn_sum,
        .mean = nn_mean,
        .cross_entropy = nn_cross_entropy,
        .rowdot = nn_rowdot,
        .lse_chunked = nn_lse_chunked,
        .logaddexp_n = nn_logaddexp_n,
        .mask_rows = nn_mask_rows,
        .weighted_mean = nn_weighted_mean,
    };
    return &api;
}
