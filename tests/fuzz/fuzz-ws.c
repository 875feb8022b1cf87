/* fuzz-ws.c - libFuzzer target for lib/ws.c.
 *
 * The input is a byte stream from a peer.  It is decoded by a server
 * decoder (frames must be masked), a client decoder (must be unmasked) and
 * an either-way decoder, each once whole and once in pieces of sizes drawn
 * from a generator seeded by the input, in a growing receive buffer (the
 * unconsumed bytes are kept, the next piece appended; every call sees an
 * exact-size heap block so ASan catches reads past it).  Both runs must
 * give the same events (consecutive DATA merged), payload bytes, error and
 * consumed count, and every event must obey the header's contract.  The
 * encoders are exercised with values taken from the input.
 */
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

struct rec {
	int type, opcode, start;
	uint16_t close_code;
	size_t off, len;
};

struct run {
	struct rec *ev;
	size_t nev, maxev;
	uint8_t *bytes;
	size_t nbytes;
	int rc;
	uint16_t error_code;
	size_t consumed;
	int in_message;         /* a message's DATA seen, END not yet */
	int msg_opcode;
};

static void record(struct run *r, const struct ws_event *ev, size_t cap)
{
	/* Contract checks per event. */
	switch (ev->type) {
	case WS_EV_DATA:
		FUZZ_ASSERT(ev->opcode == WS_OP_TEXT || ev->opcode == WS_OP_BINARY);
		FUZZ_ASSERT(ev->len > 0);
		FUZZ_ASSERT(ev->message_start == !r->in_message);
		if (r->in_message)
			FUZZ_ASSERT(ev->opcode == r->msg_opcode);
		r->in_message = 1;
		r->msg_opcode = ev->opcode;
		break;
	case WS_EV_MESSAGE_END:
		FUZZ_ASSERT(ev->opcode == WS_OP_TEXT || ev->opcode == WS_OP_BINARY);
		FUZZ_ASSERT(ev->len == 0 && ev->data == NULL);
		FUZZ_ASSERT(ev->message_start == !r->in_message);
		if (r->in_message)
			FUZZ_ASSERT(ev->opcode == r->msg_opcode);
		r->in_message = 0;
		break;
	case WS_EV_PING:
	case WS_EV_PONG:
		FUZZ_ASSERT(ev->len <= WS_MAX_CONTROL_PAYLOAD);
		FUZZ_ASSERT(ev->opcode == (ev->type == WS_EV_PING ? WS_OP_PING : WS_OP_PONG));
		FUZZ_ASSERT(!ev->message_start);
		break;
	case WS_EV_CLOSE:
		FUZZ_ASSERT(ev->len <= WS_MAX_CONTROL_PAYLOAD - 2);
		FUZZ_ASSERT(ev->close_code == WS_CLOSE_NO_STATUS ? ev->len == 0 : ws_close_code_valid(ev->close_code));
		FUZZ_ASSERT(ws_utf8_valid(ev->data, ev->len));
		break;
	default:
		FUZZ_ASSERT(0);
	}
	FUZZ_ASSERT((ev->len == 0) == (ev->data == NULL));
	FUZZ_ASSERT(r->nbytes + ev->len <= cap);
	if (ev->len)
		memcpy(r->bytes + r->nbytes, ev->data, ev->len);
	if (ev->type == WS_EV_DATA && r->nev && r->ev[r->nev - 1].type == WS_EV_DATA) {
		r->ev[r->nev - 1].len += ev->len;
		r->nbytes += ev->len;
		return;
	}
	FUZZ_ASSERT(r->nev < r->maxev);
	struct rec *x = &r->ev[r->nev++];
	x->type = ev->type;
	x->opcode = ev->opcode;
	x->start = ev->message_start;
	x->close_code = ev->close_code;
	x->off = r->nbytes;
	x->len = ev->len;
	r->nbytes += ev->len;
}

/* Decode in[0..n); max_piece 0 = all at once. */
static void decode(const uint8_t *in, size_t n, int require_mask, uint64_t max_message, uint64_t *rng,
		   size_t max_piece, struct run *r)
{
	struct ws_decoder d;
	ws_decoder_init(&d, require_mask, max_message);
	r->maxev = n + 2;
	r->ev = malloc(r->maxev * sizeof(*r->ev));
	r->bytes = malloc(n ? n : 1);
	uint8_t *hold = malloc(n ? n : 1);
	FUZZ_ASSERT(r->ev && r->bytes && hold);
	r->nev = r->nbytes = r->consumed = 0;
	r->rc = 0;
	r->error_code = 0;
	r->in_message = 0;
	r->msg_opcode = -1;
	size_t nhold = 0, pos = 0;
	int stop = 0;
	do {
		size_t piece = n - pos;
		if (max_piece) {
			size_t want = (size_t)(rng_next(rng) % (max_piece + 1)); /* may be 0 */
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
		int zero_run = 0;
		for (;;) {
			struct ws_event ev;
			uint8_t *at = len ? buf + off : NULL;
			int rc = ws_decoder_next(&d, at, len - off, &ev);
			if (rc < 0) {
				FUZZ_ASSERT(rc == E_INVAL || rc == E_LIMIT || rc == E_CLOSED);
				FUZZ_ASSERT(ev.error_code == WS_CLOSE_PROTOCOL || ev.error_code == WS_CLOSE_INVALID_DATA ||
					    ev.error_code == WS_CLOSE_TOO_BIG);
				FUZZ_ASSERT((rc == E_LIMIT) == (ev.error_code == WS_CLOSE_TOO_BIG));
				FUZZ_ASSERT(ev.type == WS_EV_NONE);
				r->rc = rc;
				r->error_code = ev.error_code;
				struct ws_event ev2;
				FUZZ_ASSERT(ws_decoder_next(&d, at, len - off, &ev2) == rc);
				FUZZ_ASSERT(ev2.error_code == ev.error_code);
				stop = 1;
				break;
			}
			FUZZ_ASSERT((size_t)rc <= len - off);
			if (ev.len)
				FUZZ_ASSERT(ev.data >= buf + off && ev.data + ev.len <= buf + off + (size_t)rc);
			if (rc == 0 && ev.type == WS_EV_NONE) {
				struct ws_event ev2;
				FUZZ_ASSERT(ws_decoder_next(&d, at, len - off, &ev2) == 0 && ev2.type == WS_EV_NONE);
				break;
			}
			if (ev.type != WS_EV_NONE)
				record(r, &ev, n);
			if (rc == 0)
				FUZZ_ASSERT(++zero_run == 1);
			else
				zero_run = 0;
			FUZZ_ASSERT(ws_decoder_in_message(&d) == (d.msg_opcode >= 0));
			off += (size_t)rc;
			r->consumed += (size_t)rc;
		}
		/* Unconsumed bytes are never modified. */
		FUZZ_ASSERT(len - off == 0 || memcmp(buf + off, in + r->consumed, len - off) == 0);
		nhold = len - off;
		if (nhold)
			memcpy(hold, buf + off, nhold);
		free(buf);
	} while (!stop && pos < n);
	free(hold);
}

static void free_run(struct run *r)
{
	free(r->ev);
	free(r->bytes);
}

static void compare(const struct run *a, const struct run *b)
{
	FUZZ_ASSERT(a->rc == b->rc && a->error_code == b->error_code);
	FUZZ_ASSERT(a->consumed == b->consumed);
	FUZZ_ASSERT(a->nev == b->nev && a->nbytes == b->nbytes);
	for (size_t i = 0; i < a->nev; i++) {
		const struct rec *x = &a->ev[i], *y = &b->ev[i];
		FUZZ_ASSERT(x->type == y->type && x->opcode == y->opcode && x->start == y->start &&
			    x->close_code == y->close_code && x->off == y->off && x->len == y->len);
	}
	FUZZ_ASSERT(a->nbytes == 0 || memcmp(a->bytes, b->bytes, a->nbytes) == 0);
}

static void fuzz_encoders(const uint8_t *data, size_t size, uint64_t *rng)
{
	/* Close payload with a reason from the input, decoded again. */
	char *reason = malloc(size + 1);
	FUZZ_ASSERT(reason != NULL);
	memcpy(reason, data, size);
	reason[size] = '\0';
	uint16_t code = (uint16_t)rng_next(rng);
	if (rng_next(rng) & 1)
		code = (uint16_t)(1000 + rng_next(rng) % 15);
	uint8_t cp[WS_MAX_CONTROL_PAYLOAD];
	size_t cn = ws_encode_close_payload(cp, code, reason);
	FUZZ_ASSERT(cn <= WS_MAX_CONTROL_PAYLOAD);
	FUZZ_ASSERT(code == 0 ? cn == 0 : cn >= 2);
	size_t rlen = strlen(reason);
	if (cn >= 2) {
		FUZZ_ASSERT(cn - 2 <= rlen && memcmp(cp + 2, reason, cn - 2) == 0);
		if (cn - 2 < rlen)
			FUZZ_ASSERT(cn - 2 > 123 - 4);
		if (ws_utf8_valid((const uint8_t *)reason, rlen))
			FUZZ_ASSERT(ws_utf8_valid(cp + 2, cn - 2));
	}
	uint8_t frame[WS_MAX_FRAME_HEADER + WS_MAX_CONTROL_PAYLOAD];
	uint8_t mask[4];
	uint64_t mr = rng_next(rng);
	memcpy(mask, &mr, 4);
	size_t hl = ws_encode_header(frame, 1, WS_OP_CLOSE, cn, mask);
	memcpy(frame + hl, cp, cn);
	ws_unmask(frame + hl, cn, mask, 0);
	struct ws_decoder d;
	struct ws_event ev;
	ws_decoder_init(&d, 1, 0);
	int rc = ws_decoder_next(&d, frame, hl + cn, &ev);
	int valid = cn == 0 || (ws_close_code_valid(code) && ws_utf8_valid(cp + 2, cn - 2));
	if (valid) {
		FUZZ_ASSERT(rc == (int)(hl + cn) && ev.type == WS_EV_CLOSE);
		FUZZ_ASSERT(ev.close_code == (cn ? code : WS_CLOSE_NO_STATUS));
		FUZZ_ASSERT(ev.len == (cn ? cn - 2 : 0));
		FUZZ_ASSERT(ev.len == 0 || memcmp(ev.data, reason, ev.len) == 0);
	} else {
		FUZZ_ASSERT(rc == E_INVAL);
	}
	free(reason);

	/* Accept key over the first 24 bytes (validity per the header rule). */
	if (size >= 24) {
		char out[WS_ACCEPT_KEY_LEN + 1];
		char *key = malloc(24);
		FUZZ_ASSERT(key != NULL);
		memcpy(key, data, 24);
		int ok = key[22] == '=' && key[23] == '=';
		for (int i = 0; i < 22; i++) {
			char c = key[i];
			ok &= (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
		}
		rc = ws_accept_key(key, 24, out);
		FUZZ_ASSERT(rc == (ok ? 0 : E_INVAL));
		FUZZ_ASSERT(strlen(out) == (ok ? WS_ACCEPT_KEY_LEN : 0));
		free(key);
	}

	/* Header round trip with random fields. */
	uint64_t len = rng_next(rng);
	switch (rng_next(rng) % 4) {
	case 0: len &= 0x7f; break;
	case 1: len &= 0xffff; break;
	case 2: len &= 0xffffffffu; break;
	default: break;
	}
	int op = (rng_next(rng) & 1) ? WS_OP_BINARY : WS_OP_TEXT;
	int fin = (int)(rng_next(rng) & 1);
	int masked = (int)(rng_next(rng) & 1);
	uint8_t h[WS_MAX_FRAME_HEADER];
	hl = ws_encode_header(h, fin, op, len, masked ? mask : NULL);
	FUZZ_ASSERT(hl == (len < 126 ? 2u : len < 65536 ? 4u : 10u) + (masked ? 4u : 0u));
	uint8_t *hp = malloc(hl);
	FUZZ_ASSERT(hp != NULL);
	memcpy(hp, h, hl);
	for (size_t k = 0; k < hl; k++) {
		ws_decoder_init(&d, masked, UINT64_MAX);
		rc = ws_decoder_next(&d, hp, k, &ev);
		if (len >> 63 && k >= 3) /* the top bit is seen as soon as it arrives */
			FUZZ_ASSERT(rc == E_INVAL);
		else
			FUZZ_ASSERT(rc == 0 && ev.type == WS_EV_NONE);
	}
	ws_decoder_init(&d, masked, UINT64_MAX);
	rc = ws_decoder_next(&d, hp, hl, &ev);
	if (len >> 63) {
		FUZZ_ASSERT(rc == E_INVAL && ev.error_code == WS_CLOSE_PROTOCOL);
	} else {
		FUZZ_ASSERT(rc == (int)hl);
		FUZZ_ASSERT(ev.type == (len == 0 && fin ? WS_EV_MESSAGE_END : WS_EV_NONE));
		FUZZ_ASSERT(ws_decoder_in_message(&d) == !(len == 0 && fin));
	}
	free(hp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t rng = seed_of(data, size);
	static const int masks[] = { 1, 0, -1 };
	for (int m = 0; m < 3; m++) {
		uint64_t max_message = 0;
		if (rng_next(&rng) & 1)
			max_message = 1 + rng_next(&rng) % 300;
		struct run whole, parts;
		decode(data, size, masks[m], max_message, &rng, 0, &whole);
		size_t max_piece = 1 + (size_t)(rng_next(&rng) % 40);
		decode(data, size, masks[m], max_message, &rng, max_piece, &parts);
		compare(&whole, &parts);
		free_run(&whole);
		free_run(&parts);
	}
	fuzz_encoders(data, size, &rng);
	return 0;
}
