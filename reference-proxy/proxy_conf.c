/*
 * The configuration as a whole (nginx's ngx_cycle.c and ngx_http_block()):
 * load (read, merge, post-process, build the TLS contexts), the merge of
 * every module's settings down the http > server > location levels, and
 * free. Directives are looked up in the modules of proxy_conf_modules[],
 * each in its own file (see proxy_conf_file.h).
 */
#include "proxy_conf_file.h"

#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const struct proxy_conf_module *const proxy_conf_modules[] = { &proxy_conf_file_module,
    &proxy_conf_core_module, &proxy_upstream_conf_module, &proxy_upstream_keepalive_module,
    &proxy_http_proxy_module, NULL };

/* Fills the unset settings of conf from prev (the enclosing level, NULL for
 * the http level), then from the defaults: each module's merge. */
void
proxy_conf_merge(struct proxy_loc_conf *conf, const struct proxy_loc_conf *prev)
{
    size_t i;

    for (i = 0; proxy_conf_modules[i]; i++) {
        if (proxy_conf_modules[i]->merge) {
            proxy_conf_modules[i]->merge(conf, prev);
        }
    }
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
            s->listens[0] =
                proxy_conf_listen_find(c, (struct sockaddr_storage *) (void *) &sin, sizeof(sin));
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
                proxy_conf_post_error(p, lc->file, lc->line,
                    "variables in "
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
                    "\"%s\"",
                    lc->ssl_certificate);
                continue;
            }
            msg[0] = '\0';
            if (proxy_ssl_ctx_build(c, lc, msg, sizeof(msg)) != 0) {
                proxy_conf_post_error(p, lc->file, lc->line, "%s", msg);
                continue;
            }
            if (!lc->ssl_verify) {
                proxy_conf_warn(c,
                    "upstream TLS of location \"%s\" (%s:%d) proxying "
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
proxy_conf_load(struct proxy_conf *conf, const char *prefix, const char *file, const char *extra,
    char *err, size_t err_len)
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
        conf->prefix =
            proxy_xasprintf("%s%s", prefix, prefix[strlen(prefix) - 1] == '/' ? "" : "/");
    } else {
        conf->prefix =
            proxy_xasprintf("%s/%s%s", cwd, prefix, prefix[strlen(prefix) - 1] == '/' ? "" : "/");
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
    conf->conf_prefix = proxy_xstrndup(conf->conf_file, (size_t) (slash - conf->conf_file) + 1);

    if (proxy_conf_parse_main(&p, extra) != 0) {
        return -1;
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
