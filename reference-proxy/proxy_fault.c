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
    { "ignore-protocols", PROXY_FAULT_IGNORE_PROTOCOLS, "offer the library's full range" },
    /* ignore-ciphers: use the library's default cipher list and suites,
     * ignoring proxy_ssl_ciphers and cipher conf commands. */
    { "ignore-ciphers", PROXY_FAULT_IGNORE_CIPHERS, "use the library default list" },
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
    { "pass-truncated", PROXY_FAULT_PASS_TRUNCATED, "end a cut-short upstream body as complete" },
    /* cut-big-headers: on a response header block beyond the limit, send
     * the client what was read of it and close, instead of a 502. */
    { "cut-big-headers", PROXY_FAULT_CUT_BIG_HEADERS, "pass a too-big header block on cut" },
    /* The next five break the upstream TLS client, for the faults family's
     * TLS-layer scenarios (hooks: proxy_fault_ssl_ctx, proxy_fault_verify). */
    /* fatal-post-handshake: a HelloRequest or KeyUpdate from the upstream
     * ends the connection (its read side is cut at once), as a client that
     * cannot handle post-handshake messages. */
    { "fatal-post-handshake", PROXY_FAULT_FATAL_POST_HANDSHAKE,
        "a HelloRequest or KeyUpdate ends the upstream connection" },
    /* renegotiation-unverified: accept any certificate in a renegotiation
     * (verification errors ignored while one is pending), as a client that
     * checks only the first handshake. */
    { "renegotiation-unverified", PROXY_FAULT_RENEGOTIATION_UNVERIFIED,
        "do not verify the certificate of a renegotiation" },
    /* offer-x25519-only: supported_groups is x25519 alone. */
    { "offer-x25519-only", PROXY_FAULT_OFFER_X25519_ONLY, "offer only the x25519 group" },
    /* strict-chain: refuse a certificate list that is not exactly the
     * verified path in issuer order (nothing extra, duplicated or out of
     * order), as RFC 5246 7.4.2 worded it; RFC 8446 4.4.2 relaxed it. */
    { "strict-chain", PROXY_FAULT_STRICT_CHAIN,
        "refuse a chain with extra, duplicate or out-of-order certificates" },
    /* small-cert-list: accept at most 16 KB of peer certificates
     * (SSL_CTX_set_max_cert_list; OpenSSL's default is 100 KB). */
    { "small-cert-list", PROXY_FAULT_SMALL_CERT_LIST, "peer certificate list limit 16 KB" },
};

/* Enables every name in a comma-separated list. */
int
proxy_fault_enable(const char *names, char *err, size_t err_len)
{
    return uc_switch_enable(proxy_fault_table, UC_SWITCH_COUNT(proxy_fault_table), "fault", names,
        &proxy_faults, err, err_len);
}

int
proxy_fault_on(uint64_t fault)
{
    return (proxy_faults & fault) != 0;
}

/* fatal-post-handshake: the read BIO becomes a null BIO (reads see EOF)
 * when a HelloRequest (0) or KeyUpdate (24) arrives. */
static void
proxy_fault_msg_cb(
    int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl, void *arg)
{
    const unsigned char *p = buf;
    BIO *dead;

    (void) version;
    (void) arg;
    if (write_p || content_type != SSL3_RT_HANDSHAKE || len < 1
        || (p[0] != SSL3_MT_HELLO_REQUEST && p[0] != SSL3_MT_KEY_UPDATE)) {
        return;
    }
    dead = BIO_new(BIO_s_null());
    if (dead != NULL) {
        SSL_set0_rbio(ssl, dead);
    }
}

void
proxy_fault_ssl_ctx(SSL_CTX *ctx)
{
    if (proxy_fault_on(PROXY_FAULT_FATAL_POST_HANDSHAKE)) {
        SSL_CTX_set_msg_callback(ctx, proxy_fault_msg_cb);
    }
    if (proxy_fault_on(PROXY_FAULT_OFFER_X25519_ONLY)) {
        SSL_CTX_set1_groups_list(ctx, "X25519");
    }
    if (proxy_fault_on(PROXY_FAULT_SMALL_CERT_LIST)) {
        SSL_CTX_set_max_cert_list(ctx, 16384);
    }
}

/* strict-chain: the certificates sent, in order, must be the verified path
 * (the trust anchor may be left out). Checked at the last call (depth 0). */
static int
proxy_fault_chain_in_order(X509_STORE_CTX *store)
{
    STACK_OF(X509) *sent = X509_STORE_CTX_get0_untrusted(store);
    STACK_OF(X509) *path = X509_STORE_CTX_get0_chain(store);
    int i, n = sent ? sk_X509_num(sent) : 0;

    if (path == NULL || n > sk_X509_num(path) || n < sk_X509_num(path) - 1) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (X509_cmp(sk_X509_value(sent, i), sk_X509_value(path, i)) != 0) {
            return 0;
        }
    }
    return 1;
}

int
proxy_fault_verify(int ok, X509_STORE_CTX *store)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());

    if (!ok && proxy_fault_on(PROXY_FAULT_RENEGOTIATION_UNVERIFIED) && ssl != NULL
        && SSL_renegotiate_pending(ssl)) {
        return 1;
    }
    if (ok && proxy_fault_on(PROXY_FAULT_STRICT_CHAIN) && X509_STORE_CTX_get_error_depth(store) == 0
        && !proxy_fault_chain_in_order(store)) {
        X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_CHAIN_TOO_LONG);
        return 0;
    }
    return ok;
}

void
proxy_fault_list_print(void)
{
    uc_switch_print(proxy_fault_table, UC_SWITCH_COUNT(proxy_fault_table), stdout, "", 20);
}
