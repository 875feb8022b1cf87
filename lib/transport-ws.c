/* transport-ws.c - WebSocket transport: endpoint, ws-multiplex v2 session,
 * channels with flow control (spec/transports.md §2, §3).
 *
 * Memory per connection is bounded: receive buffer WS_IN_MAX, send buffer
 * WS_OUT_MAX, and bytes held for slow sinks WS_RX_BUDGET (reading the
 * socket stops above it).  Channels never queue outgoing bytes: a write is
 * refused (the ingress stops reading its client) until the channel is
 * open, not paused by the peer, and the socket has drained. */
#include "transport-ws.h"
#include "buf.h"
#include "config.h"
#include "err.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "mux.h"
#include "net.h"
#include "ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define WS_READ_CHUNK 65536
#define WS_CTRL_PAYLOAD_MAX 256       /* CLOSE reasons kept from the peer */
#define WS_CLOSE_LINGER_MS 1000       /* wait for the peer's close frame */
#define WS_OUT_LOW_WATER (64u << 10)  /* channels may write again below this */
#define WS_CHANNEL_BUCKETS_MIN 16

enum ch_state { CH_OPENING, CH_OPEN, CH_CLOSING, CH_DEAD };

struct ws_conn;

struct ws_channel {
	struct channel base;
	struct ws_conn *conn;
	struct ws_channel *hnext;      /* hash chain by local number */
	struct ws_channel *dead_next;  /* graveyard */
	uint32_t local, remote;
	enum ch_state state;
	struct loop_timer *timer;      /* open or close timeout */
	int in_table;
	int sink_gone;                 /* the sink closed its side: no callbacks */
	int peer_paused;               /* the peer sent PAUSE */
	int we_paused;                 /* we sent PAUSE */
	int want_writable;             /* a write was refused */
	int sink_blocked;              /* the sink took fewer bytes than offered */
	int resume_pending;            /* channel_resume() to run in the pump */
	int peer_closed;               /* peer CLOSE seen, delivered after rx drains */
	int peer_close_error;
	struct buf rx;                 /* bytes the sink has not taken yet */
};

struct ws_conn {
	struct tunnel_conn tc;         /* registry link */
	struct transport_ws *tw;
	struct ws_conn *prev, *next;
	int fd;
	char tunnel_id[TUNNEL_ID_MAX + 1];
	char peer[64];
	struct buf in, out;
	struct ws_decoder dec;
	struct mux_reader rd;
	/* the WSM message being received */
	struct ws_channel *cur;        /* DATA target, NULL to drop */
	int cur_is_data;
	uint8_t ctrl[WS_CTRL_PAYLOAD_MAX];
	size_t ctrl_len;
	/* channels */
	struct ws_channel **buckets;
	size_t nbuckets, nchannels;
	uint32_t next_channel;         /* lockstep counter, starts at 1 */
	struct ws_channel *graveyard;
	size_t rx_total;               /* bytes held in all channels' rx */
	int writable_waiters;
	int pump_scheduled;
	/* lifecycle */
	struct loop_timer *keepalive;
	uint64_t last_pong;
	struct loop_timer *linger;
	int registered;
	int closing;                   /* close frame sent */
	int dead;                      /* socket closed, being freed */
	int freed_scheduled;
};

struct transport_ws {
	struct loop *loop;
	struct service *svc;
	struct registry *reg;
	struct ws_conn *conns;
	int shutting_down;
};

/* A handshake waiting for the asynchronous authorisation. */
struct ws_pending {
	struct transport_ws *tw;
	struct httpd_req *req;
	char tunnel_id[TUNNEL_ID_MAX + 1];
	char accept[WS_ACCEPT_KEY_LEN + 1];
	char peer[64];
};

static void conn_teardown(struct ws_conn *c, const char *why);
static void conn_flush(struct ws_conn *c);
static void conn_update_events(struct ws_conn *c);
static void conn_process_input(struct ws_conn *c);
static void schedule_pump(struct ws_conn *c);
static void ws_close(struct ws_conn *c, uint16_t code, const char *reason);
static void ws_close_timeout(struct loop *loop, void *arg);

/* ---- sending ---- */

/* Queue or write header pieces and payload, as one unit. */
static int conn_send(struct ws_conn *c, const uint8_t *h1, size_t n1, const uint8_t *h2, size_t n2,
		     const uint8_t *payload, size_t plen)
{
	if (c->dead)
		return E_CLOSED;
	size_t total = n1 + n2 + plen;
	size_t done = 0;
	if (buf_len(&c->out) == 0) {
		/* Nothing queued: one writev straight from the pieces, no copy. */
		struct iovec iov[3] = {
			{(void *)h1, n1}, {(void *)h2, n2}, {(void *)payload, plen},
		};
		long w = net_writev(c->fd, iov, plen ? 3 : (n2 ? 2 : 1));
		if (w < 0)
			w = 0; /* the error shows up as a hangup on the next poll */
		done = (size_t)w;
		if (done == total)
			return 0;
	}
	const uint8_t *parts[3] = {h1, h2, payload};
	size_t lens[3] = {n1, n2, plen};
	if (buf_len(&c->out) + (total - done) > WS_OUT_MAX)
		return E_LIMIT;
	for (int i = 0; i < 3; i++) {
		if (done >= lens[i]) {
			done -= lens[i];
			continue;
		}
		(void)buf_append(&c->out, parts[i] + done, lens[i] - done);
		done = 0;
	}
	conn_update_events(c);
	return 0;
}

static int send_frame(struct ws_conn *c, int opcode, const uint8_t *payload, size_t len)
{
	uint8_t hdr[WS_MAX_FRAME_HEADER];
	size_t hl = ws_encode_header(hdr, 1, opcode, len, NULL);
	return conn_send(c, hdr, hl, NULL, 0, payload, len);
}

static int send_mux(struct ws_conn *c, uint16_t type, uint32_t dst, uint32_t src, const uint8_t *payload,
		    size_t len)
{
	uint8_t wsh[WS_MAX_FRAME_HEADER], mh[MUX_HEADER_LEN];
	size_t hl = ws_encode_header(wsh, 1, WS_OP_BINARY, MUX_HEADER_LEN + len, NULL);
	mux_encode_header(mh, type, dst, src, (uint32_t)len);
	return conn_send(c, wsh, hl, mh, MUX_HEADER_LEN, payload, len);
}

static void send_mux_error(struct ws_conn *c, uint16_t type, uint32_t dst, uint32_t src, const char *text)
{
	(void)send_mux(c, type, dst, src, (const uint8_t *)text, strlen(text));
}

/* ---- channel table ---- */

static struct ws_channel **channel_slot(struct ws_conn *c, uint32_t local)
{
	struct ws_channel **pp = &c->buckets[local & (c->nbuckets - 1)];
	while (*pp && (*pp)->local != local)
		pp = &(*pp)->hnext;
	return pp;
}

static struct ws_channel *channel_find(struct ws_conn *c, uint32_t local)
{
	if (!c->nbuckets || local == 0)
		return NULL;
	return *channel_slot(c, local);
}

static int table_grow(struct ws_conn *c)
{
	size_t n = c->nbuckets ? c->nbuckets * 2 : WS_CHANNEL_BUCKETS_MIN;
	struct ws_channel **b = calloc(n, sizeof(*b));
	if (!b)
		return E_NOMEM;
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct ws_channel *ch = c->buckets[i];
		while (ch) {
			struct ws_channel *next = ch->hnext;
			ch->hnext = b[ch->local & (n - 1)];
			b[ch->local & (n - 1)] = ch;
			ch = next;
		}
	}
	free(c->buckets);
	c->buckets = b;
	c->nbuckets = n;
	return 0;
}

static void table_remove(struct ws_channel *ch)
{
	struct ws_conn *c = ch->conn;
	if (!ch->in_table)
		return;
	struct ws_channel **pp = channel_slot(c, ch->local);
	if (*pp == ch)
		*pp = ch->hnext;
	ch->in_table = 0;
	c->nchannels--;
}

/* The channel is finished: out of the table, freed by the pump. */
static void channel_bury(struct ws_channel *ch)
{
	struct ws_conn *c = ch->conn;
	if (ch->state == CH_DEAD)
		return;
	table_remove(ch);
	loop_timer_cancel(c->tw->loop, ch->timer);
	ch->timer = NULL;
	c->rx_total -= buf_len(&ch->rx);
	buf_free(&ch->rx);
	if (ch->want_writable)
		c->writable_waiters--;
	ch->want_writable = 0;
	ch->state = CH_DEAD;
	ch->dead_next = c->graveyard;
	c->graveyard = ch;
	schedule_pump(c);
}

/* ---- channel operations (called by the ingress) ---- */

static size_t ch_write(struct channel *base, const char *p, size_t n)
{
	struct ws_channel *ch = (struct ws_channel *)base;
	struct ws_conn *c = ch->conn;
	size_t sent = 0;
	while (sent < n) {
		if (ch->state != CH_OPEN || ch->peer_paused || c->dead || c->closing ||
		    buf_len(&c->out) > WS_OUT_HIGH_WATER) {
			if (!ch->want_writable && ch->state != CH_DEAD) {
				ch->want_writable = 1;
				c->writable_waiters++;
			}
			break;
		}
		size_t take = n - sent < WSM_MAX_DATA_PAYLOAD ? n - sent : WSM_MAX_DATA_PAYLOAD;
		if (send_mux(c, MUX_DATA, ch->remote, ch->local, (const uint8_t *)p + sent, take) != 0)
			break;
		sent += take;
	}
	return sent;
}

static void ch_resume(struct channel *base)
{
	struct ws_channel *ch = (struct ws_channel *)base;
	if (ch->state == CH_DEAD || ch->sink_gone)
		return;
	ch->resume_pending = 1;
	schedule_pump(ch->conn);
}

static void ch_close(struct channel *base)
{
	struct ws_channel *ch = (struct ws_channel *)base;
	struct ws_conn *c = ch->conn;
	ch->sink_gone = 1;
	c->rx_total -= buf_len(&ch->rx);
	buf_free(&ch->rx);
	switch (ch->state) {
	case CH_OPENING:
		/* No peer number yet: the CLOSE goes out when the ACK comes. */
		break;
	case CH_OPEN:
		ch->state = CH_CLOSING;
		(void)send_mux(c, MUX_CLOSE, ch->remote, ch->local, NULL, 0);
		loop_timer_cancel(c->tw->loop, ch->timer);
		ch->timer = NULL;
		break;
	case CH_CLOSING:
	case CH_DEAD:
		break;
	}
	if (ch->state == CH_CLOSING && !ch->in_table)
		channel_bury(ch);
	if (ch->state == CH_CLOSING && !ch->timer && ch->in_table) {
		ch->timer = loop_timer_add(c->tw->loop, WSM_CLOSE_TIMEOUT_MS, ws_close_timeout, ch);
	}
	if (ch->state == CH_DEAD)
		return;
	schedule_pump(c);
}

static const struct channel_ops ws_channel_ops = {
	.write = ch_write,
	.resume = ch_resume,
	.close = ch_close,
};

static void ws_close_timeout(struct loop *loop, void *arg)
{
	struct ws_channel *ch = arg;
	ch->timer = NULL;
	channel_bury(ch);
}

static void open_timeout(struct loop *loop, void *arg)
{
	struct ws_channel *ch = arg;
	ch->timer = NULL;
	log_debug("transport-ws", "tunnel %s channel %u open timed out", ch->conn->tunnel_id, ch->local);
	int notify = !ch->sink_gone;
	ch->sink_gone = 1;
	/* The number stays reserved briefly by the graveyard; a late ACK gets
	 * the unknown-channel CLOSE (spec §2.5). */
	channel_bury(ch);
	if (notify && ch->base.sink->failed)
		ch->base.sink->failed(ch->base.sink_arg, CHANNEL_FAIL_TIMEOUT);
}

static struct channel *conn_open_channel(struct tunnel_conn *tc, const struct channel_sink *sink, void *arg,
					 const struct channel_origin *origin, int *err)
{
	struct ws_conn *c = (struct ws_conn *)tc;
	if (c->dead || c->closing) {
		*err = E_NOTFOUND;
		return NULL;
	}
	if (c->nchannels >= WSM_MAX_CHANNELS) {
		*err = E_LIMIT;
		return NULL;
	}
	if (c->nchannels + 1 > c->nbuckets && table_grow(c) != 0) {
		*err = E_NOMEM;
		return NULL;
	}
	struct ws_channel *ch = calloc(1, sizeof(*ch));
	if (!ch) {
		*err = E_NOMEM;
		return NULL;
	}
	/* Lockstep numbering (spec §2.4): +1 per OPEN, skip 0 and numbers in use. */
	uint32_t local = c->next_channel;
	while (local == 0 || channel_find(c, local))
		local++;
	c->next_channel = local + 1;
	ch->base.ops = &ws_channel_ops;
	ch->base.sink = sink;
	ch->base.sink_arg = arg;
	ch->conn = c;
	ch->local = local;
	ch->state = CH_OPENING;
	/* Data in flight after a PAUSE can be megabytes (spec §2.6): a channel
	 * may hold up to the connection budget; above it the socket is not
	 * read, so one receive buffer more is the most that can arrive. */
	buf_init(&ch->rx, WS_RX_BUDGET + WS_IN_MAX);
	struct ws_channel **slot = channel_slot(c, local);
	*slot = ch;
	ch->in_table = 1;
	c->nchannels++;
	ch->timer = loop_timer_add(c->tw->loop, WSM_OPEN_TIMEOUT_MS, open_timeout, ch);
	if (send_mux(c, MUX_OPEN, 0, local, NULL, 0) != 0) {
		table_remove(ch);
		loop_timer_cancel(c->tw->loop, ch->timer);
		buf_free(&ch->rx);
		free(ch);
		*err = E_LIMIT;
		return NULL;
	}
	(void)origin;
	return &ch->base;
}

static void conn_disconnect(struct tunnel_conn *tc)
{
	struct ws_conn *c = (struct ws_conn *)tc;
	/* 1008: the client gives up this slot instead of reconnecting (§3.7). */
	ws_close(c, WS_CLOSE_POLICY, "tunnel disconnected");
}

static const struct tunnel_conn_ops ws_conn_ops = {
	.open_channel = conn_open_channel,
	.disconnect = conn_disconnect,
	.ready = NULL,
};

/* ---- pump: deferred deliveries and frees ---- */

/* Deliver held bytes to the sink; returns 1 when the channel's rx is empty. */
static int channel_drain_rx(struct ws_channel *ch)
{
	struct ws_conn *c = ch->conn;
	while (buf_len(&ch->rx) > 0 && !ch->sink_gone && ch->state != CH_DEAD) {
		size_t n = buf_len(&ch->rx);
		size_t took = ch->base.sink->data(ch->base.sink_arg, buf_data(&ch->rx), n);
		if (ch->state == CH_DEAD || ch->sink_gone)
			return 1;
		buf_consume(&ch->rx, took);
		c->rx_total -= took;
		if (took < n)
			return 0;
	}
	buf_shrink(&ch->rx, 0);
	return 1;
}

static void channel_deliver_close(struct ws_channel *ch)
{
	int notify = !ch->sink_gone;
	ch->sink_gone = 1;
	channel_bury(ch);
	if (notify && ch->base.sink->closed)
		ch->base.sink->closed(ch->base.sink_arg, ch->peer_close_error);
}

static void channel_after_drain(struct ws_channel *ch)
{
	struct ws_conn *c = ch->conn;
	ch->sink_blocked = 0;
	if (ch->peer_closed) {
		channel_deliver_close(ch);
		return;
	}
	if (ch->we_paused && ch->state == CH_OPEN) {
		ch->we_paused = 0;
		(void)send_mux(c, MUX_RESUME, ch->remote, ch->local, NULL, 0);
	}
}

static void free_graveyard(struct ws_conn *c)
{
	while (c->graveyard) {
		struct ws_channel *ch = c->graveyard;
		c->graveyard = ch->dead_next;
		buf_free(&ch->rx);
		free(ch);
	}
}

static void conn_free(struct ws_conn *c)
{
	free_graveyard(c);
	free(c->buckets);
	buf_free(&c->in);
	buf_free(&c->out);
	free(c);
}

static void pump(void *arg)
{
	struct ws_conn *c = arg;
	c->pump_scheduled = 0;
	if (!c->dead) {
		/* Resumed sinks first, then the input that waited for them. */
		for (size_t i = 0; i < c->nbuckets && !c->dead; i++) {
			for (struct ws_channel *ch = c->buckets[i]; ch; ch = ch->hnext) {
				if (!ch->resume_pending)
					continue;
				ch->resume_pending = 0;
				if (channel_drain_rx(ch))
					channel_after_drain(ch);
			}
		}
		/* Channels whose peer closed while their sink was blocked are no
		 * longer in the table: they sit in the graveyard until drained. */
		conn_process_input(c);
		if (!c->dead)
			conn_update_events(c);
	}
	free_graveyard(c);
	if (c->dead)
		conn_free(c);
}

static void schedule_pump(struct ws_conn *c)
{
	if (c->pump_scheduled)
		return;
	if (loop_defer(c->tw->loop, pump, c) == 0)
		c->pump_scheduled = 1;
}

/* ---- receiving ---- */

static void channel_rx(struct ws_channel *ch, const uint8_t *p, size_t n)
{
	struct ws_conn *c = ch->conn;
	if (ch->sink_gone || n == 0)
		return;
	size_t took = 0;
	if (buf_len(&ch->rx) == 0 && !ch->sink_blocked) {
		took = ch->base.sink->data(ch->base.sink_arg, (const char *)p, n);
		if (ch->sink_gone || ch->state == CH_DEAD)
			return;
		if (took == n)
			return;
	}
	/* The sink is slow: hold the rest and ask the peer to pause (§2.6). */
	if (buf_append(&ch->rx, p + took, n - took) != 0) {
		log_warn("transport-ws", "tunnel %s channel %u receive overflow, closing it", c->tunnel_id, ch->local);
		ch->peer_close_error = 1;
		(void)send_mux(c, MUX_CLOSE, ch->remote, ch->local, NULL, 0);
		table_remove(ch);
		channel_deliver_close(ch);
		return;
	}
	c->rx_total += n - took;
	ch->sink_blocked = 1;
	if (!ch->we_paused && ch->state == CH_OPEN) {
		ch->we_paused = 1;
		(void)send_mux(c, MUX_PAUSE, ch->remote, ch->local, NULL, 0);
	}
}

static void handle_ack(struct ws_conn *c, const struct mux_header *h)
{
	struct ws_channel *ch = channel_find(c, h->dst);
	if (!ch) {
		if (h->src)
			send_mux_error(c, MUX_CLOSE, h->src, 0, "ERR_WSM_CHANNEL_NOT_OPEN");
		return;
	}
	if (ch->state == CH_CLOSING) {
		channel_bury(ch); /* our CLOSE was acknowledged */
		return;
	}
	if (ch->state != CH_OPENING)
		return;
	loop_timer_cancel(c->tw->loop, ch->timer);
	ch->timer = NULL;
	if (h->src != ch->local) {
		/* Numbering out of sync (§2.4 DECISION): only a reconnect fixes it. */
		(void)send_mux(c, MUX_CLOSE, h->src, ch->local, NULL, 0);
		int notify = !ch->sink_gone;
		ch->sink_gone = 1;
		channel_bury(ch);
		if (notify && ch->base.sink->failed)
			ch->base.sink->failed(ch->base.sink_arg, CHANNEL_FAIL_REFUSED);
		ws_close(c, WS_CLOSE_INTERNAL, "channel numbering out of sync");
		return;
	}
	ch->remote = h->src;
	ch->state = CH_OPEN;
	if (ch->sink_gone) {
		/* Abandoned while opening: close it now that the peer knows it. */
		ch->state = CH_CLOSING;
		(void)send_mux(c, MUX_CLOSE, ch->remote, ch->local, NULL, 0);
		ch->timer = loop_timer_add(c->tw->loop, WSM_CLOSE_TIMEOUT_MS, ws_close_timeout, ch);
		return;
	}
	if (ch->base.sink->opened)
		ch->base.sink->opened(ch->base.sink_arg);
}

static void handle_close(struct ws_conn *c, const struct mux_header *h, size_t payload_len)
{
	if (h->src)
		(void)send_mux(c, MUX_ACK, h->src, h->dst, NULL, 0);
	struct ws_channel *ch = channel_find(c, h->dst);
	if (!ch)
		return;
	if (ch->state == CH_OPENING) {
		loop_timer_cancel(c->tw->loop, ch->timer);
		ch->timer = NULL;
		int notify = !ch->sink_gone;
		ch->sink_gone = 1;
		channel_bury(ch);
		if (notify && ch->base.sink->failed)
			ch->base.sink->failed(ch->base.sink_arg, CHANNEL_FAIL_REFUSED);
		return;
	}
	if (ch->state == CH_CLOSING) {
		channel_bury(ch);
		return;
	}
	/* Peer closed an open channel: deliver what is held first (§2.5). */
	table_remove(ch);
	ch->peer_closed = 1;
	ch->peer_close_error = payload_len > 0;
	if (buf_len(&ch->rx) == 0)
		channel_deliver_close(ch);
}

static void handle_flow(struct ws_conn *c, const struct mux_header *h)
{
	struct ws_channel *ch = channel_find(c, h->dst);
	if (!ch || ch->state == CH_OPENING) {
		if (!ch && h->src)
			send_mux_error(c, MUX_CLOSE, h->src, 0, "ERR_WSM_CHANNEL_NOT_OPEN");
		return;
	}
	if (ch->state != CH_OPEN)
		return;
	if (h->type == MUX_PAUSE) {
		ch->peer_paused = 1;
		return;
	}
	ch->peer_paused = 0;
	if (ch->want_writable && !ch->sink_gone) {
		ch->want_writable = 0;
		c->writable_waiters--;
		if (ch->base.sink->writable)
			ch->base.sink->writable(ch->base.sink_arg);
	}
}

/* The 16-byte header of a message is complete. */
static void on_mux_header(struct ws_conn *c)
{
	const struct mux_header *h = &c->rd.header;
	c->cur = NULL;
	c->cur_is_data = 0;
	c->ctrl_len = 0;
	if (h->version != MUX_VERSION) {
		log_warn("transport-ws", "tunnel %s: unsupported ws-multiplex version %u", c->tunnel_id, h->version);
		for (size_t i = 0; i < c->nbuckets; i++)
			for (struct ws_channel *ch = c->buckets[i]; ch; ch = ch->hnext)
				if (ch->state == CH_OPEN)
					send_mux_error(c, MUX_CLOSE, ch->remote, ch->local,
						       "ERR_WSM_UNSUPPORTED_PROTOCOL_VERSION");
		ws_close(c, WS_CLOSE_PROTOCOL, "unsupported protocol version");
		return;
	}
	if (h->type != MUX_DATA)
		return;
	c->cur_is_data = 1;
	struct ws_channel *ch = channel_find(c, h->dst);
	if (ch && ch->state == CH_OPEN && ch->remote == h->src) {
		c->cur = ch;
		return;
	}
	if (ch && (ch->state == CH_CLOSING || ch->state == CH_OPEN))
		return; /* late data for a closing channel: dropped */
	if (!ch && h->src)
		send_mux_error(c, MUX_CLOSE, h->src, 0, "ERR_WSM_CHANNEL_NOT_OPEN");
}

static void on_mux_payload(struct ws_conn *c, const uint8_t *p, size_t n)
{
	if (c->cur_is_data) {
		if (c->cur && c->cur->state == CH_OPEN)
			channel_rx(c->cur, p, n);
		return;
	}
	size_t room = sizeof(c->ctrl) - c->ctrl_len;
	if (n > room)
		n = room;
	memcpy(c->ctrl + c->ctrl_len, p, n);
	c->ctrl_len += n;
}

static void on_mux_end(struct ws_conn *c)
{
	uint64_t plen = 0;
	if (!mux_reader_end(&c->rd, &plen) || c->closing)
		return; /* shorter than a header: ignored (§2.8) */
	const struct mux_header *h = &c->rd.header;
	if (h->version != MUX_VERSION)
		return;
	switch (h->type) {
	case MUX_DATA:
		break;
	case MUX_OPEN:
		/* The server opens channels; a client OPEN is refused (§2.5). */
		if (h->src)
			send_mux_error(c, MUX_CLOSE, h->src, 0, "ERR_WSM_OPEN_CHANNEL_REJECTED");
		break;
	case MUX_ACK:
		handle_ack(c, h);
		break;
	case MUX_CLOSE:
		handle_close(c, h, (size_t)plen);
		break;
	case MUX_PAUSE:
	case MUX_RESUME:
		handle_flow(c, h);
		break;
	default:
		log_debug("transport-ws", "tunnel %s: unknown message type %u ignored", c->tunnel_id, h->type);
		break;
	}
	c->cur = NULL;
	c->cur_is_data = 0;
}

static void on_ws_data(struct ws_conn *c, const struct ws_event *ev)
{
	if (ev->message_start)
		mux_reader_begin(&c->rd);
	const uint8_t *p = ev->data;
	size_t n = ev->len;
	while (n > 0 && !c->dead) {
		int rev = MUX_RD_NONE;
		const uint8_t *data = NULL;
		size_t dlen = 0;
		size_t k = mux_reader_feed(&c->rd, p, n, &rev, &data, &dlen);
		if (rev == MUX_RD_HEADER)
			on_mux_header(c);
		else if (rev == MUX_RD_PAYLOAD && dlen)
			on_mux_payload(c, data, dlen);
		if (k == 0)
			break;
		p += k;
		n -= k;
	}
}

static void on_ws_event(struct ws_conn *c, const struct ws_event *ev)
{
	switch (ev->type) {
	case WS_EV_DATA:
		on_ws_data(c, ev);
		break;
	case WS_EV_MESSAGE_END:
		if (ev->message_start)
			mux_reader_begin(&c->rd);
		on_mux_end(c);
		break;
	case WS_EV_PING:
		(void)send_frame(c, WS_OP_PONG, ev->data, ev->len);
		break;
	case WS_EV_PONG:
		c->last_pong = loop_now(c->tw->loop);
		break;
	case WS_EV_CLOSE:
		if (!c->closing) {
			uint8_t payload[WS_MAX_CONTROL_PAYLOAD];
			uint16_t code = ev->close_code == WS_CLOSE_NO_STATUS ? WS_CLOSE_NORMAL : ev->close_code;
			size_t n = ws_encode_close_payload(payload, code, "");
			(void)send_frame(c, WS_OP_CLOSE, payload, n);
			c->closing = 1;
		}
		conn_teardown(c, "closed by the client");
		break;
	case WS_EV_NONE:
		break;
	}
}

static void conn_process_input(struct ws_conn *c)
{
	/* Call the decoder until it reports nothing: the end of a message can
	 * come as an event after its last byte was consumed. */
	while (!c->dead) {
		/* A slow sink holds too much: wait until it drains. */
		if (c->rx_total > WS_RX_BUDGET)
			return;
		struct ws_event ev;
		memset(&ev, 0, sizeof(ev));
		int k = ws_decoder_next(&c->dec, (uint8_t *)buf_data(&c->in), buf_len(&c->in), &ev);
		if (k < 0) {
			log_info("transport-ws", "tunnel %s: websocket protocol error, closing %u", c->tunnel_id,
				 ev.error_code);
			ws_close(c, ev.error_code ? ev.error_code : WS_CLOSE_PROTOCOL, "protocol error");
			conn_teardown(c, "protocol error");
			return;
		}
		if (k == 0 && ev.type == WS_EV_NONE)
			return;
		on_ws_event(c, &ev);
		if (c->dead)
			return;
		buf_consume(&c->in, (size_t)k);
	}
	buf_shrink(&c->in, 0);
}

/* ---- connection I/O ---- */

static void conn_update_events(struct ws_conn *c)
{
	if (c->dead)
		return;
	int ev = 0;
	if (!c->closing && c->rx_total <= WS_RX_BUDGET && buf_len(&c->in) < WS_IN_MAX - WS_READ_CHUNK)
		ev |= LOOP_READ;
	if (c->closing)
		ev |= LOOP_READ; /* wait for the peer's close or EOF */
	if (buf_len(&c->out) > 0)
		ev |= LOOP_WRITE;
	loop_set_events(c->tw->loop, c->fd, ev);
}

static void notify_writable(struct ws_conn *c)
{
	if (c->writable_waiters <= 0 || buf_len(&c->out) > WS_OUT_LOW_WATER)
		return;
	for (size_t i = 0; i < c->nbuckets && !c->dead; i++) {
		for (struct ws_channel *ch = c->buckets[i]; ch; ch = ch->hnext) {
			if (!ch->want_writable || ch->peer_paused || ch->state != CH_OPEN)
				continue;
			ch->want_writable = 0;
			c->writable_waiters--;
			if (!ch->sink_gone && ch->base.sink->writable)
				ch->base.sink->writable(ch->base.sink_arg);
			if (buf_len(&c->out) > WS_OUT_HIGH_WATER)
				return;
		}
	}
}

static void conn_flush(struct ws_conn *c)
{
	while (buf_len(&c->out) > 0) {
		long n = net_write(c->fd, buf_data(&c->out), buf_len(&c->out));
		if (n < 0) {
			conn_teardown(c, "write failed");
			return;
		}
		if (n == 0)
			break;
		buf_consume(&c->out, (size_t)n);
	}
	if (buf_len(&c->out) == 0) {
		buf_shrink(&c->out, 0);
		if (c->closing && !c->linger) {
			/* Our close frame is out; give the peer a moment to answer. */
			shutdown(c->fd, SHUT_WR);
		}
	}
	notify_writable(c);
	conn_update_events(c);
}

static void conn_read(struct ws_conn *c)
{
	size_t avail;
	char *w = buf_reserve(&c->in, WS_READ_CHUNK, &avail);
	if (!w) {
		conn_update_events(c);
		return;
	}
	long n = net_read(c->fd, w, avail);
	if (n == 0)
		return;
	if (n < 0) {
		conn_teardown(c, n == E_CLOSED ? "connection closed" : "read failed");
		return;
	}
	buf_commit(&c->in, (size_t)n);
	if (c->closing && !c->dead) {
		/* After our close frame only the peer's close matters. */
		conn_process_input(c);
		return;
	}
	conn_process_input(c);
	if (!c->dead)
		conn_update_events(c);
}

static void conn_io(struct loop *loop, int fd, int events, void *arg)
{
	struct ws_conn *c = arg;
	if (events & LOOP_WRITE)
		conn_flush(c);
	if (!c->dead && (events & (LOOP_READ | LOOP_ERROR)))
		conn_read(c);
}

static void linger_done(struct loop *loop, void *arg)
{
	struct ws_conn *c = arg;
	c->linger = NULL;
	conn_teardown(c, "close handshake timed out");
}

/* Send a close frame; the socket closes when the peer answers or soon after. */
static void ws_close(struct ws_conn *c, uint16_t code, const char *reason)
{
	if (c->dead || c->closing)
		return;
	uint8_t payload[WS_MAX_CONTROL_PAYLOAD];
	size_t n = ws_encode_close_payload(payload, code, reason);
	(void)send_frame(c, WS_OP_CLOSE, payload, n);
	c->closing = 1;
	log_info("transport-ws", "tunnel %s connection from %s closing: %u %s", c->tunnel_id, c->peer, code, reason);
	if (c->registered) {
		registry_unregister(c->tw->reg, &c->tc);
		c->registered = 0;
	}
	c->linger = loop_timer_add(c->tw->loop, WS_CLOSE_LINGER_MS, linger_done, c);
	conn_flush(c);
}

/* Close the socket and end every channel. */
static void conn_teardown(struct ws_conn *c, const char *why)
{
	if (c->dead)
		return;
	struct transport_ws *tw = c->tw;
	log_debug("transport-ws", "tunnel %s connection from %s: %s", c->tunnel_id, c->peer, why);
	if (c->registered) {
		registry_unregister(tw->reg, &c->tc);
		c->registered = 0;
	}
	c->dead = 1;
	loop_del(tw->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	loop_timer_cancel(tw->loop, c->keepalive);
	loop_timer_cancel(tw->loop, c->linger);
	c->keepalive = c->linger = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		tw->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	/* Every channel ends: opening ones fail, open ones are reset. */
	for (size_t i = 0; i < c->nbuckets; i++) {
		while (c->buckets[i]) {
			struct ws_channel *ch = c->buckets[i];
			int notify = !ch->sink_gone;
			enum ch_state was = ch->state;
			ch->sink_gone = 1;
			channel_bury(ch);
			if (!notify)
				continue;
			if (was == CH_OPENING && ch->base.sink->failed)
				ch->base.sink->failed(ch->base.sink_arg, CHANNEL_FAIL_GONE);
			else if (ch->base.sink->closed)
				ch->base.sink->closed(ch->base.sink_arg, 1);
		}
	}
	/* Channels closed by the peer but still draining to a slow sink. */
	for (struct ws_channel *ch = c->graveyard; ch; ch = ch->dead_next) {
		if (ch->peer_closed && !ch->sink_gone) {
			ch->sink_gone = 1;
			if (ch->base.sink->closed)
				ch->base.sink->closed(ch->base.sink_arg, ch->peer_close_error);
		}
	}
	/* The pump frees the connection (one already queued sees c->dead). */
	if (!c->pump_scheduled) {
		schedule_pump(c);
		if (!c->pump_scheduled)
			conn_free(c); /* could not queue it: nothing else refers to c now */
	}
}

static void keepalive_tick(struct loop *loop, void *arg)
{
	struct ws_conn *c = arg;
	c->keepalive = NULL;
	if (loop_now(loop) - c->last_pong >= WS_DEAD_PEER_MS) {
		log_info("transport-ws", "tunnel %s connection from %s: no pong for %d ms, closing", c->tunnel_id,
			 c->peer, WS_DEAD_PEER_MS);
		ws_close(c, WS_CLOSE_GOING_AWAY, "ping timeout");
		conn_teardown(c, "dead peer");
		return;
	}
	(void)send_frame(c, WS_OP_PING, NULL, 0);
	c->keepalive = loop_timer_add(loop, WS_KEEPALIVE_MS, keepalive_tick, c);
}

/* ---- endpoint ---- */

/* "/v1/tunnel/<id>/ws-endpoint" (anchored, spec §3.4 DECISION). */
static int endpoint_tunnel_id(const char *path, size_t n, char *id, size_t cap)
{
	static const char prefix[] = "/v1/tunnel/", suffix[] = "/ws-endpoint";
	size_t pl = sizeof(prefix) - 1, sl = sizeof(suffix) - 1;
	if (n <= pl + sl || memcmp(path, prefix, pl) != 0 || memcmp(path + n - sl, suffix, sl) != 0)
		return 0;
	size_t idlen = n - pl - sl;
	if (idlen >= cap || memchr(path + pl, '/', idlen))
		return 0;
	memcpy(id, path + pl, idlen);
	id[idlen] = '\0';
	return 1;
}

static int endpoint_match(struct httpd_req *req, void *arg)
{
	if (!httpd_req_head(req)->upgrade)
		return 0;
	size_t n;
	const char *p = httpd_req_path(req, &n);
	char id[TUNNEL_ID_MAX + 2];
	return endpoint_tunnel_id(p, n, id, sizeof(id));
}

static long endpoint_body_limit(struct httpd_req *req, void *arg)
{
	return 0;
}

static void respond_401(struct httpd_req *req)
{
	httpd_req_set_close(req);
	httpd_respond_json(req, 401, "{\"error\":\"PERMISSION_DENIED\"}", 29);
}

/* Value of query parameter name, %-decoded into out. */
static int query_param(const char *q, size_t qlen, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name), i = 0;
	while (q && i < qlen) {
		size_t start = i;
		while (i < qlen && q[i] != '&')
			i++;
		const char *part = q + start;
		size_t plen = i - start;
		i++;
		if (plen > nl && memcmp(part, name, nl) == 0 && part[nl] == '=') {
			size_t o = 0;
			for (size_t k = nl + 1; k < plen; k++) {
				char ch = part[k];
				if (ch == '%' && k + 2 < plen) {
					char hex[3] = {part[k + 1], part[k + 2], 0};
					ch = (char)strtol(hex, NULL, 16);
					k += 2;
				} else if (ch == '+') {
					ch = ' ';
				}
				if (o + 1 >= cap)
					return 0;
				out[o++] = ch;
			}
			out[o] = '\0';
			return o > 0;
		}
	}
	return 0;
}

/* Client address: first X-Forwarded-For entry when it is an IP (§5.2). */
static void client_peer(struct httpd_req *req, char *out, size_t cap)
{
	size_t n;
	const char *xff = httpd_req_header(req, "x-forwarded-for", &n);
	if (xff) {
		size_t end = 0;
		while (end < n && xff[end] != ',')
			end++;
		size_t start = 0;
		while (start < end && xff[start] == ' ')
			start++;
		while (end > start && xff[end - 1] == ' ')
			end--;
		if (net_is_ip(xff + start, end - start) && end - start < cap) {
			memcpy(out, xff + start, end - start);
			out[end - start] = '\0';
			return;
		}
	}
	snprintf(out, cap, "%s", httpd_req_peer(req));
}

static void start_connection(struct ws_pending *pend)
{
	struct transport_ws *tw = pend->tw;
	char *leftover;
	size_t leftover_len;
	int fd = httpd_req_detach(pend->req, &leftover, &leftover_len);
	if (fd < 0) {
		free(leftover);
		return;
	}
	struct ws_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		free(leftover);
		return;
	}
	c->tc.ops = &ws_conn_ops;
	c->tw = tw;
	c->fd = fd;
	c->next_channel = 1;
	snprintf(c->tunnel_id, sizeof(c->tunnel_id), "%s", pend->tunnel_id);
	snprintf(c->peer, sizeof(c->peer), "%s", pend->peer);
	buf_init(&c->in, WS_IN_MAX);
	buf_init(&c->out, WS_OUT_MAX);
	ws_decoder_init(&c->dec, 1, WS_MAX_MESSAGE_DEFAULT);
	mux_reader_begin(&c->rd);
	c->last_pong = loop_now(tw->loop);
	if (leftover_len)
		(void)buf_append(&c->in, leftover, leftover_len);
	free(leftover);
	if (loop_add(tw->loop, fd, LOOP_READ, conn_io, c) != 0) {
		close(fd);
		conn_free(c);
		return;
	}
	c->next = tw->conns;
	if (tw->conns)
		tw->conns->prev = c;
	tw->conns = c;
	char resp[256];
	int n = snprintf(resp, sizeof(resp),
			 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Accept: %s\r\n\r\n",
			 pend->accept);
	(void)conn_send(c, (const uint8_t *)resp, (size_t)n, NULL, 0, NULL, 0);
	/* First frame after the 101 is a ping (§2.7). */
	(void)send_frame(c, WS_OP_PING, NULL, 0);
	c->keepalive = loop_timer_add(tw->loop, WS_KEEPALIVE_MS, keepalive_tick, c);
	int rc = tw->shutting_down ? E_BUSY : registry_register(tw->reg, &c->tc, c->tunnel_id, c->peer);
	if (rc != 0) {
		log_info("transport-ws", "tunnel %s connection from %s refused: %s", c->tunnel_id, c->peer,
			 rc == E_LIMIT ? "connection limit" : err_str(rc));
		ws_close(c, WS_CLOSE_POLICY, "unable to establish tunnel");
		return;
	}
	c->registered = 1;
	if (buf_len(&c->in))
		conn_process_input(c);
}

static void authorized(void *arg, const struct service_result *res, struct tunnel_config *t)
{
	struct ws_pending *pend = arg;
	if (res->status == SVC_BACKEND) {
		httpd_req_set_close(pend->req);
		httpd_respond_json(pend->req, 503, "{\"error\":\"UNKNOWN_ERROR\",\"details\":\"storage unavailable\"}", 57);
	} else if (res->status != SVC_OK) {
		log_info("transport-ws", "tunnel %s connection from %s not authorised: %s", pend->tunnel_id,
			 pend->peer, res->details);
		respond_401(pend->req);
	} else {
		start_connection(pend);
	}
	free(pend);
}

static void endpoint_request(struct httpd_req *req, void *arg)
{
	struct transport_ws *tw = arg;
	size_t plen, qlen, n;
	const char *path = httpd_req_path(req, &plen);
	const char *q = httpd_req_query(req, &qlen);
	struct ws_pending *pend = calloc(1, sizeof(*pend));
	if (!pend) {
		httpd_respond_status(req, 500);
		return;
	}
	pend->tw = tw;
	pend->req = req;
	char token[TUNNEL_TOKEN_LEN + 2];
	if (!endpoint_tunnel_id(path, plen, pend->tunnel_id, sizeof(pend->tunnel_id)) ||
	    !tunnel_id_valid(pend->tunnel_id, strlen(pend->tunnel_id)) ||
	    !query_param(q, qlen, "t", token, sizeof(token)) || strlen(token) > TUNNEL_TOKEN_LEN) {
		respond_401(req);
		free(pend);
		return;
	}
	/* A valid handshake (RFC 6455 §4.2.1). */
	const char *up = httpd_req_header(req, "upgrade", &n);
	int ok = httpd_req_method_is(req, "GET") && up && http_list_has_token(up, n, "websocket");
	const char *ver = httpd_req_header(req, "sec-websocket-version", &n);
	ok = ok && ver && (http_slice_ieq(ver, n, "13") || http_slice_ieq(ver, n, "8"));
	const char *key = httpd_req_header(req, "sec-websocket-key", &n);
	ok = ok && key && ws_accept_key(key, n, pend->accept) == 0;
	if (!ok) {
		httpd_req_set_close(req);
		httpd_respond(req, httpd_req_method_is(req, "GET") ? 400 : 405, "text/plain; charset=utf-8",
			      "Bad WebSocket handshake", 23);
		free(pend);
		return;
	}
	if (tw->shutting_down) {
		httpd_req_set_close(req);
		httpd_respond_status(req, 503);
		free(pend);
		return;
	}
	client_peer(req, pend->peer, sizeof(pend->peer));
	service_tunnel_authorize(tw->svc, pend->tunnel_id, token, authorized, pend);
}

void transport_ws_component(struct transport_ws *t, struct httpd_component *c)
{
	memset(c, 0, sizeof(*c));
	c->name = "transport-ws";
	c->match = endpoint_match;
	c->body_limit = endpoint_body_limit;
	c->request = endpoint_request;
	c->arg = t;
}

struct transport_ws *transport_ws_new(struct loop *loop, struct service *svc, struct registry *reg)
{
	struct transport_ws *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->loop = loop;
	t->svc = svc;
	t->reg = reg;
	return t;
}

void transport_ws_shutdown(struct transport_ws *t)
{
	t->shutting_down = 1;
	for (struct ws_conn *c = t->conns; c; c = c->next)
		ws_close(c, WS_CLOSE_GOING_AWAY, "Server shutting down");
}

void transport_ws_free(struct transport_ws *t)
{
	if (!t)
		return;
	transport_ws_shutdown(t);
	while (t->conns)
		conn_teardown(t->conns, "server shutdown");
	free(t);
}
