/* tests/fuzz/fuzz_tag_vocab.c - the tag vocabulary files <vocab_dir>/<domain>.yaml
 * (plugins/tagger/tag_vocab.h) through the lexical tagger, which reads them: the file is
 * parsed into phrases, then a few fixed titles are matched and scored against them.
 * Input: the vocabulary file of domain "food". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_util.h"
#include "host.h"
#include "registry.h"
#include "tags.h"
#include "tema/plugin.h"

static const char *const TITLES[] = {
    "Organic Green Tea Bags, 100 Count",
    "Dark Roast Whole Bean Coffee, 2 lb Bag",
    "Chocolate Chip Cookies &amp; Cream (Pack of 12)",
    "",
    "Caf\xc3\xa9 au lait \xe2\x80\x94 K-Cups, Kids' Snacks",
};
#define N_TITLES (sizeof TITLES / sizeof *TITLES)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const tema_plugin *lexical;
    static tema_cfg *opts;
    if (!lexical) {
        tema_registry *reg = fz_registry();
        lexical = tema_registry_find(reg, TEMA_KIND_TAGGER, "lexical");
        char set[600];
        snprintf(set, sizeof set, "vocab_dir=%s", fz_dir());
        tema_err err = {0};
        if (!lexical || tema_cfg_plugin_defaults("tagger", "lexical", reg, &opts, &err) != TEMA_OK ||
            tema_cfg_set(opts, set, &err) != TEMA_OK)
            abort();
    }
    fz_write("food.yaml", data, size);
    const tema_tagger_ops *ops = lexical->ops;
    void *self = NULL;
    tema_err err = {0};
    if (tema_tagger_create(lexical, opts, "food", &self, &err) != TEMA_OK) return 0;
    tema_tag_vocab v;
    memset(&v, 0, sizeof v);
    if (ops->tag(self, TITLES, (int64_t)N_TITLES, &v, &err) == TEMA_OK) {
        for (size_t i = 0; i < N_TITLES * (size_t)v.n_tags; i++)
            if (!(v.score[i] == 0 || (v.score[i] >= 1 && v.score[i] <= 100))) abort(); /* relevance 0 or 1..100 */
        const tema_host *host = tema_host_get();
        for (int32_t t = 0; t < v.n_tags; t++) host->free(v.tags[t]);
        host->free(v.tags);
        host->free(v.score);
    }
    ops->destroy(self);
    return 0;
}
