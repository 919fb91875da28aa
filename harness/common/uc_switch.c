/* uc_switch: tables of named switches (see uc_switch.h). */
#include <stdio.h>
#include <string.h>

#include "uc_err.h"
#include "uc_switch.h"

uint64_t
uc_switch_lookup(const struct uc_switch *tab, size_t num, const char *name)
{
    for (size_t i = 0; i < num; i++) {
        if (strcmp(tab[i].name, name) == 0)
            return tab[i].bit;
    }
    return 0;
}

const char *
uc_switch_name(const struct uc_switch *tab, size_t num, uint64_t bit)
{
    for (size_t i = 0; i < num; i++) {
        if (tab[i].bit == bit)
            return tab[i].name;
    }
    return NULL;
}

void
uc_switch_list(const struct uc_switch *tab, size_t num, char *out, size_t out_len)
{
    size_t used = 0;

    if (out_len == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < num; i++) {
        int n = snprintf(out + used, out_len - used, "%s%s", i ? ", " : "", tab[i].name);
        if (n < 0 || (size_t) n >= out_len - used)
            return;
        used += (size_t) n;
    }
}

int
uc_switch_enable(const struct uc_switch *tab, size_t num, const char *what, const char *names,
    uint64_t *bits, char *err, size_t err_len)
{
    static const char sep[] = ", ";

    for (const char *p = names + strspn(names, sep); *p != '\0'; p += strspn(p, sep)) {
        size_t n = strcspn(p, sep);
        char name[128], list[1024];
        uint64_t bit;

        snprintf(name, sizeof(name), "%.*s", (int) n, p);
        p += n;
        bit = n < sizeof(name) ? uc_switch_lookup(tab, num, name) : 0;
        if (bit == 0) {
            uc_switch_list(tab, num, list, sizeof(list));
            uc_err_set(err, err_len, "unknown %s \"%s\"; known: %s", what, name, list);
            return -1;
        }
        *bits |= bit;
    }
    return 0;
}

void
uc_switch_print(const struct uc_switch *tab, size_t num, FILE *out, const char *indent, int width)
{
    for (size_t i = 0; i < num; i++)
        fprintf(out, "%s%-*s %s\n", indent, width, tab[i].name, tab[i].help);
}
