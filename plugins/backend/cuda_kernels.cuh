/* plugins/backend/cuda_kernels.cuh - the device side of the cuda backend: device helpers and one
 * __global__ kernel per backend op (elementwise, reductions, row kernels, gathers, sparse times
 * dense, chunked log-sum-exp). Included once, by cuda.cu, after its backend state and launch
 * helpers, so that the kernels and their host wrappers stay one translation unit (no relocatable
 * device code to link); a header only to keep each file readable. */
#ifndef TEMA_PLUGINS_BACKEND_CUDA_KERNELS_CUH
#define TEMA_PLUGINS_BACKEND_CUDA_KERNELS_CUH

/* ------------------------------------------------------------------ device helpers */

#define GRID_STRIDE(i, n)                                                                                  \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, i##_step = (int64_t)gridDim.x * blockDim.x; \
         i < (n); i += i##_step)

template <typename T> __device__ __forceinline__ T warp_sum(T v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Block-wide sum returned to every thread; blockDim.x is a multiple of 32. The leading
 * barrier lets a block call it again (next row) without overwriting a slot still read. */
template <typename T> __device__ T block_sum(T v)
{
    __shared__ T sh[32];
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    return warp_sum(lane < nw ? sh[lane] : T(0));
}

/* Block-wide max that ignores NaN like cpu.c's `x > m` scans (fmaxf drops a NaN operand). */
__device__ float block_max(float v)
{
    __shared__ float sh[32];
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    return warp_max(lane < nw ? sh[lane] : -INFINITY);
}

/* ------------------------------------------------------------------ elementwise kernels */

__global__ void k_axpy(int64_t n, float alpha, const float *src, float *dst)
{
    GRID_STRIDE(i, n) dst[i] += alpha * src[i];
}

__global__ void k_axpy_scalar(int64_t n, const float *dscalar, float scale, const float *w, float *dst)
{
    const float a = scale * dscalar[0];
    GRID_STRIDE(i, n) dst[i] += w ? a * w[i] : a;
}

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

__global__ void k_unary(int op, int64_t n, float alpha, const float *x, float *out)
{
    GRID_STRIDE(i, n)
    {
        const float v = x[i];
        float r;
        switch (op) {
        case TEMA_UNARY_SCALE: r = alpha * v; break;
        case TEMA_UNARY_GELU: r = 0.5f * v * (1.0f + tanhf(GELU_K * (v + 0.044715f * v * v * v))); break;
        case TEMA_UNARY_RELU: r = v > 0.0f ? v : 0.0f; break;
        case TEMA_UNARY_SIGMOID: r = 1.0f / (1.0f + expf(-v)); break;
        case TEMA_UNARY_GELU_ERF: r = 0.5f * v * (1.0f + erff(v * 0.70710678f)); break;
        default: r = tanhf(v); break;
        }
        out[i] = r;
    }
}

__global__ void k_unary_bwd(int op, int64_t n, float alpha, const float *x, const float *out, const float *dout,
                            float *dx)
{
    GRID_STRIDE(i, n)
    {
        float d;
        switch (op) {
        case TEMA_UNARY_SCALE: d = alpha * dout[i]; break;
        case TEMA_UNARY_GELU: {
            const float v = x[i];
            const float u = GELU_K * (v + 0.044715f * v * v * v);
            const float t = tanhf(u);
            const float du = GELU_K * (1.0f + 3.0f * 0.044715f * v * v);
            d = dout[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
            break;
        }
        case TEMA_UNARY_RELU: d = x[i] > 0.0f ? dout[i] : 0.0f; break;
        case TEMA_UNARY_SIGMOID: d = dout[i] * out[i] * (1.0f - out[i]); break;
        case TEMA_UNARY_GELU_ERF: {
            const float v = x[i];
            d = dout[i] * (0.5f * (1.0f + erff(v * 0.70710678f)) + v * 0.39894228f * expf(-0.5f * v * v));
            break;
        }
        default: d = dout[i] * (1.0f - out[i] * out[i]); break;
        }
        dx[i] += d;
    }
}

__global__ void k_binary(int op, int64_t n, const float *a, const float *b, int64_t bn, float *out)
{
    GRID_STRIDE(i, n)
    {
        const float bv = b[i % bn];
        out[i] = op == TEMA_BINARY_ADD ? a[i] + bv : a[i] * bv;
    }
}

__global__ void k_binary_bwd_da(int op, int64_t n, const float *b, int64_t bn, const float *dout, float *da)
{
    GRID_STRIDE(i, n) da[i] += op == TEMA_BINARY_ADD ? dout[i] : dout[i] * b[i % bn];
}

/* The dropout mask of tema/backend.h, bit for bit: same splitmix64 finaliser, same
 * 24-bit float comparison (no fast-math anywhere in this file). */
__device__ __forceinline__ bool dropout_keep(uint64_t seed, uint64_t i, float p)
{
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)((z >> 40) * (1.0 / 16777216.0)) >= p;
}

__global__ void k_dropout(int64_t n, float p, float keep_scale, uint64_t seed, const float *x, float *out)
{
    GRID_STRIDE(i, n) out[i] = dropout_keep(seed, (uint64_t)i, p) ? x[i] * keep_scale : 0.0f;
}

__global__ void k_dropout_bwd(int64_t n, float p, float keep_scale, uint64_t seed, const float *dout, float *dx)
{
    GRID_STRIDE(i, n) if (dropout_keep(seed, (uint64_t)i, p)) dx[i] += dout[i] * keep_scale;
}

__global__ void k_logaddexp(int64_t n, const float *a, float la, const float *b, float lb, float *out)
{
    GRID_STRIDE(i, n)
    {
        const float u = a[i] + la, v = b[i] + lb;
        const float m = u > v ? u : v;
        out[i] = m == -INFINITY ? -INFINITY : m + logf(expf(u - m) + expf(v - m));
    }
}

__global__ void k_logaddexp_bwd(int64_t n, const float *x, float lx, const float *out, const float *dout, float *dx)
{
    GRID_STRIDE(i, n) if (out[i] != -INFINITY) dx[i] += dout[i] * expf(x[i] + lx - out[i]);
}

__device__ __forceinline__ void adam_at(int64_t i, float lr, float beta1, float beta2, float eps, float weight_decay,
                                        float bc1, float bc2, float *p, const float *g, float *m, float *v)
{
    const float gi = g[i] + weight_decay * p[i];
    const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
    const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
}

__global__ void k_adam(int64_t n, float lr, float beta1, float beta2, float eps, float weight_decay, float bc1,
                       float bc2, float *p, const float *g, float *m, float *v)
{
    GRID_STRIDE(i, n) adam_at(i, lr, beta1, beta2, eps, weight_decay, bc1, bc2, p, g, m, v);
}

/* adam over rows[i] of [*, dim] matrices: element e of the launch is column e % dim of row rows[e / dim]. */
__global__ void k_adam_rows(int64_t n_rows, int64_t dim, const int32_t *rows, float lr, float beta1, float beta2,
                            float eps, float weight_decay, float bc1, float bc2, float *p, const float *g, float *m,
                            float *v)
{
    GRID_STRIDE(e, n_rows * dim)
    adam_at((int64_t)rows[e / dim] * dim + e % dim, lr, beta1, beta2, eps, weight_decay, bc1, bc2, p, g, m, v);
}

__global__ void k_zero_rows(int64_t n_rows, int64_t dim, const int32_t *rows, float *x)
{
    GRID_STRIDE(e, n_rows * dim) x[(int64_t)rows[e / dim] * dim + e % dim] = 0.0f;
}

/* ------------------------------------------------------------------ reductions */

/* dot, pass 1: per-block partial sums in double. */
__global__ void k_dot_partial(int64_t n, const float *a, const float *b, double *part)
{
    double s = 0.0;
    GRID_STRIDE(i, n) s += b ? (double)a[i] * (double)b[i] : (double)a[i];
    s = block_sum(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

/* dot, pass 2: one block adds the partials in a fixed order. */
__global__ void k_dot_finish(int nparts, const double *part, float scale, float *out)
{
    double s = 0.0;
    for (int i = threadIdx.x; i < nparts; i += blockDim.x) s += part[i];
    s = block_sum(s);
    if (threadIdx.x == 0) out[0] = (float)(s * scale);
}

/* Column sums over rows, deterministic: pass 1 sums row chunks per column (thread per
 * (chunk, column), so neighbouring threads read neighbouring columns), pass 2 adds each
 * column's chunk partials in chunk order. F(r, j, s0, s1) adds row r's terms. */
template <class F>
__global__ void k_colsum_partial(int64_t rows, int64_t cols, int64_t nchunk, int64_t rpc, F f, double *part)
{
    const int64_t total = cols * nchunk;
    GRID_STRIDE(t, total)
    {
        const int64_t j = t % cols, c = t / cols;
        const int64_t r0 = c * rpc, r1 = r0 + rpc < rows ? r0 + rpc : rows;
        double s0 = 0.0, s1 = 0.0;
        for (int64_t r = r0; r < r1; r++) f(r, j, s0, s1);
        part[t] = s0;
        part[total + t] = s1;
    }
}

__global__ void k_colsum_finish(int64_t cols, int64_t nchunk, const double *part, float *out0, float *out1)
{
    const int64_t total = cols * nchunk;
    GRID_STRIDE(j, cols)
    {
        double s0 = 0.0, s1 = 0.0;
        for (int64_t c = 0; c < nchunk; c++) {
            s0 += part[c * cols + j];
            s1 += part[total + c * cols + j];
        }
        if (out0) out0[j] += (float)s0;
        if (out1) out1[j] += (float)s1;
    }
}

struct bias_terms { /* binary_bwd's db: ADD sums dout, MUL sums dout * a */
    int op;
    int64_t bn;
    const float *dout, *a;
    __device__ void operator()(int64_t r, int64_t j, double &s0, double &) const
    {
        const int64_t i = r * bn + j;
        s0 += op == TEMA_BINARY_ADD ? (double)dout[i] : (double)dout[i] * a[i];
    }
};

struct layernorm_terms { /* dgamma (s0) and dbeta (s1) */
    int64_t dim;
    const float *x, *dout, *mean, *rstd;
    __device__ void operator()(int64_t r, int64_t j, double &s0, double &s1) const
    {
        const float g = dout[r * dim + j];
        s0 += (double)g * (x[r * dim + j] - mean[r]) * rstd[r];
        s1 += g;
    }
};

template <class F> static void column_sums(cuda_backend *b, int64_t rows, int64_t cols, F f, float *out0, float *out1,
                                           const char *what)
{
    if (rows <= 0 || cols <= 0 || (!out0 && !out1)) return;
    /* enough (chunk, column) threads to fill the GPU, chunks of at least 32 rows */
    int64_t want = ((int64_t)1 << 18) / cols;
    int64_t nchunk = (rows + 31) / 32;
    if (nchunk > want) nchunk = want;
    if (nchunk < 1) nchunk = 1;
    const int64_t rpc = (rows + nchunk - 1) / nchunk;
    nchunk = (rows + rpc - 1) / rpc;
    double *part = (double *)scratch(b, sizeof(double) * 2 * (size_t)(cols * nchunk));
    if (!part) return;
    k_colsum_partial<<<grid_for(b, cols * nchunk, BLOCK), BLOCK, 0, b->stream>>>(rows, cols, nchunk, rpc, f, part);
    note(b, what);
    k_colsum_finish<<<grid_for(b, cols, BLOCK), BLOCK, 0, b->stream>>>(cols, nchunk, part, out0, out1);
    note(b, what);
}

/* ------------------------------------------------------------------ row kernels (block per row) */

#define ROW_LOOP(r, rows) for (int64_t r = blockIdx.x; r < (rows); r += gridDim.x)

__global__ void k_layernorm(int64_t rows, int64_t dim, float eps, const float *x, const float *gamma,
                            const float *beta, float *out, float *mean, float *rstd)
{
    ROW_LOOP(r, rows)
    {
        const float *xr = x + r * dim;
        float *o = out + r * dim;
        double s = 0.0;
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) s += xr[j];
        s = block_sum(s);
        const float mu = (float)(s / (double)dim);
        double v = 0.0;
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
            const float c = xr[j] - mu;
            v += (double)c * c;
        }
        v = block_sum(v);
        const float rs = 1.0f / sqrtf((float)(v / (double)dim) + eps);
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
            const float nrm = (xr[j] - mu) * rs;
            o[j] = nrm * (gamma ? gamma[j] : 1.0f) + (beta ? beta[j] : 0.0f);
        }
        if (threadIdx.x == 0) {
            mean[r] = mu;
            rstd[r] = rs;
        }
    }
}

__global__ void k_layernorm_bwd_dx(int64_t rows, int64_t dim, const float *x, const float *gamma, const float *mean,
                                   const float *rstd, const float *dout, float *dx)
{
    ROW_LOOP(r, rows)
    {
        const float *xr = x + r * dim, *g = dout + r * dim;
        const float mu = mean[r], rs = rstd[r];
        double sum_dn = 0.0, sum_dn_n = 0.0;
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
            const float dn = g[j] * (gamma ? gamma[j] : 1.0f);
            sum_dn += dn;
            sum_dn_n += (double)dn * (xr[j] - mu) * rs;
        }
        sum_dn = block_sum(sum_dn);
        sum_dn_n = block_sum(sum_dn_n);
        const float a = (float)(sum_dn / (double)dim), bb = (float)(sum_dn_n / (double)dim);
        float *d = dx + r * dim;
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
            const float dn = g[j] * (gamma ? gamma[j] : 1.0f);
            d[j] += rs * (dn - a - (xr[j] - mu) * rs * bb);
        }
    }
}

__global__ void k_softmax(int64_t rows, int64_t dim, const uint8_t *mask, bool causal, const float *x, float *out)
{
    ROW_LOOP(r, rows)
    {
        const float *xr = x + r * dim;
        const uint8_t *mr = mask ? mask + r * dim : NULL;
        float *o = out + r * dim;
        const int64_t lim = causal ? r % dim + 1 : dim;
        float m = -INFINITY;
        for (int64_t j = threadIdx.x; j < lim; j += blockDim.x)
            if ((!mr || mr[j]) && xr[j] > m) m = xr[j];
        m = block_max(m);
        if (m == -INFINITY) { /* nothing allowed: zeros (uniform across the block) */
            for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) o[j] = 0.0f;
            continue;
        }
        double s = 0.0;
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
            const float e = (j < lim && (!mr || mr[j])) ? expf(xr[j] - m) : 0.0f;
            o[j] = e;
            s += e;
        }
        s = block_sum(s);
        const float inv = (float)(1.0 / s);
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) o[j] *= inv; /* each thread rescales its own */
    }
}

__global__ void k_softmax_bwd(int64_t rows, int64_t dim, const float *out, const float *dout, float *dx)
{
    ROW_LOOP(r, rows)
    {
        const float *o = out + r * dim, *g = dout + r * dim;
        double s = 0.0;
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) s += (double)o[j] * g[j];
        const float sf = (float)block_sum(s);
        float *d = dx + r * dim;
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) d[j] += o[j] * (g[j] - sf);
    }
}

__global__ void k_l2norm(int64_t rows, int64_t dim, float eps, const float *x, float *out, float *norm)
{
    ROW_LOOP(r, rows)
    {
        const float *xr = x + r * dim;
        double s = 0.0;
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) s += (double)xr[j] * xr[j];
        s = block_sum(s);
        const float nr = (float)sqrt(s);
        const float inv = 1.0f / (nr > eps ? nr : eps);
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) out[r * dim + j] = xr[j] * inv;
        if (threadIdx.x == 0) norm[r] = nr;
    }
}

__global__ void k_l2norm_bwd(int64_t rows, int64_t dim, float eps, const float *out, const float *norm,
                             const float *dout, float *dx)
{
    ROW_LOOP(r, rows)
    {
        const float *o = out + r * dim, *g = dout + r * dim;
        float *d = dx + r * dim;
        const float nr = norm[r];
        if (nr > eps) { /* uniform across the block */
            double s = 0.0;
            for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) s += (double)o[j] * g[j];
            const float sf = (float)block_sum(s), inv = 1.0f / nr;
            for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) d[j] += (g[j] - o[j] * sf) * inv;
        } else {
            for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) d[j] += g[j] / eps;
        }
    }
}

/* log sum exp of one row, as cpu.c's row_lse: max, then a double sum of expf. */
__device__ float row_lse(const float *x, int64_t n)
{
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = x[j] > m ? x[j] : m;
    m = block_max(m);
    if (m == -INFINITY) return -INFINITY;
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += expf(x[j] - m);
    s = block_sum(s);
    return m + (float)log(s);
}

__global__ void k_logsumexp(int64_t rows, int64_t dim, const float *x, float *out)
{
    ROW_LOOP(r, rows)
    {
        const float l = row_lse(x + r * dim, dim);
        if (threadIdx.x == 0) out[r] = l;
    }
}

__global__ void k_logsumexp_bwd(int64_t rows, int64_t dim, const float *x, const float *out, const float *dout,
                                float *dx)
{
    const int64_t n = rows * dim;
    GRID_STRIDE(i, n)
    {
        const int64_t r = i / dim;
        dx[i] += dout[r] * expf(x[i] - out[r]);
    }
}

__global__ void k_xent(int64_t rows, int64_t dim, const float *x, const int32_t *t, float *loss, float *lse)
{
    ROW_LOOP(r, rows)
    {
        const float l = row_lse(x + r * dim, dim);
        if (threadIdx.x == 0) {
            lse[r] = l;
            loss[r] = t[r] < 0 ? 0.0f : l - x[r * dim + t[r]];
        }
    }
}

__global__ void k_xent_bwd(int64_t rows, int64_t dim, const float *x, const int32_t *t, const float *lse,
                           const float *dloss, float scale, float *dx)
{
    const float a = scale * dloss[0];
    const int64_t n = rows * dim;
    GRID_STRIDE(i, n)
    {
        const int64_t r = i / dim, j = i - r * dim;
        const int32_t tr = t[r];
        if (tr < 0) continue;
        float d = dx[i] + a * expf(x[i] - lse[r]);
        if (j == tr) d -= a;
        dx[i] = d;
    }
}

/* ------------------------------------------------------------------ gathers and layouts */

__global__ void k_gather(int64_t n, int64_t dim, const int32_t *ids, const float *table, float *out)
{
    const int64_t total = n * dim;
    GRID_STRIDE(i, total)
    {
        const int64_t r = i / dim, j = i - r * dim;
        const int32_t id = ids[r];
        out[i] = id < 0 ? 0.0f : table[(int64_t)id * dim + j];
    }
}

/* Repeated ids add atomically (order unspecified; see the file comment). */
__global__ void k_scatter_add(int64_t n, int64_t dim, const int32_t *ids, const float *dout, float *dtable)
{
    const int64_t total = n * dim;
    GRID_STRIDE(i, total)
    {
        const int64_t r = i / dim, j = i - r * dim;
        const int32_t id = ids[r];
        if (id >= 0) atomicAdd(dtable + (int64_t)id * dim + j, dout[i]);
    }
}

__global__ void k_copy2d(int64_t rows, int64_t cols, const float *src, int64_t lds, float *dst, int64_t ldd,
                         bool accumulate)
{
    const int64_t total = rows * cols;
    GRID_STRIDE(i, total)
    {
        const int64_t r = i / cols, j = i - r * cols;
        const float v = src[r * lds + j];
        float *d = dst + r * ldd + j;
        *d = accumulate ? *d + v : v;
    }
}

/* out[b,h,l,:] (+)= x[b,l,h,:]; one thread per output element. */
__global__ void k_permute0213(int64_t B, int64_t L, int64_t H, int64_t D, const float *x, float *out, bool accumulate)
{
    const int64_t total = B * L * H * D;
    GRID_STRIDE(i, total)
    {
        int64_t q = i;
        const int64_t k = q % D;
        q /= D;
        const int64_t l = q % L;
        q /= L;
        const int64_t h = q % H;
        const int64_t bb = q / H;
        const float v = x[((bb * L + l) * H + h) * D + k];
        out[i] = accumulate ? out[i] + v : v;
    }
}

__global__ void k_rowdot(int64_t rows, int64_t dim, float scale, const float *h, const float *items, const int32_t *t,
                         float *out)
{
    ROW_LOOP(r, rows)
    {
        const int32_t tr = t[r];
        if (tr < 0) { /* uniform across the block */
            if (threadIdx.x == 0) out[r] = 0.0f;
            continue;
        }
        const float *a = h + r * dim, *bv = items + (int64_t)tr * dim;
        float s = 0.0f;
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) s += a[j] * bv[j];
        s = block_sum(s);
        if (threadIdx.x == 0) out[r] = s * scale;
    }
}

__global__ void k_rowdot_bwd(int64_t rows, int64_t dim, float scale, const float *h, const float *items,
                             const int32_t *t, const float *dout, float *dh, float *ditems)
{
    const int64_t total = rows * dim;
    GRID_STRIDE(i, total)
    {
        const int64_t r = i / dim, j = i - r * dim;
        const int32_t tr = t[r];
        if (tr < 0) continue;
        const float g = dout[r] * scale;
        if (dh) dh[i] += g * items[(int64_t)tr * dim + j];
        if (ditems) atomicAdd(ditems + (int64_t)tr * dim + j, g * h[i]);
    }
}

/* ------------------------------------------------------------------ sparse times dense */

/* One warp per row of A, its lanes over the columns of x: each output element is summed by
 * one lane in the row's entry order (no atomics; bitwise reproducible), and a warp reads the
 * 32 consecutive floats of one row of x per entry (coalesced). */
__global__ void k_spmm(int64_t rows, int64_t dim, const int64_t *row_ptr, const int32_t *col_idx,
                       const float *values, const float *x, float *out, bool accumulate)
{
    const int lane = threadIdx.x & 31;
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
    for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < rows; r += warps) {
        const int64_t k0 = row_ptr[r], k1 = row_ptr[r + 1];
        for (int64_t c = lane; c < dim; c += 32) {
            float acc = 0.0f;
            for (int64_t k = k0; k < k1; k++) acc += values[k] * x[(int64_t)col_idx[k] * dim + c];
            float *o = out + r * dim + c;
            *o = accumulate ? *o + acc : acc;
        }
    }
}

/* Inference attention, one thread per (sequence, head, query row): two passes over the keys
 * (the max, then the exponentials and the weighted sum of values, accumulated in out's row,
 * which only this thread writes). Plain and exact rather than fast: encoders call it on
 * sequences of a few dozen rows. */
__global__ void k_attention_infer(int64_t B, int64_t T, int64_t heads, int64_t hd, float scale, const float *q,
                                  const float *k, const float *v, int64_t ld, const int32_t *len, float *out,
                                  int64_t ldo)
{
    GRID_STRIDE(i, B * heads * T)
    {
        const int64_t t = i % T, h = (i / T) % heads, b = i / (T * heads), r0 = b * T, c = h * hd;
        const int64_t n = len[b] < 0 ? 0 : len[b] > T ? T : len[b];
        float *o = out + (r0 + t) * ldo + c;
        for (int64_t d = 0; d < hd; d++) o[d] = 0.0f;
        if (t >= n) continue;
        const float *qt = q + (r0 + t) * ld + c;
        float m = -INFINITY, sum = 0.0f;
        for (int64_t j = 0; j < n; j++) {
            const float *kj = k + (r0 + j) * ld + c;
            float dot = 0.0f;
            for (int64_t d = 0; d < hd; d++) dot += qt[d] * kj[d];
            m = fmaxf(m, scale * dot);
        }
        for (int64_t j = 0; j < n; j++) {
            const float *kj = k + (r0 + j) * ld + c, *vj = v + (r0 + j) * ld + c;
            float dot = 0.0f;
            for (int64_t d = 0; d < hd; d++) dot += qt[d] * kj[d];
            const float p = expf(scale * dot - m);
            sum += p;
            for (int64_t d = 0; d < hd; d++) o[d] += p * vj[d];
        }
        const float inv = 1.0f / sum;
        for (int64_t d = 0; d < hd; d++) o[d] *= inv;
    }
}

/* ------------------------------------------------------------------ chunked log-sum-exp */

__global__ void k_lse_init(int64_t rows, float *m, float *s)
{
    GRID_STRIDE(r, rows)
    {
        m[r] = -INFINITY;
        s[r] = 0.0f;
    }
}

__device__ __forceinline__ void range_in_chunk(int64_t c0, int64_t cols, int32_t lo, int32_t hi, int64_t *j0,
                                               int64_t *j1)
{
    const int64_t a = lo - c0, b = hi - c0;
    *j0 = a > 0 ? a : 0;
    *j1 = b < cols ? b : cols;
}

__global__ void k_lse_update(int64_t rows, int64_t cols, int64_t c0, const float *logits, int64_t ld,
                             const int32_t *lo, const int32_t *hi, float *m, float *s)
{
    ROW_LOOP(r, rows)
    {
        int64_t j0, j1;
        range_in_chunk(c0, cols, lo[r], hi[r], &j0, &j1);
        if (j0 >= j1) continue; /* uniform across the block */
        const float *x = logits + r * ld;
        float cm = -INFINITY;
        for (int64_t j = j0 + threadIdx.x; j < j1; j += blockDim.x) cm = x[j] > cm ? x[j] : cm;
        cm = block_max(cm);
        const float mr = m[r]; /* every thread reads before thread 0 writes (barriers in block_sum) */
        const float mn = cm > mr ? cm : mr;
        if (mn == -INFINITY) continue;
        float acc = 0.0f;
        for (int64_t j = j0 + threadIdx.x; j < j1; j += blockDim.x) acc += expf(x[j] - mn);
        acc = block_sum(acc);
        if (threadIdx.x == 0) {
            s[r] = s[r] * expf(mr - mn) + acc;
            m[r] = mn;
        }
    }
}

__global__ void k_lse_finish(int64_t rows, const float *m, const float *s, float *out)
{
    GRID_STRIDE(r, rows) out[r] = s[r] > 0.0f ? m[r] + logf(s[r]) : 0.0f;
}

__global__ void k_lse_grad(int64_t rows, int64_t cols, int64_t c0, float *logits, int64_t ld, const int32_t *lo,
                           const int32_t *hi, const float *lse, const float *dout, float scale)
{
    const int64_t total = rows * cols;
    GRID_STRIDE(i, total)
    {
        const int64_t r = i / cols, j = i - r * cols;
        int64_t j0, j1;
        range_in_chunk(c0, cols, lo[r], hi[r], &j0, &j1);
        float *x = logits + r * ld + j;
        *x = (j >= j0 && j < j1) ? scale * dout[r] * expf(*x - lse[r]) : 0.0f;
    }
}

/* sgemm with K == 0: C = beta C (beta == 0 writes zeros, ignoring C's contents). */
__global__ void k_scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc, int64_t stride_c, int64_t batch)
{
    const int64_t total = M * N * batch;
    GRID_STRIDE(i, total)
    {
        const int64_t q = i / (M * N), rem = i - q * M * N, r = rem / N, j = rem - r * N;
        float *c = C + q * stride_c + r * ldc + j;
        *c = beta == 0.0f ? 0.0f : beta * *c;
    }
}

/* precision: bf16 - round to nearest even (the products' inputs; see gemm_bf16) */
__global__ void k_to_bf16(int64_t n, const float *x, __nv_bfloat16 *out)
{
    GRID_STRIDE(i, n) out[i] = __float2bfloat16_rn(x[i]);
}

#endif
