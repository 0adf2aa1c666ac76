/*
 * test_npy_order.c - a directory of .npy files gives one content key
 * whoever imports it: mfs_store_put_file in a process whose collation is
 * a real locale's, and `modelctl put DIR`, order the arrays alike
 * (bytewise by array name), so they write the same container.
 *
 * The locale (de_DE.UTF-8, which sorts "a" before "B" where bytes sort
 * "B" first) is generated into a private LOCPATH with localedef, so no
 * system locale needs to be configured.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "modelfs.h"

/* The locale whose collation differs from byte order for our names. */
#define LOCALE_NAME "de_DE.UTF-8"
#define LOCALEDEF_CMD "localedef -i de_DE -f UTF-8 '%s/" LOCALE_NAME "' " \
		      ">/dev/null 2>&1"
/* Elements of each test array (int32). */
#define N_ELEMS 4u

struct fixture {
	/* Half a path, so that every name made from it fits. */
	char work[PATH_MAX / 2];
	char locpath[PATH_MAX];
	char inputs[PATH_MAX];
};

/* Writes DIR/NAME.npy: an int32 vector of N_ELEMS values from @first. */
static void write_npy(const char *dir, const char *name, int32_t first)
{
	char path[PATH_MAX], header[MFS_NPY_HEADER_SIZE];
	uint64_t shape[1] = {N_ELEMS};
	int32_t data[N_ELEMS];
	FILE *f;
	int hlen;

	for (uint32_t i = 0; i < N_ELEMS; i++)
		data[i] = first + (int32_t)i;
	hlen = mfs_npy_header(MFS_DTYPE_INT32, 1, shape, MFS_ORDER_C, header,
			      sizeof(header));
	assert_true(hlen > 0);
	snprintf(path, sizeof(path), "%s/%s.npy", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(header, 1, (size_t)hlen, f), (size_t)hlen);
	assert_int_equal(fwrite(data, sizeof(data), 1, f), 1);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	static struct fixture fx;
	char cmd[2 * PATH_MAX];

	snprintf(fx.work, sizeof(fx.work), "%s/mfs-locale-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(fx.work))
		return -1;
	snprintf(fx.locpath, sizeof(fx.locpath), "%s/locales", fx.work);
	snprintf(fx.inputs, sizeof(fx.inputs), "%s/inputs", fx.work);
	if (mkdir(fx.locpath, 0700) < 0 || mkdir(fx.inputs, 0700) < 0)
		return -1;
	snprintf(cmd, sizeof(cmd), LOCALEDEF_CMD, fx.locpath);
	if (system(cmd) != 0)
		return -1;
	setenv("LOCPATH", fx.locpath, 1);
	setenv("LC_ALL", LOCALE_NAME, 1);
	*state = &fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[2 * PATH_MAX];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->work);
	return system(cmd) == 0 ? 0 : -1;
}

/* `modelctl put STORE DIR`'s key into @key (MFS_KEY_BUFSIZE bytes). */
static void modelctl_put(const char *store, const char *dir, char *key)
{
	const char *build = getenv("MODELFS_BUILD_DIR");
	char cmd[3 * PATH_MAX];
	FILE *p;

	assert_non_null(build);
	snprintf(cmd, sizeof(cmd), "'%s/tools/modelctl' put '%s' '%s'", build,
		 store, dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(key, MFS_KEY_BUFSIZE, p));
	key[strcspn(key, "\n")] = '\0';
	assert_int_equal(pclose(p), 0);
}

static void test_one_key_under_locale(void **state)
{
	struct fixture *fx = *state;
	char store_lib[PATH_MAX], store_ctl[PATH_MAX];
	char key_lib[MFS_KEY_BUFSIZE], key_ctl[MFS_KEY_BUFSIZE];
	mfs_store *s;

	/* The collation must really differ from byte order, or this test
	 * proves nothing. */
	assert_non_null(setlocale(LC_ALL, ""));
	assert_true(strcmp("B", "a") < 0);
	assert_true(strcoll("B", "a") > 0);
	write_npy(fx->inputs, "a", 1);
	write_npy(fx->inputs, "B", 100);
	write_npy(fx->inputs, "_x", 200);
	write_npy(fx->inputs, "x", 300);

	snprintf(store_lib, sizeof(store_lib), "%s/store-lib", fx->work);
	snprintf(store_ctl, sizeof(store_ctl), "%s/store-ctl", fx->work);
	assert_int_equal(mfs_store_open_dir(&s, store_lib), 0);
	assert_int_equal(mfs_store_put_file(s, fx->inputs, NULL,
					    MFS_PUT_PERSISTENT, key_lib), 0);
	assert_int_equal(mfs_store_release(s), 0);
	assert_int_equal(mkdir(store_ctl, 0700), 0);
	modelctl_put(store_ctl, fx->inputs, key_ctl);
	assert_string_equal(key_lib, key_ctl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_key_under_locale),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
