/* tests/test_optim.c - what the optimizer does with the rows a step's gradient reached: zero_grad
 * clears exactly what the autograd wrote (also when it wrote only some rows of a table), and
 * lazy Adam (train.optimizer: lazy_adam) updates only those rows while plain Adam moves every
 * row; AdamW (train.optimizer: adamw) decays apart from the gradient. CPU backend, 1 thread. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "gradcheck.h"
#include "testutil.h"

enum { ROWS = 1000, DIM = 8 };

typedef struct model {
    tema_params *p;
    tema_tensor *table, *w; /* [ROWS, DIM] read by rows; [DIM, DIM] read whole */
} model;

static model model_new(uint64_t seed)
{
    model m = {.p = tema_params_new(seed)};
    m.table = nn->param(m.p, "items", 2, (int64_t[]){ROWS, DIM}, TEMA_INIT_NORMAL, 0.5f, 0);
    m.w = nn->param(m.p, "w", 2, (int64_t[]){DIM, DIM}, TEMA_INIT_XAVIER, 1.0f, 0);
    tema_err err = {0};
    ck_assert_int_eq(tema_params_finalize(m.p, &err), TEMA_OK);
    return m;
}

/* One step as the trainer takes it: forward, zero_grad, backward (and Adam when opt). The loss
 * reads the table at ids (embedding) and at targets (rowdot, as the sampled softmax does). */
static void step(model *m, const int32_t *ids, int n, const int32_t *targets, tema_adam *opt)
{
    tema_graph *g = tema_graph_new(1);
    tema_graph_reset(g, true, 1);
    tema_tensor *h = nn->matmul(g, nn->embedding(g, m->table, ids, n), false, m->w, false);
    tema_tensor *loss = nn->sum(g, nn->rowdot(g, nn->tanh(g, h), m->table, targets, 1.0f));
    ck_assert_ptr_nonnull(loss);
    tema_params_zero_grad(m->p);
    tema_err err = {0};
    ck_assert_int_eq(tema_graph_backward(g, loss, &err), TEMA_OK);
    if (opt) tema_adam_step(m->p, opt);
    tema_graph_free(g);
}

static bool row_is_zero(const float *x, int64_t r)
{
    for (int64_t j = 0; j < DIM; j++)
        if (x[r * DIM + j] != 0.0f) return false;
    return true;
}

START_TEST(zero_grad_clears_what_a_step_wrote_by_rows)
{
    model m = model_new(3);
    const int32_t ids1[4] = {5, 17, 5, -1}, tg1[4] = {999, 5, 40, -1};
    step(&m, ids1, 4, tg1, NULL);
    const int32_t hit1[4] = {5, 17, 40, 999};
    for (int i = 0; i < 4; i++) ck_assert_msg(!row_is_zero(m.table->grad, hit1[i]), "row %d got no gradient", hit1[i]);
    int64_t written = 0;
    for (int64_t r = 0; r < ROWS; r++) written += !row_is_zero(m.table->grad, r);
    ck_assert_int_eq(written, 4);
    /* the next step reads other rows: nothing of the first may remain */
    const int32_t ids2[2] = {3, 3}, tg2[2] = {8, 3};
    step(&m, ids2, 2, tg2, NULL);
    for (int64_t r = 0; r < ROWS; r++)
        ck_assert_msg(row_is_zero(m.table->grad, r) == !(r == 3 || r == 8), "row %lld after the second step",
                      (long long)r);
    tema_params_zero_grad(m.p);
    for (int64_t i = 0; i < ROWS * DIM; i++) ck_assert_msg(m.table->grad[i] == 0.0f, "element %lld", (long long)i);
    for (int64_t i = 0; i < DIM * DIM; i++) ck_assert(m.w->grad[i] == 0.0f);
    /* a gradient written by hand (not through the autograd) is cleared too */
    m.table->grad[123 * DIM] = 1.0f;
    tema_params_zero_grad(m.p);
    ck_assert(m.table->grad[123 * DIM] == 0.0f);
    tema_params_free(m.p);
}
END_TEST

START_TEST(lazy_adam_moves_only_the_rows_a_step_read)
{
    model plain = model_new(9), lazy = model_new(9);
    tema_adam o_plain = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-8f, .weight_decay = 0.01f};
    tema_adam o_lazy = o_plain;
    o_lazy.lazy = true;
    float *before = malloc(sizeof(float) * ROWS * DIM), *after1 = malloc(sizeof(float) * ROWS * DIM);
    memcpy(before, lazy.table->data, sizeof(float) * ROWS * DIM);
    const int32_t ids1[3] = {5, 17, 5}, tg1[3] = {17, 5, 40};
    step(&plain, ids1, 3, tg1, &o_plain);
    step(&lazy, ids1, 3, tg1, &o_lazy);
    /* the rows read: exactly plain Adam's; the dense weight too; every other row as it was */
    for (int64_t r = 0; r < ROWS; r++) {
        const bool read = r == 5 || r == 17 || r == 40;
        for (int64_t j = 0; j < DIM; j++) {
            const int64_t i = r * DIM + j;
            if (read) ck_assert_msg(lazy.table->data[i] == plain.table->data[i], "read row %lld", (long long)r);
            else ck_assert_msg(lazy.table->data[i] == before[i], "unread row %lld moved", (long long)r);
        }
    }
    for (int64_t i = 0; i < DIM * DIM; i++) ck_assert(lazy.w->data[i] == plain.w->data[i]);
    /* plain Adam moved the unread rows (weight decay); a second step without row 40 moves it on
     * (momentum) in plain Adam and not at all in lazy Adam */
    ck_assert(plain.table->data[700 * DIM] != before[700 * DIM]);
    memcpy(after1, lazy.table->data, sizeof(float) * ROWS * DIM);
    const float plain40 = plain.table->data[40 * DIM];
    const int32_t ids2[2] = {5, 6}, tg2[2] = {6, 5};
    step(&plain, ids2, 2, tg2, &o_plain);
    step(&lazy, ids2, 2, tg2, &o_lazy);
    ck_assert(plain.table->data[40 * DIM] != plain40);
    for (int64_t j = 0; j < DIM; j++) {
        ck_assert(lazy.table->data[40 * DIM + j] == after1[40 * DIM + j]);
        ck_assert(lazy.table->data[17 * DIM + j] == after1[17 * DIM + j]);
        ck_assert(lazy.table->data[5 * DIM + j] != after1[5 * DIM + j]);
    }
    free(before);
    free(after1);
    tema_params_free(plain.p);
    tema_params_free(lazy.p);
}
END_TEST

/* AdamW against the L2 form on a row no step reads: its gradient is 0, so under torch's Adam the
 * whole update is the decay term, which Adam normalises to a step of about lr; AdamW scales the
 * row by 1 - lr * wd and leaves its moments at 0. Rows that were read get the same Adam step of
 * their gradient under AdamW as under Adam without decay, after the scaling. */
START_TEST(adamw_decays_by_the_factor_not_by_lr)
{
    model l2 = model_new(11), dec = model_new(11), none = model_new(11);
    const float lr = 0.01f, wd = 0.01f;
    tema_adam o_l2 = {.lr = lr, .beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-8f, .weight_decay = wd};
    tema_adam o_dec = o_l2, o_none = o_l2;
    o_dec.decoupled = true;
    o_none.weight_decay = 0.0f;
    float before[ROWS * DIM];
    memcpy(before, dec.table->data, sizeof before);
    const int32_t ids[3] = {5, 17, 5}, tg[3] = {17, 40, 5};
    step(&l2, ids, 3, tg, &o_l2);
    step(&dec, ids, 3, tg, &o_dec);
    step(&none, ids, 3, tg, &o_none);
    for (int64_t j = 0; j < DIM; j++) {
        const int64_t i = 700 * DIM + j; /* never read */
        if (before[i] == 0.0f) continue;
        ck_assert_float_eq_tol(dec.table->data[i], before[i] * (1.0f - lr * wd), 1e-7f);
        ck_assert_float_eq_tol(fabsf(l2.table->data[i] - before[i]), lr, 1e-5f);
        const int64_t r = 5 * DIM + j; /* read: decay, then the same Adam step as without decay */
        ck_assert_float_eq_tol(dec.table->data[r], none.table->data[r] - lr * wd * before[r], 1e-6f);
    }
    tema_params_free(l2.p);
    tema_params_free(dec.p);
    tema_params_free(none.p);
}
END_TEST

/* A backend built before ops version 6 (no adam_rows / zero_rows): zero_grad clears whole
 * tensors as it did, and Adam, asked to be lazy, updates every row (the trainer refuses
 * train.optimizer: lazy_adam on such a backend before training starts). */
START_TEST(a_backend_without_the_row_kernels_gets_whole_sweeps)
{
    const tema_backend_ops *cur = tema_engine_backend();
    tema_backend_ops old = *cur;
    old.struct_size = (uint32_t)offsetof(tema_backend_ops, adam_rows);
    old.version = 5;
    tema_engine_set_backend(&old, cpu_self);
    model m = model_new(4);
    tema_adam opt = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-8f, .weight_decay = 0.01f, .lazy = true};
    const float before = m.table->data[700 * DIM];
    const int32_t ids[2] = {5, 17}, tg[2] = {17, 5};
    step(&m, ids, 2, tg, &opt);
    ck_assert(m.table->data[700 * DIM] != before); /* not lazy: weight decay moved an unread row */
    tema_params_zero_grad(m.p);
    for (int64_t i = 0; i < ROWS * DIM; i++) ck_assert(m.table->grad[i] == 0.0f);
    tema_params_free(m.p);
    tema_engine_set_backend(cur, cpu_self);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("rows");
    tcase_add_checked_fixture(tc, gradcheck_setup, gradcheck_teardown);
    tcase_add_test(tc, zero_grad_clears_what_a_step_wrote_by_rows);
    tcase_add_test(tc, lazy_adam_moves_only_the_rows_a_step_read);
    tcase_add_test(tc, a_backend_without_the_row_kernels_gets_whole_sweeps);
    tcase_add_test(tc, adamw_decays_by_the_factor_not_by_lr);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
