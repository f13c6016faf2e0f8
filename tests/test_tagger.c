/* tests/test_tagger.c - taggers and the tag pipeline around them:
 *  - conformance of every tagger plugin the registry finds (options from a table keyed by
 *    plugin name; a tagger that cannot start with them must say why),
 *  - the lexical tagger: BM25 computed by hand on a small vocabulary, text normalisation,
 *    errors naming file and line, every shipped vocabulary, the real food-kitchen titles,
 *  - core/tags.c: domain names, `tema tags` (files written, reused, --force), and a
 *    training run that carries tags. */
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "dataset.h"
#include "registry.h"
#include "tags.h"
#include "testutil.h"
#include "text_features.h"

static char *vocab_dir(void)
{
    static char dir[4096];
    snprintf(dir, sizeof dir, "%s/experiments/tags", tu_source_root());
    return dir;
}

/* Options each known tagger is created with in the conformance loop (YAML, %s = the
 * shipped vocabulary folder); a tagger not listed gets its declared defaults. */
static const struct {
    const char *plugin, *yaml;
} TAGGER_OPTS[] = {
    {"lexical", "vocab_dir: %s\n"},
    /* hashed features: the contract holds without an installed model (bert: test_tagger_embedding) */
    {"embedding", "vocab_dir: %s\nextractor: {plugin: hashed}\n"},
};

/* create + tag + destroy */
static tema_status run_tagger(const tema_plugin *p, const tema_cfg *opts, const char *domain, const char *const *titles,
                              int64_t n, tema_tag_vocab *out, tema_err *err)
{
    const tema_tagger_ops *ops = p->ops;
    void *self = NULL;
    memset(out, 0, sizeof *out);
    tema_status st = tema_tagger_create(p, opts, domain, &self, err);
    if (st != TEMA_OK) return st;
    st = ops->tag(self, titles, n, out, err);
    ops->destroy(self);
    return st;
}

/* ---------------- conformance ---------------- */

static const char *const CONF_TITLES[] = {
    "Organic Green Tea Bags, 100 Count",
    NULL,
    "",
    "Dark Roast Whole Bean Coffee, 2 lb Bag",
    "!!! --- ???",
    "Stainless Steel Tea Kettle",
    "Chocolate Chip Cookies &amp; Cream (Pack of 12)",
    "Zzyzx Qwerty",
};
#define N_CONF ((int64_t)(sizeof CONF_TITLES / sizeof CONF_TITLES[0]))

START_TEST(every_tagger_keeps_the_contract)
{
    int n = 0;
    char store[600];
    snprintf(store, sizeof store, "%s/features", tu_tmpdir());
    tema_features_context(tu_cpu_registry(), NULL, store); /* taggers may ask for text features */
    for (size_t i = 0; i < tema_registry_count(tu_registry()); i++) {
        const tema_plugin *p = tema_registry_at(tu_registry(), i)->plugin;
        if (p->kind != TEMA_KIND_TAGGER) continue;
        n++;
        char extra[4300] = "";
        bool listed = false;
        for (size_t k = 0; k < sizeof TAGGER_OPTS / sizeof TAGGER_OPTS[0]; k++)
            if (!strcmp(TAGGER_OPTS[k].plugin, p->name)) {
                snprintf(extra, sizeof extra, TAGGER_OPTS[k].yaml, vocab_dir());
                listed = true;
            }
        tema_cfg *opts = tu_plugin_opts(p, extra);
        tema_tag_vocab v = {0};
        tema_err err = {0};
        tema_status st = run_tagger(p, opts, "food", CONF_TITLES, N_CONF, &v, &err);
        if (st != TEMA_OK && !listed) {
            /* e.g. an LLM tagger without an endpoint: it must say why */
            ck_assert_msg(err.msg[0] != '\0', "tagger %s failed (%s) without a message", p->name, tema_status_name(st));
            tu_skip("tagger", "%s with default options: %s", p->name, err.msg);
            tema_cfg_free(opts);
            continue;
        }
        ck_assert_msg(st == TEMA_OK, "tagger %s: %s", p->name, err.msg);
        ck_assert_msg(v.n_tags >= 1 && v.tags && v.score, "tagger %s returned no vocabulary", p->name);
        for (int32_t t = 0; t < v.n_tags; t++) {
            ck_assert_msg(v.tags[t] && v.tags[t][0], "tagger %s: tag %d has no name", p->name, (int)t);
            ck_assert_msg(!strpbrk(v.tags[t], "\t\n\r"), "tagger %s: tag '%s' has a tab or line break", p->name,
                          v.tags[t]);
            for (int32_t u = 0; u < t; u++)
                ck_assert_msg(strcmp(v.tags[t], v.tags[u]) != 0, "tagger %s: tag '%s' twice", p->name, v.tags[t]);
        }
        for (int64_t it = 0; it < N_CONF; it++)
            for (int32_t t = 0; t < v.n_tags; t++) {
                float s = v.score[it * v.n_tags + t];
                ck_assert_msg(s == 0 || (s >= 1 && s <= 100), "tagger %s: item %lld tag %d: score %g not 0 or 1..100",
                              p->name, (long long)it, (int)t, (double)s);
                if (!CONF_TITLES[it] || !CONF_TITLES[it][0])
                    ck_assert_msg(s == 0, "tagger %s: untitled item %lld scores %g", p->name, (long long)it, (double)s);
            }
        /* deterministic: a second instance gives the same vocabulary and scores */
        tema_tag_vocab w = {0};
        ck_assert_msg(run_tagger(p, opts, "food", CONF_TITLES, N_CONF, &w, &err) == TEMA_OK, "%s", err.msg);
        ck_assert_int_eq(w.n_tags, v.n_tags);
        for (int32_t t = 0; t < v.n_tags; t++) ck_assert_str_eq(w.tags[t], v.tags[t]);
        ck_assert(!memcmp(w.score, v.score, (size_t)(N_CONF * v.n_tags) * sizeof *v.score));
        tu_free_tag_vocab(&w);
        /* no items: still a vocabulary */
        ck_assert_msg(run_tagger(p, opts, "food", NULL, 0, &w, &err) == TEMA_OK, "tagger %s, 0 items: %s", p->name,
                      err.msg);
        ck_assert_int_eq(w.n_tags, v.n_tags);
        tu_free_tag_vocab(&w);
        tu_free_tag_vocab(&v);
        tema_cfg_free(opts);
    }
    ck_assert_msg(n >= 1, "no tagger plugin found (TEMA_PLUGIN_PATH=%s)", getenv("TEMA_PLUGIN_PATH"));
}
END_TEST

/* ---------------- lexical ---------------- */

static const tema_plugin *lexical(void)
{
    const tema_plugin *p = tema_registry_find(tu_registry(), TEMA_KIND_TAGGER, "lexical");
    ck_assert_msg(p != NULL, "tagger lexical not found");
    return p;
}

static char g_dir[4096];

static const char *write_vocab(const char *domain, const char *text)
{
    static char path[4300];
    snprintf(path, sizeof path, "%s/%s.yaml", g_dir, domain);
    tu_write(path, text);
    return path;
}

static tema_status lexical_in_dir(const char *dir, const char *extra, const char *domain, const char *const *titles,
                                  int64_t n, tema_tag_vocab *out, tema_err *err)
{
    char yaml[4400];
    snprintf(yaml, sizeof yaml, "vocab_dir: %s\n%s", dir, extra ? extra : "");
    tema_cfg *opts = tu_plugin_opts(lexical(), yaml);
    tema_status st = run_tagger(lexical(), opts, domain, titles, n, out, err);
    tema_cfg_free(opts);
    return st;
}

static int tag_index(const tema_tag_vocab *v, const char *name)
{
    for (int32_t t = 0; t < v->n_tags; t++)
        if (!strcmp(v->tags[t], name)) return t;
    ck_abort_msg("tag '%s' not in the vocabulary", name);
    return -1;
}

static double idf(double n_docs, double df) { return log(1.0 + (n_docs - df + 0.5) / (df + 0.5)); }

/* BM25 term weight with k1 = 1.2, b = 0.75 */
static double bm25(double idf_, double tf, double dl, double avgdl)
{
    return idf_ * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * dl / avgdl));
}

START_TEST(lexical_bm25_by_hand)
{
    snprintf(g_dir, sizeof g_dir, "%s", tu_tmpdir());
    write_vocab("hand", "domain: hand\n"
                        "tags:\n"
                        "  - name: coffee\n"
                        "    synonyms: [espresso, k-cup]\n"
                        "  - name: tea\n"
                        "    synonyms: [green tea]\n"
                        "  - cookies\n");
    static const char *const titles[] = {
        "Dark Roast Coffee",      /* 0: dark roast coffee                 */
        "Green Tea Bags",         /* 1: green tea bag                     */
        "Espresso K-Cups",        /* 2: espresso k cup                    */
        "Chocolate Chip Cookies", /* 3: chocolate chip cooki              */
        "Plain Water",            /* 4: plain water                       */
        NULL,                     /* 5: no title: not a document          */
        "coffee COFFEE tea",      /* 6: coffee coffee tea                 */
        "The Cookie",             /* 7: cooki (stop word dropped)         */
    };
    tema_tag_vocab v;
    tema_err err = {0};
    /* scale_quantile 1: the largest raw score maps to 100, the rest proportionally */
    ck_assert_msg(lexical_in_dir(g_dir, "scale_quantile: 1\n", "hand", titles, 8, &v, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_int_eq(v.n_tags, 3);
    ck_assert_str_eq(v.tags[0], "coffee");
    ck_assert_str_eq(v.tags[1], "tea");
    ck_assert_str_eq(v.tags[2], "cookies");
    /* 7 documents, lengths 3,3,3,3,2,3,1 */
    const double N = 7, avg = 18.0 / 7.0;
    double raw[8][3] = {{0}};
    raw[0][0] = bm25(idf(N, 2), 1, 3, avg);                                 /* coffee, df 2 */
    raw[1][1] = bm25(idf(N, 2), 1, 3, avg) + bm25(idf(N, 1), 1, 3, avg);    /* tea + green tea */
    raw[2][0] = bm25(idf(N, 1), 1, 3, avg) + bm25(idf(N, 1), 1, 3, avg);    /* espresso + k cup */
    raw[3][2] = bm25(idf(N, 2), 1, 3, avg);                                 /* cooki */
    raw[6][0] = bm25(idf(N, 2), 2, 3, avg);                                 /* coffee twice */
    raw[6][1] = bm25(idf(N, 2), 1, 3, avg);                                 /* tea */
    raw[7][2] = bm25(idf(N, 2), 1, 1, avg);                                 /* cooki, short title */
    double max = 0;
    for (int i = 0; i < 8; i++)
        for (int t = 0; t < 3; t++) max = raw[i][t] > max ? raw[i][t] : max;
    for (int i = 0; i < 8; i++)
        for (int t = 0; t < 3; t++) {
            double want = raw[i][t] > 0 ? fmax(1, round(100 * raw[i][t] / max)) : 0;
            ck_assert_msg(fabs(v.score[i * 3 + t] - want) <= 0.5, "item %d (%s), tag %s: score %g, by hand %g", i,
                          titles[i] ? titles[i] : "NULL", v.tags[t], (double)v.score[i * 3 + t], want);
        }
    /* the orders the numbers imply */
    ck_assert(v.score[2 * 3 + 0] > v.score[0 * 3 + 0]); /* two rare synonyms beat one common word */
    ck_assert(v.score[6 * 3 + 0] > v.score[6 * 3 + 1]); /* "coffee" twice beats "tea" once */
    ck_assert(v.score[7 * 3 + 2] > v.score[3 * 3 + 2]); /* a shorter title weighs its match more */
    tu_free_tag_vocab(&v);
    /* default scale: the 0.9 quantile of the positive scores maps to 100, larger ones clamp */
    ck_assert_msg(lexical_in_dir(g_dir, NULL, "hand", titles, 8, &v, &err) == TEMA_OK, "%s", err.msg);
    int at100 = 0;
    for (int j = 0; j < 24; j++) at100 += v.score[j] == 100;
    ck_assert_int_ge(at100, 1);
    ck_assert_float_eq(v.score[4 * 3 + 0] + v.score[4 * 3 + 1] + v.score[4 * 3 + 2], 0); /* Plain Water */
    tu_free_tag_vocab(&v);
}
END_TEST

START_TEST(lexical_normalises_text)
{
    snprintf(g_dir, sizeof g_dir, "%s", tu_tmpdir());
    write_vocab("norm", "tags:\n"
                        "  - name: collector's edition\n"
                        "  - name: mac and cheese\n"
                        "  - name: glass\n"
                        "  - name: berry\n"
                        "  - name: tomato\n"
                        "  - name: knife\n"
                        "    synonyms: [knives]\n");
    static const char *const titles[] = {
        "Collectors Edition DVD",       /* 0: possessive 's and plural s fold to the same word */
        "Kraft Mac &amp; Cheese Dinner", /* 1: entity dropped, 'and' is a stop word */
        "Wine Glasses, Set of 4",       /* 2: glasses -> glass */
        "Mixed Berries",                /* 3: berries -> berri = berry */
        "Roma Tomatoes",                /* 4: tomatoes -> tomato */
        "Steak Knives",                 /* 5: irregular plural via its synonym */
        "Macaroni Cheese",              /* 6: not the phrase */
        "Glassware",                    /* 7: not the word */
        "COLLECTOR\xE2\x80\x99S EDITION", /* 8: U+2019 apostrophe, upper case */
        "Kraft\xC2\xAE Mac\xE2\x80\x94" "Cheese\xE2\x84\xA2", /* 9: (R), em dash and TM separate words */
        "Caf\xC3\xA9 Glass",                /* 10: an accented letter stays in its word */
    };
    const int want[11] = {0, 1, 2, 3, 4, 5, -1, -1, 0, 1, 2};
    tema_tag_vocab v;
    tema_err err = {0};
    ck_assert_msg(lexical_in_dir(g_dir, NULL, "norm", titles, 11, &v, &err) == TEMA_OK, "%s", err.msg);
    for (int i = 0; i < 11; i++)
        for (int t = 0; t < v.n_tags; t++)
            ck_assert_msg((v.score[i * v.n_tags + t] > 0) == (t == want[i]), "title '%s', tag '%s': score %g", titles[i],
                          v.tags[t], (double)v.score[i * v.n_tags + t]);
    tu_free_tag_vocab(&v);
}
END_TEST

/* A bad vocabulary fails with FILE:LINE and the status given. */
static void expect_vocab_error(const char *text, tema_status want, int line, const char *words)
{
    write_vocab("bad", text);
    tema_tag_vocab v;
    tema_err err = {0};
    static const char *const one[] = {"anything"};
    tema_status st = lexical_in_dir(g_dir, NULL, "bad", one, 1, &v, &err);
    ck_assert_msg(st == want, "expected %s, got %s: %s", tema_status_name(want), tema_status_name(st), err.msg);
    char where[4400];
    snprintf(where, sizeof where, "%s/bad.yaml:%d", g_dir, line);
    ck_assert_msg(strstr(err.msg, where), "message does not point at %s: %s", where, err.msg);
    ck_assert_msg(strstr(err.msg, words), "message lacks '%s': %s", words, err.msg);
}

START_TEST(lexical_vocab_errors_name_file_and_line)
{
    snprintf(g_dir, sizeof g_dir, "%s", tu_tmpdir());
    expect_vocab_error("tags:\n  - name: tea\n    synonym: [chai]\n", TEMA_EFORMAT, 3, "unknown key 'synonym'");
    expect_vocab_error("tags:\n  - name: tea\n    synonyms: [chai\n  - name: x\n", TEMA_EFORMAT, 4, "YAML error");
    expect_vocab_error("tags:\n  - name: tea\n  - name: coffee\n  - name: Tea\n", TEMA_EFORMAT, 4, "listed twice");
    expect_vocab_error("domain: food\ntags:\n  - tea\n", TEMA_EFORMAT, 1, "'food'");
    expect_vocab_error("tags: []\n", TEMA_EFORMAT, 1, "non-empty list");
    expect_vocab_error("tags:\n  - name: tea\n    synonyms: [chai, \"the\"]\n", TEMA_EFORMAT, 3, "no word");
    expect_vocab_error("tags:\n  - synonyms: [chai]\n", TEMA_EFORMAT, 2, "without a name");
    expect_vocab_error("\n\nvocabulary:\n  - tea\n", TEMA_EFORMAT, 3, "unknown top-level key");
    /* a missing file says where it looked and how to fix it */
    tema_tag_vocab v;
    tema_err err = {0};
    ck_assert_int_eq(lexical_in_dir(g_dir, NULL, "nosuchdomain", NULL, 0, &v, &err), TEMA_ENOTFOUND);
    ck_assert_msg(strstr(err.msg, "nosuchdomain.yaml") && strstr(err.msg, "hint"), "%s", err.msg);
    /* a domain name cannot walk out of the folder */
    ck_assert_int_eq(lexical_in_dir(g_dir, NULL, "../etc/passwd", NULL, 0, &v, &err), TEMA_EINVAL);
}
END_TEST

START_TEST(every_shipped_vocabulary_loads)
{
    DIR *d = opendir(vocab_dir());
    ck_assert_msg(d != NULL, "cannot open %s", vocab_dir());
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0) continue;
        char domain[256];
        snprintf(domain, sizeof domain, "%.*s", (int)(len - 5), e->d_name);
        static const char *const none[] = {NULL};
        tema_tag_vocab v;
        tema_err err = {0};
        ck_assert_msg(lexical_in_dir(vocab_dir(), NULL, domain, none, 1, &v, &err) == TEMA_OK, "%s", err.msg);
        ck_assert_msg(v.n_tags >= 20 && v.n_tags <= 45, "%s: %d tags (about 20-40 expected)", e->d_name, (int)v.n_tags);
        tu_free_tag_vocab(&v);
        n++;
    }
    closedir(d);
    ck_assert_int_ge(n, 6); /* food, kitchen, movie, book, synth_food, synth_kitchen */
}
END_TEST

static bool has_word(const char *title, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = title; (p = strcasestr(p, word)); p++) {
        bool start = p == title || !isalnum((unsigned char)p[-1]);
        bool end = !isalnum((unsigned char)p[n]);
        if (start && end) return true;
    }
    return false;
}

/* On the real titles: coverage, and titles naming a tag's word get that tag. */
static void check_real_domain(const tema_dataset *ds, int dom, const char *domain, const char *word, const char *tag,
                              double min_coverage)
{
    const int64_t n = dom ? ds->n_y : ds->n_x, first = dom ? ds->n_x : 0;
    const char *const *titles = (const char *const *)ds->title + first;
    tema_tag_vocab v;
    tema_err err = {0};
    ck_assert_msg(lexical_in_dir(vocab_dir(), NULL, domain, titles, n, &v, &err) == TEMA_OK, "%s", err.msg);
    const int t = tag_index(&v, tag);
    int64_t titled = 0, tagged = 0, with_word = 0, word_tagged = 0, word_top3 = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *row = v.score + i * v.n_tags;
        bool any = false;
        for (int32_t k = 0; k < v.n_tags; k++) any |= row[k] > 0;
        if (!titles[i] || !titles[i][0]) {
            ck_assert_msg(!any, "untitled item %lld has a tag", (long long)i);
            continue;
        }
        titled++;
        tagged += any;
        if (!has_word(titles[i], word)) continue;
        with_word++;
        word_tagged += row[t] > 0;
        int better = 0;
        for (int32_t k = 0; k < v.n_tags; k++) better += row[k] > row[t];
        word_top3 += row[t] > 0 && better < 3;
    }
    fprintf(stderr, "%s: %lld of %lld titled items tagged; '%s' in %lld titles, tag '%s' on %lld (top 3: %lld)\n", domain,
            (long long)tagged, (long long)titled, word, (long long)with_word, tag, (long long)word_tagged,
            (long long)word_top3);
    ck_assert_int_gt(titled, 1000);
    ck_assert_msg((double)tagged >= min_coverage * (double)titled, "%s: only %lld of %lld titled items got a tag", domain,
                  (long long)tagged, (long long)titled);
    ck_assert_int_gt(with_word, 100);
    ck_assert_msg(word_tagged == with_word, "%s: %lld of %lld titles saying '%s' lack tag '%s'", domain,
                  (long long)(with_word - word_tagged), (long long)with_word, word, tag);
    ck_assert_msg((double)word_top3 >= 0.8 * (double)with_word, "%s: tag '%s' in the top 3 of only %lld of %lld", domain,
                  tag, (long long)word_top3, (long long)with_word);
    tu_free_tag_vocab(&v);
}

START_TEST(lexical_on_real_food_kitchen_titles)
{
    TU_REQUIRE_DATA("food-kitchen");
    tema_dataset *ds = NULL;
    tema_err err = {0};
    ck_assert_msg(tema_dataset_load(tu_data_path("food-kitchen"), NULL, &ds, &err) == TEMA_OK, "%s", err.msg);
    check_real_domain(ds, 0, "food", "coffee", "coffee", 0.9);
    check_real_domain(ds, 0, "food", "tea", "tea", 0.9);
    check_real_domain(ds, 1, "kitchen", "vacuum", "vacuums & floor care", 0.8);
    /* one item read by eye: its best tag is coffee */
    tema_tag_vocab v;
    const char *title = NULL;
    for (int32_t i = 0; i < ds->n_x && !title; i++)
        if (ds->title[i] && strstr(ds->title[i], "Ground Coffee")) title = ds->title[i];
    ck_assert_ptr_nonnull(title);
    ck_assert_msg(lexical_in_dir(vocab_dir(), NULL, "food", (const char *const *)ds->title, ds->n_x, &v, &err) == TEMA_OK,
                  "%s", err.msg);
    int64_t item = -1;
    for (int32_t i = 0; i < ds->n_x && item < 0; i++)
        if (ds->title[i] == title) item = i;
    const int t = tag_index(&v, "coffee");
    for (int32_t k = 0; k < v.n_tags; k++)
        ck_assert_msg(v.score[item * v.n_tags + k] <= v.score[item * v.n_tags + t], "'%s': tag '%s' beats coffee", title,
                      v.tags[k]);
    tu_free_tag_vocab(&v);
    tema_dataset_free(ds);
}
END_TEST

/* ---------------- core/tags.c ---------------- */

static tema_cfg *cfg_of(const char *yaml)
{
    tema_cfg *c = NULL;
    tema_err err = {0};
    ck_assert_msg(tema_cfg_parse_string(yaml, "exp.yaml", &c, &err) == TEMA_OK, "%s", err.msg);
    return c;
}

static void expect_domains(const char *cfg_yaml, const char *ds_path, const char *x, const char *y)
{
    tema_cfg *c = cfg_of(cfg_yaml);
    tema_dataset ds = {.path = (char *)ds_path};
    char dom[2][TEMA_TAGS_DOMAIN_MAX];
    tema_err err = {0};
    tema_status st = tema_tags_domains(c, &ds, dom, &err);
    if (x) {
        ck_assert_msg(st == TEMA_OK, "%s: %s", ds_path, err.msg);
        ck_assert_str_eq(dom[0], x);
        ck_assert_str_eq(dom[1], y);
    } else {
        ck_assert_msg(st == TEMA_EINVAL, "%s: expected an error", ds_path);
        ck_assert_msg(strstr(err.msg, y), "%s: message lacks '%s': %s", ds_path, y, err.msg);
    }
    tema_cfg_free(c);
}

START_TEST(domain_names)
{
    char tmp[1024], readme[1100], named[1200], synth[1100];
    ck_assert(strlen(tu_tmpdir()) < 900);
    snprintf(tmp, sizeof tmp, "%s", tu_tmpdir());
    /* folder or archive names like food-kitchen-c2dsr */
    expect_domains("dataset: {path: x}\n", "/data/food-kitchen-c2dsr.tar.gz", "food", "kitchen");
    expect_domains("dataset: {path: x}\n", "/data/Movie_Book", "movie", "book");
    /* a README that says X = ... and Y = ... */
    snprintf(readme, sizeof readme, "%s/toy", tmp);
    mkdir(readme, 0755);
    snprintf(named, sizeof named, "%s/README.md", readme);
    tu_write(named, "# toy\n\ncut from food-kitchen. X = Food (20 items), Y = Kitchen (20 items).\n");
    expect_domains("dataset: {path: x}\n", readme, "food", "kitchen");
    /* the synthetic data, by its README or the special path */
    snprintf(synth, sizeof synth, "%s/mydata", tmp);
    mkdir(synth, 0755);
    snprintf(named, sizeof named, "%s/README.md", synth);
    tu_write(named, "# Synthetic two-domain dataset (tema data synth)\n");
    expect_domains("dataset: {path: x}\n", synth, "synth_food", "synth_kitchen");
    expect_domains("dataset: {path: synthetic}\n", "/r/_data/synthetic-7", "synth_food", "synth_kitchen");
    /* dataset.domains wins */
    expect_domains("dataset: {path: x, domains: [movie, book]}\n", "/data/food-kitchen", "movie", "book");
    /* and is checked */
    expect_domains("dataset: {path: x, domains: [food]}\n", "/data/food-kitchen", NULL, "exactly two");
    expect_domains("dataset: {path: x, domains: [food, Kitchen/x]}\n", "/data/food-kitchen", NULL, "dataset.domains.1");
    /* nothing to go by: a hint to set them */
    expect_domains("dataset: {path: x}\n", "/data/amazon", NULL, "dataset.domains");
}
END_TEST

/* The one folder under dir (the store key), as dir/<name>. */
static void only_subdir(const char *dir, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "%s does not exist", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(out, cap, "%s/%s", dir, e->d_name);
            n++;
        }
    closedir(d);
    ck_assert_msg(n == 1, "%s holds %d folders, expected 1", dir, n);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

START_TEST(tags_command_stores_and_reuses)
{
    char tmp[1024], exp[1100], args[4000], res[1100], base[1200], store[1500], path[1600];
    ck_assert(strlen(tu_tmpdir()) < 900);
    snprintf(tmp, sizeof tmp, "%s", tu_tmpdir());
    snprintf(exp, sizeof exp, "%s/exp.yaml", tmp);
    snprintf(res, sizeof res, "%s/results", tmp);
    char text[4800];
    snprintf(text, sizeof text,
             "name: tags-test\n"
             "dataset: {path: synthetic}\n"
             "model:\n"
             "  tagger: {plugin: lexical, vocab_dir: %s}\n"
             "  tag_select: {plugin: topr, r: 2}\n"
             "  tag_repr: {plugin: weighted}\n"
             "train: {seed: 5}\n",
             vocab_dir());
    tu_write(exp, text);
    snprintf(args, sizeof args, "tags '%s' --results '%s'", exp, res);
    char *out = NULL, *errout = NULL;
    int rc = tu_tema(args, &out, &errout);
    ck_assert_msg(rc == 0, "tema tags failed (%d): %s", rc, errout);
    ck_assert_msg(strstr(out, "computed") && strstr(out, "synth_food") && strstr(out, "synth_kitchen"), "%s", out);
    ck_assert_msg(strstr(out, "after topr"), "%s", out);
    snprintf(base, sizeof base, "%s/tags/synthetic-5", res);
    only_subdir(base, store, sizeof store);
    ck_assert(tu_exists(store, "vocab.tsv") && tu_exists(store, "scores.tsv") && tu_exists(store, "meta.json"));
    snprintf(path, sizeof path, "%s/meta.json", store);
    char *meta1 = slurp(path);
    ck_assert_msg(strstr(meta1, "\"tagger\":\"lexical\"") && strstr(meta1, "\"synth_kitchen\""), "%s", meta1);
    snprintf(path, sizeof path, "%s/vocab.tsv", store);
    char *vocab = slurp(path);
    ck_assert_msg(!strncmp(vocab, "tag\tdomain\tdomain_name\tname\n0\tX\tsynth_food\ttea\n", 44), "%s", vocab);
    snprintf(path, sizeof path, "%s/scores.tsv", store);
    char *scores1 = slurp(path);
    ck_assert_msg(!strncmp(scores1, "item\ttag\tscore\n", 15) && strlen(scores1) > 1000, "%.200s", scores1);
    free(out);
    free(errout);
    /* again: read back, same files, same summary numbers */
    rc = tu_tema(args, &out, &errout);
    ck_assert_msg(rc == 0, "second tema tags failed (%d): %s", rc, errout);
    ck_assert_msg(strstr(out, "reused"), "the second call did not reuse the store: %s", out);
    snprintf(path, sizeof path, "%s/meta.json", store);
    char *meta2 = slurp(path);
    ck_assert_str_eq(meta1, meta2);
    free(out);
    free(errout);
    /* --force computes again, to the same scores */
    snprintf(args, sizeof args, "tags '%s' --results '%s' --force", exp, res);
    rc = tu_tema(args, &out, &errout);
    ck_assert_msg(rc == 0 && strstr(out, "computed"), "%s%s", out, errout);
    snprintf(path, sizeof path, "%s/scores.tsv", store);
    char *scores2 = slurp(path);
    ck_assert_str_eq(scores1, scores2);
    free(out);
    free(errout);
    /* a damaged store is an error that says how to recover */
    snprintf(path, sizeof path, "%s/scores.tsv", store);
    tu_write(path, "item\ttag\tscore\n0\t999999\t5\n");
    snprintf(args, sizeof args, "tags '%s' --results '%s'", exp, res);
    rc = tu_tema(args, &out, &errout);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(errout, "scores.tsv:2") && strstr(errout, "delete that folder"), "%s", errout);
    free(out);
    free(errout);
    /* an incomplete one (a file missing) is rebuilt */
    remove(path);
    rc = tu_tema(args, &out, &errout);
    ck_assert_msg(rc == 0 && strstr(out, "computed"), "%s%s", out, errout);
    char *scores3 = slurp(path);
    ck_assert_str_eq(scores1, scores3);
    free(scores3);
    free(out);
    free(errout);
    /* other settings: another store beside it; no tag_select / tag_repr: hybrid + weighted */
    char vocab_copy[1200], src[4200], dst[1300], *text2;
    snprintf(vocab_copy, sizeof vocab_copy, "%s/vocab", tmp);
    mkdir(vocab_copy, 0755);
    for (int d = 0; d < 2; d++) {
        const char *dom = d ? "synth_kitchen" : "synth_food";
        snprintf(src, sizeof src, "%s/%s.yaml", vocab_dir(), dom);
        snprintf(dst, sizeof dst, "%s/%s.yaml", vocab_copy, dom);
        text2 = slurp(src);
        tu_write(dst, text2);
        free(text2);
    }
    snprintf(text, sizeof text,
             "name: tags-test\n"
             "dataset: {path: synthetic}\n"
             "model:\n"
             "  tagger: {plugin: lexical, vocab_dir: %s}\n"
             "train: {seed: 5}\n",
             vocab_copy);
    tu_write(exp, text);
    rc = tu_tema(args, &out, &errout);
    ck_assert_msg(rc == 0 && strstr(out, "computed") && strstr(out, "after hybrid") && strstr(out, "tag_repr weighted"),
                  "%s%s", out, errout);
    free(out);
    free(errout);
    rc = tu_tema(args, &out, &errout);
    ck_assert_msg(rc == 0 && strstr(out, "reused"), "%s%s", out, errout);
    free(out);
    free(errout);
    /* editing a vocabulary file makes a new store: stale scores are never read */
    snprintf(dst, sizeof dst, "%s/synth_food.yaml", vocab_copy);
    text2 = slurp(dst);
    char *more = malloc(strlen(text2) + 64);
    sprintf(more, "%s  - name: kettle corn\n", text2);
    tu_write(dst, more);
    free(more);
    free(text2);
    rc = tu_tema(args, &out, &errout);
    ck_assert_msg(rc == 0 && strstr(out, "computed") && strstr(out, "(synth_food): 23 tags"), "%s%s", out, errout);
    free(out);
    free(errout);
    /* no tagger: nothing to do, said so */
    snprintf(text, sizeof text, "name: none\ndataset: {path: synthetic}\n");
    tu_write(exp, text);
    snprintf(args, sizeof args, "tags '%s' --results '%s'", exp, res);
    rc = tu_tema(args, &out, &errout);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(errout, "no model.tagger"), "%s", errout);
    free(out);
    free(errout);
    free(meta1);
    free(meta2);
    free(vocab);
    free(scores1);
    free(scores2);
}
END_TEST

/* model.domain_taggers: one domain tagged by another tagger (here lexical with a two-tag
 * vocabulary of its own), the other by model.tagger; a store of its own, and errors that name
 * a domain the dataset does not have. */
START_TEST(a_domain_can_have_its_own_tagger)
{
    char tmp[1024], exp[1100], args[4000], res[1100], own[1100], path[1700], text[9000];
    snprintf(tmp, sizeof tmp, "%s", tu_tmpdir());
    snprintf(exp, sizeof exp, "%s/exp.yaml", tmp);
    snprintf(res, sizeof res, "%s/results", tmp);
    snprintf(own, sizeof own, "%s/own-vocab", tmp);
    ck_assert_int_eq(mkdir(own, 0755), 0);
    snprintf(path, sizeof path, "%s/synth_kitchen.yaml", own);
    tu_write(path, "tags:\n  - {name: pots and pans, synonyms: [pan, pot, skillet]}\n  - {name: knives, synonyms: "
                   "[knife]}\n");
    snprintf(text, sizeof text,
             "name: tags-own\ndataset: {path: synthetic}\nmodel:\n  tagger: {plugin: lexical, vocab_dir: %s}\n"
             "  domain_taggers: {synth_kitchen: {plugin: lexical, vocab_dir: %s}}\ntrain: {seed: 5}\n",
             vocab_dir(), own);
    tu_write(exp, text);
    snprintf(args, sizeof args, "tags '%s' --results '%s'", exp, res);
    char *out = NULL, *errout = NULL;
    ck_assert_msg(tu_tema(args, &out, &errout) == 0, "%s", errout);
    char base[1200], store[1500];
    snprintf(base, sizeof base, "%s/tags/synthetic-5", res);
    only_subdir(base, store, sizeof store);
    snprintf(path, sizeof path, "%s/vocab.tsv", store);
    char *vocab = slurp(path);
    /* X keeps the shipped vocabulary, Y has exactly the two tags of its own */
    ck_assert_msg(strstr(vocab, "\tX\tsynth_food\ttea\n"), "%s", vocab);
    ck_assert_msg(strstr(vocab, "\tY\tsynth_kitchen\tpots and pans\n") && strstr(vocab, "\tY\tsynth_kitchen\tknives\n"),
                  "%s", vocab);
    int y_tags = 0;
    for (const char *q = vocab; (q = strstr(q, "\tY\t")); q++) y_tags++;
    ck_assert_int_eq(y_tags, 2);
    ck_assert_msg(strstr(out, "lexical 1.0.0 (synth_food), lexical 1.0.0 (synth_kitchen)") || strstr(errout, "(synth_kitchen)"),
                  "%s%s", out, errout);
    free(vocab);
    free(out);
    free(errout);
    /* without the override: another store */
    snprintf(text, sizeof text,
             "name: tags-own\ndataset: {path: synthetic}\nmodel:\n  tagger: {plugin: lexical, vocab_dir: %s}\n"
             "train: {seed: 5}\n", vocab_dir());
    tu_write(exp, text);
    ck_assert_int_eq(tu_tema(args, &out, &errout), 0);
    ck_assert_msg(strstr(out, "computed"), "the plain tagger reused the store of the override: %s", out);
    free(out);
    free(errout);
    /* a domain the dataset does not have */
    snprintf(text, sizeof text,
             "name: tags-own\ndataset: {path: synthetic}\nmodel:\n  tagger: {plugin: lexical, vocab_dir: %s}\n"
             "  domain_taggers: {pets: {plugin: lexical}}\ntrain: {seed: 5}\n", vocab_dir());
    tu_write(exp, text);
    ck_assert_int_eq(tu_tema(args, &out, &errout), 1);
    ck_assert_msg(strstr(errout, "model.domain_taggers.pets: the dataset has no domain 'pets'") &&
                      strstr(errout, "synth_food and synth_kitchen"), "%s", errout);
    free(out);
    free(errout);
    /* not a domain name: tema check says where */
    snprintf(text, sizeof text,
             "name: tags-own\ndataset: {path: synthetic}\nmodel:\n  tagger: {plugin: lexical}\n"
             "  domain_taggers: {Pets Food: {plugin: lexical}}\n");
    tu_write(exp, text);
    snprintf(args, sizeof args, "check '%s'", exp);
    ck_assert_int_eq(tu_tema(args, &out, &errout), 1);
    ck_assert_msg(strstr(errout, "exp.yaml:5:") && strstr(errout, "'Pets Food' is not a domain name"), "%s", errout);
    free(out);
    free(errout);
}
END_TEST

START_TEST(training_run_carries_tags)
{
    TU_REQUIRE_DATA("toy");
    char tmp[4096], exp[4200], args[13000], text[8000];
    snprintf(tmp, sizeof tmp, "%s", tu_tmpdir());
    snprintf(exp, sizeof exp, "%s/exp.yaml", tmp);
    snprintf(text, sizeof text,
             "name: toy-tags\n"
             "dataset: {path: %s}\n"
             "model:\n"
             "  encoders: [{plugin: id, dim: 8}]\n"
             "  attention: {plugin: single, blocks: 1, heads: 1}\n"
             "  tagger: {plugin: lexical, vocab_dir: %s}\n"
             "  tag_select: {plugin: hybrid, r: 2, theta: 50, max: 4}\n"
             "  tag_repr: {plugin: multihot}\n"
             "train: {epochs: 1, batch_size: 8}\n"
             "eval: {protocol: full}\n",
             tu_data_path("toy"), vocab_dir());
    tu_write(exp, text);
    snprintf(args, sizeof args, "run '%s' --results '%s/results'", exp, tmp);
    char *out = NULL, *errout = NULL;
    int rc = tu_tema(args, &out, &errout);
    ck_assert_msg(rc == 0, "tema run with tags failed (%d): %s", rc, errout);
    ck_assert_msg(strstr(errout, "tags: lexical") && strstr(errout, "domain X (food)") &&
                      strstr(errout, "after hybrid"),
                  "no tag summary in: %s", errout);
    free(out);
    free(errout);
    /* tag_select without a tagger is a configuration error */
    snprintf(text, sizeof text,
             "name: toy-no-tagger\n"
             "dataset: {path: %s}\n"
             "model:\n"
             "  encoders: [{plugin: id, dim: 8}]\n"
             "  tag_select: {plugin: topr}\n"
             "train: {epochs: 1}\n"
             "eval: {protocol: full}\n",
             tu_data_path("toy"));
    tu_write(exp, text);
    snprintf(args, sizeof args, "run '%s' --results '%s/results'", exp, tmp);
    rc = tu_tema(args, &out, &errout);
    ck_assert_int_ne(rc, 0);
    ck_assert_msg(strstr(errout, "model.tag_select is set but model.tagger is not"), "%s", errout);
    free(out);
    free(errout);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("tagger");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, every_tagger_keeps_the_contract);
    tcase_add_test(tc, lexical_bm25_by_hand);
    tcase_add_test(tc, lexical_normalises_text);
    tcase_add_test(tc, lexical_vocab_errors_name_file_and_line);
    tcase_add_test(tc, every_shipped_vocabulary_loads);
    tcase_add_test(tc, lexical_on_real_food_kitchen_titles);
    tcase_add_test(tc, domain_names);
    tcase_add_test(tc, tags_command_stores_and_reuses);
    tcase_add_test(tc, a_domain_can_have_its_own_tagger);
    tcase_add_test(tc, training_run_carries_tags);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
