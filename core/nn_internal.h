/* core/nn_internal.h - glue between the parameter store (core/params.c) and the
 * op table of the autograd (core/graph.c); core-internal. */
#ifndef TEMA_CORE_NN_INTERNAL_H
#define TEMA_CORE_NN_INTERNAL_H

#include "engine.h"

/* The implementations behind tema_nn_api.param / .constant (see tema/nn.h). */
tema_tensor *tema_params_declare(tema_params *p, const char *name, int ndim, const int64_t *shape, tema_init init,
                                 float scale, uint32_t flags);
tema_tensor *tema_params_constant(tema_params *p, const char *name, int ndim, const int64_t *shape,
                                  const float *host_data);
/* tema_nn_api.csr: a sparse matrix owned by the store (core/params.c keeps the list). */
tema_csr *tema_params_csr(tema_params *p, const char *name, int64_t rows, int64_t cols, const int64_t *row_ptr,
                          const int32_t *col_idx, const float *values, tema_err *err);

/* The autograd reports which rows of a parameter's gradient a step writes (core/params.c keeps
 * them for zero_grad and lazy Adam): ids [n] host, -1 skipped, for an op that scatters rows of
 * t's gradient; _all for any other write. Not parameters: ignored. */
void param_touch_rows(tema_tensor *t, const int32_t *ids, int64_t n);
void param_touch_all(tema_tensor *t);

/* The sparse matrix itself (core/ops_graph.c): validated, transposed and uploaded to the
 * active backend by csr_new; csr_free releases it on the backend that holds it. */
tema_csr *csr_new(const char *name, int64_t rows, int64_t cols, const int64_t *row_ptr, const int32_t *col_idx,
                  const float *values, tema_err *err);
void csr_free(tema_csr *a);

#endif
