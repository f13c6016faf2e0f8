/* core/train_state.c - the trainer's state that survives an interruption: last.state beside
 * last.bin (epochs and steps done, the running loss, the best epoch), written and read back
 * exactly (doubles in %a), with the previous one kept for a kill between the two writes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_internal.h"
#include "util.h"


/* last.state, or with prev the state of the checkpoint before (last.state.prev): last.bin and
 * last.state are two files, so a kill between their writes leaves last.bin one save behind
 * last.state, and then last.state.prev is the state that matches it. */
char *tema_train_state_path(const tema_run *run, bool prev)
{
    const char *dir = tema_results_dir(run);
    size_t n = strlen(dir) + 24;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/last.state%s", dir, prev ? ".prev" : "");
    return p;
}

/* Doubles in %a so a resumed run sees the exact same bits. */
tema_status tema_train_state_save(const tema_run *run, const train_state *s, tema_err *err)
{
    char text[1024];
    snprintf(text, sizeof text,
             "epochs_done %d\nstep_in_epoch %" PRId64 "\nglobal_step %" PRId64 "\nloss_sum %a\nepoch_seconds %a\n"
             "best_epoch %d\nbest_score %a\ntrain_seconds %a\nfinished_training %d\nstopped_early %d\n"
             "adam_step %" PRId64 "\n",
             s->epochs_done, s->step_in_epoch, s->global_step, s->loss_sum, s->epoch_seconds, s->best_epoch,
             s->best_score, s->train_seconds, (int)s->finished_training, (int)s->stopped_early, s->adam_step);
    char *path = tema_train_state_path(run, false), *prev = tema_train_state_path(run, true);
    tema_status st = TEMA_OK;
    if (!path || !prev) st = tema_fail(err, TEMA_ENOMEM, "out of memory");
    else {
        rename(path, prev); /* fails harmlessly on the first save */
        st = tema_write_file_atomic(path, text, strlen(text), err);
    }
    free(path);
    free(prev);
    return st;
}

bool tema_train_state_load(const tema_run *run, bool prev, train_state *s)
{
    char *path = tema_train_state_path(run, prev), *text = NULL;
    size_t len;
    tema_err e = {0};
    bool ok = path && tema_read_file(path, &text, &len, &e) == TEMA_OK;
    free(path);
    if (!ok) return false;
    int fin = 0, early = 0;
    int n = sscanf(text,
                   "epochs_done %d step_in_epoch %" SCNd64 " global_step %" SCNd64 " loss_sum %la epoch_seconds %la "
                   "best_epoch %d best_score %la train_seconds %la finished_training %d stopped_early %d "
                   "adam_step %" SCNd64,
                   &s->epochs_done, &s->step_in_epoch, &s->global_step, &s->loss_sum, &s->epoch_seconds,
                   &s->best_epoch, &s->best_score, &s->train_seconds, &fin, &early, &s->adam_step);
    free(text);
    s->finished_training = fin != 0;
    s->stopped_early = early != 0;
    return n == 11;
}

