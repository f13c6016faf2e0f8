/* core/stop.c - the one stop flag of the process (see stop.h). Before it, training, the grid
 * runner and the openai tagger each installed their own handlers and kept their own flag,
 * and a feature encoder could not be stopped at all. */
#include "stop.h"

#include <signal.h>
#include <stddef.h>

static volatile sig_atomic_t g_stop_signal = 0;
static int g_listeners = 0;
static struct sigaction g_old_int, g_old_term;

static void on_stop_signal(int sig) { g_stop_signal = sig; }

void tema_stop_listen(void)
{
    if (g_listeners++ > 0) return;
    g_stop_signal = 0;
    struct sigaction sa;
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocking waitpid or poll returns, so the flag is seen */
    sigaction(SIGINT, &sa, &g_old_int);
    sigaction(SIGTERM, &sa, &g_old_term);
}

void tema_stop_unlisten(void)
{
    if (g_listeners == 0 || --g_listeners > 0) return;
    sigaction(SIGINT, &g_old_int, NULL);
    sigaction(SIGTERM, &g_old_term, NULL);
}

int tema_stop_signal(void) { return (int)g_stop_signal; }

int tema_stop_pending(void) { return g_listeners > 0 ? (int)g_stop_signal : 0; }

void tema_stop_request(int sig) { g_stop_signal = sig > 0 ? sig : SIGTERM; }

const char *tema_stop_reason(int sig)
{
    return sig == SIGTERM ? "terminated (SIGTERM)" : "interrupted (SIGINT)";
}
