/* tests/test_c2dsr.c - the C2DSR attention plugin (plugins/attention/c2dsr.c, compiled into
 * this suite so its static parts can be checked one by one) and the ABI 1.6 pieces it rests
 * on: the item graphs built from the training sequences, the infomax pooling sets, the
 * streams of training and evaluation, gradients of the whole objective (streams + aux_loss)
 * against finite differences, the trainer adding aux_loss (and nothing for older plugins),
 * configuration errors, and end-to-end runs on the toy data (loss decreases, bit-identical
 * at one thread). */
#define TEMA_PLUGIN_STATIC_NAME tema_plugin_entry_test_c2dsr
#include "attention/c2dsr.c"

#include <json-c/json.h>

#include "config.h"
#include "engine.h"
#include "host.h"
#include "registry.h"
#include "testutil.h"
#include "train_internal.h"

#define NX 5
#define NY 4
#define NI (NX + NY)
#define LMAX 6

static int64_t g_counts[NI] = {3, 0, 7, 1, 1, 2, 9, 0, 4};
static const int64_t g_train_off[4] = {0, 5, 9, 13};
static const int32_t g_train_items[13] = {0, 5, 1, 1, 6, 0, 5, 2, 8, 3, 7, 4, 4};

static tema_model_info make_info(tema_params *params)
{
    return (tema_model_info){.struct_size = sizeof(tema_model_info), .n_x = NX, .n_y = NY, .max_len = LMAX,
                             .train_counts = g_counts, .seed = 3, .params = params, .host = tema_host_get(),
                             .n_train_lines = 3, .train_off = g_train_off, .train_items = g_train_items};
}

/* ---------------- the item graphs ---------------- */

static void expect_row(const int64_t *rp, const int32_t *col, const float *val, int row, int n, const int32_t *cols,
                       const float *vals, const char *what)
{
    ck_assert_msg(rp[row + 1] - rp[row] == n, "%s row %d: %lld edges, want %d", what, row,
                  (long long)(rp[row + 1] - rp[row]), n);
    for (int k = 0; k < n; k++) {
        ck_assert_msg(col[rp[row] + k] == cols[k], "%s row %d edge %d: to %d, want %d", what, row, k,
                      (int)col[rp[row] + k], (int)cols[k]);
        ck_assert_msg(fabsf(val[rp[row] + k] - vals[k]) < 1e-7f, "%s row %d edge %d: %g, want %g", what, row, k,
                      (double)val[rp[row] + k], (double)vals[k]);
    }
}

/* lines 0 5 1 1 6 | 0 5 2 8 | 3 7 4 4 (X = 0..4, Y = 5..8): transition counts, row-normalised;
 * repeats (0->5 twice) add up, self-loops (1->1, 4->4) count, rows without successors are empty */
START_TEST(item_graphs_are_normalised_transition_counts)
{
    tema_model_info info = make_info(NULL);
    tema_err err = {0};
    int64_t *rp;
    int32_t *col;
    float *val;
    ck_assert_msg(c2_graph_host(&info, false, &rp, &col, &val, &err) == TEMA_OK, "%s", err.msg);
    /* merged: 0->5 x2, 5->1, 1->1, 1->6, 5->2, 2->8, 3->7, 7->4, 4->4 */
    expect_row(rp, col, val, 0, 1, (int32_t[]){5}, (float[]){1}, "adj");
    expect_row(rp, col, val, 1, 2, (int32_t[]){1, 6}, (float[]){0.5f, 0.5f}, "adj");
    expect_row(rp, col, val, 2, 1, (int32_t[]){8}, (float[]){1}, "adj");
    expect_row(rp, col, val, 3, 1, (int32_t[]){7}, (float[]){1}, "adj");
    expect_row(rp, col, val, 4, 1, (int32_t[]){4}, (float[]){1}, "adj");
    expect_row(rp, col, val, 5, 2, (int32_t[]){1, 2}, (float[]){0.5f, 0.5f}, "adj");
    expect_row(rp, col, val, 6, 0, NULL, NULL, "adj");
    expect_row(rp, col, val, 7, 1, (int32_t[]){4}, (float[]){1}, "adj");
    expect_row(rp, col, val, 8, 0, NULL, NULL, "adj");
    ck_assert_int_eq(rp[NI], 9);
    free(rp), free(col), free(val);
    /* single: X 0->1, 1->1, 0->2, 3->4, 4->4; Y 5->6, 5->8 */
    ck_assert_msg(c2_graph_host(&info, true, &rp, &col, &val, &err) == TEMA_OK, "%s", err.msg);
    expect_row(rp, col, val, 0, 2, (int32_t[]){1, 2}, (float[]){0.5f, 0.5f}, "adj_single");
    expect_row(rp, col, val, 1, 1, (int32_t[]){1}, (float[]){1}, "adj_single");
    expect_row(rp, col, val, 2, 0, NULL, NULL, "adj_single");
    expect_row(rp, col, val, 3, 1, (int32_t[]){4}, (float[]){1}, "adj_single");
    expect_row(rp, col, val, 4, 1, (int32_t[]){4}, (float[]){1}, "adj_single");
    expect_row(rp, col, val, 5, 2, (int32_t[]){6, 8}, (float[]){0.5f, 0.5f}, "adj_single");
    for (int r = 6; r < NI; r++) expect_row(rp, col, val, r, 0, NULL, NULL, "adj_single");
    free(rp), free(col), free(val);
    /* an id outside the items is the data's fault, reported */
    static const int32_t bad[2] = {0, NI};
    static const int64_t bad_off[2] = {0, 2};
    info.train_items = bad;
    info.train_off = bad_off;
    info.n_train_lines = 1;
    ck_assert_int_eq(c2_graph_host(&info, false, &rp, &col, &val, &err), TEMA_EINVAL);
    ck_assert_msg(strstr(err.msg, "outside"), "%s", err.msg);
}
END_TEST

/* ---------------- batches, positions, infomax pooling sets ---------------- */

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

enum { PB = 3, PL = 5 };
/* row 0: X 0 1, Y 5 6, next item X; row 1: X 0 1, Y 5, next Y; row 2: X only */
static const int32_t g_pseq[PB * PL] = {-1, 0, 5, 1, 6, -1, -1, 0, 5, 1, -1, -1, -1, 0, 1};
static const int32_t g_pfinal[PB] = {2, 7, 2};

START_TEST(positions_and_pooling_sets_follow_the_official_loader)
{
    c2_model *a = calloc(1, sizeof *a);
    a->n_x = NX, a->n_y = NY, a->max_len = LMAX;
    int32_t sx[PB * PL], sy[PB * PL];
    split_domains(g_pseq, PB, PL, sx, sy);
    tema_batch b = {.struct_size = sizeof b, .B = PB, .L = PL, .seq = g_pseq, .seq_x = sx, .seq_y = sy};
    tema_err err = {0};
    ck_assert_msg(c2_layouts(a, &b, &err) == TEMA_OK, "%s", err.msg);
    /* positions count from the oldest item of the window, in each sequence */
    static const int32_t pos_m[PB * PL] = {-1, 0, 1, 2, 3, -1, -1, 0, 1, 2, -1, -1, -1, 0, 1};
    for (int i = 0; i < PB * PL; i++) ck_assert_int_eq(a->pos_m[i], pos_m[i]);
    ck_assert_int_eq(a->lay[C2_X].Lc, 2);
    ck_assert_int_eq(a->lay[C2_Y].Lc, 2);
    static const int32_t pos_x[PB * 2] = {0, 1, 0, 1, 0, 1}, pos_y[PB * 2] = {0, 1, -1, 0, -1, -1};
    for (int i = 0; i < PB * 2; i++) {
        ck_assert_int_eq(a->lay[C2_X].pos[i], pos_x[i]);
        ck_assert_int_eq(a->lay[C2_Y].pos[i], pos_y[i]);
    }
    a->B = PB, a->L = PL;
    ck_assert(c2_aux_scratch(a, PB, PL));
    ck_assert_int_eq(c2_pool_weights(a, &b, g_pfinal), 2);
    ck_assert_int_eq(a->valid[0], 0);
    ck_assert_int_eq(a->valid[1], 1);
    /* X items with a later X item (the next item counts): row 0 both, row 1 the first, row 2 both;
     * Y: row 0 the first (6 has no later Y), row 1 its only one (the next item is Y), row 2 none */
    static const float wm_x[PB * PL] = {0, 0.5f, 0, 0.5f, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0.5f, 0.5f};
    static const float wm_y[PB * PL] = {0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0};
    static const float wc_x[PB * 2] = {0.5f, 0.5f, 1, 0, 0.5f, 0.5f}, wc_y[PB * 2] = {1, 0, 0, 1, 0, 0};
    for (int i = 0; i < PB * PL; i++) {
        ck_assert_msg(a->wm[0][i] == wm_x[i], "wm_x[%d] = %g, want %g", i, (double)a->wm[0][i], (double)wm_x[i]);
        ck_assert_msg(a->wm[1][i] == wm_y[i], "wm_y[%d] = %g, want %g", i, (double)a->wm[1][i], (double)wm_y[i]);
    }
    for (int i = 0; i < PB * 2; i++) {
        ck_assert_msg(a->wc[0][i] == wc_x[i], "wc_x[%d] = %g, want %g", i, (double)a->wc[0][i], (double)wc_x[i]);
        ck_assert_msg(a->wc[1][i] == wc_y[i], "wc_y[%d] = %g, want %g", i, (double)a->wc[1][i], (double)wc_y[i]);
    }
    /* corruption: corr[0] keeps X and draws Y items for Y slots, corr[1] the other way round */
    c2_corrupt(a, &b, 42);
    for (int i = 0; i < PB * PL; i++) {
        int32_t v = g_pseq[i], c0 = a->corr[0][i], c1 = a->corr[1][i];
        if (v < 0) {
            ck_assert(c0 == -1 && c1 == -1);
        } else if (v < NX) {
            ck_assert_int_eq(c0, v);
            ck_assert(c1 >= 0 && c1 < NX);
        } else {
            ck_assert_int_eq(c1, v);
            ck_assert(c0 >= NX && c0 < NI);
        }
    }
    c2_destroy(a);
}
END_TEST

/* ---------------- a model on test data ---------------- */

typedef struct model {
    const tema_attention_ops *ops;
    c2_model *a;
    tema_params *params;
    tema_graph *g;
    tema_tensor *table; /* the id encoder's stand-in */
} model;

static tema_status build(model *m, const char *extra, tema_err *err)
{
    tu_cpu_registry();
    memset(m, 0, sizeof *m);
    const tema_plugin *p = tema_plugin_entry_test_c2dsr(tema_host_get());
    m->ops = p->ops;
    m->params = tema_params_new(17);
    int64_t shape[2] = {NI, 4}, dims[1] = {4};
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

static int32_t g_sx[PB * PL], g_sy[PB * PL];

static int forward(model *m, bool training, tema_batch *b, tema_stream *s)
{
    split_domains(g_pseq, PB, PL, g_sx, g_sy);
    *b = (tema_batch){.struct_size = sizeof *b, .B = PB, .L = PL, .seq = g_pseq, .seq_x = g_sx, .seq_y = g_sy};
    tema_graph_reset(m->g, training, 99);
    tema_err err = {0};
    int n = 0;
    ck_assert_msg(m->ops->forward(m->a, m->g, b, &m->table, 1, s, &n, &err) == TEMA_OK, "%s", err.msg);
    return n;
}

/* Training: the specific stream [h + h_X, h + h_Y, 1] against [W 1_X, W 1_Y, b] and the shared
 * one [h, 1] against [W, b]; evaluation: the specific stream alone. */
START_TEST(streams_are_the_heads_of_the_official_model)
{
    model m;
    tema_err err = {0};
    ck_assert_msg(build(&m, "dropout: 0\nlambda: 0.6\n", &err) == TEMA_OK, "%s", err.msg);
    float w[2][3];
    m.ops->sequence_weights(m.a, w);
    for (int d = 0; d < 2; d++) {
        ck_assert_float_eq_tol(w[d][TEMA_SEQ_MERGED], 0.6f, 1e-7f);
        ck_assert_float_eq_tol(w[d][TEMA_SEQ_X], 0.6f, 1e-7f);
        ck_assert_float_eq(w[d][TEMA_SEQ_Y], 0.0f);
    }
    tema_batch b;
    tema_stream s[TEMA_MAX_STREAMS];
    ck_assert_int_eq(forward(&m, true, &b, s), 2);
    const int64_t d = 4, W = 2 * d + 1;
    const c2_model *a = m.a;
    ck_assert_int_eq(s[0].h->shape[1], W);
    ck_assert_int_eq(s[1].h->shape[1], d + 1);
    ck_assert_int_eq(s[1].sequence, TEMA_SEQ_MERGED);
    for (int j = 0; j < NI; j++) {
        const float *it = s[0].items->data + j * W, *wj = a->out_w->data + j * d;
        for (int64_t c = 0; c < d; c++) {
            ck_assert_float_eq(it[c], j < NX ? wj[c] : 0.0f);
            ck_assert_float_eq(it[d + c], j < NX ? 0.0f : wj[c]);
            ck_assert_float_eq(s[1].items->data[j * (d + 1) + c], wj[c]);
        }
        ck_assert_float_eq(it[2 * d], a->out_b->data[j]);
        ck_assert_float_eq(s[1].items->data[j * (d + 1) + d], a->out_b->data[j]);
    }
    /* row 1 (b = 0, p = 1): item 0, no Y item yet -> the Y block is h alone */
    for (int r = 0; r < PB * PL; r++) {
        const float *h = s[0].h->data + r * W, *hm = a->h_m->data + r * d;
        const int32_t rx = a->lay[C2_X].row[r], ry = a->lay[C2_Y].row[r];
        for (int64_t c = 0; c < d; c++) {
            float ex = hm[c] + (rx >= 0 ? a->h_dom[C2_X]->data[rx * d + c] : 0.0f);
            float ey = hm[c] + (ry >= 0 ? a->h_dom[C2_Y]->data[ry * d + c] : 0.0f);
            ck_assert_float_eq_tol(h[c], ex, 1e-6f);
            ck_assert_float_eq_tol(h[d + c], ey, 1e-6f);
            ck_assert_float_eq(s[1].h->data[r * (d + 1) + c], hm[c]);
        }
        ck_assert_float_eq(h[2 * d], 1.0f);
    }
    ck_assert_int_eq(a->lay[C2_Y].row[1], -1);
    float h0[PB * PL * 9];
    memcpy(h0, s[0].h->data, sizeof h0);
    /* evaluation: one stream, the same specific state without dropout */
    ck_assert_int_eq(forward(&m, false, &b, s), 1);
    for (int i = 0; i < PB * PL * 9; i++) ck_assert_float_eq_tol(s[0].h->data[i], h0[i], 1e-6f);
    release(&m);
}
END_TEST

/* The graphs as the model holds them: adj [n, n] and adj_single's blocks with local ids,
 * read back densely through spmm against the identity. */
START_TEST(model_holds_adj_and_the_domain_blocks_of_adj_single)
{
    model m;
    tema_err err = {0};
    ck_assert_msg(build(&m, NULL, &err) == TEMA_OK, "%s", err.msg);
    const tema_nn_api *nn = tema_nn();
    tema_graph_reset(m.g, false, 0);
    /* X: 0->{1,2} 1->1 3->4 4->4; Y (local 0..3 = 5..8): 0->{1,3} */
    static const struct { int q, n; int r[6], c[6]; float v[6]; } want[2] = {
        {C2_X, NX, {0, 0, 1, 3, 4, -1}, {1, 2, 1, 4, 4, -1}, {0.5f, 0.5f, 1, 1, 1, 0}},
        {C2_Y, NY, {0, 0, -1}, {1, 3, -1}, {0.5f, 0.5f, 0}},
    };
    for (int k = 0; k < 2; k++) {
        const int n = want[k].n;
        float *eye = calloc((size_t)(n * n), sizeof *eye);
        for (int i = 0; i < n; i++) eye[i * n + i] = 1.0f;
        int64_t sh[2] = {n, n};
        tema_tensor *dense = nn->spmm(m.g, m.a->adj_dom[want[k].q], nn->tensor(m.g, 2, sh, eye));
        ck_assert_msg(dense != NULL, "%s", nn->error(m.g));
        float total = 0;
        for (int i = 0; i < n * n; i++) total += dense->data[i];
        for (int e = 0; want[k].r[e] >= 0; e++) {
            ck_assert_float_eq_tol(dense->data[want[k].r[e] * n + want[k].c[e]], want[k].v[e], 1e-7f);
            total -= want[k].v[e];
        }
        ck_assert_float_eq_tol(total, 0.0f, 1e-6f); /* nothing else */
        free(eye);
    }
    ck_assert_int_eq(m.a->emb[C2_X]->shape[0], NX);
    ck_assert_int_eq(m.a->emb[C2_Y]->shape[0], NY);
    release(&m);
}
END_TEST

/* targets of g_pseq: every input position's next item; the last one is g_pfinal */
static const int32_t g_trow[8] = {1, 2, 3, 4, 7, 8, 9, 14};
static const int32_t g_ttgt[8] = {5, 1, 6, 2, 5, 1, 7, 2};
static int32_t g_tlo[8], g_thi[8];
static float g_tw[8];

static tema_targets make_targets(void)
{
    for (int r = 0; r < 8; r++) {
        g_tlo[r] = g_ttgt[r] < NX ? 0 : NX;
        g_thi[r] = g_ttgt[r] < NX ? NX : NI;
        g_tw[r] = 1.0f;
    }
    return (tema_targets){.struct_size = sizeof(tema_targets), .rows = 8, .row_index = g_trow, .target = g_ttgt,
                          .lo = g_tlo, .hi = g_thi, .weight = g_tw, .seed = 1234};
}

/* The training objective as the trainer forms it with full_softmax: the mixture of the
 * streams by sequence weights, plus aux_loss. */
static double objective(model *m, bool backward, bool with_aux)
{
    tema_batch b;
    tema_stream s[TEMA_MAX_STREAMS];
    int n = forward(m, true, &b, s);
    const tema_nn_api *nn = tema_nn();
    tema_graph *g = m->g;
    tema_targets t = make_targets();
    m->ops->sequence_weights(m->a, t.seq_weight);
    tema_tensor *logp[TEMA_MAX_STREAMS];
    for (int k = 0; k < n; k++) {
        tema_tensor *h = nn->gather_rows(g, s[k].h, g_trow, 8);
        tema_tensor *z = nn->rowdot(g, h, s[k].items, g_ttgt, 1.0f);
        tema_tensor *lse = nn->lse_chunked(g, h, s[k].items, g_tlo, g_thi, 1.0f, 3);
        ck_assert_msg(z && lse, "%s", nn->error(g));
        logp[k] = nn->add(g, z, nn->scale(g, lse, -1.0f));
    }
    tema_tensor *loss = NULL, *aux = NULL;
    tema_err err = {0};
    ck_assert_msg(tema_host_get()->mixture_nll(g, logp, s, n, &t, &loss, &err) == TEMA_OK, "%s", err.msg);
    if (with_aux) {
        ck_assert_msg(m->ops->aux_loss(m->a, g, &b, &t, &aux, &err) == TEMA_OK, "%s", err.msg);
        ck_assert_ptr_nonnull(aux);
        ck_assert_msg(isfinite(aux->data[0]) && aux->data[0] > 0, "aux %g", (double)aux->data[0]);
        loss = nn->add(g, loss, aux);
    }
    double v = loss->data[0];
    if (backward) {
        tema_params_zero_grad(m->params);
        ck_assert_msg(tema_graph_backward(g, loss, &err) == TEMA_OK, "%s", err.msg);
    }
    return v;
}

/* the whole objective (streams and aux_loss), forward only, for finite differences */
static double objective_no_backward(void *m) { return objective(m, false, true); }

START_TEST(gradients_match_finite_differences)
{
    model m;
    tema_err err = {0};
    ck_assert_msg(build(&m, "dropout: 0\nblocks: 1\nheads: 2\ngnn_layers: 2\nactivation: gelu\ninit_std: 0.5\n", &err) ==
                      TEMA_OK,
                  "%s", err.msg);
    double l0 = objective(&m, true, true);
    ck_assert_msg(isfinite(l0), "loss %g", l0);
    ck_assert_double_eq(objective(&m, false, true), l0); /* the corruption is the targets' seed's */
    int64_t nonzero, checked = tu_check_param_grads(m.params, objective_no_backward, &m, "c2dsr", &nonzero);
    fprintf(stderr, "c2dsr: %lld parameter entries checked, %lld with a non-zero gradient\n", (long long)checked,
            (long long)nonzero);
    ck_assert_int_ge(nonzero * 10, checked * 4);
    /* the discriminators learn from aux_loss only */
    for (size_t i = 0; i < tema_params_n(m.params); i++) {
        tema_tensor *t = tema_params_at(m.params, i);
        if (!strstr(t->name, "disc_")) continue;
        objective(&m, true, false);
        for (int64_t j = 0; j < t->size; j++) ck_assert_float_eq(t->grad[j], 0.0f);
    }
    release(&m);
}
END_TEST

/* pos_init_std reaches the three encoders' position tables (official nn.Embedding: N(0, 1)) */
static double pos_table_std(const char *extra)
{
    model m;
    tema_err err = {0};
    ck_assert_msg(build(&m, extra, &err) == TEMA_OK, "%s", err.msg);
    double ss = 0;
    int64_t n = 0, tables = 0;
    for (size_t i = 0; i < tema_params_n(m.params); i++) {
        tema_tensor *t = tema_params_at(m.params, i);
        size_t len = strlen(t->name);
        if (len < 4 || strcmp(t->name + len - 4, ".pos") != 0) continue;
        tables++;
        for (int64_t j = 0; j < t->size; j++) ss += (double)t->data[j] * t->data[j], n++;
    }
    ck_assert_int_eq(tables, 3);
    release(&m);
    return sqrt(ss / (double)n);
}

START_TEST(pos_init_std_sets_the_position_tables)
{
    const double dflt = pos_table_std("dropout: 0.2\n"), wide = pos_table_std("pos_init_std: 1.5\n");
    ck_assert_msg(dflt > 0.01 && dflt < 0.03, "default position std %g, want about 0.02", dflt);
    ck_assert_msg(wide > 1.2 && wide < 1.8, "position std %g with pos_init_std 1.5", wide);
}
END_TEST

START_TEST(aux_loss_needs_its_forward_and_vanishes_at_lambda_one)
{
    model m;
    tema_err err = {0};
    ck_assert_msg(build(&m, "lambda: 1\n", &err) == TEMA_OK, "%s", err.msg);
    tema_batch b;
    tema_stream s[TEMA_MAX_STREAMS];
    forward(&m, true, &b, s);
    tema_targets t = make_targets();
    tema_tensor *aux = (tema_tensor *)&aux;
    ck_assert_int_eq(m.ops->aux_loss(m.a, m.g, &b, &t, &aux, &err), TEMA_OK);
    ck_assert_ptr_null(aux);
    tema_graph *other = tema_graph_new(1);
    ck_assert_int_eq(m.ops->aux_loss(m.a, other, &b, &t, &aux, &err), TEMA_EINVAL);
    ck_assert_msg(strstr(err.msg, "without forward"), "%s", err.msg);
    tema_graph_free(other);
    release(&m);
}
END_TEST

START_TEST(unsupported_setups_fail_at_create)
{
    tu_cpu_registry();
    const tema_plugin *p = tema_plugin_entry_test_c2dsr(tema_host_get());
    const tema_attention_ops *ops = p->ops;
    struct {
        const char *opts;
        int n_enc;
        const char *mod2;
        bool no_train;
        tema_status want;
        const char *msg;
    } cases[] = {
        {NULL, 2, "text", false, TEMA_EINVAL, "exactly one encoder of modality id"},
        {NULL, 1, "text", false, TEMA_EINVAL, "exactly one encoder of modality id"},
        {"lambda: 0\n", 1, NULL, false, TEMA_EINVAL, "lambda = 0"},
        {"heads: 3\n", 1, NULL, false, TEMA_EINVAL, "heads (3) must divide"},
        {NULL, 1, NULL, true, TEMA_EUNSUPPORTED, "needs the training sequences"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tema_params *params = tema_params_new(1);
        tema_model_info info = make_info(params);
        if (cases[c].no_train) info.struct_size = offsetof(tema_model_info, n_train_lines);
        const int64_t dims[2] = {4, 4};
        const char *mods[2] = {cases[c].n_enc == 1 && cases[c].mod2 ? cases[c].mod2 : "id", "text"};
        tema_cfg *o = tu_plugin_opts(p, cases[c].opts);
        void *self = NULL;
        tema_err err = {0};
        tema_status st = ops->create(&info, o, dims, mods, cases[c].n_enc, &self, &err);
        tema_cfg_free(o);
        tema_params_free(params);
        ck_assert_msg(st == cases[c].want && strstr(err.msg, cases[c].msg), "case %zu: status %d: %s", c, st, err.msg);
    }
}
END_TEST

/* ---------------- the trainer's side of ABI 1.6 ---------------- */

static tema_status fake_create(const tema_model_info *i, const tema_cfg *o, const int64_t *d, const char *const *m,
                               int n, void **self, tema_err *err)
{
    (void)i, (void)o, (void)d, (void)m, (void)n, (void)self, (void)err;
    return TEMA_OK;
}
static void fake_destroy(void *self) { (void)self; }
static tema_status fake_aux(void *self, tema_graph *g, const tema_batch *b, const tema_targets *t, tema_tensor **loss,
                            tema_err *err)
{
    (void)self, (void)b, (void)t, (void)err;
    const int64_t one = 1;
    const float v = 2.5f;
    *loss = tema_nn()->tensor(g, 1, &one, &v);
    return TEMA_OK;
}

START_TEST(trainer_adds_aux_loss_of_plugins_that_have_one)
{
    tu_cpu_registry();
    static const tema_attention_ops ops = {.create = fake_create, .destroy = fake_destroy, .aux_loss = fake_aux};
    tema_plugin p = {.abi_major = TEMA_ABI_MAJOR, .abi_minor = TEMA_ABI_MINOR, .struct_size = sizeof p,
                     .kind = TEMA_KIND_ATTENTION, .name = "fake", .ops_size = sizeof ops, .ops = &ops};
    tema_model mdl = {.att_p = &p, .att_ops = &ops};
    tema_graph *g = tema_graph_new(1);
    tema_graph_reset(g, true, 1);
    const int64_t one = 1;
    const float v = 1.0f;
    tema_tensor *loss = tema_nn()->tensor(g, 1, &one, &v), *orig = loss;
    tema_batch b = {.struct_size = sizeof b};
    tema_targets t = {.struct_size = sizeof t};
    tema_err err = {0};
    ck_assert_msg(tema_model_add_aux_loss(&mdl, g, &b, &t, &loss, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_float_eq(loss->data[0], 3.5f);
    /* a plugin built before 1.6 (ops end at sequence_weights): the loss is left as it was */
    p.ops_size = offsetof(tema_attention_ops, aux_loss);
    loss = orig;
    ck_assert_int_eq(tema_model_add_aux_loss(&mdl, g, &b, &t, &loss, &err), TEMA_OK);
    ck_assert_ptr_eq(loss, orig);
    tema_graph_free(g);
}
END_TEST

/* ---------------- end to end on the toy data ---------------- */

static void write_exp(const char *path, const char *name)
{
    char text[4096];
    snprintf(text, sizeof text,
             "name: %s\n"
             "dataset: {path: %s, max_len: 8}\n"
             "backend: {plugin: cpu, threads: 1}\n"
             "model:\n"
             "  encoders: [{plugin: id, dim: 16, init_std: 1.0}]\n"
             "  attention: {plugin: c2dsr, blocks: 1, heads: 2, dropout: 0.2}\n"
             "loss: {plugin: full_softmax, positions: 4}\n"
             "train: {epochs: 4, batch_size: 8, lr: 5.0e-3, patience: 0, eval_every: 1, seed: 11}\n"
             "eval: {protocol: sampled, negatives: 99, metrics: [mrr, ndcg@10, hr@10]}\n",
             name, tu_data_path("toy"));
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

START_TEST(toy_runs_learn_and_repeat_bit_for_bit)
{
    TU_REQUIRE_DATA("toy");
    const char *tmp = tu_tmpdir();
    char exp[4200], args[9000];
    snprintf(exp, sizeof exp, "%s/c2dsr.yaml", tmp);
    write_exp(exp, "toy-c2dsr");
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
        sum[i] = run_summary(tu_run_dir(args, "toy-c2dsr"), &first, &last);
        ck_assert_msg(last < first, "training loss did not decrease: %g -> %g", first, last);
    }
    ck_assert_str_eq(sum[0], sum[1]);
    free(sum[0]);
    free(sum[1]);
}
END_TEST

START_TEST(check_rejects_a_bad_option)
{
    TU_REQUIRE_DATA("toy");
    const char *tmp = tu_tmpdir();
    char exp[4200], args[9000];
    snprintf(exp, sizeof exp, "%s/check.yaml", tmp);
    write_exp(exp, "toy-c2dsr-check");
    char *out, *err;
    snprintf(args, sizeof args, "check '%s'", exp);
    ck_assert_int_eq(tu_tema(args, &out, &err), 0);
    free(out);
    free(err);
    snprintf(args, sizeof args, "check '%s' --set model.attention.lambda=1.5", exp);
    ck_assert_int_ne(tu_tema(args, &out, &err), 0);
    ck_assert_msg(strstr(err, "lambda") && strstr(err, "1.5"), "stderr: %s", err);
    free(out);
    free(err);
    snprintf(args, sizeof args, "check '%s' --set model.attention.activation=tanh", exp);
    ck_assert_int_ne(tu_tema(args, &out, &err), 0);
    ck_assert_msg(strstr(err, "activation") && strstr(err, "tanh"), "stderr: %s", err);
    free(out);
    free(err);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("c2dsr");
    TCase *unit = tcase_create("unit");
    tcase_add_test(unit, item_graphs_are_normalised_transition_counts);
    tcase_add_test(unit, pos_init_std_sets_the_position_tables);
    tcase_add_test(unit, positions_and_pooling_sets_follow_the_official_loader);
    tcase_add_test(unit, model_holds_adj_and_the_domain_blocks_of_adj_single);
    tcase_add_test(unit, streams_are_the_heads_of_the_official_model);
    tcase_add_test(unit, gradients_match_finite_differences);
    tcase_add_test(unit, aux_loss_needs_its_forward_and_vanishes_at_lambda_one);
    tcase_add_test(unit, unsupported_setups_fail_at_create);
    tcase_add_test(unit, trainer_adds_aux_loss_of_plugins_that_have_one);
    suite_add_tcase(s, unit);
    TCase *e2e = tcase_create("end_to_end");
    tcase_add_test(e2e, toy_runs_learn_and_repeat_bit_for_bit);
    tcase_add_test(e2e, check_rejects_a_bad_option);
    suite_add_tcase(s, e2e);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
