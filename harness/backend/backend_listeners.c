/*
 * --listeners FILE: many listeners in one process, one JSON object per line.
 *
 *   {"name":"b1","cert":"/p/chain.pem","key":"/p/key.pem","log":"/p/b1.jsonl",
 *    "client-auth":"require","client-ca":"/p/ca.pem","tickets":false,
 *    "fault":["slow-response"],"close-after-response":true}
 *
 * The keys are the long options without their dashes and take the same
 * values (backend_config_set says how JSON types map). Each line becomes one
 * struct backend_config, checked as the command line is; every error of
 * every line is reported, each prefixed with the listener it belongs to.
 *
 * The JSON reader below reads exactly that shape: an object whose members
 * are scalars or arrays of scalars. Strings are decoded (escapes, \u with
 * surrogate pairs to UTF-8); a string holding NUL is refused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/uc_buf.h"
#include "../common/uc_err.h"
#include "../common/uc_utf8.h"
#include "backend.h"

#define MAX_LISTENERS 4096

/* ---- the JSON reader ------------------------------------------------------ */

struct reader {
    const char *s;
    size_t len, pos;
    struct uc_buf buf; /* the current string, decoded */
    char *err;
    size_t err_len;
};

static int
fail(struct reader *r, const char *what)
{
    snprintf(r->err, r->err_len, "bad JSON at column %zu: %s", r->pos + 1, what);
    return -1;
}

static void
skip_ws(struct reader *r)
{
    while (r->pos < r->len
        && (r->s[r->pos] == ' ' || r->s[r->pos] == '\t' || r->s[r->pos] == '\r'
            || r->s[r->pos] == '\n'))
        r->pos++;
}

static int
peek(struct reader *r)
{
    return r->pos < r->len ? (unsigned char) r->s[r->pos] : -1;
}

static int
put(struct reader *r, const char *p, size_t n)
{
    uc_buf_put(&r->buf, p, n);
    return r->buf.failed ? fail(r, "out of memory") : 0;
}

static int
hex4(struct reader *r, unsigned *out)
{
    unsigned v = 0;

    if (r->pos + 4 > r->len)
        return fail(r, "short \\u escape");
    for (int i = 0; i < 4; i++) {
        char c = r->s[r->pos++];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned) (c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned) (c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned) (c - 'A' + 10);
        else
            return fail(r, "bad \\u escape");
    }
    *out = v;
    return 0;
}

static int
put_utf8(struct reader *r, unsigned cp)
{
    char b[4];

    return put(r, b, uc_utf8_encode(cp, b));
}

/* A string at r->pos (the opening quote) into r->buf. */
static int
read_string(struct reader *r)
{
    uc_buf_reset(&r->buf);
    if (put(r, "", 0) != 0)
        return -1;
    r->pos++;
    for (;;) {
        int c = peek(r);
        if (c < 0)
            return fail(r, "unterminated string");
        r->pos++;
        if (c == '"')
            return 0;
        if (c < 0x20)
            return fail(r, "control character in a string");
        if (c != '\\') {
            char ch = (char) c;
            if (put(r, &ch, 1) != 0)
                return -1;
            continue;
        }
        c = peek(r);
        r->pos++;
        switch (c) {
        case '"':
        case '\\':
        case '/': {
            char ch = (char) c;
            if (put(r, &ch, 1) != 0)
                return -1;
            break;
        }
        case 'b':
            if (put(r, "\b", 1) != 0)
                return -1;
            break;
        case 'f':
            if (put(r, "\f", 1) != 0)
                return -1;
            break;
        case 'n':
            if (put(r, "\n", 1) != 0)
                return -1;
            break;
        case 'r':
            if (put(r, "\r", 1) != 0)
                return -1;
            break;
        case 't':
            if (put(r, "\t", 1) != 0)
                return -1;
            break;
        case 'u': {
            unsigned cp, lo;
            if (hex4(r, &cp) != 0)
                return -1;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (r->pos + 2 > r->len || r->s[r->pos] != '\\' || r->s[r->pos + 1] != 'u')
                    return fail(r, "lone surrogate");
                r->pos += 2;
                if (hex4(r, &lo) != 0)
                    return -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return fail(r, "lone surrogate");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return fail(r, "lone surrogate");
            }
            if (cp == 0)
                return fail(r, "\\u0000 in a string");
            if (put_utf8(r, cp) != 0)
                return -1;
            break;
        }
        default:
            return fail(r, "bad escape");
        }
    }
}

/* A scalar at r->pos into r->buf (a number's or literal's text as is). */
static int
read_scalar(struct reader *r, enum json_kind *kind)
{
    int c = peek(r);
    size_t start = r->pos;

    if (c == '"') {
        *kind = JSON_STRING;
        return read_string(r);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        *kind = JSON_NUMBER;
        while (r->pos < r->len && strchr("+-0123456789.eE", r->s[r->pos]) != NULL)
            r->pos++;
    } else {
        static const struct {
            const char *word;
            enum json_kind kind;
        } words[] = { { "true", JSON_TRUE }, { "false", JSON_FALSE }, { "null", JSON_NULL } };
        size_t i;
        for (i = 0; i < 3; i++) {
            size_t n = strlen(words[i].word);
            if (r->len - r->pos >= n && memcmp(r->s + r->pos, words[i].word, n) == 0) {
                *kind = words[i].kind;
                r->pos += n;
                break;
            }
        }
        if (i == 3)
            return fail(r,
                c == '{' || c == '[' ? "nested objects and lists are not supported"
                                     : "expected a value");
    }
    uc_buf_reset(&r->buf);
    return put(r, r->s + start, r->pos - start);
}

int
json_read_object(
    const char *s, size_t len, json_member_fn member, void *arg, char *err, size_t err_len)
{
    struct reader r = { .s = s, .len = len, .err = err, .err_len = err_len };
    char *key = NULL;
    int rc = -1;

    skip_ws(&r);
    if (peek(&r) != '{') {
        fail(&r, "expected '{'");
        goto out;
    }
    r.pos++;
    skip_ws(&r);
    if (peek(&r) == '}') {
        r.pos++;
    } else {
        for (;;) {
            enum json_kind kind;

            skip_ws(&r);
            if (peek(&r) != '"') {
                fail(&r, "expected a key");
                goto out;
            }
            if (read_string(&r) != 0)
                goto out;
            free(key);
            key = strdup(r.buf.data);
            if (key == NULL) {
                fail(&r, "out of memory");
                goto out;
            }
            skip_ws(&r);
            if (peek(&r) != ':') {
                fail(&r, "expected ':'");
                goto out;
            }
            r.pos++;
            skip_ws(&r);
            if (peek(&r) == '[') {
                int index = 0;
                r.pos++;
                skip_ws(&r);
                if (peek(&r) == ']') {
                    r.pos++;
                } else {
                    for (;;) {
                        skip_ws(&r);
                        if (read_scalar(&r, &kind) != 0)
                            goto out;
                        if (member(arg, key, kind, r.buf.data, index++) != 0) {
                            fail(&r, "stopped");
                            goto out;
                        }
                        skip_ws(&r);
                        if (peek(&r) == ',') {
                            r.pos++;
                            continue;
                        }
                        if (peek(&r) == ']') {
                            r.pos++;
                            break;
                        }
                        fail(&r, "expected ',' or ']'");
                        goto out;
                    }
                }
            } else {
                if (read_scalar(&r, &kind) != 0)
                    goto out;
                if (member(arg, key, kind, r.buf.data, -1) != 0) {
                    fail(&r, "stopped");
                    goto out;
                }
            }
            skip_ws(&r);
            if (peek(&r) == ',') {
                r.pos++;
                continue;
            }
            if (peek(&r) == '}') {
                r.pos++;
                break;
            }
            fail(&r, "expected ',' or '}'");
            goto out;
        }
    }
    skip_ws(&r);
    if (r.pos != r.len) {
        fail(&r, "text after the object");
        goto out;
    }
    rc = 0;
out:
    free(key);
    uc_buf_dispose(&r.buf);
    return rc;
}

/* ---- the listeners file ------------------------------------------------- */

struct line_ctx {
    struct backend_listeners *ls;
    struct backend_config *cfg;
    unsigned long seen;
    char *err; /* this listener's errors, one per line */
    size_t err_len;
};

static int
on_member(void *arg, const char *key, enum json_kind kind, const char *text, int index)
{
    struct line_ctx *lc = arg;
    const char *kept = uc_strv_push_copy(&lc->ls->strings, text);

    if (kept == NULL)
        return 1; /* the reader says where it stopped */
    backend_config_set(lc->cfg, &lc->seen, key, kind, kept, index, lc->err, lc->err_len);
    return 0;
}

int
backend_listeners_load(struct backend_listeners *ls, const char *path, char *err, size_t err_len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    char *line = NULL, one[2048], jerr[256];
    size_t cap = 0, lineno = 0;
    ssize_t n;

    memset(ls, 0, sizeof(*ls));
    err[0] = '\0';
    if (f == NULL) {
        uc_err_set(err, err_len, "--listeners: cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    while ((n = getline(&line, &cap, f)) >= 0) {
        struct line_ctx lc = { .ls = ls, .err = one, .err_len = sizeof(one) };
        char prefix[160];
        size_t i = 0;

        lineno++;
        while (i < (size_t) n
            && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\n'))
            i++;
        if (i == (size_t) n || line[i] == '#')
            continue;
        if (ls->num == MAX_LISTENERS) {
            uc_err_add_prefixed(err, err_len, "--listeners", "more than 4096 listeners");
            break;
        }
        if (ls->num % 64 == 0) {
            struct backend_config *v = realloc(ls->cfgs, (ls->num + 64) * sizeof(*v));
            unsigned char *b;
            if (v != NULL)
                ls->cfgs = v;
            b = realloc(ls->invalid, ls->num + 64);
            if (b != NULL)
                ls->invalid = b;
            if (v == NULL || b == NULL) {
                uc_err_add_prefixed(err, err_len, "--listeners", "out of memory");
                break;
            }
        }
        ls->invalid[ls->num] = 0;
        lc.cfg = &ls->cfgs[ls->num++];
        backend_config_defaults(lc.cfg);
        one[0] = '\0';
        if (json_read_object(line, (size_t) n, on_member, &lc, jerr, sizeof(jerr)) != 0)
            uc_err_add(one, sizeof(one), "%s", jerr);
        else
            backend_config_check(lc.cfg, one, sizeof(one));
        if (one[0] != '\0') {
            snprintf(prefix, sizeof(prefix), "listener %zu '%.64s' (line %zu)", ls->num,
                lc.cfg->name ? lc.cfg->name : "?", lineno);
            uc_err_add_prefixed(err, err_len, prefix, one);
            ls->invalid[ls->num - 1] = 1;
        }
    }
    if (ferror(f))
        uc_err_add_prefixed(err, err_len, "--listeners", strerror(errno));
    else if (ls->num == 0 && err[0] == '\0')
        uc_err_add_prefixed(
            err, err_len, "--listeners", "no listener given (one JSON object per line)");
    free(line);
    if (f != stdin)
        fclose(f);
    return err[0] == '\0' ? 0 : -1;
}

void
backend_listeners_free(struct backend_listeners *ls)
{
    uc_strv_dispose(&ls->strings);
    free(ls->cfgs);
    free(ls->invalid);
    memset(ls, 0, sizeof(*ls));
}
