/* uc_str: strict conversions of option and directive values. */
#ifndef UC_STR_H
#define UC_STR_H

/* Parses a whole decimal integer (strtol: optional sign, no trailing text,
 * no empty string) within [min, max] into *out. Returns 0, or -1 (and *out
 * untouched). */
int uc_parse_int(const char *s, long min, long max, int *out);

#endif
