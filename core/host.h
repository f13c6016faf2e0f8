/* core/host.h - the host service table handed to every plugin (core-internal). It sits on top
 * of the core: it reaches config, the autograd, text features and the stop flag, and nothing
 * below it calls up into it; the registry receives the table when it is created. */
#ifndef TEMA_CORE_HOST_H
#define TEMA_CORE_HOST_H

#include "tema/plugin.h"

/* The process-wide table (filled on the first call; static storage). */
const tema_host *tema_host_get(void);

#endif
