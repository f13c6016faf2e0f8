/* tests/test_tagger_embedding.c - the embedding tagger (plugins/tagger/embedding.c):
 *  - without a model: options, errors naming the vocabulary file, the scoring contract with
 *    the hashed extractor (scores 0 or 1..100, untitled items 0, determinism),
 *  - with all-MiniLM-L6-v2 installed (.ci/install-deps; otherwise SKIP): hand-written titles
 *    get the tags a user expects, runs are identical, and on real food-kitchen titles the
 *    tagger covers most items and agrees with the lexical tagger where lexical is confident. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "config.h"
#include "dataset.h"
#include "registry.h"
#include "tags.h"
#include "testutil.h"
#include "text_features.h"

static const char *vocab_dir(void)
{
    static char dir[4096];
    snprintf(dir, sizeof dir, "%s/experiments/tags", tu_source_root());
    return dir;
}

static const tema_plugin *plugin(const char *name)
{
    const tema_plugin *p = tema_registry_find(tu_cpu_registry(), TEMA_KIND_TAGGER, name);
    ck_assert_msg(p != NULL, "tagger %s not found (TEMA_PLUGIN_PATH=%s)", name, getenv("TEMA_PLUGIN_PATH"));
    return p;
}

/* create + tag + destroy with the declared defaults, the shipped vocabularies and `extra`
 * YAML lines; the options outlive tag(), as in core/tags.c. */
static tema_status run_tagger(const char *name, const char *extra, const char *domain, const char *const *titles,
                              int64_t n, tema_tag_vocab *out, tema_err *err)
{
    const tema_plugin *p = plugin(name);
    char yaml[8192];
    int k = snprintf(yaml, sizeof yaml, "%s", extra ? extra : "");
    if (!strstr(yaml, "vocab_dir:")) snprintf(yaml + k, sizeof yaml - (size_t)k, "vocab_dir: '%s'\n", vocab_dir());
    tema_cfg *opts = tu_plugin_opts(p, yaml);
    const tema_tagger_ops *ops = p->ops;
    void *self = NULL;
    memset(out, 0, sizeof *out);
    tema_status st = tema_tagger_create(p, opts, domain, &self, err);
    if (st == TEMA_OK) {
        st = ops->tag(self, titles, n, out, err);
        ops->destroy(self);
    }
    tema_cfg_free(opts);
    return st;
}

static int tag_index(const tema_tag_vocab *v, const char *name)
{
    for (int32_t t = 0; t < v->n_tags; t++)
        if (!strcmp(v->tags[t], name)) return t;
    ck_abort_msg("no tag '%s' in the vocabulary", name);
    return -1;
}

/* The item's best tag (highest score, ties to the lower id), -1 when it has none. */
static int best_tag(const tema_tag_vocab *v, int64_t item)
{
    const float *row = v->score + item * v->n_tags;
    int best = -1;
    for (int32_t t = 0; t < v->n_tags; t++)
        if (row[t] > 0 && (best < 0 || row[t] > row[best])) best = t;
    return best;
}

static int n_tagged(const tema_tag_vocab *v, int64_t item)
{
    int k = 0;
    for (int32_t t = 0; t < v->n_tags; t++) k += v->score[item * v->n_tags + t] > 0;
    return k;
}

/* Scores are 0 or 1..100; items without words score 0 everywhere. */
static void check_contract(const tema_tag_vocab *v, const char *const *titles, int64_t n)
{
    ck_assert_int_ge(v->n_tags, 1);
    for (int64_t i = 0; i < n; i++) {
        bool words = false;
        for (const char *s = titles[i]; s && *s; s++)
            words |= isalnum((unsigned char)*s) || (unsigned char)*s >= 0x80;
        for (int32_t t = 0; t < v->n_tags; t++) {
            float s = v->score[i * v->n_tags + t];
            ck_assert_msg(s == 0 || (s >= 1 && s <= 100 && s == (float)(int)s), "item %lld tag %d: score %g",
                          (long long)i, (int)t, (double)s);
            ck_assert_msg(words || s == 0, "item %lld without a title scores %g on '%s'", (long long)i, (double)s,
                          v->tags[t]);
        }
    }
}

/* ---------------- without a model ---------------- */

START_TEST(options_are_declared)
{
    const tema_plugin *p = plugin("embedding");
    const char *want[] = {"vocab_dir", "extractor", "threshold", "scale_quantile"};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        const tema_option *o = NULL;
        for (uint32_t i = 0; i < p->n_options; i++)
            if (!strcmp(p->options[i].name, want[k])) o = &p->options[i];
        ck_assert_msg(o && o->default_value && o->help && o->help[0], "option %s: declared with a default and help",
                      want[k]);
        if (!strcmp(want[k], "extractor")) {
            ck_assert_int_eq(o->type, TEMA_OPT_PLUGIN);
            ck_assert_str_eq(o->choices, "text_features");
            ck_assert_str_eq(o->default_value, "{plugin: bert}");
        }
    }
}
END_TEST

static void expect_error(const char *extra, const char *domain, tema_status want, const char *needle)
{
    const char *const titles[] = {"Dark Roast Coffee"};
    tema_tag_vocab v;
    tema_err err = {0};
    tema_status st = run_tagger("embedding", extra, domain, titles, 1, &v, &err);
    ck_assert_msg(st == want, "domain %s, options %s: got %s (%s), want %s", domain, extra, tema_status_name(st),
                  err.msg, tema_status_name(want));
    ck_assert_msg(strstr(err.msg, needle), "message '%s' does not mention '%s'", err.msg, needle);
}

START_TEST(errors_name_the_vocabulary_file)
{
    char dir[4200], extra[4400], file[4400];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    snprintf(extra, sizeof extra, "vocab_dir: '%s'\n", dir);
    snprintf(file, sizeof file, "%s/food.yaml", dir);
    expect_error(extra, "food", TEMA_ENOTFOUND, file); /* empty folder */
    expect_error(NULL, "pets", TEMA_ENOTFOUND, "experiments/tags/pets.yaml");
    expect_error(NULL, "Food Stuff", TEMA_EINVAL, "[a-z0-9_-]+");
    /* an out-of-range threshold is the core's to refuse, from the option table (test_config) */
    tu_write(file, "tags:\n  - {name: coffee, synonyms: [espresso, '  ']}\n");
    char at[4500];
    snprintf(at, sizeof at, "%s:2: empty synonym of 'coffee'", file);
    expect_error(extra, "food", TEMA_EFORMAT, at);
    tu_write(file, "tags:\n  - coffee\n  - Coffee\n");
    snprintf(at, sizeof at, "%s:3: tag 'Coffee' is listed twice", file);
    expect_error(extra, "food", TEMA_EFORMAT, at);
}
END_TEST

static const char *const FOOD_TITLES[] = {
    "Lavazza Espresso Whole Bean Coffee Blend, 2.2-Pound Bag",
    "Twinings Earl Grey Black Tea, 25 Tea Bags (Pack of 6)",
    "California Olive Ranch Extra Virgin Olive Oil, 16.9 Ounce",
    "Wireless Bluetooth Over-Ear Headphones with Microphone",
    NULL,
    "",
    "!!! --- ???",
};
#define N_FOOD ((int64_t)(sizeof FOOD_TITLES / sizeof FOOD_TITLES[0]))

START_TEST(hashed_extractor_keeps_the_contract)
{
    /* a low threshold, so the 1..100 map is exercised whatever hashed n-grams give */
    const char *extra = "extractor: {plugin: hashed}\nthreshold: 0.05\n";
    tema_tag_vocab v, w;
    tema_err err = {0};
    tu_fresh_feature_store();
    ck_assert_msg(run_tagger("embedding", extra, "food", FOOD_TITLES, N_FOOD, &v, &err) == TEMA_OK, "%s", err.msg);
    check_contract(&v, FOOD_TITLES, N_FOOD);
    float top = 0;
    for (int64_t j = 0; j < N_FOOD * v.n_tags; j++) top = v.score[j] > top ? v.score[j] : top;
    ck_assert_msg(top == 100, "the best scores map to 100, got %g", (double)top);
    tu_fresh_feature_store();
    ck_assert_msg(run_tagger("embedding", extra, "food", FOOD_TITLES, N_FOOD, &w, &err) == TEMA_OK, "%s", err.msg);
    ck_assert(!memcmp(v.score, w.score, (size_t)(N_FOOD * v.n_tags) * sizeof *v.score));
    tu_free_tag_vocab(&w);
    /* no items: still the vocabulary, and no features asked for */
    tema_features_context(NULL, NULL, NULL);
    ck_assert_msg(run_tagger("embedding", extra, "food", NULL, 0, &w, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_int_eq(w.n_tags, v.n_tags);
    for (int32_t t = 0; t < v.n_tags; t++) ck_assert_str_eq(w.tags[t], v.tags[t]);
    tu_free_tag_vocab(&w);
    tu_free_tag_vocab(&v);
}
END_TEST

/* ---------------- with all-MiniLM-L6-v2 ---------------- */

START_TEST(hand_written_food_titles)
{
    if (!tu_have_minilm(__func__)) return;
    tema_tag_vocab v;
    tema_err err = {0};
    tu_fresh_feature_store();
    ck_assert_msg(run_tagger("embedding", NULL, "food", FOOD_TITLES, N_FOOD, &v, &err) == TEMA_OK, "%s", err.msg);
    check_contract(&v, FOOD_TITLES, N_FOOD);
    for (int64_t i = 0; i < 4; i++)
        fprintf(stderr, "food %lld: best '%s', %d tags: %s\n", (long long)i,
                best_tag(&v, i) >= 0 ? v.tags[best_tag(&v, i)] : "-", n_tagged(&v, i), FOOD_TITLES[i]);
    ck_assert_int_eq(best_tag(&v, 0), tag_index(&v, "coffee"));
    ck_assert_int_eq(best_tag(&v, 1), tag_index(&v, "tea"));
    ck_assert_int_eq(best_tag(&v, 2), tag_index(&v, "cooking oils"));
    ck_assert_msg(n_tagged(&v, 3) <= 2, "headphones get %d food tags", n_tagged(&v, 3));
    tu_free_tag_vocab(&v);
}
END_TEST

START_TEST(hand_written_kitchen_titles)
{
    if (!tu_have_minilm(__func__)) return;
    static const char *const titles[] = {
        "Stainless Steel Whistling Tea Kettle, 2.5 Quart",
        "Lodge Pre-Seasoned Cast Iron Skillet, 10.25 Inch",
        "Memory Foam Bed Pillow, Queen Size",
        "Wireless Bluetooth Over-Ear Headphones with Microphone",
        NULL,
    };
    const int64_t n = sizeof titles / sizeof titles[0];
    tema_tag_vocab v;
    tema_err err = {0};
    tu_fresh_feature_store();
    ck_assert_msg(run_tagger("embedding", NULL, "kitchen", titles, n, &v, &err) == TEMA_OK, "%s", err.msg);
    check_contract(&v, titles, n);
    int best[4];
    for (int64_t i = 0; i < 4; i++) {
        best[i] = best_tag(&v, i);
        fprintf(stderr, "kitchen %lld: best '%s', %d tags: %s\n", (long long)i, best[i] >= 0 ? v.tags[best[i]] : "-",
                n_tagged(&v, i), titles[i]);
    }
    ck_assert_msg(best[0] >= 0 && (strcasestr(v.tags[best[0]], "tea") || strcasestr(v.tags[best[0]], "kettle")),
                  "the tea kettle's best tag is '%s'", best[0] >= 0 ? v.tags[best[0]] : "-");
    ck_assert_msg(best[1] == tag_index(&v, "cookware") || best[1] == tag_index(&v, "cast iron"),
                  "the skillet's best tag is '%s'", best[1] >= 0 ? v.tags[best[1]] : "-");
    ck_assert_msg(best[2] == tag_index(&v, "pillows") || best[2] == tag_index(&v, "bedding"),
                  "the pillow's best tag is '%s'", best[2] >= 0 ? v.tags[best[2]] : "-");
    ck_assert_msg(n_tagged(&v, 3) <= 2, "headphones get %d kitchen tags", n_tagged(&v, 3));
    tu_free_tag_vocab(&v);
}
END_TEST

START_TEST(runs_are_identical)
{
    if (!tu_have_minilm(__func__)) return;
    tema_tag_vocab v, w;
    tema_err err = {0};
    tu_fresh_feature_store();
    ck_assert_msg(run_tagger("embedding", NULL, "food", FOOD_TITLES, N_FOOD, &v, &err) == TEMA_OK, "%s", err.msg);
    /* from the store this time, then computed again in a fresh one */
    for (int k = 0; k < 2; k++) {
        if (k) tu_fresh_feature_store();
        ck_assert_msg(run_tagger("embedding", NULL, "food", FOOD_TITLES, N_FOOD, &w, &err) == TEMA_OK, "%s", err.msg);
        ck_assert_int_eq(w.n_tags, v.n_tags);
        ck_assert(!memcmp(w.score, v.score, (size_t)(N_FOOD * v.n_tags) * sizeof *v.score));
        tu_free_tag_vocab(&w);
    }
    tu_free_tag_vocab(&v);
}
END_TEST

/* Every step-th item of a domain: coverage, and agreement with lexical where it is confident. */
static void check_real_domain(const tema_dataset *ds, int dom, const char *domain, int64_t step)
{
    const int64_t n_dom = dom ? ds->n_y : ds->n_x, first = dom ? ds->n_x : 0;
    const int64_t n = (n_dom + step - 1) / step;
    const char **titles = calloc((size_t)n, sizeof *titles);
    for (int64_t i = 0; i < n; i++) titles[i] = ds->title ? ds->title[first + i * step] : NULL;
    tema_tag_vocab e, l;
    tema_err err = {0};
    ck_assert_msg(run_tagger("embedding", NULL, domain, titles, n, &e, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_msg(run_tagger("lexical", NULL, domain, titles, n, &l, &err) == TEMA_OK, "%s", err.msg);
    check_contract(&e, titles, n);
    ck_assert_int_eq(e.n_tags, l.n_tags);
    int64_t titled = 0, tagged = 0, confident = 0, in_top3 = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!titles[i] || !titles[i][0]) continue;
        titled++;
        tagged += n_tagged(&e, i) > 0;
        const float *re = e.score + i * e.n_tags, *rl = l.score + i * l.n_tags;
        for (int32_t t = 0; t < l.n_tags; t++) {
            if (rl[t] < 70) continue;
            int better = 0;
            for (int32_t u = 0; u < e.n_tags; u++) better += re[u] > re[t] || (re[u] == re[t] && u < t);
            confident++;
            in_top3 += re[t] > 0 && better < 3;
        }
    }
    fprintf(stderr, "%s: %lld of %lld titled items tagged; lexical-confident pairs %lld, in the top 3: %lld\n", domain,
            (long long)tagged, (long long)titled, (long long)confident, (long long)in_top3);
    ck_assert_int_ge(titled, 200);
    ck_assert_msg(tagged >= 0.6 * (double)titled, "%s: only %lld of %lld titled items got a tag", domain,
                  (long long)tagged, (long long)titled);
    ck_assert_int_ge(confident, 50);
    ck_assert_msg(in_top3 >= 0.65 * (double)confident, "%s: only %lld of %lld lexical-confident tags in the top 3",
                  domain, (long long)in_top3, (long long)confident);
    tu_free_tag_vocab(&e);
    tu_free_tag_vocab(&l);
    free(titles);
}

START_TEST(real_titles_agree_with_lexical)
{
    if (!tu_have_minilm(__func__)) return;
    TU_REQUIRE_DATA("food-kitchen");
    tema_dataset *ds = NULL;
    tema_err err = {0};
    ck_assert_msg(tema_dataset_load(tu_data_path("food-kitchen"), NULL, &ds, &err) == TEMA_OK, "%s", err.msg);
    tu_fresh_feature_store();
    /* about 300 titles of each domain, spread over its item ids */
    check_real_domain(ds, 0, "food", ds->n_x / 300 + 1);
    check_real_domain(ds, 1, "kitchen", ds->n_y / 300 + 1);
    tema_dataset_free(ds);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("tagger_embedding");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, options_are_declared);
    tcase_add_test(tc, errors_name_the_vocabulary_file);
    tcase_add_test(tc, hashed_extractor_keeps_the_contract);
    tcase_add_test(tc, hand_written_food_titles);
    tcase_add_test(tc, hand_written_kitchen_titles);
    tcase_add_test(tc, runs_are_identical);
    tcase_add_test(tc, real_titles_agree_with_lexical);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
