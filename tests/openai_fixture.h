/* tests/openai_fixture.h - what the `openai` tagger suites share: the stand-in server
 * tests/llm_server.py (start, script, read its counters), the plugin's options with the
 * fixture's settings, one tagging run with the plugin's log captured, and the cache folder.
 * The fixture's 8 items and their expected scores are described in test_tagger_openai.c. */
#ifndef TEMA_TESTS_OPENAI_FIXTURE_H
#define TEMA_TESTS_OPENAI_FIXTURE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "registry.h"
#include "tags.h"
#include "testutil.h"

#define N_ITEMS 8
extern const char *const g_titles[N_ITEMS];
extern const char *const g_voted[5];

typedef struct server {
    pid_t pid;
    char dir[256];
    char endpoint[128];
} server;

typedef struct result {
    tema_status st;
    tema_err err;
    tema_tag_vocab vocab;
    char *log; /* what the plugin logged (stderr), caller frees */
} result;

#define REQUIRE_PYTHON()                                                                         \
    do {                                                                                         \
        if (!have_python()) {                                                                    \
            tu_skip(__func__, "python3 not found (install it: .ci/install-deps)");                  \
            return;                                                                              \
        }                                                                                        \
    } while (0)

void server_start(server *s);
void server_stop(server *s);
void server_scenario(const server *s, const char *json);
json_object *server_stats(const server *s);
int64_t stat_int(const server *s, const char *key);
int64_t stat_failures(const server *s, const char *kind);
json_object *jget(json_object *o, const char *path);
int64_t stat_format(const server *s, const char *key);
const tema_plugin *openai_plugin(void);
tema_cfg *make_opts(const char *endpoint, const char *cache_dir, const char *extra);
void result_free(result *r);
result run_tagger(const char *endpoint, const char *cache_dir, const char *extra);
result run_tagger_on(const char *endpoint, const char *cache_dir, const char *extra, const char *const *titles,
                     int64_t n_items, const char *domain);
const char *summary_line(const result *r);
int count_occurrences(const char *text, const char *needle);
float expected_score(int item, const char *tag);
void assert_voted(const tema_tag_vocab *v);
void assert_scores(const tema_tag_vocab *v, unsigned zero_mask);
int count_cache_files(const char *dir);
bool cache_contains(const char *dir, const char *needle);
char *fresh_dir(const char *name);
bool have_python(void);

#endif
