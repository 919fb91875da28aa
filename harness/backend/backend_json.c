/*
 * The observation log: one JSON object per line, written with one write(2)
 * on an O_APPEND descriptor. The text comes from uc_json
 * (harness/common/uc_json.h): its string policy keeps any bytes a peer sent
 * (a certificate subject, a header) visible and the line valid JSON.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/uc_err.h"
#include "../common/uc_io.h"
#include "backend.h"

double
backend_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int
backend_log_open(
    struct backend_log *log, const char *path, const char *name, char *err, size_t err_len)
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
        uc_err_set(err, err_len, "--log: cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    log->owned = 1;
    return 0;
}

void
backend_log_close(struct backend_log *log)
{
    if (log == NULL)
        return;
    if (log->owned && log->fd >= 0)
        close(log->fd);
    log->fd = -1;
    uc_json_dispose(&log->jw);
}

struct uc_json *
backend_log_begin(struct backend_log *log, const char *event, unsigned long conn)
{
    struct uc_json *jw = &log->jw;

    uc_json_reset(jw);
    uc_json_obj_begin(jw);
    uc_json_key(jw, "event");
    uc_json_str(jw, event);
    uc_json_key(jw, "name");
    uc_json_str(jw, log->name);
    if (log->listener != 0) {
        uc_json_key(jw, "listener");
        uc_json_int(jw, (long long) log->listener);
    }
    if (conn != 0) {
        uc_json_key(jw, "conn");
        uc_json_int(jw, (long long) conn);
    }
    uc_json_key(jw, "t");
    uc_json_double(jw, backend_now() - log->t0);
    return jw;
}

void
backend_log_end(struct backend_log *log)
{
    struct uc_json *jw = &log->jw;

    uc_json_obj_end(jw);
    uc_buf_putc(&jw->buf, '\n');
    if (jw->buf.failed || log->fd < 0)
        return;
    (void) uc_write_all(log->fd, jw->buf.data, jw->buf.len);
}
