/*
 * Upstream TLS: one SSL_CTX per location, built from its merged proxy_ssl_*
 * settings, as nginx's ngx_http_proxy_set_ssl() does
 * (src/http/modules/ngx_http_proxy_module.c, src/event/ngx_event_openssl.c).
 * Each security-relevant call says why, and which directive it implements
 * (https://nginx.org/en/docs/http/ngx_http_proxy_module.html).
 *
 * Where this file deliberately differs from nginx (all stricter, none
 * observable on a correct upstream):
 * - verification fails inside the handshake (SSL_VERIFY_PEER, a callback
 *   that returns OpenSSL's preverify result) instead of nginx's
 *   SSL_VERIFY_NONE + SSL_get_verify_result() after the handshake. Both are
 *   correct refusals; ours sends an alert (unknown_ca, bad_certificate...)
 *   and never completes a handshake with an unverified peer. The result and
 *   the name are checked again after every handshake, resumed ones too.
 * - the client session cache is per upstream server *and* per TLS settings
 *   of the location (nginx: per server only), and a session is stored only
 *   from a connection whose verification passed.
 * - an IP upstream name is matched against iPAddress SANs (SSL_set1_host(),
 *   RFC 2818 3.1); nginx matches names with X509_check_host() only (#1363).
 * - upstream keepalive connections are also keyed by these settings
 *   (proxy_upstream_keepalive.c).
 */
#include "proxy_ssl.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int proxy_ssl_data_index = -1;

static void
proxy_ssl_data_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    struct proxy_ssl_data *d = ptr;

    if (d) {
        free(d->key);
        free(d);
    }
}

/* ---- verification ------------------------------------------------------------------------- */

/*
 * SSL_VERIFY_PEER callback: returns OpenSSL's own verdict (preverify_ok),
 * so an untrusted, expired, revoked, too-deep or misnamed chain aborts the
 * handshake. The skip-verify fault turns every chain error except the name
 * into a pass.
 */
static int
proxy_ssl_verify_cb(int ok, X509_STORE_CTX *store)
{
    int err;

    ok = proxy_fault_verify(ok, store);
    err = X509_STORE_CTX_get_error(store);

    if (!ok && proxy_fault_on(PROXY_FAULT_SKIP_VERIFY) && err != X509_V_ERR_HOSTNAME_MISMATCH) {
        return 1;
    }
    if (!ok) {
        proxy_log_error(PROXY_LOG_INFO, 0,
            "upstream SSL certificate verify "
            "error at depth %d: (%d:%s)",
            X509_STORE_CTX_get_error_depth(store), err, X509_verify_cert_error_string(err));
    }
    return ok;
}

/* ---- password-protected keys ---------------------------------------------------------------- */

static int
proxy_ssl_password_cb(char *buf, int size, int rwflag, void *userdata)
{
    const char *pw = userdata;
    size_t n;

    /* never prompt: no password file means no password */
    if (pw == NULL) {
        return 0;
    }
    n = strlen(pw);
    if ((int) n > size) {
        n = (size_t) size;
    }
    memcpy(buf, pw, n);
    return (int) n;
}

/* proxy_ssl_password_file: "each passphrase is specified on a separate
 * line. Passphrases are tried in turn when loading the key." */
static int
proxy_ssl_key_load(
    SSL_CTX *ctx, const char *key_file, const char *password_file, char *err, size_t err_len)
{
    char *passwords[64];
    size_t num = 0, i;
    EVP_PKEY *pkey = NULL;
    char line[1024], ssl_err[1024];
    FILE *f;
    BIO *bio;
    int rc = -1;

    if (password_file) {
        f = fopen(password_file, "r");
        if (f == NULL) {
            snprintf(err, err_len, "cannot open password file \"%s\"", password_file);
            return -1;
        }
        while (num < 64 && fgets(line, sizeof(line), f)) {
            line[strcspn(line, "\r\n")] = '\0';
            passwords[num++] = proxy_xstrdup(line);
        }
        fclose(f);
        if (num == 0) {
            snprintf(err, err_len, "empty password file \"%s\"", password_file);
            return -1;
        }
    }
    for (i = 0; i < (num ? num : 1) && pkey == NULL; i++) {
        bio = BIO_new_file(key_file, "r");
        if (bio == NULL) {
            break;
        }
        ERR_clear_error();
        pkey = PEM_read_bio_PrivateKey(bio, NULL, proxy_ssl_password_cb, num ? passwords[i] : NULL);
        BIO_free(bio);
    }
    uc_ssl_errors(ssl_err, sizeof(ssl_err));
    if (pkey == NULL) {
        snprintf(err, err_len,
            "cannot load certificate key \"%s\": "
            "PEM_read_bio_PrivateKey() failed (SSL: %s)%s",
            key_file, ssl_err,
            password_file ? ""
                          : " (an encrypted key needs "
                            "\"proxy_ssl_password_file\"; uptls-proxy never prompts)");
        goto end;
    }
    if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1) {
        uc_ssl_errors(ssl_err, sizeof(ssl_err));
        snprintf(
            err, err_len, "SSL_CTX_use_PrivateKey(\"%s\") failed (SSL: %s)", key_file, ssl_err);
        goto end;
    }
    rc = 0;
end:
    EVP_PKEY_free(pkey);
    for (i = 0; i < num; i++) {
        OPENSSL_cleanse(passwords[i], strlen(passwords[i]));
        free(passwords[i]);
    }
    return rc;
}

/* ---- the context ----------------------------------------------------------------------------- */

/*
 * proxy_ssl_protocols, mapped as nginx's ngx_ssl_create(): every protocol
 * not listed gets its SSL_OP_NO_* option; the version bounds are opened to
 * the library's range (min 0, max TLS 1.3) so that a system-wide
 * MinProtocol does not silently narrow the configured set.
 */
static int
proxy_ssl_protocols_set(SSL_CTX *ctx, int protocols)
{
    static const struct {
        int bit;
        uint64_t op;
    } map[] = {
        { PROXY_SSL_SSLv3, SSL_OP_NO_SSLv3 },
        { PROXY_SSL_TLSv1, SSL_OP_NO_TLSv1 },
        { PROXY_SSL_TLSv1_1, SSL_OP_NO_TLSv1_1 },
        { PROXY_SSL_TLSv1_2, SSL_OP_NO_TLSv1_2 },
        { PROXY_SSL_TLSv1_3, SSL_OP_NO_TLSv1_3 },
    };
    size_t i;

    if (SSL_CTX_set_min_proto_version(ctx, 0) != 1
        || SSL_CTX_set_max_proto_version(
               ctx, proxy_fault_on(PROXY_FAULT_IGNORE_PROTOCOLS) ? 0 : TLS1_3_VERSION)
            != 1) {
        return -1;
    }
    if (proxy_fault_on(PROXY_FAULT_IGNORE_PROTOCOLS)) {
        return 0;
    }
    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (!(protocols & map[i].bit)) {
            SSL_CTX_set_options(ctx, map[i].op);
        }
    }
    return 0;
}

/* proxy_ssl_conf_command NAME VALUE: passed to SSL_CONF_cmd() in the client
 * context, as nginx's ngx_ssl_conf_commands(). */
static int
proxy_ssl_conf_commands_apply(
    SSL_CTX *ctx, struct proxy_keyval_list *cmds, char *err, size_t err_len)
{
    SSL_CONF_CTX *cctx;
    char ssl_err[1024];
    size_t i;
    int rc = 0;

    if (cmds == NULL || cmds->num == 0) {
        return 0;
    }
    cctx = SSL_CONF_CTX_new();
    if (cctx == NULL) {
        snprintf(err, err_len, "SSL_CONF_CTX_new() failed");
        return -1;
    }
    SSL_CONF_CTX_set_flags(cctx,
        SSL_CONF_FLAG_FILE | SSL_CONF_FLAG_CLIENT | SSL_CONF_FLAG_CERTIFICATE
            | SSL_CONF_FLAG_SHOW_ERRORS);
    SSL_CONF_CTX_set_ssl_ctx(cctx, ctx);
    for (i = 0; i < cmds->num; i++) {
        const char *k = cmds->items[i].key;

        if (proxy_fault_on(PROXY_FAULT_IGNORE_CIPHERS)
            && (strcasecmp(k, "Ciphersuites") == 0 || strcasecmp(k, "CipherString") == 0)) {
            continue;
        }
        if (proxy_fault_on(PROXY_FAULT_IGNORE_PROTOCOLS)
            && (strcasecmp(k, "MinProtocol") == 0 || strcasecmp(k, "MaxProtocol") == 0
                || strcasecmp(k, "Protocol") == 0)) {
            continue;
        }
        ERR_clear_error();
        if (SSL_CONF_cmd(cctx, k, cmds->items[i].value) <= 0) {
            uc_ssl_errors(ssl_err, sizeof(ssl_err));
            snprintf(err, err_len, "SSL_CONF_cmd(\"%s\", \"%s\") failed (SSL: %s)", k,
                cmds->items[i].value, ssl_err);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && SSL_CONF_CTX_finish(cctx) != 1) {
        uc_ssl_errors(ssl_err, sizeof(ssl_err));
        snprintf(err, err_len, "SSL_CONF_finish() failed (SSL: %s)", ssl_err);
        rc = -1;
    }
    SSL_CONF_CTX_free(cctx);
    return rc;
}

/* proxy_ssl_crl: revoked certificates "used to verify the certificates of
 * the proxied HTTPS server"; nginx sets CRL_CHECK|CRL_CHECK_ALL, so every
 * level of the chain must have a CRL. */
static int
proxy_ssl_crl_load(SSL_CTX *ctx, const char *file, char *err, size_t err_len)
{
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    X509_CRL *crl;
    BIO *bio;
    int num = 0;

    bio = BIO_new_file(file, "r");
    if (bio == NULL) {
        snprintf(err, err_len, "cannot open CRL file \"%s\"", file);
        return -1;
    }
    while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL) {
        if (X509_STORE_add_crl(store, crl) != 1) {
            X509_CRL_free(crl);
            BIO_free(bio);
            snprintf(err, err_len, "X509_STORE_add_crl(\"%s\") failed", file);
            return -1;
        }
        X509_CRL_free(crl);
        num++;
    }
    BIO_free(bio);
    ERR_clear_error();
    if (num == 0) {
        snprintf(err, err_len, "no CRL found in \"%s\"", file);
        return -1;
    }
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    return 0;
}

static char *
proxy_ssl_settings_key(const struct proxy_loc_conf *lc)
{
    char *cmds = proxy_xstrdup(""), *t;
    size_t i;

    for (i = 0; lc->ssl_conf_commands && i < lc->ssl_conf_commands->num; i++) {
        t = proxy_xasprintf("%s%s=%s;", cmds, lc->ssl_conf_commands->items[i].key,
            lc->ssl_conf_commands->items[i].value);
        free(cmds);
        cmds = t;
    }
    t = proxy_xasprintf("cert=%s|key=%s|ca=%s|crl=%s|verify=%d|depth=%d|name=%s|"
                        "sni=%d|proto=%d|ciphers=%s|cmd=%s",
        lc->ssl_certificate ? lc->ssl_certificate : "",
        lc->ssl_certificate_key ? lc->ssl_certificate_key : "",
        lc->ssl_trusted_certificate ? lc->ssl_trusted_certificate : "",
        lc->ssl_crl ? lc->ssl_crl : "", lc->ssl_verify, lc->ssl_verify_depth,
        lc->ssl_name_value ? lc->ssl_name_value : "", lc->ssl_server_name, lc->ssl_protocols,
        lc->ssl_ciphers, cmds);
    free(cmds);
    return t;
}

int
proxy_ssl_ctx_build(struct proxy_conf *conf, struct proxy_loc_conf *lc, char *err, size_t err_len)
{
    SSL_CTX *ctx;
    char ssl_err[1024];

    (void) conf;
    if (proxy_ssl_data_index < 0) {
        proxy_ssl_data_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, proxy_ssl_data_free);
    }
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        uc_ssl_errors(ssl_err, sizeof(ssl_err));
        snprintf(err, err_len, "SSL_CTX_new() failed (SSL: %s)", ssl_err);
        return -1;
    }
    lc->ssl_ctx = ctx;

    /* as ngx_ssl_create(): no compression (CRIME); no automatic chain
     * building, so the client chain sent is exactly the certificate file */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
    /* never prompt for a pass phrase on the terminal */
    SSL_CTX_set_default_passwd_cb(ctx, proxy_ssl_password_cb);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);

    if (proxy_ssl_protocols_set(ctx, lc->ssl_protocols) != 0) {
        snprintf(err, err_len, "cannot set the protocol range");
        return -1;
    }

    /* proxy_ssl_ciphers "in the format understood by the OpenSSL library"
     * (TLS 1.2 and below; TLS 1.3 suites via proxy_ssl_conf_command) */
    if (!proxy_fault_on(PROXY_FAULT_IGNORE_CIPHERS)
        && SSL_CTX_set_cipher_list(ctx, lc->ssl_ciphers) != 1) {
        uc_ssl_errors(ssl_err, sizeof(ssl_err));
        snprintf(err, err_len, "SSL_CTX_set_cipher_list(\"%s\") failed (SSL: %s)", lc->ssl_ciphers,
            ssl_err);
        return -1;
    }

    /* proxy_ssl_certificate / _key: "used for authentication to a proxied
     * HTTPS server". The file's further certificates are the chain sent. */
    if (lc->ssl_certificate && !proxy_fault_on(PROXY_FAULT_IGNORE_CLIENT_CERT)) {
        if (SSL_CTX_use_certificate_chain_file(ctx, lc->ssl_certificate) != 1) {
            uc_ssl_errors(ssl_err, sizeof(ssl_err));
            snprintf(err, err_len,
                "cannot load certificate \"%s\": "
                "SSL_CTX_use_certificate_chain_file() failed (SSL: %s)",
                lc->ssl_certificate, ssl_err);
            return -1;
        }
        if (proxy_ssl_key_load(ctx, lc->ssl_certificate_key, lc->ssl_password_file, err, err_len)
            != 0) {
            return -1;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            uc_ssl_errors(ssl_err, sizeof(ssl_err));
            snprintf(err, err_len,
                "certificate \"%s\" and key \"%s\" do not match "
                "(SSL: %s)",
                lc->ssl_certificate, lc->ssl_certificate_key, ssl_err);
            return -1;
        }
    }

    if (proxy_ssl_conf_commands_apply(ctx, lc->ssl_conf_commands, err, err_len) != 0) {
        return -1;
    }

    /* proxy_ssl_verify: "Enables or disables verification of the proxied
     * HTTPS server certificate"; trust anchors come only from
     * proxy_ssl_trusted_certificate (nginx never uses the system store). */
    if (lc->ssl_verify) {
        if (SSL_CTX_load_verify_locations(ctx, lc->ssl_trusted_certificate, NULL) != 1) {
            uc_ssl_errors(ssl_err, sizeof(ssl_err));
            snprintf(err, err_len,
                "SSL_CTX_load_verify_locations(\"%s\") failed "
                "(SSL: %s)",
                lc->ssl_trusted_certificate, ssl_err);
            return -1;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, proxy_ssl_verify_cb);
        /* proxy_ssl_verify_depth, passed to OpenSSL as nginx does: depth N
         * allows N intermediates between the leaf and the trust anchor */
        SSL_CTX_set_verify_depth(
            ctx, proxy_fault_on(PROXY_FAULT_IGNORE_DEPTH) ? 1000 : lc->ssl_verify_depth);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (lc->ssl_crl && proxy_ssl_crl_load(ctx, lc->ssl_crl, err, err_len) != 0) {
        return -1;
    }
    /* a chain that passed is not verified again on the next connection
     * while nothing that decides the answer has changed (proxy_verify.c) */
    if (lc->ssl_verify && proxy_vmemo_attach(ctx) != 0) {
        snprintf(err, err_len, "cannot set up the verification memo");
        return -1;
    }

    /* proxy_ssl_session_reuse: sessions come to us through the new-session
     * callback only (TLS 1.3 tickets arrive after the handshake); OpenSSL's
     * internal store is not used, our cache is keyed per server+settings */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, proxy_ssl_session_new);

    proxy_fault_ssl_ctx(ctx);
    lc->tls_key = proxy_ssl_settings_key(lc);
    return 0;
}

/* A new upstream connection's SSL object for one peer. */
SSL *
proxy_ssl_new(struct proxy_loc_conf *lc, const char *group, struct proxy_peer *peer, char *err,
    size_t err_len)
{
    struct proxy_ssl_data *d;
    SSL_SESSION *cached;
    const char *name = lc->ssl_name_value;
    char ssl_err[512];
    SSL *ssl;

    ssl = SSL_new(lc->ssl_ctx);
    if (ssl == NULL) {
        uc_ssl_errors(ssl_err, sizeof(ssl_err));
        snprintf(err, err_len, "SSL_new() failed (SSL: %s)", ssl_err);
        return NULL;
    }
    d = proxy_xcalloc(1, sizeof(*d));
    d->lc = lc;
    /* one cache slot per upstream server and TLS settings; the
     * share-sessions fault collapses them into one slot per upstream group,
     * shared by all its servers and all locations (one slot per group rather
     * than one per process, so that concurrent harness scenarios, each with
     * its own upstream block, do not overwrite each other's session) */
    d->key = proxy_fault_on(PROXY_FAULT_SHARE_SESSIONS)
        ? proxy_xasprintf("shared|%s", group)
        : proxy_xasprintf("%s|%s", peer->addr_text, lc->tls_key);
    SSL_set_ex_data(ssl, proxy_ssl_data_index, d);

    /* proxy_ssl_server_name: "Enables or disables passing of the server
     * name through TLS SNI"; never an IP literal (RFC 6066 section 3) */
    if (lc->ssl_server_name && !proxy_fault_on(PROXY_FAULT_NO_SNI)
        && !proxy_addr_is_ip_literal(name)) {
        if (SSL_set_tlsext_host_name(ssl, name) != 1) {
            uc_ssl_errors(ssl_err, sizeof(ssl_err));
            snprintf(
                err, err_len, "SSL_set_tlsext_host_name(\"%s\") failed (SSL: %s)", name, ssl_err);
            SSL_free(ssl);
            return NULL;
        }
    }

    /* proxy_ssl_name: the name "used to verify the certificate of the
     * proxied HTTPS server"; checked only when proxy_ssl_verify is on.
     * SSL_set1_host() (OpenSSL 3.0) matches a DNS name with X509_check_host()
     * rules (SAN dNSName, CN fallback) and an IP literal against iPAddress
     * SANs (RFC 2818 3.1). nginx itself never matches IP SANs (it calls
     * X509_check_host() only, nginx #1363): for an IP upstream with an
     * iPAddress SAN this proxy accepts where nginx refuses. */
    if (lc->ssl_verify && !proxy_fault_on(PROXY_FAULT_SKIP_HOST_CHECK)) {
        X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(ssl), 0);
        if (SSL_set1_host(ssl, name) != 1) {
            snprintf(err, err_len, "SSL_set1_host(\"%s\") failed", name);
            SSL_free(ssl);
            return NULL;
        }
    }

    if (lc->ssl_session_reuse && !proxy_fault_on(PROXY_FAULT_NO_SESSION_REUSE)) {
        cached = proxy_ssl_session_get(d->key);
        /* every new connection resumes the slot's session, as nginx reuses
         * one session per peer until a newer one replaces it; each takes a
         * copy, so that its own failure cannot make the slot's unresumable
         * for the others (see proxy_ssl_session_new()) */
        if (cached && SSL_SESSION_is_resumable(cached)) {
            SSL_SESSION *copy = SSL_SESSION_dup(cached);

            if (copy) {
                SSL_set_session(ssl, copy);
                SSL_SESSION_free(copy);
            }
        }
    }
    return ssl;
}

/*
 * After every handshake, full or resumed: with proxy_ssl_verify on, the
 * verification result and the name must hold (a resumed session carries the
 * result of the handshake that made it; it never skips the check).
 */
int
proxy_ssl_check_after_handshake(SSL *ssl, struct proxy_loc_conf *lc, char *err, size_t err_len)
{
    struct proxy_ssl_data *d = SSL_get_ex_data(ssl, proxy_ssl_data_index);
    X509 *cert;
    long rc;

    if (!lc->ssl_verify) {
        return 0;
    }
    if (!proxy_fault_on(PROXY_FAULT_SKIP_VERIFY)) {
        rc = SSL_get_verify_result(ssl);
        if (rc != X509_V_OK) {
            snprintf(err, err_len, "upstream SSL certificate verify error: (%ld:%s)", rc,
                X509_verify_cert_error_string(rc));
            goto reject;
        }
    }
    if (!proxy_fault_on(PROXY_FAULT_SKIP_HOST_CHECK)) {
        cert = SSL_get0_peer_certificate(ssl);
        if (cert == NULL) {
            snprintf(err, err_len, "upstream sent no required SSL certificate");
            goto reject;
        }
        if ((proxy_addr_is_ip_literal(lc->ssl_name_value)
                    ? X509_check_ip_asc(cert, lc->ssl_name_value, 0)
                    : X509_check_host(cert, lc->ssl_name_value, 0, 0, NULL))
            != 1) {
            snprintf(
                err, err_len, "upstream SSL certificate does not match \"%s\"", lc->ssl_name_value);
            goto reject;
        }
    }
    return 0;

reject:
    if (d) {
        d->rejected = 1;
        proxy_ssl_session_forget(ssl, d->key);
    }
    return -1;
}

/*
 * Before the SSL object is freed (libevent frees it with the bufferevent):
 * OpenSSL 3.0 marks a session not resumable when its connection is freed
 * without a shutdown, so a session worth keeping must be marked shut down.
 * A rejected connection's session is not kept anyway.
 */
void
proxy_ssl_release(SSL *ssl)
{
    struct proxy_ssl_data *d;

    if (ssl == NULL) {
        return;
    }
    d = SSL_get_ex_data(ssl, proxy_ssl_data_index);
    if (d && !d->rejected && SSL_is_init_finished(ssl)) {
        SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    }
}
