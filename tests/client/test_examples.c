/*
 * test_examples.c - runs tools/examples: the C itemknn example with 4
 * workers on a directory store, and, when a daemon is available, the
 * Python workers (numpy only) on the mounted model, compared line by line
 * with the C single-process results.
 *
 *   test_examples PATH/TO/itemknn_workers.py
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctest.h"

#define CT_OUT_MAX (1u << 20)
#define CT_USERS "600"
#define CT_ITEMS "150"
#define CT_WORKERS "4"
#define CT_TOP "10"

static const char *ct_script;
static char ct_base[PATH_MAX];
static struct ct_daemon ct_d;

/* Runs itemknn with @extra arguments (NULL-terminated, at most 6). */
static char *ct_itemknn(const char *const *extra)
{
	enum { CT_FIXED = 7, CT_EXTRA = 6 };
	char *argv[CT_FIXED + CT_EXTRA + 1] = {
		(char *)ct_build_path("tools/examples/itemknn"),
		"--workers", CT_WORKERS, "--users", CT_USERS, "--items", CT_ITEMS,
	};
	char *out = malloc(CT_OUT_MAX), exe[PATH_MAX];
	int n = CT_FIXED, status;

	snprintf(exe, sizeof(exe), "%s", argv[0]);
	argv[0] = exe;
	for (; extra && *extra && n < CT_FIXED + CT_EXTRA; extra++)
		argv[n++] = (char *)*extra;
	argv[n] = NULL;
	assert_non_null(out);
	status = ct_run(argv, out, CT_OUT_MAX);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		print_error("itemknn: status %d, output: %s\n", status, out);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_non_null(strstr(out, "results match the single-process run"));
	return out;
}

/* The C example with 4 worker processes on a directory store. */
static void test_itemknn_dir(void **state)
{
	const char *store = ct_path(ct_base, "dir-store");
	char *out;

	(void)state;
	ct_setenv("MODELFS_MOUNT", "");
	ct_setenv("MODELFS_STORE", store);
	out = ct_itemknn(NULL);
	assert_non_null(strstr(out, "store dir:"));
	/* The model was ephemeral: gone with the store. */
	assert_int_equal(ct_count_entries(store), 0);
	free(out);
}

/* Skips (or fails, if required) a test that needs the daemon. */
static bool ct_need_daemon(void)
{
	const char *why, *req = getenv("MODELFS_REQUIRE_FUSE");

	if (ct_daemon_available(&why))
		return true;
	if (req && strcmp(req, "1") == 0)
		fail_msg("%s and MODELFS_REQUIRE_FUSE=1", why);
	print_message("SKIP: %s\n", why);
	return false;
}

/* Runs the Python workers on MNT/KEY and compares with @ref_file. */
static void ct_python_workers(const char *key_file, const char *ref_file)
{
	char *key = ct_read_file(key_file, NULL);
	char *ref = ct_read_file(ref_file, NULL);
	char *out = malloc(CT_OUT_MAX), model[PATH_MAX], script[PATH_MAX];
	const char *py = getenv("PYTHON_NUMPY");
	int status;

	assert_non_null(key);
	assert_non_null(ref);
	assert_non_null(out);
	assert_true(snprintf(model, sizeof(model), "%s/%s", ct_d.mnt, key) <
		    (int)sizeof(model));
	snprintf(script, sizeof(script), "%s", ct_script);
	status = ct_run((char *[]){(char *)(py ? py : "/usr/bin/python3"),
				   script, model, "--workers", CT_WORKERS,
				   "--top", CT_TOP, NULL},
			out, CT_OUT_MAX);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_string_equal(out, ref);
	free(out);
	free(ref);
	free(key);
}

/* The Python workers on a model published before the daemon started. */
static void test_python_workers_mount(void **state)
{
	const char *store = ct_path(ct_base, "py-store");
	const char *ref = ct_path(ct_base, "py-ref.txt");
	const char *keyf = ct_path(ct_base, "py-key.txt");
	const char *run = ct_path(ct_base, "py-run");
	char s_store[PATH_MAX], s_ref[PATH_MAX], s_key[PATH_MAX];

	(void)state;
	if (!ct_need_daemon())
		skip();
	snprintf(s_store, sizeof(s_store), "%s", store);
	snprintf(s_ref, sizeof(s_ref), "%s", ref);
	snprintf(s_key, sizeof(s_key), "%s", keyf);
	assert_int_equal(mkdir(run, 0755), 0);
	ct_setenv("MODELFS_MOUNT", "");
	ct_setenv("MODELFS_STORE", s_store);
	free(ct_itemknn((const char *[]){"--persistent", "--results", s_ref,
					 "--key-file", s_key, NULL}));
	assert_int_equal(ct_daemon_start(&ct_d, run, s_store), 0);
	ct_python_workers(s_key, s_ref);
	ct_daemon_stop(&ct_d);
}

/* The whole example through a mount store: the put goes through the
 * daemon's store directory (needs its live store updates), the C workers
 * and then the Python workers read the mount. */
static void test_itemknn_mount(void **state)
{
	const char *store = ct_path(ct_base, "mnt-store");
	const char *ref = ct_path(ct_base, "mnt-ref.txt");
	const char *keyf = ct_path(ct_base, "mnt-key.txt");
	const char *run = ct_path(ct_base, "mnt-run");
	char s_ref[PATH_MAX], s_key[PATH_MAX], s_store[PATH_MAX];
	char *out;

	(void)state;
	if (!ct_need_daemon())
		skip();
	snprintf(s_store, sizeof(s_store), "%s", store);
	snprintf(s_ref, sizeof(s_ref), "%s", ref);
	snprintf(s_key, sizeof(s_key), "%s", keyf);
	assert_int_equal(mkdir(s_store, 0755), 0);
	assert_int_equal(mkdir(run, 0755), 0);
	assert_int_equal(ct_daemon_start(&ct_d, run, s_store), 0);
	ct_setenv("MODELFS_MOUNT", ct_d.mnt);
	ct_setenv("MODELFS_STORE", NULL);
	out = ct_itemknn((const char *[]){"--persistent", "--results", s_ref,
					  "--key-file", s_key, NULL});
	assert_non_null(strstr(out, "store mount:"));
	free(out);
	ct_python_workers(s_key, s_ref);
	ct_daemon_stop(&ct_d);
}

static int ct_stop_daemon(void **state)
{
	(void)state;
	ct_daemon_stop(&ct_d);
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_itemknn_dir),
		cmocka_unit_test_teardown(test_python_workers_mount,
					  ct_stop_daemon),
		cmocka_unit_test_teardown(test_itemknn_mount, ct_stop_daemon),
	};
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: test_examples itemknn_workers.py\n");
		return 2;
	}
	ct_script = argv[1];
	ct_scratch("/var/tmp", ct_base);
	rc = cmocka_run_group_tests_name("examples", tests, NULL, NULL);
	ct_rmtree(ct_base);
	return rc;
}
