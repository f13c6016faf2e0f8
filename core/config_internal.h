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

/* Process-wide copy of a file label, alive until exit (nodes keep `file` pointers into it). */
const char *tema_cfgi_intern(const char *s);

/* Replace a scalar's text (copied); false when out of memory. */
bool tema_cfgi_set_text(tema_cfg *n, const char *text, bool quoted);
/* Where the node's key is (falls back to the value's position). */
void tema_cfgi_key_pos(const tema_cfg *n, int *line, int *col);

/* Parse YAML text; nodes get `label` as file and, when with_positions, 1-based
 * line/col (otherwise 0, used for --set values whose location is the option itself).
 * An empty document gives a NULL node. */
tema_status tema_cfgi_parse(const char *text, size_t len, const char *label, bool with_positions,
                            tema_cfg **out, tema_err *err);

/* Apply one "key.path=value" with every new node located at `label`. */
tema_status tema_cfgi_set(tema_cfg *root, const char *assignment, const char *label, tema_err *err);

/* The canonical text of a number (shortest that reads back exactly; integers in decimal). */
bool tema_cfgi_number_canon(const char *s, char *out, size_t size);

#endif
