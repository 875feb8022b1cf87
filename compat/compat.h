/* compat.h - portability shims.  Each function has a native path and a
 * POSIX fallback; COMPAT_FORCE_FALLBACK=1 forces the fallbacks so they are
 * compiled and tested on Linux too. */
#ifndef EXPOSRD_COMPAT_H
#define EXPOSRD_COMPAT_H

#include <stddef.h>

/* Fill buf with n cryptographically secure random bytes.  Returns 0 or -1.
 * Uses getrandom(2) or arc4random_buf(3); falls back to /dev/urandom. */
int compat_random(void *buf, size_t n);

/* Constant-time comparison of two byte strings of equal length n.
 * Returns 1 when equal. */
int compat_ct_equal(const void *a, const void *b, size_t n);

#endif
