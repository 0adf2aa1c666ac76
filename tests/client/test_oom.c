/*
 * test_oom.c - an allocation failure injected at every allocation of the
 * client API's main paths: build and put into a directory store, get,
 * remove and release; the same through an in-process store; imports of a
 * container (as is, re-serialized) and of .npy files; the mount reader on
 * a model laid out as the daemon shows it; mfs_model_open of a container
 * file and of such a layout; and a private store from
 * mfs_store_get.  Each run must fail with -ENOMEM (and a message), leave
 * no file behind and leak nothing (ASan), or succeed once no injection is
 * reached any more.
 *
 * Allocations fail through tests/support/fail_alloc.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctest.h"
#include "fail_alloc.h"
#include "client_internal.h"

/* No scenario needs more allocations than this; reaching it is a bug. */
#define CT_MAX_INJECTIONS 2000

static char ct_base[PATH_MAX];
static char ct_store[PATH_MAX];
static char ct_layout[PATH_MAX];

/* The message of a run's first failure (cleanup calls clear the
 * thread's last error). */
static char ct_first_msg[1024];

/* Keeps the first failure of a scenario: later cleanup calls do not
 * override it. */
#define CT_TRY(rc, call)                                                      \
	do {                                                                  \
		if ((rc) == 0) {                                              \
			(rc) = (call);                                        \
			if ((rc) < 0 && !ct_first_msg[0])                     \
				snprintf(ct_first_msg, sizeof(ct_first_msg),  \
					 "%s", mfs_last_error());             \
		}                                                             \
	} while (0)

/* Folds the outcome @r of a cleanup call (which always runs) into @rc. */
static void ct_fold(int *rc, int r)
{
	if (*rc == 0 && r < 0) {
		*rc = r;
		if (!ct_first_msg[0])
			snprintf(ct_first_msg, sizeof(ct_first_msg), "%s",
				 mfs_last_error());
	}
}

/* Gets @key from @spec and touches every array: 0 or the first error. */
static int ct_get_all(const char *spec, const char *key)
{
	mfs_client *c = NULL;
	mfs_model *m = NULL;
	mfs_array_view a;
	int rc = 0;

	CT_TRY(rc, mfs_client_open(&c, spec));
	CT_TRY(rc, mfs_get_model(c, key, &m));
	for (size_t i = 0; rc == 0 && i < mfs_model_array_count(m); i++)
		rc = mfs_model_array_at(m, i, &a);
	CT_TRY(rc, m ? mfs_model_array(m, "emb", &a) : 0);
	if (m)
		ct_fold(&rc, mfs_model_release(m));
	if (c)
		ct_fold(&rc, mfs_client_close(c));
	return rc;
}

/* Builds the standard model (one array from a reader, one copied). */
static ssize_t ct_read_big(void *ctx, uint64_t off, void *buf, size_t len)
{
	size_t n;
	const uint8_t *data = ct_std_data(CT_BIG, 1, &n);

	(void)ctx;
	if (off >= n)
		return 0;
	if (len > n - off)
		len = n - (size_t)off;
	memcpy(buf, data + off, len);
	return (ssize_t)len;
}

static int ct_build(mfs_builder **out)
{
	const char *meta = ct_std_meta(1);
	size_t len;
	int rc = 0;

	*out = NULL;
	CT_TRY(rc, mfs_builder_new(out));
	for (int i = 0; rc == 0 && i < CT_STD_COUNT; i++) {
		const void *d = ct_std_data(i, 1, &len);
		if (i == CT_BIG)
			CT_TRY(rc, mfs_builder_add_reader(*out, ct_std_spec(i),
							  ct_read_big, NULL,
							  0));
		else
			CT_TRY(rc, mfs_builder_add(*out, ct_std_spec(i), d,
						   i == CT_INV
							   ? MFS_ARRAY_DERIVED
							   : MFS_ARRAY_COPY));
	}
	CT_TRY(rc, mfs_builder_set_metadata(*out, meta, strlen(meta)));
	return rc;
}

/* Build, put (content key, and a persistent named key), get, remove,
 * release, into @s (opened by the caller's @open). */
static int ct_store_flow(int (*open)(mfs_store **))
{
	char key[MFS_KEY_BUFSIZE];
	mfs_builder *b = NULL;
	mfs_store *s = NULL;
	int rc = ct_build(&b);

	CT_TRY(rc, open(&s));
	CT_TRY(rc, mfs_store_put(s, b, NULL, 0, key));
	CT_TRY(rc, mfs_store_put(s, b, "named", MFS_PUT_PERSISTENT, NULL));
	CT_TRY(rc, ct_get_all(mfs_store_client_spec(s), key));
	CT_TRY(rc, ct_get_all(mfs_store_client_spec(s), "named"));
	if (s) {
		/* Whatever happened, the persistent model must go. */
		int rm = mfs_store_remove(s, "named");
		ct_fold(&rc, rm == -ENOENT ? 0 : rm);
		ct_fold(&rc, mfs_store_release(s));
	}
	mfs_builder_free(b);
	return rc;
}

static int ct_open_store_dir(mfs_store **s)
{
	return mfs_store_open_dir(s, ct_store);
}

static int ct_store_dir_flow(void)
{
	return ct_store_flow(ct_open_store_dir);
}

static int ct_inproc_flow(void)
{
	return ct_store_flow(mfs_store_new_in_process);
}

/* Imports a container as is and re-serialized, and a .npy directory. */
static int ct_import_flow_into(int (*open)(mfs_store **))
{
	mfs_store *s = NULL;
	int rc = 0;

	CT_TRY(rc, open(&s));
	CT_TRY(rc, mfs_store_put_file(s, ct_path(ct_base, "std.mfs"), "a", 0,
				      NULL));
	CT_TRY(rc, mfs_store_put_file(s, ct_path(ct_base, "std.mfs"), "b",
				      MFS_PUT_RESERIALIZE, NULL));
	CT_TRY(rc, mfs_store_put_file(s, ct_layout, "c", 0, NULL));
	CT_TRY(rc, ct_get_all(mfs_store_client_spec(s), "c"));
	if (s)
		ct_fold(&rc, mfs_store_release(s));
	return rc;
}

static int ct_import_flow(void)
{
	int rc = ct_import_flow_into(ct_open_store_dir);

	CT_TRY(rc, ct_import_flow_into(mfs_store_new_in_process));
	return rc;
}

/* The mount reader on the exported layout (ct_base holds "m"). */
static int ct_layout_flow(void)
{
	mfs_client *c = NULL;
	mfs_model *m = NULL;
	int rc = 0;

	CT_TRY(rc, mfs_client_open_layout(&c, ct_base));
	CT_TRY(rc, mfs_get_model(c, "m", &m));
	if (m)
		mfs_model_release(m);
	if (c)
		mfs_client_close(c);
	return rc;
}

/* mfs_model_open of a container file and of the exported layout. */
static int ct_model_open_flow(void)
{
	mfs_model *m = NULL, *n = NULL;
	int rc = 0;

	CT_TRY(rc, mfs_model_open(ct_path(ct_base, "std.mfs"), &m));
	CT_TRY(rc, mfs_model_open(ct_layout, &n));
	if (n)
		mfs_model_release(n);
	if (m)
		mfs_model_release(m);
	return rc;
}

/* mfs_store_get making a private directory, with a put in it. */
static int ct_private_flow(void)
{
	mfs_builder *b = NULL;
	mfs_store *s = NULL;
	int rc = ct_build(&b);

	CT_TRY(rc, mfs_store_get(&s, MFS_STORE_NO_REUSE));
	CT_TRY(rc, mfs_store_put(s, b, NULL, 0, NULL));
	if (s)
		ct_fold(&rc, mfs_store_release(s));
	mfs_builder_free(b);
	return rc;
}

/* Prints the names in @dir (a failure's leftovers). */
static void ct_list(const char *dir)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "ls -laR '%s' >&2", dir);
	if (system(cmd) != 0)
		print_error("ls failed\n");
}

/* Runs @flow with each allocation failing in turn until one run makes
 * fewer allocations than the injection point. */
static void ct_inject_all(int (*flow)(void), const char *scratch)
{
	long n;
	int rc;

	for (n = 0; n < CT_MAX_INJECTIONS; n++) {
		ct_first_msg[0] = '\0';
		fail_alloc_arm(n);
		rc = flow();
		if (!fail_alloc_disarm()) { /* the run was complete */
			assert_int_equal(rc, 0);
			break;
		}
		if (rc != -ENOMEM)
			print_error("allocation %ld: %d (%s)\n", n, rc,
				    mfs_last_error());
		assert_int_equal(rc, -ENOMEM);
		if (!ct_first_msg[0] || (scratch && ct_count_entries(scratch))) {
			print_error("allocation %ld: message '%s', %d files "
				    "left\n", n, ct_first_msg,
				    scratch ? ct_count_entries(scratch) : 0);
			if (scratch)
				ct_list(scratch);
		}
		assert_true(ct_first_msg[0] != '\0');
		if (scratch)
			assert_int_equal(ct_count_entries(scratch), 0);
	}
	assert_true(n > 0 && n < CT_MAX_INJECTIONS);
	print_message("%ld allocations failed one at a time\n", n);
}

static void test_oom_dir_store(void **state)
{
	(void)state;
	ct_inject_all(ct_store_dir_flow, ct_store);
}

static void test_oom_inproc_store(void **state)
{
	(void)state;
	ct_inject_all(ct_inproc_flow, NULL);
}

static void test_oom_imports(void **state)
{
	(void)state;
	ct_inject_all(ct_import_flow, ct_store);
}

static void test_oom_mount_reader(void **state)
{
	(void)state;
	ct_inject_all(ct_layout_flow, NULL);
}

static void test_oom_model_open(void **state)
{
	(void)state;
	ct_inject_all(ct_model_open_flow, NULL);
}

static void test_oom_private_store(void **state)
{
	char tmp[PATH_MAX];

	(void)state;
	assert_true(snprintf(tmp, sizeof(tmp), "%s/tmp", ct_base) <
		    (int)sizeof(tmp));
	assert_int_equal(mkdir(tmp, 0755), 0);
	ct_setenv("TMPDIR", tmp);
	ct_setenv("MODELFS_MOUNT", "");
	ct_setenv("MODELFS_STORE", NULL);
	ct_inject_all(ct_private_flow, tmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oom_dir_store),
		cmocka_unit_test(test_oom_inproc_store),
		cmocka_unit_test(test_oom_imports),
		cmocka_unit_test(test_oom_mount_reader),
		cmocka_unit_test(test_oom_model_open),
		cmocka_unit_test(test_oom_private_store),
	};
	size_t len;
	int rc;

	ct_scratch("/var/tmp", ct_base);
	assert_true(snprintf(ct_store, sizeof(ct_store), "%s/store",
			     ct_base) < (int)sizeof(ct_store));
	assert_true(snprintf(ct_layout, sizeof(ct_layout), "%s/m", ct_base) <
		    (int)sizeof(ct_layout));
	for (int i = 0; i < CT_STD_COUNT; i++)
		ct_std_data(i, 1, &len); /* made before any injection */
	ct_export_layout(ct_path(ct_base, "std.mfs"), ct_layout);
	assert_int_equal(mkdir(ct_store, 0755), 0);
	rc = cmocka_run_group_tests_name("oom", tests, NULL, NULL);
	ct_rmtree(ct_base);
	return rc;
}
