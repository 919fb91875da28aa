/*
 * uc_json: JSON text for the three programs (the backend's observation
 * lines, certgen's manifest.json).
 *
 * One string policy, for any input bytes. The output is ASCII and stays one
 * line, safe to paste into HTML or XML:
 *   - '"' and '\\' are backslash-escaped; \n \r \t as such;
 *   - other controls, DEL, '<' '>' '&' '\'' as \u00XX;
 *   - valid UTF-8 as \uXXXX (a surrogate pair above U+FFFF), so a reader
 *     decodes exactly the original text;
 *   - a byte that is not part of valid UTF-8 as \u00XX, its Latin-1 reading
 *     (0xff becomes U+00FF): nothing is dropped or merged, so bytes a peer
 *     sent (a header, an SNI) stay visible as they were.
 *
 * The writer tracks commas: begin/end objects and arrays, a key, then its
 * value. A failed allocation is sticky (jw->buf.failed).
 */
#ifndef UC_JSON_H
#define UC_JSON_H

#include <stddef.h>

#include "uc_buf.h"

/* Appends s[0..len) as a quoted JSON string under the policy above. */
void uc_json_escape(struct uc_buf *b, const char *s, size_t len);

struct uc_json {
    struct uc_buf buf; /* the text so far */
    int comma;         /* a value was written at this nesting level */
    int after_key;     /* a key was written, its value is next */
};

void uc_json_init(struct uc_json *jw);
/* Frees what an in-place writer holds; accepts NULL. */
void uc_json_dispose(struct uc_json *jw);
/* Starts a new text, keeping the memory. */
void uc_json_reset(struct uc_json *jw);

void uc_json_obj_begin(struct uc_json *jw);
void uc_json_obj_end(struct uc_json *jw);
void uc_json_arr_begin(struct uc_json *jw);
void uc_json_arr_end(struct uc_json *jw);
void uc_json_key(struct uc_json *jw, const char *key);
/* A string; NULL writes null. */
void uc_json_str(struct uc_json *jw, const char *s);
void uc_json_strn(struct uc_json *jw, const char *s, size_t len);
void uc_json_int(struct uc_json *jw, long long v);
/* Six decimals ("%.6f"). */
void uc_json_double(struct uc_json *jw, double v);
void uc_json_bool(struct uc_json *jw, int v);
void uc_json_null(struct uc_json *jw);

#endif
