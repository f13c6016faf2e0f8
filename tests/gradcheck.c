/* tests/gradcheck.c - the finite-difference harness of tests/test_grad.c (see gradcheck.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "config.h"
#include "host.h"
#include "registry.h"
#include "testutil.h"
#include "util.h"

const tema_plugin *tema_plugin_entry_backend_cpu(const tema_host *host);

const tema_nn_api *nn;
void *cpu_self;

void gradcheck_setup(void)
{
    const tema_plugin *pl = tema_plugin_entry_backend_cpu(tema_host_get());
    const tema_backend_ops *ops = pl->ops;
    tema_err err = {0};
    tema_cfg *opts = tu_plugin_opts(pl, NULL);
    ck_assert_int_eq(ops->init(tema_host_get(), opts, &cpu_self, &err), TEMA_OK);
    tema_cfg_free(opts);
    tema_engine_set_backend(ops, cpu_self);
    nn = tema_nn();
}

void gradcheck_teardown(void)
{
    tema_engine_backend()->destroy(cpu_self);
    tema_engine_set_backend(NULL, NULL);
}

/* ---- the finite-difference harness ---- */

static double host_loss(tema_tensor *out, const float *r)
{
    double s = 0.0;
    for (int64_t i = 0; i < out->size; i++) s += (double)out->data[i] * r[i];
    return s;
}

/* loss = sum(out * R) for a fixed random R; compares d loss / d input for every element
 * of every input with (loss(x+e) - loss(x-e)) / 2e, the losses summed in double. */
void gradcheck(const char *what, int n_in, const spec *specs, build_fn f, void *ctx, float lo_abs, double eps,
               double tol)
{
    tema_params *p = tema_params_new(11);
    tema_tensor *in[MAX_IN];
    for (int i = 0; i < n_in; i++) {
        char name[32];
        snprintf(name, sizeof name, "in%d", i);
        in[i] = nn->param(p, name, specs[i].ndim, specs[i].shape, TEMA_INIT_NORMAL, 1.0f, 0);
        ck_assert_ptr_nonnull(in[i]);
    }
    tema_err err = {0};
    ck_assert_int_eq(tema_params_finalize(p, &err), TEMA_OK);
    /* Keep values away from kinks (relu at 0) when asked. */
    for (int i = 0; i < n_in; i++)
        for (int64_t k = 0; k < in[i]->size; k++)
            if (fabsf(in[i]->data[k]) < lo_abs) in[i]->data[k] = in[i]->data[k] < 0 ? -lo_abs : lo_abs;
    tema_graph *g = tema_graph_new(5);
    tema_graph_reset(g, true, 99);
    tema_tensor *out = f(g, in, ctx);
    ck_assert_msg(out != NULL, "%s: forward failed: %s", what, nn->error(g));
    int64_t n_out = out->size;
    float *r = malloc(sizeof(float) * (size_t)(n_out ? n_out : 1));
    tema_rng rng;
    tema_rng_seed(&rng, 3);
    for (int64_t k = 0; k < n_out; k++) r[k] = (float)(2.0 * tema_rng_uniform(&rng) - 1.0);
    tema_tensor *rt = nn->tensor(g, out->ndim, out->shape, r);
    tema_tensor *loss = nn->sum(g, nn->mul(g, out, rt));
    ck_assert_ptr_nonnull(loss);
    tema_params_zero_grad(p);
    ck_assert_msg(tema_graph_backward(g, loss, &err) == TEMA_OK, "%s: backward: %s", what, err.msg);
    double worst = 0.0;
    for (int i = 0; i < n_in; i++) {
        float *grad = malloc(sizeof(float) * (size_t)in[i]->size);
        memcpy(grad, in[i]->grad, sizeof(float) * (size_t)in[i]->size);
        for (int64_t k = 0; k < in[i]->size; k++) {
            float v = in[i]->data[k];
            in[i]->data[k] = (float)(v + eps);
            tema_graph_reset(g, true, 99);
            double lp = host_loss(f(g, in, ctx), r);
            in[i]->data[k] = (float)(v - eps);
            tema_graph_reset(g, true, 99);
            double lm = host_loss(f(g, in, ctx), r);
            in[i]->data[k] = v;
            double num = (lp - lm) / (2 * eps), ana = grad[k];
            double e = fabs(num - ana) / (1e-3 + fmax(fabs(num), fabs(ana)));
            if (e > worst) worst = e;
            ck_assert_msg(e <= tol, "%s: d/d in%d[%lld]: analytic %.6g, numeric %.6g", what, i, (long long)k, ana,
                          num);
        }
        free(grad);
    }
    free(r);
    tema_graph_free(g);
    tema_params_free(p);
}
