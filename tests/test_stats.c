/* tests/test_stats.c - mean/std, incomplete beta, Student t tails, paired t-test and
 * Wilcoxon signed-rank test against scipy.
 *
 * Every reference number below was printed by this script (Python 3.11, numpy 2, scipy 1.17.1):
 *
 *   import numpy as np
 *   from scipy import stats, special
 *   def seq(n, m1, k1, m2, k2):   # ranks-like values, reproduced in C by the same formula
 *       i = np.arange(n)
 *       return 1.0 / (1 + (i * k1 % m1)), 1.0 / (1 + (i * k2 % m2))
 *   def show(tag, r, extra=""):
 *       print(f"{tag}: stat={r.statistic!r} p={r.pvalue!r} {extra}")
 *   a = np.array([0.31, 0.27, 0.35, 0.22, 0.30, 0.29]); b = np.array([0.28, 0.27, 0.30, 0.25, 0.26, 0.24])
 *   print("mean", a.mean(), "std", a.std(ddof=1))
 *   show("ttest6", stats.ttest_rel(a, b))
 *   x, y = seq(2000, 101, 37, 97, 53); show("ttest2000", stats.ttest_rel(x, y))
 *   show("wil2000", stats.wilcoxon(x, y), f"zeros={(x==y).sum()}")
 *   show("wil2000c", stats.wilcoxon(x, y, correction=True))
 *   x = np.array([1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30, 0.9])
 *   y = np.array([0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29, 1.2])
 *   show("wil10exact", stats.wilcoxon(x, y))
 *   d = np.array([1, -2, 2, 0, 3, -3, 3, 4, 0, 5, -1, 6], float)  # ties and zeros, n = 12
 *   show("wil12perm", stats.wilcoxon(d, np.zeros(12)))
 *   i = np.arange(40); d = (i * 7919 % 83) - 41.5      # 40 distinct nonzero values
 *   show("wil40exact", stats.wilcoxon(d, np.zeros(40)))
 *   i = np.arange(30); d = (i * 13 % 11) - 4.0           # ties and zeros, n = 30
 *   show("wil30asym", stats.wilcoxon(d, np.zeros(30)))
 *   show("wil30asymc", stats.wilcoxon(d, np.zeros(30), correction=True))
 *   for a_, b_, x_ in [(2.5, 0.5, 0.3), (10, 0.5, 0.999), (7500, 0.5, 0.9999), (0.5, 3, 1e-4)]:
 *       print("betainc", a_, b_, x_, repr(special.betainc(a_, b_, x_)))
 *   for t, df in [(12.0, 5), (0.5, 20000), (-2.1, 3), (8.0, 15000)]:
 *       print("t2", t, df, repr(2 * stats.t.sf(abs(t), df)))
 *   print("same diff", stats.ttest_rel([1, 2, 3.0], [0, 1, 2.0]))
 *   print(stats.ttest_rel([1.0, 2, 3], [1.0, 2, 3]), stats.wilcoxon([1.0, 2, 3], [1.0, 2, 3]))
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "stats.h"
#include "testutil.h"

/* |got - want| <= rel * |want| (+ a tiny absolute slack for values near 0) */
#define ASSERT_REL(got, want, rel)                                                                  \
    do {                                                                                            \
        double g_ = (got), w_ = (want);                                                             \
        ck_assert_msg(fabs(g_ - w_) <= (rel) * fabs(w_) + 1e-300, "%s = %.17g, want %.17g", #got, g_, \
                      w_);                                                                          \
    } while (0)

static void seq(int n, int m1, int k1, int m2, int k2, double *x, double *y)
{
    for (int i = 0; i < n; i++) {
        x[i] = 1.0 / (1 + (i * k1 % m1));
        y[i] = 1.0 / (1 + (i * k2 % m2));
    }
}

static const double a6[] = {0.31, 0.27, 0.35, 0.22, 0.30, 0.29};
static const double b6[] = {0.28, 0.27, 0.30, 0.25, 0.26, 0.24};

START_TEST(mean_and_std)
{
    ASSERT_REL(tema_stats_mean(a6, 6), 0.29000000000000004, 1e-15);
    ASSERT_REL(tema_stats_std(a6, 6), 0.043358966777357594, 1e-13);
    double one = 0.5;
    ck_assert(isnan(tema_stats_std(&one, 1)));
    ck_assert(isnan(tema_stats_mean(NULL, 0)));
    const double same[] = {0.1234, 0.1234, 0.1234};
    ck_assert(tema_stats_std(same, 3) == 0);
}
END_TEST

START_TEST(incomplete_beta_and_t)
{
    ASSERT_REL(tema_stats_betainc(2.5, 0.5, 0.3), 0.018927124071945658, 1e-12);
    ASSERT_REL(tema_stats_betainc(10, 0.5, 0.999), 0.8888967091248604, 1e-12);
    ASSERT_REL(tema_stats_betainc(7500, 0.5, 0.9999), 0.22066751472483528, 1e-9);
    ASSERT_REL(tema_stats_betainc(0.5, 3, 1e-4), 0.018748750037500005, 1e-12);
    ck_assert(tema_stats_betainc(2, 3, 0) == 0);
    ck_assert(tema_stats_betainc(2, 3, 1) == 1);
    ck_assert(isnan(tema_stats_betainc(2, 3, 1.5)));
    ck_assert(isnan(tema_stats_betainc(-1, 3, 0.5)));

    ASSERT_REL(tema_stats_t_two_sided(12.0, 5), 7.089492517161522e-05, 1e-10);
    ASSERT_REL(tema_stats_t_two_sided(0.5, 20000), 0.6170805784301557, 1e-9);
    ASSERT_REL(tema_stats_t_two_sided(-2.1, 3), 0.1265652025496846, 1e-12);
    ASSERT_REL(tema_stats_t_two_sided(8.0, 15000), 1.3346559001984899e-15, 1e-8);
    ck_assert(tema_stats_t_two_sided(0, 7) == 1);
    ck_assert(tema_stats_t_two_sided(INFINITY, 7) == 0);
    ASSERT_REL(tema_stats_normal_sf(1.959963984540054), 0.025, 1e-12);
}
END_TEST

START_TEST(ttest_paired)
{
    tema_ttest t;
    tema_stats_ttest_paired(a6, b6, 6, &t);
    ck_assert_int_eq(t.n, 6);
    ck_assert(t.df == 5);
    ASSERT_REL(t.t, 1.783765170031689, 1e-12);
    ASSERT_REL(t.p, 0.13454092001420453, 1e-11);
    ASSERT_REL(t.mean_diff, (0.03 + 0 + 0.05 - 0.03 + 0.04 + 0.05) / 6, 1e-12);

    double x[2000], y[2000];
    seq(2000, 101, 37, 97, 53, x, y);
    tema_stats_ttest_paired(x, y, 2000, &t);
    ASSERT_REL(t.t, -0.5357919177755467, 1e-10);
    ASSERT_REL(t.p, 0.5921619752604531, 1e-10);

    /* scipy: constant nonzero differences give t = inf, p = 0; identical samples give NaN */
    const double u[] = {1, 2, 3}, v[] = {0, 1, 2};
    tema_stats_ttest_paired(u, v, 3, &t);
    ck_assert(isinf(t.t) && t.t > 0);
    ck_assert(t.p == 0);
    tema_stats_ttest_paired(u, u, 3, &t);
    ck_assert(isnan(t.t) && isnan(t.p));
    tema_stats_ttest_paired(u, v, 1, &t);
    ck_assert(isnan(t.p));
}
END_TEST

START_TEST(wilcoxon_exact_without_ties)
{
    const double x[] = {1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30, 0.9};
    const double y[] = {0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29, 1.2};
    tema_wilcoxon w;
    tema_err err = {0};
    ck_assert_int_eq(tema_stats_wilcoxon(x, y, 10, false, &w, &err), TEMA_OK);
    ck_assert(w.exact);
    ck_assert(w.statistic == 9.0);
    ck_assert(w.r_plus + w.r_minus == 55);
    ASSERT_REL(w.p, 0.064453125, 1e-14);

    double d[40], zero[40] = {0};
    for (int i = 0; i < 40; i++)
        d[i] = (i * 7919 % 83) - 41.5;
    ck_assert_int_eq(tema_stats_wilcoxon(d, zero, 40, false, &w, &err), TEMA_OK);
    ck_assert(w.exact);
    ck_assert(w.statistic == 391.0);
    ASSERT_REL(w.p, 0.8057269839482615, 1e-12);
    /* the continuity correction only concerns the normal approximation */
    tema_wilcoxon wc;
    ck_assert_int_eq(tema_stats_wilcoxon(d, zero, 40, true, &wc, &err), TEMA_OK);
    ck_assert(wc.p == w.p);
}
END_TEST

START_TEST(wilcoxon_small_with_ties_and_zeros)
{
    const double d[] = {1, -2, 2, 0, 3, -3, 3, 4, 0, 5, -1, 6};
    const double zero[12] = {0};
    tema_wilcoxon w;
    tema_err err = {0};
    ck_assert_int_eq(tema_stats_wilcoxon(d, zero, 12, false, &w, &err), TEMA_OK);
    ck_assert_int_eq(w.n, 10);
    ck_assert_int_eq(w.n_zero, 2);
    ck_assert(w.exact);
    ck_assert(w.statistic == 11.0);
    ASSERT_REL(w.p, 0.10546875, 1e-14);

    /* the sign of the comparison does not change a two-sided p */
    tema_wilcoxon r;
    ck_assert_int_eq(tema_stats_wilcoxon(zero, d, 12, false, &r, &err), TEMA_OK);
    ck_assert(r.p == w.p && r.statistic == w.statistic);

    const double u[] = {1, 2, 3};
    ck_assert_int_eq(tema_stats_wilcoxon(u, u, 3, false, &w, &err), TEMA_OK);
    ck_assert(w.p == 1.0 && w.statistic == 0);
}
END_TEST

START_TEST(wilcoxon_normal_approximation)
{
    double d[30], zero[30] = {0};
    for (int i = 0; i < 30; i++)
        d[i] = (i * 13 % 11) - 4.0;
    tema_wilcoxon w;
    tema_err err = {0};
    ck_assert_int_eq(tema_stats_wilcoxon(d, zero, 30, false, &w, &err), TEMA_OK);
    ck_assert(!w.exact);
    ck_assert(w.statistic == 135.0);
    ASSERT_REL(w.p, 0.19265469701164917, 1e-12);
    ck_assert_int_eq(tema_stats_wilcoxon(d, zero, 30, true, &w, &err), TEMA_OK);
    ASSERT_REL(w.p, 0.19680659747223184, 1e-12);

    double x[2000], y[2000];
    seq(2000, 101, 37, 97, 53, x, y);
    ck_assert_int_eq(tema_stats_wilcoxon(x, y, 2000, false, &w, &err), TEMA_OK);
    ck_assert_int_eq(w.n_zero, 20);
    ck_assert(w.statistic == 942040.5);
    ASSERT_REL(w.p, 0.1296921833988828, 1e-11);
    ck_assert_int_eq(tema_stats_wilcoxon(x, y, 2000, true, &w, &err), TEMA_OK);
    ASSERT_REL(w.p, 0.1296971577293997, 1e-11);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, mean_and_std);
    tcase_add_test(tc, incomplete_beta_and_t);
    tcase_add_test(tc, ttest_paired);
    tcase_add_test(tc, wilcoxon_exact_without_ties);
    tcase_add_test(tc, wilcoxon_small_with_ties_and_zeros);
    tcase_add_test(tc, wilcoxon_normal_approximation);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
