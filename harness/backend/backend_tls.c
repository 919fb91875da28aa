/*
 * TLS side of the backend: the SSL_CTX built from the command line, the
 * ClientHello observer (called before OpenSSL decides anything), the alert
 * observer and the handshake line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "../common/uc_err.h"
#include "../common/uc_tls.h"
#include "backend.h"

static int conn_index = -1;

int
backend_tls_conn_index(void)
{
    return conn_index;
}

static struct backend_conn *
conn_of(const SSL *ssl)
{
    return SSL_get_ex_data(ssl, conn_index);
}

/* ---- names for wire values --------------------------------------------- */

struct code_name {
    unsigned code;
    const char *name;
};

/* TLS SupportedGroups registry names (RFC 8446 4.2.7, RFC 8422, RFC 7919). */
static const struct code_name group_names[] = {
    { 23, "secp256r1" },
    { 24, "secp384r1" },
    { 25, "secp521r1" },
    { 29, "x25519" },
    { 30, "x448" },
    { 256, "ffdhe2048" },
    { 257, "ffdhe3072" },
    { 258, "ffdhe4096" },
    { 259, "ffdhe6144" },
    { 260, "ffdhe8192" },
    { 21, "secp224r1" },
    { 22, "secp256k1" },
    { 26, "brainpoolP256r1" },
    { 27, "brainpoolP384r1" },
    { 28, "brainpoolP512r1" },
    { 31, "brainpoolP256r1tls13" },
    { 32, "brainpoolP384r1tls13" },
    { 33, "brainpoolP512r1tls13" },
};

/* TLS SignatureScheme registry names (RFC 8446 4.2.3) plus TLS 1.2 pairs. */
static const struct code_name sigalg_names[] = {
    { 0x0401, "rsa_pkcs1_sha256" },
    { 0x0501, "rsa_pkcs1_sha384" },
    { 0x0601, "rsa_pkcs1_sha512" },
    { 0x0403, "ecdsa_secp256r1_sha256" },
    { 0x0503, "ecdsa_secp384r1_sha384" },
    { 0x0603, "ecdsa_secp521r1_sha512" },
    { 0x0804, "rsa_pss_rsae_sha256" },
    { 0x0805, "rsa_pss_rsae_sha384" },
    { 0x0806, "rsa_pss_rsae_sha512" },
    { 0x0807, "ed25519" },
    { 0x0808, "ed448" },
    { 0x0809, "rsa_pss_pss_sha256" },
    { 0x080a, "rsa_pss_pss_sha384" },
    { 0x080b, "rsa_pss_pss_sha512" },
    { 0x081a, "ecdsa_brainpoolP256r1tls13_sha256" },
    { 0x081b, "ecdsa_brainpoolP384r1tls13_sha384" },
    { 0x081c, "ecdsa_brainpoolP512r1tls13_sha512" },
    { 0x0201, "rsa_pkcs1_sha1" },
    { 0x0203, "ecdsa_sha1" },
    { 0x0202, "dsa_sha1" },
    { 0x0301, "rsa_pkcs1_sha224" },
    { 0x0302, "dsa_sha224" },
    { 0x0303, "ecdsa_sha224" },
    { 0x0402, "dsa_sha256" },
    { 0x0502, "dsa_sha384" },
    { 0x0602, "dsa_sha512" },
};

static void
json_code(struct uc_json *jw, const struct code_name *tab, size_t n, unsigned code)
{
    char hex[8];

    for (size_t i = 0; i < n; i++) {
        if (tab[i].code == code) {
            uc_json_str(jw, tab[i].name);
            return;
        }
    }
    snprintf(hex, sizeof(hex), "0x%04X", code);
    uc_json_str(jw, hex);
}

/* A u16-length-prefixed list of u16 values (groups, sigalgs). */
static void
json_u16_list(struct uc_json *jw, SSL *ssl, unsigned type, const struct code_name *tab, size_t n)
{
    const unsigned char *p;
    size_t len;

    uc_json_arr_begin(jw);
    if (SSL_client_hello_get0_ext(ssl, type, &p, &len) == 1 && len >= 2) {
        size_t list_len = ((size_t) p[0] << 8) | p[1];
        if (list_len > len - 2)
            list_len = len - 2;
        for (size_t i = 2; i + 1 < 2 + list_len; i += 2)
            json_code(jw, tab, n, ((unsigned) p[i] << 8) | p[i + 1]);
    }
    uc_json_arr_end(jw);
}

/* ---- ClientHello -------------------------------------------------------- */

static void
observe_client_hello(struct backend_conn *c, SSL *ssl)
{
    struct uc_json *jw = backend_log_begin(&c->srv->log, "client_hello", c->id);
    const unsigned char *p;
    size_t len;
    char buf[16];
    int *exts = NULL;
    size_t num_exts = 0;

    uc_json_key(jw, "after_hrr");
    uc_json_bool(jw, c->client_hello_seen && !c->handshake_done);
    uc_json_key(jw, "renegotiation");
    uc_json_bool(jw, c->handshake_done);

    unsigned legacy = SSL_client_hello_get0_legacy_version(ssl);
    uc_json_key(jw, "legacy_version");
    uc_json_str(jw, uc_tls_version_text(legacy, buf, sizeof(buf)));

    /* supported_versions: u8 length, u16 versions; absent = the legacy version */
    uc_json_key(jw, "versions");
    uc_json_arr_begin(jw);
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_supported_versions, &p, &len) == 1 && len >= 1) {
        size_t list_len = p[0] < len - 1 ? p[0] : len - 1;
        for (size_t i = 1; i + 1 < 1 + list_len; i += 2)
            uc_json_str(
                jw, uc_tls_version_text(((unsigned) p[i] << 8) | p[i + 1], buf, sizeof(buf)));
    } else {
        uc_json_str(jw, uc_tls_version_text(legacy, buf, sizeof(buf)));
    }
    uc_json_arr_end(jw);

    uc_json_key(jw, "ciphers");
    uc_json_arr_begin(jw);
    len = SSL_client_hello_get0_ciphers(ssl, &p);
    for (size_t i = 0; i + 1 < len; i += 2) {
        const SSL_CIPHER *ciph = SSL_CIPHER_find(ssl, p + i);
        if (ciph != NULL) {
            uc_json_str(jw, SSL_CIPHER_get_name(ciph));
        } else {
            snprintf(buf, sizeof(buf), "0x%02X%02X", p[i], p[i + 1]);
            uc_json_str(jw, buf);
        }
    }
    uc_json_arr_end(jw);

    uc_json_key(jw, "groups");
    json_u16_list(jw, ssl, TLSEXT_TYPE_supported_groups, group_names,
        sizeof(group_names) / sizeof(group_names[0]));
    uc_json_key(jw, "sigalgs");
    json_u16_list(jw, ssl, TLSEXT_TYPE_signature_algorithms, sigalg_names,
        sizeof(sigalg_names) / sizeof(sigalg_names[0]));

    /* server_name: u16 list length, then (u8 type, u16 length, name)... */
    uc_json_key(jw, "sni");
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) == 1 && len >= 5
        && p[2] == TLSEXT_NAMETYPE_host_name) {
        size_t name_len = ((size_t) p[3] << 8) | p[4];
        if (name_len > len - 5)
            name_len = len - 5;
        uc_json_strn(jw, (const char *) p + 5, name_len);
    } else {
        uc_json_null(jw);
    }

    /* ALPN: u16 list length, then (u8 length, protocol)... */
    uc_json_key(jw, "alpn");
    uc_json_arr_begin(jw);
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p, &len)
            == 1
        && len >= 2) {
        size_t i = 2;
        while (i < len) {
            size_t n = p[i];
            if (i + 1 + n > len)
                break;
            uc_json_strn(jw, (const char *) p + i + 1, n);
            i += 1 + n;
        }
    }
    uc_json_arr_end(jw);

    uc_json_key(jw, "session_id_len");
    uc_json_int(jw, (long long) SSL_client_hello_get0_session_id(ssl, &p));

    uc_json_key(jw, "ticket_offered");
    uc_json_bool(
        jw, SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_session_ticket, &p, &len) == 1 && len > 0);
    uc_json_key(jw, "psk_offered");
    uc_json_bool(jw, SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_psk, &p, &len) == 1);

    /* Every extension type in received order, from the raw ClientHello seen
     * by the message callback (SSL_client_hello_get1_extensions_present in
     * OpenSSL 3.0 omits types it does not know, GREASE among them); that
     * call is only the fallback. */
    uc_json_key(jw, "extensions");
    uc_json_arr_begin(jw);
    if (c->num_hello_exts > 0) {
        for (size_t i = 0; i < c->num_hello_exts; i++)
            uc_json_int(jw, c->hello_exts[i]);
    } else if (SSL_client_hello_get1_extensions_present(ssl, &exts, &num_exts) == 1) {
        for (size_t i = 0; i < num_exts; i++)
            uc_json_int(jw, exts[i]);
        OPENSSL_free(exts);
    }
    uc_json_arr_end(jw);
    backend_log_end(&c->srv->log);
}

static int
client_hello_cb(SSL *ssl, int *al, void *arg)
{
    struct backend_conn *c = conn_of(ssl);
    uint64_t faults = c->srv->cfg->faults;

    (void) arg;
    observe_client_hello(c, ssl);
    c->client_hello_seen = 1;
    if (faults & BACKEND_FAULT_CLOSE_AFTER_CLIENT_HELLO) {
        /* Suspends the handshake (SSL_ERROR_WANT_CLIENT_HELLO_CB); the
         * connection code then closes TCP without sending anything. */
        c->close_after_hello = 1;
        return SSL_CLIENT_HELLO_RETRY;
    }
    if (faults & BACKEND_FAULT_ALERT_AFTER_CLIENT_HELLO) {
        *al = SSL_AD_HANDSHAKE_FAILURE;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* Records the extension types of a received ClientHello, in order, before
 * OpenSSL processes it (so before client_hello_cb). Layout (RFC 8446 4.1.2):
 * type(1) length(3) legacy_version(2) random(32) session_id<0..32>
 * cipher_suites<2..2^16-2> compression_methods<1..2^8-1> extensions<..>. */
static void
msg_cb(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl, void *arg)
{
    const unsigned char *p = buf;
    struct backend_conn *c;
    size_t i, end;

    (void) version;
    (void) arg;
    if (write_p || content_type != SSL3_RT_HANDSHAKE || len < 4 + 2 + 32 + 1
        || p[0] != SSL3_MT_CLIENT_HELLO)
        return;
    c = conn_of(ssl);
    if (c == NULL)
        return;
    c->num_hello_exts = 0;
    i = 4 + 2 + 32;
    i += 1 + (size_t) p[i]; /* session id */
    if (i + 2 > len)
        return;
    i += 2 + (((size_t) p[i] << 8) | p[i + 1]); /* cipher suites */
    if (i + 1 > len)
        return;
    i += 1 + (size_t) p[i]; /* compression methods */
    if (i + 2 > len)
        return;
    end = i + 2 + (((size_t) p[i] << 8) | p[i + 1]);
    if (end > len)
        end = len;
    i += 2;
    while (i + 4 <= end && c->num_hello_exts < BACKEND_MAX_HELLO_EXTS) {
        c->hello_exts[c->num_hello_exts++] = (uint16_t) ((p[i] << 8) | p[i + 1]);
        i += 4 + (((size_t) p[i + 2] << 8) | p[i + 3]);
    }
}

/* Remembers the first alert other than close_notify, and close_notify itself. */
static void
info_cb(const SSL *ssl, int where, int ret)
{
    struct backend_conn *c;

    if ((where & SSL_CB_ALERT) == 0)
        return;
    c = conn_of(ssl);
    if (c == NULL)
        return;
    if ((ret & 0xff) == SSL_AD_CLOSE_NOTIFY) {
        if (where & SSL_CB_READ)
            c->got_close_notify = 1;
        return;
    }
    if (c->alert_dir != 0)
        return;
    c->alert_dir = (where & SSL_CB_READ) ? 'r' : 's';
    c->alert_code = ret & 0xff;
    c->alert_desc = SSL_alert_desc_string_long(ret);
}

/* Acknowledges any SNI, as a named virtual host would. Besides the empty
 * server_name extension in the ServerHello, this makes OpenSSL store the name
 * in the session, so SSL_get_servername reports it on a resumed TLS 1.2
 * connection (OpenSSL returns the session's name there, not the wire's;
 * the client_hello line has what was on the wire). */
static int
servername_cb(SSL *ssl, int *al, void *arg)
{
    (void) ssl;
    (void) al;
    (void) arg;
    return SSL_TLSEXT_ERR_OK;
}

/* With --client-ca and require, a client certificate that does not verify
 * fails the handshake (as a real backend would); otherwise every certificate
 * is accepted and the verify result is only recorded. */
static int
verify_cb_record(int preverify_ok, X509_STORE_CTX *x509_ctx)
{
    (void) preverify_ok;
    (void) x509_ctx;
    return 1;
}

SSL_CTX *
backend_tls_ctx_new(const struct backend_config *cfg, char *err, size_t err_len)
{
    SSL_CTX *ctx = NULL;
    static const unsigned char sid_ctx[] = "uptls-backend";

#define FAIL(...) \
    do { \
        uc_err_set(err, err_len, __VA_ARGS__); \
        uc_err_ssl(err, err_len); \
        goto fail; \
    } while (0)

    if (conn_index < 0) {
        conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
        if (conn_index < 0)
            FAIL("SSL_get_ex_new_index failed");
    }
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        FAIL("SSL_CTX_new failed");

    /* Present exactly the chain in --cert: never complete it from the
     * verify store (which holds --client-ca). */
    SSL_CTX_set_mode(ctx,
        SSL_MODE_NO_AUTO_CHAIN | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
            | SSL_MODE_RELEASE_BUFFERS);
    /* A peer that closes TCP without close_notify is common (and the proxy
     * under test may do so): treat it as EOF so that OpenSSL does not send
     * a fatal alert and drop the session from the cache. Whether close_notify
     * came is recorded from the alert callback. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);

    if (cfg->ciphers != NULL && SSL_CTX_set_cipher_list(ctx, cfg->ciphers) != 1)
        FAIL("--ciphers: bad value '%s'; allowed: an OpenSSL cipher list matching at least one "
             "cipher",
            cfg->ciphers);
    if (cfg->ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, cfg->ciphersuites) != 1)
        FAIL("--ciphersuites: bad value '%s'; allowed: TLS 1.3 suite names separated by ':'",
            cfg->ciphersuites);
    if (cfg->min_proto != 0 && SSL_CTX_set_min_proto_version(ctx, cfg->min_proto) != 1)
        FAIL("--min-proto: cannot set");
    if (cfg->max_proto != 0 && SSL_CTX_set_max_proto_version(ctx, cfg->max_proto) != 1)
        FAIL("--max-proto: cannot set");

    if (cfg->faults & BACKEND_FAULT_OMIT_INTERMEDIATE) {
        /* omit-intermediate: only the first certificate of the file. */
        if (SSL_CTX_use_certificate_file(ctx, cfg->cert, SSL_FILETYPE_PEM) != 1)
            FAIL("--cert: cannot load '%s'", cfg->cert);
    } else if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert) != 1) {
        FAIL("--cert: cannot load '%s'", cfg->cert);
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key, SSL_FILETYPE_PEM) != 1)
        FAIL("--key: cannot load '%s'", cfg->key);
    if (SSL_CTX_check_private_key(ctx) != 1)
        FAIL("--key: '%s' does not match the certificate in '%s'", cfg->key, cfg->cert);
    if (backend_fault_chain_apply(ctx, cfg->faults, err, err_len) != 0)
        goto fail;

    if (cfg->client_auth != BACKEND_AUTH_NONE) {
        int mode = SSL_VERIFY_PEER;
        int strict = 0;

        if (cfg->client_auth == BACKEND_AUTH_REQUIRE)
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        if (cfg->client_ca != NULL) {
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->client_ca);
            if (names == NULL)
                FAIL("--client-ca: cannot load '%s'", cfg->client_ca);
            /* The CA names go into the CertificateRequest: some clients
             * (Apache) send a certificate only if it chains to one of them. */
            SSL_CTX_set_client_CA_list(ctx, names);
            if (SSL_CTX_load_verify_locations(ctx, cfg->client_ca, NULL) != 1)
                FAIL("--client-ca: cannot load '%s'", cfg->client_ca);
            strict = cfg->client_auth == BACKEND_AUTH_REQUIRE;
        }
        SSL_CTX_set_verify(ctx, mode, strict ? NULL : verify_cb_record);
        SSL_CTX_set_verify_depth(ctx, 10);
    }
    /* A session id context is required to resume sessions once a client
     * certificate was asked for; harmless otherwise. */
    if (SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) != 1)
        FAIL("SSL_CTX_set_session_id_context failed");

    /* Session cache: TLS 1.2 session ids, and TLS 1.3 stateful tickets when
     * tickets are off. Tickets off = no stateless tickets; with the cache
     * also off, TLS 1.3 gets no tickets at all, so nothing resumable is
     * ever issued. */
    SSL_CTX_set_session_cache_mode(
        ctx, cfg->session_cache ? SSL_SESS_CACHE_SERVER : SSL_SESS_CACHE_OFF);
    if (!cfg->tickets) {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        if (!cfg->session_cache && SSL_CTX_set_num_tickets(ctx, 0) != 1)
            FAIL("SSL_CTX_set_num_tickets failed");
    }

    SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, NULL);
    SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
    SSL_CTX_set_info_callback(ctx, info_cb);
    SSL_CTX_set_msg_callback(ctx, msg_cb);
    return ctx;

fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
#undef FAIL
}

/* ---- handshake line ----------------------------------------------------- */

const char *
backend_tls_error_class(int ssl_err)
{
    switch (ssl_err) {
    case SSL_ERROR_NONE:
        return "SSL_ERROR_NONE";
    case SSL_ERROR_SSL:
        return "SSL_ERROR_SSL";
    case SSL_ERROR_WANT_READ:
        return "SSL_ERROR_WANT_READ";
    case SSL_ERROR_WANT_WRITE:
        return "SSL_ERROR_WANT_WRITE";
    case SSL_ERROR_SYSCALL:
        return "SSL_ERROR_SYSCALL";
    case SSL_ERROR_ZERO_RETURN:
        return "SSL_ERROR_ZERO_RETURN";
    case SSL_ERROR_WANT_CLIENT_HELLO_CB:
        return "SSL_ERROR_WANT_CLIENT_HELLO_CB";
    default:
        return "SSL_ERROR_OTHER";
    }
}

static void
json_alert(struct uc_json *jw, const struct backend_conn *c)
{
    uc_json_key(jw, "alert");
    if (c->alert_dir == 0) {
        uc_json_null(jw);
        return;
    }
    uc_json_obj_begin(jw);
    uc_json_key(jw, "direction");
    uc_json_str(jw, c->alert_dir == 'r' ? "received" : "sent");
    uc_json_key(jw, "name");
    uc_json_str(jw, c->alert_desc);
    uc_json_key(jw, "code");
    uc_json_int(jw, c->alert_code);
    uc_json_obj_end(jw);
}

void
backend_tls_observe_handshake_fail(
    struct backend_conn *c, const char *error, const char *error_class)
{
    struct uc_json *jw;

    if (c->handshake_logged)
        return;
    c->handshake_logged = 1;
    jw = backend_log_begin(&c->srv->log, "handshake", c->id);
    uc_json_key(jw, "ok");
    uc_json_bool(jw, 0);
    uc_json_key(jw, "error");
    uc_json_str(jw, error);
    uc_json_key(jw, "error_class");
    uc_json_str(jw, error_class);
    uc_json_key(jw, "client_hello_seen");
    uc_json_bool(jw, c->client_hello_seen);
    json_alert(jw, c);
    backend_log_end(&c->srv->log);
}

static void
json_name(struct uc_json *jw, const X509_NAME *name)
{
    char *text;

    if (uc_x509_name_rfc2253(name, &text) != 0) {
        uc_json_null(jw);
        return;
    }
    uc_json_str(jw, text);
    free(text);
}

static void
json_client_cert(struct uc_json *jw, SSL *ssl)
{
    X509 *cert = SSL_get1_peer_certificate(ssl);
    STACK_OF(X509) * chain;
    char hex[65];
    long vr;

    uc_json_key(jw, "client_cert");
    if (cert == NULL) {
        uc_json_null(jw);
        return;
    }
    uc_json_obj_begin(jw);
    uc_json_key(jw, "subject");
    json_name(jw, X509_get_subject_name(cert));
    uc_json_key(jw, "issuer");
    json_name(jw, X509_get_issuer_name(cert));
    uc_json_key(jw, "sha256");
    if (uc_x509_sha256_hex(cert, hex) == 0)
        uc_json_str(jw, hex);
    else
        uc_json_null(jw);
    /* On the server side the peer chain excludes the leaf. It is only what
     * the client sent in a full handshake; a resumed session has none. */
    uc_json_key(jw, "chain_len");
    chain = SSL_get_peer_cert_chain(ssl);
    if (chain != NULL)
        uc_json_int(jw, (long long) sk_X509_num(chain) + 1);
    else
        uc_json_null(jw);
    uc_json_key(jw, "verify");
    vr = SSL_get_verify_result(ssl);
    uc_json_str(jw, vr == X509_V_OK ? "ok" : X509_verify_cert_error_string(vr));
    uc_json_obj_end(jw);
    X509_free(cert);
}

void
backend_tls_observe_handshake_ok(struct backend_conn *c)
{
    SSL *ssl = c->ssl;
    struct uc_json *jw;
    const unsigned char *alpn = NULL;
    unsigned int alpn_len = 0;

    c->handshake_logged = 1;
    jw = backend_log_begin(&c->srv->log, "handshake", c->id);
    uc_json_key(jw, "ok");
    uc_json_bool(jw, 1);
    uc_json_key(jw, "version");
    uc_json_str(jw, SSL_get_version(ssl));
    uc_json_key(jw, "cipher");
    uc_json_str(jw, SSL_get_cipher_name(ssl));
    uc_json_key(jw, "resumed");
    uc_json_bool(jw, SSL_session_reused(ssl) == 1);
    uc_json_key(jw, "sni");
    uc_json_str(jw, SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
    uc_json_key(jw, "alpn");
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    if (alpn_len > 0)
        uc_json_strn(jw, (const char *) alpn, alpn_len);
    else
        uc_json_null(jw);
    json_client_cert(jw, ssl);
    backend_log_end(&c->srv->log);
}
