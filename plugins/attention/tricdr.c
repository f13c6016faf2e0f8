/* plugins/attention/tricdr.c - Tri-CDR (Ma et al., "Triple Sequence Learning for Cross-domain
 * Recommendation", ACM TOIS 2024; official code github.com/hulkima/Tri-CDR, model.py,
 * Tri_CDR.py, utils.py), after the official code.
 *
 * Three SASRec encoders (the stack of transformer_block.h, relu feed-forward), one per sequence:
 *
 *   S^{X+Y}: h_M = SA_M(E[s])      S^X: h_X = SA_X(E_X[s])      S^Y: h_Y = SA_Y(E_Y[s])
 *
 * E is the id encoder's table, E_X [n_x, d] / E_Y [n_y, d] this plugin's (the official
 * encoders each have an [n, d] table, of which only their own domain's rows are read).
 *
 * The official model serves one target domain T with a source domain S; tema ranks both
 * domains, so this plugin holds two of the official heads over the shared encoders: direction
 * 0 (T = X, S = Y) and direction 1 (T = Y, S = X), each with its own triple cross-domain
 * attention (TCA), fusion and contrastive projections. For merged row p (the state after item
 * p) and direction (T, S):
 *
 *   q = h_T at the last T item at or before p (0 before the first)
 *   m = mean of h_M over the items at or before p                     (mix_attn)
 *   o_R = sum_f softmax_f(MLP([f, q, f*q, q - f, m])) f    for each role R: facts f are the
 *         h_M states at or before p (mix), the h_S states of S items at or before p (source),
 *         the h_T states of T items at or before p (target); no fact: o_R = 0
 *   h_T(p) = W2 LeakyReLU(W1 [o_mix, o_source, o_target] + b1) + b2
 *
 * with MLP = Linear(5d, 80) PReLU Linear(80, 40) PReLU Linear(40, 1) (DINAttentionLayer_
 * withmixattn; one MLP per direction for its three roles). The facts of a row are exactly what
 * the official masks (get_mask_matrix) leave to the state that predicts the next target item.
 * The first layer is evaluated as (W_f - W_d) f + (W_q + W_d) q + W_m m + W_fq (f*q) + b, the
 * same function with the same [80, 5d] weight, so only the f*q block is computed per pair.
 *
 * Prediction: cosine(h_T(p), E_T[j]) * logit_scale over the target's domain, written as one
 * stream h' = [l2(h_X(p)), l2(h_Y(p))] against items' = [l2(E_X) 1_X, l2(E_Y) 1_Y] (an item's
 * other block is 0), so an X target is scored by direction 0 and a Y target by direction 1.
 *
 * Triple contrastive learning (aux_loss), per direction over the sequences whose window ends
 * before a target of T (the official trains one target domain) and that hold items of both
 * domains: z_R = proj_R(o_R at the window's last row) (Linear ReLU Linear), then
 *   cl_weight (r_ms NTXent(z_mix, z_src) + r_mt NTXent(z_mix, z_tgt) + r_st NTXent(z_src, z_tgt))
 *   + triplet_weight * mean max(0, |z_src - z_mix| - |z_src - z_tgt| + margin)
 * (r_* the rates divided by their sum; NTXent is SimCLR's over the 2n normalised rows, in-batch
 * negatives of both views, temperature cl_temperature; the triplet is torch's
 * TripletMarginLoss(anchor = source, positive = mix, negative = target)); the two directions
 * are averaged weighted by their number of sequences.
 *
 * What differs from the official code is listed in the README (Tri-CDR). */
#include "seq_streams.h"

static const tema_option tc_options[] = {
    {"blocks", TEMA_OPT_INT, "2", 1, TB_MAX_BLOCKS, NULL, "transformer blocks per SASRec encoder (official num_blocks)"},
    {"heads", TEMA_OPT_INT, "1", 1, 64, NULL, "attention heads, must divide the encoder dim (official num_heads)"},
    {"dropout", TEMA_OPT_FLOAT, "0.2", 0, 0.95, NULL,
     "dropout of the SASRec encoders: embeddings, attention weights, feed-forward (official dropout_rate)"},
    {"ffn_mult", TEMA_OPT_INT, "1", 1, 16, NULL, "feed-forward width as a multiple of d (official: 1)"},
    {"activation", TEMA_OPT_ENUM, "relu", 0, -1, "relu|gelu", "feed-forward activation (official: relu)"},
    {"att_hidden_1", TEMA_OPT_INT, "80", 1, 4096, NULL, "first hidden width of the TCA scoring MLP (official 80)"},
    {"att_hidden_2", TEMA_OPT_INT, "40", 1, 4096, NULL, "second hidden width of the TCA scoring MLP (official 40)"},
    {"logit_scale", TEMA_OPT_FLOAT, "5", 0.01, 100, NULL,
     "cosine of state and item times this (official --temperature, a multiplier)"},
    {"cl_temperature", TEMA_OPT_FLOAT, "0.1", 0.01, 10, NULL,
     "temperature of the coarse-grained NT-Xent terms (official --info_NCE_temperature)"},
    {"cl_weight", TEMA_OPT_FLOAT, "1", 0, 1000, NULL, "weight of the coarse-grained contrastive term (official --cl_weight)"},
    {"triplet_weight", TEMA_OPT_FLOAT, "1", 0, 1000, NULL,
     "weight of the fine-grained triplet term (official --triplet_weight)"},
    {"triplet_margin", TEMA_OPT_FLOAT, "1", 0, 1000, NULL, "margin of the triplet term (official --triplet_margin)"},
    {"rate_mix_source", TEMA_OPT_FLOAT, "1", 0, 1e6, NULL,
     "weight of NT-Xent(mix, source) before the rates are divided by their sum (official --rate_mix_source)"},
    {"rate_mix_target", TEMA_OPT_FLOAT, "1", 0, 1e6, NULL, "weight of NT-Xent(mix, target) (official --rate_mix_target)"},
    {"rate_source_target", TEMA_OPT_FLOAT, "1", 0, 1e6, NULL,
     "weight of NT-Xent(source, target) (official --rate_source_target)"},
};

enum { TC_M = TEMA_SEQ_MERGED, TC_X = TEMA_SEQ_X, TC_Y = TEMA_SEQ_Y };
enum { TC_MIX = 0, TC_SRC = 1, TC_TGT = 2 }; /* roles of a fact set in the TCA and the TCL */

/* The masked entries of NT-Xent's logits (a row against itself): exp() of it is 0. */
#define TC_SELF_LOGIT -1e9f
/* torch's pairwise_distance adds this to the difference (TripletMarginLoss eps) */
#define TC_TRIPLET_EPS 1e-6f
#define TC_LEAKY_SLOPE 0.01f /* torch.nn.LeakyReLU() */
#define TC_PRELU_INIT 0.25f  /* torch.nn.PReLU() */

/* The official model's own parameters, one set per target domain. */
typedef struct tc_head {
    tema_tensor *att_w[3], *att_b[3]; /* TCA MLP: [h1, 5d], [h2, h1], [1, h2] and biases */
    tema_tensor *prelu[2];            /* [1] each: a - 0.25 (the store has no constant init; Adam moves a
                                         shifted weight exactly as the weight itself) */
    tema_tensor *fuse_w[2], *fuse_b[2]; /* log_feat_map1 [d, 3d], log_feat_map2 [d, d] */
    tema_tensor *proj_w[3][2], *proj_b[3][2]; /* map_{mix,source,target}_cl1_layer{1,2}: [d, d] */
} tc_head;

/* One fact set of a TCA: h [B*Lf, d], the j-th fact of sequence b at merged position
 * time[b*Lf + j] (-1: padding). */
typedef struct tc_facts {
    tema_tensor *h;
    int64_t Lf;
    const int32_t *time;
} tc_facts;

/* One step's per-direction tensors that the three attentions share. */
typedef struct tc_din_step {
    tema_tensor *w_fact, *w_fq;   /* W_f - W_d [h1, d], W_fq [h1, d] */
    tema_tensor *row_term;        /* (W_q + W_d) q + W_m m + b1: [B*L, h1] */
    tema_tensor *q;               /* [B*L, d] */
    tema_tensor *prelu_coef[2];   /* 1 - a: [h1], [h2] */
} tc_din_step;

typedef struct tc_config {
    tb_config tb;
    int64_t h1, h2;
    double logit_scale, cl_temp, cl_weight, triplet_weight, triplet_margin, rate[3];
} tc_config;

typedef struct tc_model {
    const tema_host *host;
    int32_t n_x, n_y, max_len;
    int64_t d;
    tc_config c;
    float rate_norm[3];                 /* rates / their sum (0 when cl_weight is 0) */
    tb_stack enc[3];                    /* by tema_seq_kind */
    tema_tensor *emb[3];                /* [TC_X] [n_x, d], [TC_Y] [n_y, d]; [TC_M] NULL (the encoder's) */
    tc_head head[2];                    /* [0]: target X, [1]: target Y */
    int32_t *block_ids[2];              /* [n]: X (Y-local) row of item j for the X (Y) block, else -1 */
    /* one step's state, forward() -> aux_loss() */
    const tema_graph *step_g;
    const int32_t *step_seq;
    int64_t B, L;
    tema_tensor *h_seq[3];              /* stack outputs: [TC_M] [B*L, d], [TC_X] / [TC_Y] [B*Lc, d] or NULL */
    tema_tensor *tca[2][3];             /* by direction and role: [B*L, d] */
    /* host scratch (grown, never shrunk) */
    tb_scratch scratch;
    ss_layout lay[3];                   /* [TC_X], [TC_Y] used */
    int32_t *pos_m, *ids_y, *pair_row, *pair_fact, *dense, *zeros, *last_rows, *partner, *iota;
    uint8_t *mask;
    float *mean_w, *ones, *self_mask, *consts;
    size_t pos_cap, ids_y_cap, pair_row_cap, pair_fact_cap, dense_cap, zeros_cap, last_rows_cap, partner_cap, iota_cap,
        mask_cap, mean_w_cap, ones_cap, self_mask_cap, consts_cap;
} tc_model;

static void tc_destroy(void *self)
{
    tc_model *a = self;
    if (!a) return;
    free(a->scratch.mask);
    for (int q = 0; q < 3; q++) ss_layout_free(&a->lay[q]);
    for (int k = 0; k < 2; k++) free(a->block_ids[k]);
    void *bufs[] = {a->pos_m, a->ids_y, a->pair_row, a->pair_fact, a->dense, a->zeros, a->last_rows, a->partner,
                    a->iota, a->mask, a->mean_w, a->ones, a->self_mask, a->consts};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(a);
}

/* ---------------- options ---------------- */

/* Every option first (a missing one is the caller's bug, whatever else is wrong). */
static tema_status tc_read_config(const tema_host *host, const tema_cfg *opts, tc_config *c, tema_err *err)
{
    static const char *const rates[3] = {"rate_mix_source", "rate_mix_target", "rate_source_target"};
    const char *w = "attention tricdr", *act;
    tema_status st = tb_read_config(host, opts, "tricdr", &c->tb, err);
    if (st == TEMA_OK) st = plugin_opt_str(host, opts, w, "activation", &act, err);
    if (st == TEMA_OK) st = plugin_opt_int(host, opts, w, "att_hidden_1", &c->h1, err);
    if (st == TEMA_OK) st = plugin_opt_int(host, opts, w, "att_hidden_2", &c->h2, err);
    if (st == TEMA_OK) st = plugin_opt_float(host, opts, w, "logit_scale", &c->logit_scale, err);
    if (st == TEMA_OK) st = plugin_opt_float(host, opts, w, "cl_temperature", &c->cl_temp, err);
    if (st == TEMA_OK) st = plugin_opt_float(host, opts, w, "cl_weight", &c->cl_weight, err);
    if (st == TEMA_OK) st = plugin_opt_float(host, opts, w, "triplet_weight", &c->triplet_weight, err);
    if (st == TEMA_OK) st = plugin_opt_float(host, opts, w, "triplet_margin", &c->triplet_margin, err);
    for (int k = 0; k < 3 && st == TEMA_OK; k++) st = plugin_opt_float(host, opts, w, rates[k], &c->rate[k], err);
    if (st != TEMA_OK) return st;
    c->tb.relu = !strcmp(act, "relu");
    if (!c->tb.relu && strcmp(act, "gelu") != 0)
        return tema_fail(err, TEMA_EINVAL, "attention tricdr: activation must be relu or gelu, got '%s'", act);
    return TEMA_OK;
}

/* The constraints between options (and the encoders) that the option table cannot express:
 * `tema check` runs them before any data is read, create() again with the real widths. */
static tema_status tc_check_config(const tc_config *c, const int64_t *enc_dims, int n_enc, tema_err *err)
{
    if (n_enc != 1)
        return tema_fail(err, TEMA_EINVAL, "attention tricdr: takes exactly one encoder, of modality id (its table is "
                                           "the mixed sequence's item embedding; the S^X / S^Y tables are the "
                                           "plugin's), got %d; hint: model.encoders: [{plugin: id, dim: 64}]", n_enc);
    const int64_t d = enc_dims[0];
    if (d > 0 && d % c->tb.heads != 0)
        return tema_fail(err, TEMA_EINVAL, "attention tricdr: heads (%lld) must divide the width (%lld); hint: set heads "
                                           "to a divisor of the encoder dim", (long long)c->tb.heads, (long long)d);
    const double sum = c->rate[0] + c->rate[1] + c->rate[2];
    if (c->cl_weight > 0 && !(sum > 0))
        return tema_fail(err, TEMA_EINVAL, "attention tricdr: rate_mix_source, rate_mix_target and rate_source_target "
                                           "are all 0 while cl_weight is %g: the coarse-grained term weighs its three "
                                           "NT-Xent terms by rate / (sum of the rates); hint: give one rate > 0 (official "
                                           "1, 1, 1) or set cl_weight: 0", c->cl_weight);
    return TEMA_OK;
}

static tema_status tc_check(const tema_host *host, const tema_cfg *opts, const int64_t *enc_dims, int n_enc,
                            tema_err *err)
{
    tc_config c;
    tema_status st = tc_read_config(host, opts, &c, err);
    return st == TEMA_OK ? tc_check_config(&c, enc_dims, n_enc, err) : st;
}

/* ---------------- create ---------------- */

static tema_status tc_check_setup(const tema_model_info *info, const char *const *enc_mods, tema_err *err)
{
    if (!enc_mods || !enc_mods[0] || strcmp(enc_mods[0], "id") != 0)
        return tema_fail(err, TEMA_EINVAL, "attention tricdr: its encoder must be of modality id, got %s; hint: "
                                           "model.encoders: [{plugin: id, dim: 64}]",
                         enc_mods && enc_mods[0] ? enc_mods[0] : "none");
    if (info->n_x < 1 || info->n_y < 1)
        return tema_fail(err, TEMA_EINVAL, "attention tricdr: needs items in both domains (n_x = %d, n_y = %d)",
                         (int)info->n_x, (int)info->n_y);
    return TEMA_OK;
}

static tema_tensor *tc_param(const tc_model *a, tema_params *p, const char *name, int64_t rows, int64_t cols,
                             tema_init init, float scale, uint32_t flags)
{
    int64_t sh[2] = {rows, cols};
    return a->host->nn->param(p, name, cols ? 2 : 1, sh, init, scale, flags);
}

/* A torch.nn.Linear(in, out) after the official initialisation: weight xavier (the official
 * xavier_normal_ loop; tema's xavier is uniform with the same variance), bias torch's
 * U(+-1/sqrt(in)). */
static bool tc_linear(const tc_model *a, tema_params *p, const char *prefix, int64_t in, int64_t out, tema_tensor **w,
                      tema_tensor **b)
{
    char name[160];
    snprintf(name, sizeof name, "%s.w", prefix);
    *w = tc_param(a, p, name, out, in, TEMA_INIT_XAVIER, 1.0f, 0);
    snprintf(name, sizeof name, "%s.b", prefix);
    *b = tc_param(a, p, name, out, 0, TEMA_INIT_UNIFORM, 1.0f / sqrtf((float)in), TEMA_TENSOR_NO_DECAY);
    return *w && *b;
}

/* The TCA MLP, the fusion and the three projections of target domain `dir`. */
static bool tc_declare_head(tc_model *a, tema_params *p, int dir)
{
    static const char *const role[3] = {"mix", "source", "target"};
    const int64_t d = a->d, in[3] = {5 * d, a->c.h1, a->c.h2}, out[3] = {a->c.h1, a->c.h2, 1};
    tc_head *h = &a->head[dir];
    char name[160];
    bool ok = true;
    for (int l = 0; l < 3 && ok; l++) {
        snprintf(name, sizeof name, "attention.tricdr.tgt_%s.att%d", ss_seq_names[dir + 1], l + 1);
        ok = tc_linear(a, p, name, in[l], out[l], &h->att_w[l], &h->att_b[l]);
    }
    for (int l = 0; l < 2 && ok; l++) {
        snprintf(name, sizeof name, "attention.tricdr.tgt_%s.prelu%d", ss_seq_names[dir + 1], l + 1);
        ok = (h->prelu[l] = tc_param(a, p, name, 1, 0, TEMA_INIT_ZEROS, 1.0f, TEMA_TENSOR_NO_DECAY)) != NULL;
    }
    for (int l = 0; l < 2 && ok; l++) {
        snprintf(name, sizeof name, "attention.tricdr.tgt_%s.fuse%d", ss_seq_names[dir + 1], l + 1);
        ok = tc_linear(a, p, name, l == 0 ? 3 * d : d, d, &h->fuse_w[l], &h->fuse_b[l]);
    }
    for (int r = 0; r < 3 && ok; r++)
        for (int l = 0; l < 2 && ok; l++) {
            snprintf(name, sizeof name, "attention.tricdr.tgt_%s.proj_%s%d", ss_seq_names[dir + 1], role[r], l + 1);
            ok = tc_linear(a, p, name, d, d, &h->proj_w[r][l], &h->proj_b[r][l]);
        }
    return ok;
}

static tema_status tc_declare(tc_model *a, const tema_model_info *info, tema_err *err)
{
    static const char *const prefix[3] = {"attention.tricdr.enc_mix", "attention.tricdr.enc_x", "attention.tricdr.enc_y"};
    tema_params *p = info->params;
    tema_status st = TEMA_OK;
    for (int q = 0; q < 3 && st == TEMA_OK; q++)
        st = tb_declare(&a->enc[q], a->host, p, prefix[q], a->d, info->max_len, &a->c.tb, "tricdr", err);
    if (st != TEMA_OK) return st;
    /* the official xavier_normal_ of the [n + 1, d] tables (before the pretrained SASRec
     * weights replace them), as tema's xavier over each domain's rows */
    bool ok = (a->emb[TC_X] = tc_param(a, p, "attention.tricdr.items_x", a->n_x, a->d, TEMA_INIT_XAVIER, 1.0f, 0)) &&
              (a->emb[TC_Y] = tc_param(a, p, "attention.tricdr.items_y", a->n_y, a->d, TEMA_INIT_XAVIER, 1.0f, 0));
    for (int dir = 0; dir < 2 && ok; dir++) ok = tc_declare_head(a, p, dir);
    if (!ok) return tema_fail(err, TEMA_ENOMEM, "attention tricdr: cannot declare the parameters");
    const int64_t n = (int64_t)a->n_x + a->n_y;
    for (int k = 0; k < 2; k++) {
        if (!(a->block_ids[k] = malloc((size_t)n * sizeof(int32_t))))
            return tema_fail(err, TEMA_ENOMEM, "attention tricdr: out of memory");
        for (int64_t j = 0; j < n; j++)
            a->block_ids[k][j] = (j >= a->n_x) != (k == 1) ? -1 : (int32_t)(k == 1 ? j - a->n_x : j);
    }
    return TEMA_OK;
}

static tema_status tc_create(const tema_model_info *info, const tema_cfg *opts, const int64_t *enc_dims,
                             const char *const *enc_mods, int n_enc, void **self, tema_err *err)
{
    const tema_host *host = info->host;
    tc_config c;
    tema_status st = tc_read_config(host, opts, &c, err);
    if (st == TEMA_OK) st = tc_check_config(&c, enc_dims, n_enc, err);
    if (st == TEMA_OK) st = tc_check_setup(info, enc_mods, err);
    if (st != TEMA_OK) return st;
    if (enc_dims[0] < 1) return tema_fail(err, TEMA_EINVAL, "attention tricdr: encoder dim must be positive");
    tc_model *a = calloc(1, sizeof *a);
    if (!a) return tema_fail(err, TEMA_ENOMEM, "attention tricdr: out of memory");
    *a = (tc_model){.host = host, .n_x = info->n_x, .n_y = info->n_y, .max_len = info->max_len, .d = enc_dims[0], .c = c};
    const double sum = c.rate[0] + c.rate[1] + c.rate[2];
    for (int k = 0; k < 3; k++) a->rate_norm[k] = sum > 0 ? (float)(c.rate[k] / sum) : 0.0f;
    st = tc_declare(a, info, err);
    if (st != TEMA_OK) {
        tc_destroy(a);
        return st;
    }
    *self = a;
    return TEMA_OK;
}

/* ---------------- forward: the three encoders ---------------- */

#define NN_CHECK(x)                                                                                 \
    do {                                                                                            \
        if (!(x)) return tema_fail(err, TEMA_EINTERNAL, "attention tricdr: %s", nn->error(g));     \
    } while (0)

/* Positions are the merged window's (right-aligned as in `single`; seq_streams.h says why S^X /
 * S^Y items take their merged position too); lay[X / Y]: the compact per-domain layouts. */
static tema_status tc_layouts(tc_model *a, const tema_batch *b, tema_err *err)
{
    const int64_t B = b->B, L = b->L;
    if (!tb_grow((void **)&a->pos_m, &a->pos_cap, (size_t)(B * L > 0 ? B * L : 1) * sizeof(int32_t)))
        return tema_fail(err, TEMA_ENOMEM, "attention tricdr: out of memory");
    for (int64_t i = 0; i < B * L; i++) a->pos_m[i] = b->seq[i] >= 0 ? (int32_t)(i % L) : -1;
    for (int q = TC_X; q <= TC_Y; q++) {
        tema_status st = ss_build_layout(&a->lay[q], b, q, a->n_x, "tricdr", err);
        if (st != TEMA_OK) return st;
    }
    const ss_layout *ly = &a->lay[TC_Y]; /* E_Y's rows are Y-local */
    if (!tb_grow((void **)&a->ids_y, &a->ids_y_cap, (size_t)(B * ly->Lc > 0 ? B * ly->Lc : 1) * sizeof(int32_t)))
        return tema_fail(err, TEMA_ENOMEM, "attention tricdr: out of memory");
    for (int64_t i = 0; i < B * ly->Lc; i++) a->ids_y[i] = ly->ids[i] >= 0 ? ly->ids[i] - a->n_x : -1;
    return TEMA_OK;
}

static tema_status tc_encode(tc_model *a, tema_graph *g, const tema_batch *b, tema_tensor *items, tema_err *err)
{
    const tema_nn_api *nn = a->host->nn;
    const float in_scale = sqrtf((float)a->d); /* SASRec's item_emb * sqrt(d) */
    tema_status st = tb_forward(&a->enc[TC_M], nn, g, &a->scratch, items, in_scale, b->seq, a->pos_m, b->B, b->L,
                                &a->h_seq[TC_M], "tricdr", err);
    for (int q = TC_X; q <= TC_Y && st == TEMA_OK; q++) {
        const ss_layout *l = &a->lay[q];
        a->h_seq[q] = NULL;
        if (l->Lc > 0)
            st = tb_forward(&a->enc[q], nn, g, &a->scratch, a->emb[q], in_scale, q == TC_Y ? a->ids_y : l->ids, l->pos,
                            b->B, l->Lc, &a->h_seq[q], "tricdr", err);
    }
    return st;
}

/* A [n] tensor of value v (tensor() copies a->consts, so the buffer is free again after). */
static tema_tensor *tc_const(tc_model *a, tema_graph *g, int64_t n, float v)
{
    if (!tb_grow((void **)&a->consts, &a->consts_cap, (size_t)(n > 0 ? n : 1) * sizeof(float))) return NULL;
    for (int64_t i = 0; i < n; i++) a->consts[i] = v;
    return a->host->nn->tensor(g, 1, &n, a->consts);
}

/* The zero state of a fact set without facts: [B*L, d] zeros. */
static tema_tensor *tc_zeros(tc_model *a, tema_graph *g)
{
    int64_t sh[2] = {a->B * a->L, a->d};
    return a->host->nn->tensor(g, 2, sh, NULL);
}

/* m: the mean of the merged states at or before each row (the official mix_attn):
 * [B, L, L] row weights (1 / count over the non-padding positions <= p) times h_M. */
static tema_tensor *tc_mix_mean(tc_model *a, tema_graph *g, const int32_t *seq)
{
    const tema_nn_api *nn = a->host->nn;
    const int64_t B = a->B, L = a->L, d = a->d;
    if (!tb_grow((void **)&a->mean_w, &a->mean_w_cap, (size_t)(B * L * L > 0 ? B * L * L : 1) * sizeof(float)))
        return NULL;
    for (int64_t b = 0; b < B; b++)
        for (int64_t p = 0; p < L; p++) {
            float *w = a->mean_w + (b * L + p) * L;
            int64_t cnt = 0;
            for (int64_t k = 0; k <= p; k++) cnt += seq[b * L + k] >= 0;
            for (int64_t k = 0; k < L; k++) w[k] = k <= p && seq[b * L + k] >= 0 ? 1.0f / (float)cnt : 0.0f;
        }
    int64_t ws[3] = {B, L, L}, hs[3] = {B, L, d}, os[2] = {B * L, d};
    tema_tensor *w = nn->tensor(g, 3, ws, a->mean_w);
    tema_tensor *h = w ? nn->reshape(g, a->h_seq[TC_M], 3, hs) : NULL;
    tema_tensor *m = h ? nn->matmul(g, w, false, h, false) : NULL;
    return m ? nn->reshape(g, m, 2, os) : NULL;
}

/* ---------------- forward: the triple cross-domain attention ---------------- */

/* The (row, fact) pairs of one fact set: fact j of sequence b serves merged row r = b*L + p
 * when it happened at or before p. pair_row / pair_fact list them row by row; dense[r*Lf + j]
 * is the pair's index (-1: none) and mask the same as 0/1. Returns the number of pairs, or -1
 * when out of memory. */
static int64_t tc_pairs(tc_model *a, const tc_facts *f)
{
    const int64_t B = a->B, L = a->L, Lf = f->Lf, nd = B * L * Lf;
    const size_t cap = (size_t)(nd > 0 ? nd : 1);
    if (!tb_grow((void **)&a->pair_row, &a->pair_row_cap, cap * sizeof(int32_t)) ||
        !tb_grow((void **)&a->pair_fact, &a->pair_fact_cap, cap * sizeof(int32_t)) ||
        !tb_grow((void **)&a->dense, &a->dense_cap, cap * sizeof(int32_t)) ||
        !tb_grow((void **)&a->mask, &a->mask_cap, cap))
        return -1;
    int64_t n = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t p = 0; p < L; p++) {
            const int64_t r = b * L + p;
            for (int64_t j = 0; j < Lf; j++) {
                const int32_t t = f->time[b * Lf + j];
                const bool on = t >= 0 && t <= p;
                a->dense[r * Lf + j] = on ? (int32_t)n : -1;
                a->mask[r * Lf + j] = on;
                if (!on) continue;
                a->pair_row[n] = (int32_t)r;
                a->pair_fact[n++] = (int32_t)(b * Lf + j);
            }
        }
    return n;
}

/* torch.nn.PReLU with one weight a: x + (1 - a) relu(-x); coef = 1 - a, broadcast. */
static tema_tensor *tc_prelu(const tema_nn_api *nn, tema_graph *g, tema_tensor *x, tema_tensor *coef)
{
    tema_tensor *neg = nn->relu(g, nn->scale(g, x, -1.0f));
    return neg ? nn->add(g, x, nn->mul(g, neg, coef)) : NULL;
}

/* softmax over each row's facts of the scores s [P, 1] (dense layout from tc_pairs), then
 * the weighted sum of the facts: [B*L, d]. */
static tema_tensor *tc_pool(tc_model *a, tema_graph *g, tema_tensor *s, const tc_facts *f)
{
    const tema_nn_api *nn = a->host->nn;
    const int64_t B = a->B, L = a->L, Lf = f->Lf, d = a->d;
    int64_t s2[2] = {B * L, Lf}, s3[3] = {B, L, Lf}, f3[3] = {B, Lf, d}, o2[2] = {B * L, d};
    tema_tensor *w = nn->embedding(g, s, a->dense, B * L * Lf);
    w = w ? nn->reshape(g, w, 2, s2) : NULL;
    w = w ? nn->softmax(g, w, a->mask, false) : NULL;
    w = w ? nn->reshape(g, w, 3, s3) : NULL;
    tema_tensor *fh = w ? nn->reshape(g, f->h, 3, f3) : NULL;
    tema_tensor *o = fh ? nn->matmul(g, w, false, fh, false) : NULL;
    return o ? nn->reshape(g, o, 2, o2) : NULL;
}

/* One attention of the TCA (DINAttentionLayer_withmixattn) over fact set f: [B*L, d]. */
static tema_status tc_din(tc_model *a, tema_graph *g, const tc_head *h, const tc_din_step *s, const tc_facts *f,
                          tema_tensor **out, tema_err *err)
{
    const tema_nn_api *nn = a->host->nn;
    const int64_t P = f->h ? tc_pairs(a, f) : 0;
    if (P < 0) return tema_fail(err, TEMA_ENOMEM, "attention tricdr: out of memory for the attention pairs");
    if (P == 0) {
        NN_CHECK(*out = tc_zeros(a, g));
        return TEMA_OK;
    }
    tema_tensor *fact_term = nn->linear(g, f->h, s->w_fact, NULL); /* [B*Lf, h1] */
    NN_CHECK(fact_term);
    tema_tensor *gf = nn->gather_rows(g, f->h, a->pair_fact, P), *gq = nn->gather_rows(g, s->q, a->pair_row, P);
    NN_CHECK(gf && gq);
    tema_tensor *z = nn->linear(g, nn->mul(g, gf, gq), s->w_fq, NULL);
    NN_CHECK(z);
    NN_CHECK(z = nn->add(g, z, nn->gather_rows(g, fact_term, a->pair_fact, P)));
    NN_CHECK(z = nn->add(g, z, nn->gather_rows(g, s->row_term, a->pair_row, P)));
    NN_CHECK(z = tc_prelu(nn, g, z, s->prelu_coef[0]));
    NN_CHECK(z = nn->linear(g, z, h->att_w[1], h->att_b[1]));
    NN_CHECK(z = tc_prelu(nn, g, z, s->prelu_coef[1]));
    NN_CHECK(z = nn->linear(g, z, h->att_w[2], h->att_b[2])); /* [P, 1] */
    NN_CHECK(*out = tc_pool(a, g, z, f));
    return TEMA_OK;
}

/* 1 - a of one PReLU (a = TC_PRELU_INIT + the stored shift), as [n] copies (broadcast over the
 * last dim). */
static tema_tensor *tc_prelu_coef(tc_model *a, tema_graph *g, tema_tensor *shift, int64_t n)
{
    const tema_nn_api *nn = a->host->nn;
    if (!tb_grow((void **)&a->zeros, &a->zeros_cap, (size_t)n * sizeof(int32_t))) return NULL;
    memset(a->zeros, 0, (size_t)n * sizeof(int32_t));
    tema_tensor *base = tc_const(a, g, n, 1.0f - TC_PRELU_INIT), *w = nn->gather_rows(g, shift, a->zeros, n);
    return base && w ? nn->add(g, nn->scale(g, w, -1.0f), base) : NULL;
}

/* What the three attentions of direction dir share this step: the query, the split first
 * layer ([f, q, f*q, q - f, m] W^T = f (W_f - W_d)^T + q (W_q + W_d)^T + (f*q) W_fq^T + m W_m^T)
 * and the PReLU coefficients. */
static tema_status tc_din_prepare(tc_model *a, tema_graph *g, int dir, tema_tensor *m, tc_din_step *s, tema_err *err)
{
    const tema_nn_api *nn = a->host->nn;
    const tc_head *h = &a->head[dir];
    const int q_kind = dir == 0 ? TC_X : TC_Y;
    const int64_t d = a->d, BL = a->B * a->L;
    tema_tensor *wb[5];
    for (int k = 0; k < 5; k++) NN_CHECK(wb[k] = nn->slice(g, h->att_w[0], k * d, d)); /* f, q, f*q, q-f, m */
    NN_CHECK(s->w_fact = nn->add(g, wb[0], nn->scale(g, wb[3], -1.0f)));
    tema_tensor *w_q = nn->add(g, wb[1], wb[3]);
    NN_CHECK(w_q);
    s->w_fq = wb[2];
    s->q = a->h_seq[q_kind] ? nn->embedding(g, a->h_seq[q_kind], a->lay[q_kind].row, BL) : tc_zeros(a, g);
    NN_CHECK(s->q);
    tema_tensor *rt = nn->linear(g, s->q, w_q, h->att_b[0]);
    NN_CHECK(rt);
    NN_CHECK(s->row_term = nn->add(g, rt, nn->linear(g, m, wb[4], NULL)));
    NN_CHECK(s->prelu_coef[0] = tc_prelu_coef(a, g, h->prelu[0], a->c.h1));
    NN_CHECK(s->prelu_coef[1] = tc_prelu_coef(a, g, h->prelu[1], a->c.h2));
    return TEMA_OK;
}

/* TCA and fusion of direction dir: a->tca[dir][*] and *out = h_T [B*L, d]. */
static tema_status tc_direction(tc_model *a, tema_graph *g, int dir, tema_tensor *m, tema_tensor **out, tema_err *err)
{
    const tema_nn_api *nn = a->host->nn;
    const tc_head *h = &a->head[dir];
    const int tgt = dir == 0 ? TC_X : TC_Y, src = dir == 0 ? TC_Y : TC_X;
    tc_din_step s = {0};
    tema_status st = tc_din_prepare(a, g, dir, m, &s, err);
    const tc_facts facts[3] = {
        [TC_MIX] = {a->h_seq[TC_M], a->L, a->pos_m},
        [TC_SRC] = {a->h_seq[src], a->lay[src].Lc, a->lay[src].pos},
        [TC_TGT] = {a->h_seq[tgt], a->lay[tgt].Lc, a->lay[tgt].pos},
    };
    for (int r = 0; r < 3 && st == TEMA_OK; r++) st = tc_din(a, g, h, &s, &facts[r], &a->tca[dir][r], err);
    if (st != TEMA_OK) return st;
    tema_tensor *f = nn->linear(g, nn->concat(g, a->tca[dir], 3), h->fuse_w[0], h->fuse_b[0]);
    NN_CHECK(f);
    /* LeakyReLU(x) = (1 - slope) relu(x) + slope x */
    NN_CHECK(f = nn->add(g, nn->scale(g, nn->relu(g, f), 1.0f - TC_LEAKY_SLOPE), nn->scale(g, f, TC_LEAKY_SLOPE)));
    NN_CHECK(*out = nn->linear(g, f, h->fuse_w[1], h->fuse_b[1]));
    return TEMA_OK;
}

/* The one stream: [l2(h_X), l2(h_Y)] against [l2(E_X) 1_X, l2(E_Y) 1_Y], times logit_scale. */
static tema_status tc_stream(tc_model *a, tema_graph *g, tema_tensor *const *h_dir, tema_stream *stream, tema_err *err)
{
    const tema_nn_api *nn = a->host->nn;
    const int64_t n = (int64_t)a->n_x + a->n_y;
    tema_tensor *hs[2], *ws[2];
    for (int k = 0; k < 2; k++) {
        NN_CHECK(hs[k] = nn->l2norm(g, h_dir[k], SS_NORM_EPS));
        tema_tensor *e = nn->l2norm(g, a->emb[k == 0 ? TC_X : TC_Y], SS_NORM_EPS);
        NN_CHECK(e);
        NN_CHECK(ws[k] = nn->embedding(g, e, a->block_ids[k], n));
    }
    tema_tensor *h = nn->concat(g, hs, 2), *w = nn->concat(g, ws, 2);
    NN_CHECK(h && w);
    *stream = (tema_stream){.h = h, .items = w, .weight = 1.0f, .inv_temp = (float)a->c.logit_scale,
                            .sequence = TEMA_SEQ_MERGED};
    return TEMA_OK;
}

static tema_status tc_forward(void *self, tema_graph *g, const tema_batch *b, tema_tensor *const *items, int n_enc,
                              tema_stream *streams, int *n_streams, tema_err *err)
{
    tc_model *a = self;
    const tema_nn_api *nn = a->host->nn;
    a->step_g = NULL;
    if (n_enc != 1 || !items[0] || items[0]->ndim != 2 || items[0]->shape[1] != a->d ||
        items[0]->shape[0] != (int64_t)a->n_x + a->n_y)
        return tema_fail(err, TEMA_EINVAL, "attention tricdr: needs the one id encoder's [%d, %lld] table",
                         (int)(a->n_x + a->n_y), (long long)a->d);
    if (b->L < 1 || b->L > a->max_len)
        return tema_fail(err, TEMA_EINVAL, "attention tricdr: batch length %d outside [1, max_len %d]", (int)b->L,
                         (int)a->max_len);
    a->B = b->B;
    a->L = b->L;
    tema_status st = tc_layouts(a, b, err);
    if (st == TEMA_OK) st = tc_encode(a, g, b, items[0], err);
    if (st != TEMA_OK) return st;
    tema_tensor *m = tc_mix_mean(a, g, b->seq), *h_dir[2];
    NN_CHECK(m);
    for (int dir = 0; dir < 2 && st == TEMA_OK; dir++) st = tc_direction(a, g, dir, m, &h_dir[dir], err);
    if (st == TEMA_OK) st = tc_stream(a, g, h_dir, &streams[0], err);
    if (st != TEMA_OK) return st;
    *n_streams = 1;
    a->step_g = g;
    a->step_seq = b->seq;
    return TEMA_OK;
}

/* ---------------- aux_loss: triple contrastive learning ---------------- */

/* SimCLR's NT-Xent (the official NTXentLoss): rows of x and y L2-normalised, stacked as
 * x_0, y_0, x_1, y_1, ..., each row's positive is its partner, its negatives the other 2n - 2
 * rows; mean over the 2n rows of -log softmax. */
static tema_tensor *tc_ntxent(tc_model *a, tema_graph *g, tema_tensor *x, tema_tensor *y, int64_t n)
{
    const tema_nn_api *nn = a->host->nn;
    const int64_t n2 = 2 * n;
    if (!tb_grow((void **)&a->self_mask, &a->self_mask_cap, (size_t)(n2 * n2) * sizeof(float)) ||
        !tb_grow((void **)&a->partner, &a->partner_cap, (size_t)n2 * sizeof(int32_t)))
        return NULL;
    for (int64_t i = 0; i < n2; i++) {
        for (int64_t j = 0; j < n2; j++) a->self_mask[i * n2 + j] = i == j ? TC_SELF_LOGIT : 0.0f;
        a->partner[i] = (int32_t)(i ^ 1);
    }
    tema_tensor *zs[2] = {nn->l2norm(g, x, SS_NORM_EPS), nn->l2norm(g, y, SS_NORM_EPS)};
    if (!zs[0] || !zs[1]) return NULL;
    int64_t zsh[2] = {n2, a->d}, ssh[2] = {n2, n2};
    tema_tensor *z = nn->reshape(g, nn->concat(g, zs, 2), 2, zsh);
    tema_tensor *s = z ? nn->scale(g, nn->matmul(g, z, false, z, true), (float)(1.0 / a->c.cl_temp)) : NULL;
    tema_tensor *self_mask = s ? nn->tensor(g, 2, ssh, a->self_mask) : NULL;
    s = self_mask ? nn->add(g, s, self_mask) : NULL;
    return s ? nn->cross_entropy(g, s, a->partner) : NULL;
}

/* |x - y + eps| per row ([n]; torch.pairwise_distance): <v, v / |v|>. */
static tema_tensor *tc_distance(tc_model *a, tema_graph *g, tema_tensor *x, tema_tensor *y, tema_tensor *eps, int64_t n)
{
    const tema_nn_api *nn = a->host->nn;
    if (!tb_grow((void **)&a->iota, &a->iota_cap, (size_t)(n > 0 ? n : 1) * sizeof(int32_t))) return NULL;
    for (int64_t i = 0; i < n; i++) a->iota[i] = (int32_t)i;
    tema_tensor *v = nn->add(g, nn->add(g, x, nn->scale(g, y, -1.0f)), eps);
    tema_tensor *u = v ? nn->l2norm(g, v, 1e-12f) : NULL;
    return u ? nn->rowdot(g, v, u, a->iota, 1.0f) : NULL;
}

/* torch's TripletMarginLoss(margin, p = 2): mean max(0, d(anchor, pos) - d(anchor, neg) + margin). */
static tema_tensor *tc_triplet(tc_model *a, tema_graph *g, tema_tensor *anchor, tema_tensor *pos, tema_tensor *neg,
                               int64_t n)
{
    const tema_nn_api *nn = a->host->nn;
    tema_tensor *eps = tc_const(a, g, a->d, TC_TRIPLET_EPS);
    tema_tensor *dp = eps ? tc_distance(a, g, anchor, pos, eps, n) : NULL;
    tema_tensor *dn = dp ? tc_distance(a, g, anchor, neg, eps, n) : NULL;
    tema_tensor *margin = dn ? tc_const(a, g, n, (float)a->c.triplet_margin) : NULL;
    tema_tensor *x = margin ? nn->add(g, nn->add(g, dp, nn->scale(g, dn, -1.0f)), margin) : NULL;
    return x ? nn->mean(g, nn->relu(g, x)) : NULL;
}

/* The sequences that direction dir's TCL sees (listed by their last row in a->last_rows): the
 * item after the window is of the target domain, and the window holds items of both domains. */
static int64_t tc_tcl_rows(tc_model *a, const int32_t *seq, const tema_targets *t, int dir)
{
    const int64_t B = a->B, L = a->L;
    int64_t n = 0;
    for (int64_t i = 0; t && i < t->rows; i++) {
        const int32_t r = t->row_index[i];
        if (r % L != L - 1 || (t->target[i] >= a->n_x) != (dir == 1)) continue;
        bool has[2] = {false, false};
        for (int64_t p = 0; p < L; p++)
            if (seq[r - (L - 1) + p] >= 0) has[seq[r - (L - 1) + p] >= a->n_x] = true;
        if (has[0] && has[1] && r / L < B) a->last_rows[n++] = r;
    }
    return n;
}

/* cl_weight * coarse + triplet_weight * fine of direction dir over its n sequences. */
static tema_tensor *tc_tcl(tc_model *a, tema_graph *g, int dir, int64_t n)
{
    const tema_nn_api *nn = a->host->nn;
    const tc_head *h = &a->head[dir];
    tema_tensor *z[3];
    for (int r = 0; r < 3; r++) {
        tema_tensor *x = nn->gather_rows(g, a->tca[dir][r], a->last_rows, n);
        x = x ? nn->relu(g, nn->linear(g, x, h->proj_w[r][0], h->proj_b[r][0])) : NULL;
        if (!x || !(z[r] = nn->linear(g, x, h->proj_w[r][1], h->proj_b[r][1]))) return NULL;
    }
    tema_tensor *loss = NULL;
    if (a->c.cl_weight > 0) {
        static const int pairs[3][2] = {{TC_MIX, TC_SRC}, {TC_MIX, TC_TGT}, {TC_SRC, TC_TGT}};
        for (int k = 0; k < 3; k++) {
            if (a->rate_norm[k] == 0.0f) continue;
            tema_tensor *c = tc_ntxent(a, g, z[pairs[k][0]], z[pairs[k][1]], n);
            c = c ? nn->scale(g, c, (float)(a->c.cl_weight * a->rate_norm[k])) : NULL;
            if (!c || !(loss = loss ? nn->add(g, loss, c) : c)) return NULL;
        }
    }
    if (a->c.triplet_weight > 0) {
        tema_tensor *f = tc_triplet(a, g, z[TC_SRC], z[TC_MIX], z[TC_TGT], n);
        f = f ? nn->scale(g, f, (float)a->c.triplet_weight) : NULL;
        if (!f || !(loss = loss ? nn->add(g, loss, f) : f)) return NULL;
    }
    return loss;
}

static tema_status tc_aux_loss(void *self, tema_graph *g, const tema_batch *b, const tema_targets *t,
                               tema_tensor **loss, tema_err *err)
{
    tc_model *a = self;
    const tema_nn_api *nn = a->host->nn;
    *loss = NULL;
    if (a->step_g != g || a->step_seq != b->seq || a->B != b->B || a->L != b->L)
        return tema_fail(err, TEMA_EINVAL, "attention tricdr: aux_loss without forward() on this graph and batch");
    if (!(a->c.cl_weight > 0) && !(a->c.triplet_weight > 0)) return TEMA_OK;
    const int64_t B = b->B;
    if (!tb_grow((void **)&a->last_rows, &a->last_rows_cap, (size_t)(B > 0 ? B : 1) * sizeof(int32_t)))
        return tema_fail(err, TEMA_ENOMEM, "attention tricdr: out of memory");
    int64_t n[2];
    for (int dir = 0; dir < 2; dir++) n[dir] = tc_tcl_rows(a, b->seq, t, dir);
    if (n[0] + n[1] == 0) return TEMA_OK;
    for (int dir = 0; dir < 2; dir++) {
        if (n[dir] == 0) continue;
        n[dir] = tc_tcl_rows(a, b->seq, t, dir); /* a->last_rows holds this direction's rows */
        tema_tensor *l = tc_tcl(a, g, dir, n[dir]);
        NN_CHECK(l);
        NN_CHECK(l = nn->scale(g, l, (float)n[dir] / (float)(n[0] + n[1])));
        NN_CHECK(*loss = *loss ? nn->add(g, *loss, l) : l);
    }
    return TEMA_OK;
}

static const tema_attention_ops tc_ops = {.create = tc_create, .forward = tc_forward, .destroy = tc_destroy,
                                          .aux_loss = tc_aux_loss, .check = tc_check};

static const tema_plugin tc_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_ATTENTION, "tricdr", "1.0.0",
                       "Tri-CDR: three SASRec encoders, triple cross-domain attention, triple contrastive learning "
                       "(Ma et al. 2024)",
                       tc_options, tc_ops)};
TEMA_PLUGIN_DEFINE(tc_plugin)
