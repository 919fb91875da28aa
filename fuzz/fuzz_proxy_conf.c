/*
 * libFuzzer target: uptls-proxy's configuration parser (proxy_conf_load:
 * tokenizer, directive table, setters, merge, post-processing).
 *
 * The input is written to a file in a private scratch folder and loaded as
 * nginx.conf, exactly as `uptls-proxy -c FILE` does. The target links the
 * proxy's objects (all but proxy_main.o) with three of their calls
 * redirected (ld --wrap, fuzz/fuzz.mk: the proxy's call to f reaches
 * __wrap_f here), so a fuzzed configuration never leaves the machine or the
 * scratch folder, with no change to the proxy's code:
 *   - getaddrinfo: numeric hosts only; any name resolves to 127.0.0.1 (no DNS);
 *   - glob (include): only patterns inside the scratch folder match, so an
 *     `include /proc/kmsg;` cannot block or read the system;
 *   - proxy_ssl_ctx_build: not run (it reads certificate files named by the
 *     input); its inputs are checked by reference-proxy/test_proxy.py.
 */
#include <glob.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../reference-proxy/proxy.h"

static char fuzz_dir[256];
static char fuzz_file[300];

int __real_getaddrinfo(
    const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res);
int __wrap_getaddrinfo(
    const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res);
int __real_glob(const char *pattern, int flags, int (*errfunc)(const char *, int), glob_t *g);
int __wrap_glob(const char *pattern, int flags, int (*errfunc)(const char *, int), glob_t *g);
int __wrap_proxy_ssl_ctx_build(
    struct proxy_conf *conf, struct proxy_loc_conf *lc, char *err, size_t err_len);

int
__wrap_getaddrinfo(
    const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res)
{
    struct addrinfo h = *hints;
    int rc;

    h.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
    rc = __real_getaddrinfo(node, service, &h, res);
    if (rc == EAI_NONAME && node != NULL && node[0] != '\0') {
        rc = __real_getaddrinfo("127.0.0.1", service, &h, res);
    }
    return rc;
}

int
__wrap_glob(const char *pattern, int flags, int (*errfunc)(const char *, int), glob_t *g)
{
    size_t n = strlen(fuzz_dir);

    if (strncmp(pattern, fuzz_dir, n) != 0 || strstr(pattern, "..") != NULL) {
        return GLOB_NOMATCH;
    }
    return __real_glob(pattern, flags, errfunc, g);
}

int
__wrap_proxy_ssl_ctx_build(
    struct proxy_conf *conf, struct proxy_loc_conf *lc, char *err, size_t err_len)
{
    (void) conf;
    (void) lc;
    (void) err;
    (void) err_len;
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_cleanup(void)
{
    char path[320];

    unlink(fuzz_file);
    snprintf(path, sizeof(path), "%s/inc.conf", fuzz_dir);
    unlink(path);
    rmdir(fuzz_dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];

    (void) argc;
    (void) argv;
    snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/uptls-fuzz-conf.XXXXXX");
    if (mkdtemp(fuzz_dir) == NULL) {
        perror("mkdtemp");
        abort();
    }
    snprintf(fuzz_file, sizeof(fuzz_file), "%s/nginx.conf", fuzz_dir);
    atexit(fuzz_cleanup);
    /* an include target inside the scratch folder */
    {
        char inc[320];
        FILE *f;

        snprintf(inc, sizeof(inc), "%s/inc.conf", fuzz_dir);
        f = fopen(inc, "w");
        if (f) {
            fputs("proxy_ssl_verify on;\n", f);
            fclose(f);
        }
    }
    if (proxy_log_open("/dev/null", PROXY_LOG_EMERG, err, sizeof(err)) != 0) {
        abort();
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char err[PROXY_ERRLEN];
    struct proxy_conf conf;
    FILE *f;

    if (size > 64 * 1024) {
        return 0;
    }
    f = fopen(fuzz_file, "w");
    if (f == NULL) {
        abort();
    }
    if (size && fwrite(data, 1, size, f) != size) {
        abort();
    }
    fclose(f);
    (void) proxy_conf_load(&conf, fuzz_dir, fuzz_file, NULL, err, sizeof(err));
    proxy_conf_free(&conf);
    return 0;
}
