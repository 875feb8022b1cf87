/* fuzz-mux.c - libFuzzer target for lib/mux.c behind lib/ws.c.
 *
 * (a) The input is a WebSocket byte stream from a client.  It goes through
 *     ws_decoder and every data message through a mux_reader, once whole
 *     and once in pieces of sizes drawn from a generator seeded by the
 *     input (growing receive buffer, exact-size heap blocks).  Both runs
 *     must give the same messages, and each message must agree with its
 *     own bytes: a header exactly when it has 16 bytes or more, equal to
 *     mux_decode_header of its first 16 bytes, and the rest as payload.
 * (b) The input is one message, fed to a mux_reader directly in random
 *     pieces (some empty), each an exact-size copy.
 */
#include "mux.h"
#include "ws.h"
#include "err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(x) do { if (!(x)) abort(); } while (0)

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s; /* xorshift64* */
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

struct msg {
	int complete;           /* mux_reader_end() */
	struct mux_header h;
	uint64_t plen;
	size_t off, len;        /* the message's bytes in run.bytes */
};

struct run {
	struct msg *m;
	size_t nm, maxm;
	uint8_t *bytes;         /* all data-message bytes, in order */
	size_t nbytes;
	size_t controls;
	int rc;
	size_t consumed;
	/* the message being read */
	struct mux_reader r;
	int headers;
	size_t msg_off;
	uint64_t payload_seen;
};

static void message_bytes(struct run *r, const uint8_t *p, size_t n, size_t cap)
{
	FUZZ_ASSERT(r->nbytes + n <= cap);
	if (n)
		memcpy(r->bytes + r->nbytes, p, n);
	r->nbytes += n;
	size_t off = 0;
	while (off < n) {
		int ev;
		const uint8_t *span;
		size_t slen;
		size_t k = mux_reader_feed(&r->r, p + off, n - off, &ev, &span, &slen);
		FUZZ_ASSERT(k > 0 && k <= n - off);
		size_t seen = r->nbytes - n + off - r->msg_off; /* message bytes before p + off */
		if (ev == MUX_RD_HEADER) {
			FUZZ_ASSERT(r->headers++ == 0);
			FUZZ_ASSERT(seen + k == MUX_HEADER_LEN);
			struct mux_header h;
			mux_decode_header(r->bytes + r->msg_off, &h);
			FUZZ_ASSERT(memcmp(&h, &r->r.header, sizeof(h)) == 0);
		} else if (ev == MUX_RD_PAYLOAD) {
			FUZZ_ASSERT(r->headers == 1 && seen >= MUX_HEADER_LEN);
			FUZZ_ASSERT(span == p + off && slen == k);
			r->payload_seen += slen;
		} else {
			FUZZ_ASSERT(ev == MUX_RD_NONE && r->headers == 0 && seen + k < MUX_HEADER_LEN);
			FUZZ_ASSERT(span == NULL && slen == 0);
		}
		off += k;
	}
}

static void on_event(struct run *r, const struct ws_event *ev, size_t cap)
{
	if (ev->type == WS_EV_DATA || ev->type == WS_EV_MESSAGE_END) {
		if (ev->message_start) {
			mux_reader_begin(&r->r);
			r->headers = 0;
			r->msg_off = r->nbytes;
			r->payload_seen = 0;
		}
		message_bytes(r, ev->data, ev->len, cap);
		if (ev->type == WS_EV_MESSAGE_END) {
			FUZZ_ASSERT(r->nm < r->maxm);
			struct msg *m = &r->m[r->nm++];
			m->off = r->msg_off;
			m->len = r->nbytes - r->msg_off;
			m->complete = mux_reader_end(&r->r, &m->plen);
			FUZZ_ASSERT(m->complete == (m->len >= MUX_HEADER_LEN));
			FUZZ_ASSERT(m->complete == r->headers);
			if (m->complete) {
				m->h = r->r.header;
				FUZZ_ASSERT(m->plen == m->len - MUX_HEADER_LEN);
				FUZZ_ASSERT(m->plen == r->payload_seen);
			} else {
				memset(&m->h, 0, sizeof(m->h));
				FUZZ_ASSERT(m->plen == 0);
			}
		}
	} else if (ev->type != WS_EV_NONE) {
		r->controls++;
	}
}

static void decode(const uint8_t *in, size_t n, int require_mask, uint64_t *rng, size_t max_piece, struct run *r)
{
	struct ws_decoder d;
	ws_decoder_init(&d, require_mask, 0);
	r->maxm = n + 2;
	r->m = malloc(r->maxm * sizeof(*r->m));
	r->bytes = malloc(n ? n : 1);
	uint8_t *hold = malloc(n ? n : 1);
	FUZZ_ASSERT(r->m && r->bytes && hold);
	r->nm = r->nbytes = r->controls = r->consumed = 0;
	r->rc = 0;
	mux_reader_begin(&r->r);
	r->headers = 0;
	r->msg_off = 0;
	r->payload_seen = 0;
	size_t nhold = 0, pos = 0;
	int stop = 0;
	do {
		size_t piece = n - pos;
		if (max_piece) {
			size_t want = (size_t)(rng_next(rng) % (max_piece + 1));
			if (want < piece)
				piece = want;
		}
		size_t len = nhold + piece;
		uint8_t *buf = malloc(len ? len : 1);
		FUZZ_ASSERT(buf != NULL);
		if (nhold)
			memcpy(buf, hold, nhold);
		if (piece)
			memcpy(buf + nhold, in + pos, piece);
		pos += piece;
		size_t off = 0;
		for (;;) {
			struct ws_event ev;
			int rc = ws_decoder_next(&d, len ? buf + off : NULL, len - off, &ev);
			if (rc < 0) {
				r->rc = rc;
				stop = 1;
				break;
			}
			on_event(r, &ev, n);
			if (rc == 0 && ev.type == WS_EV_NONE)
				break;
			off += (size_t)rc;
			r->consumed += (size_t)rc;
		}
		nhold = len - off;
		if (nhold)
			memcpy(hold, buf + off, nhold);
		free(buf);
	} while (!stop && pos < n);
	free(hold);
}

static void compare(const struct run *a, const struct run *b)
{
	FUZZ_ASSERT(a->rc == b->rc && a->consumed == b->consumed && a->controls == b->controls);
	FUZZ_ASSERT(a->nm == b->nm && a->nbytes == b->nbytes);
	FUZZ_ASSERT(a->nbytes == 0 || memcmp(a->bytes, b->bytes, a->nbytes) == 0);
	for (size_t i = 0; i < a->nm; i++) {
		const struct msg *x = &a->m[i], *y = &b->m[i];
		FUZZ_ASSERT(x->complete == y->complete && x->plen == y->plen && x->off == y->off && x->len == y->len);
		FUZZ_ASSERT(memcmp(&x->h, &y->h, sizeof(x->h)) == 0);
	}
}

/* (b): the input as one message, in random pieces. */
static void direct(const uint8_t *data, size_t size, uint64_t *rng)
{
	struct mux_reader r;
	mux_reader_begin(&r);
	uint8_t *payload = malloc(size ? size : 1);
	FUZZ_ASSERT(payload != NULL);
	size_t plen = 0, pos = 0;
	int headers = 0;
	while (pos < size) {
		size_t piece = (size_t)(rng_next(rng) % 24);
		if (piece > size - pos)
			piece = size - pos;
		uint8_t *p = malloc(piece ? piece : 1);
		FUZZ_ASSERT(p != NULL);
		if (piece)
			memcpy(p, data + pos, piece);
		size_t off = 0;
		do {
			int ev;
			const uint8_t *span;
			size_t slen;
			size_t k = mux_reader_feed(&r, piece ? p + off : NULL, piece - off, &ev, &span, &slen);
			FUZZ_ASSERT(k <= piece - off && (k > 0 || piece == off));
			if (ev == MUX_RD_HEADER) {
				headers++;
				FUZZ_ASSERT(pos + off + k == MUX_HEADER_LEN);
			} else if (ev == MUX_RD_PAYLOAD) {
				FUZZ_ASSERT(span == p + off && slen == k);
				memcpy(payload + plen, span, slen);
				plen += slen;
			}
			off += k;
		} while (off < piece);
		free(p);
		pos += piece;
	}
	uint64_t end_len;
	int complete = mux_reader_end(&r, &end_len);
	FUZZ_ASSERT(complete == (size >= MUX_HEADER_LEN) && headers == complete);
	if (complete) {
		struct mux_header h;
		mux_decode_header(data, &h);
		FUZZ_ASSERT(memcmp(&h, &r.header, sizeof(h)) == 0);
		FUZZ_ASSERT(end_len == size - MUX_HEADER_LEN && plen == end_len);
		FUZZ_ASSERT(plen == 0 || memcmp(payload, data + MUX_HEADER_LEN, plen) == 0);
		/* encode(decode(x)) == x apart from the version field */
		uint8_t enc[MUX_HEADER_LEN];
		mux_encode_header(enc, h.type, h.dst, h.src, h.length);
		FUZZ_ASSERT(memcmp(enc + 2, data + 2, MUX_HEADER_LEN - 2) == 0);
		FUZZ_ASSERT(enc[0] == 0 && enc[1] == MUX_VERSION);
	} else {
		FUZZ_ASSERT(end_len == 0 && plen == 0);
	}
	free(payload);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t rng = seed_of(data, size);
	int require_mask = (rng_next(&rng) & 1) ? 1 : -1;
	struct run whole, parts;
	decode(data, size, require_mask, &rng, 0, &whole);
	decode(data, size, require_mask, &rng, 1 + (size_t)(rng_next(&rng) % 40), &parts);
	compare(&whole, &parts);
	free(whole.m);
	free(whole.bytes);
	free(parts.m);
	free(parts.bytes);
	direct(data, size, &rng);
	return 0;
}
