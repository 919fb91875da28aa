/*
 * The configuration: nginx syntax, for the subset of directives in
 * proxy_conf_commands[] below. A directive not in the table is an error,
 * never ignored. Errors are collected (like HAProxy) and each names the file,
 * line and directive in nginx's words; a syntax error stops the parse.
 *
 * Defaults are set in one place, proxy_conf_merge(), like nginx's
 * ngx_http_proxy_merge_loc_conf(); values are those of the nginx
 * documentation (https://nginx.org/en/docs/http/ngx_http_proxy_module.html,
 * ngx_http_core_module.html, ngx_http_upstream_module.html).
 */
#include "proxy.h"

#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROXY_CTX_MAIN 0x01
#define PROXY_CTX_EVENTS 0x02
#define PROXY_CTX_HTTP 0x04
#define PROXY_CTX_SRV 0x08
#define PROXY_CTX_LOC 0x10
#define PROXY_CTX_UPS 0x20
#define PROXY_CTX_SKIP 0x40     /* inside an unknown block: syntax only */
#define PROXY_CTX_ANY_LOC (PROXY_CTX_HTTP | PROXY_CTX_SRV | PROXY_CTX_LOC)

#define PROXY_ARGS_MAX 64
#define PROXY_NARGS_ANY 1000

enum proxy_tok { PROXY_TOK_WORD, PROXY_TOK_SEMI, PROXY_TOK_LBRACE,
    PROXY_TOK_RBRACE, PROXY_TOK_EOF, PROXY_TOK_ERROR };

struct proxy_conf_parser {
    struct proxy_conf *conf;
    const char *file;
    const char *buf;
    size_t len;
    size_t pos;
    int line;
    char *err;
    size_t err_len;
    int num_errors;
    int include_depth;
    struct proxy_server *server;
    const struct proxy_conf_parser *outer;  /* the file that included this one */
};

struct proxy_cmd;
typedef int proxy_cmd_set_fn(struct proxy_conf_parser *p,
    const struct proxy_cmd *cmd, void *conf, char **args, int nargs);

/* One directive: name, contexts where it is allowed, argument count (not
 * counting the name), whether it opens a block, setter, field offset. */
struct proxy_cmd {
    const char *name;
    int contexts;
    int min_args;
    int max_args;
    int block;
    proxy_cmd_set_fn *set;
    size_t offset;
};

static int proxy_conf_parse_block(struct proxy_conf_parser *p, int ctx,
    void *conf, int eof_ok);

/* ---- errors ------------------------------------------------------------------------- */

static void proxy_conf_error(struct proxy_conf_parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
proxy_conf_error(struct proxy_conf_parser *p, const char *fmt, ...)
{
    size_t used = strlen(p->err);
    va_list ap;
    int n;

    p->num_errors++;
    if (used + 64 >= p->err_len) {
        return;
    }
    n = snprintf(p->err + used, p->err_len - used, "[emerg] ");
    used += (size_t) n;
    va_start(ap, fmt);
    n = vsnprintf(p->err + used, p->err_len - used, fmt, ap);
    va_end(ap);
    if (n < 0 || used + (size_t) n >= p->err_len) {
        return;
    }
    used += (size_t) n;
    snprintf(p->err + used, p->err_len - used, " in %s:%d\n", p->file, p->line);
}

/* ---- tokenizer (nginx's ngx_conf_read_token rules) ------------------------------------ */

static int
proxy_conf_token(struct proxy_conf_parser *p, char **out)
{
    char quote = 0;
    size_t start;
    char *word;
    size_t n;
    int c;

    *out = NULL;
    for (;;) {
        if (p->pos >= p->len) {
            return PROXY_TOK_EOF;
        }
        c = p->buf[p->pos];
        if (c == '\n') {
            p->line++;
            p->pos++;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r') {
            p->pos++;
            continue;
        }
        if (c == '#') {
            while (p->pos < p->len && p->buf[p->pos] != '\n') {
                p->pos++;
            }
            continue;
        }
        break;
    }
    if (c == ';') {
        p->pos++;
        return PROXY_TOK_SEMI;
    }
    if (c == '{') {
        p->pos++;
        return PROXY_TOK_LBRACE;
    }
    if (c == '}') {
        p->pos++;
        return PROXY_TOK_RBRACE;
    }
    if (c == '"' || c == '\'') {
        quote = (char) c;
        p->pos++;
    }
    word = proxy_xcalloc(1, p->len - p->pos + 1);
    n = 0;
    start = p->pos;
    (void) start;
    while (p->pos < p->len) {
        c = p->buf[p->pos];
        if (quote) {
            if (c == '\\' && p->pos + 1 < p->len) {
                char e = p->buf[p->pos + 1];

                p->pos += 2;
                word[n++] = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
                continue;
            }
            if (c == quote) {
                p->pos++;
                if (p->pos < p->len && !strchr(" \t\r\n;{}", p->buf[p->pos])) {
                    proxy_conf_error(p, "unexpected \"%c\"", p->buf[p->pos]);
                    free(word);
                    return PROXY_TOK_ERROR;
                }
                *out = word;
                return PROXY_TOK_WORD;
            }
            if (c == '\n') {
                p->line++;
            }
            word[n++] = (char) c;
            p->pos++;
            continue;
        }
        if (strchr(" \t\r\n;{}", c)) {
            break;
        }
        if (c == '\\' && p->pos + 1 < p->len) {
            word[n++] = p->buf[p->pos + 1];
            p->pos += 2;
            continue;
        }
        word[n++] = (char) c;
        p->pos++;
    }
    if (quote) {
        free(word);
        return PROXY_TOK_EOF;
    }
    *out = word;
    return PROXY_TOK_WORD;
}

/* ---- paths ------------------------------------------------------------------------------ */

static char *
proxy_conf_full_name(const char *prefix, const char *name)
{
    if (name[0] == '/' || strcmp(name, "stderr") == 0) {
        return proxy_xstrdup(name);
    }
    return proxy_xasprintf("%s%s", prefix, name);
}

static const char *
proxy_conf_file_keep(struct proxy_conf *conf, const char *name)
{
    char **files = realloc(conf->files, (conf->num_files + 1) * sizeof(char *));

    if (files == NULL) {
        abort();
    }
    conf->files = files;
    conf->files[conf->num_files] = proxy_xstrdup(name);
    return conf->files[conf->num_files++];
}

/* ---- value parsers ------------------------------------------------------------------------ */

/* nginx time syntax: "60s", "1m30s", "500ms", plain number = seconds. */
static long
proxy_conf_parse_msec(const char *s)
{
    long long total = 0, n;
    const char *q = s;
    long long mult;

    if (*q == '\0') {
        return -1;
    }
    while (*q) {
        if (!isdigit((unsigned char) *q)) {
            return -1;
        }
        n = 0;
        while (isdigit((unsigned char) *q)) {
            n = n * 10 + (*q++ - '0');
            if (n > 1000000000LL) {
                return -1;
            }
        }
        if (q[0] == 'm' && q[1] == 's') {
            mult = 1;
            q += 2;
        } else if (*q == 's' || *q == '\0') {
            mult = 1000;
            q += *q ? 1 : 0;
        } else if (*q == 'm') {
            mult = 60000;
            q++;
        } else if (*q == 'h') {
            mult = 3600000;
            q++;
        } else if (*q == 'd') {
            mult = 86400000;
            q++;
        } else {
            return -1;
        }
        total += n * mult;
    }
    if (total > LONG_MAX / 2) {
        return -1;
    }
    return (long) total;
}

static int
proxy_conf_parse_int(const char *s, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < 0 || v > INT_MAX) {
        return -1;
    }
    *out = (int) v;
    return 0;
}

/* ---- generic setters ------------------------------------------------------------------------ */

#define PROXY_FIELD(conf, cmd, type) ((type *) ((char *) (conf) + (cmd)->offset))

static int
proxy_conf_set_flag(struct proxy_conf_parser *p, const struct proxy_cmd *cmd,
    void *conf, char **args, int nargs)
{
    int *f = PROXY_FIELD(conf, cmd, int);

    if (*f != PROXY_UNSET) {
        proxy_conf_error(p, "\"%s\" directive is duplicate", cmd->name);
        return -1;
    }
    if (strcasecmp(args[1], "on") == 0) {
        *f = 1;
    } else if (strcasecmp(args[1], "off") == 0) {
        *f = 0;
    } else {
        proxy_conf_error(p, "invalid value \"%s\" in \"%s\" directive, it must be "
            "\"on\" or \"off\"", args[1], cmd->name);
        return -1;
    }
    return 0;
}

static int
proxy_conf_set_num(struct proxy_conf_parser *p, const struct proxy_cmd *cmd,
    void *conf, char **args, int nargs)
{
    int *f = PROXY_FIELD(conf, cmd, int);

    if (*f != PROXY_UNSET) {
        proxy_conf_error(p, "\"%s\" directive is duplicate", cmd->name);
        return -1;
    }
    if (proxy_conf_parse_int(args[1], f) != 0) {
        *f = PROXY_UNSET;
        proxy_conf_error(p, "\"%s\" directive invalid number \"%s\"", cmd->name,
            args[1]);
        return -1;
    }
    return 0;
}

static int
proxy_conf_set_msec(struct proxy_conf_parser *p, const struct proxy_cmd *cmd,
    void *conf, char **args, int nargs)
{
    long *f = PROXY_FIELD(conf, cmd, long);

    if (*f != PROXY_UNSET) {
        proxy_conf_error(p, "\"%s\" directive is duplicate", cmd->name);
        return -1;
    }
    *f = proxy_conf_parse_msec(args[1]);
    if (*f < 0) {
        *f = PROXY_UNSET;
        proxy_conf_error(p, "\"%s\" directive invalid value \"%s\"", cmd->name,
            args[1]);
        return -1;
    }
    return 0;
}

static int
proxy_conf_set_str(struct proxy_conf_parser *p, const struct proxy_cmd *cmd,
    void *conf, char **args, int nargs)
{
    char **f = PROXY_FIELD(conf, cmd, char *);

    if (*f != NULL) {
        proxy_conf_error(p, "\"%s\" directive is duplicate", cmd->name);
        return -1;
    }
    *f = proxy_xstrdup(args[1]);
    return 0;
}

/* A file path: resolved against the configuration prefix as nginx's
 * ngx_conf_full_name(cycle, name, 1) does for certificate files. */
static int
proxy_conf_set_path(struct proxy_conf_parser *p, const struct proxy_cmd *cmd,
    void *conf, char **args, int nargs)
{
    char **f = PROXY_FIELD(conf, cmd, char *);

    if (*f != NULL) {
        proxy_conf_error(p, "\"%s\" directive is duplicate", cmd->name);
        return -1;
    }
    *f = proxy_conf_full_name(p->conf->conf_prefix, args[1]);
    return 0;
}

static int
proxy_conf_set_keyval(struct proxy_conf_parser *p, const struct proxy_cmd *cmd,
    void *conf, char **args, int nargs)
{
    struct proxy_keyval_list **f = PROXY_FIELD(conf, cmd, struct proxy_keyval_list *);

    if (*f == NULL) {
        *f = proxy_xcalloc(1, sizeof(**f));
    }
    proxy_keyval_list_add(*f, args[1], nargs > 2 ? args[2] : "");
    return 0;
}

/* proxy_ssl_protocols [SSLv2] [SSLv3] [TLSv1] [TLSv1.1] [TLSv1.2] [TLSv1.3] */
static int
proxy_conf_set_protocols(struct proxy_conf_parser *p, const struct proxy_cmd *cmd,
    void *conf, char **args, int nargs)
{
    static const struct { const char *name; int bit; } names[] = {
        { "SSLv2", PROXY_SSL_SSLv2 }, { "SSLv3", PROXY_SSL_SSLv3 },
        { "TLSv1", PROXY_SSL_TLSv1 }, { "TLSv1.1", PROXY_SSL_TLSv1_1 },
        { "TLSv1.2", PROXY_SSL_TLSv1_2 }, { "TLSv1.3", PROXY_SSL_TLSv1_3 },
    };
    int *f = PROXY_FIELD(conf, cmd, int);
    int i;
    size_t j;

    if (*f != PROXY_UNSET) {
        proxy_conf_error(p, "\"%s\" directive is duplicate", cmd->name);
        return -1;
    }
    *f = 0;
    for (i = 1; i < nargs; i++) {
        for (j = 0; j < sizeof(names) / sizeof(names[0]); j++) {
            if (strcmp(args[i], names[j].name) == 0) {
                *f |= names[j].bit;
                break;
            }
        }
        if (j == sizeof(names) / sizeof(names[0])) {
            proxy_conf_error(p, "invalid value \"%s\" in \"%s\" directive, it must be "
                "\"SSLv2\", \"SSLv3\", \"TLSv1\", \"TLSv1.1\", \"TLSv1.2\" or "
                "\"TLSv1.3\"", args[i], cmd->name);
            *f = PROXY_UNSET;
            return -1;
        }
    }
    return 0;
}

static int
proxy_conf_set_next_upstream(struct proxy_conf_parser *p,
    const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    static const struct { const char *name; int bit; } names[] = {
        { "error", PROXY_NEXT_ERROR }, { "timeout", PROXY_NEXT_TIMEOUT },
        { "invalid_header", PROXY_NEXT_INVALID_HEADER },
        { "http_500", PROXY_NEXT_HTTP_500 }, { "http_502", PROXY_NEXT_HTTP_502 },
        { "http_503", PROXY_NEXT_HTTP_503 }, { "http_504", PROXY_NEXT_HTTP_504 },
        { "http_403", PROXY_NEXT_HTTP_403 }, { "http_404", PROXY_NEXT_HTTP_404 },
        { "http_429", PROXY_NEXT_HTTP_429 },
        { "non_idempotent", PROXY_NEXT_NON_IDEMPOTENT }, { "off", PROXY_NEXT_OFF },
    };
    int *f = PROXY_FIELD(conf, cmd, int);
    int i;
    size_t j;

    if (*f != PROXY_UNSET) {
        proxy_conf_error(p, "\"%s\" directive is duplicate", cmd->name);
        return -1;
    }
    *f = 0;
    for (i = 1; i < nargs; i++) {
        for (j = 0; j < sizeof(names) / sizeof(names[0]); j++) {
            if (strcmp(args[i], names[j].name) == 0) {
                *f |= names[j].bit;
                break;
            }
        }
        if (j == sizeof(names) / sizeof(names[0])) {
            proxy_conf_error(p, "invalid value \"%s\" in \"%s\" directive", args[i],
                cmd->name);
            *f = PROXY_UNSET;
            return -1;
        }
    }
    /* as nginx's merge: "off" cancels everything else */
    if (*f & PROXY_NEXT_OFF) {
        *f = PROXY_NEXT_OFF;
    }
    return 0;
}

/* Parsed and checked, with no further effect (access logs are not written). */
static int
proxy_conf_set_noop(struct proxy_conf_parser *p, const struct proxy_cmd *cmd,
    void *conf, char **args, int nargs)
{
    return 0;
}

/* ---- specific setters ----------------------------------------------------------------------- */

static int
proxy_conf_set_worker_processes(struct proxy_conf_parser *p,
    const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    struct proxy_conf *c = conf;

    if (strcmp(args[1], "auto") == 0) {
        c->worker_processes = 0;
        return 0;
    }
    if (proxy_conf_parse_int(args[1], &c->worker_processes) != 0
        || c->worker_processes < 1 || c->worker_processes > 256) {
        c->worker_processes = 1;
        proxy_conf_error(p, "invalid value \"%s\" in \"%s\" directive", args[1],
            cmd->name);
        return -1;
    }
    return 0;
}

static int
proxy_conf_set_error_log(struct proxy_conf_parser *p, const struct proxy_cmd *cmd,
    void *conf, char **args, int nargs)
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
proxy_conf_set_pid(struct proxy_conf_parser *p, const struct proxy_cmd *cmd,
    void *conf, char **args, int nargs)
{
    struct proxy_conf *c = conf;

    free(c->pid_file);
    c->pid_file = strcmp(args[1], "off") == 0
        ? NULL : proxy_conf_full_name(p->conf->prefix, args[1]);
    return 0;
}

static int
proxy_conf_set_daemon(struct proxy_conf_parser *p, const struct proxy_cmd *cmd,
    void *conf, char **args, int nargs)
{
    if (strcmp(args[1], "on") != 0 && strcmp(args[1], "off") != 0) {
        proxy_conf_error(p, "invalid value \"%s\" in \"%s\" directive, it must be "
            "\"on\" or \"off\"", args[1], cmd->name);
        return -1;
    }
    /* uptls-proxy always runs in the foreground: "daemon on" is accepted and
     * has no effect (the harness always runs targets with daemon off). */
    return 0;
}

static int
proxy_conf_set_worker_connections(struct proxy_conf_parser *p,
    const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    struct proxy_conf *c = conf;

    if (proxy_conf_parse_int(args[1], &c->worker_connections) != 0
        || c->worker_connections < 1) {
        proxy_conf_error(p, "invalid number \"%s\" in \"%s\" directive", args[1],
            cmd->name);
        return -1;
    }
    return 0;
}

static struct proxy_loc_conf *
proxy_loc_conf_new(const char *file, int line)
{
    struct proxy_loc_conf *lc = proxy_xcalloc(1, sizeof(*lc));

    lc->file = file;
    lc->line = line;
    lc->return_code = PROXY_UNSET;
    lc->connect_timeout = PROXY_UNSET;
    lc->read_timeout = PROXY_UNSET;
    lc->send_timeout = PROXY_UNSET;
    lc->keepalive_timeout = PROXY_UNSET;
    lc->http_version = PROXY_UNSET;
    lc->next_upstream = PROXY_UNSET;
    lc->ssl_verify = PROXY_UNSET;
    lc->ssl_verify_depth = PROXY_UNSET;
    lc->ssl_server_name = PROXY_UNSET;
    lc->ssl_session_reuse = PROXY_UNSET;
    lc->ssl_protocols = PROXY_UNSET;
    return lc;
}

static int
proxy_conf_set_events(struct proxy_conf_parser *p, const struct proxy_cmd *cmd,
    void *conf, char **args, int nargs)
{
    struct proxy_conf *c = conf;

    if (c->have_events) {
        proxy_conf_error(p, "\"events\" directive is duplicate");
    }
    c->have_events = 1;
    return proxy_conf_parse_block(p, PROXY_CTX_EVENTS, c, 0) == 0 ? 0 : -2;
}

static int
proxy_conf_set_http(struct proxy_conf_parser *p, const struct proxy_cmd *cmd,
    void *conf, char **args, int nargs)
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
proxy_conf_set_server_block(struct proxy_conf_parser *p,
    const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
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
proxy_conf_set_location(struct proxy_conf_parser *p, const struct proxy_cmd *cmd,
    void *conf, char **args, int nargs)
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
            proxy_conf_error(p, "invalid location modifier \"%s\" (uptls-proxy "
                "supports prefix, \"=\" and \"^~\" locations)", args[1]);
            proxy_conf_parse_block(p, PROXY_CTX_SKIP, NULL, 0);
            return -1;
        }
        prefix = args[2];
    } else if (args[1][0] == '=' && args[1][1] != '\0') {
        exact = 1;
        prefix++;
    } else if (args[1][0] == '~' || args[1][0] == '@') {
        proxy_conf_error(p, "regular expression and named locations are not "
            "supported by uptls-proxy: \"%s\"", args[1]);
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

/* Resolves "host:port" / "[v6]:port" / "host" (default port) with
 * getaddrinfo, as nginx does at start; every address becomes a peer. */
static int
proxy_conf_resolve(const char *spec, int default_port, struct proxy_peer **peers,
    size_t *num_peers, char *host_out, size_t host_len, int *port_out,
    char *err, size_t err_len)
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
        snprintf(host, sizeof(host), "%.*s",
            (int) (colon ? (size_t) (colon - spec) : strlen(spec)), spec);
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
proxy_conf_set_upstream_block(struct proxy_conf_parser *p,
    const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
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
proxy_conf_set_upstream_server(struct proxy_conf_parser *p,
    const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
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
    if (proxy_conf_resolve(args[1], 80, &u->peers, &u->num_peers, NULL, 0, NULL,
            msg, sizeof(msg)) != 0) {
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

static int
proxy_conf_set_upstream_keepalive(struct proxy_conf_parser *p,
    const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    struct proxy_upstream *u = conf;

    if (u->keepalive) {
        proxy_conf_error(p, "\"keepalive\" directive is duplicate");
        return -1;
    }
    if (proxy_conf_parse_int(args[1], &u->keepalive) != 0 || u->keepalive < 1) {
        u->keepalive = 0;
        proxy_conf_error(p, "invalid value \"%s\" in \"%s\" directive", args[1],
            cmd->name);
        return -1;
    }
    return 0;
}

static struct proxy_listen *
proxy_conf_listen_find(struct proxy_conf *c, const struct sockaddr_storage *ss,
    socklen_t len)
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
proxy_conf_set_listen(struct proxy_conf_parser *p, const struct proxy_cmd *cmd,
    void *conf, char **args, int nargs)
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
            proxy_conf_error(p, "the \"%s\" parameter of \"listen\" is not supported "
                "by uptls-proxy (it tests upstream TLS only)", args[a]);
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
    if (proxy_conf_resolve(spec, 80, &peers, &num, NULL, 0, NULL, msg, sizeof(msg))
        != 0) {
        proxy_conf_error(p, "host not found in \"%s\" of the \"listen\" directive",
            args[1]);
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
proxy_conf_set_server_name(struct proxy_conf_parser *p,
    const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
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

/* proxy_pass http(s)://host-or-upstream[:port][/uri] */
static int
proxy_conf_set_proxy_pass(struct proxy_conf_parser *p, const struct proxy_cmd *cmd,
    void *conf, char **args, int nargs)
{
    struct proxy_loc_conf *lc = conf;
    const char *url = args[1], *rest, *slash;
    char hostport[300], host[256], msg[512];
    int port;

    if (lc->pass_url) {
        proxy_conf_error(p, "\"proxy_pass\" directive is duplicate");
        return -1;
    }
    if (strchr(url, '$')) {
        proxy_conf_error(p, "variables in \"proxy_pass\" are not supported by "
            "uptls-proxy");
        return -1;
    }
    if (strncasecmp(url, "http://", 7) == 0) {
        rest = url + 7;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        rest = url + 8;
        lc->pass_ssl = 1;
    } else {
        proxy_conf_error(p, "invalid URL prefix in \"%s\"", url);
        return -1;
    }
    slash = strchr(rest, '/');
    snprintf(hostport, sizeof(hostport), "%.*s",
        (int) (slash ? (size_t) (slash - rest) : strlen(rest)), rest);
    if (hostport[0] == '\0') {
        proxy_conf_error(p, "no host in \"%s\"", url);
        return -1;
    }
    if (proxy_conf_resolve(hostport, 0, NULL, NULL, host, sizeof(host), &port,
            msg, sizeof(msg)) != 0) {
        proxy_conf_error(p, "%s", msg);
        return -1;
    }
    lc->pass_url = proxy_xstrdup(url);
    lc->pass_host = proxy_xstrdup(host);
    lc->pass_port = port;
    lc->pass_uri = slash ? proxy_xstrdup(slash) : NULL;
    lc->pass_file = p->file;
    lc->pass_line = p->line;
    return 0;
}

static int
proxy_conf_set_return(struct proxy_conf_parser *p, const struct proxy_cmd *cmd,
    void *conf, char **args, int nargs)
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
proxy_conf_set_http_version(struct proxy_conf_parser *p,
    const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    struct proxy_loc_conf *lc = conf;

    if (lc->http_version != PROXY_UNSET) {
        proxy_conf_error(p, "\"%s\" directive is duplicate", cmd->name);
        return -1;
    }
    if (strcmp(args[1], "1.0") == 0) {
        lc->http_version = 10;
    } else if (strcmp(args[1], "1.1") == 0) {
        lc->http_version = 11;
    } else {
        proxy_conf_error(p, "invalid value \"%s\" in \"%s\" directive, it must be "
            "\"1.0\" or \"1.1\"", args[1], cmd->name);
        return -1;
    }
    return 0;
}

static int
proxy_conf_set_access_log(struct proxy_conf_parser *p, const struct proxy_cmd *cmd,
    void *conf, char **args, int nargs)
{
    /* access_log off | FILE [format]: parsed, not written (see README) */
    ((struct proxy_loc_conf *) conf)->access_log_set = 1;
    return 0;
}

static int
proxy_conf_set_keepalive_timeout(struct proxy_conf_parser *p,
    const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
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

static int proxy_conf_set_include(struct proxy_conf_parser *p,
    const struct proxy_cmd *cmd, void *conf, char **args, int nargs);

#define LC(field) offsetof(struct proxy_loc_conf, field)

/* The directive table: every directive uptls-proxy understands. */
static const struct proxy_cmd proxy_conf_commands[] = {
    { "user", PROXY_CTX_MAIN, 1, 2, 0, proxy_conf_set_noop, 0 },
    { "worker_processes", PROXY_CTX_MAIN, 1, 1, 0, proxy_conf_set_worker_processes, 0 },
    { "pid", PROXY_CTX_MAIN, 1, 1, 0, proxy_conf_set_pid, 0 },
    { "error_log", PROXY_CTX_MAIN, 1, 2, 0, proxy_conf_set_error_log, 0 },
    { "daemon", PROXY_CTX_MAIN, 1, 1, 0, proxy_conf_set_daemon, 0 },
    { "events", PROXY_CTX_MAIN, 0, 0, 1, proxy_conf_set_events, 0 },
    { "worker_connections", PROXY_CTX_EVENTS, 1, 1, 0,
      proxy_conf_set_worker_connections, 0 },
    { "http", PROXY_CTX_MAIN, 0, 0, 1, proxy_conf_set_http, 0 },
    { "include", PROXY_CTX_MAIN | PROXY_CTX_EVENTS | PROXY_CTX_ANY_LOC | PROXY_CTX_UPS,
      1, 1, 0, proxy_conf_set_include, 0 },
    { "upstream", PROXY_CTX_HTTP, 1, 1, 1, proxy_conf_set_upstream_block, 0 },
    { "server", PROXY_CTX_UPS, 1, 8, 0, proxy_conf_set_upstream_server, 0 },
    { "keepalive", PROXY_CTX_UPS, 1, 1, 0, proxy_conf_set_upstream_keepalive, 0 },
    { "server", PROXY_CTX_HTTP, 0, 0, 1, proxy_conf_set_server_block, 0 },
    { "listen", PROXY_CTX_SRV, 1, 4, 0, proxy_conf_set_listen, 0 },
    { "server_name", PROXY_CTX_SRV, 1, PROXY_NARGS_ANY, 0, proxy_conf_set_server_name, 0 },
    { "location", PROXY_CTX_SRV, 1, 2, 1, proxy_conf_set_location, 0 },
    { "access_log", PROXY_CTX_ANY_LOC, 1, 3, 0, proxy_conf_set_access_log, 0 },
    { "keepalive_timeout", PROXY_CTX_ANY_LOC, 1, 2, 0, proxy_conf_set_keepalive_timeout, 0 },
    { "return", PROXY_CTX_SRV | PROXY_CTX_LOC, 1, 2, 0, proxy_conf_set_return, 0 },
    { "proxy_pass", PROXY_CTX_LOC, 1, 1, 0, proxy_conf_set_proxy_pass, 0 },
    { "proxy_connect_timeout", PROXY_CTX_ANY_LOC, 1, 1, 0, proxy_conf_set_msec,
      LC(connect_timeout) },
    { "proxy_read_timeout", PROXY_CTX_ANY_LOC, 1, 1, 0, proxy_conf_set_msec,
      LC(read_timeout) },
    { "proxy_send_timeout", PROXY_CTX_ANY_LOC, 1, 1, 0, proxy_conf_set_msec,
      LC(send_timeout) },
    { "proxy_http_version", PROXY_CTX_ANY_LOC, 1, 1, 0, proxy_conf_set_http_version, 0 },
    { "proxy_set_header", PROXY_CTX_ANY_LOC, 2, 2, 0, proxy_conf_set_keyval,
      LC(headers) },
    { "proxy_next_upstream", PROXY_CTX_ANY_LOC, 1, 12, 0, proxy_conf_set_next_upstream,
      LC(next_upstream) },
    { "proxy_ssl_certificate", PROXY_CTX_ANY_LOC, 1, 1, 0, proxy_conf_set_path,
      LC(ssl_certificate) },
    { "proxy_ssl_certificate_key", PROXY_CTX_ANY_LOC, 1, 1, 0, proxy_conf_set_path,
      LC(ssl_certificate_key) },
    { "proxy_ssl_password_file", PROXY_CTX_ANY_LOC, 1, 1, 0, proxy_conf_set_path,
      LC(ssl_password_file) },
    { "proxy_ssl_trusted_certificate", PROXY_CTX_ANY_LOC, 1, 1, 0, proxy_conf_set_path,
      LC(ssl_trusted_certificate) },
    { "proxy_ssl_crl", PROXY_CTX_ANY_LOC, 1, 1, 0, proxy_conf_set_path, LC(ssl_crl) },
    { "proxy_ssl_verify", PROXY_CTX_ANY_LOC, 1, 1, 0, proxy_conf_set_flag, LC(ssl_verify) },
    { "proxy_ssl_verify_depth", PROXY_CTX_ANY_LOC, 1, 1, 0, proxy_conf_set_num,
      LC(ssl_verify_depth) },
    { "proxy_ssl_name", PROXY_CTX_ANY_LOC, 1, 1, 0, proxy_conf_set_str, LC(ssl_name) },
    { "proxy_ssl_server_name", PROXY_CTX_ANY_LOC, 1, 1, 0, proxy_conf_set_flag,
      LC(ssl_server_name) },
    { "proxy_ssl_protocols", PROXY_CTX_ANY_LOC, 1, 6, 0, proxy_conf_set_protocols,
      LC(ssl_protocols) },
    { "proxy_ssl_ciphers", PROXY_CTX_ANY_LOC, 1, 1, 0, proxy_conf_set_str,
      LC(ssl_ciphers) },
    { "proxy_ssl_conf_command", PROXY_CTX_ANY_LOC, 2, 2, 0, proxy_conf_set_keyval,
      LC(ssl_conf_commands) },
    { "proxy_ssl_session_reuse", PROXY_CTX_ANY_LOC, 1, 1, 0, proxy_conf_set_flag,
      LC(ssl_session_reuse) },
};

#define PROXY_NUM_CMDS (sizeof(proxy_conf_commands) / sizeof(proxy_conf_commands[0]))

/* ---- parser ------------------------------------------------------------------------------ */

static int
proxy_conf_parse_buffer(struct proxy_conf_parser *p, const char *file,
    const char *buf, size_t len, int ctx, void *conf)
{
    struct proxy_conf_parser sub = *p;
    int rc;

    sub.outer = p;
    sub.file = file;
    sub.buf = buf;
    sub.len = len;
    sub.pos = 0;
    sub.line = 1;
    rc = proxy_conf_parse_block(&sub, ctx, conf, 1);
    p->num_errors = sub.num_errors;
    return rc;
}

static int
proxy_conf_parse_file(struct proxy_conf_parser *p, const char *path, int ctx,
    void *conf)
{
    FILE *f;
    char *buf = NULL;
    size_t len = 0;
    int rc;

    f = fopen(path, "r");
    if (f == NULL) {
        proxy_conf_error(p, "open() \"%s\" failed (%d: %s)", path, errno,
            strerror(errno));
        return -1;
    }
    {
        char chunk[8192];
        size_t n;

        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
            char *nb = realloc(buf, len + n + 1);

            if (nb == NULL) {
                abort();
            }
            buf = nb;
            memcpy(buf + len, chunk, n);
            len += n;
        }
    }
    fclose(f);
    rc = proxy_conf_parse_buffer(p, proxy_conf_file_keep(p->conf, path),
        buf ? buf : "", len, ctx, conf);
    free(buf);
    return rc;
}

static int proxy_conf_current_ctx;
static void *proxy_conf_current_conf;

/* Is path one of the files being read (this one or one that includes it)?
 * Without this check a file that includes itself, directly or through a
 * glob such as "include *.conf;", is read again at every level up to the
 * nesting limit, once per match: exponential time, not an error. */
static int
proxy_conf_include_cycle(const struct proxy_conf_parser *p, const char *path)
{
    char want[PATH_MAX], have[PATH_MAX];

    if (realpath(path, want) == NULL) {
        return 0;
    }
    for (; p; p = p->outer) {
        if (p->file && realpath(p->file, have) != NULL && strcmp(want, have) == 0) {
            return 1;
        }
    }
    return 0;
}

static int
proxy_conf_set_include(struct proxy_conf_parser *p, const struct proxy_cmd *cmd,
    void *conf, char **args, int nargs)
{
    char *pattern = proxy_conf_full_name(p->conf->conf_prefix, args[1]);
    glob_t g;
    size_t i;
    int rc = 0, grc;

    if (p->include_depth > 16) {
        proxy_conf_error(p, "include nesting too deep");
        free(pattern);
        return -1;
    }
    grc = glob(pattern, 0, NULL, &g);
    if (grc == GLOB_NOMATCH && strpbrk(pattern, "*?[") == NULL) {
        proxy_conf_error(p, "open() \"%s\" failed (2: No such file or directory)",
            pattern);
        free(pattern);
        return -1;
    }
    p->include_depth++;
    for (i = 0; grc == 0 && i < g.gl_pathc && rc == 0; i++) {
        if (proxy_conf_include_cycle(p, g.gl_pathv[i])) {
            proxy_conf_error(p, "\"%s\" includes itself (through \"%s\")",
                g.gl_pathv[i], args[1]);
            rc = -1;
            break;
        }
        rc = proxy_conf_parse_file(p, g.gl_pathv[i], proxy_conf_current_ctx,
            proxy_conf_current_conf);
    }
    p->include_depth--;
    if (grc == 0) {
        globfree(&g);
    }
    free(pattern);
    return rc == 0 ? 0 : -2;
}

static const char *
proxy_conf_ctx_name(int ctx)
{
    switch (ctx) {
    case PROXY_CTX_MAIN: return "main";
    case PROXY_CTX_EVENTS: return "events";
    case PROXY_CTX_HTTP: return "http";
    case PROXY_CTX_SRV: return "server";
    case PROXY_CTX_LOC: return "location";
    case PROXY_CTX_UPS: return "upstream";
    default: return "?";
    }
}

/* Runs one directive. Returns 0, -1 (error recorded, parsing goes on) or -2
 * (syntax error: stop). */
static int
proxy_conf_handle(struct proxy_conf_parser *p, int ctx, void *conf, char **args,
    int nargs, int tok)
{
    const struct proxy_cmd *cmd = NULL;
    int known = 0, rc, saved_ctx;
    void *saved_conf;
    size_t i;

    if (ctx == PROXY_CTX_SKIP) {
        if (tok == PROXY_TOK_LBRACE) {
            return proxy_conf_parse_block(p, PROXY_CTX_SKIP, NULL, 0) == 0 ? 0 : -2;
        }
        return 0;
    }
    for (i = 0; i < PROXY_NUM_CMDS; i++) {
        if (strcmp(proxy_conf_commands[i].name, args[0]) == 0) {
            known = 1;
            if (proxy_conf_commands[i].contexts & ctx) {
                cmd = &proxy_conf_commands[i];
                break;
            }
        }
    }
    if (cmd == NULL) {
        if (known) {
            proxy_conf_error(p, "\"%s\" directive is not allowed here", args[0]);
        } else {
            proxy_conf_error(p, "unknown directive \"%s\"", args[0]);
        }
        if (tok == PROXY_TOK_LBRACE) {
            return proxy_conf_parse_block(p, PROXY_CTX_SKIP, NULL, 0) == 0 ? -1 : -2;
        }
        return -1;
    }
    if (cmd->block && tok != PROXY_TOK_LBRACE) {
        proxy_conf_error(p, "directive \"%s\" has no opening \"{\"", cmd->name);
        return -1;
    }
    if (!cmd->block && tok == PROXY_TOK_LBRACE) {
        proxy_conf_error(p, "directive \"%s\" is not terminated by \";\"", cmd->name);
        return proxy_conf_parse_block(p, PROXY_CTX_SKIP, NULL, 0) == 0 ? -1 : -2;
    }
    if (nargs - 1 < cmd->min_args || nargs - 1 > cmd->max_args) {
        proxy_conf_error(p, "invalid number of arguments in \"%s\" directive",
            cmd->name);
        if (tok == PROXY_TOK_LBRACE) {
            return proxy_conf_parse_block(p, PROXY_CTX_SKIP, NULL, 0) == 0 ? -1 : -2;
        }
        return -1;
    }
    if (ctx == PROXY_CTX_EVENTS || ctx == PROXY_CTX_MAIN) {
        conf = p->conf;
    }
    saved_ctx = proxy_conf_current_ctx;
    saved_conf = proxy_conf_current_conf;
    proxy_conf_current_ctx = ctx;
    proxy_conf_current_conf = conf;
    rc = cmd->set(p, cmd, conf, args, nargs);
    proxy_conf_current_ctx = saved_ctx;
    proxy_conf_current_conf = saved_conf;
    (void) proxy_conf_ctx_name;
    return rc;
}

static int
proxy_conf_parse_block(struct proxy_conf_parser *p, int ctx, void *conf, int eof_ok)
{
    char *args[PROXY_ARGS_MAX];
    int nargs = 0, tok, rc = 0, i;
    char *word;

    for (;;) {
        tok = proxy_conf_token(p, &word);
        if (tok == PROXY_TOK_ERROR) {
            rc = -1;
            break;
        }
        if (tok == PROXY_TOK_WORD) {
            if (nargs == PROXY_ARGS_MAX) {
                free(word);
                proxy_conf_error(p, "too many arguments");
                rc = -1;
                break;
            }
            args[nargs++] = word;
            continue;
        }
        if (tok == PROXY_TOK_EOF) {
            if (nargs > 0) {
                proxy_conf_error(p, "unexpected end of file, expecting \";\" or \"}\"");
                rc = -1;
            } else if (!eof_ok) {
                proxy_conf_error(p, "unexpected end of file, expecting \"}\"");
                rc = -1;
            }
            break;
        }
        if (tok == PROXY_TOK_RBRACE) {
            if (nargs > 0 || eof_ok) {
                proxy_conf_error(p, "unexpected \"}\"");
                rc = -1;
            }
            break;
        }
        if (nargs == 0) {
            proxy_conf_error(p, "unexpected \"%c\"", tok == PROXY_TOK_SEMI ? ';' : '{');
            rc = -1;
            break;
        }
        rc = proxy_conf_handle(p, ctx, conf, args, nargs, tok);
        for (i = 0; i < nargs; i++) {
            free(args[i]);
        }
        nargs = 0;
        if (rc != -2) {
            rc = 0;
        } else {
            rc = -1;
            break;
        }
    }
    for (i = 0; i < nargs; i++) {
        free(args[i]);
    }
    return rc;
}

/* ---- merge: every default in one place ------------------------------------------------------- */

static struct proxy_keyval_list *
proxy_keyval_list_copy(const struct proxy_keyval_list *src)
{
    struct proxy_keyval_list *l;
    size_t i;

    if (src == NULL) {
        return NULL;
    }
    l = proxy_xcalloc(1, sizeof(*l));
    for (i = 0; i < src->num; i++) {
        proxy_keyval_list_add(l, src->items[i].key, src->items[i].value);
    }
    return l;
}

#define MERGE_INT(f, def) \
    if (conf->f == PROXY_UNSET) conf->f = prev && prev->f != PROXY_UNSET ? prev->f : (def)
#define MERGE_STR(f, def) \
    if (conf->f == NULL && ((prev && prev->f) || (def))) \
        conf->f = proxy_xstrdup(prev && prev->f ? prev->f : (def))

/*
 * Fills the unset settings of conf from prev (the enclosing level), then
 * from the defaults. prev is NULL for the http level. Defaults, from the
 * nginx documentation of each directive:
 *   proxy_connect_timeout 60s, proxy_read_timeout 60s, proxy_send_timeout
 *   60s, proxy_http_version 1.0, proxy_next_upstream error timeout,
 *   keepalive_timeout 75s, proxy_set_header Host $proxy_host and
 *   Connection close (the doc's "By default, only two fields are
 *   redefined"), proxy_ssl_verify off, proxy_ssl_verify_depth 1,
 *   proxy_ssl_server_name off, proxy_ssl_session_reuse on,
 *   proxy_ssl_ciphers DEFAULT, proxy_ssl_name $proxy_host (see
 *   proxy_conf_postprocess: the port is stripped, like nginx).
 *   proxy_ssl_protocols: the documentation's current default,
 *   "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3", with the note "The TLSv1.3 parameter is
 *   used by default since 1.23.4" (nginx-site commit "Added TLSv1.3 to the
 *   default value of ssl_protocols and friends", 2023-03-10). nginx 1.22.1,
 *   Debian 12's package, still defaults to "TLSv1 TLSv1.1 TLSv1.2": a scenario
 *   that depends on the default must render the setting or expect a
 *   difference. Under OpenSSL 3's default security level TLS 1.0/1.1 need
 *   @SECLEVEL=0 in the cipher string to be negotiated at all.
 */
static void
proxy_conf_merge(struct proxy_loc_conf *conf, const struct proxy_loc_conf *prev)
{
    MERGE_INT(connect_timeout, 60000);
    MERGE_INT(read_timeout, 60000);
    MERGE_INT(send_timeout, 60000);
    MERGE_INT(keepalive_timeout, 75000);
    MERGE_INT(http_version, 10);
    MERGE_INT(next_upstream, PROXY_NEXT_ERROR | PROXY_NEXT_TIMEOUT);
    if (conf->headers == NULL && prev) {
        conf->headers = proxy_keyval_list_copy(prev->headers);
    }
    MERGE_STR(ssl_certificate, NULL);
    MERGE_STR(ssl_certificate_key, NULL);
    MERGE_STR(ssl_password_file, NULL);
    MERGE_STR(ssl_trusted_certificate, NULL);
    MERGE_STR(ssl_crl, NULL);
    MERGE_STR(ssl_name, NULL);
    MERGE_STR(ssl_ciphers, "DEFAULT");
    MERGE_INT(ssl_verify, 0);
    MERGE_INT(ssl_verify_depth, 1);
    MERGE_INT(ssl_server_name, 0);
    MERGE_INT(ssl_session_reuse, 1);
    MERGE_INT(ssl_protocols, PROXY_SSL_TLSv1 | PROXY_SSL_TLSv1_1 | PROXY_SSL_TLSv1_2
        | PROXY_SSL_TLSv1_3);
    if (conf->ssl_conf_commands == NULL && prev) {
        conf->ssl_conf_commands = proxy_keyval_list_copy(prev->ssl_conf_commands);
    }
}

/* ---- after parsing ------------------------------------------------------------------------------ */

static void
proxy_conf_post_error(struct proxy_conf_parser *p, const char *file, int line,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
proxy_conf_post_error(struct proxy_conf_parser *p, const char *file, int line,
    const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    p->file = file;
    p->line = line;
    proxy_conf_error(p, "%s", msg);
}

static void
proxy_conf_warn(struct proxy_conf *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
proxy_conf_warn(struct proxy_conf *c, const char *fmt, ...)
{
    char msg[1024];
    char *w;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    w = proxy_xasprintf("%s%s\n", c->warnings ? c->warnings : "", msg);
    free(c->warnings);
    c->warnings = w;
}

static int
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
        if (proxy_conf_resolve(spec, port, &u->peers, &u->num_peers, NULL, 0, NULL,
                msg, sizeof(msg)) != 0) {
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
        lc->proxy_host = strchr(lc->pass_host, ':')
            ? proxy_xasprintf("[%s]", lc->pass_host) : proxy_xstrdup(lc->pass_host);
    }
    return 0;
}

/* The name checked against the upstream certificate and sent as SNI:
 * proxy_ssl_name, else the proxy_pass host; in both cases nginx strips a
 * port (ngx_http_upstream_ssl_name()). */
static char *
proxy_conf_ssl_name(const struct proxy_loc_conf *lc)
{
    const char *name = lc->ssl_name ? lc->ssl_name : lc->proxy_host;
    const char *end;

    if (name[0] == '[') {
        end = strchr(name, ']');
        return end ? proxy_xstrndup(name + 1, (size_t) (end - name - 1))
                   : proxy_xstrdup(name);
    }
    end = strchr(name, ':');
    if (end && strchr(end + 1, ':') == NULL) {
        return proxy_xstrndup(name, (size_t) (end - name));
    }
    return proxy_xstrdup(name);
}

static int
proxy_conf_check_variables(struct proxy_conf_parser *p, struct proxy_loc_conf *lc)
{
    static const char *known[] = { "host", "proxy_host", "remote_addr",
        "remote_port", "proxy_add_x_forwarded_for", "scheme", "request_uri",
        "uri", "server_name", "server_port", "request_method", "proxy_port",
        "server_addr", NULL };
    size_t i, k;
    const char *v, *s;

    for (i = 0; lc->headers && i < lc->headers->num; i++) {
        for (v = strchr(lc->headers->items[i].value, '$'); v; v = strchr(v + 1, '$')) {
            char name[128];
            size_t n = 0;

            s = v + 1;
            if (*s == '{') {
                s++;
            }
            while ((isalnum((unsigned char) s[n]) || s[n] == '_') && n < sizeof(name) - 1) {
                name[n] = s[n];
                n++;
            }
            name[n] = '\0';
            if (strncmp(name, "http_", 5) == 0 && n > 5) {
                continue;
            }
            for (k = 0; known[k]; k++) {
                if (strcmp(known[k], name) == 0) {
                    break;
                }
            }
            if (known[k] == NULL) {
                proxy_conf_post_error(p, lc->file, lc->line,
                    "unknown \"%s\" variable (in \"proxy_set_header %s\")", name,
                    lc->headers->items[i].key);
                return -1;
            }
        }
    }
    return 0;
}

const char *
proxy_conf_location_text(const struct proxy_loc_conf *lc)
{
    return lc->prefix ? lc->prefix : "";
}

static int
proxy_conf_postprocess(struct proxy_conf_parser *p)
{
    struct proxy_conf *c = p->conf;
    struct proxy_server *s;
    struct proxy_loc_conf *lc;
    char msg[2048];
    size_t i;

    if (!c->have_events) {
        p->file = c->conf_file;
        p->line = 1;
        proxy_conf_error(p, "no \"events\" section in configuration");
    }
    if (c->http == NULL) {
        return 0;
    }
    proxy_conf_merge(c->http, NULL);
    for (s = c->servers; s; s = s->next) {
        proxy_conf_merge(s->conf, c->http);
        if (s->num_listens == 0) {
            /* nginx's default: listen *:80 (or 8000 when not root) */
            struct sockaddr_in sin;

            memset(&sin, 0, sizeof(sin));
            sin.sin_family = AF_INET;
            sin.sin_port = htons(geteuid() == 0 ? 80 : 8000);
            s->listens = proxy_xcalloc(1, sizeof(*s->listens));
            s->default_server = proxy_xcalloc(1, sizeof(int));
            s->listens[0] = proxy_conf_listen_find(c,
                (struct sockaddr_storage *) (void *) &sin, sizeof(sin));
            s->num_listens = 1;
        }
        for (i = 0; i < s->num_locs; i++) {
            lc = s->locs[i];
            proxy_conf_merge(lc, s->conf);
            if (proxy_conf_check_variables(p, lc) != 0 || lc->pass_url == NULL) {
                continue;
            }
            if (proxy_conf_link_upstream(p, lc) != 0) {
                continue;
            }
            if (lc->ssl_name && strchr(lc->ssl_name, '$')) {
                proxy_conf_post_error(p, lc->file, lc->line, "variables in "
                    "\"proxy_ssl_name\" are not supported by uptls-proxy");
                continue;
            }
            lc->ssl_name_value = proxy_conf_ssl_name(lc);
            if (!lc->pass_ssl) {
                continue;
            }
            /* ngx_http_proxy_set_ssl(): verification needs trusted CAs; the
             * system store is never used. */
            if (lc->ssl_verify && lc->ssl_trusted_certificate == NULL) {
                proxy_conf_post_error(p, lc->file, lc->line,
                    "no \"proxy_ssl_trusted_certificate\" for \"proxy_ssl_verify\"");
                continue;
            }
            if (lc->ssl_certificate && lc->ssl_certificate_key == NULL) {
                proxy_conf_post_error(p, lc->file, lc->line,
                    "no \"proxy_ssl_certificate_key\" is defined for certificate "
                    "\"%s\"", lc->ssl_certificate);
                continue;
            }
            msg[0] = '\0';
            if (proxy_ssl_ctx_build(c, lc, msg, sizeof(msg)) != 0) {
                proxy_conf_post_error(p, lc->file, lc->line, "%s", msg);
                continue;
            }
            if (!lc->ssl_verify) {
                proxy_conf_warn(c, "upstream TLS of location \"%s\" (%s:%d) proxying "
                    "to \"%s\" is not verified: \"proxy_ssl_verify\" is off",
                    proxy_conf_location_text(lc), lc->file, lc->line, lc->pass_url);
            }
        }
    }
    return 0;
}

/* ---- entry points ----------------------------------------------------------------------------- */

/*
 * Loads FILE (relative to PREFIX) plus EXTRA (the -g directives), merges and
 * builds the TLS contexts. On failure err holds one line per error, each
 * starting with "[emerg] ".
 */
int
proxy_conf_load(struct proxy_conf *conf, const char *prefix, const char *file,
    const char *extra, char *err, size_t err_len)
{
    struct proxy_conf_parser p;
    char cwd[PATH_MAX];
    const char *slash;

    memset(conf, 0, sizeof(*conf));
    memset(&p, 0, sizeof(p));
    err[0] = '\0';
    p.conf = conf;
    p.err = err;
    p.err_len = err_len;
    conf->worker_processes = 1;
    conf->worker_connections = 512;
    conf->error_log_level = PROXY_LOG_ERR;

    if (getcwd(cwd, sizeof(cwd)) == NULL) {
        snprintf(cwd, sizeof(cwd), "/");
    }
    if (prefix == NULL) {
        conf->prefix = proxy_xasprintf("%s/", cwd);
    } else if (prefix[0] == '/') {
        conf->prefix = proxy_xasprintf("%s%s", prefix,
            prefix[strlen(prefix) - 1] == '/' ? "" : "/");
    } else {
        conf->prefix = proxy_xasprintf("%s/%s%s", cwd, prefix,
            prefix[strlen(prefix) - 1] == '/' ? "" : "/");
    }
    if (file == NULL) {
        conf->conf_file = proxy_xasprintf("%sconf/nginx.conf", conf->prefix);
    } else if (file[0] == '/') {
        conf->conf_file = proxy_xstrdup(file);
    } else {
        conf->conf_file = proxy_xasprintf("%s/%s", cwd, file);
    }
    /* nginx: with -c the configuration prefix is the file's directory */
    slash = strrchr(conf->conf_file, '/');
    conf->conf_prefix = proxy_xstrndup(conf->conf_file,
        (size_t) (slash - conf->conf_file) + 1);

    proxy_conf_current_ctx = PROXY_CTX_MAIN;
    proxy_conf_current_conf = conf;
    p.file = conf->conf_file;
    if (proxy_conf_parse_file(&p, conf->conf_file, PROXY_CTX_MAIN, conf) != 0) {
        return -1;
    }
    if (extra && *extra) {
        if (proxy_conf_parse_buffer(&p, proxy_conf_file_keep(conf, "command line"),
                extra, strlen(extra), PROXY_CTX_MAIN, conf) != 0) {
            return -1;
        }
    }
    if (p.num_errors == 0) {
        proxy_conf_postprocess(&p);
    }
    return p.num_errors ? -1 : 0;
}

static void
proxy_loc_conf_free(struct proxy_loc_conf *lc)
{
    if (lc == NULL) {
        return;
    }
    free(lc->prefix);
    free(lc->pass_url);
    free(lc->pass_host);
    free(lc->pass_uri);
    free(lc->proxy_host);
    free(lc->return_text);
    proxy_keyval_list_free(lc->headers);
    free(lc->ssl_certificate);
    free(lc->ssl_certificate_key);
    free(lc->ssl_password_file);
    free(lc->ssl_trusted_certificate);
    free(lc->ssl_crl);
    free(lc->ssl_name);
    free(lc->ssl_ciphers);
    proxy_keyval_list_free(lc->ssl_conf_commands);
    SSL_CTX_free(lc->ssl_ctx);
    free(lc->tls_key);
    free(lc->hdr_plan);
    free(lc->ssl_name_value);
    free(lc);
}

void
proxy_conf_free(struct proxy_conf *conf)
{
    struct proxy_server *s, *sn;
    struct proxy_upstream *u, *un;
    struct proxy_listen *l, *ln;
    size_t i;

    for (s = conf->servers; s; s = sn) {
        sn = s->next;
        proxy_loc_conf_free(s->conf);
        for (i = 0; i < s->num_locs; i++) {
            proxy_loc_conf_free(s->locs[i]);
        }
        free(s->locs);
        for (i = 0; i < s->num_names; i++) {
            free(s->names[i]);
        }
        free(s->names);
        free(s->listens);
        free(s->default_server);
        free(s);
    }
    for (u = conf->upstreams; u; u = un) {
        un = u->next;
        free(u->name);
        free(u->peers);
        free(u);
    }
    for (l = conf->listens; l; l = ln) {
        ln = l->next;
        free(l);
    }
    proxy_loc_conf_free(conf->http);
    for (i = 0; i < conf->num_files; i++) {
        free(conf->files[i]);
    }
    free(conf->files);
    free(conf->prefix);
    free(conf->conf_file);
    free(conf->conf_prefix);
    free(conf->pid_file);
    free(conf->error_log);
    free(conf->warnings);
    memset(conf, 0, sizeof(*conf));
}
