/*
 * uptls-proxy [-c FILE] [-p PREFIX] [-t] [-v] [-g DIRECTIVES] [--fault NAME]...
 *
 * The master process loads and checks the configuration, opens the error
 * log and the listening sockets, forks worker_processes workers that share
 * the listeners (inherited sockets), forwards SIGTERM/SIGINT (fast) and
 * SIGQUIT (graceful) to them, reaps and respawns them, and removes only what
 * it made (the pid file). It always stays in the foreground.
 */
#include "proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define PROXY_MAX_WORKERS 256

static volatile sig_atomic_t proxy_master_signal;
static volatile sig_atomic_t proxy_master_child;

static void
proxy_master_on_signal(int sig)
{
    if (sig == SIGCHLD) {
        proxy_master_child = 1;
    } else {
        proxy_master_signal = sig;
    }
}

static void
proxy_usage(FILE *f)
{
    fprintf(f,
        "Usage: " PROXY_NAME " [-c FILE] [-p PREFIX] [-t] [-v] [-g DIRECTIVES] "
        "[--fault NAME]...\n\n"
        "  -c FILE        configuration file (default PREFIX/conf/nginx.conf)\n"
        "  -p PREFIX      prefix for relative paths (default: current directory)\n"
        "  -t             test the configuration and exit\n"
        "  -v             print the version and exit\n"
        "  -g DIRECTIVES  extra main-context directives, e.g. \"daemon off;\"\n"
        "  --fault NAME   enable a fault switch (also UPTLS_PROXY_FAULTS=a,b);\n"
        "                 --fault list prints them\n");
}

static void
proxy_print_errors(const char *errors)
{
    const char *p = errors, *nl;

    while (*p) {
        nl = strchr(p, '\n');
        fprintf(stderr, PROXY_NAME ": %.*s\n", (int) (nl ? nl - p : (long) strlen(p)), p);
        if (nl == NULL) {
            break;
        }
        p = nl + 1;
    }
}

static int
proxy_listen_open(struct proxy_conf *conf, char *err, size_t err_len)
{
    struct proxy_listen *l;
    int one = 1;

    for (l = conf->listens; l; l = l->next) {
        l->fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (l->fd < 0) {
            snprintf(err, err_len, "socket() %s failed (%d: %s)", l->text, errno, strerror(errno));
            return -1;
        }
        setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(l->fd, (struct sockaddr *) &l->addr, l->addr_len) != 0) {
            snprintf(err, err_len, "bind() to %s failed (%d: %s)", l->text, errno, strerror(errno));
            return -1;
        }
        /* the workers' loops must never block in accept() */
        if (fcntl(l->fd, F_SETFL, fcntl(l->fd, F_GETFL) | O_NONBLOCK) != 0
            || listen(l->fd, 511) != 0) {
            snprintf(
                err, err_len, "listen() to %s failed (%d: %s)", l->text, errno, strerror(errno));
            return -1;
        }
    }
    return 0;
}

static void
proxy_listen_close(struct proxy_conf *conf)
{
    struct proxy_listen *l;

    for (l = conf->listens; l; l = l->next) {
        if (l->fd >= 0) {
            close(l->fd);
            l->fd = -1;
        }
    }
}

static pid_t
proxy_worker_spawn(struct proxy_conf *conf, int id, pid_t master)
{
    sigset_t none;
    pid_t pid;
    char err[PROXY_ERRLEN];
    int rc;

    pid = fork();
    if (pid != 0) {
        return pid;
    }
    /* the worker: dies with the master */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master) {
        _exit(1);
    }
    signal(SIGCHLD, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    signal(SIGHUP, SIG_IGN);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    err[0] = '\0';
    rc = proxy_worker_run(conf, id, err, sizeof(err));
    if (rc != 0) {
        proxy_log_error(PROXY_LOG_EMERG, 0, "%s", err);
    }
    proxy_listen_close(conf);
    proxy_conf_free(conf);
    proxy_log_close();
    exit(rc == 0 ? 0 : 2);
}

static int
proxy_pid_write(const char *path, char *err, size_t err_len)
{
    FILE *f = fopen(path, "w");

    if (f == NULL) {
        snprintf(err, err_len, "open() \"%s\" failed (%d: %s)", path, errno, strerror(errno));
        return -1;
    }
    fprintf(f, "%d\n", (int) getpid());
    fclose(f);
    return 0;
}

static int
proxy_master_run(struct proxy_conf *conf)
{
    pid_t workers[PROXY_MAX_WORKERS], master = getpid(), pid;
    int num, i, alive, status, stopping = 0, forward;
    struct sigaction sa;
    sigset_t block, old;

    num = conf->worker_processes;
    if (num == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        num = n > 0 && n <= PROXY_MAX_WORKERS ? (int) n : 1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = proxy_master_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);

    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGQUIT);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &old);

    for (i = 0; i < num; i++) {
        workers[i] = proxy_worker_spawn(conf, i, master);
        if (workers[i] < 0) {
            proxy_log_error(PROXY_LOG_ALERT, 0, "fork() failed (%d: %s)", errno, strerror(errno));
        }
    }
    proxy_log_error(PROXY_LOG_NOTICE, 0, "started %d worker process(es)", num);

    for (;;) {
        alive = 0;
        for (i = 0; i < num; i++) {
            alive += workers[i] > 0;
        }
        if (stopping && alive == 0) {
            break;
        }
        sigsuspend(&old);
        if (proxy_master_signal) {
            forward = proxy_master_signal == SIGQUIT ? SIGQUIT : SIGTERM;
            proxy_master_signal = 0;
            stopping = 1;
            for (i = 0; i < num; i++) {
                if (workers[i] > 0) {
                    kill(workers[i], forward);
                }
            }
        }
        if (proxy_master_child) {
            proxy_master_child = 0;
            while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                for (i = 0; i < num; i++) {
                    if (workers[i] != pid) {
                        continue;
                    }
                    workers[i] = -1;
                    if (!stopping) {
                        proxy_log_error(PROXY_LOG_ALERT, 0,
                            "worker process %d exited "
                            "with %s %d; respawning",
                            (int) pid, WIFSIGNALED(status) ? "signal" : "code",
                            WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
                        workers[i] = proxy_worker_spawn(conf, i, master);
                    }
                }
            }
        }
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    proxy_log_error(PROXY_LOG_NOTICE, 0, "exit");
    return 0;
}

int
main(int argc, char **argv)
{
    struct proxy_conf conf;
    const char *conf_file = NULL, *prefix = NULL, *extra = NULL, *env;
    static char err[PROXY_ERRLEN];
    char msg[1024];
    int test = 0, i, rc = 0, made_pid = 0;

    env = getenv("UPTLS_PROXY_FAULTS");
    if (env && *env && proxy_fault_enable(env, msg, sizeof(msg)) != 0) {
        fprintf(stderr, PROXY_NAME ": [emerg] %s (UPTLS_PROXY_FAULTS)\n", msg);
        return 1;
    }
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "-t") == 0) {
            test = 1;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "-V") == 0) {
            printf(PROXY_NAME " version " PROXY_VERSION " (nginx proxy_ssl_* semantics as "
                              "documented for nginx 1.23.4 and later; %s)\n",
                OpenSSL_version(OPENSSL_VERSION));
            return 0;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            proxy_usage(stdout);
            return 0;
        } else if ((strcmp(a, "-c") == 0 || strcmp(a, "-p") == 0 || strcmp(a, "-g") == 0
                       || strcmp(a, "--fault") == 0)
            && i + 1 < argc) {
            const char *v = argv[++i];

            if (a[1] == 'c') {
                conf_file = v;
            } else if (a[1] == 'p') {
                prefix = v;
            } else if (a[1] == 'g') {
                extra = v;
            } else if (strcmp(v, "list") == 0) {
                proxy_fault_list_print();
                return 0;
            } else if (proxy_fault_enable(v, msg, sizeof(msg)) != 0) {
                fprintf(stderr, PROXY_NAME ": [emerg] %s\n", msg);
                return 1;
            }
        } else if (strncmp(a, "--fault=", 8) == 0) {
            if (proxy_fault_enable(a + 8, msg, sizeof(msg)) != 0) {
                fprintf(stderr, PROXY_NAME ": [emerg] %s\n", msg);
                return 1;
            }
        } else {
            fprintf(stderr, PROXY_NAME ": invalid option: \"%s\"\n", a);
            proxy_usage(stderr);
            return 1;
        }
    }

    if (proxy_conf_load(&conf, prefix, conf_file, extra, err, PROXY_ERRLEN) != 0) {
        proxy_print_errors(err);
        fprintf(stderr, PROXY_NAME ": configuration file %s test failed\n",
            conf.conf_file ? conf.conf_file : "?");
        proxy_conf_free(&conf);
        return 1;
    }
    if (test) {
        if (conf.warnings) {
            const char *p = conf.warnings, *nl;

            for (; *p; p = nl + 1) {
                nl = strchr(p, '\n');
                fprintf(stderr, PROXY_NAME ": [warn] %.*s\n", (int) (nl - p), p);
            }
        }
        fprintf(stderr, PROXY_NAME ": the configuration file %s syntax is ok\n", conf.conf_file);
        fprintf(stderr, PROXY_NAME ": configuration file %s test is successful\n", conf.conf_file);
        proxy_conf_free(&conf);
        return 0;
    }

    if (proxy_log_open(conf.error_log, conf.error_log_level, msg, sizeof(msg)) != 0) {
        fprintf(stderr, PROXY_NAME ": [emerg] %s\n", msg);
        rc = 1;
        goto end;
    }
    if (proxy_faults) {
        proxy_log_error(PROXY_LOG_WARN, 0, "fault switches enabled: 0x%llx (test use only)",
            (unsigned long long) proxy_faults);
    }
    if (conf.warnings) {
        const char *p = conf.warnings, *nl;

        for (; *p; p = nl + 1) {
            nl = strchr(p, '\n');
            proxy_log_error(PROXY_LOG_WARN, 0, "%.*s", (int) (nl - p), p);
        }
    }
    if (proxy_listen_open(&conf, msg, sizeof(msg)) != 0) {
        proxy_log_error(PROXY_LOG_EMERG, 0, "%s", msg);
        fprintf(stderr, PROXY_NAME ": [emerg] %s\n", msg);
        rc = 1;
        goto end;
    }
    if (conf.pid_file) {
        if (proxy_pid_write(conf.pid_file, msg, sizeof(msg)) != 0) {
            proxy_log_error(PROXY_LOG_EMERG, 0, "%s", msg);
            fprintf(stderr, PROXY_NAME ": [emerg] %s\n", msg);
            rc = 1;
            goto end;
        }
        made_pid = 1;
    }
    rc = proxy_master_run(&conf);

end:
    if (made_pid) {
        unlink(conf.pid_file);
    }
    proxy_listen_close(&conf);
    proxy_conf_free(&conf);
    proxy_log_close();
    return rc;
}
