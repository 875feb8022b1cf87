/* clienthello.c - SNI reader for raw TLS ClientHello bytes.
 *
 * A forward-only cursor reads the handshake message across record
 * boundaries, so a fragmented hello needs no copy.  Every vector is
 * checked against the bytes left in its enclosing element. */
#include "clienthello.h"
#include "err.h"

#include <string.h>

#define REC_HANDSHAKE 22
#define HS_CLIENT_HELLO 1
#define EXT_SERVER_NAME 0
#define SNI_HOST_NAME 0

struct cur {
	const uint8_t *p;
	size_t n;
	size_t pos;        /* raw read position */
	size_t left;       /* bytes left in the current record */
	size_t need;       /* on E_AGAIN: raw bytes to wait for */
	unsigned records;
};

/* Enter the next record; its body must be complete. */
static int next_record(struct cur *c)
{
	if (c->n - c->pos < 5) {
		c->need = c->pos + 5;
		return E_AGAIN;
	}
	const uint8_t *h = c->p + c->pos;
	if (h[0] != REC_HANDSHAKE || h[1] != 3)
		return E_INVAL;
	size_t len = (size_t)h[3] << 8 | h[4];
	if (len == 0 || len > CLIENTHELLO_MAX_RECORD)
		return E_INVAL;
	if (++c->records > CLIENTHELLO_MAX_RECORDS)
		return E_LIMIT;
	/* Records are used whole (as a TLS engine does): wait for its end. */
	if (c->n - c->pos - 5 < len) {
		c->need = c->pos + 5 + len;
		return E_AGAIN;
	}
	c->pos += 5;
	c->left = len;
	return 0;
}

/* Read k bytes into out (NULL: skip them). */
static int cur_read(struct cur *c, uint8_t *out, size_t k)
{
	while (k > 0) {
		if (c->left == 0) {
			int r = next_record(c);
			if (r != 0)
				return r;
		}
		size_t take = k < c->left ? k : c->left;
		if (out) {
			memcpy(out, c->p + c->pos, take);
			out += take;
		}
		c->pos += take;
		c->left -= take;
		k -= take;
	}
	return 0;
}

/* Read a big-endian integer of k (1..3) bytes within *lim. */
static int cur_uint(struct cur *c, size_t k, size_t *lim, size_t *v)
{
	uint8_t b[3];
	if (*lim < k)
		return E_INVAL;
	int r = cur_read(c, b, k);
	if (r != 0)
		return r;
	*lim -= k;
	*v = 0;
	for (size_t i = 0; i < k; i++)
		*v = *v << 8 | b[i];
	return 0;
}

/* Skip k bytes within *lim. */
static int cur_skip(struct cur *c, size_t k, size_t *lim)
{
	if (*lim < k)
		return E_INVAL;
	int r = cur_read(c, NULL, k);
	if (r == 0)
		*lim -= k;
	return r;
}

static int name_char_ok(uint8_t ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.';
}

/* The server_name extension body of ext_len bytes. */
static int read_server_name(struct cur *c, size_t ext_len, struct clienthello *out)
{
	size_t lim = ext_len, list_len;
	int r = cur_uint(c, 2, &lim, &list_len);
	if (r != 0)
		return r;
	if (list_len != lim || list_len == 0)
		return E_INVAL;
	while (lim > 0) {
		size_t type, len;
		if ((r = cur_uint(c, 1, &lim, &type)) != 0 || (r = cur_uint(c, 2, &lim, &len)) != 0)
			return r;
		if (len > lim)
			return E_INVAL;
		if (type != SNI_HOST_NAME) {
			if ((r = cur_skip(c, len, &lim)) != 0)
				return r;
			continue;
		}
		if (out->has_sni || len == 0 || len > CLIENTHELLO_NAME_MAX)
			return E_INVAL;
		uint8_t name[CLIENTHELLO_NAME_MAX];
		if ((r = cur_read(c, name, len)) != 0)
			return r;
		lim -= len;
		for (size_t i = 0; i < len; i++) {
			uint8_t ch = name[i];
			if (ch >= 'A' && ch <= 'Z')
				ch = (uint8_t)(ch + 32);
			if (!name_char_ok(ch))
				return E_INVAL;
			out->sni[i] = (char)ch;
		}
		out->sni[len] = '\0';
		out->sni_len = len;
		out->has_sni = 1;
	}
	return 0;
}

static int parse(struct cur *c, struct clienthello *out)
{
	size_t big = (size_t)-1, type, body, v;
	int r;
	if ((r = cur_uint(c, 1, &big, &type)) != 0)
		return r;
	if (type != HS_CLIENT_HELLO)
		return E_INVAL;
	if ((r = cur_uint(c, 3, &big, &body)) != 0)
		return r;
	if (body > CLIENTHELLO_MAX_MESSAGE)
		return E_LIMIT;
	size_t lim = body;
	/* client_version, random */
	if ((r = cur_uint(c, 2, &lim, &v)) != 0)
		return r;
	out->version = (uint16_t)v;
	if ((r = cur_skip(c, 32, &lim)) != 0)
		return r;
	/* session_id<0..32> */
	if ((r = cur_uint(c, 1, &lim, &v)) != 0)
		return r;
	if (v > 32)
		return E_INVAL;
	if ((r = cur_skip(c, v, &lim)) != 0)
		return r;
	/* cipher_suites<2..2^16-2> */
	if ((r = cur_uint(c, 2, &lim, &v)) != 0)
		return r;
	if (v < 2 || (v & 1))
		return E_INVAL;
	if ((r = cur_skip(c, v, &lim)) != 0)
		return r;
	/* compression_methods<1..2^8-1> */
	if ((r = cur_uint(c, 1, &lim, &v)) != 0)
		return r;
	if (v < 1)
		return E_INVAL;
	if ((r = cur_skip(c, v, &lim)) != 0)
		return r;
	/* extensions<0..2^16-1>, optional */
	if (lim > 0) {
		size_t ext_total;
		if ((r = cur_uint(c, 2, &lim, &ext_total)) != 0)
			return r;
		if (ext_total != lim)
			return E_INVAL;
		int seen_sni = 0;
		while (lim > 0) {
			size_t ext_type, ext_len;
			if ((r = cur_uint(c, 2, &lim, &ext_type)) != 0 || (r = cur_uint(c, 2, &lim, &ext_len)) != 0)
				return r;
			if (ext_len > lim)
				return E_INVAL;
			if (ext_type == EXT_SERVER_NAME) {
				if (seen_sni)
					return E_INVAL; /* duplicate extension */
				seen_sni = 1;
				if ((r = read_server_name(c, ext_len, out)) != 0)
					return r;
				lim -= ext_len;
				continue;
			}
			if ((r = cur_skip(c, ext_len, &lim)) != 0)
				return r;
		}
	}
	out->end = c->pos;
	return 0;
}

int clienthello_parse(const uint8_t *p, size_t n, struct clienthello *out, size_t *need)
{
	struct cur c = {p, n, 0, 0, 0, 0};
	memset(out, 0, sizeof(*out));
	int r = parse(&c, out);
	if (r == E_AGAIN) {
		if (c.need <= n)
			c.need = n + 1; /* cannot happen: every wait is for bytes past n */
		if (need)
			*need = c.need;
	}
	if (r != 0)
		memset(out, 0, sizeof(*out));
	return r;
}

void clienthello_alert(uint8_t out[CLIENTHELLO_ALERT_LEN], int desc)
{
	out[0] = 21;  /* alert */
	out[1] = 3;
	out[2] = 3;
	out[3] = 0;
	out[4] = 2;
	out[5] = 2;   /* fatal */
	out[6] = (uint8_t)desc;
}
