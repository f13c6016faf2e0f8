/* tests/test_synth.c - the seeded synthetic dataset: determinism, layout, sizes, and
 * that it loads back through the normal reader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataset.h"
#include "testutil.h"
#include "util.h"

static const char *const FILES[] = {"Alist.txt", "Blist.txt", "userlist.txt", "items.tsv",
                                    "traindata_new.txt", "validdata_new.txt", "testdata_new.txt"};
enum { N_FILES = sizeof FILES / sizeof FILES[0] };

static char *slurp(const char *dir, const char *name, size_t *len)
{
    char p[4096], *data = NULL;
    size_t n = 0;
    tema_err err = {0};
    snprintf(p, sizeof p, "%s/%s", dir, name);
    ck_assert_msg(tema_read_file(p, &data, &n, &err) == TEMA_OK, "%s", err.msg);
    if (len) *len = n;
    return data;
}

static char *synth(const tema_synth_opts *o)
{
    char *dir = strdup(tu_tmpdir());
    char out[4096];
    snprintf(out, sizeof out, "%s/data", dir); /* a folder that does not exist yet */
    free(dir);
    tema_err err = {0};
    ck_assert_msg(tema_synth_write(o, out, &err) == TEMA_OK, "%s", err.msg);
    return strdup(out);
}

static tema_synth_opts small_opts(uint64_t seed)
{
    tema_synth_opts o;
    tema_synth_defaults(&o);
    o.seed = seed;
    o.n_users = 400;
    o.n_x = 150;
    o.n_y = 170;
    o.n_categories = 12;
    return o;
}

START_TEST(t_defaults)
{
    tema_synth_opts o;
    memset(&o, 0xff, sizeof o);
    tema_synth_defaults(&o);
    ck_assert_uint_eq(o.seed, 42);
    ck_assert_int_eq(o.n_users, 3000);
    ck_assert_int_eq(o.n_x, 1000);
    ck_assert_int_eq(o.n_y, 1200);
    ck_assert_int_eq(o.n_categories, 12);
    ck_assert_int_eq(o.min_len, 5);
    ck_assert_int_eq(o.max_len, 15);
    ck_assert(o.valid_frac > 0 && o.test_frac > 0 && o.valid_frac + o.test_frac <= 1);
}
END_TEST

START_TEST(t_same_seed_same_bytes)
{
    tema_synth_opts o = small_opts(7);
    char *a = synth(&o), *b = synth(&o);
    o.seed = 8;
    char *c = synth(&o);
    int differs = 0;
    for (int i = 0; i < N_FILES; i++) {
        size_t la, lb, lc;
        char *da = slurp(a, FILES[i], &la), *db = slurp(b, FILES[i], &lb), *dc = slurp(c, FILES[i], &lc);
        ck_assert_msg(la == lb && !memcmp(da, db, la), "%s differs between two runs with seed 7", FILES[i]);
        ck_assert_uint_gt(la, 0);
        differs += la != lc || memcmp(da, dc, la) != 0;
        free(da);
        free(db);
        free(dc);
    }
    /* seed 8 changes the data files and titles; the file shapes may coincide */
    ck_assert_int_ge(differs, 4);
    free(a);
    free(b);
    free(c);
}
END_TEST

START_TEST(t_loads_back_with_asked_sizes)
{
    tema_synth_opts o = small_opts(3);
    o.min_len = 4;
    o.max_len = 9;
    o.valid_frac = 0.25;
    o.test_frac = 0.15;
    char *dir = synth(&o);
    tema_dataset *d = NULL;
    tema_err err = {0};
    ck_assert_msg(tema_dataset_load(dir, NULL, &d, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_int_eq(d->n_users, 400);
    ck_assert_int_eq(d->n_x, 150);
    ck_assert_int_eq(d->n_y, 170);
    ck_assert_int_eq(d->valid.n_lines, 100);
    ck_assert_int_eq(d->test.n_lines, 60);
    ck_assert_int_eq(d->train.n_lines, 400); /* history scheme: one line per user */
    int32_t n = d->n_x + d->n_y;
    char *seen = calloc((size_t)d->n_users, 1);
    int targets[2] = {0, 0};
    const tema_split *ev[2] = {&d->valid, &d->test};
    for (int s = 0; s < 2; s++)
        for (int64_t i = 0; i < ev[s]->n_lines; i++) {
            int32_t u = ev[s]->user[i];
            ck_assert_msg(!seen[u]++, "user %d is evaluated twice", u);
            int64_t len = ev[s]->off[i + 1] - ev[s]->off[i] + 1;
            ck_assert(len >= o.min_len && len <= o.max_len);
            int32_t t = ev[s]->target[i];
            ck_assert(t >= 0 && t < n);
            targets[t >= d->n_x]++;
            /* the target is the latest entry and never in its own history */
            for (int64_t j = ev[s]->off[i]; j < ev[s]->off[i + 1]; j++) {
                ck_assert_int_lt(ev[s]->ts[j], ev[s]->target_ts[i]);
                ck_assert_int_ne(ev[s]->items[j], t);
            }
            /* its training line is exactly the history (same user, same entries) */
            const tema_split *tr = &d->train;
            ck_assert_int_eq(tr->user[u], u);
            ck_assert_int_eq(tr->off[u + 1] - tr->off[u], len - 1);
            ck_assert(!memcmp(tr->items + tr->off[u], ev[s]->items + ev[s]->off[i], (size_t)(len - 1) * sizeof(int32_t)));
        }
    /* both domains get targets */
    ck_assert_int_gt(targets[0], 20);
    ck_assert_int_gt(targets[1], 20);
    /* train-only users keep their whole sequence, time strictly increasing */
    for (int64_t i = 0; i < d->train.n_lines; i++) {
        int64_t len = d->train.off[i + 1] - d->train.off[i];
        if (!seen[d->train.user[i]]) ck_assert(len >= o.min_len && len <= o.max_len);
        for (int64_t j = d->train.off[i] + 1; j < d->train.off[i + 1]; j++)
            ck_assert_int_lt(d->train.ts[j - 1], d->train.ts[j]);
    }
    for (int32_t i = 0; i < n; i++) {
        ck_assert_msg(d->title[i] && strlen(d->title[i]) > 5, "item %d has no title", i);
        ck_assert_int_eq(strlen(d->asin[i]), 10);
        if (i > 0) ck_assert_str_ne(d->asin[i], d->asin[i - 1]);
    }
    free(seen);
    tema_dataset_free(d);
    free(dir);
}
END_TEST

START_TEST(t_file_formats)
{
    tema_synth_opts o = small_opts(11);
    char *dir = synth(&o);
    /* the date column is ts in UTC+8, as in the C2DSR files */
    char *train = slurp(dir, "traindata_new.txt", NULL);
    char *entry = strchr(strchr(train, '\t') + 1, '\t') + 1;
    long long ts = 0;
    char date[64];
    ck_assert_int_eq(sscanf(entry, "%*d|%lld|%63[^|]|", &ts, date), 2);
    time_t shifted = (time_t)(ts + 8 * 3600);
    struct tm tm;
    gmtime_r(&shifted, &tm);
    char want[64];
    strftime(want, sizeof want, "%Y-%m-%d %H:%M:%S", &tm);
    ck_assert_str_eq(date, want);
    free(train);
    /* Blist indices are domain-local; items.tsv has the header and X/Y domains */
    char *blist = slurp(dir, "Blist.txt", NULL);
    ck_assert_msg(strstr(blist, "\t0\n") != NULL && strstr(blist, "\t169\n") != NULL, "%.200s", blist);
    free(blist);
    char *items = slurp(dir, "items.tsv", NULL);
    ck_assert(!strncmp(items, "item\tdomain\tasin\ttitle\tcategories\n0\tX\t", 38));
    ck_assert(strstr(items, "\n150\tY\t") != NULL);
    /* a category shared by both domains: tea in X, a tea kettle or the like in Y */
    ck_assert(strstr(items, "Tea\n") != NULL);
    free(items);
    char *users = slurp(dir, "userlist.txt", NULL);
    ck_assert(strstr(users, "\t0\n") == strchr(users, '\t'));
    ck_assert(strstr(users, "\t399\n") != NULL);
    free(users);
    free(dir);
}
END_TEST

/* The story promises structure a sequence model can use: a first-order transition
 * predictor trained on traindata must clearly beat popularity on the test targets. */
START_TEST(t_sequence_beats_popularity)
{
    tema_synth_opts o;
    tema_synth_defaults(&o);
    char *dir = synth(&o);
    tema_dataset *d = NULL;
    tema_err err = {0};
    ck_assert_msg(tema_dataset_load(dir, NULL, &d, &err) == TEMA_OK, "%s", err.msg);
    int32_t n = d->n_x + d->n_y;
    int *pop = calloc((size_t)n, sizeof *pop);
    int *trans = calloc((size_t)n * (size_t)n, sizeof *trans);
    const tema_split *tr = &d->train;
    for (int64_t i = 0; i < tr->n_lines; i++)
        for (int64_t j = tr->off[i]; j < tr->off[i + 1]; j++) {
            pop[tr->items[j]]++;
            if (j > tr->off[i]) trans[(size_t)tr->items[j - 1] * (size_t)n + (size_t)tr->items[j]]++;
        }
    int hit_pop = 0, hit_seq = 0;
    const tema_split *te = &d->test;
    for (int64_t i = 0; i < te->n_lines; i++) {
        int32_t t = te->target[i], last = te->items[te->off[i + 1] - 1];
        int32_t lo = t < d->n_x ? 0 : d->n_x, hi = t < d->n_x ? d->n_x : n;
        /* rank of the target among its domain's items (ties count against it) */
        int r_pop = 0, r_seq = 0;
        const int *row = trans + (size_t)last * (size_t)n;
        for (int32_t k = lo; k < hi; k++) {
            if (k == t) continue;
            r_pop += pop[k] >= pop[t];
            r_seq += row[k] > row[t] || (row[k] == row[t] && pop[k] >= pop[t]);
        }
        hit_pop += r_pop < 10;
        hit_seq += r_seq < 10;
    }
    ck_assert_msg(hit_seq > 2 * hit_pop, "HR@10: transitions %d vs popularity %d of %lld", hit_seq, hit_pop,
                  (long long)te->n_lines);
    ck_assert_int_gt(hit_pop, 0); /* popularity is informative too (Zipf) */
    free(pop);
    free(trans);
    tema_dataset_free(d);
    free(dir);
}
END_TEST

START_TEST(t_bad_options)
{
    tema_synth_opts o;
    tema_err err = {0};
    const char *dir = tu_tmpdir();
    tema_synth_defaults(&o);
    o.min_len = 1;
    ck_assert_int_eq(tema_synth_write(&o, dir, &err), TEMA_EINVAL);
    ck_assert(strstr(err.msg, "min_len") != NULL);
    tema_synth_defaults(&o);
    o.valid_frac = 0.7;
    o.test_frac = 0.5;
    ck_assert_int_eq(tema_synth_write(&o, dir, &err), TEMA_EINVAL);
    ck_assert(strstr(err.msg, "valid_frac") != NULL);
    tema_synth_defaults(&o);
    o.n_x = 1;
    ck_assert_int_eq(tema_synth_write(&o, dir, &err), TEMA_EINVAL);
}
END_TEST

START_TEST(t_cli_synth)
{
    char *base = strdup(tu_tmpdir());
    char args[4200], *out = NULL, *errout = NULL;
    snprintf(args, sizeof args, "data synth --out '%s/x' --seed 5 --users 120 --items-x 40 --items-y 50 --categories 30",
             base);
    int rc = tu_tema(args, &out, &errout);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, errout);
    /* it prints the stats of what it wrote */
    ck_assert_msg(strstr(out, "| `traindata_new.txt` | 120 | 120 |") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "| items | 40 | 50 | 90 |") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "| items with a title | 40 (100.0%) | 50 (100.0%) | 90 (100.0%) |") != NULL, "%s", out);
    free(out);
    free(errout);
    free(base);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("synth");
    TCase *tc = tcase_create("synth");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, t_defaults);
    tcase_add_test(tc, t_same_seed_same_bytes);
    tcase_add_test(tc, t_loads_back_with_asked_sizes);
    tcase_add_test(tc, t_file_formats);
    tcase_add_test(tc, t_sequence_beats_popularity);
    tcase_add_test(tc, t_bad_options);
    tcase_add_test(tc, t_cli_synth);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
