/* der.c - X.509 name and serial reader (see der.h). */
#include "der.h"
#include "err.h"

#include <string.h>

#define TAG_BOOLEAN 0x01
#define TAG_INTEGER 0x02
#define TAG_OCTET_STRING 0x04
#define TAG_OID 0x06
#define TAG_UTF8STRING 0x0c
#define TAG_PRINTABLESTRING 0x13
#define TAG_T61STRING 0x14
#define TAG_IA5STRING 0x16
#define TAG_SEQUENCE 0x30
#define TAG_SET 0x31
#define TAG_VERSION 0xa0      /* [0] EXPLICIT */
#define TAG_EXTENSIONS 0xa3   /* [3] EXPLICIT */
#define TAG_DNSNAME 0x82      /* GeneralName [2] IMPLICIT IA5String */

static const uint8_t OID_CN[] = {0x55, 0x04, 0x03};          /* 2.5.4.3 */
static const uint8_t OID_SAN[] = {0x55, 0x1d, 0x11};         /* 2.5.29.17 */

struct slice {
	const uint8_t *p;
	size_t n;
};

/* Take one TLV off the front of s.  Single-byte tags, definite lengths of
 * up to 4 length bytes. */
static int next_tlv(struct slice *s, unsigned *tag, struct slice *val)
{
	if (s->n < 2)
		return E_INVAL;
	unsigned t = s->p[0];
	if ((t & 0x1f) == 0x1f)
		return E_INVAL;
	size_t off = 2, len = s->p[1];
	if (len & 0x80) {
		size_t k = len & 0x7f;
		if (k == 0 || k > 4 || s->n - 2 < k)
			return E_INVAL;
		len = 0;
		for (size_t i = 0; i < k; i++)
			len = len << 8 | s->p[2 + i];
		off += k;
	}
	if (len > s->n - off)
		return E_INVAL;
	*tag = t;
	val->p = s->p + off;
	val->n = len;
	s->p += off + len;
	s->n -= off + len;
	return 0;
}

/* Take one TLV that must have tag want. */
static int expect(struct slice *s, unsigned want, struct slice *val)
{
	unsigned tag;
	int r = next_tlv(s, &tag, val);
	if (r != 0)
		return r;
	return tag == want ? 0 : E_INVAL;
}

static int oid_is(const struct slice *v, const uint8_t *oid, size_t n)
{
	return v->n == n && memcmp(v->p, oid, n) == 0;
}

static int is_string_tag(unsigned tag)
{
	return tag == TAG_UTF8STRING || tag == TAG_PRINTABLESTRING || tag == TAG_IA5STRING || tag == TAG_T61STRING;
}

/* The TBSCertificate, positioned at serialNumber. */
static int open_tbs(const uint8_t *der, size_t len, struct slice *tbs)
{
	if (len > DER_MAX_CERT)
		return E_LIMIT;
	struct slice all = {der, len}, cert;
	int r = expect(&all, TAG_SEQUENCE, &cert);
	if (r != 0)
		return r;
	if ((r = expect(&cert, TAG_SEQUENCE, tbs)) != 0)
		return r;
	if (tbs->n > 0 && tbs->p[0] == TAG_VERSION) {
		struct slice version;
		if ((r = expect(tbs, TAG_VERSION, &version)) != 0)
			return r;
	}
	return 0;
}

/* Name ::= SEQUENCE OF SET OF AttributeTypeAndValue. */
static int walk_subject(struct slice name, der_name_cb cb, void *arg)
{
	while (name.n > 0) {
		struct slice rdn;
		int r = expect(&name, TAG_SET, &rdn);
		if (r != 0)
			return r;
		while (rdn.n > 0) {
			struct slice atv, oid, value;
			unsigned tag;
			if ((r = expect(&rdn, TAG_SEQUENCE, &atv)) != 0 || (r = expect(&atv, TAG_OID, &oid)) != 0 ||
			    (r = next_tlv(&atv, &tag, &value)) != 0)
				return r;
			if (oid_is(&oid, OID_CN, sizeof(OID_CN)) && is_string_tag(tag))
				cb(arg, DER_NAME_CN, (const char *)value.p, value.n);
		}
	}
	return 0;
}

/* GeneralNames ::= SEQUENCE OF GeneralName, inside the extension's OCTET STRING. */
static int walk_san(struct slice octets, der_name_cb cb, void *arg)
{
	struct slice names;
	int r = expect(&octets, TAG_SEQUENCE, &names);
	if (r != 0)
		return r;
	if (octets.n != 0)
		return E_INVAL;
	while (names.n > 0) {
		unsigned tag;
		struct slice gn;
		if ((r = next_tlv(&names, &tag, &gn)) != 0)
			return r;
		if (tag == TAG_DNSNAME)
			cb(arg, DER_NAME_DNS, (const char *)gn.p, gn.n);
	}
	return 0;
}

static int walk_extensions(struct slice exts, der_name_cb cb, void *arg)
{
	struct slice list;
	int r = expect(&exts, TAG_SEQUENCE, &list);
	if (r != 0)
		return r;
	while (list.n > 0) {
		struct slice ext, oid, value;
		unsigned tag;
		if ((r = expect(&list, TAG_SEQUENCE, &ext)) != 0 || (r = expect(&ext, TAG_OID, &oid)) != 0 ||
		    (r = next_tlv(&ext, &tag, &value)) != 0)
			return r;
		if (tag == TAG_BOOLEAN && (r = next_tlv(&ext, &tag, &value)) != 0)
			return r;
		if (tag != TAG_OCTET_STRING)
			return E_INVAL;
		if (oid_is(&oid, OID_SAN, sizeof(OID_SAN)) && (r = walk_san(value, cb, arg)) != 0)
			return r;
	}
	return 0;
}

int der_cert_names(const uint8_t *der, size_t len, der_name_cb cb, void *arg)
{
	struct slice tbs, serial, sigalg, issuer, validity, subject, spki;
	int r = open_tbs(der, len, &tbs);
	if (r != 0)
		return r;
	if ((r = expect(&tbs, TAG_INTEGER, &serial)) != 0 || (r = expect(&tbs, TAG_SEQUENCE, &sigalg)) != 0 ||
	    (r = expect(&tbs, TAG_SEQUENCE, &issuer)) != 0 || (r = expect(&tbs, TAG_SEQUENCE, &validity)) != 0 ||
	    (r = expect(&tbs, TAG_SEQUENCE, &subject)) != 0 || (r = expect(&tbs, TAG_SEQUENCE, &spki)) != 0)
		return r;
	if ((r = walk_subject(subject, cb, arg)) != 0)
		return r;
	/* issuerUniqueID [1], subjectUniqueID [2], extensions [3] */
	while (tbs.n > 0) {
		unsigned tag;
		struct slice v;
		if ((r = next_tlv(&tbs, &tag, &v)) != 0)
			return r;
		if (tag == TAG_EXTENSIONS)
			return walk_extensions(v, cb, arg);
	}
	return 0;
}

int der_cert_serial(const uint8_t *der, size_t len, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	struct slice tbs, serial;
	int r = open_tbs(der, len, &tbs);
	if (r != 0)
		return r;
	if ((r = expect(&tbs, TAG_INTEGER, &serial)) != 0)
		return r;
	if (serial.n == 0)
		return E_INVAL;
	while (serial.n > 1 && serial.p[0] == 0) {
		serial.p++;
		serial.n--;
	}
	if (cap == 0 || serial.n > (cap - 1) / 2)
		return E_LIMIT;
	for (size_t i = 0; i < serial.n; i++) {
		out[2 * i] = hex[serial.p[i] >> 4];
		out[2 * i + 1] = hex[serial.p[i] & 15];
	}
	out[2 * serial.n] = '\0';
	return 0;
}
