/* tema/nn.h - tensors, parameters and the reverse-mode autograd tape, as plugins see them.
 *
 * Model plugins (encoder, attention, loss) write forward code only: every op below
 * computes its result immediately on the active backend and records itself on the
 * graph's tape; tema_nn_api.backward() replays the tape in reverse.
 *
 * Memory (llm.c style):
 *  - Parameters are declared with param() while a model is being built; the core then
 *    carves all of them, their gradients and the optimizer state out of one buffer each.
 *    A parameter's data pointer is valid only after the model is finalised (i.e. from the
 *    first forward() call on). Parameters are owned by the core.
 *  - Every tensor an op returns lives in the graph's per-step arena (one allocation,
 *    reused every step) and is valid until the next reset of that graph. Callers never
 *    free tensors.
 *  - Index arrays (item ids, targets) are caller-owned host memory that must stay valid
 *    for the duration of the call and, for ops that need them in backward, until
 *    backward() returns: put them in the arena with ids() to be safe.
 *
 * Shapes are row-major; "rows" means the product of all but the last dimension.
 * Item ids are 0-based global ids; -1 marks padding (embeds to zeros, gets no gradient).
 */
#ifndef TEMA_NN_H
#define TEMA_NN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tema/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TEMA_MAX_DIMS 4

typedef struct tema_tensor {
    float *data;                    /* backend memory, shape[0]*...*shape[ndim-1] floats */
    float *grad;                    /* same size, or NULL when no gradient flows here */
    int32_t ndim;
    int64_t shape[TEMA_MAX_DIMS];
    int64_t size;                   /* number of elements */
    uint32_t flags;                 /* TEMA_TENSOR_* */
    const char *name;               /* parameters only; static or core-owned */
} tema_tensor;

#define TEMA_TENSOR_PARAM 1u        /* a learnable parameter */
#define TEMA_TENSOR_NEEDS_GRAD 2u   /* gradient is computed for it */
#define TEMA_TENSOR_NO_DECAY 4u     /* excluded from weight decay (biases, norms) */

typedef enum tema_init {
    TEMA_INIT_ZEROS = 0,
    TEMA_INIT_ONES = 1,
    TEMA_INIT_NORMAL = 2,           /* N(0, scale^2) */
    TEMA_INIT_UNIFORM = 3,          /* U(-scale, scale) */
    TEMA_INIT_XAVIER = 4            /* U(+-sqrt(6/(fan_in+fan_out))) * scale, last two dims */
} tema_init;

typedef struct tema_params tema_params;   /* parameter store of one model (core-owned) */
typedef struct tema_graph tema_graph;     /* tape + arena of one step (core-owned) */
typedef struct tema_csr tema_csr;         /* constant sparse matrix on the backend (owned by a tema_params) */

/* The op table handed to plugins (host->nn). Append-only: new entries go at the end
 * and struct_size tells a plugin which exist. All ops return NULL on failure and set
 * the graph's error (read it with error()); a plugin then returns TEMA_EINTERNAL or
 * passes the message on. */
typedef struct tema_nn_api {
    uint32_t struct_size;

    /* --- model building --- */
    tema_tensor *(*param)(tema_params *p, const char *name, int ndim, const int64_t *shape,
                          tema_init init, float scale, uint32_t flags);
    /* A frozen (non-learnable) tensor in the parameter store, filled from host data (copied). */
    tema_tensor *(*constant)(tema_params *p, const char *name, int ndim, const int64_t *shape,
                             const float *host_data);

    /* --- graph state --- */
    bool (*training)(const tema_graph *g);        /* dropout active? */
    const char *(*error)(const tema_graph *g);    /* last op error, "" if none */
    /* Arena-backed scratch copies (valid until reset), for index arrays used in backward. */
    int32_t *(*ids)(tema_graph *g, const int32_t *host, int64_t n);
    tema_tensor *(*tensor)(tema_graph *g, int ndim, const int64_t *shape, const float *host_or_null);
    tema_tensor *(*reshape)(tema_graph *g, tema_tensor *x, int ndim, const int64_t *shape); /* view */

    /* --- ops (out = f(inputs); gradient recorded) --- */
    /* out[M,N] = op(a)[M,K] @ op(b)[K,N]; a,b are 2-D, or 3-D with equal leading batch. */
    tema_tensor *(*matmul)(tema_graph *g, tema_tensor *a, bool trans_a, tema_tensor *b, bool trans_b);
    /* y = x @ w^T + b; x [...,in], w [out,in], b [out] or NULL. */
    tema_tensor *(*linear)(tema_graph *g, tema_tensor *x, tema_tensor *w, tema_tensor *b);
    /* out[n,d] = table[ids[n],:]; ids -1 -> zeros. */
    tema_tensor *(*embedding)(tema_graph *g, tema_tensor *table, const int32_t *ids, int64_t n);
    tema_tensor *(*add)(tema_graph *g, tema_tensor *a, tema_tensor *b);  /* b same shape, or [last dim] broadcast */
    tema_tensor *(*mul)(tema_graph *g, tema_tensor *a, tema_tensor *b);  /* same broadcasting as add */
    tema_tensor *(*scale)(tema_graph *g, tema_tensor *a, float s);
    tema_tensor *(*gelu)(tema_graph *g, tema_tensor *x);                 /* tanh approximation */
    tema_tensor *(*relu)(tema_graph *g, tema_tensor *x);
    tema_tensor *(*sigmoid)(tema_graph *g, tema_tensor *x);
    tema_tensor *(*tanh)(tema_graph *g, tema_tensor *x);
    tema_tensor *(*layernorm)(tema_graph *g, tema_tensor *x, tema_tensor *gamma, tema_tensor *beta, float eps);
    tema_tensor *(*dropout)(tema_graph *g, tema_tensor *x, float p);     /* identity when !training */
    /* Row softmax over the last dim. mask may be NULL; mask[row*dim+j]==0 excludes j.
     * causal: additionally exclude j > (row % dim) (for [B*H*L, L] attention scores).
     * A row with nothing allowed yields zeros. */
    tema_tensor *(*softmax)(tema_graph *g, tema_tensor *x, const uint8_t *mask, bool causal);
    /* Concatenate / split along the last dim. */
    tema_tensor *(*concat)(tema_graph *g, tema_tensor *const *xs, int n);
    tema_tensor *(*slice)(tema_graph *g, tema_tensor *x, int64_t start, int64_t len);
    /* [B,L,H,D] <-> [B,H,L,D]: swap dims 1 and 2 of a 4-D tensor. */
    tema_tensor *(*transpose12)(tema_graph *g, tema_tensor *x);
    tema_tensor *(*l2norm)(tema_graph *g, tema_tensor *x, float eps);   /* rows to unit length */
    tema_tensor *(*logsumexp)(tema_graph *g, tema_tensor *x);          /* [rows,dim] -> [rows] */
    /* Gather rows: out[n, ...] = x[idx[n], ...] (first dim); backward scatter-adds. With idx a
     * permutation of 0..n-1 this is the row permutation (shuffled / corrupted negatives,
     * C2DSR): dx = the inverse permutation of dout. */
    tema_tensor *(*gather_rows)(tema_graph *g, tema_tensor *x, const int32_t *idx, int64_t n);
    tema_tensor *(*sum)(tema_graph *g, tema_tensor *x);                /* -> [1] */
    tema_tensor *(*mean)(tema_graph *g, tema_tensor *x);               /* -> [1] */
    /* Mean cross-entropy of logits [rows,C] against targets[rows] (-1 rows ignored) -> [1]. */
    tema_tensor *(*cross_entropy)(tema_graph *g, tema_tensor *logits, const int32_t *targets);
    /* out[r] = <h[r,:], items[targets[r],:]> * inv_temp. */
    tema_tensor *(*rowdot)(tema_graph *g, tema_tensor *h, tema_tensor *items, const int32_t *targets,
                           float inv_temp);
    /* out[r] = log sum_{j=lo[r]}^{hi[r]-1} exp(<h[r,:], items[j,:]> * inv_temp), computed in
     * chunks of `chunk` items with an online log-sum-exp, so no [rows, N] matrix is ever
     * stored (backward recomputes each chunk). Rows with lo[r]>=hi[r] give 0. */
    tema_tensor *(*lse_chunked)(tema_graph *g, tema_tensor *h, tema_tensor *items, const int32_t *lo,
                                const int32_t *hi, float inv_temp, int64_t chunk);
    /* Elementwise log-sum-exp across n same-shape tensors with log-weights: log sum_k exp(x_k + logw_k). */
    tema_tensor *(*logaddexp_n)(tema_graph *g, tema_tensor *const *xs, const float *log_w, int n);
    /* out = x * mask (mask[i] in {0,1}, host array of x->size), e.g. to drop padding rows. */
    tema_tensor *(*mask_rows)(tema_graph *g, tema_tensor *x, const uint8_t *row_keep);
    /* Weighted mean of a [rows] tensor: sum_r w[r] x[r] / sum_r w[r] -> [1]. */
    tema_tensor *(*weighted_mean)(tema_graph *g, tema_tensor *x, const float *w);

    /* --- ABI 1.5: item graphs and the contrastive / infomax losses of the CDSR baselines --- */
    /* A constant sparse matrix A [rows, cols] in CSR form, for spmm: row_ptr [rows+1] (0 first,
     * nondecreasing, nnz last), col_idx [nnz] in [0, cols), values [nnz] (NULL: all ones).
     * Copied to the active backend once, with its transpose (for backward); the host arrays
     * stay the caller's and are read only during the call. Owned by the store p (freed with
     * it, never by the caller); usable by every graph of the model from this call on, before
     * or after finalize. NULL on failure: the reason goes to err (may be NULL) and, before
     * finalize, to the store, whose finalize then fails with it. */
    tema_csr *(*csr)(tema_params *p, const char *name, int64_t rows, int64_t cols, const int64_t *row_ptr,
                     const int32_t *col_idx, const float *values, tema_err *err);
    /* out[rows, ...] = A @ x for A [rows, cols] and x [cols, ...] (x's first dim against A's
     * columns, the rest carried along); backward dx += A^T @ dout. A GCN layer's propagation. */
    tema_tensor *(*spmm)(tema_graph *g, const tema_csr *a, tema_tensor *x);
    /* InfoNCE over in-batch negatives: a, b [B, D] -> [1] =
     * mean_i -log( exp(<a_i,b_i>/tau) / sum_j exp(<a_i,b_j>/tau) ), tau > 0; cross_entropy
     * over the [B, B] logits a @ b^T / tau with the diagonal as targets (stable log-sum-exp). */
    tema_tensor *(*infonce)(tema_graph *g, tema_tensor *a, tema_tensor *b, float tau);
    /* torch.nn.Bilinear with one output: out[n] = x[n,:] @ w @ y[n,:]^T (+ b) for x [N, D1],
     * w [D1, D2], y [N, D2], b [1] or NULL -> [N] (C2DSR's infomax discriminator score). */
    tema_tensor *(*bilinear)(tema_graph *g, tema_tensor *x, tema_tensor *w, tema_tensor *y, tema_tensor *b);
    /* torch's BCEWithLogitsLoss (mean): logits [any shape, n elements], labels [n] host floats
     * in [0, 1] (copied) -> [1] = mean_i max(z,0) - z_i y_i + log(1 + exp(-|z_i|)), stable for
     * any z; d/dz_i = (sigmoid(z_i) - y_i) / n. */
    tema_tensor *(*bce_with_logits)(tema_graph *g, tema_tensor *logits, const float *labels);

    /* --- ABI 1.8 --- */
    /* x's values as a tensor no gradient flows back through (torch's detach, TensorFlow's
     * stop_gradient): a view of x's data (valid as long as x), never recorded on the tape, so
     * whatever is computed from it contributes nothing to x's gradient. The MAN baseline's
     * fusion and group attention read the encoders' states this way. */
    tema_tensor *(*detach)(tema_graph *g, tema_tensor *x);
} tema_nn_api;

#ifdef __cplusplus
}
#endif
#endif
