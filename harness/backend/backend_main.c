/*
 * uptls-backend: main. Parses the command line (or, with --listeners, one
 * listener spec per line), builds every listener's TLS context and log,
 * listens, prints one listening line per listener (and, with --listeners, a
 * ready line), runs the event loop until SIGTERM or SIGINT, then frees
 * everything and exits 0. main is the only place that
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

#include "../common/uc_err.h"
#include "../common/uc_net.h"
#include "backend.h"

static void
on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    (void) lev;
    backend_conn_accept(arg, fd, sa, salen);
}

static void
on_accept_error(struct evconnlistener *lev, void *arg)
{
    /* EMFILE and friends: keep listening; the peer sees a refused or slow
     * connect. Nothing is logged per connection that never existed. */
    (void) lev;
    (void) arg;
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void) sig;
    (void) what;
    event_base_loopbreak(arg);
}

static int
server_listen(struct backend_server *srv, char *err, size_t err_len)
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
        uc_err_set(err, err_len,
            "--listen: bad value '%s'; allowed: a numeric IPv4 or IPv6 address (%s)",
            srv->cfg->listen, gai_strerror(rc));
        return -1;
    }
    srv->listener = evconnlistener_new_bind(srv->base, on_accept, srv,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 1024, res->ai_addr,
        (int) res->ai_addrlen);
    freeaddrinfo(res);
    if (srv->listener == NULL) {
        uc_err_set(err, err_len, "cannot listen on %s port %d: %s", srv->cfg->listen,
            srv->cfg->port, strerror(errno));
        return -1;
    }
    evconnlistener_set_error_cb(srv->listener, on_accept_error);
    if (getsockname(evconnlistener_get_fd(srv->listener), (struct sockaddr *) &ss, &ss_len) != 0) {
        uc_err_set(err, err_len, "getsockname: %s", strerror(errno));
        return -1;
    }
    uc_sockaddr_host_port((struct sockaddr *) &ss, NULL, 0, &srv->port);
    return 0;
}

static void
server_free(struct backend_server *srv)
{
    while (srv->conns != NULL)
        backend_conn_close(srv->conns, "shutdown");
    if (srv->listener)
        evconnlistener_free(srv->listener);
    SSL_CTX_free(srv->ctx);
    backend_log_close(&srv->log);
}

/* Writes err to stderr, one line per problem, each with the program's name
 * and, with --listeners, the listener it belongs to (prefix). */
static void
report(const char *prefix, char *err)
{
    for (char *line = strtok(err, "\n"); line != NULL; line = strtok(NULL, "\n"))
        fprintf(stderr, "uptls-backend: %s%s%s\n", prefix, *prefix ? ": " : "", line);
}

/* {"event":"listening","name":NAME,"port":PORT,"pid":PID} (+ "listener":N
 * with --listeners), or {"event":"ready","listeners":N,"pid":PID}. */
static int
print_line(const char *event, const struct backend_server *srv, size_t num, int many)
{
    struct uc_json jw = { 0 };
    int ok;

    uc_json_obj_begin(&jw);
    uc_json_key(&jw, "event");
    uc_json_str(&jw, event);
    if (srv != NULL) {
        if (many) {
            uc_json_key(&jw, "listener");
            uc_json_int(&jw, (long long) num);
        }
        uc_json_key(&jw, "name");
        uc_json_str(&jw, srv->cfg->name);
        uc_json_key(&jw, "port");
        uc_json_int(&jw, srv->port);
    } else {
        uc_json_key(&jw, "listeners");
        uc_json_int(&jw, (long long) num);
    }
    uc_json_key(&jw, "pid");
    uc_json_int(&jw, (long long) getpid());
    uc_json_obj_end(&jw);
    ok = !jw.buf.failed && printf("%s\n", jw.buf.data) >= 0;
    uc_json_dispose(&jw);
    return ok ? 0 : -1;
}

int
main(int argc, char **argv)
{
    static char err[1 << 16];
    struct backend_config cfg;
    struct backend_listeners ls;
    struct backend_config *cfgs = &cfg;
    struct backend_server *srvs = NULL;
    struct event_base *base = NULL;
    struct event *sigterm = NULL, *sigint = NULL;
    size_t num = 1;
    int many = 0, status = 1, bad = 0;

    memset(&ls, 0, sizeof(ls));
    if (backend_config_parse(&cfg, argc, argv, err, sizeof(err)) != 0) {
        report("", err);
        return 2;
    }
    if (cfg.help) {
        backend_config_print_help(argv[0]);
        return 0;
    }
    if (cfg.list_faults) {
        uc_switch_print(backend_faults, backend_num_faults, stdout, "", 30);
        return 0;
    }
    if (cfg.listeners != NULL) {
        many = 1;
        if (backend_listeners_load(&ls, cfg.listeners, err, sizeof(err)) != 0) {
            report("", err);
            bad = 1;
        }
        cfgs = ls.cfgs;
        num = ls.num;
    }
    /* Never outlive the harness that started us. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    signal(SIGPIPE, SIG_IGN);

    srvs = num ? calloc(num, sizeof(*srvs)) : NULL;
    if (srvs == NULL) {
        if (bad) {
            status = 2;
            goto end;
        }
        fprintf(stderr, "uptls-backend: out of memory\n");
        goto end;
    }
    /* Every listener's context and log before anything listens: a bad one
     * stops the process with every problem reported (exit 2). */
    for (size_t i = 0; i < num; i++) {
        char prefix[160] = "";

        if (many)
            snprintf(prefix, sizeof(prefix), "listener %zu '%s'", i + 1,
                cfgs[i].name ? cfgs[i].name : "?");
        srvs[i].cfg = &cfgs[i];
        srvs[i].log.fd = -1;
        if (many && ls.invalid[i])
            continue; /* already reported */
        srvs[i].ctx = backend_tls_ctx_new(&cfgs[i], err, sizeof(err));
        if (srvs[i].ctx == NULL) {
            report(prefix, err);
            bad = 1;
            continue;
        }
        if (backend_log_open(&srvs[i].log, cfgs[i].log_path, cfgs[i].name, err, sizeof(err)) != 0) {
            report(prefix, err);
            bad = 1;
        }
        if (many) /* so that listeners can share one log */
            srvs[i].log.listener = i + 1;
    }
    if (bad) {
        status = 2;
        goto end;
    }
    base = event_base_new();
    if (base == NULL) {
        fprintf(stderr, "uptls-backend: event_base_new failed\n");
        goto end;
    }
    sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    sigint = evsignal_new(base, SIGINT, on_signal, base);
    if (sigterm == NULL || sigint == NULL || evsignal_add(sigterm, NULL) != 0
        || evsignal_add(sigint, NULL) != 0) {
        fprintf(stderr, "uptls-backend: cannot install signal handlers\n");
        goto end;
    }
    for (size_t i = 0; i < num; i++) {
        srvs[i].base = base;
        if (server_listen(&srvs[i], err, sizeof(err)) != 0) {
            char prefix[160] = "";
            if (many)
                snprintf(prefix, sizeof(prefix), "listener %zu '%s'", i + 1,
                    cfgs[i].name ? cfgs[i].name : "?");
            report(prefix, err);
            goto end;
        }
    }
    for (size_t i = 0; i < num; i++) {
        if (print_line("listening", &srvs[i], i + 1, many) != 0)
            goto end;
    }
    if ((many && print_line("ready", NULL, num, many) != 0) || fflush(stdout) != 0)
        goto end;

    if (event_base_dispatch(base) < 0) {
        fprintf(stderr, "uptls-backend: event loop failed\n");
        goto end;
    }
    status = 0;

end:
    if (srvs != NULL) {
        for (size_t i = 0; i < num; i++)
            server_free(&srvs[i]);
        free(srvs);
    }
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    if (base)
        event_base_free(base);
    backend_listeners_free(&ls);
    libevent_global_shutdown();
    return status;
}
