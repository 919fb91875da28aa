/* uc_err: the caller-owned error buffer (see uc_err.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "uc_err.h"

void
uc_err_set(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;

    if (err_len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* Starts a new line at the end of err; returns where, or err_len if full. */
static size_t
line_begin(char *err, size_t err_len)
{
    size_t used = strnlen(err, err_len);

    if (used + 1 >= err_len)
        return err_len;
    if (used > 0) {
        err[used++] = '\n';
        err[used] = '\0';
    }
    return used;
}

void
uc_err_add(char *err, size_t err_len, const char *fmt, ...)
{
    size_t used;
    va_list ap;

    if (err_len == 0 || (used = line_begin(err, err_len)) >= err_len)
        return;
    va_start(ap, fmt);
    vsnprintf(err + used, err_len - used, fmt, ap);
    va_end(ap);
}

void
uc_err_vadd(char *err, size_t err_len, const char *prefix, const char *fmt, va_list ap)
{
    size_t used;
    int n;

    if (err_len == 0 || (used = line_begin(err, err_len)) >= err_len)
        return;
    n = snprintf(err + used, err_len - used, "%s", prefix);
    if (n < 0 || (size_t) n >= err_len - used)
        return;
    vsnprintf(err + used + (size_t) n, err_len - used - (size_t) n, fmt, ap);
}

void
uc_err_add_prefixed(char *err, size_t err_len, const char *prefix, const char *lines)
{
    while (*lines != '\0') {
        size_t n = strcspn(lines, "\n");

        if (n > 0)
            uc_err_add(err, err_len, "%s: %.*s", prefix, (int) n, lines);
        lines += n;
        if (*lines == '\n')
            lines++;
    }
}

void
uc_err_ssl(char *err, size_t err_len)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256];
    size_t used;

    ERR_clear_error();
    if (e == 0 || err_len == 0)
        return;
    ERR_error_string_n(e, buf, sizeof(buf));
    used = strnlen(err, err_len);
    if (used + 1 < err_len)
        snprintf(err + used, err_len - used, ": %s", buf);
}

void
uc_ssl_errors(char *out, size_t out_len)
{
    unsigned long e;
    size_t used = 0;
    char buf[256];

    if (out_len > 0)
        out[0] = '\0';
    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        if (used + strlen(buf) + 4 < out_len)
            used += (size_t) snprintf(out + used, out_len - used, "%s%s", used ? " " : "", buf);
    }
}

void
uc_errs_vadd(struct uc_errs *e, const char *prefix, const char *fmt, va_list ap)
{
    e->num++;
    if (e->max > 0 && e->num > e->max)
        return;
    if (e->max > 0 && e->num == e->max) {
        uc_err_add(e->err, e->err_len, "%stoo many errors", prefix);
        return;
    }
    uc_err_vadd(e->err, e->err_len, prefix, fmt, ap);
}

void
uc_errs_add(struct uc_errs *e, const char *prefix, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    uc_errs_vadd(e, prefix, fmt, ap);
    va_end(ap);
}
