/* tests/test_train.c - end-to-end runs of `tema run` on the toy dataset: results files,
 * metric ranges, the popularity baseline's exact ranks, determinism, checkpoint + resume. */
#include <json-c/json.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset.h"
#include "host.h"
#include "engine.h"
#include "testutil.h"
#include "train_internal.h"

/* experiment YAML for the toy data; `extra` lines are appended (later keys win) */
static void write_exp(const char *path, const char *name, const char *attention, int epochs, const char *protocol)
{
    char text[4096];
    snprintf(text, sizeof text,
             "name: %s\n"
             "dataset: {path: %s, max_len: 8}\n"
             "backend: {plugin: cpu, threads: 1}\n"
             "model:\n"
             "  encoders: [{plugin: id, dim: 16}]\n"
             "  attention: %s\n"
             "loss: {plugin: full_softmax, positions: 4}\n"
             "train: {epochs: %d, batch_size: 8, lr: 5.0e-3, patience: 0, eval_every: 1, seed: 11}\n"
             "eval: {protocol: %s, negatives: 99, metrics: [mrr, ndcg@10, hr@10]}\n",
             name, tu_data_path("toy"), attention, epochs, protocol ? protocol : "sampled");
    tu_write(path, text);
}

static int count_lines(const char *dir, const char *file)
{
    char p[8400];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    FILE *f = fopen(p, "r");
    ck_assert_msg(f != NULL, "missing %s", p);
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

static int run_tema(const char *exp, const char *results, char **out, char **err)
{
    char args[8500];
    snprintf(args, sizeof args, "run '%s' --results '%s'", exp, results);
    return tu_tema(args, out, err);
}

/* metrics are in range and ordered optimistic >= mid >= pessimistic */
static void check_metrics(json_object *fin, const char *set)
{
    static const char *const dom[2] = {"X", "Y"};
    static const char *const metrics[3] = {"mrr", "ndcg@10", "hr@10"};
    for (int d = 0; d < 2; d++) {
        char p[128];
        snprintf(p, sizeof p, "%s.%s.cases", set, dom[d]);
        ck_assert_int_eq(json_object_get_int(tu_json_get(fin, p)), 5); /* toy: 5 X and 5 Y cases per set */
        for (int m = 0; m < 3; m++) {
            double v[3];
            static const char *const rules[3] = {"optimistic", "mid", "pessimistic"};
            for (int r = 0; r < 3; r++) {
                snprintf(p, sizeof p, "%s.%s.%s.%s", set, dom[d], rules[r], metrics[m]);
                v[r] = json_object_get_double(tu_json_get(fin, p));
                ck_assert_msg(v[r] >= 0 && v[r] <= 1, "%s = %g out of [0, 1]", p, v[r]);
            }
            ck_assert_msg(v[0] >= v[1] - 1e-12 && v[1] >= v[2] - 1e-12, "%s %s %s: optimistic %g mid %g pessimistic %g",
                          set, dom[d], metrics[m], v[0], v[1], v[2]);
        }
        /* 99 negatives: MRR >= 1/100 */
        snprintf(p, sizeof p, "%s.%s.pessimistic.mrr", set, dom[d]);
        ck_assert_double_ge(json_object_get_double(tu_json_get(fin, p)), 0.01);
    }
}

START_TEST(sasrec_toy_end_to_end)
{
    TU_REQUIRE_DATA("toy");
    const char *tmp = tu_tmpdir();
    char exp[4200], res[4200];
    snprintf(exp, sizeof exp, "%s/sasrec.yaml", tmp);
    snprintf(res, sizeof res, "%s/results", tmp);
    write_exp(exp, "toy-sasrec", "{plugin: single, blocks: 1, heads: 2, dropout: 0.2}", 3, NULL);
    char *out, *err;
    int rc = run_tema(exp, res, &out, &err);
    ck_assert_msg(rc == 0, "tema run failed (%d): %s", rc, err);
    ck_assert_msg(strstr(out, "domain X") && strstr(out, "domain Y") && strstr(out, "pessimistic"),
                  "summary missing: %s", out);
    free(out);
    free(err);
    const char *dir = tu_run_dir(res, "toy-sasrec");
    const char *files[] = {"config.yaml", "config.json", "meta.json", "epochs.jsonl", "final.json", "ranks.tsv",
                           "DONE", "best.bin", "last.bin"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        ck_assert_msg(tu_exists(dir, files[i]), "%s missing in %s", files[i], dir);
    ck_assert_int_eq(count_lines(dir, "epochs.jsonl"), 3);
    ck_assert_int_eq(count_lines(dir, "ranks.tsv"), 1 + 10);
    json_object *fin = tu_json_load(dir, "final.json");
    check_metrics(fin, "test");
    check_metrics(fin, "valid");
    int best = json_object_get_int(tu_json_get(fin, "best_epoch"));
    ck_assert_int_ge(best, 1);
    ck_assert_int_le(best, 3);
    ck_assert_int_eq(json_object_get_int(tu_json_get(fin, "epochs_run")), 3);
    json_object_put(fin);
    json_object *meta = tu_json_load(dir, "meta.json");
    const char *plugs = json_object_to_json_string(tu_json_get(meta, "plugins"));
    ck_assert_msg(strstr(plugs, "\"single\"") && strstr(plugs, "\"full_softmax\"") && strstr(plugs, "\"id\""),
                  "meta.json plugins: %s", plugs);
    json_object_put(meta);

    /* the loss goes down on this tiny data */
    char p[4200];
    snprintf(p, sizeof p, "%s/epochs.jsonl", dir);
    FILE *f = fopen(p, "r");
    char line[8192];
    double first = NAN, last = NAN;
    while (fgets(line, sizeof line, f)) {
        json_object *o = json_tokener_parse(line);
        ck_assert_ptr_nonnull(o);
        double l = json_object_get_double(tu_json_get(o, "train_loss"));
        if (isnan(first)) first = l;
        last = l;
        ck_assert_ptr_nonnull(tu_json_get(o, "valid.X.optimistic"));
        json_object_put(o);
    }
    fclose(f);
    ck_assert_msg(last < first, "training loss did not decrease: %g -> %g", first, last);

    /* re-running a finished run prints its summary and skips training */
    rc = run_tema(exp, res, &out, &err);
    ck_assert_int_eq(rc, 0);
    ck_assert_msg(strstr(err, "already finished"), "stderr: %s", err);
    ck_assert_msg(strstr(out, "domain X"), "stdout: %s", out);
    free(out);
    free(err);
    ck_assert_int_eq(count_lines(dir, "epochs.jsonl"), 3);
}
END_TEST

START_TEST(pop_toy_ranks_match_counts)
{
    TU_REQUIRE_DATA("toy");
    const char *tmp = tu_tmpdir();
    char exp[4200], res[4200];
    snprintf(exp, sizeof exp, "%s/pop.yaml", tmp);
    snprintf(res, sizeof res, "%s/results", tmp);
    write_exp(exp, "toy-pop", "{plugin: pop}", 2, "full");
    char *out, *err;
    int rc = run_tema(exp, res, &out, &err);
    ck_assert_msg(rc == 0, "tema run failed (%d): %s", rc, err);
    free(out);
    free(err);
    const char *dir = tu_run_dir(res, "toy-pop");
    json_object *fin = tu_json_load(dir, "final.json");
    ck_assert_int_eq(json_object_get_int(tu_json_get(fin, "epochs_run")), 0);
    check_metrics(fin, "test");
    json_object_put(fin);
    ck_assert(!tu_exists(dir, "epochs.jsonl") || count_lines(dir, "epochs.jsonl") == 0);
    ck_assert(!tu_exists(dir, "best.bin"));

    /* full ranking by training count: rank = 1 + #items of the domain counted more often
     * (optimistic) or at least as often (pessimistic) as the target */
    tema_dataset *ds = NULL;
    tema_err e = {0};
    ck_assert_msg(tema_dataset_load(tu_data_path("toy"), NULL, &ds, &e) == TEMA_OK, "%s", e.msg);
    int n = ds->n_x + ds->n_y;
    int64_t *cnt = calloc((size_t)n, sizeof *cnt);
    for (int64_t k = 0; k < ds->train.off[ds->train.n_lines]; k++) cnt[ds->train.items[k]]++;
    char p[4200];
    snprintf(p, sizeof p, "%s/ranks.tsv", dir);
    FILE *f = fopen(p, "r");
    char line[512];
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f)); /* header */
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        long user;
        char domain;
        int target;
        double opt, pes, mid;
        ck_assert_int_eq(sscanf(line, "%ld\t%c\t%d\t%lf\t%lf\t%lf", &user, &domain, &target, &opt, &pes, &mid), 6);
        int lo = target < ds->n_x ? 0 : ds->n_x, hi = target < ds->n_x ? ds->n_x : n;
        ck_assert_int_eq(domain, target < ds->n_x ? 'X' : 'Y');
        int greater = 0, ties = 0;
        for (int j = lo; j < hi; j++)
            if (j != target) {
                greater += cnt[j] > cnt[target];
                ties += cnt[j] == cnt[target];
            }
        ck_assert_double_eq(opt, 1 + greater);
        ck_assert_double_eq(pes, 1 + greater + ties);
        ck_assert_double_eq(mid, 1 + greater + ties / 2.0);
        rows++;
    }
    fclose(f);
    ck_assert_int_eq(rows, (int)ds->test.n_lines);
    free(cnt);
    tema_dataset_free(ds);
}
END_TEST

static char *test_metrics_json(const char *dir)
{
    json_object *fin = tu_json_load(dir, "final.json");
    char *s = strdup(json_object_to_json_string(tu_json_get(fin, "test")));
    char *v = strdup(json_object_to_json_string(tu_json_get(fin, "valid")));
    char *both = malloc(strlen(s) + strlen(v) + 2);
    sprintf(both, "%s|%s", s, v);
    free(s);
    free(v);
    json_object_put(fin);
    return both;
}

START_TEST(same_seed_same_metrics)
{
    TU_REQUIRE_DATA("toy");
    const char *tmp = tu_tmpdir();
    char exp[4200], r1[4200], r2[4200];
    snprintf(exp, sizeof exp, "%s/det.yaml", tmp);
    snprintf(r1, sizeof r1, "%s/r1", tmp);
    snprintf(r2, sizeof r2, "%s/r2", tmp);
    write_exp(exp, "toy-det", "{plugin: single, blocks: 2, heads: 1, dropout: 0.3}", 2, NULL);
    ck_assert_int_eq(run_tema(exp, r1, NULL, NULL), 0);
    ck_assert_int_eq(run_tema(exp, r2, NULL, NULL), 0);
    char *a = test_metrics_json(tu_run_dir(r1, "toy-det"));
    char *b = test_metrics_json(tu_run_dir(r2, "toy-det"));
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
}
END_TEST

/* Every write, fsync and rename of a run made to fail in turn (a full disk, a failing device;
 * test builds' TEMA_TEST_FAIL_IO=N fails the Nth): each failure is a clear error, and a rerun
 * then ends with exactly the metrics of a run that never failed - never a silent wrong result. */
START_TEST(every_io_failure_is_an_error_and_the_rerun_is_exact)
{
    TU_REQUIRE_DATA("toy");
    const char *tmp = tu_tmpdir();
    char exp[4200], straight[4200];
    snprintf(exp, sizeof exp, "%s/io.yaml", tmp);
    snprintf(straight, sizeof straight, "%s/straight", tmp);
    write_exp(exp, "toy-io", "{plugin: single, blocks: 1, heads: 1, dropout: 0.3}", 2, NULL);
    char *out, *err;
    ck_assert_int_eq(run_tema(exp, straight, &out, &err), 0);
    free(out);
    free(err);
    char *want = test_metrics_json(tu_run_dir(straight, "toy-io"));
    int failed_runs = 0;
    for (int n = 1; n < 400; n++) {
        char res[4200], nv[16];
        snprintf(res, sizeof res, "%.4100s/fail-%d", tmp, n);
        snprintf(nv, sizeof nv, "%d", n);
        setenv("TEMA_TEST_FAIL_IO", nv, 1);
        int rc = run_tema(exp, res, &out, &err);
        unsetenv("TEMA_TEST_FAIL_IO");
        if (rc == 0) { /* n is past the run's last I/O: every operation has failed once */
            free(out);
            free(err);
            break;
        }
        failed_runs++;
        ck_assert_msg(strstr(err, "tema: error:") && (strstr(err, "failed") || strstr(err, "cannot")),
                      "I/O failure %d: no clear error:\n%s", n, err);
        free(out);
        free(err);
        ck_assert_msg(run_tema(exp, res, &out, &err) == 0, "rerun after I/O failure %d failed:\n%s", n, err);
        char *got = test_metrics_json(tu_run_dir(res, "toy-io"));
        ck_assert_msg(!strcmp(got, want), "I/O failure %d: the rerun's metrics differ", n);
        free(got);
        free(out);
        free(err);
    }
    ck_assert_int_gt(failed_runs, 10); /* the hook reached the run's writes */
    fprintf(stderr, "%d I/O operations failed in turn, each rerun exact\n", failed_runs);
    free(want);
}
END_TEST

/* An empty training or test file is an error naming the file, not a "done" run with the
 * metrics of an untrained model (or none). */
START_TEST(empty_splits_are_refused)
{
    TU_REQUIRE_DATA("toy");
    const char *files[] = {"traindata_new.txt", "testdata_new.txt"};
    for (int f = 0; f < 2; f++) {
        const char *tmp = tu_tmpdir();
        char data[4200], exp[4200], res[4200], cmd[9000];
        snprintf(data, sizeof data, "%s/data", tmp);
        snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && : > '%s/%s'", tu_data_path("toy"), data, data, files[f]);
        ck_assert_int_eq(system(cmd), 0);
        snprintf(exp, sizeof exp, "%s/e.yaml", tmp);
        snprintf(res, sizeof res, "%s/results", tmp);
        char text[8800];
        snprintf(text, sizeof text,
                 "name: empty\ndataset: {path: '%s', max_len: 8}\nbackend: {plugin: cpu, threads: 1}\n"
                 "model:\n  encoders: [{plugin: id, dim: 16}]\n  attention: {plugin: single, blocks: 1, heads: 1}\n"
                 "train: {epochs: 1, batch_size: 8}\neval: {negatives: 3}\n", data);
        tu_write(exp, text);
        char *out, *err;
        ck_assert_int_eq(run_tema(exp, res, &out, &err), 1);
        ck_assert_msg(strstr(err, files[f]) && strstr(err, f ? "nothing to evaluate" : "nothing to train on"), "%s",
                      err);
        free(out);
        free(err);
    }
}
END_TEST

START_TEST(interrupted_run_resumes_to_same_result)
{
    TU_REQUIRE_DATA("toy");
    const char *tmp = tu_tmpdir();
    char exp[4200], r1[4200], r2[4200];
    snprintf(exp, sizeof exp, "%s/resume.yaml", tmp);
    snprintf(r1, sizeof r1, "%s/straight", tmp);
    snprintf(r2, sizeof r2, "%s/stopped", tmp);
    write_exp(exp, "toy-resume", "{plugin: single, blocks: 1, heads: 1, dropout: 0.3}", 4, NULL);
    ck_assert_int_eq(run_tema(exp, r1, NULL, NULL), 0);

    setenv("TEMA_TEST_STOP_AFTER_EPOCH", "2", 1);
    char *out, *err;
    int rc = run_tema(exp, r2, &out, &err);
    unsetenv("TEMA_TEST_STOP_AFTER_EPOCH");
    ck_assert_msg(rc != 0, "a stopped run must not exit 0");
    ck_assert_msg(strstr(err, "resume"), "the message must say how to resume: %s", err);
    free(out);
    free(err);
    const char *d2 = tu_run_dir(r2, "toy-resume");
    char dir2[4200];
    snprintf(dir2, sizeof dir2, "%s", d2);
    ck_assert(!tu_exists(dir2, "DONE"));
    ck_assert(!tu_exists(dir2, "final.json"));
    ck_assert(tu_exists(dir2, "last.bin"));
    ck_assert_int_eq(count_lines(dir2, "epochs.jsonl"), 2);

    /* as if killed between the two writes of a save: last.state already describes a later
     * step than last.bin, whose own state is last.state.prev; the resume must use that pair */
    char st_path[4300], prev_path[4300], text[2048];
    snprintf(st_path, sizeof st_path, "%s/last.state", dir2);
    snprintf(prev_path, sizeof prev_path, "%s/last.state.prev", dir2);
    FILE *f = fopen(st_path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    ck_assert_int_eq(rename(st_path, prev_path), 0);
    char *step = strstr(text, "adam_step ");
    ck_assert_ptr_nonnull(step);
    long long adam = atoll(step + 10);
    snprintf(step, sizeof text - (size_t)(step - text), "adam_step %lld\n", adam + 7);
    tu_write(st_path, text);

    /* and as if the disk filled (or the process died) in the middle of the next epoch's record */
    char ep_path[4300];
    snprintf(ep_path, sizeof ep_path, "%s/epochs.jsonl", dir2);
    FILE *ep = fopen(ep_path, "a");
    ck_assert_ptr_nonnull(ep);
    fputs("{\"epoch\": 3, \"train_lo", ep);
    fclose(ep);

    rc = run_tema(exp, r2, &out, &err);
    ck_assert_msg(rc == 0, "resume failed (%d): %s", rc, err);
    ck_assert_msg(strstr(err, "resuming"), "stderr: %s", err);
    ck_assert_msg(strstr(err, "dropping a torn last record"), "stderr: %s", err);
    free(out);
    free(err);
    ck_assert(tu_exists(dir2, "DONE"));
    ck_assert_int_eq(count_lines(dir2, "epochs.jsonl"), 4);
    char *a = test_metrics_json(tu_run_dir(r1, "toy-resume"));
    char *b = test_metrics_json(dir2);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
}
END_TEST


/* Eq. 16 at evaluation: for a model of several stream groups (`multi` over S^X, S^Y and
 * S^{X+Y}), tema_evaluate's sampled-protocol ranks equal ranks computed here in double from
 * the streams themselves: log sum_g w[D][g] sum_{k in g} (w_k/W_g) softmax_k over D's items. */
START_TEST(multi_stream_inference_matches_reference)
{
    TU_REQUIRE_DATA("toy");
    tema_registry *reg = tu_cpu_registry();
    const tema_backend_ops *be = tema_engine_backend();
    void *bs = tema_engine_backend_self();
    tema_err err = {0};

    char yaml[4200];
    snprintf(yaml, sizeof yaml, "%s/multi.yaml", tu_tmpdir());
    write_exp(yaml, "multi", "{plugin: multi, blocks: 1, dropout: 0, lambda_1: 0.3, lambda_2: 0.5}", 1, NULL);
    tema_cfg *cfg = NULL;
    ck_assert_msg(tema_cfg_resolve(yaml, NULL, 0, reg, stderr, &cfg, &err) == TEMA_OK, "%s", err.msg);
    tema_dataset *ds = NULL;
    tema_dataset_files files = {0};
    ck_assert_msg(tema_dataset_load(tu_data_path("toy"), &files, &ds, &err) == TEMA_OK, "%s", err.msg);
    const int32_t n_x = ds->n_x, n_y = ds->n_y, L = 8, n_neg = 20;

    tema_model m = {0};
    m.params = tema_params_new(5);
    m.info = (tema_model_info){.struct_size = sizeof(tema_model_info), .n_x = n_x, .n_y = n_y, .max_len = L,
                               .seed = 5, .params = m.params, .host = tema_host_get()};
    ck_assert_msg(tema_model_build(&m, cfg, reg, &err) == TEMA_OK, "%s", err.msg);
    tema_graph *g = tema_graph_new(3);
    tema_batch_buf bb;
    ck_assert(tema_batch_buf_init(&bb, 4, L, 4, &err) == TEMA_OK);

    const tema_split *sp = &ds->valid;
    const int64_t n = sp->n_lines;
    int32_t *negs = malloc((size_t)(n * n_neg) * sizeof *negs);
    tema_draw_negatives(9, n, sp->target, n_x, n_y, n_neg, negs);
    tema_metric_spec spec;
    const char *names[1] = {"mrr"};
    ck_assert(tema_metric_parse(names, 1, &spec, &err) == TEMA_OK);
    tema_metric_acc acc;
    tema_metric_acc_init(&acc, &spec);
    tema_rank_row *rows = calloc((size_t)n, sizeof *rows);
    tema_eval_ctx c = {.model = &m, .g = g, .be = be, .bs = bs, .n_x = n_x, .n_y = n_y, .batch_size = 3, .threads = 1,
                       .bb = &bb};
    ck_assert_msg(tema_evaluate(&c, sp, negs, n_neg, &acc, rows, &err) == TEMA_OK, "%s", err.msg);

    float sw[2][3];
    tema_model_seq_weights(&m, sw);
    ck_assert_float_eq(sw[0][TEMA_SEQ_X], 1.0f);
    ck_assert_float_eq_tol(sw[0][TEMA_SEQ_Y], 0.3f, 1e-6f);
    ck_assert_float_eq_tol(sw[1][TEMA_SEQ_MERGED], 0.5f, 1e-6f);
    int checked = 0;
    for (int64_t i = 0; i < n; i++) {
        if (rows[i].domain < 0) continue;
        tema_batch b;
        tema_batch_eval(&bb, sp, n_x, &i, 1, &b);
        tema_graph_reset(g, false, 0);
        tema_stream st[TEMA_MAX_STREAMS];
        int ns = 0;
        ck_assert_msg(tema_model_forward(&m, g, &b, st, &ns, &err) == TEMA_OK, "%s", err.msg);
        ck_assert_int_eq(ns, 3);
        const int dom = sp->target[i] >= n_x, lo = dom ? n_x : 0, nd = dom ? n_y : n_x;
        double *p = calloc((size_t)nd, sizeof *p), wsum[3] = {0, 0, 0};
        for (int k = 0; k < ns; k++) wsum[st[k].sequence] += st[k].weight;
        for (int k = 0; k < ns; k++) {
            const int64_t d = st[k].h->shape[1];
            const float *h = st[k].h->data + (int64_t)(L - 1) * d;
            double *z = malloc((size_t)nd * sizeof *z), mx = -INFINITY, sum = 0;
            for (int j = 0; j < nd; j++) {
                z[j] = 0;
                for (int64_t q = 0; q < d; q++) z[j] += (double)h[q] * st[k].items->data[(int64_t)(lo + j) * d + q];
                z[j] *= st[k].inv_temp;
                mx = z[j] > mx ? z[j] : mx;
            }
            for (int j = 0; j < nd; j++) sum += exp(z[j] - mx);
            const double w = sw[dom][st[k].sequence] * st[k].weight / wsum[st[k].sequence];
            for (int j = 0; j < nd; j++) p[j] += w * exp(z[j] - mx) / sum;
            free(z);
        }
        float cs[1 + 20];
        cs[0] = (float)log(p[sp->target[i] - lo]);
        for (int q = 0; q < n_neg; q++) cs[1 + q] = (float)log(p[negs[i * n_neg + q] - lo]);
        double want[TEMA_RANK_RULES];
        tema_rank(cs, n_neg, want);
        for (int r = 0; r < TEMA_RANK_RULES; r++)
            ck_assert_msg(fabs(rows[i].rank[r] - want[r]) < 1e-9, "case %lld rule %d: evaluate %g, reference %g",
                          (long long)i, r, rows[i].rank[r], want[r]);
        free(p);
        checked++;
    }
    ck_assert_int_ge(checked, 8);
    free(rows);
    free(negs);
    tema_batch_buf_free(&bb);
    tema_graph_free(g);
    tema_model_destroy(&m);
    tema_dataset_free(ds);
    tema_cfg_free(cfg);
}
END_TEST

/* Evaluation scores a batch's users in chunks (core/train_model.c); which chunk a user falls
 * in changes none of its scores: ranks under both protocols and tema_score_lines' scores are the
 * same, bit for bit, with one chunk per batch, a few users per chunk, or one. */
START_TEST(evaluation_in_chunks_scores_as_one_batch)
{
    TU_REQUIRE_DATA("toy");
    tema_registry *reg = tu_cpu_registry();
    tema_err err = {0};
    char yaml[4200];
    snprintf(yaml, sizeof yaml, "%s/multi.yaml", tu_tmpdir());
    write_exp(yaml, "multi", "{plugin: multi, blocks: 1, dropout: 0, lambda_1: 0.3, lambda_2: 0.5}", 1, NULL);
    tema_cfg *cfg = NULL;
    ck_assert_msg(tema_cfg_resolve(yaml, NULL, 0, reg, stderr, &cfg, &err) == TEMA_OK, "%s", err.msg);
    tema_dataset *ds = NULL;
    tema_dataset_files files = {0};
    ck_assert_msg(tema_dataset_load(tu_data_path("toy"), &files, &ds, &err) == TEMA_OK, "%s", err.msg);
    const int32_t n_x = ds->n_x, n_y = ds->n_y, L = 8, n_neg = 13, B = 4;
    tema_model m = {0};
    m.params = tema_params_new(8);
    m.info = (tema_model_info){.struct_size = sizeof(tema_model_info), .n_x = n_x, .n_y = n_y, .max_len = L,
                               .seed = 8, .params = m.params, .host = tema_host_get()};
    ck_assert_msg(tema_model_build(&m, cfg, reg, &err) == TEMA_OK, "%s", err.msg);
    tema_graph *g = tema_graph_new(3);
    tema_batch_buf bb;
    ck_assert(tema_batch_buf_init(&bb, B, L, 1, &err) == TEMA_OK);
    const tema_split *sp = &ds->test;
    const int64_t n = sp->n_lines;
    int32_t *negs = malloc((size_t)(n * n_neg) * sizeof *negs);
    tema_draw_negatives(4, n, sp->target, n_x, n_y, n_neg, negs);
    tema_metric_spec spec;
    const char *names[2] = {"mrr", "hr@5"};
    ck_assert(tema_metric_parse(names, 2, &spec, &err) == TEMA_OK);
    tema_rank_row *rows[3];
    tema_metric_acc acc[3];
    float *scores[3];
    int64_t lines[B];
    for (int i = 0; i < B; i++) lines[i] = i % n;
    const int chunk_rows[3] = {0, 3, 1}; /* 0: the whole batch, on data this small */
    for (int protocol = 0; protocol < 2; protocol++) {
        for (int v = 0; v < 3; v++) {
            tema_eval_ctx c = {.model = &m, .g = g, .be = tema_engine_backend(), .bs = tema_engine_backend_self(),
                               .n_x = n_x, .n_y = n_y, .batch_size = B, .threads = 1, .bb = &bb,
                               .chunk_rows = chunk_rows[v]};
            rows[v] = calloc((size_t)n, sizeof *rows[v]);
            tema_metric_acc_init(&acc[v], &spec);
            ck_assert_msg(tema_evaluate(&c, sp, protocol ? NULL : negs, n_neg, &acc[v], rows[v], &err) == TEMA_OK,
                          "%s", err.msg);
            scores[v] = malloc((size_t)B * n_y * sizeof(float));
            ck_assert_msg(tema_score_lines(&c, sp, lines, B, 1, scores[v], &err) == TEMA_OK, "%s", err.msg);
        }
        for (int v = 1; v < 3; v++) {
            for (int64_t i = 0; i < n; i++) {
                ck_assert_int_eq(rows[v][i].domain, rows[0][i].domain);
                for (int r = 0; r < TEMA_RANK_RULES; r++)
                    ck_assert_msg(rows[v][i].rank[r] == rows[0][i].rank[r],
                                  "%s, %d per chunk: case %lld rule %d: %g vs %g", protocol ? "full" : "sampled",
                                  chunk_rows[v], (long long)i, r, rows[v][i].rank[r], rows[0][i].rank[r]);
            }
            ck_assert(memcmp(acc[v].sum, acc[0].sum, sizeof acc[0].sum) == 0);
            /* Ranks and metrics must match exactly (above); a score only to float rounding: OpenBLAS's
             * Haswell/Zen sgemm (AMD EPYC here) rounds a row differently with the row count of
             * the product, the Skylake-X one does not. */
            for (int64_t k = 0; k < (int64_t)B * n_y; k++)
                ck_assert_msg(fabsf(scores[v][k] - scores[0][k]) <= 1e-5f * (1.0f + fabsf(scores[0][k])),
                              "tema_score_lines, %d per chunk: score %lld is %.9g, not %.9g", chunk_rows[v],
                              (long long)k, scores[v][k], scores[0][k]);
        }
        ck_assert_int_gt(acc[0].count[0] + acc[0].count[1], 2 * B); /* several batches, each in chunks */
        for (int v = 0; v < 3; v++) free(rows[v]), free(scores[v]);
    }
    free(negs);
    tema_batch_buf_free(&bb);
    tema_graph_free(g);
    tema_model_destroy(&m);
    tema_dataset_free(ds);
    tema_cfg_free(cfg);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("toy");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, sasrec_toy_end_to_end);
    tcase_add_test(tc, pop_toy_ranks_match_counts);
    tcase_add_test(tc, same_seed_same_metrics);
    tcase_add_test(tc, interrupted_run_resumes_to_same_result);
    tcase_add_test(tc, empty_splits_are_refused);
    tcase_add_test(tc, every_io_failure_is_an_error_and_the_rerun_is_exact);
    tcase_add_test(tc, multi_stream_inference_matches_reference);
    tcase_add_test(tc, evaluation_in_chunks_scores_as_one_batch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
