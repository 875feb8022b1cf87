/* t-url.c - unit tests for lib/url.c */
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "test.h"
#include "url.h"

static int parse(const char *s, struct url *u)
{
	return url_parse(s, strlen(s), u);
}

/* norm parses s and formats it back; returns the static result or "ERR". */
static const char *norm(const char *s)
{
	static char out[URL_MAX + 16];
	struct url u;
	if (parse(s, &u) != 0)
		return "ERR";
	if (url_format(&u, out, sizeof(out)) < 0)
		return "FMT";
	return out;
}

TEST(test_basic_parts)
{
	struct url u;
	CHECK_EQ(parse("https://user:pw@Example.COM:8443/a/B?x=1&y#frag", &u), 0);
	CHECK_STR(u.scheme, "https");
	CHECK_STR(u.userinfo, "user:pw");
	CHECK_STR(u.host, "example.com");
	CHECK_EQ(u.port, 8443);
	CHECK_STR(u.path, "/a/B");
	CHECK_STR(u.query, "x=1&y");
	CHECK_EQ(u.has_authority, 1);
	CHECK_EQ(u.ipv6, 0);
}

TEST(test_no_port_no_path)
{
	struct url u;
	CHECK_EQ(parse("http://localhost", &u), 0);
	CHECK_STR(u.host, "localhost");
	CHECK_EQ(u.port, 0);
	CHECK_STR(u.path, "");
	CHECK_STR(u.query, "");
	CHECK_STR(u.userinfo, "");
	CHECK_EQ(parse("http://localhost:", &u), 0);  /* empty port = none */
	CHECK_EQ(u.port, 0);
}

TEST(test_normalize)
{
	CHECK_STR(norm("HTTP://EXAMPLE.com"), "http://example.com/");
	CHECK_STR(norm("https://Tun.Example.com:443"), "https://tun.example.com/");
	CHECK_STR(norm("http://example.com:80/x"), "http://example.com/x");
	CHECK_STR(norm("http://example.com:8080"), "http://example.com:8080/");
	CHECK_STR(norm("ws://h:80/p?q"), "ws://h/p?q");
	CHECK_STR(norm("wss://h:443"), "wss://h/");
	CHECK_STR(norm("wss://h:80"), "wss://h:80/");
	CHECK_STR(norm("http://u:p@h:81/a?b=c#d"), "http://u:p@h:81/a?b=c");
	CHECK_STR(norm("redis://:secret@redis-host:6379/0"), "redis://:secret@redis-host:6379/0");
	CHECK_STR(norm("tcps://Test.example.com:4430"), "tcps://test.example.com:4430/");
	CHECK_STR(norm("http://localhost:8080"), "http://localhost:8080/");
	CHECK_STR(norm("http://h/A%20B"), "http://h/A%20B");
}

TEST(test_ipv6)
{
	struct url u;
	CHECK_EQ(parse("http://[::1]:8080/x", &u), 0);
	CHECK_STR(u.host, "::1");
	CHECK_EQ(u.ipv6, 1);
	CHECK_EQ(u.port, 8080);
	CHECK_STR(norm("http://[2001:DB8::1]"), "http://[2001:db8::1]/");
	CHECK_STR(norm("http://[::1]:80"), "http://[::1]/");
	CHECK_EQ(parse("http://[::1", &u), E_INVAL);
	CHECK_EQ(parse("http://[zz::1]/", &u), E_INVAL);
	CHECK_EQ(parse("http://[::1]x/", &u), E_INVAL);
	CHECK_EQ(parse("http://[]/", &u), E_INVAL);
}

TEST(test_ports)
{
	struct url u;
	CHECK_EQ(parse("http://h:65535", &u), 0);
	CHECK_EQ(u.port, 65535);
	CHECK_EQ(parse("http://h:65536", &u), E_INVAL);
	CHECK_EQ(parse("http://h:99999999999999999999", &u), E_INVAL);
	CHECK_EQ(parse("http://h:8o", &u), E_INVAL);
	CHECK_EQ(parse("http://h:-1", &u), E_INVAL);
	CHECK_EQ(parse("http://h:1:2", &u), E_INVAL);
	CHECK_EQ(parse("http://h:0080", &u), 0);
	CHECK_EQ(u.port, 80);
}

TEST(test_rejects)
{
	struct url u;
	CHECK_EQ(parse("", &u), E_INVAL);
	CHECK_EQ(parse("example.com", &u), E_INVAL);
	CHECK_EQ(parse("/path", &u), E_INVAL);
	CHECK_EQ(parse(":x", &u), E_INVAL);
	CHECK_EQ(parse("1http://x", &u), E_INVAL);
	CHECK_EQ(parse("ht_tp://x", &u), E_INVAL);
	CHECK_EQ(parse("http://exa mple.com", &u), E_INVAL);
	CHECK_EQ(parse("http://example.com/a b", &u), E_INVAL);
	CHECK_EQ(parse(" http://example.com", &u), E_INVAL);
	CHECK_EQ(parse("http://example.com\n", &u), E_INVAL);
	CHECK_EQ(parse("http://example.com/\x7f", &u), E_INVAL);
	CHECK_EQ(parse("http://ex\tample.com", &u), E_INVAL);
	CHECK_EQ(parse("http://", &u), E_INVAL);
	CHECK_EQ(parse("http:example.com", &u), E_INVAL);
	CHECK_EQ(parse("https:///path", &u), E_INVAL);
	CHECK_EQ(parse("http://a<b/", &u), E_INVAL);
	CHECK_EQ(parse("http://a%41/", &u), E_INVAL);
	CHECK_EQ(parse("http://a\\b/", &u), E_INVAL);
	/* embedded NUL inside the given length */
	CHECK_EQ(url_parse("http://a\0b", 10, &u), E_INVAL);
	CHECK_EQ(url_parse(NULL, 0, &u), E_INVAL);
}

TEST(test_scheme_rules)
{
	struct url u;
	CHECK_EQ(parse("a+b-c.d://x", &u), 0);
	CHECK_STR(u.scheme, "a+b-c.d");
	CHECK_EQ(parse("SqLite:db", &u), 0);
	CHECK_STR(u.scheme, "sqlite");
	char longscheme[64];
	memset(longscheme, 'a', 40);
	memcpy(longscheme + 40, "://x", 5);
	CHECK_EQ(parse(longscheme, &u), E_INVAL);
}

TEST(test_non_special)
{
	struct url u;
	CHECK_EQ(parse("memory://", &u), 0);
	CHECK_STR(u.scheme, "memory");
	CHECK_STR(u.host, "");
	CHECK_EQ(u.has_authority, 1);
	CHECK_STR(norm("memory://"), "memory:///");
	CHECK_EQ(parse("memory:", &u), 0);
	CHECK_EQ(u.has_authority, 0);
	CHECK_STR(norm("memory:"), "memory:");
	CHECK_EQ(parse("sqlite:db.sqlite", &u), 0);
	CHECK_EQ(u.has_authority, 0);
	CHECK_STR(u.path, "db.sqlite");
	CHECK_EQ(parse("sqlite:///var/lib/db.sqlite", &u), 0);
	CHECK_STR(u.host, "");
	CHECK_STR(u.path, "/var/lib/db.sqlite");
	CHECK_EQ(parse("sqlite://db.sqlite", &u), 0);
	CHECK_STR(u.host, "db.sqlite");
	CHECK_STR(u.path, "");
	CHECK_STR(norm("mailto:a@b.c"), "mailto:a@b.c");
	CHECK_STR(norm("ssh://user@host:22"), "ssh://user@host:22/");
	CHECK_STR(norm("postgres://u:p@db/name?sslmode=disable"), "postgres://u:p@db/name?sslmode=disable");
}

TEST(test_userinfo_last_at)
{
	struct url u;
	CHECK_EQ(parse("postgres://us@er:p@ss@db:5432/x", &u), 0);
	CHECK_STR(u.userinfo, "us@er:p@ss");
	CHECK_STR(u.host, "db");
	CHECK_EQ(u.port, 5432);
	CHECK_EQ(parse("http://h/x@y", &u), 0);
	CHECK_STR(u.userinfo, "");
	CHECK_STR(u.path, "/x@y");
	CHECK_EQ(parse("http://h?a@b", &u), 0);
	CHECK_STR(u.host, "h");
	CHECK_STR(u.query, "a@b");
}

TEST(test_limits)
{
	static char big[URL_MAX + 8];
	struct url u;
	memcpy(big, "http://h/", 9);
	memset(big + 9, 'a', sizeof(big) - 10);
	big[sizeof(big) - 1] = '\0';
	CHECK_EQ(parse(big, &u), E_INVAL);           /* over URL_MAX */
	big[URL_PATH_MAX + 20] = '\0';
	CHECK_EQ(parse(big, &u), E_INVAL);           /* path over its limit */
	big[9 + URL_PATH_MAX - 2] = '\0';
	CHECK_EQ(parse(big, &u), 0);
	char host[URL_HOST_MAX + 16];
	memcpy(host, "http://", 7);
	memset(host + 7, 'h', URL_HOST_MAX);
	host[7 + URL_HOST_MAX] = '\0';
	CHECK_EQ(parse(host, &u), E_INVAL);
}

TEST(test_format_limits)
{
	struct url u;
	char out[64];
	CHECK_EQ(parse("http://example.com:8080/path?q", &u), 0);
	int n = url_format(&u, out, sizeof(out));
	CHECK_EQ(n, (int)strlen("http://example.com:8080/path?q"));
	CHECK_STR(out, "http://example.com:8080/path?q");
	CHECK_EQ(url_format(&u, out, (size_t)n), E_LIMIT);   /* no room for NUL */
	CHECK_EQ(url_format(&u, out, (size_t)n + 1), n);
	CHECK_EQ(url_format(&u, out, 5), E_LIMIT);
	CHECK_EQ(url_format(&u, out, 0), E_LIMIT);
	/* Built by hand, as the API does for tunnel URLs. */
	memset(&u, 0, sizeof(u));
	memcpy(u.scheme, "https", 6);
	memcpy(u.host, "abc.tun.example.com", 20);
	u.has_authority = 1;
	u.port = 443;
	CHECK_EQ(url_format(&u, out, sizeof(out)), (int)strlen("https://abc.tun.example.com/"));
	CHECK_STR(out, "https://abc.tun.example.com/");
}

TEST(test_default_port)
{
	CHECK_EQ(url_default_port("http"), 80);
	CHECK_EQ(url_default_port("HTTPS"), 443);
	CHECK_EQ(url_default_port("ws"), 80);
	CHECK_EQ(url_default_port("wss"), 443);
	CHECK_EQ(url_default_port("ssh"), 0);
	CHECK_EQ(url_default_port("tcps"), 0);
	CHECK_EQ(url_default_port("httpx"), 0);
	CHECK_EQ(url_default_port(""), 0);
	CHECK_EQ(url_default_port(NULL), 0);
}

/* Every split length must either fail or parse, never read past len. */
TEST(test_prefixes)
{
	const char *s = "https://u@[::1]:8443/p?q#f";
	struct url u;
	for (size_t n = 0; n <= strlen(s); n++) {
		char *copy = malloc(n ? n : 1);
		CHECK(copy != NULL);
		if (!copy)
			return;
		memcpy(copy, s, n);
		int rc = url_parse(copy, n, &u);
		CHECK(rc == 0 || rc == E_INVAL);
		free(copy);
	}
}

int main(void)
{
	RUN(test_basic_parts);
	RUN(test_no_port_no_path);
	RUN(test_normalize);
	RUN(test_ipv6);
	RUN(test_ports);
	RUN(test_rejects);
	RUN(test_scheme_rules);
	RUN(test_non_special);
	RUN(test_userinfo_last_at);
	RUN(test_limits);
	RUN(test_format_limits);
	RUN(test_default_port);
	RUN(test_prefixes);
	return test_done();
}
