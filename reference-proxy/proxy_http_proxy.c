/*
 * The HTTP of proxy_pass (nginx's ngx_http_proxy_module.c at run time): the
 * request head written upstream (proxy_set_header, nginx's default fields,
 * the client's fields that are not hop-by-hop) and the response head and
 * body passed to the client (hop-by-hop fields dropped, the body re-chunked
 * when its length is not known).
 */
#include "proxy_upstream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/bufferevent_struct.h> /* ev_write: proxy_upstream_send() */

/* The location's proxy_set_header fields first, then nginx's defaults not
 * overridden; built once per location (one block: the plan, then items). */
static struct proxy_hdr_plan *
proxy_hdr_plan_get(struct proxy_loc_conf *lc)
{
    static const struct proxy_keyval defaults[] = {
        { "Host", "$proxy_host" },
        { "Connection", "close" },
        { "Content-Length", "" },
        { "Transfer-Encoding", "" },
        { "TE", "" },
        { "Keep-Alive", "" },
        { "Expect", "" },
        { "Upgrade", "" },
    };
    size_t ndef = sizeof(defaults) / sizeof(defaults[0]);
    size_t nset = lc->headers ? lc->headers->num : 0, i, j;
    struct proxy_hdr_plan *plan = lc->hdr_plan;
    struct proxy_set_item *it;

    if (plan) {
        return plan;
    }
    plan = proxy_xcalloc(1, sizeof(*plan) + (nset + ndef) * sizeof(*it));
    plan->items = (struct proxy_set_item *) (plan + 1);
    for (i = 0; i < nset + ndef; i++) {
        const char *k = i < nset ? lc->headers->items[i].key : defaults[i - nset].key;
        const char *v = i < nset ? lc->headers->items[i].value : defaults[i - nset].value;

        if (i >= nset) {
            for (j = 0; j < nset; j++) {
                if (strcasecmp(lc->headers->items[j].key, k) == 0) {
                    break;
                }
            }
            if (j < nset) {
                continue;
            }
        }
        it = &plan->items[plan->num++];
        it->key = k;
        it->key_len = strlen(k);
        it->value = v;
        it->value_len = strlen(v);
        it->id = proxy_hid_of(k, it->key_len);
        it->dynamic = strchr(v, '$') != NULL;
        if (it->id != PROXY_H_OTHER) {
            plan->known |= PROXY_HBIT(it->id);
        } else {
            plan->has_other = 1;
        }
    }
    lc->hdr_plan = plan;
    return plan;
}

/* Is a client field replaced by a proxy_set_header field of the plan? */
static int
proxy_hdr_plan_sets(const struct proxy_hdr_plan *plan, const struct proxy_hdr *h)
{
    size_t i;

    if (h->id != PROXY_H_OTHER) {
        return (plan->known & PROXY_HBIT(h->id)) != 0;
    }
    if (!plan->has_other) {
        return 0;
    }
    for (i = 0; i < plan->num; i++) {
        if (plan->items[i].id == PROXY_H_OTHER && strcasecmp(plan->items[i].key, h->key) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Writes the request head and body to the upstream. */
void
proxy_upstream_send(struct proxy_client *c)
{
    struct proxy_upstream_conn *u = c->up.conn;
    struct proxy_loc_conf *lc = c->req.loc;
    struct proxy_hdr_plan *plan = proxy_hdr_plan_get(lc);
    struct proxy_out o;
    char num[32];
    size_t i, vlen;
    const char *v;
    char *dyn;
    int n;

    o.ev = bufferevent_get_output(u->bev);
    o.n = 0;
    proxy_out_str(&o, c->req.method);
    proxy_out_add(&o, " ", 1);
    proxy_out_str(&o, c->req.upstream_uri);
    proxy_out_add(&o, lc->http_version == 11 ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n", 11);
    c->up.wants_close = 1;
    for (i = 0; i < plan->num; i++) {
        const struct proxy_set_item *it = &plan->items[i];

        dyn = it->dynamic ? proxy_var_expand(c, it->value) : NULL;
        v = dyn ? dyn : it->value;
        vlen = dyn ? strlen(dyn) : it->value_len;
        if (it->id == PROXY_H_CONNECTION) {
            c->up.wants_close =
                vlen == 0 ? lc->http_version != 11 : proxy_header_has_token(v, "close");
        }
        if (vlen != 0) { /* an empty value removes the field */
            proxy_out_field(&o, it->key, it->key_len, v, vlen);
        }
        free(dyn);
    }
    if (c->req.body
        && (evbuffer_get_length(c->req.body) > 0 || c->req.body_chunked
            || proxy_hdr_get(&c->req.hdrs, PROXY_H_CONTENT_LENGTH))) {
        n = snprintf(num, sizeof(num), "%zu", evbuffer_get_length(c->req.body));
        proxy_out_field(&o, "Content-Length", 14, num, (size_t) n);
    }
    for (i = 0; i < c->req.hdrs.num; i++) {
        const struct proxy_hdr *h = &c->req.hdrs.items[i];

        if ((h->id != PROXY_H_OTHER && (PROXY_HOP_REQUEST & PROXY_HBIT(h->id)))
            || proxy_hdr_plan_sets(plan, h)) {
            continue;
        }
        proxy_out_field(&o, h->key, strlen(h->key), h->value, strlen(h->value));
    }
    proxy_out_add(&o, "\r\n", 2);
    proxy_out_flush(&o);
    if (c->req.body && evbuffer_get_length(c->req.body) > 0) {
        evbuffer_add_buffer_reference(o.ev, c->req.body);
    }
    c->up.request_sent = 1;

    bufferevent_setcb(u->bev, proxy_upstream_read_cb, NULL, proxy_upstream_event_cb, c);
    proxy_upstream_conn_timeouts(u, lc->read_timeout, lc->send_timeout);
    bufferevent_enable(u->bev, EV_READ | EV_WRITE);
    /* write now, not after the next epoll_wait(): the write event's own
     * callback (libevent's, TLS or plain), run in this loop iteration,
     * writes what the socket takes and deletes the event again before the
     * change list reaches epoll, so a request that fits costs no
     * epoll_ctl(); what does not fit waits for the event as before */
    event_active(&u->bev->ev_write, EV_WRITE, 1);
}

/* Sends the response head to the client once the upstream's is complete. */
int
proxy_upstream_header_done(struct proxy_client *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    struct proxy_out o;
    const char *te, *cl, *conn;
    char date[64], *end;
    size_t i;

    te = proxy_hdr_get(&c->up.hdrs, PROXY_H_TRANSFER_ENCODING);
    cl = proxy_hdr_get(&c->up.hdrs, PROXY_H_CONTENT_LENGTH);
    conn = proxy_hdr_get(&c->up.hdrs, PROXY_H_CONNECTION);
    c->up.keepalive = c->up.minor >= 1 ? !(conn && proxy_header_has_token(conn, "close"))
                                       : (conn && proxy_header_has_token(conn, "keep-alive"));

    if (c->req.head || c->up.status == 204 || c->up.status == 304) {
        c->up.state = PROXY_R_DONE;
    } else if (te && proxy_header_has_token(te, "chunked")) {
        c->up.state = PROXY_R_CHUNKED;
    } else if (cl) {
        errno = 0;
        c->up.left = strtoll(cl, &end, 10);
        if (errno || end == cl || *end || c->up.left < 0) {
            return -1;
        }
        c->up.state = c->up.left ? PROXY_R_LENGTH : PROXY_R_DONE;
    } else {
        c->up.state = PROXY_R_EOF;
        c->up.keepalive = 0;
    }
    if (c->up.state == PROXY_R_CHUNKED || c->up.state == PROXY_R_EOF
        || (c->up.state == PROXY_R_LENGTH && proxy_fault_on(PROXY_FAULT_PASS_TRUNCATED))) {
        if (c->req.http_minor >= 1) {
            c->resp.chunked = 1;
        } else {
            c->req.keepalive = 0;
        }
    }
    if (c->w->quitting) {
        c->req.keepalive = 0;
    }
    proxy_http_date(date, sizeof(date));
    o.ev = out;
    o.n = 0;
    proxy_out_add(&o, "HTTP/1.1 ", 9);
    proxy_out_str(&o, c->up.status_line);
    proxy_out_add(&o,
        "\r\nServer: " PROXY_NAME "\r\nDate: ", sizeof("\r\nServer: " PROXY_NAME "\r\nDate: ") - 1);
    proxy_out_str(&o, date);
    proxy_out_add(&o, "\r\n", 2);
    for (i = 0; i < c->up.hdrs.num; i++) {
        const struct proxy_hdr *h = &c->up.hdrs.items[i];

        if (h->id == PROXY_H_OTHER || !(PROXY_HOP_RESPONSE & PROXY_HBIT(h->id))) {
            proxy_out_field(&o, h->key, strlen(h->key), h->value, strlen(h->value));
        }
    }
    if (cl && c->up.state != PROXY_R_CHUNKED && !c->resp.chunked) {
        proxy_out_field(&o, "Content-Length", 14, cl, strlen(cl));
    } else if (c->resp.chunked) {
        proxy_out_str(&o, "Transfer-Encoding: chunked\r\n");
    }
    proxy_out_str(
        &o, c->req.keepalive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n");
    proxy_out_flush(&o);
    c->resp.started = 1;
    return 0;
}

/* Moves decoded body bytes to the client, re-chunked when needed. */
void
proxy_client_body_out(struct proxy_client *c, struct evbuffer *data)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t n = evbuffer_get_length(data);

    if (n == 0) {
        return;
    }
    if (c->resp.chunked) {
        evbuffer_add_printf(out, "%zx\r\n", n);
        evbuffer_add_buffer(out, data);
        evbuffer_add(out, "\r\n", 2);
    } else {
        evbuffer_add_buffer(out, data);
    }
}

/* A response header block beyond PROXY_MAX_HEADER: 502 ("upstream sent too
 * big header", nginx's proxy_buffer_size), or with the cut-big-headers
 * fault what was read of it, unterminated, and the client closed. */
void
proxy_upstream_too_big(struct proxy_client *c)
{
    struct proxy_out o;
    size_t i;

    if (proxy_fault_on(PROXY_FAULT_CUT_BIG_HEADERS) && c->up.got_status) {
        o.ev = bufferevent_get_output(c->bev);
        o.n = 0;
        proxy_out_add(&o, "HTTP/1.1 ", 9);
        proxy_out_str(&o, c->up.status_line);
        proxy_out_add(&o, "\r\n", 2);
        for (i = 0; i < c->up.hdrs.num; i++) {
            proxy_out_field(&o, c->up.hdrs.items[i].key, strlen(c->up.hdrs.items[i].key),
                c->up.hdrs.items[i].value, strlen(c->up.hdrs.items[i].value));
        }
        proxy_out_flush(&o);
        proxy_upstream_conn_free(c->up.conn);
        c->up.conn = NULL;
        proxy_client_close_after_output(c);
        return;
    }
    proxy_upstream_fail(c, PROXY_NEXT_INVALID_HEADER,
        "upstream sent too big header while "
        "reading response header from upstream");
}
