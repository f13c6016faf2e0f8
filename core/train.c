/* core/train.c: not written yet. */
#include "train.h"
tema_status tema_run_experiment(const tema_cfg *resolved, tema_registry *reg, const tema_run_opts *opts, tema_err *err)
{
    (void)resolved; (void)reg; (void)opts;
    return tema_fail(err, TEMA_EUNSUPPORTED, "training is not implemented yet");
}
