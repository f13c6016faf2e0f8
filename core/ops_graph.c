/* core/ops_graph.c - ops on item graphs: the constant sparse matrix (csr) and spmm,
 * its product with a dense tensor; the forward followed by its backward.
 *
 * A graph of a few million edges is the same every step, so it is validated, transposed
 * and uploaded ONCE (csr_new) rather than copied into the step's arena: the transpose
 * makes the backward (dx = A^T dout) the same row-parallel kernel as the forward, with one
 * writer per output row, so neither needs atomics and both are bitwise reproducible.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph_internal.h"
#include "nn_internal.h"

/* ---------------------------------------------------------------- csr */

/* row_ptr starts at 0 and never decreases; every column is in range; values are finite.
 * Rows and columns must fit int32: the rows of A become the column indices of A^T. */
static tema_status csr_check(const char *name, int64_t rows, int64_t cols, const int64_t *row_ptr,
                             const int32_t *col_idx, const float *values, tema_err *err)
{
    if (rows < 0 || cols < 0 || rows > INT32_MAX || cols > INT32_MAX)
        return tema_fail(err, TEMA_EINVAL, "csr '%s': shape [%lld, %lld] is negative or over 2^31-1", name,
                         (long long)rows, (long long)cols);
    if (!row_ptr) return tema_fail(err, TEMA_EINVAL, "csr '%s': row_ptr is NULL (want rows+1 offsets)", name);
    if (row_ptr[0] != 0)
        return tema_fail(err, TEMA_EINVAL, "csr '%s': row_ptr[0] is %lld, want 0", name, (long long)row_ptr[0]);
    for (int64_t r = 0; r < rows; r++)
        if (row_ptr[r + 1] < row_ptr[r])
            return tema_fail(err, TEMA_EINVAL, "csr '%s': row_ptr decreases at row %lld (%lld after %lld)", name,
                             (long long)r, (long long)row_ptr[r + 1], (long long)row_ptr[r]);
    const int64_t nnz = row_ptr[rows];
    if (nnz > 0 && !col_idx) return tema_fail(err, TEMA_EINVAL, "csr '%s': col_idx is NULL", name);
    for (int64_t k = 0; k < nnz; k++) {
        if (col_idx[k] < 0 || col_idx[k] >= cols)
            return tema_fail(err, TEMA_EINVAL, "csr '%s': col_idx[%lld] is %d, outside [0, %lld)", name, (long long)k,
                             col_idx[k], (long long)cols);
        if (values && !isfinite(values[k]))
            return tema_fail(err, TEMA_EINVAL, "csr '%s': values[%lld] is not finite", name, (long long)k);
    }
    return TEMA_OK;
}

/* A^T by a counting sort on the columns (next: scratch of cols+1); stable, so each row of
 * A^T lists A's rows in order. */
static void csr_transpose(int64_t rows, int64_t cols, const int64_t *row_ptr, const int32_t *col_idx,
                          const float *values, int64_t *t_row_ptr, int32_t *t_col_idx, float *t_values,
                          int64_t *next)
{
    memset(t_row_ptr, 0, sizeof(int64_t) * (size_t)(cols + 1));
    const int64_t nnz = row_ptr[rows];
    for (int64_t k = 0; k < nnz; k++) t_row_ptr[col_idx[k] + 1]++;
    for (int64_t c = 0; c < cols; c++) t_row_ptr[c + 1] += t_row_ptr[c];
    memcpy(next, t_row_ptr, sizeof(int64_t) * (size_t)(cols + 1));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = row_ptr[r]; k < row_ptr[r + 1]; k++) {
            int64_t at = next[col_idx[k]]++;
            t_col_idx[at] = (int32_t)r;
            t_values[at] = values ? values[k] : 1.0f;
        }
}

static size_t aligned(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

/* The host image of the block: A's row_ptr, col_idx, values, then A^T's, each 64-byte aligned. */
typedef struct csr_layout {
    size_t off[6], total;
} csr_layout;

static csr_layout layout_of(int64_t rows, int64_t cols, int64_t nnz)
{
    const size_t sizes[6] = {sizeof(int64_t) * (size_t)(rows + 1), sizeof(int32_t) * (size_t)nnz,
                             sizeof(float) * (size_t)nnz,          sizeof(int64_t) * (size_t)(cols + 1),
                             sizeof(int32_t) * (size_t)nnz,        sizeof(float) * (size_t)nnz};
    csr_layout l = {{0}, 0};
    for (int i = 0; i < 6; i++) {
        l.off[i] = l.total;
        l.total += aligned(sizes[i]);
    }
    return l;
}

tema_csr *csr_new(const char *name, int64_t rows, int64_t cols, const int64_t *row_ptr, const int32_t *col_idx,
                  const float *values, tema_err *err)
{
    name = name ? name : "(unnamed)";
    if (!g_be) return tema_fail(err, TEMA_EINVAL, "csr '%s': no compute backend selected", name), NULL;
    if (!TEMA_BACKEND_HAS(g_be, spmm))
        return tema_fail(err, TEMA_EABI, "csr '%s': the backend's kernel table (version %u) has no spmm kernel "
                         "(version 3); hint: rebuild the backend plugin against this tema", name, g_be->version), NULL;
    if (csr_check(name, rows, cols, row_ptr, col_idx, values, err) != TEMA_OK) return NULL;
    const int64_t nnz = row_ptr[rows];
    const csr_layout l = layout_of(rows, cols, nnz);
    char *host = malloc(l.total);
    int64_t *next = malloc(sizeof(int64_t) * (size_t)(cols + 1));
    tema_csr *a = calloc(1, sizeof *a);
    char *nm = strdup(name);
    void *block = host && next && a && nm ? g_be->alloc(g_bs, l.total) : NULL;
    if (!block) {
        free(host), free(next), free(a), free(nm);
        return tema_fail(err, TEMA_ENOMEM, "csr '%s': out of memory for %lld edges (%zu bytes)", name,
                         (long long)nnz, l.total), NULL;
    }
    memcpy(host + l.off[0], row_ptr, sizeof(int64_t) * (size_t)(rows + 1));
    if (nnz) memcpy(host + l.off[1], col_idx, sizeof(int32_t) * (size_t)nnz);
    float *v = (float *)(host + l.off[2]);
    for (int64_t k = 0; k < nnz; k++) v[k] = values ? values[k] : 1.0f;
    csr_transpose(rows, cols, row_ptr, col_idx, values, (int64_t *)(host + l.off[3]), (int32_t *)(host + l.off[4]),
                  (float *)(host + l.off[5]), next);
    free(next);
    g_be->to_device(g_bs, block, host, l.total); /* host is free to go once to_device returns */
    free(host);
    char *d = block;
    *a = (tema_csr){.rows = rows, .cols = cols, .nnz = nnz,
                    .row_ptr = (int64_t *)(d + l.off[0]), .col_idx = (int32_t *)(d + l.off[1]),
                    .values = (float *)(d + l.off[2]), .t_row_ptr = (int64_t *)(d + l.off[3]),
                    .t_col_idx = (int32_t *)(d + l.off[4]), .t_values = (float *)(d + l.off[5]),
                    .block = block, .be = g_be, .bs = g_bs, .name = nm};
    return a;
}

void csr_free(tema_csr *a)
{
    if (!a) return;
    if (a->be) a->be->free(a->bs, a->block);
    free(a->name);
    free(a);
}

/* ---------------------------------------------------------------- spmm */

tema_tensor *spmm_forward(tema_graph *g, const tema_csr *a, tema_tensor *x)
{
    if (!check_input(g, x, "spmm")) return NULL;
    if (!a) return graph_fail(g, "spmm: the sparse matrix is NULL; hint: its csr() call failed and said why");
    if (a->be != g_be || a->bs != g_bs)
        return graph_fail(g, "spmm: sparse matrix '%s' lives on another backend than the active one; hint: make it "
                          "with csr() after the backend is selected", a->name);
    if (x->shape[0] != a->cols) {
        char s[96];
        return graph_fail(g, "spmm: x %s does not match the sparse matrix '%s' [%lld, %lld]: want x [%lld, ...]",
                          shape_str(x, s, sizeof s), a->name, (long long)a->rows, (long long)a->cols,
                          (long long)a->cols);
    }
    int64_t shape[TEMA_MAX_DIMS], dim = 1;
    memcpy(shape, x->shape, sizeof shape);
    shape[0] = a->rows;
    for (int i = 1; i < x->ndim; i++) dim *= x->shape[i];
    tema_tensor *out = new_tensor(g, x->ndim, shape);
    if (!out) return NULL;
    graph_spmm(g, a->rows, dim, a->nnz, a->row_ptr, a->col_idx, a->values, x->data, out->data, false);
    if (needs_grad(x)) {
        node *n = tape_push(g, OP_SPMM, out);
        if (n) n->spmm = (struct op_spmm){.a = a, .x = x, .dim = dim};
    }
    return out;
}

/* dx += A^T dout: the forward kernel over the transpose, accumulating. */
void spmm_backward(tema_graph *g, const node *n)
{
    const struct op_spmm *op = &n->spmm;
    const tema_csr *a = op->a;
    float *dx = grad_of(g, op->x);
    if (dx) graph_spmm(g, a->cols, op->dim, a->nnz, a->t_row_ptr, a->t_col_idx, a->t_values, n->out->grad, dx, true);
}
