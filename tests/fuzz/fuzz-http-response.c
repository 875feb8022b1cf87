/* fuzz-http-response.c - libFuzzer target for the response-head parser
 * and the body tracker in lib/http.c.
 *
 * Parses the input as a stream of responses on one upstream connection:
 * each head is checked (slices inside the head, derived fields
 * consistent, same result after an incomplete prefix with `scanned`),
 * and its body is found with http_body_tracker_feed in one go and in
 * random pieces; both runs must agree, no call may take more than it was
 * given, and every call takes all it was given until the body is done.
 * The raw input also goes through the tracker as a chunked body, checked
 * against http_chunked_decode.  Every piece is an exact-size heap copy so
 * ASan sees reads past it.
 */
#include "http.h"
#include "err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(x) do { if (!(x)) abort(); } while (0)

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*; the state is seeded from the input */
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t seed_of(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h ? h : 1;
}

static void check_response(const char *buf, size_t len, int rc, const struct http_response *res)
{
	FUZZ_ASSERT(rc == E_AGAIN || rc == E_INVAL || rc == E_LIMIT || rc > 0);
	if (rc <= 0)
		return;
	FUZZ_ASSERT((size_t)rc <= len && rc <= HTTP_MAX_HEADER_BYTES);
	FUZZ_ASSERT(res->minor_version == 0 || res->minor_version == 1);
	FUZZ_ASSERT(res->status >= 100 && res->status <= 999);
	FUZZ_ASSERT(res->reason >= buf && res->reason + res->reason_len <= buf + rc);
	FUZZ_ASSERT(res->num_headers <= HTTP_MAX_HEADERS);
	FUZZ_ASSERT(!(res->chunked && res->until_close));
	FUZZ_ASSERT(!(res->chunked || res->until_close) || res->content_length == -1);
	FUZZ_ASSERT(res->content_length >= -1 && res->content_length <= 999999999999999LL);
	for (size_t i = 0; i < res->reason_len; i++) {
		unsigned char c = (unsigned char)res->reason[i];
		FUZZ_ASSERT((c >= 0x20 || c == '\t') && c != 0x7f);
	}
	for (size_t i = 0; i < res->num_headers; i++) {
		const struct http_header *h = &res->headers[i];
		FUZZ_ASSERT(h->name >= buf && h->name + h->name_len <= buf + rc);
		FUZZ_ASSERT(h->value >= buf && h->value + h->value_len <= buf + rc);
		FUZZ_ASSERT(h->name_len > 0);
		for (size_t k = 0; k < h->value_len; k++) {
			unsigned char c = (unsigned char)h->value[k];
			FUZZ_ASSERT((c >= 0x20 || c == '\t') && c != 0x7f);
		}
		if (h->value_len) {
			FUZZ_ASSERT(h->value[0] != ' ' && h->value[0] != '\t');
			FUZZ_ASSERT(h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t');
		}
		FUZZ_ASSERT(http_response_find_header(res, "x") == NULL ||
			    http_response_find_header(res, "x")->name_len == 1);
	}
	/* Body framing rules. */
	enum http_body_kind k = http_response_body_kind(res, 0);
	FUZZ_ASSERT(http_response_body_kind(res, HTTP_REQ_HEAD) == HTTP_BODY_NONE);
	if (res->status < 200 || res->status == 204 || res->status == 304)
		FUZZ_ASSERT(k == HTTP_BODY_NONE);
	else if (res->chunked)
		FUZZ_ASSERT(k == HTTP_BODY_CHUNKED);
	else if (res->content_length >= 0 && !res->until_close)
		FUZZ_ASSERT(k == HTTP_BODY_LENGTH);
	else
		FUZZ_ASSERT(k == HTTP_BODY_UNTIL_CLOSE);
	if (res->status >= 200 && res->status < 300)
		FUZZ_ASSERT(http_response_body_kind(res, HTTP_REQ_CONNECT) == HTTP_BODY_NONE);
	else
		FUZZ_ASSERT(http_response_body_kind(res, HTTP_REQ_CONNECT) == k);
}

struct tracked {
	size_t consumed;
	int done;
	int rc;
};

/* Track a body in in[0..n); max_piece 0 feeds everything at once. */
static void track(enum http_body_kind kind, int64_t cl, const char *in, size_t n, uint64_t *rng,
		  size_t max_piece, struct tracked *o)
{
	struct http_body_tracker t;
	http_body_tracker_init(&t, kind, cl);
	if (kind == HTTP_BODY_NONE)
		FUZZ_ASSERT(t.done);
	if (kind == HTTP_BODY_LENGTH)
		FUZZ_ASSERT(t.done == (cl <= 0));
	o->consumed = 0;
	o->rc = 0;
	size_t pos = 0;
	while (pos < n && !t.done) {
		size_t piece = n - pos;
		if (max_piece) {
			size_t want = 1 + (size_t)(rng_next(rng) % max_piece);
			if (want < piece)
				piece = want;
		}
		char *p = malloc(piece);
		FUZZ_ASSERT(p != NULL);
		memcpy(p, in + pos, piece);
		long rc = http_body_tracker_feed(&t, p, piece);
		free(p);
		if (rc < 0) {
			FUZZ_ASSERT(rc == E_INVAL && kind == HTTP_BODY_CHUNKED);
			o->rc = (int)rc;
			break;
		}
		FUZZ_ASSERT((size_t)rc <= piece);
		FUZZ_ASSERT(t.done || (size_t)rc == piece);
		pos += (size_t)rc;
	}
	if (kind == HTTP_BODY_UNTIL_CLOSE)
		FUZZ_ASSERT(!t.done && pos == n);
	if (t.done) {
		FUZZ_ASSERT(http_body_tracker_feed(&t, in + pos, n - pos) == 0);
		if (kind == HTTP_BODY_LENGTH)
			FUZZ_ASSERT(pos == (size_t)cl || cl <= 0);
	}
	o->consumed = pos;
	o->done = t.done;
}

/* Both ways must agree; returns the bytes of the body (or -1: error). */
static long track_both(enum http_body_kind kind, int64_t cl, const char *in, size_t n, uint64_t *rng, int *done)
{
	struct tracked whole, parts;
	track(kind, cl, in, n, rng, 0, &whole);
	size_t max_piece = 1 + (size_t)(rng_next(rng) % 64);
	track(kind, cl, in, n, rng, max_piece, &parts);
	FUZZ_ASSERT(whole.rc == parts.rc);
	FUZZ_ASSERT(whole.done == parts.done);
	FUZZ_ASSERT(whole.consumed <= n);
	*done = whole.done;
	if (whole.rc != 0)
		return -1;
	FUZZ_ASSERT(whole.consumed == parts.consumed);
	return (long)whole.consumed;
}

/* The tracker's chunked end against the decoder driven directly. */
static void chunked_reference(const char *in, size_t n, uint64_t *rng)
{
	struct http_chunked c;
	http_chunked_init(&c);
	size_t pos = 0;
	int done = 0, err = 0;
	while (pos < n && !done) {
		const char *span;
		size_t span_len;
		int rc = http_chunked_decode(&c, in + pos, n - pos, &span, &span_len, &done);
		if (rc < 0) {
			err = 1;
			break;
		}
		FUZZ_ASSERT(rc > 0 || done);
		pos += (size_t)rc;
	}
	int tdone;
	long got = track_both(HTTP_BODY_CHUNKED, -1, in, n, rng, &tdone);
	FUZZ_ASSERT(err == (got < 0));
	if (!err) {
		FUZZ_ASSERT(tdone == done);
		FUZZ_ASSERT((size_t)got == pos);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	uint64_t rng = seed_of(data, size);
	struct http_response *res = malloc(sizeof(*res));
	struct http_response *res2 = malloc(sizeof(*res2));
	FUZZ_ASSERT(res && res2);

	/* A stream of up to 8 responses, as on a pooled upstream channel. */
	size_t off = 0;
	for (int msg = 0; msg < 8; msg++) {
		const char *p = buf + off;
		size_t n = size - off;
		char *copy = malloc(n ? n : 1);
		FUZZ_ASSERT(copy != NULL);
		memcpy(copy, p, n);
		int rc = http_parse_response(copy, n, 0, res);
		check_response(copy, n, rc, res);

		/* Incremental: an incomplete prefix, then the whole with `scanned`. */
		if (n > 0) {
			size_t k = (size_t)(rng_next(&rng) % n);
			char *prefix = malloc(k ? k : 1);
			FUZZ_ASSERT(prefix != NULL);
			memcpy(prefix, p, k);
			int prc = http_parse_response(prefix, k, 0, res2);
			check_response(prefix, k, prc, res2);
			if (rc > 0 && (size_t)rc > k)
				FUZZ_ASSERT(prc == E_AGAIN || prc == E_LIMIT);
			if (prc == E_AGAIN) {
				int rc2 = http_parse_response(copy, n, k, res2);
				FUZZ_ASSERT(rc2 == rc);
				if (rc > 0) {
					FUZZ_ASSERT(res2->status == res->status);
					FUZZ_ASSERT(res2->num_headers == res->num_headers);
					FUZZ_ASSERT(res2->content_length == res->content_length);
					FUZZ_ASSERT(res2->chunked == res->chunked);
					FUZZ_ASSERT(res2->until_close == res->until_close);
					FUZZ_ASSERT(res2->conn_close == res->conn_close);
					FUZZ_ASSERT(res2->conn_upgrade == res->conn_upgrade);
				}
			}
			free(prefix);
		}
		free(copy);
		if (rc <= 0)
			break;
		off += (size_t)rc;

		/* The request was HEAD for some responses. */
		int flags = (int)(rng_next(&rng) % 4);
		enum http_body_kind kind = http_response_body_kind(res, flags);
		if (kind == HTTP_BODY_NONE)
			continue;
		int done;
		long body = track_both(kind, res->content_length, buf + off, size - off, &rng, &done);
		if (body < 0 || !done)
			break;
		off += (size_t)body;
		FUZZ_ASSERT(off <= size);
	}

	chunked_reference(buf, size, &rng);
	/* A length taken from the input. */
	if (size > 0) {
		int done;
		int64_t cl = (int64_t)(rng_next(&rng) % (size + size / 2 + 1));
		long got = track_both(HTTP_BODY_LENGTH, cl, buf, size, &rng, &done);
		FUZZ_ASSERT(got == (long)((size_t)cl < size ? (size_t)cl : size));
		FUZZ_ASSERT(done == ((size_t)cl <= size));
	}
	free(res);
	free(res2);
	return 0;
}
