/* dns.c - non-blocking CNAME stub resolver (see dns.h).
 *
 * Two halves: a sans-I/O part (name codec, query builder, reply parser,
 * resolv.conf parser) that tests and the fuzzer drive directly, and the
 * resolver proper, one struct dns_query per lookup with its own UDP socket
 * and timer on the loop.
 *
 * Names are handled internally in "wire form": length-prefixed labels
 * ending with a zero octet, ASCII letters folded to lower case, at most
 * DNS_MAX_NAME octets.  Owner names are compared in that form, so odd
 * octets in names we do not care about never need a text form; only the
 * CNAME target is turned into text, and there anything but letters,
 * digits, '-' and '_' is rejected (a '.' inside a label could otherwise
 * forge a match).
 */
#include "dns.h"
#include "compat.h"
#include "err.h"
#include "log.h"
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define DNS_HDR_LEN 12
#define DNS_TYPE_CNAME 5
#define DNS_CLASS_IN 1
#define DNS_RCODE_NXDOMAIN 3
#define DNS_MAX_QUERY (DNS_HDR_LEN + DNS_MAX_NAME + 4)
#define DNS_MAX_RESOLV_CONF 65536 /* bytes of resolv.conf read */
#define DNS_MAX_TOKEN 128         /* longest resolv.conf token used */
#define DNS_READS_PER_EVENT 16    /* datagrams read per readable event */
#define DNS_DEFAULT_PATH "/etc/resolv.conf"

/* ---- names ---- */

static uint8_t fold(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c - 'A' + 'a') : c;
}

static int host_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '_';
}

/* Text name (optional trailing dot) to lower-case wire form.  Returns the
 * wire length or E_INVAL. */
static int name_to_wire(const char *name, uint8_t wire[DNS_MAX_NAME])
{
	size_t n = 0, len = strlen(name);

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0)
		return E_INVAL; /* the root has no CNAME worth checking */
	size_t i = 0;
	while (i <= len) {
		size_t start = i;
		while (i < len && name[i] != '.')
			i++;
		size_t l = i - start;
		if (l == 0 || l > DNS_MAX_LABEL || n + 1 + l + 1 > DNS_MAX_NAME)
			return E_INVAL;
		wire[n++] = (uint8_t)l;
		for (size_t k = start; k < i; k++) {
			if (!host_char((uint8_t)name[k]))
				return E_INVAL;
			wire[n++] = fold((uint8_t)name[k]);
		}
		i++; /* skip the dot, or step past the end */
	}
	wire[n++] = 0;
	return (int)n;
}

/* Wire form (as produced by read_name) to text: lower case, no trailing
 * dot.  Returns 0, E_INVAL (root name or a character outside host_char)
 * or E_LIMIT (cap too small). */
static int wire_to_text(const uint8_t *wire, size_t wlen, char *out, size_t cap)
{
	size_t i = 0, o = 0;

	if (wlen < 2)
		return E_INVAL;
	while (i < wlen && wire[i] != 0) {
		size_t l = wire[i++];
		if (o > 0) {
			if (o + 1 >= cap)
				return E_LIMIT;
			out[o++] = '.';
		}
		for (size_t k = 0; k < l; k++) {
			if (!host_char(wire[i + k]))
				return E_INVAL;
			if (o + 1 >= cap)
				return E_LIMIT;
			out[o++] = (char)wire[i + k];
		}
		i += l;
	}
	out[o] = '\0';
	return 0;
}

/* Read the possibly compressed name at msg[off] into wire form.  *end is
 * set to the offset just after the name's in-place bytes.  Pointers must
 * point backwards (below the pointer itself) and past the header, at most
 * DNS_MAX_POINTERS of them; labels are 0..63 octets (the 0x40/0x80 label
 * types are rejected) and the whole name at most DNS_MAX_NAME octets.
 * Returns the wire length or E_INVAL.  Iterative: no recursion. */
static int read_name(const uint8_t *msg, size_t len, size_t off, uint8_t wire[DNS_MAX_NAME], size_t *end)
{
	size_t pos = off, n = 0;
	int hops = 0, jumped = 0;

	for (;;) {
		if (pos >= len)
			return E_INVAL;
		uint8_t c = msg[pos];
		if ((c & 0xC0) == 0xC0) {
			if (pos + 1 >= len)
				return E_INVAL;
			size_t target = ((size_t)(c & 0x3F) << 8) | msg[pos + 1];
			if (!jumped) {
				*end = pos + 2;
				jumped = 1;
			}
			if (++hops > DNS_MAX_POINTERS || target >= pos || target < DNS_HDR_LEN)
				return E_INVAL;
			pos = target;
			continue;
		}
		if (c & 0xC0)
			return E_INVAL;
		if (c == 0) {
			wire[n++] = 0; /* room: checked with the last label */
			if (!jumped)
				*end = pos + 1;
			return (int)n;
		}
		/* the label must be in range (the octet after it is checked
		 * on the next turn); the name must stay within DNS_MAX_NAME */
		if ((size_t)c + 1 > len - pos || n + 1 + c + 1 > DNS_MAX_NAME)
			return E_INVAL;
		wire[n++] = c;
		for (size_t k = 1; k <= c; k++)
			wire[n++] = fold(msg[pos + k]);
		pos += 1 + (size_t)c;
	}
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* ---- messages ---- */

int dns_build_query(uint16_t id, const char *qname, uint8_t *out, size_t cap)
{
	uint8_t wire[DNS_MAX_NAME];
	int wlen = name_to_wire(qname, wire);

	if (wlen < 0)
		return wlen;
	if ((size_t)DNS_HDR_LEN + (size_t)wlen + 4 > cap)
		return E_LIMIT;
	memset(out, 0, DNS_HDR_LEN);
	put16(out, id);
	out[2] = 0x01; /* RD */
	put16(out + 4, 1); /* QDCOUNT */
	memcpy(out + DNS_HDR_LEN, wire, (size_t)wlen);
	put16(out + DNS_HDR_LEN + wlen, DNS_TYPE_CNAME);
	put16(out + DNS_HDR_LEN + wlen + 2, DNS_CLASS_IN);
	return DNS_HDR_LEN + wlen + 4;
}

int dns_parse_response(const uint8_t *msg, size_t len, uint16_t id, const char *qname,
		       char *cname_out, size_t cap)
{
	uint8_t qwire[DNS_MAX_NAME], wire[DNS_MAX_NAME];
	size_t pos, end = 0;
	int qlen, wlen, rc, found = 0;

	if (cname_out && cap > 0)
		cname_out[0] = '\0';
	if (!cname_out || cap == 0)
		return E_LIMIT;
	qlen = name_to_wire(qname, qwire);
	if (qlen < 0)
		return E_INVAL;

	/* Is it the reply to this query?  If not, E_AGAIN: drop it. */
	if (len < DNS_HDR_LEN || get16(msg) != id)
		return E_AGAIN;
	if (!(msg[2] & 0x80) || ((msg[2] >> 3) & 0x0F) != 0) /* QR, OPCODE QUERY */
		return E_AGAIN;
	if (get16(msg + 4) != 1)
		return E_AGAIN;
	wlen = read_name(msg, len, DNS_HDR_LEN, wire, &end);
	if (wlen < 0 || wlen != qlen || memcmp(wire, qwire, (size_t)qlen) != 0)
		return E_AGAIN;
	if (len - end < 4 || get16(msg + end) != DNS_TYPE_CNAME || get16(msg + end + 2) != DNS_CLASS_IN)
		return E_AGAIN;
	pos = end + 4;

	/* It is: judge the header, then walk the answer section. */
	if (msg[2] & 0x02)
		return E_LIMIT; /* TC: no TCP fallback */
	if ((msg[3] & 0x0F) == DNS_RCODE_NXDOMAIN)
		return E_NOTFOUND;
	if ((msg[3] & 0x0F) != 0)
		return E_IO;
	unsigned an = get16(msg + 6);
	for (unsigned i = 0; i < an; i++) {
		wlen = read_name(msg, len, pos, wire, &end);
		if (wlen < 0 || len - end < 10)
			goto malformed;
		uint16_t type = get16(msg + end), klass = get16(msg + end + 2);
		size_t rdlen = get16(msg + end + 8);
		size_t rdata = end + 10;
		if (rdlen > len - rdata)
			goto malformed;
		if (!found && type == DNS_TYPE_CNAME && klass == DNS_CLASS_IN && wlen == qlen &&
		    memcmp(wire, qwire, (size_t)qlen) == 0) {
			size_t tend = 0;
			/* the name may point anywhere before it, but its own
			 * bytes must be exactly the RDATA */
			wlen = read_name(msg, rdata + rdlen, rdata, wire, &tend);
			if (wlen < 0 || tend != rdata + rdlen)
				goto malformed;
			rc = wire_to_text(wire, (size_t)wlen, cname_out, cap);
			if (rc < 0) {
				cname_out[0] = '\0';
				return rc;
			}
			found = 1;
		}
		pos = rdata + rdlen;
	}
	return found ? 0 : E_NOTFOUND;

malformed:
	cname_out[0] = '\0';
	return E_INVAL;
}

/* ---- resolv.conf ---- */

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Next whitespace-separated token in [*p, end): sets *tok and *toklen and
 * advances *p.  Returns 0 at the end of the line. */
static int next_token(const char **p, const char *end, const char **tok, size_t *toklen)
{
	const char *s = *p;

	while (s < end && is_space(*s))
		s++;
	if (s == end)
		return 0;
	*tok = s;
	while (s < end && !is_space(*s))
		s++;
	*toklen = (size_t)(s - *tok);
	*p = s;
	return 1;
}

static int token_is(const char *tok, size_t len, const char *word)
{
	return len == strlen(word) && memcmp(tok, word, len) == 0;
}

/* "prefix:N" with N decimal: sets *v (large values saturate) and returns
 * 1, or 0 when tok is not that option. */
static int option_value(const char *tok, size_t len, const char *prefix, int *v)
{
	size_t pl = strlen(prefix);
	long n = 0;

	if (len <= pl || memcmp(tok, prefix, pl) != 0)
		return 0;
	for (size_t i = pl; i < len; i++) {
		if (tok[i] < '0' || tok[i] > '9')
			return 0;
		if (n < 100000)
			n = n * 10 + (tok[i] - '0');
	}
	*v = (int)n;
	return 1;
}

static int clamp(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static int add_server(struct dns_config *cfg, const char *tok, size_t len)
{
	char host[DNS_MAX_TOKEN];
	struct addrinfo hints, *res = NULL;

	if (cfg->nservers == DNS_MAX_SERVERS || len == 0 || len >= sizeof(host))
		return E_LIMIT;
	memcpy(host, tok, len);
	host[len] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(host, "53", &hints, &res) != 0 || !res)
		return E_INVAL;
	int rc = E_INVAL;
	if ((res->ai_family == AF_INET || res->ai_family == AF_INET6) &&
	    res->ai_addrlen <= sizeof(cfg->servers[0])) {
		memcpy(&cfg->servers[cfg->nservers], res->ai_addr, res->ai_addrlen);
		cfg->server_len[cfg->nservers] = (socklen_t)res->ai_addrlen;
		cfg->nservers++;
		rc = 0;
	}
	freeaddrinfo(res);
	return rc;
}

void dns_config_parse(const char *text, size_t len, struct dns_config *cfg)
{
	const char *p = text, *end = text + len;

	memset(cfg, 0, sizeof(*cfg));
	cfg->timeout_ms = DNS_TIMEOUT_DEFAULT_S * 1000;
	cfg->attempts = DNS_ATTEMPTS_DEFAULT;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		const char *tok;
		size_t tlen;
		int v;

		if (next_token(&p, eol, &tok, &tlen) && tok[0] != '#' && tok[0] != ';') {
			if (token_is(tok, tlen, "nameserver")) {
				if (next_token(&p, eol, &tok, &tlen))
					(void)add_server(cfg, tok, tlen);
			} else if (token_is(tok, tlen, "options")) {
				while (next_token(&p, eol, &tok, &tlen)) {
					if (option_value(tok, tlen, "timeout:", &v))
						cfg->timeout_ms = clamp(v, DNS_TIMEOUT_MIN_S, DNS_TIMEOUT_MAX_S) * 1000;
					else if (option_value(tok, tlen, "attempts:", &v))
						cfg->attempts = clamp(v, DNS_ATTEMPTS_MIN, DNS_ATTEMPTS_MAX);
				}
			}
		}
		p = nl ? nl + 1 : end;
	}
	if (cfg->nservers == 0) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&cfg->servers[0];
		sin->sin_family = AF_INET;
		sin->sin_port = htons(53);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		cfg->server_len[0] = sizeof(*sin);
		cfg->nservers = 1;
	}
}

/* Read up to DNS_MAX_RESOLV_CONF bytes of path.  Returns a malloc'ed
 * buffer (*len bytes) or NULL. */
static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n = 0, r;

	if (!f)
		return NULL;
	buf = malloc(DNS_MAX_RESOLV_CONF);
	if (buf) {
		while (n < DNS_MAX_RESOLV_CONF && (r = fread(buf + n, 1, DNS_MAX_RESOLV_CONF - n, f)) > 0)
			n += r;
		if (ferror(f)) {
			free(buf);
			buf = NULL;
		}
	}
	fclose(f);
	*len = n;
	return buf;
}

/* ---- resolver ---- */

struct dns_query {
	struct dns *d;
	struct dns_query *prev, *next;
	int fd;                      /* socket of the current try, or -1 */
	struct loop_timer *timer;    /* start, or timeout of the current try */
	int counted;                 /* counts against DNS_MAX_PENDING */
	int preset;                  /* fails with status when started */
	int tries, max_tries;        /* tries started / allowed */
	int first_server;
	int status;                  /* outcome of the last try (or preset) */
	uint16_t id;                 /* ID of the current try */
	struct sockaddr_storage sa;  /* server of the current try */
	socklen_t salen;
	dns_cname_cb cb;             /* dns_query_cname mode */
	void (*check_cb)(void *arg, int ok); /* dns_cname_check mode */
	void *arg;
	char name[DNS_NAME_BUFSZ];
	char target[DNS_NAME_BUFSZ]; /* check mode: expected, lower case */
};

struct dns {
	struct loop *loop;
	struct dns_config cfg;
	struct dns_query *head;
	int npending;
	unsigned rotate;             /* first server of the next query */
	uint8_t rbuf[DNS_MAX_UDP + 1];
};

static void close_socket(struct dns_query *q)
{
	if (q->fd >= 0) {
		loop_del(q->d->loop, q->fd);
		(void)close(q->fd);
		q->fd = -1;
	}
}

/* Release q's resources and unlink it. */
static void query_destroy(struct dns_query *q)
{
	struct dns *d = q->d;

	close_socket(q);
	loop_timer_cancel(d->loop, q->timer);
	q->timer = NULL;
	if (q->prev)
		q->prev->next = q->next;
	else
		d->head = q->next;
	if (q->next)
		q->next->prev = q->prev;
	if (q->counted)
		d->npending--;
	free(q);
}

/* Report and free q.  Must be the last thing a loop callback does with q
 * and d: the user callback may free the resolver. */
static void finish(struct dns_query *q, int status, const char *cname)
{
	dns_cname_cb cb = q->cb;
	void (*check_cb)(void *, int) = q->check_cb;
	void *arg = q->arg;
	int ok = 0;

	if (status != 0)
		cname = NULL;
	if (check_cb)
		ok = status == 0 && strcmp(cname, q->target) == 0;
	if (status != 0 && status != E_NOTFOUND)
		log_debug("dns", "CNAME %s: %s", q->name, err_str(status));
	query_destroy(q);
	if (check_cb)
		check_cb(arg, ok);
	else
		cb(arg, status, cname);
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a, *y = (const struct sockaddr_in6 *)b;
		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return 0;
}

static void next_try(struct dns_query *q);

static void try_timeout(struct loop *loop, void *arg)
{
	struct dns_query *q = arg;

	q->timer = NULL; /* fired: the loop has freed it */
	q->status = E_TIMEOUT;
	next_try(q);
}

static void try_readable(struct loop *loop, int fd, int events, void *arg)
{
	struct dns_query *q = arg;
	struct dns *d = q->d;
	char cname[DNS_NAME_BUFSZ];

	for (int i = 0; i < DNS_READS_PER_EVENT; i++) {
		struct sockaddr_storage from;
		socklen_t fromlen = sizeof(from);
		ssize_t n = recvfrom(fd, d->rbuf, sizeof(d->rbuf), 0, (struct sockaddr *)&from, &fromlen);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* ICMP unreachable and friends: this server is out */
			q->status = E_IO;
			next_try(q);
			return;
		}
		if (!same_addr(&from, &q->sa))
			continue; /* not from the server we asked */
		size_t len = (size_t)n > DNS_MAX_UDP ? DNS_MAX_UDP : (size_t)n;
		int rc = dns_parse_response(d->rbuf, len, q->id, q->name, cname, sizeof(cname));
		if (rc == E_AGAIN)
			continue; /* spoofed or stale: keep waiting */
		if ((size_t)n > DNS_MAX_UDP)
			rc = E_LIMIT;
		if (rc == 0 || rc == E_NOTFOUND) {
			finish(q, rc, cname);
			return;
		}
		q->status = rc; /* server failure: next server */
		next_try(q);
		return;
	}
}

/* Start one try at server (first_server + tries) % nservers.  Returns 0 or
 * E_*; on error the socket is closed again. */
static int send_try(struct dns_query *q)
{
	struct dns *d = q->d;
	uint8_t pkt[DNS_MAX_QUERY];
	int idx = (q->first_server + q->tries) % d->cfg.nservers;
	int len, rc;

	q->sa = d->cfg.servers[idx];
	q->salen = d->cfg.server_len[idx];
	if (compat_random(&q->id, sizeof(q->id)) != 0)
		return E_IO;
	len = dns_build_query(q->id, q->name, pkt, sizeof(pkt));
	if (len < 0)
		return len;
	q->fd = socket(q->sa.ss_family, SOCK_DGRAM, 0);
	if (q->fd < 0)
		return E_IO;
	int fl = fcntl(q->fd, F_GETFL);
	if (fl < 0 || fcntl(q->fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(q->fd, F_SETFD, FD_CLOEXEC) < 0 ||
	    connect(q->fd, (const struct sockaddr *)&q->sa, q->salen) != 0 ||
	    send(q->fd, pkt, (size_t)len, 0) != (ssize_t)len) {
		(void)close(q->fd);
		q->fd = -1;
		return E_IO;
	}
	rc = loop_add(d->loop, q->fd, LOOP_READ, try_readable, q);
	if (rc != 0) {
		(void)close(q->fd);
		q->fd = -1;
		return rc;
	}
	return 0;
}

/* End the current try (if any) and start the next; when none is left,
 * report the outcome of the last one. */
static void next_try(struct dns_query *q)
{
	struct dns *d = q->d;

	close_socket(q);
	loop_timer_cancel(d->loop, q->timer);
	q->timer = NULL;
	while (q->tries < q->max_tries) {
		int rc = send_try(q);
		q->tries++;
		if (rc == 0) {
			q->timer = loop_timer_add(d->loop, (uint64_t)d->cfg.timeout_ms, try_timeout, q);
			if (q->timer)
				return;
			rc = E_NOMEM;
			close_socket(q);
		}
		q->status = rc;
	}
	finish(q, q->status, NULL);
}

static void query_start(struct loop *loop, void *arg)
{
	struct dns_query *q = arg;

	q->timer = NULL;
	if (q->preset) { /* check mode: invalid name or pending limit */
		finish(q, q->status, NULL);
		return;
	}
	next_try(q);
}

/* Allocate and link a query that starts (or, with preset != 0, fails with
 * preset) on the next loop iteration.  Returns NULL on allocation failure. */
static struct dns_query *query_new(struct dns *d, const char *name, int preset)
{
	struct dns_query *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->d = d;
	q->fd = -1;
	q->preset = preset != 0;
	q->status = preset ? preset : E_TIMEOUT;
	q->max_tries = d->cfg.attempts * d->cfg.nservers;
	q->first_server = (int)(d->rotate++ % (unsigned)d->cfg.nservers);
	snprintf(q->name, sizeof(q->name), "%s", name);
	q->timer = loop_timer_add(d->loop, 0, query_start, q);
	if (!q->timer) {
		free(q);
		return NULL;
	}
	q->next = d->head;
	if (d->head)
		d->head->prev = q;
	d->head = q;
	if (!preset) {
		q->counted = 1;
		d->npending++;
	}
	return q;
}

struct dns *dns_new(struct loop *loop, const char *resolv_conf_path)
{
	struct dns *d = calloc(1, sizeof(*d));
	const char *path = resolv_conf_path ? resolv_conf_path : DNS_DEFAULT_PATH;
	size_t len = 0;
	char *text;

	if (!d)
		return NULL;
	d->loop = loop;
	text = read_file(path, &len);
	if (!text)
		log_debug("dns", "cannot read %s, using defaults", path);
	dns_config_parse(text ? text : "", text ? len : 0, &d->cfg);
	free(text);
	(void)compat_random(&d->rotate, sizeof(d->rotate));
	return d;
}

void dns_free(struct dns *d)
{
	if (!d)
		return;
	while (d->head)
		query_destroy(d->head);
	free(d);
}

const struct dns_config *dns_get_config(const struct dns *d)
{
	return &d->cfg;
}

int dns_set_servers(struct dns *d, const struct sockaddr_storage *sa, int n)
{
	if (n < 1 || n > DNS_MAX_SERVERS)
		return E_INVAL;
	for (int i = 0; i < n; i++)
		if (sa[i].ss_family != AF_INET && sa[i].ss_family != AF_INET6)
			return E_INVAL;
	for (int i = 0; i < n; i++) {
		d->cfg.servers[i] = sa[i];
		d->cfg.server_len[i] = sa[i].ss_family == AF_INET ? (socklen_t)sizeof(struct sockaddr_in)
								 : (socklen_t)sizeof(struct sockaddr_in6);
	}
	d->cfg.nservers = n;
	return 0;
}

int dns_query_cname(struct dns *d, const char *name, dns_cname_cb cb, void *arg)
{
	uint8_t wire[DNS_MAX_NAME];
	struct dns_query *q;

	if (!cb || name_to_wire(name, wire) < 0)
		return E_INVAL;
	if (d->npending >= DNS_MAX_PENDING)
		return E_LIMIT;
	q = query_new(d, name, 0);
	if (!q)
		return E_NOMEM;
	q->cb = cb;
	q->arg = arg;
	return 0;
}

void dns_cname_check(void *dns, const char *name, const char *target,
		     void (*cb)(void *arg, int ok), void *cbarg)
{
	struct dns *d = dns;
	uint8_t wire[DNS_MAX_NAME];
	size_t tlen = strlen(target);
	int preset = 0;

	if (tlen > 0 && target[tlen - 1] == '.')
		tlen--;
	if (name_to_wire(name, wire) < 0 || tlen == 0 || tlen >= DNS_NAME_BUFSZ)
		preset = E_INVAL;
	else if (d->npending >= DNS_MAX_PENDING)
		preset = E_LIMIT;
	/* A preset failure is not counted against DNS_MAX_PENDING: it holds
	 * no socket and goes away on the next iteration. */
	struct dns_query *q = query_new(d, name, preset); /* name is truncated if too long */
	if (!q) {
		cb(cbarg, 0); /* last resort: cannot defer the report */
		return;
	}
	q->check_cb = cb;
	q->arg = cbarg;
	if (!preset) {
		for (size_t i = 0; i < tlen; i++)
			q->target[i] = (char)fold((uint8_t)target[i]);
		q->target[tlen] = '\0';
	}
}
