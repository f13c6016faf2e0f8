/* plugins/text_features/bert/bert_model.h - a BERT encoder (Hugging Face BertModel layout)
 * on the active backend's kernels, for sentence embeddings.
 *
 * Generic over the checkpoint's config.json: hidden_size, num_hidden_layers,
 * num_attention_heads, intermediate_size, layer_norm_eps, max_position_embeddings,
 * vocab_size, type_vocab_size, hidden_act (gelu = exact erf; gelu_new / gelu_pytorch_tanh
 * = the tanh form), absolute positions only. Weights come from model.safetensors (F32, F16
 * or BF16; names with or without the "bert." prefix) and are checked against the config.
 *
 * Ownership: bert_config is plain data. bert_model owns one backend buffer holding every
 * weight (llm.c style: one allocation for parameters) and one for the activations of the
 * largest batch; bert_model_free releases both through the backend that made them. */
#ifndef TEMA_PLUGINS_BERT_MODEL_H
#define TEMA_PLUGINS_BERT_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "tema/backend.h"
#include "tema/status.h"

typedef struct bert_config {
    int64_t hidden, layers, heads, intermediate, max_positions, vocab, type_vocab;
    double eps;
    bool gelu_tanh; /* hidden_act gelu_new / gelu_pytorch_tanh instead of the exact erf form */
} bert_config;

/* Read <dir>/config.json; every problem names the file and the field. */
tema_status bert_config_load(const char *dir, bert_config *c, tema_err *err);

typedef struct bert_model {
    bert_config cfg;
    const tema_backend_ops *be;
    void *bs;
    float *weights;          /* backend memory, every parameter */
    size_t n_weights;
    struct bert_layout *layout; /* where each weight sits in `weights` (host memory, owned) */
    /* activations for batches of at most max_tokens tokens (backend memory, owned) */
    void *act;
    int64_t max_tokens;
} bert_model;

/* Upload the weights of <dir>/model.safetensors to the backend (be, bs). */
tema_status bert_model_load(bert_model *m, const char *dir, const bert_config *c, const tema_backend_ops *be, void *bs,
                            tema_err *err);
/* Size the activation buffer for batches up to max_tokens tokens (B*T); grows it when
 * needed. */
tema_status bert_model_reserve(bert_model *m, int64_t max_tokens, tema_err *err);
/* Last hidden states of B sequences padded to T tokens: ids [B*T] host memory (pads
 * anything valid, e.g. 0), len [B] real lengths (1..T). out: host [B*T*hidden]. */
tema_status bert_model_forward(bert_model *m, const int32_t *ids, const int32_t *len, int64_t B, int64_t T,
                               float *out, tema_err *err);
void bert_model_free(bert_model *m);

#endif
