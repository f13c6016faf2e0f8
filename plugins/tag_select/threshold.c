/* plugins/tag_select/threshold.c - every tag whose relevance reaches theta (paper
 * Table VI, "Threshold-theta only", theta = 70).
 *
 * The number of tags varies per item: none when no score reaches theta. A score of 0
 * means unrelated and is never selected, even with theta = 0. */
#include "../tag_plugin.h"


static const tema_option threshold_options[] = {
    {"theta", TEMA_OPT_FLOAT, "70", 0, 100, NULL, "keep every tag with score >= theta (scores are 1..100)"},
};

/* Candidates are sorted by score, so those reaching theta are a prefix. */
static int64_t keep_theta(const float *sorted, int64_t n_pos, const void *ctx)
{
    double theta = *(const double *)ctx;
    int64_t k = 0;
    while (k < n_pos && (double)sorted[k] >= theta) k++;
    return k;
}

static tema_status threshold_select(const tema_host *host, const tema_cfg *opts, const tema_tag_scores *s, tema_tag_selection *out,
                                    tema_err *err)
{
    memset(out, 0, sizeof *out);
    tema_status st;
    double theta;
    st = plugin_opt_float(host, opts, "tag_select threshold", "theta", &theta, err);
    if (st != TEMA_OK) return st;
    return tag_select_prefix(host, s, keep_theta, &theta, out, "tag_select threshold", err);
}

static const tema_tag_select_ops threshold_ops = {.select_with_host = threshold_select};

static const tema_plugin threshold_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_TAG_SELECT, "threshold", "1.0.0", "every tag with score >= theta (score > 0)",
                       threshold_options, threshold_ops)};

TEMA_PLUGIN_DEFINE(threshold_plugin)
