/*
 * test_oom.c - an allocation failure injected at every allocation of the
 * daemon's live-update paths: opening a store, setting up the watch,
 * holding a model, a rescan that replaces, adds and refuses containers,
 * the copies .status makes, a maintenance round with the page-cache
 * budget, and the end of a replaced model.  Each run must report
 * -ENOMEM or succeed, keep the table consistent, and leak nothing (ASan);
 * once no injection is reached the outcome must be the full one.
 *
 * Allocations fail through tests/support/fail_alloc.h; the test's own
 * set-up allocations are made with counting paused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "chunkcache.h"
#include "fail_alloc.h"
#include "follow.h"
#include "inode.h"
#include "table.h"
#include "watch.h"

#define CACHE_BYTES (1u << 20)
#define PATH_LEN 512
#define DIR_LEN 64
/* The user holds are made as, which does not matter here. */
#define HOLDER_UID 1000
/* No run needs more allocations than this; reaching it is a bug. */
#define MAX_INJECTIONS 5000

static char g_dir[DIR_LEN];

static int nop_entry(void *arg, uint64_t parent, const char *name)
{
	(void)arg, (void)parent, (void)name;
	return 0;
}

static int nop_delete(void *arg, uint64_t parent, uint64_t child,
		      const char *name)
{
	(void)arg, (void)parent, (void)child, (void)name;
	return 0;
}

static int nop_inode(void *arg, uint64_t ino, int64_t off, int64_t len)
{
	(void)arg, (void)ino, (void)off, (void)len;
	return 0;
}

/* Writes container @name with one uint8 array of @value (no injection). */
static void write_version(const char *name, unsigned char value)
{
	mfs_array_spec v = {.name = "v", .dtype = MFS_DTYPE_UINT8, .ndim = 1,
			    .shape = {16}};
	unsigned char bytes[16];
	char path[PATH_LEN];
	mfs_writer *wr;
	bool was = fail_alloc_pause(true);

	memset(bytes, value, sizeof(bytes));
	snprintf(path, sizeof(path), "%s/%s", g_dir, name);
	assert_int_equal(mfs_writer_create(&wr, path), 0);
	assert_int_equal(mfs_writer_add_array_buffer(wr, &v, bytes,
						     sizeof(bytes)), 0);
	assert_int_equal(mfs_writer_commit(wr), 0);
	fail_alloc_pause(was);
}

static void write_garbage(const char *name)
{
	char path[PATH_LEN];
	FILE *f;
	bool was = fail_alloc_pause(true);

	snprintf(path, sizeof(path), "%s/%s", g_dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("not a container", f);
	fclose(f);
	fail_alloc_pause(was);
}

static void reset_dir(void)
{
	char path[PATH_LEN];

	write_version("a.mfs", 1);
	snprintf(path, sizeof(path), "%s/b.mfs", g_dir);
	(void)unlink(path);
	snprintf(path, sizeof(path), "%s/bad.mfs", g_dir);
	(void)unlink(path);
}

static void ok_or_nomem(int rc)
{
	assert_true(rc == 0 || rc == -ENOMEM);
}

/* The store part of a run: returns true if every step succeeded. */
static bool run_store(struct mfsd_table *s, struct mfsd_watch *w)
{
	struct mfsd_model *old = mfsd_table_get_key(s, "a");
	struct mfsd_model_usage u;
	struct mfsd_dirent_model *list;
	struct mfsd_skipped *sk;
	uint64_t gen;
	bool ok = true, held;
	ssize_t n;
	int rc;

	/* An allocation failed while loading "a" at open: it is skipped
	 * and retried by the rescan below. */
	if (!old)
		return false;
	gen = old->gen;
	mfsd_table_lookup(s, old, MFSD_SLOT_DIR, 1);
	mfsd_table_lookup(s, old, MFSD_SLOT_ARRAY0, 1);
	rc = mfsd_table_open_handle(s, old, 7, HOLDER_UID, MFSD_SLOT_ARRAY0);
	ok_or_nomem(rc);
	held = rc == 0;
	ok &= held;
	mfsd_model_served(old, 1000);
	mfsd_table_put(s, old);

	write_version("a.mfs", 2);
	write_version("b.mfs", 1);
	write_garbage("bad.mfs");
	rc = mfsd_follow_rescan(s, mfsd_watch_post, w);
	ok_or_nomem(rc);
	ok &= rc == 0;

	old = mfsd_table_get_gen(s, gen);
	assert_non_null(old);
	rc = mfsd_table_usage(s, old, &u);
	ok_or_nomem(rc);
	if (rc == 0)
		mfsd_table_usage_free(&u);
	ok &= rc == 0;
	n = mfsd_table_list(s, &list);
	ok_or_nomem(n < 0 ? (int)n : 0);
	if (n >= 0)
		mfsd_table_free_list(list, (size_t)n);
	ok &= n >= 0;
	n = mfsd_follow_skipped(s, &sk);
	ok_or_nomem(n < 0 ? (int)n : 0);
	if (n >= 0)
		mfsd_follow_free_skipped(sk, (size_t)n);
	ok &= n >= 0;
	if (held && mfsd_table_release_handle(s, old, 7, MFSD_SLOT_ARRAY0))
		mfsd_watch_kick(w);
	mfsd_table_put(s, old);
	mfsd_watch_run_once(w, 0);
	if (mfsd_table_forget(s, gen, MFSD_SLOT_ARRAY0, 1))
		mfsd_watch_kick(w);
	mfsd_watch_run_once(w, 0);
	return ok;
}

/* The outcome of a run in which nothing failed. */
static void check_full(struct mfsd_table *s)
{
	struct mfsd_table_counts sc;

	struct mfsd_model *a = mfsd_table_get_key(s, "a");
	struct mfsd_model *b = mfsd_table_get_key(s, "b");
	bool bad_skipped = false;

	assert_non_null(a);
	assert_non_null(b);
	assert_true(a->gen > 1);
	mfsd_table_put(s, a);
	mfsd_table_put(s, b);
	for (size_t i = 0; i < s->nskipped; i++)
		bad_skipped |= strcmp(s->skipped[i].file_name, "bad.mfs") == 0;
	assert_true(bad_skipped);
	/* The replaced "a": its file forgotten, its directory not, so
	 * retired. */
	mfsd_table_counts(s, &sc);
	assert_int_equal(sc.retired, 1);
}

/* One run with the @k-th allocation failing; true if none failed. */
static bool run(long k)
{
	const struct mfsd_notifier nop = {nop_entry, nop_delete, nop_inode,
					  NULL};
	struct mfsd_cache c;
	struct mfsd_table *s = NULL;
	struct mfsd_watch w;
	bool ok = false, watching = false;
	int rc;

	reset_dir();
	fail_alloc_arm(k);
	rc = mfsd_cache_init(&c, CACHE_BYTES);
	ok_or_nomem(rc);
	if (rc < 0)
		goto out;
	rc = mfsd_table_open(&s, g_dir, &c);
	ok_or_nomem(rc);
	if (rc == 0) {
		rc = mfsd_watch_init(&w, s, 1);
		ok_or_nomem(rc);
		watching = rc == 0;
	}
	if (watching)
		ok_or_nomem(mfsd_follow_rescan(s, NULL, NULL));
	if (watching) {
		w.notifier = nop;
		w.retire_grace_ns = 0; /* retire at once: that path too */
		ok = run_store(s, &w);
	}
	if (!fail_alloc_hit()) {
		assert_true(ok);
		check_full(s);
	}
	if (watching) {
		assert_true(mfsd_watch_stop(&w));
		mfsd_watch_destroy(&w);
	}
	mfsd_table_close(s);
	mfsd_cache_destroy(&c);
out:
	return !fail_alloc_disarm();
}

static void test_oom_live(void **state)
{
	long k = 0;

	(void)state;
	while (!run(k)) {
		k++;
		assert_true(k < MAX_INJECTIONS);
	}
	/* Some allocation was failed, and a run got through. */
	assert_true(k > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oom_live),
	};
	char cmd[DIR_LEN + 16];
	int rc;

	snprintf(g_dir, sizeof(g_dir), "/tmp/mfsd-test-oom-XXXXXX");
	if (!mkdtemp(g_dir))
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	if (system(cmd) != 0)
		return 1;
	return rc;
}
