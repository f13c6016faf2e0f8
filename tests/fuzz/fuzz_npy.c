/* tests/fuzz/fuzz_npy.c - the .npy reader (include/tema/npy.h), which the image and text
 * encoders use for item feature files. Input: the file. */
#include <stdlib.h>

#include "fuzz_util.h"
#include "tema/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_write("x.npy", data, size);
    tema_npy_matrix m;
    tema_err err = {0};
    if (tema_npy_read(path, -1, NULL, &m, &err) == TEMA_OK) {
        /* touch every value: a wrong size shows as an out-of-bounds read */
        volatile float sum = 0;
        for (int64_t i = 0; i < m.rows * m.cols; i++) sum += m.data[i];
        tema_npy_free(&m);
    }
    return 0;
}
