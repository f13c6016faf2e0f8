/* plugins/tag_select/hybrid.c - top-R, then further tags reaching theta, up to a maximum
 * (paper Table VI, "Top-R + Threshold-theta (Hybrid)", the paper's best: R = 5, theta = 70).
 *
 * The paper gives no value for the maximum; 10 (twice R) is tema's choice. The result is
 * the union of the top-R set and the tags with score >= theta, cut to `max` tags by score
 * (ties: lower tag id); `max` below `r` is a configuration error. */
#include "../tag_plugin.h"


static const tema_option hybrid_options[] = {
    {"r", TEMA_OPT_INT, "5", 1, 100000, NULL, "tags always kept per item: the R best with score > 0"},
    {"theta", TEMA_OPT_FLOAT, "70", 0, 100, NULL, "beyond the R best, also keep tags with score >= theta"},
    {"max", TEMA_OPT_INT, "10", 1, 100000, NULL, "at most this many tags per item in total (>= r)"},
};

typedef struct hybrid_params {
    int64_t r, max;
    double theta;
} hybrid_params;

static int64_t keep_hybrid(const float *sorted, int64_t n_pos, const void *ctx)
{
    const hybrid_params *p = ctx;
    int64_t k = n_pos < p->r ? n_pos : p->r;
    while (k < n_pos && (double)sorted[k] >= p->theta) k++;
    return k < p->max ? k : p->max;
}

static tema_status hybrid_select(const tema_host *host, const tema_cfg *opts, const tema_tag_scores *s, tema_tag_selection *out,
                                 tema_err *err)
{
    memset(out, 0, sizeof *out);
    tema_status st;
    hybrid_params p;
    if ((st = plugin_opt_int(host, opts, "tag_select hybrid", "r", &p.r, err)) != TEMA_OK ||
        (st = plugin_opt_float(host, opts, "tag_select hybrid", "theta", &p.theta, err)) !=
            TEMA_OK ||
        (st = plugin_opt_int(host, opts, "tag_select hybrid", "max", &p.max, err)) != TEMA_OK)
        return st;
    if (p.max < p.r)
        return tema_fail(err, TEMA_EINVAL, "tag_select hybrid: option 'max' (%lld) is less than 'r' (%lld); hint: "
                                           "max caps the total, so set max >= r",
                         (long long)p.max, (long long)p.r);
    return tag_select_prefix(host, s, keep_hybrid, &p, out, "tag_select hybrid", err);
}

static const tema_tag_select_ops hybrid_ops = {.select_with_host = hybrid_select};

static const tema_plugin hybrid_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_TAG_SELECT, "hybrid", "1.0.0", "the R best tags, then more with score >= theta, up "
                       "to max per item", hybrid_options, hybrid_ops)};

TEMA_PLUGIN_DEFINE(hybrid_plugin)
