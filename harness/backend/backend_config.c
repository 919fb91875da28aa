/*
 * Command line: one table of options (name, argument, kind, field, choices,
 * help). Help is printed from the table; defaults are set in one place
 * (backend_defaults). Every error is collected before failing, and
 * each names the option, the bad value and the allowed values.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/uc_err.h"
#include "../common/uc_str.h"
#include "../common/uc_tls.h"
#include "backend.h"

enum opt_kind {
    OPT_STR,    /* const char * */
    OPT_PORT,   /* int 0..65535 */
    OPT_SECS,   /* int 1..86400 */
    OPT_CHOICE, /* int: the value mapped through choices/values */
    OPT_FLAG,   /* int set to 1, no argument */
    OPT_FAULT,  /* uint64_t bit set, repeatable */
    OPT_PROTO,  /* int: a TLS version TLSv1..TLSv1.3 (uc_tls) */
};

static const char *const auth_choices[] = { "none", "request", "require", NULL };
static const int auth_values[] = { BACKEND_AUTH_NONE, BACKEND_AUTH_REQUEST, BACKEND_AUTH_REQUIRE };
static const char *const onoff_choices[] = { "on", "off", NULL };
static const int onoff_values[] = { 1, 0 };

struct backend_opt {
    const char *name;
    const char *arg; /* NULL for flags */
    enum opt_kind kind;
    size_t offset;
    const char *const *choices;
    const int *values;
    const char *help;
};

#define F(field) offsetof(struct backend_config, field)

static const struct backend_opt backend_opts[] = {
    { "--name", "NAME", OPT_STR, F(name), NULL, NULL,
        "backend name, in every log line and response (required)" },
    { "--cert", "CHAIN.pem", OPT_STR, F(cert), NULL, NULL,
        "server certificate, then its intermediates (required)" },
    { "--key", "KEY.pem", OPT_STR, F(key), NULL, NULL, "server private key (required)" },
    { "--listen", "ADDR", OPT_STR, F(listen), NULL, NULL, "listen address (default 127.0.0.1)" },
    { "--port", "PORT", OPT_PORT, F(port), NULL, NULL,
        "listen port; 0 = pick a free one (default 0)" },
    { "--client-auth", "MODE", OPT_CHOICE, F(client_auth), auth_choices, auth_values,
        "ask for a client certificate: none|request|require (default none)" },
    { "--client-ca", "CA.pem", OPT_STR, F(client_ca), NULL, NULL,
        "CAs that verify client certificates and are named in the CertificateRequest" },
    { "--min-proto", "VER", OPT_PROTO, F(min_proto), NULL, NULL,
        "lowest TLS version: TLSv1|TLSv1.1|TLSv1.2|TLSv1.3 (default: OpenSSL's)" },
    { "--max-proto", "VER", OPT_PROTO, F(max_proto), NULL, NULL,
        "highest TLS version (default: OpenSSL's)" },
    { "--ciphers", "STR", OPT_STR, F(ciphers), NULL, NULL,
        "TLS <= 1.2 cipher list, may hold @SECLEVEL=N (SSL_CTX_set_cipher_list)" },
    { "--ciphersuites", "STR", OPT_STR, F(ciphersuites), NULL, NULL,
        "TLS 1.3 cipher suites (SSL_CTX_set_ciphersuites)" },
    { "--session-cache", "on|off", OPT_CHOICE, F(session_cache), onoff_choices, onoff_values,
        "server-side session cache (default on)" },
    { "--tickets", "on|off", OPT_CHOICE, F(tickets), onoff_choices, onoff_values,
        "session tickets (default on)" },
    { "--close-after-response", NULL, OPT_FLAG, F(close_after_response), NULL, NULL,
        "send Connection: close and a clean TLS shutdown after each response" },
    { "--log", "FILE", OPT_STR, F(log_path), NULL, NULL,
        "JSON lines observation log, appended (default stdout)" },
    { "--fault", "NAME", OPT_FAULT, F(faults), NULL, NULL,
        "misbehave on purpose (repeatable), see below" },
    { "--idle-timeout", "SECS", OPT_SECS, F(idle_timeout), NULL, NULL,
        "close a connection idle this long (default 300)" },
    { "--listeners", "FILE", OPT_STR, F(listeners), NULL, NULL,
        "many listeners in one process: one JSON object per line of FILE ('-' = stdin),\n"
        "                             keys = these options without '--'; no other option then" },
    { "--list-faults", NULL, OPT_FLAG, F(list_faults), NULL, NULL,
        "print every fault, one per line: its name, then its help" },
    { "-h", NULL, OPT_FLAG, F(help), NULL, NULL, "print this help" },
    { "--help", NULL, OPT_FLAG, F(help), NULL, NULL, "print this help" },
};

#define NUM_OPTS (sizeof(backend_opts) / sizeof(backend_opts[0]))

/* Every default, in one place; what is not named here is 0 or NULL (no
 * client auth, OpenSSL's version range, the log on stdout, no fault). */
static const struct backend_config backend_defaults = {
    .listen = "127.0.0.1",
    .client_auth = BACKEND_AUTH_NONE,
    .session_cache = 1,
    .tickets = 1,
    .idle_timeout = 300,
};

void
backend_config_defaults(struct backend_config *cfg)
{
    *cfg = backend_defaults;
}

static void
choices_str(const char *const *choices, char *out, size_t out_len)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; choices[i] != NULL; i++) {
        int n = snprintf(out + used, out_len - used, "%s%s", i ? ", " : "", choices[i]);
        if (n < 0 || (size_t) n >= out_len - used)
            return;
        used += (size_t) n;
    }
}

static void
apply_opt(struct backend_config *cfg, const struct backend_opt *o, const char *val, char *err,
    size_t err_len)
{
    char *field = (char *) cfg + o->offset;
    char list[1024];

    switch (o->kind) {
    case OPT_STR:
        if (val[0] == '\0')
            uc_err_add(err, err_len, "%s: empty value; expected %s", o->name, o->arg);
        else
            *(const char **) (void *) field = val;
        break;
    case OPT_PORT:
        if (uc_parse_int(val, 0, 65535, (int *) (void *) field) != 0)
            uc_err_add(
                err, err_len, "%s: bad value '%s'; allowed: an integer 0..65535", o->name, val);
        break;
    case OPT_SECS:
        if (uc_parse_int(val, 1, 86400, (int *) (void *) field) != 0)
            uc_err_add(
                err, err_len, "%s: bad value '%s'; allowed: an integer 1..86400", o->name, val);
        break;
    case OPT_CHOICE:
        for (size_t i = 0; o->choices[i] != NULL; i++) {
            if (strcmp(o->choices[i], val) == 0) {
                *(int *) (void *) field = o->values[i];
                return;
            }
        }
        choices_str(o->choices, list, sizeof(list));
        uc_err_add(err, err_len, "%s: bad value '%s'; allowed: %s", o->name, val, list);
        break;
    case OPT_PROTO: {
        int v = uc_tls_version_by_name(val);
        if (v >= TLS1_VERSION && v <= TLS1_3_VERSION) {
            *(int *) (void *) field = v;
            return;
        }
        uc_tls_version_list(TLS1_VERSION, TLS1_3_VERSION, list, sizeof(list));
        uc_err_add(err, err_len, "%s: bad value '%s'; allowed: %s", o->name, val, list);
        break;
    }
    case OPT_FLAG:
        *(int *) (void *) field = 1;
        break;
    case OPT_FAULT: {
        uint64_t bit = uc_switch_lookup(backend_faults, backend_num_faults, val);
        if (bit == 0) {
            uc_switch_list(backend_faults, backend_num_faults, list, sizeof(list));
            uc_err_add(err, err_len, "--fault: unknown fault '%s'; known faults: %s", val, list);
        } else {
            *(uint64_t *) (void *) field |= bit;
        }
        break;
    }
    }
}

int
backend_config_parse(struct backend_config *cfg, int argc, char **argv, char *err, size_t err_len)
{
    int num_opts = 0;

    err[0] = '\0';
    backend_config_defaults(cfg);

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        const struct backend_opt *o = NULL;
        size_t name_len = strcspn(arg, "=");

        for (size_t k = 0; k < NUM_OPTS; k++) {
            if (strlen(backend_opts[k].name) == name_len
                && strncmp(backend_opts[k].name, arg, name_len) == 0) {
                o = &backend_opts[k];
                break;
            }
        }
        if (o == NULL) {
            uc_err_add(err, err_len, "unknown option '%s' (see -h)", arg);
            continue;
        }
        num_opts++;
        if (o->arg == NULL) {
            if (arg[name_len] == '=')
                uc_err_add(err, err_len, "%s: takes no value", o->name);
            else
                apply_opt(cfg, o, NULL, err, err_len);
            continue;
        }
        if (arg[name_len] == '=') {
            val = arg + name_len + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            uc_err_add(err, err_len, "%s: missing value; expected %s", o->name, o->arg);
            continue;
        }
        apply_opt(cfg, o, val, err, err_len);
    }

    if (cfg->help || cfg->list_faults)
        return err[0] == '\0' ? 0 : -1;
    if (cfg->listeners != NULL) {
        /* Each listener's line carries all its options. */
        if (num_opts != 1)
            uc_err_add(err, err_len,
                "--listeners: takes no other option (each listener's line "
                "carries its own)");
        return err[0] == '\0' ? 0 : -1;
    }
    backend_config_check(cfg, err, err_len);
    return err[0] == '\0' ? 0 : -1;
}

void
backend_config_check(const struct backend_config *cfg, char *err, size_t err_len)
{
    if (cfg->name == NULL)
        uc_err_add(err, err_len, "--name: required");
    else {
        for (const char *p = cfg->name; *p; p++) {
            if ((unsigned char) *p <= 0x20 || (unsigned char) *p >= 0x7f) {
                uc_err_add(err, err_len,
                    "--name: bad value '%s'; allowed: printable ASCII without spaces", cfg->name);
                break;
            }
        }
    }
    if (cfg->cert == NULL)
        uc_err_add(err, err_len, "--cert: required");
    if (cfg->key == NULL)
        uc_err_add(err, err_len, "--key: required");
    if (cfg->min_proto != 0 && cfg->max_proto != 0 && cfg->min_proto > cfg->max_proto)
        uc_err_add(err, err_len, "--min-proto: higher than --max-proto");
    if (cfg->client_ca != NULL && cfg->client_auth == BACKEND_AUTH_NONE)
        uc_err_add(err, err_len,
            "--client-ca: given with --client-auth none; allowed with: "
            "request, require");
}

/* ---- one listener from a JSON object (--listeners) ----------------------- */

static const char *const kind_names[] = { "a string", "a number", "true", "false", "null" };

void
backend_config_set(struct backend_config *cfg, unsigned long *seen, const char *key,
    enum json_kind kind, const char *text, int index, char *err, size_t err_len)
{
    const struct backend_opt *o = NULL;
    size_t k;

    for (k = 0; k < NUM_OPTS; k++) {
        if (strncmp(backend_opts[k].name, "--", 2) == 0
            && strcmp(backend_opts[k].name + 2, key) == 0) {
            o = &backend_opts[k];
            break;
        }
    }
    if (o == NULL || o->offset == F(help) || o->offset == F(listeners)
        || o->offset == F(list_faults)) {
        uc_err_add(
            err, err_len, "unknown key '%s'; allowed: the long options without '--' (see -h)", key);
        return;
    }
    if (index <= 0) {
        if (*seen & (1ul << k)) {
            uc_err_add(err, err_len, "%s: given twice", o->name);
            return;
        }
        *seen |= 1ul << k;
    }
    if (index >= 0 && o->kind != OPT_FAULT) {
        uc_err_add(err, err_len, "%s: a list is only allowed for fault", o->name);
        return;
    }
    switch (o->kind) {
    case OPT_FLAG:
        if (kind == JSON_TRUE)
            apply_opt(cfg, o, NULL, err, err_len);
        else if (kind != JSON_FALSE)
            uc_err_add(
                err, err_len, "%s: bad value %s; allowed: true, false", o->name, kind_names[kind]);
        return;
    case OPT_PORT:
    case OPT_SECS:
        if (kind != JSON_NUMBER && kind != JSON_STRING)
            break;
        apply_opt(cfg, o, text, err, err_len);
        return;
    case OPT_CHOICE:
        if (o->choices == onoff_choices && (kind == JSON_TRUE || kind == JSON_FALSE)) {
            apply_opt(cfg, o, kind == JSON_TRUE ? "on" : "off", err, err_len);
            return;
        }
        /* fall through */
    case OPT_STR:
    case OPT_PROTO:
    case OPT_FAULT:
        if (kind != JSON_STRING)
            break;
        apply_opt(cfg, o, text, err, err_len);
        return;
    }
    uc_err_add(err, err_len, "%s: bad value %s; expected %s", o->name, kind_names[kind],
        o->kind == OPT_PORT || o->kind == OPT_SECS ? "a number"
            : o->choices == onoff_choices          ? "\"on\", \"off\", true or false"
                                                   : "a string");
}

void
backend_config_print_help(const char *prog)
{
    printf("usage: %s --name NAME --cert CHAIN.pem --key KEY.pem [options]\n", prog);
    printf("       %s --listeners FILE\n\n", prog);
    printf("A mock TLS upstream that logs what its clients did, one JSON object per line.\n\n");
    printf("options:\n");
    for (size_t i = 0; i < NUM_OPTS; i++) {
        char left[64];
        const struct backend_opt *o = &backend_opts[i];
        snprintf(left, sizeof(left), "%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        printf("  %-26s %s\n", left, o->help);
    }
    printf("\nfaults (--fault NAME):\n");
    uc_switch_print(backend_faults, backend_num_faults, stdout, "  ", 26);
}
