/* The cpu backend's `precision: bf16`: products of at least 4 MFLOP take bf16 inputs
 * (rounded to nearest even) with fp32 accumulation, smaller ones stay fp32, a wrong value is
 * a located error, and bf16 training at 1 thread is reproducible. Skips, saying why, where
 * the CPU has no AVX512-BF16 or oneDNN (libdnnl2) is not installed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "host.h"
#include "registry.h"
#include "tema/backend.h"
#include "testutil.h"
#include "util.h"

#include <json-c/json.h>

const tema_plugin *tema_plugin_entry_backend_cpu(const tema_host *host);

static uint64_t rng_state = 88172645463325252ull;
static float rnd_float(void)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float *rnd(int64_t n)
{
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] = rnd_float();
    return x;
}

/* what bf16 keeps of f: round to nearest even on the top 16 bits */
static float bf16_round(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* the cpu backend with these options, or NULL after a SKIP line (no bf16 here) */
static void *open_cpu(const char *opts_text, const char *test)
{
    const tema_plugin *pl = tema_plugin_entry_backend_cpu(tema_host_get());
    const tema_backend_ops *ops = pl->ops;
    tema_cfg *opts = tu_plugin_opts(pl, opts_text);
    void *self = NULL;
    tema_err err = {0};
    tema_status st = ops->init(tema_host_get(), opts, &self, &err);
    tema_cfg_free(opts);
    if (st == TEMA_EUNSUPPORTED || st == TEMA_ENOTFOUND) {
        tu_skip(test, "%s", err.msg);
        return NULL;
    }
    ck_assert_msg(st == TEMA_OK, "init(%s): %s", opts_text, err.msg);
    return self;
}

static float at(const float *X, bool trans, int64_t ld, int64_t i, int64_t j) { return trans ? X[j * ld + i] : X[i * ld + j]; }

/* Every element within fp32 accumulation error of the product of the bf16-rounded inputs,
 * and (for the products that take bf16) at least one element farther from the fp32 product
 * than that: the inputs really were rounded. The cpu backend keeps products under 4 MFLOP
 * in fp32 (`all_bf16` false); the cuda backend rounds every product. */
static void check_products(const tema_backend_ops *ops, void *self, const char *label, bool all_bf16)
{
    /* {M, N, K, batch}: the first three are >= 4 MFLOP, the last is smaller */
    const int64_t shapes[][4] = {{300, 97, 150, 1}, {97, 301, 151, 2}, {130, 131, 129, 1}, {20, 30, 40, 3}};
    for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++)
        for (int t = 0; t < 8; t++) {
            const bool ta = t & 1, tb = (t >> 1) & 1, acc = t >> 2, rounded_in = all_bf16 || sh < 3;
            const int64_t M = shapes[sh][0], N = shapes[sh][1], K = shapes[sh][2], batch = shapes[sh][3];
            const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
            const int64_t sa = (ta ? K : M) * lda, sb = (tb ? N : K) * ldb, sc = M * ldc;
            float *A = rnd(batch * sa), *B = rnd(batch * sb), *C = rnd(batch * sc);
            float *C0 = malloc(sizeof(float) * (size_t)(batch * sc));
            memcpy(C0, C, sizeof(float) * (size_t)(batch * sc));
            const float alpha = 0.9f, beta = acc ? 0.5f : 0.0f;
            float *dA = ops->alloc(self, sizeof(float) * (size_t)(batch * sa));
            float *dB = ops->alloc(self, sizeof(float) * (size_t)(batch * sb));
            float *dC = ops->alloc(self, sizeof(float) * (size_t)(batch * sc));
            ops->to_device(self, dA, A, sizeof(float) * (size_t)(batch * sa));
            ops->to_device(self, dB, B, sizeof(float) * (size_t)(batch * sb));
            ops->to_device(self, dC, C, sizeof(float) * (size_t)(batch * sc));
            ops->sgemm(self, ta, tb, M, N, K, alpha, dA, lda, sa, dB, ldb, sb, beta, dC, ldc, sc, batch);
            ops->to_host(self, C, dC, sizeof(float) * (size_t)(batch * sc));
            tema_err err = {0};
            ck_assert_msg(!ops->sync || ops->sync(self, &err) == TEMA_OK, "%s: %s", label, err.msg);
            int64_t off_fp32 = 0;
            for (int64_t b = 0; b < batch; b++)
                for (int64_t i = 0; i < M; i++)
                    for (int64_t j = 0; j < N; j++) {
                        double rounded = 0, exact = 0, mag = 0;
                        for (int64_t k = 0; k < K; k++) {
                            const float a = at(A + b * sa, ta, lda, i, k), w = at(B + b * sb, tb, ldb, k, j);
                            rounded += (double)bf16_round(a) * bf16_round(w);
                            exact += (double)a * w;
                            mag += fabs((double)a * w);
                        }
                        const double c0 = beta * C0[b * sc + i * ldc + j], tol = 1e-5 * mag + 1e-6;
                        const double got = C[b * sc + i * ldc + j], want = alpha * (rounded_in ? rounded : exact) + c0;
                        ck_assert_msg(fabs(got - want) <= tol, "%s: %lldx%lldx%lld batch %lld trans %d%d beta %g: "
                                      "C[%lld,%lld] = %.7g, want %.7g (%s inputs)", label, (long long)M, (long long)N,
                                      (long long)K, (long long)batch, ta, tb, beta, (long long)i, (long long)j, got,
                                      want, rounded_in ? "bf16" : "fp32");
                        off_fp32 += fabs(got - (alpha * exact + c0)) > tol;
                    }
            if (rounded_in) ck_assert_msg(off_fp32 > 0, "%s: shape %zu: the bf16 product equals the fp32 one", label, sh);
            else ck_assert_int_eq(off_fp32, 0);
            ops->free(self, dA), ops->free(self, dB), ops->free(self, dC);
            free(A), free(B), free(C), free(C0);
        }
}

START_TEST(bf16_products_round_their_inputs)
{
    const tema_backend_ops *ops = tema_plugin_entry_backend_cpu(tema_host_get())->ops;
    void *self = open_cpu("threads: 2\nprecision: bf16", __func__);
    if (!self) return;
    /* a shape's first product runs on a primitive for any M and K, later ones on one made for
     * the shape (bf16_gemm.c): both paths, each shape twice */
    check_products(ops, self, "cpu, first use of each shape", false);
    check_products(ops, self, "cpu, shapes seen before", false);
    ops->destroy(self);
}
END_TEST

/* The same on the cuda backend, where this build has one and a GPU is visible. */
START_TEST(cuda_bf16_products_round_their_inputs)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/plugins/tema-backend-cuda.so", tu_build_root());
    tema_registry *reg = tema_registry_new(tema_host_get());
    tema_err err = {0};
    if (access(path, R_OK) != 0 || tema_registry_load_file(reg, path, &err) != TEMA_OK) {
        tu_skip(__func__, "no cuda backend in this build (%s)", err.msg[0] ? err.msg : path);
        tema_registry_free(reg);
        return;
    }
    const tema_plugin *pl = tema_registry_find(reg, TEMA_KIND_BACKEND, "cuda");
    const tema_backend_ops *ops = pl->ops;
    tema_cfg *opts = tu_plugin_opts(pl, "precision: bf16");
    void *self = NULL;
    tema_status st = ops->init(tema_host_get(), opts, &self, &err);
    tema_cfg_free(opts);
    if (st == TEMA_EUNSUPPORTED) tu_skip(__func__, "%s", err.msg);
    else {
        ck_assert_msg(st == TEMA_OK, "cuda init: %s", err.msg);
        check_products(ops, self, "cuda", true);
        ops->destroy(self);
    }
    tema_registry_free(reg);
}
END_TEST

static void write_experiment(const char *root, const char *precision, char *path, size_t size)
{
    char args[1024], yaml[1024];
    snprintf(args, sizeof args, "data synth --out '%s/data' --users 300 --items-x 400 --items-y 300 --seed 4", root);
    ck_assert_int_eq(tu_tema(args, NULL, NULL), 0);
    snprintf(yaml, sizeof yaml,
             "name: p\ndataset: {path: '%s/data', max_len: 12}\nbackend: {plugin: cpu, threads: 1, precision: %s}\n"
             "model:\n  encoders: [{plugin: id, dim: 64}]\n  attention: {plugin: single, blocks: 2}\n"
             "loss: {plugin: full_softmax}\ntrain: {epochs: 2, batch_size: 64, seed: 9}\neval: {negatives: 50}\n",
             root, precision);
    snprintf(path, size, "%s/p-%s.yaml", root, precision);
    tu_write(path, yaml);
}

/* A precision the backend does not have: tema check names the file, the field and the choices. */
START_TEST(unknown_precision_is_a_located_error)
{
    char path[600], args[1024];
    write_experiment(tu_tmpdir(), "fp16", path, sizeof path);
    snprintf(args, sizeof args, "check '%s'", path);
    char *out = NULL, *err = NULL;
    ck_assert_int_ne(tu_tema(args, &out, &err), 0);
    ck_assert_msg(strstr(err, path) && strstr(err, "backend.precision") && strstr(err, "fp32") && strstr(err, "bf16"),
                  "%s", err);
    free(out);
    free(err);
}
END_TEST

/* bf16 training at 1 thread twice: the same metrics, bit for bit, and precision in the run id */
START_TEST(bf16_training_is_reproducible)
{
    if (!open_cpu("threads: 1\nprecision: bf16", __func__)) return;
    const char *root = tu_tmpdir();
    char path[600], args[2048];
    write_experiment(root, "bf16", path, sizeof path);
    char *metrics[2] = {NULL, NULL};
    for (int r = 0; r < 2; r++) {
        snprintf(args, sizeof args, "run '%s' --results '%s/results%d'", path, root, r);
        char *out = NULL, *err = NULL;
        int rc = tu_tema(args, &out, &err);
        if (rc != 0) fprintf(stderr, "%s\n", err);
        ck_assert_msg(rc == 0, "tema run failed (exit %d), its stderr above", rc);
        snprintf(args, sizeof args, "%s/results%d", root, r);
        struct json_object *c = tu_json_load(tu_run_dir(args, "p"), "config.json");
        ck_assert_ptr_nonnull(c);
        ck_assert_str_eq(json_object_get_string(tu_json_get(c, "backend.precision")), "bf16");
        json_object_put(c);
        struct json_object *m = tu_json_load(tu_run_dir(args, "p"), "final.json");
        ck_assert_ptr_nonnull(m);
        metrics[r] = strdup(json_object_to_json_string(tu_json_get(m, "test")));
        json_object_put(m);
        free(out);
        free(err);
    }
    ck_assert_msg(!strcmp(metrics[0], metrics[1]), "two bf16 runs differ");
    free(metrics[0]);
    free(metrics[1]);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("precision");
    TCase *tc = tcase_create("bf16");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, bf16_products_round_their_inputs);
    tcase_add_test(tc, cuda_bf16_products_round_their_inputs);
    tcase_add_test(tc, unknown_precision_is_a_located_error);
    tcase_add_test(tc, bf16_training_is_reproducible);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
