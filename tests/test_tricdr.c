/* tests/test_tricdr.c - the Tri-CDR attention plugin (plugins/attention/tricdr.c, compiled into
 * this suite so its static parts can be checked one by one): which facts each row's triple
 * cross-domain attention sees, the attention and fusion against the official formula
 * re-computed in double, the stream's per-domain blocks, NT-Xent and the triplet term against
 * torch's formulas, which sequences the contrastive terms use, gradients of the whole objective
 * (stream + aux_loss) against finite differences, configuration errors (create and
 * `tema check`), and end-to-end runs on the toy data (loss decreases, bit-identical at one
 * thread). */
#define TEMA_PLUGIN_STATIC_NAME tema_plugin_entry_test_tricdr
#include "attention/tricdr.c"

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

/* X = 0..4, Y = 5..8. Row 2 has X items only; every other row both domains. */
enum { PB = 5, PL = 5 };
static const int32_t g_seq[PB * PL] = {
    -1, 0, 5, 1, 6,  /* then 2 (X) */
    -1, -1, 0, 5, 1, /* then 7 (Y) */
    -1, -1, -1, 0, 1, /* then 2 (X) */
    6, 2, 7, 3, 8,   /* then 4 (X) */
    -1, 5, 0, 8, 2,  /* then 6 (Y) */
};
static const int32_t g_final[PB] = {2, 7, 2, 4, 6};

static tema_model_info make_info(tema_params *params)
{
    return (tema_model_info){.struct_size = sizeof(tema_model_info), .n_x = NX, .n_y = NY, .max_len = LMAX,
                             .train_counts = g_counts, .seed = 3, .params = params, .host = tema_host_get()};
}

static int32_t g_sx[PB * PL], g_sy[PB * PL];

static tema_batch make_batch(void)
{
    for (int b = 0; b < PB; b++) {
        int px = PL, py = PL;
        for (int p = 0; p < PL; p++) g_sx[b * PL + p] = g_sy[b * PL + p] = -1;
        for (int p = PL - 1; p >= 0; p--) {
            int32_t v = g_seq[b * PL + p];
            if (v < 0) continue;
            if (v < NX) g_sx[b * PL + --px] = v;
            else g_sy[b * PL + --py] = v;
        }
    }
    return (tema_batch){.struct_size = sizeof(tema_batch), .B = PB, .L = PL, .seq = g_seq, .seq_x = g_sx, .seq_y = g_sy};
}

/* The targets the trainer forms: every item's next item, the window's last row the item after it. */
static int32_t g_trow[PB * PL], g_ttgt[PB * PL], g_tlo[PB * PL], g_thi[PB * PL];
static float g_tw[PB * PL];

static tema_targets make_targets(void)
{
    int64_t n = 0;
    for (int b = 0; b < PB; b++)
        for (int p = 0; p < PL; p++) {
            if (g_seq[b * PL + p] < 0) continue;
            const int32_t t = p == PL - 1 ? g_final[b] : g_seq[b * PL + p + 1];
            g_trow[n] = b * PL + p;
            g_ttgt[n] = t;
            g_tlo[n] = t < NX ? 0 : NX;
            g_thi[n] = t < NX ? NX : NI;
            g_tw[n++] = 1.0f;
        }
    return (tema_targets){.struct_size = sizeof(tema_targets), .rows = n, .row_index = g_trow, .target = g_ttgt,
                          .lo = g_tlo, .hi = g_thi, .weight = g_tw, .seed = 1234};
}

/* ---------------- a model on test data ---------------- */

typedef struct model {
    const tema_attention_ops *ops;
    tc_model *a;
    tema_params *params;
    tema_graph *g;
    tema_tensor *table; /* the id encoder's stand-in */
} model;

static tema_status build(model *m, const char *extra, tema_err *err)
{
    tu_cpu_registry();
    memset(m, 0, sizeof *m);
    const tema_plugin *p = tema_plugin_entry_test_tricdr(tema_host_get());
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

static int forward(model *m, bool training, tema_batch *b, tema_stream *s)
{
    *b = make_batch();
    tema_graph_reset(m->g, training, 99);
    tema_err err = {0};
    int n = 0;
    ck_assert_msg(m->ops->forward(m->a, m->g, b, &m->table, 1, s, &n, &err) == TEMA_OK, "%s", err.msg);
    return n;
}

/* ---------------- which facts each row attends to ---------------- */

/* Per row (b*PL + p), by hand from g_seq: the items of each kind at or before p. */
static const int g_nfacts[3][PB * PL] = {
    [TC_M] = {0, 1, 2, 3, 4, 0, 0, 1, 2, 3, 0, 0, 0, 1, 2, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4},
    [TC_X] = {0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 0, 0, 0, 1, 2, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2},
    [TC_Y] = {0, 0, 1, 1, 2, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 0, 1, 1, 2, 2},
};

START_TEST(each_row_attends_to_the_facts_at_or_before_it)
{
    model m;
    tema_err err = {0};
    ck_assert_msg(build(&m, NULL, &err) == TEMA_OK, "%s", err.msg);
    tema_batch b = make_batch();
    tc_model *a = m.a;
    a->B = PB, a->L = PL;
    ck_assert_msg(tc_layouts(a, &b, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_int_eq(a->lay[TC_X].Lc, 2);
    ck_assert_int_eq(a->lay[TC_Y].Lc, 3);
    for (int k = 0; k < 3; k++) {
        const tc_facts f = k == TC_M ? (tc_facts){NULL, PL, a->pos_m} : (tc_facts){NULL, a->lay[k].Lc, a->lay[k].pos};
        const int64_t n = tc_pairs(a, &f);
        int64_t want = 0, seen = 0;
        for (int r = 0; r < PB * PL; r++) {
            want += g_nfacts[k][r];
            int on = 0;
            for (int64_t j = 0; j < f.Lf; j++) {
                const int32_t pair = a->dense[r * f.Lf + j];
                ck_assert_int_eq(a->mask[r * f.Lf + j], pair >= 0);
                if (pair < 0) continue;
                on++;
                /* pairs are listed row by row, each naming its row and fact */
                ck_assert_int_eq(pair, seen++);
                ck_assert_int_eq(a->pair_row[pair], r);
                ck_assert_int_eq(a->pair_fact[pair], (r / PL) * f.Lf + j);
                /* the fact is an item of this kind at or before the row */
                const int32_t t = f.time[(r / PL) * f.Lf + j];
                ck_assert(t >= 0 && t <= r % PL);
                ck_assert(ss_in_kind(g_seq[(r / PL) * PL + t], k, NX));
            }
            ck_assert_msg(on == g_nfacts[k][r], "kind %d row %d: %d facts, want %d", k, r, on, g_nfacts[k][r]);
        }
        ck_assert_int_eq(n, want);
    }
    release(&m);
}
END_TEST

/* ---------------- the TCA and the fusion against the official formula, in double ---------------- */

static double ref_prelu(double x, double a) { return x >= 0 ? x : a * x; }

/* out[o] = w[o, :] . x + b[o] for w [rows, cols] */
static void ref_linear(const tema_tensor *w, const tema_tensor *b, const double *x, double *out)
{
    const int64_t rows = w->shape[0], cols = w->shape[1];
    for (int64_t o = 0; o < rows; o++) {
        double s = b->data[o];
        for (int64_t i = 0; i < cols; i++) s += (double)w->data[o * cols + i] * x[i];
        out[o] = s;
    }
}

/* The state of the k-th item of kind `kind` (in time order) of sequence b: its row in the
 * stack output, found from g_seq (right-aligned in the compact layout). */
static const float *ref_state(const tc_model *a, int kind, int b, int p)
{
    if (kind == TC_M) return a->h_seq[TC_M]->data + (b * PL + p) * DIM;
    int n = 0, k = 0;
    for (int i = 0; i < PL; i++) n += ss_in_kind(g_seq[b * PL + i], kind, NX);
    for (int i = 0; i < p; i++) k += ss_in_kind(g_seq[b * PL + i], kind, NX);
    const int64_t Lc = a->lay[kind].Lc;
    return a->h_seq[kind]->data + (b * Lc + Lc - n + k) * DIM;
}

/* DINAttentionLayer_withmixattn for merged row (b, p), direction dir, role: [DIM]. */
static void ref_tca(const tc_model *a, int dir, int role, int b, int p, double *out)
{
    const tc_head *h = &a->head[dir];
    const int tgt = dir == 0 ? TC_X : TC_Y, src = dir == 0 ? TC_Y : TC_X;
    const int kind = role == TC_MIX ? TC_M : role == TC_SRC ? src : tgt;
    double q[DIM] = {0}, m[DIM] = {0};
    int nm = 0;
    for (int i = 0; i <= p; i++) {
        const int32_t v = g_seq[b * PL + i];
        if (v < 0) continue;
        nm++;
        for (int c = 0; c < DIM; c++) m[c] += ref_state(a, TC_M, b, i)[c];
        if (ss_in_kind(v, tgt, NX))
            for (int c = 0; c < DIM; c++) q[c] = ref_state(a, tgt, b, i)[c]; /* the last one stays */
    }
    for (int c = 0; c < DIM && nm; c++) m[c] /= nm;
    const double a1 = TC_PRELU_INIT + h->prelu[0]->data[0], a2 = TC_PRELU_INIT + h->prelu[1]->data[0];
    double score[PL], fact[PL][DIM], mx = -INFINITY;
    int nf = 0;
    for (int i = 0; i <= p; i++) {
        if (!ss_in_kind(g_seq[b * PL + i], kind, NX)) continue;
        const float *f = ref_state(a, kind, b, i);
        double x[5 * DIM], z1[64], z2[64], s;
        for (int c = 0; c < DIM; c++) {
            fact[nf][c] = f[c];
            x[c] = f[c], x[DIM + c] = q[c], x[2 * DIM + c] = f[c] * q[c], x[3 * DIM + c] = q[c] - f[c];
            x[4 * DIM + c] = m[c];
        }
        ref_linear(h->att_w[0], h->att_b[0], x, z1);
        for (int64_t o = 0; o < h->att_w[0]->shape[0]; o++) z1[o] = ref_prelu(z1[o], a1);
        ref_linear(h->att_w[1], h->att_b[1], z1, z2);
        for (int64_t o = 0; o < h->att_w[1]->shape[0]; o++) z2[o] = ref_prelu(z2[o], a2);
        ref_linear(h->att_w[2], h->att_b[2], z2, &s);
        score[nf++] = s;
        if (s > mx) mx = s;
    }
    double tot = 0;
    for (int i = 0; i < nf; i++) tot += score[i] = exp(score[i] - mx);
    for (int c = 0; c < DIM; c++) {
        out[c] = 0;
        for (int i = 0; i < nf; i++) out[c] += score[i] / tot * fact[i][c];
    }
}

START_TEST(attention_and_fusion_follow_the_official_formula)
{
    model m;
    tema_err err = {0};
    /* small hidden widths so the reference's buffers hold them; PReLU shifted off 0.25 */
    ck_assert_msg(build(&m, "dropout: 0\nheads: 2\natt_hidden_1: 7\natt_hidden_2: 5\n", &err) == TEMA_OK, "%s",
                  err.msg);
    tc_model *a = m.a;
    a->head[0].prelu[0]->data[0] = 0.1f, a->head[1].prelu[1]->data[0] = -0.05f;
    tema_batch b;
    tema_stream s[TEMA_MAX_STREAMS];
    ck_assert_int_eq(forward(&m, true, &b, s), 1);
    ck_assert_int_eq(s[0].h->shape[1], 2 * DIM);
    ck_assert_float_eq_tol(s[0].inv_temp, 5.0f, 1e-6f); /* the official --temperature */
    int pooled_several = 0;
    for (int dir = 0; dir < 2; dir++) {
        const tc_head *h = &a->head[dir];
        for (int r = 0; r < PB * PL; r++) {
            double o[3][DIM], cat[3 * DIM], f1[DIM], f2[DIM], norm = 0;
            for (int role = 0; role < 3; role++) {
                ref_tca(a, dir, role, r / PL, r % PL, o[role]);
                for (int c = 0; c < DIM; c++) {
                    ck_assert_msg(fabs(o[role][c] - a->tca[dir][role]->data[r * DIM + c]) < 1e-5,
                                  "dir %d role %d row %d [%d]: %g, reference %g", dir, role, r, c,
                                  (double)a->tca[dir][role]->data[r * DIM + c], o[role][c]);
                    cat[role * DIM + c] = o[role][c];
                }
            }
            pooled_several += g_nfacts[TC_M][r] > 1;
            ref_linear(h->fuse_w[0], h->fuse_b[0], cat, f1);
            for (int c = 0; c < DIM; c++) f1[c] = f1[c] > 0 ? f1[c] : 0.01 * f1[c];
            ref_linear(h->fuse_w[1], h->fuse_b[1], f1, f2);
            for (int c = 0; c < DIM; c++) norm += f2[c] * f2[c];
            for (int c = 0; c < DIM; c++)
                ck_assert_float_eq_tol(s[0].h->data[r * 2 * DIM + dir * DIM + c], f2[c] / sqrt(norm), 1e-5);
        }
    }
    ck_assert_int_gt(pooled_several, 10);
    /* items: an X item is its normalised E_X row in the X block and 0 in the Y block */
    for (int j = 0; j < NI; j++) {
        const tema_tensor *e = a->emb[j < NX ? TC_X : TC_Y];
        const float *row = e->data + (j < NX ? j : j - NX) * DIM;
        double norm = 0;
        for (int c = 0; c < DIM; c++) norm += (double)row[c] * row[c];
        for (int c = 0; c < DIM; c++) {
            const float *it = s[0].items->data + j * 2 * DIM;
            ck_assert_float_eq_tol(it[(j < NX ? 0 : DIM) + c], row[c] / sqrt(norm), 1e-6);
            ck_assert_float_eq(it[(j < NX ? DIM : 0) + c], 0.0f);
        }
    }
    /* evaluation: the same stream (no dropout at 0) */
    float h0[PB * PL * 2 * DIM];
    memcpy(h0, s[0].h->data, sizeof h0);
    ck_assert_int_eq(forward(&m, false, &b, s), 1);
    for (int i = 0; i < PB * PL * 2 * DIM; i++) ck_assert_float_eq_tol(s[0].h->data[i], h0[i], 1e-6f);
    release(&m);
}
END_TEST

/* ---------------- the contrastive terms ---------------- */

static double rand_unit(uint64_t *s) /* splitmix64 -> [0, 1) */
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

/* The official NTXentLoss (model.py) in double. */
static double ref_ntxent(const float *x, const float *y, int n, double tau)
{
    double z[2 * 8][DIM], loss = 0;
    for (int i = 0; i < 2 * n; i++) {
        const float *v = i < n ? x + i * DIM : y + (i - n) * DIM;
        double nr = 0;
        for (int c = 0; c < DIM; c++) nr += (double)v[c] * v[c];
        for (int c = 0; c < DIM; c++) z[i][c] = v[c] / sqrt(nr);
    }
    for (int i = 0; i < 2 * n; i++) {
        double neg = 0, pos = 0;
        for (int j = 0; j < 2 * n; j++) {
            double s = 0;
            for (int c = 0; c < DIM; c++) s += z[i][c] * z[j][c];
            neg += exp(s / tau);
            if (j == (i + n) % (2 * n)) pos = exp(s / tau);
        }
        neg = fmax(neg - exp(1 / tau), 1e-6);
        loss += -log(pos / (neg + 1e-6));
    }
    return loss / (2 * n);
}

/* torch's TripletMarginLoss(margin, p = 2, eps = 1e-6) in double. */
static double ref_triplet(const float *an, const float *po, const float *ne, int n, double margin)
{
    double loss = 0;
    for (int i = 0; i < n; i++) {
        double dp = 0, dn = 0;
        for (int c = 0; c < DIM; c++) {
            const double u = an[i * DIM + c] - po[i * DIM + c] + 1e-6, v = an[i * DIM + c] - ne[i * DIM + c] + 1e-6;
            dp += u * u, dn += v * v;
        }
        loss += fmax(sqrt(dp) - sqrt(dn) + margin, 0);
    }
    return loss / n;
}

START_TEST(contrastive_terms_are_torchs)
{
    model m;
    tema_err err = {0};
    ck_assert_msg(build(&m, "cl_temperature: 0.3\ntriplet_margin: 1.5\n", &err) == TEMA_OK, "%s", err.msg);
    const tema_nn_api *nn = tema_nn();
    uint64_t state = 77;
    for (int n = 1; n <= 7; n += 3) {
        float v[3][8 * DIM];
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < n * DIM; i++) v[k][i] = (float)(rand_unit(&state) * 2 - 1);
        tema_graph_reset(m.g, true, 1);
        int64_t sh[2] = {n, DIM};
        tema_tensor *t[3];
        for (int k = 0; k < 3; k++) t[k] = nn->tensor(m.g, 2, sh, v[k]);
        tema_tensor *c = tc_ntxent(m.a, m.g, t[0], t[1], n), *f = tc_triplet(m.a, m.g, t[0], t[1], t[2], n);
        ck_assert_msg(c && f, "%s", nn->error(m.g));
        ck_assert_msg(fabs(c->data[0] - ref_ntxent(v[0], v[1], n, 0.3)) < 1e-4 * (1 + fabs(c->data[0])),
                      "n %d: NT-Xent %g, reference %g", n, (double)c->data[0], ref_ntxent(v[0], v[1], n, 0.3));
        ck_assert_msg(fabs(f->data[0] - ref_triplet(v[0], v[1], v[2], n, 1.5)) < 1e-5, "n %d: triplet %g, reference %g",
                      n, (double)f->data[0], ref_triplet(v[0], v[1], v[2], n, 1.5));
    }
    release(&m);
}
END_TEST

START_TEST(contrastive_rows_are_windows_before_a_target_of_the_domain_with_both_domains)
{
    model m;
    tema_err err = {0};
    ck_assert_msg(build(&m, NULL, &err) == TEMA_OK, "%s", err.msg);
    tema_targets t = make_targets();
    tc_model *a = m.a;
    a->B = PB, a->L = PL;
    ck_assert(tb_grow((void **)&a->last_rows, &a->last_rows_cap, PB * sizeof(int32_t)));
    /* X next: rows 0 and 3 (row 2 has no Y item); Y next: rows 1 and 4 */
    ck_assert_int_eq(tc_tcl_rows(a, g_seq, &t, 0), 2);
    ck_assert_int_eq(a->last_rows[0], 0 * PL + PL - 1);
    ck_assert_int_eq(a->last_rows[1], 3 * PL + PL - 1);
    ck_assert_int_eq(tc_tcl_rows(a, g_seq, &t, 1), 2);
    ck_assert_int_eq(a->last_rows[0], 1 * PL + PL - 1);
    ck_assert_int_eq(a->last_rows[1], 4 * PL + PL - 1);
    ck_assert_int_eq(tc_tcl_rows(a, g_seq, NULL, 0), 0);
    release(&m);
}
END_TEST

/* ---------------- the whole objective ---------------- */

/* The training objective as the trainer forms it with full_softmax, plus aux_loss. */
static double objective(model *m, bool backward, bool with_aux)
{
    tema_batch b;
    tema_stream s[TEMA_MAX_STREAMS];
    int n = forward(m, true, &b, s);
    const tema_nn_api *nn = tema_nn();
    tema_graph *g = m->g;
    tema_targets t = make_targets();
    for (int d = 0; d < 2; d++)
        for (int q = 0; q < 3; q++) t.seq_weight[d][q] = 1.0f;
    tema_tensor *logp[TEMA_MAX_STREAMS];
    for (int k = 0; k < n; k++) {
        tema_tensor *h = nn->gather_rows(g, s[k].h, g_trow, t.rows);
        tema_tensor *z = nn->rowdot(g, h, s[k].items, g_ttgt, s[k].inv_temp);
        tema_tensor *lse = nn->lse_chunked(g, h, s[k].items, g_tlo, g_thi, s[k].inv_temp, 3);
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

static double objective_no_backward(void *m) { return objective(m, false, true); }

START_TEST(gradients_match_finite_differences)
{
    model m;
    tema_err err = {0};
    ck_assert_msg(build(&m, "dropout: 0\nblocks: 1\nheads: 2\nactivation: gelu\natt_hidden_1: 6\natt_hidden_2: 3\n"
                            "cl_temperature: 0.5\ntriplet_margin: 3\nrate_mix_source: 2\n",
                        &err) == TEMA_OK,
                  "%s", err.msg);
    double l0 = objective(&m, true, true);
    ck_assert_msg(isfinite(l0), "loss %g", l0);
    ck_assert_double_eq(objective(&m, false, true), l0);
    int64_t nonzero, checked = tu_check_param_grads(m.params, objective_no_backward, &m, "tricdr", &nonzero);
    fprintf(stderr, "tricdr: %lld parameter entries checked, %lld with a non-zero gradient\n", (long long)checked,
            (long long)nonzero);
    ck_assert_int_ge(nonzero * 10, checked * 4);
    /* the contrastive projections learn from aux_loss only, and do learn from it */
    objective(&m, true, true);
    double with_aux = 0;
    for (size_t i = 0; i < tema_params_n(m.params); i++) {
        tema_tensor *t = tema_params_at(m.params, i);
        if (strstr(t->name, ".proj_"))
            for (int64_t j = 0; j < t->size; j++) with_aux += fabs(t->grad[j]);
    }
    ck_assert(with_aux > 0);
    objective(&m, true, false);
    for (size_t i = 0; i < tema_params_n(m.params); i++) {
        tema_tensor *t = tema_params_at(m.params, i);
        if (!strstr(t->name, ".proj_")) continue;
        for (int64_t j = 0; j < t->size; j++) ck_assert_float_eq(t->grad[j], 0.0f);
    }
    release(&m);
}
END_TEST

START_TEST(aux_loss_needs_its_forward_and_vanishes_without_weights)
{
    model m;
    tema_err err = {0};
    ck_assert_msg(build(&m, "cl_weight: 0\ntriplet_weight: 0\n", &err) == TEMA_OK, "%s", err.msg);
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

START_TEST(unsupported_setups_fail_at_create_and_check)
{
    tu_cpu_registry();
    const tema_plugin *p = tema_plugin_entry_test_tricdr(tema_host_get());
    const tema_attention_ops *ops = p->ops;
    struct {
        const char *opts;
        int n_enc;
        const char *mod;
        bool in_check; /* check() sees it too (it knows options and encoder widths, not modalities) */
        const char *msg;
    } cases[] = {
        {NULL, 2, "id", true, "exactly one encoder"},
        {NULL, 1, "text", false, "modality id"},
        {"heads: 3\n", 1, "id", true, "heads (3) must divide the width (4)"},
        {"rate_mix_source: 0\nrate_mix_target: 0\nrate_source_target: 0\n", 1, "id", true, "are all 0"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tema_params *params = tema_params_new(1);
        tema_model_info info = make_info(params);
        const int64_t dims[2] = {4, 4};
        const char *mods[2] = {cases[c].mod, "text"};
        tema_cfg *o = tu_plugin_opts(p, cases[c].opts);
        void *self = NULL;
        tema_err err = {0};
        tema_status st = ops->create(&info, o, dims, mods, cases[c].n_enc, &self, &err);
        ck_assert_msg(st == TEMA_EINVAL && strstr(err.msg, cases[c].msg), "case %zu: status %d: %s", c, st, err.msg);
        err = (tema_err){0};
        st = ops->check(tema_host_get(), o, dims, cases[c].n_enc, &err);
        ck_assert_msg(cases[c].in_check ? st == TEMA_EINVAL && strstr(err.msg, cases[c].msg) : st == TEMA_OK,
                      "check, case %zu: status %d: %s", c, st, err.msg);
        tema_cfg_free(o);
        tema_params_free(params);
    }
    /* the rates may all be 0 when the coarse-grained term is off */
    tema_cfg *o = tu_plugin_opts(p, "rate_mix_source: 0\nrate_mix_target: 0\nrate_source_target: 0\ncl_weight: 0\n");
    tema_err err = {0};
    const int64_t dim = 4;
    ck_assert_msg(ops->check(tema_host_get(), o, &dim, 1, &err) == TEMA_OK, "%s", err.msg);
    tema_cfg_free(o);
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
             "  attention: {plugin: tricdr, blocks: 1, heads: 2, dropout: 0.2}\n"
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
    snprintf(exp, sizeof exp, "%s/tricdr.yaml", tmp);
    write_exp(exp, "toy-tricdr");
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
        sum[i] = run_summary(tu_run_dir(args, "toy-tricdr"), &first, &last);
        ck_assert_msg(last < first, "training loss did not decrease: %g -> %g", first, last);
    }
    ck_assert_str_eq(sum[0], sum[1]);
    free(sum[0]);
    free(sum[1]);
}
END_TEST

/* `tema check` fails with a message naming the option and where it is */
static void expect_check_error(const char *exp, const char *set, const char *want1, const char *want2)
{
    char args[9000], *out, *err;
    snprintf(args, sizeof args, "check '%s' %s", exp, set);
    ck_assert_int_ne(tu_tema(args, &out, &err), 0);
    ck_assert_msg(strstr(err, want1) && strstr(err, want2), "%s: stderr: %s", set, err);
    free(out);
    free(err);
}

START_TEST(check_rejects_unsupported_options)
{
    TU_REQUIRE_DATA("toy");
    const char *tmp = tu_tmpdir();
    char exp[4200], args[9000];
    snprintf(exp, sizeof exp, "%s/check.yaml", tmp);
    write_exp(exp, "toy-tricdr-check");
    char *out, *err;
    snprintf(args, sizeof args, "check '%s'", exp);
    ck_assert_msg(tu_tema(args, &out, &err) == 0, "stderr: %s", err);
    free(out);
    free(err);
    expect_check_error(exp, "--set model.attention.activation=tanh", "activation", "tanh");
    expect_check_error(exp, "--set model.attention.cl_temperature=0", "cl_temperature", "0");
    /* the constraints of the plugin's check(), located at the attention entry of the file */
    char where[4300];
    snprintf(where, sizeof where, "%s:6:", exp);
    expect_check_error(exp, "--set model.attention.heads=3", where, "heads (3) must divide the width (16)");
    expect_check_error(exp,
                       "--set model.attention.rate_mix_source=0 --set model.attention.rate_mix_target=0 "
                       "--set model.attention.rate_source_target=0",
                       where, "rate_mix_source, rate_mix_target and rate_source_target are all 0");
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("tricdr");
    TCase *unit = tcase_create("unit");
    tcase_add_test(unit, each_row_attends_to_the_facts_at_or_before_it);
    tcase_add_test(unit, attention_and_fusion_follow_the_official_formula);
    tcase_add_test(unit, contrastive_terms_are_torchs);
    tcase_add_test(unit, contrastive_rows_are_windows_before_a_target_of_the_domain_with_both_domains);
    tcase_add_test(unit, gradients_match_finite_differences);
    tcase_add_test(unit, aux_loss_needs_its_forward_and_vanishes_without_weights);
    tcase_add_test(unit, unsupported_setups_fail_at_create_and_check);
    suite_add_tcase(s, unit);
    TCase *e2e = tcase_create("end_to_end");
    tcase_add_test(e2e, toy_runs_learn_and_repeat_bit_for_bit);
    tcase_add_test(e2e, check_rejects_unsupported_options);
    suite_add_tcase(s, e2e);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
