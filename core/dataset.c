/* core/dataset.c: not written yet. */
#include "dataset.h"
tema_status tema_dataset_print_stats(const char *path, FILE *out, tema_err *err)
{
    (void)path; (void)out;
    return tema_fail(err, TEMA_EUNSUPPORTED, "dataset reading is not implemented yet");
}
