/* httpd.h - HTTP/1.1 server connections on the loop.
 *
 * One httpd per listening port.  For each request the handler's head()
 * runs when the head is parsed and returns how many body bytes may be
 * buffered (413 above it); request() runs when the body is complete and
 * must answer with exactly one httpd_respond*() call, now or later (after
 * asynchronous storage work).  The connection does not read further
 * requests until the answer is queued (pipelined requests wait in the
 * socket), so responses stay in order and slices stay valid.
 *
 * If the client goes away while a request is being handled, the request
 * stays valid until it is answered; the answer is then dropped.
 */
#ifndef EXPOSRD_HTTPD_H
#define EXPOSRD_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"

struct loop;
struct httpd;
struct httpd_req;

#define HTTPD_HEADER_TIMEOUT_MS 10000   /* first byte to complete head */
#define HTTPD_BODY_TIMEOUT_MS 30000     /* complete body */
#define HTTPD_IDLE_TIMEOUT_MS 60000     /* keep-alive idle between requests */
#define HTTPD_WRITE_TIMEOUT_MS 30000    /* response drained to the client */
#define HTTPD_MAX_RESPONSE_BYTES (8u << 20) /* queued response bytes per connection */
#define HTTPD_MAX_CONNECTIONS 16384

#define HTTPD_MAX_COMPONENTS 8

/* A component serves some requests of a listener.  Several components
 * share one port (API, WS endpoint, HTTP ingress; admin and admin API);
 * the first whose match() accepts the head gets the request, and a
 * request no component matches gets 404. */
#define HTTPD_MATCH_ASYNC 2

struct httpd_component {
	const char *name;
	/* 1 if this component serves the request (only the head is known), 0
	 * if not, HTTPD_MATCH_ASYNC if it must look something up first: then
	 * resolve() runs and the component answers with httpd_req_resolved(). */
	int (*match)(struct httpd_req *req, void *arg);
	void (*resolve)(struct httpd_req *req, void *arg);
	/* Body bytes to buffer for this request; more answers 413. */
	long (*body_limit)(struct httpd_req *req, void *arg);
	void (*request)(struct httpd_req *req, void *arg);
	void *arg;
};

/* Listen on port (host NULL: all addresses, IPv6 and IPv4).  Returns NULL
 * with errno set on failure. */
struct httpd *httpd_new(struct loop *loop, const char *host, int port, const char *name);
void httpd_free(struct httpd *h); /* closes listener and all connections; NULL ok */
int httpd_port(const struct httpd *h);
/* Stop accepting new connections (graceful shutdown); open connections
 * keep being served. */
void httpd_stop_listening(struct httpd *h);
/* Number of requests currently owned by handlers. */
unsigned httpd_busy(const struct httpd *h);
/* Append a component (tried in the order added).  Returns 0 or E_LIMIT. */
int httpd_add_component(struct httpd *h, const struct httpd_component *c);

/* Request accessors; slices are valid until the request is answered. */
const struct http_request *httpd_req_head(const struct httpd_req *r);
const char *httpd_req_path(const struct httpd_req *r, size_t *len);   /* without query */
const char *httpd_req_query(const struct httpd_req *r, size_t *len);  /* without '?', may be NULL */
const char *httpd_req_header(const struct httpd_req *r, const char *name, size_t *len);
const char *httpd_req_body(const struct httpd_req *r, size_t *len);
int httpd_req_has_body(const struct httpd_req *r); /* framed with CL or TE */
int httpd_req_method_is(const struct httpd_req *r, const char *method);
const char *httpd_req_peer(const struct httpd_req *r); /* numeric IP */
int httpd_req_local_port(const struct httpd_req *r);
struct loop *httpd_req_loop(const struct httpd_req *r);
/* Per-request user pointer for asynchronous handlers. */
void httpd_req_set_data(struct httpd_req *r, void *data);
void *httpd_req_get_data(const struct httpd_req *r);

/* Close the connection after the answer (handshake refusals). */
void httpd_req_set_close(struct httpd_req *r);
/* Decision of an asynchronous match: claimed 1 takes the request (body
 * reading and request() follow), 0 passes it to the next component. */
void httpd_req_resolved(struct httpd_req *r, int claimed);
/* Answer the request.  content_type NULL with body means text/plain.
 * Body is copied.  HEAD requests get the headers only. */
void httpd_respond(struct httpd_req *r, int status, const char *content_type, const char *body, size_t len);
/* JSON answer with Content-Type application/json; charset=utf-8. */
void httpd_respond_json(struct httpd_req *r, int status, const char *json, size_t len);
/* Empty-bodied answer carrying the reason phrase as text ("Not Found");
 * 204 gets no body at all. */
void httpd_respond_status(struct httpd_req *r, int status);

/* ---- streaming mode (HTTP ingress) ----
 *
 * A component whose body_limit() returns HTTPD_STREAM gets request() right
 * after the head; the head slices are valid only during that call.  It
 * must call httpd_req_stream() there.  The request body then arrives raw
 * (its framing kept) through body(); output is written raw with
 * httpd_req_write(); httpd_req_finish() ends the exchange, after which the
 * connection reads the next request (keep-alive) or closes.
 */
#define HTTPD_STREAM (-2L)
#define HTTPD_STREAM_HIGH_WATER (64u << 10) /* output above this: congested */
#define HTTPD_STREAM_LOW_WATER (16u << 10)  /* writable() again below this */

struct httpd_stream_ops {
	/* Raw body bytes of this request (or, after httpd_req_upgrade, every
	 * byte from the client).  Returns how many were taken; taking fewer
	 * pauses reading until httpd_req_resume_body(). */
	size_t (*body)(struct httpd_req *req, void *arg, const char *p, size_t n);
	/* The request body is complete (upgraded: the client sent EOF). */
	void (*body_end)(struct httpd_req *req, void *arg);
	/* Output drained below the low-water mark after being congested. */
	void (*writable)(struct httpd_req *req, void *arg);
	/* The client went away.  No more callbacks; the component must still
	 * call httpd_req_finish() to release the request. */
	void (*aborted)(struct httpd_req *req, void *arg);
};

void httpd_req_stream(struct httpd_req *req, const struct httpd_stream_ops *ops, void *arg);
/* Queue raw response bytes.  Returns 0, or E_LIMIT when the hard output cap
 * would be exceeded (nothing queued). */
int httpd_req_write(struct httpd_req *req, const char *p, size_t n);
/* True while queued output is above the high-water mark. */
int httpd_req_congested(const struct httpd_req *req);
void httpd_req_resume_body(struct httpd_req *req);
/* Raw mode after a 101 from upstream: no more HTTP parsing on this
 * connection; every client byte goes to body(). */
void httpd_req_upgrade(struct httpd_req *req);
/* End the exchange.  keep_alive 0 closes after the output is flushed; the
 * connection is also closed when the request body was not fully read.
 * status is for the access log (0: unknown). */
void httpd_req_finish(struct httpd_req *req, int keep_alive, int status);
/* Close the client connection at once (truncation is visible to it), and
 * release the request. */
void httpd_req_abort(struct httpd_req *req);

/* Take the connection's socket out of httpd (WebSocket transport): returns
 * the fd and appends bytes already read after the head to leftover. The
 * request and connection are released. */
int httpd_req_detach(struct httpd_req *req, char **leftover, size_t *leftover_len);

/* Counters for tests and the admin API. */
struct httpd_stats {
	uint64_t connections;
	uint64_t requests;
	unsigned open;
};
void httpd_get_stats(const struct httpd *h, struct httpd_stats *st);

#endif
