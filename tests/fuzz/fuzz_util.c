/* tests/fuzz/fuzz_util.c - the harnesses' shared helpers (fuzz_util.h). */
#define _GNU_SOURCE
#include "fuzz_util.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "engine.h"
#include "host.h"
#include "registry.h"
#include "tema/backend.h"
#include "tema_static_plugins.h"

#define FZ_DECLARE_ENTRY(kind, name) const tema_plugin *tema_plugin_entry_##kind##_##name(const tema_host *host);
TEMA_STATIC_PLUGINS(FZ_DECLARE_ENTRY)
#undef FZ_DECLARE_ENTRY

static void die(const char *what, const char *why)
{
    fprintf(stderr, "fuzz harness: %s: %s\n", what, why);
    abort();
}

tema_registry *fz_registry(void)
{
    static tema_registry *reg;
    if (reg) return reg;
    reg = tema_registry_new(tema_host_get());
    tema_err err = {0};
#define FZ_ADD_ENTRY(kind, name)                                                                           \
    if (tema_registry_add_entry(reg, tema_plugin_entry_##kind##_##name, "builtin:" #kind "/" #name, &err) != \
        TEMA_OK)                                                                                           \
        die("registry", err.msg);
    TEMA_STATIC_PLUGINS(FZ_ADD_ENTRY)
#undef FZ_ADD_ENTRY
    return reg;
}

tema_registry *fz_cpu_registry(void)
{
    static void *backend;
    tema_registry *reg = fz_registry();
    if (backend) return reg;
    const tema_plugin *cpu = tema_registry_find(reg, TEMA_KIND_BACKEND, "cpu");
    if (!cpu) die("cpu backend", "not in the static plugins");
    const tema_backend_ops *be = cpu->ops;
    tema_cfg *opts = NULL;
    tema_err err = {0};
    if (tema_cfg_plugin_defaults("backend", "cpu", reg, &opts, &err) != TEMA_OK) die("cpu backend options", err.msg);
    if (be->init(tema_host_get(), opts, &backend, &err) != TEMA_OK) die("cpu backend", err.msg);
    tema_cfg_free(opts);
    tema_engine_set_backend(be, backend);
    return reg;
}

static char g_dir[256];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void rm_dir(void)
{
    if (g_dir[0]) nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fz_dir(void)
{
    if (g_dir[0]) return g_dir;
    /* memory-backed where there is one: every execution writes its input */
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/tema-fuzz-XXXXXX", tmp);
    if (!mkdtemp(g_dir)) die("mkdtemp", g_dir);
    atexit(rm_dir);
    return g_dir;
}

const char *fz_path(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", fz_dir(), name);
    return path;
}

const char *fz_write(const char *name, const uint8_t *data, size_t size)
{
    const char *path = fz_path(name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) die("cannot write", path);
    return path;
}

char *fz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) die("fz_strndup", "out of memory");
    if (size) memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

size_t fz_split(const uint8_t *data, size_t size, const char *sep, const uint8_t **start, size_t *len, size_t max)
{
    const size_t ls = strlen(sep);
    size_t n = 0;
    while (n + 1 < max) {
        const uint8_t *at = memmem(data, size, sep, ls);
        if (!at) break;
        start[n] = data;
        len[n++] = (size_t)(at - data);
        size -= (size_t)(at - data) + ls;
        data = at + ls;
    }
    start[n] = data;
    len[n++] = size;
    return n;
}
