/*
 * test_store.c - unit tests of the model table and the inode scheme:
 * loading a store with good, bad, hidden and misnamed containers; names,
 * slots and attributes; the reference counts that keep a removed model
 * alive until the kernel and every holder let go; retiring; holds per
 * process and file; and the live refresh (add, replace while held,
 * remove, invalid replacement, chmod, a store directory moved away).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
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
#include "follow.h"
#include "inode.h"
#include "table.h"

#define CACHE_BYTES (1u << 20)
#define PATH_LEN 512
#define DIR_LEN 64
/* Far past any retry scheduled by a test. */
#define TEST_DAY_NS (UINT64_C(86400) * 1000000000u)
/* The user holds are made as, where the user does not matter. */
#define HOLDER_UID 1000
/* Another user, for holds one user must not see of another. */
#define OTHER_UID 1001

static char g_dir[DIR_LEN];

/* Counts an open handle of @pid on @slot of @m, made as HOLDER_UID. */
static int hold(struct mfsd_table *s, struct mfsd_model *m, pid_t pid,
		uint64_t slot)
{
	return mfsd_table_open_handle(s, m, pid, HOLDER_UID, slot);
}

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

static bool skipped(const struct mfsd_table *s, const char *name)
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
	struct mfsd_table *s;
	struct mfsd_dirent_model *list;
	ssize_t n;

	(void)state;
	assert_int_equal(mfsd_cache_init(&c, CACHE_BYTES), 0);
	assert_int_equal(mfsd_table_open(&s, g_dir, &c), 0);
	assert_int_equal(mfsd_follow_rescan(s, NULL, NULL), 0);
	/* Bad ones are listed with a reason; hidden and foreign names are
	 * ignored silently. */
	assert_int_equal(s->nskipped, 3);
	assert_true(skipped(s, "garbage.mfs"));
	assert_true(skipped(s, "-dash.mfs"));
	assert_true(skipped(s, "dir.mfs"));
	n = mfsd_table_list(s, &list);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].key, "good");
	assert_string_equal(list[1].key, "other");
	assert_true(list[0].gen != list[1].gen);
	mfsd_table_free_list(list, (size_t)n);
	mfsd_table_close(s);
	mfsd_cache_destroy(&c);
}

/* ------------------------------------------------------------------ */
/* Live refresh                                                        */
/* ------------------------------------------------------------------ */

#define MAX_CHANGES 16

static struct mfsd_change g_changes[MAX_CHANGES];
static size_t g_nchanges;

/* mfsd_change_fn recording what a refresh reports. */
static void record(void *arg, const struct mfsd_change *c)
{
	(void)arg;
	assert_true(g_nchanges < MAX_CHANGES);
	g_changes[g_nchanges++] = *c;
}

/* Writes container @name (in directory @dir) holding one uint8 array
 * "v" of @n bytes of value @value, atomically. */
static void write_version_in(const char *dir, const char *name,
			     unsigned char value, size_t n)
{
	mfs_array_spec v = {.name = "v", .dtype = MFS_DTYPE_UINT8, .ndim = 1,
			    .shape = {n}};
	unsigned char *bytes = malloc(n);
	char path[PATH_LEN];
	mfs_writer *wr;

	assert_non_null(bytes);
	memset(bytes, value, n);
	assert_true(snprintf(path, sizeof(path), "%s/%s", dir, name) <
		    (int)sizeof(path));
	assert_int_equal(mfs_writer_create(&wr, path), 0);
	assert_int_equal(mfs_writer_add_array_buffer(wr, &v, bytes, n), 0);
	assert_int_equal(mfs_writer_commit(wr), 0);
	free(bytes);
}

static void write_version(const char *name, unsigned char value)
{
	write_version_in(g_dir, name, value, 1 + value);
}

static void remove_file(const char *name)
{
	char path[PATH_LEN];

	path_in(path, name);
	assert_int_equal(unlink(path), 0);
}

/* Opens the test directory as a store (fresh cache) and clears the
 * recorded changes. */
static struct mfsd_table *open_store(struct mfsd_cache *c)
{
	struct mfsd_table *s;

	assert_int_equal(mfsd_cache_init(c, CACHE_BYTES), 0);
	assert_int_equal(mfsd_table_open(&s, g_dir, c), 0);
	assert_int_equal(mfsd_follow_rescan(s, NULL, NULL), 0);
	mfsd_table_mark_loaded(s);
	g_nchanges = 0;
	return s;
}

static void close_store(struct mfsd_table *s, struct mfsd_cache *c)
{
	mfsd_table_close(s);
	mfsd_cache_destroy(c);
}

/* The generation published under @key, 0 if none. */
static uint64_t gen_of(struct mfsd_table *s, const char *key)
{
	struct mfsd_model *m = mfsd_table_get_key(s, key);
	uint64_t gen = m ? m->gen : 0;

	if (m)
		mfsd_table_put(s, m);
	return gen;
}

static void test_refresh_add_remove(void **state)
{
	struct mfsd_cache c;
	struct mfsd_table *s = open_store(&c);
	struct mfsd_table_counts sc;
	uint64_t gen;

	(void)state;
	assert_int_equal(mfsd_follow_refresh(s, "live.mfs", record, NULL), 0);
	assert_int_equal(g_nchanges, 0); /* no such file: nothing */
	write_version("live.mfs", 1);
	assert_int_equal(mfsd_follow_refresh(s, "live.mfs", record, NULL), 0);
	assert_int_equal(g_nchanges, 1);
	assert_int_equal(g_changes[0].kind, MFSD_CHANGE_ADDED);
	assert_string_equal(g_changes[0].key, "live");
	gen = gen_of(s, "live");
	assert_int_equal(g_changes[0].new_gen, gen);
	/* A second event for the same file changes nothing. */
	assert_int_equal(mfsd_follow_refresh(s, "live.mfs", record, NULL), 0);
	assert_int_equal(g_nchanges, 1);

	remove_file("live.mfs");
	assert_int_equal(mfsd_follow_refresh(s, "live.mfs", record, NULL), 0);
	assert_int_equal(g_nchanges, 2);
	assert_int_equal(g_changes[1].kind, MFSD_CHANGE_REMOVED);
	assert_int_equal(g_changes[1].old_gen, gen);
	assert_int_equal(gen_of(s, "live"), 0);
	/* Nothing held it: freed at once. */
	assert_null(mfsd_table_get_gen(s, gen));
	mfsd_table_counts(s, &sc);
	assert_int_equal(sc.published, 2);
	assert_int_equal(sc.changes, 2);
	close_store(s, &c);
}

/* Hidden names, foreign suffixes and over-long names are no models. */
static void test_refresh_ignored(void **state)
{
	char longname[NAME_MAX + 8];
	struct mfsd_cache c;
	struct mfsd_table *s = open_store(&c);

	(void)state;
	write_version(".tmp.mfs", 1);
	write_version("x.mfs.tmp", 1);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(mfsd_follow_refresh(s, ".tmp.mfs", record, NULL), 0);
	assert_int_equal(mfsd_follow_refresh(s, "x.mfs.tmp", record, NULL), 0);
	assert_int_equal(mfsd_follow_refresh(s, ".mfs", record, NULL), 0);
	assert_int_equal(mfsd_follow_refresh(s, longname, record, NULL), 0);
	assert_int_equal(g_nchanges, 0);
	assert_false(skipped(s, ".tmp.mfs"));
	remove_file(".tmp.mfs");
	remove_file("x.mfs.tmp");
	close_store(s, &c);
}

/* A container whose name is no valid key is listed as skipped while it
 * exists, and forgotten when it goes. */
static void test_refresh_bad_key(void **state)
{
	char name[MFS_MAX_KEY_LEN + 8];
	struct mfsd_cache c;
	struct mfsd_table *s = open_store(&c);
	size_t before = s->nskipped;

	(void)state;
	write_version("_bad.mfs", 1);
	assert_int_equal(mfsd_follow_refresh(s, "_bad.mfs", record, NULL), 0);
	assert_true(skipped(s, "_bad.mfs"));
	/* A key one byte too long. */
	memset(name, 'k', MFS_MAX_KEY_LEN + 1);
	strcpy(name + MFS_MAX_KEY_LEN + 1, ".mfs");
	write_version(name, 1);
	assert_int_equal(mfsd_follow_refresh(s, name, record, NULL), 0);
	assert_true(skipped(s, name));
	assert_int_equal(g_nchanges, 0);
	remove_file("_bad.mfs");
	remove_file(name);
	assert_int_equal(mfsd_follow_refresh(s, "_bad.mfs", record, NULL), 0);
	assert_int_equal(mfsd_follow_refresh(s, name, record, NULL), 0);
	assert_int_equal(s->nskipped, before);
	close_store(s, &c);
}

/* Replacing a held model: the key names the new one at once, the old one
 * stays readable until its holder and the kernel let go. */
static void test_refresh_replace_held(void **state)
{
	struct mfsd_cache c;
	struct mfsd_table *s;
	struct mfsd_model *old, *m;
	struct mfsd_model_usage u;
	unsigned char byte;
	uint64_t gen;

	(void)state;
	write_version("rep.mfs", 1);
	s = open_store(&c);
	old = mfsd_table_get_key(s, "rep");
	assert_non_null(old);
	gen = old->gen;
	mfsd_table_lookup(s, old, MFSD_SLOT_DIR, 1);
	mfsd_table_lookup(s, old, MFSD_SLOT_ARRAY0, 1);
	assert_int_equal(hold(s, old, 5, MFSD_SLOT_ARRAY0), 0);
	mfsd_table_put(s, old);

	write_version("rep.mfs", 2);
	assert_int_equal(mfsd_follow_refresh(s, "rep.mfs", record, NULL), 0);
	assert_int_equal(g_nchanges, 1);
	assert_int_equal(g_changes[0].kind, MFSD_CHANGE_REPLACED);
	assert_int_equal(g_changes[0].old_gen, gen);
	assert_true(g_changes[0].new_gen > gen);
	assert_int_equal(gen_of(s, "rep"), g_changes[0].new_gen);

	/* The old one still reads its own bytes. */
	m = mfsd_table_get_gen(s, gen);
	assert_ptr_equal(m, old);
	assert_int_equal(mfs_container_read(m->container, 0, 0, &byte, 1), 1);
	assert_int_equal(byte, 1);
	assert_int_equal(mfsd_table_usage(s, m, &u), 0);
	assert_int_equal(u.c.state, MFSD_MODEL_REPLACED);
	assert_false(u.in_store);
	mfsd_table_usage_free(&u);
	mfsd_table_put(s, m);
	m = mfsd_table_get_key(s, "rep");
	assert_int_equal(mfs_container_read(m->container, 0, 0, &byte, 1), 1);
	assert_int_equal(byte, 2);
	mfsd_table_put(s, m);

	/* Released, files forgotten: idle (only the directory inode is left
	 * in the kernel), retired once the grace period is over; then
	 * forgotten entirely. */
	assert_true(mfsd_table_release_handle(s, old, 5, MFSD_SLOT_ARRAY0));
	assert_true(mfsd_table_forget(s, gen, MFSD_SLOT_ARRAY0, 1));
	m = mfsd_table_get_gen(s, gen);
	assert_non_null(m);
	assert_false(m->retired);
	assert_true(mfsd_table_retire(s, m, UINT64_MAX / 2) != 0);
	assert_false(m->retired);
	assert_int_equal(mfsd_table_retire(s, m, 0), 0);
	assert_true(m->retired);
	assert_null(m->container);
	assert_int_equal(mfsd_slot_count(m), 1);
	mfsd_table_put(s, m);
	mfsd_table_forget(s, gen, MFSD_SLOT_DIR, 1);
	assert_null(mfsd_table_get_gen(s, gen));
	remove_file("rep.mfs");
	close_store(s, &c);
}

/* A retired model's directory is empty and its files are gone. */
static void test_retired_model(void **state)
{
	struct mfsd_cache c;
	struct mfsd_table *s;
	struct mfsd_table_counts sc;
	struct mfsd_model *m;
	struct stat st;
	uint64_t gen, slot;

	(void)state;
	write_version("ret.mfs", 3);
	s = open_store(&c);
	m = mfsd_table_get_key(s, "ret");
	gen = m->gen;
	mfsd_table_lookup(s, m, MFSD_SLOT_DIR, 2);
	mfsd_table_open_dir(s, m);
	mfsd_table_put(s, m);
	remove_file("ret.mfs");
	assert_int_equal(mfsd_follow_refresh(s, "ret.mfs", record, NULL), 0);
	/* An open directory handle keeps it whole. */
	m = mfsd_table_get_gen(s, gen);
	assert_false(m->retired);
	assert_int_equal(mfsd_slot_find(m, "v.npy", &slot), 0);
	/* Not idle while the directory is open: cannot retire. */
	assert_int_equal(mfsd_table_retire(s, m, 0), 0);
	assert_false(m->retired);
	mfsd_table_put(s, m);
	assert_true(mfsd_table_release_dir(s, m));
	m = mfsd_table_get_gen(s, gen);
	assert_non_null(m);
	/* A request using it (a second busy mark) postpones retiring. */
	assert_non_null(mfsd_table_get_gen(s, gen));
	assert_true(mfsd_table_retire(s, m, 0) != 0);
	assert_false(m->retired);
	mfsd_table_put(s, m);
	assert_int_equal(mfsd_table_retire(s, m, 0), 0);
	assert_true(m->retired);
	assert_int_equal(mfsd_slot_find(m, "v.npy", &slot), -ENOENT);
	assert_int_equal(mfsd_slot_find(m, "manifest.json", &slot), -ENOENT);
	assert_int_equal(mfsd_stat_slot(m, MFSD_SLOT_DIR, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(mfsd_stat_slot(m, MFSD_SLOT_MANIFEST, &st), -ENOENT);
	mfsd_table_counts(s, &sc);
	assert_int_equal(sc.retired, 1);
	mfsd_table_put(s, m);
	mfsd_table_forget(s, gen, MFSD_SLOT_DIR, 2);
	assert_null(mfsd_table_get_gen(s, gen));
	mfsd_table_counts(s, &sc);
	assert_int_equal(sc.retired, 0);
	close_store(s, &c);
}

/* An invalid container published over a good one removes the key (the
 * file at KEY.mfs is no valid model); it is not loaded again until it
 * changes, and a valid one brings the key back. */
static void test_refresh_invalid(void **state)
{
	struct mfsd_cache c;
	struct mfsd_table *s;
	char path[PATH_LEN];
	uint64_t gen;

	(void)state;
	write_version("inv.mfs", 1);
	s = open_store(&c);
	gen = gen_of(s, "inv");
	assert_true(gen != 0);
	write_file("inv.mfs", "garbage, not a container");
	assert_int_equal(mfsd_follow_refresh(s, "inv.mfs", record, NULL), 0);
	assert_int_equal(g_nchanges, 1);
	assert_int_equal(g_changes[0].kind, MFSD_CHANGE_REMOVED);
	assert_int_equal(g_changes[0].old_gen, gen);
	assert_int_equal(gen_of(s, "inv"), 0);
	assert_true(skipped(s, "inv.mfs"));
	assert_int_equal(mfsd_follow_refresh(s, "inv.mfs", record, NULL), 0);
	assert_int_equal(mfsd_follow_refresh_key(s, "inv", record, NULL, NULL, NULL), 0);
	assert_int_equal(g_nchanges, 1);
	write_version("inv.mfs", 4);
	assert_int_equal(mfsd_follow_refresh(s, "inv.mfs", record, NULL), 0);
	assert_int_equal(g_nchanges, 2);
	assert_int_equal(g_changes[1].kind, MFSD_CHANGE_ADDED);
	assert_false(skipped(s, "inv.mfs"));
	/* A directory under a container name: skipped, then gone. */
	remove_file("inv.mfs");
	path_in(path, "inv.mfs");
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(mfsd_follow_refresh(s, "inv.mfs", record, NULL), 0);
	assert_int_equal(g_changes[2].kind, MFSD_CHANGE_REMOVED);
	assert_true(skipped(s, "inv.mfs"));
	assert_int_equal(rmdir(path), 0);
	assert_int_equal(mfsd_follow_refresh(s, "inv.mfs", record, NULL), 0);
	assert_false(skipped(s, "inv.mfs"));
	close_store(s, &c);
}

/* chmod/chown keep the generation (same bytes) and change the mode. */
static void test_refresh_chmod(void **state)
{
	struct mfsd_cache c;
	struct mfsd_table *s;
	struct mfsd_model *m;
	char path[PATH_LEN];
	struct stat st;
	uint64_t gen;

	(void)state;
	write_version("mod.mfs", 1);
	path_in(path, "mod.mfs");
	assert_int_equal(chmod(path, 0644), 0);
	s = open_store(&c);
	gen = gen_of(s, "mod");
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(mfsd_follow_refresh(s, "mod.mfs", record, NULL), 0);
	assert_int_equal(g_nchanges, 1);
	assert_int_equal(g_changes[0].kind, MFSD_CHANGE_ATTR);
	assert_int_equal(g_changes[0].old_gen, gen);
	m = mfsd_table_get_key(s, "mod");
	assert_int_equal(m->gen, gen);
	assert_int_equal(mfsd_stat_slot(m, MFSD_SLOT_ARRAY0, &st), 0);
	assert_int_equal(st.st_mode, S_IFREG | 0400);
	assert_int_equal(mfsd_stat_slot(m, MFSD_SLOT_DIR, &st), 0);
	assert_int_equal(st.st_mode, S_IFDIR | 0500);
	mfsd_table_put(s, m);
	/* The root follows chmod of STORE_DIR. */
	assert_int_equal(chmod(g_dir, 0750), 0);
	mfsd_follow_refresh_root(s, record, NULL);
	assert_int_equal(g_nchanges, 2);
	assert_int_equal(g_changes[1].kind, MFSD_CHANGE_ROOT_ATTR);
	mfsd_stat_root(s, &st);
	assert_int_equal(st.st_mode, S_IFDIR | 0550);
	mfsd_follow_refresh_root(s, record, NULL);
	assert_int_equal(g_nchanges, 2);
	assert_int_equal(chmod(g_dir, 0700), 0);
	remove_file("mod.mfs");
	close_store(s, &c);
}

/* A lookup of an unknown key finds a container published a moment ago
 * (with no queue, it loads it itself). */
static void test_refresh_key(void **state)
{
	struct mfsd_cache c;
	struct mfsd_table *s = open_store(&c);

	(void)state;
	assert_int_equal(mfsd_follow_refresh_key(s, "fresh", record, NULL,
						 NULL, NULL), 0);
	assert_int_equal(mfsd_follow_refresh_key(s, "../x", record, NULL,
						 NULL, NULL), 0);
	assert_int_equal(g_nchanges, 0);
	write_version("fresh.mfs", 2);
	assert_int_equal(mfsd_follow_refresh_key(s, "fresh", record, NULL,
						 NULL, NULL), 0);
	assert_int_equal(g_nchanges, 1);
	assert_int_equal(g_changes[0].kind, MFSD_CHANGE_ADDED);
	assert_true(gen_of(s, "fresh") != 0);
	remove_file("fresh.mfs");
	close_store(s, &c);
}

/* Races of test_refresh_key_race: a name is published by this many
 * threads that load it as lookups of it arrive. */
#define RACES 200

/* A loader thread of test_refresh_key_race. */
struct racer {
	struct mfsd_table *t;
	const char *name;
	_Atomic bool go;
};

/* Loads racer->name as soon as the lookup is about to start. */
static void *racer_main(void *arg)
{
	struct racer *r = arg;

	while (!atomic_load(&r->go))
		;
	(void)mfsd_follow_refresh(r->t, r->name, NULL, NULL);
	return NULL;
}

/* An mfsd_name_fn standing for the loader: loads @name at once. */
static void queue_load(void *arg, const char *name)
{
	(void)mfsd_follow_refresh(arg, name, NULL, NULL);
}

/* A lookup that meets its key in flight in another thread's refresh
 * waits for that refresh (within the lookup's wait) instead of
 * answering that there is no such model. */
static void test_refresh_key_race(void **state)
{
	struct mfsd_cache c;
	struct mfsd_table *s = open_store(&c);
	char name[48], key[32];
	unsigned missed = 0;

	(void)state;
	for (unsigned i = 0; i < RACES; i++) {
		struct racer r = {.t = s, .name = name};
		pthread_t tid;

		snprintf(key, sizeof(key), "race%u", i);
		snprintf(name, sizeof(name), "%s.mfs", key);
		write_version(name, 1);
		assert_int_equal(pthread_create(&tid, NULL, racer_main, &r),
				 0);
		atomic_store(&r.go, true);
		assert_int_equal(mfsd_follow_refresh_key(s, key, record, NULL,
							 queue_load, s),
				 0);
		missed += gen_of(s, key) == 0;
		assert_int_equal(pthread_join(tid, NULL), 0);
		remove_file(name);
		assert_int_equal(mfsd_follow_refresh(s, name, NULL, NULL), 0);
	}
	assert_int_equal(missed, 0);
	close_store(s, &c);
}

/* The reason a skipped entry @name was given, or NULL. */
static const char *skip_reason(struct mfsd_table *s, const char *name)
{
	for (size_t i = 0; i < s->nskipped; i++) {
		if (strcmp(s->skipped[i].file_name, name) == 0)
			return s->skipped[i].reason;
	}
	return NULL;
}

/* Store entries that are not regular files are skipped with what they
 * are, without being opened (a FIFO would block the open) or followed
 * (a link to a valid container is still refused); a container that
 * becomes a link leaves the namespace. */
static void test_irregular_entries(void **state)
{
	char path[PATH_LEN], target[PATH_LEN];
	struct mfsd_cache c;
	struct mfsd_table *s;

	(void)state;
	path_in(path, "fifo.mfs");
	assert_int_equal(mkfifo(path, 0644), 0);
	path_in(target, "good.mfs");
	path_in(path, "link.mfs");
	assert_int_equal(symlink(target, path), 0);
	path_in(path, "sock.mfs");
	assert_int_equal(mknod(path, S_IFSOCK | 0644, 0), 0);
	write_version("flip.mfs", 1);
	s = open_store(&c);
	assert_non_null(strstr(skip_reason(s, "fifo.mfs"), "a FIFO"));
	assert_non_null(strstr(skip_reason(s, "link.mfs"), "symbolic link"));
	assert_non_null(strstr(skip_reason(s, "sock.mfs"), "a socket"));
	assert_int_equal(gen_of(s, "fifo"), 0);
	assert_int_equal(gen_of(s, "link"), 0);
	assert_true(gen_of(s, "flip") != 0);
	/* A published container replaced by a link is removed. */
	path_in(path, "flip.mfs");
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(mfsd_follow_refresh(s, "flip.mfs", record, NULL), 0);
	assert_int_equal(g_nchanges, 1);
	assert_int_equal(g_changes[0].kind, MFSD_CHANGE_REMOVED);
	assert_int_equal(gen_of(s, "flip"), 0);
	assert_non_null(strstr(skip_reason(s, "flip.mfs"), "symbolic link"));
	/* A lookup of the FIFO's key answers at once, finding nothing. */
	assert_int_equal(mfsd_follow_refresh_key(s, "fifo", record, NULL, NULL, NULL), 0);
	assert_int_equal(gen_of(s, "fifo"), 0);
	remove_file("fifo.mfs");
	remove_file("link.mfs");
	remove_file("sock.mfs");
	remove_file("flip.mfs");
	close_store(s, &c);
}

/* Beyond the descriptor budget a container waits, as a transient skip;
 * it loads when a descriptor is freed, or when its retry falls due. */
static void test_fd_budget(void **state)
{
	struct mfsd_cache c;
	struct mfsd_table *s = open_store(&c);
	struct mfsd_skip_counts k;
	char **names;
	uint64_t next, now = 1;
	ssize_t n;

	(void)state;
	/* good and other are open: no room for a third. */
	s->fd_budget = s->nfds;
	write_version("late.mfs", 1);
	write_version("later.mfs", 1);
	assert_int_equal(mfsd_follow_refresh(s, "late.mfs", record, NULL), 0);
	assert_int_equal(mfsd_follow_refresh(s, "later.mfs", record, NULL), 0);
	assert_int_equal(gen_of(s, "late"), 0);
	assert_non_null(strstr(skip_reason(s, "late.mfs"),
			       "waiting for a file descriptor"));
	mfsd_follow_skip_counts(s, &k);
	assert_int_equal(k.waiting, 2);
	assert_int_equal(k.transient, 2);
	/* Not due yet (the clock is at 1 ns), but scheduled. */
	n = mfsd_follow_retries(s, now, false, &names, &next);
	assert_int_equal(n, 0);
	free(names);
	assert_true(next > now);
	/* A freed descriptor makes every waiting entry due at once. */
	n = mfsd_follow_retries(s, now, true, &names, &next);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "late.mfs");
	assert_string_equal(names[1], "later.mfs");
	for (ssize_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	/* Room for one: it loads, the other still waits. */
	s->fd_budget++;
	assert_int_equal(mfsd_follow_refresh(s, "late.mfs", record, NULL), 0);
	assert_int_equal(mfsd_follow_refresh(s, "later.mfs", record, NULL), 0);
	assert_true(gen_of(s, "late") != 0);
	assert_int_equal(gen_of(s, "later"), 0);
	mfsd_follow_skip_counts(s, &k);
	assert_int_equal(k.waiting, 1);
	/* Once the budget allows, the timer alone brings it back. */
	s->fd_budget = 0;
	n = mfsd_follow_retries(s, next + TEST_DAY_NS, false, &names,
			       &next);
	assert_int_equal(n, 1);
	assert_int_equal(mfsd_follow_refresh(s, names[0], record, NULL), 0);
	free(names[0]);
	free(names);
	assert_true(gen_of(s, "later") != 0);
	mfsd_follow_skip_counts(s, &k);
	assert_int_equal(k.transient, 0);
	remove_file("late.mfs");
	remove_file("later.mfs");
	close_store(s, &c);
}

/* Everything changed behind the store's back is found by a rescan. */
static void test_rescan(void **state)
{
	struct mfsd_cache c;
	struct mfsd_table *s;
	int kinds[MFSD_CHANGE_ROOT_ATTR + 1] = {0};

	(void)state;
	write_version("r1.mfs", 1);
	write_version("r2.mfs", 1);
	s = open_store(&c);
	remove_file("r1.mfs");
	write_version("r2.mfs", 2);
	write_version("r3.mfs", 1);
	assert_int_equal(mfsd_follow_rescan(s, record, NULL), 0);
	for (size_t i = 0; i < g_nchanges; i++)
		kinds[g_changes[i].kind]++;
	assert_int_equal(g_nchanges, 3);
	assert_int_equal(kinds[MFSD_CHANGE_REMOVED], 1);
	assert_int_equal(kinds[MFSD_CHANGE_REPLACED], 1);
	assert_int_equal(kinds[MFSD_CHANGE_ADDED], 1);
	remove_file("r2.mfs");
	remove_file("r3.mfs");
	close_store(s, &c);
}

/* The store follows the directory it opened: moved away, it is still
 * served; a new directory at the old path is not. */
static void test_moved_store(void **state)
{
	char moved[PATH_LEN], cmd[2 * PATH_LEN];
	struct mfsd_cache c;
	struct mfsd_table *s = open_store(&c);

	(void)state;
	snprintf(moved, sizeof(moved), "%s.moved", g_dir);
	assert_int_equal(rename(g_dir, moved), 0);
	assert_int_equal(mkdir(g_dir, 0755), 0);
	write_version("impostor.mfs", 1);
	write_version_in(moved, "followed.mfs", 1, 1);
	assert_int_equal(mfsd_follow_rescan(s, record, NULL), 0);
	assert_int_equal(mfsd_follow_refresh_key(s, "impostor", record, NULL, NULL, NULL),
			 0);
	assert_int_equal(gen_of(s, "impostor"), 0);
	assert_true(gen_of(s, "followed") != 0);
	assert_true(gen_of(s, "good") != 0);
	close_store(s, &c);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mv '%s' '%s' && rm '%s'/followed.mfs",
		 g_dir, moved, g_dir, g_dir);
	assert_int_equal(system(cmd), 0);
}

/* Holds per process and file; holders sum them per process; a user's
 * view keeps the holds that user made. */
static void test_holds(void **state)
{
	struct mfsd_cache c;
	struct mfsd_table *s = open_store(&c);
	struct mfsd_model *m = mfsd_table_get_key(s, "good");
	struct mfsd_model_usage u;

	(void)state;
	assert_int_equal(hold(s, m, 30, MFSD_SLOT_ARRAY0 + 1), 0);
	assert_int_equal(mfsd_table_open_handle(s, m, 20, OTHER_UID,
						MFSD_SLOT_ARRAY0), 0);
	assert_int_equal(hold(s, m, 30, MFSD_SLOT_ARRAY0), 0);
	assert_int_equal(hold(s, m, 30, MFSD_SLOT_ARRAY0), 0);
	assert_int_equal(mfsd_table_usage(s, m, &u), 0);
	assert_int_equal(u.nopen, 4);
	assert_int_equal(u.nholds, 3);
	assert_int_equal(u.holds[0].pid, 20);
	assert_int_equal(u.holds[1].pid, 30);
	assert_int_equal(u.holds[1].slot, MFSD_SLOT_ARRAY0);
	assert_int_equal(u.holds[1].handles, 2);
	assert_int_equal(u.holds[2].slot, MFSD_SLOT_ARRAY0 + 1);
	assert_int_equal(u.nholders, 2);
	assert_int_equal(u.holders[0].pid, 20);
	assert_int_equal(u.holders[0].handles, 1);
	assert_int_equal(u.holders[1].pid, 30);
	assert_int_equal(u.holders[1].handles, 3);
	assert_int_equal(u.holds[0].uid, OTHER_UID);
	assert_int_equal(u.holds[1].uid, HOLDER_UID);
	/* One user's view: its own holds, the model's counts whole. */
	mfsd_table_usage_keep_uid(&u, HOLDER_UID);
	assert_int_equal(u.nopen, 4);
	assert_int_equal(u.nholds, 2);
	assert_int_equal(u.holds[0].pid, 30);
	assert_int_equal(u.nholders, 1);
	assert_int_equal(u.holders[0].pid, 30);
	assert_int_equal(u.holders[0].handles, 3);
	mfsd_table_usage_keep_uid(&u, OTHER_UID);
	assert_int_equal(u.nholds, 0);
	assert_int_equal(u.nholders, 0);
	mfsd_table_usage_free(&u);
	assert_false(mfsd_table_release_handle(s, m, 30, MFSD_SLOT_ARRAY0));
	assert_false(mfsd_table_release_handle(s, m, 20, MFSD_SLOT_ARRAY0));
	assert_false(mfsd_table_release_handle(s, m, 30, MFSD_SLOT_ARRAY0 + 1));
	assert_true(mfsd_table_release_handle(s, m, 30, MFSD_SLOT_ARRAY0));
	assert_int_equal(mfsd_table_usage(s, m, &u), 0);
	assert_int_equal(u.nholds, 0);
	assert_int_equal(u.nholders, 0);
	assert_true(u.c.released_seq > 0);
	mfsd_table_usage_free(&u);
	mfsd_table_put(s, m);
	close_store(s, &c);
}

/* An empty store directory: nothing to list, and a rescan is fine. */
static void test_empty_store(void **state)
{
	char dir[DIR_LEN] = "/tmp/mfsd-test-empty-XXXXXX";
	struct mfsd_dirent_model *list;
	struct mfsd_cache c;
	struct mfsd_table *s;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(mfsd_cache_init(&c, CACHE_BYTES), 0);
	assert_int_equal(mfsd_table_open(&s, dir, &c), 0);
	assert_int_equal(mfsd_follow_rescan(s, NULL, NULL), 0);
	assert_int_equal(mfsd_table_list(s, &list), 0);
	mfsd_table_free_list(list, 0);
	assert_int_equal(mfsd_follow_rescan(s, record, NULL), 0);
	assert_int_equal(s->nskipped, 0);
	mfsd_table_close(s);
	mfsd_cache_destroy(&c);
	assert_int_equal(rmdir(dir), 0);
}

static void test_missing_store(void **state)
{
	struct mfsd_cache c;
	struct mfsd_table *s;

	(void)state;
	assert_int_equal(mfsd_cache_init(&c, CACHE_BYTES), 0);
	assert_int_equal(mfsd_table_open(&s, "/nonexistent/store", &c),
			 -ENOENT);
	mfsd_cache_destroy(&c);
}

static void test_slots_and_attributes(void **state)
{
	struct mfsd_cache c;
	struct mfsd_table *s;
	struct mfsd_model *m;
	struct stat st;
	uint64_t slot;

	(void)state;
	assert_int_equal(mfsd_cache_init(&c, CACHE_BYTES), 0);
	assert_int_equal(mfsd_table_open(&s, g_dir, &c), 0);
	assert_int_equal(mfsd_follow_rescan(s, NULL, NULL), 0);
	m = mfsd_table_get_key(s, "good");
	assert_non_null(m);
	assert_null(mfsd_table_get_key(s, "nope"));
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
	mfsd_table_put(s, m);
	mfsd_table_close(s);
	mfsd_cache_destroy(&c);
}

/* A removed model lives while the kernel or a holder still uses it. */
static void test_lifetime(void **state)
{
	struct mfsd_cache c;
	struct mfsd_table *s;
	struct mfsd_model *m;
	struct mfsd_model_usage u;
	uint64_t gen;

	(void)state;
	assert_int_equal(mfsd_cache_init(&c, CACHE_BYTES), 0);
	assert_int_equal(mfsd_table_open(&s, g_dir, &c), 0);
	assert_int_equal(mfsd_follow_rescan(s, NULL, NULL), 0);
	m = mfsd_table_get_key(s, "good");
	assert_non_null(m);
	gen = m->gen;
	mfsd_table_lookup(s, m, MFSD_SLOT_DIR, 1);
	mfsd_table_lookup(s, m, MFSD_SLOT_ARRAY0, 1);
	assert_int_equal(hold(s, m, 10, MFSD_SLOT_ARRAY0), 0);
	assert_int_equal(hold(s, m, 11, MFSD_SLOT_ARRAY0), 0);
	assert_int_equal(hold(s, m, 10, MFSD_SLOT_ARRAY0), 0);
	assert_int_equal(mfsd_table_usage(s, m, &u), 0);
	assert_int_equal(u.nopen, 3);
	assert_int_equal(u.nlookup, 2);
	assert_int_equal(u.nholders, 2);
	assert_int_equal(u.holders[0].pid, 10);
	assert_int_equal(u.holders[0].handles, 2);
	mfsd_table_usage_free(&u);
	mfsd_table_put(s, m);

	mfsd_table_unpublish(s, m);
	assert_null(mfsd_table_get_key(s, "good"));
	m = mfsd_table_get_gen(s, gen);
	assert_non_null(m);
	mfsd_table_put(s, m);

	mfsd_table_release_handle(s, m, 10, MFSD_SLOT_ARRAY0);
	mfsd_table_release_handle(s, m, 10, MFSD_SLOT_ARRAY0);
	mfsd_table_forget(s, gen, MFSD_SLOT_DIR, 1);
	mfsd_table_forget(s, gen, MFSD_SLOT_ARRAY0, 1);
	/* One holder left: still there. */
	m = mfsd_table_get_gen(s, gen);
	assert_non_null(m);
	assert_int_equal(mfsd_table_usage(s, m, &u), 0);
	assert_int_equal(u.nholders, 1);
	assert_int_equal(u.holders[0].pid, 11);
	assert_false(u.in_store);
	mfsd_table_usage_free(&u);
	mfsd_table_put(s, m);
	mfsd_table_release_handle(s, m, 11, MFSD_SLOT_ARRAY0);
	assert_null(mfsd_table_get_gen(s, gen));
	/* Forgetting an inode of a freed model is harmless. */
	mfsd_table_forget(s, gen, MFSD_SLOT_DIR, 1);
	assert_non_null(m = mfsd_table_get_key(s, "other"));
	mfsd_table_put(s, m);
	mfsd_table_close(s);
	mfsd_cache_destroy(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan),
		cmocka_unit_test(test_missing_store),
		cmocka_unit_test(test_empty_store),
		cmocka_unit_test(test_slots_and_attributes),
		cmocka_unit_test(test_lifetime),
		cmocka_unit_test(test_refresh_add_remove),
		cmocka_unit_test(test_refresh_ignored),
		cmocka_unit_test(test_refresh_bad_key),
		cmocka_unit_test(test_refresh_replace_held),
		cmocka_unit_test(test_retired_model),
		cmocka_unit_test(test_refresh_invalid),
		cmocka_unit_test(test_refresh_chmod),
		cmocka_unit_test(test_refresh_key),
		cmocka_unit_test(test_refresh_key_race),
		cmocka_unit_test(test_irregular_entries),
		cmocka_unit_test(test_fd_budget),
		cmocka_unit_test(test_rescan),
		cmocka_unit_test(test_moved_store),
		cmocka_unit_test(test_holds),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
