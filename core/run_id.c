/* core/run_id.c - a run's identity (what determines its result), its id, content
 * fingerprints of the data and files it reads, and the move of scheme-1 run folders. */
#include "run_id.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "results.h"
#include "store_key.h"
#include "util.h"

/* ---- XXH64 of a file, streamed (a 30 MB archive in ~10 ms, where FNV-1a takes ~40) ---- */

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull
#define P5 0x27D4EB2F165667C5ull
#define CHUNK (1u << 20) /* a multiple of the 32-byte stripe */

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t rd64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static inline uint32_t rd32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline uint64_t xround(uint64_t acc, uint64_t in) { return rotl64(acc + in * P2, 31) * P1; }
static inline uint64_t xmerge(uint64_t h, uint64_t v) { return (h ^ xround(0, v)) * P1 + P4; }

typedef struct xxh64 {
    uint64_t v[4];
    uint64_t total;
} xxh64;

static void xxh_init(xxh64 *s) { *s = (xxh64){{P1 + P2, P2, 0, (uint64_t)0 - P1}, 0}; }

/* Whole stripes only; returns the bytes consumed. */
static size_t xxh_stripes(xxh64 *s, const unsigned char *p, size_t len)
{
    size_t n = len & ~(size_t)31;
    for (size_t i = 0; i < n; i += 32)
        for (int k = 0; k < 4; k++) s->v[k] = xround(s->v[k], rd64(p + i + 8 * k));
    s->total += n;
    return n;
}

static uint64_t xxh_final(const xxh64 *s, const unsigned char *p, size_t rem)
{
    uint64_t h;
    if (s->total >= 32) {
        h = rotl64(s->v[0], 1) + rotl64(s->v[1], 7) + rotl64(s->v[2], 12) + rotl64(s->v[3], 18);
        for (int k = 0; k < 4; k++) h = xmerge(h, s->v[k]);
    } else {
        h = P5;
    }
    h += s->total + rem;
    for (; rem >= 8; p += 8, rem -= 8) h = rotl64(h ^ xround(0, rd64(p)), 27) * P1 + P4;
    if (rem >= 4) {
        h = rotl64(h ^ (uint64_t)rd32(p) * P1, 23) * P2 + P3;
        p += 4;
        rem -= 4;
    }
    for (; rem; p++, rem--) h = rotl64(h ^ *p * P5, 11) * P1;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    return h ^ (h >> 32);
}

static bool hash_fd(int fd, uint64_t *out)
{
    unsigned char *buf = malloc(CHUNK);
    if (!buf) return false;
    xxh64 s;
    xxh_init(&s);
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, CHUNK - have);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            free(buf);
            return false;
        }
        if (n == 0) break;
        have += (size_t)n;
        if (have == CHUNK) have -= xxh_stripes(&s, buf, have);
    }
    size_t done = xxh_stripes(&s, buf, have);
    *out = xxh_final(&s, buf + done, have - done);
    free(buf);
    return true;
}

/* Per process, by (device, inode, size, mtime): a grid of 24 runs on one archive hashes it once. */
#define MEMO_CAP 256
static struct memo {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    uint64_t hash;
} memo[MEMO_CAP];
static size_t memo_n, memo_next;
static pthread_mutex_t memo_lock = PTHREAD_MUTEX_INITIALIZER;

static bool memo_get(const struct stat *st, uint64_t *h)
{
    bool hit = false;
    pthread_mutex_lock(&memo_lock);
    for (size_t i = 0; i < memo_n && !hit; i++)
        if (memo[i].dev == st->st_dev && memo[i].ino == st->st_ino && memo[i].size == st->st_size &&
            memo[i].mtime.tv_sec == st->st_mtim.tv_sec && memo[i].mtime.tv_nsec == st->st_mtim.tv_nsec) {
            *h = memo[i].hash;
            hit = true;
        }
    pthread_mutex_unlock(&memo_lock);
    return hit;
}

static void memo_put(const struct stat *st, uint64_t h)
{
    pthread_mutex_lock(&memo_lock);
    size_t i = memo_n < MEMO_CAP ? memo_n++ : memo_next++ % MEMO_CAP;
    memo[i] = (struct memo){st->st_dev, st->st_ino, st->st_size, st->st_mtim, h};
    pthread_mutex_unlock(&memo_lock);
}

static bool file_hash(const char *path, uint64_t *h)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    if (ok && !memo_get(&st, h)) {
        ok = hash_fd(fd, h);
        if (ok) memo_put(&st, *h);
    }
    close(fd);
    return ok;
}

bool tema_file_fingerprint(const char *path, char hex[17])
{
    uint64_t h;
    if (!file_hash(path, &h)) return false;
    snprintf(hex, 17, "%016" PRIx64, h);
    return true;
}

/* ---- fingerprints of paths ---- */

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A file by its content; a folder by the names and contents of what it holds (hidden entries
 * left out), folders within it too. Size goes in with the content, so a truncated file never
 * collides with its prefix. */
static uint64_t mix_tree(uint64_t h, const char *path, int depth)
{
    struct stat st;
    if (stat(path, &st) != 0) return tema_key_mix_str(h, "(missing)");
    if (S_ISREG(st.st_mode)) {
        uint64_t c;
        if (!file_hash(path, &c)) return tema_key_mix_str(h, "(unreadable)");
        int64_t v[2] = {(int64_t)st.st_size, (int64_t)c};
        return tema_key_mix(h, v, sizeof v);
    }
    if (!S_ISDIR(st.st_mode) || depth > 8) return tema_key_mix_str(h, "(special)");
    DIR *d = opendir(path);
    if (!d) return tema_key_mix_str(h, "(unreadable folder)");
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            char **q = realloc(names, (cap = cap ? 2 * cap : 32) * sizeof *q);
            if (!q) break;
            names = q;
        }
        if (!(names[n] = strdup(e->d_name))) break;
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_cstr);
    h = tema_key_mix_str(h, "(folder)");
    for (size_t i = 0; i < n; i++) {
        char full[4200];
        if (snprintf(full, sizeof full, "%s/%s", path, names[i]) >= (int)sizeof full)
            h = tema_key_mix_str(tema_key_mix_str(h, names[i]), "(path too long)"); /* never another file's */
        else
            h = mix_tree(tema_key_mix_str(h, names[i]), full, depth + 1);
        free(names[i]);
    }
    free(names);
    return h;
}

static void fingerprint_text(uint64_t h, char *out, size_t cap) { snprintf(out, cap, "content:%016" PRIx64, h); }

static const char *base_of(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* The files tema_dataset_load reads: in a folder the C2DSR members by base name; an archive
 * whole (reading its members would cost a decompression per process). */
static void dataset_fingerprint(const tema_cfg *cfg, const char *path, char *out, size_t cap)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (!strcmp(base_of(path), "synthetic")) snprintf(out, cap, "synthetic");
        else snprintf(out, cap, "missing:%s", path);
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        fingerprint_text(mix_tree(0, path, 0), out, cap);
        return;
    }
    const char *names[7] = {"Alist.txt", "Blist.txt", "userlist.txt", "items.tsv",
                            base_of(tema_cfg_str(cfg, "dataset.train_file", "traindata_new.txt")),
                            base_of(tema_cfg_str(cfg, "dataset.valid_file", "validdata_new.txt")),
                            base_of(tema_cfg_str(cfg, "dataset.test_file", "testdata_new.txt"))};
    uint64_t h = tema_key_mix_str(0, "(dataset folder)");
    for (int i = 0; i < 7; i++) {
        char full[4200];
        snprintf(full, sizeof full, "%s/%s", path, names[i]);
        h = mix_tree(tema_key_mix_str(h, names[i]), full, 0);
    }
    fingerprint_text(h, out, cap);
}

static void path_fingerprint(const char *path, char *out, size_t cap)
{
    struct stat st;
    if (stat(path, &st) != 0) snprintf(out, cap, "missing:%s", path);
    else fingerprint_text(mix_tree(0, path, 0), out, cap);
}

/* ---- the identity tree ---- */

/* Options that say how or where a run executes, never what it computes. */
static const struct {
    const char *kind, *option;
} execution_only[] = {
    {"backend", "threads"},   /* see run_id.h: the thread count decision */
    {"backend", "device"},    /* which GPU, not what it computes */
    {"tagger", "progress_s"}, /* how often a progress line is printed */
};

static bool is_execution_only(const char *kind, const char *option)
{
    if (strstr(option, "cache")) return true; /* a cache never changes results (store_key.h) */
    for (size_t i = 0; i < sizeof execution_only / sizeof execution_only[0]; i++)
        if (!strcmp(execution_only[i].kind, kind) && !strcmp(execution_only[i].option, option)) return true;
    return false;
}

/* Keys of one object dropped for tema_run_config_strip_execution: a cache anywhere, and the
 * execution-only options of the kinds a config JSON does not name (a tagger's progress_s,
 * wherever a plugin has an option of that name). */
static void strip_execution_tree(json_object *o)
{
    if (json_object_is_type(o, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(o); i++) strip_execution_tree(json_object_array_get_idx(o, i));
        return;
    }
    if (!json_object_is_type(o, json_type_object)) return;
    /* json-c cannot delete during its foreach: drop one key per pass, then recurse */
    for (const char *drop = ""; drop;) {
        drop = NULL;
        json_object_object_foreach(o, key, val) {
            (void)val;
            bool out = strstr(key, "cache") != NULL;
            for (size_t i = 0; !out && i < sizeof execution_only / sizeof execution_only[0]; i++)
                out = strcmp(execution_only[i].kind, "backend") && !strcmp(execution_only[i].option, key);
            if (out) {
                drop = key;
                break;
            }
        }
        if (drop) json_object_object_del(o, drop);
    }
    json_object_object_foreach(o, key, val) {
        (void)key;
        strip_execution_tree(val);
    }
}

void tema_run_config_strip_execution(json_object *config)
{
    json_object *backend = NULL, *train = NULL;
    if (json_object_object_get_ex(config, "backend", &backend) && json_object_is_type(backend, json_type_object))
        for (size_t i = 0; i < sizeof execution_only / sizeof execution_only[0]; i++)
            if (!strcmp(execution_only[i].kind, "backend")) json_object_object_del(backend, execution_only[i].option);
    if (json_object_object_get_ex(config, "train", &train) && json_object_is_type(train, json_type_object))
        json_object_object_del(train, "resume");
    json_object_object_del(config, "results_dir");
    strip_execution_tree(config);
}

/* `features` names a .npy without the _file suffix that would make it a path option. */
static bool is_path_option(const tema_option *o)
{
    return o->type == TEMA_OPT_STRING && (tema_option_is_path(o->name) || !strcmp(o->name, "features"));
}

typedef struct walk {
    tema_registry *reg;
    const tema_plugin **used;
    int n_used, cap_used;
    tema_err *err;
    bool oom;
} walk;

static bool set_text(tema_cfg *n, const char *text)
{
    char *v = strdup(text);
    if (!v) return false;
    free(n->value);
    n->value = v;
    n->quoted = true;
    return true;
}

static bool add_text(tema_cfg *map, const char *key, const char *text)
{
    tema_cfg *c = tema_cfg_new(TEMA_CFG_SCALAR, key, "<identity>", 0, 0);
    if (!c || !set_text(c, text)) {
        tema_cfg_free(c);
        return false;
    }
    return tema_cfg_append(map, c);
}

/* Canonical JSON of an option's declared default, remembered by its text (registries come and
 * go, and a table's address may be reused by another plugin). */
static char *default_json(const char *text)
{
    static struct {
        char *text, *json;
    } seen[512];
    static size_t n_seen;
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    char *out = NULL;
    bool hit = false;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_seen && !hit; i++)
        if (!strcmp(seen[i].text, text)) {
            hit = true;
            out = strdup(seen[i].json);
        }
    pthread_mutex_unlock(&lock);
    if (hit) return out;
    tema_cfg *d = NULL;
    tema_err e = {0};
    if (tema_cfg_parse_string(text, "<defaults>", &d, &e) != TEMA_OK) return NULL;
    out = tema_cfg_to_json(d);
    tema_cfg_free(d);
    pthread_mutex_lock(&lock);
    if (out && n_seen < sizeof seen / sizeof seen[0]) {
        seen[n_seen].text = strdup(text);
        seen[n_seen].json = strdup(out);
        if (seen[n_seen].text && seen[n_seen].json) n_seen++;
        else {
            free(seen[n_seen].text);
            free(seen[n_seen].json);
        }
    }
    pthread_mutex_unlock(&lock);
    return out;
}

static bool equals_default(const tema_cfg *v, const tema_option *o)
{
    char *d = o->default_value ? default_json(o->default_value) : NULL, *j = d ? tema_cfg_to_json(v) : NULL;
    bool eq = d && j && !strcmp(d, j);
    free(d);
    free(j);
    return eq;
}

static void note_used(walk *w, const tema_plugin *tp)
{
    for (int i = 0; i < w->n_used; i++)
        if (w->used[i] == tp) return;
    if (w->n_used < w->cap_used) w->used[w->n_used++] = tp;
}

/* The environment that tp's empty options fall back to: a path there counts by content. */
static void add_env(tema_cfg *n, const tema_plugin *tp, walk *w)
{
    tema_env_fallback env[TEMA_MAX_ENV_FALLBACKS];
    const int n_env = tema_env_fallbacks(tp, n, env);
    for (int i = 0; i < n_env; i++) {
        char key[96], val[4200];
        snprintf(key, sizeof key, "env %.63s", env[i].name);
        struct stat st;
        if (!env[i].value) snprintf(val, sizeof val, "(unset)");
        else if (env[i].value[0] == '/' && stat(env[i].value, &st) == 0) path_fingerprint(env[i].value, val, sizeof val);
        else snprintf(val, sizeof val, "%s", env[i].value);
        if (!add_text(n, key, val)) w->oom = true;
    }
}

static void canon_plugin(tema_cfg *n, const char *kind_name, walk *w);

/* One option of plugin map n (item i): dropped, fingerprinted, recursed into or kept. */
static void canon_option(tema_cfg *n, size_t i, const tema_plugin *tp, const char *kind_name, walk *w, bool *drop)
{
    tema_cfg *c = n->items[i];
    const tema_option *o = NULL;
    for (uint32_t k = 0; k < tp->n_options && !o; k++)
        if (!strcmp(tp->options[k].name, c->key)) o = &tp->options[k];
    *drop = false;
    if (!o) return;
    if (o->type == TEMA_OPT_PLUGIN) {
        canon_plugin(c, o->choices, w);
    } else if (is_execution_only(kind_name, o->name)) {
        *drop = true;
    } else if (is_path_option(o) && c->type == TEMA_CFG_SCALAR && c->value[0]) {
        char fp[4200];
        path_fingerprint(c->value, fp, sizeof fp);
        if (!set_text(c, fp)) w->oom = true;
    } else {
        *drop = equals_default(c, o);
    }
}

static void canon_plugin(tema_cfg *n, const char *kind_name, walk *w)
{
    if (!n || !tema_cfg_expand_plugin(n)) {
        w->oom = w->oom || n;
        return;
    }
    const char *name = NULL;
    tema_cfg_plugin_node(n, &name);
    int kind = tema_kind_from_name(kind_name);
    const tema_plugin *tp = w->reg && name && kind >= 0 ? tema_registry_find(w->reg, (tema_kind)kind, name) : NULL;
    if (!tp) return; /* counted as written */
    note_used(w, tp);
    add_env(n, tp, w); /* before the empty options it reads go */
    for (size_t i = n->n_items; i-- > 0;) {
        if (!n->items[i]->key || !strcmp(n->items[i]->key, "plugin") || !strncmp(n->items[i]->key, "env ", 4)) continue;
        bool drop;
        canon_option(n, i, tp, kind_name, w, &drop);
        if (drop) tema_cfg_free(tema_cfg_take(n, i));
    }
    if (!add_text(n, "plugin_version", tp->version ? tp->version : "")) w->oom = true;
}

static void drop_key(tema_cfg *root, const char *parent, const char *key)
{
    tema_cfg *p = *parent ? (tema_cfg *)tema_cfg_get(root, parent) : root;
    size_t i;
    if (p && p->type == TEMA_CFG_MAP && tema_cfg_child(p, key, &i)) tema_cfg_free(tema_cfg_take(p, i));
}

static void canon_slots(tema_cfg *root, walk *w)
{
    tema_cfg_plugin_slot slots[32];
    size_t n = tema_cfg_plugin_slots(slots, 32);
    for (size_t s = 0; s < n && s < 32; s++) {
        tema_cfg *node = (tema_cfg *)tema_cfg_get(root, slots[s].path);
        if (!node) continue;
        if (slots[s].shape == TEMA_SLOT_ONE) canon_plugin(node, slots[s].kind, w);
        else if (node->type == TEMA_CFG_LIST || node->type == TEMA_CFG_MAP)
            for (size_t i = 0; i < node->n_items; i++) canon_plugin(node->items[i], slots[s].kind, w);
    }
}

/* Keys the schema gained after scheme 2 count only when set to something else than their
 * default: a run from before the key existed ran with the default and keeps its id. */
static void drop_later_defaults(tema_cfg *root)
{
    tema_cfg_later_key keys[16];
    size_t n = tema_cfg_later_keys(keys, 16);
    for (size_t i = 0; i < n && i < 16; i++) {
        const tema_cfg *v = tema_cfg_get(root, keys[i].path);
        if (!v || v->type != TEMA_CFG_SCALAR || !keys[i].def || strcmp(v->value, keys[i].def)) continue;
        char parent[128];
        const char *dot = strrchr(keys[i].path, '.');
        size_t len = dot ? (size_t)(dot - keys[i].path) : 0;
        snprintf(parent, sizeof parent, "%.*s", (int)len, keys[i].path);
        drop_key(root, parent, dot ? dot + 1 : keys[i].path);
    }
}

/* The identity tree (see run_id.h), built from a copy of resolved. */
static tema_status identity_tree(const tema_cfg *resolved, walk *w, tema_cfg **out, tema_err *err)
{
    tema_cfg *t = tema_cfg_clone(resolved);
    if (!t) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    static const char *const dropped[][2] = {{"", "name"},   {"", "description"}, {"", "results_dir"},
                                             {"", "grid"},   {"", "report"},      {"train", "resume"}};
    for (size_t i = 0; i < sizeof dropped / sizeof dropped[0]; i++) drop_key(t, dropped[i][0], dropped[i][1]);
    drop_later_defaults(t);
    tema_cfg *dp = (tema_cfg *)tema_cfg_get(t, "dataset.path");
    if (dp && dp->type == TEMA_CFG_SCALAR) {
        char fp[4200];
        dataset_fingerprint(t, dp->value, fp, sizeof fp);
        if (!set_text(dp, fp)) w->oom = true;
    }
    canon_slots(t, w);
    if (w->oom || !add_text(t, "run_id_scheme", "2")) {
        tema_cfg_free(t);
        return tema_fail(err, TEMA_ENOMEM, "out of memory");
    }
    *out = t;
    return TEMA_OK;
}

tema_status tema_run_identity(const tema_cfg *resolved, tema_registry *reg, char **json, tema_err *err)
{
    *json = NULL;
    walk w = {.reg = reg};
    tema_cfg *t = NULL;
    tema_status st = identity_tree(resolved, &w, &t, err);
    if (st != TEMA_OK) return st;
    *json = tema_cfg_to_json(t);
    tema_cfg_free(t);
    return *json ? TEMA_OK : tema_fail(err, TEMA_ENOMEM, "out of memory");
}

tema_status tema_run_ids(const tema_cfg *resolved, tema_registry *reg, char id[17], char v1[17], tema_err *err)
{
    char *json = NULL;
    tema_status st = tema_run_identity(resolved, reg, &json, err);
    if (st != TEMA_OK) return st;
    tema_results_run_id(json, id);
    free(json);
    if (v1) {
        char *old = tema_cfg_to_json(resolved);
        if (!old) return tema_fail(err, TEMA_ENOMEM, "out of memory");
        tema_results_run_id(old, v1);
        free(old);
    }
    return TEMA_OK;
}

int tema_run_plugins(const tema_cfg *resolved, tema_registry *reg, const tema_plugin **out, int cap)
{
    walk w = {.reg = reg, .used = out, .cap_used = cap};
    tema_cfg *t = NULL;
    tema_err ignored = {0};
    if (identity_tree(resolved, &w, &t, &ignored) != TEMA_OK) return 0;
    tema_cfg_free(t);
    return w.n_used;
}

/* ---- the plugin files a run loads ---- */

void tema_run_plugin_files(const tema_cfg *resolved, tema_registry *reg, tema_plugin_files *out)
{
    const tema_plugin *ps[TEMA_RUN_MAX_PLUGINS];
    memset(out, 0, sizeof *out);
    out->n = tema_run_plugins(resolved, reg, ps, TEMA_RUN_MAX_PLUGINS);
    for (int i = 0; i < out->n; i++) {
        const char *file = "builtin";
        for (size_t k = 0; reg && k < tema_registry_count(reg); k++) {
            const tema_plugin_info *pi = tema_registry_at(reg, k);
            if (pi && pi->plugin == ps[i]) file = pi->file;
        }
        bool hashed = file[0] == '/' && tema_file_fingerprint(file, out->hash[i]);
        out->rec[i] = (tema_plugin_record){.kind = tema_kind_name(ps[i]->kind), .name = ps[i]->name,
                                           .version = ps[i]->version, .file = file,
                                           .file_hash = hashed ? out->hash[i] : NULL};
    }
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                                                              : NULL;
}

tema_status tema_run_check_plugin_files(const char *run_dir, const tema_plugin_files *now, tema_err *err)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/meta.json", run_dir);
    json_object *meta = json_object_from_file(p), *list;
    tema_status st = TEMA_OK;
    if (meta && json_object_object_get_ex(meta, "plugins", &list) && json_object_is_type(list, json_type_array))
        for (size_t i = 0; i < json_object_array_length(list) && st == TEMA_OK; i++) {
            json_object *e = json_object_array_get_idx(list, i);
            const char *kind = jstr(e, "kind"), *name = jstr(e, "name"), *then = jstr(e, "file_hash");
            if (!kind || !name || !then) continue;
            for (int k = 0; k < now->n; k++) {
                const tema_plugin_record *r = &now->rec[k];
                if (strcmp(r->kind, kind) || strcmp(r->name, name)) continue;
                if (!r->file_hash || strcmp(r->file_hash, then))
                    st = tema_fail(err, TEMA_EUNSUPPORTED,
                                   "%s: %s plugin '%s' changed since this run started (%s: file hash %s then, %s "
                                   "now): resuming would finish its training with other code; hint: --force starts "
                                   "the run over with the new plugin",
                                   run_dir, kind, name, r->file, then, r->file_hash ? r->file_hash : "none");
                break;
            }
        }
    json_object_put(meta);
    return st;
}

/* ---- scheme-1 folders ---- */

static bool lock_held(const char *dir)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/lock", dir);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
    bool held = fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
    close(fd);
    return held;
}

/* The scheme-1 folder of this run, if any: the config as given, or with another thread count
 * (which scheme 1 hashed, so a run made with --set backend.threads=1 is found too). */
static bool find_v1(const char *exp_dir, const tema_cfg *resolved, char *from, size_t cap)
{
    tema_cfg *t = tema_cfg_clone(resolved);
    tema_cfg *threads = t ? (tema_cfg *)tema_cfg_get(t, "backend.threads") : NULL;
    bool found = false;
    for (int n = 0; t && n <= 256 && !found; n = n < 32 ? n + 1 : 2 * n) {
        char v[16], id[17];
        if (n > 0) {
            if (!threads || threads->type != TEMA_CFG_SCALAR) break;
            snprintf(v, sizeof v, "%d", n);
            if (!set_text(threads, v)) break;
            threads->quoted = false;
        }
        char *json = tema_cfg_to_json(t);
        if (!json) break;
        tema_results_run_id(json, id);
        free(json);
        struct stat st;
        snprintf(from, cap, "%s/%s", exp_dir, id);
        found = stat(from, &st) == 0 && S_ISDIR(st.st_mode) && !lock_held(from);
    }
    tema_cfg_free(t);
    return found;
}

static bool empty_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return false;
    bool empty = true;
    for (struct dirent *e; empty && (e = readdir(d));) empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(d);
    return empty;
}

bool tema_run_migrate(const char *results_dir, const char *exp_name, const tema_cfg *resolved, const char *id)
{
    char exp_dir[4200], from[4300], to[4300];
    snprintf(exp_dir, sizeof exp_dir, "%s/%s", results_dir && *results_dir ? results_dir : "results", exp_name);
    snprintf(to, sizeof to, "%s/%s", exp_dir, id);
    struct stat st;
    if (stat(exp_dir, &st) != 0 || (stat(to, &st) == 0 && !empty_dir(to))) return false;
    if (!find_v1(exp_dir, resolved, from, sizeof from) || !strcmp(from, to)) return false;
    /* an empty folder at the new id (made by a runner before it found nothing) is replaced */
    if (rename(from, to) != 0) return false;
    fprintf(stderr, "tema: moved %s to %s (run ids now hash the data by content)\n", from, id);
    return true;
}
