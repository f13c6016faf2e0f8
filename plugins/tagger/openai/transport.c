/* plugins/tagger/openai/transport.c - the requests of the `openai` tagger: the on-disk cache,
 * one curl multi handle with at most `concurrency` transfers, retries with backoff, the
 * fallback of structured output when a server refuses it, progress lines and the counters
 * of the run summary. What the cache and the retries promise is in openai.c's header. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "openai.h"

/* Server properties (GET /props) are a few kB; a longer answer is not llama.cpp's. */
#define MAX_PROPS_BYTES (1u << 20)
#define MAX_BACKOFF_MS 60000.0
#define MAX_RETRY_AFTER_MS 300000.0
#define CACHE_FORMAT "tema-openai-cache 1"
#define WHO OAI_WHO

/* ---------------- small helpers ---------------- */

bool oai_sb_add(oai_sbuf *b, const char *s, size_t n)
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

bool oai_sb_str(oai_sbuf *b, const char *s) { return oai_sb_add(b, s, strlen(s)); }

bool oai_sb_printf(oai_sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return false;
    if ((size_t)n < sizeof tmp) return oai_sb_add(b, tmp, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big) return b->failed = true, false;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    bool ok = oai_sb_add(b, big, (size_t)n);
    free(big);
    return ok;
}

void oai_sb_free(oai_sbuf *b)
{
    free(b->data);
    *b = (oai_sbuf){0};
}

double oai_now_s(void)
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

char *oai_read_text_file(const char *path, int *errnum)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *errnum = errno;
        return NULL;
    }
    oai_sbuf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) oai_sb_add(&b, chunk, n);
    bool bad = ferror(f) || b.failed;
    fclose(f);
    if (bad) {
        oai_sb_free(&b);
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

static void fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) return;
    *slash = '\0';
    int dfd = open(slash == dir ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
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
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return e;
    }
    fsync_dir_of(path);
    return 0;
}

/* ---------------- cache ---------------- */

static void cache_path_of(const oai_tagger *t, oai_job *j)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv1a(h, CACHE_FORMAT, sizeof CACHE_FORMAT);
    h = fnv1a(h, t->endpoint, strlen(t->endpoint) + 1);
    h = fnv1a(h, t->model, strlen(t->model) + 1);
    h = fnv1a(h, j->body, strlen(j->body));
    snprintf(j->path, sizeof j->path, "%s/%016llx.json", t->cache_dir, (unsigned long long)h);
}

/* The cached reply of this exact request, or NULL (absent, unreadable or another request). */
static char *cache_load(const oai_tagger *t, const oai_job *j)
{
    int e = 0;
    char *text = oai_read_text_file(j->path, &e);
    if (!text) {
        if (e != ENOENT)
            t->host->log(TEMA_LOG_WARN, WHO, "cannot read cache file %s: %s; asking the server", j->path, strerror(e));
        return NULL;
    }
    json_object *root = oai_parse_json_exact(text, strlen(text));
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
        t->host->log(TEMA_LOG_WARN, WHO,
                     "cache file %s does not hold this request (damaged or a hash collision); asking the server", j->path);
    json_object_put(root);
    return out;
}

static void cache_store(oai_tagger *t, const oai_job *j, const char *raw)
{
    if (!t->cache_dir_ready) {
        int e = mkdirs(t->cache_dir);
        if (e) {
            t->host->log(TEMA_LOG_WARN, WHO, "cannot create cache folder %s: %s; answers are not cached (set cache_dir)",
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
        t->host->log(TEMA_LOG_WARN, WHO, "cannot write cache file %s: %s; this answer will be asked for again", j->path,
                     strerror(e));
    else
        t->n.cache_writes++;
}

/* ---------------- requests ---------------- */

/* The body at the tagger's current level of structured output; its cache path with it,
 * since the body is the cache key. */
static bool build_body(const oai_tagger *t, const oai_parse_ctx *c, oai_job *j)
{
    free(j->body);
    j->level = t->level;
    json_object *root = json_object_new_object(), *msgs = json_object_new_array(), *msg = json_object_new_object();
    json_object_object_add(root, "model", json_object_new_string(t->model));
    json_object_object_add(msg, "role", json_object_new_string("user"));
    json_object_object_add(msg, "content", json_object_new_string(j->prompt));
    json_object_array_add(msgs, msg);
    json_object_object_add(root, "messages", msgs);
    json_object_object_add(root, "temperature", json_object_new_int(0));
    if (j->seed >= 0) json_object_object_add(root, "seed", json_object_new_int(j->seed));
    if (t->max_tokens > 0) json_object_object_add(root, "max_tokens", json_object_new_int64(t->max_tokens));
    json_object *rf = oai_response_format(c, j, j->level);
    if (rf) json_object_object_add(root, "response_format", rf);
    json_object_object_add(root, "stream", json_object_new_boolean(0));
    const char *s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    j->body = s ? strdup(s) : NULL;
    json_object_put(root);
    if (j->body) cache_path_of(t, j);
    return j->body != NULL;
}

/* Take the job's answer from the cache when it is there and still parses. */
static bool from_cache(oai_tagger *t, const oai_parse_ctx *c, oai_job *j)
{
    char *raw = cache_load(t, j);
    if (!raw) return false;
    char why[256] = "";
    if (oai_parse_reply(c, j, raw, strlen(raw), why, sizeof why) == OAI_FAULT_NONE) {
        j->done = j->ok = j->cached = true;
        t->n.cache_hits++;
    } else {
        t->host->log(TEMA_LOG_WARN, WHO, "cached answer %s no longer parses (%s); asking the server", j->path, why);
    }
    free(raw);
    return j->done;
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *user)
{
    oai_sbuf *b = user;
    size_t n = size * nmemb;
    if (b->max_len && b->len + n > b->max_len) {
        b->over = true;
        return 0; /* curl reports a write error; classify() names the limit */
    }
    return oai_sb_add(b, ptr, n) ? n : 0;
}

static CURL *start_request(oai_tagger *t, oai_job *j)
{
    CURL *e = curl_easy_init();
    if (!e) return NULL;
    oai_sb_free(&j->reply);
    j->reply = (oai_sbuf){.max_len = (size_t)t->max_reply_mb << 20};
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

typedef enum outcome { OUT_OK, OUT_RETRY, OUT_GIVE_UP, OUT_FATAL, OUT_REFUSED_FORMAT } outcome;

/* A refusal of response_format, not of the request: servers answer 400 (llama.cpp, vLLM,
 * OpenAI), 422 (validators) or, for a schema their grammar converter fails on, 500, naming
 * the parameter or the schema. */
static bool refuses_format(const oai_job *j, long status, const char *raw)
{
    if (j->level == OAI_PLAIN || (status != 400 && status != 422 && status != 500 && status != 501)) return false;
    static const char *const words[] = {"response_format", "json_schema", "json_object", "schema", "grammar"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (strcasestr(raw, words[i])) return true;
    return false;
}

static outcome http_failure(oai_tagger *t, oai_job *j, long status, const char *s, char *fatal, size_t fatal_size)
{
    snprintf(j->last_error, sizeof j->last_error, "HTTP %ld: %s", status, s);
    t->n.faults[OAI_FAULT_STATUS]++;
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

/* Decide what a finished transfer means for its job; count what was wrong with it. */
static outcome classify(oai_tagger *t, const oai_parse_ctx *c, oai_job *j, CURLcode rc, long status, double seconds,
                        char *fatal, size_t fatal_size)
{
    const char *raw = j->reply.data ? j->reply.data : "";
    char s[240];
    oai_snippet(raw, j->reply.len < 200 ? j->reply.len : 200, s, sizeof s);
    if (rc != CURLE_OK && j->reply.over) {
        snprintf(j->last_error, sizeof j->last_error, "the reply passed max_reply_mb (%lld MB; at most concurrency x "
                 "that is held at once); raise it if the server's answers are that long", (long long)t->max_reply_mb);
        t->n.faults[OAI_FAULT_TRANSPORT]++;
        return OUT_RETRY;
    }
    if (rc != CURLE_OK) {
        snprintf(j->last_error, sizeof j->last_error, "%s%s", curl_easy_strerror(rc),
                 rc == CURLE_OPERATION_TIMEDOUT ? " (raise timeout_s for a slow model)" : "");
        t->n.faults[OAI_FAULT_TRANSPORT]++;
        return OUT_RETRY;
    }
    if (status >= 200 && status < 300) {
        char why[256] = "";
        oai_fault f = oai_parse_reply(c, j, raw, j->reply.len, why, sizeof why);
        if (j->completion_tokens >= 0) {
            t->n.tokens += j->completion_tokens;
            t->n.token_seconds += seconds;
        }
        if (f == OAI_FAULT_NONE) return OUT_OK;
        t->n.faults[f]++;
        snprintf(j->last_error, sizeof j->last_error, "malformed answer: %s", why);
        return OUT_RETRY;
    }
    if (refuses_format(j, status, raw)) {
        snprintf(j->last_error, sizeof j->last_error, "HTTP %ld: %s", status, s);
        return OUT_REFUSED_FORMAT;
    }
    return http_failure(t, j, status, s, fatal, fatal_size);
}

void oai_jobs_free(oai_job *jobs, int64_t n)
{
    if (!jobs) return;
    for (int64_t i = 0; i < n; i++) {
        free(jobs[i].prompt);
        free(jobs[i].body);
        oai_sb_free(&jobs[i].reply);
        oai_vote_answer_free(&jobs[i].vote);
        free(jobs[i].rows);
        free(jobs[i].item_ok);
    }
    free(jobs);
}

/* ---------------- the runner ---------------- */

typedef struct runner {
    oai_tagger *t;
    const oai_parse_ctx *c;
    oai_job *jobs;
    int64_t n_jobs;
    const char *phase, *unit;
    CURLM *multi;
    int64_t in_flight, remaining, sent_total, sent_done; /* jobs */
    int64_t units_total, units_done, units_cached;       /* progress: a score job counts its items */
    double t0, last_report;
    char fatal[1024];
} runner;

static int64_t units_of(const oai_job *j) { return j->kind == OAI_SCORE ? j->n_items : 1; }

static void format_duration(double s, char *out, size_t size)
{
    long v = (long)ceil(s);
    if (v >= 3600) snprintf(out, size, "%ldh%02ldm", v / 3600, v / 60 % 60);
    else if (v >= 60) snprintf(out, size, "%ldm%02lds", v / 60, v % 60);
    else snprintf(out, size, "%lds", v);
}

/* At most every progress_s seconds: a long scoring run must show it is alive and when it
 * will end. The rate counts only what the server answered in this run, not cache hits. */
static void report_progress(runner *r)
{
    double now = oai_now_s();
    if (r->t->progress_s <= 0 || now - r->last_report < r->t->progress_s || r->remaining == 0) return;
    r->last_report = now;
    double rate = (double)(r->units_done - r->units_cached) / fmax(now - r->t0, 1e-9);
    char eta[32] = "unknown";
    if (rate > 0) format_duration((double)(r->units_total - r->units_done) / rate, eta, sizeof eta);
    r->t->host->log(TEMA_LOG_INFO, WHO, "%s: %lld of %lld %s done (%lld from the cache), %.2f %s/s, ETA %s", r->phase,
                    (long long)r->units_done, (long long)r->units_total, r->unit, (long long)r->units_cached, rate,
                    r->unit, eta);
}

static void job_done(runner *r, const oai_job *j)
{
    r->units_done += units_of(j);
    if (j->cached) r->units_cached += units_of(j);
    r->remaining--;
    if (!j->cached) r->sent_done++;
}

/* The server refused the job's response_format: lower the level once for the rest of the
 * run (logged once per level), rebuild every request not yet sent (its cache key changes
 * with it, so answers cached at the lower level by an earlier run are found) and send this
 * one again at once, which does not count as an attempt. */
static tema_status refused_format(runner *r, oai_job *j, tema_err *err)
{
    oai_tagger *t = r->t;
    if (j->level == t->level) {
        t->level++;
        t->n.format_rejections++;
        t->host->log(TEMA_LOG_WARN, WHO, "the server refused response_format %s (%s); asking with %s for the rest of "
                     "the run (set the option structured to skip this request)",
                     oai_structured_names[j->level], j->last_error, oai_structured_names[t->level]);
        for (int64_t i = 0; i < r->n_jobs; i++) {
            oai_job *o = &r->jobs[i];
            if (o->done || o->in_flight || o == j) continue;
            if (!build_body(t, r->c, o)) return tema_fail(err, TEMA_ENOMEM, "%s: out of memory", WHO);
            if (from_cache(t, r->c, o)) {
                r->sent_total--;
                job_done(r, o);
            }
        }
    }
    j->attempts--;
    j->not_before = 0;
    if (!build_body(t, r->c, j)) return tema_fail(err, TEMA_ENOMEM, "%s: out of memory", WHO);
    if (from_cache(t, r->c, j)) r->sent_total--;
    return TEMA_OK;
}

static void schedule_retry(runner *r, oai_job *j, curl_off_t retry_after)
{
    const oai_tagger *t = r->t;
    double delay_ms = (double)t->backoff_ms * ldexp(1.0, j->attempts - 1);
    double cap = t->backoff_ms > MAX_BACKOFF_MS ? (double)t->backoff_ms : MAX_BACKOFF_MS;
    if (delay_ms > cap) delay_ms = cap;
    if (retry_after > 0 && (double)retry_after * 1000.0 > delay_ms)
        delay_ms = fmin((double)retry_after * 1000.0, MAX_RETRY_AFTER_MS);
    j->not_before = oai_now_s() + delay_ms / 1000.0;
    t->host->log(TEMA_LOG_DEBUG, WHO, "%s request %d: %s; attempt %d of %lld in %.0f ms", r->phase, j->index,
                 j->last_error, j->attempts + 1, (long long)t->retries + 1, delay_ms);
}

static tema_status finish_transfer(runner *r, CURLMsg *msg, tema_err *err)
{
    oai_tagger *t = r->t;
    CURL *e = msg->easy_handle;
    CURLcode rc = msg->data.result;
    oai_job *j = NULL;
    long status = 0;
    curl_off_t retry_after = 0;
    double seconds = 0;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&j);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &retry_after);
    curl_easy_getinfo(e, CURLINFO_TOTAL_TIME, &seconds);
    curl_multi_remove_handle(r->multi, e);
    curl_easy_cleanup(e);
    j->easy = NULL;
    j->in_flight = false;
    r->in_flight--;
    tema_status st = TEMA_OK;
    outcome o = classify(t, r->c, j, rc, status, seconds, r->fatal, sizeof r->fatal);
    if (o == OUT_FATAL) {
        st = tema_fail(err, TEMA_EIO, "%s", r->fatal);
    } else if (o == OUT_OK) {
        cache_store(t, j, j->reply.data);
        j->done = j->ok = true;
    } else if (o == OUT_REFUSED_FORMAT) {
        st = refused_format(r, j, err);
    } else if (o == OUT_GIVE_UP || j->attempts > t->retries) {
        j->done = true;
    } else {
        schedule_retry(r, j, retry_after);
    }
    oai_sb_free(&j->reply);
    if (j->done) {
        job_done(r, j);
        report_progress(r);
    }
    return st;
}

static tema_status start_due(runner *r, tema_err *err)
{
    oai_tagger *t = r->t;
    double now = oai_now_s();
    for (int64_t i = 0; i < r->n_jobs && r->in_flight < t->concurrency; i++) {
        oai_job *j = &r->jobs[i];
        if (j->done || j->in_flight || j->not_before > now) continue;
        j->easy = start_request(t, j);
        if (!j->easy || curl_multi_add_handle(r->multi, j->easy) != CURLM_OK) {
            if (j->easy) curl_easy_cleanup(j->easy);
            j->easy = NULL;
            return tema_fail(err, TEMA_ENOMEM, "%s: cannot start a curl request (out of memory?)", WHO);
        }
        j->in_flight = true;
        j->attempts++;
        r->in_flight++;
        t->n.requests++;
        if (j->attempts > 1) t->n.retries++;
    }
    return TEMA_OK;
}

/* Sleep until a transfer needs attention or the earliest retry is due; at most 0.25 s, which
 * is also how soon a signal is noticed. */
static void wait_for_work(runner *r)
{
    double now = oai_now_s(), wait_s = 0.25;
    for (int64_t i = 0; i < r->n_jobs; i++)
        if (!r->jobs[i].done && !r->jobs[i].in_flight) wait_s = fmin(wait_s, r->jobs[i].not_before - now);
    if (wait_s > 0 || r->in_flight >= r->t->concurrency) {
        int wait_ms = wait_s <= 0 ? 250 : (int)ceil(wait_s * 1000.0);
        curl_multi_poll(r->multi, NULL, 0, wait_ms, NULL);
    }
}

static tema_status stopped(runner *r, tema_err *err)
{
    tema_status st = tema_fail(err, TEMA_EINTERRUPTED,
                               "%s: domain %s: stopped by %s with %lld of %lld %s requests answered; the answers are "
                               "cached, so a rerun resumes with the rest",
                               WHO, r->t->domain, tema_host_interrupted(r->t->host) == SIGTERM ? "SIGTERM" : "SIGINT",
                               (long long)r->sent_done, (long long)r->sent_total, r->phase);
    r->t->host->log(TEMA_LOG_WARN, WHO, "%s", err ? err->msg : "stopped by a signal");
    return st;
}

/* Build every body, take what the cache holds; NULL-free. */
static tema_status first_pass(runner *r, tema_err *err)
{
    for (int64_t i = 0; i < r->n_jobs; i++) {
        oai_job *j = &r->jobs[i];
        if (!build_body(r->t, r->c, j)) return tema_fail(err, TEMA_ENOMEM, "%s: out of memory building a request", WHO);
        r->units_total += units_of(j);
        if (from_cache(r->t, r->c, j)) {
            r->units_done += units_of(j);
            r->units_cached += units_of(j);
        } else {
            r->remaining++;
        }
    }
    r->sent_total = r->remaining;
    return TEMA_OK;
}

tema_status oai_run_jobs(oai_tagger *t, const oai_parse_ctx *c, oai_job *jobs, int64_t n_jobs, const char *phase,
                         tema_err *err)
{
    runner r = {.t = t, .c = c, .jobs = jobs, .n_jobs = n_jobs, .phase = phase};
    r.unit = n_jobs > 0 && jobs[0].kind == OAI_SCORE ? "items" : "answers";
    tema_status st = first_pass(&r, err);
    if (st != TEMA_OK || r.remaining == 0) return st;
    t->host->log(TEMA_LOG_INFO, WHO, "%s: %lld of %lld requests cached, %lld to send to %s", phase,
                 (long long)(n_jobs - r.remaining), (long long)n_jobs, (long long)r.remaining, t->url);
    if (!(r.multi = curl_multi_init())) return tema_fail(err, TEMA_ENOMEM, "%s: curl_multi_init failed (out of memory?)", WHO);
    r.t0 = r.last_report = oai_now_s();
    while (r.remaining > 0 && st == TEMA_OK) {
        if (tema_host_interrupted(t->host)) {
            st = stopped(&r, err);
            break;
        }
        if ((st = start_due(&r, err)) != TEMA_OK) break;
        int running = 0, left;
        curl_multi_perform(r.multi, &running);
        CURLMsg *msg;
        while (st == TEMA_OK && (msg = curl_multi_info_read(r.multi, &left)))
            if (msg->msg == CURLMSG_DONE) st = finish_transfer(&r, msg, err);
        if (st != TEMA_OK || r.remaining == 0) break;
        wait_for_work(&r);
    }
    for (int64_t i = 0; i < n_jobs; i++)
        if (jobs[i].easy) {
            curl_multi_remove_handle(r.multi, jobs[i].easy);
            curl_easy_cleanup(jobs[i].easy);
            jobs[i].easy = NULL;
            jobs[i].in_flight = false;
            oai_sb_free(&jobs[i].reply);
        }
    curl_multi_cleanup(r.multi);
    return st;
}

/* ---- server properties ---- */

/* llama.cpp's GET <root>/props (the endpoint without its /v1): the context of one slot
 * (default_generation_settings.n_ctx) and the number of slots. Servers without it (OpenAI,
 * Ollama, vLLM) answer 404: both stay 0 and the caller uses its options. */
void oai_server_props(const oai_tagger *t, int64_t *n_ctx, int64_t *slots)
{
    *n_ctx = *slots = 0;
    size_t el = strlen(t->endpoint);
    if (el >= 3 && !strcmp(t->endpoint + el - 3, "/v1")) el -= 3;
    oai_sbuf url = {0}, reply = {.max_len = MAX_PROPS_BYTES};
    oai_sb_printf(&url, "%.*s/props", (int)el, t->endpoint);
    CURL *e = url.failed ? NULL : curl_easy_init();
    long status = 0;
    if (e) {
        long timeout_ms = (long)(t->timeout_s < 10 ? t->timeout_s * 1000 : 10000);
        curl_easy_setopt(e, CURLOPT_URL, url.data);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &reply);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        if (curl_easy_perform(e) == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(e);
    }
    json_object *root = status == 200 && reply.data ? oai_parse_json_exact(reply.data, reply.len) : NULL, *v, *g;
    if (root && json_object_object_get_ex(root, "default_generation_settings", &g) &&
        json_object_object_get_ex(g, "n_ctx", &v) && json_object_is_type(v, json_type_int))
        *n_ctx = json_object_get_int64(v);
    if (root && json_object_object_get_ex(root, "total_slots", &v) && json_object_is_type(v, json_type_int))
        *slots = json_object_get_int64(v);
    json_object_put(root);
    oai_sb_free(&url);
    oai_sb_free(&reply);
}
