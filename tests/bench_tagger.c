/* tests/bench_tagger.c - one tagger on a sample of one domain's real titles: speed, and a tag
 * store to compare (tools/tag-agreement) before tagging a whole dataset.
 *
 *   ninja -C build tests/bench_tagger
 *   build/tests/bench_tagger DATASET x|y DOMAIN_NAME EVERY[:LIMIT] OUT_DIR TAGGER [key=value ...]
 *   e.g. build/tests/bench_tagger ../shared/data/food-kitchen x food 72 /tmp/choose openai \
 *          endpoint=http://127.0.0.1:8080/v1 model=smollm2 tag_list=vocabulary scoring=choose batch=1
 *
 * Tags every EVERY-th item of the domain (local index 0, EVERY, 2 EVERY, ...; at most LIMIT) with the tagger
 * plugin TAGGER (its defaults, then the key=value options), and writes OUT_DIR/vocab.tsv,
 * scores.tsv (global item indices, as `tema tags` does) and meta.json (domains, n_items and the
 * "items" tagged). Prints items, seconds and items/s. Not a test: it asserts nothing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "host.h"
#include "dataset.h"
#include "registry.h"
#include "tags.h"
#include "util.h"

static int fail(const char *what, const char *msg)
{
    fprintf(stderr, "bench_tagger: %s: %s\n", what, msg);
    return 1;
}

/* The plugin's option defaults, then key=value arguments as YAML lines. */
static tema_cfg *options(const tema_plugin *p, int argc, char **argv, tema_err *err)
{
    size_t cap = 1 << 16, k = 0;
    char *text = malloc(cap);
    if (!text) return NULL;
    for (uint32_t i = 0; i < p->n_options; i++) {
        bool given = false;
        size_t len = strlen(p->options[i].name);
        for (int a = 0; a < argc; a++) given |= !strncmp(argv[a], p->options[i].name, len) && argv[a][len] == '=';
        if (!given) k += (size_t)snprintf(text + k, cap - k, "%s: %s\n", p->options[i].name, p->options[i].default_value);
    }
    for (int a = 0; a < argc; a++) {
        const char *eq = strchr(argv[a], '=');
        if (eq) k += (size_t)snprintf(text + k, cap - k, "%.*s: %s\n", (int)(eq - argv[a]), argv[a], eq + 1);
    }
    tema_cfg *c = NULL;
    tema_status st = tema_cfg_parse_string(text, "bench_tagger options", &c, err);
    free(text);
    return st == TEMA_OK ? c : NULL;
}

static int write_store(const char *dir, const char *domain, int64_t base, int64_t n_domain, const int64_t *items,
                       int64_t n, const tema_tag_vocab *v)
{
    char path[4096];
    if (mkdir(dir, 0755) && errno != EEXIST) return fail(dir, strerror(errno));
    snprintf(path, sizeof path, "%s/vocab.tsv", dir);
    FILE *f = fopen(path, "w");
    if (!f) return fail(path, strerror(errno));
    fprintf(f, "tag\tdomain\tdomain_name\tname\n");
    for (int32_t k = 0; k < v->n_tags; k++) fprintf(f, "%d\t%s\t%s\t%s\n", (int)k, base ? "Y" : "X", domain, v->tags[k]);
    fclose(f);
    snprintf(path, sizeof path, "%s/scores.tsv", dir);
    if (!(f = fopen(path, "w"))) return fail(path, strerror(errno));
    fprintf(f, "item\ttag\tscore\n");
    for (int64_t i = 0; i < n; i++)
        for (int32_t k = 0; k < v->n_tags; k++) {
            float s = v->score[(size_t)i * (size_t)v->n_tags + (size_t)k];
            if (s > 0) fprintf(f, "%lld\t%d\t%g\n", (long long)(base + items[i]), (int)k, (double)s);
        }
    fclose(f);
    snprintf(path, sizeof path, "%s/meta.json", dir);
    if (!(f = fopen(path, "w"))) return fail(path, strerror(errno));
    fprintf(f, "{\"domains\": [\"%s\"], \"first\": %lld, \"n_items\": [%lld], \"items\": [", domain, (long long)base,
            (long long)n_domain);
    for (int64_t i = 0; i < n; i++) fprintf(f, "%s%lld", i ? ", " : "", (long long)(base + items[i]));
    fprintf(f, "]}\n");
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s DATASET x|y DOMAIN_NAME EVERY[:LIMIT] OUT_DIR TAGGER [key=value ...]\n", argv[0]);
        return 2;
    }
    const int d = argv[2][0] == 'y';
    const long every = atol(argv[4]);
    const long limit = strchr(argv[4], ':') ? atol(strchr(argv[4], ':') + 1) : 0;
    tema_err err = {0};
    tema_dataset *ds = NULL;
    if (every < 1) return fail("EVERY", "must be >= 1");
    if (tema_dataset_load(argv[1], NULL, &ds, &err) != TEMA_OK) return fail(argv[1], err.msg);
    if (!ds->title) return fail(argv[1], "the dataset has no titles");
    tema_registry *reg = tema_registry_new(tema_host_get());
    tema_registry_scan(reg);
    const tema_plugin *p = tema_registry_find(reg, TEMA_KIND_TAGGER, argv[6]);
    if (!p) return fail(argv[6], "no tagger plugin of that name");
    tema_cfg *opts = options(p, argc - 7, argv + 7, &err);
    if (!opts) return fail("options", err.msg);
    int64_t n_domain = d ? ds->n_y : ds->n_x, base = d ? ds->n_x : 0, n = 0;
    int64_t *items = malloc((size_t)(n_domain / every + 1) * sizeof *items);
    const char **titles = malloc((size_t)(n_domain / every + 1) * sizeof *titles);
    if (!items || !titles) return fail("memory", "out of memory");
    for (int64_t i = 0; i < n_domain && (limit <= 0 || n < limit); i += every) {
        items[n] = i;
        titles[n++] = ds->title[base + i];
    }
    const tema_tagger_ops *ops = p->ops;
    void *self = NULL;
    tema_tag_vocab v = {0};
    double t0 = tema_now();
    tema_status st = tema_tagger_create(p, opts, argv[3], &self, &err);
    if (st == TEMA_OK) {
        st = ops->tag(self, titles, n, &v, &err);
        ops->destroy(self);
    }
    double dt = tema_now() - t0;
    int rc = st == TEMA_OK ? write_store(argv[5], argv[3], base, n_domain, items, n, &v) : fail(argv[6], err.msg);
    if (rc == 0)
        printf("tagger %s: %lld items of %s in %.1f s = %.2f items/s; %d tags; store %s\n", argv[6], (long long)n,
               argv[3], dt, (double)n / dt, (int)v.n_tags, argv[5]);
    const tema_host *h = tema_host_get();
    for (int32_t k = 0; k < v.n_tags; k++) h->free(v.tags[k]);
    h->free(v.tags);
    h->free(v.score);
    free(items);
    free(titles);
    tema_cfg_free(opts);
    tema_registry_free(reg);
    tema_dataset_free(ds);
    return rc;
}
