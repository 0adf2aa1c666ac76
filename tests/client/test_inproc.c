/*
 * test_inproc.c - in-process stores: the shared cases, then what only they
 * do: frozen builders, models outliving builder and store, clients keeping
 * the store's memory, their spec strings, and reader failures.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cases.h"

#define CT_SPEC_MAX 128

/* A put freezes the builder: it cannot change under its readers. */
static void test_frozen_builder(void **state)
{
	mfs_builder *b = ct_std_builder(1);
	mfs_array_spec spec = *ct_std_spec(CT_EMB);
	mfs_store *s;
	size_t len;
	const void *data = ct_std_data(CT_EMB, 1, &len);

	(void)state;
	assert_int_equal(mfs_store_new_in_process(&s), 0);
	assert_int_equal(mfs_store_put(s, b, "frozen", 0, NULL), 0);
	spec.name = "more";
	ct_expect(mfs_builder_add(b, &spec, data, 0), -EBUSY, "frozen");
	ct_expect(mfs_builder_add_reader(b, &spec, NULL, NULL, 0), -EBUSY,
		  "frozen");
	ct_expect(mfs_builder_set_metadata(b, "{}", 2), -EBUSY, "frozen");
	assert_int_equal(mfs_store_release(s), 0);
	mfs_builder_free(b);
}

/* Models keep the builder's arrays after the builder and store are gone. */
static void test_model_outlives(void **state)
{
	mfs_builder *b = ct_std_builder(1);
	mfs_client *c;
	mfs_model *m;
	mfs_store *s;

	(void)state;
	assert_int_equal(mfs_store_new_in_process(&s), 0);
	assert_int_equal(mfs_store_put(s, b, "k", 0, NULL), 0);
	mfs_builder_free(b);
	assert_int_equal(mfs_client_open(&c, mfs_store_client_spec(s)), 0);
	assert_int_equal(mfs_get_model(c, "k", &m), 0);
	assert_int_equal(mfs_client_close(c), 0);
	assert_int_equal(mfs_store_release(s), 0);
	ct_check_std(m, 1, true);
	assert_int_equal(mfs_model_release(m), 0);
}

/* A client keeps the store's memory; the store still shuts down. */
static void test_client_outlives_store(void **state)
{
	mfs_builder *b = ct_std_builder(1);
	mfs_client *c;
	mfs_model *m;
	mfs_store *s;

	(void)state;
	assert_int_equal(mfs_store_new_in_process(&s), 0);
	assert_int_equal(mfs_store_put(s, b, "k", 0, NULL), 0);
	assert_int_equal(mfs_client_open(&c, mfs_store_client_spec(s)), 0);
	assert_int_equal(mfs_store_release(s), 0);
	ct_expect(mfs_store_release(s), -EINVAL, "released more often");
	ct_expect(mfs_get_model(c, "k", &m), -ENOENT, "k");
	assert_int_equal(mfs_client_close(c), 0);
	mfs_builder_free(b);
}

/* Spec strings of in-process stores. */
static void test_specs(void **state)
{
	char spec[CT_SPEC_MAX];
	mfs_client *c;
	mfs_store *s;

	(void)state;
	assert_int_equal(mfs_store_new_in_process(&s), 0);
	snprintf(spec, sizeof(spec), "inproc:%p:%ld", (void *)s,
		 (long)getpid());
	assert_string_equal(mfs_store_client_spec(s), spec);
	snprintf(spec, sizeof(spec), "inproc:%p:%ld", (void *)s,
		 (long)getpid() + 1);
	ct_expect(mfs_client_open(&c, spec), -EXDEV, "cannot be used");
	snprintf(spec, sizeof(spec), "inproc:0x10:%ld", (long)getpid());
	ct_expect(mfs_client_open(&c, spec), -ENOENT, "0x10");
	ct_expect(mfs_client_open(&c, "inproc:10:1"), -EINVAL, "0xADDR");
	ct_expect(mfs_client_open(&c, "inproc:0x10"), -EINVAL, "0xADDR");
	ct_expect(mfs_client_open(&c, "inproc:0x10:"), -EINVAL, "0xADDR");
	ct_expect(mfs_client_open(&c, "inproc:0x10:12x"), -EINVAL, "0xADDR");
	ct_expect(mfs_client_open(&c, "inproc:0x10:-5"), -EINVAL, "0xADDR");
	assert_int_equal(mfs_store_release(s), 0);
	/* The spec of a released store names nothing any more. */
	snprintf(spec, sizeof(spec), "inproc:%p:%ld", (void *)s,
		 (long)getpid());
	ct_expect(mfs_client_open(&c, spec), -ENOENT, "in-process store");
}

static ssize_t ct_failing_reader(void *ctx, uint64_t off, void *buf,
				 size_t len)
{
	(void)ctx;
	(void)buf;
	(void)len;
	return off > 0 ? -EIO : (ssize_t)len / 2;
}

static ssize_t ct_short_reader(void *ctx, uint64_t off, void *buf,
			       size_t len)
{
	(void)ctx;
	memset(buf, 0, len);
	return off > 0 ? 0 : (ssize_t)len / 2;
}

/* A reader failing (or ending early) while the put reads it: nothing is
 * put. */
static void test_reader_failure(void **state)
{
	mfs_builder *b;
	mfs_store *s;
	mfs_client *c;
	mfs_model *m;

	(void)state;
	assert_int_equal(mfs_builder_new(&b), 0);
	assert_int_equal(mfs_builder_add_reader(b, ct_std_spec(CT_EMB),
						ct_failing_reader, NULL, 0),
			 0);
	assert_int_equal(mfs_store_new_in_process(&s), 0);
	ct_expect(mfs_store_put(s, b, "k", 0, NULL), -EIO, "emb");
	mfs_builder_free(b);
	assert_int_equal(mfs_builder_new(&b), 0);
	assert_int_equal(mfs_builder_add_reader(b, ct_std_spec(CT_EMB),
						ct_short_reader, NULL, 0),
			 0);
	ct_expect(mfs_store_put(s, b, "k", 0, NULL), -EINVAL, "reader ended");
	assert_int_equal(mfs_client_open(&c, mfs_store_client_spec(s)), 0);
	ct_expect(mfs_get_model(c, "k", &m), -ENOENT, "k");
	assert_int_equal(mfs_client_close(c), 0);
	assert_int_equal(mfs_store_release(s), 0);
	mfs_builder_free(b);
}

/* Imports into memory decode and check every chunk. */
static void test_import_checks(void **state)
{
	char dir[PATH_MAX];
	const char *path;
	mfs_builder *b = ct_std_builder(1);
	mfs_container *c;
	mfs_array_info ai;
	mfs_store *s;
	size_t i;

	(void)state;
	ct_scratch("/var/tmp", dir);
	path = ct_path(dir, "m.mfs");
	assert_int_equal(mfs_builder_write(b, path), 0);
	assert_int_equal(mfs_container_open(&c, path), 0);
	assert_int_equal(mfs_container_find(c, "sim.data", &i), 0);
	assert_int_equal(mfs_container_array(c, i, &ai), 0);
	mfs_container_close(c);
	ct_flip_byte(path, ai.data_offset + 1, 1);
	assert_int_equal(mfs_store_new_in_process(&s), 0);
	ct_expect(mfs_store_put_file(s, path, "k", 0, NULL), -EIO, "sim.data");
	assert_int_equal(mfs_store_release(s), 0);
	mfs_builder_free(b);
	ct_rmtree(dir);
}


/* Keys and rounds of the shutdown race: enough interleavings to land a
 * lookup inside the shutdown on two cores, quick under ASan. */
#define CT_RACE_KEYS 8
#define CT_RACE_ROUNDS 100
#define CT_RACE_SPIN 20000
#define CT_RACE_LEN 16

struct ct_race {
	mfs_client *client;
	atomic_int stop;
};

/* Looks every key up until told to stop; misses are expected once the
 * store has shut down. */
static void *ct_race_reader(void *arg)
{
	struct ct_race *r = arg;
	char key[MFS_KEY_BUFSIZE];
	mfs_model *m;

	while (!atomic_load(&r->stop)) {
		for (int k = 0; k < CT_RACE_KEYS; k++) {
			snprintf(key, sizeof(key), "k%d", k);
			if (mfs_get_model(r->client, key, &m) == 0)
				assert_int_equal(mfs_model_release(m), 0);
		}
	}
	return NULL;
}

/* The last store release shuts the store down while an attached client
 * looks keys up on another thread: no use of freed entries (ASan). */
static void test_shutdown_races_lookups(void **state)
{
	static const float data[CT_RACE_LEN];
	mfs_array_spec spec = {.name = "w", .dtype = MFS_DTYPE_FLOAT32,
			       .ndim = 1, .shape = {CT_RACE_LEN}};
	char key[MFS_KEY_BUFSIZE];

	(void)state;
	for (int round = 0; round < CT_RACE_ROUNDS; round++) {
		struct ct_race r = {0};
		mfs_builder *b;
		mfs_store *s;
		pthread_t t;

		assert_int_equal(mfs_store_new_in_process(&s), 0);
		for (int k = 0; k < CT_RACE_KEYS; k++) {
			snprintf(key, sizeof(key), "k%d", k);
			assert_int_equal(mfs_builder_new(&b), 0);
			assert_int_equal(mfs_builder_add(b, &spec, data, 0), 0);
			assert_int_equal(mfs_store_put(s, b, key, 0, NULL), 0);
			mfs_builder_free(b);
		}
		assert_int_equal(mfs_client_open(&r.client,
						 mfs_store_client_spec(s)), 0);
		assert_int_equal(pthread_create(&t, NULL, ct_race_reader, &r),
				 0);
		for (volatile int i = 0; i < CT_RACE_SPIN; i++)
			;
		assert_int_equal(mfs_store_release(s), 0);
		atomic_store(&r.stop, 1);
		assert_int_equal(pthread_join(t, NULL), 0);
		assert_int_equal(mfs_client_close(r.client), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frozen_builder),
		cmocka_unit_test(test_model_outlives),
		cmocka_unit_test(test_client_outlives_store),
		cmocka_unit_test(test_specs),
		cmocka_unit_test(test_reader_failure),
		cmocka_unit_test(test_import_checks),
		cmocka_unit_test(test_shutdown_races_lookups),
	};
	struct ct_kind inproc = {.name = "inproc", .open = ct_open_inproc,
				 .cross_process = false};
	int fails;

	ct_scratch("/var/tmp", inproc.scratch);
	fails = ct_run_cases("inproc-store", &inproc);

	fails += cmocka_run_group_tests_name("inproc-store-only", tests, NULL,
					     NULL);
	ct_rmtree(inproc.scratch);
	return fails ? 1 : 0;
}
