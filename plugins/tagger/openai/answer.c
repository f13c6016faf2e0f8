/* plugins/tagger/openai/answer.c - what the `openai` tagger asks for and what it accepts.
 *
 * Asked for: with structured output at level json_schema, a JSON schema per request that
 * llama.cpp turns into a grammar (small models then cannot loop or invent keys) and that
 * OpenAI's strict mode accepts (every property required, no additional ones).
 *
 * Accepted: real servers still answer in many shapes (the schema is a wish at the lower
 * levels, and proxies pass answers through). The parsers take the JSON out of fences,
 * prose and <think> blocks, take the first JSON value that has the wanted structure, accept
 * the common renamings of keys, numbers as strings ("80", "80%"), tag names differing in
 * case, whitespace, '_' or '-', and clamp scores into 0..100, counting each clamp. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "openai.h"

#define MAX_TITLE_BYTES 400 /* longer titles are cut (at a UTF-8 boundary) */

const char *const oai_structured_names[3] = {"json_schema", "json_object", "none"};

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
    unsigned c = s[0];
    size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || n > left || (n == 2 && c < 0xC2)) return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return n;
}

/* A title as one prompt line: control characters become spaces, invalid UTF-8 becomes '?',
 * runs of spaces collapse, cut at MAX_TITLE_BYTES on a character boundary. Caller frees;
 * "" when nothing printable is left. */
char *oai_clean_title(const char *title)
{
    size_t len = strlen(title), out_len = 0;
    char *out = malloc(MAX_TITLE_BYTES + 1);
    if (!out) return NULL;
    for (size_t i = 0; i < len;) {
        const unsigned char *s = (const unsigned char *)title + i;
        size_t n = utf8_seq(s, len - i);
        char one[4];
        size_t m = n;
        if (n == 0) {
            one[0] = '?';
            m = n = 1;
        } else if (n == 1 && (s[0] < 0x20 || s[0] == 0x7F)) {
            one[0] = ' ';
        } else {
            memcpy(one, s, n);
        }
        i += n;
        if (one[0] == ' ' && (out_len == 0 || out[out_len - 1] == ' ')) continue;
        if (out_len + m > MAX_TITLE_BYTES) break;
        memcpy(out + out_len, one, m);
        out_len += m;
    }
    while (out_len > 0 && out[out_len - 1] == ' ') out_len--;
    out[out_len] = '\0';
    return out;
}

/* Canonical tag: trimmed, inner whitespace collapsed, ASCII lower-case, surrounding quotes,
 * '#' and trailing '.' removed. NULL when empty or too long to be a tag. Caller frees. */
char *oai_normalize_tag(const char *s)
{
    while (*s && (isspace((unsigned char)*s) || *s == '"' || *s == '\'' || *s == '#')) s++;
    size_t len = strlen(s);
    while (len > 0 && (isspace((unsigned char)s[len - 1]) || s[len - 1] == '"' || s[len - 1] == '\'' ||
                       s[len - 1] == '.'))
        len--;
    if (len == 0 || len > OAI_MAX_TAG_BYTES) return NULL;
    char *out = malloc(len + 1);
    if (!out) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isspace(c)) {
            if (k > 0 && out[k - 1] != ' ') out[k++] = ' ';
        } else {
            out[k++] = (char)(c < 0x80 ? tolower(c) : c);
        }
    }
    out[k] = '\0';
    return out;
}

/* Snippet of a server reply for error messages: printable ASCII only. */
void oai_snippet(const char *s, size_t len, char *out, size_t size)
{
    size_t k = 0;
    for (size_t i = 0; i < len && k + 1 < size; i++) out[k++] = (s[i] >= 0x20 && s[i] < 0x7F) ? s[i] : ' ';
    out[k] = '\0';
}

/* A number in a JSON value: a number, or a string holding one, optionally followed by '%'
 * ("80%": models echo the scale's unit). False otherwise. */
static bool json_number(json_object *v, double *out)
{
    if (!v) return false;
    enum json_type ty = json_object_get_type(v);
    if (ty == json_type_int || ty == json_type_double) {
        *out = json_object_get_double(v);
        return isfinite(*out);
    }
    if (ty == json_type_string) {
        const char *s = json_object_get_string(v);
        char *end;
        double d = strtod(s, &end);
        while (isspace((unsigned char)*end)) end++;
        if (*end == '%') end++;
        while (isspace((unsigned char)*end)) end++;
        if (end == s || *end || !isfinite(d)) return false;
        *out = d;
        return true;
    }
    return false;
}

/* Parse exactly text[0..len) as JSON; NULL when it is not one complete JSON value. */
json_object *oai_parse_json_exact(const char *text, size_t len)
{
    if (len > INT_MAX) return NULL;
    json_tokener *tok = json_tokener_new();
    if (!tok) return NULL;
    json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
    bool ok = obj && json_tokener_get_error(tok) == json_tokener_success;
    if (ok) {
        size_t used = json_tokener_get_parse_end(tok);
        while (used < len && isspace((unsigned char)text[used])) used++;
        ok = used == len;
    }
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(obj);
        return NULL;
    }
    return obj;
}

typedef bool (*shape_fn)(json_object *v, const void *arg);

/* The JSON value inside an LLM's message. Models wrap it in code fences or prose, and
 * reasoning models put a <think>...</think> block first: after any such block, try every
 * '{' or '[' from which a complete JSON value parses (json-c stops at its end, so trailing
 * prose does not matter) and take the first with the wanted shape, so that an example in
 * the prose before the answer is skipped. `*any` tells whether any JSON value was found. */
static json_object *content_json(const char *content, shape_fn want, const void *arg, bool *any)
{
    *any = false;
    for (const char *p; (p = strstr(content, "</think>"));) content = p + strlen("</think>");
    size_t len = strlen(content);
    int tries = 0;
    for (const char *a = strpbrk(content, "{["); a && tries < 64; a = strpbrk(a + 1, "{["), tries++) {
        size_t left = len - (size_t)(a - content);
        if (left > INT_MAX) return NULL;
        json_tokener *tok = json_tokener_new();
        if (!tok) return NULL;
        json_object *obj = json_tokener_parse_ex(tok, a, (int)left);
        bool ok = obj && json_tokener_get_error(tok) == json_tokener_success;
        json_tokener_free(tok);
        if (ok) *any = true;
        if (ok && want(obj, arg)) return obj;
        json_object_put(obj);
    }
    return NULL;
}

/* Message content of a chat-completions reply (caller frees), or NULL with a reason; the
 * server's usage.completion_tokens in *tokens (-1 when absent). */
static char *reply_content(const char *raw, size_t len, long *tokens, char *why, size_t why_size)
{
    *tokens = -1;
    json_object *root = oai_parse_json_exact(raw, len);
    if (!root) {
        char s[120];
        oai_snippet(raw, len < 100 ? len : 100, s, sizeof s);
        snprintf(why, why_size, "reply is not JSON (starts \"%s\")", s);
        return NULL;
    }
    json_object *choices, *choice, *message, *content, *finish, *usage, *ct;
    double d;
    if (json_object_object_get_ex(root, "usage", &usage) && json_object_object_get_ex(usage, "completion_tokens", &ct) &&
        json_number(ct, &d) && d >= 0 && d < 1e12)
        *tokens = (long)d;
    if (!json_object_object_get_ex(root, "choices", &choices) || !json_object_is_type(choices, json_type_array) ||
        json_object_array_length(choices) < 1 || !(choice = json_object_array_get_idx(choices, 0)) ||
        !json_object_object_get_ex(choice, "message", &message) ||
        !json_object_object_get_ex(message, "content", &content) || !json_object_is_type(content, json_type_string)) {
        snprintf(why, why_size, "reply has no choices[0].message.content string");
        json_object_put(root);
        return NULL;
    }
    if (json_object_object_get_ex(choice, "finish_reason", &finish) && json_object_is_type(finish, json_type_string) &&
        !strcmp(json_object_get_string(finish), "length")) {
        snprintf(why, why_size, "answer cut off at max_tokens (finish_reason \"length\"); raise max_tokens or lower batch");
        json_object_put(root);
        return NULL;
    }
    char *out = strdup(json_object_get_string(content));
    json_object_put(root);
    if (!out) snprintf(why, why_size, "out of memory");
    return out;
}

/* The first of `keys` present in object o, or NULL. */
static json_object *get_any(json_object *o, const char *const *keys)
{
    json_object *v;
    if (!json_object_is_type(o, json_type_object)) return NULL;
    for (; *keys; keys++)
        if (json_object_object_get_ex(o, *keys, &v)) return v;
    return NULL;
}

static const char *const k_tag_name[] = {"tag", "name", "label", NULL};
static const char *const k_score[] = {"score", "relevance", "weight", "value", NULL};

void oai_vote_answer_free(oai_vote_answer *v)
{
    for (int i = 0; i < v->n; i++) free(v->tag[i]);
    free(v->tag);
    free(v->score);
    *v = (oai_vote_answer){0};
}

/* The tag list of a vote answer: a bare list, {"tags": [...]}, or an object whose only
 * array is the list (a renamed key). */
static json_object *vote_list(json_object *root)
{
    if (json_object_is_type(root, json_type_array)) return root;
    if (!json_object_is_type(root, json_type_object)) return NULL;
    json_object *list;
    if (json_object_object_get_ex(root, "tags", &list)) return json_object_is_type(list, json_type_array) ? list : NULL;
    json_object *only = NULL;
    int n_arrays = 0;
    json_object_object_foreach(root, key, val)
    {
        (void)key;
        if (json_object_is_type(val, json_type_array)) only = val, n_arrays++;
    }
    return n_arrays == 1 ? only : NULL;
}

static bool vote_shape(json_object *v, const void *arg)
{
    (void)arg;
    return vote_list(v) != NULL;
}

/* Entries are strings or {"tag"|"name"|"label": s, "score": x}. Valid when at least one
 * tag survives normalisation. */
static oai_fault parse_vote(oai_job *j, const char *content, char *why, size_t why_size)
{
    bool any;
    json_object *root = content_json(content, vote_shape, NULL, &any), *list = root ? vote_list(root) : NULL;
    if (!list) {
        snprintf(why, why_size, "answer is %s a JSON tag list like {\"tags\": [{\"tag\": \"...\", \"score\": 0.9}]}",
                 any ? "JSON but not" : "not");
        return any ? OAI_FAULT_SHAPE : OAI_FAULT_UNPARSABLE;
    }
    size_t n = json_object_array_length(list);
    oai_vote_answer v = {0};
    v.tag = calloc(n ? n : 1, sizeof *v.tag);
    v.score = calloc(n ? n : 1, sizeof *v.score);
    for (size_t i = 0; v.tag && v.score && i < n; i++) {
        json_object *e = json_object_array_get_idx(list, i), *name = e, *score = NULL;
        if (json_object_is_type(e, json_type_object)) name = get_any(e, k_tag_name), score = get_any(e, k_score);
        if (!name || !json_object_is_type(name, json_type_string)) continue;
        char *t = oai_normalize_tag(json_object_get_string(name));
        bool dup = false;
        for (int k = 0; t && k < v.n && !dup; k++) dup = !strcmp(v.tag[k], t);
        if (!t || dup) {
            free(t);
            continue;
        }
        double s = 0;
        if (!json_number(score, &s) || s < 0) s = 0;
        v.tag[v.n] = t;
        v.score[v.n++] = s;
    }
    json_object_put(root);
    if (!v.tag || !v.score) {
        oai_vote_answer_free(&v);
        snprintf(why, why_size, "out of memory");
        return OAI_FAULT_SHAPE;
    }
    if (v.n == 0) {
        oai_vote_answer_free(&v);
        snprintf(why, why_size, "answer lists no usable tag");
        return OAI_FAULT_SHAPE;
    }
    j->vote = v;
    return OAI_FAULT_NONE;
}

/* A tag name with '_' and '-' read as spaces (models write tags as identifiers). */
static void loosen(char *s)
{
    size_t k = 0;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i] == '_' || s[i] == '-' ? ' ' : s[i];
        if (c == ' ' && (k == 0 || s[k - 1] == ' ')) continue;
        s[k++] = c;
    }
    while (k > 0 && s[k - 1] == ' ') k--;
    s[k] = '\0';
}

static int find_tag(const oai_parse_ctx *c, const char *name)
{
    char *t = oai_normalize_tag(name);
    if (!t) return -1;
    int found = -1;
    for (int k = 0; k < c->n_tags && found < 0; k++)
        if (!strcmp(c->tags[k], t)) found = k;
    if (found < 0) {
        char voted[OAI_MAX_TAG_BYTES + 1];
        loosen(t);
        for (int k = 0; k < c->n_tags && found < 0; k++) {
            snprintf(voted, sizeof voted, "%s", c->tags[k]);
            loosen(voted);
            if (!strcmp(voted, t)) found = k;
        }
    }
    free(t);
    return found;
}

/* One score into row[k]: null is 0 (a tag that does not apply), anything not a number makes
 * the item invalid, out-of-range values are clamped and counted. */
static bool put_score(const oai_parse_ctx *c, const char *name, json_object *val, float *row, int *n_clamped)
{
    double s = 0;
    if (val && !json_number(val, &s)) return false;
    int k = find_tag(c, name);
    if (k < 0) return true; /* models invent tags: ignored */
    if (s < 0 || s > 100) {
        s = s < 0 ? 0 : 100;
        (*n_clamped)++;
    }
    row[k] = (float)s;
    return true;
}

/* A tag named in a ranked list: position p of a list of `of` places scores 100 (of - p) / of,
 * so the first of choose = 3 scores 100, the second 67, the third 33. A name repeated keeps
 * its first (higher) score. */
static void put_ranked(const oai_parse_ctx *c, const char *name, size_t p, size_t of, float *row)
{
    int k = find_tag(c, name);
    if (k < 0 || row[k] > 0 || p >= of) return;
    row[k] = (float)floor(100.0 * (double)(of - p) / (double)of + 0.5);
}

/* One item's tags: {"tag": score, ...}, [{"tag": s, "score": x}, ...] or a ranked list of
 * names ["best", "next"] (what scoring: choose asks for; a bare list is read so anywhere). */
static bool parse_item_tags(const oai_parse_ctx *c, json_object *tags, float *row, int *n_clamped)
{
    for (int k = 0; k < c->n_tags; k++) row[k] = 0;
    if (json_object_is_type(tags, json_type_object)) {
        json_object_object_foreach(tags, key, val)
        {
            if (!put_score(c, key, val, row, n_clamped)) return false;
        }
        return true;
    }
    if (!json_object_is_type(tags, json_type_array)) return false;
    size_t n = json_object_array_length(tags);
    size_t of = c->choose > 0 ? (size_t)c->choose : n;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(tags, i);
        if (json_object_is_type(e, json_type_string)) {
            put_ranked(c, json_object_get_string(e), i, of, row);
            continue;
        }
        json_object *name = get_any(e, k_tag_name);
        json_object *score = get_any(e, k_score);
        if (!name || !json_object_is_type(name, json_type_string) || !score ||
            !put_score(c, json_object_get_string(name), score, row, n_clamped))
            return false;
    }
    return true;
}

static const char *const k_items[] = {"items", "results", "data", NULL};
static const char *const k_id[] = {"id", "item_id", "item", "itemId", "item_number", NULL};
static const char *const k_tags[] = {"tags", "scores", "tag_scores", "tagScores", "ratings", NULL};

/* An integer in 1..n from a number or a numeric string; 0 otherwise. */
static int item_id(json_object *v, const char *text, int n)
{
    double d;
    if (text) {
        char *end;
        d = strtod(text, &end);
        if (end == text || *end) return 0;
    } else if (!json_number(v, &d)) {
        return 0;
    }
    return d == floor(d) && d >= 1 && d <= n ? (int)d : 0;
}

/* An object every key of which is an item id ("1": {...}): items keyed by id. */
static bool keyed_by_id(json_object *o, int n)
{
    if (!json_object_is_type(o, json_type_object) || json_object_object_length(o) == 0) return false;
    json_object_object_foreach(o, key, val)
    {
        (void)val;
        if (!item_id(NULL, key, n)) return false;
    }
    return true;
}

/* The container of a score answer: a list of items, an object keyed by id, either under
 * "items" (or a renaming) or at the top; a single bare item only for a batch of one (else
 * a fragment of a cut-off answer would pass). */
static json_object *score_items_of(json_object *root, int n)
{
    if (json_object_is_type(root, json_type_array)) return root;
    json_object *items = get_any(root, k_items);
    if (items) return json_object_is_type(items, json_type_array) || keyed_by_id(items, n) ? items : NULL;
    if (keyed_by_id(root, n)) return root;
    if (n == 1 && get_any(root, k_id) && get_any(root, k_tags)) return root;
    return NULL;
}

static bool score_shape(json_object *v, const void *arg) { return score_items_of(v, *(const int *)arg) != NULL; }

/* Item `id` (1-based) from entry e (its tags under a tags key, or e itself when keyed). */
static void score_entry(const oai_parse_ctx *c, oai_job *j, int id, json_object *e, bool keyed)
{
    json_object *tags = get_any(e, k_tags);
    if (!tags && keyed) tags = e;
    if (!id || !tags) return;
    j->item_ok[id - 1] = parse_item_tags(c, tags, j->rows + (size_t)(id - 1) * (size_t)c->n_tags, &j->n_clamped);
}

/* Fills the rows of the ids present; valid (cacheable) only when every id of the batch is there. */
static oai_fault parse_scores(const oai_parse_ctx *c, oai_job *j, const char *content, char *why, size_t why_size)
{
    memset(j->item_ok, 0, (size_t)j->n_items * sizeof *j->item_ok);
    j->n_clamped = 0;
    bool any;
    json_object *root = content_json(content, score_shape, &j->n_items, &any);
    json_object *items = root ? score_items_of(root, j->n_items) : NULL;
    if (!items) {
        snprintf(why, why_size, "answer is %s JSON like {\"items\": [{\"id\": 1, \"tags\": {\"tag\": 80}}]}",
                 any ? "JSON but not" : "not");
        return any ? OAI_FAULT_SHAPE : OAI_FAULT_UNPARSABLE;
    }
    if (json_object_is_type(items, json_type_array)) {
        size_t n = json_object_array_length(items);
        for (size_t i = 0; i < n; i++) {
            json_object *e = json_object_array_get_idx(items, i);
            score_entry(c, j, item_id(get_any(e, k_id), NULL, j->n_items), e, false);
        }
    } else if (items == root && !keyed_by_id(root, j->n_items)) {
        score_entry(c, j, item_id(get_any(root, k_id), NULL, 1), root, false);
    } else {
        json_object_object_foreach(items, key, val) score_entry(c, j, item_id(NULL, key, j->n_items), val, true);
    }
    json_object_put(root);
    int n_ok = 0;
    for (int i = 0; i < j->n_items; i++) n_ok += j->item_ok[i];
    if (n_ok < j->n_items) {
        snprintf(why, why_size, "answer covers %d of the batch's %d items", n_ok, j->n_items);
        return OAI_FAULT_SHAPE;
    }
    return OAI_FAULT_NONE;
}

oai_fault oai_parse_reply(const oai_parse_ctx *c, oai_job *j, const char *raw, size_t len, char *why, size_t why_size)
{
    if (j->kind == OAI_VOTE) oai_vote_answer_free(&j->vote);
    char *content = reply_content(raw, len, &j->completion_tokens, why, why_size);
    if (!content) return OAI_FAULT_UNPARSABLE;
    oai_fault f = j->kind == OAI_VOTE ? parse_vote(j, content, why, why_size) : parse_scores(c, j, content, why, why_size);
    free(content);
    return f;
}

/* ---- JSON schemas ---- */

static json_object *new_type(const char *type)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string(type));
    return o;
}

/* {"type": "object", "properties": props, "required": [every key], "additionalProperties":
 * false}: OpenAI's strict mode needs every property required and no others. */
static json_object *strict_object(json_object *props)
{
    json_object *o = new_type("object"), *req = json_object_new_array();
    json_object_object_foreach(props, key, val)
    {
        (void)val;
        json_object_array_add(req, json_object_new_string(key));
    }
    json_object_object_add(o, "properties", props);
    json_object_object_add(o, "required", req);
    json_object_object_add(o, "additionalProperties", json_object_new_boolean(0));
    return o;
}

static json_object *int_range(int lo, int hi)
{
    json_object *o = new_type("integer");
    json_object_object_add(o, "minimum", json_object_new_int(lo));
    json_object_object_add(o, "maximum", json_object_new_int(hi));
    return o;
}

/* A list of `lo`..`hi` entries of `item`, as the only property `key` of a strict object. */
static json_object *list_of(const char *key, json_object *item, int lo, int hi)
{
    json_object *list = new_type("array"), *props = json_object_new_object();
    json_object_object_add(list, "items", item);
    json_object_object_add(list, "minItems", json_object_new_int(lo));
    json_object_object_add(list, "maxItems", json_object_new_int(hi));
    json_object_object_add(props, key, list);
    return strict_object(props);
}

/* The domain prompt's shape: {"tags": [{"tag": "...", "score": 0.9}]}, at most n_tags
 * entries (a small model otherwise lists tags until max_tokens). */
static json_object *vote_schema(const oai_parse_ctx *c)
{
    json_object *props = json_object_new_object(), *score = new_type("number");
    json_object_object_add(score, "minimum", json_object_new_int(0));
    json_object_object_add(score, "maximum", json_object_new_int(1));
    json_object_object_add(props, "tag", new_type("string"));
    json_object_object_add(props, "score", score);
    return list_of("tags", strict_object(props), 1, c->n_wanted > 0 ? c->n_wanted : 1);
}

/* scoring: scores - every voted tag a required integer 0..100 (0: does not apply). */
static json_object *score_object(const oai_parse_ctx *c)
{
    json_object *tags = json_object_new_object();
    for (int k = 0; k < c->n_tags; k++) json_object_object_add(tags, c->tags[k], int_range(0, 100));
    return strict_object(tags);
}

/* scoring: choose - 1..choose distinct names out of the voted tags, best first. A grammar
 * cannot invent a tag here, and the answer is a few tokens instead of one number per tag. */
static json_object *choice_list(const oai_parse_ctx *c)
{
    json_object *names = json_object_new_array(), *item = json_object_new_object(), *list = new_type("array");
    for (int k = 0; k < c->n_tags; k++) json_object_array_add(names, json_object_new_string(c->tags[k]));
    json_object_object_add(item, "type", json_object_new_string("string"));
    json_object_object_add(item, "enum", names);
    json_object_object_add(list, "items", item);
    json_object_object_add(list, "minItems", json_object_new_int(1));
    json_object_object_add(list, "maxItems", json_object_new_int(c->choose < c->n_tags ? c->choose : c->n_tags));
    json_object_object_add(list, "uniqueItems", json_object_new_boolean(1));
    return list;
}

/* The scoring prompt's shape (the item's tags per score_object or choice_list), with every voted tag a required integer 0..100 (0: does not
 * apply) and exactly the batch's items: nothing left for a small model to invent. */
static json_object *score_schema(const oai_parse_ctx *c, const oai_job *j)
{
    json_object *item = json_object_new_object();
    json_object_object_add(item, "id", int_range(1, j->n_items));
    json_object_object_add(item, "tags", c->choose > 0 ? choice_list(c) : score_object(c));
    return list_of("items", strict_object(item), j->n_items, j->n_items);
}

json_object *oai_response_format(const oai_parse_ctx *c, const oai_job *j, oai_structured level)
{
    if (level == OAI_PLAIN) return NULL;
    json_object *rf = new_type(level == OAI_JSON_SCHEMA ? "json_schema" : "json_object");
    if (level == OAI_JSON_SCHEMA) {
        json_object *js = json_object_new_object();
        json_object_object_add(js, "name", json_object_new_string(j->kind == OAI_VOTE ? "domain_tags" : "item_scores"));
        json_object_object_add(js, "strict", json_object_new_boolean(1));
        json_object_object_add(js, "schema", j->kind == OAI_VOTE ? vote_schema(c) : score_schema(c, j));
        json_object_object_add(rf, "json_schema", js);
    }
    return rf;
}
