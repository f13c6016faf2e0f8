/* core/dataset.h - CDSR datasets in the C2DSR layout, read from a folder or straight
 * from an archive (.tar.gz, .zip, .tar.zst) (core-internal). */
#ifndef TEMA_CORE_DATASET_H
#define TEMA_CORE_DATASET_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tema/status.h"

/* One data file, entries already stable-sorted by timestamp. For valid/test files the
 * last entry of each line (after that sort) is the target and is NOT in items[]. */
typedef struct tema_split {
    const char *file;        /* file name inside the dataset, e.g. "validdata_new.txt" */
    int64_t n_lines;
    int64_t *off;            /* [n_lines+1] into items/ts */
    int32_t *items;          /* global item ids (Y offset by n_x) */
    int64_t *ts;
    int32_t *user;           /* [n_lines] */
    int32_t *target;         /* [n_lines] global id, or NULL for training files */
    int64_t *target_ts;      /* [n_lines] or NULL */
} tema_split;

typedef struct tema_dataset {
    char *path;              /* absolute path of the folder or archive */
    int32_t n_x, n_y, n_users;
    char **asin;             /* [n_x+n_y] */
    char **title;            /* [n_x+n_y], NULL where items.tsv has none or is absent */
    tema_split train, valid, test;
} tema_dataset;

typedef struct tema_dataset_files {
    const char *train, *valid, *test;   /* NULL = traindata_new.txt / validdata_new.txt / testdata_new.txt */
} tema_dataset_files;

/* Load a dataset; errors are "FILE:LINE: what is wrong" (FILE inside an archive is shown
 * as ARCHIVE/member). files names are matched by base name (in an archive, in any folder).
 * Required: Alist.txt, Blist.txt, userlist.txt and the three data files; items.tsv is
 * optional. On success *out is owned by the caller (free with tema_dataset_free; every
 * array and string in it lives until then); on failure *out is NULL. */
tema_status tema_dataset_load(const char *path, const tema_dataset_files *files, tema_dataset **out,
                              tema_err *err);
void tema_dataset_free(tema_dataset *d);

/* `tema data stats PATH`: the statistics tables of the bundle READMEs, for every data file
 * present (holdout files included). */
tema_status tema_dataset_print_stats(const char *path, FILE *out, tema_err *err);

typedef struct tema_synth_opts {
    uint64_t seed;
    int32_t n_users, n_x, n_y, n_categories;
    int32_t min_len, max_len;    /* entries per user sequence */
    double valid_frac, test_frac;/* share of users evaluated on valid / test */
} tema_synth_opts;
void tema_synth_defaults(tema_synth_opts *o);
/* Write a dataset in the C2DSR layout (with items.tsv) into dir (created if missing). */
tema_status tema_synth_write(const tema_synth_opts *o, const char *dir, tema_err *err);
/* dataset.path `synthetic` (or .../synthetic) that names no existing file: the built-in data. */
bool tema_synth_is_path(const char *path);
/* The built-in dataset of `seed` in dir = RESULTS/_data/synthetic-SEED (results_dir NULL:
 * "results"), written once through a temporary folder renamed into place, so concurrent runs
 * (a grid's children, `tema tags`) share one copy and never read a half-written one. */
tema_status tema_synth_dataset(const char *results_dir, uint64_t seed, char *dir, size_t cap, tema_err *err);

#endif
