/*
 * test_store.c - unit tests of the model table and the inode scheme:
 * loading a store with good, bad, hidden and misnamed containers; names,
 * slots and attributes; the reference counts that keep a removed model
 * alive until the kernel and every holder let go.
 */
#include <errno.h>
#include <fcntl.h>
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

#include "chunkcache.h"
#include "inode.h"
#include "store.h"

#define CACHE_BYTES (1u << 20)
#define PATH_LEN 512
#define DIR_LEN 64

static char g_dir[DIR_LEN];

static void path_in(char *out, const char *name)
{
	snprintf(out, PATH_LEN, "%s/%s", g_dir, name);
}

/* Writes a container holding a 3x4 float32 "w" and a 5-byte uint8 "b". */
static void write_container(const char *name, mode_t mode)
{
	mfs_array_spec w = {.name = "w", .dtype = MFS_DTYPE_FLOAT32,
			    .ndim = 2, .shape = {3, 4}};
	mfs_array_spec b = {.name = "b", .dtype = MFS_DTYPE_UINT8, .ndim = 1,
			    .shape = {5}, .codec = MFS_CODEC_LZ4};
	float data[12] = {0};
	unsigned char bytes[5] = {1, 2, 3, 4, 5};
	char path[PATH_LEN];
	mfs_writer *wr;

	path_in(path, name);
	assert_int_equal(mfs_writer_create(&wr, path), 0);
	assert_int_equal(mfs_writer_add_array_buffer(wr, &w, data,
						     sizeof(data)), 0);
	assert_int_equal(mfs_writer_add_array_buffer(wr, &b, bytes,
						     sizeof(bytes)), 0);
	assert_int_equal(mfs_writer_commit(wr), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void write_file(const char *name, const char *text)
{
	char path[PATH_LEN];
	FILE *f;

	path_in(path, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	char path[PATH_LEN];

	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/mfsd-test-store-XXXXXX");
	if (!mkdtemp(g_dir))
		return -1;
	write_container("good.mfs", 0640);
	write_container("other.mfs", 0644);
	write_container(".hidden.mfs", 0644);
	write_container("-dash.mfs", 0644);
	write_file("garbage.mfs", "not a container");
	write_file("notes.txt", "ignored");
	path_in(path, "dir.mfs");
	mkdir(path, 0755);
	return 0;
}

static int teardown(void **state)
{
	char cmd[DIR_LEN + 16];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static bool skipped(const struct mfsd_store *s, const char *name)
{
	for (size_t i = 0; i < s->nskipped; i++) {
		if (strcmp(s->skipped[i].file_name, name) == 0)
			return s->skipped[i].reason[0] != '\0';
	}
	return false;
}

static void test_scan(void **state)
{
	struct mfsd_cache c;
	struct mfsd_store *s;
	struct mfsd_dirent_model *list;
	ssize_t n;

	(void)state;
	assert_int_equal(mfsd_cache_init(&c, CACHE_BYTES), 0);
	assert_int_equal(mfsd_store_open(&s, g_dir, &c), 0);
	/* Bad ones are listed with a reason; hidden and foreign names are
	 * ignored silently. */
	assert_int_equal(s->nskipped, 3);
	assert_true(skipped(s, "garbage.mfs"));
	assert_true(skipped(s, "-dash.mfs"));
	assert_true(skipped(s, "dir.mfs"));
	n = mfsd_store_list(s, &list);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].key, "good");
	assert_string_equal(list[1].key, "other");
	assert_true(list[0].gen != list[1].gen);
	mfsd_store_free_list(list, (size_t)n);
	mfsd_store_close(s);
	mfsd_cache_destroy(&c);
}

static void test_missing_store(void **state)
{
	struct mfsd_cache c;
	struct mfsd_store *s;

	(void)state;
	assert_int_equal(mfsd_cache_init(&c, CACHE_BYTES), 0);
	assert_int_equal(mfsd_store_open(&s, "/nonexistent/store", &c),
			 -ENOENT);
	mfsd_cache_destroy(&c);
}

static void test_slots_and_attributes(void **state)
{
	struct mfsd_cache c;
	struct mfsd_store *s;
	struct mfsd_model *m;
	struct stat st;
	uint64_t slot;

	(void)state;
	assert_int_equal(mfsd_cache_init(&c, CACHE_BYTES), 0);
	assert_int_equal(mfsd_store_open(&s, g_dir, &c), 0);
	m = mfsd_store_get_key(s, "good");
	assert_non_null(m);
	assert_null(mfsd_store_get_key(s, "nope"));
	assert_int_equal(mfsd_slot_find(m, "w.npy", &slot), 0);
	assert_int_equal(slot, MFSD_SLOT_ARRAY0);
	assert_int_equal(mfsd_slot_find(m, "b.npy", &slot), 0);
	assert_int_equal(mfsd_slot_find(m, "manifest.json", &slot), 0);
	assert_int_equal(slot, MFSD_SLOT_MANIFEST);
	assert_int_equal(mfsd_slot_find(m, "metadata.json", &slot), 0);
	assert_int_equal(slot, MFSD_SLOT_METADATA);
	assert_int_equal(mfsd_slot_find(m, "w", &slot), -ENOENT);
	assert_int_equal(mfsd_slot_find(m, ".npy", &slot), -ENOENT);
	assert_int_equal(mfsd_slot_find(m, "x.npy", &slot), -ENOENT);
	assert_string_equal(mfsd_slot_name(m, MFSD_SLOT_ARRAY0), "w.npy");
	assert_null(mfsd_slot_name(m, mfsd_slot_count(m)));

	assert_int_equal(mfsd_stat_slot(m, MFSD_SLOT_ARRAY0, &st), 0);
	assert_int_equal(st.st_size, MFS_NPY_HEADER_SIZE + 48);
	assert_int_equal(st.st_mode, S_IFREG | 0440);
	assert_int_equal(st.st_ino, mfsd_ino(m->gen, MFSD_SLOT_ARRAY0));
	assert_int_equal(mfsd_ino_gen(st.st_ino), m->gen);
	assert_int_equal(mfsd_ino_slot(st.st_ino), MFSD_SLOT_ARRAY0);
	assert_int_equal(mfsd_stat_slot(m, MFSD_SLOT_DIR, &st), 0);
	assert_int_equal(st.st_mode, S_IFDIR | 0550);
	assert_int_equal(mfsd_stat_slot(m, MFSD_SLOT_MANIFEST, &st), 0);
	assert_int_equal((size_t)st.st_size, m->manifest_len);
	assert_int_equal(mfsd_stat_slot(m, mfsd_slot_count(m), &st), -ENOENT);
	mfsd_stat_root(s, &st);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0222, 0);
	mfsd_store_put(s, m);
	mfsd_store_close(s);
	mfsd_cache_destroy(&c);
}

/* A removed model lives while the kernel or a holder still uses it. */
static void test_lifetime(void **state)
{
	struct mfsd_cache c;
	struct mfsd_store *s;
	struct mfsd_model *m;
	struct mfsd_model_usage u;
	uint64_t gen;

	(void)state;
	assert_int_equal(mfsd_cache_init(&c, CACHE_BYTES), 0);
	assert_int_equal(mfsd_store_open(&s, g_dir, &c), 0);
	m = mfsd_store_get_key(s, "good");
	assert_non_null(m);
	gen = m->gen;
	mfsd_store_lookup(s, m, MFSD_SLOT_DIR, 1);
	mfsd_store_lookup(s, m, MFSD_SLOT_ARRAY0, 1);
	assert_int_equal(mfsd_store_open_handle(s, m, 10, MFSD_SLOT_ARRAY0), 0);
	assert_int_equal(mfsd_store_open_handle(s, m, 11, MFSD_SLOT_ARRAY0), 0);
	assert_int_equal(mfsd_store_open_handle(s, m, 10, MFSD_SLOT_ARRAY0), 0);
	assert_int_equal(mfsd_store_usage(s, m, &u), 0);
	assert_int_equal(u.nopen, 3);
	assert_int_equal(u.nlookup, 2);
	assert_int_equal(u.nholders, 2);
	assert_int_equal(u.holders[0].pid, 10);
	assert_int_equal(u.holders[0].handles, 2);
	mfsd_store_usage_free(&u);
	mfsd_store_put(s, m);

	mfsd_store_unpublish(s, m);
	assert_null(mfsd_store_get_key(s, "good"));
	m = mfsd_store_get_gen(s, gen);
	assert_non_null(m);
	mfsd_store_put(s, m);

	mfsd_store_release_handle(s, m, 10, MFSD_SLOT_ARRAY0);
	mfsd_store_release_handle(s, m, 10, MFSD_SLOT_ARRAY0);
	mfsd_store_forget(s, gen, MFSD_SLOT_DIR, 1);
	mfsd_store_forget(s, gen, MFSD_SLOT_ARRAY0, 1);
	/* One holder left: still there. */
	m = mfsd_store_get_gen(s, gen);
	assert_non_null(m);
	assert_int_equal(mfsd_store_usage(s, m, &u), 0);
	assert_int_equal(u.nholders, 1);
	assert_int_equal(u.holders[0].pid, 11);
	assert_false(u.in_store);
	mfsd_store_usage_free(&u);
	mfsd_store_put(s, m);
	mfsd_store_release_handle(s, m, 11, MFSD_SLOT_ARRAY0);
	assert_null(mfsd_store_get_gen(s, gen));
	/* Forgetting an inode of a freed model is harmless. */
	mfsd_store_forget(s, gen, MFSD_SLOT_DIR, 1);
	assert_non_null(m = mfsd_store_get_key(s, "other"));
	mfsd_store_put(s, m);
	mfsd_store_close(s);
	mfsd_cache_destroy(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan),
		cmocka_unit_test(test_missing_store),
		cmocka_unit_test(test_slots_and_attributes),
		cmocka_unit_test(test_lifetime),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
