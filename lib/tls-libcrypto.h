/* tls-libcrypto.h - libcrypto (OpenSSL) arithmetic under BearSSL's TLS
 * engine (WITH_TLS_LIBCRYPTO=1).
 *
 * BearSSL keeps the protocol, the record layer, the symmetric ciphers and
 * all parsing; libcrypto only does the public-key operations a server
 * repeats per handshake, through BearSSL's own plug points: an EC
 * implementation (br_ec_impl) whose X25519 is libcrypto's, and the
 * signature of the ServerKeyExchange (the policy's do_sign).  BearSSL
 * 0.6's portable EC and RSA code is several times slower than OpenSSL's
 * assembly (tests/bench/sni.sh).  Everything else falls back to BearSSL.
 */
#ifndef EXPOSRD_TLS_LIBCRYPTO_H
#define EXPOSRD_TLS_LIBCRYPTO_H

#if WITH_TLS_LIBCRYPTO
#include <bearssl.h>
#include <stddef.h>

/* X25519 through libcrypto; every other curve and muladd through
 * BearSSL's br_ec_all_m31.  Scalars follow the br_ec_impl contract. */
const br_ec_impl *tls_lc_ec(void);

struct tls_lc_key;
/* The PEM private key text parsed by libcrypto; NULL when it cannot. */
struct tls_lc_key *tls_lc_key_new(const char *pem, size_t len);
void tls_lc_key_free(struct tls_lc_key *k); /* NULL ok */
/* Sign the hash hv (hv_len bytes, BearSSL hash id hash_id 2..6): ECDSA
 * in ASN.1 form or RSA PKCS#1 v1.5, after the key.  Writes at most cap
 * bytes to out.  Returns the signature length, 0 on failure. */
size_t tls_lc_sign(struct tls_lc_key *k, int hash_id, const unsigned char *hv, size_t hv_len, unsigned char *out,
		   size_t cap);
#endif

#endif
