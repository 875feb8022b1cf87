/* ws.c - RFC 6455 frame codec and streaming decoder (see ws.h). */
#include "ws.h"

#include "base64.h"
#include "err.h"
#include "sha1.h"

#include <string.h>

/* Decoder states (struct ws_decoder.state). */
enum {
	WS_DS_HEADER = 0,  /* at a frame boundary, waiting for a header */
	WS_DS_PAYLOAD,     /* inside a data frame's payload */
	WS_DS_END,         /* the message's last byte was reported; MESSAGE_END next */
	WS_DS_CLOSED,      /* a close frame was reported */
	WS_DS_ERROR        /* d->err is returned forever */
};

/* One DATA event covers at most this many bytes so that the consumed
 * count always fits the int return value. */
#define WS_MAX_SPAN ((size_t)1 << 30)

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

size_t ws_encode_header(uint8_t out[WS_MAX_FRAME_HEADER], int fin, int opcode, uint64_t len,
			const uint8_t *mask)
{
	size_t n = 2;
	out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
	uint8_t m = mask ? 0x80 : 0;
	if (len <= 125) {
		out[1] = (uint8_t)(m | len);
	} else if (len <= 0xffff) {
		out[1] = m | 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		n = 4;
	} else {
		out[1] = m | 127;
		for (int i = 0; i < 8; i++)
			out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
		n = 10;
	}
	if (mask) {
		memcpy(out + n, mask, 4);
		n += 4;
	}
	return n;
}

void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
	unsigned k = (unsigned)(offset & 3);
	size_t i = 0;
	if (n >= 16) {
		/* Eight bytes at a time; 8 is a multiple of the key length, so
		 * the key phase of byte i stays (k + i) & 3. */
		uint8_t m8[8];
		uint64_t mw;
		for (unsigned j = 0; j < 8; j++)
			m8[j] = mask[(k + j) & 3];
		memcpy(&mw, m8, 8);
		for (; i + 8 <= n; i += 8) {
			uint64_t w;
			memcpy(&w, p + i, 8);
			w ^= mw;
			memcpy(p + i, &w, 8);
		}
	}
	for (; i < n; i++)
		p[i] ^= mask[(k + i) & 3];
}

static int is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

int ws_accept_key(const char *key, size_t len, char out[WS_ACCEPT_KEY_LEN + 1])
{
	out[0] = '\0';
	if (!key || len != 24 || key[22] != '=' || key[23] != '=')
		return E_INVAL;
	for (size_t i = 0; i < 22; i++)
		if (!is_b64(key[i]))
			return E_INVAL;
	struct sha1_ctx c;
	uint8_t digest[SHA1_DIGEST_LEN];
	sha1_init(&c);
	sha1_update(&c, key, len);
	sha1_update(&c, ws_guid, sizeof(ws_guid) - 1);
	sha1_final(&c, digest);
	(void)base64_encode(digest, sizeof(digest), out);
	return 0;
}

size_t ws_encode_close_payload(uint8_t out[WS_MAX_CONTROL_PAYLOAD], uint16_t code, const char *reason)
{
	if (code == 0)
		return 0;
	out[0] = (uint8_t)(code >> 8);
	out[1] = (uint8_t)code;
	size_t max = WS_MAX_CONTROL_PAYLOAD - 2, n = 0;
	if (reason) {
		while (n < max && reason[n])
			n++;
		/* Cutting before a continuation byte: back up to its lead byte
		 * (at most 3 bytes back; invalid UTF-8 is cut where it is). */
		if (n == max) {
			size_t k = n;
			while (k > n - 3 && ((unsigned char)reason[k] & 0xc0) == 0x80)
				k--;
			if (((unsigned char)reason[k] & 0xc0) != 0x80)
				n = k;
		}
		memcpy(out + 2, reason, n);
	}
	return 2 + n;
}

int ws_utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		size_t more;
		uint8_t lo = 0x80, hi = 0xbf; /* range of the first continuation byte */
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			more = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			more = 2;
			if (c == 0xe0)
				lo = 0xa0;      /* overlong */
			else if (c == 0xed)
				hi = 0x9f;      /* UTF-16 surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			more = 3;
			if (c == 0xf0)
				lo = 0x90;      /* overlong */
			else if (c == 0xf4)
				hi = 0x8f;      /* above U+10FFFF */
		} else {
			return 0;
		}
		if (n - i - 1 < more)
			return 0;
		if (p[i + 1] < lo || p[i + 1] > hi)
			return 0;
		for (size_t k = 2; k <= more; k++)
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
		i += 1 + more;
	}
	return 1;
}

int ws_close_code_valid(unsigned code)
{
	if (code >= 3000 && code <= 4999)
		return 1;
	return code >= 1000 && code <= 1014 && code != 1004 && code != WS_CLOSE_NO_STATUS &&
	       code != WS_CLOSE_ABNORMAL;
}

void ws_decoder_init(struct ws_decoder *d, int require_mask, uint64_t max_message)
{
	memset(d, 0, sizeof(*d));
	d->require_mask = require_mask;
	d->max_message = max_message ? max_message : WS_MAX_MESSAGE_DEFAULT;
	d->state = WS_DS_HEADER;
	d->msg_opcode = -1;
}

int ws_decoder_in_message(const struct ws_decoder *d)
{
	return d->msg_opcode >= 0;
}

/* A parsed frame header. */
struct ws_frame {
	int fin;
	int opcode;
	int masked;
	uint8_t mask[4];
	uint64_t len;
};

static int fail(struct ws_decoder *d, int err, uint16_t code)
{
	d->state = WS_DS_ERROR;
	d->err = err;
	d->err_code = code;
	return err;
}

static int is_control(int opcode)
{
	return opcode >= 8;
}

/* Parse the frame header at p[0..n).  Returns its length, 0 when more
 * bytes are needed, or an error (sticky, via fail()).  Every check is
 * made as soon as the bytes it needs are present, so an invalid header
 * fails with the same result however the input is split. */
static int parse_header(struct ws_decoder *d, const uint8_t *p, size_t n, struct ws_frame *f)
{
	if (n < 1)
		return 0;
	f->fin = (p[0] & 0x80) != 0;
	f->opcode = p[0] & 0x0f;
	if (p[0] & 0x70)
		return fail(d, E_INVAL, WS_CLOSE_PROTOCOL);           /* RSV1-3 */
	switch (f->opcode) {
	case WS_OP_CONT:
		if (d->msg_opcode < 0)
			return fail(d, E_INVAL, WS_CLOSE_PROTOCOL);   /* nothing to continue */
		break;
	case WS_OP_TEXT:
	case WS_OP_BINARY:
		if (d->msg_opcode >= 0)
			return fail(d, E_INVAL, WS_CLOSE_PROTOCOL);   /* inside a fragmented message */
		break;
	case WS_OP_CLOSE:
	case WS_OP_PING:
	case WS_OP_PONG:
		if (!f->fin)
			return fail(d, E_INVAL, WS_CLOSE_PROTOCOL);   /* fragmented control */
		break;
	default:
		return fail(d, E_INVAL, WS_CLOSE_PROTOCOL);           /* reserved opcode */
	}
	if (n < 2)
		return 0;
	f->masked = (p[1] & 0x80) != 0;
	unsigned len7 = p[1] & 0x7f;
	if ((d->require_mask == 1 && !f->masked) || (d->require_mask == 0 && f->masked))
		return fail(d, E_INVAL, WS_CLOSE_PROTOCOL);
	if (is_control(f->opcode) && len7 > WS_MAX_CONTROL_PAYLOAD)
		return fail(d, E_INVAL, WS_CLOSE_PROTOCOL);
	if (f->opcode == WS_OP_CLOSE && len7 == 1)
		return fail(d, E_INVAL, WS_CLOSE_PROTOCOL);           /* half a status code */
	size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
	size_t hl = 2 + ext + (f->masked ? 4 : 0);
	if (ext == 8 && n >= 3 && (p[2] & 0x80))
		return fail(d, E_INVAL, WS_CLOSE_PROTOCOL);           /* 64-bit length, top bit set */
	if (n < hl)
		return 0;
	f->len = len7;
	if (ext) {
		f->len = 0;
		for (size_t i = 0; i < ext; i++)
			f->len = f->len << 8 | p[2 + i];
	}
	if (f->masked)
		memcpy(f->mask, p + 2 + ext, 4);
	else
		memset(f->mask, 0, 4);
	if (!is_control(f->opcode)) {
		uint64_t before = f->opcode == WS_OP_CONT ? d->msg_len : 0;
		if (f->len > d->max_message - before)
			return fail(d, E_LIMIT, WS_CLOSE_TOO_BIG);
	}
	return (int)hl;
}

static void end_message(struct ws_decoder *d)
{
	d->msg_opcode = -1;
	d->msg_reported = 0;
	d->msg_len = 0;
	d->state = WS_DS_HEADER;
}

/* Report the payload bytes of the current data frame found at buf[pos..len). */
static int payload(struct ws_decoder *d, uint8_t *buf, size_t pos, size_t len, struct ws_event *ev)
{
	size_t n = len - pos;
	if (n == 0)
		return (int)pos;
	if (n > WS_MAX_SPAN)
		n = WS_MAX_SPAN;
	if ((uint64_t)n > d->remaining)
		n = (size_t)d->remaining;
	uint8_t *p = buf + pos;
	if (d->masked)
		ws_unmask(p, n, d->mask, d->offset);
	ev->type = WS_EV_DATA;
	ev->opcode = d->msg_opcode;
	ev->message_start = !d->msg_reported;
	ev->data = p;
	ev->len = n;
	d->msg_reported = 1;
	d->remaining -= n;
	d->offset += n;
	if (d->remaining == 0)
		d->state = d->fin ? WS_DS_END : WS_DS_HEADER;
	return (int)(pos + n);
}

/* A complete control frame: header hl bytes, payload at buf + hl. */
static int control(struct ws_decoder *d, const struct ws_frame *f, uint8_t *buf, size_t hl,
		   struct ws_event *ev)
{
	uint8_t *p = buf + hl;
	size_t n = (size_t)f->len;
	if (f->masked)
		ws_unmask(p, n, f->mask, 0);
	ev->opcode = f->opcode;
	ev->data = n ? p : NULL;
	ev->len = n;
	if (f->opcode == WS_OP_PING) {
		ev->type = WS_EV_PING;
	} else if (f->opcode == WS_OP_PONG) {
		ev->type = WS_EV_PONG;
	} else {
		uint16_t code = WS_CLOSE_NO_STATUS;
		int err = 0;
		uint16_t err_code = 0;
		if (n >= 2) {
			code = (uint16_t)(p[0] << 8 | p[1]);
			if (!ws_close_code_valid(code)) {
				err = E_INVAL;
				err_code = WS_CLOSE_PROTOCOL;
			} else if (!ws_utf8_valid(p + 2, n - 2)) {
				err = E_INVAL;
				err_code = WS_CLOSE_INVALID_DATA;
			}
		}
		if (err) {
			/* Leave the unconsumed bytes as they were. */
			if (f->masked)
				ws_unmask(p, n, f->mask, 0);
			ev->opcode = 0;
			ev->data = NULL;
			ev->len = 0;
			ev->error_code = err_code;
			return fail(d, err, err_code);
		}
		ev->type = WS_EV_CLOSE;
		ev->close_code = code;
		ev->data = n > 2 ? p + 2 : NULL;
		ev->len = n > 2 ? n - 2 : 0;
		d->state = WS_DS_CLOSED;
	}
	return (int)(hl + n);
}

int ws_decoder_next(struct ws_decoder *d, uint8_t *buf, size_t len, struct ws_event *ev)
{
	ev->type = WS_EV_NONE;
	ev->opcode = 0;
	ev->message_start = 0;
	ev->data = NULL;
	ev->len = 0;
	ev->close_code = 0;
	ev->error_code = 0;

	switch (d->state) {
	case WS_DS_ERROR:
		ev->error_code = d->err_code;
		return d->err;
	case WS_DS_CLOSED:
		if (len == 0)
			return 0;
		ev->error_code = WS_CLOSE_PROTOCOL;
		return E_CLOSED;
	case WS_DS_END:
		ev->type = WS_EV_MESSAGE_END;
		ev->opcode = d->msg_opcode;
		ev->message_start = !d->msg_reported;
		end_message(d);
		return 0;
	case WS_DS_PAYLOAD:
		return payload(d, buf, 0, len, ev);
	default:
		break;
	}

	struct ws_frame f;
	int hl = parse_header(d, buf, len, &f);
	if (hl < 0) {
		ev->error_code = d->err_code;
		return hl;
	}
	if (hl == 0)
		return 0;
	if (is_control(f.opcode)) {
		if (len - (size_t)hl < f.len)
			return 0;
		return control(d, &f, buf, (size_t)hl, ev);
	}

	if (f.opcode != WS_OP_CONT) {
		d->msg_opcode = f.opcode;
		d->msg_reported = 0;
		d->msg_len = 0;
	}
	d->msg_len += f.len;
	d->fin = f.fin;
	d->masked = f.masked;
	memcpy(d->mask, f.mask, 4);
	d->remaining = f.len;
	d->offset = 0;
	if (f.len == 0) {
		if (f.fin) {
			ev->type = WS_EV_MESSAGE_END;
			ev->opcode = d->msg_opcode;
			ev->message_start = !d->msg_reported;
			end_message(d);
		}
		return hl;
	}
	d->state = WS_DS_PAYLOAD;
	return payload(d, buf, (size_t)hl, len, ev);
}
