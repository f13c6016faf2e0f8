/* core/config.c: not written yet. */
#include "config.h"
tema_status tema_cfg_resolve(const char *path, const char *const *overrides, int n_overrides, tema_registry *reg,
                             FILE *diag, tema_cfg **resolved, tema_err *err)
{
    (void)path; (void)overrides; (void)n_overrides; (void)reg; (void)diag; (void)resolved;
    return tema_fail(err, TEMA_EUNSUPPORTED, "configuration loading is not implemented yet");
}
void tema_cfg_free(tema_cfg *c) { (void)c; }
char *tema_cfg_to_yaml(const tema_cfg *c) { (void)c; return NULL; }
const tema_cfg *tema_cfg_get(const tema_cfg *root, const char *path) { (void)root; (void)path; return NULL; }
