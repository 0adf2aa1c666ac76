/*
 * follow.c - following STORE_DIR (see follow.h): the refresh of a name,
 * by one thread at a time, the skipped list, scans and retries.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "follow.h"
#include "lease.h"
#include "log.h"
#include "model.h"
#include "table.h"
#include "vec.h"

/* A transient load failure is retried after this long, doubling up to
 * the maximum: long enough not to spin on a full descriptor table or a
 * failing disk, short enough that a model appears soon after. */
#define MFSD_LOAD_RETRY_FIRST_NS MFSD_NS_PER_SEC
#define MFSD_LOAD_RETRY_MAX_NS (60 * MFSD_NS_PER_SEC)

/* ------------------------------------------------------------------ */
/* Skipped containers                                                 */
/* ------------------------------------------------------------------ */

/* Orders name @key against skipped entry @elem. */
static int mfsd_skipped_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct mfsd_skipped *)elem)->file_name);
}

/* Index of the first skipped entry with name >= @name.  t->lock
 * held. */
static size_t mfsd_skipped_pos(const struct mfsd_table *t, const char *name)
{
	return mfsd_vec_lower_bound(t->skipped, t->nskipped,
				    sizeof(*t->skipped), name,
				    mfsd_skipped_cmp);
}

/* True if @a and @b are the same file with the same contents (an
 * in-place rewrite changes size or mtime). */
static bool mfsd_same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* True if @name is skipped and @st is the very file that was refused. */
static bool mfsd_skipped_same(struct mfsd_table *t, const char *name,
			      const struct stat *st)
{
	const struct mfsd_skipped *k;
	bool same = false;
	size_t pos;

	pthread_mutex_lock(&t->lock);
	pos = mfsd_skipped_pos(t, name);
	k = pos < t->nskipped ? &t->skipped[pos] : NULL;
	if (k && strcmp(k->file_name, name) == 0 && k->has_id)
		same = mfsd_same_file(&k->st, st);
	pthread_mutex_unlock(&t->lock);
	return same;
}

/* Removes skipped entry @k (at @pos).  t->lock held. */
static void mfsd_skipped_remove(struct mfsd_table *t, size_t pos)
{
	struct mfsd_skipped *k = &t->skipped[pos];

	if (k->wants_fd)
		t->nwaiting--;
	free(k->file_name);
	free(k->reason);
	mfsd_vec_remove(t->skipped, &t->nskipped, sizeof(*k), pos);
}

/* Forgets that @name was skipped (it is gone or valid now). */
static void mfsd_skipped_drop(struct mfsd_table *t, const char *name)
{
	size_t pos;

	pthread_mutex_lock(&t->lock);
	pos = mfsd_skipped_pos(t, name);
	if (pos < t->nskipped && strcmp(t->skipped[pos].file_name, name) == 0)
		mfsd_skipped_remove(t, pos);
	pthread_mutex_unlock(&t->lock);
}

/* Why a store entry is not served. */
struct mfsd_skip {
	const char *why;
	const struct stat *st; /* the file refused; NULL: not known */
	bool transient;        /* retry later (see struct mfsd_skipped) */
	bool wants_fd;         /* ... as soon as a descriptor is freed */
};

/* True if a failure with @rc says nothing about the container itself:
 * the daemon ran short of descriptors or memory, or the disk failed. */
static bool mfsd_transient(int rc)
{
	return rc == -EMFILE || rc == -ENFILE || rc == -ENOMEM ||
	       rc == -EIO || rc == -EAGAIN || rc == -EINTR || rc == -ENOBUFS;
}

/* The skip of a load that failed with @rc for @why, of file @st. */
static struct mfsd_skip mfsd_load_skip(int rc, const char *why,
				       const struct stat *st)
{
	bool transient = mfsd_transient(rc);

	return (struct mfsd_skip){
		.why = why,
		.st = transient ? NULL : st,
		.transient = transient,
		.wants_fd = rc == -EMFILE || rc == -ENFILE,
	};
}

/* Stores @sk into entry @k, whose reason becomes @reason (taken); the
 * next retry of a transient one is scheduled.  Returns whether this is
 * news for the log (not the same transient failure again).  t->lock
 * held. */
static bool mfsd_skipped_fill(struct mfsd_table *t, struct mfsd_skipped *k,
			      char *reason, const struct mfsd_skip *sk)
{
	bool news = !k->transient || !sk->transient || !k->reason ||
		    strcmp(k->reason, reason) != 0;
	uint64_t backoff = k->transient && sk->transient && k->backoff_ns
				   ? k->backoff_ns
				   : MFSD_LOAD_RETRY_FIRST_NS;

	free(k->reason);
	k->reason = reason;
	k->has_id = sk->st != NULL;
	if (sk->st)
		k->st = *sk->st;
	t->nwaiting += (size_t)sk->wants_fd - (size_t)k->wants_fd;
	k->transient = sk->transient;
	k->wants_fd = sk->wants_fd;
	k->retry_ns = sk->transient ? mfsd_now_ns() + backoff : 0;
	k->backoff_ns = backoff * 2 > MFSD_LOAD_RETRY_MAX_NS
				? MFSD_LOAD_RETRY_MAX_NS
				: backoff * 2;
	return news;
}

/* Logs that @name is skipped, once per reason.  A descriptor wait during
 * the initial scan is summed up after it instead. */
static void mfsd_skipped_log(struct mfsd_table *t, const char *name,
			     const struct mfsd_skip *sk)
{
	int level = MFSD_LOG_WARNING;

	if (sk->wants_fd)
		level = atomic_load(&t->loaded) ? MFSD_LOG_INFO
						: MFSD_LOG_DEBUG;
	mfsd_log(level, "skipping %s/%s: %s%s", t->dir_path, name, sk->why,
		 sk->transient ? " (will retry)" : "");
}

/*
 * Records that @name is not served because of @sk and logs it (once for
 * the same transient failure); a file identified by sk->st is not loaded
 * again until it changes.  Best effort: without memory the entry is not
 * recorded (a later refresh of the name tries again).
 */
static void mfsd_skipped_set(struct mfsd_table *t, const char *name,
			     const struct mfsd_skip *sk)
{
	char *fname = strdup(name), *reason = strdup(sk->why);
	struct mfsd_skipped *k = NULL;
	bool news = true;
	size_t pos;

	if (!fname || !reason)
		goto out;
	pthread_mutex_lock(&t->lock);
	pos = mfsd_skipped_pos(t, name);
	if (pos < t->nskipped && strcmp(t->skipped[pos].file_name, name) == 0) {
		k = &t->skipped[pos];
	} else if (mfsd_vec_reserve((void **)&t->skipped, &t->skipped_cap,
				    t->nskipped + 1,
				    sizeof(*t->skipped)) == 0) {
		struct mfsd_skipped fresh = {.file_name = fname};

		mfsd_vec_insert(t->skipped, &t->nskipped, sizeof(fresh), pos,
				&fresh);
		k = &t->skipped[pos];
		fname = NULL;
	}
	if (k) {
		news = mfsd_skipped_fill(t, k, reason, sk);
		reason = NULL;
	}
	pthread_mutex_unlock(&t->lock);
out:
	if (news)
		mfsd_skipped_log(t, name, sk);
	free(fname);
	free(reason);
}

void mfsd_follow_skip_counts(struct mfsd_table *t, struct mfsd_skip_counts *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&t->lock);
	out->skipped = t->nskipped;
	for (size_t i = 0; i < t->nskipped; i++)
		out->transient += t->skipped[i].transient;
	out->waiting = t->nwaiting;
	pthread_mutex_unlock(&t->lock);
}

void mfsd_follow_free_skipped(struct mfsd_skipped *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].file_name);
		free(v[i].reason);
	}
	free(v);
}

ssize_t mfsd_follow_skipped(struct mfsd_table *t, struct mfsd_skipped **out)
{
	struct mfsd_skipped *v;
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->nskipped;
	v = calloc(n ? n : 1, sizeof(*v));
	for (size_t i = 0; v && i < n; i++) {
		v[i] = t->skipped[i];
		v[i].file_name = strdup(t->skipped[i].file_name);
		v[i].reason = strdup(t->skipped[i].reason);
		if (!v[i].file_name || !v[i].reason) {
			mfsd_follow_free_skipped(v, i + 1);
			v = NULL;
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (!v)
		return -ENOMEM;
	*out = v;
	return (ssize_t)n;
}

/* ------------------------------------------------------------------ */
/* Refreshing one name                                                */
/* ------------------------------------------------------------------ */

/* Container names: not hidden, ending in ".mfs" with something before,
 * short enough to be a name. */
static bool mfsd_is_container_name(const char *name)
{
	size_t n = strnlen(name, NAME_MAX + 1);
	size_t sl = strlen(MFS_CONTAINER_SUFFIX);

	return name[0] != '.' && n > sl && n <= NAME_MAX &&
	       strcmp(name + n - sl, MFS_CONTAINER_SUFFIX) == 0;
}

/* Takes busy @m out of the namespace as removed; fills @c. */
static void mfsd_refresh_remove(struct mfsd_table *t, struct mfsd_model *m,
				struct mfsd_change *c)
{
	mfsd_table_remove(t, m);
	c->kind = MFSD_CHANGE_REMOVED;
	c->old_gen = m->gen;
	mfsd_log(MFSD_LOG_INFO, "model %s (generation %llu) removed", m->key,
		 (unsigned long long)m->gen);
}

/*
 * Loads @name, the regular file @st, as model @key and publishes it in
 * place of @cur (busy, or NULL).  A container that cannot be served is
 * skipped and takes @cur out.  Fills @c if the namespace changed; returns
 * 0 or -ENOMEM.
 */
static int mfsd_refresh_load(struct mfsd_table *t, const char *name,
			     const char *key, const struct stat *st,
			     struct mfsd_model *cur, struct mfsd_change *c)
{
	struct mfsd_model *m = NULL;
	char why[MFSD_WHY_MAX];
	struct mfsd_skip sk;
	int rc = mfsd_model_load(t, name, st, key, &m, why);

	if (rc == 0) {
		rc = mfsd_table_publish(t, m, cur);
		if (rc < 0)
			mfsd_model_free(t, m);
	}
	if (rc < 0) {
		sk = mfsd_load_skip(rc, why, st);
		mfsd_skipped_set(t, name, &sk);
		if (cur)
			mfsd_refresh_remove(t, cur, c);
		return rc == -ENOMEM ? rc : 0;
	}
	/* A break between the lease and now found no model to mark. */
	mfsd_lease_refresh(m);
	mfsd_skipped_drop(t, name);
	c->kind = cur ? MFSD_CHANGE_REPLACED : MFSD_CHANGE_ADDED;
	c->old_gen = cur ? cur->gen : 0;
	c->new_gen = m->gen;
	/* A store of thousands of models would flood the log at start:
	 * the initial scan is summed up in one line instead. */
	mfsd_log(atomic_load(&t->loaded) ? MFSD_LOG_INFO : MFSD_LOG_DEBUG,
		 "model %s %s (generation %llu): %zu arrays, "
		 "%llu raw bytes", key, cur ? "replaced" : "added",
		 (unsigned long long)m->gen, m->narrays,
		 (unsigned long long)m->raw_size);
	return 0;
}

/* Refreshes @name, whose key is not valid: it is never published, only
 * the skipped list follows it.  @serr: errno of fstatat (0: @st). */
static void mfsd_refresh_bad_key(struct mfsd_table *t, const char *name,
				 size_t klen, int serr, const struct stat *st)
{
	struct mfsd_skip sk = {.st = st};

	if (serr == ENOENT || serr == ENOTDIR) {
		mfsd_skipped_drop(t, name);
		return;
	}
	if (serr || mfsd_skipped_same(t, name, st))
		return;
	sk.why = klen > MFS_MAX_KEY_LEN ? "key longer than 128 bytes"
					: mfs_last_error();
	mfsd_skipped_set(t, name, &sk);
}

/* Refreshes @name, which exists with status @st but is not a regular
 * file: skipped (never opened), and its key is taken out. */
static void mfsd_refresh_irregular(struct mfsd_table *t, const char *name,
				   const struct stat *st,
				   struct mfsd_model *cur,
				   struct mfsd_change *c)
{
	char why[MFSD_WHY_MAX];
	struct mfsd_skip sk = {.why = why, .st = st};

	if (!mfsd_skipped_same(t, name, st) &&
	    mfsd_not_regular(st->st_mode, why))
		mfsd_skipped_set(t, name, &sk);
	if (cur)
		mfsd_refresh_remove(t, cur, c);
}

/* One refresh of @name by the thread that has it in flight; without
 * @may_load, a container to load is left alone and
 * MFSD_REFRESH_NEEDS_LOAD returned.  c->kind is left as -1 if nothing
 * changed. */
static int mfsd_refresh_name(struct mfsd_table *t, const char *name,
			     bool may_load, struct mfsd_change *c)
{
	size_t klen = strlen(name) - strlen(MFS_CONTAINER_SUFFIX);
	struct mfsd_skip sk = {.transient = true};
	struct mfsd_model *cur;
	struct stat st;
	int rc = 0, serr = 0;

	memcpy(c->key, name, klen < MFS_MAX_KEY_LEN ? klen : MFS_MAX_KEY_LEN);
	c->key[klen < MFS_MAX_KEY_LEN ? klen : MFS_MAX_KEY_LEN] = '\0';
	/* Never through a link: one into the mount would make the daemon
	 * wait on itself. */
	if (fstatat(t->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		serr = errno;
	if (klen > MFS_MAX_KEY_LEN || mfs_check_key(c->key) < 0) {
		mfsd_refresh_bad_key(t, name, klen, serr, &st);
		return 0;
	}
	cur = mfsd_table_get_key(t, c->key);
	if (serr == ENOENT || serr == ENOTDIR) {
		mfsd_skipped_drop(t, name);
		if (cur)
			mfsd_refresh_remove(t, cur, c);
	} else if (serr) {
		sk.why = strerror(serr);
		mfsd_skipped_set(t, name, &sk);
		if (cur)
			mfsd_refresh_remove(t, cur, c);
	} else if (!S_ISREG(st.st_mode)) {
		mfsd_refresh_irregular(t, name, &st, cur, c);
	} else if (cur && mfsd_same_file(&cur->st, &st) &&
		   !mfsd_lease_rewritten(cur)) {
		/* A rewritten container is loaded again even if its size and
		 * mtime look the same: its bytes are not the generation's. */
		mfsd_lease_refresh(cur);
		if (mfsd_model_update_perms(cur, &st)) {
			c->kind = MFSD_CHANGE_ATTR;
			c->old_gen = cur->gen;
		}
	} else if (!mfsd_skipped_same(t, name, &st)) {
		rc = may_load ? mfsd_refresh_load(t, name, c->key, &st, cur, c)
			      : MFSD_REFRESH_NEEDS_LOAD;
	}
	if (cur)
		mfsd_table_put(t, cur);
	return rc;
}

/* ------------------------------------------------------------------ */
/* One thread per name                                                */
/* ------------------------------------------------------------------ */

/* Index of @name in the in-flight set, or ninflight.  t->lock held. */
static size_t mfsd_inflight_find(const struct mfsd_table *t, const char *name)
{
	size_t i = 0;

	while (i < t->ninflight && strcmp(t->inflight[i].name, name) != 0)
		i++;
	return i;
}

/* Puts @name in flight for this thread: 1, or 0 if another thread has it
 * (it is told to refresh it again), or -ENOMEM. */
static int mfsd_inflight_enter(struct mfsd_table *t, const char *name)
{
	char *copy = NULL;
	size_t i;
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	i = mfsd_inflight_find(t, name);
	if (i < t->ninflight) {
		t->inflight[i].again = true;
		goto out;
	}
	copy = strdup(name);
	if (!copy || mfsd_vec_reserve((void **)&t->inflight, &t->inflight_cap,
			       t->ninflight + 1, sizeof(*t->inflight)) < 0) {
		free(copy);
		rc = -ENOMEM;
		goto out;
	}
	t->inflight[t->ninflight++] = (struct mfsd_inflight){.name = copy};
	rc = 1;
out:
	pthread_mutex_unlock(&t->lock);
	return rc;
}

/* Takes @name, in flight for this thread, out of the set, unless it was
 * asked again meanwhile: then returns true and keeps it. */
static bool mfsd_inflight_leave(struct mfsd_table *t, const char *name)
{
	size_t i;
	bool again;

	pthread_mutex_lock(&t->lock);
	i = mfsd_inflight_find(t, name);
	again = t->inflight[i].again;
	t->inflight[i].again = false;
	if (!again) {
		free(t->inflight[i].name);
		t->inflight[i] = t->inflight[--t->ninflight];
		pthread_cond_broadcast(&t->settled);
	}
	pthread_mutex_unlock(&t->lock);
	return again;
}

/* Waits until @name is not in flight, at most @wait_ns; true if it is
 * not. */
static bool mfsd_inflight_wait(struct mfsd_table *t, const char *name,
			       uint64_t wait_ns)
{
	struct timespec deadline;
	bool settled;

	mfsd_deadline(&deadline, wait_ns);
	pthread_mutex_lock(&t->lock);
	while (mfsd_inflight_find(t, name) < t->ninflight &&
	       pthread_cond_timedwait(&t->settled, &t->lock, &deadline) == 0)
		;
	settled = mfsd_inflight_find(t, name) == t->ninflight;
	pthread_mutex_unlock(&t->lock);
	return settled;
}

/* mfsd_follow_refresh; without @may_load as mfsd_refresh_name. */
static int mfsd_refresh(struct mfsd_table *t, const char *file_name,
			bool may_load, mfsd_change_fn cb, void *arg)
{
	int rc;

	if (!mfsd_is_container_name(file_name))
		return MFSD_REFRESH_DONE;
	rc = mfsd_inflight_enter(t, file_name);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return MFSD_REFRESH_DEFERRED;
	do {
		struct mfsd_change c = {.kind = (enum mfsd_change_kind)-1};

		rc = mfsd_refresh_name(t, file_name, may_load, &c);
		if ((int)c.kind != -1 && cb)
			cb(arg, &c);
	} while (mfsd_inflight_leave(t, file_name));
	return rc;
}

int mfsd_follow_refresh(struct mfsd_table *t, const char *file_name,
			mfsd_change_fn cb, void *arg)
{
	return mfsd_refresh(t, file_name, true, cb, arg);
}

int mfsd_follow_refresh_quick(struct mfsd_table *t, const char *file_name,
			      mfsd_change_fn cb, void *arg)
{
	return mfsd_refresh(t, file_name, false, cb, arg);
}

/* True if @key is published now. */
static bool mfsd_key_published(struct mfsd_table *t, const char *key)
{
	struct mfsd_model *m = mfsd_table_get_key(t, key);

	if (m)
		mfsd_table_put(t, m);
	return m != NULL;
}

int mfsd_follow_refresh_key(struct mfsd_table *t, const char *key,
			    mfsd_change_fn cb, void *arg, mfsd_name_fn queue,
			    void *qarg)
{
	char name[NAME_MAX + 1];
	struct stat st;
	int rc;

	if (mfs_check_key(key) < 0 ||
	    snprintf(name, sizeof(name), "%s" MFS_CONTAINER_SUFFIX, key) >=
		    (int)sizeof(name))
		return 0;
	/* The common miss costs one fstatat and no lock. */
	if (fstatat(t->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 &&
	    errno == ENOENT)
		return 0;
	/* Being refreshed by another thread: its result is the answer, if
	 * it comes soon. */
	if (!mfsd_inflight_wait(t, name, MFSD_LOOKUP_WAIT_NS) ||
	    mfsd_key_published(t, key))
		return 0;
	/* Everything but a load is quick and done here; a load, which may
	 * take seconds, goes to @queue's threads, and the lookup waits for
	 * it only briefly. */
	rc = mfsd_refresh(t, name, queue == NULL, cb, arg);
	if (rc == MFSD_REFRESH_NEEDS_LOAD)
		queue(qarg, name);
	else if (rc != MFSD_REFRESH_DEFERRED)
		return rc < 0 ? rc : MFSD_REFRESH_DONE;
	/* A load is under way: queued here, or by the thread that had the
	 * name in flight (it refreshes it again: the lookup must not answer
	 * before that). */
	mfsd_table_wait_key(t, key, MFSD_LOOKUP_WAIT_NS);
	return 0;
}

void mfsd_follow_refresh_root(struct mfsd_table *t, mfsd_change_fn cb,
			      void *arg)
{
	struct mfsd_change c = {.kind = MFSD_CHANGE_ROOT_ATTR};
	struct stat st;
	bool changed;

	if (fstat(t->dirfd, &st) < 0)
		return;
	changed = atomic_exchange(&t->dir_mode,
				  (unsigned)st.st_mode & MFSD_MODE_BITS) !=
			  ((unsigned)st.st_mode & MFSD_MODE_BITS);
	changed |= atomic_exchange(&t->dir_uid, (unsigned)st.st_uid) !=
		   (unsigned)st.st_uid;
	changed |= atomic_exchange(&t->dir_gid, (unsigned)st.st_gid) !=
		   (unsigned)st.st_gid;
	if (changed && cb)
		cb(arg, &c);
}

/* ------------------------------------------------------------------ */
/* Scans and retries                                                  */
/* ------------------------------------------------------------------ */

/* Appends a copy of @name to *@v (*@n used of *@cap).  0 or -ENOMEM. */
static int mfsd_names_add(char ***v, size_t *n, size_t *cap, const char *name)
{
	char *copy;

	if (mfsd_vec_reserve((void **)v, cap, *n + 1, sizeof(**v)) < 0)
		return -ENOMEM;
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	(*v)[(*n)++] = copy;
	return 0;
}

/* Adds the container names of the directory to the list.  0 or -errno. */
static int mfsd_names_dir(struct mfsd_table *t, char ***v, size_t *n,
			  size_t *cap)
{
	int fd = openat(t->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	DIR *dir;
	int rc = 0;

	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (!dir) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while (rc == 0 && (d = readdir(dir)) != NULL) {
		if (mfsd_is_container_name(d->d_name))
			rc = mfsd_names_add(v, n, cap, d->d_name);
	}
	closedir(dir);
	return rc;
}

/* Adds the names of the published and skipped containers.  0 or -ENOMEM. */
static int mfsd_names_known(struct mfsd_table *t, char ***v, size_t *n,
			    size_t *cap)
{
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; rc == 0 && i < t->npublished; i++)
		rc = mfsd_names_add(v, n, cap, t->by_key[i]->file_name);
	for (size_t i = 0; rc == 0 && i < t->nskipped; i++)
		rc = mfsd_names_add(v, n, cap, t->skipped[i].file_name);
	pthread_mutex_unlock(&t->lock);
	return rc;
}

static int mfsd_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int mfsd_follow_scan_names(struct mfsd_table *t, mfsd_name_fn fn, void *arg)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = mfsd_names_dir(t, &names, &n, &cap);

	if (rc == 0)
		rc = mfsd_names_known(t, &names, &n, &cap);
	if (rc == 0 && n) /* names is NULL for an empty store */
		qsort(names, n, sizeof(*names), mfsd_name_cmp);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		/* Each name once, in order. */
		if (i == 0 || strcmp(names[i], names[i - 1]) != 0)
			fn(arg, names[i]);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

/* What a rescan in the calling thread passes along. */
struct mfsd_rescan {
	struct mfsd_table *t;
	mfsd_change_fn cb;
	void *arg;
	int rc; /* the first failure */
};

/* An mfsd_name_fn refreshing each name in this thread. */
static void mfsd_rescan_one(void *arg, const char *name)
{
	struct mfsd_rescan *r = arg;
	int rc = mfsd_follow_refresh(r->t, name, r->cb, r->arg);

	if (r->rc == 0 && rc < 0)
		r->rc = rc;
}

int mfsd_follow_rescan(struct mfsd_table *t, mfsd_change_fn cb, void *arg)
{
	struct mfsd_rescan r = {t, cb, arg, 0};
	int rc = mfsd_follow_scan_names(t, mfsd_rescan_one, &r);

	return rc < 0 ? rc : r.rc;
}

/* True if transient entry @k is due for a retry.  t->lock held. */
static bool mfsd_retry_due(const struct mfsd_skipped *k, uint64_t now_ns,
			   bool fd_freed)
{
	return k->transient &&
	       (k->retry_ns <= now_ns || (fd_freed && k->wants_fd));
}

ssize_t mfsd_follow_retries(struct mfsd_table *t, uint64_t now_ns,
			    bool fd_freed, char ***names, uint64_t *next_ns)
{
	char **v = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	*next_ns = 0;
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; rc == 0 && i < t->nskipped; i++) {
		struct mfsd_skipped *k = &t->skipped[i];

		if (mfsd_retry_due(k, now_ns, fd_freed)) {
			rc = mfsd_names_add(&v, &n, &cap, k->file_name);
			/* Not taken again before its refresh reschedules
			 * it. */
			k->retry_ns = now_ns + k->backoff_ns;
		}
		if (k->transient && (*next_ns == 0 || k->retry_ns < *next_ns))
			*next_ns = k->retry_ns;
	}
	pthread_mutex_unlock(&t->lock);
	if (rc < 0) {
		for (size_t i = 0; i < n; i++)
			free(v[i]);
		free(v);
		return rc;
	}
	*names = v;
	return (ssize_t)n;
}

void mfsd_follow_free(struct mfsd_table *t)
{
	mfsd_follow_free_skipped(t->skipped, t->nskipped);
	for (size_t i = 0; i < t->ninflight; i++)
		free(t->inflight[i].name);
	free(t->inflight);
}
