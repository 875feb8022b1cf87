/* t-http.c - tests of the HTTP/1.1 request parser and chunked decoder.
 *
 * Every request case is parsed (a) whole, (b) at every split point, as a
 * growing buffer with `scanned` set to the previous length, and (c) from
 * an exact-size heap copy and from the end of a page followed by a
 * PROT_NONE guard page, so that reads past the end fault even without
 * ASan (the picohttpparser test.c technique).
 */
#include "http.h"
#include "err.h"
#include "test.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- input placement helpers ---- */

static char *exact_copy(const char *s, size_t n)
{
	char *p = malloc(n ? n : 1);
	if (!p)
		abort();
	if (n)
		memcpy(p, s, n);
	return p;
}

struct guarded {
	void *map;
	size_t map_len;
	char *p;        /* the copy; p + n is the first byte of the guard page */
};

/* Copy s to the end of a mapping whose next page is PROT_NONE.  Uses
 * /dev/zero (not MAP_ANONYMOUS) to stay within POSIX. */
static int guard_copy(struct guarded *g, const char *s, size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t data_pages = (n + page - 1) / page;
	if (data_pages == 0)
		data_pages = 1;
	g->map_len = (data_pages + 1) * page;
	int fd = open("/dev/zero", O_RDWR);
	if (fd < 0)
		return -1;
	g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	if (g->map == MAP_FAILED)
		return -1;
	char *guard = (char *)g->map + data_pages * page;
	if (mprotect(guard, page, PROT_NONE) != 0) {
		munmap(g->map, g->map_len);
		return -1;
	}
	g->p = guard - n;
	memcpy(g->p, s, n);
	return 0;
}

static void guard_free(struct guarded *g)
{
	munmap(g->map, g->map_len);
}

/* ---- request cases ---- */

struct hdr_expect {
	const char *name;
	const char *value;
};

struct req_case {
	const char *name;
	const char *raw;
	size_t raw_len;         /* 0: strlen(raw) */
	int result;             /* E_* or 0 = success */
	size_t head_len;        /* 0: raw_len (success cases only) */
	const char *method;
	const char *target;
	int minor;
	int64_t content_length;
	int chunked, keep_alive, upgrade, expect_continue;
	size_t num_headers;
	struct hdr_expect hdr[3];
};

static size_t case_len(const struct req_case *c)
{
	return c->raw_len ? c->raw_len : strlen(c->raw);
}

static int slice_is(const char *s, size_t n, const char *lit)
{
	return s && strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* Checks that req matches c and that every slice lies inside buf. */
static int check_req(const struct req_case *c, const char *buf, size_t len,
		     const struct http_request *req)
{
	int bad = test_failures_in_case;
	CHECK(slice_is(req->method, req->method_len, c->method));
	CHECK(slice_is(req->target, req->target_len, c->target));
	CHECK_EQ(req->minor_version, c->minor);
	CHECK_EQ(req->content_length, c->content_length);
	CHECK_EQ(req->chunked, c->chunked);
	CHECK_EQ(req->keep_alive, c->keep_alive);
	CHECK_EQ(req->upgrade, c->upgrade);
	CHECK_EQ(req->expect_continue, c->expect_continue);
	CHECK_EQ(req->num_headers, c->num_headers);
	for (size_t i = 0; i < req->num_headers && i < HTTP_MAX_HEADERS; i++) {
		const struct http_header *h = &req->headers[i];
		CHECK(h->name >= buf && h->name + h->name_len <= buf + len);
		CHECK(h->value >= buf && h->value + h->value_len <= buf + len);
	}
	for (size_t i = 0; i < 3 && c->hdr[i].name; i++) {
		const struct http_header *h = http_find_header(req, c->hdr[i].name);
		CHECK(h != NULL);
		if (h)
			CHECK(slice_is(h->value, h->value_len, c->hdr[i].value));
	}
	if (test_failures_in_case != bad)
		printf("#   in case \"%s\"\n", c->name);
	return test_failures_in_case == bad;
}

static int parse(const char *buf, size_t len, size_t scanned, struct http_request *req)
{
	return http_parse_request(buf, len, scanned, req);
}

/* Runs one case: whole, split at every offset (fresh and incremental
 * scans), exact-size copy and guard page. */
static void run_req_case(const struct req_case *c)
{
	size_t len = case_len(c);
	size_t head_len = c->result == 0 ? (c->head_len ? c->head_len : len) : 0;
	struct http_request *req = malloc(sizeof(*req));
	if (!req)
		abort();
	int want = c->result == 0 ? (int)head_len : c->result;
	int bad = test_failures_in_case;

	/* (a) whole */
	int rc = parse(c->raw, len, 0, req);
	CHECK_EQ(rc, want);
	if (rc > 0 && c->result == 0)
		check_req(c, c->raw, len, req);

	/* (b) every split point; each prefix is an exact-size copy so a read
	 * past the prefix is caught too. */
	size_t prev = 0;
	for (size_t k = 0; k <= len; k++) {
		char *p = exact_copy(c->raw, k);
		int fresh = parse(p, k, 0, req);
		int incr = parse(p, k, prev, req);
		CHECK_EQ(fresh, incr);
		if (c->result == 0) {
			if (k < head_len) {
				CHECK_EQ(fresh, E_AGAIN);
			} else {
				CHECK_EQ(incr, want);
				if (incr > 0)
					check_req(c, p, k, req);
			}
		} else if (k < len) {
			/* An invalid head is incomplete or already invalid. */
			CHECK(fresh == E_AGAIN || fresh == c->result);
		} else {
			CHECK_EQ(incr, want);
		}
		if (fresh == E_AGAIN)
			prev = k;
		free(p);
	}

	/* The whole buffer after every possible earlier scan position. */
	for (size_t s = 0; s < head_len; s++) {
		rc = parse(c->raw, len, s, req);
		CHECK_EQ(rc, want);
	}

	/* (c) exact-size heap copy and guard page */
	char *p = exact_copy(c->raw, len);
	rc = parse(p, len, 0, req);
	CHECK_EQ(rc, want);
	if (rc > 0 && c->result == 0)
		check_req(c, p, len, req);
	free(p);

	struct guarded g;
	CHECK(guard_copy(&g, c->raw, len) == 0);
	rc = parse(g.p, len, 0, req);
	CHECK_EQ(rc, want);
	if (rc > 0 && c->result == 0)
		check_req(c, g.p, len, req);
	for (size_t k = 0; k < len; k++) /* prefix ending at the guard page */
		(void)parse(g.p + (len - k), k, 0, req);
	guard_free(&g);

	if (test_failures_in_case != bad)
		printf("#   in case \"%s\"\n", c->name);
	free(req);
}

/* Shorthand for the derived fields of success cases. */
#define OK(m, t, mi, cl, ch, ka, up, ec, nh) \
	0, 0, m, t, mi, cl, ch, ka, up, ec, nh

#define POST_HEAD "POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"
#define CHUNKED_HEAD "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
#define PIPE_HEAD "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
#define BIN_CHUNKS "6\r\n" "\r\n\0\r\n\r" "\r\n" "0\r\n\r\n"

static const struct req_case valid_cases[] = {
	{ "GET with headers",
	  "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\nAccept: */*\r\n\r\n",
	  0, OK("GET", "/index.html?q=1", 1, -1, 0, 1, 0, 0, 3),
	  { { "host", "example.com" }, { "USER-AGENT", "t/1" }, { "accept", "*/*" } } },
	{ "POST with Content-Length and body",
	  POST_HEAD "hello",
	  0, 0, sizeof(POST_HEAD) - 1, "POST", "/api", 1, 5, 0, 1, 0, 0, 2,
	  { { "content-length", "5" } } },
	{ "chunked POST",
	  CHUNKED_HEAD "5\r\nhello\r\n0\r\n\r\n",
	  0, 0, sizeof(CHUNKED_HEAD) - 1, "POST", "/up", 1, -1, 1, 1, 0, 0, 2, { { 0, 0 } } },
	{ "chunked, mixed case",
	  "PUT /x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: ChUnKeD\r\n\r\n",
	  0, OK("PUT", "/x", 1, -1, 1, 1, 0, 0, 2), { { 0, 0 } } },
	{ "HTTP/1.0 without keep-alive",
	  "GET / HTTP/1.0\r\n\r\n",
	  0, OK("GET", "/", 0, -1, 0, 0, 0, 0, 0), { { 0, 0 } } },
	{ "HTTP/1.0 with keep-alive",
	  "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
	  0, OK("GET", "/", 0, -1, 0, 1, 0, 0, 1), { { 0, 0 } } },
	{ "HTTP/1.0 keep-alive and close",
	  "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
	  0, OK("GET", "/", 0, -1, 0, 0, 0, 0, 1), { { 0, 0 } } },
	{ "HTTP/1.1 Connection: close",
	  "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
	  0, OK("GET", "/", 1, -1, 0, 0, 0, 0, 2), { { 0, 0 } } },
	{ "Connection list, close among tokens",
	  "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo , CLOSE ,bar\r\n\r\n",
	  0, OK("GET", "/", 1, -1, 0, 0, 0, 0, 2), { { 0, 0 } } },
	{ "websocket upgrade with keep-alive",
	  "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
	  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
	  0, OK("GET", "/ws", 1, -1, 0, 1, 1, 0, 5),
	  { { "upgrade", "websocket" }, { "sec-websocket-version", "13" } } },
	{ "Connection: upgrade without Upgrade header",
	  "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n",
	  0, OK("GET", "/", 1, -1, 0, 1, 0, 0, 2), { { 0, 0 } } },
	{ "Upgrade header without Connection: upgrade",
	  "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
	  0, OK("GET", "/", 1, -1, 0, 1, 0, 0, 2), { { 0, 0 } } },
	{ "Expect: 100-continue",
	  "PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nExpect: 100-Continue\r\n\r\n",
	  0, OK("PUT", "/f", 1, 10, 0, 1, 0, 1, 3), { { 0, 0 } } },
	{ "Expect: something else",
	  "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n",
	  0, OK("PUT", "/f", 1, -1, 0, 1, 0, 0, 2), { { 0, 0 } } },
	{ "leading CRLF",
	  "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	  0, OK("GET", "/", 1, -1, 0, 1, 0, 0, 1), { { 0, 0 } } },
	{ "leading bare LF",
	  "\nGET / HTTP/1.1\nHost: a\n\n",
	  0, OK("GET", "/", 1, -1, 0, 1, 0, 0, 1), { { 0, 0 } } },
	{ "bare LF line ends",
	  "GET /lf HTTP/1.1\nHost: a\nX-A: 1\n\n",
	  0, OK("GET", "/lf", 1, -1, 0, 1, 0, 0, 2), { { "x-a", "1" } } },
	{ "mixed CRLF and LF",
	  "GET / HTTP/1.1\r\nHost: a\nX-B: 2\r\n\n",
	  0, OK("GET", "/", 1, -1, 0, 1, 0, 0, 2), { { "x-b", "2" } } },
	{ "LF then CRLF blank line",
	  "GET / HTTP/1.1\nHost: a\n\r\n",
	  0, OK("GET", "/", 1, -1, 0, 1, 0, 0, 1), { { 0, 0 } } },
	{ "header value whitespace trimming",
	  "GET / HTTP/1.1\r\nHost:\t a \t\r\nX-Sp:   two  words \t \r\nX-Tight:v\r\n\r\n",
	  0, OK("GET", "/", 1, -1, 0, 1, 0, 0, 3),
	  { { "host", "a" }, { "x-sp", "two  words" }, { "x-tight", "v" } } },
	{ "empty header value",
	  "GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Blank:   \r\n\r\n",
	  0, OK("GET", "/", 1, -1, 0, 1, 0, 0, 3), { { "x-empty", "" }, { "x-blank", "" } } },
	{ "obs-text in value",
	  "GET / HTTP/1.1\r\nHost: a\r\nX-U: caf\xc3\xa9\r\n\r\n",
	  0, OK("GET", "/", 1, -1, 0, 1, 0, 0, 2), { { "x-u", "caf\xc3\xa9" } } },
	{ "duplicate equal Content-Length",
	  "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n",
	  0, OK("POST", "/", 1, 7, 0, 1, 0, 0, 3), { { 0, 0 } } },
	{ "Content-Length: 0",
	  "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
	  0, OK("POST", "/", 1, 0, 0, 1, 0, 0, 2), { { 0, 0 } } },
	{ "Content-Length with 15 digits",
	  "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999999\r\n\r\n",
	  0, OK("POST", "/", 1, 999999999999999LL, 0, 1, 0, 0, 2), { { 0, 0 } } },
	{ "tchar method and absolute target",
	  "M-SEARCH http://h.example:8080/a/b?c=d#e HTTP/1.1\r\nHost: h.example\r\n\r\n",
	  0, OK("M-SEARCH", "http://h.example:8080/a/b?c=d#e", 1, -1, 0, 1, 0, 0, 1), { { 0, 0 } } },
	{ "OPTIONS *",
	  "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	  0, OK("OPTIONS", "*", 1, -1, 0, 1, 0, 0, 1), { { 0, 0 } } },
	{ "CONNECT authority-form",
	  "CONNECT h.example:443 HTTP/1.1\r\nHost: h.example:443\r\n\r\n",
	  0, OK("CONNECT", "h.example:443", 1, -1, 0, 1, 0, 0, 1), { { 0, 0 } } },
	{ "pipelined second request after head",
	  PIPE_HEAD "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
	  0, 0, sizeof(PIPE_HEAD) - 1, "GET", "/1", 1, -1, 0, 1, 0, 0, 1, { { 0, 0 } } },
};

static const struct req_case invalid_cases[] = {
	{ "bad method char", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "tab after method", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "missing version", "GET /\r\nHost: a\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "missing target", "GET HTTP/1.1\r\nHost: a\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "space after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "lowercase http", "GET / http/1.1\r\nHost: a\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "HTTP/1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "control char in target", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "header without colon", "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "obs-fold continuation", "GET / HTTP/1.1\r\nHost: a\r\nX-F: one\r\n two\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "obs-fold with tab", "GET / HTTP/1.1\r\nHost: a\r\nX-F: one\r\n\ttwo\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "control char in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", sizeof("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n") - 1, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "bare CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "both CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "both TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "two different CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "non-numeric CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "negative CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "CL with plus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "empty CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "CL with 16 digits", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000000\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "TE gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "TE chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "chunked in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "HTTP/1.1 without Host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
	{ "too many leading empty lines", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, E_INVAL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { 0, 0 } } },
};

TEST(test_valid_requests)
{
	for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++)
		run_req_case(&valid_cases[i]);
}

TEST(test_invalid_requests)
{
	for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++)
		run_req_case(&invalid_cases[i]);
}

/* Empty lines only: never a complete head (and never a read past them). */
TEST(test_only_empty_lines)
{
	static const char *inputs[] = { "\n\n", "\r\n\r\n", "\n\r\n", "\r\n\n",
					"\n\n\n\n\n\n\r\n\r\n", "\r\n\r\n\r\n\r\n" };
	struct http_request req;
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		size_t n = strlen(inputs[i]);
		char *p = exact_copy(inputs[i], n);
		CHECK_EQ(parse(p, n, 0, &req), E_AGAIN);
		CHECK_EQ(parse(p, n, n, &req), E_AGAIN);
		free(p);
		struct guarded g;
		CHECK(guard_copy(&g, inputs[i], n) == 0);
		CHECK_EQ(parse(g.p, n, 0, &req), E_AGAIN);
		guard_free(&g);
	}
	/* Nine or more: the ninth byte starts the request line. */
	CHECK_EQ(parse("\n\n\n\n\n\n\n\n\n\n", 10, 0, &req), E_INVAL);
	CHECK_EQ(parse("", 0, 0, &req), E_AGAIN);
}

/* Builds "GET / HTTP/1.1\r\nHost: a\r\n" + extra headers "X-<i>: v\r\n"
 * + "\r\n" into a heap buffer. */
static char *build_headers(size_t extra, size_t *len)
{
	size_t cap = 64 + extra * 32;
	char *p = malloc(cap);
	if (!p)
		abort();
	size_t n = (size_t)snprintf(p, cap, "GET / HTTP/1.1\r\nHost: a\r\n");
	for (size_t i = 0; i < extra; i++)
		n += (size_t)snprintf(p + n, cap - n, "X-%zu: v\r\n", i);
	n += (size_t)snprintf(p + n, cap - n, "\r\n");
	*len = n;
	return p;
}

TEST(test_header_count_limit)
{
	struct http_request req;
	size_t len;
	char *p = build_headers(HTTP_MAX_HEADERS - 1, &len);
	CHECK_EQ(parse(p, len, 0, &req), (long long)len);
	CHECK_EQ(req.num_headers, HTTP_MAX_HEADERS);
	const struct http_header *h = http_find_header(&req, "x-62");
	CHECK(h && slice_is(h->value, h->value_len, "v"));
	free(p);

	p = build_headers(HTTP_MAX_HEADERS, &len);
	CHECK_EQ(parse(p, len, 0, &req), E_LIMIT);
	/* Prefixes are incomplete or already over the limit. */
	for (size_t k = 0; k < len; k++) {
		int rc = parse(p, k, 0, &req);
		CHECK(rc == E_AGAIN || rc == E_LIMIT);
	}
	free(p);
}

/* A head of exactly `total` bytes: one padded header. */
static char *build_sized_head(size_t total)
{
	static const char pre[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ";
	static const char post[] = "\r\n\r\n";
	char *p = malloc(total);
	if (!p)
		abort();
	size_t a = sizeof(pre) - 1, b = sizeof(post) - 1;
	memcpy(p, pre, a);
	memset(p + a, 'p', total - a - b);
	memcpy(p + total - b, post, b);
	return p;
}

TEST(test_header_bytes_limit)
{
	struct http_request req;
	char *p = build_sized_head(HTTP_MAX_HEADER_BYTES);
	CHECK_EQ(parse(p, HTTP_MAX_HEADER_BYTES, 0, &req), HTTP_MAX_HEADER_BYTES);
	CHECK_EQ(req.headers[1].value_len, HTTP_MAX_HEADER_BYTES - 36);
	/* Incremental growth in 100-byte steps stays E_AGAIN. */
	size_t prev = 0;
	for (size_t k = 0; k < HTTP_MAX_HEADER_BYTES; k += 100) {
		CHECK_EQ(parse(p, k, prev, &req), E_AGAIN);
		prev = k;
	}
	CHECK_EQ(parse(p, HTTP_MAX_HEADER_BYTES, prev, &req), HTTP_MAX_HEADER_BYTES);
	free(p);

	p = build_sized_head(HTTP_MAX_HEADER_BYTES + 1);
	CHECK_EQ(parse(p, HTTP_MAX_HEADER_BYTES + 1, 0, &req), E_LIMIT);
	/* Without the blank line yet: incomplete until the limit is reached. */
	CHECK_EQ(parse(p, HTTP_MAX_HEADER_BYTES - 1, 0, &req), E_AGAIN);
	CHECK_EQ(parse(p, HTTP_MAX_HEADER_BYTES, 0, &req), E_LIMIT);
	free(p);

	/* Guard page: a long head without an end is never over-read. */
	char *big = malloc(HTTP_MAX_HEADER_BYTES * 2);
	if (!big)
		abort();
	memset(big, 'a', HTTP_MAX_HEADER_BYTES * 2);
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	struct guarded g;
	CHECK(guard_copy(&g, big, HTTP_MAX_HEADER_BYTES * 2) == 0);
	CHECK_EQ(parse(g.p, HTTP_MAX_HEADER_BYTES * 2, 0, &req), E_LIMIT);
	CHECK_EQ(parse(g.p, HTTP_MAX_HEADER_BYTES * 2, HTTP_MAX_HEADER_BYTES, &req), E_LIMIT);
	guard_free(&g);
	free(big);
}

/* A stale `scanned` larger than len must not read past len. */
TEST(test_scanned_beyond_len)
{
	struct http_request req;
	const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	size_t n = strlen(s);
	char *p = exact_copy(s, n);
	CHECK_EQ(parse(p, n, n + 100, &req), E_AGAIN);
	CHECK_EQ(parse(p, n, n, &req), (long long)n);
	free(p);
}

/* ---- chunked decoding ---- */

struct chunk_out {
	char data[16384];
	size_t len;
	size_t consumed;
	int done;
	int rc;         /* 0 or the first error */
};

/* Feeds in[0..len) as pieces split at `split` (0 = none); every piece is
 * an exact-size copy.  Each piece is fed call by call with the bytes the
 * previous call left, concatenating the output spans.  piece == 1 feeds
 * one byte per piece. */
static void chunk_feed(const char *in, size_t len, size_t split, int bytewise, struct chunk_out *o)
{
	struct http_chunked c;
	http_chunked_init(&c);
	memset(o, 0, sizeof(*o));
	size_t pos = 0;
	while (pos < len && !o->done) {
		size_t piece = len - pos;
		if (bytewise)
			piece = 1;
		else if (split > pos)
			piece = split - pos;
		char *p = exact_copy(in + pos, piece);
		size_t off = 0;
		while (off < piece) {
			const char *data;
			size_t dlen;
			int done;
			int rc = http_chunked_decode(&c, p + off, piece - off, &data, &dlen, &done);
			if (rc < 0) {
				o->rc = rc;
				free(p);
				return;
			}
			if (dlen) {
				if (data < p + off || data + dlen > p + off + (size_t)rc || o->len + dlen > sizeof(o->data)) {
					o->rc = -100;
					free(p);
					return;
				}
				memcpy(o->data + o->len, data, dlen);
				o->len += dlen;
			}
			off += (size_t)rc;
			o->done = done;
			if (done)
				break;
			if (rc == 0) { /* no progress without being done */
				o->rc = -101;
				free(p);
				return;
			}
		}
		pos += off;
		free(p);
	}
	o->consumed = pos;
}

struct chunk_case {
	const char *name;
	const char *in;
	size_t in_len;          /* 0: strlen */
	const char *body;       /* NULL for invalid cases */
	size_t body_len;        /* 0: strlen(body) */
	size_t consumed;        /* 0: in_len */
};

static void run_chunk_valid(const struct chunk_case *cc)
{
	size_t len = cc->in_len ? cc->in_len : strlen(cc->in);
	size_t blen = cc->body_len ? cc->body_len : strlen(cc->body);
	size_t consumed = cc->consumed ? cc->consumed : len;
	static struct chunk_out o;
	int bad = test_failures_in_case;
	for (size_t split = 0; split <= len + 1; split++) {
		chunk_feed(cc->in, len, split, split == len + 1, &o);
		CHECK_EQ(o.rc, 0);
		CHECK_EQ(o.done, 1);
		CHECK_EQ(o.len, blen);
		CHECK_EQ(o.consumed, consumed);
		if (o.len == blen)
			CHECK_MEM(o.data, cc->body, blen);
		if (test_failures_in_case != bad) {
			printf("#   in chunk case \"%s\" split %zu\n", cc->name, split);
			return;
		}
	}
	/* Every prefix: not done, no error, output a prefix of the body. */
	for (size_t k = 0; k < consumed; k++) {
		chunk_feed(cc->in, k, 0, 0, &o);
		CHECK_EQ(o.rc, 0);
		CHECK_EQ(o.done, 0);
		CHECK(o.len <= blen && memcmp(o.data, cc->body, o.len) == 0);
		if (test_failures_in_case != bad) {
			printf("#   in chunk case \"%s\" prefix %zu\n", cc->name, k);
			return;
		}
	}
}

static void run_chunk_invalid(const struct chunk_case *cc)
{
	size_t len = cc->in_len ? cc->in_len : strlen(cc->in);
	static struct chunk_out o;
	int bad = test_failures_in_case;
	for (size_t split = 0; split <= len + 1; split++) {
		chunk_feed(cc->in, len, split, split == len + 1, &o);
		CHECK_EQ(o.rc, E_INVAL);
		CHECK_EQ(o.done, 0);
		if (test_failures_in_case != bad) {
			printf("#   in chunk case \"%s\" split %zu\n", cc->name, split);
			return;
		}
	}
}

TEST(test_chunked_valid)
{
	static char big_in[8192], big_body[6000];
	for (size_t i = 0; i < sizeof(big_body); i++)
		big_body[i] = (char)('a' + i % 26);
	size_t n = (size_t)snprintf(big_in, sizeof(big_in), "%zx\r\n", sizeof(big_body));
	memcpy(big_in + n, big_body, sizeof(big_body));
	n += sizeof(big_body);
	memcpy(big_in + n, "\r\n0\r\n\r\n", 7);
	n += 7;

	const struct chunk_case cases[] = {
		{ "several chunks", "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n", 0, "hello world", 0, 0 },
		{ "extensions", "5;name=value\r\nhello\r\n6;a;b=\"q\"\r\n world\r\n0;last\r\n\r\n", 0, "hello world", 0, 0 },
		{ "whitespace before extension", "5 ;x\r\nhello\r\n0\t\r\n\r\n", 0, "hello", 0, 0 },
		{ "trailers", "5\r\nhello\r\n0\r\nX-Trailer: a\r\nX-Other: b\r\n\r\n", 0, "hello", 0, 0 },
		{ "uppercase hex", "A\r\n0123456789\r\n1F\r\nabcdefghijklmnopqrstuvwxyz01234\r\n0\r\n\r\n", 0,
		  "0123456789abcdefghijklmnopqrstuvwxyz01234", 0, 0 },
		{ "lowercase hex", "a\r\n0123456789\r\n0\r\n\r\n", 0, "0123456789", 0, 0 },
		{ "leading zeros", "0005\r\nhello\r\n000\r\n\r\n", 0, "hello", 0, 0 },
		{ "bare LF", "5\nhello\n6\n world\n0\n\n", 0, "hello world", 0, 0 },
		{ "bare LF trailers", "3\nabc\n0\nT: 1\n\n", 0, "abc", 0, 0 },
		{ "binary data with CRLF inside", BIN_CHUNKS, sizeof(BIN_CHUNKS) - 1, "\r\n\0\r\n\r", 6, 0 },
		{ "empty body", "0\r\n\r\n", 0, "", 0, 0 },
		{ "stops at end of body", "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n", 0, "abc", 0, 13 },
		{ "large chunk", big_in, n, big_body, sizeof(big_body), 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_chunk_valid(&cases[i]);
}

TEST(test_chunked_invalid)
{
	static char ext[HTTP_MAX_CHUNK_EXT + 16], trailer[HTTP_MAX_TRAILER_BYTES + 32];
	memset(ext, 'e', sizeof(ext));
	memcpy(ext, "5;", 2);
	memcpy(ext + sizeof(ext) - 3, "\r\n", 3);
	memset(trailer, 't', sizeof(trailer));
	memcpy(trailer, "0\r\nX: ", 6);
	memcpy(trailer + sizeof(trailer) - 5, "\r\n\r\n", 5);

	const struct chunk_case cases[] = {
		{ "no digits", "\r\nhello\r\n0\r\n\r\n", 0, NULL, 0, 0 },
		{ "extension without size", ";x\r\nhello\r\n", 0, NULL, 0, 0 },
		{ "not hex", "g\r\n", 0, NULL, 0, 0 },
		{ "space before size", " 5\r\nhello\r\n", 0, NULL, 0, 0 },
		{ "sign", "-5\r\nhello\r\n", 0, NULL, 0, 0 },
		{ "0x prefix", "0x5\r\nhello\r\n", 0, NULL, 0, 0 },
		{ "16 hex digits", "1000000000000000\r\n", 0, NULL, 0, 0 },
		{ "16 zero digits", "0000000000000000\r\n\r\n", 0, NULL, 0, 0 },
		{ "bad CRLF after data", "5\r\nhelloX\r\n0\r\n\r\n", 0, NULL, 0, 0 },
		{ "CR then not LF after data", "5\r\nhello\rX0\r\n\r\n", 0, NULL, 0, 0 },
		{ "data longer than size", "3\r\nhello\r\n0\r\n\r\n", 0, NULL, 0, 0 },
		{ "control char in extension", "5;a\x01\r\nhello\r\n", 0, NULL, 0, 0 },
		{ "extension too long", ext, sizeof(ext) - 1, NULL, 0, 0 },
		{ "trailer too long", trailer, sizeof(trailer) - 1, NULL, 0, 0 },
		{ "CR then not LF at the end", "0\r\n\rX", 0, NULL, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_chunk_invalid(&cases[i]);
}

TEST(test_chunked_limits_ok)
{
	/* 15 hex digits is accepted; the chunk is then just incomplete. */
	struct http_chunked c;
	const char *data;
	size_t dlen;
	int done;
	http_chunked_init(&c);
	const char *in = "fffffffffffffff\r\nabc";
	CHECK_EQ(http_chunked_decode(&c, in, strlen(in), &data, &dlen, &done), 20);
	CHECK_EQ(dlen, 3);
	CHECK(data == in + 17);
	CHECK_EQ(done, 0);
	CHECK_EQ(c.remaining, 0xfffffffffffffffULL - 3);

	/* An extension of exactly HTTP_MAX_CHUNK_EXT bytes (";" included). */
	static char ext[HTTP_MAX_CHUNK_EXT + 16];
	size_t n = 0;
	ext[n++] = '1';
	ext[n++] = ';';
	memset(ext + n, 'x', HTTP_MAX_CHUNK_EXT - 1);
	n += HTTP_MAX_CHUNK_EXT - 1;
	memcpy(ext + n, "\nZ\n0\n\n", 6);
	n += 6;
	static struct chunk_out o;
	chunk_feed(ext, n, 0, 0, &o);
	CHECK_EQ(o.rc, 0);
	CHECK_EQ(o.done, 1);
	CHECK_EQ(o.len, 1);
	CHECK_EQ(o.data[0], 'Z');

	/* After done, further calls consume nothing and stay done. */
	http_chunked_init(&c);
	CHECK_EQ(http_chunked_decode(&c, "0\r\n\r\n", 5, &data, &dlen, &done), 5);
	CHECK_EQ(done, 1);
	CHECK_EQ(http_chunked_decode(&c, "1\r\nx", 4, &data, &dlen, &done), 0);
	CHECK_EQ(done, 1);
	CHECK_EQ(dlen, 0);
	CHECK_EQ(http_chunked_decode(&c, "", 0, &data, &dlen, &done), 0);
	CHECK_EQ(done, 1);

	/* Zero-length input before anything. */
	http_chunked_init(&c);
	CHECK_EQ(http_chunked_decode(&c, "", 0, &data, &dlen, &done), 0);
	CHECK_EQ(done, 0);
	CHECK(data == NULL);
}

/* ---- helpers ---- */

TEST(test_slice_ieq)
{
	CHECK(http_slice_ieq("Host", 4, "host"));
	CHECK(http_slice_ieq("HOST", 4, "hOsT"));
	CHECK(http_slice_ieq("", 0, ""));
	CHECK(!http_slice_ieq("Hos", 3, "host"));
	CHECK(!http_slice_ieq("Hostx", 5, "host"));
	CHECK(!http_slice_ieq("Host", 4, "hosx"));
	CHECK(!http_slice_ieq("", 0, "a"));
	CHECK(http_slice_ieq("Hostname", 4, "host")); /* only n bytes count */
	CHECK(!http_slice_ieq("Ho\0t", 4, "ho"));
	/* Only ASCII letters fold: '@' (0x40) is not '`' (0x60). */
	CHECK(!http_slice_ieq("@", 1, "`"));
	CHECK(!http_slice_ieq("[", 1, "{"));
	CHECK(!http_slice_ieq("\xc9", 1, "\xe9"));
	/* exact-size slice */
	char *p = exact_copy("Content-Length", 14);
	CHECK(http_slice_ieq(p, 14, "content-length"));
	free(p);
}

TEST(test_list_has_token)
{
	const char *v = "keep-alive, Upgrade";
	CHECK(http_list_has_token(v, strlen(v), "upgrade"));
	CHECK(http_list_has_token(v, strlen(v), "KEEP-ALIVE"));
	CHECK(!http_list_has_token(v, strlen(v), "close"));
	CHECK(!http_list_has_token(v, strlen(v), "keep"));
	CHECK(!http_list_has_token(v, strlen(v), "upgrades"));
	v = "  ,, close ,\t";
	CHECK(http_list_has_token(v, strlen(v), "close"));
	v = "a\t,\tb";
	CHECK(http_list_has_token(v, strlen(v), "a"));
	CHECK(http_list_has_token(v, strlen(v), "b"));
	CHECK(!http_list_has_token("", 0, "close"));
	CHECK(!http_list_has_token(",,,", 3, "close"));
	CHECK(!http_list_has_token("  ", 2, ""));
	CHECK(!http_list_has_token("close", 4, "close")); /* n bounds the value */
	CHECK(!http_list_has_token("clo se", 6, "close"));
	/* exact-size copies: no read past n */
	char *p = exact_copy("x, close", 8);
	CHECK(http_list_has_token(p, 8, "close"));
	CHECK(!http_list_has_token(p, 8, "closed"));
	free(p);
	p = exact_copy("close ", 6);
	CHECK(http_list_has_token(p, 6, "close"));
	free(p);
}

TEST(test_find_header)
{
	const char *s = "GET / HTTP/1.1\r\nHost: a\r\nX-Dup: 1\r\nx-dup: 2\r\nCookie: c\r\n\r\n";
	struct http_request req;
	CHECK_EQ(http_parse_request(s, strlen(s), 0, &req), (long long)strlen(s));
	const struct http_header *h = http_find_header(&req, "X-DUP");
	CHECK(h == &req.headers[1]);
	CHECK(h && slice_is(h->value, h->value_len, "1"));
	h = http_find_header(&req, "cookie");
	CHECK(h && slice_is(h->value, h->value_len, "c"));
	CHECK(http_find_header(&req, "x-du") == NULL);
	CHECK(http_find_header(&req, "x-dupe") == NULL);
	CHECK(http_find_header(&req, "") == NULL);
	req.num_headers = 0;
	CHECK(http_find_header(&req, "host") == NULL);
}

TEST(test_status_text)
{
	CHECK_STR(http_status_text(200), "OK");
	CHECK_STR(http_status_text(404), "Not Found");
	CHECK_STR(http_status_text(431), "Request Header Fields Too Large");
	CHECK_STR(http_status_text(101), "Switching Protocols");
	CHECK_STR(http_status_text(999), "Unknown");
}

int main(void)
{
	RUN(test_valid_requests);
	RUN(test_invalid_requests);
	RUN(test_only_empty_lines);
	RUN(test_header_count_limit);
	RUN(test_header_bytes_limit);
	RUN(test_scanned_beyond_len);
	RUN(test_chunked_valid);
	RUN(test_chunked_invalid);
	RUN(test_chunked_limits_ok);
	RUN(test_slice_ieq);
	RUN(test_list_has_token);
	RUN(test_find_header);
	RUN(test_status_text);
	return test_done();
}
