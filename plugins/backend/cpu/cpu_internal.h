/* plugins/backend/cpu/cpu_internal.h - what the cpu backend's files share (plugin-internal). */
#ifndef TEMA_CPU_INTERNAL_H
#define TEMA_CPU_INTERNAL_H

#include <stdint.h>

#include "tema/backend.h"

/* Loops below this many elements stay on one thread: fork/join costs more than it saves. */
#define PAR_MIN 32768

/* binary.c: the backend ops `binary` and `binary_bwd` (include/tema/backend.h) */
void cpu_binary(void *self, tema_binary_op op, int64_t n, const float *a, const float *b, int64_t bn, float *out);
void cpu_binary_bwd(void *self, tema_binary_op op, int64_t n, const float *a, const float *b, int64_t bn,
                    const float *dout, float *da, float *db);

#endif
