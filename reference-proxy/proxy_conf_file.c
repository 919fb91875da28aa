/*
 * The configuration file (nginx's ngx_conf_file.c): nginx syntax, read by
 * the tokenizer below, include with globs, and one handler that looks each
 * directive up in the modules' tables (proxy_conf_modules[]). A directive
 * in no table is an error, never ignored. Errors are collected (like
 * HAProxy) and each names the file, line and directive in nginx's words; a
 * syntax error stops the parse.
 */
#include "proxy_conf_file.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors ------------------------------------------------------------------------- */

static void proxy_conf_verror(struct proxy_conf_parser *p, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Appends "[emerg] MESSAGE in FILE:LINE" to the error buffer. */
static void
proxy_conf_verror(struct proxy_conf_parser *p, const char *fmt, va_list ap)
{
    size_t used = strlen(p->err);
    int n;

    p->num_errors++;
    if (used + 64 >= p->err_len) {
        return;
    }
    n = snprintf(p->err + used, p->err_len - used, "[emerg] ");
    used += (size_t) n;
    n = vsnprintf(p->err + used, p->err_len - used, fmt, ap);
    if (n < 0 || used + (size_t) n >= p->err_len) {
        return;
    }
    used += (size_t) n;
    snprintf(p->err + used, p->err_len - used, " in %s:%d\n", p->file, p->line);
}

void
proxy_conf_error(struct proxy_conf_parser *p, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    proxy_conf_verror(p, fmt, ap);
    va_end(ap);
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

char *
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

/* An error found after parsing, at the file and line of what it concerns. */
void
proxy_conf_post_error(struct proxy_conf_parser *p, const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    p->file = file;
    p->line = line;
    va_start(ap, fmt);
    proxy_conf_verror(p, fmt, ap);
    va_end(ap);
}

/* A warning kept for the error log, written there at start. */
void
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

/* ---- parser ------------------------------------------------------------------------------ */

static int
proxy_conf_parse_buffer(
    struct proxy_conf_parser *p, const char *file, const char *buf, size_t len, int ctx, void *conf)
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
proxy_conf_parse_file(struct proxy_conf_parser *p, const char *path, int ctx, void *conf)
{
    FILE *f;
    char *buf = NULL;
    size_t len = 0;
    int rc;

    f = fopen(path, "r");
    if (f == NULL) {
        proxy_conf_error(p, "open() \"%s\" failed (%d: %s)", path, errno, strerror(errno));
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
    rc = proxy_conf_parse_buffer(
        p, proxy_conf_file_keep(p->conf, path), buf ? buf : "", len, ctx, conf);
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
proxy_conf_set_include(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs)
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
        proxy_conf_error(p, "open() \"%s\" failed (2: No such file or directory)", pattern);
        free(pattern);
        return -1;
    }
    p->include_depth++;
    for (i = 0; grc == 0 && i < g.gl_pathc && rc == 0; i++) {
        if (proxy_conf_include_cycle(p, g.gl_pathv[i])) {
            proxy_conf_error(p, "\"%s\" includes itself (through \"%s\")", g.gl_pathv[i], args[1]);
            rc = -1;
            break;
        }
        rc = proxy_conf_parse_file(
            p, g.gl_pathv[i], proxy_conf_current_ctx, proxy_conf_current_conf);
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
    case PROXY_CTX_MAIN:
        return "main";
    case PROXY_CTX_EVENTS:
        return "events";
    case PROXY_CTX_HTTP:
        return "http";
    case PROXY_CTX_SRV:
        return "server";
    case PROXY_CTX_LOC:
        return "location";
    case PROXY_CTX_UPS:
        return "upstream";
    default:
        return "?";
    }
}

static const struct proxy_cmd proxy_conf_file_commands[] = {
    { "include", PROXY_CTX_MAIN | PROXY_CTX_EVENTS | PROXY_CTX_ANY_LOC | PROXY_CTX_UPS, 1, 1, 0,
        proxy_conf_set_include, 0 },
};

const struct proxy_conf_module proxy_conf_file_module = { "conf",
    PROXY_CONF_CMDS(proxy_conf_file_commands), NULL, NULL };

/* Runs one directive. Returns 0, -1 (error recorded, parsing goes on) or -2
 * (syntax error: stop). */
static int
proxy_conf_handle(struct proxy_conf_parser *p, int ctx, void *conf, char **args, int nargs, int tok)
{
    const struct proxy_cmd *cmd = NULL;
    int known = 0, rc, saved_ctx;
    void *saved_conf;
    size_t i, m;

    if (ctx == PROXY_CTX_SKIP) {
        if (tok == PROXY_TOK_LBRACE) {
            return proxy_conf_parse_block(p, PROXY_CTX_SKIP, NULL, 0) == 0 ? 0 : -2;
        }
        return 0;
    }
    for (m = 0; cmd == NULL && proxy_conf_modules[m]; m++) {
        const struct proxy_conf_module *mod = proxy_conf_modules[m];

        for (i = 0; i < mod->num_cmds; i++) {
            if (strcmp(mod->cmds[i].name, args[0]) == 0) {
                known = 1;
                if (mod->cmds[i].contexts & ctx) {
                    cmd = &mod->cmds[i];
                    break;
                }
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
        proxy_conf_error(p, "invalid number of arguments in \"%s\" directive", cmd->name);
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

int
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

/* Reads the main file, then the -g directives (extra), in the main context. */
int
proxy_conf_parse_main(struct proxy_conf_parser *p, const char *extra)
{
    struct proxy_conf *conf = p->conf;

    proxy_conf_current_ctx = PROXY_CTX_MAIN;
    proxy_conf_current_conf = conf;
    p->file = conf->conf_file;
    if (proxy_conf_parse_file(p, conf->conf_file, PROXY_CTX_MAIN, conf) != 0) {
        return -1;
    }
    if (extra && *extra) {
        if (proxy_conf_parse_buffer(p, proxy_conf_file_keep(conf, "command line"), extra,
                strlen(extra), PROXY_CTX_MAIN, conf)
            != 0) {
            return -1;
        }
    }
    return 0;
}
