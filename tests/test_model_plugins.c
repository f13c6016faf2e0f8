/* tests/test_model_plugins.c - conformance of every model plugin in the build's plugin
 * folder: one suite per kind (encoder, attention, loss), each looping over all plugins of
 * that kind that the registry finds, so a new plugin is checked by adding its .so. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "host.h"
#include "engine.h"
#include "registry.h"
#include "testutil.h"

#define NX 5
#define NY 4
#define NI (NX + NY)
#define LMAX 6

static tema_registry *g_reg;
static int64_t g_counts[NI] = {3, 0, 7, 1, 1, 2, 9, 0, 4};
static const char *const g_titles[NI] = {0};

static void setup_engine(void) { g_reg = tu_cpu_registry(); }


/* a tiny training split (ABI 1.6), for models built on it (c2dsr's item graph) */
static const int64_t g_train_off[4] = {0, 4, 10, 14};
static const int32_t g_train_items[14] = {2, 6, 1, 7, 0, 5, 3, 8, 4, 7, 1, 1, 6, 2};

static tema_model_info make_info(tema_params *params)
{
    return (tema_model_info){.struct_size = sizeof(tema_model_info), .n_x = NX, .n_y = NY, .max_len = LMAX,
                             .train_counts = g_counts, .titles = g_titles, .seed = 11, .params = params,
                             .host = tema_host_get(), .n_train_lines = 3, .train_off = g_train_off,
                             .train_items = g_train_items};
}

static int count_kind(tema_kind kind)
{
    int n = 0;
    for (size_t i = 0; i < tema_registry_count(g_reg); i++)
        if (tema_registry_at(g_reg, i)->plugin->kind == kind) n++;
    return n;
}

static bool all_finite(const tema_tensor *t)
{
    for (int64_t i = 0; i < t->size; i++)
        if (!isfinite(t->data[i])) return false;
    return true;
}

/* ---------------- encoders ---------------- */

START_TEST(encoders_give_item_tables)
{
    setup_engine();
    ck_assert_int_ge(count_kind(TEMA_KIND_ENCODER), 1);
    for (size_t i = 0; i < tema_registry_count(g_reg); i++) {
        const tema_plugin *p = tema_registry_at(g_reg, i)->plugin;
        if (p->kind != TEMA_KIND_ENCODER) continue;
        if (tu_required_option(p)) { /* e.g. image's features file, which this tiny model lacks */
            tu_skip("encoder", "%s: option '%s' has no default", p->name, tu_required_option(p));
            continue;
        }
        const tema_encoder_ops *ops = p->ops;
        tema_params *params = tema_params_new(1);
        tema_model_info info = make_info(params);
        tema_cfg *opts = tu_plugin_opts(p, NULL);
        void *self = NULL;
        tema_err err = {0};
        tema_status st = ops->create(&info, opts, &self, &err);
        if (st == TEMA_EUNSUPPORTED) { /* e.g. needs titles or features this tiny model lacks */
            tu_skip("encoder", "%s: %s", p->name, err.msg);
            tema_cfg_free(opts);
            tema_params_free(params);
            continue;
        }
        ck_assert_msg(st == TEMA_OK, "encoder %s: %s", p->name, err.msg);
        ck_assert_msg(tema_params_finalize(params, &err) == TEMA_OK, "encoder %s: %s", p->name, err.msg);
        ck_assert_ptr_nonnull(ops->modality(self));
        tema_graph *g = tema_graph_new(3);
        tema_graph_reset(g, false, 0);
        tema_tensor *items = NULL;
        ck_assert_msg(ops->forward(self, g, &items, &err) == TEMA_OK, "encoder %s: %s", p->name, err.msg);
        ck_assert_ptr_nonnull(items);
        ck_assert_int_eq(items->ndim, 2);
        ck_assert_int_eq(items->shape[0], NI);
        ck_assert_int_eq(items->shape[1], ops->dim(self));
        ck_assert_msg(all_finite(items), "encoder %s: non-finite embedding", p->name);
        tema_graph_free(g);
        ops->destroy(self);
        tema_cfg_free(opts);
        tema_params_free(params);
    }
}
END_TEST

START_TEST(id_encoder_uses_dim_option)
{
    setup_engine();
    const tema_plugin *p = tema_registry_find(g_reg, TEMA_KIND_ENCODER, "id");
    ck_assert_ptr_nonnull(p);
    const tema_encoder_ops *ops = p->ops;
    tema_params *params = tema_params_new(1);
    tema_model_info info = make_info(params);
    tema_cfg *opts = tu_plugin_opts(p, "dim: 12\n");
    void *self = NULL;
    tema_err err = {0};
    ck_assert_int_eq(ops->create(&info, opts, &self, &err), TEMA_OK);
    ck_assert_int_eq(ops->dim(self), 12);
    ck_assert_str_eq(ops->modality(self), "id");
    ck_assert_int_eq(tema_params_count(params), NI * 12);
    ops->destroy(self);
    tema_cfg_free(opts);
    tema_params_free(params);
}
END_TEST

/* ---------------- attention ---------------- */

enum { B = 3, L = LMAX };
/* row 0: short history; row 1: padding only; row 2: full */
static const int32_t g_seq[B * L] = {-1, -1, -1, 2, 6, 1, -1, -1, -1, -1, -1, -1, 0, 5, 3, 8, 4, 7};

static void split_domains(const int32_t *seq, int32_t *sx, int32_t *sy)
{
    for (int b = 0; b < B; b++) {
        int px = L, py = L;
        for (int p = 0; p < L; p++) sx[b * L + p] = sy[b * L + p] = -1;
        for (int p = L - 1; p >= 0; p--) {
            int32_t v = seq[b * L + p];
            if (v < 0) continue;
            if (v < NX) sx[b * L + --px] = v;
            else sy[b * L + --py] = v;
        }
    }
}

typedef struct att_model {
    const tema_encoder_ops *enc_ops;
    void *enc;
    const tema_attention_ops *ops;
    void *self;
    tema_params *params;
    tema_graph *g;
} att_model;

/* Returns false (and prints why) when the plugin cannot run on this tiny model. */
static bool att_build(att_model *m, const tema_plugin *p)
{
    const tema_plugin *id = tema_registry_find(g_reg, TEMA_KIND_ENCODER, "id");
    ck_assert_ptr_nonnull(id);
    m->enc_ops = id->ops;
    m->ops = p->ops;
    m->params = tema_params_new(5);
    tema_model_info info = make_info(m->params);
    tema_cfg *eo = tu_plugin_opts(id, "dim: 8\n");
    tema_cfg *ao = tu_plugin_opts(p, NULL);
    tema_err err = {0};
    ck_assert_msg(m->enc_ops->create(&info, eo, &m->enc, &err) == TEMA_OK, "%s", err.msg);
    int64_t dims[1] = {m->enc_ops->dim(m->enc)};
    const char *mods[1] = {m->enc_ops->modality(m->enc)};
    tema_status st = m->ops->create(&info, ao, dims, mods, 1, &m->self, &err);
    tema_cfg_free(eo);
    tema_cfg_free(ao);
    if (st == TEMA_EUNSUPPORTED) {
        tu_skip("attention", "%s with one id encoder: %s", p->name, err.msg);
        m->enc_ops->destroy(m->enc);
        tema_params_free(m->params);
        return false;
    }
    ck_assert_msg(st == TEMA_OK, "attention %s: %s", p->name, err.msg);
    ck_assert_msg(tema_params_finalize(m->params, &err) == TEMA_OK, "attention %s: %s", p->name, err.msg);
    m->g = tema_graph_new(9);
    return true;
}

static void att_free(att_model *m)
{
    tema_graph_free(m->g);
    m->ops->destroy(m->self);
    m->enc_ops->destroy(m->enc);
    tema_params_free(m->params);
}

static int att_run(att_model *m, const tema_plugin *p, const int32_t *seq, tema_stream *streams)
{
    int32_t sx[B * L], sy[B * L];
    split_domains(seq, sx, sy);
    tema_batch b = {.struct_size = sizeof b, .B = B, .L = L, .seq = seq, .seq_x = sx, .seq_y = sy};
    tema_tensor *items = NULL;
    tema_err err = {0};
    tema_graph_reset(m->g, false, 0);
    ck_assert_int_eq(m->enc_ops->forward(m->enc, m->g, &items, &err), TEMA_OK);
    int n = 0;
    ck_assert_msg(m->ops->forward(m->self, m->g, &b, &items, 1, streams, &n, &err) == TEMA_OK, "attention %s: %s",
                  p->name, err.msg);
    ck_assert_msg(n >= 1 && n <= TEMA_MAX_STREAMS, "attention %s: %d streams", p->name, n);
    return n;
}

START_TEST(attention_streams_shapes_padding_causality)
{
    setup_engine();
    ck_assert_int_ge(count_kind(TEMA_KIND_ATTENTION), 1);
    for (size_t i = 0; i < tema_registry_count(g_reg); i++) {
        const tema_plugin *p = tema_registry_at(g_reg, i)->plugin;
        if (p->kind != TEMA_KIND_ATTENTION) continue;
        att_model m = {0};
        if (!att_build(&m, p)) continue;
        tema_stream s1[TEMA_MAX_STREAMS], s2[TEMA_MAX_STREAMS];
        int n = att_run(&m, p, g_seq, s1);
        /* copy the first run's states before the graph is reset */
        float *h1[TEMA_MAX_STREAMS];
        for (int k = 0; k < n; k++) {
            const tema_stream *s = &s1[k];
            ck_assert_int_eq(s->h->ndim, 2);
            ck_assert_int_eq(s->items->ndim, 2);
            ck_assert_int_eq(s->h->shape[0], B * L);
            ck_assert_int_eq(s->items->shape[0], NI);
            ck_assert_int_eq(s->h->shape[1], s->items->shape[1]);
            ck_assert_msg(s->weight > 0 && isfinite(s->weight), "attention %s: stream weight %g", p->name, s->weight);
            ck_assert_msg(s->inv_temp > 0 && isfinite(s->inv_temp), "attention %s: inv_temp", p->name);
            /* padding-only row 1 included */
            ck_assert_msg(all_finite(s->h), "attention %s stream %d: non-finite state", p->name, k);
            ck_assert_msg(all_finite(s->items), "attention %s stream %d: non-finite items", p->name, k);
            h1[k] = malloc((size_t)s->h->size * sizeof(float));
            memcpy(h1[k], s->h->data, (size_t)s->h->size * sizeof(float));
        }
        /* change the last item of rows 0 and 2: earlier positions must not move */
        int32_t seq2[B * L];
        memcpy(seq2, g_seq, sizeof seq2);
        seq2[0 * L + L - 1] = 8;
        seq2[2 * L + L - 1] = 2;
        int n2 = att_run(&m, p, seq2, s2);
        ck_assert_int_eq(n2, n);
        for (int k = 0; k < n; k++) {
            int64_t d = s2[k].h->shape[1];
            for (int b = 0; b < B; b++)
                for (int pos = 0; pos < L - 1; pos++)
                    for (int64_t j = 0; j < d; j++) {
                        float a = h1[k][(b * L + pos) * d + j], c = s2[k].h->data[(b * L + pos) * d + j];
                        ck_assert_msg(fabsf(a - c) <= 1e-5f * (1 + fabsf(a)),
                                      "attention %s stream %d: position %d of row %d changed (%g -> %g) when only "
                                      "the last item changed: not causal",
                                      p->name, k, pos, b, a, c);
                    }
            free(h1[k]);
        }
        att_free(&m);
    }
}
END_TEST

START_TEST(pop_ranks_by_training_count)
{
    setup_engine();
    const tema_plugin *p = tema_registry_find(g_reg, TEMA_KIND_ATTENTION, "pop");
    ck_assert_ptr_nonnull(p);
    att_model m = {0};
    ck_assert(att_build(&m, p));
    tema_stream s[TEMA_MAX_STREAMS];
    int n = att_run(&m, p, g_seq, s);
    ck_assert_int_eq(n, 1);
    for (int a = 0; a < NI; a++)
        for (int b = 0; b < NI; b++) {
            float sa = 0, sb = 0;
            for (int64_t j = 0; j < s[0].items->shape[1]; j++) {
                sa += s[0].h->data[j] * s[0].items->data[a * s[0].items->shape[1] + j];
                sb += s[0].h->data[j] * s[0].items->data[b * s[0].items->shape[1] + j];
            }
            if (g_counts[a] > g_counts[b]) ck_assert_msg(sa > sb, "pop: item %d (count %lld) not above item %d", a,
                                                         (long long)g_counts[a], b);
            if (g_counts[a] == g_counts[b]) ck_assert_float_eq(sa, sb);
        }
    ck_assert_int_eq(tema_params_count(m.params) - NI * 8, 0); /* only the id encoder learns */
    att_free(&m);
}
END_TEST

/* ---------------- losses ---------------- */

enum { LR = 6, LD = 4 };
static const int32_t g_rows[LR] = {0, 1, 3, 4, 5, 2};
static const int32_t g_tgt[LR] = {2, 7, 0, 5, 4, 8};
static float g_w[LR] = {1, 0.5f, 2, 1, 1, 1.5f};

typedef struct loss_fixture {
    tema_params *params;
    tema_tensor *h, *items, *h2;
    tema_graph *g;
    const tema_loss_ops *ops;
    void *self;
    int n_streams;
    int32_t lo[LR], hi[LR];
} loss_fixture;

static void loss_build(loss_fixture *f, const tema_plugin *p, const char *extra, int n_streams)
{
    f->params = tema_params_new(21);
    tema_model_info info = make_info(f->params);
    const tema_nn_api *nn = tema_nn();
    int64_t hs[2] = {LR, LD}, is[2] = {NI, LD};
    f->h = nn->param(f->params, "test.h", 2, hs, TEMA_INIT_NORMAL, 1.0f, 0);
    f->h2 = nn->param(f->params, "test.h2", 2, hs, TEMA_INIT_NORMAL, 1.0f, 0);
    f->items = nn->param(f->params, "test.items", 2, is, TEMA_INIT_NORMAL, 1.0f, 0);
    f->ops = p->ops;
    f->n_streams = n_streams;
    tema_cfg *o = tu_plugin_opts(p, extra);
    tema_err err = {0};
    ck_assert_msg(f->ops->create(&info, o, &f->self, &err) == TEMA_OK, "loss %s: %s", p->name, err.msg);
    tema_cfg_free(o);
    ck_assert_msg(tema_params_finalize(f->params, &err) == TEMA_OK, "%s", err.msg);
    f->g = tema_graph_new(4);
    for (int r = 0; r < LR; r++) {
        f->lo[r] = g_tgt[r] < NX ? 0 : NX;
        f->hi[r] = g_tgt[r] < NX ? NX : NI;
    }
}

static void loss_free(loss_fixture *f)
{
    tema_graph_free(f->g);
    f->ops->destroy(f->self);
    tema_params_free(f->params);
}

/* 1 stream; 2 streams mixed in one group (both over the merged sequence); 3 streams: that
 * group plus a second one over S^X, the groups weighed by g_sw by the target's domain. */
static void make_streams(loss_fixture *f, tema_stream *s)
{
    s[0] = (tema_stream){.h = f->h, .items = f->items, .weight = f->n_streams > 1 ? 0.3f : 1.0f, .inv_temp = 1.0f};
    s[1] = (tema_stream){.h = f->h2, .items = f->items, .weight = 0.7f, .inv_temp = 0.5f, .sequence = TEMA_SEQ_MERGED};
    s[2] = (tema_stream){.h = f->h, .items = f->items, .weight = 2.0f, .inv_temp = 2.0f, .sequence = TEMA_SEQ_X};
}
static const float g_sw[2][3] = {{0.1f, 1.0f, 0.3f}, {0.1f, 0.3f, 1.0f}}; /* [domain][merged, X, Y] */

static double loss_eval(loss_fixture *f, bool backward)
{
    tema_stream s[3];
    make_streams(f, s);
    tema_targets t = {.struct_size = sizeof t, .rows = LR, .row_index = g_rows, .target = g_tgt, .lo = f->lo,
                      .hi = f->hi, .weight = g_w, .seed = 77};
    memcpy(t.seq_weight, g_sw, sizeof g_sw);
    tema_tensor *loss = NULL;
    tema_err err = {0};
    tema_graph_reset(f->g, true, 1);
    ck_assert_msg(f->ops->forward(f->self, f->g, s, f->n_streams, &t, &loss, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_ptr_nonnull(loss);
    ck_assert_int_eq(loss->size, 1);
    double v = loss->data[0];
    if (backward) {
        tema_params_zero_grad(f->params);
        ck_assert_msg(tema_graph_backward(f->g, loss, &err) == TEMA_OK, "%s", err.msg);
    }
    return v;
}

/* Central differences on every entry of h, h2 and items. */
static void check_gradient(loss_fixture *f, const char *name)
{
    double l0 = loss_eval(f, true);
    ck_assert_msg(isfinite(l0) && l0 > 0, "loss %s: value %g", name, l0);
    tema_tensor *ts[3] = {f->h, f->h2, f->items};
    int nt = f->n_streams > 1 ? 3 : 2;
    if (nt == 2) ts[1] = f->items;
    float *grads[3];
    for (int k = 0; k < nt; k++) {
        grads[k] = malloc((size_t)ts[k]->size * sizeof(float));
        memcpy(grads[k], ts[k]->grad, (size_t)ts[k]->size * sizeof(float));
    }
    const float eps = 1e-2f;
    for (int k = 0; k < nt; k++)
        for (int64_t i = 0; i < ts[k]->size; i++) {
            float keep = ts[k]->data[i];
            ts[k]->data[i] = keep + eps;
            double up = loss_eval(f, false);
            ts[k]->data[i] = keep - eps;
            double down = loss_eval(f, false);
            ts[k]->data[i] = keep;
            double fd = (up - down) / (2 * eps), an = grads[k][i];
            ck_assert_msg(fabs(fd - an) <= 2e-3 + 2e-2 * fabs(fd),
                          "loss %s: d/d%s[%lld] analytic %.6f vs finite difference %.6f", name, ts[k]->name,
                          (long long)i, an, fd);
        }
    for (int k = 0; k < nt; k++) free(grads[k]);
}

START_TEST(losses_finite_and_gradients_match)
{
    setup_engine();
    ck_assert_int_ge(count_kind(TEMA_KIND_LOSS), 1);
    for (size_t i = 0; i < tema_registry_count(g_reg); i++) {
        const tema_plugin *p = tema_registry_at(g_reg, i)->plugin;
        if (p->kind != TEMA_KIND_LOSS) continue;
        for (int ns = 1; ns <= 3; ns++) {
            loss_fixture f = {0};
            loss_build(&f, p, NULL, ns);
            check_gradient(&f, p->name);
            /* same inputs, same seed: same value */
            ck_assert_double_eq(loss_eval(&f, false), loss_eval(&f, false));
            loss_free(&f);
        }
    }
}
END_TEST

/* Reference, in double: sum_r w_r sum_g sw[D_r][g] * -log sum_{k in g} (w_k / W_g) softmax_k(t_r)
 * / sum_r w_r, groups g = the streams' sequences (one stream or one group: plain mixture NLL). */
static double reference_loss(loss_fixture *f)
{
    tema_stream s[3];
    make_streams(f, s);
    double num = 0, den = 0;
    for (int r = 0; r < LR; r++) {
        const int dom = g_tgt[r] < NX ? 0 : 1;
        for (int grp = 0; grp < 3; grp++) {
            double p = 0, wg = 0;
            for (int k = 0; k < f->n_streams; k++) {
                if ((int)s[k].sequence != grp) continue;
                const float *h = s[k].h->data + g_rows[r] * LD;
                double mx = -INFINITY, z[NI];
                for (int j = f->lo[r]; j < f->hi[r]; j++) {
                    z[j] = 0;
                    for (int d = 0; d < LD; d++) z[j] += (double)h[d] * s[k].items->data[j * LD + d];
                    z[j] *= s[k].inv_temp;
                    mx = z[j] > mx ? z[j] : mx;
                }
                double sum = 0;
                for (int j = f->lo[r]; j < f->hi[r]; j++) sum += exp(z[j] - mx);
                p += s[k].weight * exp(z[g_tgt[r]] - mx) / sum;
                wg += s[k].weight;
            }
            if (wg > 0) num += g_w[r] * g_sw[dom][grp] * -log(p / wg);
        }
        den += g_w[r];
    }
    /* one group only: its sequence weight still applies, as in training */
    return num / den;
}

START_TEST(full_softmax_equals_plain_cross_entropy)
{
    setup_engine();
    const tema_plugin *p = tema_registry_find(g_reg, TEMA_KIND_LOSS, "full_softmax");
    ck_assert_ptr_nonnull(p);
    const char *chunks[2] = {NULL, "chunk: 2\n"}; /* 2 < domain size: several chunks per row */
    for (int c = 0; c < 2; c++)
        for (int ns = 1; ns <= 3; ns++) {
            loss_fixture f = {0};
            loss_build(&f, p, chunks[c], ns);
            double got = loss_eval(&f, false), want = reference_loss(&f);
            ck_assert_msg(fabs(got - want) <= 1e-5 * (1 + fabs(want)), "full_softmax (%s, %d streams): %.7f vs %.7f",
                          chunks[c] ? chunks[c] : "default chunk", ns, got, want);
            if (chunks[c]) check_gradient(&f, "full_softmax chunk 2");
            loss_free(&f);
        }
}
END_TEST

START_TEST(sampled_softmax_approaches_full_with_many_negatives)
{
    /* With the log-Q correction and many uniform draws, the sampled loss estimates the full
     * softmax loss; 20000 draws over 4-5 items leave a small bias only. */
    setup_engine();
    const tema_plugin *sp = tema_registry_find(g_reg, TEMA_KIND_LOSS, "sampled_softmax");
    ck_assert_ptr_nonnull(sp);
    const char *samplers[2] = {"negatives: 20000\nsampler: uniform\n", "negatives: 20000\nsampler: pop\n"};
    for (int k = 0; k < 2; k++) {
        loss_fixture f = {0};
        loss_build(&f, sp, samplers[k], 1);
        double got = loss_eval(&f, false), want = reference_loss(&f);
        ck_assert_msg(fabs(got - want) < 0.02 * (1 + want), "sampled_softmax (%s): %.5f vs full %.5f", samplers[k], got,
                      want);
        loss_free(&f);
    }
}
END_TEST

/* ---------------- options ---------------- */

/* p's declared options but `skip` (all of them when skip < 0), required ones as "". */
static tema_cfg *opts_without(const tema_plugin *p, int skip)
{
    char text[8192] = "";
    size_t k = 0;
    for (uint32_t i = 0; i < p->n_options; i++) {
        const tema_option *o = &p->options[i];
        if ((int)i == skip) continue;
        const char *v = o->default_value ? o->default_value : "\"\"";
        k += (size_t)snprintf(text + k, sizeof text - k, *v ? "%s: %s\n" : "%s: \"\"\n", o->name, v);
    }
    tema_cfg *c = NULL;
    tema_err err = {0};
    ck_assert_msg(tema_cfg_parse_string(k ? text : "{}\n", "<test>", &c, &err) == TEMA_OK, "%s", err.msg);
    return c;
}

static tema_status create_any(const tema_plugin *p, const tema_cfg *opts, tema_err *err)
{
    tema_params *params = tema_params_new(3);
    tema_model_info info = make_info(params);
    const int64_t dims[1] = {8};
    const char *mods[1] = {"id"};
    void *self = NULL;
    tema_status st;
    if (p->kind == TEMA_KIND_ENCODER) {
        const tema_encoder_ops *ops = p->ops;
        if ((st = ops->create(&info, opts, &self, err)) == TEMA_OK) ops->destroy(self);
    } else if (p->kind == TEMA_KIND_ATTENTION) {
        const tema_attention_ops *ops = p->ops;
        if ((st = ops->create(&info, opts, dims, mods, 1, &self, err)) == TEMA_OK) ops->destroy(self);
    } else {
        const tema_loss_ops *ops = p->ops;
        if ((st = ops->create(&info, opts, &self, err)) == TEMA_OK) ops->destroy(self);
    }
    tema_params_free(params);
    return st;
}

/* The core hands a plugin every declared option, defaults filled; one that is not there (a
 * name misspelt between the table and the code, options that skipped validation) is a bug the
 * plugin reports, never a value it makes up. Not read at create(): a loss's positions (the
 * trainer's) and text's extractor (read by the feature service, which these titleless items
 * never reach). */
START_TEST(missing_options_are_a_bug)
{
    setup_engine();
    int checked = 0;
    for (size_t i = 0; i < tema_registry_count(g_reg); i++) {
        const tema_plugin *p = tema_registry_at(g_reg, i)->plugin;
        if (p->kind != TEMA_KIND_ENCODER && p->kind != TEMA_KIND_ATTENTION && p->kind != TEMA_KIND_LOSS) continue;
        if (!p->n_options) continue;
        tema_err err = {0};
        ck_assert_int_eq(create_any(p, NULL, &err), TEMA_EINTERNAL);
        ck_assert_msg(strstr(err.msg, p->name) && strstr(err.msg, "without options") && strstr(err.msg, "a bug"),
                      "%s", err.msg);
        for (uint32_t k = 0; k < p->n_options; k++) {
            const char *name = p->options[k].name;
            tema_cfg *o = opts_without(p, (int)k);
            err = (tema_err){0};
            tema_status st = create_any(p, o, &err);
            tema_cfg_free(o);
            char want[160];
            snprintf(want, sizeof want, "option '%s' missing from the validated options", name);
            if (!strcmp(name, "positions") || !strcmp(name, "extractor")) continue;
            ck_assert_msg(st == TEMA_EINTERNAL && strstr(err.msg, p->name) && strstr(err.msg, want),
                          "%s without %s: status %d: %s", p->name, name, st, err.msg);
            checked++;
        }
    }
    ck_assert_int_ge(checked, 30);
}
END_TEST

/* heads that do not divide a stack's width, and SR-GNN, C2DSR or MAN given two encoders, are
 * found by `tema check` (the attention plugin's check, ABI 1.7), located at model.attention, before any data is
 * read; a grid names the entry. */
START_TEST(check_finds_heads_that_do_not_divide_the_width)
{
    const char *tmp = tu_tmpdir();
    char path[600], args[800];
    snprintf(path, sizeof path, "%s/h.yaml", tmp);
    snprintf(args, sizeof args, "check '%s'", path);
    const char *bad[] = {
        "  encoders: [{plugin: id, dim: 64}]\n  attention: {plugin: single, heads: 3}\n",
        "  encoders: [{plugin: id, dim: 64}, {plugin: text, dim: 30, extractor: hashed}]\n"
        "  attention: {plugin: multi, heads: 4}\n",
        "  encoders: [{plugin: id, dim: 64}]\n  attention: {plugin: fused, dim: 100, heads: 8}\n",
        "  encoders: [{plugin: id, dim: 64}, {plugin: text, dim: 64, extractor: hashed}]\n"
        "  attention: {plugin: srgnn}\n",
        "  encoders: [{plugin: id, dim: 64}, {plugin: text, dim: 64, extractor: hashed}]\n"
        "  attention: {plugin: c2dsr}\n",
        "  encoders: [{plugin: id, dim: 64}, {plugin: tag, dim: 64}]\n  attention: {plugin: man}\n",
    };
    const char *want[] = {"heads (3) must divide the width (64)", "heads (4) must divide the width (30)",
                          "heads (8) must divide the width (100)", "srgnn: needs exactly one encoder, got 2",
                          "c2dsr: takes exactly one encoder of modality id", "man: takes exactly one encoder of modality id"};
    for (int k = 0; k < 6; k++) {
        char text[1000];
        snprintf(text, sizeof text, "name: h\ndataset: {path: synthetic}\nmodel:\n%s", bad[k]);
        tu_write(path, text);
        char *out, *err;
        ck_assert_int_eq(tu_tema(args, &out, &err), 1);
        ck_assert_msg(strstr(err, "h.yaml:") && strstr(err, "model.attention: ") && strstr(err, want[k]), "case %d: %s",
                      k, err);
        free(out);
        free(err);
    }
    /* the same in a grid: only the entry that breaks it, named */
    tu_write(path, "name: h\ndataset: {path: synthetic}\nmodel:\n  encoders: [{plugin: id, dim: 64}]\n"
                   "  attention: {plugin: single}\ngrid:\n  model.attention.heads: [2, 4, 6]\n");
    char *out, *err;
    ck_assert_int_eq(tu_tema(args, &out, &err), 1);
    ck_assert_msg(strstr(err, "heads (6) must divide the width (64)") && strstr(err, "(grid entry 2)"), "%s", err);
    free(out);
    free(err);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("model_plugins");
    TCase *enc = tcase_create("encoder");
    tcase_add_test(enc, encoders_give_item_tables);
    tcase_add_test(enc, id_encoder_uses_dim_option);
    suite_add_tcase(s, enc);
    TCase *att = tcase_create("attention");
    tcase_add_test(att, attention_streams_shapes_padding_causality);
    tcase_add_test(att, check_finds_heads_that_do_not_divide_the_width);
    tcase_add_test(att, pop_ranks_by_training_count);
    suite_add_tcase(s, att);
    TCase *loss = tcase_create("loss");
    tcase_add_test(loss, losses_finite_and_gradients_match);
    tcase_add_test(loss, full_softmax_equals_plain_cross_entropy);
    tcase_add_test(loss, sampled_softmax_approaches_full_with_many_negatives);
    suite_add_tcase(s, loss);
    TCase *opt = tcase_create("options");
    tcase_add_test(opt, missing_options_are_a_bug);
    suite_add_tcase(s, opt);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
