/* tests/test_text_features.c - the conformance suite every text_features plugin passes, and the
 * feature store behind host->text_features.
 *
 * Each plugin of the kind found by the registry (hashed, bert, and any added later) gets the
 * same texts: rows of its declared width, finite, all-zero for NULL and "" texts, nonzero for
 * real ones, the same bits on a second computation and with 2 threads, and the same rows for
 * a duplicated text. A plugin that cannot start here for want of an installed model (create
 * fails with TEMA_ENOTFOUND) is reported as SKIP with its message.
 *
 * The store: a second call with the same inputs reads the stored .npy (same bits, no new
 * file), a changed text is a new key, a stored file that was cut short is an error naming it,
 * and a plugin's failure leaves nothing behind. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "host.h"
#include "registry.h"
#include "store_key.h"
#include "testutil.h"
#include "text_features.h"

static const char *const texts[] = {
    "Lavazza Super Crema whole bean espresso coffee, 2.2 lb",
    NULL,
    "Stainless steel tea kettle with whistle, 2.5 quart",
    "",
    "Lavazza Super Crema whole bean espresso coffee, 2.2 lb",
    "Café Bustelo ground coffee &amp; tea sampler (12 count)",
};
#define NT ((int64_t)(sizeof texts / sizeof texts[0]))

static char *store_dir(void)
{
    static int k;
    char *d = malloc(600);
    snprintf(d, 600, "%s/store-%d", tu_tmpdir(), k++);
    return d;
}

static tema_status run(const char *extractor, const char *dir, const char *const *t, int64_t n, float **out,
                       int64_t *dim, tema_err *err)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "extractor: %s\n", extractor);
    tema_cfg *c = NULL;
    ck_assert_msg(tema_cfg_parse_string(yaml, "test", &c, err) == TEMA_OK, "%s", err->msg);
    tema_features_context(tu_cpu_registry(), NULL, dir);
    tema_status st = tema_features_get(c, "extractor", t, n, "test", out, dim, err);
    tema_cfg_free(c);
    return st;
}

static int count_files(const char *dir, const char *suffix)
{
    int n = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t l = strlen(e->d_name), m = strlen(suffix);
        n += l > m && !strcmp(e->d_name + l - m, suffix);
    }
    if (d) closedir(d);
    return n;
}

static void conform(const tema_plugin *p)
{
    char ex[256];
    snprintf(ex, sizeof ex, "{plugin: %s}", p->name);
    float *a = NULL, *b = NULL;
    int64_t dim = 0, dim2 = 0;
    tema_err err = {0};
    char *d1 = store_dir(), *d2 = store_dir();
    tema_status st = run(ex, d1, texts, NT, &a, &dim, &err);
    if (st == TEMA_ENOTFOUND) {
        tu_skip("text_features", "%s: %s", p->name, err.msg);
        free(d1), free(d2);
        return;
    }
    ck_assert_msg(st == TEMA_OK, "%s: %s", p->name, err.msg);
    ck_assert_msg(dim >= 1, "%s: width %lld", p->name, (long long)dim);
    for (int64_t i = 0; i < NT; i++) {
        double ss = 0;
        for (int64_t j = 0; j < dim; j++) {
            ck_assert_msg(isfinite(a[i * dim + j]), "%s: row %lld not finite", p->name, (long long)i);
            ss += (double)a[i * dim + j] * a[i * dim + j];
        }
        const bool empty = !texts[i] || !texts[i][0];
        ck_assert_msg(empty ? ss == 0 : ss > 0, "%s: row %lld (%s) has squared norm %g", p->name, (long long)i,
                      texts[i] ? texts[i] : "NULL", ss);
    }
    /* The same text twice in one batch: the same row up to float rounding (OpenBLAS's Haswell/Zen
     * sgemm, AMD EPYC here, rounds a row differently by its place in the product). */
    for (int64_t j = 0; j < dim; j++)
        ck_assert_msg(fabsf(a[j] - a[4 * dim + j]) <= 1e-5f * (1.0f + fabsf(a[j])),
                      "%s: the same text gave two rows (column %lld: %.9g vs %.9g)", p->name, (long long)j, a[j],
                      a[4 * dim + j]);
    /* computed again, with 2 threads, into a fresh store: the same bits */
    omp_set_num_threads(2);
    st = run(ex, d2, texts, NT, &b, &dim2, &err);
    omp_set_num_threads(1);
    ck_assert_msg(st == TEMA_OK, "%s: %s", p->name, err.msg);
    ck_assert_int_eq(dim2, dim);
    ck_assert_msg(!memcmp(a, b, (size_t)(NT * dim) * sizeof *a), "%s: rows differ between runs or threads", p->name);
    tema_host_get()->free(a);
    tema_host_get()->free(b);
    free(d1), free(d2);
}

START_TEST(every_text_features_plugin_conforms)
{
    tema_registry *reg = tu_cpu_registry();
    int n = 0;
    for (size_t i = 0; i < tema_registry_count(reg); i++) {
        const tema_plugin *p = tema_registry_at(reg, i)->plugin;
        if (p->kind != TEMA_KIND_TEXT_FEATURES) continue;
        n++;
        conform(p);
    }
    ck_assert_int_ge(n, 2); /* hashed, bert */
}
END_TEST

START_TEST(store_reuses_and_keys_by_text)
{
    char *dir = store_dir(), sub[700];
    snprintf(sub, sizeof sub, "%s/features/hashed", dir);
    float *a = NULL, *b = NULL, *c = NULL;
    int64_t dim = 0;
    tema_err err = {0};
    ck_assert_msg(run("{plugin: hashed, dim: 64}", dir, texts, NT, &a, &dim, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_int_eq(count_files(sub, ".npy"), 1);
    ck_assert_int_eq(count_files(sub, ".json"), 1);
    ck_assert_msg(run("{plugin: hashed, dim: 64}", dir, texts, NT, &b, &dim, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_int_eq(count_files(sub, ".npy"), 1); /* read back, not computed again */
    ck_assert(!memcmp(a, b, (size_t)(NT * dim) * sizeof *a));
    const char *changed[NT];
    memcpy(changed, texts, sizeof changed);
    changed[2] = "Cast iron skillet, 12 inch";
    ck_assert_msg(run("{plugin: hashed, dim: 64}", dir, changed, NT, &c, &dim, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_int_eq(count_files(sub, ".npy"), 2);
    const tema_host *h = tema_host_get();
    h->free(a), h->free(b), h->free(c);
    a = b = c = NULL;

    /* a stored file cut short: an error that names it, never wrong rows */
    DIR *d = opendir(sub);
    char victim[1400] = "";
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".npy") && !victim[0]) snprintf(victim, sizeof victim, "%s/%s", sub, e->d_name);
    closedir(d);
    ck_assert_int_eq(truncate(victim, 200), 0);
    tema_status st = run("{plugin: hashed, dim: 64}", dir, texts, NT, &a, &dim, &err);
    if (st == TEMA_OK) { /* the victim was the other key */
        h->free(a);
        st = run("{plugin: hashed, dim: 64}", dir, changed, NT, &a, &dim, &err);
    }
    ck_assert_int_ne(st, TEMA_OK);
    ck_assert_msg(strstr(err.msg, victim) != NULL, "error does not name %s: %s", victim, err.msg);
    ck_assert(a == NULL);
    free(dir);
}
END_TEST

/* The backend options that change the products' numerics key the store (bf16 features are
 * never read back by an fp32 run); threads and options at their defaults do not, so stores
 * written before the precision option keep their keys. */
static int run_with_backend(const char *backend, const char *dir, float **out, tema_err *err)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "backend: %s\nextractor: {plugin: hashed, dim: 64}\n", backend);
    tema_cfg *c = NULL;
    int64_t dim = 0;
    ck_assert_msg(tema_cfg_parse_string(yaml, "test", &c, err) == TEMA_OK, "%s", err->msg);
    tema_features_context(tu_cpu_registry(), c, dir);
    tema_status st = tema_features_get(c, "extractor", texts, NT, "test", out, &dim, err);
    tema_features_context(NULL, NULL, NULL);
    tema_cfg_free(c);
    return st;
}

START_TEST(backend_numerics_key_the_store)
{
    char *dir = store_dir(), sub[700];
    snprintf(sub, sizeof sub, "%s/features/hashed", dir);
    float *a = NULL;
    tema_err err = {0};
    const tema_host *h = tema_host_get();
    ck_assert_msg(run("{plugin: hashed, dim: 64}", dir, texts, NT, &a, &(int64_t){0}, &err) == TEMA_OK, "%s", err.msg);
    h->free(a);
    ck_assert_msg(run_with_backend("{plugin: cpu, threads: 3, precision: fp32}", dir, &a, &err) == TEMA_OK, "%s",
                  err.msg);
    h->free(a);
    ck_assert_int_eq(count_files(sub, ".npy"), 1);
    tema_status st = run_with_backend("{plugin: cpu, precision: bf16}", dir, &a, &err);
    if (st == TEMA_EUNSUPPORTED || st == TEMA_ENOTFOUND) {
        tu_skip(__func__, "bf16 part: %s", err.msg);
        free(dir);
        return;
    }
    ck_assert_msg(st == TEMA_OK, "%s", err.msg);
    h->free(a);
    ck_assert_int_eq(count_files(sub, ".npy"), 2);
    free(dir);
}
END_TEST

/* A store key follows what a path option's files hold, not where they lie or when they were
 * written: a model folder copied elsewhere (new path, new mtime) keeps the key; one changed byte
 * of a big file (hashed by sampled blocks) changes it. */
static void write_bytes(const char *path, size_t n, unsigned seed)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f, "cannot write %s", path);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        fputc((int)(seed >> 16) & 0xff, f);
    }
    fclose(f);
}

START_TEST(store_keys_follow_content_not_path_or_mtime)
{
    const char *tmp = tu_tmpdir();
    char a[700], b[700], fa[800], fb[800], small[800];
    snprintf(a, sizeof a, "%s/model-a", tmp);
    snprintf(b, sizeof b, "%s/elsewhere/model-b", tmp);
    snprintf(fa, sizeof fa, "%s/model.safetensors", a);
    snprintf(fb, sizeof fb, "%s/model.safetensors", b);
    ck_assert_int_eq(tu_sh(tmp, "mkdir -p model-a elsewhere/model-b", NULL), 0);
    const size_t big = (6u << 20) + 12345; /* over the 4 MiB of whole-file hashing */
    write_bytes(fa, big, 7);
    write_bytes(fb, big, 7);
    snprintf(small, sizeof small, "%s/vocab.txt", a);
    tu_write(small, "[PAD]\n[UNK]\ncoffee\n");
    snprintf(small, sizeof small, "%s/vocab.txt", b);
    tu_write(small, "[PAD]\n[UNK]\ncoffee\n");
    struct timespec old[2] = {{.tv_sec = 1000000}, {.tv_sec = 1000000}};
    ck_assert_int_eq(utimensat(AT_FDCWD, fb, old, 0), 0);
    const uint64_t ka = tema_key_mix_path(1, a);
    ck_assert_msg(tema_key_mix_path(1, b) == ka, "a copy elsewhere with another mtime got another key");
    /* one byte in the middle of the 33rd sampled block */
    FILE *f = fopen(fb, "r+b");
    const long off = (long)((big - (64u << 10)) / 63 * 32 + 1000);
    fseek(f, off, SEEK_SET);
    int c = fgetc(f);
    fseek(f, off, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
    ck_assert_msg(tema_key_mix_path(1, b) != ka, "a changed byte of a big file kept the key");
    tu_write(small, "[PAD]\n[UNK]\ntea\n");
    write_bytes(fb, big, 7);
    ck_assert_msg(tema_key_mix_path(1, b) != ka, "a changed small file kept the key");
}
END_TEST

/* Options that name a place (vocab_dir, prompt_dir, cache_dir) count by what they hold: the LLM
 * tags of a checkout at one path are found from a checkout at another (they were not: the
 * settings' JSON held the absolute paths, and hours of tagging looked missing). */
static uint64_t tagger_key(const char *yaml)
{
    tema_cfg *c = NULL;
    tema_err err = {0};
    ck_assert_msg(tema_cfg_parse_string(yaml, "test", &c, &err) == TEMA_OK, "%s", err.msg);
    const tema_plugin *p = tema_registry_find(tu_cpu_registry(), TEMA_KIND_TAGGER, tema_cfg_str(c, "plugin", ""));
    ck_assert_msg(p, "no tagger %s", tema_cfg_str(c, "plugin", ""));
    const uint64_t k = tema_key_mix_plugin(1, p, c, tu_cpu_registry());
    tema_cfg_free(c);
    return k;
}

START_TEST(store_keys_ignore_where_a_checkout_lies)
{
    const char *tmp = tu_tmpdir();
    ck_assert_int_eq(tu_sh(tmp, "mkdir -p a/vocab a/prompts b/x/vocab b/x/prompts && "
                                "printf 'coffee\\tespresso\\n' > a/vocab/food.tsv && cp a/vocab/food.tsv b/x/vocab/ && "
                                "printf 'Rate.\\n' > a/prompts/score.txt && cp a/prompts/score.txt b/x/prompts/", NULL), 0);
    char ya[2048], yb[2048], yc[2048];
    const char *fmt = "{plugin: openai, model: m, vocab_dir: '%s/%s/vocab', prompt_dir: '%s/%s/prompts', "
                      "cache_dir: '%s/%s/cache'}";
    snprintf(ya, sizeof ya, fmt, tmp, "a", tmp, "a", tmp, "a");
    snprintf(yb, sizeof yb, fmt, tmp, "b/x", tmp, "b/x", tmp, "b/x");
    const uint64_t ka = tagger_key(ya);
    ck_assert_msg(tagger_key(yb) == ka, "the same files at another path got another key");
    snprintf(yc, sizeof yc, "{plugin: openai, model: other, vocab_dir: '%s/a/vocab', prompt_dir: '%s/a/prompts'}", tmp,
             tmp);
    ck_assert_msg(tagger_key(yc) != ka, "another model kept the key");
    ck_assert_int_eq(tu_sh(tmp, "printf 'Score it.\\n' > b/x/prompts/score.txt", NULL), 0);
    ck_assert_msg(tagger_key(yb) != ka, "a changed prompt file kept the key");
}
END_TEST

START_TEST(unknown_plugin_and_failures_leave_nothing)
{
    char *dir = store_dir(), sub[700];
    float *a = NULL;
    int64_t dim = 0;
    tema_err err = {0};
    ck_assert_int_eq(run("{plugin: nosuch}", dir, texts, NT, &a, &dim, &err), TEMA_ENOTFOUND);
    ck_assert_msg(strstr(err.msg, "nosuch") && strstr(err.msg, "hashed"), "%s", err.msg);
    char ex[900];
    snprintf(ex, sizeof ex, "{plugin: bert, model_dir: '%s/no-model'}", tu_tmpdir());
    ck_assert_int_eq(run(ex, dir, texts, NT, &a, &dim, &err), TEMA_ENOTFOUND);
    ck_assert(a == NULL);
    snprintf(sub, sizeof sub, "%s/features/bert", dir);
    ck_assert_int_eq(count_files(sub, ".npy"), 0);
    free(dir);
}
END_TEST

/* The service hands a plugin its options as a resolved experiment holds them, whoever wrote
 * the node: the shorthand gets the table's defaults, a value out of range is refused there,
 * and a plugin created without options reports the caller's bug. */
START_TEST(options_reach_the_plugin_validated)
{
    char *dir = store_dir();
    float *a = NULL;
    int64_t dim = 0;
    tema_err err = {0};
    ck_assert_msg(run("hashed", dir, texts, NT, &a, &dim, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_int_eq(dim, 512);
    free(a);
    a = NULL;
    ck_assert_int_eq(run("{plugin: hashed, dim: 0}", dir, texts, NT, &a, &dim, &err), TEMA_EINVAL);
    ck_assert_msg(strstr(err.msg, "test.extractor.dim") && strstr(err.msg, "out of range"), "%s", err.msg);
    ck_assert(a == NULL);
    tema_registry *reg = tu_cpu_registry();
    for (size_t i = 0; i < tema_registry_count(reg); i++) {
        const tema_plugin *p = tema_registry_at(reg, i)->plugin;
        if (p->kind != TEMA_KIND_TEXT_FEATURES || !p->n_options) continue;
        const tema_text_features_ops *ops = p->ops;
        void *self = NULL;
        err = (tema_err){0};
        ck_assert_int_eq(ops->create(tema_host_get(), NULL, &self, &err), TEMA_EINTERNAL);
        ck_assert_msg(strstr(err.msg, p->name) && strstr(err.msg, "a bug"), "%s", err.msg);
    }
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("text_features");
    TCase *tc = tcase_create("text_features");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, every_text_features_plugin_conforms);
    tcase_add_test(tc, store_reuses_and_keys_by_text);
    tcase_add_test(tc, backend_numerics_key_the_store);
    tcase_add_test(tc, store_keys_follow_content_not_path_or_mtime);
    tcase_add_test(tc, store_keys_ignore_where_a_checkout_lies);
    tcase_add_test(tc, unknown_plugin_and_failures_leave_nothing);
    tcase_add_test(tc, options_reach_the_plugin_validated);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
