/* core/report/significance.c - the marks of a cell against the baseline's cell: per-user
 * paired t-test and Wilcoxon test on the test cases, run-level paired t-test over the seeds.
 */
#include <math.h>
#include <stdlib.h>

#include "../stats.h"
#include "report_internal.h"

typedef struct rank_pair {
    double a, b;
} rank_pair;

/* Pairs the test cases of runs a and b in domain d by user (and occurrence), appending
 * their ranks under `rule` to *pairs. Returns the cases left without a partner. */
static int64_t pair_cases(const run *a, const run *b, int d, tema_rank_rule rule, rank_pair *pairs, int64_t *n)
{
    int64_t i = a->domain_start[d], ie = a->domain_start[d + 1];
    int64_t j = b->domain_start[d], je = b->domain_start[d + 1];
    int64_t unmatched = 0;
    while (i < ie && j < je) {
        int64_t ua = a->cases[i].user, ub = b->cases[j].user;
        if (ua < ub) {
            i++;
            unmatched++;
        } else if (ub < ua) {
            j++;
            unmatched++;
        } else {
            pairs[*n].a = a->cases[i].rank[rule];
            pairs[*n].b = b->cases[j].rank[rule];
            (*n)++;
            i++;
            j++;
        }
    }
    return unmatched + (ie - i) + (je - j);
}

/* The seeds both cells ran, one run per seed and side: ra[s] of c, rb[s] of base. */
static int pair_seeds(const report_ctx *R, const cell *c, const cell *base, int *ra, int *rb)
{
    int n_seeds = 0;
    for (int i = 0; i < c->n_runs; i++) {
        const run *x = &R->runs[c->runs[i]];
        bool dup = false;
        for (int k = 0; k < n_seeds; k++)
            dup |= R->runs[ra[k]].seed == x->seed;
        if (dup)
            continue;
        for (int j = 0; j < base->n_runs; j++)
            if (R->runs[base->runs[j]].seed == x->seed) {
                ra[n_seeds] = c->runs[i];
                rb[n_seeds++] = base->runs[j];
                break;
            }
    }
    return n_seeds;
}

/* The run-level paired t-test on the per-seed values (needs two seed pairs). */
static tema_status run_level_test(report_ctx *R, const table_spec *t, cell *c, const int *ra, const int *rb,
                                  int n_seeds, int domain, tema_err *err)
{
    tema_status st = TEMA_OK;
    double *va = malloc(((size_t)n_seeds + 1) * sizeof *va), *vb = malloc(((size_t)n_seeds + 1) * sizeof *vb);
    if (!va || !vb)
        st = tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    for (int m = 0; st == TEMA_OK && m < t->metrics.n && n_seeds >= 2; m++) {
        int k = 0;
        for (int s = 0; s < n_seeds; s++) {
            double x = rep_run_metric(&R->runs[ra[s]], t, domain, m);
            double y = rep_run_metric(&R->runs[rb[s]], t, domain, m);
            if (isfinite(x) && isfinite(y)) {
                va[k] = x;
                vb[k++] = y;
            }
        }
        tema_ttest tt;
        tema_stats_ttest_paired(va, vb, k, &tt);
        c->p_run_t[m] = tt.p;
    }
    free(va);
    free(vb);
    return st;
}

/* The per-user paired t-test and Wilcoxon test on the test cases of the seed pairs, pooled
 * over the pairs whose ranks.tsv both sides have. */
static tema_status user_level_tests(report_ctx *R, const table_spec *t, cell *c, const int *ra, const int *rb,
                                    int n_seeds, int domain, tema_err *err)
{
    tema_status st = TEMA_OK;
    int64_t cap = 0;
    for (int s = 0; st == TEMA_OK && s < n_seeds; s++) {
        if ((st = rep_load_ranks(R, &R->runs[ra[s]], err)) != TEMA_OK ||
            (st = rep_load_ranks(R, &R->runs[rb[s]], err)) != TEMA_OK)
            break;
        if (R->runs[ra[s]].ranks_state > 0 && R->runs[rb[s]].ranks_state > 0)
            cap += R->runs[ra[s]].n_cases;
    }
    rank_pair *pairs = st == TEMA_OK ? malloc(((size_t)cap + 1) * sizeof *pairs) : NULL;
    double *xa = st == TEMA_OK ? malloc(((size_t)cap + 1) * sizeof *xa) : NULL;
    double *xb = st == TEMA_OK ? malloc(((size_t)cap + 1) * sizeof *xb) : NULL;
    if (st == TEMA_OK && (!pairs || !xa || !xb))
        st = tema_fail(err, TEMA_ENOMEM, "report: out of memory for %lld test cases", (long long)cap);
    int64_t n = 0;
    for (int s = 0; st == TEMA_OK && s < n_seeds; s++) {
        const run *a = &R->runs[ra[s]], *b = &R->runs[rb[s]];
        if (a->ranks_state <= 0 || b->ranks_state <= 0)
            continue;
        int64_t lost = pair_cases(a, b, domain, t->rule, pairs, &n);
        if (lost)
            rep_note(R, "table %s: %lld test cases of runs %s and %s (domain %s) have no partner in the other run; "
                     "were they evaluated on the same test set?", t->name, (long long)lost, a->id, b->id,
                     domain ? "Y" : "X");
    }
    c->n_user_pairs = n;
    for (int m = 0; st == TEMA_OK && m < t->metrics.n && n > 0; m++) {
        for (int64_t k = 0; k < n; k++) {
            xa[k] = tema_metric_value(t->metrics.name[m], pairs[k].a);
            xb[k] = tema_metric_value(t->metrics.name[m], pairs[k].b);
        }
        tema_ttest tt;
        tema_stats_ttest_paired(xa, xb, n, &tt);
        c->p_user_t[m] = tt.p;
        tema_wilcoxon w;
        if ((st = tema_stats_wilcoxon(xa, xb, n, true, &w, err)) == TEMA_OK)
            c->p_user_w[m] = w.p;
    }
    free(pairs);
    free(xa);
    free(xb);
    return st;
}

/* The three tests of one cell against the baseline's cell in the same column. */
tema_status rep_test_cell(report_ctx *R, table *T, cell *c, const cell *base, int domain, tema_err *err)
{
    const table_spec *t = &T->spec;
    int nm = t->metrics.n;
    for (int m = 0; m < nm; m++)
        c->p_user_t[m] = c->p_user_w[m] = c->p_run_t[m] = NAN;
    /* seeds both cells ran; one run per seed and side */
    int *ra = malloc(((size_t)c->n_runs + 1) * sizeof *ra), *rb = malloc(((size_t)c->n_runs + 1) * sizeof *rb);
    if (!ra || !rb) {
        free(ra);
        free(rb);
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    }
    int n_seeds = pair_seeds(R, c, base, ra, rb);
    c->n_run_pairs = n_seeds;
    tema_status st = run_level_test(R, t, c, ra, rb, n_seeds, domain, err);
    if (st == TEMA_OK && T->user_tests && n_seeds > 0)
        st = user_level_tests(R, t, c, ra, rb, n_seeds, domain, err);
    for (int m = 0; m < nm; m++)
        c->mark[m] = (c->p_user_t[m] < t->alpha ? MARK_USER_T : 0) | (c->p_user_w[m] < t->alpha ? MARK_WILCOXON : 0) |
                     (c->p_run_t[m] < t->alpha ? MARK_RUN_T : 0);
    free(ra);
    free(rb);
    return st;
}
