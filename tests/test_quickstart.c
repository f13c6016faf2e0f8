/* The README's first command, shrunk: the quickstart experiment on the built-in
 * synthetic data runs end to end, needs nothing from ../shared/data, stores its results,
 * and a second run of the same experiment is skipped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "testutil.h"
#include "util.h"

static const char *shrink =
    "--set train.epochs=2 --set train.max_steps=6 --set train.eval_every=1 "
    "--set model.encoders.0.dim=16 --set backend.threads=1";

START_TEST(t_quickstart_runs_and_skips_when_finished)
{
    char results[512], args[2048], *out, *err;
    snprintf(results, sizeof results, "%s", tu_tmpdir());
    snprintf(args, sizeof args, "check '%s/experiments/quickstart.yaml'", tu_source_root());
    ck_assert_int_eq(tu_tema(args, &out, &err), 0);
    free(out);
    free(err);

    snprintf(args, sizeof args, "run '%s/experiments/quickstart.yaml' %s --results '%s'", tu_source_root(), shrink,
             results);
    int rc = tu_tema(args, &out, &err);
    ck_assert_msg(rc == 0, "tema run failed (%d):\n%s", rc, err);
    ck_assert_msg(strstr(out, "domain X") && strstr(out, "domain Y") && strstr(out, "mrr"), "%s", out);
    free(out);
    free(err);

    /* exactly one run folder with its final metrics, both domains, every rule */
    char cmd[1024], final[1024] = "";
    snprintf(cmd, sizeof cmd, "ls -d '%s'/quickstart/*/final.json", results);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(fgets(final, sizeof final, p));
    pclose(p);
    final[strcspn(final, "\n")] = '\0';
    json_object *j = json_object_from_file(final);
    ck_assert_msg(j != NULL, "cannot parse %s", final);
    json_object *test, *dom, *rule, *mrr;
    ck_assert(json_object_object_get_ex(j, "test", &test));
    const char *doms[] = {"X", "Y"}, *rules[] = {"optimistic", "pessimistic", "mid"};
    for (int d = 0; d < 2; d++) {
        ck_assert_msg(json_object_object_get_ex(test, doms[d], &dom), "no domain %s in %s", doms[d], final);
        for (int r = 0; r < 3; r++) {
            ck_assert(json_object_object_get_ex(dom, rules[r], &rule));
            ck_assert(json_object_object_get_ex(rule, "mrr", &mrr));
            double v = json_object_get_double(mrr);
            ck_assert_msg(v > 0.0 && v <= 1.0, "%s %s mrr = %g", doms[d], rules[r], v);
        }
    }
    json_object_put(j);

    /* the generated data was kept for the next run */
    snprintf(cmd, sizeof cmd, "ls '%s'/_data/synthetic-*/items.tsv >/dev/null 2>&1", results);
    ck_assert_int_eq(system(cmd), 0);

    /* same experiment again: recognised as finished, nothing retrained */
    ck_assert_int_eq(tu_tema(args, &out, &err), 0);
    ck_assert_msg(strstr(err, "already finished") != NULL, "%s", err);
    ck_assert_msg(strstr(out, "domain X") != NULL, "%s", out);
    free(out);
    free(err);
}
END_TEST

/* Ctrl-C on a single run: exit 130, one line that says where the state is and how to resume,
 * and the same command resumes. */
START_TEST(t_an_interrupted_run_says_how_to_resume)
{
    char results[512], errfile[600], cmd[3000];
    snprintf(results, sizeof results, "%s/interrupted", tu_tmpdir());
    snprintf(errfile, sizeof errfile, "%s/interrupted.err", tu_tmpdir());
    snprintf(cmd, sizeof cmd, "%s/experiments/quickstart.yaml", tu_source_root());
    const char *args[] = {"run", cmd, "--set", "train.epochs=200", "--set", "backend.threads=1", "--results", results, NULL};
    int ws = tu_tema_interrupted(errfile, "epoch 2/", true, args); /* once the second epoch has ended */
    ck_assert_msg(WIFEXITED(ws) && WEXITSTATUS(ws) == 130, "exit status %d", ws);
    char *err = NULL;
    size_t len = 0;
    tema_err e = {0};
    ck_assert_msg(tema_read_file(errfile, &err, &len, &e) == TEMA_OK, "%s", e.msg);
    ck_assert_msg(strstr(err, "tema: interrupted (SIGINT) after epoch ") && strstr(err, "state saved in ") &&
                      strstr(err, "run the same command again"),
                  "no resume line in:\n%s", err);
    free(err);
}
END_TEST

/* More sampled negatives than a domain has other items: a warning on stderr and in
 * final.json; fewer: none. */
START_TEST(t_too_many_negatives_for_a_small_domain_warn)
{
    char dir[600], exp[700], args[2400], *out, *err;
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    snprintf(args, sizeof args, "data synth --out '%s/tiny' --items-x 8 --items-y 9 --users 60", dir);
    ck_assert_int_eq(tu_tema(args, &out, &err), 0);
    free(out);
    free(err);
    snprintf(exp, sizeof exp, "%s/tiny.yaml", dir);
    char text[1200];
    snprintf(text, sizeof text,
             "name: tiny\ndataset: {path: %s/tiny}\nbackend: {plugin: cpu, threads: 1}\n"
             "model: {encoders: [{plugin: id, dim: 8}], attention: {plugin: single, blocks: 1, heads: 1}}\n"
             "loss: {plugin: full_softmax}\ntrain: {epochs: 1, batch_size: 16}\n",
             dir);
    tu_write(exp, text);
    const char *sets[] = {"", "--set eval.negatives=5"};
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof args, "run '%s' %s --results '%s/res%d'", exp, sets[k], dir, k);
        ck_assert_int_eq(tu_tema(args, &out, &err), 0);
        const char *msg = "eval.negatives is 999 but domain X has only 7 other items";
        ck_assert_msg(k == 0 ? strstr(err, msg) != NULL : strstr(err, "eval.negatives is") == NULL, "%s", err);
        free(out);
        free(err);
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "grep -q 'sampled negatives repeat' '%s'/res%d/tiny/*/final.json", dir, k);
        ck_assert_int_eq(system(cmd) == 0, k == 0);
    }
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("quickstart");
    TCase *tc = tcase_create("quickstart");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, t_quickstart_runs_and_skips_when_finished);
    tcase_add_test(tc, t_an_interrupted_run_says_how_to_resume);
    tcase_add_test(tc, t_too_many_negatives_for_a_small_domain_warn);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
