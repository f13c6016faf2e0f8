/* tests/test_dataset.c - the C2DSR layout from folders and archives, located errors,
 * stable-sort targets, and `tema data stats` against the bundle READMEs. */
#include <archive.h>
#include <archive_entry.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset.h"
#include "testutil.h"
#include "util.h"

static const char *const TOY_FILES[] = {"Alist.txt", "Blist.txt", "userlist.txt", "items.tsv",
                                        "traindata_new.txt", "validdata_new.txt", "testdata_new.txt"};
enum { N_TOY_FILES = sizeof TOY_FILES / sizeof TOY_FILES[0] };

static char *slurp(const char *path, size_t *len)
{
    char *data = NULL;
    size_t n = 0;
    tema_err err = {0};
    ck_assert_msg(tema_read_file(path, &data, &n, &err) == TEMA_OK, "%s", err.msg);
    if (len) *len = n;
    return data;
}

static char *tmpdir_copy(void)
{
    char *d = strdup(tu_tmpdir());
    ck_assert_ptr_nonnull(d);
    return d;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    tu_write(p, text);
}

static tema_dataset *load_ok(const char *path)
{
    tema_dataset *d = NULL;
    tema_err err = {0};
    ck_assert_msg(tema_dataset_load(path, NULL, &d, &err) == TEMA_OK, "%s: %s", path, err.msg);
    ck_assert_ptr_nonnull(d);
    return d;
}

/* Loading must fail with code and a message that contains every NULL-terminated needle. */
static void load_fails(const char *path, tema_status code, ...)
{
    tema_dataset *d = (tema_dataset *)0x1;
    tema_err err = {0};
    tema_status st = tema_dataset_load(path, NULL, &d, &err);
    ck_assert_msg(st == code, "%s: expected status %d, got %d (%s)", path, code, st, err.msg);
    ck_assert_ptr_null(d);
    va_list ap;
    va_start(ap, code);
    for (const char *needle; (needle = va_arg(ap, const char *));)
        ck_assert_msg(strstr(err.msg, needle), "message lacks '%s': %s", needle, err.msg);
    va_end(ap);
}

static void split_equal(const tema_split *a, const tema_split *b)
{
    ck_assert_int_eq(a->n_lines, b->n_lines);
    ck_assert_str_eq(a->file, b->file);
    int64_t n = a->off[a->n_lines];
    ck_assert_int_eq(n, b->off[b->n_lines]);
    ck_assert(!memcmp(a->off, b->off, (size_t)(a->n_lines + 1) * sizeof *a->off));
    ck_assert(!memcmp(a->items, b->items, (size_t)n * sizeof *a->items));
    ck_assert(!memcmp(a->ts, b->ts, (size_t)n * sizeof *a->ts));
    ck_assert(!memcmp(a->user, b->user, (size_t)a->n_lines * sizeof *a->user));
    ck_assert((a->target == NULL) == (b->target == NULL));
    if (a->target) {
        ck_assert(!memcmp(a->target, b->target, (size_t)a->n_lines * sizeof *a->target));
        ck_assert(!memcmp(a->target_ts, b->target_ts, (size_t)a->n_lines * sizeof *a->target_ts));
    }
}

static void dataset_equal(const tema_dataset *a, const tema_dataset *b)
{
    ck_assert_int_eq(a->n_x, b->n_x);
    ck_assert_int_eq(a->n_y, b->n_y);
    ck_assert_int_eq(a->n_users, b->n_users);
    for (int32_t i = 0; i < a->n_x + a->n_y; i++) {
        ck_assert_str_eq(a->asin[i], b->asin[i]);
        ck_assert((a->title[i] == NULL) == (b->title[i] == NULL));
        if (a->title[i]) ck_assert_str_eq(a->title[i], b->title[i]);
    }
    split_equal(&a->train, &b->train);
    split_equal(&a->valid, &b->valid);
    split_equal(&a->test, &b->test);
}

/* ------------------------------------------------------------------------------------ */

START_TEST(t_toy_folder)
{
    TU_REQUIRE_DATA("toy");
    tema_dataset *d = load_ok(tu_data_path("toy"));
    ck_assert_int_eq(d->n_x, 20);
    ck_assert_int_eq(d->n_y, 20);
    ck_assert_int_eq(d->n_users, 30);
    ck_assert(d->path[0] == '/');
    /* Alist row 0 and Blist row 0 (domain-local index 0 = global 20) */
    ck_assert_str_eq(d->asin[0], "B00C7MGHVA");
    ck_assert_str_eq(d->asin[20], "B00006JSUA");
    ck_assert_str_eq(d->title[0], "Lipton K-Cup Packs, Soothe Green Tea, 24 Count");
    ck_assert_int_eq(d->train.n_lines, 30);
    ck_assert_int_eq(d->valid.n_lines, 10);
    ck_assert_int_eq(d->test.n_lines, 10);
    ck_assert_ptr_null(d->train.target);
    ck_assert_str_eq(d->valid.file, "validdata_new.txt");
    /* README: 162 / 64 / 57 interactions; valid/test hold one target per line outside items[] */
    ck_assert_int_eq(d->train.off[30], 162);
    ck_assert_int_eq(d->valid.off[10], 64 - 10);
    ck_assert_int_eq(d->test.off[10], 57 - 10);
    /* testdata_new.txt line 1: user 20, entries 33 10 25 13 15 on consecutive days */
    ck_assert_int_eq(d->test.user[0], 20);
    ck_assert_int_eq(d->test.off[1], 4);
    ck_assert_int_eq(d->test.items[0], 33);
    ck_assert_int_eq(d->test.items[3], 13);
    ck_assert_int_eq(d->test.ts[0], 1262304000);
    ck_assert_int_eq(d->test.target[0], 15);
    ck_assert_int_eq(d->test.target_ts[0], 1262649600);
    int tx = 0;
    for (int i = 0; i < 10; i++) tx += d->valid.target[i] < d->n_x;
    ck_assert_int_eq(tx, 5); /* README: targets 5 / 5 */
    tema_dataset_free(d);
}
END_TEST

static void add_file(struct archive *a, const char *member, const char *data, size_t len)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, member);
    archive_entry_set_size(e, (la_int64_t)len);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
    ck_assert_int_eq(archive_write_data(a, data, len), (la_ssize_t)len);
    archive_entry_free(e);
}

/* An archive of the toy bundle under a top-level folder toy/, like the shipped ones. */
static void make_toy_archive(const char *out, int zip)
{
    struct archive *a = archive_write_new();
    if (zip) {
        ck_assert_int_eq(archive_write_set_format_zip(a), ARCHIVE_OK);
    } else {
        ck_assert_int_eq(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
        ck_assert_int_eq(archive_write_add_filter_zstd(a), ARCHIVE_OK);
    }
    ck_assert_int_eq(archive_write_open_filename(a, out), ARCHIVE_OK);
    struct archive_entry *dir = archive_entry_new();
    archive_entry_set_pathname(dir, "toy/");
    archive_entry_set_filetype(dir, AE_IFDIR);
    archive_entry_set_perm(dir, 0755);
    ck_assert_int_eq(archive_write_header(a, dir), ARCHIVE_OK);
    archive_entry_free(dir);
    add_file(a, "toy/README.md", "not data\n", 9);
    for (int i = 0; i < N_TOY_FILES; i++) {
        char src[4096], member[256];
        snprintf(src, sizeof src, "%s/%s", tu_data_path("toy"), TOY_FILES[i]);
        snprintf(member, sizeof member, "toy/%s", TOY_FILES[i]);
        size_t len;
        char *data = slurp(src, &len);
        add_file(a, member, data, len);
        free(data);
    }
    ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

START_TEST(t_archives_match_folder)
{
    TU_REQUIRE_DATA("toy");
    TU_REQUIRE_DATA("toy.tar.gz");
    tema_dataset *ref = load_ok(tu_data_path("toy"));
    char *dir = tmpdir_copy();
    char zip[4096], zst[4096];
    snprintf(zip, sizeof zip, "%s/toy.zip", dir);
    snprintf(zst, sizeof zst, "%s/toy.tar.zst", dir);
    make_toy_archive(zip, 1);
    make_toy_archive(zst, 0);
    const char *paths[] = {tu_data_path("toy.tar.gz"), zip, zst};
    for (int i = 0; i < 3; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s", i == 0 ? tu_data_path("toy.tar.gz") : paths[i]);
        tema_dataset *d = load_ok(path);
        dataset_equal(ref, d);
        ck_assert_str_eq(d->path, path); /* absolute already */
        tema_dataset_free(d);
    }
    tema_dataset_free(ref);
    free(dir);
}
END_TEST

/* A small hand-written bundle: X items 0..2, Y items 3..4, users 0..2. */
static char *mini_bundle(const char *train, const char *valid, const char *test)
{
    char *dir = tmpdir_copy();
    write_file(dir, "Alist.txt", "10\tAX0\t0\n11\tAX1\t1\n12\tAX2\t2\n");
    write_file(dir, "Blist.txt", "20\tBY0\t0\n21\tBY1\t1\n");
    write_file(dir, "userlist.txt", "alice\t0\nbob\t1\ncarol\t2\n");
    if (train) write_file(dir, "traindata_new.txt", train);
    if (valid) write_file(dir, "validdata_new.txt", valid);
    if (test) write_file(dir, "testdata_new.txt", test);
    return dir;
}

static const char GOOD_TRAIN[] = "0\t0\t0|100|d|\t3|200|d|\n1\t1\t1|100|d|\t4|150|d|\t2|300|d|\n";
static const char GOOD_VALID[] = "0\t5\t0|100|d|\t3|200|d|\t1|300|d|\n";
static const char GOOD_TEST[] = "1\t6\t1|100|d|\t4|150|d|\t2|300|d|\n";

START_TEST(t_stable_sort_target)
{
    /* line 1: ts 300 300 100 200 -> order 3(100) 4(200) 0(300) 1(300): the tie keeps file
     *         order, so the target is item 1, not the first 300 entry (0) nor the last field.
     * line 2: target 2 (ts 500) is the first field.
     * line 3: equal timestamps everywhere: file order, target = the last field. */
    const char *valid = "0\t1\t0|300|a|\t1|300|b|\t3|100|c|\t4|200|d|\n"
                        "1\t2\t2|500|a|\t3|100|b|\n"
                        "2\t3\t4|7|a|\t0|7|b|\t3|7|c|\n";
    /* 20 entries in reverse time order with ties, long enough for the merge-sort path:
     * items alternate so that a non-stable sort would reorder them */
    char train[4096] = "0\t0\t";
    for (int i = 0; i < 60; i++) {
        char e[64];
        snprintf(e, sizeof e, "%d|%d|d|%s", i % 5, 1000 - (i / 2) * 10, i == 59 ? "\n" : "\t");
        strcat(train, e);
    }
    char *dir = mini_bundle(train, valid, GOOD_TEST);
    tema_dataset *d = load_ok(dir);
    const tema_split *v = &d->valid;
    ck_assert_int_eq(v->n_lines, 3);
    ck_assert_int_eq(v->target[0], 1);
    ck_assert_int_eq(v->target_ts[0], 300);
    ck_assert_int_eq(v->off[1], 3);
    ck_assert_int_eq(v->items[0], 3);
    ck_assert_int_eq(v->items[1], 4);
    ck_assert_int_eq(v->items[2], 0);
    ck_assert_int_eq(v->ts[2], 300);
    ck_assert_int_eq(v->target[1], 2);
    ck_assert_int_eq(v->items[3], 3);
    ck_assert_int_eq(v->off[2], 4);
    ck_assert_int_eq(v->target[2], 3);
    ck_assert_int_eq(v->items[4], 4);
    ck_assert_int_eq(v->items[5], 0);
    ck_assert_int_eq(v->user[2], 2);
    /* training: pairs (i, i+1) share a ts; sorted ascending, each pair keeps file order */
    const tema_split *t = &d->train;
    ck_assert_int_eq(t->off[1], 60);
    for (int k = 0; k < 60; k++) {
        int pair = 29 - k / 2;                /* the latest pair in the file comes first */
        int src = pair * 2 + (k % 2);         /* file position */
        ck_assert_int_eq(t->ts[k], 1000 - pair * 10);
        ck_assert_int_eq(t->items[k], src % 5);
    }
    tema_dataset_free(d);
    free(dir);
}
END_TEST

START_TEST(t_malformed_lines)
{
    struct { const char *valid; const char *needles[3]; } cases[] = {
        {"0\t5\t0|100|d|\t3|200|d|\nthis is not a data line\n", {"validdata_new.txt:2:", "user<TAB>seqid", "hint"}},
        {"0\t5\t0|100|d|\t3|200|d|\n\n1\t5\t0|100|d|\t3x|200|d|\n", {"validdata_new.txt:3:", "entry 2", "'3x'"}},
        {"0\t5\t0|100|d|\t5|200|d|\n", {"validdata_new.txt:1:", "item id 5 out of range", "3 X items"}},
        {"0\t5\t0|100|d|\t3|200|d\n", {"validdata_new.txt:1:", "entry 2", "missing '|'"}},
        {"0\t5\t0|1e5|d|\t3|200|d|\n", {"validdata_new.txt:1:", "timestamp '1e5'", "hint"}},
        {"0\t5\t0|100|d|\t3|200|d|x\n", {"validdata_new.txt:1:", "after the closing '|'", NULL}},
        {"7\t5\t0|100|d|\t3|200|d|\n", {"validdata_new.txt:1:", "user 7 out of range", NULL}},
        {"-1\t5\t0|100|d|\t3|200|d|\n", {"validdata_new.txt:1:", "field 1 (user)", NULL}},
        {"0\tx\t0|100|d|\t3|200|d|\n", {"validdata_new.txt:1:", "seqid", NULL}},
        {"0\t5\t0|100|d|\n", {"validdata_new.txt:1:", "history and a target", NULL}},
        {"0\t5\t\n", {"validdata_new.txt:1:", "no entries", NULL}},
        {"0\t5\t99999999999999999999|100|d|\t3|200|d|\n", {"validdata_new.txt:1:", "item id", "not a non-negative integer"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = mini_bundle(GOOD_TRAIN, cases[i].valid, GOOD_TEST);
        tema_dataset *d = (tema_dataset *)0x1;
        tema_err err = {0};
        ck_assert_int_eq(tema_dataset_load(dir, NULL, &d, &err), TEMA_EFORMAT);
        ck_assert_ptr_null(d);
        ck_assert_msg(strstr(err.msg, dir), "case %zu: no file path in: %s", i, err.msg);
        for (int k = 0; k < 3 && cases[i].needles[k]; k++)
            ck_assert_msg(strstr(err.msg, cases[i].needles[k]), "case %zu: message lacks '%s': %s", i,
                          cases[i].needles[k], err.msg);
        /* stats reads the same file and must report the same error */
        FILE *devnull = fopen("/dev/null", "w");
        tema_err err2 = {0};
        ck_assert_int_eq(tema_dataset_print_stats(dir, devnull, &err2), TEMA_EFORMAT);
        fclose(devnull);
        ck_assert_str_eq(err.msg, err2.msg);
        free(dir);
    }
}
END_TEST

START_TEST(t_malformed_lists)
{
    char *dir = mini_bundle(GOOD_TRAIN, GOOD_VALID, GOOD_TEST);
    tema_dataset_free(load_ok(dir)); /* the baseline bundle is fine */
    write_file(dir, "Blist.txt", "20\tBY0\t0\n21\tBY1\t2\n");
    load_fails(dir, TEMA_EFORMAT, "Blist.txt:2:", "index 2 out of range 0..1", "domain-local", NULL);
    write_file(dir, "Blist.txt", "20\tBY0\t0\n21\tBY1\n");
    load_fails(dir, TEMA_EFORMAT, "Blist.txt:2:", "raw_id<TAB>ASIN<TAB>index", NULL);
    write_file(dir, "Blist.txt", "20\tBY0\t0\n21\tBY1\t0\n");
    load_fails(dir, TEMA_EFORMAT, "Blist.txt:2:", "appears twice", NULL);
    write_file(dir, "Blist.txt", "20\tBY0\t0\n21\tBY1\t1\n");
    write_file(dir, "userlist.txt", "alice\t0\nbob\tone\ncarol\t2\n");
    load_fails(dir, TEMA_EFORMAT, "userlist.txt:2:", "'one'", NULL);
    write_file(dir, "userlist.txt", "alice\t0\nbob\t1\ncarol\t2\n");
    write_file(dir, "items.tsv", "item\tdomain\tasin\ttitle\tcategories\n0\tX\tAX0\tTea\t\n3\tX\tBY0\tKettle\t\n");
    load_fails(dir, TEMA_EFORMAT, "items.tsv:3:", "domain 'X', expected 'Y'", NULL);
    write_file(dir, "items.tsv", "item\tdomain\tasin\ttitle\tcategories\n0\tX\tAX0\tTea\t\n3\tY\tBY0\tKettle\t\n");
    tema_dataset *d = load_ok(dir);
    ck_assert_str_eq(d->title[0], "Tea");
    ck_assert_ptr_null(d->title[1]);
    ck_assert_str_eq(d->title[3], "Kettle");
    ck_assert_str_eq(d->asin[4], "BY1");
    tema_dataset_free(d);
    free(dir);
}
END_TEST

START_TEST(t_missing_files)
{
    char *dir = mini_bundle(GOOD_TRAIN, GOOD_VALID, NULL);
    load_fails(dir, TEMA_ENOTFOUND, "testdata_new.txt", "missing", NULL);
    char p[4096];
    snprintf(p, sizeof p, "%s/Alist.txt", dir);
    unlink(p);
    load_fails(dir, TEMA_ENOTFOUND, "Alist.txt", "missing", NULL);
    load_fails("/nonexistent/tema-dataset", TEMA_ENOTFOUND, "/nonexistent/tema-dataset", NULL);
    /* a plain text file is not an archive */
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    tu_write(p, "hello\n");
    load_fails(p, TEMA_EFORMAT, "notes.txt", NULL);
    free(dir);
    /* other file names through tema_dataset_files (the holdout scheme) */
    dir = mini_bundle(GOOD_TRAIN, GOOD_VALID, GOOD_TEST);
    write_file(dir, "validdata_holdout.txt", "2\t9\t2|1|d|\t4|2|d|\n");
    tema_dataset_files f = {.valid = "validdata_holdout.txt"};
    tema_dataset *d = NULL;
    tema_err err = {0};
    ck_assert_msg(tema_dataset_load(dir, &f, &d, &err) == TEMA_OK, "%s", err.msg);
    ck_assert_str_eq(d->valid.file, "validdata_holdout.txt");
    ck_assert_int_eq(d->valid.n_lines, 1);
    ck_assert_int_eq(d->valid.target[0], 4);
    tema_dataset_free(d);
    free(dir);
    /* a folder, or a device, where a data file should be */
    dir = mini_bundle(GOOD_TRAIN, GOOD_VALID, NULL);
    snprintf(p, sizeof p, "%s/testdata_new.txt", dir);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    load_fails(dir, TEMA_EFORMAT, "testdata_new.txt: a folder, not a regular file", NULL);
    ck_assert_int_eq(rmdir(p), 0);
    ck_assert_int_eq(symlink("/dev/zero", p), 0);
    load_fails(dir, TEMA_EFORMAT, "testdata_new.txt: a device or other special file", NULL);
    free(dir);
}
END_TEST

/* A UTF-8 byte-order mark (Windows editors) before the first line is not part of its data. */
START_TEST(t_byte_order_mark)
{
    char *dir = mini_bundle(GOOD_TRAIN, GOOD_VALID, GOOD_TEST);
    tema_dataset *plain = load_ok(dir);
    char text[4096];
    snprintf(text, sizeof text, "\xEF\xBB\xBF%s", GOOD_TRAIN);
    write_file(dir, "traindata_new.txt", text);
    snprintf(text, sizeof text, "\xEF\xBB\xBF%s", "alice\t0\nbob\t1\ncarol\t2\n");
    write_file(dir, "userlist.txt", text);
    tema_dataset *bom = load_ok(dir);
    ck_assert_int_eq(bom->train.n_lines, plain->train.n_lines);
    ck_assert_int_eq(bom->train.off[bom->train.n_lines], plain->train.off[plain->train.n_lines]);
    ck_assert_int_eq(bom->train.user[0], plain->train.user[0]);
    ck_assert_int_eq(bom->n_users, plain->n_users);
    tema_dataset_free(plain);
    tema_dataset_free(bom);
    free(dir);
}
END_TEST

START_TEST(t_truncated_and_corrupt_archive)
{
    TU_REQUIRE_DATA("toy.tar.gz");
    size_t len;
    char *data = slurp(tu_data_path("toy.tar.gz"), &len);
    char *dir = tmpdir_copy();
    char p[4096];
    snprintf(p, sizeof p, "%s/toy.tar.gz", dir);
    const size_t cuts[] = {0, 10, len / 4, len / 2, len - 100, len - 9};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        FILE *f = fopen(p, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(data, 1, cuts[i], f), cuts[i]);
        fclose(f);
        tema_dataset *d = (tema_dataset *)0x1;
        tema_err err = {0};
        tema_status st = tema_dataset_load(p, NULL, &d, &err);
        ck_assert_msg(st == TEMA_EFORMAT || st == TEMA_ENOTFOUND, "cut at %zu: status %d (%s)", cuts[i], st, err.msg);
        ck_assert_ptr_null(d);
        ck_assert_msg(strstr(err.msg, "toy.tar.gz"), "cut at %zu: %s", cuts[i], err.msg);
        FILE *devnull = fopen("/dev/null", "w");
        st = tema_dataset_print_stats(p, devnull, &err);
        fclose(devnull);
        ck_assert_msg(st != TEMA_OK, "stats on an archive cut at %zu succeeded", cuts[i]);
    }
    /* Mid-archive cuts are reported as such, not as a missing file. */
    FILE *f = fopen(p, "wb");
    fwrite(data, 1, len / 2, f);
    fclose(f);
    load_fails(p, TEMA_EFORMAT, "corrupt or truncated", NULL);
    /* Flipped bytes in the compressed stream: caught by inflate or the gzip CRC. */
    for (size_t i = len / 3; i < len / 3 + 64; i++) data[i] ^= 0x5a;
    f = fopen(p, "wb");
    fwrite(data, 1, len, f);
    fclose(f);
    load_fails(p, TEMA_EFORMAT, "toy.tar.gz", NULL);
    free(data);
    free(dir);
}
END_TEST

/* A one-member tar whose header declares `claimed` bytes (GNU base-256 size field) while the
 * file holds only `data` after it. */
static void write_lying_tar(const char *path, const char *member, uint64_t claimed, const char *data)
{
    unsigned char h[512] = {0};
    snprintf((char *)h, 100, "%s", member);
    memcpy(h + 100, "0000644", 8); /* mode, uid, gid */
    memcpy(h + 108, "0000000", 8);
    memcpy(h + 116, "0000000", 8);
    h[124] = 0x80;
    for (int i = 0; i < 8; i++) h[135 - i] = (unsigned char)(claimed >> (8 * i));
    memcpy(h + 136, "00000000000", 12); /* mtime */
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(h, 1, sizeof h, f), sizeof h);
    ck_assert_uint_eq(fwrite(data, 1, strlen(data), f), strlen(data));
    fclose(f);
}

/* A member header's size is not trusted for memory: a tar of 530 bytes claiming 4 EiB is a truncated
 * archive, not an allocation of 4 EiB (tests/fuzz/fuzz_dataset found an 8 GiB one). */
START_TEST(t_archive_member_size_is_a_hint)
{
    char *dir = tmpdir_copy();
    char p[4096];
    snprintf(p, sizeof p, "%s/lying.tar", dir);
    write_lying_tar(p, "toy/Alist.txt", (uint64_t)1 << 62, "97\tB00C7MGHVA\t0\n");
    load_fails(p, TEMA_EFORMAT, "corrupt or truncated", NULL);
    free(dir);
}
END_TEST

/* ------------------------------------------------------------------------------------
 * `tema data stats` against the statistics section of each bundle README. */

static int has_line(const char *text, const char *line, size_t n)
{
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len == n && !memcmp(p, line, n)) return 1;
        if (!nl) break;
        p = nl + 1;
    }
    return 0;
}

/* Every README statistics row (file rows, the items rows, the users line) must appear
 * verbatim in the output; returns how many rows were compared. */
static int compare_with_readme(const char *bundle, const char *out)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s/README.md", tu_data_dir(), bundle);
    char *readme = slurp(p, NULL);
    char *sec = strstr(readme, "\n## Statistics\n");
    ck_assert_msg(sec != NULL, "%s has no Statistics section", p);
    char *end = strstr(sec + 1, "\n## ");
    char *checks = strstr(sec, "\nChecks");
    if (checks && (!end || checks < end)) end = checks;
    int n = 0, file_rows = 0;
    for (char *l = sec + 1; l && (!end || l < end);) {
        char *nl = strchr(l, '\n');
        size_t len = nl ? (size_t)(nl - l) : strlen(l);
        if (!strncmp(l, "| `", 3) || !strncmp(l, "| items", 7) || !strncmp(l, "Users in", 8)) {
            ck_assert_msg(has_line(out, l, len), "%s: README row not in `tema data stats` output:\n%.*s\n--- output:\n%s",
                          bundle, (int)len, l, out);
            n++;
            file_rows += !strncmp(l, "| `", 3);
        }
        l = nl ? nl + 1 : NULL;
    }
    /* and no extra data file rows: the output lists exactly the README's files */
    int out_rows = 0;
    for (const char *q = out; (q = strstr(q, "\n| `")); q++) out_rows++;
    ck_assert_int_eq(out_rows, file_rows);
    free(readme);
    return n;
}

START_TEST(t_stats_match_readmes)
{
    const char *bundles[] = {"toy", "food-kitchen", "food-kitchen-c2dsr", "movie-book-c2dsr"};
    int checked = 0;
    for (int i = 0; i < 4; i++) {
        for (int archive = 0; archive < 2; archive++) {
            char name[256];
            snprintf(name, sizeof name, "%s%s", bundles[i], archive ? ".tar.gz" : "");
            if (!tu_data_path(name)) {
                tu_skip(__func__, "%s not found under TEMA_TEST_DATA", name);
                continue;
            }
            char args[4200], *out = NULL, *errout = NULL;
            snprintf(args, sizeof args, "data stats '%s'", tu_data_path(name));
            int rc = tu_tema(args, &out, &errout);
            ck_assert_msg(rc == 0, "tema %s: exit %d: %s", args, rc, errout);
            int rows = compare_with_readme(bundles[i], out);
            ck_assert_int_ge(rows, 6); /* 3+ file rows, 2 item rows, users line */
            checked++;
            free(out);
            free(errout);
        }
    }
    if (checked == 0) tu_skip(__func__, "no bundles");
}
END_TEST

START_TEST(t_stats_cli_errors)
{
    char *dir = mini_bundle(GOOD_TRAIN, "0\t5\t0|100|d|\t9|200|d|\n", GOOD_TEST);
    char args[4200], *out = NULL, *errout = NULL;
    snprintf(args, sizeof args, "data stats '%s'", dir);
    int rc = tu_tema(args, &out, &errout);
    ck_assert_int_ne(rc, 0);
    ck_assert_msg(strstr(errout, "validdata_new.txt:1:") && strstr(errout, "out of range"), "%s", errout);
    ck_assert_msg(!strstr(out, "| `"), "a failed stats run printed a table:\n%s", out);
    free(out);
    free(errout);
    free(dir);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("dataset");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, t_toy_folder);
    tcase_add_test(tc, t_archives_match_folder);
    tcase_add_test(tc, t_stable_sort_target);
    tcase_add_test(tc, t_malformed_lines);
    tcase_add_test(tc, t_malformed_lists);
    tcase_add_test(tc, t_missing_files);
    tcase_add_test(tc, t_byte_order_mark);
    tcase_add_test(tc, t_truncated_and_corrupt_archive);
    tcase_add_test(tc, t_archive_member_size_is_a_hint);
    tcase_add_test(tc, t_stats_match_readmes);
    tcase_add_test(tc, t_stats_cli_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
