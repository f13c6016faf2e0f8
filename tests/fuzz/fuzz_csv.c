/* tests/fuzz/fuzz_csv.c - the CSV reader of `tema plot` (core/plot.h, tema_csv_read), which
 * reads files a user's scripts wrote. Input: the file. */
#include <string.h>

#include "fuzz_util.h"
#include "plot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_write("x.csv", data, size);
    tema_csv t;
    tema_err err = {0};
    if (tema_csv_read(path, &t, &err) == TEMA_OK) {
        /* touch every cell: a field past its row or the text shows as an out-of-bounds read */
        volatile size_t total = 0;
        for (int r = 0; r < t.rows; r++)
            for (int c = 0; c < t.cols; c++) total += strlen(tema_csv_cell(&t, r, c));
    }
    tema_csv_free(&t);
    return 0;
}
