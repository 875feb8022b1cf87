/* fuzz-clienthello.c - libFuzzer target for the raw ClientHello SNI
 * reader (lib/clienthello.c).
 *
 * The input is used three ways: as the raw byte stream from a client; as
 * a ClientHello body wrapped in one record; and as that body fragmented
 * over records whose size is taken from the first input byte.  Checks:
 * the result is one of the documented codes; E_AGAIN asks for bytes past
 * the input; a success reports a lower-case name of valid characters and
 * an end within the input; every prefix shorter than a decided input is
 * E_AGAIN or the same decision, and a prefix of `need` bytes is never
 * still waiting for the same amount.  Any broken invariant aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clienthello.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int cond)
{
	if (!cond)
		abort();
}

static void check_one(const uint8_t *p, size_t n)
{
	struct clienthello ch;
	size_t need = 0;
	int r = clienthello_parse(p, n, &ch, &need);
	must(r == 0 || r == E_AGAIN || r == E_INVAL || r == E_LIMIT);
	if (r == E_AGAIN) {
		must(need > n);
		must(!ch.has_sni && ch.sni[0] == '\0');
		return;
	}
	if (r != 0)
		return;
	must(ch.end <= n);
	must(ch.sni_len == strlen(ch.sni));
	must(ch.sni_len <= CLIENTHELLO_NAME_MAX);
	must(ch.has_sni == (ch.sni_len > 0));
	for (size_t i = 0; i < ch.sni_len; i++) {
		char c = ch.sni[i];
		must((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.');
	}
	/* prefixes: still waiting, or the same result (sampled) */
	size_t step = n / 16 + 1;
	for (size_t k = 0; k < n; k += step) {
		struct clienthello pc;
		size_t pneed = 0;
		int pr = clienthello_parse(p, k, &pc, &pneed);
		must(pr == E_AGAIN || pr == 0);
		if (pr == 0) {
			must(strcmp(pc.sni, ch.sni) == 0);
			must(pc.end == ch.end);
		} else {
			must(pneed > k && pneed <= n);
		}
	}
}

static uint8_t wrapped[CLIENTHELLO_MAX_INPUT * 2 + 64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_one(data, size);
	if (size == 0 || size > CLIENTHELLO_MAX_MESSAGE)
		return 0;
	/* the input as a ClientHello body, one record */
	size_t hs = size + 4, p = 0;
	uint8_t head[4] = {1, (uint8_t)(size >> 16), (uint8_t)(size >> 8), (uint8_t)size};
	if (hs <= CLIENTHELLO_MAX_RECORD) {
		wrapped[p++] = 22;
		wrapped[p++] = 3;
		wrapped[p++] = 1;
		wrapped[p++] = (uint8_t)(hs >> 8);
		wrapped[p++] = (uint8_t)hs;
		memcpy(wrapped + p, head, 4);
		memcpy(wrapped + p + 4, data, size);
		check_one(wrapped, p + hs);
	}
	/* fragmented: record size from the first byte */
	size_t frag = (size_t)data[0] % 64 + 1, off = 0;
	uint8_t *msg = malloc(hs);
	if (!msg)
		return 0;
	memcpy(msg, head, 4);
	memcpy(msg + 4, data, size);
	p = 0;
	while (off < hs && p + 5 + frag <= sizeof(wrapped)) {
		size_t k = hs - off < frag ? hs - off : frag;
		wrapped[p++] = 22;
		wrapped[p++] = 3;
		wrapped[p++] = 3;
		wrapped[p++] = (uint8_t)(k >> 8);
		wrapped[p++] = (uint8_t)k;
		memcpy(wrapped + p, msg + off, k);
		p += k;
		off += k;
	}
	free(msg);
	check_one(wrapped, p);
	return 0;
}
