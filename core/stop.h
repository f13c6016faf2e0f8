/* core/stop.h - the one "please stop" flag of the process (SIGINT / SIGTERM).
 *
 * Long operations (training, a grid's runner, tagging, text features) run inside
 * tema_stop_listen() ... tema_stop_unlisten(); while at least one listens, SIGINT and SIGTERM
 * only set the flag, and every layer polls it (plugins through host->interrupted) and winds
 * down, saving its state. Outside any listener the signals keep their previous handlers, so
 * Ctrl-C stops `tema report` or `tema check` at once. Listeners nest (tagging and text
 * features inside a run): the outermost listen clears the flag, and it stays set after an
 * inner layer stopped, so every layer above sees the stop too. Not thread-safe to (un)listen;
 * reading the flag from any thread is. */
#ifndef TEMA_CORE_STOP_H
#define TEMA_CORE_STOP_H

void tema_stop_listen(void);
void tema_stop_unlisten(void);
/* 0, or the signal that asked for the stop (SIGINT, SIGTERM); still set after the last
 * listener left, so the caller can say what stopped it. */
int tema_stop_signal(void);
/* The same while someone listens, else 0 (a stale stop must not stop the next call): what
 * host->interrupted answers. */
int tema_stop_pending(void);
/* Ask for a stop as if that signal came (a runner whose child failed badly; tests). */
void tema_stop_request(int sig);
/* "interrupted (SIGINT)" / "terminated (SIGTERM)" for sig; static storage. */
const char *tema_stop_reason(int sig);

#endif
