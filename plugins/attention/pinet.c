/* plugins/attention/pinet.c - pi-Net (Ma et al., "pi-Net: A Parallel Information-sharing Network
 * for Shared-account Cross-domain Sequential Recommendations", SIGIR 2019), after its official
 * TensorFlow code (github.com/mamuyang/PINet, PiNet.py and Train2.py). Domain X is the code's A,
 * Y its B.
 *
 * For each domain D (O the other one), over D's own items in time order:
 *
 *   sequence encoder   e_D = GRU_D(E[S^D])           (E: the encoder's table, X rows and Y rows)
 *   filter (SFU)       f_D = Filter_D([e_D ; a_D])   a_D at D's k-th item: e_O after the last O item
 *                                                    before it, 0 before the first (official pos_A/B)
 *   transfer (CTU)     t_D = GRU'_D(f_D)
 *   hybrid decoder     logits over X items = W_X [t_Y ; e_X] + b_X,  over Y items = W_Y [t_X ; e_Y] + b_Y
 *
 * Every recurrent unit is `layers` cells stacked (MultiRNNCell), each wrapped like the official
 * DropoutWrapper: dropout on its input sequence, on the state passed to the next step and, with
 * another mask, on its output sequence (what the next layer or unit reads); the decoder reads the
 * (state-dropped) states and drops its input once more. Cells:
 *
 *   GRU (TF GRUCell):  [r, u] = sigmoid([x ; s] W_g + b_g)   c = tanh([x ; r*s] W_c + b_c)
 *                      s' = u*s + (1-u)*c                      (b_g starts at 1, b_c at 0)
 *   filter (FilterCell, K = `members` latent users r_k [K, e] per filter):
 *                      u_k = r_k V_f     g = [x ; s] W_f + b_f     c0 = [x_1 ; s] W_s + b_s
 *                      s'  = 1/K sum_k ( sigmoid(g + u_k) * s + (1 - sigmoid(g + u_k)) * tanh(c0 + u_k) )
 *                      x_1 = the first half of x (in the first layer x = [e_D ; a_D], so x_1 = e_D);
 *                      one state s, the members' mean; the candidate adds u_k, the gate's member
 *                      term, as the official code does (its V_s is never used, so not declared).
 *
 * The weights of [x ; s] are kept as two matrices (input part, state part): the input parts of
 * every step are one matrix product before the recurrence. Kernels start U(+-sqrt(6 / fan)) with
 * fan = fan_in + fan_out of the official matrix (TF's xavier normal has the same variance).
 *
 * Streams. The trainer and the evaluator ask for a state per merged row p (the item after p is
 * the target): the X-domain features there are [t_Y ; e_X] with each sequence's state after its
 * last item at or before p (0 before its first), Y's [t_X ; e_Y]. One stream scores both domains:
 *   h' = [dropout([t_Y ; e_X ; t_X ; e_Y]), 1]   against   items' = [W_X row | 0 | b] (X items),
 *                                                                   [0 | W_Y row | b] (Y items),
 * so <h'[p], items'[j]> is the official logit of j and the softmax over j's domain its CE.
 * A state at row p never sees a later item: each unit runs over its domain's items in time order
 * and the alignment takes the other domain's state from before the item.
 *
 * What differs from the official code is listed in the README (pi-Net). */
#include "seq_streams.h"

#define PN_MAX_LAYERS 8
#define PN_MAX_MEMBERS 64

static const tema_option pn_options[] = {
    {"hidden", TEMA_OPT_INT, "100", 1, 4096, NULL, "width of every recurrent state (official hidden_size)"},
    {"members", TEMA_OPT_INT, "4", 1, PN_MAX_MEMBERS, NULL,
     "latent users per shared account in each filter (official num_members)"},
    {"layers", TEMA_OPT_INT, "1", 1, PN_MAX_LAYERS, NULL,
     "stacked cells in every encoder, filter and transfer unit (official num_layers); above 1 the hidden width "
     "must be even"},
    {"dropout", TEMA_OPT_FLOAT, "0.2", 0, 0.95, NULL,
     "dropout of every cell's input, state and output and of the decoder input (official 1 - keep_prob)"},
};

typedef struct pn_gru { /* one GRU layer; official gate / candidate kernels split by input and state */
    tema_tensor *wx_g, *ws_g, *b_g, *wx_c, *ws_c, *b_c;
} pn_gru;

typedef struct pn_sfu { /* one filter layer (official W_f, V_f, b_f, W_s, b_s) */
    tema_tensor *wx_f, *ws_f, *v_f, *b_f, *wx_s, *ws_s, *b_s;
    int64_t in;
} pn_sfu;

typedef struct pn_seq { /* one unit's result over a domain's compact layout, [B*Lc, h] each */
    tema_tensor *out;   /* output-dropped outputs: what the next layer or unit reads */
    tema_tensor *state; /* state-dropped states: what the decoder reads */
} pn_seq;

typedef struct pn_model {
    const tema_host *host;
    int32_t n_x, n_y, max_len;
    int64_t e, h, members, layers;
    float dropout;
    pn_gru enc[2][PN_MAX_LAYERS], ctu[2][PN_MAX_LAYERS]; /* by domain (0 = X) and layer */
    pn_sfu sfu[2][PN_MAX_LAYERS];
    tema_tensor *member[2];  /* [K, e]: each filter's latent users */
    tema_tensor *out_w[2];   /* [n_x, 2h], [n_y, 2h]: the decoders' kernels, one row per item */
    tema_tensor *out_b;      /* [n, 1] */
    int32_t *out_ids[2];     /* [n]: the row of out_w[D] of each global item, -1 for the other domain */
    /* host scratch (grown, never shrunk; the graph copies what it keeps) */
    ss_layout lay[2];
    int32_t *idx, *align;
    uint8_t *keep;
    float *ones;
    tema_tensor **outs, **states;
    size_t idx_cap, align_cap, keep_cap, ones_cap, outs_cap, states_cap;
} pn_model;

static void pn_destroy(void *self)
{
    pn_model *a = self;
    if (!a) return;
    for (int d = 0; d < 2; d++) {
        ss_layout_free(&a->lay[d]);
        free(a->out_ids[d]);
    }
    free(a->idx);
    free(a->align);
    free(a->keep);
    free(a->ones);
    free(a->outs);
    free(a->states);
    free(a);
}

/* ---------------- options ---------------- */

typedef struct pn_config {
    int64_t hidden, members, layers;
    double dropout;
} pn_config;

static tema_status pn_read_config(const tema_host *host, const tema_cfg *opts, pn_config *c, tema_err *err)
{
    const char *w = "attention pinet";
    tema_status st = plugin_opt_int(host, opts, w, "hidden", &c->hidden, err);
    if (st == TEMA_OK) st = plugin_opt_int(host, opts, w, "members", &c->members, err);
    if (st == TEMA_OK) st = plugin_opt_int(host, opts, w, "layers", &c->layers, err);
    if (st == TEMA_OK) st = plugin_opt_float(host, opts, w, "dropout", &c->dropout, err);
    if (st == TEMA_OK && (c->layers < 1 || c->layers > PN_MAX_LAYERS))
        return tema_fail(err, TEMA_EINTERNAL, "attention pinet: layers %lld outside [1, %d]; a bug: the option table's "
                                              "range must be PN_MAX_LAYERS", (long long)c->layers, PN_MAX_LAYERS);
    return st;
}

/* What the option table cannot say: the encoder count and the stacked filter's halves. Run by
 * `tema check` (before any data is read) and by create(). */
static tema_status pn_check_config(const pn_config *c, int n_enc, tema_err *err)
{
    if (n_enc != 1)
        return tema_fail(err, TEMA_EINVAL, "attention pinet: takes exactly one encoder, got %d: its table embeds the "
                                           "items of both sequence encoders (official embedding_matrix_A / _B); hint: "
                                           "model.encoders: [{plugin: id, dim: 100}]",
                         n_enc);
    if (c->layers > 1 && c->hidden % 2 != 0)
        return tema_fail(err, TEMA_EINVAL, "attention pinet: layers = %lld needs an even hidden width, got hidden = "
                                           "%lld: from the second layer on, a filter cell splits its hidden-wide input "
                                           "into two halves (the official stacked FilterCell); hint: hidden: %lld, or "
                                           "layers: 1",
                         (long long)c->layers, (long long)c->hidden, (long long)(c->hidden + 1));
    return TEMA_OK;
}

static tema_status pn_check(const tema_host *host, const tema_cfg *opts, const int64_t *enc_dims, int n_enc,
                            tema_err *err)
{
    (void)enc_dims; /* any encoder width works: the cells map it to `hidden` */
    pn_config c;
    tema_status st = pn_read_config(host, opts, &c, err);
    return st == TEMA_OK ? pn_check_config(&c, n_enc, err) : st;
}

/* ---------------- parameters ---------------- */

/* U(+-bound) with bound = sqrt(6 / fan): the variance 2 / fan of TF's xavier_initializer(uniform=False)
 * for a matrix with fan_in + fan_out = fan. */
static float pn_xavier(int64_t fan) { return sqrtf(6.0f / (float)fan); }

static tema_tensor *pn_param(const tema_model_info *info, const char *unit, const char *field, int64_t rows,
                             int64_t cols, tema_init init, float scale)
{
    char name[128];
    snprintf(name, sizeof name, "attention.pinet.%s.%s", unit, field);
    const int64_t shape[2] = {rows, cols};
    const bool bias = cols == 0;
    return info->host->nn->param(info->params, name, bias ? 1 : 2, shape, init, scale,
                                 bias ? TEMA_TENSOR_NO_DECAY : 0);
}

/* TF GRUCell with input width `in`: gate kernel [in + h, 2h] (bias 1), candidate [in + h, h] (bias 0). */
static bool pn_declare_gru(pn_gru *c, const tema_model_info *info, const char *unit, int64_t in, int64_t h)
{
    const float gate = pn_xavier(in + 3 * h), cand = pn_xavier(in + 2 * h);
    c->wx_g = pn_param(info, unit, "wx_g", 2 * h, in, TEMA_INIT_UNIFORM, gate);
    c->ws_g = pn_param(info, unit, "ws_g", 2 * h, h, TEMA_INIT_UNIFORM, gate);
    c->b_g = pn_param(info, unit, "b_g", 2 * h, 0, TEMA_INIT_ONES, 1);
    c->wx_c = pn_param(info, unit, "wx_c", h, in, TEMA_INIT_UNIFORM, cand);
    c->ws_c = pn_param(info, unit, "ws_c", h, h, TEMA_INIT_UNIFORM, cand);
    c->b_c = pn_param(info, unit, "b_c", h, 0, TEMA_INIT_ZEROS, 1);
    return c->wx_g && c->ws_g && c->b_g && c->wx_c && c->ws_c && c->b_c;
}

/* FilterCell with input width `in`: W_f [in + h, h], V_f [e, h], W_s [in/2 + h, h], biases 1. */
static bool pn_declare_sfu(pn_sfu *c, const tema_model_info *info, const char *unit, int64_t in, int64_t e, int64_t h)
{
    const float gate = pn_xavier(in + 2 * h), cand = pn_xavier(in / 2 + 2 * h);
    c->in = in;
    c->wx_f = pn_param(info, unit, "wx_f", h, in, TEMA_INIT_UNIFORM, gate);
    c->ws_f = pn_param(info, unit, "ws_f", h, h, TEMA_INIT_UNIFORM, gate);
    c->v_f = pn_param(info, unit, "v_f", h, e, TEMA_INIT_UNIFORM, pn_xavier(e + h));
    c->b_f = pn_param(info, unit, "b_f", h, 0, TEMA_INIT_ONES, 1);
    c->wx_s = pn_param(info, unit, "wx_s", h, in / 2, TEMA_INIT_UNIFORM, cand);
    c->ws_s = pn_param(info, unit, "ws_s", h, h, TEMA_INIT_UNIFORM, cand);
    c->b_s = pn_param(info, unit, "b_s", h, 0, TEMA_INIT_ONES, 1);
    return c->wx_f && c->ws_f && c->v_f && c->b_f && c->wx_s && c->ws_s && c->b_s;
}

static tema_status pn_declare(pn_model *a, const tema_model_info *info, tema_err *err)
{
    static const char dom[2] = {'x', 'y'};
    const int64_t e = a->e, h = a->h, n_dom[2] = {a->n_x, a->n_y};
    char unit[64];
    bool ok = true;
    for (int d = 0; d < 2 && ok; d++) {
        for (int64_t l = 0; l < a->layers && ok; l++) {
            snprintf(unit, sizeof unit, "enc_%c.l%lld", dom[d], (long long)l);
            ok = pn_declare_gru(&a->enc[d][l], info, unit, l ? h : e, h);
            snprintf(unit, sizeof unit, "sfu_%c.l%lld", dom[d], (long long)l);
            ok = ok && pn_declare_sfu(&a->sfu[d][l], info, unit, l ? h : 2 * h, e, h);
            snprintf(unit, sizeof unit, "ctu_%c.l%lld", dom[d], (long long)l);
            ok = ok && pn_declare_gru(&a->ctu[d][l], info, unit, h, h);
        }
        snprintf(unit, sizeof unit, "sfu_%c", dom[d]);
        a->member[d] = pn_param(info, unit, "members", a->members, e, TEMA_INIT_UNIFORM, pn_xavier(a->members + e));
        snprintf(unit, sizeof unit, "out_%c", dom[d]);
        a->out_w[d] = pn_param(info, unit, "w", n_dom[d], 2 * h, TEMA_INIT_UNIFORM, pn_xavier(2 * h + n_dom[d]));
        ok = ok && a->member[d] && a->out_w[d];
    }
    const int64_t bs[2] = {n_dom[0] + n_dom[1], 1};
    a->out_b = info->host->nn->param(info->params, "attention.pinet.out.b", 2, bs, TEMA_INIT_ZEROS, 1,
                                     TEMA_TENSOR_NO_DECAY);
    if (!ok || !a->out_b) return tema_fail(err, TEMA_ENOMEM, "attention pinet: cannot declare parameters");
    return TEMA_OK;
}

/* out_ids[D][j]: j's row in out_w[D], -1 for the items of the other domain (embeds to 0). */
static tema_status pn_out_ids(pn_model *a, tema_err *err)
{
    const int32_t n = a->n_x + a->n_y;
    for (int d = 0; d < 2; d++) {
        a->out_ids[d] = malloc((size_t)n * sizeof(int32_t));
        if (!a->out_ids[d]) return tema_fail(err, TEMA_ENOMEM, "attention pinet: out of memory");
        for (int32_t j = 0; j < n; j++) a->out_ids[d][j] = (j >= a->n_x) == d ? j - (d ? a->n_x : 0) : -1;
    }
    return TEMA_OK;
}

static tema_status pn_create(const tema_model_info *info, const tema_cfg *opts, const int64_t *enc_dims,
                             const char *const *enc_modalities, int n_enc, void **self, tema_err *err)
{
    (void)enc_modalities; /* any one table embeds the items: ids (official), or text features */
    pn_config c;
    tema_status st = pn_read_config(info->host, opts, &c, err);
    if (st == TEMA_OK) st = pn_check_config(&c, n_enc, err);
    if (st != TEMA_OK) return st;
    if (enc_dims[0] < 1) return tema_fail(err, TEMA_EINVAL, "attention pinet: encoder dim must be positive");
    if (info->n_x < 1 || info->n_y < 1)
        return tema_fail(err, TEMA_EINVAL, "attention pinet: needs items in both domains (n_x = %d, n_y = %d): it "
                                           "models two parallel domains", (int)info->n_x, (int)info->n_y);
    if (info->max_len < 1)
        return tema_fail(err, TEMA_EINVAL, "attention pinet: max_len must be positive, got %d", (int)info->max_len);
    pn_model *a = calloc(1, sizeof *a);
    if (!a) return tema_fail(err, TEMA_ENOMEM, "attention pinet: out of memory");
    a->host = info->host;
    a->n_x = info->n_x;
    a->n_y = info->n_y;
    a->max_len = info->max_len;
    a->e = enc_dims[0];
    a->h = c.hidden;
    a->members = c.members;
    a->layers = c.layers;
    a->dropout = (float)c.dropout;
    st = pn_declare(a, info, err);
    if (st == TEMA_OK) st = pn_out_ids(a, err);
    if (st != TEMA_OK) {
        pn_destroy(a);
        return st;
    }
    *self = a;
    return TEMA_OK;
}

/* ---------------- forward: the recurrent units ---------------- */

#define NN_CHECK(x)                                                                                 \
    do {                                                                                            \
        if (!(x)) return tema_fail(err, TEMA_EINTERNAL, "attention pinet: %s", nn->error(g));      \
    } while (0)

/* One step of a GRU layer: xg_t [B, 2h] and xc_t [B, h] are the input terms (bias included). */
static tema_tensor *pn_gru_step(const pn_model *a, tema_graph *g, const pn_gru *c, tema_tensor *xg_t,
                                tema_tensor *xc_t, tema_tensor *s)
{
    const tema_nn_api *nn = a->host->nn;
    const int64_t h = a->h;
    tema_tensor *ru = nn->sigmoid(g, nn->add(g, xg_t, nn->linear(g, s, c->ws_g, NULL)));
    tema_tensor *r = nn->slice(g, ru, 0, h), *u = nn->slice(g, ru, h, h);
    tema_tensor *cand = nn->tanh(g, nn->add(g, xc_t, nn->linear(g, nn->mul(g, r, s), c->ws_c, NULL)));
    return nn->add(g, cand, nn->mul(g, u, nn->add(g, s, nn->scale(g, cand, -1.0f)))); /* u s + (1 - u) c */
}

/* K copies of x [B, h] side by side: [B, K*h]. */
static tema_tensor *pn_tile(const pn_model *a, tema_graph *g, tema_tensor *x)
{
    tema_tensor *xs[PN_MAX_MEMBERS];
    for (int64_t k = 0; k < a->members; k++) xs[k] = x;
    return a->members == 1 ? x : a->host->nn->concat(g, xs, (int)a->members);
}

/* One step of a filter layer: xf_t, xs_t [B, h] the input terms of gate and candidate, mf [K*h]
 * the members' u_k side by side. */
static tema_tensor *pn_sfu_step(const pn_model *a, tema_graph *g, const pn_sfu *c, tema_tensor *xf_t,
                                tema_tensor *xs_t, tema_tensor *mf, tema_tensor *s)
{
    const tema_nn_api *nn = a->host->nn;
    const int64_t h = a->h, K = a->members;
    tema_tensor *gate = nn->add(g, xf_t, nn->linear(g, s, c->ws_f, NULL));
    tema_tensor *cand = nn->add(g, xs_t, nn->linear(g, s, c->ws_s, NULL));
    tema_tensor *f = nn->sigmoid(g, nn->add(g, pn_tile(a, g, gate), mf));
    tema_tensor *cs = nn->tanh(g, nn->add(g, pn_tile(a, g, cand), mf)); /* + u_k, as the official code */
    tema_tensor *each = nn->add(g, cs, nn->mul(g, f, nn->add(g, pn_tile(a, g, s), nn->scale(g, cs, -1.0f))));
    tema_tensor *sum = nn->slice(g, each, 0, h);
    for (int64_t k = 1; k < K; k++) sum = nn->add(g, sum, nn->slice(g, each, k * h, h));
    return K == 1 ? sum : nn->scale(g, sum, 1.0f / (float)K);
}

/* One cell of a unit, its input terms for every step of the layout at once. */
typedef struct pn_cell {
    const pn_gru *gru; /* or */
    const pn_sfu *sfu;
    tema_tensor *members; /* the filter's r_k */
    tema_tensor *xa, *xb, *mf;
} pn_cell;

static tema_status pn_input_terms(const pn_model *a, tema_graph *g, pn_cell *c, tema_tensor *x, tema_err *err)
{
    const tema_nn_api *nn = a->host->nn;
    if (c->gru) {
        NN_CHECK(c->xa = nn->linear(g, x, c->gru->wx_g, c->gru->b_g));
        NN_CHECK(c->xb = nn->linear(g, x, c->gru->wx_c, c->gru->b_c));
        return TEMA_OK;
    }
    const int64_t kh = a->members * a->h;
    NN_CHECK(c->xa = nn->linear(g, x, c->sfu->wx_f, c->sfu->b_f));
    NN_CHECK(c->xb = nn->linear(g, nn->slice(g, x, 0, c->sfu->in / 2), c->sfu->wx_s, c->sfu->b_s));
    NN_CHECK(c->mf = nn->linear(g, c->members, c->sfu->v_f, NULL)); /* [K, h] */
    NN_CHECK(c->mf = nn->reshape(g, c->mf, 1, &kh));
    return TEMA_OK;
}

static bool pn_scratch(pn_model *a, int64_t B, int64_t steps)
{
    const size_t b = (size_t)(B > 0 ? B : 1), bh = b * (size_t)a->h, s = (size_t)(steps > 0 ? steps : 1);
    return tb_grow((void **)&a->idx, &a->idx_cap, b * sizeof(int32_t)) &&
           tb_grow((void **)&a->keep, &a->keep_cap, bh) &&
           tb_grow((void **)&a->outs, &a->outs_cap, s * sizeof(tema_tensor *)) &&
           tb_grow((void **)&a->states, &a->states_cap, s * sizeof(tema_tensor *));
}

/* One layer over the compact layout l ([B, Lc], right-aligned, left padding): x [B*Lc, in] is
 * the layer's (dropped) input. The state starts at 0 and stays 0 through a row's padding. */
static tema_status pn_layer(pn_model *a, tema_graph *g, pn_cell *c, tema_tensor *x, const ss_layout *l, int64_t B,
                            pn_seq *res, tema_err *err)
{
    const tema_nn_api *nn = a->host->nn;
    const int64_t h = a->h, Lc = l->Lc, shape[2] = {B, h}, flat[2] = {B * Lc, h};
    if (!pn_scratch(a, B, Lc)) return tema_fail(err, TEMA_ENOMEM, "attention pinet: out of memory");
    tema_status st = pn_input_terms(a, g, c, x, err);
    if (st != TEMA_OK) return st;
    tema_tensor *s = nn->tensor(g, 2, shape, NULL);
    NN_CHECK(s);
    for (int64_t t = 0; t < Lc; t++) {
        int64_t live = 0;
        for (int64_t r = 0; r < B; r++) {
            a->idx[r] = (int32_t)(r * Lc + t);
            live += l->ids[r * Lc + t] >= 0;
        }
        tema_tensor *xa = nn->gather_rows(g, c->xa, a->idx, B), *xb = nn->gather_rows(g, c->xb, a->idx, B);
        NN_CHECK(xa && xb);
        tema_tensor *hn = c->gru ? pn_gru_step(a, g, c->gru, xa, xb, s) : pn_sfu_step(a, g, c->sfu, xa, xb, c->mf, s);
        NN_CHECK(hn);
        if (live < B) {
            for (int64_t r = 0; r < B; r++) memset(a->keep + r * h, l->ids[r * Lc + t] >= 0, (size_t)h);
            NN_CHECK(hn = nn->mask_rows(g, hn, a->keep));
        }
        NN_CHECK(s = a->states[t] = nn->dropout(g, hn, a->dropout));
        NN_CHECK(a->outs[t] = nn->dropout(g, hn, a->dropout));
    }
    /* [B, Lc*h] with block t = step t is row-major [B*Lc, h] with row r*Lc + t, the layout's */
    res->out = nn->reshape(g, Lc > 1 ? nn->concat(g, a->outs, (int)Lc) : a->outs[0], 2, flat);
    if (!nn->training(g) || a->dropout == 0.0f) res->state = res->out; /* no dropout: the same tensors */
    else res->state = nn->reshape(g, Lc > 1 ? nn->concat(g, a->states, (int)Lc) : a->states[0], 2, flat);
    NN_CHECK(res->out && res->state);
    return TEMA_OK;
}

/* A stacked unit (MultiRNNCell of dropout-wrapped cells): gru[] or sfu[] by layer. */
static tema_status pn_unit(pn_model *a, tema_graph *g, const pn_gru *gru, const pn_sfu *sfu, tema_tensor *members,
                           tema_tensor *x, const ss_layout *l, int64_t B, pn_seq *res, tema_err *err)
{
    const tema_nn_api *nn = a->host->nn;
    for (int64_t k = 0; k < a->layers; k++) {
        pn_cell c = {.gru = gru ? &gru[k] : NULL, .sfu = sfu ? &sfu[k] : NULL, .members = members};
        NN_CHECK(x = nn->dropout(g, x, a->dropout)); /* the wrapper's input dropout */
        tema_status st = pn_layer(a, g, &c, x, l, B, res, err);
        if (st != TEMA_OK) return st;
        x = res->out;
    }
    return TEMA_OK;
}

/* Filter and transfer unit of domain d: its filter input at each of its items is its own encoder
 * output and the other encoder's output after the last other-domain item before it. */
static tema_status pn_transfer(pn_model *a, tema_graph *g, const tema_batch *b, int d, const pn_seq *enc,
                               pn_seq *ctu, tema_err *err)
{
    const tema_nn_api *nn = a->host->nn;
    const ss_layout *l = &a->lay[d], *lo = &a->lay[1 - d];
    const int64_t L = b->L, N = (int64_t)b->B * l->Lc, shape[2] = {N, a->h};
    if (!tb_grow((void **)&a->align, &a->align_cap, (size_t)N * sizeof(int32_t)))
        return tema_fail(err, TEMA_ENOMEM, "attention pinet: out of memory");
    for (int64_t i = 0; i < N; i++) {
        const int32_t p = l->pos[i]; /* an item of d, so the last other item at or before p is before it */
        a->align[i] = p >= 0 ? lo->row[(i / l->Lc) * L + p] : -1;
    }
    tema_tensor *other =
        enc[1 - d].out ? nn->embedding(g, enc[1 - d].out, a->align, N) : nn->tensor(g, 2, shape, NULL);
    NN_CHECK(other);
    tema_tensor *in[2] = {enc[d].out, other}, *x = nn->concat(g, in, 2);
    NN_CHECK(x);
    pn_seq filt;
    tema_status st = pn_unit(a, g, NULL, a->sfu[d], a->member[d], x, l, b->B, &filt, err);
    return st == TEMA_OK ? pn_unit(a, g, a->ctu[d], NULL, NULL, filt.out, l, b->B, ctu, err) : st;
}

/* ---------------- forward: decoder and stream ---------------- */

/* Per merged row, a unit's state after the last item of its domain at or before the row (0 before
 * the first, and everywhere when the batch has no item of that domain). */
static tema_tensor *pn_rows(pn_model *a, tema_graph *g, const pn_seq *u, const ss_layout *l, int64_t BL)
{
    const int64_t shape[2] = {BL, a->h};
    return u->state ? a->host->nn->embedding(g, u->state, l->row, BL) : a->host->nn->tensor(g, 2, shape, NULL);
}

static tema_status pn_stream(pn_model *a, tema_graph *g, int64_t BL, const pn_seq *enc, const pn_seq *ctu,
                             tema_stream *streams, int *n_streams, tema_err *err)
{
    const tema_nn_api *nn = a->host->nn;
    const int64_t n = (int64_t)a->n_x + a->n_y, ones_shape[2] = {BL, 1};
    tema_tensor *feat[4] = {pn_rows(a, g, &ctu[1], &a->lay[1], BL), pn_rows(a, g, &enc[0], &a->lay[0], BL),
                            pn_rows(a, g, &ctu[0], &a->lay[0], BL), pn_rows(a, g, &enc[1], &a->lay[1], BL)};
    NN_CHECK(feat[0] && feat[1] && feat[2] && feat[3]);
    if (!tb_grow((void **)&a->ones, &a->ones_cap, (size_t)(BL > 0 ? BL : 1) * sizeof(float)))
        return tema_fail(err, TEMA_ENOMEM, "attention pinet: out of memory");
    for (int64_t i = 0; i < BL; i++) a->ones[i] = 1.0f;
    tema_tensor *hs[2] = {nn->dropout(g, nn->concat(g, feat, 4), a->dropout), nn->tensor(g, 2, ones_shape, a->ones)};
    NN_CHECK(hs[0] && hs[1]);
    tema_tensor *ws[3] = {nn->embedding(g, a->out_w[0], a->out_ids[0], n),
                          nn->embedding(g, a->out_w[1], a->out_ids[1], n), a->out_b};
    NN_CHECK(ws[0] && ws[1]);
    tema_tensor *h = nn->concat(g, hs, 2), *w = nn->concat(g, ws, 3);
    NN_CHECK(h && w);
    streams[0] = (tema_stream){.h = h, .items = w, .weight = 1.0f, .inv_temp = 1.0f, .sequence = TEMA_SEQ_MERGED};
    *n_streams = 1;
    return TEMA_OK;
}

static tema_status pn_forward(void *self, tema_graph *g, const tema_batch *b, tema_tensor *const *items, int n_enc,
                              tema_stream *streams, int *n_streams, tema_err *err)
{
    pn_model *a = self;
    const tema_nn_api *nn = a->host->nn;
    const int64_t n = (int64_t)a->n_x + a->n_y;
    if (n_enc != 1 || !items[0] || items[0]->ndim != 2 || items[0]->shape[0] != n || items[0]->shape[1] != a->e)
        return tema_fail(err, TEMA_EINVAL, "attention pinet: needs the one encoder's [%lld, %lld] table",
                         (long long)n, (long long)a->e);
    if (b->L < 1 || b->L > a->max_len)
        return tema_fail(err, TEMA_EINVAL, "attention pinet: batch length %d outside [1, max_len %d]", (int)b->L,
                         (int)a->max_len);
    pn_seq enc[2] = {{0}}, ctu[2] = {{0}};
    tema_status st = TEMA_OK;
    for (int d = 0; d < 2 && st == TEMA_OK; d++) st = ss_build_layout(&a->lay[d], b, d + 1, a->n_x, "pinet", err);
    for (int d = 0; d < 2 && st == TEMA_OK; d++) {
        const ss_layout *l = &a->lay[d];
        if (l->Lc == 0) continue; /* no item of d in the batch: its states are 0 */
        tema_tensor *x = nn->embedding(g, items[0], l->ids, (int64_t)b->B * l->Lc);
        NN_CHECK(x);
        st = pn_unit(a, g, a->enc[d], NULL, NULL, x, l, b->B, &enc[d], err);
    }
    for (int d = 0; d < 2 && st == TEMA_OK; d++)
        if (a->lay[d].Lc > 0) st = pn_transfer(a, g, b, d, enc, &ctu[d], err);
    if (st != TEMA_OK) return st;
    return pn_stream(a, g, (int64_t)b->B * b->L, enc, ctu, streams, n_streams, err);
}

static const tema_attention_ops pn_ops = {.create = pn_create, .forward = pn_forward, .destroy = pn_destroy,
                                          .check = pn_check};

static const tema_plugin pn_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_ATTENTION, "pinet", "1.0.0",
                       "pi-Net: per-domain GRU encoders, shared account filter (latent users) and cross-domain "
                       "transfer units, hybrid decoder (Ma et al. 2019)",
                       pn_options, pn_ops)};
TEMA_PLUGIN_DEFINE(pn_plugin)
