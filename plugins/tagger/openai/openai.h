/* plugins/tagger/openai/openai.h - what the three files of the `openai` tagger share:
 *   openai.c     the plugin: options, Algorithm 1 (voting), item scoring, the run summary
 *   answer.c     what is asked and what is accepted: prompts' cleaning, the JSON schemas of
 *                structured output, lenient parsing of the answers
 *   transport.c  requests: curl multi, retries, the on-disk cache, structured-output fallback
 * The overview (phases, cache, transport, the API key) is in openai.c's header comment.
 * Every external name starts with oai_: the static test libraries of all plugins are linked
 * into one program. */
#ifndef TEMA_PLUGINS_TAGGER_OPENAI_H
#define TEMA_PLUGINS_TAGGER_OPENAI_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "tema/plugin.h"

#define OAI_WHO "tagger openai"
#define OAI_MAX_TAG_BYTES 80 /* longer "tags" are not tags; dropped */

/* ---- growable string ---- */

typedef struct oai_sbuf {
    char *data;
    size_t len, cap;
    bool failed; /* out of memory once: stays failed */
    size_t max_len; /* transfers: a reply longer than this is refused (0: no limit) */
    bool over;      /* ... and was */
} oai_sbuf;

bool oai_sb_add(oai_sbuf *b, const char *s, size_t n);
bool oai_sb_str(oai_sbuf *b, const char *s);
__attribute__((format(printf, 2, 3))) bool oai_sb_printf(oai_sbuf *b, const char *fmt, ...);
void oai_sb_free(oai_sbuf *b);
double oai_now_s(void);
char *oai_read_text_file(const char *path, int *errnum);

/* ---- structured output ----
 * Ordered from the strictest: a server that refuses one level is asked with the next. */
typedef enum oai_structured { OAI_JSON_SCHEMA, OAI_JSON_OBJECT, OAI_PLAIN } oai_structured;
extern const char *const oai_structured_names[3]; /* the option's values */

/* ---- answers ---- */

typedef enum oai_job_kind { OAI_VOTE, OAI_SCORE } oai_job_kind;

/* Why an answer was not used; counted by kind in the run summary. */
typedef enum oai_fault {
    OAI_FAULT_NONE,
    OAI_FAULT_TRANSPORT, /* no complete HTTP reply */
    OAI_FAULT_STATUS,    /* an HTTP status other than 2xx */
    OAI_FAULT_UNPARSABLE, /* no JSON in the answer, or cut off */
    OAI_FAULT_SHAPE,     /* JSON, but not the structure asked for (or not every item) */
    OAI_N_FAULTS
} oai_fault;

typedef struct oai_vote_answer {
    int n;
    char **tag;    /* normalized, distinct */
    double *score; /* LLM score, 0 when none given */
} oai_vote_answer;

typedef struct oai_job {
    oai_job_kind kind;
    int index;              /* vote number or batch number */
    char *prompt;           /* the user message */
    int seed;               /* sent when >= 0 */
    oai_structured level;   /* what `body` asks for */
    char *body;             /* request JSON */
    char path[PATH_MAX];    /* cache file */
    int attempts;
    double not_before;      /* monotonic seconds */
    bool done, ok, in_flight, cached;
    char last_error[320];
    oai_sbuf reply;
    CURL *easy;
    long completion_tokens; /* of the last answer, -1 when the server did not say */
    int n_clamped;          /* scores of the last parsed answer moved into 0..100 */
    /* vote */
    oai_vote_answer vote;
    /* score */
    int64_t first;          /* index into the batch item list */
    int n_items;
    float *rows;            /* [n_items * n_tags] */
    bool *item_ok;          /* [n_items] */
} oai_job;

/* What the parsers and schemas need besides the job. */
typedef struct oai_parse_ctx {
    int n_tags;
    char *const *tags;      /* voted, normalized (scoring); NULL when voting */
    int n_wanted;           /* voting: tags asked for */
    int choose;             /* scoring: 0 = a score per tag; k > 0 = a ranked list of <= k tags */
} oai_parse_ctx;

char *oai_normalize_tag(const char *s);
char *oai_clean_title(const char *title);
void oai_snippet(const char *s, size_t len, char *out, size_t size);
json_object *oai_parse_json_exact(const char *text, size_t len);
void oai_vote_answer_free(oai_vote_answer *v);
/* Parse a chat-completions reply into the job (vote list or score rows); OAI_FAULT_NONE
 * when the answer is complete and valid (cacheable), else the kind of fault and `why`. */
oai_fault oai_parse_reply(const oai_parse_ctx *c, oai_job *j, const char *raw, size_t len, char *why,
                          size_t why_size);
/* response_format for a job at `level` (NULL for OAI_PLAIN); caller puts. */
json_object *oai_response_format(const oai_parse_ctx *c, const oai_job *j, oai_structured level);

/* ---- the tagger ---- */

typedef struct oai_counters {
    int64_t requests, retries, cache_hits, cache_writes, clamped, format_rejections;
    int64_t faults[OAI_N_FAULTS];
    int64_t tokens;        /* usage.completion_tokens summed over the answers that gave it */
    double token_seconds;  /* the request times of those answers */
    int64_t unanswered;    /* items and domain queries still without an answer: asked again next time */
} oai_counters;

typedef struct oai_tagger {
    const tema_host *host;
    char *endpoint, *url, *model, *api_key_env, *domain, *cache_dir, *prompt_dir;
    char *domain_prompt, *score_prompt; /* templates (score_prompt: item_choose.txt for choose) */
    struct curl_slist *headers;         /* holds the key: never logged */
    int64_t votes, n_tags, batch, retries, backoff_ms, concurrency, max_tokens, max_reply_mb;
    int64_t choose;            /* scoring: choose's list length; 0 for scoring: scores */
    int64_t context;           /* option context_tokens: 0 = ask the server */
    char **fixed_tags;         /* tag_list: vocabulary - the names, normalized; NULL when voting */
    int n_fixed_tags;
    double timeout_s, progress_s;
    oai_structured structured; /* as configured */
    oai_structured level;      /* in use: lowered when the server refuses a level */
    bool cache_dir_ready;
    oai_counters n;            /* of one tag() call */
} oai_tagger;

/* The server's context per slot and slot count (llama.cpp's /props); 0 when not told. */
void oai_server_props(const oai_tagger *t, int64_t *n_ctx, int64_t *slots);


/* Send (or take from the cache) every job; jobs that fail after the retries end with
 * done && !ok. `unit` names what the progress lines count: a score job counts its items. */
tema_status oai_run_jobs(oai_tagger *t, const oai_parse_ctx *c, oai_job *jobs, int64_t n_jobs, const char *phase,
                         tema_err *err);
void oai_jobs_free(oai_job *jobs, int64_t n);

#endif
