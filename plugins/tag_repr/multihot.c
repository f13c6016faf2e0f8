/* plugins/tag_repr/multihot.c - equal weights over the selected tags (paper Table V,
 * "Unweighted multi-hot"): each of an item's k tags weighs 1/k, so the tag embedding is
 * their mean. Items with no selected tag stay empty. */
#include "../tag_plugin.h"

static tema_status multihot_weights(const tema_host *host, const tema_cfg *opts, tema_tag_selection *sel, tema_err *err)
{
    (void)host;
    (void)opts;
    tema_status st = tag_check_selection(sel, "tag_repr multihot", err);
    if (st != TEMA_OK) return st;
    for (int64_t i = 0; i < sel->n_items; i++) {
        int64_t a = sel->off[i], b = sel->off[i + 1];
        for (int64_t k = a; k < b; k++) sel->score[k] = (float)(1.0 / (double)(b - a));
    }
    return TEMA_OK;
}

static const tema_tag_repr_ops multihot_ops = {.weights_with_host = multihot_weights};

/* No options, so no option table (TEMA_PLUGIN_HEADER needs a non-empty one). */
static const tema_plugin multihot_plugin = {
    .abi_major = TEMA_ABI_MAJOR, .abi_minor = TEMA_ABI_MINOR, .struct_size = sizeof(tema_plugin),
    .kind = TEMA_KIND_TAG_REPR, .name = "multihot", .version = "1.0.0",
    .description = "equal weights 1/k over an item's k selected tags", .options = NULL, .n_options = 0,
    .ops_size = sizeof multihot_ops, .ops = &multihot_ops};

TEMA_PLUGIN_DEFINE(multihot_plugin)
