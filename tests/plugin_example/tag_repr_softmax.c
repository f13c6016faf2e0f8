/* An out-of-tree tema plugin, the one the README's plugin guide walks through.
 *
 * Build against an installed tema:
 *     cc -shared -fPIC $(pkg-config --cflags tema) -o tema-tag_repr-softmax.so tag_repr_softmax.c -lm
 * and put the .so in a folder on TEMA_PLUGIN_PATH; `tema plugins` then lists it.
 *
 * It turns each item's selected tag scores (1..100) into weights with a softmax at a
 * chosen temperature: sharper than `weighted`, softer than `onehot`. */
#include <math.h>

#include <tema/plugin.h>

static const tema_option softmax_options[] = {
    {"temperature", TEMA_OPT_FLOAT, "10.0", 1e-3, 1e6, NULL, "softmax temperature in score units"},
};

/* opts are validated: the host filled the declared default, so any failure is a bug. */
static tema_status softmax_weights(const tema_host *host, const tema_cfg *opts, tema_tag_selection *sel, tema_err *err)
{
    double t;
    if (host->cfg_float(opts, "temperature", &t) != TEMA_OK)
        return tema_fail(err, TEMA_EINTERNAL, "softmax: option 'temperature' missing from the validated options");
    for (int64_t i = 0; i < sel->n_items; i++) {
        int64_t a = sel->off[i], b = sel->off[i + 1];
        if (a == b) continue; /* an item without tags keeps an empty selection */
        float mx = sel->score[a];
        for (int64_t k = a + 1; k < b; k++) mx = sel->score[k] > mx ? sel->score[k] : mx;
        double z = 0;
        for (int64_t k = a; k < b; k++) z += exp((sel->score[k] - mx) / t);
        for (int64_t k = a; k < b; k++) sel->score[k] = (float)(exp((sel->score[k] - mx) / t) / z);
    }
    return TEMA_OK;
}

static const tema_tag_repr_ops softmax_ops = {.weights_with_host = softmax_weights};

static const tema_plugin softmax_plugin = {TEMA_PLUGIN_HEADER(
    TEMA_KIND_TAG_REPR, "softmax", "1.0.0", "tag weights = softmax(score / temperature) per item", softmax_options,
    softmax_ops)};

/* The entry point: the one exported symbol. */
TEMA_PLUGIN_DEFINE(softmax_plugin)
