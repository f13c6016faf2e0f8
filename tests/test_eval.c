/* tests/test_eval.c - ranks under the three rules, metric values, accumulation, negatives, and
 * the sampled protocol end to end: pop on a real dataset against the exact expected MRR. */
#include <json-c/json.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "testutil.h"

#define EPS 1e-12

static void check_ranks(const double r[TEMA_RANK_RULES], double opt, double pes, double mid)
{
    ck_assert_double_eq_tol(r[TEMA_RANK_OPTIMISTIC], opt, EPS);
    ck_assert_double_eq_tol(r[TEMA_RANK_PESSIMISTIC], pes, EPS);
    ck_assert_double_eq_tol(r[TEMA_RANK_MID], mid, EPS);
}

START_TEST(rank_distinct_scores)
{
    /* target 0.5; negatives above: 0.9, 0.6; below: 0.1, 0.4, -2 */
    float s[] = {0.5f, 0.9f, 0.1f, 0.6f, 0.4f, -2.0f};
    double r[TEMA_RANK_RULES];
    tema_rank(s, 5, r);
    check_ranks(r, 3, 3, 3);
    float best[] = {10.0f, 1.0f, 2.0f, 3.0f};
    tema_rank(best, 3, r);
    check_ranks(r, 1, 1, 1);
    float worst[] = {-10.0f, 1.0f, 2.0f, 3.0f};
    tema_rank(worst, 3, r);
    check_ranks(r, 4, 4, 4);
    tema_rank(worst, 0, r); /* no negatives: rank 1 whatever the score */
    check_ranks(r, 1, 1, 1);
}
END_TEST

START_TEST(rank_all_equal)
{
    enum { N = 999 };
    float *s = malloc((N + 1) * sizeof *s);
    for (int i = 0; i <= N; i++)
        s[i] = 0.25f;
    double r[TEMA_RANK_RULES];
    tema_rank(s, N, r);
    check_ranks(r, 1, N + 1, (N + 2) / 2.0);
    free(s);
    float four[] = {3.0f, 3.0f, 3.0f, 3.0f, 3.0f};
    tema_rank(four, 4, r);
    check_ranks(r, 1, 5, 3);
}
END_TEST

START_TEST(rank_within_tolerance)
{
    /* Scores within 1e-5 of the target are ties; beyond it they are clearly above/below.
     * Using values around 1.0 where float spacing is ~1.2e-7. */
    float t = 1.0f;
    float s[] = {t, 1.000004f, 0.999996f, 1.00002f, 0.99998f, 1.0f};
    /* greater: 1.00002 ; ties: 1.000004, 0.999996, 1.0 ; below: 0.99998 */
    double r[TEMA_RANK_RULES];
    tema_rank(s, 5, r);
    check_ranks(r, 2, 5, 3.5);
    /* optimistic <= mid <= pessimistic */
    ck_assert(r[TEMA_RANK_OPTIMISTIC] <= r[TEMA_RANK_MID] && r[TEMA_RANK_MID] <= r[TEMA_RANK_PESSIMISTIC]);
}
END_TEST

START_TEST(rank_nan)
{
    float nan_t[] = {NAN, 1.0f, 2.0f};
    double r[TEMA_RANK_RULES];
    tema_rank(nan_t, 2, r);
    check_ranks(r, 3, 3, 3);
    float nan_neg[] = {1.0f, NAN, 0.0f};
    tema_rank(nan_neg, 2, r);
    check_ranks(r, 2, 2, 2);
}
END_TEST

START_TEST(rank_full)
{
    /* Domain of 6 items, target index 2 with score 0.5. Others: 0.7 (greater), 0.5 (tie),
     * 0.1, 0.3 (below), 0.500001 (tie). */
    float s[] = {0.7f, 0.5f, 0.5f, 0.1f, 0.3f, 0.500001f};
    double r[TEMA_RANK_RULES];
    tema_rank_full(s, 6, 2, r);
    check_ranks(r, 2, 4, 3);
    tema_rank_full(s, 6, 0, r);
    check_ranks(r, 1, 1, 1);
    tema_rank_full(s, 6, 3, r);
    check_ranks(r, 6, 6, 6);
    float one[] = {4.0f};
    tema_rank_full(one, 1, 0, r);
    check_ranks(r, 1, 1, 1);
}
END_TEST

START_TEST(metric_values_ranks_1_to_12)
{
    for (int rank = 1; rank <= 12; rank++) {
        double rr = rank;
        ck_assert_double_eq_tol(tema_metric_value("mrr", rr), 1.0 / rank, EPS);
        double ndcg = 1.0 / (log((double)rank + 1.0) / log(2.0));
        ck_assert_double_eq_tol(tema_metric_value("ndcg@5", rr), rank <= 5 ? ndcg : 0.0, EPS);
        ck_assert_double_eq_tol(tema_metric_value("ndcg@10", rr), rank <= 10 ? ndcg : 0.0, EPS);
        ck_assert_double_eq_tol(tema_metric_value("hr@1", rr), rank == 1 ? 1.0 : 0.0, EPS);
        ck_assert_double_eq_tol(tema_metric_value("hr@5", rr), rank <= 5 ? 1.0 : 0.0, EPS);
        ck_assert_double_eq_tol(tema_metric_value("hr@10", rr), rank <= 10 ? 1.0 : 0.0, EPS);
        ck_assert_double_eq_tol(tema_metric_value("hr@12", rr), 1.0, EPS);
    }
    /* hand values */
    ck_assert_double_eq_tol(tema_metric_value("ndcg@10", 1), 1.0, EPS);
    ck_assert_double_eq_tol(tema_metric_value("ndcg@10", 3), 0.5, EPS);
    ck_assert_double_eq_tol(tema_metric_value("ndcg@10", 7), 1.0 / 3.0, EPS);
    ck_assert_double_eq_tol(tema_metric_value("ndcg@10", 2), 0.6309297535714575, 1e-12);
    /* mid ranks can be halves */
    ck_assert_double_eq_tol(tema_metric_value("mrr", 2.5), 0.4, EPS);
    ck_assert_double_eq_tol(tema_metric_value("hr@2", 2.5), 0.0, EPS);
    ck_assert(isnan(tema_metric_value("map@10", 1)));
}
END_TEST

START_TEST(metric_parse_valid)
{
    const char *names[] = {"mrr", "NDCG@10", "hr@5", "ndcg@007", "hr@1"};
    tema_metric_spec spec;
    tema_err err = {0};
    ck_assert_int_eq(tema_metric_parse(names, 5, &spec, &err), TEMA_OK);
    ck_assert_int_eq(spec.n, 5);
    ck_assert_str_eq(spec.name[0], "mrr");
    ck_assert_str_eq(spec.name[1], "ndcg@10");
    ck_assert_str_eq(spec.name[2], "hr@5");
    ck_assert_str_eq(spec.name[3], "ndcg@7");
    ck_assert_int_eq(tema_metric_index(&spec, "ndcg@10"), 1);
    ck_assert_int_eq(tema_metric_index(&spec, "HR@1"), 4);
    ck_assert_int_eq(tema_metric_index(&spec, "hr@10"), -1);
}
END_TEST

START_TEST(metric_parse_errors)
{
    const char *bad[] = {"map", "ndcg@0", "ndcg@", "hr@-3", "ndcg@5x", "ndcg10", "", "mrr@5", "hr@ 5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tema_metric_spec spec;
        tema_err err = {0};
        const char *names[] = {"mrr", bad[i]};
        ck_assert_int_eq(tema_metric_parse(names, 2, &spec, &err), TEMA_EINVAL);
        ck_assert_ptr_nonnull(strstr(err.msg, "metrics[1]"));
        ck_assert_ptr_nonnull(strstr(err.msg, "ndcg@K"));
        ck_assert_ptr_nonnull(strstr(err.msg, "hr@K"));
        ck_assert_ptr_nonnull(strstr(err.msg, "mrr"));
    }
    tema_metric_spec spec;
    tema_err err = {0};
    const char *dup[] = {"ndcg@10", "NDCG@10"};
    ck_assert_int_eq(tema_metric_parse(dup, 2, &spec, &err), TEMA_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "twice"));
    ck_assert_int_eq(tema_metric_parse(dup, 0, &spec, &err), TEMA_EINVAL);
    const char *many[TEMA_MAX_METRICS + 1];
    char buf[TEMA_MAX_METRICS + 1][16];
    for (int i = 0; i <= TEMA_MAX_METRICS; i++) {
        snprintf(buf[i], sizeof buf[i], "hr@%d", i + 1);
        many[i] = buf[i];
    }
    ck_assert_int_eq(tema_metric_parse(many, TEMA_MAX_METRICS, &spec, &err), TEMA_OK);
    ck_assert_int_eq(tema_metric_parse(many, TEMA_MAX_METRICS + 1, &spec, &err), TEMA_EINVAL);
}
END_TEST

START_TEST(acc_per_domain)
{
    const char *names[] = {"mrr", "ndcg@2", "hr@1"};
    tema_metric_spec spec;
    tema_err err = {0};
    ck_assert_int_eq(tema_metric_parse(names, 3, &spec, &err), TEMA_OK);
    tema_metric_acc a;
    tema_metric_acc_init(&a, &spec);
    ck_assert(isnan(tema_metric_acc_mean(&a, 0, TEMA_RANK_OPTIMISTIC, 0)));
    /* X: ranks (opt, pes, mid) = (1,1,1), (2,4,3); Y: (4,4,4) */
    double x1[] = {1, 1, 1}, x2[] = {2, 4, 3}, y1[] = {4, 4, 4};
    tema_metric_acc_add(&a, 0, x1);
    tema_metric_acc_add(&a, 0, x2);
    tema_metric_acc_add(&a, 1, y1);
    tema_metric_acc_add(&a, 7, y1); /* ignored */
    ck_assert_int_eq(a.count[0], 2);
    ck_assert_int_eq(a.count[1], 1);
    ck_assert_double_eq_tol(tema_metric_acc_mean(&a, 0, TEMA_RANK_OPTIMISTIC, 0), (1 + 0.5) / 2, EPS);
    ck_assert_double_eq_tol(tema_metric_acc_mean(&a, 0, TEMA_RANK_PESSIMISTIC, 0), (1 + 0.25) / 2, EPS);
    ck_assert_double_eq_tol(tema_metric_acc_mean(&a, 0, TEMA_RANK_MID, 0), (1 + 1.0 / 3) / 2, EPS);
    /* ndcg@2: rank 1 -> 1, rank 2 -> 1/log2(3), rank 3/4 -> 0 */
    ck_assert_double_eq_tol(tema_metric_acc_mean(&a, 0, TEMA_RANK_OPTIMISTIC, 1), (1 + 1 / log2(3.0)) / 2, EPS);
    ck_assert_double_eq_tol(tema_metric_acc_mean(&a, 0, TEMA_RANK_PESSIMISTIC, 1), 0.5, EPS);
    ck_assert_double_eq_tol(tema_metric_acc_mean(&a, 0, TEMA_RANK_OPTIMISTIC, 2), 0.5, EPS);
    ck_assert_double_eq_tol(tema_metric_acc_mean(&a, 1, TEMA_RANK_OPTIMISTIC, 0), 0.25, EPS);
    ck_assert_double_eq_tol(tema_metric_acc_mean(&a, 1, TEMA_RANK_MID, 1), 0.0, EPS);
    ck_assert(isnan(tema_metric_acc_mean(&a, 1, TEMA_RANK_MID, 3)));
    ck_assert(isnan(tema_metric_acc_mean(&a, 2, TEMA_RANK_MID, 0)));
}
END_TEST

/* A realistic evaluation set: targets in both domains, including domain edges. */
static void make_targets(int32_t *t, int n, int32_t n_x, int32_t n_y)
{
    for (int i = 0; i < n; i++)
        t[i] = (int32_t)((i * 7919) % (n_x + n_y));
    t[0] = 0;
    t[1] = n_x - 1;
    t[2] = n_x;
    t[3] = n_x + n_y - 1;
}

START_TEST(negatives_domain_and_target)
{
    enum { CASES = 200, NEG = 999 };
    const int32_t n_x = 37, n_y = 53;
    int32_t t[CASES];
    make_targets(t, CASES, n_x, n_y);
    int32_t *neg = malloc(sizeof(int32_t) * CASES * NEG);
    tema_draw_negatives(2040, CASES, t, n_x, n_y, NEG, neg);
    for (int i = 0; i < CASES; i++) {
        int32_t lo = t[i] < n_x ? 0 : n_x, hi = t[i] < n_x ? n_x : n_x + n_y;
        char *seen = calloc((size_t)(n_x + n_y), 1);
        for (int k = 0; k < NEG; k++) {
            int32_t v = neg[i * NEG + k];
            ck_assert_int_ne(v, t[i]);
            ck_assert_int_ge(v, lo);
            ck_assert_int_lt(v, hi);
            seen[v] = 1;
        }
        /* With replacement and 999 draws from <= 52 ids, every other id shows up. */
        for (int32_t v = lo; v < hi; v++)
            ck_assert_int_eq(seen[v], v != t[i]);
        free(seen);
    }
    free(neg);
}
END_TEST

START_TEST(negatives_uniform)
{
    /* One domain of 10 items, target 4: each of the 9 others ~ 1/9 of 90000 draws. */
    enum { NEG = 90000 };
    int32_t t[1] = {4};
    int32_t *neg = malloc(sizeof(int32_t) * NEG);
    tema_draw_negatives(7, 1, t, 10, 5, NEG, neg);
    int count[10] = {0};
    for (int k = 0; k < NEG; k++)
        count[neg[k]]++;
    ck_assert_int_eq(count[4], 0);
    for (int v = 0; v < 10; v++)
        if (v != 4)
            ck_assert_msg(abs(count[v] - 10000) < 600, "id %d drawn %d times of %d", v, count[v], NEG);
    free(neg);
}
END_TEST

START_TEST(negatives_seeded)
{
    enum { CASES = 50, NEG = 100 };
    int32_t t[CASES];
    make_targets(t, CASES, 1000, 800);
    int32_t *a = malloc(sizeof(int32_t) * CASES * NEG), *b = malloc(sizeof(int32_t) * CASES * NEG),
            *c = malloc(sizeof(int32_t) * CASES * NEG);
    tema_draw_negatives(2040, CASES, t, 1000, 800, NEG, a);
    tema_draw_negatives(2040, CASES, t, 1000, 800, NEG, b);
    tema_draw_negatives(2041, CASES, t, 1000, 800, NEG, c);
    ck_assert_mem_eq(a, b, sizeof(int32_t) * CASES * NEG);
    int same = 0;
    for (int i = 0; i < CASES * NEG; i++)
        same += a[i] == c[i];
    /* Independent draws agree with probability ~1/1000 per slot. */
    ck_assert_int_lt(same, CASES * NEG / 50);
    free(a);
    free(b);
    free(c);
}
END_TEST

START_TEST(negatives_degenerate)
{
    int32_t t[3] = {0, 1, 99};
    int32_t neg[3 * 4];
    /* X has a single item (the target itself); id 99 is outside both domains. */
    tema_draw_negatives(1, 3, t, 1, 5, 4, neg);
    for (int k = 0; k < 4; k++) {
        ck_assert_int_eq(neg[k], -1);
        ck_assert_int_ge(neg[4 + k], 2);
        ck_assert_int_lt(neg[4 + k], 6);
        ck_assert_int_eq(neg[8 + k], -1);
    }
}
END_TEST

/* ---- the sampled protocol end to end, against an exact expectation ---- */

/* Items of one C2DSR data line in the order the loader reads them: stable-sorted by time.
 * Returns the number of entries (at most cap). */
typedef struct {
    long ts;
    int item;
} entry;

static int cmp_ts(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    return x->ts < y->ts ? -1 : x->ts > y->ts;
}

static int line_items(char *line, entry *e, int cap)
{
    int n = 0;
    char *save = NULL;
    strtok_r(line, "\t\n", &save); /* user */
    strtok_r(NULL, "\t\n", &save); /* seqid */
    for (char *f = strtok_r(NULL, "\t\n", &save); f && n < cap; f = strtok_r(NULL, "\t\n", &save)) {
        e[n].item = atoi(f);
        const char *bar = strchr(f, '|');
        e[n].ts = bar ? atol(bar + 1) : 0;
        n++;
    }
    /* qsort is not stable: sort (ts, position) pairs by packing the position into the key */
    for (int i = 0; i < n; i++) e[i].ts = e[i].ts * 1024 + i;
    qsort(e, (size_t)n, sizeof *e, cmp_ts);
    return n;
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s", path);
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

/* E[1 / (1 + X)], E[1 / (1 + X)^2] and P(X <= 9) for X ~ Binomial(K, G / N): the target's
 * reciprocal rank and hit@10 when K negatives are drawn with replacement (as C2DSR and
 * tema_draw_negatives do) from the N other items of its domain, G of which outrank it. */
static void rank_moments(int N, int G, int K, double m[3])
{
    m[0] = m[1] = m[2] = 0;
    if (G == 0) {
        m[0] = m[1] = m[2] = 1;
        return;
    }
    double p = (double)G / N;
    for (int x = 0; x <= K; x++) {
        double lp = lgamma(K + 1.0) - lgamma(x + 1.0) - lgamma(K - x + 1.0) + x * log(p) +
                    (G == N ? (x == K ? 0 : -INFINITY) : (K - x) * log1p(-p));
        double px = exp(lp);
        m[0] += px / (1 + x);
        m[1] += px / ((1.0 + x) * (1 + x));
        if (x <= 9) m[2] += px;
    }
}

/* `pop` scores items by their training count, so the rank of each test target under 999
 * uniform negatives has a known distribution: this checks the negative sampler (uniform over
 * the target's domain, target excluded), the optimistic and pessimistic rules and the
 * metrics, on a real dataset, against an independent computation of the expected MRR and
 * HR@10. The measured values must lie within 4 standard errors of the draws. Ranked against
 * every item (eval.protocol: full) the MRR is known exactly. */
START_TEST(pop_matches_the_exact_expectation_on_real_data)
{
    TU_REQUIRE_DATA("food-kitchen-c2dsr");
    const char *data = tu_data_path("food-kitchen-c2dsr");
    char path[4200], line[65536];
    snprintf(path, sizeof path, "%s/Alist.txt", data);
    int nx = count_lines(path);
    snprintf(path, sizeof path, "%s/Blist.txt", data);
    int ny = count_lines(path);
    long *count = calloc((size_t)(nx + ny), sizeof *count);
    entry e[512];
    snprintf(path, sizeof path, "%s/traindata_new.txt", data);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof line, f)) {
        int n = line_items(line, e, 512);
        for (int i = 0; i < n; i++) count[e[i].item]++;
    }
    fclose(f);

    /* per domain and rule: sums of E[1/rank], Var[1/rank], P(hit@10) over the test cases */
    double sum[2][2][3] = {{{0}}};
    double full_mrr[2][2] = {{0}}; /* eval.protocol: full ranks against every other item: exact */
    int cases[2] = {0, 0};
    snprintf(path, sizeof path, "%s/testdata_new.txt", data);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof line, f)) {
        int n = line_items(line, e, 512);
        ck_assert_int_ge(n, 2);
        int t = e[n - 1].item, d = t >= nx;
        int lo = d ? nx : 0, hi = d ? nx + ny : nx;
        int above = 0, at_least = 0;
        for (int i = lo; i < hi; i++) {
            above += count[i] > count[t];
            at_least += count[i] >= count[t];
        }
        int g[2] = {above, at_least - 1}; /* optimistic: ties go to the target; pessimistic: against */
        for (int r = 0; r < 2; r++) {
            double m[3];
            rank_moments(hi - lo - 1, g[r], 999, m);
            sum[d][r][0] += m[0];
            sum[d][r][1] += m[1] - m[0] * m[0];
            sum[d][r][2] += m[2];
            full_mrr[d][r] += 1.0 / (1 + g[r]);
        }
        cases[d]++;
    }
    fclose(f);
    free(count);

    /* four seeds, four independent draws of the negatives: the mean halves the standard error */
    enum { SEEDS = 4 };
    double got[2][2][2] = {{{0}}}; /* domain, rule, (mrr, hr@10): mean over the seeds */
    const char *dom[2] = {"X", "Y"}, *rule[2] = {"optimistic", "pessimistic"};
    for (int seed = 1; seed <= SEEDS; seed++) {
        const char *root = tu_tmpdir();
        char args[9000], *out, *err;
        snprintf(args, sizeof args,
                 "run '%s/experiments/pop-food-kitchen.yaml' --set dataset.path='%s' --set backend.threads=1 "
                 "--set train.seed=%d --results '%s/results'",
                 tu_source_root(), data, seed, root);
        int rc = tu_tema(args, &out, &err);
        ck_assert_msg(rc == 0, "%s", err);
        free(out);
        free(err);
        char results[600];
        snprintf(results, sizeof results, "%s/results", root);
        struct json_object *fin = tu_json_load(tu_run_dir(results, "pop-food-kitchen"), "final.json");
        for (int d = 0; d < 2; d++) {
            char key[128];
            snprintf(key, sizeof key, "test.%s.cases", dom[d]);
            ck_assert_int_eq(json_object_get_int(tu_json_get(fin, key)), cases[d]);
            for (int r = 0; r < 2; r++) {
                snprintf(key, sizeof key, "test.%s.%s.mrr", dom[d], rule[r]);
                got[d][r][0] += json_object_get_double(tu_json_get(fin, key)) / SEEDS;
                snprintf(key, sizeof key, "test.%s.%s.hr@10", dom[d], rule[r]);
                got[d][r][1] += json_object_get_double(tu_json_get(fin, key)) / SEEDS;
            }
        }
        json_object_put(fin);
    }
    {
        const char *root = tu_tmpdir();
        char args[9000], *out, *err, results[600];
        snprintf(args, sizeof args,
                 "run '%s/experiments/pop-food-kitchen.yaml' --set dataset.path='%s' --set backend.threads=1 "
                 "--set eval.protocol=full --results '%s/results'",
                 tu_source_root(), data, root);
        int rc = tu_tema(args, &out, &err);
        ck_assert_msg(rc == 0, "%s", err);
        free(out);
        free(err);
        snprintf(results, sizeof results, "%s/results", root);
        struct json_object *fin = tu_json_load(tu_run_dir(results, "pop-food-kitchen"), "final.json");
        for (int d = 0; d < 2; d++)
            for (int r = 0; r < 2; r++) {
                char key[128];
                snprintf(key, sizeof key, "test.%s.%s.mrr", dom[d], rule[r]);
                double mrr = json_object_get_double(tu_json_get(fin, key));
                ck_assert_msg(fabs(mrr - full_mrr[d][r] / cases[d]) < 1e-9, "full ranking, %s %s MRR %.9f, expected %.9f",
                              dom[d], rule[r], mrr, full_mrr[d][r] / cases[d]);
            }
        json_object_put(fin);
    }
    for (int d = 0; d < 2; d++)
        for (int r = 0; r < 2; r++) {
            double want_mrr = sum[d][r][0] / cases[d], se_mrr = sqrt(sum[d][r][1] / SEEDS) / cases[d];
            double want_hr = sum[d][r][2] / cases[d];
            double se_hr = sqrt(want_hr * (1 - want_hr) / cases[d] / SEEDS); /* an upper bound */
            fprintf(stderr, "pop %s %s over %d seeds: mrr %.4f (expected %.4f +- %.4f), hr@10 %.4f (expected %.4f +- %.4f)\n",
                    dom[d], rule[r], SEEDS, got[d][r][0], want_mrr, se_mrr, got[d][r][1], want_hr, se_hr);
            ck_assert_msg(fabs(got[d][r][0] - want_mrr) < 4 * se_mrr, "%s %s MRR %.5f, expected %.5f (standard error %.5f)",
                          dom[d], rule[r], got[d][r][0], want_mrr, se_mrr);
            ck_assert_msg(fabs(got[d][r][1] - want_hr) < 4 * se_hr, "%s %s HR@10 %.5f, expected %.5f (standard error %.5f)",
                          dom[d], rule[r], got[d][r][1], want_hr, se_hr);
        }
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("eval");
    TCase *tc = tcase_create("eval");
    tcase_add_test(tc, rank_distinct_scores);
    tcase_add_test(tc, rank_all_equal);
    tcase_add_test(tc, rank_within_tolerance);
    tcase_add_test(tc, rank_nan);
    tcase_add_test(tc, rank_full);
    tcase_add_test(tc, metric_values_ranks_1_to_12);
    tcase_add_test(tc, metric_parse_valid);
    tcase_add_test(tc, metric_parse_errors);
    tcase_add_test(tc, acc_per_domain);
    tcase_add_test(tc, negatives_domain_and_target);
    tcase_add_test(tc, negatives_uniform);
    tcase_add_test(tc, negatives_seeded);
    tcase_add_test(tc, negatives_degenerate);
    suite_add_tcase(s, tc);
    TCase *real = tcase_create("real");
    tcase_set_timeout(real, 300);
    tcase_add_test(real, pop_matches_the_exact_expectation_on_real_data);
    suite_add_tcase(s, real);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
