/* t-dns.c - tests of the DNS stub resolver (lib/dns.c).
 *
 * Parser tests use hand-built messages; every valid one is also parsed
 * truncated at every byte offset, from an exact-size heap copy and from
 * the end of a page followed by a PROT_NONE guard page.  The end-to-end
 * tests run a fake DNS server (a UDP socket on 127.0.0.1:<random> served
 * from the same loop) and point the resolver at it with dns_set_servers,
 * after loading a resolv.conf written to /tmp.  The only slow case is the
 * timeout (1 s, "options timeout:1 attempts:1").
 */
#include "dns.h"
#include "err.h"
#include "loop.h"
#include "service.h"
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define QNAME "www.example.com"
#define QID 0x1234

/* ---- message builder ---- */

struct mb {
	uint8_t b[2048];
	size_t n;
};

static void mb_u8(struct mb *m, unsigned v)
{
	if (m->n < sizeof(m->b))
		m->b[m->n++] = (uint8_t)v;
}

static void mb_u16(struct mb *m, unsigned v)
{
	mb_u8(m, (v >> 8) & 0xFF);
	mb_u8(m, v & 0xFF);
}

static void mb_u32(struct mb *m, unsigned long v)
{
	mb_u16(m, (unsigned)(v >> 16) & 0xFFFF);
	mb_u16(m, (unsigned)v & 0xFFFF);
}

/* Labels of a dotted name, without the terminating zero. */
static void mb_labels(struct mb *m, const char *name)
{
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t l = dot ? (size_t)(dot - name) : strlen(name);
		mb_u8(m, (unsigned)l);
		for (size_t i = 0; i < l; i++)
			mb_u8(m, (uint8_t)name[i]);
		name += l;
		if (*name == '.')
			name++;
	}
}

/* A full uncompressed name ("" is the root). */
static void mb_name(struct mb *m, const char *name)
{
	mb_labels(m, name);
	mb_u8(m, 0);
}

static void mb_ptr(struct mb *m, unsigned off)
{
	mb_u16(m, 0xC000 | off);
}

/* Header (QR, RD, RA, rcode) and the question (qname, type, class). */
static void mb_reply(struct mb *m, unsigned id, unsigned flags, unsigned an, const char *qname,
		     unsigned qtype)
{
	m->n = 0;
	mb_u16(m, id);
	mb_u16(m, flags);
	mb_u16(m, 1);
	mb_u16(m, an);
	mb_u16(m, 0);
	mb_u16(m, 0);
	mb_name(m, qname);
	mb_u16(m, qtype);
	mb_u16(m, 1);
}

#define F_OK_REPLY 0x8180 /* QR RD RA, NOERROR */

/* RR header after the owner name; returns the offset of RDLENGTH. */
static size_t mb_rr(struct mb *m, unsigned type)
{
	mb_u16(m, type);
	mb_u16(m, 1);
	mb_u32(m, 300);
	size_t at = m->n;
	mb_u16(m, 0);
	return at;
}

static void mb_rdlen(struct mb *m, size_t at)
{
	size_t l = m->n - at - 2;
	m->b[at] = (uint8_t)(l >> 8);
	m->b[at + 1] = (uint8_t)l;
}

/* Answer "owner CNAME target" with both names written in full. */
static void mb_cname(struct mb *m, const char *owner, const char *target)
{
	mb_name(m, owner);
	size_t at = mb_rr(m, 5);
	mb_name(m, target);
	mb_rdlen(m, at);
}

/* ---- input placement helpers ---- */

static uint8_t *exact_copy(const uint8_t *s, size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	if (!p)
		abort();
	if (n)
		memcpy(p, s, n);
	return p;
}

struct guarded {
	void *map;
	size_t map_len;
	uint8_t *p;
};

/* Copy s to the end of a mapping whose next page is PROT_NONE (/dev/zero,
 * not MAP_ANONYMOUS, to stay within POSIX). */
static int guard_copy(struct guarded *g, const uint8_t *s, size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t data_pages = (n + page - 1) / page;
	if (data_pages == 0)
		data_pages = 1;
	g->map_len = (data_pages + 1) * page;
	int fd = open("/dev/zero", O_RDWR);
	if (fd < 0)
		return -1;
	g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	if (g->map == MAP_FAILED)
		return -1;
	uint8_t *guard = (uint8_t *)g->map + data_pages * page;
	if (mprotect(guard, page, PROT_NONE) != 0) {
		munmap(g->map, g->map_len);
		return -1;
	}
	g->p = guard - n;
	if (n)
		memcpy(g->p, s, n);
	return 0;
}

/* Parse m from an exact-size copy and from a guarded copy; both must give
 * the same result.  Returns the status, the name in out. */
static int parse(const struct mb *m, size_t len, uint16_t id, const char *qname, char *out, size_t cap)
{
	uint8_t *c = exact_copy(m->b, len);
	int rc = dns_parse_response(c, len, id, qname, out, cap);
	free(c);
	struct guarded g;
	if (guard_copy(&g, m->b, len) == 0) {
		char out2[DNS_NAME_BUFSZ];
		int rc2 = dns_parse_response(g.p, len, id, qname, out2, cap < sizeof(out2) ? cap : sizeof(out2));
		CHECK_EQ(rc2, rc);
		if (rc == 0)
			CHECK_STR(out2, out);
		munmap(g.map, g.map_len);
	}
	return rc;
}

/* Parse m whole (expecting want/want_name) and at every shorter length
 * (expecting a clean failure). */
static void parse_expect(const struct mb *m, uint16_t id, const char *qname, int want, const char *want_name)
{
	char out[DNS_NAME_BUFSZ];
	int rc = parse(m, m->n, id, qname, out, sizeof(out));
	CHECK_EQ(rc, want);
	if (want == 0)
		CHECK_STR(out, want_name);
	else
		CHECK_STR(out, "");
	if (want != 0)
		return;
	for (size_t k = 0; k < m->n; k++) {
		rc = parse(m, k, id, qname, out, sizeof(out));
		if (rc == 0)
			printf("#   truncated at %zu of %zu parsed\n", k, m->n);
		CHECK(rc == E_AGAIN || rc == E_INVAL);
		CHECK_STR(out, "");
	}
}

/* ---- parser tests ---- */

TEST(test_parse_valid_cname)
{
	struct mb m;
	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
	mb_cname(&m, QNAME, "Tun1.Example.NET");
	parse_expect(&m, QID, QNAME, 0, "tun1.example.net");
	/* the query name may have a trailing dot or other case */
	parse_expect(&m, QID, "WWW.Example.com.", 0, "tun1.example.net");
	/* a trailing dot in the target is just the root label */
	mb_reply(&m, QID, F_OK_REPLY, 1, "wWw.eXample.COM", 5);
	mb_cname(&m, QNAME, "a-b_c.x9");
	parse_expect(&m, QID, QNAME, 0, "a-b_c.x9");
}

TEST(test_parse_compressed)
{
	struct mb m;
	/* owner -> question; target "tun1.example" + pointer to "com" */
	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
	mb_ptr(&m, 12);
	size_t at = mb_rr(&m, 5);
	mb_labels(&m, "tun1.example");
	mb_ptr(&m, 12 + 4 + 8); /* "com" in the question */
	mb_rdlen(&m, at);
	parse_expect(&m, QID, QNAME, 0, "tun1.example.com");

	/* target is a pointer to a pointer (owner of record 1 -> question) */
	mb_reply(&m, QID, F_OK_REPLY, 2, QNAME, 5);
	size_t own1 = m.n;
	mb_labels(&m, "x");
	mb_ptr(&m, 12 + 4); /* x.example.com */
	at = mb_rr(&m, 1);
	mb_u32(&m, 0x7f000001);
	mb_rdlen(&m, at);
	mb_ptr(&m, 12);
	at = mb_rr(&m, 5);
	mb_ptr(&m, (unsigned)own1);
	mb_rdlen(&m, at);
	parse_expect(&m, QID, QNAME, 0, "x.example.com");
}

TEST(test_parse_pointer_loops)
{
	struct mb m;
	char out[DNS_NAME_BUFSZ];

	/* owner name is a pointer to itself */
	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
	mb_ptr(&m, (unsigned)m.n);
	mb_rr(&m, 5);
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_INVAL);

	/* target: label "a" then a pointer back to that label, forever */
	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
	mb_ptr(&m, 12);
	size_t at = mb_rr(&m, 5);
	size_t loop_at = m.n;
	mb_labels(&m, "a");
	mb_ptr(&m, (unsigned)loop_at);
	mb_rdlen(&m, at);
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_INVAL);

	/* two pointers pointing at each other (one forward) */
	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
	mb_ptr(&m, 12);
	at = mb_rr(&m, 5);
	size_t p1 = m.n;
	mb_ptr(&m, (unsigned)p1 + 2);
	mb_ptr(&m, (unsigned)p1);
	mb_rdlen(&m, at);
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_INVAL);
}

TEST(test_parse_pointer_chain_limit)
{
	struct mb m;
	char out[DNS_NAME_BUFSZ];
	size_t at, prev;

	/* n pointers, each pointing at the previous one, the first at the
	 * question: the record's target is the last pointer.  The earlier
	 * pointers sit in the RDATA of a dummy TXT-like record (type 99). */
	for (int n = DNS_MAX_POINTERS - 1; n <= DNS_MAX_POINTERS + 1; n++) {
		mb_reply(&m, QID, F_OK_REPLY, 2, QNAME, 5);
		mb_labels(&m, "other");
		mb_u8(&m, 0);
		at = mb_rr(&m, 99);
		prev = 12;
		for (int i = 0; i < n - 1; i++) {
			size_t here = m.n;
			mb_ptr(&m, (unsigned)prev);
			prev = here;
		}
		mb_rdlen(&m, at);
		mb_ptr(&m, 12);
		at = mb_rr(&m, 5);
		mb_ptr(&m, (unsigned)prev);
		mb_rdlen(&m, at);
		int rc = parse(&m, m.n, QID, QNAME, out, sizeof(out));
		if (n <= DNS_MAX_POINTERS) {
			CHECK_EQ(rc, 0);
			CHECK_STR(out, QNAME);
		} else {
			CHECK_EQ(rc, E_INVAL);
		}
	}
}

TEST(test_parse_bad_pointers)
{
	struct mb m;
	char out[DNS_NAME_BUFSZ];
	size_t at;

	/* beyond the message */
	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
	mb_ptr(&m, 12);
	at = mb_rr(&m, 5);
	mb_ptr(&m, 0x3FFF);
	mb_rdlen(&m, at);
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_INVAL);

	/* into the header */
	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
	mb_ptr(&m, 12);
	at = mb_rr(&m, 5);
	mb_ptr(&m, 4);
	mb_rdlen(&m, at);
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_INVAL);

	/* forward, to a valid name later in the message */
	mb_reply(&m, QID, F_OK_REPLY, 2, QNAME, 5);
	mb_ptr(&m, 12);
	at = mb_rr(&m, 5);
	mb_ptr(&m, (unsigned)m.n + 2 + 12);
	mb_rdlen(&m, at);
	mb_cname(&m, "a.b", "c.d");
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_INVAL);

	/* the question itself compressed forward: not ours */
	m.n = 0;
	mb_u16(&m, QID);
	mb_u16(&m, F_OK_REPLY);
	mb_u16(&m, 1);
	mb_u16(&m, 0);
	mb_u16(&m, 0);
	mb_u16(&m, 0);
	mb_ptr(&m, 18);
	mb_u16(&m, 5);
	mb_u16(&m, 1);
	mb_name(&m, QNAME);
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_AGAIN);

	/* half a pointer at the end of RDATA */
	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
	mb_ptr(&m, 12);
	at = mb_rr(&m, 5);
	mb_labels(&m, "a");
	mb_u8(&m, 0xC0);
	mb_rdlen(&m, at);
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_INVAL);
}

static void make_label(char *buf, size_t n, char c)
{
	memset(buf, c, n);
	buf[n] = '\0';
}

TEST(test_parse_label_limits)
{
	struct mb m;
	char out[DNS_NAME_BUFSZ], l63[64], name[300];
	size_t at;

	/* 63-octet label: fine */
	make_label(l63, 63, 'a');
	snprintf(name, sizeof(name), "%s.example.net", l63);
	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
	mb_cname(&m, QNAME, name);
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), 0);
	CHECK_STR(out, name);

	/* length octets 0x40 and 0x80 (label > 63 / reserved types) */
	for (unsigned lenbyte = 0x40; lenbyte <= 0x80; lenbyte += 0x40) {
		mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
		mb_ptr(&m, 12);
		at = mb_rr(&m, 5);
		mb_u8(&m, lenbyte);
		for (unsigned i = 0; i < (lenbyte & 0x3F ? lenbyte & 0x3F : 64); i++)
			mb_u8(&m, 'a');
		mb_u8(&m, 0);
		mb_rdlen(&m, at);
		CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_INVAL);
	}

	/* a query name with a 64-octet label is rejected before any I/O */
	char l64[65];
	make_label(l64, 64, 'b');
	snprintf(name, sizeof(name), "%s.example.net", l64);
	uint8_t q[600];
	CHECK_EQ(dns_build_query(1, name, q, sizeof(q)), E_INVAL);
	CHECK_EQ(dns_parse_response(m.b, m.n, QID, name, out, sizeof(out)), E_INVAL);
}

TEST(test_parse_name_length)
{
	struct mb m;
	char out[DNS_NAME_BUFSZ], l63[64], l61[62], l62[63], name[320];
	uint8_t q[600];

	make_label(l63, 63, 'x');
	make_label(l61, 61, 'y');
	make_label(l62, 62, 'y');
	/* 3*64 + 62 + 1 = 255 octets: the longest name, 253 characters */
	snprintf(name, sizeof(name), "%s.%s.%s.%s", l63, l63, l63, l61);
	CHECK_EQ(strlen(name), 253);
	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
	mb_cname(&m, QNAME, name);
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), 0);
	CHECK_STR(out, name);
	CHECK(dns_build_query(1, name, q, sizeof(q)) > 0);
	/* ...with one octet too little room for it */
	CHECK_EQ(dns_parse_response(m.b, m.n, QID, QNAME, out, 253), E_LIMIT);
	CHECK_STR(out, "");
	CHECK_EQ(dns_parse_response(m.b, m.n, QID, QNAME, out, 254), 0);

	/* 256 octets */
	snprintf(name, sizeof(name), "%s.%s.%s.%s", l63, l63, l63, l62);
	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
	mb_cname(&m, QNAME, name);
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_INVAL);
	CHECK_EQ(dns_build_query(1, name, q, sizeof(q)), E_INVAL);

	/* 5 labels of 63: 321 octets */
	snprintf(name, sizeof(name), "%s.%s.%s.%s.%s", l63, l63, l63, l63, l63);
	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
	mb_cname(&m, QNAME, name);
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_INVAL);

	/* > 255 through compression: 3 x 63 in one record, then a pointer
	 * to it after two more 63-octet labels */
	mb_reply(&m, QID, F_OK_REPLY, 2, QNAME, 5);
	size_t long_at = m.n;
	snprintf(name, sizeof(name), "%s.%s.%s", l63, l63, l63);
	mb_name(&m, name);
	size_t at = mb_rr(&m, 1);
	mb_u32(&m, 1);
	mb_rdlen(&m, at);
	mb_ptr(&m, 12);
	at = mb_rr(&m, 5);
	snprintf(name, sizeof(name), "%s", l63);
	mb_labels(&m, name);
	mb_ptr(&m, (unsigned)long_at);
	mb_rdlen(&m, at);
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_INVAL);
}

TEST(test_parse_not_ours)
{
	struct mb m;
	char out[DNS_NAME_BUFSZ];

	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
	mb_cname(&m, QNAME, "t.example.net");
	CHECK_EQ(parse(&m, m.n, QID ^ 1, QNAME, out, sizeof(out)), E_AGAIN);     /* wrong id */
	CHECK_EQ(parse(&m, m.n, QID, "www.example.org", out, sizeof(out)), E_AGAIN); /* other question */
	CHECK_EQ(parse(&m, m.n, QID, "ww.example.com", out, sizeof(out)), E_AGAIN);
	CHECK_EQ(parse(&m, 11, QID, QNAME, out, sizeof(out)), E_AGAIN);          /* short header */
	m.b[2] &= 0x7F; /* a query, not a response */
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_AGAIN);
	m.b[2] |= 0x80 | (2 << 3); /* opcode STATUS */
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_AGAIN);

	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 1); /* question type A */
	mb_cname(&m, QNAME, "t.example.net");
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_AGAIN);

	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
	mb_cname(&m, QNAME, "t.example.net");
	m.b[5] = 0; /* QDCOUNT 0 */
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_AGAIN);
	m.b[5] = 2; /* QDCOUNT 2 */
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_AGAIN);

	/* invalid query names */
	CHECK_EQ(dns_parse_response(m.b, m.n, QID, "", out, sizeof(out)), E_INVAL);
	CHECK_EQ(dns_parse_response(m.b, m.n, QID, "a..b", out, sizeof(out)), E_INVAL);
	CHECK_EQ(dns_parse_response(m.b, m.n, QID, "a b.c", out, sizeof(out)), E_INVAL);
	CHECK_EQ(dns_parse_response(m.b, m.n, QID, QNAME, out, 0), E_LIMIT);
}

TEST(test_parse_rcodes)
{
	struct mb m;

	mb_reply(&m, QID, 0x8183, 0, QNAME, 5); /* NXDOMAIN */
	parse_expect(&m, QID, QNAME, E_NOTFOUND, NULL);
	mb_reply(&m, QID, 0x8183, 1, QNAME, 5); /* NXDOMAIN wins over answers */
	mb_cname(&m, QNAME, "t.example.net");
	parse_expect(&m, QID, QNAME, E_NOTFOUND, NULL);
	mb_reply(&m, QID, F_OK_REPLY, 0, QNAME, 5); /* NODATA */
	parse_expect(&m, QID, QNAME, E_NOTFOUND, NULL);
	mb_reply(&m, QID, 0x8182, 0, QNAME, 5); /* SERVFAIL */
	parse_expect(&m, QID, QNAME, E_IO, NULL);
	mb_reply(&m, QID, 0x8185, 0, QNAME, 5); /* REFUSED */
	parse_expect(&m, QID, QNAME, E_IO, NULL);
	mb_reply(&m, QID, 0x8380, 1, QNAME, 5); /* TC */
	mb_cname(&m, QNAME, "t.example.net");
	parse_expect(&m, QID, QNAME, E_LIMIT, NULL);
}

TEST(test_parse_other_names)
{
	struct mb m;

	/* only a CNAME for another name */
	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
	mb_cname(&m, "other.example.com", "t.example.net");
	parse_expect(&m, QID, QNAME, E_NOTFOUND, NULL);

	/* another type for qname */
	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
	mb_ptr(&m, 12);
	size_t at = mb_rr(&m, 1);
	mb_u32(&m, 0x01020304);
	mb_rdlen(&m, at);
	parse_expect(&m, QID, QNAME, E_NOTFOUND, NULL);

	/* CNAME of class CH */
	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
	mb_ptr(&m, 12);
	mb_u16(&m, 5);
	mb_u16(&m, 3);
	mb_u32(&m, 1);
	at = m.n;
	mb_u16(&m, 0);
	mb_name(&m, "t.example.net");
	mb_rdlen(&m, at);
	parse_expect(&m, QID, QNAME, E_NOTFOUND, NULL);
}

TEST(test_parse_multiple_answers)
{
	struct mb m;

	/* a chain: www -> a -> b, then an A record: the head wins */
	mb_reply(&m, QID, F_OK_REPLY, 3, QNAME, 5);
	mb_cname(&m, QNAME, "a.example.net");
	mb_cname(&m, "a.example.net", "b.example.net");
	mb_name(&m, "b.example.net");
	size_t at = mb_rr(&m, 1);
	mb_u32(&m, 0x01020304);
	mb_rdlen(&m, at);
	parse_expect(&m, QID, QNAME, 0, "a.example.net");

	/* the same chain listed backwards */
	mb_reply(&m, QID, F_OK_REPLY, 2, QNAME, 5);
	mb_cname(&m, "a.example.net", "b.example.net");
	mb_cname(&m, QNAME, "a.example.net");
	parse_expect(&m, QID, QNAME, 0, "a.example.net");

	/* two CNAMEs for qname (invalid, but seen): the first */
	mb_reply(&m, QID, F_OK_REPLY, 2, QNAME, 5);
	mb_cname(&m, QNAME, "first.example.net");
	mb_cname(&m, QNAME, "second.example.net");
	parse_expect(&m, QID, QNAME, 0, "first.example.net");

	/* a malformed record after the CNAME fails the whole reply */
	mb_reply(&m, QID, F_OK_REPLY, 2, QNAME, 5);
	mb_cname(&m, QNAME, "first.example.net");
	mb_ptr(&m, 12);
	mb_u16(&m, 1);
	mb_u16(&m, 1);
	mb_u32(&m, 1);
	mb_u16(&m, 100); /* RDLENGTH past the end */
	mb_u32(&m, 1);
	char out[DNS_NAME_BUFSZ];
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_INVAL);
	CHECK_STR(out, "");

	/* ANCOUNT larger than the records present */
	mb_reply(&m, QID, F_OK_REPLY, 3, QNAME, 5);
	mb_cname(&m, QNAME, "first.example.net");
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_INVAL);

	/* trailing garbage after the counted records is ignored */
	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
	mb_cname(&m, QNAME, "first.example.net");
	mb_u32(&m, 0xFFFFFFFF);
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), 0);
}

TEST(test_parse_bad_target)
{
	struct mb m;
	char out[DNS_NAME_BUFSZ];
	size_t at;
	static const char *bad[] = { "a.b\\.c", "a b.c", "a\001.c", "\303\251.c" };

	/* a dot inside a label must not turn into a separator */
	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
	mb_ptr(&m, 12);
	at = mb_rr(&m, 5);
	mb_u8(&m, 3);
	mb_u8(&m, 'a');
	mb_u8(&m, '.');
	mb_u8(&m, 'b');
	mb_name(&m, "example.net");
	mb_rdlen(&m, at);
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_INVAL);
	CHECK_STR(out, "");

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
		mb_cname(&m, QNAME, bad[i]);
		CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_INVAL);
	}

	/* root as target */
	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
	mb_cname(&m, QNAME, "");
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_INVAL);

	/* RDATA longer than the name in it */
	mb_reply(&m, QID, F_OK_REPLY, 1, QNAME, 5);
	mb_ptr(&m, 12);
	at = mb_rr(&m, 5);
	mb_name(&m, "t.example.net");
	mb_u8(&m, 0);
	mb_rdlen(&m, at);
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_INVAL);

	/* name running past RDATA into the next record */
	mb_reply(&m, QID, F_OK_REPLY, 2, QNAME, 5);
	mb_ptr(&m, 12);
	at = mb_rr(&m, 5);
	mb_labels(&m, "t");
	mb_rdlen(&m, at);
	mb_cname(&m, "a.b", "c.d");
	CHECK_EQ(parse(&m, m.n, QID, QNAME, out, sizeof(out)), E_INVAL);
}

TEST(test_build_query)
{
	uint8_t q[512];
	static const uint8_t want[] = {
		0xAB, 0xCD, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
		3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0,
		0, 5, 0, 1,
	};
	CHECK_EQ(dns_build_query(0xABCD, "WWW.Example.COM.", q, sizeof(q)), sizeof(want));
	CHECK_MEM(q, want, sizeof(want));
	CHECK_EQ(dns_build_query(0xABCD, QNAME, q, sizeof(want) - 1), E_LIMIT);
	CHECK_EQ(dns_build_query(1, ".", q, sizeof(q)), E_INVAL);
	CHECK_EQ(dns_build_query(1, ".a", q, sizeof(q)), E_INVAL);
	CHECK_EQ(dns_build_query(1, "a..", q, sizeof(q)), E_INVAL);
	CHECK_EQ(dns_build_query(1, "a/b", q, sizeof(q)), E_INVAL);
	CHECK(dns_build_query(1, "localhost", q, sizeof(q)) > 0);
}

/* ---- resolv.conf ---- */

static int port_of(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
}

TEST(test_config_parse)
{
	struct dns_config c;
	static const char text[] =
		"# comment\n"
		"; nameserver 9.9.9.9\n"
		"search example.com\n"
		"nameserver 192.0.2.1 # trailing\n"
		"  nameserver\t2001:db8::53\r\n"
		"nameserver not-an-address\n"
		"nameserver\n"
		"nameserverx 192.0.2.9\n"
		"options ndots:2 timeout:7 rotate attempts:3\n"
		"nameserver 192.0.2.3\n"
		"nameserver 192.0.2.4\n"
		"options attempts:x";
	dns_config_parse(text, sizeof(text) - 1, &c);
	CHECK_EQ(c.nservers, 3);
	CHECK_EQ(c.servers[0].ss_family, AF_INET);
	CHECK_EQ(c.servers[1].ss_family, AF_INET6);
	CHECK_EQ(c.servers[2].ss_family, AF_INET);
	CHECK_EQ(c.server_len[0], sizeof(struct sockaddr_in));
	CHECK_EQ(c.server_len[1], sizeof(struct sockaddr_in6));
	CHECK_EQ(port_of(&c.servers[0]), 53);
	CHECK_EQ(port_of(&c.servers[1]), 53);
	CHECK_EQ(ntohl(((struct sockaddr_in *)&c.servers[2])->sin_addr.s_addr), 0xC0000203);
	CHECK_EQ(c.timeout_ms, 7000);
	CHECK_EQ(c.attempts, 3);

	/* defaults */
	dns_config_parse("", 0, &c);
	CHECK_EQ(c.nservers, 1);
	CHECK_EQ(c.servers[0].ss_family, AF_INET);
	CHECK_EQ(ntohl(((struct sockaddr_in *)&c.servers[0])->sin_addr.s_addr), 0x7F000001);
	CHECK_EQ(port_of(&c.servers[0]), 53);
	CHECK_EQ(c.timeout_ms, DNS_TIMEOUT_DEFAULT_S * 1000);
	CHECK_EQ(c.attempts, DNS_ATTEMPTS_DEFAULT);

	/* bounds */
	static const char big[] = "options timeout:99999999999999 attempts:1000\n";
	dns_config_parse(big, sizeof(big) - 1, &c);
	CHECK_EQ(c.timeout_ms, DNS_TIMEOUT_MAX_S * 1000);
	CHECK_EQ(c.attempts, DNS_ATTEMPTS_MAX);
	static const char zero[] = "options timeout:0 attempts:0\n";
	dns_config_parse(zero, sizeof(zero) - 1, &c);
	CHECK_EQ(c.timeout_ms, DNS_TIMEOUT_MIN_S * 1000);
	CHECK_EQ(c.attempts, DNS_ATTEMPTS_MIN);

	/* not NUL-terminated: the length is honoured */
	char nt[] = { 'n', 'a', 'm', 'e', 's', 'e', 'r', 'v', 'e', 'r', ' ', '1', '.', '2', '.', '3', '.', '4', '5' };
	dns_config_parse(nt, sizeof(nt) - 1, &c);
	CHECK_EQ(c.nservers, 1);
	CHECK_EQ(ntohl(((struct sockaddr_in *)&c.servers[0])->sin_addr.s_addr), 0x01020304);
}

/* ---- end to end with a fake server ---- */

struct fake {
	struct loop *loop;
	int fd;          /* the server */
	int spoof_fd;    /* sends from another port */
	struct sockaddr_storage addr;
	int queries;
};

/* Query name in text form from a query we built (uncompressed). */
static int query_name(const uint8_t *q, size_t n, char *out, size_t cap, size_t *qend)
{
	size_t pos = 12, o = 0;
	while (pos < n && q[pos] != 0) {
		size_t l = q[pos++];
		if (pos + l > n || o + l + 2 > cap)
			return -1;
		if (o)
			out[o++] = '.';
		memcpy(out + o, q + pos, l);
		o += l;
		pos += l;
	}
	if (pos + 5 > n)
		return -1;
	out[o] = '\0';
	*qend = pos + 5;
	return 0;
}

/* A reply echoing the query's question, with rcode/flags and optionally a
 * CNAME answer (owner compressed to the question). */
static size_t fake_reply(uint8_t *out, const uint8_t *q, size_t qend, unsigned id, unsigned flags,
			 const char *target)
{
	struct mb m;
	m.n = 0;
	mb_u16(&m, id);
	mb_u16(&m, flags);
	mb_u16(&m, 1);
	mb_u16(&m, target ? 1 : 0);
	mb_u16(&m, 0);
	mb_u16(&m, 0);
	for (size_t i = 12; i < qend; i++)
		mb_u8(&m, q[i]);
	if (target) {
		mb_ptr(&m, 12);
		size_t at = mb_rr(&m, 5);
		mb_name(&m, target);
		mb_rdlen(&m, at);
	}
	memcpy(out, m.b, m.n);
	return m.n;
}

static void fake_readable(struct loop *loop, int fd, int events, void *arg)
{
	struct fake *f = arg;
	uint8_t q[512], r[2048];
	struct sockaddr_storage from;
	socklen_t fromlen = sizeof(from);
	ssize_t n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fromlen);
	char name[256];
	size_t qend, rl;

	if (n < 12 || query_name(q, (size_t)n, name, sizeof(name), &qend) != 0)
		return;
	f->queries++;
	unsigned id = (unsigned)(q[0] << 8 | q[1]);
	if (strcmp(name, "ok.example.com") == 0 || strcmp(name, "ok2.example.com") == 0) {
		rl = fake_reply(r, q, qend, id, F_OK_REPLY, "Tun1.Example.NET.");
	} else if (strcmp(name, "nx.example.com") == 0) {
		rl = fake_reply(r, q, qend, id, 0x8183, NULL);
	} else if (strcmp(name, "nodata.example.com") == 0) {
		rl = fake_reply(r, q, qend, id, F_OK_REPLY, NULL);
	} else if (strcmp(name, "servfail.example.com") == 0) {
		rl = fake_reply(r, q, qend, id, 0x8182, NULL);
	} else if (strcmp(name, "tc.example.com") == 0) {
		rl = fake_reply(r, q, qend, id, 0x8380, "t.example.net");
	} else if (strcmp(name, "spoof.example.com") == 0) {
		/* wrong ID from the right address, right ID from the wrong
		 * address, garbage; then the real answer */
		rl = fake_reply(r, q, qend, id ^ 0x5555, F_OK_REPLY, "evil1.example.net");
		(void)sendto(fd, r, rl, 0, (struct sockaddr *)&from, fromlen);
		rl = fake_reply(r, q, qend, id, F_OK_REPLY, "evil2.example.net");
		(void)sendto(f->spoof_fd, r, rl, 0, (struct sockaddr *)&from, fromlen);
		(void)sendto(fd, "x", 1, 0, (struct sockaddr *)&from, fromlen);
		rl = fake_reply(r, q, qend, id, F_OK_REPLY, "good.example.net");
	} else {
		return; /* silent.example.com: never answers */
	}
	(void)sendto(fd, r, rl, 0, (struct sockaddr *)&from, fromlen);
}

static int udp_bound(struct sockaddr_storage *addr)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)addr;
	socklen_t len = sizeof(*addr);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		return -1;
	memset(addr, 0, sizeof(*addr));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)sin, sizeof(*sin)) != 0 ||
	    getsockname(fd, (struct sockaddr *)addr, &len) != 0) {
		close(fd);
		return -1;
	}
	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

static int fake_start(struct fake *f, struct loop *loop)
{
	struct sockaddr_storage other;
	memset(f, 0, sizeof(*f));
	f->loop = loop;
	f->fd = udp_bound(&f->addr);
	f->spoof_fd = udp_bound(&other);
	if (f->fd < 0 || f->spoof_fd < 0)
		return -1;
	return loop_add(loop, f->fd, LOOP_READ, fake_readable, f);
}

static void fake_stop(struct fake *f)
{
	loop_del(f->loop, f->fd);
	close(f->fd);
	close(f->spoof_fd);
}

/* resolv.conf in /tmp; returns 0 and fills path. */
static int write_conf(char *path, size_t cap, const char *text)
{
	snprintf(path, cap, "/tmp/exposrd-t-dns-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	size_t len = strlen(text);
	int ok = write(fd, text, len) == (ssize_t)len;
	close(fd);
	return ok ? 0 : -1;
}

struct result {
	int done;
	int status;
	char cname[DNS_NAME_BUFSZ];
	int ok; /* check mode */
};

static int outstanding;
static int in_call; /* set while inside dns_query_cname / dns_cname_check */
static int called_inside;

static void on_cname(void *arg, int status, const char *cname)
{
	struct result *r = arg;
	if (in_call)
		called_inside = 1;
	r->done++;
	r->status = status;
	snprintf(r->cname, sizeof(r->cname), "%s", cname ? cname : "(null)");
	outstanding--;
}

static void on_check(void *arg, int ok)
{
	struct result *r = arg;
	if (in_call)
		called_inside = 1;
	r->done++;
	r->ok = ok;
	outstanding--;
}

static void poll_done(struct loop *loop, void *arg);

static void poll_done(struct loop *loop, void *arg)
{
	int *guard = arg;
	if (outstanding == 0 || --*guard <= 0) {
		loop_stop(loop);
		return;
	}
	if (!loop_timer_add(loop, 10, poll_done, arg))
		loop_stop(loop);
}

/* Run the loop until no callback is outstanding (or max_ms). */
static void run_until_done(struct loop *loop, int max_ms)
{
	int guard = max_ms / 10;
	if (loop_timer_add(loop, 0, poll_done, &guard))
		(void)loop_run(loop);
}

static int query(struct dns *d, const char *name, struct result *r)
{
	memset(r, 0, sizeof(*r));
	in_call = 1;
	int rc = dns_query_cname(d, name, on_cname, r);
	in_call = 0;
	if (rc == 0)
		outstanding++;
	return rc;
}

static void check(struct dns *d, const char *name, const char *target, struct result *r)
{
	memset(r, 0, sizeof(*r));
	r->ok = -1;
	outstanding++;
	in_call = 1;
	dns_cname_check(d, name, target, on_check, r);
	in_call = 0;
}

TEST(test_resolver_end_to_end)
{
	struct loop *loop = loop_new();
	struct fake f;
	char path[64];
	struct result ok, ok_dot, nx, nodata, servfail, tc, spoof, silent;
	struct result c_yes, c_yes2, c_no, c_nx, c_bad, c_badtarget;

	CHECK(loop != NULL);
	CHECK_EQ(fake_start(&f, loop), 0);
	CHECK_EQ(write_conf(path, sizeof(path), "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"), 0);
	struct dns *d = dns_new(loop, path);
	unlink(path);
	CHECK(d != NULL);
	/* dns_cname_check is what the service calls */
	struct service_cname_checker checker = { dns_cname_check, d };
	CHECK(checker.arg == d);
	const struct dns_config *cfg = dns_get_config(d);
	CHECK_EQ(cfg->nservers, 1);
	CHECK_EQ(cfg->timeout_ms, 1000);
	CHECK_EQ(cfg->attempts, 1);
	CHECK_EQ(port_of(&cfg->servers[0]), 53);
	CHECK_EQ(dns_set_servers(d, &f.addr, 1), 0);
	CHECK_EQ(port_of(&cfg->servers[0]), port_of(&f.addr));

	outstanding = 0;
	called_inside = 0;
	CHECK_EQ(query(d, "ok.example.com", &ok), 0);
	CHECK_EQ(query(d, "OK.Example.Com.", &ok_dot), 0);
	CHECK_EQ(query(d, "nx.example.com", &nx), 0);
	CHECK_EQ(query(d, "nodata.example.com", &nodata), 0);
	CHECK_EQ(query(d, "servfail.example.com", &servfail), 0);
	CHECK_EQ(query(d, "tc.example.com", &tc), 0);
	CHECK_EQ(query(d, "spoof.example.com", &spoof), 0);
	CHECK_EQ(query(d, "silent.example.com", &silent), 0);
	check(d, "ok2.example.com", "tun1.example.net", &c_yes);
	check(d, "ok2.example.com", "TUN1.example.NET.", &c_yes2);
	check(d, "ok2.example.com", "tun2.example.net", &c_no);
	check(d, "nx.example.com", "tun1.example.net", &c_nx);
	check(d, "bad..name", "tun1.example.net", &c_bad);
	check(d, "ok2.example.com", "", &c_badtarget);
	/* invalid names fail at once, without a callback */
	struct result inv;
	CHECK_EQ(query(d, "", &inv), E_INVAL);
	CHECK_EQ(query(d, "a..b", &inv), E_INVAL);
	CHECK_EQ(query(d, "a b", &inv), E_INVAL);
	CHECK_EQ(ok.done + nx.done + c_yes.done + c_bad.done, 0);

	uint64_t t0 = loop_mono_us();
	run_until_done(loop, 2500);
	uint64_t took_ms = (loop_mono_us() - t0) / 1000;
	CHECK_EQ(outstanding, 0);
	CHECK_EQ(called_inside, 0);
	CHECK(took_ms >= 900 && took_ms < 2500);

	CHECK_EQ(ok.done, 1);
	CHECK_EQ(ok.status, 0);
	CHECK_STR(ok.cname, "tun1.example.net");
	CHECK_EQ(ok_dot.status, 0);
	CHECK_STR(ok_dot.cname, "tun1.example.net");
	CHECK_EQ(nx.done, 1);
	CHECK_EQ(nx.status, E_NOTFOUND);
	CHECK_STR(nx.cname, "(null)");
	CHECK_EQ(nodata.status, E_NOTFOUND);
	CHECK_EQ(servfail.status, E_IO);
	CHECK_EQ(tc.status, E_LIMIT);
	CHECK_EQ(spoof.done, 1);
	CHECK_EQ(spoof.status, 0);
	CHECK_STR(spoof.cname, "good.example.net");
	CHECK_EQ(silent.done, 1);
	CHECK_EQ(silent.status, E_TIMEOUT);
	CHECK_EQ(c_yes.done, 1);
	CHECK_EQ(c_yes.ok, 1);
	CHECK_EQ(c_yes2.ok, 1);
	CHECK_EQ(c_no.ok, 0);
	CHECK_EQ(c_nx.ok, 0);
	CHECK_EQ(c_bad.done, 1);
	CHECK_EQ(c_bad.ok, 0);
	CHECK_EQ(c_badtarget.ok, 0);
	/* one try per query with attempts:1 and one server */
	CHECK_EQ(f.queries, 12);

	dns_free(d);
	fake_stop(&f);
	loop_free(loop);
}

TEST(test_resolver_failover)
{
	struct loop *loop = loop_new();
	struct fake f;
	struct sockaddr_storage servers[2];
	struct result r[4];

	CHECK_EQ(fake_start(&f, loop), 0);
	/* a port nobody listens on: ICMP port unreachable -> next server */
	int closed = udp_bound(&servers[0]);
	CHECK(closed >= 0);
	close(closed);
	servers[1] = f.addr;
	/* defaults without a file */
	struct dns *d = dns_new(loop, "/nonexistent/resolv.conf");
	CHECK(d != NULL);
	CHECK_EQ(dns_get_config(d)->nservers, 1);
	CHECK_EQ(dns_get_config(d)->timeout_ms, DNS_TIMEOUT_DEFAULT_S * 1000);
	CHECK_EQ(dns_get_config(d)->attempts, DNS_ATTEMPTS_DEFAULT);
	dns_free(d);
	/* 1 attempt x 2 servers; should the ICMP error not arrive, the
	 * 1 s timeout moves on instead */
	char path[64];
	CHECK_EQ(write_conf(path, sizeof(path), "options timeout:1 attempts:1\n"), 0);
	d = dns_new(loop, path);
	unlink(path);
	CHECK(d != NULL);
	CHECK_EQ(dns_set_servers(d, servers, 2), 0);
	CHECK_EQ(dns_set_servers(d, servers, 0), E_INVAL);
	CHECK_EQ(dns_set_servers(d, servers, DNS_MAX_SERVERS + 1), E_INVAL);

	outstanding = 0;
	for (int i = 0; i < 4; i++)
		CHECK_EQ(query(d, "ok.example.com", &r[i]), 0);
	run_until_done(loop, 1800);
	CHECK_EQ(outstanding, 0);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(r[i].status, 0);
		CHECK_STR(r[i].cname, "tun1.example.net");
	}
	CHECK_EQ(f.queries, 4);
	dns_free(d);
	fake_stop(&f);
	loop_free(loop);
}

static struct dns *free_me;

static void on_cname_free(void *arg, int status, const char *cname)
{
	struct result *r = arg;
	r->done++;
	r->status = status;
	outstanding--;
	dns_free(free_me); /* with another query still in flight */
	free_me = NULL;
}

static void stop_now(struct loop *loop, void *arg)
{
	loop_stop(loop);
}

TEST(test_resolver_free_pending)
{
	struct loop *loop = loop_new();
	struct fake f;
	struct result a, b, c[DNS_MAX_PENDING];

	CHECK_EQ(fake_start(&f, loop), 0);

	/* dns_free with queries not yet started and in flight: no callback */
	struct dns *d = dns_new(loop, "/nonexistent");
	CHECK_EQ(dns_set_servers(d, &f.addr, 1), 0);
	outstanding = 0;
	CHECK_EQ(query(d, "silent.example.com", &a), 0);
	CHECK(loop_timer_add(loop, 50, stop_now, NULL) != NULL);
	(void)loop_run(loop); /* the query is now waiting for an answer */
	CHECK_EQ(query(d, "silent.example.com", &b), 0);
	check(d, "silent.example.com", "x.y", &c[0]);
	check(d, "bad..name", "x.y", &c[1]);
	dns_free(d);
	CHECK(loop_timer_add(loop, 20, stop_now, NULL) != NULL);
	(void)loop_run(loop);
	CHECK_EQ(a.done + b.done + c[0].done + c[1].done, 0);

	/* dns_free inside a callback */
	d = dns_new(loop, "/nonexistent");
	CHECK_EQ(dns_set_servers(d, &f.addr, 1), 0);
	free_me = d;
	outstanding = 0;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	CHECK_EQ(dns_query_cname(d, "silent.example.com", on_cname, &b), 0);
	CHECK_EQ(dns_query_cname(d, "nx.example.com", on_cname_free, &a), 0);
	outstanding = 2;
	CHECK(loop_timer_add(loop, 200, stop_now, NULL) != NULL);
	(void)loop_run(loop);
	CHECK_EQ(a.done, 1);
	CHECK_EQ(a.status, E_NOTFOUND);
	CHECK_EQ(b.done, 0);
	CHECK(free_me == NULL);

	/* the pending limit */
	d = dns_new(loop, "/nonexistent");
	CHECK_EQ(dns_set_servers(d, &f.addr, 1), 0);
	for (int i = 0; i < DNS_MAX_PENDING; i++)
		CHECK_EQ(dns_query_cname(d, "silent.example.com", on_cname, &c[i]), 0);
	CHECK_EQ(dns_query_cname(d, "silent.example.com", on_cname, &a), E_LIMIT);
	memset(&b, 0, sizeof(b));
	outstanding = 0;
	check(d, "silent.example.com", "x.y", &b); /* reported as a failed check */
	run_until_done(loop, 500);
	CHECK_EQ(b.done, 1);
	CHECK_EQ(b.ok, 0);
	dns_free(d);

	fake_stop(&f);
	loop_free(loop);
}

int main(void)
{
	alarm(10); /* a hung loop fails the run instead of blocking it */
	RUN(test_parse_valid_cname);
	RUN(test_parse_compressed);
	RUN(test_parse_pointer_loops);
	RUN(test_parse_pointer_chain_limit);
	RUN(test_parse_bad_pointers);
	RUN(test_parse_label_limits);
	RUN(test_parse_name_length);
	RUN(test_parse_not_ours);
	RUN(test_parse_rcodes);
	RUN(test_parse_other_names);
	RUN(test_parse_multiple_answers);
	RUN(test_parse_bad_target);
	RUN(test_build_query);
	RUN(test_config_parse);
	RUN(test_resolver_end_to_end);
	RUN(test_resolver_failover);
	RUN(test_resolver_free_pending);
	return test_done();
}
