/* uc_io: whole-file reads and whole writes. */
#ifndef UC_IO_H
#define UC_IO_H

#include <stddef.h>

/*
 * Reads the whole file at path (at most max_len bytes) into *out_buf,
 * NUL-terminated (the caller frees it), its length in *out_len. Returns 0,
 * or -1 with "PATH: cannot open: REASON" (or "read error", "larger than N
 * MiB", "out of memory") in err.
 */
int uc_file_read(
    const char *path, size_t max_len, char **out_buf, size_t *out_len, char *err, size_t err_len);
/* Writes all len bytes to fd, retrying on EINTR and short writes. Returns 0,
 * or -1 with errno set. */
int uc_write_all(int fd, const void *p, size_t len);

#endif
