/* core/graph.c: not written yet. */
#include "engine.h"
const tema_nn_api *tema_nn(void) { return NULL; }
const tema_backend_ops *tema_engine_backend(void) { return NULL; }
void *tema_engine_backend_self(void) { return NULL; }
