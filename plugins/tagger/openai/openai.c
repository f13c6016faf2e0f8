/* plugins/tagger/openai/openai.c - tags from an LLM over the OpenAI-compatible chat-completions
 * API (llama.cpp's server, Ollama, vLLM, hosted services), the TEMA-LLM paper's Sec. III.C-D.
 *
 * Two phases per domain:
 *   1. Algorithm 1: the domain prompt (prompt_dir/domain_tags.txt) is sent `votes` times at
 *      temperature 0 (request r carries seed r); frequency voting over the R answers keeps the
 *      `n_tags` tags named by the most answers (ties: higher summed LLM score, then first seen).
 *   2. The scoring prompt (prompt_dir/item_scores.txt) rates up to `batch` items per request
 *      against the voted list: 1..100 per tag that applies, 0 for tags left out.
 *
 * Structured output (option `structured`): json_schema sends a JSON schema of the answer
 * (for scoring: exactly the voted tags as required integer properties), which llama.cpp
 * enforces with a grammar; small models loop or invent keys without it. A server that
 * refuses it (HTTP 400 naming response_format or the schema) is asked with json_object,
 * then with none, for the rest of the run. Answers are parsed leniently whatever the level
 * (answer.c).
 *
 * SIGINT or SIGTERM (the host's stop flag, host->interrupted) stops the requests within a
 * fraction of a second; tag() then returns TEMA_EINTERRUPTED.
 *
 * Every request whose answer parses completely is stored under cache_dir in a file named by a
 * hash of (endpoint, model, request body); the body holds the prompt, every sampling
 * parameter and the response_format. The file keeps the request too and is checked against it
 * when read, so a hash collision is a miss, never a wrong answer. Files are written
 * atomically (temp, fsync, rename) and only for valid answers: a rerun makes no request for
 * what is cached, and an interrupted run resumes with what is missing.
 *
 * Transport (transport.c): one curl multi handle, at most `concurrency` requests in flight.
 * HTTP 408, 425, 429 and 5xx, transport errors (timeouts, dropped connections, truncated
 * bodies) and answers that do not parse are retried `retries` times after
 * backoff_ms * 2^(attempt-1) (or the server's Retry-After when longer). 401/403/404 stop the
 * run: every later request would fail the same way. Items still failing after the retries
 * keep an all-zero score row and are logged with their indices; the run fails only when
 * every item failed. tag() ends with one summary line (requests, cache hits, retries,
 * invalid answers by kind, clamped scores, untagged items, tokens/s).
 *
 * The API key is read from the environment variable named by api_key_env; it is sent as a
 * Bearer header and never logged, hashed or cached. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tag_plugin.h"
#include "../tag_vocab.h"
#include "openai.h"

#define WHO OAI_WHO
#define DOMAIN_PROMPT_FILE "domain_tags.txt"
#define SCORE_PROMPT_FILE "item_scores.txt"
#define CHOOSE_PROMPT_FILE "item_choose.txt"
/* Tokens a scoring answer takes per item beyond its tags (braces, id, keys), and per tag: the
 * grammar-forced JSON around every name or number. Estimates: SmolLM2 on llama.cpp answered a
 * 3-tag choose item in 34 tokens (usage.completion_tokens); larger vocabularies need fewer. */
#define ANSWER_TOKENS_PER_ITEM 12
#define ANSWER_TOKENS_PER_SCORE 7
#define ANSWER_TOKENS_PER_CHOICE 9
#define CHARS_PER_TOKEN 3 /* English BPE averages about 4 characters a token: 3 errs on the safe side */

static const tema_option openai_options[] = {
    {"endpoint", TEMA_OPT_STRING, "\"\"", 1, 0, NULL,
     "base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8080/v1 (empty: env TEMA_LLM_ENDPOINT)"},
    {"model", TEMA_OPT_STRING, "\"\"", 1, 0, NULL, "model name sent with every request (empty: env TEMA_LLM_MODEL)"},
    {"api_key_env", TEMA_OPT_STRING, "TEMA_LLM_API_KEY", 1, 0, NULL,
     "NAME of the environment variable holding the API key (unset or empty: no Authorization header)"},
    {"tag_list", TEMA_OPT_ENUM, "vote", 0, -1, "vote|vocabulary",
     "vote: the LLM names the domain's tags (Algorithm 1); vocabulary: the tag names of <vocab_dir>/<domain>.yaml "
     "(lexical's), so the LLM only matches items to a fixed list (Table IV's matching with the vocabulary held fixed)"},
    {"vocab_dir", TEMA_OPT_STRING, TAG_VOCAB_DIR, 0, -1, NULL, "tag_list: vocabulary - folder of <domain>.yaml"},
    {"votes", TEMA_OPT_INT, "5", 1, 100, NULL, "R: domain prompt queries voted over (Algorithm 1)"},
    {"n_tags", TEMA_OPT_INT, "30", 1, 500, NULL, "N: tags asked for and kept after voting"},
    {"batch", TEMA_OPT_INT, "20", 1, 500, NULL, "items scored per request at most (fewer when the context is short)"},
    {"scoring", TEMA_OPT_ENUM, "scores", 0, -1, "scores|choose",
     "scores: the model rates every voted tag 0..100 per item (the paper); choose: it picks its `choose` best tags "
     "per item out of the list, ranked (scores 100 down to 100/choose): a few tokens per item, for small local models"},
    {"choose", TEMA_OPT_INT, "3", 1, 50, NULL, "scoring: choose - tags picked per item"},
    {"context_tokens", TEMA_OPT_INT, "0", 0, 100000000, NULL,
     "context window of one request; batches shrink so prompt and answer fit (0: ask the server's /props, as "
     "llama.cpp answers; unknown: `batch` as set)"},
    {"timeout_s", TEMA_OPT_FLOAT, "120", 0.01, 86400, NULL, "seconds before a request is abandoned (and retried)"},
    {"retries", TEMA_OPT_INT, "4", 0, 100, NULL, "extra attempts after a failed request"},
    {"backoff_ms", TEMA_OPT_INT, "1000", 0, 3600000, NULL, "first retry delay; doubles with every attempt"},
    {"concurrency", TEMA_OPT_INT, "4", 1, 256, NULL, "requests in flight at most"},
    {"max_tokens", TEMA_OPT_INT, "4096", 0, 10000000, NULL, "answer length limit sent to the server (0: not sent)"},
    {"max_reply_mb", TEMA_OPT_INT, "8", 1, 1024, NULL,
     "a reply longer than this is refused and retried (memory: at most concurrency x this at once)"},
    {"structured", TEMA_OPT_ENUM, "json_schema", 0, -1, "json_schema|json_object|none",
     "response_format asked for: a JSON schema of the answer, any JSON, or none; a server refusing one gets the next"},
    {"progress_s", TEMA_OPT_FLOAT, "5", 0, 86400, NULL, "seconds between progress lines while requests run (0: none)"},
    {"cache_dir", TEMA_OPT_STRING, "results/llm-cache", 1, 0, NULL, "folder of cached request/response pairs"},
    {"prompt_dir", TEMA_OPT_STRING, "experiments/prompts", 1, 0, NULL,
     "folder holding " DOMAIN_PROMPT_FILE ", " SCORE_PROMPT_FILE " and " CHOOSE_PROMPT_FILE},
};

/* Replace {key} by values; other braces stay (the prompts show JSON examples). */
static char *fill_template(const char *tpl, const char *const *keys, const char *const *values, int n)
{
    oai_sbuf b = {0};
    for (const char *p = tpl; *p;) {
        int hit = -1;
        if (*p == '{')
            for (int k = 0; k < n && hit < 0; k++) {
                size_t kl = strlen(keys[k]);
                if (!strncmp(p + 1, keys[k], kl) && p[1 + kl] == '}') hit = k;
            }
        if (hit >= 0) {
            oai_sb_str(&b, values[hit]);
            p += strlen(keys[hit]) + 2;
        } else {
            oai_sb_add(&b, p, 1);
            p++;
        }
    }
    if (b.failed) {
        oai_sb_free(&b);
        return NULL;
    }
    return b.data ? b.data : strdup("");
}

/* ---- Algorithm 1: R queries, frequency voting ---- */

typedef struct tally {
    char *tag;
    int votes;
    double score_sum;
    int first_seen;
} tally;

static int tally_cmp(const void *a, const void *b)
{
    const tally *x = a, *y = b;
    if (x->votes != y->votes) return x->votes > y->votes ? -1 : 1;
    if (x->score_sum != y->score_sum) return x->score_sum > y->score_sum ? -1 : 1;
    return (x->first_seen > y->first_seen) - (x->first_seen < y->first_seen);
}

static oai_job *vote_jobs(const oai_tagger *t)
{
    char n_tags_text[32];
    snprintf(n_tags_text, sizeof n_tags_text, "%lld", (long long)t->n_tags);
    const char *keys[] = {"domain", "n_tags"};
    const char *values[] = {t->domain, n_tags_text};
    oai_job *jobs = calloc((size_t)t->votes, sizeof *jobs);
    for (int r = 0; jobs && r < t->votes; r++) {
        jobs[r] = (oai_job){.kind = OAI_VOTE, .index = r, .seed = r};
        if (!(jobs[r].prompt = fill_template(t->domain_prompt, keys, values, 2))) {
            oai_jobs_free(jobs, t->votes);
            return NULL;
        }
    }
    return jobs;
}

/* Every distinct tag of the good answers with its votes; the number of good answers in
 * *n_answers, the last failure in *last_error. */
static tally *count_votes(const oai_tagger *t, const oai_job *jobs, int *n_cand, int *n_answers, const char **last_error)
{
    size_t cap = 0;
    for (int r = 0; r < t->votes; r++) cap += jobs[r].ok ? (size_t)jobs[r].vote.n : 0;
    tally *cand = calloc(cap ? cap : 1, sizeof *cand);
    int seen = 0;
    *n_cand = *n_answers = 0;
    for (int r = 0; cand && r < t->votes; r++) {
        if (!jobs[r].ok) {
            *last_error = jobs[r].last_error;
            continue;
        }
        ++*n_answers;
        for (int k = 0; k < jobs[r].vote.n; k++) {
            int at = -1;
            for (int q = 0; q < *n_cand && at < 0; q++)
                if (!strcmp(cand[q].tag, jobs[r].vote.tag[k])) at = q;
            if (at < 0) {
                at = (*n_cand)++;
                cand[at].tag = jobs[r].vote.tag[k];
                cand[at].first_seen = seen++;
            }
            cand[at].votes++;
            cand[at].score_sum += jobs[r].vote.score[k];
        }
    }
    return cand;
}

static tema_status domain_tags(oai_tagger *t, char ***tags_out, int *n_out, tema_err *err)
{
    oai_job *jobs = vote_jobs(t);
    if (!jobs) return tema_fail(err, TEMA_ENOMEM, "%s: out of memory building the domain prompt", WHO);
    oai_parse_ctx ctx = {.n_wanted = (int)t->n_tags};
    tema_status st = oai_run_jobs(t, &ctx, jobs, t->votes, "domain tags", err);
    if (st != TEMA_OK) {
        oai_jobs_free(jobs, t->votes);
        return st;
    }
    int n_answers, n_cand;
    const char *last_error = "";
    tally *cand = count_votes(t, jobs, &n_cand, &n_answers, &last_error);
    if (!cand) {
        oai_jobs_free(jobs, t->votes);
        return tema_fail(err, TEMA_ENOMEM, "%s: out of memory voting", WHO);
    }
    if (n_answers == 0) {
        st = tema_fail(err, TEMA_EIO,
                       "%s: domain %s: none of the %lld domain-tag queries got a usable answer from %s (last error: "
                       "%s); check that the server runs and speaks the chat-completions API, then rerun",
                       WHO, t->domain, (long long)t->votes, t->url, last_error);
        free(cand);
        oai_jobs_free(jobs, t->votes);
        return st;
    }
    t->n.unanswered += t->votes - n_answers;
    if (n_answers < t->votes)
        t->host->log(TEMA_LOG_WARN, WHO, "domain %s: voting over %d of %lld answers (others failed: %s); a rerun asks again",
                     t->domain, n_answers, (long long)t->votes, last_error);
    qsort(cand, (size_t)n_cand, sizeof *cand, tally_cmp);
    int n = n_cand < t->n_tags ? n_cand : (int)t->n_tags;
    if (n < t->n_tags)
        t->host->log(TEMA_LOG_WARN, WHO, "domain %s: the answers name only %d distinct tags (n_tags is %lld)", t->domain,
                     n, (long long)t->n_tags);
    char **tags = calloc((size_t)n, sizeof *tags);
    for (int k = 0; tags && k < n; k++)
        if (!(tags[k] = strdup(cand[k].tag))) {
            for (int q = 0; q < k; q++) free(tags[q]);
            free(tags);
            tags = NULL;
        }
    free(cand);
    oai_jobs_free(jobs, t->votes);
    if (!tags) return tema_fail(err, TEMA_ENOMEM, "%s: out of memory voting", WHO);
    *tags_out = tags;
    *n_out = n;
    return TEMA_OK;
}

/* ---- tag_list: vocabulary ---- */

typedef struct name_list {
    char **name;
    size_t n, cap;
} name_list;

static tema_status on_vocab_tag(void *ctx, const char *name, size_t len, size_t line, tema_err *err)
{
    (void)line;
    name_list *l = ctx;
    char *copy = strndup(name, len), *norm = copy ? oai_normalize_tag(copy) : NULL;
    free(copy);
    if (!norm || !tag_vocab_grow((void **)&l->name, &l->cap, l->n + 1, sizeof *l->name)) {
        free(norm);
        return tema_fail(err, TEMA_ENOMEM, "%s: out of memory reading the vocabulary", WHO);
    }
    l->name[l->n++] = norm;
    return TEMA_OK;
}

static tema_status on_vocab_synonym(void *ctx, const char *text, size_t line, tema_err *err)
{
    (void)ctx, (void)text, (void)line, (void)err; /* the LLM reads the names; synonyms are lexical's */
    return TEMA_OK;
}

/* The tag names of <vocab_dir>/<domain>.yaml, normalized as answers are. */
static tema_status vocabulary_tags(oai_tagger *t, const tema_cfg *opts, tema_err *err)
{
    char *file = NULL;
    tema_status st = tag_vocab_path(t->host, opts, t->domain, WHO, &file, err);
    if (st != TEMA_OK) return st;
    name_list l = {0};
    const tag_vocab_sink sink = {.who = WHO, .file = file, .ctx = &l, .tag = on_vocab_tag, .synonym = on_vocab_synonym};
    st = tag_vocab_load(&sink, t->domain, err);
    free(file);
    if (st == TEMA_OK && l.n == 0) st = tema_fail(err, TEMA_EINVAL, "%s: the vocabulary of %s has no tags", WHO, t->domain);
    if (st != TEMA_OK) {
        for (size_t k = 0; k < l.n; k++) free(l.name[k]);
        free(l.name);
        return st;
    }
    t->fixed_tags = l.name;
    t->n_fixed_tags = (int)l.n;
    return TEMA_OK;
}

/* ---- item scoring ---- */

static void log_failed_items(const oai_tagger *t, const int64_t *ids, int64_t n, int64_t n_scored, const char *why)
{
    t->host->log(TEMA_LOG_WARN, WHO,
                 "domain %s: %lld of %lld items got no scores after %lld attempts (last error: %s); their score rows "
                 "stay 0, nothing of them was cached, and a rerun asks for them again. Item indices (0-based, in the "
                 "order given) follow.",
                 t->domain, (long long)n, (long long)n_scored, (long long)t->retries + 1, why);
    for (int64_t i = 0; i < n;) {
        oai_sbuf b = {0};
        int64_t start = i;
        for (; i < n && i - start < 100; i++) oai_sb_printf(&b, "%s%lld", i > start ? " " : "", (long long)ids[i]);
        t->host->log(TEMA_LOG_WARN, WHO, "domain %s: failed items: %s", t->domain, b.data ? b.data : "");
        oai_sb_free(&b);
    }
}

static char *json_list(char *const *s, int n)
{
    json_object *arr = json_object_new_array();
    for (int k = 0; k < n; k++) json_object_array_add(arr, json_object_new_string(s[k]));
    const char *text = json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    char *out = text ? strdup(text) : NULL;
    json_object_put(arr);
    return out;
}

/* Where each request's items start in `order` (first[n_jobs] = n_scored): up to `batch` items,
 * fewer where the estimated prompt plus answer would pass the context window `ctx` (0: no
 * limit). Returns the number of requests, or -1 out of memory. */
static int64_t plan_batches(oai_tagger *t, int n_tags, size_t tags_json_len, char *const *clean, const int64_t *order,
                            int64_t n_scored, int64_t ctx, int64_t **first_out)
{
    int64_t *first = malloc((size_t)(n_scored + 1) * sizeof *first), n_jobs = 0;
    if (!(*first_out = first)) return -1;
    int64_t per_answer = ANSWER_TOKENS_PER_ITEM + (t->choose > 0 ? (t->choose < n_tags ? t->choose : n_tags) *
                                                                         ANSWER_TOKENS_PER_CHOICE
                                                                   : (int64_t)n_tags * ANSWER_TOKENS_PER_SCORE);
    int64_t fixed = (int64_t)(strlen(t->score_prompt) + tags_json_len) / CHARS_PER_TOKEN + 32; /* + chat template */
    int64_t used = 0, in_batch = 0, too_long = 0;
    for (int64_t i = 0; i < n_scored; i++) {
        int64_t need = (int64_t)(strlen(clean[order[i]]) + 8) / CHARS_PER_TOKEN + per_answer;
        bool fits = ctx <= 0 || fixed + used + need <= ctx;
        if (in_batch == 0 || in_batch == t->batch || !fits) {
            first[n_jobs++] = i;
            used = in_batch = 0;
        }
        if (ctx > 0 && fixed + need > ctx) too_long++;
        used += need;
        in_batch++;
    }
    first[n_jobs] = n_scored;
    if (too_long)
        t->host->log(TEMA_LOG_WARN, WHO,
                     "domain %s: %lld items need more tokens than the context window (%lld) even alone (estimated); "
                     "their answers may be cut off (a larger --ctx for the server, fewer n_tags, or scoring: choose helps)",
                     t->domain, (long long)too_long, (long long)ctx);
    if (ctx > 0 && n_jobs > (n_scored + t->batch - 1) / t->batch)
        t->host->log(TEMA_LOG_INFO, WHO,
                     "domain %s: %lld requests of up to %lld items, fewer per request where %lld tokens of context "
                     "would not hold prompt and answer",
                     t->domain, (long long)n_jobs, (long long)t->batch, (long long)ctx);
    return n_jobs;
}

/* One request per planned batch of `order` (indices of the titled items). */
static oai_job *score_jobs(const oai_tagger *t, int n_tags, const char *tags_json, char *const *clean,
                           const int64_t *order, const int64_t *first, int64_t n_jobs)
{
    oai_job *jobs = calloc((size_t)n_jobs, sizeof *jobs);
    char k_text[32];
    snprintf(k_text, sizeof k_text, "%lld", (long long)(t->choose < n_tags ? t->choose : n_tags));
    for (int64_t b = 0; jobs && b < n_jobs; b++) {
        oai_job *j = &jobs[b];
        *j = (oai_job){.kind = OAI_SCORE, .index = (int)b, .seed = -1, .first = first[b]};
        j->n_items = (int)(first[b + 1] - first[b]);
        j->rows = calloc((size_t)j->n_items * (size_t)n_tags, sizeof *j->rows);
        j->item_ok = calloc((size_t)j->n_items, sizeof *j->item_ok);
        oai_sbuf lines = {0};
        for (int k = 0; k < j->n_items; k++) oai_sb_printf(&lines, "%d: %s\n", k + 1, clean[order[j->first + k]]);
        if (!lines.failed) lines.data[--lines.len] = '\0'; /* the template decides what follows the last line */
        char n_text[32];
        snprintf(n_text, sizeof n_text, "%d", j->n_items);
        const char *keys[] = {"domain", "tags", "items", "n_items", "k"};
        const char *values[] = {t->domain, tags_json, lines.data, n_text, k_text};
        j->prompt = lines.failed ? NULL : fill_template(t->score_prompt, keys, values, 5);
        oai_sb_free(&lines);
        if (!j->rows || !j->item_ok || !j->prompt) {
            oai_jobs_free(jobs, n_jobs);
            return NULL;
        }
    }
    return jobs;
}

/* Copy each batch's rows into `score`; the items no answer covered go to the log. */
static tema_status collect_scores(oai_tagger *t, const oai_job *jobs, int64_t n_jobs, const int64_t *order,
                                  int64_t n_scored, int n_tags, float *score, tema_err *err)
{
    int64_t *failed = malloc((size_t)n_scored * sizeof *failed), n_failed = 0;
    if (!failed) return tema_fail(err, TEMA_ENOMEM, "%s: out of memory", WHO);
    const char *last_error = "";
    for (int64_t b = 0; b < n_jobs; b++) {
        const oai_job *j = &jobs[b];
        t->n.clamped += j->n_clamped;
        for (int k = 0; k < j->n_items; k++) {
            int64_t item = order[j->first + k];
            /* A failed batch still gives the items its last parsable answer covered. */
            if (j->item_ok[k])
                memcpy(score + (size_t)item * (size_t)n_tags, j->rows + (size_t)k * (size_t)n_tags,
                       (size_t)n_tags * sizeof *score);
            else
                failed[n_failed++] = item;
        }
        if (!j->ok) last_error = j->last_error;
    }
    if (n_failed > 0) log_failed_items(t, failed, n_failed, n_scored, last_error);
    t->n.unanswered += n_failed;
    free(failed);
    if (n_failed == n_scored)
        return tema_fail(err, TEMA_EIO,
                         "%s: domain %s: no item got scores from %s (%lld of %lld requests failed; last error: %s); fix "
                         "the server or the prompt, then rerun (cached answers are kept)",
                         WHO, t->domain, t->url, (long long)n_jobs, (long long)n_jobs, last_error);
    return TEMA_OK;
}

static tema_status score_items(oai_tagger *t, char *const *tags, int n_tags, const char *const *titles,
                               int64_t n_items, float *score, tema_err *err)
{
    tema_status st = TEMA_OK;
    char **clean = calloc((size_t)(n_items ? n_items : 1), sizeof *clean);
    int64_t *order = malloc((size_t)(n_items ? n_items : 1) * sizeof *order), n_scored = 0, n_jobs = 0;
    int64_t *first = NULL;
    oai_job *jobs = NULL;
    char *tags_json = NULL;
    for (int64_t i = 0; clean && order && i < n_items; i++) {
        if (!titles || !titles[i]) continue;
        if (!(clean[i] = oai_clean_title(titles[i]))) goto oom;
        if (clean[i][0]) order[n_scored++] = i;
    }
    if (!clean || !order) goto oom;
    if (n_scored < n_items)
        t->host->log(TEMA_LOG_INFO, WHO, "domain %s: %lld of %lld items have no title; their score rows stay 0",
                     t->domain, (long long)(n_items - n_scored), (long long)n_items);
    if (n_scored == 0) goto done;
    int64_t n_ctx = t->context, slots = 0;
    if (n_ctx == 0) {
        oai_server_props(t, &n_ctx, &slots);
        if (slots > 0 && slots < t->concurrency)
            t->host->log(TEMA_LOG_INFO, WHO,
                         "the server has %lld slots and concurrency is %lld: requests beyond the slots wait in its "
                         "queue (start it with more slots, e.g. tools/llm-server --parallel %lld)",
                         (long long)slots, (long long)t->concurrency, (long long)t->concurrency);
    }
    if (!(tags_json = json_list(tags, n_tags))) goto oom;
    n_jobs = plan_batches(t, n_tags, strlen(tags_json), clean, order, n_scored, n_ctx, &first);
    if (n_jobs < 0 || !(jobs = score_jobs(t, n_tags, tags_json, clean, order, first, n_jobs))) {
        n_jobs = 0;
        goto oom;
    }
    oai_parse_ctx ctx = {.n_tags = n_tags, .tags = tags, .choose = (int)t->choose};
    st = oai_run_jobs(t, &ctx, jobs, n_jobs, "item scores", err);
    if (st == TEMA_OK) st = collect_scores(t, jobs, n_jobs, order, n_scored, n_tags, score, err);
    goto done;
oom:
    st = tema_fail(err, TEMA_ENOMEM, "%s: out of memory preparing %lld items", WHO, (long long)n_items);
done:
    for (int64_t i = 0; clean && i < n_items; i++) free(clean[i]);
    free(clean);
    free(order);
    free(first);
    free(tags_json);
    oai_jobs_free(jobs, n_jobs);
    return st;
}

/* ---- the run summary ---- */

/* One line at the end of tag(): what it cost and how good the server's answers were. */
static void log_summary(const oai_tagger *t, int64_t n_items, int64_t untagged)
{
    const oai_counters *n = &t->n;
    char tagged[96] = "", speed[128] = "tokens/s unknown (the server reports no usage.completion_tokens)";
    if (untagged >= 0)
        snprintf(tagged, sizeof tagged, "; %lld of %lld items without any tag", (long long)untagged, (long long)n_items);
    if (n->tokens > 0 && n->token_seconds > 0)
        snprintf(speed, sizeof speed, "%.1f tokens/s (%lld tokens in %.1f s of requests)",
                 (double)n->tokens / n->token_seconds, (long long)n->tokens, n->token_seconds);
    char level[96];
    if (t->level != t->structured)
        snprintf(level, sizeof level, "%s (the server refused %s)", oai_structured_names[t->level],
                 oai_structured_names[t->structured]);
    else
        snprintf(level, sizeof level, "%s", oai_structured_names[t->level]);
    t->host->log(TEMA_LOG_INFO, WHO,
                 "domain %s: summary: %lld requests sent, %lld cache hits, %lld retries, %lld answers cached now; "
                 "invalid answers: %lld transport, %lld HTTP status, %lld unparsable, %lld wrong shape; %lld scores "
                 "clamped to 0..100%s; structured output %s; %s",
                 t->domain, (long long)n->requests, (long long)n->cache_hits, (long long)n->retries,
                 (long long)n->cache_writes, (long long)n->faults[OAI_FAULT_TRANSPORT],
                 (long long)n->faults[OAI_FAULT_STATUS], (long long)n->faults[OAI_FAULT_UNPARSABLE],
                 (long long)n->faults[OAI_FAULT_SHAPE], (long long)n->clamped, tagged, level, speed);
}

/* ---------------- ops ---------------- */

static void openai_destroy(void *self)
{
    oai_tagger *t = self;
    if (!t) return;
    free(t->endpoint);
    free(t->url);
    free(t->model);
    free(t->api_key_env);
    free(t->domain);
    free(t->cache_dir);
    free(t->prompt_dir);
    free(t->domain_prompt);
    free(t->score_prompt);
    for (int k = 0; k < t->n_fixed_tags; k++) free(t->fixed_tags[k]);
    free(t->fixed_tags);
    curl_slist_free_all(t->headers);
    free(t);
    curl_global_cleanup();
}

static tema_status opt_int(const oai_tagger *t, const tema_cfg *opts, const char *name, int64_t *out, tema_err *err)
{
    return plugin_opt_int(t->host, opts, WHO, name, out, err);
}

static tema_status opt_str(const oai_tagger *t, const tema_cfg *opts, const char *name, const char **out,
                           tema_err *err)
{
    return plugin_opt_str(t->host, opts, WHO, name, out, err);
}

static tema_status load_prompt(const char *dir, const char *file, const char *const *required, int n_required,
                               char **out, tema_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int e = 0;
    char *text = oai_read_text_file(path, &e);
    if (!text)
        return tema_fail(err, TEMA_ENOTFOUND,
                         "%s: cannot read prompt file %s: %s; set the option prompt_dir to the folder holding %s and %s "
                         "(tema ships them in experiments/prompts/)",
                         WHO, path, strerror(e), DOMAIN_PROMPT_FILE, SCORE_PROMPT_FILE);
    for (int k = 0; k < n_required; k++)
        if (!strstr(text, required[k])) {
            free(text);
            return tema_fail(err, TEMA_EINVAL, "%s: prompt file %s lacks the placeholder %s; put it back where the %s go",
                             WHO, path, required[k], required[k]);
        }
    *out = text;
    return TEMA_OK;
}

/* The numeric and enum options, range-checked. */
static tema_status read_numbers(oai_tagger *t, const tema_cfg *opts, tema_err *err)
{
    tema_status st;
    const char *structured = NULL, *scoring = NULL;
    if ((st = opt_int(t, opts, "votes", &t->votes, err)) || (st = opt_int(t, opts, "n_tags", &t->n_tags, err)) ||
        (st = opt_int(t, opts, "batch", &t->batch, err)) || (st = opt_int(t, opts, "retries", &t->retries, err)) ||
        (st = opt_int(t, opts, "backoff_ms", &t->backoff_ms, err)) ||
        (st = opt_int(t, opts, "concurrency", &t->concurrency, err)) ||
        (st = opt_int(t, opts, "max_tokens", &t->max_tokens, err)) ||
        (st = opt_int(t, opts, "max_reply_mb", &t->max_reply_mb, err)) ||
        (st = opt_int(t, opts, "choose", &t->choose, err)) ||
        (st = opt_int(t, opts, "context_tokens", &t->context, err)) || (st = opt_str(t, opts, "scoring", &scoring, err)) ||
        (st = opt_str(t, opts, "structured", &structured, err)))
        return st;
    if (strcmp(scoring, "scores") && strcmp(scoring, "choose"))
        return tema_fail(err, TEMA_EINVAL, "%s: option scoring is \"%s\"; use scores or choose", WHO, scoring);
    if (!strcmp(scoring, "scores")) t->choose = 0;
    if ((st = plugin_opt_float(t->host, opts, WHO, "timeout_s", &t->timeout_s, err)) ||
        (st = plugin_opt_float(t->host, opts, WHO, "progress_s", &t->progress_s, err)))
        return st;
    int level = -1;
    for (int k = 0; k < 3; k++)
        if (!strcmp(structured, oai_structured_names[k])) level = k;
    if (level < 0)
        return tema_fail(err, TEMA_EINVAL, "%s: option structured is \"%s\"; use json_schema, json_object or none", WHO,
                         structured);
    t->structured = t->level = (oai_structured)level;
    if (t->votes < 1 || t->n_tags < 1 || t->batch < 1 || t->retries < 0 || t->backoff_ms < 0 || t->concurrency < 1 ||
        t->max_tokens < 0 || t->context < 0 || (t->choose < 0) || !(t->timeout_s > 0) || !(t->progress_s >= 0) || t->votes > 100 || t->n_tags > 500 ||
        t->batch > 500)
        return tema_fail(err, TEMA_EINVAL,
                         "%s: options out of range (votes 1..100, n_tags 1..500, batch 1..500, concurrency >= 1, "
                         "timeout_s > 0, progress_s/retries/backoff_ms/max_tokens >= 0)",
                         WHO);
    return TEMA_OK;
}

/* Endpoint and model, from the options or else the environment. */
static tema_status read_server(oai_tagger *t, const char *endpoint, const char *model, tema_err *err)
{
    if (!*endpoint) endpoint = getenv("TEMA_LLM_ENDPOINT") ? getenv("TEMA_LLM_ENDPOINT") : "";
    if (!*endpoint)
        return tema_fail(err, TEMA_EINVAL,
                         "%s: no LLM endpoint: set the tagger option `endpoint` or the environment variable "
                         "TEMA_LLM_ENDPOINT to the base URL of an OpenAI-compatible API (e.g. http://127.0.0.1:8080/v1 "
                         "for llama.cpp's server), or use `tagger: lexical`, which needs no LLM",
                         WHO);
    if (!*model) model = getenv("TEMA_LLM_MODEL") ? getenv("TEMA_LLM_MODEL") : "";
    if (!*model)
        return tema_fail(err, TEMA_EINVAL,
                         "%s: no model name: set the tagger option `model` or the environment variable TEMA_LLM_MODEL "
                         "(servers serving one model, like llama.cpp's, accept any name)",
                         WHO);
    size_t el = strlen(endpoint);
    while (el > 0 && endpoint[el - 1] == '/') el--;
    t->endpoint = strndup(endpoint, el);
    t->model = strdup(model);
    t->url = malloc(el + sizeof "/chat/completions");
    if (!t->endpoint || !t->model || !t->url) return tema_fail(err, TEMA_ENOMEM, "%s: out of memory", WHO);
    sprintf(t->url, "%s/chat/completions", t->endpoint);
    return TEMA_OK;
}

/* The request headers; the key goes into curl's list only and the copy is wiped. */
static struct curl_slist *make_headers(const tema_host *host, const char *key_env)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (h) h = curl_slist_append(h, "Accept: application/json");
    const char *key = *key_env ? getenv(key_env) : NULL;
    if (h && key && *key) {
        oai_sbuf auth = {0};
        oai_sb_printf(&auth, "Authorization: Bearer %s", key);
        struct curl_slist *h2 = auth.failed ? NULL : curl_slist_append(h, auth.data);
        if (auth.data) memset(auth.data, 0, auth.len);
        oai_sb_free(&auth);
        if (!h2) curl_slist_free_all(h);
        h = h2;
    } else if (h) {
        host->log(TEMA_LOG_DEBUG, WHO, "environment variable %s is unset or empty: sending no API key",
                  *key_env ? key_env : "(api_key_env is empty)");
    }
    return h;
}

static tema_status openai_create(const tema_host *host, const tema_cfg *opts, const char *domain, void **self,
                                 tema_err *err)
{
    *self = NULL;
    if (!domain || !*domain) return tema_fail(err, TEMA_EINVAL, "%s: no domain name given (a bug in the caller)", WHO);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return tema_fail(err, TEMA_EIO, "%s: libcurl failed to initialise", WHO);
    oai_tagger *t = calloc(1, sizeof *t);
    if (!t) {
        curl_global_cleanup();
        return tema_fail(err, TEMA_ENOMEM, "%s: out of memory", WHO);
    }
    t->host = host;
    tema_status st;
    const char *endpoint, *model, *key_env, *cache_dir, *prompt_dir;
    if ((st = opt_str(t, opts, "endpoint", &endpoint, err)) || (st = opt_str(t, opts, "model", &model, err)) ||
        (st = opt_str(t, opts, "api_key_env", &key_env, err)) || (st = opt_str(t, opts, "cache_dir", &cache_dir, err)) ||
        (st = opt_str(t, opts, "prompt_dir", &prompt_dir, err)) || (st = read_numbers(t, opts, err)) ||
        (st = read_server(t, endpoint, model, err)))
        goto fail;
    if (!*cache_dir || !*prompt_dir) {
        st = tema_fail(err, TEMA_EINVAL, "%s: options cache_dir and prompt_dir must not be empty", WHO);
        goto fail;
    }
    t->api_key_env = strdup(key_env);
    t->domain = strdup(domain);
    t->cache_dir = strdup(cache_dir);
    t->prompt_dir = strdup(prompt_dir);
    if (!t->api_key_env || !t->domain || !t->cache_dir || !t->prompt_dir) {
        st = tema_fail(err, TEMA_ENOMEM, "%s: out of memory", WHO);
        goto fail;
    }
    const char *tag_list = NULL;
    if ((st = opt_str(t, opts, "tag_list", &tag_list, err))) goto fail;
    if (strcmp(tag_list, "vote") && strcmp(tag_list, "vocabulary")) {
        st = tema_fail(err, TEMA_EINVAL, "%s: option tag_list is \"%s\"; use vote or vocabulary", WHO, tag_list);
        goto fail;
    }
    if (!strcmp(tag_list, "vocabulary") && (st = vocabulary_tags(t, opts, err))) goto fail;
    const char *need_domain[] = {"{domain}"}, *need_score[] = {"{tags}", "{items}"};
    if ((st = load_prompt(prompt_dir, DOMAIN_PROMPT_FILE, need_domain, 1, &t->domain_prompt, err)) ||
        (st = load_prompt(prompt_dir, t->choose > 0 ? CHOOSE_PROMPT_FILE : SCORE_PROMPT_FILE, need_score, 2,
                          &t->score_prompt, err)))
        goto fail;
    if (!(t->headers = make_headers(host, key_env))) {
        st = tema_fail(err, TEMA_ENOMEM, "%s: out of memory", WHO);
        goto fail;
    }
    *self = t;
    return TEMA_OK;
fail:
    openai_destroy(t);
    return st;
}

/* Items whose score row is all zero: the tag encoder has nothing for them. */
static int64_t count_untagged(const float *score, int64_t n_items, int n_tags)
{
    int64_t n = 0;
    for (int64_t i = 0; i < n_items; i++) {
        bool any = false;
        for (int k = 0; k < n_tags && !any; k++) any = score[(size_t)i * (size_t)n_tags + (size_t)k] > 0;
        n += !any;
    }
    return n;
}

static tema_status tag_domain(oai_tagger *t, const char *const *titles, int64_t n_items, tema_tag_vocab *out,
                              tema_err *err)
{
    char **tags = NULL;
    int n_tags = 0;
    tema_status st = TEMA_OK;
    if (t->fixed_tags) { /* a copy: the list below is freed after every domain */
        if (!(tags = calloc((size_t)t->n_fixed_tags, sizeof *tags))) return tema_fail(err, TEMA_ENOMEM, "%s: out of memory", WHO);
        for (n_tags = 0; n_tags < t->n_fixed_tags; n_tags++)
            if (!(tags[n_tags] = strdup(t->fixed_tags[n_tags]))) st = tema_fail(err, TEMA_ENOMEM, "%s: out of memory", WHO);
        t->host->log(TEMA_LOG_INFO, WHO, "domain %s: %d tags from the vocabulary (tag_list: vocabulary), no voting",
                     t->domain, n_tags);
    } else {
        st = domain_tags(t, &tags, &n_tags, err);
    }
    if (st != TEMA_OK) {
        for (int k = 0; tags && k < n_tags; k++) free(tags[k]);
        free(tags);
        return st;
    }
    size_t cells = (size_t)n_items * (size_t)n_tags;
    float *score = t->host->alloc(cells * sizeof *score);
    char **names = t->host->alloc((size_t)n_tags * sizeof *names);
    if (score) memset(score, 0, cells * sizeof *score);
    if (names) memset(names, 0, (size_t)n_tags * sizeof *names);
    for (int k = 0; names && k < n_tags; k++) {
        size_t len = strlen(tags[k]) + 1;
        if (!(names[k] = t->host->alloc(len))) {
            st = tema_fail(err, TEMA_ENOMEM, "%s: out of memory", WHO);
            break;
        }
        memcpy(names[k], tags[k], len);
    }
    if (st == TEMA_OK && (!score || !names)) st = tema_fail(err, TEMA_ENOMEM, "%s: out of memory", WHO);
    if (st == TEMA_OK) st = score_items(t, tags, n_tags, titles, n_items, score, err);
    for (int k = 0; k < n_tags; k++) free(tags[k]);
    free(tags);
    if (st != TEMA_OK) {
        for (int k = 0; names && k < n_tags; k++) t->host->free(names[k]);
        t->host->free(names);
        t->host->free(score);
        return st;
    }
    out->n_tags = n_tags;
    out->tags = names;
    out->score = score;
    out->n_incomplete = t->n.unanswered;
    return TEMA_OK;
}

static tema_status openai_tag(void *self, const char *const *titles, int64_t n_items, tema_tag_vocab *out,
                              tema_err *err)
{
    oai_tagger *t = self;
    *out = (tema_tag_vocab){0};
    if (n_items < 0) return tema_fail(err, TEMA_EINVAL, "%s: negative item count %lld", WHO, (long long)n_items);
    t->n = (oai_counters){0};
    t->level = t->structured;
    tema_status st = tag_domain(t, titles, n_items, out, err);
    log_summary(t, n_items, st == TEMA_OK ? count_untagged(out->score, n_items, out->n_tags) : -1);
    return st;
}

static const tema_tagger_ops openai_ops = {
    .create_with_host = openai_create,
    .tag = openai_tag,
    .destroy = openai_destroy,
};

static const tema_plugin openai_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_TAGGER, "openai", "1.3.0",
                       "LLM tags over an OpenAI-compatible API: R voted domain queries, batched item scores, on-disk cache",
                       openai_options, openai_ops),
};

TEMA_PLUGIN_DEFINE(openai_plugin)
