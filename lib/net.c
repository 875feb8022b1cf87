#include "net.h"
#include "err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define NET_BACKLOG 1024

int net_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return E_IO;
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return E_IO;
	return 0;
}

static int listen_one(const struct sockaddr *sa, socklen_t len, int v6only)
{
	int fd = socket(sa->sa_family, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sa->sa_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
	if (net_set_nonblock(fd) != 0 || bind(fd, sa, len) != 0 || listen(fd, NET_BACKLOG) != 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

int net_listen_tcp(const char *host, int port, int fds[2], int *nfds)
{
	*nfds = 0;
	if (host) {
		struct addrinfo hints, *res;
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
		char portstr[8];
		snprintf(portstr, sizeof(portstr), "%d", port);
		if (getaddrinfo(host, portstr, &hints, &res) != 0) {
			errno = EADDRNOTAVAIL;
			return E_IO;
		}
		int fd = listen_one(res->ai_addr, res->ai_addrlen, 1);
		freeaddrinfo(res);
		if (fd < 0)
			return E_IO;
		fds[(*nfds)++] = fd;
		return 0;
	}
	/* Dual-stack first; if IPv6 is unavailable fall back to IPv4 only. */
	struct sockaddr_in6 a6;
	memset(&a6, 0, sizeof(a6));
	a6.sin6_family = AF_INET6;
	a6.sin6_addr = in6addr_any;
	a6.sin6_port = htons((unsigned short)port);
	int fd = listen_one((struct sockaddr *)&a6, sizeof(a6), 0);
	if (fd >= 0) {
		fds[(*nfds)++] = fd;
		return 0;
	}
	if (errno == EADDRINUSE)
		return E_IO;
	struct sockaddr_in a4;
	memset(&a4, 0, sizeof(a4));
	a4.sin_family = AF_INET;
	a4.sin_addr.s_addr = htonl(INADDR_ANY);
	a4.sin_port = htons((unsigned short)port);
	fd = listen_one((struct sockaddr *)&a4, sizeof(a4), 0);
	if (fd < 0)
		return E_IO;
	fds[(*nfds)++] = fd;
	return 0;
}

int net_accept(int lfd, struct sockaddr_storage *sa, socklen_t *salen)
{
	*salen = sizeof(*sa);
	int fd = accept(lfd, (struct sockaddr *)sa, salen);
	if (fd < 0)
		return -1;
	if (net_set_nonblock(fd) != 0) {
		close(fd);
		errno = EIO;
		return -1;
	}
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

void net_addr_host(const struct sockaddr_storage *sa, char *out, size_t cap)
{
	out[0] = '\0';
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)cap);
	} else if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		const unsigned char *b = a->sin6_addr.s6_addr;
		static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (memcmp(b, mapped, 12) == 0)
			inet_ntop(AF_INET, b + 12, out, (socklen_t)cap);
		else
			inet_ntop(AF_INET6, &a->sin6_addr, out, (socklen_t)cap);
	}
}

int net_local_port(int fd)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);
	if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
		return -1;
	if (sa.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&sa)->sin_port);
	if (sa.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
	return -1;
}

long net_write(int fd, const void *p, size_t n)
{
	for (;;) {
#ifdef MSG_NOSIGNAL
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
#else
		ssize_t w = write(fd, p, n); /* SIGPIPE is ignored process-wide */
#endif
		if (w >= 0)
			return (long)w;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return E_IO;
	}
}

long net_read(int fd, void *p, size_t n)
{
	for (;;) {
		ssize_t r = read(fd, p, n);
		if (r > 0)
			return (long)r;
		if (r == 0)
			return E_CLOSED;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return E_IO;
	}
}

long net_writev(int fd, const struct iovec *iov, int iovcnt)
{
	struct msghdr msg;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = (struct iovec *)iov;
	msg.msg_iovlen = iovcnt;
	for (;;) {
#ifdef MSG_NOSIGNAL
		ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
#else
		ssize_t w = sendmsg(fd, &msg, 0);
#endif
		if (w >= 0)
			return (long)w;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return E_IO;
	}
}

int net_is_ip(const char *s, size_t n)
{
	char tmp[64];
	unsigned char addr[16];
	if (n == 0 || n >= sizeof(tmp))
		return 0;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return inet_pton(AF_INET, tmp, addr) == 1 || inet_pton(AF_INET6, tmp, addr) == 1;
}
