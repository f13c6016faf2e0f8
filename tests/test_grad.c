/* tests/test_grad.c - every autograd op against central finite differences (the harness:
 * tests/gradcheck.c), plus the parameter store, Adam and checkpoints (CPU backend). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "gradcheck.h"
#include "host.h"
#include "registry.h"
#include "testutil.h"
#include "util.h"

/* ---- ops ---- */

typedef struct mm_ctx { bool ta, tb; } mm_ctx;
static tema_tensor *b_matmul(tema_graph *g, tema_tensor **in, void *ctx)
{
    mm_ctx *c = ctx;
    return nn->matmul(g, in[0], c->ta, in[1], c->tb);
}

START_TEST(grad_matmul)
{
    for (int t = 0; t < 4; t++) {
        mm_ctx c = {t & 1, t >> 1};
        spec s2[2] = {c.ta ? (spec)S2(4, 3) : (spec)S2(3, 4), c.tb ? (spec)S2(5, 4) : (spec)S2(4, 5)};
        gradcheck("matmul 2-D", 2, s2, b_matmul, &c, 0, EPS, TOL);
        spec s3[2] = {c.ta ? (spec)S3(2, 4, 3) : (spec)S3(2, 3, 4), c.tb ? (spec)S3(2, 5, 4) : (spec)S3(2, 4, 5)};
        gradcheck("matmul batched", 2, s3, b_matmul, &c, 0, EPS, TOL);
    }
    mm_ctx c = {false, true};
    spec sf[2] = {S3(2, 3, 4), S2(5, 4)};
    gradcheck("matmul 3-D @ 2-D", 2, sf, b_matmul, &c, 0, EPS, TOL);
}
END_TEST

static tema_tensor *b_linear(tema_graph *g, tema_tensor **in, void *ctx)
{
    return nn->linear(g, in[0], in[1], ctx ? in[2] : NULL);
}

START_TEST(grad_linear)
{
    spec s[3] = {S3(2, 3, 4), S2(5, 4), S1(5)};
    gradcheck("linear+bias", 3, s, b_linear, (void *)1, 0, EPS, TOL);
    gradcheck("linear", 2, s, b_linear, NULL, 0, EPS, TOL);
}
END_TEST

static const int32_t ids7[7] = {2, -1, 0, 2, 4, -1, 1};
static tema_tensor *b_embedding(tema_graph *g, tema_tensor **in, void *ctx)
{
    (void)ctx;
    return nn->embedding(g, in[0], ids7, 7);
}
static tema_tensor *b_gather(tema_graph *g, tema_tensor **in, void *ctx)
{
    (void)ctx;
    return nn->gather_rows(g, in[0], ids7, 7);
}

START_TEST(grad_embedding_gather)
{
    spec s[1] = {S2(5, 3)};
    gradcheck("embedding", 1, s, b_embedding, NULL, 0, EPS, TOL);
    spec s3[1] = {S3(5, 2, 3)};
    gradcheck("gather_rows", 1, s3, b_gather, NULL, 0, EPS, TOL);
}
END_TEST

static tema_tensor *b_add(tema_graph *g, tema_tensor **in, void *ctx) { (void)ctx; return nn->add(g, in[0], in[1]); }
static tema_tensor *b_mul(tema_graph *g, tema_tensor **in, void *ctx) { (void)ctx; return nn->mul(g, in[0], in[1]); }

/* An add's backward copies dout into a gradient it writes first: x + x (the second half must
 * add to the copy) and an add whose inputs reach the loss again through another add. */
static tema_tensor *b_add_self(tema_graph *g, tema_tensor **in, void *ctx)
{
    (void)ctx;
    return nn->add(g, in[0], in[0]);
}
static tema_tensor *b_add_twice(tema_graph *g, tema_tensor **in, void *ctx)
{
    (void)ctx;
    return nn->add(g, nn->mul(g, nn->add(g, in[0], in[1]), in[1]), in[0]);
}

START_TEST(grad_add_mul)
{
    spec same[2] = {S2(3, 4), S2(3, 4)}, bc[2] = {S3(2, 3, 4), S1(4)};
    gradcheck("add", 2, same, b_add, NULL, 0, EPS, TOL);
    gradcheck("add of a tensor to itself", 1, same, b_add_self, NULL, 0, EPS, TOL);
    gradcheck("add reaching inputs twice", 2, same, b_add_twice, NULL, 0, EPS, TOL);
    gradcheck("add broadcast", 2, bc, b_add, NULL, 0, EPS, TOL);
    gradcheck("mul", 2, same, b_mul, NULL, 0, EPS, TOL);
    gradcheck("mul broadcast", 2, bc, b_mul, NULL, 0, EPS, TOL);
}
END_TEST

static tema_tensor *b_unary(tema_graph *g, tema_tensor **in, void *ctx)
{
    switch ((int)(intptr_t)ctx) {
    case 0: return nn->scale(g, in[0], -1.7f);
    case 1: return nn->gelu(g, in[0]);
    case 2: return nn->relu(g, in[0]);
    case 3: return nn->sigmoid(g, in[0]);
    default: return nn->tanh(g, in[0]);
    }
}

START_TEST(grad_unary)
{
    static const char *names[] = {"scale", "gelu", "relu", "sigmoid", "tanh"};
    spec s[1] = {S2(4, 5)};
    for (int i = 0; i < 5; i++) gradcheck(names[i], 1, s, b_unary, (void *)(intptr_t)i, 0.05f, EPS / 2, TOL);
}
END_TEST

static tema_tensor *b_layernorm(tema_graph *g, tema_tensor **in, void *ctx)
{
    return ctx ? nn->layernorm(g, in[0], in[1], in[2], 1e-5f) : nn->layernorm(g, in[0], NULL, NULL, 1e-5f);
}

START_TEST(grad_layernorm)
{
    spec s[3] = {S2(3, 6), S1(6), S1(6)};
    gradcheck("layernorm", 3, s, b_layernorm, (void *)1, 0, 3e-3, TOL);
    gradcheck("layernorm no affine", 1, s, b_layernorm, NULL, 0, 3e-3, TOL);
}
END_TEST

static tema_tensor *b_dropout(tema_graph *g, tema_tensor **in, void *ctx)
{
    (void)ctx;
    return nn->dropout(g, nn->dropout(g, in[0], 0.3f), 0.5f);
}

/* The mul, recorded after the dropout, runs its backward first and writes x's gradient, so
 * dropout's backward must add to it (two statements: argument order is unspecified). */
static tema_tensor *b_dropout_accumulating(tema_graph *g, tema_tensor **in, void *ctx)
{
    (void)ctx;
    tema_tensor *d = nn->dropout(g, in[0], 0.3f);
    tema_tensor *sq = nn->mul(g, in[0], in[0]);
    return nn->add(g, d, sq);
}

START_TEST(grad_dropout)
{
    spec s[1] = {S2(6, 7)};
    gradcheck("dropout", 1, s, b_dropout, NULL, 0, EPS, TOL);
    gradcheck("dropout into a written gradient", 1, s, b_dropout_accumulating, NULL, 0, EPS, TOL);
}
END_TEST

START_TEST(dropout_masks)
{
    tema_graph *g = tema_graph_new(1);
    enum { N = 20000 };
    float *ones = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) ones[i] = 1.0f;
    float *first = malloc(sizeof(float) * N);
    int64_t shape[1] = {N};
    tema_graph_reset(g, true, 42);
    tema_tensor *y = nn->dropout(g, nn->tensor(g, 1, shape, ones), 0.25f);
    int kept = 0;
    for (int i = 0; i < N; i++) {
        ck_assert(y->data[i] == 0.0f || fabsf(y->data[i] - 1.0f / 0.75f) < 1e-6f);
        kept += y->data[i] != 0.0f;
    }
    ck_assert_msg(abs(kept - 15000) < 400, "kept %d of %d at p=0.25", kept, N);
    memcpy(first, y->data, sizeof(float) * N);
    tema_graph_reset(g, true, 42); /* same step seed: same mask */
    y = nn->dropout(g, nn->tensor(g, 1, shape, ones), 0.25f);
    ck_assert_mem_eq(first, y->data, sizeof(float) * N);
    tema_graph_reset(g, true, 43); /* another step: another mask */
    y = nn->dropout(g, nn->tensor(g, 1, shape, ones), 0.25f);
    ck_assert(memcmp(first, y->data, sizeof(float) * N) != 0);
    tema_graph_reset(g, false, 43); /* eval: identity */
    y = nn->dropout(g, nn->tensor(g, 1, shape, ones), 0.25f);
    for (int i = 0; i < N; i++) ck_assert(y->data[i] == 1.0f);
    ck_assert_ptr_null(nn->dropout(g, y, 1.0f));
    ck_assert_str_ne(nn->error(g), "");
    free(ones);
    free(first);
    tema_graph_free(g);
}
END_TEST

/* A rewound graph reuses the memory of what it dropped, keeps what came before the mark,
 * and its peak covers one iteration of a loop of temporaries, not all of them. */
START_TEST(rewind_reuses_the_memory_of_dropped_tensors)
{
    tema_graph *g = tema_graph_new(1);
    enum { N = 1 << 18 }; /* 1 MiB of floats per tensor */
    float *ones = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) ones[i] = 1.0f;
    int64_t shape[1] = {N};
    size_t peak_one = 0;
    for (int round = 0; round < 3; round++) {
        tema_graph_reset(g, false, 0);
        tema_tensor *kept = nn->scale(g, nn->tensor(g, 1, shape, ones), 2.0f);
        tema_graph_mark m = tema_graph_mark_now(g);
        float *first = NULL;
        for (int k = 0; k < 8; k++) {
            tema_graph_rewind(g, &m);
            tema_tensor *t = nn->scale(g, kept, (float)k);
            ck_assert_ptr_nonnull(t);
            if (k == 0) first = t->data;
            else if (round > 0) ck_assert_ptr_eq(t->data, first); /* the same memory each time */
            ck_assert_float_eq(t->data[N - 1], 2.0f * (float)k);
            ck_assert_float_eq(kept->data[N - 1], 2.0f); /* what came before the mark is intact */
        }
        /* round 0 grows the arena, round 1 settles it at its high-water mark (+1/8), round 2
         * must not grow it again */
        if (round == 1) peak_one = tema_graph_peak_bytes(g);
        if (round == 2) ck_assert_uint_eq(tema_graph_peak_bytes(g), peak_one);
    }
    /* the input, `kept` and one temporary live at a time: about 3 tensors, not 10 */
    ck_assert_uint_lt(peak_one, 4u * N * sizeof(float));
    free(ones);
    tema_graph_free(g);
}
END_TEST

static uint8_t smask[4 * 5] = {1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0, 0, 1};
static tema_tensor *b_softmax(tema_graph *g, tema_tensor **in, void *ctx)
{
    int k = (int)(intptr_t)ctx;
    return nn->softmax(g, in[0], k == 1 ? smask : NULL, k == 2);
}

START_TEST(grad_softmax)
{
    spec s[1] = {S2(4, 5)};
    gradcheck("softmax", 1, s, b_softmax, (void *)0, 0, EPS, TOL);
    gradcheck("softmax mask", 1, s, b_softmax, (void *)1, 0, EPS, TOL);
    spec sc[1] = {S3(3, 4, 4)};
    gradcheck("softmax causal", 1, sc, b_softmax, (void *)2, 0, EPS, TOL);
    /* fully masked row gives zeros; causal row r%dim sees j <= r%dim only */
    tema_graph *g = tema_graph_new(1);
    tema_graph_reset(g, false, 0);
    float x[20];
    for (int i = 0; i < 20; i++) x[i] = (float)i * 0.1f;
    int64_t sh[2] = {4, 5};
    tema_tensor *y = nn->softmax(g, nn->tensor(g, 2, sh, x), smask, false);
    for (int j = 0; j < 5; j++) ck_assert(y->data[5 + j] == 0.0f);
    ck_assert(y->data[1] == 0.0f);
    int64_t sq[2] = {4, 4};
    y = nn->softmax(g, nn->tensor(g, 2, sq, x), NULL, true);
    ck_assert(fabsf(y->data[0] - 1.0f) < 1e-6f && y->data[1] == 0.0f);
    ck_assert(y->data[4 + 2] == 0.0f && y->data[4 + 1] > 0.5f);
    tema_graph_free(g);
}
END_TEST

static tema_tensor *b_concat(tema_graph *g, tema_tensor **in, void *ctx)
{
    (void)ctx;
    tema_tensor *xs[3] = {in[0], in[1], in[2]};
    tema_tensor *c = nn->concat(g, xs, 3);
    return nn->slice(g, c, 1, 5);
}

START_TEST(grad_concat_slice)
{
    spec s[3] = {S3(2, 3, 2), S3(2, 3, 3), S3(2, 3, 1)};
    gradcheck("concat+slice", 3, s, b_concat, NULL, 0, EPS, TOL);
}
END_TEST

static tema_tensor *b_misc(tema_graph *g, tema_tensor **in, void *ctx)
{
    switch ((int)(intptr_t)ctx) {
    case 0: return nn->transpose12(g, in[0]);
    case 1: return nn->l2norm(g, in[0], 1e-6f);
    case 2: return nn->logsumexp(g, in[0]);
    case 3: return nn->sum(g, in[0]);
    case 4: return nn->mean(g, in[0]);
    default: {
        int64_t sh[2] = {6, 4};
        return nn->scale(g, nn->reshape(g, in[0], 2, sh), 2.0f);
    }
    }
}

START_TEST(grad_misc)
{
    spec s4[1] = {S4(2, 3, 2, 2)}, s2[1] = {S2(4, 6)};
    gradcheck("transpose12", 1, s4, b_misc, (void *)0, 0, EPS, TOL);
    gradcheck("l2norm", 1, s2, b_misc, (void *)1, 0, 3e-3, TOL);
    gradcheck("logsumexp", 1, s2, b_misc, (void *)2, 0, EPS, TOL);
    gradcheck("sum", 1, s2, b_misc, (void *)3, 0, EPS, TOL);
    gradcheck("mean", 1, s2, b_misc, (void *)4, 0, EPS, TOL);
    gradcheck("reshape", 1, s4, b_misc, (void *)5, 0, EPS, TOL);
}
END_TEST

static const int32_t xent_t[5] = {2, -1, 0, 3, 3};
static tema_tensor *b_xent(tema_graph *g, tema_tensor **in, void *ctx)
{
    (void)ctx;
    return nn->cross_entropy(g, in[0], xent_t);
}
static const int32_t rd_t[5] = {1, 6, -1, 1, 0};
static tema_tensor *b_rowdot(tema_graph *g, tema_tensor **in, void *ctx)
{
    (void)ctx;
    return nn->rowdot(g, in[0], in[1], rd_t, 0.7f);
}

START_TEST(grad_xent_rowdot)
{
    spec s[1] = {S2(5, 4)};
    gradcheck("cross_entropy", 1, s, b_xent, NULL, 0, EPS, TOL);
    spec r[2] = {S2(5, 3), S2(7, 3)};
    gradcheck("rowdot", 2, r, b_rowdot, NULL, 0, EPS, TOL);
    /* value: mean over the 4 valid rows of lse - x[t] */
    tema_graph *g = tema_graph_new(1);
    tema_graph_reset(g, false, 0);
    float x[20];
    for (int i = 0; i < 20; i++) x[i] = sinf((float)i);
    int64_t sh[2] = {5, 4};
    tema_tensor *l = nn->cross_entropy(g, nn->tensor(g, 2, sh, x), xent_t);
    double want = 0;
    for (int rr = 0; rr < 5; rr++) {
        if (xent_t[rr] < 0) continue;
        double s = 0;
        for (int j = 0; j < 4; j++) s += exp(x[rr * 4 + j]);
        want += log(s) - x[rr * 4 + xent_t[rr]];
    }
    ck_assert_double_eq_tol(l->data[0], want / 4, 1e-5);
    tema_graph_free(g);
}
END_TEST

typedef struct lse_ctx {
    const int32_t *lo, *hi;
    int64_t chunk;
} lse_ctx;
static tema_tensor *b_lse(tema_graph *g, tema_tensor **in, void *ctx)
{
    lse_ctx *c = ctx;
    return nn->lse_chunked(g, in[0], in[1], c->lo, c->hi, 0.8f, c->chunk);
}

static double ref_lse(const float *h, const float *items, int64_t d, int32_t lo, int32_t hi, double it)
{
    if (lo >= hi) return 0.0;
    double m = -INFINITY, s = 0.0;
    for (int j = lo; j < hi; j++) {
        double z = 0;
        for (int64_t k = 0; k < d; k++) z += (double)h[k] * items[j * d + k];
        m = fmax(m, z * it);
    }
    for (int j = lo; j < hi; j++) {
        double z = 0;
        for (int64_t k = 0; k < d; k++) z += (double)h[k] * items[j * d + k];
        s += exp(z * it - m);
    }
    return m + log(s);
}

START_TEST(grad_lse_chunked)
{
    /* one range, chunk smaller than it */
    static const int32_t lo1[4] = {0, 0, 0, 0}, hi1[4] = {9, 9, 9, 9};
    lse_ctx c1 = {lo1, hi1, 4};
    spec s[2] = {S2(4, 3), S2(11, 3)};
    gradcheck("lse_chunked one range", 2, s, b_lse, &c1, 0, EPS, TOL);
    /* two domains interleaved, one empty row */
    static const int32_t lo2[6] = {0, 5, 0, 5, 3, 5}, hi2[6] = {5, 11, 5, 11, 3, 11};
    lse_ctx c2 = {lo2, hi2, 3};
    spec s2[2] = {S2(6, 3), S2(11, 3)};
    gradcheck("lse_chunked two ranges", 2, s2, b_lse, &c2, 0, EPS, TOL);
    /* more distinct ranges than groups: the masked union path */
    static const int32_t lo3[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 0}, hi3[10] = {2, 3, 5, 7, 9, 11, 8, 10, 11, 11};
    lse_ctx c3 = {lo3, hi3, 4};
    spec s3[2] = {S2(10, 2), S2(11, 2)};
    gradcheck("lse_chunked many ranges", 2, s3, b_lse, &c3, 0, EPS, TOL);
    /* values against a double reference */
    const lse_ctx *cs[3] = {&c1, &c2, &c3};
    const spec *ss[3] = {s, s2, s3};
    for (int t = 0; t < 3; t++) {
        tema_params *p = tema_params_new(4);
        tema_tensor *h = nn->param(p, "h", 2, ss[t][0].shape, TEMA_INIT_NORMAL, 1.0f, 0);
        tema_tensor *it = nn->param(p, "items", 2, ss[t][1].shape, TEMA_INIT_NORMAL, 1.0f, 0);
        tema_err err = {0};
        ck_assert_int_eq(tema_params_finalize(p, &err), TEMA_OK);
        tema_graph *g = tema_graph_new(1);
        tema_graph_reset(g, false, 0);
        tema_tensor *o = nn->lse_chunked(g, h, it, cs[t]->lo, cs[t]->hi, 0.8f, cs[t]->chunk);
        ck_assert_ptr_nonnull(o);
        int64_t d = h->shape[1];
        for (int64_t r = 0; r < h->shape[0]; r++)
            ck_assert_double_eq_tol(o->data[r], ref_lse(h->data + r * d, it->data, d, cs[t]->lo[r], cs[t]->hi[r], 0.8),
                                    1e-4);
        ck_assert_ptr_null(nn->lse_chunked(g, h, it, cs[t]->lo, cs[t]->hi, 0.8f, 0));
        int32_t bad_hi[10];
        for (int i = 0; i < 10; i++) bad_hi[i] = 12;
        ck_assert_ptr_null(nn->lse_chunked(g, h, it, cs[t]->lo, bad_hi, 0.8f, 4));
        tema_graph_free(g);
        tema_params_free(p);
    }
}
END_TEST

static tema_tensor *b_lae(tema_graph *g, tema_tensor **in, void *ctx)
{
    int n = (int)(intptr_t)ctx;
    static const float lw[3] = {-0.5f, -1.2f, 0.3f};
    return nn->logaddexp_n(g, in, lw, n);
}

START_TEST(grad_logaddexp_n)
{
    spec s[3] = {S2(3, 4), S2(3, 4), S2(3, 4)};
    for (int n = 1; n <= 3; n++) gradcheck("logaddexp_n", n, s, b_lae, (void *)(intptr_t)n, 0, EPS, TOL);
    tema_graph *g = tema_graph_new(1);
    tema_graph_reset(g, false, 0);
    float a[2] = {0.1f, -3.0f}, b[2] = {2.0f, 1.0f};
    int64_t sh[1] = {2};
    tema_tensor *xs[2] = {nn->tensor(g, 1, sh, a), nn->tensor(g, 1, sh, b)};
    float lw[2] = {logf(0.25f), logf(0.75f)};
    tema_tensor *o = nn->logaddexp_n(g, xs, lw, 2);
    for (int i = 0; i < 2; i++) ck_assert_double_eq_tol(o->data[i], log(0.25 * exp(a[i]) + 0.75 * exp(b[i])), 1e-5);
    tema_graph_free(g);
}
END_TEST

static const uint8_t keep12[12] = {1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 1};
static const float w4[4] = {0.5f, 2.0f, 0.0f, 1.0f};
static tema_tensor *b_mask(tema_graph *g, tema_tensor **in, void *ctx)
{
    if (ctx) return nn->weighted_mean(g, in[0], w4);
    return nn->mask_rows(g, in[0], keep12);
}

START_TEST(grad_mask_wmean)
{
    spec s[1] = {S2(4, 3)}, v[1] = {S1(4)};
    gradcheck("mask_rows", 1, s, b_mask, NULL, 0, EPS, TOL);
    gradcheck("weighted_mean", 1, v, b_mask, (void *)1, 0, EPS, TOL);
}
END_TEST

/* ---- the ops of the CDSR baselines (ABI 1.5) ---- */

/* A [4, 5]: an empty row, a repeated column, column 3 never used, all ones when values is NULL. */
static const int64_t A_ptr[5] = {0, 3, 3, 5, 7};
static const int32_t A_col[7] = {0, 2, 4, 1, 1, 0, 4};
static const float A_val[7] = {0.5f, -1.0f, 2.0f, 0.25f, 0.75f, -0.5f, 1.5f};

static tema_tensor *b_spmm(tema_graph *g, tema_tensor **in, void *ctx) { return nn->spmm(g, ctx, in[0]); }
/* x also reaches the loss another way: spmm's backward must add to its gradient, not set it */
static tema_tensor *b_spmm_shared(tema_graph *g, tema_tensor **in, void *ctx)
{
    static const int32_t first4[4] = {0, 1, 2, 3};
    tema_tensor *y = nn->spmm(g, ctx, in[0]); /* first on the tape, so last in backward */
    return nn->add(g, y, nn->gather_rows(g, in[0], first4, 4));
}

START_TEST(grad_spmm)
{
    tema_params *owner = tema_params_new(1);
    tema_err err = {0};
    tema_csr *a = nn->csr(owner, "A", 4, 5, A_ptr, A_col, A_val, &err), *ones = nn->csr(owner, "ones", 4, 5, A_ptr,
                                                                                         A_col, NULL, &err);
    ck_assert_msg(a && ones, "%s", err.msg);
    spec s2[1] = {S2(5, 3)}, s3[1] = {S3(5, 2, 2)}, s1[1] = {S1(5)};
    gradcheck("spmm", 1, s2, b_spmm, a, 0, EPS, TOL);
    gradcheck("spmm 3-D x", 1, s3, b_spmm, a, 0, EPS, TOL);
    gradcheck("spmm 1-D x", 1, s1, b_spmm, a, 0, EPS, TOL);
    gradcheck("spmm unweighted, x used twice", 1, s2, b_spmm_shared, ones, 0, EPS, TOL);
    /* values against the dense product; row 1 (no entries) is zeros */
    tema_graph *g = tema_graph_new(1);
    tema_graph_reset(g, false, 0);
    float x[15];
    for (int i = 0; i < 15; i++) x[i] = sinf((float)i);
    tema_tensor *y = nn->spmm(g, a, nn->tensor(g, 2, (int64_t[]){5, 3}, x));
    ck_assert_msg(y && y->shape[0] == 4 && y->shape[1] == 3, "%s", nn->error(g));
    for (int r = 0; r < 4; r++)
        for (int j = 0; j < 3; j++) {
            double want = 0;
            for (int64_t k = A_ptr[r]; k < A_ptr[r + 1]; k++) want += (double)A_val[k] * x[A_col[k] * 3 + j];
            ck_assert_double_eq_tol(y->data[r * 3 + j], want, 1e-6);
        }
    /* x must have A's columns as rows */
    ck_assert_ptr_null(nn->spmm(g, a, nn->tensor(g, 2, (int64_t[]){4, 3}, NULL)));
    ck_assert_msg(strstr(nn->error(g), "'A' [4, 5]"), "%s", nn->error(g));
    tema_graph_free(g);
    tema_params_free(owner);
}
END_TEST

/* Bad CSR input is refused with the reason, and before finalize the store keeps it. */
START_TEST(csr_errors)
{
    tema_params *p = tema_params_new(1);
    tema_err err = {0};
    static const int64_t down[3] = {0, 2, 1}, late[3] = {1, 2, 2};
    static const int32_t cols[2] = {0, 5};
    ck_assert_ptr_null(nn->csr(p, "bad_col", 2, 5, (int64_t[]){0, 1, 2}, cols, NULL, &err));
    ck_assert_msg(strstr(err.msg, "'bad_col'") && strstr(err.msg, "col_idx[1] is 5"), "%s", err.msg);
    ck_assert_ptr_null(nn->csr(p, "down", 2, 6, down, cols, NULL, &err));
    ck_assert_msg(strstr(err.msg, "decreases at row 1"), "%s", err.msg);
    ck_assert_ptr_null(nn->csr(p, "late", 2, 6, late, cols, NULL, NULL));
    float nan_val[2] = {1.0f, NAN};
    ck_assert_ptr_null(nn->csr(p, "nan", 2, 6, (int64_t[]){0, 1, 2}, cols, nan_val, &err));
    ck_assert_msg(strstr(err.msg, "values[1] is not finite"), "%s", err.msg);
    ck_assert_int_eq(tema_params_finalize(p, &err), TEMA_EINVAL);
    ck_assert_msg(strstr(err.msg, "'bad_col'"), "finalize reports the first: %s", err.msg);
    tema_params_free(p);
    /* an empty matrix is fine: zeros out, nothing back */
    p = tema_params_new(1);
    tema_csr *empty = nn->csr(p, "empty", 3, 2, (int64_t[]){0, 0, 0, 0}, NULL, NULL, &err);
    ck_assert_msg(empty != NULL, "%s", err.msg);
    tema_graph *g = tema_graph_new(1);
    tema_graph_reset(g, false, 0);
    tema_tensor *y = nn->spmm(g, empty, nn->tensor(g, 2, (int64_t[]){2, 4}, (float[8]){1, 2, 3, 4, 5, 6, 7, 8}));
    ck_assert_ptr_nonnull(y);
    for (int i = 0; i < 12; i++) ck_assert(y->data[i] == 0.0f);
    ck_assert_ptr_null(nn->spmm(g, NULL, y));
    tema_graph_free(g);
    tema_params_free(p);
}
END_TEST

/* A backend built before spmm (ops version 2, a shorter table) still runs everything else;
 * csr() says what is missing instead of calling past the end of its table. */
START_TEST(spmm_needs_a_newer_backend)
{
    const tema_backend_ops *cur = tema_engine_backend();
    tema_backend_ops old = *cur;
    old.struct_size = (uint32_t)TEMA_BACKEND_OPS_MIN_SIZE;
    old.version = 2;
    old.spmm = NULL; /* what lies past an old table is unknown; a NULL here must not be what saves us */
    tema_engine_set_backend(&old, cpu_self);
    tema_params *p = tema_params_new(1);
    tema_err err = {0};
    ck_assert_ptr_null(nn->csr(p, "A", 4, 5, A_ptr, A_col, A_val, &err));
    ck_assert_int_eq(err.code, TEMA_EABI);
    ck_assert_msg(strstr(err.msg, "no spmm kernel") && strstr(err.msg, "rebuild the backend"), "%s", err.msg);
    old.spmm = cur->spmm; /* present in memory but outside struct_size: still refused */
    ck_assert_ptr_null(nn->csr(p, "A", 4, 5, A_ptr, A_col, A_val, &err));
    tema_params_free(p);
    tema_engine_set_backend(cur, cpu_self);
}
END_TEST

static tema_tensor *b_infonce(tema_graph *g, tema_tensor **in, void *ctx)
{
    return nn->infonce(g, in[0], in[1], *(const float *)ctx);
}

START_TEST(grad_infonce)
{
    static const float taus[2] = {0.5f, 2.0f};
    spec s[2] = {S2(4, 3), S2(4, 3)};
    for (int t = 0; t < 2; t++) gradcheck("infonce", 2, s, b_infonce, (void *)&taus[t], 0, EPS / 2, TOL);
    /* value: mean_i lse_j(<a_i,b_j>/tau) - <a_i,b_i>/tau in double */
    tema_graph *g = tema_graph_new(1);
    tema_graph_reset(g, false, 0);
    float a[12], b[12];
    for (int i = 0; i < 12; i++) a[i] = sinf((float)i), b[i] = cosf(1.7f * (float)i);
    int64_t sh[2] = {4, 3};
    tema_tensor *l = nn->infonce(g, nn->tensor(g, 2, sh, a), nn->tensor(g, 2, sh, b), 0.2f);
    ck_assert_ptr_nonnull(l);
    double want = 0;
    for (int i = 0; i < 4; i++) {
        double z[4], m = -INFINITY, se = 0;
        for (int j = 0; j < 4; j++) {
            z[j] = 0;
            for (int k = 0; k < 3; k++) z[j] += (double)a[i * 3 + k] * b[j * 3 + k] / 0.2;
            m = fmax(m, z[j]);
        }
        for (int j = 0; j < 4; j++) se += exp(z[j] - m);
        want += m + log(se) - z[i];
    }
    ck_assert_double_eq_tol(l->data[0], want / 4, 1e-5);
    ck_assert_ptr_null(nn->infonce(g, nn->tensor(g, 2, sh, a), nn->tensor(g, 2, (int64_t[]){3, 3}, b), 0.2f));
    ck_assert_ptr_null(nn->infonce(g, nn->tensor(g, 2, sh, a), nn->tensor(g, 2, sh, b), 0.0f));
    tema_graph_free(g);
}
END_TEST

/* gather_rows with a permutation is the row permutation: its backward sends each row's
 * gradient back to where the row came from, and the inverse permutation undoes it. */
static const int32_t perm5[5] = {3, 0, 4, 1, 2};
static tema_tensor *b_permute(tema_graph *g, tema_tensor **in, void *ctx)
{
    (void)ctx;
    return nn->gather_rows(g, in[0], perm5, 5);
}

START_TEST(grad_permute_rows)
{
    spec s2[1] = {S2(5, 3)}, s3[1] = {S3(5, 2, 2)};
    gradcheck("permute_rows", 1, s2, b_permute, NULL, 0, EPS, TOL);
    gradcheck("permute_rows 3-D", 1, s3, b_permute, NULL, 0, EPS, TOL);
    tema_params *p = tema_params_new(3);
    tema_tensor *x = nn->param(p, "x", 2, (int64_t[]){5, 3}, TEMA_INIT_NORMAL, 1.0f, 0);
    tema_err err = {0};
    ck_assert_int_eq(tema_params_finalize(p, &err), TEMA_OK);
    int32_t inv[5];
    for (int i = 0; i < 5; i++) inv[perm5[i]] = i;
    tema_graph *g = tema_graph_new(1);
    tema_graph_reset(g, true, 0);
    tema_tensor *y = nn->gather_rows(g, x, perm5, 5), *back = nn->gather_rows(g, y, inv, 5);
    ck_assert_mem_eq(back->data, x->data, 15 * sizeof(float));
    /* d sum(y * R) / dx[perm[i]] = R[i], exactly */
    float r[15];
    for (int i = 0; i < 15; i++) r[i] = (float)i - 7.0f;
    tema_tensor *loss = nn->sum(g, nn->mul(g, y, nn->tensor(g, 2, (int64_t[]){5, 3}, r)));
    tema_params_zero_grad(p);
    ck_assert_int_eq(tema_graph_backward(g, loss, &err), TEMA_OK);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 3; j++) ck_assert(x->grad[perm5[i] * 3 + j] == r[i * 3 + j]);
    tema_graph_free(g);
    tema_params_free(p);
}
END_TEST

static tema_tensor *b_bilinear(tema_graph *g, tema_tensor **in, void *ctx)
{
    return nn->bilinear(g, in[0], in[1], in[2], ctx ? in[3] : NULL);
}

START_TEST(grad_bilinear)
{
    spec s[4] = {S2(4, 3), S2(3, 2), S2(4, 2), S1(1)};
    gradcheck("bilinear+bias", 4, s, b_bilinear, (void *)1, 0, EPS, TOL);
    gradcheck("bilinear", 3, s, b_bilinear, NULL, 0, EPS, TOL);
    tema_graph *g = tema_graph_new(1);
    tema_graph_reset(g, false, 0);
    float x[6] = {1, 2, 3, 4, 5, 6}, w[6] = {1, 0, -1, 2, 0.5f, 1}, y[4] = {1, -1, 2, 0.5f}, b = 0.25f;
    tema_tensor *o = nn->bilinear(g, nn->tensor(g, 2, (int64_t[]){2, 3}, x), nn->tensor(g, 2, (int64_t[]){3, 2}, w),
                                  nn->tensor(g, 2, (int64_t[]){2, 2}, y), nn->tensor(g, 1, (int64_t[]){1}, &b));
    ck_assert_msg(o && o->ndim == 1 && o->shape[0] == 2, "%s", nn->error(g));
    for (int n = 0; n < 2; n++) {
        double want = b;
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 2; j++) want += (double)x[n * 3 + i] * w[i * 2 + j] * y[n * 2 + j];
        ck_assert_double_eq_tol(o->data[n], want, 1e-5);
    }
    ck_assert_ptr_null(nn->bilinear(g, nn->tensor(g, 2, (int64_t[]){2, 3}, x), nn->tensor(g, 2, (int64_t[]){2, 3}, w),
                                    nn->tensor(g, 2, (int64_t[]){2, 2}, y), NULL));
    ck_assert_msg(strstr(nn->error(g), "want x [N, D1], w [D1, D2]"), "%s", nn->error(g));
    tema_graph_free(g);
}
END_TEST

static const float bce_y[6] = {1, 0, 1, 0, 0.3f, 1};
static tema_tensor *b_bce(tema_graph *g, tema_tensor **in, void *ctx)
{
    (void)ctx;
    return nn->bce_with_logits(g, in[0], bce_y);
}

START_TEST(grad_bce_with_logits)
{
    spec s[1] = {S1(6)}, s2[1] = {S2(2, 3)};
    gradcheck("bce_with_logits", 1, s, b_bce, NULL, 0, EPS, TOL);
    gradcheck("bce_with_logits 2-D", 1, s2, b_bce, NULL, 0, EPS, TOL);
    /* values, logits far out included: no overflow, torch's max(z,0) - z y + log1p(exp(-|z|)) */
    tema_params *p = tema_params_new(1);
    tema_tensor *z = nn->param(p, "z", 1, (int64_t[]){6}, TEMA_INIT_ZEROS, 1.0f, 0);
    tema_err err = {0};
    ck_assert_int_eq(tema_params_finalize(p, &err), TEMA_OK);
    const float zs[6] = {120.0f, -150.0f, -90.0f, 95.0f, 0.4f, 3.0f};
    memcpy(z->data, zs, sizeof zs);
    tema_graph *g = tema_graph_new(1);
    tema_graph_reset(g, true, 0);
    tema_tensor *l = nn->bce_with_logits(g, z, bce_y);
    ck_assert_ptr_nonnull(l);
    double want = 0, wgrad[6];
    for (int i = 0; i < 6; i++) {
        double v = zs[i];
        want += fmax(v, 0) - v * bce_y[i] + log1p(exp(-fabs(v)));
        wgrad[i] = (1 / (1 + exp(-v)) - bce_y[i]) / 6;
    }
    ck_assert_double_eq_tol(l->data[0], want / 6, 1e-5 * (1 + want / 6));
    tema_params_zero_grad(p);
    ck_assert_int_eq(tema_graph_backward(g, l, &err), TEMA_OK);
    for (int i = 0; i < 6; i++) ck_assert_double_eq_tol(z->grad[i], wgrad[i], 1e-6);
    ck_assert_ptr_null(nn->bce_with_logits(g, z, (float[6]){0, 1, 2, 0, 0, 0}));
    ck_assert_msg(strstr(nn->error(g), "labels[2] is 2"), "%s", nn->error(g));
    tema_graph_free(g);
    tema_params_free(p);
}
END_TEST

/* detach (ABI 1.8): values pass, gradients do not. For loss = sum(R * x * detach(x)) the
 * gradient is R * x (the detached factor held fixed), not the 2 R x a finite difference of the
 * same function gives, which is the point of the op, so the gradient is checked against the
 * closed form rather than with gradcheck(); a loss that reaches x only through detach has none. */
START_TEST(grad_detach)
{
    tema_params *p = tema_params_new(4);
    tema_tensor *x = nn->param(p, "x", 2, (int64_t[]){3, 4}, TEMA_INIT_NORMAL, 1.0f, 0);
    tema_err err = {0};
    ck_assert_int_eq(tema_params_finalize(p, &err), TEMA_OK);
    tema_graph *g = tema_graph_new(1);
    tema_graph_reset(g, true, 0);
    tema_tensor *d = nn->detach(g, x);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(d->ndim, 2);
    ck_assert(d->shape[0] == 3 && d->shape[1] == 4 && d->size == 12);
    ck_assert_mem_eq(d->data, x->data, 12 * sizeof(float));
    ck_assert(!(d->flags & TEMA_TENSOR_NEEDS_GRAD));
    float r[12];
    for (int i = 0; i < 12; i++) r[i] = 0.25f * (float)i - 1.0f;
    tema_tensor *R = nn->tensor(g, 2, (int64_t[]){3, 4}, r);
    tema_tensor *loss = nn->sum(g, nn->mul(g, nn->mul(g, x, d), R));
    ck_assert_ptr_nonnull(loss);
    double want = 0;
    for (int i = 0; i < 12; i++) want += (double)r[i] * x->data[i] * x->data[i];
    ck_assert_double_eq_tol(loss->data[0], want, 1e-5 * (1 + fabs(want)));
    tema_params_zero_grad(p);
    ck_assert_int_eq(tema_graph_backward(g, loss, &err), TEMA_OK);
    for (int i = 0; i < 12; i++) ck_assert_float_eq_tol(x->grad[i], r[i] * x->data[i], 1e-6f);
    /* only through detach: nothing learnable reaches the loss */
    tema_tensor *only = nn->sum(g, nn->mul(g, d, R));
    ck_assert(!(only->flags & TEMA_TENSOR_NEEDS_GRAD));
    tema_params_zero_grad(p);
    ck_assert_int_eq(tema_graph_backward(g, only, &err), TEMA_OK);
    for (int i = 0; i < 12; i++) ck_assert_float_eq(x->grad[i], 0.0f);
    ck_assert_ptr_null(nn->detach(g, NULL));
    tema_graph_free(g);
    tema_params_free(p);
}
END_TEST

/* A small model end to end: every op chained, gradient through all of them. */
static const int32_t seq_ids[6] = {0, 3, -1, 2, 2, 1};
static tema_tensor *b_model(tema_graph *g, tema_tensor **in, void *ctx)
{
    (void)ctx;
    tema_tensor *e = nn->embedding(g, in[0], seq_ids, 6);          /* [6,4] */
    tema_tensor *h = nn->gelu(g, nn->linear(g, e, in[1], NULL));      /* [6,4] */
    h = nn->layernorm(g, nn->add(g, h, e), NULL, NULL, 1e-5f);
    int64_t sh[3] = {2, 3, 4};
    tema_tensor *h3 = nn->reshape(g, h, 3, sh);
    tema_tensor *att = nn->softmax(g, nn->matmul(g, h3, false, h3, true), NULL, true); /* [2,3,3] */
    tema_tensor *ctxv = nn->matmul(g, att, false, h3, false);
    int64_t sh2[2] = {6, 4};
    static const int32_t lo[6] = {0, 0, 0, 2, 2, 2}, hi[6] = {2, 2, 2, 5, 5, 5};
    return nn->lse_chunked(g, nn->reshape(g, ctxv, 2, sh2), in[0], lo, hi, 1.0f, 2);
}

START_TEST(grad_model)
{
    spec s[2] = {S2(5, 4), S2(4, 4)};
    gradcheck("model", 2, s, b_model, NULL, 0, 3e-3, 3e-2);
}
END_TEST

START_TEST(op_errors)
{
    tema_graph *g = tema_graph_new(1);
    tema_graph_reset(g, true, 0);
    int64_t a[2] = {3, 4}, b[2] = {5, 6};
    tema_tensor *x = nn->tensor(g, 2, a, NULL), *y = nn->tensor(g, 2, b, NULL);
    ck_assert_ptr_null(nn->matmul(g, x, false, y, false));
    ck_assert_msg(strstr(nn->error(g), "inner dimensions") != NULL, "%s", nn->error(g));
    ck_assert_ptr_null(nn->add(g, NULL, y)); /* failure propagates, first message kept */
    ck_assert_msg(strstr(nn->error(g), "inner dimensions") != NULL, "%s", nn->error(g));
    tema_err err = {0};
    ck_assert_int_ne(tema_graph_backward(g, x, &err), TEMA_OK);
    tema_graph_reset(g, true, 0);
    ck_assert_str_eq(nn->error(g), "");
    static const int32_t bad[2] = {0, 7};
    x = nn->tensor(g, 2, a, NULL); /* tensors of the previous step are gone */
    ck_assert_ptr_null(nn->embedding(g, x, bad, 2));
    ck_assert_msg(strstr(nn->error(g), "outside") != NULL, "%s", nn->error(g));
    tema_graph_free(g);
}
END_TEST

/* ---- parameters, Adam, checkpoints, arena ---- */

START_TEST(params_one_buffer)
{
    tema_params *p = tema_params_new(7);
    int64_t s1[2] = {3, 4}, s2[1] = {5}, s3[2] = {2, 2};
    tema_tensor *w = nn->param(p, "w", 2, s1, TEMA_INIT_XAVIER, 1.0f, 0);
    float host[4] = {1, 2, 3, 4};
    tema_tensor *c = nn->constant(p, "c", 2, s3, host);
    tema_tensor *b = nn->param(p, "b", 1, s2, TEMA_INIT_ONES, 1.0f, TEMA_TENSOR_NO_DECAY);
    ck_assert_ptr_null(w->data); /* not before finalize */
    tema_err err = {0};
    ck_assert_int_eq(tema_params_finalize(p, &err), TEMA_OK);
    ck_assert_int_eq(tema_params_count(p), 17);
    ck_assert_uint_eq(tema_params_n(p), 3);
    ck_assert_ptr_eq(tema_params_at(p, 1), c);
    /* learnable values, then constants, in one buffer; gradients in another */
    ck_assert_ptr_eq(b->data, w->data + 12);
    ck_assert_ptr_eq(c->data, w->data + 17);
    ck_assert_ptr_eq(b->grad, w->grad + 12);
    ck_assert_ptr_null(c->grad);
    ck_assert(!(c->flags & TEMA_TENSOR_NEEDS_GRAD));
    ck_assert_mem_eq(c->data, host, sizeof host);
    double bound = sqrt(6.0 / 7.0);
    bool differ = false;
    for (int i = 0; i < 12; i++) {
        ck_assert(fabsf(w->data[i]) <= bound);
        differ = differ || w->data[i] != w->data[0];
    }
    ck_assert(differ);
    for (int i = 0; i < 5; i++) ck_assert(b->data[i] == 1.0f);
    /* same seed, same values; another seed, other values */
    tema_params *q = tema_params_new(7), *r = tema_params_new(8);
    tema_tensor *wq = nn->param(q, "w", 2, s1, TEMA_INIT_XAVIER, 1.0f, 0);
    tema_tensor *wr = nn->param(r, "w", 2, s1, TEMA_INIT_XAVIER, 1.0f, 0);
    ck_assert_int_eq(tema_params_finalize(q, &err), TEMA_OK);
    ck_assert_int_eq(tema_params_finalize(r, &err), TEMA_OK);
    ck_assert_mem_eq(wq->data, w->data, 12 * sizeof(float));
    ck_assert(memcmp(wr->data, w->data, 12 * sizeof(float)) != 0);
    tema_params_free(q);
    tema_params_free(r);
    /* declaring twice or after finalize is reported */
    ck_assert_ptr_null(nn->param(p, "late", 1, s2, TEMA_INIT_ZEROS, 1.0f, 0));
    tema_params *d = tema_params_new(1);
    nn->param(d, "x", 1, s2, TEMA_INIT_ZEROS, 1.0f, 0);
    ck_assert_ptr_null(nn->param(d, "x", 1, s2, TEMA_INIT_ZEROS, 1.0f, 0));
    ck_assert_int_eq(tema_params_finalize(d, &err), TEMA_EINVAL);
    ck_assert_msg(strstr(err.msg, "'x'") != NULL, "%s", err.msg);
    tema_params_free(d);
    tema_params_free(p);
}
END_TEST

START_TEST(adam_step_value)
{
    tema_params *p = tema_params_new(1);
    int64_t s[1] = {2};
    tema_tensor *w = nn->param(p, "w", 1, s, TEMA_INIT_ZEROS, 1.0f, 0);
    tema_tensor *b = nn->param(p, "b", 1, s, TEMA_INIT_ZEROS, 1.0f, TEMA_TENSOR_NO_DECAY);
    tema_err err = {0};
    ck_assert_int_eq(tema_params_finalize(p, &err), TEMA_OK);
    w->data[0] = 1.0f, w->data[1] = -2.0f, b->data[0] = 0.5f, b->data[1] = 0.0f;
    tema_adam opt = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
    float gw[2] = {0.5f, 0.25f}, gb[2] = {-1.0f, 0.0f};
    double pw[2] = {1.0, -2.0}, pb[2] = {0.5, 0.0}, mw[2] = {0}, vw[2] = {0}, mb[2] = {0}, vb[2] = {0};
    for (int step = 1; step <= 3; step++) {
        memcpy(w->grad, gw, sizeof gw);
        memcpy(b->grad, gb, sizeof gb);
        tema_adam_step(p, &opt);
        double bc1 = 1 - pow(0.9, step), bc2 = 1 - pow(0.999, step);
        for (int i = 0; i < 2; i++) {
            double g = gw[i] + 0.01 * pw[i]; /* L2 decay added to the gradient */
            mw[i] = 0.9 * mw[i] + 0.1 * g;
            vw[i] = 0.999 * vw[i] + 0.001 * g * g;
            pw[i] -= 0.1 * (mw[i] / bc1) / (sqrt(vw[i] / bc2) + 1e-8);
            g = gb[i]; /* no decay */
            mb[i] = 0.9 * mb[i] + 0.1 * g;
            vb[i] = 0.999 * vb[i] + 0.001 * g * g;
            pb[i] -= 0.1 * (mb[i] / bc1) / (sqrt(vb[i] / bc2) + 1e-8);
        }
        for (int i = 0; i < 2; i++) {
            ck_assert_double_eq_tol(w->data[i], pw[i], 1e-6);
            ck_assert_double_eq_tol(b->data[i], pb[i], 1e-6);
        }
    }
    ck_assert_int_eq(opt.step, 3);
    /* first step by hand: m^ = g, v^ = g^2, so w0 moves by lr * sign(g) */
    ck_assert_double_eq_tol(pb[1], 0.0, 1e-12);
    tema_params_zero_grad(p);
    ck_assert(w->grad[0] == 0.0f && b->grad[1] == 0.0f);
    tema_params_free(p);
}
END_TEST

static tema_params *small_model(uint64_t seed, int64_t width, tema_tensor **w)
{
    tema_params *p = tema_params_new(seed);
    int64_t s1[2] = {3, width}, s2[1] = {4};
    *w = nn->param(p, "enc.w", 2, s1, TEMA_INIT_NORMAL, 0.5f, 0);
    nn->param(p, "enc.b", 1, s2, TEMA_INIT_UNIFORM, 0.1f, TEMA_TENSOR_NO_DECAY);
    tema_err err = {0};
    ck_assert_int_eq(tema_params_finalize(p, &err), TEMA_OK);
    return p;
}

START_TEST(checkpoint_round_trip)
{
    tema_tensor *w, *w2;
    tema_params *p = small_model(1, 4, &w);
    tema_adam opt = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    for (int i = 0; i < 12; i++) w->grad[i] = (float)i - 5.0f;
    tema_adam_step(p, &opt);
    tema_adam_step(p, &opt);
    char path[4096];
    snprintf(path, sizeof path, "%s/ckpt.bin", tu_tmpdir());
    tema_err err = {0};
    ck_assert_int_eq(tema_params_save(p, &opt, path, &err), TEMA_OK);
    tema_params *q = small_model(2, 4, &w2);
    ck_assert(memcmp(w->data, w2->data, 12 * sizeof(float)) != 0);
    tema_adam opt2 = opt;
    opt2.step = 0;
    ck_assert_int_eq(tema_params_load(q, &opt2, path, &err), TEMA_OK);
    ck_assert_int_eq(opt2.step, 2);
    ck_assert_mem_eq(w->data, w2->data, 12 * sizeof(float));
    /* moments came back too: one more identical step keeps them identical */
    for (int i = 0; i < 12; i++) w2->grad[i] = w->grad[i];
    tema_adam_step(p, &opt);
    tema_adam_step(q, &opt2);
    ck_assert_mem_eq(w->data, w2->data, 12 * sizeof(float));

    /* another shape: a clear error naming the tensor */
    tema_params *r = small_model(1, 5, &w2);
    ck_assert_int_eq(tema_params_load(r, &opt2, path, &err), TEMA_EINVAL);
    ck_assert_msg(strstr(err.msg, "enc.w") && strstr(err.msg, "[3,4]") && strstr(err.msg, "[3,5]"), "%s", err.msg);

    /* a flipped byte or a truncated file is detected */
    char *data;
    size_t len;
    ck_assert_int_eq(tema_read_file(path, &data, &len, &err), TEMA_OK);
    data[len / 2] ^= 0x10;
    char bad[4096];
    snprintf(bad, sizeof bad, "%s/bad.bin", tu_tmpdir());
    ck_assert_int_eq(tema_write_file_atomic(bad, data, len, &err), TEMA_OK);
    ck_assert_int_eq(tema_params_load(q, &opt2, bad, &err), TEMA_EFORMAT);
    ck_assert_msg(strstr(err.msg, "bad.bin") && strstr(err.msg, "checksum"), "%s", err.msg);
    ck_assert_int_eq(tema_write_file_atomic(bad, data, 20, &err), TEMA_OK);
    ck_assert_int_eq(tema_params_load(q, &opt2, bad, &err), TEMA_EFORMAT);
    ck_assert_int_eq(tema_write_file_atomic(bad, "hello world, not a checkpoint at all", 36, &err), TEMA_OK);
    ck_assert_int_eq(tema_params_load(q, &opt2, bad, &err), TEMA_EFORMAT);
    ck_assert_msg(strstr(err.msg, "magic"), "%s", err.msg);
    free(data);
    tema_params_free(p);
    tema_params_free(q);
    tema_params_free(r);
}
END_TEST

START_TEST(arena_reuse)
{
    tema_graph *g = tema_graph_new(1);
    int64_t sh[2] = {512, 512}; /* 1 MiB each: overflows the first blocks */
    float *first[3];
    for (int step = 0; step < 3; step++) {
        tema_graph_reset(g, true, (uint64_t)step);
        tema_tensor *t = NULL;
        for (int i = 0; i < 6; i++) t = nn->tensor(g, 2, sh, NULL);
        first[step] = nn->tensor(g, 2, sh, NULL)->data;
        ck_assert_ptr_nonnull(t);
    }
    /* after the first step the arena is one block at the high-water mark: same addresses */
    ck_assert_ptr_eq(first[1], first[2]);
    ck_assert(tema_graph_peak_bytes(g) >= (size_t)7 * 512 * 512 * 4);
    tema_graph_free(g);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("grad");
    TCase *tc = tcase_create("ops");
    tcase_add_checked_fixture(tc, gradcheck_setup, gradcheck_teardown);
    tcase_add_test(tc, grad_matmul);
    tcase_add_test(tc, grad_linear);
    tcase_add_test(tc, grad_embedding_gather);
    tcase_add_test(tc, grad_add_mul);
    tcase_add_test(tc, grad_unary);
    tcase_add_test(tc, grad_layernorm);
    tcase_add_test(tc, grad_dropout);
    tcase_add_test(tc, dropout_masks);
    tcase_add_test(tc, rewind_reuses_the_memory_of_dropped_tensors);
    tcase_add_test(tc, grad_softmax);
    tcase_add_test(tc, grad_concat_slice);
    tcase_add_test(tc, grad_misc);
    tcase_add_test(tc, grad_xent_rowdot);
    tcase_add_test(tc, grad_lse_chunked);
    tcase_add_test(tc, grad_logaddexp_n);
    tcase_add_test(tc, grad_mask_wmean);
    tcase_add_test(tc, grad_model);
    tcase_add_test(tc, grad_spmm);
    tcase_add_test(tc, csr_errors);
    tcase_add_test(tc, spmm_needs_a_newer_backend);
    tcase_add_test(tc, grad_infonce);
    tcase_add_test(tc, grad_permute_rows);
    tcase_add_test(tc, grad_bilinear);
    tcase_add_test(tc, grad_bce_with_logits);
    tcase_add_test(tc, grad_detach);
    tcase_add_test(tc, op_errors);
    tcase_add_test(tc, params_one_buffer);
    tcase_add_test(tc, adam_step_value);
    tcase_add_test(tc, checkpoint_round_trip);
    tcase_add_test(tc, arena_reuse);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
