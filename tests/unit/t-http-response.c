/* t-http-response.c - tests of the HTTP/1.1 response-head parser, the
 * body-framing rules and the raw body tracker.
 *
 * Every response case is parsed (a) whole, (b) at every split point, as a
 * growing buffer with `scanned` set to the previous length, and (c) from
 * an exact-size heap copy and from the end of a page followed by a
 * PROT_NONE guard page, so that reads past the end fault even without
 * ASan.  Tracker cases are fed in every 2- and 3-piece split and byte by
 * byte; each piece is an exact-size copy.
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

static int slice_is(const char *s, size_t n, const char *lit)
{
	return s && strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* ---- response cases ---- */

struct hdr_expect {
	const char *name;
	const char *value;
};

struct resp_case {
	const char *name;
	const char *raw;
	size_t raw_len;         /* 0: strlen(raw) */
	int result;             /* E_* or 0 = success */
	size_t head_len;        /* 0: raw_len (success cases only) */
	int minor;
	int status;
	const char *reason;
	int64_t content_length;
	int chunked, until_close, conn_close, conn_upgrade;
	size_t num_headers;
	enum http_body_kind kind; /* for a GET */
	struct hdr_expect hdr[3];
};

static size_t case_len(const struct resp_case *c)
{
	return c->raw_len ? c->raw_len : strlen(c->raw);
}

static int parse(const char *buf, size_t len, size_t scanned, struct http_response *res)
{
	return http_parse_response(buf, len, scanned, res);
}

/* Checks that res matches c and that every slice lies inside the head. */
static void check_res(const struct resp_case *c, const char *buf, size_t head_len,
		      const struct http_response *res)
{
	int bad = test_failures_in_case;
	CHECK_EQ(res->minor_version, c->minor);
	CHECK_EQ(res->status, c->status);
	CHECK(slice_is(res->reason, res->reason_len, c->reason));
	CHECK(res->reason >= buf && res->reason + res->reason_len <= buf + head_len);
	CHECK_EQ(res->content_length, c->content_length);
	CHECK_EQ(res->chunked, c->chunked);
	CHECK_EQ(res->until_close, c->until_close);
	CHECK_EQ(res->conn_close, c->conn_close);
	CHECK_EQ(res->conn_upgrade, c->conn_upgrade);
	CHECK_EQ(res->num_headers, c->num_headers);
	for (size_t i = 0; i < res->num_headers && i < HTTP_MAX_HEADERS; i++) {
		const struct http_header *h = &res->headers[i];
		CHECK(h->name >= buf && h->name + h->name_len <= buf + head_len);
		CHECK(h->value >= buf && h->value + h->value_len <= buf + head_len);
	}
	for (size_t i = 0; i < 3 && c->hdr[i].name; i++) {
		const struct http_header *h = http_response_find_header(res, c->hdr[i].name);
		CHECK(h != NULL);
		if (h)
			CHECK(slice_is(h->value, h->value_len, c->hdr[i].value));
	}
	/* Body framing: as given for GET; never a body for HEAD; none for a
	 * 2xx to CONNECT. */
	CHECK_EQ(http_response_body_kind(res, 0), c->kind);
	CHECK_EQ(http_response_body_kind(res, 1), HTTP_BODY_NONE);
	CHECK_EQ(http_response_body_kind(res, HTTP_REQ_HEAD), HTTP_BODY_NONE);
	CHECK_EQ(http_response_body_kind(res, HTTP_REQ_CONNECT),
		 c->status >= 200 && c->status < 300 ? HTTP_BODY_NONE : c->kind);
	if (test_failures_in_case != bad)
		printf("#   in case \"%s\"\n", c->name);
}

static void run_resp_case(const struct resp_case *c)
{
	size_t len = case_len(c);
	size_t head_len = c->result == 0 ? (c->head_len ? c->head_len : len) : 0;
	struct http_response *res = malloc(sizeof(*res));
	if (!res)
		abort();
	int want = c->result == 0 ? (int)head_len : c->result;
	int bad = test_failures_in_case;

	/* (a) whole */
	int rc = parse(c->raw, len, 0, res);
	CHECK_EQ(rc, want);
	if (rc > 0 && c->result == 0)
		check_res(c, c->raw, head_len, res);

	/* (b) every split point, fresh and incremental; exact-size prefixes */
	size_t prev = 0;
	for (size_t k = 0; k <= len; k++) {
		char *p = exact_copy(c->raw, k);
		int fresh = parse(p, k, 0, res);
		int incr = parse(p, k, prev, res);
		CHECK_EQ(fresh, incr);
		if (c->result == 0) {
			if (k < head_len) {
				CHECK_EQ(fresh, E_AGAIN);
			} else {
				CHECK_EQ(incr, want);
				if (incr > 0)
					check_res(c, p, head_len, res);
			}
		} else if (k < len) {
			CHECK(fresh == E_AGAIN || fresh == c->result);
		} else {
			CHECK_EQ(incr, want);
		}
		if (fresh == E_AGAIN)
			prev = k;
		free(p);
	}

	/* The whole buffer after every possible earlier scan position. */
	for (size_t s = 0; s < (head_len ? head_len : len); s++) {
		rc = parse(c->raw, len, s, res);
		CHECK_EQ(rc, want);
	}

	/* (c) exact-size heap copy and guard page */
	char *p = exact_copy(c->raw, len);
	rc = parse(p, len, 0, res);
	CHECK_EQ(rc, want);
	if (rc > 0 && c->result == 0)
		check_res(c, p, head_len, res);
	free(p);

	struct guarded g;
	CHECK(guard_copy(&g, c->raw, len) == 0);
	rc = parse(g.p, len, 0, res);
	CHECK_EQ(rc, want);
	if (rc > 0 && c->result == 0)
		check_res(c, g.p, head_len, res);
	for (size_t k = 0; k < len; k++) /* suffixes ending at the guard page */
		(void)parse(g.p + (len - k), k, 0, res);
	guard_free(&g);

	if (test_failures_in_case != bad)
		printf("#   in case \"%s\"\n", c->name);
	free(res);
}

/* Shorthand for success cases whose head is the whole input. */
#define OK(mi, st, rs, cl, ch, uc, cc, up, nh, k) \
	0, 0, mi, st, rs, cl, ch, uc, cc, up, nh, k
/* ... and for those followed by body bytes. */
#define OKB(head, mi, st, rs, cl, ch, uc, cc, up, nh, k) \
	0, sizeof(head) - 1, mi, st, rs, cl, ch, uc, cc, up, nh, k

#define L HTTP_BODY_LENGTH
#define C HTTP_BODY_CHUNKED
#define U HTTP_BODY_UNTIL_CLOSE
#define N HTTP_BODY_NONE

#define CL_HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
#define CHUNKED_HEAD "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
#define WS_HEAD "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
	"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
#define CONTINUE_HEAD "HTTP/1.1 100 Continue\r\n\r\n"
#define H10_HEAD "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n"
#define LF_HEAD "HTTP/1.1 200 OK\nContent-Length: 3\nX-A: 1\n\n"

static const struct resp_case valid_cases[] = {
	{ "200 with Content-Length and body", CL_HEAD "hello",
	  0, OKB(CL_HEAD, 1, 200, "OK", 5, 0, 0, 0, 0, 2, L),
	  { { "content-type", "text/plain" }, { "CONTENT-LENGTH", "5" } } },
	{ "chunked with body", CHUNKED_HEAD "5\r\nhello\r\n0\r\n\r\n",
	  0, OKB(CHUNKED_HEAD, 1, 200, "OK", -1, 1, 0, 0, 0, 1, C), { { 0, 0 } } },
	{ "204 No Content",
	  "HTTP/1.1 204 No Content\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n",
	  0, OK(1, 204, "No Content", -1, 0, 0, 0, 0, 1, N), { { "date", "Mon, 01 Jan 2024 00:00:00 GMT" } } },
	{ "304 with Content-Length of the entity",
	  "HTTP/1.1 304 Not Modified\r\nETag: \"abc\"\r\nContent-Length: 1234\r\n\r\n",
	  0, OK(1, 304, "Not Modified", 1234, 0, 0, 0, 0, 2, N), { { "etag", "\"abc\"" } } },
	{ "101 websocket upgrade, frame bytes after", WS_HEAD "\x81\x05hello",
	  0, OKB(WS_HEAD, 1, 101, "Switching Protocols", -1, 0, 0, 0, 1, 3, N), { { "upgrade", "websocket" } } },
	{ "100 Continue is its own head", CONTINUE_HEAD "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	  0, OKB(CONTINUE_HEAD, 1, 100, "Continue", -1, 0, 0, 0, 0, 0, N), { { 0, 0 } } },
	{ "103 Early Hints",
	  "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
	  0, OK(1, 103, "Early Hints", -1, 0, 0, 0, 0, 1, N), { { "link", "</s.css>; rel=preload" } } },
	{ "HTTP/1.0 without Content-Length: until close", H10_HEAD "<html>",
	  0, OKB(H10_HEAD, 0, 200, "OK", -1, 0, 0, 1, 0, 1, U), { { 0, 0 } } },
	{ "HTTP/1.0 keep-alive with Content-Length",
	  "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\n",
	  0, OK(0, 200, "OK", 2, 0, 0, 0, 0, 2, L), { { 0, 0 } } },
	{ "HTTP/1.1 Connection: close",
	  "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n",
	  0, OK(1, 200, "OK", 2, 0, 0, 1, 0, 2, L), { { 0, 0 } } },
	{ "HTTP/1.1 without framing: until close, keep-alive otherwise",
	  "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n",
	  0, OK(1, 200, "OK", -1, 0, 0, 0, 0, 1, U), { { 0, 0 } } },
	{ "missing reason phrase",
	  "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n",
	  0, OK(1, 200, "", 2, 0, 0, 0, 0, 1, L), { { 0, 0 } } },
	{ "empty reason phrase",
	  "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n",
	  0, OK(1, 404, "", 0, 0, 0, 0, 0, 1, L), { { 0, 0 } } },
	{ "custom reason with tab and obs-text",
	  "HTTP/1.1 599 My  Custom\tReason \xc3\xa9\r\n\r\n",
	  0, OK(1, 599, "My  Custom\tReason \xc3\xa9", -1, 0, 0, 0, 0, 0, U), { { 0, 0 } } },
	{ "status 999", "HTTP/1.1 999 X\r\nContent-Length: 1\r\n\r\n",
	  0, OK(1, 999, "X", 1, 0, 0, 0, 0, 1, L), { { 0, 0 } } },
	{ "bare LF line ends", LF_HEAD "abc",
	  0, OKB(LF_HEAD, 1, 200, "OK", 3, 0, 0, 0, 0, 2, L), { { "x-a", "1" } } },
	{ "mixed CRLF and LF", "HTTP/1.1 200 OK\nContent-Length: 1\r\nX-B: 2\n\r\n",
	  0, OK(1, 200, "OK", 1, 0, 0, 0, 0, 2, L), { { "x-b", "2" } } },
	{ "leading empty lines", "\r\n\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n",
	  0, OK(1, 200, "OK", 1, 0, 0, 0, 0, 1, L), { { 0, 0 } } },
	{ "duplicate identical Content-Length",
	  "HTTP/1.1 200 OK\r\nContent-Length: 7\r\ncontent-length: 007\r\n\r\n",
	  0, OK(1, 200, "OK", 7, 0, 0, 0, 0, 2, L), { { 0, 0 } } },
	{ "Content-Length list of identical values",
	  "HTTP/1.1 200 OK\r\nContent-Length: 7 ,7,\t7\r\n\r\n",
	  0, OK(1, 200, "OK", 7, 0, 0, 0, 0, 1, L), { { 0, 0 } } },
	{ "Content-Length: 0", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	  0, OK(1, 200, "OK", 0, 0, 0, 0, 0, 1, L), { { 0, 0 } } },
	{ "Content-Length with 15 digits", "HTTP/1.1 200 OK\r\nContent-Length: 999999999999999\r\n\r\n",
	  0, OK(1, 200, "OK", 999999999999999LL, 0, 0, 0, 0, 1, L), { { 0, 0 } } },
	{ "Transfer-Encoding and Content-Length: TE wins",
	  "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n",
	  0, OK(1, 200, "OK", -1, 1, 0, 0, 0, 2, C), { { 0, 0 } } },
	{ "Transfer-Encoding: gzip, chunked",
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, CHUNKED\r\n\r\n",
	  0, OK(1, 200, "OK", -1, 1, 0, 0, 0, 1, C), { { 0, 0 } } },
	{ "Transfer-Encoding split over two fields",
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
	  0, OK(1, 200, "OK", -1, 1, 0, 0, 0, 2, C), { { 0, 0 } } },
	{ "Transfer-Encoding: gzip only, with Content-Length: until close",
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 20\r\n\r\n",
	  0, OK(1, 200, "OK", -1, 0, 1, 0, 0, 2, U), { { 0, 0 } } },
	{ "Transfer-Encoding: chunked, gzip: until close",
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
	  0, OK(1, 200, "OK", -1, 0, 1, 0, 0, 1, U), { { 0, 0 } } },
	{ "empty Transfer-Encoding: until close",
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n",
	  0, OK(1, 200, "OK", -1, 0, 1, 0, 0, 1, U), { { 0, 0 } } },
	{ "HTTP/1.0 chunked: framed, then close",
	  "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
	  0, OK(0, 200, "OK", -1, 1, 0, 1, 0, 2, C), { { 0, 0 } } },
	{ "200 with Connection: keep-alive, Upgrade",
	  "HTTP/1.1 200 OK\r\nConnection: keep-alive, Upgrade\r\nContent-Length: 1\r\n\r\n",
	  0, OK(1, 200, "OK", 1, 0, 0, 0, 1, 2, L), { { 0, 0 } } },
	{ "close and keep-alive on HTTP/1.0",
	  "HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 1\r\n\r\n",
	  0, OK(0, 200, "OK", 1, 0, 0, 1, 0, 2, L), { { 0, 0 } } },
	{ "404 with Set-Cookie twice and trimming",
	  "HTTP/1.1 404 Not Found\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nX-Sp:  \t two words \t\r\n"
	  "Content-Length: 9\r\n\r\n",
	  0, OK(1, 404, "Not Found", 9, 0, 0, 0, 0, 4, L),
	  { { "set-cookie", "a=1" }, { "x-sp", "two words" } } },
	{ "pipelined: second response not consumed",
	  CL_HEAD "helloHTTP/1.1 204 No Content\r\n\r\n",
	  0, OKB(CL_HEAD, 1, 200, "OK", 5, 0, 0, 0, 0, 2, L), { { 0, 0 } } },
};

#define BADN(n, raw, len, rc) { n, raw, len, rc, 0, 0, 0, NULL, 0, 0, 0, 0, 0, 0, N, { { 0, 0 } } }
#define BAD(n, raw, rc) BADN(n, raw, 0, rc)

static const struct resp_case invalid_cases[] = {
	BAD("two-digit status", "HTTP/1.1 20 OK\r\n\r\n", E_INVAL),
	BAD("four-digit status", "HTTP/1.1 2000 OK\r\n\r\n", E_INVAL),
	BAD("status below 100", "HTTP/1.1 099 Low\r\n\r\n", E_INVAL),
	BAD("status 000", "HTTP/1.1 000\r\n\r\n", E_INVAL),
	BAD("letters in status", "HTTP/1.1 2x0 OK\r\n\r\n", E_INVAL),
	BAD("signed status", "HTTP/1.1 -20 OK\r\n\r\n", E_INVAL),
	BAD("no space after status", "HTTP/1.1 200OK\r\n\r\n", E_INVAL),
	BAD("two spaces before status", "HTTP/1.1  200 OK\r\n\r\n", E_INVAL),
	BAD("tab before status", "HTTP/1.1\t200 OK\r\n\r\n", E_INVAL),
	BAD("version only", "HTTP/1.1\r\n\r\n", E_INVAL),
	BAD("version and space", "HTTP/1.1 \r\n\r\n", E_INVAL),
	BAD("HTTP/1.2", "HTTP/1.2 200 OK\r\n\r\n", E_INVAL),
	BAD("HTTP/1.10", "HTTP/1.10 200 OK\r\n\r\n", E_INVAL),
	BAD("HTTP/2", "HTTP/2 200\r\n\r\n", E_INVAL),
	BAD("lowercase http", "http/1.1 200 OK\r\n\r\n", E_INVAL),
	BAD("ICY", "ICY 200 OK\r\n\r\n", E_INVAL),
	BAD("request line", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", E_INVAL),
	BAD("control char in reason", "HTTP/1.1 200 O\x01K\r\n\r\n", E_INVAL),
	BAD("CR inside reason", "HTTP/1.1 200 O\rK\r\n\r\n", E_INVAL),
	BAD("obs-fold", "HTTP/1.1 200 OK\r\nX-F: one\r\n two\r\nContent-Length: 0\r\n\r\n", E_INVAL),
	BAD("header without colon", "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", E_INVAL),
	BAD("space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n", E_INVAL),
	BAD("empty header name", "HTTP/1.1 200 OK\r\n: x\r\n\r\n", E_INVAL),
	BADN("NUL in header value", "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n", 27, E_INVAL),
	BAD("differing Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", E_INVAL),
	BAD("differing Content-Length list", "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n", E_INVAL),
	BAD("empty element in Content-Length list", "HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\n", E_INVAL),
	BAD("empty Content-Length", "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", E_INVAL),
	BAD("Content-Length not a number", "HTTP/1.1 200 OK\r\nContent-Length: 5a\r\n\r\n", E_INVAL),
	BAD("negative Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", E_INVAL),
	BAD("Content-Length with 16 digits", "HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000\r\n\r\n", E_INVAL),
	BAD("differing Content-Length beside chunked",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", E_INVAL),
	BAD("chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", E_INVAL),
	BAD("chunked twice in two fields",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", E_INVAL),
	BAD("nine leading empty lines", "\n\n\n\n\n\n\n\n\nHTTP/1.1 200 OK\r\n\r\n", E_INVAL),
};

TEST(test_valid_responses)
{
	for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++)
		run_resp_case(&valid_cases[i]);
}

TEST(test_invalid_responses)
{
	for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++)
		run_resp_case(&invalid_cases[i]);
}

TEST(test_response_incomplete)
{
	struct http_response res;
	static const char *inputs[] = { "", "H", "HTTP/1.1 200 OK", "HTTP/1.1 200 OK\r\n",
					"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", "\r\n\r\n", "\n\n\n\n\n\n\n\n" };
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		size_t n = strlen(inputs[i]);
		char *p = exact_copy(inputs[i], n);
		CHECK_EQ(parse(p, n, 0, &res), E_AGAIN);
		CHECK_EQ(parse(p, n, n, &res), E_AGAIN);
		free(p);
	}
	/* A stale `scanned` larger than len must not read past len. */
	const char *s = "HTTP/1.1 204 No Content\r\n\r\n";
	size_t n = strlen(s);
	char *p = exact_copy(s, n);
	CHECK_EQ(parse(p, n, n + 100, &res), E_AGAIN);
	CHECK_EQ(parse(p, n, n, &res), (long long)n);
	free(p);
}

/* "HTTP/1.1 200 OK\r\n" + `extra` headers "X-<i>: v\r\n" + "\r\n". */
static char *build_headers(size_t extra, size_t *len)
{
	size_t cap = 64 + extra * 32;
	char *p = malloc(cap);
	if (!p)
		abort();
	size_t n = (size_t)snprintf(p, cap, "HTTP/1.1 200 OK\r\n");
	for (size_t i = 0; i < extra; i++)
		n += (size_t)snprintf(p + n, cap - n, "X-%zu: v\r\n", i);
	n += (size_t)snprintf(p + n, cap - n, "\r\n");
	*len = n;
	return p;
}

TEST(test_header_count_limit)
{
	struct http_response res;
	size_t len;
	char *p = build_headers(HTTP_MAX_HEADERS, &len);
	CHECK_EQ(parse(p, len, 0, &res), (long long)len);
	CHECK_EQ(res.num_headers, HTTP_MAX_HEADERS);
	const struct http_header *h = http_response_find_header(&res, "x-63");
	CHECK(h && slice_is(h->value, h->value_len, "v"));
	CHECK(http_response_find_header(&res, "x-64") == NULL);
	free(p);

	p = build_headers(HTTP_MAX_HEADERS + 1, &len);
	CHECK_EQ(parse(p, len, 0, &res), E_LIMIT);
	for (size_t k = 0; k < len; k++) {
		char *q = exact_copy(p, k);
		int rc = parse(q, k, 0, &res);
		CHECK(rc == E_AGAIN || rc == E_LIMIT);
		free(q);
	}
	free(p);
}

/* A head of exactly `total` bytes: one padded header. */
static char *build_sized_head(size_t total)
{
	static const char pre[] = "HTTP/1.1 200 OK\r\nX-Pad: ";
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
	struct http_response res;
	char *p = build_sized_head(HTTP_MAX_HEADER_BYTES);
	CHECK_EQ(parse(p, HTTP_MAX_HEADER_BYTES, 0, &res), HTTP_MAX_HEADER_BYTES);
	CHECK_EQ(res.headers[0].value_len, HTTP_MAX_HEADER_BYTES - 28);
	size_t prev = 0;
	for (size_t k = 0; k < HTTP_MAX_HEADER_BYTES; k += 100) {
		CHECK_EQ(parse(p, k, prev, &res), E_AGAIN);
		prev = k;
	}
	CHECK_EQ(parse(p, HTTP_MAX_HEADER_BYTES, prev, &res), HTTP_MAX_HEADER_BYTES);
	free(p);

	p = build_sized_head(HTTP_MAX_HEADER_BYTES + 1);
	CHECK_EQ(parse(p, HTTP_MAX_HEADER_BYTES + 1, 0, &res), E_LIMIT);
	CHECK_EQ(parse(p, HTTP_MAX_HEADER_BYTES - 1, 0, &res), E_AGAIN);
	CHECK_EQ(parse(p, HTTP_MAX_HEADER_BYTES, 0, &res), E_LIMIT);
	free(p);

	/* Guard page: a long head without an end is never over-read. */
	char *big = malloc(HTTP_MAX_HEADER_BYTES * 2);
	if (!big)
		abort();
	memset(big, 'a', HTTP_MAX_HEADER_BYTES * 2);
	memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
	struct guarded g;
	CHECK(guard_copy(&g, big, HTTP_MAX_HEADER_BYTES * 2) == 0);
	CHECK_EQ(parse(g.p, HTTP_MAX_HEADER_BYTES * 2, 0, &res), E_LIMIT);
	CHECK_EQ(parse(g.p, HTTP_MAX_HEADER_BYTES * 2, HTTP_MAX_HEADER_BYTES, &res), E_LIMIT);
	guard_free(&g);
	free(big);
}

/* ---- body framing ---- */

static struct http_response *status_only(int status, int64_t cl, int chunked, int until_close)
{
	static struct http_response res;
	memset(&res, 0, sizeof(res));
	res.minor_version = 1;
	res.status = status;
	res.content_length = cl;
	res.chunked = chunked;
	res.until_close = until_close;
	return &res;
}

TEST(test_body_kind)
{
	static const struct {
		int status;
		enum http_body_kind get, head, connect;
	} rows[] = {
		{ 100, N, N, N }, { 101, N, N, N }, { 103, N, N, N }, { 199, N, N, N },
		{ 200, L, N, N }, { 201, L, N, N }, { 204, N, N, N }, { 206, L, N, N },
		{ 299, L, N, N }, { 300, L, N, L }, { 304, N, N, N }, { 404, L, N, L },
		{ 500, L, N, L }, { 999, L, N, L },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct http_response *r = status_only(rows[i].status, 10, 0, 0);
		CHECK_EQ(http_response_body_kind(r, 0), rows[i].get);
		CHECK_EQ(http_response_body_kind(r, HTTP_REQ_HEAD), rows[i].head);
		CHECK_EQ(http_response_body_kind(r, HTTP_REQ_CONNECT), rows[i].connect);
		CHECK_EQ(http_response_body_kind(r, HTTP_REQ_HEAD | HTTP_REQ_CONNECT), N);
	}
	/* Framing precedence for a 200 to GET. */
	CHECK_EQ(http_response_body_kind(status_only(200, -1, 1, 0), 0), C);
	CHECK_EQ(http_response_body_kind(status_only(200, -1, 0, 1), 0), U);
	CHECK_EQ(http_response_body_kind(status_only(200, 0, 0, 0), 0), L);
	CHECK_EQ(http_response_body_kind(status_only(200, -1, 0, 0), 0), U);
	CHECK_EQ(http_response_body_kind(status_only(404, -1, 1, 0), HTTP_REQ_CONNECT), C);
	CHECK_EQ(http_response_body_kind(status_only(204, -1, 1, 0), 0), N);
	CHECK_EQ(http_response_body_kind(status_only(304, -1, 0, 1), 0), N);
	CHECK_EQ(http_response_body_kind(status_only(200, -1, 1, 0), 1), N);

	/* Request bodies. */
	struct http_request req;
	const char *s = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
	CHECK_EQ(http_parse_request(s, strlen(s), 0, &req), (long long)strlen(s));
	CHECK_EQ(http_request_body_kind(&req), C);
	s = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n";
	CHECK_EQ(http_parse_request(s, strlen(s), 0, &req), (long long)strlen(s));
	CHECK_EQ(http_request_body_kind(&req), L);
	struct http_body_tracker t;
	http_body_tracker_init(&t, http_request_body_kind(&req), req.content_length);
	CHECK_EQ(t.done, 0);
	CHECK_EQ(http_body_tracker_feed(&t, "hello world!GET", 15), 12);
	CHECK_EQ(t.done, 1);
	s = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
	CHECK_EQ(http_parse_request(s, strlen(s), 0, &req), (long long)strlen(s));
	CHECK_EQ(http_request_body_kind(&req), N);
	s = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	CHECK_EQ(http_parse_request(s, strlen(s), 0, &req), (long long)strlen(s));
	CHECK_EQ(http_request_body_kind(&req), N);
	http_body_tracker_init(&t, http_request_body_kind(&req), req.content_length);
	CHECK_EQ(t.done, 1);
}

/* ---- body tracker ---- */

struct track_out {
	size_t consumed;  /* total bytes that belong to the body */
	int done;
	int rc;           /* 0 or the error */
};

/* Feeds in[0..len) in pieces ending at the split points cut[0..ncut)
 * (ascending, each piece an exact-size copy), or byte by byte.  Checks
 * the per-call contract: 0 <= rc <= piece, and rc == piece unless done. */
static void track_feed(enum http_body_kind kind, int64_t cl, const char *in, size_t len,
		       const size_t *cut, size_t ncut, int bytewise, struct track_out *o)
{
	struct http_body_tracker t;
	http_body_tracker_init(&t, kind, cl);
	memset(o, 0, sizeof(*o));
	size_t pos = 0, ci = 0;
	while (pos < len && !t.done) {
		size_t end = len;
		if (bytewise) {
			end = pos + 1;
		} else {
			while (ci < ncut && cut[ci] <= pos)
				ci++;
			if (ci < ncut)
				end = cut[ci];
		}
		size_t piece = end - pos;
		char *p = exact_copy(in + pos, piece);
		long rc = http_body_tracker_feed(&t, p, piece);
		free(p);
		if (rc < 0) {
			o->rc = (int)rc;
			o->consumed = pos;
			o->done = t.done;
			return;
		}
		if ((size_t)rc > piece || (!t.done && (size_t)rc != piece)) {
			o->rc = -100;
			return;
		}
		pos += (size_t)rc;
		if (t.done) {
			/* once done, nothing more is taken */
			if (http_body_tracker_feed(&t, in + pos, len - pos) != 0)
				o->rc = -101;
			break;
		}
	}
	o->consumed = pos;
	o->done = t.done;
}

/* Every split into 1, 2 and 3 pieces, and byte by byte. */
static void track_all_splits(const char *name, enum http_body_kind kind, int64_t cl, const char *in,
			     size_t len, size_t want_consumed, int want_done, int want_rc)
{
	struct track_out o;
	int bad = test_failures_in_case;
	for (size_t a = 0; a <= len; a++) {
		for (size_t b = a; b <= len; b++) {
			size_t cut[2] = { a, b };
			track_feed(kind, cl, in, len, cut, 2, 0, &o);
			CHECK_EQ(o.rc, want_rc);
			CHECK_EQ(o.done, want_done);
			if (want_rc == 0)
				CHECK_EQ(o.consumed, want_consumed);
			if (test_failures_in_case != bad) {
				printf("#   in tracker case \"%s\" cuts %zu %zu\n", name, a, b);
				return;
			}
		}
	}
	track_feed(kind, cl, in, len, NULL, 0, 1, &o);
	CHECK_EQ(o.rc, want_rc);
	CHECK_EQ(o.done, want_done);
	if (want_rc == 0)
		CHECK_EQ(o.consumed, want_consumed);
	/* Prefixes of a valid body: never done early, never an error. */
	if (want_rc == 0 && want_done) {
		for (size_t k = 0; k < want_consumed; k++) {
			track_feed(kind, cl, in, k, NULL, 0, 0, &o);
			CHECK_EQ(o.rc, 0);
			CHECK_EQ(o.done, 0);
			CHECK_EQ(o.consumed, k);
		}
	}
	if (test_failures_in_case != bad)
		printf("#   in tracker case \"%s\"\n", name);
}

#define NEXT_RESPONSE "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
#define CHUNKED_BODY "5;ext=\"a b\"\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n" \
	"0\r\nX-Trailer: a\r\nX-Other: b\r\n\r\n"
#define BIN_CHUNKS "6\r\n" "\r\n\0\r\n\r" "\r\n" "0\r\n\r\n"

TEST(test_tracker_length)
{
	const char *in = "0123456789" NEXT_RESPONSE;
	track_all_splits("CL 10 + next response", L, 10, in, strlen(in), 10, 1, 0);
	track_all_splits("CL 10, exactly", L, 10, in, 10, 10, 1, 0);
	track_all_splits("CL 10, 7 bytes so far", L, 10, in, 7, 7, 0, 0);

	struct http_body_tracker t;
	http_body_tracker_init(&t, L, 0);
	CHECK_EQ(t.done, 1);
	CHECK_EQ(http_body_tracker_feed(&t, "abc", 3), 0);
	http_body_tracker_init(&t, L, -1);
	CHECK_EQ(t.done, 1);

	/* A large length counts down in 64 bits. */
	static char buf[4096];
	memset(buf, 'x', sizeof(buf));
	http_body_tracker_init(&t, L, 999999999999999LL);
	for (int i = 0; i < 1000; i++)
		CHECK_EQ(http_body_tracker_feed(&t, buf, sizeof(buf)), (long long)sizeof(buf));
	CHECK_EQ(t.remaining, 999999999999999ULL - 1000 * sizeof(buf));
	CHECK_EQ(t.done, 0);
	CHECK_EQ(http_body_tracker_feed(&t, buf, 0), 0);
	CHECK_EQ(t.done, 0);
}

TEST(test_tracker_chunked)
{
	const char *in = CHUNKED_BODY NEXT_RESPONSE;
	size_t body = sizeof(CHUNKED_BODY) - 1;
	track_all_splits("chunked with trailers + next response", C, -1, in, strlen(in), body, 1, 0);
	track_all_splits("chunked with trailers, exactly", C, -1, in, body, body, 1, 0);
	track_all_splits("chunked, incomplete", C, -1, in, body - 1, body - 1, 0, 0);

	const char *lf = "3\nabc\n0\nT: 1\n\nHTTP/1.1 204 No Content\n\n";
	track_all_splits("chunked, bare LF", C, -1, lf, strlen(lf), 14, 1, 0);
	const char *empty = "0\r\n\r\n" NEXT_RESPONSE;
	track_all_splits("empty chunked body", C, -1, empty, strlen(empty), 5, 1, 0);
	track_all_splits("binary chunk data", C, -1, BIN_CHUNKS "\r\n", sizeof(BIN_CHUNKS) + 1,
			 sizeof(BIN_CHUNKS) - 1, 1, 0);

	/* A chunk larger than one feed. */
	static char big[20000];
	size_t n = (size_t)snprintf(big, sizeof(big), "%x\r\n", 16000);
	memset(big + n, 'z', 16000);
	n += 16000;
	memcpy(big + n, "\r\n0\r\n\r\nHTTP", 11);
	struct track_out o;
	size_t cut[3] = { 3, 9000, 16007 };
	track_feed(C, -1, big, n + 11, cut, 3, 0, &o);
	CHECK_EQ(o.rc, 0);
	CHECK_EQ(o.done, 1);
	CHECK_EQ(o.consumed, n + 7);
}

TEST(test_tracker_chunked_invalid)
{
	static const char *bad[] = {
		"\r\nhello\r\n0\r\n\r\n",           /* no size */
		"g\r\n",                              /* not hex */
		"5\r\nhelloX\r\n0\r\n\r\n",         /* no CRLF after data */
		"3\r\nhello\r\n0\r\n\r\n",          /* data longer than size */
		"5;a\x01\r\nhello\r\n",             /* control char in extension */
		"1000000000000000\r\n",             /* 16 hex digits */
		"0\r\n\rX",                           /* CR then not LF at the end */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		track_all_splits(bad[i], C, -1, bad[i], strlen(bad[i]), 0, 0, E_INVAL);
}

TEST(test_tracker_none_and_close)
{
	struct http_body_tracker t;
	http_body_tracker_init(&t, N, 123);
	CHECK_EQ(t.done, 1);
	CHECK_EQ(http_body_tracker_feed(&t, "HTTP/1.1 200 OK\r\n", 17), 0);
	CHECK_EQ(http_body_tracker_feed(&t, "", 0), 0);
	CHECK_EQ(t.done, 1);
	http_body_tracker_init(&t, (enum http_body_kind)42, 5); /* unknown: no body */
	CHECK_EQ(t.done, 1);
	CHECK_EQ(http_body_tracker_feed(&t, "abc", 3), 0);

	http_body_tracker_init(&t, U, 5); /* length ignored */
	CHECK_EQ(t.done, 0);
	const char *s = "0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
	CHECK_EQ(http_body_tracker_feed(&t, s, strlen(s)), (long long)strlen(s));
	CHECK_EQ(http_body_tracker_feed(&t, s, 0), 0);
	CHECK_EQ(t.done, 0);
	track_all_splits("until close", U, -1, s, strlen(s), strlen(s), 0, 0);
}

/* ---- a relay's view: responses on one upstream connection ---- */

struct expect_msg {
	int status;
	int head;               /* the request was HEAD */
	size_t body;            /* raw body bytes */
};

#define S1 "HTTP/1.1 100 Continue\r\n\r\n"
#define S2 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
#define S2B "5\r\nhello\r\n0\r\nT: x\r\n\r\n"
#define S3 "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
#define S4 "HTTP/1.1 200 OK\nContent-Length: 3\n\n"
#define S4B "abc"
#define S5 "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"
#define S6 "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"
#define S7 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
#define S7B "3\r\nxyz\r\n0\r\n\r\n"
#define S8 "HTTP/1.0 200 OK\r\n\r\n"
#define S8B "until close\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"

static const char stream[] = S1 S2 S2B S3 S4 S4B S5 S6 S7 S7B S8 S8B;
static const struct expect_msg stream_msgs[] = {
	{ 100, 0, 0 }, { 200, 0, sizeof(S2B) - 1 }, { 204, 0, 0 }, { 200, 0, 3 }, { 304, 0, 0 },
	{ 200, 1, 0 }, { 200, 0, sizeof(S7B) - 1 }, { 200, 0, sizeof(S8B) - 1 },
};
#define NMSGS (sizeof(stream_msgs) / sizeof(stream_msgs[0]))

/* Receives stream[] in pieces ending at cut[0..ncut) into a buffer, parsing
 * heads and tracking bodies as a relay would; returns the number of
 * messages that matched stream_msgs, in order. */
static size_t relay_stream(const size_t *cut, size_t ncut)
{
	size_t total = sizeof(stream) - 1;
	char buf[sizeof(stream)];
	size_t blen = 0, scanned = 0, pos = 0, ci = 0, msg = 0, body = 0;
	int in_body = 0;
	struct http_response *res = malloc(sizeof(*res));
	struct http_body_tracker t;
	if (!res)
		abort();
	for (;;) {
		if (pos < total) {
			size_t end = ci < ncut ? cut[ci++] : total;
			if (end < pos)
				end = pos;
			if (end > total)
				end = total;
			memcpy(buf + blen, stream + pos, end - pos);
			blen += end - pos;
			pos = end;
		}
		for (;;) {
			char *p = exact_copy(buf, blen);
			size_t used = 0;
			if (!in_body) {
				int rc = parse(p, blen, scanned, res);
				if (rc == E_AGAIN) {
					scanned = blen;
				} else if (rc < 0 || msg >= NMSGS || res->status != stream_msgs[msg].status) {
					free(p);
					free(res);
					return msg;
				} else {
					used = (size_t)rc;
					scanned = 0;
					in_body = 1;
					body = 0;
					http_body_tracker_init(&t, http_response_body_kind(res, stream_msgs[msg].head),
							       res->content_length);
				}
			} else {
				long rc = http_body_tracker_feed(&t, p, blen);
				if (rc < 0) {
					free(p);
					free(res);
					return msg;
				}
				used = (size_t)rc;
				body += used;
			}
			free(p);
			memmove(buf, buf + used, blen - used);
			blen -= used;
			if (in_body && t.done) {
				if (body != stream_msgs[msg].body) {
					free(res);
					return msg;
				}
				msg++;
				in_body = 0;
				continue;
			}
			if (used == 0 || blen == 0)
				break;
		}
		if (pos == total) /* nothing more arrives */
			break;
	}
	/* EOF ends an until-close body. */
	if (in_body && t.kind == U && body == stream_msgs[msg].body && blen == 0)
		msg++;
	free(res);
	return msg;
}

TEST(test_relay_stream)
{
	size_t total = sizeof(stream) - 1;
	CHECK_EQ(relay_stream(NULL, 0), NMSGS);
	for (size_t a = 0; a <= total; a++) {
		size_t cut[1] = { a };
		size_t got = relay_stream(cut, 1);
		CHECK_EQ(got, NMSGS);
		if (got != NMSGS) {
			printf("#   split at %zu\n", a);
			return;
		}
	}
	/* byte by byte, and pairs of cuts with a stride */
	size_t *cuts = malloc(total * sizeof(*cuts));
	if (!cuts)
		abort();
	for (size_t i = 0; i < total; i++)
		cuts[i] = i + 1;
	CHECK_EQ(relay_stream(cuts, total), NMSGS);
	free(cuts);
	for (size_t a = 0; a <= total; a += 3) {
		for (size_t b = a; b <= total; b += 7) {
			size_t cut[2] = { a, b };
			size_t got = relay_stream(cut, 2);
			CHECK_EQ(got, NMSGS);
			if (got != NMSGS) {
				printf("#   cuts %zu %zu\n", a, b);
				return;
			}
		}
	}
}

int main(void)
{
	RUN(test_valid_responses);
	RUN(test_invalid_responses);
	RUN(test_response_incomplete);
	RUN(test_header_count_limit);
	RUN(test_header_bytes_limit);
	RUN(test_body_kind);
	RUN(test_tracker_length);
	RUN(test_tracker_chunked);
	RUN(test_tracker_chunked_invalid);
	RUN(test_tracker_none_and_close);
	RUN(test_relay_stream);
	return test_done();
}
