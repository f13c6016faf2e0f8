/* tests/test_tag_repr.c - conformance of every tag_repr plugin the registry finds (weights
 * in [0,1] summing to 1 per tagged item, tags kept in range and order, empty items stay
 * empty, determinism), then hand-computed cases of onehot, multihot and weighted: ties,
 * empty selections, all-zero scores. */
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
    const tema_plugin *p = tema_registry_find(tu_registry(), TEMA_KIND_TAG_REPR, name);
    ck_assert_msg(p != NULL, "tag_repr plugin '%s' not found (TEMA_PLUGIN_PATH=%s)", name, getenv("TEMA_PLUGIN_PATH"));
    return p;
}

/* A selection in host memory (as tag_select plugins hand it over): counts[i] tags for item i,
 * ids and scores taken in order from tags[] / scores[]. */
static tema_tag_selection make_sel(int64_t n_items, const int *counts, const int32_t *tags, const float *scores)
{
    const tema_host *h = tema_host_get();
    int64_t total = 0;
    for (int64_t i = 0; i < n_items; i++) total += counts[i];
    tema_tag_selection s = {.n_items = n_items};
    s.off = h->alloc((size_t)(n_items + 1) * sizeof *s.off);
    s.tag = h->alloc((size_t)(total + 1) * sizeof *s.tag);
    s.score = h->alloc((size_t)(total + 1) * sizeof *s.score);
    s.off[0] = 0;
    for (int64_t i = 0; i < n_items; i++) s.off[i + 1] = s.off[i] + counts[i];
    if (total && tags && scores) {
        memcpy(s.tag, tags, (size_t)total * sizeof *s.tag);
        memcpy(s.score, scores, (size_t)total * sizeof *s.score);
    }
    return s;
}

static void free_sel(tema_tag_selection *s)
{
    const tema_host *h = tema_host_get();
    h->free(s->off);
    h->free(s->tag);
    h->free(s->score);
    memset(s, 0, sizeof *s);
}

static tema_status run_repr(const tema_plugin *p, tema_tag_selection *sel, tema_err *err)
{
    tema_cfg *opts = tu_plugin_opts(p, NULL);
    tema_status st = tema_tag_repr_call(p, opts, sel, err);
    tema_cfg_free(opts);
    return st;
}

/* Kind-wide contract: `out` is the weighted form of selection `in` over n_tags tags. */
static void check_contract(const char *who, const tema_tag_selection *in_off_copy, const int32_t *in_tags,
                           const tema_tag_selection *out, int32_t n_tags)
{
    ck_assert_int_eq(out->n_items, in_off_copy->n_items);
    ck_assert_msg(out->off[0] == 0, "%s: offsets must start at 0", who);
    for (int64_t i = 0; i < out->n_items; i++) {
        int64_t a = out->off[i], b = out->off[i + 1];
        int64_t ia = in_off_copy->off[i], ib = in_off_copy->off[i + 1];
        ck_assert_msg(b >= a, "%s: offsets decrease at item %lld", who, (long long)i);
        ck_assert_msg((b > a) == (ib > ia), "%s: item %lld had %lld tags and now has %lld", who, (long long)i,
                      (long long)(ib - ia), (long long)(b - a));
        double sum = 0;
        for (int64_t k = a; k < b; k++) {
            int32_t t = out->tag[k];
            ck_assert_msg(t >= 0 && t < n_tags, "%s: item %lld: tag %d out of range", who, (long long)i, (int)t);
            ck_assert_msg(k == a || t > out->tag[k - 1], "%s: item %lld: tags not ascending/unique", who, (long long)i);
            bool was_selected = false;
            for (int64_t j = ia; j < ib; j++) was_selected |= in_tags[j] == t;
            ck_assert_msg(was_selected, "%s: item %lld: tag %d was not selected", who, (long long)i, (int)t);
            ck_assert_msg(out->score[k] >= 0 && out->score[k] <= 1, "%s: item %lld: weight %g outside [0,1]", who,
                          (long long)i, (double)out->score[k]);
            sum += out->score[k];
        }
        if (b > a) ck_assert_msg(fabs(sum - 1) < 1e-5, "%s: item %lld: weights sum to %.9g", who, (long long)i, sum);
    }
}

START_TEST(every_repr_keeps_the_contract)
{
    int n = 0;
    /* items: empty, one tag, ties, all-zero scores, a spread, empty again, many tags */
    static const int counts[] = {0, 1, 3, 2, 4, 0, 8};
    static const int32_t tags[] = {3, 0, 2, 5, 1, 4, 0, 1, 2, 9, 0, 1, 2, 3, 4, 5, 6, 7};
    static const float scores[] = {42, 50, 50, 10, 0, 0, 1, 100, 37, 2, 5, 5, 90, 1, 77, 77, 3, 60};
    const int64_t ni = 7;
    const int32_t nt = 10;
    for (size_t i = 0; i < tema_registry_count(tu_registry()); i++) {
        const tema_plugin *p = tema_registry_at(tu_registry(), i)->plugin;
        if (p->kind != TEMA_KIND_TAG_REPR) continue;
        n++;
        tema_tag_selection in = make_sel(ni, counts, tags, scores);
        tema_tag_selection a = make_sel(ni, counts, tags, scores), b = make_sel(ni, counts, tags, scores);
        tema_err err = {0};
        ck_assert_msg(run_repr(p, &a, &err) == TEMA_OK, "tag_repr %s: %s", p->name, err.msg);
        check_contract(p->name, &in, tags, &a, nt);
        ck_assert_msg(run_repr(p, &b, &err) == TEMA_OK, "tag_repr %s: %s", p->name, err.msg);
        ck_assert(!memcmp(a.off, b.off, (size_t)(ni + 1) * sizeof *a.off));
        ck_assert(!memcmp(a.tag, b.tag, (size_t)a.off[ni] * sizeof *a.tag));
        ck_assert(!memcmp(a.score, b.score, (size_t)a.off[ni] * sizeof *a.score));
        /* nothing selected anywhere: stays empty */
        static const int zero_counts[3] = {0, 0, 0};
        tema_tag_selection e = make_sel(3, zero_counts, NULL, NULL);
        ck_assert_msg(run_repr(p, &e, &err) == TEMA_OK, "tag_repr %s: %s", p->name, err.msg);
        ck_assert_int_eq(e.off[3], 0);
        /* a negative score is an error with a message */
        static const float bad[] = {10, -1, 5};
        static const int bad_counts[] = {3};
        static const int32_t bad_tags[] = {0, 1, 2};
        tema_tag_selection x = make_sel(1, bad_counts, bad_tags, bad);
        memset(&err, 0, sizeof err);
        if (run_repr(p, &x, &err) != TEMA_OK) ck_assert_msg(err.msg[0], "tag_repr %s failed silently", p->name);
        else check_contract(p->name, &x, bad_tags, &x, 3); /* a plugin that ignores scores may accept it */
        free_sel(&in);
        free_sel(&a);
        free_sel(&b);
        free_sel(&e);
        free_sel(&x);
    }
    ck_assert_msg(n >= 3, "expected at least onehot, multihot and weighted, found %d tag_repr plugins", n);
}
END_TEST

/* Hand cases shared by the three plugins:
 *   item 0: tags 1, 3, 4 with scores 30, 50, 50 (a tie for the best)
 *   item 1: nothing selected
 *   item 2: tags 0, 2 with scores 0, 0 (all zero)
 *   item 3: tags 0, 2, 5 with scores 30, 50, 20
 *   item 4: tag 7 with score 7 */
static const int HC[] = {3, 0, 2, 3, 1};
static const int32_t HT[] = {1, 3, 4, 0, 2, 0, 2, 5, 7};
static const float HS[] = {30, 50, 50, 0, 0, 30, 50, 20, 7};

static void expect_item(const char *who, const tema_tag_selection *s, int64_t i, int n, const int32_t *tags,
                        const float *w)
{
    ck_assert_msg(s->off[i + 1] - s->off[i] == n, "%s: item %lld has %lld tags, expected %d", who, (long long)i,
                  (long long)(s->off[i + 1] - s->off[i]), n);
    for (int k = 0; k < n; k++) {
        ck_assert_msg(s->tag[s->off[i] + k] == tags[k], "%s: item %lld tag #%d is %d, expected %d", who, (long long)i, k,
                      (int)s->tag[s->off[i] + k], (int)tags[k]);
        ck_assert_msg(fabsf(s->score[s->off[i] + k] - w[k]) < 1e-6f, "%s: item %lld tag %d weight %.9g, expected %.9g",
                      who, (long long)i, (int)tags[k], (double)s->score[s->off[i] + k], (double)w[k]);
    }
}

START_TEST(onehot_hand_cases)
{
    tema_tag_selection s = make_sel(5, HC, HT, HS);
    tema_err err = {0};
    ck_assert_msg(run_repr(plugin("onehot"), &s, &err) == TEMA_OK, "%s", err.msg);
    expect_item("onehot", &s, 0, 1, (const int32_t[]){3}, (const float[]){1}); /* tie 3/4: lower id */
    expect_item("onehot", &s, 1, 0, NULL, NULL);
    expect_item("onehot", &s, 2, 1, (const int32_t[]){0}, (const float[]){1}); /* all zero: lower id */
    expect_item("onehot", &s, 3, 1, (const int32_t[]){2}, (const float[]){1});
    expect_item("onehot", &s, 4, 1, (const int32_t[]){7}, (const float[]){1});
    ck_assert_int_eq(s.off[5], 4);
    free_sel(&s);
}
END_TEST

START_TEST(multihot_hand_cases)
{
    tema_tag_selection s = make_sel(5, HC, HT, HS);
    tema_err err = {0};
    ck_assert_msg(run_repr(plugin("multihot"), &s, &err) == TEMA_OK, "%s", err.msg);
    const float third = 1.0f / 3.0f;
    expect_item("multihot", &s, 0, 3, (const int32_t[]){1, 3, 4}, (const float[]){third, third, third});
    expect_item("multihot", &s, 1, 0, NULL, NULL);
    expect_item("multihot", &s, 2, 2, (const int32_t[]){0, 2}, (const float[]){0.5f, 0.5f});
    expect_item("multihot", &s, 3, 3, (const int32_t[]){0, 2, 5}, (const float[]){third, third, third});
    expect_item("multihot", &s, 4, 1, (const int32_t[]){7}, (const float[]){1});
    free_sel(&s);
}
END_TEST

START_TEST(weighted_hand_cases)
{
    tema_tag_selection s = make_sel(5, HC, HT, HS);
    tema_err err = {0};
    ck_assert_msg(run_repr(plugin("weighted"), &s, &err) == TEMA_OK, "%s", err.msg);
    /* Eq. 3: w_i = s_i / sum s; 30 + 50 + 50 = 130 */
    expect_item("weighted", &s, 0, 3, (const int32_t[]){1, 3, 4},
                (const float[]){30.0f / 130.0f, 50.0f / 130.0f, 50.0f / 130.0f});
    expect_item("weighted", &s, 1, 0, NULL, NULL);
    expect_item("weighted", &s, 2, 2, (const int32_t[]){0, 2}, (const float[]){0.5f, 0.5f}); /* no relevance: equal */
    expect_item("weighted", &s, 3, 3, (const int32_t[]){0, 2, 5}, (const float[]){0.3f, 0.5f, 0.2f});
    expect_item("weighted", &s, 4, 1, (const int32_t[]){7}, (const float[]){1});
    free_sel(&s);
    /* negative relevance is an error naming the item and tag */
    static const int c[] = {2};
    static const int32_t t[] = {4, 6};
    static const float v[] = {10, -3};
    tema_tag_selection bad = make_sel(1, c, t, v);
    ck_assert_int_eq(run_repr(plugin("weighted"), &bad, &err), TEMA_EINVAL);
    ck_assert_msg(strstr(err.msg, "item 0") && strstr(err.msg, "tag 6"), "%s", err.msg);
    free_sel(&bad);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("tag_repr");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, every_repr_keeps_the_contract);
    tcase_add_test(tc, onehot_hand_cases);
    tcase_add_test(tc, multihot_hand_cases);
    tcase_add_test(tc, weighted_hand_cases);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
