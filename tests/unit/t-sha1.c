/* t-sha1.c - SHA-1 test vectors (RFC 3174 §7.3, FIPS 180 examples) and
 * incremental hashing at every split point.
 *
 * Inputs are exact-size heap copies or sit at the end of a page followed
 * by a PROT_NONE guard page, so reads past the input fault.
 */
#include "sha1.h"
#include "test.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

static uint8_t *exact_copy(const void *s, size_t n)
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

/* Place a copy of s[0..n) so that s + n is the first byte of a PROT_NONE
 * page.  Uses /dev/zero (not MAP_ANONYMOUS) to stay within POSIX; aborts
 * when the mapping fails. */
static void guard_copy(struct guarded *g, const void *s, size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t data_pages = n / page + 1;
	g->map_len = (data_pages + 1) * page;
	int fd = open("/dev/zero", O_RDWR);
	if (fd < 0)
		abort();
	g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	if (g->map == MAP_FAILED)
		abort();
	uint8_t *guard = (uint8_t *)g->map + data_pages * page;
	if (mprotect(guard, page, PROT_NONE) != 0)
		abort();
	g->p = guard - n;
	if (n)
		memcpy(g->p, s, n);
}

static void guard_free(struct guarded *g)
{
	munmap(g->map, g->map_len);
}

static void hex(const uint8_t *d, char out[41])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 20; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[40] = '\0';
}

static void digest_hex(const void *data, size_t len, char out[41])
{
	uint8_t d[SHA1_DIGEST_LEN];
	sha1(data, len, d);
	hex(d, out);
}

/* One case: whole (one-shot, heap copy, guard page), split at every
 * offset into two updates (with an empty update in between), and fed one
 * byte at a time. */
static void check_case(const char *name, const uint8_t *data, size_t len, const char *want)
{
	char got[41];
	int bad = test_failures_in_case;
	uint8_t *p = exact_copy(data, len);
	digest_hex(p, len, got);
	CHECK_STR(got, want);

	struct guarded g;
	guard_copy(&g, data, len);
	digest_hex(g.p, len, got);
	CHECK_STR(got, want);
	guard_free(&g);

	for (size_t k = 0; k <= len; k++) {
		struct sha1_ctx c;
		uint8_t d[SHA1_DIGEST_LEN];
		sha1_init(&c);
		sha1_update(&c, p, k);
		sha1_update(&c, NULL, 0);
		sha1_update(&c, p + k, len - k);
		sha1_final(&c, d);
		hex(d, got);
		CHECK_STR(got, want);
		if (test_failures_in_case != bad)
			break;
	}

	struct sha1_ctx c;
	uint8_t d[SHA1_DIGEST_LEN];
	sha1_init(&c);
	for (size_t i = 0; i < len; i++) {
		uint8_t *one = exact_copy(p + i, 1);
		sha1_update(&c, one, 1);
		free(one);
	}
	CHECK_EQ(c.len, len);
	sha1_final(&c, d);
	hex(d, got);
	CHECK_STR(got, want);
	free(p);
	if (test_failures_in_case != bad)
		printf("#   in case \"%s\"\n", name);
}

TEST(test_fips_vectors)
{
	const char *abc = "abc";
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	const char *fips112 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
			      "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
	CHECK_EQ(strlen(two), 56);
	CHECK_EQ(strlen(fips112), 112);
	check_case("abc", (const uint8_t *)abc, 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
	check_case("empty", (const uint8_t *)"", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	check_case("56 bytes", (const uint8_t *)two, 56, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
	check_case("112 bytes", (const uint8_t *)fips112, 112, "a49b2446a02c645bf419f995b67091253a04a259");
}

TEST(test_rfc3174_test4)
{
	/* TEST4 of RFC 3174: "0123456701234567012345670123456701234567012345670123456701234567" x 10 */
	static uint8_t in[640];
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)('0' + i % 8);
	check_case("rfc3174 test4", in, sizeof(in), "dea356a2cddd90c7a7ecedc5ebb563934f460452");
}

TEST(test_million_a)
{
	const char *want = "34aa973cd4c4daa4f61eeb2bdbad27316534016f";
	size_t n = 1000000;
	uint8_t *a = malloc(n);
	if (!a)
		abort();
	memset(a, 'a', n);
	char got[41];
	digest_hex(a, n, got);
	CHECK_STR(got, want);
	/* Various update sizes, including ones that straddle block edges. */
	const size_t steps[] = { 1, 3, 55, 63, 64, 65, 127, 1000, 4096, 999999 };
	for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		struct sha1_ctx c;
		uint8_t d[SHA1_DIGEST_LEN];
		sha1_init(&c);
		for (size_t off = 0; off < n; off += steps[s])
			sha1_update(&c, a + off, n - off < steps[s] ? n - off : steps[s]);
		sha1_final(&c, d);
		hex(d, got);
		CHECK_STR(got, want);
	}
	free(a);
}

TEST(test_block_boundaries)
{
	/* Expected digests from Python's hashlib for bytes (i*7+3) & 255;
	 * lengths around the padding (55/56) and block (64) boundaries. */
	static const struct {
		size_t n;
		const char *want;
	} v[] = {
		{ 55, "ddf57317ef34bfee3b6df83d359098930eb278bc" },
		{ 56, "a0d492bb0fc889d0eca3bc137066ab6f4f74f369" },
		{ 57, "11a02dcf95859677a62e75024067c22b165d890f" },
		{ 63, "c55856749bef509bdfe6bfebfc7bf4e793e82132" },
		{ 64, "bede92be29c3874e1b54ddc77988d606fc857a8e" },
		{ 65, "b05a80522b053d6dc7e0a517d0e70212c7dad11f" },
		{ 119, "504e27376a6e0f0dba8295b85cb25dc4dfa17d23" },
		{ 120, "82134b02fb3f702491be9bed581eeab59334acb2" },
		{ 127, "34d5e582029e9b9b85b2febe31da3db7cdabaaea" },
		{ 128, "a09133e6730ffe899efb70204cb5646cd5dc24ee" },
		{ 129, "808aea332ce367541d37adae7f94e59c5c1a934e" },
		{ 1000, "4231a8a50a10fa9758db8ec71fdef855b751048a" },
	};
	static uint8_t in[1000];
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 7 + 3);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char name[32];
		snprintf(name, sizeof(name), "%zu bytes", v[i].n);
		check_case(name, in, v[i].n, v[i].want);
	}
}

TEST(test_final_wipes_and_reinit)
{
	struct sha1_ctx c;
	uint8_t d1[SHA1_DIGEST_LEN], d2[SHA1_DIGEST_LEN];
	sha1_init(&c);
	sha1_update(&c, "abc", 3);
	sha1_final(&c, d1);
	CHECK_EQ(c.len, 0);
	CHECK_EQ(c.h[0], 0);
	sha1_init(&c);
	sha1_update(&c, "ab", 2);
	sha1_update(&c, "c", 1);
	sha1_final(&c, d2);
	CHECK_MEM(d1, d2, SHA1_DIGEST_LEN);
}

int main(void)
{
	RUN(test_fips_vectors);
	RUN(test_rfc3174_test4);
	RUN(test_million_a);
	RUN(test_block_boundaries);
	RUN(test_final_wipes_and_reinit);
	return test_done();
}
