/*
 * Routing (nginx's ngx_http_core_module.c and ngx_http_find_virtual_server):
 * the server block of a request by its Host, the location by its URI, and
 * the location's content: return, or proxy_pass to its upstream.
 */
#include "proxy_upstream.h"

#include <string.h>
#include <strings.h>

/* ---- routing ------------------------------------------------------------------------------ */

static int
proxy_server_name_match(const char *pattern, const char *host)
{
    size_t pl, hl;

    if (strcasecmp(pattern, host) == 0) {
        return 1;
    }
    pl = strlen(pattern);
    hl = strlen(host);
    if (pattern[0] == '*' && pattern[1] == '.' && hl > pl - 1) {
        return strcasecmp(host + hl - (pl - 1), pattern + 1) == 0;
    }
    if (pattern[0] == '.'
        && (strcasecmp(pattern + 1, host) == 0
            || (hl > pl && strcasecmp(host + hl - pl, pattern) == 0))) {
        return 1;
    }
    return 0;
}

struct proxy_server *
proxy_route_server(struct proxy_worker *w, struct proxy_listen *l, const char *host)
{
    struct proxy_server *s, *first = NULL, *def = NULL;
    size_t i, j;

    for (s = w->conf->servers; s; s = s->next) {
        for (i = 0; i < s->num_listens; i++) {
            if (s->listens[i] != l) {
                continue;
            }
            if (first == NULL) {
                first = s;
            }
            if (s->default_server[i] && def == NULL) {
                def = s;
            }
            for (j = 0; host && j < s->num_names; j++) {
                if (proxy_server_name_match(s->names[j], host)) {
                    return s;
                }
            }
        }
    }
    return def ? def : first;
}

/* "=" exact locations first, then the longest matching prefix. */
struct proxy_loc_conf *
proxy_route_location(struct proxy_server *s, const char *uri)
{
    struct proxy_loc_conf *best = NULL;
    size_t i, len, path_len = strcspn(uri, "?");

    for (i = 0; i < s->num_locs; i++) {
        struct proxy_loc_conf *lc = s->locs[i];

        len = strlen(lc->prefix);
        if (lc->exact) {
            if (len == path_len && strncmp(uri, lc->prefix, len) == 0) {
                return lc;
            }
            continue;
        }
        if (len <= path_len && strncmp(uri, lc->prefix, len) == 0
            && (best == NULL || len > strlen(best->prefix))) {
            best = lc;
        }
    }
    return best;
}

void
proxy_request_dispatch(struct proxy_client *c)
{
    struct proxy_loc_conf *lc = c->req.loc;
    size_t plen;

    /* the client stays readable (no epoll_ctl per request): what it sends
     * now waits in the input buffer, bounded by the read watermark, and its
     * EOF aborts the request as nginx's check_broken_connection does */
    c->state = PROXY_C_UPSTREAM;
    if (lc == NULL) {
        if (c->req.server->conf->return_code != PROXY_UNSET) {
            struct proxy_loc_conf *sc = c->req.server->conf;

            proxy_client_respond(c, sc->return_code,
                sc->return_code / 100 == 3 ? sc->return_text : NULL,
                sc->return_code / 100 == 3 ? NULL : sc->return_text);
            return;
        }
        proxy_client_respond(c, 404, NULL, NULL);
        return;
    }
    if (lc->return_code != PROXY_UNSET) {
        int redirect = lc->return_code / 100 == 3 && lc->return_code != 304;

        proxy_client_respond(c, lc->return_code, redirect ? lc->return_text : NULL,
            redirect ? NULL : lc->return_text);
        return;
    }
    if (lc->pass_url == NULL) {
        proxy_client_respond(c, 404, NULL, NULL);
        return;
    }
    /* proxy_pass with a URI part replaces the matched location prefix */
    if (lc->pass_uri) {
        plen = strlen(lc->prefix);
        c->req.upstream_uri = proxy_xasprintf("%s%s", lc->pass_uri, c->req.uri + plen);
    } else {
        c->req.upstream_uri = proxy_xstrdup(c->req.uri);
    }
    c->req.fail_status = 502;
    proxy_upstream_next(c);
}
