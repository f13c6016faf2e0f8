/* core/host.c - the service table every plugin receives. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "engine.h"
#include "text_features.h"
#include "host.h"
#include "losses.h"
#include "stop.h"

static tema_log_level log_threshold(void)
{
    static int level = -1;
    if (level < 0) {
        const char *e = getenv("TEMA_LOG");
        level = TEMA_LOG_INFO;
        if (e && !strcmp(e, "debug")) level = TEMA_LOG_DEBUG;
        else if (e && !strcmp(e, "warn")) level = TEMA_LOG_WARN;
        else if (e && !strcmp(e, "error")) level = TEMA_LOG_ERROR;
    }
    return (tema_log_level)level;
}

__attribute__((format(printf, 3, 4))) static void host_log(tema_log_level level, const char *who, const char *fmt, ...)
{
    if (level < log_threshold()) return;
    static const char *const names[] = {"debug", "info", "warning", "error"};
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "tema: %s%s%s: %s\n", who ? who : "", who ? ": " : "", names[level & 3], line);
}

static void *host_alloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0) bytes = 1;
    if (posix_memalign(&p, 64, (bytes + 63) & ~(size_t)63) != 0) return NULL;
    return p;
}

static void host_free(void *p) { free(p); }

static const tema_cfg *opt_node(const tema_cfg *c, const char *name, tema_cfg_type want)
{
    const tema_cfg *n = tema_cfg_get(c, name);
    return n && n->type == want ? n : NULL;
}

static tema_status cfg_int(const tema_cfg *c, const char *name, int64_t *out)
{
    const tema_cfg *n = opt_node(c, name, TEMA_CFG_SCALAR);
    if (!n) return TEMA_ENOTFOUND;
    char *end;
    long long v = strtoll(n->value, &end, 10);
    if (*end) return TEMA_EINVAL;
    *out = v;
    return TEMA_OK;
}

static tema_status cfg_float(const tema_cfg *c, const char *name, double *out)
{
    const tema_cfg *n = opt_node(c, name, TEMA_CFG_SCALAR);
    if (!n) return TEMA_ENOTFOUND;
    char *end;
    double v = strtod(n->value, &end);
    if (*end) return TEMA_EINVAL;
    *out = v;
    return TEMA_OK;
}

static tema_status cfg_bool(const tema_cfg *c, const char *name, bool *out)
{
    const tema_cfg *n = opt_node(c, name, TEMA_CFG_SCALAR);
    if (!n) return TEMA_ENOTFOUND;
    if (!strcmp(n->value, "true")) *out = true;
    else if (!strcmp(n->value, "false")) *out = false;
    else return TEMA_EINVAL;
    return TEMA_OK;
}

static tema_status cfg_str(const tema_cfg *c, const char *name, const char **out)
{
    const tema_cfg *n = opt_node(c, name, TEMA_CFG_SCALAR);
    if (!n) return TEMA_ENOTFOUND;
    *out = n->value;
    return TEMA_OK;
}

static tema_status cfg_floats(const tema_cfg *c, const char *name, double *out, size_t *n)
{
    const tema_cfg *l = opt_node(c, name, TEMA_CFG_LIST);
    if (!l) return TEMA_ENOTFOUND;
    if (out)
        for (size_t i = 0; i < l->n_items && i < *n; i++) {
            if (l->items[i]->type != TEMA_CFG_SCALAR) return TEMA_EINVAL;
            out[i] = strtod(l->items[i]->value, NULL);
        }
    *n = l->n_items;
    return TEMA_OK;
}

const tema_host *tema_host_get(void)
{
    static tema_host host;
    if (!host.struct_size) {
        host.abi_major = TEMA_ABI_MAJOR;
        host.abi_minor = TEMA_ABI_MINOR;
        host.log = host_log;
        host.alloc = host_alloc;
        host.free = host_free;
        host.cfg_int = cfg_int;
        host.cfg_float = cfg_float;
        host.cfg_bool = cfg_bool;
        host.cfg_str = cfg_str;
        host.cfg_floats = cfg_floats;
        host.nn = tema_nn();
        host.backend = tema_engine_backend;
        host.backend_self = tema_engine_backend_self;
        host.mixture_nll = tema_mixture_nll;
        host.text_features = tema_features_get;
        host.interrupted = tema_stop_pending;
        host.struct_size = sizeof host;
    }
    return &host;
}
