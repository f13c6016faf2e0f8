/* core/store_key.h - keys of the stores that cache a plugin's output (tags, text features):
 * a 64-bit hash of everything the output depends on, so a changed input is a new key and
 * stale output is never read (core-internal).
 *
 * What a plugin's part of a key holds: its name, version and canonical settings (JSON, without
 * the values of path options: a moved checkout keeps its keys), the
 * contents of the files its path options name (a folder: its regular, non-hidden files;
 * files over 4 MiB by size and 64 blocks of 64 KiB spread over them; options with "cache" in the name are left out, a cache
 * never changes results), the environment variables that its empty options fall back to
 * ("(empty: env NAME)" in the option's help; never secrets), and the same for every nested
 * plugin option (TEMA_OPT_PLUGIN), found in the registry. */
#ifndef TEMA_CORE_STORE_KEY_H
#define TEMA_CORE_STORE_KEY_H

#include <stdint.h>

#include "config.h"
#include "registry.h"
#include "tema/plugin.h"

uint64_t tema_key_mix(uint64_t h, const void *data, size_t len);
uint64_t tema_key_mix_str(uint64_t h, const char *s);
/* A file's or a folder's contents, as described above. */
uint64_t tema_key_mix_path(uint64_t h, const char *path);

/* An empty string option whose help says "(empty: env NAME)" takes its value from the
 * environment (an LLM endpoint, a model folder): part of the settings too. Secrets (names
 * with KEY, TOKEN, SECRET, PASSWORD) are never read. */
#define TEMA_MAX_ENV_FALLBACKS 8
typedef struct tema_env_fallback {
    char name[64];
    const char *value; /* getenv's, or NULL when unset */
} tema_env_fallback;
/* Fills out[] for tp's options in opts (not nested ones); returns how many. */
int tema_env_fallbacks(const tema_plugin *tp, const tema_cfg *opts, tema_env_fallback *out);

/* The plugin's part of a key (see the top), mixed into h: opts as JSON without its path and
 * cache options (paths count by their contents only), then the inputs. reg may be NULL (nested
 * plugins then count by their settings alone). */
uint64_t tema_key_mix_plugin(uint64_t h, const tema_plugin *tp, const tema_cfg *opts, tema_registry *reg);

/* The backend options of root's `backend:` that change what the products compute (precision,
 * tf32), where they are set to something other than the backend's defaults: output computed
 * with bf16 products is never read back by an fp32 run. Threads are left out as in run ids (a
 * split changes the last bits at most); with every option at its default nothing is mixed,
 * so keys written before these options existed stay valid. root or reg NULL: h. */
uint64_t tema_key_mix_backend(uint64_t h, const tema_cfg *root, tema_registry *reg);

#endif
