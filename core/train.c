/* core/train.c - one experiment: data, backend, model, the training loop with
 * checkpoints and early stopping, evaluation and the results folder.
 *
 * Determinism: everything random derives from train.seed and a counter - the epoch's
 * shuffle from (seed, epoch), dropout from (seed, global step), sampled-softmax negatives
 * from (seed, global step), evaluation negatives from (seed, set) - so a run resumed from
 * last.bin continues exactly as the uninterrupted run would have, and one thread gives
 * bit-identical results.
 *
 * Model selection uses the C2DSR rule (optimistic ranks, ties counted in the target's
 * favour) and the mean of the X and Y validation MRR, so the chosen epoch is the one the
 * C2DSR code would have picked; the pessimistic and mid-rank metrics are reported beside it. */
#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "train.h"
#include "host.h"
#include "text_features.h"
#include "tags.h"
#include "stop.h"
#include "run_id.h"
#include "train_internal.h"
#include "util.h"

/* ---- interruption ---- */


/* ---- settings read from the resolved config ---- */

typedef struct settings {
    const char *data_path;
    tema_dataset_files files;
    int32_t max_len;
    const char *backend_name;
    const tema_cfg *backend_opts;
    int threads;
    int epochs;
    int64_t max_steps;
    int batch_size;
    double lr, weight_decay, grad_clip;
    int patience, eval_every;
    uint64_t seed;
    bool resume;
    bool lazy_adam, adamw;  /* train.optimizer: lazy_adam, adamw */
    int positions;
    bool full_protocol;
    int32_t n_neg;
    int eval_batch;
    tema_metric_spec spec;
    int debug_stop_epoch;   /* test builds: TEMA_TEST_STOP_AFTER_EPOCH, 0 = off */
} settings;

static const char *nonempty(const char *s) { return s && *s && strcmp(s, "null") != 0 ? s : NULL; }

/* The resolved config's values (the schema filled every default; see core/validate.c). */
static tema_status read_settings(const tema_cfg *c, settings *s, tema_err *err)
{
    memset(s, 0, sizeof *s);
    s->data_path = nonempty(tema_cfg_str(c, "dataset.path", NULL));
    if (!s->data_path)
        return tema_fail(err, TEMA_EINVAL, "config dataset.path: missing; hint: a dataset folder or archive, or "
                                           "`synthetic`");
    s->files.train = nonempty(tema_cfg_str(c, "dataset.train_file", NULL));
    s->files.valid = nonempty(tema_cfg_str(c, "dataset.valid_file", NULL));
    s->files.test = nonempty(tema_cfg_str(c, "dataset.test_file", NULL));
    s->backend_opts = tema_cfg_plugin_node(tema_cfg_get(c, "backend"), &s->backend_name);
    if (!s->backend_name)
        return tema_fail(err, TEMA_EINTERNAL, "config backend: no plugin in the resolved config; a bug");
    int64_t max_len, epochs, batch, patience, eval_every, seed, n_neg, eval_batch;
    const char *protocol, *optimizer;
    tema_status st;
    if ((st = tema_cfg_need_int(c, "dataset.max_len", &max_len, err)) ||
        (st = tema_cfg_need_int(c, "train.epochs", &epochs, err)) ||
        (st = tema_cfg_need_int(c, "train.max_steps", &s->max_steps, err)) ||
        (st = tema_cfg_need_int(c, "train.batch_size", &batch, err)) ||
        (st = tema_cfg_need_float(c, "train.lr", &s->lr, err)) ||
        (st = tema_cfg_need_float(c, "train.weight_decay", &s->weight_decay, err)) ||
        (st = tema_cfg_need_float(c, "train.grad_clip", &s->grad_clip, err)) ||
        (st = tema_cfg_need_int(c, "train.patience", &patience, err)) ||
        (st = tema_cfg_need_int(c, "train.eval_every", &eval_every, err)) ||
        (st = tema_cfg_need_int(c, "train.seed", &seed, err)) ||
        (st = tema_cfg_need_bool(c, "train.resume", &s->resume, err)) ||
        (st = tema_cfg_need_str(c, "train.optimizer", &optimizer, err)) ||
        (st = tema_cfg_need_str(c, "eval.protocol", &protocol, err)) ||
        (st = tema_cfg_need_int(c, "eval.negatives", &n_neg, err)) ||
        (st = tema_cfg_need_int(c, "eval.batch_size", &eval_batch, err)))
        return st;
    s->max_len = (int32_t)max_len;
    s->epochs = (int)epochs;
    s->batch_size = (int)batch;
    s->patience = (int)patience;
    s->eval_every = (int)eval_every;
    s->seed = (uint64_t)seed;
    s->n_neg = (int32_t)n_neg;
    s->eval_batch = (int)eval_batch;
    s->full_protocol = !strcmp(protocol, "full");
    s->lazy_adam = !strcmp(optimizer, "lazy_adam");
    s->adamw = !strcmp(optimizer, "adamw");
    /* Options of the backend and loss plugins that the trainer needs too; plugins that do not
     * declare them get these values. (Moving them to train.* changes every run id: see issue 11.) */
    s->threads = (int)tema_cfg_int(c, "backend.threads", 1);
    s->positions = (int)tema_cfg_int(c, "loss.positions", 10);
    if (s->positions < 1 || s->threads < 1)
        return tema_fail(err, TEMA_EINVAL, "config: loss.positions and backend.threads must be >= 1");
    const tema_cfg *ml = tema_cfg_get(c, "eval.metrics");
    const char *names[TEMA_MAX_METRICS];
    int n = 0;
    if (ml && ml->type == TEMA_CFG_LIST)
        for (size_t i = 0; i < ml->n_items && n < TEMA_MAX_METRICS; i++)
            if (ml->items[i]->type == TEMA_CFG_SCALAR) names[n++] = ml->items[i]->value;
    if (n == 0) return tema_fail(err, TEMA_EINTERNAL, "config eval.metrics: empty in the resolved config; a bug");
    st = tema_metric_parse(names, n, &s->spec, err);
    if (st != TEMA_OK) return st;
#ifdef TEMA_TEST_HOOKS
    const char *dbg = getenv("TEMA_TEST_STOP_AFTER_EPOCH");
    s->debug_stop_epoch = dbg && *dbg ? atoi(dbg) : 0;
#endif
    return TEMA_OK;
}

/* ---- small helpers ---- */

static uint64_t mix3(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t v[3] = {a, b, c};
    return tema_hash64(v, sizeof v);
}

static const char *basename_of(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* The experiment name: `name` in the config, else the experiment file's stem. */
static void experiment_name(const tema_cfg *c, const char *config_path, char *out, size_t cap)
{
    const char *n = nonempty(tema_cfg_str(c, "name", NULL));
    if (!n) n = nonempty(tema_cfg_str(c, "experiment", NULL));
    if (n) {
        snprintf(out, cap, "%s", n);
        return;
    }
    snprintf(out, cap, "%s", config_path ? basename_of(config_path) : "experiment");
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = 0;
    if (!*out) snprintf(out, cap, "experiment");
}

static double mrr_mean(const tema_metric_acc *a)
{
    int m = tema_metric_index(&a->spec, "mrr");
    if (m < 0) m = 0;
    double s = 0;
    int k = 0;
    for (int d = 0; d < 2; d++)
        if (a->count[d] > 0) {
            s += tema_metric_acc_mean(a, d, TEMA_RANK_OPTIMISTIC, m);
            k++;
        }
    return k ? s / k : NAN;
}

static bool file_exists(const char *path)
{
    struct stat sb;
    return path && stat(path, &sb) == 0;
}

/* ---- the run ---- */

typedef struct runner {
    const tema_cfg *cfg;
    tema_registry *reg;
    const tema_run_opts *opts;
    settings s;
    const tema_plugin *be_p;
    const tema_backend_ops *be;
    void *bs;
    tema_dataset *ds;
    int64_t *counts;
    tema_model model;
    tema_graph *g;
    tema_adam opt;
    tema_batch_buf train_bb, eval_bb;
    int64_t *examples;
    int64_t n_examples;
    int32_t *valid_negs, *test_negs;
    char negatives_warning[512]; /* "" unless sampled negatives must repeat in a small domain */
    tema_run *run;
    bool tty;
    bool trainable;         /* a learnable parameter reaches the loss */
    float *grad_norm_dev;   /* one float of backend memory */
    int threads_override;   /* > 0: replaces backend.threads (not part of the run id) */
    tema_plugin_files plugins; /* every plugin the config names, with its file's hash */
} runner;

static tema_status setup_backend(runner *r, tema_err *err)
{
    r->be_p = tema_registry_find(r->reg, TEMA_KIND_BACKEND, r->s.backend_name);
    if (!r->be_p)
        return tema_fail(err, TEMA_ENOTFOUND, "config backend.plugin: no backend '%s'; hint: available: %s",
                         r->s.backend_name, tema_registry_names(r->reg, TEMA_KIND_BACKEND));
    r->be = r->be_p->ops;
    if (!r->be || r->be_p->ops_size < TEMA_BACKEND_OPS_MIN_SIZE || !r->be->init)
        return tema_fail(err, TEMA_EABI, "backend '%s' has an incomplete kernel table; hint: rebuild it against "
                                         "this tema", r->s.backend_name);
    tema_cfg *opts = NULL;
    if (r->threads_override > 0 && r->s.backend_opts) {
        char set[64];
        snprintf(set, sizeof set, "threads=%d", r->threads_override);
        opts = tema_cfg_clone(r->s.backend_opts);
        if (!opts) return tema_fail(err, TEMA_ENOMEM, "out of memory");
        tema_status st = tema_cfg_set(opts, set, err);
        if (st != TEMA_OK) {
            tema_cfg_free(opts);
            return st;
        }
    }
    tema_status st = r->be->init(tema_host_get(), opts ? opts : r->s.backend_opts, &r->bs, err);
    tema_cfg_free(opts);
    if (st != TEMA_OK) return st;
    tema_engine_set_backend(r->be, r->bs);
    r->grad_norm_dev = r->be->alloc(r->bs, sizeof(float));
    if (!r->grad_norm_dev) return tema_fail(err, TEMA_ENOMEM, "backend: out of memory");
    return TEMA_OK;
}

static tema_status load_data(runner *r, tema_err *err)
{
    const char *path = r->s.data_path;
    char synth_dir[4096];
    if (tema_synth_is_path(path)) {
        /* a seeded synthetic dataset, generated once per seed and reused by later runs */
        tema_status st = tema_synth_dataset(r->opts->results_dir, r->s.seed, synth_dir, sizeof synth_dir, err);
        if (st != TEMA_OK) return st;
        path = synth_dir;
    }
    tema_status st = tema_dataset_load(path, &r->s.files, &r->ds, err);
    if (st != TEMA_OK) return st;
    const tema_dataset *d = r->ds;
    int64_t n_items = (int64_t)d->n_x + d->n_y;
    r->counts = calloc((size_t)(n_items > 0 ? n_items : 1), sizeof *r->counts);
    r->examples = malloc((size_t)(d->train.n_lines > 0 ? d->train.n_lines : 1) * sizeof *r->examples);
    if (!r->counts || !r->examples) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    for (int64_t i = 0; i < d->train.n_lines; i++) {
        for (int64_t k = d->train.off[i]; k < d->train.off[i + 1]; k++) {
            int32_t it = d->train.items[k];
            if (it >= 0 && it < n_items) r->counts[it]++;
        }
        if (d->train.off[i + 1] - d->train.off[i] >= 2) r->examples[r->n_examples++] = i;
    }
    return TEMA_OK;
}

static tema_status write_meta(runner *r, const char *identity, tema_err *err)
{
    tema_run_meta meta = {.plugins = r->plugins.rec, .n_plugins = r->plugins.n, .threads = r->s.threads,
                          .backend = r->be_p->name, .config_path = r->opts->config_path, .identity_json = identity};
    return tema_results_meta(r->run, &meta, err);
}

static tema_status evaluate_set(runner *r, const tema_split *sp, const int32_t *negs, tema_metric_acc *acc,
                                tema_rank_row *rows, tema_err *err)
{
    tema_metric_acc_init(acc, &r->s.spec);
    tema_eval_ctx c = {.model = &r->model, .g = r->g, .be = r->be, .bs = r->bs, .n_x = r->ds->n_x, .n_y = r->ds->n_y,
                       .batch_size = r->s.eval_batch, .threads = r->s.threads, .bb = &r->eval_bb};
    return tema_evaluate(&c, sp, r->s.full_protocol ? NULL : negs, r->s.n_neg, acc, rows, err);
}

static void clip_gradients(runner *r, double max_norm)
{
    int64_t n = tema_params_count(r->model.params);
    tema_tensor *first = NULL;
    for (size_t i = 0; i < tema_params_n(r->model.params) && !first; i++) {
        tema_tensor *t = tema_params_at(r->model.params, i);
        if (t->flags & TEMA_TENSOR_PARAM) first = t;
    }
    if (!first || !first->grad || n == 0) return;
    /* learnable gradients are one contiguous buffer (core/params.c), first tensor first */
    float sq = 0;
    r->be->dot(r->bs, n, first->grad, first->grad, 1.0f, r->grad_norm_dev);
    r->be->to_host(r->bs, &sq, r->grad_norm_dev, sizeof sq);
    double norm = sqrt((double)sq);
    if (norm > max_norm && norm > 0)
        r->be->unary(r->bs, TEMA_UNARY_SCALE, n, (float)(max_norm / norm), first->grad, first->grad);
}

/* Model forward, the loss plugin, then the attention plugin's aux_loss (when it has one), on a
 * graph the caller has reset. */
static tema_status forward_loss(runner *r, const tema_batch *b, const tema_targets *t, tema_tensor **loss, tema_err *err)
{
    tema_stream streams[TEMA_MAX_STREAMS];
    int ns = 0;
    tema_status st = tema_model_forward(&r->model, r->g, b, streams, &ns, err);
    if (st != TEMA_OK) return st;
    tema_targets tw = *t;
    tema_model_seq_weights(&r->model, tw.seq_weight);
    st = r->model.loss_ops->forward(r->model.loss, r->g, streams, ns, &tw, loss, err);
    if (st != TEMA_OK) return st;
    return tema_model_add_aux_loss(&r->model, r->g, b, &tw, loss, err);
}

/* Does any learnable parameter reach the loss? A model like `pop` carries an encoder the
 * schema requires but never uses it; then there is nothing to train and the run only
 * evaluates (epochs_run = 0). Checked on one forward pass of the first batch. */
static tema_status probe_trainable(runner *r, bool *out, tema_err *err)
{
    *out = false;
    if (tema_params_count(r->model.params) == 0 || r->n_examples == 0) return TEMA_OK;
    int nb = (int)(r->n_examples < r->s.batch_size ? r->n_examples : r->s.batch_size);
    tema_batch b;
    tema_targets t;
    tema_batch_train(&r->train_bb, &r->ds->train, r->ds->n_x, r->ds->n_y, r->examples, nb, &b, &t);
    t.seed = r->s.seed;
    tema_graph_reset(r->g, false, 0);
    tema_tensor *loss = NULL;
    tema_status st = forward_loss(r, &b, &t, &loss, err);
    if (st != TEMA_OK) return st;
    *out = loss && (loss->flags & TEMA_TENSOR_NEEDS_GRAD);
    return TEMA_OK;
}

static tema_status train_step(runner *r, const int64_t *lines, int nb, uint64_t step, double *loss_out, tema_err *err)
{
    const tema_nn_api *nn = tema_nn();
    tema_batch b;
    tema_targets t;
    tema_batch_train(&r->train_bb, &r->ds->train, r->ds->n_x, r->ds->n_y, lines, nb, &b, &t);
    t.seed = mix3(r->s.seed, step, 0x6e65676174697665ull);
    tema_graph_reset(r->g, true, mix3(r->s.seed, step, 0x64726f706f7574ull));
    tema_tensor *loss = NULL;
    tema_status st = forward_loss(r, &b, &t, &loss, err);
    if (st != TEMA_OK) return st;
    if (!loss || loss->size != 1)
        return tema_fail(err, TEMA_EINTERNAL, "loss plugin '%s' did not return a [1] tensor (%s)", r->model.loss_p->name,
                         nn->error(r->g));
    float lv = 0;
    r->be->to_host(r->bs, &lv, loss->data, sizeof lv);
    /* A device backend fails asynchronously: the loss read has waited for the queue
     * anyway, so asking now is free and catches a failure of this forward pass or of the
     * previous step's backward/update before the value is trusted. */
    st = r->be->sync(r->bs, err);
    if (st != TEMA_OK) return st;
    *loss_out = lv;
    if (!isfinite(lv))
        return tema_fail(err, TEMA_EINVAL, "training diverged at step %" PRIu64 ": loss is %g; hint: lower train.lr "
                                           "or set train.grad_clip",
                         step + 1, (double)lv);
    tema_params_zero_grad(r->model.params);
    st = tema_graph_backward(r->g, loss, err);
    if (st != TEMA_OK) return st;
    if (r->s.grad_clip > 0) clip_gradients(r, r->s.grad_clip);
    tema_adam_step(r->model.params, &r->opt);
    return TEMA_OK;
}

static void progress(runner *r, int epoch, int64_t step, int64_t steps, double loss, double rate, bool force)
{
    static double last = 0;
    if (!r->tty) return;
    double now = tema_now();
    if (!force && now - last < 0.1) return;
    last = now;
    char eta[32], run_eta[32];
    tema_fmt_duration(rate > 0 ? (double)(steps - step) / rate : -1, eta, sizeof eta);
    /* the whole run at this pace if it trains every epoch (early stopping ends it sooner) */
    tema_fmt_duration(rate > 0 ? (double)(steps - step + (int64_t)(r->s.epochs - epoch) * steps) / rate : -1, run_eta,
            sizeof run_eta);
    fprintf(stderr, "\r\033[Kepoch %d/%d  step %" PRId64 "/%" PRId64 "  loss %.4f  %.2f steps/s  ETA %s (run <= %s)",
            epoch, r->s.epochs, step, steps, loss, rate, eta, run_eta);
    fflush(stderr);
}

static void shuffle(int64_t *a, int64_t n, uint64_t seed)
{
    tema_rng rng;
    tema_rng_seed(&rng, seed);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)tema_rng_below(&rng, (uint64_t)i + 1);
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* The training lines in the order epoch `epoch` takes them (perm: r->n_examples entries). */
static void epoch_order(const runner *r, int64_t epoch, int64_t *perm)
{
    memcpy(perm, r->examples, (size_t)r->n_examples * sizeof *perm);
    shuffle(perm, r->n_examples, mix3(r->s.seed, (uint64_t)epoch, 0x73687566666c65ull));
}

static tema_status save_last(runner *r, train_state *ts, tema_err *err)
{
    ts->adam_step = r->opt.step;
    tema_status st = tema_train_state_save(r->run, ts, err);
    if (st == TEMA_OK) st = tema_params_save(r->model.params, &r->opt, tema_results_last_path(r->run), err);
    return st;
}

static tema_status interrupted(runner *r, train_state *ts, const char *why, tema_err *err)
{
    if (r->tty) fputc('\n', stderr);
    tema_status st = save_last(r, ts, err);
    if (st != TEMA_OK) return st;
    st = tema_results_interrupted(r->run, err);
    if (st != TEMA_OK) return st;
    return tema_fail(err, TEMA_EINTERRUPTED,
                     "%s after epoch %d step %" PRId64 "; state saved in %s; hint: run the same command again "
                     "(same experiment file and --set options) to resume",
                     why, ts->epochs_done + (ts->step_in_epoch ? 1 : 0), ts->step_in_epoch, tema_results_dir(r->run));
}

/* The steps of one epoch from ts->step_in_epoch on; *hit_max when train.max_steps ran out. A stop
 * request mid-epoch saves the state and returns TEMA_EINTERRUPTED. t0: the epoch's start (earlier
 * sessions' part included); rate_t0, rate_s0: this session's start, for steps/s. */
static tema_status epoch_steps(runner *r, train_state *ts, int epoch, const int64_t *perm, int64_t steps_per_epoch,
                               double t0, double rate_t0, int64_t rate_s0, bool *hit_max, tema_err *err)
{
    const settings *s = &r->s;
    *hit_max = false;
    for (int64_t k = ts->step_in_epoch; k < steps_per_epoch; k++) {
        if (s->max_steps > 0 && ts->global_step >= s->max_steps) {
            *hit_max = true;
            break;
        }
        int64_t first = k * s->batch_size;
        int nb = (int)(r->n_examples - first < s->batch_size ? r->n_examples - first : s->batch_size);
        double lv = 0;
        tema_status st = train_step(r, perm + first, nb, (uint64_t)ts->global_step, &lv, err);
        if (st != TEMA_OK) return st;
        ts->loss_sum += lv;
        ts->global_step++;
        ts->step_in_epoch = k + 1;
        double el = tema_now() - rate_t0;
        progress(r, epoch, k + 1, steps_per_epoch, ts->loss_sum / (double)ts->step_in_epoch,
                 el > 0 ? (double)(k + 1 - rate_s0) / el : 0, k + 1 == steps_per_epoch);
        if (tema_stop_signal() && k + 1 < steps_per_epoch) {
            ts->epoch_seconds = tema_now() - t0;
            return interrupted(r, ts, tema_stop_reason(tema_stop_signal()), err);
        }
    }
    if (s->max_steps > 0 && ts->global_step >= s->max_steps) *hit_max = true;
    return TEMA_OK;
}

/* Validation where the epoch has one (every eval_every, and the last); the best checkpoint when
 * it improves. Without a validation split the last epoch is the best. */
static tema_status validate_epoch(runner *r, train_state *ts, int epoch, bool last_epoch, tema_metric_acc *valid,
                                  bool *evaluated, tema_err *err)
{
    const settings *s = &r->s;
    *evaluated = false;
    if ((epoch % s->eval_every == 0 || last_epoch) && r->ds->valid.n_lines > 0) {
        tema_status st = evaluate_set(r, &r->ds->valid, r->valid_negs, valid, NULL, err);
        if (st != TEMA_OK) return st;
        *evaluated = true;
        double score = mrr_mean(valid);
        if (ts->best_epoch == 0 || score > ts->best_score) {
            ts->best_epoch = epoch;
            ts->best_score = score;
            return tema_params_save(r->model.params, &r->opt, tema_results_best_path(r->run), err);
        }
    } else if (r->ds->valid.n_lines == 0 && last_epoch) {
        ts->best_epoch = epoch; /* nothing to select on: keep the last epoch */
        return tema_params_save(r->model.params, &r->opt, tema_results_best_path(r->run), err);
    }
    return TEMA_OK;
}

/* The epoch's record in epochs.jsonl and its line on stderr; valid NULL when not evaluated. */
static tema_status log_epoch(runner *r, const train_state *ts, int epoch, int64_t steps_done, double secs,
                             double step_rate, const tema_metric_acc *valid, tema_err *err)
{
    const settings *s = &r->s;
    double mean_loss = steps_done > 0 ? ts->loss_sum / (double)steps_done : NAN;
    tema_epoch_record rec = {.epoch = epoch, .steps = steps_done, .train_loss = mean_loss, .seconds = secs,
                             .valid = valid};
    tema_status st = tema_results_epoch(r->run, &rec, err);
    if (st != TEMA_OK) return st;
    if (r->tty) fputc('\n', stderr);
    /* what is left if every epoch runs (training and validation at this epoch's pace) */
    char left[64] = "";
    if (epoch < s->epochs) {
        char hms[32];
        tema_fmt_duration(secs * (double)(s->epochs - epoch), hms, sizeof hms);
        snprintf(left, sizeof left, "; at most %s more (%d epoch%s)", hms, s->epochs - epoch,
                 s->epochs - epoch == 1 ? "" : "s");
    }
    if (valid) {
        int m = tema_metric_index(&valid->spec, "mrr");
        if (m < 0) m = 0;
        fprintf(stderr, "epoch %d/%d: loss %.4f, %" PRId64 " steps, %.1f s (%.2f steps/s training); valid %s X %.4f "
                        "Y %.4f (C2DSR rule), best epoch %d%s\n",
                epoch, s->epochs, mean_loss, steps_done, secs, step_rate,
                valid->spec.name[m], tema_metric_acc_mean(valid, 0, TEMA_RANK_OPTIMISTIC, m),
                tema_metric_acc_mean(valid, 1, TEMA_RANK_OPTIMISTIC, m), ts->best_epoch, left);
    } else {
        fprintf(stderr, "epoch %d/%d: loss %.4f, %" PRId64 " steps, %.1f s (%.2f steps/s training)%s\n", epoch,
                s->epochs, mean_loss, steps_done, secs, step_rate, left);
    }
    return TEMA_OK;
}

static tema_status train_loop(runner *r, train_state *ts, tema_err *err)
{
    const settings *s = &r->s;
    const int64_t steps_per_epoch = (r->n_examples + s->batch_size - 1) / s->batch_size;
    int64_t *perm = malloc((size_t)(r->n_examples > 0 ? r->n_examples : 1) * sizeof *perm);
    tema_metric_acc valid;
    if (!perm) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    tema_status st = TEMA_OK;
    for (int epoch = ts->epochs_done + 1; epoch <= s->epochs && !ts->finished_training; epoch++) {
        epoch_order(r, epoch, perm);
        double t0 = tema_now() - ts->epoch_seconds, rate_t0 = tema_now();
        int64_t rate_s0 = ts->step_in_epoch;
        bool hit_max, evaluated;
        if ((st = epoch_steps(r, ts, epoch, perm, steps_per_epoch, t0, rate_t0, rate_s0, &hit_max, err)) != TEMA_OK)
            goto out;
        int64_t steps_done = ts->step_in_epoch;
        /* steps/s of this session's steps only (no validation, no resumed part) */
        double step_secs = tema_now() - rate_t0;
        double step_rate = step_secs > 0 ? (double)(steps_done - rate_s0) / step_secs : 0;
        bool last_epoch = epoch == s->epochs || hit_max;
        if ((st = validate_epoch(r, ts, epoch, last_epoch, &valid, &evaluated, err)) != TEMA_OK) goto out;
        double secs = tema_now() - t0;
        if ((st = log_epoch(r, ts, epoch, steps_done, secs, step_rate, evaluated ? &valid : NULL, err)) != TEMA_OK)
            goto out;
        ts->epochs_done = epoch;
        ts->step_in_epoch = 0;
        ts->loss_sum = 0;
        ts->epoch_seconds = 0;
        ts->train_seconds += secs;
        if (hit_max) ts->finished_training = true;
        if (evaluated && s->patience > 0 && epoch - ts->best_epoch >= s->patience) {
            ts->finished_training = true;
            ts->stopped_early = epoch < s->epochs;
            fprintf(stderr, "tema: early stop: no better validation MRR for %d epochs (best epoch %d)\n",
                    epoch - ts->best_epoch, ts->best_epoch);
        }
        if ((st = save_last(r, ts, err)) != TEMA_OK) goto out;
        /* test builds: Ctrl-C exactly at an epoch's end, which a test cannot time from outside */
        if (s->debug_stop_epoch > 0 && epoch == s->debug_stop_epoch) tema_stop_request(SIGINT);
        if (tema_stop_signal()) {
            st = interrupted(r, ts, tema_stop_reason(tema_stop_signal()), err);
            goto out;
        }
    }
    ts->finished_training = true;
out:
    free(perm);
    return st;
}

/* t_session: when this session started; prior: seconds of earlier sessions */
static tema_status finish(runner *r, train_state *ts, double t_session, double prior, tema_err *err)
{
    tema_metric_acc valid, test;
    bool trainable = r->trainable;
    if (trainable && ts->best_epoch > 0 && file_exists(tema_results_best_path(r->run))) {
        tema_status st = tema_params_load(r->model.params, NULL, tema_results_best_path(r->run), err);
        if (st != TEMA_OK) return st;
    }
    tema_rank_row *rows = calloc((size_t)(r->ds->test.n_lines > 0 ? r->ds->test.n_lines : 1), sizeof *rows);
    if (!rows) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    tema_status st = evaluate_set(r, &r->ds->valid, r->valid_negs, &valid, NULL, err);
    if (st == TEMA_OK) st = evaluate_set(r, &r->ds->test, r->test_negs, &test, rows, err);
    if (st == TEMA_OK) {
        /* ranks.tsv lists evaluated cases only */
        int64_t n = 0;
        for (int64_t i = 0; i < r->ds->test.n_lines; i++)
            if (rows[i].domain >= 0) rows[n++] = rows[i];
        st = tema_results_ranks(r->run, n, rows, err);
    }
    free(rows);
    if (st != TEMA_OK) return st;
    int epochs_run = trainable ? ts->epochs_done : 0;
    const char *warn[2];
    int n_warn = 0;
    if (!trainable) warn[n_warn++] = "no learnable parameter reaches the loss: evaluated without training";
    if (r->negatives_warning[0]) warn[n_warn++] = r->negatives_warning;
    double total = prior + (tema_now() - t_session);
    tema_final_record fin = {.valid = r->ds->valid.n_lines ? &valid : NULL, .test = &test,
                             .best_epoch = trainable ? ts->best_epoch : 0, .epochs_run = epochs_run,
                             .stopped_early = ts->stopped_early, .total_seconds = total,
                             .seconds_per_epoch = epochs_run > 0 ? ts->train_seconds / epochs_run : 0,
                             .peak_memory_bytes = tema_peak_rss(), .warnings = warn, .n_warnings = n_warn};
    st = tema_results_final(r->run, &fin, err);
    if (st == TEMA_OK) st = tema_results_finish(r->run, err);
    if (st != TEMA_OK) return st;
    fprintf(stderr, "tema: done in %.1f s; peak RSS %.1f MiB, graph arena %.1f MiB; results in %s\n", total,
            (double)tema_peak_rss() / 1048576.0, (double)tema_graph_peak_bytes(r->g) / 1048576.0,
            tema_results_dir(r->run));
    char *text = tema_results_summary(r->run, &test, fin.best_epoch, epochs_run);
    if (text) {
        fputs(text, stdout);
        fflush(stdout);
        free(text);
    }
    return TEMA_OK;
}

/* Backend, data, tags and the model of r->cfg with its evaluation buffers: what a run trains,
 * and what an opened run (tema export, tema recommend) scores with. */
static tema_status build_model(runner *r, tema_err *err)
{
    tema_status st;
    if ((st = setup_backend(r, err)) != TEMA_OK) return st;
    if ((st = load_data(r, err)) != TEMA_OK) return st;
    const tema_dataset *d = r->ds;
    r->model.params = tema_params_new(r->s.seed);
    if (!r->model.params) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    r->model.info = (tema_model_info){.struct_size = sizeof(tema_model_info), .n_x = d->n_x, .n_y = d->n_y,
                                      .max_len = r->s.max_len, .train_counts = r->counts,
                                      .titles = (const char *const *)d->title, .seed = r->s.seed,
                                      .params = r->model.params, .host = tema_host_get(),
                                      .n_train_lines = d->train.n_lines, .train_off = d->train.off,
                                      .train_items = d->train.items};
    tema_features_context(r->reg, r->cfg, r->opts->results_dir);
    if ((st = tema_tags_attach(r->cfg, r->reg, r->ds, r->opts->results_dir, &r->model.info, err)) != TEMA_OK)
        return st;
    if ((st = tema_model_build(&r->model, r->cfg, r->reg, err)) != TEMA_OK) return st;
    r->g = tema_graph_new(r->s.seed);
    if (!r->g) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    return tema_batch_buf_init(&r->eval_bb, r->s.eval_batch, r->s.max_len, 1, err);
}

/* The thread count: --threads, else TEMA_THREADS, else backend.threads (never part of the run id). */
static tema_status apply_threads(runner *r, int from_cli, tema_err *err)
{
    r->threads_override = from_cli;
    const char *env_threads = getenv("TEMA_THREADS");
    if (r->threads_override <= 0 && env_threads && *env_threads) {
        char *end;
        long v = strtol(env_threads, &end, 10);
        if (*end || v < 1 || v > 256)
            return tema_fail(err, TEMA_EINVAL, "TEMA_THREADS='%s' is not a thread count in 1..256; hint: unset it to "
                                               "use backend.threads", env_threads);
        r->threads_override = (int)v;
    }
    if (r->threads_override > 0) r->s.threads = r->threads_override;
    return TEMA_OK;
}

/* An empty training or test split would "succeed" with the metrics of an untrained or
 * unevaluated model; refuse it before anything is written. */
static tema_status check_splits(runner *r, tema_err *err)
{
    const tema_dataset *d = r->ds;
    if (r->n_examples == 0)
        return tema_fail(err, TEMA_EINVAL, "%s: %s has no line with two items or more (%lld lines): nothing to train "
                                           "on; hint: check dataset.train_file",
                         d->path, d->train.file, (long long)d->train.n_lines);
    if (d->test.n_lines == 0)
        return tema_fail(err, TEMA_EINVAL, "%s: %s has no line: nothing to evaluate; hint: check dataset.test_file",
                         d->path, d->test.file);
    return TEMA_OK;
}

/* The sampled protocol's negatives, drawn once per set as C2DSR does (the set index keeps valid
 * and test apart), and the warning when they must repeat in a small domain. */
static tema_status draw_eval_negatives(runner *r, tema_err *err)
{
    const tema_dataset *d = r->ds;
    if (r->s.full_protocol) return TEMA_OK;
    r->valid_negs = malloc((size_t)(d->valid.n_lines + 1) * (size_t)r->s.n_neg * sizeof(int32_t));
    r->test_negs = malloc((size_t)(d->test.n_lines + 1) * (size_t)r->s.n_neg * sizeof(int32_t));
    if (!r->valid_negs || !r->test_negs) return tema_fail(err, TEMA_ENOMEM, "out of memory for eval negatives");
    tema_draw_negatives(mix3(r->s.seed, 1, 0x6576616cull), d->valid.n_lines, d->valid.target, d->n_x, d->n_y,
                        r->s.n_neg, r->valid_negs);
    tema_draw_negatives(mix3(r->s.seed, 2, 0x6576616cull), d->test.n_lines, d->test.target, d->n_x, d->n_y,
                        r->s.n_neg, r->test_negs);
    /* C2DSR draws with replacement: more negatives than other items means repeats, and every
     * repeat of a better-scored item costs the target a rank, so MRR sinks toward 0. */
    const int32_t smallest = d->n_x < d->n_y ? d->n_x : d->n_y;
    if (r->s.n_neg >= smallest - 1) {
        snprintf(r->negatives_warning, sizeof r->negatives_warning,
                 "eval.negatives is %d but domain %s has only %d other items: sampled negatives repeat and the "
                 "metrics are not comparable with other datasets; use eval.protocol: full, or eval.negatives "
                 "below %d",
                 (int)r->s.n_neg, d->n_x < d->n_y ? "X" : "Y", (int)smallest - 1, (int)smallest - 1);
        tema_host_get()->log(TEMA_LOG_WARN, "eval", "%s", r->negatives_warning);
    }
    return TEMA_OK;
}

/* The state of an interrupted run from last.bin and the last.state that matches it (the
 * previous one when the process died between the two writes); *resume false when none is
 * readable. */
static tema_status resume_state(runner *r, train_state *ts, bool *resume, tema_err *err)
{
    train_state cur = {0}, prev = {0};
    const bool cur_ok = tema_train_state_load(r->run, false, &cur);
    const bool prev_ok = tema_train_state_load(r->run, true, &prev);
    if (!cur_ok && !prev_ok) return TEMA_OK;
    tema_adam probe = r->opt;
    tema_status st = tema_params_load(r->model.params, &probe, tema_results_last_path(r->run), err);
    if (st != TEMA_OK) return st;
    if (cur_ok && probe.step == cur.adam_step) *ts = cur;
    else if (prev_ok && probe.step == prev.adam_step) *ts = prev; /* killed between the two writes */
    else
        return tema_fail(err, TEMA_EFORMAT,
                         "%s: checkpoint is at optimizer step %" PRId64 " but last.state says %" PRId64
                         "; hint: re-run with --force to start over",
                         tema_results_last_path(r->run), probe.step, cur_ok ? cur.adam_step : prev.adam_step);
    r->opt = probe;
    *resume = true;
    return TEMA_OK;
}

static tema_status run_session(runner *r, const char *name, tema_run_state rs, const char *identity, double t_start,
                               tema_err *err);

/* After build_model: the optimizer, the training batches, the evaluation negatives, and whether
 * anything learnable reaches the loss (r->trainable). */
static tema_status prepare_training(runner *r, tema_err *err)
{
    r->opt = (tema_adam){.lr = (float)r->s.lr, .beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-8f,
                         .weight_decay = (float)r->s.weight_decay, .lazy = r->s.lazy_adam,
                         .decoupled = r->s.adamw};
    if (r->s.lazy_adam && !TEMA_BACKEND_HAS(r->be, adam_rows))
        return tema_fail(err, TEMA_EINVAL, "config train.optimizer: lazy_adam needs a backend with adam_rows (ops "
                                           "version 6), and backend %s has none; hint: rebuild the backend plugin, "
                                           "or use train.optimizer: adam", r->s.backend_name);
    tema_status st = tema_batch_buf_init(&r->train_bb, r->s.batch_size, r->s.max_len, r->s.positions, err);
    if (st == TEMA_OK) st = check_splits(r, err);
    if (st == TEMA_OK) st = draw_eval_negatives(r, err);
    if (st == TEMA_OK) st = probe_trainable(r, &r->trainable, err);
    return st;
}

static tema_status run_inner(runner *r, tema_err *err)
{
    double t_start = tema_now();
    tema_status st = read_settings(r->cfg, &r->s, err);
    if (st != TEMA_OK || (st = apply_threads(r, r->opts->threads, err)) != TEMA_OK) return st;
    char name[256], id[17];
    experiment_name(r->cfg, r->opts->config_path, name, sizeof name);
    char *identity = NULL;
    if ((st = tema_run_identity(r->cfg, r->reg, &identity, err)) != TEMA_OK) return st;
    tema_results_run_id(identity, id);
    tema_run_migrate(r->opts->results_dir, name, r->cfg, id);
    char *json = tema_cfg_to_json(r->cfg), *yaml = tema_cfg_to_yaml(r->cfg);
    tema_run_state rs = TEMA_RUN_NEW;
    if (!json) st = tema_fail(err, TEMA_ENOMEM, "cannot serialise the resolved config");
    else st = tema_results_open_id(r->opts->results_dir, name, id, json, yaml, &r->run, &rs, err);
    free(json);
    free(yaml);
    if (st != TEMA_OK) {
        free(identity);
        return st;
    }
    tema_run_plugin_files(r->cfg, r->reg, &r->plugins);
    st = run_session(r, name, rs, identity, t_start, err);
    free(identity);
    return st;
}

/* After the run folder is open: a finished run's summary, or training (fresh or resumed)
 * and the evaluation. */
static tema_status run_session(runner *r, const char *name, tema_run_state rs, const char *identity, double t_start,
                               tema_err *err)
{
    tema_status st;
    if (rs == TEMA_RUN_FINISHED && !r->opts->force) return tema_results_print_finished(r->run, &r->s.spec, err);

    if ((st = build_model(r, err)) != TEMA_OK || (st = prepare_training(r, err)) != TEMA_OK) return st;

    /* resume or start fresh */
    train_state ts = {0};
    const bool trainable = r->trainable;
    bool resume = false;
    if (rs == TEMA_RUN_INTERRUPTED && !r->opts->force && r->s.resume && trainable &&
        file_exists(tema_results_last_path(r->run)) && (st = resume_state(r, &ts, &resume, err)) != TEMA_OK)
        return st;
    if (resume && (st = tema_run_check_plugin_files(tema_results_dir(r->run), &r->plugins, err)) != TEMA_OK) return st;
    if (!resume) memset(&ts, 0, sizeof ts);
    /* earlier sessions' training time, so total_seconds spans an interrupted run */
    const double prior = ts.train_seconds + ts.epoch_seconds;
    if ((st = tema_results_begin(r->run, !resume, err)) != TEMA_OK) return st;
    if (!resume)
        for (int q = 0; q < 2; q++) {
            char *sp = tema_train_state_path(r->run, q == 1);
            if (sp) remove(sp);
            free(sp);
        } else {
        if ((st = tema_results_truncate_epochs(r->run, ts.epochs_done, err)) != TEMA_OK) return st;
        fprintf(stderr, "tema: resuming %s from epoch %d step %" PRId64 "\n", tema_results_dir(r->run),
                ts.epochs_done + (ts.step_in_epoch ? 1 : 0), ts.step_in_epoch);
    }
    if ((st = write_meta(r, identity, err)) != TEMA_OK) return st;
    fprintf(stderr, "tema: run %s/%s: %" PRId64 " parameters, %" PRId64 " training sequences, %d threads, backend %s\n",
            name, tema_results_id(r->run), tema_params_count(r->model.params), r->n_examples, r->s.threads,
            r->be_p->name);
    if (trainable && r->s.epochs > 0 && r->n_examples > 0) {
        st = train_loop(r, &ts, err);
        if (st != TEMA_OK) return st;
    }
    return finish(r, &ts, t_start, prior, err);
}

static void runner_release(runner *r)
{
    tema_results_close(r->run);
    free(r->valid_negs);
    free(r->test_negs);
    tema_batch_buf_free(&r->train_bb);
    tema_batch_buf_free(&r->eval_bb);
    tema_graph_free(r->g);
    tema_tags_detach(&r->model.info);
    tema_model_destroy(&r->model);
    free(r->counts);
    free(r->examples);
    tema_dataset_free(r->ds);
    tema_features_context(NULL, NULL, NULL);
    if (r->be && r->bs) {
        if (r->grad_norm_dev) r->be->free(r->bs, r->grad_norm_dev);
        tema_engine_set_backend(NULL, NULL);
        r->be->destroy(r->bs);
    }
}

tema_status tema_run_experiment(const tema_cfg *resolved, tema_registry *reg, const tema_run_opts *opts,
                                 tema_err *err)
{
    tema_run_opts defaults = {.results_dir = "results"};
    runner r = {.cfg = resolved, .reg = reg, .opts = opts ? opts : &defaults};
    r.tty = isatty(fileno(stderr)) != 0;
    tema_stop_listen();
    tema_status st = run_inner(&r, err);
    tema_stop_unlisten();
    if (st != TEMA_OK && st != TEMA_EINTERRUPTED && r.run) {
        tema_err ignored = {0};
        tema_results_interrupted(r.run, &ignored);
    }
    runner_release(&r);
    return st;
}

/* ---- a trained run opened for inference (tema export, tema recommend) ---- */

struct tema_trained_impl {
    runner r;
    tema_run_opts opts;
    tema_cfg *cfg;
    char results[4096];
    char checkpoint[4200];
    int64_t *perm;          /* tema_trained_fresh: the training lines in epoch perm_epoch's order */
    int64_t perm_epoch;
};

/* The opened model's view for the caller (tema_trained's fields). */
static void trained_expose(struct tema_trained_impl *t, tema_trained *out)
{
    runner *r = &t->r;
    out->cfg = r->cfg;
    out->ds = r->ds;
    out->backend = r->be_p->name;
    out->eval = (tema_eval_ctx){.model = &r->model, .g = r->g, .be = r->be, .bs = r->bs, .n_x = r->ds->n_x,
                                .n_y = r->ds->n_y, .batch_size = r->s.eval_batch, .threads = r->s.threads,
                                .bb = &r->eval_bb};
}

tema_status tema_trained_open(const char *run_dir, tema_registry *reg, const char *which, int threads,
                              tema_trained *out, tema_err *err)
{
    memset(out, 0, sizeof *out);
    if (strcmp(which, "best") && strcmp(which, "last"))
        return tema_fail(err, TEMA_EINVAL, "checkpoint '%s': use best or last", which);
    struct tema_trained_impl *t = calloc(1, sizeof *t);
    if (!t) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    out->impl = t;
    char *real = realpath(run_dir, NULL);
    if (!real) {
        tema_trained_close(out);
        return tema_fail(err, TEMA_ENOTFOUND, "%s: %s; hint: give a run folder, <results>/<experiment>/<run id>",
                         run_dir, strerror(errno));
    }
    char cfg_path[4200];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.yaml", real);
    snprintf(t->checkpoint, sizeof t->checkpoint, "%s/%s.bin", real, which);
    /* the run folder is <results>/<experiment>/<id>: data, tags and features stores live in <results> */
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(real, '/');
        if (slash && slash != real) *slash = '\0';
    }
    snprintf(t->results, sizeof t->results, "%s", real);
    free(real);
    tema_status st = tema_cfg_load(cfg_path, &t->cfg, err);
    if (st == TEMA_OK && !file_exists(t->checkpoint))
        st = tema_fail(err, TEMA_ENOTFOUND, "%s: no such checkpoint; hint: %s", t->checkpoint,
                       !strcmp(which, "best") ? "the run has not finished an evaluated epoch yet; use --checkpoint last "
                                                "for the latest state"
                                              : "the run has not saved a checkpoint yet");
    if (st != TEMA_OK) {
        tema_trained_close(out);
        return st;
    }
    runner *r = &t->r;
    t->opts = (tema_run_opts){.results_dir = t->results};
    *r = (runner){.cfg = t->cfg, .reg = reg, .opts = &t->opts};
    if ((st = read_settings(r->cfg, &r->s, err)) == TEMA_OK && (st = apply_threads(r, threads, err)) == TEMA_OK &&
        (st = build_model(r, err)) == TEMA_OK) {
        tema_adam opt = {0};
        st = tema_params_load(r->model.params, &opt, t->checkpoint, err);
    }
    if (st != TEMA_OK) {
        tema_trained_close(out);
        return st;
    }
    trained_expose(t, out);
    out->checkpoint = t->checkpoint;
    return TEMA_OK;
}

tema_status tema_trained_fresh(const tema_cfg *cfg, tema_registry *reg, const char *results_dir, int threads,
                               tema_trained *out, tema_err *err)
{
    memset(out, 0, sizeof *out);
    struct tema_trained_impl *t = calloc(1, sizeof *t);
    if (!t) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    out->impl = t;
    snprintf(t->results, sizeof t->results, "%s", results_dir);
    t->opts = (tema_run_opts){.results_dir = t->results};
    runner *r = &t->r;
    *r = (runner){.cfg = cfg, .reg = reg, .opts = &t->opts};
    tema_status st = read_settings(r->cfg, &r->s, err);
    if (st == TEMA_OK) st = apply_threads(r, threads, err);
    if (st == TEMA_OK) st = build_model(r, err);
    if (st == TEMA_OK) st = prepare_training(r, err);
    if (st == TEMA_OK && !r->trainable)
        st = tema_fail(err, TEMA_EINVAL, "no learnable parameter reaches the loss: there is no training step to time; "
                                         "hint: a model like pop only evaluates");
    if (st == TEMA_OK && !(t->perm = malloc((size_t)r->n_examples * sizeof *t->perm)))
        st = tema_fail(err, TEMA_ENOMEM, "out of memory");
    if (st != TEMA_OK) {
        tema_trained_close(out);
        return st;
    }
    trained_expose(t, out);
    out->steps_per_epoch = (r->n_examples + r->s.batch_size - 1) / r->s.batch_size;
    return TEMA_OK;
}

tema_status tema_trained_step(tema_trained *t, int64_t step, double *loss, tema_err *err)
{
    struct tema_trained_impl *ti = t->impl;
    runner *r = &ti->r;
    const int64_t epoch = step / t->steps_per_epoch + 1, first = step % t->steps_per_epoch * r->s.batch_size;
    if (ti->perm_epoch != epoch) {
        epoch_order(r, epoch, ti->perm);
        ti->perm_epoch = epoch;
    }
    int nb = (int)(r->n_examples - first < r->s.batch_size ? r->n_examples - first : r->s.batch_size);
    tema_status st = train_step(r, ti->perm + first, nb, (uint64_t)step, loss, err);
    /* a device backend queues the update: wait for it, so a clock around the call times the step */
    return st == TEMA_OK ? r->be->sync(r->bs, err) : st;
}

tema_status tema_trained_new_graph(tema_trained *t, tema_err *err)
{
    runner *r = &t->impl->r;
    tema_graph *g = tema_graph_new(r->s.seed);
    if (!g) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    tema_graph_free(r->g);
    t->eval.g = r->g = g;
    return TEMA_OK;
}

tema_status tema_trained_validate(tema_trained *t, tema_metric_acc *acc, tema_err *err)
{
    runner *r = &t->impl->r;
    if (r->ds->valid.n_lines == 0)
        return tema_fail(err, TEMA_EINVAL, "%s: %s has no line: no validation pass to time", r->ds->path,
                         r->ds->valid.file);
    return evaluate_set(r, &r->ds->valid, r->valid_negs, acc, NULL, err);
}

void tema_trained_close(tema_trained *t)
{
    if (!t->impl) return;
    runner_release(&t->impl->r);
    tema_cfg_free(t->impl->cfg);
    free(t->impl->perm);
    free(t->impl);
    memset(t, 0, sizeof *t);
}
