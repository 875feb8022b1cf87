/* http.h - incremental HTTP/1.1 request parsing (no I/O).
 *
 * http_parse_request parses a complete request head from the caller's
 * buffer and returns slices into it (valid while the bytes stay in the
 * buffer).  http_chunked_decode decodes a chunked body a piece at a time.
 * http_parse_response parses a response head from a tunnel target, and
 * struct http_body_tracker finds where a body relayed raw ends.
 */
#ifndef EXPOSRD_HTTP_H
#define EXPOSRD_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEADER_BYTES 16384   /* request line + headers; over: 431 */
#define HTTP_MAX_HEADERS 64           /* header fields; over: 431 */
#define HTTP_MAX_CHUNK_EXT 1024       /* chunk extension bytes; over: 400 */
#define HTTP_MAX_TRAILER_BYTES 4096   /* trailer section bytes; over: 400 */

struct http_header {
	const char *name;
	size_t name_len;
	const char *value;   /* leading/trailing whitespace removed */
	size_t value_len;
};

struct http_request {
	const char *method;
	size_t method_len;
	const char *target;  /* request-target as sent */
	size_t target_len;
	int minor_version;   /* HTTP/1.x */
	struct http_header headers[HTTP_MAX_HEADERS];
	size_t num_headers;
	/* Derived from the headers: */
	int64_t content_length; /* -1 when absent */
	int chunked;            /* Transfer-Encoding: chunked */
	int keep_alive;         /* connection persists after this request */
	int upgrade;            /* Connection: upgrade with an Upgrade header */
	int expect_continue;    /* Expect: 100-continue */
};

/* Parse a request head from buf[0..len).  scanned is how many bytes of
 * buf an earlier call already searched for the end of the head (0 the
 * first time) so that repeated calls on a growing buffer stay linear.
 * Returns the head length (>0), E_AGAIN when incomplete, E_LIMIT when a
 * limit is exceeded (answer 431), E_INVAL when malformed (answer 400). */
int http_parse_request(const char *buf, size_t len, size_t scanned, struct http_request *req);

/* Case-insensitive header lookup; returns the first match or NULL. */
const struct http_header *http_find_header(const struct http_request *req, const char *name);
/* Case-insensitive comparison of a slice with a NUL-terminated string. */
int http_slice_ieq(const char *s, size_t n, const char *lit);
/* True if the comma-separated list value contains token (case-insensitive). */
int http_list_has_token(const char *v, size_t n, const char *token);

struct http_chunked {
	int state;
	uint64_t remaining;  /* bytes left in the current chunk */
	size_t count;        /* bytes of extension / trailer seen */
	int digits;
};

void http_chunked_init(struct http_chunked *c);
/* Decode from in[0..len).  Returns bytes consumed (>= 0) or E_INVAL.  When
 * payload bytes are available, data and data_len point at them inside in
 * (a call returns at most one span; call again with the rest).  *done is
 * set once the last chunk and the trailers were consumed. */
int http_chunked_decode(struct http_chunked *c, const char *in, size_t len,
			const char **data, size_t *data_len, int *done);

/* ---- responses (from a tunnel target) ---- */

struct http_response {
	int minor_version;      /* HTTP/1.x */
	int status;             /* 100..999 */
	const char *reason;     /* reason phrase as sent; may be empty */
	size_t reason_len;
	struct http_header headers[HTTP_MAX_HEADERS];
	size_t num_headers;
	/* Derived from the headers: */
	int64_t content_length; /* -1 when absent or overridden by Transfer-Encoding */
	int chunked;            /* Transfer-Encoding ends with chunked */
	int until_close;        /* Transfer-Encoding present, not ending in chunked */
	int conn_close;         /* Connection: close, or HTTP/1.0 without keep-alive,
				 * or HTTP/1.0 with Transfer-Encoding (RFC 9112 §6.1) */
	int conn_upgrade;       /* Connection contains upgrade */
};

/* Parse a response head from buf[0..len); same conventions as
 * http_parse_request: returns the head length (>0), E_AGAIN, E_LIMIT
 * (over HTTP_MAX_HEADER_BYTES / HTTP_MAX_HEADERS) or E_INVAL.
 *
 * Lenient where servers are sloppy: bare LF line ends, a missing reason
 * phrase ("HTTP/1.1 200"), up to 8 empty lines before the status line
 * (included in the head length), "Content-Length: 5, 5".  Strict on
 * framing: an invalid Content-Length, or two different ones, is E_INVAL
 * (even alongside Transfer-Encoding); obs-fold is E_INVAL; "chunked"
 * applied twice is E_INVAL.  With Transfer-Encoding, Content-Length is
 * ignored (RFC 9112 §6.3: content_length = -1; a relay that forwards the
 * headers must drop Content-Length then).  A Transfer-Encoding whose last
 * coding is not chunked means the body runs to close (until_close = 1).
 * A 1xx head (100 Continue) is a complete response of its own: parse the
 * final response after it. */
int http_parse_response(const char *buf, size_t len, size_t scanned, struct http_response *res);

/* Case-insensitive response header lookup; the first match or NULL. */
const struct http_header *http_response_find_header(const struct http_response *res, const char *name);

enum http_body_kind {
	HTTP_BODY_NONE,
	HTTP_BODY_LENGTH,       /* content_length bytes (may be 0) */
	HTTP_BODY_CHUNKED,
	HTTP_BODY_UNTIL_CLOSE,  /* the connection cannot be reused */
};

/* Bits for the second argument of http_response_body_kind; a plain
 * boolean "was HEAD" (0/1) works as is. */
#define HTTP_REQ_HEAD 1
#define HTTP_REQ_CONNECT 2

/* How the body of this response is framed (RFC 9112 §6.3): 1xx, 204, 304
 * and responses to HEAD have none, nor has a 2xx to CONNECT; otherwise
 * chunked, else until close if Transfer-Encoding is not chunked, else
 * Content-Length, else until close.  request_was_head is a bit set of
 * HTTP_REQ_*. */
enum http_body_kind http_response_body_kind(const struct http_response *res, int request_was_head);

/* How a request body is framed: chunked, Content-Length or none. */
enum http_body_kind http_request_body_kind(const struct http_request *req);

/* Finds where a streamed body ends while its bytes are forwarded unchanged
 * (chunk framing included), without copying. */
struct http_body_tracker {
	enum http_body_kind kind;
	uint64_t remaining;          /* HTTP_BODY_LENGTH: bytes left */
	struct http_chunked chunked; /* HTTP_BODY_CHUNKED: decoder state */
	int done;
};

/* content_length is used for HTTP_BODY_LENGTH only (negative counts as 0).
 * For a request: http_body_tracker_init(t, http_request_body_kind(req),
 * req->content_length).  done is set at once for NONE and for LENGTH 0. */
void http_body_tracker_init(struct http_body_tracker *t, enum http_body_kind kind, int64_t content_length);
/* Given raw body bytes p[0..n), returns how many of them belong to this
 * body (0..n); the rest (a pipelined next message) is left alone.  Unless
 * t->done becomes set, all n bytes are consumed.  Sets t->done when the
 * body is complete (NONE: at init; UNTIL_CLOSE: never, the close ends it).
 * Returns E_INVAL for malformed chunked framing (do not feed again).
 * Once done, returns 0. */
long http_body_tracker_feed(struct http_body_tracker *t, const char *p, size_t n);

/* Reason phrase of a status code ("Not Found"). */
const char *http_status_text(int status);

#endif
