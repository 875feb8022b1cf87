/* ws.h - RFC 6455 WebSocket codec (no I/O, no allocation).
 *
 * Frame encoding, masking, the handshake's Sec-WebSocket-Accept value,
 * close payloads, and a streaming frame decoder that works on the
 * caller's receive buffer: it unmasks payload bytes in place and returns
 * slices into that buffer.  Usable by a server (peer frames must be
 * masked) and by a client (peer frames must be unmasked).
 * No permessage-deflate: RSV bits are always a protocol error.
 */
#ifndef EXPOSRD_WS_H
#define EXPOSRD_WS_H

#include <stddef.h>
#include <stdint.h>

#define WS_MAX_FRAME_HEADER 14            /* 2 + 8 (64-bit length) + 4 (mask) */
#define WS_MAX_CONTROL_PAYLOAD 125        /* RFC 6455 §5.5 */
#define WS_MAX_MESSAGE_DEFAULT (16u << 20) /* transports.md §2.1: over it, close 1009 */
#define WS_ACCEPT_KEY_LEN 28              /* base64 of a SHA-1 digest */

enum { WS_OP_CONT = 0, WS_OP_TEXT = 1, WS_OP_BINARY = 2, WS_OP_CLOSE = 8, WS_OP_PING = 9, WS_OP_PONG = 10 };

/* Close codes (RFC 6455 §7.4.1).  1005 (no status) and 1006 (abnormal)
 * are never sent on the wire. */
enum {
	WS_CLOSE_NORMAL = 1000, WS_CLOSE_GOING_AWAY = 1001, WS_CLOSE_PROTOCOL = 1002,
	WS_CLOSE_UNSUPPORTED = 1003, WS_CLOSE_NO_STATUS = 1005, WS_CLOSE_ABNORMAL = 1006,
	WS_CLOSE_INVALID_DATA = 1007, WS_CLOSE_POLICY = 1008, WS_CLOSE_TOO_BIG = 1009,
	WS_CLOSE_INTERNAL = 1011
};

/* Encode a frame header for a payload of len bytes into out.  fin is
 * nonzero for the last frame of a message; opcode is a WS_OP_* value (only
 * its low 4 bits are used).  mask NULL = unmasked (server->client);
 * otherwise the 4-byte masking key is written into the header and the
 * caller masks the payload itself with ws_unmask(payload, n, mask, 0).
 * The shortest length form is always used.  Returns the header length
 * (2..14). */
size_t ws_encode_header(uint8_t out[WS_MAX_FRAME_HEADER], int fin, int opcode, uint64_t len,
			const uint8_t *mask);

/* XOR p[0..n) in place with the masking key (unmasking and masking are the
 * same operation).  offset = position of p[0] within the frame payload, so
 * a payload can be processed in pieces. */
void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2).  key[0..len)
 * must be the base64 form of 16 bytes: exactly 22 characters of the
 * standard alphabet followed by "==" (the check the Node `ws` server
 * makes; the unused low bits of the last character are not checked).
 * out gets the 28 characters plus a NUL.  Returns 0, or E_INVAL (out is
 * then an empty string). */
int ws_accept_key(const char *key, size_t len, char out[WS_ACCEPT_KEY_LEN + 1]);

/* Close frame payload: code in network order followed by the UTF-8 reason
 * (NULL = none), truncated to fit WS_MAX_CONTROL_PAYLOAD bytes without
 * splitting a multi-byte UTF-8 sequence (a reason that is not UTF-8 is
 * cut at 123 bytes).  reason is read up to its NUL or 124 bytes.  code 0 =
 * no status: an empty payload.  Returns the payload length (0 or 2..125). */
size_t ws_encode_close_payload(uint8_t out[WS_MAX_CONTROL_PAYLOAD], uint16_t code, const char *reason);

/* 1 if p[0..n) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), else 0. */
int ws_utf8_valid(const uint8_t *p, size_t n);

/* 1 if code may appear in a received close frame (1000-1003, 1007-1014,
 * 3000-4999), else 0. */
int ws_close_code_valid(unsigned code);

/* ---- streaming decoder ---- */

enum ws_event_type { WS_EV_NONE = 0, WS_EV_DATA, WS_EV_MESSAGE_END, WS_EV_PING, WS_EV_PONG, WS_EV_CLOSE };

struct ws_event {
	enum ws_event_type type;
	int opcode;            /* DATA/MESSAGE_END: WS_OP_TEXT or WS_OP_BINARY of the message;
	                        * PING/PONG/CLOSE: the control opcode */
	int message_start;     /* DATA: first bytes of a new message (also set on the END of a
	                        * message that had no payload bytes at all) */
	uint8_t *data;         /* DATA: payload bytes (unmasked, inside the caller's buffer);
	                        * PING/PONG: the control payload; CLOSE: the reason text after
	                        * the 2-byte code (not NUL-terminated); NULL when len is 0 */
	size_t len;
	uint16_t close_code;   /* CLOSE: received code (1005 when the payload is empty) */
	uint16_t error_code;   /* when the call returns an error: the close code to send
	                        * (1002, 1007, 1009) */
};

/* Decoder state; embed it (no allocation).  Fields are private to ws.c
 * but documented here so the struct can be embedded:
 *   require_mask  1 peer frames must be masked (server), 0 must not be
 *                 (client), -1 either
 *   max_message   cap on one data message's total payload
 *   state         WS_DS_* in ws.c (header, payload, end pending, closed, error)
 *   fin           FIN bit of the data frame being read
 *   masked, mask  masking key of the data frame being read
 *   msg_opcode    opcode of the message in progress, -1 when none
 *   msg_reported  a DATA event was already reported for that message
 *   remaining     payload bytes of the current data frame not yet reported
 *   offset        payload bytes of the current data frame already reported
 *   msg_len       payload bytes of the message so far, counting the whole
 *                 current frame (checked against max_message per header)
 *   err, err_code the sticky error (E_*) and its close code */
struct ws_decoder {
	int require_mask;
	uint64_t max_message;
	int state;
	int fin;
	int masked;
	uint8_t mask[4];
	int msg_opcode;
	int msg_reported;
	uint64_t remaining;
	uint64_t offset;
	uint64_t msg_len;
	int err;
	uint16_t err_code;
};

/* require_mask: 1 = frames must be masked (server side), 0 = must be
 * unmasked (client side), -1 = either.  max_message: the largest total
 * payload of one data message (0 = WS_MAX_MESSAGE_DEFAULT); larger
 * messages fail with 1009 as soon as a frame header announces them. */
void ws_decoder_init(struct ws_decoder *d, int require_mask, uint64_t max_message);

/* Decode from buf[0..len), the unconsumed bytes of the receive buffer.
 * Returns the number of bytes consumed (>= 0; the caller drops them before
 * the next call) and fills ev with at most one event.  Call again until
 * it returns 0 with WS_EV_NONE, which means more input is needed (and that
 * nothing changed: the same buffer gives the same answer).  A call may
 * also consume bytes without an event (a frame header whose payload has
 * not arrived, an empty non-final fragment) or report an event without
 * consuming anything (MESSAGE_END after the last DATA of a message).
 *
 * Payload bytes are unmasked in place; only consumed bytes are modified,
 * and event slices point into the consumed part of buf, valid until the
 * caller reuses that memory.  A frame header is consumed only when
 * complete.  Control frames are reported only once their whole payload is
 * in buf (consumed 0 until then), so buf must have room for 131 bytes.
 * DATA events cover as much of the current frame's payload as is in buf
 * (at most 1 GiB per event, so the count fits the int return); empty
 * frames give no DATA event; MESSAGE_END follows the last byte of a
 * message.  Control frames may arrive between the fragments of a message.
 *
 * Errors return a negative E_* and set ev->error_code (E_INVAL with 1002
 * or 1007, E_LIMIT with 1009): RSV bits, an unknown opcode, a masked or
 * unmasked frame against require_mask, a fragmented or >125-byte control
 * frame, a continuation with no message in progress or a new message
 * inside a fragmented one, a 64-bit length with the top bit set, a message
 * over max_message (1009), a close payload of 1 byte or an invalid close
 * code (1002), a close reason that is not UTF-8 (1007).  Errors are sticky:
 * every later call returns the same error.  After a CLOSE event, a call
 * with len > 0 returns E_CLOSED (error_code 1002) and len 0 returns 0.
 * Text messages are not checked for UTF-8 (ws_utf8_valid is there for the
 * caller).  Non-minimal length encodings are accepted, as Node's `ws`
 * does. */
int ws_decoder_next(struct ws_decoder *d, uint8_t *buf, size_t len, struct ws_event *ev);

/* 1 while a fragmented data message is in progress (between its first
 * frame and its MESSAGE_END), else 0. */
int ws_decoder_in_message(const struct ws_decoder *d);

#endif
