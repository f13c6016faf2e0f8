/* core/grid_internal.h - what the grid files (grid.c, grid_parse.c, grid_runs.c,
 * grid_local.c, grid_slurm.c) share. Not for other modules: use grid.h. */
#ifndef TEMA_CORE_GRID_INTERNAL_H
#define TEMA_CORE_GRID_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "grid.h"

/* ---- grid_parse.c: the `grid:` block ---- */

/* Keys that vary together: one key, a zip group, or the seeds. */
typedef struct tema_grid_axis {
    size_t first, count;     /* its keys: keys[first .. first+count) */
    size_t n_values;
} tema_grid_axis;

/* The block as read, axes in file order (the seeds last, so they vary fastest). */
typedef struct tema_grid_block {
    tema_cfg_diag *d;        /* where problems go */
    char **keys;
    const tema_cfg **lists;  /* per key: the list of its values */
    size_t n_keys, cap_keys;
    tema_grid_axis *axes;
    size_t n_axes, cap_axes;
    const tema_cfg *seeds;   /* the `seeds:` list, NULL when absent */
    bool ok;                 /* false once a problem was reported */
} tema_grid_block;

/* Reads the `grid:` node into gp; problems go to gp->d and clear gp->ok. */
void tema_gridi_read_block(tema_grid_block *gp, const tema_cfg *grid);
/* A --set of a key the grid varies would override every cell: reported, gp->ok cleared. */
void tema_gridi_check_overrides(tema_grid_block *gp, const char *path, const char *const *overrides, int n_overrides);
void tema_gridi_block_free(tema_grid_block *gp);

/* ---- grid_runs.c: run folders ---- */

/* The `error` of DIR/failed into note, else "see DIR/failed". */
void tema_gridi_failed_message(const char *dir, char *note, size_t cap);
/* Writes DIR/failed. exit_code < 0: none (killed by `sig`); sig <= 0: none. */
tema_status tema_gridi_write_failed(const char *dir, int exit_code, int sig, const char *msg, tema_err *err);

/* train.c generates `synthetic` data on first use; runs started together would all write
 * it at once, so the runners make it first (under abs_results/_data/). */
tema_status tema_gridi_prepare_synthetic(const tema_grid *g, const char *abs_results, tema_err *err);

/* The running tema binary (caller frees); NULL when /proc/self/exe cannot be read. */
char *tema_gridi_self_exe(void);

#endif
