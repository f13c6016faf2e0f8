/* A real single-node Slurm cluster (Debian's munge, slurmctld and slurmd, configured in a
 * temporary folder, as root): `tema slurm --submit` sends a small grid as a job array, the
 * test waits for it (bounded), checks every run's results and stops the daemons.
 * Skips, saying why, only when the packages are not installed or it is not root. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "grid.h"
#include "host.h"
#include "registry.h"
#include "testutil.h"

static const char *const daemons[] = {"munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "munge"};

static bool on_path(const char *prog)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1 || test -x /usr/sbin/%s", prog, prog);
    return system(cmd) == 0;
}

/* A TCP port nobody listens on right now. */
static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(s, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t n = sizeof a;
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &n), 0);
    close(s);
    return ntohs(a.sin_port);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return st == -1 ? -1 : WEXITSTATUS(st);
}

/* First line of a command's output (trimmed) into out. */
static void sh_read(char *out, size_t cap, const char *cmd)
{
    out[0] = '\0';
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (!fgets(out, (int)cap, p)) out[0] = '\0';
    pclose(p);
    out[strcspn(out, "\n")] = '\0';
}

static char g_dir[256];

/* Stop the daemons by their pid files (munged last) and wait until they are gone. */
static void stop_daemons(void)
{
    const char *pids[] = {"slurmd.pid", "slurmctld.pid", "munge/munged.pid"};
    for (int i = 0; i < 3; i++) {
        char p[512], text[32] = "";
        snprintf(p, sizeof p, "%s/%s", g_dir, pids[i]);
        FILE *f = fopen(p, "r");
        if (!f) continue;
        if (fgets(text, sizeof text, f)) {
            pid_t pid = (pid_t)atol(text);
            if (pid > 1 && kill(pid, SIGTERM) == 0)
                for (int t = 0; t < 100 && kill(pid, 0) == 0; t++) usleep(50000);
        }
        fclose(f);
    }
}

START_TEST(t_grid_runs_as_a_slurm_job_array)
{
    for (size_t i = 0; i < sizeof daemons / sizeof daemons[0]; i++)
        if (!on_path(daemons[i])) {
            tu_skip(__func__, "'%s' is not installed (Debian packages slurm-wlm and munge; .ci/install-deps installs them)",
                    daemons[i]);
            return;
        }
    if (geteuid() != 0) {
        tu_skip(__func__, "needs root to start munged, slurmctld and slurmd");
        return;
    }
    double t_start = (double)time(NULL);
    snprintf(g_dir, sizeof g_dir, "%s", tu_tmpdir());
    const char *d = g_dir;
    ck_assert_int_eq(chmod(d, 0755), 0);

    /* munge: our own key, socket, pid and log in the folder */
    ck_assert_int_eq(sh("mkdir -p '%s/munge' && chmod 700 '%s/munge' && "
                        "dd if=/dev/urandom of='%s/munge/munge.key' bs=1024 count=1 2>/dev/null && "
                        "chmod 400 '%s/munge/munge.key'", d, d, d, d), 0);
    ck_assert_int_eq(sh("munged --force --socket='%s/munge/sock' --key-file='%s/munge/munge.key' "
                        "--pid-file='%s/munge/munged.pid' --log-file='%s/munge/munged.log' --seed-file='%s/munge/seed'",
                        d, d, d, d, d), 0);
    /* whatever happens to this process, the daemons go when it does */
    ck_assert_int_eq(sh("(while kill -0 %ld 2>/dev/null; do sleep 1; done; "
                        "for f in slurmd.pid slurmctld.pid munge/munged.pid; do "
                        "[ -f '%s'/$f ] && kill $(cat '%s'/$f) 2>/dev/null; done) >/dev/null 2>&1 &",
                        (long)getpid(), d, d), 0);
    ck_assert_msg(sh("munge -S '%s/munge/sock' -n | unmunge -S '%s/munge/sock' | grep -q Success", d, d) == 0,
                  "munge does not work; see %s/munge/munged.log", d);

    /* slurm.conf as in ../shared/notes/slurm-single-node.md */
    char host[128], conf[512], mem[32];
    sh_read(host, sizeof host, "hostname -s");
    sh_read(mem, sizeof mem, "awk '/MemTotal/ {print int($2/1024) - 1024}' /proc/meminfo");
    long n_cpus = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(conf, sizeof conf, "%s/slurm.conf", d);
    ck_assert_int_eq(sh("mkdir -p '%s/state' '%s/spool' '%s/log'", d, d, d), 0);
    char text[4096];
    snprintf(text, sizeof text,
             "ClusterName=tematest\nSlurmctldHost=%s\nSlurmctldPort=%d\nSlurmdPort=%d\n"
             "SlurmUser=root\nSlurmdUser=root\nAuthType=auth/munge\nAuthInfo=socket=%s/munge/sock\n"
             "CredType=cred/munge\nProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
             "JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n"
             "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nReturnToService=2\nMpiDefault=none\n"
             "StateSaveLocation=%s/state\nSlurmdSpoolDir=%s/spool\n"
             "SlurmctldPidFile=%s/slurmctld.pid\nSlurmdPidFile=%s/slurmd.pid\n"
             "SlurmctldLogFile=%s/log/slurmctld.log\nSlurmdLogFile=%s/log/slurmd.log\n"
             "NodeName=%s CPUs=%ld RealMemory=%s State=UNKNOWN\n"
             "PartitionName=debug Nodes=%s Default=YES MaxTime=INFINITE State=UP\n",
             host, free_port(), free_port(), d, d, d, d, d, d, d, host, n_cpus, mem, host);
    tu_write(conf, text);
    setenv("SLURM_CONF", conf, 1);
    ck_assert_int_eq(sh("slurmctld -f '%s'", conf), 0);
    ck_assert_int_eq(sh("slurmd -f '%s'", conf), 0);
    char state[64] = "";
    for (int t = 0; t < 60 && strcmp(state, "idle"); t++) {
        sleep(1);
        sh_read(state, sizeof state, "sinfo -h -o %t 2>/dev/null");
    }
    ck_assert_msg(!strcmp(state, "idle"), "the node is '%s', not idle, after 60 s; see %s/log", state, d);
    double t_cluster = (double)time(NULL);

    /* a small grid: 2 learning rates x 2 seeds, a few seconds each */
    char args[2048], *out, *err, path[512], results[512];
    snprintf(args, sizeof args, "data synth --out '%s/data' --users 80 --items-x 50 --items-y 60 --seed 4", d);
    ck_assert_int_eq(tu_tema(args, &out, &err), 0);
    free(out);
    free(err);
    snprintf(path, sizeof path, "%s/exp.yaml", d);
    snprintf(results, sizeof results, "%s/results", d);
    snprintf(text, sizeof text,
             "name: on-slurm\n"
             "dataset: {path: '%s/data', max_len: 8}\n"
             "backend: {plugin: cpu, threads: 1}\n"
             "model: {encoders: [{plugin: id, dim: 8}], attention: {plugin: single, blocks: 1, heads: 1}}\n"
             "train: {epochs: 2, batch_size: 32, eval_every: 1, patience: 0}\n"
             "eval: {negatives: 20}\n"
             "grid:\n"
             "  train.lr: [1e-3, 1e-2]\n"
             "  seeds: [1, 2]\n",
             d);
    tu_write(path, text);
    snprintf(args, sizeof args, "slurm '%s' --results '%s' --max-parallel 2 --time 00:05:00 --submit", path, results);
    int rc = tu_tema(args, &out, &err);
    ck_assert_msg(rc == 0, "tema slurm --submit failed (%d):\n%s%s", rc, out, err);
    char *sub = strstr(out, "submitted job ");
    ck_assert_msg(sub != NULL, "%s", out);
    long job = atol(sub + strlen("submitted job "));
    ck_assert_int_gt(job, 0);
    free(out);
    free(err);

    /* wait for the array: 180 s at most */
    char queued[64] = "x", cmd[256];
    snprintf(cmd, sizeof cmd, "squeue -h -j %ld -o %%i 2>/dev/null | head -1", job);
    for (int t = 0; t < 360 && queued[0]; t++) {
        usleep(500000);
        sh_read(queued, sizeof queued, cmd);
    }
    ck_assert_msg(!queued[0], "job %ld still queued after 180 s; see %s/log and %s/on-slurm/slurm", job, d, results);
    double t_jobs = (double)time(NULL);

    /* every run finished, in the results folder, with one Slurm log per task */
    tema_registry *r = tema_registry_new(tema_host_get());
    tema_registry_scan(r);
    tema_grid *g = NULL;
    tema_err e = {0};
    ck_assert_int_eq(tema_grid_expand(path, NULL, 0, r, results, NULL, &g, &e), TEMA_OK);
    ck_assert_uint_eq(g->n_runs, 4);
    for (size_t i = 0; i < g->n_runs; i++) {
        char note[256], log[600];
        tema_grid_state s = tema_grid_run_state(&g->runs[i], note, sizeof note);
        snprintf(log, sizeof log, "%s/on-slurm/slurm/%ld_%zu.out", results, job, i);
        char *task_log = NULL;
        FILE *f = fopen(log, "r");
        if (f) {
            task_log = calloc(1, 8192);
            if (fread(task_log, 1, 8191, f) == 0) task_log[0] = '\0';
            fclose(f);
        }
        ck_assert_msg(s == TEMA_GRID_DONE, "run %zu is %s (%s); its task log %s:\n%s", i, tema_grid_state_name(s), note,
                      log, task_log ? task_log : "(missing)");
        ck_assert_msg(task_log && strstr(task_log, g->runs[i].id), "task %zu ran another entry:\n%s", i,
                      task_log ? task_log : "(missing)");
        free(task_log);
        ck_assert(tu_exists(g->runs[i].dir, "final.json"));
        ck_assert(tu_exists(g->runs[i].dir, "ranks.tsv"));
    }
    tema_grid_free(g);
    tema_registry_free(r);
    snprintf(args, sizeof args, "status '%s' --results '%s'", path, results);
    ck_assert_int_eq(tu_tema(args, &out, &err), 0);
    ck_assert_msg(strstr(out, "total 4: 4 done, 0 running, 0 failed, 0 pending"), "%s", out);
    free(out);
    free(err);

    stop_daemons();
    fprintf(stderr, "slurm: cluster up in %.0f s, job array of 4 runs done in %.0f s, %.0f s in all\n",
            t_cluster - t_start, t_jobs - t_cluster, (double)time(NULL) - t_start);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("slurm");
    TCase *tc = tcase_create("slurm");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, t_grid_runs_as_a_slurm_job_array);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
