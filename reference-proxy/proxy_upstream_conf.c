/*
 * The upstream directives (nginx's ngx_http_upstream.c at configuration
 * time): upstream blocks and their servers, resolved at start as nginx
 * does, and the link of each proxy_pass to its upstream (an implicit one
 * per host:port, as ngx_http_upstream_add()).
 */
#include "proxy_conf_file.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Resolves "host:port" / "[v6]:port" / "host" (default port) with
 * getaddrinfo, as nginx does at start; every address becomes a peer. */
int
proxy_conf_resolve(const char *spec, int default_port, struct proxy_peer **peers, size_t *num_peers,
    char *host_out, size_t host_len, int *port_out, char *err, size_t err_len)
{
    char host[256], port[16];
    const char *colon;
    struct addrinfo hints, *res = NULL, *ai;
    int rc, p;

    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');

        if (close == NULL || (size_t) (close - spec) >= sizeof(host)) {
            snprintf(err, err_len, "invalid host in \"%s\"", spec);
            return -1;
        }
        snprintf(host, sizeof(host), "%.*s", (int) (close - spec - 1), spec + 1);
        colon = close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = strrchr(spec, ':');
        snprintf(host, sizeof(host), "%.*s", (int) (colon ? (size_t) (colon - spec) : strlen(spec)),
            spec);
    }
    p = default_port;
    if (colon) {
        if (proxy_conf_parse_int(colon + 1, &p) != 0 || p < 1 || p > 65535) {
            snprintf(err, err_len, "invalid port in \"%s\"", spec);
            return -1;
        }
    }
    if (port_out) {
        *port_out = colon ? p : 0;
    }
    if (host_out) {
        snprintf(host_out, host_len, "%s", host);
    }
    if (peers == NULL) {
        return 0;
    }
    snprintf(port, sizeof(port), "%d", p);
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = AF_UNSPEC;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, err_len, "host not found in upstream \"%s\"", spec);
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        struct proxy_peer *pp = realloc(*peers, (*num_peers + 1) * sizeof(**peers));

        if (pp == NULL) {
            abort();
        }
        *peers = pp;
        pp = &(*peers)[(*num_peers)++];
        memset(pp, 0, sizeof(*pp));
        snprintf(pp->name, sizeof(pp->name), "%s", spec);
        memcpy(&pp->addr, ai->ai_addr, ai->ai_addrlen);
        pp->addr_len = ai->ai_addrlen;
        proxy_sockaddr_text(ai->ai_addr, pp->addr_text, sizeof(pp->addr_text), 1);
        pp->weight = 1;
        pp->max_fails = 1;
        pp->fail_timeout_ms = 10000;
    }
    freeaddrinfo(res);
    return 0;
}

static int
proxy_conf_set_upstream_block(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    struct proxy_upstream *u, **tail;
    int rc;

    for (u = p->conf->upstreams; u; u = u->next) {
        if (!u->implicit && strcasecmp(u->name, args[1]) == 0) {
            proxy_conf_error(p, "duplicate upstream \"%s\"", args[1]);
        }
    }
    u = proxy_xcalloc(1, sizeof(*u));
    u->name = proxy_xstrdup(args[1]);
    u->file = p->file;
    u->line = p->line;
    for (tail = &p->conf->upstreams; *tail; tail = &(*tail)->next) {
    }
    *tail = u;
    rc = proxy_conf_parse_block(p, PROXY_CTX_UPS, u, 0);
    if (rc == 0 && u->num_peers == 0) {
        proxy_conf_error(p, "no servers are inside upstream");
    }
    return rc == 0 ? 0 : -2;
}

/* upstream { server ADDR [weight=N] [max_fails=N] [fail_timeout=T]; } */
static int
proxy_conf_set_upstream_server(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    struct proxy_upstream *u = conf;
    char msg[512];
    size_t first = u->num_peers, i;
    int weight = 1, max_fails = 1, a;
    long fail_timeout = 10000;

    for (a = 2; a < nargs; a++) {
        if (strncmp(args[a], "weight=", 7) == 0) {
            if (proxy_conf_parse_int(args[a] + 7, &weight) != 0 || weight < 1) {
                goto invalid;
            }
        } else if (strncmp(args[a], "max_fails=", 10) == 0) {
            if (proxy_conf_parse_int(args[a] + 10, &max_fails) != 0) {
                goto invalid;
            }
        } else if (strncmp(args[a], "fail_timeout=", 13) == 0) {
            fail_timeout = proxy_conf_parse_msec(args[a] + 13);
            if (fail_timeout < 0) {
                goto invalid;
            }
        } else {
            goto invalid;
        }
    }
    if (proxy_conf_resolve(args[1], 80, &u->peers, &u->num_peers, NULL, 0, NULL, msg, sizeof(msg))
        != 0) {
        proxy_conf_error(p, "%s", msg);
        return -1;
    }
    for (i = first; i < u->num_peers; i++) {
        u->peers[i].weight = weight;
        u->peers[i].max_fails = max_fails;
        u->peers[i].fail_timeout_ms = fail_timeout;
    }
    return 0;

invalid:
    proxy_conf_error(p, "invalid parameter \"%s\"", args[a]);
    return -1;
}

int
proxy_conf_link_upstream(struct proxy_conf_parser *p, struct proxy_loc_conf *lc)
{
    struct proxy_upstream *u, **tail;
    char msg[512], spec[300];

    for (u = p->conf->upstreams; u; u = u->next) {
        if (u->implicit || strcasecmp(u->name, lc->pass_host) != 0) {
            continue;
        }
        if (lc->pass_port) {
            proxy_conf_post_error(p, lc->pass_file, lc->pass_line,
                "upstream \"%s\" may not have port %d", u->name, lc->pass_port);
            return -1;
        }
        lc->upstream = u;
        lc->proxy_host = proxy_xstrdup(u->name);
        return 0;
    }
    /* an implicit upstream per distinct host:port, as nginx's
     * ngx_http_upstream_add() */
    int port = lc->pass_port ? lc->pass_port : lc->pass_ssl ? 443 : 80;

    for (u = p->conf->upstreams; u; u = u->next) {
        if (u->implicit && u->port == port && strcasecmp(u->name, lc->pass_host) == 0) {
            break;
        }
    }
    if (u == NULL) {
        u = proxy_xcalloc(1, sizeof(*u));
        u->implicit = 1;
        u->port = port;
        u->name = proxy_xstrdup(lc->pass_host);
        u->file = lc->pass_file;
        u->line = lc->pass_line;
        if (strchr(lc->pass_host, ':')) {
            snprintf(spec, sizeof(spec), "[%s]:%d", lc->pass_host, port);
        } else {
            snprintf(spec, sizeof(spec), "%s:%d", lc->pass_host, port);
        }
        if (proxy_conf_resolve(
                spec, port, &u->peers, &u->num_peers, NULL, 0, NULL, msg, sizeof(msg))
            != 0) {
            proxy_conf_post_error(p, lc->pass_file, lc->pass_line, "%s", msg);
            free(u->name);
            free(u);
            return -1;
        }
        for (tail = &p->conf->upstreams; *tail; tail = &(*tail)->next) {
        }
        *tail = u;
    }
    lc->upstream = u;
    /* $proxy_host: host, plus ":port" when it is not the scheme's default */
    if (lc->pass_port && lc->pass_port != (lc->pass_ssl ? 443 : 80)) {
        lc->proxy_host = strchr(lc->pass_host, ':')
            ? proxy_xasprintf("[%s]:%d", lc->pass_host, lc->pass_port)
            : proxy_xasprintf("%s:%d", lc->pass_host, lc->pass_port);
    } else {
        lc->proxy_host = strchr(lc->pass_host, ':') ? proxy_xasprintf("[%s]", lc->pass_host)
                                                    : proxy_xstrdup(lc->pass_host);
    }
    return 0;
}

static const struct proxy_cmd proxy_upstream_conf_commands[] = {
    { "upstream", PROXY_CTX_HTTP, 1, 1, 1, proxy_conf_set_upstream_block, 0 },
    { "server", PROXY_CTX_UPS, 1, 8, 0, proxy_conf_set_upstream_server, 0 },
};

const struct proxy_conf_module proxy_upstream_conf_module = { "upstream",
    PROXY_CONF_CMDS(proxy_upstream_conf_commands), NULL, NULL };
