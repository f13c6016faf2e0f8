/* plugins/tagger/openai.c - tags from an LLM over the OpenAI-compatible chat-completions API
 * (llama.cpp's server, Ollama, vLLM, hosted services), the TEMA-LLM paper's Sec. III.C-D.
 *
 * Two phases per domain:
 *   1. Algorithm 1: the domain prompt (prompt_dir/domain_tags.txt) is sent `votes` times at
 *      temperature 0 (request r carries seed r); frequency voting over the R answers keeps the
 *      `n_tags` tags named by the most answers (ties: higher summed LLM score, then first seen).
 *   2. The scoring prompt (prompt_dir/item_scores.txt) rates up to `batch` items per request
 *      against the voted list: 1..100 per tag that applies, 0 for tags left out.
 *
 * SIGINT or SIGTERM stops the requests within a fraction of a second; tag() then returns
 * TEMA_EINTERRUPTED and passes the signal on to the handler that was installed before.
 *
 * Every request whose answer parses completely is stored under cache_dir in a file named by a
 * hash of (endpoint, model, request body); the body holds the prompt and every sampling
 * parameter. The file keeps the request too and is checked against it when read, so a hash
 * collision is a miss, never a wrong answer. Files are written atomically (temp, fsync,
 * rename) and only for valid answers: a rerun makes no request for what is cached, and an
 * interrupted run resumes with what is missing.
 *
 * Transport: one curl multi handle, at most `concurrency` requests in flight. HTTP 408, 425,
 * 429 and 5xx, transport errors (timeouts, dropped connections, truncated bodies) and answers
 * that do not parse are retried `retries` times after backoff_ms * 2^(attempt-1) (or the
 * server's Retry-After when longer). 401/403/404 stop the run: every later request would fail
 * the same way. Items still failing after the retries keep an all-zero score row and are
 * logged with their indices; the run fails only when every item failed.
 *
 * The API key is read from the environment variable named by api_key_env; it is sent as a
 * Bearer header and never logged, hashed or cached. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "../tag_plugin.h"

#define WHO "tagger openai"
#define DOMAIN_PROMPT_FILE "domain_tags.txt"
#define SCORE_PROMPT_FILE "item_scores.txt"
#define MAX_TITLE_BYTES 400       /* longer titles are cut (at a UTF-8 boundary) */
#define MAX_TAG_BYTES 80          /* longer "tags" are not tags; dropped */
#define MAX_REPLY_BYTES (64u << 20)
#define MAX_BACKOFF_MS 60000.0
#define MAX_RETRY_AFTER_MS 300000.0
#define CACHE_FORMAT "tema-openai-cache 1"


/* SIGINT/SIGTERM during tag(): a long tagging run must stop when asked, and the host's own
 * handler (tema run's) only sets a flag this plugin cannot see. tag() catches both, stops at
 * the next event, restores the previous handlers and re-raises the signal for them. */
static volatile sig_atomic_t g_stop_signal;
static void on_stop_signal(int sig) { g_stop_signal = sig; }

static const tema_option openai_options[] = {
    {"endpoint", TEMA_OPT_STRING, "\"\"", 1, 0, NULL,
     "base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8080/v1 (empty: env TEMA_LLM_ENDPOINT)"},
    {"model", TEMA_OPT_STRING, "\"\"", 1, 0, NULL, "model name sent with every request (empty: env TEMA_LLM_MODEL)"},
    {"api_key_env", TEMA_OPT_STRING, "TEMA_LLM_API_KEY", 1, 0, NULL,
     "NAME of the environment variable holding the API key (unset or empty: no Authorization header)"},
    {"votes", TEMA_OPT_INT, "5", 1, 100, NULL, "R: domain prompt queries voted over (Algorithm 1)"},
    {"n_tags", TEMA_OPT_INT, "30", 1, 500, NULL, "N: tags asked for and kept after voting"},
    {"batch", TEMA_OPT_INT, "20", 1, 500, NULL, "items scored per request"},
    {"timeout_s", TEMA_OPT_FLOAT, "120", 0.01, 86400, NULL, "seconds before a request is abandoned (and retried)"},
    {"retries", TEMA_OPT_INT, "4", 0, 100, NULL, "extra attempts after a failed request"},
    {"backoff_ms", TEMA_OPT_INT, "1000", 0, 3600000, NULL, "first retry delay; doubles with every attempt"},
    {"concurrency", TEMA_OPT_INT, "4", 1, 256, NULL, "requests in flight at most"},
    {"max_tokens", TEMA_OPT_INT, "4096", 0, 10000000, NULL, "answer length limit sent to the server (0: not sent)"},
    {"json_mode", TEMA_OPT_BOOL, "true", 1, 0, NULL, "ask for response_format json_object"},
    {"cache_dir", TEMA_OPT_STRING, "results/llm-cache", 1, 0, NULL, "folder of cached request/response pairs"},
    {"prompt_dir", TEMA_OPT_STRING, "experiments/prompts", 1, 0, NULL,
     "folder holding " DOMAIN_PROMPT_FILE " and " SCORE_PROMPT_FILE},
};

/* ---------------- small helpers ---------------- */

typedef struct sbuf {
    char *data;
    size_t len, cap;
    bool failed; /* out of memory once: stays failed */
} sbuf;

static bool sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->failed) return false;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = true;
            return false;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

static bool sb_str(sbuf *b, const char *s) { return sb_add(b, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static bool sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return false;
    if ((size_t)n < sizeof tmp) return sb_add(b, tmp, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big) return b->failed = true, false;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    bool ok = sb_add(b, big, (size_t)n);
    free(big);
    return ok;
}

static void sb_free(sbuf *b)
{
    free(b->data);
    *b = (sbuf){0};
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* 64-bit FNV-1a (the plugin cannot call the core's tema_hash64). */
static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static char *read_text_file(const char *path, int *errnum)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *errnum = errno;
        return NULL;
    }
    sbuf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) sb_add(&b, chunk, n);
    bool bad = ferror(f) || b.failed;
    fclose(f);
    if (bad) {
        sb_free(&b);
        *errnum = EIO;
        return NULL;
    }
    if (!b.data) return strdup("");
    return b.data;
}

static int mkdirs(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return ENAMETOOLONG;
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return errno;
            *p = c;
            if (c == '\0') break;
        }
    }
    return 0;
}

/* Temp file in the same folder, fsync, rename, fsync the folder: readers see the old file
 * or the whole new one, never a part. */
static int write_atomic(const char *path, const char *data, size_t len)
{
    static unsigned counter;
    char tmp[PATH_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", path, (long)getpid(), __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) return errno;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return e;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return e;
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return e;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        int dfd = open(slash == dir ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    return 0;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
    unsigned c = s[0];
    size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || n > left || (n == 2 && c < 0xC2)) return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return n;
}

/* A title as one prompt line: control characters become spaces, invalid UTF-8 becomes '?',
 * runs of spaces collapse, cut at MAX_TITLE_BYTES on a character boundary. Caller frees;
 * "" when nothing printable is left. */
static char *clean_title(const char *title)
{
    size_t len = strlen(title), out_len = 0;
    char *out = malloc(MAX_TITLE_BYTES + 1);
    if (!out) return NULL;
    for (size_t i = 0; i < len;) {
        const unsigned char *s = (const unsigned char *)title + i;
        size_t n = utf8_seq(s, len - i);
        char one[4];
        size_t m = n;
        if (n == 0) {
            one[0] = '?';
            m = n = 1;
        } else if (n == 1 && (s[0] < 0x20 || s[0] == 0x7F)) {
            one[0] = ' ';
        } else {
            memcpy(one, s, n);
        }
        i += n;
        if (one[0] == ' ' && (out_len == 0 || out[out_len - 1] == ' ')) continue;
        if (out_len + m > MAX_TITLE_BYTES) break;
        memcpy(out + out_len, one, m);
        out_len += m;
    }
    while (out_len > 0 && out[out_len - 1] == ' ') out_len--;
    out[out_len] = '\0';
    return out;
}

/* Canonical tag: trimmed, inner whitespace collapsed, ASCII lower-case, surrounding quotes,
 * '#' and trailing '.' removed. NULL when empty or too long to be a tag. Caller frees. */
static char *normalize_tag(const char *s)
{
    while (*s && (isspace((unsigned char)*s) || *s == '"' || *s == '\'' || *s == '#')) s++;
    size_t len = strlen(s);
    while (len > 0 && (isspace((unsigned char)s[len - 1]) || s[len - 1] == '"' || s[len - 1] == '\'' ||
                       s[len - 1] == '.'))
        len--;
    if (len == 0 || len > MAX_TAG_BYTES) return NULL;
    char *out = malloc(len + 1);
    if (!out) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isspace(c)) {
            if (k > 0 && out[k - 1] != ' ') out[k++] = ' ';
        } else {
            out[k++] = (char)(c < 0x80 ? tolower(c) : c);
        }
    }
    out[k] = '\0';
    return out;
}

/* A number in a JSON value (number or numeric string); false otherwise. */
static bool json_number(json_object *v, double *out)
{
    if (!v) return false;
    enum json_type ty = json_object_get_type(v);
    if (ty == json_type_int || ty == json_type_double) {
        *out = json_object_get_double(v);
        return isfinite(*out);
    }
    if (ty == json_type_string) {
        const char *s = json_object_get_string(v);
        char *end;
        double d = strtod(s, &end);
        while (isspace((unsigned char)*end)) end++;
        if (end == s || *end || !isfinite(d)) return false;
        *out = d;
        return true;
    }
    return false;
}

/* Parse exactly text[0..len) as JSON; NULL when it is not one complete JSON value. */
static json_object *parse_json_exact(const char *text, size_t len)
{
    if (len > INT_MAX) return NULL;
    json_tokener *tok = json_tokener_new();
    if (!tok) return NULL;
    json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
    bool ok = obj && json_tokener_get_error(tok) == json_tokener_success;
    if (ok) {
        size_t used = json_tokener_get_parse_end(tok);
        while (used < len && isspace((unsigned char)text[used])) used++;
        ok = used == len;
    }
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(obj);
        return NULL;
    }
    return obj;
}

/* The JSON value inside an LLM's message. Models wrap it in code fences or prose, and
 * reasoning models put a <think>...</think> block first: after any such block, take the first
 * '{' or '[' from which a complete JSON value parses (json-c stops at its end). The parsers
 * check the structure, so an inner fragment of a cut-off answer is still rejected. */
static json_object *parse_content_json(const char *content)
{
    for (const char *p; (p = strstr(content, "</think>"));) content = p + strlen("</think>");
    size_t len = strlen(content);
    int tries = 0;
    for (const char *a = strpbrk(content, "{["); a && tries < 64; a = strpbrk(a + 1, "{["), tries++) {
        size_t left = len - (size_t)(a - content);
        if (left > INT_MAX) return NULL;
        json_tokener *tok = json_tokener_new();
        if (!tok) return NULL;
        json_object *obj = json_tokener_parse_ex(tok, a, (int)left);
        bool ok = obj && json_tokener_get_error(tok) == json_tokener_success;
        json_tokener_free(tok);
        if (ok) return obj;
        json_object_put(obj);
    }
    return NULL;
}

/* Snippet of a server reply for error messages: printable ASCII only. */
static void snippet(const char *s, size_t len, char *out, size_t size)
{
    size_t k = 0;
    for (size_t i = 0; i < len && k + 1 < size; i++) out[k++] = (s[i] >= 0x20 && s[i] < 0x7F) ? s[i] : ' ';
    out[k] = '\0';
}

/* ---------------- the tagger ---------------- */

typedef struct openai_tagger {
    char *endpoint, *url, *model, *api_key_env, *domain, *cache_dir, *prompt_dir;
    char *domain_prompt, *score_prompt; /* templates */
    struct curl_slist *headers;         /* holds the key: never logged */
    int64_t votes, n_tags, batch, retries, backoff_ms, concurrency, max_tokens;
    double timeout_s;
    bool json_mode;
    bool cache_dir_ready;
    /* counters of one tag() call */
    int64_t n_requests, n_retries, n_cache_hits, n_cache_writes;
} openai_tagger;

typedef enum job_kind { JOB_VOTE, JOB_SCORE } job_kind;

typedef struct vote_answer {
    int n;
    char **tag;    /* normalized, distinct */
    double *score; /* LLM score, 0 when none given */
} vote_answer;

typedef struct job {
    job_kind kind;
    int index;              /* vote number or batch number */
    char *body;             /* request JSON */
    char path[PATH_MAX];    /* cache file */
    int attempts;
    double not_before;      /* monotonic seconds */
    bool done, ok, in_flight;
    char last_error[320];
    sbuf reply;
    CURL *easy;
    /* vote */
    vote_answer vote;
    /* score */
    int64_t first;          /* index into the batch item list */
    int n_items;
    float *rows;            /* [n_items * n_tags] */
    bool *item_ok;          /* [n_items] */
} job;

/* What the parsers need besides the job. */
typedef struct parse_ctx {
    int n_tags;
    char *const *tags;      /* voted, normalized */
} parse_ctx;

static void vote_answer_free(vote_answer *v)
{
    for (int i = 0; i < v->n; i++) free(v->tag[i]);
    free(v->tag);
    free(v->score);
    *v = (vote_answer){0};
}

/* Message content of a chat-completions reply (caller frees), or NULL with a reason. */
static char *reply_content(const char *raw, size_t len, char *why, size_t why_size)
{
    json_object *root = parse_json_exact(raw, len);
    if (!root) {
        char s[120];
        snippet(raw, len < 100 ? len : 100, s, sizeof s);
        snprintf(why, why_size, "reply is not JSON (starts \"%s\")", s);
        return NULL;
    }
    json_object *choices, *choice, *message, *content, *finish;
    if (!json_object_object_get_ex(root, "choices", &choices) || !json_object_is_type(choices, json_type_array) ||
        json_object_array_length(choices) < 1 || !(choice = json_object_array_get_idx(choices, 0)) ||
        !json_object_object_get_ex(choice, "message", &message) ||
        !json_object_object_get_ex(message, "content", &content) || !json_object_is_type(content, json_type_string)) {
        snprintf(why, why_size, "reply has no choices[0].message.content string");
        json_object_put(root);
        return NULL;
    }
    if (json_object_object_get_ex(choice, "finish_reason", &finish) && json_object_is_type(finish, json_type_string) &&
        !strcmp(json_object_get_string(finish), "length")) {
        snprintf(why, why_size, "answer cut off at max_tokens (finish_reason \"length\"); raise max_tokens or lower batch");
        json_object_put(root);
        return NULL;
    }
    char *out = strdup(json_object_get_string(content));
    json_object_put(root);
    if (!out) snprintf(why, why_size, "out of memory");
    return out;
}

/* Domain tag list: {"tags": [...]} or a bare list; entries are strings or {"tag"|"name": s,
 * "score": x}. Valid when at least one tag survives normalisation. */
static bool parse_vote(job *j, const char *raw, size_t len, char *why, size_t why_size)
{
    vote_answer_free(&j->vote);
    char *content = reply_content(raw, len, why, why_size);
    if (!content) return false;
    json_object *root = parse_content_json(content);
    free(content);
    json_object *list = root;
    if (root && json_object_is_type(root, json_type_object)) {
        if (!json_object_object_get_ex(root, "tags", &list)) list = NULL;
    }
    if (!list || !json_object_is_type(list, json_type_array)) {
        snprintf(why, why_size, "answer is not a JSON tag list like {\"tags\": [{\"tag\": \"...\", \"score\": 0.9}]}");
        json_object_put(root);
        return false;
    }
    size_t n = json_object_array_length(list);
    vote_answer v = {0};
    v.tag = calloc(n ? n : 1, sizeof *v.tag);
    v.score = calloc(n ? n : 1, sizeof *v.score);
    if (!v.tag || !v.score) {
        vote_answer_free(&v);
        json_object_put(root);
        snprintf(why, why_size, "out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(list, i), *name = NULL, *score = NULL;
        if (json_object_is_type(e, json_type_string)) {
            name = e;
        } else if (json_object_is_type(e, json_type_object)) {
            if (!json_object_object_get_ex(e, "tag", &name)) json_object_object_get_ex(e, "name", &name);
            json_object_object_get_ex(e, "score", &score);
        }
        if (!name || !json_object_is_type(name, json_type_string)) continue;
        char *t = normalize_tag(json_object_get_string(name));
        if (!t) continue;
        bool dup = false;
        for (int k = 0; k < v.n && !dup; k++) dup = !strcmp(v.tag[k], t);
        if (dup) {
            free(t);
            continue;
        }
        double s = 0;
        if (!json_number(score, &s) || s < 0) s = 0;
        v.tag[v.n] = t;
        v.score[v.n++] = s;
    }
    json_object_put(root);
    if (v.n == 0) {
        vote_answer_free(&v);
        snprintf(why, why_size, "answer lists no usable tag");
        return false;
    }
    j->vote = v;
    return true;
}

static int find_tag(const parse_ctx *c, const char *name)
{
    char *t = normalize_tag(name);
    if (!t) return -1;
    int found = -1;
    for (int k = 0; k < c->n_tags && found < 0; k++)
        if (!strcmp(c->tags[k], t)) found = k;
    free(t);
    return found;
}

/* One item's tags: {"tag": score, ...} or [{"tag": s, "score": x}, ...]. Unknown tags are
 * ignored (models invent some); a non-numeric score makes the item invalid. */
static bool parse_item_tags(const parse_ctx *c, json_object *tags, float *row)
{
    for (int k = 0; k < c->n_tags; k++) row[k] = 0;
    if (json_object_is_type(tags, json_type_object)) {
        json_object_object_foreach(tags, key, val)
        {
            double s;
            if (!json_number(val, &s)) return false;
            int k = find_tag(c, key);
            if (k >= 0) row[k] = (float)(s < 0 ? 0 : s > 100 ? 100 : s);
        }
        return true;
    }
    if (json_object_is_type(tags, json_type_array)) {
        size_t n = json_object_array_length(tags);
        for (size_t i = 0; i < n; i++) {
            json_object *e = json_object_array_get_idx(tags, i), *name, *score;
            double s;
            if (!json_object_is_type(e, json_type_object) || !json_object_object_get_ex(e, "tag", &name) ||
                !json_object_is_type(name, json_type_string) || !json_object_object_get_ex(e, "score", &score) ||
                !json_number(score, &s))
                return false;
            int k = find_tag(c, json_object_get_string(name));
            if (k >= 0) row[k] = (float)(s < 0 ? 0 : s > 100 ? 100 : s);
        }
        return true;
    }
    return false;
}

/* Scores of a batch: {"items": [{"id": 1..n, "tags": {...}}]} or a bare list. Fills the
 * rows of the ids present; valid (cacheable) only when every id of the batch is there. */
static bool parse_scores(const parse_ctx *c, job *j, const char *raw, size_t len, char *why, size_t why_size)
{
    memset(j->item_ok, 0, (size_t)j->n_items * sizeof *j->item_ok);
    char *content = reply_content(raw, len, why, why_size);
    if (!content) return false;
    json_object *root = parse_content_json(content);
    free(content);
    json_object *list = root;
    if (root && json_object_is_type(root, json_type_object) && !json_object_object_get_ex(root, "items", &list))
        list = NULL;
    if (!list || !json_object_is_type(list, json_type_array)) {
        snprintf(why, why_size, "answer is not JSON like {\"items\": [{\"id\": 1, \"tags\": {\"tag\": 80}}]}");
        json_object_put(root);
        return false;
    }
    size_t n = json_object_array_length(list);
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(list, i), *id, *tags;
        double idv;
        if (!json_object_is_type(e, json_type_object) || !json_object_object_get_ex(e, "id", &id) ||
            !json_number(id, &idv) || idv != floor(idv) || idv < 1 || idv > j->n_items)
            continue;
        int local = (int)idv - 1;
        if (!json_object_object_get_ex(e, "tags", &tags) && !json_object_object_get_ex(e, "scores", &tags)) continue;
        j->item_ok[local] = parse_item_tags(c, tags, j->rows + (size_t)local * (size_t)c->n_tags);
    }
    json_object_put(root);
    int n_ok = 0;
    for (int i = 0; i < j->n_items; i++) n_ok += j->item_ok[i];
    if (n_ok < j->n_items) {
        snprintf(why, why_size, "answer covers %d of the batch's %d items", n_ok, j->n_items);
        return false;
    }
    return true;
}

static bool parse_reply(const parse_ctx *c, job *j, const char *raw, size_t len, char *why, size_t why_size)
{
    return j->kind == JOB_VOTE ? parse_vote(j, raw, len, why, why_size) : parse_scores(c, j, raw, len, why, why_size);
}

/* ---- cache ---- */

static void cache_path_of(const openai_tagger *t, job *j)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv1a(h, CACHE_FORMAT, sizeof CACHE_FORMAT);
    h = fnv1a(h, t->endpoint, strlen(t->endpoint) + 1);
    h = fnv1a(h, t->model, strlen(t->model) + 1);
    h = fnv1a(h, j->body, strlen(j->body));
    snprintf(j->path, sizeof j->path, "%s/%016llx.json", t->cache_dir, (unsigned long long)h);
}

/* The cached reply of this exact request, or NULL (absent, unreadable or another request). */
static char *cache_load(const openai_tagger *t, const job *j)
{
    int e = 0;
    char *text = read_text_file(j->path, &e);
    if (!text) {
        if (e != ENOENT) tag_host->log(TEMA_LOG_WARN, WHO, "cannot read cache file %s: %s; asking the server", j->path, strerror(e));
        return NULL;
    }
    json_object *root = parse_json_exact(text, strlen(text));
    free(text);
    json_object *fmt, *ep, *model, *req, *resp;
    char *out = NULL;
    if (root && json_object_object_get_ex(root, "format", &fmt) && json_object_object_get_ex(root, "endpoint", &ep) &&
        json_object_object_get_ex(root, "model", &model) && json_object_object_get_ex(root, "request", &req) &&
        json_object_object_get_ex(root, "response", &resp) && json_object_is_type(resp, json_type_string) &&
        !strcmp(json_object_get_string(fmt), CACHE_FORMAT) && !strcmp(json_object_get_string(ep), t->endpoint) &&
        !strcmp(json_object_get_string(model), t->model) && !strcmp(json_object_get_string(req), j->body))
        out = strdup(json_object_get_string(resp));
    else
        tag_host->log(TEMA_LOG_WARN, WHO, "cache file %s does not hold this request (damaged or a hash collision); asking the server",
                    j->path);
    json_object_put(root);
    return out;
}

static void cache_store(openai_tagger *t, const job *j, const char *raw)
{
    if (!t->cache_dir_ready) {
        int e = mkdirs(t->cache_dir);
        if (e) {
            tag_host->log(TEMA_LOG_WARN, WHO, "cannot create cache folder %s: %s; answers are not cached (set cache_dir)",
                        t->cache_dir, strerror(e));
            return;
        }
        t->cache_dir_ready = true;
    }
    json_object *root = json_object_new_object();
    json_object_object_add(root, "format", json_object_new_string(CACHE_FORMAT));
    json_object_object_add(root, "endpoint", json_object_new_string(t->endpoint));
    json_object_object_add(root, "model", json_object_new_string(t->model));
    json_object_object_add(root, "request", json_object_new_string(j->body));
    json_object_object_add(root, "response", json_object_new_string(raw));
    const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    int e = text ? write_atomic(j->path, text, strlen(text)) : ENOMEM;
    json_object_put(root);
    if (e)
        tag_host->log(TEMA_LOG_WARN, WHO, "cannot write cache file %s: %s; this answer will be asked for again", j->path,
                    strerror(e));
    else
        t->n_cache_writes++;
}

/* ---- requests ---- */

static char *request_body(const openai_tagger *t, const char *prompt, int seed)
{
    json_object *root = json_object_new_object(), *msgs = json_object_new_array(), *msg = json_object_new_object();
    json_object_object_add(root, "model", json_object_new_string(t->model));
    json_object_object_add(msg, "role", json_object_new_string("user"));
    json_object_object_add(msg, "content", json_object_new_string(prompt));
    json_object_array_add(msgs, msg);
    json_object_object_add(root, "messages", msgs);
    json_object_object_add(root, "temperature", json_object_new_int(0));
    if (seed >= 0) json_object_object_add(root, "seed", json_object_new_int(seed));
    if (t->max_tokens > 0) json_object_object_add(root, "max_tokens", json_object_new_int64(t->max_tokens));
    if (t->json_mode) {
        json_object *rf = json_object_new_object();
        json_object_object_add(rf, "type", json_object_new_string("json_object"));
        json_object_object_add(root, "response_format", rf);
    }
    json_object_object_add(root, "stream", json_object_new_boolean(0));
    const char *s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    char *out = s ? strdup(s) : NULL;
    json_object_put(root);
    return out;
}

/* Replace {key} by values; other braces stay (the prompts show JSON examples). */
static char *fill_template(const char *tpl, const char *const *keys, const char *const *values, int n)
{
    sbuf b = {0};
    for (const char *p = tpl; *p;) {
        int hit = -1;
        if (*p == '{')
            for (int k = 0; k < n && hit < 0; k++) {
                size_t kl = strlen(keys[k]);
                if (!strncmp(p + 1, keys[k], kl) && p[1 + kl] == '}') hit = k;
            }
        if (hit >= 0) {
            sb_str(&b, values[hit]);
            p += strlen(keys[hit]) + 2;
        } else {
            sb_add(&b, p, 1);
            p++;
        }
    }
    if (b.failed) {
        sb_free(&b);
        return NULL;
    }
    return b.data ? b.data : strdup("");
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *user)
{
    sbuf *b = user;
    size_t n = size * nmemb;
    if (b->len + n > MAX_REPLY_BYTES || !sb_add(b, ptr, n)) return 0; /* curl reports a write error */
    return n;
}

static CURL *start_request(openai_tagger *t, job *j)
{
    CURL *e = curl_easy_init();
    if (!e) return NULL;
    sb_free(&j->reply);
    long timeout_ms = (long)ceil(t->timeout_s * 1000.0);
    curl_easy_setopt(e, CURLOPT_URL, t->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(j->body));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &j->reply);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "tema-tagger-openai/1.0");
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    return e;
}

typedef enum outcome { OUT_OK, OUT_RETRY, OUT_GIVE_UP, OUT_FATAL } outcome;

/* Decide what a finished transfer means for its job. */
static outcome classify(openai_tagger *t, const parse_ctx *c, job *j, CURLcode rc, long status, char *fatal,
                        size_t fatal_size)
{
    const char *raw = j->reply.data ? j->reply.data : "";
    char s[240];
    snippet(raw, j->reply.len < 200 ? j->reply.len : 200, s, sizeof s);
    if (rc != CURLE_OK) {
        snprintf(j->last_error, sizeof j->last_error, "%s%s", curl_easy_strerror(rc),
                 rc == CURLE_OPERATION_TIMEDOUT ? " (raise timeout_s for a slow model)" : "");
        return OUT_RETRY;
    }
    if (status >= 200 && status < 300) {
        char why[256] = "";
        if (parse_reply(c, j, raw, j->reply.len, why, sizeof why)) return OUT_OK;
        snprintf(j->last_error, sizeof j->last_error, "malformed answer: %s", why);
        return OUT_RETRY;
    }
    snprintf(j->last_error, sizeof j->last_error, "HTTP %ld: %s", status, s);
    if (status == 408 || status == 425 || status == 429 || status >= 500) return OUT_RETRY;
    if (status == 401 || status == 403) {
        const char *key = getenv(t->api_key_env);
        snprintf(fatal, fatal_size,
                 "%s: HTTP %ld from %s: the server refused the credentials (%s); put the API key in the environment "
                 "variable named by the option api_key_env (now %s, which is %s)",
                 WHO, status, t->url, s, t->api_key_env, key && *key ? "set" : "unset or empty");
        return OUT_FATAL;
    }
    if (status == 404) {
        snprintf(fatal, fatal_size,
                 "%s: HTTP 404 from %s (%s); check the option `endpoint` (the API's base URL, usually ending in /v1; "
                 "tema appends /chat/completions) and `model` (now \"%s\")",
                 WHO, t->url, s, t->model);
        return OUT_FATAL;
    }
    return OUT_GIVE_UP; /* e.g. 400: this request is wrong as sent; retrying it cannot help */
}

static tema_status run_jobs(openai_tagger *t, const parse_ctx *c, job *jobs, int64_t n_jobs, const char *phase,
                            tema_err *err)
{
    int64_t remaining = 0;
    for (int64_t i = 0; i < n_jobs; i++) {
        job *j = &jobs[i];
        cache_path_of(t, j);
        char *raw = cache_load(t, j);
        if (raw) {
            char why[256] = "";
            if (parse_reply(c, j, raw, strlen(raw), why, sizeof why)) {
                j->done = j->ok = true;
                t->n_cache_hits++;
            } else {
                tag_host->log(TEMA_LOG_WARN, WHO, "cached answer %s no longer parses (%s); asking the server", j->path, why);
            }
            free(raw);
        }
        if (!j->done) remaining++;
    }
    if (remaining == 0) return TEMA_OK;
    tag_host->log(TEMA_LOG_INFO, WHO, "%s: %lld of %lld requests cached, %lld to send to %s", phase,
                (long long)(n_jobs - remaining), (long long)n_jobs, (long long)remaining, t->url);

    CURLM *multi = curl_multi_init();
    if (!multi) return tema_fail(err, TEMA_ENOMEM, "%s: curl_multi_init failed (out of memory?)", WHO);
    int64_t in_flight = 0, finished = 0, total = remaining, next_report = total / 10;
    char fatal[1024] = "";
    tema_status st = TEMA_OK;
    while (remaining > 0 && st == TEMA_OK) {
        if (g_stop_signal) {
            st = tema_fail(err, TEMA_EINTERRUPTED,
                           "%s: domain %s: stopped by %s with %lld of %lld %s requests answered; the answers are "
                           "cached, so a rerun resumes with the rest",
                           WHO, t->domain, g_stop_signal == SIGTERM ? "SIGTERM" : "SIGINT", (long long)finished,
                           (long long)total, phase);
            tag_host->log(TEMA_LOG_WARN, WHO, "%s", err ? err->msg : "stopped by a signal");
            break;
        }
        double now = now_s(), wait_s = 0.25; /* also how soon a signal is noticed */
        for (int64_t i = 0; i < n_jobs && in_flight < t->concurrency; i++) {
            job *j = &jobs[i];
            if (j->done || j->in_flight) continue;
            if (j->not_before > now) continue;
            j->easy = start_request(t, j);
            if (!j->easy || curl_multi_add_handle(multi, j->easy) != CURLM_OK) {
                if (j->easy) curl_easy_cleanup(j->easy);
                j->easy = NULL;
                st = tema_fail(err, TEMA_ENOMEM, "%s: cannot start a curl request (out of memory?)", WHO);
                break;
            }
            j->in_flight = true;
            j->attempts++;
            in_flight++;
            t->n_requests++;
            if (j->attempts > 1) t->n_retries++;
        }
        if (st != TEMA_OK) break;
        int running = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            CURL *e = msg->easy_handle;
            CURLcode rc = msg->data.result;
            job *j = NULL;
            long status = 0;
            curl_off_t retry_after = 0;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&j);
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
            curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &retry_after);
            curl_multi_remove_handle(multi, e);
            curl_easy_cleanup(e);
            j->easy = NULL;
            j->in_flight = false;
            in_flight--;
            outcome o = classify(t, c, j, rc, status, fatal, sizeof fatal);
            if (o == OUT_FATAL) {
                st = tema_fail(err, TEMA_EIO, "%s", fatal);
                break;
            }
            if (o == OUT_OK) {
                cache_store(t, j, j->reply.data);
                j->done = j->ok = true;
            } else if (o == OUT_GIVE_UP || j->attempts > t->retries) {
                j->done = true;
            } else {
                double delay_ms = (double)t->backoff_ms * ldexp(1.0, j->attempts - 1);
                double cap = t->backoff_ms > MAX_BACKOFF_MS ? (double)t->backoff_ms : MAX_BACKOFF_MS;
                if (delay_ms > cap) delay_ms = cap;
                if (retry_after > 0 && (double)retry_after * 1000.0 > delay_ms)
                    delay_ms = fmin((double)retry_after * 1000.0, MAX_RETRY_AFTER_MS);
                j->not_before = now_s() + delay_ms / 1000.0;
                tag_host->log(TEMA_LOG_DEBUG, WHO, "%s request %d: %s; attempt %d of %lld in %.0f ms", phase, j->index,
                            j->last_error, j->attempts + 1, (long long)t->retries + 1, delay_ms);
            }
            sb_free(&j->reply);
            if (j->done) {
                remaining--;
                finished++;
                if (total >= 50 && finished >= next_report && finished < total) {
                    tag_host->log(TEMA_LOG_INFO, WHO, "%s: %lld of %lld requests done", phase, (long long)finished,
                                (long long)total);
                    next_report += total / 10;
                }
            }
        }
        if (st != TEMA_OK || remaining == 0) break;
        /* Sleep until a transfer needs attention or the earliest retry is due. */
        now = now_s();
        for (int64_t i = 0; i < n_jobs; i++)
            if (!jobs[i].done && !jobs[i].in_flight) wait_s = fmin(wait_s, jobs[i].not_before - now);
        if (wait_s > 0 || in_flight >= t->concurrency) {
            int wait_ms = wait_s <= 0 ? 250 : (int)ceil(wait_s * 1000.0);
            curl_multi_poll(multi, NULL, 0, wait_ms, NULL);
        }
    }
    for (int64_t i = 0; i < n_jobs; i++)
        if (jobs[i].easy) {
            curl_multi_remove_handle(multi, jobs[i].easy);
            curl_easy_cleanup(jobs[i].easy);
            jobs[i].easy = NULL;
            jobs[i].in_flight = false;
            sb_free(&jobs[i].reply);
        }
    curl_multi_cleanup(multi);
    return st;
}

static void jobs_free(job *jobs, int64_t n)
{
    if (!jobs) return;
    for (int64_t i = 0; i < n; i++) {
        free(jobs[i].body);
        sb_free(&jobs[i].reply);
        vote_answer_free(&jobs[i].vote);
        free(jobs[i].rows);
        free(jobs[i].item_ok);
    }
    free(jobs);
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

static tema_status domain_tags(openai_tagger *t, char ***tags_out, int *n_out, tema_err *err)
{
    char n_tags_text[32];
    snprintf(n_tags_text, sizeof n_tags_text, "%lld", (long long)t->n_tags);
    const char *keys[] = {"domain", "n_tags"};
    const char *values[] = {t->domain, n_tags_text};
    char *prompt = fill_template(t->domain_prompt, keys, values, 2);
    job *jobs = calloc((size_t)t->votes, sizeof *jobs);
    if (!prompt || !jobs) {
        free(prompt);
        free(jobs);
        return tema_fail(err, TEMA_ENOMEM, "%s: out of memory building the domain prompt", WHO);
    }
    for (int r = 0; r < t->votes; r++) {
        jobs[r].kind = JOB_VOTE;
        jobs[r].index = r;
        if (!(jobs[r].body = request_body(t, prompt, r))) {
            free(prompt);
            jobs_free(jobs, t->votes);
            return tema_fail(err, TEMA_ENOMEM, "%s: out of memory building a request", WHO);
        }
    }
    free(prompt);
    parse_ctx ctx = {0};
    tema_status st = run_jobs(t, &ctx, jobs, t->votes, "domain tags", err);
    if (st != TEMA_OK) {
        jobs_free(jobs, t->votes);
        return st;
    }
    int n_answers = 0, n_cand = 0, seen = 0;
    size_t cap = 0;
    for (int r = 0; r < t->votes; r++) cap += jobs[r].ok ? (size_t)jobs[r].vote.n : 0;
    tally *cand = calloc(cap ? cap : 1, sizeof *cand);
    if (!cand) {
        jobs_free(jobs, t->votes);
        return tema_fail(err, TEMA_ENOMEM, "%s: out of memory voting", WHO);
    }
    const char *last_error = "";
    for (int r = 0; r < t->votes; r++) {
        if (!jobs[r].ok) {
            last_error = jobs[r].last_error;
            continue;
        }
        n_answers++;
        for (int k = 0; k < jobs[r].vote.n; k++) {
            int at = -1;
            for (int q = 0; q < n_cand && at < 0; q++)
                if (!strcmp(cand[q].tag, jobs[r].vote.tag[k])) at = q;
            if (at < 0) {
                at = n_cand++;
                cand[at].tag = jobs[r].vote.tag[k];
                cand[at].first_seen = seen++;
            }
            cand[at].votes++;
            cand[at].score_sum += jobs[r].vote.score[k];
        }
    }
    if (n_answers == 0) {
        tema_status s = tema_fail(err, TEMA_EIO,
                                  "%s: domain %s: none of the %lld domain-tag queries got a usable answer from %s (last "
                                  "error: %s); check that the server runs and speaks the chat-completions API, then rerun",
                                  WHO, t->domain, (long long)t->votes, t->url, last_error);
        free(cand);
        jobs_free(jobs, t->votes);
        return s;
    }
    if (n_answers < t->votes)
        tag_host->log(TEMA_LOG_WARN, WHO, "domain %s: voting over %d of %lld answers (others failed: %s); a rerun asks again",
                    t->domain, n_answers, (long long)t->votes, last_error);
    qsort(cand, (size_t)n_cand, sizeof *cand, tally_cmp);
    int n = n_cand < t->n_tags ? n_cand : (int)t->n_tags;
    if (n < t->n_tags)
        tag_host->log(TEMA_LOG_WARN, WHO, "domain %s: the answers name only %d distinct tags (n_tags is %lld)", t->domain,
                    n, (long long)t->n_tags);
    char **tags = calloc((size_t)n, sizeof *tags);
    for (int k = 0; tags && k < n; k++)
        if (!(tags[k] = strdup(cand[k].tag))) {
            for (int q = 0; q < k; q++) free(tags[q]);
            free(tags);
            tags = NULL;
        }
    free(cand);
    jobs_free(jobs, t->votes);
    if (!tags) return tema_fail(err, TEMA_ENOMEM, "%s: out of memory voting", WHO);
    *tags_out = tags;
    *n_out = n;
    return TEMA_OK;
}

/* ---- item scoring ---- */

static void log_failed_items(const openai_tagger *t, const int64_t *ids, int64_t n, int64_t n_scored, const char *why)
{
    tag_host->log(TEMA_LOG_WARN, WHO,
                "domain %s: %lld of %lld items got no scores after %lld attempts (last error: %s); their score rows stay "
                "0, nothing of them was cached, and a rerun asks for them again. Item indices (0-based, in the order "
                "given) follow.",
                t->domain, (long long)n, (long long)n_scored, (long long)t->retries + 1, why);
    for (int64_t i = 0; i < n;) {
        sbuf b = {0};
        int64_t start = i;
        for (; i < n && i - start < 100; i++) sb_printf(&b, "%s%lld", i > start ? " " : "", (long long)ids[i]);
        tag_host->log(TEMA_LOG_WARN, WHO, "domain %s: failed items: %s", t->domain, b.data ? b.data : "");
        sb_free(&b);
    }
}

static tema_status score_items(openai_tagger *t, char *const *tags, int n_tags, const char *const *titles,
                               int64_t n_items, float *score, tema_err *err)
{
    tema_status st = TEMA_OK;
    char **clean = calloc((size_t)(n_items ? n_items : 1), sizeof *clean);
    int64_t *order = malloc((size_t)(n_items ? n_items : 1) * sizeof *order);
    int64_t n_scored = 0;
    job *jobs = NULL;
    int64_t n_jobs = 0;
    char *tags_json = NULL;
    int64_t *failed = NULL;
    int64_t n_failed = 0;
    if (!clean || !order) goto oom;
    for (int64_t i = 0; i < n_items; i++) {
        if (!titles || !titles[i]) continue;
        if (!(clean[i] = clean_title(titles[i]))) goto oom;
        if (clean[i][0]) order[n_scored++] = i;
    }
    if (n_scored < n_items)
        tag_host->log(TEMA_LOG_INFO, WHO, "domain %s: %lld of %lld items have no title; their score rows stay 0",
                    t->domain, (long long)(n_items - n_scored), (long long)n_items);
    if (n_scored == 0) goto done;
    {
        json_object *arr = json_object_new_array();
        for (int k = 0; k < n_tags; k++) json_object_array_add(arr, json_object_new_string(tags[k]));
        const char *s = json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        tags_json = s ? strdup(s) : NULL;
        json_object_put(arr);
        if (!tags_json) goto oom;
    }
    n_jobs = (n_scored + t->batch - 1) / t->batch;
    if (!(jobs = calloc((size_t)n_jobs, sizeof *jobs))) goto oom;
    for (int64_t b = 0; b < n_jobs; b++) {
        job *j = &jobs[b];
        j->kind = JOB_SCORE;
        j->index = (int)b;
        j->first = b * t->batch;
        j->n_items = (int)(n_scored - j->first < t->batch ? n_scored - j->first : t->batch);
        j->rows = calloc((size_t)j->n_items * (size_t)n_tags, sizeof *j->rows);
        j->item_ok = calloc((size_t)j->n_items, sizeof *j->item_ok);
        if (!j->rows || !j->item_ok) goto oom;
        sbuf lines = {0};
        for (int k = 0; k < j->n_items; k++) sb_printf(&lines, "%d: %s\n", k + 1, clean[order[j->first + k]]);
        if (lines.failed) goto oom;
        lines.data[--lines.len] = '\0'; /* the template decides what follows the last line */
        char n_text[32];
        snprintf(n_text, sizeof n_text, "%d", j->n_items);
        const char *keys[] = {"domain", "tags", "items", "n_items"};
        const char *values[] = {t->domain, tags_json, lines.data, n_text};
        char *prompt = fill_template(t->score_prompt, keys, values, 4);
        sb_free(&lines);
        if (!prompt) goto oom;
        j->body = request_body(t, prompt, -1);
        free(prompt);
        if (!j->body) goto oom;
    }
    parse_ctx ctx = {.n_tags = n_tags, .tags = tags};
    st = run_jobs(t, &ctx, jobs, n_jobs, "item scores", err);
    if (st != TEMA_OK) goto done;
    if (!(failed = malloc((size_t)n_scored * sizeof *failed))) goto oom;
    const char *last_error = "";
    for (int64_t b = 0; b < n_jobs; b++) {
        const job *j = &jobs[b];
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
    if (n_failed == n_scored)
        st = tema_fail(err, TEMA_EIO,
                       "%s: domain %s: no item got scores from %s (%lld of %lld requests failed; last error: %s); fix "
                       "the server or the prompt, then rerun (cached answers are kept)",
                       WHO, t->domain, t->url, (long long)n_jobs, (long long)n_jobs, last_error);
    goto done;
oom:
    st = tema_fail(err, TEMA_ENOMEM, "%s: out of memory preparing %lld items", WHO, (long long)n_items);
done:
    tag_host->log(TEMA_LOG_INFO, WHO,
                "domain %s: %lld items in %lld requests: %lld sent (%lld retries), %lld cache hits, %lld cached now, "
                "%lld items failed",
                t->domain, (long long)n_scored, (long long)n_jobs + t->votes, (long long)t->n_requests,
                (long long)t->n_retries, (long long)t->n_cache_hits, (long long)t->n_cache_writes, (long long)n_failed);
    for (int64_t i = 0; clean && i < n_items; i++) free(clean[i]);
    free(clean);
    free(order);
    free(tags_json);
    free(failed);
    jobs_free(jobs, n_jobs);
    return st;
}

/* ---------------- ops ---------------- */

static void openai_destroy(void *self)
{
    openai_tagger *t = self;
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
    curl_slist_free_all(t->headers);
    free(t);
    curl_global_cleanup();
}

static tema_status opt_int(const tema_cfg *opts, const char *name, int64_t *out, tema_err *err)
{
    if (tag_host->cfg_int(opts, name, out) != TEMA_OK)
        return tema_fail(err, TEMA_EINVAL, "%s: option '%s' must be an integer", WHO, name);
    return TEMA_OK;
}

static tema_status opt_str(const tema_cfg *opts, const char *name, const char **out, tema_err *err)
{
    if (tag_host->cfg_str(opts, name, out) != TEMA_OK || !*out)
        return tema_fail(err, TEMA_EINVAL, "%s: option '%s' must be a string", WHO, name);
    return TEMA_OK;
}

static tema_status load_prompt(const char *dir, const char *file, const char *const *required, int n_required,
                               char **out, tema_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int e = 0;
    char *text = read_text_file(path, &e);
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

static tema_status openai_create(const tema_cfg *opts, const char *domain, void **self, tema_err *err)
{
    *self = NULL;
    if (!tag_host) return tema_fail(err, TEMA_EINTERNAL, "%s: plugin used without its entry point (a bug)", WHO);
    if (!domain || !*domain) return tema_fail(err, TEMA_EINVAL, "%s: no domain name given (a bug in the caller)", WHO);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return tema_fail(err, TEMA_EIO, "%s: libcurl failed to initialise", WHO);
    openai_tagger *t = calloc(1, sizeof *t);
    if (!t) {
        curl_global_cleanup();
        return tema_fail(err, TEMA_ENOMEM, "%s: out of memory", WHO);
    }
    tema_status st;
    const char *endpoint, *model, *key_env, *cache_dir, *prompt_dir;
    if ((st = opt_str(opts, "endpoint", &endpoint, err)) || (st = opt_str(opts, "model", &model, err)) ||
        (st = opt_str(opts, "api_key_env", &key_env, err)) || (st = opt_str(opts, "cache_dir", &cache_dir, err)) ||
        (st = opt_str(opts, "prompt_dir", &prompt_dir, err)) || (st = opt_int(opts, "votes", &t->votes, err)) ||
        (st = opt_int(opts, "n_tags", &t->n_tags, err)) || (st = opt_int(opts, "batch", &t->batch, err)) ||
        (st = opt_int(opts, "retries", &t->retries, err)) || (st = opt_int(opts, "backoff_ms", &t->backoff_ms, err)) ||
        (st = opt_int(opts, "concurrency", &t->concurrency, err)) ||
        (st = opt_int(opts, "max_tokens", &t->max_tokens, err)))
        goto fail;
    if (tag_host->cfg_float(opts, "timeout_s", &t->timeout_s) != TEMA_OK ||
        tag_host->cfg_bool(opts, "json_mode", &t->json_mode) != TEMA_OK) {
        st = tema_fail(err, TEMA_EINVAL, "%s: options timeout_s (a number) and json_mode (true/false) are required", WHO);
        goto fail;
    }
    if (t->votes < 1 || t->n_tags < 1 || t->batch < 1 || t->retries < 0 || t->backoff_ms < 0 || t->concurrency < 1 ||
        t->max_tokens < 0 || !(t->timeout_s > 0) || t->votes > 100 || t->n_tags > 500 || t->batch > 500) {
        st = tema_fail(err, TEMA_EINVAL,
                       "%s: options out of range (votes 1..100, n_tags 1..500, batch 1..500, concurrency >= 1, "
                       "timeout_s > 0, retries/backoff_ms/max_tokens >= 0)",
                       WHO);
        goto fail;
    }
    if (!*endpoint) endpoint = getenv("TEMA_LLM_ENDPOINT") ? getenv("TEMA_LLM_ENDPOINT") : "";
    if (!*endpoint) {
        st = tema_fail(err, TEMA_EINVAL,
                       "%s: no LLM endpoint: set the tagger option `endpoint` or the environment variable "
                       "TEMA_LLM_ENDPOINT to the base URL of an OpenAI-compatible API (e.g. http://127.0.0.1:8080/v1 "
                       "for llama.cpp's server), or use `tagger: lexical`, which needs no LLM",
                       WHO);
        goto fail;
    }
    if (!*model) model = getenv("TEMA_LLM_MODEL") ? getenv("TEMA_LLM_MODEL") : "";
    if (!*model) {
        st = tema_fail(err, TEMA_EINVAL,
                       "%s: no model name: set the tagger option `model` or the environment variable TEMA_LLM_MODEL "
                       "(servers serving one model, like llama.cpp's, accept any name)",
                       WHO);
        goto fail;
    }
    if (!*cache_dir || !*prompt_dir) {
        st = tema_fail(err, TEMA_EINVAL, "%s: options cache_dir and prompt_dir must not be empty", WHO);
        goto fail;
    }
    size_t el = strlen(endpoint);
    while (el > 0 && endpoint[el - 1] == '/') el--;
    t->endpoint = strndup(endpoint, el);
    t->model = strdup(model);
    t->api_key_env = strdup(key_env);
    t->domain = strdup(domain);
    t->cache_dir = strdup(cache_dir);
    t->prompt_dir = strdup(prompt_dir);
    t->url = malloc(el + sizeof "/chat/completions");
    if (!t->endpoint || !t->model || !t->api_key_env || !t->domain || !t->cache_dir || !t->prompt_dir || !t->url) {
        st = tema_fail(err, TEMA_ENOMEM, "%s: out of memory", WHO);
        goto fail;
    }
    sprintf(t->url, "%s/chat/completions", t->endpoint);
    const char *need_domain[] = {"{domain}"}, *need_score[] = {"{tags}", "{items}"};
    if ((st = load_prompt(prompt_dir, DOMAIN_PROMPT_FILE, need_domain, 1, &t->domain_prompt, err)) ||
        (st = load_prompt(prompt_dir, SCORE_PROMPT_FILE, need_score, 2, &t->score_prompt, err)))
        goto fail;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (h) h = curl_slist_append(h, "Accept: application/json");
    const char *key = *key_env ? getenv(key_env) : NULL;
    if (h && key && *key) {
        sbuf auth = {0};
        sb_printf(&auth, "Authorization: Bearer %s", key);
        struct curl_slist *h2 = auth.failed ? NULL : curl_slist_append(h, auth.data);
        if (auth.data) memset(auth.data, 0, auth.len);
        sb_free(&auth);
        if (!h2) curl_slist_free_all(h);
        h = h2;
    } else if (h) {
        tag_host->log(TEMA_LOG_DEBUG, WHO, "environment variable %s is unset or empty: sending no API key",
                    *key_env ? key_env : "(api_key_env is empty)");
    }
    if (!h) {
        st = tema_fail(err, TEMA_ENOMEM, "%s: out of memory", WHO);
        goto fail;
    }
    t->headers = h;
    *self = t;
    return TEMA_OK;
fail:
    openai_destroy(t);
    return st;
}

static tema_status tag_domain(openai_tagger *t, const char *const *titles, int64_t n_items, tema_tag_vocab *out,
                              tema_err *err);

static tema_status openai_tag(void *self, const char *const *titles, int64_t n_items, tema_tag_vocab *out,
                              tema_err *err)
{
    openai_tagger *t = self;
    *out = (tema_tag_vocab){0};
    if (n_items < 0) return tema_fail(err, TEMA_EINVAL, "%s: negative item count %lld", WHO, (long long)n_items);
    t->n_requests = t->n_retries = t->n_cache_hits = t->n_cache_writes = 0;
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    g_stop_signal = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    tema_status st = tag_domain(t, titles, n_items, out, err);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (g_stop_signal) {
        int sig = g_stop_signal;
        g_stop_signal = 0;
        raise(sig);
    }
    return st;
}

static tema_status tag_domain(openai_tagger *t, const char *const *titles, int64_t n_items, tema_tag_vocab *out,
                              tema_err *err)
{
    char **tags = NULL;
    int n_tags = 0;
    tema_status st = domain_tags(t, &tags, &n_tags, err);
    if (st != TEMA_OK) return st;
    size_t cells = (size_t)n_items * (size_t)n_tags;
    float *score = tag_host->alloc(cells * sizeof *score);
    char **names = tag_host->alloc((size_t)n_tags * sizeof *names);
    if (score) memset(score, 0, cells * sizeof *score);
    if (names) memset(names, 0, (size_t)n_tags * sizeof *names);
    for (int k = 0; names && k < n_tags; k++) {
        size_t len = strlen(tags[k]) + 1;
        if (!(names[k] = tag_host->alloc(len))) {
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
        for (int k = 0; names && k < n_tags; k++) tag_host->free(names[k]);
        tag_host->free(names);
        tag_host->free(score);
        return st;
    }
    out->n_tags = n_tags;
    out->tags = names;
    out->score = score;
    return TEMA_OK;
}

static const tema_tagger_ops openai_ops = {
    .create = openai_create,
    .tag = openai_tag,
    .destroy = openai_destroy,
};

static const tema_plugin openai_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_TAGGER, "openai", "1.0.0",
                       "LLM tags over an OpenAI-compatible API: R voted domain queries, batched item scores, on-disk cache",
                       openai_options, openai_ops),
};

TEMA_TAG_PLUGIN_DEFINE(openai_plugin)
