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

#endif
