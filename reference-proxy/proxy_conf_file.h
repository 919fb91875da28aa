/*
 * The configuration machinery of uptls-proxy, internal (nginx's
 * ngx_conf_file.h): the parser state, directive tables, and the modules that
 * own them. A module (proxy_conf_core.c, proxy_upstream_conf.c,
 * proxy_upstream_keepalive.c, proxy_http_proxy_conf.c) owns only its
 * directive table, the create of its fields (unset) and their merge; the
 * tokenizer, include, the directive handler and the generic setters are
 * proxy_conf_file.c's and proxy_conf_slot.c's; load, post-processing and
 * free are proxy_conf.c's.
 */
#ifndef PROXY_CONF_FILE_H
#define PROXY_CONF_FILE_H

#include "proxy.h"

#include <stddef.h>

#define PROXY_CTX_MAIN 0x01
#define PROXY_CTX_EVENTS 0x02
#define PROXY_CTX_HTTP 0x04
#define PROXY_CTX_SRV 0x08
#define PROXY_CTX_LOC 0x10
#define PROXY_CTX_UPS 0x20
#define PROXY_CTX_SKIP 0x40 /* inside an unknown block: syntax only */
#define PROXY_CTX_ANY_LOC (PROXY_CTX_HTTP | PROXY_CTX_SRV | PROXY_CTX_LOC)

#define PROXY_ARGS_MAX 64
#define PROXY_NARGS_ANY 1000

enum proxy_tok {
    PROXY_TOK_WORD,
    PROXY_TOK_SEMI,
    PROXY_TOK_LBRACE,
    PROXY_TOK_RBRACE,
    PROXY_TOK_EOF,
    PROXY_TOK_ERROR
};

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
    const struct proxy_conf_parser *outer; /* the file that included this one */
};

struct proxy_cmd;
typedef int proxy_cmd_set_fn(
    struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf, char **args, int nargs);

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

#define PROXY_FIELD(conf, cmd, type) ((type *) ((char *) (conf) + (cmd)->offset))
#define LC(field) offsetof(struct proxy_loc_conf, field)

/* for the modules' merge (conf, prev): unset fields from prev, then def */
#define MERGE_INT(f, def) \
    if (conf->f == PROXY_UNSET) \
    conf->f = prev && prev->f != PROXY_UNSET ? prev->f : (def)
#define MERGE_STR(f, def) \
    if (conf->f == NULL && ((prev && prev->f) || (def))) \
    conf->f = proxy_xstrdup(prev && prev->f ? prev->f : (def))


/* A configuration module: its directives, and for the settings it keeps in
 * struct proxy_loc_conf, create (set them unset) and merge (fill the unset
 * ones from the enclosing level, then from the defaults). */
struct proxy_conf_module {
    const char *name;
    const struct proxy_cmd *cmds;
    size_t num_cmds;
    void (*create)(struct proxy_loc_conf *lc);
    void (*merge)(struct proxy_loc_conf *conf, const struct proxy_loc_conf *prev);
};

#define PROXY_CONF_CMDS(a) (a), (sizeof(a) / sizeof((a)[0]))

/* the modules, in the order their directives are looked up (proxy_conf.c) */
extern const struct proxy_conf_module *const proxy_conf_modules[];
extern const struct proxy_conf_module proxy_conf_file_module;
extern const struct proxy_conf_module proxy_conf_core_module;
extern const struct proxy_conf_module proxy_upstream_conf_module;
extern const struct proxy_conf_module proxy_upstream_keepalive_module;
extern const struct proxy_conf_module proxy_http_proxy_module;

/* proxy_conf_file.c */
void proxy_conf_error(struct proxy_conf_parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void proxy_conf_post_error(struct proxy_conf_parser *p, const char *file, int line, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));
void
proxy_conf_warn(struct proxy_conf *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *proxy_conf_full_name(const char *prefix, const char *name);
int proxy_conf_parse_block(struct proxy_conf_parser *p, int ctx, void *conf, int eof_ok);
int proxy_conf_parse_main(struct proxy_conf_parser *p, const char *extra);

/* proxy_conf_slot.c: value parsers (ngx_parse.c) and generic setters
 * (ngx_conf_set_*_slot) */
long proxy_conf_parse_msec(const char *s);
int proxy_conf_parse_int(const char *s, int *out);
proxy_cmd_set_fn proxy_conf_set_flag, proxy_conf_set_num, proxy_conf_set_msec, proxy_conf_set_str,
    proxy_conf_set_path, proxy_conf_set_keyval, proxy_conf_set_noop;
int proxy_conf_set_bits(struct proxy_conf_parser *p, const struct proxy_cmd *cmd, void *conf,
    char **args, int nargs, int (*bit_of)(const char *name), const char *must_be);

/* proxy_conf_core.c */
struct proxy_listen *
proxy_conf_listen_find(struct proxy_conf *c, const struct sockaddr_storage *ss, socklen_t len);

/* proxy_upstream_conf.c */
int proxy_conf_resolve(const char *spec, int default_port, struct proxy_peer **peers,
    size_t *num_peers, char *host_out, size_t host_len, int *port_out, char *err, size_t err_len);
int proxy_conf_link_upstream(struct proxy_conf_parser *p, struct proxy_loc_conf *lc);

/* proxy_http_proxy_conf.c */
char *proxy_conf_ssl_name(const struct proxy_loc_conf *lc);
int proxy_conf_check_variables(struct proxy_conf_parser *p, struct proxy_loc_conf *lc);

/* proxy_conf.c */
void proxy_conf_merge(struct proxy_loc_conf *conf, const struct proxy_loc_conf *prev);

#endif
