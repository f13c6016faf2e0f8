/* tests/fuzz/fuzz_openai.c - the openai tagger's reading of LLM replies
 * (plugins/tagger/openai/answer.c): oai_parse_reply for vote and score jobs, and the text
 * helpers that see server text (oai_normalize_tag, oai_clean_title, oai_snippet).
 *
 * Input: one setup byte, then the raw HTTP body of a chat-completions reply. Setup bits:
 * 0 job kind (vote/score), 1-2 items in a score batch - 1, 3-4 scoring's `choose` (0 = a
 * score per tag). */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tagger/openai/openai.h"

static char *const TAGS[] = {"coffee", "green tea", "gluten free", "dark-chocolate", "snack"};
#define N_TAGS 5

static void helpers(const uint8_t *data, size_t size)
{
    char *s = fz_strndup(data, size);
    free(oai_normalize_tag(s));
    free(oai_clean_title(s));
    char snip[64];
    oai_snippet(s, size, snip, sizeof snip);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const unsigned setup = data[0];
    data++, size--;
    helpers(data, size);
    oai_parse_ctx c = {.n_tags = N_TAGS, .tags = TAGS, .n_wanted = 5, .choose = (int)(setup >> 3 & 3)};
    oai_job j;
    memset(&j, 0, sizeof j);
    j.kind = setup & 1 ? OAI_SCORE : OAI_VOTE;
    j.n_items = (int)(setup >> 1 & 3) + 1;
    j.rows = calloc((size_t)j.n_items * N_TAGS, sizeof *j.rows);
    j.item_ok = calloc((size_t)j.n_items, sizeof *j.item_ok);
    if (!j.rows || !j.item_ok) abort();
    if (j.kind == OAI_VOTE) c.tags = NULL, c.n_tags = 0;
    char why[256];
    /* the body as received: not NUL-terminated (curl's buffer holds one, the parser must not need it) */
    char *raw = malloc(size ? size : 1);
    if (!raw) abort();
    memcpy(raw, data, size);
    oai_fault f = oai_parse_reply(&c, &j, raw, size, why, sizeof why);
    if (f == OAI_FAULT_NONE && j.kind == OAI_SCORE)
        for (int i = 0; i < j.n_items * N_TAGS; i++)
            if (!(j.rows[i] >= 0 && j.rows[i] <= 100)) abort(); /* scores are clamped into 0..100 */
    if (f == OAI_FAULT_NONE && j.kind == OAI_VOTE && j.vote.n < 1) abort();
    oai_vote_answer_free(&j.vote);
    free(raw);
    free(j.rows);
    free(j.item_ok);
    return 0;
}
