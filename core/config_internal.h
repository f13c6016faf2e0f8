/* core/config_internal.h - what config.c (tree, YAML, emitters) and validate.c (schema,
 * defaults, located errors) share. Not for other modules: use config.h.
 *
 * Every tema_cfg node is allocated by config.c inside a private wrapper that also keeps
 * the position of the node's key (struct tema_cfg's line/col is where the VALUE starts),
 * so errors about a key point at the key and errors about a value point at the value. */
#ifndef TEMA_CORE_CONFIG_INTERNAL_H
#define TEMA_CORE_CONFIG_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "config.h"

/* Label of nodes that came from the built-in defaults (schema and plugin option tables). */
#define TEMA_CFG_DEFAULTS_LABEL "<defaults>"

/* Process-wide copy of a file label, alive until exit (nodes keep `file` pointers into it). */
const char *tema_cfgi_intern(const char *s);

/* A new node (key copied, file interned); NULL when out of memory. */
tema_cfg *tema_cfgi_new(tema_cfg_type type, const char *key, const char *file, int line, int col);
/* Replace a scalar's text (copied); false when out of memory. */
bool tema_cfgi_set_text(tema_cfg *n, const char *text, bool quoted);
/* Where the node's key is (falls back to the value's position). */
void tema_cfgi_key_pos(const tema_cfg *n, int *line, int *col);
/* Append a child (takes ownership); false when out of memory (child freed). */
bool tema_cfgi_append(tema_cfg *parent, tema_cfg *child);
/* Child of a map by key, or NULL; *index gets its position when found. */
tema_cfg *tema_cfgi_child(const tema_cfg *map, const char *key, size_t *index);
/* Replace child i (old one freed; key of the new child set to the old key). */
void tema_cfgi_replace(tema_cfg *parent, size_t i, tema_cfg *child);
/* Remove child i and return it (caller owns). */
tema_cfg *tema_cfgi_take(tema_cfg *parent, size_t i);
/* Turn a NULL node into an empty map or list in place. */
void tema_cfgi_retype(tema_cfg *n, tema_cfg_type type);

/* Parse YAML text; nodes get `label` as file and, when with_positions, 1-based
 * line/col (otherwise 0, used for --set values whose location is the option itself).
 * An empty document gives a NULL node. */
tema_status tema_cfgi_parse(const char *text, size_t len, const char *label, bool with_positions,
                            tema_cfg **out, tema_err *err);

/* Merge src into dst (both maps): maps merge key by key, anything else replaces.
 * Consumes src. */
void tema_cfgi_merge(tema_cfg *dst, tema_cfg *src);

/* Apply one "key.path=value" with every new node located at `label`. */
tema_status tema_cfgi_set(tema_cfg *root, const char *assignment, const char *label, tema_err *err);

/* "FILE:LINE:COL" (or just FILE when the line is unknown) of a node's value or key. */
void tema_cfgi_where(const tema_cfg *n, bool at_key, char *buf, size_t size);

/* Number syntax (YAML core schema floats/ints, no .inf/.nan); the canonical text of the
 * value (shortest that reads back exactly; integers in decimal). */
bool tema_cfgi_is_number(const char *s);
bool tema_cfgi_number_canon(const char *s, char *out, size_t size);

/* Collects every problem. Problems are kept and, at tema_cfgi_diag_flush, printed as
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
void tema_cfgi_report(tema_cfg_diag *d, tema_status code, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A problem whose message already starts with its location. */
void tema_cfgi_report_located(tema_cfg_diag *d, tema_status code, const char *text);
/* Print, fill err, release; returns the first problem's status (TEMA_OK when none). */
tema_status tema_cfgi_diag_flush(tema_cfg_diag *d);
/* Parse an experiment file and check that it is a mapping (an empty file is an empty one).
 * On success *file is the caller's (tema_cfg_free); on failure the problem is reported to d
 * and *file is NULL. */
bool tema_cfgi_load_experiment(const char *path, tema_cfg_diag *d, tema_cfg **file);

/* validate.c: the built-in defaults tree (schema order), and validation of a merged tree
 * (fills every default, plugin options included, normalises values, resolves paths). */
tema_status tema_cfg_defaults(tema_cfg **out, tema_err *err);
void tema_cfg_validate(tema_cfg *root, tema_registry *reg, tema_cfg_diag *d);

#endif
