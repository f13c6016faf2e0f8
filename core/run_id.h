/* core/run_id.h - run ids that hash what determines a run's result (core-internal).
 *
 * A run's id (scheme 2) is the hash of its identity: the resolved config with
 *   - the data named by content: dataset.path becomes a fingerprint of the C2DSR files
 *     (a folder: Alist.txt, Blist.txt, userlist.txt, items.tsv and the three data files;
 *     an archive: the whole file), and every path option of a plugin (vocab_dir,
 *     model_dir, features, ...) a fingerprint of the file or folder it names, so a symlink,
 *     a copy, a moved work folder or another mount point of the same data is the same run;
 *   - execution details left out: backend.threads (results are bit-identical at one thread
 *     count, not across counts: OpenMP reductions split sums by thread; the thread count is
 *     where a run executes, as `--threads` and `-j N` always treated it), backend.device,
 *     train.resume, name, description, grid, report, options with "cache" in the name, and
 *     a tagger's progress_s;
 *   - plugin options equal to their declared default left out (a plugin that gains an option
 *     with a default keeps its run ids; a plugin that changes a default must bump its
 *     version), except path options (their content counts) and nested plugins;
 *   - every plugin's version beside its name, and the environment variables that empty
 *     options fall back to (store_key.h's rule).
 * The scheme-1 id (tema_results_run_id of the config JSON) is still computed so that a run
 * folder of the old scheme can be renamed to its new id (tema_run_migrate). */
#ifndef TEMA_CORE_RUN_ID_H
#define TEMA_CORE_RUN_ID_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "registry.h"
#include "results.h"

/* The identity as canonical JSON (malloc'ed, caller frees). reg may be NULL: plugins then
 * count as written (no versions, defaults kept). */
tema_status tema_run_identity(const tema_cfg *resolved, tema_registry *reg, char **json, tema_err *err);

/* The run's id (scheme 2) and, when v1 is not NULL, its scheme-1 id; 16 hex digits + NUL. */
tema_status tema_run_ids(const tema_cfg *resolved, tema_registry *reg, char id[17], char v1[17], tema_err *err);

/* When results_dir/exp_name/id does not exist (or is an empty folder) and the folder of the
 * run's scheme-1 id does (the config's as given, or with backend.threads at any count in
 * 1..32, 64, 128, 256), and no process is running it, renames that to id (atomic) and says so
 * on stderr. Returns true when it moved a folder. */
bool tema_run_migrate(const char *results_dir, const char *exp_name, const tema_cfg *resolved, const char *id);

/* Removes from a run's stored config (config.json, as JSON) the execution details its id
 * leaves out: backend.threads and backend.device, train.resume, options with "cache" in the
 * name and a tagger's progress_s (any option of those names: the JSON does not say which
 * kind a nested section is). Runs of one grid cell then compare equal whatever thread count
 * or device each ran on (tema report groups runs this way). */
struct json_object;
void tema_run_config_strip_execution(struct json_object *config);

/* The plugins a resolved config names (nested ones too), each once, in config order; returns
 * how many (at most cap). */
int tema_run_plugins(const tema_cfg *resolved, tema_registry *reg, const tema_plugin **out, int cap);

/* The plugins a resolved config names, as meta.json records them: the file each came from
 * and a hash of that file ("builtin" plugins have none). */
#define TEMA_RUN_MAX_PLUGINS 32
typedef struct tema_plugin_files {
    tema_plugin_record rec[TEMA_RUN_MAX_PLUGINS];
    char hash[TEMA_RUN_MAX_PLUGINS][17];
    int n;
} tema_plugin_files;
void tema_run_plugin_files(const tema_cfg *resolved, tema_registry *reg, tema_plugin_files *out);

/* A resumed run must go on with the plugin code it started with: an error naming the plugin
 * and its file when a hash in run_dir/meta.json differs from now's. A missing meta.json, or
 * one written before plugin files were hashed, passes. */
tema_status tema_run_check_plugin_files(const char *run_dir, const tema_plugin_files *now, tema_err *err);

/* Content hash of a file (XXH64, 16 hex digits), or false when it cannot be read. Files are
 * remembered per process by device, inode, size and mtime. */
bool tema_file_fingerprint(const char *path, char hex[17]);

#endif
