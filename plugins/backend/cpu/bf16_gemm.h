/* plugins/backend/cpu/bf16_gemm.h - matrix products with bf16 inputs and fp32 output and
 * accumulation, through oneDNN's matmul (AMX or AVX512-BF16 kernels), for the cpu backend's
 * `precision: bf16`. oneDNN (Debian: libdnnl2) is opened with dlopen() when bf16 is asked
 * for, so the backend loads and runs fp32 without it.
 *
 * Ownership: bf16_gemm_open returns a handle the caller frees with bf16_gemm_close; it owns
 * its oneDNN objects and its bf16 staging buffers. Not thread-safe: one caller at a time
 * (cpu_sgemm is called from the host thread; oneDNN splits each product over OpenMP's
 * threads itself). */
#ifndef TEMA_CPU_BF16_GEMM_H
#define TEMA_CPU_BF16_GEMM_H

#include <stdbool.h>
#include <stdint.h>

#include "tema/plugin.h"

typedef struct bf16_gemm bf16_gemm;

/* Loads oneDNN and checks that this CPU has bf16 products (AVX512-BF16 or AMX-BF16);
 * `impl` (may be NULL) receives the kernel family oneDNN picked for a probe product. */
tema_status bf16_gemm_open(bf16_gemm **out, char *impl, size_t impl_size, tema_err *err);

/* C[M,N] = alpha op(A) op(B) + beta C, row-major as cblas_sgemm, op(A) and op(B) rounded to
 * bf16 (round to nearest even) first. Returns false (C untouched) when oneDNN refuses the
 * shape; the caller then runs it in fp32. */
bool bf16_gemm_run(bf16_gemm *g, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

void bf16_gemm_close(bf16_gemm *g);

#endif
