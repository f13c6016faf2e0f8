/* plugins/encoder/image.c - the image modality (paper III.E.2, Eq. 5): frozen CLIP image
 * features E_img [n_items, e] read from a .npy file, entering the model through a learnable
 * projection to `dim` (only the projection trains).
 *
 * The file holds one row per item in global item order: domain X's items 0..n_x-1 first,
 * then Y's (row n_x + j is Y item j), float32 or float64, C order (see tema/npy.h). Rows are
 * L2-normalised on load unless `normalize: false` (CLIP features are compared by cosine).
 * The bundled datasets have no images, so there is no built-in fallback: `features` is a
 * required option (`tema check` reports it missing, with its help on what to do), and a
 * file that does not exist fails create() with how to run without this modality. */
#include <stdlib.h>
#include <string.h>

#include "../plugin_opts.h"
#include "frozen.h"
#include "tema/plugin.h"

static const tema_option image_options[] = {
    {"features", TEMA_OPT_STRING, NULL, 0, -1, NULL,
     ".npy of CLIP image features [n_x+n_y, F], rows in global item order (X items first, then Y); the bundled "
     "datasets have no images: compute the features, or remove the image encoder from model.encoders"},
    {"dim", TEMA_OPT_INT, "256", 1, 65536, NULL, "output width of the learnable projection"},
    {"bias", TEMA_OPT_BOOL, "false", 0, -1, NULL, "add a learnable bias to the projection"},
    {"normalize", TEMA_OPT_BOOL, "true", 0, -1, NULL, "L2-normalise every feature row on load"},
};

typedef struct image_encoder {
    frozen_proj proj;
    const tema_nn_api *nn;
} image_encoder;

#define IMAGE_HINT                                                                                           \
    "the datasets here ship no images; hint: remove the image encoder from model.encoders or compute CLIP "  \
    "image features to a .npy [n_x+n_y, F] (X items first, then Y) and set features: PATH"

static tema_status image_create(const tema_model_info *info, const tema_cfg *opts, void **self, tema_err *err)
{
    const tema_host *host = info->host;
    const char *path;
    int64_t dim;
    bool bias, normalize;
    tema_status st;
    if ((st = plugin_opt_str(host, opts, "encoder image", "features", &path, err)) != TEMA_OK ||
        (st = plugin_opt_int(host, opts, "encoder image", "dim", &dim, err)) != TEMA_OK ||
        (st = plugin_opt_bool(host, opts, "encoder image", "bias", &bias, err)) != TEMA_OK ||
        (st = plugin_opt_bool(host, opts, "encoder image", "normalize", &normalize, err)) != TEMA_OK)
        return st;
    if (info->n_x < 1 || info->n_y < 0)
        return tema_fail(err, TEMA_EINVAL, "encoder image: the dataset has no items (n_x=%d, n_y=%d)", (int)info->n_x,
                         (int)info->n_y);
    if (!path[0]) /* required, but `features: ""` is still empty */
        return tema_fail(err, TEMA_EUNSUPPORTED,
                         "encoder image: the image encoder needs features: option 'features' (a .npy of CLIP image "
                         "features) is empty; " IMAGE_HINT);
    tema_npy_matrix m;
    tema_err e = {0};
    st = frozen_load(info, "image", path, normalize, &m, &e);
    if (st == TEMA_ENOTFOUND)
        return tema_fail(err, st, "encoder image: the image encoder needs features: %s does not exist; " IMAGE_HINT,
                         path);
    if (st != TEMA_OK) return tema_fail(err, st, "%s", e.msg);
    image_encoder *enc = calloc(1, sizeof *enc);
    if (!enc) {
        tema_npy_free(&m);
        return tema_fail(err, TEMA_ENOMEM, "encoder image: out of memory");
    }
    enc->nn = host->nn;
    st = frozen_declare(&enc->proj, info, "image", "encoder.image", m.data, m.rows, m.cols, dim, bias, err);
    tema_npy_free(&m); /* the constant holds its own copy */
    if (st != TEMA_OK) {
        free(enc);
        return st;
    }
    if (host->log)
        host->log(TEMA_LOG_INFO, "encoder image", "%lld x %lld features from %s, projected to %lld",
                  (long long)enc->proj.n_items, (long long)enc->proj.n_features, path, (long long)dim);
    *self = enc;
    return TEMA_OK;
}

static tema_status image_forward(void *self, tema_graph *g, tema_tensor **items, tema_err *err)
{
    image_encoder *enc = self;
    return frozen_forward(&enc->proj, g, enc->nn, "image", items, err);
}

static int64_t image_dim(const void *self) { return ((const image_encoder *)self)->proj.dim; }
static const char *image_modality(const void *self) { (void)self; return "image"; }
static void image_destroy(void *self) { free(self); }

static const tema_encoder_ops image_ops = {.create = image_create, .forward = image_forward, .dim = image_dim,
                                           .modality = image_modality, .destroy = image_destroy};

static const tema_plugin image_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_ENCODER, "image", "1.0.0",
                       "frozen image features from a .npy [n_items, F] through a learnable projection to dim",
                       image_options, image_ops)};
TEMA_PLUGIN_DEFINE(image_plugin)
