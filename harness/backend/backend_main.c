/*
 * uptls-backend: main. Parses the command line, builds the TLS context,
 * listens, prints the listening line, runs the event loop until SIGTERM or
 * SIGINT, then frees everything and exits 0. main is the only place that
 * exits; exit status 2 = bad command line or configuration, 1 = runtime.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "backend.h"

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)lev;
    backend_conn_accept(arg, fd, sa, salen);
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    /* EMFILE and friends: keep listening; the peer sees a refused or slow
     * connect. Nothing is logged per connection that never existed. */
    (void)lev;
    (void)arg;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct backend_server *srv = arg;

    (void)sig;
    (void)what;
    event_base_loopbreak(srv->base);
}

static int server_listen(struct backend_server *srv, char *err, size_t err_len)
{
    struct addrinfo hints, *res = NULL;
    struct sockaddr_storage ss;
    socklen_t ss_len = sizeof(ss);
    char port[16];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    snprintf(port, sizeof(port), "%d", srv->cfg->port);
    rc = getaddrinfo(srv->cfg->listen, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, err_len, "--listen: bad value '%s'; allowed: a numeric IPv4 or IPv6 address (%s)",
                 srv->cfg->listen, gai_strerror(rc));
        return -1;
    }
    srv->listener = evconnlistener_new_bind(srv->base, on_accept, srv,
                                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                                LEV_OPT_CLOSE_ON_EXEC,
                                            1024, res->ai_addr, (int)res->ai_addrlen);
    freeaddrinfo(res);
    if (srv->listener == NULL) {
        snprintf(err, err_len, "cannot listen on %s port %d: %s", srv->cfg->listen,
                 srv->cfg->port, strerror(errno));
        return -1;
    }
    evconnlistener_set_error_cb(srv->listener, on_accept_error);
    if (getsockname(evconnlistener_get_fd(srv->listener), (struct sockaddr *)&ss, &ss_len) != 0) {
        snprintf(err, err_len, "getsockname: %s", strerror(errno));
        return -1;
    }
    if (ss.ss_family == AF_INET)
        srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else
        srv->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

static void server_free(struct backend_server *srv)
{
    while (srv->conns != NULL)
        backend_conn_close(srv->conns, "shutdown");
    if (srv->listener)
        evconnlistener_free(srv->listener);
    if (srv->sigterm)
        event_free(srv->sigterm);
    if (srv->sigint)
        event_free(srv->sigint);
    SSL_CTX_free(srv->ctx);
    if (srv->base)
        event_base_free(srv->base);
    backend_log_close(&srv->log);
}

int main(int argc, char **argv)
{
    struct backend_config cfg;
    struct backend_server srv;
    char err[4096];
    int status = 1;

    memset(&srv, 0, sizeof(srv));
    srv.cfg = &cfg;
    srv.log.fd = -1;

    if (backend_config_parse(&cfg, argc, argv, err, sizeof(err)) != 0) {
        /* one line per problem, each with the program's name */
        for (char *line = strtok(err, "\n"); line != NULL; line = strtok(NULL, "\n"))
            fprintf(stderr, "uptls-backend: %s\n", line);
        return 2;
    }
    if (cfg.help) {
        backend_config_print_help(argv[0]);
        return 0;
    }
    /* Never outlive the harness that started us. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    signal(SIGPIPE, SIG_IGN);

    srv.ctx = backend_tls_ctx_new(&cfg, err, sizeof(err));
    if (srv.ctx == NULL) {
        fprintf(stderr, "uptls-backend: %s\n", err);
        status = 2;
        goto end;
    }
    if (backend_log_open(&srv.log, cfg.log_path, cfg.name, err, sizeof(err)) != 0) {
        fprintf(stderr, "uptls-backend: %s\n", err);
        status = 2;
        goto end;
    }
    srv.base = event_base_new();
    if (srv.base == NULL) {
        fprintf(stderr, "uptls-backend: event_base_new failed\n");
        goto end;
    }
    srv.sigterm = evsignal_new(srv.base, SIGTERM, on_signal, &srv);
    srv.sigint = evsignal_new(srv.base, SIGINT, on_signal, &srv);
    if (srv.sigterm == NULL || srv.sigint == NULL || evsignal_add(srv.sigterm, NULL) != 0 ||
        evsignal_add(srv.sigint, NULL) != 0) {
        fprintf(stderr, "uptls-backend: cannot install signal handlers\n");
        goto end;
    }
    if (server_listen(&srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "uptls-backend: %s\n", err);
        goto end;
    }

    {
        struct json_writer jw = {0};
        json_obj_begin(&jw);
        json_key(&jw, "event");
        json_str(&jw, "listening");
        json_key(&jw, "name");
        json_str(&jw, cfg.name);
        json_key(&jw, "port");
        json_int(&jw, srv.port);
        json_key(&jw, "pid");
        json_int(&jw, (long long)getpid());
        json_obj_end(&jw);
        if (jw.oom || printf("%s\n", jw.buf) < 0 || fflush(stdout) != 0) {
            json_free(&jw);
            goto end;
        }
        json_free(&jw);
    }

    if (event_base_dispatch(srv.base) < 0) {
        fprintf(stderr, "uptls-backend: event loop failed\n");
        goto end;
    }
    status = 0;

end:
    server_free(&srv);
    libevent_global_shutdown();
    return status;
}
