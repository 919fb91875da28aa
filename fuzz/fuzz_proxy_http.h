/*
 * Shared set-up of the uptls-proxy HTTP fuzz targets (fuzz_proxy_request.c,
 * fuzz_proxy_response.c). The target links the proxy's objects (all but
 * proxy_main.o) and calls its callbacks, declared in its internal headers,
 * as the event loop calls them, with no change to the proxy's code:
 *   - the request parser: proxy_client_read_cb() on a client whose input
 *     buffer holds the fuzz input (as read from the socket);
 *   - the response parser: proxy_upstream_read_cb() /
 *     proxy_upstream_event_cb() on an upstream connection whose input
 *     buffer holds the fuzz input.
 * Bufferevents have no socket (fd -1) and the event loop never runs, so
 * nothing is sent anywhere: what the proxy writes accumulates in the output
 * buffers and is freed with the client. bufferevent_socket_connect() is
 * replaced (ld --wrap, see fuzz/fuzz.mk) by one that connects nothing; the
 * harness then reports
 * the connection as made, as libevent would (BEV_EVENT_CONNECTED). The input is split in two reads at
 * an offset taken from its first two bytes, so incremental parsing (a line
 * or a chunk cut in the middle) is exercised too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/bufferevent.h>

#include "../reference-proxy/proxy_upstream.h"

#define FUZZ_UNUSED __attribute__((unused))

int __wrap_bufferevent_socket_connect(struct bufferevent *bev, const struct sockaddr *sa, int len);

/* The proxy's bufferevent_socket_connect() (ld --wrap): connects nothing. */
int
__wrap_bufferevent_socket_connect(struct bufferevent *bev, const struct sockaddr *sa, int len)
{
    (void) bev;
    (void) sa;
    (void) len;
    return 0; /* "in progress"; fuzz_upstream_connected() completes it */
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every location answers by itself (return), except /up/, which proxies to
 * an upstream that is never connected (the response target attaches a fake
 * connection instead). */
static const char fuzz_http_conf[] =
    "events {}\n"
    "http {\n"
    "    upstream grp { server 127.0.0.1:9; server 127.0.0.1:10; }\n"
    "    server {\n"
    "        listen 127.0.0.1:8080;\n"
    "        server_name a.test *.b.test;\n"
    "        location / { return 200 \"ok\"; }\n"
    "        location = /exact { return 204; }\n"
    "        location /redir { return 301 http://a.test/; }\n"
    "        location /up/ { proxy_pass http://grp/x/; proxy_http_version 1.1; "
    "proxy_set_header Connection \"\"; proxy_set_header X-H $host$request_uri; }\n"
    "        location /up10/ { proxy_pass http://grp; keepalive_timeout 0; }\n"
    "    }\n"
    "    server { listen 127.0.0.1:8080; server_name other.test; return 404; }\n"
    "}\n";

static struct proxy_conf fuzz_conf;
static struct proxy_worker fuzz_w;

static int
fuzz_http_setup(void)
{
    static char err[PROXY_ERRLEN];
    char dir[] = "/tmp/uptls-fuzz-http.XXXXXX", path[64];
    FILE *f;

    if (mkdtemp(dir) == NULL) {
        abort();
    }
    snprintf(path, sizeof(path), "%s/nginx.conf", dir);
    f = fopen(path, "w");
    if (f == NULL) {
        abort();
    }
    fputs(fuzz_http_conf, f);
    fclose(f);
    if (proxy_conf_load(&fuzz_conf, dir, path, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz config: %s\n", err);
        abort();
    }
    unlink(path);
    rmdir(dir);
    if (proxy_log_open("/dev/null", PROXY_LOG_EMERG, err, sizeof(err)) != 0) {
        abort();
    }
    fuzz_w.conf = &fuzz_conf;
    fuzz_w.base = event_base_new();
    if (fuzz_w.base == NULL) {
        abort();
    }
    return 0;
}

/* Adds bytes to a bufferevent's input as if read from its socket (the
 * bufferevent keeps the end of its input frozen for everyone else). */
static void
fuzz_bev_input_add(struct bufferevent *bev, const void *data, size_t len)
{
    struct evbuffer *in = bufferevent_get_input(bev);

    evbuffer_unfreeze(in, 0);
    evbuffer_add(in, data, len);
    evbuffer_freeze(in, 0);
}

/* A client as proxy_worker_accept_cb() makes one, with no socket. */
static struct proxy_client *
fuzz_client_new(void)
{
    struct proxy_client *c = proxy_xcalloc(1, sizeof(*c));

    c->w = &fuzz_w;
    c->id = ++fuzz_w.next_id;
    c->listen = fuzz_conf.listens;
    snprintf(c->addr, sizeof(c->addr), "127.0.0.1");
    snprintf(c->port, sizeof(c->port), "1");
    c->bev = bufferevent_socket_new(fuzz_w.base, -1, 0);
    if (c->bev == NULL) {
        abort();
    }
    c->next_ev = evtimer_new(fuzz_w.base, proxy_client_next_cb, c);
    c->req.fail_status = 502;
    c->next = fuzz_w.clients;
    if (fuzz_w.clients) {
        fuzz_w.clients->prev = c;
    }
    fuzz_w.clients = c;
    fuzz_w.num_clients++;
    bufferevent_setcb(
        c->bev, proxy_client_read_cb, proxy_client_write_cb, proxy_client_event_cb, c);
    return c;
}

/* Is c still allocated (not freed by the code under test)? */
static int
fuzz_client_alive(const struct proxy_client *c)
{
    const struct proxy_client *p;

    for (p = fuzz_w.clients; p; p = p->next) {
        if (p == c) {
            return 1;
        }
    }
    return 0;
}

static size_t
fuzz_split(const uint8_t **data, size_t *size)
{
    size_t cut;

    if (*size < 2) {
        return 0;
    }
    cut = ((size_t) (*data)[0] << 8 | (*data)[1]);
    *data += 2;
    *size -= 2;
    return *size ? cut % (*size + 1) : 0;
}

/* An oracle besides the sanitizers: the first message head the proxy wrote
 * (to the client, to the upstream) has every line ended by CRLF and holds no
 * bare CR, bare LF or NUL (RFC 9112 2.2, RFC 9110 5.5: a proxy must not
 * forward them, another parser may read them as line ends). */
static void
fuzz_check_head(struct evbuffer *b, const char *who)
{
    size_t len = evbuffer_get_length(b), i, end;
    const char *p = (const char *) evbuffer_pullup(b, -1);
    const char *stop;

    if (len == 0) {
        return;
    }
    stop = memmem(p, len, "\r\n\r\n", 4);
    end = stop ? (size_t) (stop - p) + 4 : len;
    for (i = 0; i < end; i++) {
        if (p[i] == '\0' || (p[i] == '\r' && (i + 1 >= len || p[i + 1] != '\n'))
            || (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))) {
            fprintf(stderr, "fuzz: bare CR, LF or NUL at byte %zu of the head sent to %s:\n%.*s\n",
                i, who, (int) end, p);
            abort();
        }
    }
}

/* The upstream connection the client waits for is made: the request is
 * written to its (socketless) output. */
static FUZZ_UNUSED void
fuzz_upstream_connected(struct proxy_client *c)
{
    if (c->up.conn != NULL && !c->up.conn->connected) {
        proxy_upstream_connect_event_cb(c->up.conn->bev, BEV_EVENT_CONNECTED, c);
        if (fuzz_client_alive(c) && c->up.conn != NULL) {
            fuzz_check_head(bufferevent_get_output(c->up.conn->bev), "the upstream");
        }
    }
}

/* Feeds bytes from the upstream to the client's current upstream
 * connection, as the read callback would see them. */
static FUZZ_UNUSED void
fuzz_upstream_feed(struct proxy_client *c, const void *data, size_t len)
{
    if (fuzz_client_alive(c) && c->up.conn != NULL && c->up.conn->connected) {
        fuzz_bev_input_add(c->up.conn->bev, data, len);
        proxy_upstream_read_cb(c->up.conn->bev, c);
    }
}

/* The upstream closes the connection. */
static FUZZ_UNUSED void
fuzz_upstream_eof(struct proxy_client *c)
{
    if (fuzz_client_alive(c) && c->up.conn != NULL && c->up.conn->connected) {
        proxy_upstream_event_cb(c->up.conn->bev, BEV_EVENT_EOF | BEV_EVENT_READING, c);
    }
}

/* Frees the client if the code under test has not; with FUZZ_DEBUG set in
 * the environment, first prints what the proxy wrote to the client and to
 * the upstream (to see what an input does: build/fuzz/replay/fuzz_* FILE). */
static void
fuzz_client_done(struct proxy_client *c)
{
    if (!fuzz_client_alive(c)) {
        if (getenv("FUZZ_DEBUG")) {
            fprintf(stderr, "--- client freed by the proxy\n");
        }
        event_base_loop(fuzz_w.base, EVLOOP_NONBLOCK);
        return;
    }
    fuzz_check_head(bufferevent_get_output(c->bev), "the client");
    if (c->up.conn) {
        fuzz_check_head(bufferevent_get_output(c->up.conn->bev), "the upstream");
    }
    if (getenv("FUZZ_DEBUG")) {
        struct evbuffer *o = bufferevent_get_output(c->bev);

        fprintf(stderr, "--- to client (state %d):\n%.*s\n", c->state, (int) evbuffer_get_length(o),
            (const char *) evbuffer_pullup(o, -1));
        if (c->up.conn) {
            o = bufferevent_get_output(c->up.conn->bev);
            fprintf(stderr, "--- to upstream:\n%.*s\n", (int) evbuffer_get_length(o),
                (const char *) evbuffer_pullup(o, -1));
        }
    }
    proxy_client_free(c);
    /* libevent frees bufferevents from the loop (finalizers): run it once,
     * with no client left nothing else can happen in it */
    event_base_loop(fuzz_w.base, EVLOOP_NONBLOCK);
}
