/* uc_io: whole-file reads and whole writes (see uc_io.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "uc_buf.h"
#include "uc_err.h"
#include "uc_io.h"

int
uc_file_read(
    const char *path, size_t max_len, char **out_buf, size_t *out_len, char *err, size_t err_len)
{
    struct uc_buf b = { 0 };
    FILE *f;
    int rc = -1;

    *out_buf = NULL;
    *out_len = 0;
    f = fopen(path, "rb");
    if (f == NULL) {
        uc_err_set(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        size_t n;

        if (uc_buf_reserve(&b, 8192) != 0) {
            uc_err_set(err, err_len, "%s: out of memory", path);
            goto end;
        }
        n = fread(b.data + b.len, 1, b.cap - b.len - 1, f);
        b.len += n;
        b.data[b.len] = '\0';
        if (b.len > max_len) {
            uc_err_set(err, err_len, "%s: larger than %zu MiB", path, max_len >> 20);
            goto end;
        }
        if (n == 0) {
            if (ferror(f)) {
                uc_err_set(err, err_len, "%s: read error: %s", path, strerror(errno));
                goto end;
            }
            break;
        }
    }
    *out_buf = uc_buf_take(&b, out_len);
    rc = 0;
end:
    fclose(f);
    uc_buf_dispose(&b);
    return rc;
}

int
uc_write_all(int fd, const void *p, size_t len)
{
    const char *s = p;

    while (len > 0) {
        ssize_t n = write(fd, s, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        s += n;
        len -= (size_t) n;
    }
    return 0;
}
