/* tests/test_bert_parts.c - the BERT text-features plugin's file readers: the safetensors
 * reader (values of F32/F16/BF16 tensors, one clear error per kind of malformed file) and the
 * WordPiece tokenizer (BertTokenizer's rules on a small vocabulary; a few ids of the real
 * all-MiniLM-L6-v2 vocabulary when .ci/install-deps has put it in .models/).
 *
 * Self-contained (no testutil.c): files are written into one mkdtemp folder made by main()
 * and removed after the run. The expected ids of the real vocabulary were printed by
 * transformers 4.57.6 (Python 3.11); its per-character lower-casing gives a capital sigma
 * σ even at the end of a word, as the fast tokenizer (sentence-transformers' encode) does:
 *   t = BertTokenizer("vocab.txt"); t(s)["input_ids"]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../plugins/text_features/bert/safetensors.h"
#include "../plugins/text_features/bert/wordpiece.h"
#include "testutil.h"

static char tmp_root[256];

static const char *tmp_path(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp_root, name);
    return path;
}

static const char *write_raw(const char *name, const void *bytes, size_t len)
{
    const char *path = tmp_path(name);
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(bytes, 1, len, fp), len);
    fclose(fp);
    return path;
}

/* A safetensors file: header length, header, data. */
static const char *write_st(const char *name, const char *header, const void *data, size_t data_len)
{
    size_t n = strlen(header);
    unsigned char *buf = malloc(8 + n + data_len);
    ck_assert_ptr_nonnull(buf);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(buf + 8, header, n);
    if (data_len) memcpy(buf + 8 + n, data, data_len);
    const char *path = write_raw(name, buf, 8 + n + data_len);
    free(buf);
    return path;
}

/* Opening (or reading tensor `tensor` as [2, 3] from) `name` fails with `code` and a message
 * naming the file and containing every word of the NULL-terminated list. */
static void expect_error(const char *name, const char *tensor, tema_status code, ...)
{
    st_file f;
    tema_err err = {0};
    tema_status st = st_open(tmp_path(name), &f, &err);
    if (st == TEMA_OK && tensor) {
        const float *x;
        float *owned;
        st = st_get_f32(&f, tensor, 2, (const int64_t[]){2, 3}, &x, &owned, &err);
        ck_assert_ptr_null(owned);
    }
    st_close(&f);
    ck_assert_msg(st == code, "%s: status %d, want %d (%s)", name, st, code, err.msg);
    ck_assert_msg(strstr(err.msg, name), "message does not name the file: %s", err.msg);
    ck_assert_msg(!strchr(err.msg, '\n'), "message is not one line: %s", err.msg);
    va_list ap;
    va_start(ap, code);
    for (const char *word; (word = va_arg(ap, const char *));)
        ck_assert_msg(strstr(err.msg, word), "message lacks '%s': %s", word, err.msg);
    va_end(ap);
}

/* ---- safetensors ---- */

START_TEST(st_reads_f32_f16_bf16)
{
    const float f32[6] = {1.5f, -2.25f, 0.0f, 3e-38f, 1e30f, -0.0f};
    const uint16_t f16[8] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x7C00, 0x8000, 0x3555};
    const uint16_t bf16[3] = {0x3F80, 0xC040, 0x0001};
    unsigned char data[24 + 16 + 6 + 8];
    memcpy(data, f32, 24);
    memcpy(data + 24, f16, 16);
    memcpy(data + 40, bf16, 6);
    memset(data + 46, 0, 8);
    const char *header = "{\"__metadata__\":{\"format\":\"pt\"},"
                         "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                         "\"h\":{\"dtype\":\"F16\",\"shape\":[8],\"data_offsets\":[24,40]},"
                         "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[40,46]},"
                         "\"i\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[46,54]}}     ";
    char padded[512];
    snprintf(padded, sizeof padded, "%-*s", (int)((strlen(header) + 7) / 8 * 8), header); /* data 8-aligned */
    const char *path = write_st("ok.safetensors", padded, data, sizeof data);
    st_file f;
    tema_err err = {0};
    ck_assert_msg(st_open(path, &f, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_int_eq(f.n_tensors, 4);
    const st_tensor *t = st_find(&f, "i");
    ck_assert(t && t->dtype == ST_I64 && t->ndim == 0);
    ck_assert_ptr_null(st_find(&f, "__metadata__"));

    const float *x;
    float *owned;
    ck_assert_int_eq(st_get_f32(&f, "w", 2, (const int64_t[]){2, 3}, &x, &owned, &err), TEMA_OK);
    ck_assert_ptr_null(owned); /* aligned F32 is a view of the map */
    ck_assert(x >= (const float *)(const void *)f.map && (const unsigned char *)x < f.map + f.size);
    ck_assert_mem_eq(x, f32, sizeof f32);

    ck_assert_int_eq(st_get_f32(&f, "h", 1, (const int64_t[]){8}, &x, &owned, &err), TEMA_OK);
    ck_assert_ptr_eq(x, owned);
    const float want16[8] = {1.0f, -2.0f, 65504.0f, 0x1p-24f, 0x3FFp-24f, INFINITY, -0.0f, 0x1.554p-2f};
    for (int i = 0; i < 8; i++) ck_assert_msg(x[i] == want16[i], "f16[%d] = %a", i, (double)x[i]);
    ck_assert(signbit(x[6]));
    free(owned);

    ck_assert_int_eq(st_get_f32(&f, "b", -1, NULL, &x, &owned, &err), TEMA_OK);
    ck_assert(x[0] == 1.0f && x[1] == -3.0f && x[2] == 0x1p-133f);
    free(owned);
    st_close(&f);
    st_close(&f); /* harmless twice */
}
END_TEST

START_TEST(st_unaligned_f32_is_copied)
{
    const float v[2] = {0.5f, -7.0f};
    const char *header = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    char odd[128];
    snprintf(odd, sizeof odd, "%s%s", header, strlen(header) % 2 ? "" : " "); /* data at an odd offset */
    const char *path = write_st("odd.safetensors", odd, v, sizeof v);
    st_file f;
    tema_err err = {0};
    ck_assert_msg(st_open(path, &f, &err) == TEMA_OK, "%s", err.msg);
    const float *x;
    float *owned;
    ck_assert_int_eq(st_get_f32(&f, "x", 1, (const int64_t[]){2}, &x, &owned, &err), TEMA_OK);
    ck_assert_ptr_nonnull(owned);
    ck_assert(x[0] == 0.5f && x[1] == -7.0f);
    free(owned);
    st_close(&f);
}
END_TEST

/* Every half and bfloat16 bit pattern against the value its fields define. */
START_TEST(st_half_conversions_are_exact)
{
    for (uint32_t h = 0; h < 65536; h++) {
        uint32_t sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
        float got = st_f16_to_f32((uint16_t)h);
        uint32_t bits;
        memcpy(&bits, &got, 4);
        ck_assert_msg((bits >> 31) == sign, "sign of %#x", h);
        if (e == 31) {
            ck_assert_msg(bits == (sign << 31 | 0x7f800000u | m << 13), "inf/nan %#x -> %#x", h, bits);
            continue;
        }
        double want = e ? ldexp(1024 + m, (int)e - 25) : ldexp(m, -24);
        ck_assert_msg(fabs((double)got) == want, "%#x -> %a, want %a", h, (double)got, want);
    }
    for (uint32_t h = 0; h < 65536; h++) {
        float got = st_bf16_to_f32((uint16_t)h);
        uint32_t bits;
        memcpy(&bits, &got, 4);
        ck_assert_uint_eq(bits, h << 16);
    }
}
END_TEST

static const char *entry(const char *body)
{
    static char header[512];
    snprintf(header, sizeof header, "{\"weight\":{%s}}", body);
    return header;
}

START_TEST(st_malformed_files)
{
    unsigned char zeros[64] = {0};
    write_raw("empty.safetensors", zeros, 0);
    expect_error("empty.safetensors", NULL, TEMA_EFORMAT, "0 bytes", "shorter than the 8-byte", NULL);
    write_raw("short.safetensors", zeros, 5);
    expect_error("short.safetensors", NULL, TEMA_EFORMAT, "5 bytes", "shorter", NULL);
    unsigned char big[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    write_raw("biglen.safetensors", big, sizeof big);
    expect_error("biglen.safetensors", NULL, TEMA_EFORMAT, "header length 65535", "larger than the file", NULL);
    write_st("notjson.safetensors", "{\"weight\": {\"dtype\": F32}", NULL, 0);
    expect_error("notjson.safetensors", NULL, TEMA_EFORMAT, "not valid JSON", NULL);
    write_st("cut.safetensors", "{\"weight\": {", NULL, 0);
    expect_error("cut.safetensors", NULL, TEMA_EFORMAT, "not valid JSON", "unexpected end", NULL);
    write_st("array.safetensors", "[1, 2]", NULL, 0);
    expect_error("array.safetensors", NULL, TEMA_EFORMAT, "not a JSON object", NULL);
    write_st("trailing.safetensors", "{} x", NULL, 0);
    expect_error("trailing.safetensors", NULL, TEMA_EFORMAT, "not valid JSON", "near byte 3 of 4", NULL);
    unsigned char nul[12] = {4, 0, 0, 0, 0, 0, 0, 0, '{', '}', 0, ' '};
    write_raw("nul.safetensors", nul, sizeof nul);
    expect_error("nul.safetensors", NULL, TEMA_EFORMAT, "not a JSON object", "trailing bytes", NULL);

    const char *shape = "\"shape\":[2,3]", *offsets = "\"data_offsets\":[0,24]", *dtype = "\"dtype\":\"F32\"";
    char body[256];
    snprintf(body, sizeof body, "%s,%s", shape, offsets);
    write_st("nodtype.safetensors", entry(body), zeros, 24);
    expect_error("nodtype.safetensors", NULL, TEMA_EFORMAT, "tensor 'weight'", "missing \"dtype\"", NULL);
    snprintf(body, sizeof body, "%s,%s", dtype, offsets);
    write_st("noshape.safetensors", entry(body), zeros, 24);
    expect_error("noshape.safetensors", NULL, TEMA_EFORMAT, "tensor 'weight'", "missing \"shape\"", NULL);
    snprintf(body, sizeof body, "%s,%s", dtype, shape);
    write_st("nooffsets.safetensors", entry(body), zeros, 24);
    expect_error("nooffsets.safetensors", NULL, TEMA_EFORMAT, "tensor 'weight'", "missing \"data_offsets\"", NULL);
    write_st("control.safetensors", "{\"we\\nird\": {}}", NULL, 0); /* a name from the file stays on one line */
    expect_error("control.safetensors", NULL, TEMA_EFORMAT, "tensor 'we\\x0aird'", "missing \"dtype\"", NULL);
    write_st("notobj.safetensors", "{\"weight\": 3}", NULL, 0);
    expect_error("notobj.safetensors", NULL, TEMA_EFORMAT, "tensor 'weight'", "not a JSON object", NULL);

    snprintf(body, sizeof body, "\"dtype\":\"Q4\",%s,%s", shape, offsets);
    write_st("dtype.safetensors", entry(body), zeros, 24);
    expect_error("dtype.safetensors", NULL, TEMA_EFORMAT, "unknown dtype 'Q4'", "known: ", "F32", "BF16", "I64", NULL);
    snprintf(body, sizeof body, "%s,%s,\"data_offsets\":[0,24]", dtype, shape);
    write_st("truncated.safetensors", entry(body), zeros, 20);
    expect_error("truncated.safetensors", NULL, TEMA_EFORMAT, "[0, 24]", "outside the data block of 20 bytes",
                 "truncated", NULL);
    snprintf(body, sizeof body, "%s,%s,\"data_offsets\":[24,0]", dtype, shape);
    write_st("order.safetensors", entry(body), zeros, 24);
    expect_error("order.safetensors", NULL, TEMA_EFORMAT, "begin 24 > end 0", NULL);
    snprintf(body, sizeof body, "%s,%s,\"data_offsets\":[-4,24]", dtype, shape);
    write_st("negative.safetensors", entry(body), zeros, 24);
    expect_error("negative.safetensors", NULL, TEMA_EFORMAT, "data_offsets", "non-negative", NULL);
    snprintf(body, sizeof body, "%s,\"shape\":[2,\"3\"],%s", dtype, offsets);
    write_st("shapetype.safetensors", entry(body), zeros, 24);
    expect_error("shapetype.safetensors", NULL, TEMA_EFORMAT, "shape entry 1", NULL);
    snprintf(body, sizeof body, "%s,\"shape\":[3,3],%s", dtype, offsets);
    write_st("size.safetensors", entry(body), zeros, 24);
    expect_error("size.safetensors", NULL, TEMA_EFORMAT, "byte size 24", "shape [3, 3]", "4 bytes (F32)", NULL);
    snprintf(body, sizeof body, "%s,\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]", dtype);
    write_st("rank.safetensors", entry(body), zeros, 4);
    expect_error("rank.safetensors", NULL, TEMA_EFORMAT, "9 dimensions", NULL);
}
END_TEST

START_TEST(st_lookup_errors)
{
    unsigned char zeros[72] = {0};
    write_st("good.safetensors",
             "{\"weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]},"
             "\"ids\":{\"dtype\":\"I64\",\"shape\":[2,3],\"data_offsets\":[24,72]}}",
             zeros, sizeof zeros);
    expect_error("good.safetensors", "weight", TEMA_EFORMAT, "tensor 'weight'", "expected shape [2, 3], found [3, 2]",
                 NULL);
    expect_error("good.safetensors", "nope", TEMA_ENOTFOUND, "tensor 'nope' not found", "another architecture",
                 "'weight'", NULL);
    expect_error("good.safetensors", "ids", TEMA_EFORMAT, "tensor 'ids'", "I64", "float32", NULL);
    expect_error("absent.safetensors", NULL, TEMA_ENOTFOUND, "cannot open", NULL);
}
END_TEST

/* A file of the model .ci/install-deps puts in .models/, or false (after a SKIP line naming
 * the test and what to run) when it is not installed. */
static bool installed_model_file(const char *file, const char *test, char *path, size_t size)
{
    snprintf(path, size, "%s/.models/all-MiniLM-L6-v2/%s", getenv("TEMA_SOURCE_ROOT") ? getenv("TEMA_SOURCE_ROOT") : ".",
             file);
    if (access(path, R_OK) == 0) return true;
    tu_skip(test, "%s absent; run .ci/install-deps", path);
    return false;
}

START_TEST(st_real_model)
{
    char path[4096];
    if (!installed_model_file("model.safetensors", "st_real_model", path, sizeof path)) return;
    st_file f;
    tema_err err = {0};
    ck_assert_msg(st_open(path, &f, &err) == TEMA_OK, "%s", err.msg);
    const float *x;
    float *owned;
    ck_assert_msg(st_get_f32(&f, "embeddings.word_embeddings.weight", 2, (const int64_t[]){30522, 384}, &x, &owned,
                             &err) == TEMA_OK,
                  "%s", err.msg);
    ck_assert_ptr_null(owned);
    ck_assert(isfinite(x[0]) && isfinite(x[30522 * 384 - 1]));
    st_close(&f);
}
END_TEST

/* ---- wordpiece ---- */

static const char *test_vocab[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "cafe", "un", "##aff", "##able", ",", ".", "!",
    "[", "]", "a", "##a", "中", "文", "οδοσ", "οδος", "i", "##stanbul", "ᄒ", "##ᅡ", "##ᆫ", "—", "$", "##s", "sep",
};

static wp_vocab *load_test_vocab(void)
{
    char text[1024] = "";
    for (size_t i = 0; i < sizeof test_vocab / sizeof *test_vocab; i++) {
        strcat(text, test_vocab[i]);
        strcat(text, i % 2 ? "\r\n" : "\n"); /* both line ends, as Python's readlines() takes them */
    }
    const char *path = write_raw("vocab.txt", text, strlen(text));
    wp_vocab *v;
    tema_err err = {0};
    ck_assert_msg(wp_vocab_load(path, &v, &err) == TEMA_OK, "%s", err.msg);
    return v;
}

/* Tokens of wp_encode(text) joined by spaces, or "(error)". */
static const char *render(const wp_vocab *v, const char *text, int32_t max_len)
{
    static char out[8192];
    int32_t ids[512];
    int32_t n = wp_encode(v, text, max_len, ids);
    if (n < 0) return "(error)";
    ck_assert_int_le(n, max_len);
    out[0] = '\0';
    for (int32_t i = 0; i < n; i++) {
        const char *tok = wp_token(v, ids[i]);
        ck_assert_ptr_nonnull(tok);
        if (strlen(out) + strlen(tok) + 2 < sizeof out) strcat(strcat(out, i ? " " : ""), tok);
    }
    return out;
}

#define ASSERT_TOKENS(text, want) ck_assert_str_eq(render(v, text, 512), "[CLS] " want " [SEP]")

START_TEST(wp_vocab_basics)
{
    wp_vocab *v = load_test_vocab();
    ck_assert_int_eq(wp_vocab_size(v), (int32_t)(sizeof test_vocab / sizeof *test_vocab));
    ck_assert_int_eq(wp_id(v, "hello"), 5);
    ck_assert_int_eq(wp_id(v, "##able"), 10);
    ck_assert_int_eq(wp_id(v, "able"), -1);
    ck_assert_int_eq(wp_id(v, "sep"), 30);
    ck_assert(wp_cls_id(v) == 2 && wp_sep_id(v) == 3 && wp_unk_id(v) == 1 && wp_pad_id(v) == 0);
    ck_assert_str_eq(wp_token(v, 18), "中");
    ck_assert_ptr_null(wp_token(v, 31));
    wp_vocab_free(v);
}
END_TEST

START_TEST(wp_basic_rules)
{
    wp_vocab *v = load_test_vocab();
    ASSERT_TOKENS("Hello, WORLD!", "hello , world !");
    ASSERT_TOKENS("Café CAFÉ cafe\xcc\x81", "cafe cafe cafe"); /* composed and decomposed accents */
    ASSERT_TOKENS("unaffable hellos", "un ##aff ##able hello ##s");
    ASSERT_TOKENS("unaffablex xhello hello", "[UNK] [UNK] hello"); /* one unmatched position: whole word */
    ASSERT_TOKENS("hello\xe2\x80\x94world$", "hello — world $");     /* Pd and ASCII symbols split */
    ASSERT_TOKENS("中文hello 中", "中 文 hello 中");
    /* Capital sigma is σ even word-finally: transformers 4.x BertTokenizer lower-cases one
     * character at a time, as the fast tokenizer does (5.x's BertTokenizerLegacy gives ς). */
    ASSERT_TOKENS("ΟΔΟΣ ΟΔΟΣ.", "οδοσ οδοσ .");
    ASSERT_TOKENS("\xc4\xb0stanbul", "i ##stanbul"); /* İ -> i + U+0307, the mark stripped */
    ASSERT_TOKENS("\xed\x95\x9c", "ᄒ ##ᅡ ##ᆫ");      /* NFD splits a Hangul syllable into jamo */
    wp_vocab_free(v);
}
END_TEST

START_TEST(wp_cleaning_and_whitespace)
{
    wp_vocab *v = load_test_vocab();
    ASSERT_TOKENS("hel\x01lo\tworld\r\n", "hello world");     /* a control char is dropped, not a split */
    ASSERT_TOKENS("hel\x0blo wor\xe2\x80\x8bld", "hello world"); /* \v is Cc, U+200B is Cf */
    ASSERT_TOKENS("hello\xc2\xa0world hello\xe2\x80\xa8world", "hello world hello world"); /* Zs, Zl */
    ASSERT_TOKENS("hel\xef\xbf\xbdlo wor\xee\x80\x80ld", "hello world");                  /* U+FFFD, private use */
    ASSERT_TOKENS("hel\xfflo \xe2\x82hello \xed\xa0\x80hello", "hello hello hello");       /* invalid UTF-8 */
    ASSERT_TOKENS("\xc0\xaf\xe0\x80\xafhello", "hello"); /* overlong '/' is not a slash */
    ck_assert_str_eq(render(v, "", 8), "[CLS] [SEP]");
    ck_assert_str_eq(render(v, " \t\x01 ", 8), "[CLS] [SEP]");
    wp_vocab_free(v);
}
END_TEST

START_TEST(wp_special_tokens)
{
    wp_vocab *v = load_test_vocab();
    ASSERT_TOKENS("hello[SEP]world [MASK]", "hello [SEP] world [MASK]");
    ASSERT_TOKENS("[sep] [[UNK]]", "[ sep ] [ [UNK] ]");
    /* Spelled only once cleaned: split like text, as transformers 4.x does (it lower-cases
     * before BasicTokenizer could keep it whole as never_split; 5.x's legacy class keeps [SEP]). */
    ASSERT_TOKENS("[SE\x01P]", "[ sep ]");
    wp_vocab_free(v);
}
END_TEST

START_TEST(wp_long_words_and_truncation)
{
    wp_vocab *v = load_test_vocab();
    char text[4096];
    int32_t ids[512];
    memset(text, 'a', 100);
    text[100] = '\0';
    ck_assert_int_eq(wp_encode(v, text, 512, ids), 102); /* a ##a x 99 */
    ck_assert(ids[1] == 16 && ids[100] == 17);
    memset(text, 'A', 101);
    text[101] = '\0';
    ASSERT_TOKENS(text, "[UNK]");
    text[50] = ','; /* punctuation splits before the length check */
    ck_assert_int_eq(wp_encode(v, text, 512, ids), 2 + 50 + 1 + 50);
    for (int i = 0; i < 60; i++) memcpy(text + 2 * i, "\xc3\xa1", 2); /* 60 x á: 120 code points after NFD */
    text[120] = '\0';
    ck_assert_int_eq(wp_encode(v, text, 512, ids), 2 + 60); /* the limit counts them once marks are stripped */
    memset(text, 'b', 3000); /* one long word goes through the heap buffers */
    strcpy(text + 3000, " hello");
    ASSERT_TOKENS(text, "[UNK] hello");

    ck_assert_str_eq(render(v, "hello world, hello", 4), "[CLS] hello world [SEP]");
    ck_assert_str_eq(render(v, "hello world, hello", 6), "[CLS] hello world , hello [SEP]");
    ck_assert_str_eq(render(v, "unaffable", 3), "[CLS] un [SEP]");
    ck_assert_str_eq(render(v, "hello", 2), "[CLS] [SEP]");
    ck_assert_int_eq(wp_encode(v, "hello", 1, ids), -1);
    ck_assert_int_eq(wp_encode(v, NULL, 8, ids), -1);
    wp_vocab_free(v);
}
END_TEST

typedef struct encode_job {
    const wp_vocab *v;
    int32_t ids[64][32];
    int32_t n[64];
} encode_job;

static const char *thread_texts[8] = {"Hello, WORLD!", "unaffable hellos", "中文hello", "Café [SEP] x",
                                      "ΟΔΟΣ", "\xed\x95\x9c", "aaaa,aaa", "hel\x01lo\tworld"};

static void *encode_many(void *arg)
{
    encode_job *job = arg;
    for (int i = 0; i < 64; i++) job->n[i] = wp_encode(job->v, thread_texts[i % 8], 32, job->ids[i]);
    return NULL;
}

START_TEST(wp_concurrent_encoding)
{
    wp_vocab *v = load_test_vocab();
    static encode_job jobs[5];
    pthread_t threads[4];
    for (int t = 0; t < 5; t++) jobs[t].v = v;
    encode_many(&jobs[4]); /* serial reference */
    for (int t = 0; t < 4; t++) ck_assert_int_eq(pthread_create(&threads[t], NULL, encode_many, &jobs[t]), 0);
    for (int t = 0; t < 4; t++) pthread_join(threads[t], NULL);
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < 64; i++) {
            ck_assert_int_eq(jobs[t].n[i], jobs[4].n[i]);
            ck_assert_mem_eq(jobs[t].ids[i], jobs[4].ids[i], (size_t)jobs[4].n[i] * sizeof(int32_t));
        }
    wp_vocab_free(v);
}
END_TEST

static void expect_vocab_error(const char *name, const char *text, tema_status code, const char *words)
{
    const char *path = text ? write_raw(name, text, strlen(text)) : tmp_path(name);
    wp_vocab *v = (wp_vocab *)1;
    tema_err err = {0};
    ck_assert_int_eq(wp_vocab_load(path, &v, &err), code);
    ck_assert_ptr_null(v);
    ck_assert_msg(strstr(err.msg, name) && strstr(err.msg, words), "%s: %s", words, err.msg);
}

START_TEST(wp_vocab_errors)
{
    expect_vocab_error("empty.txt", "", TEMA_EFORMAT, "vocabulary is empty");
    expect_vocab_error("dup.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nfoo\nbar\nfoo\n", TEMA_EFORMAT,
                       "line 7: duplicate token 'foo' (first on line 5)");
    expect_vocab_error("nocls.txt", "[PAD]\n[UNK]\n[SEP]\nfoo", TEMA_EFORMAT, "no [CLS] token in 4 lines");
    expect_vocab_error("nopad.txt", "[UNK]\n[CLS]\n[SEP]\r\n", TEMA_EFORMAT, "no [PAD] token");
    expect_vocab_error("utf8.txt", "[PAD]\n[UNK]\nab\xff\n", TEMA_EFORMAT, "line 3: not valid UTF-8");
    expect_vocab_error("missing.txt", NULL, TEMA_ENOTFOUND, "cannot open");
}
END_TEST

START_TEST(wp_real_vocab)
{
    char path[4096];
    if (!installed_model_file("vocab.txt", "wp_real_vocab", path, sizeof path)) return;
    wp_vocab *v;
    tema_err err = {0};
    ck_assert_msg(wp_vocab_load(path, &v, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_int_eq(wp_vocab_size(v), 30522);
    static const struct {
        const char *text;
        int32_t n, ids[12];
    } cases[] = {
        {"hello world", 4, {101, 7592, 2088, 102}},
        {"hello world [SEP] \xce\x9f\xce\x94\xce\x9f\xce\xa3 caf\xc3\xa9", 10, /* σ, not ς */
         {101, 7592, 2088, 102, 1169, 29722, 29730, 29733, 7668, 102}},
        {"x[MASK]y", 5, {101, 1060, 103, 1061, 102}},
        {"ab [sep] [UNK]", 7, {101, 11113, 1031, 19802, 1033, 100, 102}},
        {"\xe4\xb8\xad\xe6\x96\x87" "abc", 5, {101, 1746, 1861, 5925, 102}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int32_t ids[64];
        ck_assert_int_eq(wp_encode(v, cases[c].text, 64, ids), cases[c].n);
        ck_assert_mem_eq(ids, cases[c].ids, (size_t)cases[c].n * sizeof(int32_t));
    }
    wp_vocab_free(v);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("bert_parts");
    TCase *st = tcase_create("safetensors");
    tcase_add_test(st, st_reads_f32_f16_bf16);
    tcase_add_test(st, st_unaligned_f32_is_copied);
    tcase_add_test(st, st_half_conversions_are_exact);
    tcase_add_test(st, st_malformed_files);
    tcase_add_test(st, st_lookup_errors);
    tcase_add_test(st, st_real_model);
    suite_add_tcase(s, st);
    TCase *wp = tcase_create("wordpiece");
    tcase_add_test(wp, wp_vocab_basics);
    tcase_add_test(wp, wp_basic_rules);
    tcase_add_test(wp, wp_cleaning_and_whitespace);
    tcase_add_test(wp, wp_special_tokens);
    tcase_add_test(wp, wp_long_words_and_truncation);
    tcase_add_test(wp, wp_concurrent_encoding);
    tcase_add_test(wp, wp_vocab_errors);
    tcase_add_test(wp, wp_real_vocab);
    suite_add_tcase(s, wp);
    return s;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

int main(void)
{
    snprintf(tmp_root, sizeof tmp_root, "%s/tema_bert_parts_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 1;
    }
    int rc = tu_run_suite(make_suite());
    nftw(tmp_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
