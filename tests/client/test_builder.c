/*
 * test_builder.c - model builders and sharing mode: every refusal of
 * mfs_builder_add, metadata checks, derived arrays dropped by
 * mfs_builder_write outside share context and kept inside it, reader
 * failures while writing, and nested share context on two threads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctest.h"

/* Share-context depths of the two threads of test_sharing_threads. */
#define CT_DEPTH_A 3
#define CT_DEPTH_B 2
#define CT_READER_LEN 64
#define CT_NAME_MAX 32

static char ct_base[PATH_MAX];

/* Every refusal of mfs_builder_add, and that nothing was added. */
static void test_add_refusals(void **state)
{
	const mfs_array_spec good = *ct_std_spec(CT_EMB);
	mfs_array_spec s;
	mfs_builder *b;
	size_t len;
	const void *d = ct_std_data(CT_EMB, 1, &len);

	(void)state;
	ct_expect(mfs_builder_new(NULL), -EINVAL, "NULL");
	assert_int_equal(mfs_builder_new(&b), 0);
	ct_expect(mfs_builder_add(NULL, &good, d, 0), -EINVAL, "NULL");
	ct_expect(mfs_builder_add(b, NULL, d, 0), -EINVAL, "NULL");
	ct_expect(mfs_builder_add(b, &good, d, 0x40), -EINVAL, "flags");
	ct_expect(mfs_builder_add(b, &good, NULL, 0), -EINVAL, "NULL data");
	s = good, s.name = ".hidden";
	ct_expect(mfs_builder_add(b, &s, d, 0), -EINVAL, ".hidden");
	s = good, s.dtype = (mfs_dtype)MFS_DTYPE_COUNT;
	ct_expect(mfs_builder_add(b, &s, d, 0), -EINVAL, "dtype");
	s = good, s.ndim = MFS_MAX_NDIM + 1;
	ct_expect(mfs_builder_add(b, &s, d, 0), -EINVAL, "ndim");
	s = good, s.order = (mfs_order)2;
	ct_expect(mfs_builder_add(b, &s, d, 0), -EINVAL, "order");
	s = good, s.codec = (mfs_codec)7;
	ct_expect(mfs_builder_add(b, &s, d, 0), -EINVAL, "codec");
	s = good, s.chunk_size = 5000;
	ct_expect(mfs_builder_add(b, &s, d, 0), -EINVAL, "chunk_size");
	s = good, s.shape[0] = UINT64_MAX / 2, s.shape[1] = 3;
	ct_expect(mfs_builder_add(b, &s, d, 0), -EINVAL, "overflows");
	ct_expect(mfs_builder_add_reader(b, &good, NULL, NULL, 0), -EINVAL,
		  "NULL reader");
	ct_expect(mfs_builder_add_reader(b, &good, NULL, NULL, MFS_ARRAY_COPY),
		  -EINVAL, "flags");
	assert_int_equal(mfs_builder_add(b, &good, d, 0), 0);
	ct_expect(mfs_builder_add(b, &good, d, 0), -EEXIST, "emb");
	ct_expect(mfs_builder_set_metadata(b, "[1]", 3), -EINVAL, "object");
	ct_expect(mfs_builder_set_metadata(b, "{", 1), -EINVAL, "JSON");
	ct_expect(mfs_builder_set_metadata(NULL, "{}", 2), -EINVAL, "NULL");
	ct_expect(mfs_builder_write(NULL, "x"), -EINVAL, "NULL");
	ct_expect(mfs_builder_write(b, NULL), -EINVAL, "NULL");
	mfs_builder_free(b);
	mfs_builder_free(NULL);
}

/* A model holds at most MFS_MAX_ARRAYS arrays. */
static void test_too_many_arrays(void **state)
{
	mfs_array_spec s = {.dtype = MFS_DTYPE_INT8, .ndim = 1};
	char name[CT_NAME_MAX];
	mfs_builder *b;

	(void)state;
	s.name = name;
	assert_int_equal(mfs_builder_new(&b), 0);
	for (unsigned i = 0; i < MFS_MAX_ARRAYS; i++) {
		snprintf(name, sizeof(name), "a%u", i);
		assert_int_equal(mfs_builder_add(b, &s, NULL, 0), 0);
	}
	snprintf(name, sizeof(name), "one-more");
	ct_expect(mfs_builder_add(b, &s, NULL, 0), -E2BIG, "at most");
	mfs_builder_free(b);
}

/* Names of the arrays of the container at @path, in file order. */
static size_t ct_array_names(const char *path, char names[][CT_NAME_MAX])
{
	mfs_container *c;
	mfs_array_info ai;
	size_t n;

	assert_int_equal(mfs_container_open(&c, path), 0);
	n = mfs_container_array_count(c);
	for (size_t i = 0; i < n; i++) {
		mfs_container_array(c, i, &ai);
		snprintf(names[i], CT_NAME_MAX, "%s", ai.name);
	}
	mfs_container_close(c);
	return n;
}

/* Derived arrays: dropped outside share context, kept inside. */
static void test_write_derived(void **state)
{
	char names[CT_STD_COUNT][CT_NAME_MAX];
	const char *plain = ct_path(ct_base, "plain.mfs");
	const char *shared = ct_path(ct_base, "shared.mfs");
	mfs_builder *b = ct_std_builder(1);

	(void)state;
	assert_false(mfs_in_share_context());
	assert_int_equal(mfs_builder_write(b, plain), 0);
	assert_int_equal(ct_array_names(plain, names), CT_STD_COUNT - 1);
	for (int i = 0; i < CT_STD_COUNT - 1; i++)
		assert_string_not_equal(names[i], "inv");
	mfs_sharing_begin();
	assert_int_equal(mfs_builder_write(b, shared), 0);
	assert_int_equal(mfs_sharing_end(), 0);
	assert_int_equal(ct_array_names(shared, names), CT_STD_COUNT);
	assert_string_equal(names[CT_INV], "inv");
	ct_expect(mfs_builder_write(b, ct_path(ct_base, "no/such/x.mfs")),
		  -ENOENT, "no/such");
	mfs_builder_free(b);
}

/* A positional reader with a configurable misbehaviour. */
enum ct_misbehave { CT_READ_ERROR, CT_READ_TOO_MUCH, CT_READ_SHORT };

static ssize_t ct_bad_reader(void *ctx, uint64_t off, void *buf, size_t len)
{
	enum ct_misbehave how = *(enum ct_misbehave *)ctx;

	memset(buf, 1, len);
	switch (how) {
	case CT_READ_ERROR:
		return -ENOSPC;
	case CT_READ_TOO_MUCH:
		return (ssize_t)len + 1;
	case CT_READ_SHORT:
		break;
	}
	return off == 0 ? (ssize_t)(len / 2) : 0;
}

/* Reader failures abort the write; nothing is left at the path. */
static void test_write_reader_failures(void **state)
{
	static const struct {
		enum ct_misbehave how;
		int err;
		const char *needle;
	} cases[] = {
		{CT_READ_ERROR, -ENOSPC, "reader failed at offset 0"},
		{CT_READ_TOO_MUCH, -EINVAL, "more than"},
		{CT_READ_SHORT, -EINVAL, "reader.mfs"},
	};
	mfs_array_spec s = {.name = "r", .dtype = MFS_DTYPE_UINT8, .ndim = 1,
			    .shape = {CT_READER_LEN}};
	const char *path = ct_path(ct_base, "reader.mfs");

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		enum ct_misbehave how = cases[i].how;
		mfs_builder *b;
		assert_int_equal(mfs_builder_new(&b), 0);
		assert_int_equal(mfs_builder_add_reader(b, &s, ct_bad_reader,
							&how, 0),
				 0);
		ct_expect(mfs_builder_write(b, path), cases[i].err,
			  cases[i].needle);
		assert_false(ct_exists(path));
		mfs_builder_free(b);
	}
}

/* Nesting: every begin needs an end; one end too many is refused. */
static void test_sharing_nesting(void **state)
{
	(void)state;
	assert_false(mfs_in_share_context());
	mfs_sharing_begin();
	mfs_sharing_begin();
	assert_true(mfs_in_share_context());
	assert_int_equal(mfs_sharing_end(), 0);
	assert_true(mfs_in_share_context());
	assert_int_equal(mfs_sharing_end(), 0);
	assert_false(mfs_in_share_context());
	ct_expect(mfs_sharing_end(), -EINVAL, "not in share context");
	assert_false(mfs_in_share_context());
}

/* What the two threads of test_sharing_threads report. */
struct ct_share_thread {
	pthread_barrier_t *barrier;
	int depth;
	bool ok;
};

/* Nests @depth levels, waits for the other thread to do the same, checks
 * it sees only its own state, and unwinds. */
static void *ct_share_thread(void *p)
{
	struct ct_share_thread *t = p;
	bool ok = !mfs_in_share_context();

	for (int i = 0; i < t->depth; i++)
		mfs_sharing_begin();
	pthread_barrier_wait(t->barrier); /* both are nested now */
	for (int i = 0; i < t->depth; i++) {
		ok = ok && mfs_in_share_context();
		ok = ok && mfs_sharing_end() == 0;
	}
	ok = ok && !mfs_in_share_context();
	pthread_barrier_wait(t->barrier); /* both have unwound */
	ok = ok && mfs_sharing_end() == -EINVAL;
	t->ok = ok;
	return NULL;
}

/* Share context is per thread: two threads nest at once, independently,
 * and the main thread is not affected. */
static void test_sharing_threads(void **state)
{
	pthread_barrier_t barrier;
	struct ct_share_thread a = {&barrier, CT_DEPTH_A, false};
	struct ct_share_thread b = {&barrier, CT_DEPTH_B, false};
	pthread_t ta, tb;

	(void)state;
	pthread_barrier_init(&barrier, NULL, 2);
	mfs_sharing_begin(); /* the main thread's own level */
	assert_int_equal(pthread_create(&ta, NULL, ct_share_thread, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, ct_share_thread, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	pthread_barrier_destroy(&barrier);
	assert_true(a.ok);
	assert_true(b.ok);
	assert_true(mfs_in_share_context());
	assert_int_equal(mfs_sharing_end(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_refusals),
		cmocka_unit_test(test_too_many_arrays),
		cmocka_unit_test(test_write_derived),
		cmocka_unit_test(test_write_reader_failures),
		cmocka_unit_test(test_sharing_nesting),
		cmocka_unit_test(test_sharing_threads),
	};
	int rc;

	ct_scratch("/var/tmp", ct_base);
	rc = cmocka_run_group_tests_name("builder", tests, NULL, NULL);
	ct_rmtree(ct_base);
	return rc;
}
