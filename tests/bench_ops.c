/* tests/bench_ops.c - throughput of the CPU backend at the real training size.
 *
 *   ninja -C build bench_ops && ./build/tests/bench_ops [reps] [threads...]
 *
 * Prints sgemm GFLOP/s and ms per lse_chunked forward+backward (R=2560 rows, d=256,
 * 35000 items, chunk 4096; one range for all rows, and two half-size domains) for 1
 * and 2 threads, or for the thread counts given; then ms per spmm forward+backward on an
 * item graph the size of food-kitchen-c2dsr's (64,093 nodes, ~2M edges, D=64). Not a test:
 * it asserts nothing and is not registered with meson test. */
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "host.h"
#include "engine.h"
#include "registry.h"
#include "util.h"

const tema_plugin *tema_plugin_entry_backend_cpu(const tema_host *host);

static double bench_sgemm(const tema_backend_ops *be, void *bs, int64_t M, int64_t N, int64_t K, bool tb, int reps)
{
    float *a = be->alloc(bs, sizeof(float) * (size_t)(M * K)), *b = be->alloc(bs, sizeof(float) * (size_t)(K * N)),
          *c = be->alloc(bs, sizeof(float) * (size_t)(M * N));
    for (int64_t i = 0; i < M * K; i++) a[i] = (float)(i % 7) * 0.1f;
    for (int64_t i = 0; i < K * N; i++) b[i] = (float)(i % 5) * 0.1f;
    be->sgemm(bs, false, tb, M, N, K, 1.0f, a, K, 0, b, tb ? K : N, 0, 0.0f, c, N, 0, 1); /* warm up */
    double t0 = tema_now();
    for (int r = 0; r < reps; r++) be->sgemm(bs, false, tb, M, N, K, 1.0f, a, K, 0, b, tb ? K : N, 0, 0.0f, c, N, 0, 1);
    double dt = (tema_now() - t0) / reps;
    be->free(bs, a), be->free(bs, b), be->free(bs, c);
    return 2.0 * (double)M * N * K / dt * 1e-9;
}

static double bench_lse(int64_t R, int64_t d, int64_t n_items, int64_t chunk, bool two_domains, int reps)
{
    const tema_nn_api *nn = tema_nn();
    tema_params *p = tema_params_new(1);
    int64_t sh[2] = {R, d}, si[2] = {n_items, d};
    tema_tensor *h = nn->param(p, "h", 2, sh, TEMA_INIT_NORMAL, 0.1f, 0);
    tema_tensor *items = nn->param(p, "items", 2, si, TEMA_INIT_NORMAL, 0.1f, 0);
    tema_err err = {0};
    if (tema_params_finalize(p, &err) != TEMA_OK) {
        fprintf(stderr, "bench_ops: %s\n", err.msg);
        exit(1);
    }
    int32_t *lo = malloc(sizeof(int32_t) * (size_t)R), *hi = malloc(sizeof(int32_t) * (size_t)R);
    int32_t half = (int32_t)(n_items / 2);
    for (int64_t r = 0; r < R; r++) {
        bool y = two_domains && (r % 3 == 1); /* interleaved, as a batch would be */
        lo[r] = y ? half : 0;
        hi[r] = two_domains && !y ? half : (int32_t)n_items;
    }
    tema_graph *g = tema_graph_new(1);
    double best = 1e30;
    for (int rep = 0; rep < reps + 1; rep++) { /* the first run sizes the arena */
        tema_graph_reset(g, true, (uint64_t)rep);
        tema_params_zero_grad(p);
        double t0 = tema_now();
        tema_tensor *l = nn->lse_chunked(g, h, items, lo, hi, 1.0f, chunk);
        tema_tensor *loss = nn->mean(g, l);
        if (!loss || tema_graph_backward(g, loss, &err) != TEMA_OK) {
            fprintf(stderr, "bench_ops: %s %s\n", nn->error(g), err.msg);
            exit(1);
        }
        double dt = tema_now() - t0;
        if (rep > 0 && dt < best) best = dt;
    }
    tema_graph_free(g);
    tema_params_free(p);
    free(lo), free(hi);
    return best * 1e3;
}

/* A random graph of n nodes with ~avg_deg out-edges per node (uniform degrees in
 * [0, 2 avg_deg]) to skewed targets (node n u^2: popular items have many in-edges, as in
 * co-occurrence graphs), values 1/deg; spmm forward + backward through the autograd, best
 * of reps. The one-off csr() (validate, transpose, upload) is timed into *csr_ms. */
static double bench_spmm(int64_t n, int64_t avg_deg, int64_t D, int reps, double *csr_ms, int64_t *nnz_out)
{
    const tema_nn_api *nn = tema_nn();
    int64_t *ptr = malloc(sizeof(int64_t) * (size_t)(n + 1));
    tema_rng rng;
    tema_rng_seed(&rng, 12);
    ptr[0] = 0;
    for (int64_t r = 0; r < n; r++) ptr[r + 1] = ptr[r] + (int64_t)(tema_rng_uniform(&rng) * (double)(2 * avg_deg + 1));
    const int64_t nnz = ptr[n];
    int32_t *col = malloc(sizeof(int32_t) * (size_t)nnz);
    float *val = malloc(sizeof(float) * (size_t)nnz);
    for (int64_t r = 0; r < n; r++)
        for (int64_t k = ptr[r]; k < ptr[r + 1]; k++) {
            double u = tema_rng_uniform(&rng);
            col[k] = (int32_t)((double)n * u * u);
            val[k] = 1.0f / (float)(ptr[r + 1] - ptr[r]);
        }
    tema_params *p = tema_params_new(1);
    tema_tensor *x = nn->param(p, "x", 2, (int64_t[]){n, D}, TEMA_INIT_NORMAL, 0.1f, 0);
    tema_err err = {0};
    double t0 = tema_now();
    tema_csr *a = nn->csr(p, "graph", n, n, ptr, col, val, &err);
    *csr_ms = (tema_now() - t0) * 1e3;
    if (!a || tema_params_finalize(p, &err) != TEMA_OK) {
        fprintf(stderr, "bench_ops: %s\n", err.msg);
        exit(1);
    }
    tema_graph *g = tema_graph_new(1);
    double best = 1e30;
    for (int rep = 0; rep < reps + 1; rep++) { /* the first run sizes the arena */
        tema_graph_reset(g, true, (uint64_t)rep);
        tema_params_zero_grad(p);
        t0 = tema_now();
        tema_tensor *loss = nn->mean(g, nn->spmm(g, a, x));
        if (!loss || tema_graph_backward(g, loss, &err) != TEMA_OK) {
            fprintf(stderr, "bench_ops: %s %s\n", nn->error(g), err.msg);
            exit(1);
        }
        double dt = tema_now() - t0;
        if (rep > 0 && dt < best) best = dt;
    }
    tema_graph_free(g);
    tema_params_free(p);
    free(ptr), free(col), free(val);
    *nnz_out = nnz;
    return best * 1e3;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 2;
    if (reps < 1) reps = 1;
    const tema_host *host = tema_host_get();
    const tema_plugin *pl = tema_plugin_entry_backend_cpu(host);
    const tema_backend_ops *be = pl->ops;
    int counts[16] = {1, 2}, n_counts = 2;
    if (argc > 2) {
        n_counts = 0;
        for (int i = 2; i < argc && n_counts < 16; i++) counts[n_counts++] = atoi(argv[i]) > 0 ? atoi(argv[i]) : 1;
    }
    for (int ci = 0; ci < n_counts; ci++) {
        const int threads = counts[ci];
        char yaml[64];
        snprintf(yaml, sizeof yaml, "threads: %d\n", threads);
        tema_cfg *cfg = NULL;
        void *bs = NULL;
        tema_err err = {0};
        if (tema_cfg_parse_string(yaml, "bench", &cfg, &err) != TEMA_OK || be->init(host, cfg, &bs, &err) != TEMA_OK) {
            fprintf(stderr, "bench_ops: %s\n", err.msg);
            return 1;
        }
        tema_engine_set_backend(be, bs);
        printf("threads=%d sgemm 1024x1024x1024: %.1f GFLOP/s\n", threads, bench_sgemm(be, bs, 1024, 1024, 1024, false, 5));
        printf("threads=%d sgemm 2560x4096x256 (H @ items^T): %.1f GFLOP/s\n", threads,
               bench_sgemm(be, bs, 2560, 4096, 256, true, 5));
        printf("threads=%d lse_chunked fwd+bwd R=2560 d=256 items=35000 chunk=4096 one range: %.0f ms\n", threads,
               bench_lse(2560, 256, 35000, 4096, false, reps));
        printf("threads=%d lse_chunked fwd+bwd R=2560 d=256 items=35000 chunk=4096 two domains: %.0f ms\n", threads,
               bench_lse(2560, 256, 35000, 4096, true, reps));
        double csr_ms = 0;
        int64_t nnz = 0;
        double spmm_ms = bench_spmm(29207 + 34886, 31, 64, reps, &csr_ms, &nnz);
        printf("threads=%d spmm fwd+bwd nodes=64093 edges=%lld D=64: %.1f ms (csr upload+transpose once: %.0f ms)\n",
               threads, (long long)nnz, spmm_ms, csr_ms);
        fflush(stdout);
        tema_engine_set_backend(NULL, NULL);
        be->destroy(bs);
        tema_cfg_free(cfg);
    }
    return 0;
}
