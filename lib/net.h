/* net.h - nonblocking TCP sockets and addresses. */
#ifndef EXPOSRD_NET_H
#define EXPOSRD_NET_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#define NET_ADDRSTR_MAX 64 /* "[ipv6]:port" fits */

/* Listen on port for IPv6 and IPv4 (dual-stack where the system allows,
 * otherwise separate sockets).  host NULL means any address.  Fills fds
 * (up to 2) and *nfds.  Returns 0 or E_IO with errno set. */
int net_listen_tcp(const char *host, int port, int fds[2], int *nfds);
/* Accept one connection, nonblocking and close-on-exec.  Returns the fd,
 * or -1 with errno EAGAIN when none is pending or another error. */
int net_accept(int lfd, struct sockaddr_storage *sa, socklen_t *salen);
int net_set_nonblock(int fd);
/* Numeric host of an address (no port, IPv4-mapped IPv6 shown as IPv4). */
void net_addr_host(const struct sockaddr_storage *sa, char *out, size_t cap);
/* Local port a socket is bound to, or -1. */
int net_local_port(int fd);
/* write(2) that never raises SIGPIPE.  >0 bytes, 0 would block, <0 E_*. */
long net_write(int fd, const void *p, size_t n);
/* writev(2) without SIGPIPE: bytes written, 0 would block, <0 E_*. */
struct iovec;
long net_writev(int fd, const struct iovec *iov, int iovcnt);
/* True if s (n bytes) is an IPv4 or IPv6 literal. */
int net_is_ip(const char *s, size_t n);
/* read(2): >0 bytes, 0 would block, E_CLOSED on EOF, other <0 E_*. */
long net_read(int fd, void *p, size_t n);

#endif
