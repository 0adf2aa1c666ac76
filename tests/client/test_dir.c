/*
 * test_dir.c - directory stores: the shared cases on disk and on /dev/shm,
 * then what only a directory store does: corrupt containers in the store,
 * refused imports (nothing left behind), over-long paths, and file-system
 * errors of remove, put and shutdown; mfs_model_open of container files.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cases.h"

/* Longest component used to build an over-long store path. */
#define CT_LONG_COMPONENT 200
/* Store paths are built up to this length: a 128-byte key, a staged or
 * an imported file's name then pass PATH_MAX (4096). */
#define CT_LONG_PATH 4080
/* A header byte inside file_size (FORMAT.md: offset 16..23). */
#define CT_HEADER_BYTE 20
#define CT_FLIP 0x40

static char ct_base[PATH_MAX];

/* Per-test state: a scratch directory with a store in "store". */
struct ct_dir {
	char root[PATH_MAX];
	char store[PATH_MAX];
	mfs_store *s;
	mfs_client *c;
};

static int ct_dir_setup(void **state)
{
	struct ct_dir *d = calloc(1, sizeof(*d));

	ct_scratch(ct_base, d->root);
	assert_true(snprintf(d->store, sizeof(d->store), "%s/store", d->root) <
		    (int)sizeof(d->store));
	assert_int_equal(mfs_store_open_dir(&d->s, d->store), 0);
	assert_int_equal(mfs_client_open(&d->c, mfs_store_client_spec(d->s)),
			 0);
	*state = d;
	return 0;
}

static int ct_dir_teardown(void **state)
{
	struct ct_dir *d = *state;

	mfs_client_close(d->c);
	mfs_store_release(d->s);
	ct_rmtree(d->root);
	free(d);
	return 0;
}

/* "DIR/KEY.mfs" (a ct_path buffer). */
static const char *ct_container(const char *dir, const char *key)
{
	char name[MFS_KEY_BUFSIZE + sizeof(".mfs")];

	snprintf(name, sizeof(name), "%s.mfs", key);
	return ct_path(dir, name);
}

/* Writes the standard model (with derived array) to @path. */
static void ct_write_std(const char *path, unsigned v)
{
	mfs_builder *b = ct_std_builder(v);

	mfs_sharing_begin();
	assert_int_equal(mfs_builder_write(b, path), 0);
	assert_int_equal(mfs_sharing_end(), 0);
	mfs_builder_free(b);
}

/* Container offset of the first data byte of array @name. */
static uint64_t ct_data_offset(const char *path, const char *name)
{
	mfs_container *c;
	mfs_array_info ai;
	size_t i;

	assert_int_equal(mfs_container_open(&c, path), 0);
	assert_int_equal(mfs_container_find(c, name, &i), 0);
	assert_int_equal(mfs_container_array(c, i, &ai), 0);
	mfs_container_close(c);
	return ai.data_offset;
}

/* Corrupt containers in the store: structure -EBADMSG, data -EIO. */
static void test_corrupt_in_store(void **state)
{
	struct ct_dir *d = *state;
	const char *hdr = ct_path(d->store, "hdr.mfs");
	const char *raw = ct_path(d->store, "raw.mfs");
	const char *lz4 = ct_path(d->store, "lz4.mfs");
	mfs_model *m;

	ct_write_std(hdr, 1);
	ct_write_std(raw, 1);
	ct_write_std(lz4, 1);
	ct_flip_byte(hdr, CT_HEADER_BYTE, CT_FLIP);
	ct_flip_byte(raw, ct_data_offset(raw, "emb") + 1, CT_FLIP);
	ct_flip_byte(lz4, ct_data_offset(lz4, "sim.data") + 1, CT_FLIP);
	ct_expect(mfs_get_model(d->c, "hdr", &m), -EBADMSG, "hdr.mfs");
	ct_expect(mfs_get_model(d->c, "raw", &m), -EIO, "emb");
	ct_expect(mfs_get_model(d->c, "lz4", &m), -EIO, "sim.data");
	/* A directory where a container should be. */
	assert_int_equal(mkdir(ct_path(d->store, "dir.mfs"), 0755), 0);
	ct_expect(mfs_get_model(d->c, "dir", &m), -EISDIR, "dir.mfs");
}

/* Refused imports leave nothing in the store, not even temporary files. */
static void test_refused_imports(void **state)
{
	struct ct_dir *d = *state;
	const char *hdr = ct_path(d->root, "hdr.mfs");
	const char *data = ct_path(d->root, "data.mfs");
	const char *text = ct_path(d->root, "text.mfs");
	const char *npy = ct_path(d->root, "short.npy");
	char key[MFS_KEY_BUFSIZE];

	ct_write_std(hdr, 1);
	ct_write_std(data, 1);
	ct_flip_byte(hdr, CT_HEADER_BYTE, CT_FLIP);
	ct_flip_byte(data, ct_data_offset(data, "big") + 1, CT_FLIP);
	ct_write_file(text, "hello, world\n", strlen("hello, world\n"));
	ct_write_npy(npy, CT_EMB, 1);
	assert_int_equal(truncate(npy, MFS_NPY_HEADER_SIZE + 1), 0);

	ct_expect(mfs_store_put_file(d->s, hdr, NULL, 0, key), -EBADMSG,
		  "hdr.mfs");
	ct_expect(mfs_store_put_file(d->s, data, NULL, 0, key), -EIO,
		  "bad chunk");
	ct_expect(mfs_store_put_file(d->s, data, NULL, MFS_PUT_RESERIALIZE,
				     key),
		  -EIO, "big");
	ct_expect(mfs_store_put_file(d->s, hdr, NULL, MFS_PUT_RESERIALIZE,
				     key),
		  -EBADMSG, "hdr.mfs");
	ct_expect(mfs_store_put_file(d->s, text, NULL, 0, key), -EBADMSG,
		  "neither");
	ct_expect(mfs_store_put_file(d->s, npy, NULL, 0, key), -EBADMSG,
		  "short.npy");
	ct_expect(mfs_store_put_file(d->s, hdr, "bad key", 0, key), -EINVAL,
		  "bad key");
	assert_int_equal(ct_count_entries(d->store), 0);
}

/* A directory @name under @d->root holding emb.npy. */
static const char *ct_npy_dir(const struct ct_dir *d, const char *name)
{
	const char *dir = ct_path(d->root, name);

	assert_int_equal(mkdir(dir, 0755), 0);
	ct_write_npy(ct_path(dir, "emb.npy"), CT_EMB, 1);
	return dir;
}

/* Directory imports with a bad metadata.json, a bad array name or a
 * dangling .npy link. */
static void test_refused_npy_dirs(void **state)
{
	struct ct_dir *d = *state;
	char meta[PATH_MAX], big[PATH_MAX], dirm[PATH_MAX], name[PATH_MAX];
	char link[PATH_MAX], key[MFS_KEY_BUFSIZE];
	char *text = calloc(1, MFS_MAX_METADATA + 1);

	assert_non_null(text);
	snprintf(meta, sizeof(meta), "%s", ct_npy_dir(d, "meta"));
	snprintf(big, sizeof(big), "%s", ct_npy_dir(d, "big"));
	snprintf(dirm, sizeof(dirm), "%s", ct_npy_dir(d, "dirm"));
	snprintf(name, sizeof(name), "%s", ct_npy_dir(d, "name"));
	snprintf(link, sizeof(link), "%s", ct_npy_dir(d, "link"));
	ct_write_file(ct_path(meta, "metadata.json"), "[1, 2]", 6);
	ct_write_file(ct_path(big, "metadata.json"), text,
		      MFS_MAX_METADATA + 1);
	assert_int_equal(mkdir(ct_path(dirm, "metadata.json"), 0755), 0);
	ct_write_npy(ct_path(name, "bad name.npy"), CT_EMB, 1);
	assert_int_equal(symlink("nowhere.npy", ct_path(link, "gone.npy")), 0);
	ct_expect(mfs_store_put_file(d->s, meta, NULL, 0, key), -EBADMSG,
		  "object");
	ct_expect(mfs_store_put_file(d->s, big, NULL, 0, key), -EBADMSG,
		  "metadata limit");
	ct_expect(mfs_store_put_file(d->s, dirm, NULL, 0, key), -EISDIR,
		  "metadata.json");
	ct_expect(mfs_store_put_file(d->s, name, NULL, 0, key), -EINVAL,
		  "bad name");
	ct_expect(mfs_store_put_file(d->s, link, NULL, 0, key), -ENOENT,
		  "gone.npy");
	assert_int_equal(ct_count_entries(d->store), 0);
	free(text);
}

/* A directory where the model's file goes: the publishing rename fails
 * and the staged file is removed. */
static void test_publish_blocked(void **state)
{
	struct ct_dir *d = *state;
	const char *file = ct_path(d->root, "std.mfs");
	char key[MFS_KEY_BUFSIZE], blocker[PATH_MAX];
	mfs_builder *b = ct_std_builder(1);

	ct_write_std(file, 1);
	/* The content key of the standard model, from a first put. */
	assert_int_equal(mfs_store_put(d->s, b, NULL, 0, key), 0);
	assert_int_equal(mfs_store_remove(d->s, key), 0);
	snprintf(blocker, sizeof(blocker), "%s", ct_container(d->store, key));
	assert_int_equal(mkdir(blocker, 0755), 0);
	ct_write_file(ct_path(blocker, "x"), "x", 1);
	ct_expect(mfs_store_put(d->s, b, NULL, 0, key), -EISDIR, "rename");
	ct_expect(mfs_store_put_file(d->s, file, NULL, 0, key), -EISDIR,
		  "rename");
	assert_int_equal(ct_count_entries(d->store), 1); /* the blocker */
	ct_rmtree(blocker);
	mfs_builder_free(b);
}

/* A store path so long that a 128-byte key no longer fits. */
static void test_name_too_long(void **state)
{
	struct ct_dir *d = *state;
	char path[PATH_MAX], part[CT_LONG_COMPONENT + 1], key[MFS_MAX_KEY_LEN + 1];
	mfs_builder *b = ct_std_builder(1);
	mfs_store *s;
	mfs_client *c;
	mfs_model *m;

	memset(part, 'p', CT_LONG_COMPONENT);
	part[CT_LONG_COMPONENT] = '\0';
	memset(key, 'k', MFS_MAX_KEY_LEN);
	key[MFS_MAX_KEY_LEN] = '\0';
	snprintf(path, sizeof(path), "%s", d->root);
	while (strlen(path) < CT_LONG_PATH) {
		size_t len = strlen(path), room = CT_LONG_PATH - len - 1;
		size_t n = room < CT_LONG_COMPONENT ? room + 1
						    : CT_LONG_COMPONENT;
		path[len] = '/';
		memcpy(path + len + 1, part, n);
		path[len + 1 + n] = '\0';
		assert_int_equal(mkdir(path, 0755), 0);
	}
	ct_write_std(ct_path(d->root, "x.mfs"), 1);
	assert_int_equal(mfs_store_open_dir(&s, path), 0);
	ct_expect(mfs_store_put(s, b, key, 0, NULL), -ENAMETOOLONG, "longer");
	ct_expect(mfs_store_put(s, b, NULL, 0, NULL), -ENAMETOOLONG,
		  "too long");
	ct_expect(mfs_store_put_file(s, ct_path(d->root, "x.mfs"), NULL, 0,
				     NULL),
		  -ENAMETOOLONG, "too long");
	ct_expect(mfs_store_remove(s, key), -ENAMETOOLONG, "longer");
	assert_int_equal(mfs_client_open(&c, mfs_store_client_spec(s)), 0);
	ct_expect(mfs_get_model(c, key, &m), -ENAMETOOLONG, "longer");
	assert_int_equal(mfs_client_close(c), 0);
	assert_int_equal(mfs_store_release(s), 0);
	mfs_builder_free(b);
}

/* File-system errors: remove of a directory, put into a vanished store,
 * and a shutdown that cannot remove an ephemeral model. */
static void test_fs_errors(void **state)
{
	struct ct_dir *d = *state;
	char key[MFS_KEY_BUFSIZE], gone[PATH_MAX];
	mfs_builder *b = ct_std_builder(1);
	mfs_store *s;

	assert_int_equal(mkdir(ct_path(d->store, "weird.mfs"), 0755), 0);
	ct_expect(mfs_store_remove(d->s, "weird"), -EISDIR, "weird");
	assert_int_equal(rmdir(ct_path(d->store, "weird.mfs")), 0);

	assert_true(snprintf(gone, sizeof(gone), "%s/gone", d->root) <
		    (int)sizeof(gone));
	assert_int_equal(mfs_store_open_dir(&s, gone), 0);
	assert_int_equal(rmdir(gone), 0);
	ct_expect(mfs_store_put(s, b, NULL, 0, key), -ENOENT, "gone");
	ct_expect(mfs_store_put(s, b, "named", 0, key), -ENOENT, "gone");
	assert_int_equal(mfs_store_release(s), 0);

	assert_int_equal(mfs_store_open_dir(&s, d->store), 0);
	assert_int_equal(mfs_store_put(s, b, NULL, 0, key), 0);
	assert_int_equal(unlink(ct_container(d->store, key)), 0);
	assert_int_equal(mkdir(ct_container(d->store, key), 0755), 0);
	ct_write_file(ct_path(ct_container(d->store, key), "x"), "x", 1);
	ct_expect(mfs_store_release(s), -EISDIR, "ephemeral");
	ct_expect(mfs_store_release(s), -EINVAL, "not open");
	mfs_builder_free(b);
}

/* Open errors of directory stores. */
static void test_open_errors(void **state)
{
	struct ct_dir *d = *state;
	mfs_store *s;

	ct_write_file(ct_path(d->root, "file"), "x", 1);
	ct_expect(mfs_store_open_dir(&s, ct_path(d->root, "file")), -ENOTDIR,
		  "file");
	ct_expect(mfs_store_open_dir(&s, ct_path(d->root, "a/b")), -ENOENT,
		  "a/b");
	ct_expect(mfs_store_open_dir(&s, ""), -EINVAL, "empty");
	ct_expect(mfs_store_open_dir(NULL, d->root), -EINVAL, "NULL");
	ct_expect(mfs_store_open_mount(&s, d->root), -ENODEV, d->root);
	ct_expect(mfs_store_open_mount(&s, NULL), -EINVAL, "NULL");
	ct_expect(mfs_store_new_in_process(NULL), -EINVAL, "NULL");
}

/* mfs_model_open of container files of any name: raw arrays mapped, LZ4
 * arrays decoded, the key is the name without ".mfs". */
static void test_model_open_file(void **state)
{
	struct ct_dir *d = *state;
	char file[PATH_MAX], other[PATH_MAX];
	mfs_builder *b = ct_std_builder(1);
	mfs_model *m;

	snprintf(file, sizeof(file), "%s", ct_path(d->root, "m.mfs"));
	snprintf(other, sizeof(other), "%s", ct_path(d->root, "weights.v2"));
	ct_write_std(file, 1);
	ct_write_std(other, 2);
	assert_int_equal(mfs_model_open(file, &m), 0);
	ct_check_std(m, 1, true);
	assert_string_equal(mfs_model_key(m), "m");
	assert_int_equal(mfs_model_release(m), 0);
	assert_int_equal(mfs_model_open(other, &m), 0);
	ct_check_std(m, 2, true);
	assert_string_equal(mfs_model_key(m), "weights.v2");
	assert_int_equal(mfs_model_release(m), 0);
	/* A store's own entry. */
	assert_int_equal(mfs_store_put(d->s, b, "k", 0, NULL), 0);
	assert_int_equal(mfs_model_open(ct_container(d->store, "k"), &m), 0);
	ct_check_std(m, 1, true);
	assert_string_equal(mfs_model_key(m), "k");
	assert_int_equal(mfs_model_release(m), 0);
	/* A file named just ".mfs" keeps its whole name as key. */
	assert_int_equal(rename(file, ct_path(d->root, ".mfs")), 0);
	assert_int_equal(mfs_model_open(ct_path(d->root, ".mfs"), &m), 0);
	assert_string_equal(mfs_model_key(m), ".mfs");
	assert_int_equal(mfs_model_release(m), 0);
	mfs_builder_free(b);
}

/* What mfs_model_open refuses, each naming the path. */
static void test_model_open_errors(void **state)
{
	struct ct_dir *d = *state;
	char hdr[PATH_MAX], raw[PATH_MAX], lz4[PATH_MAX], fifo[PATH_MAX];
	char link[PATH_MAX], text[PATH_MAX];
	mfs_model *m = NULL;

	snprintf(hdr, sizeof(hdr), "%s", ct_path(d->root, "hdr.mfs"));
	snprintf(raw, sizeof(raw), "%s", ct_path(d->root, "raw.mfs"));
	snprintf(lz4, sizeof(lz4), "%s", ct_path(d->root, "lz4.mfs"));
	snprintf(fifo, sizeof(fifo), "%s", ct_path(d->root, "fifo.mfs"));
	snprintf(link, sizeof(link), "%s", ct_path(d->root, "link.mfs"));
	snprintf(text, sizeof(text), "%s", ct_path(d->root, "text.mfs"));
	ct_expect(mfs_model_open(NULL, &m), -EINVAL, "NULL");
	ct_expect(mfs_model_open(d->root, NULL), -EINVAL, "NULL");
	ct_expect(mfs_model_open(ct_path(d->root, "missing.mfs"), &m),
		  -ENOENT, "missing.mfs");
	ct_expect(mfs_model_open(ct_path(d->root, "no/dir.mfs"), &m),
		  -ENOENT, "no/dir.mfs");
	ct_expect(mfs_model_open("", &m), -ENOENT, "No such file");
	/* Never opened, so never waited on. */
	assert_int_equal(mkfifo(fifo, 0600), 0);
	ct_expect(mfs_model_open(fifo, &m), -EBADMSG, "FIFO");
	ct_expect(mfs_model_open(d->store, &m), -EBADMSG,
		  "neither a container file nor a model directory");
	ct_expect(mfs_model_open(d->store, &m), -EBADMSG, d->store);
	ct_write_std(hdr, 1);
	ct_write_std(raw, 1);
	ct_write_std(lz4, 1);
	assert_int_equal(symlink(raw, link), 0);
	ct_expect(mfs_model_open(link, &m), -EBADMSG, "symbolic link");
	ct_write_file(text, "hello, world\n", strlen("hello, world\n"));
	ct_expect(mfs_model_open(text, &m), -EBADMSG, "text.mfs");
	ct_flip_byte(hdr, CT_HEADER_BYTE, CT_FLIP);
	ct_flip_byte(raw, ct_data_offset(raw, "emb") + 1, CT_FLIP);
	ct_flip_byte(lz4, ct_data_offset(lz4, "sim.data") + 1, CT_FLIP);
	ct_expect(mfs_model_open(hdr, &m), -EBADMSG, "hdr.mfs");
	ct_expect(mfs_model_open(raw, &m), -EIO, "raw.mfs");
	ct_expect(mfs_model_open(lz4, &m), -EIO, "lz4.mfs");
	assert_null(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_corrupt_in_store,
						ct_dir_setup, ct_dir_teardown),
		cmocka_unit_test_setup_teardown(test_refused_imports,
						ct_dir_setup, ct_dir_teardown),
		cmocka_unit_test_setup_teardown(test_refused_npy_dirs,
						ct_dir_setup, ct_dir_teardown),
		cmocka_unit_test_setup_teardown(test_publish_blocked,
						ct_dir_setup, ct_dir_teardown),
		cmocka_unit_test_setup_teardown(test_name_too_long,
						ct_dir_setup, ct_dir_teardown),
		cmocka_unit_test_setup_teardown(test_fs_errors, ct_dir_setup,
						ct_dir_teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, ct_dir_setup,
						ct_dir_teardown),
		cmocka_unit_test_setup_teardown(test_model_open_file,
						ct_dir_setup, ct_dir_teardown),
		cmocka_unit_test_setup_teardown(test_model_open_errors,
						ct_dir_setup, ct_dir_teardown),
	};
	struct ct_kind dir = {.name = "dir", .open = ct_open_dir,
			      .cross_process = true};
	struct ct_kind shm = {.name = "shm", .open = ct_open_dir,
			      .cross_process = true};
	int fails;

	ct_scratch("/var/tmp", ct_base);
	ct_scratch(ct_base, dir.location);
	snprintf(dir.store_dir, sizeof(dir.store_dir), "%s", dir.location);
	ct_scratch("/dev/shm", shm.location);
	snprintf(dir.scratch, sizeof(dir.scratch), "%s", ct_base);
	snprintf(shm.scratch, sizeof(shm.scratch), "%s", ct_base);
	snprintf(shm.store_dir, sizeof(shm.store_dir), "%s", shm.location);
	fails = ct_run_cases("dir-store", &dir);
	fails += ct_run_cases("shm-store", &shm);
	fails += cmocka_run_group_tests_name("dir-store-only", tests, NULL,
					     NULL);
	ct_rmtree(shm.location);
	ct_rmtree(ct_base);
	return fails ? 1 : 0;
}
