/*
 * test_watch.c - unit tests of the watcher: real inotify on a temporary
 * store directory, with the kernel notifications recorded instead of
 * sent.  Publishing, replacing (held and not) and removing containers
 * give the right invalidations; entries of removed models are deleted
 * again after a kick and after the retry delay; the page-cache budget
 * drops only released models (tracked from their release, a model
 * opened again not counted, passes a period apart), a release wakes
 * the watcher only when it has work; posts beyond the queue fall back to a
 * whole-listing invalidation; an inotify overflow rescans; a store
 * directory moved away is still followed; the thread runs and stops.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "chunkcache.h"
#include "follow.h"
#include "inode.h"
#include "table.h"
#include "watch.h"

#define CACHE_BYTES (1u << 20)
#define PATH_LEN 512
#define DIR_LEN 64
/* The user holds are made as, which does not matter here. */
#define HOLDER_UID 1000
#define MAX_CALLS 4096
#define NAME_LEN 256
/* Rounds of the loop to wait for an inotify event (each up to 100 ms). */
#define ROUNDS 20
/* Budget period of test_budget_period: long against a round's work. */
#define BUDGET_PERIOD_MS 1000
#define ROUND_MS 100
/* More events than the kernel queues (max_queued_events is 16384). */
#define FLOOD_EVENTS 40000

enum call_kind { INVAL_ENTRY, DELETE_ENTRY, INVAL_INODE };

struct call {
	enum call_kind kind;
	uint64_t a;  /* parent or ino */
	uint64_t b;  /* child, or offset + 1 of inval_inode (0: attrs) */
	char name[NAME_LEN];
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct call g_calls[MAX_CALLS];
static size_t g_ncalls;
static char g_dir[DIR_LEN];

static void add_call(enum call_kind kind, uint64_t a, uint64_t b,
		     const char *name)
{
	pthread_mutex_lock(&g_lock);
	if (g_ncalls < MAX_CALLS) {
		g_calls[g_ncalls] = (struct call){.kind = kind, .a = a, .b = b};
		snprintf(g_calls[g_ncalls].name, NAME_LEN, "%s",
			 name ? name : "");
		g_ncalls++;
	}
	pthread_mutex_unlock(&g_lock);
}

static int rec_inval_entry(void *arg, uint64_t parent, const char *name)
{
	(void)arg;
	add_call(INVAL_ENTRY, parent, 0, name);
	return 0;
}

static int rec_delete(void *arg, uint64_t parent, uint64_t child,
		      const char *name)
{
	(void)arg;
	add_call(DELETE_ENTRY, parent, child, name);
	return 0;
}

static int rec_inval_inode(void *arg, uint64_t ino, int64_t off, int64_t len)
{
	(void)arg, (void)len;
	add_call(INVAL_INODE, ino, off < 0 ? 0 : (uint64_t)off + 1, NULL);
	return 0;
}

static const struct mfsd_notifier g_rec = {
	.inval_entry = rec_inval_entry,
	.delete_entry = rec_delete,
	.inval_inode = rec_inval_inode,
};

/* How many recorded calls match (name NULL: any). */
static size_t count_calls(enum call_kind kind, uint64_t a, uint64_t b,
			  const char *name)
{
	size_t n = 0;

	pthread_mutex_lock(&g_lock);
	for (size_t i = 0; i < g_ncalls; i++) {
		const struct call *c = &g_calls[i];

		n += c->kind == kind && c->a == a && c->b == b &&
		     (!name || strcmp(c->name, name) == 0);
	}
	pthread_mutex_unlock(&g_lock);
	return n;
}

static void clear_calls(void)
{
	pthread_mutex_lock(&g_lock);
	g_ncalls = 0;
	pthread_mutex_unlock(&g_lock);
}

/* Writes container @dir/@name: one uint8 array "v" of 64 bytes of
 * @value, through a temporary file and a rename. */
static void write_in(const char *dir, const char *name, unsigned char value)
{
	mfs_array_spec v = {.name = "v", .dtype = MFS_DTYPE_UINT8, .ndim = 1,
			    .shape = {64}};
	unsigned char bytes[64];
	char path[PATH_LEN];
	mfs_writer *wr;

	memset(bytes, value, sizeof(bytes));
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(mfs_writer_create(&wr, path), 0);
	assert_int_equal(mfs_writer_add_array_buffer(wr, &v, bytes,
						     sizeof(bytes)), 0);
	assert_int_equal(mfs_writer_commit(wr), 0);
}

static void write_version(const char *name, unsigned char value)
{
	write_in(g_dir, name, value);
}

static void path_in(char *out, const char *name)
{
	snprintf(out, PATH_LEN, "%s/%s", g_dir, name);
}

static void remove_file(const char *name)
{
	char path[PATH_LEN];

	path_in(path, name);
	assert_int_equal(unlink(path), 0);
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

/* Runs rounds until @key is published with a generation other than
 * @not_gen (0: any), or gone if @want_gone.  Returns its generation. */
static uint64_t run_until(struct mfsd_watch *w, const char *key,
			  uint64_t not_gen, bool want_gone)
{
	for (int i = 0; i < ROUNDS; i++) {
		uint64_t gen = gen_of(w->table, key);

		if (want_gone ? gen == 0 : gen != 0 && gen != not_gen)
			return gen;
		mfsd_watch_run_once(w, ROUND_MS);
	}
	fail_msg("key %s did not %s", key, want_gone ? "go" : "change");
	return 0;
}

struct fixture {
	struct mfsd_cache cache;
	struct mfsd_table *store;
	struct mfsd_watch watch;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(g_dir, sizeof(g_dir), "/tmp/mfsd-test-watch-XXXXXX");
	if (!f || !mkdtemp(g_dir))
		return -1;
	write_version("base.mfs", 1);
	if (mfsd_cache_init(&f->cache, CACHE_BYTES) < 0 ||
	    mfsd_table_open(&f->store, g_dir, &f->cache) < 0 ||
	    mfsd_follow_rescan(f->store, NULL, NULL) < 0)
		return -1;
	*state = f;
	return 0;
}

/* The fixture with a watch that has budget @budget and the recorder. */
static struct fixture *watched(void **state, uint64_t budget)
{
	struct fixture *f = *state;

	assert_int_equal(mfsd_watch_init(&f->watch, f->store, budget), 0);
	f->watch.notifier = g_rec;
	/* Rounds apply the budget at once (test_budget_period checks the
	 * delay). */
	f->watch.budget_period_ns = 0;
	clear_calls();
	return f;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[2 * DIR_LEN + 32];

	assert_true(mfsd_watch_stop(&f->watch));
	mfsd_watch_destroy(&f->watch);
	mfsd_table_close(f->store);
	mfsd_cache_destroy(&f->cache);
	free(f);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s.moved'", g_dir, g_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_publish(void **state)
{
	struct fixture *f = watched(state, 0);
	uint64_t gen;

	write_version("new.mfs", 2);
	gen = run_until(&f->watch, "new", 0, false);
	assert_true(gen != 0);
	/* The negative entry and the root's cached listing are dropped. */
	assert_int_equal(count_calls(INVAL_ENTRY, MFSD_ROOT_INO, 0, "new"), 1);
	assert_true(count_calls(INVAL_INODE, MFSD_ROOT_INO, 1, NULL) >= 1);
	/* The writer's temporary file was never a model. */
	assert_int_equal(f->store->nskipped, 0);
}

/* A removed model the kernel knows but no process holds: its files'
 * entries are deleted, so the kernel forgets their inodes at once. */
static void test_remove_unheld(void **state)
{
	struct fixture *f = watched(state, 0);
	struct mfsd_model *m = mfsd_table_get_key(f->store, "base");
	uint64_t gen = m->gen, dir = mfsd_ino(gen, MFSD_SLOT_DIR);

	mfsd_table_lookup(f->store, m, MFSD_SLOT_DIR, 1);
	mfsd_table_lookup(f->store, m, MFSD_SLOT_ARRAY0, 1);
	mfsd_table_put(f->store, m);
	remove_file("base.mfs");
	run_until(&f->watch, "base", 0, true);
	assert_int_equal(count_calls(DELETE_ENTRY, dir,
				     mfsd_ino(gen, MFSD_SLOT_ARRAY0), "v.npy"),
			 1);
	assert_int_equal(count_calls(DELETE_ENTRY, dir,
				     mfsd_ino(gen, MFSD_SLOT_MANIFEST),
				     "manifest.json"), 1);
	/* The directory is only invalidated: a path walk through it must
	 * not find it dead. */
	assert_int_equal(count_calls(INVAL_ENTRY, MFSD_ROOT_INO, 0, "base"), 1);
	assert_int_equal(count_calls(DELETE_ENTRY, MFSD_ROOT_INO, dir, "base"),
			 0);
	mfsd_table_forget(f->store, gen, MFSD_SLOT_ARRAY0, 1);
	mfsd_table_forget(f->store, gen, MFSD_SLOT_DIR, 1);
	assert_null(mfsd_table_get_gen(f->store, gen));
	/* Unknown to the kernel: only the name is invalidated. */
	clear_calls();
	write_version("gone.mfs", 1);
	run_until(&f->watch, "gone", 0, false);
	remove_file("gone.mfs");
	run_until(&f->watch, "gone", 0, true);
	assert_int_equal(count_calls(INVAL_ENTRY, MFSD_ROOT_INO, 0, "gone"), 2);
}

/* A replaced model that is held: its files' entries are deleted, its
 * key invalidated; when the holder lets go, its files are deleted again
 * (the kernel may have looked them up since). */
static void test_replace_held(void **state)
{
	struct fixture *f = watched(state, 0);
	struct mfsd_table *s = f->store;
	struct mfsd_model *m = mfsd_table_get_key(s, "base");
	uint64_t gen = m->gen, file = mfsd_ino(gen, MFSD_SLOT_ARRAY0);
	uint64_t dir = mfsd_ino(gen, MFSD_SLOT_DIR);

	mfsd_table_lookup(s, m, MFSD_SLOT_DIR, 1);
	mfsd_table_lookup(s, m, MFSD_SLOT_ARRAY0, 1);
	assert_int_equal(
		mfsd_table_open_handle(s, m, 42, HOLDER_UID, MFSD_SLOT_ARRAY0), 0);
	mfsd_table_put(s, m);
	write_version("base.mfs", 9);
	assert_true(run_until(&f->watch, "base", gen, false) > gen);
	assert_int_equal(count_calls(INVAL_ENTRY, MFSD_ROOT_INO, 0, "base"), 1);
	assert_int_equal(count_calls(DELETE_ENTRY, MFSD_ROOT_INO, dir, "base"),
			 0);
	assert_int_equal(count_calls(DELETE_ENTRY, dir, file, "v.npy"), 1);
	/* While held, no retry. */
	mfsd_watch_run_once(&f->watch, 0);
	assert_int_equal(count_calls(DELETE_ENTRY, dir, file, "v.npy"), 1);
	clear_calls();
	if (mfsd_table_release_handle(s, m, 42, MFSD_SLOT_ARRAY0))
		mfsd_watch_kick(&f->watch);
	mfsd_watch_run_once(&f->watch, 0);
	assert_int_equal(count_calls(DELETE_ENTRY, dir, file, "v.npy"), 1);
	/* Then retried after the delay while the kernel remembers it. */
	mfsd_watch_run_once(&f->watch, 2 * ROUND_MS);
	mfsd_watch_run_once(&f->watch, 2 * ROUND_MS);
	assert_true(count_calls(DELETE_ENTRY, dir, file, "v.npy") >= 2);
	mfsd_table_forget(s, gen, MFSD_SLOT_ARRAY0, 1);
	mfsd_table_forget(s, gen, MFSD_SLOT_DIR, 1);
	assert_null(mfsd_table_get_gen(s, gen));
	/* Nothing is pending any more: a round with no timeout returns. */
	clear_calls();
	mfsd_watch_run_once(&f->watch, 0);
	assert_int_equal(count_calls(DELETE_ENTRY, dir, file, "v.npy"), 0);
}

/* A removed model whose files the kernel forgot, but not its directory,
 * is retired by the watcher once idle for the grace period. */
static void test_retire(void **state)
{
	struct fixture *f = watched(state, 0);
	struct mfsd_table *s = f->store;
	struct mfsd_model *m = mfsd_table_get_key(s, "base");
	struct mfsd_table_counts sc;
	uint64_t gen = m->gen;

	f->watch.retire_grace_ns = 3 * ROUND_MS * UINT64_C(1000000);
	mfsd_table_lookup(s, m, MFSD_SLOT_DIR, 1);
	mfsd_table_lookup(s, m, MFSD_SLOT_MANIFEST, 1);
	mfsd_table_put(s, m);
	remove_file("base.mfs");
	run_until(&f->watch, "base", 0, true);
	if (mfsd_table_forget(s, gen, MFSD_SLOT_MANIFEST, 1))
		mfsd_watch_kick(&f->watch);
	mfsd_watch_run_once(&f->watch, 0);
	mfsd_table_counts(s, &sc);
	assert_int_equal(sc.retired, 0); /* within the grace period */
	for (int i = 0; i < ROUNDS && sc.retired == 0; i++) {
		mfsd_watch_run_once(&f->watch, ROUND_MS);
		mfsd_table_counts(s, &sc);
	}
	assert_int_equal(sc.retired, 1);
	m = mfsd_table_get_gen(s, gen);
	assert_true(m->retired);
	assert_null(m->container);
	mfsd_table_put(s, m);
	mfsd_table_forget(s, gen, MFSD_SLOT_DIR, 1);
	assert_null(mfsd_table_get_gen(s, gen));
}

/* Serves @n bytes of busy @m through a handle of @pid, then releases. */
static void serve_and_release(struct fixture *f, struct mfsd_model *m,
			      pid_t pid, uint64_t n, bool release)
{
	assert_int_equal(mfsd_table_open_handle(f->store, m, pid, HOLDER_UID,
						MFSD_SLOT_ARRAY0), 0);
	mfsd_model_served(m, n);
	if (release &&
	    mfsd_table_release_handle(f->store, m, pid, MFSD_SLOT_ARRAY0))
		mfsd_watch_kick(&f->watch);
}

/* Over budget, the released model's pages go; a held one's never. */
static void test_budget(void **state)
{
	struct fixture *f = watched(state, 100);
	struct mfsd_table *s = f->store;
	struct mfsd_model *held, *old, *recent;
	struct mfsd_watch_stats ws;
	uint64_t ino;

	write_version("held.mfs", 1);
	write_version("recent.mfs", 1);
	run_until(&f->watch, "held", 0, false);
	run_until(&f->watch, "recent", 0, false);
	held = mfsd_table_get_key(s, "held");
	old = mfsd_table_get_key(s, "base");
	recent = mfsd_table_get_key(s, "recent");
	serve_and_release(f, held, 1, 10000, false);
	/* Estimates are capped at what the files hold. */
	assert_int_equal(mfsd_model_cached(held), held->view_size);
	serve_and_release(f, old, 1, 60, true);
	serve_and_release(f, recent, 1, 60, true);
	clear_calls();
	mfsd_watch_run_once(&f->watch, 0);
	mfsd_watch_get_stats(&f->watch, &ws);
	/* 120 released bytes, 100 allowed: the older one goes. */
	assert_int_equal(ws.evictions, 1);
	assert_int_equal(ws.evicted_bytes, 60);
	ino = mfsd_ino(old->gen, MFSD_SLOT_ARRAY0);
	assert_int_equal(count_calls(INVAL_INODE, ino, 1, NULL), 1);
	assert_int_equal(mfsd_model_cached(old), 0);
	assert_int_equal(atomic_load(&old->pc_evictions), 1);
	assert_int_equal(mfsd_model_cached(recent), 60);
	ino = mfsd_ino(held->gen, MFSD_SLOT_ARRAY0);
	assert_int_equal(count_calls(INVAL_INODE, ino, 1, NULL), 0);
	/* Within budget now: another round drops nothing. */
	mfsd_watch_run_once(&f->watch, 0);
	mfsd_watch_get_stats(&f->watch, &ws);
	assert_int_equal(ws.evictions, 1);
	assert_true(mfsd_table_release_handle(s, held, 1, MFSD_SLOT_ARRAY0));
	mfsd_table_put(s, held);
	mfsd_table_put(s, old);
	mfsd_table_put(s, recent);
}

/* Without a budget, the last close of a published model is nothing to
 * the watcher; with one it is noted once per round; a removed model's
 * is a kick. */
static void test_release_kinds(void **state)
{
	struct fixture *f = watched(state, 0);
	struct mfsd_table *s = f->store;
	struct mfsd_model *m = mfsd_table_get_key(s, "base");
	uint64_t *gens;
	bool lost;

	assert_int_equal(mfsd_table_open_handle(s, m, 1, HOLDER_UID,
						MFSD_SLOT_ARRAY0), 0);
	assert_int_equal(mfsd_table_release_handle(s, m, 1, MFSD_SLOT_ARRAY0),
			 MFSD_RELEASE_LAST);
	assert_int_equal(mfsd_table_take_released(s, &gens, &lost), 0);
	assert_false(lost);
	s->note_releases = true;
	/* Twice released, noted once; only the first note wakes. */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(mfsd_table_open_handle(s, m, 1, HOLDER_UID,
							MFSD_SLOT_ARRAY0), 0);
		assert_int_equal(mfsd_table_release_handle(
					 s, m, 1, MFSD_SLOT_ARRAY0),
				 i == 0 ? MFSD_RELEASE_NOTED
					: MFSD_RELEASE_LAST);
	}
	assert_int_equal(mfsd_table_take_released(s, &gens, &lost), 1);
	assert_int_equal(gens[0], m->gen);
	free(gens);
	mfsd_table_unpublish(s, m);
	assert_int_equal(mfsd_table_open_handle(s, m, 1, HOLDER_UID,
						MFSD_SLOT_ARRAY0), 0);
	assert_int_equal(mfsd_table_release_handle(s, m, 1, MFSD_SLOT_ARRAY0),
			 MFSD_RELEASE_LEFT);
	assert_int_equal(mfsd_table_take_released(s, &gens, &lost), 1);
	free(gens);
	mfsd_table_put(s, m);
}

/* A model tracked at its release and opened again since holds nothing
 * for the budget: it is not counted, nor dropped; released again, it
 * is the most recent. */
static void test_budget_reopened(void **state)
{
	struct fixture *f = watched(state, 100);
	struct mfsd_table *s = f->store;
	struct mfsd_model *old, *recent;
	struct mfsd_watch_stats ws;

	write_version("recent.mfs", 1);
	run_until(&f->watch, "recent", 0, false);
	old = mfsd_table_get_key(s, "base");
	recent = mfsd_table_get_key(s, "recent");
	serve_and_release(f, old, 1, 60, true);
	mfsd_watch_run_once(&f->watch, 0);
	assert_int_equal(mfsd_table_open_handle(s, old, 1, HOLDER_UID,
						MFSD_SLOT_ARRAY0), 0);
	serve_and_release(f, recent, 1, 60, true);
	mfsd_watch_run_once(&f->watch, 0);
	mfsd_watch_get_stats(&f->watch, &ws);
	assert_int_equal(ws.evictions, 0);
	assert_int_equal(mfsd_table_release_handle(s, old, 1,
						   MFSD_SLOT_ARRAY0),
			 MFSD_RELEASE_NOTED);
	mfsd_watch_run_once(&f->watch, 0);
	mfsd_watch_get_stats(&f->watch, &ws);
	assert_int_equal(ws.evictions, 1);
	assert_int_equal(mfsd_model_cached(recent), 0);
	assert_int_equal(mfsd_model_cached(old), 60);
	mfsd_table_put(s, old);
	mfsd_table_put(s, recent);
}

/* Budget passes are at least the period apart: a release just after
 * one waits (and wakes nothing more) until the timer brings the next. */
static void test_budget_period(void **state)
{
	struct fixture *f = watched(state, 100);
	struct mfsd_table *s = f->store;
	struct mfsd_model *old, *recent;
	struct mfsd_watch_stats ws;

	f->watch.budget_period_ns = BUDGET_PERIOD_MS * UINT64_C(1000000);
	write_version("recent.mfs", 1);
	run_until(&f->watch, "recent", 0, false);
	old = mfsd_table_get_key(s, "base");
	recent = mfsd_table_get_key(s, "recent");
	serve_and_release(f, old, 1, 60, true);
	mfsd_watch_run_once(&f->watch, 0);
	serve_and_release(f, recent, 1, 60, true);
	mfsd_watch_run_once(&f->watch, 0);
	mfsd_watch_get_stats(&f->watch, &ws);
	assert_int_equal(ws.evictions, 0);
	assert_int_equal(mfsd_model_cached(old), 60);
	/* Nothing else to wake it: the timer does. */
	mfsd_watch_run_once(&f->watch, -1);
	mfsd_watch_get_stats(&f->watch, &ws);
	assert_int_equal(ws.evictions, 1);
	assert_int_equal(mfsd_model_cached(old), 0);
	mfsd_table_put(s, old);
	mfsd_table_put(s, recent);
}

static void test_chmod(void **state)
{
	struct fixture *f = watched(state, 0);
	uint64_t gen = gen_of(f->store, "base");
	char path[PATH_LEN];

	path_in(path, "base.mfs");
	assert_int_equal(chmod(path, 0600), 0);
	for (int i = 0; i < ROUNDS &&
			count_calls(INVAL_INODE, mfsd_ino(gen, MFSD_SLOT_DIR),
				    0, NULL) == 0;
	     i++)
		mfsd_watch_run_once(&f->watch, ROUND_MS);
	assert_int_equal(count_calls(INVAL_INODE, mfsd_ino(gen, MFSD_SLOT_DIR),
				     0, NULL), 1);
	assert_int_equal(count_calls(INVAL_INODE,
				     mfsd_ino(gen, MFSD_SLOT_ARRAY0), 0, NULL),
			 1);
	assert_int_equal(gen_of(f->store, "base"), gen);
	assert_int_equal(chmod(g_dir, 0750), 0);
	for (int i = 0; i < ROUNDS &&
			count_calls(INVAL_INODE, MFSD_ROOT_INO, 0, NULL) == 0;
	     i++)
		mfsd_watch_run_once(&f->watch, ROUND_MS);
	assert_int_equal(count_calls(INVAL_INODE, MFSD_ROOT_INO, 0, NULL), 1);
}

/* A container waiting for a descriptor loads as soon as another model's
 * descriptor is closed, long before its retry timer. */
static void test_fd_freed(void **state)
{
	struct fixture *f = watched(state, 0);

	f->store->fd_freed = mfsd_watch_fd_freed;
	f->store->fd_freed_arg = &f->watch;
	f->store->fd_budget = f->store->nfds; /* base holds the only one */
	write_version("waits.mfs", 2);
	for (int i = 0; i < ROUNDS && f->store->nwaiting == 0; i++)
		mfsd_watch_run_once(&f->watch, ROUND_MS);
	assert_int_equal(f->store->nwaiting, 1);
	assert_int_equal(gen_of(f->store, "waits"), 0);
	/* Only a freed descriptor can bring it now. */
	f->store->skipped[0].retry_ns = UINT64_MAX;
	/* Nothing holds base: removing it closes its descriptor. */
	remove_file("base.mfs");
	run_until(&f->watch, "waits", 0, false);
	assert_int_equal(f->store->nwaiting, 0);
	f->store->fd_freed = NULL;
}

/* Posts beyond the queue's first room are all applied, in order (loader
 * threads post every change they make). */
static void test_post_overflow(void **state)
{
	struct fixture *f = watched(state, 0);
	struct mfsd_change c = {.kind = MFSD_CHANGE_ADDED};
	char key[16];

	for (unsigned i = 0; i < MFSD_WATCH_QUEUE + 5; i++) {
		snprintf(c.key, sizeof(c.key), "k%u", i);
		mfsd_watch_post(&f->watch, &c);
	}
	mfsd_watch_run_once(&f->watch, 0);
	for (unsigned i = 0; i < MFSD_WATCH_QUEUE + 5; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		assert_int_equal(count_calls(INVAL_ENTRY, MFSD_ROOT_INO, 0,
					     key), 1);
	}
	assert_true(count_calls(INVAL_INODE, MFSD_ROOT_INO, 1, NULL) >= 1);
}

/* More events than inotify queues: the overflow makes a full rescan. */
static void test_inotify_overflow(void **state)
{
	struct fixture *f = watched(state, 0);
	struct mfsd_watch_stats ws;
	char a[PATH_LEN], b[PATH_LEN];

	write_version("flood.mfs", 1);
	path_in(a, "base.mfs");
	path_in(b, "flood.mfs");
	/* Alternating names: consecutive equal events would be merged. */
	for (int i = 0; i < FLOOD_EVENTS; i++)
		assert_int_equal(chmod(i % 2 ? a : b, i % 4 < 2 ? 0640 : 0644),
				 0);
	mfsd_watch_run_once(&f->watch, ROUND_MS);
	mfsd_watch_get_stats(&f->watch, &ws);
	assert_int_equal(ws.overflows, 1);
	/* The rescan found what the lost events were about. */
	assert_true(gen_of(f->store, "flood") != 0);
}

/* The watch follows the directory that was opened. */
static void test_moved_dir(void **state)
{
	struct fixture *f = watched(state, 0);
	char moved[PATH_LEN];

	snprintf(moved, sizeof(moved), "%s.moved", g_dir);
	assert_int_equal(rename(g_dir, moved), 0);
	assert_int_equal(mkdir(g_dir, 0755), 0);
	write_version("impostor.mfs", 1);
	write_in(moved, "followed.mfs", 1);
	run_until(&f->watch, "followed", 0, false);
	mfsd_watch_run_once(&f->watch, ROUND_MS);
	assert_int_equal(gen_of(f->store, "impostor"), 0);
	/* The real directory goes away: still served, logged. */
	remove_file("impostor.mfs");
	assert_int_equal(rmdir(g_dir), 0);
	assert_int_equal(rename(moved, g_dir), 0);
	mfsd_watch_run_once(&f->watch, ROUND_MS);
	assert_true(gen_of(f->store, "base") != 0);
}

/* The thread applies changes by itself and stops when told. */
static void test_thread(void **state)
{
	struct fixture *f = watched(state, 0);
	struct timespec pause = {0, ROUND_MS * 1000000L};

	assert_int_equal(mfsd_watch_start(&f->watch, &g_rec), 0);
	write_version("threaded.mfs", 1);
	for (int i = 0; i < ROUNDS && count_calls(INVAL_ENTRY, MFSD_ROOT_INO,
						  0, "threaded") == 0;
	     i++)
		nanosleep(&pause, NULL);
	assert_int_equal(count_calls(INVAL_ENTRY, MFSD_ROOT_INO, 0,
				     "threaded"), 1);
	mfsd_watch_kick(&f->watch);
	assert_true(mfsd_watch_stop(&f->watch));
	assert_true(mfsd_watch_stop(&f->watch));
}

/* A directory that cannot be watched is an error, and nothing leaks. */
static void test_init_fails(void **state)
{
	struct fixture *f = *state;
	struct mfsd_watch w;
	int fd = f->store->dirfd;

	f->store->dirfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(f->store->dirfd >= 0);
	/* Not a directory: IN_ONLYDIR refuses it. */
	assert_int_equal(mfsd_watch_init(&w, f->store, 0), -ENOTDIR);
	close(f->store->dirfd);
	f->store->dirfd = fd;
	/* The fixture's teardown needs a watch to stop and destroy. */
	watched(state, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_publish, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fd_freed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_unheld, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_replace_held, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_retire, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_kinds, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_budget_reopened, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_budget_period, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_chmod, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_overflow, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_inotify_overflow, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_moved_dir, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_fails, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
