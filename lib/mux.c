/* mux.c - ws-multiplex v2 header codec and message reader (see mux.h). */
#include "mux.h"

#include <string.h>

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void mux_encode_header(uint8_t out[MUX_HEADER_LEN], uint16_t type, uint32_t dst, uint32_t src, uint32_t length)
{
	put16(out, MUX_VERSION);
	put16(out + 2, type);
	put32(out + 4, dst);
	put32(out + 8, src);
	put32(out + 12, length);
}

void mux_decode_header(const uint8_t in[MUX_HEADER_LEN], struct mux_header *h)
{
	h->version = get16(in);
	h->type = get16(in + 2);
	h->dst = get32(in + 4);
	h->src = get32(in + 8);
	h->length = get32(in + 12);
}

void mux_reader_begin(struct mux_reader *r)
{
	memset(r, 0, sizeof(*r));
}

size_t mux_reader_feed(struct mux_reader *r, const uint8_t *p, size_t n, int *ev,
		       const uint8_t **data, size_t *dlen)
{
	*ev = MUX_RD_NONE;
	*data = NULL;
	*dlen = 0;
	if (n == 0)
		return 0;
	if (r->hlen == MUX_HEADER_LEN) {
		*ev = MUX_RD_PAYLOAD;
		*data = p;
		*dlen = n;
		r->payload += n;
		return n;
	}
	size_t take = MUX_HEADER_LEN - r->hlen;
	if (take > n)
		take = n;
	if (r->hlen == 0 && take == MUX_HEADER_LEN) {
		mux_decode_header(p, &r->header); /* the common case: no copy */
	} else {
		memcpy(r->hbuf + r->hlen, p, take);
		if (r->hlen + take == MUX_HEADER_LEN)
			mux_decode_header(r->hbuf, &r->header);
	}
	r->hlen += take;
	if (r->hlen == MUX_HEADER_LEN)
		*ev = MUX_RD_HEADER;
	return take;
}

int mux_reader_end(struct mux_reader *r, uint64_t *payload_len)
{
	int complete = r->hlen == MUX_HEADER_LEN;
	if (payload_len)
		*payload_len = complete ? r->payload : 0;
	return complete;
}
