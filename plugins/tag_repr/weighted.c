/* plugins/tag_repr/weighted.c - relevance-weighted multi-hot (paper Eq. 3 and Table V,
 * "Weighted multi-hot (ours)"): an item's selected tags weigh w_i = s_i / sum_j s_j, so
 * the tag embedding is a relevance-weighted average.
 *
 * The paper says the 1..100 scores "are normalized"; dividing by their sum is the reading
 * that makes Eq. 3 a weighted average (weights in [0,1] summing to 1). An item whose
 * selected tags all score 0 carries no relevance information and gets equal weights. */
#include <math.h>

#include "../tag_plugin.h"

static tema_status weighted_weights(const tema_host *host, const tema_cfg *opts, tema_tag_selection *sel, tema_err *err)
{
    (void)host;
    (void)opts;
    tema_status st = tag_check_selection(sel, "tag_repr weighted", err);
    if (st != TEMA_OK) return st;
    for (int64_t i = 0; i < sel->n_items; i++) {
        int64_t a = sel->off[i], b = sel->off[i + 1];
        double sum = 0;
        for (int64_t k = a; k < b; k++) {
            float v = sel->score[k];
            if (!(v >= 0) || !(v < INFINITY))
                return tema_fail(err, TEMA_EINVAL, "tag_repr weighted: item %lld, tag %d has score %g; scores must "
                                                   "be finite and >= 0", (long long)i, (int)sel->tag[k], (double)v);
            sum += v;
        }
        for (int64_t k = a; k < b; k++)
            sel->score[k] = sum > 0 ? (float)((double)sel->score[k] / sum) : (float)(1.0 / (double)(b - a));
    }
    return TEMA_OK;
}

static const tema_tag_repr_ops weighted_ops = {.weights_with_host = weighted_weights};

/* No options, so no option table (TEMA_PLUGIN_HEADER needs a non-empty one). */
static const tema_plugin weighted_plugin = {
    .abi_major = TEMA_ABI_MAJOR, .abi_minor = TEMA_ABI_MINOR, .struct_size = sizeof(tema_plugin),
    .kind = TEMA_KIND_TAG_REPR, .name = "weighted", .version = "1.0.0",
    .description = "weights proportional to the selected tags' scores, summing to 1 (Eq. 3)", .options = NULL,
    .n_options = 0, .ops_size = sizeof weighted_ops, .ops = &weighted_ops};

TEMA_PLUGIN_DEFINE(weighted_plugin)
