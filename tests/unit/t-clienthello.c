/* t-clienthello.c - tests of the raw ClientHello SNI reader: a real
 * OpenSSL hello and built ones, each whole, cut at every byte (the
 * incremental protocol), fragmented over records, and placed before an
 * unmapped guard page; malformed and over-limit inputs. */
#include "clienthello.h"
#include "err.h"
#include "test.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

/* openssl s_client -connect ... -servername tun1.example.com (OpenSSL 3.0) */
static const uint8_t openssl_hello[] = {
	0x16, 0x03, 0x01, 0x01, 0x3d, 0x01, 0x00, 0x01, 0x39, 0x03, 0x03, 0x24, 0xf5, 0xd0, 0x70, 0x1d,
	0xb6, 0x64, 0x9a, 0x40, 0x88, 0x79, 0xe1, 0x34, 0x08, 0x26, 0xb9, 0xb5, 0x07, 0x30, 0x4e, 0xf9,
	0x6a, 0xb5, 0xd1, 0x95, 0x59, 0x0f, 0x45, 0x40, 0x3f, 0xd1, 0xde, 0x20, 0x2b, 0xb2, 0x7c, 0x12,
	0x0b, 0xbb, 0xec, 0x34, 0x10, 0x51, 0x0f, 0x42, 0x24, 0x90, 0x19, 0x3c, 0x51, 0xd8, 0x6b, 0x49,
	0x51, 0x2d, 0x09, 0x0c, 0xdf, 0x19, 0xa8, 0x02, 0x24, 0x24, 0xaa, 0xd3, 0x00, 0x3e, 0x13, 0x02,
	0x13, 0x03, 0x13, 0x01, 0xc0, 0x2c, 0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc, 0xa8, 0xcc, 0xaa,
	0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x9e, 0xc0, 0x24, 0xc0, 0x28, 0x00, 0x6b, 0xc0, 0x23, 0xc0, 0x27,
	0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14, 0x00, 0x39, 0xc0, 0x09, 0xc0, 0x13, 0x00, 0x33, 0x00, 0x9d,
	0x00, 0x9c, 0x00, 0x3d, 0x00, 0x3c, 0x00, 0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x00, 0xb2,
	0x00, 0x00, 0x00, 0x15, 0x00, 0x13, 0x00, 0x00, 0x10, 0x74, 0x75, 0x6e, 0x31, 0x2e, 0x65, 0x78,
	0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d, 0x00, 0x0b, 0x00, 0x04, 0x03, 0x00, 0x01,
	0x02, 0x00, 0x0a, 0x00, 0x16, 0x00, 0x14, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x1e, 0x00, 0x19, 0x00,
	0x18, 0x01, 0x00, 0x01, 0x01, 0x01, 0x02, 0x01, 0x03, 0x01, 0x04, 0x00, 0x23, 0x00, 0x00, 0x00,
	0x16, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x2a, 0x00, 0x28, 0x04, 0x03, 0x05,
	0x03, 0x06, 0x03, 0x08, 0x07, 0x08, 0x08, 0x08, 0x09, 0x08, 0x0a, 0x08, 0x0b, 0x08, 0x04, 0x08,
	0x05, 0x08, 0x06, 0x04, 0x01, 0x05, 0x01, 0x06, 0x01, 0x03, 0x03, 0x03, 0x01, 0x03, 0x02, 0x04,
	0x02, 0x05, 0x02, 0x06, 0x02, 0x00, 0x2b, 0x00, 0x09, 0x08, 0x03, 0x04, 0x03, 0x03, 0x03, 0x02,
	0x03, 0x01, 0x00, 0x2d, 0x00, 0x02, 0x01, 0x01, 0x00, 0x33, 0x00, 0x26, 0x00, 0x24, 0x00, 0x1d,
	0x00, 0x20, 0x45, 0x8d, 0x68, 0x3e, 0x12, 0x0c, 0xb1, 0x45, 0xe6, 0xa0, 0x86, 0x15, 0x7f, 0x01,
	0x3d, 0x71, 0x7c, 0x32, 0x8d, 0xa0, 0x6c, 0x20, 0x47, 0x3b, 0xcb, 0x88, 0xb3, 0x7a, 0xd9, 0xd6,
	0x1e, 0x77,
};

/* ---- builders ---- */

static size_t put16(uint8_t *o, size_t v)
{
	o[0] = (uint8_t)(v >> 8);
	o[1] = (uint8_t)v;
	return 2;
}

/* server_name extension with the given host_names (n of them). */
static size_t ext_sni(uint8_t *o, const char *const *names, int n)
{
	size_t p = 4 + 2;
	for (int i = 0; i < n; i++) {
		size_t l = strlen(names[i]);
		o[p++] = 0;
		p += put16(o + p, l);
		memcpy(o + p, names[i], l);
		p += l;
	}
	put16(o, 0);
	put16(o + 2, p - 4);
	put16(o + 4, p - 6);
	return p;
}

/* An extension of type t with n zero bytes. */
static size_t ext_other(uint8_t *o, unsigned t, size_t n)
{
	put16(o, t);
	put16(o + 2, n);
	memset(o + 4, 0, n);
	return 4 + n;
}

/* ClientHello body; exts NULL: no extensions block at all. */
static size_t hello_body(uint8_t *o, const uint8_t *exts, size_t elen)
{
	size_t p = 0;
	p += put16(o, 0x0303);
	memset(o + p, 0xab, 32);
	p += 32;
	o[p++] = 32;
	memset(o + p, 0x11, 32);
	p += 32;
	p += put16(o + p, 4);
	p += put16(o + p, 0xc02b);
	p += put16(o + p, 0xc02f);
	o[p++] = 1;
	o[p++] = 0;
	if (exts) {
		p += put16(o + p, elen);
		memcpy(o + p, exts, elen);
		p += elen;
	}
	return p;
}

static size_t handshake(uint8_t *o, const uint8_t *body, size_t n)
{
	o[0] = 1;
	o[1] = (uint8_t)(n >> 16);
	o[2] = (uint8_t)(n >> 8);
	o[3] = (uint8_t)n;
	memcpy(o + 4, body, n);
	return n + 4;
}

/* Wrap n handshake bytes into records of at most frag bytes. */
static size_t records(uint8_t *o, const uint8_t *hs, size_t n, size_t frag)
{
	size_t p = 0, off = 0;
	while (off < n) {
		size_t k = n - off < frag ? n - off : frag;
		o[p++] = 22;
		o[p++] = 3;
		o[p++] = 1;
		p += put16(o + p, k);
		memcpy(o + p, hs + off, k);
		p += k;
		off += k;
	}
	return p;
}

static uint8_t tmp_exts[70000], tmp_body[70000], tmp_hs[70000];

/* A complete hello (one record unless frag) with the given names. */
static size_t build(uint8_t *out, const char *const *names, int n, size_t frag)
{
	size_t e = 0;
	e += ext_other(tmp_exts + e, 0x000a, 8);
	if (n > 0)
		e += ext_sni(tmp_exts + e, names, n);
	e += ext_other(tmp_exts + e, 0x000d, 6);
	size_t b = hello_body(tmp_body, tmp_exts, e);
	size_t h = handshake(tmp_hs, tmp_body, b);
	return records(out, tmp_hs, h, frag ? frag : 16384);
}

static int parse(const uint8_t *p, size_t n, struct clienthello *ch, size_t *need)
{
	return clienthello_parse(p, n, ch, need);
}

/* Every prefix must be E_AGAIN with need > prefix and need <= n, and the
 * caller protocol (parse again once need bytes are in) must take few
 * calls; the whole input gives want. */
static void check_splits(const uint8_t *p, size_t n, int want, const char *sni)
{
	struct clienthello ch;
	size_t need = 0;
	int bad = 0;
	for (size_t k = 0; k < n; k++) {
		int r = parse(p, k, &ch, &need);
		if (want == 0 && (r != E_AGAIN || need <= k || need > n))
			bad++;
		if (want != 0 && r != E_AGAIN && r != want)
			bad++;
	}
	CHECK_EQ(bad, 0);
	int r = parse(p, n, &ch, &need);
	CHECK_EQ(r, want);
	if (want == 0 && sni) {
		CHECK_STR(ch.sni, sni);
		CHECK_EQ(ch.has_sni, sni[0] != '\0');
		CHECK_EQ(ch.sni_len, strlen(sni));
	}
	/* incremental: start with 0 bytes, feed up to need each time */
	size_t have = 0, calls = 0;
	need = 1;
	for (;;) {
		have = need < n ? need : n;
		calls++;
		r = parse(p, have, &ch, &need);
		if (r != E_AGAIN || have == n)
			break;
	}
	CHECK_EQ(r, want);
	CHECK(calls < 80);
}

/* The input at the very end of a page, an unmapped page after it. */
static void check_guard(const uint8_t *p, size_t n)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t span = ((n + (size_t)pg - 1) / (size_t)pg + 1) * (size_t)pg;
	/* /dev/zero rather than MAP_ANONYMOUS, to stay within POSIX */
	int fd = open("/dev/zero", O_RDWR);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	uint8_t *m = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	CHECK(m != MAP_FAILED);
	if (m == MAP_FAILED)
		return;
	CHECK_EQ(mprotect(m + span - (size_t)pg, (size_t)pg, PROT_NONE), 0);
	for (size_t k = 0; k <= n; k++) {
		uint8_t *at = m + span - (size_t)pg - k;
		memcpy(at, p, k);
		struct clienthello ch;
		size_t need;
		(void)parse(at, k, &ch, &need);
	}
	munmap(m, span);
}

TEST(test_openssl_hello)
{
	struct clienthello ch;
	size_t need = 0;
	CHECK_EQ(parse(openssl_hello, sizeof(openssl_hello), &ch, &need), 0);
	CHECK_STR(ch.sni, "tun1.example.com");
	CHECK_EQ(ch.has_sni, 1);
	CHECK_EQ(ch.version, 0x0303);
	CHECK_EQ(ch.end, sizeof(openssl_hello));
	check_splits(openssl_hello, sizeof(openssl_hello), 0, "tun1.example.com");
	check_guard(openssl_hello, sizeof(openssl_hello));
}

TEST(test_need_values)
{
	struct clienthello ch;
	size_t need = 0;
	CHECK_EQ(parse(openssl_hello, 0, &ch, &need), E_AGAIN);
	CHECK_EQ(need, 5);
	CHECK_EQ(parse(openssl_hello, 3, &ch, &need), E_AGAIN);
	CHECK_EQ(need, 5);
	/* header complete: the whole record is waited for */
	CHECK_EQ(parse(openssl_hello, 5, &ch, &need), E_AGAIN);
	CHECK_EQ(need, sizeof(openssl_hello));
	CHECK_EQ(parse(openssl_hello, 100, &ch, &need), E_AGAIN);
	CHECK_EQ(need, sizeof(openssl_hello));
	CHECK_EQ(parse(openssl_hello, 3, &ch, NULL), E_AGAIN);
}

TEST(test_built_hellos)
{
	static uint8_t buf[70000];
	const char *one[] = {"my-tunnel.example.com"};
	size_t n = build(buf, one, 1, 0);
	check_splits(buf, n, 0, "my-tunnel.example.com");
	check_guard(buf, n);
	/* no SNI at all */
	n = build(buf, NULL, 0, 0);
	check_splits(buf, n, 0, "");
	/* no extensions block */
	size_t b = hello_body(tmp_body, NULL, 0);
	size_t h = handshake(tmp_hs, tmp_body, b);
	n = records(buf, tmp_hs, h, 16384);
	check_splits(buf, n, 0, "");
	/* upper case is lowered */
	const char *up[] = {"My-Tunnel.EXAMPLE.com"};
	n = build(buf, up, 1, 0);
	check_splits(buf, n, 0, "my-tunnel.example.com");
	/* the longest name */
	char longname[256];
	memset(longname, 'a', 255);
	longname[255] = '\0';
	const char *ln[] = {longname};
	n = build(buf, ln, 1, 0);
	check_splits(buf, n, 0, longname);
}

TEST(test_fragmented_records)
{
	static uint8_t buf[70000];
	const char *one[] = {"frag-tunnel.example.com"};
	size_t whole = build(buf, one, 1, 0);
	size_t hs_len = whole - 5;
	/* 3 bytes a record: more than 32 records -> E_LIMIT */
	CHECK(hs_len / 3 > CLIENTHELLO_MAX_RECORDS);
	size_t n = build(buf, one, 1, 3);
	check_splits(buf, n, E_LIMIT, NULL);
	/* within 32 records */
	size_t frag = hs_len / 31 + 1;
	n = build(buf, one, 1, frag);
	check_splits(buf, n, 0, "frag-tunnel.example.com");
	check_guard(buf, n);
	n = build(buf, one, 1, 100);
	check_splits(buf, n, 0, "frag-tunnel.example.com");
	/* the real hello re-fragmented at every boundary */
	for (size_t cut = 1; cut < sizeof(openssl_hello) - 5; cut += 3) {
		uint8_t two[400];
		const uint8_t *hs = openssl_hello + 5;
		size_t hn = sizeof(openssl_hello) - 5;
		size_t p = records(two, hs, cut, cut);
		p += records(two + p, hs + cut, hn - cut, 16384);
		struct clienthello ch;
		CHECK_EQ(parse(two, p, &ch, NULL), 0);
		CHECK_STR(ch.sni, "tun1.example.com");
	}
}

TEST(test_trailing_bytes)
{
	static uint8_t buf[70000];
	const char *one[] = {"abcd.example.com"};
	size_t n = build(buf, one, 1, 0);
	/* extra bytes inside the same record, and a following record */
	size_t hs = n - 5;
	memcpy(tmp_hs, buf + 5, hs);
	memset(tmp_hs + hs, 0x42, 10);
	size_t m = records(buf, tmp_hs, hs + 10, 16384);
	struct clienthello ch;
	CHECK_EQ(parse(buf, m, &ch, NULL), 0);
	CHECK_EQ(ch.end, n);
	CHECK_STR(ch.sni, "abcd.example.com");
}

static int build_and_parse(const uint8_t *exts, size_t elen)
{
	static uint8_t buf[70000];
	size_t b = hello_body(tmp_body, exts, elen);
	size_t h = handshake(tmp_hs, tmp_body, b);
	size_t n = records(buf, tmp_hs, h, 16384);
	struct clienthello ch;
	return parse(buf, n, &ch, NULL);
}

TEST(test_bad_server_names)
{
	uint8_t e[2000];
	size_t n;
	const char *two[] = {"a.example.com", "b.example.com"};
	n = ext_sni(e, two, 2);
	CHECK_EQ(build_and_parse(e, n), E_INVAL);
	const char *empty[] = {""};
	n = ext_sni(e, empty, 1);
	CHECK_EQ(build_and_parse(e, n), E_INVAL);
	const char *space[] = {"a b.example.com"};
	n = ext_sni(e, space, 1);
	CHECK_EQ(build_and_parse(e, n), E_INVAL);
	char toolong[257];
	memset(toolong, 'a', 256);
	toolong[256] = '\0';
	const char *tl[] = {toolong};
	n = ext_sni(e, tl, 1);
	CHECK_EQ(build_and_parse(e, n), E_INVAL);
	/* a NUL inside the name */
	const char *ok[] = {"abcd.example.com"};
	n = ext_sni(e, ok, 1);
	e[9 + 2] = 0;
	CHECK_EQ(build_and_parse(e, n), E_INVAL);
	/* two server_name extensions */
	n = ext_sni(e, ok, 1);
	n += ext_sni(e + n, ok, 1);
	CHECK_EQ(build_and_parse(e, n), E_INVAL);
	/* a non-host_name entry is skipped */
	n = ext_sni(e, ok, 1);
	uint8_t e2[2000];
	memcpy(e2, e, 6);
	e2[6] = 7;
	put16(e2 + 7, 3);
	memcpy(e2 + 9, "xyz", 3);
	memcpy(e2 + 12, e + 6, n - 6);
	size_t n2 = n + 6;
	put16(e2 + 2, n2 - 4);
	put16(e2 + 4, n2 - 6);
	static uint8_t buf[70000];
	size_t b = hello_body(tmp_body, e2, n2);
	size_t h = handshake(tmp_hs, tmp_body, b);
	size_t m = records(buf, tmp_hs, h, 16384);
	struct clienthello ch;
	CHECK_EQ(parse(buf, m, &ch, NULL), 0);
	CHECK_STR(ch.sni, "abcd.example.com");
	/* list length disagreeing with the extension length */
	n = ext_sni(e, ok, 1);
	put16(e + 4, n - 5);
	CHECK_EQ(build_and_parse(e, n), E_INVAL);
	/* empty list */
	put16(e, 0);
	put16(e + 2, 2);
	put16(e + 4, 0);
	CHECK_EQ(build_and_parse(e, 6), E_INVAL);
	/* name length past the list */
	n = ext_sni(e, ok, 1);
	put16(e + 7, 200);
	CHECK_EQ(build_and_parse(e, n), E_INVAL);
}

TEST(test_malformed)
{
	static uint8_t buf[70000];
	const char *one[] = {"abcd.example.com"};
	size_t n = build(buf, one, 1, 0);
	struct clienthello ch;
	uint8_t save;
	/* record type alert, version 2.x, length 0, length > 2^14 */
	save = buf[0];
	buf[0] = 21;
	CHECK_EQ(parse(buf, n, &ch, NULL), E_INVAL);
	buf[0] = save;
	buf[1] = 2;
	CHECK_EQ(parse(buf, n, &ch, NULL), E_INVAL);
	buf[1] = 3;
	uint8_t zero[5] = {22, 3, 1, 0, 0};
	CHECK_EQ(parse(zero, 5, &ch, NULL), E_INVAL);
	uint8_t big[5] = {22, 3, 1, 0x40, 0x01};
	CHECK_EQ(parse(big, 5, &ch, NULL), E_INVAL);
	/* handshake type ServerHello */
	buf[5] = 2;
	CHECK_EQ(parse(buf, n, &ch, NULL), E_INVAL);
	buf[5] = 1;
	/* handshake body over the limit */
	uint8_t hb[9] = {22, 3, 1, 0, 4, 1, 0x01, 0x00, 0x01};
	CHECK_EQ(parse(hb, 9, &ch, NULL), E_LIMIT);
	/* body length shorter than its contents */
	buf[8] = (uint8_t)(buf[8] - 1);
	CHECK(parse(buf, n, &ch, NULL) != 0);
	buf[8] = (uint8_t)(buf[8] + 1);
	CHECK_EQ(parse(buf, n, &ch, NULL), 0);
	/* session id of 33 bytes */
	buf[5 + 4 + 34] = 33;
	CHECK_EQ(parse(buf, n, &ch, NULL), E_INVAL);
	buf[5 + 4 + 34] = 32;
	/* odd cipher suite length */
	size_t cs = 5 + 4 + 35 + 32;
	buf[cs + 1] = 3;
	CHECK_EQ(parse(buf, n, &ch, NULL), E_INVAL);
	buf[cs + 1] = 4;
	/* no compression method */
	buf[cs + 6] = 0;
	CHECK_EQ(parse(buf, n, &ch, NULL), E_INVAL);
	buf[cs + 6] = 1;
	/* extensions total disagreeing with the body */
	buf[cs + 9] = (uint8_t)(buf[cs + 9] + 1);
	CHECK_EQ(parse(buf, n, &ch, NULL), E_INVAL);
	buf[cs + 9] = (uint8_t)(buf[cs + 9] - 1);
	CHECK_EQ(parse(buf, n, &ch, NULL), 0);
	/* not TLS at all */
	const char *get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	CHECK_EQ(parse((const uint8_t *)get, strlen(get), &ch, NULL), E_INVAL);
	uint8_t v2[] = {0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15};
	CHECK_EQ(parse(v2, sizeof(v2), &ch, NULL), E_INVAL);
	/* the output is cleared on failure */
	CHECK_EQ(ch.has_sni, 0);
	CHECK_STR(ch.sni, "");
}

TEST(test_alert)
{
	uint8_t a[CLIENTHELLO_ALERT_LEN];
	clienthello_alert(a, CLIENTHELLO_ALERT_UNRECOGNIZED_NAME);
	const uint8_t want[] = {21, 3, 3, 0, 2, 2, 112};
	CHECK_MEM(a, want, sizeof(want));
}

int main(void)
{
	RUN(test_openssl_hello);
	RUN(test_need_values);
	RUN(test_built_hellos);
	RUN(test_fragmented_records);
	RUN(test_trailing_bytes);
	RUN(test_bad_server_names);
	RUN(test_malformed);
	RUN(test_alert);
	return test_done();
}
