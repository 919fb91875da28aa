/*
 * HTTP/1.1 for the mock backend: request line, headers, Content-Length or
 * chunked body; keep-alive and pipelining. Each request is logged (method,
 * path, version, headers in order, body length) and answered with a small
 * text/plain body naming the backend, connection and request number.
 *
 * Limits: header block 64 KiB (431 and close), 100 header fields (431 and
 * close), body 16 MiB (413 and close); anything malformed gets 400 and close.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend.h"

#define MAX_HEADER_BYTES (64 * 1024)
#define MAX_BODY (16L * 1024 * 1024)
#define HUGE_HEADER_FILLER 80 /* huge-headers: 80 headers of 1000 bytes */

static int
is_tchar(unsigned char c)
{
    return isalnum(c) || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
token_eq(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && strncasecmp(s, lit, len) == 0;
}

/* Does the comma-separated list hold tok (case-insensitive)? */
static int
list_has(const char *s, size_t len, const char *tok)
{
    size_t i = 0;

    while (i < len) {
        size_t start, end;
        while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == ','))
            i++;
        start = i;
        while (i < len && s[i] != ',')
            i++;
        end = i;
        while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t'))
            end--;
        if (end > start && token_eq(s + start, end - start, tok))
            return 1;
    }
    return 0;
}

/* The last transfer coding of a Transfer-Encoding value. */
static int
te_is_chunked(const char *s, size_t len)
{
    size_t end = len, start;

    while (end > 0 && (s[end - 1] == ' ' || s[end - 1] == '\t'))
        end--;
    start = end;
    while (start > 0 && s[start - 1] != ',')
        start--;
    while (start < end && (s[start] == ' ' || s[start] == '\t'))
        start++;
    return token_eq(s + start, end - start, "chunked");
}

/*
 * Parses the chunked body at p (len bytes available). Returns HTTP_DONE with
 * *out_consumed and *out_body_len, HTTP_NEED_MORE, or HTTP_BAD.
 */
static enum http_parse_result
parse_chunked(const char *p, size_t len, size_t *out_consumed, size_t *out_body_len,
    size_t *out_need, const char **out_err)
{
    size_t i = 0, body = 0;

    for (;;) {
        size_t size = 0, digits = 0;
        const char *eol = memchr(p + i, '\n', len - i);

        if (eol == NULL)
            return len - i > 1024 ? (*out_err = "chunk size line too long", HTTP_BAD)
                                  : HTTP_NEED_MORE;
        while (p + i < eol && isxdigit((unsigned char) p[i])) {
            int d = isdigit((unsigned char) p[i]) ? p[i] - '0'
                                                  : (tolower((unsigned char) p[i]) - 'a' + 10);
            if (size > ((size_t) MAX_BODY >> 4)) {
                *out_err = "chunk too large";
                return HTTP_BAD;
            }
            size = size * 16 + (size_t) d;
            digits++;
            i++;
        }
        if (digits == 0) {
            *out_err = "bad chunk size";
            return HTTP_BAD;
        }
        /* chunk extensions are ignored; the line must end in CRLF */
        if (eol == p || eol[-1] != '\r') {
            *out_err = "chunk size line without CRLF";
            return HTTP_BAD;
        }
        i = (size_t) (eol - p) + 1;
        if (size == 0) {
            /* trailer section: lines until an empty one */
            for (;;) {
                eol = memchr(p + i, '\n', len - i);
                if (eol == NULL)
                    return HTTP_NEED_MORE;
                if ((size_t) (eol - (p + i)) == 1 && p[i] == '\r') {
                    *out_consumed = (size_t) (eol - p) + 1;
                    *out_body_len = body;
                    return HTTP_DONE;
                }
                i = (size_t) (eol - p) + 1;
            }
        }
        body += size;
        if (body > (size_t) MAX_BODY) {
            *out_err = "body too large";
            return HTTP_BAD;
        }
        if (len - i < size + 2) {
            *out_need = i + size + 2;
            return HTTP_NEED_MORE;
        }
        if (p[i + size] != '\r' || p[i + size + 1] != '\n') {
            *out_err = "chunk data not followed by CRLF";
            return HTTP_BAD;
        }
        i += size + 2;
    }
}

/*
 * Parses one request at the front of p. On HTTP_BAD sets *out_status and
 * *out_err. The request's pointers point into p.
 */
enum http_parse_result
backend_http_parse_request(const char *p, size_t len, struct http_request *req, int *out_status,
    size_t *out_need, const char **out_err)
{
    const char *end, *line, *eol, *sp1, *sp2;
    size_t scan = len < MAX_HEADER_BYTES + 4 ? len : MAX_HEADER_BYTES + 4;

    memset(req, 0, sizeof(*req));
    req->content_length = -1;
    *out_status = 400;
    *out_need = len + 1;

    /* RFC 9112 2.2: ignore at least one empty line before the request line. */
    end = memmem(p, scan, "\r\n\r\n", 4);
    if (end == NULL) {
        if (len > MAX_HEADER_BYTES) {
            *out_status = 431;
            *out_err = "header block larger than 64 KiB";
            return HTTP_BAD;
        }
        return HTTP_NEED_MORE;
    }
    req->head_len = (size_t) (end - p) + 4;

    /* request line: METHOD SP TARGET SP HTTP/x.y CRLF */
    eol = memchr(p, '\r', req->head_len);
    if (eol == NULL || eol[1] != '\n') {
        *out_err = "bad request line";
        return HTTP_BAD;
    }
    sp1 = memchr(p, ' ', (size_t) (eol - p));
    sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t) (eol - sp1 - 1)) : NULL;
    if (sp1 == NULL || sp2 == NULL || sp1 == p || sp2 == sp1 + 1) {
        *out_err = "bad request line";
        return HTTP_BAD;
    }
    for (const char *q = p; q < sp1; q++) {
        if (!is_tchar((unsigned char) *q)) {
            *out_err = "bad method";
            return HTTP_BAD;
        }
    }
    for (const char *q = sp1 + 1; q < sp2; q++) {
        if ((unsigned char) *q <= 0x20 || (unsigned char) *q == 0x7f) {
            *out_err = "bad request target";
            return HTTP_BAD;
        }
    }
    req->method = p;
    req->method_len = (size_t) (sp1 - p);
    req->target = sp1 + 1;
    req->target_len = (size_t) (sp2 - sp1 - 1);
    req->version = sp2 + 1;
    req->version_len = (size_t) (eol - sp2 - 1);
    if (!(req->version_len == 8 && memcmp(req->version, "HTTP/1.", 7) == 0
            && (req->version[7] == '0' || req->version[7] == '1'))) {
        *out_err = "bad HTTP version";
        if (req->version_len == 8 && memcmp(req->version, "HTTP/", 5) == 0)
            *out_status = 505;
        return HTTP_BAD;
    }

    /* header fields: NAME ":" OWS VALUE OWS CRLF */
    line = eol + 2;
    while (line < end + 2) {
        const char *colon, *v, *ve;
        struct http_header *h;

        eol = memchr(line, '\r', (size_t) (end + 2 - line));
        if (eol == NULL || eol[1] != '\n') {
            *out_err = "bare CR or LF in header";
            return HTTP_BAD;
        }
        if (req->num_headers == MAX_HEADERS) {
            *out_status = 431;
            *out_err = "more than 100 header fields";
            return HTTP_BAD;
        }
        colon = memchr(line, ':', (size_t) (eol - line));
        if (colon == NULL || colon == line) {
            *out_err = line[0] == ' ' || line[0] == '\t' ? "obsolete line folding"
                                                         : "header line without a name";
            return HTTP_BAD;
        }
        for (const char *q = line; q < colon; q++) {
            if (!is_tchar((unsigned char) *q)) {
                *out_err = "bad header name";
                return HTTP_BAD;
            }
        }
        v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        ve = eol;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (const char *q = v; q < ve; q++) {
            if (*q == '\n' || *q == '\0') {
                *out_err = "bad character in header value";
                return HTTP_BAD;
            }
        }
        h = &req->headers[req->num_headers++];
        h->name = line;
        h->name_len = (size_t) (colon - line);
        h->value = v;
        h->value_len = (size_t) (ve - v);

        if (token_eq(h->name, h->name_len, "content-length")) {
            long long cl = 0;
            if (h->value_len == 0 || h->value_len > 12) {
                *out_err = "bad Content-Length";
                return HTTP_BAD;
            }
            for (size_t k = 0; k < h->value_len; k++) {
                if (!isdigit((unsigned char) h->value[k])) {
                    *out_err = "bad Content-Length";
                    return HTTP_BAD;
                }
                cl = cl * 10 + (h->value[k] - '0');
            }
            if (req->content_length >= 0 && req->content_length != cl) {
                *out_err = "conflicting Content-Length";
                return HTTP_BAD;
            }
            req->content_length = cl;
        } else if (token_eq(h->name, h->name_len, "transfer-encoding")) {
            if (!te_is_chunked(h->value, h->value_len)) {
                *out_status = 501;
                *out_err = "Transfer-Encoding without chunked last";
                return HTTP_BAD;
            }
            req->chunked = 1;
        } else if (token_eq(h->name, h->name_len, "connection")) {
            if (list_has(h->value, h->value_len, "close"))
                req->conn_close = 1;
            if (list_has(h->value, h->value_len, "keep-alive"))
                req->conn_keep_alive = 1;
        }
        line = eol + 2;
    }
    if (req->chunked && req->content_length >= 0) {
        /* RFC 9112 6.3: a smuggling signal; refuse it. */
        *out_err = "both Transfer-Encoding and Content-Length";
        return HTTP_BAD;
    }
    if (req->content_length > MAX_BODY) {
        *out_status = 413;
        *out_err = "body larger than 16 MiB";
        return HTTP_BAD;
    }

    if (req->chunked) {
        size_t consumed = 0, need = 0;
        enum http_parse_result r = parse_chunked(
            p + req->head_len, len - req->head_len, &consumed, &req->body_len, &need, out_err);
        if (r == HTTP_NEED_MORE && need > 0)
            *out_need = req->head_len + need;
        if (r != HTTP_DONE)
            return r;
        req->total_len = req->head_len + consumed;
    } else {
        size_t cl = req->content_length > 0 ? (size_t) req->content_length : 0;
        if (len - req->head_len < cl) {
            *out_need = req->head_len + cl;
            return HTTP_NEED_MORE;
        }
        req->body_len = cl;
        req->total_len = req->head_len + cl;
    }
    return HTTP_DONE;
}

static void
log_request(struct backend_conn *c, const struct http_request *req, int status, const char *err)
{
    struct uc_json *jw = backend_log_begin(&c->srv->log, "request", c->id);

    uc_json_key(jw, "req");
    uc_json_int(jw, (long long) c->num_requests);
    uc_json_key(jw, "method");
    if (req->method)
        uc_json_strn(jw, req->method, req->method_len);
    else
        uc_json_null(jw);
    uc_json_key(jw, "path");
    if (req->target)
        uc_json_strn(jw, req->target, req->target_len);
    else
        uc_json_null(jw);
    uc_json_key(jw, "version");
    if (req->version)
        uc_json_strn(jw, req->version, req->version_len);
    else
        uc_json_null(jw);
    uc_json_key(jw, "headers");
    uc_json_arr_begin(jw);
    for (size_t i = 0; i < req->num_headers; i++) {
        uc_json_arr_begin(jw);
        uc_json_strn(jw, req->headers[i].name, req->headers[i].name_len);
        uc_json_strn(jw, req->headers[i].value, req->headers[i].value_len);
        uc_json_arr_end(jw);
    }
    uc_json_arr_end(jw);
    uc_json_key(jw, "body_len");
    uc_json_int(jw, (long long) req->body_len);
    uc_json_key(jw, "status");
    uc_json_int(jw, status);
    if (err != NULL) {
        uc_json_key(jw, "error");
        uc_json_str(jw, err);
    }
    backend_log_end(&c->srv->log);
}

static const char *
status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 413:
        return "Content Too Large";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

/* Appends one response to c->out (or c->slow), as the faults say. */
static void
respond(struct backend_conn *c, int status, int head_only, int conn_close)
{
    const struct backend_config *cfg = c->srv->cfg;
    uint64_t faults = cfg->faults;
    struct evbuffer *dst = (faults & BACKEND_FAULT_SLOW_RESPONSE) ? c->slow : c->out;
    char body[256];
    int body_len;
    long announced;
    size_t start = evbuffer_get_length(dst), body_start;

    if (status == 200)
        body_len = snprintf(
            body, sizeof(body), "backend=%s conn=%lu req=%lu\n", cfg->name, c->id, c->num_requests);
    else
        body_len = snprintf(body, sizeof(body), "%d %s\n", status, status_text(status));
    announced = body_len;
    if (status == 200 && (faults & BACKEND_FAULT_TRUNCATE_BODY))
        announced = 1000;

    evbuffer_add_printf(dst,
        "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %ld\r\n"
        "X-Uptls-Backend: %s\r\nX-Uptls-Conn: %lu\r\n",
        status, status_text(status), announced, cfg->name, c->id);
    if (status == 200 && (faults & BACKEND_FAULT_HUGE_HEADERS)) {
        char filler[1001];
        memset(filler, 'x', 1000);
        filler[1000] = '\0';
        for (int i = 0; i < HUGE_HEADER_FILLER; i++)
            evbuffer_add_printf(dst, "X-Uptls-Filler-%d: %s\r\n", i, filler);
    }
    if (conn_close)
        evbuffer_add_printf(dst, "Connection: close\r\n");
    evbuffer_add(dst, "\r\n", 2);
    body_start = evbuffer_get_length(dst);
    if (status == 200 && dst == c->out && !head_only)
        backend_fault_tls_arm(c, start, body_start, (size_t) body_len);

    if (status == 200 && (faults & BACKEND_FAULT_RESET_AFTER_HEADERS)) {
        c->closing = 1;
        c->close_mode = CLOSE_RESET;
        c->close_reason = "fault reset-after-headers";
    } else if (status == 200 && (faults & BACKEND_FAULT_TRUNCATE_BODY)) {
        char part[100];
        memset(part, 'x', sizeof(part));
        if (!head_only)
            evbuffer_add(dst, part, sizeof(part));
        c->closing = 1;
        c->close_mode = CLOSE_DIRTY;
        c->close_reason = "fault truncate-body";
    } else {
        if (!head_only)
            evbuffer_add(dst, body, (size_t) body_len);
        if (conn_close) {
            c->closing = 1;
            c->close_mode = CLOSE_CLEAN;
        }
    }
    if (dst == c->slow)
        backend_conn_start_slow(c);
}

void
backend_http_process(struct backend_conn *c)
{
    while (!c->closing && evbuffer_get_length(c->in) > 0
        && evbuffer_get_length(c->in) >= c->http_need) {
        size_t len = evbuffer_get_length(c->in);
        const char *p = (const char *) evbuffer_pullup(c->in, -1);
        struct http_request req;
        const char *err = NULL;
        int status = 400;
        enum http_parse_result r;
        size_t need = 0;
        int conn_close;

        /* RFC 9112 2.2: skip empty lines before a request line. */
        if (p[0] == '\r' || p[0] == '\n') {
            size_t k = 0;
            while (k < len && (p[k] == '\r' || p[k] == '\n'))
                k++;
            evbuffer_drain(c->in, k);
            c->http_need = 0;
            continue;
        }
        /* Parsing restarts from the request line each time; need says how
         * much must have arrived before that can make progress (a large
         * body is then not re-copied on every read). */
        r = backend_http_parse_request(p, len, &req, &status, &need, &err);
        if (r == HTTP_NEED_MORE) {
            c->http_need = need;
            return;
        }
        c->http_need = 0;
        c->num_requests++;
        if (r == HTTP_BAD) {
            log_request(c, &req, status, err);
            c->close_reason = "bad_request";
            respond(c, status, 0, 1);
            c->closing = 1;
            c->close_mode = CLOSE_CLEAN;
            evbuffer_drain(c->in, len);
            return;
        }
        log_request(c, &req, 200, NULL);
        conn_close = req.conn_close || c->srv->cfg->close_after_response
            || (req.version[7] == '0' && !req.conn_keep_alive);
        if (conn_close)
            c->close_reason = "server_close";
        respond(c, 200, token_eq(req.method, req.method_len, "HEAD"), conn_close);
        evbuffer_drain(c->in, req.total_len);
    }
}
