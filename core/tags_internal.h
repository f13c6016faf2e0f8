/* core/tags_internal.h - what the tag pipeline's files share (core/tags.c: the pipeline and
 * `tema tags`; core/tag_store.c: the store's files). Not for other modules. */
#ifndef TEMA_CORE_TAGS_INTERNAL_H
#define TEMA_CORE_TAGS_INTERNAL_H

#include "dataset.h"
#include "store_key.h"
#include "tags.h"

#define TEMA_TAG_STORE_FORMAT "tema-tags 1"

/* Row of item (domain-local) in domain d's score matrix. */
float *tema_tag_table_row(const tema_tag_table *t, int d, int64_t item);
/* tag_names and both score matrices for t's counts, zeroed. */
tema_status tema_tag_table_alloc(tema_tag_table *t, tema_err *err);

/* The store folder t->dir: vocab.tsv, scores.tsv, then meta.json (last: it marks the folder
 * complete). tp and settings_json are model.tagger's; env the fallbacks its empty options took. */
tema_status tema_tag_store_write(const tema_tag_table *t, const tema_plugin *tp, const char *settings_json,
                                 const tema_env_fallback *env, int n_env, const tema_dataset *ds, uint64_t key,
                                 tema_err *err);
/* Read t->dir into t (its counts and domains set) when meta.json says it is complete and of key
 * keyhex; *found false when it is not (to be rebuilt). A damaged store is an error. */
tema_status tema_tag_store_read(tema_tag_table *t, const char *keyhex, bool *found, tema_err *err);

#endif
