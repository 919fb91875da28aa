/*
 * The client side of one worker (nginx's ngx_http_request.c): a client
 * connection is accepted, its requests are read (request line, header
 * fields, a Content-Length or chunked body, read completely as nginx's
 * proxy_request_buffering on with client_max_body_size 1m, so a request can
 * be retried on the next upstream server), each is handed to
 * proxy_http_dispatch(), and the connection is kept alive, closed or freed.
 */
#include "proxy_upstream.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/listener.h>

/* An error log line with nginx's request context. */
void
proxy_client_log(struct proxy_client *c, int level, const char *fmt, ...)
{
    char msg[2048], upstream[600] = "";
    va_list ap;

    if (!proxy_log_enabled(level)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->up.conn && c->req.loc) {
        snprintf(upstream, sizeof(upstream), ", upstream: \"%s://%s%s\"",
            c->req.loc->pass_ssl ? "https" : "http",
            c->up.conn->ups->peers[c->up.conn->peer_idx].addr_text,
            c->req.upstream_uri ? c->req.upstream_uri : "");
    }
    proxy_log_error(level, c->id, "%s, client: %s, server: %s%s%s%s%s%s%s", msg, c->addr,
        c->req.server && c->req.server->num_names ? c->req.server->names[0] : "",
        c->req.line ? ", request: \"" : "", c->req.line ? c->req.line : "", c->req.line ? "\"" : "",
        upstream, c->req.host ? ", host: \"" : "", c->req.host ? "\"" : "");
    (void) 0;
}

/* ---- client connections ------------------------------------------------------------------ */

static void
proxy_client_reset(struct proxy_client *c)
{
    struct proxy_hdr_list req_hdrs = c->req.hdrs, up_hdrs = c->up.hdrs;
    struct proxy_upstream_conn *conn = c->up.conn;

    free(c->req.method);
    free(c->req.uri);
    free(c->req.line);
    free(c->req.host);
    free(c->req.upstream_uri);
    free(c->up.status_line);
    if (c->req.body) {
        evbuffer_free(c->req.body);
    }
    /* the header arrays are kept for the next request */
    proxy_hdr_clear(&req_hdrs);
    proxy_hdr_clear(&up_hdrs);
    memset(&c->req, 0, sizeof(c->req));
    memset(&c->up, 0, sizeof(c->up));
    memset(&c->resp, 0, sizeof(c->resp));
    c->req.hdrs = req_hdrs;
    c->req.fail_status = 502;
    c->up.hdrs = up_hdrs;
    c->up.conn = conn;
    c->up.state = PROXY_R_HEADERS;
    c->state = PROXY_C_HEADERS;
}

void
proxy_client_free(struct proxy_client *c)
{
    struct proxy_worker *w = c->w;

    if (c->up.conn) {
        proxy_upstream_conn_free(c->up.conn);
        c->up.conn = NULL;
    }
    proxy_client_reset(c);
    proxy_hdr_free(&c->req.hdrs);
    proxy_hdr_free(&c->up.hdrs);
    if (c->next_ev) {
        event_free(c->next_ev);
    }
    if (c->flush_ev) {
        event_free(c->flush_ev);
    }
    bufferevent_free(c->bev);
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        w->clients = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    w->num_clients--;
    free(c);
    if (w->quitting && w->clients == NULL) {
        event_base_loopexit(w->base, NULL);
    }
}

/* The client's read timeout: header, then keepalive time; reset only when
 * it changes (bufferevent_set_timeouts() re-adds both events). While a
 * request is answered it keeps running: see proxy_client_event_cb(). */
static void
proxy_client_read_timeout(struct proxy_client *c, long ms)
{
    struct timeval tv = proxy_tv(ms);

    if (c->read_timeout_ms == ms) {
        return;
    }
    c->read_timeout_ms = ms;
    bufferevent_set_timeouts(c->bev, &tv, NULL);
}

/* Closes once everything written so far has reached the socket. */
void
proxy_client_close_after_output(struct proxy_client *c)
{
    c->state = PROXY_C_CLOSING;
    c->req.keepalive = 0;
    bufferevent_disable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        proxy_client_free(c);
    }
}

/* The current request is finished: next one or close. */
void
proxy_client_request_done(struct proxy_client *c)
{
    long keepalive_ms = c->req.loc ? c->req.loc->keepalive_timeout : 75000;

    if (!c->req.keepalive || c->w->quitting || keepalive_ms == 0) {
        proxy_client_close_after_output(c);
        return;
    }
    proxy_client_reset(c);
    proxy_client_read_timeout(c, keepalive_ms);
    bufferevent_enable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
        event_active(c->next_ev, EV_TIMEOUT, 0);
    }
}

/*
 * The host of an absolute-form request target (RFC 9112 3.2.2:
 * "http://host[:port]/path"), lower-cased and without its port, with
 * *path_out pointing at the path ("" when it has none): an origin server
 * MUST accept the absolute-form and take the host from it, ignoring the
 * Host header field, as nginx does (ngx_http_parse_request_line). NULL
 * when the target is not in absolute-form or its host is empty.
 */
static char *
proxy_request_absolute_host(const char *target, const char **path_out)
{
    const char *p, *auth;
    char *h;
    size_t len, i;

    if (strncasecmp(target, "http://", 7) == 0) {
        auth = target + 7;
    } else if (strncasecmp(target, "https://", 8) == 0) {
        auth = target + 8;
    } else {
        return NULL;
    }
    len = strcspn(auth, "/?#");
    if (len == 0 || memchr(auth, '@', len) != NULL) {
        return NULL; /* no host, or userinfo (RFC 9110 4.2.4) */
    }
    p = auth;
    if (p[0] == '[') {
        const char *end = memchr(p, ']', len);

        if (end == NULL) {
            return NULL;
        }
        h = proxy_xstrndup(p, (size_t) (end - p + 1));
    } else {
        h = proxy_xstrndup(p, strcspn(p, ":/?#"));
    }
    for (i = 0; h[i]; i++) {
        h[i] = (char) tolower((unsigned char) h[i]);
    }
    *path_out = auth + len;
    return h;
}

/* The request head is complete. */
static int
proxy_request_header_done(struct proxy_client *c)
{
    const char *host, *conn, *te, *cl, *expect;
    char *end;
    size_t i;

    host = proxy_hdr_get(&c->req.hdrs, PROXY_H_HOST);
    if (host && c->req.host == NULL) { /* an absolute-form target's host wins */
        char *h = proxy_xstrdup(host), *colon;

        if (h[0] != '[' && (colon = strchr(h, ':')) != NULL) {
            *colon = '\0';
        }
        for (i = 0; h[i]; i++) {
            h[i] = (char) tolower((unsigned char) h[i]);
        }
        c->req.host = h;
    }
    c->req.server = proxy_route_server(c->w, c->listen, c->req.host);
    conn = proxy_hdr_get(&c->req.hdrs, PROXY_H_CONNECTION);
    c->req.keepalive = c->req.http_minor >= 1
        ? !(conn && proxy_header_has_token(conn, "close"))
        : (conn && proxy_header_has_token(conn, "keep-alive"));
    if (c->w->quitting) {
        c->req.keepalive = 0;
    }
    c->req.head = strcmp(c->req.method, "HEAD") == 0;
    if (c->req.http_minor >= 1 && host == NULL && c->req.host == NULL) {
        proxy_client_log(c, PROXY_LOG_INFO,
            "client sent HTTP/1.1 request without "
            "\"Host\" header while reading client request headers");
        return 400;
    }
    c->req.loc = proxy_route_location(c->req.server, c->req.uri);

    te = proxy_hdr_get(&c->req.hdrs, PROXY_H_TRANSFER_ENCODING);
    cl = proxy_hdr_get(&c->req.hdrs, PROXY_H_CONTENT_LENGTH);
    if (te) {
        if (cl || strcasecmp(te, "chunked") != 0) {
            return strcasecmp(te, "chunked") != 0 ? 501 : 400;
        }
        c->req.body_chunked = 1;
        c->req.body = evbuffer_new();
    } else if (cl) {
        errno = 0;
        c->req.body_left = strtoll(cl, &end, 10);
        if (errno || end == cl || *end || c->req.body_left < 0) {
            return 400;
        }
        if (c->req.body_left > PROXY_MAX_BODY) {
            return 413;
        }
        c->req.body = evbuffer_new();
    }
    expect = proxy_hdr_get(&c->req.hdrs, PROXY_H_EXPECT);
    if (c->req.body && expect && strcasecmp(expect, "100-continue") == 0
        && c->req.http_minor >= 1) {
        evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
    }
    return 0;
}

/* Reads as much of the request as is buffered. */
void
proxy_client_process(struct proxy_client *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    char *line, *name, *v, *sp1, *sp2;
    const char *path = NULL;
    size_t n;
    int status, rc;

    while (c->state == PROXY_C_HEADERS) {
        line = proxy_readln(in, &n);
        if (line == NULL) {
            if (evbuffer_get_length(in) + c->req.header_bytes > PROXY_MAX_HEADER) {
                proxy_client_respond(c, c->req.got_request_line ? 400 : 414, NULL, NULL);
            }
            return;
        }
        c->req.header_bytes += n + 2;
        if (c->req.header_bytes > PROXY_MAX_HEADER) {
            free(line);
            proxy_client_respond(c, 400, NULL, NULL);
            return;
        }
        if (proxy_line_bad(line, n)) {
            free(line);
            c->state = PROXY_C_UPSTREAM;
            proxy_client_log(c, PROXY_LOG_INFO,
                "client sent a bare CR or a NUL while "
                "reading client request %s",
                c->req.got_request_line ? "headers" : "line");
            proxy_client_respond(c, 400, NULL, NULL);
            return;
        }
        if (!c->req.got_request_line) {
            if (n == 0) {
                free(line); /* empty lines before a request are ignored */
                continue;
            }
            c->req.line = proxy_xstrdup(line);
            sp1 = strchr(line, ' ');
            sp2 = sp1 ? strrchr(line, ' ') : NULL;
            if (sp1 != NULL && sp2 != sp1) {
                *sp2 = '\0';
                c->req.host = proxy_request_absolute_host(sp1 + 1, &path);
                *sp2 = ' ';
            }
            if (sp1 == NULL || sp2 == sp1 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0
                || (sp2[8] != '0' && sp2[8] != '1') || sp2[9] != '\0'
                || (sp1[1] != '/' && c->req.host == NULL)) {
                free(line);
                c->state = PROXY_C_UPSTREAM;
                proxy_client_log(c, PROXY_LOG_INFO,
                    "client sent invalid request while "
                    "reading client request line");
                proxy_client_respond(c, 400, NULL, NULL);
                return;
            }
            c->req.method = proxy_xstrndup(line, (size_t) (sp1 - line));
            if (c->req.host != NULL) { /* absolute-form: the path, "/" if none */
                c->req.uri =
                    proxy_xasprintf("%s%.*s", path[0] == '/' ? "" : "/", (int) (sp2 - path), path);
            } else {
                c->req.uri = proxy_xstrndup(sp1 + 1, (size_t) (sp2 - sp1 - 1));
            }
            c->req.http_minor = sp2[8] - '0';
            c->req.got_request_line = 1;
            free(line);
            /* a request in progress: the header timeout applies */
            proxy_client_read_timeout(c, PROXY_CLIENT_HEADER_TIMEOUT);
            continue;
        }
        if (n == 0) {
            free(line);
            status = proxy_request_header_done(c);
            if (status) {
                c->state = PROXY_C_UPSTREAM;
                proxy_client_respond(c, status, NULL, NULL);
                return;
            }
            c->state = c->req.body ? PROXY_C_BODY : PROXY_C_UPSTREAM;
            break;
        }
        if (proxy_header_line_parse(line, n, &name, &v) != 0) {
            free(line);
            c->state = PROXY_C_UPSTREAM;
            proxy_client_log(c, PROXY_LOG_INFO,
                "client sent invalid header line while "
                "reading client request headers");
            proxy_client_respond(c, 400, NULL, NULL);
            return;
        }
        proxy_hdr_add(&c->req.hdrs, name, v);
    }

    if (c->state == PROXY_C_BODY) {
        if (c->req.body_chunked) {
            rc = proxy_chunked_parse(&c->req.chunk, in, c->req.body);
            if (rc < 0) {
                c->state = PROXY_C_UPSTREAM;
                proxy_client_respond(c, 400, NULL, NULL);
                return;
            }
            if (evbuffer_get_length(c->req.body) > PROXY_MAX_BODY) {
                c->state = PROXY_C_UPSTREAM;
                proxy_client_log(c, PROXY_LOG_ERR,
                    "client intended to send too large "
                    "chunked body");
                proxy_client_respond(c, 413, NULL, NULL);
                return;
            }
            if (rc == 0) {
                return;
            }
        } else {
            n = evbuffer_get_length(in);
            if ((long long) n > c->req.body_left) {
                n = (size_t) c->req.body_left;
            }
            evbuffer_remove_buffer(in, c->req.body, n);
            c->req.body_left -= (long long) n;
            if (c->req.body_left > 0) {
                return;
            }
        }
        c->state = PROXY_C_UPSTREAM;
    }
    if (c->state == PROXY_C_UPSTREAM && c->up.conn == NULL && c->up.state == PROXY_R_HEADERS
        && !c->resp.started && c->req.method) {
        proxy_request_dispatch(c);
    }
}

void
proxy_client_read_cb(struct bufferevent *bev, void *arg)
{
    struct proxy_client *c = arg;

    if (c->state == PROXY_C_HEADERS || c->state == PROXY_C_BODY) {
        proxy_client_process(c);
    } else if (c->state == PROXY_C_UPSTREAM
        && evbuffer_get_length(bufferevent_get_input(c->bev)) > 2 * PROXY_MAX_HEADER) {
        /* pipelined input waits while a request is answered, bounded: no
         * more is read until proxy_client_request_done() (a read watermark
         * would run its callback on every drain of the input) */
        bufferevent_disable(c->bev, EV_READ);
    }
}

void
proxy_client_next_cb(evutil_socket_t fd, short what, void *arg)
{
    proxy_client_read_cb(NULL, arg);
}

void
proxy_client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct proxy_client *c = arg;

    if ((what & BEV_EVENT_TIMEOUT) && c->state == PROXY_C_UPSTREAM) {
        /* the read timeout is for idle and header time: while the request
         * is answered it only stops reading (libevent disabled EV_READ on
         * the timeout); proxy_client_request_done() reads again */
        return;
    }
    if ((what & BEV_EVENT_TIMEOUT) && c->req.got_request_line && c->state == PROXY_C_HEADERS) {
        proxy_client_log(c, PROXY_LOG_INFO,
            "client timed out (110: Connection timed out) "
            "while reading client request headers");
    }
    if ((what & BEV_EVENT_EOF) && c->state == PROXY_C_UPSTREAM && c->up.conn) {
        proxy_client_log(c, PROXY_LOG_INFO, "client prematurely closed connection");
    }
    proxy_client_free(c);
}

void
proxy_worker_accept_cb(
    struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int socklen, void *arg)
{
    struct proxy_listener_ctx *lctx = arg;
    struct proxy_worker *w = lctx->w;
    struct proxy_client *c;
    char text[80], *colon;

    if (w->num_clients >= w->conf->worker_connections || w->quitting) {
        proxy_log_error(PROXY_LOG_ALERT, 0, "%d worker_connections are not enough",
            w->conf->worker_connections);
        evutil_closesocket(fd);
        return;
    }
    c = proxy_xcalloc(1, sizeof(*c));
    c->w = w;
    c->id = ++w->next_id;
    c->listen = lctx->listen;
    proxy_sockaddr_text(sa, text, sizeof(text), 1);
    colon = strrchr(text, ':');
    snprintf(c->port, sizeof(c->port), "%s", colon ? colon + 1 : "");
    proxy_sockaddr_text(sa, c->addr, sizeof(c->addr), 0);
    c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        evutil_closesocket(fd);
        free(c);
        return;
    }
    c->next_ev = evtimer_new(w->base, proxy_client_next_cb, c);
    c->flush_ev = event_new(w->base, -1, 0, proxy_client_flush_cb, c);
    if (c->next_ev == NULL || c->flush_ev == NULL
        || evbuffer_add_cb(bufferevent_get_output(c->bev), proxy_client_out_cb, c) == NULL) {
        proxy_log_error(PROXY_LOG_ALERT, 0, "cannot set up a client connection");
        if (c->next_ev) {
            event_free(c->next_ev);
        }
        if (c->flush_ev) {
            event_free(c->flush_ev);
        }
        bufferevent_free(c->bev);
        free(c);
        return;
    }
    c->req.fail_status = 502;
    c->next = w->clients;
    if (w->clients) {
        w->clients->prev = c;
    }
    w->clients = c;
    w->num_clients++;
    bufferevent_setcb(
        c->bev, proxy_client_read_cb, proxy_client_write_cb, proxy_client_event_cb, c);
    proxy_client_read_timeout(c, PROXY_CLIENT_HEADER_TIMEOUT);
    /* a new bufferevent is enabled for writing: output goes through
     * proxy_client_flush_cb() instead */
    bufferevent_disable(c->bev, EV_WRITE);
    bufferevent_enable(c->bev, EV_READ);
    (void) l;
    (void) socklen;
}
