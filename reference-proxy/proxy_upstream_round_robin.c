/*
 * The peers of an upstream group (nginx's ngx_http_upstream_round_robin.c):
 * smooth weighted round robin over its servers, max_fails and fail_timeout.
 */
#include "proxy_upstream.h"

/* Smooth weighted round robin, as ngx_http_upstream_get_peer(): each
 * server at most once per request; a server with max_fails failures within
 * fail_timeout is skipped until fail_timeout passes. */
int
proxy_upstream_peer_get(struct proxy_upstream *u, unsigned long long tried)
{
    long long now = proxy_time_ms();
    struct proxy_peer *best = NULL, *p;
    int total = 0, best_idx = -1;
    size_t i;

    for (i = 0; i < u->num_peers && i < 64; i++) {
        p = &u->peers[i];
        if (tried & (1ULL << i)) {
            continue;
        }
        if (u->num_peers > 1 && p->max_fails && p->fails >= p->max_fails
            && now - p->checked_ms <= p->fail_timeout_ms) {
            continue;
        }
        p->current_weight += p->weight;
        total += p->weight;
        if (best == NULL || p->current_weight > best->current_weight) {
            best = p;
            best_idx = (int) i;
        }
    }
    if (best) {
        best->current_weight -= total;
    }
    return best_idx;
}

void
proxy_upstream_peer_fail(struct proxy_upstream *u, size_t idx)
{
    u->peers[idx].fails++;
    u->peers[idx].checked_ms = proxy_time_ms();
}
