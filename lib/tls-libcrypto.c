/* tls-libcrypto.c - libcrypto arithmetic under BearSSL (see
 * tls-libcrypto.h).  Compiled to nothing without WITH_TLS_LIBCRYPTO. */
#include "tls-libcrypto.h"

#if WITH_TLS_LIBCRYPTO
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <stdlib.h>
#include <string.h>

#define X25519_LEN 32
#define X25519_KEEP 64  /* ephemeral keys kept between mulgen and mul */

/* libcrypto computes the public key whenever a private key is made; the
 * engine's mul() comes after mulgen() with the same scalar, so the key
 * made for mulgen() is kept (bounded, oldest replaced) and reused. */
static struct {
	unsigned char x[X25519_LEN];
	EVP_PKEY *pk;
} kept[X25519_KEEP];
static unsigned kept_next;

static EVP_PKEY *x25519_priv(const unsigned char *x, size_t xlen)
{
	if (xlen != X25519_LEN)
		return NULL;
	for (unsigned i = 0; i < X25519_KEEP; i++) {
		if (kept[i].pk && CRYPTO_memcmp(kept[i].x, x, X25519_LEN) == 0) {
			EVP_PKEY *pk = kept[i].pk;
			kept[i].pk = NULL;
			OPENSSL_cleanse(kept[i].x, X25519_LEN);
			return pk;
		}
	}
	return EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, x, xlen);
}

static void x25519_keep(const unsigned char *x, EVP_PKEY *pk)
{
	unsigned i = kept_next++ % X25519_KEEP;
	EVP_PKEY_free(kept[i].pk);
	memcpy(kept[i].x, x, X25519_LEN);
	kept[i].pk = pk;
}

static const unsigned char *lc_generator(int curve, size_t *len)
{
	return br_ec_all_m31.generator(curve, len);
}

static const unsigned char *lc_order(int curve, size_t *len)
{
	return br_ec_all_m31.order(curve, len);
}

static size_t lc_xoff(int curve, size_t *len)
{
	return br_ec_all_m31.xoff(curve, len);
}

static uint32_t lc_mul(unsigned char *G, size_t Glen, const unsigned char *x, size_t xlen, int curve)
{
	if (curve != BR_EC_curve25519)
		return br_ec_all_m31.mul(G, Glen, x, xlen, curve);
	if (Glen != X25519_LEN)
		return 0;
	EVP_PKEY *priv = x25519_priv(x, xlen);
	EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, G, Glen);
	EVP_PKEY_CTX *ctx = priv ? EVP_PKEY_CTX_new(priv, NULL) : NULL;
	unsigned char out[X25519_LEN];
	size_t olen = sizeof(out);
	/* derive fails on an all-zero result (a small-order peer point). */
	int ok = ctx && peer && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
		 EVP_PKEY_derive(ctx, out, &olen) == 1 && olen == X25519_LEN;
	if (ok)
		memcpy(G, out, X25519_LEN);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(peer);
	EVP_PKEY_free(priv);
	OPENSSL_cleanse(out, sizeof(out));
	return ok ? 1 : 0;
}

static size_t lc_mulgen(unsigned char *R, const unsigned char *x, size_t xlen, int curve)
{
	if (curve != BR_EC_curve25519)
		return br_ec_all_m31.mulgen(R, x, xlen, curve);
	EVP_PKEY *priv = x25519_priv(x, xlen);
	size_t len = X25519_LEN;
	int ok = priv && EVP_PKEY_get_raw_public_key(priv, R, &len) == 1 && len == X25519_LEN;
	if (ok)
		x25519_keep(x, priv);
	else
		EVP_PKEY_free(priv);
	return ok ? X25519_LEN : 0;
}

static uint32_t lc_muladd(unsigned char *A, const unsigned char *B, size_t len, const unsigned char *x, size_t xlen,
			  const unsigned char *y, size_t ylen, int curve)
{
	return br_ec_all_m31.muladd(A, B, len, x, xlen, y, ylen, curve);
}

static const br_ec_impl lc_ec = {
	0, lc_generator, lc_order, lc_xoff, lc_mul, lc_mulgen, lc_muladd,
};

static br_ec_impl lc_ec_ready;

const br_ec_impl *tls_lc_ec(void)
{
	if (!lc_ec_ready.supported_curves) {
		lc_ec_ready = lc_ec;
		lc_ec_ready.supported_curves = br_ec_all_m31.supported_curves;
	}
	return &lc_ec_ready;
}

struct tls_lc_key {
	EVP_PKEY *pkey;
	int rsa;
};

struct tls_lc_key *tls_lc_key_new(const char *pem, size_t len)
{
	if (len > (size_t)0x7fffffff)
		return NULL;
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return NULL;
	EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!pkey)
		return NULL;
	int id = EVP_PKEY_get_base_id(pkey);
	struct tls_lc_key *k = calloc(1, sizeof(*k));
	if (!k || (id != EVP_PKEY_RSA && id != EVP_PKEY_EC)) {
		EVP_PKEY_free(pkey);
		free(k);
		return NULL;
	}
	k->pkey = pkey;
	k->rsa = id == EVP_PKEY_RSA;
	return k;
}

void tls_lc_key_free(struct tls_lc_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

static const EVP_MD *md_of(int hash_id)
{
	switch (hash_id) {
	case br_sha1_ID: return EVP_sha1();
	case br_sha224_ID: return EVP_sha224();
	case br_sha256_ID: return EVP_sha256();
	case br_sha384_ID: return EVP_sha384();
	case br_sha512_ID: return EVP_sha512();
	default: return NULL;
	}
}

size_t tls_lc_sign(struct tls_lc_key *k, int hash_id, const unsigned char *hv, size_t hv_len, unsigned char *out,
		   size_t cap)
{
	const EVP_MD *md = md_of(hash_id);
	if (!md || (size_t)EVP_MD_get_size(md) != hv_len)
		return 0;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(k->pkey, NULL);
	size_t siglen = 0;
	int ok = ctx && EVP_PKEY_sign_init(ctx) == 1 && EVP_PKEY_CTX_set_signature_md(ctx, md) == 1 &&
		 (!k->rsa || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1) &&
		 EVP_PKEY_sign(ctx, NULL, &siglen, hv, hv_len) == 1 && siglen <= cap &&
		 EVP_PKEY_sign(ctx, out, &siglen, hv, hv_len) == 1;
	EVP_PKEY_CTX_free(ctx);
	return ok ? siglen : 0;
}

#else
typedef int tls_libcrypto_not_built; /* ISO C wants a declaration */
#endif
