/* core/util.h - small shared helpers (core-internal). */
#ifndef TEMA_CORE_UTIL_H
#define TEMA_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tema/status.h"

/* Write a whole file atomically: temp file in the same folder, fsync, rename, fsync dir. */
tema_status tema_write_file_atomic(const char *path, const void *data, size_t len, tema_err *err);
/* Remove dir's "NAME.tmp.PID" files (tema_write_file_atomic's temporaries) whose process is
 * gone: what a kill between write and rename left behind (checkpoint-sized for .bin files). */
void tema_remove_stale_temps(const char *dir);
/* A [rows, cols] float32 matrix as NumPy .npy (little-endian hosts), written atomically. */
tema_status tema_write_npy(const char *path, const float *x, int64_t rows, int64_t cols, tema_err *err);
/* Append one line (adds '\n') to a file and fsync it (JSON lines logs). */
tema_status tema_append_line(const char *path, const char *line, tema_err *err);
/* Read a whole file (NUL-terminated; *len excludes the NUL). Caller frees. */
tema_status tema_read_file(const char *path, char **data, size_t *len, tema_err *err);
/* mkdir -p */
tema_status tema_mkdirs(const char *path, tema_err *err);
/* Does dir/name exist (any kind of file)? Is path a folder? */
bool tema_file_exists(const char *dir, const char *name);
bool tema_is_dir(const char *path);
/* A duration for people: "m:ss", or "h:mm:ss" from an hour on; "?" when unknown (< 0, NaN,
 * more than ~115 days). */
void tema_fmt_duration(double sec, char *buf, size_t cap);
/* 64-bit FNV-1a */
uint64_t tema_hash64(const void *data, size_t len);
/* splitmix64-seeded xoshiro256** generator: same seed, same stream, on every machine. */
typedef struct tema_rng { uint64_t s[4]; } tema_rng;
void tema_rng_seed(tema_rng *r, uint64_t seed);
uint64_t tema_rng_next(tema_rng *r);
double tema_rng_uniform(tema_rng *r);              /* [0,1) */
uint64_t tema_rng_below(tema_rng *r, uint64_t n);  /* [0,n), unbiased */
double tema_rng_normal(tema_rng *r);
/* Seconds since an arbitrary epoch (monotonic). */
double tema_now(void);
/* Peak resident set size of this process in bytes. */
size_t tema_peak_rss(void);
/* Absolute form of a path relative to the current directory (caller frees). */
char *tema_abspath(const char *path);
/* The git commit of the source tree tema was built from. */
const char *tema_git_commit(void);

/* A growing NUL-terminated string. Zero-initialise ({0}); after an allocation failure
 * every call is a no-op and `oom` stays set. p is owned by the buffer: tema_sb_take hands
 * it to the caller, tema_sb_free releases it. */
typedef struct tema_sb {
    char *p;
    size_t n, cap;
    bool oom;
} tema_sb;
void tema_sb_addn(tema_sb *b, const char *s, size_t len);
void tema_sb_add(tema_sb *b, const char *s);
void tema_sb_printf(tema_sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *tema_sb_str(const tema_sb *b);  /* "" when empty; owned by b */
void tema_sb_reset(tema_sb *b);             /* empty, keeping the memory */
char *tema_sb_take(tema_sb *b);             /* the string (caller frees; "" when empty), NULL after oom; b is reset */
void tema_sb_free(tema_sb *b);

#endif
