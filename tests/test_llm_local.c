/* tests/test_llm_local.c - the `openai` tagger against a real LLM: llama.cpp's server with
 * SmolLM2-135M-Instruct, started by tools/llm-server (which .ci/install-deps builds into
 * .llm/). Real food-kitchen titles (tema's synthetic ones where ../shared/data is absent), 40
 * per domain, one item per request with
 * `scoring: choose`, the protocol a 135M model answers usefully (README, "A local LLM").
 *
 * Without a built server the suite prints SKIP with the reason, unless TEMA_REQUIRE_LLM=1
 * (set by .ci/run), where a missing server fails: on the project's machines it must run.
 * The server is started once for the suite and stopped by its PID at exit, also when a test
 * fails (the script's own trap stops llama-server; PR_SET_PDEATHSIG covers a killed test). */
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "openai_fixture.h"
#include "stop.h"

#define N_TITLES 40
#define SECRET "sk-tema-test-9f3c1e7d"

static char g_items[2][N_TITLES][512];
static const char *g_titles_of[2][N_TITLES];
static const char *g_domain[2] = {"food", "kitchen"};
static pid_t g_script = -1;
static FILE *g_script_out; /* kept open: the script must never write into a closed pipe */
static char g_endpoint[512];

/* The options of the runs here: lexical's tag names (a 135M model cannot name a domain's tags:
 * it copies the prompt's example or repeats one word; README), one item per request. */
static char g_opts[2048];
static const char *opts(void)
{
    snprintf(g_opts, sizeof g_opts,
             "model: smollm2\ntag_list: vocabulary\nvocab_dir: \"%s/experiments/tags\"\nscoring: choose\nchoose: 3\n"
             "batch: 1\nconcurrency: 2\ntimeout_s: 120\nretries: 2\nmax_tokens: 256\nprogress_s: 0\n"
             "api_key_env: TEMA_LLM_API_KEY\n",
             tu_source_root());
    return g_opts;
}

static bool server_built(char *why, size_t size)
{
    const char *home = getenv("TEMA_LLM_HOME");
    char bin[1024];
    snprintf(bin, sizeof bin, "%s/build/bin/llama-server", home ? home : "");
    if (!home) snprintf(bin, sizeof bin, "%s/.llm/build/bin/llama-server", tu_source_root());
    if (access(bin, X_OK) == 0) return true;
    snprintf(why, size, "%s is not built (run tools/llm-server build; it needs cmake, g++ and PyPI)", bin);
    return false;
}

static void stop_server(void)
{
    if (g_script <= 0) return;
    kill(g_script, SIGTERM);
    waitpid(g_script, NULL, 0);
    g_script = -1;
    if (g_script_out) fclose(g_script_out);
    g_script_out = NULL;
}

/* Starts tools/llm-server and reads its "endpoint:" line; false with `why` when it cannot. */
static bool start_server(char *why, size_t size)
{
    int fd[2];
    if (pipe(fd)) return snprintf(why, size, "pipe failed"), false;
    char script[1024];
    snprintf(script, sizeof script, "%s/tools/llm-server", tu_source_root());
    pid_t pid = fork();
    if (pid < 0) return snprintf(why, size, "fork failed"), false;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execl(script, script, "--ctx", "4096", "--parallel", "2", (char *)NULL);
        _exit(127);
    }
    g_script = pid;
    atexit(stop_server);
    close(fd[1]);
    FILE *out = fdopen(fd[0], "r");
    char line[512];
    while (fgets(line, sizeof line, out)) {
        line[strcspn(line, "\n")] = '\0';
        if (!strncmp(line, "endpoint: ", 10)) {
            snprintf(g_endpoint, sizeof g_endpoint, "%s", line + 10);
            g_script_out = out;
            return true;
        }
    }
    fclose(out);
    stop_server();
    snprintf(why, size, "tools/llm-server exited before it printed an endpoint (its messages are above)");
    return false;
}

/* Suite-wide: the titles and the server, once. Returns false (and says SKIP) without them. */
/* The first N_TITLES titles of each domain of an items.tsv; false when it has fewer. */
static bool read_titles(const char *items)
{
    FILE *f = items ? fopen(items, "r") : NULL;
    int n[2] = {0, 0};
    char line[4096];
    while (f && fgets(line, sizeof line, f) && (n[0] < N_TITLES || n[1] < N_TITLES)) {
        char *save = NULL, *id = strtok_r(line, "\t", &save), *dom = strtok_r(NULL, "\t", &save);
        char *asin = strtok_r(NULL, "\t", &save), *title = strtok_r(NULL, "\t\n", &save);
        if (!id || !dom || !asin || !title || strcmp(id, "item") == 0) continue;
        int d = dom[0] == 'Y';
        if (n[d] >= N_TITLES) continue;
        snprintf(g_items[d][n[d]], sizeof g_items[d][0], "%s", title);
        g_titles_of[d][n[d]] = g_items[d][n[d]];
        n[d]++;
    }
    if (f) fclose(f);
    return n[0] == N_TITLES && n[1] == N_TITLES;
}

/* Real food-kitchen titles when ../shared/data is there; else the titles of tema's own synthetic
 * food-kitchen data (tema data synth; vocabularies synth_food, synth_kitchen), so the suite runs
 * on any machine that has the server. */
static bool load_titles(char *why, size_t size)
{
    if (read_titles(tu_data_path("food-kitchen/items.tsv"))) return true;
    char dir[1024], cmd[3000], items[1100];
    snprintf(dir, sizeof dir, "%s/synth", tu_tmpdir());
    snprintf(cmd, sizeof cmd, "'%s' data synth --out '%s' --preset small >/dev/null 2>&1", getenv("TEMA_EXE"), dir);
    snprintf(items, sizeof items, "%s/items.tsv", dir);
    if (system(cmd) != 0 || !read_titles(items))
        return snprintf(why, size, "no titles: food-kitchen not under TEMA_TEST_DATA and `tema data synth` failed"), false;
    g_domain[0] = "synth_food";
    g_domain[1] = "synth_kitchen";
    fprintf(stderr, "titles from tema's synthetic data (food-kitchen is not under TEMA_TEST_DATA)\n");
    return true;
}

/* Suite-wide: the titles and the server, once. Returns false (and says SKIP) without them. */
static bool ready(const char *test)
{
    static int state; /* 0 not tried, 1 ready, -1 unavailable */
    static char why[1200];
    if (state == 0) {
        state = -1;
        if (load_titles(why, sizeof why) && server_built(why, sizeof why) && start_server(why, sizeof why)) state = 1;
    }
    if (state == 1) return true;
    const char *require = getenv("TEMA_REQUIRE_LLM");
    ck_assert_msg(!require || strcmp(require, "1"), "TEMA_REQUIRE_LLM=1 but %s", why);
    tu_skip(test, "%s", why);
    return false;
}

static long long summary_number(const result *r, const char *what)
{
    const char *line = summary_line(r), *at = strstr(line, what);
    ck_assert_msg(at != NULL, "'%s' not in the summary: %s", what, line);
    while (at > line && at[-1] == ' ') at--;
    while (at > line && at[-1] >= '0' && at[-1] <= '9') at--;
    return atoll(at);
}

/* Every titled item got a tag or is named in a "failed items" line; scores stay in 0..100. */
static int check_answers(const result *r, int d)
{
    ck_assert_msg(r->st == TEMA_OK, "%s", r->err.msg);
    ck_assert_int_ge(r->vocab.n_tags, 3);
    int tagged = 0;
    for (int i = 0; i < N_TITLES; i++) {
        bool any = false;
        for (int32_t k = 0; k < r->vocab.n_tags; k++) {
            float s = r->vocab.score[(size_t)i * (size_t)r->vocab.n_tags + (size_t)k];
            ck_assert_msg(s >= 0 && s <= 100 && isfinite(s), "item %d tag %s: score %g", i, r->vocab.tags[k], s);
            any |= s > 0;
        }
        tagged += any;
        ck_assert_msg(any || strstr(r->log, "failed items:"), "%s item %d (%s) has no tag and is not logged as failed",
                      g_domain[d], i, g_titles_of[d][i]);
    }
    return tagged;
}

START_TEST(a_real_model_tags_real_titles_and_a_rerun_asks_nothing)
{
    if (!ready(__func__)) return;
    setenv("TEMA_LLM_API_KEY", SECRET, 1);
    const char *cache = fresh_dir("llm-cache-food");
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    result r = run_tagger_on(g_endpoint, cache, opts(), g_titles_of[0], N_TITLES, g_domain[0]);
    clock_gettime(CLOCK_MONOTONIC, &b);
    int tagged = check_answers(&r, 0);
    /* A 135M model is weak, but with choose it must tag most items (the grammar forces a choice). */
    ck_assert_msg(tagged >= N_TITLES * 3 / 4, "only %d of %d items tagged", tagged, N_TITLES);
    fprintf(stderr, "real model: %d tags, %d of %d items tagged in %.1f s\n", r.vocab.n_tags, tagged, N_TITLES,
            (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec));
    ck_assert_msg(!strstr(r.log, SECRET), "the API key appears in the log");
    ck_assert_msg(!cache_contains(cache, SECRET), "the API key appears in the cache");
    long long answered = summary_number(&r, "answers cached now");
    result_free(&r);

    r = run_tagger_on(g_endpoint, cache, opts(), g_titles_of[0], N_TITLES, g_domain[0]);
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    ck_assert_int_eq(summary_number(&r, "requests sent"), 0);
    ck_assert_int_eq(summary_number(&r, "cache hits"), answered);
    result_free(&r);
}
END_TEST

static int count_json_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".json") && !strstr(e->d_name, ".tmp");
    if (d) closedir(d);
    return n;
}

START_TEST(an_interrupted_run_resumes_with_only_the_missing_requests)
{
    if (!ready(__func__)) return;
    const char *cache = fresh_dir("llm-cache-kitchen");
    /* Like `tema run` and `tema tags`: the core listens for the stop; the plugin polls it. */
    tema_stop_listen();
    pid_t killer = fork();
    ck_assert_int_ge(killer, 0);
    if (killer == 0) { /* SIGINT once a quarter of the items are answered (at most 10 minutes) */
        for (int i = 0; i < 6000 && count_json_files(cache) < N_TITLES / 4; i++)
            nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
        kill(getppid(), SIGINT);
        _exit(0);
    }
    result r = run_tagger_on(g_endpoint, cache, opts(), g_titles_of[1], N_TITLES, g_domain[1]);
    waitpid(killer, NULL, 0);
    ck_assert_int_eq(tema_stop_signal(), SIGINT); /* the layers above see the stop too */
    tema_stop_unlisten();
    ck_assert_msg(r.st == TEMA_EINTERRUPTED, "status %d: %s", r.st, r.err.msg);
    result_free(&r);
    int cached = count_json_files(cache);
    ck_assert_int_ge(cached, N_TITLES / 4);
    ck_assert_int_lt(cached, N_TITLES); /* it stopped before the end */

    r = run_tagger_on(g_endpoint, cache, opts(), g_titles_of[1], N_TITLES, g_domain[1]);
    check_answers(&r, 1);
    long long sent = summary_number(&r, "requests sent"), retries = summary_number(&r, "retries");
    ck_assert_int_eq(summary_number(&r, "cache hits"), cached);
    ck_assert_int_eq(sent - retries, N_TITLES - cached); /* only what was missing */
    fprintf(stderr, "interrupted after %d of %d answers; the rerun sent %lld requests (%lld retries)\n", cached,
            N_TITLES, sent, retries);
    result_free(&r);
}
END_TEST

/* Algorithm 1 against the real model: the schema and the parser carry its answers through to
 * a tag list (what the list is worth is another matter: README, "A local LLM"). */
START_TEST(voting_with_a_real_model_gives_a_tag_list)
{
    if (!ready(__func__)) return;
    char extra[2400];
    snprintf(extra, sizeof extra, "%stag_list: vote\nvotes: 2\nn_tags: 8\n", opts());
    result r = run_tagger_on(g_endpoint, fresh_dir("llm-cache-vote"), extra, g_titles_of[0], 4, g_domain[0]);
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    ck_assert_int_ge(r.vocab.n_tags, 1);
    ck_assert_int_le(r.vocab.n_tags, 8);
    for (int32_t k = 0; k < r.vocab.n_tags; k++) {
        fprintf(stderr, "voted tag %d: %s\n", (int)k, r.vocab.tags[k]);
        ck_assert(r.vocab.tags[k][0] && strlen(r.vocab.tags[k]) <= 80);
    }
    result_free(&r);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("llm_local");
    TCase *tc = tcase_create("smollm2");
    tcase_set_timeout(tc, 840);
    tcase_add_test(tc, a_real_model_tags_real_titles_and_a_rerun_asks_nothing);
    tcase_add_test(tc, an_interrupted_run_resumes_with_only_the_missing_requests);
    tcase_add_test(tc, voting_with_a_real_model_gives_a_tag_list);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
