/* tests/openai_fixture.c - see openai_fixture.h. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "openai_fixture.h"
#include "host.h"

const char *const g_titles[N_ITEMS] = {
    "Spicy Grilled Chicken Wings", "Sweet Baked Apple Pie", NULL, "Vegan Spicy Curry", "Plain White Rice", "",
    "Grilled Vegan Burger, Sweet & Smoky", "Baked Sweet Potato Fries"};
const char *const g_voted[5] = {"grilled", "vegan", "spicy", "sweet", "baked"};

/* ---------------- the local server ---------------- */


bool have_python(void) { return system("command -v python3 >/dev/null 2>&1") == 0; }


void server_start(server *s)
{
    snprintf(s->dir, sizeof s->dir, "%s", tu_tmpdir());
    /* A proxy from the environment must not sit between the tagger and 127.0.0.1. */
    setenv("no_proxy", "127.0.0.1,localhost", 1);
    setenv("NO_PROXY", "127.0.0.1,localhost", 1);
    char script[4096], port_file[512];
    snprintf(script, sizeof script, "%s/tests/llm_server.py", tu_source_root());
    snprintf(port_file, sizeof port_file, "%s/port", s->dir);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive a failed test */
        execlp("python3", "python3", script, s->dir, (char *)NULL);
        _exit(127);
    }
    s->pid = pid;
    for (int i = 0; i < 400; i++) { /* up to 20 s on a busy machine */
        FILE *f = fopen(port_file, "r");
        int port = 0;
        if (f) {
            int got = fscanf(f, "%d", &port);
            fclose(f);
            if (got == 1 && port > 0) {
                snprintf(s->endpoint, sizeof s->endpoint, "http://127.0.0.1:%d/v1", port);
                return;
            }
        }
        int status;
        ck_assert_msg(waitpid(pid, &status, WNOHANG) == 0, "llm_server.py exited early (status %d)", status);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    ck_abort_msg("llm_server.py did not write %s", port_file);
}

void server_stop(server *s)
{
    if (s->pid <= 0) return;
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

void server_scenario(const server *s, const char *json)
{
    char tmp[600], path[600];
    snprintf(tmp, sizeof tmp, "%s/scenario.json.tmp", s->dir);
    snprintf(path, sizeof path, "%s/scenario.json", s->dir);
    tu_write(tmp, json);
    ck_assert_int_eq(rename(tmp, path), 0);
}

/* The server's counters (caller puts). */
json_object *server_stats(const server *s)
{
    char path[600];
    snprintf(path, sizeof path, "%s/stats.json", s->dir);
    json_object *o = json_object_from_file(path);
    return o ? o : json_tokener_parse("{\"requests\": 0}");
}

int64_t stat_int(const server *s, const char *key)
{
    json_object *o = server_stats(s), *v;
    int64_t n = json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
    json_object_put(o);
    return n;
}

int64_t stat_failures(const server *s, const char *kind)
{
    json_object *o = server_stats(s), *f, *v;
    int64_t n = json_object_object_get_ex(o, "failures", &f) && json_object_object_get_ex(f, kind, &v)
                    ? json_object_get_int64(v) : 0;
    json_object_put(o);
    return n;
}

/* o at a dot-separated path of object keys ("a.b.c"), or NULL. */
json_object *jget(json_object *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); o && k; k = strtok_r(NULL, ".", &save))
        if (!json_object_object_get_ex(o, k, &o)) o = NULL;
    return o;
}

/* How many requests of a kind carried a response_format type ("score:json_schema"). */
int64_t stat_format(const server *s, const char *key)
{
    json_object *o = server_stats(s), *v = jget(o, "formats");
    int64_t n = v && json_object_object_get_ex(v, key, &v) ? json_object_get_int64(v) : 0;
    json_object_put(o);
    return n;
}

/* ---------------- the plugin ---------------- */

const tema_plugin *openai_plugin(void)
{
    static tema_registry *reg;
    if (!reg) {
        reg = tema_registry_new(tema_host_get());
        tema_registry_scan(reg);
    }
    const tema_plugin *p = tema_registry_find(reg, TEMA_KIND_TAGGER, "openai");
    ck_assert_msg(p != NULL, "tagger openai not found (TEMA_PLUGIN_PATH=%s)", getenv("TEMA_PLUGIN_PATH"));
    return p;
}

/* Options: every default, then the fixture's settings, then `extra` ("key: value" lines);
 * a later line replaces an earlier one with the same key. */
tema_cfg *make_opts(const char *endpoint, const char *cache_dir, const char *extra)
{
    const tema_plugin *p = openai_plugin();
    char all[8192];
    size_t k = 0;
    for (uint32_t i = 0; i < p->n_options; i++)
        k += (size_t)snprintf(all + k, sizeof all - k, "%s: %s\n", p->options[i].name, p->options[i].default_value);
    snprintf(all + k, sizeof all - k,
             "endpoint: \"%s\"\nmodel: test-model\ncache_dir: \"%s\"\nprompt_dir: \"%s/experiments/prompts\"\n"
             "votes: 3\nn_tags: 5\nbatch: 2\ntimeout_s: 5\nretries: 2\nbackoff_ms: 1\nconcurrency: 4\n%s",
             endpoint, cache_dir, tu_source_root(), extra ? extra : "");
    char *lines[128];
    int n = 0;
    for (char *save = NULL, *line = strtok_r(all, "\n", &save); line && n < 128; line = strtok_r(NULL, "\n", &save)) {
        size_t key_len = strcspn(line, ":");
        int at = n;
        for (int q = 0; q < n; q++)
            if (!strncmp(lines[q], line, key_len + 1)) at = q;
        lines[at] = line;
        if (at == n) n++;
    }
    char text[8192];
    k = 0;
    for (int q = 0; q < n; q++) k += (size_t)snprintf(text + k, sizeof text - k, "%s\n", lines[q]);
    tema_cfg *c = NULL;
    tema_err err = {0};
    ck_assert_msg(tema_cfg_parse_string(text, "<test>", &c, &err) == TEMA_OK, "%s\n%s", err.msg, text);
    return c;
}


void result_free(result *r)
{
    const tema_host *h = tema_host_get();
    for (int32_t k = 0; k < r->vocab.n_tags; k++) h->free(r->vocab.tags[k]);
    h->free(r->vocab.tags);
    h->free(r->vocab.score);
    free(r->log);
    *r = (result){0};
}

/* create + tag + destroy, capturing stderr. */
result run_tagger(const char *endpoint, const char *cache_dir, const char *extra)
{
    return run_tagger_on(endpoint, cache_dir, extra, g_titles, N_ITEMS, "Food");
}

result run_tagger_on(const char *endpoint, const char *cache_dir, const char *extra, const char *const *titles,
                     int64_t n_items, const char *domain)
{
    result r = {0};
    tema_cfg *opts = make_opts(endpoint, cache_dir, extra);
    const tema_tagger_ops *ops = openai_plugin()->ops;
    char log_path[] = "/tmp/tema-openai-log-XXXXXX";
    int log_fd = mkstemp(log_path);
    ck_assert_int_ge(log_fd, 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(log_fd, 2);
    void *self = NULL;
    r.st = tema_tagger_create(openai_plugin(), opts, domain, &self, &r.err);
    if (r.st == TEMA_OK) {
        r.st = ops->tag(self, titles, n_items, &r.vocab, &r.err);
        ops->destroy(self);
    }
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fdopen(log_fd, "r");
    fseek(f, 0, SEEK_SET);
    size_t cap = 1 << 20, n;
    r.log = calloc(cap + 1, 1);
    n = fread(r.log, 1, cap, f);
    r.log[n] = '\0';
    fclose(f);
    unlink(log_path);
    fputs(r.log, stderr); /* keep it visible in the test log */
    tema_cfg_free(opts);
    return r;
}

/* The plugin's one summary line (fails the test when there is not exactly one). */
const char *summary_line(const result *r)
{
    const char *at = strstr(r->log, "summary: ");
    ck_assert_msg(at != NULL, "no summary line in the log:\n%s", r->log);
    ck_assert_msg(!strstr(at + 1, "summary: "), "more than one summary line:\n%s", r->log);
    static char line[2048];
    snprintf(line, sizeof line, "%.*s", (int)strcspn(at, "\n"), at);
    return line;
}

int count_occurrences(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* The server's rule, computed independently here. */
float expected_score(int item, const char *tag)
{
    const char *title = g_titles[item];
    if (!title || !strcasestr(title, tag)) return 0;
    return (float)(10 + (strlen(title) + strlen(tag)) % 90);
}

void assert_voted(const tema_tag_vocab *v)
{
    ck_assert_int_eq(v->n_tags, 5);
    for (int k = 0; k < 5; k++) ck_assert_str_eq(v->tags[k], g_voted[k]);
}

/* Rows of items in `skip` (bit mask) must be all zero; every other row as the server says. */
void assert_scores(const tema_tag_vocab *v, unsigned zero_mask)
{
    for (int i = 0; i < N_ITEMS; i++)
        for (int32_t k = 0; k < v->n_tags; k++) {
            float want = (zero_mask >> i) & 1 ? 0.0f : expected_score(i, v->tags[k]);
            ck_assert_msg(v->score[(size_t)i * (size_t)v->n_tags + (size_t)k] == want, "item %d tag %s: %g, expected %g",
                          i, v->tags[k], v->score[(size_t)i * (size_t)v->n_tags + (size_t)k], want);
        }
}

int count_cache_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len > 5 && !strcmp(e->d_name + len - 5, ".json")) n++;
        ck_assert_msg(!strstr(e->d_name, ".tmp"), "temporary file left in the cache: %s", e->d_name);
    }
    closedir(d);
    return n;
}

bool cache_contains(const char *dir, const char *needle)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "grep -rqF '%s' '%s'", needle, dir);
    return system(cmd) == 0;
}

char *fresh_dir(const char *name)
{
    static char buf[4][512];
    static int at;
    char *b = buf[at++ % 4];
    snprintf(b, 512, "%s/%s", tu_tmpdir(), name);
    return b;
}
