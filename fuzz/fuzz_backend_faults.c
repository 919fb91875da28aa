/* libFuzzer target: uptls-backend's fault specification, both ways it is
 * given. The input is split at its first NUL byte:
 *   - before it: a --listeners file (one JSON object per line; "fault" a
 *     string or a list of names), loaded by backend_listeners_load() from a
 *     memfd, as the backend loads a real file: the JSON reader, the option
 *     setters, the fault-name lookup, the per-listener checks and errors;
 *   - after it: a command line, one argument per line, given to
 *     backend_config_parse() (--fault NAME, repeatable, among the rest).
 * Every error text is also checked to be NUL-terminated within its buffer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../harness/backend/backend.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_err(const char *err, size_t len)
{
    if (memchr(err, '\0', len) == NULL) {
        abort();
    }
}

static void
listeners(const uint8_t *data, size_t size)
{
    struct backend_listeners ls;
    char path[64];
    char err[8192];
    int fd = memfd_create("listeners", 0);

    if (fd < 0) {
        return;
    }
    if (size == 0 || write(fd, data, size) == (ssize_t) size) {
        memset(&ls, 0, sizeof(ls));
        err[0] = '\0';
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        (void) backend_listeners_load(&ls, path, err, sizeof(err));
        check_err(err, sizeof(err));
        backend_listeners_free(&ls);
    }
    close(fd);
}

static void
command_line(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    char *argv[MAX_ARGS + 1];
    char err[8192];
    struct backend_config cfg;
    int argc = 0;
    char *p, *save = NULL;

    if (copy == NULL) {
        return;
    }
    memcpy(copy, data, size);
    copy[size] = '\0';
    argv[argc++] = "uptls-backend";
    for (p = strtok_r(copy, "\n", &save); p && argc < MAX_ARGS; p = strtok_r(NULL, "\n", &save)) {
        argv[argc++] = p;
    }
    argv[argc] = NULL;
    err[0] = '\0';
    (void) backend_config_parse(&cfg, argc, argv, err, sizeof(err));
    check_err(err, sizeof(err));
    free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t first = nul ? (size_t) (nul - data) : size;

    listeners(data, first);
    if (nul) {
        command_line(nul + 1, size - first - 1);
    }
    return 0;
}
