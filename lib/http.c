#include "http.h"
#include "err.h"

#include <limits.h>
#include <string.h>

/* RFC 9110 tchar */
static int is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

int http_slice_ieq(const char *s, size_t n, const char *lit)
{
	size_t i = 0;
	for (; i < n; i++) {
		if (!lit[i] || lower((unsigned char)s[i]) != lower((unsigned char)lit[i]))
			return 0;
	}
	return lit[i] == '\0';
}

int http_list_has_token(const char *v, size_t n, const char *token)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t start = i;
		while (i < n && v[i] != ',')
			i++;
		size_t end = i;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
			end--;
		if (end > start && http_slice_ieq(v + start, end - start, token))
			return 1;
	}
	return 0;
}

const struct http_header *http_find_header(const struct http_request *req, const char *name)
{
	for (size_t i = 0; i < req->num_headers; i++)
		if (http_slice_ieq(req->headers[i].name, req->headers[i].name_len, name))
			return &req->headers[i];
	return NULL;
}

/* Find the end of the head: returns the offset just past the blank line,
 * or 0 when not present. Accepts CRLF and bare LF line ends. */
static size_t find_head_end(const char *buf, size_t len, size_t scanned)
{
	size_t i = scanned > 3 ? scanned - 3 : 0;
	for (; i < len; i++) {
		const char *p = memchr(buf + i, '\n', len - i);
		if (!p)
			return 0;
		i = (size_t)(p - buf);
		if (i + 1 < len && buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* Returns the length of the line at p (excluding CRLF/LF) and sets *next. */
static size_t line_length(const char *p, const char *end, const char **next)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	/* find_head_end guarantees a newline before end */
	size_t n = (size_t)(nl - p);
	*next = nl + 1;
	if (n > 0 && p[n - 1] == '\r')
		n--;
	return n;
}

static int parse_request_line(const char *p, size_t n, struct http_request *req)
{
	size_t i = 0;
	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i >= n || p[i] != ' ')
		return E_INVAL;
	req->method = p;
	req->method_len = i;
	size_t t = ++i;
	while (i < n && p[i] != ' ') {
		unsigned char c = (unsigned char)p[i];
		if (c <= 0x20 || c == 0x7f)
			return E_INVAL;
		i++;
	}
	if (i == t || i >= n)
		return E_INVAL;
	req->target = p + t;
	req->target_len = i - t;
	i++;
	if (n - i != 8 || memcmp(p + i, "HTTP/1.", 7) != 0)
		return E_INVAL;
	char minor = p[i + 7];
	if (minor != '0' && minor != '1')
		return E_INVAL;
	req->minor_version = minor - '0';
	return 0;
}

static int parse_content_length(const char *v, size_t n, int64_t *out)
{
	if (n == 0 || n > 15)
		return E_INVAL;
	int64_t value = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return E_INVAL;
		value = value * 10 + (v[i] - '0');
	}
	*out = value;
	return 0;
}

static int parse_header_line(const char *p, size_t n, struct http_header *h)
{
	size_t i = 0;
	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i >= n || p[i] != ':')
		return E_INVAL; /* also rejects obs-fold and whitespace before ':' */
	h->name = p;
	h->name_len = i;
	i++;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	size_t end = n;
	while (end > i && (p[end - 1] == ' ' || p[end - 1] == '\t'))
		end--;
	for (size_t k = i; k < end; k++) {
		unsigned char c = (unsigned char)p[k];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return E_INVAL;
	}
	h->value = p + i;
	h->value_len = end - i;
	return 0;
}

/* Apply the semantics of one header to the derived request fields. */
static int apply_header(struct http_request *req, const struct http_header *h, int *conn_close,
			int *conn_keep, int *conn_upgrade, int *has_upgrade)
{
	if (http_slice_ieq(h->name, h->name_len, "content-length")) {
		int64_t cl;
		if (parse_content_length(h->value, h->value_len, &cl) != 0)
			return E_INVAL;
		if (req->content_length >= 0 && req->content_length != cl)
			return E_INVAL;
		req->content_length = cl;
	} else if (http_slice_ieq(h->name, h->name_len, "transfer-encoding")) {
		/* Only "chunked" is supported; anything else cannot be framed. */
		if (req->chunked || !http_slice_ieq(h->value, h->value_len, "chunked"))
			return E_INVAL;
		req->chunked = 1;
	} else if (http_slice_ieq(h->name, h->name_len, "connection")) {
		*conn_close |= http_list_has_token(h->value, h->value_len, "close");
		*conn_keep |= http_list_has_token(h->value, h->value_len, "keep-alive");
		*conn_upgrade |= http_list_has_token(h->value, h->value_len, "upgrade");
	} else if (http_slice_ieq(h->name, h->name_len, "upgrade")) {
		*has_upgrade = h->value_len > 0;
	} else if (http_slice_ieq(h->name, h->name_len, "expect")) {
		req->expect_continue = http_slice_ieq(h->value, h->value_len, "100-continue");
	} else if (http_slice_ieq(h->name, h->name_len, "host")) {
		/* More than one Host is a 400 (RFC 9112 §3.2): routing by one
		 * while the upstream reads another is a confusion vector. */
		if (http_find_header(req, "host") != h)
			return E_INVAL;
	}
	return 0;
}

/* Find a complete head: returns its length (including up to 8 empty lines
 * before it, RFC 9112 §2.2, which *skip counts), E_AGAIN or E_LIMIT. */
static int locate_head(const char *buf, size_t len, size_t scanned, size_t *skip_out)
{
	size_t skip = 0;
	while (skip < len && skip < 8 && (buf[skip] == '\r' || buf[skip] == '\n'))
		skip++;
	*skip_out = skip;
	/* Search only after the skipped empty lines: a blank line among them
	 * is not the end of a head (it would leave no start line). */
	size_t head_end = find_head_end(buf + skip, len - skip, scanned > skip ? scanned - skip : 0);
	if (head_end == 0)
		return len >= HTTP_MAX_HEADER_BYTES ? E_LIMIT : E_AGAIN;
	head_end += skip;
	if (head_end > HTTP_MAX_HEADER_BYTES)
		return E_LIMIT;
	return (int)head_end;
}

int http_parse_request(const char *buf, size_t len, size_t scanned, struct http_request *req)
{
	size_t skip;
	int rc = locate_head(buf, len, scanned, &skip);
	if (rc < 0)
		return rc;
	size_t head_end = (size_t)rc;

	memset(req, 0, offsetof(struct http_request, headers));
	req->num_headers = 0;
	req->content_length = -1;
	req->chunked = req->keep_alive = req->upgrade = req->expect_continue = 0;

	const char *end = buf + head_end;
	const char *p = buf + skip, *next;
	size_t n = line_length(p, end, &next);
	if (parse_request_line(p, n, req) != 0)
		return E_INVAL;

	int conn_close = 0, conn_keep = 0, conn_upgrade = 0, has_upgrade = 0;
	for (p = next; p < end; p = next) {
		n = line_length(p, end, &next);
		if (n == 0)
			break;
		if (req->num_headers == HTTP_MAX_HEADERS)
			return E_LIMIT;
		struct http_header *h = &req->headers[req->num_headers];
		if (parse_header_line(p, n, h) != 0)
			return E_INVAL;
		req->num_headers++;
		if (apply_header(req, h, &conn_close, &conn_keep, &conn_upgrade, &has_upgrade) != 0)
			return E_INVAL;
	}
	/* Both framings at once is a smuggling vector: refuse (RFC 9112 §6.3). */
	if (req->chunked && req->content_length >= 0)
		return E_INVAL;
	if (req->minor_version == 0 && req->chunked)
		return E_INVAL;
	if (req->minor_version == 1 && !http_find_header(req, "host"))
		return E_INVAL;
	req->keep_alive = req->minor_version == 1 ? !conn_close : (conn_keep && !conn_close);
	req->upgrade = conn_upgrade && has_upgrade;
	return (int)head_end;
}

/* ---- chunked transfer coding ---- */

enum {
	CH_SIZE = 0,   /* hex digits */
	CH_EXT,        /* chunk extension up to LF */
	CH_DATA,
	CH_DATA_CR,    /* expect CR (or LF) after data */
	CH_DATA_LF,
	CH_TRAILER,    /* start of a trailer line or the final blank line */
	CH_TRAILER_LINE,
	CH_TRAILER_END_LF,
	CH_DONE,
};

void http_chunked_init(struct http_chunked *c)
{
	memset(c, 0, sizeof(*c));
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int http_chunked_decode(struct http_chunked *c, const char *in, size_t len,
			const char **data, size_t *data_len, int *done)
{
	size_t i = 0;
	*data = NULL;
	*data_len = 0;
	*done = c->state == CH_DONE;
	while (i < len && c->state != CH_DONE) {
		unsigned char ch = (unsigned char)in[i];
		switch (c->state) {
		case CH_SIZE: {
			int v = hexval(ch);
			if (v >= 0) {
				if (++c->digits > 15)
					return E_INVAL;
				c->remaining = c->remaining * 16 + (uint64_t)v;
				i++;
				break;
			}
			if (c->digits == 0)
				return E_INVAL;
			if (ch == ';' || ch == ' ' || ch == '\t' || ch == '\r') {
				c->state = CH_EXT;
				c->count = 0;
				break;
			}
			if (ch != '\n')
				return E_INVAL;
			c->state = CH_EXT;
			c->count = 0;
			break;
		}
		case CH_EXT:
			i++;
			if (ch == '\n') {
				c->digits = 0;
				c->state = c->remaining ? CH_DATA : CH_TRAILER;
				c->count = 0;
			} else if (++c->count > HTTP_MAX_CHUNK_EXT || (ch < 0x20 && ch != '\t' && ch != '\r')) {
				return E_INVAL;
			}
			break;
		case CH_DATA: {
			size_t avail = len - i;
			size_t take = avail < c->remaining ? avail : (size_t)c->remaining;
			*data = in + i;
			*data_len = take;
			c->remaining -= take;
			i += take;
			if (c->remaining == 0)
				c->state = CH_DATA_CR;
			return (int)i;
		}
		case CH_DATA_CR:
			i++;
			if (ch == '\r')
				c->state = CH_DATA_LF;
			else if (ch == '\n')
				c->state = CH_SIZE;
			else
				return E_INVAL;
			break;
		case CH_DATA_LF:
			i++;
			if (ch != '\n')
				return E_INVAL;
			c->state = CH_SIZE;
			break;
		case CH_TRAILER:
			i++;
			if (ch == '\r') {
				c->state = CH_TRAILER_END_LF;
			} else if (ch == '\n') {
				c->state = CH_DONE;
			} else {
				c->state = CH_TRAILER_LINE;
				c->count++;
			}
			break;
		case CH_TRAILER_LINE:
			i++;
			if (++c->count > HTTP_MAX_TRAILER_BYTES)
				return E_INVAL;
			if (ch == '\n')
				c->state = CH_TRAILER;
			break;
		case CH_TRAILER_END_LF:
			i++;
			if (ch != '\n')
				return E_INVAL;
			c->state = CH_DONE;
			break;
		}
	}
	*done = c->state == CH_DONE;
	return (int)i;
}

/* ---- responses ---- */

const struct http_header *http_response_find_header(const struct http_response *res, const char *name)
{
	for (size_t i = 0; i < res->num_headers; i++)
		if (http_slice_ieq(res->headers[i].name, res->headers[i].name_len, name))
			return &res->headers[i];
	return NULL;
}

/* status-line = HTTP-version SP 3DIGIT [ SP reason-phrase ]; the missing
 * SP + reason is tolerated ("HTTP/1.1 200"). */
static int parse_status_line(const char *p, size_t n, struct http_response *res)
{
	if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
		return E_INVAL;
	if (p[7] != '0' && p[7] != '1')
		return E_INVAL;
	res->minor_version = p[7] - '0';
	int status = 0;
	for (size_t i = 9; i < 12; i++) {
		if (p[i] < '0' || p[i] > '9')
			return E_INVAL;
		status = status * 10 + (p[i] - '0');
	}
	if (status < 100)
		return E_INVAL;
	res->status = status;
	res->reason = p + 12;
	res->reason_len = 0;
	if (n == 12)
		return 0;
	if (p[12] != ' ')
		return E_INVAL;
	for (size_t i = 13; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return E_INVAL;
	}
	res->reason = p + 13;
	res->reason_len = n - 13;
	return 0;
}

/* Content-Length, also as a list of identical values ("5, 5", RFC 9110
 * §8.6).  Empty elements or differing values are invalid. */
static int parse_content_length_list(const char *v, size_t n, int64_t *out)
{
	int64_t value = -1;
	size_t i = 0;
	for (;;) {
		size_t start = i;
		while (i < n && v[i] != ',')
			i++;
		size_t end = i;
		while (start < end && (v[start] == ' ' || v[start] == '\t'))
			start++;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
			end--;
		int64_t cl;
		if (parse_content_length(v + start, end - start, &cl) != 0)
			return E_INVAL;
		if (value >= 0 && value != cl)
			return E_INVAL;
		value = cl;
		if (i == n)
			break;
		i++; /* ',' */
	}
	*out = value;
	return 0;
}

struct te_state {
	int present;     /* any Transfer-Encoding header seen */
	int last_chunked; /* the last coding seen so far is chunked */
	int chunked_seen; /* chunked seen before the last coding */
};

/* Walks the codings of one Transfer-Encoding value in order; the state
 * carries across several Transfer-Encoding headers. */
static int apply_transfer_encoding(struct te_state *te, const char *v, size_t n)
{
	te->present = 1;
	size_t i = 0;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		if (i == n)
			break;
		size_t start = i;
		/* a coding is a token, optionally with ;parameters */
		while (i < n && v[i] != ',' && v[i] != ';' && v[i] != ' ' && v[i] != '\t')
			i++;
		int is_chunked = http_slice_ieq(v + start, i - start, "chunked");
		while (i < n && v[i] != ',')
			i++;
		if (is_chunked && (te->last_chunked || te->chunked_seen))
			return E_INVAL; /* chunked applied twice */
		if (te->last_chunked)
			te->chunked_seen = 1;
		te->last_chunked = is_chunked;
	}
	return 0;
}

int http_parse_response(const char *buf, size_t len, size_t scanned, struct http_response *res)
{
	size_t skip;
	int rc = locate_head(buf, len, scanned, &skip);
	if (rc < 0)
		return rc;
	size_t head_end = (size_t)rc;

	res->minor_version = 0;
	res->status = 0;
	res->reason = NULL;
	res->reason_len = 0;
	res->num_headers = 0;
	res->content_length = -1;
	res->chunked = res->until_close = res->conn_close = res->conn_upgrade = 0;

	const char *end = buf + head_end;
	const char *p = buf + skip, *next;
	size_t n = line_length(p, end, &next);
	if (parse_status_line(p, n, res) != 0)
		return E_INVAL;

	struct te_state te = { 0, 0, 0 };
	int conn_close = 0, conn_keep = 0;
	for (p = next; p < end; p = next) {
		n = line_length(p, end, &next);
		if (n == 0)
			break;
		if (res->num_headers == HTTP_MAX_HEADERS)
			return E_LIMIT;
		struct http_header *h = &res->headers[res->num_headers];
		if (parse_header_line(p, n, h) != 0)
			return E_INVAL;
		res->num_headers++;
		if (http_slice_ieq(h->name, h->name_len, "content-length")) {
			int64_t cl;
			if (parse_content_length_list(h->value, h->value_len, &cl) != 0)
				return E_INVAL;
			if (res->content_length >= 0 && res->content_length != cl)
				return E_INVAL;
			res->content_length = cl;
		} else if (http_slice_ieq(h->name, h->name_len, "transfer-encoding")) {
			if (apply_transfer_encoding(&te, h->value, h->value_len) != 0)
				return E_INVAL;
		} else if (http_slice_ieq(h->name, h->name_len, "connection")) {
			conn_close |= http_list_has_token(h->value, h->value_len, "close");
			conn_keep |= http_list_has_token(h->value, h->value_len, "keep-alive");
			res->conn_upgrade |= http_list_has_token(h->value, h->value_len, "upgrade");
		}
	}
	if (te.present) {
		/* Transfer-Encoding overrides Content-Length (RFC 9112 §6.3). */
		res->content_length = -1;
		res->chunked = te.last_chunked;
		res->until_close = !te.last_chunked;
	}
	if (res->minor_version == 1)
		res->conn_close = conn_close;
	else /* HTTP/1.0 with Transfer-Encoding: close after it (RFC 9112 §6.1) */
		res->conn_close = conn_close || !conn_keep || te.present;
	return (int)head_end;
}

enum http_body_kind http_response_body_kind(const struct http_response *res, int request_was_head)
{
	if ((request_was_head & HTTP_REQ_HEAD) || res->status < 200 || res->status == 204 ||
	    res->status == 304)
		return HTTP_BODY_NONE;
	if ((request_was_head & HTTP_REQ_CONNECT) && res->status < 300)
		return HTTP_BODY_NONE;
	if (res->chunked)
		return HTTP_BODY_CHUNKED;
	if (res->until_close)
		return HTTP_BODY_UNTIL_CLOSE;
	if (res->content_length >= 0)
		return HTTP_BODY_LENGTH;
	return HTTP_BODY_UNTIL_CLOSE;
}

enum http_body_kind http_request_body_kind(const struct http_request *req)
{
	if (req->chunked)
		return HTTP_BODY_CHUNKED;
	if (req->content_length > 0)
		return HTTP_BODY_LENGTH;
	return HTTP_BODY_NONE;
}

/* ---- body framing tracker ---- */

void http_body_tracker_init(struct http_body_tracker *t, enum http_body_kind kind, int64_t content_length)
{
	memset(t, 0, sizeof(*t));
	t->kind = kind;
	http_chunked_init(&t->chunked);
	switch (kind) {
	case HTTP_BODY_LENGTH:
		t->remaining = content_length > 0 ? (uint64_t)content_length : 0;
		t->done = t->remaining == 0;
		break;
	case HTTP_BODY_CHUNKED:
	case HTTP_BODY_UNTIL_CLOSE:
		break;
	default:
		t->kind = HTTP_BODY_NONE;
		t->done = 1;
		break;
	}
}

long http_body_tracker_feed(struct http_body_tracker *t, const char *p, size_t n)
{
	if (t->done)
		return 0;
	if (n > LONG_MAX)
		n = LONG_MAX;
	switch (t->kind) {
	case HTTP_BODY_LENGTH: {
		size_t take = (uint64_t)n < t->remaining ? n : (size_t)t->remaining;
		t->remaining -= take;
		t->done = t->remaining == 0;
		return (long)take;
	}
	case HTTP_BODY_CHUNKED: {
		size_t off = 0;
		while (off < n && !t->done) {
			size_t piece = n - off;
			if (piece > INT_MAX)
				piece = INT_MAX;
			const char *data;
			size_t data_len;
			int rc = http_chunked_decode(&t->chunked, p + off, piece, &data, &data_len, &t->done);
			if (rc < 0)
				return E_INVAL;
			if (rc == 0 && !t->done)
				break; /* cannot happen: the decoder progresses */
			off += (size_t)rc;
		}
		return (long)off;
	}
	case HTTP_BODY_UNTIL_CLOSE:
		return (long)n;
	default:
		return 0;
	}
}

const char *http_status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 417: return "Expectation Failed";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 508: return "Loop Detected";
	}
	return "Unknown";
}
