/* core/config.h - experiment configuration: a YAML tree that remembers where each
 * value came from, built-in defaults < file < --set overrides, validation against the
 * core schema and the plugins' declared options (core-internal). */
#ifndef TEMA_CORE_CONFIG_H
#define TEMA_CORE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "registry.h"
#include "tema/plugin.h"

typedef enum tema_cfg_type { TEMA_CFG_NULL = 0, TEMA_CFG_SCALAR, TEMA_CFG_MAP, TEMA_CFG_LIST } tema_cfg_type;

/* struct tema_cfg is the node type behind tema/plugin.h's opaque tema_cfg. */
struct tema_cfg {
    tema_cfg_type type;
    char *key;                  /* key in the parent map, NULL for list items / root */
    char *value;                /* scalar text (SCALAR only) */
    bool quoted;                /* scalar was quoted in YAML (a string, never a number) */
    struct tema_cfg **items;    /* children (MAP: in file order; LIST: elements) */
    size_t n_items;
    const char *file;           /* where it was defined: file path or "<command line>" / "<defaults>" */
    int line, col;              /* 1-based; 0 when unknown */
};

/* Parse a YAML file (the whole document). Errors: "FILE:LINE:COL: message". */
tema_status tema_cfg_load(const char *path, tema_cfg **out, tema_err *err);
tema_status tema_cfg_parse_string(const char *text, const char *label, tema_cfg **out, tema_err *err);
void tema_cfg_free(tema_cfg *c);
tema_cfg *tema_cfg_clone(const tema_cfg *c);

/* Lookup by dotted path; list elements by index ("model.encoders.0.dim"). NULL if absent. */
const tema_cfg *tema_cfg_get(const tema_cfg *root, const char *path);
/* Typed getters: the fallback when absent or ill-typed. For hand-built trees (tests, store
 * metadata); a resolved experiment has every default filled, so read it with tema_cfg_need_*. */
const char *tema_cfg_str(const tema_cfg *root, const char *path, const char *fallback);
/* An experiment's results folder: `given` (--results) when not NULL or empty, else the file's
 * `results_dir:`, else "results" (the one place that default lives). Points into its inputs. */
const char *tema_cfg_results_dir(const tema_cfg *experiment, const char *given);
int64_t tema_cfg_int(const tema_cfg *root, const char *path, int64_t fallback);
double tema_cfg_float(const tema_cfg *root, const char *path, double fallback);
bool tema_cfg_bool(const tema_cfg *root, const char *path, bool fallback);

/* Typed reads of a resolved config, whose schema filled every default: absent or ill-typed is
 * a bug (a key the schema does not declare, or an unresolved tree) and an error naming the key,
 * never a second default written at the call site. */
tema_status tema_cfg_need_int(const tema_cfg *root, const char *path, int64_t *out, tema_err *err);
tema_status tema_cfg_need_float(const tema_cfg *root, const char *path, double *out, tema_err *err);
tema_status tema_cfg_need_bool(const tema_cfg *root, const char *path, bool *out, tema_err *err);
tema_status tema_cfg_need_str(const tema_cfg *root, const char *path, const char **out, tema_err *err);

/* Apply "key.path=value" (value parsed as YAML, so lists/maps work). */
tema_status tema_cfg_set(tema_cfg *root, const char *assignment, tema_err *err);

/* The full pipeline used by `tema check` and `tema run`: defaults, then the file, then
 * the overrides, then validation (unknown keys with the nearest valid key, types, ranges,
 * unknown plugins with the list of available ones, each plugin's options) and filling
 * every default (plugin options too), and resolving relative paths against the current
 * directory. Every problem found is printed to `diag` as FILE:LINE:COL: message; the
 * return value is the first error. */
tema_status tema_cfg_resolve(const char *path, const char *const *overrides, int n_overrides,
                             tema_registry *reg, FILE *diag, tema_cfg **resolved, tema_err *err);

/* Validate a plugin node in place ({plugin: NAME, ...options} or the shorthand NAME) against
 * NAME's option table, as tema_cfg_resolve does for one under a key of `kind` at `path`: every
 * default filled, values normalised and range-checked, paths made absolute. A node that was
 * resolved already comes out as it went in. */
tema_status tema_cfg_plugin_validate(tema_cfg *node, const char *path, const char *kind, tema_registry *reg,
                                     tema_err *err);

/* The options of plugin `name` of `kind` ("tag_select") with every declared default filled, as
 * the resolved config would hold them under a key set to {plugin: NAME}. Caller frees. */
tema_status tema_cfg_plugin_defaults(const char *kind, const char *name, tema_registry *reg, tema_cfg **out,
                                     tema_err *err);

/* Where the core schema takes plugins: path ("model.encoders"), kind ("encoder") and shape
 * (TEMA_SLOT_ONE: a plugin map, TEMA_SLOT_LIST: a list of them, TEMA_SLOT_MAP: NAME -> one).
 * Fills out[] (up to cap) and returns how many there are. */
typedef enum tema_slot_shape { TEMA_SLOT_ONE, TEMA_SLOT_LIST, TEMA_SLOT_MAP } tema_slot_shape;
typedef struct tema_cfg_plugin_slot {
    const char *path;
    const char *kind;
    tema_slot_shape shape;
} tema_cfg_plugin_slot;
size_t tema_cfg_plugin_slots(tema_cfg_plugin_slot *out, size_t cap);

/* Keys of the core schema added after run-id scheme 2, with their defaults (YAML scalars): a
 * run's identity holds one only when its value differs from the default, so stored runs keep
 * their ids. Fills out[] (up to cap) and returns how many there are. */
typedef struct tema_cfg_later_key {
    const char *path, *def;
} tema_cfg_later_key;
size_t tema_cfg_later_keys(tema_cfg_later_key *out, size_t cap);

/* Is a plugin's string option a file or folder path (named path/file/dir or *_path,
 * *_file, *_dir)? Such options are resolved against the current directory and stored
 * absolute. */
bool tema_option_is_path(const char *name);

/* Canonical JSON of a tree (keys in schema order, numbers normalised): used for the
 * run-id hash and stored with results. Caller frees. */
char *tema_cfg_to_json(const tema_cfg *c);
/* YAML text of a tree. Caller frees. */
char *tema_cfg_to_yaml(const tema_cfg *c);

/* ---- plugin entries ---- */

/* Plugin name and options node of a config entry that is either "name" or a map with a
 * `plugin` key (the map itself is the options node; a bare name has none). */
const tema_cfg *tema_cfg_plugin_node(const tema_cfg *node, const char **name);
/* The shorthand `loss: bpr` is `loss: {plugin: bpr}`: a scalar node becomes that map in
 * place, so that keys below it reach the plugin's options; other nodes are left alone.
 * False when out of memory (the node is then unchanged). */
bool tema_cfg_expand_plugin(tema_cfg *n);

/* ---- building a configuration step by step ----
 * tema_cfg_resolve's steps, for a module that reads more of an experiment file than the
 * schema and needs its problems in the same file-ordered list (grid.c). */

/* Label of nodes that came from the built-in defaults (schema and plugin option tables). */
#define TEMA_CFG_DEFAULTS_LABEL "<defaults>"

/* A new node (key copied, file interned); NULL when out of memory. */
tema_cfg *tema_cfg_new(tema_cfg_type type, const char *key, const char *file, int line, int col);
/* Append a child (takes ownership); false when out of memory (child freed). */
bool tema_cfg_append(tema_cfg *parent, tema_cfg *child);
/* Child of a map by key, or NULL; *index gets its position when found. */
tema_cfg *tema_cfg_child(const tema_cfg *map, const char *key, size_t *index);
/* Replace child i (old one freed; key of the new child set to the old key). */
void tema_cfg_replace(tema_cfg *parent, size_t i, tema_cfg *child);
/* Remove child i and return it (caller owns). */
tema_cfg *tema_cfg_take(tema_cfg *parent, size_t i);
/* Turn a NULL node into an empty map or list in place. */
void tema_cfg_retype(tema_cfg *n, tema_cfg_type type);

/* Merge src into dst (both maps): maps merge key by key, anything else replaces.
 * Consumes src. */
void tema_cfg_merge(tema_cfg *dst, tema_cfg *src);

/* Number syntax (YAML core schema floats/ints, no .inf/.nan). */
bool tema_cfg_is_number(const char *s);

/* "FILE:LINE:COL" (or just FILE when the line is unknown) of a node's value or key. */
void tema_cfg_where(const tema_cfg *n, bool at_key, char *buf, size_t size);

/* Collects every problem. Problems are kept and, at tema_cfg_diag_flush, printed as
 * "LOCATION: message" in file order (line, column; command-line ones after the file's),
 * the first of that order going into err. */
typedef struct tema_cfg_problem {
    char *text;           /* "LOCATION: message" */
    tema_status code;
    int line, col;        /* 0 when not in a file */
    size_t seq;
} tema_cfg_problem;
typedef struct tema_cfg_diag {
    FILE *out;
    tema_err *err;
    int count;
    tema_cfg_problem *items;
    size_t n, cap;
} tema_cfg_diag;
void tema_cfg_report(tema_cfg_diag *d, tema_status code, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A problem whose message already starts with its location. */
void tema_cfg_report_located(tema_cfg_diag *d, tema_status code, const char *text);
/* Print, fill err, release; returns the first problem's status (TEMA_OK when none). */
tema_status tema_cfg_diag_flush(tema_cfg_diag *d);
/* Parse an experiment file and check that it is a mapping (an empty file is an empty one).
 * On success *file is the caller's (tema_cfg_free); on failure the problem is reported to d
 * and *file is NULL. */
bool tema_cfg_load_experiment(const char *path, tema_cfg_diag *d, tema_cfg **file);

/* validate.c: the built-in defaults tree (schema order), and validation of a merged tree
 * (fills every default, plugin options included, normalises values, resolves paths). */
tema_status tema_cfg_defaults(tema_cfg **out, tema_err *err);
void tema_cfg_validate(tema_cfg *root, tema_registry *reg, tema_cfg_diag *d);

#endif
