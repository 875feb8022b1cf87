/* dns.h - small non-blocking DNS stub resolver on the loop (CNAME only).
 *
 * Used to verify alt-name CNAMEs (spec/api.md §2.5): every requested alt
 * name must have a CNAME whose target equals <tunnel-id>.<ingress host>.
 *
 * Resolver behaviour:
 *  - Nameservers and options come from resolv.conf: up to DNS_MAX_SERVERS
 *    `nameserver` lines (IPv4 or IPv6, numeric, "%scope" allowed), and
 *    `options timeout:N attempts:N` (N clamped to DNS_TIMEOUT_MIN_S..
 *    DNS_TIMEOUT_MAX_S and DNS_ATTEMPTS_MIN..DNS_ATTEMPTS_MAX).  Without any
 *    nameserver line (or without a readable file) 127.0.0.1 is used.
 *    Defaults: 2 s timeout, 2 attempts.  `search`/`domain`/`ndots` are
 *    ignored: names are always queried as absolute names.
 *  - A query makes up to attempts * nservers tries.  Each try goes to the
 *    next server, starting from a server that rotates per query; a server
 *    failure (SERVFAIL, REFUSED, ICMP unreachable, malformed or truncated
 *    reply) moves on to the next try at once, silence moves on after the
 *    timeout.  The result is that of the last try.
 *  - Each try uses a fresh connected UDP socket (so a fresh source port,
 *    randomised by the kernel) and a fresh random 16-bit ID
 *    (compat_random).  A datagram is accepted only when its source
 *    address, ID, and question (name, type CNAME, class IN) match the try;
 *    anything else is dropped and the try keeps waiting.
 *  - No TCP fallback: a truncated (TC) reply counts as a failed try
 *    (E_LIMIT).  CNAME answers are small and fit in 512 bytes.
 *  - No cache: every call queries the network.
 */
#ifndef EXPOSRD_DNS_H
#define EXPOSRD_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define DNS_MAX_NAME 255       /* max wire length of a name (RFC 1035) */
#define DNS_MAX_LABEL 63       /* max length of one label */
#define DNS_NAME_BUFSZ 256     /* buffer for a name in text form + NUL */
#define DNS_MAX_PENDING 256    /* queries in flight per resolver */
#define DNS_MAX_SERVERS 3      /* nameservers used from resolv.conf */
#define DNS_MAX_POINTERS 32    /* compression pointers followed per name */
#define DNS_MAX_UDP 4096       /* largest reply datagram read */
#define DNS_TIMEOUT_DEFAULT_S 2
#define DNS_TIMEOUT_MIN_S 1
#define DNS_TIMEOUT_MAX_S 30
#define DNS_ATTEMPTS_DEFAULT 2
#define DNS_ATTEMPTS_MIN 1
#define DNS_ATTEMPTS_MAX 5

struct loop;
struct dns;

/* Resolver configuration (a value type).  server_len[i] is the length of
 * servers[i]; timeout_ms is the wait per try. */
struct dns_config {
	struct sockaddr_storage servers[DNS_MAX_SERVERS];
	socklen_t server_len[DNS_MAX_SERVERS];
	int nservers;
	int timeout_ms;
	int attempts;
};

/* Parse resolv.conf text (text[0..len), need not be NUL-terminated) into
 * cfg, starting from the defaults.  Unknown lines and options, and
 * nameserver lines beyond DNS_MAX_SERVERS or with a non-numeric address,
 * are ignored.  With no usable nameserver, cfg has 127.0.0.1:53.  Never
 * fails. */
void dns_config_parse(const char *text, size_t len, struct dns_config *cfg);

/* Create a resolver on loop.  resolv_conf_path NULL means
 * /etc/resolv.conf; a missing or unreadable file gives the defaults
 * (logged at debug level).  Returns NULL on allocation failure. */
struct dns *dns_new(struct loop *loop, const char *resolv_conf_path);

/* Free the resolver.  Pending queries are cancelled WITHOUT calling their
 * callbacks (callbacks only ever run from loop callbacks, never from
 * dns_free); their args are not touched, so callers that free the
 * resolver with checks in flight own the cleanup of those args.  Must be
 * called before loop_free.  Safe inside a dns callback.  NULL is a no-op. */
void dns_free(struct dns *d);

/* The configuration in use (from resolv.conf or dns_set_servers). */
const struct dns_config *dns_get_config(const struct dns *d);

/* Test hook: replace the nameserver list with sa[0..n) (1 <= n <=
 * DNS_MAX_SERVERS; AF_INET or AF_INET6, any port, e.g. a fake server on
 * 127.0.0.1:<random>).  Timeout and attempts are kept.  Affects tries
 * started afterwards.  Returns 0 or E_INVAL. */
int dns_set_servers(struct dns *d, const struct sockaddr_storage *sa, int n);

/* Result of dns_query_cname.  status:
 *   0           cname is the target of name's CNAME: lower case, no
 *               trailing dot, valid only during the call
 *   E_NOTFOUND  name has no CNAME (NXDOMAIN, or NOERROR without one)
 *   E_TIMEOUT   no server answered
 *   E_IO        server failure (SERVFAIL, REFUSED...) or socket error
 *   E_LIMIT     truncated reply (no TCP fallback)
 *   E_INVAL     malformed reply
 *   E_NOMEM     allocation failure
 * cname is NULL unless status is 0. */
typedef void (*dns_cname_cb)(void *arg, int status, const char *cname);

/* Look up the CNAME of name (absolute; a trailing dot is optional; case
 * does not matter).  Returns 0 when the query was queued: cb(arg, ...) then
 * runs exactly once, later, from a loop callback (never inside this call),
 * unless dns_free cancels it first.  Returns E_INVAL for an invalid name
 * (empty label, label > 63, name > 255 octets, characters other than
 * letters, digits, '-' and '_'), E_LIMIT with DNS_MAX_PENDING queries in
 * flight, E_NOMEM; cb is then never called.  name is copied. */
int dns_query_cname(struct dns *d, const char *name, dns_cname_cb cb, void *arg);

/* service_cname_checker.check for a struct dns *: does name have a CNAME
 * equal to target (case-insensitive, trailing dots ignored)?  Calls
 * cb(cbarg, 1) if so, cb(cbarg, 0) if not or if the lookup fails (also for
 * an invalid name or the pending limit).  cb runs later from the loop,
 * never inside this call, except as a last resort when memory for the
 * deferred report cannot be allocated.  dns_free cancels it without a
 * callback, as for dns_query_cname. */
void dns_cname_check(void *dns, const char *name, const char *target,
		     void (*cb)(void *arg, int ok), void *cbarg);

/* Parse the reply msg[0..len) to the CNAME query (id, qname) and extract
 * the target of qname's CNAME into cname_out (cap bytes, text form, lower
 * case, no trailing dot).  qname is in text form as for dns_query_cname.
 * Only the first CNAME record owned by qname is used (the head of a chain);
 * records for other names are skipped; the authority and additional
 * sections are not read.  Compression pointers must point backwards, at
 * most DNS_MAX_POINTERS per name; no recursion.  Returns:
 *   0           found; cname_out is set
 *   E_AGAIN     not a reply to this query (too short for a header, wrong
 *               ID, not a response, question section absent, malformed or
 *               different): ignore it and keep waiting
 *   E_NOTFOUND  NXDOMAIN, or NOERROR without a CNAME for qname
 *   E_LIMIT     truncated (TC) reply, or cname_out is too small
 *   E_IO        another RCODE (SERVFAIL, REFUSED, ...)
 *   E_INVAL     malformed answer section or target name, or qname invalid
 * cname_out is "" unless 0 is returned (when cap > 0). */
int dns_parse_response(const uint8_t *msg, size_t len, uint16_t id, const char *qname,
		       char *cname_out, size_t cap);

/* Build the query for (id, qname, type CNAME, class IN, RD) into out
 * (cap bytes).  Returns the length, or E_INVAL (bad name) / E_LIMIT. */
int dns_build_query(uint16_t id, const char *qname, uint8_t *out, size_t cap);

#endif
