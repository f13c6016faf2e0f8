/* tests/test_srgnn.c - the SR-GNN baseline (plugins/attention/srgnn.c): the per-prefix session
 * graphs checked by hand, the states against a reference written here in double the way the
 * official code computes one session (np.unique nodes, the concatenated [A_in | A_out] of
 * utils.py, GNNCell and compute_scores of model.py), no state seeing a later item, gradients
 * against finite differences, and a few seeded training steps (loss goes down, two runs
 * bit-identical at one thread). The item table is a test parameter. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention/srgnn_graph.h"
#include "config.h"
#include "engine.h"
#include "host.h"
#include "registry.h"
#include "testutil.h"

#define NX 5
#define NY 4
#define NI (NX + NY)
#define LMAX 6

const tema_plugin *tema_plugin_entry_backend_cpu(const tema_host *host);
const tema_plugin *tema_plugin_entry_attention_srgnn(const tema_host *host);

static int64_t g_counts[NI] = {3, 0, 7, 1, 1, 2, 9, 0, 4};

static void setup_backend(void)
{
    const tema_plugin *cpu = tema_plugin_entry_backend_cpu(tema_host_get());
    const tema_backend_ops *be = cpu->ops;
    void *bs = NULL;
    tema_err err = {0};
    tema_cfg *opts = tu_plugin_opts(cpu, "threads: 1\n");
    ck_assert_msg(be->init(tema_host_get(), opts, &bs, &err) == TEMA_OK, "%s", err.msg);
    tema_cfg_free(opts);
    tema_engine_set_backend(be, bs);
}

typedef struct model {
    const tema_attention_ops *ops;
    void *self;
    tema_params *params;
    tema_graph *g;
    tema_tensor *table;
    int64_t d;
} model;

static tema_status build(model *m, const char *extra, int64_t d, int n_enc, int max_len, uint64_t seed,
                         tema_err *err)
{
    memset(m, 0, sizeof *m);
    const tema_plugin *p = tema_plugin_entry_attention_srgnn(tema_host_get());
    m->ops = p->ops;
    m->params = tema_params_new(seed);
    m->d = d;
    int64_t shape[2] = {NI, d};
    m->table = tema_nn()->param(m->params, "test.items", 2, shape, TEMA_INIT_NORMAL, 0.5f, 0);
    tema_model_info info = {.struct_size = sizeof info, .n_x = NX, .n_y = NY, .max_len = max_len,
                            .train_counts = g_counts, .seed = 3, .params = m->params, .host = tema_host_get()};
    tema_cfg *o = tu_plugin_opts(p, extra);
    const int64_t dims[2] = {d, d};
    const char *mods[2] = {"id", "text"};
    tema_status st = m->ops->create(&info, o, dims, mods, n_enc, &m->self, err);
    tema_cfg_free(o);
    if (st != TEMA_OK) {
        tema_params_free(m->params);
        m->params = NULL;
        return st;
    }
    ck_assert_msg(tema_params_finalize(m->params, err) == TEMA_OK, "%s", err->msg);
    m->g = tema_graph_new(5);
    return TEMA_OK;
}

static void build_ok(model *m, const char *extra, int64_t d)
{
    tema_err err = {0};
    ck_assert_msg(build(m, extra, d, 1, LMAX, 17, &err) == TEMA_OK, "%s", err.msg);
}

static void release(model *m)
{
    if (!m->params) return;
    tema_graph_free(m->g);
    m->ops->destroy(m->self);
    tema_params_free(m->params);
}

/* Forward on a fresh graph (seq_x / seq_y are not read by srgnn); h copied into *hout when
 * hout is given (caller frees). */
static tema_tensor *run(model *m, const int32_t *seq, int B, int L, bool training, float **hout)
{
    tema_batch b = {.struct_size = sizeof b, .B = B, .L = L, .seq = seq, .seq_x = seq, .seq_y = seq};
    tema_err err = {0};
    tema_stream s[TEMA_MAX_STREAMS];
    int n = 0;
    tema_graph_reset(m->g, training, 9);
    ck_assert_msg(m->ops->forward(m->self, m->g, &b, &m->table, 1, s, &n, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_int_eq(n, 1);
    ck_assert_ptr_eq(s[0].items, m->table);
    ck_assert(s[0].weight == 1.0f && s[0].inv_temp == 1.0f && s[0].sequence == TEMA_SEQ_MERGED);
    ck_assert_int_eq(s[0].h->ndim, 2);
    ck_assert_int_eq(s[0].h->shape[0], (int64_t)B * L);
    ck_assert_int_eq(s[0].h->shape[1], m->d);
    if (hout) {
        *hout = malloc(sizeof(float) * (size_t)s[0].h->size);
        memcpy(*hout, s[0].h->data, sizeof(float) * (size_t)s[0].h->size);
    }
    return s[0].h;
}

static const float *param_data(model *m, const char *name)
{
    for (size_t i = 0; i < tema_params_n(m->params); i++) {
        tema_tensor *t = tema_params_at(m->params, i);
        if (!strcmp(t->name, name)) return t->data;
    }
    ck_abort_msg("no parameter %s", name);
    return NULL;
}

/* ---------------- session graphs ---------------- */

enum { B3 = 3, L6 = LMAX };
/* row 0: padding, a repeat and a back-to-back repeat (self-loop); row 1: padding only;
 * row 2: full, starts with a self-loop, a 2-cycle 2 <-> 8 */
static const int32_t g_seq[B3 * L6] = {-1, 3, 5, 3, 3, 7, -1, -1, -1, -1, -1, -1, 6, 6, 2, 8, 2, 6};

static void check_matrix(const float *got, const float *want, int n, const char *what)
{
    for (int i = 0; i < n * n; i++)
        ck_assert_msg(fabsf(got[i] - want[i]) < 1e-7f, "%s[%d][%d] = %g, want %g", what, i / n, i % n, got[i],
                      want[i]);
}

START_TEST(session_graphs_by_hand)
{
    sg_layout l = {0};
    tema_err err = {0};
    ck_assert_int_eq(sg_build(&l, g_seq, B3, L6, "test", &err), TEMA_OK);
    /* node counts: row 0: 1 2 2 2 3, row 2: 1 1 2 3 3 3 */
    ck_assert_int_eq(l.P, 11);
    ck_assert_int_eq(l.n_max, 3);
    ck_assert_int_eq(l.count[1], 3);
    ck_assert_int_eq(l.count[2], 4);
    ck_assert_int_eq(l.count[3], 4);
    ck_assert_int_eq(l.T, 3 * 1 + 4 * 2 + 4 * 3);
    /* bucket-major, batch order inside a bucket */
    static const int32_t want_row[B3 * L6] = {-1, 0, 3, 4, 5, 7, -1, -1, -1, -1, -1, -1, 1, 2, 6, 8, 9, 10};
    for (int i = 0; i < B3 * L6; i++) ck_assert_msg(l.row[i] == want_row[i], "row[%d] = %d", i, l.row[i]);

    /* row 2 after [6 6]: one node with a self-loop, item seen twice */
    int64_t nb = l.node_off[1] + 2, ab = l.adj_off[1] + 2;
    ck_assert_int_eq(l.node_item[nb], 6);
    ck_assert(l.cnt[nb] == 2.0f && l.a_in[ab] == 1.0f && l.a_out[ab] == 1.0f);
    /* row 0 after [3 5 3 3]: nodes 3, 5; edges 3->5, 5->3, 3->3 (bucket 2, third prefix) */
    nb = l.node_off[2] + 2 * 2, ab = l.adj_off[2] + 2 * 4;
    ck_assert(l.node_item[nb] == 3 && l.node_item[nb + 1] == 5);
    ck_assert(l.cnt[nb] == 3.0f && l.cnt[nb + 1] == 1.0f);
    ck_assert_int_eq(l.last[l.pre_off[2] + 2], 2 * 2 + 0); /* node 3 of that prefix */
    static const float in2[4] = {0.5f, 0.5f, 1, 0}, out2[4] = {0.5f, 0.5f, 1, 0};
    check_matrix(l.a_in + ab, in2, 2, "A_in [3 5 3 3]");
    check_matrix(l.a_out + ab, out2, 2, "A_out [3 5 3 3]");
    /* row 0 after [3 5 3 3 7]: 3 -> 7 added, node 3 now has out-degree 3 (bucket 3, first) */
    nb = l.node_off[3], ab = l.adj_off[3];
    ck_assert(l.node_item[nb] == 3 && l.node_item[nb + 1] == 5 && l.node_item[nb + 2] == 7);
    static const float in3[9] = {0.5f, 0.5f, 0, 1, 0, 0, 1, 0, 0};
    static const float out3[9] = {1.0f / 3, 1.0f / 3, 1.0f / 3, 1, 0, 0, 0, 0, 0};
    check_matrix(l.a_in + ab, in3, 3, "A_in [3 5 3 3 7]");
    check_matrix(l.a_out + ab, out3, 3, "A_out [3 5 3 3 7]");
    ck_assert_int_eq(l.last[l.pre_off[3]], 2);
    /* row 2 after [6 6 2 8 2 6]: nodes 6, 2, 8; edges 6->6, 6->2, 2->8, 8->2, 2->6 (bucket 3, last) */
    nb = l.node_off[3] + 3 * 3, ab = l.adj_off[3] + 3 * 9;
    ck_assert(l.node_item[nb] == 6 && l.node_item[nb + 1] == 2 && l.node_item[nb + 2] == 8);
    ck_assert(l.cnt[nb] == 3.0f && l.cnt[nb + 1] == 2.0f && l.cnt[nb + 2] == 1.0f);
    for (int j = 0; j < 3; j++) ck_assert_int_eq(l.bcast[nb + j], 3);
    static const float in6[9] = {0.5f, 0.5f, 0, 0.5f, 0, 0.5f, 0, 1, 0};
    static const float out6[9] = {0.5f, 0.5f, 0, 0.5f, 0, 0.5f, 0, 1, 0};
    check_matrix(l.a_in + ab, in6, 3, "A_in [6 6 2 8 2 6]");
    check_matrix(l.a_out + ab, out6, 3, "A_out [6 6 2 8 2 6]");
    ck_assert_int_eq(l.last[l.pre_off[3] + 3], 3 * 3 + 0);
    /* all padding: nothing */
    static const int32_t pad[4] = {-1, -1, -1, -1};
    ck_assert_int_eq(sg_build(&l, pad, 2, 2, "test", &err), TEMA_OK);
    ck_assert_int_eq(l.P, 0);
    ck_assert_int_eq(l.n_max, 0);
    sg_layout_free(&l);
}
END_TEST

/* ---------------- the official computation, in double ---------------- */

typedef struct ref_w {
    const float *w_ein, *b_ein, *w_eout, *b_eout, *b_iah, *b_oah, *w_ih, *b_ih, *w_hh, *b_hh;
    const float *w_one, *b_one, *w_two, *b_two, *w_three, *w_tr, *b_tr;
} ref_w;

static ref_w ref_weights(model *m, bool hybrid)
{
    return (ref_w){param_data(m, "attention.srgnn.edge_in.w"), param_data(m, "attention.srgnn.edge_in.b"),
                   param_data(m, "attention.srgnn.edge_out.w"), param_data(m, "attention.srgnn.edge_out.b"),
                   param_data(m, "attention.srgnn.b_iah"), param_data(m, "attention.srgnn.b_oah"),
                   param_data(m, "attention.srgnn.gru.w_ih"), param_data(m, "attention.srgnn.gru.b_ih"),
                   param_data(m, "attention.srgnn.gru.w_hh"), param_data(m, "attention.srgnn.gru.b_hh"),
                   param_data(m, "attention.srgnn.one.w"), param_data(m, "attention.srgnn.one.b"),
                   param_data(m, "attention.srgnn.two.w"), param_data(m, "attention.srgnn.two.b"),
                   param_data(m, "attention.srgnn.three.w"),
                   hybrid ? param_data(m, "attention.srgnn.transform.w") : NULL,
                   hybrid ? param_data(m, "attention.srgnn.transform.b") : NULL};
}

enum { RD = 4, RN = LMAX }; /* width and most nodes of the reference */

/* y[o] = b[o] + sum_i w[o*in + i] x[i] */
static void ref_linear(const float *w, const float *b, const double *x, int in, int out, double *y)
{
    for (int o = 0; o < out; o++) {
        y[o] = b ? b[o] : 0;
        for (int i = 0; i < in; i++) y[o] += w[o * in + i] * x[i];
    }
}

static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

/* GNNCell of model.py on n nodes; A [n][2n] as utils.py builds it. */
static void ref_cell(const ref_w *w, double A[RN][2 * RN], int n, double h[RN][RD])
{
    double ein[RN][RD], eout[RN][RD], hy[RN][RD];
    for (int i = 0; i < n; i++) {
        ref_linear(w->w_ein, w->b_ein, h[i], RD, RD, ein[i]);
        ref_linear(w->w_eout, w->b_eout, h[i], RD, RD, eout[i]);
    }
    for (int v = 0; v < n; v++) {
        double x[2 * RD], gi[3 * RD], gh[3 * RD];
        for (int j = 0; j < RD; j++) {
            x[j] = w->b_iah[j], x[RD + j] = w->b_oah[j];
            for (int u = 0; u < n; u++) x[j] += A[v][u] * ein[u][j], x[RD + j] += A[v][n + u] * eout[u][j];
        }
        ref_linear(w->w_ih, w->b_ih, x, 2 * RD, 3 * RD, gi);
        ref_linear(w->w_hh, w->b_hh, h[v], RD, 3 * RD, gh);
        for (int j = 0; j < RD; j++) {
            double r = sigm(gi[j] + gh[j]), z = sigm(gi[RD + j] + gh[RD + j]);
            double c = tanh(gi[2 * RD + j] + r * gh[2 * RD + j]);
            hy[v][j] = c + z * (h[v][j] - c);
        }
    }
    memcpy(h, hy, sizeof hy);
}

static int cmp_i32(const void *a, const void *b) { return *(const int32_t *)a - *(const int32_t *)b; }

/* The state of one session (items s[0..len-1]): SessionGraph.forward + compute_scores. */
static void ref_session(const ref_w *w, const float *E, const int32_t *s, int len, int step, double *out)
{
    int32_t node[RN];
    int n = 0;
    for (int i = 0; i < len; i++) node[n++] = s[i];
    qsort(node, (size_t)n, sizeof node[0], cmp_i32); /* np.unique */
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!k || node[k - 1] != node[i]) node[k++] = node[i];
    n = k;
    int alias[RN];
    for (int i = 0; i < len; i++)
        for (int j = 0; j < n; j++)
            if (node[j] == s[i]) alias[i] = j;
    double u_a[RN][RN] = {{0}}, A[RN][2 * RN] = {{0}}, sum_in[RN] = {0}, sum_out[RN] = {0};
    for (int i = 0; i + 1 < len; i++) u_a[alias[i]][alias[i + 1]] = 1;
    for (int u = 0; u < n; u++)
        for (int v = 0; v < n; v++) sum_in[v] += u_a[u][v], sum_out[u] += u_a[u][v];
    for (int i = 0; i < n; i++) {
        if (sum_in[i] == 0) sum_in[i] = 1;
        if (sum_out[i] == 0) sum_out[i] = 1;
    }
    /* u_A = concatenate([u_A / sum_in, u_A^T / sum_out]).T */
    for (int u = 0; u < n; u++)
        for (int v = 0; v < n; v++) {
            A[v][u] = u_a[u][v] / sum_in[v];
            A[u][n + v] = u_a[u][v] / sum_out[u];
        }
    double h[RN][RD];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < RD; j++) h[i][j] = E[node[i] * RD + j];
    for (int t = 0; t < step; t++) ref_cell(w, A, n, h);
    const double *ht = h[alias[len - 1]];
    double q1[RD], a[2 * RD] = {0};
    ref_linear(w->w_one, w->b_one, ht, RD, RD, q1);
    for (int i = 0; i < len; i++) {
        double q2[RD], sg[RD], alpha;
        ref_linear(w->w_two, w->b_two, h[alias[i]], RD, RD, q2);
        for (int j = 0; j < RD; j++) sg[j] = sigm(q1[j] + q2[j]);
        ref_linear(w->w_three, NULL, sg, RD, 1, &alpha);
        for (int j = 0; j < RD; j++) a[j] += alpha * h[alias[i]][j];
    }
    if (!w->w_tr) {
        memcpy(out, a, sizeof(double) * RD);
        return;
    }
    for (int j = 0; j < RD; j++) a[RD + j] = ht[j];
    ref_linear(w->w_tr, w->b_tr, a, 2 * RD, RD, out);
}

static void check_reference(const char *label, const char *extra, int step, bool hybrid)
{
    model m;
    build_ok(&m, extra, RD);
    float *h;
    run(&m, g_seq, B3, L6, false, &h);
    ref_w w = ref_weights(&m, hybrid);
    for (int b = 0; b < B3; b++) {
        int32_t s[LMAX];
        int len = 0;
        for (int p = 0; p < L6; p++) {
            int32_t v = g_seq[b * L6 + p];
            double want[RD] = {0};
            if (v >= 0) {
                s[len++] = v;
                ref_session(&w, m.table->data, s, len, step, want);
            }
            for (int j = 0; j < RD; j++)
                ck_assert_msg(fabs(h[(b * L6 + p) * RD + j] - want[j]) <= 1e-5 * (1 + fabs(want[j])),
                              "srgnn (%s): row %d position %d unit %d: %.7f, reference %.7f", label, b, p, j,
                              h[(b * L6 + p) * RD + j], want[j]);
        }
    }
    free(h);
    release(&m);
}

START_TEST(states_match_the_official_computation)
{
    setup_backend();
    check_reference("defaults", NULL, 1, true);
    check_reference("step 3, nonhybrid", "step: 3\nnonhybrid: true\n", 3, false);
}
END_TEST

/* ---------------- causality ---------------- */

START_TEST(states_do_not_see_later_items)
{
    setup_backend();
    model m;
    build_ok(&m, "step: 2\n", 5);
    float *h0, *h1;
    run(&m, g_seq, B3, L6, false, &h0);
    for (int p = 0; p < L6; p++)
        for (int alt = 0; alt < 2; alt++) {
            int32_t seq[B3 * L6];
            memcpy(seq, g_seq, sizeof seq);
            /* row 2 is full: a new item at p, or the item of an earlier position (a repeat) */
            int32_t *x = &seq[2 * L6 + p];
            *x = alt == 0 || p == 0 ? (*x + 4) % NI : (seq[2 * L6] == *x ? 3 : seq[2 * L6]);
            run(&m, seq, B3, L6, false, &h1);
            for (int64_t row = 0; row < B3 * L6; row++) {
                bool same = true;
                for (int64_t j = row * 5; j < row * 5 + 5; j++)
                    same &= fabsf(h0[j] - h1[j]) <= 1e-6f * (1 + fabsf(h0[j]));
                bool expect_same = row < 2 * L6 + p;
                ck_assert_msg(same == expect_same, "srgnn: item %d at row 2 position %d %s row %lld", *x, p,
                              same ? "did not change" : "changed", (long long)row);
            }
            free(h1);
        }
    /* padding rows are zeros */
    for (int j = 0; j < L6 * 5; j++) ck_assert(h0[1 * L6 * 5 + j] == 0.0f && h0[j % 5] == 0.0f);
    free(h0);
    release(&m);
}
END_TEST

/* ---------------- gradients ---------------- */

enum { GB = 2, GL = 5 };
static const int32_t g_gseq[GB * GL] = {-1, 1, 6, 1, 7, 5, 0, 8, 8, 3};
static const int32_t g_gtgt[GB * GL] = {3, 2, 0, 7, 4, 1, 6, 2, 5, 8};

/* Weighted mean cross-entropy of every row against targets over all items; w NULL: 1 + r/10. */
static double ce_loss(model *m, const int32_t *seq, const int32_t *tgt, const float *w, int B, int L, bool backward)
{
    tema_tensor *h = run(m, seq, B, L, true, NULL);
    const tema_nn_api *nn = tema_nn();
    tema_graph *g = m->g;
    int32_t *lo = malloc(sizeof(int32_t) * (size_t)(B * L)), *hi = malloc(sizeof(int32_t) * (size_t)(B * L));
    float *wr = malloc(sizeof(float) * (size_t)(B * L));
    for (int r = 0; r < B * L; r++) lo[r] = 0, hi[r] = NI, wr[r] = w ? w[r] : 1.0f + 0.1f * (float)r;
    tema_tensor *lse = nn->lse_chunked(g, h, m->table, lo, hi, 1.0f, 4);
    tema_tensor *z = nn->rowdot(g, h, m->table, tgt, 1.0f);
    tema_tensor *loss = nn->weighted_mean(g, nn->add(g, lse, nn->scale(g, z, -1.0f)), wr);
    ck_assert_msg(loss != NULL, "%s", nn->error(g));
    double v = loss->data[0];
    if (backward) {
        tema_err err = {0};
        tema_params_zero_grad(m->params);
        ck_assert_msg(tema_graph_backward(g, loss, &err) == TEMA_OK, "%s", err.msg);
    }
    free(lo);
    free(hi);
    free(wr);
    return v;
}

/* the loss of the gradient batch, forward only, for finite differences */
static double ce_loss_forward(void *m) { return ce_loss(m, g_gseq, g_gtgt, NULL, GB, GL, false); }

static void check_gradients(const char *label, const char *extra)
{
    model m;
    build_ok(&m, extra, 3);
    double l0 = ce_loss(&m, g_gseq, g_gtgt, NULL, GB, GL, true);
    ck_assert_msg(isfinite(l0), "loss %g", l0);
    char who[96];
    snprintf(who, sizeof who, "srgnn (%s)", label);
    int64_t nonzero, checked = tu_check_param_grads(m.params, ce_loss_forward, &m, who, &nonzero);
    fprintf(stderr, "srgnn (%s): %lld parameter entries checked, %lld with a non-zero gradient\n", label,
            (long long)checked, (long long)nonzero);
    ck_assert_int_ge(nonzero * 10, checked * 7); /* items never seen (2, 4) have none */
    release(&m);
}

START_TEST(gradients_match_finite_differences)
{
    setup_backend();
    check_gradients("step 1", "step: 1\n");
    check_gradients("step 2, nonhybrid", "step: 2\nnonhybrid: true\n");
}
END_TEST

/* ---------------- training ---------------- */

enum { TB = 8, TL = 6, TSTEPS = 40 };

/* Seeded synthetic sessions: mostly item -> (3 * item + 1) mod NI, sometimes a random item;
 * varied lengths (left padding). Targets: the next item (each session has one item more than it shows). */
static void synth_batch(uint64_t *state, int32_t *seq, int32_t *tgt, float *w)
{
    for (int b = 0; b < TB; b++) {
        int32_t s[TL + 1];
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        int len = 3 + (int)((*state >> 33) % (TL - 2)); /* 3..TL items, plus the target */
        s[0] = (int32_t)((*state >> 40) % NI);
        for (int i = 1; i <= len; i++) {
            *state = *state * 6364136223846793005ull + 1442695040888963407ull;
            s[i] = (*state >> 33) % 5 == 0 ? (int32_t)((*state >> 40) % NI) : (3 * s[i - 1] + 1) % NI;
        }
        for (int p = 0; p < TL; p++) {
            int i = p - (TL - len); /* item index at position p */
            seq[b * TL + p] = i >= 0 ? s[i] : -1;
            tgt[b * TL + p] = i >= 0 ? s[i + 1] : 0;
            w[b * TL + p] = i >= 0 ? 1.0f : 0.0f;
        }
    }
}

/* TSTEPS Adam steps from seed 7; the loss of every step and the final parameters. */
static void train(double *losses, float **final, int64_t *n_final)
{
    model m;
    tema_err err = {0};
    ck_assert_msg(build(&m, NULL, 8, 1, TL, 7, &err) == TEMA_OK, "%s", err.msg);
    tema_adam opt = {.lr = 0.02f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 1e-5f};
    uint64_t state = 12345;
    int32_t seq[TB * TL], tgt[TB * TL];
    float w[TB * TL];
    for (int s = 0; s < TSTEPS; s++) {
        synth_batch(&state, seq, tgt, w);
        losses[s] = ce_loss(&m, seq, tgt, w, TB, TL, true);
        tema_adam_step(m.params, &opt);
    }
    *n_final = tema_params_count(m.params);
    *final = malloc(sizeof(float) * (size_t)*n_final);
    int64_t k = 0;
    for (size_t i = 0; i < tema_params_n(m.params); i++) {
        tema_tensor *t = tema_params_at(m.params, i);
        memcpy(*final + k, t->data, sizeof(float) * (size_t)t->size);
        k += t->size;
    }
    release(&m);
}

START_TEST(training_lowers_the_loss_deterministically)
{
    setup_backend();
    double l1[TSTEPS], l2[TSTEPS];
    float *p1, *p2;
    int64_t n1, n2;
    train(l1, &p1, &n1);
    train(l2, &p2, &n2);
    double first = (l1[0] + l1[1] + l1[2]) / 3, last = (l1[TSTEPS - 3] + l1[TSTEPS - 2] + l1[TSTEPS - 1]) / 3;
    fprintf(stderr, "srgnn training: loss %.4f over the first 3 steps, %.4f over the last 3 (ln %d = %.4f)\n", first,
            last, NI, log(NI));
    ck_assert_msg(last < 0.7 * first, "loss %.4f -> %.4f: not learning", first, last);
    ck_assert_int_eq(n1, n2);
    ck_assert_msg(!memcmp(l1, l2, sizeof l1), "the two runs' losses differ");
    ck_assert_msg(!memcmp(p1, p2, sizeof(float) * (size_t)n1), "the two runs' parameters differ");
    free(p1);
    free(p2);
}
END_TEST

/* ---------------- configurations ---------------- */

START_TEST(bad_configurations_are_rejected)
{
    setup_backend();
    model m;
    tema_err err = {0};
    ck_assert_int_eq(build(&m, NULL, 4, 2, LMAX, 1, &err), TEMA_EINVAL);
    ck_assert_msg(strstr(err.msg, "exactly one encoder") && strstr(err.msg, "hint"), "%s", err.msg);
    err = (tema_err){0};
    ck_assert_int_eq(build(&m, NULL, 4, 1, 65, 1, &err), TEMA_EINVAL);
    ck_assert_msg(strstr(err.msg, "max_len") && strstr(err.msg, "hint"), "%s", err.msg);
    /* the parameters: hybrid has the transform, nonhybrid not */
    build_ok(&m, NULL, 4);
    int64_t hybrid = tema_params_count(m.params);
    release(&m);
    build_ok(&m, "nonhybrid: true\n", 4);
    ck_assert_int_eq(hybrid - tema_params_count(m.params), 4 * 8 + 4);
    release(&m);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("srgnn");
    TCase *gr = tcase_create("graph");
    tcase_add_test(gr, session_graphs_by_hand);
    suite_add_tcase(s, gr);
    TCase *st = tcase_create("states");
    tcase_add_test(st, states_match_the_official_computation);
    tcase_add_test(st, states_do_not_see_later_items);
    tcase_add_test(st, bad_configurations_are_rejected);
    suite_add_tcase(s, st);
    TCase *tr = tcase_create("training");
    tcase_add_test(tr, gradients_match_finite_differences);
    tcase_add_test(tr, training_lowers_the_loss_deterministically);
    suite_add_tcase(s, tr);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
