/* tests/slurm_cluster.c - see slurm_cluster.h. */
#include "slurm_cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *const slc_names[SLC_N] = {"munged", "slurmctld", "slurmd"};

static struct {
    char dir[256];
    pid_t pid[SLC_N];
    pid_t starter;   /* the process that started the daemons (their parent) */
    int watch_fd;    /* write end of the watchdog's pipe; -1: none */
} S = {.watch_fd = -1};

static void nap(double s)
{
    nanosleep(&(struct timespec){(time_t)s, (long)((s - (double)(time_t)s) * 1e9)}, NULL);
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
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
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

const char *slc_missing(void)
{
    static char why[256];
    const char *progs[] = {"munged", "munge", "unmunge", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo",
                           "scancel", "scontrol"};
    for (size_t i = 0; i < sizeof progs / sizeof progs[0]; i++)
        if (sh("command -v %s >/dev/null 2>&1", progs[i]) != 0) {
            snprintf(why, sizeof why,
                     "'%s' is not installed (Debian packages slurm-wlm and munge; .ci/install-deps installs them)",
                     progs[i]);
            return why;
        }
    if (geteuid() != 0) return "needs root to start munged, slurmctld and slurmd";
    return NULL;
}

bool slc_alive(pid_t pid, const char *name)
{
    char p[64], stat[512] = "";
    snprintf(p, sizeof p, "/proc/%ld/stat", (long)pid);
    FILE *f = pid > 1 ? fopen(p, "r") : NULL;
    if (!f) return false;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    /* "PID (COMM) STATE ..." */
    char *open = strchr(stat, '('), *close = strrchr(stat, ')');
    if (!open || !close || close[1] != ' ') return false;
    size_t len = (size_t)(close - open - 1);
    return len == strlen(name) && !strncmp(open + 1, name, len) && close[2] != 'Z' && close[2] != 'X';
}

void slc_read_pids(const char *dir, pid_t pid[SLC_N])
{
    for (int i = 0; i < SLC_N; i++) pid[i] = 0;
    char p[300], name[64];
    snprintf(p, sizeof p, "%s/daemons", dir);
    FILE *f = fopen(p, "r");
    long v;
    while (f && fscanf(f, "%ld %63s", &v, name) == 2)
        for (int i = 0; i < SLC_N; i++)
            if (!strcmp(name, slc_names[i])) pid[i] = (pid_t)v;
    if (f) fclose(f);
}

/* SIGTERM, then SIGKILL after 10 s; reap: pid is this process's child. */
static void stop_pid(pid_t pid, const char *name, bool reap)
{
    if (!slc_alive(pid, name)) {
        if (reap) waitpid(pid, NULL, WNOHANG);
        return;
    }
    kill(pid, SIGTERM);
    for (int t = 0; t < 200; t++) {
        if (reap) waitpid(pid, NULL, WNOHANG);
        if (!slc_alive(pid, name)) return;
        nap(0.05);
    }
    kill(pid, SIGKILL);
    if (reap) waitpid(pid, NULL, 0);
}

/* Jobs first (slurmstepd outlives slurmd, and their tasks with it), then the daemons,
 * munged last: the others talk to it while they stop. */
static void shutdown_cluster(const char *dir, const pid_t pid[SLC_N], bool reap)
{
    if (slc_alive(pid[SLC_SLURMCTLD], "slurmctld")) {
        sh("SLURM_CONF='%s/slurm.conf' timeout 20 scancel --user=root >/dev/null 2>&1", dir);
        char left[64] = "x", cmd[512];
        snprintf(cmd, sizeof cmd, "SLURM_CONF='%s/slurm.conf' timeout 10 squeue -h -o %%i 2>/dev/null | head -1", dir);
        for (int t = 0; t < 40 && left[0]; t++) {
            sh_read(left, sizeof left, cmd);
            if (left[0]) nap(0.5);
        }
    }
    stop_pid(pid[SLC_SLURMD], "slurmd", reap);
    stop_pid(pid[SLC_SLURMCTLD], "slurmctld", reap);
    stop_pid(pid[SLC_MUNGED], "munged", reap);
    if (dir[0]) sh("rm -rf '%s'", dir);
}

/* Blocks on the pipe until every holder of its write end is gone, then cleans up. */
static void watchdog_main(int fd, const char *dir, pid_t starter)
{
    char c;
    while (read(fd, &c, 1) < 0 && errno == EINTR) {}
    pid_t pid[SLC_N];
    slc_read_pids(dir, pid);
    for (int i = 0; i < SLC_N; i++)
        if (slc_alive(pid[i], slc_names[i]))
            fprintf(stderr, "test_slurm watchdog: pid %ld is gone and left %s (pid %ld) running: stopping it\n",
                    (long)starter, slc_names[i], (long)pid[i]);
    shutdown_cluster(dir, pid, false);
}

/* A grandchild in its own session: no signal to the test's process groups reaches it, and
 * nobody needs to reap it. */
static bool watchdog_start(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return false;
    pid_t mid = fork();
    if (mid < 0) return false;
    if (mid == 0) {
        if (fork() != 0) _exit(0);
        setsid();
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        /* only the read end and stderr: an inherited pipe would keep a reader waiting */
        for (int fd = 3; fd < 1024; fd++)
            if (fd != p[0]) close(fd);
        watchdog_main(p[0], S.dir, S.starter);
        _exit(0);
    }
    waitpid(mid, NULL, 0);
    close(p[0]);
    S.watch_fd = p[1];
    return true;
}

/* Starts one daemon in the foreground, in its own session, output into log/NAME.out. */
static pid_t spawn(int which, char *const argv[])
{
    char log[400];
    snprintf(log, sizeof log, "%s/log/%s.out", S.dir, slc_names[which]);
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644), null = open("/dev/null", O_RDONLY);
        if (fd >= 0 && null >= 0) {
            dup2(null, 0);
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    if (pid > 0) {
        S.pid[which] = pid;
        char p[300];
        snprintf(p, sizeof p, "%s/daemons", S.dir);
        FILE *f = fopen(p, "a");
        if (f) {
            fprintf(f, "%ld %s\n", (long)pid, slc_names[which]);
            fclose(f);
        }
    }
    return pid;
}

/* A TCP port nobody listens on right now; -1 when none could be had. */
static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    int port = s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
                       getsockname(s, (struct sockaddr *)&a, &n) == 0
                   ? ntohs(a.sin_port)
                   : -1;
    if (s >= 0) close(s);
    return port;
}

static bool start_munge(char *why, size_t cap)
{
    const char *d = S.dir;
    if (sh("mkdir -p '%s/munge' '%s/log' '%s/state' '%s/spool' && chmod 700 '%s/munge' && "
           "dd if=/dev/urandom of='%s/munge/munge.key' bs=1024 count=1 2>/dev/null && chmod 400 '%s/munge/munge.key'",
           d, d, d, d, d, d, d) != 0)
        return snprintf(why, cap, "cannot make the munge key in %s", d), false;
    char sock[300], key[300], pidf[300], logf[300], seed[300];
    snprintf(sock, sizeof sock, "--socket=%s/munge/sock", d);
    snprintf(key, sizeof key, "--key-file=%s/munge/munge.key", d);
    snprintf(pidf, sizeof pidf, "--pid-file=%s/munge/munged.pid", d);
    snprintf(logf, sizeof logf, "--log-file=%s/munge/munged.log", d);
    snprintf(seed, sizeof seed, "--seed-file=%s/munge/seed", d);
    char *argv[] = {"munged", "--foreground", "--force", sock, key, pidf, logf, seed, NULL};
    if (spawn(SLC_MUNGED, argv) <= 0) return snprintf(why, cap, "cannot start munged"), false;
    for (int t = 0; t < 50; t++) {
        if (sh("munge -S '%s/munge/sock' -n 2>/dev/null | unmunge -S '%s/munge/sock' 2>/dev/null | grep -q Success", d,
               d) == 0)
            return true;
        nap(0.1);
    }
    return snprintf(why, cap, "munge does not work; see %s/munge/munged.log", d), false;
}

/* slurm.conf as in ../shared/notes/slurm-single-node.md */
static bool write_conf(char *why, size_t cap)
{
    char host[128], mem[32], conf[300];
    sh_read(host, sizeof host, "hostname -s");
    sh_read(mem, sizeof mem, "awk '/MemTotal/ {print int($2/1024) - 1024}' /proc/meminfo");
    int port1 = free_port(), port2 = free_port();
    if (port1 < 0 || port2 < 0 || !host[0] || !mem[0]) return snprintf(why, cap, "no free port, host name or memory size"), false;
    const char *d = S.dir;
    snprintf(conf, sizeof conf, "%s/slurm.conf", d);
    FILE *f = fopen(conf, "w");
    if (!f) return snprintf(why, cap, "cannot write %s", conf), false;
    fprintf(f,
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
            host, port1, port2, d, d, d, d, d, d, d, host, sysconf(_SC_NPROCESSORS_ONLN), mem, host);
    fclose(f);
    setenv("SLURM_CONF", conf, 1);
    return true;
}

static bool start_slurm(char *why, size_t cap)
{
    char conf[300];
    snprintf(conf, sizeof conf, "%s/slurm.conf", S.dir);
    char *ctld[] = {"slurmctld", "-D", "-f", conf, NULL}, *d[] = {"slurmd", "-D", "-f", conf, NULL};
    if (spawn(SLC_SLURMCTLD, ctld) <= 0 || spawn(SLC_SLURMD, d) <= 0)
        return snprintf(why, cap, "cannot start slurmctld or slurmd"), false;
    char state[64] = "";
    for (int t = 0; t < 120 && strcmp(state, "idle"); t++) {
        nap(0.5);
        sh_read(state, sizeof state, "sinfo -h -o %t 2>/dev/null");
    }
    if (strcmp(state, "idle") != 0)
        return snprintf(why, cap, "the node is '%s', not idle, after 60 s; see %s/log", state, S.dir), false;
    return true;
}

bool slc_start(char *why, size_t cap)
{
    snprintf(S.dir, sizeof S.dir, "/tmp/tema-slurm-XXXXXX");
    if (!mkdtemp(S.dir)) {
        S.dir[0] = '\0';
        return snprintf(why, cap, "mkdtemp: %s", strerror(errno)), false;
    }
    chmod(S.dir, 0755);
    S.starter = getpid();
    /* before any daemon: from here on nothing outlives this process */
    if (!watchdog_start()) {
        sh("rm -rf '%s'", S.dir);
        S.dir[0] = '\0';
        return snprintf(why, cap, "cannot start the watchdog: %s", strerror(errno)), false;
    }
    if (start_munge(why, cap) && write_conf(why, cap) && start_slurm(why, cap)) return true;
    /* what the log says goes with the error before the folder goes */
    char tail[600];
    snprintf(tail, sizeof tail, "tail -n 20 '%s'/log/* '%s'/munge/munged.log >&2 2>/dev/null", S.dir, S.dir);
    if (system(tail) != 0) { /* best effort */ }
    slc_stop();
    return false;
}

void slc_stop(void)
{
    if (!S.dir[0] || getpid() != S.starter) return;
    shutdown_cluster(S.dir, S.pid, true);
    S.dir[0] = '\0';
    for (int i = 0; i < SLC_N; i++) S.pid[i] = 0;
    if (S.watch_fd >= 0) close(S.watch_fd);
    S.watch_fd = -1;
    unsetenv("SLURM_CONF");
}

const char *slc_dir(void) { return S.dir; }

void slc_forked(void)
{
    if (S.watch_fd >= 0 && getpid() != S.starter) {
        close(S.watch_fd);
        S.watch_fd = -1;
    }
}
