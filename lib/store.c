/*
 * store.c - model stores: mount stores (a modelfs daemon serves the store
 * directory), directory stores (containers in a directory, no daemon) and
 * in-process stores (the builders themselves); mfs_store_get's priority;
 * publishing and removing models; reference counting and shutdown.
 *
 * Lock order: mfs_stores_lock, then a live set's lock, then a store's
 * lock.  Publishing (writing, renaming, fsyncing) happens under no lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "layout.h"
#include "builder_internal.h"
#include "mount_internal.h"
#include "sharing_internal.h"
#include "staging_internal.h"
#include "store_internal.h"

/* Environment of mfs_store_get. */
#define MFS_ENV_MOUNT "MODELFS_MOUNT"
#define MFS_ENV_STORE "MODELFS_STORE"
#define MFS_ENV_TMPDIR "TMPDIR"
#define MFS_DEFAULT_TMPDIR "/tmp"
#define MFS_PRIVATE_TEMPLATE "modelfs-XXXXXX"
/* Spec prefixes (modelfs.h documents the syntax). */
/* A model's file in a store directory. */
/* Hidden names of files being published (readers ignore '.' names). */
/* Mode of a private store directory before the umask, as mkdir(1) gives. */
#define MFS_DIR_MODE 0777
/* Poll interval while waiting for a put to appear on a mount. */
#define MFS_MOUNT_POLL_NS 10000000L
#define MFS_NS_PER_MS 1000000L
#define MFS_MS_PER_S 1000L
/* First capacity of the ephemeral and entry tables. */
#define MFS_INITIAL_KEYS 8u

enum mfs_store_kind {
	MFS_KIND_DIR,
	MFS_KIND_MOUNT,
	MFS_KIND_INPROC,
};

/* A model of an in-process store. */
struct mfs_inproc_entry {
	char *key;            /* owned */
	mfs_builder *builder; /* one reference */
};

struct mfs_store {
	/* Immutable after creation: */
	enum mfs_store_kind kind;
	char *dir;        /* store directory (dir, mount); NULL in-process */
	char *mount;      /* mount point (mount kind), else NULL */
	char *spec;       /* client spec */
	bool private_dir; /* made by mfs_store_get: removed at shutdown */

	/* Protected by mfs_stores_lock: */
	unsigned handles; /* acquisitions not yet released */
	unsigned clients; /* in-process clients attached */
	bool shut_down;   /* the last handle was released */

	pthread_mutex_t lock;
	/* Protected by lock: keys this store put as ephemeral (dir, mount). */
	char **ephemeral;
	size_t n_ephemeral;
	size_t cap_ephemeral;
	size_t n_reserved; /* puts in flight holding room in the list */
	/* Protected by lock: the models of an in-process store. */
	struct mfs_inproc_entry *entries;
	size_t n_entries;
	size_t cap_entries;
};

/* Serializes handle counts, shutdown and freeing of every store. */
static pthread_mutex_t mfs_stores_lock = PTHREAD_MUTEX_INITIALIZER;
/* Stores not yet freed (released twice = not in here). */
static struct mfs_live_set mfs_live_stores = MFS_LIVE_SET_INIT;

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

/* "DIR/KEY.mfs" into @buf (PATH_MAX): 0 or -ENAMETOOLONG. */
static int mfs_model_path(const mfs_store *s, const char *key, char *buf)
{
	int n = snprintf(buf, PATH_MAX, "%s/%s" MFS_CONTAINER_SUFFIX, s->dir,
			 key);

	if (n < 0 || n >= PATH_MAX)
		/* The bound first: a long directory fills the message. */
		return mfs_fail(-ENAMETOOLONG, "model '%s': its path is longer "
				"than %d bytes in store '%s'", key,
				PATH_MAX - 1, s->dir);
	return 0;
}

static int mfs_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

	if (fd < 0 || fsync(fd) < 0)
		rc = mfs_fail(-errno, "store '%s': fsync of the directory: %s",
			      dir, strerror(errno));
	if (fd >= 0)
		close(fd);
	return rc;
}

static void mfs_copy_key(char *key_out, const char *key)
{
	if (key_out)
		snprintf(key_out, MFS_KEY_BUFSIZE, "%s", key);
}

/* ------------------------------------------------------------------ */
/* Creation, registration, release                                     */
/* ------------------------------------------------------------------ */

static void mfs_store_destroy(mfs_store *s)
{
	for (size_t i = 0; i < s->n_ephemeral; i++)
		free(s->ephemeral[i]);
	free(s->ephemeral);
	free(s->entries);
	pthread_mutex_destroy(&s->lock);
	free(s->spec);
	free(s->mount);
	free(s->dir);
	free(s);
}

/* A store of @kind on copies of @dir and @mount (either may be NULL);
 * NULL when out of memory. */
static mfs_store *mfs_store_alloc(enum mfs_store_kind kind, const char *dir,
				  const char *mount)
{
	mfs_store *s = calloc(1, sizeof(*s));
	int n = -1;

	if (!s)
		return NULL;
	s->kind = kind;
	pthread_mutex_init(&s->lock, NULL);
	s->dir = dir ? strdup(dir) : NULL;
	s->mount = mount ? strdup(mount) : NULL;
	if ((dir && !s->dir) || (mount && !s->mount)) {
		mfs_store_destroy(s);
		return NULL;
	}
	if (kind == MFS_KIND_MOUNT)
		n = asprintf(&s->spec, MFS_SPEC_MOUNT "%s", mount);
	else if (kind == MFS_KIND_DIR)
		n = asprintf(&s->spec, MFS_SPEC_DIR "%s", dir);
	else
		n = asprintf(&s->spec, MFS_SPEC_INPROC "0x%" PRIxPTR ":%ld",
			     (uintptr_t)s, (long)getpid());
	if (n < 0) {
		s->spec = NULL;
		mfs_store_destroy(s);
		return NULL;
	}
	return s;
}

static int mfs_mount_wait(const mfs_store *s, const char *key, ino_t old_ino,
			  bool gone);

/* Shuts @s down (mfs_stores_lock held): removes what it put ephemeral
 * and, on a mount, waits until the daemon shows them gone. */
static int mfs_store_shutdown(mfs_store *s)
{
	char path[PATH_MAX];
	struct mfs_inproc_entry *entries;
	size_t n_entries;
	int rc = 0;

	/* In-process clients may still look keys up (under s->lock) while
	 * the last release shuts the store down: detach the entries under
	 * the lock, free them after. */
	pthread_mutex_lock(&s->lock);
	entries = s->entries;
	n_entries = s->n_entries;
	s->n_entries = 0;
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < n_entries; i++) {
		free(entries[i].key);
		mfs_builder_unref(entries[i].builder);
	}
	for (size_t i = 0; i < s->n_ephemeral; i++) {
		if (mfs_model_path(s, s->ephemeral[i], path) == 0 &&
		    unlink(path) < 0 && errno != ENOENT && rc == 0)
			rc = mfs_fail(-errno, "store '%s': removing ephemeral "
				      "model '%s': %s", s->dir,
				      s->ephemeral[i], strerror(errno));
	}
	if (s->n_ephemeral > 0 && !s->private_dir) {
		int frc = mfs_fsync_dir(s->dir);
		rc = rc ? rc : frc;
	}
	/* As mfs_store_remove: once released, the models are gone from the
	 * mount too, not just from its store directory. */
	for (size_t i = 0; s->kind == MFS_KIND_MOUNT && i < s->n_ephemeral;
	     i++) {
		int wrc = mfs_mount_wait(s, s->ephemeral[i], 0, true);
		rc = rc ? rc : wrc;
	}
	/* A private directory still holding persistent models stays. */
	if (s->private_dir && rmdir(s->dir) < 0 && errno != ENOTEMPTY &&
	    errno != EEXIST && rc == 0)
		rc = mfs_fail(-errno, "store '%s': removing the private "
			      "directory: %s", s->dir, strerror(errno));
	s->shut_down = true;
	return rc;
}

/* Makes new store @s live with one handle on this thread's stack; frees
 * it on failure. */
static int mfs_store_register(mfs_store *s, mfs_store **out)
{
	int rc;

	s->handles = 1; /* nobody else knows @s yet: no lock needed */
	rc = mfs_stack_push(s);

	if (rc == 0 && mfs_live_add(&mfs_live_stores, s) < 0) {
		mfs_stack_remove(s);
		rc = mfs_fail(-ENOMEM, "store: out of memory");
	}
	if (rc < 0) {
		if (s->private_dir)
			rmdir(s->dir);
		mfs_store_destroy(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* 0 if @s is an open store handle, else -EINVAL naming @fn. */
static int mfs_store_check(const mfs_store *s, const char *fn)
{
	bool ok;

	if (!s)
		return mfs_fail(-EINVAL, "%s: NULL store", fn);
	pthread_mutex_lock(&mfs_stores_lock);
	ok = mfs_live_has(&mfs_live_stores, s) && s->handles > 0;
	pthread_mutex_unlock(&mfs_stores_lock);
	if (!ok)
		return mfs_fail(-EINVAL, "%s: store %p is not open (used after "
				"its last release?)", fn, (const void *)s);
	return 0;
}

/* Frees @s if nothing holds it any more (mfs_stores_lock held). */
static bool mfs_store_unused(mfs_store *s)
{
	if (s->handles > 0 || s->clients > 0)
		return false;
	mfs_live_remove(&mfs_live_stores, s);
	return true;
}

int mfs_store_release(mfs_store *s)
{
	bool free_it = false;
	int rc = 0;

	mfs_clear_error();
	if (!s)
		return mfs_fail(-EINVAL, "mfs_store_release: NULL store");
	pthread_mutex_lock(&mfs_stores_lock);
	if (!mfs_live_has(&mfs_live_stores, s) || s->handles == 0) {
		pthread_mutex_unlock(&mfs_stores_lock);
		return mfs_fail(-EINVAL, "mfs_store_release: store %p is not "
				"open (released more often than acquired)",
				(void *)s);
	}
	mfs_stack_remove(s);
	if (--s->handles == 0) {
		rc = mfs_store_shutdown(s);
		free_it = mfs_store_unused(s);
	}
	pthread_mutex_unlock(&mfs_stores_lock);
	if (free_it)
		mfs_store_destroy(s);
	return rc;
}

const char *mfs_store_directory(const mfs_store *s)
{
	return s->dir;
}

bool mfs_store_in_process(const mfs_store *s)
{
	return s->kind == MFS_KIND_INPROC;
}

const char *mfs_store_client_spec(const mfs_store *s)
{
	return s ? s->spec : NULL;
}

/* ------------------------------------------------------------------ */
/* Opening stores                                                      */
/* ------------------------------------------------------------------ */

int mfs_store_open_mount(mfs_store **out, const char *mountpoint)
{
	char real[PATH_MAX], dir[PATH_MAX], real_dir[PATH_MAX];
	enum mfs_mount_state state;
	mfs_store *s;
	int rc;

	mfs_clear_error();
	if (!out || !mountpoint)
		return mfs_fail(-EINVAL, "mfs_store_open_mount: NULL argument");
	state = mfs_mount_probe(mountpoint);
	if (state == MFS_MOUNT_DEAD)
		return mfs_fail_dead_mount("", mountpoint);
	if (state != MFS_MOUNT_LIVE)
		return mfs_fail(-ENODEV, "'%s' is not served by a modelfs daemon "
				"(no %s mount there in %s)", mountpoint,
				MFS_FSTYPE, MFS_MOUNTINFO);
	if (!realpath(mountpoint, real))
		return mfs_fail(-errno, "mount '%s': %s", mountpoint,
				strerror(errno));
	rc = mfs_mount_store_dir(real, dir);
	if (rc < 0)
		return rc;
	if (!realpath(dir, real_dir))
		return mfs_fail(-errno, "mount '%s': store directory '%s': %s",
				real, dir, strerror(errno));
	s = mfs_store_alloc(MFS_KIND_MOUNT, real_dir, real);
	if (!s)
		return mfs_fail(-ENOMEM, "mount '%s': out of memory", real);
	return mfs_store_register(s, out);
}

/* Creates @dir (one level) unless it exists; it must be a directory. */
static int mfs_ensure_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, MFS_DIR_MODE) < 0 && errno != EEXIST)
		return mfs_fail(-errno, "store directory '%s': mkdir: %s", dir,
				strerror(errno));
	if (stat(dir, &st) < 0)
		return mfs_fail(-errno, "store directory '%s': %s", dir,
				strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return mfs_fail(-ENOTDIR, "store directory '%s' is not a "
				"directory", dir);
	return 0;
}

/* A directory store on existing @dir. */
static int mfs_store_dir_at(mfs_store **out, const char *dir, bool private_dir)
{
	char real[PATH_MAX];
	mfs_store *s;

	if (!realpath(dir, real))
		return mfs_fail(-errno, "store directory '%s': %s", dir,
				strerror(errno));
	s = mfs_store_alloc(MFS_KIND_DIR, real, NULL);
	if (!s)
		return mfs_fail(-ENOMEM, "store directory '%s': out of memory",
				dir);
	s->private_dir = private_dir;
	return mfs_store_register(s, out);
}

int mfs_store_open_dir(mfs_store **out, const char *dir)
{
	int rc;

	mfs_clear_error();
	if (!out || !dir || !*dir)
		return mfs_fail(-EINVAL, "mfs_store_open_dir: NULL argument or "
				"empty path");
	rc = mfs_ensure_dir(dir);
	return rc < 0 ? rc : mfs_store_dir_at(out, dir, false);
}

int mfs_store_new_in_process(mfs_store **out)
{
	mfs_store *s;

	mfs_clear_error();
	if (!out)
		return mfs_fail(-EINVAL, "mfs_store_new_in_process: NULL "
				"argument");
	s = mfs_store_alloc(MFS_KIND_INPROC, NULL, NULL);
	if (!s)
		return mfs_fail(-ENOMEM, "in-process store: out of memory");
	return mfs_store_register(s, out);
}

/* A directory store on a new private directory under $TMPDIR. */
static int mfs_store_new_private(mfs_store **out)
{
	const char *tmp = getenv(MFS_ENV_TMPDIR);
	char path[PATH_MAX];
	int rc;

	if (!tmp || !*tmp)
		tmp = MFS_DEFAULT_TMPDIR;
	if (snprintf(path, sizeof(path), "%s/" MFS_PRIVATE_TEMPLATE, tmp) >=
	    (int)sizeof(path))
		return mfs_fail(-ENAMETOOLONG, "private store: path too long "
				"(%d bytes at most) under TMPDIR '%s'",
				PATH_MAX - 1, tmp);
	if (!mkdtemp(path))
		return mfs_fail(-errno, "private store under '%s': mkdtemp: %s",
				tmp, strerror(errno));
	rc = mfs_store_dir_at(out, path, true);
	if (rc < 0)
		rmdir(path);
	return rc;
}

/* Another handle on the active store @s: 0, or -ENOENT if it is going. */
static int mfs_store_reuse(mfs_store *s, mfs_store **out)
{
	bool ok;
	int rc;

	pthread_mutex_lock(&mfs_stores_lock);
	ok = mfs_live_has(&mfs_live_stores, s) && s->handles > 0;
	if (ok)
		s->handles++;
	pthread_mutex_unlock(&mfs_stores_lock);
	if (!ok)
		return -ENOENT;
	rc = mfs_stack_push(s);
	if (rc < 0) {
		pthread_mutex_lock(&mfs_stores_lock);
		s->handles--; /* >= 1: the stack still holds one */
		pthread_mutex_unlock(&mfs_stores_lock);
		return rc;
	}
	*out = s;
	return 0;
}

int mfs_store_get(mfs_store **out, unsigned flags)
{
	const unsigned known = MFS_STORE_NO_REUSE | MFS_STORE_IN_PROCESS;
	const char *mount = getenv(MFS_ENV_MOUNT), *dir;
	mfs_store *top = mfs_stack_top();
	int rc;

	mfs_clear_error();
	if (!out)
		return mfs_fail(-EINVAL, "mfs_store_get: NULL argument");
	if (flags & ~known)
		return mfs_fail(-EINVAL, "mfs_store_get: unknown flags 0x%x "
				"(allowed 0x%x)", flags & ~known, known);
	/* A store released on another thread may linger on this stack:
	 * skip (and drop) it. */
	for (; !(flags & MFS_STORE_NO_REUSE) && top; top = mfs_stack_top()) {
		rc = mfs_store_reuse(top, out);
		if (rc != -ENOENT)
			return rc;
		mfs_stack_remove(top);
	}
	if (flags & MFS_STORE_IN_PROCESS)
		return mfs_store_new_in_process(out);
	if (!mount)
		mount = MFS_DEFAULT_MOUNT;
	if (*mount && mfs_is_modelfs_mount(mount)) {
		rc = mfs_store_open_mount(out, mount);
		/* A mount of a store at a URL takes no puts: the next
		 * choice. */
		if (rc != -EROFS)
			return rc;
		mfs_clear_error();
	}
	dir = getenv(MFS_ENV_STORE);
	if (dir && *dir)
		return mfs_store_open_dir(out, dir);
	return mfs_store_new_private(out);
}

/* ------------------------------------------------------------------ */
/* Bookkeeping of ephemeral keys                                       */
/* ------------------------------------------------------------------ */

/* Index of @key among the ephemeral keys (s->lock held), or -1. */
static ssize_t mfs_find_ephemeral(const mfs_store *s, const char *key)
{
	for (size_t i = 0; i < s->n_ephemeral; i++)
		if (strcmp(s->ephemeral[i], key) == 0)
			return (ssize_t)i;
	return -1;
}

static void mfs_drop_ephemeral(mfs_store *s, const char *key)
{
	ssize_t i;

	pthread_mutex_lock(&s->lock);
	i = mfs_find_ephemeral(s, key);
	if (i >= 0) {
		free(s->ephemeral[i]);
		s->ephemeral[i] = s->ephemeral[--s->n_ephemeral];
	}
	pthread_mutex_unlock(&s->lock);
}

/* Path of model @key on the mount of @s; 0 or -ENAMETOOLONG. */
static int mfs_mount_path(const mfs_store *s, const char *key, char *path)
{
	if (snprintf(path, PATH_MAX, "%s/%s", s->mount, key) >= PATH_MAX)
		return mfs_fail(-ENAMETOOLONG, "model '%s': its path is longer "
				"than %d bytes on mount '%s'", key,
				PATH_MAX - 1, s->mount);
	return 0;
}

/* Inode of MOUNT/KEY now, or 0 if it is not there. */
static ino_t mfs_mount_ino(const mfs_store *s, const char *key)
{
	char path[PATH_MAX];
	struct stat st;

	if (mfs_mount_path(s, key, path) < 0 || stat(path, &st) < 0)
		return 0;
	return st.st_ino;
}

/*
 * Waits, at most MFS_MOUNT_WAIT_MS, until the daemon shows the change just
 * made to the store directory: MOUNT/KEY gone (@gone), or present with an
 * inode other than @old_ino.  The daemon applies changes asynchronously
 * and gives every container version a new directory inode, so "exists" is
 * not enough after a replace: the old version may still be the one shown.
 */
static int mfs_mount_wait(const mfs_store *s, const char *key, ino_t old_ino,
			  bool gone)
{
	const struct timespec step = {0, MFS_MOUNT_POLL_NS};
	struct timespec start, now;
	char path[PATH_MAX];
	struct stat st;
	long waited;
	int rc = mfs_mount_path(s, key, path);

	if (rc < 0)
		return rc;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		rc = stat(path, &st);
		if (gone ? rc < 0 && errno == ENOENT
			 : rc == 0 && st.st_ino != old_ino)
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &now);
		waited = (now.tv_sec - start.tv_sec) * MFS_MS_PER_S +
			 (now.tv_nsec - start.tv_nsec) / MFS_NS_PER_MS;
		if (waited >= (long)MFS_MOUNT_WAIT_MS)
			return mfs_fail(-ETIMEDOUT, "store '%s': model '%s' is "
					"%s but the change did not show on "
					"mount '%s' within %u ms (does the "
					"daemon watch its store directory?)",
					s->dir, key,
					gone ? "removed" : "published",
					s->mount, MFS_MOUNT_WAIT_MS);
		nanosleep(&step, NULL);
	}
}

/* Reserves room in the ephemeral list (s->lock held): 0 or -ENOMEM. */
static int mfs_reserve_ephemeral(mfs_store *s)
{
	size_t cap;
	void *p;

	if (s->n_ephemeral + s->n_reserved < s->cap_ephemeral)
		return 0;
	cap = s->cap_ephemeral ? 2 * s->cap_ephemeral : MFS_INITIAL_KEYS;
	p = realloc(s->ephemeral, cap * sizeof(*s->ephemeral));
	if (!p)
		return -ENOMEM;
	s->ephemeral = p;
	s->cap_ephemeral = cap;
	return 0;
}

/* Starts a put of @key into @s. */
int mfs_put_begin(struct mfs_put *p, mfs_store *s, const char *key,
		  unsigned flags)
{
	char path[PATH_MAX];
	int rc;

	memset(p, 0, sizeof(*p));
	p->s = s;
	snprintf(p->key, sizeof(p->key), "%s", key);
	rc = mfs_model_path(s, key, path);
	if (rc < 0)
		return rc;
	p->existed = access(path, F_OK) == 0;
	p->durable = (flags & MFS_PUT_PERSISTENT) || p->existed;
	if (s->kind == MFS_KIND_MOUNT && p->existed)
		p->mount_ino = mfs_mount_ino(s, key);
	p->record = strdup(key);
	pthread_mutex_lock(&s->lock);
	rc = p->record ? mfs_reserve_ephemeral(s) : -ENOMEM;
	if (rc == 0)
		s->n_reserved++;
	pthread_mutex_unlock(&s->lock);
	if (rc < 0) {
		free(p->record);
		p->record = NULL;
		return mfs_fail(-ENOMEM, "store '%s': out of memory putting "
				"model '%s'", s->dir, key);
	}
	return 0;
}

/* Ends a put with outcome @rc (store_internal.h has the contract). */
int mfs_put_end(struct mfs_put *p, int rc, unsigned flags,
		char *key_out)
{
	mfs_store *s = p->s;
	bool keep = !(flags & MFS_PUT_PERSISTENT) && !p->existed;
	ssize_t i;

	if (p->record) {
		pthread_mutex_lock(&s->lock);
		s->n_reserved--;
		i = mfs_find_ephemeral(s, p->key);
		if (p->published && (flags & MFS_PUT_PERSISTENT) && i >= 0) {
			free(s->ephemeral[i]);
			s->ephemeral[i] = s->ephemeral[--s->n_ephemeral];
		} else if (p->published && keep && i < 0) {
			s->ephemeral[s->n_ephemeral++] = p->record;
			p->record = NULL;
		}
		pthread_mutex_unlock(&s->lock);
		free(p->record);
	}
	if (rc == 0 && s->kind == MFS_KIND_MOUNT)
		rc = mfs_mount_wait(s, p->key, p->mount_ino, false);
	if (rc == 0)
		mfs_copy_key(key_out, p->key);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Publishing into a store directory                                   */
/* ------------------------------------------------------------------ */

/* Content key of the container at @fd: its index checksum in hex. */
int mfs_container_key(int fd, const char *label, char *key)
{
	uint8_t h[MFS_HDR_SIZE];
	int rc = mfs_pread_full(fd, h, sizeof(h), 0);

	if (rc < 0)
		return mfs_fail(rc, "%s: reading the header: %s", label,
				strerror(-rc));
	snprintf(key, MFS_CONTENT_KEY_LEN + 1, "%016" PRIx64,
		 mfs_get64(h + MFS_HDR_INDEX_CHECKSUM));
	return 0;
}

static int mfs_file_key(const char *path, char *key)
{
	int fd = mfs_open_regular(AT_FDCWD, path, 0, NULL), rc;

	if (fd < 0)
		return fd;
	rc = mfs_container_key(fd, path, key);
	close(fd);
	return rc;
}


/* fsyncs file @path (a staged file of store @s). */
static int mfs_fsync_file(const mfs_store *s, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0 || fsync(fd) < 0)
		rc = mfs_fail(-errno, "store '%s': fsync of '%s': %s", s->dir,
			      path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Renames staged file @from onto the model path of @p's key. */
int mfs_publish_rename(struct mfs_put *p, const char *from, bool synced)
{
	char path[PATH_MAX];
	int rc = mfs_model_path(p->s, p->key, path);

	if (rc == 0 && p->durable && !synced)
		rc = mfs_fsync_file(p->s, from);
	if (rc < 0)
		return rc;
	if (rename(from, path) < 0)
		return mfs_fail(-errno, "store '%s': publishing model '%s': "
				"rename: %s", p->s->dir, p->key,
				strerror(errno));
	p->published = true;
	return p->durable ? mfs_fsync_dir(p->s->dir) : 0;
}

/* Puts @b (share context) into a directory or mount store. */
static int mfs_dir_put(mfs_store *s, const mfs_builder *b, const char *key,
		       unsigned flags, char *key_out)
{
	char path[PATH_MAX], staged[PATH_MAX], content[MFS_KEY_BUFSIZE];
	struct mfs_put p;
	int rc;

	if (key) {
		rc = mfs_put_begin(&p, s, key, flags);
		if (rc == 0)
			rc = mfs_model_path(s, key, path);
		if (rc == 0)
			rc = mfs_builder_write_as(b, path, true, p.durable);
		p.published = rc == 0;
		return mfs_put_end(&p, rc, flags, key_out);
	}
	/* The key is known only once the container is written: stage it
	 * under a hidden name, which readers and the daemon ignore. */
	if (!mfs_staging_path(staged, s->dir))
		return mfs_fail(-ENAMETOOLONG, "path of a file being "
				"published is too long (%d bytes at most) in "
				"store '%s'", PATH_MAX - 1, s->dir);
	/* Whether the key is there already is known only now: a staged
	 * file that must be durable after all is fsynced at the rename. */
	rc = mfs_builder_write_as(b, staged, true,
				  flags & MFS_PUT_PERSISTENT);
	if (rc == 0)
		rc = mfs_file_key(staged, content);
	if (rc < 0) {
		unlink(staged);
		return rc;
	}
	rc = mfs_put_begin(&p, s, content, flags);
	if (rc == 0)
		rc = mfs_publish_rename(&p, staged,
					flags & MFS_PUT_PERSISTENT);
	if (!p.published)
		unlink(staged);
	return mfs_put_end(&p, rc, flags, key_out);
}

/* ------------------------------------------------------------------ */
/* In-process models                                                   */
/* ------------------------------------------------------------------ */

/* Index of @key among the entries (s->lock held), or -1. */
static ssize_t mfs_find_entry(const mfs_store *s, const char *key)
{
	for (size_t i = 0; i < s->n_entries; i++)
		if (strcmp(s->entries[i].key, key) == 0)
			return (ssize_t)i;
	return -1;
}

/* Adds or replaces entry @key -> @b (s->lock held); *@old gets a replaced
 * builder to unref after unlocking. */
static int mfs_set_entry(mfs_store *s, const char *key, mfs_builder *b,
			 mfs_builder **old)
{
	ssize_t i = mfs_find_entry(s, key);
	char *copy;
	void *p;

	if (i >= 0) {
		*old = s->entries[i].builder;
		s->entries[i].builder = b;
		return 0;
	}
	if (s->n_entries == s->cap_entries) {
		size_t cap = s->cap_entries ? 2 * s->cap_entries
					    : MFS_INITIAL_KEYS;
		p = realloc(s->entries, cap * sizeof(*s->entries));
		if (!p)
			return -ENOMEM;
		s->entries = p;
		s->cap_entries = cap;
	}
	copy = strdup(key);
	if (!copy)
		return -ENOMEM;
	s->entries[s->n_entries].key = copy;
	s->entries[s->n_entries++].builder = b;
	return 0;
}

static int mfs_inproc_put(mfs_store *s, mfs_builder *b, const char *key,
			  char *key_out)
{
	char content[MFS_KEY_BUFSIZE];
	mfs_builder *old = NULL;
	int rc = mfs_builder_freeze(b);

	if (rc < 0)
		return rc;
	if (!key) {
		mfs_builder_content_key(b, content);
		key = content;
	}
	mfs_builder_ref(b);
	pthread_mutex_lock(&s->lock);
	rc = mfs_set_entry(s, key, b, &old);
	pthread_mutex_unlock(&s->lock);
	if (rc < 0) {
		mfs_builder_unref(b);
		return mfs_fail(rc, "in-process store: out of memory putting "
				"model '%s'", key);
	}
	mfs_builder_unref(old);
	mfs_copy_key(key_out, key);
	return 0;
}

int mfs_inproc_attach(uintptr_t addr, mfs_store **out)
{
	mfs_store *s = (mfs_store *)addr;
	bool ok;

	pthread_mutex_lock(&mfs_stores_lock);
	ok = mfs_live_has(&mfs_live_stores, s) && s->kind == MFS_KIND_INPROC &&
	     !s->shut_down;
	if (ok)
		s->clients++;
	pthread_mutex_unlock(&mfs_stores_lock);
	if (!ok)
		return mfs_fail(-ENOENT, "no open in-process store at 0x%" PRIxPTR
				" in this process (released?)", addr);
	*out = s;
	return 0;
}

void mfs_inproc_detach(mfs_store *s)
{
	bool free_it;

	pthread_mutex_lock(&mfs_stores_lock);
	s->clients--;
	free_it = mfs_store_unused(s);
	pthread_mutex_unlock(&mfs_stores_lock);
	if (free_it)
		mfs_store_destroy(s);
}

int mfs_inproc_lookup(mfs_store *s, const char *key, mfs_builder **out)
{
	ssize_t i;

	pthread_mutex_lock(&s->lock);
	i = mfs_find_entry(s, key);
	if (i >= 0) {
		*out = s->entries[i].builder;
		mfs_builder_ref(*out);
	}
	pthread_mutex_unlock(&s->lock);
	if (i < 0)
		return mfs_fail(-ENOENT, "no model '%s' in in-process store "
				"%s", key, s->spec);
	return 0;
}

static int mfs_inproc_remove(mfs_store *s, const char *key)
{
	mfs_builder *b = NULL;
	ssize_t i;

	pthread_mutex_lock(&s->lock);
	i = mfs_find_entry(s, key);
	if (i >= 0) {
		b = s->entries[i].builder;
		free(s->entries[i].key);
		s->entries[i] = s->entries[--s->n_entries];
	}
	pthread_mutex_unlock(&s->lock);
	if (i < 0)
		return mfs_fail(-ENOENT, "no model '%s' in in-process store "
				"%s", key, s->spec);
	mfs_builder_unref(b);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Public put and remove                                               */
/* ------------------------------------------------------------------ */

/* Common checks of the put functions. */
int mfs_check_put(const mfs_store *s, const char *fn, const char *key,
		  unsigned flags, unsigned allowed)
{
	int rc = mfs_store_check(s, fn);

	if (rc < 0)
		return rc;
	if (flags & ~allowed)
		return mfs_fail(-EINVAL, "%s: unknown flags 0x%x (allowed 0x%x)",
				fn, flags & ~allowed, allowed);
	return key ? mfs_check_key(key) : 0;
}

/* Puts @b in share context, as every put into a store is. */
int mfs_put_builder(mfs_store *s, mfs_builder *b, const char *key,
		    unsigned flags, char *key_out)
{
	int rc;

	mfs_sharing_begin();
	if (s->kind == MFS_KIND_INPROC)
		rc = mfs_inproc_put(s, b, key, key_out);
	else
		rc = mfs_dir_put(s, b, key, flags, key_out);
	mfs_sharing_end();
	return rc;
}

int mfs_store_put(mfs_store *s, mfs_builder *b, const char *key,
		  unsigned flags, char *key_out)
{
	int rc;

	mfs_clear_error();
	rc = mfs_check_put(s, "mfs_store_put", key, flags, MFS_PUT_PERSISTENT);
	if (rc < 0)
		return rc;
	if (!b)
		return mfs_fail(-EINVAL, "mfs_store_put: NULL builder");
	return mfs_put_builder(s, b, key, flags, key_out);
}

int mfs_store_remove(mfs_store *s, const char *key)
{
	char path[PATH_MAX];
	int rc;

	mfs_clear_error();
	rc = mfs_store_check(s, "mfs_store_remove");
	if (rc == 0)
		rc = mfs_check_key(key);
	if (rc < 0)
		return rc;
	if (s->kind == MFS_KIND_INPROC)
		return mfs_inproc_remove(s, key);
	rc = mfs_model_path(s, key, path);
	if (rc < 0)
		return rc;
	if (unlink(path) < 0) {
		if (errno == ENOENT)
			return mfs_fail(-ENOENT, "no model '%s' in store '%s'",
					key, s->dir);
		return mfs_fail(-errno, "store '%s': removing model '%s': %s",
				s->dir, key, strerror(errno));
	}
	mfs_drop_ephemeral(s, key);
	rc = mfs_fsync_dir(s->dir);
	if (rc == 0 && s->kind == MFS_KIND_MOUNT)
		rc = mfs_mount_wait(s, key, 0, true);
	return rc;
}
