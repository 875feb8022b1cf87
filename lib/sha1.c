/* sha1.c - SHA-1 (FIPS 180-4 §6.1), straightforward and portable. */
#include "sha1.h"

#include <string.h>

static uint32_t rol(uint32_t x, unsigned n)
{
	return (x << n) | (x >> (32 - n));
}

static uint32_t load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void store_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void sha1_block(uint32_t h[5], const uint8_t *p)
{
	uint32_t w[16];
	for (int i = 0; i < 16; i++)
		w[i] = load_be32(p + 4 * i);
	uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
	for (int t = 0; t < 80; t++) {
		uint32_t f, k;
		if (t >= 16) {
			/* 16-word ring buffer of the message schedule */
			w[t & 15] = rol(w[(t - 3) & 15] ^ w[(t - 8) & 15] ^ w[(t - 14) & 15] ^ w[t & 15], 1);
		}
		if (t < 20) {
			f = (b & c) | (~b & d);
			k = 0x5A827999u;
		} else if (t < 40) {
			f = b ^ c ^ d;
			k = 0x6ED9EBA1u;
		} else if (t < 60) {
			f = (b & c) | (b & d) | (c & d);
			k = 0x8F1BBCDCu;
		} else {
			f = b ^ c ^ d;
			k = 0xCA62C1D6u;
		}
		uint32_t tmp = rol(a, 5) + f + e + k + w[t & 15];
		e = d;
		d = c;
		c = rol(b, 30);
		b = a;
		a = tmp;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

void sha1_init(struct sha1_ctx *c)
{
	c->h[0] = 0x67452301u;
	c->h[1] = 0xEFCDAB89u;
	c->h[2] = 0x98BADCFEu;
	c->h[3] = 0x10325476u;
	c->h[4] = 0xC3D2E1F0u;
	c->len = 0;
	memset(c->buf, 0, sizeof(c->buf));
}

void sha1_update(struct sha1_ctx *c, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t used = (size_t)(c->len % SHA1_BLOCK_LEN);
	if (len == 0)
		return; /* data may be NULL; memcpy(x, NULL, 0) is undefined */
	c->len += len;
	if (used) {
		size_t take = SHA1_BLOCK_LEN - used;
		if (take > len)
			take = len;
		memcpy(c->buf + used, p, take);
		p += take;
		len -= take;
		if (used + take < SHA1_BLOCK_LEN)
			return;
		sha1_block(c->h, c->buf);
	}
	for (; len >= SHA1_BLOCK_LEN; p += SHA1_BLOCK_LEN, len -= SHA1_BLOCK_LEN)
		sha1_block(c->h, p);
	if (len)
		memcpy(c->buf, p, len);
}

void sha1_final(struct sha1_ctx *c, uint8_t out[SHA1_DIGEST_LEN])
{
	uint64_t bits = c->len * 8;
	size_t used = (size_t)(c->len % SHA1_BLOCK_LEN);
	c->buf[used++] = 0x80;
	if (used > SHA1_BLOCK_LEN - 8) {
		memset(c->buf + used, 0, SHA1_BLOCK_LEN - used);
		sha1_block(c->h, c->buf);
		used = 0;
	}
	memset(c->buf + used, 0, SHA1_BLOCK_LEN - 8 - used);
	store_be32(c->buf + 56, (uint32_t)(bits >> 32));
	store_be32(c->buf + 60, (uint32_t)bits);
	sha1_block(c->h, c->buf);
	for (int i = 0; i < 5; i++)
		store_be32(out + 4 * i, c->h[i]);
	memset(c, 0, sizeof(*c));
}

void sha1(const void *data, size_t len, uint8_t out[SHA1_DIGEST_LEN])
{
	struct sha1_ctx c;
	sha1_init(&c);
	sha1_update(&c, data, len);
	sha1_final(&c, out);
}
