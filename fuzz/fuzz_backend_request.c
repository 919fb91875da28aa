/* libFuzzer target: uptls-backend's HTTP/1.1 request parser
 * (backend_http_parse_request() and its chunked decoder in
 * harness/backend/backend_http.c; the target links the backend's objects,
 * all but backend_main.o). Requests are parsed one after another as
 * backend_http_process() does: leading empty lines skipped, each complete
 * request consumed, stop at the first bad one. Each parse sees exactly the
 * bytes so far (a heap copy of that length), so a read past them is caught. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/backend/backend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0, rounds;

    for (rounds = 0; rounds < 64 && off < size; rounds++) {
        struct http_request req;
        const char *err = NULL;
        int status = 0;
        size_t need = 0, len = size - off;
        char *p;
        enum http_parse_result r;

        if (data[off] == '\r' || data[off] == '\n') {
            off++;
            continue;
        }
        p = malloc(len);
        if (p == NULL) {
            abort();
        }
        memcpy(p, data + off, len);
        r = backend_http_parse_request(p, len, &req, &status, &need, &err);
        if (r == HTTP_DONE) {
            if (req.total_len == 0 || req.total_len > len) {
                abort(); /* must consume something, never more than there is */
            }
            off += req.total_len;
        }
        free(p);
        if (r != HTTP_DONE) {
            break;
        }
    }
    return 0;
}
