/* plugins/backend/cpu/binary.c - the cpu backend's broadcast add and multiply, forward and
 * backward (out of cpu.c, which they pushed past a thousand lines). */
#include <stdlib.h>

#include "cpu_internal.h"

void cpu_binary(void *self, tema_binary_op op, int64_t n, const float *a, const float *b, int64_t bn, float *out)
{
    (void)self;
    int64_t rows = n / bn;
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *ar = a + r * bn;
        float *o = out + r * bn;
        if (op == TEMA_BINARY_ADD)
            for (int64_t j = 0; j < bn; j++) o[j] = ar[j] + b[j];
        else
            for (int64_t j = 0; j < bn; j++) o[j] = ar[j] * b[j];
    }
}

static void binary_bwd_db(tema_binary_op op, int64_t rows, int64_t bn, const float *a, const float *dout, float *db);

void cpu_binary_bwd(void *self, tema_binary_op op, int64_t n, const float *a, const float *b, int64_t bn,
                    const float *dout, float *da, float *db)
{
    (void)self;
    int64_t rows = n / bn;
    if (da) {
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const float *g = dout + r * bn;
            float *d = da + r * bn;
            if (op == TEMA_BINARY_ADD)
                for (int64_t j = 0; j < bn; j++) d[j] += g[j];
            else
                for (int64_t j = 0; j < bn; j++) d[j] += g[j] * b[j];
        }
    }
    if (db) binary_bwd_db(op, rows, bn, a, dout, db);
}

#define DB_ROW_BLOCK 256

/* db[j] += sum_r dout[r, j] (* a[r, j]), for the broadcast operand. Rows go in fixed blocks of
 * DB_ROW_BLOCK, each summed row by row into a double vector (contiguous, so it vectorises; a
 * column at a time strode through memory), the blocks then added in order: the same sums
 * whatever the thread count. Wide rows (bn > 4096) keep the column loop, which is then cheap. */
static void binary_bwd_db(tema_binary_op op, int64_t rows, int64_t bn, const float *a, const float *dout, float *db)
{
    int64_t n_blocks = (rows + DB_ROW_BLOCK - 1) / DB_ROW_BLOCK;
    double *part = bn <= 4096 && n_blocks > 0 ? calloc((size_t)(n_blocks * bn), sizeof *part) : NULL;
    if (!part) {
#pragma omp parallel for if (rows * bn > PAR_MIN) schedule(static)
        for (int64_t j = 0; j < bn; j++) {
            double acc = 0.0;
            for (int64_t r = 0; r < rows; r++) acc += (double)dout[r * bn + j] * (op == TEMA_BINARY_ADD ? 1.0f : a[r * bn + j]);
            db[j] += (float)acc;
        }
        return;
    }
#pragma omp parallel for if (rows * bn > PAR_MIN) schedule(static)
    for (int64_t blk = 0; blk < n_blocks; blk++) {
        double *acc = part + blk * bn;
        int64_t r1 = (blk + 1) * DB_ROW_BLOCK < rows ? (blk + 1) * DB_ROW_BLOCK : rows;
        for (int64_t r = blk * DB_ROW_BLOCK; r < r1; r++) {
            const float *g = dout + r * bn, *ar = a + r * bn;
            if (op == TEMA_BINARY_ADD)
                for (int64_t j = 0; j < bn; j++) acc[j] += g[j];
            else
                for (int64_t j = 0; j < bn; j++) acc[j] += (double)g[j] * ar[j];
        }
    }
    for (int64_t j = 0; j < bn; j++) {
        double sum = 0.0;
        for (int64_t blk = 0; blk < n_blocks; blk++) sum += part[blk * bn + j];
        db[j] += (float)sum;
    }
    free(part);
}
