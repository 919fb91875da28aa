/*
 * One accepted connection: raw SSL over a non-blocking socket driven by two
 * libevent events (read, write) and a timer. Raw SSL rather than
 * bufferevent_openssl so that every fault can act at the exact point it
 * names (after the ClientHello, after the headers, before close_notify).
 *
 * Life: STALL | NON_TLS (faults) or HANDSHAKE -> ACTIVE -> LINGER -> freed.
 * Every connection ends in backend_conn_close, which writes the close line
 * (and a failed handshake line if the handshake never completed).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "../common/uc_net.h"
#include "backend.h"

#define WANT_READ 1
#define WANT_WRITE 2

#define OUT_HIGH_WATER (1024 * 1024) /* stop reading requests above this */
#define LINGER_SECS 2                /* wait for the peer's close after ours */
#define RESET_DELAY_MS 100           /* reset-after-headers: let the headers land */
#define SLOW_STEP_MS 50              /* slow-response: one byte per step */

enum run_result { RUN_WAIT, RUN_AGAIN, RUN_FREED };

static void conn_run(struct backend_conn *c);

static void
conn_wait(struct backend_conn *c, int want)
{
    if (want & WANT_READ)
        event_add(c->rev, NULL);
    else
        event_del(c->rev);
    if (want & WANT_WRITE)
        event_add(c->wev, NULL);
    else
        event_del(c->wev);
}

static void
conn_arm_timer(struct backend_conn *c, long ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    evtimer_add(c->timer, &tv);
}

static void
conn_io_cb(evutil_socket_t fd, short what, void *arg)
{
    struct backend_conn *c = arg;

    (void) fd;
    (void) what;
    if (c->state != CONN_LINGER && !(c->closing && c->close_mode == CLOSE_RESET))
        conn_arm_timer(c, (long) c->srv->cfg->idle_timeout * 1000);
    conn_run(c);
}

static void
conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct backend_conn *c = arg;

    (void) fd;
    (void) what;
    if (c->state == CONN_LINGER) {
        backend_conn_close(c, c->close_reason ? c->close_reason : "server_close");
        return;
    }
    if (c->closing && c->close_mode == CLOSE_RESET && c->reset_armed) {
        backend_conn_close(c, "fault reset-after-headers");
        return;
    }
    backend_conn_close(c, "timeout");
}

static void
conn_slow_cb(evutil_socket_t fd, short what, void *arg)
{
    struct backend_conn *c = arg;
    unsigned char byte;

    (void) fd;
    (void) what;
    if (evbuffer_remove(c->slow, &byte, 1) == 1)
        evbuffer_add(c->out, &byte, 1);
    if (evbuffer_get_length(c->slow) == 0)
        event_del(c->slow_timer);
    conn_run(c);
}

void
backend_conn_start_slow(struct backend_conn *c)
{
    struct timeval tv = { 0, SLOW_STEP_MS * 1000 };

    if (!event_pending(c->slow_timer, EV_TIMEOUT, NULL))
        event_add(c->slow_timer, &tv);
}

static void
conn_log_accept(struct backend_conn *c, const struct sockaddr *sa)
{
    struct uc_json *jw = backend_log_begin(&c->srv->log, "accept", c->id);
    char addr[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (uc_sockaddr_host_port(sa, addr, sizeof(addr), &port) != 0)
        snprintf(addr, sizeof(addr), "?");
    uc_json_key(jw, "peer");
    uc_json_str(jw, addr);
    uc_json_key(jw, "peer_port");
    uc_json_int(jw, port);
    backend_log_end(&c->srv->log);
}

void
backend_conn_accept(struct backend_server *srv, int fd, const struct sockaddr *sa, int salen)
{
    struct backend_conn *c = calloc(1, sizeof(*c));
    uint64_t faults = srv->cfg->faults;
    int one = 1;

    (void) salen;
    if (c == NULL) {
        close(fd);
        return;
    }
    c->srv = srv;
    c->fd = fd;
    c->id = ++srv->num_conns;
    c->rev = event_new(srv->base, fd, EV_READ | EV_PERSIST, conn_io_cb, c);
    c->wev = event_new(srv->base, fd, EV_WRITE | EV_PERSIST, conn_io_cb, c);
    c->timer = evtimer_new(srv->base, conn_timer_cb, c);
    c->slow_timer = event_new(srv->base, -1, EV_PERSIST, conn_slow_cb, c);
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    c->slow = evbuffer_new();
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    if (c->rev == NULL || c->wev == NULL || c->timer == NULL || c->slow_timer == NULL
        || c->in == NULL || c->out == NULL || c->slow == NULL) {
        backend_conn_close(c, "error out of memory");
        return;
    }
    /* slow-response sends one-byte records: do not let Nagle batch them. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn_log_accept(c, sa);

    if (faults & BACKEND_FAULT_STALL_HANDSHAKE) {
        c->state = CONN_STALL;
    } else if (faults & BACKEND_FAULT_NON_TLS) {
        c->state = CONN_NON_TLS;
    } else {
        c->ssl = SSL_new(srv->ctx);
        if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1
            || SSL_set_ex_data(c->ssl, backend_tls_conn_index(), c) != 1) {
            ERR_clear_error();
            backend_conn_close(c, "error SSL_new failed");
            return;
        }
        SSL_set_accept_state(c->ssl);
        if (backend_fault_flight_on(faults) && backend_fault_flight_start(c) != 0) {
            backend_conn_close(c, "error out of memory");
            return;
        }
        c->state = CONN_HANDSHAKE;
    }
    conn_arm_timer(c, (long) srv->cfg->idle_timeout * 1000);
    conn_run(c);
}

/* The first queued OpenSSL error (or the errno / EOF cause) as one string. */
static void
conn_error_string(int ssl_err, int ret, char *out, size_t out_len)
{
    unsigned long e = ERR_peek_error();

    if (e != 0) {
        ERR_error_string_n(e, out, out_len);
    } else if (ssl_err == SSL_ERROR_SYSCALL && ret != 0 && errno != 0) {
        snprintf(out, out_len, "%s", strerror(errno));
    } else if (ssl_err == SSL_ERROR_ZERO_RETURN || ssl_err == SSL_ERROR_SYSCALL) {
        snprintf(out, out_len, "unexpected eof");
    } else {
        snprintf(out, out_len, "%s", backend_tls_error_class(ssl_err));
    }
    ERR_clear_error();
}

void
backend_conn_close(struct backend_conn *c, const char *reason)
{
    struct backend_server *srv = c->srv;
    struct uc_json *jw;

    if (!c->handshake_logged) {
        char what[160];
        snprintf(what, sizeof(what), "handshake did not complete: %s", reason);
        backend_tls_observe_handshake_fail(c, what, "none");
    }
    jw = backend_log_begin(&srv->log, "close", c->id);
    uc_json_key(jw, "reason");
    uc_json_str(jw, reason);
    uc_json_key(jw, "requests");
    uc_json_int(jw, (long long) c->num_requests);
    uc_json_key(jw, "clean");
    uc_json_bool(jw, c->got_close_notify);
    backend_log_end(&srv->log);

    if (c->prev)
        c->prev->next = c->next;
    else if (srv->conns == c)
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;

    if (c->ssl != NULL) {
        /* Mark the connection shut down whatever happened on the wire, so
         * that SSL_free keeps its session in the cache (OpenSSL drops the
         * session of a connection freed without it). */
        if (c->handshake_done)
            SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(c->ssl);
    }
    if (c->close_mode == CLOSE_RESET && c->closing) {
        struct linger lg = { 1, 0 };
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    if (c->fd >= 0)
        close(c->fd);
    if (c->rev)
        event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    if (c->timer)
        event_free(c->timer);
    if (c->slow_timer)
        event_free(c->slow_timer);
    if (c->in)
        evbuffer_free(c->in);
    if (c->out)
        evbuffer_free(c->out);
    if (c->slow)
        evbuffer_free(c->slow);
    if (c->raw_timer)
        event_free(c->raw_timer);
    if (c->raw)
        evbuffer_free(c->raw);
    ERR_clear_error();
    free(c);
}

/*
 * Reads and drops plaintext bytes until the peer closes (stall-handshake,
 * and the linger after non-tls). eof_reason goes into the close line.
 */
static enum run_result
conn_drain_raw(struct backend_conn *c, const char *eof_reason)
{
    char buf[4096];

    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n == 0) {
            backend_conn_close(c, eof_reason);
        } else {
            char reason[128];
            snprintf(reason, sizeof(reason), "error read: %s", strerror(errno));
            backend_conn_close(c, reason);
        }
        return RUN_FREED;
    }
    conn_wait(c, WANT_READ);
    return RUN_WAIT;
}

/* non-tls: answer the first bytes (the ClientHello) with plaintext HTTP. */
static enum run_result
conn_run_non_tls(struct backend_conn *c)
{
    const char *name = c->srv->cfg->name;
    char buf[4096];
    char body[256];
    char resp[768];
    ssize_t n;
    int blen, len;

    n = recv(c->fd, buf, sizeof(buf), 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        conn_wait(c, WANT_READ);
        return RUN_WAIT;
    }
    if (n <= 0) {
        backend_conn_close(c, n == 0 ? "eof" : "error read failed");
        return RUN_FREED;
    }
    blen = snprintf(body, sizeof(body), "plaintext backend=%s conn=%lu\n", name, c->id);
    len = snprintf(resp, sizeof(resp),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
        "X-Uptls-Backend: %s\r\nConnection: close\r\n\r\n%s",
        blen, name, body);
    backend_tls_observe_handshake_fail(
        c, "not attempted: answered in plaintext (fault non-tls)", "none");
    if (len > 0 && send(c->fd, resp, (size_t) len, MSG_NOSIGNAL) < 0) {
        backend_conn_close(c, "fault non-tls (send failed)");
        return RUN_FREED;
    }
    /* Half-close so the peer sees the end, then drain until it closes. */
    shutdown(c->fd, SHUT_WR);
    c->state = CONN_LINGER;
    c->close_reason = "fault non-tls";
    conn_arm_timer(c, LINGER_SECS * 1000);
    return conn_drain_raw(c, "fault non-tls");
}

static enum run_result
conn_run_handshake(struct backend_conn *c)
{
    char what[256];
    char reason[300];
    int r, e;

    ERR_clear_error();
    r = SSL_do_handshake(c->ssl);
    if (c->raw != NULL)
        backend_fault_flight_step(c, r == 1);
    if (r == 1) {
        c->handshake_done = 1;
        backend_tls_observe_handshake_ok(c);
        if (c->srv->cfg->faults & BACKEND_FAULT_RESET_AFTER_HANDSHAKE) {
            /* reset-after-handshake: RST before a byte of the request is read */
            c->closing = 1;
            c->close_mode = CLOSE_RESET;
            backend_conn_close(c, "fault reset-after-handshake");
            return RUN_FREED;
        }
        c->state = CONN_ACTIVE;
        return RUN_AGAIN;
    }
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        conn_wait(c, WANT_READ);
        return RUN_WAIT;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        conn_wait(c, WANT_WRITE);
        return RUN_WAIT;
    }
    if (e == SSL_ERROR_WANT_CLIENT_HELLO_CB && c->close_after_hello) {
        ERR_clear_error();
        backend_tls_observe_handshake_fail(
            c, "closed after the ClientHello (fault close-after-client-hello)", "none");
        backend_conn_close(c, "fault close-after-client-hello");
        return RUN_FREED;
    }
    conn_error_string(e, r, what, sizeof(what));
    if (e == SSL_ERROR_ZERO_RETURN && !c->got_close_notify)
        snprintf(what, sizeof(what), "peer closed the connection during the handshake (eof)");
    backend_tls_observe_handshake_fail(c, what, backend_tls_error_class(e));
    if (e == SSL_ERROR_ZERO_RETURN)
        snprintf(reason, sizeof(reason), "%s", c->got_close_notify ? "close_notify" : "eof");
    else
        snprintf(reason, sizeof(reason), "error %s", what);
    backend_conn_close(c, reason);
    return RUN_FREED;
}

/* How a connection ends once its last response is written. */
static enum run_result
conn_finish(struct backend_conn *c)
{
    int r, e;

    if (c->close_mode == CLOSE_DIRTY) {
        backend_conn_close(c, c->close_reason ? c->close_reason : "server_close");
        return RUN_FREED;
    }
    if (c->close_mode == CLOSE_RESET) {
        /* reset-after-headers: give the peer a moment to read the headers
         * before the RST (a RST can discard data it has not read yet). */
        if (!c->reset_armed) {
            c->reset_armed = 1;
            conn_arm_timer(c, RESET_DELAY_MS);
        }
        conn_wait(c, 0);
        return RUN_WAIT;
    }
    ERR_clear_error();
    r = SSL_shutdown(c->ssl);
    if (r == 1) {
        backend_conn_close(c, c->close_reason ? c->close_reason : "server_close");
        return RUN_FREED;
    }
    if (r < 0) {
        e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            conn_wait(c, e == SSL_ERROR_WANT_WRITE ? WANT_WRITE : WANT_READ);
            return RUN_WAIT;
        }
        backend_conn_close(c, c->close_reason ? c->close_reason : "server_close");
        return RUN_FREED;
    }
    /* close_notify sent: half-close TCP too and wait for the peer's close. */
    shutdown(c->fd, SHUT_WR);
    c->state = CONN_LINGER;
    conn_arm_timer(c, LINGER_SECS * 1000);
    return RUN_AGAIN;
}

/* After our close_notify: read and drop until the peer's close_notify or EOF. */
static enum run_result
conn_run_linger(struct backend_conn *c)
{
    unsigned char buf[16384];
    const char *reason = c->close_reason ? c->close_reason : "server_close";
    int r, e;

    if (c->ssl == NULL)
        return conn_drain_raw(c, reason);
    for (;;) {
        ERR_clear_error();
        r = SSL_read(c->ssl, buf, sizeof(buf));
        if (r > 0)
            continue;
        e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ) {
            conn_wait(c, WANT_READ);
            return RUN_WAIT;
        }
        if (e == SSL_ERROR_WANT_WRITE) {
            conn_wait(c, WANT_WRITE);
            return RUN_WAIT;
        }
        backend_conn_close(c, reason);
        return RUN_FREED;
    }
}

static enum run_result
conn_run_active(struct backend_conn *c)
{
    unsigned char buf[16384];
    char what[256];
    char reason[300];
    int want = 0;
    int r, e;

    if (c->raw != NULL && backend_fault_flight_step(c, 1)) {
        conn_wait(c, 0); /* captured handshake bytes still on their way */
        return RUN_WAIT;
    }
    /* fault_hold: renegotiate-other-cert writes nothing until it is done */
    while (!c->fault_hold
        && (evbuffer_get_length(c->out) > 0 || (c->fault_armed && c->fault_at == 0))) {
        size_t n = evbuffer_get_length(c->out);
        unsigned char *data;

        if (c->fault_armed && c->fault_at == 0) {
            backend_fault_tls_act(c);
            continue;
        }
        if (n > sizeof(buf))
            n = sizeof(buf);
        if (c->fault_armed && n > c->fault_at)
            n = c->fault_at;
        data = evbuffer_pullup(c->out, (ssize_t) n);
        ERR_clear_error();
        r = SSL_write(c->ssl, data, (int) n);
        if (r > 0) {
            evbuffer_drain(c->out, (size_t) r);
            if (c->fault_armed)
                c->fault_at -= (size_t) r;
            continue;
        }
        e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_WRITE) {
            want |= WANT_WRITE;
            break;
        }
        if (e == SSL_ERROR_WANT_READ) {
            want |= WANT_READ;
            break;
        }
        conn_error_string(e, r, what, sizeof(what));
        snprintf(reason, sizeof(reason), "error write: %s", what);
        backend_conn_close(c, reason);
        return RUN_FREED;
    }
    if (c->closing && !c->fault_hold) {
        if (evbuffer_get_length(c->out) == 0 && evbuffer_get_length(c->slow) == 0)
            return conn_finish(c);
        /* Still writing (or slow-response still feeding): no more reads. */
        conn_wait(c, want);
        return RUN_WAIT;
    }
    if (evbuffer_get_length(c->out) > OUT_HIGH_WATER) {
        conn_wait(c, want | WANT_WRITE);
        return RUN_WAIT;
    }

    ERR_clear_error();
    r = SSL_read(c->ssl, buf, sizeof(buf));
    if (r > 0) {
        evbuffer_add(c->in, buf, (size_t) r);
        backend_http_process(c);
        return RUN_AGAIN;
    }
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ && backend_fault_tls_hold_ended(c))
        return RUN_AGAIN;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        want |= e == SSL_ERROR_WANT_READ ? WANT_READ : WANT_WRITE;
        conn_wait(c, want);
        return RUN_WAIT;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
        /* close_notify, or a bare EOF (SSL_OP_IGNORE_UNEXPECTED_EOF). */
        if (c->got_close_notify) {
            ERR_clear_error();
            SSL_shutdown(c->ssl); /* answer with ours */
            backend_conn_close(c, "close_notify");
        } else {
            backend_conn_close(c, "eof");
        }
        return RUN_FREED;
    }
    conn_error_string(e, r, what, sizeof(what));
    snprintf(reason, sizeof(reason), "error read: %s", what);
    backend_conn_close(c, reason);
    return RUN_FREED;
}

static void
conn_run(struct backend_conn *c)
{
    enum run_result res;

    do {
        switch (c->state) {
        case CONN_STALL:
            res = conn_drain_raw(c, "eof");
            break;
        case CONN_NON_TLS:
            res = conn_run_non_tls(c);
            break;
        case CONN_HANDSHAKE:
            res = conn_run_handshake(c);
            break;
        case CONN_ACTIVE:
            res = conn_run_active(c);
            break;
        case CONN_LINGER:
        default:
            res = conn_run_linger(c);
            break;
        }
    } while (res == RUN_AGAIN);
}
