/* tests/fuzz/fuzz_safetensors.c - the safetensors reader of the bert text_features plugin
 * (plugins/text_features/bert/safetensors.c): st_open validates the header, then every
 * tensor is read as float32 (the conversions of F16, BF16, F64 and unaligned F32 included).
 * Input: the file. */
#include <stdlib.h>

#include "fuzz_util.h"
#include "text_features/bert/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_file f;
    tema_err err = {0};
    if (st_open(fz_write("model.safetensors", data, size), &f, &err) != TEMA_OK) return 0;
    for (int i = 0; i < f.n_tensors; i++) {
        const st_tensor *t = &f.tensors[i];
        if (st_find(&f, t->name) == NULL) abort(); /* every listed tensor can be found by name */
        const float *x = NULL;
        float *owned = NULL;
        if (st_get_f32(&f, t->name, -1, NULL, &x, &owned, &err) == TEMA_OK) {
            /* the element count from the byte range (a shape product may overflow where a dimension is 0) */
            const size_t n = (t->end - t->begin) / st_dtype_size(t->dtype);
            volatile float sum = 0;
            for (size_t k = 0; k < n; k++) sum += x[k];
            free(owned);
        }
    }
    st_close(&f);
    return 0;
}
