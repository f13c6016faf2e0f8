/* plugins/tag_plugin.h - what the tag plugins (kinds tagger, tag_select, tag_repr) share:
 * allocating selections in host memory, selection by prefix.
 * Their ops receive the host (ABI 1.4 `*_with_host` entries); nothing here keeps it.
 * Include this header once, from the plugin's single source file. */
#ifndef TEMA_PLUGINS_TAG_PLUGIN_H
#define TEMA_PLUGINS_TAG_PLUGIN_H

#include <stdlib.h>
#include <string.h>

#include "plugin_opts.h"
#include "tema/plugin.h"

/* Allocate the arrays of a selection for n_items items and cap selected tags in total
 * (host memory; on failure nothing stays allocated). */
static inline tema_status tag_selection_alloc(const tema_host *host, tema_tag_selection *sel, int64_t n_items, int64_t cap, const char *who,
                                              tema_err *err)
{
    memset(sel, 0, sizeof *sel);
    sel->off = host->alloc((size_t)(n_items + 1) * sizeof *sel->off);
    sel->tag = host->alloc((size_t)(cap > 0 ? cap : 1) * sizeof *sel->tag);
    sel->score = host->alloc((size_t)(cap > 0 ? cap : 1) * sizeof *sel->score);
    if (!sel->off || !sel->tag || !sel->score) {
        host->free(sel->off);
        host->free(sel->tag);
        host->free(sel->score);
        memset(sel, 0, sizeof *sel);
        return tema_fail(err, TEMA_ENOMEM, "%s: out of memory for the selection of %lld items", who,
                         (long long)n_items);
    }
    sel->n_items = n_items;
    sel->off[0] = 0;
    return TEMA_OK;
}

/* Shape checks every selector does on its input. */
static inline tema_status tag_check_scores(const tema_tag_scores *s, const char *who, tema_err *err)
{
    if (!s || s->n_items < 0 || s->n_tags < 0 || (s->n_items > 0 && s->n_tags > 0 && !s->score))
        return tema_fail(err, TEMA_EINVAL, "%s: invalid score matrix (need n_items >= 0, n_tags >= 0 and scores)",
                         who);
    if (s->n_tags > INT32_MAX)
        return tema_fail(err, TEMA_EINVAL, "%s: %lld tags do not fit 32-bit tag ids", who, (long long)s->n_tags);
    return TEMA_OK;
}

/* Checks every repr plugin does on a selection before rewriting it. */
static inline tema_status tag_check_selection(const tema_tag_selection *sel, const char *who, tema_err *err)
{
    if (!sel || sel->n_items < 0 || !sel->off)
        return tema_fail(err, TEMA_EINVAL, "%s: invalid selection (need n_items >= 0 and offsets)", who);
    if (sel->off[0] != 0)
        return tema_fail(err, TEMA_EINVAL, "%s: selection offsets must start at 0", who);
    for (int64_t i = 0; i < sel->n_items; i++)
        if (sel->off[i + 1] < sel->off[i])
            return tema_fail(err, TEMA_EINVAL, "%s: selection offsets decrease at item %lld", who, (long long)i);
    if (sel->off[sel->n_items] > 0 && (!sel->tag || !sel->score))
        return tema_fail(err, TEMA_EINVAL, "%s: selection has tags but no tag or score array", who);
    return TEMA_OK;
}

/* ---- selection by prefix ----
 * Every selector here keeps a prefix of an item's candidate tags (score > 0) in the order
 * score descending, ties by lower tag id: top-R is the first R, "score >= theta" is a
 * prefix of that order, and their union is the longer of the two. `keep` says how many
 * of the n_pos sorted candidate scores to keep. The kept tags are stored by ascending tag id. */
typedef int64_t (*tag_keep_fn)(const float *sorted_scores, int64_t n_pos, const void *ctx);

typedef struct tag_cand {
    float score;
    int32_t tag;
} tag_cand;

static inline int tag_cand_by_score(const void *pa, const void *pb)
{
    const tag_cand *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->tag > b->tag) - (a->tag < b->tag);
}

static inline int tag_cand_by_id(const void *pa, const void *pb)
{
    const tag_cand *a = pa, *b = pb;
    return (a->tag > b->tag) - (a->tag < b->tag);
}

/* Candidates of item i, sorted by score; returns how many (scores must be >= 0, not NaN). */
static inline int64_t tag_sorted_candidates(const tema_tag_scores *s, int64_t i, tag_cand *cand, float *sorted,
                                            const char *who, tema_err *err)
{
    int64_t n = 0;
    const float *row = s->score + i * s->n_tags;
    for (int64_t j = 0; j < s->n_tags; j++) {
        float v = row[j];
        if (!(v >= 0)) {
            tema_fail(err, TEMA_EINVAL, "%s: score of item %lld, tag %lld is %g; scores must be >= 0 (0 = unrelated)",
                      who, (long long)i, (long long)j, (double)v);
            return -1;
        }
        if (v > 0) cand[n++] = (tag_cand){.score = v, .tag = (int32_t)j};
    }
    qsort(cand, (size_t)n, sizeof *cand, tag_cand_by_score);
    for (int64_t k = 0; k < n; k++) sorted[k] = cand[k].score;
    return n;
}

static inline tema_status tag_select_prefix(const tema_host *host, const tema_tag_scores *s, tag_keep_fn keep, const void *ctx,
                                            tema_tag_selection *out, const char *who, tema_err *err)
{
    memset(out, 0, sizeof *out);
    tema_status st = tag_check_scores(s, who, err);
    if (st != TEMA_OK) return st;
    const int64_t nt = s->n_items > 0 ? s->n_tags : 0;
    tag_cand *cand = malloc((size_t)(nt > 0 ? nt : 1) * sizeof *cand);
    float *sorted = malloc((size_t)(nt > 0 ? nt : 1) * sizeof *sorted);
    int64_t *kept = malloc((size_t)(s->n_items > 0 ? s->n_items : 1) * sizeof *kept);
    if (!cand || !sorted || !kept) {
        free(cand);
        free(sorted);
        free(kept);
        return tema_fail(err, TEMA_ENOMEM, "%s: out of memory", who);
    }
    /* pass 1: how many per item, so the arrays are allocated once at their exact size */
    int64_t total = 0;
    for (int64_t i = 0; i < s->n_items && st == TEMA_OK; i++) {
        int64_t n = nt > 0 ? tag_sorted_candidates(s, i, cand, sorted, who, err) : 0;
        if (n < 0) {
            st = TEMA_EINVAL;
            break;
        }
        int64_t k = n > 0 ? keep(sorted, n, ctx) : 0;
        kept[i] = k < 0 ? 0 : k > n ? n : k;
        total += kept[i];
    }
    if (st == TEMA_OK) st = tag_selection_alloc(host, out, s->n_items, total, who, err);
    for (int64_t i = 0; i < s->n_items && st == TEMA_OK; i++) {
        int64_t at = out->off[i];
        if (kept[i] > 0) {
            tag_sorted_candidates(s, i, cand, sorted, who, err);
            qsort(cand, (size_t)kept[i], sizeof *cand, tag_cand_by_id);
            for (int64_t k = 0; k < kept[i]; k++) {
                out->tag[at + k] = cand[k].tag;
                out->score[at + k] = cand[k].score;
            }
        }
        out->off[i + 1] = at + kept[i];
    }
    free(cand);
    free(sorted);
    free(kept);
    return st;
}

#endif
