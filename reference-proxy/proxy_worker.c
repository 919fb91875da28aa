/*
 * One worker process (nginx's ngx_worker_process_cycle): its event loop,
 * its listeners, and the signals that stop it (SIGQUIT gracefully: no new
 * connection, requests in progress finished).
 */
#include "proxy_upstream.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <event2/listener.h>

/* ---- the worker ------------------------------------------------------------------------------ */

static void
proxy_worker_stop_listening(struct proxy_worker *w)
{
    size_t i;

    for (i = 0; i < w->num_listeners; i++) {
        if (w->listeners[i]) {
            evconnlistener_free(w->listeners[i]);
            w->listeners[i] = NULL;
        }
    }
}

static void
proxy_worker_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct proxy_worker *w = arg;
    struct proxy_client *c, *n;

    if (sig != SIGQUIT) {
        event_base_loopbreak(w->base);
        return;
    }
    /* graceful: stop accepting, finish requests in progress */
    proxy_log_error(PROXY_LOG_NOTICE, 0, "gracefully shutting down");
    w->quitting = 1;
    proxy_worker_stop_listening(w);
    proxy_upstream_keepalive_drop_all(w);
    for (c = w->clients; c; c = n) {
        n = c->next;
        if (c->state == PROXY_C_HEADERS && !c->req.got_request_line
            && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0) {
            proxy_client_free(c);
        }
    }
    if (w->clients == NULL) {
        event_base_loopexit(w->base, NULL);
    }
}

int
proxy_worker_run(struct proxy_conf *conf, int worker_id, char *err, size_t err_len)
{
    struct proxy_worker w;
    struct event_config *cfg;
    struct proxy_listener_ctx *lctx;
    struct proxy_listen *l;
    size_t i, n = 0;
    int rc = -1;

    memset(&w, 0, sizeof(w));
    w.conf = conf;
    w.next_id = (unsigned long) worker_id * 1000000UL;
    /* epoll's change list: libevent batches the event adds and deletes of
     * one loop iteration into the next epoll_wait() (an add and a delete of
     * the same event cancel out) instead of one epoll_ctl() each; safe as
     * no descriptor here is ever dup()ed */
    cfg = event_config_new();
    if (cfg) {
        event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        w.base = event_base_new_with_config(cfg);
        event_config_free(cfg);
    }
    if (w.base == NULL) {
        w.base = event_base_new();
    }
    if (w.base == NULL) {
        snprintf(err, err_len, "event_base_new() failed");
        return -1;
    }
    for (l = conf->listens; l; l = l->next) {
        n++;
    }
    w.listeners = proxy_xcalloc(n, sizeof(*w.listeners));
    lctx = proxy_xcalloc(n, sizeof(*lctx));
    for (l = conf->listens, i = 0; l; l = l->next, i++) {
        lctx[i].w = &w;
        lctx[i].listen = l;
        w.listeners[i] = evconnlistener_new(w.base, proxy_worker_accept_cb, &lctx[i],
            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, l->fd);
        if (w.listeners[i] == NULL) {
            snprintf(err, err_len, "evconnlistener_new(%s) failed", l->text);
            goto end;
        }
        l->fd = -1; /* the listener owns it now */
        w.num_listeners++;
    }
    w.sig_term = evsignal_new(w.base, SIGTERM, proxy_worker_signal_cb, &w);
    w.sig_int = evsignal_new(w.base, SIGINT, proxy_worker_signal_cb, &w);
    w.sig_quit = evsignal_new(w.base, SIGQUIT, proxy_worker_signal_cb, &w);
    evsignal_add(w.sig_term, NULL);
    evsignal_add(w.sig_int, NULL);
    evsignal_add(w.sig_quit, NULL);

    event_base_dispatch(w.base);
    rc = 0;

end:
    while (w.clients) {
        proxy_client_free(w.clients);
    }
    proxy_upstream_keepalive_drop_all(&w);
    proxy_worker_stop_listening(&w);
    if (w.sig_term) {
        event_free(w.sig_term);
        event_free(w.sig_int);
        event_free(w.sig_quit);
    }
    free(w.listeners);
    free(lctx);
    event_base_free(w.base);
    proxy_ssl_sessions_free();
    return rc;
}
