/* t-json.c - unit tests for lib/json.c.
 *
 * Every document is parsed (a) from an exact-size malloc'd copy, so ASan
 * sees any overread, and (b) placed right before an unreadable guard page,
 * which catches overreads without ASan. Every prefix of every case goes
 * through the same two paths.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test.h"
#include "json.h"
#include "err.h"

#define NTOK 256

/* ---- harness -------------------------------------------------------- */

static unsigned char *guard_page; /* page_size readable bytes, then PROT_NONE */
static size_t page_size;

static void guard_init(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	int fd = open("/dev/zero", O_RDWR);
	void *m;

	if (ps <= 0 || fd < 0)
		goto out;
	m = mmap(NULL, (size_t)ps * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED)
		goto out;
	if (mprotect((char *)m + ps, (size_t)ps, PROT_NONE) != 0) {
		(void)munmap(m, (size_t)ps * 2);
		goto out;
	}
	guard_page = m;
	page_size = (size_t)ps;
out:
	if (fd >= 0)
		(void)close(fd);
}

/* Parse doc[0..len) from an exact-size heap block and from the end of the
 * guard page; both must agree. Tokens/err come from the heap run. */
static int parse_doc(const char *doc, size_t len, struct json_token *toks, size_t max,
		     struct json_error *err)
{
	char *exact = malloc(len ? len : 1);
	struct json_token gtoks[NTOK];
	int r, g;

	if (!exact)
		abort();
	memcpy(exact, doc, len);
	r = json_parse(exact, len, toks, max, err);
	free(exact);
	if (guard_page && len <= page_size) {
		unsigned char *at = guard_page + page_size - len;
		memcpy(at, doc, len);
		g = json_parse((const char *)at, len, max <= NTOK ? gtoks : NULL,
			       max <= NTOK ? max : 0, NULL);
		if (max <= NTOK && g != r) {
			printf("#   guard-page parse differs: %d vs %d\n", g, r);
			test_failures_in_case++;
		}
	}
	return r;
}

/* Last non-whitespace byte is a digit: then some prefixes are valid numbers. */
static int ends_in_digit(const char *doc, size_t len)
{
	while (len > 0 && strchr(" \t\r\n", doc[len - 1]))
		len--;
	return len > 0 && doc[len - 1] >= '0' && doc[len - 1] <= '9';
}

/* Whole doc must parse; every proper prefix must fail (or, for documents
 * ending in a number, at least not crash). Returns the token count. */
static int check_valid_n(const char *doc, size_t len)
{
	struct json_token toks[NTOK];
	struct json_error err;
	int r = parse_doc(doc, len, toks, NTOK, &err);
	size_t k, end = len;

	if (r <= 0) {
		printf("#   valid doc rejected (%d, %s): %.*s\n", r, err.message, (int)len, doc);
		test_failures_in_case++;
	}
	while (end > 0 && strchr(" \t\r\n", doc[end - 1]))
		end--;
	for (k = 0; k < end; k++) {
		int p = parse_doc(doc, k, toks, NTOK, &err);
		if (p >= 0 && !ends_in_digit(doc, len)) {
			printf("#   prefix %zu accepted: %.*s\n", k, (int)len, doc);
			test_failures_in_case++;
		}
		if (p < 0 && err.message[0] == '\0') {
			printf("#   prefix %zu: no message\n", k);
			test_failures_in_case++;
		}
	}
	return r;
}

static int check_valid(const char *doc)
{
	return check_valid_n(doc, strlen(doc));
}

/* Whole doc must fail with code; prefixes must not crash. */
static void check_invalid_n(const char *doc, size_t len, int code)
{
	struct json_token toks[NTOK];
	struct json_error err;
	int r;
	size_t k;

	err.message[0] = '\0';
	r = parse_doc(doc, len, toks, NTOK, &err);
	if (r != code) {
		printf("#   invalid doc gave %d, want %d: %.*s\n", r, code, (int)len, doc);
		test_failures_in_case++;
	} else if (err.message[0] == '\0' || err.position > len) {
		printf("#   bad error report for: %.*s\n", (int)len, doc);
		test_failures_in_case++;
	}
	for (k = 0; k < len; k++)
		(void)parse_doc(doc, k, toks, NTOK, &err);
}

static void check_invalid(const char *doc)
{
	check_invalid_n(doc, strlen(doc), E_INVAL);
}

/* Parse doc expecting failure; return the message (static). */
static const char *errmsg(const char *doc, size_t *pos)
{
	static struct json_error err;
	struct json_token toks[NTOK];

	memset(&err, 0, sizeof(err));
	if (parse_doc(doc, strlen(doc), toks, NTOK, &err) >= 0)
		return "(parsed)";
	if (pos)
		*pos = err.position;
	return err.message;
}

/* Parse a single string document and decode it. */
static int decode_doc(const char *doc, size_t len, char *out, size_t cap)
{
	struct json_token toks[4];
	int r = parse_doc(doc, len, toks, 4, NULL);

	if (r != 1 || toks[0].type != JSON_STRING)
		return r < 0 ? r : E_INVAL;
	return json_str_decode(doc, &toks[0], out, cap);
}

static char *nest(const char *open, const char *mid, const char *close, int n, size_t *len)
{
	size_t lo = strlen(open), lm = strlen(mid), lc = strlen(close);
	size_t total = (size_t)n * (lo + lc) + lm, at = 0;
	char *s = malloc(total + 1);
	int i;

	if (!s)
		abort();
	for (i = 0; i < n; i++, at += lo)
		memcpy(s + at, open, lo);
	memcpy(s + at, mid, lm);
	at += lm;
	for (i = 0; i < n; i++, at += lc)
		memcpy(s + at, close, lc);
	s[at] = '\0';
	*len = at;
	return s;
}

/* Write s[0..n) with the writer, parse, decode; returns malloc'd decoded
 * string (length in *dlen) or NULL. */
static char *roundtrip(const char *s, size_t n, int *dlen)
{
	struct json_writer w;
	struct json_token toks[2];
	size_t len;
	char *doc, *out;

	json_writer_init(&w, 0);
	jw_strn(&w, s, n);
	if ((doc = json_writer_take(&w, &len)) == NULL)
		return NULL;
	if (parse_doc(doc, len, toks, 2, NULL) != 1 || (out = malloc(len + 1)) == NULL) {
		free(doc);
		return NULL;
	}
	*dlen = json_str_decode(doc, &toks[0], out, len + 1);
	free(doc);
	return out;
}

static char *write_str(const char *s, size_t n)
{
	struct json_writer w;

	json_writer_init(&w, 0);
	jw_strn(&w, s, n);
	return json_writer_take(&w, NULL);
}

/* ---- parser: structure ---------------------------------------------- */

TEST(scalars)
{
	struct json_token t[4];
	const char *doc = " \"ab\\n\" ";

	CHECK_EQ(parse_doc("null", 4, t, 4, NULL), 1);
	CHECK_EQ(t[0].type, JSON_NULL);
	CHECK_EQ(parse_doc("true", 4, t, 4, NULL), 1);
	CHECK_EQ(t[0].type, JSON_TRUE);
	CHECK_EQ(parse_doc("false", 5, t, 4, NULL), 1);
	CHECK_EQ(t[0].type, JSON_FALSE);
	CHECK_EQ(t[0].len, 5);
	CHECK_EQ(parse_doc(" -12.5e3 ", 9, t, 4, NULL), 1);
	CHECK_EQ(t[0].type, JSON_NUMBER);
	CHECK_EQ(t[0].start, 1);
	CHECK_EQ(t[0].len, 7);
	CHECK_EQ(t[0].next, 1);
	CHECK_EQ(parse_doc(doc, strlen(doc), t, 4, NULL), 1);
	CHECK_EQ(t[0].type, JSON_STRING);
	CHECK_EQ(t[0].start, 2);
	CHECK_EQ(t[0].len, 4);
	CHECK_EQ(t[0].size, 0);
}

TEST(array_tokens)
{
	struct json_token t[8];
	const char *doc = "[1, [2, 3], \"x\", []]";

	CHECK_EQ(parse_doc(doc, strlen(doc), t, 8, NULL), 7);
	CHECK_EQ(t[0].type, JSON_ARRAY);
	CHECK_EQ(t[0].start, 0);
	CHECK_EQ(t[0].len, strlen(doc));
	CHECK_EQ(t[0].size, 4);
	CHECK_EQ(t[0].next, 7);
	CHECK_EQ(t[1].type, JSON_NUMBER);
	CHECK_EQ(t[2].type, JSON_ARRAY);
	CHECK_EQ(t[2].start, 4);
	CHECK_EQ(t[2].len, 6);
	CHECK_EQ(t[2].size, 2);
	CHECK_EQ(t[2].next, 5);
	CHECK_EQ(t[5].type, JSON_STRING);
	CHECK_EQ(t[5].start, 13);
	CHECK_EQ(t[5].len, 1);
	CHECK_EQ(t[6].type, JSON_ARRAY);
	CHECK_EQ(t[6].size, 0);
	CHECK_EQ(t[6].len, 2);
	CHECK_EQ(t[6].next, 7);
}

TEST(object_tokens)
{
	struct json_token t[16];
	const char *doc = "{\"a\": {\"b\": [1, 2]}, \"c\": null, \"d\": {}}";
	int i, n;

	n = parse_doc(doc, strlen(doc), t, 16, NULL);
	CHECK_EQ(n, 11);
	CHECK_EQ(t[0].type, JSON_OBJECT);
	CHECK_EQ(t[0].size, 3);
	CHECK_EQ(t[0].next, 11);
	CHECK_EQ(t[0].len, strlen(doc));
	CHECK_EQ(t[1].type, JSON_STRING); /* key "a" */
	CHECK_EQ(t[1].size, 0);
	CHECK_EQ(t[1].next, 2);
	CHECK_EQ(t[2].type, JSON_OBJECT);
	CHECK_EQ(t[2].size, 1);
	CHECK_EQ(t[2].next, 7);
	CHECK_EQ(t[4].type, JSON_ARRAY);
	CHECK_EQ(t[4].size, 2);
	CHECK(json_str_eq(doc, &t[7], "c"));
	CHECK_EQ(t[8].type, JSON_NULL);
	CHECK(json_str_eq(doc, &t[9], "d"));
	CHECK_EQ(t[10].type, JSON_OBJECT);
	CHECK_EQ(t[10].size, 0);
	/* walking members with next visits every key */
	i = 1;
	for (n = 0; n < 3; n++) {
		CHECK_EQ(t[i].type, JSON_STRING);
		i = (int)t[i + 1].next;
	}
	CHECK_EQ(i, 11);
}

TEST(valid_documents)
{
	static const char *docs[] = {
		"null", "true", "false", "0", "-0", "123", "-1.5e+10", "1E5", "1.5E-3",
		"\"\"", "\"abc\"", "[]", "{}", " [ ] ", "[1,2,3]", "{\"a\":1}",
		"{\"a\":[1,{\"b\":null}],\"c\":\"d\"}", "[[[]]]", "[[],[[]],{}]",
		"\"\\u00e9\\ud83d\\ude00\"", "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
		"\t\r\n{\"k\" : [ true , false ] }\n", "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]",
		"[0.5,-0.0,1e-3,0e0,10E+2]", "\"\\ud800\"", "\"\\udc00x\"", "{\"\":\"\"}",
		"\"\x7f\"", "\"\xe2\x80\xa8\xe2\x80\xa9\"", "\"\xf4\x8f\xbf\xbf\"",
		"{\"a\":1,\"a\":2}", "[null,true,false]", "-0.0e-0",
	};
	size_t i;

	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		(void)check_valid(docs[i]);
}

TEST(invalid_documents)
{
	static const char *docs[] = {
		"", " ", "\n\t", "[", "]", "{", "}", "[1,]", "{\"a\":1,}", "[1 2]",
		"{\"a\" 1}", "{a:1}", "{1:1}", "// c\n1", "/* */1", "1 /**/", "[1,,2]",
		"[,1]", "{\"a\":}", "{\"a\"}", "{,}", "{\"a\":1 \"b\":2}", "[}", "{]",
		"[1}", "{\"a\":1]", "tru", "trux", "nul", "True", "NaN", "Infinity",
		"undefined", "'a'", "\"abc", "[1]x", "1 2", "{} {}", "\xef\xbb\xbf{}",
		"[\"a\",]", "\"\\\"", "\\", ":", ",", "[1]]", "{}}", "\x01",
	};
	size_t i;

	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		check_invalid(docs[i]);
	check_invalid_n("[1]\0", 4, E_INVAL);
	check_invalid_n("\0", 1, E_INVAL);
}

TEST(whitespace)
{
	struct json_token t[4];

	CHECK_EQ(parse_doc(" \t\r\n1 \t\r\n", 9, t, 4, NULL), 1);
	CHECK_EQ(t[0].start, 4);
	check_invalid("\f1");  /* form feed is not JSON whitespace */
	check_invalid("\v1");
	check_invalid("[1,\xc2\xa0" "2]"); /* NBSP neither */
}

/* ---- parser: limits ------------------------------------------------- */

TEST(depth_64_ok)
{
	size_t len;
	char *a = nest("[", "", "]", JSON_MAX_DEPTH, &len);
	char *o = nest("{\"k\":", "1", "}", JSON_MAX_DEPTH, &len);
	char *m = nest("[{\"k\":", "1", "}]", JSON_MAX_DEPTH / 2, &len);

	CHECK_EQ(check_valid(a), JSON_MAX_DEPTH);
	CHECK_EQ(check_valid(o), 2 * JSON_MAX_DEPTH + 1);
	CHECK_EQ(check_valid(m), 3 * (JSON_MAX_DEPTH / 2) + 1);
	free(a);
	free(o);
	free(m);
}

TEST(depth_65_fails)
{
	size_t len;
	char *a = nest("[", "", "]", JSON_MAX_DEPTH + 1, &len);
	char *o = nest("{\"k\":", "1", "}", JSON_MAX_DEPTH + 1, &len);
	struct json_error err;
	struct json_token t[NTOK];

	check_invalid_n(a, strlen(a), E_LIMIT);
	check_invalid_n(o, strlen(o), E_LIMIT);
	CHECK_EQ(parse_doc(a, strlen(a), t, NTOK, &err), E_LIMIT);
	CHECK_EQ(err.position, JSON_MAX_DEPTH);
	CHECK(strstr(err.message, "depth") != NULL);
	free(a);
	free(o);
}

TEST(depth_100000_no_stack_overflow)
{
	size_t len;
	char *a = nest("[", "", "", 100000, &len);
	char *b = nest("[", "1", "]", 100000, &len);
	char *o = nest("{\"k\":", "", "", 100000, &len);
	struct json_token *t = malloc(200001 * sizeof(*t));

	CHECK(t != NULL);
	CHECK_EQ(parse_doc(a, strlen(a), t, 200001, NULL), E_LIMIT);
	CHECK_EQ(parse_doc(b, strlen(b), t, 200001, NULL), E_LIMIT);
	CHECK_EQ(parse_doc(o, strlen(o), t, 200001, NULL), E_LIMIT);
	free(t);
	free(a);
	free(b);
	free(o);
}

TEST(token_limit)
{
	struct json_token t[8];
	struct json_error err;
	const char *doc = "[1,{\"a\":2},3]";

	CHECK_EQ(parse_doc(doc, strlen(doc), t, 6, NULL), 6);
	CHECK_EQ(parse_doc(doc, strlen(doc), t, 5, &err), E_LIMIT);
	CHECK(strstr(err.message, "tokens") != NULL);
	CHECK_EQ(parse_doc(doc, strlen(doc), t, 0, NULL), E_LIMIT);
	CHECK_EQ(json_parse(doc, strlen(doc), NULL, 8, NULL), E_LIMIT);
	CHECK_EQ(parse_doc("1", 1, t, 1, NULL), 1);
	/* a syntax error before the limit is reached is still a syntax error */
	CHECK_EQ(parse_doc("[1,]", 4, t, 8, NULL), E_INVAL);
}

TEST(input_too_long)
{
#if SIZE_MAX > UINT32_MAX
	struct json_token t[2];
	struct json_error err;

	/* the length check comes before any byte is read */
	CHECK_EQ(json_parse("1", (size_t)UINT32_MAX + 1, t, 2, &err), E_LIMIT);
	CHECK(err.message[0] != '\0');
#endif
}

/* ---- parser: grammar ------------------------------------------------ */

TEST(numbers_valid)
{
	static const char *ok[] = {
		"0", "-0", "1", "-1", "10", "1e5", "1E5", "1e+5", "1e-5", "1.5E-3", "0.0",
		"-0.5", "123456789012345678901234567890", "1.0e400", "0e0", "[-0,0.1]",
	};
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		(void)check_valid(ok[i]);
}

TEST(numbers_invalid)
{
	static const char *bad[] = {
		"01", "-01", "00", "1.", "1.e5", ".5", "+1", "-", "--1", "1e", "1e+", "1E-",
		"0x10", "1.5.5", "1e5e5", "- 1", "[1.]", "[01]", "{\"a\":-}", "1ee5", "0.a",
		"\xd9\xa1", /* Arabic-Indic digit one */
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_invalid(bad[i]);
}

TEST(string_escapes_valid)
{
	char out[64];

	CHECK_EQ(decode_doc("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", 18, out, sizeof(out)), 8);
	CHECK_STR(out, "\"\\/\b\f\n\r\t");
	CHECK_EQ(decode_doc("\"\\u0041\\u00e9\\u20AC\"", 20, out, sizeof(out)), 1 + 2 + 3);
	CHECK_STR(out, "A\xc3\xa9\xe2\x82\xac");
	CHECK_EQ(decode_doc("\"\\ud83d\\ude00\"", 14, out, sizeof(out)), 4);
	CHECK_STR(out, "\xf0\x9f\x98\x80");
	CHECK_EQ(decode_doc("\"\\uDBFF\\uDFFF\"", 14, out, sizeof(out)), 4);
	CHECK_STR(out, "\xf4\x8f\xbf\xbf");
	/* lone surrogates become U+FFFD */
	CHECK_EQ(decode_doc("\"\\ud800\"", 8, out, sizeof(out)), 3);
	CHECK_STR(out, "\xef\xbf\xbd");
	CHECK_EQ(decode_doc("\"\\udc00\\ud800x\"", 15, out, sizeof(out)), 7);
	CHECK_STR(out, "\xef\xbf\xbd\xef\xbf\xbdx");
	CHECK_EQ(decode_doc("\"\\ud800\\u0041\"", 14, out, sizeof(out)), 4);
	CHECK_STR(out, "\xef\xbf\xbd" "A");
	CHECK_EQ(decode_doc("\"\\ud800\\n\"", 10, out, sizeof(out)), 4);
	/* \u0000 decodes to an embedded NUL, reported through the length */
	CHECK_EQ(decode_doc("\"a\\u0000b\"", 10, out, sizeof(out)), 3);
	CHECK_MEM(out, "a\0b", 4);
}

TEST(string_escapes_invalid)
{
	static const char *bad[] = {
		"\"\\x\"", "\"\\a\"", "\"\\U0041\"", "\"\\u12G4\"", "\"\\u12\"", "\"\\u\"",
		"\"\\u004\"", "\"\\'\"", "\"\\0\"", "\"\\\xc3\xa9\"", "\"\\u+041\"",
		"\"\\u 041\"", "\"\\", "\"\\u00",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_invalid(bad[i]);
}

TEST(control_chars)
{
	char doc[4] = { '"', 0, '"', 0 };
	int c;

	for (c = 0; c < 0x20; c++) {
		doc[1] = (char)c;
		check_invalid_n(doc, 3, E_INVAL);
	}
	doc[1] = 0x7f;
	CHECK_EQ(check_valid_n(doc, 3), 1);
}

TEST(utf8_valid)
{
	static const char *ok[] = {
		"\"\xc2\x80\"", "\"\xdf\xbf\"", "\"\xe0\xa0\x80\"", "\"\xed\x9f\xbf\"",
		"\"\xee\x80\x80\"", "\"\xef\xbf\xbf\"", "\"\xf0\x90\x80\x80\"",
		"\"\xf4\x8f\xbf\xbf\"", "\"\xf3\xbf\xbf\xbf\"", "{\"\xc3\xa9\":\"\xe2\x82\xac\"}",
	};
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		(void)check_valid(ok[i]);
}

TEST(utf8_invalid)
{
	static const char *bad[] = {
		"\"\x80\"", "\"\xbf\"", "\"\xc0\x80\"", "\"\xc1\xbf\"", /* overlong 2 */
		"\"\xe0\x80\x80\"", "\"\xe0\x9f\xbf\"",                 /* overlong 3 */
		"\"\xf0\x80\x80\x80\"", "\"\xf0\x8f\xbf\xbf\"",         /* overlong 4 */
		"\"\xed\xa0\x80\"", "\"\xed\xbf\xbf\"",                 /* surrogates */
		"\"\xf4\x90\x80\x80\"", "\"\xf5\x80\x80\x80\"",         /* > U+10FFFF */
		"\"\xf8\x88\x80\x80\x80\"", "\"\xfe\"", "\"\xff\"",
		"\"\xc3\"", "\"\xe2\x82\"", "\"\xf0\x9f\x98\"",         /* truncated */
		"\"\xc3x\"", "\"\xe2\x82x\"", "\"\xc3\xc3\xa9\"",
		"\xc3\xa9", "[\xe2\x82\xac]",                           /* outside strings */
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_invalid(bad[i]);
}

/* ---- error messages ------------------------------------------------- */

TEST(error_messages)
{
	size_t pos = 99;

	CHECK_STR(errmsg("[}", &pos), "Unexpected token } in JSON at position 1");
	CHECK_EQ(pos, 1);
	CHECK_STR(errmsg("{]", &pos), "Expected property name or '}' in JSON at position 1");
	CHECK_STR(errmsg("{\"a\":1,}", &pos),
		  "Expected double-quoted property name in JSON at position 7");
	CHECK_EQ(pos, 7);
	CHECK_STR(errmsg("{\"a\" 1}", NULL), "Expected ':' after property name in JSON at position 5");
	CHECK_STR(errmsg("{\"a\":1 2}", NULL),
		  "Expected ',' or '}' after property value in JSON at position 7");
	CHECK_STR(errmsg("[1 2]", NULL), "Expected ',' or ']' after array element in JSON at position 3");
	CHECK_STR(errmsg("[1,]", NULL), "Unexpected token ] in JSON at position 3");
	CHECK_STR(errmsg("[1] x", &pos),
		  "Unexpected non-whitespace character after JSON at position 4");
	CHECK_EQ(pos, 4);
	CHECK_STR(errmsg("01", NULL), "Unexpected number in JSON at position 1");
	CHECK_STR(errmsg("-x", NULL), "No number after minus sign in JSON at position 1");
	CHECK_STR(errmsg("1.x", NULL), "Unterminated fractional number in JSON at position 2");
	CHECK_STR(errmsg("1ex", NULL), "Exponent part is missing a number in JSON at position 2");
	CHECK_STR(errmsg("\"\x01\"", NULL),
		  "Bad control character in string literal in JSON at position 1");
	CHECK_STR(errmsg("\"ab\xff\"", &pos), "Invalid UTF-8 in string literal in JSON at position 3");
	CHECK_EQ(pos, 3);
	CHECK_STR(errmsg("\"\\x\"", NULL), "Bad escaped character in JSON at position 2");
	CHECK_STR(errmsg("\"\\u12x4\"", NULL), "Bad Unicode escape in JSON at position 5");
	CHECK_STR(errmsg("\x01", NULL), "Unexpected byte 0x01 in JSON at position 0");
	CHECK_STR(errmsg("trUe", NULL), "Unexpected token U in JSON at position 2");
}

TEST(error_end_of_input)
{
	size_t pos = 99;

	CHECK_STR(errmsg("", &pos), "Unexpected end of JSON input");
	CHECK_EQ(pos, 0);
	CHECK_STR(errmsg("[1, ", &pos), "Unexpected end of JSON input");
	CHECK_EQ(pos, 4);
	CHECK_STR(errmsg("{\"a\"", NULL), "Unexpected end of JSON input");
	CHECK_STR(errmsg("tr", NULL), "Unexpected end of JSON input");
	CHECK_STR(errmsg("-", NULL), "Unexpected end of JSON input");
	CHECK_STR(errmsg("\"abc", &pos), "Unterminated string in JSON at position 4");
	CHECK_EQ(pos, 4);
	CHECK_STR(errmsg("\"\xe2\x82", NULL), "Unexpected end of JSON input");
}

/* ---- accessors ------------------------------------------------------ */

TEST(str_decode_limits)
{
	struct json_token t[2];
	const char *doc = "\"a\\u00e9b\"";
	char out[8];

	CHECK_EQ(parse_doc(doc, strlen(doc), t, 2, NULL), 1);
	CHECK_EQ(json_str_decode(doc, &t[0], out, 5), 4); /* a + 2 + b + NUL */
	CHECK_STR(out, "a\xc3\xa9" "b");
	CHECK_EQ(json_str_decode(doc, &t[0], out, 4), E_LIMIT);
	CHECK_EQ(out[3], '\0');
	CHECK_EQ(json_str_decode(doc, &t[0], out, 2), E_LIMIT);
	CHECK_STR(out, "a");
	CHECK_EQ(json_str_decode(doc, &t[0], out, 0), E_LIMIT);
	CHECK_EQ(parse_doc("1", 1, t, 2, NULL), 1);
	CHECK_EQ(json_str_decode("1", &t[0], out, sizeof(out)), E_INVAL);
	CHECK_EQ(parse_doc("\"\"", 2, t, 2, NULL), 1);
	CHECK_EQ(json_str_decode("\"\"", &t[0], out, 1), 0);
	CHECK_STR(out, "");
}

TEST(str_dup_and_eq)
{
	struct json_token t[4];
	const char *doc = "[\"h\\u00e9llo\\n\", \"a\\u0000b\", 5]";
	char *d;

	CHECK_EQ(parse_doc(doc, strlen(doc), t, 4, NULL), 4);
	d = json_str_dup(doc, &t[1]);
	CHECK_STR(d, "h\xc3\xa9llo\n");
	free(d);
	CHECK(json_str_eq(doc, &t[1], "h\xc3\xa9llo\n"));
	CHECK(!json_str_eq(doc, &t[1], "h\xc3\xa9llo"));
	CHECK(!json_str_eq(doc, &t[1], "h\xc3\xa9llo\n!"));
	CHECK(!json_str_eq(doc, &t[1], ""));
	CHECK(!json_str_eq(doc, &t[2], "a")); /* embedded NUL never equals */
	CHECK(!json_str_eq(doc, &t[2], "ab"));
	CHECK(!json_str_eq(doc, &t[3], "5"));
	CHECK(json_str_dup(doc, &t[3]) == NULL);
	CHECK(!json_str_eq(doc, &t[1], NULL));
}

TEST(obj_get)
{
	struct json_token t[32];
	const char *doc = "{\"skip\": {\"a\": [1, {\"b\": 2}]}, \"a\\u0062\": 7, \"\\\"q\\\"\": true,"
			  " \"\": 0, \"dup\": 1, \"dup\": 2, \"x\\/y\": null}";
	long long v = 0;
	int i;

	CHECK(parse_doc(doc, strlen(doc), t, 32, NULL) > 0);
	i = json_obj_get(doc, t, 0, "ab");
	CHECK(i > 0);
	CHECK_EQ(json_get_int(doc, &t[i], &v), 0);
	CHECK_EQ(v, 7);
	i = json_obj_get(doc, t, 0, "\"q\"");
	CHECK(i > 0 && t[i].type == JSON_TRUE);
	i = json_obj_get(doc, t, 0, "");
	CHECK(i > 0 && t[i].type == JSON_NUMBER);
	i = json_obj_get(doc, t, 0, "dup");
	CHECK(i > 0 && json_get_int(doc, &t[i], &v) == 0 && v == 1);
	i = json_obj_get(doc, t, 0, "x/y");
	CHECK(i > 0 && t[i].type == JSON_NULL);
	CHECK_EQ(json_obj_get(doc, t, 0, "a"), -1);    /* nested keys are not members */
	CHECK_EQ(json_obj_get(doc, t, 0, "b"), -1);
	CHECK_EQ(json_obj_get(doc, t, 0, "a\\u0062"), -1); /* compares decoded */
	i = json_obj_get(doc, t, 0, "skip");
	CHECK_EQ(i, 2);
	CHECK_EQ(json_obj_get(doc, t, i, "a"), 4);
	CHECK_EQ(json_obj_get(doc, t, 4, "a"), -1); /* array, not object */
	CHECK_EQ(json_obj_get(doc, t, -1, "a"), -1);
}

TEST(get_int)
{
	static const struct { const char *doc; int rc; long long v; } cases[] = {
		{ "0", 0, 0 }, { "-0", 0, 0 }, { "42", 0, 42 }, { "-42", 0, -42 },
		{ "9223372036854775807", 0, LLONG_MAX },
		{ "-9223372036854775808", 0, LLONG_MIN },
		{ "9223372036854775808", E_INVAL, 0 },
		{ "-9223372036854775809", E_INVAL, 0 },
		{ "99999999999999999999", E_INVAL, 0 },
		{ "1.0", E_INVAL, 0 }, { "1e2", E_INVAL, 0 }, { "-1E0", E_INVAL, 0 },
		{ "\"1\"", E_INVAL, 0 }, { "true", E_INVAL, 0 },
	};
	struct json_token t[2];
	size_t i;
	long long v;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		v = 12345;
		CHECK_EQ(parse_doc(cases[i].doc, strlen(cases[i].doc), t, 2, NULL), 1);
		CHECK_EQ(json_get_int(cases[i].doc, &t[0], &v), cases[i].rc);
		if (cases[i].rc == 0)
			CHECK_EQ(v, cases[i].v);
		else
			CHECK_EQ(v, 12345);
	}
}

/* ---- writer --------------------------------------------------------- */

TEST(writer_basic)
{
	struct json_writer w;
	size_t len;
	char *out;

	json_writer_init(&w, 0);
	jw_obj_begin(&w);
	jw_kv_str(&w, "name", "web");
	jw_kv_int(&w, "port", 8080);
	jw_kv_bool(&w, "tls", 1);
	jw_key(&w, "tags");
	jw_arr_begin(&w);
	jw_str(&w, "a");
	jw_null(&w);
	jw_bool(&w, 0);
	jw_arr_begin(&w);
	jw_arr_end(&w);
	jw_obj_begin(&w);
	jw_obj_end(&w);
	jw_arr_end(&w);
	jw_kv_str(&w, "none", NULL);
	jw_obj_end(&w);
	out = json_writer_take(&w, &len);
	CHECK_STR(out, "{\"name\":\"web\",\"port\":8080,\"tls\":true,"
		  "\"tags\":[\"a\",null,false,[],{}],\"none\":null}");
	CHECK_EQ(len, out ? strlen(out) : 0);
	CHECK(w.buf == NULL);
	json_writer_free(&w); /* harmless after take */
	free(out);
}

TEST(writer_ints_and_raw)
{
	struct json_writer w;
	struct json_token t[12];
	long long v;
	char *out;

	json_writer_init(&w, 0);
	jw_arr_begin(&w);
	jw_int(&w, 0);
	jw_int(&w, -1);
	jw_int(&w, LLONG_MAX);
	jw_int(&w, LLONG_MIN);
	jw_raw(&w, "{\"pre\":[1,2]}", 13);
	jw_arr_end(&w);
	out = json_writer_take(&w, NULL);
	CHECK_STR(out, "[0,-1,9223372036854775807,-9223372036854775808,{\"pre\":[1,2]}]");
	CHECK_EQ(parse_doc(out, strlen(out), t, 12, NULL), 10);
	CHECK(json_get_int(out, &t[4], &v) == 0 && v == LLONG_MIN);
	free(out);

	json_writer_init(&w, 0);
	jw_int(&w, 7);
	out = json_writer_take(&w, NULL);
	CHECK_STR(out, "7");
	free(out);

	json_writer_init(&w, 0); /* empty document */
	out = json_writer_take(&w, NULL);
	CHECK_STR(out, "");
	free(out);
}

TEST(writer_escaping)
{
	static const char in[] = "a\"b\\c\n\r\t\b\f\x01\x1f\x7f/ \xe2\x80\xa8\xe2\x80\xa9";
	char *out = write_str(in, sizeof(in) - 1);

	CHECK_STR(out, "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f\\u007f/ "
		  "\xe2\x80\xa8\xe2\x80\xa9\"");
	free(out);
	out = write_str("a\0b", 3);
	CHECK_STR(out, "\"a\\u0000b\"");
	free(out);
	out = write_str("\xc3\xa9\xf0\x9f\x98\x80", 6);
	CHECK_STR(out, "\"\xc3\xa9\xf0\x9f\x98\x80\"");
	free(out);
}

TEST(writer_invalid_utf8)
{
	static const struct { const char *in; const char *out; } cases[] = {
		{ "\xff", "\"\xef\xbf\xbd\"" },
		{ "a\x80z", "\"a\xef\xbf\xbdz\"" },
		{ "\xe2\x82", "\"\xef\xbf\xbd\"" },           /* truncated: one U+FFFD */
		{ "\xe2\x82x", "\"\xef\xbf\xbdx\"" },
		{ "\xc0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\"" }, /* overlong */
		{ "\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },
		{ "\xf4\x90\x80\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },
		{ "\xf0\x9f\x98", "\"\xef\xbf\xbd\"" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = write_str(cases[i].in, strlen(cases[i].in));
		CHECK_STR(out, cases[i].out);
		free(out);
	}
}

/* Tiny deterministic PRNG so failures reproduce. */
static uint32_t rng_state = 12345;
static uint32_t rng(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return rng_state >> 8;
}

static int memmem_fffd(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i + 3 <= n; i++)
		if (memcmp(s + i, "\xef\xbf\xbd", 3) == 0)
			return 1;
	return 0;
}

/* Independent UTF-8 check (decodes, then range-checks the code point). */
static int is_utf8(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, k, extra;
	unsigned long cp, min;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xE0) == 0xC0) {
			extra = 1; cp = s[i] & 0x1F; min = 0x80;
		} else if ((s[i] & 0xF0) == 0xE0) {
			extra = 2; cp = s[i] & 0x0F; min = 0x800;
		} else if ((s[i] & 0xF8) == 0xF0) {
			extra = 3; cp = s[i] & 0x07; min = 0x10000;
		} else {
			return 0;
		}
		if (extra >= n - i)
			return 0;
		for (k = 1; k <= extra; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += extra + 1;
	}
	return 1;
}

TEST(writer_roundtrip)
{
	static const char *samples[] = {
		"", "plain", "\"\\/\b\f\n\r\t", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
		"\x7f\x01\x1f", "\xe2\x80\xa8", "\xef\xbf\xbf\xf4\x8f\xbf\xbf",
	};
	char buf[64];
	size_t i, n, k;
	int dlen;
	char *d;

	for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		n = strlen(samples[i]);
		d = roundtrip(samples[i], n, &dlen);
		CHECK(d != NULL);
		CHECK_EQ(dlen, n);
		if (d)
			CHECK_MEM(d, samples[i], n);
		free(d);
	}
	/* every single byte, then random byte strings: the output always
	 * parses; valid UTF-8 comes back unchanged, anything else comes back
	 * as valid UTF-8 */
	for (i = 0; i < 256 + 5000; i++) {
		if (i < 256) {
			buf[0] = (char)i;
			n = 1;
		} else {
			n = rng() % sizeof(buf);
			for (k = 0; k < n; k++)
				buf[k] = (char)(rng() % 3 ? rng() % 0x100 : 0x80 | rng() % 0x40);
		}
		d = roundtrip(buf, n, &dlen);
		CHECK(d != NULL && dlen >= 0);
		if (!d || dlen < 0) {
			free(d);
			continue;
		}
		CHECK(is_utf8(d, (size_t)dlen));
		if (is_utf8(buf, n)) {
			CHECK_EQ(dlen, n);
			CHECK_MEM(d, buf, n);
		} else {
			CHECK(memmem_fffd(d, (size_t)dlen));
		}
		free(d);
	}
}

TEST(writer_max_cap)
{
	struct json_writer w;
	size_t len = 99;
	char *out;

	json_writer_init(&w, 5);
	jw_arr_begin(&w);
	jw_int(&w, 1);
	jw_int(&w, 2);
	jw_arr_end(&w);
	out = json_writer_take(&w, &len);
	CHECK_STR(out, "[1,2]"); /* exactly max bytes */
	CHECK_EQ(len, 5);
	free(out);

	json_writer_init(&w, 4);
	jw_arr_begin(&w);
	jw_int(&w, 1);
	jw_int(&w, 2);
	jw_arr_end(&w);
	CHECK_EQ(w.err, E_LIMIT);
	CHECK(json_writer_take(&w, &len) == NULL);
	CHECK_EQ(len, 0);
	json_writer_free(&w);

	json_writer_init(&w, 100);
	jw_obj_begin(&w);
	for (len = 0; len < 100; len++)
		jw_kv_str(&w, "key", "value");
	CHECK_EQ(w.err, E_LIMIT);
	CHECK(w.len <= 100);
	jw_obj_end(&w); /* no-op after an error */
	CHECK(json_writer_take(&w, NULL) == NULL);
	json_writer_free(&w);
}

TEST(writer_misuse)
{
	struct json_writer w;
	int i;

	json_writer_init(&w, 0);
	jw_arr_begin(&w);
	jw_key(&w, "k"); /* key in an array */
	CHECK_EQ(w.err, E_INVAL);
	CHECK(json_writer_take(&w, NULL) == NULL);

	json_writer_init(&w, 0);
	jw_obj_begin(&w);
	jw_int(&w, 1); /* value without key */
	CHECK_EQ(w.err, E_INVAL);
	json_writer_free(&w);

	json_writer_init(&w, 0);
	jw_obj_begin(&w);
	jw_key(&w, "k");
	jw_obj_end(&w); /* key without value */
	CHECK_EQ(w.err, E_INVAL);
	json_writer_free(&w);

	json_writer_init(&w, 0);
	jw_arr_begin(&w);
	jw_obj_end(&w); /* mismatched */
	CHECK_EQ(w.err, E_INVAL);
	json_writer_free(&w);

	json_writer_init(&w, 0);
	jw_arr_end(&w); /* nothing open */
	CHECK_EQ(w.err, E_INVAL);
	json_writer_free(&w);

	json_writer_init(&w, 0);
	jw_int(&w, 1);
	jw_int(&w, 2); /* two top-level values */
	CHECK_EQ(w.err, E_INVAL);
	json_writer_free(&w);

	json_writer_init(&w, 0);
	jw_arr_begin(&w); /* unclosed at take */
	CHECK(json_writer_take(&w, NULL) == NULL);
	CHECK_EQ(w.err, E_INVAL);

	json_writer_init(&w, 0);
	for (i = 0; i < JSON_MAX_DEPTH; i++)
		jw_arr_begin(&w);
	CHECK_EQ(w.err, 0);
	jw_arr_begin(&w);
	CHECK_EQ(w.err, E_LIMIT);
	json_writer_free(&w);
}

TEST(writer_output_parses_back)
{
	struct json_writer w;
	struct json_token t[JSON_MAX_DEPTH * 2 + 8];
	char *out;
	size_t len;
	int i, k;

	json_writer_init(&w, 0);
	for (i = 0; i < JSON_MAX_DEPTH; i++) {
		if (i % 2) {
			jw_obj_begin(&w);
			jw_key(&w, "k\"\\");
		} else {
			jw_arr_begin(&w);
			jw_str(&w, "\x01");
		}
	}
	jw_null(&w);
	for (i = JSON_MAX_DEPTH - 1; i >= 0; i--) {
		if (i % 2)
			jw_obj_end(&w);
		else
			jw_arr_end(&w);
	}
	out = json_writer_take(&w, &len);
	CHECK(out != NULL);
	if (!out)
		return;
	CHECK_EQ(check_valid_n(out, len), 2 * JSON_MAX_DEPTH + 1);
	CHECK_EQ(parse_doc(out, len, t, sizeof(t) / sizeof(t[0]), NULL), 2 * JSON_MAX_DEPTH + 1);
	k = json_obj_get(out, t, 2, "k\"\\");
	CHECK_EQ(k, 4);
	free(out);
}

int main(void)
{
	guard_init();
	RUN(scalars);
	RUN(array_tokens);
	RUN(object_tokens);
	RUN(valid_documents);
	RUN(invalid_documents);
	RUN(whitespace);
	RUN(depth_64_ok);
	RUN(depth_65_fails);
	RUN(depth_100000_no_stack_overflow);
	RUN(token_limit);
	RUN(input_too_long);
	RUN(numbers_valid);
	RUN(numbers_invalid);
	RUN(string_escapes_valid);
	RUN(string_escapes_invalid);
	RUN(control_chars);
	RUN(utf8_valid);
	RUN(utf8_invalid);
	RUN(error_messages);
	RUN(error_end_of_input);
	RUN(str_decode_limits);
	RUN(str_dup_and_eq);
	RUN(obj_get);
	RUN(get_int);
	RUN(writer_basic);
	RUN(writer_ints_and_raw);
	RUN(writer_escaping);
	RUN(writer_invalid_utf8);
	RUN(writer_roundtrip);
	RUN(writer_max_cap);
	RUN(writer_misuse);
	RUN(writer_output_parses_back);
	return test_done();
}
