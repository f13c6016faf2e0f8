/* core/graph_internal.h - the tape node, one struct per op, and the helpers shared by the
 * graph (core/graph.c: arena, tape, backward driver) and the op families (core/ops_*.c);
 * core-internal.
 *
 * Every op of tema/nn.h is a pair in its family's file, llm.c style: <op>_forward computes
 * the result on the active backend and, when an input needs a gradient, pushes a node
 * holding its struct op_<op>; <op>_backward reads that struct and accumulates the input
 * gradients. What an op saves (index copies, statistics, scratch) lives in the graph's
 * per-step arenas and the node itself in the tape array, which keeps its capacity from step
 * to step: after the first steps, recording allocates nothing.
 *
 * Shapes in the comments are as the kernels see them: [rows, dim] is the tensor viewed as
 * its leading dims flattened, dim the last one.
 */
#ifndef TEMA_CORE_GRAPH_INTERNAL_H
#define TEMA_CORE_GRAPH_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

/* The backend every op runs on (tema_engine_set_backend); short names because almost every
 * line of the ops calls through them. */
extern const tema_backend_ops *g_be __attribute__((visibility("hidden")));
extern void *g_bs __attribute__((visibility("hidden")));

/* ---------------------------------------------------------------- the ops' saved state */

typedef enum op_kind {
    OP_VIEW, OP_GATHER, OP_CONCAT, OP_SLICE, OP_TRANSPOSE12,                 /* ops_shape.c */
    OP_MATMUL, OP_LINEAR,                                                    /* ops_matmul.c */
    OP_BINARY, OP_MASK_ROWS, OP_UNARY, OP_DROPOUT, OP_LOGADDEXP_N,           /* ops_elementwise.c */
    OP_LAYERNORM, OP_L2NORM, OP_SOFTMAX, OP_LOGSUMEXP,                       /* ops_norm.c */
    OP_SUM, OP_WEIGHTED_MEAN, OP_CROSS_ENTROPY, OP_ROWDOT, OP_LSE_CHUNKED,   /* ops_loss.c */
    OP_BCE_WITH_LOGITS,                                                      /* ops_loss.c */
    OP_SPMM                                                                  /* ops_graph.c */
} op_kind;

/* A constant sparse matrix (tema/nn.h csr()): A and A^T in CSR form, all six arrays in ONE
 * backend block, uploaded once by csr_new (core/ops_graph.c) and released by csr_free with
 * the backend that holds it; the parameter store that made it owns it. */
struct tema_csr {
    int64_t rows, cols, nnz;
    int64_t *row_ptr, *t_row_ptr;   /* [rows+1], [cols+1] */
    int32_t *col_idx, *t_col_idx;   /* [nnz]: columns of A, rows of A (columns of A^T) */
    float *values, *t_values;       /* [nnz] */
    void *block;                    /* the one allocation behind the six arrays */
    const tema_backend_ops *be;     /* the backend it lives on */
    void *bs;
    char *name;                     /* for messages */
};

/* reshape: x [...] -> out [...] with the same elements; out's gradient is a buffer of its own. */
struct op_view { tema_tensor *x; };
/* embedding / gather_rows: x [n_x, dim...], ids [n] (backend, -1 = zeros) -> out [n, dim...] */
struct op_gather { tema_tensor *x; int32_t *ids; const int32_t *host_ids; int64_t n, dim; };
/* xs[i] [rows, d_i] for i < count -> out [rows, dim = sum d_i] */
struct op_concat { tema_tensor **xs; int count; int64_t rows, dim; };
/* x [rows, dim] -> out [rows, len] = x[:, start:start+len] */
struct op_slice { tema_tensor *x; int64_t rows, dim, start, len; };
/* x [B, L, H, D] -> out [B, H, L, D] */
struct op_transpose12 { tema_tensor *x; };

/* a [batch?, M, K] (stored [K, M] when trans_a), b [batch?, K, N] (stored [N, K] when trans_b)
 * -> out [batch?, M, N]; a 3-D a with a 2-D b is one product with M = B*M_a, batch 1. */
struct op_matmul { tema_tensor *a, *b; bool trans_a, trans_b; int64_t M, N, K, batch; };
/* x [rows, in], w [out_dim, in], b [out_dim] or NULL -> out [rows, out_dim] */
struct op_linear { tema_tensor *x, *w, *b; int64_t rows, in, out_dim; };

/* a [n], b [n] or [b_size] broadcast over a's rows -> out [n] = a fn b */
struct op_binary { tema_tensor *a, *b; tema_binary_op fn; int64_t b_size; };
/* x [n], mask [n] of 0/1 (backend, a constant) -> out [n] = x * mask */
struct op_mask_rows { tema_tensor *x; float *mask; };
/* x [n] -> out [n] = fn(x; alpha) */
struct op_unary { tema_tensor *x; tema_unary_op fn; float alpha; };
/* x [n] -> out [n]; the mask is regenerated from seed in backward. */
struct op_dropout { tema_tensor *x; float p; uint64_t seed; };
/* xs[k] [n] for k < count, log_w [count] (host) -> out [n] = log sum_k exp(xs[k] + log_w[k]) */
struct op_logaddexp_n { tema_tensor **xs; const float *log_w; int count; };

/* x [rows, dim], gamma/beta [dim] or NULL -> out [rows, dim]; mean/rstd [rows] saved */
struct op_layernorm { tema_tensor *x, *gamma, *beta; float *mean, *rstd; int64_t rows, dim; };
/* x [rows, dim] -> out [rows, dim] = x / max(|x|, eps); norm [rows] saved */
struct op_l2norm { tema_tensor *x; float *norm; float eps; int64_t rows, dim; };
/* x [rows, dim] -> out [rows, dim]; backward needs only out */
struct op_softmax { tema_tensor *x; int64_t rows, dim; };
/* x [rows, dim] -> out [rows] */
struct op_logsumexp { tema_tensor *x; int64_t rows, dim; };

/* sum / mean: x [n] -> out [1] = scale * sum x */
struct op_sum { tema_tensor *x; float scale; };
/* x [n], w [n] (backend) -> out [1] = scale * sum w x */
struct op_weighted_mean { tema_tensor *x; float *w; float scale; };
/* logits [rows, classes], targets [rows] (backend, -1 = ignored) -> out [1]; lse [rows] saved */
struct op_cross_entropy { tema_tensor *logits; int32_t *targets; float *lse; float scale; int64_t rows, classes; };
/* h [rows, dim], items [n, dim], targets [rows] (backend) -> out [rows] */
struct op_rowdot { tema_tensor *h, *items; int32_t *targets; const int32_t *host_targets; float inv_temp; int64_t rows, dim; };
/* h [rows, dim], items [n, dim] -> out [rows]; groups of rows sharing a range (ops_loss.c),
 * logits/dout the forward's scratch, reused in backward */
struct op_lse_chunked {
    tema_tensor *h, *items;
    struct lse_group *groups;
    int n_groups;
    float *logits, *dout;
    float inv_temp;
    int64_t dim, chunk;
};

/* logits [n], labels [n] (backend, a constant) -> out [1] = scale * sum_i softplus(z_i) - z_i y_i */
struct op_bce_with_logits { tema_tensor *logits; float *labels; float scale; };

/* a [rows, cols] (CSR; backward runs its transpose), x [cols, dim...] -> out [rows, dim...] */
struct op_spmm { const tema_csr *a; tema_tensor *x; int64_t dim; };

typedef struct node {
    op_kind kind;
    tema_tensor *out;
    union {
        struct op_view view;
        struct op_gather gather;
        struct op_concat concat;
        struct op_slice slice;
        struct op_transpose12 transpose12;
        struct op_matmul matmul;
        struct op_linear linear;
        struct op_binary binary;
        struct op_mask_rows mask_rows;
        struct op_unary unary;
        struct op_dropout dropout;
        struct op_logaddexp_n logaddexp_n;
        struct op_layernorm layernorm;
        struct op_l2norm l2norm;
        struct op_softmax softmax;
        struct op_logsumexp logsumexp;
        struct op_sum sum;
        struct op_weighted_mean weighted_mean;
        struct op_cross_entropy cross_entropy;
        struct op_rowdot rowdot;
        struct op_lse_chunked lse_chunked;
        struct op_bce_with_logits bce_with_logits;
        struct op_spmm spmm;
    };
} node;

/* ---------------------------------------------------------------- helpers (core/graph.c) */

/* Keeps the first error of the step; returns NULL so ops can `return graph_fail(...)`. */
__attribute__((format(printf, 2, 3))) void *graph_fail(tema_graph *g, const char *fmt, ...);
void *dev_alloc(tema_graph *g, size_t bytes);     /* backend memory of this step */
void *host_alloc(tema_graph *g, size_t bytes);    /* host memory of this step */
float *dev_floats(tema_graph *g, int64_t n);
int32_t *dev_ids(tema_graph *g, const int32_t *host, int64_t n);   /* copied to the backend */
tema_tensor *new_tensor(tema_graph *g, int ndim, const int64_t *shape);
/* Appends a node producing out and marks out as needing a gradient. Ops push only when an
 * input needs one; NULL when the tape cannot grow (the error is set, out stays usable). */
node *tape_push(tema_graph *g, op_kind kind, tema_tensor *out);
/* Gradient buffer of t, created zeroed the first time backward needs it; NULL when t takes none. */
float *grad_of(tema_graph *g, tema_tensor *t);
/* grad_of for an op that writes only rows host_ids[0..n) of t's gradient (gather's and rowdot's
 * scatters): a parameter's store then zeroes and, under lazy Adam, updates only those rows.
 * host_ids NULL: any row. */
float *grad_of_rows(tema_graph *g, tema_tensor *t, const int32_t *host_ids, int64_t n);
/* A step-long host copy of ids [n] when t is a parameter (for grad_of_rows), else NULL. */
const int32_t *host_ids_of_param(tema_graph *g, const tema_tensor *t, const int32_t *ids, int64_t n);
/* t's gradient for an op that can overwrite it: on its first write (no buffer yet) the buffer
 * comes unzeroed and *beta = 0 (assign), else *beta = 1 (accumulate). Zeroing every gradient
 * before accumulating into it was 12% of a TEMA-LLM training step. NULL: no gradient. */
float *grad_to_write(tema_graph *g, tema_tensor *t, float *beta);
bool graph_training(const tema_graph *g);       /* dropout active? */
/* The backend's sgemm and spmm, counting the FLOP each executes into the graph (2 M N K per
 * product, 2 nnz dim per sparse one; tema_graph_flop): every product of an op goes through
 * these, so the count is what a step ran, not an estimate from the model's shapes. */
void graph_sgemm(tema_graph *g, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                 const float *A, int64_t lda, int64_t stride_a, const float *B, int64_t ldb, int64_t stride_b,
                 float beta, float *C, int64_t ldc, int64_t stride_c, int64_t batch);
void graph_spmm(tema_graph *g, int64_t rows, int64_t dim, int64_t nnz, const int64_t *row_ptr, const int32_t *col_idx,
                const float *values, const float *x, float *out, bool accumulate);
/* The seed of the next dropout mask of this step. */
uint64_t next_dropout_seed(tema_graph *g);

/* Validates an op's input; a NULL input means an earlier op failed (its error is kept). */
bool check_input(tema_graph *g, const tema_tensor *t, const char *op);
/* ids[i] in [-1, limit) for i < n. */
bool check_ids(tema_graph *g, const char *op, const int32_t *ids, int64_t n, int64_t limit);
const char *shape_str(const tema_tensor *t, char *buf, size_t cap);   /* "[2,3]" for messages */

static inline bool needs_grad(const tema_tensor *t) { return t && (t->flags & TEMA_TENSOR_NEEDS_GRAD); }
static inline int64_t last_dim(const tema_tensor *t) { return t->shape[t->ndim - 1]; }
static inline int64_t rows_of(const tema_tensor *t)
{
    int64_t d = last_dim(t);
    return d ? t->size / d : 0;
}

/* ---------------------------------------------------------------- the ops
 * Forwards are the tema_nn_api entries (core/graph.c builds the table); a family's shared
 * forward sits beside the thin entries that pick its variant. */

/* core/ops_shape.c */
tema_tensor *reshape_forward(tema_graph *g, tema_tensor *x, int ndim, const int64_t *shape);
void view_backward(tema_graph *g, const node *n);
tema_tensor *detach_forward(tema_graph *g, tema_tensor *x); /* no backward: never on the tape */
tema_tensor *embedding_forward(tema_graph *g, tema_tensor *table, const int32_t *ids, int64_t n);
tema_tensor *gather_rows_forward(tema_graph *g, tema_tensor *x, const int32_t *idx, int64_t n);
void gather_backward(tema_graph *g, const node *n);
tema_tensor *concat_forward(tema_graph *g, tema_tensor *const *xs, int n);
void concat_backward(tema_graph *g, const node *n);
tema_tensor *slice_forward(tema_graph *g, tema_tensor *x, int64_t start, int64_t len);
void slice_backward(tema_graph *g, const node *n);
tema_tensor *transpose12_forward(tema_graph *g, tema_tensor *x);
void transpose12_backward(tema_graph *g, const node *n);

/* core/ops_matmul.c */
tema_tensor *matmul_forward(tema_graph *g, tema_tensor *a, bool trans_a, tema_tensor *b, bool trans_b);
void matmul_backward(tema_graph *g, const node *n);
tema_tensor *linear_forward(tema_graph *g, tema_tensor *x, tema_tensor *w, tema_tensor *b);
void linear_backward(tema_graph *g, const node *n);
tema_tensor *bilinear_forward(tema_graph *g, tema_tensor *x, tema_tensor *w, tema_tensor *y,
                              tema_tensor *b);   /* composed: matmul, rowdot, add */

/* core/ops_elementwise.c */
tema_tensor *add_forward(tema_graph *g, tema_tensor *a, tema_tensor *b);
tema_tensor *mul_forward(tema_graph *g, tema_tensor *a, tema_tensor *b);
void binary_backward(tema_graph *g, const node *n);
tema_tensor *mask_rows_forward(tema_graph *g, tema_tensor *x, const uint8_t *row_keep);
void mask_rows_backward(tema_graph *g, const node *n);
tema_tensor *scale_forward(tema_graph *g, tema_tensor *x, float s);
tema_tensor *gelu_forward(tema_graph *g, tema_tensor *x);
tema_tensor *relu_forward(tema_graph *g, tema_tensor *x);
tema_tensor *sigmoid_forward(tema_graph *g, tema_tensor *x);
tema_tensor *tanh_forward(tema_graph *g, tema_tensor *x);
void unary_backward(tema_graph *g, const node *n);
tema_tensor *dropout_forward(tema_graph *g, tema_tensor *x, float p);
void dropout_backward(tema_graph *g, const node *n);
tema_tensor *logaddexp_n_forward(tema_graph *g, tema_tensor *const *xs, const float *log_w, int n);
void logaddexp_n_backward(tema_graph *g, const node *n);

/* core/ops_norm.c */
tema_tensor *layernorm_forward(tema_graph *g, tema_tensor *x, tema_tensor *gamma, tema_tensor *beta, float eps);
void layernorm_backward(tema_graph *g, const node *n);
tema_tensor *l2norm_forward(tema_graph *g, tema_tensor *x, float eps);
void l2norm_backward(tema_graph *g, const node *n);
tema_tensor *softmax_forward(tema_graph *g, tema_tensor *x, const uint8_t *mask, bool causal);
void softmax_backward(tema_graph *g, const node *n);
tema_tensor *logsumexp_forward(tema_graph *g, tema_tensor *x);
void logsumexp_backward(tema_graph *g, const node *n);

/* core/ops_loss.c */
tema_tensor *sum_forward(tema_graph *g, tema_tensor *x);
tema_tensor *mean_forward(tema_graph *g, tema_tensor *x);
void sum_backward(tema_graph *g, const node *n);
tema_tensor *weighted_mean_forward(tema_graph *g, tema_tensor *x, const float *w);
void weighted_mean_backward(tema_graph *g, const node *n);
tema_tensor *cross_entropy_forward(tema_graph *g, tema_tensor *logits, const int32_t *targets);
void cross_entropy_backward(tema_graph *g, const node *n);
tema_tensor *rowdot_forward(tema_graph *g, tema_tensor *h, tema_tensor *items, const int32_t *targets,
                            float inv_temp);
void rowdot_backward(tema_graph *g, const node *n);
tema_tensor *lse_chunked_forward(tema_graph *g, tema_tensor *h, tema_tensor *items, const int32_t *lo,
                                 const int32_t *hi, float inv_temp, int64_t chunk);
void lse_chunked_backward(tema_graph *g, const node *n);
tema_tensor *infonce_forward(tema_graph *g, tema_tensor *a, tema_tensor *b, float tau);   /* composed */
tema_tensor *bce_with_logits_forward(tema_graph *g, tema_tensor *logits, const float *labels);
void bce_with_logits_backward(tema_graph *g, const node *n);

/* core/ops_graph.c (csr_new / csr_free: core/nn_internal.h) */
tema_tensor *spmm_forward(tema_graph *g, const tema_csr *a, tema_tensor *x);
void spmm_backward(tema_graph *g, const node *n);

#endif
