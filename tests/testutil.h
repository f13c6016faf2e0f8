/* tests/testutil.h - shared helpers for the Check suites. */
#ifndef TEMA_TESTUTIL_H
#define TEMA_TESTUTIL_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;
struct tema_cfg;
struct tema_plugin;
struct tema_registry;

/* ../shared/data (from TEMA_TEST_DATA), or NULL when that folder is absent. */
const char *tu_data_dir(void);
/* Path of a bundle inside it ("food-kitchen-c2dsr.tar.gz"); static buffer, NULL if absent. */
const char *tu_data_path(const char *name);
/* A fresh empty temporary folder (removed at exit). Static storage, valid until next call. */
const char *tu_tmpdir(void);
/* Does dir/name exist? */
bool tu_exists(const char *dir, const char *name);
/* Write a file (parent folders must exist). */
void tu_write(const char *path, const char *text);
/* Run the built tema binary with a shell-quoted argument string; captures stdout and
 * stderr (caller frees); returns the exit status. */
int tu_tema(const char *args, char **out, char **errout);
/* Shell prefix for a `tema run` of a grid (its runs train in child processes): no
 * LeakSanitizer in that command, the grid and its children. LeakSanitizer's stop-the-world
 * tracer crashes at exit on CI machines ("Tracer caught signal 11", google/sanitizers#1353;
 * seen in 4 of 8 grid children at once, never here), failing runs whose training had
 * finished. The code the children run is leak-checked in process by the train, grid and
 * model suites. */
#define TU_GRID_ENV "ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 "
/* tu_tema with TU_GRID_ENV. */
int tu_tema_grid(const char *args, char **out, char **errout);
/* system(cmd) run in `dir`; when it fails, the files matching the space-separated globs
 * `logs` (relative to dir) are printed to stderr, so a CI log shows why even after the
 * temporary folder is gone. Returns the exit status (128 + signal if killed). */
int tu_sh(const char *dir, const char *cmd, const char *logs);
/* The one run folder under results/name (static buffer); fails the test unless there is
 * exactly one. */
const char *tu_run_dir(const char *results, const char *name);
/* dir/file parsed as JSON (fails the test if it cannot be); caller puts the object. */
struct json_object *tu_json_load(const char *dir, const char *file);
/* o's member at a dotted path ("final.X.mrr"), failing the test if a key is missing;
 * borrowed from o. */
struct json_object *tu_json_get(struct json_object *o, const char *path);
/* Source root, build root, and the plugin folder of the build. */
const char *tu_source_root(void);
const char *tu_build_root(void);
/* Every plugin of the build, registered from the static libraries the suites link (GStreamer
 * style: the same sources as the .so files), on the first call and kept for the process. Not
 * opened from .so files: LeakSanitizer's tracer (GCC 12, glibc 2.36) crashed at exit in a
 * suite that had opened one .so more than before, whichever .so it was. The .so files are
 * loaded by test_registry and by every `tema` the suites start. */
struct tema_registry *tu_registry(void);
/* The same registry with the cpu backend initialised and made active. Created on
 * the first call and kept for the process: unloading the backend plugin would unload
 * OpenMP and OpenBLAS under the sanitizers' feet. */
struct tema_registry *tu_cpu_registry(void);
/* A plugin's options as the core would pass them: every declared default, then `extra`
 * YAML lines (which replace the defaults they name). Caller frees with tema_cfg_free. */
struct tema_cfg *tu_plugin_opts(const struct tema_plugin *p, const char *extra);
/* The first option of p without a default (one `extra` must give), or NULL. */
const char *tu_required_option(const struct tema_plugin *p);
/* Whether a line of the file at `path` contains `needle`, polling every 0.1 s for at most
 * `seconds` (for a child process's log). */
bool tu_wait_for_line(const char *path, const char *needle, double seconds);
/* Starts `tema ARGS...` (TEMA_EXE; args NULL-terminated) with stderr into errfile, sends it
 * SIGINT once a line of errfile contains `needle` (at most 60 s) and returns its wait status.
 * leak_check false: LeakSanitizer off in it, as TU_GRID_ENV (a grid forks its runs). */
int tu_tema_interrupted(const char *errfile, const char *needle, bool leak_check, const char *const *args);
/* Run a Check suite and return the process exit code: 1 when a case failed, 77 (meson's
 * "skipped") when every case that ran skipped itself, else 0. Prints "cases: N run, K skipped". */
int tu_run_suite(Suite *s);
/* A test case (or a part of it: one backend, one plugin) that cannot run here: prints
 * "SKIP <what>: <why>" and counts the case as skipped, also from Check's forked children. */
__attribute__((format(printf, 2, 3))) void tu_skip(const char *what, const char *fmt, ...);

/* Skip the rest of a test (Check has no skip): prints why. Use with return. */
#define TU_REQUIRE_DATA(name)                                                                    \
    do {                                                                                         \
        if (!tu_data_path(name)) {                                                               \
            tu_skip(__func__, "%s not found under TEMA_TEST_DATA", name);                         \
            return;                                                                              \
        }                                                                                        \
    } while (0)

/* The model folder .ci/install-deps fills (all-MiniLM-L6-v2), and whether it is there; when
 * not, prints "SKIP <test>: ..." with what to install and returns false. */
const char *tu_minilm_dir(void);
bool tu_have_minilm(const char *test);
/* Point the text feature store at a new folder under tu_tmpdir(), so what a test checks was
 * computed, not read back (uses tu_cpu_registry()). */
void tu_fresh_feature_store(void);
/* Free a tagger's output (tema_tag_vocab: strings and arrays from the host) and zero it. */
struct tema_tag_vocab;
void tu_free_tag_vocab(struct tema_tag_vocab *v);


/* Every parameter entry of p that has a gradient, against a central finite difference of
 * loss(ctx) (eps 1e-3; loss must not touch the gradients, which must already hold d loss / d p):
 * fails the test naming the first entry off by more than 2e-3 + 3e-2 |fd|. *nonzero counts the
 * entries with |fd| > 1e-4. Returns the number of entries checked. `who` prefixes messages. */
struct tema_params;
int64_t tu_check_param_grads(struct tema_params *p, double (*loss)(void *ctx), void *ctx, const char *who,
                             int64_t *nonzero);

#endif
