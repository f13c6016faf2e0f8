/* tests/test_encoders.c - the encoder plugins (paper III.E): a conformance part over every
 * encoder the registry finds (shape, finiteness, determinism, gradients of the learnable
 * parts), the .npy reader against broken files, the built-in text features, the image
 * encoder's errors and the tag encoder's values against a hand computation. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "host.h"
#include "engine.h"
#include "registry.h"
#include "tema/npy.h"
#include "testutil.h"
#include "text_features.h"

#define NX 6
#define NY 5
#define NI (NX + NY)
#define NTAGS 5

static tema_registry *g_reg;
static int64_t g_counts[NI] = {3, 0, 7, 1, 1, 2, 9, 0, 4, 2, 1};
static const char *const g_titles[NI] = {
    "Organic Green Tea Bags, 100 Count",  /* 0 */
    "Organic Green Tea Bags, 20 Count",   /* 1: near-duplicate of 0 */
    "Dark Roast Coffee Beans 2 lb",       /* 2 */
    "Organic Green Tea Bags, 100 Count",  /* 3: same title as 0 */
    NULL,                                 /* 4: unknown title */
    "Milk Chocolate Bar &amp; Almonds",   /* 5 */
    "Stainless Steel Tea Kettle",         /* 6 */
    "Cast Iron Skillet, 12 Inch",         /* 7 */
    "Ceramic Coffee Mug",                 /* 8 */
    "Nonstick Frying Pan 12 inch",        /* 9 */
    "",                                   /* 10: empty title */
};
static const char *const g_tag_names[NTAGS] = {"green tea", "hot beverage", "sweets", "cookware", "drinkware"};
static const int32_t g_tag_domain[NTAGS] = {0, 0, 0, 1, 1};
/* Hand-made selection after tag_repr: items 5 and 10 untagged, at most two tags per item. */
static int64_t g_off[NI + 1] = {0, 2, 3, 4, 6, 7, 7, 9, 10, 11, 12, 12};
static int32_t g_tag[12] = {0, 1, 0, 1, 0, 1, 2, 3, 4, 3, 4, 3};
static float g_score[12] = {0.6f, 0.4f, 1.0f, 1.0f, 0.6f, 0.4f, 1.0f, 0.5f, 0.5f, 1.0f, 1.0f, 1.0f};
static tema_tag_selection g_sel = {.n_items = NI, .off = g_off, .tag = g_tag, .score = g_score};

static void setup_engine(void)
{
    g_reg = tu_cpu_registry();
    tu_fresh_feature_store();
}

static bool declares(const tema_plugin *p, const char *opt)
{
    for (uint32_t i = 0; i < p->n_options; i++)
        if (!strcmp(p->options[i].name, opt)) return true;
    return false;
}


static tema_model_info make_info(tema_params *params, bool with_tags, const char *const *titles)
{
    tema_model_info info = {.struct_size = sizeof(tema_model_info), .n_x = NX, .n_y = NY, .max_len = 4,
                            .train_counts = g_counts, .titles = titles, .seed = 5, .params = params,
                            .host = tema_host_get()};
    if (with_tags) {
        info.n_tags = NTAGS;
        info.tag_names = g_tag_names;
        info.tag_domain = g_tag_domain;
        info.item_tags = &g_sel;
    }
    return info;
}

static const tema_plugin *find_encoder(const char *name)
{
    const tema_plugin *p = tema_registry_find(g_reg, TEMA_KIND_ENCODER, name);
    ck_assert_msg(p != NULL, "encoder %s not found", name);
    return p;
}

static tema_tensor *param_named(tema_params *params, const char *name)
{
    for (size_t i = 0; i < tema_params_n(params); i++)
        if (!strcmp(tema_params_at(params, i)->name, name)) return tema_params_at(params, i);
    return NULL;
}

/* One encoder instance with its own parameters and graph. */
typedef struct enc_model {
    const tema_plugin *p;
    const tema_encoder_ops *ops;
    void *self;
    tema_params *params;
    tema_graph *g;
} enc_model;

static tema_status enc_build(enc_model *m, const tema_plugin *p, const char *extra, bool with_tags,
                             const char *const *titles, uint64_t seed, tema_err *err)
{
    memset(m, 0, sizeof *m);
    m->p = p;
    m->ops = p->ops;
    m->params = tema_params_new(seed);
    tema_model_info info = make_info(m->params, with_tags, titles);
    tema_cfg *opts = tu_plugin_opts(p, extra);
    tema_status st = m->ops->create(&info, opts, &m->self, err);
    tema_cfg_free(opts);
    if (st != TEMA_OK) {
        tema_params_free(m->params);
        m->params = NULL;
        return st;
    }
    ck_assert_msg(tema_params_finalize(m->params, err) == TEMA_OK, "%s: %s", p->name, err->msg);
    m->g = tema_graph_new(seed);
    return TEMA_OK;
}

static void enc_free(enc_model *m)
{
    if (m->g) tema_graph_free(m->g);
    if (m->self) m->ops->destroy(m->self);
    if (m->params) tema_params_free(m->params);
    memset(m, 0, sizeof *m);
}

static tema_tensor *enc_forward(enc_model *m)
{
    tema_graph_reset(m->g, true, 1);
    tema_tensor *items = NULL;
    tema_err err = {0};
    ck_assert_msg(m->ops->forward(m->self, m->g, &items, &err) == TEMA_OK, "%s: %s", m->p->name, err.msg);
    ck_assert_ptr_nonnull(items);
    return items;
}

/* A fixed [NI*dim] probe R: loss = sum(items * R), linear in the encoder output. */
static float probe(int64_t i) { return (float)sin(0.7 * (double)i + 0.3) + 0.1f; }

static double enc_loss(enc_model *m, bool backward)
{
    tema_tensor *items = enc_forward(m);
    const tema_nn_api *nn = tema_nn();
    float *r = malloc((size_t)items->size * sizeof *r);
    for (int64_t i = 0; i < items->size; i++) r[i] = probe(i);
    tema_tensor *rt = nn->tensor(m->g, items->ndim, items->shape, r);
    free(r);
    tema_tensor *loss = nn->sum(m->g, nn->mul(m->g, items, rt));
    ck_assert_msg(loss != NULL, "%s: %s", m->p->name, nn->error(m->g));
    double v = loss->data[0];
    if (backward) {
        tema_err err = {0};
        tema_params_zero_grad(m->params);
        ck_assert_msg(tema_graph_backward(m->g, loss, &err) == TEMA_OK, "%s: %s", m->p->name, err.msg);
    }
    return v;
}

/* Central differences on (up to 64 entries of) every learnable parameter. */
static void check_gradients(enc_model *m, const char *label)
{
    enc_loss(m, true);
    int n_learn = 0;
    for (size_t t = 0; t < tema_params_n(m->params); t++) {
        tema_tensor *p = tema_params_at(m->params, t);
        if (!(p->flags & TEMA_TENSOR_PARAM)) continue;
        n_learn++;
        ck_assert_ptr_nonnull(p->grad);
        float *grad = malloc((size_t)p->size * sizeof *grad);
        memcpy(grad, p->grad, (size_t)p->size * sizeof *grad);
        const int64_t step = p->size > 64 ? p->size / 64 : 1;
        const float eps = 1e-2f;
        for (int64_t i = 0; i < p->size; i += step) {
            const float keep = p->data[i];
            p->data[i] = keep + eps;
            double up = enc_loss(m, false);
            p->data[i] = keep - eps;
            double down = enc_loss(m, false);
            p->data[i] = keep;
            double fd = (up - down) / (2 * eps);
            ck_assert_msg(fabs(fd - grad[i]) <= 2e-3 + 1e-2 * fabs(fd), "%s: d/d%s[%lld] analytic %.6f vs finite difference %.6f",
                          label, p->name, (long long)i, grad[i], fd);
        }
        free(grad);
    }
    ck_assert_msg(n_learn > 0, "%s: no learnable parameter", label);
}

static bool all_finite(const tema_tensor *t)
{
    for (int64_t i = 0; i < t->size; i++)
        if (!isfinite(t->data[i])) return false;
    return true;
}

/* ---------------- .npy files written by hand ---------------- */

/* A .npy with the given header fields; data bytes as given (NULL: none). */
static void write_npy(const char *path, const char *magic, int major, const char *descr, const char *fortran,
                      const char *shape, const void *data, size_t nbytes)
{
    char dict[256];
    int dl = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr, fortran, shape);
    const size_t pre = major == 1 ? 10 : 12;
    size_t hl = (size_t)dl + 1;
    while ((pre + hl) % 64) hl++; /* numpy pads the header with spaces to 64 bytes, then '\n' */
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(magic, 1, 6, f);
    unsigned char ver[2] = {(unsigned char)major, 0};
    fwrite(ver, 1, 2, f);
    if (major == 1) {
        unsigned char l[2] = {(unsigned char)(hl & 0xff), (unsigned char)(hl >> 8)};
        fwrite(l, 1, 2, f);
    } else {
        unsigned char l[4] = {(unsigned char)(hl & 0xff), (unsigned char)(hl >> 8), 0, 0};
        fwrite(l, 1, 4, f);
    }
    fwrite(dict, 1, (size_t)dl, f);
    for (size_t i = (size_t)dl; i + 1 < hl; i++) fputc(' ', f);
    fputc('\n', f);
    if (data && nbytes) fwrite(data, 1, nbytes, f);
    fclose(f);
}

static const char *tmp_file(const char *name)
{
    static char buf[8][512];
    static int k;
    static char dir[256];
    if (!dir[0]) snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    char *b = buf[k++ % 8];
    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

/* A valid [rows, cols] float32 file with values v(r, c) = 0.1 * (r + 1) - 0.05 * c. */
static const char *write_valid(const char *name, int rows, int cols)
{
    float *d = malloc((size_t)(rows * cols) * sizeof *d);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) d[r * cols + c] = 0.1f * (float)(r + 1) - 0.05f * (float)c;
    char shape[64];
    snprintf(shape, sizeof shape, "(%d, %d)", rows, cols);
    const char *p = tmp_file(name);
    write_npy(p, "\x93NUMPY", 1, "<f4", "False", shape, d, (size_t)(rows * cols) * sizeof *d);
    free(d);
    return p;
}

START_TEST(npy_reads_valid_files)
{
    float f4[6] = {1, 2, 3, 4, 5, 6};
    double f8[6] = {0.5, -1.25, 3e10, 4, 5, 6};
    const char *p1 = tmp_file("v1.npy"), *p2 = tmp_file("v2.npy"), *p3 = tmp_file("v3.npy");
    write_npy(p1, "\x93NUMPY", 1, "<f4", "False", "(2, 3)", f4, sizeof f4);
    write_npy(p2, "\x93NUMPY", 2, "<f8", "False", "(3, 2)", f8, sizeof f8);
    write_npy(p3, "\x93NUMPY", 3, "<f4", "False", "(6,1)", f4, sizeof f4);
    tema_npy_matrix m;
    tema_err err = {0};
    ck_assert_msg(tema_npy_read(p1, 2, NULL, &m, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_int_eq(m.rows, 2);
    ck_assert_int_eq(m.cols, 3);
    for (int i = 0; i < 6; i++) ck_assert_float_eq(m.data[i], f4[i]);
    tema_npy_free(&m);
    ck_assert_msg(tema_npy_read(p2, -1, NULL, &m, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_int_eq(m.rows, 3);
    ck_assert_int_eq(m.cols, 2);
    for (int i = 0; i < 6; i++) ck_assert_float_eq(m.data[i], (float)f8[i]);
    tema_npy_free(&m);
    ck_assert_msg(tema_npy_read(p3, 6, NULL, &m, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_int_eq(m.cols, 1);
    ck_assert_float_eq(m.data[5], 6.0f);
    tema_npy_free(&m);
}
END_TEST

static void expect_npy_error(const char *path, int64_t rows, tema_status want, const char *const *parts)
{
    tema_npy_matrix m = {.rows = 7, .data = (float *)&m};
    tema_err err = {0};
    tema_status st = tema_npy_read(path, rows, "items", &m, &err);
    ck_assert_msg(st == want, "%s: status %s (%s), want %s", path, tema_status_name(st), err.msg,
                  tema_status_name(want));
    ck_assert_ptr_null(m.data);
    ck_assert_int_eq(m.rows, 0);
    ck_assert_msg(strstr(err.msg, path) != NULL, "message does not name the file: %s", err.msg);
    ck_assert_msg(strstr(err.msg, "hint") != NULL, "message has no hint: %s", err.msg);
    for (int i = 0; parts[i]; i++)
        ck_assert_msg(strstr(err.msg, parts[i]) != NULL, "message lacks '%s': %s", parts[i], err.msg);
}

START_TEST(npy_rejects_bad_files)
{
    float d[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const char *p;

    p = tmp_file("magic.npy");
    write_npy(p, "\x93NUMPZ", 1, "<f4", "False", "(4, 3)", d, sizeof d);
    expect_npy_error(p, 4, TEMA_EFORMAT, (const char *const[]){"bad magic", NULL});
    p = tmp_file("text.npy");
    tu_write(p, "item,feature\n");
    expect_npy_error(p, 4, TEMA_EFORMAT, (const char *const[]){"not a .npy file", NULL});

    p = tmp_file("int.npy");
    write_npy(p, "\x93NUMPY", 1, "<i4", "False", "(4, 3)", d, sizeof d);
    expect_npy_error(p, 4, TEMA_EUNSUPPORTED, (const char *const[]){"unsupported dtype '<i4'", "float32", NULL});
    p = tmp_file("big.npy");
    write_npy(p, "\x93NUMPY", 1, ">f4", "False", "(4, 3)", d, sizeof d);
    expect_npy_error(p, 4, TEMA_EUNSUPPORTED, (const char *const[]){"'>f4'", "big-endian", NULL});

    p = tmp_file("fortran.npy");
    write_npy(p, "\x93NUMPY", 1, "<f4", "True", "(4, 3)", d, sizeof d);
    expect_npy_error(p, 4, TEMA_EUNSUPPORTED, (const char *const[]){"Fortran", "C order", NULL});

    p = tmp_file("3d.npy");
    write_npy(p, "\x93NUMPY", 1, "<f4", "False", "(2, 2, 3)", d, sizeof d);
    expect_npy_error(p, 2, TEMA_EFORMAT, (const char *const[]){"3 dimensions", "(2, 2, 3)", "2-D", NULL});
    p = tmp_file("1d.npy");
    write_npy(p, "\x93NUMPY", 1, "<f4", "False", "(12,)", d, sizeof d);
    expect_npy_error(p, 12, TEMA_EFORMAT, (const char *const[]){"1 dimension ", NULL});

    p = tmp_file("rows.npy");
    write_npy(p, "\x93NUMPY", 1, "<f4", "False", "(4, 3)", d, sizeof d);
    expect_npy_error(p, 5, TEMA_EINVAL, (const char *const[]){"4 rows", "has 5 items", "X items first", NULL});

    p = tmp_file("short.npy");
    write_npy(p, "\x93NUMPY", 1, "<f4", "False", "(4, 3)", d, sizeof d - 6);
    expect_npy_error(p, 4, TEMA_EFORMAT, (const char *const[]){"truncated", "after 10 of them", NULL});
    /* a header that promises more than the file holds is refused before any memory is taken for it
     * (tests/fuzz/fuzz_npy: this one asked malloc for 110 PB) */
    p = tmp_file("huge.npy");
    write_npy(p, "\x93NUMPY", 1, "<f4", "False", "(3, 9223372036854770)", d, sizeof d);
    expect_npy_error(p, 3, TEMA_EFORMAT, (const char *const[]){"truncated", "after 12 of them", NULL});
    p = tmp_file("header.npy");
    write_npy(p, "\x93NUMPY", 1, "<f4", "False", "(4, 3)", NULL, 0);
    {
        /* cut inside the header */
        FILE *f = fopen(p, "r+b");
        ck_assert_int_eq(ftruncate(fileno(f), 30), 0);
        fclose(f);
    }
    expect_npy_error(p, 4, TEMA_EFORMAT, (const char *const[]){"truncated .npy header", NULL});

    p = tmp_file("nan.npy");
    float dn[12];
    memcpy(dn, d, sizeof d);
    dn[1 * 3 + 2] = NAN;
    write_npy(p, "\x93NUMPY", 1, "<f4", "False", "(4, 3)", dn, sizeof dn);
    expect_npy_error(p, 4, TEMA_EFORMAT, (const char *const[]){"NaN at row 1, column 2", NULL});
    p = tmp_file("inf.npy");
    double di[12] = {0};
    di[3 * 3 + 0] = -INFINITY;
    write_npy(p, "\x93NUMPY", 2, "<f8", "False", "(4, 3)", di, sizeof di);
    expect_npy_error(p, 4, TEMA_EFORMAT, (const char *const[]){"Inf at row 3, column 0", NULL});

    p = tmp_file("extra.npy");
    write_npy(p, "\x93NUMPY", 1, "<f4", "False", "(3, 3)", d, sizeof d);
    expect_npy_error(p, 3, TEMA_EFORMAT, (const char *const[]){"bytes follow", NULL});

    p = tmp_file("absent.npy");
    expect_npy_error(p, 3, TEMA_ENOTFOUND, (const char *const[]){"cannot open", NULL});
}
END_TEST

/* ---------------- conformance ---------------- */

/* Shape, finiteness, determinism and gradients of one configuration; false if create() refused. */
static bool conform(const tema_plugin *p, const char *extra, bool with_tags, const char *label)
{
    enc_model a, b;
    tema_err err = {0};
    tema_status st = enc_build(&a, p, extra, with_tags, g_titles, 17, &err);
    if (st != TEMA_OK) {
        ck_assert_msg(err.msg[0] != '\0', "%s: create() failed without a message", label);
        ck_assert_msg(strstr(err.msg, p->name) != NULL, "%s: message does not name the encoder: %s", label, err.msg);
        tu_skip(label, "%s", err.msg);
        return false;
    }
    ck_assert_ptr_nonnull(a.ops->modality(a.self));
    const int64_t dim = a.ops->dim(a.self);
    ck_assert_int_ge(dim, 1);
    tema_tensor *items = enc_forward(&a);
    ck_assert_int_eq(items->ndim, 2);
    ck_assert_int_eq(items->shape[0], NI);
    ck_assert_int_eq(items->shape[1], dim);
    ck_assert_msg(all_finite(items), "%s: non-finite item table", label);
    float *first = malloc((size_t)items->size * sizeof *first);
    memcpy(first, items->data, (size_t)items->size * sizeof *first);
    /* same options and seed, a fresh model: the same table */
    ck_assert_msg(enc_build(&b, p, extra, with_tags, g_titles, 17, &err) == TEMA_OK, "%s: %s", label, err.msg);
    tema_tensor *again = enc_forward(&b);
    ck_assert_int_eq(again->size, items->size);
    for (int64_t i = 0; i < again->size; i++)
        ck_assert_msg(again->data[i] == first[i], "%s: entry %lld differs between two builds with seed 17", label,
                      (long long)i);
    enc_free(&b);
    free(first);
    check_gradients(&a, label);
    enc_free(&a);
    return true;
}

START_TEST(every_encoder_conforms)
{
    setup_engine();
    const char *feats = write_valid("conform.npy", NI, 7);
    int ran = 0, n_enc = 0;
    for (size_t i = 0; i < tema_registry_count(g_reg); i++) {
        const tema_plugin *p = tema_registry_at(g_reg, i)->plugin;
        if (p->kind != TEMA_KIND_ENCODER) continue;
        n_enc++;
        char extra[1024] = "", label[256];
        size_t k = 0;
        if (declares(p, "dim")) k += (size_t)snprintf(extra + k, sizeof extra - k, "dim: 6\n");
        if (declares(p, "extractor"))
            k += (size_t)snprintf(extra + k, sizeof extra - k, "extractor: {plugin: hashed, dim: 16}\n");
        snprintf(label, sizeof label, "encoder %s (defaults)", p->name);
        if (tu_required_option(p)) tu_skip(label, "option '%s' has no default", tu_required_option(p));
        else ran += conform(p, extra, true, label);
        if (declares(p, "features")) {
            snprintf(extra + k, sizeof extra - k, "features: '%s'\n", feats);
            snprintf(label, sizeof label, "encoder %s (features file)", p->name);
            ck_assert_msg(conform(p, extra, true, label), "%s refused a valid features file", p->name);
            ran++;
        }
    }
    ck_assert_int_ge(n_enc, 4); /* id, text, image, tag */
    ck_assert_int_ge(ran, n_enc);
}
END_TEST

/* ---------------- text ---------------- */

static double cosine(const float *a, const float *b, int64_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

static double norm(const float *a, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * a[i];
    return sqrt(s);
}

/* The frozen built-in features of the text encoder (the constant in its parameter store). */
static const tema_tensor *text_features(enc_model *m, const char *input)
{
    char name[64];
    snprintf(name, sizeof name, "encoder.text.%s.features", input);
    const tema_tensor *f = param_named(m->params, name);
    ck_assert_msg(f != NULL, "no parameter %s", name);
    ck_assert_msg(!(f->flags & TEMA_TENSOR_PARAM), "%s is learnable; the features must stay frozen", name);
    ck_assert_int_eq(f->shape[0], NI);
    return f;
}

START_TEST(text_builtin_features)
{
    setup_engine();
    const tema_plugin *p = find_encoder("text");
    enc_model m;
    tema_err err = {0};
    ck_assert_msg(enc_build(&m, p, "dim: 8\nextractor: {plugin: hashed, dim: 4096}\n", false, g_titles, 3, &err) == TEMA_OK, "%s", err.msg);
    const tema_tensor *f = text_features(&m, "title");
    const int64_t F = f->shape[1];
    ck_assert_int_eq(F, 4096);
    /* 4096 wide: the random projection's noise on a cosine is about 1/sqrt(F) = 0.016 */
    /* only the projection [8, F] learns */
    ck_assert_int_eq(tema_params_count(m.params), 8 * F);
    const float *x = f->data;
#define ROW(i) (x + (int64_t)(i) * F)
    for (int i = 0; i < NI; i++) {
        const bool empty = i == 4 || i == 10;
        ck_assert_msg(fabs(norm(ROW(i), F) - (empty ? 0.0 : 1.0)) < 1e-5, "item %d: norm %g", i, norm(ROW(i), F));
    }
    ck_assert_int_eq(memcmp(ROW(0), ROW(3), (size_t)F * sizeof(float)), 0); /* same title, same vector */
    /* near-duplicate titles beat unrelated ones */
    ck_assert(cosine(ROW(0), ROW(1), F) > 0.7);
    for (int j = 2; j < NI; j++)
        if (j != 3) ck_assert_msg(cosine(ROW(0), ROW(1), F) > cosine(ROW(0), ROW(j), F) + 0.3, "item %d", j);
    /* shared words: kettle shares "tea" with the tea bags, the skillet and the pan share "12 inch" */
    ck_assert(cosine(ROW(6), ROW(0), F) > cosine(ROW(6), ROW(7), F));
    ck_assert(cosine(ROW(7), ROW(9), F) > cosine(ROW(7), ROW(0), F));
    ck_assert(cosine(ROW(8), ROW(2), F) > cosine(ROW(8), ROW(5), F)); /* coffee */
    float *title_only = malloc((size_t)(NI * F) * sizeof *title_only);
    memcpy(title_only, x, (size_t)(NI * F) * sizeof *title_only);
    enc_free(&m);

    /* the same features with 2 threads (the test runs with OMP_NUM_THREADS=1), computed again */
    tu_fresh_feature_store();
    omp_set_num_threads(2);
    ck_assert_msg(enc_build(&m, p, "dim: 8\nextractor: {plugin: hashed, dim: 4096}\n", false, g_titles, 3, &err) == TEMA_OK, "%s", err.msg);
    omp_set_num_threads(1);
    ck_assert_int_eq(memcmp(text_features(&m, "title")->data, title_only, (size_t)(NI * F) * sizeof(float)), 0);
    enc_free(&m);

    /* title+tags: tagged items move; coffee beans and the tea bags share "hot beverage" */
    ck_assert_msg(enc_build(&m, p, "dim: 8\nextractor: {plugin: hashed, dim: 4096}\ninput: title+tags\n", true, g_titles, 3, &err) ==
                      TEMA_OK, "%s", err.msg);
    x = text_features(&m, "title_tags")->data;
    for (int i = 0; i < NI; i++) {
        const bool tagged = g_off[i + 1] > g_off[i];
        if (tagged) ck_assert_msg(cosine(ROW(i), title_only + i * F, F) < 0.999, "item %d ignores its tags", i);
        ck_assert_msg(fabs(norm(ROW(i), F) - (i == 10 ? 0.0 : 1.0)) < 1e-5, "item %d: norm %g", i, norm(ROW(i), F));
    }
    ck_assert(cosine(ROW(0), ROW(2), F) > cosine(title_only, title_only + 2 * F, F) + 0.1);
    ck_assert(cosine(ROW(4), ROW(5), F) < 0.5); /* item 4 has only its tag "sweets" */
    enc_free(&m);
    free(title_only);
#undef ROW
}
END_TEST

START_TEST(text_errors)
{
    setup_engine();
    const tema_plugin *p = find_encoder("text");
    enc_model m;
    tema_err err = {0};
    /* title+tags without tags */
    ck_assert_int_eq(enc_build(&m, p, "input: title+tags\n", false, g_titles, 3, &err), TEMA_EINVAL);
    ck_assert_msg(strstr(err.msg, "configures no tags") && strstr(err.msg, "hint"), "%s", err.msg);
    /* no titles at all */
    static const char *const none[NI] = {0};
    ck_assert_int_eq(enc_build(&m, p, NULL, false, none, 3, &err), TEMA_EUNSUPPORTED);
    ck_assert_msg(strstr(err.msg, "no item has a title") && strstr(err.msg, "features"), "%s", err.msg);
    /* a file of the wrong length names the file and the item count */
    const char *bad = write_valid("short_text.npy", NI - 1, 4);
    char extra[600];
    snprintf(extra, sizeof extra, "features: '%s'\n", bad);
    ck_assert_int_eq(enc_build(&m, p, extra, false, g_titles, 3, &err), TEMA_EINVAL);
    ck_assert_msg(strstr(err.msg, bad) && strstr(err.msg, "10 rows") && strstr(err.msg, "11 items"), "%s", err.msg);
    /* a file cannot be combined with title+tags */
    const char *good = write_valid("text.npy", NI, 4);
    snprintf(extra, sizeof extra, "features: '%s'\ninput: title+tags\n", good);
    ck_assert_int_eq(enc_build(&m, p, extra, true, g_titles, 3, &err), TEMA_EINVAL);
    ck_assert_msg(strstr(err.msg, "title+tags") && strstr(err.msg, "hint"), "%s", err.msg);
}
END_TEST

/* ---------------- image ---------------- */

/* `features` has no default, so `tema check` finds it missing, before any dataset is written,
 * at the encoder's line, and its help says what to do; an empty value and a file that is not
 * there still reach create(). */
START_TEST(image_needs_features)
{
    setup_engine();
    const tema_plugin *p = find_encoder("image");
    const char *exp = tmp_file("image_without_features.yaml");
    tu_write(exp, "name: img\ndataset: {path: synthetic}\nmodel:\n  encoders:\n    - {plugin: id}\n"
                  "    - {plugin: image, dim: 4}\n");
    tema_cfg *resolved = NULL;
    tema_err err = {0};
    ck_assert_int_eq(tema_cfg_resolve(exp, NULL, 0, g_reg, NULL, &resolved, &err), TEMA_EINVAL);
    ck_assert_ptr_null(resolved);
    char where[600];
    snprintf(where, sizeof where, "%s:6:7: model.encoders.1: missing required option 'features' of encoder plugin "
                                  "'image'", exp);
    ck_assert_msg(strstr(err.msg, where) && strstr(err.msg, ".npy of CLIP image features") &&
                      strstr(err.msg, "remove the image encoder from model.encoders"),
                  "%s", err.msg);
    enc_model m;
    ck_assert_int_eq(enc_build(&m, p, "features: ''\n", false, g_titles, 3, &err), TEMA_EUNSUPPORTED);
    ck_assert_msg(strstr(err.msg, "needs features") && strstr(err.msg, "ship no images") &&
                      strstr(err.msg, "hint: remove the image encoder from model.encoders") &&
                      strstr(err.msg, ".npy"),
                  "%s", err.msg);
    const char *absent = tmp_file("no_such_images.npy");
    char extra[600];
    snprintf(extra, sizeof extra, "features: '%s'\n", absent);
    ck_assert_int_eq(enc_build(&m, p, extra, false, g_titles, 3, &err), TEMA_ENOTFOUND);
    ck_assert_msg(strstr(err.msg, "needs features") && strstr(err.msg, absent) &&
                      strstr(err.msg, "remove the image encoder from model.encoders"),
                  "%s", err.msg);
}
END_TEST

/* Features of denormal size (1e-45) still normalise to unit rows: 1/|x| overflows a float. */
START_TEST(tiny_features_normalise_to_unit_rows)
{
    setup_engine();
    const tema_plugin *p = find_encoder("image");
    const int F = 4;
    float *d = malloc((size_t)(NI * F) * sizeof *d);
    for (int i = 0; i < NI * F; i++) d[i] = 1e-45f;
    char shape[64];
    snprintf(shape, sizeof shape, "(%d, %d)", NI, F);
    const char *path = tmp_file("tiny.npy");
    write_npy(path, "\x93NUMPY", 1, "<f4", "False", shape, d, (size_t)(NI * F) * sizeof *d);
    free(d);
    char extra[700];
    snprintf(extra, sizeof extra, "features: '%s'\ndim: 3\nnormalize: true\n", path);
    enc_model m;
    tema_err err = {0};
    ck_assert_msg(enc_build(&m, p, extra, false, g_titles, 9, &err) == TEMA_OK, "%s", err.msg);
    tema_tensor *f = param_named(m.params, "encoder.image.features");
    ck_assert_ptr_nonnull(f);
    for (int r = 0; r < NI; r++) {
        double ss = 0;
        for (int c = 0; c < F; c++) ss += (double)f->data[r * F + c] * f->data[r * F + c];
        ck_assert_msg(fabs(ss - 1.0) < 1e-5, "row %d: squared norm %g", r, ss);
    }
    tema_tensor *items = enc_forward(&m);
    for (int i = 0; i < NI * 3; i++) ck_assert(isfinite(items->data[i]));
    enc_free(&m);
}
END_TEST

START_TEST(image_projects_normalised_features)
{
    setup_engine();
    const tema_plugin *p = find_encoder("image");
    const int F = 5, D = 3;
    const char *path = write_valid("img.npy", NI, F);
    for (int normalize = 0; normalize < 2; normalize++) {
        char extra[700];
        snprintf(extra, sizeof extra, "features: '%s'\ndim: %d\nbias: true\nnormalize: %s\n", path, D,
                 normalize ? "true" : "false");
        enc_model m;
        tema_err err = {0};
        ck_assert_msg(enc_build(&m, p, extra, false, g_titles, 9, &err) == TEMA_OK, "%s", err.msg);
        ck_assert_int_eq(tema_params_count(m.params), D * F + D); /* projection and bias only */
        tema_tensor *w = param_named(m.params, "encoder.image.proj.weight");
        tema_tensor *b = param_named(m.params, "encoder.image.proj.bias");
        ck_assert_ptr_nonnull(w);
        ck_assert_ptr_nonnull(b);
        for (int j = 0; j < D; j++) b->data[j] = 0.25f * (float)(j + 1);
        tema_tensor *items = enc_forward(&m);
        for (int r = 0; r < NI; r++) {
            double v[5], ss = 0;
            for (int c = 0; c < F; c++) v[c] = (double)(0.1f * (float)(r + 1) - 0.05f * (float)c), ss += v[c] * v[c];
            for (int c = 0; c < F; c++) v[c] /= normalize ? sqrt(ss) : 1.0;
            for (int j = 0; j < D; j++) {
                double want = b->data[j];
                for (int c = 0; c < F; c++) want += v[c] * w->data[j * F + c];
                ck_assert_msg(fabs(items->data[r * D + j] - want) < 1e-5, "row %d col %d: %g vs %g", r, j,
                              items->data[r * D + j], want);
            }
        }
        enc_free(&m);
    }
}
END_TEST

/* ---------------- tag ---------------- */

START_TEST(tag_values_by_hand)
{
    setup_engine();
    const tema_plugin *p = find_encoder("tag");
    const char *variants[4] = {"method: dense\n", "method: padded\n", "method: dense\nuntagged: learned\n",
                               "method: padded\nuntagged: learned\n"};
    float *ref = NULL;
    for (int v = 0; v < 4; v++) {
        const bool learned = v >= 2;
        char extra[200];
        snprintf(extra, sizeof extra, "dim: 4\n%s", variants[v]);
        enc_model m;
        tema_err err = {0};
        ck_assert_msg(enc_build(&m, p, extra, true, g_titles, 8, &err) == TEMA_OK, "%s: %s", variants[v], err.msg);
        tema_tensor *table = param_named(m.params, "encoder.tag.table");
        ck_assert_ptr_nonnull(table);
        ck_assert_int_eq(table->shape[0], NTAGS + (learned ? 1 : 0));
        ck_assert_int_eq(tema_params_count(m.params), table->size); /* only the table learns */
        /* a table we can compute with by hand */
        for (int64_t i = 0; i < table->size; i++) table->data[i] = (float)(i % 7) - 2.5f + 0.125f * (float)(i / 7);
        tema_tensor *items = enc_forward(&m);
        for (int i = 0; i < NI; i++)
            for (int d = 0; d < 4; d++) {
                double want = 0;
                for (int64_t k = g_off[i]; k < g_off[i + 1]; k++) want += g_score[k] * table->data[g_tag[k] * 4 + d];
                if (learned && g_off[i + 1] == g_off[i]) want = table->data[NTAGS * 4 + d];
                ck_assert_msg(fabs(items->data[i * 4 + d] - want) < 1e-5, "%s item %d dim %d: %g vs %g", variants[v], i,
                              d, items->data[i * 4 + d], want);
            }
        /* e.g. item 0 = 0.6 E[green tea] + 0.4 E[hot beverage]; untagged items 5, 10 */
        if (!learned) {
            for (int d = 0; d < 4; d++) ck_assert_float_eq(items->data[5 * 4 + d], 0.0f);
            if (!ref) {
                ref = malloc((size_t)items->size * sizeof *ref);
                memcpy(ref, items->data, (size_t)items->size * sizeof *ref);
            } else {
                for (int64_t i = 0; i < items->size; i++) ck_assert_float_eq_tol(items->data[i], ref[i], 1e-6f);
            }
        }
        check_gradients(&m, variants[v]);
        enc_free(&m);
    }
    free(ref);
}
END_TEST

START_TEST(tag_needs_tags)
{
    setup_engine();
    enc_model m;
    tema_err err = {0};
    ck_assert_int_eq(enc_build(&m, find_encoder("tag"), NULL, false, g_titles, 3, &err), TEMA_EUNSUPPORTED);
    ck_assert_msg(strstr(err.msg, "no tags") && strstr(err.msg, "hint") && strstr(err.msg, "model.encoders"), "%s",
                  err.msg);
    /* a host of ABI 1.0 (shorter model info) has no tags either */
    tema_params *params = tema_params_new(1);
    tema_model_info info = make_info(params, true, g_titles);
    info.struct_size = (uint32_t)offsetof(tema_model_info, n_tags);
    const tema_plugin *p = find_encoder("tag");
    tema_cfg *opts = tu_plugin_opts(p, NULL);
    void *self = NULL;
    ck_assert_int_eq(((const tema_encoder_ops *)p->ops)->create(&info, opts, &self, &err), TEMA_EUNSUPPORTED);
    tema_cfg_free(opts);
    tema_params_free(params);
}
END_TEST

/* ---------------- real titles ---------------- */

/* Titles of items.tsv (column 4), global order; caller frees. */
static char **read_titles(const char *dir, int64_t *n, int64_t *n_x)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/items.tsv", dir);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char *line = NULL;
    size_t cap = 0;
    int64_t k = 0, size = 1024;
    char **t = malloc((size_t)size * sizeof *t);
    ck_assert(getline(&line, &cap, f) > 0); /* header */
    while (getline(&line, &cap, f) > 0) {
        char *c = line;
        *n_x += strchr(line, '\t') && strchr(line, '\t')[1] == 'X';
        for (int col = 0; col < 3 && c; col++) c = strchr(c, '\t') ? strchr(c, '\t') + 1 : NULL;
        ck_assert_ptr_nonnull(c);
        char *end = strchr(c, '\t');
        if (end) *end = '\0';
        if (k == size) t = realloc(t, (size_t)(size *= 2) * sizeof *t);
        t[k++] = *c ? strdup(c) : NULL;
    }
    free(line);
    fclose(f);
    *n = k;
    return t;
}

static char **g_sort_titles;
static int cmp_by_title(const void *a, const void *b)
{
    const char *x = g_sort_titles[*(const int64_t *)a], *y = g_sort_titles[*(const int64_t *)b];
    if (!x || !y) return (x != NULL) - (y != NULL);
    return strcmp(x, y);
}

START_TEST(text_features_on_food_kitchen)
{
    TU_REQUIRE_DATA("food-kitchen");
    setup_engine();
    int64_t n = 0, n_x = 0;
    char **titles = read_titles(tu_data_path("food-kitchen"), &n, &n_x);
    ck_assert_int_gt(n, 30000);
    ck_assert(n_x > 0 && n_x < n);
    const tema_plugin *p = find_encoder("text");
    tema_params *params = tema_params_new(1);
    tema_model_info info = {.struct_size = sizeof info, .n_x = (int32_t)n_x, .n_y = (int32_t)(n - n_x),
                            .max_len = 4, .titles = (const char *const *)titles, .params = params,
                            .host = tema_host_get()};
    tema_cfg *opts = tu_plugin_opts(p, "dim: 4\n");
    void *self = NULL;
    tema_err err = {0};
    const double t0 = omp_get_wtime();
    ck_assert_msg(((const tema_encoder_ops *)p->ops)->create(&info, opts, &self, &err) == TEMA_OK, "%s", err.msg);
    fprintf(stderr, "text features for %lld food-kitchen titles: %.2f s (1 thread)\n", (long long)n,
            omp_get_wtime() - t0);
    ck_assert_msg(tema_params_finalize(params, &err) == TEMA_OK, "%s", err.msg);
    const tema_tensor *f = param_named(params, "encoder.text.title.features");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(f->shape[1], 512);
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(fabs(norm(f->data + i * 512, 512) - (titles[i] ? 1.0 : 0.0)) < 1e-4, "item %lld", (long long)i);
    /* every pair of items with the same title has the same features */
    int64_t *order = malloc((size_t)n * sizeof *order), n_same = 0;
    for (int64_t i = 0; i < n; i++) order[i] = i;
    g_sort_titles = titles;
    qsort(order, (size_t)n, sizeof *order, cmp_by_title);
    for (int64_t k = 1; k < n; k++) {
        const int64_t a = order[k - 1], b = order[k];
        if (!titles[a] || !titles[b] || strcmp(titles[a], titles[b]) != 0) continue;
        n_same++;
        ck_assert_msg(memcmp(f->data + a * 512, f->data + b * 512, 512 * sizeof(float)) == 0,
                      "items %lld and %lld share a title but not their features", (long long)a, (long long)b);
    }
    free(order);
    /* items.tsv lists a brand's products together: neighbours are closer than random pairs */
    double near = 0, far = 0;
    for (int64_t i = 1; i < 2000; i++) {
        near += cosine(f->data + i * 512, f->data + (i - 1) * 512, 512);
        far += cosine(f->data + i * 512, f->data + ((i * 7919) % n) * 512, 512);
    }
    fprintf(stderr, "mean cosine of neighbouring items %.3f, of random pairs %.3f; %lld pairs of equal titles\n",
            near / 1999, far / 1999, (long long)n_same);
    ck_assert(near > far + 0.05 * 1999);
    ((const tema_encoder_ops *)p->ops)->destroy(self);
    tema_cfg_free(opts);
    tema_params_free(params);
    for (int64_t i = 0; i < n; i++) free(titles[i]);
    free(titles);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("encoders");
    TCase *npy = tcase_create("npy");
    tcase_add_test(npy, npy_reads_valid_files);
    tcase_add_test(npy, npy_rejects_bad_files);
    suite_add_tcase(s, npy);
    TCase *conf = tcase_create("conformance");
    tcase_add_test(conf, every_encoder_conforms);
    suite_add_tcase(s, conf);
    TCase *text = tcase_create("text");
    tcase_add_test(text, text_builtin_features);
    tcase_add_test(text, text_errors);
    tcase_add_test(text, text_features_on_food_kitchen);
    suite_add_tcase(s, text);
    TCase *image = tcase_create("image");
    tcase_add_test(image, image_needs_features);
    tcase_add_test(image, image_projects_normalised_features);
    tcase_add_test(image, tiny_features_normalise_to_unit_rows);
    suite_add_tcase(s, image);
    TCase *tag = tcase_create("tag");
    tcase_add_test(tag, tag_values_by_hand);
    tcase_add_test(tag, tag_needs_tags);
    suite_add_tcase(s, tag);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
