/*
 * uptls-backend: a mock TLS upstream server that records, as JSON lines,
 * what the proxy under test did on the wire (ClientHello, handshake result,
 * client certificate, HTTP requests, how the connection ended).
 *
 * Observations are facts, never verdicts: the driver decides what they mean.
 */
#ifndef UPTLS_BACKEND_H
#define UPTLS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "../common/uc_json.h"
#include "../common/uc_strv.h"
#include "../common/uc_switch.h"

#define BACKEND_ERR_LEN 512
#define BACKEND_MAX_HELLO_EXTS 64

/* ---- fault switches (backend_fault.c) ---------------------------------- */

enum backend_fault {
    BACKEND_FAULT_STALL_HANDSHAKE = 1u << 0,
    BACKEND_FAULT_CLOSE_AFTER_CLIENT_HELLO = 1u << 1,
    BACKEND_FAULT_ALERT_AFTER_CLIENT_HELLO = 1u << 2,
    BACKEND_FAULT_NON_TLS = 1u << 3,
    BACKEND_FAULT_OMIT_INTERMEDIATE = 1u << 4,
    BACKEND_FAULT_TRUNCATE_BODY = 1u << 5,
    BACKEND_FAULT_RESET_AFTER_HEADERS = 1u << 6,
    BACKEND_FAULT_HUGE_HEADERS = 1u << 7,
    BACKEND_FAULT_SLOW_RESPONSE = 1u << 8,
    /* TLS-layer faults: backend_fault_tls.c (post-handshake messages and
     * records), backend_fault_chain.c (the presented chain, the groups),
     * backend_fault_flight.c (the handshake flight on the wire). */
    BACKEND_FAULT_HELLO_REQUEST_BEFORE_RESPONSE = 1u << 9,
    BACKEND_FAULT_HELLO_REQUEST_MID_BODY = 1u << 10,
    BACKEND_FAULT_RENEGOTIATE_OTHER_CERT = 1u << 11,
    BACKEND_FAULT_KEY_UPDATE_BEFORE_RESPONSE = 1u << 12,
    BACKEND_FAULT_KEY_UPDATE_MID_BODY = 1u << 13,
    BACKEND_FAULT_KEY_UPDATE_FLOOD = 1u << 14,
    BACKEND_FAULT_HELLO_RETRY_REQUEST = 1u << 15,
    BACKEND_FAULT_CHAIN_REVERSED = 1u << 16,
    BACKEND_FAULT_CHAIN_DUPLICATE = 1u << 17,
    BACKEND_FAULT_CHAIN_EXTRA_UNRELATED = 1u << 18,
    BACKEND_FAULT_CHAIN_100_CERTS = 1u << 19,
    BACKEND_FAULT_CHAIN_60KB = 1u << 20,
    BACKEND_FAULT_DRIBBLE_HANDSHAKE = 1u << 21,
    BACKEND_FAULT_GARBAGE_AFTER_SERVER_HELLO = 1u << 22,
    BACKEND_FAULT_OVERSIZED_RECORD_MID_BODY = 1u << 23,
    BACKEND_FAULT_CORRUPT_RECORD_MID_BODY = 1u << 24,
    BACKEND_FAULT_CLOSE_NOTIFY_AFTER_HEADERS = 1u << 25,
    BACKEND_FAULT_RESET_AFTER_HANDSHAKE = 1u << 26,
};

/* The fault table: name, bit, help (uc_switch_lookup, _list, _print). */
extern const struct uc_switch backend_faults[];
extern const size_t backend_num_faults;

/* ---- configuration (backend_config.c) ---------------------------------- */

enum backend_client_auth { BACKEND_AUTH_NONE, BACKEND_AUTH_REQUEST, BACKEND_AUTH_REQUIRE };

struct backend_config {
    const char *name;
    const char *cert;
    const char *key;
    const char *listen;
    int port;
    int client_auth; /* enum backend_client_auth */
    const char *client_ca;
    int min_proto; /* 0 = library default, else TLS1_VERSION... */
    int max_proto;
    const char *ciphers;
    const char *ciphersuites;
    int session_cache; /* 1 = on */
    int tickets;       /* 1 = on */
    int close_after_response;
    const char *log_path;  /* NULL = stdout */
    uint64_t faults;       /* enum backend_fault bits */
    int idle_timeout;      /* seconds */
    const char *listeners; /* --listeners FILE: the listeners come from FILE */
    int help;
    int list_faults; /* --list-faults: print the fault table and exit */
};

/*
 * Parses argv into cfg (defaults first). On error writes every problem found,
 * one per line, into err and returns -1. Returns 0 on success.
 */
int
backend_config_parse(struct backend_config *cfg, int argc, char **argv, char *err, size_t err_len);
void backend_config_print_help(const char *prog);

/* ---- listener specs (backend_listeners.c) --------------------------------
 *
 * --listeners FILE: one JSON object per line, one listener per object; the
 * keys are the long options without their dashes, with the same values
 * (a flag is true/false, on|off may be true/false, fault a string or a list,
 * port and idle-timeout numbers). */

enum json_kind { JSON_STRING, JSON_NUMBER, JSON_TRUE, JSON_FALSE, JSON_NULL };

/*
 * Reads one JSON object whose member values are scalars or arrays of
 * scalars. Calls member() once per scalar: index -1 for a plain value, 0, 1,
 * ... for the elements of an array; text is the decoded string (or the
 * number's text), NUL-terminated, valid until member() returns. member()
 * returns 0 to go on. Returns 0, or -1 with the reason in err.
 */
typedef int (*json_member_fn)(
    void *arg, const char *key, enum json_kind kind, const char *text, int index);
int json_read_object(
    const char *s, size_t len, json_member_fn member, void *arg, char *err, size_t err_len);

/* Defaults, as for the command line. */
void backend_config_defaults(struct backend_config *cfg);
/* Sets the option named key (no dashes) from one JSON member; *seen tracks
 * the keys already given. text must outlive cfg. Errors go into err, one
 * per line (appended). */
void backend_config_set(struct backend_config *cfg, unsigned long *seen, const char *key,
    enum json_kind kind, const char *text, int index, char *err, size_t err_len);
/* The checks that need every option (required ones, min <= max ...). */
void backend_config_check(const struct backend_config *cfg, char *err, size_t err_len);

struct backend_listeners {
    struct backend_config *cfgs;
    size_t num;
    unsigned char *invalid; /* invalid[i]: cfgs[i] had errors (reported in err) */
    struct uc_strv strings; /* every string the cfgs point to */
};

/*
 * Reads the listener specs from path ("-" = stdin). Blank lines and lines
 * starting with '#' are skipped. On error writes one line per problem into
 * err, each naming the listener (its number and name) and the option, and
 * returns -1; the listeners without errors are still in ls (so that their
 * other problems can be reported in the same run), marked in invalid[].
 */
int
backend_listeners_load(struct backend_listeners *ls, const char *path, char *err, size_t err_len);
void backend_listeners_free(struct backend_listeners *ls);

/* ---- the observation log (backend_json.c) --------------------------------
 *
 * One JSON object per line (harness/common/uc_json.h writes it, under the
 * project's one string policy), one write(2) per line. */
struct backend_log {
    int fd;
    int owned;
    const char *name;
    unsigned long listener; /* with --listeners: its position (1, 2, ...), in every line */
    double t0;
    struct uc_json jw;
};

int backend_log_open(
    struct backend_log *log, const char *path, const char *name, char *err, size_t err_len);
void backend_log_close(struct backend_log *log);
/* Starts a line: {"event":EVENT,"name":NAME,"listener":N,"conn":CONN,"t":T
 * (listener 0 = omitted, conn 0 = omitted) */
struct uc_json *backend_log_begin(struct backend_log *log, const char *event, unsigned long conn);
/* Closes the object and writes the line. */
void backend_log_end(struct backend_log *log);
double backend_now(void);

/* ---- server state -------------------------------------------------------- */

struct backend_conn;

/* One listener: its configuration, TLS context (so its own session cache
 * and ticket keys), log and connections. A process has one or many; they
 * share the event base and nothing else. */
struct backend_server {
    struct backend_config *cfg;
    struct event_base *base;
    struct evconnlistener *listener;
    SSL_CTX *ctx;
    struct backend_log log;
    int port;                   /* the bound port */
    unsigned long num_conns;    /* connections accepted by this listener */
    struct backend_conn *conns; /* every open connection, for shutdown */
};

/* ---- TLS (backend_tls.c) ------------------------------------------------- */

SSL_CTX *backend_tls_ctx_new(const struct backend_config *cfg, char *err, size_t err_len);
int backend_tls_conn_index(void);
/* Logs the handshake line for a completed handshake. */
void backend_tls_observe_handshake_ok(struct backend_conn *c);
/* Logs a failed handshake: what, the SSL_get_error class and the alert seen. */
void backend_tls_observe_handshake_fail(
    struct backend_conn *c, const char *error, const char *error_class);
const char *backend_tls_error_class(int ssl_err);

/* ---- connections (backend_conn.c) ---------------------------------------- */

enum backend_conn_state {
    CONN_STALL,   /* fault: TCP accepted, nothing ever answered */
    CONN_NON_TLS, /* fault: wait for bytes, answer in plaintext */
    CONN_HANDSHAKE,
    CONN_ACTIVE, /* reading requests, writing responses */
    CONN_LINGER, /* close_notify sent; draining until the peer closes */
};

enum backend_close_mode {
    CLOSE_CLEAN, /* close_notify, then wait for the peer to close */
    CLOSE_DIRTY, /* close the TCP connection without close_notify */
    CLOSE_RESET, /* SO_LINGER 0: RST */
};

struct backend_conn {
    struct backend_server *srv;
    struct backend_conn *next, *prev;
    unsigned long id;
    int fd;
    SSL *ssl;
    int state; /* enum backend_conn_state */
    struct event *rev, *wev, *timer, *slow_timer;
    struct evbuffer *in;   /* decrypted request bytes */
    struct evbuffer *out;  /* response bytes for SSL_write */
    struct evbuffer *slow; /* slow-response: bytes still to move into out */
    unsigned long num_requests;
    uint16_t hello_exts[BACKEND_MAX_HELLO_EXTS]; /* ClientHello extension types, in order */
    size_t num_hello_exts;
    size_t http_need; /* bytes c->in must hold before parsing again */
    int closing;      /* no more requests: finish writing, then close */
    int close_mode;   /* enum backend_close_mode */
    int handshake_logged;
    int client_hello_seen;
    int close_after_hello; /* set by the ClientHello callback */
    int got_close_notify;
    int alert_dir; /* 0 none, 'r' received, 's' sent */
    int alert_code;
    const char *alert_desc;
    int handshake_done;
    int reset_armed;          /* reset-after-headers: headers written, RST timer set */
    const char *close_reason; /* why we are closing, for the close line */
    /* TLS-layer faults (backend_fault_tls.c, backend_fault_flight.c) */
    int fault_armed; /* a response fault acts once fault_at bytes of out are written */
    size_t fault_at;
    int fault_done;       /* the response fault acted (once per connection) */
    int fault_hold;       /* renegotiate-other-cert: no response until the renegotiation ends */
    int fault_nudges;     /* renegotiate-other-cert: HelloRequests sent again */
    struct evbuffer *raw; /* flight faults: bytes for the socket as they are */
    struct event *raw_timer;
    int flight_cut; /* garbage-after-server-hello: later TLS output is dropped */
};

void backend_conn_accept(struct backend_server *srv, int fd, const struct sockaddr *sa, int salen);
/* Closes and frees the connection, logging the close line. */
void backend_conn_close(struct backend_conn *c, const char *reason);
/* slow-response: start moving c->slow into c->out, one byte per step. */
void backend_conn_start_slow(struct backend_conn *c);

/* ---- TLS-layer faults ------------------------------------------------------ */

/* Logs {"event":"fault","fault":NAME,"detail":DETAIL}: what a fault did. */
void backend_fault_log(struct backend_conn *c, const char *name, const char *detail);
/* backend_fault_tls.c: arms the response faults for a 200 response that
 * starts at offset start of c->out, its body at body_start, body_len long. */
void
backend_fault_tls_arm(struct backend_conn *c, size_t start, size_t body_start, size_t body_len);
/* Runs the armed fault (fault_at reached). Returns 0 to go on writing, -1
 * if the connection was closed and freed. */
int backend_fault_tls_act(struct backend_conn *c);
/* After a read with renegotiate-other-cert held: 1 if the hold just ended. */
int backend_fault_tls_hold_ended(struct backend_conn *c);
/* Sends bytes as they are on a non-blocking socket, waiting at most 1 s. */
int backend_fault_send_raw(int fd, const void *data, size_t len);

/* backend_fault_chain.c: the chain, groups and certificates faults change
 * in a new SSL_CTX (after its certificate is loaded). */
int backend_fault_chain_apply(SSL_CTX *ctx, uint64_t faults, char *err, size_t err_len);
/* A fresh self-signed P-256 certificate (and its key) for cn, with a
 * subjectAltName DNS:cn and, if pad > 0, an nsComment of pad bytes. */
int backend_fault_selfsigned(const char *cn, size_t pad, X509 **cert, EVP_PKEY **key);

/* backend_fault_flight.c: the handshake flight faults. */
int backend_fault_flight_on(uint64_t faults);
/* Called once the SSL exists: the write BIO becomes a memory BIO. */
int backend_fault_flight_start(struct backend_conn *c);
/* After each handshake step: moves the captured output to the socket, as
 * the fault says. done: the handshake completed. Returns 1 while bytes
 * are still queued (the connection waits for them). */
int backend_fault_flight_step(struct backend_conn *c, int done);

/* ---- HTTP (backend_http.c) ----------------------------------------------- */

enum http_parse_result { HTTP_NEED_MORE, HTTP_DONE, HTTP_BAD };

#define MAX_HEADERS 100

struct http_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct http_request {
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    const char *version;
    size_t version_len;
    struct http_header headers[MAX_HEADERS];
    size_t num_headers;
    long long content_length; /* -1 = none */
    int chunked;
    int conn_close;
    int conn_keep_alive;
    size_t head_len;  /* request line + headers + blank line */
    size_t total_len; /* head + body as sent */
    size_t body_len;  /* decoded body */
};

/*
 * Parses one request at the front of p (len bytes). On HTTP_BAD sets
 * *out_status and *out_err; on HTTP_NEED_MORE *out_need may say how many
 * bytes are needed. The request's pointers point into p. (Also the parser
 * fuzz/fuzz_backend_request.c calls.)
 */
enum http_parse_result backend_http_parse_request(const char *p, size_t len,
    struct http_request *req, int *out_status, size_t *out_need, const char **out_err);

/*
 * Parses and answers every complete request at the front of c->in, appending
 * the responses to c->out (or c->slow). Sets c->closing when the connection
 * is to end after the responses are written.
 */
void backend_http_process(struct backend_conn *c);

#endif
