/* core/grid_runs.c - the run folders of a grid: states read from them (`tema status`), the
 * lock and the failure record, one entry run in this process, and the synthetic data runs
 * share. Separate from grid.c, which only turns a file into runs (moving old-scheme folders
 * to their new ids is all it does to folders);
 * the local and Slurm runners build on what is here. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "dataset.h"
#include "grid_internal.h"
#include "train.h"
#include "util.h"

/* ---- run states ---- */

const char *tema_grid_state_name(tema_grid_state s)
{
    static const char *const names[] = {"pending", "interrupted", "running", "failed", "done"};
    return (unsigned)s < 5 ? names[s] : "?";
}

static bool exists_in(const char *dir, const char *name)
{
    char p[PATH_MAX];
    struct stat st;
    return snprintf(p, sizeof p, "%s/%s", dir, name) < (int)sizeof p && stat(p, &st) == 0;
}

/* Is the run's lock held by a process? *pid gets the holder (of this host). */
static bool lock_held(const char *dir, pid_t *pid)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/lock", dir);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
    bool held = fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
    if (held && pid) *pid = fl.l_pid;
    close(fd);
    return held;
}

/* Count of complete lines in dir/name. */
static long count_lines(const char *dir, const char *name)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    long n = 0;
    int c;
    while ((c = getc(f)) != EOF)
        if (c == '\n') n++;
    fclose(f);
    return n;
}

void tema_gridi_failed_message(const char *dir, char *note, size_t cap)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/failed", dir);
    json_object *o = json_object_from_file(p), *v;
    if (o && json_object_object_get_ex(o, "error", &v) && json_object_get_string(v))
        snprintf(note, cap, "%s", json_object_get_string(v));
    else snprintf(note, cap, "see %s", p);
    json_object_put(o);
}

tema_grid_state tema_grid_run_state(const tema_grid_run *r, char *note, size_t cap)
{
    char tmp[8];
    if (!note) {
        note = tmp;
        cap = sizeof tmp;
    }
    note[0] = '\0';
    int64_t epochs = tema_cfg_int(r->cfg, "train.epochs", 0);
    long done = count_lines(r->dir, "epochs.jsonl");
    pid_t pid = 0;
    if (lock_held(r->dir, &pid)) {
        /* the lock file says which host; the lock only knows a pid */
        char holder[300] = "", p[PATH_MAX];
        snprintf(p, sizeof p, "%s/lock", r->dir);
        FILE *f = fopen(p, "r");
        if (f) {
            if (!fgets(holder, sizeof holder, f)) holder[0] = '\0';
            fclose(f);
        }
        holder[strcspn(holder, "\n")] = '\0';
        if (!holder[0]) snprintf(holder, sizeof holder, "pid %ld", (long)pid);
        snprintf(note, cap, "%s, epoch %ld/%" PRId64, holder, done, epochs);
        return TEMA_GRID_RUNNING;
    }
    if (exists_in(r->dir, "DONE")) {
        snprintf(note, cap, "%ld epoch%s", done, done == 1 ? "" : "s");
        return TEMA_GRID_DONE;
    }
    if (exists_in(r->dir, "failed")) {
        tema_gridi_failed_message(r->dir, note, cap);
        return TEMA_GRID_FAILED;
    }
    if (exists_in(r->dir, "status") || exists_in(r->dir, "config.json")) {
        snprintf(note, cap, "stopped at epoch %ld/%" PRId64 "; resumes", done, epochs);
        return TEMA_GRID_INTERRUPTED;
    }
    return TEMA_GRID_PENDING;
}

void tema_grid_print_status(const tema_grid *g, FILE *out, size_t counts[5])
{
    size_t local[5] = {0};
    if (!counts) counts = local;
    memset(counts, 0, 5 * sizeof *counts);
    size_t label_w = 6;
    char **labels = calloc(g->n_runs ? g->n_runs : 1, sizeof *labels);
    for (size_t i = 0; labels && i < g->n_runs; i++) {
        char l[4096];
        tema_grid_label(g, &g->runs[i], true, l, sizeof l);
        labels[i] = strdup(g->n_keys ? l : "(no grid)");
        if (labels[i] && strlen(labels[i]) > label_w) label_w = strlen(labels[i]);
    }
    if (label_w > 80) label_w = 80;
    fprintf(out, "experiment %s (%s), results in %s/%s/\n", g->name, g->path, g->results_dir, g->name);
    fprintf(out, "%-5s  %-16s  %-11s  %-*s  %s\n", "index", "run-id", "state", (int)label_w, "values", "note");
    for (size_t i = 0; i < g->n_runs; i++) {
        char note[512];
        tema_grid_state s = tema_grid_run_state(&g->runs[i], note, sizeof note);
        counts[s]++;
        fprintf(out, "%-5zu  %-16s  %-11s  %-*s  %s\n", i, g->runs[i].id, tema_grid_state_name(s), (int)label_w,
                labels && labels[i] ? labels[i] : "", note);
    }
    fprintf(out, "total %zu: %zu done, %zu running, %zu failed, %zu pending", g->n_runs, counts[TEMA_GRID_DONE],
            counts[TEMA_GRID_RUNNING], counts[TEMA_GRID_FAILED],
            counts[TEMA_GRID_PENDING] + counts[TEMA_GRID_INTERRUPTED]);
    if (counts[TEMA_GRID_INTERRUPTED])
        fprintf(out, " (%zu of them interrupted, resuming from their checkpoints)", counts[TEMA_GRID_INTERRUPTED]);
    fputc('\n', out);
    for (size_t i = 0; labels && i < g->n_runs; i++) free(labels[i]);
    free(labels);
}

/* ---- recording a failure ---- */

static void iso_now(char *buf, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

tema_status tema_gridi_write_failed(const char *dir, int exit_code, int sig, const char *msg, tema_err *err)
{
    char host[256] = "", when[64];
    gethostname(host, sizeof host - 1);
    iso_now(when, sizeof when);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "exit_code", exit_code >= 0 ? json_object_new_int(exit_code) : NULL);
    json_object_object_add(o, "signal", sig > 0 ? json_object_new_int(sig) : NULL);
    json_object_object_add(o, "error", json_object_new_string(msg ? msg : ""));
    json_object_object_add(o, "host", json_object_new_string(host));
    json_object_object_add(o, "time", json_object_new_string(when));
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/failed", dir);
    tema_sb b = {0};
    tema_sb_add(&b, text);
    tema_sb_add(&b, "\n");
    json_object_put(o);
    char *s = tema_sb_take(&b);
    tema_status st = s ? tema_write_file_atomic(p, s, strlen(s), err) : tema_fail(err, TEMA_ENOMEM, "out of memory");
    free(s);
    return st;
}

/* ---- running one entry in this process ---- */

/* Takes the run's lock; returns the fd to keep open (closing it releases), or -1 with err
 * set (busy: TEMA_EUNSUPPORTED). */
static int lock_take(const char *dir, tema_err *err)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/lock", dir);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        tema_fail(err, TEMA_EIO, "%s: cannot open: %s; hint: is the results folder writable?", p, strerror(errno));
        return -1;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    /* `tema status` probes without taking the lock, so a short retry only covers a racing runner */
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        char holder[300] = "";
        ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
        holder[n > 0 ? n : 0] = '\0';
        holder[strcspn(holder, "\n")] = '\0';
        close(fd);
        tema_fail(err, TEMA_EUNSUPPORTED,
                  "%s is being run by another process (%s); hint: wait for it, or see `tema status`", dir,
                  holder[0] ? holder : "unknown");
        return -1;
    }
    char host[256] = "", text[320];
    gethostname(host, sizeof host - 1);
    int n = snprintf(text, sizeof text, "pid %ld on %s\n", (long)getpid(), host);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n) {
        /* the lock itself is what counts; its text is only for people */
    }
    return fd;
}

tema_status tema_grid_run_one(const tema_grid *g, size_t index, tema_registry *reg, bool force, tema_err *err)
{
    if (index >= g->n_runs)
        return tema_fail(err, TEMA_EINVAL, "--index %zu: %s has %zu run%s (0..%zu); hint: see `tema manifest %s`",
                         index, g->path, g->n_runs, g->n_runs == 1 ? "" : "s", g->n_runs ? g->n_runs - 1 : 0, g->path);
    const tema_grid_run *r = &g->runs[index];
    tema_status st = tema_mkdirs(r->dir, err);
    if (st != TEMA_OK) return st;
    int fd = lock_take(r->dir, err);
    if (fd < 0) return err->code;
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/failed", r->dir);
    unlink(p);
    if (g->n_keys) {
        char label[1024];
        tema_grid_label(g, r, true, label, sizeof label);
        fprintf(stderr, "tema: grid entry %zu of %zu: %s\n", index, g->n_runs, label);
    }
    tema_run_opts o = {.results_dir = g->results_dir, .config_path = g->path, .force = force};
    st = tema_run_experiment(r->cfg, reg, &o, err);
    if (st != TEMA_OK && st != TEMA_EINTERRUPTED) {
        tema_err ignored = {0};
        tema_gridi_write_failed(r->dir, 1, 0, err->msg[0] ? err->msg : tema_status_name(st), &ignored);
    }
    close(fd);
    return st;
}

/* ---- the seeded synthetic data the runs share ---- */

/* rm -r of a folder that holds files only */
/* RESULTS/_data/synthetic-SEED of every entry on the built-in data, before the children start,
 * so they never race to write it (tema_synth_dataset). */
tema_status tema_gridi_prepare_synthetic(const tema_grid *g, const char *abs_results, tema_err *err)
{
    for (size_t i = 0; i < g->n_runs; i++) {
        int64_t seed;
        char dir[PATH_MAX];
        if (!tema_synth_is_path(tema_cfg_str(g->runs[i].cfg, "dataset.path", ""))) continue;
        tema_status st = tema_cfg_need_int(g->runs[i].cfg, "train.seed", &seed, err);
        if (st == TEMA_OK) st = tema_synth_dataset(abs_results, (uint64_t)seed, dir, sizeof dir, err);
        if (st != TEMA_OK) return st;
    }
    return TEMA_OK;
}

/* ---- the binary the runners start ---- */

char *tema_gridi_self_exe(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return NULL;
    buf[n] = '\0';
    return strdup(buf);
}
