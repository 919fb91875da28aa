/*
 * The core directives (nginx's ngx_core_module, ngx_events_module and
 * ngx_http_core_module): main and events settings, http, server, listen,
 * server_name, location, return, keepalive_timeout, access_log; with the
 * create of a location's settings and the merge of the core ones.
 */
#include "proxy_conf_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- specific setters ----------------------------------------------------------------------- */

static int
proxy_conf_set_worker_processes(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    struct proxy_conf *c = conf;

    if (strcmp(args[1], "auto") == 0) {
        c->worker_processes = 0;
        return 0;
    }
    if (proxy_conf_parse_int(args[1], &c->worker_processes) != 0 || c->worker_processes < 1
        || c->worker_processes > 256) {
        c->worker_processes = 1;
        proxy_conf_error(p, "invalid value \"%s\" in \"%s\" directive", args[1], cmd->name);
        return -1;
    }
    return 0;
}

static int
proxy_conf_set_error_log(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    struct proxy_conf *c = conf;
    int level = PROXY_LOG_ERR;

    if (nargs > 2) {
        level = proxy_log_level_parse(args[2]);
        if (level < 0) {
            proxy_conf_error(p, "invalid log level \"%s\"", args[2]);
            return -1;
        }
    }
    free(c->error_log);
    c->error_log = proxy_conf_full_name(p->conf->prefix, args[1]);
    c->error_log_level = level;
    return 0;
}

static int
proxy_conf_set_pid(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    struct proxy_conf *c = conf;

    free(c->pid_file);
    c->pid_file =
        strcmp(args[1], "off") == 0 ? NULL : proxy_conf_full_name(p->conf->prefix, args[1]);
    return 0;
}

static int
proxy_conf_set_daemon(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    if (strcmp(args[1], "on") != 0 && strcmp(args[1], "off") != 0) {
        proxy_conf_error(p,
            "invalid value \"%s\" in \"%s\" directive, it must be "
            "\"on\" or \"off\"",
            args[1], cmd->name);
        return -1;
    }
    /* uptls-proxy always runs in the foreground: "daemon on" is accepted and
     * has no effect (the harness always runs targets with daemon off). */
    return 0;
}

static int
proxy_conf_set_worker_connections(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    struct proxy_conf *c = conf;

    if (proxy_conf_parse_int(args[1], &c->worker_connections) != 0 || c->worker_connections < 1) {
        proxy_conf_error(p, "invalid number \"%s\" in \"%s\" directive", args[1], cmd->name);
        return -1;
    }
    return 0;
}

/* A location's (or server's, or http's) settings, every one unset: each
 * module's create. */
static struct proxy_loc_conf *
proxy_loc_conf_new(const char *file, int line)
{
    struct proxy_loc_conf *lc = proxy_xcalloc(1, sizeof(*lc));
    size_t i;

    lc->file = file;
    lc->line = line;
    for (i = 0; proxy_conf_modules[i]; i++) {
        if (proxy_conf_modules[i]->create) {
            proxy_conf_modules[i]->create(lc);
        }
    }
    return lc;
}

static int
proxy_conf_set_events(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    struct proxy_conf *c = conf;

    if (c->have_events) {
        proxy_conf_error(p, "\"events\" directive is duplicate");
    }
    c->have_events = 1;
    return proxy_conf_parse_block(p, PROXY_CTX_EVENTS, c, 0) == 0 ? 0 : -2;
}

static int
proxy_conf_set_http(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    struct proxy_conf *c = conf;

    if (c->have_http) {
        proxy_conf_error(p, "\"http\" directive is duplicate");
        return proxy_conf_parse_block(p, PROXY_CTX_SKIP, NULL, 0) == 0 ? -1 : -2;
    }
    c->have_http = 1;
    c->http = proxy_loc_conf_new(p->file, p->line);
    return proxy_conf_parse_block(p, PROXY_CTX_HTTP, c->http, 0) == 0 ? 0 : -2;
}

static int
proxy_conf_set_server_block(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    struct proxy_server *s = proxy_xcalloc(1, sizeof(*s)), **tail;
    int rc;

    s->conf = proxy_loc_conf_new(p->file, p->line);
    s->file = p->file;
    s->line = p->line;
    for (tail = &p->conf->servers; *tail; tail = &(*tail)->next) {
    }
    *tail = s;
    p->server = s;
    rc = proxy_conf_parse_block(p, PROXY_CTX_SRV, s->conf, 0);
    p->server = NULL;
    return rc == 0 ? 0 : -2;
}

static int
proxy_conf_set_location(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    struct proxy_server *s = p->server;
    struct proxy_loc_conf *lc, **locs;
    const char *prefix = args[1];
    int exact = 0;
    size_t i;

    if (nargs == 3) {
        if (strcmp(args[1], "=") == 0) {
            exact = 1;
        } else if (strcmp(args[1], "^~") != 0) {
            proxy_conf_error(p,
                "invalid location modifier \"%s\" (uptls-proxy "
                "supports prefix, \"=\" and \"^~\" locations)",
                args[1]);
            proxy_conf_parse_block(p, PROXY_CTX_SKIP, NULL, 0);
            return -1;
        }
        prefix = args[2];
    } else if (args[1][0] == '=' && args[1][1] != '\0') {
        exact = 1;
        prefix++;
    } else if (args[1][0] == '~' || args[1][0] == '@') {
        proxy_conf_error(p,
            "regular expression and named locations are not "
            "supported by uptls-proxy: \"%s\"",
            args[1]);
        return proxy_conf_parse_block(p, PROXY_CTX_SKIP, NULL, 0) == 0 ? -1 : -2;
    }
    for (i = 0; i < s->num_locs; i++) {
        if (s->locs[i]->exact == exact && strcmp(s->locs[i]->prefix, prefix) == 0) {
            proxy_conf_error(p, "duplicate location \"%s\"", prefix);
        }
    }
    lc = proxy_loc_conf_new(p->file, p->line);
    lc->prefix = proxy_xstrdup(prefix);
    lc->exact = exact;
    locs = realloc(s->locs, (s->num_locs + 1) * sizeof(*locs));
    if (locs == NULL) {
        abort();
    }
    s->locs = locs;
    s->locs[s->num_locs++] = lc;
    return proxy_conf_parse_block(p, PROXY_CTX_LOC, lc, 0) == 0 ? 0 : -2;
}

struct proxy_listen *
proxy_conf_listen_find(struct proxy_conf *c, const struct sockaddr_storage *ss, socklen_t len)
{
    struct proxy_listen *l, **tail;

    for (l = c->listens; l; l = l->next) {
        if (l->addr_len == len && memcmp(&l->addr, ss, len) == 0) {
            return l;
        }
    }
    l = proxy_xcalloc(1, sizeof(*l));
    memcpy(&l->addr, ss, len);
    l->addr_len = len;
    l->fd = -1;
    proxy_sockaddr_text((const struct sockaddr *) ss, l->text, sizeof(l->text), 1);
    for (tail = &c->listens; *tail; tail = &(*tail)->next) {
    }
    *tail = l;
    return l;
}

/* listen addr:port | port | *:port | [v6]:port [default_server] */
static int
proxy_conf_set_listen(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    struct proxy_server *s = p->server;
    struct sockaddr_storage ss;
    socklen_t len;
    struct proxy_peer *peers = NULL;
    size_t num = 0;
    char spec[300], msg[512];
    int a, def = 0, port;
    struct proxy_listen **ls;
    int *ds;

    for (a = 2; a < nargs; a++) {
        if (strcmp(args[a], "default_server") == 0 || strcmp(args[a], "default") == 0) {
            def = 1;
        } else if (strcmp(args[a], "ssl") == 0 || strcmp(args[a], "http2") == 0) {
            proxy_conf_error(p,
                "the \"%s\" parameter of \"listen\" is not supported "
                "by uptls-proxy (it tests upstream TLS only)",
                args[a]);
            return -1;
        } else if (strcmp(args[a], "reuseport") != 0) {
            proxy_conf_error(p, "invalid parameter \"%s\"", args[a]);
            return -1;
        }
    }
    if (proxy_conf_parse_int(args[1], &port) == 0) {
        snprintf(spec, sizeof(spec), "0.0.0.0:%s", args[1]);
    } else if (strncmp(args[1], "*:", 2) == 0) {
        snprintf(spec, sizeof(spec), "0.0.0.0:%s", args[1] + 2);
    } else {
        snprintf(spec, sizeof(spec), "%s", args[1]);
    }
    if (proxy_conf_resolve(spec, 80, &peers, &num, NULL, 0, NULL, msg, sizeof(msg)) != 0) {
        proxy_conf_error(p, "host not found in \"%s\" of the \"listen\" directive", args[1]);
        return -1;
    }
    memcpy(&ss, &peers[0].addr, sizeof(ss));
    len = peers[0].addr_len;
    free(peers);
    ls = realloc(s->listens, (s->num_listens + 1) * sizeof(*ls));
    ds = realloc(s->default_server, (s->num_listens + 1) * sizeof(*ds));
    if (ls == NULL || ds == NULL) {
        abort();
    }
    s->listens = ls;
    s->default_server = ds;
    s->listens[s->num_listens] = proxy_conf_listen_find(p->conf, &ss, len);
    s->default_server[s->num_listens++] = def;
    return 0;
}

static int
proxy_conf_set_server_name(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    struct proxy_server *s = p->server;
    char **names;
    int a;

    for (a = 1; a < nargs; a++) {
        names = realloc(s->names, (s->num_names + 1) * sizeof(*names));
        if (names == NULL) {
            abort();
        }
        s->names = names;
        s->names[s->num_names++] = proxy_xstrdup(args[a]);
    }
    return 0;
}

static int
proxy_conf_set_return(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    struct proxy_loc_conf *lc = conf;
    int code;

    if (proxy_conf_parse_int(args[1], &code) != 0 || code < 100 || code > 999) {
        proxy_conf_error(p, "invalid return code \"%s\"", args[1]);
        return -1;
    }
    lc->return_code = code;
    free(lc->return_text);
    lc->return_text = nargs > 2 ? proxy_xstrdup(args[2]) : NULL;
    return 0;
}

static int
proxy_conf_set_access_log(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    /* access_log off | FILE [format]: parsed, not written (see README) */
    ((struct proxy_loc_conf *) conf)->access_log_set = 1;
    return 0;
}

static int
proxy_conf_set_keepalive_timeout(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    struct proxy_loc_conf *lc = conf;

    if (lc->keepalive_timeout != PROXY_UNSET) {
        proxy_conf_error(p, "\"%s\" directive is duplicate", cmd->name);
        return -1;
    }
    lc->keepalive_timeout = proxy_conf_parse_msec(args[1]);
    if (lc->keepalive_timeout < 0 || (nargs > 2 && proxy_conf_parse_msec(args[2]) < 0)) {
        lc->keepalive_timeout = PROXY_UNSET;
        proxy_conf_error(p, "\"%s\" directive invalid value", cmd->name);
        return -1;
    }
    return 0;
}

static const struct proxy_cmd proxy_conf_core_commands[] = {
    { "user", PROXY_CTX_MAIN, 1, 2, 0, proxy_conf_set_noop, 0 },
    { "worker_processes", PROXY_CTX_MAIN, 1, 1, 0, proxy_conf_set_worker_processes, 0 },
    { "pid", PROXY_CTX_MAIN, 1, 1, 0, proxy_conf_set_pid, 0 },
    { "error_log", PROXY_CTX_MAIN, 1, 2, 0, proxy_conf_set_error_log, 0 },
    { "daemon", PROXY_CTX_MAIN, 1, 1, 0, proxy_conf_set_daemon, 0 },
    { "events", PROXY_CTX_MAIN, 0, 0, 1, proxy_conf_set_events, 0 },
    { "worker_connections", PROXY_CTX_EVENTS, 1, 1, 0, proxy_conf_set_worker_connections, 0 },
    { "http", PROXY_CTX_MAIN, 0, 0, 1, proxy_conf_set_http, 0 },
    { "server", PROXY_CTX_HTTP, 0, 0, 1, proxy_conf_set_server_block, 0 },
    { "listen", PROXY_CTX_SRV, 1, 4, 0, proxy_conf_set_listen, 0 },
    { "server_name", PROXY_CTX_SRV, 1, PROXY_NARGS_ANY, 0, proxy_conf_set_server_name, 0 },
    { "location", PROXY_CTX_SRV, 1, 2, 1, proxy_conf_set_location, 0 },
    { "access_log", PROXY_CTX_ANY_LOC, 1, 3, 0, proxy_conf_set_access_log, 0 },
    { "keepalive_timeout", PROXY_CTX_ANY_LOC, 1, 2, 0, proxy_conf_set_keepalive_timeout, 0 },
    { "return", PROXY_CTX_SRV | PROXY_CTX_LOC, 1, 2, 0, proxy_conf_set_return, 0 },
};

static void
proxy_conf_core_create(struct proxy_loc_conf *lc)
{
    lc->return_code = PROXY_UNSET;
    lc->keepalive_timeout = PROXY_UNSET;
}

/* keepalive_timeout 75s (ngx_http_core_module) */
static void
proxy_conf_core_merge(struct proxy_loc_conf *conf, const struct proxy_loc_conf *prev)
{
    MERGE_INT(keepalive_timeout, 75000);
}

const struct proxy_conf_module proxy_conf_core_module = { "core",
    PROXY_CONF_CMDS(proxy_conf_core_commands), proxy_conf_core_create, proxy_conf_core_merge };
