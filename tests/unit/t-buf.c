/* t-buf.c - tests of the bounded byte buffer. */
#include "buf.h"
#include "err.h"
#include "test.h"

static void fill(char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (char)('a' + (seed + i) % 26);
}

static int is_fill(const char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (char)('a' + (seed + i) % 26))
			return 0;
	return 1;
}

TEST(test_init_free)
{
	struct buf b;
	buf_init(&b, 4096);
	CHECK_EQ(buf_len(&b), 0);
	CHECK(b.data == NULL);
	CHECK_EQ(b.cap, 0);
	CHECK_EQ(b.max, 4096);
	buf_free(&b);
	CHECK_EQ(b.max, 4096);
	buf_free(&b); /* twice is fine */
	CHECK(b.data == NULL);
}

TEST(test_reserve_commit_consume)
{
	struct buf b;
	buf_init(&b, 1 << 16);
	size_t avail = 0;
	char *w = buf_reserve(&b, 10, &avail);
	CHECK(w != NULL);
	CHECK(avail >= 10);
	memcpy(w, "0123456789", 10);
	buf_commit(&b, 10);
	CHECK_EQ(buf_len(&b), 10);
	CHECK_MEM(buf_data(&b), "0123456789", 10);

	/* The next reservation starts right after the committed bytes. */
	w = buf_reserve(&b, 5, &avail);
	CHECK(w == buf_data(&b) + 10);
	memcpy(w, "abcde", 5);
	buf_commit(&b, 3); /* commit less than reserved */
	CHECK_EQ(buf_len(&b), 13);
	CHECK_MEM(buf_data(&b), "0123456789abc", 13);

	buf_consume(&b, 4);
	CHECK_EQ(buf_len(&b), 9);
	CHECK_MEM(buf_data(&b), "456789abc", 9);
	buf_consume(&b, 0);
	CHECK_EQ(buf_len(&b), 9);
	buf_consume(&b, 9);
	CHECK_EQ(buf_len(&b), 0);
	CHECK_EQ(b.off, 0);

	/* Consuming more than is there empties the buffer. */
	CHECK_EQ(buf_append(&b, "xyz", 3), 0);
	buf_consume(&b, 100);
	CHECK_EQ(buf_len(&b), 0);
	CHECK_EQ(b.off, 0);

	/* NULL avail is allowed; zero-length append is a no-op. */
	CHECK(buf_reserve(&b, 1, NULL) != NULL);
	CHECK_EQ(buf_append(&b, NULL, 0), 0);
	CHECK_EQ(buf_len(&b), 0);
	buf_free(&b);
}

TEST(test_reserve_zero)
{
	struct buf b;
	buf_init(&b, 64);
	size_t avail = 99;
	CHECK(buf_reserve(&b, 0, &avail) != NULL);
	CHECK(avail <= 64);
	CHECK_EQ(buf_append(&b, "abc", 3), 0);
	CHECK(buf_reserve(&b, 0, &avail) == buf_data(&b) + 3);
	buf_free(&b);
}

TEST(test_growth_and_limit)
{
	struct buf b;
	char chunk[1000];
	buf_init(&b, 4096);
	for (unsigned i = 0; i < 4; i++) {
		fill(chunk, sizeof(chunk), i * 1000);
		CHECK_EQ(buf_append(&b, chunk, sizeof(chunk)), 0);
		CHECK(b.cap <= b.max);
		CHECK(b.cap >= buf_len(&b));
	}
	CHECK_EQ(buf_len(&b), 4000);
	CHECK(is_fill(buf_data(&b), 4000, 0));
	/* 96 bytes are left: 1000 more does not fit, nothing changes. */
	CHECK_EQ(buf_append(&b, chunk, sizeof(chunk)), E_LIMIT);
	CHECK_EQ(buf_len(&b), 4000);
	CHECK(is_fill(buf_data(&b), 4000, 0));
	size_t avail;
	CHECK(buf_reserve(&b, 97, &avail) == NULL);
	char *w = buf_reserve(&b, 96, &avail);
	CHECK(w != NULL);
	CHECK_EQ(avail, 96);
	/* Filling to exactly max works; one byte more does not. */
	CHECK_EQ(buf_append(&b, chunk, 96), 0);
	CHECK_EQ(buf_len(&b), 4096);
	CHECK_EQ(b.cap, 4096);
	CHECK_EQ(buf_append(&b, "x", 1), E_LIMIT);
	CHECK(buf_reserve(&b, 1, NULL) == NULL);
	/* Huge requests fail without overflow. */
	CHECK(buf_reserve(&b, (size_t)-1, NULL) == NULL);
	CHECK(buf_reserve(&b, (size_t)-1 - 100, NULL) == NULL);
	CHECK_EQ(buf_len(&b), 4096);
	buf_free(&b);

	/* A single append larger than max. */
	buf_init(&b, 100);
	char big[200];
	fill(big, sizeof(big), 3);
	CHECK_EQ(buf_append(&b, big, 101), E_LIMIT);
	CHECK_EQ(buf_len(&b), 0);
	/* max below the minimum allocation: the allocation is capped. */
	CHECK_EQ(buf_append(&b, big, 100), 0);
	CHECK_EQ(b.cap, 100);
	CHECK(is_fill(buf_data(&b), 100, 3));
	CHECK_EQ(buf_append(&b, big, 1), E_LIMIT);
	buf_free(&b);

	/* max 0 holds nothing. */
	buf_init(&b, 0);
	CHECK_EQ(buf_append(&b, "x", 1), E_LIMIT);
	buf_free(&b);
}

TEST(test_growth_large)
{
	/* Grow by doubling across several reallocations; contents survive. */
	struct buf b;
	buf_init(&b, 1 << 20);
	static char chunk[3000];
	size_t total = 0;
	unsigned seed = 0;
	while (total + sizeof(chunk) <= (1u << 20)) {
		fill(chunk, sizeof(chunk), seed);
		CHECK_EQ(buf_append(&b, chunk, sizeof(chunk)), 0);
		total += sizeof(chunk);
		seed += sizeof(chunk);
	}
	CHECK_EQ(buf_len(&b), total);
	CHECK(is_fill(buf_data(&b), total, 0));
	CHECK(b.cap <= (1u << 20));
	CHECK_EQ(buf_append(&b, chunk, sizeof(chunk)), E_LIMIT);
	CHECK_EQ(buf_append(&b, chunk, (1u << 20) - total), 0);
	CHECK_EQ(buf_len(&b), 1u << 20);
	buf_free(&b);
}

TEST(test_compaction)
{
	struct buf b;
	char chunk[1024];
	buf_init(&b, 1024);
	fill(chunk, sizeof(chunk), 0);
	CHECK_EQ(buf_append(&b, chunk, 1000), 0);
	char *base = b.data;
	size_t cap = b.cap;
	buf_consume(&b, 900);
	CHECK_EQ(buf_len(&b), 100);
	/* 100 unread + 900 new fits into 1024 only after moving to the front. */
	fill(chunk, sizeof(chunk), 7);
	CHECK_EQ(buf_append(&b, chunk, 900), 0);
	CHECK_EQ(buf_len(&b), 1000);
	CHECK(b.data == base);
	CHECK_EQ(b.cap, cap);
	CHECK_EQ(b.off, 0);
	CHECK(is_fill(buf_data(&b), 100, 900));
	CHECK(is_fill(buf_data(&b) + 100, 900, 7));

	/* Space at the end is used first without moving data. */
	buf_consume(&b, 10);
	size_t off = b.off;
	CHECK_EQ(buf_append(&b, "abc", 3), 0);
	CHECK_EQ(b.off, off);
	CHECK_EQ(buf_len(&b), 993);

	/* Fully consumed: the next write starts at the front again. */
	buf_consume(&b, buf_len(&b));
	CHECK_EQ(buf_append(&b, chunk, 1024), 0);
	CHECK(buf_data(&b) == b.data);
	CHECK(is_fill(buf_data(&b), 1024, 7));
	buf_free(&b);

	/* Compaction combined with growth. */
	buf_init(&b, 8192);
	fill(chunk, sizeof(chunk), 1);
	CHECK_EQ(buf_append(&b, chunk, 1024), 0);
	buf_consume(&b, 1000);
	for (unsigned i = 0; i < 4; i++)
		CHECK_EQ(buf_append(&b, chunk, 1024), 0);
	CHECK_EQ(buf_len(&b), 24 + 4 * 1024);
	CHECK(is_fill(buf_data(&b), 24, 1001));
	for (unsigned i = 0; i < 4; i++)
		CHECK(is_fill(buf_data(&b) + 24 + i * 1024, 1024, 1));
	buf_free(&b);
}

/* Stream many records through a small buffer: never over max, data in
 * order. */
TEST(test_stream_through)
{
	struct buf b;
	buf_init(&b, 256);
	unsigned wseq = 0, rseq = 0;
	for (int round = 0; round < 2000; round++) {
		size_t n = (size_t)(round * 7 % 97) + 1;
		char tmp[128];
		fill(tmp, n, wseq);
		if (buf_append(&b, tmp, n) == 0)
			wseq += (unsigned)n;
		else
			CHECK(buf_len(&b) + n > 256);
		CHECK(b.cap <= 256);
		size_t take = (size_t)(round * 13 % 61);
		if (take > buf_len(&b))
			take = buf_len(&b);
		CHECK(is_fill(buf_data(&b), take, rseq));
		buf_consume(&b, take);
		rseq += (unsigned)take;
	}
	CHECK(is_fill(buf_data(&b), buf_len(&b), rseq));
	CHECK_EQ(wseq - rseq, buf_len(&b));
	buf_free(&b);
}

TEST(test_appendf)
{
	struct buf b;
	buf_init(&b, 1 << 16);
	CHECK_EQ(buf_appendf(&b, "%s=%d;", "a", 42), 0);
	CHECK_EQ(buf_len(&b), 5);
	CHECK_MEM(buf_data(&b), "a=42;", 5);
	CHECK_EQ(buf_appendf(&b, "%s", ""), 0);
	CHECK_EQ(buf_len(&b), 5);

	/* Longer than the 512-byte stack buffer: formatted in place. */
	static char big[5001];
	fill(big, 5000, 0);
	big[5000] = '\0';
	CHECK_EQ(buf_appendf(&b, "[%s]", big), 0);
	CHECK_EQ(buf_len(&b), 5 + 5002);
	CHECK_MEM(buf_data(&b) + 5, "[", 1);
	CHECK(is_fill(buf_data(&b) + 6, 5000, 0));
	CHECK_MEM(buf_data(&b) + 5006, "]", 1);

	/* Around the stack buffer size. */
	for (size_t n = 509; n <= 514; n++) {
		buf_consume(&b, buf_len(&b));
		CHECK_EQ(buf_appendf(&b, "%.*s", (int)n, big), 0);
		CHECK_EQ(buf_len(&b), n);
		CHECK(is_fill(buf_data(&b), n, 0));
	}

	/* After a consume (off > 0) the formatted text still lands right. */
	buf_consume(&b, buf_len(&b));
	CHECK_EQ(buf_append(&b, "0123456789", 10), 0);
	buf_consume(&b, 4);
	CHECK_EQ(buf_appendf(&b, "%s", big), 0);
	CHECK_MEM(buf_data(&b), "456789", 6);
	CHECK(is_fill(buf_data(&b) + 6, 5000, 0));
	buf_free(&b);
}

TEST(test_appendf_limit)
{
	struct buf b;
	static char big[3001];
	fill(big, 3000, 0);
	big[3000] = '\0';

	/* Too long: E_LIMIT, contents unchanged. */
	buf_init(&b, 2048);
	CHECK_EQ(buf_append(&b, "xy", 2), 0);
	CHECK_EQ(buf_appendf(&b, "%s", big), E_LIMIT);
	CHECK_EQ(buf_len(&b), 2);
	CHECK_MEM(buf_data(&b), "xy", 2);
	CHECK_EQ(buf_appendf(&b, "%.*s", 100, big), 0);
	CHECK_EQ(buf_len(&b), 102);
	buf_free(&b);

	/* Text that fills the buffer exactly (no room for a NUL) fits, as it
	 * does with buf_append. */
	buf_init(&b, 1024);
	CHECK_EQ(buf_appendf(&b, "%.*s", 1024, big), 0);
	CHECK_EQ(buf_len(&b), 1024);
	CHECK(buf_len(&b) == 1024 && is_fill(buf_data(&b), 1024, 0));
	CHECK_EQ(buf_appendf(&b, "%s", "z"), E_LIMIT);
	buf_free(&b);

	buf_init(&b, 2048);
	CHECK_EQ(buf_append(&b, "0123456789", 10), 0);
	CHECK_EQ(buf_appendf(&b, "%.*s", 2038, big), 0);
	CHECK_EQ(buf_len(&b), 2048);
	CHECK_MEM(buf_data(&b), "0123456789", 10);
	CHECK(buf_len(&b) == 2048 && is_fill(buf_data(&b) + 10, 2038, 0));
	buf_free(&b);

	/* Exact fit that needs compaction first. */
	buf_init(&b, 1024);
	CHECK_EQ(buf_append(&b, big, 1000), 0);
	buf_consume(&b, 600);
	CHECK_EQ(buf_appendf(&b, "%.*s", 624, big), 0);
	CHECK_EQ(buf_len(&b), 1024);
	CHECK(is_fill(buf_data(&b), 400, 600));
	CHECK(buf_len(&b) == 1024 && is_fill(buf_data(&b) + 400, 624, 0));
	buf_free(&b);
}

TEST(test_shrink)
{
	struct buf b;
	buf_init(&b, 1 << 16);
	char chunk[4000];
	fill(chunk, sizeof(chunk), 0);
	CHECK_EQ(buf_append(&b, chunk, sizeof(chunk)), 0);
	size_t cap = b.cap;
	CHECK(cap >= 4000);

	/* Not empty: nothing happens. */
	buf_shrink(&b, 0);
	CHECK_EQ(b.cap, cap);
	CHECK_EQ(buf_len(&b), 4000);
	CHECK(is_fill(buf_data(&b), 4000, 0));

	/* Empty but within keep: memory kept. */
	buf_consume(&b, 4000);
	buf_shrink(&b, cap);
	CHECK_EQ(b.cap, cap);
	CHECK(b.data != NULL);

	/* Empty and larger than keep: released, max kept, usable again. */
	buf_shrink(&b, 1024);
	CHECK(b.data == NULL);
	CHECK_EQ(b.cap, 0);
	CHECK_EQ(buf_len(&b), 0);
	CHECK_EQ(b.max, 1 << 16);
	CHECK_EQ(buf_append(&b, "hi", 2), 0);
	CHECK_MEM(buf_data(&b), "hi", 2);
	buf_free(&b);

	/* Shrinking a never-used buffer is a no-op. */
	buf_init(&b, 10);
	buf_shrink(&b, 0);
	CHECK(b.data == NULL);
	buf_free(&b);
}

int main(void)
{
	RUN(test_init_free);
	RUN(test_reserve_commit_consume);
	RUN(test_reserve_zero);
	RUN(test_growth_and_limit);
	RUN(test_growth_large);
	RUN(test_compaction);
	RUN(test_stream_through);
	RUN(test_appendf);
	RUN(test_appendf_limit);
	RUN(test_shrink);
	return test_done();
}
