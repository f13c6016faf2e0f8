/* plugins/plugin_opts.h - reading a plugin's options, for every plugin built here.
 *
 * The core validates an experiment against each plugin's option table and fills every
 * default before it creates the plugin, so the options a plugin receives are complete and
 * range-checked. A read that fails is therefore a bug (a name the table does not declare,
 * e.g. misspelt between table and code, or options that skipped validation) and is reported
 * as one: the default lives in the table only, never restated here as a fallback.
 * `who` names the plugin in messages ("encoder id"). */
#ifndef TEMA_PLUGINS_PLUGIN_OPTS_H
#define TEMA_PLUGINS_PLUGIN_OPTS_H

#include "tema/plugin.h"

static inline tema_status plugin_opt_status(tema_status st, const tema_cfg *opts, const char *who, const char *name,
                                            tema_err *err)
{
    if (st == TEMA_OK) return TEMA_OK;
    if (!opts)
        return tema_fail(err, TEMA_EINTERNAL, "%s: option '%s' asked for without options; a bug: the caller passed no "
                                              "validated options", who, name);
    return tema_fail(err, TEMA_EINTERNAL, "%s: option '%s' %s the validated options; a bug: the option table does not "
                                          "declare it (or not with this type), or the caller passed unvalidated options",
                     who, name, st == TEMA_ENOTFOUND ? "missing from" : "has the wrong type in");
}

static inline tema_status plugin_opt_int(const tema_host *host, const tema_cfg *opts, const char *who, const char *name,
                                         int64_t *out, tema_err *err)
{
    return plugin_opt_status(opts ? host->cfg_int(opts, name, out) : TEMA_EINVAL, opts, who, name, err);
}

static inline tema_status plugin_opt_float(const tema_host *host, const tema_cfg *opts, const char *who,
                                           const char *name, double *out, tema_err *err)
{
    return plugin_opt_status(opts ? host->cfg_float(opts, name, out) : TEMA_EINVAL, opts, who, name, err);
}

static inline tema_status plugin_opt_bool(const tema_host *host, const tema_cfg *opts, const char *who, const char *name,
                                          bool *out, tema_err *err)
{
    return plugin_opt_status(opts ? host->cfg_bool(opts, name, out) : TEMA_EINVAL, opts, who, name, err);
}

/* *out is never NULL on success (a string option holds at least ""). */
static inline tema_status plugin_opt_str(const tema_host *host, const tema_cfg *opts, const char *who, const char *name,
                                         const char **out, tema_err *err)
{
    tema_status st = opts ? host->cfg_str(opts, name, out) : TEMA_EINVAL;
    if (st == TEMA_OK && !*out) st = TEMA_EINVAL;
    return plugin_opt_status(st, opts, who, name, err);
}

#endif
