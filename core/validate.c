/* core/validate.c: not written yet. */
#include "tema/status.h"
