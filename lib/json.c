/* json.c - JSON token parser and writer (see json.h).
 *
 * The parser is a flat state machine over the input: containers are kept
 * on a fixed stack of JSON_MAX_DEPTH token indices, so input depth never
 * turns into C stack depth. Each byte is looked at once; nothing is
 * allocated.
 */
#include "json.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* ---- shared helpers ------------------------------------------------- */

/* Well-formed UTF-8 sequence at p (RFC 3629 table 3-7)? Returns its length
 * (1..4), or 0 if ill-formed, storing in *bad the length of the maximal
 * ill-formed prefix (>= 1; == avail when the input ends mid-sequence). */
static size_t utf8_len(const unsigned char *p, size_t avail, size_t *bad)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xBF;
	size_t need, k;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		need = 1;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 2;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F; /* no UTF-8 encoded surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 3;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F; /* nothing above U+10FFFF */
	} else {
		*bad = 1;
		return 0;
	}
	for (k = 1; k <= need; k++) {
		if (k >= avail || p[k] < lo || p[k] > hi) {
			*bad = k;
			return 0;
		}
		lo = 0x80;
		hi = 0xBF;
	}
	return need + 1;
}

static int hex_val(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* ---- parser --------------------------------------------------------- */

enum jp_state {
	JP_VALUE,          /* a value must follow */
	JP_VALUE_OR_CLOSE, /* just after '[' */
	JP_KEY_OR_CLOSE,   /* just after '{' */
	JP_KEY,            /* after ',' in an object */
	JP_AFTER,          /* a value just ended */
};

struct jp {
	const unsigned char *s;
	size_t len, pos;
	struct json_token *toks;
	size_t max, n;
	struct json_error *err;
	int depth;
	uint32_t stack[JSON_MAX_DEPTH]; /* token indices of open containers */
};

static int jp_fail(struct jp *p, int code, size_t pos, const char *fmt, ...)
{
	va_list ap;

	if (p->err) {
		p->err->position = pos;
		va_start(ap, fmt);
		(void)vsnprintf(p->err->message, sizeof(p->err->message), fmt, ap);
		va_end(ap);
	}
	return code;
}

static int jp_fail_at(struct jp *p, size_t pos, const char *what)
{
	return jp_fail(p, E_INVAL, pos, "%s in JSON at position %zu", what, pos);
}

static int jp_fail_end(struct jp *p)
{
	return jp_fail(p, E_INVAL, p->len, "Unexpected end of JSON input");
}

static int jp_fail_token(struct jp *p, size_t pos)
{
	unsigned char c = p->s[pos];

	if (c > 0x20 && c < 0x7f)
		return jp_fail(p, E_INVAL, pos, "Unexpected token %c in JSON at position %zu",
			       c, pos);
	return jp_fail(p, E_INVAL, pos, "Unexpected byte 0x%02x in JSON at position %zu",
		       (unsigned)c, pos);
}

/* Error for a bad byte at pos, or end-of-input if pos is past the end. */
static int jp_fail_here(struct jp *p, size_t pos)
{
	return pos >= p->len ? jp_fail_end(p) : jp_fail_token(p, pos);
}

static void jp_skip_ws(struct jp *p)
{
	const unsigned char *s = p->s;
	size_t i = p->pos, len = p->len;

	while (i < len && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t'))
		i++;
	p->pos = i;
}

/* Append a token; returns its index or E_LIMIT. */
static int jp_token(struct jp *p, enum json_type type, size_t start, size_t len)
{
	struct json_token *t;

	if (p->n >= p->max)
		return jp_fail(p, E_LIMIT, p->pos, "Too many tokens in JSON at position %zu",
			       p->pos);
	t = &p->toks[p->n];
	t->type = type;
	t->start = (uint32_t)start;
	t->len = (uint32_t)len;
	t->size = 0;
	t->next = (uint32_t)(p->n + 1);
	return (int)p->n++;
}

/* \uXXXX at s[i] == 'u'; returns 0 or an error. */
static int jp_escape_u(struct jp *p, size_t i)
{
	size_t k;

	for (k = 1; k <= 4; k++) {
		if (i + k >= p->len)
			return jp_fail_end(p);
		if (hex_val(p->s[i + k]) < 0)
			return jp_fail_at(p, i + k, "Bad Unicode escape");
	}
	return 0;
}

/* Escape at s[*i] == '\\'; advances *i past it. */
static int jp_escape(struct jp *p, size_t *i)
{
	size_t at = *i + 1;
	int r;

	if (at >= p->len)
		return jp_fail_end(p);
	switch (p->s[at]) {
	case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
		*i = at + 1;
		return 0;
	case 'u':
		if ((r = jp_escape_u(p, at)) < 0)
			return r;
		*i = at + 5;
		return 0;
	}
	return jp_fail_at(p, at, "Bad escaped character");
}

/* String starting with the quote at p->pos; returns token index or error. */
static int jp_string(struct jp *p)
{
	const unsigned char *s = p->s;
	size_t start = p->pos + 1, i = start, len = p->len, used, bad;
	int idx, r;

	if ((idx = jp_token(p, JSON_STRING, start, 0)) < 0)
		return idx;
	for (;;) {
		while (i < len && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\')
			i++;
		if (i >= len)
			return jp_fail(p, E_INVAL, len, "Unterminated string in JSON at position %zu",
				       len);
		if (s[i] == '"')
			break;
		if (s[i] == '\\') {
			if ((r = jp_escape(p, &i)) < 0)
				return r;
		} else if (s[i] < 0x20) {
			return jp_fail_at(p, i, "Bad control character in string literal");
		} else if ((used = utf8_len(s + i, len - i, &bad)) > 0) {
			i += used;
		} else if (i + bad >= len) {
			return jp_fail_end(p);
		} else {
			return jp_fail_at(p, i, "Invalid UTF-8 in string literal");
		}
	}
	p->toks[idx].len = (uint32_t)(i - start);
	p->pos = i + 1;
	return idx;
}

static size_t jp_digits(const unsigned char *s, size_t i, size_t len)
{
	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++;
	return i;
}

/* Number at p->pos: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int jp_number(struct jp *p)
{
	const unsigned char *s = p->s;
	size_t start = p->pos, i = start, len = p->len, d;

	if (s[i] == '-')
		i++;
	if (i >= len)
		return jp_fail_end(p);
	if (s[i] == '0') {
		i++;
		if (i < len && s[i] >= '0' && s[i] <= '9')
			return jp_fail_at(p, i, "Unexpected number");
	} else if (s[i] >= '1' && s[i] <= '9') {
		i = jp_digits(s, i, len);
	} else {
		return jp_fail_at(p, i, "No number after minus sign");
	}
	if (i < len && s[i] == '.') {
		d = jp_digits(s, i + 1, len);
		if (d == i + 1)
			return d >= len ? jp_fail_end(p)
					: jp_fail_at(p, d, "Unterminated fractional number");
		i = d;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		d = jp_digits(s, i, len);
		if (d == i)
			return d >= len ? jp_fail_end(p)
					: jp_fail_at(p, d, "Exponent part is missing a number");
		i = d;
	}
	p->pos = i;
	return jp_token(p, JSON_NUMBER, start, i - start);
}

static int jp_literal(struct jp *p, const char *word, enum json_type type)
{
	size_t start = p->pos, i;

	for (i = 0; word[i]; i++) {
		if (start + i >= p->len || p->s[start + i] != (unsigned char)word[i])
			return jp_fail_here(p, start + i);
	}
	p->pos = start + i;
	return jp_token(p, type, start, i);
}

static int jp_open(struct jp *p, enum json_type type)
{
	int idx;

	if (p->depth >= JSON_MAX_DEPTH)
		return jp_fail(p, E_LIMIT, p->pos,
			       "Maximum nesting depth exceeded in JSON at position %zu", p->pos);
	if ((idx = jp_token(p, type, p->pos, 0)) < 0)
		return idx;
	p->stack[p->depth++] = (uint32_t)idx;
	p->pos++;
	return idx;
}

/* Closing bracket at p->pos for the innermost container. */
static void jp_close(struct jp *p)
{
	struct json_token *t = &p->toks[p->stack[--p->depth]];

	t->len = (uint32_t)(p->pos + 1 - t->start);
	t->next = (uint32_t)p->n;
	p->pos++;
}

/* A value at p->pos (not end of input). */
static int jp_value(struct jp *p, int *st)
{
	int r;

	if (p->depth > 0) {
		struct json_token *parent = &p->toks[p->stack[p->depth - 1]];
		if (parent->type == JSON_ARRAY)
			parent->size++;
	}
	switch (p->s[p->pos]) {
	case '{':
		*st = JP_KEY_OR_CLOSE;
		return jp_open(p, JSON_OBJECT);
	case '[':
		*st = JP_VALUE_OR_CLOSE;
		return jp_open(p, JSON_ARRAY);
	case '"':
		r = jp_string(p);
		break;
	case 't':
		r = jp_literal(p, "true", JSON_TRUE);
		break;
	case 'f':
		r = jp_literal(p, "false", JSON_FALSE);
		break;
	case 'n':
		r = jp_literal(p, "null", JSON_NULL);
		break;
	case '-': case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		r = jp_number(p);
		break;
	default:
		return jp_fail_token(p, p->pos);
	}
	*st = JP_AFTER;
	return r;
}

/* A key (or '}' when allowed) at p->pos, then ':'. */
static int jp_key(struct jp *p, int *st)
{
	unsigned char c = p->s[p->pos];
	int r;

	if (c == '}' && *st == JP_KEY_OR_CLOSE) {
		jp_close(p);
		*st = JP_AFTER;
		return 0;
	}
	if (c != '"')
		return jp_fail_at(p, p->pos, *st == JP_KEY_OR_CLOSE
				  ? "Expected property name or '}'"
				  : "Expected double-quoted property name");
	p->toks[p->stack[p->depth - 1]].size++;
	if ((r = jp_string(p)) < 0)
		return r;
	jp_skip_ws(p);
	if (p->pos >= p->len)
		return jp_fail_end(p);
	if (p->s[p->pos] != ':')
		return jp_fail_at(p, p->pos, "Expected ':' after property name");
	p->pos++;
	*st = JP_VALUE;
	return 0;
}

/* ',' or a closing bracket after a value inside a container. */
static int jp_after(struct jp *p, int *st)
{
	unsigned char c = p->s[p->pos];
	int obj;

	if (p->depth == 0)
		return jp_fail(p, E_INVAL, p->pos,
			       "Unexpected non-whitespace character after JSON at position %zu",
			       p->pos);
	obj = p->toks[p->stack[p->depth - 1]].type == JSON_OBJECT;
	if (c == ',') {
		p->pos++;
		*st = obj ? JP_KEY : JP_VALUE;
		return 0;
	}
	if (c == (obj ? '}' : ']')) {
		jp_close(p);
		return 0;
	}
	return jp_fail_at(p, p->pos, obj ? "Expected ',' or '}' after property value"
				       : "Expected ',' or ']' after array element");
}

static int jp_run(struct jp *p)
{
	int st = JP_VALUE, r;

	for (;;) {
		jp_skip_ws(p);
		if (p->pos >= p->len)
			return st == JP_AFTER && p->depth == 0 ? 0 : jp_fail_end(p);
		switch (st) {
		case JP_VALUE_OR_CLOSE:
			if (p->s[p->pos] == ']') {
				jp_close(p);
				st = JP_AFTER;
				r = 0;
				break;
			}
			/* an element: the array's size is counted by jp_value */
			r = jp_value(p, &st);
			break;
		case JP_VALUE:
			r = jp_value(p, &st);
			break;
		case JP_KEY_OR_CLOSE:
		case JP_KEY:
			r = jp_key(p, &st);
			break;
		default:
			r = jp_after(p, &st);
			break;
		}
		if (r < 0)
			return r;
	}
}

int json_parse(const char *s, size_t len, struct json_token *toks, size_t max_toks,
	       struct json_error *err)
{
	struct jp p;
	int r;

	p.s = (const unsigned char *)s;
	p.len = len;
	p.pos = 0;
	p.toks = toks;
	p.max = toks ? max_toks : 0;
	if (p.max > INT_MAX)
		p.max = INT_MAX;
	p.n = 0;
	p.err = err;
	p.depth = 0;
#if SIZE_MAX > UINT32_MAX
	if (len > UINT32_MAX)
		return jp_fail(&p, E_LIMIT, 0, "Input too long for JSON parser");
#endif
	if ((r = jp_run(&p)) < 0)
		return r;
	if (err) {
		err->position = 0;
		err->message[0] = '\0';
	}
	return (int)p.n;
}

/* ---- string decoding ------------------------------------------------ */

static unsigned hex4(const unsigned char *p)
{
	unsigned v = 0;
	int k, h;

	for (k = 0; k < 4; k++) {
		h = hex_val(p[k]);
		v = (v << 4) | (unsigned)(h < 0 ? 0 : h);
	}
	return v;
}

static size_t utf8_put(unsigned cp, unsigned char *o)
{
	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xC0 | (cp >> 6));
		o[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xE0 | (cp >> 12));
		o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (unsigned char)(0xF0 | (cp >> 18));
	o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

/* \uXXXX at r[*i] == '\\' (with 'u' next); handles surrogate pairs. */
static size_t dec_unicode(const unsigned char *r, size_t n, size_t *i, unsigned char *o)
{
	unsigned cp, lo;

	if (*i + 6 > n) { /* not from json_parse; don't read past the token */
		*i = n;
		return utf8_put(0xFFFD, o);
	}
	cp = hex4(r + *i + 2);
	*i += 6;
	if (cp >= 0xD800 && cp <= 0xDBFF && *i + 6 <= n && r[*i] == '\\' && r[*i + 1] == 'u') {
		lo = hex4(r + *i + 2);
		if (lo >= 0xDC00 && lo <= 0xDFFF) {
			*i += 6;
			return utf8_put(0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00), o);
		}
	}
	if (cp >= 0xD800 && cp <= 0xDFFF)
		cp = 0xFFFD; /* lone surrogate */
	return utf8_put(cp, o);
}

/* Decode one unit (a raw byte or an escape) of raw string r[0..n) at *i
 * into o (up to 4 bytes); advances *i and returns the byte count. */
static size_t dec_next(const unsigned char *r, size_t n, size_t *i, unsigned char *o)
{
	unsigned char c = r[*i];

	if (c != '\\' || *i + 1 >= n) {
		(*i)++;
		o[0] = c;
		return 1;
	}
	c = r[*i + 1];
	switch (c) {
	case 'b': c = '\b'; break;
	case 'f': c = '\f'; break;
	case 'n': c = '\n'; break;
	case 'r': c = '\r'; break;
	case 't': c = '\t'; break;
	case 'u': return dec_unicode(r, n, i, o);
	default: break; /* '"' '\\' '/' stand for themselves */
	}
	*i += 2;
	o[0] = c;
	return 1;
}

int json_str_decode(const char *s, const struct json_token *t, char *out, size_t outcap)
{
	const unsigned char *r;
	unsigned char tmp[4];
	size_t n, i = 0, o = 0, k, run;

	if (!t || t->type != JSON_STRING)
		return E_INVAL;
	r = (const unsigned char *)s + t->start;
	n = t->len;
	while (i < n) {
		const unsigned char *bs = memchr(r + i, '\\', n - i);
		run = bs ? (size_t)(bs - (r + i)) : n - i;
		if (o + run >= outcap)
			goto limit;
		memcpy(out + o, r + i, run);
		o += run;
		i += run;
		if (i >= n)
			break;
		k = dec_next(r, n, &i, tmp);
		if (o + k >= outcap)
			goto limit;
		memcpy(out + o, tmp, k);
		o += k;
	}
	if (o >= outcap || o > INT_MAX)
		goto limit;
	out[o] = '\0';
	return (int)o;
limit:
	if (outcap > 0)
		out[o < outcap ? o : outcap - 1] = '\0';
	return E_LIMIT;
}

char *json_str_dup(const char *s, const struct json_token *t)
{
	char *out;
	size_t cap;

	if (!t || t->type != JSON_STRING)
		return NULL;
	cap = (size_t)t->len + 1;
	if ((out = malloc(cap)) == NULL)
		return NULL;
	if (json_str_decode(s, t, out, cap) < 0) {
		free(out);
		return NULL;
	}
	return out;
}

int json_str_eq(const char *s, const struct json_token *t, const char *lit)
{
	const unsigned char *r, *l = (const unsigned char *)lit;
	unsigned char tmp[4];
	size_t n, i = 0, k, j;

	if (!t || t->type != JSON_STRING || !lit)
		return 0;
	r = (const unsigned char *)s + t->start;
	n = t->len;
	while (i < n) {
		if (r[i] != '\\') {
			if (*l == '\0' || *l != r[i])
				return 0;
			l++;
			i++;
			continue;
		}
		k = dec_next(r, n, &i, tmp);
		for (j = 0; j < k; j++, l++) {
			if (*l == '\0' || *l != tmp[j])
				return 0; /* also rejects a decoded NUL */
		}
	}
	return *l == '\0';
}

int json_obj_get(const char *s, const struct json_token *toks, int obj, const char *key)
{
	uint32_t k, i;

	if (!toks || obj < 0 || toks[obj].type != JSON_OBJECT)
		return -1;
	i = (uint32_t)obj + 1;
	for (k = 0; k < toks[obj].size; k++) {
		if (json_str_eq(s, &toks[i], key))
			return (int)i + 1;
		i = toks[i + 1].next;
	}
	return -1;
}

int json_get_int(const char *s, const struct json_token *t, long long *out)
{
	const unsigned char *r;
	size_t n, i = 0;
	long long v = 0; /* accumulated as a negative number to reach LLONG_MIN */
	int neg = 0, d;

	if (!t || t->type != JSON_NUMBER || t->len == 0)
		return E_INVAL;
	r = (const unsigned char *)s + t->start;
	n = t->len;
	if (r[0] == '-') {
		neg = 1;
		i = 1;
	}
	if (i >= n)
		return E_INVAL;
	for (; i < n; i++) {
		if (r[i] < '0' || r[i] > '9')
			return E_INVAL; /* fraction or exponent */
		d = r[i] - '0';
		if (v < (LLONG_MIN + d) / 10)
			return E_INVAL;
		v = v * 10 - d;
	}
	if (!neg) {
		if (v == LLONG_MIN)
			return E_INVAL;
		v = -v;
	}
	*out = v;
	return 0;
}

/* ---- writer --------------------------------------------------------- */

/* Flags in w->first[level]. */
#define JW_FIRST     0x01 /* nothing written at this level yet */
#define JW_AFTER_KEY 0x02 /* object: key written, value pending */
#define JW_OBJ       0x04 /* level is an object (else array or top level) */

void json_writer_init(struct json_writer *w, size_t max)
{
	memset(w, 0, sizeof(*w));
	if (max == 0)
		max = JSON_WRITER_MAX_DEFAULT;
	if (max > SIZE_MAX / 2)
		max = SIZE_MAX / 2; /* keeps cap arithmetic free of overflow */
	w->max = max;
	w->first[0] = JW_FIRST;
}

void json_writer_free(struct json_writer *w)
{
	if (!w)
		return;
	free(w->buf);
	w->buf = NULL;
	w->len = w->cap = 0;
}

static void jw_fail(struct json_writer *w, int code)
{
	if (!w->err)
		w->err = code;
}

/* Make room for n more bytes plus the final NUL. */
static int jw_reserve(struct json_writer *w, size_t n)
{
	size_t need, cap;
	char *nb;

	if (w->err)
		return -1;
	if (n > w->max - w->len) {
		jw_fail(w, E_LIMIT);
		return -1;
	}
	need = w->len + n + 1;
	if (need <= w->cap)
		return 0;
	cap = w->cap ? w->cap : 256;
	while (cap < need)
		cap *= 2;
	if (cap > w->max + 1)
		cap = w->max + 1;
	if ((nb = realloc(w->buf, cap)) == NULL) {
		jw_fail(w, E_NOMEM);
		return -1;
	}
	w->buf = nb;
	w->cap = cap;
	return 0;
}

static void jw_put(struct json_writer *w, const void *p, size_t n)
{
	if (jw_reserve(w, n) < 0)
		return;
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void jw_putc(struct json_writer *w, char c)
{
	if (jw_reserve(w, 1) < 0)
		return;
	w->buf[w->len++] = c;
}

/* Separator and state checks before a value; 0 if the value may follow. */
static int jw_pre_value(struct json_writer *w)
{
	unsigned char *f = &w->first[w->depth];

	if (w->err)
		return -1;
	if (*f & JW_OBJ) {
		if (!(*f & JW_AFTER_KEY)) {
			jw_fail(w, E_INVAL);
			return -1;
		}
		*f &= (unsigned char)~JW_AFTER_KEY;
		return 0;
	}
	if (w->depth == 0 && !(*f & JW_FIRST)) {
		jw_fail(w, E_INVAL); /* second top-level value */
		return -1;
	}
	if (!(*f & JW_FIRST))
		jw_putc(w, ',');
	*f &= (unsigned char)~JW_FIRST;
	return w->err ? -1 : 0;
}

static void jw_begin(struct json_writer *w, char open, unsigned char flags)
{
	if (jw_pre_value(w) < 0)
		return;
	if (w->depth >= JSON_MAX_DEPTH) {
		jw_fail(w, E_LIMIT);
		return;
	}
	jw_putc(w, open);
	w->depth++;
	w->first[w->depth] = (unsigned char)(JW_FIRST | flags);
}

static void jw_end(struct json_writer *w, char close, unsigned char flags)
{
	unsigned char f;

	if (w->err)
		return;
	f = w->first[w->depth];
	if (w->depth == 0 || (f & JW_OBJ) != flags || (f & JW_AFTER_KEY)) {
		jw_fail(w, E_INVAL);
		return;
	}
	jw_putc(w, close);
	w->depth--;
}

void jw_obj_begin(struct json_writer *w) { jw_begin(w, '{', JW_OBJ); }
void jw_obj_end(struct json_writer *w) { jw_end(w, '}', JW_OBJ); }
void jw_arr_begin(struct json_writer *w) { jw_begin(w, '[', 0); }
void jw_arr_end(struct json_writer *w) { jw_end(w, ']', 0); }

/* Escape for byte c (< 0x20, 0x7f, '"' or '\\') into e; returns length. */
static size_t jw_escape_byte(unsigned char c, char *e)
{
	static const char hex[] = "0123456789abcdef";

	e[0] = '\\';
	switch (c) {
	case '"': e[1] = '"'; return 2;
	case '\\': e[1] = '\\'; return 2;
	case '\b': e[1] = 'b'; return 2;
	case '\f': e[1] = 'f'; return 2;
	case '\n': e[1] = 'n'; return 2;
	case '\r': e[1] = 'r'; return 2;
	case '\t': e[1] = 't'; return 2;
	}
	e[1] = 'u';
	e[2] = '0';
	e[3] = '0';
	e[4] = hex[c >> 4];
	e[5] = hex[c & 0xF];
	return 6;
}

/* Quoted, escaped string body. */
static void jw_quoted(struct json_writer *w, const unsigned char *s, size_t n)
{
	static const char fffd[] = "\xEF\xBF\xBD";
	size_t i = 0, run, used, bad;
	char e[6];

	jw_putc(w, '"');
	while (i < n && !w->err) {
		run = i;
		while (run < n && s[run] >= 0x20 && s[run] < 0x7f && s[run] != '"' && s[run] != '\\')
			run++;
		if (run > i)
			jw_put(w, s + i, run - i);
		i = run;
		if (i >= n)
			break;
		if (s[i] < 0x80) {
			jw_put(w, e, jw_escape_byte(s[i], e));
			i++;
		} else if ((used = utf8_len(s + i, n - i, &bad)) > 0) {
			jw_put(w, s + i, used);
			i += used;
		} else {
			jw_put(w, fffd, 3);
			i += bad;
		}
	}
	jw_putc(w, '"');
}

void jw_keyn(struct json_writer *w, const char *key, size_t n)
{
	unsigned char *f = &w->first[w->depth];

	if (w->err)
		return;
	if (!key || !(*f & JW_OBJ) || (*f & JW_AFTER_KEY)) {
		jw_fail(w, E_INVAL);
		return;
	}
	if (!(*f & JW_FIRST))
		jw_putc(w, ',');
	jw_quoted(w, (const unsigned char *)key, n);
	jw_putc(w, ':');
	*f = (unsigned char)((*f & ~JW_FIRST) | JW_AFTER_KEY);
}

void jw_key(struct json_writer *w, const char *key)
{
	jw_keyn(w, key, key ? strlen(key) : 0);
}

void jw_strn(struct json_writer *w, const char *s, size_t n)
{
	if (!s) {
		jw_null(w);
		return;
	}
	if (jw_pre_value(w) < 0)
		return;
	jw_quoted(w, (const unsigned char *)s, n);
}

void jw_str(struct json_writer *w, const char *s)
{
	jw_strn(w, s, s ? strlen(s) : 0);
}

void jw_int(struct json_writer *w, long long v)
{
	char tmp[24];
	size_t i = sizeof(tmp);
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

	if (jw_pre_value(w) < 0)
		return;
	do {
		tmp[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		tmp[--i] = '-';
	jw_put(w, tmp + i, sizeof(tmp) - i);
}

void jw_bool(struct json_writer *w, int v)
{
	if (jw_pre_value(w) < 0)
		return;
	if (v)
		jw_put(w, "true", 4);
	else
		jw_put(w, "false", 5);
}

void jw_null(struct json_writer *w)
{
	if (jw_pre_value(w) < 0)
		return;
	jw_put(w, "null", 4);
}

void jw_raw(struct json_writer *w, const char *json, size_t n)
{
	if (jw_pre_value(w) < 0)
		return;
	jw_put(w, json, n);
}

void jw_kv_str(struct json_writer *w, const char *key, const char *s)
{
	jw_key(w, key);
	jw_str(w, s);
}

void jw_kv_int(struct json_writer *w, const char *key, long long v)
{
	jw_key(w, key);
	jw_int(w, v);
}

void jw_kv_bool(struct json_writer *w, const char *key, int v)
{
	jw_key(w, key);
	jw_bool(w, v);
}

char *json_writer_take(struct json_writer *w, size_t *len)
{
	char *out;

	if (len)
		*len = 0;
	if (!w->err && w->depth != 0)
		jw_fail(w, E_INVAL);
	if (!w->err && !w->buf)
		(void)jw_reserve(w, 0); /* empty document: still return "" */
	if (w->err) {
		json_writer_free(w);
		return NULL;
	}
	out = w->buf;
	out[w->len] = '\0';
	if (len)
		*len = w->len;
	w->buf = NULL;
	w->len = w->cap = 0;
	return out;
}
