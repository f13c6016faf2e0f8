/* tests/test_tagger_openai_batches.c - how the `openai` tagger shapes its scoring requests
 * for small local models: `scoring: choose` (ranked tag names out of an enum instead of a
 * score per tag) and batches that shrink to the server's context window (llama.cpp's
 * GET /props, or the option context_tokens). Same stand-in server and 8-item fixture as
 * test_tagger_openai.c (openai_fixture.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "openai_fixture.h"

/* The batch sizes the server saw, in request order; returns how many. */
static int batch_sizes(const server *s, int *out, int cap)
{
    json_object *o = server_stats(s), *v = jget(o, "score_batch_sizes");
    int n = v ? (int)json_object_array_length(v) : 0;
    for (int i = 0; i < n && i < cap; i++) out[i] = json_object_get_int(json_object_array_get_idx(v, (size_t)i));
    json_object_put(o);
    return n;
}

/* What scoring: choose with k places must give item i: the tags of its title ranked by the
 * server's score (ties in voted order), position p scoring round(100 (k - p) / k). */
static float expected_rank_score(int item, int tag, int k)
{
    float own = expected_score(item, g_voted[tag]);
    if (own == 0) return 0;
    int p = 0;
    for (int q = 0; q < 5; q++) {
        float other = expected_score(item, g_voted[q]);
        if (other > own || (other == own && other > 0 && q < tag)) p++;
    }
    return p < k ? (float)(int)(100.0 * (k - p) / k + 0.5) : 0;
}

START_TEST(choose_asks_for_ranked_names_and_scores_them_by_rank)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    const char *cache = fresh_dir("cache-choose");
    result r = run_tagger(s.endpoint, cache, "scoring: choose\nchoose: 2\n");
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_voted(&r.vocab);
    int ranked_somewhere = 0;
    for (int i = 0; i < N_ITEMS; i++)
        for (int k = 0; k < 5; k++) {
            float got = r.vocab.score[(size_t)i * 5 + (size_t)k], want = expected_rank_score(i, k, 2);
            ck_assert_msg(got == want, "item %d tag %s: %g, expected %g", i, g_voted[k], got, want);
            ranked_somewhere += want == 50;
        }
    ck_assert_int_gt(ranked_somewhere, 0); /* the fixture has items with two tags or more */
    /* The schema lets the model pick only voted names, at most `choose` of them. */
    json_object *o = server_stats(&s);
    json_object *tags = jget(o, "last_score_format.json_schema.schema.properties.items.items.properties.tags");
    ck_assert_ptr_nonnull(tags);
    ck_assert_int_eq(json_object_get_int(jget(tags, "maxItems")), 2);
    json_object *names = jget(tags, "items.enum");
    ck_assert_ptr_nonnull(names);
    ck_assert_int_eq((int)json_object_array_length(names), 5);
    for (int k = 0; k < 5; k++)
        ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(names, (size_t)k)), g_voted[k]);
    json_object_put(o);
    ck_assert_msg(cache_contains(cache, "choose the 2 tags"), "the request did not use item_choose.txt");
    result_free(&r);
    /* A second run is answered from the cache. */
    int64_t before = stat_int(&s, "requests");
    r = run_tagger(s.endpoint, cache, "scoring: choose\nchoose: 2\n");
    ck_assert_int_eq(r.st, TEMA_OK);
    ck_assert_int_eq(stat_int(&s, "requests"), before);
    result_free(&r);
    server_stop(&s);
}
END_TEST

/* A reply past max_reply_mb is refused, named in the log with the option, and retried; a
 * right answer of normal length then goes through. */
START_TEST(a_reply_past_the_size_limit_is_refused_by_name)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    server_scenario(&s, "{\"fail_first\": [\"huge\"], \"kind\": \"score\"}");
    const char *cache = fresh_dir("cache-huge");
    result r = run_tagger(s.endpoint, cache, "max_reply_mb: 1\nretries: 2\nbackoff_ms: 1\n");
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_voted(&r.vocab);
    const int64_t huge = stat_failures(&s, "huge"); /* the first request of each batch */
    ck_assert_int_gt(huge, 0);
    char want[64];
    snprintf(want, sizeof want, "%lld retries", (long long)huge);
    ck_assert_msg(strstr(r.log, want), "log lacks '%s':\n%s", want, r.log);
    result_free(&r);
    /* never a good answer: the error names the option */
    server_scenario(&s, "{\"fail_always\": \"huge\", \"kind\": \"score\"}");
    cache = fresh_dir("cache-huge2");
    r = run_tagger(s.endpoint, cache, "max_reply_mb: 1\nretries: 1\nbackoff_ms: 1\n");
    ck_assert_msg(strstr(r.err.msg, "max_reply_mb (1 MB") || strstr(r.log, "max_reply_mb (1 MB"), "%s\n%s", r.err.msg,
                  r.log);
    result_free(&r);
    server_stop(&s);
}
END_TEST

START_TEST(an_unknown_scoring_is_named)
{
    result r = run_tagger("http://127.0.0.1:9/v1", fresh_dir("cache-bad-scoring"), "scoring: vote\n");
    ck_assert_int_eq(r.st, TEMA_EINVAL);
    ck_assert_msg(strstr(r.err.msg, "scoring") && strstr(r.err.msg, "choose"), "%s", r.err.msg);
    result_free(&r);
}
END_TEST

START_TEST(a_roomy_context_keeps_the_batch_as_set)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    server_scenario(&s, "{\"props\": {\"default_generation_settings\": {\"n_ctx\": 100000}, \"total_slots\": 4}}");
    result r = run_tagger(s.endpoint, fresh_dir("cache-roomy"), NULL);
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_scores(&r.vocab, 1u << 2 | 1u << 5);
    int sizes[16], n = batch_sizes(&s, sizes, 16);
    ck_assert_int_eq(n, 3);
    for (int i = 0; i < n; i++) ck_assert_int_eq(sizes[i], 2);
    ck_assert_int_ge(stat_int(&s, "props_requests"), 1);
    ck_assert_ptr_null(strstr(r.log, "the server has"));
    result_free(&r);
    server_stop(&s);
}
END_TEST

START_TEST(a_short_server_context_gives_one_item_per_request_and_a_warning)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    server_scenario(&s, "{\"props\": {\"default_generation_settings\": {\"n_ctx\": 1}, \"total_slots\": 1}}");
    result r = run_tagger(s.endpoint, fresh_dir("cache-short"), NULL);
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    assert_scores(&r.vocab, 1u << 2 | 1u << 5);
    int sizes[16], n = batch_sizes(&s, sizes, 16);
    ck_assert_int_eq(n, 6); /* the 6 titled items, one per request */
    for (int i = 0; i < n; i++) ck_assert_int_eq(sizes[i], 1);
    ck_assert_msg(strstr(r.log, "6 items need more tokens than the context window (1) even alone"), "%s", r.log);
    ck_assert_msg(strstr(r.log, "the server has 1 slots and concurrency is 4"), "%s", r.log);
    result_free(&r);
    server_stop(&s);
}
END_TEST

START_TEST(the_context_option_wins_over_the_server)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    server_scenario(&s, "{\"props\": {\"default_generation_settings\": {\"n_ctx\": 100000}}}");
    result r = run_tagger(s.endpoint, fresh_dir("cache-option"), "context_tokens: 1\n");
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    int sizes[16], n = batch_sizes(&s, sizes, 16);
    ck_assert_int_eq(n, 6);
    ck_assert_int_eq(stat_int(&s, "props_requests"), 0);
    result_free(&r);
    server_stop(&s);
}
END_TEST

START_TEST(a_server_without_props_keeps_the_batch)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    result r = run_tagger(s.endpoint, fresh_dir("cache-noprops"), NULL);
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    int sizes[16], n = batch_sizes(&s, sizes, 16);
    ck_assert_int_eq(n, 3);
    ck_assert_int_ge(stat_int(&s, "props_requests"), 1); /* asked, got 404 */
    result_free(&r);
    server_stop(&s);
}
END_TEST

START_TEST(a_vocabulary_tag_list_replaces_voting)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    char dir[600], file[700];
    snprintf(dir, sizeof dir, "%s", fresh_dir("vocab"));
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(file, sizeof file, "%s/food.yaml", dir);
    tu_write(file, "tags:\n  - name: Spicy\n    synonyms: [hot]\n  - baked\n  - smoky\n");
    char extra[900];
    snprintf(extra, sizeof extra, "tag_list: vocabulary\nvocab_dir: \"%s\"\n", dir);
    result r = run_tagger_on(s.endpoint, fresh_dir("cache-vocab"), extra, g_titles, N_ITEMS, "food");
    ck_assert_msg(r.st == TEMA_OK, "%s", r.err.msg);
    ck_assert_int_eq(stat_int(&s, "vote_requests"), 0);
    ck_assert_int_eq(r.vocab.n_tags, 3);
    const char *want[3] = {"spicy", "baked", "smoky"};
    for (int k = 0; k < 3; k++) ck_assert_str_eq(r.vocab.tags[k], want[k]);
    for (int i = 0; i < N_ITEMS; i++)
        for (int k = 0; k < 3; k++)
            ck_assert_msg(r.vocab.score[(size_t)i * 3 + (size_t)k] == expected_score(i, want[k]), "item %d tag %s", i,
                          want[k]);
    result_free(&r);
    /* A domain without a vocabulary file is a located error. */
    r = run_tagger_on(s.endpoint, fresh_dir("cache-vocab"), extra, g_titles, N_ITEMS, "kitchen");
    ck_assert_int_eq(r.st, TEMA_ENOTFOUND);
    ck_assert_msg(strstr(r.err.msg, "kitchen.yaml"), "%s", r.err.msg);
    result_free(&r);
    server_stop(&s);
}
END_TEST

/* A tagging run where some requests keep failing is stored marked incomplete and is not
 * reused: once the server is healthy, the next `tema tags` asks again, and only for what is
 * missing (the rest comes from the tagger's cache). */
START_TEST(an_incomplete_tag_store_is_tagged_again)
{
    REQUIRE_PYTHON();
    server s;
    server_start(&s);
    char exp[1200], res[1200], cache[1200], args[4000], text[4000];
    snprintf(exp, sizeof exp, "%s/exp-incomplete.yaml", tu_tmpdir());
    snprintf(res, sizeof res, "%s/results-incomplete", tu_tmpdir());
    snprintf(cache, sizeof cache, "%s/cache-incomplete", tu_tmpdir());
    snprintf(text, sizeof text,
             "name: incomplete\ndataset: {path: synthetic}\ntrain: {seed: 5}\n"
             "model:\n  tagger: {plugin: openai, endpoint: \"%s\", model: m, votes: 1, n_tags: 5, batch: 50,\n"
             "           retries: 1, backoff_ms: 1, timeout_s: 5, cache_dir: \"%s\", prompt_dir: \"%s/experiments/prompts\"}\n",
             s.endpoint, cache, tu_source_root());
    tu_write(exp, text);
    /* Every scoring request holding a "Pretzels" title fails (6 of the 2,200 synthetic titles). */
    server_scenario(&s, "{\"fail_always\": \"500\", \"match\": \"Pretzels\", \"kind\": \"score\"}");
    snprintf(args, sizeof args, "tags '%s' --results '%s'", exp, res);
    char *out = NULL, *errout = NULL;
    int rc = tu_tema(args, &out, &errout);
    ck_assert_msg(rc == 0, "tema tags failed (%d): %s", rc, errout);
    ck_assert_msg(strstr(out, "incomplete: "), "no incomplete line: %s", out);
    long long failed_items = atoll(strstr(out, "incomplete: ") + strlen("incomplete: "));
    ck_assert_int_ge(failed_items, 6);
    ck_assert_int_le(failed_items, 6 * 50);
    int64_t failures = stat_failures(&s, "500");
    ck_assert_int_gt(failures, 0);
    free(out);
    free(errout);

    server_scenario(&s, "{}");
    int64_t before = stat_int(&s, "score_requests");
    rc = tu_tema(args, &out, &errout);
    ck_assert_msg(rc == 0, "tema tags failed (%d): %s", rc, errout);
    ck_assert_msg(strstr(out, "computed") && !strstr(out, "reused") && !strstr(out, "incomplete: "), "%s", out);
    ck_assert_msg(strstr(errout, "stored incomplete"), "%s", errout);
    int64_t asked = stat_int(&s, "score_requests") - before;
    ck_assert_int_eq(asked * 2, failures); /* each failed batch was tried twice (retries: 1), asked once now */
    fprintf(stderr, "incomplete store: %lld items failed in %lld requests; the rerun asked %lld\n", failed_items,
            (long long)failures, (long long)asked);
    free(out);
    free(errout);
    /* Complete now: a third run reuses the store. */
    rc = tu_tema(args, &out, &errout);
    ck_assert_msg(rc == 0 && strstr(out, "reused"), "%s%s", out, errout);
    free(out);
    free(errout);
    server_stop(&s);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("tagger_openai_batches");
    TCase *tc = tcase_create("requests");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, choose_asks_for_ranked_names_and_scores_them_by_rank);
    tcase_add_test(tc, an_unknown_scoring_is_named);
    tcase_add_test(tc, a_reply_past_the_size_limit_is_refused_by_name);
    tcase_add_test(tc, a_roomy_context_keeps_the_batch_as_set);
    tcase_add_test(tc, a_short_server_context_gives_one_item_per_request_and_a_warning);
    tcase_add_test(tc, the_context_option_wins_over_the_server);
    tcase_add_test(tc, a_server_without_props_keeps_the_batch);
    tcase_add_test(tc, a_vocabulary_tag_list_replaces_voting);
    tcase_add_test(tc, an_incomplete_tag_store_is_tagged_again);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
