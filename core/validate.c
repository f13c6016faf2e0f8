/* core/validate.c - the core schema (one table, below), built-in defaults, and validation
 * of a merged configuration tree: unknown keys with the nearest valid one, types, ranges,
 * plugins and their declared options. Every problem is reported with its location; values
 * are normalised in place (numbers canonical, booleans true/false, paths absolute) so that
 * equal settings give byte-equal canonical JSON. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_internal.h"
#include "util.h"

typedef enum vtype {
    V_MAP,         /* a fixed set of keys: the schema rows below it */
    V_OPEN,        /* any mapping, taken as written (later issues define it) */
    V_STRING,
    V_PATH,        /* a string; relative paths resolved against the current directory */
    V_DATASET,     /* V_PATH that must exist, or the word `synthetic` */
    V_INT,
    V_FLOAT,
    V_BOOL,
    V_ENUM,        /* one of `choices` */
    V_STRING_LIST, /* elements from `choices` when given */
    V_FLOAT_LIST,
    V_METRICS,     /* mrr, ndcg@K, hr@K */
    V_PLUGIN,      /* {plugin: NAME, ...that plugin's options}; `choices` names the kind */
    V_PLUGIN_LIST, /* a non-empty list of those */
    V_PLUGIN_MAP,  /* NAME: {plugin: ...} per name ([a-z0-9_-]+); `choices` names the kind */
} vtype;

typedef struct schema_key {
    const char *path;
    vtype type;
    const char *def;     /* YAML text of the default; NULL: none */
    bool required;
    bool ranged;         /* check lo..hi (INT, FLOAT, FLOAT_LIST elements) */
    double lo, hi;       /* inclusive bounds; +-INFINITY for one-sided */
    bool lo_open;        /* lo itself is not allowed (lr > 0) */
    const char *choices; /* ENUM / STRING_LIST: "a|b"; PLUGIN(_LIST): the kind */
    const char *alias;   /* a name people often write instead, for "did you mean" */
    bool later;          /* added after run-id scheme 2: in a run's identity only when not def
                          * (a scalar), so adding the key moved no stored run (core/run_id.c) */
} schema_key;

#define K(path_, type_, def_) .path = (path_), .type = (type_), .def = (def_)
#define RANGE(a, b) .ranged = true, .lo = (a), .hi = (b)
#define AT_LEAST(a) .ranged = true, .lo = (a), .hi = INFINITY
#define DEFAULT_METRICS "[mrr, ndcg@5, ndcg@10, hr@1, hr@5, hr@10]"

/* The core schema, in the order --print and the canonical tree use. Parents come before
 * their children. */
static const schema_key schema[] = {
    {K("name", V_STRING, NULL), .required = true},
    {K("description", V_STRING, NULL)},
    /* where this experiment's runs live when no --results is given (not part of a run id) */
    {K("results_dir", V_STRING, NULL)},
    {K("dataset", V_MAP, NULL), .alias = "data"},
    {K("dataset.path", V_DATASET, NULL), .required = true},
    {K("dataset.max_len", V_INT, "15"), RANGE(1, 512), .alias = "maxlen"},
    {K("dataset.train_file", V_STRING, "traindata_new.txt")},
    {K("dataset.valid_file", V_STRING, "validdata_new.txt")},
    {K("dataset.test_file", V_STRING, "testdata_new.txt")},
    {K("backend", V_PLUGIN, "{plugin: cpu}"), .choices = "backend"},
    {K("model", V_MAP, NULL)},
    {K("model.encoders", V_PLUGIN_LIST, "[{plugin: id}]"), .choices = "encoder", .alias = "encoder"},
    {K("model.attention", V_PLUGIN, "{plugin: single}"), .choices = "attention"},
    /* tags (core/tags.c): no tagger = no tags; domains derived from the dataset when absent */
    {K("dataset.domains", V_STRING_LIST, NULL)},
    {K("model.tagger", V_PLUGIN, NULL), .choices = "tagger"},
    /* per domain (a name of dataset.domains): another tagger than model.tagger for that domain */
    {K("model.domain_taggers", V_PLUGIN_MAP, NULL), .choices = "tagger"},
    {K("model.tag_select", V_PLUGIN, NULL), .choices = "tag_select"},
    {K("model.tag_repr", V_PLUGIN, NULL), .choices = "tag_repr"},
    {K("loss", V_PLUGIN, "{plugin: full_softmax}"), .choices = "loss"},
    {K("train", V_MAP, NULL), .alias = "training"},
    {K("train.epochs", V_INT, "100"), RANGE(1, 100000), .alias = "num_epochs"},
    {K("train.max_steps", V_INT, "0"), AT_LEAST(0)},           /* 0 = no limit */
    {K("train.batch_size", V_INT, "256"), RANGE(1, 65536)},
    {K("train.lr", V_FLOAT, "1e-3"), AT_LEAST(0), .lo_open = true, .alias = "learning_rate"},
    {K("train.weight_decay", V_FLOAT, "0"), AT_LEAST(0)},
    {K("train.patience", V_INT, "10"), AT_LEAST(0)},
    {K("train.eval_every", V_INT, "5"), AT_LEAST(1)},
    {K("train.seed", V_INT, "2040"), AT_LEAST(0)},
    {K("train.grad_clip", V_FLOAT, "0"), AT_LEAST(0)},          /* 0 = no clipping */
    /* lazy_adam: tables read by rows update only the rows a step read (core/engine.h tema_adam) */
    {K("train.optimizer", V_ENUM, "adam"), .choices = "adam|lazy_adam|adamw", .later = true},
    {K("train.resume", V_BOOL, "true")},
    {K("eval", V_MAP, NULL), .alias = "evaluation"},
    {K("eval.protocol", V_ENUM, "sampled"), .choices = "sampled|full"},
    {K("eval.negatives", V_INT, "999"), RANGE(1, 1e6)},
    {K("eval.metrics", V_METRICS, DEFAULT_METRICS)},
    {K("eval.batch_size", V_INT, "512"), RANGE(1, 65536)},
    {K("eval.splits", V_STRING_LIST, "[valid, test]"), .choices = "valid|test"},
    {K("grid", V_OPEN, NULL)},
    {K("report", V_OPEN, NULL)},
};
#define N_SCHEMA (sizeof schema / sizeof schema[0])

/* ---- small helpers ---- */

static const schema_key *schema_find(const char *path)
{
    for (size_t i = 0; i < N_SCHEMA; i++)
        if (!strcmp(schema[i].path, path)) return &schema[i];
    return NULL;
}

/* Is `path` a direct child of `prefix` ("" = top level)? */
static bool schema_is_child(const char *prefix, const char *path)
{
    size_t n = strlen(prefix);
    if (n == 0) return !strchr(path, '.');
    return !strncmp(path, prefix, n) && path[n] == '.' && !strchr(path + n + 1, '.');
}

static const char *last_seg(const char *path)
{
    const char *d = strrchr(path, '.');
    return d ? d + 1 : path;
}

static void join(char *out, size_t size, const char *prefix, const char *key)
{
    if (*prefix) snprintf(out, size, "%s.%s", prefix, key);
    else snprintf(out, size, "%s", key);
}

static void where_of(const tema_cfg *n, bool at_key, char *buf, size_t size) { tema_cfg_where(n, at_key, buf, size); }

/* "got 'big'", "got a list", ... */
static const char *got(const tema_cfg *n, char *buf, size_t size)
{
    switch (n->type) {
    case TEMA_CFG_NULL: return "got nothing (the value is empty)";
    case TEMA_CFG_MAP: return "got a map";
    case TEMA_CFG_LIST: return "got a list";
    case TEMA_CFG_SCALAR: break;
    }
    snprintf(buf, size, "got '%.200s'", n->value);
    return buf;
}

/* Optimal string alignment distance (typos: one edit or one swap each), case-insensitive. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 64 || m > 64) return 64;
    size_t d[65][65];
    for (size_t i = 0; i <= n; i++) d[i][0] = i;
    for (size_t j = 0; j <= m; j++) d[0][j] = j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            size_t v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v) v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == tolower((unsigned char)b[j - 1]) && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

/* "learning_rate" -> "lr": people spell out what a short key abbreviates. */
static bool initials_match(const char *word, const char *cand)
{
    char ini[32];
    size_t k = 0;
    bool start = true;
    for (const char *p = word; *p && k + 1 < sizeof ini; p++) {
        if (*p == '_' || *p == '-' || *p == '.') start = true;
        else if (start) {
            ini[k++] = (char)tolower((unsigned char)*p);
            start = false;
        }
    }
    ini[k] = '\0';
    return k >= 2 && strchr(word, '_') && !strcmp(ini, cand);
}

typedef struct suggester {
    const char *word;
    const char *best;
    size_t best_d;
} suggester;

static void suggest_add(suggester *s, const char *cand, const char *alias)
{
    size_t d = edit_distance(s->word, cand);
    if (alias) {
        size_t da = edit_distance(s->word, alias);
        if (da < d) d = da;
    }
    if (initials_match(s->word, cand) && d > 1) d = 1;
    size_t len = strlen(s->word);
    bool close = d <= 1 || (d <= 2 && len >= 5) || d * 3 <= len;
    if (close && (!s->best || d < s->best_d)) {
        s->best = cand;
        s->best_d = d;
    }
}

/* ---- value checks shared by the core schema and plugin options ---- */

typedef struct vspec {
    vtype type;
    bool ranged, lo_open;
    double lo, hi;
    const char *choices;
} vspec;

static bool in_choices(const char *v, const char *choices)
{
    size_t n = strlen(v);
    for (const char *p = choices; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, v, n)) return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

static const char *choice_suggestion(const char *v, const char *choices, char *buf, size_t size)
{
    suggester s = {.word = v};
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s", choices);
    char *save = NULL;
    for (char *c = strtok_r(tmp, "|", &save); c; c = strtok_r(NULL, "|", &save)) suggest_add(&s, c, NULL);
    if (!s.best) return ""; /* s.best points into tmp: use it before returning */
    snprintf(buf, size, "; did you mean '%s'?", s.best);
    return buf;
}

static void fmt_range(char *buf, size_t size, const vspec *s)
{
    if (isinf(s->hi)) snprintf(buf, size, "must be %s %.15g", s->lo_open ? ">" : ">=", s->lo);
    else snprintf(buf, size, "must be in [%.15g, %.15g]", s->lo, s->hi);
}

static bool check_number(tema_cfg *n, const vspec *s, bool integer, const char *path, tema_cfg_diag *d)
{
    char where[1400], g[256], canon[64];
    where_of(n, false, where, sizeof where);
    if (n->type != TEMA_CFG_SCALAR || !tema_cfgi_number_canon(n->value, canon, sizeof canon)) {
        tema_cfg_report(d, TEMA_EINVAL, where, "%s: expected %s, %s", path, integer ? "an integer" : "a number",
                        got(n, g, sizeof g));
        return false;
    }
    double v = strtod(canon, NULL);
    if (integer) {
        if (v != floor(v) || fabs(v) >= 9.2e18) {
            tema_cfg_report(d, TEMA_EINVAL, where, "%s: expected an integer, %s", path, got(n, g, sizeof g));
            return false;
        }
        if (strpbrk(canon, ".eE")) snprintf(canon, sizeof canon, "%lld", (long long)v); /* 1e3 -> 1000 */
    }
    if (s->ranged && (v < s->lo || v > s->hi || (s->lo_open && v == s->lo))) {
        char r[128];
        fmt_range(r, sizeof r, s);
        tema_cfg_report(d, TEMA_EINVAL, where, "%s: %s is out of range (%s)", path, n->value, r);
        return false;
    }
    if (!tema_cfgi_set_text(n, canon, false)) {
        tema_cfg_report(d, TEMA_ENOMEM, where, "%s: out of memory", path);
        return false;
    }
    return true;
}

/* Lexical clean-up of an absolute path: "a/./b/../c" -> "a/c" (no symlinks followed). */
static void clean_path(char *p)
{
    char *out = p;
    const char *in = p;
    while (*in) {
        while (*in == '/') in++;
        const char *end = strchr(in, '/');
        size_t len = end ? (size_t)(end - in) : strlen(in);
        if (len == 0) break;
        if (len == 1 && in[0] == '.') {
            /* skip */
        } else if (len == 2 && in[0] == '.' && in[1] == '.') {
            while (out > p && *--out != '/') {}
        } else {
            *out++ = '/';
            memmove(out, in, len);
            out += len;
        }
        in += len;
    }
    if (out == p) *out++ = '/';
    *out = '\0';
}

static bool resolve_path(tema_cfg *n, const char *path, tema_cfg_diag *d)
{
    char where[1400];
    where_of(n, false, where, sizeof where);
    if (!n->value[0]) return true; /* empty = not set; the user of the option decides */
    char *abs = tema_abspath(n->value);
    if (!abs) {
        tema_cfg_report(d, TEMA_ENOMEM, where, "%s: out of memory", path);
        return false;
    }
    clean_path(abs);
    bool ok = tema_cfgi_set_text(n, abs, true);
    free(abs);
    if (!ok) tema_cfg_report(d, TEMA_ENOMEM, where, "%s: out of memory", path);
    return ok;
}

static bool check_metric(const char *m)
{
    if (!strcmp(m, "mrr")) return true;
    const char *k = !strncmp(m, "ndcg@", 5) ? m + 5 : !strncmp(m, "hr@", 3) ? m + 3 : NULL;
    if (!k || !*k || *k == '0' || strlen(k) > 7) return false;
    for (; *k; k++)
        if (!isdigit((unsigned char)*k)) return false;
    return true;
}

/* V_BOOL: the YAML 1.1 spellings of true and false, rewritten as true or false. */
static bool check_bool(tema_cfg *n, const char *path, const char *where, tema_cfg_diag *d)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
    char g[256];
    int v = -1;
    for (size_t i = 0; n->type == TEMA_CFG_SCALAR && i < sizeof yes / sizeof yes[0]; i++) {
        if (!strcmp(n->value, yes[i])) v = 1;
        if (!strcmp(n->value, no[i])) v = 0;
    }
    if (v < 0) {
        tema_cfg_report(d, TEMA_EINVAL, where, "%s: expected true or false, %s", path, got(n, g, sizeof g));
        return false;
    }
    return tema_cfgi_set_text(n, v ? "true" : "false", false);
}

/* V_DATASET once a string: 'synthetic', or a folder or archive that exists (made absolute). */
static bool check_dataset(tema_cfg *n, const char *path, const char *where, tema_cfg_diag *d)
{
    if (!strcmp(n->value, "synthetic")) return true;
    if (!n->value[0]) {
        tema_cfg_report(d, TEMA_EINVAL, where, "%s: empty; give a dataset folder, a .tar.gz bundle or 'synthetic'",
                        path);
        return false;
    }
    if (!resolve_path(n, path, d)) return false;
    struct stat st;
    if (stat(n->value, &st) != 0) {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");
        tema_cfg_report(d, TEMA_ENOTFOUND, where,
                        "%s: '%s' does not exist; give a dataset folder, a .tar.gz bundle or 'synthetic' "
                        "(relative paths are read from the current directory, %s)",
                        path, n->value, cwd);
        return false;
    }
    return true;
}

/* V_STRING, V_PATH, V_DATASET and V_ENUM: a scalar, read as a string. */
static bool check_string(tema_cfg *n, const vspec *s, const char *path, const char *where, tema_cfg_diag *d)
{
    char g[256], hint[128];
    /* `cache_dir:` or a default of "" is an empty string, not a missing value */
    if (n->type == TEMA_CFG_NULL && (s->type == V_STRING || s->type == V_PATH)) {
        n->type = TEMA_CFG_SCALAR;
        if (!tema_cfgi_set_text(n, "", true)) return false;
    }
    if (n->type != TEMA_CFG_SCALAR) {
        if (s->type == V_ENUM)
            tema_cfg_report(d, TEMA_EINVAL, where, "%s: expected one of %s, %s", path, s->choices, got(n, g, sizeof g));
        else tema_cfg_report(d, TEMA_EINVAL, where, "%s: expected a string, %s", path, got(n, g, sizeof g));
        return false;
    }
    n->quoted = true; /* `name: 123` is the string "123" */
    if (s->type == V_ENUM && !in_choices(n->value, s->choices)) {
        tema_cfg_report(d, TEMA_EINVAL, where, "%s: expected one of %s, got '%s'%s", path, s->choices, n->value,
                        choice_suggestion(n->value, s->choices, hint, sizeof hint));
        return false;
    }
    if (s->type == V_DATASET) return check_dataset(n, path, where, d);
    return s->type == V_PATH ? resolve_path(n, path, d) : true;
}

static bool check_value(tema_cfg *n, const vspec *s, const char *path, tema_cfg_diag *d);

/* V_STRING_LIST, V_FLOAT_LIST and V_METRICS: a list, every entry checked (all reported). */
static bool check_list(tema_cfg *n, const vspec *s, const char *path, const char *where, tema_cfg_diag *d)
{
    char g[256], hint[128];
    const char *what = s->type == V_FLOAT_LIST ? "a list of numbers" : "a list of strings";
    if (n->type != TEMA_CFG_LIST) {
        tema_cfg_report(d, TEMA_EINVAL, where, "%s: expected %s like [a, b], %s", path, what, got(n, g, sizeof g));
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < n->n_items; i++) {
        tema_cfg *e = n->items[i];
        char ep[600];
        snprintf(ep, sizeof ep, "%s.%zu", path, i);
        if (s->type == V_FLOAT_LIST) {
            vspec es = *s;
            es.type = V_FLOAT;
            ok &= check_value(e, &es, ep, d);
            continue;
        }
        char ew[1400];
        where_of(e, false, ew, sizeof ew);
        if (e->type != TEMA_CFG_SCALAR) {
            tema_cfg_report(d, TEMA_EINVAL, ew, "%s: expected a string, %s", ep, got(e, g, sizeof g));
            ok = false;
            continue;
        }
        e->quoted = true;
        if (s->type == V_METRICS && !check_metric(e->value)) {
            tema_cfg_report(d, TEMA_EINVAL, ew,
                            "%s: unknown metric '%s'; expected mrr, ndcg@K or hr@K with K a positive integer "
                            "(e.g. ndcg@10)",
                            ep, e->value);
            ok = false;
        } else if (s->type == V_STRING_LIST && s->choices && !in_choices(e->value, s->choices)) {
            tema_cfg_report(d, TEMA_EINVAL, ew, "%s: expected one of %s, got '%s'%s", ep, s->choices, e->value,
                            choice_suggestion(e->value, s->choices, hint, sizeof hint));
            ok = false;
        }
    }
    return ok;
}

static bool check_value(tema_cfg *n, const vspec *s, const char *path, tema_cfg_diag *d)
{
    char where[1400];
    where_of(n, false, where, sizeof where);
    switch (s->type) {
    case V_INT: return check_number(n, s, true, path, d);
    case V_FLOAT: return check_number(n, s, false, path, d);
    case V_BOOL: return check_bool(n, path, where, d);
    case V_STRING:
    case V_PATH:
    case V_DATASET:
    case V_ENUM: return check_string(n, s, path, where, d);
    case V_STRING_LIST:
    case V_FLOAT_LIST:
    case V_METRICS: return check_list(n, s, path, where, d);
    default: return true;
    }
}

/* ---- plugins ---- */

size_t tema_cfg_plugin_slots(tema_cfg_plugin_slot *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < N_SCHEMA; i++) {
        const schema_key *k = &schema[i];
        tema_slot_shape shape;
        if (k->type == V_PLUGIN) shape = TEMA_SLOT_ONE;
        else if (k->type == V_PLUGIN_LIST) shape = TEMA_SLOT_LIST;
        else if (k->type == V_PLUGIN_MAP) shape = TEMA_SLOT_MAP;
        else continue;
        if (n < cap) out[n] = (tema_cfg_plugin_slot){.path = k->path, .kind = k->choices, .shape = shape};
        n++;
    }
    return n;
}


size_t tema_cfg_later_keys(tema_cfg_later_key *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < N_SCHEMA; i++) {
        if (!schema[i].later) continue;
        if (n < cap) out[n] = (tema_cfg_later_key){.path = schema[i].path, .def = schema[i].def};
        n++;
    }
    return n;
}

bool tema_option_is_path(const char *name)
{
    static const char *const suffixes[] = {"_path", "_file", "_dir"};
    if (!strcmp(name, "path") || !strcmp(name, "file") || !strcmp(name, "dir")) return true;
    size_t n = strlen(name);
    for (size_t i = 0; i < 3; i++) {
        size_t m = strlen(suffixes[i]);
        if (n > m && !strcmp(name + n - m, suffixes[i])) return true;
    }
    return false;
}

static vspec option_spec(const tema_option *o)
{
    vspec s = {.choices = o->choices};
    switch (o->type) {
    case TEMA_OPT_INT: s.type = V_INT; break;
    case TEMA_OPT_FLOAT: s.type = V_FLOAT; break;
    case TEMA_OPT_BOOL: s.type = V_BOOL; break;
    case TEMA_OPT_STRING: s.type = tema_option_is_path(o->name) ? V_PATH : V_STRING; break;
    case TEMA_OPT_ENUM: s.type = V_ENUM; break;
    case TEMA_OPT_FLOAT_LIST: s.type = V_FLOAT_LIST; break;
    case TEMA_OPT_STRING_LIST: s.type = V_STRING_LIST; s.choices = NULL; break;
    case TEMA_OPT_PLUGIN: s.type = V_PLUGIN; break; /* validated by validate_plugin() */
    }
    if ((s.type == V_INT || s.type == V_FLOAT || s.type == V_FLOAT_LIST) && o->min <= o->max) {
        s.ranged = true;
        s.lo = o->min;
        s.hi = o->max;
    }
    return s;
}

/* Put the children of a map in the given key order; keys not listed keep their order at the end. */
static void reorder(tema_cfg *map, const char *const *order, size_t n_order)
{
    size_t pos = 0;
    for (size_t k = 0; k < n_order; k++)
        for (size_t i = pos; i < map->n_items; i++)
            if (map->items[i]->key && !strcmp(map->items[i]->key, order[k])) {
                tema_cfg *c = map->items[i];
                memmove(map->items + pos + 1, map->items + pos, (i - pos) * sizeof *map->items);
                map->items[pos++] = c;
                break;
            }
}

static tema_cfg *parse_default(const char *text, const char *key, tema_cfg_diag *d, const char *owner)
{
    tema_cfg *v = NULL;
    tema_err e = {0};
    if (tema_cfgi_parse(text, strlen(text), TEMA_CFG_DEFAULTS_LABEL, false, &v, &e) != TEMA_OK) {
        tema_cfg_report(d, TEMA_EINTERNAL, TEMA_CFG_DEFAULTS_LABEL, "bad default of %s: %s (a bug in %s)", key, e.msg,
                        owner);
        return NULL;
    }
    free(v->key);
    v->key = strdup(key);
    if (!v->key) {
        tema_cfg_free(v);
        return NULL;
    }
    return v;
}

const tema_cfg *tema_cfg_plugin_node(const tema_cfg *node, const char **name)
{
    *name = NULL;
    if (!node) return NULL;
    if (node->type == TEMA_CFG_SCALAR) {
        *name = node->value;
        return NULL;
    }
    if (node->type == TEMA_CFG_MAP) {
        *name = tema_cfg_str(node, "plugin", NULL);
        return node;
    }
    return NULL;
}

bool tema_cfg_expand_plugin(tema_cfg *n)
{
    if (n->type != TEMA_CFG_SCALAR) return true;
    tema_cfg *p = tema_cfg_new(TEMA_CFG_SCALAR, "plugin", n->file, n->line, n->col);
    if (!p || !tema_cfgi_set_text(p, n->value, n->quoted)) {
        tema_cfg_free(p);
        return false;
    }
    /* appended while still a scalar, so a failure leaves the node as it was */
    if (!tema_cfg_append(n, p)) return false;
    free(n->value);
    n->value = NULL;
    n->type = TEMA_CFG_MAP;
    n->quoted = false;
    return true;
}

/* A required option that the plugin map n lacks. Its help is all a user has to go on (what to
 * give, or how to do without the plugin), so it is said whole. */
static void report_required(const tema_cfg *n, const char *path, const tema_option *o, const char *owner,
                            tema_cfg_diag *d)
{
    char where[1400];
    where_of(n, false, where, sizeof where);
    if (o->help)
        tema_cfg_report(d, TEMA_EINVAL, where, "%s: missing required option '%s' of %s (it has no default); %s: %s",
                         path, o->name, owner, o->name, o->help);
    else
        tema_cfg_report(d, TEMA_EINVAL, where, "%s: missing required option '%s' of %s (it has no default); hint: add "
                         "%s: VALUE", path, o->name, owner, o->name);
}

static void validate_plugin(tema_cfg *n, const char *path, const char *kind_name, tema_registry *reg,
                            tema_cfg_diag *d);

/* The plugin that the map n names, with everything wrong with the map or the name reported;
 * NULL when there is none or no registry to check against (then nothing more is checked). */
static const tema_plugin *named_plugin(tema_cfg *n, const char *path, const char *kind_name, int kind,
                                       tema_registry *reg, tema_cfg_diag *d)
{
    char where[1400], g[256];
    where_of(n, false, where, sizeof where);
    if (!tema_cfg_expand_plugin(n)) {
        tema_cfg_report(d, TEMA_ENOMEM, where, "%s: out of memory", path);
        return NULL;
    }
    tema_cfg_retype(n, TEMA_CFG_MAP);
    if (n->type != TEMA_CFG_MAP) {
        tema_cfg_report(d, TEMA_EINVAL, where, "%s: expected a plugin map like {plugin: NAME, option: value}, %s", path,
                        got(n, g, sizeof g));
        return NULL;
    }
    const char *names = reg && kind >= 0 ? tema_registry_names(reg, (tema_kind)kind) : "";
    if (!names || !*names) names = "none found; build the plugins or set TEMA_PLUGIN_PATH";
    tema_cfg *pn = tema_cfg_child(n, "plugin", NULL);
    if (!pn || pn->type != TEMA_CFG_SCALAR || !pn->value[0]) {
        if (pn) where_of(pn, false, where, sizeof where);
        tema_cfg_report(d, TEMA_EINVAL, where, "%s: %s; add 'plugin: NAME' (available %s plugins: %s)", path,
                        pn ? "'plugin' must be a plugin name" : "missing 'plugin'", kind_name, names);
        return NULL;
    }
    pn->quoted = true;
    if (!reg || kind < 0) return NULL; /* nothing to check the options against */
    const tema_plugin *pl = tema_registry_find(reg, (tema_kind)kind, pn->value);
    if (!pl) {
        suggester s = {.word = pn->value};
        for (size_t i = 0; i < tema_registry_count(reg); i++) {
            const tema_plugin_info *info = tema_registry_at(reg, i);
            if (info && info->plugin && (int)info->plugin->kind == kind) suggest_add(&s, info->plugin->name, NULL);
        }
        where_of(pn, false, where, sizeof where);
        char mean[128] = "";
        if (s.best) snprintf(mean, sizeof mean, "did you mean '%s'? ", s.best);
        tema_cfg_report(d, TEMA_ENOTFOUND, where, "%s.plugin: unknown %s plugin '%s'; %savailable: %s", path, kind_name,
                        pn->value, mean, names);
    }
    return pl;
}

/* A key c of the plugin map at path that is no option of pl. */
static void report_unknown_option(const tema_cfg *c, const char *path, const tema_plugin *pl, const char *owner,
                                  tema_cfg_diag *d)
{
    char where[1400];
    suggester s = {.word = c->key};
    for (uint32_t k = 0; k < pl->n_options; k++) suggest_add(&s, pl->options[k].name, NULL);
    char list[600] = "";
    size_t off = 0;
    for (uint32_t k = 0; k < pl->n_options && off < sizeof list; k++)
        off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", k ? ", " : "", pl->options[k].name);
    where_of(c, true, where, sizeof where);
    if (s.best)
        tema_cfg_report(d, TEMA_EINVAL, where, "unknown key '%s' in %s (an option of %s); did you mean '%s'?", c->key,
                        path, owner, s.best);
    else
        tema_cfg_report(d, TEMA_EINVAL, where, "unknown key '%s' in %s; %s takes %s%s", c->key, path, owner,
                        pl->n_options ? "only: " : "no options", list);
}

/* The options that the map n gives, each checked against its declaration in pl. */
static void check_given_options(tema_cfg *n, const char *path, const tema_plugin *pl, const char *owner,
                                tema_registry *reg, tema_cfg_diag *d)
{
    for (size_t i = 0; i < n->n_items; i++) {
        tema_cfg *c = n->items[i];
        if (!strcmp(c->key, "plugin")) continue;
        const tema_option *o = NULL;
        for (uint32_t k = 0; k < pl->n_options && !o; k++)
            if (!strcmp(pl->options[k].name, c->key)) o = &pl->options[k];
        char cp[600];
        snprintf(cp, sizeof cp, "%s.%s", path, c->key);
        if (!o) {
            report_unknown_option(c, path, pl, owner, d);
            continue;
        }
        if (o->type == TEMA_OPT_PLUGIN) validate_plugin(c, cp, o->choices, reg, d);
        else {
            vspec sp = option_spec(o);
            check_value(c, &sp, cp, d);
        }
    }
}

/* The options of pl that n lacks: their checked defaults appended, a required one reported;
 * then n's keys in pl's declaration order. */
static void add_default_options(tema_cfg *n, const char *path, const tema_plugin *pl, const char *owner,
                                tema_registry *reg, tema_cfg_diag *d)
{
    const char *order[257];
    size_t n_order = 0;
    order[n_order++] = "plugin";
    for (uint32_t k = 0; k < pl->n_options; k++) {
        const tema_option *o = &pl->options[k];
        if (n_order < sizeof order / sizeof order[0]) order[n_order++] = o->name;
        if (tema_cfg_child(n, o->name, NULL)) continue;
        if (!o->default_value) {
            report_required(n, path, o, owner, d);
            continue;
        }
        tema_cfg *v = parse_default(o->default_value, o->name, d, owner);
        if (!v) continue;
        char cp[600];
        if (o->type == TEMA_OPT_PLUGIN) {
            snprintf(cp, sizeof cp, "%s.%s", path, o->name);
            validate_plugin(v, cp, o->choices, reg, d);
        } else {
            snprintf(cp, sizeof cp, "%s.%s (default of %s)", path, o->name, owner);
            vspec sp = option_spec(o);
            check_value(v, &sp, cp, d);
        }
        tema_cfg_append(n, v);
    }
    reorder(n, order, n_order);
}

static void validate_plugin(tema_cfg *n, const char *path, const char *kind_name, tema_registry *reg,
                            tema_cfg_diag *d)
{
    const tema_plugin *pl = named_plugin(n, path, kind_name, tema_kind_from_name(kind_name), reg, d);
    if (!pl) return;
    char owner[256];
    snprintf(owner, sizeof owner, "%s plugin '%s'", kind_name, pl->name);
    check_given_options(n, path, pl, owner, reg, d);
    add_default_options(n, path, pl, owner, reg, d);
}

/* ---- the core schema walk ---- */

static void validate_map(tema_cfg *n, const char *prefix, const tema_cfg *root, tema_registry *reg, tema_cfg_diag *d);

/* NAME: plugin map, e.g. model.domain_taggers: {kitchen: {plugin: lexical}}. */
static void validate_plugin_map(tema_cfg *c, const schema_key *k, tema_registry *reg, tema_cfg_diag *d)
{
    char where[1400], g[256];
    tema_cfg_retype(c, TEMA_CFG_MAP);
    if (c->type != TEMA_CFG_MAP) {
        where_of(c, false, where, sizeof where);
        tema_cfg_report(d, TEMA_EINVAL, where, "%s: expected a map of names to %s plugin maps like {kitchen: "
                        "{plugin: lexical}}, %s", k->path, k->choices, got(c, g, sizeof g));
        return;
    }
    for (size_t i = 0; i < c->n_items; i++) {
        tema_cfg *e = c->items[i];
        char ep[600];
        snprintf(ep, sizeof ep, "%s.%s", k->path, e->key ? e->key : "?");
        bool name_ok = e->key && *e->key;
        for (const char *p = e->key; name_ok && *p; p++)
            name_ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-';
        if (!name_ok) {
            where_of(e, true, where, sizeof where);
            tema_cfg_report(d, TEMA_EINVAL, where, "%s: '%s' is not a domain name; hint: use a name of "
                            "dataset.domains, like food", ep, e->key ? e->key : "");
            continue;
        }
        validate_plugin(e, ep, k->choices, reg, d);
    }
}

static void validate_entry(tema_cfg *c, const schema_key *k, const tema_cfg *root, tema_registry *reg,
                           tema_cfg_diag *d)
{
    char where[1400], g[256];
    switch (k->type) {
    case V_MAP: validate_map(c, k->path, root, reg, d); return;
    case V_OPEN:
        tema_cfg_retype(c, TEMA_CFG_MAP);
        if (c->type != TEMA_CFG_MAP) {
            where_of(c, false, where, sizeof where);
            tema_cfg_report(d, TEMA_EINVAL, where, "%s: expected a map (key: value lines), %s", k->path,
                            got(c, g, sizeof g));
        }
        return;
    case V_PLUGIN: validate_plugin(c, k->path, k->choices, reg, d); return;
    case V_PLUGIN_LIST:
        if (c->type != TEMA_CFG_LIST || c->n_items == 0) {
            where_of(c, false, where, sizeof where);
            tema_cfg_report(d, TEMA_EINVAL, where, "%s: expected a non-empty list of %s plugin maps like "
                            "[{plugin: id, dim: 64}], %s", k->path, k->choices,
                            c->type == TEMA_CFG_LIST ? "got an empty list" : got(c, g, sizeof g));
            return;
        }
        for (size_t i = 0; i < c->n_items; i++) {
            char ep[600];
            snprintf(ep, sizeof ep, "%s.%zu", k->path, i);
            validate_plugin(c->items[i], ep, k->choices, reg, d);
        }
        return;
    case V_PLUGIN_MAP: validate_plugin_map(c, k, reg, d); return;
    default: {
        vspec s = {.type = k->type, .ranged = k->ranged, .lo_open = k->lo_open, .lo = k->lo, .hi = k->hi,
                   .choices = k->choices};
        check_value(c, &s, k->path, d);
        return;
    }
    }
}

static void validate_map(tema_cfg *n, const char *prefix, const tema_cfg *root, tema_registry *reg, tema_cfg_diag *d)
{
    char where[1400], g[256];
    tema_cfg_retype(n, TEMA_CFG_MAP);
    if (n->type != TEMA_CFG_MAP) {
        where_of(n, false, where, sizeof where);
        tema_cfg_report(d, TEMA_EINVAL, where, "%s: expected a map of settings (key: value lines), %s", prefix,
                        got(n, g, sizeof g));
        return;
    }
    for (size_t i = 0; i < n->n_items; i++) {
        tema_cfg *c = n->items[i];
        char full[600];
        join(full, sizeof full, prefix, c->key ? c->key : "");
        const schema_key *k = schema_find(full);
        if (k && schema_is_child(prefix, k->path)) {
            validate_entry(c, k, root, reg, d);
            continue;
        }
        suggester s = {.word = c->key ? c->key : ""};
        char list[600] = "";
        size_t off = 0;
        for (size_t j = 0; j < N_SCHEMA; j++)
            if (schema_is_child(prefix, schema[j].path)) {
                suggest_add(&s, last_seg(schema[j].path), schema[j].alias);
                if (off < sizeof list)
                    off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", off ? ", " : "", last_seg(schema[j].path));
            }
        char in[620];
        if (*prefix) snprintf(in, sizeof in, "in %s", prefix);
        else snprintf(in, sizeof in, "at the top level");
        where_of(c, true, where, sizeof where);
        if (s.best) tema_cfg_report(d, TEMA_EINVAL, where, "unknown key '%s' %s; did you mean '%s'?", c->key, in, s.best);
        else tema_cfg_report(d, TEMA_EINVAL, where, "unknown key '%s' %s; valid keys: %s", c->key, in, list);
    }
    const char *order[N_SCHEMA];
    size_t n_order = 0;
    for (size_t j = 0; j < N_SCHEMA; j++) {
        const schema_key *k = &schema[j];
        if (!schema_is_child(prefix, k->path)) continue;
        order[n_order++] = last_seg(k->path);
        if (tema_cfg_child(n, last_seg(k->path), NULL)) continue;
        if (k->required) {
            /* a map that only the defaults made has no place in the file: point at the file */
            const tema_cfg *at = strcmp(n->file, TEMA_CFG_DEFAULTS_LABEL) ? n : root;
            where_of(at, false, where, sizeof where);
            tema_cfg_report(d, TEMA_EINVAL, where, "missing required key '%s'%s", k->path,
                            !strcmp(k->path, "dataset.path")
                                 ? "; give a dataset folder, a .tar.gz bundle or 'synthetic'"
                                 : "; add it to the experiment");
            continue;
        }
        tema_cfg *v = NULL;
        if (k->type == V_MAP) v = tema_cfg_new(TEMA_CFG_MAP, last_seg(k->path), TEMA_CFG_DEFAULTS_LABEL, 0, 0);
        else if (k->def) v = parse_default(k->def, last_seg(k->path), d, "the core schema");
        else continue;
        if (!v) continue;
        validate_entry(v, k, root, reg, d);
        tema_cfg_append(n, v);
    }
    reorder(n, order, n_order);
}

void tema_cfg_validate(tema_cfg *root, tema_registry *reg, tema_cfg_diag *d)
{
    validate_map(root, "", root, reg, d);
}

tema_status tema_cfg_plugin_validate(tema_cfg *node, const char *path, const char *kind, tema_registry *reg,
                                     tema_err *err)
{
    tema_cfg_diag d = {.err = err};
    validate_plugin(node, path, kind, reg, &d);
    return tema_cfg_diag_flush(&d);
}

tema_status tema_cfg_plugin_defaults(const char *kind, const char *name, tema_registry *reg, tema_cfg **out,
                                     tema_err *err)
{
    *out = NULL;
    tema_cfg *n = tema_cfg_new(TEMA_CFG_SCALAR, NULL, TEMA_CFG_DEFAULTS_LABEL, 0, 0);
    if (!n || !tema_cfgi_set_text(n, name, false)) {
        tema_cfg_free(n);
        return tema_fail(err, TEMA_ENOMEM, "out of memory");
    }
    /* the shorthand NAME becomes {plugin: NAME, ...defaults} */
    tema_status st = tema_cfg_plugin_validate(n, kind, kind, reg, err);
    if (st != TEMA_OK) tema_cfg_free(n);
    else *out = n;
    return st;
}

tema_status tema_cfg_defaults(tema_cfg **out, tema_err *err)
{
    *out = NULL;
    tema_cfg *root = tema_cfg_new(TEMA_CFG_MAP, NULL, TEMA_CFG_DEFAULTS_LABEL, 0, 0);
    if (!root) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    for (size_t i = 0; i < N_SCHEMA; i++) {
        const schema_key *k = &schema[i];
        if (k->type != V_MAP && !k->def) continue;
        char parent[128] = "";
        const char *dot = strrchr(k->path, '.');
        if (dot) snprintf(parent, sizeof parent, "%.*s", (int)(dot - k->path), k->path);
        tema_cfg *p = (tema_cfg *)tema_cfg_get(root, parent);
        tema_cfg *v = NULL;
        tema_err e = {0};
        if (k->type == V_MAP) v = tema_cfg_new(TEMA_CFG_MAP, NULL, TEMA_CFG_DEFAULTS_LABEL, 0, 0);
        else if (tema_cfgi_parse(k->def, strlen(k->def), TEMA_CFG_DEFAULTS_LABEL, false, &v, &e) != TEMA_OK) v = NULL;
        bool ok = p && v && (v->key = strdup(last_seg(k->path)));
        if (!ok) tema_cfg_free(v);
        else ok = tema_cfg_append(p, v); /* frees v on failure */
        if (!ok) {
            tema_cfg_free(root);
            return tema_fail(err, e.code ? e.code : TEMA_ENOMEM, "building the default of %s failed%s%s", k->path,
                             e.code ? ": " : "", e.msg);
        }
    }
    *out = root;
    return TEMA_OK;
}
