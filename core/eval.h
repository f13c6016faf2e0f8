/* core/eval.h - ranking metrics exactly as C2DSR computes them, plus the tie-aware
 * variants (core-internal). */
#ifndef TEMA_CORE_EVAL_H
#define TEMA_CORE_EVAL_H

#include <stdint.h>

#include "tema/status.h"

typedef enum tema_rank_rule {
    TEMA_RANK_OPTIMISTIC = 0, /* C2DSR: 1 + #{neg: s_neg > s_t + 1e-5} */
    TEMA_RANK_PESSIMISTIC = 1,/* 1 + #{neg: s_neg >= s_t} (within 1e-5, see below) */
    TEMA_RANK_MID = 2,        /* 1 + #{s_neg > s_t} + #{s_neg == s_t}/2 (within 1e-5) */
    TEMA_RANK_RULES = 3
} tema_rank_rule;

/* Ranks of the target (score at index 0) among n_neg negatives (scores[1..n_neg]).
 *
 * Ties use the C2DSR tolerance TEMA_RANK_TOL = 1e-5 in all three rules, with t the target's
 * score and s a negative's:
 *   greater = #{s > t + 1e-5}            tie = #{|s - t| <= 1e-5}
 *   optimistic  = 1 + greater            (exactly C2DSR: near-ties count for the target)
 *   pessimistic = 1 + greater + tie      (= 1 + #{s >= t} for exact ties; near-ties within
 *                                         1e-5 below t also count against the target, so that
 *                                         optimistic <= mid <= pessimistic always holds)
 *   mid         = 1 + greater + tie / 2  (expected rank under random tie-breaking)
 * All scores equal: optimistic 1, pessimistic n_neg + 1, mid (n_neg + 2) / 2.
 * A NaN target score ranks last (n_neg + 1) under every rule, so a diverged model can
 * never look good; NaN negatives are counted as beating the target. */
#define TEMA_RANK_TOL 1e-5
void tema_rank(const float *scores, int64_t n_neg, double ranks[TEMA_RANK_RULES]);

/* Full-ranking protocol: the rank of scores[target] among ALL n scores of the target's
 * domain except itself (n - 1 competitors), same three rules and tolerance as tema_rank.
 * Requires 0 <= target < n. */
void tema_rank_full(const float *scores, int64_t n, int64_t target, double ranks[TEMA_RANK_RULES]);

#define TEMA_MAX_METRICS 16
typedef struct tema_metric_spec {
    int n;
    char name[TEMA_MAX_METRICS][16];   /* "mrr", "ndcg@10", "hr@5", ... */
} tema_metric_spec;
/* Valid names: "mrr", "ndcg@K", "hr@K" with an integer K >= 1 (case-insensitive; stored
 * lower-case without leading zeros). Rejects unknown names, duplicates, n < 1 and
 * n > TEMA_MAX_METRICS with an error listing the valid forms. */
tema_status tema_metric_parse(const char *const *names, int n, tema_metric_spec *out, tema_err *err);
/* Value of one metric for one rank (mrr: 1/rank; ndcg@k: 1/log2(rank+1) if rank<=k; hr@k:
 * 1 if rank<=k). Half ranks (mid rule) use the same formulas. NaN for an unknown name. */
double tema_metric_value(const char *name, double rank);

/* Accumulates per-domain means. */
typedef struct tema_metric_acc {
    tema_metric_spec spec;
    int64_t count[2];                                     /* cases per domain (0 = X, 1 = Y) */
    double sum[2][TEMA_RANK_RULES][TEMA_MAX_METRICS];
} tema_metric_acc;
void tema_metric_acc_init(tema_metric_acc *a, const tema_metric_spec *spec);
/* Adds one case; a domain other than 0 or 1 is ignored. */
void tema_metric_acc_add(tema_metric_acc *a, int domain, const double ranks[TEMA_RANK_RULES]);
/* Mean over the domain's cases; NaN when the domain has no cases or an index is out of range. */
double tema_metric_acc_mean(const tema_metric_acc *a, int domain, tema_rank_rule rule, int metric);
/* Index of a metric name in the spec (after the same normalisation as tema_metric_parse), or -1. */
int tema_metric_index(const tema_metric_spec *spec, const char *name);
/* Short name of a rank rule: "optimistic", "pessimistic", "mid". */
const char *tema_rank_rule_name(tema_rank_rule rule);

/* The C2DSR negatives: for case i, n_neg ids drawn uniformly with replacement from the
 * target's domain [lo, hi) excluding only the target, from a generator seeded once per
 * evaluation set. Fills out[i*n_neg + k]. */
/* Global ids: X = [0, n_x), Y = [n_x, n_x + n_y). The draws use tema_rng seeded with seed,
 * one tema_rng_below per negative, cases in order, so the same seed gives the same
 * negatives on every machine. A target outside [0, n_x + n_y), or one alone in its
 * domain, gets n_neg entries of -1 (no valid negative exists); callers skip those. */
void tema_draw_negatives(uint64_t seed, int64_t n_cases, const int32_t *target, int32_t n_x, int32_t n_y,
                         int32_t n_neg, int32_t *out);

#endif
