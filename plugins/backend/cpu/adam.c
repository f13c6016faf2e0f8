/* plugins/backend/cpu/adam.c - the optimizer's kernels: Adam over a whole buffer, and its
 * row-sparse forms (adam_rows, zero_rows) for tables a step touched only a few rows of. */
#include <math.h>
#include <string.h>

#include "cpu_internal.h"

static inline void adam_row(int64_t n, float lr, float beta1, float beta2, float eps, float weight_decay, float bc1,
                             float bc2, float *restrict p, const float *restrict g, float *restrict m,
                             float *restrict v)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] + weight_decay * p[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        p[i] -= lr * (m[i] / bc1) / (sqrtf(v[i] / bc2) + eps);
    }
}

void cpu_adam(void *self, int64_t n, float lr, float beta1, float beta2, float eps, float weight_decay, float bc1,
              float bc2, float *p, const float *g, float *m, float *v)
{
    (void)self;
#pragma omp parallel for simd if (n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] + weight_decay * p[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        p[i] -= lr * (m[i] / bc1) / (sqrtf(v[i] / bc2) + eps);
    }
}

/* The same arithmetic as cpu_adam, element for element, so a row updated here ends as it would
 * in the full sweep. */
void cpu_adam_rows(void *self, int64_t n_rows, int64_t dim, const int32_t *rows, float lr, float beta1, float beta2,
                   float eps, float weight_decay, float bc1, float bc2, float *p, const float *g, float *m, float *v)
{
    (void)self;
#pragma omp parallel for if (n_rows * dim > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n_rows; i++) {
        const int64_t o = (int64_t)rows[i] * dim;
        adam_row(dim, lr, beta1, beta2, eps, weight_decay, bc1, bc2, p + o, g + o, m + o, v + o);
    }
}

void cpu_zero_rows(void *self, int64_t n_rows, int64_t dim, const int32_t *rows, float *x)
{
    (void)self;
#pragma omp parallel for if (n_rows * dim > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n_rows; i++) memset(x + (int64_t)rows[i] * dim, 0, (size_t)dim * sizeof(float));
}
