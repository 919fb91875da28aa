/*
 * uc_switch: a table of named switches (name, bit, help), such as the fault
 * switches of uptls-backend and uptls-proxy, in the manner of BoringSSL's
 * ProtocolBugs: each row is documented where the table defines it, and
 * lookup, the list in error messages and the help text all come from the
 * table.
 *
 *   static const struct uc_switch faults[] = {
 *       {"stall-handshake", FAULT_STALL, "accept TCP, never answer"},
 *       ...
 *   };
 *   uc_switch_lookup(faults, UC_SWITCH_COUNT(faults), "stall-handshake");
 */
#ifndef UC_SWITCH_H
#define UC_SWITCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct uc_switch {
    const char *name;
    uint64_t bit; /* one bit, never 0 */
    const char *help;
};

#define UC_SWITCH_COUNT(tab) (sizeof(tab) / sizeof((tab)[0]))

/* The switch's bit, or 0 if no row has that name. */
uint64_t uc_switch_lookup(const struct uc_switch *tab, size_t num, const char *name);
/* The name of a bit, or NULL. */
const char *uc_switch_name(const struct uc_switch *tab, size_t num, uint64_t bit);
/* Writes every name, separated by ", ", into out (cut short if it is full). */
void uc_switch_list(const struct uc_switch *tab, size_t num, char *out, size_t out_len);
/*
 * Sets the bit of every name in `names` (separated by commas and/or spaces)
 * in *bits. An unknown name: returns -1 with `unknown WHAT "NAME"; known:
 * LIST` in err (bits set before it stay set).
 */
int uc_switch_enable(const struct uc_switch *tab, size_t num, const char *what, const char *names,
    uint64_t *bits, char *err, size_t err_len);
/* Prints one line per switch to out: INDENT, the name padded to width, a
 * space, the help (a --list-faults or --help listing). */
void
uc_switch_print(const struct uc_switch *tab, size_t num, FILE *out, const char *indent, int width);

#endif
