/* tests/test_results.c - run folders, JSON records, ranks table, tie warnings, summary. */
#include <dirent.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "results.h"
#include "tema_build_config.h"
#include "testutil.h"
#include "util.h"

static const char cfg_a[] = "{\"name\":\"exp\",\"seed\":1,\"model\":{\"name\":\"sasrec\"}}";
static const char cfg_b[] = "{\"name\":\"exp\",\"seed\":2,\"model\":{\"name\":\"sasrec\"}}";
static const char yaml_a[] = "name: exp\nseed: 1\nmodel:\n  name: sasrec\n";

static char *slurp(const char *dir, const char *name)
{
    char p[4096], *data = NULL;
    size_t len;
    tema_err err = {0};
    snprintf(p, sizeof p, "%s/%s", dir, name);
    ck_assert_msg(tema_read_file(p, &data, &len, &err) == TEMA_OK, "%s", err.msg);
    return data;
}

static json_object *parse_file(const char *dir, const char *name)
{
    char *text = slurp(dir, name);
    json_object *o = json_tokener_parse(text);
    ck_assert_msg(o != NULL, "%s/%s is not JSON:\n%s", dir, name, text);
    free(text);
    return o;
}

/* obj at a path like "test.X.optimistic.mrr" (fails the test when absent). */
static json_object *at(json_object *o, const char *path)
{
    char buf[256];
    char *save;
    snprintf(buf, sizeof buf, "%s", path);
    for (char *tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save)) {
        json_object *next;
        ck_assert_msg(json_object_object_get_ex(o, tok, &next), "missing '%s' in %s", tok, path);
        o = next;
    }
    return o;
}

static int count_tmp_files(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, ".tmp") != NULL;
    closedir(d);
    return n;
}

static tema_metric_spec spec3(void)
{
    const char *names[] = {"mrr", "ndcg@10", "hr@10"};
    tema_metric_spec spec;
    tema_err err = {0};
    ck_assert_int_eq(tema_metric_parse(names, 3, &spec, &err), TEMA_OK);
    return spec;
}

START_TEST(run_id_stable)
{
    char a1[17], a2[17], b[17];
    tema_results_run_id(cfg_a, a1);
    tema_results_run_id(cfg_a, a2);
    tema_results_run_id(cfg_b, b);
    ck_assert_str_eq(a1, a2);
    ck_assert_str_ne(a1, b);
    ck_assert_int_eq(strlen(a1), 16);
    ck_assert_int_eq(strspn(a1, "0123456789abcdef"), 16);
}
END_TEST

START_TEST(open_creates_folder_and_states)
{
    char root[512];
    snprintf(root, sizeof root, "%s/results", tu_tmpdir());
    tema_err err = {0};
    tema_run *run;
    tema_run_state st;
    ck_assert_msg(tema_results_open(root, "food", cfg_a, yaml_a, &run, &st, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_int_eq(st, TEMA_RUN_NEW);
    char id[17], want[1024];
    tema_results_run_id(cfg_a, id);
    snprintf(want, sizeof want, "%s/food/%s", root, id);
    ck_assert_str_eq(tema_results_dir(run), want);
    ck_assert_str_eq(tema_results_id(run), id);
    snprintf(want, sizeof want, "%s/food/%s/best.bin", root, id);
    ck_assert_str_eq(tema_results_best_path(run), want);
    snprintf(want, sizeof want, "%s/food/%s/last.bin", root, id);
    ck_assert_str_eq(tema_results_last_path(run), want);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", tema_results_dir(run));
    ck_assert_int_eq(tema_results_begin(run, true, &err), TEMA_OK);
    char *s = slurp(dir, "status");
    ck_assert_str_eq(s, "running\n");
    free(s);
    s = slurp(dir, "config.yaml");
    ck_assert_str_eq(s, yaml_a);
    free(s);
    json_object *cj = parse_file(dir, "config.json");
    ck_assert_int_eq(json_object_get_int(at(cj, "seed")), 1);
    ck_assert_str_eq(json_object_get_string(at(cj, "model.name")), "sasrec");
    json_object_put(cj);
    tema_results_close(run);

    /* Started but never finished: interrupted. What a kill between write and rename left (the
     * temporary of a process that is gone) goes when the run is opened again; a live writer's
     * stays. */
    char stale[1100], live[1100];
    pid_t gone = fork();
    if (gone == 0) _exit(0);
    waitpid(gone, NULL, 0);
    snprintf(stale, sizeof stale, "%s/last.bin.tmp.%ld", dir, (long)gone);
    snprintf(live, sizeof live, "%s/final.json.tmp.%ld", dir, (long)getpid());
    tu_write(stale, "half a checkpoint");
    tu_write(live, "being written");
    ck_assert_int_eq(tema_results_open(root, "food", cfg_a, yaml_a, &run, &st, &err), TEMA_OK);
    ck_assert_msg(access(stale, F_OK) != 0, "%s is still there", stale);
    ck_assert_int_eq(access(live, F_OK), 0);
    unlink(live);
    ck_assert_int_eq(st, TEMA_RUN_INTERRUPTED);
    ck_assert_int_eq(tema_results_interrupted(run, &err), TEMA_OK);
    s = slurp(dir, "status");
    ck_assert_str_eq(s, "interrupted\n");
    free(s);
    ck_assert_int_eq(tema_results_finish(run, &err), TEMA_OK);
    tema_results_close(run);

    ck_assert_int_eq(tema_results_open(root, "food", cfg_a, yaml_a, &run, &st, &err), TEMA_OK);
    ck_assert_int_eq(st, TEMA_RUN_FINISHED);
    s = slurp(dir, "status");
    ck_assert_str_eq(s, "done\n");
    free(s);
    /* A fresh begin on a finished run clears the DONE marker and old outputs. */
    tu_write(tema_results_last_path(run), "old checkpoint");
    ck_assert_int_eq(tema_results_begin(run, true, &err), TEMA_OK);
    ck_assert(!tu_exists(dir, "DONE"));
    ck_assert(!tu_exists(dir, "last.bin"));
    tema_results_close(run);

    /* A different config is a different run folder. */
    ck_assert_int_eq(tema_results_open(root, "food", cfg_b, NULL, &run, &st, &err), TEMA_OK);
    ck_assert_int_eq(st, TEMA_RUN_NEW);
    ck_assert_str_ne(tema_results_dir(run), dir);
    tema_results_close(run);
    ck_assert_int_eq(count_tmp_files(dir), 0);
}
END_TEST

START_TEST(open_rejects_bad_name)
{
    const char *root = tu_tmpdir();
    const char *bad[] = {"a/b", "..", ".", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tema_err err = {0};
        tema_run *run = (tema_run *)1;
        tema_run_state st;
        ck_assert_int_eq(tema_results_open(root, bad[i], cfg_a, NULL, &run, &st, &err), TEMA_EINVAL);
        ck_assert_ptr_null(run);
        ck_assert_ptr_nonnull(strstr(err.msg, "experiment name"));
    }
}
END_TEST

static tema_run *fresh_run(char *dir, size_t cap)
{
    tema_err err = {0};
    tema_run *run;
    tema_run_state st;
    ck_assert_int_eq(tema_results_open(tu_tmpdir(), "exp", cfg_a, yaml_a, &run, &st, &err), TEMA_OK);
    ck_assert_int_eq(tema_results_begin(run, true, &err), TEMA_OK);
    snprintf(dir, cap, "%s", tema_results_dir(run));
    return run;
}

START_TEST(epochs_append_and_truncate)
{
    char dir[1024];
    tema_run *run = fresh_run(dir, sizeof dir);
    tema_err err = {0};
    tema_metric_spec spec = spec3();
    tema_metric_acc valid;
    tema_metric_acc_init(&valid, &spec);
    double r1[] = {1, 1, 1}, r2[] = {2, 4, 3}, r3[] = {20, 20, 20};
    tema_metric_acc_add(&valid, 0, r1);
    tema_metric_acc_add(&valid, 0, r2);
    tema_metric_acc_add(&valid, 1, r3);
    for (int e = 1; e <= 3; e++) {
        tema_epoch_record rec = {.epoch = e, .steps = 100 * e, .train_loss = 1.0 / e, .seconds = 2.5,
                                 .valid = e == 2 ? &valid : NULL};
        ck_assert_int_eq(tema_results_epoch(run, &rec, &err), TEMA_OK);
    }
    tema_epoch_record nan_rec = {.epoch = 4, .steps = 1, .train_loss = NAN, .seconds = 1};
    ck_assert_int_eq(tema_results_epoch(run, &nan_rec, &err), TEMA_OK);

    char *text = slurp(dir, "epochs.jsonl");
    int n = 0;
    char *save;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_object *o = json_tokener_parse(line);
        ck_assert_msg(o != NULL, "line %d is not JSON: %s", n + 1, line);
        n++;
        ck_assert_int_eq(json_object_get_int(at(o, "epoch")), n);
        ck_assert_int_eq(json_object_get_int64(at(o, "steps")), n == 4 ? 1 : 100 * n);
        json_object *v;
        ck_assert(json_object_object_get_ex(o, "valid", &v) == (n == 2));
        if (n == 2) {
            ck_assert_double_eq_tol(json_object_get_double(at(o, "valid.X.optimistic.mrr")), 0.75, 1e-12);
            ck_assert_double_eq_tol(json_object_get_double(at(o, "valid.X.pessimistic.mrr")), 0.625, 1e-12);
            ck_assert_double_eq_tol(json_object_get_double(at(o, "valid.X.mid.hr@10")), 1.0, 1e-12);
            ck_assert_double_eq_tol(json_object_get_double(at(o, "valid.Y.optimistic.hr@10")), 0.0, 1e-12);
            ck_assert_int_eq(json_object_get_int(at(o, "valid.Y.cases")), 1);
        }
        if (n == 4)
            ck_assert(json_object_get_type(at(o, "train_loss")) == json_type_null);
        else
            ck_assert_double_eq_tol(json_object_get_double(at(o, "train_loss")), 1.0 / n, 1e-12);
        json_object_put(o);
    }
    ck_assert_int_eq(n, 4);
    free(text);

    /* Resume from a checkpoint of epoch 2: later lines go. */
    ck_assert_int_eq(tema_results_truncate_epochs(run, 2, &err), TEMA_OK);
    tema_epoch_record rec3 = {.epoch = 3, .steps = 7, .train_loss = 0.1, .seconds = 1};
    ck_assert_int_eq(tema_results_epoch(run, &rec3, &err), TEMA_OK);
    text = slurp(dir, "epochs.jsonl");
    int lines = 0;
    for (char *p = text; *p; p++)
        lines += *p == '\n';
    ck_assert_int_eq(lines, 3);
    ck_assert_ptr_nonnull(strstr(text, "\"steps\":7"));
    ck_assert_ptr_null(strstr(text, "\"steps\":300"));
    free(text);

    /* A resumed (not fresh) begin keeps the log. */
    ck_assert_int_eq(tema_results_begin(run, false, &err), TEMA_OK);
    ck_assert(tu_exists(dir, "epochs.jsonl"));
    ck_assert_int_eq(tema_results_begin(run, true, &err), TEMA_OK);
    ck_assert(!tu_exists(dir, "epochs.jsonl"));
    ck_assert_int_eq(count_tmp_files(dir), 0);
    tema_results_close(run);
}
END_TEST

START_TEST(final_meta_ranks_files)
{
    char dir[1024];
    tema_run *run = fresh_run(dir, sizeof dir);
    tema_err err = {0};
    tema_metric_spec spec = spec3();
    tema_metric_acc test, valid;
    tema_metric_acc_init(&test, &spec);
    tema_metric_acc_init(&valid, &spec);
    double ra[] = {1, 1, 1}, rb[] = {5, 5, 5}, rc[] = {12, 12, 12};
    tema_metric_acc_add(&test, 0, ra);
    tema_metric_acc_add(&test, 0, rb);
    tema_metric_acc_add(&test, 1, rc);
    tema_metric_acc_add(&valid, 0, rb);

    tema_plugin_record plugins[] = {{"model", "sasrec", "1.2.0", "/x/libsasrec.so", "00112233aabbccdd"},
                                    {"encoder", "mean", "0.1.0", "builtin", NULL}};
    tema_run_meta meta = {.source_root = tu_source_root(), .plugins = plugins, .n_plugins = 2, .threads = 2,
                          .backend = "cpu", .config_path = "exp/food.yaml"};
    ck_assert_msg(tema_results_meta(run, &meta, &err) == TEMA_OK, "%s", err.msg);
    json_object *m = parse_file(dir, "meta.json");
    ck_assert_str_eq(json_object_get_string(at(m, "tema_version")), TEMA_VERSION);
    /* the build that made the run (this test is built with the core's flags) */
#ifdef __SANITIZE_ADDRESS__
    ck_assert_str_eq(json_object_get_string(at(m, "build.sanitizers")), "address");
#else
    ck_assert_str_eq(json_object_get_string(at(m, "build.sanitizers")), "");
#endif
#ifdef __OPTIMIZE__
    ck_assert(json_object_get_boolean(at(m, "build.optimized")));
#else
    ck_assert(!json_object_get_boolean(at(m, "build.optimized")));
#endif
    ck_assert_str_eq(json_object_get_string(at(m, "build.compiler")), __VERSION__);
    ck_assert_int_eq(json_object_get_int(at(m, "threads")), 2);
    ck_assert_str_eq(json_object_get_string(at(m, "backend")), "cpu");
    ck_assert_int_ge(strlen(json_object_get_string(at(m, "git_commit"))), 1);
    ck_assert_int_ge(strlen(json_object_get_string(at(m, "host"))), 1);
    ck_assert_int_eq(strlen(json_object_get_string(at(m, "start_time"))), 20);
    json_object *pl = at(m, "plugins");
    ck_assert_int_eq(json_object_array_length(pl), 2);
    ck_assert_str_eq(json_object_get_string(at(json_object_array_get_idx(pl, 0), "name")), "sasrec");
    ck_assert_str_eq(json_object_get_string(at(json_object_array_get_idx(pl, 1), "file")), "builtin");
    json_object_put(m);

    const char *warns[] = {"loss went up in epoch 3"};
    tema_final_record fin = {.valid = &valid, .test = &test, .best_epoch = 15, .epochs_run = 20,
                             .stopped_early = true, .total_seconds = 40, .peak_memory_bytes = 123456789,
                             .warnings = warns, .n_warnings = 1};
    ck_assert_int_eq(tema_results_final(run, &fin, &err), TEMA_OK);
    json_object *f = parse_file(dir, "final.json");
    ck_assert_double_eq_tol(json_object_get_double(at(f, "test.X.optimistic.mrr")), (1 + 0.2) / 2, 1e-12);
    ck_assert_double_eq_tol(json_object_get_double(at(f, "test.X.pessimistic.hr@10")), 1.0, 1e-12);
    ck_assert_double_eq_tol(json_object_get_double(at(f, "test.Y.mid.ndcg@10")), 0.0, 1e-12);
    ck_assert_double_eq_tol(json_object_get_double(at(f, "test.Y.optimistic.mrr")), 1.0 / 12, 1e-12);
    ck_assert_double_eq_tol(json_object_get_double(at(f, "valid.X.optimistic.ndcg@10")), 1 / log2(6.0), 1e-12);
    ck_assert_int_eq(json_object_get_int(at(f, "test.X.cases")), 2);
    ck_assert_int_eq(json_object_get_int(at(f, "valid.Y.cases")), 0);
    ck_assert(json_object_get_type(at(f, "valid.Y.optimistic.mrr")) == json_type_null);
    ck_assert_int_eq(json_object_get_int(at(f, "best_epoch")), 15);
    ck_assert_int_eq(json_object_get_int(at(f, "epochs_run")), 20);
    ck_assert(json_object_get_boolean(at(f, "stopped_early")));
    ck_assert_double_eq_tol(json_object_get_double(at(f, "seconds_per_epoch")), 2.0, 1e-12);
    ck_assert_int_eq(json_object_get_int64(at(f, "peak_memory_bytes")), 123456789);
    json_object *w = at(f, "warnings");
    ck_assert_int_eq(json_object_array_length(w), 1); /* no ties here: only the caller's */
    ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(w, 0)), warns[0]);
    json_object_put(f);

    tema_rank_row rows[] = {{17, 0, 5, {1, 3, 2}}, {4, 1, 1040, {2, 2, 2}}, {9, 1, 1001, {1, 1000, 500.5}}};
    ck_assert_int_eq(tema_results_ranks(run, 3, rows, &err), TEMA_OK);
    char *tsv = slurp(dir, "ranks.tsv");
    ck_assert_str_eq(tsv, "user\tdomain\ttarget\toptimistic\tpessimistic\tmid\n"
                          "17\tX\t5\t1.0\t3.0\t2.0\n"
                          "4\tY\t1040\t2.0\t2.0\t2.0\n"
                          "9\tY\t1001\t1.0\t1000.0\t500.5\n");
    free(tsv);

    ck_assert(!tu_exists(dir, "DONE"));
    ck_assert_int_eq(tema_results_finish(run, &err), TEMA_OK);
    ck_assert(tu_exists(dir, "DONE"));
    ck_assert_int_eq(count_tmp_files(dir), 0);
    tema_results_close(run);
}
END_TEST

/* Accumulator where domain X has `tied` of `n` cases whose target ties with all 999
 * negatives (optimistic rank 1, pessimistic 1000), the rest at rank 2 under every rule. */
static void tie_acc(tema_metric_acc *a, int n, int tied)
{
    tema_metric_spec spec = spec3();
    tema_metric_acc_init(a, &spec);
    for (int i = 0; i < n; i++) {
        double tie[] = {1, 1000, 500.5}, plain[] = {2, 2, 2};
        tema_metric_acc_add(a, 0, i < tied ? tie : plain);
        tema_metric_acc_add(a, 1, plain);
    }
}

START_TEST(tie_warning_threshold)
{
    tema_metric_acc a;
    char buf[512];
    /* Optimistic MRR = (t*1 + (n-t)*0.5)/n, pessimistic = (t*0.001 + (n-t)*0.5)/n.
     * n = 100: t = 9 -> opt 0.545, pes 0.45509, rel 16.5%; t = 5 -> 0.525 vs 0.47505, 9.5%. */
    tie_acc(&a, 100, 9);
    ck_assert(tema_results_tie_warning(&a, 0, buf, sizeof buf));
    ck_assert_ptr_nonnull(strstr(buf, "ties flatter this model"));
    ck_assert_ptr_nonnull(strstr(buf, "domain X"));
    ck_assert_ptr_nonnull(strstr(buf, "0.5450"));
    ck_assert_ptr_nonnull(strstr(buf, "0.4551"));
    ck_assert(!tema_results_tie_warning(&a, 1, buf, sizeof buf));
    ck_assert_str_eq(buf, "");

    tie_acc(&a, 100, 5);
    ck_assert(!tema_results_tie_warning(&a, 0, buf, sizeof buf));
    ck_assert_str_eq(buf, "");

    /* The warning reaches final.json and the summary. */
    tie_acc(&a, 100, 9);
    char dir[1024];
    tema_run *run = fresh_run(dir, sizeof dir);
    tema_err err = {0};
    tema_final_record fin = {.test = &a, .best_epoch = 1, .epochs_run = 1, .total_seconds = 1};
    ck_assert_int_eq(tema_results_final(run, &fin, &err), TEMA_OK);
    json_object *f = parse_file(dir, "final.json");
    json_object *w = at(f, "warnings");
    ck_assert_int_eq(json_object_array_length(w), 1);
    ck_assert_ptr_nonnull(strstr(json_object_get_string(json_object_array_get_idx(w, 0)), "ties flatter"));
    ck_assert(json_object_get_type(at(f, "valid")) == json_type_null);
    json_object_put(f);

    char *sum = tema_results_summary(run, &a, 1, 1);
    ck_assert_ptr_nonnull(sum);
    ck_assert_ptr_nonnull(strstr(sum, "warning: ties flatter this model: domain X"));
    ck_assert_ptr_null(strstr(sum, "domain Y mrr"));
    free(sum);

    tie_acc(&a, 100, 5);
    sum = tema_results_summary(run, &a, 1, 1);
    ck_assert_ptr_null(strstr(sum, "ties flatter"));
    free(sum);
    tema_results_close(run);
}
END_TEST

START_TEST(summary_table)
{
    tema_metric_spec spec = spec3();
    tema_metric_acc a;
    tema_metric_acc_init(&a, &spec);
    double r[] = {2, 4, 3};
    tema_metric_acc_add(&a, 0, r);
    char *sum = tema_results_summary(NULL, &a, 3, 10);
    ck_assert_ptr_nonnull(sum);
    ck_assert_ptr_nonnull(strstr(sum, "domain X (1 test cases)"));
    ck_assert_ptr_nonnull(strstr(sum, "domain Y (0 test cases)"));
    ck_assert_ptr_nonnull(strstr(sum, "optimistic"));
    ck_assert_ptr_nonnull(strstr(sum, "pessimistic"));
    ck_assert_ptr_nonnull(strstr(sum, "mid-rank"));
    /* mrr row: 1/2, 1/4, 1/3 */
    char *row = strstr(sum, "  mrr ");
    ck_assert_ptr_nonnull(row);
    double o, p, m;
    ck_assert_int_eq(sscanf(row, " mrr %lf %lf %lf", &o, &p, &m), 3);
    ck_assert_double_eq_tol(o, 0.5, 1e-4);
    ck_assert_double_eq_tol(p, 0.25, 1e-4);
    ck_assert_double_eq_tol(m, 1.0 / 3, 1e-4);
    free(sum);
}
END_TEST

/* `tema results`: one CSV row per run with its grid value, state and metrics, the same in
 * JSON lines, and a pending run with empty metric cells. */
START_TEST(runs_table_for_pandas)
{
    char dir[600], exp[700], args[2400], *out, *err;
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    snprintf(exp, sizeof exp, "%s/t.yaml", dir);
    tu_write(exp, "name: t\ndataset: {path: synthetic}\nbackend: {plugin: cpu, threads: 1}\n"
                  "model: {encoders: [{plugin: id, dim: 8}]}\n"
                  "loss: {plugin: full_softmax}\ntrain: {epochs: 1, max_steps: 3, batch_size: 32}\n"
                  "eval: {negatives: 99, metrics: [mrr, hr@10]}\n"
                  "grid:\n  model.attention: [{plugin: single, blocks: 1, heads: 1}, {plugin: single, blocks: 2, heads: 1}]\n");
    /* only the first entry runs; the values hold commas, which the CSV must quote */
    snprintf(args, sizeof args, "run '%s' --results '%s/res' --index 0", exp, dir);
    ck_assert_msg(tu_tema_grid(args, &out, &err) == 0, "%s", err);
    free(out);
    free(err);
    snprintf(args, sizeof args, "results '%s' --results '%s/res'", exp, dir);
    ck_assert_msg(tu_tema(args, &out, &err) == 0, "%s", err);
    ck_assert_msg(strstr(out, "runs.csv (2 runs, 1 with results"), "%s", out);
    free(out);
    free(err);
    char path[800];
    snprintf(path, sizeof path, "%s/res/t/runs.csv", dir);
    char *csv = NULL;
    size_t len = 0;
    tema_err e = {0};
    ck_assert_msg(tema_read_file(path, &csv, &len, &e) == TEMA_OK, "%s", e.msg);
    char *line2 = strchr(csv, '\n') + 1, *line3 = strchr(line2, '\n') + 1;
    ck_assert_msg(!strncmp(csv, "index,run_id,state,cell,model.attention,best_epoch,", 51), "%s", csv);
    ck_assert_msg(strstr(csv, ",test.X.optimistic.mrr,") && strstr(csv, ",test.Y.mid.hr@10") &&
                      strstr(csv, ",valid.X.cases,"),
                  "%.400s", csv);
    ck_assert_msg(!strncmp(line2, "0,", 2) && strstr(line2, ",done,0,\"{plugin: single, blocks: 1, heads: 1}\","),
                  "%.300s", line2);
    ck_assert_msg(!strncmp(line3, "1,", 2) && strstr(line3, ",pending,1,\"{plugin: single, blocks: 2, heads: 1}\","),
                  "%.300s", line3);
    /* the finished run's test MRR in the CSV is final.json's */
    int cols = 0, col_mrr = -1;
    for (char *p = csv, *end = strchr(csv, '\n'); p && p < end; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL, cols++)
        if (!strncmp(p, "test.X.optimistic.mrr,", 22)) col_mrr = cols;
    ck_assert_int_ge(col_mrr, 0);
    char *f = line2;
    for (int k = 0; k < col_mrr; k++) { /* past field k, quotes and all */
        bool quoted = false;
        for (; *f && (quoted || *f != ','); f++)
            if (*f == '"') quoted = !quoted;
        f++;
    }
    double mrr_csv = strtod(f, NULL);
    char fin[900];
    snprintf(fin, sizeof fin, "%s/res/t", dir);
    char cmd[1200], buf[64] = "";
    snprintf(cmd, sizeof cmd, "python3 -c \"import json,glob; print(json.load(open([p for p in glob.glob('%s/*/final.json')][0]))"
                              "['test']['X']['optimistic']['mrr'])\"", fin);
    FILE *pp = popen(cmd, "r");
    ck_assert_ptr_nonnull(fgets(buf, sizeof buf, pp));
    pclose(pp);
    ck_assert_msg(fabs(mrr_csv - strtod(buf, NULL)) < 1e-12, "csv %g, final.json %s", mrr_csv, buf);
    free(csv);
    snprintf(path, sizeof path, "%s/res/t/runs.jsonl", dir);
    char *jl = NULL;
    ck_assert_msg(tema_read_file(path, &jl, &len, &e) == TEMA_OK, "%s", e.msg);
    int n = 0;
    for (char *save = NULL, *l = strtok_r(jl, "\n", &save); l; l = strtok_r(NULL, "\n", &save), n++) {
        json_object *o = json_tokener_parse(l), *v;
        ck_assert_msg(o && json_object_object_get_ex(o, "values", &v) &&
                          json_object_object_get_ex(v, "model.attention", &v),
                      "%s", l);
        ck_assert(json_object_object_get_ex(o, "final", &v));
        ck_assert_int_eq(v == NULL, n == 1);
        json_object_put(o);
    }
    ck_assert_int_eq(n, 2);
    free(jl);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("results");
    TCase *tc = tcase_create("results");
    tcase_add_test(tc, run_id_stable);
    tcase_add_test(tc, open_creates_folder_and_states);
    tcase_add_test(tc, open_rejects_bad_name);
    tcase_add_test(tc, epochs_append_and_truncate);
    tcase_add_test(tc, final_meta_ranks_files);
    tcase_add_test(tc, tie_warning_threshold);
    tcase_add_test(tc, summary_table);
    tcase_add_test(tc, runs_table_for_pandas);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
