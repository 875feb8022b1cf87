/* mux.h - ws-multiplex (WSM) version 2 message codec (no I/O, no allocation).
 *
 * Wire format (spec/transports.md §2.1-2.3): each WSM message is exactly
 * one WebSocket binary message, a 16-byte big-endian header followed by
 * the payload:
 *
 *   offset 0  uint16 version (2)     offset 4  uint32 dst channel
 *   offset 2  uint16 type            offset 8  uint32 src channel
 *                                    offset 12 uint32 length (payload bytes)
 *
 * The reader takes the bytes of one WebSocket message as the ws decoder
 * reports them (DATA events that may split the header anywhere),
 * reassembles the header and then streams the payload without copying it.
 * The payload is "everything after byte 16 of the message"; the length
 * field is reported but never trusted (§2.2 DECISION).  The version is
 * reported as received; checking it (close 1002 when it is not 2, §2.8)
 * is the caller's job.
 */
#ifndef EXPOSRD_MUX_H
#define EXPOSRD_MUX_H

#include <stddef.h>
#include <stdint.h>

#define MUX_HEADER_LEN 16
#define MUX_VERSION 2

/* Message types (§2.3).  Unknown values are passed through. */
enum mux_type { MUX_DATA = 1, MUX_OPEN = 2, MUX_ACK = 3, MUX_CLOSE = 4, MUX_PAUSE = 5, MUX_RESUME = 6 };

struct mux_header {
	uint16_t version;
	uint16_t type;
	uint32_t dst;     /* channel number in the receiver's number space (0 = none) */
	uint32_t src;     /* channel number in the sender's number space (0 = none) */
	uint32_t length;  /* payload length as the sender stated it */
};

/* Write a version-2 header. */
void mux_encode_header(uint8_t out[MUX_HEADER_LEN], uint16_t type, uint32_t dst, uint32_t src, uint32_t length);
/* Read the fields of a header (any version). */
void mux_decode_header(const uint8_t in[MUX_HEADER_LEN], struct mux_header *h);

/* Reader for one WebSocket message at a time; embed it (no allocation).
 * Fields (read-only for callers):
 *   header    valid once MUX_RD_HEADER was reported for this message
 *   hbuf      header bytes gathered so far when the header arrived split
 *   hlen      header bytes seen so far (0..16; 16 = header complete)
 *   payload   payload bytes reported so far in this message */
struct mux_reader {
	struct mux_header header;
	uint8_t hbuf[MUX_HEADER_LEN];
	size_t hlen;
	uint64_t payload;
};

enum mux_reader_event { MUX_RD_NONE = 0, MUX_RD_HEADER, MUX_RD_PAYLOAD };

/* A new WebSocket message starts: forget the previous one. */
void mux_reader_begin(struct mux_reader *r);

/* Feed message bytes p[0..n) (p may be NULL when n is 0).  Returns the
 * bytes consumed; call again with the rest until all of p is consumed.
 * *ev is MUX_RD_HEADER once the 16th header byte is consumed (r->header is
 * then valid; payload bytes in the same span come with the next call),
 * MUX_RD_PAYLOAD with *data, *dlen the whole remaining span (inside p, not
 * copied), or MUX_RD_NONE when the bytes only added to an incomplete
 * header (or n was 0; then 0 is returned).  *data is NULL and *dlen 0
 * unless the event is MUX_RD_PAYLOAD. */
size_t mux_reader_feed(struct mux_reader *r, const uint8_t *p, size_t n, int *ev,
		       const uint8_t **data, size_t *dlen);

/* The WebSocket message ended.  Returns 1 if a complete header was seen,
 * with *payload_len (if not NULL) the real payload length (the message
 * length minus 16, whatever the length field said).  Returns 0 for a
 * message shorter than 16 bytes, which is to be ignored (§2.8), with
 * *payload_len 0. */
int mux_reader_end(struct mux_reader *r, uint64_t *payload_len);

#endif
