/* core/synth.c: not written yet. */
#include "dataset.h"
void tema_synth_defaults(tema_synth_opts *o) { (void)o; }
tema_status tema_synth_write(const tema_synth_opts *o, const char *dir, tema_err *err)
{
    (void)o; (void)dir;
    return tema_fail(err, TEMA_EUNSUPPORTED, "synthetic data is not implemented yet");
}
