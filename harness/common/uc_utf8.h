/*
 * uc_utf8: UTF-8 as RFC 3629 defines it (no overlong forms, no surrogates,
 * nothing above U+10FFFF).
 */
#ifndef UC_UTF8_H
#define UC_UTF8_H

#include <stddef.h>

/* Decodes the sequence at s (avail > 0 bytes). Returns its length (1..4) and
 * the code point in *out_cp, or 0 when s does not start a valid sequence. */
size_t uc_utf8_decode(const unsigned char *s, size_t avail, unsigned long *out_cp);
/* 1 when s[0..len) is valid UTF-8, else 0. */
int uc_utf8_valid(const char *s, size_t len);
/* Writes the code point (<= U+10FFFF, not a surrogate) as UTF-8; returns the
 * number of bytes (1..4). */
size_t uc_utf8_encode(unsigned long cp, char out[4]);
/* The number of code points in a valid, NUL-terminated UTF-8 string. */
size_t uc_utf8_count(const char *s);

#endif
