/* core/train_bench.c - `tema bench`: how fast one experiment trains on its real data, and how
 * much memory a training step and an evaluation pass take, as one JSON line.
 *
 * Part of the training module: the model is built and each step taken by train.c
 * (tema_trained_fresh, tema_trained_step), so what is timed is exactly a step of `tema run`.
 * The FLOP are counted by the graph as its products run (tema_graph_flop), forward and
 * backward, not estimated from the model's shapes; the peak they are held against is the
 * backend's own sgemm on a large square product, measured here with the run's threads.
 *
 * Peak RSS is read from Linux's resettable high-water mark (VmHWM, reset by writing 5 to
 * /proc/self/clear_refs), so the training steps and the evaluation pass each get their own
 * peak in one process; where it cannot be reset the numbers are the process's peak so far. */
#include <json-c/json.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "results.h"
#include "train.h"
#include "train_internal.h"
#include "util.h"

#define MIB (1024.0 * 1024.0)
/* The sgemm peak: an n^3 product (large enough for any backend's best kernel, small enough to
 * take milliseconds), timed in trials of at least PEAK_TRIAL_S, best of PEAK_TRIALS. */
#define PEAK_N 1024
#define PEAK_TRIALS 3
#define PEAK_TRIAL_S 0.02

/* Starts a new high-water mark at the current RSS; false where the kernel does not allow it.
 * Freed heap memory is handed back first, so what an earlier phase freed does not count. */
static bool rss_peak_reset(void)
{
    malloc_trim(0);
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return false;
    bool ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

/* The high-water mark of the RSS (since the last reset), in bytes. */
static size_t rss_peak_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %zu kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb ? kb * 1024 : tema_peak_rss();
}

/* GFLOP/s of the backend's sgemm on PEAK_N^3: trials of enough products to last PEAK_TRIAL_S,
 * the best trial. A device backend is synchronised around each trial. */
static tema_status sgemm_peak(const tema_backend_ops *be, void *bs, double *gflop_s, tema_err *err)
{
    const int64_t n = PEAK_N;
    const size_t bytes = (size_t)(n * n) * sizeof(float);
    float *a = be->alloc(bs, bytes), *b = be->alloc(bs, bytes), *c = be->alloc(bs, bytes);
    tema_status st = a && b && c ? TEMA_OK : tema_fail(err, TEMA_ENOMEM, "bench: out of memory for the sgemm peak");
    if (st == TEMA_OK) {
        /* values in [-1, 1): no denormals or infinities to slow a kernel down */
        float *h = malloc(bytes);
        if (!h) st = tema_fail(err, TEMA_ENOMEM, "out of memory");
        for (int64_t i = 0; h && i < n * n; i++) h[i] = (float)((i * 7919) % 2001 - 1000) * 1e-3f;
        if (h) {
            be->to_device(bs, a, h, bytes);
            be->to_device(bs, b, h, bytes);
        }
        free(h);
    }
    double best = 0;
    int reps = 1;
    for (int trial = -1; st == TEMA_OK && trial < PEAK_TRIALS; trial++) {
        double t0 = tema_now();
        for (int k = 0; k < reps; k++)
            be->sgemm(bs, false, false, n, n, n, 1.0f, a, n, 0, b, n, 0, 0.0f, c, n, 0, 1);
        st = be->sync(bs, err);
        double dt = tema_now() - t0;
        if (trial < 0) { /* the warm-up product sizes the trials */
            reps = dt > 0 && dt < PEAK_TRIAL_S ? (int)ceil(PEAK_TRIAL_S / dt) : 1;
            continue;
        }
        double rate = dt > 0 ? 2.0 * (double)n * n * n * reps / dt * 1e-9 : 0;
        best = rate > best ? rate : best;
    }
    if (a) be->free(bs, a);
    if (b) be->free(bs, b);
    if (c) be->free(bs, c);
    *gflop_s = best;
    return st;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* What a bench measured. */
typedef struct bench_numbers {
    double *ms;                       /* [steps], sorted once timed */
    double flop_per_step, last_loss, peak_gflop_s;
    size_t startup_rss, step_rss, eval_rss, param_bytes, arena_bytes, eval_arena_bytes;
    bool rss_resettable;
    double eval_s;                    /* < 0: not measured */
    tema_metric_acc valid;
} bench_numbers;

static void progress(bool tty, const char *what, int done, int total, double rate)
{
    if (!tty) return;
    fprintf(stderr, "\r\033[Ktema bench: %s %d/%d", what, done, total);
    if (rate > 0) fprintf(stderr, "  %.2f steps/s", rate);
    fflush(stderr);
}

/* Warm-up steps (they also size the graph's arena), then the timed ones with their own RSS
 * peak; global steps continue from one to the next, as in a run. One clock per step. */
static tema_status time_steps(tema_trained *t, const tema_bench_opts *o, bench_numbers *nb, bool tty, tema_err *err)
{
    tema_status st = TEMA_OK;
    for (int k = 0; k < o->warmup && st == TEMA_OK; k++) {
        st = tema_trained_step(t, k, &nb->last_loss, err);
        progress(tty, "warm-up step", k + 1, o->warmup, 0);
    }
    nb->rss_resettable = rss_peak_reset();
    const double flop0 = tema_graph_flop(t->eval.g);
    double sum = 0;
    for (int k = 0; k < o->steps && st == TEMA_OK; k++) {
        double t0 = tema_now();
        st = tema_trained_step(t, (int64_t)o->warmup + k, &nb->last_loss, err);
        nb->ms[k] = (tema_now() - t0) * 1e3;
        sum += nb->ms[k];
        progress(tty, "step", k + 1, o->steps, 1e3 * (k + 1) / sum);
    }
    if (tty) fputc('\n', stderr);
    nb->step_rss = rss_peak_bytes();
    nb->flop_per_step = (tema_graph_flop(t->eval.g) - flop0) / o->steps;
    qsort(nb->ms, (size_t)o->steps, sizeof *nb->ms, cmp_double);
    return st;
}

/* One validation pass on a graph of its own, the steps' arena freed before the RSS high-water
 * mark is reset: the two peaks compare what each needs beside the model and the data. */
static tema_status time_eval(tema_trained *t, bench_numbers *nb, bool tty, tema_err *err)
{
    tema_status st = tema_trained_new_graph(t, err);
    if (st != TEMA_OK) return st;
    if (nb->rss_resettable) rss_peak_reset();
    if (tty) fprintf(stderr, "tema bench: evaluating %lld validation lines...", (long long)t->ds->valid.n_lines);
    double t0 = tema_now();
    st = tema_trained_validate(t, &nb->valid, err);
    nb->eval_s = tema_now() - t0;
    if (tty) fputc('\n', stderr);
    nb->eval_rss = rss_peak_bytes();
    nb->eval_arena_bytes = tema_graph_peak_bytes(t->eval.g);
    return st;
}

/* A number, or null when it is not one (a rate over no time). */
static json_object *num(double v, const char *fmt)
{
    if (!isfinite(v)) return NULL;
    char buf[64];
    snprintf(buf, sizeof buf, fmt, v);
    return json_object_new_double_s(v, buf);
}

/* The validation metrics under the C2DSR rule (optimistic ranks), per domain. */
static json_object *metrics_json(const tema_metric_acc *a)
{
    json_object *o = json_object_new_object();
    static const char *const dom[2] = {"X", "Y"};
    for (int d = 0; d < 2; d++) {
        json_object *m = json_object_new_object();
        for (int k = 0; k < a->spec.n; k++)
            json_object_object_add(m, a->spec.name[k],
                                   num(tema_metric_acc_mean(a, d, TEMA_RANK_OPTIMISTIC, k), "%.6f"));
        json_object_object_add(o, dom[d], m);
    }
    return o;
}

static void print_json(const tema_trained *t, const tema_bench_opts *o, const bench_numbers *nb, FILE *out)
{
    const double med = o->steps % 2 ? nb->ms[o->steps / 2] : 0.5 * (nb->ms[o->steps / 2 - 1] + nb->ms[o->steps / 2]);
    const double gflop = nb->flop_per_step * 1e-9, gflop_s = gflop / (med * 1e-3);
    const tema_backend_ops *be = t->eval.be;
    json_object *j = json_object_new_object();
    json_object_object_add(j, "experiment", json_object_new_string(o->experiment ? o->experiment : "?"));
    json_object_object_add(j, "run", o->run >= 0 ? json_object_new_int64(o->run) : NULL);
    json_object_object_add(j, "steps", json_object_new_int(o->steps));
    json_object_object_add(j, "warmup", json_object_new_int(o->warmup));
    json_object_object_add(j, "ms_per_step_median", num(med, "%.2f"));
    json_object_object_add(j, "ms_per_step_min", num(nb->ms[0], "%.2f"));
    json_object_object_add(j, "ms_per_step_max", num(nb->ms[o->steps - 1], "%.2f"));
    json_object_object_add(j, "steps_per_s", num(1e3 / med, "%.3f"));
    /* what one epoch of training costs at this speed (validation not included) */
    json_object_object_add(j, "steps_per_epoch", json_object_new_int64(t->steps_per_epoch));
    json_object_object_add(j, "epoch_train_s", num(med * 1e-3 * (double)t->steps_per_epoch, "%.2f"));
    json_object_object_add(j, "eval_s", nb->eval_s >= 0 ? num(nb->eval_s, "%.2f") : NULL);
    json_object_object_add(j, "gflop_per_step", num(gflop, "%.4f"));
    json_object_object_add(j, "gflop_per_s", num(gflop_s, "%.2f"));
    json_object_object_add(j, "sgemm_peak_gflop_per_s", num(nb->peak_gflop_s, "%.2f"));
    json_object_object_add(j, "peak_fraction", num(gflop_s / nb->peak_gflop_s, "%.4f"));
    json_object_object_add(j, "startup_peak_rss_mib", num((double)nb->startup_rss / MIB, "%.1f"));
    json_object_object_add(j, "peak_rss_mib", num((double)nb->step_rss / MIB, "%.1f"));
    json_object_object_add(j, "eval_peak_rss_mib", nb->eval_s >= 0 ? num((double)nb->eval_rss / MIB, "%.1f") : NULL);
    json_object_object_add(j, "rss_peaks_separate", json_object_new_boolean(nb->rss_resettable));
    json_object_object_add(j, "arena_bytes", json_object_new_int64((int64_t)(nb->param_bytes + nb->arena_bytes)));
    json_object_object_add(j, "param_bytes", json_object_new_int64((int64_t)nb->param_bytes));
    json_object_object_add(j, "activation_arena_bytes", json_object_new_int64((int64_t)nb->arena_bytes));
    json_object_object_add(j, "eval_arena_bytes",
                           nb->eval_s >= 0 ? json_object_new_int64((int64_t)nb->eval_arena_bytes) : NULL);
    json_object_object_add(j, "device_mem_mib", TEMA_BACKEND_HAS(be, memory_peak)
                                                    ? num((double)be->memory_peak(t->eval.bs) / MIB, "%.1f")
                                                    : NULL);
    json_object_object_add(j, "loss_last", num(nb->last_loss, "%.6f"));
    json_object_object_add(j, "eval_metrics", nb->eval_s >= 0 ? metrics_json(&nb->valid) : NULL);
    json_object_object_add(j, "threads", json_object_new_int(t->eval.threads));
    json_object_object_add(j, "backend", json_object_new_string(t->backend));
    char commit[128];
    int dirty;
    tema_results_git_state(commit, sizeof commit, &dirty);
    json_object_object_add(j, "git_commit", json_object_new_string(commit));
    json_object_object_add(j, "git_dirty", dirty < 0 ? NULL : json_object_new_boolean(dirty));
    fprintf(out, "%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    fflush(out);
    json_object_put(j);
}

/* The sgemm peak, the steps, then (o->eval) one validation pass. */
static tema_status measure(tema_trained *t, const tema_bench_opts *o, bench_numbers *nb, tema_err *err)
{
    const bool tty = isatty(fileno(stderr)) != 0;
    tema_status st = sgemm_peak(t->eval.be, t->eval.bs, &nb->peak_gflop_s, err);
    if (st != TEMA_OK) return st;
    nb->startup_rss = rss_peak_bytes();
    if ((st = time_steps(t, o, nb, tty, err)) != TEMA_OK) return st;
    if (!nb->rss_resettable)
        fprintf(stderr, "tema bench: cannot reset the RSS high-water mark (/proc/self/clear_refs); peak RSS values "
                        "are the process's peak so far\n");
    nb->param_bytes = tema_params_bytes(t->eval.model->params);
    nb->arena_bytes = tema_graph_peak_bytes(t->eval.g);
    return o->eval ? time_eval(t, nb, tty, err) : TEMA_OK;
}

tema_status tema_bench(const tema_cfg *resolved, tema_registry *reg, const tema_bench_opts *o, FILE *out,
                       tema_err *err)
{
    if (o->steps < 1 || o->warmup < 0)
        return tema_fail(err, TEMA_EINVAL, "bench: --steps must be >= 1 and --warmup >= 0 (got %d, %d)", o->steps,
                         o->warmup);
    bench_numbers nb = {.eval_s = -1};
    if (!(nb.ms = calloc((size_t)o->steps, sizeof *nb.ms))) return tema_fail(err, TEMA_ENOMEM, "out of memory");
    tema_trained t;
    double t0 = tema_now();
    tema_status st = tema_trained_fresh(resolved, reg, o->results_dir ? o->results_dir : "results", o->threads, &t,
                                        err);
    if (st == TEMA_OK) {
        fprintf(stderr, "tema bench: %s: model built in %.1f s (%s, %d thread%s); %d warm-up + %d timed steps%s\n",
                o->experiment ? o->experiment : "?", tema_now() - t0, t.backend, t.eval.threads,
                t.eval.threads == 1 ? "" : "s", o->warmup, o->steps, o->eval ? ", then one validation pass" : "");
        st = measure(&t, o, &nb, err);
        if (st == TEMA_OK) print_json(&t, o, &nb, out);
        tema_trained_close(&t);
    }
    free(nb.ms);
    return st;
}
