/* uc_buf: a growable byte buffer (see uc_buf.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uc_buf.h"

#define UC_BUF_MIN 256

void
uc_buf_init(struct uc_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void
uc_buf_dispose(struct uc_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    memset(b, 0, sizeof(*b));
}

struct uc_buf *
uc_buf_new(void)
{
    return calloc(1, sizeof(struct uc_buf));
}

void
uc_buf_free(struct uc_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    free(b);
}

void
uc_buf_reset(struct uc_buf *b)
{
    b->len = 0;
    b->failed = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

int
uc_buf_reserve(struct uc_buf *b, size_t n)
{
    size_t cap;
    char *p;

    if (b->failed)
        return -1;
    if (n < b->cap - b->len) /* room for n bytes and the NUL */
        return 0;
    if (n > ((size_t) -1) / 2 - b->len) {
        b->failed = 1;
        return -1;
    }
    cap = b->cap ? b->cap : UC_BUF_MIN;
    while (cap < b->len + n + 1)
        cap *= 2;
    p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void
uc_buf_put(struct uc_buf *b, const void *p, size_t n)
{
    if (uc_buf_reserve(b, n) != 0)
        return;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void
uc_buf_puts(struct uc_buf *b, const char *s)
{
    uc_buf_put(b, s, strlen(s));
}

void
uc_buf_putc(struct uc_buf *b, char c)
{
    uc_buf_put(b, &c, 1);
}

void
uc_buf_printf(struct uc_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if (uc_buf_reserve(b, (size_t) n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t) n;
}

char *
uc_buf_take(struct uc_buf *b, size_t *out_len)
{
    char *data = b->failed ? NULL : b->data;

    if (data == NULL)
        free(b->data);
    if (out_len != NULL)
        *out_len = data != NULL ? b->len : 0;
    memset(b, 0, sizeof(*b));
    return data;
}
