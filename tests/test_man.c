/* tests/test_man.c - the MAN attention plugin (plugins/attention/man.c, compiled into this
 * suite so its static parts can be checked one by one): the per-domain layouts, pairs and
 * group masks, the stream's blocks, states equal to those of the official prefix samples,
 * gradients of the whole objective (stream + aux_loss) against finite differences, what
 * stop_gradient keeps out of the encoders, the disentangle term, configuration errors at
 * create() and at `tema check`, and end-to-end runs on seeded synthetic data (loss decreases,
 * bit-identical at one thread). */
#define TEMA_PLUGIN_STATIC_NAME tema_plugin_entry_test_man
#include "attention/man.c"

#include <json-c/json.h>

#include "config.h"
#include "engine.h"
#include "host.h"
#include "registry.h"
#include "testutil.h"

#define NX 5
#define NY 4
#define NI (NX + NY)
#define LMAX 6
#define DIM 4

static int64_t g_counts[NI] = {3, 0, 7, 1, 1, 2, 9, 0, 4};

static tema_model_info make_info(tema_params *params)
{
    return (tema_model_info){.struct_size = sizeof(tema_model_info), .n_x = NX, .n_y = NY, .max_len = LMAX,
                             .train_counts = g_counts, .seed = 3, .params = params, .host = tema_host_get()};
}

static void split_domains(const int32_t *seq, int B, int L, int32_t *sx, int32_t *sy)
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

/* ---------------- layouts, pairs, group masks ---------------- */

/* row 0: X 0 (p1), 1 (p3); Y 5 (p2), 6 (p4). row 1: X 2 3 4, no Y */
enum { PB = 2, PL = 5 };
static const int32_t g_pseq[PB * PL] = {-1, 0, 5, 1, 6, -1, -1, 2, 3, 4};

START_TEST(layouts_count_positions_from_the_oldest_and_pair_items_causally)
{
    man_model *a = calloc(1, sizeof *a);
    a->n_x = NX, a->n_y = NY, a->max_len = LMAX, a->groups = 2;
    int32_t sx[PB * PL], sy[PB * PL];
    split_domains(g_pseq, PB, PL, sx, sy);
    tema_batch b = {.struct_size = sizeof b, .B = PB, .L = PL, .seq = g_pseq, .seq_x = sx, .seq_y = sy};
    tema_err err = {0};
    for (int q = 0; q < 2; q++) ck_assert_msg(man_layout(a, &b, q, &err) == TEMA_OK, "%s", err.msg);
    const man_batch *x = &a->bat[MAN_X], *y = &a->bat[MAN_Y];
    ck_assert_int_eq(x->lay.Lc, 3);
    ck_assert_int_eq(y->lay.Lc, 2);
    static const int32_t ids_x[6] = {-1, 0, 1, 2, 3, 4}, pos_x[6] = {-1, 0, 1, 0, 1, 2};
    static const int32_t loc_y[4] = {0, 1, -1, -1}, pos_y[4] = {0, 1, -1, -1};
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(x->lay.ids[i], ids_x[i]);
        ck_assert_int_eq(x->ids_local[i], ids_x[i]);
        ck_assert_int_eq(x->lay.pos[i], pos_x[i]);
    }
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(y->ids_local[i], loc_y[i]);
        ck_assert_int_eq(y->lay.pos[i], pos_y[i]);
    }
    /* merged row -> the compact row of the last X item at or before it */
    static const int32_t row_x[PB * PL] = {-1, 1, 1, 2, 2, -1, -1, 3, 4, 5};
    for (int i = 0; i < PB * PL; i++) ck_assert_int_eq(x->lay.row[i], row_x[i]);
    /* pairs (k, q <= k): row 0 has 1 + 2, row 1 has 1 + 2 + 3 */
    ck_assert_int_eq(x->n_pairs, 9);
    ck_assert_int_eq(y->n_pairs, 3);
    /* prefix means: row 1, k = 2 (third item) averages its three items */
    for (int q = 0; q < 3; q++) ck_assert_float_eq_tol(x->mean[(3 + 2) * 3 + q], 1.0f / 3, 1e-7f);
    ck_assert_float_eq(x->mean[(0 + 2) * 3 + 0], 0.0f); /* row 0's padding column */
    ck_assert_float_eq_tol(x->mean[(0 + 2) * 3 + 1], 0.5f, 1e-7f);
    for (int64_t p = 0; p < x->n_pairs; p++) {
        const int32_t k = x->pair_query[p], kq = x->pair_key[p];
        ck_assert_int_eq(k / 3, kq / 3);
        ck_assert_int_le(kq, k);
        ck_assert_int_eq(x->cell_pair[k * 3 + kq % 3], (int32_t)p);
    }
    /* group construction: group g, prefix m reads keys q <= m with position <= g */
    struct { int r, g, m; uint8_t want[3]; } cases[] = {
        {1, 0, 2, {1, 0, 0}}, {1, 1, 2, {1, 1, 0}}, {1, 1, 1, {1, 1, 0}}, {0, 0, 2, {0, 1, 0}},
        {0, 1, 2, {0, 1, 1}}, {0, 1, 1, {0, 1, 0}}, {0, 1, 0, {0, 0, 0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int64_t row = ((int64_t)cases[c].r * 2 + cases[c].g) * 3 + cases[c].m;
        ck_assert_int_eq(x->group_row[row], cases[c].r * 2 + cases[c].g);
        ck_assert_int_eq(x->group_of[row], cases[c].g);
        for (int q = 0; q < 3; q++)
            ck_assert_msg(x->group_mask[row * 3 + q] == cases[c].want[q], "case %zu key %d: %d", c, q,
                          x->group_mask[row * 3 + q]);
    }
    man_destroy(a);
}
END_TEST

/* ---------------- a model ---------------- */

typedef struct model {
    const tema_attention_ops *ops;
    man_model *a;
    tema_params *params;
    tema_graph *g;
    tema_tensor *table; /* the id encoder's stand-in */
} model;

#define SMALL "groups: 3\nmlp_layers: [5]\natt_layers: [3]\nblocks: 1\nheads: 2\n"

static tema_status build(model *m, const char *extra, tema_err *err)
{
    tu_cpu_registry();
    memset(m, 0, sizeof *m);
    const tema_plugin *p = tema_plugin_entry_test_man(tema_host_get());
    m->ops = p->ops;
    m->params = tema_params_new(17);
    int64_t shape[2] = {NI, DIM}, dims[1] = {DIM};
    static const char *const mods[1] = {"id"};
    m->table = tema_nn()->param(m->params, "test.items", 2, shape, TEMA_INIT_NORMAL, 1.0f, 0);
    tema_model_info info = make_info(m->params);
    tema_cfg *o = tu_plugin_opts(p, extra);
    void *self = NULL;
    tema_status st = m->ops->create(&info, o, dims, mods, 1, &self, err);
    tema_cfg_free(o);
    if (st != TEMA_OK) {
        tema_params_free(m->params);
        m->params = NULL;
        return st;
    }
    m->a = self;
    ck_assert_msg(tema_params_finalize(m->params, err) == TEMA_OK, "%s", err->msg);
    m->g = tema_graph_new(5);
    return TEMA_OK;
}

static void release(model *m)
{
    if (!m->params) return;
    tema_graph_free(m->g);
    m->ops->destroy(m->a);
    tema_params_free(m->params);
}

/* Every parameter entry set from a fixed LCG, N(0, 1)-ish scaled by `scale`: a generic point,
 * away from the zero biases where relu has its kink for rows of zero features. */
static void scramble(tema_params *p, float scale)
{
    uint64_t s = 0x6d616e;
    for (size_t i = 0; i < tema_params_n(p); i++) {
        tema_tensor *t = tema_params_at(p, i);
        for (int64_t j = 0; j < t->size; j++) {
            float u = 0;
            for (int k = 0; k < 4; k++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                u += (float)((s >> 40) & 0xffffff) / 16777216.0f - 0.5f;
            }
            t->data[j] = scale * u * 1.7f;
        }
    }
}

/* rows: 0 short X/Y mix, 1 X only, 2 every slot */
enum { FB = 3, FL = LMAX };
static const int32_t g_fseq[FB * FL] = {-1, -1, 0, 5, 1, 6, -1, -1, -1, 2, 3, 2, 4, 5, 1, 7, 1, 8};

static int run_forward(model *m, bool training, const int32_t *seq, int B, int L, tema_batch *b, tema_stream *s,
                       int32_t *sx, int32_t *sy)
{
    split_domains(seq, B, L, sx, sy);
    *b = (tema_batch){.struct_size = sizeof *b, .B = B, .L = L, .seq = seq, .seq_x = sx, .seq_y = sy};
    tema_graph_reset(m->g, training, 99);
    tema_err err = {0};
    int n = 0;
    ck_assert_msg(m->ops->forward(m->a, m->g, b, &m->table, 1, s, &n, &err) == TEMA_OK, "%s", err.msg);
    return n;
}

static int32_t g_sx[FB * FL], g_sy[FB * FL];

/* One stream [T_X, T_G(X), T_Y, T_G(Y)] against [E_X, E, 0, 0] / [0, 0, E_Y, E]; rows without
 * an item of a domain yet share one block (the towers of zero features); rows whose last X
 * item is the same share the X blocks; training and evaluation agree without dropout. */
START_TEST(stream_is_the_local_plus_global_logit_of_each_domain)
{
    model m;
    tema_err err = {0};
    ck_assert_msg(build(&m, SMALL, &err) == TEMA_OK, "%s", err.msg);
    scramble(m.params, 0.5f);
    tema_batch b;
    tema_stream s[TEMA_MAX_STREAMS];
    ck_assert_int_eq(run_forward(&m, true, g_fseq, FB, FL, &b, s, g_sx, g_sy), 1);
    const int64_t d = DIM, W = 4 * DIM;
    ck_assert_int_eq(s[0].h->shape[1], W);
    ck_assert_int_eq(s[0].items->shape[1], W);
    ck_assert_float_eq(s[0].weight, 1.0f);
    const man_model *a = m.a;
    for (int j = 0; j < NI; j++) {
        const float *it = s[0].items->data + j * W, *e = m.table->data + j * d;
        const bool x = j < NX;
        const float *loc = x ? a->dom[MAN_X].items->data + j * d : a->dom[MAN_Y].items->data + (j - NX) * d;
        for (int64_t c = 0; c < d; c++) {
            ck_assert_float_eq(it[(x ? 0 : 2) * d + c], loc[c]);
            ck_assert_float_eq(it[(x ? 1 : 3) * d + c], e[c]);
            ck_assert_float_eq(it[(x ? 2 : 0) * d + c], 0.0f);
            ck_assert_float_eq(it[(x ? 3 : 1) * d + c], 0.0f);
        }
    }
    const float *h = s[0].h->data;
    /* rows 0 (padding) and 2 (X item, no Y yet) have the same Y blocks; 2 and 3 the same X blocks */
    for (int64_t c = 2 * d; c < 4 * d; c++) ck_assert_float_eq(h[0 * W + c], h[2 * W + c]);
    for (int64_t c = 0; c < 2 * d; c++) ck_assert_float_eq(h[2 * W + c], h[3 * W + c]);
    bool differ = false;
    for (int64_t c = 2 * d; c < 4 * d; c++) differ = differ || h[2 * W + c] != h[3 * W + c];
    ck_assert_msg(differ, "row 3 has a Y item, row 2 none: their Y blocks must differ");
    float h0[FB * FL * 4 * DIM];
    memcpy(h0, h, sizeof h0);
    ck_assert_int_eq(run_forward(&m, false, g_fseq, FB, FL, &b, s, g_sx, g_sy), 1);
    for (int i = 0; i < FB * FL * 4 * DIM; i++) ck_assert_float_eq_tol(s[0].h->data[i], h0[i], 1e-6f);
    release(&m);
}
END_TEST

/* The official model sees one prefix per sample: the state at merged row p must be the state
 * at the last row of the sequence cut after p (right-aligned again), for every p of every row. */
START_TEST(states_are_those_of_the_official_prefix_samples)
{
    model m;
    tema_err err = {0};
    ck_assert_msg(build(&m, SMALL, &err) == TEMA_OK, "%s", err.msg);
    scramble(m.params, 0.5f);
    tema_batch b;
    tema_stream s[TEMA_MAX_STREAMS];
    run_forward(&m, false, g_fseq, FB, FL, &b, s, g_sx, g_sy);
    const int64_t W = 4 * DIM;
    float full[FB * FL * 4 * DIM];
    memcpy(full, s[0].h->data, sizeof full);
    int checked = 0;
    for (int r = 0; r < FB; r++)
        for (int p = 0; p < FL; p++) {
            if (g_fseq[r * FL + p] < 0) continue;
            int32_t cut[FL], cx[FL], cy[FL];
            for (int k = 0; k < FL; k++) cut[k] = k >= FL - 1 - p ? g_fseq[r * FL + k - (FL - 1 - p)] : -1;
            run_forward(&m, false, cut, 1, FL, &b, s, cx, cy);
            for (int64_t c = 0; c < W; c++) {
                const float want = full[(r * FL + p) * W + c], got = s[0].h->data[(FL - 1) * W + c];
                ck_assert_msg(fabsf(want - got) <= 1e-5f * (1 + fabsf(want)),
                              "row %d position %d block %lld: %g in the batch, %g as a prefix sample", r, p,
                              (long long)(c / DIM), want, got);
            }
            checked++;
        }
    ck_assert_int_eq(checked, 13);
    release(&m);
}
END_TEST

/* ---------------- the objective and its gradients ---------------- */

/* targets: every input position's next item of rows 0 and 2, and row 1's */
enum { NT = 10 };
static const int32_t g_trow[NT] = {2, 3, 4, 9, 10, 13, 14, 15, 16, 17};
static const int32_t g_ttgt[NT] = {5, 1, 6, 3, 2, 1, 7, 1, 8, 0};
static int32_t g_tlo[NT], g_thi[NT];
static float g_tw[NT];

static tema_targets make_targets(void)
{
    for (int r = 0; r < NT; r++) {
        g_tlo[r] = g_ttgt[r] < NX ? 0 : NX;
        g_thi[r] = g_ttgt[r] < NX ? NX : NI;
        g_tw[r] = 1.0f;
    }
    return (tema_targets){.struct_size = sizeof(tema_targets), .rows = NT, .row_index = g_trow, .target = g_ttgt,
                          .lo = g_tlo, .hi = g_thi, .weight = g_tw, .seed = 1234};
}

/* The training objective as the trainer forms it with full_softmax (the stream's NLL over
 * the target's domain), plus aux_loss. */
static double objective(model *m, bool backward)
{
    tema_batch b;
    tema_stream s[TEMA_MAX_STREAMS];
    int n = run_forward(m, true, g_fseq, FB, FL, &b, s, g_sx, g_sy);
    const tema_nn_api *nn = tema_nn();
    tema_graph *g = m->g;
    tema_targets t = make_targets();
    for (int dom = 0; dom < 2; dom++)
        for (int k = 0; k < 3; k++) t.seq_weight[dom][k] = 1.0f;
    tema_tensor *logp[TEMA_MAX_STREAMS];
    for (int k = 0; k < n; k++) {
        tema_tensor *h = nn->gather_rows(g, s[k].h, g_trow, NT);
        tema_tensor *z = nn->rowdot(g, h, s[k].items, g_ttgt, 1.0f);
        tema_tensor *lse = nn->lse_chunked(g, h, s[k].items, g_tlo, g_thi, 1.0f, 3);
        ck_assert_msg(z && lse, "%s", nn->error(g));
        logp[k] = nn->add(g, z, nn->scale(g, lse, -1.0f));
    }
    tema_tensor *loss = NULL, *aux = NULL;
    tema_err err = {0};
    ck_assert_msg(tema_host_get()->mixture_nll(g, logp, s, n, &t, &loss, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_msg(m->ops->aux_loss(m->a, g, &b, &t, &aux, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_ptr_nonnull(aux);
    loss = nn->add(g, loss, aux);
    double v = loss->data[0];
    if (backward) {
        tema_params_zero_grad(m->params);
        ck_assert_msg(tema_graph_backward(g, loss, &err) == TEMA_OK, "%s", err.msg);
    }
    return v;
}

static double objective_no_backward(void *m) { return objective(m, false); }

/* Without stop_gradient the objective is a plain function of the parameters: every entry's
 * gradient against a central finite difference. */
START_TEST(gradients_match_finite_differences)
{
    model m;
    tema_err err = {0};
    ck_assert_msg(build(&m, SMALL "stop_gradient: false\ndisentangle: 0.05\n", &err) == TEMA_OK, "%s", err.msg);
    scramble(m.params, 0.5f);
    double l0 = objective(&m, true);
    ck_assert_msg(isfinite(l0), "loss %g", l0);
    int64_t nonzero, checked = tu_check_param_grads(m.params, objective_no_backward, &m, "man", &nonzero);
    fprintf(stderr, "man: %lld parameter entries checked, %lld with a non-zero gradient\n", (long long)checked,
            (long long)nonzero);
    ck_assert_int_ge(nonzero * 10, checked * 6);
    release(&m);
}
END_TEST

/* With stop_gradient (the default) the fusion and group attention train themselves but
 * send nothing back: every parameter outside the encoders gets the gradient it gets without
 * it, and the encoders' own weights get less (here: different) gradient. */
START_TEST(stop_gradient_keeps_fusion_and_groups_out_of_the_encoders)
{
    model with, without;
    tema_err err = {0};
    ck_assert_msg(build(&with, SMALL, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_msg(build(&without, SMALL "stop_gradient: false\n", &err) == TEMA_OK, "%s", err.msg);
    scramble(with.params, 0.5f);
    scramble(without.params, 0.5f);
    ck_assert_double_eq(objective(&with, true), objective(&without, true));
    ck_assert_uint_eq(tema_params_n(with.params), tema_params_n(without.params));
    int encoder_differs = 0, others = 0;
    for (size_t i = 0; i < tema_params_n(with.params); i++) {
        const tema_tensor *a = tema_params_at(with.params, i), *b = tema_params_at(without.params, i);
        ck_assert_str_eq(a->name, b->name);
        const bool encoder = (strstr(a->name, ".local.b") || strstr(a->name, ".local.lnf") ||
                              strstr(a->name, "man.global.b") || strstr(a->name, "man.global.lnf"));
        const bool upstream = encoder || strstr(a->name, ".items") || strstr(a->name, ".pos");
        bool same = true;
        for (int64_t j = 0; j < a->size; j++) same = same && fabsf(a->grad[j] - b->grad[j]) <= 1e-6f * (1 + fabsf(b->grad[j]));
        if (encoder) encoder_differs += !same;
        if (!upstream) {
            ck_assert_msg(same, "%s: its gradient depends on stop_gradient", a->name);
            others++;
        }
    }
    ck_assert_int_ge(others, 20);
    ck_assert_int_gt(encoder_differs, 0);
    release(&with);
    release(&without);
}
END_TEST

/* -w sum_{i>j} ||G_i - G_j||^2 / 2, by the official double loop; nothing at weight 0 */
START_TEST(aux_loss_is_the_official_disentangle_term)
{
    model m;
    tema_err err = {0};
    ck_assert_msg(build(&m, SMALL "disentangle: 0.25\n", &err) == TEMA_OK, "%s", err.msg);
    scramble(m.params, 1.0f);
    tema_graph_reset(m.g, true, 1);
    tema_tensor *aux = NULL;
    ck_assert_msg(m.ops->aux_loss(m.a, m.g, NULL, NULL, &aux, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_ptr_nonnull(aux);
    const float *G = m.a->prototypes->data;
    double want = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j <= i; j++)
            for (int c = 0; c < DIM; c++) want += -0.25 * 0.5 * (G[i * DIM + c] - G[j * DIM + c]) * (G[i * DIM + c] - G[j * DIM + c]);
    ck_assert_double_eq_tol(aux->data[0], want, 1e-5 * (1 + fabs(want)));
    release(&m);
    ck_assert_msg(build(&m, SMALL "disentangle: 0\n", &err) == TEMA_OK, "%s", err.msg);
    tema_graph_reset(m.g, true, 1);
    aux = (tema_tensor *)&aux;
    ck_assert_int_eq(m.ops->aux_loss(m.a, m.g, NULL, NULL, &aux, &err), TEMA_OK);
    ck_assert_ptr_null(aux);
    release(&m);
}
END_TEST

START_TEST(unsupported_setups_fail_at_create)
{
    tu_cpu_registry();
    const tema_plugin *p = tema_plugin_entry_test_man(tema_host_get());
    const tema_attention_ops *ops = p->ops;
    /* a host whose autograd predates detach (ABI 1.7) */
    static tema_host old_host;
    static tema_nn_api old_nn;
    old_host = *tema_host_get();
    old_nn = *tema_nn();
    old_nn.struct_size = (uint32_t)offsetof(tema_nn_api, detach);
    old_host.nn = &old_nn;
    struct {
        const char *opts;
        int n_enc;
        const char *mod;
        bool old;
        tema_status want;
        const char *msg;
    } cases[] = {
        {NULL, 2, "id", false, TEMA_EINVAL, "exactly one encoder of modality id"},
        {NULL, 1, "text", false, TEMA_EINVAL, "exactly one encoder of modality id"},
        {"heads: 3\n", 1, "id", false, TEMA_EINVAL, "heads (3) must divide"},
        {"mlp_layers: [4, 2.5]\n", 1, "id", false, TEMA_EINVAL, "mlp_layers[1] = 2.5"},
        {"att_layers: [4, 4, 4, 4, 4]\n", 1, "id", false, TEMA_EINVAL, "at most 4"},
        {NULL, 1, "id", true, TEMA_EUNSUPPORTED, "needs the autograd op detach"},
        {"stop_gradient: false\n", 1, "id", true, TEMA_OK, ""},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tema_params *params = tema_params_new(1);
        tema_model_info info = make_info(params);
        if (cases[c].old) info.host = &old_host;
        const int64_t dims[2] = {DIM, DIM};
        const char *mods[2] = {cases[c].mod, "id"};
        tema_cfg *o = tu_plugin_opts(p, cases[c].opts);
        void *self = NULL;
        tema_err err = {0};
        tema_status st = ops->create(&info, o, dims, mods, cases[c].n_enc, &self, &err);
        tema_cfg_free(o);
        if (st == TEMA_OK) ops->destroy(self);
        tema_params_free(params);
        ck_assert_msg(st == cases[c].want && strstr(err.msg, cases[c].msg), "case %zu: status %d: %s", c, st, err.msg);
    }
}
END_TEST

/* ---------------- end to end on synthetic data ---------------- */

/* A seeded synthetic two-domain dataset in dir/data (`tema data synth`, a second to train on),
 * and an experiment on it at path. */
static void write_exp(const char *path, const char *dir, const char *name)
{
    char args[1024], *out, *err;
    snprintf(args, sizeof args, "data synth --out '%s/data' --users 80 --items-x 40 --items-y 50 --seed 11", dir);
    int rc = tu_tema(args, &out, &err);
    ck_assert_msg(rc == 0, "data synth failed: %s", err);
    free(out);
    free(err);
    char text[4096];
    snprintf(text, sizeof text,
             "name: %s\n"
             "dataset: {path: '%s/data', max_len: 8}\n"
             "backend: {plugin: cpu, threads: 1}\n"
             "model:\n"
             "  encoders: [{plugin: id, dim: 16, init_std: 0.01}]\n"
             "  attention: {plugin: man, blocks: 1, heads: 2, groups: 4}\n"
             "loss: {plugin: full_softmax, positions: 4}\n"
             "train: {epochs: 4, batch_size: 8, lr: 5.0e-3, patience: 0, eval_every: 1, seed: 11}\n"
             "eval: {protocol: sampled, negatives: 99, metrics: [mrr, ndcg@10, hr@10]}\n",
             name, dir);
    tu_write(path, text);
}

/* epochs.jsonl's train_loss column and final.json's metrics, as one string */
static char *run_summary(const char *dir, double *first, double *last)
{
    char p[8400], line[16384];
    snprintf(p, sizeof p, "%s/epochs.jsonl", dir);
    FILE *f = fopen(p, "r");
    ck_assert_msg(f != NULL, "missing %s", p);
    char *out = calloc(1, 65536);
    size_t k = 0;
    *first = *last = NAN;
    while (fgets(line, sizeof line, f)) {
        json_object *o = json_tokener_parse(line);
        ck_assert_ptr_nonnull(o);
        double l = json_object_get_double(tu_json_get(o, "train_loss"));
        if (isnan(*first)) *first = l;
        *last = l;
        k += (size_t)snprintf(out + k, 65536 - k, "%.17g ", l);
        json_object_put(o);
    }
    fclose(f);
    json_object *fin = tu_json_load(dir, "final.json");
    snprintf(out + k, 65536 - k, "%s %s", json_object_to_json_string(tu_json_get(fin, "test")),
             json_object_to_json_string(tu_json_get(fin, "valid")));
    json_object_put(fin);
    return out;
}

START_TEST(runs_learn_and_repeat_bit_for_bit)
{
    const char *tmp = tu_tmpdir();
    char exp[4200], args[9000];
    snprintf(exp, sizeof exp, "%s/man.yaml", tmp);
    write_exp(exp, tmp, "synth-man");
    char *sum[2];
    for (int i = 0; i < 2; i++) {
        char *out, *err;
        snprintf(args, sizeof args, "run '%s' --results '%s/r%d'", exp, tmp, i);
        int rc = tu_tema(args, &out, &err);
        ck_assert_msg(rc == 0, "tema run failed (%d): %s", rc, err);
        free(out);
        free(err);
        snprintf(args, sizeof args, "%s/r%d", tmp, i);
        double first, last;
        sum[i] = run_summary(tu_run_dir(args, "synth-man"), &first, &last);
        ck_assert_msg(last < first, "training loss did not decrease: %g -> %g", first, last);
    }
    ck_assert_str_eq(sum[0], sum[1]);
    free(sum[0]);
    free(sum[1]);
}
END_TEST

/* The constraints the option table cannot express come from the plugin's check (ABI 1.7), at
 * `tema check`, located at model.attention, before any data is read. */
START_TEST(check_rejects_unsupported_options)
{
    const char *tmp = tu_tmpdir();
    char exp[4200], args[9000];
    snprintf(exp, sizeof exp, "%s/check.yaml", tmp);
    write_exp(exp, tmp, "synth-man-check");
    char *out, *err;
    snprintf(args, sizeof args, "check '%s'", exp);
    ck_assert_int_eq(tu_tema(args, &out, &err), 0);
    free(out);
    free(err);
    /* the plugin's check names the file and model.attention; the option table's range, the --set */
    static const struct { const char *set, *want[3]; } cases[] = {
        {"model.attention.mlp_layers=[32, 16.5]", {"check.yaml:", "model.attention: ", "mlp_layers[1] = 16.5"}},
        {"model.attention.att_layers=[8, 8, 8, 8, 8]", {"check.yaml:", "model.attention: ", "at most 4"}},
        {"model.attention.heads=3", {"check.yaml:", "model.attention: ", "heads (3) must divide the width (16)"}},
        {"model.attention.groups=0", {"--set model.attention.groups=0", "groups: 0", "out of range"}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        snprintf(args, sizeof args, "check '%s' --set '%s'", exp, cases[c].set);
        ck_assert_int_ne(tu_tema(args, &out, &err), 0);
        ck_assert_msg(strstr(err, cases[c].want[0]) && strstr(err, cases[c].want[1]) && strstr(err, cases[c].want[2]),
                      "--set %s: stderr: %s", cases[c].set, err);
        free(out);
        free(err);
    }
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("man");
    TCase *unit = tcase_create("unit");
    tcase_add_test(unit, layouts_count_positions_from_the_oldest_and_pair_items_causally);
    tcase_add_test(unit, stream_is_the_local_plus_global_logit_of_each_domain);
    tcase_add_test(unit, states_are_those_of_the_official_prefix_samples);
    tcase_add_test(unit, gradients_match_finite_differences);
    tcase_add_test(unit, stop_gradient_keeps_fusion_and_groups_out_of_the_encoders);
    tcase_add_test(unit, aux_loss_is_the_official_disentangle_term);
    tcase_add_test(unit, unsupported_setups_fail_at_create);
    suite_add_tcase(s, unit);
    TCase *e2e = tcase_create("end_to_end");
    tcase_add_test(e2e, runs_learn_and_repeat_bit_for_bit);
    tcase_add_test(e2e, check_rejects_unsupported_options);
    suite_add_tcase(s, e2e);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
