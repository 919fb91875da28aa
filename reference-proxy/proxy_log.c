/* The error log, in nginx's format:
 *   YYYY/MM/DD HH:MM:SS [level] PID#0: *CONN message
 * One write(2) per line on an O_APPEND descriptor, so workers never
 * interleave inside a line. */
#include "proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int proxy_log_fd = 2;
static int proxy_log_max = PROXY_LOG_ERR;

static const char *proxy_log_names[] = {
    "",
    "emerg",
    "alert",
    "crit",
    "error",
    "warn",
    "notice",
    "info",
    "debug",
};

int
proxy_log_level_parse(const char *name)
{
    int i;

    for (i = PROXY_LOG_EMERG; i <= PROXY_LOG_DEBUG; i++) {
        if (strcmp(name, proxy_log_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

int
proxy_log_open(const char *path, int level, char *err, size_t err_len)
{
    int fd;

    proxy_log_max = level;
    if (path == NULL || strcmp(path, "stderr") == 0) {
        return 0;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, err_len, "open() \"%s\" failed (%d: %s)", path, errno, strerror(errno));
        return -1;
    }
    if (proxy_log_fd > 2) {
        close(proxy_log_fd);
    }
    proxy_log_fd = fd;
    return 0;
}

void
proxy_log_close(void)
{
    if (proxy_log_fd > 2) {
        close(proxy_log_fd);
    }
    proxy_log_fd = 2;
}

int
proxy_log_enabled(int level)
{
    return level <= proxy_log_max;
}

void
proxy_log_error(int level, unsigned long conn, const char *fmt, ...)
{
    char line[4096];
    size_t n;
    int r;
    time_t now;
    struct tm tm;
    va_list ap;

    if (!proxy_log_enabled(level)) {
        return;
    }
    now = time(NULL);
    localtime_r(&now, &tm);
    n = strftime(line, sizeof(line), "%Y/%m/%d %H:%M:%S", &tm);
    if (conn) {
        r = snprintf(line + n, sizeof(line) - n, " [%s] %d#0: *%lu ", proxy_log_names[level],
            (int) getpid(), conn);
    } else {
        r = snprintf(
            line + n, sizeof(line) - n, " [%s] %d#0: ", proxy_log_names[level], (int) getpid());
    }
    n += (size_t) r;
    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (r < 0) {
        return;
    }
    n += (size_t) r;
    if (n > sizeof(line) - 2) {
        n = sizeof(line) - 2;
    }
    line[n++] = '\n';
    if (write(proxy_log_fd, line, n) < 0) {
        /* nowhere left to report it */
    }
}
