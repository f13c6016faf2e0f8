/* core/config.c - the configuration tree: YAML in (libyaml, with positions), dotted
 * lookups, --set overrides, the resolve pipeline, and YAML / canonical JSON out.
 * The schema and validation live in validate.c. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config_internal.h"
#include "util.h"

/* ---- nodes ---- */

#define NODE_MAGIC 0x7465636fu /* tells our wrapper from a node someone built by hand */
#define MAX_DEPTH 64           /* nesting (also stops recursive aliases) */
#define MAX_NODES 1000000      /* stops alias bombs */

typedef struct cfg_node {
    struct tema_cfg pub;
    uint32_t magic;
    int key_line, key_col;
    size_t cap;
} cfg_node;

static cfg_node *wrap(const tema_cfg *n)
{
    cfg_node *w = (cfg_node *)(void *)n;
    return w && w->magic == NODE_MAGIC ? w : NULL;
}

typedef struct interned {
    struct interned *next;
    char s[];
} interned;
static interned *intern_list; /* reachable until exit on purpose: nodes point into it */
static pthread_mutex_t intern_lock = PTHREAD_MUTEX_INITIALIZER;

const char *tema_cfgi_intern(const char *s)
{
    if (!s) return NULL;
    pthread_mutex_lock(&intern_lock);
    const char *found = NULL;
    for (interned *i = intern_list; i && !found; i = i->next)
        if (!strcmp(i->s, s)) found = i->s;
    if (!found) {
        size_t n = strlen(s) + 1;
        interned *i = malloc(sizeof *i + n);
        if (i) {
            memcpy(i->s, s, n);
            i->next = intern_list;
            intern_list = i;
            found = i->s;
        }
    }
    pthread_mutex_unlock(&intern_lock);
    return found ? found : "<unknown>";
}

tema_cfg *tema_cfg_new(tema_cfg_type type, const char *key, const char *file, int line, int col)
{
    cfg_node *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->magic = NODE_MAGIC;
    w->pub.type = type;
    if (key && !(w->pub.key = strdup(key))) {
        free(w);
        return NULL;
    }
    w->pub.file = tema_cfgi_intern(file ? file : "<unknown>");
    w->pub.line = w->key_line = line;
    w->pub.col = w->key_col = col;
    return &w->pub;
}

bool tema_cfgi_set_text(tema_cfg *n, const char *text, bool quoted)
{
    char *v = strdup(text ? text : "");
    if (!v) return false;
    free(n->value);
    n->value = v;
    n->quoted = quoted;
    return true;
}

void tema_cfgi_key_pos(const tema_cfg *n, int *line, int *col)
{
    const cfg_node *w = wrap(n);
    *line = w ? w->key_line : n->line;
    *col = w ? w->key_col : n->col;
}

static void set_key_pos(tema_cfg *n, int line, int col)
{
    cfg_node *w = wrap(n);
    if (w) {
        w->key_line = line;
        w->key_col = col;
    }
}

void tema_cfg_free(tema_cfg *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n_items; i++) tema_cfg_free(c->items[i]);
    free(c->items);
    free(c->key);
    free(c->value);
    cfg_node *w = wrap(c);
    if (w) free(w);
    else free(c);
}

bool tema_cfg_append(tema_cfg *parent, tema_cfg *child)
{
    cfg_node *w = wrap(parent);
    size_t cap = w ? w->cap : parent->n_items; /* a hand-built node: grow one at a time */
    if (parent->n_items == cap) {
        size_t ncap = w ? (cap ? cap * 2 : 4) : cap + 1;
        tema_cfg **items = realloc(parent->items, ncap * sizeof *items);
        if (!items) {
            tema_cfg_free(child);
            return false;
        }
        parent->items = items;
        if (w) w->cap = ncap;
    }
    parent->items[parent->n_items++] = child;
    return true;
}

tema_cfg *tema_cfg_child(const tema_cfg *map, const char *key, size_t *index)
{
    if (!map || map->type != TEMA_CFG_MAP) return NULL;
    for (size_t i = 0; i < map->n_items; i++)
        if (map->items[i]->key && !strcmp(map->items[i]->key, key)) {
            if (index) *index = i;
            return map->items[i];
        }
    return NULL;
}

void tema_cfg_replace(tema_cfg *parent, size_t i, tema_cfg *child)
{
    tema_cfg *old = parent->items[i];
    if (old->key && (!child->key || strcmp(child->key, old->key))) {
        free(child->key);
        child->key = old->key;
        old->key = NULL;
    }
    tema_cfg_free(old);
    parent->items[i] = child;
}

tema_cfg *tema_cfg_take(tema_cfg *parent, size_t i)
{
    tema_cfg *c = parent->items[i];
    memmove(parent->items + i, parent->items + i + 1, (parent->n_items - i - 1) * sizeof *parent->items);
    parent->n_items--;
    return c;
}

void tema_cfg_retype(tema_cfg *n, tema_cfg_type type)
{
    if (n->type != TEMA_CFG_NULL) return;
    free(n->value);
    n->value = NULL;
    n->type = type;
}

tema_cfg *tema_cfg_clone(const tema_cfg *c)
{
    if (!c) return NULL;
    tema_cfg *n = tema_cfg_new(c->type, c->key, c->file, c->line, c->col);
    if (!n) return NULL;
    int kl, kc;
    tema_cfgi_key_pos(c, &kl, &kc);
    set_key_pos(n, kl, kc);
    if (c->value && !tema_cfgi_set_text(n, c->value, c->quoted)) goto oom;
    n->quoted = c->quoted;
    for (size_t i = 0; i < c->n_items; i++) {
        tema_cfg *k = tema_cfg_clone(c->items[i]);
        if (!k || !tema_cfg_append(n, k)) goto oom;
    }
    return n;
oom:
    tema_cfg_free(n);
    return NULL;
}

/* ---- lookups ---- */

static const tema_cfg *step(const tema_cfg *n, const char *seg, size_t len)
{
    if (n->type == TEMA_CFG_MAP) {
        for (size_t i = 0; i < n->n_items; i++) {
            const char *k = n->items[i]->key;
            if (k && strlen(k) == len && !memcmp(k, seg, len)) return n->items[i];
        }
        return NULL;
    }
    if (n->type == TEMA_CFG_LIST) {
        size_t idx = 0;
        if (len == 0 || len > 9) return NULL;
        for (size_t i = 0; i < len; i++) {
            if (seg[i] < '0' || seg[i] > '9') return NULL;
            idx = idx * 10 + (size_t)(seg[i] - '0');
        }
        return idx < n->n_items ? n->items[idx] : NULL;
    }
    return NULL;
}

const tema_cfg *tema_cfg_get(const tema_cfg *root, const char *path)
{
    if (!root || !path) return NULL;
    const tema_cfg *n = root;
    const char *p = path;
    while (*p && n) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        n = step(n, p, len);
        p += len;
        if (*p == '.') p++;
    }
    return n;
}

const char *tema_cfg_str(const tema_cfg *root, const char *path, const char *fallback)
{
    const tema_cfg *n = tema_cfg_get(root, path);
    return n && n->type == TEMA_CFG_SCALAR ? n->value : fallback;
}

const char *tema_cfg_results_dir(const tema_cfg *experiment, const char *given)
{
    if (given && *given) return given;
    const char *own = experiment ? tema_cfg_str(experiment, "results_dir", NULL) : NULL;
    return own && *own ? own : "results";
}

int64_t tema_cfg_int(const tema_cfg *root, const char *path, int64_t fallback)
{
    const tema_cfg *n = tema_cfg_get(root, path);
    if (!n || n->type != TEMA_CFG_SCALAR || !n->value[0]) return fallback;
    char *end;
    errno = 0;
    long long v = strtoll(n->value, &end, 10);
    return *end || errno ? fallback : (int64_t)v;
}

double tema_cfg_float(const tema_cfg *root, const char *path, double fallback)
{
    const tema_cfg *n = tema_cfg_get(root, path);
    if (!n || n->type != TEMA_CFG_SCALAR || !tema_cfg_is_number(n->value)) return fallback;
    return strtod(n->value, NULL);
}

bool tema_cfg_bool(const tema_cfg *root, const char *path, bool fallback)
{
    const tema_cfg *n = tema_cfg_get(root, path);
    if (!n || n->type != TEMA_CFG_SCALAR) return fallback;
    if (!strcmp(n->value, "true")) return true;
    if (!strcmp(n->value, "false")) return false;
    return fallback;
}

static tema_status need_fail(const char *path, const char *what, tema_err *err)
{
    return tema_fail(err, TEMA_EINTERNAL, "config %s: missing or not %s in the resolved config; a bug: read only keys "
                                          "the schema declares, from a tree tema_cfg_resolve made", path, what);
}

tema_status tema_cfg_need_int(const tema_cfg *root, const char *path, int64_t *out, tema_err *err)
{
    const tema_cfg *n = tema_cfg_get(root, path);
    char *end = NULL;
    errno = 0;
    long long v = n && n->type == TEMA_CFG_SCALAR && n->value[0] ? strtoll(n->value, &end, 10) : 0;
    if (!end || *end || errno) return need_fail(path, "an integer", err);
    *out = (int64_t)v;
    return TEMA_OK;
}

tema_status tema_cfg_need_float(const tema_cfg *root, const char *path, double *out, tema_err *err)
{
    const tema_cfg *n = tema_cfg_get(root, path);
    if (!n || n->type != TEMA_CFG_SCALAR || !tema_cfg_is_number(n->value)) return need_fail(path, "a number", err);
    *out = strtod(n->value, NULL);
    return TEMA_OK;
}

tema_status tema_cfg_need_bool(const tema_cfg *root, const char *path, bool *out, tema_err *err)
{
    const tema_cfg *n = tema_cfg_get(root, path);
    if (!n || n->type != TEMA_CFG_SCALAR || (strcmp(n->value, "true") && strcmp(n->value, "false")))
        return need_fail(path, "true or false", err);
    *out = !strcmp(n->value, "true");
    return TEMA_OK;
}

tema_status tema_cfg_need_str(const tema_cfg *root, const char *path, const char **out, tema_err *err)
{
    const tema_cfg *n = tema_cfg_get(root, path);
    if (!n || n->type != TEMA_CFG_SCALAR) return need_fail(path, "a string", err);
    *out = n->value;
    return TEMA_OK;
}

/* ---- numbers ---- */

bool tema_cfg_is_number(const char *s)
{
    if (!s) return false;
    if (*s == '+' || *s == '-') s++;
    size_t digits = 0;
    while (*s >= '0' && *s <= '9') s++, digits++;
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') s++, digits++;
    }
    if (!digits) return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (!(*s >= '0' && *s <= '9')) return false;
        while (*s >= '0' && *s <= '9') s++;
    }
    return *s == '\0';
}

bool tema_cfgi_number_canon(const char *s, char *out, size_t size)
{
    if (!tema_cfg_is_number(s)) return false;
    if (!strpbrk(s, ".eE")) {
        errno = 0;
        long long v = strtoll(s, NULL, 10);
        if (!errno) {
            snprintf(out, size, "%lld", v);
            return true;
        }
    }
    double v = strtod(s, NULL);
    if (!isfinite(v)) return false;
    if (v == 0) v = 0; /* -0 and 0 are the same setting */
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, size, "%.*g", prec, v);
        if (strtod(out, NULL) == v) break;
    }
    return true;
}

/* ---- diagnostics ---- */

void tema_cfg_where(const tema_cfg *n, bool at_key, char *buf, size_t size)
{
    int line = n->line, col = n->col;
    if (at_key) tema_cfgi_key_pos(n, &line, &col);
    if (line > 0) snprintf(buf, size, "%s:%d:%d", n->file, line, col);
    else snprintf(buf, size, "%s", n->file);
}

static void add_problem(tema_cfg_diag *d, tema_status code, const char *text, int line, int col)
{
    d->count++;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        tema_cfg_problem *items = realloc(d->items, cap * sizeof *items);
        if (!items) goto direct;
        d->items = items;
        d->cap = cap;
    }
    tema_cfg_problem *p = &d->items[d->n];
    if (!(p->text = strdup(text))) goto direct;
    p->code = code;
    p->line = line;
    p->col = col;
    p->seq = d->n++;
    return;
direct:
    /* out of memory: say it now, unordered, rather than lose it */
    if (d->out) fprintf(d->out, "%s\n", text);
    if (d->err && d->count == 1) tema_fail(d->err, code, "%s", text);
}

void tema_cfg_report_located(tema_cfg_diag *d, tema_status code, const char *text)
{
    add_problem(d, code, text, 0, 0);
}

void tema_cfg_report(tema_cfg_diag *d, tema_status code, const char *where, const char *fmt, ...)
{
    char msg[2048];
    int k = snprintf(msg, sizeof msg, "%s: ", where);
    if (k < 0 || (size_t)k >= sizeof msg) k = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + k, sizeof msg - (size_t)k, fmt, ap);
    va_end(ap);
    /* where = "FILE:LINE:COL" or just a label */
    int line = 0, col = 0;
    const char *c2 = strrchr(where, ':');
    if (c2 && c2 > where) {
        const char *c1 = c2 - 1;
        while (c1 > where && *c1 >= '0' && *c1 <= '9') c1--;
        if (*c1 == ':' && c1 + 1 < c2 && sscanf(c1 + 1, "%d:%d", &line, &col) != 2) line = col = 0;
        if (*c1 != ':') line = col = 0;
    }
    add_problem(d, code, msg, line, col);
}

static int problem_cmp(const void *a, const void *b)
{
    const tema_cfg_problem *x = a, *y = b;
    if ((x->line > 0) != (y->line > 0)) return x->line > 0 ? -1 : 1;
    if (x->line != y->line) return x->line < y->line ? -1 : 1;
    if (x->col != y->col) return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

tema_status tema_cfg_diag_flush(tema_cfg_diag *d)
{
    if (d->n) qsort(d->items, d->n, sizeof *d->items, problem_cmp);
    for (size_t i = 0; i < d->n; i++) {
        if (d->out) fprintf(d->out, "%s\n", d->items[i].text);
        if (i == 0 && d->err) tema_fail(d->err, d->items[i].code, "%s", d->items[i].text);
        free(d->items[i].text);
    }
    free(d->items);
    d->items = NULL;
    d->n = d->cap = 0;
    if (d->out) fflush(d->out);
    if (!d->count) return TEMA_OK;
    return d->err && d->err->code != TEMA_OK ? d->err->code : TEMA_EINVAL;
}

/* ---- YAML in ---- */

typedef struct parse_ctx {
    yaml_document_t *doc;
    const char *label;
    bool positions;
    size_t n_nodes;
    tema_err *err;
} parse_ctx;

static bool is_plain_null(const char *v)
{
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

/* A key given twice in one mapping is an error naming both lines. Checked with a hash set of the
 * keys, so a mapping of n keys costs O(n), not O(n^2) (700k keys: seconds, not minutes). */
static tema_status duplicate_keys(parse_ctx *c, yaml_node_t *yn)
{
    const size_t n = (size_t)(yn->data.mapping.pairs.top - yn->data.mapping.pairs.start);
    if (n < 2) return TEMA_OK;
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    yaml_node_t **slot = calloc(cap, sizeof *slot);
    if (!slot) return tema_fail(c->err, TEMA_ENOMEM, "out of memory reading %s", c->label);
    tema_status st = TEMA_OK;
    for (yaml_node_pair_t *pr = yn->data.mapping.pairs.start; pr < yn->data.mapping.pairs.top && !st; pr++) {
        yaml_node_t *kn = yaml_document_get_node(c->doc, pr->key);
        if (kn->type != YAML_SCALAR_NODE) continue; /* convert() reports it */
        const char *k = (const char *)kn->data.scalar.value;
        size_t h = (size_t)tema_hash64(k, strlen(k)) & (cap - 1);
        while (slot[h] && strcmp((const char *)slot[h]->data.scalar.value, k)) h = (h + 1) & (cap - 1);
        if (!slot[h]) {
            slot[h] = kn;
            continue;
        }
        char kwhere[512];
        if (c->positions)
            snprintf(kwhere, sizeof kwhere, "%s:%d:%d", c->label, (int)kn->start_mark.line + 1,
                     (int)kn->start_mark.column + 1);
        else
            snprintf(kwhere, sizeof kwhere, "%s", c->label);
        st = tema_fail(c->err, TEMA_EFORMAT, "%s: duplicate key '%s' (first given at line %d); keep one of them", kwhere,
                       k, c->positions ? (int)slot[h]->start_mark.line + 1 : 0);
    }
    free(slot);
    return st;
}

static tema_status convert(parse_ctx *c, yaml_node_t *yn, const char *key, int depth, tema_cfg **out)
{
    int line = c->positions ? (int)yn->start_mark.line + 1 : 0;
    int col = c->positions ? (int)yn->start_mark.column + 1 : 0;
    char where[512];
    if (line) snprintf(where, sizeof where, "%s:%d:%d", c->label, line, col);
    else snprintf(where, sizeof where, "%s", c->label);
    if (depth > MAX_DEPTH)
        return tema_fail(c->err, TEMA_EFORMAT, "%s: nested more than %d levels deep (a recursive alias?); flatten it",
                         where, MAX_DEPTH);
    if (++c->n_nodes > MAX_NODES)
        return tema_fail(c->err, TEMA_EFORMAT, "%s: more than %d values (alias expansion?); write the values out",
                         where, MAX_NODES);
    tema_cfg *n = NULL;
    if (yn->type == YAML_SCALAR_NODE) {
        const char *v = (const char *)yn->data.scalar.value;
        bool quoted = yn->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        if (!quoted && is_plain_null(v)) {
            n = tema_cfg_new(TEMA_CFG_NULL, key, c->label, line, col);
        } else {
            n = tema_cfg_new(TEMA_CFG_SCALAR, key, c->label, line, col);
            if (n && !tema_cfgi_set_text(n, v, quoted)) {
                tema_cfg_free(n);
                n = NULL;
            }
        }
        if (!n) return tema_fail(c->err, TEMA_ENOMEM, "out of memory reading %s", c->label);
    } else if (yn->type == YAML_SEQUENCE_NODE) {
        if (!(n = tema_cfg_new(TEMA_CFG_LIST, key, c->label, line, col)))
            return tema_fail(c->err, TEMA_ENOMEM, "out of memory reading %s", c->label);
        for (yaml_node_item_t *it = yn->data.sequence.items.start; it < yn->data.sequence.items.top; it++) {
            tema_cfg *child = NULL;
            tema_status st = convert(c, yaml_document_get_node(c->doc, *it), NULL, depth + 1, &child);
            if (st != TEMA_OK) return (tema_cfg_free(n), st);
            if (!tema_cfg_append(n, child))
                return (tema_cfg_free(n), tema_fail(c->err, TEMA_ENOMEM, "out of memory reading %s", c->label));
        }
    } else {
        if (!(n = tema_cfg_new(TEMA_CFG_MAP, key, c->label, line, col)))
            return tema_fail(c->err, TEMA_ENOMEM, "out of memory reading %s", c->label);
        tema_status dup = duplicate_keys(c, yn);
        if (dup != TEMA_OK) return (tema_cfg_free(n), dup);
        for (yaml_node_pair_t *pr = yn->data.mapping.pairs.start; pr < yn->data.mapping.pairs.top; pr++) {
            yaml_node_t *kn = yaml_document_get_node(c->doc, pr->key);
            int kl = c->positions ? (int)kn->start_mark.line + 1 : 0;
            int kc = c->positions ? (int)kn->start_mark.column + 1 : 0;
            char kwhere[512];
            if (kl) snprintf(kwhere, sizeof kwhere, "%s:%d:%d", c->label, kl, kc);
            else snprintf(kwhere, sizeof kwhere, "%s", c->label);
            if (kn->type != YAML_SCALAR_NODE) {
                tema_cfg_free(n);
                return tema_fail(c->err, TEMA_EFORMAT, "%s: a key must be a plain name, not a list or map", kwhere);
            }
            const char *k = (const char *)kn->data.scalar.value;
            tema_cfg *child = NULL;
            tema_status st = convert(c, yaml_document_get_node(c->doc, pr->value), k, depth + 1, &child);
            if (st != TEMA_OK) return (tema_cfg_free(n), st);
            set_key_pos(child, kl, kc);
            if (!tema_cfg_append(n, child))
                return (tema_cfg_free(n), tema_fail(c->err, TEMA_ENOMEM, "out of memory reading %s", c->label));
        }
    }
    *out = n;
    return TEMA_OK;
}

static tema_status yaml_error(const yaml_parser_t *p, const char *label, bool positions, tema_err *err)
{
    if (p->error == YAML_MEMORY_ERROR) return tema_fail(err, TEMA_ENOMEM, "out of memory reading %s", label);
    char ctx[256] = "";
    if (p->context)
        snprintf(ctx, sizeof ctx, " (%s at line %d)", p->context, (int)p->context_mark.line + 1);
    if (!positions)
        return tema_fail(err, TEMA_EFORMAT, "%s: invalid YAML value: %s; quote the value or fix its brackets", label,
                         p->problem ? p->problem : "syntax error");
    return tema_fail(err, TEMA_EFORMAT, "%s:%d:%d: YAML syntax error: %s%s; check indentation, quotes and brackets",
                     label, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1,
                     p->problem ? p->problem : "syntax error", ctx);
}

tema_status tema_cfgi_parse(const char *text, size_t len, const char *label, bool with_positions, tema_cfg **out,
                            tema_err *err)
{
    *out = NULL;
    label = tema_cfgi_intern(label ? label : "<string>");
    yaml_parser_t p;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&p)) return tema_fail(err, TEMA_ENOMEM, "out of memory reading %s", label);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &doc)) {
        tema_status st = yaml_error(&p, label, with_positions, err);
        yaml_parser_delete(&p);
        return st;
    }
    tema_status st = TEMA_OK;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    parse_ctx c = {.doc = &doc, .label = label, .positions = with_positions, .err = err};
    tema_cfg *tree = NULL;
    if (root) st = convert(&c, root, NULL, 0, &tree);
    else if (!(tree = tema_cfg_new(TEMA_CFG_NULL, NULL, label, with_positions, with_positions)))
        st = tema_fail(err, TEMA_ENOMEM, "out of memory reading %s", label);
    yaml_document_delete(&doc);
    if (st == TEMA_OK && root) {
        /* A second document is almost always a stray '---'; say so instead of ignoring it. */
        yaml_document_t more;
        if (!yaml_parser_load(&p, &more)) {
            st = yaml_error(&p, label, with_positions, err);
        } else {
            yaml_node_t *r2 = yaml_document_get_root_node(&more);
            if (r2) {
                if (with_positions)
                    st = tema_fail(err, TEMA_EFORMAT, "%s:%d:%d: a second YAML document; keep one document per file",
                                   label, (int)r2->start_mark.line + 1, (int)r2->start_mark.column + 1);
                else st = tema_fail(err, TEMA_EFORMAT, "%s: more than one YAML document in the value", label);
            }
            yaml_document_delete(&more);
        }
    }
    yaml_parser_delete(&p);
    if (st != TEMA_OK) {
        tema_cfg_free(tree);
        return st;
    }
    *out = tree;
    return TEMA_OK;
}

tema_status tema_cfg_parse_string(const char *text, const char *label, tema_cfg **out, tema_err *err)
{
    return tema_cfgi_parse(text ? text : "", text ? strlen(text) : 0, label, true, out, err);
}

tema_status tema_cfg_load(const char *path, tema_cfg **out, tema_err *err)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    tema_err rerr = {0};
    if (tema_read_file(path, &text, &len, &rerr) != TEMA_OK)
        return tema_fail(err, rerr.code == TEMA_OK ? TEMA_EIO : rerr.code, "%s: cannot read the experiment (%s)", path,
                         rerr.msg);
    tema_status st = tema_cfgi_parse(text, len, path, true, out, err);
    free(text);
    return st;
}

/* ---- merging and overrides ---- */

void tema_cfg_merge(tema_cfg *dst, tema_cfg *src)
{
    /* The merged map is reported where the file wrote it. */
    dst->file = src->file;
    dst->line = src->line;
    dst->col = src->col;
    int kl, kc;
    tema_cfgi_key_pos(src, &kl, &kc);
    set_key_pos(dst, kl, kc);
    while (src->n_items) {
        tema_cfg *s = tema_cfg_take(src, 0);
        size_t i;
        tema_cfg *d = s->key ? tema_cfg_child(dst, s->key, &i) : NULL;
        if (d && d->type == TEMA_CFG_MAP && s->type == TEMA_CFG_MAP) {
            tema_cfg_merge(d, s);
        } else if (d && d->type == TEMA_CFG_MAP && s->type == TEMA_CFG_NULL) {
            /* `train:` with everything commented out keeps the defaults */
            tema_cfg_free(s);
        } else if (d) {
            tema_cfg_replace(dst, i, s);
        } else {
            tema_cfg_append(dst, s);
        }
    }
    tema_cfg_free(src);
}

tema_status tema_cfgi_set(tema_cfg *root, const char *assignment, const char *label, tema_err *err)
{
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return tema_fail(err, TEMA_EINVAL, "%s: expected key.path=value, e.g. --set train.lr=1e-4", label);
    char *path = strndup(assignment, (size_t)(eq - assignment));
    if (!path) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    tema_cfg *value = NULL;
    tema_status st = tema_cfgi_parse(eq + 1, strlen(eq + 1), label, false, &value, err);
    if (st != TEMA_OK) {
        free(path);
        return st;
    }
    tema_cfg *n = root;
    char *save = NULL;
    char *seg = strtok_r(path, ".", &save);
    if (!seg) st = tema_fail(err, TEMA_EINVAL, "%s: empty key path; expected key.path=value", label);
    while (seg && st == TEMA_OK) {
        char *next = strtok_r(NULL, ".", &save);
        int plen = seg > path ? (int)(seg - path - 1) : 0; /* the part of the path walked so far */
        if (n->type == TEMA_CFG_NULL) tema_cfg_retype(n, TEMA_CFG_MAP);
        if (n->type == TEMA_CFG_MAP) {
            size_t i;
            tema_cfg *child = tema_cfg_child(n, seg, &i);
            if (!next) {
                free(value->key);
                if (!(value->key = strdup(seg))) {
                    st = tema_fail(err, TEMA_ENOMEM, "out of memory");
                } else if (child) {
                    tema_cfg_replace(n, i, value);
                    value = NULL;
                } else {
                    if (!tema_cfg_append(n, value)) st = tema_fail(err, TEMA_ENOMEM, "out of memory");
                    value = NULL;
                }
                break;
            }
            if (!child) {
                child = tema_cfg_new(TEMA_CFG_MAP, seg, label, 0, 0);
                if (!child || !tema_cfg_append(n, child)) {
                    st = tema_fail(err, TEMA_ENOMEM, "out of memory");
                    break;
                }
            }
            n = child;
        } else if (n->type == TEMA_CFG_LIST) {
            char *end;
            errno = 0;
            unsigned long idx = strtoul(seg, &end, 10);
            bool append_ok = !next; /* one past the end appends a new last element */
            if (!*seg || *end || errno || seg[0] == '-' || idx > n->n_items || (idx == n->n_items && !append_ok)) {
                st = tema_fail(err, TEMA_EINVAL, "%s: '%.*s' is a list of %zu element%s; '%s' is not an index (use 0..%zu%s)",
                               label, plen, assignment, n->n_items, n->n_items == 1 ? "" : "s", seg,
                               n->n_items ? n->n_items - 1 : 0, append_ok ? ", or one past the end to append" : "");
                break;
            }
            if (!next) {
                free(value->key);
                value->key = NULL;
                if (idx == n->n_items) {
                    if (!tema_cfg_append(n, value)) st = tema_fail(err, TEMA_ENOMEM, "out of memory");
                } else {
                    tema_cfg_replace(n, idx, value);
                }
                value = NULL;
                break;
            }
            n = n->items[idx];
        } else {
            st = tema_fail(err, TEMA_EINVAL, "%s: '%.*s' is a single value with nothing named '%s' inside; set '%.*s' itself",
                           label, plen, assignment, seg, plen, assignment);
        }
        seg = next;
    }
    tema_cfg_free(value);
    free(path);
    return st;
}

tema_status tema_cfg_set(tema_cfg *root, const char *assignment, tema_err *err)
{
    char label[1200];
    snprintf(label, sizeof label, "<command line>:--set %s", assignment);
    return tema_cfgi_set(root, assignment, label, err);
}

/* ---- the pipeline ---- */

bool tema_cfg_load_experiment(const char *path, tema_cfg_diag *d, tema_cfg **file)
{
    tema_err e = {0};
    *file = NULL;
    if (tema_cfg_load(path, file, &e) != TEMA_OK) {
        tema_cfg_report_located(d, e.code, e.msg);
        return false;
    }
    if ((*file)->type == TEMA_CFG_NULL) tema_cfg_retype(*file, TEMA_CFG_MAP);
    if ((*file)->type != TEMA_CFG_MAP) {
        char where[1400];
        tema_cfg_where(*file, false, where, sizeof where);
        tema_cfg_report(d, TEMA_EFORMAT, where,
                        "an experiment is a YAML mapping (key: value lines), not a %s; start with 'name: ...'",
                        (*file)->type == TEMA_CFG_LIST ? "list" : "single value");
        tema_cfg_free(*file);
        *file = NULL;
        return false;
    }
    return true;
}

tema_status tema_cfg_resolve(const char *path, const char *const *overrides, int n_overrides, tema_registry *reg,
                             FILE *diag, tema_cfg **resolved, tema_err *err)
{
    *resolved = NULL;
    tema_err local = {0};
    if (!err) err = &local;
    tema_cfg_diag d = {.out = diag, .err = err};
    tema_cfg *file = NULL, *root = NULL;
    tema_err e = {0};
    if (!tema_cfg_load_experiment(path, &d, &file)) return tema_cfg_diag_flush(&d);
    if (tema_cfg_defaults(&root, &e) != TEMA_OK) {
        tema_cfg_free(file);
        tema_cfg_report(&d, e.code, TEMA_CFG_DEFAULTS_LABEL, "%s", e.msg);
        return tema_cfg_diag_flush(&d);
    }
    tema_cfg_merge(root, file);
    for (int i = 0; i < n_overrides; i++) {
        char label[1200];
        snprintf(label, sizeof label, "<command line>:--set %s", overrides[i]);
        if (tema_cfgi_set(root, overrides[i], label, &e) != TEMA_OK)
            tema_cfg_report_located(&d, e.code, e.msg); /* the message starts with the location */
    }
    tema_cfg_validate(root, reg, &d);
    tema_status st = tema_cfg_diag_flush(&d);
    if (st != TEMA_OK) {
        tema_cfg_free(root);
        return st;
    }
    *resolved = root;
    return TEMA_OK;
}

/* ---- output ---- */

static void json_string(tema_sb *b, const char *s)
{
    tema_sb_add(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"') tema_sb_add(b, "\\\"");
        else if (*p == '\\') tema_sb_add(b, "\\\\");
        else if (*p == '\n') tema_sb_add(b, "\\n");
        else if (*p == '\t') tema_sb_add(b, "\\t");
        else if (*p == '\r') tema_sb_add(b, "\\r");
        else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            tema_sb_add(b, esc);
        } else tema_sb_addn(b, (const char *)p, 1);
    }
    tema_sb_add(b, "\"");
}

static int key_cmp(const void *a, const void *b)
{
    const tema_cfg *x = *(const tema_cfg *const *)a, *y = *(const tema_cfg *const *)b;
    return strcmp(x->key ? x->key : "", y->key ? y->key : "");
}

static void json_node(tema_sb *b, const tema_cfg *c)
{
    char num[64];
    switch (c->type) {
    case TEMA_CFG_NULL: tema_sb_add(b, "null"); break;
    case TEMA_CFG_SCALAR:
        if (c->quoted) json_string(b, c->value);
        else if (!strcmp(c->value, "true") || !strcmp(c->value, "false")) tema_sb_add(b, c->value);
        else if (tema_cfgi_number_canon(c->value, num, sizeof num)) tema_sb_add(b, num);
        else json_string(b, c->value);
        break;
    case TEMA_CFG_LIST:
        tema_sb_add(b, "[");
        for (size_t i = 0; i < c->n_items; i++) {
            if (i) tema_sb_add(b, ",");
            json_node(b, c->items[i]);
        }
        tema_sb_add(b, "]");
        break;
    case TEMA_CFG_MAP: {
        /* sorted keys: the same settings in any order hash the same */
        const tema_cfg **sorted = malloc((c->n_items ? c->n_items : 1) * sizeof *sorted);
        if (!sorted) {
            b->oom = true;
            return;
        }
        if (c->n_items) {
            memcpy(sorted, c->items, c->n_items * sizeof *sorted);
            qsort(sorted, c->n_items, sizeof *sorted, key_cmp);
        }
        tema_sb_add(b, "{");
        for (size_t i = 0; i < c->n_items; i++) {
            if (i) tema_sb_add(b, ",");
            json_string(b, sorted[i]->key ? sorted[i]->key : "");
            tema_sb_add(b, ":");
            json_node(b, sorted[i]);
        }
        tema_sb_add(b, "}");
        free(sorted);
        break;
    }
    }
}

char *tema_cfg_to_json(const tema_cfg *c)
{
    tema_sb b = {0};
    if (c) json_node(&b, c);
    else tema_sb_add(&b, "null");
    return tema_sb_take(&b);
}

static int yaml_out(void *data, unsigned char *s, size_t size)
{
    tema_sb *b = data;
    tema_sb_addn(b, (const char *)s, size);
    return !b->oom;
}

/* Would this text, written plainly, read back as something other than a string? */
static bool plain_is_not_string(const char *v)
{
    static const char *const words[] = {"true", "false", "True", "False", "TRUE", "FALSE", "yes", "no", "Yes",
                                        "No", "YES", "NO", "on", "off", "On", "Off", "ON", "OFF", "y", "n"};
    if (is_plain_null(v) || tema_cfg_is_number(v)) return true;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (!strcmp(v, words[i])) return true;
    return v[0] == '.' || v[0] == '0'; /* .inf, .nan, 0x10, 0o7 */
}

static bool emit_scalar(yaml_emitter_t *e, const char *v, bool quoted)
{
    yaml_event_t ev;
    bool force = quoted && plain_is_not_string(v);
    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)v, (int)strlen(v), !force, 1,
                                 force ? YAML_SINGLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE);
    return yaml_emitter_emit(e, &ev);
}

static bool emit_node(yaml_emitter_t *e, const tema_cfg *c)
{
    yaml_event_t ev;
    switch (c->type) {
    case TEMA_CFG_NULL: return emit_scalar(e, "~", false);
    case TEMA_CFG_SCALAR: return emit_scalar(e, c->value, c->quoted);
    case TEMA_CFG_LIST: {
        bool flat = true;
        for (size_t i = 0; i < c->n_items; i++) flat &= c->items[i]->type != TEMA_CFG_MAP && c->items[i]->type != TEMA_CFG_LIST;
        yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, flat ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
        if (!yaml_emitter_emit(e, &ev)) return false;
        for (size_t i = 0; i < c->n_items; i++)
            if (!emit_node(e, c->items[i])) return false;
        yaml_sequence_end_event_initialize(&ev);
        return yaml_emitter_emit(e, &ev);
    }
    case TEMA_CFG_MAP:
        yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                            c->n_items ? YAML_BLOCK_MAPPING_STYLE : YAML_FLOW_MAPPING_STYLE);
        if (!yaml_emitter_emit(e, &ev)) return false;
        for (size_t i = 0; i < c->n_items; i++)
            if (!emit_scalar(e, c->items[i]->key ? c->items[i]->key : "", true) || !emit_node(e, c->items[i]))
                return false;
        yaml_mapping_end_event_initialize(&ev);
        return yaml_emitter_emit(e, &ev);
    }
    return false;
}

char *tema_cfg_to_yaml(const tema_cfg *c)
{
    if (!c) return strdup("");
    tema_sb b = {0};
    yaml_emitter_t e;
    yaml_event_t ev;
    if (!yaml_emitter_initialize(&e)) return NULL;
    yaml_emitter_set_output(&e, yaml_out, &b);
    yaml_emitter_set_unicode(&e, 1);
    yaml_emitter_set_indent(&e, 2);
    yaml_emitter_set_width(&e, 100);
    bool ok = true;
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    ok = ok && yaml_emitter_emit(&e, &ev);
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    ok = ok && yaml_emitter_emit(&e, &ev);
    ok = ok && emit_node(&e, c);
    if (ok) {
        yaml_document_end_event_initialize(&ev, 1);
        ok = yaml_emitter_emit(&e, &ev);
    }
    if (ok) {
        yaml_stream_end_event_initialize(&ev);
        ok = yaml_emitter_emit(&e, &ev);
    }
    ok = ok && yaml_emitter_flush(&e);
    yaml_emitter_delete(&e);
    if (!ok) {
        free(b.p);
        return NULL;
    }
    return tema_sb_take(&b);
}
