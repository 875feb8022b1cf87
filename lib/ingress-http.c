/* ingress-http.c - HTTP ingress: route by Host, rewrite headers, stream
 * request and response through a tunnel channel, keep upstream channels
 * in a per-tunnel idle pool (spec/ingress.md §2.4 option 2).
 *
 * Memory per exchange is bounded: the forwarded head (<= 18 KiB), the
 * response head while it is incomplete (<= 16 KiB), and httpd's output
 * buffer above which the channel is paused. */
#include "ingress-http.h"
#include "apiview.h"
#include "buf.h"
#include "config.h"
#include "err.h"
#include "http.h"
#include "ids.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "net.h"
#include "storage.h"
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POOL_BUCKETS 256

struct exchange;
struct pool;

/* One channel to a tunnel, used by one exchange at a time or idle. */
struct upstream {
	struct ingress_http *ih;
	struct channel *ch;
	struct exchange *ex;        /* NULL while idle or closing */
	struct pool *pool;          /* set while idle */
	struct upstream *pool_next;
	struct loop_timer *idle_timer;
	int opened;
	char tunnel_id[TUNNEL_ID_MAX + 1];
};

struct pool {
	struct pool *hnext;
	struct upstream *idle;      /* most recently used first */
	char tunnel_id[TUNNEL_ID_MAX + 1];
};

struct ingress_http {
	struct loop *loop;
	struct service *svc;
	struct registry *reg;
	char domain[URL_HOST_MAX];  /* wildcard parent, "" when HTTP ingress is off */
	char api_host[URL_HOST_MAX];
	uint64_t idle_timeout_ms;
	struct pool *pools[POOL_BUCKETS];
};

enum lookup { LOOKUP_WILDCARD, LOOKUP_ALTNAME };

struct exchange {
	struct ingress_http *ih;
	struct httpd_req *req;
	struct upstream *up;
	enum lookup lookup;
	char host[URL_HOST_MAX];        /* Host without port, lower-cased */
	char tunnel_id[TUNNEL_ID_MAX + 1];
	int tunnel_status;              /* SVC_* of the tunnel lookup */
	struct tunnel_config t;
	int upgrade, is_head, has_body, retried, reused;
	struct buf head_out;            /* forwarded request head */
	size_t head_sent;
	int request_done;               /* request body complete */
	struct buf resp_head;           /* response head while incomplete */
	int resp_head_done, resp_started, resp_done, resp_close, upgraded;
	struct http_body_tracker resp_body;
	int extra_bytes;                /* bytes after the response: channel not reusable */
	const char *held_head;          /* response head not yet written (valid in the current call) */
	size_t held_len;
	int status;
	int finished;
};

static const struct channel_sink upstream_sink;
static void exchange_fail(struct exchange *ex, int status, const char *code);
static void exchange_finish(struct exchange *ex, int keep_alive);
static void start_upstream(struct exchange *ex);

/* ---- pool ---- */

static size_t hash_str(const char *s)
{
	size_t h = 5381;
	for (; *s; s++)
		h = h * 33 + (unsigned char)*s;
	return h;
}

static struct pool **pool_slot(struct ingress_http *ih, const char *id)
{
	struct pool **pp = &ih->pools[hash_str(id) % POOL_BUCKETS];
	while (*pp && strcmp((*pp)->tunnel_id, id) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

static void pool_remove(struct upstream *up)
{
	struct pool *p = up->pool;
	if (!p)
		return;
	struct upstream **pp = &p->idle;
	while (*pp && *pp != up)
		pp = &(*pp)->pool_next;
	if (*pp)
		*pp = up->pool_next;
	up->pool = NULL;
	up->pool_next = NULL;
	loop_timer_cancel(up->ih->loop, up->idle_timer);
	up->idle_timer = NULL;
	if (!p->idle) {
		struct pool **slot = pool_slot(up->ih, p->tunnel_id);
		*slot = p->hnext;
		free(p);
	}
}

static void upstream_close(struct upstream *up)
{
	pool_remove(up);
	if (up->ch)
		channel_close(up->ch);
	free(up);
}

static void idle_expired(struct loop *loop, void *arg)
{
	struct upstream *up = arg;
	up->idle_timer = NULL;
	upstream_close(up);
}

static void pool_put(struct upstream *up)
{
	struct ingress_http *ih = up->ih;
	struct pool **slot = pool_slot(ih, up->tunnel_id);
	if (!*slot) {
		struct pool *p = calloc(1, sizeof(*p));
		if (!p) {
			upstream_close(up);
			return;
		}
		snprintf(p->tunnel_id, sizeof(p->tunnel_id), "%s", up->tunnel_id);
		*slot = p;
	}
	up->ex = NULL;
	up->pool = *slot;
	up->pool_next = (*slot)->idle;
	(*slot)->idle = up;
	up->idle_timer = loop_timer_add(ih->loop, ih->idle_timeout_ms, idle_expired, up);
}

static struct upstream *pool_take(struct ingress_http *ih, const char *id)
{
	struct pool *p = *pool_slot(ih, id);
	if (!p || !p->idle)
		return NULL;
	struct upstream *up = p->idle;
	pool_remove(up);
	return up;
}

/* ---- forwarded request head (spec/ingress.md §2.5, §2.6) ---- */



/* "host[:port]" of a target URL, the port only when not the default. */
static void url_hostport(const struct url *u, char *out, size_t cap)
{
	int port = u->port && u->port != url_default_port(u->scheme) ? u->port : 0;
	const char *l = u->ipv6 ? "[" : "", *r = u->ipv6 ? "]" : "";
	if (port)
		snprintf(out, cap, "%s%s%s:%d", l, u->host, r, port);
	else
		snprintf(out, cap, "%s%s%s", l, u->host, r);
}

/* Rewrite one Host/Origin/Referer value toward the target (§2.6). */
static void rewrite_value(struct buf *out, const char *name, const char *v, size_t n, const char *orig_host,
			  const struct url *target, int origin)
{
	char thost[URL_HOST_MAX + 8];
	url_hostport(target, thost, sizeof(thost));
	int absolute = (n >= 7 && strncasecmp(v, "http://", 7) == 0) || (n >= 8 && strncasecmp(v, "https://", 8) == 0);
	if (!absolute) {
		(void)buf_appendf(out, "%s: %s\r\n", name, thost);
		return;
	}
	struct url u;
	char hp[URL_HOST_MAX + 8];
	if (url_parse(v, n, &u) != 0) {
		(void)buf_appendf(out, "%s: %.*s\r\n", name, (int)n, v);
		return;
	}
	url_hostport(&u, hp, sizeof(hp));
	if (strcmp(hp, orig_host) != 0) {
		(void)buf_appendf(out, "%s: %.*s\r\n", name, (int)n, v);
		return;
	}
	if (origin) {
		(void)buf_appendf(out, "%s: %s://%s\r\n", name, target->scheme, thost);
		return;
	}
	(void)buf_appendf(out, "%s: %s://%s%s%s%s\r\n", name, target->scheme, thost, u.path[0] ? u.path : "/",
			  u.query[0] ? "?" : "", u.query);
}

/* Client IP: the first X-Forwarded-For entry if it is an IP, else the peer. */
static void client_ip(struct httpd_req *req, char *out, size_t cap)
{
	size_t n;
	const char *xff = httpd_req_header(req, "x-forwarded-for", &n);
	if (xff) {
		size_t end = 0, start = 0;
		while (end < n && xff[end] != ',')
			end++;
		while (start < end && (xff[start] == ' ' || xff[start] == '\t'))
			start++;
		while (end > start && (xff[end - 1] == ' ' || xff[end - 1] == '\t'))
			end--;
		if (net_is_ip(xff + start, end - start) && end - start < cap) {
			memcpy(out, xff + start, end - start);
			out[end - start] = '\0';
			return;
		}
	}
	snprintf(out, cap, "%s", httpd_req_peer(req));
}

static int header_is(const struct http_header *h, const char *name)
{
	return http_slice_ieq(h->name, h->name_len, name);
}

static int build_head(struct exchange *ex, struct httpd_req *req)
{
	const struct http_request *hr = httpd_req_head(req);
	struct buf *out = &ex->head_out;
	struct base_url base;
	if (base_url_from_request(req, &base) != 0)
		return E_INVAL;
	char ip[64], hostport[URL_HOST_MAX + 8];
	client_ip(req, ip, sizeof(ip));
	base_url_hostport(&base, hostport, sizeof(hostport));
	struct url target;
	int rewrite = ex->t.target_url && url_parse(ex->t.target_url, strlen(ex->t.target_url), &target) == 0 &&
		      strncmp(target.scheme, "http", 4) == 0 && target.host[0];
	/* orig_host: the Host value as received, normalised for comparison. */
	char orig_host[URL_HOST_MAX + 8] = "";
	size_t n;
	const char *hv = httpd_req_header(req, "host", &n);
	if (hv) {
		struct url hu;
		char tmp[URL_HOST_MAX + 16];
		int k = snprintf(tmp, sizeof(tmp), "%s://%.*s", base.proto, (int)n, hv);
		if (k > 0 && url_parse(tmp, (size_t)k, &hu) == 0)
			url_hostport(&hu, orig_host, sizeof(orig_host));
	}
	(void)buf_appendf(out, "%.*s %.*s HTTP/1.1\r\n", (int)hr->method_len, hr->method, (int)hr->target_len,
			  hr->target);
	const char *via = NULL;
	size_t via_len = 0;
	for (size_t i = 0; i < hr->num_headers; i++) {
		const struct http_header *h = &hr->headers[i];
		if (header_is(h, "x-forwarded-for") || header_is(h, "x-real-ip") || header_is(h, "x-forwarded-host") ||
		    header_is(h, "x-forwarded-proto") || header_is(h, "forwarded"))
			continue;
		if (header_is(h, "exposr-via")) {
			via = h->value;
			via_len = h->value_len;
			continue;
		}
		if (header_is(h, "connection") && !ex->upgrade)
			continue;
		if (header_is(h, "x-forwarded-port") && base.port)
			continue;
		if (rewrite && header_is(h, "host")) {
			rewrite_value(out, "Host", h->value, h->value_len, orig_host, &target, 0);
			continue;
		}
		if (rewrite && header_is(h, "origin")) {
			rewrite_value(out, "Origin", h->value, h->value_len, orig_host, &target, 1);
			continue;
		}
		if (rewrite && header_is(h, "referer")) {
			rewrite_value(out, "Referer", h->value, h->value_len, orig_host, &target, 0);
			continue;
		}
		(void)buf_appendf(out, "%.*s: %.*s\r\n", (int)h->name_len, h->name, (int)h->value_len, h->value);
	}
	const char *node = service_node_id(ex->ih->svc);
	int v6 = strchr(ip, ':') != NULL;
	(void)buf_appendf(out, "X-Forwarded-For: %s\r\nX-Real-IP: %s\r\n", ip, ip);
	if (via)
		(void)buf_appendf(out, "Exposr-Via: %s,%.*s\r\n", node, (int)via_len, via);
	else
		(void)buf_appendf(out, "Exposr-Via: %s\r\n", node);
	(void)buf_appendf(out, "X-Forwarded-Host: %s\r\n", hostport);
	if (base.port)
		(void)buf_appendf(out, "X-Forwarded-Port: %d\r\n", base.port);
	(void)buf_appendf(out, "X-Forwarded-Proto: %s\r\n", base.proto);
	(void)buf_appendf(out, "Forwarded: by=_exposr;for=%s%s%s;host=%s;proto=%s\r\n", v6 ? "\"[" : "", ip,
			  v6 ? "]\"" : "", hostport, base.proto);
	if (!ex->upgrade)
		(void)buf_append(out, "Connection: keep-alive\r\n", 24);
	return buf_append(out, "\r\n", 2) == 0 ? 0 : E_LIMIT;
}

/* True if this node's id is in Exposr-Via (a request loop). */
static int is_loop(struct exchange *ex, struct httpd_req *req)
{
	size_t n;
	const char *via = httpd_req_header(req, "exposr-via", &n);
	const char *node = service_node_id(ex->ih->svc);
	size_t nl = strlen(node), i = 0;
	while (via && i < n) {
		size_t start = i;
		while (i < n && via[i] != ',')
			i++;
		size_t s = start, e = i;
		while (s < e && via[s] == ' ')
			s++;
		while (e > s && via[e - 1] == ' ')
			e--;
		if (e - s == nl && memcmp(via + s, node, nl) == 0)
			return 1;
		i++;
	}
	return 0;
}

/* ---- exchange lifecycle ---- */

static void exchange_free_now(void *arg)
{
	struct exchange *ex = arg;
	tunnel_config_free(&ex->t);
	buf_free(&ex->head_out);
	buf_free(&ex->resp_head);
	free(ex);
}

/* Freed after the current callback: callers up the stack may still look
 * at ex->finished. */
static void exchange_free(struct exchange *ex)
{
	ex->finished = 1;
	if (loop_defer(ex->ih->loop, exchange_free_now, ex) != 0)
		log_error("ingress-http", "out of memory: exchange leaked"); /* safer than a use after free */
}

static void detach_upstream(struct exchange *ex, int reusable)
{
	struct upstream *up = ex->up;
	if (!up)
		return;
	ex->up = NULL;
	up->ex = NULL;
	if (reusable && up->opened)
		pool_put(up);
	else
		upstream_close(up);
}

static void exchange_finish(struct exchange *ex, int keep_alive)
{
	if (ex->finished)
		return;
	ex->finished = 1;
	int reusable = ex->resp_done && ex->request_done && !ex->resp_close && !ex->upgraded && !ex->extra_bytes;
	detach_upstream(ex, reusable);
	httpd_req_finish(ex->req, keep_alive, ex->status);
	exchange_free(ex);
}

/* An error answer before any response byte went out. */
static void exchange_fail(struct exchange *ex, int status, const char *code)
{
	char body[96];
	int blen = snprintf(body, sizeof(body), "{\"error\":\"%s\"}", code);
	char head[256];
	int hlen = snprintf(head, sizeof(head),
			    "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n", status,
			    http_status_text(status), blen, ex->upgrade ? "Connection: close\r\n" : "");
	ex->status = status;
	detach_upstream(ex, 0);
	(void)httpd_req_write(ex->req, head, (size_t)hlen);
	(void)httpd_req_write(ex->req, body, (size_t)blen);
	/* The unread rest of a request body makes httpd close the connection. */
	exchange_finish(ex, !ex->upgrade);
}

static void send_head(struct exchange *ex)
{
	struct upstream *up = ex->up;
	size_t total = buf_len(&ex->head_out);
	if (ex->head_sent < total)
		ex->head_sent += channel_write(up->ch, buf_data(&ex->head_out) + ex->head_sent, total - ex->head_sent);
	if (ex->head_sent == total)
		httpd_req_resume_body(ex->req);
}

/* ---- upstream channel events ---- */

static void up_opened(void *arg)
{
	struct upstream *up = arg;
	up->opened = 1;
	if (up->ex)
		send_head(up->ex);
}

static void up_failed(void *arg, enum channel_fail reason)
{
	struct upstream *up = arg;
	struct exchange *ex = up->ex;
	up->ch = NULL; /* the transport is done with it */
	if (!ex) {
		upstream_close(up);
		return;
	}
	exchange_fail(ex, 502, "TUNNEL_TARGET_CON_FAILED");
}

static void up_writable(void *arg)
{
	struct upstream *up = arg;
	struct exchange *ex = up->ex;
	if (!ex)
		return;
	if (ex->head_sent < buf_len(&ex->head_out))
		send_head(ex);
	else
		httpd_req_resume_body(ex->req);
}

/* Relay response body bytes; returns how many were taken. */
/* Write out bytes for the client; a response head still held back goes
 * with them in one write when they follow it in memory (one syscall). */
static void client_write(struct exchange *ex, const char *p, size_t n)
{
	if (ex->held_head) {
		const char *h = ex->held_head;
		size_t hn = ex->held_len;
		ex->held_head = NULL;
		if (h + hn == p) {
			(void)httpd_req_write(ex->req, h, hn + n);
			return;
		}
		(void)httpd_req_write(ex->req, h, hn);
	}
	if (n)
		(void)httpd_req_write(ex->req, p, n);
}

static size_t relay_body(struct exchange *ex, const char *p, size_t n)
{
	if (ex->upgraded || ex->resp_body.kind == HTTP_BODY_UNTIL_CLOSE) {
		client_write(ex, p, n);
		return n;
	}
	long k = http_body_tracker_feed(&ex->resp_body, p, n);
	if (k < 0) {
		ex->resp_close = 1;
		httpd_req_abort(ex->req);
		ex->finished = 1;
		detach_upstream(ex, 0);
		exchange_free(ex);
		return n;
	}
	client_write(ex, p, (size_t)k);
	if ((size_t)k < n)
		ex->extra_bytes = 1; /* a target sending past its response */
	if (ex->resp_body.done) {
		ex->resp_done = 1;
		if (ex->request_done)
			exchange_finish(ex, !ex->resp_close);
	}
	return n;
}

/* The response head is head[0..k): relay it and set up body framing. */
static size_t start_response(struct exchange *ex, const struct http_response *res, const char *head, size_t k)
{
	ex->status = res->status;
	ex->resp_head_done = 1;
	ex->resp_started = 1;
	/* Held back until the body bytes that follow it are known. */
	ex->held_head = head;
	ex->held_len = k;
	if (res->status == 101 && ex->upgrade) {
		client_write(ex, NULL, 0);
		ex->upgraded = 1;
		httpd_req_upgrade(ex->req);
		return k;
	}
	enum http_body_kind kind = http_response_body_kind(res, ex->is_head ? HTTP_REQ_HEAD : 0);
	http_body_tracker_init(&ex->resp_body, kind, res->content_length);
	ex->resp_close = res->conn_close || kind == HTTP_BODY_UNTIL_CLOSE;
	return k;
}

/* Parse response heads at the front of p; relays the head and whatever body
 * follows.  Returns the offset of an incomplete head, or n when done (or
 * failed: then ex->finished is set). */
static size_t parse_heads(struct exchange *ex, const char *p, size_t n)
{
	size_t off = 0;
	while (off < n) {
		struct http_response res;
		int k = http_parse_response(p + off, n - off, 0, &res);
		if (k == E_AGAIN)
			return off;
		if (k < 0) {
			log_info("ingress-http", "tunnel %s: malformed response from target", ex->tunnel_id);
			ex->resp_close = 1;
			exchange_fail(ex, 502, "TUNNEL_TARGET_CON_FAILED");
			return n;
		}
		if (res.status >= 100 && res.status < 200 && res.status != 101) {
			/* Interim responses are not relayed (spec §2.7). */
			off += (size_t)k;
			continue;
		}
		start_response(ex, &res, p + off, (size_t)k);
		off += (size_t)k;
		/* Also with nothing left: a response without a body (HEAD, 204,
		 * 304, Content-Length: 0) is complete with its head. */
		(void)relay_body(ex, p + off, n - off);
		return n;
	}
	return n;
}

static size_t collect_response_head(struct exchange *ex, const char *p, size_t n)
{
	if (buf_len(&ex->resp_head) == 0) {
		/* Common case: the whole head is in this piece, no copy. */
		size_t off = parse_heads(ex, p, n);
		if (off == n)
			return n;
		p += off;
		n -= off;
	}
	/* The head spans pieces: keep its start (bounded) and parse again. */
	size_t room = INGRESS_MAX_RESPONSE_HEAD - buf_len(&ex->resp_head);
	size_t take = n < room ? n : room;
	(void)buf_append(&ex->resp_head, p, take);
	size_t held = buf_len(&ex->resp_head);
	size_t off = parse_heads(ex, buf_data(&ex->resp_head), held);
	if (ex->finished)
		return n;
	if (ex->resp_head_done) {
		buf_free(&ex->resp_head);
		if (take < n)
			(void)relay_body(ex, p + take, n - take);
		return n;
	}
	if (off > 0)
		buf_consume(&ex->resp_head, off);
	if (buf_len(&ex->resp_head) >= INGRESS_MAX_RESPONSE_HEAD) {
		log_info("ingress-http", "tunnel %s: response head too large", ex->tunnel_id);
		ex->resp_close = 1;
		exchange_fail(ex, 502, "TUNNEL_TARGET_CON_FAILED");
	}
	return n;
}

static size_t up_data(void *arg, const char *p, size_t n)
{
	struct upstream *up = arg;
	struct exchange *ex = up->ex;
	if (!ex) {
		/* An idle channel must stay silent; anything else ends it. */
		upstream_close(up);
		return n;
	}
	if (!ex->resp_head_done)
		return collect_response_head(ex, p, n);
	if (httpd_req_congested(ex->req))
		return 0; /* the channel holds it and pauses the peer */
	return relay_body(ex, p, n);
}

static void up_closed(void *arg, int error)
{
	struct upstream *up = arg;
	struct exchange *ex = up->ex;
	up->ch = NULL;
	if (!ex) {
		upstream_close(up);
		return;
	}
	if (!ex->resp_started) {
		/* A reused channel the target dropped while idle: retry once on a
		 * fresh channel if the request can be sent again (§2.4 BETTER). */
		if (ex->reused && !ex->retried && !ex->has_body && !ex->upgrade && ex->head_sent > 0) {
			ex->retried = 1;
			detach_upstream(ex, 0);
			ex->head_sent = 0;
			start_upstream(ex);
			return;
		}
		exchange_fail(ex, 502, "TUNNEL_TARGET_CON_RESET");
		return;
	}
	ex->resp_close = 1;
	if (ex->upgraded || (ex->resp_head_done && ex->resp_body.kind == HTTP_BODY_UNTIL_CLOSE)) {
		exchange_finish(ex, 0);
		return;
	}
	if (ex->resp_done) {
		/* Answered, but the request body cannot reach the target now. */
		exchange_finish(ex, 0);
		return;
	}
	/* Truncated response: the client must see it (spec §2.3). */
	ex->finished = 1;
	detach_upstream(ex, 0);
	httpd_req_abort(ex->req);
	exchange_free(ex);
}

static const struct channel_sink upstream_sink = {
	.opened = up_opened,
	.failed = up_failed,
	.data = up_data,
	.closed = up_closed,
	.writable = up_writable,
};

static void start_upstream(struct exchange *ex)
{
	struct ingress_http *ih = ex->ih;
	struct upstream *up = ex->upgrade ? NULL : pool_take(ih, ex->tunnel_id);
	ex->reused = up != NULL;
	if (up) {
		up->ex = ex;
		ex->up = up;
		send_head(ex);
		return;
	}
	up = calloc(1, sizeof(*up));
	if (!up) {
		exchange_fail(ex, 502, "TUNNEL_TARGET_CON_FAILED");
		return;
	}
	up->ih = ih;
	snprintf(up->tunnel_id, sizeof(up->tunnel_id), "%s", ex->tunnel_id);
	up->ex = ex;
	ex->up = up;
	struct channel_origin origin = {httpd_req_peer(ex->req), 0};
	int err = 0;
	up->ch = registry_open_channel(ih->reg, ex->tunnel_id, &upstream_sink, up, &origin, &err);
	if (!up->ch) {
		ex->up = NULL;
		free(up);
		if (err == E_NOTFOUND)
			exchange_fail(ex, ex->upgrade ? 502 : 503, "TUNNEL_NOT_CONNECTED");
		else
			exchange_fail(ex, 429, "TUNNEL_TRANSPORT_REQUEST_LIMIT");
	}
}

/* ---- httpd stream callbacks ---- */

static size_t st_body(struct httpd_req *req, void *arg, const char *p, size_t n)
{
	struct exchange *ex = arg;
	struct upstream *up = ex->up;
	if (!up || !up->opened || !up->ch || ex->head_sent < buf_len(&ex->head_out))
		return 0;
	return channel_write(up->ch, p, n);
}

static void st_body_end(struct httpd_req *req, void *arg)
{
	struct exchange *ex = arg;
	ex->request_done = 1;
	if (ex->upgraded) {
		/* The client finished sending on an upgraded connection; WSM has
		 * no half-close, so the exchange ends when the target ends. */
		return;
	}
	if (ex->resp_done)
		exchange_finish(ex, !ex->resp_close);
}

static void st_writable(struct httpd_req *req, void *arg)
{
	struct exchange *ex = arg;
	if (ex->up && ex->up->ch)
		channel_resume(ex->up->ch);
}

static void st_aborted(struct httpd_req *req, void *arg)
{
	struct exchange *ex = arg;
	ex->resp_close = 1;
	exchange_finish(ex, 0);
}

static const struct httpd_stream_ops stream_ops = {
	.body = st_body,
	.body_end = st_body_end,
	.writable = st_writable,
	.aborted = st_aborted,
};

/* ---- component ---- */

/* Lower-cased Host without port into out; 0 if none. */
static int request_host(struct httpd_req *req, char *out, size_t cap)
{
	size_t n;
	const char *h = httpd_req_header(req, "host", &n);
	if (!h || n == 0)
		return 0;
	size_t end = 0;
	if (h[0] == '[') {
		while (end < n && h[end] != ']')
			end++;
		if (end < n)
			end++;
	} else {
		while (end < n && h[end] != ':')
			end++;
	}
	if (end == 0 || end >= cap)
		return 0;
	for (size_t i = 0; i < end; i++)
		out[i] = (h[i] >= 'A' && h[i] <= 'Z') ? (char)(h[i] + 32) : h[i];
	out[end] = '\0';
	return 1;
}

static int ingress_match(struct httpd_req *req, void *arg)
{
	struct ingress_http *ih = arg;
	if (!ih->domain[0])
		return 0;
	char host[URL_HOST_MAX];
	if (!request_host(req, host, sizeof(host)))
		return 0;
	if (strcmp(host, ih->domain) == 0 || (ih->api_host[0] && strcmp(host, ih->api_host) == 0))
		return 0;
	enum lookup lookup;
	const char *dot = strchr(host, '.');
	if (dot && dot != host && strcmp(dot + 1, ih->domain) == 0) {
		lookup = LOOKUP_WILDCARD;
	} else {
		/* Alt names have two labels at least and are not IP literals. */
		if (!dot || host[0] == '[' || net_is_ip(host, strlen(host)))
			return 0;
		lookup = LOOKUP_ALTNAME;
	}
	struct exchange *ex = calloc(1, sizeof(*ex));
	if (!ex)
		return 0;
	ex->ih = ih;
	ex->req = req;
	ex->lookup = lookup;
	snprintf(ex->host, sizeof(ex->host), "%s", host);
	if (lookup == LOOKUP_WILDCARD) {
		size_t n = (size_t)(dot - host);
		if (n > TUNNEL_ID_MAX)
			n = TUNNEL_ID_MAX;
		memcpy(ex->tunnel_id, host, n);
		ex->tunnel_id[n] = '\0';
	}
	tunnel_config_init(&ex->t);
	buf_init(&ex->head_out, INGRESS_MAX_FORWARDED_HEAD);
	buf_init(&ex->resp_head, INGRESS_MAX_RESPONSE_HEAD);
	httpd_req_set_data(req, ex);
	return HTTPD_MATCH_ASYNC;
}

static void tunnel_read(void *arg, const struct service_result *res, struct tunnel_config *t)
{
	struct exchange *ex = arg;
	ex->tunnel_status = res->status;
	if (res->status == SVC_OK) {
		ex->t = *t;
		/* Take ownership of the heap parts; the caller frees its copy. */
		memset(t, 0, sizeof(*t));
	}
	httpd_req_resolved(ex->req, 1);
}

static void altname_read(void *arg, int status, const char *value, size_t len)
{
	struct exchange *ex = arg;
	if (status == 0) {
		struct json_token toks[16];
		int n = json_parse(value, len, toks, 16, NULL);
		int v = n > 0 && toks[0].type == JSON_OBJECT ? json_obj_get(value, toks, 0, "tunnelId") : -1;
		if (v >= 0 && toks[v].type == JSON_STRING &&
		    json_str_decode(value, &toks[v], ex->tunnel_id, sizeof(ex->tunnel_id)) >= 0) {
			service_tunnel_get(ex->ih->svc, ex->tunnel_id, tunnel_read, ex);
			return;
		}
	}
	/* Not an alt name: the request goes to the next component (API). */
	struct httpd_req *req = ex->req;
	httpd_req_set_data(req, NULL);
	exchange_free(ex);
	httpd_req_resolved(req, 0);
}

static void ingress_resolve(struct httpd_req *req, void *arg)
{
	struct exchange *ex = httpd_req_get_data(req);
	if (ex->lookup == LOOKUP_WILDCARD) {
		service_tunnel_get(ex->ih->svc, ex->tunnel_id, tunnel_read, ex);
		return;
	}
	char key[STORAGE_MAX_KEY + 8];
	snprintf(key, sizeof(key), "http-%s", ex->host);
	storage_get(service_storage(ex->ih->svc), NS_ALTNAME, key, altname_read, ex);
}

static long ingress_body_limit(struct httpd_req *req, void *arg)
{
	return HTTPD_STREAM;
}

static void ingress_request(struct httpd_req *req, void *arg)
{
	struct exchange *ex = httpd_req_get_data(req);
	struct ingress_http *ih = arg;
	const struct http_request *hr = httpd_req_head(req);
	ex->upgrade = hr->upgrade;
	ex->is_head = httpd_req_method_is(req, "HEAD");
	ex->has_body = hr->chunked || hr->content_length > 0;
	httpd_req_stream(req, &stream_ops, ex);
	/* Checks in the order of spec/ingress.md §2.3. */
	if (ex->tunnel_status == SVC_BACKEND) {
		exchange_fail(ex, 503, "UNKNOWN_ERROR");
		return;
	}
	if (ex->tunnel_status != SVC_OK) {
		exchange_fail(ex, 404, "TUNNEL_NOT_FOUND");
		return;
	}
	if (registry_alive(ih->reg, ex->tunnel_id) == 0) {
		exchange_fail(ex, ex->upgrade ? 502 : 503, "TUNNEL_NOT_CONNECTED");
		return;
	}
	if (!ex->t.http_enabled) {
		exchange_fail(ex, 403, "TUNNEL_HTTP_INGRESS_DISABLED");
		return;
	}
	if (is_loop(ex, req)) {
		exchange_fail(ex, 508, "HTTP_INGRESS_REQUEST_LOOP");
		return;
	}
	if (build_head(ex, req) != 0) {
		exchange_fail(ex, 400, "BAD_INPUT");
		return;
	}
	if (hr->expect_continue && ex->has_body && !ex->upgrade) {
		/* Answered here; the target's own 100 is not relayed (§2.7). */
		(void)httpd_req_write(req, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	}
	if (!ex->has_body || ex->upgrade)
		ex->request_done = !ex->upgrade;
	start_upstream(ex);
}

void ingress_http_component(struct ingress_http *ih, struct httpd_component *c)
{
	memset(c, 0, sizeof(*c));
	c->name = "ingress-http";
	c->match = ingress_match;
	c->resolve = ingress_resolve;
	c->body_limit = ingress_body_limit;
	c->request = ingress_request;
	c->arg = ih;
}

struct ingress_http *ingress_http_new(struct loop *loop, struct service *svc, struct registry *reg)
{
	struct ingress_http *ih = calloc(1, sizeof(*ih));
	if (!ih)
		return NULL;
	ih->loop = loop;
	ih->svc = svc;
	ih->reg = reg;
	const struct config *cfg = service_config(svc);
	const char *domain = service_ingress_http_domain(svc);
	/* A leading "*." on the configured domain is ignored (§2.1). */
	if (strncmp(domain, "*.", 2) == 0)
		domain += 2;
	snprintf(ih->domain, sizeof(ih->domain), "%s", domain);
	if (cfg->api_url) {
		struct url u;
		if (url_parse(cfg->api_url, strlen(cfg->api_url), &u) == 0)
			snprintf(ih->api_host, sizeof(ih->api_host), "%s", u.host);
	}
	int idle = cfg->ingress_http_agent_idle_timeout > 0 ? cfg->ingress_http_agent_idle_timeout : 60;
	ih->idle_timeout_ms = (uint64_t)idle * 1000;
	return ih;
}

void ingress_http_free(struct ingress_http *ih)
{
	if (!ih)
		return;
	for (int i = 0; i < POOL_BUCKETS; i++)
		while (ih->pools[i] && ih->pools[i]->idle)
			upstream_close(ih->pools[i]->idle);
	free(ih);
}
