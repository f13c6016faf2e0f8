/* tema/npy.h - a reader of 2-D NumPy .npy matrices, header-only so that plugins (which
 * cannot call the core) can use it.
 *
 * Accepted: format versions 1.0, 2.0 and 3.0; dtype little-endian float32 ('<f4') or
 * float64 ('<f8', converted to float32); C order; exactly two dimensions. Everything
 * else is refused with a message that names the file and what is wrong, and ends with a
 * hint (usually the NumPy line that writes an acceptable file):
 *
 *     np.save("x.npy", np.ascontiguousarray(feats, dtype=np.float32))
 *
 * Values must be finite: the first NaN or Inf is reported by row and column.
 *
 * Ownership: tema_npy_read() fills a caller-owned tema_npy_matrix whose `data` was
 * allocated with malloc(); the caller releases it with tema_npy_free() (or free(data)).
 * On failure nothing is allocated and the matrix is zeroed.
 */
#ifndef TEMA_NPY_H
#define TEMA_NPY_H

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tema/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tema_npy_matrix {
    int64_t rows, cols;
    float *data; /* [rows * cols], row-major; malloc()ed, owned by the caller */
} tema_npy_matrix;

static inline void tema_npy_free(tema_npy_matrix *m)
{
    if (!m) return;
    free(m->data);
    m->data = NULL;
    m->rows = m->cols = 0;
}

#define TEMA_NPY_HINT "hint: write it with np.save(path, np.ascontiguousarray(x, dtype=np.float32)) for a 2-D x"

/* Value of `key` in the header dict: points just after the ':' (spaces skipped), or NULL. */
static inline const char *tema_npy__field(const char *hdr, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = hdr; (p = strchr(p, '\'')) != NULL; p++) {
        if (strncmp(p + 1, key, n) == 0 && p[1 + n] == '\'') {
            const char *v = p + 2 + n;
            while (*v == ' ') v++;
            if (*v != ':') return NULL;
            v++;
            while (*v == ' ') v++;
            return v;
        }
    }
    return NULL;
}

static inline uint32_t tema_npy__le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline int tema_npy__host_is_le(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Read a 2-D matrix. expect_rows >= 0: the file must have exactly that many rows (e.g. one
 * per item); `what` names the rows for that message ("items (n_x + n_y, X first)"), may be NULL. */
static inline tema_status tema_npy_read(const char *path, int64_t expect_rows, const char *what, tema_npy_matrix *out,
                                        tema_err *err)
{
    if (!out) return tema_fail(err, TEMA_EINVAL, "npy: no output matrix given");
    memset(out, 0, sizeof *out);
    if (!path || !path[0]) return tema_fail(err, TEMA_EINVAL, "npy: empty file name; hint: give the path of a .npy file");
    FILE *f = fopen(path, "rb");
    if (!f)
        return tema_fail(err, errno == ENOENT ? TEMA_ENOTFOUND : TEMA_EIO, "%s: cannot open: %s%s", path,
                         strerror(errno),
                         errno == ENOENT ? "; hint: relative paths are read from the current directory" : "");
    tema_status st = TEMA_OK;
    char *hdr = NULL;
    float *data = NULL;
    void *chunk = NULL;
    unsigned char pre[12];
    size_t got = fread(pre, 1, 10, f);
    if (got < 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        st = tema_fail(err, TEMA_EFORMAT, "%s: not a .npy file (bad magic: the file does not start with \\x93NUMPY); %s",
                       path, TEMA_NPY_HINT);
        goto done;
    }
    int major = pre[6], minor = pre[7];
    uint32_t hlen;
    if (major == 1) {
        hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8;
    } else if (major == 2 || major == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            st = tema_fail(err, TEMA_EFORMAT, "%s: truncated .npy header; hint: the file was cut short, write it again",
                           path);
            goto done;
        }
        hlen = tema_npy__le32(pre + 8);
    } else {
        st = tema_fail(err, TEMA_EUNSUPPORTED, "%s: .npy format version %d.%d is not supported (1.0, 2.0, 3.0 are); %s",
                       path, major, minor, TEMA_NPY_HINT);
        goto done;
    }
    if (hlen > (1u << 24)) {
        st = tema_fail(err, TEMA_EFORMAT, "%s: .npy header length %u is implausible; hint: the file is corrupt", path,
                       (unsigned)hlen);
        goto done;
    }
    hdr = malloc((size_t)hlen + 1);
    if (!hdr) {
        st = tema_fail(err, TEMA_ENOMEM, "%s: out of memory reading the .npy header", path);
        goto done;
    }
    if (fread(hdr, 1, hlen, f) != hlen) {
        st = tema_fail(err, TEMA_EFORMAT, "%s: truncated .npy header; hint: the file was cut short, write it again",
                       path);
        goto done;
    }
    hdr[hlen] = '\0';

    /* dtype */
    const char *descr = tema_npy__field(hdr, "descr");
    if (!descr || (*descr != '\'' && *descr != '"')) {
        st = tema_fail(err, TEMA_EFORMAT, "%s: the .npy header has no 'descr' string (dtype); %s", path, TEMA_NPY_HINT);
        goto done;
    }
    char dtype[32] = "";
    {
        const char q = *descr++;
        size_t k = 0;
        while (descr[k] && descr[k] != q && k + 1 < sizeof dtype) {
            dtype[k] = descr[k];
            k++;
        }
        dtype[k] = '\0';
    }
    size_t elem;
    if (!strcmp(dtype, "<f4")) elem = 4;
    else if (!strcmp(dtype, "<f8")) elem = 8;
    else {
        const int big = dtype[0] == '>' && (!strcmp(dtype + 1, "f4") || !strcmp(dtype + 1, "f8"));
        st = tema_fail(err, TEMA_EUNSUPPORTED,
                       "%s: unsupported dtype '%s'%s; tema reads little-endian float32 ('<f4') or float64 ('<f8'); %s",
                       path, dtype, big ? " (big-endian)" : "", TEMA_NPY_HINT);
        goto done;
    }

    /* order */
    const char *fo = tema_npy__field(hdr, "fortran_order");
    if (!fo || (strncmp(fo, "False", 5) != 0 && strncmp(fo, "True", 4) != 0)) {
        st = tema_fail(err, TEMA_EFORMAT, "%s: the .npy header has no fortran_order True/False; %s", path,
                       TEMA_NPY_HINT);
        goto done;
    }
    if (!strncmp(fo, "True", 4)) {
        st = tema_fail(err, TEMA_EUNSUPPORTED,
                       "%s: the array is stored in Fortran (column-major) order; tema reads C order only; %s", path,
                       TEMA_NPY_HINT);
        goto done;
    }

    /* shape: a tuple of non-negative integers */
    const char *sh = tema_npy__field(hdr, "shape");
    if (!sh || *sh != '(') {
        st = tema_fail(err, TEMA_EFORMAT, "%s: the .npy header has no shape tuple; %s", path, TEMA_NPY_HINT);
        goto done;
    }
    int64_t dims[8];
    int ndim = 0;
    {
        const char *p = sh + 1;
        char shape_text[128];
        const char *close = strchr(p, ')');
        size_t sl = close ? (size_t)(close - sh + 1) : 0;
        if (sl >= sizeof shape_text) sl = sizeof shape_text - 1;
        memcpy(shape_text, sh, sl);
        shape_text[sl] = '\0';
        for (;;) {
            while (*p == ' ' || *p == ',') p++;
            if (*p == ')') break;
            char *end;
            errno = 0;
            long long v = strtoll(p, &end, 10);
            if (end == p || v < 0 || errno) {
                st = tema_fail(err, TEMA_EFORMAT, "%s: cannot read the shape %s in the .npy header; %s", path,
                               close ? shape_text : "(unterminated)", TEMA_NPY_HINT);
                goto done;
            }
            if (ndim < 8) dims[ndim] = v;
            ndim++;
            p = end;
            while (*p == 'L' || *p == ' ') p++; /* Python 2 longs */
            if (*p != ',' && *p != ')') {
                st = tema_fail(err, TEMA_EFORMAT, "%s: cannot read the shape %s in the .npy header; %s", path,
                               close ? shape_text : "(unterminated)", TEMA_NPY_HINT);
                goto done;
            }
        }
        if (ndim != 2) {
            st = tema_fail(err, TEMA_EFORMAT,
                           "%s: the array has %d dimension%s (shape %s); want a 2-D [rows, features] matrix; "
                           "hint: reshape it, e.g. x.reshape(len(x), -1), before np.save",
                           path, ndim, ndim == 1 ? "" : "s", shape_text);
            goto done;
        }
    }
    const int64_t rows = dims[0], cols = dims[1];
    if (expect_rows >= 0 && rows != expect_rows) {
        st = tema_fail(err, TEMA_EINVAL,
                       "%s: %lld rows, but the dataset has %lld %s; hint: one row per item in global item order "
                       "(domain X items first, then Y), computed for this dataset",
                       path, (long long)rows, (long long)expect_rows, what ? what : "rows");
        goto done;
    }
    if (rows > 0 && cols > 0 && (uint64_t)rows > (uint64_t)INT64_MAX / 8 / (uint64_t)cols) {
        st = tema_fail(err, TEMA_EFORMAT, "%s: shape (%lld, %lld) is too large", path, (long long)rows,
                       (long long)cols);
        goto done;
    }
    const int64_t n = rows * cols;
    /* Memory only for data that is there: a header of a few bytes can promise terabytes. */
    {
        struct stat sb;
        const long at = ftell(f);
        if (at >= 0 && fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode)) {
            const uint64_t have = sb.st_size > at ? (uint64_t)(sb.st_size - at) : 0;
            if ((uint64_t)n > have / elem) {
                st = tema_fail(err, TEMA_EFORMAT,
                               "%s: truncated data: the header promises %lld x %lld values (%llu bytes) but the file "
                               "ends after %llu of them; hint: the file was cut short, write it again",
                               path, (long long)rows, (long long)cols, (unsigned long long)n * elem,
                               (unsigned long long)(have / elem));
                goto done;
            }
        }
    }
    data = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!data) {
        st = tema_fail(err, TEMA_ENOMEM, "%s: out of memory for a %lld x %lld matrix", path, (long long)rows,
                       (long long)cols);
        goto done;
    }

    /* data: read in chunks (converting float64, swapping bytes on a big-endian host) */
    const int64_t chunk_n = 1 << 16;
    chunk = malloc((size_t)chunk_n * elem);
    if (!chunk) {
        st = tema_fail(err, TEMA_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    const int swap = !tema_npy__host_is_le();
    for (int64_t at = 0; at < n;) {
        const int64_t want = n - at < chunk_n ? n - at : chunk_n;
        const size_t r = fread(chunk, elem, (size_t)want, f);
        if ((int64_t)r != want) {
            st = tema_fail(err, TEMA_EFORMAT,
                           "%s: truncated data: the header promises %lld x %lld values (%lld bytes) but the file ends "
                           "after %lld of them; hint: the file was cut short, write it again",
                           path, (long long)rows, (long long)cols, (long long)(n * (int64_t)elem),
                           (long long)(at + (int64_t)r));
            goto done;
        }
        unsigned char *b = (unsigned char *)chunk;
        if (swap)
            for (int64_t i = 0; i < want; i++)
                for (size_t k = 0; k < elem / 2; k++) {
                    unsigned char t = b[i * elem + k];
                    b[i * elem + k] = b[i * elem + elem - 1 - k];
                    b[i * elem + elem - 1 - k] = t;
                }
        for (int64_t i = 0; i < want; i++) {
            double v;
            if (elem == 4) {
                float x;
                memcpy(&x, b + i * 4, 4);
                v = x;
            } else {
                memcpy(&v, b + i * 8, 8);
            }
            if (!isfinite(v) || (elem == 8 && fabs(v) > 3.4028234663852886e38)) {
                const int64_t idx = at + i;
                st = tema_fail(err, TEMA_EFORMAT,
                               "%s: %s at row %lld, column %lld%s; hint: recompute the features or replace "
                               "non-finite values (np.nan_to_num) before saving",
                               path, isnan(v) ? "NaN" : "Inf", (long long)(idx / cols), (long long)(idx % cols),
                               isfinite(v) ? " (a float64 too large for float32)" : "");
                goto done;
            }
            data[at + i] = (float)v;
        }
        at += want;
    }
    {
        unsigned char extra;
        if (fread(&extra, 1, 1, f) == 1) {
            st = tema_fail(err, TEMA_EFORMAT,
                           "%s: bytes follow the %lld x %lld matrix; this is not a single-array .npy file; "
                           "hint: save one array per file with np.save (not np.savez or appended arrays)",
                           path, (long long)rows, (long long)cols);
            goto done;
        }
    }
    out->rows = rows;
    out->cols = cols;
    out->data = data;
    data = NULL;
done:
    free(chunk);
    free(data);
    free(hdr);
    fclose(f);
    return st;
}

#ifdef __cplusplus
}
#endif
#endif
