/* core/store_key.c - hashing a plugin's settings, files and environment into store keys. */
#include "store_key.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

/* Files up to this size are hashed whole; a bigger one (model weights, feature files) by its
 * size and SAMPLE_BLOCKS blocks of SAMPLE_BYTES at evenly spaced offsets: its content, so a
 * reinstalled or copied model keeps its key (an mtime would not), at the cost of reading 4 MiB. */
#define HASHED_FILE_MAX (4u << 20)
#define SAMPLE_BLOCKS 64
#define SAMPLE_BYTES (64u << 10)

uint64_t tema_key_mix(uint64_t h, const void *data, size_t len)
{
    uint64_t v[2] = {h, tema_hash64(data, len)};
    return tema_hash64(v, sizeof v);
}

uint64_t tema_key_mix_str(uint64_t h, const char *s) { return tema_key_mix(h, s, strlen(s) + 1); }

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static uint64_t mix_sampled_file(uint64_t h, const char *path, int64_t size)
{
    h = tema_key_mix(h, &size, sizeof size);
    FILE *f = fopen(path, "rb");
    char *buf = f ? malloc(SAMPLE_BYTES) : NULL;
    if (!buf) {
        if (f) fclose(f);
        return tema_key_mix_str(h, "(unreadable)");
    }
    for (int b = 0; b < SAMPLE_BLOCKS; b++) {
        int64_t off = (size - (int64_t)SAMPLE_BYTES) / (SAMPLE_BLOCKS - 1) * b;
        size_t got = fseeko(f, (off_t)off, SEEK_SET) == 0 ? fread(buf, 1, SAMPLE_BYTES, f) : 0;
        h = tema_key_mix(h, buf, got);
    }
    fclose(f);
    free(buf);
    return h;
}

static uint64_t mix_file(uint64_t h, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return tema_key_mix_str(h, "(missing)");
    if ((size_t)st.st_size > HASHED_FILE_MAX) return mix_sampled_file(h, path, (int64_t)st.st_size);
    char *data = NULL;
    size_t len = 0;
    tema_err ignored = {0};
    if (tema_read_file(path, &data, &len, &ignored) != TEMA_OK) return tema_key_mix_str(h, "(unreadable)");
    h = tema_key_mix(h, data, len);
    free(data);
    return h;
}

uint64_t tema_key_mix_path(uint64_t h, const char *path)
{
    if (!tema_is_dir(path)) return mix_file(h, path);
    DIR *d = opendir(path);
    if (!d) return tema_key_mix_str(h, "(unreadable folder)");
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            size_t c = cap ? 2 * cap : 32;
            char **q = realloc(names, c * sizeof *q);
            if (!q) break;
            names = q;
            cap = c;
        }
        if (!(names[n] = strdup(e->d_name))) break;
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_cstr);
    for (size_t i = 0; i < n; i++) {
        char full[4200];
        snprintf(full, sizeof full, "%s/%s", path, names[i]);
        struct stat st;
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
            h = tema_key_mix_str(h, names[i]);
            h = mix_file(h, full);
        }
        free(names[i]);
    }
    free(names);
    return h;
}

int tema_env_fallbacks(const tema_plugin *tp, const tema_cfg *opts, tema_env_fallback *out)
{
    int n = 0;
    for (uint32_t k = 0; opts && k < tp->n_options && n < TEMA_MAX_ENV_FALLBACKS; k++) {
        const tema_option *o = &tp->options[k];
        const char *v = tema_cfg_str(opts, o->name, NULL);
        const char *env = o->help ? strstr(o->help, "env ") : NULL;
        if (o->type != TEMA_OPT_STRING || (v && *v) || !env) continue;
        env += 4;
        size_t len = 0;
        while ((isupper((unsigned char)env[len]) || isdigit((unsigned char)env[len]) || env[len] == '_') && len < 63) len++;
        if (len == 0) continue;
        snprintf(out[n].name, sizeof out[n].name, "%.*s", (int)len, env);
        if (strstr(out[n].name, "KEY") || strstr(out[n].name, "TOKEN") || strstr(out[n].name, "SECRET") ||
            strstr(out[n].name, "PASSWORD"))
            continue;
        out[n].value = getenv(out[n].name);
        n++;
    }
    return n;
}

/* A cache never changes results, so neither its path nor its contents enter a key. */
static bool is_cache(const tema_option *o) { return strstr(o->name, "cache") != NULL; }

/* The plugin that option o (TEMA_OPT_PLUGIN) of opts names, with its options node in *sub;
 * NULL when it is not set or not in reg. */
static const tema_plugin *nested_plugin(const tema_option *o, const tema_cfg *opts, tema_registry *reg,
                                        const tema_cfg **sub)
{
    const char *name = NULL;
    *sub = tema_cfg_plugin_node(tema_cfg_get(opts, o->name), &name);
    int kind = tema_kind_from_name(o->choices);
    return reg && name && kind >= 0 ? tema_registry_find(reg, (tema_kind)kind, name) : NULL;
}

/* Files and environment of tp's options in opts, then of its nested plugins (depth-limited
 * only by the config, which is finite and acyclic). */
static uint64_t mix_inputs(uint64_t h, const tema_plugin *tp, const tema_cfg *opts, tema_registry *reg)
{
    for (uint32_t k = 0; opts && k < tp->n_options; k++) {
        const tema_option *o = &tp->options[k];
        if (o->type == TEMA_OPT_PLUGIN) {
            const tema_cfg *sub = NULL;
            const tema_plugin *np = nested_plugin(o, opts, reg, &sub);
            if (np) h = mix_inputs(tema_key_mix_str(h, o->name), np, sub, reg);
            continue;
        }
        if (o->type != TEMA_OPT_STRING || !tema_option_is_path(o->name) || is_cache(o)) continue;
        const char *v = tema_cfg_str(opts, o->name, NULL);
        if (v && *v) h = tema_key_mix_path(tema_key_mix_str(h, o->name), v);
    }
    tema_env_fallback env[TEMA_MAX_ENV_FALLBACKS];
    const int n_env = tema_env_fallbacks(tp, opts, env);
    for (int i = 0; i < n_env; i++)
        h = tema_key_mix_str(tema_key_mix_str(h, env[i].name), env[i].value ? env[i].value : "(unset)");
    return h;
}

/* Takes out of n (a clone of tp's options) what the key holds by content or not at all: path
 * options (their files are mixed by mix_inputs) and caches, in nested plugins too. Where a
 * checkout lies must not change a key: the same tags from /work/a and /work/b share a store. */
static void strip_locations(tema_cfg *n, const tema_plugin *tp, tema_registry *reg)
{
    for (uint32_t k = 0; n && n->type == TEMA_CFG_MAP && k < tp->n_options; k++) {
        const tema_option *o = &tp->options[k];
        size_t i = 0;
        if (!tema_cfg_child(n, o->name, &i)) continue;
        if (o->type == TEMA_OPT_PLUGIN) {
            const tema_cfg *sub = NULL;
            const tema_plugin *np = nested_plugin(o, n, reg, &sub);
            if (np && sub) strip_locations((tema_cfg *)sub, np, reg); /* sub lies inside n, our clone */
        } else if (o->type == TEMA_OPT_STRING && (tema_option_is_path(o->name) || is_cache(o))) {
            tema_cfg_free(tema_cfg_take(n, i));
        }
    }
}

uint64_t tema_key_mix_plugin(uint64_t h, const tema_plugin *tp, const tema_cfg *opts, tema_registry *reg)
{
    h = tema_key_mix_str(h, tp->name);
    h = tema_key_mix_str(h, tp->version);
    tema_cfg *kept = opts ? tema_cfg_clone(opts) : NULL;
    strip_locations(kept, tp, reg);
    char *json = kept ? tema_cfg_to_json(kept) : NULL;
    h = tema_key_mix_str(h, json ? json : opts ? "(out of memory)" : "");
    free(json);
    tema_cfg_free(kept);
    return mix_inputs(h, tp, opts, reg);
}

uint64_t tema_key_mix_backend(uint64_t h, const tema_cfg *root, tema_registry *reg)
{
    const tema_cfg *node = root ? tema_cfg_get(root, "backend") : NULL;
    const char *name = node ? tema_cfg_str(node, "plugin", NULL) : NULL;
    const tema_plugin *bp = name && reg ? tema_registry_find(reg, TEMA_KIND_BACKEND, name) : NULL;
    for (size_t i = 0; bp && i < bp->n_options; i++) {
        const tema_option *o = &bp->options[i];
        const char *v = tema_cfg_str(node, o->name, NULL);
        if (!strcmp(o->name, "threads") || !v || (o->default_value && !strcmp(v, o->default_value))) continue;
        h = tema_key_mix_str(tema_key_mix_str(h, o->name), v);
    }
    return h;
}
