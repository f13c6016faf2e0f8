/* plugins/backend/cpu.c - the CPU backend: OpenBLAS sgemm plus OpenMP loops.
 *
 * One thread budget (`threads`), one pool: OpenMP's threads run the loops and split the
 * matrix products, each calling a single-threaded OpenBLAS (see cpu_sgemm).
 *
 * OpenBLAS is opened with dlopen() in init() rather than linked. It picks its kernels
 * once, when it loads, from the CPUs it knows; an OpenBLAS older than the CPU falls back
 * to its generic "Prescott" kernels (seen on a 16-core cloud VM with Debian 12's 0.3.21:
 * sgemm at 16 instead of ~100 GFLOP/s per core, 16 threads no faster than 1 here). Loading
 * it ourselves lets init() name the kernel family from the CPU's own AVX2 / AVX-512 bits
 * first. OPENBLAS_CORETYPE, when set, is left alone, and so is an OpenBLAS that is
 * already loaded (the test programs link it).
 */
#include <cblas.h>
#include <dlfcn.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugin_opts.h"
#include "bf16_gemm.h"
#include "cpu_internal.h"
#include "tema/backend.h"
#include "tema/plugin.h"


/* HOT and poly_exp (the vectorisable exp of the hot loops) are in cpu_internal.h. */

/* Element-wise loops run in spans (one call per span, so the HOT clones vectorise them). */
#define SPAN 4096
#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

/* tanh through the polynomial exp: absolute error ~1e-7, which GELU adds to 1 (the
 * `tanh` op keeps libm's tanhf for its relative accuracy near 0) */
static inline float gelu_tanh(float u) { return 1.0f - 2.0f / (poly_exp(2.0f * u) + 1.0f); }

HOT static void span_gelu(const float *x, float *out, int64_t n)
{
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
        float v = x[j];
        out[j] = 0.5f * v * (1.0f + gelu_tanh(GELU_K * (v + 0.044715f * v * v * v)));
    }
}

/* erf by Abramowitz & Stegun 7.1.26 through the polynomial exp: absolute error ~2e-7, far
 * below float GELU's own rounding once multiplied by x/2 (libm's erff does not vectorise and
 * was 15% of a BERT forward pass) */
static inline float poly_erf(float x)
{
    const float a = x < 0.0f ? -x : x;
    const float t = 1.0f / (1.0f + 0.3275911f * a);
    const float p = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
    const float y = 1.0f - p * poly_exp(-a * a);
    return x < 0.0f ? -y : y;
}

HOT static void span_gelu_erf(const float *x, float *out, int64_t n)
{
#pragma omp simd
    for (int64_t j = 0; j < n; j++) out[j] = 0.5f * x[j] * (1.0f + poly_erf(x[j] * (float)M_SQRT1_2));
}

HOT static void span_gelu_erf_bwd(const float *x, const float *dout, float *dx, int64_t n)
{
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
        const float v = x[j];
        dx[j] += dout[j] * (0.5f * (1.0f + poly_erf(v * (float)M_SQRT1_2)) + v * 0.3989422804f * poly_exp(-0.5f * v * v));
    }
}

HOT static void span_gelu_bwd(const float *x, const float *dout, float *dx, int64_t n)
{
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
        float v = x[j];
        float t = gelu_tanh(GELU_K * (v + 0.044715f * v * v * v));
        float du = GELU_K * (1.0f + 3.0f * 0.044715f * v * v);
        dx[j] += dout[j] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
    }
}

/* element i0 + j of the tensor; the mask is tema_dropout_keep's, bit for bit */
HOT static void span_dropout(const float *x, float *out, int64_t n, uint64_t i0, uint64_t seed, float p,
                             float keep_scale)
{
#pragma omp simd
    for (int64_t j = 0; j < n; j++) out[j] = tema_dropout_keep(seed, i0 + (uint64_t)j, p) ? x[j] * keep_scale : 0.0f;
}

HOT static void span_dropout_bwd(const float *dout, float *dx, int64_t n, uint64_t i0, uint64_t seed, float p,
                                 float keep_scale)
{
#pragma omp simd
    for (int64_t j = 0; j < n; j++) dx[j] += tema_dropout_keep(seed, i0 + (uint64_t)j, p) ? dout[j] * keep_scale : 0.0f;
}

#define OPENBLAS_SONAME "libopenblas.so.0"

/* the process's one OpenBLAS, opened by the first init() */
static struct {
    void *lib;
    char kernels[48]; /* what tema set OPENBLAS_CORETYPE to, or "" */
    __typeof__(&cblas_sgemm) sgemm;
    void (*set_num_threads)(int);
    char *(*get_corename)(void);
} blas;


/* The OpenBLAS kernel family for sgemm on this CPU, from the features the CPU and the OS
 * report (GCC's cpuid checks include the OS's AVX state); NULL to let OpenBLAS decide. */
static const char *kernels_for_this_cpu(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

static tema_status open_openblas(tema_err *err)
{
    if (blas.lib) return TEMA_OK;
    void *lib = dlopen(OPENBLAS_SONAME, RTLD_NOW | RTLD_NOLOAD);
    if (!lib) {
        const char *pick = getenv("OPENBLAS_CORETYPE") ? NULL : kernels_for_this_cpu();
        if (pick && setenv("OPENBLAS_CORETYPE", pick, 0) == 0)
            snprintf(blas.kernels, sizeof blas.kernels, "%s", pick);
        /* OpenBLAS starts its thread pool as it loads; it only ever runs single-threaded here */
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        lib = dlopen(OPENBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
    }
    if (!lib)
        return tema_fail(err, TEMA_ENOTFOUND, "cpu backend: cannot load %s: %s; hint: install OpenBLAS "
                         "(Debian: apt-get install libopenblas0-pthread)", OPENBLAS_SONAME, dlerror());
    blas.sgemm = (__typeof__(blas.sgemm))dlsym(lib, "cblas_sgemm");
    blas.set_num_threads = (void (*)(int))dlsym(lib, "openblas_set_num_threads");
    blas.get_corename = (char *(*)(void))dlsym(lib, "openblas_get_corename");
    if (!blas.sgemm || !blas.set_num_threads)
        return tema_fail(err, TEMA_EABI, "cpu backend: %s has no cblas_sgemm / openblas_set_num_threads; hint: "
                         "is it OpenBLAS?", OPENBLAS_SONAME);
    blas.lib = lib;
    return TEMA_OK;
}

static const tema_option cpu_options[] = {
    {"threads", TEMA_OPT_INT, "1", 1, 256, NULL, "threads for BLAS and OpenMP loops (one pool)"},
    {"precision", TEMA_OPT_ENUM, "fp32", 0, -1, "fp32|bf16",
     "bf16: matrix products of at least 4 MFLOP take bf16 inputs (oneDNN on AMX or AVX512-BF16, fp32 output and "
     "accumulation); parameters, optimizer state, reductions and smaller products stay fp32"},
};

static tema_status cpu_init(const tema_host *host, const tema_cfg *opts, void **self, tema_err *err)
{
    int64_t threads;
    tema_status st = plugin_opt_int(host, opts, "cpu backend", "threads", &threads, err);
    if (st != TEMA_OK) return st;
    st = open_openblas(err);
    if (st != TEMA_OK) return st;
    const char *precision = NULL;
    st = plugin_opt_str(host, opts, "cpu backend", "precision", &precision, err);
    if (st != TEMA_OK) return st;
    cpu_backend *b = calloc(1, sizeof *b);
    if (!b) return tema_fail(err, TEMA_ENOMEM, "cpu backend: out of memory");
    b->threads = (int)threads;
    omp_set_num_threads(b->threads); /* before oneDNN's first product: it sizes its work by it */
    char impl[64] = "";
    if (!strcmp(precision, "bf16") && (st = bf16_gemm_open(&b->bf16, impl, sizeof impl, err)) != TEMA_OK) {
        free(b);
        return st;
    }
    if (b->bf16 && host && host->log)
        host->log(TEMA_LOG_INFO, "cpu", "precision bf16: products through oneDNN (%s)", impl);
    blas.set_num_threads(1); /* see cpu_sgemm: the OpenMP threads split the products */
    if (host && host->log && blas.get_corename) {
        const char *core = blas.get_corename();
        if (blas.kernels[0])
            host->log(TEMA_LOG_INFO, "cpu", "OpenBLAS kernels %s (chosen from this CPU's AVX2/AVX-512 support; "
                      "OPENBLAS_CORETYPE overrides), %d thread%s", core, b->threads, b->threads == 1 ? "" : "s");
        else if (!strcmp(core, "Prescott") && kernels_for_this_cpu())
            host->log(TEMA_LOG_WARN, "cpu", "OpenBLAS runs its generic Prescott kernels on a CPU with %s; "
                      "hint: unset OPENBLAS_CORETYPE or set it to %s (several times faster)",
                      !strcmp(kernels_for_this_cpu(), "SkylakeX") ? "AVX-512" : "AVX2", kernels_for_this_cpu());
    }
    *self = b;
    return TEMA_OK;
}

static void cpu_destroy(void *self)
{
    cpu_backend *b = self;
    if (b) bf16_gemm_close(b->bf16);
    free(b);
}

static tema_status cpu_sync(void *self, tema_err *err)
{
    (void)self;
    (void)err;
    return TEMA_OK;
}

static void *cpu_alloc(void *self, size_t bytes)
{
    (void)self;
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    if (posix_memalign(&p, 64, (bytes + 63) & ~(size_t)63) != 0) return NULL;
    return p;
}

static void cpu_free(void *self, void *p)
{
    (void)self;
    free(p);
}

static void cpu_memset0(void *self, void *p, size_t bytes)
{
    (void)self;
    if (bytes) memset(p, 0, bytes);
}

static void cpu_copy(void *self, void *dst, const void *src, size_t bytes)
{
    (void)self;
    if (bytes && dst != src) memmove(dst, src, bytes);
}

/* C[M,N] = alpha op(A) op(B) + beta C for one matrix, on the calling thread. */
static void sgemm_one(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                      int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        /* BLAS leaves C untouched when K == 0 only if beta == 1: make beta == 0 exact. */
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    blas.sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (blasint)M,
               (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

/* Products this small stay on one thread. */
#define SGEMM_PAR_MIN_FLOPS (1 << 22)

/* The threads split the work themselves and OpenBLAS runs single-threaded inside each: one
 * pool (OpenMP's). With OpenBLAS's own pthreads next to OpenMP's, each pool spun or yielded
 * while the other worked: a third of a 2-thread SASRec step went to spinning. C is split
 * by rows or columns, never along K. */
static void cpu_sgemm(void *self, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                      const float *A, int64_t lda, int64_t stride_a, const float *B, int64_t ldb,
                      int64_t stride_b, float beta, float *C, int64_t ldc, int64_t stride_c, int64_t batch)
{
    const int threads = ((cpu_backend *)self)->threads;
    if (M <= 0 || N <= 0 || batch <= 0) return;
    const double flops = 2.0 * (double)M * (double)N * (double)(K > 0 ? K : 1);
    bf16_gemm *bf16 = ((cpu_backend *)self)->bf16;
    if (bf16 && K > 0 && flops >= SGEMM_PAR_MIN_FLOPS) {
        /* oneDNN splits each product over the threads itself; a shape it refuses runs fp32 */
        int64_t b = 0;
        while (b < batch && bf16_gemm_run(bf16, trans_a, trans_b, M, N, K, alpha, A + b * stride_a, lda,
                                          B + b * stride_b, ldb, beta, C + b * stride_c, ldc))
            b++;
        if (b == batch) return;
        A += b * stride_a, B += b * stride_b, C += b * stride_c, batch -= b;
    }
    if (threads <= 1 || flops * (double)batch < SGEMM_PAR_MIN_FLOPS) {
        for (int64_t b = 0; b < batch; b++)
            sgemm_one(trans_a, trans_b, M, N, K, alpha, A + b * stride_a, lda, B + b * stride_b, ldb, beta,
                      C + b * stride_c, ldc);
        return;
    }
    if (batch >= threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t b = 0; b < batch; b++)
            sgemm_one(trans_a, trans_b, M, N, K, alpha, A + b * stride_a, lda, B + b * stride_b, ldb, beta,
                      C + b * stride_c, ldc);
        return;
    }
    /* few large products: split each one's C into `threads` bands along its longer side */
    const bool by_rows = M >= N;
    const int64_t len = by_rows ? M : N;
    for (int64_t b = 0; b < batch; b++) {
        const float *Ab = A + b * stride_a, *Bb = B + b * stride_b;
        float *Cb = C + b * stride_c;
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int t = 0; t < threads; t++) {
            const int64_t lo = len * t / threads, hi = len * (t + 1) / threads;
            if (hi <= lo) continue;
            if (by_rows) /* rows lo..hi of op(A): rows of A, or columns of the stored A^T */
                sgemm_one(trans_a, trans_b, hi - lo, N, K, alpha, trans_a ? Ab + lo : Ab + lo * lda, lda, Bb, ldb,
                          beta, Cb + lo * ldc, ldc);
            else /* columns lo..hi of op(B): columns of B, or rows of the stored B^T */
                sgemm_one(trans_a, trans_b, M, hi - lo, K, alpha, Ab, lda, trans_b ? Bb + lo * ldb : Bb + lo, ldb,
                          beta, Cb + lo, ldc);
        }
    }
}

static void cpu_axpy(void *self, int64_t n, float alpha, const float *src, float *dst)
{
    (void)self;
#pragma omp parallel for simd if (n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) dst[i] += alpha * src[i];
}

static void cpu_axpy_scalar(void *self, int64_t n, const float *dscalar, float scale, const float *w, float *dst)
{
    (void)self;
    float a = scale * dscalar[0];
    if (w) {
#pragma omp parallel for simd if (n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) dst[i] += a * w[i];
    } else {
#pragma omp parallel for simd if (n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) dst[i] += a;
    }
}

static void cpu_dot(void *self, int64_t n, const float *a, const float *b, float scale, float *out)
{
    (void)self;
    double acc = 0.0;
    if (b) {
#pragma omp parallel for reduction(+ : acc) if (n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) acc += (double)a[i] * b[i];
    } else {
#pragma omp parallel for reduction(+ : acc) if (n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) acc += a[i];
    }
    out[0] = (float)(acc * scale);
}


static void cpu_unary(void *self, tema_unary_op op, int64_t n, float alpha, const float *x, float *out)
{
    (void)self;
    switch (op) {
    case TEMA_UNARY_SCALE:
#pragma omp parallel for simd if (n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) out[i] = alpha * x[i];
        break;
    case TEMA_UNARY_GELU:
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i += SPAN) span_gelu(x + i, out + i, n - i < SPAN ? n - i : SPAN);
        break;
    case TEMA_UNARY_RELU:
#pragma omp parallel for simd if (n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case TEMA_UNARY_SIGMOID:
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) out[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    case TEMA_UNARY_TANH:
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) out[i] = tanhf(x[i]);
        break;
    case TEMA_UNARY_GELU_ERF:
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i += SPAN) span_gelu_erf(x + i, out + i, n - i < SPAN ? n - i : SPAN);
        break;
    }
}

static void cpu_unary_bwd(void *self, tema_unary_op op, int64_t n, float alpha, const float *x, const float *out,
                          const float *dout, float *dx)
{
    (void)self;
    switch (op) {
    case TEMA_UNARY_SCALE:
#pragma omp parallel for simd if (n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) dx[i] += alpha * dout[i];
        break;
    case TEMA_UNARY_GELU:
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i += SPAN) span_gelu_bwd(x + i, dout + i, dx + i, n - i < SPAN ? n - i : SPAN);
        break;
    case TEMA_UNARY_RELU:
#pragma omp parallel for simd if (n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0.0f ? dout[i] : 0.0f;
        break;
    case TEMA_UNARY_SIGMOID:
#pragma omp parallel for simd if (n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) dx[i] += dout[i] * out[i] * (1.0f - out[i]);
        break;
    case TEMA_UNARY_TANH:
#pragma omp parallel for simd if (n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) dx[i] += dout[i] * (1.0f - out[i] * out[i]);
        break;
    case TEMA_UNARY_GELU_ERF:
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i += SPAN) span_gelu_erf_bwd(x + i, dout + i, dx + i, n - i < SPAN ? n - i : SPAN);
        break;
    }
}

static void cpu_dropout(void *self, int64_t n, float p, uint64_t seed, const float *x, float *out)
{
    (void)self;
    float keep_scale = 1.0f / (1.0f - p);
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i += SPAN)
        span_dropout(x + i, out + i, n - i < SPAN ? n - i : SPAN, (uint64_t)i, seed, p, keep_scale);
}

static void cpu_dropout_bwd(void *self, int64_t n, float p, uint64_t seed, const float *dout, float *dx)
{
    (void)self;
    float keep_scale = 1.0f / (1.0f - p);
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i += SPAN)
        span_dropout_bwd(dout + i, dx + i, n - i < SPAN ? n - i : SPAN, (uint64_t)i, seed, p, keep_scale);
}

static void cpu_logaddexp(void *self, int64_t n, const float *a, float la, const float *b, float lb, float *out)
{
    (void)self;
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float u = a[i] + la, v = b[i] + lb;
        float m = u > v ? u : v;
        out[i] = m == -INFINITY ? -INFINITY : m + logf(expf(u - m) + expf(v - m));
    }
}

static void cpu_logaddexp_bwd(void *self, int64_t n, const float *x, float lx, const float *out,
                              const float *dout, float *dx)
{
    (void)self;
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++)
        if (out[i] != -INFINITY) dx[i] += dout[i] * expf(x[i] + lx - out[i]);
}

/* one row; the double sums run in SIMD lanes (a sequential double chain was most of
 * layernorm's time in a BERT forward pass) */
HOT static void layernorm_row(const float *xr, int64_t dim, float eps, const float *gamma, const float *beta,
                              float *o, float *mean, float *rstd)
{
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < dim; j++) s += xr[j];
    const float mu = (float)(s / dim);
    double v = 0.0;
#pragma omp simd reduction(+ : v)
    for (int64_t j = 0; j < dim; j++) v += (double)(xr[j] - mu) * (xr[j] - mu);
    const float rs = 1.0f / sqrtf((float)(v / dim) + eps);
#pragma omp simd
    for (int64_t j = 0; j < dim; j++) o[j] = (xr[j] - mu) * rs * (gamma ? gamma[j] : 1.0f) + (beta ? beta[j] : 0.0f);
    *mean = mu;
    *rstd = rs;
}

static void cpu_layernorm(void *self, int64_t rows, int64_t dim, float eps, const float *x, const float *gamma,
                          const float *beta, float *out, float *mean, float *rstd)
{
    (void)self;
#pragma omp parallel for if (rows * dim > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++)
        layernorm_row(x + r * dim, dim, eps, gamma, beta, out + r * dim, mean + r, rstd + r);
}

static void cpu_layernorm_bwd(void *self, int64_t rows, int64_t dim, const float *x, const float *gamma,
                              const float *mean, const float *rstd, const float *dout, float *dx, float *dgamma,
                              float *dbeta)
{
    (void)self;
    if (dx) {
#pragma omp parallel for if (rows * dim > PAR_MIN) schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const float *xr = x + r * dim, *g = dout + r * dim;
            float mu = mean[r], rs = rstd[r];
            double sum_dn = 0.0, sum_dn_n = 0.0;
            for (int64_t j = 0; j < dim; j++) {
                float dn = g[j] * (gamma ? gamma[j] : 1.0f);
                sum_dn += dn;
                sum_dn_n += (double)dn * (xr[j] - mu) * rs;
            }
            float a = (float)(sum_dn / dim), b = (float)(sum_dn_n / dim);
            float *d = dx + r * dim;
            for (int64_t j = 0; j < dim; j++) {
                float dn = g[j] * (gamma ? gamma[j] : 1.0f);
                d[j] += rs * (dn - a - (xr[j] - mu) * rs * b);
            }
        }
    }
    if (dgamma || dbeta) {
#pragma omp parallel for if (rows * dim > PAR_MIN) schedule(static)
        for (int64_t j = 0; j < dim; j++) {
            double sg = 0.0, sb = 0.0;
            for (int64_t r = 0; r < rows; r++) {
                float g = dout[r * dim + j];
                sg += (double)g * (x[r * dim + j] - mean[r]) * rstd[r];
                sb += g;
            }
            if (dgamma) dgamma[j] += (float)sg;
            if (dbeta) dbeta[j] += (float)sb;
        }
    }
}

static void cpu_softmax(void *self, int64_t rows, int64_t dim, const uint8_t *mask, bool causal, const float *x,
                        float *out)
{
    (void)self;
#pragma omp parallel for if (rows * dim > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        const uint8_t *mr = mask ? mask + r * dim : NULL;
        float *o = out + r * dim;
        int64_t lim = causal ? r % dim + 1 : dim;
        float m = -INFINITY;
        for (int64_t j = 0; j < lim; j++)
            if ((!mr || mr[j]) && xr[j] > m) m = xr[j];
        if (m == -INFINITY) {
            memset(o, 0, (size_t)dim * sizeof(float));
            continue;
        }
        double s = 0.0;
        for (int64_t j = 0; j < dim; j++) {
            float e = (j < lim && (!mr || mr[j])) ? expf(xr[j] - m) : 0.0f;
            o[j] = e;
            s += e;
        }
        float inv = (float)(1.0 / s);
        for (int64_t j = 0; j < dim; j++) o[j] *= inv;
    }
}

static void cpu_softmax_bwd(void *self, int64_t rows, int64_t dim, const float *out, const float *dout, float *dx)
{
    (void)self;
#pragma omp parallel for if (rows * dim > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *o = out + r * dim, *g = dout + r * dim;
        double s = 0.0;
        for (int64_t j = 0; j < dim; j++) s += (double)o[j] * g[j];
        float sf = (float)s;
        float *d = dx + r * dim;
        for (int64_t j = 0; j < dim; j++) d[j] += o[j] * (g[j] - sf);
    }
}

static void cpu_l2norm(void *self, int64_t rows, int64_t dim, float eps, const float *x, float *out, float *norm)
{
    (void)self;
#pragma omp parallel for if (rows * dim > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        double s = 0.0;
        for (int64_t j = 0; j < dim; j++) s += (double)xr[j] * xr[j];
        float nr = (float)sqrt(s);
        norm[r] = nr;
        float inv = 1.0f / (nr > eps ? nr : eps);
        for (int64_t j = 0; j < dim; j++) out[r * dim + j] = xr[j] * inv;
    }
}

static void cpu_l2norm_bwd(void *self, int64_t rows, int64_t dim, float eps, const float *out, const float *norm,
                           const float *dout, float *dx)
{
    (void)self;
#pragma omp parallel for if (rows * dim > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *o = out + r * dim, *g = dout + r * dim;
        float *d = dx + r * dim;
        if (norm[r] > eps) {
            double s = 0.0;
            for (int64_t j = 0; j < dim; j++) s += (double)o[j] * g[j];
            float sf = (float)s, inv = 1.0f / norm[r];
            for (int64_t j = 0; j < dim; j++) d[j] += (g[j] - o[j] * sf) * inv;
        } else {
            for (int64_t j = 0; j < dim; j++) d[j] += g[j] / eps;
        }
    }
}

static float span_max(const float *x, int64_t n);
static float span_sumexp(const float *x, int64_t n, float shift);
static void span_add_scaled_exp(float *dx, const float *x, int64_t n, float shift, float a);

/* log sum_j exp(x[j]), vectorised (the evaluation reduces every logit of every stream
 * through this: 2.4G terms per validation pass of TEMA on food-kitchen) */
static float row_lse(const float *x, int64_t n)
{
    float m = span_max(x, n);
    if (m == -INFINITY) return -INFINITY;
    return m + logf(span_sumexp(x, n, m));
}

static void cpu_logsumexp(void *self, int64_t rows, int64_t dim, const float *x, float *out)
{
    (void)self;
#pragma omp parallel for if (rows * dim > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) out[r] = row_lse(x + r * dim, dim);
}

static void cpu_logsumexp_bwd(void *self, int64_t rows, int64_t dim, const float *x, const float *out,
                              const float *dout, float *dx)
{
    (void)self;
#pragma omp parallel for if (rows * dim > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++)
        span_add_scaled_exp(dx + r * dim, x + r * dim, dim, out[r], dout[r]);
}

static void cpu_xent(void *self, int64_t rows, int64_t dim, const float *x, const int32_t *t, float *loss,
                     float *lse)
{
    (void)self;
#pragma omp parallel for if (rows * dim > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        lse[r] = row_lse(x + r * dim, dim);
        loss[r] = t[r] < 0 ? 0.0f : lse[r] - x[r * dim + t[r]];
    }
}

static void cpu_xent_bwd(void *self, int64_t rows, int64_t dim, const float *x, const int32_t *t, const float *lse,
                         const float *dloss, float scale, float *dx)
{
    (void)self;
    float a = scale * dloss[0];
#pragma omp parallel for if (rows * dim > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        if (t[r] < 0) continue;
        span_add_scaled_exp(dx + r * dim, x + r * dim, dim, lse[r], a);
        dx[r * dim + t[r]] -= a;
    }
}

static void cpu_gather(void *self, int64_t n, int64_t dim, const int32_t *ids, const float *table, float *out)
{
    (void)self;
#pragma omp parallel for if (n * dim > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0) memset(out + i * dim, 0, (size_t)dim * sizeof(float));
        else memcpy(out + i * dim, table + (int64_t)ids[i] * dim, (size_t)dim * sizeof(float));
    }
}

static void cpu_scatter_add(void *self, int64_t n, int64_t dim, const int32_t *ids, const float *dout,
                            float *dtable)
{
    (void)self;
    /* Rows may repeat, so threads split the columns: each (id, column) has one writer and
     * the sum order is the row order, independent of the thread count. */
    int64_t nblk = dim >= 64 ? dim / 16 : 1, blk = (dim + nblk - 1) / nblk;
#pragma omp parallel for if (n * dim > PAR_MIN) schedule(static)
    for (int64_t b = 0; b < nblk; b++) {
        int64_t j0 = b * blk, j1 = j0 + blk < dim ? j0 + blk : dim;
        for (int64_t i = 0; i < n; i++) {
            if (ids[i] < 0) continue;
            float *d = dtable + (int64_t)ids[i] * dim;
            const float *g = dout + i * dim;
            for (int64_t j = j0; j < j1; j++) d[j] += g[j];
        }
    }
}

static void cpu_copy2d(void *self, int64_t rows, int64_t cols, const float *src, int64_t lds, float *dst,
                       int64_t ldd, bool accumulate)
{
    (void)self;
#pragma omp parallel for if (rows * cols > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        if (accumulate)
            for (int64_t j = 0; j < cols; j++) dst[r * ldd + j] += src[r * lds + j];
        else
            memcpy(dst + r * ldd, src + r * lds, (size_t)cols * sizeof(float));
    }
}

static void cpu_permute0213(void *self, int64_t B, int64_t L, int64_t H, int64_t D, const float *x, float *out,
                            bool accumulate)
{
    (void)self;
#pragma omp parallel for collapse(2) if (B * L * H * D > PAR_MIN) schedule(static)
    for (int64_t b = 0; b < B; b++)
        for (int64_t l = 0; l < L; l++)
            for (int64_t h = 0; h < H; h++) {
                const float *s = x + ((b * L + l) * H + h) * D;
                float *d = out + ((b * H + h) * L + l) * D;
                if (accumulate)
                    for (int64_t k = 0; k < D; k++) d[k] += s[k];
                else
                    memcpy(d, s, (size_t)D * sizeof(float));
            }
}

static void cpu_rowdot(void *self, int64_t rows, int64_t dim, float scale, const float *h, const float *items,
                       const int32_t *t, float *out)
{
    (void)self;
#pragma omp parallel for if (rows * dim > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        if (t[r] < 0) {
            out[r] = 0.0f;
            continue;
        }
        const float *a = h + r * dim, *b = items + (int64_t)t[r] * dim;
        float s = 0.0f;
        for (int64_t j = 0; j < dim; j++) s += a[j] * b[j];
        out[r] = s * scale;
    }
}

static void cpu_rowdot_bwd(void *self, int64_t rows, int64_t dim, float scale, const float *h, const float *items,
                           const int32_t *t, const float *dout, float *dh, float *ditems)
{
    (void)self;
    if (dh) {
#pragma omp parallel for if (rows * dim > PAR_MIN) schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (t[r] < 0) continue;
            float g = dout[r] * scale;
            const float *b = items + (int64_t)t[r] * dim;
            for (int64_t j = 0; j < dim; j++) dh[r * dim + j] += g * b[j];
        }
    }
    if (ditems) { /* targets repeat: serial in row order (rows*dim is small next to the loss) */
        for (int64_t r = 0; r < rows; r++) {
            if (t[r] < 0) continue;
            float g = dout[r] * scale;
            float *d = ditems + (int64_t)t[r] * dim;
            for (int64_t j = 0; j < dim; j++) d[j] += g * h[r * dim + j];
        }
    }
}

/* ---- the hot loops of lse_chunked (poly_exp and HOT are at the top) ---- */

HOT static float span_max(const float *x, int64_t n)
{
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}

HOT static float span_sumexp(const float *x, int64_t n, float shift)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < n; j++) s += poly_exp(x[j] - shift);
    return s;
}

HOT static void span_add_scaled_exp(float *dx, const float *x, int64_t n, float shift, float a)
{
#pragma omp simd
    for (int64_t j = 0; j < n; j++) dx[j] += a * poly_exp(x[j] - shift);
}

HOT static void span_softmax_grad(float *x, int64_t n, float shift, float g)
{
#pragma omp simd
    for (int64_t j = 0; j < n; j++) x[j] = g * poly_exp(x[j] - shift);
}

static void cpu_lse_init(void *self, int64_t rows, float *m, float *s)
{
    (void)self;
    for (int64_t r = 0; r < rows; r++) {
        m[r] = -INFINITY;
        s[r] = 0.0f;
    }
}

static inline void range_in_chunk(int64_t c0, int64_t cols, int32_t lo, int32_t hi, int64_t *j0, int64_t *j1)
{
    int64_t a = lo - c0, b = hi - c0;
    *j0 = a > 0 ? a : 0;
    *j1 = b < cols ? b : cols;
}

static void cpu_lse_update(void *self, int64_t rows, int64_t cols, int64_t c0, const float *logits, int64_t ld,
                           const int32_t *lo, const int32_t *hi, float *m, float *s)
{
    (void)self;
#pragma omp parallel for if (rows * cols > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t j0, j1;
        range_in_chunk(c0, cols, lo[r], hi[r], &j0, &j1);
        if (j0 >= j1) continue;
        const float *x = logits + r * ld;
        float cm = span_max(x + j0, j1 - j0);
        float mn = cm > m[r] ? cm : m[r];
        if (mn == -INFINITY) continue;
        float acc = span_sumexp(x + j0, j1 - j0, mn);
        s[r] = s[r] * expf(m[r] - mn) + acc;
        m[r] = mn;
    }
}

static void cpu_lse_finish(void *self, int64_t rows, const float *m, const float *s, float *out)
{
    (void)self;
    for (int64_t r = 0; r < rows; r++) out[r] = s[r] > 0.0f ? m[r] + logf(s[r]) : 0.0f;
}

static void cpu_lse_grad(void *self, int64_t rows, int64_t cols, int64_t c0, float *logits, int64_t ld,
                         const int32_t *lo, const int32_t *hi, const float *lse, const float *dout, float scale)
{
    (void)self;
#pragma omp parallel for if (rows * cols > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t j0, j1;
        range_in_chunk(c0, cols, lo[r], hi[r], &j0, &j1);
        float *x = logits + r * ld;
        if (j0 >= j1) {
            memset(x, 0, (size_t)cols * sizeof(float));
            continue;
        }
        float g = scale * dout[r], l = lse[r];
        for (int64_t j = 0; j < j0; j++) x[j] = 0.0f;
        span_softmax_grad(x + j0, j1 - j0, l, g);
        for (int64_t j = j1; j < cols; j++) x[j] = 0.0f;
    }
}

/* ---- sparse times dense ---- */

/* Rows r0..r1 of out = A x: each row accumulates its entries in order (one writer, no
 * atomics), in place in out, so the result does not depend on the threads. */
HOT static void spmm_rows(int64_t r0, int64_t r1, int64_t dim, const int64_t *row_ptr, const int32_t *col_idx,
                          const float *values, const float *x, float *out, bool accumulate)
{
    for (int64_t r = r0; r < r1; r++) {
        float *o = out + r * dim;
        if (!accumulate) memset(o, 0, (size_t)dim * sizeof(float));
        for (int64_t k = row_ptr[r]; k < row_ptr[r + 1]; k++) {
            const float v = values[k];
            const float *xr = x + (int64_t)col_idx[k] * dim;
#pragma omp simd
            for (int64_t j = 0; j < dim; j++) o[j] += v * xr[j];
        }
    }
}

/* Rows in blocks handed out dynamically: degrees of item graphs are skewed (a popular item
 * has thousands of neighbours), so static halves would leave one thread with most edges. */
#define SPMM_BLOCK 64

static void cpu_spmm(void *self, int64_t rows, int64_t dim, const int64_t *row_ptr, const int32_t *col_idx,
                     const float *values, const float *x, float *out, bool accumulate)
{
    const int threads = ((cpu_backend *)self)->threads;
    if (rows <= 0 || dim <= 0) return;
    const int64_t work = (row_ptr[rows] + rows) * dim, blocks = (rows + SPMM_BLOCK - 1) / SPMM_BLOCK;
#pragma omp parallel for num_threads(threads) if (threads > 1 && work > PAR_MIN) schedule(dynamic, 1)
    for (int64_t blk = 0; blk < blocks; blk++) {
        const int64_t r0 = blk * SPMM_BLOCK, r1 = r0 + SPMM_BLOCK < rows ? r0 + SPMM_BLOCK : rows;
        spmm_rows(r0, r1, dim, row_ptr, col_idx, values, x, out, accumulate);
    }
}

static const tema_backend_ops cpu_ops = {
    .struct_size = sizeof(tema_backend_ops),
    .version = TEMA_BACKEND_OPS_VERSION,
    .init = cpu_init,
    .destroy = cpu_destroy,
    .sync = cpu_sync,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .memset0 = cpu_memset0,
    .to_device = cpu_copy,
    .to_host = cpu_copy,
    .copy = cpu_copy,
    .sgemm = cpu_sgemm,
    .axpy = cpu_axpy,
    .axpy_scalar = cpu_axpy_scalar,
    .dot = cpu_dot,
    .unary = cpu_unary,
    .unary_bwd = cpu_unary_bwd,
    .binary = cpu_binary,
    .binary_bwd = cpu_binary_bwd,
    .dropout = cpu_dropout,
    .dropout_bwd = cpu_dropout_bwd,
    .logaddexp = cpu_logaddexp,
    .logaddexp_bwd = cpu_logaddexp_bwd,
    .layernorm = cpu_layernorm,
    .layernorm_bwd = cpu_layernorm_bwd,
    .softmax = cpu_softmax,
    .softmax_bwd = cpu_softmax_bwd,
    .l2norm = cpu_l2norm,
    .l2norm_bwd = cpu_l2norm_bwd,
    .logsumexp = cpu_logsumexp,
    .logsumexp_bwd = cpu_logsumexp_bwd,
    .xent = cpu_xent,
    .xent_bwd = cpu_xent_bwd,
    .gather = cpu_gather,
    .scatter_add = cpu_scatter_add,
    .copy2d = cpu_copy2d,
    .permute0213 = cpu_permute0213,
    .rowdot = cpu_rowdot,
    .rowdot_bwd = cpu_rowdot_bwd,
    .lse_init = cpu_lse_init,
    .lse_update = cpu_lse_update,
    .lse_finish = cpu_lse_finish,
    .lse_grad = cpu_lse_grad,
    .adam = cpu_adam,
    .spmm = cpu_spmm,
    .attention_infer = cpu_attention_infer,
    .adam_rows = cpu_adam_rows,
    .zero_rows = cpu_zero_rows,
};

static const tema_plugin cpu_plugin = {TEMA_PLUGIN_HEADER(TEMA_KIND_BACKEND, "cpu", "1.0.0",
                                                          "CPU backend: OpenBLAS sgemm and OpenMP kernels",
                                                          cpu_options, cpu_ops)};
TEMA_PLUGIN_DEFINE(cpu_plugin)
