/* tests/test_pinet.c - the pi-Net attention plugin (plugins/attention/pinet.c, compiled into this
 * suite so its static parts can be checked): the filter's alignment against the official pos_B,
 * every logit against a reference written here in double the way the official code computes one
 * session (processdata's split of the sequence, GRUCell, FilterCell, dynamic_rnn's final states,
 * the dense decoders) for every prefix, so also that no state sees a later item; gradients of the
 * whole objective against finite differences; a few seeded training steps (the loss goes down,
 * two runs bit-identical at one thread); configurations rejected at create() and by `tema check`;
 * end-to-end runs on the toy data. */
#define TEMA_PLUGIN_STATIC_NAME tema_plugin_entry_test_pinet
#include "attention/pinet.c"

#include <json-c/json.h>

#include "config.h"
#include "engine.h"
#include "host.h"
#include "registry.h"
#include "testutil.h"

#define NX 5
#define NY 4
#define NI (NX + NY)
#define LMAX 7

static int64_t g_counts[NI] = {3, 0, 7, 1, 1, 2, 9, 0, 4};

static tema_model_info make_info(tema_params *params)
{
    return (tema_model_info){.struct_size = sizeof(tema_model_info), .n_x = NX, .n_y = NY, .max_len = LMAX,
                             .train_counts = g_counts, .seed = 3, .params = params, .host = tema_host_get()};
}

typedef struct model {
    const tema_attention_ops *ops;
    pn_model *a;
    tema_params *params;
    tema_graph *g;
    tema_tensor *table; /* the id encoder's stand-in */
    int64_t e;
} model;

static tema_status build(model *m, const char *extra, int64_t e, int n_enc, uint64_t seed, tema_err *err)
{
    tu_cpu_registry();
    memset(m, 0, sizeof *m);
    const tema_plugin *p = tema_plugin_entry_test_pinet(tema_host_get());
    m->ops = p->ops;
    m->params = tema_params_new(seed);
    m->e = e;
    const int64_t shape[2] = {NI, e}, dims[2] = {e, e};
    static const char *const mods[2] = {"id", "text"};
    m->table = tema_nn()->param(m->params, "test.items", 2, shape, TEMA_INIT_NORMAL, 0.7f, 0);
    tema_model_info info = make_info(m->params);
    tema_cfg *o = tu_plugin_opts(p, extra);
    void *self = NULL;
    tema_status st = m->ops->create(&info, o, dims, mods, n_enc, &self, err);
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

static void build_ok(model *m, const char *extra, int64_t e)
{
    tema_err err = {0};
    ck_assert_msg(build(m, extra, e, 1, 17, &err) == TEMA_OK, "%s", err.msg);
}

static void release(model *m)
{
    if (!m->params) return;
    tema_graph_free(m->g);
    m->ops->destroy(m->a);
    tema_params_free(m->params);
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

enum { MAXB = 16, MAXL = LMAX };
static int32_t g_sx[MAXB * MAXL], g_sy[MAXB * MAXL];

/* forward on a fresh graph; the one stream */
static tema_stream run(model *m, const int32_t *seq, int B, int L, bool training)
{
    ck_assert(B * L <= MAXB * MAXL);
    split_domains(seq, B, L, g_sx, g_sy);
    tema_batch b = {.struct_size = sizeof b, .B = B, .L = L, .seq = seq, .seq_x = g_sx, .seq_y = g_sy};
    tema_graph_reset(m->g, training, 99);
    tema_err err = {0};
    tema_stream s[TEMA_MAX_STREAMS];
    int n = 0;
    ck_assert_msg(m->ops->forward(m->a, m->g, &b, &m->table, 1, s, &n, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_int_eq(n, 1);
    ck_assert(s[0].weight == 1.0f && s[0].inv_temp == 1.0f && s[0].sequence == TEMA_SEQ_MERGED);
    ck_assert_int_eq(s[0].h->shape[0], (int64_t)B * L);
    ck_assert_int_eq(s[0].h->shape[1], 4 * m->a->h + 1);
    ck_assert_int_eq(s[0].items->shape[0], NI);
    ck_assert_int_eq(s[0].items->shape[1], 4 * m->a->h + 1);
    return s[0];
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

/* row 0: padding, X Y Y X Y X; row 1: Y only; row 2: X only, then one Y; row 3: padding only */
enum { B4 = 4, L7 = LMAX };
static const int32_t g_seq[B4 * L7] = {-1, 0, 5, 6, 2, 8, 2, -1, -1, -1, 7, 6, 6, 5,
                                       1, 3, 4, 0, 3, 4, 8, -1, -1, -1, -1, -1, -1, -1};

/* ---------------- the filter's alignment ---------------- */

/* The official pos_B: for the k-th B (Y) item, the number of A (X) items before it; the filter
 * reads the X encoder's output after that many X items (none: 0). After forward() the plugin's
 * alignment holds Y's (the units run X first, then Y). */
START_TEST(filter_reads_the_other_encoder_at_the_official_pos)
{
    model m;
    build_ok(&m, "hidden: 4\n", 3);
    run(&m, g_seq, B4, L7, false);
    const pn_model *a = m.a;
    const ss_layout *ly = &a->lay[1], *lx = &a->lay[0];
    ck_assert_int_eq(ly->Lc, 4);
    ck_assert_int_eq(lx->Lc, 6);
    for (int b = 0; b < B4; b++) {
        int n_x = 0, n_y = 0, seen_x = 0, k = 0;
        for (int p = 0; p < L7; p++) {
            n_x += g_seq[b * L7 + p] >= 0 && g_seq[b * L7 + p] < NX;
            n_y += g_seq[b * L7 + p] >= NX;
        }
        for (int p = 0; p < L7; p++) {
            const int32_t v = g_seq[b * L7 + p];
            if (v < 0) continue;
            if (v < NX) {
                seen_x++;
                continue;
            }
            /* the k-th Y item's compact slot, and the X slot of the row's seen_x-th X item (right-aligned) */
            const int64_t i = (int64_t)b * ly->Lc + ly->Lc - n_y + k++;
            const int32_t want = seen_x == 0 ? -1 : (int32_t)(b * lx->Lc + lx->Lc - n_x + seen_x - 1);
            ck_assert_msg(a->align[i] == want, "row %d, Y item %d (at %d): reads X slot %d, want %d (pos_B = %d)", b,
                          k - 1, p, a->align[i], want, seen_x);
        }
    }
    release(&m);
}
END_TEST

/* ---------------- the official computation, in double ---------------- */

enum { RH = 6, RE = 5, RK = 4, RL = 2, RT = LMAX }; /* most hidden, width, members, layers, steps */

typedef struct ref_gru {
    const float *wx_g, *ws_g, *b_g, *wx_c, *ws_c, *b_c;
} ref_gru;

typedef struct ref_sfu {
    const float *wx_f, *ws_f, *v_f, *b_f, *wx_s, *ws_s, *b_s;
} ref_sfu;

typedef struct ref_model {
    int h, e, K, layers;
    ref_gru enc[2][RL], ctu[2][RL];
    ref_sfu sfu[2][RL];
    const float *members[2], *out_w[2], *out_b;
} ref_model;

static ref_model ref_weights(model *m, int h, int K, int layers)
{
    ref_model w = {.h = h, .e = (int)m->e, .K = K, .layers = layers};
    char n[160];
#define P(field, unit, d, l)                                                                                \
    (snprintf(n, sizeof n, "attention.pinet.%s_%c.l%d.%s", unit, "xy"[d], l, field), param_data(m, n))
    for (int d = 0; d < 2; d++) {
        for (int l = 0; l < layers; l++) {
            ref_gru *g[2] = {&w.enc[d][l], &w.ctu[d][l]};
            const char *units[2] = {"enc", "ctu"};
            for (int u = 0; u < 2; u++)
                *g[u] = (ref_gru){P("wx_g", units[u], d, l), P("ws_g", units[u], d, l), P("b_g", units[u], d, l),
                                  P("wx_c", units[u], d, l), P("ws_c", units[u], d, l), P("b_c", units[u], d, l)};
            w.sfu[d][l] = (ref_sfu){P("wx_f", "sfu", d, l), P("ws_f", "sfu", d, l), P("v_f", "sfu", d, l),
                                    P("b_f", "sfu", d, l),  P("wx_s", "sfu", d, l), P("ws_s", "sfu", d, l),
                                    P("b_s", "sfu", d, l)};
        }
        snprintf(n, sizeof n, "attention.pinet.sfu_%c.members", "xy"[d]);
        w.members[d] = param_data(m, n);
        snprintf(n, sizeof n, "attention.pinet.out_%c.w", "xy"[d]);
        w.out_w[d] = param_data(m, n);
    }
#undef P
    w.out_b = param_data(m, "attention.pinet.out.b");
    return w;
}

static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

/* y[o] += sum_i w[o*in + i] x[i] */
static void mv(const float *w, const double *x, int in, int out, double *y)
{
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) y[o] += w[o * in + i] * x[i];
}

/* GRUCell.call: [r, u] = sigmoid([x, s] gate_kernel + b), c = tanh([x, r s] cand_kernel + b_c) */
static void ref_gru_step(const ref_gru *c, const double *x, int in, double *s, int h)
{
    double gt[2 * RH], rs[RH], cd[RH];
    for (int j = 0; j < 2 * h; j++) gt[j] = c->b_g[j];
    mv(c->wx_g, x, in, 2 * h, gt);
    mv(c->ws_g, s, h, 2 * h, gt);
    for (int j = 0; j < h; j++) rs[j] = sigm(gt[j]) * s[j], cd[j] = c->b_c[j];
    mv(c->wx_c, x, in, h, cd);
    mv(c->ws_c, rs, h, h, cd);
    for (int j = 0; j < h; j++) {
        double u = sigm(gt[h + j]);
        s[j] = u * s[j] + (1 - u) * tanh(cd[j]);
    }
}

/* FilterCell.call: f = sigmoid([x, s] W_f + b_f + u_k), _s = tanh([x_A, s] W_s + b_s + u_k) with
 * u_k = member_k V_f (the gate's), new_s = mean_k (f s + (1 - f) _s) */
static void ref_sfu_step(const ref_model *w, const ref_sfu *c, const float *members, const double *x, int in,
                         double *s)
{
    const int h = w->h;
    double gate[RH] = {0}, cand[RH] = {0}, out[RH] = {0};
    for (int j = 0; j < h; j++) gate[j] = c->b_f[j], cand[j] = c->b_s[j];
    mv(c->wx_f, x, in, h, gate);
    mv(c->ws_f, s, h, h, gate);
    mv(c->wx_s, x, in / 2, h, cand);
    mv(c->ws_s, s, h, h, cand);
    for (int k = 0; k < w->K; k++) {
        double mk[RE], u[RH] = {0};
        for (int i = 0; i < w->e; i++) mk[i] = members[k * w->e + i];
        mv(c->v_f, mk, w->e, h, u);
        for (int j = 0; j < h; j++) {
            double f = sigm(gate[j] + u[j]);
            out[j] += (f * s[j] + (1 - f) * tanh(cand[j] + u[j])) / w->K;
        }
    }
    memcpy(s, out, sizeof(double) * (size_t)h);
}

/* dynamic_rnn over a MultiRNNCell: x [T][in0] in, out [T][h] the last layer's outputs; the final
 * state is out[T-1] (no dropout), or 0 for T = 0. */
static void ref_unit(const ref_model *w, const ref_gru *gru, const ref_sfu *sfu, const float *members,
                     double x[][2 * RH], int in0, int T, double out[][2 * RH])
{
    double cur[RT][2 * RH];
    memcpy(cur, x, sizeof(double) * 2 * RH * (size_t)T);
    int in = in0;
    for (int l = 0; l < w->layers; l++) {
        double s[RH] = {0};
        for (int t = 0; t < T; t++) {
            if (gru) ref_gru_step(&gru[l], cur[t], in, s, w->h);
            else ref_sfu_step(w, &sfu[l], members, cur[t], in, s);
            memcpy(out[t], s, sizeof(double) * (size_t)w->h);
        }
        memcpy(cur, out, sizeof(double) * 2 * RH * (size_t)T);
        in = w->h;
    }
}

/* The logits of every item after the session s[0..m-1] (processdata: seq_A, seq_B, pos_A, pos_B;
 * then the model), X items against pred_A, Y items against pred_B. */
static void ref_session(const ref_model *w, const float *E, const int32_t *s, int m, double *logits)
{
    const int h = w->h;
    int32_t seq[2][RT];
    int len[2] = {0, 0}, pos[2][RT];
    for (int i = 0; i < m; i++) {
        const int d = s[i] >= NX;
        pos[d][len[d]] = len[1 - d]; /* the other domain's items so far */
        seq[d][len[d]++] = s[i];
    }
    double enc[2][RT][2 * RH], fin[2][RT][2 * RH], filt[2][RT][2 * RH], ctu[2][RT][2 * RH];
    double est[2][RH] = {{0}}, tst[2][RH] = {{0}};
    for (int d = 0; d < 2; d++) {
        double x[RT][2 * RH] = {{0}};
        for (int t = 0; t < len[d]; t++)
            for (int i = 0; i < w->e; i++) x[t][i] = E[seq[d][t] * w->e + i];
        ref_unit(w, w->enc[d], NULL, NULL, x, w->e, len[d], enc[d]);
        if (len[d]) memcpy(est[d], enc[d][len[d] - 1], sizeof(double) * (size_t)h);
    }
    for (int d = 0; d < 2; d++) {
        for (int t = 0; t < len[d]; t++)
            for (int j = 0; j < h; j++) {
                fin[d][t][j] = enc[d][t][j];
                fin[d][t][h + j] = pos[d][t] ? enc[1 - d][pos[d][t] - 1][j] : 0.0; /* [zero; outputs][pos] */
            }
        ref_unit(w, NULL, w->sfu[d], w->members[d], fin[d], 2 * h, len[d], filt[d]);
        ref_unit(w, w->ctu[d], NULL, NULL, filt[d], h, len[d], ctu[d]);
        if (len[d]) memcpy(tst[d], ctu[d][len[d] - 1], sizeof(double) * (size_t)h);
    }
    for (int j = 0; j < NI; j++) {
        const int d = j >= NX, row = j - (d ? NX : 0);
        const float *wr = w->out_w[d] + row * 2 * h;
        logits[j] = w->out_b[j];
        for (int i = 0; i < h; i++) logits[j] += wr[i] * tst[1 - d][i] + wr[h + i] * est[d][i];
    }
}

static void check_reference(const char *label, const char *extra, int64_t e, int h, int K, int layers)
{
    model m;
    build_ok(&m, extra, e);
    tema_stream s = run(&m, g_seq, B4, L7, false);
    ref_model w = ref_weights(&m, h, K, layers);
    const int64_t W = 4 * h + 1;
    for (int b = 0; b < B4; b++) {
        int32_t sess[LMAX];
        int len = 0;
        for (int p = 0; p < L7; p++) {
            if (g_seq[b * L7 + p] >= 0) sess[len++] = g_seq[b * L7 + p];
            double want[NI];
            ref_session(&w, m.table->data, sess, len, want);
            const float *hp = s.h->data + (b * L7 + p) * W;
            for (int j = 0; j < NI; j++) {
                double got = 0;
                for (int64_t c = 0; c < W; c++) got += (double)hp[c] * s.items->data[j * W + c];
                ck_assert_msg(fabs(got - want[j]) <= 1e-5 * (1 + fabs(want[j])),
                              "pinet (%s): row %d position %d item %d: logit %.7f, reference %.7f", label, b, p, j, got,
                              want[j]);
            }
        }
    }
    release(&m);
}

START_TEST(logits_match_the_official_computation)
{
    check_reference("defaults but widths", "hidden: 4\n", 3, 4, 4, 1);
    check_reference("two layers, two members", "hidden: 6\nmembers: 2\nlayers: 2\n", 5, 6, 2, 2);
    check_reference("one member", "hidden: 3\nmembers: 1\n", 5, 3, 1, 1);
}
END_TEST

/* Training mode draws dropout masks, evaluation mode does not: the same weights give other states. */
START_TEST(dropout_acts_in_training_only)
{
    model m;
    build_ok(&m, "hidden: 4\ndropout: 0.5\n", 3);
    const int64_t n = (int64_t)B4 * L7 * 17;
    float *ev = malloc(sizeof(float) * (size_t)n);
    tema_stream s = run(&m, g_seq, B4, L7, false);
    memcpy(ev, s.h->data, sizeof(float) * (size_t)n);
    s = run(&m, g_seq, B4, L7, false);
    ck_assert(!memcmp(ev, s.h->data, sizeof(float) * (size_t)n));
    s = run(&m, g_seq, B4, L7, true);
    int64_t differ = 0;
    for (int64_t i = 0; i < n; i++) differ += ev[i] != s.h->data[i];
    ck_assert_msg(differ > n / 4, "only %lld of %lld state entries changed under dropout", (long long)differ,
                  (long long)n);
    free(ev);
    release(&m);
}
END_TEST

/* ---------------- gradients ---------------- */

/* the next item of every non-padding position of g_seq that has one */
enum { GR = 14 };
static const int32_t g_grow[GR] = {1, 2, 3, 4, 5, 10, 11, 12, 14, 15, 16, 17, 18, 19};
static const int32_t g_gtgt[GR] = {5, 6, 2, 8, 2, 6, 6, 5, 3, 4, 0, 3, 4, 8};

/* Mean cross-entropy over the target's domain of the rows g_grow, as the full softmax computes it. */
static double objective(model *m, bool backward)
{
    tema_stream s = run(m, g_seq, B4, L7, true);
    const tema_nn_api *nn = tema_nn();
    tema_graph *g = m->g;
    int32_t lo[GR], hi[GR];
    for (int r = 0; r < GR; r++) lo[r] = g_gtgt[r] < NX ? 0 : NX, hi[r] = g_gtgt[r] < NX ? NX : NI;
    tema_tensor *h = nn->gather_rows(g, s.h, g_grow, GR);
    tema_tensor *z = nn->rowdot(g, h, s.items, g_gtgt, 1.0f), *lse = nn->lse_chunked(g, h, s.items, lo, hi, 1.0f, 3);
    tema_tensor *loss = nn->mean(g, nn->add(g, lse, nn->scale(g, z, -1.0f)));
    ck_assert_msg(loss != NULL, "%s", nn->error(g));
    double v = loss->data[0];
    if (backward) {
        tema_err err = {0};
        tema_params_zero_grad(m->params);
        ck_assert_msg(tema_graph_backward(g, loss, &err) == TEMA_OK, "%s", err.msg);
    }
    return v;
}

static double objective_forward(void *m) { return objective(m, false); }

/* Every entry against a central difference, and every parameter tensor reached by the backward pass
 * (some only faintly: deep in a stack the differences cannot resolve them, hence min_nonzero). */
static void check_gradients(const char *label, const char *extra, double min_nonzero)
{
    model m;
    build_ok(&m, extra, 3);
    double l0 = objective(&m, true);
    ck_assert_msg(isfinite(l0), "loss %g", l0);
    ck_assert_double_eq(objective(&m, false), l0); /* dropout masks are the graph seed's */
    for (size_t i = 0; i < tema_params_n(m.params); i++) {
        const tema_tensor *t = tema_params_at(m.params, i);
        float most = 0;
        for (int64_t j = 0; j < t->size; j++) most = fmaxf(most, fabsf(t->grad[j]));
        ck_assert_msg(most > 0, "pinet (%s): %s gets no gradient", label, t->name);
    }
    char who[96];
    snprintf(who, sizeof who, "pinet (%s)", label);
    int64_t nonzero, checked = tu_check_param_grads(m.params, objective_forward, &m, who, &nonzero);
    fprintf(stderr, "pinet (%s): %lld parameter entries checked, %lld with a non-zero gradient\n", label,
            (long long)checked, (long long)nonzero);
    ck_assert_msg((double)nonzero >= min_nonzero * (double)checked, "pinet (%s): only %lld of %lld non-zero", label,
                  (long long)nonzero, (long long)checked);
    release(&m);
}

START_TEST(gradients_match_finite_differences)
{
    check_gradients("dropout 0.2, one layer", "hidden: 4\nmembers: 3\n", 0.6);
    check_gradients("no dropout, one member", "hidden: 3\nmembers: 1\ndropout: 0\n", 0.6);
    check_gradients("dropout 0.2, two layers", "hidden: 4\nmembers: 2\nlayers: 2\n", 0.4);
}
END_TEST

/* ---------------- training ---------------- */

enum { TB = 12, TL = 6, TSTEPS = 40 };

/* Seeded synthetic accounts: each next item is, 4 times in 5, a fixed function of the last item of
 * the domain it falls in (X: 2i+1 mod NX, Y: a cycle), the domain itself drawn at random; lengths
 * vary (left padding). Targets: the next item of every shown position. */
static int synth_batch(uint64_t *state, int32_t *seq, int32_t *row, int32_t *tgt)
{
    int n = 0;
    for (int b = 0; b < TB; b++) {
        int32_t s[TL + 1], last[2] = {0, NX};
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        const int len = 3 + (int)((*state >> 33) % (TL - 2));
        for (int i = 0; i <= len; i++) {
            *state = *state * 6364136223846793005ull + 1442695040888963407ull;
            const int d = (int)((*state >> 40) & 1);
            if ((*state >> 33) % 5 == 0)
                s[i] = d ? NX + (int32_t)((*state >> 45) % NY) : (int32_t)((*state >> 45) % NX);
            else
                s[i] = d ? NX + (last[1] - NX + 1) % NY : (2 * last[0] + 1) % NX;
            last[d] = s[i];
        }
        for (int p = 0; p < TL; p++) {
            const int i = p - (TL - len);
            seq[b * TL + p] = i >= 0 ? s[i] : -1;
            if (i >= 0) row[n] = b * TL + p, tgt[n++] = s[i + 1];
        }
    }
    return n;
}

static double train_loss(model *m, const int32_t *seq, const int32_t *row, const int32_t *tgt, int n)
{
    const tema_nn_api *nn = tema_nn();
    split_domains(seq, TB, TL, g_sx, g_sy);
    tema_batch b = {.struct_size = sizeof b, .B = TB, .L = TL, .seq = seq, .seq_x = g_sx, .seq_y = g_sy};
    tema_graph_reset(m->g, true, 5);
    tema_err err = {0};
    tema_stream s[TEMA_MAX_STREAMS];
    int ns = 0;
    ck_assert_msg(m->ops->forward(m->a, m->g, &b, &m->table, 1, s, &ns, &err) == TEMA_OK, "%s", err.msg);
    int32_t lo[TB * TL], hi[TB * TL];
    for (int r = 0; r < n; r++) lo[r] = tgt[r] < NX ? 0 : NX, hi[r] = tgt[r] < NX ? NX : NI;
    tema_tensor *h = nn->gather_rows(m->g, s[0].h, row, n);
    tema_tensor *z = nn->rowdot(m->g, h, s[0].items, tgt, 1.0f);
    tema_tensor *loss = nn->mean(m->g, nn->add(m->g, nn->lse_chunked(m->g, h, s[0].items, lo, hi, 1.0f, 4),
                                               nn->scale(m->g, z, -1.0f)));
    ck_assert_msg(loss != NULL, "%s", nn->error(m->g));
    tema_params_zero_grad(m->params);
    ck_assert_msg(tema_graph_backward(m->g, loss, &err) == TEMA_OK, "%s", err.msg);
    return loss->data[0];
}

/* TSTEPS Adam steps from seed 7: the loss of every step and the final parameters. */
static void train(double *losses, float **final, int64_t *n_final)
{
    model m;
    tema_err err = {0};
    ck_assert_msg(build(&m, "hidden: 8\nmembers: 2\ndropout: 0.1\n", 6, 1, 7, &err) == TEMA_OK, "%s", err.msg);
    tema_adam opt = {.lr = 0.02f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0};
    uint64_t state = 12345;
    int32_t seq[TB * TL], row[TB * TL], tgt[TB * TL];
    for (int s = 0; s < TSTEPS; s++) {
        int n = synth_batch(&state, seq, row, tgt);
        losses[s] = train_loss(&m, seq, row, tgt, n);
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
    double l1[TSTEPS], l2[TSTEPS];
    float *p1, *p2;
    int64_t n1, n2;
    train(l1, &p1, &n1);
    train(l2, &p2, &n2);
    double first = (l1[0] + l1[1] + l1[2]) / 3, last = (l1[TSTEPS - 3] + l1[TSTEPS - 2] + l1[TSTEPS - 1]) / 3;
    fprintf(stderr, "pinet training: loss %.4f over the first 3 steps, %.4f over the last 3 (ln %d = %.4f)\n", first,
            last, NX, log(NX));
    ck_assert_msg(last < 0.7 * first, "loss %.4f -> %.4f: not learning", first, last);
    ck_assert_int_eq(n1, n2);
    ck_assert_msg(!memcmp(l1, l2, sizeof l1), "the two runs' losses differ");
    ck_assert_msg(!memcmp(p1, p2, sizeof(float) * (size_t)n1), "the two runs' parameters differ");
    free(p1);
    free(p2);
}
END_TEST

/* ---------------- configurations ---------------- */

START_TEST(unsupported_setups_fail_at_create_and_check)
{
    tu_cpu_registry();
    const tema_plugin *p = tema_plugin_entry_test_pinet(tema_host_get());
    const tema_attention_ops *ops = p->ops;
    struct {
        const char *opts;
        int n_enc, n_y;
        const char *msg; /* NULL: accepted */
        bool at_check;   /* the check op says the same */
    } cases[] = {
        {NULL, 2, NY, "exactly one encoder, got 2", true},
        {NULL, 0, NY, "exactly one encoder, got 0", true},
        {"layers: 2\nhidden: 5\n", 1, NY, "needs an even hidden width, got hidden = 5", true},
        {"layers: 3\nhidden: 7\nmembers: 2\n", 1, NY, "hint: hidden: 8, or layers: 1", true},
        {NULL, 1, 0, "needs items in both domains", false},
        {"layers: 2\nhidden: 6\n", 1, NY, NULL, false},
        {"hidden: 5\n", 1, NY, NULL, false},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tema_params *params = tema_params_new(1);
        tema_model_info info = make_info(params);
        info.n_y = cases[c].n_y;
        const int64_t dims[2] = {4, 4};
        static const char *const mods[2] = {"id", "tag"};
        tema_cfg *o = tu_plugin_opts(p, cases[c].opts);
        void *self = NULL;
        tema_err err = {0}, cerr = {0};
        tema_status st = ops->create(&info, o, dims, mods, cases[c].n_enc, &self, &err);
        tema_status cst = ops->check(tema_host_get(), o, dims, cases[c].n_enc, &cerr);
        tema_cfg_free(o);
        if (self) ops->destroy(self);
        tema_params_free(params);
        if (!cases[c].msg) {
            ck_assert_msg(st == TEMA_OK && cst == TEMA_OK, "case %zu: %s %s", c, err.msg, cerr.msg);
            continue;
        }
        ck_assert_msg(st == TEMA_EINVAL && strstr(err.msg, cases[c].msg), "case %zu: status %d: %s", c, st, err.msg);
        if (cases[c].at_check)
            ck_assert_msg(cst == TEMA_EINVAL && !strcmp(cerr.msg, err.msg), "case %zu: check %d: %s", c, cst, cerr.msg);
        else
            ck_assert_msg(cst == TEMA_OK, "case %zu: check %d: %s", c, cst, cerr.msg);
    }
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
             "  encoders: [{plugin: id, dim: 16}]\n"
             "  attention: {plugin: pinet, hidden: 12, members: 3, dropout: 0.2}\n"
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
    snprintf(exp, sizeof exp, "%s/pinet.yaml", tmp);
    write_exp(exp, "toy-pinet");
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
        sum[i] = run_summary(tu_run_dir(args, "toy-pinet"), &first, &last);
        ck_assert_msg(last < first, "training loss did not decrease: %g -> %g", first, last);
    }
    ck_assert_str_eq(sum[0], sum[1]);
    free(sum[0]);
    free(sum[1]);
}
END_TEST

START_TEST(check_reports_what_the_plugin_cannot_build)
{
    TU_REQUIRE_DATA("toy");
    const char *tmp = tu_tmpdir();
    char exp[4200], args[9000];
    snprintf(exp, sizeof exp, "%s/check.yaml", tmp);
    write_exp(exp, "toy-pinet-check");
    char *out, *err;
    snprintf(args, sizeof args, "check '%s' --set model.attention.layers=2", exp);
    ck_assert_int_eq(tu_tema(args, &out, &err), 0);
    free(out);
    free(err);
    /* an odd width under stacked layers: located at the attention block, with the fix */
    snprintf(args, sizeof args, "check '%s' --set model.attention.layers=2 --set model.attention.hidden=13", exp);
    ck_assert_int_ne(tu_tema(args, &out, &err), 0);
    ck_assert_msg(strstr(err, "check.yaml:6:") && strstr(err, "model.attention") && strstr(err, "hidden = 13") &&
                      strstr(err, "hint: hidden: 14, or layers: 1"),
                  "stderr: %s", err);
    free(out);
    free(err);
    snprintf(args, sizeof args, "check '%s' --set model.attention.members=0", exp);
    ck_assert_int_ne(tu_tema(args, &out, &err), 0);
    ck_assert_msg(strstr(err, "members"), "stderr: %s", err);
    free(out);
    free(err);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("pinet");
    TCase *unit = tcase_create("unit");
    tcase_add_test(unit, filter_reads_the_other_encoder_at_the_official_pos);
    tcase_add_test(unit, logits_match_the_official_computation);
    tcase_add_test(unit, dropout_acts_in_training_only);
    tcase_add_test(unit, gradients_match_finite_differences);
    tcase_add_test(unit, training_lowers_the_loss_deterministically);
    tcase_add_test(unit, unsupported_setups_fail_at_create_and_check);
    suite_add_tcase(s, unit);
    TCase *e2e = tcase_create("end_to_end");
    tcase_add_test(e2e, toy_runs_learn_and_repeat_bit_for_bit);
    tcase_add_test(e2e, check_reports_what_the_plugin_cannot_build);
    suite_add_tcase(s, e2e);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
