/* plugins/attention/seq_streams.h - what the TEMA attention plugins (multi, fused) share:
 * one transformer stack per input sequence S^X, S^Y, S^{X+Y} (paper Eq. 11), states
 * aligned to the merged sequence's rows, cosine/temperature prediction (Eq. 8, 12-13) and
 * the per-domain sequence weights lambda_1 / lambda_2 (Eq. 15-16). Static functions.
 *
 * Alignment. The trainer's targets and the evaluator address h by rows b*L + p of the
 * MERGED sequence. A stack over S^X yields one state per X item; the S^X state for merged
 * row p is the state after the last X item at or before p, and rows with no X item yet
 * get a learned "empty history" vector of that stream. So the S^X stream at row p depends
 * on X items up to p only: never on later items, never on Y items (also not through
 * positions, see below). The merged stream uses the same mechanism; its empty vector only
 * serves rows before the first item (padding, and users with no history at all).
 *
 * Layout. Each stack runs over a compact [B, Lc] layout: the row's items of that kind,
 * right-aligned, Lc = the most any row of the batch has (columns that are padding in every
 * row are dropped; padded keys are masked, so this changes no result, only the cost).
 * The items come from the batch's seq_x / seq_y, checked against the X / Y items of seq.
 *
 * Positions. An item's learned position is its position p in the merged window (as in
 * `single`), not its index inside S^X: the right-aligned index inside S^X counts how many
 * X items follow in the window, which a state at an earlier merged row must not know.
 *
 * Prediction. Cosine similarity divided by a temperature tau: h and the item table are
 * L2-normalised here, and the stream carries inv_temp = 1/tau (fixed), or inv_temp = 1
 * with h scaled by a learned 1/tau = 100 sigmoid(u + u0) (learnable; bounded by 100 as
 * CLIP bounds its logit scale, u0 chosen so training starts at the configured tau). */
#ifndef TEMA_PLUGINS_ATTENTION_SEQ_STREAMS_H
#define TEMA_PLUGINS_ATTENTION_SEQ_STREAMS_H

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transformer_block.h"

#define SS_MAX_INV_TEMP 100.0
/* l2norm's floor: rows below it (e.g. a text encoder's zero row for an item without a
 * title) are divided by it, and so is their gradient; 1e-6 keeps that finite and small
 * while every real row (norms ~0.1 and up) is normalised exactly. */
#define SS_NORM_EPS 1e-6f

/* Options of the sequence/prediction part (declared by each plugin under these names). */
typedef struct ss_config {
    double lambda1, lambda2, temperature;
    bool learnable_temperature;
    bool use[3]; /* by tema_seq_kind: merged, x, y */
} ss_config;

static const char *const ss_seq_names[3] = {"merged", "x", "y"};

/* "x,y,merged" (any order; ',', '+' or spaces between; "all" = all three). */
static inline tema_status ss_parse_sequences(const char *text, bool use[3], const char *who, tema_err *err)
{
    use[0] = use[1] = use[2] = false;
    const char *s = text ? text : "";
    int n = 0;
    while (*s) {
        while (*s == ',' || *s == '+' || isspace((unsigned char)*s)) s++;
        if (!*s) break;
        const char *e = s;
        while (*e && *e != ',' && *e != '+' && !isspace((unsigned char)*e)) e++;
        size_t len = (size_t)(e - s);
        int k = -1;
        if (len == 3 && !strncmp(s, "all", 3)) {
            use[0] = use[1] = use[2] = true;
            n += 3;
        } else {
            for (int q = 0; q < 3; q++)
                if (len == strlen(ss_seq_names[q]) && !strncmp(s, ss_seq_names[q], len)) k = q;
            if (k < 0)
                return tema_fail(err, TEMA_EINVAL, "attention %s: option 'sequences': unknown sequence '%.*s'; hint: "
                                                   "write a subset of x, y, merged separated by commas, e.g. \"x,y,merged\"",
                                 who, (int)len, s);
            use[k] = true;
            n++;
        }
        s = e;
    }
    if (!n)
        return tema_fail(err, TEMA_EINVAL, "attention %s: option 'sequences' is empty; hint: e.g. \"x,y,merged\" or "
                                           "\"merged\"", who);
    return TEMA_OK;
}

/* Reads lambda_1 / lambda_2 / temperature / learnable_temperature / sequences (declared by
 * the plugin with these names; their table holds the ranges, which the core checked: a
 * temperature above 1 / SS_MAX_INV_TEMP, so the learnable one starts inside its bound). */
static inline tema_status ss_read_config(const tema_host *host, const tema_cfg *opts, const char *who, ss_config *c,
                                         tema_err *err)
{
    char w[64];
    snprintf(w, sizeof w, "attention %s", who);
    const char *seqs;
    tema_status st;
    if ((st = plugin_opt_float(host, opts, w, "lambda_1", &c->lambda1, err)) != TEMA_OK ||
        (st = plugin_opt_float(host, opts, w, "lambda_2", &c->lambda2, err)) != TEMA_OK ||
        (st = plugin_opt_float(host, opts, w, "temperature", &c->temperature, err)) != TEMA_OK ||
        (st = plugin_opt_bool(host, opts, w, "learnable_temperature", &c->learnable_temperature, err)) != TEMA_OK ||
        (st = plugin_opt_str(host, opts, w, "sequences", &seqs, err)) != TEMA_OK)
        return st;
    return ss_parse_sequences(seqs, c->use, who, err);
}

/* Eq. 15-16 read so that every term is defined: for a target in domain D, the group of
 * D's own sequence has weight 1, the other domain's lambda_1, the merged one lambda_2.
 * With a subset of the sequences configured, each domain's weights are divided by the
 * largest present one (the strongest present group keeps weight 1, so an ablation that
 * keeps only the merged sequence trains with weight 1, not lambda_2). */
static inline void ss_sequence_weights(const ss_config *c, float w[2][3])
{
    for (int dom = 0; dom < 2; dom++) {
        double raw[3];
        raw[TEMA_SEQ_MERGED] = c->lambda2;
        raw[TEMA_SEQ_X] = dom == 0 ? 1.0 : c->lambda1;
        raw[TEMA_SEQ_Y] = dom == 1 ? 1.0 : c->lambda1;
        double mx = 0;
        for (int q = 0; q < 3; q++)
            if (c->use[q] && raw[q] > mx) mx = raw[q];
        for (int q = 0; q < 3; q++) w[dom][q] = c->use[q] && mx > 0 ? (float)(raw[q] / mx) : 0.0f;
    }
}

/* ---- per-batch layout of one sequence kind ---- */

typedef struct ss_layout {
    int64_t Lc;        /* compact length (0: no item of this kind in the batch) */
    int32_t *ids;      /* [B*Lc] items, right-aligned, -1 = padding */
    int32_t *pos;      /* [B*Lc] merged position of each item, -1 = padding */
    int32_t *row;      /* [B*L] row of the stack output for merged row b*L+p, -1 = empty history */
    int32_t *empty;    /* [B*L] 0 where row is -1, else -1 (indexes the [1, d] empty vector) */
    size_t ids_cap, pos_cap, row_cap, empty_cap;
} ss_layout;

static inline void ss_layout_free(ss_layout *l)
{
    free(l->ids);
    free(l->pos);
    free(l->row);
    free(l->empty);
    memset(l, 0, sizeof *l);
}

static inline bool ss_in_kind(int32_t item, int kind, int32_t n_x)
{
    return item >= 0 && (kind == TEMA_SEQ_MERGED || (kind == TEMA_SEQ_X) == (item < n_x));
}

static inline tema_status ss_build_layout(ss_layout *l, const tema_batch *b, int kind, int32_t n_x, const char *who,
                                          tema_err *err)
{
    const int64_t B = b->B, L = b->L;
    const int32_t *sub = kind == TEMA_SEQ_X ? b->seq_x : kind == TEMA_SEQ_Y ? b->seq_y : b->seq;
    if (!sub)
        return tema_fail(err, TEMA_EINVAL, "attention %s: the batch has no %s sequence", who, ss_seq_names[kind]);
    int64_t Lc = 0;
    for (int64_t r = 0; r < B; r++) {
        int64_t n = 0;
        for (int64_t p = 0; p < L; p++) n += ss_in_kind(b->seq[r * L + p], kind, n_x);
        if (n > Lc) Lc = n;
    }
    size_t nc = (size_t)(B * Lc > 0 ? B * Lc : 1), nm = (size_t)(B * L > 0 ? B * L : 1);
    if (!tb_grow((void **)&l->ids, &l->ids_cap, nc * sizeof(int32_t)) ||
        !tb_grow((void **)&l->pos, &l->pos_cap, nc * sizeof(int32_t)) ||
        !tb_grow((void **)&l->row, &l->row_cap, nm * sizeof(int32_t)) ||
        !tb_grow((void **)&l->empty, &l->empty_cap, nm * sizeof(int32_t)))
        return tema_fail(err, TEMA_ENOMEM, "attention %s: out of memory for a batch layout", who);
    l->Lc = Lc;
    for (int64_t r = 0; r < B; r++) {
        int64_t n = 0;
        for (int64_t p = 0; p < L; p++) n += ss_in_kind(b->seq[r * L + p], kind, n_x);
        for (int64_t j = 0; j < Lc; j++) l->ids[r * Lc + j] = l->pos[r * Lc + j] = -1;
        for (int64_t p = 0; kind != TEMA_SEQ_MERGED && p < L - n; p++)
            if (sub[r * L + p] >= 0)
                return tema_fail(err, TEMA_EINVAL, "attention %s: batch row %lld: seq_%s holds more items than seq has "
                                                   "%s items (%lld); hint: seq_x / seq_y must hold exactly seq's X / Y "
                                                   "items, right-aligned",
                                 who, (long long)r, ss_seq_names[kind], ss_seq_names[kind], (long long)n);
        /* the k-th item (in time order) sits at compact column Lc-n+k and at L-n+k of sub */
        int64_t k = 0, last = -1;
        for (int64_t p = 0; p < L; p++) {
            int32_t v = b->seq[r * L + p];
            if (ss_in_kind(v, kind, n_x)) {
                if (kind != TEMA_SEQ_MERGED && sub[r * L + L - n + k] != v)
                    return tema_fail(err, TEMA_EINVAL, "attention %s: batch row %lld: seq_%s[%lld] is %d but the %s items "
                                                       "of seq say %d; hint: seq_x / seq_y must hold seq's X / Y items "
                                                       "in order, right-aligned",
                                     who, (long long)r, ss_seq_names[kind], (long long)(L - n + k),
                                     (int)sub[r * L + L - n + k], ss_seq_names[kind], (int)v);
                last = r * Lc + Lc - n + k;
                l->ids[last] = v;
                l->pos[last] = (int32_t)p;
                k++;
            }
            l->row[r * L + p] = (int32_t)last;
            l->empty[r * L + p] = last < 0 ? 0 : -1;
        }
    }
    return TEMA_OK;
}

/* ---- per-stream parameters and output ---- */

typedef struct ss_head {
    tema_tensor *empty;  /* [1, d] learned state of an empty history */
    tema_tensor *temp_u; /* [1] learnable temperature (NULL when fixed) */
    int64_t d;
} ss_head;

/* Scratch the heads share: d zeros (gather index) and d copies of u0. */
typedef struct ss_scratch {
    int32_t *zeros;
    float *u0;
    size_t zeros_cap, u0_cap;
} ss_scratch;

static inline void ss_scratch_free(ss_scratch *s)
{
    free(s->zeros);
    free(s->u0);
    memset(s, 0, sizeof *s);
}

static inline tema_status ss_declare_head(ss_head *h, const tema_host *host, tema_params *p, const char *prefix,
                                          int64_t d, bool learnable, const char *who, tema_err *err)
{
    char name[256];
    int64_t shape[2] = {1, d};
    snprintf(name, sizeof name, "%s.empty", prefix);
    h->empty = host->nn->param(p, name, 2, shape, TEMA_INIT_NORMAL, 0.02f, TEMA_TENSOR_NO_DECAY);
    h->temp_u = NULL;
    h->d = d;
    if (learnable) {
        snprintf(name, sizeof name, "%s.temp", prefix);
        h->temp_u = host->nn->param(p, name, 1, shape, TEMA_INIT_ZEROS, 1, TEMA_TENSOR_NO_DECAY);
    }
    if (!h->empty || (learnable && !h->temp_u))
        return tema_fail(err, TEMA_ENOMEM, "attention %s: cannot declare the parameters of %s", who, prefix);
    return TEMA_OK;
}

#define SS_CHECK(x)                                                                                 \
    do {                                                                                            \
        if (!(x)) return tema_fail(err, TEMA_EINTERNAL, "attention %s: %s", who, nn->error(g));    \
    } while (0)

/* The stream state for every merged row: aligned stack output (or the empty vector),
 * L2-normalised, times the learned 1/tau when learnable. h_stack: [B*Lc, d] or NULL when
 * Lc == 0. *inv_temp: what the stream must carry. */
static inline tema_status ss_head_output(const ss_head *hd, const ss_config *c, ss_scratch *sc, const tema_nn_api *nn,
                                         tema_graph *g, const ss_layout *l, tema_tensor *h_stack, int64_t BL,
                                         tema_tensor **out, float *inv_temp, const char *who, tema_err *err)
{
    tema_tensor *h = nn->embedding(g, hd->empty, l->empty, BL);
    SS_CHECK(h);
    if (h_stack) {
        tema_tensor *a = nn->embedding(g, h_stack, l->row, BL);
        SS_CHECK(a);
        SS_CHECK(h = nn->add(g, a, h));
    }
    SS_CHECK(h = nn->l2norm(g, h, SS_NORM_EPS));
    if (!hd->temp_u) {
        *inv_temp = (float)(1.0 / c->temperature);
        *out = h;
        return TEMA_OK;
    }
    const int64_t d = hd->d;
    if (!tb_grow((void **)&sc->zeros, &sc->zeros_cap, (size_t)d * sizeof(int32_t)) ||
        !tb_grow((void **)&sc->u0, &sc->u0_cap, (size_t)d * sizeof(float)))
        return tema_fail(err, TEMA_ENOMEM, "attention %s: out of memory", who);
    const double r0 = 1.0 / c->temperature / SS_MAX_INV_TEMP;
    const float u0 = (float)log(r0 / (1.0 - r0));
    for (int64_t j = 0; j < d; j++) sc->zeros[j] = 0, sc->u0[j] = u0;
    tema_tensor *s = nn->gather_rows(g, hd->temp_u, sc->zeros, d); /* [d] copies of u */
    SS_CHECK(s);
    tema_tensor *c0 = nn->tensor(g, 1, &d, sc->u0);
    SS_CHECK(c0);
    SS_CHECK(s = nn->add(g, s, c0));
    SS_CHECK(s = nn->sigmoid(g, s));
    SS_CHECK(s = nn->scale(g, s, (float)SS_MAX_INV_TEMP));
    SS_CHECK(h = nn->mul(g, h, s));
    *inv_temp = 1.0f;
    *out = h;
    return TEMA_OK;
}

#undef SS_CHECK

#endif
