/* tests/fuzz/fuzz_params.c - the checkpoint reader (core/params.c: tema_params_load) on a
 * small model of three tensors.
 *
 * Input: a checkpoint file (best.bin / last.bin of a run). It is read twice: as given, and
 * with its last 8 bytes replaced by the right checksum, so that mutations reach the parsing
 * behind the checksum test. The seed corpus is made by this program:
 *   TEMA_FUZZ_WRITE_SEED=tests/fuzz/corpus/params/model.bin build-fuzz/tests/fuzz/fuzz_params */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "fuzz_util.h"
#include "util.h"

static tema_params *g_params;

static tema_params *model(void)
{
    fz_cpu_registry();
    const tema_nn_api *nn = tema_nn();
    tema_params *p = tema_params_new(7);
    nn->param(p, "enc.items", 2, (int64_t[]){6, 4}, TEMA_INIT_NORMAL, 0.1f, 0);
    nn->param(p, "attn.w", 3, (int64_t[]){2, 4, 4}, TEMA_INIT_NORMAL, 0.1f, 0);
    nn->param(p, "attn.b", 1, (int64_t[]){4}, TEMA_INIT_ZEROS, 0.0f, 0);
    nn->constant(p, "graph.deg", 1, (int64_t[]){3}, (const float[]){1, 2, 3});
    tema_err err = {0};
    if (tema_params_finalize(p, &err) != TEMA_OK) {
        fprintf(stderr, "fuzz_params: %s\n", err.msg);
        abort();
    }
    return p;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    g_params = model();
    const char *seed = getenv("TEMA_FUZZ_WRITE_SEED");
    if (seed) {
        tema_adam opt = {.step = 42};
        tema_err err = {0};
        if (tema_params_save(g_params, &opt, seed, &err) != TEMA_OK) {
            fprintf(stderr, "fuzz_params: %s\n", err.msg);
            exit(1);
        }
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tema_adam opt = {0};
    tema_err err = {0};
    tema_params_load(g_params, &opt, fz_write("ckpt.bin", data, size), &err);
    if (size < 8) return 0;
    uint8_t *fixed = malloc(size);
    if (!fixed) abort();
    memcpy(fixed, data, size);
    const uint64_t h = tema_hash64(fixed, size - 8);
    memcpy(fixed + size - 8, &h, 8);
    tema_params_load(g_params, &opt, fz_write("ckpt.bin", fixed, size), &err);
    free(fixed);
    return 0;
}
