/*
 * The upstream side, internal, after nginx's files:
 *   proxy_upstream.c               connect, send, read, fail, next (ngx_http_upstream.c)
 *   proxy_upstream_round_robin.c   peers (ngx_http_upstream_round_robin.c)
 *   proxy_upstream_keepalive.c     idle connections (ngx_http_upstream_keepalive_module.c)
 *   proxy_http_proxy.c             the heads of proxy_pass (ngx_http_proxy_module.c)
 */
#ifndef PROXY_UPSTREAM_H
#define PROXY_UPSTREAM_H

#include "proxy_http.h"

/* A location's request head plan, built on its first request: the
 * proxy_set_header fields followed by nginx's defaults not overridden. */
struct proxy_set_item {
    const char *key;
    const char *value;
    size_t key_len;
    size_t value_len;
    int id;
    int dynamic; /* the value holds a $variable */
};

struct proxy_hdr_plan {
    struct proxy_set_item *items;
    size_t num;
    unsigned known; /* PROXY_HBIT of every recognised key set */
    int has_other;  /* some set key is not a recognised one */
};

struct proxy_upstream_conn {
    struct proxy_worker *w;
    struct bufferevent *bev;
    SSL *ssl;
    struct event *timer; /* connect + handshake timeout */
    struct proxy_upstream *ups;
    size_t peer_idx;
    const char *key; /* keepalive cache key with peer_idx: the
                                   location's TLS settings key or "plain" */
    struct proxy_client *client;
    int connected;
    int reused;
    long read_ms, write_ms;           /* the timeouts now set on bev, 0: none */
    struct event *closed_ev;          /* TLS: runs a close after the data before it */
    short closed_what;                /* the BEV_EVENT_* flags of that close */
    struct proxy_upstream_conn *next; /* idle list */
};

/* Sets the upstream connection's timeouts when they change (an idle
 * connection and one in use differ only in the read timeout's value, and
 * bufferevent_set_timeouts() re-adds both events). */
static inline void
proxy_upstream_conn_timeouts(struct proxy_upstream_conn *u, long read_ms, long write_ms)
{
    struct timeval rtv = proxy_tv(read_ms), wtv = proxy_tv(write_ms);

    if (u->read_ms == read_ms && u->write_ms == write_ms) {
        return;
    }
    u->read_ms = read_ms;
    u->write_ms = write_ms;
    bufferevent_set_timeouts(u->bev, read_ms ? &rtv : NULL, write_ms ? &wtv : NULL);
}

/* proxy_upstream.c */
void proxy_upstream_conn_free(struct proxy_upstream_conn *u);
void proxy_upstream_fail(struct proxy_client *c, int ft, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void proxy_upstream_connect_event_cb(struct bufferevent *bev, short what, void *arg);
void proxy_upstream_next(struct proxy_client *c);
void proxy_upstream_read_cb(struct bufferevent *bev, void *arg);
void proxy_upstream_event_cb(struct bufferevent *bev, short what, void *arg);

/* proxy_upstream_round_robin.c */
int proxy_upstream_peer_get(struct proxy_upstream *u, unsigned long long tried);
void proxy_upstream_peer_fail(struct proxy_upstream *u, size_t idx);

/* proxy_upstream_keepalive.c */
void proxy_upstream_keepalive_put(struct proxy_upstream_conn *u);
struct proxy_upstream_conn *
proxy_upstream_keepalive_take(struct proxy_upstream *ups, size_t peer_idx, const char *key);
void proxy_upstream_keepalive_drop_all(struct proxy_worker *w);

/* proxy_http_proxy.c */
void proxy_upstream_send(struct proxy_client *c);
int proxy_upstream_header_done(struct proxy_client *c);
void proxy_client_body_out(struct proxy_client *c, struct evbuffer *data);
void proxy_upstream_too_big(struct proxy_client *c);

#endif
