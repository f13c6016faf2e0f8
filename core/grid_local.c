/* core/grid_local.c - the local runner of `tema run EXP.yaml [-j N]`: every unfinished
 * entry as a child `tema run --index I`, N at a time, SIGINT/SIGTERM passed on so that
 * children checkpoint, and the command that resumes. Separate from grid.c because it is
 * process control (fork/exec, signals, waitpid), not configuration. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "grid_internal.h"
#include "stop.h"
#include "util.h"

extern char **environ;


/* environ with the thread variables set to `threads` (TEMA_THREADS makes the backend use
 * them without changing the run id); the N_THREAD_VARS strings at the end are
 * ours (free_env frees them), the rest borrowed from environ. */
#define N_THREAD_VARS 4
static const char *const thread_vars[N_THREAD_VARS] = {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_THREAD_LIMIT",
                                                       "TEMA_THREADS"};

static char **child_env(int threads)
{
    size_t n = 0;
    while (environ[n]) n++;
    char **env = calloc(n + N_THREAD_VARS + 1, sizeof *env);
    if (!env) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool ours = false;
        for (int v = 0; v < N_THREAD_VARS; v++) {
            size_t l = strlen(thread_vars[v]);
            if (!strncmp(environ[i], thread_vars[v], l) && environ[i][l] == '=') ours = true;
        }
        if (!ours) env[k++] = environ[i];
    }
    for (int v = 0; v < N_THREAD_VARS; v++) {
        char *s = malloc(strlen(thread_vars[v]) + 16);
        if (!s) {
            for (int u = 0; u < v; u++) free(env[k - 1 - (size_t)u]);
            free(env);
            return NULL;
        }
        sprintf(s, "%s=%d", thread_vars[v], threads);
        env[k++] = s;
    }
    env[k] = NULL;
    return env;
}

static void free_env(char **env)
{
    if (!env) return;
    size_t n = 0;
    while (env[n]) n++;
    for (size_t i = n - N_THREAD_VARS; i < n; i++) free(env[i]);
    free(env);
}

/* fork + exec; the child dies with us (SIGTERM: it saves a checkpoint and stops). */
static pid_t spawn_child(const char *exe, char *const argv[], char *const envp[], const char *log_path)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) return pid;
    /* only async-signal-safe calls from here: the parent may have had threads (OpenBLAS) */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(TEMA_EXIT_INTERRUPTED);
    if (log_path) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            if (fd > 2) close(fd);
        }
    }
    execve(exe, argv, envp);
    _exit(127);
}

/* The last "error:" line of a log, else its last non-empty line. */
static void last_error_line(const char *log_path, char *out, size_t cap)
{
    out[0] = '\0';
    if (!log_path) return;
    FILE *f = fopen(log_path, "r");
    if (!f) return;
    char buf[8192];
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        fseek(f, size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0, SEEK_SET);
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char last[1024] = "", err_line[1024] = "";
    char *save = NULL;
    for (char *line = strtok_r(buf, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        if (!*line) continue;
        snprintf(last, sizeof last, "%s", line);
        if (strstr(line, "error:")) snprintf(err_line, sizeof err_line, "%s", line);
    }
    snprintf(out, cap, "%s", err_line[0] ? err_line : last);
}

/* A word for a shell command line: as it is when it is plain, else in single quotes. */
static void shell_word(tema_sb *b, const char *w)
{
    if (*w && strspn(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-=:,@+") == strlen(w)) {
        tema_sb_add(b, w);
        return;
    }
    tema_sb_add(b, "'");
    for (const char *p = w; *p; p++) {
        if (*p == '\'') tema_sb_add(b, "'\\''");
        else tema_sb_addn(b, p, 1);
    }
    tema_sb_add(b, "'");
}

/* The command that resumes this grid: the same file, --set options and results folder, so
 * the run ids come out the same. */
static void resume_command(const tema_grid *g, const tema_grid_exec *ex, char *out, size_t size)
{
    tema_sb b = {0};
    tema_sb_add(&b, "tema run ");
    shell_word(&b, g->path);
    for (int i = 0; i < ex->n_overrides; i++) {
        tema_sb_add(&b, " --set ");
        shell_word(&b, ex->overrides[i]);
    }
    if (g->results_dir && strcmp(g->results_dir, "results") != 0) {
        tema_sb_add(&b, " --results ");
        shell_word(&b, g->results_dir);
    }
    if (ex->jobs > 1) tema_sb_printf(&b, " -j %d", ex->jobs);
    snprintf(out, size, "%s", tema_sb_str(&b));
    tema_sb_free(&b);
}

/* ---- the runner ---- */

typedef struct child {
    pid_t pid;               /* 0: a free slot */
    size_t index;
    double t0;
} child;

/* One local grid run in progress. */
typedef struct runner {
    const tema_grid *g;
    const tema_grid_exec *ex;
    tema_grid_outcome *outcome;
    FILE *log;
    int jobs;
    char *exe, *abs_path, *abs_results;
    size_t *todo;            /* the runs to start, in order */
    size_t n_todo, next, n_active, started;
    child *kids;             /* [jobs] */
    const char **argv;       /* the children's command line; only argv[index_slot] changes */
    int index_slot;
    char index_text[32];
    bool forwarded;          /* the stop signal has gone to the children */
    double ok_seconds;       /* wall time of the runs that finished here, for the ETA */
} runner;

static tema_status runner_init(runner *rn, const tema_grid *g, const tema_grid_exec *ex, tema_grid_outcome *outcome,
                               tema_err *err)
{
    *rn = (runner){.g = g, .ex = ex, .outcome = outcome, .log = ex->log ? ex->log : stderr,
                   .jobs = ex->jobs > 0 ? ex->jobs : 1};
    rn->abs_path = tema_abspath(g->path);
    rn->abs_results = tema_abspath(g->results_dir);
    rn->exe = ex->exe ? strdup(ex->exe) : tema_gridi_self_exe();
    rn->todo = calloc(g->n_runs ? g->n_runs : 1, sizeof *rn->todo);
    rn->kids = calloc((size_t)rn->jobs, sizeof *rn->kids);
    rn->argv = calloc(12 + 2 * (size_t)ex->n_overrides, sizeof *rn->argv);
    if (!rn->abs_path || !rn->abs_results || !rn->todo || !rn->kids || !rn->argv)
        return tema_fail(err, TEMA_ENOMEM, "out of memory");
    if (!rn->exe)
        return tema_fail(err, TEMA_EIO, "cannot find the tema binary (/proc/self/exe); hint: run tema from its path");
    return TEMA_OK;
}

static void runner_free(runner *rn)
{
    free(rn->abs_path);
    free(rn->abs_results);
    free(rn->exe);
    free(rn->todo);
    free(rn->kids);
    free(rn->argv);
}

/* Every run that is neither running elsewhere nor done (unless forced); returns how many. */
static size_t pick_todo(runner *rn)
{
    const tema_grid *g = rn->g;
    tema_grid_outcome *o = rn->outcome;
    for (size_t i = 0; i < g->n_runs; i++) {
        tema_grid_state s = tema_grid_run_state(&g->runs[i], NULL, 0);
        if (s == TEMA_GRID_RUNNING) o->skipped_busy++;
        else if (s == TEMA_GRID_DONE && !rn->ex->force) o->skipped_done++;
        else rn->todo[rn->n_todo++] = i;
    }
    fprintf(rn->log, "tema: grid %s: %zu run%s; %zu done before, %zu running elsewhere, %zu to run, %d at a time\n",
            g->name, g->n_runs, g->n_runs == 1 ? "" : "s", o->skipped_done, o->skipped_busy, rn->n_todo, rn->jobs);
    fflush(rn->log);
    return rn->n_todo;
}

/* Absolute paths, so that a child's working folder does not matter. */
static void build_argv(runner *rn)
{
    const char **argv = rn->argv;
    int na = 0;
    argv[na++] = rn->exe;
    argv[na++] = "run";
    argv[na++] = rn->abs_path;
    argv[na++] = "--index";
    rn->index_slot = na;
    argv[na++] = rn->index_text;
    argv[na++] = "--results";
    argv[na++] = rn->abs_results;
    for (int i = 0; i < rn->ex->n_overrides; i++) {
        argv[na++] = "--set";
        argv[na++] = rn->ex->overrides[i];
    }
    if (rn->ex->force) argv[na++] = "--force";
    argv[na] = NULL;
}

/* Run r as a child in a free slot. A run whose folder cannot be made is recorded as failed
 * and the others go on; a failed fork is an error and stops the grid. */
static tema_status start_run(runner *rn, const tema_grid_run *r, tema_err *err)
{
    const tema_grid *g = rn->g;
    tema_err e = {0};
    if (tema_mkdirs(r->dir, &e) != TEMA_OK) {
        fprintf(rn->log, "tema: run %zu: %s\n", r->index, e.msg);
        tema_gridi_write_failed(r->dir, -1, 0, e.msg, &e);
        rn->outcome->failed++;
        return TEMA_OK;
    }
    char logp[PATH_MAX], failp[PATH_MAX];
    snprintf(logp, sizeof logp, "%s/log.txt", r->dir);
    snprintf(failp, sizeof failp, "%s/failed", r->dir);
    unlink(failp);
    int threads = (int)tema_cfg_int(r->cfg, "backend.threads", 1) / rn->jobs;
    char **env = child_env(threads < 1 ? 1 : threads);
    bool have_env = env != NULL;
    snprintf(rn->index_text, sizeof rn->index_text, "%zu", r->index);
    rn->argv[rn->index_slot] = rn->index_text;
    pid_t pid = env ? spawn_child(rn->exe, (char *const *)rn->argv, env, rn->jobs > 1 ? logp : NULL) : -1;
    free_env(env);
    if (pid < 0) {
        tema_status st =
            tema_fail(err, TEMA_EIO, "cannot start a run: %s", have_env ? strerror(errno) : "out of memory");
        tema_stop_request(SIGTERM);
        return st;
    }
    size_t slot = 0;
    while (rn->kids[slot].pid) slot++;
    rn->kids[slot] = (child){.pid = pid, .index = r->index, .t0 = tema_now()};
    rn->n_active++;
    rn->started++;
    char label[1024];
    tema_grid_label(g, r, true, label, sizeof label);
    fprintf(rn->log, "tema: [%zu/%zu] run %zu (%s) started%s%s%s\n", rn->started, rn->n_todo, r->index, r->id,
            g->n_keys ? ": " : "", label, rn->jobs > 1 ? "; log in log.txt" : "");
    fflush(rn->log);
    return TEMA_OK;
}

/* Fills the free slots, unless a stop was asked for. */
static tema_status start_runs(runner *rn, tema_err *err)
{
    tema_status st = TEMA_OK;
    while (st == TEMA_OK && !tema_stop_signal() && rn->n_active < (size_t)rn->jobs && rn->next < rn->n_todo)
        st = start_run(rn, &rn->g->runs[rn->todo[rn->next++]], err);
    return st;
}

/* A failed child's message: the record it wrote, or one written here when it could not
 * (a crash, a kill, exec failing). */
static void report_failure(runner *rn, const tema_grid_run *r, int code, int sig, double secs)
{
    char logp[PATH_MAX], msg[1200] = "", failp[PATH_MAX];
    snprintf(logp, sizeof logp, "%s/log.txt", r->dir);
    snprintf(failp, sizeof failp, "%s/failed", r->dir);
    struct stat sb;
    if (stat(failp, &sb) != 0) {
        char last[1024];
        last_error_line(rn->jobs > 1 ? logp : NULL, last, sizeof last);
        if (sig)
            snprintf(msg, sizeof msg, "killed by signal %d (%s)%s%s", sig, strsignal(sig),
                     last[0] ? "; last output: " : "", last);
        else if (code == 127)
            snprintf(msg, sizeof msg, "cannot run %s (exit status 127)", rn->exe);
        else
            snprintf(msg, sizeof msg, "exit status %d%s%s", code, last[0] ? "; last output: " : "", last);
        tema_err e = {0};
        tema_gridi_write_failed(r->dir, code, sig, msg, &e);
    } else {
        tema_gridi_failed_message(r->dir, msg, sizeof msg);
    }
    fprintf(rn->log, "tema: run %zu (%s) FAILED after %.1f s: %s%s%s\n", r->index, r->id, secs, msg,
            rn->jobs > 1 ? "; log: " : "", rn->jobs > 1 ? logp : "");
}

/* One line after each run ends: where the grid stands, and an ETA from the finished runs' mean
 * wall time (runs still going count as half done). */
static void grid_progress(const runner *rn)
{
    const tema_grid_outcome *o = rn->outcome;
    const size_t ended = o->ok + o->failed + o->interrupted + o->skipped_busy;
    const size_t pending = rn->n_todo - rn->next;
    char eta[48] = "ETA after the first finished run";
    if (o->ok > 0) {
        const double mean = rn->ok_seconds / (double)o->ok;
        const double left = mean * ((double)pending + 0.5 * (double)rn->n_active) / (double)rn->jobs;
        char d[32];
        tema_fmt_duration(left, d, sizeof d);
        snprintf(eta, sizeof eta, "ETA %s", d);
    }
    fprintf(rn->log, "tema: grid: %zu of %zu ended (%zu ok, %zu failed), %zu running, %zu pending; %s\n", ended,
            rn->n_todo, o->ok, o->failed, rn->n_active, pending, eta);
}

/* The child in `slot` has ended with wstatus. */
static void finish_child(runner *rn, int slot, int wstatus)
{
    const tema_grid_run *r = &rn->g->runs[rn->kids[slot].index];
    double secs = tema_now() - rn->kids[slot].t0;
    rn->kids[slot].pid = 0;
    rn->n_active--;
    int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
    int sig = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;
    tema_grid_outcome *o = rn->outcome;
    if (code == 0) {
        o->ok++;
        fprintf(rn->log, "tema: run %zu (%s) done in %.1f s\n", r->index, r->id, secs);
    } else if (code == TEMA_EXIT_INTERRUPTED || (sig && tema_stop_signal())) {
        o->interrupted++;
        fprintf(rn->log, "tema: run %zu (%s) interrupted after %.1f s; it resumes on the next `tema run`\n", r->index,
                r->id, secs);
    } else if (code == TEMA_EXIT_BUSY) {
        o->skipped_busy++;
        fprintf(rn->log, "tema: run %zu (%s) is being run by another process; skipped\n", r->index, r->id);
    } else {
        o->failed++;
        report_failure(rn, r, code, sig, secs);
    }
    if (code == 0) rn->ok_seconds += secs;
    grid_progress(rn);
    fflush(rn->log);
}

/* Waits for one child (or a signal) and records how it ended; false when waiting failed
 * for another reason, which ends the grid. */
static bool reap(runner *rn)
{
    int wstatus;
    pid_t pid = waitpid(-1, &wstatus, 0);
    if (pid < 0) {
        if (errno != EINTR) return false;
        if (tema_stop_signal() && !rn->forwarded) {
            rn->forwarded = true;
            fprintf(rn->log, "tema: stopping: %zu run%s still running, no new ones start\n", rn->n_active,
                    rn->n_active == 1 ? "" : "s");
            for (int k = 0; k < rn->jobs; k++)
                if (rn->kids[k].pid) kill(rn->kids[k].pid, tema_stop_signal());
        }
        return true;
    }
    for (int k = 0; k < rn->jobs; k++)
        if (rn->kids[k].pid == pid) {
            finish_child(rn, k, wstatus);
            break;
        }
    return true; /* a pid not ours is ignored */
}

/* The hint that resumes a stopped grid, and the totals. */
static tema_status finish(runner *rn, tema_status st, tema_err *err)
{
    const tema_grid *g = rn->g;
    tema_grid_outcome *o = rn->outcome;
    if (st == TEMA_OK && tema_stop_signal()) {
        o->interrupted += rn->n_todo - rn->next;
        char again[2048];
        resume_command(g, rn->ex, again, sizeof again);
        st = tema_fail(err, TEMA_EINTERRUPTED, "grid %s stopped by %s; hint: `%s` resumes it", g->name,
                       tema_stop_signal() == SIGINT ? "SIGINT" : "SIGTERM", again);
    }
    fprintf(rn->log, "tema: grid %s: %zu ran ok, %zu failed, %zu interrupted, %zu done before, %zu running elsewhere\n",
            g->name, o->ok, o->failed, o->interrupted, o->skipped_done, o->skipped_busy);
    fflush(rn->log);
    return st;
}

static tema_status run_todo(runner *rn, tema_err *err)
{
    build_argv(rn);
    tema_stop_listen(); /* waitpid returns on a signal (no SA_RESTART), so the loop sees the stop */
    tema_status st = TEMA_OK;
    while (rn->next < rn->n_todo || rn->n_active > 0) {
        if (st == TEMA_OK) st = start_runs(rn, err); /* a failed start stops new ones: keep its error */
        if (rn->n_active == 0 || !reap(rn)) break;
    }
    tema_stop_unlisten();
    return finish(rn, st, err);
}

tema_status tema_grid_run_local(const tema_grid *g, const tema_grid_exec *ex, tema_grid_outcome *outcome,
                                tema_err *err)
{
    memset(outcome, 0, sizeof *outcome);
    runner rn;
    tema_status st = runner_init(&rn, g, ex, outcome, err);
    if (st == TEMA_OK && pick_todo(&rn) > 0 && (st = tema_gridi_prepare_synthetic(g, rn.abs_results, err)) == TEMA_OK)
        st = run_todo(&rn, err);
    runner_free(&rn);
    return st;
}
