/* plugins/attention/man_layers.h - the layers of the MAN baseline (plugins/attention/man.c)
 * written as the official TensorFlow code writes them (github.com/Guanyu-Lin/MAN,
 * reco_utils/recommender/deeprec/models/sequential/sequential_base_model.py and
 * base_model.py), kept apart from the model so man.c holds the model alone. Static
 * functions, like transformer_block.h.
 *
 *   man_mlp   _fcn_net: hidden layers linear + relu, then a linear output layer (the official
 *             one has batch normalisation after each hidden layer: tema has no such op, see
 *             the README) [in] -> [out]
 *   man_ffn   feedforward(normalize(x)): y = LN(x); y + W2 relu(W1 y + b1) + b2 (the official
 *             residual adds the normalised input; dropout is commented out there)
 *   man_proj  tf.layers.dense(x, d): x W^T + b
 *
 * The official normalize() is a layer norm with eps 1e-8 and its own gamma / beta at every
 * call, so every man_ffn and every normalised input has its own. */
#ifndef TEMA_PLUGINS_ATTENTION_MAN_LAYERS_H
#define TEMA_PLUGINS_ATTENTION_MAN_LAYERS_H

#include "seq_streams.h"

#define MAN_MAX_LAYERS 4   /* hidden layers of an MLP option (mlp_layers, att_layers) */
#define MAN_MAX_WIDTH 4096 /* widest hidden layer */
#define MAN_LN_EPS 1e-8f   /* the official normalize()'s epsilon */

typedef struct man_mlp {
    int n; /* linear layers, the last one without activation */
    tema_tensor *w[MAN_MAX_LAYERS + 1], *b[MAN_MAX_LAYERS + 1];
} man_mlp;

typedef struct man_norm {
    tema_tensor *g, *b;
} man_norm;

typedef struct man_proj {
    tema_tensor *w, *b;
} man_proj;

typedef struct man_ffn {
    man_norm ln;
    man_proj in, out;
} man_ffn;

/* The hidden widths of an MLP option (a list of numbers): whole numbers in [1, MAN_MAX_WIDTH],
 * at most MAN_MAX_LAYERS of them. The option table checks the range of each entry; whether
 * it is whole and how many there are is checked here, by `tema check` (the plugin's check)
 * and again at create(). */
static inline tema_status man_read_widths(const tema_host *host, const tema_cfg *opts, const char *name,
                                          int64_t *widths, int *n_out, tema_err *err)
{
    size_t n = 0;
    tema_status st = opts ? host->cfg_floats(opts, name, NULL, &n) : TEMA_EINVAL;
    if (st != TEMA_OK) return plugin_opt_status(st, opts, "attention man", name, err);
    if (n > MAN_MAX_LAYERS)
        return tema_fail(err, TEMA_EINVAL, "attention man: %s has %zu hidden layers, at most %d are supported; hint: "
                                           "e.g. %s: [32, 16] (official)", name, n, MAN_MAX_LAYERS, name);
    double v[MAN_MAX_LAYERS];
    st = host->cfg_floats(opts, name, v, &n);
    if (st != TEMA_OK) return plugin_opt_status(st, opts, "attention man", name, err);
    for (size_t i = 0; i < n; i++) {
        if (!(v[i] >= 1 && v[i] <= MAN_MAX_WIDTH) || v[i] != floor(v[i]))
            return tema_fail(err, TEMA_EINVAL, "attention man: %s[%zu] = %g is not a layer width: widths are whole "
                                               "numbers in [1, %d]; hint: e.g. %s: [32, 16] (official)",
                             name, i, v[i], MAN_MAX_WIDTH, name);
        widths[i] = (int64_t)v[i];
    }
    *n_out = (int)n;
    return TEMA_OK;
}

/* Weights xavier (tf.layers.dense's glorot-uniform; see the README for the official MLPs'
 * N(0, 0.01^2)), biases 0 and not decayed. */
static inline tema_status man_declare_proj(const tema_host *host, tema_params *p, man_proj *o, const char *prefix,
                                           int64_t in, int64_t out, tema_err *err)
{
    char name[256];
    int64_t ws[2] = {out, in};
    snprintf(name, sizeof name, "%.200s.w", prefix);
    o->w = host->nn->param(p, name, 2, ws, TEMA_INIT_XAVIER, 1.0f, 0);
    snprintf(name, sizeof name, "%.200s.b", prefix);
    o->b = host->nn->param(p, name, 1, &out, TEMA_INIT_ZEROS, 1.0f, TEMA_TENSOR_NO_DECAY);
    if (!o->w || !o->b) return tema_fail(err, TEMA_ENOMEM, "attention man: cannot declare %s", prefix);
    return TEMA_OK;
}

static inline tema_status man_declare_norm(const tema_host *host, tema_params *p, man_norm *o, const char *prefix,
                                           int64_t d, tema_err *err)
{
    char name[256];
    snprintf(name, sizeof name, "%.200s.g", prefix);
    o->g = host->nn->param(p, name, 1, &d, TEMA_INIT_ONES, 1.0f, TEMA_TENSOR_NO_DECAY);
    snprintf(name, sizeof name, "%.200s.b", prefix);
    o->b = host->nn->param(p, name, 1, &d, TEMA_INIT_ZEROS, 1.0f, TEMA_TENSOR_NO_DECAY);
    if (!o->g || !o->b) return tema_fail(err, TEMA_ENOMEM, "attention man: cannot declare %s", prefix);
    return TEMA_OK;
}

static inline tema_status man_declare_ffn(const tema_host *host, tema_params *p, man_ffn *f, const char *prefix,
                                          int64_t d, tema_err *err)
{
    char name[256];
    snprintf(name, sizeof name, "%.200s.ln", prefix);
    tema_status st = man_declare_norm(host, p, &f->ln, name, d, err);
    snprintf(name, sizeof name, "%.200s.in", prefix);
    if (st == TEMA_OK) st = man_declare_proj(host, p, &f->in, name, d, d, err);
    snprintf(name, sizeof name, "%.200s.out", prefix);
    if (st == TEMA_OK) st = man_declare_proj(host, p, &f->out, name, d, d, err);
    return st;
}

/* in -> hidden[0] -> ... -> hidden[n-1] -> out */
static inline tema_status man_declare_mlp(const tema_host *host, tema_params *p, man_mlp *m, const char *prefix,
                                          int64_t in, const int64_t *hidden, int n_hidden, int64_t out, tema_err *err)
{
    char name[256];
    m->n = n_hidden + 1;
    int64_t from = in;
    tema_status st = TEMA_OK;
    for (int i = 0; i < m->n && st == TEMA_OK; i++) {
        const int64_t to = i < n_hidden ? hidden[i] : out;
        man_proj l;
        snprintf(name, sizeof name, "%.200s.l%d", prefix, i);
        st = man_declare_proj(host, p, &l, name, from, to, err);
        m->w[i] = l.w;
        m->b[i] = l.b;
        from = to;
    }
    return st;
}

/* The forwards return NULL when an op failed (the graph holds the reason). */

static inline tema_tensor *man_mlp_forward(const tema_nn_api *nn, tema_graph *g, const man_mlp *m, tema_tensor *x)
{
    for (int i = 0; x && i < m->n; i++) {
        x = nn->linear(g, x, m->w[i], m->b[i]);
        if (x && i + 1 < m->n) x = nn->relu(g, x);
    }
    return x;
}

static inline tema_tensor *man_norm_forward(const tema_nn_api *nn, tema_graph *g, const man_norm *n, tema_tensor *x)
{
    return x ? nn->layernorm(g, x, n->g, n->b, MAN_LN_EPS) : NULL;
}

static inline tema_tensor *man_proj_forward(const tema_nn_api *nn, tema_graph *g, const man_proj *o, tema_tensor *x)
{
    return x ? nn->linear(g, x, o->w, o->b) : NULL;
}

static inline tema_tensor *man_ffn_forward(const tema_nn_api *nn, tema_graph *g, const man_ffn *f, tema_tensor *x)
{
    tema_tensor *y = man_norm_forward(nn, g, &f->ln, x);
    tema_tensor *h = man_proj_forward(nn, g, &f->in, y);
    h = h ? nn->relu(g, h) : NULL;
    h = man_proj_forward(nn, g, &f->out, h);
    return h ? nn->add(g, y, h) : NULL;
}

/* x viewed with a new shape (NULL stays NULL): the many reshapes between [rows, d] and the
 * batched [B, L, d] of the attention products. */
static inline tema_tensor *man_view(const tema_nn_api *nn, tema_graph *g, tema_tensor *x, int ndim, int64_t a, int64_t b,
                                    int64_t c, int64_t e)
{
    const int64_t sh[4] = {a, b, c, e};
    return x ? nn->reshape(g, x, ndim, sh) : NULL;
}

#endif
