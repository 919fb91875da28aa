/*
 * The upstream side of a request (nginx's ngx_http_upstream.c): a server is
 * picked, connected (plain or TLS, within proxy_connect_timeout), sent the
 * request, and read until its response is complete; a failure moves on to
 * the next server as proxy_next_upstream says, or ends in the proxy's own
 * 502/504. Responses are streamed to the client with back-pressure.
 */
#include "proxy_upstream.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

void
proxy_upstream_conn_free(struct proxy_upstream_conn *u)
{
    if (u == NULL) {
        return;
    }
    if (u->timer) {
        event_free(u->timer);
    }
    if (u->closed_ev) {
        event_free(u->closed_ev);
    }
    if (u->bev) {
        if (u->ssl) {
            proxy_ssl_release(u->ssl);
        }
        bufferevent_free(u->bev);
    } else if (u->ssl) {
        SSL_free(u->ssl);
    }
    free(u);
}

/* Drops what the attempt on one server left of its request and response,
 * before the next server is tried or the proxy answers itself. */
static void
proxy_upstream_attempt_forget(struct proxy_client *c)
{
    c->up.request_sent = 0;
    c->up.state = PROXY_R_HEADERS;
    c->up.got_status = 0;
    c->up.header_bytes = 0;
    proxy_hdr_clear(&c->up.hdrs);
}

/* The proxy's own answer when no upstream server answered: fail_status
 * (502, 504, or the status proxy_next_upstream moved on from). The
 * mask-upstream-errors fault answers an empty 200 instead. */
static void
proxy_upstream_give_up(struct proxy_client *c)
{
    proxy_client_respond(
        c, proxy_fault_on(PROXY_FAULT_MASK_UPSTREAM_ERRORS) ? 200 : c->req.fail_status, NULL, NULL);
}

static int
proxy_method_idempotent(const char *m)
{
    return strcmp(m, "POST") != 0 && strcmp(m, "LOCK") != 0 && strcmp(m, "PATCH") != 0;
}

/* Gives up on the current upstream attempt: next server, or an error
 * response, or (once the response has started) closes the client. ft is
 * the proxy_next_upstream condition met: PROXY_NEXT_ERROR, _TIMEOUT or
 * _INVALID_HEADER (ngx_http_upstream_next()'s ft_type). */
void
proxy_upstream_fail(struct proxy_client *c, int ft, const char *fmt, ...)
{
    struct proxy_upstream_conn *u = c->up.conn;
    char msg[2048];
    int next, stale, timeout = ft == PROXY_NEXT_TIMEOUT;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    /* a cached connection that fails before any answer is retried, as
     * nginx's "if (u->peer.cached && ft_type == NGX_HTTP_UPSTREAM_FT_ERROR)
     * u->peer.tries++": for an error only, not for a POST, LOCK or PATCH
     * already sent (ft_type then also has NON_IDEMPOTENT), and only where
     * proxy_next_upstream has error */
    stale = u && u->reused && c->up.header_bytes == 0 && !c->up.got_status && ft == PROXY_NEXT_ERROR
        && (c->req.loc->next_upstream & PROXY_NEXT_ERROR)
        && !(c->up.request_sent && !proxy_method_idempotent(c->req.method));
    proxy_client_log(c, stale ? PROXY_LOG_INFO : PROXY_LOG_ERR, "%s", msg);
    if (c->resp.started) {
        proxy_upstream_conn_free(u);
        c->up.conn = NULL;
        if (proxy_fault_on(PROXY_FAULT_PASS_TRUNCATED) && c->resp.chunked) {
            evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
            proxy_client_request_done(c);
            return;
        }
        /* a truncated body is never passed on as complete */
        proxy_client_close_after_output(c);
        return;
    }
    if (stale && !c->req.retried_stale) {
        /* a cached keepalive connection the server had closed: retry the
         * same server on a new connection, as nginx does */
        c->req.retried_stale = 1;
        c->req.tried &= ~(1ULL << u->peer_idx);
        c->req.num_tried--;
        proxy_upstream_conn_free(u);
        c->up.conn = NULL;
        proxy_upstream_next(c);
        return;
    }
    if (u) {
        proxy_upstream_peer_fail(u->ups, u->peer_idx);
        proxy_upstream_conn_free(u);
        c->up.conn = NULL;
    }
    c->req.fail_status = timeout ? 504 : 502;
    next = c->req.loc->next_upstream & ft;
    if (c->up.request_sent && !proxy_method_idempotent(c->req.method)
        && !(c->req.loc->next_upstream & PROXY_NEXT_NON_IDEMPOTENT)) {
        next = 0;
    }
    proxy_upstream_attempt_forget(c);
    if (next) {
        proxy_upstream_next(c);
        return;
    }
    proxy_upstream_give_up(c);
}

static void
proxy_upstream_connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_client *c = arg;

    proxy_upstream_fail(c, PROXY_NEXT_TIMEOUT,
        "upstream timed out (110: Connection timed out) while %s",
        c->req.loc->pass_ssl ? "SSL handshaking to upstream" : "connecting to upstream");
}

/* The connection (and for https the handshake) is complete. */
static void
proxy_upstream_connected(struct proxy_client *c)
{
    struct proxy_upstream_conn *u = c->up.conn;
    char err[1024];

    if (u->timer) {
        event_free(u->timer);
        u->timer = NULL;
    }
    u->connected = 1;
    if (u->ssl) {
        if (proxy_ssl_check_after_handshake(u->ssl, c->req.loc, err, sizeof(err)) != 0) {
            proxy_upstream_fail(c, PROXY_NEXT_ERROR, "%s while SSL handshaking to upstream", err);
            return;
        }
        proxy_client_log(c, PROXY_LOG_INFO, "upstream SSL handshake done: %s %s%s",
            SSL_get_version(u->ssl), SSL_get_cipher_name(u->ssl),
            SSL_session_reused(u->ssl) ? " (session reused)" : "");
    }
    proxy_upstream_send(c);
}

void
proxy_upstream_connect_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct proxy_client *c = arg;
    struct proxy_upstream_conn *u = c->up.conn;
    unsigned long e;
    char ssl_err[1024];
    int saved = EVUTIL_SOCKET_ERROR();

    if (what & BEV_EVENT_CONNECTED) {
        proxy_upstream_connected(c);
        return;
    }
    e = u->ssl ? bufferevent_get_openssl_error(bev) : 0;
    if (e) {
        ERR_error_string_n(e, ssl_err, sizeof(ssl_err));
        if (u->ssl && SSL_get_verify_result(u->ssl) != X509_V_OK && c->req.loc->ssl_verify) {
            long vr = SSL_get_verify_result(u->ssl);

            proxy_upstream_fail(c, PROXY_NEXT_ERROR,
                "upstream SSL certificate verify error: (%ld:%s), "
                "SSL_do_handshake() failed (SSL: %s) while SSL handshaking to upstream",
                vr, X509_verify_cert_error_string(vr), ssl_err);
            return;
        }
        proxy_upstream_fail(c, PROXY_NEXT_ERROR,
            "SSL_do_handshake() failed (SSL: %s) while SSL "
            "handshaking to upstream",
            ssl_err);
        return;
    }
    if ((what & BEV_EVENT_EOF) || saved == 0) {
        proxy_upstream_fail(c, PROXY_NEXT_ERROR, "upstream prematurely closed connection while %s",
            u->ssl ? "SSL handshaking to upstream" : "connecting to upstream");
        return;
    }
    proxy_upstream_fail(c, PROXY_NEXT_ERROR,
        "connect() failed (%d: %s) while connecting to upstream", saved, strerror(saved));
}

static void
proxy_upstream_connect_read_cb(struct bufferevent *bev, void *arg)
{
}

/* Picks the next server of the location's upstream and connects. */
void
proxy_upstream_next(struct proxy_client *c)
{
    struct proxy_loc_conf *lc = c->req.loc;
    struct proxy_upstream *ups = lc->upstream;
    struct proxy_upstream_conn *u;
    struct proxy_peer *peer;
    struct timeval tv;
    char err[1024];
    const char *key;
    int idx;

    idx = proxy_upstream_peer_get(ups, c->req.tried);
    if (idx < 0) {
        /* servers left untried but down: nginx's NGX_HTTP_UPSTREAM_FT_NOLIVE,
         * a 502 whatever the previous attempt gave */
        if ((size_t) c->req.num_tried < ups->num_peers) {
            proxy_client_log(c, PROXY_LOG_ERR,
                "no live upstreams while connecting to "
                "upstream");
            c->req.fail_status = 502;
        }
        proxy_upstream_give_up(c);
        return;
    }
    c->req.tried |= 1ULL << idx;
    c->req.num_tried++;
    peer = &ups->peers[idx];
    key = lc->pass_ssl ? lc->tls_key : "plain";

    if (ups->keepalive && (u = proxy_upstream_keepalive_take(ups, (size_t) idx, key)) != NULL) {
        u->client = c;
        u->reused = 1;
        c->up.conn = u;
        proxy_client_log(c, PROXY_LOG_DEBUG, "reusing cached upstream connection");
        proxy_upstream_send(c);
        return;
    }

    u = proxy_xcalloc(1, sizeof(*u));
    u->w = c->w;
    u->ups = ups;
    u->peer_idx = (size_t) idx;
    u->key = key;
    u->client = c;
    c->up.conn = u;
    if (lc->pass_ssl) {
        u->ssl = proxy_ssl_new(lc, ups->name, peer, err, sizeof(err));
        if (u->ssl == NULL) {
            proxy_upstream_fail(c, PROXY_NEXT_ERROR, "%s while SSL handshaking to upstream", err);
            return;
        }
        u->bev = bufferevent_openssl_socket_new(
            c->w->base, -1, u->ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
        if (u->bev == NULL) {
            proxy_upstream_fail(c, PROXY_NEXT_ERROR, "bufferevent_openssl_socket_new() failed");
            return;
        }
        /* a peer that closes without close_notify ends a read-until-close
         * body; framed bodies still detect truncation by their length */
        bufferevent_openssl_set_allow_dirty_shutdown(u->bev, 1);
    } else {
        u->bev = bufferevent_socket_new(c->w->base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (u->bev == NULL) {
            proxy_upstream_fail(c, PROXY_NEXT_ERROR, "bufferevent_socket_new() failed");
            return;
        }
    }
    /* proxy_connect_timeout covers the TCP connect and the TLS handshake */
    u->timer = evtimer_new(c->w->base, proxy_upstream_connect_timeout_cb, c);
    tv = proxy_tv(lc->connect_timeout);
    evtimer_add(u->timer, &tv);
    bufferevent_setcb(
        u->bev, proxy_upstream_connect_read_cb, NULL, proxy_upstream_connect_event_cb, c);
    bufferevent_enable(u->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(u->bev, (struct sockaddr *) &peer->addr, (int) peer->addr_len)
        != 0) {
        int e = EVUTIL_SOCKET_ERROR();

        proxy_upstream_fail(c, PROXY_NEXT_ERROR,
            "connect() failed (%d: %s) while connecting to upstream", e, strerror(e));
    }
}

static void
proxy_upstream_finish(struct proxy_client *c)
{
    struct proxy_upstream_conn *u = c->up.conn;

    if (c->resp.chunked) {
        evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
    }
    c->up.conn = NULL;
    u->ups->peers[u->peer_idx].fails = 0;
    if (u->ups->keepalive && c->up.keepalive && !c->up.wants_close && !u->closed_what
        && !c->w->quitting && evbuffer_get_length(bufferevent_get_input(u->bev)) == 0) {
        proxy_upstream_keepalive_put(u);
    } else {
        proxy_upstream_conn_free(u);
    }
    if (c->resp.paused) {
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
        c->resp.paused = 0;
    }
    proxy_client_request_done(c);
}

/*
 * proxy_next_upstream http_500 | http_502 | http_503 | http_504 | http_403 |
 * http_404 | http_429, as ngx_http_upstream_test_next(): a final response
 * with a listed status is not passed on while the group has a server not
 * yet tried (nginx: u->peer.tries > 1); after a request was sent, a POST,
 * LOCK or PATCH also needs non_idempotent. The server counts as failed
 * except for 403 and 404 (NGX_PEER_NEXT). With no server left the response
 * is passed on as it is. Returns 1 when the request moved on.
 */
static int
proxy_upstream_test_next(struct proxy_client *c)
{
    static const struct {
        int status, bit;
    } next_errors[] = {
        { 500, PROXY_NEXT_HTTP_500 },
        { 502, PROXY_NEXT_HTTP_502 },
        { 503, PROXY_NEXT_HTTP_503 },
        { 504, PROXY_NEXT_HTTP_504 },
        { 403, PROXY_NEXT_HTTP_403 },
        { 404, PROXY_NEXT_HTTP_404 },
        { 429, PROXY_NEXT_HTTP_429 },
    };
    struct proxy_upstream_conn *u = c->up.conn;
    int mask = 0;
    size_t i;

    for (i = 0; i < sizeof(next_errors) / sizeof(next_errors[0]); i++) {
        if (c->up.status == next_errors[i].status) {
            mask = next_errors[i].bit;
        }
    }
    if (mask == 0 || u == NULL) {
        return 0;
    }
    if (c->up.request_sent && !proxy_method_idempotent(c->req.method)) {
        mask |= PROXY_NEXT_NON_IDEMPOTENT;
    }
    if ((c->req.loc->next_upstream & mask) != mask
        || (size_t) c->req.num_tried >= c->req.loc->upstream->num_peers) {
        return 0;
    }
    if (c->up.status != 403 && c->up.status != 404) {
        proxy_upstream_peer_fail(u->ups, u->peer_idx);
    }
    proxy_upstream_conn_free(u); /* its body is never read */
    c->up.conn = NULL;
    c->req.fail_status = c->up.status;
    proxy_upstream_attempt_forget(c);
    proxy_upstream_next(c);
    return 1;
}

void
proxy_upstream_read_cb(struct bufferevent *bev, void *arg)
{
    struct proxy_client *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer *tmp;
    char *line, *name, *v;
    size_t n;
    int rc;

    while (c->up.state == PROXY_R_HEADERS) {
        line = proxy_readln(in, &n);
        if (line == NULL) {
            if (evbuffer_get_length(in) + c->up.header_bytes > PROXY_MAX_HEADER) {
                proxy_upstream_too_big(c);
            }
            return;
        }
        c->up.header_bytes += n + 2;
        if (c->up.header_bytes > PROXY_MAX_HEADER) {
            free(line);
            proxy_upstream_too_big(c);
            return;
        }
        if (proxy_line_bad(line, n)) {
            free(line);
            proxy_upstream_fail(c, PROXY_NEXT_INVALID_HEADER,
                "upstream sent invalid header (a bare CR or a NUL) "
                "while reading response header from upstream");
            return;
        }
        if (!c->up.got_status) {
            if (strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char) line[7])
                || line[8] != ' ' || !isdigit((unsigned char) line[9])
                || !isdigit((unsigned char) line[10]) || !isdigit((unsigned char) line[11])) {
                free(line);
                proxy_upstream_fail(c, PROXY_NEXT_INVALID_HEADER,
                    "upstream sent no valid HTTP/1.0 header while "
                    "reading response header from upstream");
                return;
            }
            c->up.minor = line[7] - '0';
            c->up.status = atoi(line + 9);
            free(c->up.status_line);
            c->up.status_line = proxy_xstrdup(line + 9);
            c->up.got_status = 1;
            free(line);
            continue;
        }
        if (n == 0) {
            free(line);
            if (c->up.status >= 100 && c->up.status < 200) {
                /* an interim response: wait for the final one */
                c->up.got_status = 0;
                proxy_hdr_clear(&c->up.hdrs);
                continue;
            }
            if (proxy_upstream_test_next(c)) {
                return;
            }
            if (proxy_upstream_header_done(c) != 0) {
                proxy_upstream_fail(c, PROXY_NEXT_INVALID_HEADER,
                    "upstream sent invalid \"Content-Length\" header "
                    "while reading response header from upstream");
                return;
            }
            break;
        }
        if (proxy_header_line_parse(line, n, &name, &v) != 0) {
            free(line);
            proxy_upstream_fail(c, PROXY_NEXT_INVALID_HEADER,
                "upstream sent invalid header while reading "
                "response header from upstream");
            return;
        }
        proxy_hdr_add(&c->up.hdrs, name, v);
    }

    switch (c->up.state) {
    case PROXY_R_LENGTH:
        n = evbuffer_get_length(in);
        if ((long long) n > c->up.left) {
            n = (size_t) c->up.left;
        }
        if (!c->resp.chunked) {
            evbuffer_remove_buffer(in, bufferevent_get_output(c->bev), n);
        } else {
            tmp = evbuffer_new();
            evbuffer_remove_buffer(in, tmp, n);
            proxy_client_body_out(c, tmp);
            evbuffer_free(tmp);
        }
        c->up.left -= (long long) n;
        if (c->up.left == 0) {
            c->up.state = PROXY_R_DONE;
        }
        break;
    case PROXY_R_CHUNKED:
        tmp = evbuffer_new();
        rc = proxy_chunked_parse(&c->up.chunk, in, tmp);
        proxy_client_body_out(c, tmp);
        evbuffer_free(tmp);
        if (rc < 0) {
            proxy_upstream_fail(c, PROXY_NEXT_ERROR,
                "upstream sent invalid chunked response while "
                "reading upstream");
            return;
        }
        if (rc == 1) {
            c->up.state = PROXY_R_DONE;
        }
        break;
    case PROXY_R_EOF:
        tmp = evbuffer_new();
        evbuffer_add_buffer(tmp, in);
        proxy_client_body_out(c, tmp);
        evbuffer_free(tmp);
        break;
    default:
        break;
    }
    /* the response goes out from here, as nginx writes downstream from its
     * upstream read handler: not after every other event of this loop
     * iteration (a few TLS handshakes there are milliseconds) */
    (void) proxy_client_write_now(c);
    if (c->up.state == PROXY_R_DONE) {
        proxy_upstream_finish(c);
        return;
    }
    proxy_client_backpressure(c);
}

static void
proxy_upstream_closed_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_upstream_conn *u = arg;

    proxy_upstream_event_cb(u->bev, u->closed_what, u->client);
}

void
proxy_upstream_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct proxy_client *c = arg;
    struct proxy_upstream_conn *u = c->up.conn;
    const char *phase =
        c->resp.started ? "reading upstream" : "reading response header from upstream";
    unsigned long e;
    char ssl_err[512];

    if (u && u->ssl && !(what & BEV_EVENT_TIMEOUT) && u->closed_what == 0) {
        /* libevent 2.1's bufferevent_openssl reads into two slices: when
         * the second SSL_read() meets the close (close_notify, EOF, reset),
         * it reports it before the first one's data is in the input. The
         * close is handled after that data (the read callback runs first;
         * a response it completes frees u, and this event with it). */
        u->closed_what = what;
        u->closed_ev = event_new(c->w->base, -1, 0, proxy_upstream_closed_cb, u);
        if (u->closed_ev) {
            event_active(u->closed_ev, 0, 0);
            return;
        }
    }
    if (what & BEV_EVENT_TIMEOUT) {
        proxy_upstream_fail(c, PROXY_NEXT_TIMEOUT,
            "upstream timed out (110: Connection timed out) while %s",
            (what & BEV_EVENT_WRITING) ? "sending request to upstream" : phase);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        if (c->up.state == PROXY_R_EOF) {
            proxy_upstream_finish(c);
            return;
        }
        proxy_upstream_fail(
            c, PROXY_NEXT_ERROR, "upstream prematurely closed connection while %s", phase);
        return;
    }
    e = c->up.conn && c->up.conn->ssl ? bufferevent_get_openssl_error(bev) : 0;
    if (e) {
        ERR_error_string_n(e, ssl_err, sizeof(ssl_err));
        proxy_upstream_fail(
            c, PROXY_NEXT_ERROR, "SSL_read() failed (SSL: %s) while %s", ssl_err, phase);
        return;
    }
    e = (unsigned long) EVUTIL_SOCKET_ERROR();
    proxy_upstream_fail(
        c, PROXY_NEXT_ERROR, "recv() failed (%lu: %s) while %s", e, strerror((int) e), phase);
}
