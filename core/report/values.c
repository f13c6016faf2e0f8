/* core/report/values.c - the report's arena and what it asks of config values: JSON lookups by
 * dotted path, canonical text, YAML-style comparisons, natural order, where two configs differ.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report_internal.h"

/* ---- arena --------------------------------------------------------------------------- */

void *rep_alloc(arena *a, size_t n)
{
    arena_block *b = calloc(1, sizeof *b + (n ? n : 1));
    if (!b) {
        a->oom = true;
        return NULL;
    }
    b->next = a->head;
    a->head = b;
    return b->data;
}

char *rep_strdup(arena *a, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *p = rep_alloc(a, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

void rep_arena_free(arena *a)
{
    for (arena_block *b = a->head, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    a->head = NULL;
}

char *rep_path_join(arena *a, const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = rep_alloc(a, n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* ---- values: JSON lookups, canonical text, comparisons -------------------------------- */

/* The node at a dotted path ("model.encoders.0.dim"); NULL when absent. */
json_object *rep_jget(json_object *o, const char *path)
{
    const char *p = path;
    while (o && *p) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        char key[256];
        if (len >= sizeof key)
            return NULL;
        memcpy(key, p, len);
        key[len] = '\0';
        if (json_object_is_type(o, json_type_object)) {
            json_object *next = NULL;
            if (!json_object_object_get_ex(o, key, &next))
                return NULL;
            o = next;
        } else if (json_object_is_type(o, json_type_array)) {
            char *end;
            long i = strtol(key, &end, 10);
            if (!*key || *end || i < 0 || (size_t)i >= json_object_array_length(o))
                return NULL;
            o = json_object_array_get_idx(o, (size_t)i);
        } else {
            return NULL;
        }
        p = dot ? dot + 1 : p + len;
    }
    return o;
}

double rep_jnum(json_object *o, const char *path)
{
    json_object *v = path ? rep_jget(o, path) : o;
    if (!v || !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
        return NAN;
    return json_object_get_double(v);
}

/* Shortest %g that reads back exactly, as core/results.c writes numbers. */
static void fmt_double(double v, char *buf, size_t cap)
{
    snprintf(buf, cap, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, cap, "%.17g", v);
}

/* Canonical text of a config value into the arena: strings as they are, numbers shortest,
 * maps and lists as compact JSON; an absent value is "null". */
char *rep_jtext(arena *a, json_object *v)
{
    char buf[64];
    switch (v ? json_object_get_type(v) : json_type_null) {
    case json_type_null:
        return rep_strdup(a, "null");
    case json_type_boolean:
        return rep_strdup(a, json_object_get_boolean(v) ? "true" : "false");
    case json_type_int:
        snprintf(buf, sizeof buf, "%lld", (long long)json_object_get_int64(v));
        return rep_strdup(a, buf);
    case json_type_double:
        fmt_double(json_object_get_double(v), buf, sizeof buf);
        return rep_strdup(a, buf);
    case json_type_string:
        return rep_strdup(a, json_object_get_string(v));
    default:
        return rep_strdup(a,
                          json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    }
}

void rep_slug(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    bool dash = false;
    for (const unsigned char *p = (const unsigned char *)s; *p && n + 2 < cap; p++) {
        if (isalnum(*p) && *p < 0x80) {
            if (dash && n)
                out[n++] = '-';
            dash = false;
            out[n++] = (char)tolower(*p);
        } else {
            dash = true;
        }
    }
    if (!n)
        out[n++] = 'x';
    out[n] = '\0';
}

bool rep_parse_number(const char *s, double *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || isnan(v))
        return false;
    *out = v;
    return true;
}

bool rep_is_true_word(const char *s)
{
    return !strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on");
}
bool rep_is_false_word(const char *s)
{
    return !strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off");
}

/* Does a value written in the report block (YAML text) name this config value? Numbers
 * compare as numbers (0.20 == 0.2 == 2e-1), booleans in any YAML spelling. */
bool rep_value_matches(const char *config_text, const char *yaml_text)
{
    if (!strcmp(config_text, yaml_text))
        return true;
    double a, b;
    if (rep_parse_number(config_text, &a) && rep_parse_number(yaml_text, &b))
        return a == b || fabs(a - b) <= 1e-12 * fmax(fabs(a), fabs(b));
    if (rep_is_true_word(config_text) && rep_is_true_word(yaml_text))
        return true;
    if (rep_is_false_word(config_text) && rep_is_false_word(yaml_text))
        return true;
    return false;
}

/* Natural order: digit runs compare as numbers, so "lr=1e-4" < "lr=2e-4" and "b2" < "b10". */
int rep_natural_cmp(const char *a, const char *b)
{
    double x, y;
    if (rep_parse_number(a, &x) && rep_parse_number(b, &y))
        return (x > y) - (x < y);
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            char *ea, *eb;
            double va = strtod(a, &ea), vb = strtod(b, &eb);
            if (va != vb)
                return va < vb ? -1 : 1;
            a = ea;
            b = eb;
            continue;
        }
        if (*a != *b)
            return (unsigned char)*a - (unsigned char)*b;
        a++;
        b++;
    }
    return (unsigned char)*a - (unsigned char)*b;
}

/* The first leaf path (outside train.seed) where two configs differ, into out; false if none. */
bool rep_first_diff(json_object *a, json_object *b, const char *prefix, char *out, size_t cap)
{
    if (!strcmp(prefix, "train.seed"))
        return false;
    json_type ta = a ? json_object_get_type(a) : json_type_null, tb = b ? json_object_get_type(b) : json_type_null;
    if (ta == json_type_object && tb == json_type_object) {
        char path[512];
        json_object_object_foreach(a, k, va) {
            snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", k);
            json_object *vb = NULL;
            json_object_object_get_ex(b, k, &vb);
            if (rep_first_diff(va, vb, path, out, cap))
                return true;
        }
        json_object_object_foreach(b, k2, vb2) {
            (void)vb2;
            if (!json_object_object_get_ex(a, k2, NULL)) {
                snprintf(out, cap, "%s%s%s", prefix, *prefix ? "." : "", k2);
                return true;
            }
        }
        return false;
    }
    if (ta == json_type_array && tb == json_type_array) {
        size_t na = json_object_array_length(a), nb = json_object_array_length(b);
        char path[512];
        for (size_t i = 0; i < na || i < nb; i++) {
            snprintf(path, sizeof path, "%s%s%zu", prefix, *prefix ? "." : "", i);
            if (i >= na || i >= nb) {
                snprintf(out, cap, "%s", path);
                return true;
            }
            if (rep_first_diff(json_object_array_get_idx(a, i), json_object_array_get_idx(b, i), path, out, cap))
                return true;
        }
        return false;
    }
    if (!json_object_equal(a, b)) {
        /* 1 and 1.0 are the same setting */
        double x = rep_jnum(a, NULL), y = rep_jnum(b, NULL);
        if (!(isfinite(x) && x == y)) {
            snprintf(out, cap, "%s", *prefix ? prefix : "(the whole config)");
            return true;
        }
    }
    return false;
}

static void key_list_add(arena *ar, key_list *l, const char *key)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->keys[i], key))
            return;
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 8;
        char **grown = rep_alloc(ar, (size_t)nc * sizeof *grown);
        if (!grown)
            return;
        if (l->n)
            memcpy(grown, l->keys, (size_t)l->n * sizeof *grown);
        l->keys = grown;
        l->cap = nc;
    }
    char *k = rep_strdup(ar, key);
    if (k)
        l->keys[l->n++] = k;
}

/* Collects every leaf path where a and b differ (not only the first), train.seed aside. */
void rep_all_diffs(arena *ar, key_list *out, json_object *a, json_object *b, const char *prefix)
{
    if (!strcmp(prefix, "train.seed"))
        return;
    json_type ta = a ? json_object_get_type(a) : json_type_null, tb = b ? json_object_get_type(b) : json_type_null;
    char path[512];
    if (ta == json_type_object && tb == json_type_object) {
        json_object_object_foreach(a, k, va) {
            snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", k);
            json_object *vb = NULL;
            json_object_object_get_ex(b, k, &vb);
            rep_all_diffs(ar, out, va, vb, path);
        }
        json_object_object_foreach(b, k2, vb2) {
            if (json_object_object_get_ex(a, k2, NULL))
                continue;
            snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", k2);
            rep_all_diffs(ar, out, NULL, vb2, path);
        }
        return;
    }
    if (ta == json_type_array && tb == json_type_array) {
        size_t na = json_object_array_length(a), nb = json_object_array_length(b);
        for (size_t i = 0; i < na || i < nb; i++) {
            snprintf(path, sizeof path, "%s%s%zu", prefix, *prefix ? "." : "", i);
            rep_all_diffs(ar, out, i < na ? json_object_array_get_idx(a, i) : NULL,
                          i < nb ? json_object_array_get_idx(b, i) : NULL, path);
        }
        return;
    }
    char one[512];
    if (rep_first_diff(a, b, prefix, one, sizeof one))
        key_list_add(ar, out, *prefix ? prefix : one);
}
