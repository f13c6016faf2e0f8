/* core/text_features.h - the text feature store behind host->text_features (core-internal):
 * a text_features plugin's rows for a list of texts, computed once and kept under
 * <results>/features/<plugin>/<key>.npy (+ .json), key = hash of the plugin's part
 * (core/store_key.h) and every text. Concurrent processes computing the same key wait on
 * one lock file instead of computing twice; the .npy is written atomically, then its .json.
 *
 * Context: the service needs the registry, the results folder and (when no backend is
 * active, as in `tema tags`) the experiment's backend config; tema_features_context sets
 * them for the process, before a model is built or a tagger runs. */
#ifndef TEMA_CORE_TEXT_FEATURES_H
#define TEMA_CORE_TEXT_FEATURES_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "registry.h"

/* reg and root stay the caller's and must outlive every later call; results_dir is copied
 * (NULL = "results"). Calling it with reg NULL clears the context. */
void tema_features_context(tema_registry *reg, const tema_cfg *root, const char *results_dir);
/* Set the context only when none is set (a training run sets its own first); returns whether
 * it did, so the caller clears it again when done. */
bool tema_features_context_default(tema_registry *reg, const tema_cfg *root, const char *results_dir);

/* host->text_features (see tema/plugin.h). */
tema_status tema_features_get(const tema_cfg *c, const char *option, const char *const *texts, int64_t n,
                              const char *who, float **out, int64_t *dim, tema_err *err);

#endif
