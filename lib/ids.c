#include "ids.h"
#include "base64.h"
#include "compat.h"
#include "err.h"

#include <string.h>

static const char account_alphabet[] = "CDEFHJKMNPRTVWXY2345689";
#define ACCOUNT_ALPHABET_LEN 23

int account_id_generate(char out[ACCOUNT_ID_LEN + 1])
{
	/* Rejection sampling: 230 = 10 * 23 keeps the choice unbiased. */
	size_t n = 0;
	unsigned char rnd[32];
	while (n < ACCOUNT_ID_LEN) {
		if (compat_random(rnd, sizeof(rnd)) != 0)
			return E_IO;
		for (size_t i = 0; i < sizeof(rnd) && n < ACCOUNT_ID_LEN; i++)
			if (rnd[i] < 230)
				out[n++] = account_alphabet[rnd[i] % ACCOUNT_ALPHABET_LEN];
	}
	out[ACCOUNT_ID_LEN] = '\0';
	return 0;
}

int account_id_normalize(const char *in, size_t n, char out[ACCOUNT_ID_LEN + 1])
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		if (c == ' ' || c == '-')
			continue;
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 32);
		if (c == '\0' || !memchr(account_alphabet, c, ACCOUNT_ALPHABET_LEN) || o == ACCOUNT_ID_LEN)
			return E_INVAL;
		out[o++] = c;
	}
	if (o != ACCOUNT_ID_LEN)
		return E_INVAL;
	out[o] = '\0';
	return 0;
}

void account_id_hr(const char *id, char *out, size_t cap)
{
	size_t n = strlen(id), o = 0;
	for (size_t i = 0; i < n && o + 2 < cap; i++) {
		/* A separator goes before each group of 4 counted from the right. */
		if (i > 0 && (n - i) % 4 == 0)
			out[o++] = '-';
		out[o++] = id[i];
	}
	out[o] = '\0';
}

static int is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int tunnel_id_valid(const char *id, size_t n)
{
	/* ^(?:[a-z0-9][a-z0-9-]{4,63}[a-z0-9]|[a-z0-9]{4,63})$ */
	if (n < 4 || n > TUNNEL_ID_MAX)
		return 0;
	int has_dash = 0;
	for (size_t i = 0; i < n; i++) {
		if (id[i] == '-')
			has_dash = 1;
		else if (!is_lower_alnum(id[i]))
			return 0;
	}
	if (!has_dash)
		return n <= 63 || (n >= 6 && n <= 65);
	return n >= 6 && id[0] != '-' && id[n - 1] != '-';
}

int tunnel_token_generate(char out[TUNNEL_TOKEN_LEN + 1])
{
	unsigned char rnd[64];
	if (compat_random(rnd, sizeof(rnd)) != 0)
		return E_IO;
	base64url_encode(rnd, sizeof(rnd), out);
	return 0;
}

void account_api_token(const char *id, char out[ACCOUNT_API_TOKEN_LEN + 1])
{
	base64_encode(id, strlen(id), out);
}

int account_id_from_bearer(const char *hdr, size_t n, char out[ACCOUNT_ID_LEN + 1])
{
	/* Split on a single space and take the second element (§2.1). */
	const char *sp = hdr ? memchr(hdr, ' ', n) : NULL;
	if (!sp)
		return E_AGAIN;
	const char *tok = sp + 1;
	const char *end = memchr(tok, ' ', (size_t)(hdr + n - tok));
	size_t tlen = (size_t)((end ? end : hdr + n) - tok);
	if (tlen == 0)
		return E_AGAIN;
	if (tlen > 256)
		return E_INVAL;
	unsigned char decoded[200];
	size_t dlen = base64_decode_lenient(tok, tlen, decoded);
	if (dlen == 0)
		return E_AGAIN;
	return account_id_normalize((const char *)decoded, dlen, out) == 0 ? 0 : E_INVAL;
}

int random_hex(char *out, size_t nbytes)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[64];
	size_t o = 0;
	while (nbytes > 0) {
		size_t take = nbytes < sizeof(rnd) ? nbytes : sizeof(rnd);
		if (compat_random(rnd, take) != 0)
			return E_IO;
		for (size_t i = 0; i < take; i++) {
			out[o++] = hex[rnd[i] >> 4];
			out[o++] = hex[rnd[i] & 15];
		}
		nbytes -= take;
	}
	out[o] = '\0';
	return 0;
}
