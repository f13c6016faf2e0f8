/* plugins/tag_repr/onehot.c - the single most relevant selected tag, weight 1 (paper
 * Table V, "One-hot tag vector").
 *
 * The selection shrinks to one tag per item (ties: lower tag id); items with no selected
 * tag stay empty. */
#include "../tag_plugin.h"

static tema_status onehot_weights(const tema_host *host, const tema_cfg *opts, tema_tag_selection *sel, tema_err *err)
{
    (void)host;
    (void)opts;
    tema_status st = tag_check_selection(sel, "tag_repr onehot", err);
    if (st != TEMA_OK) return st;
    int64_t w = 0; /* write position: never ahead of the read position, so in place is safe */
    for (int64_t i = 0; i < sel->n_items; i++) {
        int64_t a = sel->off[i], b = sel->off[i + 1], best = -1;
        for (int64_t k = a; k < b; k++) {
            float v = sel->score[k];
            if (!(v >= 0))
                return tema_fail(err, TEMA_EINVAL, "tag_repr onehot: item %lld, tag %d has score %g; scores must be "
                                                   ">= 0", (long long)i, (int)sel->tag[k], (double)v);
            if (best < 0 || v > sel->score[best] || (v == sel->score[best] && sel->tag[k] < sel->tag[best])) best = k;
        }
        sel->off[i] = w;
        if (best >= 0) {
            sel->tag[w] = sel->tag[best];
            sel->score[w] = 1.0f;
            w++;
        }
    }
    sel->off[sel->n_items] = w;
    return TEMA_OK;
}

static const tema_tag_repr_ops onehot_ops = {.weights_with_host = onehot_weights};

/* No options, so no option table (TEMA_PLUGIN_HEADER needs a non-empty one). */
static const tema_plugin onehot_plugin = {
    .abi_major = TEMA_ABI_MAJOR, .abi_minor = TEMA_ABI_MINOR, .struct_size = sizeof(tema_plugin),
    .kind = TEMA_KIND_TAG_REPR, .name = "onehot", .version = "1.0.0",
    .description = "the single best selected tag with weight 1", .options = NULL, .n_options = 0,
    .ops_size = sizeof onehot_ops, .ops = &onehot_ops};

TEMA_PLUGIN_DEFINE(onehot_plugin)
