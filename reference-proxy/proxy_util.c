/* Small helpers shared by the proxy's files. Allocation failure is fatal
 * for a proxy that preallocates nothing; it aborts rather than limp on. */
#include "proxy.h"

#include "../harness/common/uc_net.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void *
proxy_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (p == NULL) {
        abort();
    }
    return p;
}

char *
proxy_xstrdup(const char *s)
{
    return proxy_xstrndup(s, strlen(s));
}

char *
proxy_xstrndup(const char *s, size_t n)
{
    char *p = proxy_xcalloc(1, n + 1);

    memcpy(p, s, n);
    return p;
}

char *
proxy_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *p = NULL;

    va_start(ap, fmt);
    if (vasprintf(&p, fmt, ap) < 0) {
        abort();
    }
    va_end(ap);
    return p;
}

void
proxy_keyval_list_add(struct proxy_keyval_list *l, const char *k, const char *v)
{
    struct proxy_keyval *items;

    items = realloc(l->items, (l->num + 1) * sizeof(*items));
    if (items == NULL) {
        abort();
    }
    l->items = items;
    l->items[l->num].key = proxy_xstrdup(k);
    l->items[l->num].value = proxy_xstrdup(v);
    l->num++;
}

void
proxy_keyval_list_free(struct proxy_keyval_list *l)
{
    size_t i;

    if (l == NULL) {
        return;
    }
    for (i = 0; i < l->num; i++) {
        free(l->items[i].key);
        free(l->items[i].value);
    }
    free(l->items);
    free(l);
}

long long
proxy_time_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An IPv4 or IPv6 literal, with or without brackets. nginx never sends such
 * a name as SNI (RFC 6066 section 3 forbids literal addresses). */
int
proxy_addr_is_ip_literal(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];
    char tmp[64];
    size_t n = strlen(name);

    if (inet_pton(AF_INET, name, buf) == 1) {
        return 1;
    }
    if (n >= 2 && name[0] == '[' && name[n - 1] == ']' && n - 2 < sizeof(tmp)) {
        memcpy(tmp, name + 1, n - 2);
        tmp[n - 2] = '\0';
        name = tmp;
    }
    return inet_pton(AF_INET6, name, buf) == 1;
}

void
proxy_sockaddr_text(const struct sockaddr *sa, char *out, size_t out_len, int with_port)
{
    char host[INET6_ADDRSTRLEN];
    int port;

    if (uc_sockaddr_host_port(sa, host, sizeof(host), &port) != 0) {
        snprintf(out, out_len, "unix:");
    } else if (!with_port) {
        snprintf(out, out_len, "%s", host);
    } else {
        snprintf(out, out_len, sa->sa_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
    }
}
