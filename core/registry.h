/* core/registry.h - finding, loading and describing plugins (core-internal). */
#ifndef TEMA_CORE_REGISTRY_H
#define TEMA_CORE_REGISTRY_H

#include <stdio.h>

#include "tema/plugin.h"

typedef struct tema_registry tema_registry;

typedef struct tema_plugin_info {
    const tema_plugin *plugin;   /* descriptor (plugin-owned static data) */
    const char *file;            /* absolute path of the .so, or "builtin:<name>" */
} tema_plugin_info;

const char *tema_kind_name(tema_kind kind);     /* "backend", "encoder", ... */
int tema_kind_from_name(const char *name);      /* -1 if unknown */

/* host: the table every plugin's entry point receives (outlives the registry). */
tema_registry *tema_registry_new(const tema_host *host);
void tema_registry_free(tema_registry *r);
/* Scan the build tree's plugins/, the install plugin dir and every folder of
 * TEMA_PLUGIN_PATH (colon separated, searched first). Broken plugins are recorded as
 * errors (see below) and skipped; a duplicate (kind, name) keeps the first one found. */
void tema_registry_scan(tema_registry *r);
/* Load one file; on failure records and returns the error. */
tema_status tema_registry_load_file(tema_registry *r, const char *path, tema_err *err);
/* Register a statically linked plugin (tests). */
tema_status tema_registry_add_entry(tema_registry *r, tema_plugin_entry_fn entry, const char *label, tema_err *err);

size_t tema_registry_count(const tema_registry *r);
const tema_plugin_info *tema_registry_at(const tema_registry *r, size_t i);
const tema_plugin *tema_registry_find(const tema_registry *r, tema_kind kind, const char *name);
/* "a, b, c": names available for a kind, for error hints; static buffer of the registry. */
const char *tema_registry_names(tema_registry *r, tema_kind kind);
/* The plugin `name` of `kind` for config key `where`, with an ops table of at least
 * `ops_size` bytes; errors name the key and list the available plugins. */
tema_status tema_registry_find_plugin(tema_registry *reg, tema_kind kind, const char *name, const char *where,
                                      size_t ops_size, const tema_plugin **out, tema_err *err);
size_t tema_registry_error_count(const tema_registry *r);
const char *tema_registry_error_at(const tema_registry *r, size_t i); /* "FILE: reason" */

/* tema plugins [--describe NAME] */
void tema_registry_print(const tema_registry *r, FILE *out);
tema_status tema_registry_describe(const tema_registry *r, const char *name, FILE *out, tema_err *err);

#endif
