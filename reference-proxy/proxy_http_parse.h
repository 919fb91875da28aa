/*
 * HTTP/1.x parsing of uptls-proxy (proxy_http_parse.c, as nginx's
 * ngx_http_parse.c): header field ids and lists, the chunked transfer
 * coding, line checks; and proxy_out, the head writer shared by both
 * directions (inline: it runs for every field of every head).
 */
#ifndef PROXY_HTTP_PARSE_H
#define PROXY_HTTP_PARSE_H

#include <stddef.h>
#include <string.h>

#include <event2/buffer.h>

enum proxy_chunk_state {
    PROXY_CHUNK_SIZE,
    PROXY_CHUNK_DATA,
    PROXY_CHUNK_CRLF,
    PROXY_CHUNK_TRAILER,
    PROXY_CHUNK_DONE
};

struct proxy_chunked {
    int state;
    long long size;
};

/* Header fields the proxy acts on, recognised once when a line is parsed
 * so that later look-ups and filters compare integers, not names. */
enum proxy_hid {
    PROXY_H_OTHER = 0,
    PROXY_H_HOST,
    PROXY_H_CONNECTION,
    PROXY_H_KEEP_ALIVE,
    PROXY_H_TRANSFER_ENCODING,
    PROXY_H_CONTENT_LENGTH,
    PROXY_H_TE,
    PROXY_H_EXPECT,
    PROXY_H_UPGRADE,
    PROXY_H_PROXY_CONNECTION,
    PROXY_H_TRAILER,
    PROXY_H_DATE,
    PROXY_H_SERVER,
    PROXY_H_X_ACCEL,
    PROXY_H_X_FORWARDED_FOR
};

#define PROXY_HBIT(id) (1u << (id))
/* hop-by-hop fields never forwarded from the client (nginx's defaults) */
#define PROXY_HOP_REQUEST \
    (PROXY_HBIT(PROXY_H_CONNECTION) | PROXY_HBIT(PROXY_H_KEEP_ALIVE) \
        | PROXY_HBIT(PROXY_H_TRANSFER_ENCODING) | PROXY_HBIT(PROXY_H_CONTENT_LENGTH) \
        | PROXY_HBIT(PROXY_H_TE) | PROXY_HBIT(PROXY_H_EXPECT) | PROXY_HBIT(PROXY_H_UPGRADE) \
        | PROXY_HBIT(PROXY_H_PROXY_CONNECTION))
/* upstream fields not passed to the client (hop-by-hop, replaced, X-Accel-*) */
#define PROXY_HOP_RESPONSE \
    (PROXY_HBIT(PROXY_H_CONNECTION) | PROXY_HBIT(PROXY_H_KEEP_ALIVE) \
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


struct proxy_out {
    struct evbuffer *ev;
    size_t n;
    char b[4096];
};

static inline void
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

static inline void
proxy_out_str(struct proxy_out *o, const char *s)
{
    proxy_out_add(o, s, strlen(s));
}

static inline void
proxy_out_field(struct proxy_out *o, const char *k, size_t klen, const char *v, size_t vlen)
{
    proxy_out_add(o, k, klen);
    proxy_out_add(o, ": ", 2);
    proxy_out_add(o, v, vlen);
    proxy_out_add(o, "\r\n", 2);
}

static inline void
proxy_out_flush(struct proxy_out *o)
{
    if (o->n) {
        evbuffer_add(o->ev, o->b, o->n);
        o->n = 0;
    }
}

int proxy_hid_of(const char *k, size_t n);
const char *proxy_hdr_get(const struct proxy_hdr_list *l, int id);
const char *proxy_hdr_get_name(const struct proxy_hdr_list *l, const char *name);
void proxy_hdr_add(struct proxy_hdr_list *l, char *key, char *value);
void proxy_hdr_clear(struct proxy_hdr_list *l);
void proxy_hdr_free(struct proxy_hdr_list *l);
int proxy_header_has_token(const char *value, const char *token);
int proxy_line_bad(const char *line, size_t n);
int proxy_header_line_parse(char *line, size_t n, char **name, char **value);
char *proxy_readln(struct evbuffer *in, size_t *n_out);
int proxy_chunked_parse(struct proxy_chunked *ch, struct evbuffer *in, struct evbuffer *out);

#endif
