/* tests/fuzz/fuzz_util.h - what the libFuzzer harnesses (tests/fuzz/fuzz_*.c) share.
 *
 * Each harness defines LLVMFuzzerTestOneInput; libFuzzer's driver (-fsanitize=fuzzer) is
 * main(). The parsers read files, so a harness writes the input into a scratch folder of
 * its own process (removed at exit) and hands the path over. */
#ifndef TEMA_FUZZ_UTIL_H
#define TEMA_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

struct tema_registry;

/* Every plugin of the build, from the static libraries (as tests/testutil.c registers them):
 * made on the first call, kept for the process. */
struct tema_registry *fz_registry(void);
/* The same with the cpu backend initialised and made the engine's backend. */
struct tema_registry *fz_cpu_registry(void);
/* A scratch folder of this process (made on the first call, removed at exit). */
const char *fz_dir(void);
/* fz_dir()/name (a static buffer, valid until the next call). */
const char *fz_path(const char *name);
/* Write data[0..size) to fz_dir()/name; returns the path (as fz_path). Aborts on I/O errors:
 * a harness that cannot write its input tests nothing. */
const char *fz_write(const char *name, const uint8_t *data, size_t size);
/* A NUL-terminated copy of data[0..size) (caller frees). */
char *fz_strndup(const uint8_t *data, size_t size);

/* The input cut at every occurrence of sep: part i is [start[i], start[i] + len[i]).
 * At most max parts; the last one keeps the rest (separators included). Returns the count. */
size_t fz_split(const uint8_t *data, size_t size, const char *sep, const uint8_t **start, size_t *len, size_t max);

#endif
