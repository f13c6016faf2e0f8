/* plugins/backend/cpu/cpu_internal.h - what the cpu backend's files share (plugin-internal). */
#ifndef TEMA_CPU_INTERNAL_H
#define TEMA_CPU_INTERNAL_H

#include <stdint.h>

#include "tema/backend.h"

typedef struct bf16_gemm bf16_gemm;

/* The backend's state (the `self` of every op). */
typedef struct cpu_backend {
    int threads;     /* the one pool's size: OpenMP loops and the split products */
    bf16_gemm *bf16; /* precision: bf16, else NULL */
} cpu_backend;

/* Loops below this many elements stay on one thread: fork/join costs more than it saves. */
#define PAR_MIN 32768

/* expf() and tanhf() from libm do not vectorise, and the hot loops (lse_chunked over rows x
 * items, 90M elements per training step; GELU and dropout over every activation) use a
 * polynomial exp (Cephes style: 2^n times a degree-6 polynomial on [-ln2/2, ln2/2];
 * relative error ~2e-7, inputs below -87 give ~1e-38 instead of 0) in loops the compiler
 * vectorises, built for AVX-512 and AVX2 with a generic fallback picked at load time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define HOT __attribute__((target_clones("arch=x86-64-v4", "avx512f", "avx2", "default")))
#else
#define HOT
#endif

static inline float poly_exp(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float t = x * 1.44269504088896341f;
    float n = (t + 12582912.0f) - 12582912.0f; /* round to nearest without rintf */
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { float f; int32_t i; } u;
    u.i = (int32_t)((uint32_t)((int32_t)n + 127) << 23); /* unsigned: NaN's n must not be a negative shift */
    return p * u.f;
}

/* binary.c: the backend ops `binary` and `binary_bwd` (include/tema/backend.h) */
void cpu_binary(void *self, tema_binary_op op, int64_t n, const float *a, const float *b, int64_t bn, float *out);
void cpu_binary_bwd(void *self, tema_binary_op op, int64_t n, const float *a, const float *b, int64_t bn,
                    const float *dout, float *da, float *db);

/* attention.c: the backend op `attention_infer` (include/tema/backend.h) */
void cpu_attention_infer(void *self, int64_t B, int64_t T, int64_t heads, int64_t hd, float scale, const float *q,
                         const float *k, const float *v, int64_t ld, const int32_t *len, float *out, int64_t ldo);

/* adam.c: the backend ops `adam`, `adam_rows` and `zero_rows` */
void cpu_adam(void *self, int64_t n, float lr, float beta1, float beta2, float eps, float weight_decay, float bc1,
              float bc2, float *p, const float *g, float *m, float *v);
void cpu_adam_rows(void *self, int64_t n_rows, int64_t dim, const int32_t *rows, float lr, float beta1, float beta2,
                   float eps, float weight_decay, float bc1, float bc2, float *p, const float *g, float *m, float *v);
void cpu_zero_rows(void *self, int64_t n_rows, int64_t dim, const int32_t *rows, float *x);

#endif
