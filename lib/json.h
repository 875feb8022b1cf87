/* json.h - JSON token parser (caller-sized token array) and writer.
 *
 * Parser: json_parse() validates one document strictly against RFC 8259
 * in a single pass, without recursion and without allocating, and fills a
 * caller-provided array of tokens that point into the input (nothing is
 * copied). Tokens are laid out in document order (pre-order); every token
 * records the index just past its subtree in `next`, so a subtree is
 * skipped with `i = toks[i].next`.
 *
 * Writer: builds a document into a growable buffer with a hard cap.
 * Commas and colons are inserted automatically; the first failure sticks
 * in w->err and turns every later call into a no-op.
 */
#ifndef EXPOSRD_JSON_H
#define EXPOSRD_JSON_H

#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 64             /* nesting limit (arrays + objects) */
#define JSON_MAX_TOKENS_DEFAULT 1024  /* suggested token array size */
#define JSON_WRITER_MAX_DEFAULT (1024 * 1024) /* writer cap used when max == 0 */

enum json_type {
	JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING,
	JSON_ARRAY, JSON_OBJECT
};

struct json_token {
	enum json_type type;
	uint32_t start; /* offset in input; strings: first byte after the opening quote */
	uint32_t len;   /* raw length; strings: bytes between the quotes, still escaped;
	                 * arrays/objects: whole span including the brackets */
	uint32_t size;  /* arrays: element count; objects: key/value pairs; else 0 */
	uint32_t next;  /* index of the first token after this token's whole subtree */
};
/* Object members are laid out as a key token (a JSON_STRING, size 0,
 * next = its own index + 1) followed by the value's subtree. */

struct json_error {
	size_t position;  /* byte offset where the error was detected */
	char message[96]; /* JavaScript-like text, NUL-terminated */
};

/* Parse exactly one JSON document (surrounding whitespace allowed) of len
 * bytes; s need not be NUL-terminated and is never read past len.
 * Returns the number of tokens used (>= 1), or a negative E_* code:
 *   E_INVAL  syntax error (including invalid UTF-8 inside strings),
 *   E_LIMIT  nesting deeper than JSON_MAX_DEPTH, more than max_toks tokens
 *            (or more than INT_MAX), or len > UINT32_MAX (checked before s
 *            is read).
 * On error, err (if not NULL) gets the position and a message such as
 * "Unexpected token } in JSON at position 1" or
 * "Unexpected end of JSON input"; on success err->message is emptied.
 * Token contents are unspecified after an error.
 * Strict: no trailing commas, comments, leading zeros, raw control
 * characters in strings, or ill-formed UTF-8 (overlongs, UTF-8 encoded
 * surrogates, > U+10FFFF). \u escapes must have four hex digits; lone
 * surrogate escapes are accepted and decode as U+FFFD. */
int json_parse(const char *s, size_t len, struct json_token *toks, size_t max_toks,
	       struct json_error *err);

/* Index of the value token for key in object token obj, or -1 if obj is
 * not an object or has no such key. Keys are compared after decoding;
 * with duplicate keys the first one wins. toks/s are json_parse()'s. */
int json_obj_get(const char *s, const struct json_token *toks, int obj, const char *key);

/* Decode string token t into out, NUL-terminated. Returns the decoded
 * length (excluding the NUL; \u0000 decodes to an embedded NUL byte),
 * E_LIMIT if outcap is too small (out then holds a truncated, terminated
 * prefix when outcap > 0), or E_INVAL if t is not a string.
 * The decoded length never exceeds t->len, so outcap = t->len + 1 always fits. */
int json_str_decode(const char *s, const struct json_token *t, char *out, size_t outcap);

/* Decode into a malloc'd NUL-terminated string (caller frees); NULL if t
 * is not a string or memory runs out. */
char *json_str_dup(const char *s, const struct json_token *t);

/* 1 if t is a string whose decoded value equals the C string lit, else 0. */
int json_str_eq(const char *s, const struct json_token *t, const char *lit);

/* Integer value of a NUMBER token without fraction or exponent that fits
 * in a long long: stores it in *out and returns 0; otherwise E_INVAL. */
int json_get_int(const char *s, const struct json_token *t, long long *out);

/* Writer. The struct is public so it can live on the stack; treat the
 * fields as read-only except through these functions. `first` holds
 * per-level state flags (private). err is 0 or the first E_* failure:
 * E_LIMIT (output would exceed max bytes, or nesting beyond
 * JSON_MAX_DEPTH), E_NOMEM, E_INVAL (misuse: key outside an object, value
 * without a key in an object, unbalanced end, second top-level value). */
struct json_writer {
	char *buf;
	size_t len, cap, max;
	int err;
	int depth;
	unsigned char first[JSON_MAX_DEPTH + 1];
};

/* max is the largest document size in bytes (without the final NUL);
 * 0 selects JSON_WRITER_MAX_DEFAULT. Nothing is allocated until output. */
void json_writer_init(struct json_writer *w, size_t max);
/* Frees the buffer (if not taken); the writer may be re-initialised. */
void json_writer_free(struct json_writer *w);

void jw_obj_begin(struct json_writer *w);
void jw_obj_end(struct json_writer *w);
void jw_arr_begin(struct json_writer *w);
void jw_arr_end(struct json_writer *w);
void jw_key(struct json_writer *w, const char *key);         /* inside an object; NULL is E_INVAL */
void jw_keyn(struct json_writer *w, const char *key, size_t n);
/* Strings are escaped: '"', '\\', control characters and 0x7f; ill-formed
 * UTF-8 is replaced by U+FFFD; everything else is copied unchanged. */
void jw_str(struct json_writer *w, const char *s);            /* NULL writes null */
void jw_strn(struct json_writer *w, const char *s, size_t n); /* NULL writes null */
void jw_int(struct json_writer *w, long long v);
void jw_bool(struct json_writer *w, int v);
void jw_null(struct json_writer *w);
/* Pre-serialised JSON value, copied as is (not validated). */
void jw_raw(struct json_writer *w, const char *json, size_t n);

/* Convenience: key + value. */
void jw_kv_str(struct json_writer *w, const char *key, const char *s);
void jw_kv_int(struct json_writer *w, const char *key, long long v);
void jw_kv_bool(struct json_writer *w, const char *key, int v);

/* Finish. Returns the NUL-terminated document (caller frees) and sets
 * *len (if len is not NULL) to its length; returns NULL (and *len = 0) if
 * w->err is set or a container is still open (err becomes E_INVAL).
 * Either way the writer no longer owns a buffer; w->err is kept. */
char *json_writer_take(struct json_writer *w, size_t *len);

#endif
