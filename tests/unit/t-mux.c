/* t-mux.c - tests of the ws-multiplex v2 header codec and message reader.
 *
 * The worked examples of spec/transports.md §2.11 are checked byte for
 * byte.  The reader is fed every message split at every byte (two and
 * three pieces, and one byte at a time), each piece an exact-size heap
 * copy or a buffer ending at a PROT_NONE guard page.  The combined test
 * runs masked, fragmented WebSocket frames through ws_decoder into the
 * reader, with the frames split at every byte in a growing receive
 * buffer, and requires the same log of messages every time.
 */
#include "mux.h"
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

/* A mapping whose last page is PROT_NONE; buffers are placed to end right
 * before it.  /dev/zero rather than MAP_ANONYMOUS to stay POSIX. */
struct guarded {
	void *map;
	size_t map_len;
	uint8_t *end;
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

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s; /* xorshift64* */
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* ---- §2.11 worked examples ---- */

struct example {
	const char *name;
	uint16_t type;
	uint32_t dst, src, length;
	uint8_t bytes[40];
	size_t nbytes;
};

static const struct example examples[] = {
	{ "1 open", MUX_OPEN, 0, 7, 0,
	  { 0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00 }, 16 },
	{ "2 ack", MUX_ACK, 7, 7, 0,
	  { 0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00 }, 16 },
	{ "3 data GET /", MUX_DATA, 7, 7, 5,
	  { 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x05,
	    0x47, 0x45, 0x54, 0x20, 0x2F }, 21 },
	{ "4 data OK", MUX_DATA, 7, 7, 2,
	  { 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x02,
	    0x4F, 0x4B }, 18 },
	{ "5 pause", MUX_PAUSE, 7, 7, 0,
	  { 0x00, 0x02, 0x00, 0x05, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00 }, 16 },
	{ "5 resume", MUX_RESUME, 7, 7, 0,
	  { 0x00, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00 }, 16 },
	{ "6 close", MUX_CLOSE, 7, 7, 0,
	  { 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00 }, 16 },
	{ "6 ack", MUX_ACK, 7, 7, 0,
	  { 0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00 }, 16 },
	{ "7 refused open", MUX_CLOSE, 7, 0, 19,
	  { 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x13,
	    0x45, 0x52, 0x52, 0x5F, 0x57, 0x53, 0x4D, 0x5F, 0x4E, 0x4F, 0x5F, 0x43, 0x48, 0x41, 0x4E, 0x4E,
	    0x45, 0x4C, 0x53 }, 35 },
};
#define NEXAMPLES (sizeof(examples) / sizeof(examples[0]))

TEST(test_examples_encode_decode)
{
	for (size_t i = 0; i < NEXAMPLES; i++) {
		const struct example *e = &examples[i];
		uint8_t h[MUX_HEADER_LEN];
		mux_encode_header(h, e->type, e->dst, e->src, e->length);
		CHECK_MEM(h, e->bytes, MUX_HEADER_LEN);
		CHECK_EQ(e->nbytes - MUX_HEADER_LEN, e->length);
		uint8_t *p = exact_copy(e->bytes, MUX_HEADER_LEN);
		struct mux_header d;
		mux_decode_header(p, &d);
		CHECK_EQ(d.version, MUX_VERSION);
		CHECK_EQ(d.type, e->type);
		CHECK_EQ(d.dst, e->dst);
		CHECK_EQ(d.src, e->src);
		CHECK_EQ(d.length, e->length);
		free(p);
	}
	CHECK_MEM(examples[8].bytes + 16, "ERR_WSM_NO_CHANNELS", 19);

	/* Extreme field values. */
	uint8_t h[MUX_HEADER_LEN];
	static const uint8_t ff[] = { 0x00, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
				      0xff, 0xff, 0xff, 0xff };
	mux_encode_header(h, 0xffff, 0xffffffffu, 0xffffffffu, 0xffffffffu);
	CHECK_MEM(h, ff, 16);
	static const uint8_t mixed[] = { 0x00, 0x02, 0x12, 0x34, 0x01, 0x02, 0x03, 0x04, 0x80, 0x00, 0x00, 0x01,
					 0x00, 0x01, 0x00, 0x00 };
	mux_encode_header(h, 0x1234, 0x01020304u, 0x80000001u, 0x10000u);
	CHECK_MEM(h, mixed, 16);
	struct mux_header d;
	mux_decode_header(mixed, &d);
	CHECK_EQ(d.type, 0x1234);
	CHECK_EQ(d.dst, 0x01020304u);
	CHECK_EQ(d.src, 0x80000001u);
	CHECK_EQ(d.length, 0x10000u);
	/* Any version decodes as sent. */
	static const uint8_t v1[] = { 0x00, 0x01, 0x00, 0x01, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0 };
	mux_decode_header(v1, &d);
	CHECK_EQ(d.version, 1);
	static const uint8_t vbig[] = { 0xab, 0xcd, 0x00, 0x63, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0 };
	mux_decode_header(vbig, &d);
	CHECK_EQ(d.version, 0xabcd);
	CHECK_EQ(d.type, 99);
}

/* The WebSocket framing shown for items 1 and 3 (server -> client,
 * unmasked, single frame) and item 4 (client -> server, fragmented). */
TEST(test_examples_ws_framing)
{
	uint8_t h[WS_MAX_FRAME_HEADER];
	CHECK_EQ(ws_encode_header(h, 1, WS_OP_BINARY, 16, NULL), 2);
	CHECK_MEM(h, "\x82\x10", 2);
	CHECK_EQ(ws_encode_header(h, 1, WS_OP_BINARY, examples[2].nbytes, NULL), 2);
	CHECK_MEM(h, "\x82\x15", 2);
	static const uint8_t m[4] = { 0x11, 0x22, 0x33, 0x44 };
	CHECK_EQ(ws_encode_header(h, 1, WS_OP_BINARY, 16, m), 6);
	CHECK_MEM(h, "\x82\x90\x11\x22\x33\x44", 6);
	CHECK_EQ(ws_encode_header(h, 0, WS_OP_BINARY, 16, m), 6);
	CHECK_MEM(h, "\x02\x90", 2);
	CHECK_EQ(ws_encode_header(h, 1, WS_OP_CONT, 2, m), 6);
	CHECK_MEM(h, "\x80\x82", 2);
}

/* ---- reader ---- */

struct read_out {
	int headers;            /* MUX_RD_HEADER events */
	struct mux_header h;
	uint8_t payload[131072];
	size_t plen;
	int end;
	uint64_t end_len;
	int bad;
	const char *why;
};

static void out_bad(struct read_out *o, const char *why)
{
	if (!o->bad)
		o->why = why;
	o->bad = 1;
}

/* Feed one piece (already placed) to the reader, call by call. */
static void feed_piece(struct mux_reader *r, const uint8_t *p, size_t n, struct read_out *o)
{
	size_t off = 0;
	int calls = 0;
	do {
		int ev = -1;
		const uint8_t *data = (const uint8_t *)"x";
		size_t dlen = 99;
		const uint8_t *q = off ? p + off : p; /* p may be NULL when n is 0 */
		size_t c = mux_reader_feed(r, q, n - off, &ev, &data, &dlen);
		calls++;
		if (c > n - off)
			out_bad(o, "consumed more than given");
		if (n - off > 0 && c == 0)
			out_bad(o, "no progress");
		if (ev == MUX_RD_HEADER) {
			if (o->headers++)
				out_bad(o, "second header");
			if (o->plen)
				out_bad(o, "header after payload");
			o->h = r->header;
			if (data || dlen)
				out_bad(o, "data with HEADER");
		} else if (ev == MUX_RD_PAYLOAD) {
			if (!o->headers)
				out_bad(o, "payload before header");
			if (data != q || dlen != c || dlen == 0)
				out_bad(o, "payload span is not the consumed bytes");
			if (o->plen + dlen > sizeof(o->payload))
				out_bad(o, "payload too long");
			else
				memcpy(o->payload + o->plen, data, dlen);
			o->plen += dlen;
		} else if (ev == MUX_RD_NONE) {
			if (data || dlen)
				out_bad(o, "data with NONE");
			if (o->headers && c)
				out_bad(o, "NONE after header");
		} else {
			out_bad(o, "bad event");
		}
		off += c;
		if (o->bad || calls > 3)
			break;
	} while (off < n);
}

enum { PLACE_HEAP, PLACE_GUARD };

/* Read message m[0..len) cut at cuts[0..ncuts) (ascending, may repeat:
 * an empty piece). */
static void read_cut(const uint8_t *m, size_t len, const size_t *cuts, size_t ncuts, int place,
		     struct guarded *g, struct read_out *o)
{
	struct mux_reader r;
	memset(&r, 0xa5, sizeof(r)); /* begin must initialise everything */
	mux_reader_begin(&r);
	o->headers = 0;
	o->plen = 0;
	o->bad = 0;
	o->why = "";
	size_t pos = 0;
	for (size_t i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : len;
		size_t n = to - pos;
		uint8_t *p;
		if (place == PLACE_GUARD) {
			p = g->end - n;
			if (n)
				memcpy(p, m + pos, n);
		} else {
			p = exact_copy(m + pos, n);
		}
		feed_piece(&r, n ? p : NULL, n, o);
		if (place != PLACE_GUARD)
			free(p);
		pos = to;
	}
	o->end = mux_reader_end(&r, &o->end_len);
	/* end is repeatable and does not disturb the reader */
	uint64_t again;
	if (mux_reader_end(&r, &again) != o->end || again != o->end_len)
		out_bad(o, "end not repeatable");
	if (mux_reader_end(&r, NULL) != o->end)
		out_bad(o, "end with NULL");
}

static int check_read(const uint8_t *m, size_t len, const struct read_out *o)
{
	int bad = test_failures_in_case;
	CHECK(!o->bad);
	if (o->bad)
		printf("#   %s\n", o->why);
	if (len < MUX_HEADER_LEN) {
		CHECK_EQ(o->headers, 0);
		CHECK_EQ(o->plen, 0);
		CHECK_EQ(o->end, 0);
		CHECK_EQ(o->end_len, 0);
	} else {
		struct mux_header h;
		mux_decode_header(m, &h);
		CHECK_EQ(o->headers, 1);
		CHECK(o->h.version == h.version && o->h.type == h.type && o->h.dst == h.dst &&
		      o->h.src == h.src && o->h.length == h.length);
		CHECK_EQ(o->plen, len - MUX_HEADER_LEN);
		CHECK(o->plen == 0 || memcmp(o->payload, m + MUX_HEADER_LEN, o->plen) == 0);
		CHECK_EQ(o->end, 1);
		CHECK_EQ(o->end_len, len - MUX_HEADER_LEN);
	}
	return test_failures_in_case == bad;
}

/* Read m whole, split in two at every offset, in three at every pair of
 * offsets (messages up to 64 bytes), one byte at a time, with empty
 * pieces, and in random pieces; heap copies and guard page. */
static void read_all_ways(const char *name, const uint8_t *m, size_t len)
{
	static struct read_out o;
	struct guarded g;
	guard_init(&g, len);
	size_t *cuts = malloc((2 * len + 2) * sizeof(*cuts));
	if (!cuts)
		abort();
	for (int place = PLACE_HEAP; place <= PLACE_GUARD; place++) {
		const char *pl = place == PLACE_GUARD ? "guard" : "heap";
		read_cut(m, len, NULL, 0, place, &g, &o);
		if (!check_read(m, len, &o)) {
			printf("#   in \"%s\" whole (%s)\n", name, pl);
			goto out;
		}
		for (size_t i = 0; i <= len; i++) {
			cuts[0] = i;
			read_cut(m, len, cuts, 1, place, &g, &o);
			if (!check_read(m, len, &o)) {
				printf("#   in \"%s\" split %zu (%s)\n", name, i, pl);
				goto out;
			}
			for (size_t j = i; len <= 64 && j <= len; j++) {
				cuts[1] = j;
				read_cut(m, len, cuts, 2, place, &g, &o);
				if (!check_read(m, len, &o)) {
					printf("#   in \"%s\" split %zu,%zu (%s)\n", name, i, j, pl);
					goto out;
				}
			}
		}
		/* bytewise, with an empty piece before every byte */
		for (size_t i = 0; i < len; i++) {
			cuts[2 * i] = i;
			cuts[2 * i + 1] = i;
		}
		read_cut(m, len, cuts, 2 * len, place, &g, &o);
		if (!check_read(m, len, &o)) {
			printf("#   in \"%s\" bytewise (%s)\n", name, pl);
			goto out;
		}
		uint64_t rng = 0x1234567ULL + len;
		for (int r = 0; r < 8; r++) {
			size_t n = 0, at = 0;
			while (at < len) {
				at += (size_t)(rng_next(&rng) % 40);
				if (at > len)
					at = len;
				cuts[n++] = at;
			}
			read_cut(m, len, cuts, n, place, &g, &o);
			if (!check_read(m, len, &o)) {
				printf("#   in \"%s\" random %d (%s)\n", name, r, pl);
				goto out;
			}
		}
	}
out:
	free(cuts);
	guard_free(&g);
}

TEST(test_reader_examples)
{
	for (size_t i = 0; i < NEXAMPLES; i++)
		read_all_ways(examples[i].name, examples[i].bytes, examples[i].nbytes);
}

TEST(test_reader_short_messages)
{
	/* Shorter than a header: no HEADER event, end() returns 0. */
	for (size_t n = 0; n < MUX_HEADER_LEN; n++)
		read_all_ways("short", examples[8].bytes, n);
	/* Exactly a header. */
	read_all_ways("header only", examples[8].bytes, 16);
}

TEST(test_reader_length_mismatch)
{
	/* The length field is reported but the real remainder counts. */
	uint8_t m[64];
	const uint32_t stated[] = { 0, 1, 5, 100, 0xffffffffu };
	const size_t real[] = { 0, 3, 5, 10, 48 };
	for (size_t i = 0; i < sizeof(stated) / sizeof(stated[0]); i++) {
		for (size_t k = 0; k < sizeof(real) / sizeof(real[0]); k++) {
			mux_encode_header(m, MUX_DATA, 7, 7, stated[i]);
			for (size_t b = 0; b < real[k]; b++)
				m[16 + b] = (uint8_t)(b + 'a');
			read_all_ways("mismatch", m, 16 + real[k]);
			struct read_out *o = malloc(sizeof(*o));
			if (!o)
				abort();
			read_cut(m, 16 + real[k], NULL, 0, PLACE_HEAP, NULL, o);
			CHECK_EQ(o->h.length, stated[i]);
			CHECK_EQ(o->end_len, real[k]);
			free(o);
		}
	}
}

TEST(test_reader_payload_streaming)
{
	/* A 100 000-byte payload: spans point into the pieces, no copy. */
	size_t len = 16 + 100000;
	uint8_t *m = malloc(len);
	if (!m)
		abort();
	mux_encode_header(m, MUX_DATA, 1, 2, 100000);
	for (size_t i = 16; i < len; i++)
		m[i] = (uint8_t)(i * 131 >> 3);
	static struct read_out o;
	struct guarded g;
	guard_init(&g, len);
	/* every split within the header region and near the end, a stride elsewhere */
	for (size_t i = 0; i <= len; i++) {
		if (!(i < 64 || i + 64 > len || i % 997 == 0))
			continue;
		read_cut(m, len, &i, 1, PLACE_HEAP, &g, &o);
		if (!check_read(m, len, &o)) {
			printf("#   split %zu\n", i);
			break;
		}
	}
	size_t *cuts = malloc(len * sizeof(*cuts));
	if (!cuts)
		abort();
	for (size_t i = 0; i < len; i++)
		cuts[i] = i + 1;
	read_cut(m, len, cuts, len - 1, PLACE_GUARD, &g, &o);
	CHECK(check_read(m, len, &o));
	uint64_t rng = 99;
	size_t n = 0, at = 0;
	while (at < len) {
		at += 1 + (size_t)(rng_next(&rng) % 5000);
		if (at > len)
			at = len;
		cuts[n++] = at;
	}
	read_cut(m, len, cuts, n, PLACE_GUARD, &g, &o);
	CHECK(check_read(m, len, &o));
	free(cuts);
	guard_free(&g);
	free(m);
}

TEST(test_reader_reuse)
{
	struct mux_reader r;
	int ev;
	const uint8_t *data;
	size_t dlen;
	uint64_t plen;
	mux_reader_begin(&r);
	/* A message cut off mid-header, then a new one: begin forgets it. */
	CHECK_EQ(mux_reader_feed(&r, examples[2].bytes, 10, &ev, &data, &dlen), 10);
	CHECK_EQ(ev, MUX_RD_NONE);
	CHECK_EQ(r.hlen, 10);
	CHECK_EQ(mux_reader_end(&r, &plen), 0);
	mux_reader_begin(&r);
	CHECK_EQ(mux_reader_feed(&r, examples[8].bytes, 35, &ev, &data, &dlen), 16);
	CHECK_EQ(ev, MUX_RD_HEADER);
	CHECK_EQ(r.header.type, MUX_CLOSE);
	CHECK_EQ(r.header.src, 0);
	CHECK(data == NULL && dlen == 0);
	CHECK_EQ(mux_reader_feed(&r, examples[8].bytes + 16, 19, &ev, &data, &dlen), 19);
	CHECK_EQ(ev, MUX_RD_PAYLOAD);
	CHECK(data == examples[8].bytes + 16);
	CHECK_EQ(dlen, 19);
	CHECK_EQ(mux_reader_feed(&r, NULL, 0, &ev, &data, &dlen), 0);
	CHECK_EQ(ev, MUX_RD_NONE);
	CHECK_EQ(mux_reader_end(&r, &plen), 1);
	CHECK_EQ(plen, 19);
	mux_reader_begin(&r);
	CHECK_EQ(mux_reader_end(&r, &plen), 0);
	CHECK_EQ(plen, 0);
	CHECK_EQ(r.payload, 0);
	CHECK_EQ(r.hlen, 0);
}

/* ---- combined: WebSocket frames -> ws_decoder -> mux_reader ---- */

struct logbuf {
	char s[8192];
	size_t n;
	int bad;
};

static void logf_(struct logbuf *l, const char *fmt, unsigned long long a, unsigned long long b)
{
	if (l->n < sizeof(l->s)) {
		int k = snprintf(l->s + l->n, sizeof(l->s) - l->n, fmt, a, b);
		if (k > 0)
			l->n += (size_t)k;
	}
	if (l->n >= sizeof(l->s)) {
		l->n = sizeof(l->s) - 1;
		l->bad = 1;
	}
}

static void log_hex(struct logbuf *l, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		logf_(l, "%02llx", p[i], 0);
}

struct conn {
	struct ws_decoder d;
	struct mux_reader r;
	uint8_t payload[4096];
	size_t plen;
	int headers;
};

/* One ws event into the reader; the message log line is written at END. */
static void on_event(struct conn *c, const struct ws_event *ev, struct logbuf *l)
{
	switch (ev->type) {
	case WS_EV_DATA:
	case WS_EV_MESSAGE_END:
		if (ev->message_start) {
			mux_reader_begin(&c->r);
			c->plen = 0;
			c->headers = 0;
		}
		for (size_t off = 0; off < ev->len;) {
			int mev;
			const uint8_t *data;
			size_t dlen;
			size_t k = mux_reader_feed(&c->r, ev->data + off, ev->len - off, &mev, &data, &dlen);
			if (k == 0) {
				l->bad = 1;
				break;
			}
			if (mev == MUX_RD_HEADER)
				c->headers++;
			if (mev == MUX_RD_PAYLOAD) {
				if (c->plen + dlen > sizeof(c->payload)) {
					l->bad = 1;
					break;
				}
				memcpy(c->payload + c->plen, data, dlen);
				c->plen += dlen;
			}
			off += k;
		}
		if (ev->type == WS_EV_MESSAGE_END) {
			uint64_t plen;
			if (mux_reader_end(&c->r, &plen)) {
				const struct mux_header *h = &c->r.header;
				logf_(l, "msg v=%llu t=%llu ", h->version, h->type);
				logf_(l, "d=%llu s=%llu ", h->dst, h->src);
				logf_(l, "l=%llu headers=%llu payload=", h->length, (unsigned long long)c->headers);
				log_hex(l, c->payload, c->plen);
				logf_(l, " plen=%llu\n", plen, 0);
				if (plen != c->plen)
					l->bad = 1;
			} else {
				logf_(l, "short headers=%llu\n", (unsigned long long)c->headers, 0);
			}
		}
		break;
	case WS_EV_PING:
	case WS_EV_PONG:
		logf_(l, ev->type == WS_EV_PING ? "ping " : "pong ", 0, 0);
		log_hex(l, ev->data, ev->len);
		logf_(l, "\n", 0, 0);
		break;
	case WS_EV_CLOSE:
		logf_(l, "close %llu\n", ev->close_code, 0);
		break;
	default:
		break;
	}
}

/* Feed s[0..len) to a server-side decoder in a growing receive buffer,
 * cut at `split` (0 = whole) or one byte at a time. */
static void run_conn(const uint8_t *s, size_t len, size_t split, int bytewise, struct logbuf *l)
{
	static struct conn c;
	ws_decoder_init(&c.d, 1, 0);
	mux_reader_begin(&c.r);
	c.plen = 0;
	l->n = 0;
	l->s[0] = '\0';
	l->bad = 0;
	uint8_t *hold = malloc(len);
	if (!hold)
		abort();
	size_t nhold = 0, pos = 0;
	while (pos < len) {
		size_t piece = bytewise ? 1 : split > pos ? split - pos : len - pos;
		size_t n = nhold + piece;
		uint8_t *buf = malloc(n);
		if (!buf)
			abort();
		memcpy(buf, hold, nhold);
		memcpy(buf + nhold, s + pos, piece);
		pos += piece;
		size_t off = 0;
		for (;;) {
			struct ws_event ev;
			int rc = ws_decoder_next(&c.d, buf + off, n - off, &ev);
			if (rc < 0) {
				logf_(l, "error %llu\n", ev.error_code, 0);
				pos = len;
				break;
			}
			on_event(&c, &ev, l);
			if (rc == 0 && ev.type == WS_EV_NONE)
				break;
			off += (size_t)rc;
		}
		nhold = n - off;
		memcpy(hold, buf + off, nhold);
		free(buf);
	}
	if (nhold)
		logf_(l, "left %llu\n", nhold, 0);
	free(hold);
}

struct sb {
	uint8_t p[2048];
	size_t len;
};

static void sb_frame(struct sb *b, int fin, int op, const void *pl, size_t n, const uint8_t *mask)
{
	if (b->len + n + WS_MAX_FRAME_HEADER > sizeof(b->p))
		abort();
	b->len += ws_encode_header(b->p + b->len, fin, op, n, mask);
	if (n)
		memcpy(b->p + b->len, pl, n);
	if (mask)
		ws_unmask(b->p + b->len, n, mask, 0);
	b->len += n;
}

TEST(test_ws_to_mux)
{
	static const uint8_t m1[4] = { 0x5a, 0xc3, 0x00, 0x9e }, m2[4] = { 0x01, 0x80, 0x7f, 0xff };
	static struct sb b;
	b.len = 0;
	const uint8_t *item4 = examples[3].bytes;
	/* §2.11 item 4 as the Node client sends it, a ping in between. */
	sb_frame(&b, 0, WS_OP_BINARY, item4, 16, m1);
	CHECK_MEM(b.p, "\x02\x90", 2);
	sb_frame(&b, 1, WS_OP_PING, "keep", 4, m2);
	sb_frame(&b, 1, WS_OP_CONT, item4 + 16, 2, m2);
	/* item 2 (ACK) in a single masked frame */
	sb_frame(&b, 1, WS_OP_BINARY, examples[1].bytes, 16, m1);
	/* item 7 in three fragments that cut the header, with a pong */
	sb_frame(&b, 0, WS_OP_BINARY, examples[8].bytes, 10, m1);
	sb_frame(&b, 1, WS_OP_PONG, "", 0, m1);
	sb_frame(&b, 0, WS_OP_CONT, examples[8].bytes + 10, 10, m2);
	sb_frame(&b, 1, WS_OP_CONT, examples[8].bytes + 20, 15, m1);
	/* a short message, an empty one, an empty-fragment header-only one */
	sb_frame(&b, 1, WS_OP_BINARY, "short", 5, m2);
	sb_frame(&b, 1, WS_OP_BINARY, "", 0, m2);
	sb_frame(&b, 0, WS_OP_BINARY, "", 0, m2);
	sb_frame(&b, 0, WS_OP_CONT, examples[4].bytes, 16, m1);
	sb_frame(&b, 1, WS_OP_CONT, "", 0, m2);
	/* stated length 100, real payload 3 */
	uint8_t mm[19];
	mux_encode_header(mm, MUX_DATA, 7, 7, 100);
	memcpy(mm + 16, "abc", 3);
	sb_frame(&b, 1, WS_OP_BINARY, mm, 19, m1);
	/* then a close */
	sb_frame(&b, 1, WS_OP_CLOSE, "\x03\xe8", 2, m2);

	const char *want =
		"ping 6b656570\n"
		"msg v=2 t=1 d=7 s=7 l=2 headers=1 payload=4f4b plen=2\n"
		"msg v=2 t=3 d=7 s=7 l=0 headers=1 payload= plen=0\n"
		"pong \n"
		"msg v=2 t=4 d=7 s=0 l=19 headers=1 payload=4552525f57534d5f4e4f5f4348414e4e454c53 plen=19\n"
		"short headers=0\n"
		"short headers=0\n"
		"msg v=2 t=5 d=7 s=7 l=0 headers=1 payload= plen=0\n"
		"msg v=2 t=1 d=7 s=7 l=100 headers=1 payload=616263 plen=3\n"
		"close 1000\n";

	static struct logbuf l;
	int bad = test_failures_in_case;
	for (size_t k = 0; k <= b.len + 1; k++) {
		run_conn(b.p, b.len, k == b.len + 1 ? 0 : k, k == b.len + 1, &l);
		CHECK(!l.bad);
		CHECK_STR(l.s, want);
		if (test_failures_in_case != bad) {
			printf("#   at split %zu of %zu\n", k, b.len);
			break;
		}
	}

	/* An unmasked frame from the client ends it with 1002. */
	size_t good = b.len - 8; /* drop the close frame */
	b.len = good;
	sb_frame(&b, 1, WS_OP_BINARY, examples[0].bytes, 16, NULL);
	run_conn(b.p, b.len, 0, 0, &l);
	CHECK(strstr(l.s, "error 1002\n") != NULL);
	CHECK(strstr(l.s, "close") == NULL);
}

int main(void)
{
	RUN(test_examples_encode_decode);
	RUN(test_examples_ws_framing);
	RUN(test_reader_examples);
	RUN(test_reader_short_messages);
	RUN(test_reader_length_mismatch);
	RUN(test_reader_payload_streaming);
	RUN(test_reader_reuse);
	RUN(test_ws_to_mux);
	return test_done();
}
