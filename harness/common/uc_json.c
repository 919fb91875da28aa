/* uc_json: the JSON string policy and writer (see uc_json.h). */
#include <stdio.h>
#include <string.h>

#include "uc_json.h"
#include "uc_utf8.h"

static void
put_u(struct uc_buf *b, unsigned long cp)
{
    char esc[16];
    int n;

    if (cp >= 0x10000) {
        cp -= 0x10000;
        n = snprintf(
            esc, sizeof(esc), "\\u%04lx\\u%04lx", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
    } else {
        n = snprintf(esc, sizeof(esc), "\\u%04lx", cp);
    }
    uc_buf_put(b, esc, (size_t) n);
}

void
uc_json_escape(struct uc_buf *b, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *) s;
    size_t run = 0; /* bytes at p that pass as they are */

    uc_buf_putc(b, '"');
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        unsigned long cp;
        size_t n;

        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
            && c != '\'') {
            run++;
            i++;
            continue;
        }
        uc_buf_put(b, p + i - run, run);
        run = 0;
        if (c == '"' || c == '\\') {
            char esc[2] = { '\\', (char) c };
            uc_buf_put(b, esc, 2);
        } else if (c == '\n') {
            uc_buf_put(b, "\\n", 2);
        } else if (c == '\r') {
            uc_buf_put(b, "\\r", 2);
        } else if (c == '\t') {
            uc_buf_put(b, "\\t", 2);
        } else if (c < 0x80 || (n = uc_utf8_decode(p + i, len - i, &cp)) == 0) {
            put_u(b, c); /* a control, <>&', or a stray byte: U+00XX */
        } else {
            put_u(b, cp);
            i += n;
            continue;
        }
        i++;
    }
    uc_buf_put(b, p + len - run, run);
    uc_buf_putc(b, '"');
}

/* ---- the writer ---------------------------------------------------------- */

void
uc_json_init(struct uc_json *jw)
{
    memset(jw, 0, sizeof(*jw));
}

void
uc_json_dispose(struct uc_json *jw)
{
    if (jw == NULL)
        return;
    uc_buf_dispose(&jw->buf);
    memset(jw, 0, sizeof(*jw));
}

void
uc_json_reset(struct uc_json *jw)
{
    uc_buf_reset(&jw->buf);
    jw->comma = 0;
    jw->after_key = 0;
}

/* Separator before a value: a comma unless first at its level or after a key. */
static void
value_begin(struct uc_json *jw)
{
    if (!jw->after_key && jw->comma)
        uc_buf_putc(&jw->buf, ',');
    jw->after_key = 0;
}

/* An object or array: its opening character starts a new nesting level. */
static void
open_level(struct uc_json *jw, char c)
{
    value_begin(jw);
    uc_buf_putc(&jw->buf, c);
    jw->comma = 0;
}

static void
close_level(struct uc_json *jw, char c)
{
    uc_buf_putc(&jw->buf, c);
    jw->comma = 1;
}

void
uc_json_obj_begin(struct uc_json *jw)
{
    open_level(jw, '{');
}

void
uc_json_obj_end(struct uc_json *jw)
{
    close_level(jw, '}');
}

void
uc_json_arr_begin(struct uc_json *jw)
{
    open_level(jw, '[');
}

void
uc_json_arr_end(struct uc_json *jw)
{
    close_level(jw, ']');
}

void
uc_json_key(struct uc_json *jw, const char *key)
{
    if (jw->comma)
        uc_buf_putc(&jw->buf, ',');
    uc_json_escape(&jw->buf, key, strlen(key));
    uc_buf_putc(&jw->buf, ':');
    jw->after_key = 1;
}

void
uc_json_strn(struct uc_json *jw, const char *s, size_t len)
{
    value_begin(jw);
    uc_json_escape(&jw->buf, s, len);
    jw->comma = 1;
}

void
uc_json_str(struct uc_json *jw, const char *s)
{
    if (s == NULL)
        uc_json_null(jw);
    else
        uc_json_strn(jw, s, strlen(s));
}

/* A number or literal, written as it is. */
static void
put_literal(struct uc_json *jw, const char *text, int len)
{
    value_begin(jw);
    if (len > 0)
        uc_buf_put(&jw->buf, text, (size_t) len);
    jw->comma = 1;
}

void
uc_json_int(struct uc_json *jw, long long v)
{
    char num[32];
    int n = snprintf(num, sizeof(num), "%lld", v);

    put_literal(jw, num, n < (int) sizeof(num) ? n : (int) sizeof(num) - 1);
}

void
uc_json_double(struct uc_json *jw, double v)
{
    char num[64];
    int n = snprintf(num, sizeof(num), "%.6f", v);

    put_literal(jw, num, n < (int) sizeof(num) ? n : (int) sizeof(num) - 1);
}

void
uc_json_bool(struct uc_json *jw, int v)
{
    put_literal(jw, v ? "true" : "false", v ? 4 : 5);
}

void
uc_json_null(struct uc_json *jw)
{
    put_literal(jw, "null", 4);
}
