/* ingress-sni.c - SNI ingress (see ingress-sni.h; spec/ingress.md §3).
 *
 * One connection goes HELLO (raw ClientHello read) -> LOOKUP (tunnel
 * record read, socket not read) -> HANDSHAKE (engine fed) -> RELAY.  In
 * RELAY the two directions are tracked apart, as OpenSSH's nchan does:
 *
 *   client -> tunnel: the socket is read into the engine only while the
 *     engine wants records; decrypted bytes stay in the engine until the
 *     channel takes them.  Client EOF (FIN) or close_notify: once the
 *     engine holds no decrypted bytes the channel is closed.
 *   tunnel -> client: channel bytes are copied into the engine's output
 *     buffer; when it is full and the socket does not take the record,
 *     the sink takes fewer bytes and the channel pauses until the record
 *     is written.  Channel closed or failed: what was taken is flushed,
 *     close_notify follows, then SHUT_WR and a bounded wait for the
 *     client's own close.
 */
#include "ingress-sni.h"
#include "buf.h"
#include "clienthello.h"
#include "compat.h"
#include "config.h"
#include "err.h"
#include "ids.h"
#include "log.h"
#include "loop.h"
#include "net.h"
#include "service.h"
#include "tls.h"
#include "tunnel.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define SNI_HELLO_READ 4096

enum sc_state {
	SC_HELLO,      /* reading the ClientHello raw */
	SC_LOOKUP,     /* tunnel record being read; the socket is not read */
	SC_HANDSHAKE,  /* the engine has the bytes */
	SC_RELAY,      /* handshake done: channel opening, open, or gone */
};

struct file_sig {
	int ok;
	dev_t dev;
	ino_t ino;
	off_t size;
	time_t mtime, ctime;
	long mtime_ns, ctime_ns;
};

struct sni_conn;

struct ingress_sni {
	struct loop *loop;
	struct service *svc;
	struct registry *reg;
	const struct config *cfg;
	int lfds[2];
	int nlfds;
	int port;
	struct loop_timer *accept_timer;
	struct tls_creds *creds;
	struct file_sig cert_sig, key_sig;          /* of the pair being served */
	struct file_sig bad_cert_sig, bad_key_sig;  /* the last pair that failed */
	int bad_valid;
	int wfd;                                    /* change hints, -1 without */
	struct loop_timer *poll_timer, *debounce_timer;
	struct sni_conn *conns;
	unsigned nconns;
};

struct sni_conn {
	struct ingress_sni *is;
	struct sni_conn *prev, *next;
	int fd;
	enum sc_state state;
	struct buf hello;           /* raw bytes not yet fed to the engine */
	size_t hello_need;
	struct clienthello hi;
	char tunnel_id[TUNNEL_ID_MAX + 1];
	char peer[NET_ADDRSTR_MAX];
	int peer_port;
	struct tls_conn *tls;
	struct channel *ch;
	struct loop_timer *timer;   /* handshake deadline, then close linger */
	int lookup_pending;         /* service callback outstanding: it frees */
	int dead;
	int ch_open;                /* the channel was opened by the peer */
	int client_eof;             /* socket EOF: the client sends no more */
	int chan_done;              /* no channel any more (or never one) */
	int close_sent;             /* our close_notify is queued */
	int wr_shut;                /* SHUT_WR done, lingering */
	int want_resume;            /* the sink took fewer bytes than offered */
	int flush_pending;
	const char *why;            /* reason logged at the end */
	unsigned long long up, down; /* plaintext bytes client->tunnel, tunnel->client */
};

static void pump(struct sni_conn *c);
static const struct channel_sink sni_sink;

/* ---- connection end ---- */

static void conn_free(struct sni_conn *c)
{
	tls_conn_free(c->tls);
	buf_free(&c->hello);
	free(c);
}

static void conn_free_deferred(void *arg)
{
	conn_free(arg);
}

static void conn_finish(struct sni_conn *c, const char *why)
{
	if (c->dead)
		return;
	struct ingress_sni *is = c->is;
	c->dead = 1;
	if (!c->why)
		c->why = why;
	loop_timer_cancel(is->loop, c->timer);
	c->timer = NULL;
	if (c->ch) {
		channel_close(c->ch);
		c->ch = NULL;
	}
	loop_del(is->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		is->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	is->nconns--;
	if (c->state == SC_RELAY)
		log_info("ingress-sni", "tunnel %s: connection from %s closed: %s (%llu bytes in, %llu out)",
			 c->tunnel_id, c->peer, c->why, c->up, c->down);
	else
		log_debug("ingress-sni", "connection from %s (server name \"%s\") ended during the handshake: %s",
			  c->peer, c->hi.sni, c->why);
	/* Freed after the callbacks on the stack (and queued flushes) ran; a
	 * pending tunnel lookup frees it when it completes. */
	if (!c->lookup_pending && loop_defer(is->loop, conn_free_deferred, c) != 0)
		log_error("ingress-sni", "out of memory: connection state leaked");
}

/* Refuse the handshake before the engine saw it: a fatal alert, then close. */
static void refuse(struct sni_conn *c, int alert, const char *why)
{
	uint8_t rec[CLIENTHELLO_ALERT_LEN];
	clienthello_alert(rec, alert);
	(void)net_write(c->fd, rec, sizeof(rec));
	conn_finish(c, why);
}

static void deadline(struct loop *loop, void *arg)
{
	struct sni_conn *c = arg;
	c->timer = NULL;
	conn_finish(c, c->wr_shut ? "closed (no close_notify from the client)" : "handshake timeout");
}

/* ---- tunnel lookup ---- */

static int sni_check(void *arg, const char *name)
{
	struct sni_conn *c = arg;
	/* The engine must have read the name we routed on. */
	return strcasecmp(name, c->hi.sni) == 0;
}

static void tunnel_read(void *arg, const struct service_result *res, struct tunnel_config *t)
{
	struct sni_conn *c = arg;
	c->lookup_pending = 0;
	if (c->dead) {
		conn_free(c);
		return;
	}
	if (res->status == SVC_BACKEND) {
		log_warn("ingress-sni", "tunnel %s: lookup failed: %s", c->tunnel_id, res->details);
		refuse(c, CLIENTHELLO_ALERT_HANDSHAKE_FAILURE, "tunnel lookup failed");
		return;
	}
	if (res->status != SVC_OK) {
		refuse(c, CLIENTHELLO_ALERT_UNRECOGNIZED_NAME, "unknown tunnel");
		return;
	}
	if (!t->sni_enabled) {
		refuse(c, CLIENTHELLO_ALERT_UNRECOGNIZED_NAME, "SNI ingress disabled for the tunnel");
		return;
	}
	c->tls = tls_server_new(c->is->creds, sni_check, c);
	if (!c->tls) {
		conn_finish(c, "out of memory");
		return;
	}
	c->state = SC_HANDSHAKE;
	pump(c);
}

/* Bytes of the ClientHello arrived; parse once enough are there. */
static void hello_input(struct sni_conn *c)
{
	size_t room = c->hello.max - buf_len(&c->hello), avail = 0;
	if (room > SNI_HELLO_READ)
		room = SNI_HELLO_READ;
	char *w = room ? buf_reserve(&c->hello, room, &avail) : NULL;
	if (!w) {
		refuse(c, CLIENTHELLO_ALERT_HANDSHAKE_FAILURE, "ClientHello too large");
		return;
	}
	long n = net_read(c->fd, w, room);
	if (n == 0)
		return;
	if (n < 0) {
		conn_finish(c, n == E_CLOSED ? "closed before the ClientHello" : "read failed");
		return;
	}
	buf_commit(&c->hello, (size_t)n);
	if (buf_len(&c->hello) < c->hello_need)
		return;
	int r = clienthello_parse((const uint8_t *)buf_data(&c->hello), buf_len(&c->hello), &c->hi, &c->hello_need);
	if (r == E_AGAIN) {
		if (c->hello_need > c->hello.max)
			refuse(c, CLIENTHELLO_ALERT_HANDSHAKE_FAILURE, "ClientHello too large");
		return;
	}
	if (r != 0) {
		refuse(c, CLIENTHELLO_ALERT_HANDSHAKE_FAILURE, r == E_LIMIT ? "ClientHello too large" : "not a TLS ClientHello");
		return;
	}
	if (!c->hi.has_sni) {
		refuse(c, CLIENTHELLO_ALERT_HANDSHAKE_FAILURE, "no server name (SNI)");
		return;
	}
	/* tunnel id = the first label (spec §3.4: the rest is not checked) */
	size_t n1 = strcspn(c->hi.sni, ".");
	if (!tunnel_id_valid(c->hi.sni, n1)) {
		refuse(c, CLIENTHELLO_ALERT_UNRECOGNIZED_NAME, "not a tunnel name");
		return;
	}
	memcpy(c->tunnel_id, c->hi.sni, n1);
	c->tunnel_id[n1] = '\0';
	c->state = SC_LOOKUP;
	c->lookup_pending = 1;
	loop_set_events(c->is->loop, c->fd, 0);
	service_tunnel_get(c->is->svc, c->tunnel_id, tunnel_read, c);
}

/* ---- engine pump ---- */

/* Records to the socket: 1 when some were written, 0 none or would
 * block, -1 when the connection failed (finished). */
static int write_records(struct sni_conn *c)
{
	int any = 0;
	for (;;) {
		size_t len;
		uint8_t *p = tls_sendrec_buf(c->tls, &len);
		if (!p || len == 0)
			return any;
		long n = net_write(c->fd, p, len);
		if (n < 0) {
			conn_finish(c, "write failed");
			return -1;
		}
		if (n == 0)
			return any;
		tls_sendrec_ack(c->tls, (size_t)n);
		any = 1;
	}
}

static void update_events(struct sni_conn *c)
{
	if (c->dead)
		return;
	int ev = 0;
	if (c->state == SC_HELLO) {
		ev = LOOP_READ;
	} else if (c->tls) {
		unsigned st = tls_state(c->tls);
		if ((st & TLS_RECVREC) && !c->client_eof && buf_len(&c->hello) == 0)
			ev |= LOOP_READ;
		if (st & TLS_SENDREC)
			ev |= LOOP_WRITE;
	}
	loop_set_events(c->is->loop, c->fd, ev);
}

static void handshake_done(struct sni_conn *c)
{
	struct ingress_sni *is = c->is;
	c->state = SC_RELAY;
	loop_timer_cancel(is->loop, c->timer);
	c->timer = NULL;
	struct channel_origin origin = {c->peer, c->peer_port};
	int err = 0;
	c->ch = registry_open_channel(is->reg, c->tunnel_id, &sni_sink, c, &origin, &err);
	if (!c->ch) {
		/* Not connected (or no free channel): close_notify at once (§3.5). */
		c->chan_done = 1;
		c->why = err == E_NOTFOUND ? "tunnel not connected" : "no free channel on the tunnel";
	}
}

/* The engine is closed: a clean close_notify exchange or a TLS error. */
static void tls_closed(struct sni_conn *c)
{
	int err = tls_error(c->tls);
	if (err == 0) {
		conn_finish(c, c->close_sent ? (c->why ? c->why : "closed") : "closed by the client");
		return;
	}
	if (c->state != SC_RELAY)
		log_debug("ingress-sni", "tunnel %s: handshake with %s failed: %s (%d)", c->tunnel_id, c->peer,
			  tls_error_str(err), err);
	conn_finish(c, tls_error_str(err));
}

static void pump(struct sni_conn *c)
{
	struct ingress_sni *is = c->is;
	for (int round = 0; round < 64 && !c->dead; round++) {
		int progress = 0;
		/* ClientHello bytes (and whatever followed) not fed yet. */
		if (buf_len(&c->hello) > 0) {
			size_t k = tls_feed(c->tls, (const uint8_t *)buf_data(&c->hello), buf_len(&c->hello));
			if (k > 0) {
				buf_consume(&c->hello, k);
				if (buf_len(&c->hello) == 0)
					buf_free(&c->hello);
				progress = 1;
			}
		}
		int w = write_records(c);
		if (w < 0)
			return;
		progress |= w;
		unsigned st = tls_state(c->tls);
		if (st & TLS_CLOSED) {
			tls_closed(c);
			return;
		}
		if (c->state == SC_HANDSHAKE) {
			if (c->client_eof) {
				conn_finish(c, "closed during the handshake");
				return;
			}
			if (!tls_handshake_done(c->tls))
				break;
			handshake_done(c);
			continue;
		}
		/* client -> tunnel */
		if (st & TLS_RECVAPP) {
			size_t len;
			uint8_t *p = tls_recvapp_buf(c->tls, &len);
			size_t k = 0;
			if (c->ch && c->ch_open)
				k = channel_write(c->ch, (const char *)p, len);
			else if (c->chan_done)
				k = len; /* nobody to take them: dropped */
			if (k > 0) {
				tls_recvapp_ack(c->tls, k);
				if (!c->chan_done)
					c->up += k;
				progress = 1;
			}
			st = tls_state(c->tls);
		}
		if (c->client_eof && !c->chan_done && !(st & TLS_RECVAPP)) {
			/* Everything the client sent is in the channel: end it (the
			 * channel has no half-close, spec/ingress.md §2.8). */
			if (c->ch)
				channel_close(c->ch);
			c->ch = NULL;
			c->chan_done = 1;
			c->why = "closed by the client";
			progress = 1;
		}
		/* tunnel -> client */
		if (c->want_resume && c->ch && (st & TLS_SENDAPP)) {
			c->want_resume = 0;
			channel_resume(c->ch);
		}
		if (c->chan_done && !c->close_sent) {
			tls_flush(c->tls);
			st = tls_state(c->tls);
			if ((st & TLS_SENDAPP) && !(st & TLS_SENDREC)) {
				tls_close(c->tls);
				c->close_sent = 1;
				progress = 1;
			}
		}
		if (c->close_sent && !c->wr_shut && !(tls_state(c->tls) & TLS_SENDREC)) {
			if (c->client_eof) {
				conn_finish(c, c->why);
				return;
			}
			/* Our close_notify is out: wait (bounded) for the client's
			 * close, so that closing never resets unread data. */
			(void)shutdown(c->fd, SHUT_WR);
			c->wr_shut = 1;
			loop_timer_cancel(is->loop, c->timer);
			c->timer = loop_timer_add(is->loop, SNI_CLOSE_LINGER_MS, deadline, c);
		}
		if (c->wr_shut && c->client_eof) {
			conn_finish(c, c->why);
			return;
		}
		if (!progress)
			break;
	}
	update_events(c);
}

static void flush_deferred(void *arg)
{
	struct sni_conn *c = arg;
	c->flush_pending = 0;
	if (c->dead)
		return;
	tls_flush(c->tls);
	pump(c);
}

/* ---- channel sink ---- */

static void sk_opened(void *arg)
{
	struct sni_conn *c = arg;
	c->ch_open = 1;
	pump(c);
}

static void sk_failed(void *arg, enum channel_fail reason)
{
	struct sni_conn *c = arg;
	c->ch = NULL;
	c->chan_done = 1;
	c->why = reason == CHANNEL_FAIL_TIMEOUT ? "tunnel channel open timed out" : "tunnel target refused";
	pump(c);
}

static size_t sk_data(void *arg, const char *p, size_t n)
{
	struct sni_conn *c = arg;
	if (c->dead || c->close_sent)
		return n;
	size_t took = 0;
	while (took < n) {
		size_t room;
		uint8_t *buf = tls_sendapp_buf(c->tls, &room);
		if (!buf || room == 0) {
			/* A full record waits: make room by writing it out. */
			if (write_records(c) <= 0)
				break;
			buf = tls_sendapp_buf(c->tls, &room);
			if (!buf || room == 0)
				break;
		}
		size_t k = n - took < room ? n - took : room;
		memcpy(buf, p + took, k);
		tls_sendapp_ack(c->tls, k);
		took += k;
	}
	if (c->dead)
		return n;
	c->down += took;
	if (took < n)
		c->want_resume = 1;
	/* Coalesce what arrives in this loop iteration into one record. */
	if (took > 0 && !c->flush_pending && loop_defer(c->is->loop, flush_deferred, c) == 0)
		c->flush_pending = 1;
	update_events(c);
	return took;
}

static void sk_closed(void *arg, int error)
{
	struct sni_conn *c = arg;
	c->ch = NULL;
	c->chan_done = 1;
	c->why = error ? "tunnel channel reset" : "closed by the tunnel";
	pump(c);
}

static void sk_writable(void *arg)
{
	pump(arg);
}

static const struct channel_sink sni_sink = {
	.opened = sk_opened,
	.failed = sk_failed,
	.data = sk_data,
	.closed = sk_closed,
	.writable = sk_writable,
};

/* ---- socket ---- */

static void conn_io(struct loop *loop, int fd, int events, void *arg)
{
	struct sni_conn *c = arg;
	if (c->dead)
		return;
	if (c->state == SC_HELLO) {
		if (events & (LOOP_READ | LOOP_ERROR))
			hello_input(c); /* a reset shows as a read error */
		return;
	}
	if (c->state == SC_LOOKUP) {
		/* Not reading: only a reset or hangup is reported here. */
		if (events & LOOP_ERROR)
			conn_finish(c, "connection reset during the tunnel lookup");
		return;
	}
	if ((events & LOOP_READ) && !c->client_eof && buf_len(&c->hello) == 0) {
		size_t len;
		uint8_t *p = tls_recvrec_buf(c->tls, &len);
		if (p && len > 0) {
			long n = net_read(fd, p, len);
			if (n > 0)
				tls_recvrec_ack(c->tls, (size_t)n);
			else if (n == E_CLOSED)
				c->client_eof = 1;
			else if (n < 0) {
				conn_finish(c, "read failed");
				return;
			}
		}
	}
	if ((events & LOOP_ERROR) && !c->client_eof) {
		/* Hangup or error while the engine takes no input: the peer is gone. */
		size_t len;
		if (!tls_recvrec_buf(c->tls, &len)) {
			conn_finish(c, c->wr_shut ? "closed" : "connection reset");
			return;
		}
	}
	pump(c);
}

static void accept_one(struct ingress_sni *is, int fd, const struct sockaddr_storage *sa)
{
	struct sni_conn *c = NULL;
	if (is->nconns >= SNI_MAX_CONNECTIONS || !(c = calloc(1, sizeof(*c)))) {
		close(fd);
		return;
	}
	c->is = is;
	c->fd = fd;
	c->state = SC_HELLO;
	c->hello_need = 5;
	buf_init(&c->hello, CLIENTHELLO_MAX_INPUT);
	net_addr_host(sa, c->peer, sizeof(c->peer));
	if (sa->ss_family == AF_INET)
		c->peer_port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
	else if (sa->ss_family == AF_INET6)
		c->peer_port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	if (loop_add(is->loop, fd, LOOP_READ, conn_io, c) != 0) {
		close(fd);
		free(c);
		return;
	}
	c->timer = loop_timer_add(is->loop, SNI_HANDSHAKE_TIMEOUT_MS, deadline, c);
	c->next = is->conns;
	if (is->conns)
		is->conns->prev = c;
	is->conns = c;
	is->nconns++;
}

static void accept_resume(struct loop *loop, void *arg)
{
	struct ingress_sni *is = arg;
	is->accept_timer = NULL;
	for (int i = 0; i < is->nlfds; i++)
		loop_set_events(loop, is->lfds[i], LOOP_READ);
}

static void listener_io(struct loop *loop, int fd, int events, void *arg)
{
	struct ingress_sni *is = arg;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage sa;
		socklen_t salen;
		int cfd = net_accept(fd, &sa, &salen);
		if (cfd >= 0) {
			accept_one(is, cfd, &sa);
			continue;
		}
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			log_warn("ingress-sni", "accept: %s, pausing", strerror(errno));
			for (int k = 0; k < is->nlfds; k++)
				loop_set_events(loop, is->lfds[k], 0);
			if (!is->accept_timer)
				is->accept_timer = loop_timer_add(loop, SNI_ACCEPT_PAUSE_MS, accept_resume, is);
		}
		return;
	}
}

/* ---- certificate (re)loading ---- */

static void file_sig(const char *path, struct file_sig *s)
{
	struct stat st;
	memset(s, 0, sizeof(*s));
	if (stat(path, &st) != 0)
		return;
	s->ok = 1;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->size = st.st_size;
	s->mtime = st.st_mtim.tv_sec;
	s->mtime_ns = st.st_mtim.tv_nsec;
	s->ctime = st.st_ctim.tv_sec;
	s->ctime_ns = st.st_ctim.tv_nsec;
}

static int sig_eq(const struct file_sig *a, const struct file_sig *b)
{
	return a->ok == b->ok && a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime == b->mtime &&
	       a->mtime_ns == b->mtime_ns && a->ctime == b->ctime && a->ctime_ns == b->ctime_ns;
}

static void log_cert(const char *what, const struct ingress_sni *is)
{
	const struct tls_cert_info *in = tls_creds_info(is->creds);
	log_info("ingress-sni", "%s certificate %s for %s (CN \"%s\", serial %s, %s %u bits, chain of %zu)", what,
		 is->cfg->ingress_sni_cert, in->wildcard, in->subject_cn, in->serial,
		 in->key_type == TLS_KEY_RSA ? "RSA" : "EC", in->key_bits, in->chain_len);
}

static void watch_files(struct ingress_sni *is)
{
	if (is->wfd < 0)
		return;
	(void)compat_filewatch_add(is->wfd, is->cfg->ingress_sni_cert);
	(void)compat_filewatch_add(is->wfd, is->cfg->ingress_sni_key);
}

static void reload_check(struct ingress_sni *is)
{
	const struct config *cfg = is->cfg;
	struct file_sig cs, ks;
	file_sig(cfg->ingress_sni_cert, &cs);
	file_sig(cfg->ingress_sni_key, &ks);
	if (sig_eq(&cs, &is->cert_sig) && sig_eq(&ks, &is->key_sig)) {
		is->bad_valid = 0;
		return;
	}
	if (is->bad_valid && sig_eq(&cs, &is->bad_cert_sig) && sig_eq(&ks, &is->bad_key_sig))
		return; /* already warned about this pair */
	struct tls_creds *nc = NULL;
	char err[512];
	if (tls_creds_load(cfg->ingress_sni_cert, cfg->ingress_sni_key, cfg->ingress_sni_host_name, &nc, err,
			   sizeof(err)) != 0) {
		log_warn("ingress-sni", "Certificate reload failed, still serving the previous certificate: %s", err);
		is->bad_cert_sig = cs;
		is->bad_key_sig = ks;
		is->bad_valid = 1;
		watch_files(is);
		return;
	}
	int domain_changed = strcmp(tls_creds_info(nc)->domain, tls_creds_info(is->creds)->domain) != 0;
	tls_creds_unref(is->creds); /* connections keep their own references */
	is->creds = nc;
	is->cert_sig = cs;
	is->key_sig = ks;
	is->bad_valid = 0;
	log_cert("Reloaded", is);
	if (domain_changed)
		service_set_sni(is->svc, tls_creds_info(nc)->domain, is->port);
	watch_files(is);
}

static void poll_tick(struct loop *loop, void *arg)
{
	struct ingress_sni *is = arg;
	is->poll_timer = NULL;
	reload_check(is);
	is->poll_timer = loop_timer_add(loop, SNI_RELOAD_POLL_MS, poll_tick, is);
}

static void debounce_tick(struct loop *loop, void *arg)
{
	struct ingress_sni *is = arg;
	is->debounce_timer = NULL;
	reload_check(is);
}

static void watch_io(struct loop *loop, int fd, int events, void *arg)
{
	struct ingress_sni *is = arg;
	(void)compat_filewatch_drain(fd);
	/* The first event of a burst arms the check; later ones ride along. */
	if (!is->debounce_timer)
		is->debounce_timer = loop_timer_add(loop, SNI_RELOAD_DEBOUNCE_MS, debounce_tick, is);
}

/* ---- lifecycle ---- */

struct ingress_sni *ingress_sni_new(struct loop *loop, struct service *svc, struct registry *reg, char *err,
				    size_t cap)
{
	const struct config *cfg = service_config(svc);
	if (!cfg->ingress_sni_cert || !cfg->ingress_sni_key) {
		snprintf(err, cap, "--ingress-sni-cert and --ingress-sni-key are required");
		return NULL;
	}
	struct ingress_sni *is = calloc(1, sizeof(*is));
	if (!is) {
		snprintf(err, cap, "out of memory");
		return NULL;
	}
	is->loop = loop;
	is->svc = svc;
	is->reg = reg;
	is->cfg = cfg;
	is->wfd = -1;
	file_sig(cfg->ingress_sni_cert, &is->cert_sig);
	file_sig(cfg->ingress_sni_key, &is->key_sig);
	char why[512];
	if (tls_creds_load(cfg->ingress_sni_cert, cfg->ingress_sni_key, cfg->ingress_sni_host_name, &is->creds, why,
			   sizeof(why)) != 0) {
		snprintf(err, cap, "SNI ingress: %s", why);
		free(is);
		return NULL;
	}
	if (net_listen_tcp(NULL, cfg->ingress_sni_port, is->lfds, &is->nlfds) != 0) {
		snprintf(err, cap, "cannot listen on port %d: %s", cfg->ingress_sni_port, strerror(errno));
		tls_creds_unref(is->creds);
		free(is);
		return NULL;
	}
	is->port = net_local_port(is->lfds[0]);
	for (int i = 0; i < is->nlfds; i++)
		(void)loop_add(loop, is->lfds[i], LOOP_READ, listener_io, is);
	log_cert("Loaded", is);
	service_set_sni(svc, tls_creds_info(is->creds)->domain, is->port);
	is->wfd = compat_filewatch_open();
	if (is->wfd >= 0 && loop_add(loop, is->wfd, LOOP_READ, watch_io, is) != 0) {
		compat_filewatch_close(is->wfd);
		is->wfd = -1;
	}
	watch_files(is);
	is->poll_timer = loop_timer_add(loop, SNI_RELOAD_POLL_MS, poll_tick, is);
	return is;
}

int ingress_sni_port(const struct ingress_sni *is) { return is->port; }
const struct tls_cert_info *ingress_sni_cert(const struct ingress_sni *is) { return tls_creds_info(is->creds); }
unsigned ingress_sni_busy(const struct ingress_sni *is) { return is ? is->nconns : 0; }

void ingress_sni_stop_listening(struct ingress_sni *is)
{
	if (!is)
		return;
	for (int i = 0; i < is->nlfds; i++) {
		loop_del(is->loop, is->lfds[i]);
		close(is->lfds[i]);
	}
	is->nlfds = 0;
	loop_timer_cancel(is->loop, is->accept_timer);
	is->accept_timer = NULL;
}

void ingress_sni_free(struct ingress_sni *is)
{
	if (!is)
		return;
	ingress_sni_stop_listening(is);
	while (is->conns)
		conn_finish(is->conns, "server shutting down");
	loop_timer_cancel(is->loop, is->poll_timer);
	loop_timer_cancel(is->loop, is->debounce_timer);
	if (is->wfd >= 0) {
		loop_del(is->loop, is->wfd);
		compat_filewatch_close(is->wfd);
	}
	tls_creds_unref(is->creds);
	free(is);
}
