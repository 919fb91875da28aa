/* libFuzzer target: uptls-proxy's HTTP request parser (request line,
 * headers, Host routing, Content-Length and chunked request bodies,
 * pipelining) and the request head it writes upstream. A request routed to
 * /up/ or /up10/ is answered by a fixed upstream response, so the next
 * pipelined request is parsed too. See fuzz_proxy_http.h. */
#include "fuzz_proxy_http.h"

static const char fuzz_ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    return fuzz_http_setup();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxy_client *c;
    size_t cut = fuzz_split(&data, &size), rounds;
    struct evbuffer *in;

    c = fuzz_client_new();
    in = bufferevent_get_input(c->bev);
    fuzz_bev_input_add(c->bev, data, cut);
    proxy_client_read_cb(c->bev, c);
    if (fuzz_client_alive(c)) {
        fuzz_bev_input_add(c->bev, data + cut, size - cut);
    }
    /* the event loop would run each next pipelined request from next_ev */
    for (rounds = 0; rounds < 32 && fuzz_client_alive(c); rounds++) {
        size_t before = evbuffer_get_length(in);

        if (c->state == PROXY_C_HEADERS || c->state == PROXY_C_BODY) {
            proxy_client_read_cb(c->bev, c);
        }
        if (fuzz_client_alive(c) && c->up.conn != NULL) {
            fuzz_upstream_connected(c);
            fuzz_upstream_feed(c, fuzz_ok, sizeof(fuzz_ok) - 1);
            continue;
        }
        if (!fuzz_client_alive(c) || evbuffer_get_length(in) == before
            || (c->state != PROXY_C_HEADERS && c->state != PROXY_C_BODY)) {
            break;
        }
    }
    fuzz_client_done(c);
    return 0;
}
