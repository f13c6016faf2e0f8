/* tests/test_bench.c - `tema bench` on the built-in synthetic data: one JSON line with every
 * field, numbers in sane ranges (speed itself is not asserted: that is what the command is
 * for), the grid entry it times, clear errors for bad options; and the graph's FLOP counter,
 * which the command divides by time, against products counted by hand. */
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "testutil.h"

/* A small SASRec on the synthetic data (dataset.path: synthetic), `extra` appended. */
static void write_exp(const char *path, const char *extra)
{
    char text[2048];
    snprintf(text, sizeof text,
             "name: bench-synth\n"
             "dataset: {path: synthetic, max_len: 10}\n"
             "backend: {plugin: cpu, threads: 1}\n"
             "model:\n"
             "  encoders: [{plugin: id, dim: 24}]\n"
             "  attention: {plugin: single, blocks: 1, heads: 2, dropout: 0.1}\n"
             "loss: {plugin: full_softmax, positions: 5}\n"
             "train: {epochs: 1, batch_size: 48, lr: 1.0e-3, seed: 3}\n"
             "eval: {protocol: sampled, negatives: 99, metrics: [mrr, hr@10]}\n"
             "%s",
             extra ? extra : "");
    tu_write(path, text);
}

/* `tema bench ARGS` in a fresh folder: the exit status, stdout, stderr (caller frees). */
static const char *last_tmp; /* the folder of the last bench() */

static int bench(const char *exp_extra, const char *args, char **out, char **err)
{
    const char *tmp = last_tmp = tu_tmpdir();
    char exp[4200], cmd[9000];
    snprintf(exp, sizeof exp, "%s/bench.yaml", tmp);
    write_exp(exp, exp_extra);
    snprintf(cmd, sizeof cmd, "bench '%s' --results '%s/results' %s", exp, tmp, args);
    return tu_tema(cmd, out, err);
}

/* stdout must be exactly one line, a JSON object. */
static json_object *parse_line(const char *out)
{
    const char *nl = strchr(out, '\n');
    ck_assert_msg(nl && nl[1] == '\0', "want exactly one line on stdout, got: %s", out);
    json_object *j = json_tokener_parse(out);
    ck_assert_msg(j && json_object_is_type(j, json_type_object), "not a JSON object: %s", out);
    return j;
}

static double number(json_object *j, const char *key)
{
    json_object *v = tu_json_get(j, key);
    ck_assert_msg(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int),
                  "%s is not a number: %s", key, json_object_to_json_string(v));
    return json_object_get_double(v);
}

static bool is_null(json_object *j, const char *key)
{
    json_object *v = NULL;
    ck_assert_msg(json_object_object_get_ex(j, key, &v), "%s missing", key);
    return v == NULL;
}

START_TEST(bench_prints_one_json_line_with_every_field)
{
    char *out, *err;
    int rc = bench(NULL, "--steps 3 --warmup 1 --eval", &out, &err);
    ck_assert_msg(rc == 0, "tema bench failed (%d): %s", rc, err);
    ck_assert_msg(!strchr(err, '{'), "JSON on stderr: %s", err);
    json_object *j = parse_line(out);
    const double med = number(j, "ms_per_step_median"), lo = number(j, "ms_per_step_min"),
                 hi = number(j, "ms_per_step_max");
    ck_assert_msg(lo > 0 && lo <= med && med <= hi, "min %g median %g max %g", lo, med, hi);
    const double rate = number(j, "steps_per_s");
    ck_assert_msg(rate > 0 && fabs(rate * med / 1e3 - 1) < 0.01, "steps_per_s %g vs median %g ms", rate, med);
    const double gflop = number(j, "gflop_per_step"), gflop_s = number(j, "gflop_per_s");
    ck_assert_msg(gflop > 0 && fabs(gflop_s / (gflop / (med / 1e3)) - 1) < 0.01, "%g GFLOP, %g GFLOP/s", gflop,
                  gflop_s);
    const double peak = number(j, "sgemm_peak_gflop_per_s"), frac = number(j, "peak_fraction");
    ck_assert_msg(peak > 0 && frac > 0 && frac < 1.5, "peak %g GFLOP/s, fraction %g", peak, frac);
    ck_assert_msg(fabs(frac - gflop_s / peak) < 1e-3, "fraction %g, %g / %g", frac, gflop_s, peak);
    ck_assert_double_gt(number(j, "peak_rss_mib"), 1);
    ck_assert_double_gt(number(j, "eval_peak_rss_mib"), 1);
    ck_assert_double_ge(number(j, "eval_s"), 0);
    const double params = number(j, "param_bytes"), act = number(j, "activation_arena_bytes");
    ck_assert_msg(params > 0 && act > 0 && number(j, "arena_bytes") == params + act, "arena %g params %g act %g",
                  number(j, "arena_bytes"), params, act);
    ck_assert_double_gt(number(j, "eval_arena_bytes"), 0);
    ck_assert_msg(is_null(j, "device_mem_mib"), "device_mem_mib on cpu: want null");
    ck_assert_int_eq((int)number(j, "threads"), 1);
    ck_assert_int_eq((int)number(j, "steps"), 3);
    ck_assert_msg(is_null(j, "run"), "run: want null without a grid");
    ck_assert_str_eq(json_object_get_string(tu_json_get(j, "backend")), "cpu");
    ck_assert_str_eq(json_object_get_string(tu_json_get(j, "experiment")), "bench-synth");
    ck_assert_int_ge((int)strlen(json_object_get_string(tu_json_get(j, "git_commit"))), 7);
    ck_assert(json_object_object_get_ex(j, "git_dirty", NULL));
    for (int d = 0; d < 2; d++) {
        double mrr = number(j, d ? "eval_metrics.Y.mrr" : "eval_metrics.X.mrr");
        ck_assert_msg(mrr >= 0.01 && mrr <= 1, "MRR %g outside [1/100, 1] with 99 negatives", mrr);
    }
    ck_assert_msg(isfinite(number(j, "loss_last")), "loss_last");
    /* an epoch: every training sequence the data wrote, in batches of 48 */
    char train[4200];
    snprintf(train, sizeof train, "%s/results/_data/synthetic-3/traindata_new.txt", last_tmp);
    FILE *f = fopen(train, "r");
    ck_assert_msg(f, "no %s", train);
    long lines = 0;
    for (int c; (c = fgetc(f)) != EOF;) lines += c == '\n';
    fclose(f);
    const double spe = number(j, "steps_per_epoch");
    ck_assert_msg(lines > 48 && spe == (double)((lines + 47) / 48), "%g steps per epoch for %ld sequences", spe, lines);
    ck_assert_msg(fabs(number(j, "epoch_train_s") - spe * med / 1e3) <= 0.006 + 0.01 * spe * med / 1e3,
                  "epoch_train_s %g, %g steps x %g ms", number(j, "epoch_train_s"), spe, med);
    json_object_put(j);
    free(out);
    free(err);
}
END_TEST

/* Without --eval the evaluation fields are null; --threads overrides backend.threads; the FLOP
 * of a step depend on the shapes alone, so a second bench counts the same. */
START_TEST(bench_without_eval)
{
    char *out, *err;
    int rc = bench(NULL, "--steps 2 --warmup 0 --threads 2", &out, &err);
    ck_assert_msg(rc == 0, "tema bench failed (%d): %s", rc, err);
    json_object *j = parse_line(out);
    ck_assert(is_null(j, "eval_s") && is_null(j, "eval_peak_rss_mib") && is_null(j, "eval_metrics"));
    ck_assert_int_eq((int)number(j, "threads"), 2);
    const double gflop = number(j, "gflop_per_step");
    json_object_put(j);
    free(out);
    free(err);
    rc = bench(NULL, "--steps 2 --warmup 0", &out, &err);
    ck_assert_msg(rc == 0, "tema bench failed (%d): %s", rc, err);
    j = parse_line(out);
    ck_assert_msg(fabs(number(j, "gflop_per_step") - gflop) <= 1e-4 * gflop, "FLOP per step changed: %g vs %g",
                  number(j, "gflop_per_step"), gflop);
    json_object_put(j);
    free(out);
    free(err);
}
END_TEST

/* A grid: the first entry unless --index (or --run) names another; a wider model has more
 * parameters and more FLOP per step. */
START_TEST(bench_times_the_grid_entry_asked_for)
{
    const char *grid = "grid:\n  model.encoders.0.dim: [16, 48]\n";
    double bytes[2], gflop[2];
    const char *args[2] = {"--steps 1 --warmup 0", "--steps 1 --warmup 0 --run 1"};
    for (int k = 0; k < 2; k++) {
        char *out, *err;
        int rc = bench(grid, args[k], &out, &err);
        ck_assert_msg(rc == 0, "tema bench %s failed (%d): %s", args[k], rc, err);
        json_object *j = parse_line(out);
        ck_assert_int_eq((int)number(j, "run"), k);
        bytes[k] = number(j, "param_bytes");
        gflop[k] = number(j, "gflop_per_step");
        json_object_put(j);
        free(out);
        free(err);
    }
    ck_assert_msg(bytes[1] > 2 * bytes[0] && gflop[1] > 2 * gflop[0], "dim 48 vs 16: %g vs %g bytes, %g vs %g GFLOP",
                  bytes[1], bytes[0], gflop[1], gflop[0]);
    char *out, *err;
    int rc = bench(grid, "--index 2", &out, &err);
    ck_assert_int_eq(rc, 2);
    ck_assert_msg(strstr(err, "--index 2") && strstr(err, "has 2 runs"), "stderr: %s", err);
    free(out);
    free(err);
}
END_TEST

START_TEST(bench_bad_options_are_named)
{
    static const struct {
        const char *args, *want;
    } cases[] = {
        {"--steps 0", "--steps must be an integer in [1, "},
        {"--steps x", "--steps must be an integer"},
        {"--warmup -1", "--warmup must be an integer in [0, "},
        {"--stepz 3", "unknown option '--stepz'"},
        {"--steps", "unknown option '--steps' or it needs a value"},
        {"--index 1", "--index 1: "},
        {"--threads 0", "--threads must be an integer in [1, 256]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out, *err;
        int rc = bench(NULL, cases[i].args, &out, &err);
        ck_assert_msg(rc == 2, "%s: exit %d, want 2 (stderr: %s)", cases[i].args, rc, err);
        ck_assert_msg(strstr(err, cases[i].want), "%s: stderr lacks \"%s\": %s", cases[i].args, cases[i].want, err);
        ck_assert_msg(out[0] == '\0', "%s: stdout: %s", cases[i].args, out);
        free(out);
        free(err);
    }
    /* a model with nothing to train has no step to time */
    char *out, *err;
    int rc = bench(NULL, "--steps 1 --set 'model.attention={plugin: pop}'", &out, &err);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(err, "no learnable parameter reaches the loss"), "stderr: %s", err);
    free(out);
    free(err);
}
END_TEST

/* The counter behind gflop_per_step: 2 M N K per dense product and 2 nnz D per sparse one,
 * forward and backward, on shapes chosen for nothing but being distinct. */
START_TEST(graph_counts_the_flop_of_its_products)
{
    tu_cpu_registry();
    const tema_nn_api *nn = tema_nn();
    tema_params *p = tema_params_new(5);
    const int64_t M = 7, K = 5, N = 3, R = 11;
    tema_tensor *a = nn->param(p, "a", 2, (int64_t[]){M, K}, TEMA_INIT_NORMAL, 0.1f, 0);
    tema_tensor *b = nn->param(p, "b", 2, (int64_t[]){K, N}, TEMA_INIT_NORMAL, 0.1f, 0);
    tema_tensor *w = nn->param(p, "w", 2, (int64_t[]){N, K}, TEMA_INIT_NORMAL, 0.1f, 0);
    /* a sparse [R, M] matrix with row r holding r % 3 entries */
    int64_t ptr[R + 1];
    int32_t col[3 * R];
    float val[3 * R];
    ptr[0] = 0;
    for (int64_t r = 0; r < R; r++) {
        ptr[r + 1] = ptr[r] + r % 3;
        for (int64_t k = ptr[r]; k < ptr[r + 1]; k++) col[k] = (int32_t)((r + k) % M), val[k] = 0.5f;
    }
    const int64_t nnz = ptr[R];
    tema_err err = {0};
    tema_csr *s = nn->csr(p, "s", R, M, ptr, col, val, &err);
    ck_assert_msg(s && tema_params_finalize(p, &err) == TEMA_OK, "%s", err.msg);
    tema_graph *g = tema_graph_new(1);
    tema_graph_reset(g, true, 0);
    const double f0 = tema_graph_flop(g);
    tema_tensor *ab = nn->matmul(g, a, false, b, false); /* [M, N] */
    ck_assert_double_eq(tema_graph_flop(g) - f0, 2.0 * M * N * K);
    tema_tensor *x = nn->tensor(g, 2, (int64_t[]){M, K}, NULL); /* a constant: no gradient */
    tema_tensor *lin = nn->linear(g, x, w, NULL);                /* [M, N] */
    tema_tensor *sp = nn->spmm(g, s, nn->add(g, ab, lin));       /* [R, N] */
    const double forward = 2.0 * M * N * K * 2 + 2.0 * nnz * N;
    ck_assert_double_eq(tema_graph_flop(g) - f0, forward);
    ck_assert_msg(tema_graph_backward(g, nn->sum(g, sp), &err) == TEMA_OK, "%s", err.msg);
    /* backward: spmm once (A^T), matmul two products (da, db), linear one (dw; x takes none) */
    const double backward = 2.0 * nnz * N + 2 * (2.0 * M * N * K) + 2.0 * M * N * K;
    ck_assert_double_eq(tema_graph_flop(g) - f0, forward + backward);
    /* the count goes on across steps: a caller takes differences */
    tema_graph_reset(g, false, 0);
    nn->matmul(g, a, false, b, false);
    ck_assert_double_eq(tema_graph_flop(g) - f0, forward + backward + 2.0 * M * N * K);
    tema_graph_free(g);
    tema_params_free(p);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("bench");
    TCase *tc = tcase_create("bench");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, graph_counts_the_flop_of_its_products);
    tcase_add_test(tc, bench_prints_one_json_line_with_every_field);
    tcase_add_test(tc, bench_without_eval);
    tcase_add_test(tc, bench_times_the_grid_entry_asked_for);
    tcase_add_test(tc, bench_bad_options_are_named);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
