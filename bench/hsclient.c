/*
 * uptls-hsclient: a plain OpenSSL handshake load client for `make bench`.
 *
 * Each "handshake" is: TCP connect, TLS handshake (verification on when -C
 * is given), one "GET / HTTP/1.1" with Connection: close, read the response
 * to EOF, close. Blocking sockets, one connection at a time per process;
 * -j P forks P processes that each do N/P handshakes.
 *
 *   uptls-hsclient -p PORT -n N [-a 127.0.0.1] [-j P] [-r] [-C CA.pem]
 *                  [-s NAME] [-g GROUPS] [-V TLSv1.3]
 *
 *   -r   resumption: one priming full handshake per process (not counted),
 *        then every counted handshake offers the newest session ticket
 *        (saved from the new-session callback: TLS 1.3 tickets arrive after
 *        the handshake).
 *
 * Prints one JSON line: handshakes attempted, ok, resumed, failed, wall
 * seconds, the client's CPU seconds over the counted handshakes only
 * (client_cpu_s: getrusage around each process's loop, summed; no process
 * start, no OpenSSL init, no priming handshake) and over the whole run
 * (client_process_cpu_s), so the caller can add the server's CPU from /proc.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

struct counts {
    long ok, resumed, failed;
    double loop_cpu; /* CPU of the counted handshakes only */
    char first_error[256];
};

static SSL_SESSION *hs_session;
static char hs_first_error[256];

static int
hs_new_session(SSL *ssl, SSL_SESSION *sess)
{
    (void) ssl;
    if (hs_session) {
        SSL_SESSION_free(hs_session);
    }
    hs_session = sess;
    return 1; /* we keep the reference */
}

static void
hs_note_error(const char *what)
{
    unsigned long e;

    if (hs_first_error[0]) {
        ERR_clear_error();
        return;
    }
    e = ERR_peek_error();
    if (e) {
        snprintf(hs_first_error, sizeof(hs_first_error), "%s: %s", what,
            ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "?");
    } else {
        snprintf(hs_first_error, sizeof(hs_first_error), "%s: %s", what, strerror(errno));
    }
    ERR_clear_error();
}

static double
hs_cpu(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec
        + ru.ru_stime.tv_usec / 1e6;
}

static double
hs_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One connection; returns 1 ok, 0 failed. */
static int
hs_one(SSL_CTX *ctx, const struct sockaddr_in *sa, const char *name, int resume, int *reused)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    char buf[4096];
    int fd, one = 1, ok = 0, n;
    SSL *ssl;

    *reused = 0;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        hs_note_error("socket");
        return 0;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *) sa, sizeof(*sa)) != 0) {
        hs_note_error("connect");
        close(fd);
        return 0;
    }
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (name) {
        SSL_set_tlsext_host_name(ssl, name);
        SSL_set1_host(ssl, name);
    }
    if (resume && hs_session) {
        SSL_set_session(ssl, hs_session);
    }
    if (SSL_connect(ssl) != 1) {
        hs_note_error("handshake");
        goto done;
    }
    *reused = SSL_session_reused(ssl);
    if (SSL_write(ssl, req, sizeof(req) - 1) <= 0) {
        hs_note_error("write");
        goto done;
    }
    while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) {
    }
    ok = 1;
    SSL_shutdown(ssl);
done:
    /* OpenSSL 3.0: a session freed without being marked shut down is not
     * resumable (DESIGN.md, traps). */
    SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(ssl);
    close(fd);
    ERR_clear_error();
    return ok;
}

static void
hs_usage(void)
{
    fprintf(stderr,
        "usage: uptls-hsclient -p PORT -n N [-a ADDR] [-j PROCS] [-r] "
        "[-C CA.pem] [-s NAME] [-g GROUPS] [-V TLSv1.2|TLSv1.3]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    const char *addr = "127.0.0.1", *ca = NULL, *name = NULL, *groups = NULL, *ver = NULL;
    int port = 0, procs = 1, resume = 0, c, i, reused, pfd[2];
    long n = 0;
    struct sockaddr_in sa;
    struct counts total, mine;
    struct rusage ru_self, ru_kids;
    double t0, wall, cpu;
    SSL_CTX *ctx;

    while ((c = getopt(argc, argv, "a:p:n:j:rC:s:g:V:h")) != -1) {
        switch (c) {
        case 'a':
            addr = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'n':
            n = atol(optarg);
            break;
        case 'j':
            procs = atoi(optarg);
            break;
        case 'r':
            resume = 1;
            break;
        case 'C':
            ca = optarg;
            break;
        case 's':
            name = optarg;
            break;
        case 'g':
            groups = optarg;
            break;
        case 'V':
            ver = optarg;
            break;
        default:
            hs_usage();
        }
    }
    if (port <= 0 || n <= 0 || procs < 1 || procs > 64) {
        hs_usage();
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short) port);
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "uptls-hsclient: -a %s: not a numeric IPv4 address\n", addr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    ctx = SSL_CTX_new(TLS_client_method());
    if (ver) {
        int v = strcmp(ver, "TLSv1.3") == 0 ? TLS1_3_VERSION
            : strcmp(ver, "TLSv1.2") == 0   ? TLS1_2_VERSION
                                            : 0;
        if (!v) {
            fprintf(stderr, "uptls-hsclient: -V %s: expected TLSv1.2 or TLSv1.3\n", ver);
            return 2;
        }
        SSL_CTX_set_min_proto_version(ctx, v);
        SSL_CTX_set_max_proto_version(ctx, v);
    }
    if (groups && SSL_CTX_set1_groups_list(ctx, groups) != 1) {
        fprintf(stderr, "uptls-hsclient: -g %s: unknown group list\n", groups);
        return 2;
    }
    if (ca) {
        if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
            fprintf(stderr, "uptls-hsclient: -C %s: cannot load\n", ca);
            return 2;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, hs_new_session);

    memset(&total, 0, sizeof(total));
    memset(&mine, 0, sizeof(mine));
    if (pipe(pfd) != 0) {
        perror("pipe");
        return 1;
    }
    t0 = hs_now();
    for (i = 0; i < procs; i++) {
        long share = n / procs + (i < n % procs ? 1 : 0);
        pid_t pid = fork();

        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            long k;
            double c0;

            close(pfd[0]);
            if (resume) {
                hs_one(ctx, &sa, name, 0, &reused); /* priming, not counted */
            }
            c0 = hs_cpu();
            for (k = 0; k < share; k++) {
                if (hs_one(ctx, &sa, name, resume, &reused)) {
                    mine.ok++;
                    mine.resumed += reused;
                } else {
                    mine.failed++;
                }
            }
            mine.loop_cpu = hs_cpu() - c0;
            memcpy(mine.first_error, hs_first_error, sizeof(mine.first_error));
            /* one record, smaller than PIPE_BUF: never interleaved */
            if (write(pfd[1], &mine, sizeof(mine)) != sizeof(mine)) {
                _exit(1);
            }
            _exit(0);
        }
    }
    close(pfd[1]);
    for (i = 0; i < procs; i++) {
        int status;

        wait(&status);
    }
    wall = hs_now() - t0;
    while (read(pfd[0], &mine, sizeof(mine)) == (ssize_t) sizeof(mine)) {
        total.ok += mine.ok;
        total.resumed += mine.resumed;
        total.failed += mine.failed;
        total.loop_cpu += mine.loop_cpu;
        if (!hs_first_error[0] && mine.first_error[0]) {
            memcpy(hs_first_error, mine.first_error, sizeof(hs_first_error));
        }
    }
    getrusage(RUSAGE_SELF, &ru_self);
    getrusage(RUSAGE_CHILDREN, &ru_kids);
    cpu = ru_self.ru_utime.tv_sec + ru_self.ru_utime.tv_usec / 1e6 + ru_self.ru_stime.tv_sec
        + ru_self.ru_stime.tv_usec / 1e6 + ru_kids.ru_utime.tv_sec + ru_kids.ru_utime.tv_usec / 1e6
        + ru_kids.ru_stime.tv_sec + ru_kids.ru_stime.tv_usec / 1e6;
    hs_first_error[sizeof(hs_first_error) - 1] = 0;
    for (i = 0; hs_first_error[i]; i++) {
        if (hs_first_error[i] == '"' || hs_first_error[i] == '\\'
            || (unsigned char) hs_first_error[i] < 0x20) {
            hs_first_error[i] = '\'';
        }
    }
    printf("{\"n\":%ld,\"ok\":%ld,\"resumed\":%ld,\"failed\":%ld,\"procs\":%d,"
           "\"wall_s\":%.6f,\"client_cpu_s\":%.6f,\"client_process_cpu_s\":%.6f,"
           "\"first_error\":\"%s\"}\n",
        n, total.ok, total.resumed, total.failed, procs, wall, total.loop_cpu, cpu, hs_first_error);
    SSL_CTX_free(ctx);
    return total.ok > 0 ? 0 : 1;
}
