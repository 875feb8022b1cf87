/* base64.h - RFC 4648 base64 and base64url. */
#ifndef EXPOSRD_BASE64_H
#define EXPOSRD_BASE64_H

#include <stddef.h>

/* Encoded length of n bytes (with padding), excluding the NUL. */
#define BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)

/* Standard alphabet with padding.  out needs BASE64_ENCODED_LEN(n)+1.
 * Returns the length written (NUL-terminated). */
size_t base64_encode(const void *in, size_t n, char *out);
/* URL alphabet without padding.  Returns the length (NUL-terminated). */
size_t base64url_encode(const void *in, size_t n, char *out);
/* Lenient decode (spec/api.md §2.1): both alphabets, padding optional,
 * other characters ignored.  out needs n*3/4+1 bytes.  Returns length. */
size_t base64_decode_lenient(const char *in, size_t n, unsigned char *out);
/* Strict base64url without padding; returns length or -1 on bad input. */
long base64url_decode_strict(const char *in, size_t n, unsigned char *out);

#endif
