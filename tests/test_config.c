/* Experiment configuration: the shipped experiment files, located errors for every kind of
 * mistake, --set overrides, the defaults < file < command line order, plugin option
 * defaults, canonical JSON and the YAML emitter. Plugins are small descriptors defined
 * here, so these tests do not depend on the real plugins. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "host.h"
#include "registry.h"
#include "tema/backend.h"
#include "testutil.h"

/* ---- test plugins: one of each kind the core schema uses, options of every type ---- */

static const tema_backend_ops backend_ops;
/* The registry wants every required op of a model kind set; these tests never call them. */
static tema_status stub_fail(tema_err *err) { return tema_fail(err, TEMA_EUNSUPPORTED, "test stub"); }
static tema_status enc_create(const tema_model_info *i, const tema_cfg *o, void **self, tema_err *err)
{
    (void)i, (void)o, (void)self;
    return stub_fail(err);
}
static tema_status enc_forward(void *self, tema_graph *g, tema_tensor **items, tema_err *err)
{
    (void)self, (void)g, (void)items;
    return stub_fail(err);
}
static int64_t enc_dim(const void *self) { return (void)self, 0; }
static const char *enc_modality(const void *self) { return (void)self, "id"; }
static void stub_destroy(void *self) { (void)self; }
static tema_status att_create(const tema_model_info *i, const tema_cfg *o, const int64_t *dims, const char *const *mods,
                              int n, void **self, tema_err *err)
{
    (void)i, (void)o, (void)dims, (void)mods, (void)n, (void)self;
    return stub_fail(err);
}
static tema_status att_forward(void *self, tema_graph *g, const tema_batch *b, tema_tensor *const *items, int n,
                               tema_stream *streams, int *n_streams, tema_err *err)
{
    (void)self, (void)g, (void)b, (void)items, (void)n, (void)streams, (void)n_streams;
    return stub_fail(err);
}
static tema_status loss_create(const tema_model_info *i, const tema_cfg *o, void **self, tema_err *err)
{
    (void)i, (void)o, (void)self;
    return stub_fail(err);
}
static tema_status loss_forward(void *self, tema_graph *g, const tema_stream *streams, int n, const tema_targets *t,
                                tema_tensor **loss, tema_err *err)
{
    (void)self, (void)g, (void)streams, (void)n, (void)t, (void)loss;
    return stub_fail(err);
}
static const tema_encoder_ops encoder_ops = {.create = enc_create, .forward = enc_forward, .dim = enc_dim,
                                             .modality = enc_modality, .destroy = stub_destroy};
static const tema_attention_ops attention_ops = {.create = att_create, .forward = att_forward, .destroy = stub_destroy};
static const tema_loss_ops loss_ops = {.create = loss_create, .forward = loss_forward, .destroy = stub_destroy};

static const tema_option cpu_opts[] = {
    {"threads", TEMA_OPT_INT, "1", 1, 256, NULL, "threads"},
};
static const tema_option id_opts[] = {
    {"dim", TEMA_OPT_INT, "64", 1, 4096, NULL, "embedding size"},
    {"init_std", TEMA_OPT_FLOAT, "0.02", 0, 10, NULL, "init"},
    {"cache_dir", TEMA_OPT_STRING, "", 1, 0, NULL, "a path option"},
};
static const tema_option single_opts[] = {
    {"blocks", TEMA_OPT_INT, "2", 1, 64, NULL, "blocks"},
    {"heads", TEMA_OPT_INT, "1", 1, 64, NULL, "heads"},
    {"dropout", TEMA_OPT_FLOAT, "0.2", 0, 1, NULL, "dropout"},
    {"causal", TEMA_OPT_BOOL, "true", 1, 0, NULL, "mask the future"},
    {"norm", TEMA_OPT_ENUM, "layer", 1, 0, "layer|rms|none", "normalisation"},
    {"gates", TEMA_OPT_FLOAT_LIST, "[0.5, 0.5]", 0, 1, NULL, "stream weights"},
    {"tags", TEMA_OPT_STRING_LIST, "[a, b]", 1, 0, NULL, "names"},
};
static const tema_option fs_opts[] = {
    {"positions", TEMA_OPT_INT, "0", 0, 512, NULL, "last positions trained"},
    {"temperature", TEMA_OPT_FLOAT, NULL, 0, 100, NULL, "required: no default"},
};

static const tema_plugin p_cpu = {TEMA_PLUGIN_HEADER(TEMA_KIND_BACKEND, "cpu", "1.0", "cpu", cpu_opts, backend_ops)};
static const tema_plugin p_id = {TEMA_PLUGIN_HEADER(TEMA_KIND_ENCODER, "id", "1.0", "ids", id_opts, encoder_ops)};
static const tema_plugin p_single = {
    TEMA_PLUGIN_HEADER(TEMA_KIND_ATTENTION, "single", "1.0", "sasrec", single_opts, attention_ops)};
static const tema_plugin p_pop = {.abi_major = TEMA_ABI_MAJOR, .abi_minor = TEMA_ABI_MINOR,
                                  .struct_size = sizeof(tema_plugin), .kind = TEMA_KIND_ATTENTION, .name = "pop",
                                  .version = "1.0", .description = "popularity", .ops_size = sizeof attention_ops,
                                  .ops = &attention_ops};
static const tema_plugin p_fs = {TEMA_PLUGIN_HEADER(TEMA_KIND_LOSS, "full_softmax", "1.0", "ce", fs_opts, loss_ops)};

static const tema_plugin *e_cpu(const tema_host *h) { (void)h; return &p_cpu; }
static const tema_plugin *e_id(const tema_host *h) { (void)h; return &p_id; }
static const tema_plugin *e_single(const tema_host *h) { (void)h; return &p_single; }
static const tema_plugin *e_pop(const tema_host *h) { (void)h; return &p_pop; }
static const tema_plugin *e_fs(const tema_host *h) { (void)h; return &p_fs; }

static tema_registry *test_registry(void)
{
    tema_registry *r = tema_registry_new(tema_host_get());
    ck_assert_ptr_nonnull(r);
    tema_plugin_entry_fn entries[] = {e_cpu, e_id, e_single, e_pop, e_fs};
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++) {
        tema_err err = {0};
        ck_assert_msg(tema_registry_add_entry(r, entries[i], "test", &err) == TEMA_OK, "%s", err.msg);
    }
    return r;
}

/* ---- helpers ---- */

static char dir[256];     /* this test's temp folder */
static char dataset[512]; /* an existing file standing in for a dataset */

static void setup(void)
{
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    snprintf(dataset, sizeof dataset, "%s/data.tar.gz", dir);
    tu_write(dataset, "not really an archive: existence is all validation checks\n");
}

/* A minimal valid experiment (+ extra lines), with the temp dataset. */
static const char *write_exp(const char *name, const char *body)
{
    static char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t n = strlen(body) + strlen(dataset) + 64;
    char *text = malloc(n);
    /* %DATA% in body stands for the dataset path */
    const char *at = strstr(body, "%DATA%");
    if (at) snprintf(text, n, "%.*s%s%s", (int)(at - body), body, dataset, at + 6);
    else snprintf(text, n, "%s", body);
    tu_write(path, text);
    free(text);
    return path;
}

typedef struct outcome {
    tema_status st;
    tema_cfg *cfg;
    tema_err err;
    char *diag; /* everything printed to the diag stream */
} outcome;

static outcome resolve(const char *path, const char *const *sets, int n_sets)
{
    outcome o = {0};
    size_t len = 0;
    FILE *f = open_memstream(&o.diag, &len);
    ck_assert_ptr_nonnull(f);
    tema_registry *r = test_registry();
    o.st = tema_cfg_resolve(path, sets, n_sets, r, f, &o.cfg, &o.err);
    fclose(f);
    tema_registry_free(r);
    if (o.st == TEMA_OK) ck_assert_ptr_nonnull(o.cfg);
    else ck_assert_ptr_null(o.cfg);
    return o;
}

static void done(outcome *o)
{
    tema_cfg_free(o->cfg);
    free(o->diag);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static const char *val(const tema_cfg *c, const char *path)
{
    const tema_cfg *n = tema_cfg_get(c, path);
    ck_assert_msg(n != NULL, "%s is missing", path);
    ck_assert_msg(n->type == TEMA_CFG_SCALAR, "%s is not a scalar", path);
    return n->value;
}

#define MINIMAL "name: t\ndataset: {path: %DATA%}\n"

/* ---- the shipped experiments ---- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot read %s", path);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strdup(buf);
}

/* The experiment file with its dataset path replaced by the temp dataset. */
static const char *shipped(const char *name, const char *data_path)
{
    char src[1024];
    snprintf(src, sizeof src, "%s/experiments/%s", tu_source_root(), name);
    char *text = read_text(src);
    char *at = strstr(text, data_path);
    ck_assert_msg(at != NULL, "%s does not mention %s", name, data_path);
    size_t n = strlen(text) + strlen(dataset) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%%DATA%%%s", (int)(at - text), text, at + strlen(data_path));
    const char *path = write_exp(name, out);
    free(out);
    free(text);
    return path;
}

START_TEST(t_sasrec_experiment_passes)
{
    setup();
    const char *sets[] = {"loss.temperature=1"}; /* the test loss has a required option */
    outcome o = resolve(shipped("sasrec-food-kitchen.yaml", "../shared/data/food-kitchen-c2dsr.tar.gz"), sets, 1);
    ck_assert_msg(o.st == TEMA_OK, "%s\n%s", o.err.msg, o.diag);
    ck_assert_str_eq(o.diag, "");
    ck_assert_str_eq(val(o.cfg, "name"), "sasrec-food-kitchen");
    ck_assert_str_eq(val(o.cfg, "dataset.path"), dataset);
    ck_assert_str_eq(val(o.cfg, "dataset.max_len"), "15");
    ck_assert_str_eq(val(o.cfg, "dataset.train_file"), "traindata_new.txt");
    ck_assert_str_eq(val(o.cfg, "backend.threads"), "2");
    ck_assert_str_eq(val(o.cfg, "model.encoders.0.plugin"), "id");
    ck_assert_str_eq(val(o.cfg, "model.encoders.0.dim"), "256");
    ck_assert_str_eq(val(o.cfg, "model.attention.dropout"), "0.2");
    ck_assert_str_eq(val(o.cfg, "loss.positions"), "10");
    ck_assert_str_eq(val(o.cfg, "train.lr"), "0.001");
    ck_assert_str_eq(val(o.cfg, "train.weight_decay"), "0.0005");
    ck_assert_str_eq(val(o.cfg, "train.seed"), "2040");
    ck_assert_str_eq(val(o.cfg, "train.grad_clip"), "0");
    ck_assert_str_eq(val(o.cfg, "train.resume"), "true");
    ck_assert_str_eq(val(o.cfg, "eval.protocol"), "sampled");
    ck_assert_str_eq(val(o.cfg, "eval.negatives"), "999");
    ck_assert_str_eq(val(o.cfg, "eval.metrics.2"), "ndcg@10");
    ck_assert_int_eq(tema_cfg_get(o.cfg, "eval.metrics")->n_items, 6);
    ck_assert_int_eq(tema_cfg_int(o.cfg, "train.batch_size", -1), 256);
    ck_assert_double_eq(tema_cfg_float(o.cfg, "train.lr", -1), 1e-3);
    ck_assert(tema_cfg_bool(o.cfg, "train.resume", false));
    done(&o);
}
END_TEST

START_TEST(t_pop_and_quickstart_pass)
{
    setup();
    const char *sets[] = {"loss.temperature=1"};
    outcome o = resolve(shipped("pop-food-kitchen.yaml", "../shared/data/food-kitchen-c2dsr.tar.gz"), sets, 1);
    ck_assert_msg(o.st == TEMA_OK, "%s\n%s", o.err.msg, o.diag);
    ck_assert_str_eq(val(o.cfg, "model.attention.plugin"), "pop");
    done(&o);

    /* `synthetic` is a word, not a path: neither resolved nor required to exist */
    char src[1024];
    snprintf(src, sizeof src, "%s/experiments/quickstart.yaml", tu_source_root());
    o = resolve(src, sets, 1);
    ck_assert_msg(o.st == TEMA_OK, "%s\n%s", o.err.msg, o.diag);
    ck_assert_str_eq(val(o.cfg, "dataset.path"), "synthetic");
    ck_assert_str_eq(val(o.cfg, "model.encoders.0.dim"), "64");
    ck_assert_str_eq(val(o.cfg, "train.epochs"), "20");
    ck_assert_str_eq(val(o.cfg, "train.eval_every"), "2");
    ck_assert_str_eq(val(o.cfg, "train.patience"), "3");
    ck_assert_str_eq(val(o.cfg, "train.batch_size"), "256");
    done(&o);
}
END_TEST

/* ---- located errors ---- */

START_TEST(t_misspelt_key)
{
    setup();
    const char *p = write_exp("typo.yaml", MINIMAL "loss: {plugin: full_softmax, temperature: 1}\n"
                                                   "train:\n"
                                                   "  epochs: 3\n"
                                                   "  lerning_rate: 0.01\n");
    outcome o = resolve(p, NULL, 0);
    ck_assert_int_eq(o.st, TEMA_EINVAL);
    char want[1024];
    snprintf(want, sizeof want, "%s:6:3: unknown key 'lerning_rate' in train; did you mean 'lr'?", p);
    ck_assert_str_eq(o.err.msg, want);
    ck_assert_msg(strstr(o.diag, want) && count_lines(o.diag) == 1, "%s", o.diag);
    done(&o);

    /* plugin options get the same treatment, and a far-off key lists the valid ones */
    p = write_exp("typo2.yaml", MINIMAL "loss: {plugin: full_softmax, temperature: 1}\n"
                                        "model:\n"
                                        "  attention: {plugin: single, head: 2}\n"
                                        "zzz: 1\n");
    o = resolve(p, NULL, 0);
    snprintf(want, sizeof want,
             "%s:5:31: unknown key 'head' in model.attention (an option of attention plugin 'single'); did you mean "
             "'heads'?",
             p);
    ck_assert_msg(strstr(o.diag, want), "%s", o.diag);
    snprintf(want, sizeof want, "%s:6:1: unknown key 'zzz' at the top level; valid keys: name, description, results_dir, dataset,", p);
    ck_assert_msg(strstr(o.diag, want), "%s", o.diag);
    done(&o);
}
END_TEST

START_TEST(t_every_problem_reported_in_file_order)
{
    setup();
    const char *p = write_exp("bad.yaml", MINIMAL "loss: {plugin: full_softmax, temperature: 1}\n"
                                                  "train:\n"
                                                  "  batch_size: big\n"
                                                  "  epochs: 0\n"
                                                  "  lr: -1\n"
                                                  "model:\n"
                                                  "  attention: {plugin: singel}\n"
                                                  "  encoders: [{plugin: id, dim: 5000}]\n"
                                                  "eval: {protocol: ful, metrics: [mrr, ndgc@10]}\n");
    outcome o = resolve(p, NULL, 0);
    ck_assert_int_ne(o.st, TEMA_OK);
    const char *want[] = {
        ":5:15: train.batch_size: expected an integer, got 'big'\n",
        ":6:11: train.epochs: 0 is out of range (must be in [1, 100000])\n",
        ":7:7: train.lr: -1 is out of range (must be > 0)\n",
        ":9:23: model.attention.plugin: unknown attention plugin 'singel'; did you mean 'single'? available: single, "
        "pop\n",
        ":10:32: model.encoders.0.dim: 5000 is out of range (must be in [1, 4096])\n",
        ":11:18: eval.protocol: expected one of sampled|full, got 'ful'; did you mean 'full'?\n",
        ":11:38: eval.metrics.1: unknown metric 'ndgc@10'; expected mrr, ndcg@K or hr@K",
    };
    ck_assert_int_eq(count_lines(o.diag), 7);
    const char *at = o.diag;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char line[1024];
        snprintf(line, sizeof line, "%s%s", p, want[i]);
        const char *hit = strstr(at, line);
        ck_assert_msg(hit != NULL, "missing or out of order: %s\nin:\n%s", line, o.diag);
        at = hit + 1;
    }
    /* err holds the first */
    char first[1024];
    snprintf(first, sizeof first, "%s:5:15: train.batch_size: expected an integer, got 'big'", p);
    ck_assert_str_eq(o.err.msg, first);
    done(&o);
}
END_TEST

START_TEST(t_missing_required)
{
    setup();
    const char *p = write_exp("missing.yaml", "description: no name, no data\n"
                                              "loss: {plugin: full_softmax}\n");
    outcome o = resolve(p, NULL, 0);
    ck_assert_int_ne(o.st, TEMA_OK);
    ck_assert_msg(strstr(o.diag, "missing required key 'name'"), "%s", o.diag);
    ck_assert_msg(strstr(o.diag, "missing required key 'dataset.path'"), "%s", o.diag);
    ck_assert_msg(strstr(o.diag, "loss: missing required option 'temperature' of loss plugin 'full_softmax' (it has "
                                 "no default); temperature: required: no default"),
                  "%s", o.diag); /* the option's help, what a user has to go on */
    ck_assert_int_eq(count_lines(o.diag), 3);
    done(&o);

    /* a dataset path that does not exist is caught before any work */
    p = write_exp("nodata.yaml", "name: t\n"
                                 "dataset:\n"
                                 "  path: no/such/bundle.tar.gz\n"
                                 "loss: {plugin: full_softmax, temperature: 1}\n");
    o = resolve(p, NULL, 0);
    ck_assert_int_eq(o.st, TEMA_ENOTFOUND);
    char want[1024];
    snprintf(want, sizeof want, "%s:3:9: dataset.path: '", p);
    ck_assert_msg(!strncmp(o.err.msg, want, strlen(want)) && strstr(o.err.msg, "/no/such/bundle.tar.gz' does not exist"),
                  "%s", o.err.msg);
    done(&o);
}
END_TEST

START_TEST(t_yaml_syntax_error_located)
{
    setup();
    const char *p = write_exp("syntax.yaml", "name: t\n"
                                             "train:\n"
                                             "  epochs: 3\n"
                                             " lr: 0.1\n");
    outcome o = resolve(p, NULL, 0);
    ck_assert_int_eq(o.st, TEMA_EFORMAT);
    char want[1024];
    snprintf(want, sizeof want, "%s:4:2: YAML syntax error: did not find expected key", p);
    ck_assert_msg(!strncmp(o.err.msg, want, strlen(want)), "%s", o.err.msg);
    ck_assert_msg(strstr(o.diag, want), "%s", o.diag);
    done(&o);

    p = write_exp("syntax2.yaml", "name: t\n"
                                  "eval: {metrics: [mrr, hr@1}\n");
    o = resolve(p, NULL, 0);
    snprintf(want, sizeof want, "%s:2:27: YAML syntax error: did not find expected ',' or ']'", p);
    ck_assert_msg(!strncmp(o.err.msg, want, strlen(want)), "%s", o.err.msg);
    done(&o);

    p = write_exp("dup.yaml", "name: t\nname: u\n");
    o = resolve(p, NULL, 0);
    snprintf(want, sizeof want, "%s:2:1: duplicate key 'name' (first given at line 1)", p);
    ck_assert_msg(!strncmp(o.err.msg, want, strlen(want)), "%s", o.err.msg);
    done(&o);

    /* in a big mapping (hashed), the duplicate far from the first, nested */
    size_t cap = 20000 * 32 + 256, len = 0;
    char *big = malloc(cap);
    len += (size_t)snprintf(big + len, cap - len, "name: t\nreport:\n  nested:\n");
    for (int i = 0; i < 20000; i++) len += (size_t)snprintf(big + len, cap - len, "    k%d: %d\n", i, i);
    snprintf(big + len, cap - len, "    k17: again\n");
    p = write_exp("dup-big.yaml", big);
    free(big);
    o = resolve(p, NULL, 0);
    snprintf(want, sizeof want, "%s:20004:5: duplicate key 'k17' (first given at line 21)", p);
    ck_assert_msg(!strncmp(o.err.msg, want, strlen(want)), "%s", o.err.msg);
    done(&o);
}
END_TEST

/* ---- overrides and precedence ---- */

START_TEST(t_set_overrides)
{
    setup();
    const char *p = write_exp("set.yaml", MINIMAL "loss: {plugin: full_softmax, temperature: 1}\n"
                                                  "model:\n"
                                                  "  encoders: [{plugin: id, dim: 256}]\n"
                                                  "train: {lr: 0.01}\n");
    /* scalar, list index, and a YAML flow value that replaces a whole list */
    const char *sets[] = {"train.lr=1e-4", "model.encoders.0.dim=64", "train.resume=no", "description='a b: c'"};
    outcome o = resolve(p, sets, 4);
    ck_assert_msg(o.st == TEMA_OK, "%s\n%s", o.err.msg, o.diag);
    ck_assert_str_eq(val(o.cfg, "train.lr"), "0.0001");
    ck_assert_str_eq(val(o.cfg, "model.encoders.0.dim"), "64");
    ck_assert_str_eq(val(o.cfg, "train.resume"), "false");
    ck_assert_str_eq(val(o.cfg, "description"), "a b: c");
    done(&o);

    const char *sets2[] = {"model.encoders=[{plugin: id, dim: 32}, {plugin: id}]", "model.encoders.2={plugin: id}"};
    o = resolve(p, sets2, 2);
    ck_assert_msg(o.st == TEMA_OK, "%s\n%s", o.err.msg, o.diag);
    ck_assert_int_eq(tema_cfg_get(o.cfg, "model.encoders")->n_items, 3);
    ck_assert_str_eq(val(o.cfg, "model.encoders.0.dim"), "32");
    ck_assert_str_eq(val(o.cfg, "model.encoders.1.dim"), "64"); /* the plugin's default */
    ck_assert_str_eq(val(o.cfg, "model.encoders.2.dim"), "64");
    done(&o);

    /* errors from --set are located on the command line */
    const char *bad[] = {"train.lr=fast", "model.encoders.5.dim=3", "train.lr.x=1", "nokey", "train.epochs=[1"};
    o = resolve(p, bad, 5);
    ck_assert_int_ne(o.st, TEMA_OK);
    ck_assert_int_eq(count_lines(o.diag), 5);
    ck_assert_msg(strstr(o.diag, "<command line>:--set train.lr=fast: train.lr: expected a number, got 'fast'\n"), "%s",
                  o.diag);
    ck_assert_msg(strstr(o.diag, "<command line>:--set model.encoders.5.dim=3: 'model.encoders' is a list of 1 element"),
                  "%s", o.diag);
    ck_assert_msg(strstr(o.diag, "<command line>:--set train.lr.x=1: 'train.lr' is a single value"), "%s", o.diag);
    ck_assert_msg(strstr(o.diag, "<command line>:--set nokey: expected key.path=value"), "%s", o.diag);
    ck_assert_msg(strstr(o.diag, "<command line>:--set train.epochs=[1: invalid YAML value"), "%s", o.diag);
    done(&o);
}
END_TEST

START_TEST(t_defaults_file_command_line_order)
{
    setup();
    const char *p = write_exp("order.yaml", MINIMAL "loss: {plugin: full_softmax, temperature: 1}\n"
                                                    "train: {epochs: 7}\n"
                                                    "backend: {threads: 3}\n");
    outcome o = resolve(p, NULL, 0);
    ck_assert_msg(o.st == TEMA_OK, "%s\n%s", o.err.msg, o.diag);
    ck_assert_str_eq(val(o.cfg, "train.epochs"), "7");       /* file over default */
    ck_assert_str_eq(val(o.cfg, "train.patience"), "10");    /* default */
    ck_assert_str_eq(val(o.cfg, "backend.plugin"), "cpu");   /* default plugin kept under file options */
    ck_assert_str_eq(val(o.cfg, "backend.threads"), "3");
    ck_assert_str_eq(val(o.cfg, "model.attention.plugin"), "single");
    ck_assert_str_eq(val(o.cfg, "model.encoders.0.plugin"), "id");
    done(&o);

    const char *sets[] = {"train.epochs=9", "train.patience=2", "train.epochs=11"};
    o = resolve(p, sets, 3);
    ck_assert_msg(o.st == TEMA_OK, "%s\n%s", o.err.msg, o.diag);
    ck_assert_str_eq(val(o.cfg, "train.epochs"), "11"); /* the last --set wins */
    ck_assert_str_eq(val(o.cfg, "train.patience"), "2");
    done(&o);
}
END_TEST

START_TEST(t_plugin_option_defaults_and_types)
{
    setup();
    char cwd[1024];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    const char *p = write_exp("opts.yaml", MINIMAL "loss: {plugin: full_softmax}\n"
                                                   "backend: cpu\n"
                                                   "model:\n"
                                                   "  encoders: [{plugin: id, cache_dir: ./cache/../emb}]\n"
                                                   "  attention: {plugin: single, causal: off, gates: [1, 2.5e-1]}\n");
    const char *sets[] = {"loss.temperature=2"};
    outcome o = resolve(p, sets, 1);
    ck_assert_msg(o.st == TEMA_OK, "%s\n%s", o.err.msg, o.diag);
    ck_assert_str_eq(val(o.cfg, "backend.plugin"), "cpu"); /* shorthand for {plugin: cpu} */
    ck_assert_str_eq(val(o.cfg, "backend.threads"), "1");
    ck_assert_str_eq(val(o.cfg, "loss.positions"), "0");
    ck_assert_str_eq(val(o.cfg, "model.encoders.0.dim"), "64");
    ck_assert_str_eq(val(o.cfg, "model.encoders.0.init_std"), "0.02");
    char want[1100];
    snprintf(want, sizeof want, "%s/emb", cwd);
    ck_assert_str_eq(val(o.cfg, "model.encoders.0.cache_dir"), want); /* relative to the working directory */
    ck_assert_str_eq(val(o.cfg, "model.attention.blocks"), "2");
    ck_assert_str_eq(val(o.cfg, "model.attention.causal"), "false");
    ck_assert_str_eq(val(o.cfg, "model.attention.norm"), "layer");
    ck_assert_str_eq(val(o.cfg, "model.attention.gates.1"), "0.25");
    ck_assert_str_eq(val(o.cfg, "model.attention.tags.1"), "b");
    /* the resolved plugin map is in declaration order, plugin first, ready for host cfg_* */
    const tema_cfg *att = tema_cfg_get(o.cfg, "model.attention");
    ck_assert_str_eq(att->items[0]->key, "plugin");
    ck_assert_str_eq(att->items[1]->key, "blocks");
    ck_assert_str_eq(att->items[6]->key, "gates");
    const tema_host *h = tema_host_get();
    double g[4];
    size_t n = 4;
    ck_assert_int_eq(h->cfg_floats(att, "gates", g, &n), TEMA_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_double_eq(g[1], 0.25);
    int64_t heads = 0;
    ck_assert_int_eq(h->cfg_int(att, "heads", &heads), TEMA_OK);
    ck_assert_int_eq(heads, 1);
    done(&o);

    p = write_exp("opts2.yaml", MINIMAL "loss: {plugin: full_softmax, temperature: hot}\n"
                                        "model:\n"
                                        "  attention: {plugin: single, causal: 3, norm: batch, gates: 0.5, tags: [x, [y]]}\n");
    o = resolve(p, NULL, 0);
    ck_assert_int_eq(count_lines(o.diag), 5);
    ck_assert_msg(strstr(o.diag, ":3:43: loss.temperature: expected a number, got 'hot'"), "%s", o.diag);
    ck_assert_msg(strstr(o.diag, ":5:39: model.attention.causal: expected true or false, got '3'"), "%s", o.diag);
    ck_assert_msg(strstr(o.diag, ":5:48: model.attention.norm: expected one of layer|rms|none, got 'batch'"), "%s",
                  o.diag);
    ck_assert_msg(strstr(o.diag, ":5:62: model.attention.gates: expected a list of numbers"), "%s", o.diag);
    ck_assert_msg(strstr(o.diag, ":5:77: model.attention.tags.1: expected a string, got a list"), "%s", o.diag);
    done(&o);
}
END_TEST

/* A plugin node validated on its own (what the text features service does with the node it
 * is handed): a resolved node comes out as it went in, a hand-written one gets its defaults. */
START_TEST(t_plugin_validate_in_place)
{
    setup();
    const char *p = write_exp("inplace.yaml", MINIMAL "loss: {plugin: full_softmax, temperature: 2}\n"
                                                      "model:\n"
                                                      "  encoders: [{plugin: id, cache_dir: ./x/../emb}]\n"
                                                      "  attention: {plugin: single, causal: off, gates: [1, 5e-1]}\n");
    outcome o = resolve(p, NULL, 0);
    ck_assert_msg(o.st == TEMA_OK, "%s\n%s", o.err.msg, o.diag);
    tema_registry *r = test_registry();
    const char *nodes[][2] = {{"backend", "backend"}, {"model.encoders.0", "encoder"},
                              {"model.attention", "attention"}, {"loss", "loss"}};
    for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
        const tema_cfg *n = tema_cfg_get(o.cfg, nodes[i][0]);
        tema_cfg *c = tema_cfg_clone(n);
        tema_err err = {0};
        ck_assert_msg(tema_cfg_plugin_validate(c, nodes[i][0], nodes[i][1], r, &err) == TEMA_OK, "%s", err.msg);
        char *before = tema_cfg_to_json(n), *after = tema_cfg_to_json(c);
        ck_assert_str_eq(after, before);
        free(before);
        free(after);
        tema_cfg_free(c);
    }
    done(&o);

    tema_cfg *c = NULL;
    tema_err err = {0};
    ck_assert_int_eq(tema_cfg_parse_string("single\n", "<test>", &c, &err), TEMA_OK);
    ck_assert_msg(tema_cfg_plugin_validate(c, "extra", "attention", r, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_str_eq(val(c, "plugin"), "single");
    ck_assert_str_eq(val(c, "dropout"), "0.2");
    tema_cfg_free(c);
    ck_assert_int_eq(tema_cfg_parse_string("{plugin: single, blocks: 99}\n", "<test>", &c, &err), TEMA_OK);
    ck_assert_int_eq(tema_cfg_plugin_validate(c, "extra", "attention", r, &err), TEMA_EINVAL);
    ck_assert_msg(strstr(err.msg, "extra.blocks") && strstr(err.msg, "99"), "%s", err.msg);
    tema_cfg_free(c);
    tema_registry_free(r);
}
END_TEST

/* ---- output ---- */

START_TEST(t_canonical_json)
{
    setup();
    const char *a = write_exp("a.yaml", MINIMAL "loss: {plugin: full_softmax, temperature: 1}\n"
                                                "train: {lr: 1e-3, epochs: 5, resume: yes, weight_decay: 5.0e-4}\n"
                                                "model: {attention: {plugin: single, dropout: .5}}\n");
    outcome oa = resolve(a, NULL, 0);
    ck_assert_msg(oa.st == TEMA_OK, "%s\n%s", oa.err.msg, oa.diag);
    const char *b = write_exp("b.yaml", "# the same settings, written differently\n"
                                        "model:\n"
                                        "  attention:\n"
                                        "    dropout: 0.50\n"
                                        "    plugin: single\n"
                                        "train:\n"
                                        "  weight_decay: 0.0005\n"
                                        "  resume: true\n"
                                        "  epochs: 5\n"
                                        "  lr: 0.001\n"
                                        "loss: {temperature: 1.0, plugin: full_softmax}\n"
                                        "dataset: {path: %DATA%}\n"
                                        "name: \"t\"\n");
    outcome ob = resolve(b, NULL, 0);
    ck_assert_msg(ob.st == TEMA_OK, "%s\n%s", ob.err.msg, ob.diag);
    char *ja = tema_cfg_to_json(oa.cfg), *jb = tema_cfg_to_json(ob.cfg);
    ck_assert_str_eq(ja, jb);
    ck_assert_msg(strstr(ja, "\"lr\":0.001,") && strstr(ja, "\"resume\":true") && strstr(ja, "\"name\":\"t\""), "%s", ja);
    ck_assert_msg(strstr(ja, "\"metrics\":[\"mrr\",\"ndcg@5\",\"ndcg@10\",\"hr@1\",\"hr@5\",\"hr@10\"]"), "%s", ja);

    /* a different value is a different config */
    const char *sets[] = {"train.lr=0.002"};
    outcome oc = resolve(a, sets, 1);
    char *jc = tema_cfg_to_json(oc.cfg);
    ck_assert_str_ne(ja, jc);

    /* the YAML of a resolved config reads back to the same config */
    char *y = tema_cfg_to_yaml(oa.cfg);
    ck_assert_ptr_nonnull(y);
    tema_cfg *back = NULL;
    tema_err err = {0};
    ck_assert_msg(tema_cfg_parse_string(y, "printed", &back, &err) == TEMA_OK, "%s\n%s", err.msg, y);
    char *jy = tema_cfg_to_json(back);
    ck_assert_str_eq(ja, jy);
    ck_assert_msg(strstr(y, "name: t\n") && strstr(y, "  lr: 0.001\n") &&
                      strstr(y, "  metrics: [mrr, ndcg@5, ndcg@10, hr@1, hr@5, hr@10]\n"),
                  "%s", y);
    free(ja), free(jb), free(jc), free(jy), free(y);
    tema_cfg_free(back);
    done(&oa), done(&ob), done(&oc);
}
END_TEST

START_TEST(t_tree_api)
{
    tema_cfg *c = NULL;
    tema_err err = {0};
    ck_assert_int_eq(tema_cfg_parse_string("a: {b: [1, {c: 'yes'}], s: \"007\"}\nn:\n", "t", &c, &err), TEMA_OK);
    ck_assert_int_eq(tema_cfg_int(c, "a.b.0", -1), 1);
    ck_assert_str_eq(tema_cfg_str(c, "a.b.1.c", NULL), "yes");
    ck_assert(tema_cfg_get(c, "a.b.1.c")->quoted);
    ck_assert_int_eq(tema_cfg_get(c, "a.b.1.c")->line, 1);
    ck_assert_int_eq(tema_cfg_get(c, "a.b.1.c")->col, 16);
    ck_assert_int_eq(tema_cfg_get(c, "n")->type, TEMA_CFG_NULL);
    ck_assert_ptr_null(tema_cfg_get(c, "a.b.2"));
    ck_assert_ptr_null(tema_cfg_get(c, "a.x"));
    ck_assert_int_eq(tema_cfg_int(c, "a.s", -1), 7);
    ck_assert_int_eq(tema_cfg_int(c, "a.b.1.c", -1), -1); /* ill-typed: fallback */
    ck_assert_int_eq(tema_cfg_set(c, "a.b.1.c=[x, y]", &err), TEMA_OK);
    ck_assert_str_eq(tema_cfg_str(c, "a.b.1.c.1", NULL), "y");
    ck_assert_int_eq(tema_cfg_set(c, "new.deep.key=3", &err), TEMA_OK);
    ck_assert_int_eq(tema_cfg_int(c, "new.deep.key", -1), 3);
    ck_assert_str_eq(tema_cfg_get(c, "new.deep.key")->file, "<command line>:--set new.deep.key=3");
    tema_cfg *d = tema_cfg_clone(c);
    char *j1 = tema_cfg_to_json(c), *j2 = tema_cfg_to_json(d);
    ck_assert_str_eq(j1, j2);
    ck_assert_str_eq(j1, "{\"a\":{\"b\":[1,{\"c\":[\"x\",\"y\"]}],\"s\":\"007\"},\"n\":null,\"new\":{\"deep\":{\"key\":3}}}");
    free(j1), free(j2);
    tema_cfg_free(c);
    tema_cfg_free(d);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, t_sasrec_experiment_passes);
    tcase_add_test(tc, t_pop_and_quickstart_pass);
    tcase_add_test(tc, t_misspelt_key);
    tcase_add_test(tc, t_every_problem_reported_in_file_order);
    tcase_add_test(tc, t_missing_required);
    tcase_add_test(tc, t_yaml_syntax_error_located);
    tcase_add_test(tc, t_set_overrides);
    tcase_add_test(tc, t_defaults_file_command_line_order);
    tcase_add_test(tc, t_plugin_option_defaults_and_types);
    tcase_add_test(tc, t_plugin_validate_in_place);
    tcase_add_test(tc, t_canonical_json);
    tcase_add_test(tc, t_tree_api);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
