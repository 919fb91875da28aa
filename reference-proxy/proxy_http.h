/*
 * The HTTP engine of one worker, internal: an HTTP/1.1 server for clients
 * and an HTTP/1.x client (plain or TLS) for upstream servers, on one
 * libevent loop. Where each part lives, after nginx's own files:
 *   proxy_http_parse.c      pure parsers (ngx_http_parse.c)
 *   proxy_http_request.c    client connections and requests (ngx_http_request.c)
 *   proxy_http_core.c       routing: server, location, content (ngx_http_core_module.c)
 *   proxy_http_variables.c  $variables (ngx_http_variables.c)
 *   proxy_http_special.c    the proxy's own responses (ngx_http_special_response.c)
 *   proxy_http_write.c      client output, back-pressure (ngx_http_write_filter_module.c)
 *   proxy_http_proxy.c      the request and response heads of proxy_pass (ngx_http_proxy_module.c)
 *   proxy_upstream*.c       see proxy_upstream.h
 *   proxy_worker.c          the worker's loop and signals (ngx_worker_process_cycle)
 */
#ifndef PROXY_HTTP_H
#define PROXY_HTTP_H

#include "proxy.h"
#include "proxy_http_parse.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define PROXY_HIGH_WATER (256 * 1024)
#define PROXY_MAX_HEADER (32 * 1024)
#define PROXY_MAX_BODY (1024 * 1024)
#define PROXY_CLIENT_HEADER_TIMEOUT 60000
#define PROXY_UPSTREAM_IDLE_TIMEOUT 60000

enum proxy_client_state { PROXY_C_HEADERS, PROXY_C_BODY, PROXY_C_UPSTREAM, PROXY_C_CLOSING };

enum proxy_resp_state {
    PROXY_R_HEADERS,
    PROXY_R_LENGTH,
    PROXY_R_CHUNKED,
    PROXY_R_EOF,
    PROXY_R_DONE
};

struct proxy_worker;
struct proxy_client;

struct proxy_upstream_conn;

static inline struct timeval
proxy_tv(long ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    return tv;
}


/* One request, from its request line to proxy_client_request_done(), with
 * what its upstream attempts share (the URI sent, the servers tried). */
struct proxy_request {
    int got_request_line;
    size_t header_bytes;
    char *method;
    char *uri;
    char *line; /* the request line, for the error log */
    int http_minor;
    struct proxy_hdr_list hdrs;
    char *host;
    struct proxy_server *server;
    struct proxy_loc_conf *loc;
    int keepalive;
    int body_chunked;
    long long body_left;
    struct proxy_chunked chunk;
    struct evbuffer *body;
    int head;

    char *upstream_uri;
    unsigned long long tried; /* bit i: peer i of the upstream tried */
    int num_tried;
    int fail_status; /* the proxy's answer if no server answers */
    int retried_stale;
};

/* One attempt on one upstream server: its connection, the request sent on
 * it and the response read from it. proxy_upstream_attempt_forget() drops
 * what the next attempt must not see. */
struct proxy_upstream_attempt {
    struct proxy_upstream_conn *conn;
    int request_sent;
    int wants_close; /* the request said Connection: close */
    int state;       /* PROXY_R_*: the response's reading */
    int got_status;
    int status;
    int minor;
    size_t header_bytes;
    struct proxy_hdr_list hdrs;
    char *status_line;
    long long left; /* PROXY_R_LENGTH: body bytes to come */
    struct proxy_chunked chunk;
    int keepalive; /* the server keeps the connection */
};

/* The response to the client, once its head is written. */
struct proxy_response {
    int started;
    int chunked; /* re-chunked: its length is not known */
    int paused;  /* the upstream is not read: back-pressure */
};

/* A client connection: its requests, one after the other. */
struct proxy_client {
    struct proxy_worker *w;
    struct bufferevent *bev;
    struct event *next_ev;  /* runs the next pipelined request */
    struct event *flush_ev; /* writes new output before the loop waits */
    long read_timeout_ms;   /* the client's read timeout now set */
    unsigned long id;
    char addr[64];
    char port[8];
    struct proxy_listen *listen;
    int state;

    struct proxy_request req;
    struct proxy_upstream_attempt up;
    struct proxy_response resp;

    struct proxy_client *prev, *next;
};

struct proxy_worker {
    struct proxy_conf *conf;
    struct event_base *base;
    struct evconnlistener **listeners;
    size_t num_listeners;
    struct event *sig_term;
    struct event *sig_int;
    struct event *sig_quit;
    struct proxy_client *clients;
    int num_clients;
    unsigned long next_id;
    int quitting;
};

struct proxy_listener_ctx {
    struct proxy_worker *w;
    struct proxy_listen *listen;
};

/* proxy_http_request.c */
void proxy_client_log(struct proxy_client *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void proxy_client_free(struct proxy_client *c);
void proxy_client_close_after_output(struct proxy_client *c);
void proxy_client_request_done(struct proxy_client *c);
void proxy_client_process(struct proxy_client *c);
void proxy_client_read_cb(struct bufferevent *bev, void *arg);
void proxy_client_next_cb(evutil_socket_t fd, short what, void *arg);
void proxy_client_event_cb(struct bufferevent *bev, short what, void *arg);
struct evconnlistener;
void proxy_worker_accept_cb(
    struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int socklen, void *arg);

/* proxy_http_write.c */
void proxy_client_backpressure(struct proxy_client *c);
void proxy_client_write_cb(struct bufferevent *bev, void *arg);
size_t proxy_client_write_now(struct proxy_client *c);
void proxy_client_flush_cb(evutil_socket_t fd, short what, void *arg);
void proxy_client_out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);

/* proxy_http_special.c */
void proxy_http_date(char *out, size_t out_len);
void
proxy_client_respond(struct proxy_client *c, int status, const char *location, const char *text);

/* proxy_http_core.c */
struct proxy_server *
proxy_route_server(struct proxy_worker *w, struct proxy_listen *l, const char *host);
struct proxy_loc_conf *proxy_route_location(struct proxy_server *s, const char *uri);
void proxy_request_dispatch(struct proxy_client *c);

/* proxy_http_variables.c */
char *proxy_var_expand(struct proxy_client *c, const char *tmpl);

#endif
