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

#include <stddef.h>

/* Overwrites err with the message. */
void uc_err_set(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends the message as a new line. */
void uc_err_add(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends every line of `lines` as a new line "PREFIX: line". */
void uc_err_add_prefixed(char *err, size_t err_len, const char *prefix, const char *lines);
/* Appends ": " and the most recent OpenSSL error (the one closest to the
 * call that failed), if any, to the current line; clears OpenSSL's queue. */
void uc_err_ssl(char *err, size_t err_len);
/* Writes every queued OpenSSL error, oldest first, separated by spaces
 * (as nginx logs them) into out; clears the queue. */
void uc_ssl_errors(char *out, size_t out_len);

#endif
