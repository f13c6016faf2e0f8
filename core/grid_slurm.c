/* core/grid_slurm.c - `tema slurm`: a job-array script with one task per unfinished entry,
 * and its submission through sbatch. Separate from the local runner: the cluster schedules
 * the runs, so nothing here waits on them.
 *
 * The script is portable the way submitit's and Hydra's Slurm launcher scripts are meant to
 * be: no path of the machine that wrote it, unless given so. The experiment and results are
 * named as given, relative to the submission folder the task `cd`s into, so a cluster that
 * mounts the work folder elsewhere (or a copy of it) runs the same script. */
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

/* The script being written. */
typedef struct slurm_job {
    const tema_grid *g;
    const tema_slurm_opts *o;
    char dir[PATH_MAX], path[PATH_MAX + 300]; /* results/NAME/slurm and the script, as given */
    char *self;                               /* this binary, absolute */
    bool self_on_path;                        /* `tema` on PATH is this binary */
    int cpus;
    tema_sb array;                            /* "0,3,5-9" */
    tema_slurm_script *out;
} slurm_job;

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

/* Whether the first `tema` on PATH is the file `self` (through any symlinks): then the
 * script can say `tema` and run whatever the cluster's PATH holds under that name. */
static bool tema_on_path_is(const char *self)
{
    const char *path = getenv("PATH");
    struct stat want, got;
    if (!path || !*path || stat(self, &want) != 0) return false;
    while (*path) {
        size_t n = strcspn(path, ":");
        char cand[PATH_MAX];
        if (n > 0 && n < sizeof cand - 6) {
            snprintf(cand, sizeof cand, "%.*s/tema", (int)n, path);
            if (access(cand, X_OK) == 0 && stat(cand, &got) == 0 && S_ISREG(got.st_mode))
                return got.st_dev == want.st_dev && got.st_ino == want.st_ino;
        }
        path += n + (path[n] == ':');
    }
    return false;
}

/* The array's index list over the runs left to do, ranges compressed ("0,3,5-9"). A
 * running run is left out too: its task would find the lock taken and fail. */
static void slurm_array(slurm_job *j)
{
    const tema_grid *g = j->g;
    bool *todo = calloc(g->n_runs ? g->n_runs : 1, sizeof *todo);
    if (!todo) return; /* n_tasks stays 0: reported as out of memory by the caller */
    for (size_t i = 0; i < g->n_runs; i++) {
        tema_grid_state s = tema_grid_run_state(&g->runs[i], NULL, 0);
        if (s == TEMA_GRID_DONE) j->out->n_done++;
        else if (s == TEMA_GRID_RUNNING) j->out->n_running++;
        else todo[i] = true;
    }
    for (size_t i = 0; i < g->n_runs; i++) {
        if (!todo[i]) continue;
        size_t last = i;
        while (last + 1 < g->n_runs && todo[last + 1]) last++;
        tema_sb_printf(&j->array, j->out->n_tasks ? ",%zu" : "%zu", i);
        if (last > i) tema_sb_printf(&j->array, "-%zu", last);
        j->out->n_tasks += last - i + 1;
        i = last;
    }
    free(todo);
}

/* sbatch --mem: a number of megabytes, or with a unit K, M, G or T. */
static bool mem_ok(const char *m)
{
    size_t digits = strspn(m, "0123456789");
    return digits > 0 && (m[digits] == '\0' || (strchr("KMGTkmgt", m[digits]) && m[digits + 1] == '\0'));
}

tema_status tema_slurm_check_opts(const tema_slurm_opts *o, tema_err *err)
{
    if (o->mem && !mem_ok(o->mem))
        return tema_fail(err, TEMA_EINVAL, "--mem '%s': expected a size as sbatch takes it, such as 8G or 500M",
                         o->mem);
    if (o->gpus > 0 && o->reg && !tema_registry_find(o->reg, TEMA_KIND_BACKEND, "cuda"))
        return tema_fail(err, TEMA_EUNSUPPORTED,
                         "--gpus %d: this tema has no cuda backend plugin (built where meson found no nvcc), so "
                         "no run could use the GPU; hint: leave out --gpus, or rebuild with `meson setup -Dcuda=enabled` "
                         "on a machine with the CUDA toolkit and run with --set backend.plugin=cuda",
                         o->gpus);
    return TEMA_OK;
}

/* --gpus only makes sense for runs on the cuda backend; see grid.h for why a cpu run is
 * refused rather than switched. Without --gpus, cuda runs only get a warning: a partition
 * may hand out GPUs by itself. */
static tema_status slurm_check_gpus(const tema_grid *g, const tema_slurm_opts *o, tema_err *err)
{
    size_t n_other = 0;
    const char *other = NULL;
    for (size_t i = 0; i < g->n_runs; i++) {
        const char *be = tema_cfg_str(g->runs[i].cfg, "backend.plugin", "cpu");
        if (strcmp(be, "cuda") != 0) n_other++, other = be;
    }
    if (o->gpus <= 0) {
        if (n_other < g->n_runs)
            fprintf(stderr, "tema: warning: %zu run%s of %s use backend.plugin=cuda but no --gpus was given: their "
                            "tasks ask Slurm for no GPU\n",
                    g->n_runs - n_other, g->n_runs - n_other == 1 ? "" : "s", g->path);
        return TEMA_OK;
    }
    if (n_other)
        return tema_fail(err, TEMA_EINVAL,
                         "--gpus %d asks a GPU for every task, but %zu of the %zu runs of %s use backend.plugin=%s and "
                         "would leave it idle; hint: add --set backend.plugin=cuda (and give the same --set to `tema "
                         "status` and `tema report`: the backend is part of the run id), or write `backend: {plugin: "
                         "cuda}` in %s, or leave out --gpus",
                         o->gpus, n_other, g->n_runs, g->path, other, g->path);
    return TEMA_OK;
}

static void slurm_header(tema_sb *b, const slurm_job *j)
{
    const tema_grid *g = j->g;
    const tema_slurm_opts *o = j->o;
    const tema_slurm_script *s = j->out;
    tema_sb_add(b, "#!/bin/bash\n");
    tema_sb_printf(b, "# Written by `tema slurm` for %s (%s).\n", g->name, g->path);
    tema_sb_printf(b, "# %zu run%s: %zu in this array (task i runs entry i); left out: %zu done, %zu running.\n",
                   g->n_runs, g->n_runs == 1 ? "" : "s", s->n_tasks, s->n_done, s->n_running);
    tema_sb_add(b, "# Submit from the folder `tema slurm` ran in (the paths below are relative to it):\n");
    tema_sb_printf(b, "#   sbatch %s   (or: tema slurm %s --submit)\n", j->path, g->path);
    tema_sb_add(b, "# Finished runs are skipped, interrupted ones resume; `tema status` shows the progress.\n");
    char jobname[200];
    snprintf(jobname, sizeof jobname, "tema-%s", g->name);
    for (char *c = jobname; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '_' || *c == '.')) *c = '_';
    tema_sb_printf(b, "#SBATCH --job-name=%s\n", jobname);
    int k = o->max_parallel > 0 ? o->max_parallel : (int)s->n_tasks;
    tema_sb_printf(b, "#SBATCH --array=%s%%%d\n", tema_sb_str(&j->array), k);
    tema_sb_printf(b, "#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=%d\n", j->cpus);
    if (o->mem && *o->mem) tema_sb_printf(b, "#SBATCH --mem=%s\n", o->mem);
    if (o->partition && *o->partition) tema_sb_printf(b, "#SBATCH --partition=%s\n", o->partition);
    if (o->time && *o->time) tema_sb_printf(b, "#SBATCH --time=%s\n", o->time);
    if (o->gpus > 0) tema_sb_printf(b, "#SBATCH --gres=gpu:%d\n", o->gpus);
    /* relative: Slurm opens it in the submission folder */
    tema_sb_printf(b, "#SBATCH --output=%s/%%A_%%a.out\n", j->dir);
}

/* A --setup value names a file (its text goes in, so the script stands alone) or is a shell
 * line. A single word that looks like a path but names no file is a typo, not a command. */
static tema_status slurm_setup(tema_sb *b, const tema_slurm_opts *o, tema_err *err)
{
    for (int i = 0; i < o->n_setup; i++) {
        const char *v = o->setup[i];
        struct stat sb;
        size_t len = strlen(v);
        if (stat(v, &sb) == 0 && S_ISREG(sb.st_mode)) {
            char *text = NULL;
            tema_status st = tema_read_file(v, &text, &len, err);
            if (st != TEMA_OK) return st;
            tema_sb_printf(b, "# --setup %s:\n", v);
            tema_sb_addn(b, text, len);
            if (len && text[len - 1] != '\n') tema_sb_add(b, "\n");
            free(text);
        } else if (!strpbrk(v, " \t\n;=$'\"") &&
                   (strchr(v, '/') || (len > 3 && !strcmp(v + len - 3, ".sh")))) {
            return tema_fail(err, TEMA_ENOTFOUND,
                             "--setup '%s': no such file; hint: --setup takes a file whose lines run before tema, or "
                             "one such line ('module load cuda/12', 'source venv/bin/activate')",
                             v);
        } else {
            tema_sb_printf(b, "%s\n", v);
        }
    }
    return TEMA_OK;
}

/* What each array task runs: entry $SLURM_ARRAY_TASK_ID, from the submission folder. */
static tema_status slurm_command(tema_sb *b, const slurm_job *j, tema_err *err)
{
    const tema_slurm_opts *o = j->o;
    tema_sb_add(b, "\nset -e\n");
    tema_sb_add(b, "# where the experiment's relative paths (dataset.path) resolve, as for `tema slurm`\n");
    tema_sb_add(b, "cd \"${SLURM_SUBMIT_DIR:-$PWD}\"\nif [ ! -e ");
    sh_quote(b, j->g->path);
    tema_sb_add(b, " ]; then\n    echo >&2 \"tema: no\" ");
    sh_quote(b, j->g->path);
    tema_sb_add(b, " \"in $PWD; submit from the folder \\`tema slurm\\` ran in\"\n    exit 2\nfi\n");
    tema_sb_add(b, "# The environment is the submitting shell's (sbatch --export=ALL, Slurm's default)");
    tema_sb_add(b, o->n_setup ? ", and then:\n" : ";\n# `tema slurm --setup` adds lines here (module load, a virtualenv).\n");
    tema_status st = slurm_setup(b, o, err);
    if (st != TEMA_OK) return st;
    tema_sb_add(b, "set -u\n");
    tema_sb_printf(b, "export OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d OMP_THREAD_LIMIT=%d\n", j->cpus, j->cpus,
                   j->cpus);
    if (o->tema && *o->tema) {
        tema_sb_add(b, "# tema: as given by `tema slurm --tema`\nexec ");
        tema_sb_add(b, o->tema);
    } else if (j->self_on_path) {
        tema_sb_add(b, "# tema: the one on PATH (when written, the same program as the tema that wrote this\n"
                       "# script); `tema slurm --tema CMD` names another\nexec tema");
    } else {
        tema_sb_add(b, "# tema: the binary that wrote this script, by its absolute path: no `tema` on PATH is the\n"
                       "# same program. On a cluster that mounts it elsewhere, write the script with\n"
                       "# `tema slurm --tema CMD` (or put tema on PATH).\nexec ");
        sh_quote(b, j->self);
    }
    tema_sb_add(b, " run ");
    sh_quote(b, j->g->path);
    tema_sb_add(b, " --index \"$SLURM_ARRAY_TASK_ID\" --results ");
    sh_quote(b, j->g->results_dir);
    for (int i = 0; i < o->n_overrides; i++) {
        tema_sb_add(b, " --set ");
        sh_quote(b, o->overrides[i]);
    }
    tema_sb_add(b, "\n");
    return TEMA_OK;
}

/* The script's text into *text (caller frees). */
static tema_status slurm_text(const slurm_job *j, char **text, tema_err *err)
{
    tema_sb b = {0};
    slurm_header(&b, j);
    tema_status st = slurm_command(&b, j, err);
    *text = tema_sb_take(&b);
    if (st != TEMA_OK) {
        free(*text);
        *text = NULL;
        return st;
    }
    return *text ? TEMA_OK : tema_fail(err, TEMA_ENOMEM, "out of memory");
}

tema_status tema_grid_write_slurm(const tema_grid *g, const tema_slurm_opts *o, tema_slurm_script *out, tema_err *err)
{
    memset(out, 0, sizeof *out);
    tema_status st = tema_slurm_check_opts(o, err);
    if (st == TEMA_OK) st = slurm_check_gpus(g, o, err);
    if (st != TEMA_OK) return st;
    slurm_job j = {.g = g, .o = o, .out = out, .cpus = slurm_cpus(g, o)};
    slurm_array(&j);
    char *text = NULL, *abs_results = NULL;
    if (out->n_tasks == 0) {
        if (out->n_done + out->n_running < g->n_runs) st = tema_fail(err, TEMA_ENOMEM, "out of memory");
        goto done; /* nothing left to run: no script */
    }
    snprintf(j.dir, sizeof j.dir, "%s/%s/slurm", g->results_dir, g->name);
    snprintf(j.path, sizeof j.path, "%s/%s.sbatch", j.dir, g->name);
    j.self = tema_gridi_self_exe();
    abs_results = tema_abspath(g->results_dir);
    if (!j.self || !abs_results) {
        st = tema_fail(err, TEMA_ENOMEM, "out of memory or no /proc/self/exe");
        goto done;
    }
    j.self_on_path = !o->tema && tema_on_path_is(j.self);
    if ((st = slurm_text(&j, &text, err)) != TEMA_OK) goto done;
    if ((st = tema_mkdirs(j.dir, err)) != TEMA_OK) goto done;
    if ((st = tema_gridi_prepare_synthetic(g, abs_results, err)) != TEMA_OK) goto done;
    st = tema_write_file_atomic(j.path, text, strlen(text), err);
    if (st == TEMA_OK) chmod(j.path, 0755);
    if (st == TEMA_OK && !(out->path = strdup(j.path))) st = tema_fail(err, TEMA_ENOMEM, "out of memory");
done:
    free(text);
    free(abs_results);
    free(j.self);
    tema_sb_free(&j.array);
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

