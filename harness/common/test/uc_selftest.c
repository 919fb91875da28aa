/*
 * uc_selftest: drives libuptls-common for harness/common/test_common.py.
 * Reads its input on stdin, writes the library's answer on stdout:
 *
 *   uc_selftest escape          stdin bytes -> uc_json_escape's text
 *   uc_selftest utf8            stdin bytes -> "1" valid / "0" not, then the
 *                               code point count when valid
 *   uc_selftest encode CP...    each code point (hex) -> its UTF-8 bytes
 *   uc_selftest json            a fixed document through the writer
 *   uc_selftest switch NAMES    uc_switch_enable on a two-row table -> the bits, or the error
 *   uc_selftest switch-print    uc_switch_print of that table
 *   uc_selftest tls NAME|0xNNNN -> uc_tls_version_by_name / _text
 *   uc_selftest errs N          N errors into a 3-line-capped uc_errs of 256 bytes
 *   uc_selftest buf N           N puts of "abc" and a printf -> length, failed
 *   uc_selftest int S MIN MAX   uc_parse_int -> the value, or "bad"
 *   uc_selftest addr            three socket addresses as uc_sockaddr_host_port sees them
 *   uc_selftest strv N          N pushes, a dup and a free -> the count and the last item
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "../uc_buf.h"
#include "../uc_err.h"
#include "../uc_json.h"
#include "../uc_net.h"
#include "../uc_str.h"
#include "../uc_strv.h"
#include "../uc_switch.h"
#include "../uc_tls.h"
#include "../uc_utf8.h"

static int
read_stdin(struct uc_buf *b)
{
    char chunk[4096];
    size_t n;

    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
        uc_buf_put(b, chunk, n);
    if (b->data == NULL)
        uc_buf_put(b, "", 0);
    return b->failed ? -1 : 0;
}

static const struct uc_switch table[] = {
    { "alpha", 1u << 0, "the first" },
    { "beta-two", UINT64_C(1) << 40, "a bit above 32" },
};

int
main(int argc, char **argv)
{
    struct uc_buf in = { 0 }, out = { 0 };
    const char *cmd = argc > 1 ? argv[1] : "";
    int rc = 0;

    if (strcmp(cmd, "escape") == 0 || strcmp(cmd, "utf8") == 0) {
        if (read_stdin(&in) != 0)
            return 1;
        if (cmd[0] == 'e') {
            uc_json_escape(&out, in.data, in.len);
            fwrite(out.data, 1, out.len, stdout);
        } else if (uc_utf8_valid(in.data, in.len)) {
            printf("1 %zu\n", memchr(in.data, 0, in.len) ? (size_t) 0 : uc_utf8_count(in.data));
        } else {
            printf("0\n");
        }
    } else if (strcmp(cmd, "encode") == 0) {
        for (int i = 2; i < argc; i++) {
            char b[4];
            size_t n = uc_utf8_encode(strtoul(argv[i], NULL, 16), b);
            fwrite(b, 1, n, stdout);
        }
    } else if (strcmp(cmd, "json") == 0) {
        struct uc_json jw;

        uc_json_init(&jw);
        uc_json_obj_begin(&jw);
        uc_json_key(&jw, "s");
        uc_json_str(&jw, "x<y>");
        uc_json_key(&jw, "null");
        uc_json_str(&jw, NULL);
        uc_json_key(&jw, "list");
        uc_json_arr_begin(&jw);
        uc_json_int(&jw, -3);
        uc_json_double(&jw, 0.25);
        uc_json_bool(&jw, 1);
        uc_json_bool(&jw, 0);
        uc_json_arr_begin(&jw);
        uc_json_arr_end(&jw);
        uc_json_obj_begin(&jw);
        uc_json_obj_end(&jw);
        uc_json_arr_end(&jw);
        uc_json_key(&jw, "k\"ey");
        uc_json_strn(&jw, "a\0b", 3);
        uc_json_obj_end(&jw);
        printf("%s\n", jw.buf.data);
        uc_json_reset(&jw);
        uc_json_int(&jw, 7);
        printf("%s\n", jw.buf.data);
        uc_json_dispose(&jw);
        uc_json_dispose(NULL);
    } else if (strcmp(cmd, "switch") == 0 && argc > 2) {
        uint64_t bits = 0;
        char err[256] = "";

        if (uc_switch_enable(
                table, UC_SWITCH_COUNT(table), "fault", argv[2], &bits, err, sizeof(err))
            != 0) {
            printf("error %s\n", err);
            rc = 1;
        } else {
            printf("bits %llu name %s\n", (unsigned long long) bits,
                uc_switch_name(table, UC_SWITCH_COUNT(table), bits) != NULL
                    ? uc_switch_name(table, UC_SWITCH_COUNT(table), bits)
                    : "-");
        }
    } else if (strcmp(cmd, "switch-print") == 0) {
        uc_switch_print(table, UC_SWITCH_COUNT(table), stdout, "  ", 12);
    } else if (strcmp(cmd, "tls") == 0 && argc > 2) {
        char buf[16], list[128];

        uc_tls_version_list(0x0301, 0x0304, list, sizeof(list));
        if (strncmp(argv[2], "0x", 2) == 0)
            printf("%s\n",
                uc_tls_version_text((unsigned) strtoul(argv[2], NULL, 16), buf, sizeof(buf)));
        else
            printf("0x%04x %s\n", (unsigned) uc_tls_version_by_name(argv[2]), list);
    } else if (strcmp(cmd, "errs") == 0 && argc > 2) {
        char err[256] = "";
        struct uc_errs e = { .err = err, .err_len = sizeof(err), .max = 3 };

        for (int i = 0; i < atoi(argv[2]); i++)
            uc_errs_add(&e, "f:1: ", "problem %d", i + 1);
        uc_err_add_prefixed(err, sizeof(err), "p", "x\n\ny");
        printf("%d\n%s\n", e.num, err);
    } else if (strcmp(cmd, "buf") == 0 && argc > 2) {
        struct uc_buf *b = uc_buf_new();
        size_t len;
        char *taken;

        for (int i = 0; i < atoi(argv[2]); i++)
            uc_buf_puts(b, "abc");
        uc_buf_printf(b, "%d", 42);
        printf("%zu %d %zu\n", b->len, b->failed, strlen(b->data));
        taken = uc_buf_take(b, &len);
        printf("%zu %s\n", len, len < 16 ? taken : "...");
        free(taken);
        uc_buf_free(b);
        uc_buf_free(NULL);
    } else if (strcmp(cmd, "int") == 0 && argc > 4) {
        int v = -7;

        if (uc_parse_int(argv[2], atol(argv[3]), atol(argv[4]), &v) == 0)
            printf("%d\n", v);
        else
            printf("bad %d\n", v);
    } else if (strcmp(cmd, "addr") == 0) {
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(8443) };
        struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(1) };
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        const struct sockaddr *sas[] = { (struct sockaddr *) &sin, (struct sockaddr *) &sin6,
            (struct sockaddr *) &sun };
        char host[64];
        int port;

        inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
        inet_pton(AF_INET6, "::1", &sin6.sin6_addr);
        for (size_t i = 0; i < 3; i++) {
            int r = uc_sockaddr_host_port(sas[i], host, sizeof(host), &port);
            printf("%d [%s] %d\n", r, host, port);
        }
    } else if (strcmp(cmd, "strv") == 0 && argc > 2) {
        struct uc_strv v = { 0 };
        char **copy;
        char item[32];

        for (int i = 0; i < atoi(argv[2]); i++) {
            snprintf(item, sizeof(item), "s%d", i);
            if (uc_strv_push_copy(&v, item) == NULL)
                return 1;
        }
        copy = uc_strv_dup(v.items, v.num);
        printf("%zu %s %d\n", v.num, v.num ? copy[v.num - 1] : "-", copy[v.num] == NULL);
        uc_strv_free(copy, v.num);
        uc_strv_dispose(&v);
        uc_strv_dispose(NULL);
        uc_strv_free(NULL, 0);
    } else {
        fprintf(stderr, "usage: see the comment at the top of uc_selftest.c\n");
        rc = 2;
    }
    uc_buf_dispose(&in);
    uc_buf_dispose(&out);
    return rc;
}
