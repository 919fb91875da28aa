/*
 * uptls-proxy: the reference reverse proxy of the uptls harness.
 *
 * Its upstream TLS is the executable reading of the nginx proxy_ssl_*
 * directives as documented at https://nginx.org/en/docs/http/
 * ngx_http_proxy_module.html; it reads the nginx configuration syntax for
 * the subset it supports (the directive tables are in the modules listed in
 * proxy_conf_file.h; the HTTP engine's files are listed in proxy_http.h).
 *
 * Conventions: prefix proxy_, functions proxy_object_verb, no struct
 * typedefs; library functions return 0 / -1 and write a message into a
 * caller-owned buffer; only main() exits.
 */
#ifndef PROXY_H
#define PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>

#include <openssl/ssl.h>

#include "../harness/common/uc_err.h"

#define PROXY_VERSION "0.1.0"
#define PROXY_NAME "uptls-proxy"

#define PROXY_UNSET (-1)
#define PROXY_ERRLEN 8192

/* ---- faults (proxy_fault.c) ---------------------------------------------- */

enum proxy_fault {
    PROXY_FAULT_IGNORE_CLIENT_CERT = 1u << 0,
    PROXY_FAULT_SKIP_VERIFY = 1u << 1,
    PROXY_FAULT_IGNORE_DEPTH = 1u << 2,
    PROXY_FAULT_SKIP_HOST_CHECK = 1u << 3,
    PROXY_FAULT_IGNORE_PROTOCOLS = 1u << 4,
    PROXY_FAULT_IGNORE_CIPHERS = 1u << 5,
    PROXY_FAULT_SHARE_SESSIONS = 1u << 6,
    PROXY_FAULT_NO_SESSION_REUSE = 1u << 7,
    PROXY_FAULT_NO_SNI = 1u << 8,
    PROXY_FAULT_MASK_UPSTREAM_ERRORS = 1u << 9,
    PROXY_FAULT_PASS_TRUNCATED = 1u << 10,
    PROXY_FAULT_CUT_BIG_HEADERS = 1u << 11,
    PROXY_FAULT_FATAL_POST_HANDSHAKE = 1u << 12,
    PROXY_FAULT_RENEGOTIATION_UNVERIFIED = 1u << 13,
    PROXY_FAULT_OFFER_X25519_ONLY = 1u << 14,
    PROXY_FAULT_STRICT_CHAIN = 1u << 15,
    PROXY_FAULT_SMALL_CERT_LIST = 1u << 16,
};

extern uint64_t proxy_faults;

int proxy_fault_enable(const char *names, char *err, size_t err_len);
int proxy_fault_on(uint64_t fault);
void proxy_fault_list_print(void);
/* The TLS faults' hooks: applied to every upstream SSL_CTX once it is set
 * up, and first in the verify callback (returns the new ok). */
void proxy_fault_ssl_ctx(SSL_CTX *ctx);
int proxy_fault_verify(int ok, X509_STORE_CTX *store);

/* ---- log (proxy_log.c) ----------------------------------------------------- */

enum proxy_log_level {
    PROXY_LOG_EMERG = 1,
    PROXY_LOG_ALERT,
    PROXY_LOG_CRIT,
    PROXY_LOG_ERR,
    PROXY_LOG_WARN,
    PROXY_LOG_NOTICE,
    PROXY_LOG_INFO,
    PROXY_LOG_DEBUG,
};

int proxy_log_level_parse(const char *name);
int proxy_log_open(const char *path, int level, char *err, size_t err_len);
void proxy_log_close(void);
int proxy_log_enabled(int level);
void proxy_log_error(int level, unsigned long conn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- configuration (proxy_conf*.c, see proxy_conf_file.h) --------------- */

/* proxy_ssl_protocols bits (the nginx NGX_SSL_* set) */
#define PROXY_SSL_SSLv2 0x0002
#define PROXY_SSL_SSLv3 0x0004
#define PROXY_SSL_TLSv1 0x0008
#define PROXY_SSL_TLSv1_1 0x0010
#define PROXY_SSL_TLSv1_2 0x0020
#define PROXY_SSL_TLSv1_3 0x0040

/* proxy_next_upstream bits */
#define PROXY_NEXT_ERROR 0x01
#define PROXY_NEXT_TIMEOUT 0x02
#define PROXY_NEXT_INVALID_HEADER 0x04
#define PROXY_NEXT_HTTP_500 0x08
#define PROXY_NEXT_HTTP_502 0x10
#define PROXY_NEXT_HTTP_503 0x20
#define PROXY_NEXT_HTTP_504 0x40
#define PROXY_NEXT_HTTP_403 0x80
#define PROXY_NEXT_HTTP_404 0x100
#define PROXY_NEXT_HTTP_429 0x200
#define PROXY_NEXT_NON_IDEMPOTENT 0x400
#define PROXY_NEXT_OFF 0x800

struct proxy_keyval {
    char *key;
    char *value;
};

struct proxy_keyval_list {
    struct proxy_keyval *items;
    size_t num;
};

struct proxy_peer {
    char name[300];     /* as written: "host:port" */
    char addr_text[80]; /* "127.0.0.1:8443" / "[::1]:8443" */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int weight;
    int max_fails;
    long fail_timeout_ms;
    /* run time, per worker: smooth weighted round robin as nginx */
    int current_weight;
    int fails;
    long long checked_ms;
};

struct proxy_upstream_conn;

struct proxy_upstream {
    char *name;
    int implicit; /* made from a proxy_pass host, not a block */
    int port;     /* implicit only */
    struct proxy_peer *peers;
    size_t num_peers;
    int keepalive; /* idle connections cached, 0 = off */
    const char *file;
    int line;
    /* run time: idle keepalive connections, most recent first */
    struct proxy_upstream_conn *idle;
    int num_idle;
    struct proxy_upstream *next;
};

/*
 * One set of proxy settings. The same struct is used at the http, server
 * and location levels; proxy_conf_merge() fills unset fields of a child from
 * its parent and then from the defaults, calling each module's merge like
 * nginx's merge_loc_conf.
 */
struct proxy_loc_conf {
    /* location itself */
    char *prefix;
    int exact;
    const char *file;
    int line;

    /* proxy_pass */
    char *pass_url;
    int pass_ssl;
    char *pass_host;  /* host or upstream name, no port */
    int pass_port;    /* 0 = none written */
    char *pass_uri;   /* NULL = no URI part */
    char *proxy_host; /* $proxy_host */
    struct proxy_upstream *upstream;
    int pass_line;
    const char *pass_file;

    int return_code;
    char *return_text;

    long connect_timeout;
    long read_timeout;
    long send_timeout;
    long keepalive_timeout;
    int http_version; /* 10 or 11 */
    int next_upstream;
    struct proxy_keyval_list *headers; /* proxy_set_header, NULL = unset */
    int access_log_set;

    /* upstream TLS: proxy_ssl_* */
    char *ssl_certificate;
    char *ssl_certificate_key;
    char *ssl_password_file;
    char *ssl_trusted_certificate;
    char *ssl_crl;
    char *ssl_name;
    char *ssl_ciphers;
    int ssl_verify;
    int ssl_verify_depth;
    int ssl_server_name;
    int ssl_session_reuse;
    int ssl_protocols;
    struct proxy_keyval_list *ssl_conf_commands;

    /* built after merging */
    SSL_CTX *ssl_ctx;
    char *tls_key;        /* fingerprint of the TLS settings */
    char *ssl_name_value; /* the name checked and sent as SNI */
    void *hdr_plan;       /* the request head plan (proxy_http_proxy.c), one block */
};

struct proxy_listen {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char text[80];
    int fd;
    struct proxy_listen *next;
};

struct proxy_server {
    struct proxy_loc_conf *conf; /* server-level settings */
    struct proxy_loc_conf **locs;
    size_t num_locs;
    char **names;
    size_t num_names;
    struct proxy_listen **listens;
    int *default_server;
    size_t num_listens;
    const char *file;
    int line;
    struct proxy_server *next;
};

struct proxy_conf {
    char *prefix; /* ends with '/' */
    char *conf_file;
    char *conf_prefix; /* directory of conf_file, ends with '/' */
    char **files;      /* every file read, for messages */
    size_t num_files;

    int worker_processes; /* 0 = auto */
    char *pid_file;
    char *error_log;
    int error_log_level;
    int worker_connections;
    int have_events;
    int have_http;

    struct proxy_loc_conf *http;
    struct proxy_upstream *upstreams;
    struct proxy_server *servers;
    struct proxy_listen *listens;
    /* warnings collected while loading, written to the error log at start */
    char *warnings;
};

int proxy_conf_load(struct proxy_conf *conf, const char *prefix, const char *file,
    const char *extra, char *err, size_t err_len);
void proxy_conf_free(struct proxy_conf *conf);
const char *proxy_conf_location_text(const struct proxy_loc_conf *lc);

/* ---- TLS (proxy_ssl.c) ------------------------------------------------------ */

int
proxy_ssl_ctx_build(struct proxy_conf *conf, struct proxy_loc_conf *lc, char *err, size_t err_len);
SSL *proxy_ssl_new(struct proxy_loc_conf *lc, const char *group, struct proxy_peer *peer, char *err,
    size_t err_len);
int proxy_ssl_check_after_handshake(SSL *ssl, struct proxy_loc_conf *lc, char *err, size_t err_len);
void proxy_ssl_release(SSL *ssl);
void proxy_ssl_sessions_free(void);

/* ---- verification memo (proxy_verify.c) ---------------------------------- */

int proxy_vmemo_attach(SSL_CTX *ctx);

/* ---- HTTP engine (proxy_worker.c; its parts: proxy_http.h) ------------------- */

struct event_base;
int proxy_worker_run(struct proxy_conf *conf, int worker_id, char *err, size_t err_len);

/* ---- small helpers (proxy_util.c) --------------------------------------------- */

void *proxy_xcalloc(size_t n, size_t size);
char *proxy_xstrdup(const char *s);
char *proxy_xstrndup(const char *s, size_t n);
char *proxy_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void proxy_keyval_list_add(struct proxy_keyval_list *l, const char *k, const char *v);
void proxy_keyval_list_free(struct proxy_keyval_list *l);
long long proxy_time_ms(void);
int proxy_addr_is_ip_literal(const char *name);
void proxy_sockaddr_text(const struct sockaddr *sa, char *out, size_t out_len, int with_port);

#endif
