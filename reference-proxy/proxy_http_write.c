/*
 * Client output (nginx's ngx_http_write_filter_module.c): written through
 * in the loop iteration that produced it, and back-pressure on the
 * upstream: when the client's output passes PROXY_HIGH_WATER the upstream
 * is not read until it drains to half of it (libevent's
 * sample/le-proxy.c).
 */
#include "proxy_upstream.h"

void
proxy_client_backpressure(struct proxy_client *c)
{
    if (c->up.conn && !c->resp.paused
        && evbuffer_get_length(bufferevent_get_output(c->bev)) >= PROXY_HIGH_WATER) {
        c->resp.paused = 1;
        bufferevent_disable(c->up.conn->bev, EV_READ);
        bufferevent_setwatermark(c->bev, EV_WRITE, PROXY_HIGH_WATER / 2, 0);
    }
}

void
proxy_client_write_cb(struct bufferevent *bev, void *arg)
{
    struct proxy_client *c = arg;
    size_t left = evbuffer_get_length(bufferevent_get_output(bev));

    if (left == 0) {
        /* back to writing through proxy_client_flush_cb() */
        bufferevent_disable(bev, EV_WRITE);
    }
    if (c->state == PROXY_C_CLOSING && left == 0) {
        proxy_client_free(c);
        return;
    }
    if (c->resp.paused && left <= PROXY_HIGH_WATER / 2) {
        c->resp.paused = 0;
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
        if (c->up.conn) {
            bufferevent_enable(c->up.conn->bev, EV_READ);
            /* data already decrypted and buffered is not signalled again */
            if (evbuffer_get_length(bufferevent_get_input(c->up.conn->bev)) > 0) {
                proxy_upstream_read_cb(c->up.conn->bev, c);
            }
        }
    }
}

/*
 * Client output is written through: whatever a callback adds is written by
 * this event, activated on the add and run in the same loop iteration, so
 * a response that fits the socket buffer costs one writev() and no
 * epoll_ctl() (libevent's bufferevent would add the write event, wait for
 * it, write, and delete it: two epoll_ctl() per response). Only what the
 * socket does not take is left to libevent's write event (EV_WRITE enabled
 * until the output drains, then disabled again in proxy_client_write_cb()).
 */
/* Writes what the socket takes now, unless libevent's write event owns
 * the output (EV_WRITE enabled). Calls nothing of ours: the flush event
 * does what follows a write. Returns the bytes left. */
size_t
proxy_client_write_now(struct proxy_client *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    if (!(bufferevent_get_enabled(c->bev) & EV_WRITE) && evbuffer_get_length(out) > 0) {
        /* a socket bufferevent keeps its output's start frozen outside its
         * own write callback, which unfreezes it around the write as here.
         * An error leaves the output in place: libevent's write event
         * meets it again and reports it through proxy_client_event_cb() */
        evbuffer_unfreeze(out, 1);
        (void) evbuffer_write(out, bufferevent_getfd(c->bev));
        evbuffer_freeze(out, 1);
    }
    return evbuffer_get_length(out);
}

void
proxy_client_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_client *c = arg;

    if (bufferevent_get_enabled(c->bev) & EV_WRITE) {
        return;
    }
    if (proxy_client_write_now(c) > 0) {
        bufferevent_enable(c->bev, EV_WRITE);
        return;
    }
    proxy_client_write_cb(c->bev, c);
}

void
proxy_client_out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct proxy_client *c = arg;

    if (info->n_added > 0 && !(bufferevent_get_enabled(c->bev) & EV_WRITE)) {
        event_active(c->flush_ev, EV_WRITE, 0);
    }
}
