/*
 * uc_err: the caller-owned error buffer (redis's anetSetError, HAProxy's
 * err messages): library code writes what went wrong into `char *err` of
 * `err_len` bytes and returns -1; only main prints. Several problems are
 * collected one per line (every configuration error at once): lines are
 * separated by '\n', with none after the last. A full buffer keeps what it
 * has; err_len 0 is allowed.
 */
#ifndef UC_ERR_H
#define UC_ERR_H

#include <stdarg.h>
#include <stddef.h>

/* Overwrites err with the message. */
void
uc_err_set(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Appends the message as a new line. */
void
uc_err_add(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Appends a new line: prefix (may be "") and the message (for callers that
 * take a format themselves, such as a parser's error(where, fmt, ...)). */
void uc_err_vadd(char *err, size_t err_len, const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
/* Appends every line of `lines` as a new line "PREFIX: line". */
void uc_err_add_prefixed(char *err, size_t err_len, const char *prefix, const char *lines);
/* Appends ": " and the most recent OpenSSL error (the one closest to the
 * call that failed), if any, to the current line; clears OpenSSL's queue. */
void uc_err_ssl(char *err, size_t err_len);
/* Writes every queued OpenSSL error, oldest first, separated by spaces
 * (as nginx logs them) into out; clears the queue. */
void uc_ssl_errors(char *out, size_t out_len);

/*
 * An error collector for a parser or loader that reports every problem:
 * each uc_errs_add() appends one line "PREFIXmessage" to err and counts it.
 * With max > 0, the max-th line is "PREFIXtoo many errors" and later ones
 * are only counted. Set err, err_len (and max); num starts at 0.
 */
struct uc_errs {
    char *err;
    size_t err_len;
    int num; /* errors reported, those past the cap included */
    int max; /* 0: no cap */
};

void uc_errs_add(struct uc_errs *e, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void uc_errs_vadd(struct uc_errs *e, const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
