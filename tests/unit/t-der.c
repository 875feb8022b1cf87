/* t-der.c - tests of the X.509 name and serial reader on certificates
 * built here (structure only: the reader checks no signature): CN and
 * SAN order, string types, extensions with a critical flag, long-form
 * lengths, and every truncation and malformed length. */
#include "der.h"
#include "err.h"
#include "test.h"

#include <stdint.h>

struct d {
	uint8_t b[8192];
	size_t n;
};

static void raw(struct d *o, const void *p, size_t n)
{
	memcpy(o->b + o->n, p, n);
	o->n += n;
}

/* TLV with a definite length (short, 0x81 or 0x82 form). */
static void tlv(struct d *o, unsigned tag, const void *p, size_t n)
{
	o->b[o->n++] = (uint8_t)tag;
	if (n < 128) {
		o->b[o->n++] = (uint8_t)n;
	} else if (n < 256) {
		o->b[o->n++] = 0x81;
		o->b[o->n++] = (uint8_t)n;
	} else {
		o->b[o->n++] = 0x82;
		o->b[o->n++] = (uint8_t)(n >> 8);
		o->b[o->n++] = (uint8_t)n;
	}
	raw(o, p, n);
}

static void wrap(struct d *o, unsigned tag, const struct d *in)
{
	tlv(o, tag, in->b, in->n);
}

static const uint8_t OID_CN[] = {0x55, 0x04, 0x03};
static const uint8_t OID_O[] = {0x55, 0x04, 0x0a};
static const uint8_t OID_SAN[] = {0x55, 0x1d, 0x11};
static const uint8_t OID_BC[] = {0x55, 0x1d, 0x13};

/* One RDN with one attribute. */
static void rdn(struct d *name, const uint8_t *oid, unsigned strtag, const char *v)
{
	struct d atv = {{0}, 0}, set = {{0}, 0};
	tlv(&atv, 0x06, oid, 3);
	tlv(&atv, strtag, v, strlen(v));
	wrap(&set, 0x30, &atv);
	wrap(name, 0x31, &set);
}

struct names {
	char got[16][300];
	int kinds[16];
	int n;
};

static void collect(void *arg, enum der_name_kind kind, const char *name, size_t len)
{
	struct names *ns = arg;
	if (ns->n < 16) {
		memcpy(ns->got[ns->n], name, len);
		ns->got[ns->n][len] = '\0';
		ns->kinds[ns->n] = kind;
	}
	ns->n++;
}

/* A certificate: subject from name, SANs (dNSName) from sans, with
 * optional version, critical flag, and an extra extension first. */
static void cert(struct d *out, const struct d *subject, const char *const *sans, int nsans, int critical)
{
	struct d tbs = {{0}, 0}, tmp = {{0}, 0}, exts = {{0}, 0}, list = {{0}, 0};
	uint8_t v2[] = {0x02, 0x01, 0x02};
	tlv(&tbs, 0xa0, v2, 3);
	uint8_t serial[] = {0x00, 0x8f, 0x01, 0x02};
	tlv(&tbs, 0x02, serial, sizeof(serial));
	uint8_t alg[] = {0x06, 0x03, 0x2a, 0x03, 0x04};
	tlv(&tbs, 0x30, alg, sizeof(alg));
	struct d issuer = {{0}, 0};
	rdn(&issuer, OID_CN, 0x0c, "Test CA");
	wrap(&tbs, 0x30, &issuer);
	uint8_t validity[] = {0x17, 0x01, 0x30, 0x17, 0x01, 0x30};
	tlv(&tbs, 0x30, validity, sizeof(validity));
	wrap(&tbs, 0x30, subject);
	uint8_t spki[] = {0x30, 0x00, 0x03, 0x01, 0x00};
	tlv(&tbs, 0x30, spki, sizeof(spki));
	/* basicConstraints first (not a SAN) */
	struct d bc = {{0}, 0};
	tlv(&bc, 0x06, OID_BC, 3);
	uint8_t bcv[] = {0x30, 0x00};
	tlv(&bc, 0x04, bcv, 2);
	wrap(&list, 0x30, &bc);
	if (nsans >= 0) {
		struct d gn = {{0}, 0}, gns = {{0}, 0}, ext = {{0}, 0};
		uint8_t email[] = "a@b.c";
		tlv(&gn, 0x81, email, 5);
		for (int i = 0; i < nsans; i++)
			tlv(&gn, 0x82, sans[i], strlen(sans[i]));
		wrap(&gns, 0x30, &gn);
		tlv(&ext, 0x06, OID_SAN, 3);
		if (critical) {
			uint8_t t = 0xff;
			tlv(&ext, 0x01, &t, 1);
		}
		wrap(&ext, 0x04, &gns);
		wrap(&list, 0x30, &ext);
	}
	wrap(&exts, 0x30, &list);
	wrap(&tbs, 0xa3, &exts);
	wrap(&tmp, 0x30, &tbs);
	tlv(&tmp, 0x30, alg, sizeof(alg));
	uint8_t sig[] = {0x00, 0x01};
	tlv(&tmp, 0x03, sig, 2);
	out->n = 0;
	wrap(out, 0x30, &tmp);
}

TEST(test_cn_then_sans)
{
	struct d subj = {{0}, 0}, c;
	rdn(&subj, OID_O, 0x0c, "Org");
	rdn(&subj, OID_CN, 0x0c, "*.cn.example");
	const char *sans[] = {"www.example.org", "*.example.com", "*.localhost"};
	cert(&c, &subj, sans, 3, 0);
	struct names ns;
	memset(&ns, 0, sizeof(ns));
	CHECK_EQ(der_cert_names(c.b, c.n, collect, &ns), 0);
	CHECK_EQ(ns.n, 4);
	CHECK_STR(ns.got[0], "*.cn.example");
	CHECK_EQ(ns.kinds[0], DER_NAME_CN);
	CHECK_STR(ns.got[1], "www.example.org");
	CHECK_EQ(ns.kinds[1], DER_NAME_DNS);
	CHECK_STR(ns.got[2], "*.example.com");
	CHECK_STR(ns.got[3], "*.localhost");
	char serial[64];
	CHECK_EQ(der_cert_serial(c.b, c.n, serial, sizeof(serial)), 0);
	CHECK_STR(serial, "8f0102");
	CHECK_EQ(der_cert_serial(c.b, c.n, serial, 6), E_LIMIT);
	CHECK_EQ(der_cert_serial(c.b, c.n, serial, 7), 0);
}

TEST(test_string_types_and_critical)
{
	struct d subj = {{0}, 0}, c;
	rdn(&subj, OID_CN, 0x13, "printable");
	rdn(&subj, OID_CN, 0x16, "ia5");
	rdn(&subj, OID_CN, 0x14, "t61");
	rdn(&subj, OID_CN, 0x1e, "bmp"); /* BMPString: not reported */
	rdn(&subj, OID_O, 0x0c, "*.not-a-cn");
	const char *sans[] = {"*.crit.example"};
	cert(&c, &subj, sans, 1, 1);
	struct names ns;
	memset(&ns, 0, sizeof(ns));
	CHECK_EQ(der_cert_names(c.b, c.n, collect, &ns), 0);
	CHECK_EQ(ns.n, 4);
	CHECK_STR(ns.got[0], "printable");
	CHECK_STR(ns.got[1], "ia5");
	CHECK_STR(ns.got[2], "t61");
	CHECK_STR(ns.got[3], "*.crit.example");
}

TEST(test_no_san_and_long_lengths)
{
	struct d subj = {{0}, 0}, c;
	/* a long attribute value forces 0x81/0x82 lengths all the way up */
	char longv[300];
	memset(longv, 'x', 299);
	longv[299] = '\0';
	rdn(&subj, OID_O, 0x0c, longv);
	rdn(&subj, OID_CN, 0x0c, "*.only-cn.test");
	cert(&c, &subj, NULL, -1, 0);
	struct names ns;
	memset(&ns, 0, sizeof(ns));
	CHECK_EQ(der_cert_names(c.b, c.n, collect, &ns), 0);
	CHECK_EQ(ns.n, 1);
	CHECK_STR(ns.got[0], "*.only-cn.test");
}

TEST(test_truncations_and_corruptions)
{
	struct d subj = {{0}, 0}, c;
	rdn(&subj, OID_CN, 0x0c, "*.cut.example");
	const char *sans[] = {"*.a.example", "*.b.example"};
	cert(&c, &subj, sans, 2, 0);
	struct names ns;
	char serial[64];
	/* every prefix: an error, never a read past the end (ASan) */
	int ok = 0;
	for (size_t k = 0; k < c.n; k++) {
		uint8_t *copy = malloc(k ? k : 1);
		memcpy(copy, c.b, k);
		memset(&ns, 0, sizeof(ns));
		if (der_cert_names(copy, k, collect, &ns) == 0)
			ok++;
		(void)der_cert_serial(copy, k, serial, sizeof(serial));
		free(copy);
	}
	CHECK_EQ(ok, 0);
	/* every single byte changed: no crash, and lengths stay in bounds */
	for (size_t k = 0; k < c.n; k++) {
		for (int v = 0; v < 256; v += 51) {
			uint8_t *copy = malloc(c.n);
			memcpy(copy, c.b, c.n);
			copy[k] = (uint8_t)v;
			memset(&ns, 0, sizeof(ns));
			(void)der_cert_names(copy, c.n, collect, &ns);
			(void)der_cert_serial(copy, c.n, serial, sizeof(serial));
			free(copy);
		}
	}
	/* indefinite length, 5-byte length, high tag number */
	uint8_t indef[] = {0x30, 0x80, 0x00, 0x00};
	CHECK_EQ(der_cert_names(indef, sizeof(indef), collect, &ns), E_INVAL);
	uint8_t five[] = {0x30, 0x85, 0, 0, 0, 0, 1, 0};
	CHECK_EQ(der_cert_names(five, sizeof(five), collect, &ns), E_INVAL);
	uint8_t high[] = {0x3f, 0x01, 0x00};
	CHECK_EQ(der_cert_names(high, sizeof(high), collect, &ns), E_INVAL);
	CHECK_EQ(der_cert_names(c.b, DER_MAX_CERT + 1, collect, &ns), E_LIMIT);
	CHECK_EQ(der_cert_serial(indef, sizeof(indef), serial, sizeof(serial)), E_INVAL);
}

int main(void)
{
	RUN(test_cn_then_sans);
	RUN(test_string_types_and_critical);
	RUN(test_no_san_and_long_lengths);
	RUN(test_truncations_and_corruptions);
	return test_done();
}
