/* plugins/attention/srgnn_graph.h - the session graphs of SR-GNN (Wu et al., AAAI 2019), one
 * per prefix of every sequence of a batch, as the official code builds one per session
 * (CRIPAC-DIG/SR-GNN, pytorch_code/utils.py, Data.get_slice):
 *
 *   nodes   the distinct items of the prefix, here in order of first occurrence (the official
 *           code sorts them by id: the same graph relabelled, which neither the GNN nor the
 *           readout can tell apart);
 *   edges   E[u][v] = 1 when item v follows item u somewhere in the prefix (binary: a transition
 *           seen twice is one edge; an item repeated back to back is a self-loop);
 *   A_in    [v][u] = E[u][v] / indeg(v)      A_out [u][v] = E[u][v] / outdeg(u)   (0 where 0).
 *
 * The prefix ending at position p (the items up to p) is the session of the training sample
 * whose target is the item after p, as the official preprocessing turns every prefix of a
 * session into one sample; a state at p therefore depends on no later item. Padding (-1) is
 * skipped: the session is the row's items in order.
 *
 * Layout: prefixes are grouped into buckets by their node count n (1..n_max), so bucket n is
 * a dense batch [P_n, n, n] of adjacency matrices for one batched matmul and no prefix carries
 * padding nodes. Inside a bucket, prefixes are in batch order (row, then position); prefix
 * indices (row[], last[]) are bucket-major: bucket n holds pre_off[n] .. pre_off[n+1]-1.
 * Plain C over host arrays, so tests/test_srgnn.c checks it by hand. */
#ifndef TEMA_PLUGINS_ATTENTION_SRGNN_GRAPH_H
#define TEMA_PLUGINS_ATTENTION_SRGNN_GRAPH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tema/status.h"

typedef struct sg_layout {
    int64_t B, L;
    int64_t P;         /* prefixes: the non-padding positions of the batch */
    int64_t T;         /* nodes of all prefixes together */
    int64_t n_max;     /* most nodes of one prefix (0 when P == 0) */
    /* by node count n, [L + 2]: prefixes with n nodes, and where bucket n starts in the
     * prefix, node and adjacency arrays (entry n_max + 1 is the total) */
    int64_t *count, *pre_off, *node_off, *adj_off, *fill;
    int32_t *node_item; /* [T] item of each node */
    float *cnt;         /* [T] occurrences of the node's item in its prefix */
    int32_t *bcast;     /* [T] index inside its bucket of the prefix the node belongs to */
    int32_t *last;      /* [P] the prefix's last item: its node, as a row of the bucket's nodes */
    float *a_in, *a_out; /* [adj_off[n_max + 1]] bucket n: [count[n], n, n] */
    int32_t *row;       /* [B*L] prefix of position b*L+p, -1 for padding */
    int32_t *nq;        /* [B*L] node count of each prefix (scratch) */
    int32_t *distinct, *occ; /* [L] per-row scratch */
    uint8_t *edge;      /* [L*L] per-row scratch: E of the prefix so far */
    size_t cap[16];
} sg_layout;

static inline bool sg_grow(void **buf, size_t *cap, size_t bytes)
{
    if (!bytes) bytes = 1;
    if (bytes <= *cap) return true;
    void *p = realloc(*buf, bytes);
    if (!p) return false;
    *buf = p;
    *cap = bytes;
    return true;
}

static inline void sg_layout_free(sg_layout *l)
{
    void *bufs[] = {l->count, l->pre_off, l->node_off, l->adj_off, l->fill, l->node_item, l->cnt, l->bcast,
                    l->last, l->a_in, l->a_out, l->row, l->nq, l->distinct, l->occ, l->edge};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    memset(l, 0, sizeof *l);
}

static inline int64_t sg_find(const int32_t *list, int64_t n, int32_t v)
{
    for (int64_t j = 0; j < n; j++)
        if (list[j] == v) return j;
    return -1;
}

/* Pass 1: node count of every prefix, bucket sizes and offsets. */
static inline void sg_count(sg_layout *l, const int32_t *seq)
{
    const int64_t B = l->B, L = l->L;
    memset(l->count, 0, (size_t)(L + 2) * sizeof(int64_t));
    l->P = l->n_max = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t n = 0;
        for (int64_t p = 0; p < L; p++) {
            int32_t v = seq[b * L + p];
            l->nq[b * L + p] = 0;
            if (v < 0) continue;
            if (sg_find(l->distinct, n, v) < 0) l->distinct[n++] = v;
            l->nq[b * L + p] = (int32_t)n;
            l->count[n]++;
            l->P++;
            if (n > l->n_max) l->n_max = n;
        }
    }
    l->pre_off[1] = l->node_off[1] = l->adj_off[1] = 0;
    for (int64_t n = 1; n <= l->n_max; n++) {
        l->pre_off[n + 1] = l->pre_off[n] + l->count[n];
        l->node_off[n + 1] = l->node_off[n] + l->count[n] * n;
        l->adj_off[n + 1] = l->adj_off[n] + l->count[n] * n * n;
    }
    l->T = l->node_off[l->n_max + 1];
}

/* The normalised in/out adjacency of the prefix's n nodes from the row's edges so far. */
static inline void sg_adjacency(const sg_layout *l, int64_t n, float *a_in, float *a_out)
{
    const int64_t L = l->L;
    for (int64_t v = 0; v < n; v++) {
        int64_t deg = 0;
        for (int64_t u = 0; u < n; u++) deg += l->edge[u * L + v];
        for (int64_t u = 0; u < n; u++) a_in[v * n + u] = l->edge[u * L + v] ? 1.0f / (float)deg : 0.0f;
    }
    for (int64_t u = 0; u < n; u++) {
        int64_t deg = 0;
        for (int64_t v = 0; v < n; v++) deg += l->edge[u * L + v];
        for (int64_t v = 0; v < n; v++) a_out[u * n + v] = l->edge[u * L + v] ? 1.0f / (float)deg : 0.0f;
    }
}

/* Pass 2: nodes, counts and adjacency of every prefix, row by row. */
static inline void sg_fill(sg_layout *l, const int32_t *seq)
{
    const int64_t B = l->B, L = l->L;
    memset(l->fill, 0, (size_t)(L + 2) * sizeof(int64_t));
    for (int64_t b = 0; b < B; b++) {
        int64_t n = 0, prev = -1;
        memset(l->edge, 0, (size_t)(L * L));
        for (int64_t p = 0; p < L; p++) {
            int32_t v = seq[b * L + p];
            l->row[b * L + p] = -1;
            if (v < 0) continue;
            int64_t s = sg_find(l->distinct, n, v);
            if (s < 0) {
                s = n++;
                l->distinct[s] = v;
                l->occ[s] = 0;
            }
            l->occ[s]++;
            if (prev >= 0) l->edge[prev * L + s] = 1;
            prev = s;
            int64_t k = l->fill[n]++, q = l->pre_off[n] + k, nb = l->node_off[n] + k * n;
            l->row[b * L + p] = (int32_t)q;
            l->last[q] = (int32_t)(k * n + s);
            for (int64_t j = 0; j < n; j++) {
                l->node_item[nb + j] = l->distinct[j];
                l->cnt[nb + j] = (float)l->occ[j];
                l->bcast[nb + j] = (int32_t)k;
            }
            int64_t ab = l->adj_off[n] + k * n * n;
            sg_adjacency(l, n, l->a_in + ab, l->a_out + ab);
        }
    }
}

/* The session graphs of every prefix of seq [B*L] (right-aligned, -1 = padding). */
static inline tema_status sg_build(sg_layout *l, const int32_t *seq, int64_t B, int64_t L, const char *who,
                                   tema_err *err)
{
    l->B = B;
    l->L = L;
    const size_t bl = (size_t)(B * L), lb = (size_t)(L + 2) * sizeof(int64_t);
    size_t *c = l->cap;
    if (!sg_grow((void **)&l->count, &c[0], lb) || !sg_grow((void **)&l->pre_off, &c[1], lb) ||
        !sg_grow((void **)&l->node_off, &c[2], lb) || !sg_grow((void **)&l->adj_off, &c[3], lb) ||
        !sg_grow((void **)&l->fill, &c[4], lb) || !sg_grow((void **)&l->row, &c[5], bl * sizeof(int32_t)) ||
        !sg_grow((void **)&l->nq, &c[6], bl * sizeof(int32_t)) ||
        !sg_grow((void **)&l->distinct, &c[7], (size_t)L * sizeof(int32_t)) ||
        !sg_grow((void **)&l->occ, &c[8], (size_t)L * sizeof(int32_t)) ||
        !sg_grow((void **)&l->edge, &c[9], (size_t)(L * L)))
        return tema_fail(err, TEMA_ENOMEM, "%s: out of memory for the session graphs", who);
    sg_count(l, seq);
    const size_t T = (size_t)l->T, P = (size_t)l->P, A = (size_t)l->adj_off[l->n_max + 1];
    if (!sg_grow((void **)&l->node_item, &c[10], T * sizeof(int32_t)) ||
        !sg_grow((void **)&l->cnt, &c[11], T * sizeof(float)) ||
        !sg_grow((void **)&l->bcast, &c[12], T * sizeof(int32_t)) ||
        !sg_grow((void **)&l->last, &c[13], P * sizeof(int32_t)) ||
        !sg_grow((void **)&l->a_in, &c[14], A * sizeof(float)) ||
        !sg_grow((void **)&l->a_out, &c[15], A * sizeof(float)))
        return tema_fail(err, TEMA_ENOMEM, "%s: out of memory for the session graphs (%zu adjacency entries)", who, A);
    sg_fill(l, seq);
    return TEMA_OK;
}

#endif
