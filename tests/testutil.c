/* tests/testutil.c - shared helpers for the Check suites. */
#include "testutil.h"
#include "host.h"
#include "tema_static_plugins.h"

#include <json-c/json.h>

#include "config.h"
#include "engine.h"
#include "registry.h"
#include "text_features.h"

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t r = fread(b, 1, (size_t)n, f);
    b[r] = '\0';
    fclose(f);
    return b;
}

const char *tu_data_dir(void)
{
    const char *d = getenv("TEMA_TEST_DATA");
    struct stat st;
    if (!d || !*d || stat(d, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL;
    return d;
}

const char *tu_data_path(const char *name)
{
    static char buf[4096];
    const char *d = tu_data_dir();
    struct stat st;
    if (!d) return NULL;
    snprintf(buf, sizeof buf, "%s/%s", d, name);
    return stat(buf, &st) == 0 ? buf : NULL;
}

static char tmp_roots[64][256];
static int n_tmp_roots;

static void cleanup_tmp(void)
{
    for (int i = 0; i < n_tmp_roots; i++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%.255s'", tmp_roots[i]);
        if (system(cmd) != 0) { /* best effort */ }
    }
}

const char *tu_tmpdir(void)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "/tmp/tema-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(buf));
    if (n_tmp_roots < 64) {
        if (n_tmp_roots == 0) atexit(cleanup_tmp);
        snprintf(tmp_roots[n_tmp_roots++], 256, "%s", buf);
    }
    return buf;
}

bool tu_exists(const char *dir, const char *name)
{
    char p[8400];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0;
}

void tu_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static int tema_with_env(const char *env, const char *args, char **out, char **errout)
{
    const char *exe = getenv("TEMA_EXE");
    ck_assert_msg(exe != NULL, "TEMA_EXE is not set (run through meson test)");
    char o[] = "/tmp/tema-out-XXXXXX", e[] = "/tmp/tema-err-XXXXXX";
    int fo = mkstemp(o), fe = mkstemp(e);
    close(fo);
    close(fe);
    size_t n = strlen(env) + strlen(exe) + strlen(args) + strlen(o) + strlen(e) + 32;
    char *cmd = malloc(n);
    snprintf(cmd, n, "%s'%s' %s >'%s' 2>'%s'", env, exe, args, o, e);
    int st = system(cmd);
    free(cmd);
    if (out) *out = read_all(o);
    if (errout) *errout = read_all(e);
    unlink(o);
    unlink(e);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int tu_tema(const char *args, char **out, char **errout) { return tema_with_env("", args, out, errout); }

int tu_tema_grid(const char *args, char **out, char **errout)
{
    return tema_with_env(TU_GRID_ENV, args, out, errout);
}

int tu_sh(const char *dir, const char *cmd, const char *logs)
{
    size_t n = strlen(dir) + strlen(cmd) + 32;
    char *full = malloc(n);
    snprintf(full, n, "cd '%s' && %s", dir, cmd);
    int st = system(full);
    free(full);
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (code != 0 && logs) {
        fprintf(stderr, "tu_sh: exit status %d from: %s\n", code, cmd);
        n = strlen(dir) + strlen(logs) + 200;
        char *show = malloc(n);
        snprintf(show, n,
                 "cd '%s' && for f in %s; do [ -f \"$f\" ] && { echo \"==> $f <==\"; tail -n 60 \"$f\"; }; "
                 "done >&2",
                 dir, logs);
        if (system(show) != 0) { /* best effort */ }
        free(show);
    }
    return code;
}

const char *tu_run_dir(const char *results, const char *name)
{
    static char buf[4096];
    char cmd[8800], line[4096];
    snprintf(cmd, sizeof cmd, "ls -d '%s/%s'/*/ 2>/dev/null", results, name);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    buf[0] = 0;
    int n = 0;
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = 0;
        size_t l = strlen(line);
        if (l && line[l - 1] == '/') line[l - 1] = 0;
        snprintf(buf, sizeof buf, "%s", line);
        n++;
    }
    pclose(p);
    ck_assert_msg(n == 1, "expected one run folder under %s/%s, found %d", results, name, n);
    return buf;
}

json_object *tu_json_load(const char *dir, const char *file)
{
    char p[8400];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    json_object *o = json_object_from_file(p);
    ck_assert_msg(o != NULL, "cannot parse %s", p);
    return o;
}

json_object *tu_json_get(json_object *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save)) {
        json_object *next = NULL;
        ck_assert_msg(o && json_object_object_get_ex(o, k, &next), "missing key '%s' of %s", k, path);
        o = next;
    }
    return o;
}

const char *tu_source_root(void)
{
    const char *s = getenv("TEMA_SOURCE_ROOT");
    return s ? s : ".";
}

const char *tu_build_root(void)
{
    const char *s = getenv("TEMA_BUILD_ROOT");
    return s ? s : ".";
}

bool tu_wait_for_line(const char *path, const char *needle, double seconds)
{
    for (int i = 0; i <= (int)(seconds * 10); i++) {
        FILE *f = fopen(path, "r");
        char line[4096];
        bool seen = false;
        while (f && !seen && fgets(line, sizeof line, f)) seen = strstr(line, needle) != NULL;
        if (f) fclose(f);
        if (seen) return true;
        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    }
    return false;
}

int tu_tema_interrupted(const char *errfile, const char *needle, bool leak_check, const char *const *args)
{
    const char *exe = getenv("TEMA_EXE");
    ck_assert_msg(exe != NULL, "TEMA_EXE is not set");
    const char *argv[64] = {exe};
    int n = 1;
    for (; args[n - 1] && n < 63; n++) argv[n] = args[n - 1];
    argv[n] = NULL;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (!freopen(errfile, "w", stderr) || !freopen("/dev/null", "w", stdout)) _exit(127);
        if (!leak_check) setenv("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0", 1);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    tu_wait_for_line(errfile, needle, 60);
    kill(pid, SIGINT);
    int ws = 0;
    waitpid(pid, &ws, 0);
    return ws;
}

/* Skipped cases are counted in a file: Check runs each case in a forked child. */
#define SKIP_LOG_ENV "TU_SKIP_LOG"

void tu_skip(const char *what, const char *fmt, ...)
{
    char why[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    fprintf(stderr, "SKIP %s: %s\n", what, why);
    const char *log = getenv(SKIP_LOG_ENV);
    FILE *f = log ? fopen(log, "a") : NULL;
    if (f) {
        fprintf(f, "%s\n", tcase_name() ? tcase_name() : what);
        fclose(f);
    }
}

/* Distinct case names in the skip log. */
static int count_skipped(const char *log)
{
    FILE *f = fopen(log, "r");
    if (!f) return 0;
    char line[512], seen[256][512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        bool dup = false;
        for (int i = 0; i < n && !dup; i++) dup = !strcmp(seen[i], line);
        if (!dup && n < 256) snprintf(seen[n++], sizeof seen[0], "%s", line);
    }
    fclose(f);
    return n;
}

int tu_run_suite(Suite *s)
{
    char log[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(log, sizeof log, "%s/tema-skipped-cases-%d.txt", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    unlink(log);
    setenv(SKIP_LOG_ENV, log, 1);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr), run = srunner_ntests_run(sr), skipped = count_skipped(log);
    srunner_free(sr);
    unlink(log);
    printf("cases: %d run, %d skipped\n", run, skipped);
    if (failed) return 1;
    return run > 0 && skipped >= run ? 77 : 0;
}

#define TU_DECLARE_ENTRY(kind, name) const tema_plugin *tema_plugin_entry_##kind##_##name(const tema_host *host);
TEMA_STATIC_PLUGINS(TU_DECLARE_ENTRY)

struct tema_registry *tu_registry(void)
{
    static tema_registry *reg;
    if (!reg) {
        reg = tema_registry_new(tema_host_get());
        tema_err err = {0};
#define TU_ADD_ENTRY(kind, name)                                                                          \
    ck_assert_msg(tema_registry_add_entry(reg, tema_plugin_entry_##kind##_##name, "builtin:" #kind "/" #name, \
                                          &err) == TEMA_OK, "%s", err.msg);
        TEMA_STATIC_PLUGINS(TU_ADD_ENTRY)
#undef TU_ADD_ENTRY
    }
    return reg;
}

struct tema_registry *tu_cpu_registry(void)
{
    static tema_registry *reg;
    static void *backend;
    if (reg) return reg;
    reg = tu_registry();
    const tema_plugin *cpu = tema_registry_find(reg, TEMA_KIND_BACKEND, "cpu");
    ck_assert_msg(cpu != NULL, "cpu backend not found (TEMA_PLUGIN_PATH=%s)", getenv("TEMA_PLUGIN_PATH"));
    const tema_backend_ops *be = cpu->ops;
    tema_err err = {0};
    tema_cfg *opts = tu_plugin_opts(cpu, NULL);
    ck_assert_msg(be->init(tema_host_get(), opts, &backend, &err) == TEMA_OK, "%s", err.msg);
    tema_cfg_free(opts);
    tema_engine_set_backend(be, backend);
    return reg;
}

struct tema_cfg *tu_plugin_opts(const struct tema_plugin *p, const char *extra)
{
    char text[8192] = "";
    size_t k = 0;
    for (uint32_t i = 0; i < p->n_options; i++) {
        const tema_option *o = &p->options[i];
        char key[128], line_key[130];
        snprintf(key, sizeof key, "%s:", o->name);
        snprintf(line_key, sizeof line_key, "\n%s", key); /* init_std: is not in pos_init_std: */
        if (!o->default_value || (extra && (!strncmp(extra, key, strlen(key)) || strstr(extra, line_key)))) continue;
        /* an empty default stays an empty string, not YAML null */
        k += (size_t)snprintf(text + k, sizeof text - k, *o->default_value ? "%s %s\n" : "%s \"%s\"\n", key,
                              o->default_value);
    }
    if (extra) k += (size_t)snprintf(text + k, sizeof text - k, "%s", extra);
    tema_cfg *c = NULL;
    tema_err err = {0};
    ck_assert_msg(tema_cfg_parse_string(k ? text : "{}\n", "<test>", &c, &err) == TEMA_OK, "%s: %s", p->name, err.msg);
    return c;
}

const char *tu_required_option(const struct tema_plugin *p)
{
    for (uint32_t i = 0; i < p->n_options; i++)
        if (!p->options[i].default_value) return p->options[i].name;
    return NULL;
}

const char *tu_minilm_dir(void)
{
    static char dir[4200];
    snprintf(dir, sizeof dir, "%s/.models/all-MiniLM-L6-v2", tu_source_root());
    return dir;
}

bool tu_have_minilm(const char *test)
{
    char f[4300];
    struct stat st;
    snprintf(f, sizeof f, "%s/model.safetensors", tu_minilm_dir());
    if (stat(f, &st) == 0) return true;
    tu_skip(test, "all-MiniLM-L6-v2 is not installed at %s; run .ci/install-deps", tu_minilm_dir());
    return false;
}

void tu_fresh_feature_store(void)
{
    static int k;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/features-%d", tu_tmpdir(), k++);
    tema_features_context(tu_cpu_registry(), NULL, dir);
}

void tu_free_tag_vocab(struct tema_tag_vocab *v)
{
    const tema_host *h = tema_host_get();
    for (int32_t t = 0; v->tags && t < v->n_tags; t++) h->free(v->tags[t]);
    h->free(v->tags);
    h->free(v->score);
    memset(v, 0, sizeof *v);
}

int64_t tu_check_param_grads(tema_params *p, double (*loss)(void *ctx), void *ctx, const char *who, int64_t *nonzero)
{
    int64_t checked = 0;
    *nonzero = 0;
    for (size_t i = 0; i < tema_params_n(p); i++) {
        tema_tensor *t = tema_params_at(p, i);
        if (!t->grad) continue;
        float *an = malloc(sizeof(float) * (size_t)t->size);
        ck_assert_ptr_nonnull(an);
        memcpy(an, t->grad, sizeof(float) * (size_t)t->size);
        for (int64_t j = 0; j < t->size; j++) {
            const float eps = 1e-3f, keep = t->data[j];
            t->data[j] = keep + eps;
            double up = loss(ctx);
            t->data[j] = keep - eps;
            double down = loss(ctx);
            t->data[j] = keep;
            double fd = (up - down) / (2.0 * eps);
            ck_assert_msg(fabs(fd - an[j]) <= 2e-3 + 3e-2 * fabs(fd),
                          "%s: d loss / d %s[%lld]: analytic %.6f, finite difference %.6f", who, t->name, (long long)j,
                          an[j], fd);
            checked++;
            *nonzero += fabs(fd) > 1e-4;
        }
        free(an);
    }
    return checked;
}
