/* url.c - small absolute-URL parser and serializer (see url.h). */
#include <arpa/inet.h>
#include <string.h>

#include "err.h"
#include "url.h"

#define URL_PORT_MAX 65535

static int is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int to_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static int ascii_caseeq(const char *a, const char *b)
{
	while (*a && *b && to_lower((unsigned char)*a) == to_lower((unsigned char)*b)) {
		a++;
		b++;
	}
	return *a == '\0' && *b == '\0';
}

/* is_special reports the schemes whose URLs need a host (WHATWG "special"
 * schemes that we care about). */
static int is_special(const char *scheme)
{
	return strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0 ||
	       strcmp(scheme, "ws") == 0 || strcmp(scheme, "wss") == 0;
}

/* copy_part copies n bytes into dst[cap], lower-casing when asked. */
static int copy_part(char *dst, size_t cap, const char *src, size_t n, int lower)
{
	if (n >= cap)
		return E_INVAL;
	for (size_t i = 0; i < n; i++)
		dst[i] = lower ? (char)to_lower((unsigned char)src[i]) : src[i];
	dst[n] = '\0';
	return 0;
}

static int parse_scheme(const char *s, size_t len, struct url *u, size_t *pos)
{
	size_t i = 0;
	if (len == 0 || !is_alpha((unsigned char)s[0]))
		return E_INVAL;
	while (i < len && s[i] != ':') {
		int c = (unsigned char)s[i];
		if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.')
			return E_INVAL;
		i++;
	}
	if (i == len)
		return E_INVAL;
	if (copy_part(u->scheme, sizeof(u->scheme), s, i, 1) != 0)
		return E_INVAL;
	*pos = i + 1;
	return 0;
}

/* parse_port parses n decimal digits; n == 0 means "no port". */
static int parse_port(const char *s, size_t n, int *port)
{
	long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit((unsigned char)s[i]))
			return E_INVAL;
		v = v * 10 + (s[i] - '0');
		if (v > URL_PORT_MAX)
			return E_INVAL;
	}
	*port = (int)v;
	return 0;
}

static int host_char_ok(int c)
{
	if (c >= 0x80)
		return 0;  /* no IDNA */
	return strchr("#%/:<>?@[\\]^|", c) == NULL;
}

static int parse_ipv6(const char *s, size_t n, struct url *u)
{
	unsigned char bin[16];
	if (copy_part(u->host, sizeof(u->host), s, n, 1) != 0)
		return E_INVAL;
	if (inet_pton(AF_INET6, u->host, bin) != 1)
		return E_INVAL;
	u->ipv6 = 1;
	return 0;
}

/* parse_hostport parses "host[:port]" or "[v6][:port]". */
static int parse_hostport(const char *s, size_t n, struct url *u)
{
	size_t hend, pstart;
	if (n > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (!close)
			return E_INVAL;
		hend = (size_t)(close - s);
		if (parse_ipv6(s + 1, hend - 1, u) != 0)
			return E_INVAL;
		pstart = hend + 1;
		if (pstart < n && s[pstart] != ':')
			return E_INVAL;
	} else {
		const char *colon = memchr(s, ':', n);
		hend = colon ? (size_t)(colon - s) : n;
		for (size_t i = 0; i < hend; i++)
			if (!host_char_ok((unsigned char)s[i]))
				return E_INVAL;
		if (copy_part(u->host, sizeof(u->host), s, hend, 1) != 0)
			return E_INVAL;
		pstart = hend;
	}
	if (pstart >= n)
		return 0;
	/* s[pstart] == ':'; an empty port means no port (WHATWG). */
	return parse_port(s + pstart + 1, n - pstart - 1, &u->port);
}

/* parse_authority parses from pos (just after "//") to the first '/',
 * '?' or '#'. The userinfo ends at the last '@'. */
static int parse_authority(const char *s, size_t len, struct url *u, size_t *pos)
{
	size_t start = *pos, end = start, at = len;
	while (end < len && s[end] != '/' && s[end] != '?' && s[end] != '#') {
		if (s[end] == '@')
			at = end;
		end++;
	}
	size_t hstart = start;
	if (at != len) {
		if (copy_part(u->userinfo, sizeof(u->userinfo), s + start, at - start, 0) != 0)
			return E_INVAL;
		hstart = at + 1;
	}
	if (parse_hostport(s + hstart, end - hstart, u) != 0)
		return E_INVAL;
	*pos = end;
	return 0;
}

static int parse_path_query(const char *s, size_t len, struct url *u, size_t pos)
{
	size_t pend = pos;
	while (pend < len && s[pend] != '?' && s[pend] != '#')
		pend++;
	if (copy_part(u->path, sizeof(u->path), s + pos, pend - pos, 0) != 0)
		return E_INVAL;
	if (pend < len && s[pend] == '?') {
		size_t qstart = pend + 1, qend = qstart;
		while (qend < len && s[qend] != '#')
			qend++;
		if (copy_part(u->query, sizeof(u->query), s + qstart, qend - qstart, 0) != 0)
			return E_INVAL;
	}
	return 0;
}

int url_parse(const char *s, size_t len, struct url *u)
{
	size_t pos = 0;
	memset(u, 0, sizeof(*u));
	if (!s || len == 0 || len >= URL_MAX)
		return E_INVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c == 0x7f)
			return E_INVAL;
	}
	if (parse_scheme(s, len, u, &pos) != 0)
		return E_INVAL;
	if (len - pos >= 2 && s[pos] == '/' && s[pos + 1] == '/') {
		u->has_authority = 1;
		pos += 2;
		if (parse_authority(s, len, u, &pos) != 0)
			return E_INVAL;
	}
	if (is_special(u->scheme) && (!u->has_authority || u->host[0] == '\0'))
		return E_INVAL;
	return parse_path_query(s, len, u, pos);
}

int url_default_port(const char *scheme)
{
	if (!scheme)
		return 0;
	if (ascii_caseeq(scheme, "http") || ascii_caseeq(scheme, "ws"))
		return 80;
	if (ascii_caseeq(scheme, "https") || ascii_caseeq(scheme, "wss"))
		return 443;
	return 0;
}

/* Bounded appender used by url_format. */
struct out {
	char *p;
	size_t cap, len;
	int overflow;
};

static void out_put(struct out *o, const char *s, size_t n)
{
	if (o->overflow || n >= o->cap - o->len) {
		o->overflow = 1;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void out_str(struct out *o, const char *s)
{
	out_put(o, s, strlen(s));
}

static void out_port(struct out *o, int port)
{
	char tmp[8];
	size_t n = sizeof(tmp);
	unsigned v = (unsigned)port;
	do {
		tmp[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n > 1);
	out_put(o, ":", 1);
	out_put(o, tmp + n, sizeof(tmp) - n);
}

int url_format(const struct url *u, char *out, size_t cap)
{
	struct out o = { out, cap, 0, 0 };
	if (!out || cap == 0)
		return E_LIMIT;
	out[0] = '\0';
	out_str(&o, u->scheme);
	out_put(&o, ":", 1);
	if (u->has_authority) {
		out_put(&o, "//", 2);
		if (u->userinfo[0]) {
			out_str(&o, u->userinfo);
			out_put(&o, "@", 1);
		}
		if (u->ipv6)
			out_put(&o, "[", 1);
		out_str(&o, u->host);
		if (u->ipv6)
			out_put(&o, "]", 1);
		if (u->port > 0 && u->port != url_default_port(u->scheme))
			out_port(&o, u->port);
	}
	if (u->path[0])
		out_str(&o, u->path);
	else if (u->has_authority)
		out_put(&o, "/", 1);
	if (u->query[0]) {
		out_put(&o, "?", 1);
		out_str(&o, u->query);
	}
	if (o.overflow)
		return E_LIMIT;
	return (int)o.len;
}
