/* fuzz-der.c - libFuzzer target for the X.509 name and serial reader
 * (lib/der.c).
 *
 * The input is a DER certificate.  Checks: the result is a documented
 * code; every reported name lies inside the input; the serial is hex of
 * even length and fits the stated capacity; the result does not depend
 * on the capacity beyond E_LIMIT.  Any broken invariant aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "der.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int cond)
{
	if (!cond)
		abort();
}

struct span {
	const uint8_t *p;
	size_t n;
	int names;
	int dns_seen;
};

static void on_name(void *arg, enum der_name_kind kind, const char *name, size_t len)
{
	struct span *s = arg;
	must(kind == DER_NAME_CN || kind == DER_NAME_DNS);
	must((const uint8_t *)name >= s->p && (const uint8_t *)name + len <= s->p + s->n);
	/* every CN comes before every SAN name */
	if (kind == DER_NAME_DNS)
		s->dns_seen = 1;
	else
		must(!s->dns_seen);
	s->names++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct span s = {data, size, 0, 0};
	int r = der_cert_names(data, size, on_name, &s);
	must(r == 0 || r == E_INVAL || r == E_LIMIT);
	char big[2 * DER_SERIAL_MAX + 3 + 200], small[8];
	int a = der_cert_serial(data, size, big, sizeof(big));
	must(a == 0 || a == E_INVAL || a == E_LIMIT);
	if (a == 0) {
		size_t n = strlen(big);
		must(n >= 2 && n % 2 == 0);
		for (size_t i = 0; i < n; i++)
			must((big[i] >= '0' && big[i] <= '9') || (big[i] >= 'a' && big[i] <= 'f'));
		int b = der_cert_serial(data, size, small, sizeof(small));
		must(b == 0 || b == E_LIMIT);
		if (b == 0)
			must(strcmp(small, big) == 0);
		else
			must(n + 1 > sizeof(small));
	}
	return 0;
}
