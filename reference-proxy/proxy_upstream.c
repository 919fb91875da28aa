/*
 * The HTTP engine of one worker: an HTTP/1.1 server for clients and an
 * HTTP/1.x client (plain or TLS) for upstream servers, on one libevent loop.
 *
 * Request bodies are read completely before the upstream is contacted (as
 * nginx's default proxy_request_buffering on, with client_max_body_size 1m),
 * so a request can be retried on the next upstream server; responses are
 * streamed with back-pressure: when the client's output passes
 * PROXY_HIGH_WATER the upstream is not read until it drains to half of it
 * (libevent's sample/le-proxy.c).
 */
#include "proxy.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>  /* ev_write: proxy_upstream_send() */
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>

#define PROXY_HIGH_WATER (256 * 1024)
#define PROXY_MAX_HEADER (32 * 1024)
#define PROXY_MAX_BODY (1024 * 1024)
#define PROXY_CLIENT_HEADER_TIMEOUT 60000
#define PROXY_UPSTREAM_IDLE_TIMEOUT 60000

enum proxy_chunk_state { PROXY_CHUNK_SIZE, PROXY_CHUNK_DATA, PROXY_CHUNK_CRLF,
    PROXY_CHUNK_TRAILER, PROXY_CHUNK_DONE };

struct proxy_chunked {
    int state;
    long long size;
};

enum proxy_client_state { PROXY_C_HEADERS, PROXY_C_BODY, PROXY_C_UPSTREAM,
    PROXY_C_CLOSING };

enum proxy_resp_state { PROXY_R_HEADERS, PROXY_R_LENGTH, PROXY_R_CHUNKED,
    PROXY_R_EOF, PROXY_R_DONE };

struct proxy_worker;
struct proxy_client;

/* Header fields the proxy acts on, recognised once when a line is parsed
 * so that later look-ups and filters compare integers, not names. */
enum proxy_hid {
    PROXY_H_OTHER = 0, PROXY_H_HOST, PROXY_H_CONNECTION, PROXY_H_KEEP_ALIVE,
    PROXY_H_TRANSFER_ENCODING, PROXY_H_CONTENT_LENGTH, PROXY_H_TE, PROXY_H_EXPECT,
    PROXY_H_UPGRADE, PROXY_H_PROXY_CONNECTION, PROXY_H_TRAILER, PROXY_H_DATE,
    PROXY_H_SERVER, PROXY_H_X_ACCEL, PROXY_H_X_FORWARDED_FOR
};

#define PROXY_HBIT(id) (1u << (id))
/* hop-by-hop fields never forwarded from the client (nginx's defaults) */
#define PROXY_HOP_REQUEST (PROXY_HBIT(PROXY_H_CONNECTION) | PROXY_HBIT(PROXY_H_KEEP_ALIVE) \
    | PROXY_HBIT(PROXY_H_TRANSFER_ENCODING) | PROXY_HBIT(PROXY_H_CONTENT_LENGTH) \
    | PROXY_HBIT(PROXY_H_TE) | PROXY_HBIT(PROXY_H_EXPECT) | PROXY_HBIT(PROXY_H_UPGRADE) \
    | PROXY_HBIT(PROXY_H_PROXY_CONNECTION))
/* upstream fields not passed to the client (hop-by-hop, replaced, X-Accel-*) */
#define PROXY_HOP_RESPONSE (PROXY_HBIT(PROXY_H_CONNECTION) | PROXY_HBIT(PROXY_H_KEEP_ALIVE) \
    | PROXY_HBIT(PROXY_H_TRANSFER_ENCODING) | PROXY_HBIT(PROXY_H_CONTENT_LENGTH) \
    | PROXY_HBIT(PROXY_H_PROXY_CONNECTION) | PROXY_HBIT(PROXY_H_UPGRADE) \
    | PROXY_HBIT(PROXY_H_TE) | PROXY_HBIT(PROXY_H_TRAILER) | PROXY_HBIT(PROXY_H_DATE) \
    | PROXY_HBIT(PROXY_H_SERVER) | PROXY_HBIT(PROXY_H_X_ACCEL))

/* A parsed header line: key is the line itself (owned, NUL at the colon),
 * value points into it. The array is kept between requests. */
struct proxy_hdr {
    char *key;
    char *value;
    int id;
};

struct proxy_hdr_list {
    struct proxy_hdr *items;
    size_t num;
    size_t cap;
};

/* A location's request head plan, built on its first request: the
 * proxy_set_header fields followed by nginx's defaults not overridden. */
struct proxy_set_item {
    const char *key;
    const char *value;
    size_t key_len;
    size_t value_len;
    int id;
    int dynamic;                /* the value holds a $variable */
};

struct proxy_hdr_plan {
    struct proxy_set_item *items;
    size_t num;
    unsigned known;             /* PROXY_HBIT of every recognised key set */
    int has_other;              /* some set key is not a recognised one */
};

struct proxy_upconn {
    struct proxy_worker *w;
    struct bufferevent *bev;
    SSL *ssl;
    struct event *timer;        /* connect + handshake timeout */
    struct proxy_upstream *ups;
    size_t peer_idx;
    const char *key;            /* keepalive cache key with peer_idx: the
                                   location's TLS settings key or "plain" */
    struct proxy_client *client;
    int connected;
    int reused;
    long read_ms, write_ms;     /* the timeouts now set on bev, 0: none */
    struct event *closed_ev;    /* TLS: runs a close after the data before it */
    short closed_what;          /* the BEV_EVENT_* flags of that close */
    struct proxy_upconn *next;  /* idle list */
};

static struct timeval
proxy_tv(long ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    return tv;
}

/* Sets the upstream connection's timeouts when they change (an idle
 * connection and one in use differ only in the read timeout's value, and
 * bufferevent_set_timeouts() re-adds both events). */
static void
proxy_upconn_timeouts(struct proxy_upconn *u, long read_ms, long write_ms)
{
    struct timeval rtv = proxy_tv(read_ms), wtv = proxy_tv(write_ms);

    if (u->read_ms == read_ms && u->write_ms == write_ms) {
        return;
    }
    u->read_ms = read_ms;
    u->write_ms = write_ms;
    bufferevent_set_timeouts(u->bev, read_ms ? &rtv : NULL, write_ms ? &wtv : NULL);
}

struct proxy_client {
    struct proxy_worker *w;
    struct bufferevent *bev;
    struct event *next_ev;      /* runs the next pipelined request */
    struct event *flush_ev;     /* writes new output before the loop waits */
    long read_timeout_ms;       /* the client's read timeout now set */
    unsigned long id;
    char addr[64];
    char port[8];
    struct proxy_listen *listen;
    int state;

    /* request */
    int got_request_line;
    size_t header_bytes;
    char *method;
    char *uri;
    char *request_line;
    int http_minor;
    struct proxy_hdr_list hdrs;
    char *host;
    struct proxy_server *server;
    struct proxy_loc_conf *loc;
    int keepalive;
    int body_chunked;
    long long body_left;
    struct proxy_chunked req_chunk;
    struct evbuffer *body;
    int head;

    /* upstream */
    struct proxy_upconn *up;
    unsigned long long tried;
    int num_tried;
    int fail_status;
    int request_sent;
    int retried_stale;
    char *up_uri;
    int up_wants_close;

    /* response */
    int resp_state;
    int resp_status;
    long long resp_left;
    struct proxy_chunked resp_chunk;
    int resp_started;
    int resp_out_chunked;
    int resp_up_keepalive;
    int resp_minor;
    int resp_got_status;
    size_t resp_header_bytes;
    struct proxy_hdr_list resp_hdrs;
    char *resp_status_line;
    int paused;

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

static void proxy_client_read_cb(struct bufferevent *bev, void *arg);
static size_t proxy_client_write_now(struct proxy_client *c);
static void proxy_client_process(struct proxy_client *c);
static void proxy_upstream_next(struct proxy_client *c);
static void proxy_upconn_free(struct proxy_upconn *u);

/* ---- small helpers ----------------------------------------------------------------------- */

static int
proxy_hid_of(const char *k, size_t n)
{
    static const struct {
        const char *name;
        size_t len;
        int id;
    } known[] = {
        { "Host", 4, PROXY_H_HOST }, { "Connection", 10, PROXY_H_CONNECTION },
        { "Keep-Alive", 10, PROXY_H_KEEP_ALIVE },
        { "Transfer-Encoding", 17, PROXY_H_TRANSFER_ENCODING },
        { "Content-Length", 14, PROXY_H_CONTENT_LENGTH }, { "TE", 2, PROXY_H_TE },
        { "Expect", 6, PROXY_H_EXPECT }, { "Upgrade", 7, PROXY_H_UPGRADE },
        { "Proxy-Connection", 16, PROXY_H_PROXY_CONNECTION },
        { "Trailer", 7, PROXY_H_TRAILER }, { "Date", 4, PROXY_H_DATE },
        { "Server", 6, PROXY_H_SERVER }, { "X-Accel-Redirect", 16, PROXY_H_X_ACCEL },
        { "X-Accel-Expires", 15, PROXY_H_X_ACCEL },
        { "X-Accel-Limit-Rate", 18, PROXY_H_X_ACCEL },
        { "X-Accel-Buffering", 17, PROXY_H_X_ACCEL },
        { "X-Accel-Charset", 15, PROXY_H_X_ACCEL },
        { "X-Forwarded-For", 15, PROXY_H_X_FORWARDED_FOR },
    };
    size_t i;

    for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (known[i].len == n && strncasecmp(known[i].name, k, n) == 0) {
            return known[i].id;
        }
    }
    return PROXY_H_OTHER;
}

/* The first field with this id, or NULL. */
static const char *
proxy_hdr_get(const struct proxy_hdr_list *l, int id)
{
    size_t i;

    for (i = 0; i < l->num; i++) {
        if (l->items[i].id == id) {
            return l->items[i].value;
        }
    }
    return NULL;
}

static const char *
proxy_hdr_get_name(const struct proxy_hdr_list *l, const char *name)
{
    size_t i;

    for (i = 0; i < l->num; i++) {
        if (strcasecmp(l->items[i].key, name) == 0) {
            return l->items[i].value;
        }
    }
    return NULL;
}

/* Takes ownership of line (key and value point into it). */
static void
proxy_hdr_add(struct proxy_hdr_list *l, char *key, char *value)
{
    struct proxy_hdr *items;

    if (l->num == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        items = realloc(l->items, l->cap * sizeof(*items));
        if (items == NULL) {
            abort();
        }
        l->items = items;
    }
    l->items[l->num].key = key;
    l->items[l->num].value = value;
    l->items[l->num].id = proxy_hid_of(key, strlen(key));
    l->num++;
}

static void
proxy_hdr_clear(struct proxy_hdr_list *l)
{
    size_t i;

    for (i = 0; i < l->num; i++) {
        free(l->items[i].key);
    }
    l->num = 0;
}

static void
proxy_hdr_free(struct proxy_hdr_list *l)
{
    proxy_hdr_clear(l);
    free(l->items);
    l->items = NULL;
    l->cap = 0;
}

/* Appends to an evbuffer through a stack buffer: one evbuffer_add for a
 * whole head instead of one printf per field. */
struct proxy_out {
    struct evbuffer *ev;
    size_t n;
    char b[4096];
};

static void
proxy_out_add(struct proxy_out *o, const char *s, size_t n)
{
    if (o->n + n > sizeof(o->b)) {
        evbuffer_add(o->ev, o->b, o->n);
        o->n = 0;
        if (n > sizeof(o->b)) {
            evbuffer_add(o->ev, s, n);
            return;
        }
    }
    memcpy(o->b + o->n, s, n);
    o->n += n;
}

static void
proxy_out_str(struct proxy_out *o, const char *s)
{
    proxy_out_add(o, s, strlen(s));
}

static void
proxy_out_field(struct proxy_out *o, const char *k, size_t klen, const char *v, size_t vlen)
{
    proxy_out_add(o, k, klen);
    proxy_out_add(o, ": ", 2);
    proxy_out_add(o, v, vlen);
    proxy_out_add(o, "\r\n", 2);
}

static void
proxy_out_flush(struct proxy_out *o)
{
    if (o->n) {
        evbuffer_add(o->ev, o->b, o->n);
        o->n = 0;
    }
}

/* Does a comma-separated header value contain the token? */
static int
proxy_header_has_token(const char *value, const char *token)
{
    size_t n = strlen(token);
    const char *p = value;

    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }
        if (strncasecmp(p, token, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' '
                || p[n] == '\t' || p[n] == ';')) {
            return 1;
        }
        p = strchr(p, ',');
    }
    return 0;
}

static const char *
proxy_status_text(int code)
{
    switch (code) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Moved Temporarily";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Not Allowed";
    case 408: return "Request Time-out";
    case 411: return "Length Required";
    case 413: return "Request Entity Too Large";
    case 414: return "Request-URI Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Temporarily Unavailable";
    case 504: return "Gateway Time-out";
    default: return "";
    }
}

static void
proxy_http_date(char *out, size_t out_len)
{
    static time_t last = -1;
    static char text[64];
    time_t now = time(NULL);
    struct tm tm;

    if (now != last) {
        gmtime_r(&now, &tm);
        strftime(text, sizeof(text), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    snprintf(out, out_len, "%s", text);
}

static void proxy_client_log(struct proxy_client *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* An error log line with nginx's request context. */
static void
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
    if (c->up && c->loc) {
        snprintf(upstream, sizeof(upstream), ", upstream: \"%s://%s%s\"",
            c->loc->pass_ssl ? "https" : "http",
            c->up->ups->peers[c->up->peer_idx].addr_text, c->up_uri ? c->up_uri : "");
    }
    proxy_log_error(level, c->id, "%s, client: %s, server: %s%s%s%s%s%s%s", msg,
        c->addr,
        c->server && c->server->num_names ? c->server->names[0] : "",
        c->request_line ? ", request: \"" : "",
        c->request_line ? c->request_line : "", c->request_line ? "\"" : "",
        upstream, c->host ? ", host: \"" : "", c->host ? "\"" : "");
    (void) 0;
}

/* A request or response line (CRLF or LF already removed) with a bare CR or
 * a NUL: RFC 9112 2.2 and RFC 9110 5.5 say reject it (or replace them with
 * SP) rather than forward it; another parser may take a bare CR for a line
 * end (header injection, response splitting), and a NUL would cut the C
 * string the field is kept in. nginx answers 400 / 502 "invalid header". */
static int
proxy_line_bad(const char *line, size_t n)
{
    return memchr(line, '\r', n) != NULL || memchr(line, '\0', n) != NULL;
}

/*
 * One header field line, "name: value" (RFC 9112 5), its CRLF already
 * removed, parsed in place for requests and upstream responses alike: the
 * name ends at the colon (NUL-terminated there), the value loses its leading
 * and trailing SP/HT and may be empty ("X-Empty:"); no space is needed after
 * the colon ("X-A:b"). Invalid, as nginx's ngx_http_parse_header_line()
 * (400 "client sent invalid header line" / 502 "upstream sent invalid
 * header"): no colon, an empty name, a line that starts with SP/HT (obsolete
 * line folding) and SP/HT inside the name (RFC 9112 5.1: no whitespace
 * between the field name and the colon; nginx >= 1.21.1 refuses it). line[n]
 * must be writable (a NUL). Returns 0, or -1 when invalid.
 */
static int
proxy_header_line_parse(char *line, size_t n, char **name, char **value)
{
    char *colon = memchr(line, ':', n), *v, *end = line + n;

    if (colon == NULL || colon == line) {
        return -1;
    }
    if (memchr(line, ' ', (size_t) (colon - line)) != NULL
        || memchr(line, '\t', (size_t) (colon - line)) != NULL) {
        return -1;
    }
    *colon = '\0';
    v = colon + 1;
    while (v < end && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    *end = '\0';
    *name = line;
    *value = v;
    return 0;
}

/* ---- chunked transfer coding ------------------------------------------------------------ */

/*
 * evbuffer_readln(in, n, EVBUFFER_EOL_CRLF): a line ends at LF, a CR just
 * before it is dropped; NULL until an LF has arrived. The same result with
 * one memchr() per buffer segment (the first four; libevent's own search
 * past them) and one removal, where libevent searches the EOL through an
 * evbuffer_ptr byte by byte (~15% of the proxy's own instructions in bench
 * load (a)).
 */
static char *
proxy_readln(struct evbuffer *in, size_t *n_out)
{
    struct evbuffer_iovec v[4];
    int i, nv = evbuffer_peek(in, -1, NULL, v, 4);   /* at most 4 */
    size_t off = 0;
    char *lf = NULL, *line;

    for (i = 0; i < nv && i < 4; i++) {
        lf = memchr(v[i].iov_base, '\n', v[i].iov_len);
        if (lf) {
            off += (size_t) (lf - (char *) v[i].iov_base);
            break;
        }
        off += v[i].iov_len;
    }
    if (lf == NULL) {
        /* with len -1, evbuffer_peek() stops at the vectors it is given:
         * a line beyond them is libevent's to find */
        return off < evbuffer_get_length(in)
            ? evbuffer_readln(in, n_out, EVBUFFER_EOL_CRLF) : NULL;
    }
    line = malloc(off + 1);
    if (line == NULL || evbuffer_remove(in, line, off + 1) != (int) (off + 1)) {
        free(line);
        return NULL;
    }
    if (off > 0 && line[off - 1] == '\r') {
        off--;
    }
    line[off] = '\0';
    *n_out = off;
    return line;
}

/* Decodes from in to out. Returns 1 at the end of the body, 0 when it needs
 * more input, -1 on a framing error. */
static int
proxy_chunked_parse(struct proxy_chunked *ch, struct evbuffer *in,
    struct evbuffer *out)
{
    char *line, *end;
    size_t n, avail;

    for (;;) {
        switch (ch->state) {
        case PROXY_CHUNK_SIZE:
        case PROXY_CHUNK_CRLF:
        case PROXY_CHUNK_TRAILER:
            line = proxy_readln(in, &n);
            if (line == NULL) {
                return evbuffer_get_length(in) > 4096 ? -1 : 0;
            }
            if (ch->state == PROXY_CHUNK_CRLF) {
                free(line);
                if (n != 0) {
                    return -1;
                }
                ch->state = PROXY_CHUNK_SIZE;
                continue;
            }
            if (ch->state == PROXY_CHUNK_TRAILER) {
                free(line);
                if (n == 0) {
                    ch->state = PROXY_CHUNK_DONE;
                    return 1;
                }
                continue;
            }
            errno = 0;
            ch->size = strtoll(line, &end, 16);
            if (end == line || errno || ch->size < 0
                || (*end && *end != ';' && *end != ' ' && *end != '\t')) {
                free(line);
                return -1;
            }
            free(line);
            ch->state = ch->size == 0 ? PROXY_CHUNK_TRAILER : PROXY_CHUNK_DATA;
            continue;
        case PROXY_CHUNK_DATA:
            avail = evbuffer_get_length(in);
            if (avail == 0) {
                return 0;
            }
            if ((long long) avail > ch->size) {
                avail = (size_t) ch->size;
            }
            evbuffer_remove_buffer(in, out, avail);
            ch->size -= (long long) avail;
            if (ch->size == 0) {
                ch->state = PROXY_CHUNK_CRLF;
            }
            continue;
        default:
            return 1;
        }
    }
}

/* ---- client connections ------------------------------------------------------------------ */

static void
proxy_client_reset(struct proxy_client *c)
{
    free(c->method);
    free(c->uri);
    free(c->request_line);
    free(c->host);
    free(c->up_uri);
    free(c->resp_status_line);
    c->method = c->uri = c->request_line = c->host = c->up_uri = NULL;
    c->resp_status_line = NULL;
    proxy_hdr_clear(&c->hdrs);
    proxy_hdr_clear(&c->resp_hdrs);
    if (c->body) {
        evbuffer_free(c->body);
        c->body = NULL;
    }
    c->got_request_line = 0;
    c->header_bytes = 0;
    c->server = NULL;
    c->loc = NULL;
    c->keepalive = 0;
    c->body_chunked = 0;
    c->body_left = 0;
    memset(&c->req_chunk, 0, sizeof(c->req_chunk));
    c->head = 0;
    c->tried = 0;
    c->num_tried = 0;
    c->fail_status = 502;
    c->request_sent = 0;
    c->retried_stale = 0;
    c->up_wants_close = 0;
    c->resp_state = PROXY_R_HEADERS;
    c->resp_status = 0;
    c->resp_left = 0;
    memset(&c->resp_chunk, 0, sizeof(c->resp_chunk));
    c->resp_started = 0;
    c->resp_out_chunked = 0;
    c->resp_up_keepalive = 0;
    c->resp_minor = 0;
    c->resp_got_status = 0;
    c->resp_header_bytes = 0;
    c->paused = 0;
    c->state = PROXY_C_HEADERS;
}

static void
proxy_client_free(struct proxy_client *c)
{
    struct proxy_worker *w = c->w;

    if (c->up) {
        proxy_upconn_free(c->up);
        c->up = NULL;
    }
    proxy_client_reset(c);
    proxy_hdr_free(&c->hdrs);
    proxy_hdr_free(&c->resp_hdrs);
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
static void
proxy_client_close_after_output(struct proxy_client *c)
{
    c->state = PROXY_C_CLOSING;
    c->keepalive = 0;
    bufferevent_disable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        proxy_client_free(c);
    }
}

/* The current request is finished: next one or close. */
static void
proxy_client_request_done(struct proxy_client *c)
{
    long keepalive_ms = c->loc ? c->loc->keepalive_timeout : 75000;

    if (!c->keepalive || c->w->quitting || keepalive_ms == 0) {
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

/* A complete response generated by the proxy itself. */
static void
proxy_client_respond(struct proxy_client *c, int status, const char *location,
    const char *text)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char date[64], body[1024];
    const char *type = "text/html";

    if (status == 444) {
        proxy_client_free(c);
        return;
    }
    if (text) {
        snprintf(body, sizeof(body), "%s", text);
        type = "text/plain";
    } else if (status >= 300 && status != 304) {
        snprintf(body, sizeof(body), "<html>\r\n<head><title>%d %s</title></head>\r\n"
            "<body>\r\n<center><h1>%d %s</h1></center>\r\n<hr><center>" PROXY_NAME
            "</center>\r\n</body>\r\n</html>\r\n", status, proxy_status_text(status),
            status, proxy_status_text(status));
    } else {
        body[0] = '\0';
    }
    if (status >= 400 && status != 404 && status != 405 && status < 500) {
        c->keepalive = 0;   /* as nginx after a malformed request */
    }
    proxy_http_date(date, sizeof(date));
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nServer: " PROXY_NAME "\r\nDate: %s\r\n"
        "Content-Type: %s\r\nContent-Length: %zu\r\n%s%s%sConnection: %s\r\n\r\n",
        status, proxy_status_text(status), date, type, strlen(body),
        location ? "Location: " : "", location ? location : "", location ? "\r\n" : "",
        c->keepalive ? "keep-alive" : "close");
    if (!c->head) {
        evbuffer_add(out, body, strlen(body));
    }
    proxy_client_request_done(c);
}

/* ---- routing ------------------------------------------------------------------------------ */

static int
proxy_server_name_match(const char *pattern, const char *host)
{
    size_t pl, hl;

    if (strcasecmp(pattern, host) == 0) {
        return 1;
    }
    pl = strlen(pattern);
    hl = strlen(host);
    if (pattern[0] == '*' && pattern[1] == '.' && hl > pl - 1) {
        return strcasecmp(host + hl - (pl - 1), pattern + 1) == 0;
    }
    if (pattern[0] == '.' && (strcasecmp(pattern + 1, host) == 0
            || (hl > pl && strcasecmp(host + hl - pl, pattern) == 0))) {
        return 1;
    }
    return 0;
}

static struct proxy_server *
proxy_route_server(struct proxy_worker *w, struct proxy_listen *l, const char *host)
{
    struct proxy_server *s, *first = NULL, *def = NULL;
    size_t i, j;

    for (s = w->conf->servers; s; s = s->next) {
        for (i = 0; i < s->num_listens; i++) {
            if (s->listens[i] != l) {
                continue;
            }
            if (first == NULL) {
                first = s;
            }
            if (s->default_server[i] && def == NULL) {
                def = s;
            }
            for (j = 0; host && j < s->num_names; j++) {
                if (proxy_server_name_match(s->names[j], host)) {
                    return s;
                }
            }
        }
    }
    return def ? def : first;
}

/* "=" exact locations first, then the longest matching prefix. */
static struct proxy_loc_conf *
proxy_route_location(struct proxy_server *s, const char *uri)
{
    struct proxy_loc_conf *best = NULL;
    size_t i, len, path_len = strcspn(uri, "?");

    for (i = 0; i < s->num_locs; i++) {
        struct proxy_loc_conf *lc = s->locs[i];

        len = strlen(lc->prefix);
        if (lc->exact) {
            if (len == path_len && strncmp(uri, lc->prefix, len) == 0) {
                return lc;
            }
            continue;
        }
        if (len <= path_len && strncmp(uri, lc->prefix, len) == 0
            && (best == NULL || len > strlen(best->prefix))) {
            best = lc;
        }
    }
    return best;
}

/* ---- variables in proxy_set_header values -------------------------------------------------- */

static char *
proxy_var_value(struct proxy_client *c, const char *name)
{
    const char *v;

    if (strcmp(name, "host") == 0) {
        return proxy_xstrdup(c->host ? c->host
            : c->server && c->server->num_names ? c->server->names[0] : "");
    }
    if (strcmp(name, "proxy_host") == 0) {
        return proxy_xstrdup(c->loc->proxy_host);
    }
    if (strcmp(name, "remote_addr") == 0) {
        return proxy_xstrdup(c->addr);
    }
    if (strcmp(name, "remote_port") == 0) {
        return proxy_xstrdup(c->port);
    }
    if (strcmp(name, "proxy_add_x_forwarded_for") == 0) {
        v = proxy_hdr_get(&c->hdrs, PROXY_H_X_FORWARDED_FOR);
        return v ? proxy_xasprintf("%s, %s", v, c->addr) : proxy_xstrdup(c->addr);
    }
    if (strcmp(name, "scheme") == 0) {
        return proxy_xstrdup("http");
    }
    if (strcmp(name, "request_uri") == 0) {
        return proxy_xstrdup(c->uri);
    }
    if (strcmp(name, "uri") == 0) {
        return proxy_xstrndup(c->uri, strcspn(c->uri, "?"));
    }
    if (strcmp(name, "request_method") == 0) {
        return proxy_xstrdup(c->method);
    }
    if (strcmp(name, "server_name") == 0) {
        return proxy_xstrdup(c->server && c->server->num_names ? c->server->names[0] : "");
    }
    if (strcmp(name, "server_port") == 0 || strcmp(name, "server_addr") == 0) {
        const char *t = c->listen->text, *colon = strrchr(t, ':');

        return strcmp(name, "server_port") == 0 ? proxy_xstrdup(colon ? colon + 1 : "")
            : proxy_xstrndup(t, colon ? (size_t) (colon - t) : strlen(t));
    }
    if (strcmp(name, "proxy_port") == 0) {
        return proxy_xasprintf("%d", c->loc->pass_port ? c->loc->pass_port
            : c->loc->pass_ssl ? 443 : 80);
    }
    if (strncmp(name, "http_", 5) == 0) {
        char hname[128];
        size_t i;

        snprintf(hname, sizeof(hname), "%s", name + 5);
        for (i = 0; hname[i]; i++) {
            if (hname[i] == '_') {
                hname[i] = '-';
            }
        }
        v = proxy_hdr_get_name(&c->hdrs, hname);
        return proxy_xstrdup(v ? v : "");
    }
    return proxy_xstrdup("");
}

static char *
proxy_var_expand(struct proxy_client *c, const char *tmpl)
{
    struct evbuffer *b = evbuffer_new();
    const char *p = tmpl;
    char name[128], *v, *res;
    size_t n, len;

    while (*p) {
        if (*p != '$') {
            evbuffer_add(b, p++, 1);
            continue;
        }
        p++;
        int brace = *p == '{';

        if (brace) {
            p++;
        }
        n = 0;
        while ((isalnum((unsigned char) *p) || *p == '_') && n < sizeof(name) - 1) {
            name[n++] = *p++;
        }
        name[n] = '\0';
        if (brace && *p == '}') {
            p++;
        }
        v = proxy_var_value(c, name);
        evbuffer_add(b, v, strlen(v));
        free(v);
    }
    len = evbuffer_get_length(b);
    res = proxy_xcalloc(1, len + 1);
    evbuffer_remove(b, res, len);
    evbuffer_free(b);
    return res;
}

/* ---- upstream: peers and connections -------------------------------------------------------- */

/* Smooth weighted round robin, as ngx_http_upstream_get_peer(): each
 * server at most once per request; a server with max_fails failures within
 * fail_timeout is skipped until fail_timeout passes. */
static int
proxy_peer_get(struct proxy_upstream *u, unsigned long long tried)
{
    long long now = proxy_time_ms();
    struct proxy_peer *best = NULL, *p;
    int total = 0, best_idx = -1;
    size_t i;

    for (i = 0; i < u->num_peers && i < 64; i++) {
        p = &u->peers[i];
        if (tried & (1ULL << i)) {
            continue;
        }
        if (u->num_peers > 1 && p->max_fails && p->fails >= p->max_fails
            && now - p->checked_ms <= p->fail_timeout_ms) {
            continue;
        }
        p->current_weight += p->weight;
        total += p->weight;
        if (best == NULL || p->current_weight > best->current_weight) {
            best = p;
            best_idx = (int) i;
        }
    }
    if (best) {
        best->current_weight -= total;
    }
    return best_idx;
}

static void
proxy_peer_fail(struct proxy_upstream *u, size_t idx)
{
    u->peers[idx].fails++;
    u->peers[idx].checked_ms = proxy_time_ms();
}

static void
proxy_upconn_free(struct proxy_upconn *u)
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

static void
proxy_idle_remove(struct proxy_upconn *u)
{
    struct proxy_upconn **pp;

    for (pp = &u->ups->idle; *pp; pp = &(*pp)->next) {
        if (*pp == u) {
            *pp = u->next;
            u->ups->num_idle--;
            break;
        }
    }
    u->next = NULL;
}

static void
proxy_idle_read_cb(struct bufferevent *bev, void *arg)
{
    struct proxy_upconn *u = arg;

    /* an idle connection must not send anything: drop it */
    proxy_idle_remove(u);
    proxy_upconn_free(u);
}

static void
proxy_idle_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct proxy_upconn *u = arg;

    proxy_idle_remove(u);
    proxy_upconn_free(u);
}

/* Upstream keepalive: caches an idle connection, at most `keepalive N` per
 * upstream block, the oldest dropped first. The key also holds the
 * location's TLS settings, so a connection made with one client identity,
 * trust store or name is never handed to a location with different ones
 * (nginx keys by upstream server only). */
static void
proxy_idle_put(struct proxy_upconn *u)
{
    struct proxy_upstream *ups = u->ups;
    struct proxy_upconn **pp;

    u->client = NULL;
    u->next = ups->idle;
    ups->idle = u;
    ups->num_idle++;
    if (ups->num_idle > ups->keepalive) {
        for (pp = &ups->idle; (*pp)->next; pp = &(*pp)->next) {
        }
        struct proxy_upconn *old = *pp;

        *pp = NULL;
        ups->num_idle--;
        proxy_upconn_free(old);
    }
    bufferevent_setcb(u->bev, proxy_idle_read_cb, NULL, proxy_idle_event_cb, u);
    /* the write timeout stays: no write is pending on an idle connection */
    proxy_upconn_timeouts(u, PROXY_UPSTREAM_IDLE_TIMEOUT, u->write_ms);
    bufferevent_enable(u->bev, EV_READ);
}

static struct proxy_upconn *
proxy_idle_take(struct proxy_upstream *ups, size_t peer_idx, const char *key)
{
    struct proxy_upconn *u;

    for (u = ups->idle; u; u = u->next) {
        if (u->peer_idx == peer_idx && (u->key == key || strcmp(u->key, key) == 0)) {
            proxy_idle_remove(u);
            return u;
        }
    }
    return NULL;
}

static void proxy_up_read_cb(struct bufferevent *bev, void *arg);
static void proxy_up_event_cb(struct bufferevent *bev, short what, void *arg);

/* Drops what the attempt on one server left of its request and response,
 * before the next server is tried or the proxy answers itself. */
static void
proxy_attempt_forget(struct proxy_client *c)
{
    c->request_sent = 0;
    c->resp_state = PROXY_R_HEADERS;
    c->resp_got_status = 0;
    c->resp_header_bytes = 0;
    proxy_hdr_clear(&c->resp_hdrs);
}

/* The proxy's own answer when no upstream server answered: fail_status
 * (502, 504, or the status proxy_next_upstream moved on from). The
 * mask-upstream-errors fault answers an empty 200 instead. */
static void
proxy_upstream_give_up(struct proxy_client *c)
{
    proxy_client_respond(c, proxy_fault_on(PROXY_FAULT_MASK_UPSTREAM_ERRORS)
        ? 200 : c->fail_status, NULL, NULL);
}

/* Gives up on the current upstream attempt: next server, or an error
 * response, or (once the response has started) closes the client. ft is
 * the proxy_next_upstream condition met: PROXY_NEXT_ERROR, _TIMEOUT or
 * _INVALID_HEADER (ngx_http_upstream_next()'s ft_type). */
static void
proxy_upstream_fail(struct proxy_client *c, int ft, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
proxy_method_idempotent(const char *m)
{
    return strcmp(m, "POST") != 0 && strcmp(m, "LOCK") != 0 && strcmp(m, "PATCH") != 0;
}

static void
proxy_upstream_fail(struct proxy_client *c, int ft, const char *fmt, ...)
{
    struct proxy_upconn *u = c->up;
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
    stale = u && u->reused && c->resp_header_bytes == 0 && !c->resp_got_status
        && ft == PROXY_NEXT_ERROR && (c->loc->next_upstream & PROXY_NEXT_ERROR)
        && !(c->request_sent && !proxy_method_idempotent(c->method));
    proxy_client_log(c, stale ? PROXY_LOG_INFO : PROXY_LOG_ERR, "%s", msg);
    if (c->resp_started) {
        proxy_upconn_free(u);
        c->up = NULL;
        if (proxy_fault_on(PROXY_FAULT_PASS_TRUNCATED) && c->resp_out_chunked) {
            evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
            proxy_client_request_done(c);
            return;
        }
        /* a truncated body is never passed on as complete */
        proxy_client_close_after_output(c);
        return;
    }
    if (stale && !c->retried_stale) {
        /* a cached keepalive connection the server had closed: retry the
         * same server on a new connection, as nginx does */
        c->retried_stale = 1;
        c->tried &= ~(1ULL << u->peer_idx);
        c->num_tried--;
        proxy_upconn_free(u);
        c->up = NULL;
        proxy_upstream_next(c);
        return;
    }
    if (u) {
        proxy_peer_fail(u->ups, u->peer_idx);
        proxy_upconn_free(u);
        c->up = NULL;
    }
    c->fail_status = timeout ? 504 : 502;
    next = c->loc->next_upstream & ft;
    if (c->request_sent && !proxy_method_idempotent(c->method)
        && !(c->loc->next_upstream & PROXY_NEXT_NON_IDEMPOTENT)) {
        next = 0;
    }
    proxy_attempt_forget(c);
    if (next) {
        proxy_upstream_next(c);
        return;
    }
    proxy_upstream_give_up(c);
}

/* The location's proxy_set_header fields first, then nginx's defaults not
 * overridden; built once per location (one block: the plan, then items). */
static struct proxy_hdr_plan *
proxy_hdr_plan_get(struct proxy_loc_conf *lc)
{
    static const struct proxy_keyval defaults[] = {
        { "Host", "$proxy_host" }, { "Connection", "close" },
        { "Content-Length", "" }, { "Transfer-Encoding", "" }, { "TE", "" },
        { "Keep-Alive", "" }, { "Expect", "" }, { "Upgrade", "" },
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
static void
proxy_upstream_send(struct proxy_client *c)
{
    struct proxy_upconn *u = c->up;
    struct proxy_loc_conf *lc = c->loc;
    struct proxy_hdr_plan *plan = proxy_hdr_plan_get(lc);
    struct proxy_out o;
    char num[32];
    size_t i, vlen;
    const char *v;
    char *dyn;
    int n;

    o.ev = bufferevent_get_output(u->bev);
    o.n = 0;
    proxy_out_str(&o, c->method);
    proxy_out_add(&o, " ", 1);
    proxy_out_str(&o, c->up_uri);
    proxy_out_add(&o, lc->http_version == 11 ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n", 11);
    c->up_wants_close = 1;
    for (i = 0; i < plan->num; i++) {
        const struct proxy_set_item *it = &plan->items[i];

        dyn = it->dynamic ? proxy_var_expand(c, it->value) : NULL;
        v = dyn ? dyn : it->value;
        vlen = dyn ? strlen(dyn) : it->value_len;
        if (it->id == PROXY_H_CONNECTION) {
            c->up_wants_close = vlen == 0 ? lc->http_version != 11
                : proxy_header_has_token(v, "close");
        }
        if (vlen != 0) {   /* an empty value removes the field */
            proxy_out_field(&o, it->key, it->key_len, v, vlen);
        }
        free(dyn);
    }
    if (c->body && (evbuffer_get_length(c->body) > 0 || c->body_chunked
            || proxy_hdr_get(&c->hdrs, PROXY_H_CONTENT_LENGTH))) {
        n = snprintf(num, sizeof(num), "%zu", evbuffer_get_length(c->body));
        proxy_out_field(&o, "Content-Length", 14, num, (size_t) n);
    }
    for (i = 0; i < c->hdrs.num; i++) {
        const struct proxy_hdr *h = &c->hdrs.items[i];

        if ((h->id != PROXY_H_OTHER && (PROXY_HOP_REQUEST & PROXY_HBIT(h->id)))
            || proxy_hdr_plan_sets(plan, h)) {
            continue;
        }
        proxy_out_field(&o, h->key, strlen(h->key), h->value, strlen(h->value));
    }
    proxy_out_add(&o, "\r\n", 2);
    proxy_out_flush(&o);
    if (c->body && evbuffer_get_length(c->body) > 0) {
        evbuffer_add_buffer_reference(o.ev, c->body);
    }
    c->request_sent = 1;

    bufferevent_setcb(u->bev, proxy_up_read_cb, NULL, proxy_up_event_cb, c);
    proxy_upconn_timeouts(u, lc->read_timeout, lc->send_timeout);
    bufferevent_enable(u->bev, EV_READ | EV_WRITE);
    /* write now, not after the next epoll_wait(): the write event's own
     * callback (libevent's, TLS or plain), run in this loop iteration,
     * writes what the socket takes and deletes the event again before the
     * change list reaches epoll, so a request that fits costs no
     * epoll_ctl(); what does not fit waits for the event as before */
    event_active(&u->bev->ev_write, EV_WRITE, 1);
}

static void
proxy_up_connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_client *c = arg;

    proxy_upstream_fail(c, PROXY_NEXT_TIMEOUT,
        "upstream timed out (110: Connection timed out) while %s",
        c->loc->pass_ssl ? "SSL handshaking to upstream" : "connecting to upstream");
}

/* The connection (and for https the handshake) is complete. */
static void
proxy_up_connected(struct proxy_client *c)
{
    struct proxy_upconn *u = c->up;
    char err[1024];

    if (u->timer) {
        event_free(u->timer);
        u->timer = NULL;
    }
    u->connected = 1;
    if (u->ssl) {
        if (proxy_ssl_check_after_handshake(u->ssl, c->loc, err, sizeof(err)) != 0) {
            proxy_upstream_fail(c, PROXY_NEXT_ERROR, "%s while SSL handshaking to upstream", err);
            return;
        }
        proxy_client_log(c, PROXY_LOG_INFO, "upstream SSL handshake done: %s %s%s",
            SSL_get_version(u->ssl), SSL_get_cipher_name(u->ssl),
            SSL_session_reused(u->ssl) ? " (session reused)" : "");
    }
    proxy_upstream_send(c);
}

static void
proxy_up_connect_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct proxy_client *c = arg;
    struct proxy_upconn *u = c->up;
    unsigned long e;
    char ssl_err[1024];
    int saved = EVUTIL_SOCKET_ERROR();

    if (what & BEV_EVENT_CONNECTED) {
        proxy_up_connected(c);
        return;
    }
    e = u->ssl ? bufferevent_get_openssl_error(bev) : 0;
    if (e) {
        ERR_error_string_n(e, ssl_err, sizeof(ssl_err));
        if (u->ssl && SSL_get_verify_result(u->ssl) != X509_V_OK
            && c->loc->ssl_verify) {
            long vr = SSL_get_verify_result(u->ssl);

            proxy_upstream_fail(c, PROXY_NEXT_ERROR,
                "upstream SSL certificate verify error: (%ld:%s), "
                "SSL_do_handshake() failed (SSL: %s) while SSL handshaking to upstream",
                vr, X509_verify_cert_error_string(vr), ssl_err);
            return;
        }
        proxy_upstream_fail(c, PROXY_NEXT_ERROR, "SSL_do_handshake() failed (SSL: %s) while SSL "
            "handshaking to upstream", ssl_err);
        return;
    }
    if ((what & BEV_EVENT_EOF) || saved == 0) {
        proxy_upstream_fail(c, PROXY_NEXT_ERROR, "upstream prematurely closed connection while %s",
            u->ssl ? "SSL handshaking to upstream" : "connecting to upstream");
        return;
    }
    proxy_upstream_fail(c, PROXY_NEXT_ERROR,
        "connect() failed (%d: %s) while connecting to upstream",
        saved, strerror(saved));
}

static void
proxy_up_connect_read_cb(struct bufferevent *bev, void *arg)
{
}

/* Picks the next server of the location's upstream and connects. */
static void
proxy_upstream_next(struct proxy_client *c)
{
    struct proxy_loc_conf *lc = c->loc;
    struct proxy_upstream *ups = lc->upstream;
    struct proxy_upconn *u;
    struct proxy_peer *peer;
    struct timeval tv;
    char err[1024];
    const char *key;
    int idx;

    idx = proxy_peer_get(ups, c->tried);
    if (idx < 0) {
        /* servers left untried but down: nginx's NGX_HTTP_UPSTREAM_FT_NOLIVE,
         * a 502 whatever the previous attempt gave */
        if ((size_t) c->num_tried < ups->num_peers) {
            proxy_client_log(c, PROXY_LOG_ERR, "no live upstreams while connecting to "
                "upstream");
            c->fail_status = 502;
        }
        proxy_upstream_give_up(c);
        return;
    }
    c->tried |= 1ULL << idx;
    c->num_tried++;
    peer = &ups->peers[idx];
    key = lc->pass_ssl ? lc->tls_key : "plain";

    if (ups->keepalive && (u = proxy_idle_take(ups, (size_t) idx, key)) != NULL) {
        u->client = c;
        u->reused = 1;
        c->up = u;
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
    c->up = u;
    if (lc->pass_ssl) {
        u->ssl = proxy_ssl_new(lc, ups->name, peer, err, sizeof(err));
        if (u->ssl == NULL) {
            proxy_upstream_fail(c, PROXY_NEXT_ERROR, "%s while SSL handshaking to upstream", err);
            return;
        }
        u->bev = bufferevent_openssl_socket_new(c->w->base, -1, u->ssl,
            BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
        if (u->bev == NULL) {
            proxy_upstream_fail(c, PROXY_NEXT_ERROR, "bufferevent_openssl_socket_new() failed");
            return;
        }
        /* a peer that closes without close_notify ends a read-until-close
         * body; framed bodies still detect truncation by their length */
        bufferevent_openssl_set_allow_dirty_shutdown(u->bev, 1);
    } else {
        u->bev = bufferevent_socket_new(c->w->base, -1,
            BEV_OPT_CLOSE_ON_FREE);
        if (u->bev == NULL) {
            proxy_upstream_fail(c, PROXY_NEXT_ERROR, "bufferevent_socket_new() failed");
            return;
        }
    }
    /* proxy_connect_timeout covers the TCP connect and the TLS handshake */
    u->timer = evtimer_new(c->w->base, proxy_up_connect_timeout_cb, c);
    tv = proxy_tv(lc->connect_timeout);
    evtimer_add(u->timer, &tv);
    bufferevent_setcb(u->bev, proxy_up_connect_read_cb, NULL, proxy_up_connect_event_cb, c);
    bufferevent_enable(u->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(u->bev, (struct sockaddr *) &peer->addr,
            (int) peer->addr_len) != 0) {
        int e = EVUTIL_SOCKET_ERROR();

        proxy_upstream_fail(c, PROXY_NEXT_ERROR,
            "connect() failed (%d: %s) while connecting to upstream",
            e, strerror(e));
    }
}

/* ---- upstream response -------------------------------------------------------------------- */

static void
proxy_client_backpressure(struct proxy_client *c)
{
    if (c->up && !c->paused
        && evbuffer_get_length(bufferevent_get_output(c->bev)) >= PROXY_HIGH_WATER) {
        c->paused = 1;
        bufferevent_disable(c->up->bev, EV_READ);
        bufferevent_setwatermark(c->bev, EV_WRITE, PROXY_HIGH_WATER / 2, 0);
    }
}

/* The response is complete: cache or close the upstream connection. */
static void
proxy_upstream_finish(struct proxy_client *c)
{
    struct proxy_upconn *u = c->up;

    if (c->resp_out_chunked) {
        evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
    }
    c->up = NULL;
    u->ups->peers[u->peer_idx].fails = 0;
    if (u->ups->keepalive && c->resp_up_keepalive && !c->up_wants_close && !u->closed_what
        && !c->w->quitting && evbuffer_get_length(bufferevent_get_input(u->bev)) == 0) {
        proxy_idle_put(u);
    } else {
        proxy_upconn_free(u);
    }
    if (c->paused) {
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
        c->paused = 0;
    }
    proxy_client_request_done(c);
}

/* Sends the response head to the client once the upstream's is complete. */
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
    static const struct { int status, bit; } next_errors[] = {
        { 500, PROXY_NEXT_HTTP_500 }, { 502, PROXY_NEXT_HTTP_502 },
        { 503, PROXY_NEXT_HTTP_503 }, { 504, PROXY_NEXT_HTTP_504 },
        { 403, PROXY_NEXT_HTTP_403 }, { 404, PROXY_NEXT_HTTP_404 },
        { 429, PROXY_NEXT_HTTP_429 },
    };
    struct proxy_upconn *u = c->up;
    int mask = 0;
    size_t i;

    for (i = 0; i < sizeof(next_errors) / sizeof(next_errors[0]); i++) {
        if (c->resp_status == next_errors[i].status) {
            mask = next_errors[i].bit;
        }
    }
    if (mask == 0 || u == NULL) {
        return 0;
    }
    if (c->request_sent && !proxy_method_idempotent(c->method)) {
        mask |= PROXY_NEXT_NON_IDEMPOTENT;
    }
    if ((c->loc->next_upstream & mask) != mask
        || (size_t) c->num_tried >= c->loc->upstream->num_peers) {
        return 0;
    }
    if (c->resp_status != 403 && c->resp_status != 404) {
        proxy_peer_fail(u->ups, u->peer_idx);
    }
    proxy_upconn_free(u);               /* its body is never read */
    c->up = NULL;
    c->fail_status = c->resp_status;
    proxy_attempt_forget(c);
    proxy_upstream_next(c);
    return 1;
}

static int
proxy_upstream_header_done(struct proxy_client *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    struct proxy_out o;
    const char *te, *cl, *conn;
    char date[64], *end;
    size_t i;

    te = proxy_hdr_get(&c->resp_hdrs, PROXY_H_TRANSFER_ENCODING);
    cl = proxy_hdr_get(&c->resp_hdrs, PROXY_H_CONTENT_LENGTH);
    conn = proxy_hdr_get(&c->resp_hdrs, PROXY_H_CONNECTION);
    c->resp_up_keepalive = c->resp_minor >= 1
        ? !(conn && proxy_header_has_token(conn, "close"))
        : (conn && proxy_header_has_token(conn, "keep-alive"));

    if (c->head || c->resp_status == 204 || c->resp_status == 304) {
        c->resp_state = PROXY_R_DONE;
    } else if (te && proxy_header_has_token(te, "chunked")) {
        c->resp_state = PROXY_R_CHUNKED;
    } else if (cl) {
        errno = 0;
        c->resp_left = strtoll(cl, &end, 10);
        if (errno || end == cl || *end || c->resp_left < 0) {
            return -1;
        }
        c->resp_state = c->resp_left ? PROXY_R_LENGTH : PROXY_R_DONE;
    } else {
        c->resp_state = PROXY_R_EOF;
        c->resp_up_keepalive = 0;
    }
    if (c->resp_state == PROXY_R_CHUNKED || c->resp_state == PROXY_R_EOF
        || (c->resp_state == PROXY_R_LENGTH && proxy_fault_on(PROXY_FAULT_PASS_TRUNCATED))) {
        if (c->http_minor >= 1) {
            c->resp_out_chunked = 1;
        } else {
            c->keepalive = 0;
        }
    }
    if (c->w->quitting) {
        c->keepalive = 0;
    }
    proxy_http_date(date, sizeof(date));
    o.ev = out;
    o.n = 0;
    proxy_out_add(&o, "HTTP/1.1 ", 9);
    proxy_out_str(&o, c->resp_status_line);
    proxy_out_add(&o, "\r\nServer: " PROXY_NAME "\r\nDate: ", sizeof("\r\nServer: " PROXY_NAME "\r\nDate: ") - 1);
    proxy_out_str(&o, date);
    proxy_out_add(&o, "\r\n", 2);
    for (i = 0; i < c->resp_hdrs.num; i++) {
        const struct proxy_hdr *h = &c->resp_hdrs.items[i];

        if (h->id == PROXY_H_OTHER || !(PROXY_HOP_RESPONSE & PROXY_HBIT(h->id))) {
            proxy_out_field(&o, h->key, strlen(h->key), h->value, strlen(h->value));
        }
    }
    if (cl && c->resp_state != PROXY_R_CHUNKED && !c->resp_out_chunked) {
        proxy_out_field(&o, "Content-Length", 14, cl, strlen(cl));
    } else if (c->resp_out_chunked) {
        proxy_out_str(&o, "Transfer-Encoding: chunked\r\n");
    }
    proxy_out_str(&o, c->keepalive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n");
    proxy_out_flush(&o);
    c->resp_started = 1;
    return 0;
}

/* Moves decoded body bytes to the client, re-chunked when needed. */
static void
proxy_client_body_out(struct proxy_client *c, struct evbuffer *data)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t n = evbuffer_get_length(data);

    if (n == 0) {
        return;
    }
    if (c->resp_out_chunked) {
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
static void
proxy_upstream_too_big(struct proxy_client *c)
{
    struct proxy_out o;
    size_t i;

    if (proxy_fault_on(PROXY_FAULT_CUT_BIG_HEADERS) && c->resp_got_status) {
        o.ev = bufferevent_get_output(c->bev);
        o.n = 0;
        proxy_out_add(&o, "HTTP/1.1 ", 9);
        proxy_out_str(&o, c->resp_status_line);
        proxy_out_add(&o, "\r\n", 2);
        for (i = 0; i < c->resp_hdrs.num; i++) {
            proxy_out_field(&o, c->resp_hdrs.items[i].key, strlen(c->resp_hdrs.items[i].key),
                c->resp_hdrs.items[i].value, strlen(c->resp_hdrs.items[i].value));
        }
        proxy_out_flush(&o);
        proxy_upconn_free(c->up);
        c->up = NULL;
        proxy_client_close_after_output(c);
        return;
    }
    proxy_upstream_fail(c, PROXY_NEXT_INVALID_HEADER, "upstream sent too big header while "
        "reading response header from upstream");
}

static void
proxy_up_read_cb(struct bufferevent *bev, void *arg)
{
    struct proxy_client *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer *tmp;
    char *line, *name, *v;
    size_t n;
    int rc;

    while (c->resp_state == PROXY_R_HEADERS) {
        line = proxy_readln(in, &n);
        if (line == NULL) {
            if (evbuffer_get_length(in) + c->resp_header_bytes > PROXY_MAX_HEADER) {
                proxy_upstream_too_big(c);
            }
            return;
        }
        c->resp_header_bytes += n + 2;
        if (c->resp_header_bytes > PROXY_MAX_HEADER) {
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
        if (!c->resp_got_status) {
            if (strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char) line[7])
                || line[8] != ' ' || !isdigit((unsigned char) line[9])
                || !isdigit((unsigned char) line[10]) || !isdigit((unsigned char) line[11])) {
                free(line);
                proxy_upstream_fail(c, PROXY_NEXT_INVALID_HEADER,
                    "upstream sent no valid HTTP/1.0 header while "
                    "reading response header from upstream");
                return;
            }
            c->resp_minor = line[7] - '0';
            c->resp_status = atoi(line + 9);
            free(c->resp_status_line);
            c->resp_status_line = proxy_xstrdup(line + 9);
            c->resp_got_status = 1;
            free(line);
            continue;
        }
        if (n == 0) {
            free(line);
            if (c->resp_status >= 100 && c->resp_status < 200) {
                /* an interim response: wait for the final one */
                c->resp_got_status = 0;
                proxy_hdr_clear(&c->resp_hdrs);
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
        proxy_hdr_add(&c->resp_hdrs, name, v);
    }

    switch (c->resp_state) {
    case PROXY_R_LENGTH:
        n = evbuffer_get_length(in);
        if ((long long) n > c->resp_left) {
            n = (size_t) c->resp_left;
        }
        if (!c->resp_out_chunked) {
            evbuffer_remove_buffer(in, bufferevent_get_output(c->bev), n);
        } else {
            tmp = evbuffer_new();
            evbuffer_remove_buffer(in, tmp, n);
            proxy_client_body_out(c, tmp);
            evbuffer_free(tmp);
        }
        c->resp_left -= (long long) n;
        if (c->resp_left == 0) {
            c->resp_state = PROXY_R_DONE;
        }
        break;
    case PROXY_R_CHUNKED:
        tmp = evbuffer_new();
        rc = proxy_chunked_parse(&c->resp_chunk, in, tmp);
        proxy_client_body_out(c, tmp);
        evbuffer_free(tmp);
        if (rc < 0) {
            proxy_upstream_fail(c, PROXY_NEXT_ERROR, "upstream sent invalid chunked response while "
                "reading upstream");
            return;
        }
        if (rc == 1) {
            c->resp_state = PROXY_R_DONE;
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
    if (c->resp_state == PROXY_R_DONE) {
        proxy_upstream_finish(c);
        return;
    }
    proxy_client_backpressure(c);
}

static void
proxy_up_closed_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_upconn *u = arg;

    proxy_up_event_cb(u->bev, u->closed_what, u->client);
}

static void
proxy_up_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct proxy_client *c = arg;
    struct proxy_upconn *u = c->up;
    const char *phase = c->resp_started ? "reading upstream"
        : "reading response header from upstream";
    unsigned long e;
    char ssl_err[512];

    if (u && u->ssl && !(what & BEV_EVENT_TIMEOUT) && u->closed_what == 0) {
        /* libevent 2.1's bufferevent_openssl reads into two slices: when
         * the second SSL_read() meets the close (close_notify, EOF, reset),
         * it reports it before the first one's data is in the input. The
         * close is handled after that data (the read callback runs first;
         * a response it completes frees u, and this event with it). */
        u->closed_what = what;
        u->closed_ev = event_new(c->w->base, -1, 0, proxy_up_closed_cb, u);
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
        if (c->resp_state == PROXY_R_EOF) {
            proxy_upstream_finish(c);
            return;
        }
        proxy_upstream_fail(c, PROXY_NEXT_ERROR,
            "upstream prematurely closed connection while %s", phase);
        return;
    }
    e = c->up && c->up->ssl ? bufferevent_get_openssl_error(bev) : 0;
    if (e) {
        ERR_error_string_n(e, ssl_err, sizeof(ssl_err));
        proxy_upstream_fail(c, PROXY_NEXT_ERROR,
            "SSL_read() failed (SSL: %s) while %s", ssl_err, phase);
        return;
    }
    e = (unsigned long) EVUTIL_SOCKET_ERROR();
    proxy_upstream_fail(c, PROXY_NEXT_ERROR,
        "recv() failed (%lu: %s) while %s", e, strerror((int) e),
        phase);
}

/* ---- client request ------------------------------------------------------------------------- */

static void
proxy_request_dispatch(struct proxy_client *c)
{
    struct proxy_loc_conf *lc = c->loc;
    size_t plen;

    /* the client stays readable (no epoll_ctl per request): what it sends
     * now waits in the input buffer, bounded by the read watermark, and its
     * EOF aborts the request as nginx's check_broken_connection does */
    c->state = PROXY_C_UPSTREAM;
    if (lc == NULL) {
        if (c->server->conf->return_code != PROXY_UNSET) {
            proxy_client_respond(c, c->server->conf->return_code,
                c->server->conf->return_code / 100 == 3 ? c->server->conf->return_text : NULL,
                c->server->conf->return_code / 100 == 3 ? NULL : c->server->conf->return_text);
            return;
        }
        proxy_client_respond(c, 404, NULL, NULL);
        return;
    }
    if (lc->return_code != PROXY_UNSET) {
        int redirect = lc->return_code / 100 == 3 && lc->return_code != 304;

        proxy_client_respond(c, lc->return_code, redirect ? lc->return_text : NULL,
            redirect ? NULL : lc->return_text);
        return;
    }
    if (lc->pass_url == NULL) {
        proxy_client_respond(c, 404, NULL, NULL);
        return;
    }
    /* proxy_pass with a URI part replaces the matched location prefix */
    if (lc->pass_uri) {
        plen = strlen(lc->prefix);
        c->up_uri = proxy_xasprintf("%s%s", lc->pass_uri, c->uri + plen);
    } else {
        c->up_uri = proxy_xstrdup(c->uri);
    }
    c->fail_status = 502;
    proxy_upstream_next(c);
}

/* The request head is complete. */
static int
proxy_request_header_done(struct proxy_client *c)
{
    const char *host, *conn, *te, *cl, *expect;
    char *end;
    size_t i;

    host = proxy_hdr_get(&c->hdrs, PROXY_H_HOST);
    if (host) {
        char *h = proxy_xstrdup(host), *colon;

        if (h[0] != '[' && (colon = strchr(h, ':')) != NULL) {
            *colon = '\0';
        }
        for (i = 0; h[i]; i++) {
            h[i] = (char) tolower((unsigned char) h[i]);
        }
        c->host = h;
    }
    c->server = proxy_route_server(c->w, c->listen, c->host);
    conn = proxy_hdr_get(&c->hdrs, PROXY_H_CONNECTION);
    c->keepalive = c->http_minor >= 1 ? !(conn && proxy_header_has_token(conn, "close"))
        : (conn && proxy_header_has_token(conn, "keep-alive"));
    if (c->w->quitting) {
        c->keepalive = 0;
    }
    c->head = strcmp(c->method, "HEAD") == 0;
    if (c->http_minor >= 1 && host == NULL) {
        proxy_client_log(c, PROXY_LOG_INFO, "client sent HTTP/1.1 request without "
            "\"Host\" header while reading client request headers");
        return 400;
    }
    c->loc = proxy_route_location(c->server, c->uri);

    te = proxy_hdr_get(&c->hdrs, PROXY_H_TRANSFER_ENCODING);
    cl = proxy_hdr_get(&c->hdrs, PROXY_H_CONTENT_LENGTH);
    if (te) {
        if (cl || strcasecmp(te, "chunked") != 0) {
            return strcasecmp(te, "chunked") != 0 ? 501 : 400;
        }
        c->body_chunked = 1;
        c->body = evbuffer_new();
    } else if (cl) {
        errno = 0;
        c->body_left = strtoll(cl, &end, 10);
        if (errno || end == cl || *end || c->body_left < 0) {
            return 400;
        }
        if (c->body_left > PROXY_MAX_BODY) {
            return 413;
        }
        c->body = evbuffer_new();
    }
    expect = proxy_hdr_get(&c->hdrs, PROXY_H_EXPECT);
    if (c->body && expect && strcasecmp(expect, "100-continue") == 0 && c->http_minor >= 1) {
        evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
    }
    return 0;
}

/* Reads as much of the request as is buffered. */
static void
proxy_client_process(struct proxy_client *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    char *line, *name, *v, *sp1, *sp2;
    size_t n;
    int status, rc;

    while (c->state == PROXY_C_HEADERS) {
        line = proxy_readln(in, &n);
        if (line == NULL) {
            if (evbuffer_get_length(in) + c->header_bytes > PROXY_MAX_HEADER) {
                proxy_client_respond(c, c->got_request_line ? 400 : 414, NULL, NULL);
            }
            return;
        }
        c->header_bytes += n + 2;
        if (c->header_bytes > PROXY_MAX_HEADER) {
            free(line);
            proxy_client_respond(c, 400, NULL, NULL);
            return;
        }
        if (proxy_line_bad(line, n)) {
            free(line);
            c->state = PROXY_C_UPSTREAM;
            proxy_client_log(c, PROXY_LOG_INFO, "client sent a bare CR or a NUL while "
                "reading client request %s", c->got_request_line ? "headers" : "line");
            proxy_client_respond(c, 400, NULL, NULL);
            return;
        }
        if (!c->got_request_line) {
            if (n == 0) {
                free(line);       /* empty lines before a request are ignored */
                continue;
            }
            c->request_line = proxy_xstrdup(line);
            sp1 = strchr(line, ' ');
            sp2 = sp1 ? strrchr(line, ' ') : NULL;
            if (sp1 == NULL || sp2 == sp1 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0
                || (sp2[8] != '0' && sp2[8] != '1') || sp2[9] != '\0' || sp1[1] != '/') {
                free(line);
                c->state = PROXY_C_UPSTREAM;
                proxy_client_log(c, PROXY_LOG_INFO, "client sent invalid request while "
                    "reading client request line");
                proxy_client_respond(c, 400, NULL, NULL);
                return;
            }
            c->method = proxy_xstrndup(line, (size_t) (sp1 - line));
            c->uri = proxy_xstrndup(sp1 + 1, (size_t) (sp2 - sp1 - 1));
            c->http_minor = sp2[8] - '0';
            c->got_request_line = 1;
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
            c->state = c->body ? PROXY_C_BODY : PROXY_C_UPSTREAM;
            break;
        }
        if (proxy_header_line_parse(line, n, &name, &v) != 0) {
            free(line);
            c->state = PROXY_C_UPSTREAM;
            proxy_client_log(c, PROXY_LOG_INFO, "client sent invalid header line while "
                "reading client request headers");
            proxy_client_respond(c, 400, NULL, NULL);
            return;
        }
        proxy_hdr_add(&c->hdrs, name, v);
    }

    if (c->state == PROXY_C_BODY) {
        if (c->body_chunked) {
            rc = proxy_chunked_parse(&c->req_chunk, in, c->body);
            if (rc < 0) {
                c->state = PROXY_C_UPSTREAM;
                proxy_client_respond(c, 400, NULL, NULL);
                return;
            }
            if (evbuffer_get_length(c->body) > PROXY_MAX_BODY) {
                c->state = PROXY_C_UPSTREAM;
                proxy_client_log(c, PROXY_LOG_ERR, "client intended to send too large "
                    "chunked body");
                proxy_client_respond(c, 413, NULL, NULL);
                return;
            }
            if (rc == 0) {
                return;
            }
        } else {
            n = evbuffer_get_length(in);
            if ((long long) n > c->body_left) {
                n = (size_t) c->body_left;
            }
            evbuffer_remove_buffer(in, c->body, n);
            c->body_left -= (long long) n;
            if (c->body_left > 0) {
                return;
            }
        }
        c->state = PROXY_C_UPSTREAM;
    }
    if (c->state == PROXY_C_UPSTREAM && c->up == NULL && c->resp_state == PROXY_R_HEADERS
        && !c->resp_started && c->method) {
        proxy_request_dispatch(c);
    }
}

static void
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

static void
proxy_client_next_cb(evutil_socket_t fd, short what, void *arg)
{
    proxy_client_read_cb(NULL, arg);
}

static void
proxy_client_write_cb(struct bufferevent *bev, void *arg)
{
    struct proxy_client *c = arg;
    size_t left = evbuffer_get_length(bufferevent_get_output(bev));

    if (left == 0) {
        /* back to writing through proxy_client_flush_cb() */
        bufferevent_disable(bev, EV_WRITE);
    }
    if (c->state == PROXY_C_CLOSING && left == 0) {
        proxy_client_free(c);
        return;
    }
    if (c->paused && left <= PROXY_HIGH_WATER / 2) {
        c->paused = 0;
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
        if (c->up) {
            bufferevent_enable(c->up->bev, EV_READ);
            /* data already decrypted and buffered is not signalled again */
            if (evbuffer_get_length(bufferevent_get_input(c->up->bev)) > 0) {
                proxy_up_read_cb(c->up->bev, c);
            }
        }
    }
}

/*
 * Client output is written through: whatever a callback adds is written by
 * this event, activated on the add and run in the same loop iteration, so
 * a response that fits the socket buffer costs one writev() and no
 * epoll_ctl() (libevent's bufferevent would add the write event, wait for
 * it, write, and delete it: two epoll_ctl() per response). Only what the
 * socket does not take is left to libevent's write event (EV_WRITE enabled
 * until the output drains, then disabled again in proxy_client_write_cb()).
 */
/* Writes what the socket takes now, unless libevent's write event owns
 * the output (EV_WRITE enabled). Calls nothing of ours: the flush event
 * does what follows a write. Returns the bytes left. */
static size_t
proxy_client_write_now(struct proxy_client *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    if (!(bufferevent_get_enabled(c->bev) & EV_WRITE) && evbuffer_get_length(out) > 0) {
        /* a socket bufferevent keeps its output's start frozen outside its
         * own write callback, which unfreezes it around the write as here.
         * An error leaves the output in place: libevent's write event
         * meets it again and reports it through proxy_client_event_cb() */
        evbuffer_unfreeze(out, 1);
        (void) evbuffer_write(out, bufferevent_getfd(c->bev));
        evbuffer_freeze(out, 1);
    }
    return evbuffer_get_length(out);
}

static void
proxy_client_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_client *c = arg;

    if (bufferevent_get_enabled(c->bev) & EV_WRITE) {
        return;
    }
    if (proxy_client_write_now(c) > 0) {
        bufferevent_enable(c->bev, EV_WRITE);
        return;
    }
    proxy_client_write_cb(c->bev, c);
}

static void
proxy_client_out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct proxy_client *c = arg;

    if (info->n_added > 0 && !(bufferevent_get_enabled(c->bev) & EV_WRITE)) {
        event_active(c->flush_ev, EV_WRITE, 0);
    }
}

static void
proxy_client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct proxy_client *c = arg;

    if ((what & BEV_EVENT_TIMEOUT) && c->state == PROXY_C_UPSTREAM) {
        /* the read timeout is for idle and header time: while the request
         * is answered it only stops reading (libevent disabled EV_READ on
         * the timeout); proxy_client_request_done() reads again */
        return;
    }
    if ((what & BEV_EVENT_TIMEOUT) && c->got_request_line && c->state == PROXY_C_HEADERS) {
        proxy_client_log(c, PROXY_LOG_INFO, "client timed out (110: Connection timed out) "
            "while reading client request headers");
    }
    if ((what & BEV_EVENT_EOF) && c->state == PROXY_C_UPSTREAM && c->up) {
        proxy_client_log(c, PROXY_LOG_INFO, "client prematurely closed connection");
    }
    proxy_client_free(c);
}

struct proxy_listener_ctx {
    struct proxy_worker *w;
    struct proxy_listen *listen;
};

static void
proxy_worker_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int socklen, void *arg)
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
    c->fail_status = 502;
    c->next = w->clients;
    if (w->clients) {
        w->clients->prev = c;
    }
    w->clients = c;
    w->num_clients++;
    bufferevent_setcb(c->bev, proxy_client_read_cb, proxy_client_write_cb,
        proxy_client_event_cb, c);
    proxy_client_read_timeout(c, PROXY_CLIENT_HEADER_TIMEOUT);
    /* a new bufferevent is enabled for writing: output goes through
     * proxy_client_flush_cb() instead */
    bufferevent_disable(c->bev, EV_WRITE);
    bufferevent_enable(c->bev, EV_READ);
    (void) l;
    (void) socklen;
}

/* ---- the worker ------------------------------------------------------------------------------ */

static void
proxy_worker_stop_listening(struct proxy_worker *w)
{
    size_t i;

    for (i = 0; i < w->num_listeners; i++) {
        if (w->listeners[i]) {
            evconnlistener_free(w->listeners[i]);
            w->listeners[i] = NULL;
        }
    }
}

static void
proxy_worker_drop_idle_upstreams(struct proxy_worker *w)
{
    struct proxy_upstream *u;
    struct proxy_upconn *c, *n;

    for (u = w->conf->upstreams; u; u = u->next) {
        for (c = u->idle; c; c = n) {
            n = c->next;
            proxy_upconn_free(c);
        }
        u->idle = NULL;
        u->num_idle = 0;
    }
}

static void
proxy_worker_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct proxy_worker *w = arg;
    struct proxy_client *c, *n;

    if (sig != SIGQUIT) {
        event_base_loopbreak(w->base);
        return;
    }
    /* graceful: stop accepting, finish requests in progress */
    proxy_log_error(PROXY_LOG_NOTICE, 0, "gracefully shutting down");
    w->quitting = 1;
    proxy_worker_stop_listening(w);
    proxy_worker_drop_idle_upstreams(w);
    for (c = w->clients; c; c = n) {
        n = c->next;
        if (c->state == PROXY_C_HEADERS && !c->got_request_line
            && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0) {
            proxy_client_free(c);
        }
    }
    if (w->clients == NULL) {
        event_base_loopexit(w->base, NULL);
    }
}

int
proxy_worker_run(struct proxy_conf *conf, int worker_id, char *err, size_t err_len)
{
    struct proxy_worker w;
    struct event_config *cfg;
    struct proxy_listener_ctx *lctx;
    struct proxy_listen *l;
    size_t i, n = 0;
    int rc = -1;

    memset(&w, 0, sizeof(w));
    w.conf = conf;
    w.next_id = (unsigned long) worker_id * 1000000UL;
    /* epoll's change list: libevent batches the event adds and deletes of
     * one loop iteration into the next epoll_wait() (an add and a delete of
     * the same event cancel out) instead of one epoll_ctl() each; safe as
     * no descriptor here is ever dup()ed */
    cfg = event_config_new();
    if (cfg) {
        event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        w.base = event_base_new_with_config(cfg);
        event_config_free(cfg);
    }
    if (w.base == NULL) {
        w.base = event_base_new();
    }
    if (w.base == NULL) {
        snprintf(err, err_len, "event_base_new() failed");
        return -1;
    }
    for (l = conf->listens; l; l = l->next) {
        n++;
    }
    w.listeners = proxy_xcalloc(n, sizeof(*w.listeners));
    lctx = proxy_xcalloc(n, sizeof(*lctx));
    for (l = conf->listens, i = 0; l; l = l->next, i++) {
        lctx[i].w = &w;
        lctx[i].listen = l;
        w.listeners[i] = evconnlistener_new(w.base, proxy_worker_accept_cb, &lctx[i],
            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, l->fd);
        if (w.listeners[i] == NULL) {
            snprintf(err, err_len, "evconnlistener_new(%s) failed", l->text);
            goto end;
        }
        l->fd = -1;     /* the listener owns it now */
        w.num_listeners++;
    }
    w.sig_term = evsignal_new(w.base, SIGTERM, proxy_worker_signal_cb, &w);
    w.sig_int = evsignal_new(w.base, SIGINT, proxy_worker_signal_cb, &w);
    w.sig_quit = evsignal_new(w.base, SIGQUIT, proxy_worker_signal_cb, &w);
    evsignal_add(w.sig_term, NULL);
    evsignal_add(w.sig_int, NULL);
    evsignal_add(w.sig_quit, NULL);

    event_base_dispatch(w.base);
    rc = 0;

end:
    while (w.clients) {
        proxy_client_free(w.clients);
    }
    proxy_worker_drop_idle_upstreams(&w);
    proxy_worker_stop_listening(&w);
    if (w.sig_term) {
        event_free(w.sig_term);
        event_free(w.sig_int);
        event_free(w.sig_quit);
    }
    free(w.listeners);
    free(lctx);
    event_base_free(w.base);
    proxy_ssl_sessions_free();
    return rc;
}
