/* core/registry.c - plugin discovery and loading.
 *
 * The core knows plugin kinds, never plugin names: everything it learns about a
 * plugin comes from the descriptor its entry symbol returns. A broken plugin is
 * reported once (file + reason) and skipped; the others still load. */
#include "registry.h"
#include "util.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tema/backend.h"
#include "tema_build_config.h"

typedef struct loaded {
    tema_plugin_info info;
    void *handle;      /* dlopen handle, NULL for static entries */
} loaded;

struct tema_registry {
    const tema_host *host;
    loaded *items;
    size_t n, cap;
    char **scanned;    /* real paths of folders already scanned */
    size_t n_scanned;
    char **errors;
    size_t n_errors, cap_errors;
    char names_buf[4096];
};

static const char *const kind_names[TEMA_KIND_COUNT] = {"backend",  "encoder", "attention", "tag_select",
                                                        "tag_repr", "tagger",  "loss",      "text_features"};

/* Smallest ops struct a plugin of each kind may export: the size before the first field that a
 * later minor ABI appended, so a plugin built against older headers still loads. */
static size_t min_ops_size(tema_kind k)
{
    switch (k) {
    case TEMA_KIND_BACKEND: return TEMA_BACKEND_OPS_MIN_SIZE;
    case TEMA_KIND_ENCODER: return sizeof(tema_encoder_ops);
    case TEMA_KIND_ATTENTION: return offsetof(tema_attention_ops, sequence_weights);
    case TEMA_KIND_TAG_SELECT: return offsetof(tema_tag_select_ops, select_with_host);
    case TEMA_KIND_TAG_REPR: return offsetof(tema_tag_repr_ops, weights_with_host);
    case TEMA_KIND_TAGGER: return offsetof(tema_tagger_ops, create_with_host);
    case TEMA_KIND_LOSS: return sizeof(tema_loss_ops);
    case TEMA_KIND_TEXT_FEATURES: return sizeof(tema_text_features_ops);
    default: return 0;
    }
}

/* An ops field the plugin's ops_size covers, or NULL. */
#define OPS_FIELD(p, type, field)                                                                     \
    ((p)->ops_size >= offsetof(type, field) + sizeof(void *) ? (const void *)((const type *)(p)->ops)->field : NULL)

/* The name of a required entry the ops table leaves NULL, or NULL when every one is there
 * (the core calls them without checking). Backends check their own (tema_backend_ops). */
static const char *missing_op(const tema_plugin *p)
{
#define NEED(type, field)                                                                             \
    if (!OPS_FIELD(p, type, field)) return #field
#define NEED_ONE(type, a, b)                                                                          \
    if (!OPS_FIELD(p, type, a) && !OPS_FIELD(p, type, b)) return #a " (or " #b ")"
    switch (p->kind) {
    case TEMA_KIND_ENCODER:
        NEED(tema_encoder_ops, create); NEED(tema_encoder_ops, forward); NEED(tema_encoder_ops, dim);
        NEED(tema_encoder_ops, modality); NEED(tema_encoder_ops, destroy);
        break;
    case TEMA_KIND_ATTENTION:
        NEED(tema_attention_ops, create); NEED(tema_attention_ops, forward); NEED(tema_attention_ops, destroy);
        break;
    case TEMA_KIND_LOSS:
        NEED(tema_loss_ops, create); NEED(tema_loss_ops, forward); NEED(tema_loss_ops, destroy);
        break;
    case TEMA_KIND_TAG_SELECT: NEED_ONE(tema_tag_select_ops, select_with_host, select); break;
    case TEMA_KIND_TAG_REPR: NEED_ONE(tema_tag_repr_ops, weights_with_host, weights); break;
    case TEMA_KIND_TAGGER:
        NEED_ONE(tema_tagger_ops, create_with_host, create); NEED(tema_tagger_ops, tag);
        NEED(tema_tagger_ops, destroy);
        break;
    case TEMA_KIND_TEXT_FEATURES:
        NEED(tema_text_features_ops, create); NEED(tema_text_features_ops, dim);
        NEED(tema_text_features_ops, compute); NEED(tema_text_features_ops, destroy);
        break;
    default: break;
    }
    return NULL;
#undef NEED
#undef NEED_ONE
}

const char *tema_kind_name(tema_kind kind)
{
    return (unsigned)kind < TEMA_KIND_COUNT ? kind_names[kind] : "unknown";
}

int tema_kind_from_name(const char *name)
{
    for (int k = 0; k < TEMA_KIND_COUNT; k++)
        if (!strcmp(name, kind_names[k])) return k;
    return -1;
}

tema_registry *tema_registry_new(const tema_host *host)
{
    tema_registry *r = calloc(1, sizeof(tema_registry));
    if (r) r->host = host;
    return r;
}

void tema_registry_free(tema_registry *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) {
        free((char *)r->items[i].info.file);
        if (r->items[i].handle) dlclose(r->items[i].handle);
    }
    for (size_t i = 0; i < r->n_errors; i++) free(r->errors[i]);
    for (size_t i = 0; i < r->n_scanned; i++) free(r->scanned[i]);
    free(r->scanned);
    free(r->items);
    free(r->errors);
    free(r);
}

__attribute__((format(printf, 3, 4))) static tema_status record_error(tema_registry *r, tema_err *err, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->n_errors == r->cap_errors) {
        size_t cap = r->cap_errors ? 2 * r->cap_errors : 8;
        char **e = realloc(r->errors, cap * sizeof *e);
        if (e) {
            r->errors = e;
            r->cap_errors = cap;
        }
    }
    if (r->n_errors < r->cap_errors) r->errors[r->n_errors++] = strdup(msg);
    return tema_fail(err, TEMA_EABI, "%s", msg);
}

static bool valid_name(const char *s)
{
    if (!s || !*s || strlen(s) > 64) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) return false;
    return true;
}

/* Checks in the order that makes each later read safe. */
static tema_status check_descriptor(tema_registry *r, const tema_plugin *p, const char *file, tema_err *err)
{
    if (!p) return record_error(r, err, "%s: entry point returned no descriptor", file);
    if (p->abi_major != TEMA_ABI_MAJOR)
        return record_error(r, err, "%s: ABI mismatch: plugin built for ABI %u.%u, this tema speaks %d.%d (hint: rebuild the plugin against these headers)",
                            file, p->abi_major, p->abi_minor, TEMA_ABI_MAJOR, TEMA_ABI_MINOR);
    if (p->abi_minor > TEMA_ABI_MINOR)
        return record_error(r, err, "%s: plugin needs ABI %u.%u but this tema offers only %d.%d (hint: upgrade tema)",
                            file, p->abi_major, p->abi_minor, TEMA_ABI_MAJOR, TEMA_ABI_MINOR);
    if (p->struct_size < sizeof(tema_plugin))
        return record_error(r, err, "%s: descriptor is %u bytes, expected at least %zu (hint: rebuild the plugin)", file,
                            p->struct_size, sizeof(tema_plugin));
    if ((unsigned)p->kind >= TEMA_KIND_COUNT)
        return record_error(r, err, "%s: unknown plugin kind %d", file, (int)p->kind);
    if (!valid_name(p->name))
        return record_error(r, err, "%s: invalid plugin name '%s' (use [a-z0-9_]+)", file, p->name ? p->name : "(null)");
    if (!p->version || !p->description)
        return record_error(r, err, "%s: plugin '%s' has no version or description", file, p->name);
    if (!p->ops || p->ops_size < min_ops_size(p->kind))
        return record_error(r, err, "%s: %s plugin '%s' exports an ops table of %u bytes, expected at least %zu", file,
                            tema_kind_name(p->kind), p->name, p->ops_size, min_ops_size(p->kind));
    const char *missing = missing_op(p);
    if (missing)
        return record_error(r, err, "%s: %s plugin '%s' leaves its required op '%s' NULL (hint: set it in the ops "
                            "table)", file, tema_kind_name(p->kind), p->name, missing);
    if (p->n_options && !p->options)
        return record_error(r, err, "%s: plugin '%s' declares %u options but no option table", file, p->name, p->n_options);
    for (uint32_t i = 0; i < p->n_options; i++)
        if (!valid_name(p->options[i].name) || !strcmp(p->options[i].name, "plugin") ||
            ((p->options[i].type == TEMA_OPT_ENUM || p->options[i].type == TEMA_OPT_PLUGIN) && !p->options[i].choices) ||
            (p->options[i].type == TEMA_OPT_PLUGIN && tema_kind_from_name(p->options[i].choices) < 0))
            return record_error(r, err, "%s: plugin '%s' option %u is invalid (names are [a-z0-9_]+, 'plugin' is reserved, enums need choices, plugin options a known kind)",
                                file, p->name, i);
    const tema_plugin *dup = tema_registry_find(r, p->kind, p->name);
    if (dup) {
        const char *first = "?";
        for (size_t i = 0; i < r->n; i++)
            if (r->items[i].info.plugin == dup) first = r->items[i].info.file;
        return record_error(r, err, "%s: duplicate %s plugin '%s' (already loaded from %s; this one is ignored)", file,
                            tema_kind_name(p->kind), p->name, first);
    }
    return TEMA_OK;
}

static tema_status add(tema_registry *r, const tema_plugin *p, const char *file, void *handle, tema_err *err)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        loaded *it = realloc(r->items, cap * sizeof *it);
        if (!it) return tema_fail(err, TEMA_ENOMEM, "out of memory registering plugins");
        r->items = it;
        r->cap = cap;
    }
    char *f = strdup(file);
    if (!f) return tema_fail(err, TEMA_ENOMEM, "out of memory registering plugins");
    r->items[r->n++] = (loaded){.info = {.plugin = p, .file = f}, .handle = handle};
    return TEMA_OK;
}

tema_status tema_registry_add_entry(tema_registry *r, tema_plugin_entry_fn entry, const char *label, tema_err *err)
{
    const tema_plugin *p = entry(r->host);
    tema_status st = check_descriptor(r, p, label, err);
    return st != TEMA_OK ? st : add(r, p, label, NULL, err);
}

/* Whether path is a whole 64-bit ELF shared object: the dynamic loader maps a file without
 * checking that it is complete, and touching a page past the end of a truncated one kills the
 * process (SIGBUS), so every part the headers point to must lie inside the file. Fills why. */
static bool elf_is_complete(const char *path, char *why, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        snprintf(why, cap, "cannot open: %s", strerror(errno));
        if (fd >= 0) close(fd);
        return false;
    }
    const uint64_t size = (uint64_t)sb.st_size;
    Elf64_Ehdr eh;
    bool ok = pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh;
    if (!ok || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
        snprintf(why, cap, "not an ELF file (%llu bytes)", (unsigned long long)size);
        close(fd);
        return false;
    }
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_type != ET_DYN) {
        snprintf(why, cap, "not a 64-bit shared object");
        close(fd);
        return false;
    }
    uint64_t need = (uint64_t)eh.e_phoff + (uint64_t)eh.e_phnum * eh.e_phentsize;
    if (eh.e_shoff) need = need > eh.e_shoff + (uint64_t)eh.e_shnum * eh.e_shentsize
                               ? need : eh.e_shoff + (uint64_t)eh.e_shnum * eh.e_shentsize;
    for (uint16_t i = 0; ok && i < eh.e_phnum && eh.e_phentsize == sizeof(Elf64_Phdr); i++) {
        Elf64_Phdr ph;
        ok = pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint64_t)i * sizeof ph)) == (ssize_t)sizeof ph;
        if (ok && ph.p_type == PT_LOAD && ph.p_offset + ph.p_filesz > need) need = ph.p_offset + ph.p_filesz;
    }
    close(fd);
    if (!ok || need > size) {
        snprintf(why, cap, "truncated: %llu bytes, its headers describe %llu (an interrupted copy or build?)",
                 (unsigned long long)size, (unsigned long long)need);
        return false;
    }
    return true;
}

tema_status tema_registry_load_file(tema_registry *r, const char *path, tema_err *err)
{
    char why[256];
    if (!elf_is_complete(path, why, sizeof why)) return record_error(r, err, "%s: cannot load: %s", path, why);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) return record_error(r, err, "%s: cannot load: %s", path, dlerror());
    tema_plugin_entry_fn entry;
    /* dlsym returns void*; the union avoids the object-to-function pointer cast warning. */
    union {
        void *obj;
        tema_plugin_entry_fn fn;
    } u = {.obj = dlsym(h, TEMA_PLUGIN_ENTRY_SYMBOL)};
    entry = u.fn;
    if (!entry) {
        dlclose(h);
        return record_error(r, err, "%s: missing entry symbol '%s' (hint: define it with TEMA_PLUGIN_DEFINE)", path,
                            TEMA_PLUGIN_ENTRY_SYMBOL);
    }
    const tema_plugin *p = entry(r->host);
    tema_status st = check_descriptor(r, p, path, err);
    if (st == TEMA_OK) st = add(r, p, path, h, err);
    if (st != TEMA_OK) dlclose(h);
    /* A plugin that ran may have started threads (OpenMP, OpenBLAS) in libraries only it
     * pulled in; unmapping them under those threads crashes the host at exit, so a loaded
     * plugin stays mapped (GStreamer never unloads plugins either). */
    else if (!dlopen(path, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE))
        return record_error(r, err, "%s: cannot pin: %s", path, dlerror());
    return st;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The same folder can be reached twice (TEMA_PLUGIN_PATH naming the build tree, a
 * link): scanning it again would report every plugin in it as a duplicate. */
static bool already_scanned(tema_registry *r, const char *dir)
{
    char *real = realpath(dir, NULL);
    if (!real) return false;
    for (size_t i = 0; i < r->n_scanned; i++)
        if (!strcmp(r->scanned[i], real)) {
            free(real);
            return true;
        }
    char **s = realloc(r->scanned, (r->n_scanned + 1) * sizeof *s);
    if (!s) {
        free(real);
        return false;
    }
    r->scanned = s;
    r->scanned[r->n_scanned++] = real;
    return false;
}

static void scan_dir(tema_registry *r, const char *dir)
{
    if (already_scanned(r, dir)) return;
    DIR *d = opendir(dir);
    if (!d) return;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".so") != 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) break;
            names = nn;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    /* Sorted, so that "first found wins" for duplicates is the same on every machine. */
    if (n > 1) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        tema_registry_load_file(r, path, NULL);
        free(names[i]);
    }
    free(names);
}

void tema_registry_scan(tema_registry *r)
{
    const char *env = getenv("TEMA_PLUGIN_PATH");
    if (env && *env) {
        char *copy = strdup(env), *save = NULL;
        for (char *tok = strtok_r(copy, ":", &save); tok; tok = strtok_r(NULL, ":", &save))
            if (*tok) scan_dir(r, tok);
        free(copy);
    }
    /* The binary's own plugins: plugins/ beside it in the build tree (meson puts both in the
     * build root) or one folder up, <bindir>/../<libdir>/tema/plugins in an install wherever it was moved to;
     * the configured prefix only when neither exists (else each plugin would load twice). */
    char exe[PATH_MAX], dir[PATH_MAX + 64] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
    if (slash) {
        *slash = '\0';
        snprintf(dir, sizeof dir, "%s/plugins", exe);
        /* build/tests/bench_* sit one folder below the build root's plugins/ */
        if (!tema_is_dir(dir)) snprintf(dir, sizeof dir, "%s/../plugins", exe);
        if (!tema_is_dir(dir) && *TEMA_PLUGIN_DIR_FROM_BIN)
            snprintf(dir, sizeof dir, "%s/%s", exe, TEMA_PLUGIN_DIR_FROM_BIN);
        if (!tema_is_dir(dir)) dir[0] = '\0';
    }
    if (!dir[0] && tema_is_dir(TEMA_INSTALL_PLUGIN_DIR)) snprintf(dir, sizeof dir, "%s", TEMA_INSTALL_PLUGIN_DIR);
    if (dir[0]) scan_dir(r, dir);
}

size_t tema_registry_count(const tema_registry *r) { return r->n; }
const tema_plugin_info *tema_registry_at(const tema_registry *r, size_t i) { return i < r->n ? &r->items[i].info : NULL; }
size_t tema_registry_error_count(const tema_registry *r) { return r->n_errors; }
const char *tema_registry_error_at(const tema_registry *r, size_t i) { return i < r->n_errors ? r->errors[i] : NULL; }

const tema_plugin *tema_registry_find(const tema_registry *r, tema_kind kind, const char *name)
{
    for (size_t i = 0; i < r->n; i++) {
        const tema_plugin *p = r->items[i].info.plugin;
        if (p->kind == kind && !strcmp(p->name, name)) return p;
    }
    return NULL;
}

const char *tema_registry_names(tema_registry *r, tema_kind kind)
{
    size_t used = 0;
    r->names_buf[0] = '\0';
    for (size_t i = 0; i < r->n; i++) {
        const tema_plugin *p = r->items[i].info.plugin;
        if (p->kind != kind) continue;
        int w = snprintf(r->names_buf + used, sizeof r->names_buf - used, "%s%s", used ? ", " : "", p->name);
        if (w < 0 || (size_t)w >= sizeof r->names_buf - used) break;
        used += (size_t)w;
    }
    if (!used) snprintf(r->names_buf, sizeof r->names_buf, "(none found: is TEMA_PLUGIN_PATH right?)");
    return r->names_buf;
}

tema_status tema_registry_find_plugin(tema_registry *reg, tema_kind kind, const char *name, const char *where,
                                      size_t ops_size, const tema_plugin **out, tema_err *err)
{
    if (!name || !*name)
        return tema_fail(err, TEMA_EINVAL, "config %s: no plugin named; hint: write `plugin: NAME` (available: %s)",
                         where, tema_registry_names(reg, kind));
    const tema_plugin *p = tema_registry_find(reg, kind, name);
    if (!p)
        return tema_fail(err, TEMA_ENOTFOUND, "config %s: no %s plugin '%s'; hint: available: %s", where,
                         tema_kind_name(kind), name, tema_registry_names(reg, kind));
    if (p->ops_size < ops_size || !p->ops)
        return tema_fail(err, TEMA_EABI, "%s plugin '%s' has an ops table of %u bytes, this tema needs %zu; hint: "
                                         "rebuild the plugin against this tema",
                         tema_kind_name(kind), name, p->ops_size, ops_size);
    *out = p;
    return TEMA_OK;
}

static int cmp_info(const void *a, const void *b)
{
    const tema_plugin *x = (*(const tema_plugin_info *const *)a)->plugin;
    const tema_plugin *y = (*(const tema_plugin_info *const *)b)->plugin;
    if (x->kind != y->kind) return (int)x->kind - (int)y->kind;
    return strcmp(x->name, y->name);
}

void tema_registry_print(const tema_registry *r, FILE *out)
{
    const tema_plugin_info **v = malloc((r->n + 1) * sizeof *v);
    if (!v) return;
    for (size_t i = 0; i < r->n; i++) v[i] = &r->items[i].info;
    qsort(v, r->n, sizeof *v, cmp_info);
    fprintf(out, "%-10s  %-16s  %-8s  %-60s  %s\n", "KIND", "NAME", "VERSION", "DESCRIPTION", "FILE");
    for (size_t i = 0; i < r->n; i++) {
        const tema_plugin *p = v[i]->plugin;
        fprintf(out, "%-10s  %-16s  %-8s  %-60s  %s\n", tema_kind_name(p->kind), p->name, p->version, p->description,
                v[i]->file);
    }
    free(v);
}

static const char *opt_type_name(tema_opt_type t)
{
    static const char *const n[] = {"int", "float", "bool", "string", "enum", "float list", "string list", "plugin"};
    return (unsigned)t < sizeof n / sizeof n[0] ? n[t] : "?";
}

tema_status tema_registry_describe(const tema_registry *r, const char *name, FILE *out, tema_err *err)
{
    /* NAME or KIND/NAME (names are unique within a kind only). */
    int want_kind = -1;
    const char *slash = strchr(name, '/');
    char kind_buf[32];
    if (slash && (size_t)(slash - name) < sizeof kind_buf) {
        memcpy(kind_buf, name, (size_t)(slash - name));
        kind_buf[slash - name] = '\0';
        want_kind = tema_kind_from_name(kind_buf);
        if (want_kind < 0) return tema_fail(err, TEMA_ENOTFOUND, "unknown plugin kind '%s'", kind_buf);
        name = slash + 1;
    }
    int shown = 0;
    for (size_t i = 0; i < r->n; i++) {
        const tema_plugin *p = r->items[i].info.plugin;
        if (strcmp(p->name, name) != 0 || (want_kind >= 0 && (int)p->kind != want_kind)) continue;
        if (shown++) fputc('\n', out);
        fprintf(out, "%s/%s %s - %s\n  file: %s\n", tema_kind_name(p->kind), p->name, p->version, p->description,
                r->items[i].info.file);
        if (!p->n_options) fprintf(out, "  options: none\n");
        else fprintf(out, "  options:\n");
        for (uint32_t k = 0; k < p->n_options; k++) {
            const tema_option *o = &p->options[k];
            char range[160] = "";
            if (o->type == TEMA_OPT_ENUM) snprintf(range, sizeof range, " one of %s", o->choices);
            else if (o->type == TEMA_OPT_PLUGIN) snprintf(range, sizeof range, " a %s plugin", o->choices);
            else if ((o->type == TEMA_OPT_INT || o->type == TEMA_OPT_FLOAT) && o->min <= o->max)
                snprintf(range, sizeof range, " in [%g, %g]", o->min, o->max);
            fprintf(out, "    %-16s %-11s default %-10s%s\n      %s\n", o->name, opt_type_name(o->type),
                    o->default_value ? o->default_value : "(required)", range, o->help ? o->help : "");
        }
    }
    if (!shown) {
        char avail[2048] = "";
        size_t used = 0;
        for (size_t i = 0; i < r->n && used < sizeof avail - 80; i++) {
            const tema_plugin *p = r->items[i].info.plugin;
            used += (size_t)snprintf(avail + used, sizeof avail - used, "%s%s/%s", used ? ", " : "",
                                     tema_kind_name(p->kind), p->name);
        }
        return tema_fail(err, TEMA_ENOTFOUND, "no plugin named '%s' (available: %s)", name, used ? avail : "none");
    }
    return TEMA_OK;
}
