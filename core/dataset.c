/* core/dataset.c - the C2DSR layout from a folder or straight from an archive, and the
 * statistics tables of `tema data stats`.
 *
 * Everything is read into memory first (one pass over an archive, no unpacking to disk)
 * and then parsed by hand: the largest bundle is ~20 MB of text and sscanf per field
 * would dominate the load time. */
#include "dataset.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

/* ------------------------------------------------------------------------------------
 * Members: the files of a bundle, read from a folder or an archive. */

typedef struct member {
    const char *name;   /* base name wanted, e.g. "Alist.txt" */
    char *where;        /* how messages name it: DIR/name or ARCHIVE/member path (owned) */
    char *data;         /* whole file, NUL-terminated (owned); NULL when absent */
    size_t len;
} member;

static void members_free(member *m, int n)
{
    for (int i = 0; i < n; i++) {
        free(m[i].where);
        free(m[i].data);
        m[i].where = m[i].data = NULL;
    }
}

static char *join2(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (!s) return NULL;
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static tema_status read_folder(const char *dir, member *m, int n, tema_err *err)
{
    for (int i = 0; i < n; i++) {
        char *p = join2(dir, m[i].name);
        if (!p) return tema_fail(err, TEMA_ENOMEM, "out of memory reading %s", dir);
        struct stat st;
        if (stat(p, &st) != 0 && errno == ENOENT) {
            free(p);
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            /* a folder or a device (a link to /dev/zero would be read until memory runs out) */
            tema_status s = tema_fail(err, TEMA_EFORMAT, "%s: %s, not a regular file (hint: the C2DSR layout wants a "
                                                         "text file of that name)",
                                      p, S_ISDIR(st.st_mode) ? "a folder" : "a device or other special file");
            free(p);
            return s;
        }
        m[i].where = p;
        tema_status s = tema_read_file(p, &m[i].data, &m[i].len, err);
        if (s != TEMA_OK) return s;
    }
    return TEMA_OK;
}

static tema_status archive_broken(const char *path, struct archive *a, tema_err *err)
{
    const char *why = archive_error_string(a);
    return tema_fail(err, TEMA_EFORMAT,
                     "%s: corrupt or truncated archive: %s (hint: download or re-create it; "
                     "tema reads .tar.gz, .tar.zst and .zip archives and plain folders)",
                     path, why ? why : "the data ends early or is damaged");
}

#define MEMBER_FIRST_ALLOC ((la_int64_t)1 << 24) /* most a member header's size can reserve */

/* One streaming pass: libarchive decompresses each member once and we keep only the
 * wanted ones, so nothing is written to disk and the archive is read exactly once. */
static tema_status read_archive(const char *path, member *m, int n, tema_err *err)
{
    struct archive *a = archive_read_new();
    if (!a) return tema_fail(err, TEMA_ENOMEM, "out of memory opening %s", path);
    archive_read_support_filter_all(a);
    /* Only real archive formats: format_all would also accept e.g. any text file as mtree. */
    archive_read_support_format_tar(a);
    archive_read_support_format_zip(a);
    tema_status st = TEMA_OK;
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        st = tema_fail(err, TEMA_EFORMAT,
                       "%s: cannot read it as an archive (corrupt or truncated, or not an archive "
                       "at all): %s (hint: give a dataset folder or a .tar.gz, .tar.zst or .zip archive "
                       "of one)",
                       path, archive_error_string(a) ? archive_error_string(a) : "unknown error");
        archive_read_free(a);
        return st;
    }
    struct archive_entry *e;
    int r;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        if (archive_entry_filetype(e) != AE_IFREG) continue;
        const char *pn = archive_entry_pathname(e);
        if (!pn) continue;
        const char *bn = base_name(pn);
        int k = -1;
        for (int i = 0; i < n; i++)
            if (!strcmp(bn, m[i].name)) k = i;
        if (k < 0) continue; /* the next header call skips its data */
        if (m[k].data) {
            st = tema_fail(err, TEMA_EFORMAT,
                           "%s: two members named %s (%s and %s) (hint: the archive must hold one "
                           "dataset folder)",
                           path, bn, m[k].where + strlen(path) + 1, pn);
            break;
        }
        m[k].where = join2(path, pn);
        /* The size a member header declares is a hint, not a promise: a few hundred bytes of
         * archive can claim terabytes. Memory grows with the data actually read. */
        const la_int64_t declared = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
        size_t cap = declared <= 0                     ? (size_t)1 << 16
                     : declared < MEMBER_FIRST_ALLOC ? (size_t)declared + 1
                                                     : (size_t)MEMBER_FIRST_ALLOC;
        m[k].data = malloc(cap);
        if (!m[k].where || !m[k].data) {
            st = tema_fail(err, TEMA_ENOMEM, "out of memory reading %s", path);
            break;
        }
        size_t len = 0;
        for (;;) {
            if (len + 1 >= cap) {
                char *nb = realloc(m[k].data, cap * 2);
                if (!nb) {
                    st = tema_fail(err, TEMA_ENOMEM, "out of memory reading %s", m[k].where);
                    break;
                }
                m[k].data = nb;
                cap *= 2;
            }
            la_ssize_t got = archive_read_data(a, m[k].data + len, cap - len - 1);
            if (got < 0) {
                st = archive_broken(m[k].where, a, err);
                break;
            }
            if (got == 0) break;
            len += (size_t)got;
        }
        if (st != TEMA_OK) break;
        m[k].data[len] = '\0';
        m[k].len = len;
    }
    /* Read to the end even when every member is in hand: a truncated archive must be
     * reported, not half-trusted. */
    if (st == TEMA_OK && r != ARCHIVE_EOF) st = archive_broken(path, a, err);
    archive_read_free(a);
    return st;
}

static tema_status read_members(const char *path, member *m, int n, tema_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return tema_fail(err, TEMA_ENOTFOUND,
                         "%s: no such dataset folder or archive (hint: see ../shared/data for "
                         "bundles, or `tema data synth --out DIR` to make one)",
                         path);
    tema_status s = S_ISDIR(st.st_mode) ? read_folder(path, m, n, err) : read_archive(path, m, n, err);
    if (s != TEMA_OK) members_free(m, n);
    return s;
}

static tema_status missing(const char *path, const char *name, tema_err *err)
{
    return tema_fail(err, TEMA_ENOTFOUND,
                     "%s: required file %s is missing (hint: a dataset in the C2DSR layout has "
                     "Alist.txt, Blist.txt, userlist.txt, traindata_new.txt, validdata_new.txt "
                     "and testdata_new.txt)",
                     path, name);
}

/* ------------------------------------------------------------------------------------
 * Lines and fields. */

typedef struct cursor {
    const member *m;
    const char *p, *end;
    int64_t lineno;
} cursor;

static void cursor_init(cursor *c, const member *m)
{
    c->m = m;
    c->p = m->data;
    /* a UTF-8 byte-order mark, as some Windows editors write, is not part of the first field */
    if (m->len >= 3 && !memcmp(m->data, "\xEF\xBB\xBF", 3)) c->p += 3;
    c->end = m->data + m->len;
    c->lineno = 0;
}

/* Next non-empty line as [*ls,*le) (CR of CRLF dropped); 0 at the end of the file. */
static int next_line(cursor *c, char **ls, char **le)
{
    while (c->p < c->end) {
        const char *s = c->p;
        const char *nl = memchr(s, '\n', (size_t)(c->end - s));
        const char *e = nl ? nl : c->end;
        c->p = nl ? nl + 1 : c->end;
        c->lineno++;
        if (e > s && e[-1] == '\r') e--;
        if (e == s) continue; /* blank lines carry nothing */
        *ls = (char *)s;
        *le = (char *)e;
        return 1;
    }
    return 0;
}

/* A printable copy of [p,e) for messages (at most 40 bytes, control bytes as '?'). */
static const char *shown(const char *p, const char *e, char *buf)
{
    size_t n = (size_t)(e - p);
    int cut = n > 40;
    if (cut) n = 40;
    for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)p[i] < 0x20 ? '?' : p[i];
    memcpy(buf + n, cut ? "..." : "", cut ? 4 : 1);
    return buf;
}

/* Decimal integer spanning exactly [p,e); optional '-' when allow_neg. 0 on bad input
 * (empty, non-digit, overflow). */
static int parse_int(const char *p, const char *e, int allow_neg, int64_t *out)
{
    int neg = 0;
    if (allow_neg && p < e && *p == '-') {
        neg = 1;
        p++;
    }
    if (p == e || e - p > 18) return 0;
    int64_t v = 0;
    for (; p < e; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (d > 9) return 0;
        v = v * 10 + d;
    }
    *out = neg ? -v : v;
    return 1;
}

static char *find_tab(char *p, char *e)
{
    char *t = memchr(p, '\t', (size_t)(e - p));
    return t ? t : e;
}

#define LINE_ERR(c, code, ...) line_err((c), err, (code), __VA_ARGS__)
static tema_status line_err(const cursor *c, tema_err *err, tema_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static tema_status line_err(const cursor *c, tema_err *err, tema_status code, const char *fmt, ...)
{
    if (!err) return code;
    char what[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return tema_fail(err, code, "%s:%lld: %s", c->m->where, (long long)c->lineno, what);
}

/* ------------------------------------------------------------------------------------
 * Item lists, users, titles. */

/* The dataset plus what its pointers point into. */
typedef struct ds_impl {
    tema_dataset d;          /* first member: tema_dataset_free() casts back */
    char *list_buf[2];       /* Alist/Blist text; asin[] points into it */
    char *items_buf;         /* items.tsv text; title[] points into it */
    char *file_name[3];
    int64_t n_categorised;   /* items.tsv rows with categories */
} ds_impl;

/* Alist.txt / Blist.txt: raw_id<TAB>ASIN<TAB>index; index is domain-local for both
 * (Alist's local index is also global). asin[offset+index] points into the buffer. */
static tema_status parse_list(member *m, char ***asin_out, int32_t *n_out, tema_err *err)
{
    cursor c;
    char *ls, *le;
    int64_t n = 0;
    cursor_init(&c, m);
    while (next_line(&c, &ls, &le)) n++;
    if (n == 0)
        return tema_fail(err, TEMA_EFORMAT, "%s: no items (hint: one line raw_id<TAB>ASIN<TAB>index per item)",
                         m->where);
    if (n > INT32_MAX / 4)
        return tema_fail(err, TEMA_EFORMAT, "%s: %lld items is more than tema supports", m->where, (long long)n);
    char **asin = calloc((size_t)n, sizeof *asin);
    if (!asin) return tema_fail(err, TEMA_ENOMEM, "out of memory reading %s", m->where);
    cursor_init(&c, m);
    char buf[64];
    while (next_line(&c, &ls, &le)) {
        char *t1 = find_tab(ls, le);
        char *t2 = t1 < le ? find_tab(t1 + 1, le) : le;
        if (t2 == le) {
            free(asin);
            return LINE_ERR(&c, TEMA_EFORMAT, "expected raw_id<TAB>ASIN<TAB>index, got '%s' (hint: is this a C2DSR Alist/Blist file?)",
                            shown(ls, le, buf));
        }
        int64_t idx;
        if (!parse_int(t2 + 1, le, 0, &idx)) {
            free(asin);
            return LINE_ERR(&c, TEMA_EFORMAT, "field 3 (index): '%s' is not a non-negative integer",
                            shown(t2 + 1, le, buf));
        }
        if (idx >= n) {
            free(asin);
            return LINE_ERR(&c, TEMA_EFORMAT,
                            "index %lld out of range 0..%lld (hint: indices of this file are domain-local "
                            "and must number its %lld lines)",
                            (long long)idx, (long long)n - 1, (long long)n);
        }
        if (asin[idx]) {
            free(asin);
            return LINE_ERR(&c, TEMA_EFORMAT, "index %lld appears twice (hint: every item needs its own index)",
                            (long long)idx);
        }
        *t2 = '\0';
        asin[idx] = t1 + 1;
    }
    *asin_out = asin;
    *n_out = (int32_t)n;
    return TEMA_OK;
}

static tema_status parse_users(member *m, int32_t *n_out, tema_err *err)
{
    cursor c;
    char *ls, *le;
    int64_t n = 0;
    cursor_init(&c, m);
    while (next_line(&c, &ls, &le)) n++;
    if (n > INT32_MAX / 2)
        return tema_fail(err, TEMA_EFORMAT, "%s: %lld users is more than tema supports", m->where, (long long)n);
    uint8_t *seen = calloc((size_t)n + 1, 1);
    if (!seen) return tema_fail(err, TEMA_ENOMEM, "out of memory reading %s", m->where);
    cursor_init(&c, m);
    char buf[64];
    tema_status st = TEMA_OK;
    while (st == TEMA_OK && next_line(&c, &ls, &le)) {
        char *t = le;
        while (t > ls && t[-1] != '\t') t--;
        int64_t idx;
        if (t == ls)
            st = LINE_ERR(&c, TEMA_EFORMAT, "expected user_name<TAB>index, got '%s'", shown(ls, le, buf));
        else if (!parse_int(t, le, 0, &idx))
            st = LINE_ERR(&c, TEMA_EFORMAT, "user index '%s' is not a non-negative integer", shown(t, le, buf));
        else if (idx >= n)
            st = LINE_ERR(&c, TEMA_EFORMAT, "user index %lld out of range 0..%lld (hint: indices must number the %lld lines)",
                          (long long)idx, (long long)n - 1, (long long)n);
        else if (seen[idx]++)
            st = LINE_ERR(&c, TEMA_EFORMAT, "user index %lld appears twice", (long long)idx);
    }
    free(seen);
    if (st == TEMA_OK) *n_out = (int32_t)n;
    return st;
}

/* items.tsv: item<TAB>domain<TAB>asin<TAB>title<TAB>categories, header first. */
static tema_status parse_titles(member *m, ds_impl *impl, tema_err *err)
{
    tema_dataset *d = &impl->d;
    int32_t n = d->n_x + d->n_y;
    cursor c;
    char *ls, *le;
    char buf[64];
    cursor_init(&c, m);
    if (!next_line(&c, &ls, &le) || le - ls < 5 || memcmp(ls, "item\t", 5) != 0)
        return LINE_ERR(&c, TEMA_EFORMAT,
                        "expected the header item<TAB>domain<TAB>asin<TAB>title<TAB>categories");
    d->title = calloc((size_t)n, sizeof *d->title);
    if (!d->title) return tema_fail(err, TEMA_ENOMEM, "out of memory reading %s", m->where);
    while (next_line(&c, &ls, &le)) {
        char *f[5];
        int nf = 0;
        for (char *p = ls; nf < 5;) {
            f[nf++] = p;
            char *t = find_tab(p, le);
            if (t == le) break;
            *t = '\0';
            p = t + 1;
        }
        if (nf < 4)
            return LINE_ERR(&c, TEMA_EFORMAT, "expected item<TAB>domain<TAB>asin<TAB>title[<TAB>categories], got %d field%s",
                            nf, nf == 1 ? "" : "s");
        *le = '\0'; /* ends the last field; the byte was '\n', '\r' or the final NUL */
        int64_t item;
        if (!parse_int(f[0], f[0] + strlen(f[0]), 0, &item))
            return LINE_ERR(&c, TEMA_EFORMAT, "field 1 (item): '%s' is not a non-negative integer",
                            shown(f[0], f[0] + strlen(f[0]), buf));
        if (item >= n)
            return LINE_ERR(&c, TEMA_EFORMAT, "item %lld out of range 0..%d (hint: items.tsv must belong to the same bundle as Alist.txt/Blist.txt)",
                            (long long)item, n - 1);
        const char *want = item < d->n_x ? "X" : "Y";
        if (strcmp(f[1], want) != 0)
            return LINE_ERR(&c, TEMA_EFORMAT, "item %lld has domain '%s', expected '%s' (X items are 0..%d)",
                            (long long)item, shown(f[1], f[1] + strlen(f[1]), buf), want, d->n_x - 1);
        if (strcmp(f[2], d->asin[item]) != 0)
            return LINE_ERR(&c, TEMA_EFORMAT, "item %lld has ASIN '%s' but %s says '%s' (hint: items.tsv must belong to the same bundle)",
                            (long long)item, shown(f[2], f[2] + strlen(f[2]), buf),
                            item < d->n_x ? "Alist.txt" : "Blist.txt", d->asin[item]);
        if (f[3][0]) d->title[item] = f[3];
        if (nf == 5 && f[4][0]) impl->n_categorised++;
    }
    return TEMA_OK;
}

/* ------------------------------------------------------------------------------------
 * Data files. */

/* Stable sort of one line's entries by ts: C2DSR's loader uses Python's stable sort and
 * equal timestamps must keep file order, or a different target would be chosen. */
static void sort_entries(int32_t *items, int64_t *ts, int64_t n, int32_t *si, int64_t *st)
{
    int64_t i = 1;
    while (i < n && ts[i - 1] <= ts[i]) i++;
    if (i >= n) return; /* already chronological: the common case */
    if (n <= 48) {
        for (i = 1; i < n; i++) {
            int32_t it = items[i];
            int64_t t = ts[i];
            int64_t j = i;
            for (; j > 0 && ts[j - 1] > t; j--) {
                items[j] = items[j - 1];
                ts[j] = ts[j - 1];
            }
            items[j] = it;
            ts[j] = t;
        }
        return;
    }
    /* Bottom-up merge sort for long lines; taking from the left run on ties keeps it stable. */
    for (int64_t w = 1; w < n; w *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * w) {
            int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int64_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi) {
                if (ts[b] < ts[a]) { si[k] = items[b]; st[k++] = ts[b++]; }
                else { si[k] = items[a]; st[k++] = ts[a++]; }
            }
            while (a < mid) { si[k] = items[a]; st[k++] = ts[a++]; }
            while (b < hi) { si[k] = items[b]; st[k++] = ts[b++]; }
        }
        memcpy(items, si, (size_t)n * sizeof *items);
        memcpy(ts, st, (size_t)n * sizeof *ts);
    }
}

static void split_free(tema_split *s)
{
    free(s->off);
    free(s->items);
    free(s->ts);
    free(s->user);
    free(s->target);
    free(s->target_ts);
    memset(s, 0, sizeof *s);
}

static const char FORMAT_HINT[] = "(hint: lines are user<TAB>seqid<TAB>item|ts|date|<TAB>item|ts|date|...)";

/* The line's user and seqid fields (seqid only checked); *entries: where the entries start. */
static tema_status parse_line_head(const cursor *c, const tema_dataset *d, char *ls, char *le, int64_t *user,
                                   char **entries, tema_err *err)
{
    char buf[64];
    char *t1 = find_tab(ls, le);
    char *t2 = t1 < le ? find_tab(t1 + 1, le) : le;
    if (t2 == le)
        return LINE_ERR(c, TEMA_EFORMAT, "expected user<TAB>seqid<TAB>entries, got '%s' %s", shown(ls, le, buf),
                        FORMAT_HINT);
    int64_t seqid;
    if (!parse_int(ls, t1, 0, user))
        return LINE_ERR(c, TEMA_EFORMAT, "field 1 (user): '%s' is not a non-negative integer %s", shown(ls, t1, buf),
                        FORMAT_HINT);
    if (*user >= d->n_users)
        return LINE_ERR(c, TEMA_EFORMAT, "user %lld out of range 0..%d (hint: userlist.txt lists %d users; is it from the same bundle?)",
                        (long long)*user, d->n_users - 1, d->n_users);
    if (!parse_int(t1 + 1, t2, 0, &seqid))
        return LINE_ERR(c, TEMA_EFORMAT, "field 2 (seqid): '%s' is not a non-negative integer %s",
                        shown(t1 + 1, t2, buf), FORMAT_HINT);
    *entries = t2 + 1;
    return TEMA_OK;
}

/* One entry item|ts|date| spanning [q,te) (k: its 0-based place in the line). */
static tema_status parse_entry(const cursor *c, const tema_dataset *d, char *q, char *te, int64_t k, int64_t *item,
                               int64_t *ts, tema_err *err)
{
    char buf[64];
    const int64_t n_items = (int64_t)d->n_x + d->n_y;
    char *b1 = memchr(q, '|', (size_t)(te - q));
    char *b2 = b1 ? memchr(b1 + 1, '|', (size_t)(te - b1 - 1)) : NULL;
    char *b3 = b2 ? memchr(b2 + 1, '|', (size_t)(te - b2 - 1)) : NULL;
    if (!b3)
        return LINE_ERR(c, TEMA_EFORMAT, "entry %lld ('%s'): missing '|' - expected item|ts|date| %s",
                        (long long)k + 1, shown(q, te, buf), FORMAT_HINT);
    if (b3 + 1 != te)
        return LINE_ERR(c, TEMA_EFORMAT, "entry %lld ('%s'): unexpected text after the closing '|' %s",
                        (long long)k + 1, shown(q, te, buf), FORMAT_HINT);
    if (!parse_int(q, b1, 0, item))
        return LINE_ERR(c, TEMA_EFORMAT, "entry %lld: item id '%s' is not a non-negative integer %s",
                        (long long)k + 1, shown(q, b1, buf), FORMAT_HINT);
    if (*item >= n_items)
        return LINE_ERR(c, TEMA_EFORMAT,
                        "entry %lld: item id %lld out of range: the bundle has %d X items (0..%d) and %d Y items "
                        "(%d..%lld) (hint: item ids are global, Y ids offset by |X|; are Alist.txt/Blist.txt from the "
                        "same bundle?)",
                        (long long)k + 1, (long long)*item, d->n_x, d->n_x - 1, d->n_y, d->n_x,
                        (long long)n_items - 1);
    if (!parse_int(b1 + 1, b2, 1, ts))
        return LINE_ERR(c, TEMA_EFORMAT, "entry %lld: timestamp '%s' is not an integer (unix seconds) %s",
                        (long long)k + 1, shown(b1 + 1, b2, buf), FORMAT_HINT);
    return TEMA_OK;
}

/* The tab-separated entries of one line, [p, le), appended to s->items and s->ts at *pos
 * (room for max_entries in all); *n_entries: how many. */
static tema_status parse_entries(const cursor *c, const tema_dataset *d, char *p, char *le, tema_split *s,
                                 int64_t max_entries, int64_t *pos, int64_t *n_entries, tema_err *err)
{
    int64_t k = 0;
    for (; p < le; k++) {
        char *te = find_tab(p, le);
        int64_t item, ts;
        tema_status rc = parse_entry(c, d, p, te, k, &item, &ts, err);
        if (rc != TEMA_OK) return rc;
        if (*pos >= max_entries) /* cannot happen: see the bound in split_alloc */
            return tema_fail(err, TEMA_EINTERNAL, "%s: entry count bound exceeded", c->m->where);
        s->items[*pos] = (int32_t)item;
        s->ts[(*pos)++] = ts;
        p = te < le ? te + 1 : le; /* a trailing tab is tolerated */
    }
    *n_entries = k;
    return TEMA_OK;
}

/* Room for the split of m, and the sort scratch si/st. Exact upper bounds from one cheap
 * scan: every accepted entry uses three '|'. */
static tema_status split_alloc(const member *m, int eval, tema_split *s, int64_t *max_entries_out, int32_t **si,
                               int64_t **st, tema_err *err)
{
    int64_t max_lines = 1, max_entries = 1;
    for (const char *p = m->data, *e = m->data + m->len; p < e; p++) {
        max_lines += *p == '\n';
        max_entries += *p == '|';
    }
    max_entries = max_entries / 3 + 1;
    s->off = malloc((size_t)(max_lines + 1) * sizeof *s->off);
    s->user = malloc((size_t)max_lines * sizeof *s->user);
    s->items = malloc((size_t)max_entries * sizeof *s->items);
    s->ts = malloc((size_t)max_entries * sizeof *s->ts);
    *si = malloc((size_t)max_entries * sizeof **si);
    *st = malloc((size_t)max_entries * sizeof **st);
    if (eval) {
        s->target = malloc((size_t)max_lines * sizeof *s->target);
        s->target_ts = malloc((size_t)max_lines * sizeof *s->target_ts);
    }
    *max_entries_out = max_entries;
    if (!s->off || !s->user || !s->items || !s->ts || !*si || !*st || (eval && (!s->target || !s->target_ts)))
        return tema_fail(err, TEMA_ENOMEM, "out of memory reading %s", m->where);
    return TEMA_OK;
}

/* Parse a data file into s. eval: the last entry after the sort is the target. */
static tema_status parse_data(member *m, int eval, const tema_dataset *d, tema_split *s, tema_err *err)
{
    memset(s, 0, sizeof *s);
    s->file = base_name(m->where);
    int32_t *si = NULL;
    int64_t *st = NULL, max_entries = 0;
    tema_status rc = split_alloc(m, eval, s, &max_entries, &si, &st, err);
    cursor c;
    char *ls, *le;
    int64_t line = 0, pos = 0;
    cursor_init(&c, m);
    if (rc == TEMA_OK) s->off[0] = 0;
    while (rc == TEMA_OK && next_line(&c, &ls, &le)) {
        int64_t user, start = pos, k = 0;
        char *entries = NULL;
        rc = parse_line_head(&c, d, ls, le, &user, &entries, err);
        if (rc == TEMA_OK) rc = parse_entries(&c, d, entries, le, s, max_entries, &pos, &k, err);
        if (rc != TEMA_OK) break;
        if (k == 0) {
            rc = LINE_ERR(&c, TEMA_EFORMAT, "no entries after user and seqid %s", FORMAT_HINT);
            break;
        }
        if (eval && k < 2) {
            rc = LINE_ERR(&c, TEMA_EFORMAT,
                          "an evaluation line needs a history and a target (2+ entries), this one has 1 "
                          "(hint: drop the line or give the user more history)");
            break;
        }
        sort_entries(s->items + start, s->ts + start, k, si, st);
        if (eval) {
            pos--;
            s->target[line] = s->items[pos];
            s->target_ts[line] = s->ts[pos];
        }
        s->user[line] = (int32_t)user;
        s->off[++line] = pos;
    }
    if (rc == TEMA_OK) s->n_lines = line;
    free(si);
    free(st);
    if (rc != TEMA_OK) split_free(s);
    return rc;
}

/* ------------------------------------------------------------------------------------
 * Loading. */

enum { M_ALIST, M_BLIST, M_USERS, M_ITEMS, M_DATA };

static tema_status parse_meta(member *m, ds_impl *impl, const char *path, tema_err *err)
{
    tema_dataset *d = &impl->d;
    const char *req[] = {"Alist.txt", "Blist.txt", "userlist.txt"};
    for (int i = 0; i < 3; i++)
        if (!m[i].data) return missing(path, req[i], err);
    char **ax = NULL, **ay = NULL;
    tema_status st = parse_list(&m[M_ALIST], &ax, &d->n_x, err);
    if (st == TEMA_OK) st = parse_list(&m[M_BLIST], &ay, &d->n_y, err);
    if (st == TEMA_OK && (int64_t)d->n_x + d->n_y > INT32_MAX / 2)
        st = tema_fail(err, TEMA_EFORMAT, "%s: too many items", path);
    if (st == TEMA_OK) {
        d->asin = malloc(((size_t)d->n_x + (size_t)d->n_y) * sizeof *d->asin);
        if (!d->asin) st = tema_fail(err, TEMA_ENOMEM, "out of memory loading %s", path);
    }
    if (st == TEMA_OK) {
        memcpy(d->asin, ax, (size_t)d->n_x * sizeof *ax);
        memcpy(d->asin + d->n_x, ay, (size_t)d->n_y * sizeof *ay);
        /* the ASIN strings live in the list buffers: keep them */
        impl->list_buf[0] = m[M_ALIST].data;
        impl->list_buf[1] = m[M_BLIST].data;
        m[M_ALIST].data = m[M_BLIST].data = NULL;
    }
    free(ax);
    free(ay);
    if (st == TEMA_OK) st = parse_users(&m[M_USERS], &d->n_users, err);
    if (st == TEMA_OK && m[M_ITEMS].data) {
        st = parse_titles(&m[M_ITEMS], impl, err);
        impl->items_buf = m[M_ITEMS].data;
        m[M_ITEMS].data = NULL;
    }
    return st;
}

static int is_eval_name(const char *name)
{
    return !strncmp(name, "valid", 5) || !strncmp(name, "test", 4);
}

void tema_dataset_free(tema_dataset *d)
{
    if (!d) return;
    ds_impl *impl = (ds_impl *)d;
    free(d->path);
    free(d->asin);
    free(d->title);
    split_free(&d->train);
    split_free(&d->valid);
    split_free(&d->test);
    free(impl->list_buf[0]);
    free(impl->list_buf[1]);
    free(impl->items_buf);
    for (int i = 0; i < 3; i++) free(impl->file_name[i]);
    free(impl);
}

tema_status tema_dataset_load(const char *path, const tema_dataset_files *files, tema_dataset **out,
                              tema_err *err)
{
    *out = NULL;
    const char *names[3] = {"traindata_new.txt", "validdata_new.txt", "testdata_new.txt"};
    if (files) {
        if (files->train) names[0] = files->train;
        if (files->valid) names[1] = files->valid;
        if (files->test) names[2] = files->test;
    }
    member m[M_DATA + 3] = {{.name = "Alist.txt"}, {.name = "Blist.txt"}, {.name = "userlist.txt"}, {.name = "items.tsv"}};
    for (int i = 0; i < 3; i++) m[M_DATA + i].name = base_name(names[i]);
    ds_impl *impl = calloc(1, sizeof *impl);
    if (!impl) return tema_fail(err, TEMA_ENOMEM, "out of memory loading %s", path);
    tema_dataset *d = &impl->d;
    tema_status st = read_members(path, m, M_DATA + 3, err);
    if (st != TEMA_OK) {
        free(impl);
        return st;
    }
    st = parse_meta(m, impl, path, err);
    tema_split *sp[3] = {&d->train, &d->valid, &d->test};
    for (int i = 0; i < 3 && st == TEMA_OK; i++) {
        if (!m[M_DATA + i].data) {
            st = missing(path, m[M_DATA + i].name, err);
            break;
        }
        st = parse_data(&m[M_DATA + i], i > 0, d, sp[i], err);
        if (st == TEMA_OK) {
            impl->file_name[i] = strdup(sp[i]->file);
            if (!impl->file_name[i]) st = tema_fail(err, TEMA_ENOMEM, "out of memory loading %s", path);
            else sp[i]->file = impl->file_name[i];
        }
    }
    if (st == TEMA_OK) {
        d->path = tema_abspath(path);
        if (!d->path) st = tema_fail(err, TEMA_ENOMEM, "out of memory loading %s", path);
    }
    members_free(m, M_DATA + 3);
    if (st != TEMA_OK) {
        tema_dataset_free(d);
        return st;
    }
    *out = d;
    return TEMA_OK;
}

/* ------------------------------------------------------------------------------------
 * Statistics. */

/* 1234567 -> "1,234,567" (the bundle READMEs' format). */
static const char *thousands(int64_t v, char *buf)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)(v < 0 ? -v : v));
    char *o = buf;
    if (v < 0) *o++ = '-';
    for (int i = 0; i < n; i++) {
        *o++ = tmp[i];
        if ((n - 1 - i) % 3 == 0 && i != n - 1) *o++ = ',';
    }
    *o = '\0';
    return buf;
}

static const char *percent(int64_t a, int64_t b, char *buf)
{
    /* Rounded to 4 decimals first, as the bundle READMEs were printed from stats.json. */
    double frac = b > 0 ? round((double)a / (double)b * 10000.0) / 10000.0 : 0.0;
    snprintf(buf, 32, "%.1f%%", 100.0 * frac);
    return buf;
}

static void print_file_row(FILE *out, const tema_split *s, int32_t n_x, int32_t n_users)
{
    int64_t ix = 0, iy = 0, tx = 0, ty = 0, mn = INT64_MAX, mx = 0, users = 0;
    uint8_t *seen = calloc((size_t)n_users + 1, 1);
    for (int64_t i = 0; i < s->n_lines; i++) {
        int64_t len = s->off[i + 1] - s->off[i] + (s->target ? 1 : 0);
        if (len < mn) mn = len;
        if (len > mx) mx = len;
        if (seen && !seen[s->user[i]]++) users++;
        for (int64_t j = s->off[i]; j < s->off[i + 1]; j++) {
            if (s->items[j] < n_x) ix++;
            else iy++;
        }
        if (s->target) {
            if (s->target[i] < n_x) tx++, ix++;
            else ty++, iy++;
        }
    }
    free(seen);
    char a[32], b[32], c[32], e[32], f[32], g[32], h[32], k[32];
    fprintf(out, "| `%s` | %s | %s | %s (%s / %s) | ", s->file, thousands(s->n_lines, a), thousands(users, b),
            thousands(ix + iy, c), thousands(ix, e), thousands(iy, f));
    if (s->n_lines > 0)
        /* The bundle READMEs print stats.json's avg_len (rounded to 3 decimals) with 2
         * decimals; rounding twice the same way keeps e.g. 9.6949 -> 9.695 -> "9.70". */
        fprintf(out, "%.2f | %s | %s | ", round((double)(ix + iy) / (double)s->n_lines * 1000.0) / 1000.0,
                thousands(mn, g), thousands(mx, h));
    else
        fprintf(out, "- | - | - | ");
    if (s->target)
        fprintf(out, "%s / %s |\n", thousands(tx, g), thousands(ty, k));
    else
        fprintf(out, "- |\n");
}

static void mark_items(const tema_split *s, uint8_t *used)
{
    for (int64_t j = 0; j < s->off[s->n_lines]; j++) used[s->items[j]] = 1;
    if (s->target)
        for (int64_t i = 0; i < s->n_lines; i++) used[s->target[i]] = 1;
}

tema_status tema_dataset_print_stats(const char *path, FILE *out, tema_err *err)
{
    static const char *const data_names[] = {"traindata_new.txt", "validdata_new.txt", "testdata_new.txt",
                                             "traindata_holdout.txt", "validdata_holdout.txt"};
    enum { N_DATA = sizeof data_names / sizeof data_names[0] };
    member m[M_DATA + N_DATA] = {{.name = "Alist.txt"}, {.name = "Blist.txt"}, {.name = "userlist.txt"}, {.name = "items.tsv"}};
    for (int i = 0; i < N_DATA; i++) m[M_DATA + i].name = data_names[i];
    ds_impl *impl = calloc(1, sizeof *impl);
    if (!impl) return tema_fail(err, TEMA_ENOMEM, "out of memory reading %s", path);
    tema_dataset *d = &impl->d;
    uint8_t *used = NULL;
    tema_status st = read_members(path, m, M_DATA + N_DATA, err);
    if (st != TEMA_OK) {
        free(impl);
        return st;
    }
    st = parse_meta(m, impl, path, err);
    int present = 0;
    for (int i = 0; i < N_DATA; i++) present += m[M_DATA + i].data != NULL;
    if (st == TEMA_OK && !present) st = missing(path, "traindata_new.txt", err);
    const int64_t n_items = (int64_t)d->n_x + d->n_y;
    if (st == TEMA_OK) {
        used = calloc((size_t)n_items, 1);
        if (!used) st = tema_fail(err, TEMA_ENOMEM, "out of memory reading %s", path);
    }
    /* Parse everything before printing so a malformed file prints no half table. */
    tema_split sp[N_DATA];
    memset(sp, 0, sizeof sp);
    for (int i = 0; i < N_DATA && st == TEMA_OK; i++)
        if (m[M_DATA + i].data) st = parse_data(&m[M_DATA + i], is_eval_name(data_names[i]), d, &sp[i], err);
    if (st == TEMA_OK) {
        fprintf(out, "## Statistics of `%s`\n\n", path);
        fprintf(out, "| file | lines | users | interactions (X / Y) | avg len | min | max | targets X / Y |\n");
        fprintf(out, "|---|---|---|---|---|---|---|---|\n");
        for (int i = 0; i < N_DATA; i++) {
            if (!m[M_DATA + i].data) continue;
            sp[i].file = data_names[i];
            print_file_row(out, &sp[i], d->n_x, d->n_users);
            mark_items(&sp[i], used);
        }
        fprintf(out, "\nLengths count entries per line, target included for valid/test lines.\n\n");
        int64_t tx = 0, ty = 0, unused = 0;
        for (int64_t i = 0; i < n_items; i++) {
            if (d->title && d->title[i]) *(i < d->n_x ? &tx : &ty) += 1;
            unused += !used[i];
        }
        char a[32], b[32], c[32], e[32], f[32], g[32];
        fprintf(out, "| | X | Y | all |\n|---|---|---|---|\n");
        fprintf(out, "| items | %s | %s | %s |\n", thousands(d->n_x, a), thousands(d->n_y, b), thousands(n_items, c));
        fprintf(out, "| items with a title | %s (%s) | %s (%s) | %s (%s) |\n", thousands(tx, a), percent(tx, d->n_x, b),
                thousands(ty, c), percent(ty, d->n_y, e), thousands(tx + ty, f), percent(tx + ty, n_items, g));
        fprintf(out, "| items with categories | - | - | %s |\n", thousands(impl->n_categorised, a));
        fprintf(out, "\nUsers in `userlist.txt`: %s. Items that occur in no data file of this bundle: %s.\n",
                thousands(d->n_users, a), thousands(unused, b));
        if (!impl->items_buf) fprintf(out, "\nNo `items.tsv`: no titles.\n");
    }
    for (int i = 0; i < N_DATA; i++) split_free(&sp[i]);
    free(used);
    members_free(m, M_DATA + N_DATA);
    tema_dataset_free(d);
    return st;
}
