/*
 * test_evict.c - unit tests of the page-cache budget's choice (least
 * recently released first, only as many as needed) and of the size
 * syntax of --cache-budget.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "evict.h"

#define KIB UINT64_C(1024)

static void test_pick_under_budget(void **state)
{
	struct mfsd_evict_cand c[] = {
		{.gen = 1, .released_seq = 2, .bytes = 100},
		{.gen = 2, .released_seq = 1, .bytes = 100},
	};

	(void)state;
	assert_int_equal(mfsd_evict_pick(c, 2, 200), 0);
	assert_int_equal(mfsd_evict_pick(c, 0, 0), 0);
}

static void test_pick_oldest_first(void **state)
{
	struct mfsd_evict_cand c[] = {
		{.gen = 7, .released_seq = 30, .bytes = 100, .index = 0},
		{.gen = 8, .released_seq = 10, .bytes = 100, .index = 1},
		{.gen = 9, .released_seq = 20, .bytes = 100, .index = 2},
	};

	(void)state;
	/* 300 held, 150 allowed: the two released longest ago go. */
	assert_int_equal(mfsd_evict_pick(c, 3, 150), 2);
	assert_int_equal(c[0].gen, 8);
	assert_int_equal(c[0].index, 1);
	assert_int_equal(c[1].gen, 9);
	assert_int_equal(c[2].gen, 7);
}

static void test_pick_budget_zero(void **state)
{
	struct mfsd_evict_cand c[] = {
		{.gen = 1, .released_seq = 5, .bytes = 1},
		{.gen = 2, .released_seq = 5, .bytes = 1},
	};

	(void)state;
	/* Equal release order: by generation, and everything goes. */
	assert_int_equal(mfsd_evict_pick(c, 2, 0), 2);
	assert_int_equal(c[0].gen, 1);
}

static void test_pick_saturates(void **state)
{
	struct mfsd_evict_cand c[] = {
		{.gen = 1, .released_seq = 1, .bytes = UINT64_MAX},
		{.gen = 2, .released_seq = 2, .bytes = UINT64_MAX},
	};

	(void)state;
	/* The sum does not wrap into something under budget. */
	assert_int_equal(mfsd_evict_pick(c, 2, UINT64_MAX - 1), 1);
}

static void test_parse_size(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(mfsd_parse_size("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(mfsd_parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(mfsd_parse_size("64K", &v), 0);
	assert_int_equal(v, 64 * KIB);
	assert_int_equal(mfsd_parse_size("3m", &v), 0);
	assert_int_equal(v, 3 * KIB * KIB);
	assert_int_equal(mfsd_parse_size("2G", &v), 0);
	assert_int_equal(v, 2 * KIB * KIB * KIB);
	assert_int_equal(mfsd_parse_size("1TiB", &v), 0);
	assert_int_equal(v, KIB * KIB * KIB * KIB);
	assert_int_equal(mfsd_parse_size("5kb", &v), 0);
	assert_int_equal(v, 5 * KIB);
	assert_int_equal(mfsd_parse_size("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
}

static void test_parse_size_bad(void **state)
{
	static const char *const bad[] = {
		"", "-1", "+1", " 1", "1 ", "K", "1X", "1KX", "1KiBB", "1.5G",
		"18446744073709551616", "16777216T", "0x10", NULL,
	};
	uint64_t v = 42;

	(void)state;
	for (size_t i = 0; bad[i]; i++) {
		assert_int_equal(mfsd_parse_size(bad[i], &v), -EINVAL);
		assert_int_equal(v, 42);
	}
	assert_int_equal(mfsd_parse_size(NULL, &v), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pick_under_budget),
		cmocka_unit_test(test_pick_oldest_first),
		cmocka_unit_test(test_pick_budget_zero),
		cmocka_unit_test(test_pick_saturates),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_size_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
