/* plugins/backend/cuda.cu - the GPU backend: cuBLAS sgemm plus CUDA kernels.
 *
 * Semantics mirror plugins/backend/cpu.c kernel by kernel (tests/test_backend.c checks
 * both against the same double-precision reference). Design:
 *  - One stream and one cuBLAS handle bound to it; every kernel, memset and copy is
 *    queued there, so ordering is program order and no kernel waits on the host.
 *    to_host() is the only blocking call (it returns with the bytes in place).
 *  - Launch errors are cheap to read (cudaGetLastError after each launch); the first one
 *    is kept, named by its kernel, and returned by sync(). Faults inside kernels surface
 *    at the next synchronising call and are reported the same way.
 *  - cuBLAS is opened with dlopen() in init(), not linked: every `tema` command scans the
 *    plugin folder and loads this file, and loading 600 MB of cuBLAS for a run on the cpu
 *    backend (or a machine without a GPU) would cost each of them a noticeable pause.
 *    The CUDA runtime is linked statically (nvcc's default), so the plugin has no
 *    dependency beyond the driver, which it only touches in init().
 *  - Row reductions run one block per row; where cpu.c sums in double, so do these.
 *    Column reductions (broadcast bias gradient, layernorm dgamma/dbeta) are two-pass and
 *    deterministic. scatter_add and rowdot_bwd's ditems use atomicAdd: rows with the same
 *    id add in an unspecified order, so those gradients (embedding tables) can differ in
 *    the last bits from run to run; everything else is bitwise reproducible.
 *  - Host-to-device copies go through a small pinned staging ring, so they are truly
 *    asynchronous (a copy from pageable memory may wait for the stream) and the caller's
 *    buffer is free to reuse as soon as to_device() returns.
 *
 * Over 1,000 lines: one kernel per op of tema/backend.h, mirroring cpu.c; splitting the
 * kernels from the host wrappers is part of issue 11, the house redesign.
 */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../plugin_opts.h"
#include "tema/backend.h"
#include "tema/plugin.h"

#ifndef TEMA_CUDA_LIBDIR
#define TEMA_CUDA_LIBDIR "/usr/local/cuda/lib64"
#endif
#define STR_(x) #x
#define STR(x) STR_(x)
#define CUBLAS_SONAME "libcublas.so." STR(CUBLAS_VER_MAJOR)

#define WHO "cuda"
#define BLOCK 256                 /* threads of elementwise kernels */
#define STAGE_BYTES (8u << 20)    /* pinned staging ring for to_device */
#define STAGE_SEGS 8u
#define SCRATCH_MIN (1u << 16)

/* ------------------------------------------------------------------ cuBLAS, opened lazily */

typedef struct blas_api {
    void *lib;
    decltype(&cublasCreate_v2) create;
    decltype(&cublasDestroy_v2) destroy;
    decltype(&cublasSetStream_v2) set_stream;
    decltype(&cublasSetMathMode) set_math_mode;
    decltype(&cublasSgemm_v2_64) sgemm;
    decltype(&cublasSgemmStridedBatched_64) sgemm_batched;
    decltype(&cublasGemmStridedBatchedEx_64) gemm_ex_batched; /* precision: bf16 */
} blas_api;

typedef struct cuda_backend {
    const tema_host *host;
    int device;
    bool several_devices;   /* more than one visible: kernels check the thread's current device */
    bool tf32;
    bool bf16;              /* precision: bf16 */
    int sm_count;
    cudaStream_t stream;
    blas_api blas;
    cublasHandle_t handle;
    /* first asynchronous failure, returned by sync() */
    tema_status fail_code;
    char fail_msg[512];
    /* per-call scratch (dot partials, column-reduction partials); stream-ordered reuse */
    void *scratch;
    size_t scratch_bytes;
    /* pinned staging ring: STAGE_SEGS segments, each fenced by an event */
    char *stage;
    cudaEvent_t seg_done[STAGE_SEGS];
    unsigned stage_seg;
    size_t stage_off;
    /* memory accounting for the log line at destroy */
    size_t base_used, peak_used;
    uint64_t n_allocs;
} cuda_backend;

static const tema_option cuda_options[] = {
    {"device", TEMA_OPT_INT, "0", 0, 255, NULL, "CUDA device ordinal (as numbered by CUDA_VISIBLE_DEVICES)"},
    {"tf32", TEMA_OPT_BOOL, "false", 1, 0, NULL,
     "allow TF32 tensor cores in sgemm (faster, ~1e-3 relative error); false keeps exact FP32 products"},
    {"threads", TEMA_OPT_INT, "1", 1, 256, NULL,
     "host threads (accepted so configs written for the cpu backend run unchanged; kernels ignore it)"},
    {"precision", TEMA_OPT_ENUM, "fp32", 0, -1, "fp32|bf16",
     "bf16: matrix products take bf16 inputs on the tensor cores (fp32 output and accumulation); parameters, "
     "optimizer state and reductions stay fp32"},
};

/* Kernels may be called from a thread other than the one that ran init(), and the
 * current device is per thread. Only a machine with several GPUs needs the check (no
 * thread_local here: sanitizers mis-track dynamic TLS of dlopen()ed modules). */
static inline void use_device(const cuda_backend *b)
{
    int cur = -1;
    if (b->several_devices && cudaGetDevice(&cur) == cudaSuccess && cur != b->device) cudaSetDevice(b->device);
}

static void record_failure(cuda_backend *b, tema_status code, const char *what, const char *detail)
{
    if (b->fail_code != TEMA_OK) return;
    b->fail_code = code;
    snprintf(b->fail_msg, sizeof b->fail_msg, "%s: %s", what, detail);
}

/* After a launch or an API call: keep the first error, naming where it came from. */
static void note(cuda_backend *b, const char *what)
{
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        record_failure(b, e == cudaErrorMemoryAllocation ? TEMA_ENOMEM : TEMA_EINTERNAL, what, cudaGetErrorString(e));
}

static void note_api(cuda_backend *b, cudaError_t e, const char *what)
{
    if (e != cudaSuccess) {
        cudaGetLastError(); /* clear it so the next launch check does not report it again */
        record_failure(b, e == cudaErrorMemoryAllocation ? TEMA_ENOMEM : TEMA_EINTERNAL, what, cudaGetErrorString(e));
    }
}

static unsigned grid_for(const cuda_backend *b, int64_t n, int threads)
{
    int64_t g = (n + threads - 1) / threads, cap = (int64_t)b->sm_count * 32;
    if (g > cap) g = cap;
    return (unsigned)(g < 1 ? 1 : g);
}

static unsigned row_grid(int64_t rows)
{
    return (unsigned)(rows < (int64_t)1 << 30 ? rows : (int64_t)1 << 30);
}

/* Threads per row block: a power of two from 32 to 512, about the row length. */
static int row_threads(int64_t dim)
{
    int t = 32;
    while (t < dim && t < 512) t *= 2;
    return t;
}

static void *scratch(cuda_backend *b, size_t bytes)
{
    if (bytes <= b->scratch_bytes) return b->scratch;
    size_t want = bytes > SCRATCH_MIN ? bytes : SCRATCH_MIN;
    want += want / 2;
    /* queued kernels may still read the old block */
    note_api(b, cudaStreamSynchronize(b->stream), "scratch (stream synchronize)");
    if (b->scratch) cudaFree(b->scratch);
    b->scratch = NULL;
    b->scratch_bytes = 0;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, want);
    if (e != cudaSuccess) {
        note_api(b, e, "scratch (cudaMalloc)");
        return NULL;
    }
    b->scratch = p;
    b->scratch_bytes = want;
    return p;
}

/* The kernels (device side), in their own file for size; see its top. */
#include "cuda_kernels.cuh"

/* ------------------------------------------------------------------ lifecycle */

static void release(cuda_backend *b)
{
    if (!b) return;
    if (b->handle && b->blas.destroy) b->blas.destroy(b->handle);
    if (b->blas.lib) dlclose(b->blas.lib);
    for (unsigned i = 0; i < STAGE_SEGS; i++)
        if (b->seg_done[i]) cudaEventDestroy(b->seg_done[i]);
    if (b->stage) cudaFreeHost(b->stage);
    if (b->scratch) cudaFree(b->scratch);
    if (b->stream) cudaStreamDestroy(b->stream);
    cudaGetLastError();
    free(b);
}

static tema_status open_cublas(blas_api *api, tema_err *err)
{
    const char *const names[] = {CUBLAS_SONAME, TEMA_CUDA_LIBDIR "/" CUBLAS_SONAME, "libcublas.so"};
    const char *why = "";
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !api->lib; i++) {
        api->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (!api->lib && i == 0) why = dlerror();
    }
    if (!api->lib)
        return tema_fail(err, TEMA_EUNSUPPORTED, "cuda backend: cannot load cuBLAS (%s); hint: install the CUDA %d "
                                                 "toolkit's libcublas or add its folder to LD_LIBRARY_PATH",
                         why, CUBLAS_VER_MAJOR);
#define SYM(field, name)                                                                                   \
    do {                                                                                                   \
        void *s_ = dlsym(api->lib, name);                                                                  \
        if (!s_)                                                                                           \
            return tema_fail(err, TEMA_EUNSUPPORTED, "cuda backend: %s lacks %s; hint: use the cuBLAS of CUDA %d", \
                             CUBLAS_SONAME, name, CUBLAS_VER_MAJOR);                                        \
        memcpy(&api->field, &s_, sizeof s_);                                                               \
    } while (0)
    SYM(create, "cublasCreate_v2");
    SYM(destroy, "cublasDestroy_v2");
    SYM(set_stream, "cublasSetStream_v2");
    SYM(set_math_mode, "cublasSetMathMode");
    SYM(sgemm, "cublasSgemm_v2_64");
    SYM(sgemm_batched, "cublasSgemmStridedBatched_64");
    SYM(gemm_ex_batched, "cublasGemmStridedBatchedEx_64");
#undef SYM
    return TEMA_OK;
}

static void track_memory(cuda_backend *b)
{
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess && total_b - free_b > b->peak_used)
        b->peak_used = total_b - free_b;
}

static tema_status cuda_init(const tema_host *host, const tema_cfg *opts, void **self, tema_err *err)
{
    int64_t device;
    bool tf32;
    tema_status st = plugin_opt_int(host, opts, "cuda backend", "device", &device, err);
    if (st == TEMA_OK) st = plugin_opt_bool(host, opts, "cuda backend", "tf32", &tf32, err);
    const char *precision = "fp32";
    if (st == TEMA_OK) st = plugin_opt_str(host, opts, "cuda backend", "precision", &precision, err);
    if (st != TEMA_OK) return st; /* threads is declared for the cpu backend's configs; nothing here uses it */
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count <= 0) {
        cudaGetLastError();
        return tema_fail(err, TEMA_EUNSUPPORTED, "cuda backend: no CUDA device visible (%s); hint: use backend.plugin: cpu",
                         e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports 0 devices");
    }
    if (device >= count)
        return tema_fail(err, TEMA_EINVAL, "cuda backend: device = %lld but %d CUDA device%s visible; hint: device: 0",
                         (long long)device, count, count == 1 ? " is" : "s are");
    cuda_backend *b = (cuda_backend *)calloc(1, sizeof *b);
    if (!b) return tema_fail(err, TEMA_ENOMEM, "cuda backend: out of memory");
    b->host = host;
    b->device = (int)device;
    b->several_devices = count > 1;
    b->tf32 = tf32;
    b->bf16 = !strcmp(precision, "bf16");
    const char *step = "";
    cudaDeviceProp prop;
    memset(&prop, 0, sizeof prop);
    if ((e = cudaSetDevice(b->device)) != cudaSuccess) step = "cudaSetDevice";
    else if ((e = cudaGetDeviceProperties(&prop, b->device)) != cudaSuccess) step = "cudaGetDeviceProperties";
    else if ((e = cudaStreamCreateWithFlags(&b->stream, cudaStreamNonBlocking)) != cudaSuccess) step = "cudaStreamCreate";
    else if ((e = cudaMallocHost((void **)&b->stage, STAGE_BYTES)) != cudaSuccess) step = "cudaMallocHost";
    for (unsigned i = 0; e == cudaSuccess && i < STAGE_SEGS; i++)
        if ((e = cudaEventCreateWithFlags(&b->seg_done[i], cudaEventDisableTiming)) != cudaSuccess) step = "cudaEventCreate";
    if (e != cudaSuccess) {
        st = tema_fail(err, e == cudaErrorMemoryAllocation ? TEMA_ENOMEM : TEMA_EUNSUPPORTED,
                       "cuda backend: %s on device %d failed: %s; hint: check nvidia-smi, or use backend.plugin: cpu",
                       step, b->device, cudaGetErrorString(e));
        release(b);
        return st;
    }
    b->sm_count = prop.multiProcessorCount > 0 ? prop.multiProcessorCount : 1;
    if ((st = open_cublas(&b->blas, err)) != TEMA_OK) {
        release(b);
        return st;
    }
    cublasStatus_t bs = b->blas.create(&b->handle);
    if (bs == CUBLAS_STATUS_SUCCESS) bs = b->blas.set_stream(b->handle, b->stream);
    if (bs == CUBLAS_STATUS_SUCCESS)
        bs = b->blas.set_math_mode(b->handle, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        release(b);
        return tema_fail(err, bs == CUBLAS_STATUS_ALLOC_FAILED ? TEMA_ENOMEM : TEMA_EUNSUPPORTED,
                         "cuda backend: cuBLAS initialisation failed (status %d); hint: check the CUDA installation "
                         "(nvidia-smi, libcublas version %d)", (int)bs, CUBLAS_VER_MAJOR);
    }
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) b->base_used = b->peak_used = total_b - free_b;
    cudaGetLastError();
    if (host && host->log)
        host->log(TEMA_LOG_INFO, WHO, "device %d: %s, %d SMs, %.1f GiB, compute %d.%d; %s sgemm", b->device, prop.name,
                  b->sm_count, (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), prop.major, prop.minor,
                  b->bf16 ? "BF16-input" : tf32 ? "TF32" : "FP32");
    *self = b;
    return TEMA_OK;
}

static void cuda_destroy(void *self)
{
    cuda_backend *b = (cuda_backend *)self;
    if (!b) return;
    use_device(b);
    cudaStreamSynchronize(b->stream);
    track_memory(b);
    if (b->host && b->host->log)
        b->host->log(TEMA_LOG_INFO, WHO, "peak device memory in use %.1f MiB (%.1f MiB above the CUDA context), "
                                         "%llu allocations",
                     (double)b->peak_used / 1048576.0, (double)(b->peak_used - b->base_used) / 1048576.0,
                     (unsigned long long)b->n_allocs);
    release(b);
}

static tema_status cuda_sync(void *self, tema_err *err)
{
    cuda_backend *b = (cuda_backend *)self;
    use_device(b);
    note_api(b, cudaStreamSynchronize(b->stream), "stream synchronize");
    note(b, "stream synchronize");
    if (b->fail_code != TEMA_OK)
        return tema_fail(err, b->fail_code, "cuda backend: %s; hint: %s", b->fail_msg,
                         b->fail_code == TEMA_ENOMEM ? "lower batch_size, loss chunk or model size"
                                                     : "rerun with CUDA_LAUNCH_BLOCKING=1 to find the failing kernel, "
                                                       "or use backend.plugin: cpu");
    return TEMA_OK;
}

/* ------------------------------------------------------------------ memory */

static void *cuda_alloc(void *self, size_t bytes)
{
    cuda_backend *b = (cuda_backend *)self;
    use_device(b);
    void *p = NULL;
    /* 0 bytes still gives a distinct pointer, as cpu.c does; cudaMalloc aligns to 256 */
    cudaError_t e = cudaMalloc(&p, bytes ? (bytes + 63) & ~(size_t)63 : 64);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* out of memory is the caller's to report, not a sticky failure */
        return NULL;
    }
    b->n_allocs++;
    track_memory(b);
    return p;
}

static void cuda_free(void *self, void *p)
{
    cuda_backend *b = (cuda_backend *)self;
    if (!p) return;
    use_device(b);
    note_api(b, cudaFree(p), "cudaFree");
}

static void cuda_memset0(void *self, void *p, size_t bytes)
{
    cuda_backend *b = (cuda_backend *)self;
    if (!bytes) return;
    use_device(b);
    note_api(b, cudaMemsetAsync(p, 0, bytes, b->stream), "memset0");
}

/* Through the pinned ring, piece by piece: the caller's buffer is copied before this
 * returns, and the DMA from pinned memory never makes the host wait for the stream
 * (except when the ring wraps onto a segment whose copies are still queued). */
static void cuda_to_device(void *self, void *dst, const void *host_src, size_t bytes)
{
    cuda_backend *b = (cuda_backend *)self;
    if (!bytes) return;
    use_device(b);
    const size_t seg = STAGE_BYTES / STAGE_SEGS;
    const char *src = (const char *)host_src;
    char *out = (char *)dst;
    while (bytes > 0) {
        const size_t piece = bytes < seg ? bytes : seg;
        if (b->stage_off + piece > (size_t)(b->stage_seg + 1) * seg) {
            /* leave this segment (fenced by an event); wait until the next one's copies are done */
            note_api(b, cudaEventRecord(b->seg_done[b->stage_seg], b->stream), "to_device (event record)");
            b->stage_seg = (b->stage_seg + 1) % STAGE_SEGS;
            note_api(b, cudaEventSynchronize(b->seg_done[b->stage_seg]), "to_device (event wait)");
            b->stage_off = (size_t)b->stage_seg * seg;
        }
        char *at = b->stage + b->stage_off;
        memcpy(at, src, piece);
        note_api(b, cudaMemcpyAsync(out, at, piece, cudaMemcpyHostToDevice, b->stream), "to_device");
        b->stage_off += (piece + 63) & ~(size_t)63;
        src += piece;
        out += piece;
        bytes -= piece;
    }
}

static void cuda_to_host(void *self, void *host_dst, const void *src, size_t bytes)
{
    cuda_backend *b = (cuda_backend *)self;
    if (!bytes) return;
    use_device(b);
    note_api(b, cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, b->stream), "to_host");
    note_api(b, cudaStreamSynchronize(b->stream), "to_host (synchronize)");
}

static void cuda_copy(void *self, void *dst, const void *src, size_t bytes)
{
    cuda_backend *b = (cuda_backend *)self;
    if (!bytes || dst == src) return;
    use_device(b);
    const char *d = (const char *)dst, *s = (const char *)src;
    if (d < s + bytes && s < d + bytes) { /* overlap: memmove semantics through scratch */
        void *tmp = scratch(b, bytes);
        if (!tmp) return;
        note_api(b, cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, b->stream), "copy");
        src = tmp;
    }
    note_api(b, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, b->stream), "copy");
}

/* ------------------------------------------------------------------ dense algebra */

/* The stored extent of a batch of row-major matrices (rows x cols, leading dimension ld,
 * `stride` apart; 0: one matrix shared by the batch), gaps included. */
static int64_t extent(int64_t rows, int64_t cols, int64_t ld, int64_t stride, int64_t batch)
{
    return (batch > 1 ? (batch - 1) * stride : 0) + (rows - 1) * ld + cols;
}

/* precision: bf16 - A and B rounded to bf16 (same layout) in scratch, then one batched
 * GemmEx with fp32 output and fp32 accumulation (the tensor cores' bf16 path). */
static cublasStatus_t gemm_bf16(cuda_backend *b, cublasOperation_t opa, cublasOperation_t opb, int64_t M, int64_t N,
                                int64_t K, float alpha, const float *A, int64_t lda, int64_t stride_a, const float *B,
                                int64_t ldb, int64_t stride_b, float beta, float *C, int64_t ldc, int64_t stride_c,
                                int64_t batch)
{
    const bool ta = opa == CUBLAS_OP_T, tb = opb == CUBLAS_OP_T;
    const int64_t na = extent(ta ? K : M, ta ? M : K, lda, stride_a, batch);
    const int64_t nb = extent(tb ? N : K, tb ? K : N, ldb, stride_b, batch);
    __nv_bfloat16 *a16 = (__nv_bfloat16 *)scratch(b, (size_t)(na + nb + 64) * sizeof(__nv_bfloat16));
    if (!a16) return CUBLAS_STATUS_ALLOC_FAILED;
    __nv_bfloat16 *b16 = a16 + ((na + 63) / 64) * 64;
    k_to_bf16<<<grid_for(b, na, BLOCK), BLOCK, 0, b->stream>>>(na, A, a16);
    k_to_bf16<<<grid_for(b, nb, BLOCK), BLOCK, 0, b->stream>>>(nb, B, b16);
    note(b, "sgemm (bf16 rounding)");
    return b->blas.gemm_ex_batched(b->handle, opb, opa, N, M, K, &alpha, b16, CUDA_R_16BF, ldb, stride_b, a16,
                                   CUDA_R_16BF, lda, stride_a, &beta, C, CUDA_R_32F, ldc, stride_c, batch,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

static void cuda_sgemm(void *self, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                       const float *A, int64_t lda, int64_t stride_a, const float *B, int64_t ldb, int64_t stride_b,
                       float beta, float *C, int64_t ldc, int64_t stride_c, int64_t batch)
{
    cuda_backend *b = (cuda_backend *)self;
    if (M <= 0 || N <= 0 || batch <= 0) return;
    use_device(b);
    if (K <= 0) {
        k_scale_c<<<grid_for(b, M * N * batch, BLOCK), BLOCK, 0, b->stream>>>(M, N, beta, C, ldc, stride_c, batch);
        note(b, "sgemm (K = 0)");
        return;
    }
    /* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: a row-major matrix
     * read column-major is its transpose, so pass B first, A second, and swap M and N. */
    const cublasOperation_t opa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, opb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasStatus_t st;
    if (b->bf16) {
        st = gemm_bf16(b, opa, opb, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc, stride_c, batch);
    } else if (batch == 1)
        st = b->blas.sgemm(b->handle, opb, opa, N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc);
    else
        st = b->blas.sgemm_batched(b->handle, opb, opa, N, M, K, &alpha, B, ldb, stride_b, A, lda, stride_a, &beta, C,
                                   ldc, stride_c, batch);
    if (st != CUBLAS_STATUS_SUCCESS) {
        char detail[320];
        snprintf(detail, sizeof detail, "cuBLAS status %d (M=%lld N=%lld K=%lld batch=%lld lda=%lld ldb=%lld ldc=%lld)",
                 (int)st, (long long)M, (long long)N, (long long)K, (long long)batch, (long long)lda, (long long)ldb,
                 (long long)ldc);
        record_failure(b, st == CUBLAS_STATUS_ALLOC_FAILED ? TEMA_ENOMEM : TEMA_EINTERNAL, "sgemm", detail);
    }
    note(b, "sgemm");
}

#define LAUNCH_1D(b, n, kernel, ...)                                                                        \
    do {                                                                                                    \
        if ((n) > 0) {                                                                                      \
            use_device(b);                                                                                  \
            kernel<<<grid_for(b, (n), BLOCK), BLOCK, 0, (b)->stream>>>(__VA_ARGS__);                        \
            note(b, #kernel);                                                                               \
        }                                                                                                   \
    } while (0)

#define LAUNCH_ROWS(b, rows, dim, kernel, ...)                                                              \
    do {                                                                                                    \
        if ((rows) > 0) {                                                                                   \
            use_device(b);                                                                                  \
            kernel<<<row_grid(rows), row_threads(dim), 0, (b)->stream>>>(__VA_ARGS__);                     \
            note(b, #kernel);                                                                               \
        }                                                                                                   \
    } while (0)

static void cuda_axpy(void *self, int64_t n, float alpha, const float *src, float *dst)
{
    cuda_backend *b = (cuda_backend *)self;
    LAUNCH_1D(b, n, k_axpy, n, alpha, src, dst);
}

static void cuda_axpy_scalar(void *self, int64_t n, const float *dscalar, float scale, const float *w, float *dst)
{
    cuda_backend *b = (cuda_backend *)self;
    LAUNCH_1D(b, n, k_axpy_scalar, n, dscalar, scale, w, dst);
}

static void cuda_dot(void *self, int64_t n, const float *a, const float *bv, float scale, float *out)
{
    cuda_backend *b = (cuda_backend *)self;
    use_device(b);
    if (n <= 0) {
        note_api(b, cudaMemsetAsync(out, 0, sizeof(float), b->stream), "dot (n = 0)");
        return;
    }
    int64_t nb = (n + 4 * BLOCK - 1) / (4 * BLOCK);
    if (nb > 1024) nb = 1024;
    double *part = (double *)scratch(b, sizeof(double) * (size_t)nb);
    if (!part) return;
    k_dot_partial<<<(unsigned)nb, BLOCK, 0, b->stream>>>(n, a, bv, part);
    note(b, "dot");
    k_dot_finish<<<1, 1024, 0, b->stream>>>((int)nb, part, scale, out);
    note(b, "dot");
}

/* ------------------------------------------------------------------ elementwise */

static void cuda_unary(void *self, tema_unary_op op, int64_t n, float alpha, const float *x, float *out)
{
    cuda_backend *b = (cuda_backend *)self;
    LAUNCH_1D(b, n, k_unary, (int)op, n, alpha, x, out);
}

static void cuda_unary_bwd(void *self, tema_unary_op op, int64_t n, float alpha, const float *x, const float *out,
                           const float *dout, float *dx)
{
    cuda_backend *b = (cuda_backend *)self;
    LAUNCH_1D(b, n, k_unary_bwd, (int)op, n, alpha, x, out, dout, dx);
}

static void cuda_binary(void *self, tema_binary_op op, int64_t n, const float *a, const float *bv, int64_t bn,
                        float *out)
{
    cuda_backend *b = (cuda_backend *)self;
    if (bn <= 0) return;
    LAUNCH_1D(b, n, k_binary, (int)op, n, a, bv, bn, out);
}

static void cuda_binary_bwd(void *self, tema_binary_op op, int64_t n, const float *a, const float *bv, int64_t bn,
                            const float *dout, float *da, float *db)
{
    cuda_backend *b = (cuda_backend *)self;
    if (bn <= 0 || n <= 0) return;
    if (da) LAUNCH_1D(b, n, k_binary_bwd_da, (int)op, n, bv, bn, dout, da);
    if (db) {
        use_device(b);
        bias_terms f = {(int)op, bn, dout, a};
        column_sums(b, n / bn, bn, f, db, (float *)NULL, "binary_bwd (db)");
    }
}

static void cuda_dropout(void *self, int64_t n, float p, uint64_t seed, const float *x, float *out)
{
    cuda_backend *b = (cuda_backend *)self;
    const float keep_scale = 1.0f / (1.0f - p);
    LAUNCH_1D(b, n, k_dropout, n, p, keep_scale, seed, x, out);
}

static void cuda_dropout_bwd(void *self, int64_t n, float p, uint64_t seed, const float *dout, float *dx)
{
    cuda_backend *b = (cuda_backend *)self;
    const float keep_scale = 1.0f / (1.0f - p);
    LAUNCH_1D(b, n, k_dropout_bwd, n, p, keep_scale, seed, dout, dx);
}

static void cuda_logaddexp(void *self, int64_t n, const float *a, float la, const float *bv, float lb, float *out)
{
    cuda_backend *b = (cuda_backend *)self;
    LAUNCH_1D(b, n, k_logaddexp, n, a, la, bv, lb, out);
}

static void cuda_logaddexp_bwd(void *self, int64_t n, const float *x, float lx, const float *out, const float *dout,
                               float *dx)
{
    cuda_backend *b = (cuda_backend *)self;
    LAUNCH_1D(b, n, k_logaddexp_bwd, n, x, lx, out, dout, dx);
}

/* ------------------------------------------------------------------ row ops */

static void cuda_layernorm(void *self, int64_t rows, int64_t dim, float eps, const float *x, const float *gamma,
                           const float *beta, float *out, float *mean, float *rstd)
{
    cuda_backend *b = (cuda_backend *)self;
    if (dim <= 0) return;
    LAUNCH_ROWS(b, rows, dim, k_layernorm, rows, dim, eps, x, gamma, beta, out, mean, rstd);
}

static void cuda_layernorm_bwd(void *self, int64_t rows, int64_t dim, const float *x, const float *gamma,
                               const float *mean, const float *rstd, const float *dout, float *dx, float *dgamma,
                               float *dbeta)
{
    cuda_backend *b = (cuda_backend *)self;
    if (dim <= 0) return;
    if (dx) LAUNCH_ROWS(b, rows, dim, k_layernorm_bwd_dx, rows, dim, x, gamma, mean, rstd, dout, dx);
    if (dgamma || dbeta) {
        use_device(b);
        layernorm_terms f = {dim, x, dout, mean, rstd};
        column_sums(b, rows, dim, f, dgamma, dbeta, "layernorm_bwd (dgamma/dbeta)");
    }
}

static void cuda_softmax(void *self, int64_t rows, int64_t dim, const uint8_t *mask, bool causal, const float *x,
                         float *out)
{
    cuda_backend *b = (cuda_backend *)self;
    if (dim <= 0) return;
    LAUNCH_ROWS(b, rows, dim, k_softmax, rows, dim, mask, causal, x, out);
}

static void cuda_softmax_bwd(void *self, int64_t rows, int64_t dim, const float *out, const float *dout, float *dx)
{
    cuda_backend *b = (cuda_backend *)self;
    if (dim <= 0) return;
    LAUNCH_ROWS(b, rows, dim, k_softmax_bwd, rows, dim, out, dout, dx);
}

static void cuda_l2norm(void *self, int64_t rows, int64_t dim, float eps, const float *x, float *out, float *norm)
{
    cuda_backend *b = (cuda_backend *)self;
    LAUNCH_ROWS(b, rows, dim, k_l2norm, rows, dim, eps, x, out, norm);
}

static void cuda_l2norm_bwd(void *self, int64_t rows, int64_t dim, float eps, const float *out, const float *norm,
                            const float *dout, float *dx)
{
    cuda_backend *b = (cuda_backend *)self;
    if (dim <= 0) return;
    LAUNCH_ROWS(b, rows, dim, k_l2norm_bwd, rows, dim, eps, out, norm, dout, dx);
}

static void cuda_logsumexp(void *self, int64_t rows, int64_t dim, const float *x, float *out)
{
    cuda_backend *b = (cuda_backend *)self;
    LAUNCH_ROWS(b, rows, dim, k_logsumexp, rows, dim, x, out);
}

static void cuda_logsumexp_bwd(void *self, int64_t rows, int64_t dim, const float *x, const float *out,
                               const float *dout, float *dx)
{
    cuda_backend *b = (cuda_backend *)self;
    LAUNCH_1D(b, rows * dim, k_logsumexp_bwd, rows, dim, x, out, dout, dx);
}

static void cuda_xent(void *self, int64_t rows, int64_t dim, const float *x, const int32_t *t, float *loss, float *lse)
{
    cuda_backend *b = (cuda_backend *)self;
    LAUNCH_ROWS(b, rows, dim, k_xent, rows, dim, x, t, loss, lse);
}

static void cuda_xent_bwd(void *self, int64_t rows, int64_t dim, const float *x, const int32_t *t, const float *lse,
                          const float *dloss, float scale, float *dx)
{
    cuda_backend *b = (cuda_backend *)self;
    LAUNCH_1D(b, rows * dim, k_xent_bwd, rows, dim, x, t, lse, dloss, scale, dx);
}

/* ------------------------------------------------------------------ gathers, copies, layouts */

static void cuda_gather(void *self, int64_t n, int64_t dim, const int32_t *ids, const float *table, float *out)
{
    cuda_backend *b = (cuda_backend *)self;
    LAUNCH_1D(b, n * dim, k_gather, n, dim, ids, table, out);
}

static void cuda_scatter_add(void *self, int64_t n, int64_t dim, const int32_t *ids, const float *dout, float *dtable)
{
    cuda_backend *b = (cuda_backend *)self;
    LAUNCH_1D(b, n * dim, k_scatter_add, n, dim, ids, dout, dtable);
}

static void cuda_copy2d(void *self, int64_t rows, int64_t cols, const float *src, int64_t lds, float *dst,
                        int64_t ldd, bool accumulate)
{
    cuda_backend *b = (cuda_backend *)self;
    LAUNCH_1D(b, rows * cols, k_copy2d, rows, cols, src, lds, dst, ldd, accumulate);
}

static void cuda_permute0213(void *self, int64_t B, int64_t L, int64_t H, int64_t D, const float *x, float *out,
                             bool accumulate)
{
    cuda_backend *b = (cuda_backend *)self;
    LAUNCH_1D(b, B * L * H * D, k_permute0213, B, L, H, D, x, out, accumulate);
}

static void cuda_rowdot(void *self, int64_t rows, int64_t dim, float scale, const float *h, const float *items,
                        const int32_t *t, float *out)
{
    cuda_backend *b = (cuda_backend *)self;
    LAUNCH_ROWS(b, rows, dim, k_rowdot, rows, dim, scale, h, items, t, out);
}

static void cuda_rowdot_bwd(void *self, int64_t rows, int64_t dim, float scale, const float *h, const float *items,
                            const int32_t *t, const float *dout, float *dh, float *ditems)
{
    cuda_backend *b = (cuda_backend *)self;
    if (!dh && !ditems) return;
    LAUNCH_1D(b, rows * dim, k_rowdot_bwd, rows, dim, scale, h, items, t, dout, dh, ditems);
}

/* ------------------------------------------------------------------ chunked log-sum-exp */

static void cuda_lse_init(void *self, int64_t rows, float *m, float *s)
{
    cuda_backend *b = (cuda_backend *)self;
    LAUNCH_1D(b, rows, k_lse_init, rows, m, s);
}

static void cuda_lse_update(void *self, int64_t rows, int64_t cols, int64_t c0, const float *logits, int64_t ld,
                            const int32_t *lo, const int32_t *hi, float *m, float *s)
{
    cuda_backend *b = (cuda_backend *)self;
    if (cols <= 0) return;
    LAUNCH_ROWS(b, rows, cols, k_lse_update, rows, cols, c0, logits, ld, lo, hi, m, s);
}

static void cuda_lse_finish(void *self, int64_t rows, const float *m, const float *s, float *out)
{
    cuda_backend *b = (cuda_backend *)self;
    LAUNCH_1D(b, rows, k_lse_finish, rows, m, s, out);
}

static void cuda_lse_grad(void *self, int64_t rows, int64_t cols, int64_t c0, float *logits, int64_t ld,
                          const int32_t *lo, const int32_t *hi, const float *lse, const float *dout, float scale)
{
    cuda_backend *b = (cuda_backend *)self;
    LAUNCH_1D(b, rows * cols, k_lse_grad, rows, cols, c0, logits, ld, lo, hi, lse, dout, scale);
}

static void cuda_adam(void *self, int64_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                      float bc1, float bc2, float *p, const float *g, float *m, float *v)
{
    cuda_backend *b = (cuda_backend *)self;
    LAUNCH_1D(b, n, k_adam, n, lr, beta1, beta2, eps, weight_decay, bc1, bc2, p, g, m, v);
}

static void cuda_adam_rows(void *self, int64_t n_rows, int64_t dim, const int32_t *rows, float lr, float beta1,
                           float beta2, float eps, float weight_decay, float bc1, float bc2, float *p, const float *g,
                           float *m, float *v)
{
    cuda_backend *b = (cuda_backend *)self;
    if (dim <= 0) return;
    LAUNCH_1D(b, n_rows * dim, k_adam_rows, n_rows, dim, rows, lr, beta1, beta2, eps, weight_decay, bc1, bc2, p, g, m,
              v);
}

static void cuda_zero_rows(void *self, int64_t n_rows, int64_t dim, const int32_t *rows, float *x)
{
    cuda_backend *b = (cuda_backend *)self;
    if (dim <= 0) return;
    LAUNCH_1D(b, n_rows * dim, k_zero_rows, n_rows, dim, rows, x);
}

static void cuda_spmm(void *self, int64_t rows, int64_t dim, const int64_t *row_ptr, const int32_t *col_idx,
                      const float *values, const float *x, float *out, bool accumulate)
{
    cuda_backend *b = (cuda_backend *)self;
    if (dim <= 0) return;
    LAUNCH_1D(b, rows * 32, k_spmm, rows, dim, row_ptr, col_idx, values, x, out, accumulate);
}

static void cuda_attention_infer(void *self, int64_t B, int64_t T, int64_t heads, int64_t hd, float scale,
                                 const float *q, const float *k, const float *v, int64_t ld, const int32_t *len,
                                 float *out, int64_t ldo)
{
    cuda_backend *b = (cuda_backend *)self;
    LAUNCH_1D(b, B * heads * T, k_attention_infer, B, T, heads, hd, scale, q, k, v, ld, len, out, ldo);
}

static size_t cuda_memory_peak(void *self)
{
    cuda_backend *b = (cuda_backend *)self;
    use_device(b);
    track_memory(b); /* kernels' workspaces come and go between allocations */
    return b->peak_used;
}

/* ------------------------------------------------------------------ the tables */

static const tema_backend_ops cuda_ops = {
    .struct_size = sizeof(tema_backend_ops),
    .version = TEMA_BACKEND_OPS_VERSION,
    .init = cuda_init,
    .destroy = cuda_destroy,
    .sync = cuda_sync,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .memset0 = cuda_memset0,
    .to_device = cuda_to_device,
    .to_host = cuda_to_host,
    .copy = cuda_copy,
    .sgemm = cuda_sgemm,
    .axpy = cuda_axpy,
    .axpy_scalar = cuda_axpy_scalar,
    .dot = cuda_dot,
    .unary = cuda_unary,
    .unary_bwd = cuda_unary_bwd,
    .binary = cuda_binary,
    .binary_bwd = cuda_binary_bwd,
    .dropout = cuda_dropout,
    .dropout_bwd = cuda_dropout_bwd,
    .logaddexp = cuda_logaddexp,
    .logaddexp_bwd = cuda_logaddexp_bwd,
    .layernorm = cuda_layernorm,
    .layernorm_bwd = cuda_layernorm_bwd,
    .softmax = cuda_softmax,
    .softmax_bwd = cuda_softmax_bwd,
    .l2norm = cuda_l2norm,
    .l2norm_bwd = cuda_l2norm_bwd,
    .logsumexp = cuda_logsumexp,
    .logsumexp_bwd = cuda_logsumexp_bwd,
    .xent = cuda_xent,
    .xent_bwd = cuda_xent_bwd,
    .gather = cuda_gather,
    .scatter_add = cuda_scatter_add,
    .copy2d = cuda_copy2d,
    .permute0213 = cuda_permute0213,
    .rowdot = cuda_rowdot,
    .rowdot_bwd = cuda_rowdot_bwd,
    .lse_init = cuda_lse_init,
    .lse_update = cuda_lse_update,
    .lse_finish = cuda_lse_finish,
    .lse_grad = cuda_lse_grad,
    .adam = cuda_adam,
    .spmm = cuda_spmm,
    .memory_peak = cuda_memory_peak,
    .attention_infer = cuda_attention_infer,
    .adam_rows = cuda_adam_rows,
    .zero_rows = cuda_zero_rows,
};

static const tema_plugin cuda_plugin = {TEMA_PLUGIN_HEADER(TEMA_KIND_BACKEND, "cuda", "1.0.0",
                                                           "CUDA backend: cuBLAS sgemm and CUDA kernels (one GPU)",
                                                           cuda_options, cuda_ops)};

extern "C" {
TEMA_PLUGIN_DEFINE(cuda_plugin)
}
