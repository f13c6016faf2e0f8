/* plugins/attention/man.c - MAN (Lin et al., "Mixed Attention Network for Cross-domain
 * Sequential Recommendation", WSDM 2024), after its official code (github.com/Guanyu-Lin/MAN,
 * TensorFlow: reco_utils/recommender/deeprec/models/sequential/sasrec.py, the SASRec backbone,
 * and sequential_base_model.py, base_model.py). Layers in man_layers.h.
 *
 * MAN needs no user overlap: a target of domain D is predicted from the user's D items alone,
 * S^D, read twice (local/global encoding layer):
 *   local   h_D = SA_D(E_D[s] + P_D[pos])      domain D's item table, positions and stack
 *   global  h_G = SA_G(E[s] + P[pos])          one table (the id encoder's), one stack for both
 * What the domains share is the global table and stack, the global prediction tower and the
 * group prototypes. The mixed attention layer, per domain:
 *   item similarity  c = sum_q a_q k_q with k_q = (E_D[s_q] + P_D[q]) + (E[s_q] + P[q]) and
 *                    a = softmax_q MLP_att([k_q W, e, k_q W - e, k_q W * e]); the official query
 *                    e is the target item, tema's the most recent item (README: MAN)
 *   sequence fusion  f = FFN(LN(h_D) + Attn(Q = LN(h_D), K = V = h_G)), causal
 *   group prototype  per user, prototypes G [groups, d] (shared) attend h_D (group
 *                    construction), the user's positions are mixed into one query per group,
 *                    which weighs the constructed groups (group matching); the mean over groups
 * (fusion and groups read h_D and h_G through detach, the official tf.stop_gradient, unless
 * stop_gradient: false).
 * Prediction (local/global prediction layer, "mixed"): the official logit is
 *   MLP_D([E_D[t], c, mean h_D, mean f, groups]) + MLP_G([E[t], mean h_G])
 * with the target t inside the MLPs; tema scores by dot products, so each MLP becomes a tower
 * of the user features whose output meets the target's embedding:
 *   score(t) = <T_D([c, mean h_D, mean f, groups]), E_D[t]> + <T_G(mean h_G), E[t]>
 *
 * The official model reads the whole history before the target; tema's state at merged row p
 * is that model applied to S^D up to the last D item at or before p (every mean is a prefix
 * mean, every attention causal), so each training position is one of the official prefix
 * samples. Positions are the official ones: the k-th item of S^D in the window, from the
 * oldest. One stream of width 4d serves both domains (as c2dsr's): h = [T_X, T_G(X), T_Y,
 * T_G(Y)] against items [E_X, E, 0, 0] for X items and [0, 0, E_Y, E] for Y items. A row before
 * the domain's first item has zero features (its towers give their biases' output).
 *
 * aux_loss: the official "disentangle" term, -w sum_{i>j} ||G_i - G_j||^2 / 2, pushing the
 * prototypes apart. What differs from the official code is listed in the README (MAN). */
#include "man_layers.h"

static const tema_option man_options[] = {
    {"blocks", TEMA_OPT_INT, "2", 1, TB_MAX_BLOCKS, NULL, "self-attention blocks of each encoder (official num_blocks)"},
    {"heads", TEMA_OPT_INT, "1", 1, 64, NULL, "attention heads of the encoders, must divide the encoder dim (official 1)"},
    {"dropout", TEMA_OPT_FLOAT, "0", 0, 0.95, NULL,
     "dropout of the encoders' inputs, attention weights and feed-forward (official dropout_rate 0)"},
    {"ffn_mult", TEMA_OPT_INT, "1", 1, 16, NULL, "encoder feed-forward width as a multiple of d (official 1)"},
    {"groups", TEMA_OPT_INT, "10", 1, 256, NULL, "group prototypes, shared by the domains (official num_groups)"},
    {"mlp_layers", TEMA_OPT_FLOAT_LIST, "[32, 16]", 1, MAN_MAX_WIDTH, NULL,
     "hidden widths of the prediction towers, whole numbers (official layer_sizes)"},
    {"att_layers", TEMA_OPT_FLOAT_LIST, "[32, 16]", 1, MAN_MAX_WIDTH, NULL,
     "hidden widths of the item-similarity scorer, whole numbers (official att_fcn_layer_sizes)"},
    {"disentangle", TEMA_OPT_FLOAT, "1.0e-5", 0, 1, NULL,
     "weight of the term that pushes the group prototypes apart (official 0.00001)"},
    {"stop_gradient", TEMA_OPT_BOOL, "true", 0, -1, NULL,
     "fusion and group attention pass no gradient back into the encoders (official tf.stop_gradient; the paper "
     "does not say)"},
    {"init_std", TEMA_OPT_FLOAT, "0.01", 0, 10, NULL,
     "N(0, std^2) init of the local item tables, prototypes, item-similarity matrix and group score (official "
     "tnormal 0.01)"},
};

enum { MAN_X = 0, MAN_Y = 1 };

/* One domain's parameters. */
typedef struct man_domain {
    tb_stack enc;              /* local encoder (its pos table is P_D) */
    tema_tensor *items;        /* E_D [n_D, d] */
    tema_tensor *sim_w;        /* item similarity: [d, d] (official attention_mat) */
    man_mlp sim_mlp;           /* [4d] -> att_layers -> [1] */
    man_norm fu_ln;            /* sequence fusion */
    man_proj fu_q, fu_k, fu_v;
    man_ffn fu_ffn;
    man_norm gc_ln;            /* group construction */
    man_proj gc_k, gc_v;
    man_ffn gc_ffn;
    man_norm gm_ln;            /* group matching */
    tema_tensor *gm_mix_w, *gm_mix_b; /* [max_len, G], [G, 1]: the dense layer over positions */
    man_proj gm_q, gm_v, gm_score;    /* gm_score: [d] -> [1] */
    man_ffn gm_ffn;
    man_mlp tower;             /* T_D: [4d] -> mlp_layers -> [d] */
} man_domain;

/* One domain's host scratch of a step (grown, never shrunk). */
typedef struct man_batch {
    ss_layout lay;             /* ids (global), pos (from the oldest), row (merged row -> compact row) */
    int64_t n_pairs;
    int32_t *ids_local;        /* [B*Lc] row of E_D, -1 = padding */
    int32_t *pair_query, *pair_key; /* [n_pairs] compact rows b*Lc+k and b*Lc+q, q <= k, both items */
    int32_t *cell_pair;        /* [B*Lc*Lc] the pair of cell (b, k, q), -1 = none */
    uint8_t *causal;           /* [B*Lc*Lc] 1 on the pairs */
    float *prefix, *mean;      /* [B*Lc*Lc] on the pairs: 1, and 1 / (items up to k) */
    uint8_t *group_mask;       /* [B*G*Lc*Lc] construction: query (b, g, m) may read key q */
    int32_t *group_row, *group_of; /* [B*G*Lc] b*G + g, and g */
    int32_t *match_of;         /* [B*Lc*G] g */
    float *match_mean;         /* [B*Lc*G] 1/G */
    size_t c_ids, c_pq, c_pk, c_cell, c_causal, c_prefix, c_mean, c_gmask, c_grow, c_gof, c_mof, c_mmean;
} man_batch;

typedef struct man_model {
    const tema_host *host;
    int32_t n_x, n_y, max_len;
    int64_t d, groups;
    float disentangle;
    bool stop_gradient;
    man_domain dom[2];
    tb_stack enc_global;       /* SA_G, its pos table P */
    tema_tensor *prototypes;   /* G [groups, d] */
    man_mlp tower_global;      /* T_G: [d] -> mlp_layers -> [d] */
    int32_t *local_ids[2];     /* [n]: row of E_D for items of domain D, else -1 */
    int32_t *block_ids[2];     /* [n]: j for items of domain D, else -1 */
    man_batch bat[2];
    tb_scratch scratch;
    float *ones;               /* [max(d, groups)] */
    int64_t B;                 /* rows of this step's batch */
} man_model;

static void man_batch_free(man_batch *t)
{
    ss_layout_free(&t->lay);
    free(t->ids_local), free(t->pair_query), free(t->pair_key), free(t->cell_pair), free(t->causal);
    free(t->prefix), free(t->mean), free(t->group_mask), free(t->group_row), free(t->group_of);
    free(t->match_of), free(t->match_mean);
}

static void man_destroy(void *self)
{
    man_model *a = self;
    if (!a) return;
    for (int q = 0; q < 2; q++) {
        man_batch_free(&a->bat[q]);
        free(a->local_ids[q]);
        free(a->block_ids[q]);
    }
    free(a->scratch.mask);
    free(a->ones);
    free(a);
}

/* ---------------- options ---------------- */

typedef struct man_config {
    tb_config tb;
    int64_t groups, mlp[MAN_MAX_LAYERS], att[MAN_MAX_LAYERS];
    int n_mlp, n_att;
    double disentangle, init_std;
    bool stop_gradient;
} man_config;

/* Every option first (a missing one is the caller's bug, whatever else is wrong). */
static tema_status man_read_config(const tema_host *host, const tema_cfg *opts, man_config *c, tema_err *err)
{
    const char *w = "attention man";
    tema_status st = tb_read_config(host, opts, "man", &c->tb, err);
    if (st == TEMA_OK) st = plugin_opt_int(host, opts, w, "groups", &c->groups, err);
    if (st == TEMA_OK) st = man_read_widths(host, opts, "mlp_layers", c->mlp, &c->n_mlp, err);
    if (st == TEMA_OK) st = man_read_widths(host, opts, "att_layers", c->att, &c->n_att, err);
    if (st == TEMA_OK) st = plugin_opt_float(host, opts, w, "disentangle", &c->disentangle, err);
    if (st == TEMA_OK) st = plugin_opt_bool(host, opts, w, "stop_gradient", &c->stop_gradient, err);
    if (st == TEMA_OK) st = plugin_opt_float(host, opts, w, "init_std", &c->init_std, err);
    c->tb.relu = true; /* the official feed-forward (conv1d, relu) */
    return st;
}

/* What MAN cannot be built on: reported at create(), before any step (the encoder count also by
 * man_check, with info, c and enc_mods NULL). */
static tema_status man_check_setup(const tema_model_info *info, const man_config *c, const int64_t *enc_dims,
                                   const char *const *enc_mods, int n_enc, tema_err *err)
{
    if (n_enc != 1 || !enc_mods || !enc_mods[0] || strcmp(enc_mods[0], "id") != 0)
        return tema_fail(err, TEMA_EINVAL, "attention man: takes exactly one encoder of modality id (its table is MAN's "
                                           "global item embedding; the local tables are the plugin's), got %d encoder%s "
                                           "(first: %s); hint: model.encoders: [{plugin: id, dim: 64, init_std: 0.01}]",
                         n_enc, n_enc == 1 ? "" : "s", n_enc > 0 && enc_mods && enc_mods[0] ? enc_mods[0] : "none");
    if (enc_dims[0] < 1) return tema_fail(err, TEMA_EINVAL, "attention man: encoder dim must be positive");
    if (info->n_x < 1 || info->n_y < 1)
        return tema_fail(err, TEMA_EINVAL, "attention man: needs items in both domains (n_x = %d, n_y = %d)",
                         (int)info->n_x, (int)info->n_y);
    const tema_nn_api *nn = info->host->nn;
    if (c->stop_gradient && (!TEMA_HAS_FIELD(nn, tema_nn_api, detach) || !nn->detach))
        return tema_fail(err, TEMA_EUNSUPPORTED, "attention man: stop_gradient needs the autograd op detach (ABI >= "
                                                 "1.8), which this host lacks; hint: stop_gradient: false");
    return TEMA_OK;
}

/* ---------------- create ---------------- */

static tema_tensor *man_param(const man_model *a, tema_params *p, const char *name, int64_t rows, int64_t cols,
                              tema_init init, float scale, uint32_t flags)
{
    int64_t sh[2] = {rows, cols};
    return a->host->nn->param(p, name, 2, sh, init, scale, flags);
}

/* The group prototype layers of domain `prefix` (construction and matching). */
static tema_status man_declare_groups(man_model *a, tema_params *p, man_domain *m, const char *prefix, float init_std,
                                      tema_err *err)
{
    const tema_host *h = a->host;
    const int64_t d = a->d;
    char name[256];
#define MAN_NAME(s) (snprintf(name, sizeof name, "%s.%s", prefix, s), name)
    tema_status st = man_declare_norm(h, p, &m->gc_ln, MAN_NAME("group_build.ln"), d, err);
    if (st == TEMA_OK) st = man_declare_proj(h, p, &m->gc_k, MAN_NAME("group_build.k"), d, d, err);
    if (st == TEMA_OK) st = man_declare_proj(h, p, &m->gc_v, MAN_NAME("group_build.v"), d, d, err);
    if (st == TEMA_OK) st = man_declare_ffn(h, p, &m->gc_ffn, MAN_NAME("group_build.ffn"), d, err);
    if (st == TEMA_OK) st = man_declare_norm(h, p, &m->gm_ln, MAN_NAME("group_match.ln"), d, err);
    if (st == TEMA_OK) st = man_declare_proj(h, p, &m->gm_q, MAN_NAME("group_match.q"), d, d, err);
    if (st == TEMA_OK) st = man_declare_proj(h, p, &m->gm_v, MAN_NAME("group_match.v"), d, d, err);
    if (st == TEMA_OK) st = man_declare_ffn(h, p, &m->gm_ffn, MAN_NAME("group_match.ffn"), d, err);
    if (st != TEMA_OK) return st;
    const uint32_t nd = TEMA_TENSOR_NO_DECAY;
    /* the score layer starts N(0, std^2) as the official nn_part (the model's initializer) */
    m->gm_score.w = man_param(a, p, MAN_NAME("group_match.score.w"), 1, d, TEMA_INIT_NORMAL, init_std, 0);
    m->gm_score.b = a->host->nn->param(p, MAN_NAME("group_match.score.b"), 1, (int64_t[]){1}, TEMA_INIT_ZEROS, 1.0f, nd);
    /* the dense layer over positions: glorot-uniform kernel [max_len, G], zero bias */
    m->gm_mix_w = man_param(a, p, MAN_NAME("group_match.mix.w"), a->max_len, a->groups, TEMA_INIT_XAVIER, 1.0f, 0);
    m->gm_mix_b = man_param(a, p, MAN_NAME("group_match.mix.b"), a->groups, 1, TEMA_INIT_ZEROS, 1.0f, nd);
#undef MAN_NAME
    if (!m->gm_score.w || !m->gm_score.b || !m->gm_mix_w || !m->gm_mix_b)
        return tema_fail(err, TEMA_ENOMEM, "attention man: cannot declare the parameters of %s", prefix);
    return TEMA_OK;
}

/* Everything of domain q but its encoder. */
static tema_status man_declare_domain(man_model *a, tema_params *p, int q, const man_config *c, tema_err *err)
{
    const tema_host *h = a->host;
    const int64_t d = a->d;
    man_domain *m = &a->dom[q];
    char prefix[64], name[256];
    snprintf(prefix, sizeof prefix, "attention.man.%s", q == MAN_X ? "x" : "y");
    snprintf(name, sizeof name, "%s.items", prefix);
    m->items = man_param(a, p, name, q == MAN_X ? a->n_x : a->n_y, d, TEMA_INIT_NORMAL, (float)c->init_std, 0);
    snprintf(name, sizeof name, "%s.sim.w", prefix);
    m->sim_w = man_param(a, p, name, d, d, TEMA_INIT_NORMAL, (float)c->init_std, 0);
    if (!m->items || !m->sim_w) return tema_fail(err, TEMA_ENOMEM, "attention man: cannot declare %s", prefix);
    snprintf(name, sizeof name, "%s.sim.mlp", prefix);
    tema_status st = man_declare_mlp(h, p, &m->sim_mlp, name, 4 * d, c->att, c->n_att, 1, err);
    snprintf(name, sizeof name, "%s.fusion.ln", prefix);
    if (st == TEMA_OK) st = man_declare_norm(h, p, &m->fu_ln, name, d, err);
    const char *fu[3] = {"q", "k", "v"};
    man_proj *fp[3] = {&m->fu_q, &m->fu_k, &m->fu_v};
    for (int i = 0; i < 3 && st == TEMA_OK; i++) {
        snprintf(name, sizeof name, "%s.fusion.%s", prefix, fu[i]);
        st = man_declare_proj(h, p, fp[i], name, d, d, err);
    }
    snprintf(name, sizeof name, "%s.fusion.ffn", prefix);
    if (st == TEMA_OK) st = man_declare_ffn(h, p, &m->fu_ffn, name, d, err);
    if (st == TEMA_OK) st = man_declare_groups(a, p, m, prefix, (float)c->init_std, err);
    snprintf(name, sizeof name, "%s.tower", prefix);
    if (st == TEMA_OK) st = man_declare_mlp(h, p, &m->tower, name, 4 * d, c->mlp, c->n_mlp, d, err);
    return st;
}

static tema_status man_declare(man_model *a, const tema_model_info *info, const man_config *c, tema_err *err)
{
    const tema_host *h = a->host;
    tema_params *p = info->params;
    tema_status st = TEMA_OK;
    for (int q = 0; q < 2 && st == TEMA_OK; q++) {
        st = tb_declare(&a->dom[q].enc, h, p, q == MAN_X ? "attention.man.x.local" : "attention.man.y.local", a->d,
                        a->max_len, &c->tb, "man", err);
        if (st == TEMA_OK) st = man_declare_domain(a, p, q, c, err);
    }
    if (st == TEMA_OK) st = tb_declare(&a->enc_global, h, p, "attention.man.global", a->d, a->max_len, &c->tb, "man", err);
    if (st == TEMA_OK)
        st = man_declare_mlp(h, p, &a->tower_global, "attention.man.global.tower", a->d, c->mlp, c->n_mlp, a->d, err);
    if (st != TEMA_OK) return st;
    a->prototypes = man_param(a, p, "attention.man.groups", a->groups, a->d, TEMA_INIT_NORMAL, (float)c->init_std, 0);
    if (!a->prototypes) return tema_fail(err, TEMA_ENOMEM, "attention man: cannot declare the group prototypes");
    const int64_t n = (int64_t)a->n_x + a->n_y;
    for (int q = 0; q < 2; q++) {
        a->local_ids[q] = malloc((size_t)n * sizeof(int32_t));
        a->block_ids[q] = malloc((size_t)n * sizeof(int32_t));
        if (!a->local_ids[q] || !a->block_ids[q]) return tema_fail(err, TEMA_ENOMEM, "attention man: out of memory");
        for (int64_t j = 0; j < n; j++) {
            const bool mine = (j >= a->n_x) == (q == MAN_Y);
            a->block_ids[q][j] = mine ? (int32_t)j : -1;
            a->local_ids[q][j] = mine ? (int32_t)(q == MAN_X ? j : j - a->n_x) : -1;
        }
    }
    const int64_t n_ones = a->d > a->groups ? a->d : a->groups;
    if (!(a->ones = malloc((size_t)n_ones * sizeof(float)))) return tema_fail(err, TEMA_ENOMEM, "attention man: out of memory");
    for (int64_t j = 0; j < n_ones; j++) a->ones[j] = 1.0f;
    return TEMA_OK;
}

static tema_status man_create(const tema_model_info *info, const tema_cfg *opts, const int64_t *enc_dims,
                              const char *const *enc_mods, int n_enc, void **self, tema_err *err)
{
    const tema_host *host = info->host;
    man_config c;
    tema_status st = man_read_config(host, opts, &c, err);
    if (st == TEMA_OK) st = man_check_setup(info, &c, enc_dims, enc_mods, n_enc, err);
    if (st != TEMA_OK) return st;
    man_model *a = calloc(1, sizeof *a);
    if (!a) return tema_fail(err, TEMA_ENOMEM, "attention man: out of memory");
    *a = (man_model){.host = host, .n_x = info->n_x, .n_y = info->n_y, .max_len = info->max_len, .d = enc_dims[0],
                     .groups = c.groups, .disentangle = (float)c.disentangle, .stop_gradient = c.stop_gradient};
    st = man_declare(a, info, &c, err);
    if (st != TEMA_OK) {
        man_destroy(a);
        return st;
    }
    *self = a;
    return TEMA_OK;
}

/* ---------------- a batch's layouts and masks (host) ---------------- */

#define MAN_GROW(t, field, cap, count) tb_grow((void **)&(t)->field, &(t)->cap, (size_t)((count) > 0 ? (count) : 1) * sizeof *(t)->field)

static bool man_batch_grow(man_batch *t, int64_t B, int64_t Lc, int64_t G)
{
    const int64_t cells = B * Lc * Lc;
    return MAN_GROW(t, ids_local, c_ids, B * Lc) && MAN_GROW(t, pair_query, c_pq, cells) &&
           MAN_GROW(t, pair_key, c_pk, cells) && MAN_GROW(t, cell_pair, c_cell, cells) &&
           MAN_GROW(t, causal, c_causal, cells) && MAN_GROW(t, prefix, c_prefix, cells) &&
           MAN_GROW(t, mean, c_mean, cells) && MAN_GROW(t, group_mask, c_gmask, G * cells) &&
           MAN_GROW(t, group_row, c_grow, B * G * Lc) && MAN_GROW(t, group_of, c_gof, B * G * Lc) &&
           MAN_GROW(t, match_of, c_mof, B * Lc * G) && MAN_GROW(t, match_mean, c_mmean, B * Lc * G);
}

/* Pairs (k, q <= k) of items of each row, the prefix sums and means over them. A row's items
 * are a right-aligned run (columns first..Lc-1), and an item's position counts from the
 * row's first: the official left-aligned slot. */
static void man_fill_pairs(man_batch *t, int64_t B, int64_t Lc)
{
    int32_t *ids = t->lay.ids, *pos = t->lay.pos;
    t->n_pairs = 0;
    for (int64_t r = 0; r < B; r++) {
        int64_t first = Lc;
        while (first > 0 && ids[r * Lc + first - 1] >= 0) first--;
        for (int64_t k = 0; k < Lc; k++) {
            const int64_t row = r * Lc + k;
            pos[row] = k >= first ? (int32_t)(k - first) : -1;
            for (int64_t q = 0; q < Lc; q++) {
                const int64_t cell = row * Lc + q;
                const bool pair = k >= first && q >= first && q <= k;
                t->causal[cell] = pair;
                t->prefix[cell] = pair ? 1.0f : 0.0f;
                t->mean[cell] = pair ? 1.0f / (float)(k - first + 1) : 0.0f;
                t->cell_pair[cell] = pair ? (int32_t)t->n_pairs : -1;
                if (!pair) continue;
                t->pair_query[t->n_pairs] = (int32_t)row;
                t->pair_key[t->n_pairs++] = (int32_t)(r * Lc + q);
            }
        }
    }
}

/* Group construction reads, for group g and prefix m, the keys q <= m with position <= g:
 * the official causality mask over (group, slot), see the README. */
static void man_fill_groups(man_batch *t, int64_t B, int64_t Lc, int64_t G)
{
    for (int64_t r = 0; r < B; r++)
        for (int64_t g = 0; g < G; g++)
            for (int64_t m = 0; m < Lc; m++) {
                const int64_t row = (r * G + g) * Lc + m;
                t->group_row[row] = (int32_t)(r * G + g);
                t->group_of[row] = (int32_t)g;
                for (int64_t q = 0; q < Lc; q++)
                    t->group_mask[row * Lc + q] = t->causal[(r * Lc + m) * Lc + q] && t->lay.pos[r * Lc + q] <= g;
            }
    for (int64_t i = 0; i < B * Lc * G; i++) {
        t->match_of[i] = (int32_t)(i % G);
        t->match_mean[i] = 1.0f / (float)G;
    }
}

static tema_status man_layout(man_model *a, const tema_batch *b, int q, tema_err *err)
{
    man_batch *t = &a->bat[q];
    tema_status st = ss_build_layout(&t->lay, b, q == MAN_X ? TEMA_SEQ_X : TEMA_SEQ_Y, a->n_x, "man", err);
    if (st != TEMA_OK) return st;
    const int64_t B = b->B, Lc = t->lay.Lc;
    if (!man_batch_grow(t, B, Lc, a->groups)) return tema_fail(err, TEMA_ENOMEM, "attention man: out of memory");
    for (int64_t i = 0; i < B * Lc; i++) {
        const int32_t v = t->lay.ids[i];
        t->ids_local[i] = v < 0 ? -1 : q == MAN_X ? v : v - a->n_x;
    }
    man_fill_pairs(t, B, Lc);
    man_fill_groups(t, B, Lc, a->groups);
    return TEMA_OK;
}

/* ---------------- forward: the mixed attention layer of one domain ---------------- */

#define NN_CHECK(x)                                                                                 \
    do {                                                                                            \
        if (!(x)) return tema_fail(err, TEMA_EINTERNAL, "attention man: %s", nn->error(g));        \
    } while (0)


/* An encoder state as the fusion and group attention read it: detached (stop_gradient). */
static tema_tensor *man_cut(const man_model *a, tema_graph *g, tema_tensor *x)
{
    return a->stop_gradient && x ? a->host->nn->detach(g, x) : x;
}

/* The official local_PE_emb + global_PE_emb: both encoders' inputs, E_D[s] + P_D[pos] +
 * E[s] + P[pos], [B*Lc, d] (no dropout: the official embedding dropout is 0). */
static tema_tensor *man_sim_keys(man_model *a, tema_graph *g, int q, tema_tensor *E)
{
    const tema_nn_api *nn = a->host->nn;
    const man_batch *t = &a->bat[q];
    const int64_t rows = a->B * t->lay.Lc;
    tema_tensor *parts[4] = {nn->embedding(g, a->dom[q].items, t->ids_local, rows),
                             nn->embedding(g, a->dom[q].enc.pos, t->lay.pos, rows),
                             nn->embedding(g, E, t->lay.ids, rows),
                             nn->embedding(g, a->enc_global.pos, t->lay.pos, rows)};
    tema_tensor *k = parts[0];
    for (int i = 1; i < 4 && k; i++) k = parts[i] ? nn->add(g, k, parts[i]) : NULL;
    return k;
}

/* Item similarity attention c [B*Lc, d]: at compact row k each key q <= k is scored by
 * MLP_att([k_q W, e_k, k_q W - e_k, k_q W * e_k]), e_k = E[s_k] (the official query is the
 * target's E[t]), on the (k, q) pairs only; c_k = sum_q softmax_q(score) k_q. */
static tema_status man_item_similarity(man_model *a, tema_graph *g, int q, tema_tensor *E, tema_tensor **out,
                                       tema_err *err)
{
    const tema_nn_api *nn = a->host->nn;
    const man_batch *t = &a->bat[q];
    const int64_t B = a->B, Lc = t->lay.Lc, d = a->d, rows = B * Lc;
    tema_tensor *keys = man_sim_keys(a, g, q, E);
    NN_CHECK(keys);
    tema_tensor *kw = nn->matmul(g, keys, false, a->dom[q].sim_w, false);
    tema_tensor *e = nn->embedding(g, E, t->lay.ids, rows);
    NN_CHECK(kw && e);
    tema_tensor *kp = nn->gather_rows(g, kw, t->pair_key, t->n_pairs);
    tema_tensor *ep = nn->gather_rows(g, e, t->pair_query, t->n_pairs);
    NN_CHECK(kp && ep);
    tema_tensor *parts[4] = {kp, ep, nn->add(g, kp, nn->scale(g, ep, -1.0f)), nn->mul(g, kp, ep)};
    NN_CHECK(parts[2] && parts[3]);
    tema_tensor *score = man_mlp_forward(nn, g, &a->dom[q].sim_mlp, nn->concat(g, parts, 4)); /* [n_pairs, 1] */
    NN_CHECK(score);
    tema_tensor *cells = nn->embedding(g, score, t->cell_pair, rows * Lc); /* [B*Lc*Lc, 1], 0 off the pairs */
    tema_tensor *w = cells ? nn->softmax(g, man_view(nn, g, cells, 2, rows, Lc, 0, 0), t->causal, false) : NULL;
    tema_tensor *c = w ? nn->matmul(g, man_view(nn, g, w, 3, B, Lc, Lc, 0), false, man_view(nn, g, keys, 3, B, Lc, d, 0),
                                    false)
                       : NULL;
    NN_CHECK(*out = man_view(nn, g, c, 2, rows, d, 0, 0));
    return TEMA_OK;
}

/* Sequence fusion attention [B*Lc, d]: queries LN(h_D), keys and values h_G, causal (the
 * official multihead_attention: projections with bias, no output projection, the normalised
 * queries added back), then the official feed-forward. */
static tema_status man_fusion(man_model *a, tema_graph *g, int q, tema_tensor *h_loc, tema_tensor *h_glob,
                              tema_tensor **out, tema_err *err)
{
    const tema_nn_api *nn = a->host->nn;
    const man_domain *m = &a->dom[q];
    const man_batch *t = &a->bat[q];
    const int64_t B = a->B, Lc = t->lay.Lc, d = a->d, rows = B * Lc;
    tema_tensor *ql = man_norm_forward(nn, g, &m->fu_ln, man_cut(a, g, h_loc));
    tema_tensor *hg = man_cut(a, g, h_glob);
    tema_tensor *Q = man_proj_forward(nn, g, &m->fu_q, ql), *K = man_proj_forward(nn, g, &m->fu_k, hg),
                *V = man_proj_forward(nn, g, &m->fu_v, hg);
    NN_CHECK(Q && K && V);
    tema_tensor *s = nn->matmul(g, man_view(nn, g, Q, 3, B, Lc, d, 0), false, man_view(nn, g, K, 3, B, Lc, d, 0), true);
    s = s ? nn->scale(g, s, 1.0f / sqrtf((float)d)) : NULL;
    s = s ? nn->softmax(g, man_view(nn, g, s, 2, rows, Lc, 0, 0), t->causal, false) : NULL;
    tema_tensor *o = s ? nn->matmul(g, man_view(nn, g, s, 3, B, Lc, Lc, 0), false, man_view(nn, g, V, 3, B, Lc, d, 0),
                                    false)
                       : NULL;
    o = o ? nn->add(g, man_view(nn, g, o, 2, rows, d, 0, 0), ql) : NULL;
    NN_CHECK(*out = man_ffn_forward(nn, g, &m->fu_ffn, o));
    return TEMA_OK;
}

/* Group construction [B*Lc*G, d], rows in (b, m, g) order: for prefix m, the prototypes
 * LN(G) attend the keys q <= m whose position is <= g (no query projection, as the official
 * scope groupConstruction; the mask is the official causality over (group, slot)), the
 * normalised prototypes added back, then the feed-forward. hd: h_D as man_cut gives it. */
static tema_tensor *man_group_build(man_model *a, tema_graph *g, int q, tema_tensor *hd)
{
    const tema_nn_api *nn = a->host->nn;
    const man_domain *m = &a->dom[q];
    const man_batch *t = &a->bat[q];
    const int64_t B = a->B, Lc = t->lay.Lc, d = a->d, G = a->groups, R = B * G * Lc;
    tema_tensor *K = man_proj_forward(nn, g, &m->gc_k, hd), *V = man_proj_forward(nn, g, &m->gc_v, hd);
    tema_tensor *lg = man_norm_forward(nn, g, &m->gc_ln, a->prototypes);
    tema_tensor *s = K && lg ? nn->matmul(g, K, false, lg, true) : NULL; /* [B*Lc, G]: (b, q), g */
    s = s ? nn->scale(g, s, 1.0f / sqrtf((float)d)) : NULL;
    s = man_view(nn, g, s, 4, B, Lc, G, 1);
    s = s ? nn->transpose12(g, s) : NULL; /* [B, G, Lc, 1] */
    s = s ? nn->gather_rows(g, man_view(nn, g, s, 2, B * G, Lc, 0, 0), t->group_row, R) : NULL; /* (b, g, m), q */
    s = s ? nn->softmax(g, s, t->group_mask, false) : NULL;
    tema_tensor *o = s && V ? nn->matmul(g, man_view(nn, g, s, 3, B, G * Lc, Lc, 0), false,
                                         man_view(nn, g, V, 3, B, Lc, d, 0), false)
                            : NULL;
    tema_tensor *back = lg ? nn->gather_rows(g, lg, t->group_of, R) : NULL;
    o = o && back ? nn->add(g, man_view(nn, g, o, 2, R, d, 0, 0), back) : NULL;
    o = man_ffn_forward(nn, g, &m->gc_ffn, o);
    o = o ? nn->transpose12(g, man_view(nn, g, o, 4, B, G, Lc, d)) : NULL; /* (b, m, g) */
    return man_view(nn, g, o, 2, B * Lc * G, d, 0, 0);
}

/* Group matching [B*Lc, d]: for prefix m, LN(h_D) of the positions q <= m mixed into one query
 * per group by the dense layer over positions (the official tf.layers.dense over the sequence
 * axis: weight W[pos(q), g], bias b[g]), a softmax over the groups of a linear score of the
 * projected query, the projected constructed groups weighted by it, the feed-forward, the mean
 * over the groups. hd: h_D as man_cut gives it; built: man_group_build's. */
static tema_tensor *man_group_match(man_model *a, tema_graph *g, int q, tema_tensor *hd, tema_tensor *built)
{
    const tema_nn_api *nn = a->host->nn;
    const man_domain *m = &a->dom[q];
    const man_batch *t = &a->bat[q];
    const int64_t B = a->B, Lc = t->lay.Lc, d = a->d, G = a->groups, rows = B * Lc, R = rows * G;
    const int64_t pre_sh[3] = {B, Lc, Lc}, ones_sh[2] = {1, d}, avg_sh[3] = {rows, 1, G};
    tema_tensor *z = man_norm_forward(nn, g, &m->gm_ln, hd);
    tema_tensor *mix = nn->embedding(g, m->gm_mix_w, t->lay.pos, rows); /* [rows, G] */
    tema_tensor *per = z && mix ? nn->matmul(g, man_view(nn, g, mix, 3, rows, G, 1, 0), false,
                                             man_view(nn, g, z, 3, rows, 1, d, 0), false)
                                : NULL; /* [rows, G, d]: W[pos(q), g] z_q */
    tema_tensor *pre = nn->tensor(g, 3, pre_sh, t->prefix);
    tema_tensor *qm = per && pre ? nn->matmul(g, pre, false, man_view(nn, g, per, 3, B, Lc, G * d, 0), false) : NULL;
    tema_tensor *bias = nn->embedding(g, m->gm_mix_b, t->match_of, R); /* [R, 1] */
    tema_tensor *ones = nn->tensor(g, 2, ones_sh, a->ones);
    bias = bias && ones ? nn->matmul(g, bias, false, ones, false) : NULL; /* b[g] in every column */
    qm = qm && bias ? nn->add(g, man_view(nn, g, qm, 2, R, d, 0, 0), bias) : NULL;
    tema_tensor *Q = man_proj_forward(nn, g, &m->gm_q, qm), *V = man_proj_forward(nn, g, &m->gm_v, built);
    tema_tensor *s = man_proj_forward(nn, g, &m->gm_score, Q); /* [R, 1] */
    s = s ? nn->softmax(g, man_view(nn, g, s, 2, rows, G, 0, 0), NULL, false) : NULL;
    tema_tensor *o = s && V ? nn->matmul(g, man_view(nn, g, s, 3, R, 1, 1, 0), false, man_view(nn, g, V, 3, R, 1, d, 0),
                                         false)
                            : NULL;
    o = man_ffn_forward(nn, g, &m->gm_ffn, man_view(nn, g, o, 2, R, d, 0, 0));
    tema_tensor *avg = nn->tensor(g, 3, avg_sh, t->match_mean);
    o = o && avg ? nn->matmul(g, avg, false, man_view(nn, g, o, 3, rows, G, d, 0), false) : NULL;
    return man_view(nn, g, o, 2, rows, d, 0, 0);
}

/* The local and global encoders over S^D: h_D, h_G [B*Lc, d] (inputs unscaled, as the
 * official; its positions). */
static tema_status man_encode(man_model *a, tema_graph *g, int q, tema_tensor *E, tema_tensor **h_loc,
                              tema_tensor **h_glob, tema_err *err)
{
    const tema_nn_api *nn = a->host->nn;
    const man_batch *t = &a->bat[q];
    tema_status st = tb_forward(&a->dom[q].enc, nn, g, &a->scratch, a->dom[q].items, 1.0f, t->ids_local, t->lay.pos,
                                a->B, t->lay.Lc, h_loc, "man", err);
    if (st == TEMA_OK)
        st = tb_forward(&a->enc_global, nn, g, &a->scratch, E, 1.0f, t->lay.ids, t->lay.pos, a->B, t->lay.Lc, h_glob,
                        "man", err);
    return st;
}

/* Domain q's user features at every merged row, of the S^D prefix ending at the row's last D
 * item (zeros before the first): local [B*L, 4d] = [c, mean h_D, mean f, groups] and global
 * [B*L, d] = mean h_G. */
static tema_status man_domain_features(man_model *a, tema_graph *g, const tema_batch *b, int q, tema_tensor *E,
                                       tema_tensor **loc, tema_tensor **glob, tema_err *err)
{
    const tema_nn_api *nn = a->host->nn;
    const man_batch *t = &a->bat[q];
    const int64_t B = b->B, Lc = t->lay.Lc, d = a->d, rows = B * Lc, BL = (int64_t)b->B * b->L;
    if (Lc == 0) { /* no item of this domain in the batch */
        const int64_t s4[2] = {BL, 4 * d}, s1[2] = {BL, d};
        NN_CHECK(*loc = nn->tensor(g, 2, s4, NULL));
        NN_CHECK(*glob = nn->tensor(g, 2, s1, NULL));
        return TEMA_OK;
    }
    tema_tensor *h_loc = NULL, *h_glob = NULL, *c = NULL, *f = NULL;
    tema_status st = man_encode(a, g, q, E, &h_loc, &h_glob, err);
    if (st == TEMA_OK) st = man_item_similarity(a, g, q, E, &c, err);
    if (st == TEMA_OK) st = man_fusion(a, g, q, h_loc, h_glob, &f, err);
    if (st != TEMA_OK) return st;
    tema_tensor *hd = man_cut(a, g, h_loc);
    tema_tensor *groups = man_group_match(a, g, q, hd, man_group_build(a, g, q, hd));
    NN_CHECK(groups);
    /* the prefix means of h_D, h_G and f in one product */
    const int64_t mean_sh[3] = {B, Lc, Lc};
    tema_tensor *three[3] = {h_loc, h_glob, f};
    tema_tensor *mw = nn->tensor(g, 3, mean_sh, t->mean);
    tema_tensor *all = man_view(nn, g, nn->concat(g, three, 3), 3, B, Lc, 3 * d, 0);
    tema_tensor *means = mw && all ? man_view(nn, g, nn->matmul(g, mw, false, all, false), 2, rows, 3 * d, 0, 0) : NULL;
    NN_CHECK(means);
    tema_tensor *feat[4] = {c, nn->slice(g, means, 0, d), nn->slice(g, means, 2 * d, d), groups};
    tema_tensor *mean_glob = nn->slice(g, means, d, d);
    NN_CHECK(feat[1] && feat[2] && mean_glob);
    tema_tensor *cat = nn->concat(g, feat, 4);
    NN_CHECK(cat);
    NN_CHECK(*loc = nn->embedding(g, cat, t->lay.row, BL));
    NN_CHECK(*glob = nn->embedding(g, mean_glob, t->lay.row, BL));
    return TEMA_OK;
}

/* The one stream: h = [T_X(loc_X), T_G(glob_X), T_Y(loc_Y), T_G(glob_Y)] against items
 * [E_X, E, 0, 0] (X items) / [0, 0, E_Y, E] (Y items): the local plus the global logit. */
static tema_status man_stream(man_model *a, tema_graph *g, const tema_batch *b, tema_tensor *E, tema_stream *s,
                              tema_err *err)
{
    const tema_nn_api *nn = a->host->nn;
    const int64_t n = (int64_t)a->n_x + a->n_y;
    tema_tensor *hs[4], *ws[4];
    for (int q = 0; q < 2; q++) {
        tema_tensor *loc = NULL, *glob = NULL;
        tema_status st = man_domain_features(a, g, b, q, E, &loc, &glob, err);
        if (st != TEMA_OK) return st;
        hs[2 * q] = man_mlp_forward(nn, g, &a->dom[q].tower, loc);
        hs[2 * q + 1] = man_mlp_forward(nn, g, &a->tower_global, glob);
        ws[2 * q] = nn->embedding(g, a->dom[q].items, a->local_ids[q], n);
        ws[2 * q + 1] = nn->embedding(g, E, a->block_ids[q], n);
        NN_CHECK(hs[2 * q] && hs[2 * q + 1] && ws[2 * q] && ws[2 * q + 1]);
    }
    tema_tensor *h = nn->concat(g, hs, 4), *w = nn->concat(g, ws, 4);
    NN_CHECK(h && w);
    /* labelled S^X like c2dsr's specific stream; it serves both domains (one group, weight 1) */
    *s = (tema_stream){.h = h, .items = w, .weight = 1.0f, .inv_temp = 1.0f, .sequence = TEMA_SEQ_X};
    return TEMA_OK;
}

static tema_status man_forward(void *self, tema_graph *g, const tema_batch *b, tema_tensor *const *items, int n_enc,
                               tema_stream *streams, int *n_streams, tema_err *err)
{
    man_model *a = self;
    const int64_t n = (int64_t)a->n_x + a->n_y;
    if (n_enc != 1 || !items[0] || items[0]->ndim != 2 || items[0]->shape[1] != a->d || items[0]->shape[0] != n)
        return tema_fail(err, TEMA_EINVAL, "attention man: needs the one id encoder's [%lld, %lld] table", (long long)n,
                         (long long)a->d);
    if (b->L < 1 || b->L > a->max_len)
        return tema_fail(err, TEMA_EINVAL, "attention man: batch length %d outside [1, max_len %d]", (int)b->L,
                         (int)a->max_len);
    a->B = b->B;
    tema_status st = TEMA_OK;
    for (int q = 0; q < 2 && st == TEMA_OK; q++) st = man_layout(a, b, q, err);
    if (st == TEMA_OK) st = man_stream(a, g, b, items[0], &streams[0], err);
    if (st != TEMA_OK) return st;
    *n_streams = 1;
    return TEMA_OK;
}

/* ---------------- aux_loss: the official disentangle term ---------------- */

/* -w sum_{i>j} ||G_i - G_j||^2 / 2 (the official sum of tf.nn.l2_loss over i >= j), through
 * sum_{i<j} ||G_i - G_j||^2 = n sum_i ||G_i||^2 - ||sum_i G_i||^2. Depends on no batch. */
static tema_status man_aux_loss(void *self, tema_graph *g, const tema_batch *b, const tema_targets *t,
                                tema_tensor **loss, tema_err *err)
{
    (void)b, (void)t;
    man_model *a = self;
    const tema_nn_api *nn = a->host->nn;
    *loss = NULL;
    if (a->disentangle == 0.0f) return TEMA_OK;
    tema_tensor *P = a->prototypes;
    const int64_t sh[2] = {1, a->groups};
    tema_tensor *squares = nn->sum(g, nn->mul(g, P, P));
    tema_tensor *total = nn->matmul(g, nn->tensor(g, 2, sh, a->ones), false, P, false); /* [1, d] */
    tema_tensor *total_sq = total ? nn->sum(g, nn->mul(g, total, total)) : NULL;
    NN_CHECK(squares && total_sq);
    tema_tensor *spread = nn->add(g, nn->scale(g, squares, (float)a->groups), nn->scale(g, total_sq, -1.0f));
    NN_CHECK(spread);
    NN_CHECK(*loss = nn->scale(g, spread, -0.5f * a->disentangle));
    return TEMA_OK;
}

/* ---------------- check (tema check, before any data is read) ---------------- */

static tema_status man_check(const tema_host *host, const tema_cfg *opts, const int64_t *enc_dims, int n_enc,
                             tema_err *err)
{
    int64_t widths[MAN_MAX_LAYERS];
    int n;
    /* the encoder count is known here (its modality only at create): the same message */
    if (n_enc != 1) return man_check_setup(NULL, NULL, enc_dims, NULL, n_enc, err);
    tema_status st = tb_check_heads(host, opts, "man", enc_dims[0], err);
    if (st == TEMA_OK) st = man_read_widths(host, opts, "mlp_layers", widths, &n, err);
    if (st == TEMA_OK) st = man_read_widths(host, opts, "att_layers", widths, &n, err);
    return st;
}

static const tema_attention_ops man_ops = {.create = man_create, .forward = man_forward, .destroy = man_destroy,
                                           .aux_loss = man_aux_loss, .check = man_check};

static const tema_plugin man_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_ATTENTION, "man", "1.0.0",
                       "MAN: local/global encoders + item-similarity, sequence-fusion and group-prototype attention "
                       "(Lin et al. 2024)",
                       man_options, man_ops)};
TEMA_PLUGIN_DEFINE(man_plugin)
