/* transport-ssh.c - SSH transport (spec/transports.md §4, §5).
 *
 * Structure (compare transport-ws.c): a listener accepts TCP connections
 * and hands each to a libssh server session bound to the loop by
 * transport-ssh-loop.c.  libssh queues the protocol requests as messages;
 * we take them in order into a small FIFO and answer them, pausing the
 * FIFO while an authorisation or a target update waits for storage.
 *
 * Re-entrancy: libssh runs our channel callbacks from inside its poll
 * rounds, and a write or a close may run such a round too.  Callbacks only
 * record state and feed sinks; every libssh call is made from the top of a
 * loop callback (I/O, timer, deferred pump, storage answer), never from
 * inside a sink's call into us: the channel operations the ingress calls
 * only queue bytes or set flags and schedule the pump.  Channels are freed
 * at the end of a pump run, connections by the deferred pump once no
 * storage answer is outstanding.
 *
 * libssh compromises (0.10): in non-blocking mode each libssh call that
 * touches the network runs its own poll(2) round with timeout 0 on the
 * session's fd (never waits); requests are taken with ssh_message_get,
 * whose empty-queue case is one such round.  keepalive@openssh.com from
 * the client is answered by libssh itself (success, which OpenSSH treats
 * like failure): answering it ourselves needs libssh's global-request
 * callback, which leaks the tcpip-forward bind address.  SSH_MSG_DISCONNECT
 * always carries reason 11 (by application).
 */
#include "transport-ssh.h"
#include "transport-ssh-loop.h"
#include "apiview.h"
#include "buf.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "loop.h"
#include "net.h"
#include "url.h"
#if WITH_TLS
#include "tls.h"
#endif

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOGGER "transport-ssh"
#define SSH_ACCEPT_BATCH 64
#define SSH_MAX_WRITE 32768           /* one channel packet */

enum fwd_state { FWD_NEW, FWD_OPENING, FWD_OPEN, FWD_DEAD };

struct ssh_conn;

/* A forwarded-tcpip channel carrying one ingress connection. */
struct fwd {
	struct channel base;
	struct ssh_conn *conn;
	struct fwd *next;
	ssh_channel ch;                 /* NULL before the open and after release */
	struct ssh_channel_callbacks_struct cbs;
	enum fwd_state state;
	char origin_ip[64];
	int origin_port;
	struct buf tx;                  /* ingress -> client, waiting for window */
	struct buf hold;                /* client -> ingress, taken out of libssh */
	size_t lib_held;                /* bytes libssh keeps in its channel buffer */
	struct loop_timer *timer;       /* open timeout, then close flush timeout */
	unsigned sink_gone : 1;         /* no sink callbacks any more */
	unsigned sink_blocked : 1;      /* the sink took fewer bytes than offered */
	unsigned resume_pending : 1;    /* deliver held bytes in the pump */
	unsigned want_writable : 1;     /* a write was refused */
	unsigned peer_eof : 1;
	unsigned peer_closed : 1;
	unsigned flush_expired : 1;     /* stop waiting for tx to drain */
	unsigned opened_sent : 1;       /* sink->opened was called */
	unsigned want_tls : 1;          /* https/wss/tls/tcps target (§4.7) */
	unsigned tls_closing : 1;       /* close_notify queued */
	char tls_host[URL_HOST_MAX];    /* SNI and the name checked */
#if WITH_TLS
	struct tls_conn *tls;           /* client TLS toward the target, over the channel */
#endif
};

enum conn_state { SC_KEX, SC_AUTH, SC_ACTIVE };

struct ssh_conn {
	struct tunnel_conn tc;          /* registry link */
	struct transport_ssh *t;        /* NULL once torn down */
	struct loop *loop;
	struct ssh_conn *prev, *next;
	ssh_session s;
	struct ssh_loop *io;
	enum conn_state state;
	char peer[64];
	char tunnel_id[TUNNEL_ID_MAX + 1];
	/* requests in arrival order */
	ssh_message q[SSH_MAX_QUEUED_MESSAGES];
	size_t qhead, qlen;
	int op_pending;                 /* authorisation or forward in flight */
	int refs;                       /* asynchronous operations holding the connection */
	int want_input;                 /* let libssh run a round */
	int banner_sent;
	int registered;
	/* the tcpip-forward in effect */
	int has_forward;
	char bind_addr[SSH_MAX_BIND_ADDRESS + 1];
	int listen_port;
	/* what the session text shows, from the last storage answer */
	char *target_url, *http_url, *sni_url;
	/* the session channel */
	ssh_channel shell;
	struct ssh_channel_callbacks_struct shell_cbs;
	int shell_started, shell_end;
	/* forwarded channels */
	struct fwd *fwds;
	size_t nfwds;
	size_t rx_total;                /* bytes held for sinks, all channels */
	int check_opening;
#if WITH_TLS
	struct tls_session tls_resume;  /* last TLS session with the target */
#endif
	/* lifecycle */
	struct loop_timer *keepalive, *grace, *linger;
	uint64_t last_rx;
	int pump_scheduled;
	int closing;                    /* SSH_MSG_DISCONNECT to send */
	char reason[96];
	int dead;                       /* torn down; freed by the pump when refs == 0 */
};

/* libssh's global state is released when the last session is gone. */
static int live_sessions;
static int finalize_wanted;

struct transport_ssh {
	struct loop *loop;
	struct service *svc;
	struct registry *reg;
	ssh_bind bind;
	int lfds[2], nlfds;
	int port;
	char fingerprint[128];
	char banner[64];                /* "exposr/<version>" */
	struct ssh_conn *conns;
	int shutting_down;
	int insecure_target;            /* --transport-ssh-allow-insecure-target */
#if WITH_TLS
	struct tls_client_config *tls_cfg; /* loaded at the first TLS target */
#endif
	int tls_warned;
};

static void conn_run(struct ssh_conn *c);
static void conn_teardown(struct ssh_conn *c, const char *why);
static void begin_disconnect(struct ssh_conn *c, const char *reason);
static void schedule_pump(struct ssh_conn *c);

/* ---- helpers ---- */

static void set_str(char **dst, const char *src)
{
	free(*dst);
	*dst = src ? strdup(src) : NULL;
}

/* Default port of a target scheme (http/ws 80, https/wss 443, ftp 21). */
static int scheme_port(const char *scheme)
{
	int p = url_default_port(scheme);
	if (!p && strcmp(scheme, "ftp") == 0)
		p = 21;
	return p;
}

static int scheme_special(const char *scheme)
{
	static const char *const sp[] = {"http", "https", "ws", "wss", "ftp", "file", NULL};
	for (int i = 0; sp[i]; i++)
		if (strcmp(scheme, sp[i]) == 0)
			return 1;
	return 0;
}

/* WHATWG-like serialisation of a parsed URL: default port dropped, "/" as
 * the path of special URLs. */
static void url_serialize(const struct url *u, char *out, size_t cap)
{
	char port[16] = "";
	if (u->port && u->port != scheme_port(u->scheme))
		snprintf(port, sizeof(port), ":%d", u->port);
	const char *path = u->path;
	if (!path[0] && scheme_special(u->scheme))
		path = "/";
	snprintf(out, cap, "%s:%s%s%s%s%s%s%s%s%s%s", u->scheme, u->has_authority ? "//" : "",
		 u->userinfo[0] ? u->userinfo : "", u->userinfo[0] ? "@" : "", u->ipv6 ? "[" : "", u->host,
		 u->ipv6 ? "]" : "", port, path, u->query[0] ? "?" : "", u->query);
}

static void conn_cache_tunnel(struct ssh_conn *c, const struct tunnel_config *t)
{
	if (!t)
		return;
#if WITH_TLS
	if (!c->target_url || !t->target_url || strcmp(c->target_url, t->target_url) != 0)
		memset(&c->tls_resume, 0, sizeof(c->tls_resume)); /* another server */
#endif
	set_str(&c->target_url, t->target_url);
	set_str(&c->http_url, t->http_enabled ? t->http_url : NULL);
	set_str(&c->sni_url, t->sni_enabled ? t->sni_url : NULL);
}

/* ---- forwarded channels: operations called by the ingress ---- */

static void fwd_set_dead(struct fwd *f)
{
	struct ssh_conn *c = f->conn;
	if (f->state == FWD_DEAD)
		return;
	f->state = FWD_DEAD;
	loop_timer_cancel(c->loop, f->timer);
	f->timer = NULL;
	c->rx_total -= buf_len(&f->hold) + f->lib_held;
	f->lib_held = 0;
	buf_free(&f->hold);
	buf_free(&f->tx);
#if WITH_TLS
	tls_conn_free(f->tls);
	f->tls = NULL;
#endif
	if (f->ch) {
		/* No callbacks after this; libssh frees the channel once the
		 * peer's close arrives (or with the session). */
		ssh_remove_channel_callbacks(f->ch, &f->cbs);
		if (!c->dead && ssh_channel_is_open(f->ch))
			(void)ssh_channel_close(f->ch);
		ssh_channel_free(f->ch);
		f->ch = NULL;
	}
	schedule_pump(c);
}

static size_t fwd_write(struct channel *base, const char *p, size_t n)
{
	struct fwd *f = (struct fwd *)base;
	struct ssh_conn *c = f->conn;
	if (f->state == FWD_DEAD || f->sink_gone || c->dead || c->closing)
		return 0;
	size_t room = SSH_CH_TX_MAX - buf_len(&f->tx);
	size_t take = n < room ? n : room;
	if (take && buf_append(&f->tx, p, take) != 0)
		take = 0;
	if (take < n)
		f->want_writable = 1;
	if (take && f->state == FWD_OPEN)
		schedule_pump(c);
	return take;
}

static void fwd_resume(struct channel *base)
{
	struct fwd *f = (struct fwd *)base;
	if (f->state == FWD_DEAD || f->sink_gone)
		return;
	f->resume_pending = 1;
	schedule_pump(f->conn);
}

static void flush_timeout(struct loop *loop, void *arg)
{
	struct fwd *f = arg;
	f->timer = NULL;
	f->flush_expired = 1;
	schedule_pump(f->conn);
}

static void fwd_close(struct channel *base)
{
	struct fwd *f = (struct fwd *)base;
	struct ssh_conn *c = f->conn;
	f->sink_gone = 1;
	c->rx_total -= buf_len(&f->hold) + f->lib_held;
	f->lib_held = 0;
	buf_free(&f->hold);
	if (f->state == FWD_OPEN && buf_len(&f->tx) > 0 && !f->timer)
		f->timer = loop_timer_add(c->loop, SSH_CLOSE_FLUSH_MS, flush_timeout, f);
	schedule_pump(c);
}

static const struct channel_ops fwd_ops = {
	.write = fwd_write,
	.resume = fwd_resume,
	.close = fwd_close,
};

/* ---- TLS toward https/tls targets (§4.7), over the channel ---- */

static void fwd_notify_opened(struct fwd *f)
{
	if (f->opened_sent || f->sink_gone)
		return;
	f->opened_sent = 1;
	if (f->base.sink->opened)
		f->base.sink->opened(f->base.sink_arg);
}

#if !WITH_TLS
#define tls_has_app(f) 0
#endif

#if WITH_TLS
/* The handshake finished: the ingress may start (it was held so that a
 * failed handshake is a failed open, 502 TUNNEL_TARGET_CON_FAILED). */
static void tls_check_open(struct fwd *f)
{
	if (f->tls && !f->opened_sent && tls_handshake_done(f->tls)) {
		tls_session_save(f->tls, &f->conn->tls_resume);
		fwd_notify_opened(f);
	}
}

/* Plaintext from the engine to the sink; 1 when none is left. */
static int tls_deliver_app(struct fwd *f)
{
	tls_check_open(f);
	while (f->tls && !f->sink_gone) {
		size_t n;
		uint8_t *p = tls_recvapp_buf(f->tls, &n);
		if (!p || n == 0)
			return 1;
		if (!f->opened_sent)
			return 0;
		size_t took = f->base.sink->data(f->base.sink_arg, (const char *)p, n);
		if (f->sink_gone || !f->tls)
			return 0;
		if (took > n)
			took = n;
		tls_recvapp_ack(f->tls, took);
		if (took < n) {
			f->sink_blocked = 1;
			return 0;
		}
	}
	return 0;
}

/* Records into the engine, plaintext out to the sink; returns how many
 * record bytes were taken. */
static size_t tls_take_records(struct fwd *f, const uint8_t *p, size_t n)
{
	size_t off = 0;
	while (tls_deliver_app(f) && off < n && f->tls) {
		size_t k = tls_feed(f->tls, p + off, n - off);
		if (k == 0)
			break;
		off += k;
	}
	return off;
}

static int tls_has_app(struct fwd *f)
{
	size_t n = 0;
	return f->tls && tls_recvapp_buf(f->tls, &n) && n > 0;
}

static int fwd_tls_start(struct fwd *f)
{
	struct ssh_conn *c = f->conn;
	struct transport_ssh *t = c->t;
	if (!t->tls_cfg) {
		char err[256];
		if (tls_client_config_new(NULL, t->insecure_target, &t->tls_cfg, err, sizeof(err)) != 0) {
			log_warn(LOGGER, "TLS toward targets unavailable: %s", err);
			t->tls_cfg = NULL;
			return E_IO;
		}
	}
	int rc = tls_client_new(t->tls_cfg, f->tls_host, &c->tls_resume, &f->tls);
	if (rc != 0)
		log_info(LOGGER, "tunnel %s: no TLS to target %s: %s", c->tunnel_id, f->tls_host,
			 rc == E_INVAL ? "IP address targets need --transport-ssh-allow-insecure-target" : err_str(rc));
	return rc;
}
#endif

/* ---- forwarded channels: libssh callbacks (record, feed the sink) ---- */

static int fwd_cb_data(ssh_session s, ssh_channel ch, void *data, uint32_t len, int is_stderr, void *userdata)
{
	struct fwd *f = userdata;
	struct ssh_conn *c = f->conn;
	if (is_stderr)
		return (int)len;
	size_t before = f->lib_held;
	if (f->sink_gone || f->state == FWD_DEAD) {
		c->rx_total -= before;
		f->lib_held = 0;
		return (int)len; /* nobody to take it */
	}
	/* libssh offers its whole buffer each time; what we leave stays there
	 * and counts against its window. */
	if (f->state != FWD_OPEN || f->sink_blocked || buf_len(&f->hold) > 0) {
		f->lib_held = len;
		c->rx_total += len - before;
		if (f->state != FWD_OPEN)
			c->check_opening = 1;
		return 0;
	}
	size_t took;
#if WITH_TLS
	if (f->tls) {
		took = tls_take_records(f, data, len);
		schedule_pump(c); /* the engine may have records to send */
	} else
#endif
		took = f->base.sink->data(f->base.sink_arg, data, len);
	if (f->sink_gone) {
		c->rx_total -= before;
		f->lib_held = 0;
		return (int)len;
	}
	if (took > len)
		took = len;
	f->lib_held = len - took;
	c->rx_total = c->rx_total - before + f->lib_held;
	if (took < len && !f->want_tls)
		f->sink_blocked = 1;
	return (int)took;
}

static void fwd_cb_eof(ssh_session s, ssh_channel ch, void *userdata)
{
	struct fwd *f = userdata;
	f->peer_eof = 1;
	schedule_pump(f->conn);
}

static void fwd_cb_close(ssh_session s, ssh_channel ch, void *userdata)
{
	struct fwd *f = userdata;
	f->peer_eof = 1;
	f->peer_closed = 1;
	schedule_pump(f->conn);
}

/* ---- forwarded channels: the pump ---- */

static void fwd_fail(struct fwd *f, enum channel_fail reason)
{
	int notify = !f->sink_gone;
	f->sink_gone = 1;
	fwd_set_dead(f);
	if (notify && f->base.sink->failed)
		f->base.sink->failed(f->base.sink_arg, reason);
}

static void open_timeout(struct loop *loop, void *arg)
{
	struct fwd *f = arg;
	f->timer = NULL;
	log_info(LOGGER, "tunnel %s: forwarded channel open timed out", f->conn->tunnel_id);
	if (f->state == FWD_NEW) {
		fwd_fail(f, CHANNEL_FAIL_TIMEOUT);
		return;
	}
	/* Keep the channel until the client answers, then close it. */
	int notify = !f->sink_gone;
	f->sink_gone = 1;
	if (notify && f->base.sink->failed)
		f->base.sink->failed(f->base.sink_arg, CHANNEL_FAIL_TIMEOUT);
	schedule_pump(f->conn);
}

static int open_step(struct fwd *f)
{
	struct ssh_conn *c = f->conn;
	/* In non-blocking mode the first call sends CHANNEL_OPEN; later calls
	 * report the answer (one poll round each while it is pending). */
	return ssh_channel_open_reverse_forward(f->ch, c->bind_addr, c->listen_port, f->origin_ip,
						f->origin_port);
}

static void fwd_opened(struct fwd *f)
{
	f->state = FWD_OPEN;
	loop_timer_cancel(f->conn->loop, f->timer);
	f->timer = NULL;
	f->resume_pending = 1; /* data that came with the confirmation */
	if (!f->want_tls)
		fwd_notify_opened(f);
}

/* Move what libssh holds into our buffer: reading it re-opens the window,
 * so it is done only when the previous batch was taken (bounded). */
static void take_from_libssh(struct fwd *f)
{
	while (f->lib_held > 0 && f->ch) {
		size_t avail;
		char *w = buf_reserve(&f->hold, f->lib_held < 16384 ? f->lib_held : 16384, &avail);
		if (!w)
			break;
		if (avail > f->lib_held)
			avail = f->lib_held;
		int n = ssh_channel_read_nonblocking(f->ch, w, (uint32_t)avail, 0);
		if (n <= 0) {
			f->conn->rx_total -= f->lib_held;
			f->lib_held = 0;
			break;
		}
		buf_commit(&f->hold, (size_t)n);
		f->lib_held -= (size_t)n;
	}
}

static void deliver_held(struct fwd *f)
{
	struct ssh_conn *c = f->conn;
#if WITH_TLS
	if (f->tls) {
		for (;;) {
			if (!tls_deliver_app(f) || f->state != FWD_OPEN || !f->tls)
				return;
			if (buf_len(&f->hold) == 0) {
				if (f->lib_held == 0)
					break;
				take_from_libssh(f);
				if (buf_len(&f->hold) == 0)
					break;
			}
			size_t k = tls_feed(f->tls, (const uint8_t *)buf_data(&f->hold), buf_len(&f->hold));
			if (k == 0)
				return;
			buf_consume(&f->hold, k);
			c->rx_total -= k;
		}
		f->sink_blocked = 0;
		buf_shrink(&f->hold, 0);
		return;
	}
#endif
	while (!f->sink_gone && f->state == FWD_OPEN) {
		if (buf_len(&f->hold) == 0) {
			if (f->lib_held == 0)
				break;
			take_from_libssh(f);
			if (buf_len(&f->hold) == 0)
				break;
		}
		size_t n = buf_len(&f->hold);
		size_t took = f->base.sink->data(f->base.sink_arg, buf_data(&f->hold), n);
		if (f->sink_gone || f->state != FWD_OPEN)
			return;
		if (took > n)
			took = n;
		buf_consume(&f->hold, took);
		c->rx_total -= took;
		if (took < n) {
			f->sink_blocked = 1;
			return;
		}
	}
	if (buf_len(&f->hold) == 0 && f->lib_held == 0) {
		f->sink_blocked = 0;
		buf_shrink(&f->hold, 0);
	}
}

/* Hand n bytes at p to the channel (window, packet size and budget
 * permitting); returns how many, or -1 when the channel failed. */
static long chan_write(struct fwd *f, const char *p, size_t n, size_t *budget)
{
	if (!f->ch || f->peer_closed || *budget == 0)
		return 0;
	uint32_t win = ssh_channel_window_size(f->ch);
	if (n > win)
		n = win;
	if (n > SSH_MAX_WRITE)
		n = SSH_MAX_WRITE;
	if (n > *budget)
		n = *budget;
	if (n == 0)
		return 0;
	int w = ssh_channel_write(f->ch, p, (uint32_t)n);
	if (w < 0) {
		log_debug(LOGGER, "tunnel %s: channel write failed: %s", f->conn->tunnel_id, ssh_get_error(f->conn->s));
		f->peer_closed = 1;
		f->peer_eof = 1;
		buf_free(&f->tx);
		return -1;
	}
	*budget -= (size_t)w;
	return w;
}

static void fwd_write_out(struct fwd *f, size_t *budget)
{
#if WITH_TLS
	while (f->tls && f->state == FWD_OPEN) {
		size_t rn;
		uint8_t *rec = tls_sendrec_buf(f->tls, &rn);
		if (rec && rn) {
			long w = chan_write(f, (const char *)rec, rn, budget);
			if (w <= 0 || !f->tls)
				break;
			tls_sendrec_ack(f->tls, (size_t)w);
			continue;
		}
		size_t an;
		uint8_t *app = buf_len(&f->tx) ? tls_sendapp_buf(f->tls, &an) : NULL;
		if (app && an) {
			size_t k = buf_len(&f->tx) < an ? buf_len(&f->tx) : an;
			memcpy(app, buf_data(&f->tx), k);
			tls_sendapp_ack(f->tls, k);
			buf_consume(&f->tx, k);
			if (buf_len(&f->tx) == 0)
				tls_flush(f->tls);
			continue;
		}
		break;
	}
	if (f->tls)
		goto done;
#endif
	while (buf_len(&f->tx) > 0) {
		long w = chan_write(f, buf_data(&f->tx), buf_len(&f->tx), budget);
		if (w <= 0)
			break;
		buf_consume(&f->tx, (size_t)w);
	}
#if WITH_TLS
done:
#endif
	if (buf_len(&f->tx) == 0)
		buf_shrink(&f->tx, 0);
	if (f->want_writable && !f->sink_gone && buf_len(&f->tx) <= SSH_CH_TX_LOW) {
		f->want_writable = 0;
		if (f->base.sink->writable)
			f->base.sink->writable(f->base.sink_arg);
	}
}

static void fwd_step(struct fwd *f, size_t *budget)
{
	struct ssh_conn *c = f->conn;
	if (f->state == FWD_NEW) {
		if (f->sink_gone) {
			fwd_set_dead(f);
			return;
		}
		if (f->want_tls) {
#if WITH_TLS
			if (!f->tls && fwd_tls_start(f) != 0) {
				fwd_fail(f, CHANNEL_FAIL_REFUSED);
				return;
			}
#else
			if (!c->t->tls_warned)
				log_warn(LOGGER, "tunnel %s: TLS target %s needs a build with WITH_TLS=1", c->tunnel_id,
					 f->tls_host);
			c->t->tls_warned = 1;
			fwd_fail(f, CHANNEL_FAIL_REFUSED);
			return;
#endif
		}
		f->ch = ssh_channel_new(c->s);
		if (!f->ch) {
			fwd_fail(f, CHANNEL_FAIL_GONE);
			return;
		}
		memset(&f->cbs, 0, sizeof(f->cbs));
		f->cbs.userdata = f;
		f->cbs.channel_data_function = fwd_cb_data;
		f->cbs.channel_eof_function = fwd_cb_eof;
		f->cbs.channel_close_function = fwd_cb_close;
		ssh_callbacks_init(&f->cbs);
		if (ssh_set_channel_callbacks(f->ch, &f->cbs) != SSH_OK) {
			ssh_channel_free(f->ch);
			f->ch = NULL;
			fwd_fail(f, CHANNEL_FAIL_GONE);
			return;
		}
		f->state = FWD_OPENING;
		int rc = open_step(f);
		if (f->state != FWD_OPENING)
			return;
		if (rc == SSH_OK)
			fwd_opened(f);
		else if (rc != SSH_AGAIN)
			fwd_fail(f, CHANNEL_FAIL_REFUSED);
		if (f->state != FWD_OPEN)
			return;
	} else if (f->state == FWD_OPENING) {
		if (!c->check_opening && !ssh_channel_is_open(f->ch))
			return;
		int rc = open_step(f);
		if (f->state != FWD_OPENING)
			return;
		if (rc == SSH_AGAIN)
			return;
		if (rc != SSH_OK) {
			log_debug(LOGGER, "tunnel %s: forwarded channel refused: %s", c->tunnel_id, ssh_get_error(c->s));
			fwd_fail(f, CHANNEL_FAIL_REFUSED);
			return;
		}
		fwd_opened(f);
	}
	if (f->state != FWD_OPEN)
		return;
	if ((f->resume_pending || f->want_tls) && !f->sink_gone) {
		f->resume_pending = 0;
		deliver_held(f);
		if (f->state != FWD_OPEN)
			return;
	}
	fwd_write_out(f, budget);
	if (f->state != FWD_OPEN)
		return;
	int app_left = 0, rec_left = 0;
#if WITH_TLS
	if (f->tls) {
		tls_check_open(f);
		if (f->state != FWD_OPEN)
			return;
		if (tls_state(f->tls) & TLS_CLOSED) {
			int err = tls_error(f->tls);
			if (!f->opened_sent && !f->sink_gone) {
				log_info(LOGGER, "tunnel %s: TLS to target %s failed: %s", c->tunnel_id, f->tls_host,
					 tls_error_str(err));
				fwd_fail(f, CHANNEL_FAIL_REFUSED);
				return;
			}
			if (err && !f->sink_gone) {
				f->sink_gone = 1;
				if (f->base.sink->closed)
					f->base.sink->closed(f->base.sink_arg, 1);
				if (f->state != FWD_OPEN)
					return;
			}
			f->peer_eof = 1;
		}
		if (f->peer_eof && !f->opened_sent && !f->sink_gone) {
			log_info(LOGGER, "tunnel %s: target %s closed during the TLS handshake", c->tunnel_id, f->tls_host);
			fwd_fail(f, CHANNEL_FAIL_REFUSED);
			return;
		}
		app_left = tls_has_app(f);
		size_t rn = 0;
		rec_left = tls_sendrec_buf(f->tls, &rn) && rn > 0;
		/* Our side done: close_notify after the last bytes. */
		if (f->sink_gone && !f->tls_closing && buf_len(&f->tx) == 0 && !f->peer_closed) {
			f->tls_closing = 1;
			tls_close(f->tls);
			fwd_write_out(f, budget);
			if (f->state != FWD_OPEN)
				return;
			rec_left = f->tls && tls_sendrec_buf(f->tls, &rn) && rn > 0;
		}
	}
#endif
	/* The peer ended its side: the sink learns it after every byte. */
	if (f->peer_eof && !f->sink_gone && buf_len(&f->hold) == 0 && f->lib_held == 0 && !app_left) {
		f->sink_gone = 1;
		if (f->base.sink->closed)
			f->base.sink->closed(f->base.sink_arg, 0);
		if (f->state != FWD_OPEN)
			return;
	}
	/* Our side is done once the sink is gone and its bytes are out. */
	if (f->sink_gone && ((buf_len(&f->tx) == 0 && !rec_left) || f->peer_closed || f->flush_expired))
		fwd_set_dead(f);
	else if (f->sink_gone && !f->timer)
		f->timer = loop_timer_add(c->loop, SSH_CLOSE_FLUSH_MS, flush_timeout, f);
}

static void fwd_free(struct fwd *f)
{
#if WITH_TLS
	tls_conn_free(f->tls);
#endif
	buf_free(&f->tx);
	buf_free(&f->hold);
	free(f);
}

static void pump_channels(struct ssh_conn *c)
{
	size_t budget = SSH_TX_BURST;
	/* Hand libssh more only when its socket queue has drained. */
	if (c->closing || !ssh_loop_output_idle(c->io))
		budget = 0;
	for (struct fwd *f = c->fwds; f && !c->dead; f = f->next)
		if (f->state != FWD_DEAD)
			fwd_step(f, &budget);
	c->check_opening = 0;
	/* Unlink the finished ones (nothing refers to them any more). */
	struct fwd **pp = &c->fwds;
	while (*pp) {
		struct fwd *f = *pp;
		if (f->state == FWD_DEAD) {
			*pp = f->next;
			c->nfwds--;
			fwd_free(f);
			continue;
		}
		pp = &f->next;
	}
}

/* ---- tunnel_conn operations (registry) ---- */

static struct channel *conn_open_channel(struct tunnel_conn *tc, const struct channel_sink *sink, void *arg,
					 const struct channel_origin *origin, int *err)
{
	struct ssh_conn *c = (struct ssh_conn *)tc;
	if (c->dead || c->closing || !c->has_forward) {
		*err = E_NOTFOUND;
		return NULL;
	}
	if (c->nfwds >= SSH_MAX_CHANNELS) {
		*err = E_LIMIT;
		return NULL;
	}
	struct fwd *f = calloc(1, sizeof(*f));
	if (!f) {
		*err = E_NOMEM;
		return NULL;
	}
	f->base.ops = &fwd_ops;
	f->base.sink = sink;
	f->base.sink_arg = arg;
	f->conn = c;
	f->state = FWD_NEW;
	snprintf(f->origin_ip, sizeof(f->origin_ip), "%s",
		 origin && origin->peer_ip && origin->peer_ip[0] ? origin->peer_ip : "127.0.0.1");
	f->origin_port = origin ? origin->peer_port : 0;
	/* https/wss/tls/tcps targets: the server speaks TLS over the channel. */
	struct url u;
	if (c->target_url && url_parse(c->target_url, strlen(c->target_url), &u) == 0 &&
	    (strcmp(u.scheme, "https") == 0 || strcmp(u.scheme, "wss") == 0 || strcmp(u.scheme, "tls") == 0 ||
	     strcmp(u.scheme, "tcps") == 0)) {
		f->want_tls = 1;
		snprintf(f->tls_host, sizeof(f->tls_host), "%s", u.host);
	}
	buf_init(&f->tx, SSH_CH_TX_MAX);
	buf_init(&f->hold, SSH_CH_RX_HOLD_MAX);
	f->timer = loop_timer_add(c->loop, SSH_OPEN_TIMEOUT_MS, open_timeout, f);
	f->next = c->fwds;
	c->fwds = f;
	c->nfwds++;
	schedule_pump(c);
	return &f->base;
}

static void conn_disconnect(struct tunnel_conn *tc)
{
	struct ssh_conn *c = (struct ssh_conn *)tc;
	begin_disconnect(c, "tunnel disconnected");
}

static int conn_ready(struct tunnel_conn *tc)
{
	struct ssh_conn *c = (struct ssh_conn *)tc;
	return c->has_forward && !c->closing && !c->dead;
}

static const struct tunnel_conn_ops ssh_conn_ops = {
	.open_channel = conn_open_channel,
	.disconnect = conn_disconnect,
	.ready = conn_ready,
};

/* ---- the session channel (what the user sees) ---- */

static int shell_cb_data(ssh_session s, ssh_channel ch, void *data, uint32_t len, int is_stderr, void *userdata)
{
	struct ssh_conn *c = userdata;
	/* Ctrl-C as the first byte of a chunk ends the tunnel (§4.6). */
	if (len > 0 && ((const unsigned char *)data)[0] == 0x03) {
		c->shell_end = 1;
		schedule_pump(c);
	}
	return (int)len;
}

static void shell_cb_eof(ssh_session s, ssh_channel ch, void *userdata)
{
	struct ssh_conn *c = userdata;
	c->shell_end = 1;
	schedule_pump(c);
}

static void shell_write_lines(struct ssh_conn *c)
{
	char target[URL_MAX + 16];
	struct url u;
	if (c->target_url && url_parse(c->target_url, strlen(c->target_url), &u) == 0)
		url_serialize(&u, target, sizeof(target));
	else
		snprintf(target, sizeof(target), "%s", c->target_url ? c->target_url : "tcp://");
	char text[3 * URL_MAX + 64];
	int n = snprintf(text, sizeof(text), "Target URL: %s\r\n", target);
	if (c->http_url && n < (int)sizeof(text))
		n += snprintf(text + n, sizeof(text) - (size_t)n, "HTTP ingress: %s\r\n", c->http_url);
	if (c->sni_url && n < (int)sizeof(text))
		n += snprintf(text + n, sizeof(text) - (size_t)n, "SNI ingress: %s\r\n", c->sni_url);
	if (n > (int)sizeof(text) - 1)
		n = (int)sizeof(text) - 1;
	if (c->shell && ssh_channel_is_open(c->shell))
		(void)ssh_channel_write(c->shell, text, (uint32_t)n);
}

/* The session channel goes with the session: SSH_MSG_DISCONNECT alone
 * ends it, so the client reads the reason before it exits (a separate
 * CHANNEL_CLOSE first lets OpenSSH exit without reading it). */
static void shell_release(struct ssh_conn *c)
{
	if (!c->shell)
		return;
	ssh_remove_channel_callbacks(c->shell, &c->shell_cbs);
	c->shell = NULL;
}

/* ---- authentication (§4.3) ---- */

struct auth_op {
	struct ssh_conn *conn;
	ssh_message msg;
	char tunnel_id[TUNNEL_ID_MAX + 1];
};

static void op_finish(struct ssh_conn *c)
{
	c->refs--;
	c->op_pending = 0;
	c->want_input = 1;
	schedule_pump(c);
}

static void authorized(void *arg, const struct service_result *res, struct tunnel_config *t)
{
	struct auth_op *op = arg;
	struct ssh_conn *c = op->conn;
	if (c->dead || c->closing) {
		ssh_message_free(op->msg);
		free(op);
		op_finish(c);
		return;
	}
	if (res->status == SVC_OK) {
		snprintf(c->tunnel_id, sizeof(c->tunnel_id), "%s", op->tunnel_id);
		conn_cache_tunnel(c, t);
		int rc = c->t->shutting_down ? E_BUSY : registry_register(c->t->reg, &c->tc, c->tunnel_id, c->peer);
		if (rc != 0) {
			log_info(LOGGER, "tunnel %s connection from %s refused: %s", c->tunnel_id, c->peer,
				 rc == E_LIMIT ? "connection limit" : err_str(rc));
			begin_disconnect(c, "unable to establish tunnel");
		} else {
			c->registered = 1;
			c->state = SC_ACTIVE;
			loop_timer_cancel(c->loop, c->grace);
			c->grace = NULL;
			(void)ssh_message_auth_reply_success(op->msg, 0);
			log_info(LOGGER, "tunnel %s connection from %s authenticated", c->tunnel_id, c->peer);
		}
	} else {
		log_info(LOGGER, "tunnel %s connection from %s not authorised: %s", op->tunnel_id, c->peer,
			 res->status == SVC_BACKEND ? "storage unavailable" : "invalid token");
		/* SSH_MSG_DISCONNECT alone: after a USERAUTH_FAILURE OpenSSH may
		 * give up and exit before it reads the reason. */
		begin_disconnect(c, res->status == SVC_BACKEND ? "storage unavailable" : "authentication failed");
	}
	ssh_message_free(op->msg);
	free(op);
	op_finish(c);
}

/* Start authorising (id, token); takes msg. */
static void authorize(struct ssh_conn *c, ssh_message msg, const char *id, size_t idlen, const char *token,
		      size_t toklen)
{
	if (idlen == 0 || idlen > TUNNEL_ID_MAX || !tunnel_id_valid(id, idlen) || toklen > TUNNEL_TOKEN_LEN) {
		log_info(LOGGER, "connection from %s: invalid tunnel id or token", c->peer);
		ssh_message_free(msg);
		begin_disconnect(c, "authentication failed");
		return;
	}
	struct auth_op *op = calloc(1, sizeof(*op));
	if (!op) {
		ssh_message_free(msg);
		begin_disconnect(c, "out of memory");
		return;
	}
	char tok[TUNNEL_TOKEN_LEN + 1];
	memcpy(tok, token, toklen);
	tok[toklen] = '\0';
	memcpy(op->tunnel_id, id, idlen);
	op->tunnel_id[idlen] = '\0';
	op->conn = c;
	op->msg = msg;
	c->op_pending = 1;
	c->refs++;
	service_tunnel_authorize(c->t->svc, op->tunnel_id, tok, authorized, op);
}

/* ssh_message_auth_password is marked deprecated in favour of the
 * synchronous server callbacks, which cannot wait for storage. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static const char *auth_password(ssh_message msg)
{
	return ssh_message_auth_password(msg);
}
#pragma GCC diagnostic pop

static void handle_auth(struct ssh_conn *c, ssh_message msg)
{
	if (c->state != SC_AUTH) {
		ssh_message_free(msg); /* after success: ignored (RFC 4252 §5.1) */
		return;
	}
	const char *user = ssh_message_auth_user(msg);
	int method = ssh_message_subtype(msg);
	if (!user)
		user = "";
	const char *colon = strchr(user, ':');
	if (colon) {
		/* "<id>:<token>[:...]" with any method but publickey/hostbased. */
		if (method == SSH_AUTH_METHOD_NONE || method == SSH_AUTH_METHOD_PASSWORD ||
		    method == SSH_AUTH_METHOD_INTERACTIVE) {
			const char *tok = colon + 1;
			const char *end = strchr(tok, ':');
			size_t toklen = end ? (size_t)(end - tok) : strlen(tok);
			authorize(c, msg, user, (size_t)(colon - user), tok, toklen);
			return;
		}
	} else if (method == SSH_AUTH_METHOD_PASSWORD) {
		const char *pw = auth_password(msg);
		if (pw && pw[0]) {
			authorize(c, msg, user, strlen(user), pw, strlen(pw));
			return;
		}
	}
	/* Failure listing "password" (no disconnect): OpenSSH then prompts. */
	(void)ssh_message_reply_default(msg);
	ssh_message_free(msg);
}

/* ---- tcpip-forward (§4.5 DECISION) ---- */

struct fwd_op {
	struct ssh_conn *conn;
	ssh_message msg;
	char addr[SSH_MAX_BIND_ADDRESS + 1];
	int port;
	int listen_port;
};

static void forward_done(struct ssh_conn *c, struct fwd_op *op, int ok)
{
	if (ok) {
		snprintf(c->bind_addr, sizeof(c->bind_addr), "%s", op->addr);
		c->listen_port = op->listen_port;
		c->has_forward = 1;
		(void)ssh_message_global_request_reply_success(op->msg, (uint16_t)op->listen_port);
		log_info(LOGGER, "tunnel %s: remote forward %s:%d", c->tunnel_id, op->addr, op->listen_port);
	} else {
		(void)ssh_message_reply_default(op->msg);
	}
	ssh_message_free(op->msg);
	free(op);
	op_finish(c);
}

static void forward_updated(void *arg, const struct service_result *res, struct tunnel_config *t)
{
	struct fwd_op *op = arg;
	struct ssh_conn *c = op->conn;
	if (c->dead || c->closing) {
		ssh_message_free(op->msg);
		free(op);
		op_finish(c);
		return;
	}
	if (res->status == SVC_OK)
		conn_cache_tunnel(c, t);
	else
		log_warn(LOGGER, "tunnel %s: target not saved: %s", c->tunnel_id, res->details);
	forward_done(c, op, 1);
}

static void forward_got(void *arg, const struct service_result *res, struct tunnel_config *t)
{
	struct fwd_op *op = arg;
	struct ssh_conn *c = op->conn;
	if (c->dead || c->closing) {
		ssh_message_free(op->msg);
		free(op);
		op_finish(c);
		return;
	}
	if (res->status != SVC_OK) {
		forward_done(c, op, 0);
		return;
	}
	conn_cache_tunnel(c, t);
	struct url cur;
	int has_cur = c->target_url && url_parse(c->target_url, strlen(c->target_url), &cur) == 0;
	if (op->port == 0) {
		/* Keep the configured target; answer with its port. */
		op->listen_port = has_cur ? (cur.port ? cur.port : scheme_port(cur.scheme)) : 0;
		forward_done(c, op, op->listen_port != 0);
		return;
	}
	op->listen_port = op->port;
	if (!op->addr[0]) {
		forward_done(c, op, 1);
		return;
	}
	const char *scheme = has_cur ? cur.scheme : op->port == 80 ? "http" : op->port == 443 ? "https" : "tcp";
	char text[SSH_MAX_BIND_ADDRESS + URL_SCHEME_MAX + 24];
	int v6 = strchr(op->addr, ':') != NULL;
	snprintf(text, sizeof(text), "%s://%s%s%s:%d", scheme, v6 ? "[" : "", op->addr, v6 ? "]" : "", op->port);
	struct url nu;
	if (url_parse(text, strlen(text), &nu) != 0 || !nu.host[0]) {
		log_info(LOGGER, "tunnel %s: tcpip-forward with an unusable address", c->tunnel_id);
		forward_done(c, op, 0);
		return;
	}
	char want[URL_MAX], have[URL_MAX];
	url_serialize(&nu, want, sizeof(want));
	/* Stored without the "/" path of the serialised form when it had none. */
	size_t wl = strlen(want);
	if (wl > 0 && want[wl - 1] == '/' && !nu.path[0])
		want[wl - 1] = '\0';
	if (has_cur) {
		url_serialize(&cur, have, sizeof(have));
		size_t hl = strlen(have);
		if (hl > 0 && have[hl - 1] == '/' && !cur.path[0])
			have[hl - 1] = '\0';
		if (strcmp(have, want) == 0) {
			forward_done(c, op, 1);
			return;
		}
	}
	struct tunnel_patch patch;
	memset(&patch, 0, sizeof(patch));
	patch.has_target = 1;
	patch.target_url = want;
	service_tunnel_update(c->t->svc, c->tunnel_id, NULL, &patch, forward_updated, op);
}

static void handle_forward(struct ssh_conn *c, ssh_message msg)
{
	const char *addr = ssh_message_global_request_address(msg);
	int port = ssh_message_global_request_port(msg);
	if (!addr)
		addr = "";
	size_t n = strlen(addr);
	int ok = n <= SSH_MAX_BIND_ADDRESS && port >= 0 && port <= 65535;
	for (size_t i = 0; ok && i < n; i++)
		if ((unsigned char)addr[i] <= 0x20 || (unsigned char)addr[i] >= 0x7f || strchr("/?#@\\", addr[i]))
			ok = 0;
	struct fwd_op *op = ok ? calloc(1, sizeof(*op)) : NULL;
	if (!op) {
		(void)ssh_message_reply_default(msg);
		ssh_message_free(msg);
		return;
	}
	op->conn = c;
	op->msg = msg;
	memcpy(op->addr, addr, n + 1);
	op->port = port;
	c->op_pending = 1;
	c->refs++;
	service_tunnel_get(c->t->svc, c->tunnel_id, forward_got, op);
}

/* ---- requests ---- */

static void send_userauth_banner(struct ssh_conn *c)
{
	char text[80];
	snprintf(text, sizeof(text), "%s\r\n", c->t->banner);
	ssh_string b = ssh_string_from_char(text);
	if (b) {
		(void)ssh_send_issue_banner(c->s, b);
		ssh_string_free(b);
	}
	c->banner_sent = 1;
}

static void handle_channel_open(struct ssh_conn *c, ssh_message msg)
{
	if (c->state != SC_ACTIVE || ssh_message_subtype(msg) != SSH_CHANNEL_SESSION || c->shell) {
		/* direct-tcpip (-L) and the rest: administratively prohibited. */
		(void)ssh_message_reply_default(msg);
		return;
	}
	ssh_channel ch = ssh_message_channel_request_open_reply_accept(msg);
	if (!ch)
		return;
	memset(&c->shell_cbs, 0, sizeof(c->shell_cbs));
	c->shell_cbs.userdata = c;
	c->shell_cbs.channel_data_function = shell_cb_data;
	c->shell_cbs.channel_eof_function = shell_cb_eof;
	c->shell_cbs.channel_close_function = shell_cb_eof;
	ssh_callbacks_init(&c->shell_cbs);
	(void)ssh_set_channel_callbacks(ch, &c->shell_cbs);
	c->shell = ch;
}

static void handle_channel_request(struct ssh_conn *c, ssh_message msg)
{
	if (ssh_message_channel_request_channel(msg) != c->shell || !c->shell) {
		(void)ssh_message_reply_default(msg);
		return;
	}
	switch (ssh_message_subtype(msg)) {
	case SSH_CHANNEL_REQUEST_PTY:
		(void)ssh_message_channel_request_reply_success(msg);
		break;
	case SSH_CHANNEL_REQUEST_SHELL:
		(void)ssh_message_channel_request_reply_success(msg);
		if (!c->shell_started) {
			c->shell_started = 1;
			shell_write_lines(c);
		}
		break;
	case SSH_CHANNEL_REQUEST_WINDOW_CHANGE:
		break; /* no reply is ever wanted */
	default:
		/* exec, subsystem, env, x11-req, ...: failure. */
		(void)ssh_message_reply_default(msg);
		break;
	}
}

static void handle_message(struct ssh_conn *c, ssh_message msg)
{
	switch (ssh_message_type(msg)) {
	case SSH_REQUEST_AUTH:
		handle_auth(c, msg);
		return; /* takes msg */
	case SSH_REQUEST_SERVICE:
		(void)ssh_message_service_reply_success(msg);
		if (!c->banner_sent && ssh_message_service_service(msg) &&
		    strcmp(ssh_message_service_service(msg), "ssh-userauth") == 0)
			send_userauth_banner(c);
		break;
	case SSH_REQUEST_CHANNEL_OPEN:
		handle_channel_open(c, msg);
		break;
	case SSH_REQUEST_CHANNEL:
		handle_channel_request(c, msg);
		break;
	case SSH_REQUEST_GLOBAL:
		if (c->state == SC_ACTIVE && ssh_message_subtype(msg) == SSH_GLOBAL_REQUEST_TCPIP_FORWARD) {
			handle_forward(c, msg);
			return; /* takes msg */
		}
		/* cancel-tcpip-forward and the rest: failure (§4.5). */
		(void)ssh_message_reply_default(msg);
		break;
	default:
		(void)ssh_message_reply_default(msg);
		break;
	}
	ssh_message_free(msg);
}

static void gather_messages(struct ssh_conn *c)
{
	while (c->qlen < SSH_MAX_QUEUED_MESSAGES && !c->dead) {
		ssh_message m = ssh_loop_message(c->io);
		if (!m)
			break;
		c->q[(c->qhead + c->qlen) % SSH_MAX_QUEUED_MESSAGES] = m;
		c->qlen++;
	}
}

static void process_messages(struct ssh_conn *c)
{
	while (c->qlen > 0 && !c->op_pending && !c->dead && !c->closing) {
		ssh_message m = c->q[c->qhead];
		c->qhead = (c->qhead + 1) % SSH_MAX_QUEUED_MESSAGES;
		c->qlen--;
		handle_message(c, m);
	}
}

/* ---- connection lifecycle ---- */

static void linger_done(struct loop *loop, void *arg)
{
	struct ssh_conn *c = arg;
	c->linger = NULL;
	conn_teardown(c, c->reason);
}

/* Send SSH_MSG_DISCONNECT once libssh's queue has drained (so it goes
 * out before the socket closes), then tear down. */
static void begin_disconnect(struct ssh_conn *c, const char *reason)
{
	if (c->dead || c->closing)
		return;
	c->closing = 1;
	snprintf(c->reason, sizeof(c->reason), "%s", reason);
	if (c->registered) {
		registry_unregister(c->t->reg, &c->tc);
		c->registered = 0;
	}
	log_info(LOGGER, "tunnel %s connection from %s closing: %s", c->tunnel_id[0] ? c->tunnel_id : "-",
		 c->peer, reason);
	c->linger = loop_timer_add(c->loop, SSH_DISCONNECT_LINGER_MS, linger_done, c);
	schedule_pump(c);
}

static void conn_free(struct ssh_conn *c)
{
	while (c->fwds) {
		struct fwd *f = c->fwds;
		c->fwds = f->next;
		fwd_free(f);
	}
	while (c->qlen > 0) {
		ssh_message_free(c->q[c->qhead]);
		c->qhead = (c->qhead + 1) % SSH_MAX_QUEUED_MESSAGES;
		c->qlen--;
	}
	ssh_free(c->s);
	if (--live_sessions == 0 && finalize_wanted) {
		finalize_wanted = 0;
		ssh_finalize();
	}
	free(c->target_url);
	free(c->http_url);
	free(c->sni_url);
	free(c);
}

/* Close the connection and end every channel; the pump frees it. */
static void conn_teardown(struct ssh_conn *c, const char *why)
{
	if (c->dead)
		return;
	struct transport_ssh *t = c->t;
	log_debug(LOGGER, "tunnel %s connection from %s: %s", c->tunnel_id[0] ? c->tunnel_id : "-", c->peer, why);
	if (c->registered) {
		registry_unregister(t->reg, &c->tc);
		c->registered = 0;
	}
	loop_timer_cancel(c->loop, c->keepalive);
	loop_timer_cancel(c->loop, c->grace);
	loop_timer_cancel(c->loop, c->linger);
	c->keepalive = c->grace = c->linger = NULL;
	/* Channels first: their libssh objects go with the session. */
	for (struct fwd *f = c->fwds; f; f = f->next) {
		if (f->state == FWD_DEAD)
			continue;
		int notify = !f->sink_gone;
		enum fwd_state was = f->state;
		f->sink_gone = 1;
		if (f->ch) {
			ssh_remove_channel_callbacks(f->ch, &f->cbs);
			f->ch = NULL; /* freed by ssh_disconnect/ssh_free */
		}
		loop_timer_cancel(c->loop, f->timer);
		f->timer = NULL;
		f->state = FWD_DEAD;
		if (!notify)
			continue;
		if (was != FWD_OPEN && f->base.sink->failed)
			f->base.sink->failed(f->base.sink_arg, CHANNEL_FAIL_GONE);
		else if (was == FWD_OPEN && f->base.sink->closed)
			f->base.sink->closed(f->base.sink_arg, 1);
	}
	if (c->shell) {
		ssh_remove_channel_callbacks(c->shell, &c->shell_cbs);
		c->shell = NULL;
	}
	c->dead = 1;
	ssh_loop_free(c->io);
	c->io = NULL;
	if (c->closing && ssh_is_connected(c->s)) {
		(void)ssh_session_set_disconnect_message(c->s, c->reason);
		ssh_disconnect(c->s);
	} else {
		ssh_silent_disconnect(c->s);
	}
	if (c->prev)
		c->prev->next = c->next;
	else if (t)
		t->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	c->t = NULL;
	schedule_pump(c);
}

static void pump(void *arg)
{
	struct ssh_conn *c = arg;
	c->pump_scheduled = 0;
	if (c->dead) {
		if (c->refs == 0)
			conn_free(c);
		return;
	}
	conn_run(c);
}

static void schedule_pump(struct ssh_conn *c)
{
	if (c->pump_scheduled)
		return;
	if (loop_defer(c->loop, pump, c) == 0)
		c->pump_scheduled = 1;
}

/* Everything that needs libssh, from the top of a loop callback. */
static void conn_run(struct ssh_conn *c)
{
	if (c->dead)
		return;
	if (c->state == SC_KEX) {
		int rc = ssh_loop_kex(c->io);
		if (rc < 0) {
			conn_teardown(c, "key exchange failed");
			return;
		}
		if (rc == 1) {
			c->state = SC_AUTH;
			c->want_input = 1;
		}
	}
	if (c->state != SC_KEX && c->want_input) {
		c->want_input = 0;
		c->check_opening = 1;
		gather_messages(c);
	}
	process_messages(c);
	if (c->dead)
		return;
	if (c->shell_end && !c->closing && !c->op_pending && c->qlen == 0) {
		/* Ctrl-C or EOF on the session: the lines first if the shell was
		 * started, then the session ends so that ssh exits (§4.6). */
		shell_release(c);
		begin_disconnect(c, "tunnel closed");
	}
	pump_channels(c);
	if (c->dead)
		return;
	if (c->closing) {
		shell_release(c);
		if (ssh_loop_output_idle(c->io) || !ssh_loop_open(c->io)) {
			conn_teardown(c, c->reason);
			return;
		}
	}
	ssh_loop_pause(c->io, c->rx_total > SSH_RX_BUDGET);
	if (ssh_loop_update(c->io) != 0)
		conn_teardown(c, ssh_get_error(c->s)[0] ? ssh_get_error(c->s) : "connection closed");
}

static void conn_io(void *arg, int events)
{
	struct ssh_conn *c = arg;
	if (events & (LOOP_READ | LOOP_ERROR))
		c->last_rx = loop_now(c->loop);
	c->want_input = 1;
	conn_run(c);
}

static void keepalive_tick(struct loop *loop, void *arg)
{
	struct ssh_conn *c = arg;
	c->keepalive = NULL;
	uint64_t idle = loop_now(loop) - c->last_rx;
	if (idle + 500 >= (uint64_t)SSH_KEEPALIVE_MS * (SSH_KEEPALIVE_MAX_MISSED + 1)) {
		log_info(LOGGER, "tunnel %s connection from %s: no answer for %llu ms, closing", c->tunnel_id, c->peer,
			 (unsigned long long)idle);
		conn_teardown(c, "dead peer");
		return;
	}
	if (idle + 500 >= SSH_KEEPALIVE_MS && c->state == SC_ACTIVE && !c->closing) {
		/* libssh reports the previous answer on the next call before it
		 * sends a new request: two calls send exactly one. */
		(void)ssh_send_keepalive(c->s);
		(void)ssh_send_keepalive(c->s);
		c->want_input = 1;
	}
	/* Next check 15 s, 30 s, ... after the last packet from the client. */
	uint64_t next = SSH_KEEPALIVE_MS - (idle + 500) % SSH_KEEPALIVE_MS + 500;
	c->keepalive = loop_timer_add(loop, next, keepalive_tick, c);
	conn_run(c);
}

static void grace_expired(struct loop *loop, void *arg)
{
	struct ssh_conn *c = arg;
	c->grace = NULL;
	log_info(LOGGER, "connection from %s: no login within %d ms", c->peer, SSH_LOGIN_GRACE_MS);
	conn_teardown(c, "login grace time over");
}

static void conn_start(struct transport_ssh *t, int fd, const struct sockaddr_storage *sa)
{
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ssh_session s = ssh_new();
	if (!s) {
		close(fd);
		return;
	}
	if (ssh_bind_accept_fd(t->bind, s, fd) != SSH_OK) {
		log_warn(LOGGER, "cannot set up an SSH session: %s", ssh_get_error(t->bind));
		if (ssh_get_fd(s) != fd)
			close(fd);
		ssh_free(s);
		return;
	}
	ssh_set_blocking(s, 0);
	ssh_set_auth_methods(s, SSH_AUTH_METHOD_PASSWORD);
	struct ssh_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		ssh_free(s);
		return;
	}
	live_sessions++;
	c->tc.ops = &ssh_conn_ops;
	c->t = t;
	c->loop = t->loop;
	c->s = s;
	c->state = SC_KEX;
	net_addr_host(sa, c->peer, sizeof(c->peer));
	c->io = ssh_loop_new(t->loop, s, conn_io, c);
	if (!c->io) {
		live_sessions--;
		ssh_free(s);
		free(c);
		return;
	}
	c->last_rx = loop_now(t->loop);
	c->grace = loop_timer_add(t->loop, SSH_LOGIN_GRACE_MS, grace_expired, c);
	c->keepalive = loop_timer_add(t->loop, SSH_KEEPALIVE_MS, keepalive_tick, c);
	c->next = t->conns;
	if (t->conns)
		t->conns->prev = c;
	t->conns = c;
	log_debug(LOGGER, "connection from %s", c->peer);
	conn_run(c); /* sends the identification string */
}

static void on_accept(struct loop *loop, int lfd, int events, void *arg)
{
	struct transport_ssh *t = arg;
	for (int i = 0; i < SSH_ACCEPT_BATCH; i++) {
		struct sockaddr_storage sa;
		socklen_t salen = sizeof(sa);
		int fd = net_accept(lfd, &sa, &salen);
		if (fd < 0)
			return;
		if (t->shutting_down) {
			close(fd);
			continue;
		}
		conn_start(t, fd, &sa);
	}
}

/* ---- transport ---- */

static void ssh_log_cb(int priority, const char *function, const char *buffer, void *userdata)
{
	log_debug("libssh", "%s", buffer);
}

static int load_host_key(const struct config *cfg, ssh_key *key, char *err, size_t errlen)
{
	if (cfg->transport_ssh_key) {
		if (ssh_pki_import_privkey_base64(cfg->transport_ssh_key, NULL, NULL, NULL, key) != SSH_OK) {
			snprintf(err, errlen, "cannot read the SSH host key given with --transport-ssh-key");
			return E_INVAL;
		}
		return 0;
	}
	if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, key) != SSH_OK) {
		snprintf(err, errlen, "cannot generate an SSH host key");
		return E_IO;
	}
	return 0;
}

static int key_fingerprint(ssh_key key, char *out, size_t cap)
{
	unsigned char *hash = NULL;
	size_t hlen = 0;
	if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) != 0)
		return E_INVAL;
	char *fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
	ssh_clean_pubkey_hash(&hash);
	if (!fp)
		return E_NOMEM;
	snprintf(out, cap, "%s", fp);
	ssh_string_free_char(fp);
	return 0;
}

struct transport_ssh *transport_ssh_new(struct loop *loop, struct service *svc, struct registry *reg,
					const struct config *cfg, char *err, size_t errlen)
{
	struct transport_ssh *t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->loop = loop;
	t->svc = svc;
	t->reg = reg;
	t->insecure_target = cfg->transport_ssh_allow_insecure_target;
	/* RFC 4253 §4.2: no '-' or space in the software version. */
	snprintf(t->banner, sizeof(t->banner), "exposr/%s", EXPOSRD_VERSION);
	for (char *p = t->banner; *p; p++)
		if (*p == '-' || *p == ' ')
			*p = '_';
	(void)ssh_init();
	(void)ssh_set_log_callback(ssh_log_cb);
	(void)ssh_set_log_level(log_enabled(LOG_TRACE) ? SSH_LOG_PACKET : SSH_LOG_NOLOG);
	ssh_key key = NULL;
	if (load_host_key(cfg, &key, err, errlen) != 0) {
		free(t);
		return NULL;
	}
	if (key_fingerprint(key, t->fingerprint, sizeof(t->fingerprint)) != 0) {
		snprintf(err, errlen, "cannot compute the SSH host key fingerprint");
		ssh_key_free(key);
		free(t);
		return NULL;
	}
	t->bind = ssh_bind_new();
	bool no = false;
	if (!t->bind) {
		snprintf(err, errlen, "out of memory");
		ssh_key_free(key);
		free(t);
		return NULL;
	}
	(void)ssh_bind_options_set(t->bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &no);
	(void)ssh_bind_options_set(t->bind, SSH_BIND_OPTIONS_BANNER, t->banner);
	/* The bind owns the key from here on. */
	if (ssh_bind_options_set(t->bind, SSH_BIND_OPTIONS_IMPORT_KEY, key) != SSH_OK) {
		snprintf(err, errlen, "cannot use the SSH host key: %s", ssh_get_error(t->bind));
		ssh_key_free(key);
		ssh_bind_free(t->bind);
		free(t);
		return NULL;
	}
	if (net_listen_tcp(NULL, cfg->transport_ssh_port, t->lfds, &t->nlfds) != 0) {
		snprintf(err, errlen, "cannot listen on port %d: %s", cfg->transport_ssh_port, strerror(errno));
		ssh_bind_free(t->bind);
		free(t);
		return NULL;
	}
	for (int i = 0; i < t->nlfds; i++)
		(void)loop_add(loop, t->lfds[i], LOOP_READ, on_accept, t);
	t->port = net_local_port(t->lfds[0]);
	apiview_set_ssh_fingerprint(t->fingerprint);
	return t;
}

int transport_ssh_port(const struct transport_ssh *t)
{
	return t->port;
}

const char *transport_ssh_fingerprint(const struct transport_ssh *t)
{
	return t->fingerprint;
}

void transport_ssh_shutdown(struct transport_ssh *t)
{
	if (t->shutting_down)
		return;
	t->shutting_down = 1;
	for (int i = 0; i < t->nlfds; i++) {
		loop_del(t->loop, t->lfds[i]);
		close(t->lfds[i]);
	}
	t->nlfds = 0;
	for (struct ssh_conn *c = t->conns; c; c = c->next)
		begin_disconnect(c, "Server shutting down");
}

void transport_ssh_free(struct transport_ssh *t)
{
	if (!t)
		return;
	transport_ssh_shutdown(t);
	while (t->conns) {
		struct ssh_conn *c = t->conns;
		if (!c->closing) {
			c->closing = 1;
			snprintf(c->reason, sizeof(c->reason), "Server shutting down");
		}
		conn_teardown(c, "server shutdown");
	}
	ssh_bind_free(t->bind);
#if WITH_TLS
	tls_client_config_unref(t->tls_cfg);
#endif
	apiview_set_ssh_fingerprint(NULL);
	free(t);
	if (live_sessions == 0)
		ssh_finalize();
	else
		finalize_wanted = 1;
}
