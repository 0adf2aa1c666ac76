/*
 * test_writer_oom.c - an allocation failure injected at every allocation
 * the writer makes (create, metadata, array records, name set, chunk
 * tables, buffers, the LZ4 encoding pool, index): each must fail with -ENOMEM, leave neither a
 * temporary file nor anything at the final path (no leak under ASan), and
 * the same sequence must succeed once memory returns.
 *
 * Allocations fail through tests/support/fail_alloc.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail_alloc.h"
#include "wtest.h"

#define KIB 1024u
#define SMALL_CHUNK (4 * KIB)
/* More arrays than the writer's initial table and name-set sizes. */
#define OOM_ARRAYS 20
/* More chunks than the initial chunk table holds. */
#define OOM_CHUNKS 100
/* Encoding threads: array 1 (LZ4, many chunks) goes through the pool. */
#define OOM_THREADS "2"
/* No scenario needs more allocations than this; reaching it is a bug. */
#define MAX_INJECTIONS 1000

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

	fail_alloc_arm(n);
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
		/* Arrays 0 (raw) and 1 (LZ4) have many chunks; the rest
		 * are one chunk each. */
		size_t len = i < 2 ? OOM_CHUNKS * SMALL_CHUNK : (size_t)i;
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
		fail_alloc_disarm();
		/* Poisoned: commit refuses and cleans up like abort. */
		assert_int_equal(mfs_writer_commit(w), -EINVAL);
		goto out;
	}
	rc = mfs_writer_commit(w);
out:
	fail_alloc_disarm();
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

		if (!fail_alloc_hit()) {
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
	if (setenv("MODELFS_WRITER_THREADS", OOM_THREADS, 1) != 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_every_allocation_fails_once,
						wt_setup, wt_teardown),
	};

	return cmocka_run_group_tests_name("writer oom", tests, NULL, NULL);
}
