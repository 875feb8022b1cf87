/* t-tls.c - tests of the BearSSL glue: loading certificates and keys
 * (RSA, ECDSA, wildcard in CN or only in SAN, refusals), and handshakes
 * between a server and a client engine in memory (SNI hook, resumption,
 * verification, close_notify, credentials outliving a reload).
 *
 * The certificates come from tests/data/mkcerts.sh (openssl) in a
 * temporary directory. */
#if WITH_TLS
#include "test.h"
#include "err.h"
#include "tls-libcrypto.h"
#include "tls.h"
#include "compat.h"

#include <bearssl.h>

#include <stdint.h>
#include <unistd.h>

static char dir[256];

static const char *path(const char *name)
{
	static char p[4][512];
	static int k;
	k = (k + 1) % 4;
	snprintf(p[k], sizeof(p[k]), "%s/%s", dir, name);
	return p[k];
}

static char *slurp(const char *name, size_t *len)
{
	FILE *f = fopen(path(name), "rb");
	if (!f)
		return NULL;
	char *d = malloc(1 << 20);
	*len = d ? fread(d, 1, 1 << 20, f) : 0;
	fclose(f);
	return d;
}

static int load(const char *cert, const char *key, const char *want, struct tls_creds **out, char *err, size_t cap)
{
	return tls_creds_load(path(cert), path(key), want, out, err, cap);
}

TEST(test_ec_cn_and_san)
{
	struct tls_creds *c = NULL;
	char err[512] = "";
	CHECK_EQ(load("ec.pem", "ec.key", NULL, &c, err, sizeof(err)), 0);
	if (!c) {
		printf("# %s\n", err);
		return;
	}
	const struct tls_cert_info *in = tls_creds_info(c);
	CHECK_STR(in->domain, "example.com");
	CHECK_STR(in->wildcard, "*.example.com");
	CHECK_STR(in->subject_cn, "*.example.com");
	CHECK_EQ(in->key_type, TLS_KEY_EC);
	CHECK_EQ(in->key_bits, 256);
	CHECK_EQ(in->chain_len, 1);
	CHECK(strlen(in->serial) > 0);
	tls_creds_unref(c);
}

TEST(test_ec_traditional_key_and_chain)
{
	struct tls_creds *c = NULL;
	char err[512] = "";
	CHECK_EQ(load("ec-chain.pem", "ec-trad.key", NULL, &c, err, sizeof(err)), 0);
	if (c) {
		CHECK_EQ(tls_creds_info(c)->chain_len, 2);
		CHECK_STR(tls_creds_info(c)->domain, "example.com");
	}
	tls_creds_unref(c);
}

TEST(test_ec384)
{
	struct tls_creds *c = NULL;
	char err[512] = "";
	CHECK_EQ(load("ec384.pem", "ec384.key", NULL, &c, err, sizeof(err)), 0);
	if (c)
		CHECK_EQ(tls_creds_info(c)->key_bits, 384);
	tls_creds_unref(c);
}

TEST(test_rsa_pkcs8_and_pkcs1)
{
	struct tls_creds *c = NULL;
	char err[512] = "";
	CHECK_EQ(load("rsa.pem", "rsa.key", NULL, &c, err, sizeof(err)), 0);
	if (!c)
		printf("# %s\n", err);
	if (c) {
		CHECK_EQ(tls_creds_info(c)->key_type, TLS_KEY_RSA);
		CHECK_EQ(tls_creds_info(c)->key_bits, 2048);
		CHECK_STR(tls_creds_info(c)->domain, "example.com");
	}
	tls_creds_unref(c);
	c = NULL;
	CHECK_EQ(load("rsa.pem", "rsa-trad.key", NULL, &c, err, sizeof(err)), 0);
	tls_creds_unref(c);
}

TEST(test_wildcard_only_in_san)
{
	struct tls_creds *c = NULL;
	char err[512] = "";
	CHECK_EQ(load("san.pem", "san.key", NULL, &c, err, sizeof(err)), 0);
	if (c) {
		CHECK_STR(tls_creds_info(c)->domain, "example.com");
		CHECK_STR(tls_creds_info(c)->subject_cn, "www.example.org");
	}
	tls_creds_unref(c);
	/* --ingress-sni-host picks the second wildcard */
	c = NULL;
	CHECK_EQ(load("san.pem", "san.key", "localhost", &c, err, sizeof(err)), 0);
	if (c)
		CHECK_STR(tls_creds_info(c)->domain, "localhost");
	tls_creds_unref(c);
	c = NULL;
	CHECK_EQ(load("san.pem", "san.key", "other.net", &c, err, sizeof(err)), E_INVAL);
	CHECK(c == NULL);
	CHECK(strstr(err, "no wildcard subject *.other.net") != NULL);
}

TEST(test_wildcard_in_cn_only_and_cn_first)
{
	struct tls_creds *c = NULL;
	char err[512] = "";
	CHECK_EQ(load("cn.pem", "cn.key", NULL, &c, err, sizeof(err)), 0);
	if (c)
		CHECK_STR(tls_creds_info(c)->domain, "cn.test");
	tls_creds_unref(c);
	c = NULL;
	/* CN comes before the SANs, whatever the attribute order */
	CHECK_EQ(load("cnsan.pem", "cnsan.key", NULL, &c, err, sizeof(err)), 0);
	if (c)
		CHECK_STR(tls_creds_info(c)->domain, "cn.test");
	tls_creds_unref(c);
	c = NULL;
	CHECK_EQ(load("cnsan.pem", "cnsan.key", "san.test", &c, err, sizeof(err)), 0);
	if (c)
		CHECK_STR(tls_creds_info(c)->domain, "san.test");
	tls_creds_unref(c);
}

TEST(test_non_wildcard_refused)
{
	struct tls_creds *c = NULL;
	char err[512] = "";
	CHECK_EQ(load("nowild.pem", "nowild.key", NULL, &c, err, sizeof(err)), E_INVAL);
	CHECK(c == NULL);
	CHECK(strstr(err, "no wildcard subjects") != NULL);
}

TEST(test_key_mismatch_refused)
{
	struct tls_creds *c = NULL;
	char err[512] = "";
	CHECK_EQ(load("ec.pem", "rot.key", NULL, &c, err, sizeof(err)), E_INVAL);
	CHECK(strstr(err, "does not match") != NULL);
	CHECK_EQ(load("rsa.pem", "rsarot.key", NULL, &c, err, sizeof(err)), E_INVAL);
	CHECK(strstr(err, "does not match") != NULL);
	CHECK_EQ(load("rsa.pem", "ec.key", NULL, &c, err, sizeof(err)), E_INVAL);
	CHECK_EQ(load("ec.pem", "rsa.key", NULL, &c, err, sizeof(err)), E_INVAL);
	CHECK_EQ(load("ec.pem", "ec384.key", NULL, &c, err, sizeof(err)), E_INVAL);
	CHECK(c == NULL);
}

TEST(test_bad_files)
{
	struct tls_creds *c = NULL;
	char err[512] = "";
	CHECK_EQ(load("missing.pem", "ec.key", NULL, &c, err, sizeof(err)), E_IO);
	CHECK(strstr(err, "missing.pem") != NULL);
	CHECK_EQ(load("ec.pem", "missing.key", NULL, &c, err, sizeof(err)), E_IO);
	/* a key file where the certificate should be, and the reverse */
	CHECK_EQ(load("ec.key", "ec.key", NULL, &c, err, sizeof(err)), E_INVAL);
	CHECK(strstr(err, "no certificate") != NULL);
	CHECK_EQ(load("ec.pem", "ec.pem", NULL, &c, err, sizeof(err)), E_INVAL);
	CHECK(strstr(err, "no private key") != NULL);
	CHECK_EQ(tls_creds_load(dir, path("ec.key"), NULL, &c, err, sizeof(err)), E_IO);

	/* half-written files: every cut of the PEM text fails cleanly */
	size_t clen = 0, klen = 0;
	char *cert = slurp("ec.pem", &clen), *key = slurp("ec.key", &klen);
	CHECK(cert && key && clen > 100 && klen > 100);
	if (cert && key) {
		int fails = 0;
		for (size_t cut = 0; cut + 1 < clen; cut += 7) {
			int r = tls_creds_load_mem(cert, cut, key, klen, NULL, &c, err, sizeof(err));
			if (r == 0) {
				tls_creds_unref(c);
				c = NULL;
			} else {
				fails++;
			}
		}
		/* Only cuts inside the trailing newline may still load. */
		CHECK(fails >= (int)((clen - 40) / 7));
		for (size_t cut = 0; cut + 1 < klen; cut += 5) {
			int r = tls_creds_load_mem(cert, clen, key, cut, NULL, &c, err, sizeof(err));
			CHECK(r != 0 || cut >= klen - 30);
			if (r == 0) {
				tls_creds_unref(c);
				c = NULL;
			}
		}
		CHECK_EQ(tls_creds_load_mem(cert, clen, key, klen, NULL, &c, err, sizeof(err)), 0);
		tls_creds_unref(c);
		c = NULL;
		/* garbage and an encrypted key */
		CHECK(tls_creds_load_mem("hello", 5, key, klen, NULL, &c, err, sizeof(err)) != 0);
		const char *enc = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
		CHECK_EQ(tls_creds_load_mem(cert, clen, enc, strlen(enc), NULL, &c, err, sizeof(err)), E_INVAL);
		CHECK(strstr(err, "encrypted") != NULL);
	}
	free(cert);
	free(key);
}

TEST(test_serial_matches_openssl)
{
	char cmd[1024], line[256] = "";
	snprintf(cmd, sizeof(cmd), "openssl x509 -in %s -noout -serial", path("rsa.pem"));
	FILE *p = popen(cmd, "r");
	CHECK(p != NULL);
	if (!p)
		return;
	if (!fgets(line, sizeof(line), p))
		line[0] = '\0';
	pclose(p);
	char *s = strchr(line, '=');
	CHECK(s != NULL);
	if (!s)
		return;
	s++;
	s[strcspn(s, "\r\n")] = '\0';
	for (char *q = s; *q; q++)
		if (*q >= 'A' && *q <= 'F')
			*q = (char)(*q + 32);
	struct tls_creds *c = NULL;
	char err[256];
	CHECK_EQ(load("rsa.pem", "rsa.key", NULL, &c, err, sizeof(err)), 0);
	if (c)
		CHECK_STR(tls_creds_info(c)->serial, s);
	tls_creds_unref(c);
}

/* ---- engines in memory ---- */

static int move(struct tls_conn *from, struct tls_conn *to)
{
	size_t len;
	uint8_t *p = tls_sendrec_buf(from, &len);
	if (!p || len == 0)
		return 0;
	size_t k = tls_feed(to, p, len);
	if (k)
		tls_sendrec_ack(from, k);
	return k > 0;
}

static void pump(struct tls_conn *a, struct tls_conn *b)
{
	for (int i = 0; i < 10000; i++)
		if (!move(a, b) && !move(b, a))
			return;
}

static size_t send_app(struct tls_conn *c, const char *p, size_t n)
{
	size_t len;
	uint8_t *buf = tls_sendapp_buf(c, &len);
	if (!buf)
		return 0;
	if (len > n)
		len = n;
	memcpy(buf, p, len);
	tls_sendapp_ack(c, len);
	tls_flush(c);
	return len;
}

static size_t recv_app(struct tls_conn *c, char *out, size_t cap)
{
	size_t len;
	uint8_t *buf = tls_recvapp_buf(c, &len);
	if (!buf)
		return 0;
	if (len > cap)
		len = cap;
	memcpy(out, buf, len);
	tls_recvapp_ack(c, len);
	return len;
}

struct sni_seen {
	char name[256];
	int calls;
	int accept;
};

static int sni_hook(void *arg, const char *name)
{
	struct sni_seen *s = arg;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->calls++;
	return s->accept;
}

static struct tls_client_config *ca_config(const char *ca)
{
	struct tls_client_config *cfg = NULL;
	char err[512];
	if (tls_client_config_new(path(ca), 0, &cfg, err, sizeof(err)) != 0)
		printf("# %s\n", err);
	return cfg;
}

/* A full handshake, data both ways, close_notify both ways. */
static void roundtrip(const char *cert, const char *key)
{
	struct tls_creds *cr = NULL;
	char err[512];
	CHECK_EQ(load(cert, key, NULL, &cr, err, sizeof(err)), 0);
	struct tls_client_config *cfg = ca_config("ca.pem");
	CHECK(cr && cfg);
	if (!cr || !cfg) {
		tls_creds_unref(cr);
		tls_client_config_unref(cfg);
		return;
	}
	struct sni_seen seen = {"", 0, 1};
	struct tls_conn *s = tls_server_new(cr, sni_hook, &seen), *c = NULL;
	tls_creds_unref(cr); /* the connection keeps its own reference */
	CHECK_EQ(tls_client_new(cfg, "tun1.example.com", NULL, &c), 0);
	CHECK(s && c);
	if (!s || !c)
		goto out;
	CHECK(!tls_handshake_done(s));
	pump(c, s);
	CHECK(tls_handshake_done(s));
	CHECK(tls_handshake_done(c));
	CHECK_EQ(seen.calls, 1);
	CHECK_STR(seen.name, "tun1.example.com");
	CHECK_STR(tls_server_name(s), "tun1.example.com");

	char big[40000], got[40000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + 3);
	size_t sent = 0, recvd = 0;
	while (recvd < sizeof(big)) {
		if (sent < sizeof(big))
			sent += send_app(c, big + sent, sizeof(big) - sent);
		pump(c, s);
		size_t k = recv_app(s, got + recvd, sizeof(got) - recvd);
		pump(c, s);
		if (k == 0 && sent == sizeof(big))
			break;
		recvd += k;
	}
	CHECK_EQ(recvd, sizeof(big));
	CHECK_MEM(got, big, sizeof(big));
	CHECK_EQ(send_app(s, "pong", 4), 4);
	pump(c, s);
	char pong[8];
	CHECK_EQ(recv_app(c, pong, sizeof(pong)), 4);
	CHECK_MEM(pong, "pong", 4);

	/* The client closes: the server answers close_notify, both end clean. */
	tls_close(c);
	pump(c, s);
	CHECK(tls_state(s) & TLS_CLOSED);
	CHECK(tls_state(c) & TLS_CLOSED);
	CHECK_EQ(tls_error(s), 0);
	CHECK_EQ(tls_error(c), 0);
out:
	tls_conn_free(s);
	tls_conn_free(c);
	tls_client_config_unref(cfg);
}

TEST(test_handshake_ec) { roundtrip("ec.pem", "ec.key"); }
TEST(test_handshake_rsa) { roundtrip("rsa.pem", "rsa.key"); }
TEST(test_handshake_ec_chain) { roundtrip("ec-chain.pem", "ec.key"); }

TEST(test_sni_hook_aborts)
{
	struct tls_creds *cr = NULL;
	char err[512];
	CHECK_EQ(load("ec.pem", "ec.key", NULL, &cr, err, sizeof(err)), 0);
	struct tls_client_config *cfg = ca_config("ca.pem");
	if (!cr || !cfg)
		return;
	struct sni_seen seen = {"", 0, 0};
	struct tls_conn *s = tls_server_new(cr, sni_hook, &seen), *c = NULL;
	CHECK_EQ(tls_client_new(cfg, "nope.example.com", NULL, &c), 0);
	pump(c, s);
	CHECK_EQ(seen.calls, 1);
	CHECK(tls_state(s) & TLS_CLOSED);
	CHECK(tls_state(c) & TLS_CLOSED);
	CHECK_EQ(tls_error(s), BR_ERR_SEND_FATAL_ALERT + 40);
	CHECK_EQ(tls_error(c), BR_ERR_RECV_FATAL_ALERT + 40);
	tls_conn_free(s);
	tls_conn_free(c);
	tls_client_config_unref(cfg);
	tls_creds_unref(cr);
}

TEST(test_session_resumption)
{
	struct tls_creds *cr = NULL;
	char err[512];
	CHECK_EQ(load("ec.pem", "ec.key", NULL, &cr, err, sizeof(err)), 0);
	struct tls_client_config *cfg = ca_config("ca.pem");
	if (!cr || !cfg)
		return;
	struct sni_seen seen = {"", 0, 1};
	struct tls_conn *s = tls_server_new(cr, sni_hook, &seen), *c = NULL;
	CHECK_EQ(tls_client_new(cfg, "a.example.com", NULL, &c), 0);
	pump(c, s);
	CHECK(tls_handshake_done(s));
	size_t idlen;
	uint8_t id1[32];
	const uint8_t *id = tls_session_id(s, &idlen);
	CHECK_EQ(idlen, 32);
	memcpy(id1, id, 32);
	struct tls_session sess;
	tls_session_save(c, &sess);
	tls_conn_free(s);
	tls_conn_free(c);

	/* A new client that offers the saved session resumes it; the policy
	 * (and so the SNI hook) is skipped by BearSSL. */
	s = tls_server_new(cr, sni_hook, &seen);
	CHECK_EQ(tls_client_new(cfg, "b.example.com", &sess, &c), 0);
	pump(c, s);
	CHECK(tls_handshake_done(s));
	id = tls_session_id(s, &idlen);
	CHECK_EQ(idlen, 32);
	CHECK_MEM(id, id1, 32);
	CHECK_EQ(seen.calls, 1);
	CHECK_STR(tls_server_name(s), "b.example.com");
	tls_conn_free(s);
	tls_conn_free(c);

	/* Credentials loaded anew have their own cache: a full handshake. */
	struct tls_creds *cr2 = NULL;
	CHECK_EQ(load("ec.pem", "ec.key", NULL, &cr2, err, sizeof(err)), 0);
	if (cr2) {
		s = tls_server_new(cr2, sni_hook, &seen);
		CHECK_EQ(tls_client_new(cfg, "c.example.com", &sess, &c), 0);
		pump(c, s);
		CHECK(tls_handshake_done(s));
		id = tls_session_id(s, &idlen);
		CHECK(memcmp(id, id1, 32) != 0);
		CHECK_EQ(seen.calls, 2);
		tls_conn_free(s);
		tls_conn_free(c);
		tls_creds_unref(cr2);
	}
	tls_client_config_unref(cfg);
	tls_creds_unref(cr);
}

TEST(test_client_verification)
{
	struct tls_creds *cr = NULL;
	char err[512];
	CHECK_EQ(load("ec.pem", "ec.key", NULL, &cr, err, sizeof(err)), 0);
	if (!cr)
		return;
	/* wrong trust anchor: the server's own leaf is not its CA */
	struct tls_client_config *wrong = ca_config("rot.pem");
	struct tls_client_config *good = ca_config("ca.pem");
	struct tls_client_config *insecure = NULL;
	CHECK_EQ(tls_client_config_new(NULL, 1, &insecure, err, sizeof(err)), 0);
	CHECK(wrong && good && insecure);
	if (!wrong || !good || !insecure)
		goto out;
	struct tls_conn *s, *c;

	s = tls_server_new(cr, NULL, NULL);
	CHECK_EQ(tls_client_new(wrong, "x.example.com", NULL, &c), 0);
	pump(c, s);
	CHECK(tls_state(c) & TLS_CLOSED);
	CHECK_EQ(tls_error(c), BR_ERR_X509_NOT_TRUSTED);
	tls_conn_free(s);
	tls_conn_free(c);

	s = tls_server_new(cr, NULL, NULL);
	CHECK_EQ(tls_client_new(good, "x.other.net", NULL, &c), 0);
	pump(c, s);
	CHECK_EQ(tls_error(c), BR_ERR_X509_BAD_SERVER_NAME);
	tls_conn_free(s);
	tls_conn_free(c);

	s = tls_server_new(cr, NULL, NULL);
	CHECK_EQ(tls_client_new(insecure, "x.other.net", NULL, &c), 0);
	pump(c, s);
	CHECK(tls_handshake_done(c));
	CHECK_EQ(tls_error(c), 0);
	tls_conn_free(s);
	tls_conn_free(c);

	s = tls_server_new(cr, NULL, NULL);
	CHECK_EQ(tls_client_new(insecure, "127.0.0.1", NULL, &c), 0);
	pump(c, s);
	CHECK(tls_handshake_done(c));
	CHECK_STR(tls_server_name(s), "");
	tls_conn_free(s);
	tls_conn_free(c);

	c = NULL;
	CHECK_EQ(tls_client_new(good, "127.0.0.1", NULL, &c), E_INVAL);
	CHECK_EQ(tls_client_new(good, "::1", NULL, &c), E_INVAL);
	CHECK(c == NULL);

	/* the system bundle loads */
	struct tls_client_config *sys = NULL;
	if (access(TLS_CA_BUNDLE_DEFAULT, R_OK) == 0) {
		CHECK_EQ(tls_client_config_new(NULL, 0, &sys, err, sizeof(err)), 0);
		tls_client_config_unref(sys);
	}
	CHECK_EQ(tls_client_config_new(path("missing.pem"), 0, &sys, err, sizeof(err)), E_IO);
	CHECK_EQ(tls_client_config_new(path("ec.key"), 0, &sys, err, sizeof(err)), E_INVAL);
out:
	tls_client_config_unref(wrong);
	tls_client_config_unref(good);
	tls_client_config_unref(insecure);
	tls_creds_unref(cr);
}

static unsigned char *der_of(const char *pem, size_t *len)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "openssl x509 -in '%s' -outform DER -out '%s.der'", path(pem), path(pem));
	if (system(cmd) != 0)
		return NULL;
	snprintf(cmd, sizeof(cmd), "%s.der", pem);
	return (unsigned char *)slurp(cmd, len);
}

TEST(test_wildcard_function)
{
	size_t len = 0;
	unsigned char *der = der_of("san.pem", &len);
	CHECK(der != NULL && len > 100);
	if (!der)
		return;
	char d[256];
	CHECK_EQ(tls_cert_wildcard(der, len, NULL, d, sizeof(d)), 0);
	CHECK_STR(d, "example.com");
	CHECK_EQ(tls_cert_wildcard(der, len, "localhost", d, sizeof(d)), 0);
	CHECK_STR(d, "localhost");
	CHECK_EQ(tls_cert_wildcard(der, len, "example.org", d, sizeof(d)), E_NOTFOUND);
	CHECK_EQ(tls_cert_wildcard(der, len / 2, NULL, d, sizeof(d)), E_INVAL);
	free(der);
	der = der_of("nowild.pem", &len);
	CHECK(der != NULL);
	if (der)
		CHECK_EQ(tls_cert_wildcard(der, len, NULL, d, sizeof(d)), E_NOTFOUND);
	free(der);
}

#if WITH_TLS_LIBCRYPTO
/* libcrypto's X25519 against BearSSL's own: both directions of a
 * Diffie-Hellman agree, whatever byte order each gives its scalars. */
TEST(test_libcrypto_x25519)
{
	const br_ec_impl *lc = tls_lc_ec(), *br = &br_ec_c25519_m31;
	CHECK(lc->supported_curves & ((uint32_t)1 << BR_EC_curve25519));
	for (int i = 0; i < 20; i++) {
		unsigned char a[32], b[32], A[32], B[32], s1[32], s2[32];
		CHECK_EQ(compat_random(a, 32), 0);
		CHECK_EQ(compat_random(b, 32), 0);
		a[0] &= 0x7f;
		b[0] &= 0x7f;
		CHECK_EQ(lc->mulgen(A, a, 32, BR_EC_curve25519), 32);
		CHECK_EQ(br->mulgen(B, b, 32, BR_EC_curve25519), 32);
		memcpy(s1, B, 32);
		memcpy(s2, A, 32);
		CHECK_EQ(lc->mul(s1, 32, a, 32, BR_EC_curve25519), 1);
		CHECK_EQ(br->mul(s2, 32, b, 32, BR_EC_curve25519), 1);
		CHECK_MEM(s1, s2, 32);
		/* the same scalar again, without the kept key */
		memcpy(s1, B, 32);
		CHECK_EQ(lc->mul(s1, 32, a, 32, BR_EC_curve25519), 1);
		CHECK_MEM(s1, s2, 32);
	}
	/* an all-zero (small-order) point is refused */
	unsigned char a[32], z[32];
	memset(a, 0x33, 32);
	memset(z, 0, 32);
	CHECK_EQ(lc->mul(z, 32, a, 32, BR_EC_curve25519), 0);
	/* other curves go to BearSSL */
	size_t glen;
	const unsigned char *g = lc->generator(BR_EC_secp256r1, &glen);
	unsigned char R1[65], R2[65];
	memset(a, 0x11, 32);
	CHECK_EQ(lc->mulgen(R1, a, 32, BR_EC_secp256r1), 65);
	memcpy(R2, g, glen);
	CHECK_EQ(lc->mul(R2, glen, a, 32, BR_EC_secp256r1), 1);
	CHECK_MEM(R1, R2, 65);
}
#endif

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/exposrd-t-tls.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		printf("not ok - mkdtemp\n");
		return 1;
	}
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "sh tests/data/mkcerts.sh '%s' >/dev/null 2>&1", dir);
	if (system(cmd) != 0) {
		printf("not ok - tests/data/mkcerts.sh (openssl) failed\n");
		return 1;
	}
	RUN(test_ec_cn_and_san);
	RUN(test_ec_traditional_key_and_chain);
	RUN(test_ec384);
	RUN(test_rsa_pkcs8_and_pkcs1);
	RUN(test_wildcard_only_in_san);
	RUN(test_wildcard_in_cn_only_and_cn_first);
	RUN(test_non_wildcard_refused);
	RUN(test_key_mismatch_refused);
	RUN(test_bad_files);
	RUN(test_serial_matches_openssl);
	RUN(test_handshake_ec);
	RUN(test_handshake_rsa);
	RUN(test_handshake_ec_chain);
	RUN(test_sni_hook_aborts);
	RUN(test_session_resumption);
	RUN(test_client_verification);
	RUN(test_wildcard_function);
#if WITH_TLS_LIBCRYPTO
	RUN(test_libcrypto_x25519);
#endif
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	return test_done();
}

#else /* !WITH_TLS */

#include <stdio.h>

int main(void)
{
	printf("# t-tls: built without TLS (WITH_TLS=0), nothing to test\n");
	return 0;
}

#endif
