#if defined(__linux__) && !COMPAT_FORCE_FALLBACK
#define _GNU_SOURCE 1
#endif
#include "compat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(__linux__) && !COMPAT_FORCE_FALLBACK
#include <sys/random.h>
#define HAVE_GETRANDOM 1
#elif (defined(__APPLE__) || defined(__OpenBSD__) || defined(__FreeBSD__)) && !COMPAT_FORCE_FALLBACK
#define HAVE_ARC4RANDOM 1
#endif

static int urandom_fill(unsigned char *p, size_t n)
{
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			close(fd);
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	close(fd);
	return 0;
}

int compat_random(void *buf, size_t n)
{
	unsigned char *p = buf;
#if HAVE_GETRANDOM
	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return urandom_fill(p, n);
		p += r;
		n -= (size_t)r;
	}
	return 0;
#elif HAVE_ARC4RANDOM
	arc4random_buf(p, n);
	return 0;
#else
	return urandom_fill(p, n);
#endif
}

int compat_ct_equal(const void *a, const void *b, size_t n)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char diff = 0;
	for (size_t i = 0; i < n; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}
