/* core/params.c - the parameter store, Adam and checkpoints.
 *
 * Parameters are declared one by one while plugins build a model; finalize then carves
 * every value out of ONE backend buffer, gradients out of one, and each Adam moment out
 * of one (llm.c style), so the optimizer and zero_grad are single sweeps and a
 * checkpoint is a copy of four arrays. Learnable tensors come first in the value
 * buffer (in declaration order), then the frozen constants, which have no gradient
 * and no moments.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn_internal.h"
#include "util.h"

/* The rows of a learnable tensor (viewed [rows, dim], dim = all but the first dimension) whose
 * gradient the current step wrote, as the autograd reports them (param_touch_rows/_all):
 * zero_grad then zeroes only those, and lazy Adam updates only those. */
typedef struct row_touch {
    int64_t rows, dim;
    bool all;            /* a write that may reach any row (or rows not tracked) */
    uint32_t *stamp;     /* host [rows]: == the store's epoch when touched this step; lazily allocated */
    int32_t *list;       /* host: the touched rows, distinct, in the order first touched */
    int64_t n, cap;
} row_touch;

/* A parameter tensor and its row bookkeeping in one block: the autograd holds only the tensor
 * pointer, and param_of() gets back to the rest (the tensor is the first member). */
typedef struct param_tensor {
    tema_tensor t;
    tema_params *owner;
    row_touch touch;
} param_tensor;

typedef struct param_entry {
    tema_tensor *t;      /* &param_tensor.t, individually allocated so the pointer handed out stays valid */
    tema_init init;
    float scale;
    float *host;         /* constants: copy of the caller's data until finalize */
    int64_t off;         /* offset in the value (and, if learnable, grad/moment) buffers */
} param_entry;

struct tema_params {
    uint64_t seed;
    param_entry *e;
    size_t n, cap;
    bool finalized;
    char deferred[512];  /* first declaration error, reported by finalize */
    const tema_backend_ops *be;
    void *bs;
    float *values, *grads, *m, *v;
    int64_t n_values, n_learn;
    tema_csr **csrs;     /* sparse matrices (csr()), each its own backend block */
    size_t n_csrs, cap_csrs;
    uint32_t epoch;      /* the step's stamp for row_touch.stamp (advanced by zero_grad) */
    int32_t *dev_rows;   /* backend copy of one tensor's touched rows, for adam_rows / zero_rows */
    int64_t dev_rows_cap;
};

tema_params *tema_params_new(uint64_t seed)
{
    tema_params *p = calloc(1, sizeof *p);
    if (p) p->seed = seed, p->epoch = 1;
    return p;
}

void tema_params_free(tema_params *p)
{
    if (!p) return;
    if (p->be) {
        p->be->free(p->bs, p->values);
        p->be->free(p->bs, p->grads);
        p->be->free(p->bs, p->m);
        p->be->free(p->bs, p->v);
        p->be->free(p->bs, p->dev_rows);
    }
    for (size_t i = 0; i < p->n_csrs; i++) csr_free(p->csrs[i]);
    free(p->csrs);
    for (size_t i = 0; i < p->n; i++) {
        param_tensor *pt = (param_tensor *)p->e[i].t;
        free((char *)pt->t.name);
        free(pt->touch.stamp);
        free(pt->touch.list);
        free(pt);
        free(p->e[i].host);
    }
    free(p->e);
    free(p);
}

static void defer(tema_params *p, const char *fmt, const char *name)
{
    if (!p->deferred[0]) snprintf(p->deferred, sizeof p->deferred, fmt, name ? name : "(null)");
}

static tema_tensor *declare(tema_params *p, const char *name, int ndim, const int64_t *shape, uint32_t flags)
{
    if (!p) return NULL;
    if (p->finalized) {
        defer(p, "parameter '%s' declared after the model was finalised; hint: declare every parameter in create()",
              name);
        return NULL;
    }
    if (!name || !name[0]) {
        defer(p, "a parameter has no name%s; hint: give every param() a unique name", "");
        return NULL;
    }
    if (ndim < 1 || ndim > TEMA_MAX_DIMS || !shape) {
        defer(p, "parameter '%s' has an invalid number of dimensions (1..4 allowed)", name);
        return NULL;
    }
    int64_t size = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0) {
            defer(p, "parameter '%s' has a dimension <= 0; hint: check the model's size options", name);
            return NULL;
        }
        size *= shape[i];
    }
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->e[i].t->name, name)) {
            defer(p, "parameter '%s' is declared twice; hint: prefix names with the plugin name", name);
            return NULL;
        }
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 32;
        param_entry *e = realloc(p->e, cap * sizeof *e);
        if (!e) return NULL;
        p->e = e;
        p->cap = cap;
    }
    param_tensor *pt = calloc(1, sizeof *pt);
    char *nm = strdup(name);
    if (!pt || !nm) {
        free(pt);
        free(nm);
        return NULL;
    }
    tema_tensor *t = &pt->t;
    pt->owner = p;
    pt->touch = (row_touch){.rows = shape[0], .dim = size / shape[0]};
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->size = size;
    t->flags = flags;
    t->name = nm;
    p->e[p->n++] = (param_entry){.t = t};
    return t;
}

tema_tensor *tema_params_declare(tema_params *p, const char *name, int ndim, const int64_t *shape, tema_init init,
                                 float scale, uint32_t flags)
{
    tema_tensor *t = declare(p, name, ndim, shape,
                             TEMA_TENSOR_PARAM | TEMA_TENSOR_NEEDS_GRAD | (flags & TEMA_TENSOR_NO_DECAY));
    if (t) {
        p->e[p->n - 1].init = init;
        p->e[p->n - 1].scale = scale;
    }
    return t;
}

tema_tensor *tema_params_constant(tema_params *p, const char *name, int ndim, const int64_t *shape,
                                  const float *host_data)
{
    tema_tensor *t = declare(p, name, ndim, shape, 0);
    if (!t) return NULL;
    param_entry *e = &p->e[p->n - 1];
    e->init = TEMA_INIT_ZEROS;
    if (host_data) {
        e->host = malloc((size_t)t->size * sizeof(float));
        if (!e->host) {
            defer(p, "out of memory copying constant '%s'", name);
            return NULL;
        }
        memcpy(e->host, host_data, (size_t)t->size * sizeof(float));
    }
    return t;
}

/* Not in the value buffer, so it may come before or after finalize; a failure before it is
 * also kept for finalize, like a bad param(). */
tema_csr *tema_params_csr(tema_params *p, const char *name, int64_t rows, int64_t cols, const int64_t *row_ptr,
                          const int32_t *col_idx, const float *values, tema_err *err)
{
    if (!p) return tema_fail(err, TEMA_EINVAL, "csr: no parameter store"), NULL;
    tema_err local = {0};
    if (!err) err = &local;
    tema_csr *a = NULL;
    if (p->n_csrs == p->cap_csrs) {
        size_t cap = p->cap_csrs ? 2 * p->cap_csrs : 4;
        tema_csr **c = realloc(p->csrs, cap * sizeof *c);
        if (c) p->csrs = c, p->cap_csrs = cap;
    }
    if (p->n_csrs == p->cap_csrs) tema_fail(err, TEMA_ENOMEM, "csr '%s': out of memory", name ? name : "?");
    else a = csr_new(name, rows, cols, row_ptr, col_idx, values, err);
    if (!a) {
        if (!p->finalized) defer(p, "%.500s", err->msg);
        return NULL;
    }
    p->csrs[p->n_csrs++] = a;
    return a;
}

static bool learnable(const tema_tensor *t) { return (t->flags & TEMA_TENSOR_PARAM) != 0; }

static void init_values(const tema_params *p, const param_entry *e, float *out)
{
    const tema_tensor *t = e->t;
    if (e->host) {
        memcpy(out, e->host, (size_t)t->size * sizeof(float));
        return;
    }
    /* Each tensor's stream depends only on the model seed and its name, so adding a
     * parameter elsewhere does not change how the others start. */
    tema_rng rng;
    tema_rng_seed(&rng, p->seed ^ tema_hash64(t->name, strlen(t->name)));
    int64_t fan_in = t->shape[t->ndim - 1], fan_out = t->ndim >= 2 ? t->shape[t->ndim - 2] : t->shape[0];
    double bound = e->scale * sqrt(6.0 / (double)(fan_in + fan_out));
    for (int64_t i = 0; i < t->size; i++) {
        switch (e->init) {
        case TEMA_INIT_ZEROS: out[i] = 0.0f; break;
        case TEMA_INIT_ONES: out[i] = 1.0f; break;
        case TEMA_INIT_NORMAL: out[i] = (float)(e->scale * tema_rng_normal(&rng)); break;
        case TEMA_INIT_UNIFORM: out[i] = (float)(e->scale * (2.0 * tema_rng_uniform(&rng) - 1.0)); break;
        case TEMA_INIT_XAVIER: out[i] = (float)(bound * (2.0 * tema_rng_uniform(&rng) - 1.0)); break;
        default: out[i] = 0.0f; break;
        }
    }
}

tema_status tema_params_finalize(tema_params *p, tema_err *err)
{
    if (!p) return tema_fail(err, TEMA_EINVAL, "tema_params_finalize: no parameter store");
    if (p->deferred[0]) return tema_fail(err, TEMA_EINVAL, "%s", p->deferred);
    if (p->finalized) return TEMA_OK;
    p->be = tema_engine_backend();
    p->bs = tema_engine_backend_self();
    if (!p->be)
        return tema_fail(err, TEMA_EINVAL, "parameters: no compute backend selected; hint: the trainer must call "
                                           "tema_engine_set_backend() before building a model");
    p->n_learn = p->n_values = 0;
    for (size_t pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < p->n; i++)
            if (learnable(p->e[i].t) == (pass == 0)) {
                p->e[i].off = p->n_values;
                p->n_values += p->e[i].t->size;
                if (pass == 0) p->n_learn += p->e[i].t->size;
            }
    size_t vb = (size_t)p->n_values * sizeof(float), lb = (size_t)p->n_learn * sizeof(float);
    p->values = p->be->alloc(p->bs, vb);
    p->grads = p->be->alloc(p->bs, lb);
    p->m = p->be->alloc(p->bs, lb);
    p->v = p->be->alloc(p->bs, lb);
    if (!p->values || !p->grads || !p->m || !p->v)
        return tema_fail(err, TEMA_ENOMEM, "parameters: cannot allocate %zu bytes for %lld floats", vb + 3 * lb,
                         (long long)p->n_values);
    p->be->memset0(p->bs, p->grads, lb);
    p->be->memset0(p->bs, p->m, lb);
    p->be->memset0(p->bs, p->v, lb);
    int64_t biggest = 1;
    for (size_t i = 0; i < p->n; i++) biggest = p->e[i].t->size > biggest ? p->e[i].t->size : biggest;
    float *tmp = malloc((size_t)biggest * sizeof(float));
    if (!tmp) return tema_fail(err, TEMA_ENOMEM, "parameters: out of memory initialising values");
    for (size_t i = 0; i < p->n; i++) {
        param_entry *e = &p->e[i];
        e->t->data = p->values + e->off;
        e->t->grad = learnable(e->t) ? p->grads + e->off : NULL;
        init_values(p, e, tmp);
        p->be->to_device(p->bs, e->t->data, tmp, (size_t)e->t->size * sizeof(float));
        free(e->host);
        e->host = NULL;
    }
    free(tmp);
    p->finalized = true;
    return TEMA_OK;
}

int64_t tema_params_count(const tema_params *p)
{
    int64_t n = 0;
    for (size_t i = 0; p && i < p->n; i++)
        if (learnable(p->e[i].t)) n += p->e[i].t->size;
    return n;
}

size_t tema_params_n(const tema_params *p) { return p ? p->n : 0; }

size_t tema_params_bytes(const tema_params *p)
{
    return p ? ((size_t)p->n_values + 3 * (size_t)p->n_learn) * sizeof(float) : 0;
}

tema_tensor *tema_params_at(tema_params *p, size_t i) { return p && i < p->n ? p->e[i].t : NULL; }

/* ---- which rows a step's gradient reached ---- */

static param_tensor *param_of(tema_tensor *t) { return (param_tensor *)t; }

void param_touch_all(tema_tensor *t)
{
    if (t && learnable(t)) param_of(t)->touch.all = true;
}

void param_touch_rows(tema_tensor *t, const int32_t *ids, int64_t n)
{
    if (!t || !learnable(t)) return;
    param_tensor *pt = param_of(t);
    row_touch *r = &pt->touch;
    if (r->all) return;
    if (!r->stamp && !(r->stamp = calloc((size_t)r->rows, sizeof *r->stamp))) {
        r->all = true; /* no memory for the bookkeeping: the whole tensor, as before it existed */
        return;
    }
    const uint32_t epoch = pt->owner->epoch;
    for (int64_t i = 0; i < n; i++) {
        const int32_t id = ids[i]; /* in [-1, rows): the ops checked them in forward */
        if (id < 0 || r->stamp[id] == epoch) continue;
        if (r->n == r->cap) {
            int64_t cap = r->cap ? 2 * r->cap : 256;
            cap = cap < r->rows ? cap : r->rows;
            int32_t *l = realloc(r->list, (size_t)cap * sizeof *l);
            if (!l) {
                r->all = true;
                return;
            }
            r->list = l;
            r->cap = cap;
        }
        r->stamp[id] = epoch;
        r->list[r->n++] = id;
    }
}

/* The touched rows of r on the backend (one buffer reused for every tensor); NULL when it
 * cannot grow. */
static const int32_t *rows_on_device(tema_params *p, const row_touch *r)
{
    if (r->n > p->dev_rows_cap) {
        p->be->free(p->bs, p->dev_rows);
        p->dev_rows = p->be->alloc(p->bs, (size_t)r->n * sizeof(int32_t));
        p->dev_rows_cap = p->dev_rows ? r->n : 0;
        if (!p->dev_rows) return NULL;
    }
    p->be->to_device(p->bs, p->dev_rows, r->list, (size_t)r->n * sizeof(int32_t));
    return p->dev_rows;
}

static void zero_span(tema_params *p, int64_t off, int64_t n)
{
    if (n > 0) p->be->memset0(p->bs, p->grads + off, (size_t)n * sizeof(float));
}

/* Zeroes what the last step wrote: only the touched rows of a table that the autograd wrote
 * by rows alone (and mostly not), whole tensors otherwise, also where the autograd reported
 * nothing (a gradient may be written by hand). Adjacent whole tensors go as one sweep. */
void tema_params_zero_grad(tema_params *p)
{
    if (!p || !p->finalized) return;
    const bool by_rows = TEMA_BACKEND_HAS(p->be, zero_rows);
    int64_t run_off = 0, run_len = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (!learnable(p->e[i].t)) continue;
        row_touch *r = &param_of(p->e[i].t)->touch;
        const bool whole = r->all || r->n == 0 || !by_rows || 4 * r->n > r->rows;
        if (whole && run_off + run_len == p->e[i].off) {
            run_len += p->e[i].t->size;
        } else if (whole) {
            zero_span(p, run_off, run_len);
            run_off = p->e[i].off;
            run_len = p->e[i].t->size;
        } else {
            const int32_t *rows = rows_on_device(p, r);
            if (rows) p->be->zero_rows(p->bs, r->n, r->dim, rows, p->grads + p->e[i].off);
            else zero_span(p, p->e[i].off, p->e[i].t->size);
        }
        r->all = false;
        r->n = 0;
    }
    zero_span(p, run_off, run_len);
    if (++p->epoch == 0) { /* 2^32 steps: restart the stamps rather than mistake an old one for now */
        for (size_t i = 0; i < p->n; i++) {
            row_touch *r = &param_of(p->e[i].t)->touch;
            if (r->stamp) memset(r->stamp, 0, (size_t)r->rows * sizeof *r->stamp);
        }
        p->epoch = 1;
    }
}

/* The one Adam update of entries i..j-1 (adjacent in the buffers): one sweep. */
static void adam_span(tema_params *p, const tema_adam *opt, size_t i, int64_t n, bool no_decay, float bc1, float bc2)
{
    const int64_t off = p->e[i].off;
    float l2 = no_decay ? 0.0f : opt->weight_decay;
    if (opt->decoupled && l2 != 0.0f) {
        p->be->axpy(p->bs, n, -opt->lr * l2, p->values + off, p->values + off);
        l2 = 0.0f;
    }
    p->be->adam(p->bs, n, opt->lr, opt->beta1, opt->beta2, opt->eps, l2, bc1, bc2, p->values + off, p->grads + off,
                p->m + off, p->v + off);
}

/* Lazy Adam's update of one tensor: only its touched rows, or nothing when the step's gradient
 * did not reach it (PyTorch skips a parameter whose grad is None the same way). */
static void adam_lazy_rows(tema_params *p, const tema_adam *opt, size_t i, float bc1, float bc2)
{
    const row_touch *r = &param_of(p->e[i].t)->touch;
    if (r->n == 0) return;
    const int64_t off = p->e[i].off;
    const float wd = (p->e[i].t->flags & TEMA_TENSOR_NO_DECAY) ? 0.0f : opt->weight_decay;
    const int32_t *rows = rows_on_device(p, r);
    if (rows)
        p->be->adam_rows(p->bs, r->n, r->dim, rows, opt->lr, opt->beta1, opt->beta2, opt->eps, wd, bc1, bc2,
                         p->values + off, p->grads + off, p->m + off, p->v + off);
    else
        adam_span(p, opt, i, p->e[i].t->size, wd == 0.0f, bc1, bc2);
}

/* Is entry i updated by its rows under this Adam (lazy, and its gradient not reaching every row)? */
static bool adam_by_rows(const tema_params *p, size_t i, bool lazy)
{
    return lazy && !((const param_tensor *)p->e[i].t)->touch.all;
}

void tema_adam_step(tema_params *p, tema_adam *opt)
{
    if (!p || !p->finalized || !opt) return;
    opt->step++;
    float bc1 = (float)(1.0 - pow(opt->beta1, (double)opt->step));
    float bc2 = (float)(1.0 - pow(opt->beta2, (double)opt->step));
    const bool lazy = opt->lazy && TEMA_BACKEND_HAS(p->be, adam_rows);
    /* Runs of tensors that share a weight decay go to the kernel as one sweep; under lazy Adam a
     * tensor whose gradient did not reach every row is updated on its own. */
    size_t i = 0;
    while (i < p->n) {
        if (!learnable(p->e[i].t)) {
            i++;
            continue;
        }
        if (adam_by_rows(p, i, lazy)) {
            adam_lazy_rows(p, opt, i++, bc1, bc2);
            continue;
        }
        bool no_decay = (p->e[i].t->flags & TEMA_TENSOR_NO_DECAY) != 0;
        int64_t off = p->e[i].off, n = 0;
        size_t j = i;
        while (j < p->n && learnable(p->e[j].t) && ((p->e[j].t->flags & TEMA_TENSOR_NO_DECAY) != 0) == no_decay &&
               p->e[j].off == off + n && !adam_by_rows(p, j, lazy)) {
            n += p->e[j].t->size;
            j++;
        }
        adam_span(p, opt, i, n, no_decay, bc1, bc2);
        i = j;
    }
}

/* ---- checkpoints ----
 * Layout (little endian): "TEMACKPT" | u32 version | u32 n_tensors | i64 adam step |
 *   per tensor: u32 name length, name, u32 ndim, i64 shape[ndim] |
 *   values, then m, then v of all learnable tensors (float32, declaration order) |
 *   u64 FNV-1a of everything before it.
 * Only learnable tensors are stored; constants are rebuilt from the data. */
#define CKPT_MAGIC "TEMACKPT"
#define CKPT_VERSION 1u

typedef struct buf {
    char *p;
    size_t len, cap;
    bool oom;
} buf;

/* Grow b by n bytes and return where they start (NULL when out of memory). */
static char *reserve(buf *b, size_t n)
{
    if (b->oom) return NULL;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return NULL;
        }
        b->p = p;
        b->cap = cap;
    }
    b->len += n;
    return b->p + b->len - n;
}

static void put(buf *b, const void *data, size_t n)
{
    char *at = reserve(b, n);
    if (at && n) memcpy(at, data, n);
}

tema_status tema_params_save(const tema_params *p, const tema_adam *opt, const char *path, tema_err *err)
{
    if (!p || !p->finalized)
        return tema_fail(err, TEMA_EINVAL, "checkpoint %s: the model is not finalised; hint: save after the first "
                                           "step", path);
    buf b = {0};
    uint32_t ver = CKPT_VERSION, nt = 0;
    for (size_t i = 0; i < p->n; i++) nt += learnable(p->e[i].t);
    int64_t step = opt ? opt->step : 0;
    put(&b, CKPT_MAGIC, 8);
    put(&b, &ver, 4);
    put(&b, &nt, 4);
    put(&b, &step, 8);
    for (size_t i = 0; i < p->n; i++) {
        const tema_tensor *t = p->e[i].t;
        if (!learnable(t)) continue;
        uint32_t nl = (uint32_t)strlen(t->name), nd = (uint32_t)t->ndim;
        put(&b, &nl, 4);
        put(&b, t->name, nl);
        put(&b, &nd, 4);
        put(&b, t->shape, sizeof(int64_t) * nd);
    }
    size_t nbytes = (size_t)p->n_learn * sizeof(float);
    const float *arrays[3] = {p->values, p->m, p->v};
    for (int a = 0; a < 3; a++) {
        char *at = reserve(&b, nbytes);
        if (at && nbytes) p->be->to_host(p->bs, at, arrays[a], nbytes);
    }
    /* never write a checkpoint of values a failed device computed */
    tema_status st = p->be->sync(p->bs, err);
    if (st != TEMA_OK) {
        free(b.p);
        return st;
    }
    uint64_t h = b.oom ? 0 : tema_hash64(b.p, b.len);
    put(&b, &h, 8);
    if (b.oom) {
        free(b.p);
        return tema_fail(err, TEMA_ENOMEM, "checkpoint %s: out of memory building %zu bytes", path, b.len);
    }
    st = tema_write_file_atomic(path, b.p, b.len, err);
    free(b.p);
    return st;
}

typedef struct reader {
    const char *p;
    size_t len, at;
} reader;

static bool take(reader *r, void *out, size_t n)
{
    if (r->len - r->at < n) return false;
    memcpy(out, r->p + r->at, n);
    r->at += n;
    return true;
}

static void shape_str(char *out, size_t cap, int nd, const int64_t *shape)
{
    size_t k = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < nd && k < cap; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (k < cap) snprintf(out + k, cap - k, "]");
}

tema_status tema_params_load(tema_params *p, tema_adam *opt, const char *path, tema_err *err)
{
    if (!p || !p->finalized)
        return tema_fail(err, TEMA_EINVAL, "checkpoint %s: finalise the model before loading into it", path);
    char *data = NULL;
    size_t len = 0;
    tema_status st = tema_read_file(path, &data, &len, err);
    if (st != TEMA_OK) return st;
    reader r = {data, len, 0};
    char magic[8];
    uint32_t ver = 0, nt = 0;
    int64_t step = 0;
    uint64_t h = 0;
    const char *hint = "hint: the file is not a complete tema checkpoint (truncated or corrupt); delete it or "
                       "resume from another one";
    if (len < 32 || !take(&r, magic, 8) || memcmp(magic, CKPT_MAGIC, 8) != 0) {
        free(data);
        return tema_fail(err, TEMA_EFORMAT, "checkpoint %s: bad magic; %s", path, hint);
    }
    memcpy(&h, data + len - 8, 8);
    if (tema_hash64(data, len - 8) != h) {
        free(data);
        return tema_fail(err, TEMA_EFORMAT, "checkpoint %s: checksum mismatch; %s", path, hint);
    }
    r.len = len - 8;
    take(&r, &ver, 4);
    take(&r, &nt, 4);
    take(&r, &step, 8);
    if (ver != CKPT_VERSION) {
        free(data);
        return tema_fail(err, TEMA_EFORMAT, "checkpoint %s: format version %u, this tema reads version %u; hint: "
                                            "use the tema that wrote it", path, ver, CKPT_VERSION);
    }
    uint32_t want = 0;
    for (size_t i = 0; i < p->n; i++) want += learnable(p->e[i].t);
    if (nt != want) {
        free(data);
        return tema_fail(err, TEMA_EINVAL, "checkpoint %s: has %u parameter tensors, the model has %u; hint: the "
                                           "checkpoint was written by a different model configuration", path, nt, want);
    }
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++) {
        const tema_tensor *t = p->e[i].t;
        if (!learnable(t)) continue;
        uint32_t nl = 0, nd = 0;
        char name[256];
        int64_t shape[TEMA_MAX_DIMS] = {0};
        bool ok = take(&r, &nl, 4) && nl < sizeof name && take(&r, name, nl);
        if (ok) name[nl] = 0;
        ok = ok && take(&r, &nd, 4) && nd >= 1 && nd <= TEMA_MAX_DIMS && take(&r, shape, 8 * (size_t)nd);
        if (!ok) {
            free(data);
            return tema_fail(err, TEMA_EFORMAT, "checkpoint %s: header of tensor %zu is malformed; %s", path, k, hint);
        }
        bool same = !strcmp(name, t->name) && (int)nd == t->ndim;
        for (uint32_t d = 0; same && d < nd; d++) same = shape[d] == t->shape[d];
        if (!same) {
            char a[96], b[96];
            shape_str(a, sizeof a, (int)nd, shape);
            shape_str(b, sizeof b, t->ndim, t->shape);
            tema_fail(err, TEMA_EINVAL, "checkpoint %s: tensor %zu is '%s' %s but the model has '%s' %s; hint: the "
                                        "checkpoint was written by a different model configuration",
                      path, k, name, a, t->name, b);
            free(data);
            return TEMA_EINVAL;
        }
        k++;
    }
    size_t nbytes = (size_t)p->n_learn * sizeof(float);
    if (r.len - r.at != 3 * nbytes) {
        free(data);
        return tema_fail(err, TEMA_EFORMAT, "checkpoint %s: holds %zu bytes of values, expected %zu; %s", path,
                         r.len - r.at, 3 * nbytes, hint);
    }
    float *arrays[3] = {p->values, p->m, p->v};
    for (int a = 0; a < 3; a++) p->be->to_device(p->bs, arrays[a], data + r.at + (size_t)a * nbytes, nbytes);
    if (opt) opt->step = step;
    free(data);
    return TEMA_OK;
}
