/* uc_strv: arrays of owned strings (see uc_strv.h). */
#include <stdlib.h>
#include <string.h>

#include "uc_strv.h"

char *
uc_strv_push_copy(struct uc_strv *v, const char *s)
{
    char *copy;

    if (v->num + 1 >= v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        char **items = realloc(v->items, cap * sizeof(*items));
        if (items == NULL)
            return NULL;
        v->items = items;
        v->cap = cap;
    }
    copy = strdup(s);
    if (copy == NULL)
        return NULL;
    v->items[v->num++] = copy;
    v->items[v->num] = NULL;
    return copy;
}

void
uc_strv_dispose(struct uc_strv *v)
{
    if (v == NULL)
        return;
    uc_strv_free(v->items, v->num);
    memset(v, 0, sizeof(*v));
}

char **
uc_strv_dup(char *const *items, size_t num)
{
    char **out = calloc(num + 1, sizeof(*out));

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < num; i++) {
        out[i] = strdup(items[i]);
        if (out[i] == NULL) {
            uc_strv_free(out, i);
            return NULL;
        }
    }
    return out;
}

void
uc_strv_free(char **items, size_t num)
{
    if (items == NULL)
        return;
    for (size_t i = 0; i < num; i++)
        free(items[i]);
    free(items);
}
