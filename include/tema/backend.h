/* tema/backend.h - the compute backend kernel table (ABI v1).
 *
 * A backend plugin (kind TEMA_KIND_BACKEND) points its descriptor's `ops` at a
 * tema_backend_ops. The core's autograd (core/graph.c, core/ops_*.c) does all arithmetic
 * on tensor data through these kernels only, so a backend is complete when it fills this table
 * and one conformance suite (tests/test_backend.c) checks every backend against a
 * plain reference.
 *
 * Conventions:
 *  - Every pointer argument named like data (x, out, dx, ids, mask, ...) is backend
 *    memory from alloc(); host memory moves in and out only through to_device/to_host.
 *  - Matrices are row-major, contiguous unless a leading dimension is given.
 *  - Kernels named *_bwd ACCUMULATE into their gradient outputs (dx += ...); an output
 *    pointer may be NULL, meaning "not needed". Forward kernels overwrite `out`.
 *  - `out` may alias the first input for elementwise forward kernels (in place).
 *  - Index arrays are int32; -1 means padding: gathers give zeros, scatters skip it.
 *  - Kernels do not fail (arguments are validated by the core); a device backend that
 *    can fail asynchronously reports it from sync().
 *  - Threading is the backend's business (its `threads` option or equivalent); kernels
 *    are called from one host thread at a time.
 * Append-only: new kernels go at the end; the core checks struct_size before calling one
 * (TEMA_BACKEND_HAS), so a backend built against older headers still loads.
 */
#ifndef TEMA_BACKEND_H
#define TEMA_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tema/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct tema_host;
struct tema_cfg;

typedef enum tema_unary_op {
    TEMA_UNARY_SCALE = 0,   /* alpha * x */
    TEMA_UNARY_GELU = 1,    /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    TEMA_UNARY_RELU = 2,
    TEMA_UNARY_SIGMOID = 3,
    TEMA_UNARY_TANH = 4,
    TEMA_UNARY_GELU_ERF = 5 /* 0.5 x (1 + erf(x / sqrt 2)), BERT's exact GELU; ops version >= 2 */
} tema_unary_op;

typedef enum tema_binary_op {
    TEMA_BINARY_ADD = 0,    /* out[i] = a[i] + b[i % bn] */
    TEMA_BINARY_MUL = 1     /* out[i] = a[i] * b[i % bn] */
} tema_binary_op;

/* The dropout mask every backend must reproduce bit for bit: element i of a dropout
 * with this seed is kept iff tema_dropout_keep(seed, i, p); kept values are scaled
 * by 1/(1-p). Counter based, so it does not depend on threads or launch layout. */
static inline bool tema_dropout_keep(uint64_t seed, uint64_t i, float p)
{
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;   /* splitmix64 finaliser */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)((z >> 40) * (1.0 / 16777216.0)) >= p;  /* 24 random bits in [0,1) */
}

#define TEMA_BACKEND_OPS_VERSION 6 /* 2: TEMA_UNARY_GELU_ERF; 3: spmm; 4: memory_peak; 5: attention_infer;
                                      6: adam_rows, zero_rows */

typedef struct tema_backend_ops {
    uint32_t struct_size;   /* sizeof(tema_backend_ops) as compiled into the plugin */
    uint32_t version;       /* TEMA_BACKEND_OPS_VERSION */

    /* --- lifecycle --- */
    /* opts: the plugin's validated options, or NULL for all defaults. *self is owned by
     * the backend and released by destroy(). */
    tema_status (*init)(const struct tema_host *host, const struct tema_cfg *opts, void **self, tema_err *err);
    void (*destroy)(void *self);
    /* Wait for queued work; returns the first asynchronous failure, if any. */
    tema_status (*sync)(void *self, tema_err *err);

    /* --- memory (64-byte aligned; alloc returns NULL when out of memory) --- */
    void *(*alloc)(void *self, size_t bytes);
    void (*free)(void *self, void *p);
    void (*memset0)(void *self, void *p, size_t bytes);
    void (*to_device)(void *self, void *dst, const void *host_src, size_t bytes);
    void (*to_host)(void *self, void *host_dst, const void *src, size_t bytes);
    void (*copy)(void *self, void *dst, const void *src, size_t bytes);   /* device to device */

    /* --- dense algebra --- */
    /* For b in [0,batch): C_b = alpha * op(A_b) @ op(B_b) + beta * C_b, row-major,
     * op(A_b) [M,K], op(B_b) [K,N], X_b = X + b * strideX. beta == 0 ignores C's contents. */
    void (*sgemm)(void *self, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t lda, int64_t stride_a, const float *B, int64_t ldb, int64_t stride_b,
                  float beta, float *C, int64_t ldc, int64_t stride_c, int64_t batch);
    /* dst[i] += alpha * src[i]; src may be dst (AdamW's decay scales the parameters in place) */
    void (*axpy)(void *self, int64_t n, float alpha, const float *src, float *dst);
    /* dst[i] += scale * (*dscalar) * (w ? w[i] : 1); dscalar is one float in backend memory
     * (backward of sum / mean / weighted mean). */
    void (*axpy_scalar)(void *self, int64_t n, const float *dscalar, float scale, const float *w, float *dst);
    /* *out = scale * sum_i a[i] * (b ? b[i] : 1) (accumulated in double). */
    void (*dot)(void *self, int64_t n, const float *a, const float *b, float scale, float *out);

    /* --- elementwise --- */
    void (*unary)(void *self, tema_unary_op op, int64_t n, float alpha, const float *x, float *out);
    /* dx += dout * f'(x); out is the forward result (sigmoid/tanh use it). */
    void (*unary_bwd)(void *self, tema_unary_op op, int64_t n, float alpha, const float *x, const float *out,
                      const float *dout, float *dx);
    /* b has bn elements (bn divides n), broadcast over the leading rows. */
    void (*binary)(void *self, tema_binary_op op, int64_t n, const float *a, const float *b, int64_t bn, float *out);
    /* da += d/da, db[j] += sum over the rows of d/db (broadcast reduction). */
    void (*binary_bwd)(void *self, tema_binary_op op, int64_t n, const float *a, const float *b, int64_t bn,
                       const float *dout, float *da, float *db);
    /* out = x masked by dropout(seed, p), see tema_dropout_keep(). */
    void (*dropout)(void *self, int64_t n, float p, uint64_t seed, const float *x, float *out);
    void (*dropout_bwd)(void *self, int64_t n, float p, uint64_t seed, const float *dout, float *dx);
    /* out = log(exp(a + la) + exp(b + lb)) elementwise (la, lb scalar log-weights). */
    void (*logaddexp)(void *self, int64_t n, const float *a, float la, const float *b, float lb, float *out);
    /* dx += dout * exp(x + lx - out), the gradient of one term of a log-sum-exp. */
    void (*logaddexp_bwd)(void *self, int64_t n, const float *x, float lx, const float *out, const float *dout,
                          float *dx);

    /* --- row ops on [rows, dim] --- */
    /* mean/rstd: [rows] saved for backward. */
    void (*layernorm)(void *self, int64_t rows, int64_t dim, float eps, const float *x, const float *gamma,
                      const float *beta, float *out, float *mean, float *rstd);
    void (*layernorm_bwd)(void *self, int64_t rows, int64_t dim, const float *x, const float *gamma,
                          const float *mean, const float *rstd, const float *dout, float *dx, float *dgamma,
                          float *dbeta);
    /* mask may be NULL (uint8 [rows*dim], 0 excludes); causal excludes j > row % dim.
     * A row with nothing allowed gives zeros. */
    void (*softmax)(void *self, int64_t rows, int64_t dim, const uint8_t *mask, bool causal, const float *x,
                    float *out);
    void (*softmax_bwd)(void *self, int64_t rows, int64_t dim, const float *out, const float *dout, float *dx);
    /* out = x / max(|x|, eps) per row; norm [rows] saved. */
    void (*l2norm)(void *self, int64_t rows, int64_t dim, float eps, const float *x, float *out, float *norm);
    void (*l2norm_bwd)(void *self, int64_t rows, int64_t dim, float eps, const float *out, const float *norm,
                       const float *dout, float *dx);
    /* out[r] = log sum_j exp(x[r,j]); dx += dout[r] * exp(x - out[r]). */
    void (*logsumexp)(void *self, int64_t rows, int64_t dim, const float *x, float *out);
    void (*logsumexp_bwd)(void *self, int64_t rows, int64_t dim, const float *x, const float *out,
                          const float *dout, float *dx);
    /* Cross entropy per row: loss[r] = lse[r] - x[r, t[r]], lse saved; t[r] == -1 gives 0.
     * Backward: dx[r,:] += scale * (*dloss) * (softmax(x[r]) - onehot(t[r])) for rows t != -1. */
    void (*xent)(void *self, int64_t rows, int64_t dim, const float *x, const int32_t *t, float *loss, float *lse);
    void (*xent_bwd)(void *self, int64_t rows, int64_t dim, const float *x, const int32_t *t, const float *lse,
                     const float *dloss, float scale, float *dx);

    /* --- gathers, copies, layouts --- */
    /* out[i,:] = table[ids[i],:] (zeros for -1); scatter: dtable[ids[i],:] += dout[i,:]. */
    void (*gather)(void *self, int64_t n, int64_t dim, const int32_t *ids, const float *table, float *out);
    void (*scatter_add)(void *self, int64_t n, int64_t dim, const int32_t *ids, const float *dout, float *dtable);
    /* dst[r, 0:cols] = (accumulate ? dst : 0) + src[r, 0:cols] with leading dims ldd, lds;
     * lds = 0 repeats src's one row in every row (a broadcast). */
    void (*copy2d)(void *self, int64_t rows, int64_t cols, const float *src, int64_t lds, float *dst, int64_t ldd,
                   bool accumulate);
    /* out[b,h,l,:] (+)= x[b,l,h,:] for x [B,L,H,D]: transpose12 and (with L,H swapped) its inverse. */
    void (*permute0213)(void *self, int64_t B, int64_t L, int64_t H, int64_t D, const float *x, float *out,
                        bool accumulate);
    /* out[r] = scale * <h[r,:], items[t[r],:]> (0 for t == -1); backward accumulates dh, ditems. */
    void (*rowdot)(void *self, int64_t rows, int64_t dim, float scale, const float *h, const float *items,
                   const int32_t *t, float *out);
    void (*rowdot_bwd)(void *self, int64_t rows, int64_t dim, float scale, const float *h, const float *items,
                       const int32_t *t, const float *dout, float *dh, float *ditems);

    /* --- chunked log-sum-exp (lse_chunked); logits come from sgemm, the core drives chunks --- */
    /* logits [rows, cols] (leading dim ld) hold scores of items c0..c0+cols-1. For each row,
     * fold the columns with c0+j in [lo[r],hi[r]) into the running max m[r] and sum s[r]
     * (initialise m = -inf, s = 0 with lse_init). */
    void (*lse_init)(void *self, int64_t rows, float *m, float *s);
    void (*lse_update)(void *self, int64_t rows, int64_t cols, int64_t c0, const float *logits, int64_t ld,
                       const int32_t *lo, const int32_t *hi, float *m, float *s);
    /* out[r] = m[r] + log s[r], or 0 when s[r] == 0 (empty range). */
    void (*lse_finish)(void *self, int64_t rows, const float *m, const float *s, float *out);
    /* In place: logits[r,j] <- scale * dout[r] * exp(logits[r,j] - lse[r]) inside the row's
     * range, 0 outside; the caller then forms dh and ditems with sgemm. */
    void (*lse_grad)(void *self, int64_t rows, int64_t cols, int64_t c0, float *logits, int64_t ld,
                     const int32_t *lo, const int32_t *hi, const float *lse, const float *dout, float scale);

    /* --- optimizer --- */
    /* torch.optim.Adam: g' = g + wd * p; m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2;
     * p -= lr * (m / bc1) / (sqrt(v / bc2) + eps), with bc = 1 - beta^step. */
    void (*adam)(void *self, int64_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                 float bc1, float bc2, float *p, const float *g, float *m, float *v);

    /* --- appended kernels: the core checks struct_size before calling one (TEMA_BACKEND_HAS) --- */

    /* Sparse (CSR) times dense, ops version >= 3: for r < rows,
     * out[r,:] = (accumulate ? out[r,:] : 0) + sum_{k = row_ptr[r]}^{row_ptr[r+1]-1} values[k] * x[col_idx[k],:]
     * with x [*, dim]; row_ptr [rows+1], col_idx and values [row_ptr[rows]], all backend memory.
     * Each output row has one writer and sums its entries in order (no atomics), so results do
     * not depend on threads or launch layout. The core's backward is this kernel again with
     * the transposed matrix and accumulate set. */
    void (*spmm)(void *self, int64_t rows, int64_t dim, const int64_t *row_ptr, const int32_t *col_idx,
                 const float *values, const float *x, float *out, bool accumulate);
    /* Ops version >= 4, optional: the most device memory in use since init, in bytes (the whole
     * device as the driver reports it, context included). NULL on a backend whose memory is the
     * host's, where the process's peak RSS says it. */
    size_t (*memory_peak)(void *self);
    /* Ops version >= 5, optional: multi-head self-attention forward for inference, fused (no
     * scores tensor, nothing kept for a backward pass). B sequences of T rows each; row
     * r = b T + t of q, k and v has row stride ld, and head h sits in its columns
     * h hd .. h hd + hd - 1. len [B] (int32, backend memory) is each sequence's number of
     * real rows: keys j >= len[b] are masked out, and rows t >= len[b] of out get zeros. For
     * t < len[b]: out[r, h hd + d] = sum_{j < len[b]} softmax_j(scale q_t . k_j) v_j[h hd + d].
     * out has row stride ldo, only its heads x hd columns are written, and it must not
     * overlap q, k, v. Why fused: per (sequence, head) products of a few dozen rows ran at a
     * fifth of sgemm's speed and were 13% of a sentence encoder's time. */
    void (*attention_infer)(void *self, int64_t B, int64_t T, int64_t heads, int64_t hd, float scale,
                            const float *q, const float *k, const float *v, int64_t ld, const int32_t *len,
                            float *out, int64_t ldo);
    /* Ops version >= 6, optional: the row-sparse forms of adam and of zeroing, for tables whose
     * step touched a few rows (an item table under a sampled softmax). rows [n_rows] (int32,
     * backend memory, distinct, in any order) index rows of [*, dim] matrices. adam_rows is
     * adam (above) on those rows only: the other rows' values and moments stay as they are.
     * zero_rows sets x[rows[i], :] = 0. Why: at a million items a sweep over the whole table
     * (values, gradient, two moments: 4 GiB at q = 256) took longer than the step's products.
     * Without them the core sweeps whole tensors (and train.optimizer: lazy_adam is refused). */
    void (*adam_rows)(void *self, int64_t n_rows, int64_t dim, const int32_t *rows, float lr, float beta1,
                      float beta2, float eps, float weight_decay, float bc1, float bc2, float *p, const float *g,
                      float *m, float *v);
    void (*zero_rows)(void *self, int64_t n_rows, int64_t dim, const int32_t *rows, float *x);
} tema_backend_ops;

/* The table's size before the first appended kernel: the smallest a backend may export
 * (an older one loads; the ops that need a newer kernel fail with a hint to rebuild it). */
#define TEMA_BACKEND_OPS_MIN_SIZE offsetof(tema_backend_ops, spmm)

/* Whether the table `ops` has the appended kernel `field` (its struct_size covers it and it is set). */
#define TEMA_BACKEND_HAS(ops, field)                                                                        \
    ((ops)->struct_size >= offsetof(tema_backend_ops, field) + sizeof(void *) && (ops)->field != NULL)

#ifdef __cplusplus
}
#endif
#endif
