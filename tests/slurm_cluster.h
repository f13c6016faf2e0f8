/* tests/slurm_cluster.h - a real single-node Slurm cluster for tests/test_slurm.c: Debian's
 * munged, slurmctld and slurmd, run as root from one folder (key, socket, slurm.conf,
 * state, spool and logs; ../shared/notes/slurm-single-node.md).
 *
 * The daemons run in the foreground as children of the process that starts them (each in
 * its own session, so a signal to the test's process group never stops them out of
 * order), and are stopped by their pids: by slc_stop, and by a watchdog process (its own
 * session too) that wakes when the starting process is gone however it went (an exit, a
 * failed assertion, SIGINT, SIGTERM, SIGKILL), cancels the jobs, stops the daemons and
 * removes the folder. */
#ifndef TEMA_TEST_SLURM_CLUSTER_H
#define TEMA_TEST_SLURM_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum { SLC_MUNGED, SLC_SLURMCTLD, SLC_SLURMD, SLC_N };
extern const char *const slc_names[SLC_N];

/* Why no cluster can run here (not root, a program not installed), or NULL. */
const char *slc_missing(void);

/* Starts the cluster in a new temporary folder and waits until its node is idle; sets
 * SLURM_CONF for this process and its children. false: *why says what failed (what was
 * started is stopped again). No Check assertions: it runs in Check's runner process. */
bool slc_start(char *why, size_t cap);

/* Cancels the jobs, stops the daemons (slurmd, slurmctld, munged) by their pids, waits for
 * them and removes the folder; the watchdog then finds nothing to do. Safe to call twice. */
void slc_stop(void);

/* The cluster's folder ("" when none). Its file `daemons` has a line "PID NAME" per daemon. */
const char *slc_dir(void);

/* For a forked test (Check's children): lets go of the watchdog's pipe, so that it wakes
 * when the runner goes, not when the last test does. */
void slc_forked(void);

/* The pids in DIR/daemons (0 where a daemon was not started). */
void slc_read_pids(const char *dir, pid_t pid[SLC_N]);

/* Whether pid is a live process named `name` (neither gone, nor a zombie, nor reused). */
bool slc_alive(pid_t pid, const char *name);

#endif
