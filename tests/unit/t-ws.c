/* t-ws.c - tests of the RFC 6455 codec and streaming decoder.
 *
 * Every stream is decoded (a) whole, (b) split at every byte offset into
 * two pieces, (c) one byte at a time, and (d) in pseudo-random pieces.
 * Pieces arrive in a growing receive buffer: the bytes the decoder left
 * unconsumed are kept and the next piece is appended, as a connection's
 * receive buffer would.  Every call sees an exact-size heap block or a
 * buffer that ends at a PROT_NONE guard page, so reads past the end are
 * caught with or without ASan.  Each run must give the same sequence of
 * events (consecutive DATA events merged) with the same payload bytes,
 * the same error and the same consumed count.
 */
#include "ws.h"
#include "err.h"
#include "test.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- input placement ---- */

static uint8_t *exact_copy(const void *s, size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	if (!p)
		abort();
	if (n)
		memcpy(p, s, n);
	return p;
}

/* A mapping whose last page is PROT_NONE; buffers are placed to end
 * right before it.  Uses /dev/zero (not MAP_ANONYMOUS) to stay POSIX. */
struct guarded {
	void *map;
	size_t map_len;
	uint8_t *end;   /* first byte of the guard page */
};

static void guard_init(struct guarded *g, size_t max)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t data_pages = max / page + 1;
	g->map_len = (data_pages + 1) * page;
	int fd = open("/dev/zero", O_RDWR);
	if (fd < 0)
		abort();
	g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	if (g->map == MAP_FAILED)
		abort();
	g->end = (uint8_t *)g->map + data_pages * page;
	if (mprotect(g->end, page, PROT_NONE) != 0)
		abort();
}

static void guard_free(struct guarded *g)
{
	munmap(g->map, g->map_len);
}

/* ---- stream builder ---- */

struct sb {
	uint8_t *p;
	size_t len, cap;
};

static void sb_init(struct sb *b, size_t cap)
{
	b->p = malloc(cap);
	if (!b->p)
		abort();
	b->len = 0;
	b->cap = cap;
}

static void sb_raw(struct sb *b, const void *p, size_t n)
{
	if (b->len + n > b->cap)
		abort();
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* Append a frame; mask NULL = unmasked. */
static void sb_frame(struct sb *b, int fin, int op, const void *pl, size_t n, const uint8_t *mask)
{
	uint8_t h[WS_MAX_FRAME_HEADER];
	sb_raw(b, h, ws_encode_header(h, fin, op, n, mask));
	size_t at = b->len;
	sb_raw(b, pl, n);
	if (mask)
		ws_unmask(b->p + at, n, mask, 0);
}

static const uint8_t M1[4] = { 0x37, 0xfa, 0x21, 0x3d };
static const uint8_t M2[4] = { 0xa1, 0x02, 0xff, 0x5c };

/* ---- event log ---- */

#define MAX_EV 256

struct rec {
	int type, opcode, start;
	uint16_t close_code;
	size_t off, len;        /* payload bytes at bytes[off .. off+len) */
};

struct evlog {
	struct rec ev[MAX_EV];
	size_t nev;
	uint8_t *bytes;
	size_t nbytes, cap;
	int rc;                 /* 0, or the error that ended decoding */
	uint16_t error_code;
	size_t consumed;        /* total bytes consumed */
	int bad;                /* harness-level invariant violations */
	char why[120];
};

static void log_init(struct evlog *l, size_t cap)
{
	memset(l->ev, 0, sizeof(l->ev));
	l->nev = 0;
	l->bytes = malloc(cap ? cap : 1);
	if (!l->bytes)
		abort();
	l->nbytes = 0;
	l->cap = cap;
	l->rc = 0;
	l->error_code = 0;
	l->consumed = 0;
	l->bad = 0;
	l->why[0] = '\0';
}

static void log_free(struct evlog *l)
{
	free(l->bytes);
}

static void log_bad(struct evlog *l, const char *why)
{
	if (!l->bad)
		snprintf(l->why, sizeof(l->why), "%s (after %zu bytes)", why, l->consumed);
	l->bad = 1;
}

/* Record an event; consecutive DATA events are merged. */
static void log_event(struct evlog *l, const struct ws_event *ev)
{
	if (ev->len && l->nbytes + ev->len > l->cap) {
		log_bad(l, "payload longer than the stream");
		return;
	}
	if (ev->len)
		memcpy(l->bytes + l->nbytes, ev->data, ev->len);
	if (ev->type == WS_EV_DATA && l->nev && l->ev[l->nev - 1].type == WS_EV_DATA) {
		struct rec *r = &l->ev[l->nev - 1];
		if (ev->message_start)
			log_bad(l, "message_start on a DATA event that continues one");
		if (ev->opcode != r->opcode)
			log_bad(l, "opcode changed within a message");
		r->len += ev->len;
		l->nbytes += ev->len;
		return;
	}
	if (l->nev == MAX_EV) {
		log_bad(l, "too many events");
		return;
	}
	struct rec *r = &l->ev[l->nev++];
	r->type = ev->type;
	r->opcode = ev->opcode;
	r->start = ev->message_start;
	r->close_code = ev->close_code;
	r->off = l->nbytes;
	r->len = ev->len;
	l->nbytes += ev->len;
}

/* ---- feeding ---- */

enum { PLACE_HEAP, PLACE_GUARD };

struct feed_cfg {
	int require_mask;
	uint64_t max_message;
	int place;
	size_t split;           /* two pieces [0,split) [split,len); 0 = whole */
	int bytewise;           /* one byte per piece */
	uint64_t random;        /* nonzero: random pieces of 1..64 bytes, this seed */
};

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s; /* xorshift64* */
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static int dec_eq(const struct ws_decoder *a, const struct ws_decoder *b)
{
	return a->require_mask == b->require_mask && a->max_message == b->max_message &&
	       a->state == b->state && a->fin == b->fin && a->masked == b->masked &&
	       memcmp(a->mask, b->mask, 4) == 0 && a->msg_opcode == b->msg_opcode &&
	       a->msg_reported == b->msg_reported && a->remaining == b->remaining &&
	       a->offset == b->offset && a->msg_len == b->msg_len && a->err == b->err &&
	       a->err_code == b->err_code;
}

/* Decode s[0..len) as described by cfg into l. */
static void feed(const struct feed_cfg *cfg, const uint8_t *s, size_t len, struct guarded *g, struct evlog *l)
{
	struct ws_decoder d;
	ws_decoder_init(&d, cfg->require_mask, cfg->max_message);
	uint8_t *hold = malloc(len ? len : 1);
	if (!hold)
		abort();
	size_t nhold = 0, pos = 0;
	uint64_t rng = cfg->random;
	int stop = 0;
	while (!stop && (pos < len || len == 0)) {
		size_t piece = len - pos;
		if (cfg->bytewise)
			piece = piece ? 1 : 0;
		else if (cfg->random) {
			size_t want = 1 + (size_t)(rng_next(&rng) % 64);
			if (want < piece)
				piece = want;
		}
		else if (cfg->split > pos)
			piece = cfg->split - pos;
		size_t n = nhold + piece;
		uint8_t *buf;
		if (cfg->place == PLACE_GUARD) {
			buf = g->end - n;
		} else {
			buf = malloc(n ? n : 1);
			if (!buf)
				abort();
		}
		if (nhold)
			memcpy(buf, hold, nhold);
		if (piece)
			memcpy(buf + nhold, s + pos, piece);
		pos += piece;
		size_t off = 0;
		int zero_events = 0;
		for (;;) {
			struct ws_event ev;
			int rc = ws_decoder_next(&d, buf + off, n - off, &ev);
			if (rc < 0) {
				l->rc = rc;
				l->error_code = ev.error_code;
				if (ev.error_code == 0)
					log_bad(l, "error without error_code");
				struct ws_event ev2;
				if (ws_decoder_next(&d, buf + off, n - off, &ev2) != rc || ev2.error_code != ev.error_code)
					log_bad(l, "error not repeated");
				stop = 1;
				break;
			}
			if ((size_t)rc > n - off) {
				log_bad(l, "consumed more than given");
				stop = 1;
				break;
			}
			if (ev.len && (ev.data < buf + off || ev.data + ev.len > buf + off + (size_t)rc))
				log_bad(l, "event slice outside the consumed bytes");
			if (ev.len == 0 && ev.data != NULL)
				log_bad(l, "empty event with a data pointer");
			if (ev.type == WS_EV_NONE && ev.len)
				log_bad(l, "NONE with data");
			if (rc == 0 && ev.type == WS_EV_NONE) {
				/* Needs more input; nothing may have changed. */
				struct ws_decoder before = d;
				struct ws_event ev2;
				if (ws_decoder_next(&d, buf + off, n - off, &ev2) != 0 || ev2.type != WS_EV_NONE ||
				    !dec_eq(&before, &d))
					log_bad(l, "0/NONE changed the decoder");
				break;
			}
			if (ev.type != WS_EV_NONE)
				log_event(l, &ev);
			if (rc == 0 && ++zero_events > 1) {
				log_bad(l, "two calls in a row without progress");
				stop = 1;
				break;
			}
			if (rc > 0)
				zero_events = 0;
			off += (size_t)rc;
			l->consumed += (size_t)rc;
		}
		/* Unconsumed bytes must be untouched. */
		if (!l->bad && memcmp(buf + off, s + l->consumed, n - off) != 0)
			log_bad(l, "decoder modified unconsumed bytes");
		nhold = n - off;
		if (nhold)
			memcpy(hold, buf + off, nhold);
		if (cfg->place != PLACE_GUARD)
			free(buf);
		if (len == 0)
			break;
	}
	free(hold);
}

/* ---- expected results ---- */

struct xev {
	int type;
	int opcode;
	int start;
	const void *data;
	size_t len;
	uint16_t close_code;
};

#define XDATA(op, st, s) { WS_EV_DATA, op, st, s, sizeof(s) - 1, 0 }
#define XDATAN(op, st, p, n) { WS_EV_DATA, op, st, p, n, 0 }
#define XEND(op, st) { WS_EV_MESSAGE_END, op, st, NULL, 0, 0 }
#define XPING(s) { WS_EV_PING, WS_OP_PING, 0, s, sizeof(s) - 1, 0 }
#define XPONG(s) { WS_EV_PONG, WS_OP_PONG, 0, s, sizeof(s) - 1, 0 }
#define XCLOSE(code, s) { WS_EV_CLOSE, WS_OP_CLOSE, 0, s, sizeof(s) - 1, code }

struct expect {
	const struct xev *ev;
	size_t nev;
	int rc;                 /* 0 or the final error */
	uint16_t error_code;
	size_t remain;          /* bytes left unconsumed (incomplete tail or the bad frame) */
};

static int log_matches(const struct evlog *l, const struct expect *x, size_t len, char *why, size_t whylen)
{
	if (l->bad) {
		snprintf(why, whylen, "%s", l->why);
		return 0;
	}
	if (l->rc != x->rc || l->error_code != x->error_code) {
		snprintf(why, whylen, "rc %d/%u, want %d/%u", l->rc, l->error_code, x->rc, x->error_code);
		return 0;
	}
	if (l->consumed != len - x->remain) {
		snprintf(why, whylen, "consumed %zu, want %zu", l->consumed, len - x->remain);
		return 0;
	}
	if (l->nev != x->nev) {
		snprintf(why, whylen, "%zu events, want %zu", l->nev, x->nev);
		return 0;
	}
	for (size_t i = 0; i < x->nev; i++) {
		const struct rec *r = &l->ev[i];
		const struct xev *e = &x->ev[i];
		if (r->type != e->type || r->opcode != e->opcode || r->start != e->start ||
		    r->close_code != e->close_code || r->len != e->len ||
		    (e->len && memcmp(l->bytes + r->off, e->data, e->len) != 0)) {
			snprintf(why, whylen, "event %zu: type %d op %d start %d code %u len %zu", i, r->type,
				 r->opcode, r->start, r->close_code, r->len);
			return 0;
		}
	}
	return 1;
}

/* Streams up to this size are split at every offset; larger ones at every
 * offset in the first and last 300 bytes and at a stride in between. */
#define FULL_SPLIT_MAX 4096

static int split_wanted(size_t k, size_t len)
{
	return len <= FULL_SPLIT_MAX || k < 300 || k + 300 > len || k % 509 == 0;
}

/* Decode a stream every way and check each result against x. */
static void run_stream(const char *name, const uint8_t *s, size_t len, int require_mask,
		       uint64_t max_message, const struct expect *x)
{
	struct guarded g;
	guard_init(&g, len);
	struct evlog *l = malloc(sizeof(*l));
	if (!l)
		abort();
	char why[160];
	int bad = test_failures_in_case;
	struct feed_cfg cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.require_mask = require_mask;
	cfg.max_message = max_message;
	const char *mode = "";
	size_t at = 0;
	for (int place = PLACE_HEAP; place <= PLACE_GUARD; place++) {
		cfg.place = place;
		/* whole, every split, bytewise, a few random piece sequences */
		size_t runs = len + 1 + 1 + 8;
		for (size_t r = 0; r < runs; r++) {
			cfg.split = 0;
			cfg.bytewise = 0;
			cfg.random = 0;
			if (r <= len) {
				if (!split_wanted(r, len))
					continue;
				if (place == PLACE_GUARD && len > FULL_SPLIT_MAX && r != 0)
					continue;
				cfg.split = r;
				mode = r ? "split" : "whole";
			} else if (r == len + 1) {
				cfg.bytewise = 1;
				mode = "bytewise";
			} else {
				cfg.random = 0x9E3779B97F4A7C15ULL * (r - len);
				mode = "random";
			}
			at = r;
			log_init(l, len);
			feed(&cfg, s, len, &g, l);
			int ok = log_matches(l, x, len, why, sizeof(why));
			log_free(l);
			CHECK(ok);
			if (!ok)
				goto out;
		}
	}
out:
	if (test_failures_in_case != bad)
		printf("#   in stream \"%s\" (%s %zu, %s): %s\n", name, mode, at,
		       cfg.place == PLACE_GUARD ? "guard page" : "heap", why);
	free(l);
	guard_free(&g);
}

#define EXPECT(arr, rc, code, remain) { arr, sizeof(arr) / sizeof(arr[0]), rc, code, remain }

/* ---- RFC 6455 §5.7 examples ---- */

TEST(test_rfc_examples)
{
	static const uint8_t hello_unmasked[] = { 0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
	static const uint8_t hello_masked[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	static const uint8_t fragmented[] = { 0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f };
	static const uint8_t ping[] = { 0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
	static const uint8_t pong_masked[] = { 0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	static const struct xev ev_hello[] = { XDATA(WS_OP_TEXT, 1, "Hello"), XEND(WS_OP_TEXT, 0) };
	static const struct xev ev_ping[] = { XPING("Hello") };
	static const struct xev ev_pong[] = { XPONG("Hello") };
	static const struct xev ev_none[1];
	const struct expect x_hello = EXPECT(ev_hello, 0, 0, 0);
	const struct expect x_ping = EXPECT(ev_ping, 0, 0, 0);
	const struct expect x_pong = EXPECT(ev_pong, 0, 0, 0);
	const struct expect x_proto = { ev_none, 0, E_INVAL, WS_CLOSE_PROTOCOL, 0 };

	run_stream("unmasked Hello, client", hello_unmasked, sizeof(hello_unmasked), 0, 0, &x_hello);
	run_stream("unmasked Hello, either", hello_unmasked, sizeof(hello_unmasked), -1, 0, &x_hello);
	run_stream("masked Hello, server", hello_masked, sizeof(hello_masked), 1, 0, &x_hello);
	run_stream("masked Hello, either", hello_masked, sizeof(hello_masked), -1, 0, &x_hello);
	run_stream("fragmented Hel+lo", fragmented, sizeof(fragmented), 0, 0, &x_hello);
	run_stream("unmasked ping", ping, sizeof(ping), 0, 0, &x_ping);
	run_stream("masked pong", pong_masked, sizeof(pong_masked), 1, 0, &x_pong);

	/* The wrong side: unmasked to a server, masked to a client. */
	struct expect x = x_proto;
	x.remain = sizeof(hello_unmasked);
	run_stream("unmasked Hello, server", hello_unmasked, sizeof(hello_unmasked), 1, 0, &x);
	x.remain = sizeof(hello_masked);
	run_stream("masked Hello, client", hello_masked, sizeof(hello_masked), 0, 0, &x);
	x.remain = sizeof(ping);
	run_stream("unmasked ping, server", ping, sizeof(ping), 1, 0, &x);

	/* 256 bytes and 64 KiB binary in one unmasked frame. */
	static uint8_t pat[65536];
	for (size_t i = 0; i < sizeof(pat); i++)
		pat[i] = (uint8_t)(i * 31 + (i >> 8));
	struct sb b;
	sb_init(&b, 65536 + 64);
	static const uint8_t h256[] = { 0x82, 0x7e, 0x01, 0x00 };
	sb_raw(&b, h256, sizeof(h256));
	sb_raw(&b, pat, 256);
	struct xev ev_bin[] = { XDATAN(WS_OP_BINARY, 1, pat, 256), XEND(WS_OP_BINARY, 0) };
	struct expect xb = EXPECT(ev_bin, 0, 0, 0);
	run_stream("256 bytes binary", b.p, b.len, 0, 0, &xb);

	b.len = 0;
	static const uint8_t h64k[] = { 0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00 };
	sb_raw(&b, h64k, sizeof(h64k));
	sb_raw(&b, pat, 65536);
	ev_bin[0].len = 65536;
	run_stream("64 KiB binary", b.p, b.len, 0, 0, &xb);
	run_stream("64 KiB binary, either", b.p, b.len, -1, 0, &xb);

	/* The same 64 KiB masked, from a client. */
	b.len = 0;
	sb_frame(&b, 1, WS_OP_BINARY, pat, 65536, M2);
	CHECK_EQ(b.len, 65536 + 14);
	run_stream("64 KiB binary masked", b.p, b.len, 1, 0, &xb);
	free(b.p);
}

TEST(test_encode_header_bytes)
{
	uint8_t h[WS_MAX_FRAME_HEADER];
	static const uint8_t e1[] = { 0x81, 0x05 };
	CHECK_EQ(ws_encode_header(h, 1, WS_OP_TEXT, 5, NULL), 2);
	CHECK_MEM(h, e1, 2);
	static const uint8_t e2[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d };
	CHECK_EQ(ws_encode_header(h, 1, WS_OP_TEXT, 5, M1), 6);
	CHECK_MEM(h, e2, 6);
	static const uint8_t e3[] = { 0x01, 0x03 };
	CHECK_EQ(ws_encode_header(h, 0, WS_OP_TEXT, 3, NULL), 2);
	CHECK_MEM(h, e3, 2);
	static const uint8_t e4[] = { 0x80, 0x02 };
	CHECK_EQ(ws_encode_header(h, 1, WS_OP_CONT, 2, NULL), 2);
	CHECK_MEM(h, e4, 2);
	static const uint8_t e5[] = { 0x82, 0x7e, 0x01, 0x00 };
	CHECK_EQ(ws_encode_header(h, 1, WS_OP_BINARY, 256, NULL), 4);
	CHECK_MEM(h, e5, 4);
	static const uint8_t e6[] = { 0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00 };
	CHECK_EQ(ws_encode_header(h, 1, WS_OP_BINARY, 65536, NULL), 10);
	CHECK_MEM(h, e6, 10);
	static const uint8_t e7[] = { 0x89, 0x00 };
	CHECK_EQ(ws_encode_header(h, 1, WS_OP_PING, 0, NULL), 2);
	CHECK_MEM(h, e7, 2);
	/* Length form boundaries. */
	static const uint8_t e8[] = { 0x82, 0x7d };
	CHECK_EQ(ws_encode_header(h, 1, WS_OP_BINARY, 125, NULL), 2);
	CHECK_MEM(h, e8, 2);
	static const uint8_t e9[] = { 0x82, 0xfe, 0x00, 0x7e, 0xa1, 0x02, 0xff, 0x5c };
	CHECK_EQ(ws_encode_header(h, 1, WS_OP_BINARY, 126, M2), 8);
	CHECK_MEM(h, e9, 8);
	static const uint8_t e10[] = { 0x02, 0x7e, 0xff, 0xff };
	CHECK_EQ(ws_encode_header(h, 0, WS_OP_BINARY, 65535, NULL), 4);
	CHECK_MEM(h, e10, 4);
	static const uint8_t e11[] = { 0x82, 0xff, 0, 0, 0, 0x01, 0, 0, 0, 0, 0xa1, 0x02, 0xff, 0x5c };
	CHECK_EQ(ws_encode_header(h, 1, WS_OP_BINARY, (uint64_t)1 << 32, M2), 14);
	CHECK_MEM(h, e11, 14);
	static const uint8_t e12[] = { 0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	CHECK_EQ(ws_encode_header(h, 1, WS_OP_BINARY, UINT64_MAX >> 1, NULL), 10);
	CHECK_MEM(h, e12, 10);
}

/* ---- round trips ---- */

/* Encode one frame of each length, masked and unmasked, then decode it. */
TEST(test_round_trip_lengths)
{
	const size_t lens[] = { 0, 1, 125, 126, 127, 65535, 65536, 65537 };
	const size_t hlen[] = { 2, 2, 2, 4, 4, 4, 10, 10 };
	static uint8_t pat[65537];
	for (size_t i = 0; i < sizeof(pat); i++)
		pat[i] = (uint8_t)(i ^ (i >> 7));
	struct sb b;
	sb_init(&b, sizeof(pat) + 64);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		for (int masked = 0; masked <= 1; masked++) {
			for (int op = WS_OP_TEXT; op <= WS_OP_BINARY; op++) {
				b.len = 0;
				sb_frame(&b, 1, op, pat, lens[i], masked ? M1 : NULL);
				CHECK_EQ(b.len, lens[i] + hlen[i] + (masked ? 4 : 0));
				struct xev ev[2] = { XDATAN(op, 1, pat, lens[i]), XEND(op, 0) };
				struct expect x = EXPECT(ev, 0, 0, 0);
				if (lens[i] == 0) {
					ev[0] = ev[1];
					ev[0].start = 1;
					x.nev = 1;
				}
				char name[64];
				snprintf(name, sizeof(name), "len %zu masked %d op %d", lens[i], masked, op);
				run_stream(name, b.p, b.len, masked ? 1 : 0, 0, &x);
				run_stream(name, b.p, b.len, -1, 0, &x);
			}
		}
	}
	/* Control frames of 0 and 125 bytes. */
	for (size_t n = 0; n <= 125; n += 125) {
		for (int op = WS_OP_CLOSE; op <= WS_OP_PONG; op++) {
			uint8_t pl[125];
			for (size_t k = 0; k < sizeof(pl); k++)
				pl[k] = (uint8_t)('a' + k % 26);
			if (op == WS_OP_CLOSE && n) {
				pl[0] = 0x03;
				pl[1] = 0xe8;
			}
			b.len = 0;
			sb_frame(&b, 1, op, pl, n, M2);
			struct xev ev[1] = { { op == WS_OP_PING ? WS_EV_PING : op == WS_OP_PONG ? WS_EV_PONG : WS_EV_CLOSE,
					      op, 0, pl, n, 0 } };
			if (op == WS_OP_CLOSE) {
				ev[0].close_code = n ? 1000 : 1005;
				ev[0].data = pl + 2;
				ev[0].len = n ? n - 2 : 0;
			}
			struct expect x = EXPECT(ev, 0, 0, 0);
			run_stream("control", b.p, b.len, 1, 0, &x);
		}
	}
	free(b.p);
}

/* 2^32 bytes: the header in the receive buffer, then the payload streamed
 * through in 1 MiB pieces.  Every byte is unmasked; the first and last
 * piece are compared in full and the others at a stride of 4093 bytes
 * (comparing 4 GiB would dominate the run time under ASan). */
static void stream_4g(int masked)
{
	const uint64_t total = (uint64_t)1 << 32;
	const size_t chunk = (size_t)1 << 20;
	uint8_t h[WS_MAX_FRAME_HEADER];
	size_t hl = ws_encode_header(h, 1, WS_OP_BINARY, total, masked ? M1 : NULL);
	CHECK_EQ(hl, masked ? 14 : 10);
	/* payload byte at position p is (uint8_t)(p * 7); chunk is a
	 * multiple of 256 (and of the key length), so every piece has the
	 * same plain and the same masked bytes */
	uint8_t *buf = malloc(chunk), *plain = malloc(chunk), *wire = malloc(chunk);
	if (!buf || !plain || !wire)
		abort();
	for (size_t i = 0; i < chunk; i++)
		plain[i] = (uint8_t)(i * 7);
	memcpy(wire, plain, chunk);
	if (masked)
		ws_unmask(wire, chunk, M1, 0);
	memcpy(buf, wire, chunk);
	struct ws_decoder d;
	struct ws_event ev;
	ws_decoder_init(&d, masked ? 1 : 0, total);
	CHECK_EQ(ws_decoder_next(&d, h, hl, &ev), (long long)hl);
	CHECK_EQ(ev.type, WS_EV_NONE);
	CHECK(ws_decoder_in_message(&d));
	uint64_t done = 0;
	int events = 0, bad = 0;
	while (done < total && !bad) {
		if (masked)
			memcpy(buf, wire, chunk); /* the decoder unmasked the last piece in place */
		size_t off = 0;
		while (off < chunk) {
			int rc = ws_decoder_next(&d, buf + off, chunk - off, &ev);
			if (rc <= 0 || ev.type != WS_EV_DATA || ev.data != buf + off ||
			    ev.message_start != (done == 0 && off == 0)) {
				bad = 1;
				break;
			}
			off += (size_t)rc;
			events++;
		}
		int full = done == 0 || done + chunk == total;
		if (full)
			bad |= memcmp(buf, plain, chunk) != 0;
		for (size_t i = 0; i < chunk && !bad; i += 4093)
			if (buf[i] != plain[i])
				bad = 1;
		done += chunk;
	}
	CHECK(!bad);
	CHECK_EQ(done, total);
	CHECK_EQ(events, 4096);
	CHECK_EQ(ws_decoder_next(&d, buf, 0, &ev), 0);
	CHECK_EQ(ev.type, WS_EV_MESSAGE_END);
	CHECK_EQ(ev.message_start, 0);
	CHECK_EQ(ev.opcode, WS_OP_BINARY);
	CHECK(!ws_decoder_in_message(&d));
	CHECK_EQ(ws_decoder_next(&d, buf, 0, &ev), 0);
	CHECK_EQ(ev.type, WS_EV_NONE);
	/* Over the cap by one byte. */
	ws_decoder_init(&d, masked ? 1 : 0, total - 1);
	CHECK_EQ(ws_decoder_next(&d, h, hl, &ev), E_LIMIT);
	CHECK_EQ(ev.error_code, WS_CLOSE_TOO_BIG);
	free(buf);
	free(plain);
	free(wire);
}

TEST(test_round_trip_4g)
{
	stream_4g(0);
	stream_4g(1);
}

/* One DATA event covers at most 1 GiB so that the consumed count fits the
 * int return value.  The buffer is a lazily mapped 1 GiB + 1 page of
 * /dev/zero; an unmasked payload is never touched, so little of it is
 * ever backed by memory.  Skipped where the mapping fails (32-bit). */
TEST(test_span_cap)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t gib = (size_t)1 << 30;
	if ((size_t)-1 / 2 < gib * 2)
		return;
	size_t map_len = gib + page;
	int fd = open("/dev/zero", O_RDWR);
	if (fd < 0)
		return;
	uint8_t *m = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return;
	uint64_t total = (uint64_t)gib + 100;
	size_t hl = ws_encode_header(m, 1, WS_OP_BINARY, total, NULL);
	struct ws_decoder d;
	struct ws_event ev;
	ws_decoder_init(&d, 0, total);
	int rc = ws_decoder_next(&d, m, map_len, &ev);
	CHECK_EQ(rc, (long long)(hl + gib));
	CHECK_EQ(ev.type, WS_EV_DATA);
	CHECK_EQ(ev.len, gib);
	CHECK(ev.data == m + hl);
	CHECK_EQ(ws_decoder_next(&d, m + hl + gib, map_len - hl - gib, &ev), 100);
	CHECK_EQ(ev.len, 100);
	CHECK_EQ(ws_decoder_next(&d, m + hl + gib + 100, 0, &ev), 0);
	CHECK_EQ(ev.type, WS_EV_MESSAGE_END);
	munmap(m, map_len);
}

/* ---- multi-frame streams ---- */

/* transports.md §2.11 item 4: DATA dst=7 src=7 "OK" as the Node client
 * sends it (binary FIN=0 with the 16 header bytes, continuation FIN=1 with
 * the payload, both masked), with a ping in between. */
static const uint8_t wsm_item4[] = { 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x07,
				     0x00, 0x00, 0x00, 0x02, 0x4f, 0x4b };

TEST(test_node_multiplex_pattern)
{
	struct sb b;
	sb_init(&b, 256);
	/* As specified: 02 90 m.. <16>, 80 82 m.. <2>. */
	sb_frame(&b, 0, WS_OP_BINARY, wsm_item4, 16, M1);
	CHECK_EQ(b.p[0], 0x02);
	CHECK_EQ(b.p[1], 0x90);
	size_t first = b.len;
	sb_frame(&b, 1, WS_OP_CONT, wsm_item4 + 16, 2, M2);
	CHECK_EQ(b.p[first], 0x80);
	CHECK_EQ(b.p[first + 1], 0x82);
	{
		struct xev ev[] = { XDATAN(WS_OP_BINARY, 1, wsm_item4, 18), XEND(WS_OP_BINARY, 0) };
		struct expect x = EXPECT(ev, 0, 0, 0);
		run_stream("item 4", b.p, b.len, 1, 0, &x);
	}

	/* With a ping between the fragments and a pong after the message. */
	b.len = 0;
	sb_frame(&b, 0, WS_OP_BINARY, wsm_item4, 16, M1);
	sb_frame(&b, 1, WS_OP_PING, "keep", 4, M2);
	sb_frame(&b, 1, WS_OP_CONT, wsm_item4 + 16, 2, M2);
	sb_frame(&b, 1, WS_OP_PONG, "", 0, M1);
	{
		struct xev ev[] = { XDATAN(WS_OP_BINARY, 1, wsm_item4, 16), XPING("keep"),
				    XDATAN(WS_OP_BINARY, 0, wsm_item4 + 16, 2), XEND(WS_OP_BINARY, 0),
				    { WS_EV_PONG, WS_OP_PONG, 0, NULL, 0, 0 } };
		struct expect x = EXPECT(ev, 0, 0, 0);
		run_stream("item 4 with ping", b.p, b.len, 1, 0, &x);
	}

	/* Three WSM messages in a row, each fragmented, with an empty ping, a
	 * pong and a close after the last. */
	b.len = 0;
	static const uint8_t open7[] = { 0, 2, 0, 2, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0 };
	sb_frame(&b, 1, WS_OP_BINARY, open7, 16, M2);
	sb_frame(&b, 0, WS_OP_BINARY, wsm_item4, 16, M1);
	sb_frame(&b, 1, WS_OP_PING, "", 0, M1);
	sb_frame(&b, 0, WS_OP_CONT, wsm_item4 + 16, 1, M2);
	sb_frame(&b, 1, WS_OP_PONG, "x", 1, M1);
	sb_frame(&b, 1, WS_OP_CONT, wsm_item4 + 17, 1, M2);
	uint8_t cp[WS_MAX_CONTROL_PAYLOAD];
	size_t cn = ws_encode_close_payload(cp, WS_CLOSE_GOING_AWAY, "bye");
	sb_frame(&b, 1, WS_OP_CLOSE, cp, cn, M1);
	{
		struct xev ev[] = { XDATAN(WS_OP_BINARY, 1, open7, 16), XEND(WS_OP_BINARY, 0),
				    XDATAN(WS_OP_BINARY, 1, wsm_item4, 16),
				    { WS_EV_PING, WS_OP_PING, 0, NULL, 0, 0 },
				    XDATAN(WS_OP_BINARY, 0, wsm_item4 + 16, 1), XPONG("x"),
				    XDATAN(WS_OP_BINARY, 0, wsm_item4 + 17, 1), XEND(WS_OP_BINARY, 0),
				    XCLOSE(1001, "bye") };
		struct expect x = EXPECT(ev, 0, 0, 0);
		run_stream("three messages, controls, close", b.p, b.len, 1, 0, &x);
		run_stream("three messages, either", b.p, b.len, -1, 0, &x);
	}
	free(b.p);
}

TEST(test_empty_frames)
{
	struct sb b;
	sb_init(&b, 256);
	/* An empty message: END with message_start. */
	sb_frame(&b, 1, WS_OP_BINARY, "", 0, M1);
	sb_frame(&b, 1, WS_OP_TEXT, "", 0, M2);
	/* A message made of empty fragments. */
	sb_frame(&b, 0, WS_OP_BINARY, "", 0, M1);
	sb_frame(&b, 0, WS_OP_CONT, "", 0, M1);
	sb_frame(&b, 1, WS_OP_CONT, "", 0, M1);
	/* Empty first fragment, data in the last. */
	sb_frame(&b, 0, WS_OP_TEXT, "", 0, M1);
	sb_frame(&b, 1, WS_OP_CONT, "abc", 3, M2);
	/* Data in the first, empty last (with a ping in between). */
	sb_frame(&b, 0, WS_OP_BINARY, "def", 3, M2);
	sb_frame(&b, 1, WS_OP_PING, "p", 1, M1);
	sb_frame(&b, 1, WS_OP_CONT, "", 0, M1);
	/* Empty fragments around data. */
	sb_frame(&b, 0, WS_OP_BINARY, "", 0, M1);
	sb_frame(&b, 0, WS_OP_CONT, "g", 1, M1);
	sb_frame(&b, 0, WS_OP_CONT, "", 0, M1);
	sb_frame(&b, 1, WS_OP_CONT, "h", 1, M2);
	struct xev ev[] = { XEND(WS_OP_BINARY, 1), XEND(WS_OP_TEXT, 1), XEND(WS_OP_BINARY, 1),
			    XDATA(WS_OP_TEXT, 1, "abc"), XEND(WS_OP_TEXT, 0),
			    XDATA(WS_OP_BINARY, 1, "def"), XPING("p"), XEND(WS_OP_BINARY, 0),
			    XDATA(WS_OP_BINARY, 1, "gh"), XEND(WS_OP_BINARY, 0) };
	struct expect x = EXPECT(ev, 0, 0, 0);
	run_stream("empty frames", b.p, b.len, 1, 0, &x);
	free(b.p);
}

TEST(test_close_frames)
{
	struct sb b;
	sb_init(&b, 512);
	uint8_t cp[WS_MAX_CONTROL_PAYLOAD];
	static const struct {
		uint16_t code;
		const char *reason;
	} ok[] = { { 1000, "" }, { 1001, "going" }, { 1002, "" }, { 1003, "" }, { 1007, "" }, { 1008, "unable to establish tunnel" },
		   { 1009, "" }, { 1010, "" }, { 1011, "" }, { 1012, "" }, { 1013, "" }, { 1014, "" },
		   { 3000, "" }, { 4999, "\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80" } };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		b.len = 0;
		size_t n = ws_encode_close_payload(cp, ok[i].code, ok[i].reason);
		CHECK_EQ(n, 2 + strlen(ok[i].reason));
		sb_frame(&b, 1, WS_OP_CLOSE, cp, n, M1);
		struct xev ev[1] = { { WS_EV_CLOSE, WS_OP_CLOSE, 0, ok[i].reason, strlen(ok[i].reason), ok[i].code } };
		struct expect x = EXPECT(ev, 0, 0, 0);
		run_stream("close", b.p, b.len, 1, 0, &x);
	}
	/* No payload: 1005. */
	b.len = 0;
	sb_frame(&b, 1, WS_OP_CLOSE, "", 0, NULL);
	{
		struct xev ev[1] = { { WS_EV_CLOSE, WS_OP_CLOSE, 0, NULL, 0, WS_CLOSE_NO_STATUS } };
		struct expect x = EXPECT(ev, 0, 0, 0);
		run_stream("close without code", b.p, b.len, 0, 0, &x);
	}
	/* 125-byte close: code + 123 bytes of reason. */
	b.len = 0;
	char reason[200];
	memset(reason, 'r', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	size_t n = ws_encode_close_payload(cp, 1000, reason);
	CHECK_EQ(n, 125);
	sb_frame(&b, 1, WS_OP_CLOSE, cp, n, M2);
	{
		struct xev ev[1] = { { WS_EV_CLOSE, WS_OP_CLOSE, 0, reason, 123, 1000 } };
		struct expect x = EXPECT(ev, 0, 0, 0);
		run_stream("close 125", b.p, b.len, 1, 0, &x);
	}
	/* Anything after a close is an error; the close is still reported. */
	b.len = 0;
	sb_frame(&b, 1, WS_OP_BINARY, "ab", 2, M1);
	sb_frame(&b, 1, WS_OP_CLOSE, "\x03\xe8", 2, M1);
	size_t after = b.len;
	sb_frame(&b, 1, WS_OP_PING, "", 0, M1);
	{
		struct xev ev[] = { XDATA(WS_OP_BINARY, 1, "ab"), XEND(WS_OP_BINARY, 0), XCLOSE(1000, "") };
		struct expect x = EXPECT(ev, E_CLOSED, WS_CLOSE_PROTOCOL, b.len - after);
		run_stream("data after close", b.p, b.len, 1, 0, &x);
		/* Without the trailing frame, no error. */
		x.rc = 0;
		x.error_code = 0;
		x.remain = 0;
		run_stream("close at the end", b.p, after, 1, 0, &x);
	}
	/* A close inside a fragmented message. */
	b.len = 0;
	sb_frame(&b, 0, WS_OP_TEXT, "ab", 2, M1);
	sb_frame(&b, 1, WS_OP_CLOSE, "\x03\xe9", 2, M1);
	{
		struct xev ev[] = { XDATA(WS_OP_TEXT, 1, "ab"), XCLOSE(1001, "") };
		struct expect x = EXPECT(ev, 0, 0, 0);
		run_stream("close mid-message", b.p, b.len, 1, 0, &x);
	}
	free(b.p);
}

TEST(test_length_forms)
{
	struct sb b;
	sb_init(&b, 256);
	/* Non-minimal lengths are accepted (as Node's ws does). */
	static const uint8_t nm16[] = { 0x82, 0x7e, 0x00, 0x03, 'a', 'b', 'c' };
	static const uint8_t nm64[] = { 0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0x03, 'a', 'b', 'c' };
	static const uint8_t nm64z[] = { 0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0x00 };
	struct xev ev[] = { XDATA(WS_OP_BINARY, 1, "abc"), XEND(WS_OP_BINARY, 0) };
	struct expect x = EXPECT(ev, 0, 0, 0);
	run_stream("16-bit length 3", nm16, sizeof(nm16), 0, 0, &x);
	run_stream("64-bit length 3", nm64, sizeof(nm64), 0, 0, &x);
	struct xev ev2[] = { XEND(WS_OP_BINARY, 1), XEND(WS_OP_TEXT, 1) };
	struct expect x2 = EXPECT(ev2, 0, 0, 0);
	run_stream("64-bit length 0", nm64z, sizeof(nm64z), 0, 0, &x2);
	free(b.p);
}

TEST(test_incomplete_tail)
{
	/* A stream cut inside a frame: what is there is reported, the rest
	 * stays unconsumed (control frames whole only; headers whole only). */
	struct sb b;
	sb_init(&b, 256);
	sb_frame(&b, 1, WS_OP_BINARY, "hello", 5, M1);
	size_t cut = b.len - 2;
	{
		struct xev ev[] = { XDATA(WS_OP_BINARY, 1, "hel") };
		struct expect x = EXPECT(ev, 0, 0, 0);
		run_stream("cut in data payload", b.p, cut, 1, 0, &x);
	}
	b.len = 0;
	sb_frame(&b, 1, WS_OP_BINARY, "hi", 2, M1);
	size_t first = b.len;
	sb_frame(&b, 1, WS_OP_PING, "hello", 5, M1);
	{
		struct xev ev[] = { XDATA(WS_OP_BINARY, 1, "hi"), XEND(WS_OP_BINARY, 0) };
		struct expect x = EXPECT(ev, 0, 0, 0);
		for (size_t k = first; k < b.len; k++) {
			x.remain = k - first;
			run_stream("cut in ping", b.p, k, 1, 0, &x);
		}
	}
	/* Cut inside a 64-bit length header. */
	free(b.p);
	static uint8_t big[70000];
	sb_init(&b, sizeof(big) + 32);
	sb_frame(&b, 1, WS_OP_BINARY, big, sizeof(big), M1);
	{
		static const struct xev none[1];
		struct expect x = { none, 0, 0, 0, 0 };
		for (size_t k = 0; k < 14; k++) {
			x.remain = k;
			run_stream("cut in header", b.p, k, 1, 0, &x);
		}
	}
	free(b.p);
}

TEST(test_max_message)
{
	struct sb b;
	sb_init(&b, 256);
	sb_frame(&b, 1, WS_OP_TEXT, "Hello", 5, M1);
	struct xev ev[] = { XDATA(WS_OP_TEXT, 1, "Hello"), XEND(WS_OP_TEXT, 0) };
	struct expect x = EXPECT(ev, 0, 0, 0);
	run_stream("exactly max", b.p, b.len, 1, 5, &x);
	struct expect xe = { ev, 0, E_LIMIT, WS_CLOSE_TOO_BIG, b.len };
	run_stream("over max", b.p, b.len, 1, 4, &xe);

	/* Fragmented: the cap is on the message, checked per header. */
	b.len = 0;
	sb_frame(&b, 0, WS_OP_BINARY, "abc", 3, M1);
	sb_frame(&b, 1, WS_OP_PING, "", 0, M1);
	size_t second = b.len;
	sb_frame(&b, 1, WS_OP_CONT, "de", 2, M2);
	sb_frame(&b, 1, WS_OP_BINARY, "fghij", 5, M2);
	struct xev ev2[] = { XDATA(WS_OP_BINARY, 1, "abc"), { WS_EV_PING, WS_OP_PING, 0, NULL, 0, 0 },
			     XDATA(WS_OP_BINARY, 0, "de"), XEND(WS_OP_BINARY, 0),
			     XDATA(WS_OP_BINARY, 1, "fghij"), XEND(WS_OP_BINARY, 0) };
	struct expect x2 = EXPECT(ev2, 0, 0, 0);
	run_stream("fragmented at max", b.p, b.len, 1, 5, &x2);
	struct expect x3 = { ev2, 2, E_LIMIT, WS_CLOSE_TOO_BIG, b.len - second };
	run_stream("fragmented over max", b.p, b.len, 1, 4, &x3);

	/* The default cap (16 MiB) with a header announcing more. */
	uint8_t h[WS_MAX_FRAME_HEADER];
	size_t hl = ws_encode_header(h, 1, WS_OP_BINARY, WS_MAX_MESSAGE_DEFAULT + 1ull, M1);
	struct expect x4 = { ev, 0, E_LIMIT, WS_CLOSE_TOO_BIG, hl };
	run_stream("over the default cap", h, hl, 1, 0, &x4);
	hl = ws_encode_header(h, 1, WS_OP_BINARY, WS_MAX_MESSAGE_DEFAULT, M1);
	struct expect x5 = { ev, 0, 0, 0, 0 };
	run_stream("default cap header", h, hl, 1, 0, &x5);
	free(b.p);
}

/* ---- error cases ---- */

struct err_case {
	const char *name;
	const uint8_t *raw;
	size_t len;
	int require_mask;
	int rc;
	uint16_t code;
	size_t good;            /* bytes of valid frames before the bad one */
	size_t nev;             /* events those produce (checked: count only) */
};

TEST(test_errors)
{
	/* Hand-written bad streams; `good` bytes of valid frames come first. */
#define R(...) (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ })
	const struct err_case cases[] = {
		{ "rsv1", R(0xc2, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 0, 0 },
		{ "rsv2", R(0xa2, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 0, 0 },
		{ "rsv3", R(0x92, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 0, 0 },
		{ "rsv on continuation", R(0x02, 0x80, 1, 2, 3, 4, 0x90, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 6, 0 },
		{ "rsv on ping", R(0xc9, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 0, 0 },
		{ "opcode 3", R(0x83, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 0, 0 },
		{ "opcode 4", R(0x84, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 0, 0 },
		{ "opcode 5", R(0x85, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 0, 0 },
		{ "opcode 6", R(0x86, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 0, 0 },
		{ "opcode 7", R(0x87, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 0, 0 },
		{ "opcode 11", R(0x8b, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 0, 0 },
		{ "opcode 12", R(0x8c, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 0, 0 },
		{ "opcode 13", R(0x8d, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 0, 0 },
		{ "opcode 14", R(0x8e, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 0, 0 },
		{ "opcode 15", R(0x8f, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 0, 0 },
		{ "unmasked to server", R(0x82, 0x00), 1, E_INVAL, 1002, 0, 0 },
		{ "unmasked ping to server", R(0x89, 0x00), 1, E_INVAL, 1002, 0, 0 },
		{ "masked to client", R(0x82, 0x80, 1, 2, 3, 4), 0, E_INVAL, 1002, 0, 0 },
		{ "masked close to client", R(0x88, 0x80, 1, 2, 3, 4), 0, E_INVAL, 1002, 0, 0 },
		{ "unmasked after masked", R(0x82, 0x81, 1, 2, 3, 4, 5, 0x82, 0x01, 5), 1, E_INVAL, 1002, 7, 2 },
		{ "fragmented ping", R(0x09, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 0, 0 },
		{ "fragmented pong", R(0x0a, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 0, 0 },
		{ "fragmented close", R(0x08, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 0, 0 },
		{ "ping 126", R(0x89, 0xfe, 0x00, 0x7e), 1, E_INVAL, 1002, 0, 0 },
		{ "ping 127", R(0x89, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x7e), 1, E_INVAL, 1002, 0, 0 },
		{ "close 126 (16-bit form of 5)", R(0x88, 0x7e, 0x00, 0x05), 0, E_INVAL, 1002, 0, 0 },
		{ "continuation first", R(0x80, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 0, 0 },
		{ "continuation FIN=0 first", R(0x00, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 0, 0 },
		{ "continuation after a whole message", R(0x82, 0x80, 1, 2, 3, 4, 0x80, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 6, 1 },
		{ "binary inside fragmented", R(0x02, 0x81, 0, 0, 0, 0, 'a', 0x82, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 7, 1 },
		{ "text inside fragmented", R(0x01, 0x80, 0, 0, 0, 0, 0x01, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 6, 0 },
		{ "new message after ping", R(0x02, 0x81, 0, 0, 0, 0, 'a', 0x89, 0x80, 0, 0, 0, 0, 0x81, 0x80, 1, 2, 3, 4), 1, E_INVAL, 1002, 13, 2 },
		{ "64-bit length top bit", R(0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4), 1, E_INVAL, 1002, 0, 0 },
		{ "64-bit length all ones", R(0x82, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 0, E_INVAL, 1002, 0, 0 },
		{ "64-bit length 2^63-1", R(0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 0, E_LIMIT, 1009, 0, 0 },
		{ "close payload 1 byte", R(0x88, 0x81, 1, 2, 3, 4, 5), 1, E_INVAL, 1002, 0, 0 },
		{ "close code 0", R(0x88, 0x02, 0x00, 0x00), 0, E_INVAL, 1002, 0, 0 },
		{ "close code 999", R(0x88, 0x02, 0x03, 0xe7), 0, E_INVAL, 1002, 0, 0 },
		{ "close code 1004", R(0x88, 0x02, 0x03, 0xec), 0, E_INVAL, 1002, 0, 0 },
		{ "close code 1005", R(0x88, 0x02, 0x03, 0xed), 0, E_INVAL, 1002, 0, 0 },
		{ "close code 1006", R(0x88, 0x02, 0x03, 0xee), 0, E_INVAL, 1002, 0, 0 },
		{ "close code 1015", R(0x88, 0x02, 0x03, 0xf7), 0, E_INVAL, 1002, 0, 0 },
		{ "close code 1100", R(0x88, 0x02, 0x04, 0x4c), 0, E_INVAL, 1002, 0, 0 },
		{ "close code 2999", R(0x88, 0x02, 0x0b, 0xb7), 0, E_INVAL, 1002, 0, 0 },
		{ "close code 5000", R(0x88, 0x02, 0x13, 0x88), 0, E_INVAL, 1002, 0, 0 },
		{ "close code 65535", R(0x88, 0x02, 0xff, 0xff), 0, E_INVAL, 1002, 0, 0 },
		{ "close reason 0xff", R(0x88, 0x03, 0x03, 0xe8, 0xff), 0, E_INVAL, 1007, 0, 0 },
		{ "close reason overlong", R(0x88, 0x04, 0x03, 0xe8, 0xc0, 0x80), 0, E_INVAL, 1007, 0, 0 },
		{ "close reason surrogate", R(0x88, 0x05, 0x03, 0xe8, 0xed, 0xa0, 0x80), 0, E_INVAL, 1007, 0, 0 },
		{ "close reason truncated", R(0x88, 0x04, 0x03, 0xe8, 0xe2, 0x82), 0, E_INVAL, 1007, 0, 0 },
		{ "close reason > U+10FFFF", R(0x88, 0x06, 0x03, 0xe8, 0xf4, 0x90, 0x80, 0x80), 0, E_INVAL, 1007, 0, 0 },
		{ "masked close reason bad", R(0x88, 0x83, 0x11, 0x22, 0x33, 0x44, 0x12, 0xca, 0xcc), 1, E_INVAL, 1007, 0, 0 },
		{ "masked close code bad", R(0x88, 0x82, 0x11, 0x22, 0x33, 0x44, 0x11, 0x22), 1, E_INVAL, 1002, 0, 0 },
	};
#undef R
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct err_case *c = &cases[i];
		/* The events before the error come from the good prefix, decoded
		 * on its own. */
		struct evlog *l = malloc(sizeof(*l));
		if (!l)
			abort();
		struct feed_cfg cfg;
		memset(&cfg, 0, sizeof(cfg));
		cfg.require_mask = c->require_mask;
		struct guarded g;
		guard_init(&g, c->len);
		log_init(l, c->len);
		feed(&cfg, c->raw, c->good, &g, l);
		CHECK_EQ(l->rc, 0);
		CHECK_EQ(l->nev, c->nev);
		struct xev *ev = calloc(l->nev + 1, sizeof(*ev));
		if (!ev)
			abort();
		for (size_t k = 0; k < l->nev; k++) {
			ev[k].type = l->ev[k].type;
			ev[k].opcode = l->ev[k].opcode;
			ev[k].start = l->ev[k].start;
			ev[k].data = l->bytes + l->ev[k].off;
			ev[k].len = l->ev[k].len;
			ev[k].close_code = l->ev[k].close_code;
		}
		struct expect x = { ev, l->nev, c->rc, c->code, c->len - c->good };
		run_stream(c->name, c->raw, c->len, c->require_mask, 0, &x);
		/* Decoded with the other mask settings where that is legal. */
		if (c->require_mask == 1 && c->code != 1002)
			run_stream(c->name, c->raw, c->len, -1, 0, &x);
		free(ev);
		log_free(l);
		free(l);
		guard_free(&g);
	}
}

/* Error detection is early: the header bytes that show the error are
 * enough, and nothing is consumed. */
TEST(test_errors_early)
{
	struct ws_decoder d;
	struct ws_event ev;
	uint8_t b[4];
	memcpy(b, "\xc2", 1);
	ws_decoder_init(&d, 1, 0);
	CHECK_EQ(ws_decoder_next(&d, b, 1, &ev), E_INVAL);
	CHECK_EQ(ev.error_code, 1002);
	memcpy(b, "\x82\x00", 2);
	ws_decoder_init(&d, 1, 0);
	CHECK_EQ(ws_decoder_next(&d, b, 1, &ev), 0);
	CHECK_EQ(ws_decoder_next(&d, b, 2, &ev), E_INVAL);
	memcpy(b, "\x82\xff\x80", 3);
	ws_decoder_init(&d, 1, 0);
	CHECK_EQ(ws_decoder_next(&d, b, 2, &ev), 0);
	CHECK_EQ(ws_decoder_next(&d, b, 3, &ev), E_INVAL);
	/* Sticky, even with no input. */
	CHECK_EQ(ws_decoder_next(&d, b, 0, &ev), E_INVAL);
	CHECK_EQ(ev.error_code, 1002);
	CHECK_EQ(ev.type, WS_EV_NONE);
	/* A control frame waits for its whole payload. */
	uint8_t ping[] = { 0x89, 0x83, 1, 2, 3, 4, 'a' ^ 1, 'b' ^ 2, 'c' ^ 3 };
	ws_decoder_init(&d, 1, 0);
	for (size_t k = 0; k < sizeof(ping); k++) {
		CHECK_EQ(ws_decoder_next(&d, ping, k, &ev), 0);
		CHECK_EQ(ev.type, WS_EV_NONE);
	}
	CHECK_EQ(ping[6], 'a' ^ 1);
	CHECK_EQ(ws_decoder_next(&d, ping, sizeof(ping), &ev), (long long)sizeof(ping));
	CHECK_EQ(ev.type, WS_EV_PING);
	CHECK(ev.data == ping + 6);
	CHECK_EQ(ev.len, 3);
	CHECK_MEM(ev.data, "abc", 3);
	/* A data frame header is consumed on its own; its payload streams. */
	uint8_t data[] = { 0x82, 0x83, 1, 2, 3, 4, 'a' ^ 1, 'b' ^ 2, 'c' ^ 3 };
	ws_decoder_init(&d, 1, 0);
	CHECK_EQ(ws_decoder_next(&d, data, 5, &ev), 0);
	CHECK_EQ(ws_decoder_next(&d, data, 6, &ev), 6);
	CHECK_EQ(ev.type, WS_EV_NONE);
	CHECK(ws_decoder_in_message(&d));
	CHECK_EQ(ws_decoder_next(&d, data + 6, 2, &ev), 2);
	CHECK_EQ(ev.type, WS_EV_DATA);
	CHECK_EQ(ev.message_start, 1);
	CHECK_MEM(ev.data, "ab", 2);
	CHECK_EQ(ws_decoder_next(&d, data + 8, 1, &ev), 1);
	CHECK_EQ(ev.type, WS_EV_DATA);
	CHECK_EQ(ev.message_start, 0);
	CHECK_EQ(ev.data[0], 'c');
	CHECK_EQ(ws_decoder_next(&d, data + 9, 0, &ev), 0);
	CHECK_EQ(ev.type, WS_EV_MESSAGE_END);
	CHECK_EQ(ev.opcode, WS_OP_BINARY);
	CHECK(!ws_decoder_in_message(&d));
	CHECK_EQ(ws_decoder_next(&d, data + 9, 0, &ev), 0);
	CHECK_EQ(ev.type, WS_EV_NONE);
}

/* ---- helpers ---- */

TEST(test_accept_key)
{
	char out[WS_ACCEPT_KEY_LEN + 1];
	static const struct {
		const char *key, *accept;
	} ok[] = {
		{ "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" }, /* RFC 6455 §1.3 */
		{ "x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk=" },
		{ "AAAAAAAAAAAAAAAAAAAAAA==", "ICX+Yqv66kxgM0FcWaLWlFLwTAI=" },
		{ "/////////////////////w==", "XXpj4jYzLM2yUE0C7TIgMwTQh2g=" },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char *k = (char *)exact_copy(ok[i].key, 24);
		CHECK_EQ(ws_accept_key(k, 24, out), 0);
		CHECK_STR(out, ok[i].accept);
		CHECK_EQ(strlen(out), WS_ACCEPT_KEY_LEN);
		free(k);
	}
	const char *bad[] = {
		"dGhlIHNhbXBsZSBub25jZQ=",      /* 23 */
		"dGhlIHNhbXBsZSBub25jZQ===",    /* 25 */
		"dGhlIHNhbXBsZSBub25jZQ",       /* no padding */
		"dGhlIHNhbXBsZSBub25jZQAA",     /* no padding, 24 chars */
		"dGhlIHNhbXBsZSBub25jZ===",     /* padding too early */
		"dGhlIHNhbXBsZSBub25j=Q==",     /* '=' inside */
		"dGhlIHNhbXBsZSBub25jZ-==",     /* url alphabet */
		"dGhlIHNhbXBsZSBub25jZ_==",
		"dGhlIHNhbXBsZSBub25jZ ==",
		"dGhlIHNhbXBsZSBub25jZ.==",
		"dGhlIHNhbXBsZSBub25jZQ= ",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = strlen(bad[i]);
		char *k = (char *)exact_copy(bad[i], n);
		memcpy(out, "x", 2);
		CHECK_EQ(ws_accept_key(k, n, out), E_INVAL);
		CHECK_STR(out, "");
		free(k);
	}
	/* A NUL inside the 24 bytes. */
	char *k = (char *)exact_copy("dGhlIHNhbXBsZSBub25j\0Q==", 24);
	CHECK_EQ(ws_accept_key(k, 24, out), E_INVAL);
	free(k);
	CHECK_EQ(ws_accept_key(NULL, 0, out), E_INVAL);
}

TEST(test_close_payload)
{
	uint8_t out[WS_MAX_CONTROL_PAYLOAD];
	CHECK_EQ(ws_encode_close_payload(out, 1000, NULL), 2);
	CHECK_MEM(out, "\x03\xe8", 2);
	CHECK_EQ(ws_encode_close_payload(out, 1008, "unable to establish tunnel"), 28);
	CHECK_MEM(out, "\x03\xf0unable to establish tunnel", 28);
	CHECK_EQ(ws_encode_close_payload(out, 0, "ignored"), 0);
	CHECK_EQ(ws_encode_close_payload(out, 4999, ""), 2);
	CHECK_MEM(out, "\x13\x87", 2);

	/* Truncation at 123 reason bytes, never inside a UTF-8 sequence. */
	char r[300];
	for (size_t lead = 118; lead <= 124; lead++) {
		for (size_t w = 1; w <= 4; w++) {
			static const char *chars[] = { "", "a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80" };
			memset(r, 'x', lead);
			size_t n = lead;
			for (int rep = 0; rep < 3; rep++) {
				memcpy(r + n, chars[w], w);
				n += w;
			}
			r[n] = '\0';
			size_t got = ws_encode_close_payload(out, 1001, r);
			CHECK(got <= WS_MAX_CONTROL_PAYLOAD);
			CHECK(got >= 2);
			size_t rl = got - 2;
			CHECK(rl <= 123);
			CHECK(rl + w > 123 || rl == n);
			CHECK_MEM(out + 2, r, rl);
			CHECK(ws_utf8_valid(out + 2, rl));
			/* and it decodes */
			struct sb b;
			sb_init(&b, 256);
			sb_frame(&b, 1, WS_OP_CLOSE, out, got, M1);
			struct ws_decoder d;
			struct ws_event ev;
			ws_decoder_init(&d, 1, 0);
			CHECK_EQ(ws_decoder_next(&d, b.p, b.len, &ev), (long long)b.len);
			CHECK_EQ(ev.type, WS_EV_CLOSE);
			CHECK_EQ(ev.close_code, 1001);
			CHECK_EQ(ev.len, rl);
			free(b.p);
		}
	}
	/* Reason exactly at the end of a guard page: no read past its NUL. */
	struct guarded g;
	guard_init(&g, 8);
	memcpy(g.end - 4, "bye", 4);
	CHECK_EQ(ws_encode_close_payload(out, 1000, (const char *)g.end - 4), 5);
	guard_free(&g);
}

TEST(test_utf8)
{
	static const struct {
		const char *s;
		size_t n;
		int ok;
	} v[] = {
		{ "", 0, 1 },
		{ "hello", 5, 1 },
		{ "\x00", 1, 1 },
		{ "\x7f", 1, 1 },
		{ "\xc2\x80", 2, 1 },
		{ "\xdf\xbf", 2, 1 },
		{ "\xe0\xa0\x80", 3, 1 },
		{ "\xed\x9f\xbf", 3, 1 },
		{ "\xee\x80\x80", 3, 1 },
		{ "\xef\xbf\xbf", 3, 1 },
		{ "\xf0\x90\x80\x80", 4, 1 },
		{ "\xf4\x8f\xbf\xbf", 4, 1 },
		{ "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11, 1 },
		{ "\x80", 1, 0 },
		{ "\xbf", 1, 0 },
		{ "\xc0\x80", 2, 0 },
		{ "\xc1\xbf", 2, 0 },
		{ "\xc2", 1, 0 },
		{ "\xc2\x7f", 2, 0 },
		{ "\xc2\xc0", 2, 0 },
		{ "\xe0\x9f\xbf", 3, 0 },
		{ "\xed\xa0\x80", 3, 0 },
		{ "\xed\xbf\xbf", 3, 0 },
		{ "\xe1\x80", 2, 0 },
		{ "\xe1\x80\x7f", 3, 0 },
		{ "\xf0\x8f\xbf\xbf", 4, 0 },
		{ "\xf4\x90\x80\x80", 4, 0 },
		{ "\xf5\x80\x80\x80", 4, 0 },
		{ "\xf0\x90\x80", 3, 0 },
		{ "\xf1\x80\x80\xc0", 4, 0 },
		{ "\xf8\x88\x80\x80\x80", 5, 0 },
		{ "\xfe", 1, 0 },
		{ "\xff", 1, 0 },
		{ "a\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80", 15, 0 },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint8_t *p = exact_copy(v[i].s, v[i].n);
		int got = ws_utf8_valid(p, v[i].n);
		CHECK_EQ(got, v[i].ok);
		if (got != v[i].ok)
			printf("#   utf8 case %zu\n", i);
		free(p);
	}
	/* Every truncation of a valid 4-byte sequence is invalid, at the end
	 * of a guard page. */
	struct guarded g;
	guard_init(&g, 8);
	for (size_t k = 1; k < 4; k++) {
		memcpy(g.end - k, "\xf0\x9f\x98\x80", k);
		CHECK_EQ(ws_utf8_valid(g.end - k, k), 0);
	}
	guard_free(&g);
}

TEST(test_close_code_valid)
{
	int valid = 0;
	for (unsigned c = 0; c < 70000; c++)
		valid += ws_close_code_valid(c);
	CHECK_EQ(valid, 12 + 2000);
	CHECK(ws_close_code_valid(1000));
	CHECK(ws_close_code_valid(1003));
	CHECK(!ws_close_code_valid(1004));
	CHECK(!ws_close_code_valid(1005));
	CHECK(!ws_close_code_valid(1006));
	CHECK(ws_close_code_valid(1007));
	CHECK(ws_close_code_valid(1014));
	CHECK(!ws_close_code_valid(1015));
	CHECK(!ws_close_code_valid(2999));
	CHECK(ws_close_code_valid(3000));
	CHECK(ws_close_code_valid(4999));
	CHECK(!ws_close_code_valid(5000));
}

TEST(test_unmask)
{
	uint8_t plain[100], ref[100], got[100];
	for (size_t i = 0; i < sizeof(plain); i++)
		plain[i] = (uint8_t)(i * 13 + 5);
	for (uint64_t off = 0; off < 8; off++) {
		for (size_t n = 0; n <= sizeof(plain); n++) {
			for (size_t i = 0; i < n; i++)
				ref[i] = plain[i] ^ M2[(off + i) % 4];
			uint8_t *p = exact_copy(plain, n);
			ws_unmask(p, n, M2, off);
			CHECK(n == 0 || memcmp(p, ref, n) == 0);
			/* Twice gives the plain bytes back. */
			ws_unmask(p, n, M2, off);
			CHECK(n == 0 || memcmp(p, plain, n) == 0);
			free(p);
		}
	}
	/* Piecewise with offsets equals whole. */
	memcpy(ref, plain, sizeof(ref));
	ws_unmask(ref, sizeof(ref), M1, 0);
	for (size_t k = 0; k <= sizeof(plain); k++) {
		memcpy(got, plain, sizeof(got));
		ws_unmask(got, k, M1, 0);
		ws_unmask(got + k, sizeof(got) - k, M1, k);
		CHECK_MEM(got, ref, sizeof(ref));
	}
	/* Large offsets only matter mod 4. */
	memcpy(got, plain, sizeof(got));
	ws_unmask(got, sizeof(got), M1, ((uint64_t)1 << 40) + 4);
	CHECK_MEM(got, ref, sizeof(ref));
}

/* Many messages in random order with every frame kind; split at every
 * byte.  Checks the stream builder and decoder agree on larger inputs. */
TEST(test_mixed_stream)
{
	struct sb b;
	sb_init(&b, 8192);
	static struct xev ev[MAX_EV];
	static uint8_t pool[4096];
	size_t nev = 0, used = 0;
	uint64_t rng = 12345;
	for (size_t i = 0; i < sizeof(pool); i++)
		pool[i] = (uint8_t)rng_next(&rng);
	for (int m = 0; m < 20; m++) {
		int op = (rng_next(&rng) & 1) ? WS_OP_BINARY : WS_OP_TEXT;
		int frags = 1 + (int)(rng_next(&rng) % 4);
		int first_data = 1;
		for (int f = 0; f < frags; f++) {
			size_t n = (size_t)(rng_next(&rng) % 140);
			if (used + n > sizeof(pool))
				n = 0;
			const uint8_t *mask = (rng_next(&rng) & 1) ? M1 : M2;
			sb_frame(&b, f == frags - 1, f ? WS_OP_CONT : op, pool + used, n, mask);
			if (n) {
				if (nev && ev[nev - 1].type == WS_EV_DATA) {
					ev[nev - 1].len += n;
				} else {
					struct xev e = { WS_EV_DATA, op, first_data, pool + used, n, 0 };
					ev[nev++] = e;
				}
				first_data = 0;
				used += n;
			}
			if (f == frags - 1) {
				struct xev e = XEND(op, first_data);
				ev[nev++] = e;
			}
			if (rng_next(&rng) % 3 == 0) {
				size_t pn = (size_t)(rng_next(&rng) % 126);
				if (used + pn > sizeof(pool))
					pn = 0;
				sb_frame(&b, 1, WS_OP_PING, pool + used, pn, mask);
				struct xev e = { WS_EV_PING, WS_OP_PING, 0, pn ? pool + used : NULL, pn, 0 };
				ev[nev++] = e;
				used += pn;
			}
		}
	}
	CHECK(b.len <= FULL_SPLIT_MAX);
	struct expect x = { ev, nev, 0, 0, 0 };
	run_stream("mixed", b.p, b.len, 1, 0, &x);
	free(b.p);
}

int main(void)
{
	RUN(test_rfc_examples);
	RUN(test_encode_header_bytes);
	RUN(test_round_trip_lengths);
	RUN(test_round_trip_4g);
	RUN(test_span_cap);
	RUN(test_node_multiplex_pattern);
	RUN(test_empty_frames);
	RUN(test_close_frames);
	RUN(test_length_forms);
	RUN(test_incomplete_tail);
	RUN(test_max_message);
	RUN(test_errors);
	RUN(test_errors_early);
	RUN(test_accept_key);
	RUN(test_close_payload);
	RUN(test_utf8);
	RUN(test_close_code_valid);
	RUN(test_unmask);
	RUN(test_mixed_stream);
	return test_done();
}
