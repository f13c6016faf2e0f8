/* tests/test_tag_select.c - conformance of every tag_select plugin the registry finds
 * (kind-wide contracts on assorted score matrices), then hand-computed cases of topr,
 * threshold and hybrid: ties, empty selections, all-zero scores. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "host.h"
#include "registry.h"
#include "tags.h"
#include "testutil.h"
#include "util.h"

static const tema_plugin *plugin(const char *name)
{
    const tema_plugin *p = tema_registry_find(tu_registry(), TEMA_KIND_TAG_SELECT, name);
    ck_assert_msg(p != NULL, "tag_select plugin '%s' not found (TEMA_PLUGIN_PATH=%s)", name, getenv("TEMA_PLUGIN_PATH"));
    return p;
}

static tema_status run_select(const tema_plugin *p, const char *opts_yaml, const float *score, int64_t n_items,
                              int64_t n_tags, tema_tag_selection *out, tema_err *err)
{
    tema_cfg *opts = tu_plugin_opts(p, opts_yaml);
    tema_tag_scores s = {.n_items = n_items, .n_tags = n_tags, .score = score};
    tema_status st = tema_tag_select_call(p, opts, &s, out, err);
    tema_cfg_free(opts);
    return st;
}

static void free_sel(tema_tag_selection *s)
{
    const tema_host *h = tema_host_get();
    h->free(s->off);
    h->free(s->tag);
    h->free(s->score);
    memset(s, 0, sizeof *s);
}

/* The kind-wide contract of a selection of a score matrix. */
static void check_contract(const char *who, const tema_tag_selection *sel, const float *score, int64_t n_items,
                           int64_t n_tags)
{
    ck_assert_msg(sel->n_items == n_items, "%s: n_items %lld, expected %lld", who, (long long)sel->n_items,
                  (long long)n_items);
    ck_assert_msg(sel->off != NULL && sel->off[0] == 0, "%s: offsets must exist and start at 0", who);
    for (int64_t i = 0; i < n_items; i++) {
        ck_assert_msg(sel->off[i + 1] >= sel->off[i], "%s: offsets decrease at item %lld", who, (long long)i);
        for (int64_t k = sel->off[i]; k < sel->off[i + 1]; k++) {
            int32_t t = sel->tag[k];
            ck_assert_msg(t >= 0 && t < n_tags, "%s: item %lld: tag %d out of range", who, (long long)i, (int)t);
            ck_assert_msg(k == sel->off[i] || t > sel->tag[k - 1], "%s: item %lld: tags not ascending/unique", who,
                          (long long)i);
            ck_assert_msg(score[i * n_tags + t] > 0, "%s: item %lld: selected tag %d has score 0", who, (long long)i,
                          (int)t);
            ck_assert_msg(sel->score[k] == score[i * n_tags + t], "%s: item %lld tag %d: score %g, input %g", who,
                          (long long)i, (int)t, (double)sel->score[k], (double)score[i * n_tags + t]);
        }
    }
}

/* Deterministic matrices with ties, zero rows and a wide spread. */
static float *make_scores(uint64_t seed, int64_t n_items, int64_t n_tags)
{
    tema_rng r;
    tema_rng_seed(&r, seed);
    float *s = malloc((size_t)(n_items * n_tags > 0 ? n_items * n_tags : 1) * sizeof *s);
    for (int64_t i = 0; i < n_items; i++)
        for (int64_t j = 0; j < n_tags; j++) {
            uint64_t u = tema_rng_below(&r, 10);
            /* 40% zero, ties from a coarse grid, and some fine values */
            s[i * n_tags + j] = u < 4 ? 0.0f : u < 7 ? (float)(10 * tema_rng_below(&r, 11)) : (float)(1 + tema_rng_below(&r, 100));
        }
    for (int64_t j = 0; n_items > 3 && j < n_tags; j++) s[3 * n_tags + j] = 0; /* one all-zero item */
    return s;
}

START_TEST(every_selector_keeps_the_contract)
{
    int n = 0;
    const int64_t shapes[][2] = {{40, 12}, {7, 1}, {5, 0}, {0, 8}, {200, 40}};
    for (size_t i = 0; i < tema_registry_count(tu_registry()); i++) {
        const tema_plugin *p = tema_registry_at(tu_registry(), i)->plugin;
        if (p->kind != TEMA_KIND_TAG_SELECT) continue;
        n++;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int64_t ni = shapes[s][0], nt = shapes[s][1];
            float *score = make_scores(17 + s, ni, nt);
            tema_tag_selection a = {0}, b = {0};
            tema_err err = {0};
            char who[128];
            snprintf(who, sizeof who, "tag_select %s on %lldx%lld", p->name, (long long)ni, (long long)nt);
            ck_assert_msg(run_select(p, NULL, score, ni, nt, &a, &err) == TEMA_OK, "%s: %s", who, err.msg);
            check_contract(who, &a, score, ni, nt);
            if (ni > 3) ck_assert_msg(a.off[4] == a.off[3], "%s: the all-zero item got tags", who);
            /* same input, same output */
            ck_assert_msg(run_select(p, NULL, score, ni, nt, &b, &err) == TEMA_OK, "%s: %s", who, err.msg);
            ck_assert_int_eq(a.off[ni], b.off[ni]);
            ck_assert(!memcmp(a.off, b.off, (size_t)(ni + 1) * sizeof *a.off));
            ck_assert(a.off[ni] == 0 || !memcmp(a.tag, b.tag, (size_t)a.off[ni] * sizeof *a.tag));
            free_sel(&a);
            free_sel(&b);
            free(score);
        }
        /* an all-zero matrix selects nothing */
        float zeros[6 * 4] = {0};
        tema_tag_selection z = {0};
        tema_err err = {0};
        ck_assert_msg(run_select(p, NULL, zeros, 6, 4, &z, &err) == TEMA_OK, "%s: %s", p->name, err.msg);
        check_contract(p->name, &z, zeros, 6, 4);
        ck_assert_msg(z.off[6] == 0, "tag_select %s selected %lld tags of an all-zero matrix", p->name,
                      (long long)z.off[6]);
        free_sel(&z);
        /* a NaN or negative score is an error with a message, not a crash */
        float bad[2 * 3] = {10, 20, 30, 40, -5, 60};
        tema_tag_selection e = {0};
        memset(&err, 0, sizeof err);
        ck_assert_msg(run_select(p, NULL, bad, 2, 3, &e, &err) != TEMA_OK, "tag_select %s accepted a negative score",
                      p->name);
        ck_assert_msg(err.msg[0] != '\0', "tag_select %s failed without a message", p->name);
        bad[4] = NAN;
        memset(&err, 0, sizeof err);
        ck_assert_msg(run_select(p, NULL, bad, 2, 3, &e, &err) != TEMA_OK, "tag_select %s accepted NaN", p->name);
        free_sel(&e);
    }
    ck_assert_msg(n >= 3, "expected at least topr, threshold and hybrid, found %d tag_select plugins", n);
}
END_TEST

/* Five items over five tags: ties, an all-zero row, a single positive score. */
static const float HAND[5 * 5] = {
    10, 50, 50, 0, 30,  /* item 0: 50 twice (tags 1, 2), then 30, 10 */
    0, 0, 0, 0, 0,      /* item 1: nothing related */
    5, 0, 0, 0, 0,      /* item 2: one weak tag */
    20, 20, 20, 20, 20, /* item 3: a five-way tie */
    0, 0, 70, 70, 90,   /* item 4 */
};

/* Expect item i's tags (ascending), -1 terminated lists per item. */
static void expect(const char *who, const tema_tag_selection *sel, const int *const *want)
{
    check_contract(who, sel, HAND, 5, 5);
    for (int i = 0; i < 5; i++) {
        int n = 0;
        while (want[i][n] >= 0) n++;
        ck_assert_msg(sel->off[i + 1] - sel->off[i] == n, "%s: item %d has %lld tags, expected %d", who, i,
                      (long long)(sel->off[i + 1] - sel->off[i]), n);
        for (int k = 0; k < n; k++)
            ck_assert_msg(sel->tag[sel->off[i] + k] == want[i][k], "%s: item %d tag #%d is %d, expected %d", who, i, k,
                          (int)sel->tag[sel->off[i] + k], want[i][k]);
    }
}

static void run_expect(const char *name, const char *opts, const int *const *want)
{
    tema_tag_selection sel = {0};
    tema_err err = {0};
    char who[256];
    snprintf(who, sizeof who, "%s {%s}", name, opts);
    ck_assert_msg(run_select(plugin(name), opts, HAND, 5, 5, &sel, &err) == TEMA_OK, "%s: %s", who, err.msg);
    expect(who, &sel, want);
    free_sel(&sel);
}

START_TEST(topr_hand_cases)
{
    /* r = 2: ties at the cut go to the lower tag id */
    static const int i0[] = {1, 2, -1}, i1[] = {-1}, i2[] = {0, -1}, i3[] = {0, 1, -1}, i4[] = {2, 4, -1};
    const int *const want2[] = {i0, i1, i2, i3, i4};
    run_expect("topr", "r: 2\n", want2);
    /* r = 1 */
    static const int j0[] = {1, -1}, j3[] = {0, -1}, j4[] = {4, -1};
    const int *const want1[] = {j0, i1, i2, j3, j4};
    run_expect("topr", "r: 1\n", want1);
    /* r larger than the positive tags: every positive tag */
    static const int k0[] = {0, 1, 2, 4, -1}, k3[] = {0, 1, 2, 3, 4, -1}, k4[] = {2, 3, 4, -1};
    const int *const want9[] = {k0, i1, i2, k3, k4};
    run_expect("topr", "r: 9\n", want9);
    /* default r = 5 (the paper's) */
    run_expect("topr", "", want9);
}
END_TEST

START_TEST(threshold_hand_cases)
{
    /* theta = 50: >= is inclusive; items below it get nothing */
    static const int a0[] = {1, 2, -1}, none[] = {-1}, a4[] = {2, 3, 4, -1};
    const int *const want50[] = {a0, none, none, none, a4};
    run_expect("threshold", "theta: 50\n", want50);
    /* theta = 0: every related tag, never a zero-score one */
    static const int b0[] = {0, 1, 2, 4, -1}, b2[] = {0, -1}, b3[] = {0, 1, 2, 3, 4, -1};
    const int *const want0[] = {b0, none, b2, b3, a4};
    run_expect("threshold", "theta: 0\n", want0);
    /* theta = 20 keeps the whole five-way tie */
    static const int c0[] = {1, 2, 4, -1};
    const int *const want20[] = {c0, none, none, b3, a4};
    run_expect("threshold", "theta: 20\n", want20);
    /* default theta = 70 (the paper's) */
    static const int d4[] = {2, 3, 4, -1};
    const int *const want70[] = {none, none, none, none, d4};
    run_expect("threshold", "", want70);
}
END_TEST

START_TEST(hybrid_hand_cases)
{
    /* r = 1, theta = 20, max = 3: the best tag, then tags >= 20, cut at 3 by score then id */
    static const int a0[] = {1, 2, 4, -1}, none[] = {-1}, a2[] = {0, -1}, a3[] = {0, 1, 2, -1}, a4[] = {2, 3, 4, -1};
    const int *const want[] = {a0, none, a2, a3, a4};
    run_expect("hybrid", "r: 1\ntheta: 20\nmax: 3\n", want);
    /* theta above every score: hybrid is top-R */
    static const int b0[] = {1, 2, -1}, b3[] = {0, 1, -1}, b4[] = {2, 4, -1};
    const int *const topr2[] = {b0, none, a2, b3, b4};
    run_expect("hybrid", "r: 2\ntheta: 100\nmax: 10\n", topr2);
    /* max = r: the threshold adds nothing */
    run_expect("hybrid", "r: 2\ntheta: 0\nmax: 2\n", topr2);
    /* defaults r = 5, theta = 70, max = 10 */
    static const int c0[] = {0, 1, 2, 4, -1}, c3[] = {0, 1, 2, 3, 4, -1};
    const int *const def[] = {c0, none, a2, c3, a4};
    run_expect("hybrid", "", def);
    /* max below r is a configuration error naming both */
    tema_tag_selection sel = {0};
    tema_err err = {0};
    ck_assert_int_eq(run_select(plugin("hybrid"), "r: 4\nmax: 2\n", HAND, 5, 5, &sel, &err), TEMA_EINVAL);
    ck_assert_msg(strstr(err.msg, "max") && strstr(err.msg, "'r'"), "%s", err.msg);
    free_sel(&sel);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("tag_select");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, every_selector_keeps_the_contract);
    tcase_add_test(tc, topr_hand_cases);
    tcase_add_test(tc, threshold_hand_cases);
    tcase_add_test(tc, hybrid_hand_cases);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
