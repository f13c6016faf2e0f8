/* core/stats.h - the statistics behind `tema report`: mean and sample std, the paired
 * t-test and the Wilcoxon signed-rank test (core-internal).
 *
 * Both tests are two-sided and follow scipy.stats (ttest_rel, and wilcoxon with
 * zero_method="wilcox", method="auto"), so a p-value printed by tema can be checked with
 * scipy; tests/test_stats.c holds reference values computed with scipy 1.17.
 * Nothing here allocates except tema_stats_wilcoxon (a scratch array it frees).
 */
#ifndef TEMA_CORE_STATS_H
#define TEMA_CORE_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "tema/status.h"

/* Arithmetic mean; NaN when n == 0. */
double tema_stats_mean(const double *x, int64_t n);
/* Sample standard deviation (n - 1 in the denominator, like numpy's ddof=1); NaN when n < 2. */
double tema_stats_std(const double *x, int64_t n);

/* Regularized incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1; NaN otherwise. */
double tema_stats_betainc(double a, double b, double x);
/* Two-sided tail of Student's t: P(|T| >= |t|) with df > 0 degrees of freedom. */
double tema_stats_t_two_sided(double t, double df);
/* Upper tail of the standard normal: P(Z >= z). */
double tema_stats_normal_sf(double z);

/* Paired t-test of a against b (differences a[i] - b[i]), as scipy.stats.ttest_rel(a, b).
 * n < 2: t, p NaN. All differences equal and nonzero: t = +-inf, p = 0; all zero: t, p NaN. */
typedef struct tema_ttest {
    int64_t n;          /* pairs */
    double mean_diff;   /* mean of a - b */
    double t;
    double df;          /* n - 1 */
    double p;           /* two-sided */
} tema_ttest;
void tema_stats_ttest_paired(const double *a, const double *b, int64_t n, tema_ttest *out);

/* Wilcoxon signed-rank test of a against b, as scipy.stats.wilcoxon(a, b) with its defaults
 * (zero_method="wilcox", method="auto") plus the continuity correction when asked:
 *   - zero differences are dropped; |d| are ranked with ties given their mean rank;
 *   - more than 50 pairs (zeros included): normal approximation, variance corrected for
 *     ties, optional continuity correction (0.5 towards the mean);
 *   - up to 50 pairs without ties or zeros: the exact distribution of R+;
 *   - up to 13 pairs with ties or zeros: the exact distribution of R+ over the 2^n sign
 *     flips of the observed (tied) ranks, which is what scipy's permutation test enumerates;
 *   - 14 to 50 pairs with ties or zeros: the normal approximation.
 * No nonzero difference: statistic 0, p = 1 for up to 13 pairs and NaN above (as scipy).
 * A NaN difference makes p NaN. */
typedef struct tema_wilcoxon {
    int64_t n;          /* nonzero differences */
    int64_t n_zero;     /* dropped zero differences */
    double r_plus, r_minus;
    double statistic;   /* min(r_plus, r_minus), as scipy reports it */
    double z;           /* normal approximation (after correction); NaN when exact */
    bool exact;
    double p;           /* two-sided */
} tema_wilcoxon;
tema_status tema_stats_wilcoxon(const double *a, const double *b, int64_t n, bool continuity,
                                tema_wilcoxon *out, tema_err *err);

#endif
