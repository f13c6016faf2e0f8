/* plugins/encoder/text.c - the text modality (paper III.E.3, Eq. 6): frozen text features
 * E_tex [n_items, F] entering the model through a learnable projection to `dim` (only the
 * projection trains).
 *
 * Where the features come from:
 *  - `features: PATH`: a .npy [n_x+n_y, F] the user computed (e.g. CLIP text features of
 *    the titles), one row per item in global item order: X items 0..n_x-1 first, then Y
 *    (row n_x + j is Y item j). Checked for shape, dtype, row count and NaN (tema/npy.h).
 *  - otherwise the `extractor`, a text_features plugin run on the item titles through the
 *    host's feature store (computed once, reused by every run): `hashed` (default; n-gram
 *    TF-IDF, no model) or `bert` (a pretrained sentence encoder such as all-MiniLM-L6-v2),
 *    or any other plugin of that kind.
 *  - `input: title+tags` appends the names of the item's selected tags (after the
 *    experiment's tagger -> tag_select -> tag_repr) to its title, "title | tag | tag": the
 *    paper's "LLM-augmented text" (Fig. 2).
 * Rows are L2-normalised unless `normalize: false`; items without text get a zero row. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../plugin_opts.h"
#include "frozen.h"
#include "tema/plugin.h"

static const tema_option text_options[] = {
    {"features", TEMA_OPT_STRING, "\"\"", 0, -1, NULL,
     ".npy of text features [n_x+n_y, F], rows in global item order (X items first, then Y); empty: the "
     "extractor"},
    {"input", TEMA_OPT_ENUM, "title", 0, -1, "title|title+tags",
     "text given to the extractor: the title, or the title followed by the item's selected tag names"},
    {"extractor", TEMA_OPT_PLUGIN, "{plugin: hashed}", 0, -1, "text_features",
     "text_features plugin that turns the item texts into features (hashed, bert, ...); unused with 'features'"},
    {"dim", TEMA_OPT_INT, "256", 1, 65536, NULL, "output width of the learnable projection"},
    {"bias", TEMA_OPT_BOOL, "false", 0, -1, NULL, "add a learnable bias to the projection"},
    {"normalize", TEMA_OPT_BOOL, "true", 0, -1, NULL,
     "L2-normalise every feature row (of a features file or of the extractor)"},
};

typedef struct text_encoder {
    frozen_proj proj;
    const tema_nn_api *nn;
} text_encoder;

/* ------------------------------------------------------------ the plugin */

static bool info_has_tags(const tema_model_info *info)
{
    return info->struct_size >= offsetof(tema_model_info, item_tags) + sizeof(void *) && info->n_tags > 0;
}

/* The text of every item ("title" or "title | tag | tag"): texts[i] points into *buf or
 * at the title; *texts and *buf are malloc'ed, the caller frees both. */
static tema_status item_texts(const tema_model_info *info, bool with_tags, const char ***texts, char **buf,
                              int64_t *with_text, tema_err *err)
{
    const int64_t n_items = (int64_t)info->n_x + info->n_y;
    const tema_tag_selection *sel = with_tags ? info->item_tags : NULL;
    *buf = NULL;
    *with_text = 0;
    if (!(*texts = calloc((size_t)n_items + 1, sizeof **texts)))
        return tema_fail(err, TEMA_ENOMEM, "encoder text: out of memory");
    size_t need = 1;
    for (int64_t i = 0; sel && i < n_items; i++) {
        need += (info->titles && info->titles[i] ? strlen(info->titles[i]) : 0) + 1;
        for (int64_t k = sel->off[i]; k < sel->off[i + 1]; k++) need += strlen(info->tag_names[sel->tag[k]]) + 3;
    }
    if (sel && !(*buf = malloc(need))) return tema_fail(err, TEMA_ENOMEM, "encoder text: out of memory");
    size_t at = 0;
    for (int64_t i = 0; i < n_items; i++) {
        const char *title = info->titles ? info->titles[i] : NULL;
        if (!sel) {
            (*texts)[i] = title;
            *with_text += title && title[0];
            continue;
        }
        char *t = *buf + at;
        size_t k = (size_t)sprintf(t, "%s", title ? title : "");
        for (int64_t j = sel->off[i]; j < sel->off[i + 1]; j++)
            k += (size_t)sprintf(t + k, "%s%s", k ? " | " : "", info->tag_names[sel->tag[j]]);
        (*texts)[i] = t;
        *with_text += k > 0;
        at += k + 1;
    }
    return TEMA_OK;
}

static tema_status check_tags(const tema_model_info *info, tema_err *err)
{
    const int64_t n_items = (int64_t)info->n_x + info->n_y;
    if (!info_has_tags(info))
        return tema_fail(err, TEMA_EINVAL,
                         "encoder text: input: title+tags needs item tags, but the experiment configures no tags; "
                         "hint: configure the tag pipeline (tagger, tag_select, tag_repr) or use input: title");
    const tema_tag_selection *sel = info->item_tags;
    if (!sel || !info->tag_names || sel->n_items != n_items || !sel->off)
        return tema_fail(err, TEMA_EINTERNAL, "encoder text: the host passed %d tags but no item-tag selection for the "
                                              "%lld items", (int)info->n_tags, (long long)n_items);
    for (int64_t i = 0; i < n_items; i++)
        for (int64_t k = sel->off[i]; k < sel->off[i + 1]; k++)
            if (sel->tag[k] < 0 || sel->tag[k] >= info->n_tags || !info->tag_names[sel->tag[k]])
                return tema_fail(err, TEMA_EINTERNAL, "encoder text: item %lld has tag id %d outside [0, %d)",
                                 (long long)i, (int)sel->tag[k], (int)info->n_tags);
    return TEMA_OK;
}

/* Features of the item texts from the extractor, through the host's store. *feats is
 * host->alloc'ed. */
static tema_status extract(const tema_model_info *info, const tema_cfg *opts, bool with_tags, float **feats,
                           int64_t *F, tema_err *err)
{
    const tema_host *host = info->host;
    if (host->struct_size < offsetof(tema_host, text_features) + sizeof(void *) || !host->text_features)
        return tema_fail(err, TEMA_EABI, "encoder text: this tema has no text feature service (ABI < 1.2); hint: give "
                                         "features: PATH of a .npy, or use a newer tema");
    if (with_tags) {
        tema_status st = check_tags(info, err);
        if (st != TEMA_OK) return st;
    }
    const char **texts = NULL;
    char *buf = NULL;
    int64_t with_text = 0;
    tema_status st = item_texts(info, with_tags, &texts, &buf, &with_text, err);
    if (st == TEMA_OK && with_text == 0)
        st = tema_fail(err, TEMA_EUNSUPPORTED,
                       "encoder text: no item has a title%s, so the extractor has nothing to read; hint: use a dataset "
                       "with items.tsv titles, or give features: PATH of a .npy",
                       with_tags ? " or a tag" : "");
    const int64_t n_items = (int64_t)info->n_x + info->n_y;
    if (st == TEMA_OK) st = host->text_features(opts, "extractor", texts, n_items, "encoder text", feats, F, err);
    if (st == TEMA_OK && with_text < n_items && host->log)
        host->log(with_text * 10 < 9 * n_items ? TEMA_LOG_WARN : TEMA_LOG_INFO, "encoder text",
                  "%lld of %lld items have no text and get a zero feature row",
                  (long long)(n_items - with_text), (long long)n_items);
    free(texts);
    free(buf);
    return st;
}

static tema_status text_create(const tema_model_info *info, const tema_cfg *opts, void **self, tema_err *err)
{
    const tema_host *host = info->host;
    const char *path, *input;
    int64_t dim;
    bool bias, normalize;
    tema_status st;
    if ((st = plugin_opt_str(host, opts, "encoder text", "features", &path, err)) != TEMA_OK ||
        (st = plugin_opt_str(host, opts, "encoder text", "input", &input, err)) != TEMA_OK ||
        (st = plugin_opt_int(host, opts, "encoder text", "dim", &dim, err)) != TEMA_OK ||
        (st = plugin_opt_bool(host, opts, "encoder text", "bias", &bias, err)) != TEMA_OK ||
        (st = plugin_opt_bool(host, opts, "encoder text", "normalize", &normalize, err)) != TEMA_OK)
        return st;
    const bool with_tags = !strcmp(input, "title+tags");
    if (!with_tags && strcmp(input, "title") != 0)
        return tema_fail(err, TEMA_EINVAL, "encoder text: option 'input' is '%s'; hint: use title or title+tags", input);
    if (info->n_x < 1 || info->n_y < 0)
        return tema_fail(err, TEMA_EINVAL, "encoder text: the dataset has no items (n_x=%d, n_y=%d)", (int)info->n_x,
                         (int)info->n_y);
    const int64_t n_items = (int64_t)info->n_x + info->n_y;
    float *feats = NULL;
    int64_t F = 0;
    const char *prefix;
    tema_npy_matrix m = {0};
    if (path[0]) {
        if (with_tags)
            return tema_fail(err, TEMA_EINVAL,
                             "encoder text: input: title+tags applies to the extractor, but features: %s was "
                             "computed outside tema; hint: drop 'features' to encode titles and tags here, or set "
                             "input: title and compute the tag-augmented text into the .npy yourself",
                             path);
        if ((st = frozen_load(info, "text", path, normalize, &m, err)) != TEMA_OK) return st;
        feats = m.data;
        F = m.cols;
        prefix = "encoder.text.file";
    } else {
        if ((st = extract(info, opts, with_tags, &feats, &F, err)) != TEMA_OK) return st;
        if (normalize) frozen_l2_normalize(feats, n_items, F);
        prefix = with_tags ? "encoder.text.title_tags" : "encoder.text.title";
    }
    text_encoder *enc = calloc(1, sizeof *enc);
    if (enc) {
        enc->nn = host->nn;
        st = frozen_declare(&enc->proj, info, "text", prefix, feats, n_items, F, dim, bias, err);
    } else st = tema_fail(err, TEMA_ENOMEM, "encoder text: out of memory");
    if (path[0]) free(feats); /* the constant holds its own copy */
    else host->free(feats);
    if (st != TEMA_OK) {
        free(enc);
        return st;
    }
    *self = enc;
    return TEMA_OK;
}

static tema_status text_forward(void *self, tema_graph *g, tema_tensor **items, tema_err *err)
{
    text_encoder *enc = self;
    return frozen_forward(&enc->proj, g, enc->nn, "text", items, err);
}

static int64_t text_dim(const void *self) { return ((const text_encoder *)self)->proj.dim; }
static const char *text_modality(const void *self) { (void)self; return "text"; }
static void text_destroy(void *self) { free(self); }

static const tema_encoder_ops text_ops = {.create = text_create, .forward = text_forward, .dim = text_dim,
                                          .modality = text_modality, .destroy = text_destroy};

static const tema_plugin text_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_ENCODER, "text", "2.0.0",
                       "frozen text features (a .npy, or a text_features extractor over the titles, optionally with "
                       "tags) through a learnable projection to dim",
                       text_options, text_ops)};
TEMA_PLUGIN_DEFINE(text_plugin)
