/* tests/test_slurm.c - `tema slurm` (core/grid_slurm.c): the script it writes, and job
 * arrays run on a real single-node Slurm cluster (tests/slurm_cluster.h) that the runner
 * process starts once for the "cluster" cases and stops by pid on every way out; the
 * "harness" cases run this program again to check that nothing outlives it.
 * Skips, saying why, when TEMA_EXE is not set (not run by meson: nothing is started then),
 * when the packages are not installed or when it is not root. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "grid.h"
#include "slurm_cluster.h"
#include "testutil.h"

/* ---- helpers ---- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* `tema ARGS` run in folder dir (args shell-quoted); out and err: caller frees. */
static int tema_in(const char *dir, const char *args, char **out, char **err)
{
    char cmd[8192], o[300], e[300];
    snprintf(o, sizeof o, "%s/.tema.out", dir);
    snprintf(e, sizeof e, "%s/.tema.err", dir);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >'%s' 2>'%s'", dir, getenv("TEMA_EXE"), args, o, e);
    int st = system(cmd);
    *out = read_text(o);
    *err = read_text(e);
    unlink(o);
    unlink(e);
    ck_assert_ptr_nonnull(*out);
    ck_assert_ptr_nonnull(*err);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A work folder: data/ (a small synthetic dataset) and exp.yaml naming it relatively, with
 * `grid` appended (may be ""). */
static void make_work(const char *dir, const char *name, const char *grid)
{
    char args[1024], path[512], text[2048], *out, *err;
    ck_assert_int_eq(chmod(dir, 0755), 0);
    snprintf(args, sizeof args, "data synth --out data --users 80 --items-x 50 --items-y 60 --seed 4");
    ck_assert_int_eq(tema_in(dir, args, &out, &err), 0);
    free(out);
    free(err);
    snprintf(path, sizeof path, "%s/exp.yaml", dir);
    snprintf(text, sizeof text,
             "name: %s\n"
             "dataset: {path: data, max_len: 8}\n"
             "backend: {plugin: cpu, threads: 1}\n"
             "model: {encoders: [{plugin: id, dim: 8}], attention: {plugin: single, blocks: 1, heads: 1}}\n"
             "train: {epochs: 2, batch_size: 32, eval_every: 1, patience: 0}\n"
             "eval: {negatives: 20}\n"
             "%s",
             name, grid);
    tu_write(path, text);
}

/* The job id in `tema slurm --submit`'s or sbatch's output. */
static long job_id(const char *out, const char *before)
{
    const char *p = strstr(out, before);
    ck_assert_msg(p != NULL, "no '%s' in:\n%s", before, out);
    long job = atol(p + strlen(before));
    ck_assert_int_gt(job, 0);
    return job;
}

/* Waits (at most 240 s) until the job has left the queue. */
static void wait_job(long job, const char *logs)
{
    char queued[64] = "x", cmd[256];
    snprintf(cmd, sizeof cmd, "squeue -h -j %ld -o %%i 2>/dev/null | head -1", job);
    for (int t = 0; t < 480 && queued[0]; t++) {
        nanosleep(&(struct timespec){0, 500 * 1000 * 1000}, NULL);
        FILE *p = popen(cmd, "r");
        ck_assert_ptr_nonnull(p);
        if (!fgets(queued, sizeof queued, p)) queued[0] = '\0';
        pclose(p);
    }
    ck_assert_msg(!queued[0], "job %ld still queued after 240 s; see %s/log and %s", job, slc_dir(), logs);
}

/* The Slurm log of array task `index` of the job (NULL when there is none). */
static char *task_log(const char *slurm_dir, long job, size_t index)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%ld_%zu.out", slurm_dir, job, index);
    return read_text(p);
}

/* ---- the cluster: once per runner, for the "cluster" cases ---- */

static char cluster_why[2048];
static bool cluster_skip;

static void cluster_setup(void)
{
    const char *missing = slc_missing();
    cluster_skip = missing != NULL;
    cluster_why[0] = '\0';
    if (missing) snprintf(cluster_why, sizeof cluster_why, "%s", missing);
    else if (!slc_start(cluster_why, sizeof cluster_why) && !cluster_why[0])
        snprintf(cluster_why, sizeof cluster_why, "(no reason given)");
}

static void cluster_teardown(void) { slc_stop(); }

/* In each forked case: whether the cluster is up (skips or fails, saying why, when not). */
static bool cluster_up(const char *test)
{
    slc_forked();
    if (cluster_skip) tu_skip(test, "%s", cluster_why);
    else ck_assert_msg(!cluster_why[0], "the cluster did not start: %s", cluster_why);
    return !cluster_skip;
}

/* ---- point 3: the array holds only the runs left to do ---- */

START_TEST(t_array_lists_only_unfinished_runs)
{
    if (!cluster_up(__func__)) return;
    const char *d = tu_tmpdir();
    make_work(d, "on-slurm", "grid:\n  train.lr: [1e-3, 1e-2]\n  seeds: [1, 2]\n");
    char path[512], results[512], args[2048], script[700], slurm[600], *out, *err;
    snprintf(path, sizeof path, "%s/exp.yaml", d);
    snprintf(results, sizeof results, "%s/results", d);
    snprintf(slurm, sizeof slurm, "%s/on-slurm/slurm", results);
    snprintf(script, sizeof script, "%s/on-slurm.sbatch", slurm);
    /* entry 1 finished before: only DONE decides, so a DONE file stands in for its training */
    tema_grid *g = NULL;
    tema_err e = {0};
    ck_assert_int_eq(chdir(d), 0); /* dataset.path is relative */
    ck_assert_int_eq(tema_grid_expand(path, NULL, 0, tu_registry(), results, NULL, &g, &e), TEMA_OK);
    ck_assert_uint_eq(g->n_runs, 4);
    char done[700];
    snprintf(done, sizeof done, "mkdir -p '%s' && touch '%s/DONE'", g->runs[1].dir, g->runs[1].dir);
    ck_assert_int_eq(system(done), 0);

    /* absolute paths, as given, also work */
    snprintf(args, sizeof args, "slurm '%s' --results '%s' --max-parallel 2 --time 00:05:00 --submit", path, results);
    int rc = tema_in(d, args, &out, &err);
    ck_assert_msg(rc == 0, "tema slurm --submit failed (%d):\n%s%s", rc, out, err);
    char *text = read_text(script);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, "\n#SBATCH --array=0,2-3%2\n"), "entry 1 is done, yet:\n%s", text);
    free(text);
    ck_assert_msg(strstr(out, "3 array tasks of 4 runs; left out: 1 done, 0 running elsewhere"), "%s", out);
    long job = job_id(out, "submitted job ");
    free(out);
    free(err);
    wait_job(job, slurm);

    for (size_t i = 0; i < g->n_runs; i++) {
        char *log = task_log(slurm, job, i);
        if (i == 1) {
            ck_assert_msg(log == NULL, "the done entry 1 had a task:\n%s", log);
            continue;
        }
        char note[256];
        tema_grid_state s = tema_grid_run_state(&g->runs[i], note, sizeof note);
        ck_assert_msg(s == TEMA_GRID_DONE, "run %zu is %s (%s); its task log:\n%s", i, tema_grid_state_name(s), note,
                      log ? log : "(missing)");
        ck_assert_msg(log && strstr(log, g->runs[i].id), "task %zu ran another entry:\n%s", i, log ? log : "(none)");
        free(log);
        ck_assert(tu_exists(g->runs[i].dir, "final.json"));
    }

    /* all done: no script, nothing submitted, exit 0 */
    ck_assert_int_eq(unlink(script), 0);
    rc = tema_in(d, args, &out, &err);
    ck_assert_msg(rc == 0, "(%d) %s%s", rc, out, err);
    ck_assert_msg(strstr(out, "nothing to submit") && strstr(out, "(4 done, 0 running)") && !strstr(out, "submitted"),
                  "%s", out);
    ck_assert_msg(access(script, F_OK) != 0, "a script was written with nothing to run");
    free(out);
    free(err);
    tema_grid_free(g);
}
END_TEST

/* ---- point 1: the script names nothing of the machine that wrote it ---- */

START_TEST(t_script_runs_from_a_moved_work_folder)
{
    if (!cluster_up(__func__)) return;
    const char *root = tu_tmpdir();
    char work[400], moved[400], *out, *err;
    snprintf(work, sizeof work, "%s/work", root);
    snprintf(moved, sizeof moved, "%s/mounted-elsewhere", root);
    ck_assert_int_eq(mkdir(work, 0755), 0);
    make_work(work, "moved", "grid:\n  train.lr: [1e-3, 1e-2]\n");
    int rc = tema_in(work, "slurm exp.yaml --max-parallel 2", &out, &err);
    ck_assert_msg(rc == 0, "(%d) %s%s", rc, out, err);
    ck_assert_msg(strstr(out, "results/moved/slurm/moved.sbatch\n"), "%s", out);
    free(out);
    free(err);
    char script[600];
    snprintf(script, sizeof script, "%s/results/moved/slurm/moved.sbatch", work);
    char *text = read_text(script);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(!strstr(text, work), "the script names the work folder %s:\n%s", work, text);
    free(text);

    /* the cluster sees the folder under another path: submitted from there, it runs there */
    ck_assert_int_eq(rename(work, moved), 0);
    char cmd[1200], line[256] = "";
    snprintf(cmd, sizeof cmd, "cd '%s' && sbatch results/moved/slurm/moved.sbatch 2>&1", moved);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    if (!fgets(line, sizeof line, p)) line[0] = '\0';
    ck_assert_int_eq(pclose(p), 0);
    long job = job_id(line, "Submitted batch job ");
    char slurm[600];
    snprintf(slurm, sizeof slurm, "%s/results/moved/slurm", moved);
    wait_job(job, slurm);
    rc = tema_in(moved, "status exp.yaml", &out, &err);
    char *log = task_log(slurm, job, 0);
    ck_assert_msg(rc == 0 && strstr(out, "total 2: 2 done"), "(%d) %s%s\ntask 0's log:\n%s", rc, out, err,
                  log ? log : "(missing)");
    free(log);
    free(out);
    free(err);
}
END_TEST

/* ---- point 2: --mem, --setup (a file and a line) and --tema reach the tasks ---- */

START_TEST(t_setup_mem_and_tema_command_reach_the_tasks)
{
    if (!cluster_up(__func__)) return;
    const char *d = tu_tmpdir();
    make_work(d, "setup", "");
    char p[600];
    snprintf(p, sizeof p, "%s/setup.sh", d);
    tu_write(p, "echo 'setup file ran' >&2\nexport TEMA_SETUP_VAR=from-file\n");
    ck_assert_int_eq(mkdir(strcat(strcpy(p, d), "/bin"), 0755), 0);
    strcat(p, "/tema-wrapped");
    tu_write(p, "#!/bin/sh\necho \"wrapped: $*\" >&2\nexec \"$TEMA_EXE\" \"$@\"\n");
    ck_assert_int_eq(chmod(p, 0755), 0);
    char *out, *err;
    int rc = tema_in(d,
                     "slurm exp.yaml --mem 200M --setup setup.sh --setup 'echo \"setup line: $TEMA_SETUP_VAR\" >&2' "
                     "--tema bin/tema-wrapped --submit",
                     &out, &err);
    ck_assert_msg(rc == 0, "(%d) %s%s", rc, out, err);
    long job = job_id(out, "submitted job ");
    free(out);
    free(err);
    char cmd[256], mem[256] = "";
    snprintf(cmd, sizeof cmd, "scontrol show job %ld | grep -o 'MinMemoryNode=[^ ]*' | head -1", job);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    if (!fgets(mem, sizeof mem, f)) mem[0] = '\0';
    pclose(f);
    ck_assert_msg(!strcmp(mem, "MinMemoryNode=200M\n"), "the job asks for '%s'", mem);
    char slurm[600];
    snprintf(slurm, sizeof slurm, "%s/results/setup/slurm", d);
    wait_job(job, slurm);
    char *log = task_log(slurm, job, 0);
    ck_assert_msg(log, "no log of task 0 in %s", slurm);
    const char *file = strstr(log, "setup file ran\n"), *line = strstr(log, "setup line: from-file\n"),
               *wrapped = strstr(log, "wrapped: run exp.yaml --index 0 --results results\n");
    ck_assert_msg(file && line && wrapped && file < line && line < wrapped,
                  "the setup file, then the line, then tema through --tema, expected:\n%s", log);
    free(log);
    rc = tema_in(d, "status exp.yaml", &out, &err);
    ck_assert_msg(rc == 0 && strstr(out, "total 1: 1 done"), "(%d) %s%s", rc, out, err);
    free(out);
    free(err);
}
END_TEST

/* ---- the script's text (no cluster needed) ---- */

/* point 2: --gpus with runs on the cpu backend, and --gpus where no cuda backend is built */
START_TEST(t_gpus_need_runs_on_a_built_cuda_backend)
{
    const char *d = tu_tmpdir();
    make_work(d, "gpu", "");
    char *out, *err;
    bool have_cuda = tema_in(d, "plugins --describe cuda", &out, &err) == 0;
    free(out);
    free(err);
    int rc = tema_in(d, "slurm exp.yaml --gpus 1", &out, &err);
    ck_assert_msg(rc != 0, "--gpus 1 with backend.plugin: cpu was accepted:\n%s", out);
    ck_assert_msg(strstr(err, "--gpus 1") && strstr(err, "--set backend.plugin=cuda"), "%s", err);
    ck_assert_msg(strstr(err, have_cuda ? "use backend.plugin=cpu" : "no cuda backend plugin"), "%s", err);
    ck_assert_msg(!tu_exists(d, "results/gpu/slurm/gpu.sbatch"), "a script was written");
    free(out);
    free(err);
    if (have_cuda) {
        /* the fix the error names */
        rc = tema_in(d, "slurm exp.yaml --gpus 1 --set backend.plugin=cuda", &out, &err);
        ck_assert_msg(rc == 0, "(%d) %s", rc, err);
        char p[600];
        snprintf(p, sizeof p, "%s/results/gpu/slurm/gpu.sbatch", d);
        char *text = read_text(p);
        ck_assert_msg(text && strstr(text, "\n#SBATCH --gres=gpu:1\n") && strstr(text, " --set 'backend.plugin=cuda'\n"),
                      "%s", text ? text : "(no script)");
        free(text);
        free(out);
        free(err);
        /* this tema without the cuda plugin: a copy beside a plugin folder that lacks it */
        char cmd[2000];
        snprintf(cmd, sizeof cmd,
                 "mkdir -p '%s/nocuda/plugins' && cp '%s' '%s/nocuda/tema' && for f in '%s'/plugins/*.so; do "
                 "case $f in *cuda*) ;; *) ln -s \"$f\" '%s/nocuda/plugins/' ;; esac; done",
                 d, getenv("TEMA_EXE"), d, tu_build_root(), d);
        ck_assert_int_eq(system(cmd), 0);
        snprintf(cmd, sizeof cmd,
                 "cd '%s' && env -u TEMA_PLUGIN_PATH ./nocuda/tema slurm exp.yaml --gpus 1 --set backend.plugin=cuda "
                 ">/dev/null 2>nocuda.err",
                 d);
        ck_assert_int_ne(system(cmd), 0);
        snprintf(cmd, sizeof cmd, "%s/nocuda.err", d);
        text = read_text(cmd);
        ck_assert_msg(text && strstr(text, "--gpus 1: this tema has no cuda backend plugin"), "%s", text);
        free(text);
    }
}
END_TEST

/* point 1: the default command is `tema` when the one on PATH is this program */
START_TEST(t_default_tema_is_the_one_on_path_when_it_is_this_program)
{
    const char *d = tu_tmpdir();
    make_work(d, "which", "");
    char script[600], cmd[2000], *out, *err;
    snprintf(script, sizeof script, "%s/results/which/slurm/which.sbatch", d);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/same' '%s/other' && ln -s '%s' '%s/same/tema' && "
                              "printf '#!/bin/sh\\n' >'%s/other/tema' && chmod 755 '%s/other/tema'",
             d, d, getenv("TEMA_EXE"), d, d, d);
    ck_assert_int_eq(system(cmd), 0);
    const char *path = getenv("PATH");
    for (int k = 0; k < 3; k++) {
        /* k 0: this tema first on PATH; 1: another program named tema; 2: none */
        snprintf(cmd, sizeof cmd, "%s/%s:%s", d, k == 0 ? "same" : "other", path);
        setenv("PATH", k == 2 ? path : cmd, 1);
        int rc = tema_in(d, "slurm exp.yaml", &out, &err);
        setenv("PATH", path, 1);
        ck_assert_msg(rc == 0, "(%d) %s", rc, err);
        char *text = read_text(script);
        ck_assert_ptr_nonnull(text);
        if (k == 0) {
            ck_assert_msg(strstr(text, "\nexec tema run 'exp.yaml' --index \"$SLURM_ARRAY_TASK_ID\" --results "
                                       "'results'\n"),
                          "%s", text);
        } else {
            snprintf(cmd, sizeof cmd, "\nexec '%s' run 'exp.yaml'", getenv("TEMA_EXE"));
            ck_assert_msg(strstr(text, cmd) && strstr(text, "no `tema` on PATH is the\n# same program"), "%s", text);
        }
        free(text);
        free(out);
        free(err);
    }
    /* --tema: verbatim */
    int rc = tema_in(d, "slurm exp.yaml --tema 'apptainer exec tema.sif tema'", &out, &err);
    ck_assert_msg(rc == 0, "(%d) %s", rc, err);
    char *text = read_text(script);
    ck_assert_msg(strstr(text, "\nexec apptainer exec tema.sif tema run 'exp.yaml' "), "%s", text);
    free(text);
    free(out);
    free(err);
}
END_TEST

/* point 6 */
START_TEST(t_help_lists_every_option)
{
    char *out, *err;
    ck_assert_int_eq(tu_tema("help slurm", &out, &err), 0);
    const char *opts[] = {"--partition P", "--time T", "--cpus C", "--mem M", "--gpus G", "--max-parallel K",
                          "--setup FILE|LINE", "--tema CMD", "--results DIR", "--set", "--submit"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        ck_assert_msg(strstr(out, opts[i]), "no %s in `tema help slurm`:\n%s", opts[i], out);
    free(out);
    free(err);
}
END_TEST

/* ---- point 4: the harness leaves nothing behind ---- */

/* This program again, with TEMA_SLURM_HARNESS=mode (NULL: the whole suite), in its own
 * process group (Check's runner signals its own group when it is signalled), output into
 * outfile. */
static pid_t run_self(const char *mode, const char *outfile, bool with_tema_exe, const char *mark)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ck_assert_int_gt(n, 0);
    self[n] = '\0';
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        setpgid(0, 0);
        /* a failed assertion here must not leave it running: it goes as a runner goes on SIGTERM */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int fd = open(outfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        if (mode) setenv("TEMA_SLURM_HARNESS", mode, 1);
        setenv("TEMA_SLURM_MARK", mark, 1);
        if (!with_tema_exe) unsetenv("TEMA_EXE");
        unsetenv("CK_RUN_CASE");
        unsetenv("CK_RUN_SUITE");
        unsetenv("CK_FORK");
        execl(self, self, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* The processes that carry TEMA_SLURM_MARK=mark in their environment: what a copy of this
 * program run by run_self started, and what those started in turn (daemons, watchdog,
 * slurmstepd), whoever adopted them; other test runs on the machine carry other marks or
 * none. Their "PID NAME" into list; returns how many. */
static int marked(const char *mark, char *list, size_t cap)
{
    char want[64], cmd[600];
    snprintf(want, sizeof want, "TEMA_SLURM_MARK=%s", mark);
    /* environ is NUL-separated: grep -z matches one entry */
    snprintf(cmd, sizeof cmd,
             "for e in /proc/[0-9]*/environ; do p=${e#/proc/}; p=${p%%/environ}; [ $p = $$ ] && continue; "
             "grep -qzx '%s' $e 2>/dev/null && grep -q '^State:[[:space:]]*[^Z]' /proc/$p/status 2>/dev/null && "
             "echo \"$p $(cat /proc/$p/comm)\"; done",
             want);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    int n = 0;
    char line[256];
    list[0] = '\0';
    size_t used = 0;
    while (fgets(line, sizeof line, p)) {
        n++;
        line[strcspn(line, "\n")] = '\0';
        used += (size_t)snprintf(list + used, used < cap ? cap - used : 0, "%s; ", line);
        if (used >= cap) used = cap - 1;
    }
    pclose(p);
    return n;
}

START_TEST(t_without_tema_exe_it_skips_before_starting_anything)
{
    char out[300], mark[32], left[1024];
    snprintf(out, sizeof out, "%s/self.out", tu_tmpdir());
    snprintf(mark, sizeof mark, "noexe-%ld", (long)getpid());
    pid_t pid = run_self(NULL, out, false, mark);
    int ws = 0;
    ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
    int n = marked(mark, left, sizeof left);
    char *text = read_text(out);
    ck_assert_msg(WIFEXITED(ws) && WEXITSTATUS(ws) == 77 && strstr(text, "SKIP") && strstr(text, "TEMA_EXE"),
                  "expected a skip (77), got wait status %d:\n%s", ws, text);
    ck_assert_msg(n == 0, "it left %s", left);
    free(text);
}
END_TEST

/* Runs this program's "hold" case (it starts a cluster and a job, then waits to be killed
 * or, for mode "fail", fails an assertion), sends it sig (0: none) and checks that every daemon it
 * started is gone, and its folder, within `within` seconds of its exit. */
static void check_nothing_outlives(const char *mode, int sig, double within)
{
    char out[300], mark[64], left[1024];
    snprintf(out, sizeof out, "%s/%s-%d.out", tu_tmpdir(), mode, sig);
    snprintf(mark, sizeof mark, "%s-%d-%ld", mode, sig, (long)getpid());
    pid_t pid = run_self(mode, out, true, mark);
    bool up = tu_wait_for_line(out, "cluster up in ", 120);
    char *text = read_text(out);
    const char *at = text ? strstr(text, "cluster up in ") : NULL;
    if (!up || !at) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        ck_abort_msg("the %s case did not start its cluster:\n%s", mode, text ? text : "");
    }
    char dir[256];
    sscanf(at + strlen("cluster up in "), "%255s", dir);
    free(text);
    pid_t pids[SLC_N];
    slc_read_pids(dir, pids);
    for (int i = 0; i < SLC_N; i++) ck_assert_msg(slc_alive(pids[i], slc_names[i]), "%s is not running", slc_names[i]);
    /* the mark finds them: the runner, its case, the watchdog, the daemons and the job's
     * processes (slurmstepd, its shell, sleep) */
    /* the job may wait a while for the node on a loaded machine: poll for its processes */
    int n_marked = 0;
    for (int t = 0; t < 600; t++) {
        n_marked = marked(mark, left, sizeof left);
        if (n_marked >= SLC_N + 5 && strstr(left, " sleep; ")) break;
        usleep(100 * 1000);
    }
    ck_assert_msg(n_marked >= SLC_N + 5 && strstr(left, " sleep; "), "marked after 60 s: %s", left);
    if (sig) ck_assert_int_eq(kill(pid, sig), 0);
    char go[300];
    snprintf(go, sizeof go, "%s/fail-now", dir);
    if (!sig) tu_write(go, "");
    int ws = 0;
    ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
    for (int t = 0; t <= (int)(within * 10); t++) {
        bool left = access(dir, F_OK) == 0;
        for (int i = 0; i < SLC_N; i++) left |= slc_alive(pids[i], slc_names[i]);
        if (!left) break;
        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    }
    text = read_text(out);
    for (int i = 0; i < SLC_N; i++)
        ck_assert_msg(!slc_alive(pids[i], slc_names[i]), "%s (pid %ld) outlived the %s case (wait status %d):\n%s",
                      slc_names[i], (long)pids[i], mode, ws, text);
    ck_assert_msg(access(dir, F_OK) != 0, "%s is left behind", dir);
    /* the watchdog too, and anything a daemon started */
    int n = 0;
    for (int t = 0; t < 100 && (n = marked(mark, left, sizeof left)) > 0; t++)
        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    ck_assert_msg(n == 0, "the %s case left %s", mode, left);
    if (!sig) ck_assert_msg(WIFEXITED(ws) && WEXITSTATUS(ws) == 1, "wait status %d:\n%s", ws, text);
    free(text);
}

START_TEST(t_nothing_outlives_a_failed_assertion)
{
    if (slc_missing()) {
        tu_skip(__func__, "%s", slc_missing());
        return;
    }
    /* the runner's teardown: gone when it exits, no waiting */
    check_nothing_outlives("fail", 0, 0);
}
END_TEST

START_TEST(t_nothing_outlives_a_signal)
{
    if (slc_missing()) {
        tu_skip(__func__, "%s", slc_missing());
        return;
    }
    const int sigs[] = {SIGINT, SIGTERM, SIGKILL};
    /* the watchdog: cancels, stops and removes within seconds */
    check_nothing_outlives("hold", sigs[_i], 30);
}
END_TEST

/* The case the harness cases run in a second copy of this program. */
START_TEST(t_hold)
{
    if (!cluster_up(__func__)) return;
    /* a job to cancel on the way out: slurmstepd and its tasks outlive slurmd */
    FILE *p = popen("sbatch --parsable --output=/dev/null --wrap 'sleep 300'", "r");
    ck_assert_ptr_nonnull(p);
    char job[64] = "", state[16] = "", cmd[128];
    ck_assert_ptr_nonnull(fgets(job, sizeof job, p));
    ck_assert_int_eq(pclose(p), 0);
    snprintf(cmd, sizeof cmd, "squeue -h -o %%t -j %ld", atol(job));
    for (int t = 0; t < 300 && strcmp(state, "R\n"); t++) {
        usleep(100000);
        p = popen(cmd, "r");
        ck_assert_ptr_nonnull(p);
        if (!fgets(state, sizeof state, p)) state[0] = '\0';
        pclose(p);
    }
    ck_assert_msg(!strcmp(state, "R\n"), "job %ld is '%s', not running, after 30 s", atol(job), state);
    fprintf(stderr, "cluster up in %s\n", slc_dir());
    if (!strcmp(getenv("TEMA_SLURM_HARNESS"), "fail")) {
        /* once the harness has seen the daemons */
        for (int t = 0; t < 600 && !tu_exists(slc_dir(), "fail-now"); t++) usleep(100000);
        ck_abort_msg("a failed assertion, as asked");
    }
    /* until the runner is gone (a SIGKILL of it reaches no case) */
    pid_t runner = getppid();
    for (int t = 0; t < 120 && getppid() == runner; t++) sleep(1);
}
END_TEST

static TCase *cluster_case(const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 300);
    tcase_add_unchecked_fixture(tc, cluster_setup, cluster_teardown);
    return tc;
}

static Suite *make_suite(void)
{
    Suite *s = suite_create("slurm");
    if (getenv("TEMA_SLURM_HARNESS")) {
        TCase *tc = cluster_case("hold");
        tcase_add_test(tc, t_hold);
        suite_add_tcase(s, tc);
        return s;
    }
    TCase *ts = tcase_create("script");
    tcase_set_timeout(ts, 120);
    tcase_add_test(ts, t_help_lists_every_option);
    tcase_add_test(ts, t_gpus_need_runs_on_a_built_cuda_backend);
    tcase_add_test(ts, t_default_tema_is_the_one_on_path_when_it_is_this_program);
    suite_add_tcase(s, ts);
    TCase *th = tcase_create("harness");
    tcase_set_timeout(th, 300);
    tcase_add_test(th, t_without_tema_exe_it_skips_before_starting_anything);
    tcase_add_test(th, t_nothing_outlives_a_failed_assertion);
    tcase_add_loop_test(th, t_nothing_outlives_a_signal, 0, 3);
    suite_add_tcase(s, th);
    TCase *tc = cluster_case("cluster");
    tcase_add_test(tc, t_array_lists_only_unfinished_runs);
    tcase_add_test(tc, t_script_runs_from_a_moved_work_folder);
    tcase_add_test(tc, t_setup_mem_and_tema_command_reach_the_tasks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* tu_tema needs it, and the cluster must not be started for nothing */
    if (!getenv("TEMA_EXE")) {
        printf("SKIP slurm: TEMA_EXE is not set; run it as `meson test -C build slurm`\n");
        return 77;
    }
    return tu_run_suite(make_suite());
}
