/* core/util.c - files, hashing, random numbers, clocks. */
#include "util.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tema_build_config.h"

static tema_status write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return TEMA_EIO;
        }
        p += w;
        len -= (size_t)w;
    }
    return TEMA_OK;
}

static void fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = '\0';
    else if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

#ifdef TEMA_TEST_HOOKS
/* Test builds: TEMA_TEST_FAIL_IO=N makes the Nth write, fsync or rename below fail (as a full disk
 * or a failing device would), so a test can walk N over a whole run (tests/test_train.c). */
static bool io_fault(int *eno, int fake)
{
    static long n = -1, count = 0;
    if (n < 0) {
        const char *v = getenv("TEMA_TEST_FAIL_IO");
        n = v && *v ? atol(v) : 0;
    }
    if (n <= 0 || ++count != n) return false;
    *eno = fake;
    return true;
}
#else
static bool io_fault(int *eno, int fake)
{
    (void)eno, (void)fake;
    return false;
}
#endif

tema_status tema_write_file_atomic(const char *path, const void *data, size_t len, tema_err *err)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return tema_fail(err, TEMA_EINVAL, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return tema_fail(err, TEMA_EIO, "%s: cannot create: %s (hint: does the folder exist and is it writable?)",
                         tmp, strerror(errno));
    int e = 0;
    if (io_fault(&e, ENOSPC) || write_all(fd, data, len) != TEMA_OK || io_fault(&e, EIO) || fsync(fd) != 0) {
        if (!e) e = errno;
        close(fd);
        unlink(tmp);
        return tema_fail(err, TEMA_EIO, "%s: write failed: %s (hint: is the disk full?)", path, strerror(e));
    }
    close(fd);
    if (io_fault(&e, EIO) || rename(tmp, path) != 0) {
        if (!e) e = errno;
        unlink(tmp);
        return tema_fail(err, TEMA_EIO, "%s: rename failed: %s", path, strerror(e));
    }
    fsync_parent(path);
    return TEMA_OK;
}

tema_status tema_append_line(const char *path, const char *line, tema_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return tema_fail(err, TEMA_EIO, "%s: cannot open for append: %s", path, strerror(errno));
    size_t n = strlen(line);
    char *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return tema_fail(err, TEMA_ENOMEM, "out of memory appending to %s", path);
    }
    memcpy(buf, line, n);
    buf[n] = '\n';
    /* One write() of the whole line, and on a short write (disk full) the file cut back to where
     * it was: a record is whole or absent. A crash mid-write can still tear the last line; the
     * readers of such files (tema_results_truncate_epochs) drop a torn last line. */
    const off_t before = lseek(fd, 0, SEEK_END);
    int saved = 0;
    /* a simulated full disk writes half the line first, as a real one may */
    tema_status st = io_fault(&saved, ENOSPC) ? (write_all(fd, buf, (n + 1) / 2), TEMA_EIO) : write_all(fd, buf, n + 1);
    if (st != TEMA_OK && !saved) saved = errno;
    free(buf);
    if (st == TEMA_OK && (io_fault(&saved, EIO) || fsync(fd) != 0)) st = TEMA_EIO, saved = saved ? saved : errno;
    if (st != TEMA_OK && before >= 0 && ftruncate(fd, before) == 0) (void)fsync(fd);
    close(fd);
    if (st != TEMA_OK)
        return tema_fail(err, st, "%s: append failed: %s; the file is as it was before", path, strerror(saved));
    return TEMA_OK;
}

tema_status tema_read_file(const char *path, char **data, size_t *len, tema_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return tema_fail(err, errno == ENOENT ? TEMA_ENOTFOUND : TEMA_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return tema_fail(err, TEMA_ENOMEM, "out of memory reading %s", path);
    }
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return tema_fail(err, TEMA_ENOMEM, "out of memory reading %s", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f), why = errno;
    fclose(f);
    if (bad) {
        free(buf);
        return tema_fail(err, TEMA_EIO, "%s: read error: %s", path, strerror(why));
    }
    buf[n] = '\0';
    *data = buf;
    if (len) *len = n;
    return TEMA_OK;
}

tema_status tema_mkdirs(const char *path, tema_err *err)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return tema_fail(err, TEMA_EINVAL, "%s: path too long", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return tema_fail(err, TEMA_EIO, "%s: cannot create folder: %s", buf, strerror(errno));
            *p = c;
            if (c == '\0') break;
        }
    }
    return TEMA_OK;
}

bool tema_file_exists(const char *dir, const char *name)
{
    char path[PATH_MAX];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return false;
    return stat(path, &st) == 0;
}

bool tema_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

void tema_fmt_duration(double sec, char *buf, size_t cap)
{
    if (!(sec >= 0) || sec > 1e7) {
        snprintf(buf, cap, "?");
        return;
    }
    long s = (long)(sec + 0.5);
    if (s >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else snprintf(buf, cap, "%ld:%02ld", s / 60, s % 60);
}

uint64_t tema_hash64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void tema_rng_seed(tema_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t tema_rng_next(tema_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double tema_rng_uniform(tema_rng *r) { return (double)(tema_rng_next(r) >> 11) * 0x1.0p-53; }

uint64_t tema_rng_below(tema_rng *r, uint64_t n)
{
    if (n <= 1) return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = tema_rng_next(r);
    while (x >= limit);
    return x % n;
}

double tema_rng_normal(tema_rng *r)
{
    double u1 = tema_rng_uniform(r), u2 = tema_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

double tema_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t tema_peak_rss(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (size_t)ru.ru_maxrss * 1024u;
}

char *tema_abspath(const char *path)
{
    if (!path) return NULL;
    if (path[0] == '/') return strdup(path);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return strdup(path);
    /* Keep it lexical (no realpath): the file may not exist yet, and links stay as written. */
    const char *p = path;
    while (p[0] == '.' && p[1] == '/') p += 2;
    size_t n = strlen(cwd) + strlen(p) + 2;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%s/%s", cwd, p);
    return out;
}

const char *tema_git_commit(void)
{
    const char *env = getenv("TEMA_GIT_COMMIT");
    return env && *env ? env : TEMA_GIT_COMMIT_BUILD;
}

/* ---- growing strings ---- */

static bool sb_reserve(tema_sb *b, size_t extra)
{
    if (b->oom) return false;
    if (b->n + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void tema_sb_addn(tema_sb *b, const char *s, size_t len)
{
    if (!sb_reserve(b, len)) return;
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

void tema_sb_add(tema_sb *b, const char *s) { tema_sb_addn(b, s, strlen(s)); }

void tema_sb_printf(tema_sb *b, const char *fmt, ...)
{
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0) b->oom = true;
    else if (sb_reserve(b, (size_t)k)) {
        vsnprintf(b->p + b->n, (size_t)k + 1, fmt, again);
        b->n += (size_t)k;
    }
    va_end(again);
}

const char *tema_sb_str(const tema_sb *b) { return b->p && !b->oom ? b->p : ""; }

void tema_sb_reset(tema_sb *b)
{
    b->n = 0;
    if (b->p) b->p[0] = '\0';
}

char *tema_sb_take(tema_sb *b)
{
    char *p = NULL;
    if (!b->oom) p = b->p ? b->p : strdup("");
    else free(b->p);
    memset(b, 0, sizeof *b);
    return p;
}

void tema_sb_free(tema_sb *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

tema_status tema_write_npy(const char *path, const float *x, int64_t rows, int64_t cols, tema_err *err)
{
    char hdr[128];
    int hl = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                      (long long)rows, (long long)cols);
    size_t total = 10 + (size_t)hl + 1, pad = (64 - total % 64) % 64;
    size_t hlen = (size_t)hl + pad + 1, data = (size_t)rows * (size_t)cols * sizeof(float);
    unsigned char *buf = malloc(10 + hlen + data);
    if (!buf) return tema_fail(err, TEMA_ENOMEM, "out of memory writing %s", path);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8);
    memcpy(buf + 10, hdr, (size_t)hl);
    memset(buf + 10 + hl, ' ', pad);
    buf[10 + hlen - 1] = '\n';
    memcpy(buf + 10 + hlen, x, data); /* little-endian hosts only, as the reader checks */
    tema_status st = tema_write_file_atomic(path, buf, 10 + hlen + data, err);
    free(buf);
    return st;
}

void tema_remove_stale_temps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *t = strstr(e->d_name, ".tmp.");
        if (!t) continue;
        char *end;
        long pid = strtol(t + 5, &end, 10);
        if (*end || pid <= 0) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* its writer may be alive: not ours */
        char path[4352];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path) unlink(path);
    }
    closedir(d);
}
