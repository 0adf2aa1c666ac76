/*
 * test_chunkcache.c - unit tests of the decoded-chunk cache: hits and
 * misses, failed loads, eviction by bytes, pinning, single-flight loading
 * under threads, dropping a model.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "chunkcache.h"

#define CHUNK 4096u
#define THREADS 8

struct loader {
	unsigned calls;     /* loads run (atomic where threads share it) */
	int fail;           /* error to return, or 0 */
	ssize_t short_by;   /* return this many bytes less than asked */
	unsigned char fill; /* byte the chunk is filled with */
	unsigned delay_us;  /* sleep inside the load, to overlap threads */
};

static ssize_t load(void *ctx, void *buf, size_t len)
{
	struct loader *l = ctx;

	__atomic_add_fetch(&l->calls, 1, __ATOMIC_SEQ_CST);
	if (l->delay_us)
		usleep(l->delay_us);
	if (l->fail)
		return l->fail;
	memset(buf, l->fill, len);
	return (ssize_t)len - l->short_by;
}

static struct mfsd_cache_key key(uint64_t gen, uint64_t chunk)
{
	return (struct mfsd_cache_key){.gen = gen, .array = 0, .chunk = chunk};
}

static void test_miss_then_hit(void **state)
{
	struct mfsd_cache c;
	struct mfsd_cache_entry *e;
	struct mfsd_cache_key k = key(1, 7);
	struct loader l = {.fill = 0xab};
	struct mfsd_cache_stats st;

	(void)state;
	assert_int_equal(mfsd_cache_init(&c, 1u << 20), 0);
	assert_int_equal(mfsd_cache_get(&c, &k, CHUNK, load, &l, &e), 0);
	assert_int_equal(mfsd_cache_len(e), CHUNK);
	assert_int_equal(((const unsigned char *)mfsd_cache_data(e))[CHUNK - 1],
			 0xab);
	mfsd_cache_put(&c, e);
	assert_int_equal(mfsd_cache_get(&c, &k, CHUNK, load, &l, &e), 0);
	mfsd_cache_put(&c, e);
	assert_int_equal(l.calls, 1);
	mfsd_cache_get_stats(&c, &st);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.bytes, CHUNK);
	assert_int_equal(st.entries, 1);
	mfsd_cache_destroy(&c);
}

static void test_failed_load_is_not_kept(void **state)
{
	struct mfsd_cache c;
	struct mfsd_cache_entry *e = NULL;
	struct mfsd_cache_key k = key(1, 0);
	struct loader l = {.fail = -EIO};
	struct mfsd_cache_stats st;

	(void)state;
	assert_int_equal(mfsd_cache_init(&c, 1u << 20), 0);
	assert_int_equal(mfsd_cache_get(&c, &k, CHUNK, load, &l, &e), -EIO);
	assert_null(e);
	l.fail = -EBADMSG;
	assert_int_equal(mfsd_cache_get(&c, &k, CHUNK, load, &l, &e),
			 -EBADMSG);
	assert_int_equal(l.calls, 2);
	mfsd_cache_get_stats(&c, &st);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.entries, 0);
	/* A later good load works. */
	l.fail = 0;
	assert_int_equal(mfsd_cache_get(&c, &k, CHUNK, load, &l, &e), 0);
	mfsd_cache_put(&c, e);
	mfsd_cache_destroy(&c);
}

static void test_short_load_is_eio(void **state)
{
	struct mfsd_cache c;
	struct mfsd_cache_entry *e;
	struct mfsd_cache_key k = key(1, 0);
	struct loader l = {.short_by = 1};

	(void)state;
	assert_int_equal(mfsd_cache_init(&c, 1u << 20), 0);
	assert_int_equal(mfsd_cache_get(&c, &k, CHUNK, load, &l, &e), -EIO);
	mfsd_cache_destroy(&c);
}

static void test_eviction_by_bytes(void **state)
{
	struct mfsd_cache c;
	struct mfsd_cache_entry *e;
	struct loader l = {0};
	struct mfsd_cache_stats st;
	struct mfsd_cache_key k;

	(void)state;
	assert_int_equal(mfsd_cache_init(&c, 3 * CHUNK), 0);
	for (uint64_t i = 0; i < 10; i++) {
		k = key(1, i);
		assert_int_equal(mfsd_cache_get(&c, &k, CHUNK, load, &l, &e),
				 0);
		mfsd_cache_put(&c, e);
	}
	mfsd_cache_get_stats(&c, &st);
	assert_true(st.bytes <= 3 * CHUNK);
	assert_int_equal(st.evictions, 7);
	/* The most recent chunk is still there, the first is gone. */
	k = key(1, 9);
	assert_int_equal(mfsd_cache_get(&c, &k, CHUNK, load, &l, &e), 0);
	mfsd_cache_put(&c, e);
	assert_int_equal(l.calls, 10);
	k = key(1, 0);
	assert_int_equal(mfsd_cache_get(&c, &k, CHUNK, load, &l, &e), 0);
	mfsd_cache_put(&c, e);
	assert_int_equal(l.calls, 11);
	mfsd_cache_destroy(&c);
}

static void test_pinned_entries_survive(void **state)
{
	struct mfsd_cache c;
	struct mfsd_cache_entry *pinned, *e;
	struct loader l = {.fill = 0x5a};
	struct mfsd_cache_key k = key(1, 0);
	struct mfsd_cache_stats st;

	(void)state;
	/* Budget 0: nothing unpinned is kept. */
	assert_int_equal(mfsd_cache_init(&c, 0), 0);
	assert_int_equal(mfsd_cache_get(&c, &k, CHUNK, load, &l, &pinned), 0);
	l.fill = 0;
	for (uint64_t i = 1; i < 5; i++) {
		k = key(1, i);
		assert_int_equal(mfsd_cache_get(&c, &k, CHUNK, load, &l, &e),
				 0);
		mfsd_cache_put(&c, e);
	}
	assert_int_equal(
		((const unsigned char *)mfsd_cache_data(pinned))[100], 0x5a);
	mfsd_cache_get_stats(&c, &st);
	assert_int_equal(st.bytes, CHUNK);
	mfsd_cache_put(&c, pinned);
	mfsd_cache_get_stats(&c, &st);
	assert_int_equal(st.bytes, 0);
	mfsd_cache_destroy(&c);
}

static void test_drop_model(void **state)
{
	struct mfsd_cache c;
	struct mfsd_cache_entry *pinned, *e;
	struct loader l = {.fill = 1};
	struct mfsd_cache_key k1 = key(1, 0), k2 = key(2, 0);
	struct mfsd_cache_stats st;

	(void)state;
	assert_int_equal(mfsd_cache_init(&c, 1u << 20), 0);
	assert_int_equal(mfsd_cache_get(&c, &k1, CHUNK, load, &l, &pinned), 0);
	assert_int_equal(mfsd_cache_get(&c, &k2, CHUNK, load, &l, &e), 0);
	mfsd_cache_put(&c, e);
	mfsd_cache_drop_model(&c, 1);
	/* Still readable while pinned, gone for new lookups. */
	assert_int_equal(((const unsigned char *)mfsd_cache_data(pinned))[0], 1);
	assert_int_equal(mfsd_cache_get(&c, &k1, CHUNK, load, &l, &e), 0);
	mfsd_cache_put(&c, e);
	assert_int_equal(l.calls, 3);
	mfsd_cache_put(&c, pinned);
	mfsd_cache_drop_model(&c, 1);
	mfsd_cache_drop_model(&c, 2);
	mfsd_cache_get_stats(&c, &st);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.entries, 0);
	mfsd_cache_destroy(&c);
}

struct racer {
	struct mfsd_cache *c;
	struct loader *l;
	int rc;
	unsigned char seen;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	struct mfsd_cache_key k = key(3, 3);
	struct mfsd_cache_entry *e;

	r->rc = mfsd_cache_get(r->c, &k, CHUNK, load, r->l, &e);
	if (r->rc == 0) {
		r->seen = ((const unsigned char *)mfsd_cache_data(e))[10];
		mfsd_cache_put(r->c, e);
	}
	return NULL;
}

/* Threads wanting the same chunk at once share one load. */
static void test_single_flight(void **state)
{
	struct mfsd_cache c;
	struct loader l = {.fill = 0x77, .delay_us = 100000};
	struct racer r[THREADS];
	pthread_t t[THREADS];

	(void)state;
	assert_int_equal(mfsd_cache_init(&c, 1u << 20), 0);
	for (int i = 0; i < THREADS; i++) {
		r[i] = (struct racer){.c = &c, .l = &l};
		assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(r[i].rc, 0);
		assert_int_equal(r[i].seen, 0x77);
	}
	assert_int_equal(l.calls, 1);
	mfsd_cache_destroy(&c);
}

/* Waiters on a load that fails get its error, and nobody keeps it. */
static void test_single_flight_failure(void **state)
{
	struct mfsd_cache c;
	struct loader l = {.fail = -EIO, .delay_us = 100000};
	struct racer r[THREADS];
	pthread_t t[THREADS];
	struct mfsd_cache_stats st;

	(void)state;
	assert_int_equal(mfsd_cache_init(&c, 1u << 20), 0);
	for (int i = 0; i < THREADS; i++) {
		r[i] = (struct racer){.c = &c, .l = &l};
		assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(r[i].rc, -EIO);
	}
	/* Late arrivals may have retried, but never all at once. */
	assert_true(l.calls >= 1 && l.calls < THREADS);
	mfsd_cache_get_stats(&c, &st);
	assert_int_equal(st.entries, 0);
	mfsd_cache_destroy(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_miss_then_hit),
		cmocka_unit_test(test_failed_load_is_not_kept),
		cmocka_unit_test(test_short_load_is_eio),
		cmocka_unit_test(test_eviction_by_bytes),
		cmocka_unit_test(test_pinned_entries_survive),
		cmocka_unit_test(test_drop_model),
		cmocka_unit_test(test_single_flight),
		cmocka_unit_test(test_single_flight_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
