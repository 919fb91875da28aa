/* uc_str: strict conversions (see uc_str.h). */
#include <errno.h>
#include <stdlib.h>

#include "uc_str.h"

int
uc_parse_int(const char *s, long min, long max, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = (int) v;
    return 0;
}
