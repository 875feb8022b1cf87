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

/* File change notification (inotify on Linux).  compat_filewatch_open
 * returns a nonblocking fd that polls readable when a watched file or
 * anything in its directory may have changed, or -1 where the system has
 * no such facility (the caller then relies on polling with stat()).
 * Events are hints: check the files themselves. */
int compat_filewatch_open(void);
/* Watch path (following symlinks) and the directory that holds it, so
 * that a file replaced by rename is noticed too.  Returns 0 or -1. */
int compat_filewatch_add(int wfd, const char *path);
/* Read and discard pending events; returns 1 if there were any. */
int compat_filewatch_drain(int wfd);
void compat_filewatch_close(int wfd); /* -1 is a no-op */

#endif
