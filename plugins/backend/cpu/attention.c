/* plugins/backend/cpu/attention.c - the fused inference attention kernel (attention_infer):
 * per (sequence, head), scores, masked softmax and the weighted sum of values in one pass
 * over data that stays in L1, no scores tensor. The threads split the (sequence, head)
 * pairs; each pair's work is a few dozen rows, which is why sgemm (packing, per-call
 * overhead) ran these products at a fifth of its speed. */
#include <math.h>
#include <string.h>

#include "cpu_internal.h"

/* Keys transposed ([hd][n rounded up to 16]) so that a query's scores are whole vectors
 * over keys; pairs whose transposed keys would not fit this many floats on the stack take
 * dot products instead (long sequences, where the loop over keys is long anyway). */
#define KT_MAX 16384

/* 16 floats: GCC lowers it to one AVX-512 register, two AVX2 or four SSE ones per clone;
 * aligned(4) makes loads and stores through it unaligned ones. */
typedef float v16 __attribute__((vector_size(64), aligned(4)));
typedef int32_t v16i __attribute__((vector_size(64)));
#define V16 16
/* The helpers below pass v16 by value but are always inlined into their clone, so the ABI
 * note GCC gives for the generic clone does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
#ifdef __clang__
#define SHUFFLE(x, ...) __builtin_shufflevector(x, x, __VA_ARGS__)
#else
#define SHUFFLE(x, ...) __builtin_shuffle(x, (v16i){__VA_ARGS__})
#endif

/* out[0..hd) = sum_{j < n} p[j] v_j (v rows of stride ld), accumulated in registers when
 * hd is a multiple of 16 (every BERT: hd 32, 64). */
HOT static void weighted_sum(int64_t n, int64_t hd, const float *p, const float *v, int64_t ld, float inv, float *out)
{
    int64_t d0 = 0;
    for (; d0 + V16 <= hd; d0 += V16) {
        v16 acc = {0};
        for (int64_t j = 0; j < n; j++) acc += p[j] * *(const v16 *)(v + j * ld + d0);
        *(v16 *)(out + d0) = acc * inv;
    }
    for (int64_t d = d0; d < hd; d++) {
        float acc = 0.0f;
        for (int64_t j = 0; j < n; j++) acc += p[j] * v[j * ld + d];
        out[d] = acc * inv;
    }
}

/* s[0..np) = scale q . k_j from keys transposed in kt [hd][np] (np a multiple of 16). */
HOT static void scores_transposed(int64_t np, int64_t hd, float scale, const float *q, const float *kt, float *s)
{
    for (int64_t j0 = 0; j0 < np; j0 += V16) {
        v16 acc = {0};
        for (int64_t d = 0; d < hd; d++) acc += q[d] * *(const v16 *)(kt + d * np + j0);
        *(v16 *)(s + j0) = acc * scale;
    }
}

static inline __attribute__((always_inline)) v16 vmax(v16 a, v16 b)
{
    const v16i gt = a > b;
    return (v16)((gt & (v16i)a) | (~gt & (v16i)b));
}

/* Horizontal max and sum as trees of shuffles: the scalar chains GCC made of them (16
 * dependent steps per query row) cost more than the rest of the softmax. */
static inline __attribute__((always_inline)) float hmax(v16 x)
{
    x = vmax(x, SHUFFLE(x, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
    x = vmax(x, SHUFFLE(x, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11));
    x = vmax(x, SHUFFLE(x, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13));
    x = vmax(x, SHUFFLE(x, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14));
    return x[0];
}

static inline __attribute__((always_inline)) float hsum(v16 x)
{
    x += SHUFFLE(x, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    x += SHUFFLE(x, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
    x += SHUFFLE(x, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    x += SHUFFLE(x, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
    return x[0];
}

/* Lanes j0 + l < n of x, others `fill`: the padding of a row is masked in registers (scalar
 * stores into it stalled the vector loads that followed: a failed store forwarding). */
static inline __attribute__((always_inline)) v16 first_n(v16 x, int64_t j0, int64_t n, v16 fill)
{
    const v16i iota = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    const v16i in = iota < (int32_t)(n - j0);
    return (v16)((in & (v16i)x) | (~in & (v16i)fill));
}

/* Softmax numerators of s[0..n) in place (s[n..np) hold junk afterwards, never read as a
 * weight); returns 1 / their sum. */
HOT static float softmax_numerators(int64_t n, int64_t np, float *s)
{
    const v16 zero = {0}, ninf = zero - INFINITY;
    v16 mv = ninf;
    for (int64_t j0 = 0; j0 < np; j0 += V16) mv = vmax(mv, first_n(*(const v16 *)(s + j0), j0, n, ninf));
    const float m = hmax(mv);
#pragma omp simd
    for (int64_t j = 0; j < np; j++) s[j] = poly_exp(s[j] - m);
    v16 sv = zero;
    for (int64_t j0 = 0; j0 < np; j0 += V16) sv += first_n(*(const v16 *)(s + j0), j0, n, zero);
    return 1.0f / hsum(sv);
}

/* One (sequence, head) with n >= 1 real rows: rows t < n of out. */
HOT static void attend(int64_t n, int64_t hd, float scale, const float *q, const float *k, const float *v, int64_t ld,
                   float *out, int64_t ldo)
{
    const int64_t np = (n + V16 - 1) / V16 * V16;
    const bool transposed = hd * np <= KT_MAX;
    float s[np], kt[transposed ? hd * np : 1];
    if (transposed)
        for (int64_t d = 0; d < hd; d++) {
            float *row = kt + d * np;
            for (int64_t j = 0; j < n; j++) row[j] = k[j * ld + d];
            for (int64_t j = n; j < np; j++) row[j] = 0.0f;
        }
    for (int64_t t = 0; t < n; t++) {
        const float *qt = q + t * ld;
        if (transposed) {
            scores_transposed(np, hd, scale, qt, kt, s);
        } else {
            for (int64_t j = 0; j < n; j++) {
                const float *kj = k + j * ld;
                float dot = 0.0f;
                for (int64_t d = 0; d < hd; d++) dot += qt[d] * kj[d];
                s[j] = scale * dot;
            }
            for (int64_t j = n; j < np; j++) s[j] = 0.0f; /* the padding is masked, but never garbage */
        }
        const float inv = softmax_numerators(n, np, s);
        weighted_sum(n, hd, s, v, ld, inv, out + t * ldo);
    }
}

void cpu_attention_infer(void *self, int64_t B, int64_t T, int64_t heads, int64_t hd, float scale, const float *q,
                         const float *k, const float *v, int64_t ld, const int32_t *len, float *out, int64_t ldo)
{
    const int threads = ((const cpu_backend *)self)->threads;
#pragma omp parallel for collapse(2) num_threads(threads) if (B * heads > 1 && B * heads * T * T * hd > PAR_MIN) \
    schedule(static)
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < heads; h++) {
            const int64_t n = len[b] < 0 ? 0 : len[b] > T ? T : len[b], r0 = b * T, c = h * hd;
            if (n > 0) attend(n, hd, scale, q + r0 * ld + c, k + r0 * ld + c, v + r0 * ld + c, ld, out + r0 * ldo + c, ldo);
            for (int64_t t = n; t < T; t++) memset(out + (r0 + t) * ldo + c, 0, (size_t)hd * sizeof(float));
        }
}
