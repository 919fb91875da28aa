/*
 * Upstream keepalive (nginx's ngx_http_upstream_keepalive_module.c): idle
 * upstream connections cached per upstream block, taken again by a request
 * to the same server with the same TLS settings, and dropped when the
 * server sends anything or closes while idle.
 */
#include "proxy_upstream.h"
#include "proxy_conf_file.h"

#include <string.h>

static void
proxy_upstream_keepalive_remove(struct proxy_upstream_conn *u)
{
    struct proxy_upstream_conn **pp;

    for (pp = &u->ups->idle; *pp; pp = &(*pp)->next) {
        if (*pp == u) {
            *pp = u->next;
            u->ups->num_idle--;
            break;
        }
    }
    u->next = NULL;
}

static void
proxy_upstream_keepalive_read_cb(struct bufferevent *bev, void *arg)
{
    struct proxy_upstream_conn *u = arg;

    /* an idle connection must not send anything: drop it */
    proxy_upstream_keepalive_remove(u);
    proxy_upstream_conn_free(u);
}

static void
proxy_upstream_keepalive_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct proxy_upstream_conn *u = arg;

    proxy_upstream_keepalive_remove(u);
    proxy_upstream_conn_free(u);
}

/* Upstream keepalive: caches an idle connection, at most `keepalive N` per
 * upstream block, the oldest dropped first. The key also holds the
 * location's TLS settings, so a connection made with one client identity,
 * trust store or name is never handed to a location with different ones
 * (nginx keys by upstream server only). */
void
proxy_upstream_keepalive_put(struct proxy_upstream_conn *u)
{
    struct proxy_upstream *ups = u->ups;
    struct proxy_upstream_conn **pp;

    u->client = NULL;
    u->next = ups->idle;
    ups->idle = u;
    ups->num_idle++;
    if (ups->num_idle > ups->keepalive) {
        for (pp = &ups->idle; (*pp)->next; pp = &(*pp)->next) {
        }
        struct proxy_upstream_conn *old = *pp;

        *pp = NULL;
        ups->num_idle--;
        proxy_upstream_conn_free(old);
    }
    bufferevent_setcb(
        u->bev, proxy_upstream_keepalive_read_cb, NULL, proxy_upstream_keepalive_event_cb, u);
    /* the write timeout stays: no write is pending on an idle connection */
    proxy_upstream_conn_timeouts(u, PROXY_UPSTREAM_IDLE_TIMEOUT, u->write_ms);
    bufferevent_enable(u->bev, EV_READ);
}

struct proxy_upstream_conn *
proxy_upstream_keepalive_take(struct proxy_upstream *ups, size_t peer_idx, const char *key)
{
    struct proxy_upstream_conn *u;

    for (u = ups->idle; u; u = u->next) {
        if (u->peer_idx == peer_idx && (u->key == key || strcmp(u->key, key) == 0)) {
            proxy_upstream_keepalive_remove(u);
            return u;
        }
    }
    return NULL;
}

void
proxy_upstream_keepalive_drop_all(struct proxy_worker *w)
{
    struct proxy_upstream *u;
    struct proxy_upstream_conn *c, *n;

    for (u = w->conf->upstreams; u; u = u->next) {
        for (c = u->idle; c; c = n) {
            n = c->next;
            proxy_upstream_conn_free(c);
        }
        u->idle = NULL;
        u->num_idle = 0;
    }
}

/* ---- configuration: keepalive N (the idle connections cached per upstream block) -- */

static int
proxy_upstream_keepalive_set(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    struct proxy_upstream *u = conf;

    if (u->keepalive) {
        proxy_conf_error(p, "\"keepalive\" directive is duplicate");
        return -1;
    }
    if (proxy_conf_parse_int(args[1], &u->keepalive) != 0 || u->keepalive < 1) {
        u->keepalive = 0;
        proxy_conf_error(p, "invalid value \"%s\" in \"%s\" directive", args[1], cmd->name);
        return -1;
    }
    return 0;
}

static const struct proxy_cmd proxy_upstream_keepalive_commands[] = {
    { "keepalive", PROXY_CTX_UPS, 1, 1, 0, proxy_upstream_keepalive_set, 0 },
};

const struct proxy_conf_module proxy_upstream_keepalive_module = { "upstream_keepalive",
    PROXY_CONF_CMDS(proxy_upstream_keepalive_commands), NULL, NULL };
