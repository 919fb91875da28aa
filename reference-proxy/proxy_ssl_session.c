/*
 * The upstream client session cache (nginx keeps one session per upstream
 * peer: ngx_http_upstream_set_round_robin_peer_session() and
 * ngx_http_upstream_save_round_robin_peer_session()). Ours is per upstream
 * server *and* per TLS settings of the location, and a session is stored
 * only from a connection whose verification passed (see proxy_ssl.c).
 */
#include "proxy_ssl.h"

#include <stdlib.h>
#include <string.h>

/* The client session cache: one slot per key, like nginx's one session per
 * peer. Per worker process, in memory. */
struct proxy_ssl_session {
    char *key;
    SSL_SESSION *session;
    struct proxy_ssl_session *next;
};

static struct proxy_ssl_session *proxy_ssl_sessions;

static struct proxy_ssl_session *
proxy_ssl_session_find(const char *key, int create)
{
    struct proxy_ssl_session *s;

    for (s = proxy_ssl_sessions; s; s = s->next) {
        if (strcmp(s->key, key) == 0) {
            return s;
        }
    }
    if (!create) {
        return NULL;
    }
    s = proxy_xcalloc(1, sizeof(*s));
    s->key = proxy_xstrdup(key);
    s->next = proxy_ssl_sessions;
    proxy_ssl_sessions = s;
    return s;
}

/*
 * SSL_CTX_sess_set_new_cb(): OpenSSL hands us every new session, including
 * TLS 1.3 tickets that arrive after the handshake (saving at handshake end
 * would store a session that cannot resume). Returns 0: OpenSSL keeps its
 * reference, the slot keeps a copy.
 */
int
proxy_ssl_session_new(SSL *ssl, SSL_SESSION *session)
{
    struct proxy_ssl_data *d = SSL_get_ex_data(ssl, proxy_ssl_data_index);
    struct proxy_ssl_session *slot;
    SSL_SESSION *copy;

    if (d == NULL || d->rejected || !d->lc->ssl_session_reuse
        || proxy_fault_on(PROXY_FAULT_NO_SESSION_REUSE)) {
        return 0;
    }
    /* never cache a session whose peer failed verification */
    if (d->lc->ssl_verify && !proxy_fault_on(PROXY_FAULT_SKIP_VERIFY)
        && SSL_get_verify_result(ssl) != X509_V_OK) {
        return 0;
    }
    /* The slot keeps a private copy. The object OpenSSL hands us is also
     * the connection's current session, and OpenSSL marks a connection's
     * session not resumable when that connection ends in a fatal alert
     * or an unexpected EOF (ssl3_send_alert() -> SSL_CTX_remove_session()):
     * an upstream that closes without close_notify after its response would
     * spoil the slot for every later connection (14-29% of the handshakes
     * of bench load (b) were full for that reason). */
    copy = SSL_SESSION_dup(session);
    if (copy == NULL) {
        return 0;
    }
    slot = proxy_ssl_session_find(d->key, 1);
    SSL_SESSION_free(slot->session);
    slot->session = copy;
    return 0;
}

void
proxy_ssl_session_forget(SSL *ssl, const char *key)
{
    struct proxy_ssl_session *slot = proxy_ssl_session_find(key, 0);

    if (slot && slot->session) {
        SSL_SESSION_free(slot->session);
        slot->session = NULL;
    }
    (void) ssl;
}

void
proxy_ssl_sessions_free(void)
{
    struct proxy_ssl_session *s, *n;

    for (s = proxy_ssl_sessions; s; s = n) {
        n = s->next;
        SSL_SESSION_free(s->session);
        free(s->key);
        free(s);
    }
    proxy_ssl_sessions = NULL;
}

/* The session cached for key, or NULL. */
SSL_SESSION *
proxy_ssl_session_get(const char *key)
{
    struct proxy_ssl_session *slot = proxy_ssl_session_find(key, 0);

    return slot ? slot->session : NULL;
}
