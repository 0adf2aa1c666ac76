/*
 * test_writer_oom.c - an allocation failure injected at every allocation
 * the writer makes (create, metadata, array records, name set, chunk
 * tables, buffers, index): each must fail with -ENOMEM, leave neither a
 * temporary file nor anything at the final path (no leak under ASan), and
 * the same sequence must succeed once memory returns.
 *
 * malloc, calloc, realloc, strdup and strndup of the library are
 * redirected here at link time (-Wl,--wrap).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wtest.h"

#define KIB 1024u
#define SMALL_CHUNK (4 * KIB)
/* More arrays than the writer's initial table and name-set sizes. */
#define OOM_ARRAYS 20
/* More chunks than the initial chunk table holds. */
#define OOM_CHUNKS 100
/* No scenario needs more allocations than this; reaching it is a bug. */
#define MAX_INJECTIONS 1000

/* Which allocation fails (-1: none) and how many have been made. */
static long fail_at = -1;
static long calls;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

static bool inject(void)
{
	return fail_at >= 0 && calls++ == fail_at;
}

void *__wrap_malloc(size_t n)
{
	return inject() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return inject() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	return inject() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	return inject() ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
	return inject() ? NULL : __real_strndup(s, n);
}

/*
 * Runs the whole write with allocation @n failing (-1: none).  Returns 0
 * on success or the first error, after checking the error is -ENOMEM.
 */
static int write_model(const char *path, const uint8_t *data, long n)
{
	static const char meta[] = "{\"oom\": true}";
	char names[OOM_ARRAYS][8];
	mfs_writer *w;
	int rc;

	calls = 0;
	fail_at = n;
	rc = mfs_writer_create(&w, path);
	if (rc < 0)
		goto out;
	rc = mfs_writer_set_metadata(w, meta, strlen(meta));
	if (rc < 0) {
		/* A failed set_metadata does not poison: abort by hand. */
		mfs_writer_abort(w);
		goto out;
	}
	for (int i = 0; rc == 0 && i < OOM_ARRAYS; i++) {
		/* Array 0 has many chunks; the rest are one chunk each. */
		size_t len = i == 0 ? OOM_CHUNKS * SMALL_CHUNK : (size_t)i;
		mfs_array_spec s;

		snprintf(names[i], sizeof(names[i]), "a%d", i);
		s = wt_spec1(names[i], MFS_DTYPE_UINT8, len,
			     i % 2 ? MFS_CODEC_LZ4 : MFS_CODEC_NONE,
			     SMALL_CHUNK);
		rc = mfs_writer_add_array_buffer(w, &s, data, len);
	}
	if (rc < 0) {
		if (rc == -ENOMEM)
			assert_non_null(strstr(mfs_last_error(), "out of memory"));
		fail_at = -1;
		/* Poisoned: commit refuses and cleans up like abort. */
		assert_int_equal(mfs_writer_commit(w), -EINVAL);
		goto out;
	}
	rc = mfs_writer_commit(w);
out:
	fail_at = -1;
	if (rc < 0)
		assert_int_equal(rc, -ENOMEM);
	return rc;
}

static void test_every_allocation_fails_once(void **state)
{
	const struct wt_ctx *ctx = *state;
	const char *path = wt_path(ctx, "oom.mfs");
	uint8_t *data = malloc(OOM_CHUNKS * SMALL_CHUNK);
	mfs_container *c;
	long n;

	assert_non_null(data);
	wt_random(data, OOM_CHUNKS * SMALL_CHUNK, 11);
	for (n = 0; n < MAX_INJECTIONS; n++) {
		int rc = write_model(path, data, n);

		if (calls <= n) {
			/* The injection point was never reached: done. */
			assert_int_equal(rc, 0);
			break;
		}
		assert_int_equal(rc, -ENOMEM);
		wt_assert_absent(path);
		assert_int_equal(wt_count_entries(ctx->dir), 0);
	}
	assert_true(n > 0 && n < MAX_INJECTIONS);
	print_message("%ld allocation failures injected\n", n);
	c = wt_open(path);
	assert_int_equal(mfs_container_array_count(c), OOM_ARRAYS);
	mfs_container_close(c);
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_every_allocation_fails_once,
						wt_setup, wt_teardown),
	};

	return cmocka_run_group_tests_name("writer oom", tests, NULL, NULL);
}
