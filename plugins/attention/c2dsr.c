/* plugins/attention/c2dsr.c - C2DSR (Cao et al., "Contrastive Cross-Domain Sequential
 * Recommendation", CIKM 2022; official code github.com/cjx96/C2DSR, model/C2DSR.py,
 * model/GNN.py, model/trainer.py, utils/GraphMaker.py), after the official code.
 *
 * Item graphs (built once at create() from the training sequences, tema_model_info ABI 1.6):
 * adj, each item -> the next item of the merged sequence, and adj_single, each item -> the next
 * item of its own domain; transition counts (repeats count), row-normalised (GraphMaker.py).
 * adj_single has no edge between the domains, so it is kept as its two diagonal blocks.
 *
 * Three item tables: E [n, d] (the id encoder's table), E_X [n_x, d] and E_Y [n_y, d] (this
 * plugin's; the official tables are [n, d], but only their own domain's rows are ever read);
 * each goes through a GCN (per layer: dropout, spmm, + bias; the layer outputs and the input
 * averaged), E over adj, E_X and E_Y over their blocks of adj_single, and enters its encoder as
 * GCN(T)[s] + T[s]:
 *
 *   S^{X+Y}: h   = SA(GCN(E)   + E)      (the SASRec stack of transformer_block.h, relu FFN)
 *   S^X:     h_X = SA_X(GCN_X(E_X) + E_X)      S^Y: h_Y = SA_Y(GCN_Y(E_Y) + E_Y)
 *
 * Prediction heads lin_X / lin_Y (one [n, d] weight with a bias per item, not tied to the
 * tables). For merged row p (the state after item p), h_X[p] is the S^X state after the last X
 * item at or before p (0 when there is none yet; alignment of seq_streams.h):
 *
 *   stream 0 (specific):  score_X(j) = lin_X(h[p] + h_X[p])_j,  score_Y(j) = lin_Y(h[p] + h_Y[p])_j
 *   stream 1 (shared, training only): lin_X(h[p])_j / lin_Y(h[p])_j
 *
 * written as dot products: stream 0 is h' = [h + h_X, h + h_Y, 1] against items' = [W 1_X, W 1_Y,
 * b] (a Y item's X block is 0 and the other way round), stream 1 is [h, 1] against [W, b]. The
 * official code ranks by the specific head alone, so evaluation (a graph not in training mode)
 * gets stream 0 only and its raw logits; training gets both, each weighted lambda by
 * sequence_weights(), which the loss plugin turns into lambda (CE_shared + CE_specific).
 *
 * Contrastive infomax (aux_loss, weight 1 - lambda): per sequence, mean-pool over the X items
 * that have a later X item (the rows the official x_loss trains) the S^X states (r_X), the
 * merged states (m_X) and the merged states of the sequence whose Y items were replaced by
 * random Y items (c_X); Y alike. Discriminators D_X, D_Y are bilinear (torch.nn.Bilinear):
 *   BCE(D_X(m_Y, r_X), 1) + BCE(D_X(c_Y, r_X), 0) + BCE(D_Y(m_X, r_Y), 1) + BCE(D_Y(c_X, r_Y), 0)
 * where c_Y comes from the sequence whose X items were replaced by random X items.
 *
 * What differs from the official code is listed in the README (C2DSR in tema). */
#include "seq_streams.h"

#define C2_MAX_GNN 8

static const tema_option c2_options[] = {
    {"blocks", TEMA_OPT_INT, "2", 1, TB_MAX_BLOCKS, NULL, "transformer blocks per encoder (official num_blocks)"},
    {"heads", TEMA_OPT_INT, "1", 1, 64, NULL, "attention heads, must divide the encoder dim (official num_heads)"},
    {"dropout", TEMA_OPT_FLOAT, "0.2", 0, 0.95, NULL,
     "dropout of the GCN inputs, embeddings, attention weights and feed-forward (official dropout)"},
    {"ffn_mult", TEMA_OPT_INT, "1", 1, 16, NULL, "feed-forward width as a multiple of d (official: 1)"},
    {"activation", TEMA_OPT_ENUM, "relu", 0, -1, "relu|gelu", "feed-forward activation (official: relu)"},
    {"gnn_layers", TEMA_OPT_INT, "1", 0, C2_MAX_GNN, NULL, "GCN layers over the item graphs (official GNN)"},
    {"lambda", TEMA_OPT_FLOAT, "0.7", 0, 1, NULL,
     "weight of the prediction losses; the infomax term gets 1 - lambda (official lambda)"},
    {"init_std", TEMA_OPT_FLOAT, "1", 0, 10, NULL,
     "N(0, std^2) init of the S^X / S^Y item tables (official nn.Embedding: 1; the merged table is the id encoder's)"},
    {"pos_init_std", TEMA_OPT_FLOAT, "0.02", 0.0001, 10, NULL,
     "N(0, std^2) init of the three encoders' position tables (official nn.Embedding: 1)"},
};

enum { C2_M = TEMA_SEQ_MERGED, C2_X = TEMA_SEQ_X, C2_Y = TEMA_SEQ_Y };

typedef struct c2_model {
    const tema_host *host;
    int32_t n_x, n_y, max_len;
    int64_t d, gnn_layers;
    float dropout, lambda;
    tb_stack enc[3];                          /* by tema_seq_kind */
    tema_tensor *emb[3];                      /* [C2_X] [n_x, d], [C2_Y] [n_y, d]; [C2_M] NULL (the encoder's) */
    tema_tensor *gnn_b[3][C2_MAX_GNN];        /* [d] bias of each GCN layer */
    tema_csr *adj, *adj_dom[3];               /* adj [n, n]; [C2_X] / [C2_Y]: adj_single's blocks, local ids */
    tema_tensor *out_w, *out_b;               /* lin_X / lin_Y: [n, d], [n, 1] */
    tema_tensor *disc_w[2], *disc_b[2];       /* D_X, D_Y: [d, d], [1] */
    int32_t *block_ids[2];                    /* [n]: j for items of domain X (Y), else -1 */
    /* one step's state, forward() -> aux_loss() */
    const tema_graph *step_g;
    const int32_t *step_seq;
    int64_t B, L;
    tema_tensor *table_m, *h_m, *h_dom[3];    /* merged input table, merged states, S^X / S^Y stack outputs */
    /* host scratch (grown, never shrunk) */
    tb_scratch scratch;
    ss_layout lay[3];                         /* [C2_X], [C2_Y] used */
    int32_t *pos_m, *corr[2], *valid, *final, *ids_y; /* ids_y: lay[C2_Y].ids - n_x */
    float *ones, *wm[2], *wc[2], *labels;
    size_t pos_cap, corr_cap[2], valid_cap, final_cap, ids_y_cap, ones_cap, wm_cap[2], wc_cap[2], labels_cap;
} c2_model;

static void c2_destroy(void *self)
{
    c2_model *a = self;
    if (!a) return;
    free(a->scratch.mask);
    for (int q = 0; q < 3; q++) ss_layout_free(&a->lay[q]);
    for (int k = 0; k < 2; k++) {
        free(a->block_ids[k]);
        free(a->corr[k]);
        free(a->wm[k]);
        free(a->wc[k]);
    }
    free(a->pos_m);
    free(a->valid);
    free(a->final);
    free(a->ids_y);
    free(a->ones);
    free(a->labels);
    free(a);
}

/* ---------------- item graphs ---------------- */

static int cmp_i32(const void *x, const void *y)
{
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

/* Visits the graph's edges of every training line: emit(src, dst) per transition; single: the
 * next item of the same domain, else the next item of the merged sequence. */
static tema_status c2_edges(const tema_model_info *info, bool single, int64_t *deg, int64_t *row_ptr, int32_t *col,
                            tema_err *err)
{
    const int32_t n = info->n_x + info->n_y;
    for (int64_t i = 0; i < info->n_train_lines; i++) {
        int32_t prev[2] = {-1, -1};
        for (int64_t k = info->train_off[i]; k < info->train_off[i + 1]; k++) {
            const int32_t v = info->train_items[k];
            if (v < 0 || v >= n)
                return tema_fail(err, TEMA_EINVAL, "attention c2dsr: training line %lld holds item %d outside [0, %d)",
                                 (long long)i, (int)v, (int)n);
            const int dom = single ? v >= info->n_x : 0;
            const int32_t src = prev[dom];
            prev[dom] = v;
            if (src < 0) continue;
            if (deg) deg[src]++;
            else col[row_ptr[src]++] = v;
        }
    }
    return TEMA_OK;
}

/* The item graph on the host: row-normalised transition counts in CSR (GraphMaker.preprocess
 * + normalize: repeated transitions add up, each row sums to 1, items without a successor have
 * an empty row). On success the three arrays are the caller's (free()). */
static tema_status c2_graph_host(const tema_model_info *info, bool single, int64_t **row_ptr_out, int32_t **col_out,
                                 float **val_out, tema_err *err)
{
    const int64_t n = (int64_t)info->n_x + info->n_y;
    int64_t *deg = calloc((size_t)n + 1, sizeof *deg), *row_ptr = calloc((size_t)n + 1, sizeof *row_ptr);
    int64_t *cursor = malloc(((size_t)n + 1) * sizeof *cursor);
    int32_t *col = NULL;
    float *val = NULL;
    tema_status st = deg && row_ptr && cursor ? c2_edges(info, single, deg, NULL, NULL, err)
                                              : tema_fail(err, TEMA_ENOMEM, "attention c2dsr: out of memory");
    int64_t nnz = 0;
    for (int64_t i = 0; st == TEMA_OK && i < n; i++) nnz += deg[i];
    if (st == TEMA_OK) {
        col = malloc((size_t)(nnz ? nnz : 1) * sizeof *col);
        val = malloc((size_t)(nnz ? nnz : 1) * sizeof *val);
        if (!col || !val) st = tema_fail(err, TEMA_ENOMEM, "attention c2dsr: out of memory for %lld edges", (long long)nnz);
    }
    if (st == TEMA_OK) {
        cursor[0] = 0;
        for (int64_t i = 0; i < n; i++) cursor[i + 1] = cursor[i] + deg[i];
        memcpy(row_ptr, cursor, ((size_t)n + 1) * sizeof *row_ptr);
        st = c2_edges(info, single, NULL, cursor, col, err); /* cursor[i] ends at row_ptr[i+1] */
    }
    /* merge repeated edges into counts (in place), then divide by the row's total */
    int64_t w = 0;
    for (int64_t i = 0; st == TEMA_OK && i < n; i++) {
        const int64_t lo = row_ptr[i], hi = row_ptr[i + 1], start = w;
        qsort(col + lo, (size_t)(hi - lo), sizeof *col, cmp_i32);
        for (int64_t k = lo; k < hi; k++) {
            if (w > start && col[w - 1] == col[k]) {
                val[w - 1] += 1.0f;
                continue;
            }
            col[w] = col[k];
            val[w++] = 1.0f;
        }
        for (int64_t k = start; k < w; k++) val[k] /= (float)(hi - lo);
        row_ptr[i] = start;
    }
    if (st == TEMA_OK) row_ptr[n] = w;
    free(deg);
    free(cursor);
    if (st != TEMA_OK) {
        free(row_ptr), free(col), free(val);
        return st;
    }
    *row_ptr_out = row_ptr;
    *col_out = col;
    *val_out = val;
    return TEMA_OK;
}

/* Rows and columns [lo, hi) of a host CSR whose rows in that range point only inside it, with
 * ids shifted to start at 0 (a diagonal block of adj_single), declared in the store as `name`. */
static tema_csr *c2_block(const tema_model_info *info, const int64_t *rp, const int32_t *col, const float *val,
                          int32_t lo, int32_t hi, const char *name, tema_err *err)
{
    const int64_t n = hi - lo, base = rp[lo], nnz = rp[hi] - base;
    int64_t *brp = malloc(((size_t)n + 1) * sizeof *brp);
    int32_t *bcol = malloc((size_t)(nnz ? nnz : 1) * sizeof *bcol);
    tema_csr *out = NULL;
    if (!brp || !bcol) {
        tema_fail(err, TEMA_ENOMEM, "attention c2dsr: out of memory");
    } else {
        for (int64_t i = 0; i <= n; i++) brp[i] = rp[lo + i] - base;
        bool inside = true;
        for (int64_t k = 0; k < nnz; k++) {
            bcol[k] = col[base + k] - lo;
            inside = inside && bcol[k] >= 0 && bcol[k] < n;
        }
        if (!inside) tema_fail(err, TEMA_EINTERNAL, "attention c2dsr: %s has an edge leaving its domain; a bug", name);
        else out = info->host->nn->csr(info->params, name, n, n, brp, bcol, val + base, err);
    }
    free(brp);
    free(bcol);
    return out;
}

/* adj [n, n] and adj_single's X and Y blocks, declared in the parameter store (uploaded once,
 * owned by the store). */
static tema_status c2_graphs(c2_model *a, const tema_model_info *info, tema_err *err)
{
    for (int single = 0; single < 2; single++) {
        int64_t *rp;
        int32_t *col;
        float *val;
        tema_status st = c2_graph_host(info, single, &rp, &col, &val, err);
        if (st != TEMA_OK) return st;
        const int32_t n = info->n_x + info->n_y;
        bool ok;
        if (!single) {
            a->adj = info->host->nn->csr(info->params, "attention.c2dsr.adj", n, n, rp, col, val, err);
            ok = a->adj != NULL;
        } else {
            a->adj_dom[C2_X] = c2_block(info, rp, col, val, 0, info->n_x, "attention.c2dsr.adj_x", err);
            a->adj_dom[C2_Y] = a->adj_dom[C2_X] ? c2_block(info, rp, col, val, info->n_x, n, "attention.c2dsr.adj_y", err)
                                                : NULL;
            ok = a->adj_dom[C2_Y] != NULL;
        }
        free(rp), free(col), free(val);
        if (!ok) return err && err->code != TEMA_OK ? err->code : TEMA_EINTERNAL;
    }
    return TEMA_OK;
}

/* ---------------- create ---------------- */

typedef struct c2_config {
    tb_config tb;
    int64_t gnn_layers;
    double lambda, init_std, pos_init_std;
} c2_config;

/* Every option first (a missing one is the caller's bug, whatever else is wrong). */
static tema_status c2_read_config(const tema_host *host, const tema_cfg *opts, c2_config *c, tema_err *err)
{
    const char *w = "attention c2dsr", *act;
    tema_status st = tb_read_config(host, opts, "c2dsr", &c->tb, err);
    if (st == TEMA_OK) st = plugin_opt_str(host, opts, w, "activation", &act, err);
    if (st == TEMA_OK) st = plugin_opt_int(host, opts, w, "gnn_layers", &c->gnn_layers, err);
    if (st == TEMA_OK) st = plugin_opt_float(host, opts, w, "lambda", &c->lambda, err);
    if (st == TEMA_OK) st = plugin_opt_float(host, opts, w, "init_std", &c->init_std, err);
    if (st == TEMA_OK) st = plugin_opt_float(host, opts, w, "pos_init_std", &c->pos_init_std, err);
    if (st != TEMA_OK) return st;
    c->tb.pos_std = (float)c->pos_init_std;
    c->tb.relu = !strcmp(act, "relu");
    if (!c->tb.relu && strcmp(act, "gelu") != 0)
        return tema_fail(err, TEMA_EINVAL, "attention c2dsr: activation must be relu or gelu, got '%s'", act);
    if (c->gnn_layers > C2_MAX_GNN)
        return tema_fail(err, TEMA_EINTERNAL, "attention c2dsr: gnn_layers %lld above %d; a bug: the option table's "
                                              "maximum must be C2_MAX_GNN", (long long)c->gnn_layers, C2_MAX_GNN);
    if (!(c->lambda > 0))
        return tema_fail(err, TEMA_EINVAL, "attention c2dsr: lambda = 0 leaves only the infomax term, no "
                                           "recommendation loss; hint: lambda in (0, 1] (official 0.7)");
    return TEMA_OK;
}

/* What C2DSR cannot be built on: reported at create(), before any step (the encoder count also
 * by c2_check, with info and enc_mods NULL). */
static tema_status c2_check_setup(const tema_model_info *info, const int64_t *enc_dims, const char *const *enc_mods,
                                  int n_enc, tema_err *err)
{
    if (n_enc != 1 || !enc_mods || !enc_mods[0] || strcmp(enc_mods[0], "id") != 0)
        return tema_fail(err, TEMA_EINVAL, "attention c2dsr: takes exactly one encoder of modality id (its table is "
                                           "C2DSR's item embedding; the S^X / S^Y tables are the plugin's), got %d "
                                           "encoder%s (first: %s); hint: model.encoders: [{plugin: id, dim: 256}]",
                         n_enc, n_enc == 1 ? "" : "s", n_enc > 0 && enc_mods && enc_mods[0] ? enc_mods[0] : "none");
    if (enc_dims[0] < 1) return tema_fail(err, TEMA_EINVAL, "attention c2dsr: encoder dim must be positive");
    if (!TEMA_HAS_FIELD(info, tema_model_info, train_items) || !info->train_off || !info->train_items ||
        info->n_train_lines < 1)
        return tema_fail(err, TEMA_EUNSUPPORTED, "attention c2dsr: needs the training sequences for its item graph "
                                                 "(tema_model_info of ABI >= 1.6), and this host gave none");
    if (info->n_x < 1 || info->n_y < 1)
        return tema_fail(err, TEMA_EINVAL, "attention c2dsr: needs items in both domains (n_x = %d, n_y = %d)",
                         (int)info->n_x, (int)info->n_y);
    return TEMA_OK;
}

static tema_tensor *c2_param(const c2_model *a, tema_params *p, const char *name, int64_t rows, int64_t cols,
                             tema_init init, float scale, uint32_t flags)
{
    int64_t sh[2] = {rows, cols};
    return a->host->nn->param(p, name, cols ? 2 : 1, sh, init, scale, flags);
}

/* Parameters beside the three stacks; torch's initialisations (see the README's list). */
static tema_status c2_declare(c2_model *a, tema_params *p, double init_std, tema_err *err)
{
    static const char *const seq[3] = {"merged", "x", "y"};
    const int64_t d = a->d, n = (int64_t)a->n_x + a->n_y;
    const uint32_t nd = TEMA_TENSOR_NO_DECAY;
    const float lin = 1.0f / sqrtf((float)d), bil = sqrtf(6.0f / (float)(d * d + d));
    char name[128];
    bool ok = true;
    for (int q = 0; q < 3; q++) {
        if (q != C2_M) {
            snprintf(name, sizeof name, "attention.c2dsr.items_%s", seq[q]);
            const int64_t rows = q == C2_X ? a->n_x : a->n_y;
            ok = ok && (a->emb[q] = c2_param(a, p, name, rows, d, TEMA_INIT_NORMAL, (float)init_std, 0));
        }
        for (int64_t l = 0; l < a->gnn_layers; l++) {
            snprintf(name, sizeof name, "attention.c2dsr.gnn_%s.l%lld.b", seq[q], (long long)l);
            ok = ok && (a->gnn_b[q][l] = c2_param(a, p, name, d, 0, TEMA_INIT_UNIFORM, lin, nd));
        }
    }
    ok = ok && (a->out_w = c2_param(a, p, "attention.c2dsr.out.w", n, d, TEMA_INIT_UNIFORM, lin, 0));
    ok = ok && (a->out_b = c2_param(a, p, "attention.c2dsr.out.b", n, 1, TEMA_INIT_UNIFORM, lin, nd));
    for (int k = 0; k < 2; k++) {
        snprintf(name, sizeof name, "attention.c2dsr.disc_%s.w", seq[k + 1]);
        ok = ok && (a->disc_w[k] = c2_param(a, p, name, d, d, TEMA_INIT_UNIFORM, bil, 0));
        snprintf(name, sizeof name, "attention.c2dsr.disc_%s.b", seq[k + 1]);
        ok = ok && (a->disc_b[k] = c2_param(a, p, name, 1, 0, TEMA_INIT_ZEROS, 1, nd));
    }
    if (!ok) return tema_fail(err, TEMA_ENOMEM, "attention c2dsr: cannot declare the parameters");
    for (int k = 0; k < 2; k++) {
        if (!(a->block_ids[k] = malloc((size_t)n * sizeof(int32_t))))
            return tema_fail(err, TEMA_ENOMEM, "attention c2dsr: out of memory");
        for (int64_t j = 0; j < n; j++) a->block_ids[k][j] = (j >= a->n_x) == (k == 1) ? (int32_t)j : -1;
    }
    return TEMA_OK;
}

static tema_status c2_create(const tema_model_info *info, const tema_cfg *opts, const int64_t *enc_dims,
                             const char *const *enc_mods, int n_enc, void **self, tema_err *err)
{
    const tema_host *host = info->host;
    c2_config c;
    tema_status st = c2_read_config(host, opts, &c, err);
    if (st == TEMA_OK) st = c2_check_setup(info, enc_dims, enc_mods, n_enc, err);
    if (st != TEMA_OK) return st;
    c2_model *a = calloc(1, sizeof *a);
    if (!a) return tema_fail(err, TEMA_ENOMEM, "attention c2dsr: out of memory");
    *a = (c2_model){.host = host, .n_x = info->n_x, .n_y = info->n_y, .max_len = info->max_len, .d = enc_dims[0],
                    .gnn_layers = c.gnn_layers, .dropout = (float)c.tb.dropout, .lambda = (float)c.lambda};
    static const char *const prefix[3] = {"attention.c2dsr.enc", "attention.c2dsr.enc_x", "attention.c2dsr.enc_y"};
    for (int q = 0; q < 3 && st == TEMA_OK; q++)
        st = tb_declare(&a->enc[q], host, info->params, prefix[q], a->d, info->max_len, &c.tb, "c2dsr", err);
    if (st == TEMA_OK) st = c2_declare(a, info->params, c.init_std, err);
    if (st == TEMA_OK) st = c2_graphs(a, info, err);
    if (st != TEMA_OK) {
        c2_destroy(a);
        return st;
    }
    *self = a;
    return TEMA_OK;
}

/* ---------------- forward ---------------- */

#define NN_CHECK(x)                                                                                 \
    do {                                                                                            \
        if (!(x)) return tema_fail(err, TEMA_EINTERNAL, "attention c2dsr: %s", nn->error(g));      \
    } while (0)

/* GCN(x) + x over `adj` (GCNLayer: per layer dropout, spmm, + bias; mean of the input and the
 * layer outputs), the table an encoder embeds from. */
static tema_status c2_table(c2_model *a, tema_graph *g, const tema_csr *adj, tema_tensor *const *bias, tema_tensor *x,
                            tema_tensor **out, tema_err *err)
{
    const tema_nn_api *nn = a->host->nn;
    tema_tensor *learn = x, *acc = x;
    for (int64_t l = 0; l < a->gnn_layers; l++) {
        NN_CHECK(learn = nn->dropout(g, learn, a->dropout));
        NN_CHECK(learn = nn->spmm(g, adj, learn));
        NN_CHECK(learn = nn->add(g, learn, bias[l]));
        NN_CHECK(acc = nn->add(g, acc, learn));
    }
    if (a->gnn_layers > 0) NN_CHECK(acc = nn->scale(g, acc, 1.0f / (float)(a->gnn_layers + 1)));
    NN_CHECK(*out = nn->add(g, acc, x));
    return TEMA_OK;
}

/* Positions as the official loader numbers them: the k-th item of a sequence (from its oldest
 * in the window) gets row k of the position table, in the merged sequence and inside S^X / S^Y. */
static tema_status c2_layouts(c2_model *a, const tema_batch *b, tema_err *err)
{
    const int64_t B = b->B, L = b->L;
    if (!tb_grow((void **)&a->pos_m, &a->pos_cap, (size_t)(B * L > 0 ? B * L : 1) * sizeof(int32_t)))
        return tema_fail(err, TEMA_ENOMEM, "attention c2dsr: out of memory");
    for (int64_t r = 0; r < B; r++) {
        int32_t k = 0;
        for (int64_t p = 0; p < L; p++) a->pos_m[r * L + p] = b->seq[r * L + p] >= 0 ? k++ : -1;
    }
    for (int q = C2_X; q <= C2_Y; q++) {
        ss_layout *l = &a->lay[q];
        tema_status st = ss_build_layout(l, b, q, a->n_x, "c2dsr", err);
        if (st != TEMA_OK) return st;
        if (q == C2_Y) { /* E_Y's rows are Y-local */
            const size_t nc = (size_t)(B * l->Lc > 0 ? B * l->Lc : 1);
            if (!tb_grow((void **)&a->ids_y, &a->ids_y_cap, nc * sizeof(int32_t)))
                return tema_fail(err, TEMA_ENOMEM, "attention c2dsr: out of memory");
            for (int64_t i = 0; i < B * l->Lc; i++) a->ids_y[i] = l->ids[i] >= 0 ? l->ids[i] - a->n_x : -1;
        }
        for (int64_t r = 0; r < B; r++) {
            int32_t k = 0;
            for (int64_t j = 0; j < l->Lc; j++)
                if (l->ids[r * l->Lc + j] >= 0) l->pos[r * l->Lc + j] = k++;
        }
    }
    return TEMA_OK;
}

/* The three encoders: a->h_m [B*L, d], a->h_dom[X / Y] [B*Lc, d] (NULL when no row has an
 * item of that domain). */
static tema_status c2_encode(c2_model *a, tema_graph *g, const tema_batch *b, tema_tensor *items, tema_err *err)
{
    const tema_nn_api *nn = a->host->nn;
    const float in_scale = sqrtf((float)a->d);
    tema_tensor *const *adj_bias[3] = {a->gnn_b[C2_M], a->gnn_b[C2_X], a->gnn_b[C2_Y]};
    tema_status st = c2_table(a, g, a->adj, adj_bias[C2_M], items, &a->table_m, err);
    if (st == TEMA_OK)
        st = tb_forward(&a->enc[C2_M], nn, g, &a->scratch, a->table_m, in_scale, b->seq, a->pos_m, b->B, b->L, &a->h_m,
                        "c2dsr", err);
    for (int q = C2_X; q <= C2_Y && st == TEMA_OK; q++) {
        const ss_layout *l = &a->lay[q];
        a->h_dom[q] = NULL;
        if (l->Lc == 0) continue;
        tema_tensor *t = NULL;
        st = c2_table(a, g, a->adj_dom[q], adj_bias[q], a->emb[q], &t, err);
        if (st == TEMA_OK)
            st = tb_forward(&a->enc[q], nn, g, &a->scratch, t, in_scale, q == C2_Y ? a->ids_y : l->ids, l->pos, b->B,
                            l->Lc, &a->h_dom[q], "c2dsr", err);
    }
    return st;
}

/* The [B*L, 1] column of ones that carries the heads' biases. */
static tema_tensor *c2_ones(c2_model *a, tema_graph *g, int64_t BL)
{
    if (!tb_grow((void **)&a->ones, &a->ones_cap, (size_t)(BL > 0 ? BL : 1) * sizeof(float))) return NULL;
    for (int64_t i = 0; i < BL; i++) a->ones[i] = 1.0f;
    int64_t sh[2] = {BL, 1};
    return a->host->nn->tensor(g, 2, sh, a->ones);
}

static tema_status c2_streams(c2_model *a, tema_graph *g, int64_t BL, tema_stream *streams, int *n_streams,
                              tema_err *err)
{
    const tema_nn_api *nn = a->host->nn;
    const int64_t n = (int64_t)a->n_x + a->n_y;
    tema_tensor *ones = c2_ones(a, g, BL);
    NN_CHECK(ones);
    tema_tensor *hs[3], *ws[3];
    for (int q = C2_X; q <= C2_Y; q++) {
        hs[q - 1] = a->h_m;
        if (a->h_dom[q]) {
            tema_tensor *al = nn->embedding(g, a->h_dom[q], a->lay[q].row, BL); /* 0 before the first item */
            NN_CHECK(al);
            NN_CHECK(hs[q - 1] = nn->add(g, a->h_m, al));
        }
        NN_CHECK(ws[q - 1] = nn->embedding(g, a->out_w, a->block_ids[q - 1], n));
    }
    hs[2] = ones;
    ws[2] = a->out_b;
    tema_tensor *h = nn->concat(g, hs, 3), *w = nn->concat(g, ws, 3);
    NN_CHECK(h && w);
    streams[0] = (tema_stream){.h = h, .items = w, .weight = 1.0f, .inv_temp = 1.0f, .sequence = TEMA_SEQ_X};
    *n_streams = 1;
    if (!nn->training(g)) return TEMA_OK; /* the official code ranks by the specific head */
    tema_tensor *h2[2] = {a->h_m, ones}, *w2[2] = {a->out_w, a->out_b};
    h = nn->concat(g, h2, 2);
    w = nn->concat(g, w2, 2);
    NN_CHECK(h && w);
    streams[1] = (tema_stream){.h = h, .items = w, .weight = 1.0f, .inv_temp = 1.0f, .sequence = TEMA_SEQ_MERGED};
    *n_streams = 2;
    return TEMA_OK;
}

static tema_status c2_forward(void *self, tema_graph *g, const tema_batch *b, tema_tensor *const *items, int n_enc,
                              tema_stream *streams, int *n_streams, tema_err *err)
{
    c2_model *a = self;
    a->step_g = NULL;
    if (n_enc != 1 || !items[0] || items[0]->ndim != 2 || items[0]->shape[1] != a->d ||
        items[0]->shape[0] != (int64_t)a->n_x + a->n_y)
        return tema_fail(err, TEMA_EINVAL, "attention c2dsr: needs the one id encoder's [%d, %lld] table",
                         (int)(a->n_x + a->n_y), (long long)a->d);
    if (b->L < 1 || b->L > a->max_len)
        return tema_fail(err, TEMA_EINVAL, "attention c2dsr: batch length %d outside [1, max_len %d]", (int)b->L,
                         (int)a->max_len);
    tema_status st = c2_layouts(a, b, err);
    if (st == TEMA_OK) st = c2_encode(a, g, b, items[0], err);
    if (st == TEMA_OK) st = c2_streams(a, g, (int64_t)b->B * b->L, streams, n_streams, err);
    if (st != TEMA_OK) return st;
    a->step_g = g;
    a->step_seq = b->seq;
    a->B = b->B;
    a->L = b->L;
    return TEMA_OK;
}

/* lambda for both prediction losses, whatever the target's domain (the specific stream is
 * labelled S^X but serves both domains) */
static void c2_sequence_weights(const void *self, float w[2][3])
{
    const c2_model *a = self;
    for (int dom = 0; dom < 2; dom++) {
        w[dom][TEMA_SEQ_MERGED] = a->lambda;
        w[dom][TEMA_SEQ_X] = a->lambda;
        w[dom][TEMA_SEQ_Y] = 0.0f;
    }
}

/* ---------------- aux_loss: the contrastive infomax term ---------------- */

static uint64_t c2_splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Mean-pooling weights over the items of domain q that have a later item of q in the training
 * line (x_ground_mask / y_ground_mask of the official loader): wm[q-1] over merged positions,
 * wc[q-1] over q's compact layout. final[r]: the item after row r's window (-1: unknown).
 * Returns how many sequences pool over a non-empty set in both domains (listed in a->valid). */
static int64_t c2_pool_weights(c2_model *a, const tema_batch *b, const int32_t *final)
{
    const int64_t B = b->B, L = b->L;
    int64_t nv = 0;
    for (int64_t r = 0; r < B; r++) {
        bool ok = true;
        for (int q = C2_X; q <= C2_Y; q++) {
            const ss_layout *l = &a->lay[q];
            float *wm = a->wm[q - 1] + r * L, *wc = a->wc[q - 1] + r * l->Lc;
            int64_t cnt = 0, k = 0;
            for (int64_t p = 0; p < L; p++) cnt += ss_in_kind(b->seq[r * L + p], q, a->n_x);
            const bool final_in = final[r] >= 0 && ss_in_kind(final[r], q, a->n_x);
            const int64_t used = cnt > 0 ? cnt - 1 + final_in : 0;
            for (int64_t p = 0; p < L; p++) {
                wm[p] = 0.0f;
                if (ss_in_kind(b->seq[r * L + p], q, a->n_x)) wm[p] = k++ < used ? 1.0f / (float)used : 0.0f;
            }
            for (int64_t j = 0; j < l->Lc; j++) wc[j] = j - (l->Lc - cnt) < used && j >= l->Lc - cnt ? 1.0f / (float)used : 0.0f;
            ok = ok && used > 0;
        }
        if (ok) a->valid[nv++] = (int32_t)r;
    }
    return nv;
}

/* corr[0]: the merged sequence with its Y items replaced by uniform random Y items (corru_x);
 * corr[1]: X items replaced by random X items (corru_y). */
static void c2_corrupt(c2_model *a, const tema_batch *b, uint64_t seed)
{
    uint64_t s = seed ^ 0x6332647372636f72ull;
    const int64_t BL = (int64_t)b->B * b->L;
    for (int64_t i = 0; i < BL; i++) {
        const int32_t v = b->seq[i];
        a->corr[0][i] = a->corr[1][i] = v;
        if (v < 0) continue;
        if (v >= a->n_x) a->corr[0][i] = a->n_x + (int32_t)(c2_splitmix(&s) % (uint64_t)a->n_y);
        else a->corr[1][i] = (int32_t)(c2_splitmix(&s) % (uint64_t)a->n_x);
    }
}

/* sum_j w[r, j] f[r*Lx + j, :] over the valid rows: [nv, d]. */
static tema_tensor *c2_pool(c2_model *a, tema_graph *g, tema_tensor *f, const float *w, int64_t Lx, int64_t nv)
{
    const tema_nn_api *nn = a->host->nn;
    const int64_t B = a->B, d = a->d;
    int64_t ws[3] = {B, 1, Lx}, fs[3] = {B, Lx, d}, os[2] = {B, d};
    tema_tensor *wt = nn->tensor(g, 3, ws, w);
    tema_tensor *fr = wt ? nn->reshape(g, f, 3, fs) : NULL;
    tema_tensor *p = fr ? nn->matmul(g, wt, false, fr, false) : NULL;
    p = p ? nn->reshape(g, p, 2, os) : NULL;
    return p ? nn->gather_rows(g, p, a->valid, nv) : NULL;
}

static bool c2_aux_scratch(c2_model *a, int64_t B, int64_t L)
{
    const size_t bl = (size_t)(B * L > 0 ? B * L : 1), bb = (size_t)(B > 0 ? 2 * B : 1);
    bool ok = tb_grow((void **)&a->valid, &a->valid_cap, bb * sizeof(int32_t)) &&
              tb_grow((void **)&a->final, &a->final_cap, bb * sizeof(int32_t)) &&
              tb_grow((void **)&a->labels, &a->labels_cap, bb * sizeof(float));
    for (int k = 0; k < 2 && ok; k++) {
        const size_t bc = (size_t)(B * a->lay[k + 1].Lc > 0 ? B * a->lay[k + 1].Lc : 1);
        ok = tb_grow((void **)&a->corr[k], &a->corr_cap[k], bl * sizeof(int32_t)) &&
             tb_grow((void **)&a->wm[k], &a->wm_cap[k], bl * sizeof(float)) &&
             tb_grow((void **)&a->wc[k], &a->wc_cap[k], bc * sizeof(float));
    }
    return ok;
}

/* BCE(D(real, r), 1) + BCE(D(fake, r), 0) for one discriminator. */
static tema_tensor *c2_disc_loss(c2_model *a, tema_graph *g, int k, tema_tensor *r, tema_tensor *real,
                                 tema_tensor *fake, int64_t nv)
{
    const tema_nn_api *nn = a->host->nn;
    tema_tensor *sr = nn->bilinear(g, real, a->disc_w[k], r, a->disc_b[k]);
    tema_tensor *sf = sr ? nn->bilinear(g, fake, a->disc_w[k], r, a->disc_b[k]) : NULL;
    tema_tensor *lr = sf ? nn->bce_with_logits(g, sr, a->labels) : NULL;
    tema_tensor *lf = lr ? nn->bce_with_logits(g, sf, a->labels + nv) : NULL;
    return lf ? nn->add(g, lr, lf) : NULL;
}

static tema_status c2_aux_loss(void *self, tema_graph *g, const tema_batch *b, const tema_targets *t,
                               tema_tensor **loss, tema_err *err)
{
    c2_model *a = self;
    const tema_nn_api *nn = a->host->nn;
    *loss = NULL;
    if (a->step_g != g || a->step_seq != b->seq || a->B != b->B || a->L != b->L)
        return tema_fail(err, TEMA_EINVAL, "attention c2dsr: aux_loss without forward() on this graph and batch");
    if (a->lambda >= 1.0f || b->B < 1) return TEMA_OK;
    const int64_t B = b->B, L = b->L;
    if (!c2_aux_scratch(a, B, L)) return tema_fail(err, TEMA_ENOMEM, "attention c2dsr: out of memory");
    /* the item after each window: the target of its last position (the trainer always trains it) */
    int32_t *final = a->final;
    for (int64_t r = 0; r < B; r++) final[r] = -1;
    for (int64_t i = 0; t && i < t->rows; i++)
        if (t->row_index[i] % L == L - 1) final[t->row_index[i] / L] = t->target[i];
    const int64_t nv = c2_pool_weights(a, b, final);
    if (nv == 0) return TEMA_OK;
    for (int64_t i = 0; i < nv; i++) a->labels[i] = 1.0f, a->labels[nv + i] = 0.0f;
    c2_corrupt(a, b, t ? t->seed : 0);
    tema_tensor *fake[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        tema_status st = tb_forward(&a->enc[C2_M], nn, g, &a->scratch, a->table_m, sqrtf((float)a->d), a->corr[k],
                                    a->pos_m, B, L, &fake[k], "c2dsr", err);
        if (st != TEMA_OK) return st;
    }
    tema_tensor *r[2], *real[2], *cf[2];
    for (int k = 0; k < 2; k++) {
        const ss_layout *l = &a->lay[k + 1];
        NN_CHECK(r[k] = c2_pool(a, g, a->h_dom[k + 1], a->wc[k], l->Lc, nv)); /* nv > 0: both domains present */
        NN_CHECK(real[k] = c2_pool(a, g, a->h_m, a->wm[k], L, nv));
        NN_CHECK(cf[k] = c2_pool(a, g, fake[k], a->wm[k], L, nv));
    }
    /* D_X: r_X against the merged states pooled over Y (real) or over Y of the X-corrupted one */
    tema_tensor *lx = c2_disc_loss(a, g, 0, r[0], real[1], cf[1], nv);
    tema_tensor *ly = lx ? c2_disc_loss(a, g, 1, r[1], real[0], cf[0], nv) : NULL;
    tema_tensor *sum = ly ? nn->add(g, lx, ly) : NULL;
    NN_CHECK(sum);
    NN_CHECK(*loss = nn->scale(g, sum, 1.0f - a->lambda));
    return TEMA_OK;
}

static tema_status c2_check(const tema_host *host, const tema_cfg *opts, const int64_t *enc_dims, int n_enc,
                            tema_err *err)
{
    /* the encoder count is known here (its modality only at create): the same message */
    if (n_enc != 1) return c2_check_setup(NULL, enc_dims, NULL, n_enc, err);
    return tb_check_heads(host, opts, "c2dsr", enc_dims[0], err);
}

static const tema_attention_ops c2_ops = {.create = c2_create, .forward = c2_forward, .destroy = c2_destroy,
                                          .sequence_weights = c2_sequence_weights, .aux_loss = c2_aux_loss,
                                          .check = c2_check};

static const tema_plugin c2_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_ATTENTION, "c2dsr", "1.0.0",
                       "C2DSR: item-graph GCN + three self-attention encoders + contrastive infomax (Cao et al. 2022)",
                       c2_options, c2_ops)};
TEMA_PLUGIN_DEFINE(c2_plugin)
