/*
 * The proxy_* directives (nginx's ngx_http_proxy_module.c at configuration
 * time): proxy_pass, timeouts, proxy_set_header, proxy_next_upstream and the
 * upstream TLS settings proxy_ssl_*, with their create and merge; the
 * defaults are those of the nginx documentation
 * (https://nginx.org/en/docs/http/ngx_http_proxy_module.html).
 */
#include "proxy_conf_file.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../harness/common/uc_switch.h"
#include "../harness/common/uc_tls.h"

/* A proxy_ssl_protocols name's bit (nginx's NGX_SSL_SSLv2 .. NGX_SSL_TLSv1_3:
 * 0x0002, then 0x0004 << the minor number of the version), 0 if unknown. */
static int
proxy_ssl_protocol_bit(const char *name)
{
    int v = uc_tls_version_by_name(name);

    return v == 0 ? 0 : v == SSL2_VERSION ? PROXY_SSL_SSLv2 : PROXY_SSL_SSLv3 << (v - SSL3_VERSION);
}

/* proxy_ssl_protocols [SSLv2] [SSLv3] [TLSv1] [TLSv1.1] [TLSv1.2] [TLSv1.3] */
static int
proxy_conf_set_protocols(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    return proxy_conf_set_bits(p, cmd, conf, args, nargs, proxy_ssl_protocol_bit,
        ", it must be \"SSLv2\", \"SSLv3\", \"TLSv1\", \"TLSv1.1\", \"TLSv1.2\" or "
        "\"TLSv1.3\"");
}

/* proxy_next_upstream's conditions (ngx_http_proxy_next_upstream_masks) */
static const struct uc_switch proxy_next_upstream_names[] = {
    { "error", PROXY_NEXT_ERROR, "connecting, sending or reading failed" },
    { "timeout", PROXY_NEXT_TIMEOUT, "a timeout while connecting, sending or reading" },
    { "invalid_header", PROXY_NEXT_INVALID_HEADER, "an empty or invalid response" },
    { "http_500", PROXY_NEXT_HTTP_500, "status 500" },
    { "http_502", PROXY_NEXT_HTTP_502, "status 502" },
    { "http_503", PROXY_NEXT_HTTP_503, "status 503" },
    { "http_504", PROXY_NEXT_HTTP_504, "status 504" },
    { "http_403", PROXY_NEXT_HTTP_403, "status 403" },
    { "http_404", PROXY_NEXT_HTTP_404, "status 404" },
    { "http_429", PROXY_NEXT_HTTP_429, "status 429" },
    { "non_idempotent", PROXY_NEXT_NON_IDEMPOTENT, "also POST, LOCK, PATCH once sent" },
    { "off", PROXY_NEXT_OFF, "never the next server" },
};

static int
proxy_next_upstream_bit(const char *name)
{
    return (int) uc_switch_lookup(
        proxy_next_upstream_names, UC_SWITCH_COUNT(proxy_next_upstream_names), name);
}

static int
proxy_conf_set_next_upstream(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
{
    int *f = PROXY_FIELD(conf, cmd, int);

    if (proxy_conf_set_bits(p, cmd, conf, args, nargs, proxy_next_upstream_bit, "") != 0) {
        return -1;
    }
    /* as nginx's merge: "off" cancels everything else */
    if (*f & PROXY_NEXT_OFF) {
        *f = PROXY_NEXT_OFF;
    }
    return 0;
}

/* proxy_pass http(s)://host-or-upstream[:port][/uri] */
static int
proxy_conf_set_proxy_pass(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
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
        proxy_conf_error(p,
            "variables in \"proxy_pass\" are not supported by "
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
    if (proxy_conf_resolve(hostport, 0, NULL, NULL, host, sizeof(host), &port, msg, sizeof(msg))
        != 0) {
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
proxy_conf_set_http_version(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
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
        proxy_conf_error(p,
            "invalid value \"%s\" in \"%s\" directive, it must be "
            "\"1.0\" or \"1.1\"",
            args[1], cmd->name);
        return -1;
    }
    return 0;
}

static const struct proxy_cmd proxy_http_proxy_commands[] = {
    { "proxy_pass", PROXY_CTX_LOC, 1, 1, 0, proxy_conf_set_proxy_pass, 0 },
    { "proxy_connect_timeout", PROXY_CTX_ANY_LOC, 1, 1, 0, proxy_conf_set_msec,
        LC(connect_timeout) },
    { "proxy_read_timeout", PROXY_CTX_ANY_LOC, 1, 1, 0, proxy_conf_set_msec, LC(read_timeout) },
    { "proxy_send_timeout", PROXY_CTX_ANY_LOC, 1, 1, 0, proxy_conf_set_msec, LC(send_timeout) },
    { "proxy_http_version", PROXY_CTX_ANY_LOC, 1, 1, 0, proxy_conf_set_http_version, 0 },
    { "proxy_set_header", PROXY_CTX_ANY_LOC, 2, 2, 0, proxy_conf_set_keyval, LC(headers) },
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
    { "proxy_ssl_ciphers", PROXY_CTX_ANY_LOC, 1, 1, 0, proxy_conf_set_str, LC(ssl_ciphers) },
    { "proxy_ssl_conf_command", PROXY_CTX_ANY_LOC, 2, 2, 0, proxy_conf_set_keyval,
        LC(ssl_conf_commands) },
    { "proxy_ssl_session_reuse", PROXY_CTX_ANY_LOC, 1, 1, 0, proxy_conf_set_flag,
        LC(ssl_session_reuse) },
};

static void
proxy_http_proxy_create(struct proxy_loc_conf *lc)
{
    lc->connect_timeout = PROXY_UNSET;
    lc->read_timeout = PROXY_UNSET;
    lc->send_timeout = PROXY_UNSET;
    lc->http_version = PROXY_UNSET;
    lc->next_upstream = PROXY_UNSET;
    lc->ssl_verify = PROXY_UNSET;
    lc->ssl_verify_depth = PROXY_UNSET;
    lc->ssl_server_name = PROXY_UNSET;
    lc->ssl_session_reuse = PROXY_UNSET;
    lc->ssl_protocols = PROXY_UNSET;
}

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
proxy_http_proxy_merge(struct proxy_loc_conf *conf, const struct proxy_loc_conf *prev)
{
    MERGE_INT(connect_timeout, 60000);
    MERGE_INT(read_timeout, 60000);
    MERGE_INT(send_timeout, 60000);
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
    MERGE_INT(
        ssl_protocols, PROXY_SSL_TLSv1 | PROXY_SSL_TLSv1_1 | PROXY_SSL_TLSv1_2 | PROXY_SSL_TLSv1_3);
    if (conf->ssl_conf_commands == NULL && prev) {
        conf->ssl_conf_commands = proxy_keyval_list_copy(prev->ssl_conf_commands);
    }
}

/* The name checked against the upstream certificate and sent as SNI:
 * proxy_ssl_name, else the proxy_pass host; in both cases nginx strips a
 * port (ngx_http_upstream_ssl_name()). */
char *
proxy_conf_ssl_name(const struct proxy_loc_conf *lc)
{
    const char *name = lc->ssl_name ? lc->ssl_name : lc->proxy_host;
    const char *end;

    if (name[0] == '[') {
        end = strchr(name, ']');
        return end ? proxy_xstrndup(name + 1, (size_t) (end - name - 1)) : proxy_xstrdup(name);
    }
    end = strchr(name, ':');
    if (end && strchr(end + 1, ':') == NULL) {
        return proxy_xstrndup(name, (size_t) (end - name));
    }
    return proxy_xstrdup(name);
}

int
proxy_conf_check_variables(struct proxy_conf_parser *p, struct proxy_loc_conf *lc)
{
    static const char *known[] = { "host", "proxy_host", "remote_addr", "remote_port",
        "proxy_add_x_forwarded_for", "scheme", "request_uri", "uri", "server_name", "server_port",
        "request_method", "proxy_port", "server_addr", NULL };
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

const struct proxy_conf_module proxy_http_proxy_module = { "proxy",
    PROXY_CONF_CMDS(proxy_http_proxy_commands), proxy_http_proxy_create, proxy_http_proxy_merge };
