/* plugins/attention/multi.c - TEMA's tag-enriched multi-attention (TEMA-LLM paper, III.F).
 *
 * One independent transformer stack (the SASRec block of transformer_block.h: learned
 * positions, layer norm, GELU feed-forward, dropout, causal) per (modality, sequence)
 * pair, over S^X, S^Y and S^{X+Y} for every configured encoder: up to twelve states h
 * (Eq. 11) with ID, image, text and tag encoders. A stack's input is its modality's item
 * table, L2-normalised and scaled by sqrt(d) (so modalities of any scale enter alike).
 *
 * Prediction (Eq. 12-13): per stream, cosine similarity between h and the modality's item
 * table divided by a temperature, softmax over the target domain's items (the loss and
 * the evaluator restrict to the domain). The streams over one sequence mix with weights
 * alpha_id, alpha_image, alpha_text and the remainder for tag, renormalised over the
 * modalities present (an encoder whose modality appears twice shares its alpha equally).
 * The three sequences combine by sequence_weights() (Eq. 15-16, see seq_streams.h).
 * Alignment of the S^X / S^Y states to merged rows: seq_streams.h. */
#include "seq_streams.h"

#define MULTI_N_MODALITIES 4

static const tema_option multi_options[] = {
    {"blocks", TEMA_OPT_INT, "2", 1, TB_MAX_BLOCKS, NULL, "transformer blocks per stack"},
    {"heads", TEMA_OPT_INT, "1", 1, 64, NULL, "attention heads (must divide every encoder dim)"},
    {"dropout", TEMA_OPT_FLOAT, "0.3", 0, 0.95, NULL, "dropout rate (paper: 0.3)"},
    {"ffn_mult", TEMA_OPT_INT, "1", 1, 16, NULL, "feed-forward width as a multiple of d"},
    {"alpha_id", TEMA_OPT_FLOAT, "0.4", 0, 1, NULL, "weight of the ID modality (paper alpha_1)"},
    {"alpha_image", TEMA_OPT_FLOAT, "0.2", 0, 1, NULL, "weight of the image modality (alpha_2)"},
    {"alpha_text", TEMA_OPT_FLOAT, "0.2", 0, 1, NULL, "weight of the text modality (alpha_3); tag gets 1 - the three"},
    {"lambda_1", TEMA_OPT_FLOAT, "0.3", 0, 1000, NULL, "weight of the other domain's sequence (Eq. 15-16)"},
    {"lambda_2", TEMA_OPT_FLOAT, "0.1", 0, 1000, NULL, "weight of the merged sequence (Eq. 15-16)"},
    {"sequences", TEMA_OPT_STRING, "x,y,merged", 0, -1, NULL,
     "sequences with a stack: a subset of x, y, merged (\"merged\" = without multi-attention)"},
    {"temperature", TEMA_OPT_FLOAT, "0.07", 0.0101, 100, NULL, "cosine softmax temperature tau (logits = cos / tau)"},
    {"learnable_temperature", TEMA_OPT_BOOL, "false", 0, -1, NULL,
     "learn 1/tau per stream (starts at 1/temperature, at most 100)"},
};

static const char *const multi_modalities[MULTI_N_MODALITIES] = {"id", "image", "text", "tag"};

#define MULTI_MAX_ENC (TEMA_MAX_STREAMS)

typedef struct multi_attn {
    const tema_host *host;
    int32_t n_x, max_len;
    int n_enc;
    ss_config cfg;
    float enc_weight[MULTI_MAX_ENC];   /* normalised alpha of each encoder; 0 = dropped */
    tb_stack stack[3][MULTI_MAX_ENC];  /* [tema_seq_kind][encoder] */
    ss_head head[3][MULTI_MAX_ENC];
    tb_scratch scratch;
    ss_scratch ss;
    ss_layout layout[3];
} multi_attn;

static void multi_destroy(void *self)
{
    multi_attn *a = self;
    if (!a) return;
    free(a->scratch.mask);
    ss_scratch_free(&a->ss);
    for (int q = 0; q < 3; q++) ss_layout_free(&a->layout[q]);
    free(a);
}

static tema_status multi_create(const tema_model_info *info, const tema_cfg *opts, const int64_t *enc_dims,
                                const char *const *enc_modalities, int n_enc, void **self, tema_err *err)
{
    const tema_host *host = info->host;
    tb_config tc;
    ss_config sc;
    double alpha[MULTI_N_MODALITIES];
    tema_status st = tb_read_config(host, opts, "multi", &tc, err);
    if (st == TEMA_OK) st = ss_read_config(host, opts, "multi", &sc, err);
    for (int m = 0; m < 3 && st == TEMA_OK; m++) {
        char name[32];
        snprintf(name, sizeof name, "alpha_%s", multi_modalities[m]);
        st = plugin_opt_float(host, opts, "attention multi", name, &alpha[m], err);
    }
    if (st != TEMA_OK) return st;
    /* the tag modality has no option: it gets what the others leave */
    alpha[3] = 1.0 - alpha[0] - alpha[1] - alpha[2];
    if (alpha[3] < -1e-9)
        return tema_fail(err, TEMA_EINVAL, "attention multi: alpha_id + alpha_image + alpha_text = %g exceeds 1 (the tag "
                                           "modality gets the remainder); hint: lower them",
                         alpha[0] + alpha[1] + alpha[2]);
    if (alpha[3] < 0) alpha[3] = 0;
    if (n_enc < 1) return tema_fail(err, TEMA_EINVAL, "attention multi: needs at least one encoder (model.encoders)");
    int n_seq = sc.use[0] + sc.use[1] + sc.use[2];
    if (n_enc * n_seq > TEMA_MAX_STREAMS)
        return tema_fail(err, TEMA_EINVAL, "attention multi: %d encoders x %d sequences = %d streams, at most %d are "
                                           "supported; hint: drop an encoder or a sequence",
                         n_enc, n_seq, n_enc * n_seq, TEMA_MAX_STREAMS);

    /* each encoder's alpha: its modality's, shared among encoders of the same modality */
    int mod_of[MULTI_MAX_ENC], count[MULTI_N_MODALITIES] = {0};
    for (int i = 0; i < n_enc; i++) {
        mod_of[i] = -1;
        for (int m = 0; m < MULTI_N_MODALITIES; m++)
            if (enc_modalities[i] && !strcmp(enc_modalities[i], multi_modalities[m])) mod_of[i] = m;
        if (mod_of[i] < 0)
            return tema_fail(err, TEMA_EINVAL, "attention multi: encoder %d has modality '%s'; multi weighs id, image, "
                                               "text and tag only; hint: use attention fused for other modalities",
                             i, enc_modalities[i] ? enc_modalities[i] : "(none)");
        count[mod_of[i]]++;
    }
    double w[MULTI_MAX_ENC], total = 0;
    for (int i = 0; i < n_enc; i++) total += w[i] = alpha[mod_of[i]] / count[mod_of[i]];
    if (!(total > 0))
        return tema_fail(err, TEMA_EINVAL, "attention multi: every configured modality has weight 0; hint: raise the "
                                           "alpha of one of the encoders' modalities");

    multi_attn *a = calloc(1, sizeof *a);
    if (!a) return tema_fail(err, TEMA_ENOMEM, "attention multi: out of memory");
    a->host = host;
    a->n_x = info->n_x;
    a->max_len = info->max_len;
    a->n_enc = n_enc;
    a->cfg = sc;
    for (int i = 0; i < n_enc && st == TEMA_OK; i++) {
        a->enc_weight[i] = (float)(w[i] / total);
        if (a->enc_weight[i] <= 0) {
            host->log(TEMA_LOG_WARN, "attention multi", "encoder %d (%s) has weight 0 and is left out", i,
                      enc_modalities[i]);
            continue;
        }
        for (int q = 0; q < 3 && st == TEMA_OK; q++) {
            if (!sc.use[q]) continue;
            char prefix[128];
            snprintf(prefix, sizeof prefix, "attention.multi.enc%d_%s.%s", i, enc_modalities[i], ss_seq_names[q]);
            st = tb_declare(&a->stack[q][i], host, info->params, prefix, enc_dims[i], info->max_len, &tc, "multi", err);
            if (st == TEMA_OK)
                st = ss_declare_head(&a->head[q][i], host, info->params, prefix, enc_dims[i], sc.learnable_temperature,
                                     "multi", err);
        }
    }
    if (st != TEMA_OK) {
        multi_destroy(a);
        return st;
    }
    *self = a;
    return TEMA_OK;
}

#define NN_CHECK(x)                                                                                 \
    do {                                                                                            \
        if (!(x)) return tema_fail(err, TEMA_EINTERNAL, "attention multi: %s", nn->error(g));      \
    } while (0)

static tema_status multi_forward(void *self, tema_graph *g, const tema_batch *b, tema_tensor *const *items, int n_enc,
                                 tema_stream *streams, int *n_streams, tema_err *err)
{
    multi_attn *a = self;
    const tema_nn_api *nn = a->host->nn;
    if (n_enc != a->n_enc)
        return tema_fail(err, TEMA_EINVAL, "attention multi: built for %d encoders, given %d tables", a->n_enc, n_enc);
    if (b->L < 1 || b->L > a->max_len)
        return tema_fail(err, TEMA_EINVAL, "attention multi: batch length %d outside [1, max_len %d]", (int)b->L,
                         (int)a->max_len);
    const int64_t B = b->B, L = b->L, BL = B * L;
    tema_status st = TEMA_OK;
    for (int q = 0; q < 3 && st == TEMA_OK; q++)
        if (a->cfg.use[q]) st = ss_build_layout(&a->layout[q], b, q, a->n_x, "multi", err);
    if (st != TEMA_OK) return st;
    int n = 0;
    for (int i = 0; i < n_enc; i++) {
        if (a->enc_weight[i] <= 0) continue;
        if (!items[i] || items[i]->ndim != 2)
            return tema_fail(err, TEMA_EINVAL, "attention multi: encoder %d gave no 2-D item table", i);
        const int64_t d = items[i]->shape[1];
        tema_tensor *normed = nn->l2norm(g, items[i], SS_NORM_EPS);
        NN_CHECK(normed);
        for (int q = 0; q < 3; q++) {
            if (!a->cfg.use[q]) continue;
            const tb_stack *s = &a->stack[q][i];
            if (d != s->d)
                return tema_fail(err, TEMA_EINVAL, "attention multi: encoder %d table width %lld != %lld", i,
                                 (long long)d, (long long)s->d);
            const ss_layout *l = &a->layout[q];
            tema_tensor *hs = NULL;
            if (l->Lc > 0) {
                st = tb_forward(s, nn, g, &a->scratch, normed, sqrtf((float)d), l->ids, l->pos, B, l->Lc, &hs, "multi",
                                err);
                if (st != TEMA_OK) return st;
            }
            tema_tensor *h = NULL;
            float inv_temp = 1.0f;
            st = ss_head_output(&a->head[q][i], &a->cfg, &a->ss, nn, g, l, hs, BL, &h, &inv_temp, "multi", err);
            if (st != TEMA_OK) return st;
            streams[n++] = (tema_stream){.h = h, .items = normed, .weight = a->enc_weight[i], .inv_temp = inv_temp,
                                         .sequence = (tema_seq_kind)q};
        }
    }
    *n_streams = n;
    return TEMA_OK;
}

static void multi_sequence_weights(const void *self, float w[2][3])
{
    ss_sequence_weights(&((const multi_attn *)self)->cfg, w);
}

/* one stack per encoder, each as wide as its encoder */
static tema_status multi_check(const tema_host *host, const tema_cfg *opts, const int64_t *enc_dims, int n_enc,
                               tema_err *err)
{
    tema_status st = TEMA_OK;
    for (int i = 0; i < n_enc && st == TEMA_OK; i++) st = tb_check_heads(host, opts, "multi", enc_dims[i], err);
    return st;
}

static const tema_attention_ops multi_ops = {.create = multi_create, .forward = multi_forward,
                                             .destroy = multi_destroy, .sequence_weights = multi_sequence_weights,
                                             .check = multi_check};

static const tema_plugin multi_plugin = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_ATTENTION, "multi", "1.0.0",
                       "TEMA multi-attention: one stack per (modality, sequence), cosine/temperature prediction",
                       multi_options, multi_ops)};
TEMA_PLUGIN_DEFINE(multi_plugin)
