/* httpd.c - HTTP/1.1 server connections: read, parse, buffer the body,
 * hand the request to the handler, write the answer, keep-alive. */
#include "httpd.h"
#include "buf.h"
#include "err.h"
#include "log.h"
#include "loop.h"
#include "net.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HTTPD_READ_CHUNK 16384
#define HTTPD_MAX_BUFFERED_BODY (1u << 20) /* hard cap whatever a route asks */
#define HTTPD_IN_MAX (HTTP_MAX_HEADER_BYTES + HTTPD_MAX_BUFFERED_BODY + HTTPD_READ_CHUNK)
#define HTTPD_IDLE_KEEP_BYTES 4096 /* buffers kept allocated between requests */
#define HTTPD_ACCEPT_PAUSE_MS 100  /* back off when out of file descriptors */

enum conn_state {
	ST_HEAD,      /* reading a request head */
	ST_BODY,      /* reading the body */
	ST_HANDLING,  /* handler owns the request */
	ST_CLOSING,   /* flushing the last answer, then close */
};

struct httpd_req {
	struct httpd_conn *conn;
	struct http_request head;
	size_t head_len;
	size_t path_len;          /* target up to '?' */
	size_t body_limit;
	size_t body_consumed;     /* raw bytes of body read from in (after head) */
	struct buf chunked_body;  /* decoded chunked body */
	struct http_chunked chunked;
	uint64_t start_us;
	void *data;
	int sent_continue;
	const struct httpd_component *comp; /* NULL: no component matched */
};

struct httpd_conn {
	struct httpd *httpd;
	struct httpd_conn *prev, *next;
	int fd;
	enum conn_state state;
	int closed;       /* socket gone; freed once the pending request is answered */
	int in_process;   /* guards re-entry of conn_process */
	struct buf in, out;
	size_t scanned;
	uint64_t deadline;        /* 0: none (handler owns the request) */
	uint64_t timer_at;        /* when the armed timer fires */
	struct loop_timer *timer;
	char peer[NET_ADDRSTR_MAX];
	struct httpd_req req;
};

struct httpd {
	struct loop *loop;
	int lfds[2];
	int nlfds;
	int port;
	struct httpd_component comps[HTTPD_MAX_COMPONENTS];
	int ncomps;
	const char *name;
	struct httpd_conn *conns;
	struct loop_timer *accept_timer;
	struct httpd_stats stats;
};

static void conn_process(struct httpd_conn *c);
static void conn_flush(struct httpd_conn *c);
static void conn_io(struct loop *loop, int fd, int events, void *arg);

/* ---- request accessors ---- */

const struct http_request *httpd_req_head(const struct httpd_req *r) { return &r->head; }
struct loop *httpd_req_loop(const struct httpd_req *r) { return r->conn->httpd->loop; }
void httpd_req_set_data(struct httpd_req *r, void *data) { r->data = data; }
void *httpd_req_get_data(const struct httpd_req *r) { return r->data; }
const char *httpd_req_peer(const struct httpd_req *r) { return r->conn->peer; }
int httpd_req_local_port(const struct httpd_req *r) { return r->conn->httpd->port; }

const char *httpd_req_path(const struct httpd_req *r, size_t *len)
{
	*len = r->path_len;
	return r->head.target;
}

const char *httpd_req_query(const struct httpd_req *r, size_t *len)
{
	if (r->path_len >= r->head.target_len) {
		*len = 0;
		return NULL;
	}
	*len = r->head.target_len - r->path_len - 1;
	return r->head.target + r->path_len + 1;
}

const char *httpd_req_header(const struct httpd_req *r, const char *name, size_t *len)
{
	const struct http_header *h = http_find_header(&r->head, name);
	if (!h)
		return NULL;
	*len = h->value_len;
	return h->value;
}

int httpd_req_has_body(const struct httpd_req *r)
{
	return r->head.chunked || r->head.content_length >= 0;
}

const char *httpd_req_body(const struct httpd_req *r, size_t *len)
{
	if (r->head.chunked) {
		*len = buf_len(&r->chunked_body);
		return *len ? buf_data(&r->chunked_body) : "";
	}
	*len = r->head.content_length > 0 ? (size_t)r->head.content_length : 0;
	return buf_data(&r->conn->in) + r->head_len;
}

int httpd_req_method_is(const struct httpd_req *r, const char *method)
{
	size_t n = strlen(method);
	return r->head.method_len == n && memcmp(r->head.method, method, n) == 0;
}

/* ---- connection lifecycle ---- */

static void set_deadline(struct httpd_conn *c, uint64_t ms);

static void conn_timer(struct loop *loop, void *arg)
{
	struct httpd_conn *c = arg;
	c->timer = NULL;
	if (c->deadline == 0 || c->closed)
		return;
	uint64_t now = loop_now(loop);
	if (now < c->deadline) {
		c->timer = loop_timer_add(loop, c->deadline - now, conn_timer, c);
		c->timer_at = c->deadline;
		return;
	}
	log_debug(c->httpd->name, "connection from %s timed out in state %d", c->peer, c->state);
	if (c->state == ST_HEAD && buf_len(&c->in) > 0 && buf_len(&c->out) == 0) {
		static const char resp[] = "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
		(void)net_write(c->fd, resp, sizeof(resp) - 1);
	}
	c->state = ST_CLOSING;
	buf_consume(&c->out, buf_len(&c->out));
	conn_flush(c);
}

static void set_deadline(struct httpd_conn *c, uint64_t ms)
{
	struct loop *loop = c->httpd->loop;
	if (ms == 0) {
		c->deadline = 0;
		return;
	}
	c->deadline = loop_now(loop) + ms;
	/* The armed timer re-arms itself for a later deadline; only an
	 * earlier one needs a new timer. */
	if (c->timer && c->timer_at <= c->deadline)
		return;
	loop_timer_cancel(loop, c->timer);
	c->timer = loop_timer_add(loop, ms, conn_timer, c);
	c->timer_at = c->deadline;
}

static void conn_free(void *arg)
{
	struct httpd_conn *c = arg;
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->req.chunked_body);
	free(c);
}

static void conn_close(struct httpd_conn *c)
{
	if (c->closed)
		return;
	struct httpd *h = c->httpd;
	c->closed = 1;
	loop_del(h->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	loop_timer_cancel(h->loop, c->timer);
	c->timer = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	h->stats.open--;
	/* A request in the handler keeps the memory until it is answered. */
	if (c->state != ST_HANDLING)
		(void)loop_defer(h->loop, conn_free, c);
}

static void update_events(struct httpd_conn *c)
{
	int ev = 0;
	if (c->state == ST_HEAD || c->state == ST_BODY)
		ev |= LOOP_READ;
	if (buf_len(&c->out) > 0)
		ev |= LOOP_WRITE;
	loop_set_events(c->httpd->loop, c->fd, ev);
}

static void conn_flush(struct httpd_conn *c)
{
	while (buf_len(&c->out) > 0) {
		long n = net_write(c->fd, buf_data(&c->out), buf_len(&c->out));
		if (n < 0) {
			conn_close(c);
			return;
		}
		if (n == 0)
			break;
		buf_consume(&c->out, (size_t)n);
	}
	if (buf_len(&c->out) == 0) {
		buf_shrink(&c->out, HTTPD_IDLE_KEEP_BYTES);
		if (c->state == ST_CLOSING) {
			conn_close(c);
			return;
		}
	} else {
		set_deadline(c, HTTPD_WRITE_TIMEOUT_MS);
	}
	update_events(c);
}

/* ---- answers ---- */

static void append_response(struct httpd_conn *c, int status, const char *content_type,
			    const char *body, size_t len, int head_only, int keep_alive)
{
	int rc = buf_appendf(&c->out, "HTTP/1.1 %d %s\r\n", status, http_status_text(status));
	if (status != 204 && status != 304) {
		if (content_type)
			rc |= buf_appendf(&c->out, "Content-Type: %s\r\n", content_type);
		rc |= buf_appendf(&c->out, "Content-Length: %zu\r\n", len);
	}
	if (!keep_alive)
		rc |= buf_append(&c->out, "Connection: close\r\n", 19);
	rc |= buf_append(&c->out, "\r\n", 2);
	if (!head_only && status != 204 && status != 304)
		rc |= buf_append(&c->out, body, len);
	if (rc != 0) {
		log_warn(c->httpd->name, "response to %s over the output limit", c->peer);
		c->state = ST_CLOSING;
		buf_consume(&c->out, buf_len(&c->out));
	}
}

/* Answer a request that never reached the handler and close. */
static void respond_error_close(struct httpd_conn *c, int status)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "%s", http_status_text(status));
	append_response(c, status, "text/plain; charset=utf-8", body, (size_t)n, 0, 0);
	log_access(c->httpd->name, c->peer, "-", "-", 1, status, 0);
	c->state = ST_CLOSING;
	loop_set_events(c->httpd->loop, c->fd, LOOP_WRITE);
	conn_flush(c);
}

static void reset_request(struct httpd_conn *c)
{
	struct httpd_req *r = &c->req;
	size_t used = r->head_len + r->body_consumed;
	buf_consume(&c->in, used);
	buf_shrink(&c->in, HTTPD_IDLE_KEEP_BYTES);
	buf_free(&r->chunked_body);
	r->head_len = 0;
	r->body_consumed = 0;
	r->data = NULL;
	r->sent_continue = 0;
	c->scanned = 0;
}

void httpd_respond(struct httpd_req *r, int status, const char *content_type, const char *body, size_t len)
{
	struct httpd_conn *c = r->conn;
	struct httpd *h = c->httpd;
	if (c->state != ST_HANDLING)
		return; /* answered twice: a handler bug, ignore the second */
	size_t plen;
	const char *path = httpd_req_path(r, &plen);
	char method[16];
	size_t mlen = r->head.method_len < sizeof(method) - 1 ? r->head.method_len : sizeof(method) - 1;
	memcpy(method, r->head.method, mlen);
	method[mlen] = '\0';
	log_access(h ? h->name : "http", c->peer, method, path, plen, status,
		   (long long)(loop_mono_us() - r->start_us));
	if (c->closed) {
		c->state = ST_CLOSING;
		conn_free(c);
		return;
	}
	int head_only = httpd_req_method_is(r, "HEAD");
	int keep_alive = r->head.keep_alive;
	if (!body)
		len = 0;
	append_response(c, status, content_type, body ? body : "", len, head_only, keep_alive);
	h->stats.requests++;
	reset_request(c);
	if (c->state == ST_HANDLING)
		c->state = keep_alive ? ST_HEAD : ST_CLOSING;
	set_deadline(c, HTTPD_IDLE_TIMEOUT_MS);
	conn_flush(c);
	if (!c->closed && c->state == ST_HEAD && !c->in_process && buf_len(&c->in) > 0)
		conn_process(c);
}

void httpd_respond_json(struct httpd_req *r, int status, const char *json, size_t len)
{
	httpd_respond(r, status, "application/json; charset=utf-8", json, len);
}

void httpd_respond_status(struct httpd_req *r, int status)
{
	if (status == 204) {
		httpd_respond(r, status, NULL, NULL, 0);
		return;
	}
	const char *text = http_status_text(status);
	httpd_respond(r, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* ---- request processing ---- */

static int start_body(struct httpd_conn *c)
{
	struct httpd_req *r = &c->req;
	struct httpd *h = c->httpd;
	r->comp = NULL;
	for (int i = 0; i < h->ncomps && !r->comp; i++)
		if (h->comps[i].match(r, h->comps[i].arg))
			r->comp = &h->comps[i];
	long limit = r->comp && r->comp->body_limit ? r->comp->body_limit(r, r->comp->arg) : 0;
	if (!r->comp)
		limit = HTTPD_MAX_BUFFERED_BODY; /* read it to keep the connection in sync */
	if (limit < 0)
		limit = 0;
	if ((unsigned long)limit > HTTPD_MAX_BUFFERED_BODY)
		limit = HTTPD_MAX_BUFFERED_BODY;
	r->body_limit = (size_t)limit;
	if (r->head.content_length > (int64_t)r->body_limit) {
		respond_error_close(c, 413);
		return E_LIMIT;
	}
	if (r->head.chunked) {
		http_chunked_init(&r->chunked);
		buf_init(&r->chunked_body, r->body_limit);
	}
	c->state = ST_BODY;
	set_deadline(c, HTTPD_BODY_TIMEOUT_MS);
	return 0;
}

/* Returns 1 when the body is complete, 0 when more input is needed, <0 on error. */
static int read_body(struct httpd_conn *c)
{
	struct httpd_req *r = &c->req;
	size_t avail = buf_len(&c->in) - r->head_len;
	if (!r->head.chunked) {
		size_t need = r->head.content_length > 0 ? (size_t)r->head.content_length : 0;
		if (avail < need)
			return 0;
		r->body_consumed = need;
		return 1;
	}
	const char *base = buf_data(&c->in) + r->head_len;
	while (r->body_consumed < avail) {
		const char *data;
		size_t dlen;
		int done;
		int n = http_chunked_decode(&r->chunked, base + r->body_consumed, avail - r->body_consumed,
					    &data, &dlen, &done);
		if (n < 0) {
			respond_error_close(c, 400);
			return E_INVAL;
		}
		r->body_consumed += (size_t)n;
		if (dlen > 0 && buf_append(&r->chunked_body, data, dlen) != 0) {
			respond_error_close(c, 413);
			return E_LIMIT;
		}
		if (done)
			return 1;
		if (n == 0)
			break;
	}
	return 0;
}

static void maybe_send_continue(struct httpd_conn *c)
{
	struct httpd_req *r = &c->req;
	if (!r->head.expect_continue || r->sent_continue || r->head.minor_version == 0)
		return;
	if (buf_len(&c->in) > r->head_len)
		return; /* the client already started sending the body */
	r->sent_continue = 1;
	(void)buf_append(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

static int parse_head(struct httpd_conn *c)
{
	struct httpd_req *r = &c->req;
	int rc = http_parse_request(buf_data(&c->in), buf_len(&c->in), c->scanned, &r->head);
	if (rc == E_AGAIN) {
		c->scanned = buf_len(&c->in);
		if (c->scanned > 0 && c->deadline - loop_now(c->httpd->loop) > HTTPD_HEADER_TIMEOUT_MS)
			set_deadline(c, HTTPD_HEADER_TIMEOUT_MS);
		return 0;
	}
	if (rc < 0) {
		respond_error_close(c, rc == E_LIMIT ? 431 : 400);
		return rc;
	}
	r->head_len = (size_t)rc;
	r->body_consumed = 0;
	r->start_us = loop_mono_us();
	const char *q = memchr(r->head.target, '?', r->head.target_len);
	r->path_len = q ? (size_t)(q - r->head.target) : r->head.target_len;
	return 1;
}

static void conn_process(struct httpd_conn *c)
{
	struct httpd *h = c->httpd;
	c->in_process = 1;
	while (!c->closed) {
		if (c->state == ST_HEAD) {
			int rc = parse_head(c);
			if (rc <= 0)
				break;
			if (start_body(c) != 0)
				break;
		}
		if (c->state != ST_BODY)
			break;
		int rc = read_body(c);
		if (rc < 0)
			break;
		if (rc == 0) {
			maybe_send_continue(c);
			break;
		}
		c->state = ST_HANDLING;
		c->deadline = 0;
		loop_set_events(h->loop, c->fd, buf_len(&c->out) ? LOOP_WRITE : 0);
		if (c->req.comp)
			c->req.comp->request(&c->req, c->req.comp->arg);
		else
			httpd_respond_status(&c->req, 404);
		if (c->state == ST_HANDLING)
			break; /* answered later */
	}
	c->in_process = 0;
	if (c->closed)
		return;
	if (buf_len(&c->out) > 0)
		conn_flush(c);
	else
		update_events(c);
}

static void conn_read(struct httpd_conn *c)
{
	for (int rounds = 0; rounds < 4; rounds++) {
		size_t avail;
		char *w = buf_reserve(&c->in, HTTPD_READ_CHUNK, &avail);
		if (!w) {
			respond_error_close(c, c->state == ST_HEAD ? 431 : 413);
			return;
		}
		long n = net_read(c->fd, w, avail);
		if (n == 0)
			break;
		if (n < 0) {
			conn_close(c);
			return;
		}
		buf_commit(&c->in, (size_t)n);
		if ((size_t)n < avail)
			break;
	}
	conn_process(c);
}

static void conn_io(struct loop *loop, int fd, int events, void *arg)
{
	struct httpd_conn *c = arg;
	if (events & LOOP_WRITE) {
		conn_flush(c);
		if (c->closed)
			return;
	}
	if ((events & (LOOP_READ | LOOP_ERROR)) && (c->state == ST_HEAD || c->state == ST_BODY))
		conn_read(c);
	else if ((events & LOOP_ERROR) && !(events & LOOP_WRITE))
		conn_close(c);
}

/* ---- listener ---- */

static void listener_io(struct loop *loop, int fd, int events, void *arg);

static void accept_resume(struct loop *loop, void *arg)
{
	struct httpd *h = arg;
	h->accept_timer = NULL;
	for (int i = 0; i < h->nlfds; i++)
		loop_set_events(loop, h->lfds[i], LOOP_READ);
}

static void accept_one(struct httpd *h, int cfd, struct sockaddr_storage *sa)
{
	struct httpd_conn *c = calloc(1, sizeof(*c));
	if (!c || h->stats.open >= HTTPD_MAX_CONNECTIONS) {
		free(c);
		close(cfd);
		return;
	}
	c->httpd = h;
	c->fd = cfd;
	c->state = ST_HEAD;
	c->req.conn = c;
	buf_init(&c->in, HTTPD_IN_MAX);
	buf_init(&c->out, HTTPD_MAX_RESPONSE_BYTES);
	buf_init(&c->req.chunked_body, 0);
	net_addr_host(sa, c->peer, sizeof(c->peer));
	if (loop_add(h->loop, cfd, LOOP_READ, conn_io, c) != 0) {
		close(cfd);
		free(c);
		return;
	}
	c->next = h->conns;
	if (h->conns)
		h->conns->prev = c;
	h->conns = c;
	h->stats.open++;
	h->stats.connections++;
	set_deadline(c, HTTPD_HEADER_TIMEOUT_MS);
}

static void listener_io(struct loop *loop, int fd, int events, void *arg)
{
	struct httpd *h = arg;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage sa;
		socklen_t salen;
		int cfd = net_accept(fd, &sa, &salen);
		if (cfd >= 0) {
			accept_one(h, cfd, &sa);
			continue;
		}
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			log_warn(h->name, "accept: %s, pausing", strerror(errno));
			for (int k = 0; k < h->nlfds; k++)
				loop_set_events(loop, h->lfds[k], 0);
			if (!h->accept_timer)
				h->accept_timer = loop_timer_add(loop, HTTPD_ACCEPT_PAUSE_MS, accept_resume, h);
		}
		return;
	}
}

struct httpd *httpd_new(struct loop *loop, const char *host, int port, const char *name)
{
	struct httpd *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->loop = loop;
	h->name = name;
	if (net_listen_tcp(host, port, h->lfds, &h->nlfds) != 0) {
		int saved = errno;
		free(h);
		errno = saved;
		return NULL;
	}
	h->port = net_local_port(h->lfds[0]);
	for (int i = 0; i < h->nlfds; i++)
		(void)loop_add(loop, h->lfds[i], LOOP_READ, listener_io, h);
	return h;
}

int httpd_add_component(struct httpd *h, const struct httpd_component *c)
{
	if (h->ncomps == HTTPD_MAX_COMPONENTS)
		return E_LIMIT;
	h->comps[h->ncomps++] = *c;
	return 0;
}

void httpd_stop_listening(struct httpd *h)
{
	for (int i = 0; i < h->nlfds; i++) {
		loop_del(h->loop, h->lfds[i]);
		close(h->lfds[i]);
	}
	h->nlfds = 0;
	loop_timer_cancel(h->loop, h->accept_timer);
	h->accept_timer = NULL;
}

unsigned httpd_busy(const struct httpd *h)
{
	unsigned n = 0;
	for (const struct httpd_conn *c = h->conns; c; c = c->next)
		if (c->state == ST_HANDLING)
			n++;
	return n;
}

int httpd_port(const struct httpd *h)
{
	return h->port;
}

void httpd_get_stats(const struct httpd *h, struct httpd_stats *st)
{
	*st = h->stats;
}

void httpd_free(struct httpd *h)
{
	if (!h)
		return;
	httpd_stop_listening(h);
	while (h->conns) {
		struct httpd_conn *c = h->conns;
		int pending = c->state == ST_HANDLING;
		conn_close(c);
		/* The pending request will answer into a detached connection. */
		if (pending)
			c->httpd = NULL;
	}
	free(h);
}
