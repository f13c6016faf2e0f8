/* core/tags.h - the tag pipeline of an experiment (core-internal): the tagger's vocabulary
 * and item-tag scores, computed once per (tagger, settings, dataset) and stored under
 * <results>/tags/, then tag_select and tag_repr, and the model's view of the result
 * (tema_model_info's n_tags / tag_names / tag_domain / item_tags).
 *
 * Configuration: model.tagger, model.tag_select, model.tag_repr (plugins of those kinds)
 * and dataset.domains (the two domain names the tagger is asked about; derived from the
 * dataset when absent, see tema_tags_domains). No model.tagger: no tags, nothing changes. */
#ifndef TEMA_CORE_TAGS_H
#define TEMA_CORE_TAGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "dataset.h"
#include "registry.h"
#include "tema/plugin.h"

#define TEMA_TAGS_DOMAIN_MAX 64

/* Item-tag relevance of both domains of a dataset under one tagger configuration.
 * Tag ids are global: X's tags 0..n_tags_x-1, then Y's. Every array and string is
 * malloc'ed and owned by the table (free with tema_tag_table_free). */
typedef struct tema_tag_table {
    char domain[2][TEMA_TAGS_DOMAIN_MAX];
    int32_t n_x, n_y;
    int32_t n_tags, n_tags_x;
    char **tag_names;          /* [n_tags] */
    float *score_x;            /* [n_x * n_tags_x] row-major; 0 = unrelated, else relevance (1..100) */
    float *score_y;            /* [n_y * (n_tags - n_tags_x)] */
    char *dir;                 /* the store folder: <results>/tags/<dataset>/<key>/ */
    char tagger[320];          /* plugin name and version, "lexical 1.0.0"; per domain when they differ */
    bool reused;               /* read from dir (true) or computed now (false) */
    double seconds;            /* time the tagger took (computed) or the load took (reused) */
    int64_t incomplete;        /* items or queries the tagger will ask for again (ABI 1.3) */
} tema_tag_table;

/* The two domain names of the experiment: dataset.domains when set (two names of
 * [a-z0-9_-]), else derived from the dataset: the built-in synthetic data gives
 * synth_food / synth_kitchen; a README.md saying "X = Food ... Y = Kitchen" gives
 * food / kitchen; else the first two '-' or '_' separated words of the folder or archive
 * name ("food-kitchen-c2dsr" -> food, kitchen). Fails with a hint when none applies. */
tema_status tema_tags_domains(const tema_cfg *cfg, const tema_dataset *ds, char out[2][TEMA_TAGS_DOMAIN_MAX],
                              tema_err *err);

/* The table of a resolved experiment with a model.tagger: read from its store folder when
 * one holds a complete result for the same tagger, settings (and the files its path
 * options name) and item titles, else computed and stored atomically (meta.json written
 * last marks it complete). force: compute even when stored. results_dir NULL = "results".
 * On failure *out is zeroed. */
tema_status tema_tag_table_get(const tema_cfg *cfg, tema_registry *reg, const tema_dataset *ds,
                               const char *results_dir, bool force, tema_tag_table *out, tema_err *err);
void tema_tag_table_free(tema_tag_table *t);

/* model.tag_select then model.tag_repr over the table, per domain, merged into one
 * selection of all n_x + n_y items with global tag ids (ascending per item) and the
 * tag_repr weights in `score`. Absent from the config: tag_select hybrid and tag_repr
 * weighted with their defaults (the paper's choice); *select_name / *repr_name (may be
 * NULL) get the plugin names used (static strings). The arrays are host memory: free
 * with tema_tag_selection_free. */
tema_status tema_tags_select(const tema_cfg *cfg, tema_registry *reg, const tema_tag_table *t, tema_tag_selection *out,
                             const char **select_name, const char **repr_name, tema_err *err);
void tema_tag_selection_free(tema_tag_selection *s);

/* Calls into the tag kinds' plugins: the ABI 1.4 entry that receives the host where the plugin
 * has it, the older one otherwise (the registry checked that one of them is there). */
tema_status tema_tagger_create(const tema_plugin *p, const tema_cfg *opts, const char *domain, void **self,
                               tema_err *err);
tema_status tema_tag_select_call(const tema_plugin *p, const tema_cfg *opts, const tema_tag_scores *s,
                                 tema_tag_selection *out, tema_err *err);
tema_status tema_tag_repr_call(const tema_plugin *p, const tema_cfg *opts, tema_tag_selection *sel, tema_err *err);

/* Training: when cfg has a model.tagger, get the table (stored or computed), select and
 * weigh, print one summary line to stderr and fill info's n_tags, tag_names, tag_domain
 * and item_tags (memory owned through info until tema_tags_detach). Without a tagger,
 * info is left as it is (n_tags 0); tag_select/tag_repr without a tagger is an error. */
tema_status tema_tags_attach(const tema_cfg *cfg, tema_registry *reg, const tema_dataset *ds, const char *results_dir,
                             tema_model_info *info, tema_err *err);
/* Free what tema_tags_attach put into info and zero those fields (no-op when none). */
void tema_tags_detach(tema_model_info *info);

/* `tema tags EXP.yaml [--set key.path=value]... [--results DIR] [--force]`: argv after
 * the command word. Returns the exit status (0 ok, 1 failed, 2 usage). */
int tema_tags_cli(int argc, char **argv);

#endif
