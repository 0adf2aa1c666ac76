/*
 * test_stores.c - mfs_store_get's priority without a daemon (reuse,
 * in-process, mount absent, MODELFS_MOUNT, MODELFS_STORE, private
 * directories), the per-thread store stack, and client spec refusals.
 * The mount-present cases are in test_mount.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctest.h"
#include "mount_internal.h"

#define CT_SPEC_MAX (PATH_MAX + 16)

static char ct_base[PATH_MAX];

/* Each test starts from a known environment: no daemon on the mount
 * path, no MODELFS_STORE, TMPDIR in the scratch directory. */
static int ct_env_setup(void **state)
{
	(void)state;
	ct_setenv("MODELFS_MOUNT", ct_path(ct_base, "no-mount"));
	ct_setenv("MODELFS_STORE", NULL);
	ct_setenv("TMPDIR", ct_base);
	return 0;
}

static bool ct_starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* No daemon, no MODELFS_STORE: a private directory under $TMPDIR, removed
 * at the last release with the ephemeral models in it. */
static void test_private_dir(void **state)
{
	char want[CT_SPEC_MAX], dir[PATH_MAX], key[MFS_KEY_BUFSIZE];
	mfs_builder *b = ct_std_builder(1);
	mfs_store *s;

	(void)state;
	assert_int_equal(mfs_store_get(&s, 0), 0);
	assert_true(snprintf(want, sizeof(want), "dir:%s/modelfs-", ct_base) <
		    (int)sizeof(want));
	assert_true(ct_starts(mfs_store_client_spec(s), want));
	snprintf(dir, sizeof(dir), "%s", mfs_store_client_spec(s) + 4);
	assert_true(ct_exists(dir));
	assert_int_equal(mfs_store_put(s, b, NULL, 0, key), 0);
	assert_int_equal(mfs_store_release(s), 0);
	assert_false(ct_exists(dir));

	/* A persistent model keeps its private directory. */
	ct_setenv("TMPDIR", NULL);
	assert_int_equal(mfs_store_get(&s, 0), 0);
	assert_true(ct_starts(mfs_store_client_spec(s), "dir:/tmp/modelfs-"));
	snprintf(dir, sizeof(dir), "%s", mfs_store_client_spec(s) + 4);
	assert_int_equal(mfs_store_put(s, b, "kept", MFS_PUT_PERSISTENT, NULL),
			 0);
	assert_int_equal(mfs_store_release(s), 0);
	assert_true(ct_exists(ct_path(dir, "kept.mfs")));
	ct_rmtree(dir);
	ct_setenv("TMPDIR", ct_path(ct_base, "no/such"));
	ct_expect(mfs_store_get(&s, 0), -ENOENT, "mkdtemp");
	memset(dir, 'd', sizeof(dir) - 1);
	dir[0] = '/';
	dir[sizeof(dir) - 1] = '\0';
	ct_setenv("TMPDIR", dir);
	ct_expect(mfs_store_get(&s, 0), -ENAMETOOLONG, "too long");
	mfs_builder_free(b);
}

/* MODELFS_STORE names the directory store (created if missing). */
static void test_modelfs_store(void **state)
{
	char want[CT_SPEC_MAX];
	const char *dir = ct_path(ct_base, "env-store");
	mfs_store *s;

	(void)state;
	ct_setenv("MODELFS_STORE", dir);
	assert_int_equal(mfs_store_get(&s, 0), 0);
	snprintf(want, sizeof(want), "dir:%s", dir);
	assert_string_equal(mfs_store_client_spec(s), want);
	assert_int_equal(mfs_store_release(s), 0);
	assert_true(ct_exists(dir)); /* not private: kept */
	ct_setenv("MODELFS_STORE", "");
	assert_int_equal(mfs_store_get(&s, 0), 0);
	assert_true(ct_starts(mfs_store_client_spec(s), "dir:"));
	assert_null(strstr(mfs_store_client_spec(s), "env-store"));
	assert_int_equal(mfs_store_release(s), 0);
	ct_write_file(ct_path(ct_base, "a-file"), "x", 1);
	ct_setenv("MODELFS_STORE", ct_path(ct_base, "a-file"));
	ct_expect(mfs_store_get(&s, 0), -ENOTDIR, "a-file");
}

/* MODELFS_MOUNT pointing at a plain directory, empty, or unset (the
 * default /run/models): no daemon there means a directory store. */
static void test_mount_absent(void **state)
{
	const char *plain = ct_path(ct_base, "plain");
	mfs_store *s;

	(void)state;
	ct_setenv("MODELFS_STORE", ct_path(ct_base, "fallback"));
	assert_int_equal(mkdir(plain, 0755), 0);
	ct_setenv("MODELFS_MOUNT", plain);
	assert_int_equal(mfs_store_get(&s, 0), 0);
	assert_true(ct_starts(mfs_store_client_spec(s), "dir:"));
	assert_int_equal(mfs_store_release(s), 0);
	ct_setenv("MODELFS_MOUNT", "");
	assert_int_equal(mfs_store_get(&s, 0), 0);
	assert_true(ct_starts(mfs_store_client_spec(s), "dir:"));
	assert_int_equal(mfs_store_release(s), 0);
	ct_setenv("MODELFS_MOUNT", NULL);
	assert_int_equal(mfs_store_get(&s, 0), 0);
	/* Whatever this machine has at the default mountpoint decides. */
	assert_true(ct_starts(mfs_store_client_spec(s),
			      mfs_is_modelfs_mount(MFS_DEFAULT_MOUNT)
				      ? "mount:" MFS_DEFAULT_MOUNT
				      : "dir:"));
	assert_int_equal(mfs_store_release(s), 0);
}

/* Reuse returns the top of this thread's stack; NO_REUSE and IN_PROCESS
 * make new stores; releases unwind the stack. */
static void test_reuse_and_stack(void **state)
{
	mfs_store *a, *b, *c, *d, *e;

	(void)state;
	ct_setenv("MODELFS_STORE", ct_path(ct_base, "stack"));
	assert_int_equal(mfs_store_get(&a, 0), 0);
	assert_int_equal(mfs_store_get(&b, 0), 0);
	assert_ptr_equal(a, b);
	assert_int_equal(mfs_store_get(&c, MFS_STORE_IN_PROCESS), 0);
	assert_ptr_equal(c, a); /* reuse comes first */
	assert_int_equal(mfs_store_get(&d, MFS_STORE_NO_REUSE |
						   MFS_STORE_IN_PROCESS),
			 0);
	assert_ptr_not_equal(d, a);
	assert_true(ct_starts(mfs_store_client_spec(d), "inproc:0x"));
	assert_int_equal(mfs_store_get(&e, 0), 0);
	assert_ptr_equal(e, d); /* d is on top now */
	assert_int_equal(mfs_store_release(e), 0);
	assert_int_equal(mfs_store_release(d), 0);
	ct_expect(mfs_store_release(d), -EINVAL, "not open");
	assert_int_equal(mfs_store_get(&e, 0), 0);
	assert_ptr_equal(e, a); /* back to a */
	assert_int_equal(mfs_store_release(e), 0);
	assert_int_equal(mfs_store_release(c), 0);
	assert_int_equal(mfs_store_release(b), 0);
	assert_int_equal(mfs_store_release(a), 0);
	ct_expect(mfs_store_release(a), -EINVAL, "released more often");
	ct_expect(mfs_store_release(NULL), -EINVAL, "NULL");
	ct_expect(mfs_store_get(NULL, 0), -EINVAL, "NULL");
	ct_expect(mfs_store_get(&a, 0x100), -EINVAL, "flags");
}

/* The other thread's view: it has no active store of its own. */
static void *ct_other_thread(void *p)
{
	mfs_store **out = p;

	if (mfs_store_get(out, MFS_STORE_IN_PROCESS) != 0)
		*out = NULL;
	return NULL;
}

/* Releases the store at @p on this (another) thread. */
static void *ct_release_thread(void *p)
{
	return (void *)(intptr_t)mfs_store_release(p);
}

/* Stacks are per thread: another thread does not reuse ours. */
static void test_stack_per_thread(void **state)
{
	mfs_store *mine, *theirs = NULL;
	void *ret;
	pthread_t t;

	(void)state;
	ct_setenv("MODELFS_STORE", ct_path(ct_base, "thread"));
	assert_int_equal(mfs_store_get(&mine, 0), 0);
	assert_int_equal(pthread_create(&t, NULL, ct_other_thread, &theirs), 0);
	pthread_join(t, NULL);
	assert_non_null(theirs);
	assert_ptr_not_equal(theirs, mine);
	assert_true(ct_starts(mfs_store_client_spec(theirs), "inproc:"));
	/* Released from this thread: not on our stack, still counted. */
	assert_int_equal(mfs_store_release(theirs), 0);
	assert_int_equal(mfs_store_release(mine), 0);

	/* Ours released by another thread: our stack must skip it. */
	assert_int_equal(mfs_store_get(&mine, MFS_STORE_IN_PROCESS), 0);
	assert_int_equal(pthread_create(&t, NULL, ct_release_thread, mine), 0);
	pthread_join(t, &ret);
	assert_int_equal((intptr_t)ret, 0);
	assert_int_equal(mfs_store_get(&theirs, 0), 0);
	assert_true(ct_starts(mfs_store_client_spec(theirs), "dir:"));
	assert_int_equal(mfs_store_release(theirs), 0);
}

/* A thread holds at most MFS_STORE_STACK_MAX stores. */
static void test_stack_overflow(void **state)
{
	mfs_store *s[MFS_STORE_STACK_MAX], *x;

	(void)state;
	for (unsigned i = 0; i < MFS_STORE_STACK_MAX; i++)
		assert_int_equal(mfs_store_get(&s[i], MFS_STORE_IN_PROCESS), 0);
	ct_expect(mfs_store_get(&x, 0), -EOVERFLOW, "stack");
	ct_expect(mfs_store_new_in_process(&x), -EOVERFLOW, "stack");
	ct_expect(mfs_store_open_dir(&x, ct_base), -EOVERFLOW, "stack");
	for (unsigned i = MFS_STORE_STACK_MAX; i-- > 0;)
		assert_int_equal(mfs_store_release(s[i]), 0);
}

/* Client specs that are refused, each with its errno. */
static void test_bad_specs(void **state)
{
	char spec[CT_SPEC_MAX];
	mfs_client *c;

	(void)state;
	ct_write_file(ct_path(ct_base, "f"), "x", 1);
	ct_expect(mfs_client_open(&c, NULL), -EINVAL, "NULL");
	ct_expect(mfs_client_open(NULL, "dir:/"), -EINVAL, "NULL");
	ct_expect(mfs_client_open(&c, ""), -EINVAL, "expected");
	ct_expect(mfs_client_open(&c, "ftp:/x"), -EINVAL, "expected");
	ct_expect(mfs_client_open(&c, "relative/path"), -EINVAL, "expected");
	ct_expect(mfs_client_open(&c, "dir:"), -EINVAL, "empty path");
	ct_expect(mfs_client_open(&c, "dir:/nonexistent-store"), -ENOENT,
		  "/nonexistent-store");
	snprintf(spec, sizeof(spec), "dir:%s", ct_path(ct_base, "f"));
	ct_expect(mfs_client_open(&c, spec), -ENOTDIR, "not a directory");
	snprintf(spec, sizeof(spec), "mount:%s", ct_base);
	ct_expect(mfs_client_open(&c, spec), -ENODEV, "modelfs daemon");
	/* A bare absolute path that is no mount is a directory store. */
	assert_int_equal(mfs_client_open(&c, ct_base), 0);
	assert_int_equal(mfs_client_close(c), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_private_dir, ct_env_setup),
		cmocka_unit_test_setup(test_modelfs_store, ct_env_setup),
		cmocka_unit_test_setup(test_mount_absent, ct_env_setup),
		cmocka_unit_test_setup(test_reuse_and_stack, ct_env_setup),
		cmocka_unit_test_setup(test_stack_per_thread, ct_env_setup),
		cmocka_unit_test_setup(test_stack_overflow, ct_env_setup),
		cmocka_unit_test_setup(test_bad_specs, ct_env_setup),
	};
	int rc;

	ct_scratch("/var/tmp", ct_base);
	rc = cmocka_run_group_tests_name("stores", tests, NULL, NULL);
	ct_rmtree(ct_base);
	return rc;
}
