/* url.h - small absolute-URL parser and serializer.
 *
 * Used to validate URL options (config.c) and to build advertised URLs
 * (api, ingress). It handles the forms
 *
 *   scheme://[userinfo@]host[:port][/path][?query][#fragment]
 *   scheme:opaque-path[?query][#fragment]
 *
 * No percent-decoding and no IDNA is done. A struct url is a value type
 * that lives on the caller's stack; all components are NUL-terminated
 * copies with the fixed limits below.
 */
#ifndef EXPOSRD_URL_H
#define EXPOSRD_URL_H

#include <stddef.h>

#define URL_MAX 2048          /* longest accepted input, in bytes */
#define URL_SCHEME_MAX 32     /* sizes of the component arrays, NUL included */
#define URL_USERINFO_MAX 256
#define URL_HOST_MAX 256
#define URL_PATH_MAX 1024
#define URL_QUERY_MAX 1024

struct url {
	char scheme[URL_SCHEME_MAX];     /* lower-cased, without ':' */
	char userinfo[URL_USERINFO_MAX]; /* raw text before '@', may be empty */
	char host[URL_HOST_MAX];         /* lower-cased; IPv6 without brackets; may be empty ("memory://") */
	int port;                        /* explicit port, or 0 when absent */
	char path[URL_PATH_MAX];         /* raw path, may be empty */
	char query[URL_QUERY_MAX];       /* without '?', may be empty */
	int has_authority;               /* "//" was present after the scheme */
	int ipv6;                        /* host was bracketed (an IPv6 literal) */
};

/* url_parse parses the len bytes at s into *u (the fragment is dropped).
 * Returns 0, or E_INVAL when the text is not an absolute URL: no
 * scheme matching [A-Za-z][A-Za-z0-9+.-]*, a space, control or NUL byte,
 * a port that is not decimal or above 65535, a bad IPv6 literal, a
 * component over its limit, or an empty host for http/https/ws/wss
 * (which also require "//"). *u is only meaningful on success. */
int url_parse(const char *s, size_t len, struct url *u);

/* url_default_port returns 80 for http/ws, 443 for https/wss (scheme
 * compared case-insensitively), else 0. */
int url_default_port(const char *scheme);

/* url_format writes the normalized form
 *   scheme:[//[userinfo@]host[:port]]path[?query]
 * into out (NUL-terminated): the port is dropped when it is the scheme's
 * default, an IPv6 host is bracketed, and an empty path is written as "/"
 * when the URL has an authority. Returns the length written (without
 * the NUL), or E_LIMIT when cap is too small. */
int url_format(const struct url *u, char *out, size_t cap);

#endif
