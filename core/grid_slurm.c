/* core/grid_slurm.c - `tema slurm`: a job-array script with one task per entry, and its
 * submission through sbatch. Separate from the local runner: the cluster schedules the
 * runs, so nothing here waits on them. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "grid_internal.h"
#include "util.h"

static void sh_quote(tema_sb *b, const char *s)
{
    tema_sb_add(b, "'");
    for (; *s; s++) {
        if (*s == '\'') tema_sb_add(b, "'\\''");
        else tema_sb_addn(b, s, 1);
    }
    tema_sb_add(b, "'");
}

/* What the script names. Paths are absolute: a task may start anywhere. */
typedef struct slurm_paths {
    char cwd[PATH_MAX];
    char *abs_path, *abs_results, *exe;
    char dir[PATH_MAX], script[PATH_MAX + 300];
} slurm_paths;

/* Threads per task: --cpus, else the most any run asks for. */
static int slurm_cpus(const tema_grid *g, const tema_slurm_opts *o)
{
    int cpus = o->cpus;
    if (cpus <= 0)
        for (size_t i = 0; i < g->n_runs; i++) {
            int t = (int)tema_cfg_int(g->runs[i].cfg, "backend.threads", 1);
            if (t > cpus) cpus = t;
        }
    return cpus <= 0 ? 1 : cpus;
}

static void slurm_header(tema_sb *b, const tema_grid *g, const tema_slurm_opts *o, const slurm_paths *p, int cpus)
{
    int k = o->max_parallel > 0 ? o->max_parallel : (int)g->n_runs;
    tema_sb_add(b, "#!/bin/bash\n");
    tema_sb_printf(b, "# Written by `tema slurm` for experiment %s (%s): %zu run%s, one array task each.\n", g->name,
                   p->abs_path, g->n_runs, g->n_runs == 1 ? "" : "s");
    tema_sb_printf(b, "# Submit with: sbatch %s   (or: tema slurm %s --submit)\n", p->script, g->path);
    tema_sb_add(b, "# Finished runs are skipped, interrupted ones resume; `tema status` shows the progress.\n");
    char jobname[200];
    snprintf(jobname, sizeof jobname, "tema-%s", g->name);
    for (char *c = jobname; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '_' || *c == '.')) *c = '_';
    tema_sb_printf(b, "#SBATCH --job-name=%s\n", jobname);
    tema_sb_printf(b, "#SBATCH --array=0-%zu%%%d\n", g->n_runs - 1, k);
    tema_sb_printf(b, "#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=%d\n", cpus);
    if (o->partition && *o->partition) tema_sb_printf(b, "#SBATCH --partition=%s\n", o->partition);
    if (o->time && *o->time) tema_sb_printf(b, "#SBATCH --time=%s\n", o->time);
    if (o->gpus > 0) tema_sb_printf(b, "#SBATCH --gres=gpu:%d\n", o->gpus);
    tema_sb_printf(b, "#SBATCH --output=%s/%%A_%%a.out\n", p->dir);
    tema_sb_printf(b, "#SBATCH --chdir=%s\n", p->cwd);
}

/* What each array task runs: entry $SLURM_ARRAY_TASK_ID, in this environment. */
static void slurm_command(tema_sb *b, const tema_slurm_opts *o, const slurm_paths *p, int cpus)
{
    tema_sb_add(b, "set -eu\n");
    tema_sb_add(b, "# relative paths in the experiment resolve against the folder it was written from\ncd ");
    sh_quote(b, p->cwd);
    tema_sb_add(b, "\n");
    tema_sb_printf(b, "export OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d OMP_THREAD_LIMIT=%d\n", cpus, cpus, cpus);
    const char *pp = getenv("TEMA_PLUGIN_PATH");
    if (pp && *pp) {
        tema_sb_add(b, "export TEMA_PLUGIN_PATH=");
        sh_quote(b, pp);
        tema_sb_add(b, "\n");
    }
    tema_sb_add(b, "exec ");
    sh_quote(b, p->exe);
    tema_sb_add(b, " run ");
    sh_quote(b, p->abs_path);
    tema_sb_add(b, " --index \"$SLURM_ARRAY_TASK_ID\" --results ");
    sh_quote(b, p->abs_results);
    for (int i = 0; i < o->n_overrides; i++) {
        tema_sb_add(b, " --set ");
        sh_quote(b, o->overrides[i]);
    }
    tema_sb_add(b, "\n");
}

tema_status tema_grid_write_slurm(const tema_grid *g, const tema_slurm_opts *o, char **script_path, tema_err *err)
{
    *script_path = NULL;
    slurm_paths p = {0};
    if (!getcwd(p.cwd, sizeof p.cwd))
        return tema_fail(err, TEMA_EIO, "cannot read the current folder: %s", strerror(errno));
    p.abs_path = tema_abspath(g->path);
    p.abs_results = tema_abspath(g->results_dir);
    p.exe = o->exe ? tema_abspath(o->exe) : tema_gridi_self_exe();
    tema_status st = TEMA_OK;
    if (!p.abs_path || !p.abs_results || !p.exe) {
        st = tema_fail(err, TEMA_ENOMEM, "out of memory or no /proc/self/exe");
        goto out;
    }
    snprintf(p.dir, sizeof p.dir, "%s/%s/slurm", p.abs_results, g->name);
    snprintf(p.script, sizeof p.script, "%s/%s.sbatch", p.dir, g->name);
    if ((st = tema_mkdirs(p.dir, err)) != TEMA_OK) goto out;
    if ((st = tema_gridi_prepare_synthetic(g, p.abs_results, err)) != TEMA_OK) goto out;
    int cpus = slurm_cpus(g, o);
    tema_sb b = {0};
    slurm_header(&b, g, o, &p, cpus);
    slurm_command(&b, o, &p, cpus);
    char *text = tema_sb_take(&b);
    if (!text) {
        st = tema_fail(err, TEMA_ENOMEM, "out of memory");
        goto out;
    }
    st = tema_write_file_atomic(p.script, text, strlen(text), err);
    free(text);
    if (st == TEMA_OK) chmod(p.script, 0755);
    if (st == TEMA_OK && !(*script_path = strdup(p.script))) st = tema_fail(err, TEMA_ENOMEM, "out of memory");
out:
    free(p.abs_path);
    free(p.abs_results);
    free(p.exe);
    return st;
}

tema_status tema_grid_submit_slurm(const char *script_path, char *job_id, size_t cap, tema_err *err)
{
    if (cap) job_id[0] = '\0';
    int fds[2];
    if (pipe(fds) != 0) return tema_fail(err, TEMA_EIO, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return tema_fail(err, TEMA_EIO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execlp("sbatch", "sbatch", "--parsable", script_path, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char out[4096];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fds[0], out + n, sizeof out - 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
        if (n == sizeof out - 1) break;
    }
    out[n] = '\0';
    close(fds[0]);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
        int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
        if (code == 127)
            return tema_fail(err, TEMA_ENOTFOUND,
                             "sbatch not found; hint: submit %s on a Slurm login node, or install Slurm's client tools",
                             script_path);
        while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ')) out[--n] = '\0';
        return tema_fail(err, TEMA_EIO, "sbatch %s failed (exit status %d): %s; hint: does `sinfo` work here?",
                         script_path, code, out);
    }
    /* --parsable prints "JOBID" or "JOBID;CLUSTER" (after any warnings on their own lines) */
    char *line = out, *save = NULL, *last = NULL;
    for (char *l = strtok_r(line, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) last = l;
    if (!last) return tema_fail(err, TEMA_EFORMAT, "sbatch printed no job id");
    last[strcspn(last, ";")] = '\0';
    snprintf(job_id, cap, "%s", last);
    return TEMA_OK;
}

