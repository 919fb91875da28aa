/*
 * A small JSON writer and the observation log.
 *
 * Strings are escaped for any input bytes: quotes, backslashes and control
 * characters are escaped; valid UTF-8 passes through; any byte that is not
 * part of a valid UTF-8 sequence is written as \u00XX (so a certificate
 * subject with arbitrary bytes stays one valid JSON line).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"

static void json_put(struct json_writer *jw, const char *s, size_t n)
{
    if (jw->oom)
        return;
    if (jw->len + n + 1 > jw->cap) {
        size_t cap = jw->cap ? jw->cap : 1024;
        char *p;
        while (cap < jw->len + n + 1)
            cap *= 2;
        p = realloc(jw->buf, cap);
        if (p == NULL) {
            jw->oom = 1;
            return;
        }
        jw->buf = p;
        jw->cap = cap;
    }
    memcpy(jw->buf + jw->len, s, n);
    jw->len += n;
    jw->buf[jw->len] = '\0';
}

static void json_putc(struct json_writer *jw, char c)
{
    json_put(jw, &c, 1);
}

/* Separator before a value: a comma unless first at its level or after a key. */
static void json_pre(struct json_writer *jw)
{
    if (!jw->after_key && jw->comma)
        json_putc(jw, ',');
    jw->after_key = 0;
}

void json_reset(struct json_writer *jw)
{
    jw->len = 0;
    jw->comma = 0;
    jw->after_key = 0;
    jw->oom = 0;
    if (jw->buf)
        jw->buf[0] = '\0';
}

void json_free(struct json_writer *jw)
{
    if (jw == NULL)
        return;
    free(jw->buf);
    memset(jw, 0, sizeof(*jw));
}

void json_obj_begin(struct json_writer *jw)
{
    json_pre(jw);
    json_putc(jw, '{');
    jw->comma = 0;
}

void json_obj_end(struct json_writer *jw)
{
    json_putc(jw, '}');
    jw->comma = 1;
}

void json_arr_begin(struct json_writer *jw)
{
    json_pre(jw);
    json_putc(jw, '[');
    jw->comma = 0;
}

void json_arr_end(struct json_writer *jw)
{
    json_putc(jw, ']');
    jw->comma = 1;
}

void json_key(struct json_writer *jw, const char *key)
{
    if (jw->comma)
        json_putc(jw, ',');
    json_putc(jw, '"');
    json_put(jw, key, strlen(key)); /* keys are our own literals */
    json_put(jw, "\":", 2);
    jw->after_key = 1;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if not valid. */
static size_t utf8_seq_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    unsigned int cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void json_strn(struct json_writer *jw, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    char esc[8];

    json_pre(jw);
    json_putc(jw, '"');
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        size_t n;

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            json_put(jw, esc, 2);
            i++;
        } else if (c == '\n') {
            json_put(jw, "\\n", 2);
            i++;
        } else if (c == '\r') {
            json_put(jw, "\\r", 2);
            i++;
        } else if (c == '\t') {
            json_put(jw, "\\t", 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            json_put(jw, esc, 6);
            i++;
        } else if (c < 0x80) {
            json_putc(jw, (char)c);
            i++;
        } else if ((n = utf8_seq_len(p + i, len - i)) != 0) {
            json_put(jw, (const char *)p + i, n);
            i += n;
        } else {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            json_put(jw, esc, 6);
            i++;
        }
    }
    json_putc(jw, '"');
    jw->comma = 1;
}

void json_str(struct json_writer *jw, const char *s)
{
    if (s == NULL)
        json_null(jw);
    else
        json_strn(jw, s, strlen(s));
}

void json_int(struct json_writer *jw, long long v)
{
    char num[32];
    int n = snprintf(num, sizeof(num), "%lld", v);

    json_pre(jw);
    json_put(jw, num, (size_t)n);
    jw->comma = 1;
}

void json_double(struct json_writer *jw, double v)
{
    char num[64];
    int n = snprintf(num, sizeof(num), "%.6f", v);

    json_pre(jw);
    json_put(jw, num, (size_t)n);
    jw->comma = 1;
}

void json_bool(struct json_writer *jw, int v)
{
    json_pre(jw);
    if (v)
        json_put(jw, "true", 4);
    else
        json_put(jw, "false", 5);
    jw->comma = 1;
}

void json_null(struct json_writer *jw)
{
    json_pre(jw);
    json_put(jw, "null", 4);
    jw->comma = 1;
}

/* ---- the observation log ------------------------------------------------- */

double backend_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int backend_log_open(struct backend_log *log, const char *path, const char *name, char *err,
                     size_t err_len)
{
    memset(log, 0, sizeof(*log));
    log->name = name;
    log->t0 = backend_now();
    if (path == NULL) {
        log->fd = STDOUT_FILENO;
        log->owned = 0;
        return 0;
    }
    /* O_APPEND: one write(2) per line keeps lines whole even if another
     * process appends to the same file. */
    log->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log->fd < 0) {
        snprintf(err, err_len, "--log: cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    log->owned = 1;
    return 0;
}

void backend_log_close(struct backend_log *log)
{
    if (log == NULL)
        return;
    if (log->owned && log->fd >= 0)
        close(log->fd);
    log->fd = -1;
    json_free(&log->jw);
}

struct json_writer *backend_log_begin(struct backend_log *log, const char *event,
                                      unsigned long conn)
{
    struct json_writer *jw = &log->jw;

    json_reset(jw);
    json_obj_begin(jw);
    json_key(jw, "event");
    json_str(jw, event);
    json_key(jw, "name");
    json_str(jw, log->name);
    if (log->listener != 0) {
        json_key(jw, "listener");
        json_int(jw, (long long)log->listener);
    }
    if (conn != 0) {
        json_key(jw, "conn");
        json_int(jw, (long long)conn);
    }
    json_key(jw, "t");
    json_double(jw, backend_now() - log->t0);
    return jw;
}

void backend_log_end(struct backend_log *log)
{
    struct json_writer *jw = &log->jw;
    size_t off = 0;

    json_obj_end(jw);
    json_putc(jw, '\n');
    if (jw->oom || log->fd < 0)
        return;
    while (off < jw->len) {
        ssize_t n = write(log->fd, jw->buf + off, jw->len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        off += (size_t)n;
    }
}
