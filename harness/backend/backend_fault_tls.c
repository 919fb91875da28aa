/*
 * TLS-layer response faults: what the backend does on an established
 * connection around its first 200 response (post-handshake messages,
 * broken records, an early close). The fault table and each fault's
 * documentation are in backend_fault.c.
 *
 * A fault is armed when the response is queued (backend_fault_tls_arm): it
 * acts once fault_at bytes of c->out have gone through SSL_write, i.e.
 * before the response ("before-response") or after the headers and half of
 * the body ("mid-body"). backend_conn.c's write loop calls
 * backend_fault_tls_act at that point.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "backend.h"

#define KEY_UPDATE_FLOOD 32        /* BoringSSL's runner: kMaxKeyUpdates is 32 */
#define OVERSIZED_RECORD_LEN 18688 /* > 2^14 + 2048 (RFC 5246 6.2.3) and + 256 (RFC 8446 5.2) */
#define RAW_SEND_WAIT_MS 1000
#define NUDGE_MS 100 /* renegotiate-other-cert: HelloRequest again this often */
#define NUDGE_MAX 20 /* ... at most this many times */

/* Faults that act before the response. */
#define BEFORE_RESPONSE \
    (BACKEND_FAULT_HELLO_REQUEST_BEFORE_RESPONSE | BACKEND_FAULT_RENEGOTIATE_OTHER_CERT \
        | BACKEND_FAULT_KEY_UPDATE_BEFORE_RESPONSE | BACKEND_FAULT_KEY_UPDATE_FLOOD)
/* Faults that act after the headers and half of the body. */
#define MID_BODY \
    (BACKEND_FAULT_HELLO_REQUEST_MID_BODY | BACKEND_FAULT_KEY_UPDATE_MID_BODY \
        | BACKEND_FAULT_OVERSIZED_RECORD_MID_BODY | BACKEND_FAULT_CORRUPT_RECORD_MID_BODY)

void
backend_fault_log(struct backend_conn *c, const char *name, const char *detail)
{
    struct uc_json *jw = backend_log_begin(&c->srv->log, "fault", c->id);

    uc_json_key(jw, "fault");
    uc_json_str(jw, name);
    uc_json_key(jw, "detail");
    uc_json_str(jw, detail);
    backend_log_end(&c->srv->log);
}

void
backend_fault_tls_arm(struct backend_conn *c, size_t start, size_t body_start, size_t body_len)
{
    uint64_t faults = c->srv->cfg->faults;

    if (c->fault_done || c->fault_armed || c->ssl == NULL)
        return;
    if (faults & BEFORE_RESPONSE) {
        c->fault_at = start;
    } else if (faults & MID_BODY) {
        c->fault_at = body_start + body_len / 2;
    } else if (faults & BACKEND_FAULT_CLOSE_NOTIFY_AFTER_HEADERS) {
        c->fault_at = body_start;
    } else {
        return;
    }
    c->fault_armed = 1;
}

int
backend_fault_send_raw(int fd, const void *data, size_t len)
{
    const unsigned char *p = data;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t) n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = { fd, POLLOUT, 0 };
            if (poll(&pfd, 1, RAW_SEND_WAIT_MS) > 0)
                continue;
        }
        return -1;
    }
    return 0;
}

/* The OpenSSL error queue (or what) as the detail of a fault line. */
static void
log_result(struct backend_conn *c, const char *name, int ok, const char *what)
{
    char detail[300];
    unsigned long e = ERR_peek_error();

    if (ok || e == 0) {
        snprintf(detail, sizeof(detail), "%s%s", what, ok ? "" : ": failed");
    } else {
        char ebuf[200];
        ERR_error_string_n(e, ebuf, sizeof(ebuf));
        snprintf(detail, sizeof(detail), "%s: %s", what, ebuf);
    }
    ERR_clear_error();
    backend_fault_log(c, name, detail);
}

/* hello-request-*, renegotiate-other-cert: a HelloRequest now (TLS 1.2).
 * SSL_do_handshake on a server with a renegotiation pending writes the
 * HelloRequest and returns; the client's answer is read by SSL_read. */
static void
hello_request(struct backend_conn *c, const char *name, int other_cert)
{
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    int ok;

    if (SSL_version(c->ssl) > TLS1_2_VERSION) {
        backend_fault_log(c, name, "skipped: TLS 1.3 has no renegotiation");
        return;
    }
    if (other_cert) {
        /* A full handshake (no resumption) presenting a certificate for the
         * same name that chains to no trusted root. */
        SSL_set_options(c->ssl, SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
        ok = backend_fault_selfsigned("backend.uptls.test", 0, &cert, &key) == 0
            && SSL_use_certificate(c->ssl, cert) == 1 && SSL_use_PrivateKey(c->ssl, key) == 1
            && SSL_clear_chain_certs(c->ssl) == 1;
        X509_free(cert);
        EVP_PKEY_free(key);
        if (!ok) {
            log_result(c, name, 0, "switching the certificate");
            return;
        }
    }
    ok = SSL_renegotiate(c->ssl) == 1 && SSL_do_handshake(c->ssl) == 1;
    log_result(c, name, ok, "HelloRequest sent");
    if (ok && other_cert)
        c->fault_hold = 1; /* the response waits for the new handshake */
}

/* key-update-*: KeyUpdate messages now (TLS 1.3), count of them. */
static void
key_update(struct backend_conn *c, const char *name, int type, int count)
{
    char what[64];
    int i;

    if (SSL_version(c->ssl) < TLS1_3_VERSION) {
        backend_fault_log(c, name, "skipped: KeyUpdate needs TLS 1.3");
        return;
    }
    for (i = 0; i < count; i++) {
        if (SSL_key_update(c->ssl, type) != 1 || SSL_do_handshake(c->ssl) != 1)
            break;
    }
    snprintf(what, sizeof(what), "%d KeyUpdate(s) sent, update_requested=%d", i,
        type == SSL_KEY_UPDATE_REQUESTED);
    log_result(c, name, i == count, what);
}

/* A record that breaks the connection, written to the socket as it is:
 * oversized (a header announcing more than any TLS version allows, random
 * contents) or corrupt (the next part of the body, encrypted by OpenSSL
 * into a memory BIO, one ciphertext byte flipped). */
static void
bad_record(struct backend_conn *c, const char *name, int oversized)
{
    unsigned char rec[5 + OVERSIZED_RECORD_LEN];
    size_t len = 0;
    int ok;

    if (oversized) {
        rec[0] = SSL3_RT_APPLICATION_DATA;
        rec[1] = 3;
        rec[2] = 3;
        rec[3] = OVERSIZED_RECORD_LEN >> 8;
        rec[4] = OVERSIZED_RECORD_LEN & 0xff;
        ok = RAND_bytes(rec + 5, OVERSIZED_RECORD_LEN) == 1;
        len = sizeof(rec);
    } else {
        BIO *sock = SSL_get_wbio(c->ssl);
        BIO *mem = BIO_new(BIO_s_mem());
        size_t n = evbuffer_get_length(c->out);
        char *data;
        long got;

        ok = mem != NULL && n > 0 && BIO_up_ref(sock) == 1;
        if (ok) {
            SSL_set0_wbio(c->ssl, mem);
            ok = SSL_write(c->ssl, evbuffer_pullup(c->out, (ssize_t) n), (int) n) > 0;
            got = BIO_get_mem_data(mem, &data);
            ok = ok && got > 5 && (size_t) got <= sizeof(rec);
            if (ok) {
                memcpy(rec, data, (size_t) got);
                len = (size_t) got;
                rec[len - 1] ^= 0x5a; /* inside the AEAD tag / MAC */
            }
            SSL_set0_wbio(c->ssl, sock); /* frees mem */
        } else {
            BIO_free(mem);
        }
    }
    ok = ok && backend_fault_send_raw(c->fd, rec, len) == 0;
    log_result(c, name, ok, oversized ? "oversized record sent" : "corrupt record sent");
    /* Nothing more: the rest of the body is never sent. */
    evbuffer_drain(c->out, evbuffer_get_length(c->out));
    c->closing = 1;
    c->close_mode = CLOSE_DIRTY;
    c->close_reason =
        oversized ? "fault oversized-record-mid-body" : "fault corrupt-record-mid-body";
}

int
backend_fault_tls_act(struct backend_conn *c)
{
    uint64_t f = c->srv->cfg->faults;

    c->fault_armed = 0;
    c->fault_done = 1;
    ERR_clear_error();
    if (f & BACKEND_FAULT_HELLO_REQUEST_BEFORE_RESPONSE)
        hello_request(c, "hello-request-before-response", 0);
    else if (f & BACKEND_FAULT_HELLO_REQUEST_MID_BODY)
        hello_request(c, "hello-request-mid-body", 0);
    else if (f & BACKEND_FAULT_RENEGOTIATE_OTHER_CERT)
        hello_request(c, "renegotiate-other-cert", 1);
    else if (f & BACKEND_FAULT_KEY_UPDATE_BEFORE_RESPONSE)
        key_update(c, "key-update-before-response", SSL_KEY_UPDATE_REQUESTED, 1);
    else if (f & BACKEND_FAULT_KEY_UPDATE_MID_BODY)
        key_update(c, "key-update-mid-body", SSL_KEY_UPDATE_REQUESTED, 1);
    else if (f & BACKEND_FAULT_KEY_UPDATE_FLOOD)
        key_update(c, "key-update-flood", SSL_KEY_UPDATE_NOT_REQUESTED, KEY_UPDATE_FLOOD);
    else if (f & BACKEND_FAULT_OVERSIZED_RECORD_MID_BODY)
        bad_record(c, "oversized-record-mid-body", 1);
    else if (f & BACKEND_FAULT_CORRUPT_RECORD_MID_BODY)
        bad_record(c, "corrupt-record-mid-body", 0);
    else if (f & BACKEND_FAULT_CLOSE_NOTIFY_AFTER_HEADERS) {
        /* close_notify instead of the body: a clean TLS close that still
         * cuts the response short of its Content-Length. */
        backend_fault_log(c, "close-notify-after-headers", "close_notify instead of the body");
        evbuffer_drain(c->out, evbuffer_get_length(c->out));
        c->closing = 1;
        c->close_mode = CLOSE_CLEAN;
        c->close_reason = "fault close-notify-after-headers";
    }
    return 0;
}

/* While the renegotiation has not started, the HelloRequest is sent again
 * every NUDGE_MS: an OpenSSL client acts on a HelloRequest only at its next
 * SSL_read or SSL_write (ssl3_renegotiate_check), and an event-driven client
 * waiting for the response reads again only when more bytes arrive. A
 * HelloRequest received during a handshake is ignored (RFC 5246 7.4.1.1). */
static void
nudge(struct backend_conn *c)
{
    struct timeval tv = { 0, NUDGE_MS * 1000 };

    if (event_pending(c->slow_timer, EV_TIMEOUT, NULL) || c->fault_nudges > NUDGE_MAX)
        return;
    if (c->fault_nudges++ > 0 && !SSL_in_init(c->ssl)) {
        ERR_clear_error();
        if (SSL_renegotiate(c->ssl) != 1 || SSL_do_handshake(c->ssl) != 1)
            ERR_clear_error();
    }
    event_add(c->slow_timer, &tv); /* conn_slow_cb runs the connection again */
}

int
backend_fault_tls_hold_ended(struct backend_conn *c)
{
    if (!c->fault_hold)
        return 0;
    if (SSL_renegotiate_pending(c->ssl)) {
        nudge(c);
        return 0;
    }
    c->fault_hold = 0;
    backend_fault_log(c, "renegotiate-other-cert", "renegotiation completed, responding");
    return 1;
}
