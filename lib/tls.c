/* tls.c - BearSSL glue (see tls.h). */
#include "tls.h"
#include "buf.h"
#include "compat.h"
#include "der.h"
#include "err.h"
#include "tls-libcrypto.h"

#include <bearssl.h>

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ---- */

/* The EC code of ECDHE: libcrypto's X25519 when built with it. */
static const br_ec_impl *ecdhe_impl(void)
{
#if WITH_TLS_LIBCRYPTO
	return tls_lc_ec();
#else
	return br_ec_get_default();
#endif
}

/* memset through a volatile pointer: not optimised away, still fast. */
static void *(*const volatile wipe_memset)(void *, int, size_t) = memset;

static void wipe(void *p, size_t n)
{
	(void)wipe_memset(p, 0, n);
}

static void seterr(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;
	if (!err || cap == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
}

/* Read a whole regular file of at most max bytes. */
static int read_file(const char *path, size_t max, char **data, size_t *len, char *err, size_t cap)
{
	*data = NULL;
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		seterr(err, cap, "cannot read %s: %s", path, strerror(errno));
		return E_IO;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		seterr(err, cap, "cannot read %s: %s", path, "not a regular file");
		close(fd);
		return E_IO;
	}
	if ((unsigned long long)st.st_size > max) {
		seterr(err, cap, "%s is too large", path);
		close(fd);
		return E_LIMIT;
	}
	/* Room for one byte more than the size, to notice a file that grows
	 * while it is read (a writer is busy with it). */
	size_t room = (size_t)st.st_size + 1;
	char *p = malloc(room);
	if (!p) {
		close(fd);
		seterr(err, cap, "out of memory reading %s", path);
		return E_NOMEM;
	}
	size_t got = 0;
	for (;;) {
		if (got == room) {
			free(p);
			close(fd);
			seterr(err, cap, "%s changed while being read", path);
			return E_INVAL;
		}
		ssize_t r = read(fd, p + got, room - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			seterr(err, cap, "cannot read %s: %s", path, strerror(errno));
			free(p);
			close(fd);
			return E_IO;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	*data = p;
	*len = got;
	return 0;
}

/* ---- PEM ---- */

typedef int (*pem_obj_cb)(void *arg, const char *name, const uint8_t *der, size_t len);

struct pem_acc {
	struct buf b;
	int overflow;
};

static void pem_append(void *arg, const void *p, size_t n)
{
	struct pem_acc *a = arg;
	if (buf_append(&a->b, p, n) != 0)
		a->overflow = 1;
}

/* Decode every PEM object of src, in order; cb returning non-zero stops
 * with that code.  A decoded object is never larger than the text. */
static int pem_each(const char *src, size_t len, pem_obj_cb cb, void *arg, const char *what, char *err, size_t cap)
{
	br_pem_decoder_context pc;
	struct pem_acc acc;
	char name[128] = "";
	int inobj = 0, rc = 0;
	br_pem_decoder_init(&pc);
	buf_init(&acc.b, len + 1);
	acc.overflow = 0;
	size_t off = 0;
	int final = 0;
	for (;;) {
		if (off == len && !final) {
			/* The decoder needs an end of line after the last END line. */
			final = 1;
			src = "\n";
			len = 1;
			off = 0;
		}
		if (off == len)
			break;
		size_t k = br_pem_decoder_push(&pc, src + off, len - off);
		off += k;
		int ev = br_pem_decoder_event(&pc);
		if (ev == BR_PEM_BEGIN_OBJ) {
			snprintf(name, sizeof(name), "%s", br_pem_decoder_name(&pc));
			buf_free(&acc.b);
			acc.overflow = 0;
			br_pem_decoder_setdest(&pc, pem_append, &acc);
			inobj = 1;
		} else if (ev == BR_PEM_END_OBJ) {
			if (inobj) {
				if (acc.overflow) {
					rc = E_LIMIT;
					seterr(err, cap, "%s: PEM object too large", what);
					break;
				}
				rc = cb(arg, name, (const uint8_t *)buf_data(&acc.b), buf_len(&acc.b));
				wipe(buf_data(&acc.b), buf_len(&acc.b));
				if (rc != 0)
					break;
			}
			inobj = 0;
		} else if (ev == BR_PEM_ERROR) {
			rc = E_INVAL;
			seterr(err, cap, "%s: malformed PEM", what);
			break;
		} else if (k == 0) {
			rc = E_INVAL; /* no progress: cannot happen with BearSSL's decoder */
			seterr(err, cap, "%s: malformed PEM", what);
			break;
		}
	}
	if (rc == 0 && inobj) {
		rc = E_INVAL;
		seterr(err, cap, "%s: unterminated PEM object (file incomplete?)", what);
	}
	if (acc.b.data)
		wipe(acc.b.data, acc.b.cap);
	buf_free(&acc.b);
	return rc;
}

/* ---- server credentials ---- */

struct tls_creds {
	int refs;
	br_x509_certificate chain[TLS_MAX_CHAIN];
	size_t chain_len;
	enum tls_key_type key_type;
	br_rsa_private_key rsa;
	br_ec_private_key ec;
	unsigned char *keymem;
	size_t keymem_len;
	unsigned issuer_key_type;
	br_ssl_session_cache_lru cache;
	unsigned char *cache_store;
	struct tls_cert_info info;
#if WITH_TLS_LIBCRYPTO
	struct tls_lc_key *lc;      /* the same key for libcrypto's signatures, or NULL */
#endif
};

struct load_ctx {
	struct tls_creds *cr;
	const char *what;
	char *err;
	size_t cap;
	int nkeys;
};

static int cert_obj(void *arg, const char *name, const uint8_t *der, size_t len)
{
	struct load_ctx *lc = arg;
	struct tls_creds *cr = lc->cr;
	if (strcmp(name, "CERTIFICATE") != 0 && strcmp(name, "X509 CERTIFICATE") != 0)
		return 0; /* other objects in the file are ignored */
	if (cr->chain_len == TLS_MAX_CHAIN) {
		seterr(lc->err, lc->cap, "%s: more than %d certificates in the chain", lc->what, TLS_MAX_CHAIN);
		return E_LIMIT;
	}
	if (len == 0 || len > DER_MAX_CERT) {
		seterr(lc->err, lc->cap, "%s: certificate too large or empty", lc->what);
		return E_LIMIT;
	}
	unsigned char *copy = malloc(len);
	if (!copy)
		return E_NOMEM;
	memcpy(copy, der, len);
	cr->chain[cr->chain_len].data = copy;
	cr->chain[cr->chain_len].data_len = len;
	cr->chain_len++;
	return 0;
}

static int key_obj(void *arg, const char *name, const uint8_t *der, size_t len)
{
	struct load_ctx *lc = arg;
	struct tls_creds *cr = lc->cr;
	if (strcmp(name, "ENCRYPTED PRIVATE KEY") == 0) {
		seterr(lc->err, lc->cap, "%s: encrypted private keys are not supported", lc->what);
		return E_INVAL;
	}
	if (strcmp(name, "RSA PRIVATE KEY") != 0 && strcmp(name, "EC PRIVATE KEY") != 0 &&
	    strcmp(name, "PRIVATE KEY") != 0)
		return 0; /* e.g. EC PARAMETERS */
	if (++lc->nkeys > 1) {
		seterr(lc->err, lc->cap, "%s: more than one private key", lc->what);
		return E_INVAL;
	}
	br_skey_decoder_context *kd = malloc(sizeof(*kd));
	if (!kd)
		return E_NOMEM;
	br_skey_decoder_init(kd);
	br_skey_decoder_push(kd, der, len);
	int rc = 0;
	int kerr = br_skey_decoder_last_error(kd);
	if (kerr != 0) {
		seterr(lc->err, lc->cap, "%s: unsupported or malformed private key (BearSSL error %d)", lc->what, kerr);
		rc = E_INVAL;
	} else if (br_skey_decoder_key_type(kd) == BR_KEYTYPE_RSA) {
		const br_rsa_private_key *k = br_skey_decoder_get_rsa(kd);
		size_t total = k->plen + k->qlen + k->dplen + k->dqlen + k->iqlen;
		unsigned char *m = malloc(total);
		if (!m) {
			rc = E_NOMEM;
		} else {
			unsigned char *w = m;
			cr->rsa.n_bitlen = k->n_bitlen;
#define TAKE(f) do { memcpy(w, k->f, k->f##len); cr->rsa.f = w; cr->rsa.f##len = k->f##len; w += k->f##len; } while (0)
			TAKE(p);
			TAKE(q);
			TAKE(dp);
			TAKE(dq);
			TAKE(iq);
#undef TAKE
			cr->keymem = m;
			cr->keymem_len = total;
			cr->key_type = TLS_KEY_RSA;
		}
	} else {
		const br_ec_private_key *k = br_skey_decoder_get_ec(kd);
		unsigned char *m = malloc(k->xlen ? k->xlen : 1);
		if (!m) {
			rc = E_NOMEM;
		} else {
			memcpy(m, k->x, k->xlen);
			cr->ec.curve = k->curve;
			cr->ec.x = m;
			cr->ec.xlen = k->xlen;
			cr->keymem = m;
			cr->keymem_len = k->xlen;
			cr->key_type = TLS_KEY_EC;
		}
	}
	wipe(kd, sizeof(*kd));
	free(kd);
	return rc;
}

static void creds_free(struct tls_creds *cr)
{
	for (size_t i = 0; i < cr->chain_len; i++)
		free(cr->chain[i].data);
	if (cr->keymem) {
		wipe(cr->keymem, cr->keymem_len);
		free(cr->keymem);
	}
	free(cr->cache_store);
#if WITH_TLS_LIBCRYPTO
	tls_lc_key_free(cr->lc);
#endif
	wipe(cr, sizeof(*cr));
	free(cr);
}

/* Strip leading zero bytes of a big-endian integer. */
static void trim0(const unsigned char **p, size_t *n)
{
	while (*n > 0 && (*p)[0] == 0) {
		(*p)++;
		(*n)--;
	}
}

/* Does the private key belong to the public key of the leaf? */
static int key_matches(struct tls_creds *cr, const br_x509_pkey *pk)
{
	if (cr->key_type == TLS_KEY_RSA) {
		if (pk->key_type != BR_KEYTYPE_RSA)
			return 0;
		br_rsa_compute_modulus modf = br_rsa_compute_modulus_get_default();
		size_t nlen = modf(NULL, &cr->rsa);
		unsigned char *n = nlen ? malloc(nlen) : NULL;
		if (!n || modf(n, &cr->rsa) != nlen) {
			free(n);
			return 0;
		}
		const unsigned char *a = n, *b = pk->key.rsa.n;
		size_t alen = nlen, blen = pk->key.rsa.nlen;
		trim0(&a, &alen);
		trim0(&b, &blen);
		int same = alen == blen && memcmp(a, b, alen) == 0;
		free(n);
		if (!same)
			return 0;
		/* The public exponent: BearSSL 0.6 cannot recompute it from some
		 * keys (br_rsa_compute_pubexp returns 0), so a signature made with
		 * the private key must verify with the certificate's key. */
		unsigned char hv[32], sig[512], out[32];
		size_t slen = (cr->rsa.n_bitlen + 7) / 8;
		if (slen > sizeof(sig))
			return 0;
		br_sha256_context h;
		br_sha256_init(&h);
		br_sha256_update(&h, "exposrd key check", 17);
		br_sha256_out(&h, hv);
		if (!br_rsa_pkcs1_sign_get_default()(BR_HASH_OID_SHA256, hv, sizeof(hv), &cr->rsa, sig))
			return 0;
		if (!br_rsa_pkcs1_vrfy_get_default()(sig, slen, BR_HASH_OID_SHA256, sizeof(out), &pk->key.rsa, out))
			return 0;
		return memcmp(out, hv, sizeof(hv)) == 0;
	}
	if (pk->key_type != BR_KEYTYPE_EC || pk->key.ec.curve != cr->ec.curve)
		return 0;
	const br_ec_impl *iec = br_ec_get_default();
	if (!((iec->supported_curves >> cr->ec.curve) & 1))
		return 0;
	unsigned char kbuf[BR_EC_KBUF_PUB_MAX_SIZE];
	br_ec_public_key pub;
	size_t qlen = br_ec_compute_pub(iec, &pub, kbuf, &cr->ec);
	return qlen != 0 && qlen == pk->key.ec.qlen && memcmp(kbuf, pk->key.ec.q, qlen) == 0;
}

static unsigned curve_bits(int curve)
{
	switch (curve) {
	case BR_EC_secp256r1: return 256;
	case BR_EC_secp384r1: return 384;
	case BR_EC_secp521r1: return 521;
	default: return 0;
	}
}

/* ---- wildcard choice (spec/ingress.md §3.2) ---- */

struct wild_ctx {
	const char *want;
	char *domain;
	size_t cap;
	int found;
	char first_cn[TLS_NAME_MAX + 1];
	int have_cn;
};

static void lower_copy(char *dst, const char *src, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char ch = src[i];
		dst[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
	}
	dst[n] = '\0';
}

static int domain_ok(const char *d, size_t n)
{
	if (n == 0 || n > TLS_NAME_MAX - 2 || d[0] == '.' || d[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = d[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		      ch == '.' || ch == '_'))
			return 0;
		if (ch == '.' && d[i + 1] == '.')
			return 0;
	}
	return 1;
}

static void wild_name(void *arg, enum der_name_kind kind, const char *name, size_t len)
{
	struct wild_ctx *w = arg;
	if (kind == DER_NAME_CN && !w->have_cn) {
		size_t n = len < TLS_NAME_MAX ? len : TLS_NAME_MAX;
		for (size_t i = 0; i < n; i++)
			w->first_cn[i] = (name[i] >= 0x20 && name[i] < 0x7f) ? name[i] : '?';
		w->first_cn[n] = '\0';
		w->have_cn = 1;
	}
	if (w->found || len < 3 || name[0] != '*' || name[1] != '.' || !domain_ok(name + 2, len - 2))
		return;
	char d[TLS_NAME_MAX + 1];
	lower_copy(d, name + 2, len - 2);
	if (w->want && strcmp(d, w->want) != 0)
		return;
	snprintf(w->domain, w->cap, "%s", d);
	w->found = 1;
}

int tls_cert_wildcard(const uint8_t *der, size_t len, const char *want_domain, char *domain, size_t cap)
{
	struct wild_ctx w;
	memset(&w, 0, sizeof(w));
	w.want = want_domain;
	w.domain = domain;
	w.cap = cap;
	int r = der_cert_names(der, len, wild_name, &w);
	if (r != 0)
		return E_INVAL;
	return w.found ? 0 : E_NOTFOUND;
}

static int creds_finish(struct tls_creds *cr, const char *want, const char *cert_what, const char *key_what,
			char *err, size_t cap)
{
	if (cr->chain_len == 0) {
		seterr(err, cap, "%s: no certificate found", cert_what);
		return E_INVAL;
	}
	if (!cr->keymem) {
		seterr(err, cap, "%s: no private key found", key_what);
		return E_INVAL;
	}
	br_x509_decoder_context *dc = malloc(sizeof(*dc));
	if (!dc)
		return E_NOMEM;
	br_x509_decoder_init(dc, NULL, NULL);
	br_x509_decoder_push(dc, cr->chain[0].data, cr->chain[0].data_len);
	const br_x509_pkey *pk = br_x509_decoder_get_pkey(dc);
	if (!pk) {
		seterr(err, cap, "%s: the first certificate cannot be decoded (BearSSL error %d)", cert_what,
		       br_x509_decoder_last_error(dc));
		free(dc);
		return E_INVAL;
	}
	int match = key_matches(cr, pk);
	cr->issuer_key_type = (unsigned)br_x509_decoder_get_signer_key_type(dc);
	if (cr->issuer_key_type == 0)
		cr->issuer_key_type = BR_KEYTYPE_RSA;
	free(dc);
	if (!match) {
		seterr(err, cap, "the private key in %s does not match the certificate in %s", key_what, cert_what);
		return E_INVAL;
	}
	struct tls_cert_info *in = &cr->info;
	in->key_type = cr->key_type;
	in->key_bits = cr->key_type == TLS_KEY_RSA ? cr->rsa.n_bitlen : curve_bits(cr->ec.curve);
	in->chain_len = cr->chain_len;
	if (der_cert_serial(cr->chain[0].data, cr->chain[0].data_len, in->serial, sizeof(in->serial)) != 0)
		in->serial[0] = '\0';
	struct wild_ctx w;
	memset(&w, 0, sizeof(w));
	w.want = want;
	w.domain = in->domain;
	w.cap = sizeof(in->domain);
	if (der_cert_names(cr->chain[0].data, cr->chain[0].data_len, wild_name, &w) != 0) {
		seterr(err, cap, "%s: malformed certificate names", cert_what);
		return E_INVAL;
	}
	snprintf(in->subject_cn, sizeof(in->subject_cn), "%s", w.first_cn);
	if (!w.found) {
		if (want)
			seterr(err, cap, "certificate has no wildcard subject *.%s (%s)", want, cert_what);
		else
			seterr(err, cap, "certificate has no wildcard subjects (%s)", cert_what);
		return E_INVAL;
	}
	snprintf(in->wildcard, sizeof(in->wildcard), "*.%s", in->domain);
	cr->cache_store = malloc(TLS_SESSION_CACHE_BYTES);
	if (!cr->cache_store)
		return E_NOMEM;
	br_ssl_session_cache_lru_init(&cr->cache, cr->cache_store, TLS_SESSION_CACHE_BYTES);
	return 0;
}

static int creds_load_mem(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
			  const char *want, const char *cert_what, const char *key_what, struct tls_creds **out,
			  char *err, size_t cap)
{
	*out = NULL;
	struct tls_creds *cr = calloc(1, sizeof(*cr));
	if (!cr) {
		seterr(err, cap, "out of memory");
		return E_NOMEM;
	}
	cr->refs = 1;
	struct load_ctx lc = {cr, cert_what, err, cap, 0};
	int rc = pem_each(cert_pem, cert_len, cert_obj, &lc, cert_what, err, cap);
	if (rc == 0) {
		lc.what = key_what;
		rc = pem_each(key_pem, key_len, key_obj, &lc, key_what, err, cap);
	}
	if (rc == 0)
		rc = creds_finish(cr, want, cert_what, key_what, err, cap);
#if WITH_TLS_LIBCRYPTO
	/* Checked against the certificate by BearSSL above; NULL falls back
	 * to BearSSL's signatures. */
	if (rc == 0)
		cr->lc = tls_lc_key_new(key_pem, key_len);
#endif
	if (rc != 0) {
		if (rc == E_NOMEM)
			seterr(err, cap, "out of memory");
		creds_free(cr);
		return rc;
	}
	*out = cr;
	return 0;
}

int tls_creds_load_mem(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
		       const char *want_domain, struct tls_creds **out, char *err, size_t cap)
{
	return creds_load_mem(cert_pem, cert_len, key_pem, key_len, want_domain, "certificate", "key", out, err,
			      cap);
}

int tls_creds_load(const char *cert_path, const char *key_path, const char *want_domain, struct tls_creds **out,
		   char *err, size_t cap)
{
	char *cert = NULL, *key = NULL;
	size_t clen = 0, klen = 0;
	*out = NULL;
	int rc = read_file(cert_path, TLS_MAX_PEM_FILE, &cert, &clen, err, cap);
	if (rc == 0)
		rc = read_file(key_path, TLS_MAX_PEM_FILE, &key, &klen, err, cap);
	if (rc == 0)
		rc = creds_load_mem(cert, clen, key, klen, want_domain, cert_path, key_path, out, err, cap);
	free(cert);
	if (key) {
		wipe(key, klen);
		free(key);
	}
	return rc;
}

const struct tls_cert_info *tls_creds_info(const struct tls_creds *c) { return &c->info; }

struct tls_creds *tls_creds_ref(struct tls_creds *c)
{
	c->refs++;
	return c;
}

void tls_creds_unref(struct tls_creds *c)
{
	if (c && --c->refs == 0)
		creds_free(c);
}

/* ---- client configuration ---- */

struct tls_client_config {
	int refs;
	int insecure;
	br_x509_trust_anchor *tas;
	size_t ntas;
};

struct anchor_ctx {
	struct tls_client_config *cfg;
	size_t cap;
	struct buf dn;
	const char *what;
	char *err;
	size_t errcap;
};

static void dn_append(void *arg, const void *p, size_t n)
{
	struct buf *b = arg;
	(void)buf_append(b, p, n);
}

static unsigned char *dup_bytes(const unsigned char *p, size_t n)
{
	unsigned char *d = malloc(n ? n : 1);
	if (d && n)
		memcpy(d, p, n);
	return d;
}

static int anchor_obj(void *arg, const char *name, const uint8_t *der, size_t len)
{
	struct anchor_ctx *ac = arg;
	struct tls_client_config *cfg = ac->cfg;
	if (strcmp(name, "CERTIFICATE") != 0 && strcmp(name, "X509 CERTIFICATE") != 0 &&
	    strcmp(name, "TRUSTED CERTIFICATE") != 0)
		return 0;
	if (cfg->ntas == TLS_MAX_ANCHORS) {
		seterr(ac->err, ac->errcap, "%s: too many certificates", ac->what);
		return E_LIMIT;
	}
	br_x509_decoder_context *dc = malloc(sizeof(*dc));
	if (!dc)
		return E_NOMEM;
	buf_free(&ac->dn);
	br_x509_decoder_init(dc, dn_append, &ac->dn);
	br_x509_decoder_push(dc, der, len);
	const br_x509_pkey *pk = br_x509_decoder_get_pkey(dc);
	if (!pk) {
		free(dc); /* an unsupported certificate in a bundle is skipped */
		return 0;
	}
	if (ac->cap == cfg->ntas) {
		size_t ncap = ac->cap ? ac->cap * 2 : 64;
		br_x509_trust_anchor *t = realloc(cfg->tas, ncap * sizeof(*t));
		if (!t) {
			free(dc);
			return E_NOMEM;
		}
		cfg->tas = t;
		ac->cap = ncap;
	}
	br_x509_trust_anchor *ta = &cfg->tas[cfg->ntas];
	memset(ta, 0, sizeof(*ta));
	ta->flags = br_x509_decoder_isCA(dc) ? BR_X509_TA_CA : 0;
	ta->dn.data = dup_bytes((const unsigned char *)buf_data(&ac->dn), buf_len(&ac->dn));
	ta->dn.len = buf_len(&ac->dn);
	ta->pkey.key_type = pk->key_type;
	int ok = ta->dn.data != NULL;
	if (pk->key_type == BR_KEYTYPE_RSA) {
		ta->pkey.key.rsa.n = dup_bytes(pk->key.rsa.n, pk->key.rsa.nlen);
		ta->pkey.key.rsa.nlen = pk->key.rsa.nlen;
		ta->pkey.key.rsa.e = dup_bytes(pk->key.rsa.e, pk->key.rsa.elen);
		ta->pkey.key.rsa.elen = pk->key.rsa.elen;
		ok = ok && ta->pkey.key.rsa.n && ta->pkey.key.rsa.e;
	} else {
		ta->pkey.key.ec.curve = pk->key.ec.curve;
		ta->pkey.key.ec.q = dup_bytes(pk->key.ec.q, pk->key.ec.qlen);
		ta->pkey.key.ec.qlen = pk->key.ec.qlen;
		ok = ok && ta->pkey.key.ec.q;
	}
	free(dc);
	cfg->ntas++; /* counted even when partial, so that free releases it */
	return ok ? 0 : E_NOMEM;
}

static void client_config_free(struct tls_client_config *cfg)
{
	for (size_t i = 0; i < cfg->ntas; i++) {
		br_x509_trust_anchor *ta = &cfg->tas[i];
		free(ta->dn.data);
		if (ta->pkey.key_type == BR_KEYTYPE_RSA) {
			free(ta->pkey.key.rsa.n);
			free(ta->pkey.key.rsa.e);
		} else {
			free(ta->pkey.key.ec.q);
		}
	}
	free(cfg->tas);
	free(cfg);
}

int tls_client_config_new(const char *ca_path, int insecure, struct tls_client_config **out, char *err, size_t cap)
{
	*out = NULL;
	struct tls_client_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return E_NOMEM;
	cfg->refs = 1;
	cfg->insecure = insecure != 0;
	if (!insecure) {
		const char *path = ca_path ? ca_path : TLS_CA_BUNDLE_DEFAULT;
		char *pem = NULL;
		size_t len = 0;
		int rc = read_file(path, TLS_MAX_CA_FILE, &pem, &len, err, cap);
		if (rc == 0) {
			struct anchor_ctx ac;
			memset(&ac, 0, sizeof(ac));
			ac.cfg = cfg;
			ac.what = path;
			ac.err = err;
			ac.errcap = cap;
			buf_init(&ac.dn, 65536);
			rc = pem_each(pem, len, anchor_obj, &ac, path, err, cap);
			buf_free(&ac.dn);
			if (rc == 0 && cfg->ntas == 0) {
				seterr(err, cap, "%s: no usable CA certificate", path);
				rc = E_INVAL;
			}
		}
		free(pem);
		if (rc != 0) {
			client_config_free(cfg);
			return rc;
		}
	}
	*out = cfg;
	return 0;
}

struct tls_client_config *tls_client_config_ref(struct tls_client_config *cfg)
{
	cfg->refs++;
	return cfg;
}

void tls_client_config_unref(struct tls_client_config *cfg)
{
	if (cfg && --cfg->refs == 0)
		client_config_free(cfg);
}

/* An X.509 "validator" that accepts any chain and only extracts the
 * leaf's public key (insecure mode). */
struct x509_any {
	const br_x509_class *vtable;
	br_x509_decoder_context dc;
	int depth;
	int ok;
};

static void xa_start_chain(const br_x509_class **ctx, const char *server_name)
{
	struct x509_any *xa = (struct x509_any *)(void *)ctx;
	xa->depth = 0;
	xa->ok = 0;
}

static void xa_start_cert(const br_x509_class **ctx, uint32_t length)
{
	struct x509_any *xa = (struct x509_any *)(void *)ctx;
	if (xa->depth == 0)
		br_x509_decoder_init(&xa->dc, NULL, NULL);
}

static void xa_append(const br_x509_class **ctx, const unsigned char *buf, size_t len)
{
	struct x509_any *xa = (struct x509_any *)(void *)ctx;
	if (xa->depth == 0)
		br_x509_decoder_push(&xa->dc, buf, len);
}

static void xa_end_cert(const br_x509_class **ctx)
{
	struct x509_any *xa = (struct x509_any *)(void *)ctx;
	if (xa->depth == 0)
		xa->ok = br_x509_decoder_get_pkey(&xa->dc) != NULL;
	xa->depth++;
}

static unsigned xa_end_chain(const br_x509_class **ctx)
{
	struct x509_any *xa = (struct x509_any *)(void *)ctx;
	return xa->ok ? 0 : BR_ERR_X509_EMPTY_CHAIN;
}

static const br_x509_pkey *xa_get_pkey(const br_x509_class *const *ctx, unsigned *usages)
{
	struct x509_any *xa = (struct x509_any *)(void *)ctx;
	if (usages)
		*usages = BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN;
	return xa->ok ? br_x509_decoder_get_pkey(&xa->dc) : NULL;
}

static const br_x509_class x509_any_class = {
	sizeof(struct x509_any), xa_start_chain, xa_start_cert, xa_append, xa_end_cert, xa_end_chain, xa_get_pkey,
};

/* ---- connections ---- */

/* Wraps the single-chain policy: the SNI decision goes first. */
struct sni_policy {
	const br_ssl_server_policy_class *vtable;
	const br_ssl_server_policy_class **inner;
	tls_sni_cb cb;
	void *arg;
	struct tls_creds *creds;
};

struct tls_conn {
	int server;
	union {
		br_ssl_server_context sc;
		br_ssl_client_context cc;
	} u;
	struct sni_policy policy;
	struct tls_creds *creds;
	struct tls_client_config *ccfg;
	br_x509_minimal_context xc;
	struct x509_any xa;
	unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
};

static int sp_choose(const br_ssl_server_policy_class **pctx, const br_ssl_server_context *cc,
		     br_ssl_server_choices *choices)
{
	struct sni_policy *sp = (struct sni_policy *)(void *)pctx;
	if (sp->cb && !sp->cb(sp->arg, br_ssl_engine_get_server_name(&cc->eng)))
		return 0;
	return (*sp->inner)->choose(sp->inner, cc, choices);
}

static uint32_t sp_do_keyx(const br_ssl_server_policy_class **pctx, unsigned char *data, size_t *len)
{
	struct sni_policy *sp = (struct sni_policy *)(void *)pctx;
	return (*sp->inner)->do_keyx(sp->inner, data, len);
}

static size_t sp_do_sign(const br_ssl_server_policy_class **pctx, unsigned algo_id, unsigned char *data,
			 size_t hv_len, size_t len)
{
	struct sni_policy *sp = (struct sni_policy *)(void *)pctx;
#if WITH_TLS_LIBCRYPTO
	if (sp->creds->lc && algo_id >= 0xFF00 && hv_len <= 64) {
		unsigned char hv[64];
		memcpy(hv, data, hv_len);
		return tls_lc_sign(sp->creds->lc, (int)(algo_id & 0xFF), hv, hv_len, data, len);
	}
#endif
	return (*sp->inner)->do_sign(sp->inner, algo_id, data, hv_len, len);
}

static const br_ssl_server_policy_class sni_policy_class = {
	sizeof(struct sni_policy), sp_choose, sp_do_keyx, sp_do_sign,
};

static const uint16_t suites_ec[] = {
	BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
};

static const uint16_t suites_rsa[] = {
	BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
};

/* Symmetric implementations, chosen once: BearSSL's "default" setters
 * probe the CPU (CPUID) on every call, which costs a VM exit under
 * virtualisation. */
static struct {
	int ready;
	const br_block_ctr_class *aes_ctr;
	br_ghash ghash;
	br_chacha20_run chacha;
	br_poly1305_run poly;
} sym;

static void sym_init(void)
{
	if (sym.ready)
		return;
	sym.aes_ctr = br_aes_x86ni_ctr_get_vtable();
	if (!sym.aes_ctr)
		sym.aes_ctr = &br_aes_ct64_ctr_vtable;
	sym.ghash = br_ghash_pclmul_get();
	if (!sym.ghash)
		sym.ghash = br_ghash_ctmul64;
	sym.chacha = br_chacha20_sse2_get();
	if (!sym.chacha)
		sym.chacha = br_chacha20_ct_run;
	sym.poly = br_poly1305_ctmulq_get();
	if (!sym.poly)
		sym.poly = br_poly1305_ctmul_run;
	sym.ready = 1;
}

static void inject_entropy(br_ssl_engine_context *eng)
{
	unsigned char seed[32];
	if (compat_random(seed, sizeof(seed)) == 0)
		br_ssl_engine_inject_entropy(eng, seed, sizeof(seed));
	wipe(seed, sizeof(seed));
}

struct tls_conn *tls_server_new(struct tls_creds *creds, tls_sni_cb sni, void *sni_arg)
{
	struct tls_conn *c = malloc(sizeof(*c));
	if (!c)
		return NULL;
	memset(c, 0, offsetof(struct tls_conn, iobuf));
	c->server = 1;
	br_ssl_server_context *sc = &c->u.sc;
	br_ssl_engine_context *eng = &sc->eng;
	br_ssl_server_zero(sc);
	br_ssl_engine_set_versions(eng, BR_TLS12, BR_TLS12);
	if (creds->key_type == TLS_KEY_EC)
		br_ssl_engine_set_suites(eng, suites_ec, sizeof(suites_ec) / sizeof(suites_ec[0]));
	else
		br_ssl_engine_set_suites(eng, suites_rsa, sizeof(suites_rsa) / sizeof(suites_rsa[0]));
	/* The PRF and signature hashes of TLS 1.2: every configured hash runs
	 * over the whole handshake transcript, so no more than needed. */
	br_ssl_engine_set_hash(eng, br_sha256_ID, &br_sha256_vtable);
	br_ssl_engine_set_hash(eng, br_sha384_ID, &br_sha384_vtable);
	br_ssl_engine_set_prf_sha256(eng, &br_tls12_sha256_prf);
	br_ssl_engine_set_prf_sha384(eng, &br_tls12_sha384_prf);
	sym_init();
	br_ssl_engine_set_gcm(eng, &br_sslrec_in_gcm_vtable, &br_sslrec_out_gcm_vtable);
	br_ssl_engine_set_aes_ctr(eng, sym.aes_ctr);
	br_ssl_engine_set_ghash(eng, sym.ghash);
	br_ssl_engine_set_chapol(eng, &br_sslrec_in_chapol_vtable, &br_sslrec_out_chapol_vtable);
	br_ssl_engine_set_chacha20(eng, sym.chacha);
	br_ssl_engine_set_poly1305(eng, sym.poly);
	br_ssl_engine_set_ec(eng, ecdhe_impl());
	if (creds->key_type == TLS_KEY_EC)
		br_ssl_server_set_single_ec(sc, creds->chain, creds->chain_len, &creds->ec, BR_KEYTYPE_SIGN,
					    creds->issuer_key_type, br_ec_get_default(),
					    br_ecdsa_sign_asn1_get_default());
	else
		br_ssl_server_set_single_rsa(sc, creds->chain, creds->chain_len, &creds->rsa, BR_KEYTYPE_SIGN,
					     br_rsa_private_get_default(), br_rsa_pkcs1_sign_get_default());
	c->policy.vtable = &sni_policy_class;
	c->policy.inner = sc->policy_vtable;
	c->policy.cb = sni;
	c->policy.arg = sni_arg;
	c->policy.creds = creds;
	br_ssl_server_set_policy(sc, &c->policy.vtable);
	br_ssl_server_set_cache(sc, &creds->cache.vtable);
	br_ssl_engine_add_flags(eng, BR_OPT_ENFORCE_SERVER_PREFERENCES | BR_OPT_NO_RENEGOTIATION);
	br_ssl_engine_set_buffer(eng, c->iobuf, sizeof(c->iobuf), 1);
	inject_entropy(eng);
	if (!br_ssl_server_reset(sc)) {
		free(c);
		return NULL;
	}
	c->creds = tls_creds_ref(creds);
	return c;
}

typedef char tls_session_fits[sizeof(((struct tls_session *)0)->params) >= sizeof(br_ssl_session_parameters) ? 1 : -1];

void tls_session_save(const struct tls_conn *c, struct tls_session *s)
{
	memset(s, 0, sizeof(*s));
	if (c->server || !tls_handshake_done(c))
		return;
	br_ssl_engine_get_session_parameters(&c->u.cc.eng, (br_ssl_session_parameters *)(void *)s->params);
	s->valid = 1;
}

int tls_client_new(struct tls_client_config *cfg, const char *host, const struct tls_session *resume,
		   struct tls_conn **out)
{
	*out = NULL;
	int is_ip = strchr(host, ':') != NULL;
	if (!is_ip) {
		is_ip = 1;
		for (const char *p = host; *p; p++)
			if (!((*p >= '0' && *p <= '9') || *p == '.'))
				is_ip = 0;
	}
	if (is_ip && !cfg->insecure)
		return E_INVAL;
	struct tls_conn *c = malloc(sizeof(*c));
	if (!c)
		return E_NOMEM;
	memset(c, 0, offsetof(struct tls_conn, iobuf));
	br_ssl_client_context *cc = &c->u.cc;
	br_ssl_client_init_full(cc, &c->xc, cfg->tas, cfg->ntas);
	br_ssl_engine_set_ec(&cc->eng, ecdhe_impl());
	if (cfg->insecure) {
		c->xa.vtable = &x509_any_class;
		br_ssl_engine_set_x509(&cc->eng, &c->xa.vtable);
	}
	br_ssl_engine_add_flags(&cc->eng, BR_OPT_NO_RENEGOTIATION);
	br_ssl_engine_set_buffer(&cc->eng, c->iobuf, sizeof(c->iobuf), 1);
	inject_entropy(&cc->eng);
	int resuming = resume && resume->valid;
	if (resuming) {
		br_ssl_session_parameters pp;
		memcpy(&pp, resume->params, sizeof(pp));
		br_ssl_engine_set_session_parameters(&cc->eng, &pp);
	}
	if (!br_ssl_client_reset(cc, is_ip ? NULL : host, resuming)) {
		free(c);
		return E_INVAL;
	}
	c->ccfg = tls_client_config_ref(cfg);
	*out = c;
	return 0;
}

void tls_conn_free(struct tls_conn *c)
{
	if (!c)
		return;
	tls_creds_unref(c->creds);
	tls_client_config_unref(c->ccfg);
	wipe(c, sizeof(*c));
	free(c);
}

static br_ssl_engine_context *eng_of(struct tls_conn *c)
{
	return c->server ? &c->u.sc.eng : &c->u.cc.eng;
}

static const br_ssl_engine_context *ceng_of(const struct tls_conn *c)
{
	return c->server ? &c->u.sc.eng : &c->u.cc.eng;
}

unsigned tls_state(const struct tls_conn *c) { return br_ssl_engine_current_state(ceng_of(c)); }
int tls_error(const struct tls_conn *c) { return br_ssl_engine_last_error(ceng_of(c)); }
const char *tls_server_name(const struct tls_conn *c) { return br_ssl_engine_get_server_name(ceng_of(c)); }

int tls_handshake_done(const struct tls_conn *c)
{
	/* BearSSL accepts application data only once the handshake is over. */
	unsigned st = tls_state(c);
	return (st & (TLS_SENDAPP | TLS_RECVAPP)) != 0;
}

const uint8_t *tls_session_id(const struct tls_conn *c, size_t *len)
{
	const br_ssl_engine_context *eng = ceng_of(c);
	*len = eng->session.session_id_len;
	return eng->session.session_id;
}

const char *tls_error_str(int err)
{
	if (err >= BR_ERR_SEND_FATAL_ALERT)
		return "fatal alert sent";
	if (err >= BR_ERR_RECV_FATAL_ALERT)
		return err == BR_ERR_RECV_FATAL_ALERT ? "close_notify received" : "fatal alert received";
	switch (err) {
	case BR_ERR_OK: return "ok";
	case BR_ERR_UNSUPPORTED_VERSION: return "unsupported protocol version";
	case BR_ERR_BAD_VERSION: return "bad protocol version";
	case BR_ERR_BAD_LENGTH: return "bad record length";
	case BR_ERR_TOO_LARGE: return "record too large";
	case BR_ERR_BAD_MAC: return "bad record MAC";
	case BR_ERR_UNKNOWN_TYPE: return "unknown record type";
	case BR_ERR_UNEXPECTED: return "unexpected message";
	case BR_ERR_BAD_HANDSHAKE: return "bad handshake message";
	case BR_ERR_BAD_CIPHER_SUITE: return "no common cipher suite";
	case BR_ERR_BAD_SNI: return "bad server name";
	case BR_ERR_BAD_FINISHED: return "bad Finished message";
	case BR_ERR_INVALID_ALGORITHM: return "invalid algorithm";
	case BR_ERR_BAD_SIGNATURE: return "bad signature";
	case BR_ERR_IO: return "I/O error";
	case BR_ERR_X509_NOT_TRUSTED: return "certificate not trusted";
	case BR_ERR_X509_BAD_SERVER_NAME: return "certificate does not match the server name";
	case BR_ERR_X509_EXPIRED: return "certificate expired or not yet valid";
	default: return "TLS error";
	}
}

uint8_t *tls_recvrec_buf(struct tls_conn *c, size_t *len) { return br_ssl_engine_recvrec_buf(eng_of(c), len); }
void tls_recvrec_ack(struct tls_conn *c, size_t n) { br_ssl_engine_recvrec_ack(eng_of(c), n); }
uint8_t *tls_sendrec_buf(struct tls_conn *c, size_t *len) { return br_ssl_engine_sendrec_buf(eng_of(c), len); }
void tls_sendrec_ack(struct tls_conn *c, size_t n) { br_ssl_engine_sendrec_ack(eng_of(c), n); }
uint8_t *tls_recvapp_buf(struct tls_conn *c, size_t *len) { return br_ssl_engine_recvapp_buf(eng_of(c), len); }
void tls_recvapp_ack(struct tls_conn *c, size_t n) { br_ssl_engine_recvapp_ack(eng_of(c), n); }
uint8_t *tls_sendapp_buf(struct tls_conn *c, size_t *len) { return br_ssl_engine_sendapp_buf(eng_of(c), len); }
void tls_sendapp_ack(struct tls_conn *c, size_t n) { br_ssl_engine_sendapp_ack(eng_of(c), n); }
void tls_flush(struct tls_conn *c) { br_ssl_engine_flush(eng_of(c), 0); }
void tls_close(struct tls_conn *c) { br_ssl_engine_close(eng_of(c)); }

size_t tls_feed(struct tls_conn *c, const uint8_t *p, size_t n)
{
	size_t total = 0;
	while (total < n) {
		size_t room;
		unsigned char *buf = br_ssl_engine_recvrec_buf(eng_of(c), &room);
		if (!buf || room == 0)
			break;
		size_t k = n - total < room ? n - total : room;
		memcpy(buf, p + total, k);
		br_ssl_engine_recvrec_ack(eng_of(c), k);
		total += k;
	}
	return total;
}
