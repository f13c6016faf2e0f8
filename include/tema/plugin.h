/* tema/plugin.h - the plugin ABI, version 1.
 *
 * A plugin is a shared object exporting one symbol,
 *
 *     const tema_plugin *tema_plugin_entry(const tema_host *host);
 *
 * (write it with TEMA_PLUGIN_DEFINE). The host checks, before using anything else:
 *   - abi_major == TEMA_ABI_MAJOR (otherwise the plugin is rejected),
 *   - abi_minor <= TEMA_ABI_MINOR (a newer plugin may use services this host lacks),
 *   - struct_size and ops_size are at least the v1.0 sizes (fields are only appended),
 *   - every op the kind requires is set (one of each `x` / `x_with_host` pair).
 *
 * Compatibility rules: every struct here is append-only. A new field goes at the end
 * and bumps TEMA_ABI_MINOR; removing or reordering bumps TEMA_ABI_MAJOR.
 *
 * Ownership: the descriptor, option tables and ops tables are static data of the plugin
 * and must outlive dlclose-free use (the host never frees them). Instance state that a
 * create() call returns through `void **self` is owned by the plugin and released by the
 * matching destroy(). Everything the host passes in (configs, batches, datasets, tensors)
 * is owned by the host and valid only during the call unless stated otherwise.
 * Errors: every fallible entry returns tema_status and fills the tema_err it is given;
 * plugins never exit, abort or print to stdout (use host->log).
 */
#ifndef TEMA_PLUGIN_H
#define TEMA_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tema/nn.h"
#include "tema/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TEMA_ABI_MAJOR 1
#define TEMA_ABI_MINOR 8   /* 1.1: stream groups (sequence weights), item tags, mixture_nll;
                              1.2: text_features kind, plugin-valued options, host->text_features;
                              1.3: tema_tag_vocab.n_incomplete;
                              1.4: host->interrupted, tag ops that receive the host;
                              1.5: nn csr/spmm, infonce, bilinear, bce_with_logits (CDSR baselines);
                              1.6: tema_model_info's training sequences, attention aux_loss (C2DSR);
                              1.7: attention check (cross-option constraints at tema check);
                              1.8: nn detach (stop-gradient, MAN) */
#define TEMA_PLUGIN_ENTRY_SYMBOL "tema_plugin_entry"

typedef enum tema_kind {
    TEMA_KIND_BACKEND = 0,    /* compute backend: kernels + memory (tema/backend.h) */
    TEMA_KIND_ENCODER = 1,    /* item modality -> item embedding table */
    TEMA_KIND_ATTENTION = 2,  /* sequence model: sequences -> scoring streams */
    TEMA_KIND_TAG_SELECT = 3, /* item-tag scores -> selected tags */
    TEMA_KIND_TAG_REPR = 4,   /* selected tags -> weights */
    TEMA_KIND_TAGGER = 5,     /* titles -> tag vocabulary and item-tag scores */
    TEMA_KIND_LOSS = 6,       /* training objective */
    TEMA_KIND_TEXT_FEATURES = 7, /* texts -> frozen feature rows (ABI 1.2) */
    TEMA_KIND_COUNT = 8
} tema_kind;

/* ---- options: each plugin declares its own; the core validates and fills defaults ---- */
typedef enum tema_opt_type {
    TEMA_OPT_INT = 0,
    TEMA_OPT_FLOAT = 1,
    TEMA_OPT_BOOL = 2,
    TEMA_OPT_STRING = 3,
    TEMA_OPT_ENUM = 4,        /* one of `choices` ("a|b|c") */
    TEMA_OPT_FLOAT_LIST = 5,  /* a YAML list of numbers */
    TEMA_OPT_STRING_LIST = 6,
    /* ABI 1.2: a nested plugin map {plugin: NAME, ...its options} of the kind that `choices`
     * names (e.g. "text_features"); a bare NAME is shorthand for {plugin: NAME}. The core
     * validates it like a top-level plugin and fills its defaults; default_value is YAML
     * ("{plugin: hashed}"). Read it through a host service of that kind (host->text_features). */
    TEMA_OPT_PLUGIN = 7
} tema_opt_type;

typedef struct tema_option {
    const char *name;
    tema_opt_type type;
    const char *default_value; /* as YAML text; NULL = required */
    double min, max;           /* inclusive range for INT/FLOAT; min > max means unbounded */
    const char *choices;       /* ENUM only */
    const char *help;          /* one line */
} tema_option;

/* Opaque, read-only view of one YAML mapping (a plugin's own options, defaults filled). */
typedef struct tema_cfg tema_cfg;

/* ---- what the host offers every plugin (append-only; check struct_size) ---- */
typedef enum tema_log_level { TEMA_LOG_DEBUG = 0, TEMA_LOG_INFO = 1, TEMA_LOG_WARN = 2, TEMA_LOG_ERROR = 3 } tema_log_level;

struct tema_backend_ops;
struct tema_stream;
struct tema_targets;
struct tema_tag_selection;

typedef struct tema_host {
    uint32_t abi_major, abi_minor;
    uint32_t struct_size;
    void (*log)(tema_log_level level, const char *who, const char *fmt, ...);
    /* 64-byte aligned host memory; never NULL-checked by the caller's caller: check it. */
    void *(*alloc)(size_t bytes);
    void (*free)(void *p);
    /* Option access on a validated config (defaults already filled, so these only fail on
     * a name the plugin did not declare). Strings are owned by the config. */
    tema_status (*cfg_int)(const tema_cfg *c, const char *name, int64_t *out);
    tema_status (*cfg_float)(const tema_cfg *c, const char *name, double *out);
    tema_status (*cfg_bool)(const tema_cfg *c, const char *name, bool *out);
    tema_status (*cfg_str)(const tema_cfg *c, const char *name, const char **out);
    /* List option: *n elements; out may be NULL to query the length. */
    tema_status (*cfg_floats)(const tema_cfg *c, const char *name, double *out, size_t *n);
    const tema_nn_api *nn;                           /* autograd ops */
    const struct tema_backend_ops *(*backend)(void); /* active backend's kernels (tema/backend.h) */
    void *(*backend_self)(void);                     /* its instance */
    /* ---- ABI 1.1 (check struct_size) ---- */
    /* The training objective of a set of streams, given logp[k] = [R] log-probabilities of
     * each row's target under stream k alone (rows in the order of t). Streams are grouped
     * by their `sequence`; inside a group they mix with weights w_k / sum_group w; groups are
     * weighted by t->seq_weight for the row's target domain (see tema_targets):
     *   loss = sum_r weight_r sum_g seq_weight[D_r][g] * -log sum_{k in g} (w_k/W_g) p_k(t_r)
     *          / sum_r weight_r
     * *loss is a [1] tensor on g. One stream with sequence weights 1: plain mean cross-entropy. */
    tema_status (*mixture_nll)(tema_graph *g, tema_tensor *const *logp, const struct tema_stream *streams,
                               int n_streams, const struct tema_targets *t, tema_tensor **loss, tema_err *err);
    /* ---- ABI 1.2 (check struct_size) ---- */
    /* Feature rows of n texts by the text_features plugin configured in option `option` of c
     * (a TEMA_OPT_PLUGIN option of kind "text_features"). Computed once per (plugin, version,
     * settings, the files its path options name, texts) and stored under
     * <results>/features/<plugin>/; every later call with the same inputs reads the store.
     * texts[i] NULL or "" is no text (an all-zero row). `who` names the caller in progress lines and
     * errors. On success *out is [n * *dim] floats from host->alloc, owned by the caller
     * (release with host->free); on failure *out is NULL. */
    tema_status (*text_features)(const tema_cfg *c, const char *option, const char *const *texts, int64_t n,
                                 const char *who, float **out, int64_t *dim, tema_err *err);
    /* ---- ABI 1.4 (check struct_size) ---- */
    /* 0 while the run goes on; the signal number (SIGINT, SIGTERM) once the user asked tema to
     * stop. One flag for the whole process: a plugin that works for long (a tagger waiting on a
     * server, a feature encoder over many texts) polls it between units of work, keeps what it
     * finished (its cache) and returns TEMA_EINTERRUPTED; it never installs signal handlers. */
    int (*interrupted)(void);
} tema_host;

/* Whether a struct from the other side of the ABI (struct_size first set by its builder) is new
 * enough to hold `field`. */
#define TEMA_HAS_FIELD(p, type, field) ((p)->struct_size >= offsetof(type, field) + sizeof((p)->field))

/* host->interrupted() where the host offers it; 0 from a host older than ABI 1.4. */
static inline int tema_host_interrupted(const tema_host *host)
{
    return host && TEMA_HAS_FIELD(host, tema_host, interrupted) && host->interrupted ? host->interrupted() : 0;
}

/* ---- the descriptor ---- */
typedef struct tema_plugin {
    uint32_t abi_major, abi_minor;
    uint32_t struct_size;      /* sizeof(tema_plugin) as compiled into the plugin */
    tema_kind kind;
    const char *name;          /* unique within its kind, [a-z0-9_]+ */
    const char *version;       /* semantic version of the plugin */
    const char *description;   /* one line */
    const tema_option *options;
    uint32_t n_options;
    uint32_t ops_size;         /* sizeof the kind's ops struct as compiled into the plugin */
    const void *ops;           /* tema_<kind>_ops */
} tema_plugin;

typedef const tema_plugin *(*tema_plugin_entry_fn)(const tema_host *host);

/* Static builds (tests link plugins in) give each entry a unique name. */
#if defined(TEMA_PLUGIN_STATIC_NAME)
#define TEMA_PLUGIN_DEFINE(desc)                                                              \
    const tema_plugin *TEMA_PLUGIN_STATIC_NAME(const tema_host *host);                     \
    const tema_plugin *TEMA_PLUGIN_STATIC_NAME(const tema_host *host) { (void)host; return &(desc); }
#else
#define TEMA_PLUGIN_DEFINE(desc)                                                              \
    __attribute__((visibility("default"))) const tema_plugin *tema_plugin_entry(const tema_host *host); \
    __attribute__((visibility("default"))) const tema_plugin *tema_plugin_entry(const tema_host *host) \
    { (void)host; return &(desc); }
#endif

#define TEMA_PLUGIN_HEADER(kind_, name_, version_, desc_, opts_, ops_)                          \
    .abi_major = TEMA_ABI_MAJOR, .abi_minor = TEMA_ABI_MINOR, .struct_size = sizeof(tema_plugin), \
    .kind = (kind_), .name = (name_), .version = (version_), .description = (desc_),            \
    .options = (opts_), .n_options = (uint32_t)(sizeof(opts_) / sizeof((opts_)[0])),           \
    .ops_size = sizeof(ops_), .ops = &(ops_)

/* ---- model kinds ---- */

/* What a model plugin may know about the data (host-owned, valid for the model's life). */
typedef struct tema_model_info {
    uint32_t struct_size;
    int32_t n_x, n_y;              /* items of domain X (ids 0..n_x-1) and Y (n_x..n_x+n_y-1) */
    int32_t max_len;               /* L: sequence positions */
    const int64_t *train_counts;   /* [n_x+n_y] occurrences of each item in training lines */
    const char *const *titles;     /* [n_x+n_y], NULL entries where unknown */
    uint64_t seed;
    tema_params *params;           /* declare parameters here during create() */
    const tema_host *host;
    /* ---- ABI 1.1 (check struct_size >= offsetof(tema_model_info, item_tags) + sizeof(void *)) ----
     * Item tags after the experiment's tagger -> tag_select -> tag_repr pipeline; n_tags == 0
     * when the experiment configures none. Tag ids are global: domain X's vocabulary first,
     * then Y's; item_tags->score holds the tag_repr weights. */
    int32_t n_tags;
    const char *const *tag_names;  /* [n_tags] */
    const int32_t *tag_domain;     /* [n_tags] 0 = X, 1 = Y */
    const struct tema_tag_selection *item_tags; /* n_items == n_x + n_y */
    /* ---- ABI 1.6 (check TEMA_HAS_FIELD(info, tema_model_info, train_items)) ----
     * The training split's sequences, read-only: line i holds the global item ids
     * train_items[train_off[i] .. train_off[i+1]-1] in time order (Y ids offset by n_x), the
     * whole line as the data file has it (training windows are cut from it). Host-owned and
     * valid for the model's life (as long as the plugin instance); a plugin copies what it
     * needs beyond that. For models built on the training data itself (C2DSR's item graph).
     * n_train_lines == 0 with NULL arrays where the host has no training data to give. */
    int64_t n_train_lines;
    const int64_t *train_off;      /* [n_train_lines + 1], train_off[0] == 0 */
    const int32_t *train_items;    /* [train_off[n_train_lines]] */
} tema_model_info;

/* One mini-batch. Sequences are right-aligned (most recent at position L-1) and
 * padded on the left with -1. Host-owned, valid during forward(). */
typedef struct tema_batch {
    uint32_t struct_size;
    int32_t B, L;
    const int32_t *seq;    /* [B*L] merged sequence S^{X+Y}, global item ids */
    const int32_t *seq_x;  /* [B*L] S^X alone (right-aligned the same way) */
    const int32_t *seq_y;  /* [B*L] S^Y alone */
} tema_batch;

typedef struct tema_encoder_ops {
    tema_status (*create)(const tema_model_info *info, const tema_cfg *opts, void **self, tema_err *err);
    /* Item table [n_x+n_y, dim] for this step (a parameter, or computed from parameters). */
    tema_status (*forward)(void *self, tema_graph *g, tema_tensor **items, tema_err *err);
    int64_t (*dim)(const void *self);
    const char *(*modality)(const void *self); /* "id", "text", "image", "tag" */
    void (*destroy)(void *self);
} tema_encoder_ops;

/* A scoring stream: the model's probability of item j after position p is
 *   P(j) = sum_k weight_k * softmax_j( <h_k[p], items_k[j]> * inv_temp_k )
 * over the target's domain; most models have one stream of weight 1.
 * `sequence` tells which input sequence h_k summarises (for per-domain loss weights). */
typedef enum tema_seq_kind { TEMA_SEQ_MERGED = 0, TEMA_SEQ_X = 1, TEMA_SEQ_Y = 2 } tema_seq_kind;

/* Streams summarising the same sequence form a group (a mixture over modalities, Eq. 13-14
 * of the TEMA-LLM paper, weights normalised inside the group). Groups combine by sequence
 * weights that depend on the target's domain D (Eq. 15-16): w[D][TEMA_SEQ_*], e.g. 1 for D's
 * own sequence, lambda_1 for the other domain's, lambda_2 for the merged one:
 *   training:  sum_g w[D][g] * -log P_g(t)        inference: log sum_g w[D][g] P_g(j)   */
typedef struct tema_stream {
    tema_tensor *h;        /* [B*L, d] state after each position */
    tema_tensor *items;    /* [n_x+n_y, d] */
    float weight;
    float inv_temp;
    tema_seq_kind sequence;
} tema_stream;

#define TEMA_MAX_STREAMS 16

typedef struct tema_attention_ops {
    /* items[] are the encoders' tables in config order, n_enc of them. */
    tema_status (*create)(const tema_model_info *info, const tema_cfg *opts, const int64_t *enc_dims,
                          const char *const *enc_modalities, int n_enc, void **self, tema_err *err);
    tema_status (*forward)(void *self, tema_graph *g, const tema_batch *b, tema_tensor *const *items, int n_enc,
                           tema_stream *streams, int *n_streams, tema_err *err);
    void (*destroy)(void *self);
    /* ---- ABI 1.1, optional (NULL or absent: every weight 1) ----
     * w[d][s]: weight of the group of streams summarising sequence kind s (tema_seq_kind)
     * when the target is in domain d (0 = X, 1 = Y). */
    void (*sequence_weights)(const void *self, float w[2][3]);
    /* ---- ABI 1.6, optional (NULL or absent: none) ----
     * An auxiliary training objective of the model itself (C2DSR's contrastive infomax term),
     * which the trainer adds to the loss plugin's result with weight 1 (the plugin applies its
     * own weight, e.g. an option). Called on every training step (and on the trainer's probe
     * of an eval-mode graph) right after forward() on the same graph g, batch b and targets
     * t (the rows the loss plugin gets, seq_weight filled), before g is reset: it may use the
     * tensors forward() returned or kept in self. *loss: a [1] tensor on g, or NULL to add
     * nothing this step. b and t are host-owned and valid during the call only. Never called
     * by evaluation. */
    tema_status (*aux_loss)(void *self, tema_graph *g, const tema_batch *b, const struct tema_targets *t,
                            tema_tensor **loss, tema_err *err);
    /* ---- ABI 1.7, optional ----
     * The constraints between options that the option table cannot express (heads dividing the
     * width), checked by `tema check` and `tema run` before any data is read. enc_dims[i] is
     * encoder i's `dim` option, or 0 where the encoder declares none (then skip what needs it).
     * create() must still check the same, with the real widths. */
    tema_status (*check)(const tema_host *host, const tema_cfg *opts, const int64_t *enc_dims, int n_enc,
                         tema_err *err);
} tema_attention_ops;

/* Training rows: positions whose next item is a target. Host-owned during forward(). */
typedef struct tema_targets {
    uint32_t struct_size;
    int64_t rows;              /* R */
    const int32_t *row_index;  /* [R] row of h (b*L + p) */
    const int32_t *target;     /* [R] global item id */
    const int32_t *lo, *hi;    /* [R] item range of the target's domain */
    const float *weight;       /* [R] row weight (1 by default) */
    uint64_t seed;             /* for negative sampling this step */
    /* ---- ABI 1.1 (check struct_size) ---- */
    float seq_weight[2][3];    /* group weights by target domain and sequence kind (see tema_stream) */
} tema_targets;

typedef struct tema_loss_ops {
    tema_status (*create)(const tema_model_info *info, const tema_cfg *opts, void **self, tema_err *err);
    /* *loss is a [1] tensor on g. */
    tema_status (*forward)(void *self, tema_graph *g, const tema_stream *streams, int n_streams,
                           const tema_targets *t, tema_tensor **loss, tema_err *err);
    void (*destroy)(void *self);
} tema_loss_ops;

/* ---- tag kinds ---- */

/* Dense item-tag relevance, 0 = unrelated, 1..100 = relevance. Host-owned. */
typedef struct tema_tag_scores {
    int64_t n_items, n_tags;
    const float *score;        /* [n_items * n_tags] */
} tema_tag_scores;

/* A sparse selection: for item i, tags tag[off[i]..off[i+1]-1] with their scores.
 * Arrays allocated with host->alloc by the plugin; ownership passes to the caller,
 * which frees them with host->free. */
typedef struct tema_tag_selection {
    int64_t n_items;
    int64_t *off;              /* [n_items+1] */
    int32_t *tag;
    float *score;              /* scores of the selected tags; repr plugins overwrite with weights */
} tema_tag_selection;

/* The tag kinds' ops got the host in ABI 1.4 (entries `*_with_host`); before, a plugin kept
 * the host its entry point received. A plugin fills one of the two entries of each pair; the
 * host calls the one with the host when it is there. */
typedef struct tema_tag_select_ops {
    tema_status (*select)(const tema_cfg *opts, const tema_tag_scores *s, tema_tag_selection *out, tema_err *err);
    /* ---- ABI 1.4 ---- */
    tema_status (*select_with_host)(const tema_host *host, const tema_cfg *opts, const tema_tag_scores *s,
                                    tema_tag_selection *out, tema_err *err);
} tema_tag_select_ops;

typedef struct tema_tag_repr_ops {
    /* Replace sel->score with weights in [0,1] (in place). */
    tema_status (*weights)(const tema_cfg *opts, tema_tag_selection *sel, tema_err *err);
    /* ---- ABI 1.4 ---- */
    tema_status (*weights_with_host)(const tema_host *host, const tema_cfg *opts, tema_tag_selection *sel,
                                     tema_err *err);
} tema_tag_repr_ops;

/* Tag vocabulary and scores of one domain. Strings/arrays allocated with host->alloc,
 * owned by the caller afterwards (free each string, then the arrays). */
typedef struct tema_tag_vocab {
    int32_t n_tags;
    char **tags;
    float *score;              /* [n_items * n_tags] for the items passed in */
    /* ABI 1.3: items (and domain queries) the tagger got no answer for this time but would ask
     * for again (a server that failed, not an item without a title); 0 = complete. The core
     * zeroes it; a table with n_incomplete > 0 is used for this run, stored marked incomplete
     * and not reused: the next run calls the tagger again (which may answer from its own cache). */
    int64_t n_incomplete;
} tema_tag_vocab;

typedef struct tema_tagger_ops {
    tema_status (*create)(const tema_cfg *opts, const char *domain, void **self, tema_err *err);
    tema_status (*tag)(void *self, const char *const *titles, int64_t n_items, tema_tag_vocab *out, tema_err *err);
    void (*destroy)(void *self);
    /* ---- ABI 1.4: create() with the host, which outlives the instance (see the tag kinds above) ---- */
    tema_status (*create_with_host)(const tema_host *host, const tema_cfg *opts, const char *domain, void **self,
                                    tema_err *err);
} tema_tagger_ops;

/* ---- feature kinds (ABI 1.2) ---- */

/* Progress of a long computation: done of total units so far. May be NULL. */
typedef void (*tema_progress_fn)(void *ctx, int64_t done, int64_t total);

/* Texts to fixed-width feature rows (a sentence encoder, a hashed n-gram encoder, a CLIP
 * text tower). Plugins are called through host->text_features, which caches their output:
 * compute() must be a pure function of the options, files() and the texts. create() should
 * be cheap (it runs even when the store answers): load weights in compute(). */
typedef struct tema_text_features_ops {
    /* host outlives the instance; opts are validated (defaults filled). */
    tema_status (*create)(const tema_host *host, const tema_cfg *opts, void **self, tema_err *err);
    int64_t (*dim)(const void *self); /* F, the width of every row */
    /* The files and folders the rows depend on ('\n'-separated; a model folder found through
     * an environment variable or a default place), hashed into the store key so a changed
     * model is never answered from the store. NULL: none beyond the options. Owned by self. */
    const char *(*files)(const void *self);
    /* out: caller-owned [n * F]; row i for texts[i] (NULL or "": an all-zero row, no text).
     * May use the active backend's kernels (host->backend()); the host makes sure one is set. */
    tema_status (*compute)(void *self, const char *const *texts, int64_t n, float *out, tema_progress_fn progress,
                           void *progress_ctx, tema_err *err);
    void (*destroy)(void *self);
} tema_text_features_ops;

#ifdef __cplusplus
}
#endif
#endif
