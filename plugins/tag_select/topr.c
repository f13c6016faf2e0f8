/* plugins/tag_select/topr.c - the R most relevant tags of each item (paper Table VI,
 * "Top-R only", R = 5).
 *
 * Only tags with score > 0 are candidates (0 means unrelated), so an item with fewer
 * related tags keeps fewer, and an item with none gets an empty selection. Ties at the
 * cut go to the lower tag id, so the result does not depend on anything but the scores. */
#include "../tag_plugin.h"


static const tema_option topr_options[] = {
    {"r", TEMA_OPT_INT, "5", 1, 100000, NULL, "tags kept per item: the R best with score > 0"},
};

static int64_t keep_r(const float *sorted, int64_t n_pos, const void *ctx)
{
    (void)sorted;
    int64_t r = *(const int64_t *)ctx;
    return n_pos < r ? n_pos : r;
}

static tema_status topr_select(const tema_host *host, const tema_cfg *opts, const tema_tag_scores *s, tema_tag_selection *out, tema_err *err)
{
    memset(out, 0, sizeof *out);
    tema_status st;
    int64_t r;
    st = plugin_opt_int(host, opts, "tag_select topr", "r", &r, err);
    if (st != TEMA_OK) return st;
    return tag_select_prefix(host, s, keep_r, &r, out, "tag_select topr", err);
}

static const tema_tag_select_ops topr_ops = {.select_with_host = topr_select};

static const tema_plugin topr_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_TAG_SELECT, "topr", "1.0.0", "the R best tags of each item (score > 0; ties: lower "
                       "tag id)", topr_options, topr_ops)};

TEMA_PLUGIN_DEFINE(topr_plugin)
