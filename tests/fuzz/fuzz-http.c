/* fuzz-http.c - libFuzzer target for lib/http.c.
 *
 * Parses the input as a request head, checks the result against an
 * incremental parse (the same bytes with an earlier `scanned`), and runs
 * the body through the chunked decoder twice: in one go and in pieces of
 * sizes derived from the input.  Both runs must agree.  Every piece is an
 * exact-size heap copy so ASan sees reads past it.
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

static void check_request(const char *buf, size_t len, int rc, const struct http_request *req)
{
	FUZZ_ASSERT(rc == E_AGAIN || rc == E_INVAL || rc == E_LIMIT || rc > 0);
	if (rc <= 0)
		return;
	FUZZ_ASSERT((size_t)rc <= len && rc <= HTTP_MAX_HEADER_BYTES);
	FUZZ_ASSERT(req->num_headers <= HTTP_MAX_HEADERS);
	FUZZ_ASSERT(req->method >= buf && req->method + req->method_len <= buf + rc);
	FUZZ_ASSERT(req->target >= buf && req->target + req->target_len <= buf + rc);
	FUZZ_ASSERT(req->method_len > 0 && req->target_len > 0);
	FUZZ_ASSERT(req->minor_version == 0 || req->minor_version == 1);
	FUZZ_ASSERT(!(req->chunked && req->content_length >= 0));
	for (size_t i = 0; i < req->num_headers; i++) {
		const struct http_header *h = &req->headers[i];
		FUZZ_ASSERT(h->name >= buf && h->name + h->name_len <= buf + rc);
		FUZZ_ASSERT(h->value >= buf && h->value + h->value_len <= buf + rc);
		for (size_t k = 0; k < h->value_len; k++) {
			unsigned char c = (unsigned char)h->value[k];
			FUZZ_ASSERT(c >= 0x20 || c == '\t');
			FUZZ_ASSERT(c != 0x7f);
		}
		if (h->value_len) {
			FUZZ_ASSERT(h->value[0] != ' ' && h->value[0] != '\t');
			FUZZ_ASSERT(h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t');
		}
		(void)http_find_header(req, "host");
		(void)http_list_has_token(h->value, h->value_len, "close");
	}
}

struct decoded {
	char *out;
	size_t len;
	size_t consumed;
	int rc;
	int done;
};

/* Decode in[0..n) in pieces; max_piece 0 feeds everything at once. */
static void decode(const char *in, size_t n, uint64_t *rng, size_t max_piece, struct decoded *d)
{
	struct http_chunked c;
	http_chunked_init(&c);
	d->out = malloc(n ? n : 1);
	FUZZ_ASSERT(d->out != NULL);
	d->len = d->consumed = 0;
	d->rc = 0;
	d->done = 0;
	size_t pos = 0;
	while (pos < n && !d->done) {
		size_t piece = n - pos;
		if (max_piece) {
			size_t want = 1 + (size_t)(rng_next(rng) % max_piece);
			if (want < piece)
				piece = want;
		}
		char *p = malloc(piece);
		FUZZ_ASSERT(p != NULL);
		memcpy(p, in + pos, piece);
		size_t off = 0;
		while (off < piece) {
			const char *span;
			size_t span_len;
			int done;
			int rc = http_chunked_decode(&c, p + off, piece - off, &span, &span_len, &done);
			if (rc < 0) {
				FUZZ_ASSERT(rc == E_INVAL);
				d->rc = rc;
				free(p);
				d->consumed = pos + off;
				return;
			}
			FUZZ_ASSERT((size_t)rc <= piece - off);
			if (span_len) {
				FUZZ_ASSERT(span >= p + off && span + span_len <= p + off + (size_t)rc);
				FUZZ_ASSERT(d->len + span_len <= n);
				memcpy(d->out + d->len, span, span_len);
				d->len += span_len;
			}
			off += (size_t)rc;
			d->done = done;
			if (done)
				break;
			FUZZ_ASSERT(rc > 0); /* progress unless done */
		}
		pos += off;
		free(p);
	}
	d->consumed = pos;
}

static void fuzz_body(const char *body, size_t n, uint64_t *rng)
{
	struct decoded whole, parts;
	decode(body, n, rng, 0, &whole);
	size_t max_piece = 1 + (size_t)(rng_next(rng) % 64);
	decode(body, n, rng, max_piece, &parts);
	FUZZ_ASSERT(whole.rc == parts.rc);
	FUZZ_ASSERT(whole.done == parts.done);
	FUZZ_ASSERT(whole.len == parts.len);
	FUZZ_ASSERT(whole.len == 0 || memcmp(whole.out, parts.out, whole.len) == 0);
	if (whole.rc == 0)
		FUZZ_ASSERT(whole.consumed == parts.consumed);
	free(whole.out);
	free(parts.out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	uint64_t rng = seed_of(data, size);
	struct http_request *req = malloc(sizeof(*req));
	struct http_request *req2 = malloc(sizeof(*req2));
	FUZZ_ASSERT(req && req2);

	int rc = http_parse_request(buf, size, 0, req);
	check_request(buf, size, rc, req);

	/* Incremental: an incomplete prefix, then the whole with `scanned`. */
	if (size > 0) {
		size_t k = (size_t)(rng_next(&rng) % size);
		char *prefix = malloc(k ? k : 1);
		FUZZ_ASSERT(prefix != NULL);
		memcpy(prefix, data, k);
		int prc = http_parse_request(prefix, k, 0, req2);
		check_request(prefix, k, prc, req2);
		if (rc > 0 && (size_t)rc > k)
			FUZZ_ASSERT(prc == E_AGAIN || prc == E_LIMIT);
		if (prc == E_AGAIN) {
			int rc2 = http_parse_request(buf, size, k, req2);
			FUZZ_ASSERT(rc2 == rc);
			if (rc > 0) {
				FUZZ_ASSERT(req2->num_headers == req->num_headers);
				FUZZ_ASSERT(req2->content_length == req->content_length);
				FUZZ_ASSERT(req2->chunked == req->chunked);
				FUZZ_ASSERT(req2->keep_alive == req->keep_alive);
				FUZZ_ASSERT(req2->upgrade == req->upgrade);
			}
		}
		free(prefix);
	}

	if (rc > 0) {
		const char *body = buf + rc;
		size_t n = size - (size_t)rc;
		if (req->chunked) {
			fuzz_body(body, n, &rng);
		} else if (req->content_length >= 0) {
			/* Skip the body and parse what follows as a pipelined
			 * request; also push the body bytes through the decoder. */
			size_t cl = (uint64_t)req->content_length < n ? (size_t)req->content_length : n;
			fuzz_body(body, cl, &rng);
			int rc3 = http_parse_request(body + cl, n - cl, 0, req2);
			check_request(body + cl, n - cl, rc3, req2);
		}
	} else {
		/* Not a request head: exercise the decoder on the raw bytes. */
		fuzz_body(buf, size, &rng);
	}
	free(req);
	free(req2);
	return 0;
}
