/* plugins/text_features/bert/wordpiece.h - Hugging Face BertTokenizer (the slow Python one:
 * BasicTokenizer + WordpieceTokenizer) with do_lower_case=True, tokenize_chinese_chars=True,
 * strip_accents=None, no extra never_split tokens.
 *
 * Text -> [CLS] ids [SEP], as `BertTokenizer(vocab)(text, truncation=True,
 * max_length=max_len)["input_ids"]` gives with transformers 4.x:
 *  - literal special tokens in the text ("[SEP]", "[MASK]", ... as spelled in the vocab)
 *    become their own id, as transformers' added-token split does;
 *  - _clean_text: drop U+0000, U+FFFD and category C* except \t \n \r; whitespace -> ' ';
 *  - spaces around CJK ideographs; split on whitespace (and U+2028, U+2029 as str.split does);
 *  - per word: lower-case each code point (transformers 4.x lowers one character at a time,
 *    so a final capital sigma becomes σ, not ς), NFD, drop category Mn, then every
 *    punctuation character (ASCII non-alphanumerics or category P*) is its own token;
 *  - WordPiece: greedy longest match first, continuations prefixed "##"; a word of more than
 *    100 code points, or with any unmatched position, becomes [UNK].
 * Unicode data comes from utf8proc (Unicode 15); Python's unicodedata may be an older version.
 *
 * Ownership: wp_vocab_load allocates the vocabulary (token strings and hash table), freed by
 * wp_vocab_free. wp_encode writes into the caller's ids buffer and keeps nothing; it only
 * reads the vocabulary, so any number of threads may encode with one vocabulary at once.
 */
#ifndef TEMA_PLUGINS_BERT_WORDPIECE_H
#define TEMA_PLUGINS_BERT_WORDPIECE_H

#include <stdint.h>

#include "tema/status.h"

/* Longest word (in code points, after lower-casing and NFD) WordPiece tries to split. */
#define WP_MAX_WORD_CHARS 100

typedef struct wp_vocab wp_vocab;

/* Load vocab.txt: one token per line (\n, \r\n or \r ends a line), id = 0-based line number.
 * Fails (TEMA_EFORMAT, naming the file and line) on an empty file, invalid UTF-8, a duplicate
 * token, or when [CLS], [SEP], [UNK] or [PAD] is missing. */
tema_status wp_vocab_load(const char *vocab_txt_path, wp_vocab **out, tema_err *err);
void wp_vocab_free(wp_vocab *v);

int32_t wp_vocab_size(const wp_vocab *v);
/* Id of an exact token string, or -1 if absent. */
int32_t wp_id(const wp_vocab *v, const char *token);
/* Token string of an id (borrowed from v), or NULL if out of range. */
const char *wp_token(const wp_vocab *v, int32_t id);
/* Ids of the special tokens (always present in a loaded vocabulary). */
int32_t wp_cls_id(const wp_vocab *v);
int32_t wp_sep_id(const wp_vocab *v);
int32_t wp_unk_id(const wp_vocab *v);
int32_t wp_pad_id(const wp_vocab *v);

/* Encode NUL-terminated UTF-8 text into ids[0..max_len): [CLS] tokens... [SEP], dropping
 * tokens from the end so the total is <= max_len. Invalid UTF-8 bytes are dropped, as
 * Python's errors='replace' decoding followed by _clean_text would. Returns the count
 * (>= 2), or -1 if max_len < 2, an argument is NULL, or memory runs out (only possible
 * for words longer than a few hundred characters). Thread-safe. */
int32_t wp_encode(const wp_vocab *v, const char *utf8_text, int32_t max_len, int32_t *ids);

#endif
