/* fuzz-dns.c - libFuzzer target for the DNS reply parser (lib/dns.c).
 *
 * The input is a DNS reply.  It is parsed as the answer to a CNAME query
 * for the name in its own question section (when that is a plain valid
 * name, so mutations keep matching) and for a fixed name, with its own ID.
 * Checks: the status is one of the documented codes; a found target is a
 * well-formed lower-case name; the result does not depend on the output
 * capacity beyond the documented E_LIMIT; a different ID is always
 * E_AGAIN.  The same bytes also go through the resolv.conf parser.
 * Any broken invariant aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int cond)
{
	if (!cond)
		abort();
}

/* The question name, if written uncompressed with host characters only. */
static int question_name(const uint8_t *d, size_t n, char *out, size_t cap)
{
	size_t pos = 12, o = 0;

	while (pos < n && d[pos] != 0) {
		size_t l = d[pos++];
		if (l > 63 || pos + l > n || o + l + 2 > cap)
			return -1;
		if (o)
			out[o++] = '.';
		for (size_t i = 0; i < l; i++) {
			uint8_t c = d[pos + i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			      c == '-' || c == '_'))
				return -1;
			out[o++] = (char)c;
		}
		pos += l;
	}
	out[o] = '\0';
	return o > 0 ? 0 : -1;
}

static void check_name(const char *s)
{
	size_t n = strlen(s), label = 0;

	must(n >= 1 && n <= 253);
	must(s[0] != '.' && s[n - 1] != '.');
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			must(label > 0);
			label = 0;
			continue;
		}
		must((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_');
		must(++label <= 63);
	}
}

static void fuzz_parse(const uint8_t *data, size_t size, uint16_t id, const char *qname)
{
	char out[DNS_NAME_BUFSZ], small[DNS_NAME_BUFSZ];
	int rc = dns_parse_response(data, size, id, qname, out, sizeof(out));

	must(rc == 0 || rc == E_AGAIN || rc == E_NOTFOUND || rc == E_LIMIT || rc == E_IO || rc == E_INVAL);
	if (rc != 0) {
		must(out[0] == '\0');
		return;
	}
	check_name(out);
	size_t n = strlen(out);
	/* exactly enough room, and one byte less */
	must(dns_parse_response(data, size, id, qname, small, n + 1) == 0);
	must(strcmp(small, out) == 0);
	must(dns_parse_response(data, size, id, qname, small, n) == E_LIMIT);
	must(small[0] == '\0');
	/* the answer is no answer to another query ID */
	must(dns_parse_response(data, size, (uint16_t)(id ^ 0x8000), qname, small, sizeof(small)) == E_AGAIN);
}

static void fuzz_conf(const uint8_t *data, size_t size)
{
	struct dns_config cfg;

	dns_config_parse((const char *)data, size, &cfg);
	must(cfg.nservers >= 1 && cfg.nservers <= DNS_MAX_SERVERS);
	must(cfg.timeout_ms >= DNS_TIMEOUT_MIN_S * 1000 && cfg.timeout_ms <= DNS_TIMEOUT_MAX_S * 1000);
	must(cfg.attempts >= DNS_ATTEMPTS_MIN && cfg.attempts <= DNS_ATTEMPTS_MAX);
	for (int i = 0; i < cfg.nservers; i++)
		must(cfg.servers[i].ss_family == AF_INET || cfg.servers[i].ss_family == AF_INET6);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char qname[DNS_NAME_BUFSZ];
	uint16_t id = size >= 2 ? (uint16_t)(data[0] << 8 | data[1]) : 0;

	if (question_name(data, size, qname, sizeof(qname)) == 0)
		fuzz_parse(data, size, id, qname);
	fuzz_parse(data, size, id, "www.example.com");
	fuzz_conf(data, size);
	return 0;
}
