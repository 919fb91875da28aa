/*
 * Variables in proxy_set_header values (nginx's ngx_http_variables.c):
 * $host, $proxy_host, $remote_addr, $http_NAME and the others uptls-proxy
 * knows; an unknown one expands to nothing.
 */
#include "proxy_http.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- variables in proxy_set_header values -------------------------------------------------- */

static char *
proxy_var_value(struct proxy_client *c, const char *name)
{
    const char *v;

    if (strcmp(name, "host") == 0) {
        return proxy_xstrdup(c->req.host                    ? c->req.host
                : c->req.server && c->req.server->num_names ? c->req.server->names[0]
                                                            : "");
    }
    if (strcmp(name, "proxy_host") == 0) {
        return proxy_xstrdup(c->req.loc->proxy_host);
    }
    if (strcmp(name, "remote_addr") == 0) {
        return proxy_xstrdup(c->addr);
    }
    if (strcmp(name, "remote_port") == 0) {
        return proxy_xstrdup(c->port);
    }
    if (strcmp(name, "proxy_add_x_forwarded_for") == 0) {
        v = proxy_hdr_get(&c->req.hdrs, PROXY_H_X_FORWARDED_FOR);
        return v ? proxy_xasprintf("%s, %s", v, c->addr) : proxy_xstrdup(c->addr);
    }
    if (strcmp(name, "scheme") == 0) {
        return proxy_xstrdup("http");
    }
    if (strcmp(name, "request_uri") == 0) {
        return proxy_xstrdup(c->req.uri);
    }
    if (strcmp(name, "uri") == 0) {
        return proxy_xstrndup(c->req.uri, strcspn(c->req.uri, "?"));
    }
    if (strcmp(name, "request_method") == 0) {
        return proxy_xstrdup(c->req.method);
    }
    if (strcmp(name, "server_name") == 0) {
        return proxy_xstrdup(
            c->req.server && c->req.server->num_names ? c->req.server->names[0] : "");
    }
    if (strcmp(name, "server_port") == 0 || strcmp(name, "server_addr") == 0) {
        const char *t = c->listen->text, *colon = strrchr(t, ':');

        return strcmp(name, "server_port") == 0
            ? proxy_xstrdup(colon ? colon + 1 : "")
            : proxy_xstrndup(t, colon ? (size_t) (colon - t) : strlen(t));
    }
    if (strcmp(name, "proxy_port") == 0) {
        return proxy_xasprintf("%d",
            c->req.loc->pass_port      ? c->req.loc->pass_port
                : c->req.loc->pass_ssl ? 443
                                       : 80);
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
        v = proxy_hdr_get_name(&c->req.hdrs, hname);
        return proxy_xstrdup(v ? v : "");
    }
    return proxy_xstrdup("");
}

char *
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
