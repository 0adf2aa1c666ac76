/*
 * test_vec.c - unit tests of the daemon's sorted vectors: the lower
 * bound at the ends, among equal elements and in an empty vector;
 * inserts and removes at the front, the middle and the end keeping the
 * order; growth from nothing keeping the elements.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "vec.h"

/* More elements than a first allocation holds, so growth is exercised. */
#define MANY 100

static int int_cmp(const void *key, const void *elem)
{
	int a = *(const int *)key, b = *(const int *)elem;

	return (a > b) - (a < b);
}

static size_t bound(const int *v, size_t n, int key)
{
	return mfsd_vec_lower_bound(v, n, sizeof(*v), &key, int_cmp);
}

static void test_lower_bound(void **state)
{
	const int v[] = {10, 20, 20, 20, 30};
	const size_t n = sizeof(v) / sizeof(v[0]);

	(void)state;
	assert_int_equal(bound(v, n, 5), 0);
	assert_int_equal(bound(v, n, 10), 0);
	assert_int_equal(bound(v, n, 15), 1);
	/* The first of equal elements. */
	assert_int_equal(bound(v, n, 20), 1);
	assert_int_equal(bound(v, n, 30), 4);
	assert_int_equal(bound(v, n, 31), n);
	/* An empty vector may have no storage yet. */
	assert_int_equal(bound(NULL, 0, 1), 0);
}

/* Inserts @x where it keeps *@v sorted, growing it as needed. */
static void sorted_insert(int **v, size_t *n, size_t *cap, int x)
{
	size_t pos = bound(*v, *n, x);

	assert_int_equal(mfsd_vec_reserve((void **)v, cap, *n + 1,
					  sizeof(**v)), 0);
	assert_true(*cap >= *n + 1);
	mfsd_vec_insert(*v, n, sizeof(**v), pos, &x);
}

static void assert_sorted(const int *v, size_t n)
{
	for (size_t i = 1; i < n; i++)
		assert_true(v[i - 1] <= v[i]);
}

static void test_insert_remove(void **state)
{
	int *v = NULL;
	size_t n = 0, cap = 0;

	(void)state;
	/* Front, end and middle inserts, in an order that needs all three. */
	for (int i = 0; i < MANY; i++)
		sorted_insert(&v, &n, &cap, (i * 37) % MANY);
	assert_int_equal(n, MANY);
	assert_sorted(v, n);
	for (int i = 0; i < MANY; i++)
		assert_int_equal(v[i], i);

	mfsd_vec_remove(v, &n, sizeof(*v), 0);            /* front */
	mfsd_vec_remove(v, &n, sizeof(*v), n - 1);        /* end */
	mfsd_vec_remove(v, &n, sizeof(*v), bound(v, n, 50)); /* middle */
	assert_int_equal(n, MANY - 3);
	assert_sorted(v, n);
	assert_int_equal(v[0], 1);
	assert_int_equal(v[n - 1], MANY - 2);
	assert_int_equal(bound(v, n, 50), 49);
	assert_int_equal(v[49], 51);
	free(v);
}

static void test_reserve(void **state)
{
	int *v = NULL;
	size_t cap = 0;
	int *before;

	(void)state;
	/* No room asked: nothing allocated. */
	assert_int_equal(mfsd_vec_reserve((void **)&v, &cap, 0, sizeof(*v)), 0);
	assert_null(v);
	assert_int_equal(mfsd_vec_reserve((void **)&v, &cap, 1, sizeof(*v)), 0);
	assert_non_null(v);
	assert_true(cap >= 1);
	/* Room enough already: the storage stays where it is. */
	before = v;
	assert_int_equal(mfsd_vec_reserve((void **)&v, &cap, cap, sizeof(*v)),
			 0);
	assert_ptr_equal(v, before);
	/* A size that cannot be allocated leaves the vector as it was. */
	assert_int_equal(mfsd_vec_reserve((void **)&v, &cap, SIZE_MAX / 2,
					  sizeof(*v)), -ENOMEM);
	assert_ptr_equal(v, before);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lower_bound),
		cmocka_unit_test(test_insert_remove),
		cmocka_unit_test(test_reserve),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
