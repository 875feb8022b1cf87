/*
 * tunnel-client.c - small, fast ws-multiplex v2 tunnel client for the
 * exposrd tunnel benchmark (tests/bench/tunnel.sh), built from the
 * project's own code (build/libexposrd.a).
 *
 *   tunnel-client --api http://127.0.0.1:PORT --account ID --tunnel ID
 *                 --target 127.0.0.1:PORT [--connections N] [--tunnels N]
 *
 * Setup (blocking HTTP/1.1, one connection per call): GET the account's
 * API token, then for each tunnel PUT it and PATCH target, HTTP ingress
 * and WS transport one by one as the exposr client does.  With
 * --tunnels N the tunnels are ID-1 .. ID-N instead of ID.  For each of the
 * --connections N (default 1) WebSocket connections of a tunnel: GET the
 * tunnel for a fresh transport.ws.url, connect, upgrade (random key,
 * the 101 and Sec-WebSocket-Accept checked).  Prints READY when every
 * connection is up, then runs the event loop (lib/loop.h) as the
 * ws-multiplex client (spec/transports.md §2.5 "Accepting", §2.6, §2.10):
 *
 *   OPEN dst=0 src=R   allocate L (lockstep counter from 1, +1 per OPEN,
 *                      must equal R), reply ACK dst=R src=L, connect to the
 *                      target (nonblocking), pipe both ways
 *   DATA               streamed straight to the target socket; what it
 *                      does not take is queued; PAUSE above 64 KiB queued,
 *                      RESUME below 16 KiB
 *   target -> server   one DATA (<= 65519 bytes) per masked binary frame,
 *                      read straight into the send buffer, one read per
 *                      channel and loop iteration; not read while the
 *                      server has PAUSEd the channel or the send buffer
 *                      is above 512 KiB (until it is below 128 KiB)
 *   CLOSE dst=L src=S  ACK dst=S src=L if S != 0, flush what is queued to
 *                      the target, then close it
 *   target EOF/error,
 *   connect failure    CLOSE dst=R src=L without payload
 *   ping               pong with the same payload
 *
 * A WebSocket connection that closes or fails ends the program (exit 1):
 * for a benchmark that is an error.  SIGTERM/SIGINT print counters to
 * stderr and exit 0.
 */
#include "buf.h"
#include "err.h"
#include "json.h"
#include "loop.h"
#include "mux.h"
#include "net.h"
#include "url.h"
#include "base64.h"
#include "ws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define DATA_MAX (65535u - MUX_HEADER_LEN)            /* WS payload fits the 16-bit length form */
#define FRAME_ROOM (8u + MUX_HEADER_LEN + DATA_MAX)   /* masked header + WSM header + payload */
#define TGT_HIGH (64u << 10)      /* queued toward a target: PAUSE above */
#define TGT_LOW (16u << 10)       /* RESUME below */
#define TGT_MAX (64u << 20)       /* hard cap per channel: close it above */
#define WS_OUT_HIGH (512u << 10)  /* send buffer: stop reading targets above */
#define WS_OUT_LOW (128u << 10)   /* and read again below */
#define WS_OUT_MAX (64u << 20)
#define WS_IN_CHUNK (128u << 10)
#define WS_IN_MAX (1u << 20)
#define HELD_MAX (8u << 20)       /* all channels of a connection: stop reading the WS above */
#define TABLE_SIZE 64u            /* channel hash buckets (power of 2) */

struct conn;

struct chan {
	struct conn *c;
	struct chan *hnext;
	uint32_t local, remote;
	int fd, events;
	int in_table;
	int connecting;
	int peer_paused;   /* the server sent PAUSE: do not read the target */
	int we_paused;     /* we sent PAUSE */
	int draining;      /* the server closed: flush, then close the target */
	struct buf out;    /* bytes the target has not taken yet */
};

struct conn {
	int fd, events;
	char name[160];
	struct buf in, out;
	struct ws_decoder dec;
	struct mux_reader rd;
	struct chan *cur;          /* DATA destination of the message being read */
	struct chan *tab[TABLE_SIZE];
	uint32_t next;             /* lockstep channel counter */
	size_t held;               /* bytes queued toward this connection's targets */
	int throttled;             /* send buffer above WS_OUT_HIGH */
	int stalled;               /* input processing stopped at HELD_MAX */
	int flush_scheduled;
};

static struct {
	struct loop *loop;
	struct sockaddr_in target;
	uint64_t rng;
	unsigned long opens, closes_rx, closes_tx, acks_tx, mismatches, connect_fail;
	unsigned long pause_tx, pause_rx, resume_tx, pings;
	unsigned long long bytes_down, bytes_up;
	/* setup */
	char api_host[URL_HOST_MAX];
	int api_port;
	char token[256];
} G;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("tunnel-client: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static uint32_t rnd32(void)
{
	/* xorshift64*: masking keys only need to be unpredictable enough */
	G.rng ^= G.rng >> 12;
	G.rng ^= G.rng << 25;
	G.rng ^= G.rng >> 27;
	return (uint32_t)((G.rng * 2685821657736338717ull) >> 32);
}

static void rnd_bytes(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rnd32();
}

/* ------------------------------------------------------------ sending */

static void conn_flush(struct conn *c);
static void chan_update(struct chan *ch);

static void flush_cb(void *arg)
{
	struct conn *c = arg;
	c->flush_scheduled = 0;
	conn_flush(c);
}

/* Write once per loop iteration, after every callback had its say. */
static void schedule_flush(struct conn *c)
{
	if (!c->flush_scheduled) {
		if (loop_defer(G.loop, flush_cb, c) != 0)
			die("out of memory");
		c->flush_scheduled = 1;
	}
}

/* One masked frame holding p[0..n). */
static void send_frame(struct conn *c, int opcode, const void *p, size_t n)
{
	uint8_t mask[4];
	uint32_t m = rnd32();
	memcpy(mask, &m, 4);
	uint8_t h[WS_MAX_FRAME_HEADER];
	size_t hl = ws_encode_header(h, 1, opcode, n, mask);
	uint8_t *w = (uint8_t *)buf_reserve(&c->out, hl + n, NULL);
	if (!w)
		die("%s: send buffer full", c->name);
	memcpy(w, h, hl);
	if (n)
		memcpy(w + hl, p, n);
	ws_unmask(w + hl, n, mask, 0);
	buf_commit(&c->out, hl + n);
	schedule_flush(c);
}

static void send_mux(struct conn *c, uint16_t type, uint32_t dst, uint32_t src, const char *text)
{
	uint8_t m[MUX_HEADER_LEN + 64];
	size_t tl = text ? strlen(text) : 0;
	if (tl > 64)
		tl = 64;
	mux_encode_header(m, type, dst, src, (uint32_t)tl);
	if (tl)
		memcpy(m + MUX_HEADER_LEN, text, tl);
	send_frame(c, WS_OP_BINARY, m, MUX_HEADER_LEN + tl);
}

static void conn_update(struct conn *c)
{
	int ev = c->stalled ? 0 : LOOP_READ;
	if (buf_len(&c->out) > 0)
		ev |= LOOP_WRITE;
	if (ev != c->events) {
		loop_set_events(G.loop, c->fd, ev);
		c->events = ev;
	}
}

static void conn_throttle(struct conn *c, int on)
{
	if (c->throttled == on)
		return;
	c->throttled = on;
	for (size_t i = 0; i < TABLE_SIZE; i++)
		for (struct chan *ch = c->tab[i]; ch; ch = ch->hnext)
			chan_update(ch);
}

static void conn_flush(struct conn *c)
{
	while (buf_len(&c->out) > 0) {
		long w = net_write(c->fd, buf_data(&c->out), buf_len(&c->out));
		if (w < 0)
			die("%s: write to the server failed: %s", c->name, err_str((int)w));
		if (w == 0)
			break;
		buf_consume(&c->out, (size_t)w);
	}
	if (c->throttled && buf_len(&c->out) < WS_OUT_LOW)
		conn_throttle(c, 0);
	else if (!c->throttled && buf_len(&c->out) > WS_OUT_HIGH)
		conn_throttle(c, 1);
	conn_update(c);
}

/* ------------------------------------------------------------ channels */

static struct chan *chan_find(struct conn *c, uint32_t local)
{
	for (struct chan *ch = c->tab[local & (TABLE_SIZE - 1)]; ch; ch = ch->hnext)
		if (ch->local == local)
			return ch;
	return NULL;
}

static void table_remove(struct chan *ch)
{
	if (!ch->in_table)
		return;
	struct chan **pp = &ch->c->tab[ch->local & (TABLE_SIZE - 1)];
	while (*pp != ch)
		pp = &(*pp)->hnext;
	*pp = ch->hnext;
	ch->in_table = 0;
	if (ch->c->cur == ch)
		ch->c->cur = NULL;
}

static void resume_cb(void *arg);

static void chan_free(struct chan *ch)
{
	struct conn *c = ch->c;
	table_remove(ch);
	if (c->cur == ch)
		c->cur = NULL;
	if (ch->fd >= 0) {
		loop_del(G.loop, ch->fd);
		close(ch->fd);
	}
	c->held -= buf_len(&ch->out);
	buf_free(&ch->out);
	free(ch);
	if (c->stalled && c->held <= HELD_MAX && loop_defer(G.loop, resume_cb, c) != 0)
		die("out of memory");
}

/* Our side ends the channel (target EOF, error, failed connect). */
static void chan_close(struct chan *ch)
{
	if (!ch->draining) {
		send_mux(ch->c, MUX_CLOSE, ch->remote, ch->local, NULL);
		G.closes_tx++;
	}
	chan_free(ch);
}

static void chan_update(struct chan *ch)
{
	if (ch->fd < 0)
		return;
	int ev;
	if (ch->connecting) {
		ev = LOOP_WRITE;
	} else {
		ev = buf_len(&ch->out) > 0 ? LOOP_WRITE : 0;
		if (!ch->draining && !ch->peer_paused && !ch->c->throttled)
			ev |= LOOP_READ;
	}
	if (ev != ch->events) {
		loop_set_events(G.loop, ch->fd, ev);
		ch->events = ev;
	}
}

/* Write queued bytes to the target.  Returns -1 if the channel is gone. */
static int chan_flush(struct chan *ch)
{
	struct conn *c = ch->c;
	while (buf_len(&ch->out) > 0) {
		long w = net_write(ch->fd, buf_data(&ch->out), buf_len(&ch->out));
		if (w < 0) {
			chan_close(ch);
			return -1;
		}
		if (w == 0)
			break;
		buf_consume(&ch->out, (size_t)w);
		c->held -= (size_t)w;
	}
	if (ch->we_paused && buf_len(&ch->out) < TGT_LOW && !ch->draining) {
		send_mux(c, MUX_RESUME, ch->remote, ch->local, NULL);
		ch->we_paused = 0;
		G.resume_tx++;
	}
	if (buf_len(&ch->out) == 0)
		buf_shrink(&ch->out, 0);
	if (c->stalled && c->held <= HELD_MAX && loop_defer(G.loop, resume_cb, c) != 0)
		die("out of memory");
	if (ch->draining && buf_len(&ch->out) == 0) {
		chan_free(ch);
		return -1;
	}
	return 0;
}

/* Payload of a DATA message from the server: straight to the target when
 * nothing is queued, the rest queued. */
static void chan_deliver(struct chan *ch, const uint8_t *p, size_t n)
{
	struct conn *c = ch->c;
	G.bytes_down += n;
	if (!ch->connecting && buf_len(&ch->out) == 0) {
		long w = net_write(ch->fd, p, n);
		if (w < 0) {
			chan_close(ch);
			return;
		}
		p += w;
		n -= (size_t)w;
		if (n == 0)
			return;
	}
	if (buf_append(&ch->out, p, n) != 0) {
		fprintf(stderr, "tunnel-client: %s: channel %u: more than %u bytes queued, closed\n", c->name,
			ch->local, TGT_MAX);
		chan_close(ch);
		return;
	}
	c->held += n;
	if (!ch->we_paused && buf_len(&ch->out) > TGT_HIGH) {
		send_mux(c, MUX_PAUSE, ch->remote, ch->local, NULL);
		ch->we_paused = 1;
		G.pause_tx++;
	}
	chan_update(ch);
}

/* Read the target straight into the send buffer as one framed DATA.
 * One read per wakeup and no throttling decision here: every readable
 * channel gets its turn in a loop iteration, whatever its place in the
 * poll set (fairness between the channels of a connection).  Returns 1
 * after a read, 0 when nothing was there, -1 when the channel is gone. */
static int chan_read(struct chan *ch)
{
	struct conn *c = ch->c;
	uint8_t *p = (uint8_t *)buf_reserve(&c->out, FRAME_ROOM, NULL);
	if (!p) {
		conn_throttle(c, 1);
		return 0;
	}
	long n = net_read(ch->fd, p + 8 + MUX_HEADER_LEN, DATA_MAX);
	if (n == 0)
		return 0;
	if (n < 0) {
		chan_close(ch);
		return -1;
	}
	size_t plen = MUX_HEADER_LEN + (size_t)n;
	uint8_t mask[4], h[WS_MAX_FRAME_HEADER];
	uint32_t m = rnd32();
	memcpy(mask, &m, 4);
	size_t hl = ws_encode_header(h, 1, WS_OP_BINARY, plen, mask); /* 6 or 8 */
	if (hl != 8)
		memmove(p + hl + MUX_HEADER_LEN, p + 8 + MUX_HEADER_LEN, (size_t)n);
	memcpy(p, h, hl);
	mux_encode_header(p + hl, MUX_DATA, ch->remote, ch->local, (uint32_t)n);
	ws_unmask(p + hl, plen, mask, 0);
	buf_commit(&c->out, hl + plen);
	G.bytes_up += (unsigned long long)n;
	schedule_flush(c); /* decides about throttling once all channels had their turn */
	return 1;
}

static void chan_io(struct loop *loop, int fd, int events, void *arg)
{
	struct chan *ch = arg;
	(void)loop;
	if (ch->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
			G.connect_fail++;
			chan_close(ch);
			return;
		}
		ch->connecting = 0;
		events |= LOOP_WRITE;
	}
	if ((events & LOOP_WRITE) && chan_flush(ch) < 0)
		return;
	/* An error or hangup is reported whatever we asked for: read to find
	 * the end even while paused. */
	int may_read = !ch->draining && ((!ch->peer_paused && !ch->c->throttled) || (events & LOOP_ERROR));
	if (may_read && (events & (LOOP_READ | LOOP_ERROR)) && chan_read(ch) < 0)
		return;
	chan_update(ch);
}

/* ------------------------------------------------------------ WSM input */

static void on_open(struct conn *c, const struct mux_header *h)
{
	if (h->src == 0)
		return; /* would be a broken mapping (§2.8): ignore */
	uint32_t local = c->next++;
	if (c->next == 0)
		c->next = 1;
	if (local != h->src && G.mismatches++ == 0)
		fprintf(stderr, "tunnel-client: %s: lockstep broken: OPEN src=%u, our channel %u\n", c->name,
			h->src, local);
	struct chan *ch = calloc(1, sizeof(*ch));
	if (!ch)
		die("out of memory");
	ch->c = c;
	ch->local = local;
	ch->remote = h->src;
	ch->fd = -1;
	buf_init(&ch->out, TGT_MAX);
	size_t b = local & (TABLE_SIZE - 1);
	ch->hnext = c->tab[b];
	c->tab[b] = ch;
	ch->in_table = 1;
	G.opens++;
	/* ACK first, before the target connect is known to work (§2.5). */
	send_mux(c, MUX_ACK, ch->remote, ch->local, NULL);
	G.acks_tx++;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || net_set_nonblock(fd) != 0) {
		if (fd >= 0)
			close(fd);
		G.connect_fail++;
		chan_close(ch);
		return;
	}
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ch->fd = fd;
	if (connect(fd, (struct sockaddr *)&G.target, sizeof(G.target)) == 0) {
		ch->connecting = 0;
	} else if (errno == EINPROGRESS) {
		ch->connecting = 1;
	} else {
		G.connect_fail++;
		chan_close(ch);
		return;
	}
	ch->events = -1;
	if (loop_add(G.loop, fd, 0, chan_io, ch) != 0)
		die("out of memory");
	chan_update(ch);
}

static void on_close(struct conn *c, const struct mux_header *h)
{
	G.closes_rx++;
	if (h->src) {
		send_mux(c, MUX_ACK, h->src, h->dst, NULL);
		G.acks_tx++;
	}
	struct chan *ch = chan_find(c, h->dst);
	if (!ch)
		return;
	/* Deliver what is queued first, then close the target (§2.5). */
	table_remove(ch);
	ch->draining = 1;
	if (ch->fd < 0 || (!ch->connecting && buf_len(&ch->out) == 0))
		chan_free(ch);
	else
		chan_update(ch);
}

/* A message for a channel we do not have.  Numbers are never reused, so
 * one below the counter is a channel that closed: drop silently. */
static void on_unknown(struct conn *c, const struct mux_header *h)
{
	if (h->src && (h->dst == 0 || h->dst >= c->next))
		send_mux(c, MUX_CLOSE, h->src, 0, "ERR_WSM_CHANNEL_NOT_OPEN");
}

static void on_mux_header(struct conn *c)
{
	const struct mux_header *h = &c->rd.header;
	c->cur = NULL;
	if (h->version != MUX_VERSION)
		die("%s: ws-multiplex version %u from the server", c->name, h->version);
	if (h->type != MUX_DATA)
		return;
	struct chan *ch = chan_find(c, h->dst);
	if (ch && ch->remote == h->src)
		c->cur = ch;
	else if (ch)
		G.mismatches++;
}

static void on_mux_end(struct conn *c)
{
	uint64_t plen = 0;
	c->cur = NULL;
	if (!mux_reader_end(&c->rd, &plen))
		return; /* shorter than a header: ignored (§2.8) */
	const struct mux_header *h = &c->rd.header;
	struct chan *ch;
	switch (h->type) {
	case MUX_OPEN:
		on_open(c, h);
		break;
	case MUX_CLOSE:
		on_close(c, h);
		break;
	case MUX_DATA:
		if (!chan_find(c, h->dst))
			on_unknown(c, h);
		break;
	case MUX_PAUSE:
	case MUX_RESUME:
		ch = chan_find(c, h->dst);
		if (!ch) {
			on_unknown(c, h);
			break;
		}
		ch->peer_paused = h->type == MUX_PAUSE;
		if (ch->peer_paused)
			G.pause_rx++;
		chan_update(ch);
		break;
	default: /* ACK (we never open), unknown types: ignored */
		break;
	}
}

static void on_ws_event(struct conn *c, const struct ws_event *ev)
{
	switch (ev->type) {
	case WS_EV_DATA: {
		if (ev->message_start)
			mux_reader_begin(&c->rd);
		const uint8_t *p = ev->data;
		size_t n = ev->len;
		while (n > 0) {
			int rev = MUX_RD_NONE;
			const uint8_t *data = NULL;
			size_t dlen = 0;
			size_t k = mux_reader_feed(&c->rd, p, n, &rev, &data, &dlen);
			if (rev == MUX_RD_HEADER)
				on_mux_header(c);
			else if (rev == MUX_RD_PAYLOAD && dlen && c->cur)
				chan_deliver(c->cur, data, dlen);
			if (k == 0)
				break;
			p += k;
			n -= k;
		}
		break;
	}
	case WS_EV_MESSAGE_END:
		if (ev->message_start)
			mux_reader_begin(&c->rd);
		on_mux_end(c);
		break;
	case WS_EV_PING:
		G.pings++;
		send_frame(c, WS_OP_PONG, ev->data, ev->len);
		break;
	case WS_EV_PONG:
		break;
	case WS_EV_CLOSE:
		die("%s: the server closed the WebSocket: %u %.*s", c->name, ev->close_code, (int)ev->len,
		    ev->data ? (const char *)ev->data : "");
	case WS_EV_NONE:
		break;
	}
}

static void conn_input(struct conn *c)
{
	for (;;) {
		if (c->held > HELD_MAX) {
			c->stalled = 1;
			break;
		}
		struct ws_event ev;
		memset(&ev, 0, sizeof(ev));
		int k = ws_decoder_next(&c->dec, (uint8_t *)buf_data(&c->in), buf_len(&c->in), &ev);
		if (k < 0)
			die("%s: WebSocket protocol error from the server (close code %u)", c->name, ev.error_code);
		if (k == 0 && ev.type == WS_EV_NONE)
			break;
		on_ws_event(c, &ev);
		buf_consume(&c->in, (size_t)k);
	}
	conn_update(c);
}

static void input_cb(void *arg)
{
	conn_input(arg);
}

static void resume_cb(void *arg)
{
	struct conn *c = arg;
	if (!c->stalled || c->held > HELD_MAX)
		return;
	c->stalled = 0;
	conn_input(c);
}

static void conn_io(struct loop *loop, int fd, int events, void *arg)
{
	struct conn *c = arg;
	(void)loop;
	if (events & LOOP_WRITE)
		conn_flush(c);
	if (!(events & (LOOP_READ | LOOP_ERROR)) || c->stalled)
		return;
	size_t avail;
	char *p = buf_reserve(&c->in, WS_IN_CHUNK, &avail);
	if (!p)
		die("%s: receive buffer full", c->name);
	long n = net_read(fd, p, avail);
	if (n == E_CLOSED)
		die("%s: the server closed the connection", c->name);
	if (n < 0)
		die("%s: read from the server failed: %s", c->name, err_str((int)n));
	if (n == 0)
		return;
	buf_commit(&c->in, (size_t)n);
	conn_input(c);
	if (buf_len(&c->in) == 0)
		buf_shrink(&c->in, WS_IN_CHUNK);
}

/* ------------------------------------------------------------ setup (blocking) */

static int tcp_connect(const char *host, int port)
{
	struct addrinfo hints, *res = NULL;
	char ps[16];
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(ps, sizeof(ps), "%d", port);
	if (getaddrinfo(host, ps, &hints, &res) != 0)
		die("cannot resolve %s", host);
	int fd = -1;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		die("cannot connect to %s:%d: %s", host, port, strerror(errno));
	struct timeval tv = { 10, 0 };
	int one = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write failed: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

/* One API call on its own connection (Connection: close).  Returns the
 * status; *body gets the NUL-terminated body (caller frees). */
static int api_call(const char *method, const char *path, const char *json, char **body)
{
	int fd = tcp_connect(G.api_host, G.api_port);
	struct buf b;
	buf_init(&b, 1u << 20);
	int rc = buf_appendf(&b, "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n", method, path,
			     G.api_host, G.api_port);
	if (G.token[0])
		rc |= buf_appendf(&b, "Authorization: Bearer %s\r\n", G.token);
	if (json)
		rc |= buf_appendf(&b, "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
				  strlen(json), json);
	else
		rc |= buf_appendf(&b, "\r\n");
	if (rc)
		die("out of memory");
	write_all(fd, buf_data(&b), buf_len(&b));
	buf_consume(&b, buf_len(&b));
	for (;;) {
		size_t avail;
		char *p = buf_reserve(&b, 4096, &avail);
		if (!p)
			die("%s %s: response too large", method, path);
		ssize_t n = read(fd, p, avail - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("%s %s: read failed: %s", method, path, strerror(errno));
		if (n == 0)
			break;
		buf_commit(&b, (size_t)n);
	}
	close(fd);
	buf_reserve(&b, 1, NULL);
	buf_data(&b)[buf_len(&b)] = '\0';
	int status = 0;
	char *s = buf_data(&b);
	char *eoh = strstr(s, "\r\n\r\n");
	if (sscanf(s, "HTTP/1.%*d %d", &status) != 1 || !eoh)
		die("%s %s: bad response", method, path);
	*body = strdup(eoh + 4);
	buf_free(&b);
	if (!*body)
		die("out of memory");
	return status;
}

/* The string at a path of object keys (NULL-terminated list), copied to out. */
static int json_path_str(const char *doc, char *out, size_t cap, ...)
{
	struct json_token toks[256];
	int n = json_parse(doc, strlen(doc), toks, 256, NULL);
	if (n < 1)
		return -1;
	int t = 0;
	va_list ap;
	va_start(ap, cap);
	for (const char *k; t >= 0 && (k = va_arg(ap, const char *)) != NULL;)
		t = json_obj_get(doc, toks, t, k);
	va_end(ap);
	if (t < 0 || toks[t].type != JSON_STRING)
		return -1;
	return json_str_decode(doc, &toks[t], out, cap) < 0 ? -1 : 0;
}

static void setup_tunnel(const char *id, const char *target_url)
{
	char path[512], json[512], *body;
	int st;
	snprintf(path, sizeof(path), "/v1/tunnel/%s", id);
	if ((st = api_call("PUT", path, "{}", &body)) / 100 != 2)
		die("PUT %s: %d %s", path, st, body);
	free(body);
	const char *patches[3] = { NULL, "{\"ingress\":{\"http\":{\"enabled\":true}}}",
				   "{\"transport\":{\"ws\":{\"enabled\":true}}}" };
	snprintf(json, sizeof(json), "{\"target\":{\"url\":\"%s\"}}", target_url);
	patches[0] = json;
	for (int i = 0; i < 3; i++) {
		if ((st = api_call("PATCH", path, patches[i], &body)) / 100 != 2)
			die("PATCH %s %s: %d %s", path, patches[i], st, body);
		free(body);
	}
}

/* GET the tunnel for a fresh endpoint URL, connect and upgrade. */
static struct conn *ws_connect(const char *id, int idx)
{
	char path[512], wsurl[URL_MAX], *body;
	snprintf(path, sizeof(path), "/v1/tunnel/%s", id);
	int st = api_call("GET", path, NULL, &body);
	if (st != 200 || json_path_str(body, wsurl, sizeof(wsurl), "transport", "ws", "url", (char *)NULL) != 0)
		die("GET %s: %d, no transport.ws.url: %s", path, st, body);
	free(body);
	struct url u;
	if (url_parse(wsurl, strlen(wsurl), &u) != 0 || strcmp(u.scheme, "ws") != 0)
		die("unusable endpoint URL %s", wsurl);
	int port = u.port ? u.port : 80;
	int fd = tcp_connect(u.host, port);

	uint8_t raw[16];
	char key[32], want[WS_ACCEPT_KEY_LEN + 1];
	rnd_bytes(raw, sizeof(raw));
	base64_encode(raw, sizeof(raw), key);
	if (ws_accept_key(key, strlen(key), want) != 0)
		die("ws_accept_key failed");
	char req[2048];
	int n = snprintf(req, sizeof(req),
			 "GET %s%s%s HTTP/1.1\r\nHost: %s:%d\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
			 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n",
			 u.path[0] ? u.path : "/", u.query[0] ? "?" : "", u.query, u.host, port, key);
	if (n < 0 || (size_t)n >= sizeof(req))
		die("endpoint URL too long");
	write_all(fd, req, (size_t)n);

	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		die("out of memory");
	snprintf(c->name, sizeof(c->name), "%s#%d", id, idx);
	buf_init(&c->in, WS_IN_MAX);
	buf_init(&c->out, WS_OUT_MAX);
	/* Read the 101 head; bytes after it (the server's first ping) stay in c->in. */
	char *eoh = NULL;
	while (!eoh) {
		size_t avail;
		char *p = buf_reserve(&c->in, 1024, &avail);
		if (!p || buf_len(&c->in) > 16384)
			die("%s: upgrade response head too large", c->name);
		ssize_t r = read(fd, p, avail - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("%s: no upgrade response: %s", c->name, r ? strerror(errno) : "EOF");
		buf_commit(&c->in, (size_t)r);
		buf_data(&c->in)[buf_len(&c->in)] = '\0';
		eoh = strstr(buf_data(&c->in), "\r\n\r\n");
	}
	char *head = buf_data(&c->in);
	size_t hlen = (size_t)(eoh + 4 - head);
	*eoh = '\0';
	if (strncmp(head, "HTTP/1.1 101", 12) != 0)
		die("%s: upgrade refused: %.200s", c->name, head);
	int accept_ok = 0;
	for (char *line = strstr(head, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
		char *l = line + 2;
		if (strncasecmp(l, "Sec-WebSocket-Accept:", 21) != 0)
			continue;
		l += 21;
		while (*l == ' ' || *l == '\t')
			l++;
		accept_ok = strncmp(l, want, WS_ACCEPT_KEY_LEN) == 0 &&
			    (l[WS_ACCEPT_KEY_LEN] == '\r' || l[WS_ACCEPT_KEY_LEN] == '\0' ||
			     l[WS_ACCEPT_KEY_LEN] == ' ');
	}
	if (!accept_ok)
		die("%s: missing or wrong Sec-WebSocket-Accept", c->name);
	buf_consume(&c->in, hlen);

	struct timeval tv = { 0, 0 };
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (net_set_nonblock(fd) != 0)
		die("nonblock: %s", strerror(errno));
	c->fd = fd;
	c->next = 1;
	c->events = -1;
	ws_decoder_init(&c->dec, 0 /* server frames are unmasked */, 0);
	mux_reader_begin(&c->rd);
	if (loop_add(G.loop, fd, LOOP_READ, conn_io, c) != 0)
		die("out of memory");
	conn_update(c);
	/* bytes that came with the 101 (the first ping) are handled once the loop runs */
	if (buf_len(&c->in) > 0 && loop_defer(G.loop, input_cb, c) != 0)
		die("out of memory");
	return c;
}

/* ------------------------------------------------------------ main */

static void on_signal(struct loop *loop, int signo, void *arg)
{
	(void)signo;
	(void)arg;
	loop_stop(loop);
}

static void usage(void)
{
	fprintf(stderr, "usage: tunnel-client --api http://127.0.0.1:PORT --account ID --tunnel ID\n"
			"                     --target 127.0.0.1:PORT [--connections N] [--tunnels N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *api = NULL, *account = NULL, *tunnel = NULL, *target = NULL;
	int nconn = 1, ntun = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (i + 1 >= argc)
			usage();
		const char *v = argv[++i];
		if (!strcmp(a, "--api"))
			api = v;
		else if (!strcmp(a, "--account"))
			account = v;
		else if (!strcmp(a, "--tunnel"))
			tunnel = v;
		else if (!strcmp(a, "--target"))
			target = v;
		else if (!strcmp(a, "--connections"))
			nconn = atoi(v);
		else if (!strcmp(a, "--tunnels"))
			ntun = atoi(v);
		else
			usage();
	}
	if (!api || !account || !tunnel || !target || nconn < 1 || ntun < 0)
		usage();
	signal(SIGPIPE, SIG_IGN);

	FILE *ur = fopen("/dev/urandom", "rb");
	if (!ur || fread(&G.rng, sizeof(G.rng), 1, ur) != 1)
		die("cannot read /dev/urandom");
	fclose(ur);
	G.rng |= 1;

	struct url u;
	if (url_parse(api, strlen(api), &u) != 0 || strcmp(u.scheme, "http") != 0 || !u.host[0])
		die("--api must be an http:// URL");
	snprintf(G.api_host, sizeof(G.api_host), "%s", u.host);
	G.api_port = u.port ? u.port : 80;

	char thost[64];
	int tport = 0;
	const char *colon = strrchr(target, ':');
	if (!colon || (size_t)(colon - target) >= sizeof(thost) || (tport = atoi(colon + 1)) <= 0 || tport > 65535)
		die("--target must be IPV4:PORT");
	memcpy(thost, target, (size_t)(colon - target));
	thost[colon - target] = '\0';
	G.target.sin_family = AF_INET;
	G.target.sin_port = htons((uint16_t)tport);
	if (inet_pton(AF_INET, thost, &G.target.sin_addr) != 1)
		die("--target must be IPV4:PORT");

	G.loop = loop_new();
	if (!G.loop)
		die("out of memory");

	char path[512], *body;
	snprintf(path, sizeof(path), "/v1/account/%s/token", account);
	int st = api_call("GET", path, NULL, &body);
	if (st / 100 != 2 || json_path_str(body, G.token, sizeof(G.token), "token", (char *)NULL) != 0)
		die("GET %s: %d %s", path, st, body);
	free(body);

	char target_url[128];
	snprintf(target_url, sizeof(target_url), "http://%s", target);
	int count = ntun ? ntun : 1;
	for (int t = 1; t <= count; t++) {
		char id[256];
		if (ntun)
			snprintf(id, sizeof(id), "%s-%d", tunnel, t);
		else
			snprintf(id, sizeof(id), "%s", tunnel);
		setup_tunnel(id, target_url);
		for (int k = 1; k <= nconn; k++)
			(void)ws_connect(id, k);
	}
	printf("READY %d tunnel(s) x %d connection(s)\n", count, nconn);
	fflush(stdout);

	(void)loop_signal(G.loop, SIGTERM, on_signal, NULL);
	(void)loop_signal(G.loop, SIGINT, on_signal, NULL);
	if (loop_run(G.loop) != 0)
		die("poll failed: %s", strerror(errno));
	fprintf(stderr,
		"tunnel-client: channels opened %lu, CLOSE rx %lu tx %lu, ACK tx %lu, lockstep mismatches %lu, "
		"target connect failures %lu, PAUSE tx %lu rx %lu, RESUME tx %lu, pings %lu, "
		"bytes to targets %llu, from targets %llu\n",
		G.opens, G.closes_rx, G.closes_tx, G.acks_tx, G.mismatches, G.connect_fail, G.pause_tx, G.pause_rx,
		G.resume_tx, G.pings, G.bytes_down, G.bytes_up);
	return 0;
}
