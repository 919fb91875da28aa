/*
 * Fault switches: deliberate misbehaviours of the upstream TLS client, for
 * the harness's own tests (every scenario must fail on some known-bad
 * proxy). Each is off unless `--fault NAME` or UPTLS_PROXY_FAULTS=a,b
 * enables it; an unknown name is an error. Lookup, the list and the help
 * come from the one table (harness/common/uc_switch.h): a new fault is one
 * row here and one bit in enum proxy_fault.
 */
#include "proxy.h"

#include <stdio.h>

#include "../harness/common/uc_switch.h"

uint64_t proxy_faults;

static const struct uc_switch proxy_fault_table[] = {
    /* ignore-client-cert: never load or send proxy_ssl_certificate/_key. */
    { "ignore-client-cert", PROXY_FAULT_IGNORE_CLIENT_CERT,
      "never load or send the client certificate" },
    /* skip-verify: accept any certificate chain (untrusted, expired, revoked,
     * too deep); the name is still checked unless skip-host-check is on. */
    { "skip-verify", PROXY_FAULT_SKIP_VERIFY, "accept any chain" },
    /* ignore-depth: do not apply proxy_ssl_verify_depth (depth unlimited). */
    { "ignore-depth", PROXY_FAULT_IGNORE_DEPTH, "depth unlimited" },
    /* skip-host-check: never check the upstream certificate's name. */
    { "skip-host-check", PROXY_FAULT_SKIP_HOST_CHECK, "no name check" },
    /* ignore-protocols: offer the library's full version range, ignoring
     * proxy_ssl_protocols and protocol conf commands. */
    { "ignore-protocols", PROXY_FAULT_IGNORE_PROTOCOLS,
      "offer the library's full range" },
    /* ignore-ciphers: use the library's default cipher list and suites,
     * ignoring proxy_ssl_ciphers and cipher conf commands. */
    { "ignore-ciphers", PROXY_FAULT_IGNORE_CIPHERS,
      "use the library default list" },
    /* share-sessions: one session cache slot per upstream group, shared by
     * all its servers and by every location (whatever its TLS settings). */
    { "share-sessions", PROXY_FAULT_SHARE_SESSIONS,
      "one session cache for all servers and settings" },
    /* no-session-reuse: never offer a cached session. */
    { "no-session-reuse", PROXY_FAULT_NO_SESSION_REUSE, "never resume" },
    /* no-sni: never send server_name, even with proxy_ssl_server_name on. */
    { "no-sni", PROXY_FAULT_NO_SNI, "never send SNI" },
    /* The next three break the HTTP side, for the faults family's first
     * steps (what a proxy does when its upstream misbehaves). */
    /* mask-upstream-errors: where no upstream answered (connect, TLS or
     * verification failure, timeout), answer an empty 200, not 502/504. */
    { "mask-upstream-errors", PROXY_FAULT_MASK_UPSTREAM_ERRORS,
      "answer 200 where the upstream failed" },
    /* pass-truncated: send bodies chunked to HTTP/1.1 clients and end one
     * the upstream cut short (EOF, reset) with the last chunk, as if whole. */
    { "pass-truncated", PROXY_FAULT_PASS_TRUNCATED,
      "end a cut-short upstream body as complete" },
    /* cut-big-headers: on a response header block beyond the limit, send
     * the client what was read of it and close, instead of a 502. */
    { "cut-big-headers", PROXY_FAULT_CUT_BIG_HEADERS,
      "pass a too-big header block on cut" },
};

/* Enables every name in a comma-separated list. */
int
proxy_fault_enable(const char *names, char *err, size_t err_len)
{
    return uc_switch_enable(proxy_fault_table, UC_SWITCH_COUNT(proxy_fault_table), "fault",
        names, &proxy_faults, err, err_len);
}

int
proxy_fault_on(uint64_t fault)
{
    return (proxy_faults & fault) != 0;
}

void
proxy_fault_list_print(void)
{
    uc_switch_print(proxy_fault_table, UC_SWITCH_COUNT(proxy_fault_table), stdout, "", 20);
}
