/*
 * HTTP/1.x parsing of uptls-proxy, as nginx's ngx_http_parse.c: pure
 * functions over one line or one buffer, for client requests and upstream
 * responses alike (header field ids and lists, tokens in a field value,
 * line checks, the header field line, the chunked transfer coding). Nothing
 * here knows a connection.
 */
#include "proxy_http_parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int
proxy_hid_of(const char *k, size_t n)
{
    static const struct {
        const char *name;
        size_t len;
        int id;
    } known[] = {
        { "Host", 4, PROXY_H_HOST },
        { "Connection", 10, PROXY_H_CONNECTION },
        { "Keep-Alive", 10, PROXY_H_KEEP_ALIVE },
        { "Transfer-Encoding", 17, PROXY_H_TRANSFER_ENCODING },
        { "Content-Length", 14, PROXY_H_CONTENT_LENGTH },
        { "TE", 2, PROXY_H_TE },
        { "Expect", 6, PROXY_H_EXPECT },
        { "Upgrade", 7, PROXY_H_UPGRADE },
        { "Proxy-Connection", 16, PROXY_H_PROXY_CONNECTION },
        { "Trailer", 7, PROXY_H_TRAILER },
        { "Date", 4, PROXY_H_DATE },
        { "Server", 6, PROXY_H_SERVER },
        { "X-Accel-Redirect", 16, PROXY_H_X_ACCEL },
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
const char *
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

const char *
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
void
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

void
proxy_hdr_clear(struct proxy_hdr_list *l)
{
    size_t i;

    for (i = 0; i < l->num; i++) {
        free(l->items[i].key);
    }
    l->num = 0;
}

void
proxy_hdr_free(struct proxy_hdr_list *l)
{
    proxy_hdr_clear(l);
    free(l->items);
    l->items = NULL;
    l->cap = 0;
}

/* Does a comma-separated header value contain the token? */
int
proxy_header_has_token(const char *value, const char *token)
{
    size_t n = strlen(token);
    const char *p = value;

    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }
        if (strncasecmp(p, token, n) == 0
            && (p[n] == '\0' || p[n] == ',' || p[n] == ' ' || p[n] == '\t' || p[n] == ';')) {
            return 1;
        }
        p = strchr(p, ',');
    }
    return 0;
}

/* A request or response line (CRLF or LF already removed) with a bare CR or
 * a NUL: RFC 9112 2.2 and RFC 9110 5.5 say reject it (or replace them with
 * SP) rather than forward it; another parser may take a bare CR for a line
 * end (header injection, response splitting), and a NUL would cut the C
 * string the field is kept in. nginx answers 400 / 502 "invalid header". */
int
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
int
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
char *
proxy_readln(struct evbuffer *in, size_t *n_out)
{
    struct evbuffer_iovec v[4];
    int i, nv = evbuffer_peek(in, -1, NULL, v, 4); /* at most 4 */
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
        return off < evbuffer_get_length(in) ? evbuffer_readln(in, n_out, EVBUFFER_EOL_CRLF) : NULL;
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
int
proxy_chunked_parse(struct proxy_chunked *ch, struct evbuffer *in, struct evbuffer *out)
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
