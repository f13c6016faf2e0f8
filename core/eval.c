/* core/eval.c - ranks, metrics and the C2DSR negatives. */
#include "eval.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Counts of negatives clearly above the target and within the tolerance of it. A NaN
 * negative counts as above: a broken score must not help the target. */
static void count_vs(float t, float s, int64_t *greater, int64_t *tie)
{
    if (isnan(s) || (double)s > (double)t + TEMA_RANK_TOL)
        (*greater)++;
    else if (fabs((double)s - (double)t) <= TEMA_RANK_TOL)
        (*tie)++;
}

static void ranks_from_counts(int64_t greater, int64_t tie, double ranks[TEMA_RANK_RULES])
{
    ranks[TEMA_RANK_OPTIMISTIC] = 1.0 + (double)greater;
    ranks[TEMA_RANK_PESSIMISTIC] = 1.0 + (double)greater + (double)tie;
    ranks[TEMA_RANK_MID] = 1.0 + (double)greater + (double)tie / 2.0;
}

void tema_rank(const float *scores, int64_t n_neg, double ranks[TEMA_RANK_RULES])
{
    float t = scores[0];
    int64_t greater = 0, tie = 0;
    if (isnan(t)) {
        ranks_from_counts(n_neg, 0, ranks);
        return;
    }
    for (int64_t k = 1; k <= n_neg; k++)
        count_vs(t, scores[k], &greater, &tie);
    ranks_from_counts(greater, tie, ranks);
}

void tema_rank_full(const float *scores, int64_t n, int64_t target, double ranks[TEMA_RANK_RULES])
{
    float t = scores[target];
    int64_t greater = 0, tie = 0;
    if (isnan(t)) {
        ranks_from_counts(n - 1, 0, ranks);
        return;
    }
    for (int64_t k = 0; k < n; k++)
        if (k != target)
            count_vs(t, scores[k], &greater, &tie);
    ranks_from_counts(greater, tie, ranks);
}

const char *tema_rank_rule_name(tema_rank_rule rule)
{
    switch (rule) {
    case TEMA_RANK_OPTIMISTIC: return "optimistic";
    case TEMA_RANK_PESSIMISTIC: return "pessimistic";
    case TEMA_RANK_MID: return "mid";
    default: return "unknown";
    }
}

typedef enum metric_kind { METRIC_BAD, METRIC_MRR, METRIC_NDCG, METRIC_HR } metric_kind;

/* Parses "mrr", "ndcg@K", "hr@K" (case-insensitive, K >= 1). Writes the canonical name
 * into canon (cap >= 16) when it is not NULL. */
static metric_kind parse_metric(const char *name, long *k_out, char *canon, size_t cap)
{
    char low[32];
    size_t len = strlen(name);
    if (len == 0 || len >= sizeof low)
        return METRIC_BAD;
    for (size_t i = 0; i <= len; i++)
        low[i] = (char)tolower((unsigned char)name[i]);
    if (!strcmp(low, "mrr")) {
        if (canon)
            snprintf(canon, cap, "mrr");
        *k_out = 0;
        return METRIC_MRR;
    }
    metric_kind kind;
    const char *num;
    if (!strncmp(low, "ndcg@", 5)) {
        kind = METRIC_NDCG;
        num = low + 5;
    } else if (!strncmp(low, "hr@", 3)) {
        kind = METRIC_HR;
        num = low + 3;
    } else {
        return METRIC_BAD;
    }
    if (!isdigit((unsigned char)num[0]))
        return METRIC_BAD;
    char *end;
    errno = 0;
    long k = strtol(num, &end, 10);
    if (*end || errno || k < 1 || k > 1000000000L)
        return METRIC_BAD;
    if (canon) {
        int w = snprintf(canon, cap, "%s@%ld", kind == METRIC_NDCG ? "ndcg" : "hr", k);
        if (w < 0 || (size_t)w >= cap)
            return METRIC_BAD;
    }
    *k_out = k;
    return kind;
}

tema_status tema_metric_parse(const char *const *names, int n, tema_metric_spec *out, tema_err *err)
{
    static const char hint[] = "valid metrics are mrr, ndcg@K and hr@K with an integer K >= 1 "
                               "(e.g. mrr, ndcg@5, ndcg@10, hr@10)";
    memset(out, 0, sizeof *out);
    if (n < 1)
        return tema_fail(err, TEMA_EINVAL, "metrics: the list is empty; %s", hint);
    if (n > TEMA_MAX_METRICS)
        return tema_fail(err, TEMA_EINVAL, "metrics: %d metrics given, at most %d are supported; drop some",
                         n, TEMA_MAX_METRICS);
    for (int i = 0; i < n; i++) {
        long k;
        const char *name = names[i] ? names[i] : "(null)";
        if (parse_metric(name, &k, out->name[i], sizeof out->name[i]) == METRIC_BAD) {
            memset(out, 0, sizeof *out);
            return tema_fail(err, TEMA_EINVAL, "metrics[%d]: unknown metric '%s'; %s", i, name, hint);
        }
        for (int j = 0; j < i; j++) {
            if (!strcmp(out->name[j], out->name[i])) {
                tema_fail(err, TEMA_EINVAL, "metrics[%d]: '%s' is listed twice (also metrics[%d]); remove one", i,
                          name, j);
                memset(out, 0, sizeof *out);
                return TEMA_EINVAL;
            }
        }
    }
    out->n = n;
    return TEMA_OK;
}

static double value_of(metric_kind kind, long k, double rank)
{
    switch (kind) {
    case METRIC_MRR: return 1.0 / rank;
    case METRIC_NDCG: return rank <= (double)k ? 1.0 / log2(rank + 1.0) : 0.0;
    case METRIC_HR: return rank <= (double)k ? 1.0 : 0.0;
    default: return NAN;
    }
}

double tema_metric_value(const char *name, double rank)
{
    long k;
    metric_kind kind = parse_metric(name, &k, NULL, 0);
    return value_of(kind, k, rank);
}

int tema_metric_index(const tema_metric_spec *spec, const char *name)
{
    char canon[16];
    long k;
    if (parse_metric(name, &k, canon, sizeof canon) == METRIC_BAD)
        return -1;
    for (int i = 0; i < spec->n; i++)
        if (!strcmp(spec->name[i], canon))
            return i;
    return -1;
}

void tema_metric_acc_init(tema_metric_acc *a, const tema_metric_spec *spec)
{
    memset(a, 0, sizeof *a);
    a->spec = *spec;
}

void tema_metric_acc_add(tema_metric_acc *a, int domain, const double ranks[TEMA_RANK_RULES])
{
    if (domain != 0 && domain != 1)
        return;
    a->count[domain]++;
    for (int m = 0; m < a->spec.n; m++) {
        long k;
        metric_kind kind = parse_metric(a->spec.name[m], &k, NULL, 0);
        for (int r = 0; r < TEMA_RANK_RULES; r++)
            a->sum[domain][r][m] += value_of(kind, k, ranks[r]);
    }
}

double tema_metric_acc_mean(const tema_metric_acc *a, int domain, tema_rank_rule rule, int metric)
{
    if ((domain != 0 && domain != 1) || (int)rule < 0 || rule >= TEMA_RANK_RULES || metric < 0 ||
        metric >= a->spec.n || a->count[domain] == 0)
        return NAN;
    return a->sum[domain][rule][metric] / (double)a->count[domain];
}

void tema_draw_negatives(uint64_t seed, int64_t n_cases, const int32_t *target, int32_t n_x, int32_t n_y,
                         int32_t n_neg, int32_t *out)
{
    tema_rng rng;
    tema_rng_seed(&rng, seed);
    for (int64_t i = 0; i < n_cases; i++) {
        int32_t t = target[i];
        int32_t *row = out + i * (int64_t)n_neg;
        int64_t lo, size;
        if (t >= 0 && t < n_x) {
            lo = 0;
            size = n_x;
        } else if (t >= n_x && (int64_t)t < (int64_t)n_x + n_y) {
            lo = n_x;
            size = n_y;
        } else {
            size = 0;
            lo = 0;
        }
        if (size < 2) {
            for (int32_t k = 0; k < n_neg; k++)
                row[k] = -1;
            continue;
        }
        /* Uniform over the size - 1 other ids: draw from a range one shorter and step over
         * the target. */
        for (int32_t k = 0; k < n_neg; k++) {
            int64_t r = lo + (int64_t)tema_rng_below(&rng, (uint64_t)(size - 1));
            if (r >= t)
                r++;
            row[k] = (int32_t)r;
        }
    }
}
