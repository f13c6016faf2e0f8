/* core/host.c - the service table every plugin receives. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "engine.h"
#include "text_features.h"
#include "registry.h"
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

/* Group weights inside each sequence group (log w_k / W_g) and the group of each stream. */
int tema_stream_groups(const tema_stream *streams, int n, int *group, float *logw)
{
    double total[3] = {0, 0, 0};
    for (int k = 0; k < n; k++) total[streams[k].sequence % 3] += streams[k].weight;
    int mask = 0;
    for (int k = 0; k < n; k++) {
        int s = streams[k].sequence % 3;
        group[k] = s;
        logw[k] = (float)log(streams[k].weight / total[s]);
        mask |= 1 << s;
    }
    return mask;
}

static tema_status mixture_nll(tema_graph *g, tema_tensor *const *logp, const tema_stream *streams, int n,
                               const tema_targets *t, tema_tensor **loss, tema_err *err)
{
    const tema_nn_api *nn = tema_nn();
    if (n < 1 || n > TEMA_MAX_STREAMS)
        return tema_fail(err, TEMA_EINVAL, "mixture_nll: %d streams (expected 1..%d)", n, TEMA_MAX_STREAMS);
    const int64_t R = t->rows;
    for (int k = 0; k < n; k++) {
        if (!logp[k] || logp[k]->size != R)
            return tema_fail(err, TEMA_EINVAL, "mixture_nll: stream %d: log-probabilities must be [%lld]", k,
                             (long long)R);
        if (!(streams[k].weight > 0) || (unsigned)streams[k].sequence > 2u)
            return tema_fail(err, TEMA_EINVAL, "mixture_nll: stream %d has weight %g / sequence %d (need weight > 0, "
                                               "sequence 0..2)", k, (double)streams[k].weight, (int)streams[k].sequence);
    }
    int group[TEMA_MAX_STREAMS];
    float logw[TEMA_MAX_STREAMS];
    int mask = tema_stream_groups(streams, n, group, logw);
    /* targets older than ABI 1.1 carry no sequence weights: every group weighs 1 */
    const bool has_sw = t->struct_size >= offsetof(tema_targets, seq_weight) + sizeof t->seq_weight;
    double wsum = 0;
    for (int64_t r = 0; r < R; r++) wsum += t->weight ? t->weight[r] : 1.0;
    if (!(wsum > 0)) return tema_fail(err, TEMA_EINVAL, "mixture_nll: the row weights sum to %g", wsum);
    float *wg = malloc((size_t)(R > 0 ? R : 1) * sizeof *wg);
    if (!wg) return tema_fail(err, TEMA_ENOMEM, "mixture_nll: out of memory");
    tema_tensor *total = NULL;
    tema_status st = TEMA_OK;
    for (int s = 0; s < 3 && st == TEMA_OK; s++) {
        if (!(mask & (1 << s))) continue;
        tema_tensor *xs[TEMA_MAX_STREAMS];
        float lw[TEMA_MAX_STREAMS];
        int m = 0;
        for (int k = 0; k < n; k++)
            if (group[k] == s) {
                xs[m] = logp[k];
                lw[m++] = logw[k];
            }
        double gsum = 0;
        for (int64_t r = 0; r < R; r++) {
            int d = t->lo[r] == 0 ? 0 : 1;
            float sw = has_sw ? t->seq_weight[d][s] : 1.0f;
            wg[r] = (t->weight ? t->weight[r] : 1.0f) * sw;
            gsum += wg[r];
        }
        if (!(gsum > 0)) continue;
        tema_tensor *lp = xs[0];
        if (m > 1 || lw[0] != 0.0f) lp = nn->logaddexp_n(g, xs, lw, m);
        float *w = lp ? (float *)nn->ids(g, (const int32_t *)wg, R) : NULL;
        tema_tensor *term = w ? nn->weighted_mean(g, lp, w) : NULL;
        if (term) term = nn->scale(g, term, (float)(-gsum / wsum));
        if (term && total) term = nn->add(g, total, term);
        if (!term) st = tema_fail(err, TEMA_EINTERNAL, "mixture_nll: %s", nn->error(g));
        total = term;
    }
    free(wg);
    if (st != TEMA_OK) return st;
    if (!total)
        return tema_fail(err, TEMA_EINVAL, "mixture_nll: every sequence group has weight 0 for these targets; hint: "
                                           "check the attention plugin's sequence weights (lambdas)");
    *loss = total;
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
        host.mixture_nll = mixture_nll;
        host.text_features = tema_features_get;
        host.interrupted = tema_stop_pending;
        host.struct_size = sizeof host;
    }
    return &host;
}
