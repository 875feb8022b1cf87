/* test.h - minimal unit-test helper.
 *
 * Each CHECK prints "not ok - file:line: expr" on failure; test_done()
 * prints "ok - <name>" / "not ok - <name>" lines per TEST() and the
 * summary is made by tests/run-tests.sh from these lines.
 */
#ifndef EXPOSRD_TEST_H
#define EXPOSRD_TEST_H

#include <stdio.h>
#include <string.h>
#include <stdlib.h>

static int test_failures_in_case;
static int test_total_failed;
static int test_total_passed;

#define CHECK(expr) do { if (!(expr)) { \
	printf("#   check failed %s:%d: %s\n", __FILE__, __LINE__, #expr); \
	test_failures_in_case++; } } while (0)

#define CHECK_EQ(a, b) do { long long test_a_ = (long long)(a), test_b_ = (long long)(b); \
	if (test_a_ != test_b_) { \
	printf("#   check failed %s:%d: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, #a, #b, test_a_, test_b_); \
	test_failures_in_case++; } } while (0)

#define CHECK_STR(a, b) do { const char *test_a_ = (a), *test_b_ = (b); \
	if (!test_a_ || !test_b_ || strcmp(test_a_, test_b_) != 0) { \
	printf("#   check failed %s:%d: %s == %s (\"%s\" != \"%s\")\n", __FILE__, __LINE__, #a, #b, \
	       test_a_ ? test_a_ : "(null)", test_b_ ? test_b_ : "(null)"); \
	test_failures_in_case++; } } while (0)

#define CHECK_MEM(a, b, n) do { if (memcmp((a), (b), (n)) != 0) { \
	printf("#   check failed %s:%d: memcmp(%s, %s, %s)\n", __FILE__, __LINE__, #a, #b, #n); \
	test_failures_in_case++; } } while (0)

/* TEST(name) { ... } declares a case; RUN(name) runs it and reports. */
#define TEST(name) static void name(void)
#define RUN(name) do { test_failures_in_case = 0; name(); \
	if (test_failures_in_case) { test_total_failed++; printf("not ok - %s\n", #name); } \
	else { test_total_passed++; printf("ok - %s\n", #name); } } while (0)

static inline int test_done(void)
{
	return test_total_failed ? 1 : 0;
}

#endif
