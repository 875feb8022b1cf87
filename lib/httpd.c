/* httpd.c - HTTP/1.1 server connections: read, parse, buffer the body,
 * hand the request to the handler, write the answer, keep-alive. */
#include "httpd.h"
#include "buf.h"
#include "err.h"
#include "log.h"
#include "loop.h"
#include "net.h"

#include <errno.h>
#include <stdint.h>
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
	ST_DISPATCH,  /* a component decides asynchronously whether it serves the request */
	ST_HANDLING,  /* handler owns the request */
	ST_STREAM,    /* streaming exchange: body in, raw output out */
	ST_RAW,       /* upgraded: raw bytes both ways */
	ST_CLOSING,   /* flushing the last answer, then close */
};

/* How a streamed request body is framed. */
enum body_framing { BODY_NONE, BODY_LENGTH, BODY_CHUNKED };

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
	int next_comp;            /* next component to try */
	int selected;             /* component choice is final */
	int resolving;            /* waiting for httpd_req_resolved() */
	/* streaming mode */
	const struct httpd_stream_ops *stream;
	void *stream_arg;
	enum body_framing framing;
	uint64_t body_remaining;  /* BODY_LENGTH: bytes still to deliver */
	int body_done;            /* body fully delivered (body_end sent) */
	int body_paused;          /* the component took fewer bytes than offered */
	int aborted;              /* the client went away */
	int congested;            /* output above the high-water mark */
	unsigned deferred_gen;    /* exchange a deferred body_end belongs to */
	char method_copy[16];     /* for the access log after the head is gone */
	size_t method_len;
};

struct httpd_conn {
	struct httpd *httpd;
	struct httpd_conn *prev, *next;
	int fd;
	enum conn_state state;
	int closed;       /* socket gone; freed once the pending request is answered */
	int in_process;   /* guards re-entry of conn_process */
	unsigned gen;     /* bumped when an exchange ends (stale deferred calls) */
	struct loop *loop;
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
static void start_stream(struct httpd_conn *c);
static void stream_body_end_deferred(void *arg);
static void stream_deliver(struct httpd_conn *c);
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
	if (c->state == ST_STREAM || c->state == ST_RAW) {
		struct httpd_req *r = &c->req;
		if (!r->aborted) {
			r->aborted = 1;
			if (r->stream && r->stream->aborted)
				r->stream->aborted(r, r->stream_arg);
		}
		return;
	}
	if (c->state != ST_HANDLING && c->state != ST_DISPATCH)
		(void)loop_defer(h->loop, conn_free, c);
}

static void update_events(struct httpd_conn *c)
{
	int ev = 0;
	struct httpd_req *r = &c->req;
	if (c->state == ST_HEAD || c->state == ST_BODY)
		ev |= LOOP_READ;
	/* Streaming: read the body (or raw bytes) unless the component is full;
	 * after the body, keep reading a little to notice the client leaving. */
	if ((c->state == ST_STREAM || c->state == ST_RAW) && !r->body_paused &&
	    buf_len(&c->in) < HTTPD_STREAM_HIGH_WATER)
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
	int streaming = c->state == ST_STREAM || c->state == ST_RAW;
	if (buf_len(&c->out) == 0) {
		buf_shrink(&c->out, HTTPD_IDLE_KEEP_BYTES);
		if (c->state == ST_CLOSING) {
			conn_close(c);
			return;
		}
	} else if (!streaming) {
		set_deadline(c, HTTPD_WRITE_TIMEOUT_MS);
	}
	update_events(c);
	struct httpd_req *r = &c->req;
	if (streaming && r->congested && buf_len(&c->out) < HTTPD_STREAM_LOW_WATER) {
		r->congested = 0;
		if (r->stream && r->stream->writable && !r->aborted)
			r->stream->writable(r, r->stream_arg);
	}
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
	log_debug(c->httpd->name, "answering %d to %s in state %d with %zu bytes buffered", status, c->peer,
		  c->state, buf_len(&c->in));
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
		(void)loop_defer(c->loop, conn_free, c);
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

void httpd_req_set_close(struct httpd_req *r)
{
	r->head.keep_alive = 0;
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
	if (!r->selected) {
		r->comp = NULL;
		while (r->next_comp < h->ncomps && !r->comp) {
			const struct httpd_component *comp = &h->comps[r->next_comp++];
			int m = comp->match(r, comp->arg);
			if (m == HTTPD_MATCH_ASYNC) {
				/* The component looks something up first (storage). */
				c->state = ST_DISPATCH;
				r->comp = comp;
				r->resolving = 1;
				comp->resolve(r, comp->arg);
				return E_AGAIN;
			}
			if (m)
				r->comp = comp;
		}
	}
	r->selected = 1;
	long limit = r->comp && r->comp->body_limit ? r->comp->body_limit(r, r->comp->arg) : 0;
	if (!r->comp)
		limit = HTTPD_MAX_BUFFERED_BODY; /* read it to keep the connection in sync */
	if (limit == HTTPD_STREAM) {
		c->state = ST_STREAM;
		return 0;
	}
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
	r->method_len = r->head.method_len < sizeof(r->method_copy) ? r->head.method_len : sizeof(r->method_copy);
	memcpy(r->method_copy, r->head.method, r->method_len);
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
			c->req.next_comp = 0;
			c->req.selected = 0;
		}
		if (c->state == ST_HEAD || c->state == ST_DISPATCH) {
			if (c->req.resolving)
				break; /* still waiting for httpd_req_resolved() */
			if (start_body(c) != 0)
				break;
			if (c->state == ST_STREAM) {
				start_stream(c);
				if (c->state == ST_STREAM || c->state == ST_RAW)
					break;
				continue;
			}
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
		uintptr_t before = c->state == ST_BODY ? (uintptr_t)buf_data(&c->in) : 0;
		char *w = buf_reserve(&c->in, HTTPD_READ_CHUNK, &avail);
		if (!w) {
			respond_error_close(c, c->state == ST_HEAD ? 431 : 413);
			return;
		}
		/* The parsed head points into c->in; buf_reserve may have moved
		 * it (realloc or compaction).  The head bytes are unchanged, so
		 * parsing them again re-points every slice. */
		if (c->state == ST_BODY && c->req.head_len > 0 && (uintptr_t)buf_data(&c->in) != before)
			(void)http_parse_request(buf_data(&c->in), c->req.head_len, 0, &c->req.head);
		/* Read in bounded steps so the buffer grows only as far as needed. */
		if (avail > HTTPD_READ_CHUNK)
			avail = HTTPD_READ_CHUNK;
		long n = net_read(c->fd, w, avail);
		if (n == 0)
			break;
		if (n == E_CLOSED && c->state == ST_RAW && !c->req.body_done) {
			/* Upgraded: the client finished sending; output may go on. */
			stream_deliver(c);
			if (c->closed)
				return;
			c->req.body_done = 1;
			c->req.body_paused = 1; /* stop reading */
			update_events(c);
			if (c->req.stream && c->req.stream->body_end)
				c->req.stream->body_end(&c->req, c->req.stream_arg);
			return;
		}
		if (n < 0) {
			conn_close(c);
			return;
		}
		buf_commit(&c->in, (size_t)n);
		if ((size_t)n < avail)
			break;
		/* Streaming: hand over what we have before reading more. */
		if ((c->state == ST_STREAM || c->state == ST_RAW) && buf_len(&c->in) >= HTTPD_STREAM_HIGH_WATER)
			break;
	}
	if (c->state == ST_STREAM || c->state == ST_RAW) {
		stream_deliver(c);
		if (!c->closed)
			update_events(c);
		return;
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
	int reading = c->state == ST_HEAD || c->state == ST_BODY || c->state == ST_STREAM || c->state == ST_RAW;
	if ((events & (LOOP_READ | LOOP_ERROR)) && reading)
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
	c->loop = h->loop;
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
		int pending = c->state == ST_HANDLING || c->state == ST_STREAM || c->state == ST_RAW ||
			      c->state == ST_DISPATCH;
		conn_close(c);
		/* The pending request will answer into a detached connection. */
		if (pending)
			c->httpd = NULL;
	}
	free(h);
}

/* ---- streaming exchanges ---- */

static void start_stream(struct httpd_conn *c)
{
	struct httpd_req *r = &c->req;
	r->stream = NULL;
	r->stream_arg = NULL;
	r->body_done = r->body_paused = r->aborted = r->congested = 0;
	r->framing = BODY_NONE;
	r->body_remaining = 0;
	if (r->head.chunked) {
		r->framing = BODY_CHUNKED;
		http_chunked_init(&r->chunked);
	} else if (r->head.content_length > 0) {
		r->framing = BODY_LENGTH;
		r->body_remaining = (uint64_t)r->head.content_length;
	}
	c->deadline = 0; /* an active exchange is never cut by httpd timers */
	r->comp->request(r, r->comp->arg);
	if (c->closed && !r->stream)
		return;
	if (c->state != ST_STREAM && c->state != ST_RAW)
		return; /* finished (or detached) inside request() */
	if (!r->stream) {
		log_error(c->httpd->name, "component %s did not take the stream", r->comp->name);
		httpd_req_abort(r);
		return;
	}
	/* The head is no longer needed: the body starts at the buffer front. */
	buf_consume(&c->in, r->head_len);
	r->head_len = 0;
	r->body_consumed = 0;
	stream_deliver(c);
	if (!c->closed)
		update_events(c);
}

/* How many of the n buffered bytes belong to the body, advancing the
 * framing state only for the bytes the component took. */
static long body_span(struct httpd_req *r, const char *p, size_t n, struct http_chunked *after, int *done)
{
	*done = 0;
	if (r->framing == BODY_NONE) {
		*done = 1;
		return 0;
	}
	if (r->framing == BODY_LENGTH) {
		size_t take = n < r->body_remaining ? n : (size_t)r->body_remaining;
		*done = take == r->body_remaining;
		return (long)take;
	}
	*after = r->chunked;
	size_t used = 0;
	while (used < n) {
		const char *data;
		size_t dlen;
		int fin;
		int k = http_chunked_decode(after, p + used, n - used, &data, &dlen, &fin);
		if (k < 0)
			return E_INVAL;
		used += (size_t)k;
		if (fin) {
			*done = 1;
			break;
		}
		if (k == 0)
			break;
	}
	return (long)used;
}

static void stream_deliver(struct httpd_conn *c)
{
	struct httpd_req *r = &c->req;
	while (!c->closed && !r->aborted && !r->body_paused && r->stream) {
		size_t len = buf_len(&c->in);
		const char *p = buf_data(&c->in);
		if (c->state == ST_RAW) {
			if (len == 0)
				return;
			size_t took = r->stream->body(r, r->stream_arg, p, len);
			buf_consume(&c->in, took);
			if (took < len)
				r->body_paused = 1;
			continue;
		}
		if (c->state != ST_STREAM || r->body_done)
			return;
		struct http_chunked after;
		int done;
		long span = body_span(r, p, len, &after, &done);
		if (span < 0) {
			log_debug(c->httpd->name, "bad chunked body from %s", c->peer);
			httpd_req_abort(r);
			return;
		}
		size_t took = 0;
		if (span > 0) {
			took = r->stream->body(r, r->stream_arg, p, (size_t)span);
			if (c->closed || r->aborted)
				return;
		}
		if (took == (size_t)span) {
			if (r->framing == BODY_CHUNKED)
				r->chunked = after;
			else
				r->body_remaining -= took;
		} else if (r->framing == BODY_CHUNKED) {
			const char *d;
			size_t dl;
			int fin;
			(void)http_chunked_decode(&r->chunked, p, took, &d, &dl, &fin);
			done = 0;
		} else {
			r->body_remaining -= took;
			done = 0;
		}
		buf_consume(&c->in, took);
		if (took < (size_t)span) {
			r->body_paused = 1;
			return;
		}
		if (!done)
			return; /* wait for more bytes */
		r->body_done = 1;
		if (r->stream->body_end)
			r->stream->body_end(r, r->stream_arg);
		return;
	}
}

void httpd_req_stream(struct httpd_req *r, const struct httpd_stream_ops *ops, void *arg)
{
	r->stream = ops;
	r->stream_arg = arg;
	if (r->framing == BODY_NONE && !r->body_done && r->conn->state == ST_STREAM) {
		/* No body: it is complete right away, reported after request(). */
		r->body_done = 1;
		r->deferred_gen = r->conn->gen;
		if (ops->body_end)
			(void)loop_defer(r->conn->loop, stream_body_end_deferred, r);
	}
}

static void stream_body_end_deferred(void *arg)
{
	struct httpd_req *r = arg;
	struct httpd_conn *c = r->conn;
	if (c->state != ST_STREAM || r->aborted || !r->stream || r->deferred_gen != c->gen)
		return;
	r->stream->body_end(r, r->stream_arg);
}

int httpd_req_write(struct httpd_req *r, const char *p, size_t n)
{
	struct httpd_conn *c = r->conn;
	if (c->closed || r->aborted || n == 0)
		return 0;
	if (buf_len(&c->out) == 0) {
		/* Nothing queued: write straight from the caller's buffer. */
		long w = net_write(c->fd, p, n);
		if (w < 0) {
			/* The error surfaces as a hangup on the next poll. */
			return 0;
		}
		p += w;
		n -= (size_t)w;
		if (n == 0)
			return 0;
	}
	if (buf_append(&c->out, p, n) != 0)
		return E_LIMIT;
	if (buf_len(&c->out) > HTTPD_STREAM_HIGH_WATER)
		r->congested = 1;
	update_events(c);
	return 0;
}

int httpd_req_congested(const struct httpd_req *r)
{
	return r->congested;
}

void httpd_req_resume_body(struct httpd_req *r)
{
	struct httpd_conn *c = r->conn;
	if (!r->body_paused || c->closed)
		return;
	r->body_paused = 0;
	if (c->state == ST_RAW && r->body_done)
		return;
	stream_deliver(c);
	if (!c->closed)
		update_events(c);
}

static void stream_raw_deferred(void *arg)
{
	struct httpd_req *r = arg;
	struct httpd_conn *c = r->conn;
	if (c->closed || c->state != ST_RAW || r->aborted || !r->stream || r->deferred_gen != c->gen)
		return;
	stream_deliver(c);
	if (!c->closed)
		update_events(c);
}

void httpd_req_upgrade(struct httpd_req *r)
{
	struct httpd_conn *c = r->conn;
	if (c->state != ST_STREAM)
		return;
	c->state = ST_RAW;
	r->body_done = 0;
	r->head.keep_alive = 0;
	/* Bytes the client sent right after the head are already read: no
	 * read event will come for them, so hand them over now (after the
	 * caller's callback returns). */
	if (buf_len(&c->in) > 0) {
		r->deferred_gen = c->gen;
		(void)loop_defer(c->loop, stream_raw_deferred, r);
	}
}

static void log_stream_access(struct httpd_req *r, int status)
{
	struct httpd_conn *c = r->conn;
	char method[16];
	size_t mlen = r->method_len < sizeof(method) - 1 ? r->method_len : sizeof(method) - 1;
	memcpy(method, r->method_copy, mlen);
	method[mlen] = '\0';
	log_access(c->httpd ? c->httpd->name : "http", c->peer, method, "-", 1, status,
		   (long long)(loop_mono_us() - r->start_us));
}

void httpd_req_finish(struct httpd_req *r, int keep_alive, int status)
{
	struct httpd_conn *c = r->conn;
	if (c->state != ST_STREAM && c->state != ST_RAW)
		return;
	log_stream_access(r, status);
	c->gen++;
	r->stream = NULL;
	if (c->closed) {
		c->state = ST_CLOSING;
		(void)loop_defer(c->loop, conn_free, c);
		return;
	}
	c->httpd->stats.requests++;
	int keep = keep_alive && r->head.keep_alive && r->body_done && c->state == ST_STREAM;
	/* Finished inside request() (an error answer): the head is still at
	 * the buffer front; without this the next round parses it again. */
	buf_consume(&c->in, r->head_len);
	r->head_len = 0;
	r->body_consumed = 0;
	r->data = NULL;
	r->sent_continue = 0;
	r->body_paused = 0;
	c->scanned = 0;
	c->state = keep ? ST_HEAD : ST_CLOSING;
	set_deadline(c, HTTPD_IDLE_TIMEOUT_MS);
	conn_flush(c);
	if (!c->closed && c->state == ST_HEAD && !c->in_process && buf_len(&c->in) > 0)
		conn_process(c);
}

void httpd_req_abort(struct httpd_req *r)
{
	struct httpd_conn *c = r->conn;
	if (c->state == ST_STREAM || c->state == ST_RAW)
		log_stream_access(r, 0);
	c->gen++;
	r->stream = NULL;
	r->aborted = 1;
	int was_closed = c->closed;
	c->state = ST_CLOSING;
	if (!was_closed)
		conn_close(c); /* frees it (deferred) */
	else
		(void)loop_defer(c->loop, conn_free, c);
}

int httpd_req_detach(struct httpd_req *r, char **leftover, size_t *leftover_len)
{
	struct httpd_conn *c = r->conn;
	struct httpd *h = c->httpd;
	size_t extra = buf_len(&c->in) - r->head_len;
	*leftover = NULL;
	*leftover_len = 0;
	if (extra > 0) {
		*leftover = malloc(extra);
		if (*leftover) {
			memcpy(*leftover, buf_data(&c->in) + r->head_len, extra);
			*leftover_len = extra;
		}
	}
	int fd = c->fd;
	log_stream_access(r, 101);
	loop_del(h->loop, fd);
	loop_timer_cancel(h->loop, c->timer);
	c->timer = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	h->stats.open--;
	h->stats.requests++;
	c->fd = -1;
	c->closed = 1;
	c->state = ST_CLOSING;
	c->gen++;
	(void)loop_defer(c->loop, conn_free, c);
	return fd;
}

void httpd_req_resolved(struct httpd_req *r, int claimed)
{
	struct httpd_conn *c = r->conn;
	if (c->state != ST_DISPATCH || !r->resolving)
		return;
	r->resolving = 0;
	r->selected = claimed;
	if (!claimed)
		r->comp = NULL; /* go on with the components after it */
	if (c->closed) {
		/* The client left while we looked: nothing more to do. */
		c->state = ST_CLOSING;
		(void)loop_defer(c->loop, conn_free, c);
		return;
	}
	if (!c->in_process)
		conn_process(c);
}
