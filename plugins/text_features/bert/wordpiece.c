/* plugins/text_features/bert/wordpiece.c - BertTokenizer (BasicTokenizer + WordpieceTokenizer,
 * lower-cased, accents stripped) over a vocab.txt; behaviour described in wordpiece.h.
 *
 * Ownership: wp_vocab owns `text` (the file with line ends replaced by NULs, so tokens are
 * C strings inside it), `token_offsets` and `slots`; wp_vocab_free releases them. wp_encode
 * keeps its scratch (current word, its NFD form) in a stack-allocated wp_scratch and falls
 * back to malloc only for words longer than the inline buffers; those are freed before it
 * returns. Nothing is global or mutable, hence the thread safety.
 */
#include "wordpiece.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

typedef struct wp_slot {
    uint32_t hash;
    int32_t id; /* -1: empty */
} wp_slot;

struct wp_vocab {
    char *text;
    uint32_t *token_offsets; /* id -> offset of its NUL-terminated string in text */
    uint32_t *token_lengths;
    int32_t size;
    int32_t max_token_bytes; /* longer substrings cannot match: skips hopeless lookups */
    wp_slot *slots;          /* open addressing, linear probing; capacity is a power of two */
    uint32_t slot_mask;
    int32_t cls, sep, unk, pad;
    int32_t special_ids[5]; /* [CLS] [SEP] [UNK] [PAD] [MASK] as split out of raw text; -1 if absent */
};

static const char *const special_tokens[5] = {"[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]"};

/* FNV-1a, continued from `h` so "##" + piece hashes without building the string. */
static uint32_t fnv1a(uint32_t h, const char *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)bytes[i]) * 16777619u;
    return h;
}
#define FNV_SEED 2166136261u

/* Id of (continuation ? "##" : "") + bytes[0..n), or -1. */
static int32_t lookup(const wp_vocab *v, bool continuation, const char *bytes, size_t n)
{
    size_t prefix = continuation ? 2 : 0;
    if (n + prefix > (size_t)v->max_token_bytes) return -1;
    uint32_t h = fnv1a(continuation ? fnv1a(FNV_SEED, "##", 2) : FNV_SEED, bytes, n);
    for (uint32_t i = h & v->slot_mask;; i = (i + 1) & v->slot_mask) {
        const wp_slot *s = &v->slots[i];
        if (s->id < 0) return -1;
        if (s->hash != h || v->token_lengths[s->id] != n + prefix) continue;
        const char *tok = v->text + v->token_offsets[s->id];
        if ((!continuation || (tok[0] == '#' && tok[1] == '#')) && memcmp(tok + prefix, bytes, n) == 0) return s->id;
    }
}

int32_t wp_id(const wp_vocab *v, const char *token) { return lookup(v, false, token, strlen(token)); }
int32_t wp_vocab_size(const wp_vocab *v) { return v->size; }
int32_t wp_cls_id(const wp_vocab *v) { return v->cls; }
int32_t wp_sep_id(const wp_vocab *v) { return v->sep; }
int32_t wp_unk_id(const wp_vocab *v) { return v->unk; }
int32_t wp_pad_id(const wp_vocab *v) { return v->pad; }

const char *wp_token(const wp_vocab *v, int32_t id)
{
    return id >= 0 && id < v->size ? v->text + v->token_offsets[id] : NULL;
}

void wp_vocab_free(wp_vocab *v)
{
    if (!v) return;
    free(v->text);
    free(v->token_offsets);
    free(v->token_lengths);
    free(v->slots);
    free(v);
}

/* Next code point of s[*pos..len), advancing *pos; -1 for a byte that starts no valid
 * sequence. Skipping one byte per error never swallows the start of a valid character,
 * so the surviving characters are those Python's errors='replace' decoding keeps. */
static int32_t next_codepoint(const unsigned char *s, size_t len, size_t *pos)
{
    unsigned char lead = s[*pos];
    if (lead < 0x80) {
        (*pos)++;
        return lead;
    }
    int trail;
    int32_t cp, min;
    if (lead >= 0xC2 && lead <= 0xDF) trail = 1, cp = lead & 0x1F, min = 0x80;
    else if (lead >= 0xE0 && lead <= 0xEF) trail = 2, cp = lead & 0x0F, min = 0x800;
    else if (lead >= 0xF0 && lead <= 0xF4) trail = 3, cp = lead & 0x07, min = 0x10000;
    else trail = -1, cp = min = 0;
    if (trail < 0 || len - *pos <= (size_t)trail) {
        (*pos)++;
        return -1;
    }
    for (int i = 1; i <= trail; i++) {
        unsigned char c = s[*pos + (size_t)i];
        if ((c & 0xC0) != 0x80) {
            (*pos)++;
            return -1;
        }
        cp = cp << 6 | (c & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        (*pos)++;
        return -1;
    }
    *pos += (size_t)trail + 1;
    return cp;
}

/* ---- vocabulary loading ---- */

static tema_status read_whole_file(const char *path, char **out, size_t *len, tema_err *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return tema_fail(err, errno == ENOENT ? TEMA_ENOTFOUND : TEMA_EIO, "%s: cannot open vocabulary: %s", path,
                         strerror(errno));
    char *buf = NULL;
    size_t used = 0, cap = 0;
    for (;;) {
        if (cap - used < 65536) {
            cap = cap ? cap * 2 : 1 << 18;
            char *bigger = cap < INT32_MAX ? realloc(buf, cap + 1) : NULL;
            if (!bigger) {
                free(buf);
                fclose(fp);
                return tema_fail(err, TEMA_ENOMEM, "%s: vocabulary too large or out of memory", path);
            }
            buf = bigger;
        }
        size_t got = fread(buf + used, 1, cap - used, fp);
        used += got;
        if (got == 0) break;
    }
    bool failed = ferror(fp);
    fclose(fp);
    if (failed) {
        free(buf);
        return tema_fail(err, TEMA_EIO, "%s: read error", path);
    }
    buf[used] = '\0';
    *out = buf;
    *len = used;
    return TEMA_OK;
}

/* Split v->text (len bytes) into lines in place; Python's readlines() with universal
 * newlines ends a line at \n, \r\n or \r, which is how transformers' load_vocab reads it. */
static tema_status split_lines(const char *path, wp_vocab *v, size_t len, tema_err *err)
{
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        if (v->text[i] == '\n' || (v->text[i] == '\r' && (i + 1 == len || v->text[i + 1] != '\n'))) lines++;
    if (len > 0 && v->text[len - 1] != '\n' && v->text[len - 1] != '\r') lines++;
    if (lines == 0)
        return tema_fail(err, TEMA_EFORMAT, "%s: vocabulary is empty; hint: expected a BERT vocab.txt, one token per line",
                         path);
    v->token_offsets = malloc(lines * sizeof *v->token_offsets);
    v->token_lengths = malloc(lines * sizeof *v->token_lengths);
    if (!v->token_offsets || !v->token_lengths) return tema_fail(err, TEMA_ENOMEM, "%s: out of memory", path);
    size_t start = 0;
    for (size_t i = 0; i <= len && (size_t)v->size < lines; i++) {
        if (i < len && v->text[i] != '\n' && v->text[i] != '\r') continue;
        bool crlf = i + 1 < len && v->text[i] == '\r' && v->text[i + 1] == '\n';
        v->text[i] = '\0';
        v->token_offsets[v->size] = (uint32_t)start;
        v->token_lengths[v->size] = (uint32_t)(i - start);
        if (i - start > (size_t)v->max_token_bytes) v->max_token_bytes = (int32_t)(i - start);
        for (size_t p = start; p < i;)
            if (next_codepoint((const unsigned char *)v->text, i, &p) < 0)
                return tema_fail(err, TEMA_EFORMAT, "%s: line %d: not valid UTF-8", path, v->size + 1);
        v->size++;
        if (crlf) i++;
        start = i + 1;
    }
    return TEMA_OK;
}

static tema_status build_table(const char *path, wp_vocab *v, tema_err *err)
{
    uint32_t capacity = 16;
    while (capacity < 2u * (uint32_t)v->size) capacity *= 2;
    v->slots = malloc(capacity * sizeof *v->slots);
    if (!v->slots) return tema_fail(err, TEMA_ENOMEM, "%s: out of memory", path);
    for (uint32_t i = 0; i < capacity; i++) v->slots[i].id = -1;
    v->slot_mask = capacity - 1;
    for (int32_t id = 0; id < v->size; id++) {
        const char *tok = v->text + v->token_offsets[id];
        int32_t first = lookup(v, false, tok, v->token_lengths[id]);
        if (first >= 0)
            return tema_fail(err, TEMA_EFORMAT,
                             "%s: line %d: duplicate token '%s' (first on line %d); hint: the vocabulary is corrupt",
                             path, id + 1, tok, first + 1);
        uint32_t h = fnv1a(FNV_SEED, tok, v->token_lengths[id]);
        uint32_t i = h & v->slot_mask;
        while (v->slots[i].id >= 0) i = (i + 1) & v->slot_mask;
        v->slots[i] = (wp_slot){h, id};
    }
    return TEMA_OK;
}

static tema_status find_specials(const char *path, wp_vocab *v, tema_err *err)
{
    int32_t *required[4] = {&v->cls, &v->sep, &v->unk, &v->pad};
    for (int i = 0; i < 5; i++) {
        v->special_ids[i] = wp_id(v, special_tokens[i]);
        if (i < 4 && (*required[i] = v->special_ids[i]) < 0)
            return tema_fail(err, TEMA_EFORMAT,
                             "%s: no %s token in %d lines; hint: not a BERT WordPiece vocab.txt (another "
                             "architecture's tokenizer?)",
                             path, special_tokens[i], v->size);
    }
    return TEMA_OK;
}

tema_status wp_vocab_load(const char *vocab_txt_path, wp_vocab **out, tema_err *err)
{
    *out = NULL;
    wp_vocab *v = calloc(1, sizeof *v);
    if (!v) return tema_fail(err, TEMA_ENOMEM, "%s: out of memory", vocab_txt_path);
    size_t len = 0;
    tema_status st = read_whole_file(vocab_txt_path, &v->text, &len, err);
    if (!st) st = split_lines(vocab_txt_path, v, len, err);
    if (!st) st = build_table(vocab_txt_path, v, err);
    if (!st) st = find_specials(vocab_txt_path, v, err);
    if (st) {
        wp_vocab_free(v);
        return st;
    }
    *out = v;
    return TEMA_OK;
}

/* ---- character classes (transformers' _is_control, _is_whitespace, _is_punctuation) ---- */

static bool is_control(int32_t cp)
{
    if (cp == '\t' || cp == '\n' || cp == '\r') return false;
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CS ||
           c == UTF8PROC_CATEGORY_CO || c == UTF8PROC_CATEGORY_CN;
}

/* _is_whitespace, plus U+2028 and U+2029 which survive _clean_text and str.split() splits on. */
static bool splits_words(int32_t cp)
{
    if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') return true;
    if (cp < 0x80) return false;
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

static bool is_punctuation(int32_t cp)
{
    if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
        return true;
    if (cp < 0x80) return false;
    utf8proc_category_t c = utf8proc_category(cp);
    return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

static bool is_cjk(int32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/* ---- encoding ---- */

/* A code point buffer that starts in `inline_cps` and moves to the heap when it outgrows it. */
typedef struct cp_buf {
    int32_t *cps;
    size_t len, cap;
    int32_t inline_cps[512];
} cp_buf;

static void cp_buf_init(cp_buf *b)
{
    b->cps = b->inline_cps;
    b->len = 0;
    b->cap = sizeof b->inline_cps / sizeof b->inline_cps[0];
}

static bool cp_buf_reserve(cp_buf *b, size_t need)
{
    if (need <= b->cap) return true;
    size_t cap = b->cap;
    while (cap < need) cap *= 2;
    int32_t *bigger = b->cps == b->inline_cps ? malloc(cap * sizeof *bigger) : realloc(b->cps, cap * sizeof *bigger);
    if (!bigger) return false;
    if (b->cps == b->inline_cps) memcpy(bigger, b->inline_cps, b->len * sizeof *bigger);
    b->cps = bigger;
    b->cap = cap;
    return true;
}

static void cp_buf_release(cp_buf *b)
{
    if (b->cps != b->inline_cps) free(b->cps);
    cp_buf_init(b);
}

typedef struct wp_scratch {
    const wp_vocab *v;
    int32_t *ids;
    int32_t count, limit; /* ids[1..limit) take tokens; ids[limit] is then [SEP] */
    bool out_of_memory;
    cp_buf word; /* current whitespace-delimited word, as cleaned */
    cp_buf nfd;  /* its lower-cased, decomposed, accent-stripped form */
} wp_scratch;

static bool full(const wp_scratch *s) { return s->count >= s->limit || s->out_of_memory; }

static void emit(wp_scratch *s, int32_t id)
{
    if (s->count < s->limit) s->ids[s->count++] = id;
}

static size_t utf8_encode(int32_t cp, char *out)
{
    return (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)out);
}

/* WordpieceTokenizer.tokenize on one punctuation-free piece of n code points. */
static void wordpiece(wp_scratch *s, const int32_t *cps, size_t n)
{
    if (n == 0) return;
    if (n > WP_MAX_WORD_CHARS) {
        emit(s, s->v->unk);
        return;
    }
    char bytes[4 * WP_MAX_WORD_CHARS];
    size_t offsets[WP_MAX_WORD_CHARS + 1];
    offsets[0] = 0;
    for (size_t i = 0; i < n; i++) offsets[i + 1] = offsets[i] + utf8_encode(cps[i], bytes + offsets[i]);
    int32_t pieces[WP_MAX_WORD_CHARS];
    size_t n_pieces = 0;
    for (size_t start = 0; start < n;) {
        size_t end = n;
        int32_t id = -1;
        for (; end > start; end--)
            if ((id = lookup(s->v, start > 0, bytes + offsets[start], offsets[end] - offsets[start])) >= 0) break;
        if (id < 0) {
            emit(s, s->v->unk);
            return;
        }
        pieces[n_pieces++] = id;
        start = end;
    }
    for (size_t i = 0; i < n_pieces; i++) emit(s, pieces[i]);
}

/* NFD of the lower-cased word into s->nfd: decompose, then the canonical reordering of
 * combining marks (the stable sort utf8proc_decompose does), then drop category Mn. */
static bool lower_nfd_strip(wp_scratch *s)
{
    cp_buf *out = &s->nfd;
    out->len = 0;
    for (size_t i = 0; i < s->word.len; i++) {
        int32_t lower = utf8proc_tolower(s->word.cps[i]); /* per character, as BertTokenizer 4.x and the fast tokenizer */
        for (;;) {
            utf8proc_ssize_t n =
                utf8proc_decompose_char(lower, out->cps + out->len, (utf8proc_ssize_t)(out->cap - out->len),
                                        UTF8PROC_DECOMPOSE, NULL);
            if (n < 0) n = 0; /* cannot happen for a valid code point without REJECTNA */
            if ((size_t)n <= out->cap - out->len) {
                out->len += (size_t)n;
                break;
            }
            if (!cp_buf_reserve(out, out->len + (size_t)n)) return false;
        }
    }
    for (size_t pos = 0; pos + 1 < out->len;) {
        int32_t a = out->cps[pos], b = out->cps[pos + 1];
        int ca = utf8proc_get_property(a)->combining_class, cb = utf8proc_get_property(b)->combining_class;
        if (ca > cb && cb > 0) {
            out->cps[pos] = b;
            out->cps[pos + 1] = a;
            pos = pos > 0 ? pos - 1 : pos + 1;
        } else {
            pos++;
        }
    }
    size_t kept = 0;
    for (size_t i = 0; i < out->len; i++)
        if (utf8proc_category(out->cps[i]) != UTF8PROC_CATEGORY_MN) out->cps[kept++] = out->cps[i];
    out->len = kept;
    return true;
}

static void flush_word(wp_scratch *s)
{
    if (s->word.len == 0 || full(s)) {
        s->word.len = 0;
        return;
    }
    if (!lower_nfd_strip(s)) {
        s->out_of_memory = true;
    } else {
        const int32_t *cps = s->nfd.cps;
        size_t start = 0;
        for (size_t i = 0; i < s->nfd.len && !full(s); i++) {
            if (!is_punctuation(cps[i])) continue;
            wordpiece(s, cps + start, i - start);
            wordpiece(s, cps + i, 1);
            start = i + 1;
        }
        if (!full(s)) wordpiece(s, cps + start, s->nfd.len - start);
    }
    s->word.len = 0;
}

static void push_char(wp_scratch *s, int32_t cp)
{
    if (!cp_buf_reserve(&s->word, s->word.len + 1)) {
        s->out_of_memory = true;
        return;
    }
    s->word.cps[s->word.len++] = cp;
}

/* Length of the special token spelled at text (transformers splits these out of the raw
 * text before BasicTokenizer sees it), with its id in *id; 0 if none. */
static size_t special_at(const wp_vocab *v, const char *text, int32_t *id)
{
    for (int i = 0; i < 5; i++) {
        size_t n = strlen(special_tokens[i]);
        if (v->special_ids[i] >= 0 && strncmp(text, special_tokens[i], n) == 0) {
            *id = v->special_ids[i];
            return n;
        }
    }
    return 0;
}

int32_t wp_encode(const wp_vocab *v, const char *utf8_text, int32_t max_len, int32_t *ids)
{
    if (!v || !utf8_text || !ids || max_len < 2) return -1;
    wp_scratch s = {.v = v, .ids = ids, .count = 0, .limit = max_len - 1};
    cp_buf_init(&s.word);
    cp_buf_init(&s.nfd);
    emit(&s, v->cls);
    const unsigned char *text = (const unsigned char *)utf8_text;
    size_t len = strlen(utf8_text), pos = 0;
    while (pos < len && !full(&s)) {
        int32_t special_id;
        size_t special_len = text[pos] == '[' ? special_at(v, utf8_text + pos, &special_id) : 0;
        if (special_len) {
            flush_word(&s);
            emit(&s, special_id);
            pos += special_len;
            continue;
        }
        int32_t cp = next_codepoint(text, len, &pos);
        bool maybe_control = cp < 0x20 || cp >= 0x7F; /* printable ASCII skips the category lookup */
        if (cp <= 0 || cp == 0xFFFD || (maybe_control && is_control(cp))) continue;
        if (splits_words(cp)) {
            flush_word(&s);
        } else if (is_cjk(cp)) {
            flush_word(&s);
            push_char(&s, cp);
            flush_word(&s);
        } else {
            push_char(&s, cp);
        }
    }
    flush_word(&s);
    bool out_of_memory = s.out_of_memory;
    cp_buf_release(&s.word);
    cp_buf_release(&s.nfd);
    if (out_of_memory) return -1;
    ids[s.count++] = v->sep;
    return s.count;
}
