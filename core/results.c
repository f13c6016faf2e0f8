/* core/results.c: not written yet. */
#include "tema/status.h"
