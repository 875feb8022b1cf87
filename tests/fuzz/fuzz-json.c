/* fuzz-json.c - libFuzzer target for lib/json.c.
 *
 * 1. Parse the input; on success check token invariants, exercise every
 *    accessor, re-serialise the document with the writer (non-recursively,
 *    using the `next` links) and check that the result parses to the same
 *    token types with equal decoded strings.
 * 2. Write the raw input as a JSON string; it must parse back, decode to
 *    valid UTF-8, and equal the input when the input was valid UTF-8.
 * Any broken invariant aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_TOKS 512

static void must(int cond)
{
	if (!cond)
		abort();
}

/* Does s[0..n) contain U+FFFD (the writer's replacement character)? */
static int has_fffd(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i + 3 <= n; i++)
		if (memcmp(s + i, "\xef\xbf\xbd", 3) == 0)
			return 1;
	return 0;
}

static void check_tokens(const char *s, size_t size, const struct json_token *t, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		must(t[i].next > (uint32_t)i && t[i].next <= (uint32_t)n);
		must((size_t)t[i].start + t[i].len <= size);
		if (t[i].type == JSON_ARRAY || t[i].type == JSON_OBJECT) {
			must(s[t[i].start] == (t[i].type == JSON_ARRAY ? '[' : '{'));
			must(s[t[i].start + t[i].len - 1] == (t[i].type == JSON_ARRAY ? ']' : '}'));
		} else {
			must(t[i].size == 0 && t[i].next == (uint32_t)i + 1);
		}
		if (t[i].type == JSON_STRING)
			must(s[t[i].start - 1] == '"' && s[t[i].start + t[i].len] == '"');
	}
	must(t[0].next == (uint32_t)n);
}

static void check_scalar(const char *s, const struct json_token *t)
{
	long long v;
	char *d;
	int r;

	if (t->type == JSON_NUMBER) {
		r = json_get_int(s, t, &v);
		must(r == 0 || r == E_INVAL);
	}
	if (t->type != JSON_STRING)
		return;
	d = json_str_dup(s, t);
	must(d != NULL);
	r = json_str_decode(s, t, d, (size_t)t->len + 1);
	must(r >= 0 && (uint32_t)r <= t->len);
	if (strlen(d) == (size_t)r)
		must(json_str_eq(s, t, d));
	else
		must(!json_str_eq(s, t, d));
	free(d);
}

static void check_object(const char *s, const struct json_token *t, int obj)
{
	uint32_t k, i = (uint32_t)obj + 1;
	char *key;
	int got, klen;

	for (k = 0; k < t[obj].size; k++) {
		must(t[i].type == JSON_STRING);
		key = json_str_dup(s, &t[i]);
		must(key != NULL);
		klen = json_str_decode(s, &t[i], key, (size_t)t[i].len + 1);
		got = json_obj_get(s, t, obj, key);
		if ((size_t)klen == strlen(key)) {
			/* the first member with an equal key: never past this one */
			must(got > obj && (uint32_t)got <= i + 1);
			must(json_str_eq(s, &t[got - 1], key));
		}
		free(key);
		i = t[i + 1].next;
	}
	must(i == t[obj].next);
}

/* Write string token t (decoded) as a key or a value. */
static void write_string(struct json_writer *w, const char *s, const struct json_token *t,
			 int as_key)
{
	char *d = malloc((size_t)t->len + 1);
	int n;

	must(d != NULL);
	n = json_str_decode(s, t, d, (size_t)t->len + 1);
	must(n >= 0);
	if (as_key)
		jw_keyn(w, d, (size_t)n);
	else
		jw_strn(w, d, (size_t)n);
	free(d);
}

/* Re-serialise tokens [0, n) without recursion. */
static char *reserialise(const char *s, const struct json_token *t, int n, size_t *len)
{
	struct json_writer w;
	uint32_t ends[JSON_MAX_DEPTH + 1];
	int is_obj[JSON_MAX_DEPTH + 1], key_next[JSON_MAX_DEPTH + 1];
	int depth = 0, i;

	json_writer_init(&w, 0);
	for (i = 0; i < n; i++) {
		while (depth > 0 && (uint32_t)i == ends[depth - 1]) {
			if (is_obj[--depth])
				jw_obj_end(&w);
			else
				jw_arr_end(&w);
		}
		if (depth > 0 && is_obj[depth - 1] && key_next[depth - 1]) {
			write_string(&w, s, &t[i], 1);
			key_next[depth - 1] = 0;
			continue;
		}
		if (depth > 0 && is_obj[depth - 1])
			key_next[depth - 1] = 1;
		switch (t[i].type) {
		case JSON_NULL: jw_null(&w); break;
		case JSON_FALSE: jw_bool(&w, 0); break;
		case JSON_TRUE: jw_bool(&w, 1); break;
		case JSON_NUMBER: jw_raw(&w, s + t[i].start, t[i].len); break;
		case JSON_STRING: write_string(&w, s, &t[i], 0); break;
		case JSON_ARRAY:
		case JSON_OBJECT:
			must(depth < JSON_MAX_DEPTH);
			is_obj[depth] = t[i].type == JSON_OBJECT;
			key_next[depth] = 1;
			ends[depth++] = t[i].next;
			if (t[i].type == JSON_OBJECT)
				jw_obj_begin(&w);
			else
				jw_arr_begin(&w);
			break;
		}
	}
	while (depth > 0) {
		if (is_obj[--depth])
			jw_obj_end(&w);
		else
			jw_arr_end(&w);
	}
	return json_writer_take(&w, len);
}

static void check_same(const char *a, const struct json_token *ta, const char *b,
		       const struct json_token *tb, int n)
{
	char *da, *db;
	int i, la, lb;

	for (i = 0; i < n; i++) {
		must(ta[i].type == tb[i].type && ta[i].size == tb[i].size && ta[i].next == tb[i].next);
		if (ta[i].type != JSON_STRING)
			continue;
		da = malloc((size_t)ta[i].len + 1);
		db = malloc((size_t)tb[i].len + 1);
		must(da && db);
		la = json_str_decode(a, &ta[i], da, (size_t)ta[i].len + 1);
		lb = json_str_decode(b, &tb[i], db, (size_t)tb[i].len + 1);
		must(la >= 0 && la == lb && memcmp(da, db, (size_t)la) == 0);
		free(da);
		free(db);
	}
}

static void fuzz_parse(const char *s, size_t size)
{
	static struct json_token t[FUZZ_TOKS], t2[FUZZ_TOKS];
	struct json_error err;
	char *out;
	size_t len;
	int n, n2, i;

	n = json_parse(s, size, t, FUZZ_TOKS, &err);
	if (n < 0) {
		must(n == E_INVAL || n == E_LIMIT);
		must(err.message[0] != '\0' && err.position <= size);
		return;
	}
	must(n >= 1);
	check_tokens(s, size, t, n);
	for (i = 0; i < n; i++) {
		if (t[i].type == JSON_OBJECT)
			check_object(s, t, i);
		else
			check_scalar(s, &t[i]);
	}
	out = reserialise(s, t, n, &len);
	if (!out) {
		/* escaping can grow a string 6x (0x7f -> \u007f) past the cap */
		must(size > JSON_WRITER_MAX_DEFAULT / 6);
		return;
	}
	n2 = json_parse(out, len, t2, FUZZ_TOKS, &err);
	must(n2 == n);
	check_same(s, t, out, t2, n);
	free(out);
}

static void fuzz_write(const char *s, size_t size)
{
	struct json_writer w;
	struct json_token t[1];
	char *out, *d;
	size_t len;
	int n;

	json_writer_init(&w, 0);
	jw_strn(&w, s, size);
	out = json_writer_take(&w, &len);
	if (!out) {
		must(w.err == E_LIMIT); /* larger than the default cap */
		return;
	}
	must(json_parse(out, len, t, 1, NULL) == 1);
	d = malloc(len);
	must(d != NULL);
	n = json_str_decode(out, &t[0], d, len);
	must(n >= 0);
	/* well-formed input comes back byte for byte; otherwise U+FFFD shows */
	must(((size_t)n == size && memcmp(d, s, size) == 0) || has_fffd(d, (size_t)n));
	free(d);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_parse((const char *)data, size);
	fuzz_write((const char *)data, size);
	return 0;
}
