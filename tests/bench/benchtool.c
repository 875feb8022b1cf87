/*
 * benchtool.c - small loopback helper for tests/bench/run.sh
 *
 *   benchtool freeport
 *       print a TCP port on 127.0.0.1 that is free right now
 *   benchtool startup ADMIN_PORT TIMEOUT_MS CMD [ARG]...
 *       fork/exec CMD, poll "GET /ping" on 127.0.0.1:ADMIN_PORT in a tight
 *       loop (fresh connection each time) and print the wall time in ms from
 *       just before fork() to the first 200 answer.  Then SIGTERM the child
 *       and wait for it (SIGKILL after 5 s).  Exit status 1 on timeout or if
 *       the child exits first.
 *   benchtool waitping ADMIN_PORT TIMEOUT_MS
 *       poll /ping until it answers 200; print the ms it took
 *   benchtool mktunnels API_PORT TOKEN COUNT PREFIX
 *       PUT /v1/tunnel/PREFIX-<i> for i in 1..COUNT over one keep-alive
 *       connection (reconnecting if the server closes it); print
 *       "<ok-count> <elapsed-ms>".  Exit status 1 unless all got 200.
 *
 * Built by run.sh with: cc -O2 -std=c99 -D_POSIX_C_SOURCE=200809L
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int connect_lo(int port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One GET /ping on a fresh connection. Returns the status code, or -1. */
static int ping_once(int port)
{
	static const char req[] = "GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
	char buf[256];
	size_t got = 0;
	int fd = connect_lo(port), status = -1;
	if (fd < 0)
		return -1;
	if (write_all(fd, req, sizeof(req) - 1) == 0) {
		while (got < sizeof(buf) - 1) {
			ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			got += (size_t)r;
			if (got >= 12)
				break;
		}
		buf[got] = 0;
		if (got >= 12 && strncmp(buf, "HTTP/1.", 7) == 0)
			status = atoi(buf + 9);
	}
	close(fd);
	return status;
}

/* Poll until /ping gives 200. child > 0: give up if it exits.
 * Returns elapsed ms since t0, or -1. */
static double poll_ping(int port, double t0, double timeout_ms, pid_t child)
{
	for (;;) {
		if (ping_once(port) == 200)
			return now_ms() - t0;
		if (now_ms() - t0 > timeout_ms)
			return -1;
		if (child > 0) {
			int st;
			if (waitpid(child, &st, WNOHANG) == child) {
				fprintf(stderr, "benchtool: server exited before /ping answered (status %d)\n", st);
				return -2;
			}
		}
		sleep_us(100);
	}
}

static void stop_child(pid_t pid)
{
	double t0 = now_ms();
	int st;
	kill(pid, SIGTERM);
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (now_ms() - t0 > 5000) {
			fprintf(stderr, "benchtool: server ignored SIGTERM for 5 s, killing\n");
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return;
		}
		sleep_us(1000);
	}
}

static int cmd_startup(int port, double timeout_ms, char **argv)
{
	double t0 = now_ms(), ms;
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		dup2(2, 1); /* keep our stdout for the result */
		execvp(argv[0], argv);
		perror(argv[0]);
		_exit(127);
	}
	ms = poll_ping(port, t0, timeout_ms, pid);
	if (ms == -2)
		return 1;
	stop_child(pid);
	if (ms < 0) {
		fprintf(stderr, "benchtool: /ping did not answer 200 within %.0f ms\n", timeout_ms);
		return 1;
	}
	printf("%.3f\n", ms);
	return 0;
}

/* Read one HTTP response (Content-Length bodies only) from fd.
 * Returns the status code, or -1 on error / connection closed. *close_after
 * is set when the server said Connection: close. */
static int read_response(int fd, int *close_after)
{
	static char buf[65536];
	size_t got = 0, hdr_len = 0;
	long clen = 0;
	int status;
	char *p, *end;
	*close_after = 0;
	for (;;) {
		ssize_t r;
		buf[got] = 0;
		if ((end = strstr(buf, "\r\n\r\n")) != NULL)
			break;
		if (got >= sizeof(buf) - 1)
			return -1;
		r = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	hdr_len = (size_t)(end - buf) + 4;
	if (strncmp(buf, "HTTP/1.", 7) != 0)
		return -1;
	status = atoi(buf + 9);
	for (p = strstr(buf, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n")) {
		if (strncasecmp(p + 2, "Content-Length:", 15) == 0)
			clen = strtol(p + 17, NULL, 10);
		else if (strncasecmp(p + 2, "Connection:", 11) == 0 && strstr(p + 13, "close") != NULL &&
			 strstr(p + 13, "close") < strstr(p + 2, "\r\n"))
			*close_after = 1;
	}
	/* skip the body */
	{
		long have = (long)(got - hdr_len);
		while (have < clen) {
			char tmp[8192];
			ssize_t r = read(fd, tmp, sizeof(tmp) < (size_t)(clen - have) ? sizeof(tmp) : (size_t)(clen - have));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return -1;
			have += r;
		}
	}
	return status;
}

static int cmd_mktunnels(int port, const char *token, int count, const char *prefix)
{
	static const char body[] =
		"{\"target\":{\"url\":\"http://127.0.0.1:9\"},\"ingress\":{\"http\":{\"enabled\":true}},"
		"\"transport\":{\"ws\":{\"enabled\":true}}}";
	char req[2048];
	int fd = -1, ok = 0, i, first_bad = 0;
	double t0 = now_ms();
	for (i = 1; i <= count; i++) {
		int n, status, close_after, tries;
		n = snprintf(req, sizeof(req),
			     "PUT /v1/tunnel/%s-%d HTTP/1.1\r\nHost: localhost:%d\r\n"
			     "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
			     "Content-Length: %zu\r\n\r\n%s",
			     prefix, i, port, token, sizeof(body) - 1, body);
		for (tries = 0; tries < 2; tries++) {
			if (fd < 0 && (fd = connect_lo(port)) < 0) {
				perror("benchtool: connect");
				return 1;
			}
			if (write_all(fd, req, (size_t)n) == 0 &&
			    (status = read_response(fd, &close_after)) > 0)
				break;
			close(fd); /* server closed an idle keep-alive: retry once */
			fd = -1;
			status = -1;
		}
		if (status == 200)
			ok++;
		else if (!first_bad) {
			first_bad = 1;
			fprintf(stderr, "benchtool: PUT %s-%d -> status %d\n", prefix, i, status);
		}
		if (fd >= 0 && close_after) {
			close(fd);
			fd = -1;
		}
	}
	if (fd >= 0)
		close(fd);
	printf("%d %.1f\n", ok, now_ms() - t0);
	return ok == count ? 0 : 1;
}

static int cmd_freeport(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		perror("benchtool: freeport");
		return 1;
	}
	printf("%d\n", ntohs(sa.sin_port));
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2 && strcmp(argv[1], "freeport") == 0)
		return cmd_freeport();
	if (argc >= 5 && strcmp(argv[1], "startup") == 0)
		return cmd_startup(atoi(argv[2]), atof(argv[3]), argv + 4);
	if (argc == 4 && strcmp(argv[1], "waitping") == 0) {
		double ms = poll_ping(atoi(argv[2]), now_ms(), atof(argv[3]), 0);
		if (ms < 0) {
			fprintf(stderr, "benchtool: /ping did not answer 200\n");
			return 1;
		}
		printf("%.3f\n", ms);
		return 0;
	}
	if (argc == 6 && strcmp(argv[1], "mktunnels") == 0)
		return cmd_mktunnels(atoi(argv[2]), argv[3], atoi(argv[4]), argv[5]);
	fprintf(stderr, "usage: benchtool freeport | startup PORT TIMEOUT_MS CMD... | "
			"waitping PORT TIMEOUT_MS | mktunnels PORT TOKEN COUNT PREFIX\n");
	return 2;
}
