/* tests/test_backend_train.c - device backends against the cpu backend, end to end: the
 * same short training run (same seed, so the same batches, negatives and bit-identical
 * dropout masks) through `tema run` on both must give the same per-epoch training loss
 * up to float rounding and nearly the same evaluation metrics. Needs no dataset (the
 * data is synthesised); skips, with a SKIP line, when the cuda backend is not built or
 * no GPU is visible. TEMA_TEST_BACKEND=NAME compares another backend plugin instead
 * (TEMA_TEST_BACKEND=cpu checks this suite itself on a machine without a GPU). */
#include <json-c/json.h>
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

static const char *backend_under_test(void)
{
    const char *s = getenv("TEMA_TEST_BACKEND");
    return s && *s ? s : "cuda";
}

/* Is the backend plugin `name` built and able to start here? On false, `why` says why not. */
static bool backend_usable(const char *name, char *why, size_t cap)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/plugins/tema-backend-%s.so", tu_build_root(), name);
    if (access(path, R_OK) != 0) {
        snprintf(why, cap, "%s: backend not built (%s missing; the cuda backend needs the CUDA toolkit at setup)",
                 name, path);
        return false;
    }
    tema_registry *reg = tema_registry_new(tema_host_get());
    ck_assert_ptr_nonnull(reg);
    tema_err err = {0};
    ck_assert_msg(tema_registry_load_file(reg, path, &err) == TEMA_OK, "%s: %s", path, err.msg);
    const tema_plugin *p = tema_registry_find(reg, TEMA_KIND_BACKEND, name);
    ck_assert_msg(p != NULL, "%s does not hold backend '%s'", path, name);
    const tema_backend_ops *ops = p->ops;
    void *self = NULL;
    tema_cfg *opts = tu_plugin_opts(p, NULL);
    tema_status st = ops->init(tema_host_get(), opts, &self, &err);
    tema_cfg_free(opts);
    if (st == TEMA_OK) ops->destroy(self);
    else snprintf(why, cap, "%s: no CUDA device (%s)", name, err.msg);
    ck_assert_msg(st == TEMA_OK || st == TEMA_EUNSUPPORTED, "%s init: %s", name, err.msg);
    tema_registry_free(reg);
    return st == TEMA_OK;
}

/* train_loss of each epoch; returns how many (at most cap). */
static int epoch_losses(const char *dir, double *out, int cap)
{
    char p[4200], line[16384];
    snprintf(p, sizeof p, "%s/epochs.jsonl", dir);
    FILE *f = fopen(p, "r");
    ck_assert_msg(f != NULL, "cannot open %s", p);
    int n = 0;
    while (n < cap && fgets(line, sizeof line, f)) {
        json_object *o = json_tokener_parse(line);
        ck_assert_ptr_nonnull(o);
        out[n++] = json_object_get_double(tu_json_get(o, "train_loss"));
        json_object_put(o);
    }
    fclose(f);
    return n;
}

/* Trains `model` (YAML lines) for 3 epochs on both backends and compares the results. */
static void compare_backends(const char *name, const char *model, const char *loss)
{
    char why[8192];
    const char *dev = backend_under_test();
    if (!backend_usable(dev, why, sizeof why)) {
        tu_skip(name, "%s", why);
        return;
    }
    const char *tmp = tu_tmpdir();
    char data[4200], exp[4200], args[16384], res[2][4200];
    snprintf(data, sizeof data, "%s/data", tmp);
    snprintf(args, sizeof args, "data synth --out '%s' --seed 5 --users 400 --items-x 90 --items-y 70", data);
    char *out = NULL, *err = NULL;
    int rc = tu_tema(args, &out, &err);
    ck_assert_msg(rc == 0, "tema data synth failed (%d): %s", rc, err);
    free(out), free(err);
    snprintf(exp, sizeof exp, "%s/%s.yaml", tmp, name);
    char text[16384];
    snprintf(text, sizeof text,
             "name: %s\n"
             "dataset: {path: '%s', max_len: 10}\n"
             "backend: {plugin: cpu, threads: 1}\n"
             "model:\n%s"
             "loss: %s\n"
             "train: {epochs: 3, batch_size: 32, lr: 2.0e-3, patience: 0, eval_every: 1, seed: 3}\n"
             "eval: {protocol: sampled, negatives: 50, metrics: [mrr, ndcg@10, hr@10]}\n",
             name, data, model, loss);
    tu_write(exp, text);
    const char *const backends[2] = {"cpu", dev};
    for (int k = 0; k < 2; k++) {
        snprintf(res[k], sizeof res[k], "%s/res-%d-%s", tmp, k, backends[k]);
        snprintf(args, sizeof args, "run '%s' --results '%s' --set backend.plugin=%s", exp, res[k], backends[k]);
        rc = tu_tema(args, &out, &err);
        ck_assert_msg(rc == 0, "tema run (%s) failed (%d): %s", backends[k], rc, err);
        fprintf(stderr, "%s (%s):\n%s", name, backends[k], err);
        free(out), free(err);
    }
    char dirs[2][4096];
    for (int k = 0; k < 2; k++) snprintf(dirs[k], sizeof dirs[k], "%s", tu_run_dir(res[k], name));
    json_object *meta = tu_json_load(dirs[1], "meta.json");
    ck_assert_str_eq(json_object_get_string(tu_json_get(meta, "backend")), dev);
    json_object_put(meta);

    double la[8], lb[8];
    int na = epoch_losses(dirs[0], la, 8), nb = epoch_losses(dirs[1], lb, 8);
    ck_assert_int_eq(na, 3);
    ck_assert_int_eq(nb, na);
    for (int e = 0; e < na; e++) {
        fprintf(stderr, "%s epoch %d: train_loss cpu %.7f %s %.7f\n", name, e + 1, la[e], dev, lb[e]);
        ck_assert_msg(fabs(la[e] - lb[e]) <= 1e-3 * fabs(la[e]), "%s epoch %d: train_loss cpu %.7f vs %s %.7f", name,
                      e + 1, la[e], dev, lb[e]);
    }
    /* Metrics: scores differ in the last bits, so a near-tie may swap two ranks. MRR and
     * NDCG move little when that happens; HR@10 may move by one case. */
    json_object *fa = tu_json_load(dirs[0], "final.json"), *fb = tu_json_load(dirs[1], "final.json");
    static const char *const sets[2] = {"valid", "test"}, *const doms[2] = {"X", "Y"};
    static const char *const metrics[3] = {"mrr", "ndcg@10", "hr@10"};
    for (int s = 0; s < 2; s++)
        for (int d = 0; d < 2; d++) {
            char p[128];
            snprintf(p, sizeof p, "%s.%s.cases", sets[s], doms[d]);
            int cases = json_object_get_int(tu_json_get(fa, p));
            ck_assert_int_gt(cases, 0);
            for (int m = 0; m < 3; m++) {
                snprintf(p, sizeof p, "%s.%s.mid.%s", sets[s], doms[d], metrics[m]);
                double a = json_object_get_double(tu_json_get(fa, p)), b = json_object_get_double(tu_json_get(fb, p));
                double tol = m == 2 ? 1.01 / cases : 0.01;
                ck_assert_msg(fabs(a - b) <= tol, "%s %s: cpu %.6f vs %s %.6f (tolerance %.4f)", name, p, a, dev, b,
                              tol);
            }
        }
    json_object_put(fa);
    json_object_put(fb);
}

/* SASRec (causal softmax, layernorm, GELU, dropout) with the full-softmax loss (chunked
 * log-sum-exp, sgemm), the quickstart's model at a smaller size. */
START_TEST(sasrec_cpu_vs_cuda)
{
    compare_backends("xb-sasrec",
                     "  encoders: [{plugin: id, dim: 32}]\n"
                     "  attention: {plugin: single, blocks: 2, heads: 2, dropout: 0.2}\n",
                     "{plugin: full_softmax}");
}
END_TEST

/* TEMA multi-attention (several streams: l2norm, logaddexp mixture) with sampled softmax. */
START_TEST(multi_cpu_vs_cuda)
{
    compare_backends("xb-multi",
                     "  encoders: [{plugin: id, dim: 32}]\n"
                     "  attention: {plugin: multi, blocks: 1, heads: 2, dropout: 0.1}\n",
                     "{plugin: sampled_softmax, negatives: 50}");
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("backend_train");
    TCase *tc = tcase_create("cpu_vs_cuda");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, sasrec_cpu_vs_cuda);
    tcase_add_test(tc, multi_cpu_vs_cuda);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
