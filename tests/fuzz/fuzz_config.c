/* tests/fuzz/fuzz_config.c - the experiment YAML: tema_cfg_parse_string, then the whole
 * `tema check` pipeline (tema_cfg_resolve: defaults, file, --set overrides, validation
 * against the schema and every static plugin's options), the emitters, the report: block
 * (tema_report_check) and the grid: block (tema_grid_expand: axes, zips, seeds, run ids).
 *
 * Input: the experiment file, then optionally overrides, each after a line start "#set "
 * (a YAML comment, so a seed stays a valid experiment): "model.dim: 8\n#set train.epochs=2". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_util.h"
#include "grid.h"
#include "report.h"

#define MAX_SETS 4

/* The emitted YAML of a tree must read back: run folders store it and `tema report` reads it. */
static void check_yaml_round_trip(const tema_cfg *c)
{
    char *yaml = tema_cfg_to_yaml(c), *json = tema_cfg_to_json(c);
    tema_cfg *back = NULL;
    tema_err err = {0};
    if (yaml && tema_cfg_parse_string(yaml, "<emitted>", &back, &err) != TEMA_OK) {
        fprintf(stderr, "emitted YAML does not parse: %s\n---\n%s---\n", err.msg, yaml);
        abort();
    }
    tema_cfg_free(back);
    free(yaml);
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *diag;
    if (!diag && !(diag = fopen("/dev/null", "w"))) abort();
    const uint8_t *part[MAX_SETS + 1];
    size_t len[MAX_SETS + 1];
    size_t n = fz_split(data, size, "\n#set ", part, len, MAX_SETS + 1);

    char *text = fz_strndup(part[0], len[0]);
    tema_cfg *c = NULL;
    tema_err err = {0};
    if (tema_cfg_parse_string(text, "<fuzz>", &c, &err) == TEMA_OK) check_yaml_round_trip(c);
    tema_cfg_free(c);

    const char *path = fz_write("experiment.yaml", part[0], len[0]);
    char *sets[MAX_SETS];
    for (size_t i = 1; i < n; i++) sets[i - 1] = fz_strndup(part[i], len[i]);
    tema_cfg *resolved = NULL;
    if (tema_cfg_resolve(path, (const char *const *)sets, (int)n - 1, fz_registry(), diag, &resolved, &err) ==
        TEMA_OK)
        check_yaml_round_trip(resolved);
    tema_cfg_free(resolved);
    tema_report_check(path, &err);
    tema_grid *g = NULL;
    /* a results folder that does not exist: expansion looks for run folders, finds none */
    if (tema_grid_expand(path, (const char *const *)sets, (int)n - 1, fz_registry(), "/dev/shm/tema-fuzz-no-results",
                         diag, &g, &err) == TEMA_OK)
        tema_grid_free(g);
    for (size_t i = 1; i < n; i++) free(sets[i - 1]);
    free(text);
    return 0;
}
