/* tests/bench_text.c - speed and memory of a text_features plugin on a real dataset's titles.
 *
 *   ninja -C build tests/bench_text
 *   build/tests/bench_text DATASET [threads] [extractor YAML] [limit] [precision]
 *   e.g. build/tests/bench_text ../shared/data/food-kitchen 2 '{plugin: bert}'
 *
 * Embeds every item title of DATASET (both domains) once through host->text_features with
 * a fresh store (so nothing is read back), on the cpu backend with `threads` threads, and
 * prints texts, seconds, texts/s and the peak RSS of the process. The PyTorch side of the
 * comparison is tests/bench_text_torch.py (same titles, same machine). Not a test: it
 * asserts nothing and is not registered with meson test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "host.h"
#include "dataset.h"
#include "registry.h"
#include "text_features.h"
#include "util.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DATASET [threads] [extractor YAML] [limit] [fp32|bf16]\n", argv[0]);
        return 2;
    }
    const int threads = argc > 2 ? atoi(argv[2]) : 2;
    const char *extractor = argc > 3 ? argv[3] : "{plugin: bert}";
    const long limit = argc > 4 ? atol(argv[4]) : 0;
    const char *precision = argc > 5 ? argv[5] : "fp32";
    tema_err err = {0};
    tema_dataset *ds = NULL;
    if (tema_dataset_load(argv[1], NULL, &ds, &err) != TEMA_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int64_t n = (int64_t)ds->n_x + ds->n_y;
    if (limit > 0 && limit < n) n = limit;
    char text[512], store[] = "/tmp/tema-bench-text-XXXXXX";
    snprintf(text, sizeof text, "backend: {plugin: cpu, threads: %d, precision: %s}\nextractor: %s\n", threads,
             precision, extractor);
    tema_cfg *cfg = NULL;
    if (!mkdtemp(store) || tema_cfg_parse_string(text, "bench", &cfg, &err) != TEMA_OK) {
        fprintf(stderr, "setup failed: %s\n", err.msg);
        return 1;
    }
    tema_registry *reg = tema_registry_new(tema_host_get());
    tema_registry_scan(reg);
    tema_features_context(reg, cfg, store);
    float *rows = NULL;
    int64_t dim = 0;
    size_t rss0 = tema_peak_rss();
    double t0 = tema_now();
    tema_status st = tema_features_get(cfg, "extractor", (const char *const *)ds->title, n, "bench", &rows, &dim, &err);
    double dt = tema_now() - t0;
    if (st != TEMA_OK) fprintf(stderr, "%s\n", err.msg);
    else
        printf("tema %s: %lld texts x %lld in %.2f s = %.0f texts/s at %d threads; peak RSS %.0f MiB (%.0f MiB "
               "before)\n", extractor, (long long)n, (long long)dim, dt, (double)n / dt, threads,
               (double)tema_peak_rss() / 1048576.0, (double)rss0 / 1048576.0);
    free(rows);
    tema_features_context(NULL, NULL, NULL);
    tema_registry_free(reg);
    tema_cfg_free(cfg);
    tema_dataset_free(ds);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", store);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", store);
    return st == TEMA_OK ? 0 : 1;
}
