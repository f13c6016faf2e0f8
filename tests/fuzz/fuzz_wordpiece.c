/* tests/fuzz/fuzz_wordpiece.c - the WordPiece tokenizer of the bert text_features plugin
 * (plugins/text_features/bert/wordpiece.c): vocab.txt loading and encoding of titles.
 *
 * Input: text to encode with a small fixed vocabulary; when the input holds a NUL byte, what
 * precedes it is also loaded as a vocab.txt and the rest is encoded with that vocabulary. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "text_features/bert/wordpiece.h"

static const char VOCAB[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n!\n,\n-\n.\n(\n)\na\nb\nc\ne\no\nt\n"
                            "##s\n##e\n##a\n##ing\n##ed\ntea\ngreen\ncoffee\ncook\n##ie\nbag\nbags\n"
                            "caf\nau\nlait\n\xe4\xb8\xad\n\xce\xb1\nkids\n'\n";

static void encode(const wp_vocab *v, const char *text)
{
    int32_t ids[64];
    const int32_t max_len = 1 + (int32_t)(strlen(text) % 63);
    int32_t n = wp_encode(v, text, max_len, ids);
    if (max_len < 2) {
        if (n != -1) abort();
        return;
    }
    if (n < 2 || n > max_len || ids[0] != wp_cls_id(v) || ids[n - 1] != wp_sep_id(v)) abort();
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= wp_vocab_size(v)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static wp_vocab *fixed;
    tema_err err = {0};
    if (!fixed && wp_vocab_load(fz_write("fixed_vocab.txt", (const uint8_t *)VOCAB, sizeof VOCAB - 1), &fixed,
                                &err) != TEMA_OK)
        abort();
    char *text = fz_strndup(data, size);
    encode(fixed, text);
    const uint8_t *nul = memchr(data, 0, size);
    if (nul) {
        wp_vocab *v = NULL;
        if (wp_vocab_load(fz_write("vocab.txt", data, (size_t)(nul - data)), &v, &err) == TEMA_OK) {
            encode(v, text + (nul - data) + 1);
            wp_vocab_free(v);
        }
    }
    free(text);
    return 0;
}
