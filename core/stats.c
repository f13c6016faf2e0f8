/* core/stats.c - mean, std, paired t-test and Wilcoxon signed-rank test (see stats.h). */
#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double tema_stats_mean(const double *x, int64_t n)
{
    if (n <= 0)
        return NAN;
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += x[i];
    return s / (double)n;
}

double tema_stats_std(const double *x, int64_t n)
{
    if (n < 2)
        return NAN;
    /* Two passes: the one-pass formula cancels badly for metrics like 0.1234 +- 0.0001. */
    double m = tema_stats_mean(x, n), ss = 0;
    for (int64_t i = 0; i < n; i++)
        ss += (x[i] - m) * (x[i] - m);
    return sqrt(ss / (double)(n - 1));
}

/* Continued fraction of I_x(a, b) (modified Lentz, as in Numerical Recipes' betacf);
 * converges fast for x < (a + 1) / (a + b + 2). */
static double beta_cf(double a, double b, double x)
{
    const double tiny = 1e-300, eps = 1e-16;
    double qab = a + b, qap = a + 1, qam = a - 1;
    double c = 1, d = 1 - qab * x / qap;
    if (fabs(d) < tiny)
        d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 100000; m++) {
        double m2 = 2.0 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < eps)
            break;
    }
    return h;
}

/* I_x(a, b) given both x and y = 1 - x, so callers that know the complement exactly (the
 * t distribution: x = df / (df + t^2), y = t^2 / (df + t^2)) keep full precision near 1. */
static double betainc_xy(double a, double b, double x, double y)
{
    if (!(a > 0) || !(b > 0) || !(x >= 0) || !(y >= 0))
        return NAN;
    if (x == 0)
        return 0;
    if (y == 0)
        return 1;
    double log_x = x < 0.5 ? log(x) : log1p(-y);
    double log_y = y < 0.5 ? log(y) : log1p(-x);
    double front = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log_x + b * log_y);
    if (x < (a + 1) / (a + b + 2))
        return front * beta_cf(a, b, x) / a;
    return 1 - front * beta_cf(b, a, y) / b;
}

double tema_stats_betainc(double a, double b, double x)
{
    if (!(x >= 0 && x <= 1))
        return NAN;
    return betainc_xy(a, b, x, 1 - x);
}

double tema_stats_t_two_sided(double t, double df)
{
    if (isnan(t) || !(df > 0))
        return NAN;
    if (isinf(t))
        return 0;
    double t2 = t * t;
    /* P(|T| >= |t|) = I_{df/(df+t^2)}(df/2, 1/2) */
    return betainc_xy(df / 2, 0.5, df / (df + t2), t2 / (df + t2));
}

double tema_stats_normal_sf(double z)
{
    return 0.5 * erfc(z / sqrt(2.0));
}

void tema_stats_ttest_paired(const double *a, const double *b, int64_t n, tema_ttest *out)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    out->df = n > 1 ? (double)(n - 1) : NAN;
    out->t = out->p = out->mean_diff = NAN;
    if (n < 1)
        return;
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] - b[i];
    double m = s / (double)n;
    out->mean_diff = m;
    if (n < 2)
        return;
    double ss = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = a[i] - b[i] - m;
        ss += e * e;
    }
    double se = sqrt(ss / (double)(n - 1) / (double)n);
    if (isnan(m) || isnan(se))
        return;
    if (se == 0) {
        /* scipy divides and gets +-inf (p = 0) or NaN (all differences zero) */
        if (m != 0) {
            out->t = m > 0 ? INFINITY : -INFINITY;
            out->p = 0;
        }
        return;
    }
    out->t = m / se;
    out->p = tema_stats_t_two_sided(out->t, out->df);
}

typedef struct signed_abs {
    double abs;
    int positive;
} signed_abs;

static int cmp_signed_abs(const void *pa, const void *pb)
{
    double a = ((const signed_abs *)pa)->abs, b = ((const signed_abs *)pb)->abs;
    return (a > b) - (a < b);
}

/* Two-sided p of the observed statistic k under the null distribution of the sum of a random
 * subset of the integer weights w[0..n) (each in or out with probability 1/2):
 * min(1, 2 * min(P(S <= k), P(S >= k))). With weights 1..n this is the exact distribution
 * of R+ (scipy's _get_wilcoxon_distr); with doubled mid-ranks it is the sign-flip
 * permutation distribution scipy enumerates for small samples with ties. */
static tema_status subset_sum_p(const int64_t *w, int64_t n, int64_t k, double *p, tema_err *err)
{
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++)
        total += w[i];
    double *pmf = calloc((size_t)total + 1, sizeof *pmf);
    if (!pmf)
        return tema_fail(err, TEMA_ENOMEM, "wilcoxon: out of memory for the exact distribution (%lld pairs)",
                         (long long)n);
    pmf[0] = 1;
    int64_t reach = 0;
    for (int64_t i = 0; i < n; i++) {
        reach += w[i];
        for (int64_t s = reach; s >= 0; s--)
            pmf[s] = 0.5 * pmf[s] + (s >= w[i] ? 0.5 * pmf[s - w[i]] : 0);
    }
    double lo = 0, hi = 0;
    for (int64_t s = 0; s <= total; s++) {
        if (s <= k)
            lo += pmf[s];
        if (s >= k)
            hi += pmf[s];
    }
    free(pmf);
    double two = 2 * (lo < hi ? lo : hi);
    *p = two > 1 ? 1 : two;
    return TEMA_OK;
}

/* Mid-ranks rank[0..m) of the sorted |d| (ties share the mean of their ranks); returns the
 * tie correction sum of t^3 - t over groups of t tied values, *ties: whether any. */
static double mid_ranks(const signed_abs *d, int64_t m, double *rank, bool *ties)
{
    *ties = false;
    double tie_term = 0;
    for (int64_t i = 0; i < m;) {
        int64_t j = i + 1;
        while (j < m && d[j].abs == d[i].abs)
            j++;
        double mid = 0.5 * (double)(i + 1 + j); /* mean of ranks i+1 .. j */
        for (int64_t k = i; k < j; k++)
            rank[k] = mid;
        double t = (double)(j - i);
        if (j - i > 1) {
            *ties = true;
            tie_term += t * t * t - t;
        }
        i = j;
    }
    return tie_term;
}

/* out->p from the exact null distribution of R+ over the m nonzero differences (n pairs). */
static tema_status wilcoxon_exact(const double *rank, int64_t m, int64_t n, tema_wilcoxon *out, tema_err *err)
{
    int64_t *w = malloc((size_t)m * sizeof *w);
    if (!w)
        return tema_fail(err, TEMA_ENOMEM, "wilcoxon: out of memory for %lld pairs", (long long)n);
    /* Doubled ranks are integers (mid-ranks are multiples of 1/2). Without ties every
     * weight is even, which leaves the distribution of R+ unchanged. */
    for (int64_t i = 0; i < m; i++)
        w[i] = (int64_t)llround(2 * rank[i]);
    tema_status st = subset_sum_p(w, m, (int64_t)llround(2 * out->r_plus), &out->p, err);
    out->exact = true;
    free(w);
    return st;
}

/* out->z and out->p from the normal approximation with the tie correction (and continuity). */
static void wilcoxon_normal(int64_t m, double tie_term, bool continuity, tema_wilcoxon *out)
{
    double dn = (double)m;
    double mean = dn * (dn + 1) / 4;
    double se = sqrt((dn * (dn + 1) * (2 * dn + 1) - tie_term / 2) / 24);
    double z = (out->r_plus - mean) / se;
    if (continuity && z != 0)
        z -= (z > 0 ? 0.5 : -0.5) / se;
    out->z = z;
    double p = 2 * tema_stats_normal_sf(fabs(z));
    out->p = p > 1 ? 1 : p;
}

tema_status tema_stats_wilcoxon(const double *a, const double *b, int64_t n, bool continuity,
                                tema_wilcoxon *out, tema_err *err)
{
    memset(out, 0, sizeof *out);
    out->z = out->p = NAN;
    if (n <= 0)
        return TEMA_OK;
    signed_abs *d = malloc((size_t)n * sizeof *d);
    double *rank = malloc((size_t)n * sizeof *rank);
    if (!d || !rank) {
        free(d);
        free(rank);
        return tema_fail(err, TEMA_ENOMEM, "wilcoxon: out of memory for %lld pairs", (long long)n);
    }
    int64_t m = 0;
    bool has_nan = false;
    for (int64_t i = 0; i < n; i++) {
        double x = a[i] - b[i];
        if (isnan(x))
            has_nan = true;
        else if (x == 0)
            out->n_zero++;
        else
            d[m++] = (signed_abs){fabs(x), x > 0};
    }
    out->n = m;
    if (has_nan || m == 0) {
        /* All differences zero: every sign flip gives the same R+, so scipy's permutation
         * test (n <= 13) says p = 1 and its normal approximation divides 0 by 0. */
        if (!has_nan && n <= 13)
            out->p = 1;
        free(d);
        free(rank);
        return TEMA_OK;
    }
    qsort(d, (size_t)m, sizeof *d, cmp_signed_abs);
    bool ties;
    double tie_term = mid_ranks(d, m, rank, &ties);
    for (int64_t i = 0; i < m; i++) {
        if (d[i].positive)
            out->r_plus += rank[i];
        else
            out->r_minus += rank[i];
    }
    out->statistic = out->r_plus < out->r_minus ? out->r_plus : out->r_minus;

    /* scipy's method="auto": the sample size here counts the zeros too. */
    bool exact = n <= 50 && (n <= 13 || (!ties && out->n_zero == 0));
    tema_status st = TEMA_OK;
    if (exact)
        st = wilcoxon_exact(rank, m, n, out, err);
    else
        wilcoxon_normal(m, tie_term, continuity, out);
    free(d);
    free(rank);
    return st;
}
