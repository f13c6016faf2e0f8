/* tests/test_backend.c - conformance: every kernel of every backend found (statically
 * linked, or a backend plugin in the build's plugin folder) against a plain double
 * precision reference written here. A new backend passes when this suite passes. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "host.h"
#include "engine.h"
#include "registry.h"
#include "testutil.h"
#include "util.h"

const tema_plugin *tema_plugin_entry_backend_cpu(const tema_host *host);

typedef struct backend {
    const tema_backend_ops *ops;
    void *self;
    char label[128];
} backend;

static tema_rng rng;

static float *rnd(int64_t n, float scale)
{
    float *x = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) x[i] = (float)(scale * (2.0 * tema_rng_uniform(&rng) - 1.0));
    return x;
}

static void *dev(const backend *b, const void *host, size_t bytes)
{
    void *d = b->ops->alloc(b->self, bytes);
    ck_assert_ptr_nonnull(d);
    if (host) b->ops->to_device(b->self, d, host, bytes);
    return d;
}

static float *devf(const backend *b, const float *host, int64_t n) { return dev(b, host, sizeof(float) * (size_t)n); }

/* Copies backend memory back and frees it. Caller frees the result. */
static float *back(const backend *b, float *d, int64_t n)
{
    float *h = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    b->ops->sync(b->self, NULL);
    b->ops->to_host(b->self, h, d, sizeof(float) * (size_t)n);
    b->ops->free(b->self, d);
    return h;
}

static void expect_close(const backend *b, const char *what, const float *got, const double *want, int64_t n,
                         double tol)
{
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(fabs(got[i] - want[i]) <= tol * (1.0 + fabs(want[i])), "%s: %s[%lld] = %.7g, reference %.7g",
                      b->label, what, (long long)i, got[i], want[i]);
}

static double *dcopy(const float *x, int64_t n)
{
    double *d = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* ---- the kernels, one test function each ---- */

static void t_sgemm(const backend *b)
{
    for (int t = 0; t < 8; t++) {
        bool ta = t & 1, tb = (t >> 1) & 1, acc = t >> 2;
        int64_t M = 5, N = 7, K = 6, batch = 3;
        int64_t lda = (ta ? M : K) + 2, ldb = (tb ? K : N) + 1, ldc = N + 3;
        int64_t ra = ta ? K : M, rb = tb ? N : K;
        int64_t sa = ra * lda, sb = rb * ldb, sc = M * ldc;
        float *A = rnd(batch * sa, 1), *B = rnd(batch * sb, 1), *C = rnd(batch * sc, 1);
        if (!acc)
            for (int64_t i = 0; i < batch * sc; i++) C[i] = NAN; /* beta 0 must ignore C */
        double *want = dcopy(C, batch * sc);
        float alpha = 0.7f, beta = acc ? 0.5f : 0.0f;
        for (int64_t q = 0; q < batch; q++)
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) {
                    double s = 0;
                    for (int64_t k = 0; k < K; k++) {
                        double a = ta ? A[q * sa + k * lda + i] : A[q * sa + i * lda + k];
                        double bb = tb ? B[q * sb + j * ldb + k] : B[q * sb + k * ldb + j];
                        s += a * bb;
                    }
                    double *c = &want[q * sc + i * ldc + j];
                    *c = alpha * s + (acc ? beta * *c : 0.0);
                }
        float *dA = devf(b, A, batch * sa), *dB = devf(b, B, batch * sb), *dC = devf(b, C, batch * sc);
        b->ops->sgemm(b->self, ta, tb, M, N, K, alpha, dA, lda, sa, dB, ldb, sb, beta, dC, ldc, sc, batch);
        float *got = back(b, dC, batch * sc);
        for (int64_t q = 0; q < batch; q++)
            for (int64_t i = 0; i < M; i++)
                expect_close(b, "sgemm", got + q * sc + i * ldc, want + q * sc + i * ldc, N, 1e-5);
        b->ops->free(b->self, dA);
        b->ops->free(b->self, dB);
        free(A), free(B), free(C), free(want), free(got);
    }
}

static void t_vector(const backend *b)
{
    int64_t n = 1000;
    float *x = rnd(n, 2), *y = rnd(n, 2), *w = rnd(n, 1);
    double *want = dcopy(y, n);
    for (int64_t i = 0; i < n; i++) want[i] += -0.3 * x[i];
    float *dx = devf(b, x, n), *dy = devf(b, y, n), *dw = devf(b, w, n);
    b->ops->axpy(b->self, n, -0.3f, dx, dy);
    float s = 1.5f;
    float *ds = devf(b, &s, 1);
    for (int64_t i = 0; i < n; i++) want[i] += 0.5 * 1.5 * w[i];
    b->ops->axpy_scalar(b->self, n, ds, 0.5f, dw, dy);
    for (int64_t i = 0; i < n; i++) want[i] += 2.0 * 1.5;
    b->ops->axpy_scalar(b->self, n, ds, 2.0f, NULL, dy);
    float *got = back(b, dy, n);
    expect_close(b, "axpy/axpy_scalar", got, want, n, 1e-6);
    double dot = 0, sum = 0;
    for (int64_t i = 0; i < n; i++) dot += (double)x[i] * w[i], sum += x[i];
    float *dout = devf(b, NULL, 2);
    b->ops->dot(b->self, n, dx, dw, 0.25f, dout);
    b->ops->dot(b->self, n, dx, NULL, 1.0f, dout + 1);
    float *o = back(b, dout, 2);
    double wd[2] = {dot * 0.25, sum};
    expect_close(b, "dot", o, wd, 2, 1e-5);
    b->ops->free(b->self, dx), b->ops->free(b->self, dw), b->ops->free(b->self, ds);
    free(x), free(y), free(w), free(want), free(got), free(o);
}

static double ref_unary(int op, double x, double alpha)
{
    switch (op) {
    case TEMA_UNARY_SCALE: return alpha * x;
    case TEMA_UNARY_GELU: return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case TEMA_UNARY_RELU: return x > 0 ? x : 0;
    case TEMA_UNARY_SIGMOID: return 1 / (1 + exp(-x));
    case TEMA_UNARY_GELU_ERF: return 0.5 * x * (1 + erf(x / sqrt(2)));
    default: return tanh(x);
    }
}

static void t_unary(const backend *b)
{
    int64_t n = 300;
    float *x = rnd(n, 3), *g = rnd(n, 1), *d0 = rnd(n, 1);
    for (int op = 0; op <= TEMA_UNARY_GELU_ERF; op++) {
        double *want = malloc(sizeof(double) * n), *wd = dcopy(d0, n);
        for (int64_t i = 0; i < n; i++) {
            want[i] = ref_unary(op, x[i], 1.3);
            double h = 1e-4; /* derivative by a double-precision difference */
            wd[i] += g[i] * (ref_unary(op, x[i] + h, 1.3) - ref_unary(op, x[i] - h, 1.3)) / (2 * h);
        }
        float *dx = devf(b, x, n), *dy = devf(b, NULL, n), *dg = devf(b, g, n), *dd = devf(b, d0, n);
        b->ops->unary(b->self, (tema_unary_op)op, n, 1.3f, dx, dy);
        b->ops->unary_bwd(b->self, (tema_unary_op)op, n, 1.3f, dx, dy, dg, dd);
        float *y = back(b, dy, n), *d = back(b, dd, n);
        expect_close(b, "unary", y, want, n, 1e-5);
        expect_close(b, "unary_bwd", d, wd, n, 1e-4);
        b->ops->free(b->self, dx), b->ops->free(b->self, dg);
        free(want), free(wd), free(y), free(d);
    }
    free(x), free(g), free(d0);
    /* NaN goes through the polynomial exp as NaN, without undefined behaviour on the way (UBSan
     * in the sanitizer build: the exponent's shift must not be of a negative number) */
    float nanx[2] = {NAN, 0.5f};
    float *dn = devf(b, nanx, 2), *dny = devf(b, NULL, 2);
    b->ops->unary(b->self, TEMA_UNARY_GELU, 2, 1.0f, dn, dny);
    float *yn = back(b, dny, 2);
    ck_assert_msg(isnan(yn[0]) && isfinite(yn[1]), "%s: gelu(NaN) = %g, gelu(0.5) = %g", b->label, (double)yn[0],
                  (double)yn[1]);
    b->ops->free(b->self, dn);
    free(yn);
}

static void t_binary(const backend *b)
{
    int64_t n = 24;
    for (int op = 0; op < 2; op++)
        for (int64_t bn = 6; bn <= n; bn += n - 6) {
            float *a = rnd(n, 1), *bb = rnd(bn, 1), *g = rnd(n, 1), *da0 = rnd(n, 1), *db0 = rnd(bn, 1);
            double *w = malloc(sizeof(double) * n), *wda = dcopy(da0, n), *wdb = dcopy(db0, bn);
            for (int64_t i = 0; i < n; i++) {
                double bv = bb[i % bn];
                w[i] = op ? a[i] * bv : a[i] + bv;
                wda[i] += op ? g[i] * bv : g[i];
                wdb[i % bn] += op ? g[i] * a[i] : g[i];
            }
            float *d_a = devf(b, a, n), *d_b = devf(b, bb, bn), *d_o = devf(b, NULL, n), *d_g = devf(b, g, n);
            float *d_da = devf(b, da0, n), *d_db = devf(b, db0, bn);
            b->ops->binary(b->self, (tema_binary_op)op, n, d_a, d_b, bn, d_o);
            b->ops->binary_bwd(b->self, (tema_binary_op)op, n, d_a, d_b, bn, d_g, d_da, d_db);
            float *o = back(b, d_o, n), *oda = back(b, d_da, n), *odb = back(b, d_db, bn);
            expect_close(b, "binary", o, w, n, 1e-6);
            expect_close(b, "binary_bwd da", oda, wda, n, 1e-6);
            expect_close(b, "binary_bwd db", odb, wdb, bn, 1e-5);
            b->ops->free(b->self, d_a), b->ops->free(b->self, d_b), b->ops->free(b->self, d_g);
            free(a), free(bb), free(g), free(da0), free(db0), free(w), free(wda), free(wdb), free(o), free(oda),
                free(odb);
        }
}

static void t_dropout_logaddexp(const backend *b)
{
    int64_t n = 5000;
    float p = 0.3f;
    uint64_t seed = 0x1234567887654321ull;
    float *x = rnd(n, 1), *y = rnd(n, 1), *g = rnd(n, 1), *d0 = rnd(n, 1);
    double *w = malloc(sizeof(double) * n), *wd = dcopy(d0, n);
    for (int64_t i = 0; i < n; i++) {
        bool k = tema_dropout_keep(seed, (uint64_t)i, p);
        w[i] = k ? x[i] / (1.0 - p) : 0.0;
        wd[i] += k ? g[i] / (1.0 - p) : 0.0;
    }
    float *dx = devf(b, x, n), *dy = devf(b, y, n), *dg = devf(b, g, n), *dd = devf(b, d0, n), *dout = devf(b, NULL, n);
    b->ops->dropout(b->self, n, p, seed, dx, dout);
    b->ops->dropout_bwd(b->self, n, p, seed, dg, dd);
    float *o = back(b, dout, n), *od = back(b, dd, n);
    expect_close(b, "dropout", o, w, n, 1e-6);
    expect_close(b, "dropout_bwd", od, wd, n, 1e-6);
    /* logaddexp and its backward */
    float la = -0.7f, lb = 0.4f;
    double *wl = malloc(sizeof(double) * n);
    dd = devf(b, d0, n);
    dout = devf(b, NULL, n);
    free(wd);
    wd = dcopy(d0, n);
    for (int64_t i = 0; i < n; i++) {
        wl[i] = log(exp(x[i] + (double)la) + exp(y[i] + (double)lb));
        wd[i] += g[i] * exp(x[i] + (double)la - wl[i]);
    }
    b->ops->logaddexp(b->self, n, dx, la, dy, lb, dout);
    b->ops->logaddexp_bwd(b->self, n, dx, la, dout, dg, dd);
    free(o), free(od);
    o = back(b, dout, n), od = back(b, dd, n);
    expect_close(b, "logaddexp", o, wl, n, 1e-5);
    expect_close(b, "logaddexp_bwd", od, wd, n, 1e-5);
    b->ops->free(b->self, dx), b->ops->free(b->self, dy), b->ops->free(b->self, dg);
    free(x), free(y), free(g), free(d0), free(w), free(wd), free(wl), free(o), free(od);
}

static void t_layernorm(const backend *b)
{
    int64_t rows = 7, dim = 33, n = rows * dim;
    float *x = rnd(n, 2), *ga = rnd(dim, 1), *be = rnd(dim, 1), *g = rnd(n, 1), *dx0 = rnd(n, 1);
    float *dg0 = rnd(dim, 1), *db0 = rnd(dim, 1);
    double *w = malloc(sizeof(double) * n), *wdx = dcopy(dx0, n), *wdg = dcopy(dg0, dim), *wdb = dcopy(db0, dim);
    double eps = 1e-5;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        double mu = 0, var = 0;
        for (int64_t j = 0; j < dim; j++) mu += xr[j];
        mu /= dim;
        for (int64_t j = 0; j < dim; j++) var += (xr[j] - mu) * (xr[j] - mu);
        var /= dim;
        double rs = 1 / sqrt(var + eps), s1 = 0, s2 = 0;
        for (int64_t j = 0; j < dim; j++) {
            double nh = (xr[j] - mu) * rs, dn = g[r * dim + j] * ga[j];
            w[r * dim + j] = nh * ga[j] + be[j];
            wdg[j] += g[r * dim + j] * nh;
            wdb[j] += g[r * dim + j];
            s1 += dn, s2 += dn * nh;
        }
        for (int64_t j = 0; j < dim; j++) {
            double nh = (xr[j] - mu) * rs, dn = g[r * dim + j] * ga[j];
            wdx[r * dim + j] += rs * (dn - s1 / dim - nh * s2 / dim);
        }
    }
    float *d_x = devf(b, x, n), *d_ga = devf(b, ga, dim), *d_be = devf(b, be, dim), *d_o = devf(b, NULL, n);
    float *d_st = devf(b, NULL, 2 * rows), *d_g = devf(b, g, n), *d_dx = devf(b, dx0, n), *d_dg = devf(b, dg0, dim),
          *d_db = devf(b, db0, dim);
    b->ops->layernorm(b->self, rows, dim, (float)eps, d_x, d_ga, d_be, d_o, d_st, d_st + rows);
    b->ops->layernorm_bwd(b->self, rows, dim, d_x, d_ga, d_st, d_st + rows, d_g, d_dx, d_dg, d_db);
    float *o = back(b, d_o, n), *odx = back(b, d_dx, n), *odg = back(b, d_dg, dim), *odb = back(b, d_db, dim);
    expect_close(b, "layernorm", o, w, n, 1e-5);
    expect_close(b, "layernorm_bwd dx", odx, wdx, n, 1e-4);
    expect_close(b, "layernorm_bwd dgamma", odg, wdg, dim, 1e-4);
    expect_close(b, "layernorm_bwd dbeta", odb, wdb, dim, 1e-5);
    b->ops->free(b->self, d_x), b->ops->free(b->self, d_ga), b->ops->free(b->self, d_be);
    b->ops->free(b->self, d_st), b->ops->free(b->self, d_g);
    free(x), free(ga), free(be), free(g), free(dx0), free(dg0), free(db0), free(w), free(wdx), free(wdg), free(wdb);
    free(o), free(odx), free(odg), free(odb);
}

static void t_softmax(const backend *b)
{
    int64_t rows = 12, dim = 6, n = rows * dim;
    uint8_t mask[72];
    for (int64_t i = 0; i < n; i++) mask[i] = tema_rng_below(&rng, 3) != 0;
    memset(mask + 2 * dim, 0, (size_t)dim); /* a row with nothing allowed */
    float *x = rnd(n, 3), *g = rnd(n, 1), *d0 = rnd(n, 1);
    for (int variant = 0; variant < 3; variant++) {
        bool use_mask = variant == 1, causal = variant == 2;
        double *w = malloc(sizeof(double) * n), *wd = dcopy(d0, n);
        for (int64_t r = 0; r < rows; r++) {
            double m = -INFINITY, s = 0, dot = 0;
            for (int64_t j = 0; j < dim; j++) {
                bool ok = (!use_mask || mask[r * dim + j]) && (!causal || j <= r % dim);
                if (ok) m = fmax(m, x[r * dim + j]);
            }
            for (int64_t j = 0; j < dim; j++) {
                bool ok = (!use_mask || mask[r * dim + j]) && (!causal || j <= r % dim) && m > -INFINITY;
                w[r * dim + j] = ok ? exp(x[r * dim + j] - m) : 0;
                s += w[r * dim + j];
            }
            for (int64_t j = 0; j < dim; j++) {
                if (s > 0) w[r * dim + j] /= s;
                dot += w[r * dim + j] * g[r * dim + j];
            }
            for (int64_t j = 0; j < dim; j++) wd[r * dim + j] += w[r * dim + j] * (g[r * dim + j] - dot);
        }
        float *d_x = devf(b, x, n), *d_o = devf(b, NULL, n), *d_g = devf(b, g, n), *d_d = devf(b, d0, n);
        uint8_t *d_m = dev(b, mask, sizeof mask);
        b->ops->softmax(b->self, rows, dim, use_mask ? d_m : NULL, causal, d_x, d_o);
        b->ops->softmax_bwd(b->self, rows, dim, d_o, d_g, d_d);
        float *o = back(b, d_o, n), *od = back(b, d_d, n);
        expect_close(b, "softmax", o, w, n, 1e-5);
        expect_close(b, "softmax_bwd", od, wd, n, 1e-5);
        b->ops->free(b->self, d_x), b->ops->free(b->self, d_g), b->ops->free(b->self, d_m);
        free(w), free(wd), free(o), free(od);
    }
    free(x), free(g), free(d0);
}

static void t_rows(const backend *b)
{
    int64_t rows = 9, dim = 10, n = rows * dim;
    float *x = rnd(n, 2), *g = rnd(n, 1), *d0 = rnd(n, 1), *gr = rnd(rows, 1);
    for (int64_t j = 0; j < dim; j++) x[3 * dim + j] = 0.0f; /* zero row: l2norm's eps branch */
    float eps = 1e-3f;
    /* l2norm */
    double *w = malloc(sizeof(double) * n), *wd = dcopy(d0, n);
    for (int64_t r = 0; r < rows; r++) {
        double s = 0, dot = 0;
        for (int64_t j = 0; j < dim; j++) s += (double)x[r * dim + j] * x[r * dim + j];
        double nr = sqrt(s), den = fmax(nr, eps);
        for (int64_t j = 0; j < dim; j++) w[r * dim + j] = x[r * dim + j] / den, dot += w[r * dim + j] * g[r * dim + j];
        for (int64_t j = 0; j < dim; j++)
            wd[r * dim + j] += nr > eps ? (g[r * dim + j] - w[r * dim + j] * dot) / nr : g[r * dim + j] / eps;
    }
    float *d_x = devf(b, x, n), *d_o = devf(b, NULL, n), *d_nr = devf(b, NULL, rows), *d_g = devf(b, g, n),
          *d_d = devf(b, d0, n);
    b->ops->l2norm(b->self, rows, dim, eps, d_x, d_o, d_nr);
    b->ops->l2norm_bwd(b->self, rows, dim, eps, d_o, d_nr, d_g, d_d);
    float *o = back(b, d_o, n), *od = back(b, d_d, n);
    expect_close(b, "l2norm", o, w, n, 1e-5);
    expect_close(b, "l2norm_bwd", od, wd, n, 1e-4);
    free(o), free(od), free(wd);
    /* logsumexp */
    double *wl = malloc(sizeof(double) * rows);
    wd = dcopy(d0, n);
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        for (int64_t j = 0; j < dim; j++) s += exp(x[r * dim + j]);
        wl[r] = log(s);
        for (int64_t j = 0; j < dim; j++) wd[r * dim + j] += gr[r] * exp(x[r * dim + j] - wl[r]);
    }
    float *d_l = devf(b, NULL, rows), *d_gr = devf(b, gr, rows);
    d_d = devf(b, d0, n);
    b->ops->logsumexp(b->self, rows, dim, d_x, d_l);
    b->ops->logsumexp_bwd(b->self, rows, dim, d_x, d_l, d_gr, d_d);
    o = back(b, d_l, rows), od = back(b, d_d, n);
    expect_close(b, "logsumexp", o, wl, rows, 1e-5);
    expect_close(b, "logsumexp_bwd", od, wd, n, 1e-5);
    free(o), free(od), free(wd);
    /* cross entropy */
    int32_t t[9] = {0, 9, -1, 3, 3, 5, -1, 1, 2};
    double *wloss = malloc(sizeof(double) * rows);
    wd = dcopy(d0, n);
    float dl = 0.8f, scale = 0.25f;
    for (int64_t r = 0; r < rows; r++) {
        wloss[r] = t[r] < 0 ? 0 : wl[r] - x[r * dim + t[r]];
        if (t[r] < 0) continue;
        for (int64_t j = 0; j < dim; j++)
            wd[r * dim + j] += scale * dl * (exp(x[r * dim + j] - wl[r]) - (j == t[r] ? 1.0 : 0.0));
    }
    int32_t *d_t = dev(b, t, sizeof t);
    float *d_loss = devf(b, NULL, rows), *d_lse = devf(b, NULL, rows), *d_dl = devf(b, &dl, 1);
    d_d = devf(b, d0, n);
    b->ops->xent(b->self, rows, dim, d_x, d_t, d_loss, d_lse);
    b->ops->xent_bwd(b->self, rows, dim, d_x, d_t, d_lse, d_dl, scale, d_d);
    o = back(b, d_loss, rows), od = back(b, d_d, n);
    float *ol = back(b, d_lse, rows);
    expect_close(b, "xent", o, wloss, rows, 1e-5);
    expect_close(b, "xent lse", ol, wl, rows, 1e-5);
    expect_close(b, "xent_bwd", od, wd, n, 1e-5);
    b->ops->free(b->self, d_x), b->ops->free(b->self, d_nr), b->ops->free(b->self, d_g);
    b->ops->free(b->self, d_gr), b->ops->free(b->self, d_t), b->ops->free(b->self, d_dl);
    free(o), free(od), free(ol), free(wd), free(w), free(wl), free(wloss);
    free(x), free(g), free(d0), free(gr);
}

static void t_layout(const backend *b)
{
    /* gather / scatter_add with repeats and padding */
    int64_t rows = 6, dim = 70, n = 9;
    int32_t ids[9] = {5, -1, 0, 5, 2, 2, 5, -1, 1};
    float *tab = rnd(rows * dim, 1), *g = rnd(n * dim, 1), *t0 = rnd(rows * dim, 1);
    double *w = malloc(sizeof(double) * n * dim), *wt = dcopy(t0, rows * dim);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < dim; j++) {
            w[i * dim + j] = ids[i] < 0 ? 0 : tab[ids[i] * dim + j];
            if (ids[i] >= 0) wt[ids[i] * dim + j] += g[i * dim + j];
        }
    int32_t *d_ids = dev(b, ids, sizeof ids);
    float *d_tab = devf(b, tab, rows * dim), *d_o = devf(b, NULL, n * dim), *d_g = devf(b, g, n * dim),
          *d_t = devf(b, t0, rows * dim);
    b->ops->gather(b->self, n, dim, d_ids, d_tab, d_o);
    b->ops->scatter_add(b->self, n, dim, d_ids, d_g, d_t);
    float *o = back(b, d_o, n * dim), *ot = back(b, d_t, rows * dim);
    expect_close(b, "gather", o, w, n * dim, 0);
    expect_close(b, "scatter_add", ot, wt, rows * dim, 1e-6);
    free(o), free(ot), free(w), free(wt);
    /* copy2d: overwrite and accumulate a strided block */
    for (int acc = 0; acc < 2; acc++) {
        float *dst0 = rnd(4 * 9, 1);
        double *wd = dcopy(dst0, 36);
        for (int64_t r = 0; r < 4; r++)
            for (int64_t j = 0; j < 3; j++) wd[r * 9 + 2 + j] = (acc ? wd[r * 9 + 2 + j] : 0) + tab[r * 5 + 1 + j];
        float *d_dst = devf(b, dst0, 36);
        b->ops->copy2d(b->self, 4, 3, d_tab + 1, 5, d_dst + 2, 9, acc);
        float *od = back(b, d_dst, 36);
        expect_close(b, "copy2d", od, wd, 36, 1e-6);
        free(od), free(wd), free(dst0);
    }
    /* permute0213 */
    int64_t B = 2, L = 3, H = 4, D = 5, m = B * L * H * D;
    float *x = rnd(m, 1), *o0 = rnd(m, 1);
    for (int acc = 0; acc < 2; acc++) {
        double *wp = dcopy(o0, m);
        for (int64_t bb = 0; bb < B; bb++)
            for (int64_t l = 0; l < L; l++)
                for (int64_t h = 0; h < H; h++)
                    for (int64_t k = 0; k < D; k++) {
                        double *c = &wp[((bb * H + h) * L + l) * D + k];
                        *c = (acc ? *c : 0) + x[((bb * L + l) * H + h) * D + k];
                    }
        float *d_x = devf(b, x, m), *d_p = devf(b, o0, m);
        b->ops->permute0213(b->self, B, L, H, D, d_x, d_p, acc);
        float *op = back(b, d_p, m);
        expect_close(b, "permute0213", op, wp, m, 1e-6);
        b->ops->free(b->self, d_x);
        free(op), free(wp);
    }
    b->ops->free(b->self, d_ids), b->ops->free(b->self, d_tab), b->ops->free(b->self, d_g);
    free(x), free(o0), free(tab), free(g), free(t0);
}

static void t_rowdot(const backend *b)
{
    int64_t rows = 8, dim = 5, ni = 6;
    int32_t t[8] = {0, 5, -1, 5, 2, 1, 1, 0};
    float *h = rnd(rows * dim, 1), *it = rnd(ni * dim, 1), *g = rnd(rows, 1), *dh0 = rnd(rows * dim, 1),
          *di0 = rnd(ni * dim, 1);
    double *w = malloc(sizeof(double) * rows), *wdh = dcopy(dh0, rows * dim), *wdi = dcopy(di0, ni * dim);
    float sc = 1.7f;
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        if (t[r] >= 0)
            for (int64_t j = 0; j < dim; j++) {
                s += (double)h[r * dim + j] * it[t[r] * dim + j];
                wdh[r * dim + j] += g[r] * sc * it[t[r] * dim + j];
                wdi[t[r] * dim + j] += g[r] * sc * h[r * dim + j];
            }
        w[r] = s * sc;
    }
    int32_t *d_t = dev(b, t, sizeof t);
    float *d_h = devf(b, h, rows * dim), *d_it = devf(b, it, ni * dim), *d_o = devf(b, NULL, rows),
          *d_g = devf(b, g, rows), *d_dh = devf(b, dh0, rows * dim), *d_di = devf(b, di0, ni * dim);
    b->ops->rowdot(b->self, rows, dim, sc, d_h, d_it, d_t, d_o);
    b->ops->rowdot_bwd(b->self, rows, dim, sc, d_h, d_it, d_t, d_g, d_dh, d_di);
    float *o = back(b, d_o, rows), *odh = back(b, d_dh, rows * dim), *odi = back(b, d_di, ni * dim);
    expect_close(b, "rowdot", o, w, rows, 1e-5);
    expect_close(b, "rowdot_bwd dh", odh, wdh, rows * dim, 1e-5);
    expect_close(b, "rowdot_bwd ditems", odi, wdi, ni * dim, 1e-5);
    b->ops->free(b->self, d_t), b->ops->free(b->self, d_h), b->ops->free(b->self, d_it), b->ops->free(b->self, d_g);
    free(h), free(it), free(g), free(dh0), free(di0), free(w), free(wdh), free(wdi), free(o), free(odh), free(odi);
}

static void t_lse(const backend *b)
{
    /* logits for items [c0, c0+cols) of a bigger range, rows with ranges that cut the chunk */
    int64_t rows = 5, cols = 7, ld = 9, c0 = 10;
    int32_t lo[5] = {0, 12, 10, 20, 14}, hi[5] = {30, 15, 17, 25, 14};
    float *lg = rnd(rows * ld, 4), *m0 = rnd(rows, 1), *s0 = rnd(rows, 1), *dout = rnd(rows, 1);
    for (int64_t r = 0; r < rows; r++) s0[r] = fabsf(s0[r]) + 0.1f;
    s0[3] = 0.0f, m0[3] = -INFINITY; /* untouched so far */
    double *wl = malloc(sizeof(double) * rows);
    double *wg = malloc(sizeof(double) * rows * ld);
    for (int64_t r = 0; r < rows; r++) {
        double tot = s0[r] > 0 ? s0[r] * exp(m0[r]) : 0.0;
        for (int64_t j = 0; j < cols; j++)
            if (c0 + j >= lo[r] && c0 + j < hi[r]) tot += exp(lg[r * ld + j]);
        wl[r] = tot > 0 ? log(tot) : 0.0;
        for (int64_t j = 0; j < ld; j++) {
            bool in = j < cols && c0 + j >= lo[r] && c0 + j < hi[r];
            wg[r * ld + j] = j >= cols ? lg[r * ld + j] : in ? 0.6 * dout[r] * exp(lg[r * ld + j] - wl[r]) : 0.0;
        }
    }
    int32_t *d_lo = dev(b, lo, sizeof lo), *d_hi = dev(b, hi, sizeof hi);
    float *d_lg = devf(b, lg, rows * ld), *d_m = devf(b, m0, rows), *d_s = devf(b, s0, rows), *d_o = devf(b, NULL, rows),
          *d_do = devf(b, dout, rows);
    b->ops->lse_update(b->self, rows, cols, c0, d_lg, ld, d_lo, d_hi, d_m, d_s);
    b->ops->lse_finish(b->self, rows, d_m, d_s, d_o);
    float *o = back(b, d_o, rows);
    expect_close(b, "lse_update+finish", o, wl, rows, 1e-5);
    float *dl = devf(b, o, rows);
    b->ops->lse_grad(b->self, rows, cols, c0, d_lg, ld, d_lo, d_hi, dl, d_do, 0.6f);
    float *og = back(b, d_lg, rows * ld);
    for (int64_t r = 0; r < rows; r++) expect_close(b, "lse_grad", og + r * ld, wg + r * ld, cols, 1e-5);
    /* lse_init then an empty range finishes at 0 */
    float *d_m2 = devf(b, NULL, rows), *d_s2 = devf(b, NULL, rows), *d_o2 = devf(b, NULL, rows);
    b->ops->lse_init(b->self, rows, d_m2, d_s2);
    b->ops->lse_finish(b->self, rows, d_m2, d_s2, d_o2);
    float *o2 = back(b, d_o2, rows);
    for (int64_t r = 0; r < rows; r++) ck_assert_msg(o2[r] == 0.0f, "%s: lse_finish of nothing = %g", b->label, o2[r]);
    b->ops->free(b->self, d_lo), b->ops->free(b->self, d_hi), b->ops->free(b->self, d_m), b->ops->free(b->self, d_s);
    b->ops->free(b->self, d_do), b->ops->free(b->self, dl), b->ops->free(b->self, d_m2), b->ops->free(b->self, d_s2);
    free(lg), free(m0), free(s0), free(dout), free(wl), free(wg), free(o), free(og), free(o2);
}

static void t_adam(const backend *b)
{
    int64_t n = 50;
    float *p = rnd(n, 1), *g = rnd(n, 1), *m = rnd(n, 0.1f), *v = rnd(n, 0.1f);
    for (int64_t i = 0; i < n; i++) v[i] = fabsf(v[i]);
    double *wp = malloc(sizeof(double) * n), *wm = malloc(sizeof(double) * n), *wv = malloc(sizeof(double) * n);
    float lr = 0.01f, b1 = 0.9f, b2 = 0.98f, eps = 1e-6f, wd = 0.1f, bc1 = 0.271f, bc2 = 0.0588f;
    for (int64_t i = 0; i < n; i++) {
        double gg = g[i] + (double)wd * p[i];
        wm[i] = b1 * (double)m[i] + (1 - (double)b1) * gg;
        wv[i] = b2 * (double)v[i] + (1 - (double)b2) * gg * gg;
        wp[i] = p[i] - lr * (wm[i] / bc1) / (sqrt(wv[i] / bc2) + eps);
    }
    float *d_p = devf(b, p, n), *d_g = devf(b, g, n), *d_m = devf(b, m, n), *d_v = devf(b, v, n);
    b->ops->adam(b->self, n, lr, b1, b2, eps, wd, bc1, bc2, d_p, d_g, d_m, d_v);
    float *op = back(b, d_p, n), *om = back(b, d_m, n), *ov = back(b, d_v, n);
    expect_close(b, "adam p", op, wp, n, 1e-5);
    expect_close(b, "adam m", om, wm, n, 1e-5);
    expect_close(b, "adam v", ov, wv, n, 1e-5);
    b->ops->free(b->self, d_g);
    /* the row forms on rows {4, 1} of [5, 10]: those rows exactly as the full sweep left them
     * (op, om, ov), the other rows untouched; zero_rows clears the same rows only */
    const int32_t rows[2] = {4, 1};
    int32_t *d_rows = dev(b, rows, sizeof rows);
    d_p = devf(b, p, n), d_g = devf(b, g, n), d_m = devf(b, m, n), d_v = devf(b, v, n);
    b->ops->adam_rows(b->self, 2, 10, d_rows, lr, b1, b2, eps, wd, bc1, bc2, d_p, d_g, d_m, d_v);
    b->ops->zero_rows(b->self, 2, 10, d_rows, d_g);
    float *rp = back(b, d_p, n), *rm = back(b, d_m, n), *rv = back(b, d_v, n), *rg = back(b, d_g, n);
    for (int64_t i = 0; i < n; i++) {
        const bool hit = i / 10 == 4 || i / 10 == 1;
        ck_assert_msg(rp[i] == (hit ? op[i] : p[i]) && rm[i] == (hit ? om[i] : m[i]) && rv[i] == (hit ? ov[i] : v[i]),
                      "%s: adam_rows element %lld: %g %g %g", b->label, (long long)i, rp[i], rm[i], rv[i]);
        ck_assert_msg(rg[i] == (hit ? 0.0f : g[i]), "%s: zero_rows element %lld = %g", b->label, (long long)i, rg[i]);
    }
    b->ops->free(b->self, d_rows);
    free(p), free(g), free(m), free(v), free(wp), free(wm), free(wv), free(op), free(om), free(ov);
    free(rp), free(rm), free(rv), free(rg);
}

/* Sizes where a device backend needs several blocks per launch, several loop trips per
 * thread and multi-pass reductions (the small cases above fit in one block). */
static void t_large(const backend *b)
{
    /* dot over many blocks, with and without weights */
    int64_t n = 210011; /* >= every size below */
    float *x = rnd(n, 1), *w = rnd(n, 1);
    double dw = 0, ds = 0;
    for (int64_t i = 0; i < n; i++) dw += (double)x[i] * w[i], ds += x[i];
    float *d_x = devf(b, x, n), *d_w = devf(b, w, n), *d_o = devf(b, NULL, 2);
    b->ops->dot(b->self, n, d_x, d_w, 0.5f, d_o);
    b->ops->dot(b->self, n, d_x, NULL, 1.0f, d_o + 1);
    float *o = back(b, d_o, 2);
    double want[2] = {0.5 * dw, ds};
    expect_close(b, "dot (large)", o, want, 2, 1e-5);
    free(o);
    /* broadcast gradient over many rows */
    int64_t rows = 1000, bn = 37, m = rows * bn;
    float *db0 = rnd(bn, 1);
    double *wdb = dcopy(db0, bn);
    for (int64_t i = 0; i < m; i++) wdb[i % bn] += (double)w[i] * x[i];
    float *d_db = devf(b, db0, bn);
    b->ops->binary_bwd(b->self, TEMA_BINARY_MUL, m, d_x, d_w, bn, d_w, NULL, d_db);
    o = back(b, d_db, bn);
    expect_close(b, "binary_bwd db (large)", o, wdb, bn, 1e-5);
    free(o), free(wdb), free(db0);
    /* layernorm: long rows, many of them (dgamma/dbeta over several row chunks) */
    rows = 300;
    int64_t dim = 700;
    m = rows * dim;
    float *g0 = rnd(dim, 1), *bt0 = rnd(dim, 1);
    double *wdg = dcopy(g0, dim), *wdbt = dcopy(bt0, dim), *wy = malloc(sizeof(double) * (size_t)m);
    for (int64_t r = 0; r < rows; r++) {
        double mu = 0, var = 0;
        for (int64_t j = 0; j < dim; j++) mu += x[r * dim + j];
        mu /= dim;
        for (int64_t j = 0; j < dim; j++) var += (x[r * dim + j] - mu) * (x[r * dim + j] - mu);
        double rs = 1 / sqrt(var / dim + 1e-5);
        for (int64_t j = 0; j < dim; j++) {
            double nh = (x[r * dim + j] - mu) * rs;
            wy[r * dim + j] = nh;
            wdg[j] += w[r * dim + j] * nh;
            wdbt[j] += w[r * dim + j];
        }
    }
    float *d_y = devf(b, NULL, m), *d_st = devf(b, NULL, 2 * rows), *d_g = devf(b, g0, dim), *d_bt = devf(b, bt0, dim);
    b->ops->layernorm(b->self, rows, dim, 1e-5f, d_x, NULL, NULL, d_y, d_st, d_st + rows);
    b->ops->layernorm_bwd(b->self, rows, dim, d_x, NULL, d_st, d_st + rows, d_w, NULL, d_g, d_bt);
    o = back(b, d_y, m);
    float *og = back(b, d_g, dim), *ob = back(b, d_bt, dim);
    expect_close(b, "layernorm (large)", o, wy, m, 1e-4);
    expect_close(b, "layernorm_bwd dgamma (large)", og, wdg, dim, 1e-4);
    expect_close(b, "layernorm_bwd dbeta (large)", ob, wdbt, dim, 1e-4);
    free(o), free(og), free(ob), free(wdg), free(wdbt), free(wy), free(g0), free(bt0);
    b->ops->free(b->self, d_st);
    /* softmax and cross entropy over long rows */
    rows = 4, dim = 5000;
    int32_t t[4] = {17, -1, 4999, 0};
    double *wl = malloc(sizeof(double) * (size_t)rows), *ws = malloc(sizeof(double) * (size_t)(rows * dim));
    for (int64_t r = 0; r < rows; r++) {
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < dim; j++) mx = fmax(mx, 3.0 * x[r * dim + j]);
        for (int64_t j = 0; j < dim; j++) sum += exp(3.0 * x[r * dim + j] - mx);
        for (int64_t j = 0; j < dim; j++) ws[r * dim + j] = exp(3.0 * x[r * dim + j] - mx) / sum;
        wl[r] = t[r] < 0 ? 0 : mx + log(sum) - 3.0 * x[r * dim + t[r]];
    }
    float *d_s = devf(b, NULL, rows * dim), *d_3x = devf(b, NULL, rows * dim), *d_l = devf(b, NULL, rows),
          *d_lse = devf(b, NULL, rows);
    int32_t *d_t = dev(b, t, sizeof t);
    b->ops->unary(b->self, TEMA_UNARY_SCALE, rows * dim, 3.0f, d_x, d_3x);
    b->ops->softmax(b->self, rows, dim, NULL, false, d_3x, d_s);
    b->ops->xent(b->self, rows, dim, d_3x, d_t, d_l, d_lse);
    o = back(b, d_s, rows * dim);
    float *ol = back(b, d_l, rows);
    expect_close(b, "softmax (large)", o, ws, rows * dim, 1e-5);
    expect_close(b, "xent (large)", ol, wl, rows, 1e-5);
    free(o), free(ol), free(wl), free(ws);
    b->ops->free(b->self, d_3x), b->ops->free(b->self, d_lse), b->ops->free(b->self, d_t);
    /* scatter_add with many repeats */
    int64_t ns = 5000, nid = 10, sd = 3;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)ns);
    for (int64_t i = 0; i < ns; i++) ids[i] = (int32_t)(i % 11) - 1; /* -1 (padding) and 0..9 */
    double *wt = calloc((size_t)(nid * sd), sizeof(double));
    for (int64_t i = 0; i < ns; i++)
        for (int64_t j = 0; ids[i] >= 0 && j < sd; j++) wt[ids[i] * sd + j] += x[i * sd + j];
    int32_t *d_ids = dev(b, ids, sizeof(int32_t) * (size_t)ns);
    float *d_tab = devf(b, NULL, nid * sd);
    b->ops->memset0(b->self, d_tab, sizeof(float) * (size_t)(nid * sd));
    b->ops->scatter_add(b->self, ns, sd, d_ids, d_x, d_tab);
    o = back(b, d_tab, nid * sd);
    expect_close(b, "scatter_add (repeats)", o, wt, nid * sd, 1e-4);
    free(o), free(wt), free(ids);
    b->ops->free(b->self, d_ids);
    b->ops->free(b->self, d_x), b->ops->free(b->self, d_w);
    free(x), free(w);
}

/* A random CSR [rows, cols] with skewed degrees (row r has about (r % 7)^2 entries, some
 * none), repeated columns, and values in [-1, 1]. Caller frees the three arrays. */
static int64_t rnd_csr(int64_t rows, int64_t cols, int64_t **ptr, int32_t **col, float **val)
{
    *ptr = malloc(sizeof(int64_t) * (size_t)(rows + 1));
    (*ptr)[0] = 0;
    for (int64_t r = 0; r < rows; r++) (*ptr)[r + 1] = (*ptr)[r] + (r % 7) * (r % 7) * (r % 5 ? 1 : 0);
    const int64_t nnz = (*ptr)[rows];
    *col = malloc(sizeof(int32_t) * (size_t)(nnz ? nnz : 1));
    for (int64_t k = 0; k < nnz; k++) (*col)[k] = (int32_t)(tema_rng_uniform(&rng) * (double)cols) % (int32_t)cols;
    *val = rnd(nnz, 1);
    return nnz;
}

/* out = A x (over NaN: must overwrite) and out += A x, against a double reference; a small
 * matrix and one of many warps / blocks of rows with a dim that is no multiple of 32. */
static void t_spmm(const backend *b)
{
    const int64_t sizes[2][3] = {{9, 6, 5}, {3001, 1700, 70}};
    for (int sz = 0; sz < 2; sz++) {
        const int64_t rows = sizes[sz][0], cols = sizes[sz][1], dim = sizes[sz][2];
        int64_t *ptr;
        int32_t *col;
        float *val;
        const int64_t nnz = rnd_csr(rows, cols, &ptr, &col, &val);
        float *x = rnd(cols * dim, 1), *acc0 = rnd(rows * dim, 1), *nan = malloc(sizeof(float) * (size_t)(rows * dim));
        for (int64_t i = 0; i < rows * dim; i++) nan[i] = NAN;
        double *want = calloc((size_t)(rows * dim), sizeof(double)), *want_acc = dcopy(acc0, rows * dim);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = ptr[r]; k < ptr[r + 1]; k++)
                for (int64_t j = 0; j < dim; j++) want[r * dim + j] += (double)val[k] * x[(int64_t)col[k] * dim + j];
        for (int64_t i = 0; i < rows * dim; i++) want_acc[i] += want[i];
        int64_t *d_ptr = dev(b, ptr, sizeof(int64_t) * (size_t)(rows + 1));
        int32_t *d_col = dev(b, col, sizeof(int32_t) * (size_t)(nnz ? nnz : 1));
        float *d_val = devf(b, val, nnz ? nnz : 1), *d_x = devf(b, x, cols * dim);
        float *d_o = devf(b, nan, rows * dim), *d_acc = devf(b, acc0, rows * dim);
        b->ops->spmm(b->self, rows, dim, d_ptr, d_col, d_val, d_x, d_o, false);
        b->ops->spmm(b->self, rows, dim, d_ptr, d_col, d_val, d_x, d_acc, true);
        float *o = back(b, d_o, rows * dim), *oa = back(b, d_acc, rows * dim);
        expect_close(b, "spmm", o, want, rows * dim, 1e-5);
        expect_close(b, "spmm accumulate", oa, want_acc, rows * dim, 1e-5);
        b->ops->free(b->self, d_ptr), b->ops->free(b->self, d_col), b->ops->free(b->self, d_val);
        b->ops->free(b->self, d_x);
        free(ptr), free(col), free(val), free(x), free(acc0), free(nan), free(want), free(want_acc), free(o), free(oa);
    }
}

/* attention_infer against a double reference: q, k, v interleaved in one buffer with a row
 * stride wider than the heads, out with spare columns that must keep their values, padded
 * rows and an empty sequence (zeros), and a sequence long enough for the kernel's path
 * without transposed keys on the cpu backend. */
static void t_attention_infer(const backend *b)
{
    struct { int64_t B, T, heads, hd; int32_t len[4]; } cases[] = {
        {3, 7, 2, 5, {7, 3, 0}}, {4, 70, 3, 40, {70, 1, 33, 64}}, {2, 300, 1, 64, {300, 150}}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int64_t B = cases[ci].B, T = cases[ci].T, nh = cases[ci].heads, hd = cases[ci].hd, H = nh * hd;
        const int64_t ld = 3 * H + 3, ldo = H + 2, rows = B * T;
        const float scale = 1.0f / sqrtf((float)hd);
        float *x = rnd(rows * ld, 2), *o0 = malloc(sizeof(float) * (size_t)(rows * ldo));
        for (int64_t i = 0; i < rows * ldo; i++) o0[i] = 7.0f;
        double *want = dcopy(o0, rows * ldo), *s = malloc(sizeof(double) * (size_t)T);
        for (int64_t bb = 0; bb < B; bb++)
            for (int64_t h = 0; h < nh; h++)
                for (int64_t t = 0; t < T; t++) {
                    const int64_t n = cases[ci].len[bb], c = h * hd;
                    double *w = want + (bb * T + t) * ldo + c, m = -INFINITY, sum = 0;
                    for (int64_t d = 0; d < hd; d++) w[d] = 0;
                    if (t >= n) continue;
                    const float *qt = x + (bb * T + t) * ld + c;
                    for (int64_t j = 0; j < n; j++) {
                        const float *kj = x + (bb * T + j) * ld + H + 1 + c;
                        s[j] = 0;
                        for (int64_t d = 0; d < hd; d++) s[j] += (double)qt[d] * kj[d];
                        s[j] *= scale;
                        m = s[j] > m ? s[j] : m;
                    }
                    for (int64_t j = 0; j < n; j++) sum += (s[j] = exp(s[j] - m));
                    for (int64_t j = 0; j < n; j++)
                        for (int64_t d = 0; d < hd; d++) w[d] += s[j] / sum * x[(bb * T + j) * ld + 2 * H + 2 + c + d];
                }
        float *d_x = devf(b, x, rows * ld), *d_o = devf(b, o0, rows * ldo);
        int32_t *d_len = dev(b, cases[ci].len, sizeof(int32_t) * (size_t)B);
        b->ops->attention_infer(b->self, B, T, nh, hd, scale, d_x, d_x + H + 1, d_x + 2 * H + 2, ld, d_len, d_o, ldo);
        float *o = back(b, d_o, rows * ldo);
        expect_close(b, "attention_infer", o, want, rows * ldo, 1e-5);
        b->ops->free(b->self, d_x), b->ops->free(b->self, d_len);
        free(x), free(o0), free(want), free(s), free(o);
    }
}

/* Empty and degenerate calls: K == 0 products, empty dots, NULL gradient outputs. */
static void t_edge(const backend *b)
{
    int64_t M = 3, N = 4, ldc = 5;
    float C[15];
    for (int i = 0; i < 15; i++) C[i] = NAN;
    float *dC = devf(b, C, 15);
    b->ops->sgemm(b->self, false, false, M, N, 0, 1.0f, dC, 1, 0, dC, N, 0, 0.0f, dC, ldc, 0, 1);
    float *o = back(b, dC, 15);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++)
            ck_assert_msg(o[i * ldc + j] == 0.0f, "%s: sgemm K=0 beta=0 [%lld,%lld] = %g", b->label, (long long)i,
                          (long long)j, o[i * ldc + j]);
    free(o);
    for (int i = 0; i < 15; i++) C[i] = (float)i;
    dC = devf(b, C, 15);
    b->ops->sgemm(b->self, true, true, M, N, 0, 1.0f, dC, 1, 0, dC, N, 0, 0.5f, dC, ldc, 0, 1);
    o = back(b, dC, 15);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++)
            ck_assert_msg(o[i * ldc + j] == 0.5f * C[i * ldc + j], "%s: sgemm K=0 beta=0.5", b->label);
    free(o);
    float nan2[2] = {NAN, NAN};
    float *d_o = devf(b, nan2, 2);
    b->ops->dot(b->self, 0, d_o, NULL, 1.0f, d_o);
    o = back(b, d_o, 2);
    ck_assert_msg(o[0] == 0.0f, "%s: dot of nothing = %g", b->label, o[0]);
    free(o);
    /* rowdot_bwd with only ditems, layernorm_bwd with only dx: the NULL outputs are skipped */
    int32_t t[2] = {1, -1};
    float h[4] = {1, 2, 3, 4}, it[4] = {5, 6, 7, 8}, g[2] = {2, 3}, z[4] = {0};
    int32_t *d_t = dev(b, t, sizeof t);
    float *d_h = devf(b, h, 4), *d_it = devf(b, it, 4), *d_g = devf(b, g, 2), *d_di = devf(b, z, 4);
    b->ops->rowdot_bwd(b->self, 2, 2, 0.5f, d_h, d_it, d_t, d_g, NULL, d_di);
    o = back(b, d_di, 4);
    double wdi[4] = {0, 0, 1, 2};
    expect_close(b, "rowdot_bwd ditems only", o, wdi, 4, 1e-6);
    free(o);
    float *d_dx = devf(b, z, 4), *d_st = devf(b, NULL, 4);
    b->ops->layernorm(b->self, 2, 2, 1e-5f, d_h, NULL, NULL, d_di = devf(b, NULL, 4), d_st, d_st + 2);
    b->ops->layernorm_bwd(b->self, 2, 2, d_h, NULL, d_st, d_st + 2, d_h, d_dx, NULL, NULL);
    free(back(b, d_di, 4));
    o = back(b, d_dx, 4);
    for (int i = 0; i < 4; i++) ck_assert_msg(isfinite(o[i]), "%s: layernorm_bwd dx only", b->label);
    free(o);
    /* copy is memmove: overlapping ranges */
    float seq[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    float *d_s = devf(b, seq, 8);
    b->ops->copy(b->self, d_s + 2, d_s, 5 * sizeof(float));
    o = back(b, d_s, 8);
    double wseq[8] = {0, 1, 0, 1, 2, 3, 4, 7};
    expect_close(b, "copy (overlap)", o, wseq, 8, 0);
    free(o);
    b->ops->free(b->self, d_t), b->ops->free(b->self, d_h), b->ops->free(b->self, d_it);
    b->ops->free(b->self, d_g), b->ops->free(b->self, d_st);
    tema_err err = {0};
    ck_assert_msg(b->ops->sync(b->self, &err) == TEMA_OK, "%s: sync: %s", b->label, err.msg);
}

/* ---- every backend ---- */

typedef void (*kernel_test)(const backend *b);

/* Every backend the build has. A device backend whose init reports TEMA_EUNSUPPORTED
 * (no GPU on this machine) is skipped with a SKIP line naming it, not failed. */
static void for_each_backend(kernel_test fn, const char *test)
{
    const tema_host *host = tema_host_get();
    const tema_plugin *found[16];
    char labels[16][128];
    int n = 0;
    found[n] = tema_plugin_entry_backend_cpu(host);
    snprintf(labels[n++], sizeof labels[0], "cpu (static)");
    /* every backend plugin the build produced (tema-backend-*.so in the plugin folder) */
    tema_registry *reg = tema_registry_new(tema_host_get());
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/plugins", tu_build_root());
    DIR *dd = opendir(dir);
    for (struct dirent *e; reg && dd && (e = readdir(dd));) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "tema-backend-", 13) != 0 || len < 4 || strcmp(e->d_name + len - 3, ".so") != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        tema_err err = {0};
        ck_assert_msg(tema_registry_load_file(reg, path, &err) == TEMA_OK, "%s: %s", path, err.msg);
    }
    if (dd) closedir(dd);
    if (reg) {
        for (size_t i = 0; i < tema_registry_count(reg) && n < 16; i++) {
            const tema_plugin_info *pi = tema_registry_at(reg, i);
            if (pi->plugin->kind != TEMA_KIND_BACKEND) continue;
            found[n] = pi->plugin;
            snprintf(labels[n++], sizeof labels[0], "%s (%s)", pi->plugin->name, pi->file);
        }
    }
    for (int i = 0; i < n; i++) {
        const tema_backend_ops *ops = found[i]->ops;
        ck_assert_msg(found[i]->ops_size >= sizeof(tema_backend_ops) && ops->version == TEMA_BACKEND_OPS_VERSION,
                      "%s: backend table too old", labels[i]);
        backend b = {.ops = ops};
        memcpy(b.label, labels[i], sizeof b.label);
        tema_err err = {0};
        tema_cfg *opts = tu_plugin_opts(found[i], NULL);
        tema_status st = ops->init(host, opts, &b.self, &err);
        tema_cfg_free(opts);
        if (st == TEMA_EUNSUPPORTED) {
            tu_skip(test, "%s: %s", b.label, err.msg);
            continue;
        }
        ck_assert_msg(st == TEMA_OK, "%s: init: %s", b.label, err.msg);
        tema_rng_seed(&rng, 2024);
        fn(&b);
        ops->destroy(b.self);
    }
    tema_registry_free(reg);
}

#define KERNEL_TEST(fn)                                                                                        \
    START_TEST(test_##fn) { for_each_backend(fn, #fn); }                                                      \
    END_TEST

KERNEL_TEST(t_sgemm)
KERNEL_TEST(t_vector)
KERNEL_TEST(t_unary)
KERNEL_TEST(t_binary)
KERNEL_TEST(t_dropout_logaddexp)
KERNEL_TEST(t_layernorm)
KERNEL_TEST(t_softmax)
KERNEL_TEST(t_rows)
KERNEL_TEST(t_layout)
KERNEL_TEST(t_rowdot)
KERNEL_TEST(t_lse)
KERNEL_TEST(t_adam)
KERNEL_TEST(t_large)
KERNEL_TEST(t_edge)
KERNEL_TEST(t_spmm)
KERNEL_TEST(t_attention_infer)

START_TEST(cpu_descriptor)
{
    const tema_plugin *pl = tema_plugin_entry_backend_cpu(tema_host_get());
    ck_assert_str_eq(pl->name, "cpu");
    ck_assert_int_eq(pl->kind, TEMA_KIND_BACKEND);
    ck_assert_uint_ge(pl->ops_size, sizeof(tema_backend_ops));
    /* the core validates and fills options before init: none at all is the caller's bug */
    const tema_backend_ops *ops = pl->ops;
    void *self = NULL;
    tema_err err = {0};
    ck_assert_int_eq(ops->init(tema_host_get(), NULL, &self, &err), TEMA_EINTERNAL);
    ck_assert_msg(strstr(err.msg, "cpu backend: option 'threads'") && strstr(err.msg, "a bug"), "%s", err.msg);
}
END_TEST

/* The cpu backend at 1 and at 3 threads, for the tests that compare the two. */
typedef struct cpu_pair {
    const tema_backend_ops *ops;
    tema_cfg *one, *three;
    void *s1, *s3;
} cpu_pair;

static cpu_pair cpu_pair_open(void)
{
    const tema_plugin *pl = tema_plugin_entry_backend_cpu(tema_host_get());
    cpu_pair p = {.ops = pl->ops, .one = tu_plugin_opts(pl, "threads: 1"), .three = tu_plugin_opts(pl, "threads: 3")};
    tema_err err = {0};
    ck_assert_msg(p.ops->init(tema_host_get(), p.one, &p.s1, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_msg(p.ops->init(tema_host_get(), p.three, &p.s3, &err) == TEMA_OK, "%s", err.msg);
    return p;
}

static void cpu_pair_close(cpu_pair *p)
{
    p->ops->destroy(p->s1);
    p->ops->destroy(p->s3);
    tema_cfg_free(p->one);
    tema_cfg_free(p->three);
}

/* The cpu backend's threads split large products among themselves (one pool, OpenBLAS
 * single-threaded inside each): whatever the split (rows or columns, one matrix or a
 * batch, a thread count that does not divide the size), C must be what one thread
 * computes, with leading dimensions wider than the matrices and beta on and off. Not
 * bitwise: OpenBLAS takes another kernel path for a small band than for the whole. */
START_TEST(cpu_sgemm_threads_agree_with_one)
{
    cpu_pair cp = cpu_pair_open();
    const tema_backend_ops *ops = cp.ops;
    void *s1 = cp.s1, *s3 = cp.s3;
    const int64_t shapes[][4] = {{301, 97, 150, 1}, {97, 301, 150, 1}, {64, 70, 90, 5}, {130, 131, 129, 2}};
    tema_rng_seed(&rng, 77);
    for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++)
        for (int t = 0; t < 8; t++) {
            bool ta = t & 1, tb = (t >> 1) & 1, acc = t >> 2;
            int64_t M = shapes[sh][0], N = shapes[sh][1], K = shapes[sh][2], batch = shapes[sh][3];
            int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
            int64_t sa = (ta ? K : M) * lda, sb = (tb ? N : K) * ldb, sc = M * ldc;
            float *A = rnd(batch * sa, 1), *B = rnd(batch * sb, 1), *C1 = rnd(batch * sc, 1);
            float *C3 = malloc(sizeof(float) * (size_t)(batch * sc));
            memcpy(C3, C1, sizeof(float) * (size_t)(batch * sc));
            float beta = acc ? 0.5f : 0.0f;
            ops->sgemm(s1, ta, tb, M, N, K, 0.9f, A, lda, sa, B, ldb, sb, beta, C1, ldc, sc, batch);
            ops->sgemm(s3, ta, tb, M, N, K, 0.9f, A, lda, sa, B, ldb, sb, beta, C3, ldc, sc, batch);
            for (int64_t i = 0; i < batch * sc; i++)
                ck_assert_msg(fabsf(C1[i] - C3[i]) <= 1e-5f * (1.0f + fabsf(C1[i])),
                              "sgemm %lldx%lldx%lld batch %lld trans %d%d beta %g: element %lld is %.9g with 3 "
                              "threads, %.9g with 1", (long long)M, (long long)N, (long long)K, (long long)batch, ta,
                              tb, beta, (long long)i, C3[i], C1[i]);
            free(A), free(B), free(C1), free(C3);
        }
    cpu_pair_close(&cp);
}
END_TEST

/* spmm gives one writer per row and sums in entry order: 3 threads give the bits of 1. */
START_TEST(cpu_spmm_threads_bitwise)
{
    cpu_pair cp = cpu_pair_open();
    const tema_backend_ops *ops = cp.ops;
    void *s1 = cp.s1, *s3 = cp.s3;
    tema_rng_seed(&rng, 5);
    int64_t *ptr, rows = 20000, cols = 9000, dim = 33;
    int32_t *col;
    float *val;
    rnd_csr(rows, cols, &ptr, &col, &val);
    float *x = rnd(cols * dim, 1), *o1 = rnd(rows * dim, 1), *o3 = malloc(sizeof(float) * (size_t)(rows * dim));
    memcpy(o3, o1, sizeof(float) * (size_t)(rows * dim));
    ops->spmm(s1, rows, dim, ptr, col, val, x, o1, true);
    ops->spmm(s3, rows, dim, ptr, col, val, x, o3, true);
    ck_assert_mem_eq(o1, o3, sizeof(float) * (size_t)(rows * dim));
    free(ptr), free(col), free(val), free(x), free(o1), free(o3);
    cpu_pair_close(&cp);
}
END_TEST

/* attention_infer's threads split whole (sequence, head) pairs: 3 threads give the bits of 1. */
START_TEST(cpu_attention_infer_threads_bitwise)
{
    cpu_pair cp = cpu_pair_open();
    const tema_backend_ops *ops = cp.ops;
    void *s1 = cp.s1, *s3 = cp.s3;
    tema_rng_seed(&rng, 6);
    const int64_t B = 37, T = 41, heads = 4, hd = 32, ld = 3 * heads * hd, rows = B * T;
    int32_t len[37];
    for (int64_t b = 0; b < B; b++) len[b] = (int32_t)(1 + (b * 7) % T);
    float *x = rnd(rows * ld, 2), *o1 = malloc(sizeof(float) * (size_t)(rows * heads * hd)),
          *o3 = malloc(sizeof(float) * (size_t)(rows * heads * hd));
    ops->attention_infer(s1, B, T, heads, hd, 0.17f, x, x + heads * hd, x + 2 * heads * hd, ld, len, o1, heads * hd);
    ops->attention_infer(s3, B, T, heads, hd, 0.17f, x, x + heads * hd, x + 2 * heads * hd, ld, len, o3, heads * hd);
    ck_assert_mem_eq(o1, o3, sizeof(float) * (size_t)(rows * heads * hd));
    free(x), free(o1), free(o3);
    cpu_pair_close(&cp);
}
END_TEST

/* The cpu plugin opens OpenBLAS itself so that an OpenBLAS older than the CPU does not
 * fall back to its generic kernels: where OPENBLAS_CORETYPE is unset on an AVX2 machine it
 * names the kernels and says so; where the machine sets it, it is left alone. */
START_TEST(cpu_backend_names_openblas_kernels)
{
    const char *root = tu_tmpdir();
    char args[2048], path[600];
    snprintf(args, sizeof args, "data synth --out '%s/data' --users 80 --items-x 40 --items-y 40 --seed 3", root);
    ck_assert_int_eq(tu_tema(args, NULL, NULL), 0);
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "name: k\ndataset: {path: '%s/data', max_len: 6}\nbackend: {plugin: cpu, threads: 1}\n"
             "model:\n  encoders: [{plugin: id, dim: 8}]\n  attention: {plugin: single, blocks: 1}\n"
             "train: {epochs: 1, max_steps: 1, batch_size: 32}\neval: {negatives: 10}\n", root);
    snprintf(path, sizeof path, "%s/k.yaml", root);
    tu_write(path, yaml);
    snprintf(args, sizeof args, "run '%s' --results '%s/results'", path, root);
    char *out = NULL, *err = NULL;
    ck_assert_msg(tu_tema(args, &out, &err) == 0, "tema run failed:\n%s", err);
    const char *set = getenv("OPENBLAS_CORETYPE");
    bool avx2 = false;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    if (set)
        ck_assert_msg(!strstr(err, "OpenBLAS kernels"), "OPENBLAS_CORETYPE=%s was not left alone:\n%s", set, err);
    else if (avx2)
        ck_assert_msg(strstr(err, "tema: cpu: info: OpenBLAS kernels ") && strstr(err, "(chosen from this CPU"),
                      "no kernel choice logged:\n%s", err);
    else
        ck_assert_msg(!strstr(err, "OpenBLAS kernels"), "kernels chosen without AVX2:\n%s", err);
    free(out);
    free(err);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("backend");
    TCase *tc = tcase_create("kernels");
    tcase_add_test(tc, test_t_sgemm);
    tcase_add_test(tc, test_t_vector);
    tcase_add_test(tc, test_t_unary);
    tcase_add_test(tc, test_t_binary);
    tcase_add_test(tc, cpu_backend_names_openblas_kernels);
    tcase_add_test(tc, cpu_sgemm_threads_agree_with_one);
    tcase_add_test(tc, test_t_dropout_logaddexp);
    tcase_add_test(tc, test_t_layernorm);
    tcase_add_test(tc, test_t_softmax);
    tcase_add_test(tc, test_t_rows);
    tcase_add_test(tc, test_t_layout);
    tcase_add_test(tc, test_t_rowdot);
    tcase_add_test(tc, test_t_lse);
    tcase_add_test(tc, test_t_adam);
    tcase_add_test(tc, test_t_large);
    tcase_add_test(tc, test_t_edge);
    tcase_add_test(tc, test_t_spmm);
    tcase_add_test(tc, test_t_attention_infer);
    tcase_add_test(tc, cpu_spmm_threads_bitwise);
    tcase_add_test(tc, cpu_attention_infer_threads_bitwise);
    tcase_add_test(tc, cpu_descriptor);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
