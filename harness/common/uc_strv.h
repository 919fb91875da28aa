/*
 * uc_strv: arrays of owned strings (char **items plus a count, kept
 * NULL-terminated), as a growable struct or as a bare array.
 */
#ifndef UC_STRV_H
#define UC_STRV_H

#include <stddef.h>

struct uc_strv {
    char **items; /* NULL-terminated once something was pushed */
    size_t num;
    size_t cap;
};

/* Appends a copy of s; returns the copy (owned by v), or NULL when out of
 * memory. */
char *uc_strv_push_copy(struct uc_strv *v, const char *s);
/* Frees every string and the array; v is empty again. Accepts NULL. */
void uc_strv_dispose(struct uc_strv *v);

/* A deep copy of num strings, NULL-terminated, or NULL when out of memory. */
char **uc_strv_dup(char *const *items, size_t num);
/* Frees num strings and the array itself. Accepts NULL. */
void uc_strv_free(char **items, size_t num);

#endif
