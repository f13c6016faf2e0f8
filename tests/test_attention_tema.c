/* tests/test_attention_tema.c - the TEMA attention plugins (multi, fused) and the GRU
 * baseline: alignment of the S^X / S^Y states to merged rows, modality weights, sequence
 * weights, gradients against finite differences, and the GRU against a reference
 * recurrence computed here in double. Encoder tables are test parameters, so any
 * modality mix can be built without the encoders' inputs. */
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
#define LMAX 8
#define MAX_ENC 6

const tema_plugin *tema_plugin_entry_backend_cpu(const tema_host *host);
const tema_plugin *tema_plugin_entry_attention_multi(const tema_host *host);
const tema_plugin *tema_plugin_entry_attention_fused(const tema_host *host);
const tema_plugin *tema_plugin_entry_attention_gru(const tema_host *host);

static int64_t g_counts[NI] = {3, 0, 7, 1, 1, 2, 9, 0, 4};

static void setup_backend(void)
{
    const tema_plugin *cpu = tema_plugin_entry_backend_cpu(tema_host_get());
    const tema_backend_ops *be = cpu->ops;
    void *bs = NULL;
    tema_err err = {0};
    tema_cfg *opts = tu_plugin_opts(cpu, NULL);
    ck_assert_msg(be->init(tema_host_get(), opts, &bs, &err) == TEMA_OK, "%s", err.msg);
    tema_cfg_free(opts);
    tema_engine_set_backend(be, bs);
}

static const tema_plugin *plugin_named(const char *name)
{
    if (!strcmp(name, "multi")) return tema_plugin_entry_attention_multi(tema_host_get());
    if (!strcmp(name, "fused")) return tema_plugin_entry_attention_fused(tema_host_get());
    return tema_plugin_entry_attention_gru(tema_host_get());
}


typedef struct model {
    const tema_plugin *p;
    const tema_attention_ops *ops;
    void *self;
    tema_params *params;
    tema_graph *g;
    int n_enc;
    tema_tensor *tables[MAX_ENC];
} model;

/* A plugin over n_enc test tables of the given modalities and widths. Returns the create
 * status (the model is usable only on TEMA_OK). */
static tema_status build(model *m, const char *plugin, const char *extra, int n_enc, const char *const *mods,
                         const int64_t *dims, tema_err *err)
{
    memset(m, 0, sizeof *m);
    m->p = plugin_named(plugin);
    m->ops = m->p->ops;
    m->params = tema_params_new(17);
    m->n_enc = n_enc;
    const tema_nn_api *nn = tema_nn();
    for (int i = 0; i < n_enc; i++) {
        char name[32];
        snprintf(name, sizeof name, "test.table%d", i);
        int64_t shape[2] = {NI, dims[i]};
        m->tables[i] = nn->param(m->params, name, 2, shape, TEMA_INIT_NORMAL, 0.5f, 0);
    }
    tema_model_info info = {.struct_size = sizeof info, .n_x = NX, .n_y = NY, .max_len = LMAX,
                            .train_counts = g_counts, .seed = 3, .params = m->params, .host = tema_host_get()};
    tema_cfg *o = tu_plugin_opts(m->p, extra);
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

static void build_ok(model *m, const char *plugin, const char *extra, int n_enc, const char *const *mods,
                     const int64_t *dims)
{
    tema_err err = {0};
    tema_status st = build(m, plugin, extra, n_enc, mods, dims, &err);
    ck_assert_msg(st == TEMA_OK, "%s: %s", plugin, err.msg);
}

static void release(model *m)
{
    if (!m->params) return;
    tema_graph_free(m->g);
    m->ops->destroy(m->self);
    tema_params_free(m->params);
}

/* The trainer's split: each row's X / Y items in order, right-aligned. */
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

/* Forward on a fresh graph; copies of every stream's h into hout[k] (caller frees). */
static int run(model *m, const int32_t *seq, int B, int L, bool training, tema_stream *s, float **hout)
{
    int32_t *sx = malloc(sizeof(int32_t) * (size_t)(B * L)), *sy = malloc(sizeof(int32_t) * (size_t)(B * L));
    split_domains(seq, B, L, sx, sy);
    tema_batch b = {.struct_size = sizeof b, .B = B, .L = L, .seq = seq, .seq_x = sx, .seq_y = sy};
    tema_err err = {0};
    int n = 0;
    tema_graph_reset(m->g, training, 9);
    ck_assert_msg(m->ops->forward(m->self, m->g, &b, m->tables, m->n_enc, s, &n, &err) == TEMA_OK, "%s", err.msg);
    free(sx);
    free(sy);
    for (int k = 0; hout && k < n; k++) {
        ck_assert_int_eq(s[k].h->shape[0], (int64_t)B * L);
        hout[k] = malloc(sizeof(float) * (size_t)s[k].h->size);
        memcpy(hout[k], s[k].h->data, sizeof(float) * (size_t)s[k].h->size);
    }
    return n;
}

static void free_h(float **h, int n)
{
    for (int k = 0; k < n; k++) free(h[k]);
}

static bool rows_equal(const float *a, int64_t ra, const float *b, int64_t rb, int64_t d, float tol)
{
    for (int64_t j = 0; j < d; j++)
        if (fabsf(a[ra * d + j] - b[rb * d + j]) > tol * (1 + fabsf(a[ra * d + j]))) return false;
    return true;
}

/* ---------------- alignment of the sequence streams ---------------- */

enum { B3 = 3, L8 = LMAX };
/* X items are 0..4, Y items 5..8.
 * row 0: left padding, X and Y interleaved, ends with an X item
 * row 1: full, four X items (more than row 0: a wider compact layout)
 * row 2: Y items only, so its S^X stream is the empty history everywhere */
static const int32_t g_seq[B3 * L8] = {-1, -1, 1, 6, 2, 7, 8, 3,   /* row 0 */
                                       5,  0,  1, 7, 4, 2, 8, 5,   /* row 1 */
                                       -1, -1, -1, -1, -1, -1, 6, 7};

static const char *const g_mods2[2] = {"id", "text"};
static const int64_t g_dims2[2] = {8, 6};

/* Position in the same row of the last item of `kind` at or before p (-1: none). */
static int last_of_kind(const int32_t *seq, int row, int p, int kind)
{
    for (int q = p; q >= 0; q--) {
        int32_t v = seq[row * L8 + q];
        if (v >= 0 && (kind == TEMA_SEQ_MERGED || (kind == TEMA_SEQ_X) == (v < NX))) return q;
    }
    return -1;
}

static void check_state_after_last_item(const char *plugin)
{
    model m;
    build_ok(&m, plugin, "dropout: 0.3\n", 2, g_mods2, g_dims2);
    tema_stream s[TEMA_MAX_STREAMS];
    float *h[TEMA_MAX_STREAMS];
    int n = run(&m, g_seq, B3, L8, false, s, h);
    ck_assert_int_eq(n, !strcmp(plugin, "multi") ? 6 : 3);
    for (int k = 0; k < n; k++) {
        const int kind = s[k].sequence;
        const int64_t d = s[k].h->shape[1];
        int64_t empty_row = -1;
        for (int r = 0; r < B3; r++)
            for (int p = 0; p < L8; p++) {
                int q = last_of_kind(g_seq, r, p, kind);
                int64_t row = (int64_t)r * L8 + p;
                if (q < 0) { /* no item of this kind yet: the stream's one empty-history state */
                    if (empty_row < 0) empty_row = row;
                    ck_assert_msg(rows_equal(h[k], empty_row, h[k], row, d, 1e-6f),
                                  "%s stream %d: rows %lld and %lld both have an empty history but differ", plugin, k,
                                  (long long)empty_row, (long long)row);
                } else {
                    ck_assert_msg(rows_equal(h[k], (int64_t)r * L8 + q, h[k], row, d, 1e-6f),
                                  "%s stream %d (sequence %d): row %d position %d differs from the state after its "
                                  "last item (position %d)",
                                  plugin, k, kind, r, p, q);
                }
            }
        /* the states after different items do differ (else the checks above prove nothing) */
        ck_assert_msg(!rows_equal(h[k], 2, h[k], 4, d, 1e-3f) || kind == TEMA_SEQ_Y,
                      "%s stream %d: states after items 1 and 2 are equal", plugin, k);
        ck_assert_msg(!rows_equal(h[k], 3, h[k], 5, d, 1e-3f) || kind == TEMA_SEQ_X,
                      "%s stream %d: states after items 6 and 7 are equal", plugin, k);
        if (kind == TEMA_SEQ_X) ck_assert_int_ge(empty_row, 0);
    }
    free_h(h, n);
    release(&m);
}

START_TEST(sequence_states_are_the_state_after_the_last_item)
{
    setup_backend();
    check_state_after_last_item("multi");
    check_state_after_last_item("fused");
}
END_TEST

/* Every stream at merged row p is unchanged when any later item changes (including
 * changes of domain, which re-align seq_x / seq_y). */
static void check_causal_every_position(const char *plugin, int n_enc, const char *const *mods, const int64_t *dims)
{
    model m;
    build_ok(&m, plugin, NULL, n_enc, mods, dims);
    tema_stream s[TEMA_MAX_STREAMS];
    float *h0[TEMA_MAX_STREAMS], *h1[TEMA_MAX_STREAMS];
    int n = run(&m, g_seq, B3, L8, false, s, h0);
    for (int p = 0; p < L8 - 1; p++) {
        int32_t seq[B3 * L8];
        memcpy(seq, g_seq, sizeof seq);
        for (int r = 0; r < B3; r++)
            for (int q = p + 1; q < L8; q++) seq[r * L8 + q] = (seq[r * L8 + q] + 3 + q) % NI; /* mixes domains */
        int n1 = run(&m, seq, B3, L8, false, s, h1);
        ck_assert_int_eq(n1, n);
        int changed_after = 0;
        for (int k = 0; k < n; k++) {
            const int64_t d = s[k].h->shape[1];
            for (int r = 0; r < B3; r++) {
                for (int q = 0; q <= p; q++)
                    ck_assert_msg(rows_equal(h0[k], (int64_t)r * L8 + q, h1[k], (int64_t)r * L8 + q, d, 1e-5f),
                                  "%s stream %d: row %d position %d changed when only items after %d changed", plugin,
                                  k, r, q, p);
                changed_after += !rows_equal(h0[k], (int64_t)r * L8 + L8 - 1, h1[k], (int64_t)r * L8 + L8 - 1, d, 1e-5f);
            }
        }
        ck_assert_msg(changed_after > 0, "%s: changing items after %d changed no later state", plugin, p);
        free_h(h1, n);
    }
    free_h(h0, n);
    release(&m);
}

START_TEST(streams_do_not_see_later_items)
{
    setup_backend();
    check_causal_every_position("multi", 2, g_mods2, g_dims2);
    check_causal_every_position("fused", 2, g_mods2, g_dims2);
    static const char *const id_only[1] = {"id"};
    static const int64_t d4[1] = {4};
    check_causal_every_position("gru", 1, id_only, d4);
}
END_TEST

/* Replacing every item of one domain by another item of the same domain (positions and
 * the other domain untouched) leaves the other domain's stream unchanged everywhere and
 * changes this domain's stream after the first replaced item. */
static void check_domain_isolation(const char *plugin)
{
    model m;
    build_ok(&m, plugin, NULL, 2, g_mods2, g_dims2);
    tema_stream s[TEMA_MAX_STREAMS];
    float *h0[TEMA_MAX_STREAMS], *h1[TEMA_MAX_STREAMS];
    int n = run(&m, g_seq, B3, L8, false, s, h0);
    for (int dom = 0; dom < 2; dom++) {
        int32_t seq[B3 * L8];
        for (int i = 0; i < B3 * L8; i++) {
            int32_t v = g_seq[i];
            if (v >= 0 && dom == 0 && v < NX) v = (v + 2) % NX;
            if (v >= 0 && dom == 1 && v >= NX) v = NX + (v - NX + 1) % NY;
            seq[i] = v;
        }
        run(&m, seq, B3, L8, false, s, h1);
        const int own = dom == 0 ? TEMA_SEQ_X : TEMA_SEQ_Y, other = dom == 0 ? TEMA_SEQ_Y : TEMA_SEQ_X;
        for (int k = 0; k < n; k++) {
            const int64_t d = s[k].h->shape[1];
            int changed = 0;
            for (int64_t row = 0; row < B3 * L8; row++) {
                bool same = rows_equal(h0[k], row, h1[k], row, d, 1e-5f);
                if ((int)s[k].sequence == other)
                    ck_assert_msg(same, "%s stream %d (sequence %d): row %lld changed when only the other domain's "
                                        "items changed",
                                  plugin, k, (int)s[k].sequence, (long long)row);
                changed += !same;
            }
            if ((int)s[k].sequence == own || s[k].sequence == TEMA_SEQ_MERGED)
                ck_assert_msg(changed > 0, "%s stream %d: did not react to its own items", plugin, k);
        }
        free_h(h1, n);
    }
    free_h(h0, n);
    release(&m);
}

START_TEST(domain_streams_ignore_the_other_domain)
{
    setup_backend();
    check_domain_isolation("multi");
    check_domain_isolation("fused");
}
END_TEST

/* A row's states do not depend on the other rows of its batch (whose item counts set the
 * width of the compact layouts). */
START_TEST(states_do_not_depend_on_the_batch)
{
    setup_backend();
    const char *plugins[2] = {"multi", "fused"};
    for (int pi = 0; pi < 2; pi++) {
        model m;
        build_ok(&m, plugins[pi], NULL, 2, g_mods2, g_dims2);
        tema_stream s[TEMA_MAX_STREAMS];
        float *hall[TEMA_MAX_STREAMS], *hone[TEMA_MAX_STREAMS];
        int n = run(&m, g_seq, B3, L8, false, s, hall);
        for (int r = 0; r < B3; r++) {
            int n1 = run(&m, g_seq + r * L8, 1, L8, false, s, hone);
            ck_assert_int_eq(n1, n);
            for (int k = 0; k < n; k++) {
                const int64_t d = s[k].h->shape[1];
                for (int p = 0; p < L8; p++)
                    ck_assert_msg(rows_equal(hall[k], (int64_t)r * L8 + p, hone[k], p, d, 1e-5f),
                                  "%s stream %d: row %d position %d differs alone and in a batch", plugins[pi], k, r, p);
            }
            free_h(hone, n);
        }
        free_h(hall, n);
        release(&m);
    }
}
END_TEST

START_TEST(inconsistent_domain_sequences_are_rejected)
{
    setup_backend();
    model m;
    build_ok(&m, "multi", NULL, 2, g_mods2, g_dims2);
    int32_t sx[B3 * L8], sy[B3 * L8];
    split_domains(g_seq, B3, L8, sx, sy);
    sx[0 * L8 + L8 - 1] = 4; /* row 0's last X item is 3 */
    tema_batch b = {.struct_size = sizeof b, .B = B3, .L = L8, .seq = g_seq, .seq_x = sx, .seq_y = sy};
    tema_stream s[TEMA_MAX_STREAMS];
    int n = 0;
    tema_err err = {0};
    tema_graph_reset(m.g, false, 1);
    ck_assert_int_eq(m.ops->forward(m.self, m.g, &b, m.tables, 2, s, &n, &err), TEMA_EINVAL);
    ck_assert_msg(strstr(err.msg, "seq_x") != NULL, "%s", err.msg);
    release(&m);
}
END_TEST

/* ---------------- stream weights and prediction ---------------- */

static void stream_weights(const char *extra, int n_enc, const char *const *mods, float *w, int *n_out)
{
    model m;
    int64_t dims[MAX_ENC];
    for (int i = 0; i < n_enc; i++) dims[i] = 4;
    build_ok(&m, "multi", extra, n_enc, mods, dims);
    tema_stream s[TEMA_MAX_STREAMS];
    int n = run(&m, g_seq, B3, L8, false, s, NULL);
    int n_merged = 0;
    for (int k = 0; k < n; k++)
        if (s[k].sequence == TEMA_SEQ_MERGED) w[n_merged++] = s[k].weight;
    /* the same weights in every sequence group */
    for (int k = 0; k < n; k++) {
        int j = 0;
        for (int q = 0; q < k; q++) j += s[q].sequence == s[k].sequence;
        ck_assert_float_eq_tol(s[k].weight, w[j], 1e-7f);
    }
    *n_out = n_merged;
    release(&m);
}

START_TEST(alphas_renormalise_over_present_modalities)
{
    setup_backend();
    float w[MAX_ENC];
    int n;
    static const char *const all4[4] = {"id", "image", "text", "tag"};
    stream_weights(NULL, 4, all4, w, &n);
    ck_assert_int_eq(n, 4);
    ck_assert_float_eq_tol(w[0], 0.4f, 1e-6f);
    ck_assert_float_eq_tol(w[1], 0.2f, 1e-6f);
    ck_assert_float_eq_tol(w[2], 0.2f, 1e-6f);
    ck_assert_float_eq_tol(w[3], 0.2f, 1e-6f);
    /* no image: 0.4, 0.2, 0.2 over 0.8 */
    static const char *const no_img[3] = {"id", "text", "tag"};
    stream_weights(NULL, 3, no_img, w, &n);
    ck_assert_int_eq(n, 3);
    ck_assert_float_eq_tol(w[0], 0.5f, 1e-6f);
    ck_assert_float_eq_tol(w[1], 0.25f, 1e-6f);
    ck_assert_float_eq_tol(w[2], 0.25f, 1e-6f);
    /* order of the encoders does not matter; tag takes the remainder of changed alphas */
    static const char *const tag_id[2] = {"tag", "id"};
    stream_weights("alpha_id: 0.3\nalpha_image: 0.1\nalpha_text: 0.1\n", 2, tag_id, w, &n);
    ck_assert_int_eq(n, 2);
    ck_assert_float_eq_tol(w[0], 0.5f / 0.8f, 1e-6f);
    ck_assert_float_eq_tol(w[1], 0.3f / 0.8f, 1e-6f);
    /* two encoders of one modality share its alpha */
    static const char *const id_id_text[3] = {"id", "id", "text"};
    stream_weights(NULL, 3, id_id_text, w, &n);
    ck_assert_int_eq(n, 3);
    ck_assert_float_eq_tol(w[0], 1.0f / 3, 1e-6f);
    ck_assert_float_eq_tol(w[1], 1.0f / 3, 1e-6f);
    ck_assert_float_eq_tol(w[2], 1.0f / 3, 1e-6f);
    /* a modality of weight 0 drops out: alphas summing to 1 leave the tag nothing */
    static const char *const id_tag[2] = {"id", "tag"};
    stream_weights("alpha_id: 0.6\nalpha_image: 0.2\nalpha_text: 0.2\n", 2, id_tag, w, &n);
    ck_assert_int_eq(n, 1);
    ck_assert_float_eq_tol(w[0], 1.0f, 1e-6f);
}
END_TEST

START_TEST(bad_configurations_are_rejected)
{
    setup_backend();
    model m;
    tema_err err = {0};
    static const char *const audio[2] = {"id", "audio"};
    static const int64_t d2[2] = {4, 4};
    ck_assert_int_eq(build(&m, "multi", NULL, 2, audio, d2, &err), TEMA_EINVAL);
    ck_assert_msg(strstr(err.msg, "audio") != NULL, "%s", err.msg);
    ck_assert_int_eq(build(&m, "multi", "alpha_id: 0.7\nalpha_text: 0.5\n", 2, g_mods2, d2, &err), TEMA_EINVAL);
    ck_assert_int_eq(build(&m, "multi", "sequences: \"x,z\"\n", 2, g_mods2, d2, &err), TEMA_EINVAL);
    ck_assert_msg(strstr(err.msg, "'z'") != NULL, "%s", err.msg);
    ck_assert_int_eq(build(&m, "fused", "sequences: \" , \"\n", 2, g_mods2, d2, &err), TEMA_EINVAL);
    ck_assert_int_eq(build(&m, "multi", "heads: 3\n", 2, g_mods2, d2, &err), TEMA_EINVAL);
    static const char *const six[6] = {"id", "id", "text", "text", "tag", "image"};
    static const int64_t d6[6] = {4, 4, 4, 4, 4, 4};
    ck_assert_int_eq(build(&m, "multi", NULL, 6, six, d6, &err), TEMA_EINVAL); /* 18 streams */
    ck_assert_int_eq(build(&m, "multi", "sequences: \"x,merged\"\n", 6, six, d6, &err), TEMA_OK); /* 12 */
    release(&m);
}
END_TEST

static void get_seq_weights(const char *plugin, const char *extra, float w[2][3])
{
    model m;
    build_ok(&m, plugin, extra, 2, g_mods2, g_dims2);
    ck_assert_ptr_nonnull(m.ops->sequence_weights);
    ck_assert_uint_ge(m.p->ops_size, offsetof(tema_attention_ops, sequence_weights) + sizeof(void *));
    m.ops->sequence_weights(m.self, w);
    release(&m);
}

#define SW_EQ(w, d, a, b, c)                                                                        \
    do {                                                                                            \
        ck_assert_float_eq_tol((w)[d][TEMA_SEQ_MERGED], (a), 1e-6f);                                \
        ck_assert_float_eq_tol((w)[d][TEMA_SEQ_X], (b), 1e-6f);                                     \
        ck_assert_float_eq_tol((w)[d][TEMA_SEQ_Y], (c), 1e-6f);                                     \
    } while (0)

START_TEST(sequence_weights_follow_the_lambdas)
{
    setup_backend();
    const char *plugins[2] = {"multi", "fused"};
    for (int pi = 0; pi < 2; pi++) {
        float w[2][3];
        get_seq_weights(plugins[pi], NULL, w); /* paper: lambda_1 = 0.3, lambda_2 = 0.1 */
        SW_EQ(w, 0, 0.1f, 1.0f, 0.3f);
        SW_EQ(w, 1, 0.1f, 0.3f, 1.0f);
        get_seq_weights(plugins[pi], "lambda_1: 0.5\nlambda_2: 0.05\n", w);
        SW_EQ(w, 0, 0.05f, 1.0f, 0.5f);
        SW_EQ(w, 1, 0.05f, 0.5f, 1.0f);
        /* without multi-attention: the merged sequence alone, weight 1 */
        get_seq_weights(plugins[pi], "sequences: merged\n", w);
        SW_EQ(w, 0, 1.0f, 0.0f, 0.0f);
        SW_EQ(w, 1, 1.0f, 0.0f, 0.0f);
        /* a subset: each domain's weights over the strongest present group */
        get_seq_weights(plugins[pi], "sequences: \"merged, x\"\n", w);
        SW_EQ(w, 0, 0.1f, 1.0f, 0.0f);
        SW_EQ(w, 1, 0.1f / 0.3f, 1.0f, 0.0f);
    }
}
END_TEST

START_TEST(cosine_prediction_and_temperature)
{
    setup_backend();
    const char *extras[2] = {"temperature: 0.2\n", "temperature: 0.2\nlearnable_temperature: true\n"};
    for (int pi = 0; pi < 2; pi++)
        for (int e = 0; e < 2; e++) {
            model m;
            build_ok(&m, pi ? "fused" : "multi", extras[e], 2, g_mods2, g_dims2);
            tema_stream s[TEMA_MAX_STREAMS];
            int n = run(&m, g_seq, B3, L8, false, s, NULL);
            for (int k = 0; k < n; k++) {
                const int64_t d = s[k].items->shape[1];
                for (int64_t i = 0; i < NI; i++) {
                    double nrm = 0;
                    for (int64_t j = 0; j < d; j++) nrm += (double)s[k].items->data[i * d + j] * s[k].items->data[i * d + j];
                    ck_assert_double_eq_tol(sqrt(nrm), 1.0, 1e-5);
                }
                /* fixed: unit h and inv_temp 1/tau; learnable: h of length 1/tau at the start */
                const double want = e ? 5.0 : 1.0;
                ck_assert_float_eq_tol(s[k].inv_temp, e ? 1.0f : 5.0f, 1e-5f);
                for (int64_t r = 0; r < B3 * L8; r++) {
                    double nrm = 0;
                    for (int64_t j = 0; j < d; j++) nrm += (double)s[k].h->data[r * d + j] * s[k].h->data[r * d + j];
                    ck_assert_double_eq_tol(sqrt(nrm), want, 1e-4 * want);
                }
            }
            release(&m);
        }
}
END_TEST

START_TEST(stream_layout_follows_sequences_option)
{
    setup_backend();
    model m;
    build_ok(&m, "multi", "sequences: \"y+merged\"\n", 2, g_mods2, g_dims2);
    tema_stream s[TEMA_MAX_STREAMS];
    int n = run(&m, g_seq, B3, L8, true, s, NULL);
    ck_assert_int_eq(n, 4);
    int per[3] = {0};
    for (int k = 0; k < n; k++) per[s[k].sequence]++;
    ck_assert_int_eq(per[TEMA_SEQ_X], 0);
    ck_assert_int_eq(per[TEMA_SEQ_Y], 2);
    ck_assert_int_eq(per[TEMA_SEQ_MERGED], 2);
    release(&m);
}
END_TEST

/* ---------------- gradients ---------------- */

enum { GB = 2, GL = 5 };
static const int32_t g_gseq[GB * GL] = {-1, 1, 6, 2, 7, 5, 0, 8, 8, 3};
static const int32_t g_gtgt[GB * GL] = {3, 2, 0, 7, 4, 1, 6, 2, 5, 8};

/* Sum over streams of weight * mean cross-entropy of every row against g_gtgt over all
 * items: a smooth function of every parameter that reaches a stream. */
static double grad_loss(model *m, bool backward)
{
    tema_stream s[TEMA_MAX_STREAMS];
    int n = run(m, g_gseq, GB, GL, true, s, NULL);
    const tema_nn_api *nn = tema_nn();
    tema_graph *g = m->g;
    static int32_t lo[GB * GL], hi[GB * GL];
    static float w[GB * GL];
    for (int r = 0; r < GB * GL; r++) lo[r] = 0, hi[r] = NI, w[r] = 1.0f + 0.1f * (float)r;
    tema_tensor *total = NULL;
    for (int k = 0; k < n; k++) {
        tema_tensor *lse = nn->lse_chunked(g, s[k].h, s[k].items, lo, hi, s[k].inv_temp, 4);
        tema_tensor *z = nn->rowdot(g, s[k].h, s[k].items, g_gtgt, s[k].inv_temp);
        ck_assert_msg(lse && z, "%s", nn->error(g));
        tema_tensor *ce = nn->add(g, lse, nn->scale(g, z, -1.0f));
        tema_tensor *l = nn->scale(g, nn->weighted_mean(g, ce, w), s[k].weight);
        total = total ? nn->add(g, total, l) : l;
        ck_assert_msg(total != NULL, "%s", nn->error(g));
    }
    double v = total->data[0];
    if (backward) {
        tema_err err = {0};
        tema_params_zero_grad(m->params);
        ck_assert_msg(tema_graph_backward(g, total, &err) == TEMA_OK, "%s", err.msg);
    }
    return v;
}

static void check_gradients(const char *plugin, const char *extra, int n_enc, const char *const *mods,
                            const int64_t *dims)
{
    model m;
    build_ok(&m, plugin, extra, n_enc, mods, dims);
    double l0 = grad_loss(&m, true);
    ck_assert_msg(isfinite(l0), "%s: loss %g", plugin, l0);
    size_t nt = tema_params_n(m.params);
    int64_t checked = 0, nonzero = 0;
    double worst = 0;
    const char *worst_name = "";
    for (size_t i = 0; i < nt; i++) {
        tema_tensor *t = tema_params_at(m.params, i);
        if (!t->grad) continue;
        float *an = malloc(sizeof(float) * (size_t)t->size);
        memcpy(an, t->grad, sizeof(float) * (size_t)t->size);
        for (int64_t j = 0; j < t->size; j++) {
            const float eps = 1e-3f, keep = t->data[j];
            t->data[j] = keep + eps;
            double up = grad_loss(&m, false);
            t->data[j] = keep - eps;
            double down = grad_loss(&m, false);
            t->data[j] = keep;
            double fd = (up - down) / (2.0 * eps), err = fabs(fd - an[j]);
            double tol = 2e-3 + 3e-2 * fabs(fd);
            ck_assert_msg(err <= tol, "%s: d loss / d %s[%lld]: analytic %.6f, finite difference %.6f", plugin, t->name,
                          (long long)j, an[j], fd);
            if (err / tol > worst) worst = err / tol, worst_name = t->name;
            checked++;
            nonzero += fabs(fd) > 1e-4;
        }
        free(an);
    }
    fprintf(stderr, "%s: %lld parameter entries checked, %lld with a non-zero gradient, worst error %.2f of the "
                    "tolerance (%s)\n",
            plugin, (long long)checked, (long long)nonzero, worst, worst_name);
    /* most entries must matter, or the check is vacuous (padding-only positions and the
     * attention of one-item prefixes legitimately have zero gradient) */
    ck_assert_int_ge(nonzero * 10, checked * 6);
    release(&m);
}

START_TEST(multi_gradients_match_finite_differences)
{
    setup_backend();
    static const char *const mods[2] = {"id", "tag"};
    static const int64_t dims[2] = {4, 2};
    check_gradients("multi", "blocks: 1\nheads: 2\ndropout: 0\nlearnable_temperature: true\ntemperature: 0.5\n", 2,
                    mods, dims);
}
END_TEST

START_TEST(fused_gradients_match_finite_differences)
{
    setup_backend();
    static const char *const mods[2] = {"id", "text"};
    static const int64_t dims[2] = {3, 2};
    check_gradients("fused", "dim: 4\nhidden: 5\nblocks: 1\nheads: 2\ndropout: 0\ntemperature: 0.5\n", 2, mods, dims);
}
END_TEST

START_TEST(gru_gradients_match_finite_differences)
{
    setup_backend();
    static const char *const mods[1] = {"id"};
    static const int64_t dims[1] = {3};
    check_gradients("gru", "dropout: 0\n", 1, mods, dims);
}
END_TEST

/* ---------------- GRU ---------------- */

static const float *param_data(model *m, const char *name)
{
    for (size_t i = 0; i < tema_params_n(m->params); i++) {
        tema_tensor *t = tema_params_at(m->params, i);
        if (!strcmp(t->name, name)) return t->data;
    }
    ck_abort_msg("no parameter %s", name);
    return NULL;
}

static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

START_TEST(gru_matches_reference_recurrence)
{
    setup_backend();
    enum { D = 5 };
    static const char *const mods[1] = {"id"};
    static const int64_t dims[1] = {D};
    model m;
    build_ok(&m, "gru", "dropout: 0.5\n", 1, mods, dims);
    tema_stream s[TEMA_MAX_STREAMS];
    float *h[TEMA_MAX_STREAMS];
    int n = run(&m, g_seq, B3, L8, false, s, h); /* evaluation: no dropout */
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(s[0].h->shape[1], D);
    ck_assert_ptr_eq(s[0].items, m.tables[0]);
    const float *wx = param_data(&m, "attention.gru.wx"), *bx = param_data(&m, "attention.gru.bx");
    const float *wh = param_data(&m, "attention.gru.wh"), *bh = param_data(&m, "attention.gru.bh");
    const float *E = m.tables[0]->data;
    for (int r = 0; r < B3; r++) {
        double hp[D] = {0};
        for (int t = 0; t < L8; t++) {
            int32_t v = g_seq[r * L8 + t];
            double hn[D] = {0};
            if (v >= 0) {
                double gx[3 * D], gh[3 * D];
                for (int o = 0; o < 3 * D; o++) {
                    gx[o] = bx[o];
                    gh[o] = bh[o];
                    for (int j = 0; j < D; j++) {
                        gx[o] += wx[o * D + j] * E[v * D + j] * sqrt((double)D);
                        gh[o] += wh[o * D + j] * hp[j];
                    }
                }
                for (int j = 0; j < D; j++) {
                    double rg = sigm(gx[j] + gh[j]), zg = sigm(gx[D + j] + gh[D + j]);
                    double cand = tanh(gx[2 * D + j] + rg * gh[2 * D + j]);
                    hn[j] = (1 - zg) * cand + zg * hp[j];
                }
            }
            for (int j = 0; j < D; j++) {
                ck_assert_msg(fabs(hn[j] - h[0][(r * L8 + t) * D + j]) <= 1e-5,
                              "gru: row %d step %d unit %d: %.7f, reference %.7f", r, t, j, h[0][(r * L8 + t) * D + j],
                              hn[j]);
                hp[j] = hn[j];
            }
        }
    }
    free_h(h, n);
    release(&m);
}
END_TEST

START_TEST(gru_changes_only_later_states)
{
    setup_backend();
    static const char *const mods[1] = {"id"};
    static const int64_t dims[1] = {6};
    model m;
    build_ok(&m, "gru", NULL, 1, mods, dims);
    tema_stream s[TEMA_MAX_STREAMS];
    float *h0[TEMA_MAX_STREAMS], *h1[TEMA_MAX_STREAMS];
    run(&m, g_seq, B3, L8, false, s, h0);
    for (int p = 0; p < L8; p++) {
        int32_t seq[B3 * L8];
        memcpy(seq, g_seq, sizeof seq);
        seq[1 * L8 + p] = (seq[1 * L8 + p] + 4) % NI; /* row 1 is full: one item at position p */
        run(&m, seq, B3, L8, false, s, h1);
        for (int64_t row = 0; row < B3 * L8; row++) {
            bool same = rows_equal(h0[0], row, h1[0], row, 6, 1e-6f);
            bool expect_same = row < 1 * L8 + p || row >= 2 * L8;
            ck_assert_msg(same == expect_same, "gru: changing row 1 position %d %s row %lld", p,
                          same ? "did not change" : "changed", (long long)row);
        }
        free_h(h1, 1);
    }
    free_h(h0, 1);
    release(&m);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("attention_tema");
    TCase *al = tcase_create("alignment");
    tcase_add_test(al, sequence_states_are_the_state_after_the_last_item);
    tcase_add_test(al, streams_do_not_see_later_items);
    tcase_add_test(al, domain_streams_ignore_the_other_domain);
    tcase_add_test(al, states_do_not_depend_on_the_batch);
    tcase_add_test(al, inconsistent_domain_sequences_are_rejected);
    suite_add_tcase(s, al);
    TCase *w = tcase_create("weights");
    tcase_add_test(w, alphas_renormalise_over_present_modalities);
    tcase_add_test(w, bad_configurations_are_rejected);
    tcase_add_test(w, sequence_weights_follow_the_lambdas);
    tcase_add_test(w, cosine_prediction_and_temperature);
    tcase_add_test(w, stream_layout_follows_sequences_option);
    suite_add_tcase(s, w);
    TCase *gr = tcase_create("gradients");
    tcase_add_test(gr, multi_gradients_match_finite_differences);
    tcase_add_test(gr, fused_gradients_match_finite_differences);
    tcase_add_test(gr, gru_gradients_match_finite_differences);
    suite_add_tcase(s, gr);
    TCase *gru = tcase_create("gru");
    tcase_add_test(gru, gru_matches_reference_recurrence);
    tcase_add_test(gru, gru_changes_only_later_states);
    suite_add_tcase(s, gru);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
