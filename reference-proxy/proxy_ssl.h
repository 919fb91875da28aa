/*
 * Upstream TLS, internal: what proxy_ssl.c (the contexts and connections)
 * and proxy_ssl_session.c (the client session cache) share.
 */
#ifndef PROXY_SSL_H
#define PROXY_SSL_H

#include "proxy.h"

/* Per-connection data hung on the SSL object. */
struct proxy_ssl_data {
    struct proxy_loc_conf *lc;
    char *key;    /* session cache key */
    int rejected; /* post-handshake check failed */
};

/* the SSL ex_data index of struct proxy_ssl_data (proxy_ssl.c) */
extern int proxy_ssl_data_index;

/* proxy_ssl_session.c */
int proxy_ssl_session_new(SSL *ssl, SSL_SESSION *session);
SSL_SESSION *proxy_ssl_session_get(const char *key);
void proxy_ssl_session_forget(SSL *ssl, const char *key);

#endif
