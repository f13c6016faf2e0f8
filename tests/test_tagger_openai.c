/* tests/test_tagger_openai.c - the `openai` tagger against tests/llm_server.py, a local
 * stand-in for an OpenAI-compatible server that answers deterministically from the prompt
 * text, counts requests and can be scripted to fail (see the script's docstring).
 *
 * Fixture: 8 items, 6 with titles, batch 2 -> 3 scoring requests; votes 3 and n_tags 5 ->
 * 3 domain requests. The server's domain answer for seed s is POOL[:5] with entry s
 * replaced by "noise<s>", scores 1 - i/10, so the hand-computed vote is
 *   votes:  grilled 3 (2.1), vegan 3 (1.8), spicy 2 (2.0), sweet 2 (1.8), baked 2 (1.6)
 *   -> grilled, vegan, spicy, sweet, baked    (votes, then summed score)
 * and a tag scores 10 + (len(title) + len(tag)) % 90 when it occurs in the title. */
#include <dirent.h>
#include <json-c/json.h>
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
#include "stop.h"

/* ---------------- tests ---------------- */

START_TEST(tags_scores_and_a_second_run_from_the_cache)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    const char *cache = fresh_dir("cache");
    result r = run_tagger(s.endpoint, cache, NULL);
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_voted(&r.vocab);
    assert_scores(&r.vocab, 0);
    ck_assert_int_eq(stat_int(&s, "vote_requests"), 3);
    ck_assert_int_eq(stat_int(&s, "score_requests"), 3);
    ck_assert_int_eq(count_cache_files(cache), 6);
    json_object *st = server_stats(&s), *v;
    ck_assert(json_object_object_get_ex(st, "seeds", &v)); /* one query per seed 0..R-1, in any order */
    ck_assert_int_eq((int)json_object_array_length(v), 3);
    int seen_mask = 0;
    for (size_t i = 0; i < 3; i++) seen_mask |= 1 << json_object_get_int(json_object_array_get_idx(v, i));
    ck_assert_int_eq(seen_mask, 7);
    ck_assert(json_object_object_get_ex(st, "models", &v));
    ck_assert_str_eq(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), "[\"test-model\"]");
    ck_assert(json_object_object_get_ex(st, "paths", &v));
    ck_assert_str_eq(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), "[\"\\/v1\\/chat\\/completions\"]");
    ck_assert(json_object_object_get_ex(st, "temperatures", &v));
    for (size_t i = 0; i < json_object_array_length(v); i++)
        ck_assert_int_eq(json_object_get_int(json_object_array_get_idx(v, i)), 0);
    ck_assert(json_object_object_get_ex(st, "auth", &v));
    ck_assert_int_eq((int)json_object_array_length(v), 0); /* TEMA_LLM_API_KEY unset: no header */
    json_object_put(st);
    result_free(&r);

    /* Same settings, server up: everything from the cache. */
    r = run_tagger(s.endpoint, cache, NULL);
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_voted(&r.vocab);
    assert_scores(&r.vocab, 0);
    ck_assert_int_eq(stat_int(&s, "requests"), 6);
    result_free(&r);

    /* Server gone: still the same answers, so nothing was asked. */
    server_stop(&s);
    r = run_tagger(s.endpoint, cache, "retries: 0\n");
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_voted(&r.vocab);
    assert_scores(&r.vocab, 0);
    ck_assert_int_eq(count_cache_files(cache), 6);
    result_free(&r);
}
END_TEST

START_TEST(voting_removes_the_tags_of_single_answers)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    /* One query: its noise tag is in (the highest score of that answer). The answers come
     * wrapped in prose, a <think> block and a code fence. */
    server_scenario(&s, "{\"wrap\": true}");
    result r = run_tagger(s.endpoint, fresh_dir("cache1"), "votes: 1\n");
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    const char *one[5] = {"noise0", "sweet", "baked", "grilled", "vegan"};
    ck_assert_int_eq(r.vocab.n_tags, 5);
    for (int k = 0; k < 5; k++) ck_assert_str_eq(r.vocab.tags[k], one[k]);
    result_free(&r);
    /* Five queries, n_tags 3. */
    r = run_tagger(s.endpoint, fresh_dir("cache5"), "votes: 5\nn_tags: 3\n");
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    /* n = 3: seed s replaces entry s % 3 of [spicy, sweet, baked]: spicy loses seeds 0,3,
     * sweet 1,4, baked 2 -> baked 4 votes, spicy 3, sweet 3 (spicy's summed score is higher). */
    const char *five[3] = {"baked", "spicy", "sweet"};
    ck_assert_int_eq(r.vocab.n_tags, 3);
    for (int k = 0; k < 3; k++) ck_assert_str_eq(r.vocab.tags[k], five[k]);
    assert_scores(&r.vocab, 0);
    result_free(&r);
    server_stop(&s);
}
END_TEST

START_TEST(transient_errors_are_retried)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    /* Each prompt meets every kind of failure once, in this order, then an answer. */
    server_scenario(&s, "{\"fail_first\": [\"500\", \"429\", \"503\", \"drop\", \"truncated_body\", \"bad_envelope\","
                        " \"not_json\", \"truncated_content\", \"cut_content\", \"slow\"], \"slow_s\": 3}");
    const char *cache = fresh_dir("cache");
    result r = run_tagger(s.endpoint, cache, "retries: 10\ntimeout_s: 0.25\nbackoff_ms: 0\n");
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_voted(&r.vocab);
    assert_scores(&r.vocab, 0);
    ck_assert_int_eq(stat_int(&s, "requests"), 11 * 6);
    ck_assert_int_eq(stat_int(&s, "ok"), 6);
    const char *kinds[] = {"500", "429", "503", "drop", "truncated_body", "bad_envelope", "not_json",
                           "truncated_content", "cut_content", "slow"};
    for (int k = 0; k < 10; k++) ck_assert_int_eq(stat_failures(&s, kinds[k]), 6);
    ck_assert_int_eq(count_cache_files(cache), 6);
    result_free(&r);
    server_stop(&s);
}
END_TEST

START_TEST(persistent_bad_answers_are_recorded_failures_and_not_cached)
{
    REQUIRE_PYTHON();
    const char *kinds[] = {"not_json", "truncated_content", "cut_content", "bad_envelope", "truncated_body"};
    server s;
    server_start(&s);
    for (int q = 0; q < 5; q++) {
        /* The batch holding item 3 ("Vegan Spicy Curry") and item 4 never gets a good answer. */
        char sc[256];
        snprintf(sc, sizeof sc, "{\"fail_always\": \"%s\", \"match\": \"Curry\", \"kind\": \"score\"}", kinds[q]);
        server_scenario(&s, sc);
        const char *cache = fresh_dir("cache");
        int64_t before = stat_int(&s, "requests");
        result r = run_tagger(s.endpoint, cache, NULL);
        ck_assert_msg(r.st == TEMA_OK, "%s: %s", kinds[q], r.err.msg);
        assert_voted(&r.vocab);
        assert_scores(&r.vocab, (1u << 3) | (1u << 4));
        /* 3 domain queries, 2 good batches, the bad one 1 + retries times */
        ck_assert_int_eq(stat_int(&s, "requests") - before, 3 + 1 + 3 + 1);
        ck_assert_int_eq(stat_failures(&s, kinds[q]), 3);
        ck_assert_int_eq(count_cache_files(cache), 5);
        ck_assert_msg(strstr(r.log, "2 of 6 items got no scores"), "%s: log lacks the count:\n%s", kinds[q], r.log);
        ck_assert_msg(strstr(r.log, "failed items: 3 4\n"), "%s: log lacks the item ids:\n%s", kinds[q], r.log);
        result_free(&r);

        /* The server recovers: only the missing batch is asked for. */
        server_scenario(&s, "{}");
        r = run_tagger(s.endpoint, cache, NULL);
        ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
        assert_scores(&r.vocab, 0);
        ck_assert_int_eq(stat_int(&s, "requests") - before, 8 + 1);
        ck_assert_int_eq(count_cache_files(cache), 6);
        result_free(&r);
    }
    server_stop(&s);
}
END_TEST

START_TEST(no_item_scored_is_an_error)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    server_scenario(&s, "{\"fail_always\": \"500\", \"kind\": \"score\"}");
    const char *cache = fresh_dir("cache");
    result r = run_tagger(s.endpoint, cache, "retries: 1\n");
    ck_assert_int_eq(r.st, TEMA_EIO);
    ck_assert_msg(strstr(r.err.msg, "no item got scores") && strstr(r.err.msg, "HTTP 500"), "%s", r.err.msg);
    ck_assert_int_eq(stat_int(&s, "requests"), 3 + 3 * 2);
    ck_assert_int_eq(count_cache_files(cache), 3); /* the domain answers stay */
    result_free(&r);
    server_stop(&s);
}
END_TEST

START_TEST(an_interrupted_run_resumes_with_what_is_missing)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    /* The server breaks down (503 to everything) after 3 + 2 good answers. (Not dropped
     * connections: curl itself resends once on a reused connection that died, which would
     * blur the request count.) */
    server_scenario(&s, "{\"ok_limit\": 5, \"limit_failure\": \"503\"}");
    const char *cache = fresh_dir("cache");
    result r = run_tagger(s.endpoint, cache, "batch: 1\nretries: 1\n");
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    ck_assert_int_eq(stat_int(&s, "requests"), 3 + 2 + 4 * 2);
    ck_assert_int_eq(count_cache_files(cache), 5);
    int zero_rows = 0;
    for (int i = 0; i < N_ITEMS; i++) {
        bool zero = true;
        for (int32_t k = 0; k < r.vocab.n_tags; k++) zero &= r.vocab.score[(size_t)i * (size_t)r.vocab.n_tags + (size_t)k] == 0;
        bool scorable = false;
        for (int32_t k = 0; k < r.vocab.n_tags; k++) scorable |= expected_score(i, r.vocab.tags[k]) > 0;
        zero_rows += zero && scorable;
    }
    ck_assert_int_ge(zero_rows, 3); /* 4 failed items, at most one of them (Plain White Rice) has no tag anyway */
    ck_assert_msg(strstr(r.log, "4 of 6 items got no scores"), "%s", r.log);
    result_free(&r);

    server_scenario(&s, "{}");
    r = run_tagger(s.endpoint, cache, "batch: 1\nretries: 1\n");
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_voted(&r.vocab);
    assert_scores(&r.vocab, 0);
    ck_assert_int_eq(stat_int(&s, "requests"), 13 + 4);
    ck_assert_int_eq(count_cache_files(cache), 9);
    result_free(&r);
    server_stop(&s);
}
END_TEST

START_TEST(api_key_from_the_named_variable_as_bearer)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    server_scenario(&s, "{\"expect_key\": \"sk-test-4242\"}");
    setenv("TEMA_TEST_LLM_KEY", "sk-test-4242", 1);
    const char *cache = fresh_dir("cache");
    result r = run_tagger(s.endpoint, cache, "api_key_env: TEMA_TEST_LLM_KEY\n");
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_scores(&r.vocab, 0);
    json_object *st = server_stats(&s), *v;
    ck_assert(json_object_object_get_ex(st, "auth", &v));
    ck_assert_str_eq(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), "[\"Bearer sk-test-4242\"]");
    json_object_put(st);
    ck_assert(!cache_contains(cache, "sk-test-4242"));
    ck_assert(!strstr(r.log, "sk-test-4242"));
    result_free(&r);

    /* A refused key stops the run at once (no retries), names the variable, hides the key. */
    setenv("TEMA_TEST_LLM_KEY", "wrong-key-77", 1);
    r = run_tagger(s.endpoint, fresh_dir("cache2"), "api_key_env: TEMA_TEST_LLM_KEY\nconcurrency: 1\n");
    ck_assert_int_eq(r.st, TEMA_EIO);
    ck_assert_msg(strstr(r.err.msg, "401") && strstr(r.err.msg, "TEMA_TEST_LLM_KEY"), "%s", r.err.msg);
    ck_assert(!strstr(r.err.msg, "wrong-key-77"));
    ck_assert_int_eq(stat_int(&s, "requests"), 6 + 1);
    result_free(&r);
    unsetenv("TEMA_TEST_LLM_KEY");
    server_stop(&s);
}
END_TEST

START_TEST(concurrency_bounds_requests_in_flight)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    server_scenario(&s, "{\"delay_s\": 0.05}");
    result r = run_tagger(s.endpoint, fresh_dir("cache"), "batch: 1\nconcurrency: 2\n");
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_scores(&r.vocab, 0);
    int64_t m = stat_int(&s, "max_inflight");
    fprintf(stderr, "concurrency 2: at most %lld requests seen in flight\n", (long long)m);
    ck_assert_int_le(m, 2);
    ck_assert_int_eq(stat_int(&s, "requests"), 3 + 6);
    result_free(&r);
    server_stop(&s);
}
END_TEST

START_TEST(an_edited_prompt_is_asked_again)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    const char *prompts = fresh_dir("prompts");
    char cmd[2048], extra[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s'/experiments/prompts/*.txt '%s'/", prompts, tu_source_root(),
             prompts);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(extra, sizeof extra, "prompt_dir: \"%s\"\n", prompts);
    const char *cache = fresh_dir("cache");
    result r = run_tagger(s.endpoint, cache, extra);
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    result_free(&r);
    snprintf(cmd, sizeof cmd, "echo 'Be strict.' >> '%s/item_scores.txt'", prompts);
    ck_assert_int_eq(system(cmd), 0);
    r = run_tagger(s.endpoint, cache, extra);
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_scores(&r.vocab, 0);
    ck_assert_int_eq(stat_int(&s, "vote_requests"), 3); /* domain prompt unchanged: cached */
    ck_assert_int_eq(stat_int(&s, "score_requests"), 3 + 3);
    result_free(&r);
    server_stop(&s);
}
END_TEST

START_TEST(a_signal_stops_the_run_and_keeps_the_answers)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    server_scenario(&s, "{\"delay_s\": 0.2}");
    /* Like `tema run` and `tema tags`: the core listens for the stop; the plugin polls it. */
    tema_stop_listen();
    pid_t killer = fork();
    ck_assert_int_ge(killer, 0);
    if (killer == 0) { /* SIGINT once the first scoring request is at the server */
        for (int i = 0; i < 1000 && stat_int(&s, "score_requests") < 1; i++) usleep(20 * 1000);
        kill(getppid(), SIGINT);
        _exit(0);
    }
    const char *cache = fresh_dir("cache");
    result r = run_tagger(s.endpoint, cache, "batch: 1\nconcurrency: 1\n");
    waitpid(killer, NULL, 0);
    ck_assert_msg(r.st == TEMA_EINTERRUPTED, "status %d: %s", r.st, r.err.msg);
    ck_assert_msg(strstr(r.err.msg, "SIGINT") && strstr(r.err.msg, "rerun"), "%s", r.err.msg);
    ck_assert_int_eq(tema_stop_signal(), SIGINT); /* the layers above see the stop too */
    int cached = count_cache_files(cache);
    ck_assert_int_ge(cached, 3); /* the domain answers */
    ck_assert_int_lt(cached, 9);
    int64_t before = stat_int(&s, "requests");
    result_free(&r);
    tema_stop_unlisten();

    server_scenario(&s, "{}");
    r = run_tagger(s.endpoint, cache, "batch: 1\nconcurrency: 1\n");
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_voted(&r.vocab);
    assert_scores(&r.vocab, 0);
    ck_assert_int_eq(stat_int(&s, "requests") - before, 9 - cached);
    fprintf(stderr, "interrupted after %d of 9 answers; the rerun sent %lld requests\n", cached,
            (long long)(stat_int(&s, "requests") - before));
    result_free(&r);
    server_stop(&s);
}
END_TEST

START_TEST(create_names_what_is_missing)
{
    const tema_tagger_ops *ops = openai_plugin()->ops;
    const char *cache = fresh_dir("cache");
    void *self = NULL;
    tema_err err = {0};
    unsetenv("TEMA_LLM_ENDPOINT");
    unsetenv("TEMA_LLM_MODEL");
    tema_cfg *o = make_opts("", cache, NULL);
    ck_assert_int_eq(tema_tagger_create(openai_plugin(), o, "Food", &self, &err), TEMA_EINVAL);
    ck_assert_ptr_null(self);
    ck_assert_msg(strstr(err.msg, "TEMA_LLM_ENDPOINT") && strstr(err.msg, "`endpoint`"), "%s", err.msg);
    /* The environment supplies the endpoint; create() makes no request. */
    setenv("TEMA_LLM_ENDPOINT", "http://127.0.0.1:9/v1", 1);
    ck_assert_msg(tema_tagger_create(openai_plugin(), o, "Food", &self, &err) == TEMA_OK, "%s", err.msg);
    ops->destroy(self);
    self = NULL;
    tema_cfg_free(o);

    o = make_opts("http://127.0.0.1:9/v1", cache, "model: \"\"\n");
    ck_assert_int_eq(tema_tagger_create(openai_plugin(), o, "Food", &self, &err), TEMA_EINVAL);
    ck_assert_msg(strstr(err.msg, "TEMA_LLM_MODEL"), "%s", err.msg);
    tema_cfg_free(o);

    o = make_opts("http://127.0.0.1:9/v1", cache, "prompt_dir: /nonexistent/prompts\n");
    ck_assert_int_eq(tema_tagger_create(openai_plugin(), o, "Food", &self, &err), TEMA_ENOTFOUND);
    ck_assert_msg(strstr(err.msg, "/nonexistent/prompts/domain_tags.txt") && strstr(err.msg, "prompt_dir"), "%s",
                  err.msg);
    tema_cfg_free(o);
    unsetenv("TEMA_LLM_ENDPOINT");
}
END_TEST

/* ---------------- structured output, lenient parsing, the summary ---------------- */

/* The tag names of a json_schema response_format's item tags, checked to be a strict
 * object of integers 0..100; NULL-terminated, in `names`. */
static int schema_tag_names(json_object *rf, const char **names, int cap)
{
    ck_assert_str_eq(json_object_get_string(jget(rf, "type")), "json_schema");
    ck_assert(json_object_get_boolean(jget(rf, "json_schema.strict")));
    ck_assert_str_eq(json_object_get_string(jget(rf, "json_schema.name")), "item_scores");
    json_object *list = jget(rf, "json_schema.schema.properties.items");
    ck_assert_str_eq(json_object_get_string(jget(list, "type")), "array");
    ck_assert_int_eq(json_object_get_int(jget(list, "minItems")), 2); /* batch 2 */
    ck_assert_int_eq(json_object_get_int(jget(list, "maxItems")), 2);
    ck_assert_str_eq(json_object_get_string(jget(list, "items.properties.id.type")), "integer");
    json_object *tags = jget(list, "items.properties.tags");
    ck_assert_msg(tags != NULL, "no item tags object in %s", json_object_to_json_string(rf));
    ck_assert(!json_object_get_boolean(jget(tags, "additionalProperties")));
    json_object *req = jget(tags, "required"), *props = jget(tags, "properties");
    ck_assert_int_eq((int)json_object_array_length(req), json_object_object_length(props));
    int n = 0;
    json_object_object_foreach(props, key, val)
    {
        ck_assert_str_eq(json_object_get_string(jget(val, "type")), "integer");
        ck_assert_int_eq(json_object_get_int(jget(val, "minimum")), 0);
        ck_assert_int_eq(json_object_get_int(jget(val, "maximum")), 100);
        ck_assert_int_lt(n, cap);
        names[n++] = key;
    }
    return n;
}

START_TEST(the_score_request_carries_a_schema_of_exactly_the_voted_tags)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    /* The server scores the tags the schema names, not those of the prompt: a schema with a
     * tag missing or renamed gives wrong scores, besides failing the checks below. */
    server_scenario(&s, "{\"obey_schema\": true}");
    result r = run_tagger(s.endpoint, fresh_dir("cache"), NULL);
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_voted(&r.vocab);
    assert_scores(&r.vocab, 0);
    ck_assert_int_eq(stat_format(&s, "vote:json_schema"), 3);
    ck_assert_int_eq(stat_format(&s, "score:json_schema"), 3);
    json_object *st = server_stats(&s);
    const char *names[16];
    int n = schema_tag_names(jget(st, "last_score_format"), names, 16);
    ck_assert_int_eq(n, 5);
    for (int k = 0; k < 5; k++) {
        bool found = false;
        for (int q = 0; q < n; q++) found |= !strcmp(names[q], g_voted[k]);
        ck_assert_msg(found, "voted tag %s is not a property of the schema", g_voted[k]);
    }
    /* The vote schema: the domain prompt's {"tags": [{"tag", "score"}]}, at most n_tags. */
    json_object *vote = jget(st, "last_vote_format.json_schema.schema.properties.tags");
    ck_assert_msg(vote != NULL, "no vote schema: %s", json_object_to_json_string(st));
    ck_assert_int_eq(json_object_get_int(jget(vote, "maxItems")), 5);
    ck_assert_str_eq(json_object_get_string(jget(vote, "items.properties.tag.type")), "string");
    ck_assert_ptr_nonnull(jget(vote, "items.properties.score"));
    json_object_put(st);
    ck_assert_msg(strstr(summary_line(&r), "structured output json_schema;"), "%s", summary_line(&r));
    result_free(&r);

    /* The lower levels on request. */
    r = run_tagger(s.endpoint, fresh_dir("cache2"), "structured: json_object\n");
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_scores(&r.vocab, 0);
    ck_assert_int_eq(stat_format(&s, "score:json_object"), 3);
    result_free(&r);
    r = run_tagger(s.endpoint, fresh_dir("cache3"), "structured: none\n");
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_scores(&r.vocab, 0);
    ck_assert_int_eq(stat_format(&s, "score:none"), 3);
    ck_assert_int_eq(stat_format(&s, "vote:none"), 3);
    st = server_stats(&s);
    ck_assert(json_object_is_type(jget(st, "last_score_format"), json_type_null));
    json_object_put(st);
    result_free(&r);
    server_stop(&s);
}
END_TEST

START_TEST(a_server_refusing_json_schema_gets_json_object_then_none)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    server_scenario(&s, "{\"reject_format\": [\"json_schema\"]}");
    /* retries 0: a refusal is no failed attempt. */
    result r = run_tagger(s.endpoint, fresh_dir("cache"), "retries: 0\n");
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_voted(&r.vocab);
    assert_scores(&r.vocab, 0);
    ck_assert_int_eq(count_occurrences(r.log, "refused response_format"), 1);
    ck_assert_msg(strstr(r.log, "refused response_format json_schema") && strstr(r.log, "asking with json_object"),
                  "%s", r.log);
    ck_assert_msg(strstr(summary_line(&r), "structured output json_object (the server refused json_schema)"), "%s",
                  summary_line(&r));
    int64_t refused = stat_format(&s, "vote:json_schema"); /* those in flight when the first refusal came */
    ck_assert_int_ge(refused, 1);
    ck_assert_int_le(refused, 3);
    ck_assert_int_eq(stat_format(&s, "vote:json_object"), 3);
    ck_assert_int_eq(stat_format(&s, "score:json_object"), 3);
    ck_assert_int_eq(stat_format(&s, "score:json_schema"), 0);
    result_free(&r);

    /* Neither: down to no response_format; a rerun finds those answers in the cache. */
    server_scenario(&s, "{\"reject_format\": [\"json_schema\", \"json_object\"]}");
    const char *cache = fresh_dir("cache2");
    r = run_tagger(s.endpoint, cache, "retries: 0\n");
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_voted(&r.vocab);
    assert_scores(&r.vocab, 0);
    ck_assert_int_eq(count_occurrences(r.log, "refused response_format"), 2);
    ck_assert_int_eq(stat_format(&s, "score:none"), 3);
    ck_assert_int_eq(stat_format(&s, "vote:none"), 3);
    ck_assert_int_eq(count_cache_files(cache), 6);
    result_free(&r);
    int64_t ok = stat_int(&s, "ok");
    r = run_tagger(s.endpoint, cache, "retries: 0\n");
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_scores(&r.vocab, 0);
    ck_assert_int_eq(stat_int(&s, "ok"), ok); /* only refused requests were sent */
    ck_assert_msg(strstr(summary_line(&r), " 6 cache hits"), "%s", summary_line(&r));
    result_free(&r);

    /* A 400 that is not about response_format is no reason to drop it. */
    server_scenario(&s, "{}");
    r = run_tagger(s.endpoint, fresh_dir("cache3"), NULL);
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    ck_assert(!strstr(r.log, "refused response_format"));
    result_free(&r);
    server_stop(&s);
}
END_TEST

START_TEST(answers_in_other_shapes_are_read)
{
    REQUIRE_PYTHON();
    const char *variants[] = {"prose", "string_scores", "renamed", "keyed", "keyed_root"};
    server s;
    server_start(&s);
    for (int q = 0; q < 5; q++) {
        char sc[128];
        snprintf(sc, sizeof sc, "{\"variant\": \"%s\"}", variants[q]);
        server_scenario(&s, sc);
        int64_t before = stat_int(&s, "requests");
        result r = run_tagger(s.endpoint, fresh_dir("cache"), NULL);
        ck_assert_msg(r.st == TEMA_OK, "%s: %s", variants[q], r.err.msg);
        assert_voted(&r.vocab);
        assert_scores(&r.vocab, 0);
        ck_assert_msg(stat_int(&s, "requests") - before == 6, "%s: %lld requests", variants[q],
                      (long long)(stat_int(&s, "requests") - before));
        ck_assert_msg(strstr(summary_line(&r), "0 unparsable, 0 wrong shape; 0 scores clamped"), "%s: %s", variants[q],
                      summary_line(&r));
        result_free(&r);
    }
    server_stop(&s);
}
END_TEST

START_TEST(out_of_range_scores_are_clamped_and_counted)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    server_scenario(&s, "{\"variant\": \"out_of_range\"}");
    result r = run_tagger(s.endpoint, fresh_dir("cache"), NULL);
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_voted(&r.vocab);
    for (int i = 0; i < N_ITEMS; i++)
        for (int k = 0; k < 5; k++) {
            float want = expected_score(i, g_voted[k]) > 0 ? 100.0f : 0.0f;
            ck_assert_msg(r.vocab.score[i * 5 + k] == want, "item %d tag %s: %g", i, g_voted[k], r.vocab.score[i * 5 + k]);
        }
    /* 6 titled items x 5 tags, each above 100 or below 0 ("bogus" is no tag: not counted) */
    ck_assert_msg(strstr(summary_line(&r), "; 30 scores clamped"), "%s", summary_line(&r));
    result_free(&r);
    server_stop(&s);
}
END_TEST

START_TEST(the_summary_counts_requests_and_invalid_answers_by_kind)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    server_scenario(&s, "{\"fail_first\": [\"500\", \"truncated_body\", \"not_json\", \"cut_content\"]}");
    const char *cache = fresh_dir("cache");
    result r = run_tagger(s.endpoint, cache, "retries: 4\nbackoff_ms: 0\n");
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_scores(&r.vocab, 0);
    const char *line = summary_line(&r);
    ck_assert_msg(strstr(r.log, "domain Food: summary: 30 requests sent, 0 cache hits, 24 retries, 6 answers cached now; "
                               "invalid answers: 6 transport, 6 HTTP status, 6 unparsable, 6 wrong shape; "
                               "0 scores clamped to 0..100; 3 of 8 items without any tag;"),
                  "%s", line);
    ck_assert_msg(strstr(line, "tokens/s unknown"), "%s", line);
    result_free(&r);
    r = run_tagger(s.endpoint, cache, NULL);
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    ck_assert_msg(strstr(summary_line(&r), "summary: 0 requests sent, 6 cache hits, 0 retries"), "%s", summary_line(&r));
    result_free(&r);
    server_stop(&s);
}
END_TEST

START_TEST(tokens_per_second_and_progress_lines)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    server_scenario(&s, "{\"usage\": 7, \"delay_s\": 0.1}");
    result r = run_tagger(s.endpoint, fresh_dir("cache"), "batch: 1\nconcurrency: 1\nprogress_s: 0.01\n");
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_scores(&r.vocab, 0);
    const char *line = summary_line(&r);
    ck_assert_msg(strstr(line, " tokens/s (63 tokens in "), "%s", line); /* 9 requests x 7 */
    double rate = 0;
    ck_assert(sscanf(strstr(line, "structured output json_schema; ") + strlen("structured output json_schema; "), "%lf",
                     &rate) == 1);
    ck_assert_msg(rate > 0 && rate < 7 / 0.1 * 1.01, "%g tokens/s with 7 tokens per >= 0.1 s", rate);
    ck_assert_msg(strstr(r.log, "item scores: 1 of 6 items done (0 from the cache), "), "%s", r.log);
    ck_assert_msg(strstr(r.log, " items/s, ETA "), "%s", r.log);
    result_free(&r);
    server_stop(&s);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("tagger_openai");
    TCase *tc = tcase_create("openai");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, tags_scores_and_a_second_run_from_the_cache);
    tcase_add_test(tc, voting_removes_the_tags_of_single_answers);
    tcase_add_test(tc, transient_errors_are_retried);
    tcase_add_test(tc, persistent_bad_answers_are_recorded_failures_and_not_cached);
    tcase_add_test(tc, no_item_scored_is_an_error);
    tcase_add_test(tc, an_interrupted_run_resumes_with_what_is_missing);
    tcase_add_test(tc, api_key_from_the_named_variable_as_bearer);
    tcase_add_test(tc, concurrency_bounds_requests_in_flight);
    tcase_add_test(tc, an_edited_prompt_is_asked_again);
    tcase_add_test(tc, a_signal_stops_the_run_and_keeps_the_answers);
    tcase_add_test(tc, create_names_what_is_missing);
    tcase_add_test(tc, the_score_request_carries_a_schema_of_exactly_the_voted_tags);
    tcase_add_test(tc, a_server_refusing_json_schema_gets_json_object_then_none);
    tcase_add_test(tc, answers_in_other_shapes_are_read);
    tcase_add_test(tc, out_of_range_scores_are_clamped_and_counted);
    tcase_add_test(tc, the_summary_counts_requests_and_invalid_answers_by_kind);
    tcase_add_test(tc, tokens_per_second_and_progress_lines);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
