/* libFuzzer target: uptls-proxy's HTTP response parser (status line,
 * interim 1xx responses, headers, Content-Length / chunked / read-until-close
 * bodies, the response head it writes to the client). The client sends a
 * fixed request for /up/ (HTTP/1.1 upstream) or /up10/ (HTTP/1.0, no
 * keepalive) - the first input byte chooses - and the fuzz input is what the
 * upstream answers, in two reads, then the upstream closes. See
 * fuzz_proxy_http.h. */
#include "fuzz_proxy_http.h"

static const char fuzz_req11[] = "GET /up/a?b=c HTTP/1.1\r\nHost: a.test\r\n\r\n";
static const char fuzz_req10[] = "HEAD /up10/a HTTP/1.0\r\nHost: x.b.test\r\n\r\n";
static const char fuzz_req_post[] =
    "POST /up/p HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
    "3\r\nabc\r\n0\r\n\r\n";

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
    const char *req;
    size_t cut;

    if (size < 1) {
        return 0;
    }
    req = data[0] % 3 == 0 ? fuzz_req11 : data[0] % 3 == 1 ? fuzz_req10 : fuzz_req_post;
    data++;
    size--;
    cut = fuzz_split(&data, &size);
    c = fuzz_client_new();
    fuzz_bev_input_add(c->bev, req, strlen(req));
    proxy_client_read_cb(c->bev, c);
    if (fuzz_client_alive(c)) {
        fuzz_upstream_connected(c);
        fuzz_upstream_feed(c, data, cut);
        fuzz_upstream_feed(c, data + cut, size - cut);
        fuzz_upstream_eof(c);
    }
    fuzz_client_done(c);
    return 0;
}
