/* tema/status.h - status codes and the error record every fallible call fills.
 *
 * Convention (SQLite style): a function that can fail returns a tema_status and,
 * on failure, writes a one-line human message into the caller-owned tema_err.
 * Messages name the file, line and field where one is known and end with a hint.
 * Nothing in tema (core or plugin) calls exit() or abort() on bad input.
 */
#ifndef TEMA_STATUS_H
#define TEMA_STATUS_H

#include <stdarg.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tema_status {
    TEMA_OK = 0,
    TEMA_EINVAL = 1,      /* bad argument or configuration value */
    TEMA_ENOMEM = 2,      /* allocation failed */
    TEMA_EIO = 3,         /* file or network I/O failed */
    TEMA_EFORMAT = 4,     /* malformed input file */
    TEMA_ENOTFOUND = 5,   /* file, key or plugin does not exist */
    TEMA_EABI = 6,        /* plugin ABI mismatch */
    TEMA_EUNSUPPORTED = 7,/* valid request this component cannot do */
    TEMA_EINTERRUPTED = 8,/* stopped by a signal; state was saved */
    TEMA_EINTERNAL = 9    /* a bug: please report */
} tema_status;

/* Caller-owned error record. Zero-initialise; functions overwrite it on failure. */
typedef struct tema_err {
    tema_status code;
    char msg[1024];
} tema_err;

/* Set err (may be NULL) and return status; usable from plugins without linking the core. */
static inline tema_status tema_fail(tema_err *err, tema_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static inline tema_status tema_fail(tema_err *err, tema_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = status;
    }
    return status;
}

/* Short name of a status code ("invalid argument", ...); static storage. */
static inline const char *tema_status_name(tema_status s)
{
    static const char *const names[] = {"ok", "invalid argument", "out of memory", "I/O error",
                                        "malformed input", "not found", "ABI mismatch",
                                        "unsupported", "interrupted", "internal error"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "unknown status";
}

#ifdef __cplusplus
}
#endif
#endif
