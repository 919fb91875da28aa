/* uc_utf8: decode, validate, encode, count (see uc_utf8.h). */
#include "uc_utf8.h"

size_t
uc_utf8_decode(const unsigned char *s, size_t avail, unsigned long *out_cp)
{
    unsigned char c = s[0];
    unsigned long cp;
    size_t n;

    if (c < 0x80) {
        *out_cp = c;
        return 1;
    }
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
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff))
        || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    *out_cp = cp;
    return n;
}

int
uc_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *) s;
    unsigned long cp;

    for (size_t i = 0; i < len;) {
        size_t n = uc_utf8_decode(p + i, len - i, &cp);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

size_t
uc_utf8_encode(unsigned long cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char) cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char) (0xc0 | (cp >> 6));
        out[1] = (char) (0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char) (0xe0 | (cp >> 12));
        out[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char) (0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char) (0xf0 | (cp >> 18));
    out[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char) (0x80 | (cp & 0x3f));
    return 4;
}

size_t
uc_utf8_count(const char *s)
{
    size_t n = 0;

    for (; *s != '\0'; s++)
        if (((unsigned char) *s & 0xc0) != 0x80)
            n++;
    return n;
}
