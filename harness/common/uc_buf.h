/*
 * uc_buf: a growable byte buffer, always NUL-terminated once anything was
 * put in it. A failed allocation is sticky: the buffer stops growing, every
 * later put is a no-op and `failed` stays set until uc_buf_reset(), so a
 * writer checks once at the end instead of after every put.
 *
 *   struct uc_buf b;            (or = {0}: an empty buffer)
 *   uc_buf_init(&b);
 *   uc_buf_puts(&b, "x");  uc_buf_printf(&b, "%d", n);
 *   if (b.failed) ...;  use b.data, b.len
 *   uc_buf_dispose(&b);
 */
#ifndef UC_BUF_H
#define UC_BUF_H

#include <stddef.h>

struct uc_buf {
    char *data; /* NULL until the first put */
    size_t len;
    size_t cap;
    int failed; /* an allocation failed: contents are incomplete */
};

/* An empty buffer in place (same as zero-initialising it). */
void uc_buf_init(struct uc_buf *b);
/* Frees what an in-place buffer holds and empties it; accepts NULL. */
void uc_buf_dispose(struct uc_buf *b);
/* A buffer on the heap, or NULL; uc_buf_free() accepts NULL. */
struct uc_buf *uc_buf_new(void);
void uc_buf_free(struct uc_buf *b);

/* Empties the buffer (keeps its memory) and clears `failed`. */
void uc_buf_reset(struct uc_buf *b);
/* Makes room for n more bytes (plus the NUL). Returns 0, or -1 and sets
 * `failed`. */
int uc_buf_reserve(struct uc_buf *b, size_t n);
void uc_buf_put(struct uc_buf *b, const void *p, size_t n);
void uc_buf_puts(struct uc_buf *b, const char *s);
void uc_buf_putc(struct uc_buf *b, char c);
void uc_buf_printf(struct uc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes the contents (NUL-terminated, the caller frees them) and empties the
 * buffer; NULL if it failed or was never written. */
char *uc_buf_take(struct uc_buf *b, size_t *out_len);

#endif
