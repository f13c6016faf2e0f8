/* tests/test_export.c - `tema export` and `tema recommend` on a trained run: the files and their
 * shapes, that exported user states and item tables reproduce the model's scores, that a
 * recommendation list ranks each evaluation target where the evaluation (ranks.tsv) ranked it,
 * that seen items are left out, and the errors a user meets (no checkpoint, unknown user). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tema/npy.h"
#include "testutil.h"

#define N_X 60
#define N_Y 80

static char run_dir[4300], data_dir[600];

/* One small trained run (full-ranking protocol, one stream), shared by the cases. */
static void train_once(void)
{
    if (run_dir[0]) return;
    const char *tmp = tu_tmpdir();
    char exp[700], res[700], args[2400];
    snprintf(data_dir, sizeof data_dir, "%s/data", tmp);
    snprintf(args, sizeof args, "data synth --out '%s' --seed 3 --users 150 --items-x %d --items-y %d", data_dir, N_X,
             N_Y);
    char *out, *err;
    ck_assert_msg(tu_tema(args, &out, &err) == 0, "%s", err);
    free(out);
    free(err);
    snprintf(exp, sizeof exp, "%s/exp.yaml", tmp);
    snprintf(res, sizeof res, "%s/results", tmp);
    char yaml[1600];
    snprintf(yaml, sizeof yaml,
             "name: ex\ndataset: {path: '%s', max_len: 10}\nbackend: {plugin: cpu, threads: 1}\n"
             "model:\n  encoders: [{plugin: id, dim: 16}]\n  attention: {plugin: single, blocks: 1, heads: 1}\n"
             "loss: {plugin: full_softmax}\ntrain: {epochs: 2, batch_size: 64, eval_every: 1, seed: 5}\n"
             "eval: {protocol: full}\n",
             data_dir);
    tu_write(exp, yaml);
    snprintf(args, sizeof args, "run '%s' --results '%s'", exp, res);
    ck_assert_msg(tu_tema(args, &out, &err) == 0, "%s", err);
    free(out);
    free(err);
    snprintf(run_dir, sizeof run_dir, "%s", tu_run_dir(res, "ex"));
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void load(const char *dir, const char *name, int64_t rows, tema_npy_matrix *m)
{
    char path[4600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    tema_err e = {0};
    ck_assert_msg(tema_npy_read(path, rows, name, m, &e) == TEMA_OK, "%s", e.msg);
}

START_TEST(export_writes_tables_that_reproduce_the_scores)
{
    train_once();
    char dir[4400], args[9000];
    snprintf(dir, sizeof dir, "%s/exported", tu_tmpdir());
    snprintf(args, sizeof args, "export '%s' --out '%s'", run_dir, dir);
    char *out, *err;
    ck_assert_msg(tu_tema(args, &out, &err) == 0, "%s", err);
    free(out);
    free(err);
    char path[4600];
    snprintf(path, sizeof path, "%s/users.tsv", dir);
    char *users = read_all(path);
    const int n_users = count_lines(users) - 1;
    ck_assert_int_gt(n_users, 5);
    snprintf(path, sizeof path, "%s/items.tsv", dir);
    char *items = read_all(path);
    ck_assert_int_eq(count_lines(items), N_X + N_Y + 1);
    tema_npy_matrix enc, it, us;
    load(dir, "items-0-id.npy", N_X + N_Y, &enc);
    load(dir, "stream-0-items.npy", N_X + N_Y, &it);
    load(dir, "stream-0-users.npy", n_users, &us);
    ck_assert_int_eq(enc.cols, 16);
    ck_assert_int_eq(us.cols, it.cols);

    /* user 0's top-3 in its target domain from the exported tables = `tema recommend` */
    char uid[32], dom[8];
    ck_assert_int_eq(sscanf(strchr(users, '\n') + 1, "%*d\t%31s\t%7s", uid, dom), 2);
    const int lo = dom[0] == 'X' ? 0 : N_X, nd = dom[0] == 'X' ? N_X : N_Y;
    int best[3] = {-1, -1, -1};
    double bs[3] = {-INFINITY, -INFINITY, -INFINITY};
    for (int j = 0; j < nd; j++) {
        double s = 0;
        for (int64_t c = 0; c < us.cols; c++) s += (double)us.data[c] * it.data[(int64_t)(lo + j) * it.cols + c];
        for (int q = 0; q < 3; q++)
            if (s > bs[q]) {
                for (int r = 2; r > q; r--) bs[r] = bs[r - 1], best[r] = best[r - 1];
                bs[q] = s, best[q] = lo + j;
                break;
            }
    }
    char ufile[4500];
    snprintf(ufile, sizeof ufile, "%s/users.txt", tu_tmpdir());
    char line[64];
    snprintf(line, sizeof line, "%s\n", uid);
    tu_write(ufile, line);
    snprintf(args, sizeof args, "recommend '%s' --users '%s' --k 3 --keep-seen", run_dir, ufile);
    ck_assert_msg(tu_tema(args, &out, &err) == 0, "%s", err);
    const char *row = strchr(out, '\n') + 1;
    for (int q = 0; q < 3; q++) {
        int item, rank;
        double score;
        ck_assert_int_eq(sscanf(row, "%*d\t%*s\t%d\t%d\t%*s\t%lf", &rank, &item, &score), 3);
        ck_assert_int_eq(rank, q + 1);
        ck_assert_msg(item == best[q], "rank %d: recommend says item %d, the exported tables say %d", q + 1, item,
                      best[q]);
        ck_assert_double_eq_tol(score, bs[q], 1e-4);
        row = strchr(row, '\n') + 1;
    }
    free(out);
    free(err);
    tema_npy_free(&enc);
    tema_npy_free(&it);
    tema_npy_free(&us);
    free(users);
    free(items);
}
END_TEST

/* The position of each test target in its user's full list (seen items kept) is the rank the
 * full-ranking evaluation wrote to ranks.tsv. */
START_TEST(recommend_ranks_targets_as_the_evaluation_did)
{
    train_once();
    char args[9000];
    snprintf(args, sizeof args, "recommend '%s' --k %d --keep-seen", run_dir, N_Y);
    char *out, *err;
    ck_assert_msg(tu_tema(args, &out, &err) == 0, "%s", err);
    char path[4400];
    snprintf(path, sizeof path, "%s/ranks.tsv", run_dir);
    char *ranks = read_all(path);
    int checked = 0;
    for (const char *r = strchr(ranks, '\n') + 1; *r; r = strchr(r, '\n') + 1) {
        int user, target;
        char dom[4];
        double opt, pes;
        ck_assert_int_eq(sscanf(r, "%d\t%3s\t%d\t%lf\t%lf", &user, dom, &target, &opt, &pes), 5);
        if (opt != pes) continue; /* ties: the list order among equal scores is not the evaluation's business */
        char key[64];
        snprintf(key, sizeof key, "\n%d\t%s\t", user, dom);
        int pos = -1;
        for (const char *l = strstr(out, key); l && pos < 0; l = strstr(l + 1, key)) {
            int rank, item;
            if (sscanf(l + 1, "%*d\t%*s\t%d\t%d", &rank, &item) == 2 && item == target) pos = rank;
        }
        ck_assert_msg(pos == (int)opt, "user %d: target %d at position %d of the list, rank %g in ranks.tsv", user,
                      target, pos, opt);
        checked++;
    }
    ck_assert_int_gt(checked, 5);
    free(ranks);
    free(out);
    free(err);
}
END_TEST

START_TEST(recommend_leaves_out_what_a_user_has_seen)
{
    train_once();
    char args[9000];
    snprintf(args, sizeof args, "recommend '%s' --k 5 --domain y", run_dir);
    char *out, *err;
    ck_assert_msg(tu_tema(args, &out, &err) == 0, "%s", err);
    /* each user's sequence from the test file of the data: "user item ..." lines */
    char path[700];
    snprintf(path, sizeof path, "%s/testdata_new.txt", data_dir);
    char *test = read_all(path);
    int users = 0, seen_somewhere = 0;
    for (const char *r = strchr(out, '\n') + 1; *r; r = strchr(r, '\n') + 1) {
        int user, rank, item;
        char dom[4];
        double score;
        ck_assert_int_eq(sscanf(r, "%d\t%3s\t%d\t%d\t%*s\t%lf", &user, dom, &rank, &item, &score), 5);
        ck_assert_str_eq(dom, "Y");
        ck_assert(item >= N_X && item < N_X + N_Y);
        users += rank == 1;
        /* the user's line: "user<TAB>user<TAB>item|ts|date|<TAB>..."; its latest entry is the target */
        char key[32];
        snprintf(key, sizeof key, "%d\t%d\t", user, user);
        const char *l = strncmp(test, key, strlen(key)) ? strstr(test, key + 0) : test;
        while (l && l != test && l[-1] != '\n') l = strstr(l + 1, key);
        ck_assert_msg(l != NULL, "user %d not in the test file", user);
        int hist[64], n = 0, target_at = -1;
        long long ts[64], best_ts = -1;
        for (const char *e = l + strlen(key); *e && *e != '\n' && n < 64;) {
            ck_assert_int_eq(sscanf(e, "%d|%lld|", &hist[n], &ts[n]), 2);
            if (ts[n] >= best_ts) best_ts = ts[n], target_at = n;
            n++;
            e += strcspn(e, "\t\n");
            if (*e == '\t') e++;
        }
        for (int q = 0; q < n; q++) {
            ck_assert_msg(q == target_at || hist[q] != item, "user %d: recommended item %d is in their sequence", user,
                          item);
            seen_somewhere += q != target_at && hist[q] >= N_X;
        }
    }
    ck_assert_int_gt(seen_somewhere, 0); /* the check had something to leave out */
    ck_assert_int_gt(users, 5);
    ck_assert_int_eq(count_lines(out) - 1, 5 * users);
    free(test);
    free(out);
    free(err);
    /* with --keep-seen: as many rows, seen items allowed back in */
    snprintf(args, sizeof args, "recommend '%s' --k 5 --domain y --keep-seen", run_dir);
    char *kept, *err2;
    ck_assert_int_eq(tu_tema(args, &kept, &err2), 0);
    ck_assert_int_eq(count_lines(kept), 5 * users + 1);
    free(kept);
    free(err2);
}
END_TEST

START_TEST(errors_name_what_is_wrong)
{
    train_once();
    char args[9000], ufile[700];
    snprintf(ufile, sizeof ufile, "%s/users.txt", tu_tmpdir());
    tu_write(ufile, "# users\n999999\n");
    snprintf(args, sizeof args, "recommend '%s' --users '%s'", run_dir, ufile);
    char *out, *err;
    ck_assert_int_eq(tu_tema(args, &out, &err), 1);
    ck_assert_msg(strstr(err, "users.txt:2: user 999999 has no line in testdata_new.txt"), "%s", err);
    free(out);
    free(err);
    tu_write(ufile, "12 x\n");
    ck_assert_int_eq(tu_tema(args, &out, &err), 1);
    ck_assert_msg(strstr(err, "users.txt:1: '12 x' is not a user id"), "%s", err);
    free(out);
    free(err);
    snprintf(args, sizeof args, "export '%s' --checkpoint final", run_dir);
    ck_assert_int_eq(tu_tema(args, &out, &err), 1);
    ck_assert_msg(strstr(err, "use best or last"), "%s", err);
    free(out);
    free(err);
    snprintf(args, sizeof args, "export '%s/nowhere'", tu_tmpdir());
    ck_assert_int_eq(tu_tema(args, &out, &err), 1);
    ck_assert_msg(strstr(err, "nowhere") && strstr(err, "hint: give a run folder"), "%s", err);
    free(out);
    free(err);
    ck_assert_int_eq(tu_tema("recommend", &out, &err), 2);
    ck_assert_msg(strstr(err, "missing the run folder"), "%s", err);
    free(out);
    free(err);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("export");
    TCase *tc = tcase_create("export");
    tcase_set_timeout(tc, 300);
    /* one process for the cases, so the run trains once */
    tcase_add_test(tc, export_writes_tables_that_reproduce_the_scores);
    tcase_add_test(tc, recommend_ranks_targets_as_the_evaluation_did);
    tcase_add_test(tc, recommend_leaves_out_what_a_user_has_seen);
    tcase_add_test(tc, errors_name_what_is_wrong);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
