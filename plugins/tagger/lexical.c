/* plugins/tagger/lexical.c - offline, deterministic item tagging by BM25 over titles: the
 * paper's "static keyword-based assignment" (Table IV), and tema's tagger when no LLM is
 * configured.
 *
 * Vocabulary: <vocab_dir>/<domain>.yaml (format in the comment at the top of every file
 * under experiments/tags/, read by tag_vocab.h): a list of tags, each with a name and
 * synonyms. Every name and synonym is a phrase; a tag's query is the set of its phrases.
 *
 * Text: lower-cased ASCII words and digit runs (accented and other non-ASCII letters stay
 * inside words; UTF-8 punctuation such as dashes, quotes, (R) and TM separates them), HTML
 * entities dropped, possessive 's removed, a few stop words (a, an, and, the, of, ...)
 * dropped, and English plurals folded (cookies/cookie -> cooki, glasses -> glass,
 * tomatoes -> tomato, cups -> cup), the same way for titles and phrases. A phrase occurs
 * in a title where its words occur consecutively.
 *
 * Score: Okapi BM25 with phrases as terms, over the titled items of the domain (items
 * without a title are not documents and score 0 everywhere):
 *   raw(item, tag) = sum_{p in tag} idf(p) * tf(p) (k1+1) / (tf(p) + k1 (1 - b + b |d|/avgdl))
 *   idf(p) = ln(1 + (N - df(p) + 0.5) / (df(p) + 0.5))     (always > 0)
 * Relevance 1..100 = round(100 * raw / S), clamped to [1, 100], where S is the
 * `scale_quantile` quantile of the domain's positive raw scores: one monotone map per
 * domain, so an item's tag order is BM25's, and scores compare across items and tags.
 * The default 0.9 puts a plain one-keyword match at about 20-50 and an item's best tag at
 * a median of about 60 (food-kitchen titles), so the paper's threshold theta = 70 keeps the
 * clear matches (the best tag of about 40% of the tagged items). raw = 0 (no phrase of the
 * tag occurs) stays 0 = unrelated. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tag_plugin.h"
#include "tag_vocab.h"

#define WHO "tagger lexical"
#define MAX_WORD 64

static const tema_option lexical_options[] = {
    {"vocab_dir", TEMA_OPT_STRING, TAG_VOCAB_DIR, 0, -1, NULL,
     "folder of the tag vocabularies, one <domain>.yaml per domain (relative to the current directory)"},
    {"k1", TEMA_OPT_FLOAT, "1.2", 0, 10, NULL, "BM25 term-frequency saturation"},
    {"b", TEMA_OPT_FLOAT, "0.75", 0, 1, NULL, "BM25 title-length normalisation (0 = none, 1 = full)"},
    {"scale_quantile", TEMA_OPT_FLOAT, "0.9", 0.5, 1, NULL,
     "raw BM25 score that maps to relevance 100: this quantile of the domain's positive scores"},
};

/* ---- text normalisation ---- */

static bool is_stop_word(const char *w)
{
    static const char *const stop[] = {"a", "an", "and", "the", "of", "for", "with", "in", "on", "to", "by", "or", "at"};
    for (size_t i = 0; i < sizeof stop / sizeof stop[0]; i++)
        if (!strcmp(w, stop[i])) return true;
    return false;
}

static bool ends_with(const char *w, size_t n, const char *suf)
{
    size_t m = strlen(suf);
    return n >= m && !memcmp(w + n - m, suf, m);
}

static bool is_vowel(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

/* Plural folding (a light S-stemmer that also maps the singular to the same form, so
 * cookie/cookies, berry/berries, shoe/shoes agree). Only all-letter words are touched. */
static void fold_plural(char *w)
{
    size_t n = strlen(w);
    for (size_t i = 0; i < n; i++)
        if (w[i] < 'a' || w[i] > 'z') return;
    if (n > 4 && ends_with(w, n, "ies")) {
        w[n - 2] = '\0'; /* cookies -> cooki */
        return;
    }
    if (n > 4 && (ends_with(w, n, "sses") || ends_with(w, n, "shes") || ends_with(w, n, "ches") ||
                  ends_with(w, n, "xes") || ends_with(w, n, "zzes") || ends_with(w, n, "oes")))
        w[n -= 2] = '\0';
    else if (n > 3 && w[n - 1] == 's' && w[n - 2] != 's')
        w[--n] = '\0';
    if (n > 3 && ends_with(w, n, "ie")) w[n - 1] = '\0';           /* cookie -> cooki */
    else if (n > 3 && w[n - 1] == 'y' && !is_vowel(w[n - 2])) w[n - 1] = 'i'; /* berry -> berri */
    else if (n > 3 && ends_with(w, n, "oe")) w[n - 1] = '\0';      /* shoe -> sho */
}

/* Length of an HTML entity at s ("&amp;", "&#39;"), 0 if none. */
static size_t entity_len(const char *s)
{
    if (*s != '&') return 0;
    size_t i = 1;
    if (s[i] == '#') i++;
    size_t start = i;
    while (i < start + 8 && isalnum((unsigned char)s[i])) i++;
    return i > start && s[i] == ';' ? i + 1 : 0;
}

static bool is_apostrophe_entity(const char *s, size_t len)
{
    return (len == 5 && !strncmp(s, "&#39;", 5)) || (len == 6 && !strncmp(s, "&apos;", 6)) ||
           (len == 6 && !strncasecmp(s, "&#x27;", 6));
}

/* Length of an apostrophe at s (ASCII, U+2019, or its entity), 0 if none. */
static size_t apostrophe_len(const char *s)
{
    if (*s == '\'') return 1;
    if ((unsigned char)s[0] == 0xE2 && (unsigned char)s[1] == 0x80 && (unsigned char)s[2] == 0x99) return 3;
    size_t e = entity_len(s);
    return e && is_apostrophe_entity(s, e) ? e : 0;
}

static bool word_byte(unsigned char c) { return isalnum(c) || c >= 0x80; }

/* Length of a UTF-8 punctuation or symbol at s that separates words (no-break space,
 * (R), (C), the general punctuation block: dashes, quotes, bullets; TM), 0 if none.
 * Other non-ASCII bytes (accented letters, other scripts) belong to words. */
static size_t utf8_sep_len(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] == 0xC2 && u[1] >= 0xA0 && u[1] <= 0xBF) return 2;            /* U+00A0..U+00BF */
    if (u[0] == 0xC3 && (u[1] == 0x97 || u[1] == 0xB7)) return 2;           /* times, divide */
    if (u[0] == 0xE2 && (u[1] == 0x80 || u[1] == 0x81) && u[2] >= 0x80 && u[2] <= 0xBF) return 3; /* U+2000..U+207F */
    if (u[0] == 0xE2 && u[1] == 0x84 && (u[2] == 0xA2 || u[2] == 0xA0)) return 3; /* TM, SM */
    if (u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF) return 3;             /* byte order mark */
    return 0;
}

/* Call emit(word, ctx) for every normalised word of text, in order. */
typedef bool (*word_fn)(const char *word, void *ctx);

static bool for_each_word(const char *text, word_fn emit, void *ctx)
{
    char w[MAX_WORD];
    size_t n = 0;
    const char *s = text;
    while (true) {
        size_t ap = n > 0 ? apostrophe_len(s) : 0;
        if (ap && word_byte((unsigned char)s[ap])) {
            /* inside a word: drop a possessive 's, join the rest ("don't" -> dont) */
            if ((s[ap] == 's' || s[ap] == 'S') && !word_byte((unsigned char)s[ap + 1])) s += ap + 1;
            else s += ap;
            continue;
        }
        unsigned char c = (unsigned char)*s;
        bool in_word = c && word_byte(c) && apostrophe_len(s) == 0 && utf8_sep_len(s) == 0;
        if (in_word) {
            if (n + 1 < sizeof w) w[n++] = (char)tolower(c);
            s++;
            continue;
        }
        if (n > 0) {
            w[n] = '\0';
            n = 0;
            fold_plural(w);
            if (!is_stop_word(w) && !emit(w, ctx)) return false;
        }
        if (!c) return true;
        size_t e = entity_len(s), a = apostrophe_len(s), u = utf8_sep_len(s);
        s += e ? e : ap ? ap : a ? a : u ? u : 1;
    }
}

/* ---- the vocabulary ---- */

typedef struct lexical {
    const tema_host *host;       /* outlives the instance */
    char *file;                  /* the vocabulary file, for messages */
    double k1, b, quantile;
    /* distinct words of the vocabulary; open-addressing hash of their indices */
    char **word;
    size_t n_word, cap_word;
    int32_t *slot;               /* [n_slot], -1 = empty */
    size_t n_slot;
    /* distinct phrases: words ph_word[ph_off[p]..ph_off[p+1]) */
    int32_t *ph_word;
    size_t n_ph_word, cap_ph_word;
    int32_t *ph_off;
    size_t n_ph, cap_ph_off;
    /* tags: names, and their phrases tag_ph[tag_off[t]..tag_off[t+1]) */
    char **tag_name;
    size_t n_tags, cap_tag_name;
    int32_t *tag_ph, *tag_off;
    size_t n_tag_ph, cap_tag_ph, cap_tag_off;
    /* derived: phrases by first word (CSR), and the tags of each phrase (CSR) */
    int32_t *first_off, *first_ph;
    int32_t *ph_tag_off, *ph_tag;
} lexical;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int32_t word_find(const lexical *lx, const char *w)
{
    if (!lx->n_slot) return -1;
    for (size_t i = hash_str(w) & (lx->n_slot - 1);; i = (i + 1) & (lx->n_slot - 1)) {
        int32_t k = lx->slot[i];
        if (k < 0) return -1;
        if (!strcmp(lx->word[k], w)) return k;
    }
}

static bool rehash(lexical *lx, size_t n_slot)
{
    int32_t *slot = malloc(n_slot * sizeof *slot);
    if (!slot) return false;
    for (size_t i = 0; i < n_slot; i++) slot[i] = -1;
    for (size_t k = 0; k < lx->n_word; k++) {
        size_t i = hash_str(lx->word[k]) & (n_slot - 1);
        while (slot[i] >= 0) i = (i + 1) & (n_slot - 1);
        slot[i] = (int32_t)k;
    }
    free(lx->slot);
    lx->slot = slot;
    lx->n_slot = n_slot;
    return true;
}

/* Index of word w, added when new; -1 when out of memory. */
static int32_t word_intern(lexical *lx, const char *w)
{
    int32_t k = word_find(lx, w);
    if (k >= 0) return k;
    if ((lx->n_word + 1) * 2 > lx->n_slot && !rehash(lx, lx->n_slot ? lx->n_slot * 2 : 256)) return -1;
    char *copy = strdup(w);
    if (!copy || !tag_vocab_grow((void **)&lx->word, &lx->cap_word, lx->n_word + 1, sizeof *lx->word)) {
        free(copy);
        return -1;
    }
    lx->word[lx->n_word] = copy;
    size_t i = hash_str(w) & (lx->n_slot - 1);
    while (lx->slot[i] >= 0) i = (i + 1) & (lx->n_slot - 1);
    lx->slot[i] = (int32_t)lx->n_word;
    return (int32_t)lx->n_word++;
}

typedef struct phrase_buf {
    lexical *lx;
    int32_t w[32];
    int n;
    bool oom, too_long;
} phrase_buf;

static bool phrase_word(const char *word, void *ctx)
{
    phrase_buf *pb = ctx;
    if (pb->n == 32) {
        pb->too_long = true;
        return false;
    }
    int32_t k = word_intern(pb->lx, word);
    if (k < 0) {
        pb->oom = true;
        return false;
    }
    pb->w[pb->n++] = k;
    return true;
}

static void lexical_free(lexical *lx)
{
    if (!lx) return;
    for (size_t i = 0; i < lx->n_word; i++) free(lx->word[i]);
    for (size_t i = 0; i < lx->n_tags; i++) free(lx->tag_name[i]);
    free(lx->word);
    free(lx->slot);
    free(lx->ph_word);
    free(lx->ph_off);
    free(lx->tag_name);
    free(lx->tag_ph);
    free(lx->tag_off);
    free(lx->first_off);
    free(lx->first_ph);
    free(lx->ph_tag_off);
    free(lx->ph_tag);
    free(lx->file);
    free(lx);
}

/* Add phrase `text` to the tag being built (the last one). */
static tema_status add_phrase(lexical *lx, const char *text, size_t line, tema_err *err)
{
    phrase_buf pb = {.lx = lx};
    for_each_word(text, phrase_word, &pb);
    if (pb.oom) return tema_fail(err, TEMA_ENOMEM, WHO ": out of memory reading %s", lx->file);
    if (pb.too_long)
        return tema_fail(err, TEMA_EFORMAT, "%s:%zu: phrase '%.80s' has more than 32 words; hint: use shorter "
                                            "keywords", lx->file, line, text);
    if (pb.n == 0)
        return tema_fail(err, TEMA_EFORMAT, "%s:%zu: '%.80s' has no word to match (only stop words or punctuation); "
                                            "hint: use a keyword with letters or digits", lx->file, line, text);
    /* the same phrase in several tags (or twice in one) is one term */
    size_t p = 0;
    for (; p < lx->n_ph; p++) {
        int32_t a = lx->ph_off[p], b = lx->ph_off[p + 1];
        if (b - a == pb.n && !memcmp(lx->ph_word + a, pb.w, (size_t)pb.n * sizeof *pb.w)) break;
    }
    if (p == lx->n_ph) {
        if (!tag_vocab_grow((void **)&lx->ph_word, &lx->cap_ph_word, lx->n_ph_word + (size_t)pb.n,
                            sizeof *lx->ph_word) ||
            !tag_vocab_grow((void **)&lx->ph_off, &lx->cap_ph_off, lx->n_ph + 2, sizeof *lx->ph_off))
            return tema_fail(err, TEMA_ENOMEM, WHO ": out of memory reading %s", lx->file);
        memcpy(lx->ph_word + lx->n_ph_word, pb.w, (size_t)pb.n * sizeof *pb.w);
        lx->n_ph_word += (size_t)pb.n;
        lx->ph_off[0] = 0;
        lx->ph_off[++lx->n_ph] = (int32_t)lx->n_ph_word;
    }
    for (int32_t k = lx->tag_off[lx->n_tags - 1]; k < (int32_t)lx->n_tag_ph; k++)
        if (lx->tag_ph[k] == (int32_t)p) return TEMA_OK;
    if (!tag_vocab_grow((void **)&lx->tag_ph, &lx->cap_tag_ph, lx->n_tag_ph + 1, sizeof *lx->tag_ph))
        return tema_fail(err, TEMA_ENOMEM, WHO ": out of memory reading %s", lx->file);
    lx->tag_ph[lx->n_tag_ph++] = (int32_t)p;
    lx->tag_off[lx->n_tags] = (int32_t)lx->n_tag_ph;
    return TEMA_OK;
}

/* The reader's callbacks (tag_vocab.h): a tag's name is the first phrase of its query. */
static tema_status on_tag(void *ctx, const char *name, size_t len, size_t line, tema_err *err)
{
    lexical *lx = ctx;
    char *copy = strndup(name, len);
    if (!copy || !tag_vocab_grow((void **)&lx->tag_name, &lx->cap_tag_name, lx->n_tags + 1, sizeof *lx->tag_name) ||
        !tag_vocab_grow((void **)&lx->tag_off, &lx->cap_tag_off, lx->n_tags + 2, sizeof *lx->tag_off)) {
        free(copy);
        return tema_fail(err, TEMA_ENOMEM, WHO ": out of memory reading %s", lx->file);
    }
    lx->tag_name[lx->n_tags++] = copy;
    lx->tag_off[0] = 0;
    lx->tag_off[lx->n_tags] = (int32_t)lx->n_tag_ph;
    return add_phrase(lx, copy, line, err);
}

static tema_status on_synonym(void *ctx, const char *text, size_t line, tema_err *err)
{
    return add_phrase(ctx, text, line, err);
}

/* CSR indexes: phrases by their first word, tags by phrase. */
static tema_status build_index(lexical *lx, tema_err *err)
{
    lx->first_off = calloc(lx->n_word + 1, sizeof *lx->first_off);
    lx->first_ph = malloc((lx->n_ph ? lx->n_ph : 1) * sizeof *lx->first_ph);
    lx->ph_tag_off = calloc(lx->n_ph + 1, sizeof *lx->ph_tag_off);
    lx->ph_tag = malloc((lx->n_tag_ph ? lx->n_tag_ph : 1) * sizeof *lx->ph_tag);
    int32_t *fill = calloc((lx->n_word > lx->n_ph ? lx->n_word : lx->n_ph) + 1, sizeof *fill);
    if (!lx->first_off || !lx->first_ph || !lx->ph_tag_off || !lx->ph_tag || !fill) {
        free(fill);
        return tema_fail(err, TEMA_ENOMEM, WHO ": out of memory indexing %s", lx->file);
    }
    for (size_t p = 0; p < lx->n_ph; p++) lx->first_off[lx->ph_word[lx->ph_off[p]] + 1]++;
    for (size_t w = 0; w < lx->n_word; w++) lx->first_off[w + 1] += lx->first_off[w];
    for (size_t p = 0; p < lx->n_ph; p++) {
        int32_t w = lx->ph_word[lx->ph_off[p]];
        lx->first_ph[lx->first_off[w] + fill[w]++] = (int32_t)p;
    }
    memset(fill, 0, (lx->n_ph + 1) * sizeof *fill);
    for (size_t k = 0; k < lx->n_tag_ph; k++) lx->ph_tag_off[lx->tag_ph[k] + 1]++;
    for (size_t p = 0; p < lx->n_ph; p++) lx->ph_tag_off[p + 1] += lx->ph_tag_off[p];
    for (size_t t = 0; t < lx->n_tags; t++)
        for (int32_t k = lx->tag_off[t]; k < lx->tag_off[t + 1]; k++) {
            int32_t p = lx->tag_ph[k];
            lx->ph_tag[lx->ph_tag_off[p] + fill[p]++] = (int32_t)t;
        }
    free(fill);
    return TEMA_OK;
}

static tema_status lexical_create(const tema_host *host, const tema_cfg *opts, const char *domain, void **self,
                                  tema_err *err)
{
    *self = NULL;
    char *file = NULL;
    tema_status st = tag_vocab_path(host, opts, domain, WHO, &file, err);
    if (st != TEMA_OK) return st;
    lexical *lx = calloc(1, sizeof *lx);
    if (!lx) {
        free(file);
        return tema_fail(err, TEMA_ENOMEM, WHO ": out of memory");
    }
    lx->host = host;
    lx->file = file;
    if ((st = plugin_opt_float(host, opts, WHO, "k1", &lx->k1, err)) != TEMA_OK ||
        (st = plugin_opt_float(host, opts, WHO, "b", &lx->b, err)) != TEMA_OK ||
        (st = plugin_opt_float(host, opts, WHO, "scale_quantile", &lx->quantile, err)) != TEMA_OK) {
        lexical_free(lx);
        return st;
    }
    const tag_vocab_sink sink = {.who = WHO, .file = lx->file, .ctx = lx, .tag = on_tag, .synonym = on_synonym};
    st = tag_vocab_load(&sink, domain, err);
    if (st == TEMA_OK) st = build_index(lx, err);
    if (st != TEMA_OK) {
        lexical_free(lx);
        return st;
    }
    *self = lx;
    return TEMA_OK;
}

/* ---- scoring ---- */

typedef struct title_buf {
    const lexical *lx;
    int32_t *w;        /* word index, -1 = not a vocabulary word */
    size_t n, cap;
    bool oom;
} title_buf;

static bool title_word(const char *word, void *ctx)
{
    title_buf *tb = ctx;
    if (!tag_vocab_grow((void **)&tb->w, &tb->cap, tb->n + 1, sizeof *tb->w)) {
        tb->oom = true;
        return false;
    }
    tb->w[tb->n++] = word_find(tb->lx, word);
    return true;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The titles' phrase matches, the input of BM25: per item its matched phrases and their
 * counts (CSR), its length in words (0 = not a document), and per phrase its document
 * frequency. */
typedef struct title_matches {
    int64_t *off;       /* [n_items + 1] */
    int32_t *ph, *tf;   /* [off[n_items]] */
    size_t n, cap_ph, cap_tf;
    int32_t *dl;        /* [n_items] */
    int64_t *df;        /* [n_ph] */
    int64_t n_docs;
    double len_sum;
} title_matches;

static void title_matches_free(title_matches *m)
{
    free(m->off);
    free(m->ph);
    free(m->tf);
    free(m->dl);
    free(m->df);
}

/* out's tag names (copies in host memory) and room for its scores; false when out of memory. */
static bool alloc_tag_vocab(const lexical *lx, int64_t n_items, tema_tag_vocab *out)
{
    const tema_host *host = lx->host;
    const size_t nt = lx->n_tags;
    out->n_tags = (int32_t)nt;
    out->tags = host->alloc(nt * sizeof *out->tags);
    out->score = host->alloc((size_t)(n_items > 0 ? n_items : 1) * nt * sizeof *out->score);
    if (out->tags) memset(out->tags, 0, nt * sizeof *out->tags);
    for (size_t t = 0; out->tags && t < nt; t++) {
        size_t len = strlen(lx->tag_name[t]) + 1;
        out->tags[t] = host->alloc(len);
        if (!out->tags[t]) break;
        memcpy(out->tags[t], lx->tag_name[t], len);
    }
    return out->tags && out->score && (nt == 0 || out->tags[nt - 1]);
}

/* Counts into count[] the vocabulary phrases that occur in the title's words; each phrase
 * counted for the first time is listed in touched[]. Returns how many are listed. */
static size_t count_phrases(const lexical *lx, const title_buf *tb, int32_t *count, int32_t *touched)
{
    size_t n_touched = 0;
    for (size_t p = 0; p < tb->n; p++) {
        int32_t w = tb->w[p];
        if (w < 0) continue;
        for (int32_t k = lx->first_off[w]; k < lx->first_off[w + 1]; k++) {
            int32_t ph = lx->first_ph[k];
            int32_t a = lx->ph_off[ph], len = lx->ph_off[ph + 1] - a;
            if (p + (size_t)len > tb->n || memcmp(tb->w + p, lx->ph_word + a, (size_t)len * sizeof *tb->w) != 0)
                continue;
            if (count[ph]++ == 0) touched[n_touched++] = ph;
        }
    }
    return n_touched;
}

/* Every title's phrase matches into m (allocated by the caller); false when out of memory. */
static bool match_titles(const lexical *lx, const char *const *titles, int64_t n_items, title_matches *m)
{
    const size_t np = lx->n_ph;
    int32_t *count = calloc(np ? np : 1, sizeof *count), *touched = malloc((np ? np : 1) * sizeof *touched);
    title_buf tb = {.lx = lx};
    bool ok = count && touched;
    if (ok) m->off[0] = 0;
    for (int64_t i = 0; ok && i < n_items; i++) {
        m->dl[i] = 0;
        m->off[i + 1] = (int64_t)m->n;
        const char *title = titles[i];
        if (!title || !*title) continue;
        tb.n = 0;
        for_each_word(title, title_word, &tb);
        if (tb.oom) {
            ok = false;
            break;
        }
        if (tb.n == 0) continue; /* punctuation only: not a document */
        m->dl[i] = (int32_t)tb.n;
        m->n_docs++;
        m->len_sum += (double)tb.n;
        size_t n_touched = count_phrases(lx, &tb, count, touched);
        if (!tag_vocab_grow((void **)&m->ph, &m->cap_ph, m->n + n_touched, sizeof *m->ph) ||
            !tag_vocab_grow((void **)&m->tf, &m->cap_tf, m->n + n_touched, sizeof *m->tf)) {
            ok = false;
            break;
        }
        for (size_t k = 0; k < n_touched; k++) {
            int32_t ph = touched[k];
            m->ph[m->n] = ph;
            m->tf[m->n++] = count[ph];
            m->df[ph]++;
            count[ph] = 0;
        }
        m->off[i + 1] = (int64_t)m->n;
    }
    free(count);
    free(touched);
    free(tb.w);
    return ok;
}

/* Raw BM25 scores into score[n_items * n_tags]; returns how many are positive, -1 when out
 * of memory. */
static int64_t bm25_raw(const lexical *lx, const title_matches *m, int64_t n_items, float *score)
{
    const size_t nt = lx->n_tags, np = lx->n_ph;
    double *idf = malloc((np ? np : 1) * sizeof *idf), *row = calloc(nt ? nt : 1, sizeof *row);
    if (!idf || !row) {
        free(idf);
        free(row);
        return -1;
    }
    const double N = (double)m->n_docs, avgdl = m->n_docs ? m->len_sum / N : 1.0;
    for (size_t p = 0; p < np; p++) idf[p] = log(1.0 + (N - (double)m->df[p] + 0.5) / ((double)m->df[p] + 0.5));
    int64_t n_pos = 0;
    for (int64_t i = 0; i < n_items; i++) {
        float *o = score + (size_t)i * nt;
        for (size_t t = 0; t < nt; t++) row[t] = 0;
        const double norm = lx->k1 * (1.0 - lx->b + lx->b * (double)m->dl[i] / avgdl);
        for (int64_t k = m->off[i]; k < m->off[i + 1]; k++) {
            const int32_t ph = m->ph[k];
            const double tf = m->tf[k];
            const double term = idf[ph] * tf * (lx->k1 + 1.0) / (tf + norm);
            for (int32_t j = lx->ph_tag_off[ph]; j < lx->ph_tag_off[ph + 1]; j++) row[lx->ph_tag[j]] += term;
        }
        for (size_t t = 0; t < nt; t++) {
            o[t] = (float)row[t];
            if (o[t] > 0) n_pos++;
        }
    }
    free(idf);
    free(row);
    return n_pos;
}

/* Raw scores to relevance 1..100 in place (see the top of the file); false when out of memory. */
static bool scale_to_relevance(const lexical *lx, float *score, size_t n_cells, int64_t n_pos)
{
    float *positive = malloc((size_t)(n_pos > 0 ? n_pos : 1) * sizeof *positive);
    if (!positive) return false;
    if (n_pos > 0) {
        int64_t k = 0;
        for (size_t j = 0; j < n_cells; j++)
            if (score[j] > 0) positive[k++] = score[j];
        qsort(positive, (size_t)n_pos, sizeof *positive, cmp_float);
        /* nearest-rank quantile */
        int64_t r = (int64_t)ceil(lx->quantile * (double)n_pos) - 1;
        if (r < 0) r = 0;
        if (r >= n_pos) r = n_pos - 1;
        const double scale = positive[r];
        for (size_t j = 0; j < n_cells; j++) {
            if (!(score[j] > 0)) continue;
            double v = nearbyint(100.0 * (double)score[j] / scale);
            score[j] = (float)(v < 1 ? 1 : v > 100 ? 100 : v);
        }
    }
    free(positive);
    return true;
}

static tema_status lexical_tag(void *self, const char *const *titles, int64_t n_items, tema_tag_vocab *out,
                               tema_err *err)
{
    memset(out, 0, sizeof *out);
    const lexical *lx = self;
    if (!lx || n_items < 0 || (n_items > 0 && !titles))
        return tema_fail(err, TEMA_EINVAL, WHO ": tag() needs an instance and n_items >= 0 titles");
    const size_t nt = lx->n_tags, np = lx->n_ph;
    title_matches m = {0};
    m.off = malloc((size_t)(n_items + 1) * sizeof *m.off);
    m.dl = malloc((size_t)(n_items > 0 ? n_items : 1) * sizeof *m.dl);
    m.df = calloc(np ? np : 1, sizeof *m.df);
    bool ok = alloc_tag_vocab(lx, n_items, out) && m.off && m.dl && m.df && match_titles(lx, titles, n_items, &m);
    int64_t n_pos = ok ? bm25_raw(lx, &m, n_items, out->score) : -1;
    ok = n_pos >= 0 && scale_to_relevance(lx, out->score, (size_t)n_items * nt, n_pos);
    title_matches_free(&m);
    if (!ok) {
        tag_vocab_out_free(lx->host, out);
        return tema_fail(err, TEMA_ENOMEM, WHO ": out of memory scoring %lld titles against %zu tags",
                         (long long)n_items, nt);
    }
    return TEMA_OK;
}

static void lexical_destroy(void *self) { lexical_free(self); }

static const tema_tagger_ops lexical_ops = {.create_with_host = lexical_create, .tag = lexical_tag,
                                            .destroy = lexical_destroy};

static const tema_plugin lexical_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_TAGGER, "lexical", "1.0.0", "offline BM25 matching of titles against per-domain "
                       "tag vocabularies (experiments/tags/<domain>.yaml)", lexical_options, lexical_ops)};

TEMA_PLUGIN_DEFINE(lexical_plugin)
