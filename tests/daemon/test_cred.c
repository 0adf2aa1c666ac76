/*
 * test_cred.c - unit tests of the read check the daemon makes for its
 * reports: the kernel's order of owner, group and other bits,
 * supplementary groups and root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "cred.h"

#define USER_UID 1000
#define USER_GID 1000
#define OTHER_UID 1001
#define OTHER_GID 1001
#define EXTRA_GID 2000
#define ROOT_ID 0

static struct mfsd_cred user_cred(gid_t *groups, size_t ngroups)
{
	return (struct mfsd_cred){.uid = USER_UID, .gid = USER_GID,
				  .groups = groups, .ngroups = ngroups};
}

/* The first class that matches decides, as generic_permission does. */
static void test_classes(void **state)
{
	struct mfsd_cred c = user_cred(NULL, 0);

	(void)state;
	assert_false(mfsd_cred_is_root(&c));
	assert_true(mfsd_cred_may_read(&c, 0400, USER_UID, OTHER_GID));
	assert_false(mfsd_cred_may_read(&c, 0044, USER_UID, OTHER_GID));
	assert_true(mfsd_cred_may_read(&c, 0040, OTHER_UID, USER_GID));
	assert_false(mfsd_cred_may_read(&c, 0404, OTHER_UID, USER_GID));
	assert_true(mfsd_cred_may_read(&c, 0004, OTHER_UID, OTHER_GID));
	assert_false(mfsd_cred_may_read(&c, 0640, OTHER_UID, OTHER_GID));
	assert_false(mfsd_cred_may_read(&c, 0333, OTHER_UID, OTHER_GID));
}

static void test_supplementary(void **state)
{
	gid_t groups[] = {OTHER_GID + 1, EXTRA_GID};
	struct mfsd_cred c = user_cred(groups, 2);
	struct mfsd_cred none = user_cred(NULL, 0);

	(void)state;
	assert_true(mfsd_cred_may_read(&c, 0040, OTHER_UID, EXTRA_GID));
	assert_false(mfsd_cred_may_read(&c, 0004, OTHER_UID, EXTRA_GID));
	assert_false(mfsd_cred_may_read(&none, 0040, OTHER_UID, EXTRA_GID));
}

static void test_root(void **state)
{
	struct mfsd_cred root = {.uid = ROOT_ID, .gid = ROOT_ID};

	(void)state;
	assert_true(mfsd_cred_is_root(&root));
	assert_true(mfsd_cred_may_read(&root, 0000, OTHER_UID, OTHER_GID));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classes),
		cmocka_unit_test(test_supplementary),
		cmocka_unit_test(test_root),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
