/* http.h - incremental HTTP/1.1 request parsing (no I/O).
 *
 * http_parse_request parses a complete request head from the caller's
 * buffer and returns slices into it (valid while the bytes stay in the
 * buffer).  http_chunked_decode decodes a chunked body a piece at a time.
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

/* Reason phrase of a status code ("Not Found"). */
const char *http_status_text(int status);

#endif
