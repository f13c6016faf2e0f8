/* core/losses.h - the mixture objective behind host->mixture_nll (core-internal). */
#ifndef TEMA_CORE_LOSSES_H
#define TEMA_CORE_LOSSES_H

#include "tema/plugin.h"

/* Sequence group (tema_seq_kind) of each of n streams and its log weight inside the group
 * (log w_k / sum of the group's weights); returns the bit mask of groups present. */
int tema_stream_groups(const tema_stream *streams, int n, int *group, float *logw);
/* host->mixture_nll: see tema_host in tema/plugin.h. */
tema_status tema_mixture_nll(tema_graph *g, tema_tensor *const *logp, const tema_stream *streams, int n,
                             const tema_targets *t, tema_tensor **loss, tema_err *err);

#endif
