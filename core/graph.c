/* core/graph.c - the per-step graph: arenas, tape, the graph-state entries of tema/nn.h, the
 * backward driver and the op table; the ops themselves are in core/ops_*.c.
 *
 * All arithmetic on tensor data goes through the active backend's kernels
 * (tema/backend.h); the graph and its ops only allocate, check shapes and drive the kernels.
 *
 * Memory: a graph owns two arenas, one of backend memory (tensor data, saved
 * statistics, index arrays, lazily created activation gradients) and one of host memory
 * (tensor structs, host copies of ids). Each is ONE block reused every step. When a step
 * needs more, extra blocks are chained for the rest of that step only; the next
 * tema_graph_reset() frees them and reallocates the main block at the high-water mark
 * (plus 1/8 slack), so after the first step or two no allocation happens at all.
 */
#include <malloc.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "graph_internal.h"
#include "nn_internal.h"
#include "util.h"

/* ---------------------------------------------------------------- backend selection */

const tema_backend_ops *g_be;
void *g_bs;

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
        /* Blocks below glibc's mmap threshold (which grows to the largest block freed) come from
         * its heap, where freed memory stays resident unless it is at the top; the chained blocks
         * of a first step are a whole step's worth, so give them back before the new main block
         * is made. Only when blocks were chained: the first steps and a new high-water mark. */
        malloc_trim(0);
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

struct tema_graph {
    uint64_t seed, step_seed;
    bool training;
    arena dev, host;
    node *nodes;             /* the tape; keeps its capacity across steps */
    size_t n_nodes, cap_nodes;
    uint64_t n_dropouts;     /* dropout calls this step, to derive their seeds */
    double flop;             /* of every product since the graph was made (graph_sgemm) */
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

double tema_graph_flop(const tema_graph *g) { return g ? g->flop : 0; }

void graph_sgemm(tema_graph *g, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                 const float *A, int64_t lda, int64_t stride_a, const float *B, int64_t ldb, int64_t stride_b,
                 float beta, float *C, int64_t ldc, int64_t stride_c, int64_t batch)
{
    g->flop += 2.0 * (double)M * (double)N * (double)K * (double)batch;
    g_be->sgemm(g_bs, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc, stride_c,
                batch);
}

void graph_spmm(tema_graph *g, int64_t rows, int64_t dim, int64_t nnz, const int64_t *row_ptr, const int32_t *col_idx,
                const float *values, const float *x, float *out, bool accumulate)
{
    g->flop += 2.0 * (double)nnz * (double)dim;
    g_be->spmm(g_bs, rows, dim, row_ptr, col_idx, values, x, out, accumulate);
}

void *graph_fail(tema_graph *g, const char *fmt, ...)
{
    if (g && !g->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->err, sizeof g->err, fmt, ap);
        va_end(ap);
    }
    return NULL;
}

void *dev_alloc(tema_graph *g, size_t bytes)
{
    void *p = arena_alloc(&g->dev, bytes);
    if (!p) graph_fail(g, "out of memory: the graph arena could not grow by %zu bytes; hint: lower batch_size", bytes);
    return p;
}

void *host_alloc(tema_graph *g, size_t bytes)
{
    void *p = arena_alloc(&g->host, bytes);
    if (!p) graph_fail(g, "out of host memory (%zu bytes) in the graph arena", bytes);
    return p;
}

tema_tensor *new_tensor(tema_graph *g, int ndim, const int64_t *shape)
{
    if (ndim < 1 || ndim > TEMA_MAX_DIMS) return graph_fail(g, "tensor with %d dimensions (1..4 allowed)", ndim);
    tema_tensor *t = host_alloc(g, sizeof *t);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    t->size = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return graph_fail(g, "tensor with a negative dimension");
        t->shape[i] = shape[i];
        t->size *= shape[i];
    }
    t->data = dev_alloc(g, (size_t)t->size * sizeof(float));
    return t->data ? t : NULL;
}

float *dev_floats(tema_graph *g, int64_t n) { return dev_alloc(g, (size_t)(n > 0 ? n : 1) * sizeof(float)); }

int32_t *dev_ids(tema_graph *g, const int32_t *host, int64_t n)
{
    int32_t *d = dev_alloc(g, (size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    if (d && n > 0) g_be->to_device(g_bs, d, host, (size_t)n * sizeof(int32_t));
    return d;
}

node *tape_push(tema_graph *g, op_kind kind, tema_tensor *out)
{
    if (g->n_nodes == g->cap_nodes) {
        size_t cap = g->cap_nodes ? 2 * g->cap_nodes : 256;
        node *n = realloc(g->nodes, cap * sizeof *n);
        if (!n) return graph_fail(g, "out of memory growing the tape");
        g->nodes = n;
        g->cap_nodes = cap;
    }
    node *n = &g->nodes[g->n_nodes++];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->out = out;
    out->flags |= TEMA_TENSOR_NEEDS_GRAD;
    return n;
}

static float *grad_buffer(tema_graph *g, tema_tensor *t)
{
    if (!needs_grad(t)) return NULL;
    if (!t->grad) {
        t->grad = dev_floats(g, t->size);
        if (t->grad) g_be->memset0(g_bs, t->grad, (size_t)t->size * sizeof(float));
    }
    return t->grad;
}

float *grad_of(tema_graph *g, tema_tensor *t)
{
    float *d = grad_buffer(g, t);
    if (d) param_touch_all(t);
    return d;
}

float *grad_of_rows(tema_graph *g, tema_tensor *t, const int32_t *host_ids, int64_t n)
{
    float *d = grad_buffer(g, t);
    if (d && host_ids) param_touch_rows(t, host_ids, n);
    else if (d) param_touch_all(t);
    return d;
}

const int32_t *host_ids_of_param(tema_graph *g, const tema_tensor *t, const int32_t *ids, int64_t n)
{
    if (!t || !(t->flags & TEMA_TENSOR_PARAM) || n <= 0) return NULL;
    int32_t *copy = arena_alloc(&g->host, (size_t)n * sizeof *copy); /* NULL: all rows, not an error */
    if (copy) memcpy(copy, ids, (size_t)n * sizeof *copy);
    return copy;
}

float *grad_to_write(tema_graph *g, tema_tensor *t, float *beta)
{
    *beta = 1.0f;
    if (!needs_grad(t)) return NULL;
    param_touch_all(t);
    if (!t->grad) {
        t->grad = dev_floats(g, t->size);
        *beta = 0.0f;
    }
    return t->grad;
}

/* One seed per dropout call: depends on the graph seed, the step seed and the call's
 * position in the step, so a rerun with the same seeds gives the same masks. */
uint64_t next_dropout_seed(tema_graph *g)
{
    uint64_t key[3] = {g->seed, g->step_seed, g->n_dropouts++};
    return tema_hash64(key, sizeof key);
}

bool check_input(tema_graph *g, const tema_tensor *t, const char *op)
{
    if (!g) return false;
    if (!g_be) return graph_fail(g, "%s: no compute backend selected; hint: call tema_engine_set_backend()", op), false;
    if (!t) return graph_fail(g, "%s: input tensor is NULL (an earlier op failed?)", op), false;
    if (!t->data)
        return graph_fail(g, "%s: tensor '%s' has no data; hint: parameters are usable only after tema_params_finalize",
                          op, t->name ? t->name : "?"),
               false;
    return true;
}

const char *shape_str(const tema_tensor *t, char *buf, size_t cap)
{
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < t->ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
    return buf;
}

bool check_ids(tema_graph *g, const char *op, const int32_t *ids, int64_t n, int64_t limit)
{
    if (n > 0 && !ids) return graph_fail(g, "%s: index array is NULL", op), false;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < -1 || ids[i] >= limit)
            return graph_fail(g, "%s: index %lld is %d, outside [-1, %lld); hint: item ids are 0-based global ids",
                              op, (long long)i, ids[i], (long long)limit),
                   false;
    return true;
}

/* ---------------------------------------------------------------- api: graph state */

bool graph_training(const tema_graph *g) { return g && g->training; }
static const char *nn_error(const tema_graph *g) { return g ? g->err : "no graph"; }

static int32_t *nn_ids(tema_graph *g, const int32_t *host, int64_t n)
{
    if (!g) return NULL;
    if (n < 0 || (n > 0 && !host)) return graph_fail(g, "ids: bad array (n = %lld)", (long long)n);
    int32_t *p = host_alloc(g, (size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    if (p && n > 0) memcpy(p, host, (size_t)n * sizeof(int32_t));
    return p;
}

static tema_tensor *nn_tensor(tema_graph *g, int ndim, const int64_t *shape, const float *host)
{
    if (!g) return NULL;
    if (!g_be) return graph_fail(g, "tensor: no compute backend selected");
    if (!shape) return graph_fail(g, "tensor: shape is NULL");
    tema_tensor *t = new_tensor(g, ndim, shape);
    if (!t) return NULL;
    if (host) g_be->to_device(g_bs, t->data, host, (size_t)t->size * sizeof(float));
    else g_be->memset0(g_bs, t->data, (size_t)t->size * sizeof(float));
    return t;
}

/* ---------------------------------------------------------------- backward */

static void backward_node(tema_graph *g, const node *n)
{
    switch (n->kind) {
    case OP_VIEW: view_backward(g, n); break;
    case OP_GATHER: gather_backward(g, n); break;
    case OP_CONCAT: concat_backward(g, n); break;
    case OP_SLICE: slice_backward(g, n); break;
    case OP_TRANSPOSE12: transpose12_backward(g, n); break;
    case OP_MATMUL: matmul_backward(g, n); break;
    case OP_LINEAR: linear_backward(g, n); break;
    case OP_BINARY: binary_backward(g, n); break;
    case OP_MASK_ROWS: mask_rows_backward(g, n); break;
    case OP_UNARY: unary_backward(g, n); break;
    case OP_DROPOUT: dropout_backward(g, n); break;
    case OP_LOGADDEXP_N: logaddexp_n_backward(g, n); break;
    case OP_LAYERNORM: layernorm_backward(g, n); break;
    case OP_L2NORM: l2norm_backward(g, n); break;
    case OP_SOFTMAX: softmax_backward(g, n); break;
    case OP_LOGSUMEXP: logsumexp_backward(g, n); break;
    case OP_SUM: sum_backward(g, n); break;
    case OP_WEIGHTED_MEAN: weighted_mean_backward(g, n); break;
    case OP_CROSS_ENTROPY: cross_entropy_backward(g, n); break;
    case OP_ROWDOT: rowdot_backward(g, n); break;
    case OP_LSE_CHUNKED: lse_chunked_backward(g, n); break;
    case OP_BCE_WITH_LOGITS: bce_with_logits_backward(g, n); break;
    case OP_SPMM: spmm_backward(g, n); break;
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
        const node *n = &g->nodes[i];
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
        .training = graph_training,
        .error = nn_error,
        .ids = nn_ids,
        .tensor = nn_tensor,
        .reshape = reshape_forward,
        .matmul = matmul_forward,
        .linear = linear_forward,
        .embedding = embedding_forward,
        .add = add_forward,
        .mul = mul_forward,
        .scale = scale_forward,
        .gelu = gelu_forward,
        .relu = relu_forward,
        .sigmoid = sigmoid_forward,
        .tanh = tanh_forward,
        .layernorm = layernorm_forward,
        .dropout = dropout_forward,
        .softmax = softmax_forward,
        .concat = concat_forward,
        .slice = slice_forward,
        .transpose12 = transpose12_forward,
        .l2norm = l2norm_forward,
        .logsumexp = logsumexp_forward,
        .gather_rows = gather_rows_forward,
        .sum = sum_forward,
        .mean = mean_forward,
        .cross_entropy = cross_entropy_forward,
        .rowdot = rowdot_forward,
        .lse_chunked = lse_chunked_forward,
        .logaddexp_n = logaddexp_n_forward,
        .mask_rows = mask_rows_forward,
        .weighted_mean = weighted_mean_forward,
        .csr = tema_params_csr,
        .spmm = spmm_forward,
        .infonce = infonce_forward,
        .bilinear = bilinear_forward,
        .bce_with_logits = bce_with_logits_forward,
        .detach = detach_forward,
    };
    return &api;
}
