/*
 * Configuration values (nginx's ngx_parse.c: times, numbers) and the
 * generic directive setters that store one into the field a table entry
 * names (nginx's ngx_conf_set_flag_slot and friends).
 */
#include "proxy_conf_file.h"

#include "../harness/common/uc_str.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* nginx time syntax: "60s", "1m30s", "500ms", plain number = seconds. */
long
proxy_conf_parse_msec(const char *s)
{
    long long total = 0, n;
    const char *q = s;
    long long mult;

    if (*q == '\0') {
        return -1;
    }
    while (*q) {
        if (!isdigit((unsigned char) *q)) {
            return -1;
        }
        n = 0;
        while (isdigit((unsigned char) *q)) {
            n = n * 10 + (*q++ - '0');
            if (n > 1000000000LL) {
                return -1;
            }
        }
        if (q[0] == 'm' && q[1] == 's') {
            mult = 1;
            q += 2;
        } else if (*q == 's' || *q == '\0') {
            mult = 1000;
            q += *q ? 1 : 0;
        } else if (*q == 'm') {
            mult = 60000;
            q++;
        } else if (*q == 'h') {
            mult = 3600000;
            q++;
        } else if (*q == 'd') {
            mult = 86400000;
            q++;
        } else {
            return -1;
        }
        total += n * mult;
    }
    if (total > LONG_MAX / 2) {
        return -1;
    }
    return (long) total;
}

int
proxy_conf_parse_int(const char *s, int *out)
{
    return uc_parse_int(s, 0, INT_MAX, out);
}

#define PROXY_FIELD(conf, cmd, type) ((type *) ((char *) (conf) + (cmd)->offset))

int
proxy_conf_set_flag(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    int *f = PROXY_FIELD(conf, cmd, int);

    if (*f != PROXY_UNSET) {
        proxy_conf_error(p, "\"%s\" directive is duplicate", cmd->name);
        return -1;
    }
    if (strcasecmp(args[1], "on") == 0) {
        *f = 1;
    } else if (strcasecmp(args[1], "off") == 0) {
        *f = 0;
    } else {
        proxy_conf_error(p,
            "invalid value \"%s\" in \"%s\" directive, it must be "
            "\"on\" or \"off\"",
            args[1], cmd->name);
        return -1;
    }
    return 0;
}

int
proxy_conf_set_num(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    int *f = PROXY_FIELD(conf, cmd, int);

    if (*f != PROXY_UNSET) {
        proxy_conf_error(p, "\"%s\" directive is duplicate", cmd->name);
        return -1;
    }
    if (proxy_conf_parse_int(args[1], f) != 0) {
        *f = PROXY_UNSET;
        proxy_conf_error(p, "\"%s\" directive invalid number \"%s\"", cmd->name, args[1]);
        return -1;
    }
    return 0;
}

int
proxy_conf_set_msec(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    long *f = PROXY_FIELD(conf, cmd, long);

    if (*f != PROXY_UNSET) {
        proxy_conf_error(p, "\"%s\" directive is duplicate", cmd->name);
        return -1;
    }
    *f = proxy_conf_parse_msec(args[1]);
    if (*f < 0) {
        *f = PROXY_UNSET;
        proxy_conf_error(p, "\"%s\" directive invalid value \"%s\"", cmd->name, args[1]);
        return -1;
    }
    return 0;
}

int
proxy_conf_set_str(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    char **f = PROXY_FIELD(conf, cmd, char *);

    if (*f != NULL) {
        proxy_conf_error(p, "\"%s\" directive is duplicate", cmd->name);
        return -1;
    }
    *f = proxy_xstrdup(args[1]);
    return 0;
}

/* A file path: resolved against the configuration prefix as nginx's
 * ngx_conf_full_name(cycle, name, 1) does for certificate files. */
int
proxy_conf_set_path(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    char **f = PROXY_FIELD(conf, cmd, char *);
    char *name;

    if (proxy_conf_set_str(p, cmd, conf, args, nargs) != 0) {
        return -1;
    }
    name = *f;
    *f = proxy_conf_full_name(p->conf->conf_prefix, name);
    free(name);
    return 0;
}

int
proxy_conf_set_keyval(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    struct proxy_keyval_list **f = PROXY_FIELD(conf, cmd, struct proxy_keyval_list *);

    if (*f == NULL) {
        *f = proxy_xcalloc(1, sizeof(**f));
    }
    proxy_keyval_list_add(*f, args[1], nargs > 2 ? args[2] : "");
    return 0;
}

/*
 * A directive whose arguments name bits OR-ed into its int field (nginx's
 * ngx_conf_set_bitmask_slot): bit_of gives a name's bit, 0 for an unknown
 * name, which is an error (must_be ends its message).
 */
int
proxy_conf_set_bits(struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf,
    char **args, int nargs, int (*bit_of)(const char *name), const char *must_be)
{
    int *f = PROXY_FIELD(conf, cmd, int);
    int i, bit;

    if (*f != PROXY_UNSET) {
        proxy_conf_error(p, "\"%s\" directive is duplicate", cmd->name);
        return -1;
    }
    *f = 0;
    for (i = 1; i < nargs; i++) {
        bit = bit_of(args[i]);
        if (bit == 0) {
            proxy_conf_error(
                p, "invalid value \"%s\" in \"%s\" directive%s", args[i], cmd->name, must_be);
            *f = PROXY_UNSET;
            return -1;
        }
        *f |= bit;
    }
    return 0;
}

/* Parsed and checked, with no further effect (access logs are not written). */
int
proxy_conf_set_noop(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    return 0;
}
