/* core/eval.c: not written yet. */
#include "tema/status.h"
