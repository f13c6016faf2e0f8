/* plugins/tagger/tag_vocab.h - the tag vocabulary files <vocab_dir>/<domain>.yaml (format:
 * the comment atop experiments/tags/food.yaml), shared by the taggers that read them
 * (lexical, embedding).
 *
 * The reader checks the file and hands every tag and synonym to the tagger's callbacks in
 * file order: each tagger keeps its own representation (BM25 phrases, texts to embed), and
 * a tagger's own complaint about a phrase arrives at the same point of the file as the
 * reader's complaints, so the first error of a file is the one reported.
 * Static functions: include it from one plugin source file, after ../tag_plugin.h. */
#ifndef TEMA_PLUGINS_TAGGER_TAG_VOCAB_H
#define TEMA_PLUGINS_TAGGER_TAG_VOCAB_H

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "../tag_plugin.h"

#define TAG_VOCAB_DIR "experiments/tags"
#define TAG_VOCAB_MAX_NAME 120

/* Grow *p (of *cap elements of elem bytes) to hold need elements, doubling. */
static inline bool tag_vocab_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

typedef struct tag_vocab_sink {
    const char *who;  /* "tagger lexical": messages that name no file start with it */
    const char *file; /* the vocabulary file: the others start with it */
    void *ctx;
    /* A new tag, name[0..len): trimmed, not empty, at most TAG_VOCAB_MAX_NAME bytes, no tab
     * or line break, unlike every earlier name ignoring case. Its synonyms follow. */
    tema_status (*tag)(void *ctx, const char *name, size_t len, size_t line, tema_err *err);
    /* A synonym of the last tag, as written (not empty). */
    tema_status (*synonym)(void *ctx, const char *text, size_t line, tema_err *err);
} tag_vocab_sink;

static inline bool tag_vocab_valid_domain(const char *d)
{
    if (!d || !*d || strlen(d) > 64) return false;
    for (; *d; d++)
        if (!(islower((unsigned char)*d) || isdigit((unsigned char)*d) || *d == '_' || *d == '-')) return false;
    return true;
}

/* *file = "<vocab_dir>/<domain>.yaml" (malloc'ed) after checking the domain name and the
 * option vocab_dir (empty or absent: TAG_VOCAB_DIR). */
static inline tema_status tag_vocab_path(const tema_host *host, const tema_cfg *opts, const char *domain,
                                         const char *who, char **file, tema_err *err)
{
    *file = NULL;
    if (!tag_vocab_valid_domain(domain))
        return tema_fail(err, TEMA_EINVAL, "%s: domain name '%s' is not [a-z0-9_-]+; hint: set dataset.domains to "
                                           "names like [food, kitchen]", who, domain ? domain : "(null)");
    const char *dir = NULL;
    tema_status st = plugin_opt_str(host, opts, who, "vocab_dir", &dir, err);
    if (st != TEMA_OK) return st;
    if (!dir || !*dir) dir = TAG_VOCAB_DIR; /* the option's declared default "" means the shipped folder */
    size_t n = strlen(dir) + strlen(domain) + 8;
    if (!(*file = malloc(n))) return tema_fail(err, TEMA_ENOMEM, "%s: out of memory", who);
    snprintf(*file, n, "%s/%s.yaml", dir, domain);
    return TEMA_OK;
}

/* ---- parsing ---- */

static inline size_t tag_vocab_line(const yaml_node_t *n) { return n->start_mark.line + 1; }

static inline const char *tag_vocab_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE: return "a single value";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "nothing";
    }
}

static inline const char *tag_vocab_scalar(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

/* The names seen so far (pointing into the YAML document), for the duplicate check. */
typedef struct tag_vocab_names {
    const char **name;
    size_t *len;
    size_t n, cap_name, cap_len;
} tag_vocab_names;

static inline tema_status tag_vocab_name(const tag_vocab_sink *s, tag_vocab_names *seen, const char *name,
                                         size_t line, tema_err *err)
{
    size_t len = strlen(name);
    while (len && isspace((unsigned char)name[len - 1])) len--;
    while (len && isspace((unsigned char)*name)) name++, len--;
    if (len == 0) return tema_fail(err, TEMA_EFORMAT, "%s:%zu: empty tag name; hint: write name: WORDS", s->file, line);
    if (len > TAG_VOCAB_MAX_NAME)
        return tema_fail(err, TEMA_EFORMAT, "%s:%zu: tag name '%.40s...' is longer than %d characters", s->file, line,
                         name, TAG_VOCAB_MAX_NAME);
    for (size_t i = 0; i < len; i++)
        if (name[i] == '\t' || name[i] == '\n' || name[i] == '\r')
            return tema_fail(err, TEMA_EFORMAT, "%s:%zu: tag name '%.*s' contains a tab or line break", s->file, line,
                             (int)len, name);
    for (size_t t = 0; t < seen->n; t++)
        if (seen->len[t] == len && !strncasecmp(seen->name[t], name, len))
            return tema_fail(err, TEMA_EFORMAT, "%s:%zu: tag '%.*s' is listed twice; hint: merge the two entries",
                             s->file, line, (int)len, name);
    if (!tag_vocab_grow((void **)&seen->name, &seen->cap_name, seen->n + 1, sizeof *seen->name) ||
        !tag_vocab_grow((void **)&seen->len, &seen->cap_len, seen->n + 1, sizeof *seen->len))
        return tema_fail(err, TEMA_ENOMEM, "%s: out of memory reading %s", s->who, s->file);
    seen->name[seen->n] = name;
    seen->len[seen->n++] = len;
    return s->tag(s->ctx, name, len, line, err);
}

static inline tema_status tag_vocab_tag(const tag_vocab_sink *s, tag_vocab_names *seen, yaml_document_t *doc,
                                        yaml_node_t *n, tema_err *err)
{
    if (n->type == YAML_SCALAR_NODE) return tag_vocab_name(s, seen, tag_vocab_scalar(n), tag_vocab_line(n), err);
    if (n->type != YAML_MAPPING_NODE)
        return tema_fail(err, TEMA_EFORMAT, "%s:%zu: a tag must be a mapping {name: ..., synonyms: [...]}, got %s",
                         s->file, tag_vocab_line(n), tag_vocab_kind(n));
    yaml_node_t *name = NULL, *syn = NULL;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key), *v = yaml_document_get_node(doc, p->value);
        if (!k || !v || k->type != YAML_SCALAR_NODE)
            return tema_fail(err, TEMA_EFORMAT, "%s:%zu: tag keys must be plain words", s->file, tag_vocab_line(n));
        if (!strcmp(tag_vocab_scalar(k), "name")) name = v;
        else if (!strcmp(tag_vocab_scalar(k), "synonyms")) syn = v;
        else
            return tema_fail(err, TEMA_EFORMAT, "%s:%zu: unknown key '%s' in a tag; hint: a tag has only 'name' and "
                                                "'synonyms'", s->file, tag_vocab_line(k), tag_vocab_scalar(k));
    }
    if (!name || name->type != YAML_SCALAR_NODE)
        return tema_fail(err, TEMA_EFORMAT, "%s:%zu: tag without a name; hint: add name: WORDS", s->file,
                         tag_vocab_line(name ? name : n));
    tema_status st = tag_vocab_name(s, seen, tag_vocab_scalar(name), tag_vocab_line(name), err);
    if (st != TEMA_OK || !syn) return st;
    if (syn->type == YAML_SCALAR_NODE) {
        if (!*tag_vocab_scalar(syn)) return TEMA_OK; /* `synonyms:` left empty */
        return s->synonym(s->ctx, tag_vocab_scalar(syn), tag_vocab_line(syn), err);
    }
    if (syn->type != YAML_SEQUENCE_NODE)
        return tema_fail(err, TEMA_EFORMAT, "%s:%zu: synonyms of '%s' must be a list like [word, two words], got %s",
                         s->file, tag_vocab_line(syn), tag_vocab_scalar(name), tag_vocab_kind(syn));
    for (yaml_node_item_t *it = syn->data.sequence.items.start; it < syn->data.sequence.items.top; it++) {
        yaml_node_t *y = yaml_document_get_node(doc, *it);
        if (!y || y->type != YAML_SCALAR_NODE)
            return tema_fail(err, TEMA_EFORMAT, "%s:%zu: a synonym of '%s' must be a word or phrase, got %s", s->file,
                             tag_vocab_line(y ? y : syn), tag_vocab_scalar(name), y ? tag_vocab_kind(y) : "nothing");
        if ((st = s->synonym(s->ctx, tag_vocab_scalar(y), tag_vocab_line(y), err)) != TEMA_OK) return st;
    }
    return TEMA_OK;
}

/* The top level: optional domain (must be this one) and description, then the tag list. */
static inline tema_status tag_vocab_root(const tag_vocab_sink *s, const char *domain, yaml_document_t *doc,
                                         tema_err *err)
{
    yaml_node_t *root = yaml_document_get_root_node(doc), *tags = NULL;
    if (!root || root->type != YAML_MAPPING_NODE)
        return tema_fail(err, TEMA_EFORMAT, "%s:%zu: expected a mapping with 'tags: [...]', got %s; hint: see the "
                                            "comment at the top of experiments/tags/food.yaml",
                         s->file, root ? tag_vocab_line(root) : (size_t)1,
                         root ? tag_vocab_kind(root) : "an empty file");
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key), *v = yaml_document_get_node(doc, p->value);
        if (!k || !v || k->type != YAML_SCALAR_NODE)
            return tema_fail(err, TEMA_EFORMAT, "%s:%zu: top-level keys must be plain words", s->file,
                             tag_vocab_line(root));
        const char *key = tag_vocab_scalar(k);
        if (!strcmp(key, "tags")) {
            tags = v;
        } else if (!strcmp(key, "domain")) {
            if (v->type != YAML_SCALAR_NODE || strcmp(tag_vocab_scalar(v), domain) != 0)
                return tema_fail(err, TEMA_EFORMAT, "%s:%zu: 'domain' is '%s' but this file was loaded for domain "
                                                    "'%s'; hint: the file name and its domain must agree",
                                 s->file, tag_vocab_line(v), v->type == YAML_SCALAR_NODE ? tag_vocab_scalar(v)
                                                                                        : tag_vocab_kind(v), domain);
        } else if (strcmp(key, "description") != 0) {
            return tema_fail(err, TEMA_EFORMAT, "%s:%zu: unknown top-level key '%s'; hint: valid keys are domain, "
                                                "description and tags", s->file, tag_vocab_line(k), key);
        }
    }
    if (!tags || tags->type != YAML_SEQUENCE_NODE || tags->data.sequence.items.start == tags->data.sequence.items.top)
        return tema_fail(err, TEMA_EFORMAT, "%s:%zu: 'tags' must be a non-empty list of {name, synonyms}; hint: see "
                                            "the comment at the top of experiments/tags/food.yaml",
                         s->file, tag_vocab_line(tags ? tags : root));
    tag_vocab_names seen = {0};
    tema_status st = TEMA_OK;
    for (yaml_node_item_t *it = tags->data.sequence.items.start; it < tags->data.sequence.items.top && st == TEMA_OK;
         it++) {
        yaml_node_t *t = yaml_document_get_node(doc, *it);
        if (t) st = tag_vocab_tag(s, &seen, doc, t, err);
    }
    free(seen.name);
    free(seen.len);
    return st;
}

static inline tema_status tag_vocab_parse(const tag_vocab_sink *s, const char *domain, const char *text, size_t len,
                                          tema_err *err)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) return tema_fail(err, TEMA_ENOMEM, "%s: out of memory", s->who);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        tema_status st = tema_fail(err, TEMA_EFORMAT, "%s:%zu:%zu: YAML error: %s%s%s; hint: check the indentation "
                                                      "and quoting near that line",
                                   s->file, parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                                   parser.problem ? parser.problem : "unreadable", parser.context ? " " : "",
                                   parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return st;
    }
    yaml_parser_delete(&parser);
    tema_status st = tag_vocab_root(s, domain, &doc, err);
    yaml_document_delete(&doc);
    return st;
}

/* Read s->file, the vocabulary of `domain`, into the sink. */
static inline tema_status tag_vocab_load(const tag_vocab_sink *s, const char *domain, tema_err *err)
{
    FILE *f = fopen(s->file, "rb");
    if (!f) {
        int e = errno;
        if (e == ENOENT)
            return tema_fail(err, TEMA_ENOTFOUND, "%s: no tag vocabulary for domain '%s': %s does not exist; hint: "
                                                  "write it (format: the comment atop experiments/tags/food.yaml), "
                                                  "set the tagger's vocab_dir, or name the domains with "
                                                  "dataset.domains", s->who, domain, s->file);
        return tema_fail(err, TEMA_EIO, "%s: cannot open %s: %s", s->who, s->file, strerror(e));
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    tema_status st = TEMA_OK;
    while (true) {
        if (!tag_vocab_grow((void **)&text, &cap, len + 65536, 1)) {
            st = tema_fail(err, TEMA_ENOMEM, "%s: out of memory reading %s", s->who, s->file);
            break;
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) st = tema_fail(err, TEMA_EIO, "%s: cannot read %s", s->who, s->file);
            break;
        }
    }
    fclose(f);
    if (st == TEMA_OK) st = tag_vocab_parse(s, domain, text, len, err);
    free(text);
    return st;
}

/* Release what a tagger's tag() put into *out (its strings and arrays) and zero it. */
static inline void tag_vocab_out_free(const tema_host *host, tema_tag_vocab *out)
{
    if (out->tags)
        for (int32_t t = 0; t < out->n_tags; t++) host->free(out->tags[t]);
    host->free(out->tags);
    host->free(out->score);
    memset(out, 0, sizeof *out);
}

#endif
