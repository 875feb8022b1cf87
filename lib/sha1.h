/* sha1.h - SHA-1 (FIPS 180-4, RFC 3174).
 *
 * Used for the WebSocket handshake (Sec-WebSocket-Accept, RFC 6455 §4.2.2).
 * SHA-1 is not collision resistant; do not use it for anything that needs
 * to be.  No allocation, no I/O.
 */
#ifndef EXPOSRD_SHA1_H
#define EXPOSRD_SHA1_H

#include <stddef.h>
#include <stdint.h>

/* Linker names with a prefix: a static libssh (make static) exports its
 * own global sha1, sha1_init, sha1_update and sha1_final. */
#define sha1_init exposrd_sha1_init
#define sha1_update exposrd_sha1_update
#define sha1_final exposrd_sha1_final
#define sha1 exposrd_sha1

#define SHA1_DIGEST_LEN 20
#define SHA1_BLOCK_LEN 64

/* Incremental state; a value type meant to live on the stack or inside
 * another struct.  Fields (read-only for callers):
 *   h      the five chaining words
 *   len    message bytes hashed so far (the bit length is len * 8)
 *   buf    bytes of an incomplete block, buf[0 .. len % 64) */
struct sha1_ctx {
	uint32_t h[5];
	uint64_t len;
	uint8_t buf[SHA1_BLOCK_LEN];
};

void sha1_init(struct sha1_ctx *c);
/* Hash data[0..len); data may be NULL when len is 0.  Any split of the
 * input over update calls gives the same digest. */
void sha1_update(struct sha1_ctx *c, const void *data, size_t len);
/* Write the digest to out and wipe the context (sha1_init to reuse). */
void sha1_final(struct sha1_ctx *c, uint8_t out[SHA1_DIGEST_LEN]);

/* One-shot digest of data[0..len). */
void sha1(const void *data, size_t len, uint8_t out[SHA1_DIGEST_LEN]);

#endif
