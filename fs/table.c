/*
 * table.c - loading STORE_DIR, following it live, and the
 * reference-counted model table (see table.h).
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

#include "chunkcache.h"
#include "lease.h"
#include "log.h"
#include "table.h"
#include "vec.h"

#define MFSD_CONTAINER_SUFFIX ".mfs"
#define MFSD_NPY_SUFFIX ".npy"
#define MFSD_BITS_PER_WORD 64u
/* Room for the library's message about a bad container. */
#define MFSD_WHY_MAX 1024
/* Permission bits of a mode (chmod changes only these). */
#define MFSD_MODE_BITS 07777u
#define MFSD_NS_PER_SEC UINT64_C(1000000000)
/* A model due to retire that a request is using is tried again after
 * this long. */
#define MFSD_RETIRE_RETRY_NS (MFSD_NS_PER_SEC / 100)
/* A transient load failure is retried after this long, doubling up to
 * the maximum: long enough not to spin on a full descriptor table or a
 * failing disk, short enough that a model appears soon after. */
#define MFSD_LOAD_RETRY_FIRST_NS MFSD_NS_PER_SEC
#define MFSD_LOAD_RETRY_MAX_NS (60 * MFSD_NS_PER_SEC)
/* Opening a store entry must not follow a link, block (a FIFO), or make
 * a terminal ours; only the regular files this admits are kept open. */
#define MFSD_CONTAINER_OPEN_FLAGS                                          \
	(O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)

/* Copies a reason for skipping a container into @why (MFSD_WHY_MAX). */
static void mfsd_why(char *why, const char *msg)
{
	snprintf(why, MFSD_WHY_MAX, "%s", msg);
}

/* ------------------------------------------------------------------ */
/* Sorted vectors                                                      */
/* ------------------------------------------------------------------ */

/* Orders key @key against the model pointer @elem (of by_key). */
static int mfsd_key_cmp(const void *key, const void *elem)
{
	return strcmp(key, (*(struct mfsd_model *const *)elem)->key);
}

/* Orders generation *@key against the model pointer @elem (of by_gen). */
static int mfsd_gen_cmp(const void *key, const void *elem)
{
	uint64_t gen = *(const uint64_t *)key;
	uint64_t other = (*(struct mfsd_model *const *)elem)->gen;

	return (gen > other) - (gen < other);
}

/* Index of the first model with key >= @key in by_key.  Lock held. */
static size_t mfsd_key_pos(const struct mfsd_table *s, const char *key)
{
	return mfsd_vec_lower_bound(s->by_key, s->npublished,
				    sizeof(*s->by_key), key, mfsd_key_cmp);
}

/* Index of the first model with gen >= @gen in by_gen.  Lock held. */
static size_t mfsd_gen_pos(const struct mfsd_table *s, uint64_t gen)
{
	return mfsd_vec_lower_bound(s->by_gen, s->nlive, sizeof(*s->by_gen),
				    &gen, mfsd_gen_cmp);
}

/* ------------------------------------------------------------------ */
/* One model                                                           */
/* ------------------------------------------------------------------ */

/* Takes a descriptor from the budget for a container about to be opened.
 * 0, or -EMFILE when the budget is spent (the load then waits). */
static int mfsd_fd_get(struct mfsd_table *s)
{
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	if (s->fd_budget && s->nfds >= s->fd_budget) {
		s->fd_starved = true;
		rc = -EMFILE;
	} else {
		s->nfds++;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* Gives back a descriptor of the budget; if a load waits for one, tells
 * s->fd_freed. */
static void mfsd_fd_put(struct mfsd_table *s)
{
	bool wake;

	pthread_mutex_lock(&s->lock);
	s->nfds--;
	wake = s->fd_starved;
	s->fd_starved = false;
	pthread_mutex_unlock(&s->lock);
	if (wake && s->fd_freed)
		s->fd_freed(s->fd_freed_arg);
}

/*
 * Closes @m's container and frees its serving state, after dropping what
 * the chunk cache holds of it, and with @drop_pages the container's page
 * cache too (the model left the store; an unlinked container's space is
 * freed once its descriptor closes).  Idempotent.
 */
static void mfsd_model_release_data(struct mfsd_table *s, struct mfsd_model *m,
				    bool drop_pages)
{
	bool had_fd = m->container != NULL;

	if (s->cache)
		mfsd_cache_drop_model(s->cache, m->gen);
	for (size_t i = 0; m->arrays && i < m->narrays; i++) {
		free(m->arrays[i].file_name);
		free((void *)m->arrays[i].verified);
		free((void *)m->arrays[i].reported);
	}
	free(m->arrays);
	m->arrays = NULL;
	m->narrays = 0;
	free(m->manifest);
	m->manifest = NULL;
	m->metadata = NULL;
	/* A removed or replaced model's pages are of no further use; a
	 * published one's (closed at shutdown) are what the next start reads
	 * to validate it, so they stay. */
	if (m->container && drop_pages)
		(void)posix_fadvise(mfs_container_fd(m->container), 0, 0,
				    POSIX_FADV_DONTNEED);
	mfs_container_close(m->container);
	m->container = NULL;
	if (had_fd)
		mfsd_fd_put(s);
}

/* Frees @m; its state is read without the lock, so callers own @m alone
 * (no other thread can reach it any more). */
static void mfsd_model_free(struct mfsd_table *s, struct mfsd_model *m)
{
	if (!m)
		return;
	mfsd_model_release_data(s, m, m->state != MFSD_MODEL_PUBLISHED);
	free(m->holds);
	free(m->key);
	free(m->file_name);
	free(m);
}

/* Fills the serving state of array @i of @m.  0, -ENOMEM, or -EBADMSG
 * with @why set when the array cannot be shown as a .npy file. */
static int mfsd_array_init(struct mfsd_model *m, size_t i, char *hdr,
			   char *why)
{
	struct mfsd_array *a = &m->arrays[i];
	int rc = mfs_container_array(m->container, i, &a->info);

	if (rc < 0) {
		mfsd_why(why, mfs_last_error());
		return rc;
	}
	rc = mfs_npy_header(a->info.dtype, a->info.ndim, a->info.shape,
			    a->info.order, hdr, MFS_NPY_HEADER_SIZE);
	if (rc < 0) {
		mfsd_why(why, mfs_last_error());
		return -EBADMSG;
	}
	a->header_len = (uint32_t)rc;
	if (__builtin_add_overflow(a->info.raw_length, (uint64_t)a->header_len,
				   &a->file_size)) {
		mfsd_why(why, "array too large for a .npy view");
		return -EBADMSG;
	}
	if (asprintf(&a->file_name, "%s" MFSD_NPY_SUFFIX, a->info.name) < 0) {
		a->file_name = NULL;
		mfsd_why(why, "out of memory");
		return -ENOMEM;
	}
	a->bitmap_words = (size_t)((a->info.chunk_count + MFSD_BITS_PER_WORD -
				    1) / MFSD_BITS_PER_WORD);
	if (a->bitmap_words == 0)
		a->bitmap_words = 1;
	a->verified = calloc(a->bitmap_words, sizeof(*a->verified));
	a->reported = calloc(a->bitmap_words, sizeof(*a->reported));
	if (!a->verified || !a->reported) {
		mfsd_why(why, "out of memory");
		return -ENOMEM;
	}
	m->raw_size += a->info.raw_length;
	m->stored_size += a->info.stored_length;
	/* Saturating: only an estimate's cap depends on it. */
	if (__builtin_add_overflow(m->view_size, a->file_size, &m->view_size))
		m->view_size = UINT64_MAX;
	return 0;
}

/* Builds arrays, manifest and metadata of a model whose container is
 * open.  0 or negative errno with @why set. */
static int mfsd_model_fill(struct mfsd_model *m, char *why)
{
	char *hdr = malloc(MFS_NPY_HEADER_SIZE);
	int rc = -ENOMEM;

	mfsd_why(why, "out of memory");
	m->narrays = mfs_container_array_count(m->container);
	m->arrays = calloc(m->narrays ? m->narrays : 1, sizeof(*m->arrays));
	if (!hdr || !m->arrays)
		goto out;
	for (size_t i = 0; i < m->narrays; i++) {
		rc = mfsd_array_init(m, i, hdr, why);
		if (rc < 0)
			goto out;
	}
	rc = mfs_container_manifest(m->container, m->key, &m->manifest,
				    &m->manifest_len);
	if (rc < 0) {
		mfsd_why(why, mfs_last_error());
		goto out;
	}
	m->metadata = mfs_container_metadata(m->container, &m->metadata_len);
	m->view_size += m->manifest_len + m->metadata_len;
	rc = 0;
out:
	free(hdr);
	return rc;
}

/* Sets the permissions shown for @m from @st. */
static void mfsd_model_set_perms(struct mfsd_model *m, const struct stat *st)
{
	atomic_store(&m->mode, (unsigned)st->st_mode & MFSD_MODE_BITS);
	atomic_store(&m->uid, (unsigned)st->st_uid);
	atomic_store(&m->gid, (unsigned)st->st_gid);
}

/* Writes into @why (MFSD_WHY_MAX) why a store entry of type @mode is
 * not served; false (nothing written) for a regular file. */
static bool mfsd_not_regular(mode_t mode, char *why)
{
	if (S_ISREG(mode))
		return false;
	snprintf(why, MFSD_WHY_MAX, "a %s, not a regular file%s",
		 mfs_file_type_name(mode),
		 S_ISLNK(mode) ? " (links are not followed)" : "");
	return true;
}

/*
 * Opens store entry @name, which fstatat found to be the regular file
 * @st, without following a link or blocking, and checks that it still is
 * that file.  Returns the descriptor (with *@out its status), or a
 * negative errno with @why set: -EINVAL if it is not a regular file now,
 * -EAGAIN if another file took its name meanwhile (transient).
 */
static int mfsd_open_entry(struct mfsd_table *s, const char *name,
			   const struct stat *st, struct stat *out, char *why)
{
	int fd = openat(s->dirfd, name, MFSD_CONTAINER_OPEN_FLAGS), rc;

	if (fd < 0 && errno == ELOOP) {
		mfsd_not_regular(S_IFLNK, why);
		return -EINVAL;
	}
	if (fd < 0) {
		rc = -errno;
		mfsd_why(why, strerror(errno));
		return rc;
	}
	if (fstat(fd, out) < 0) {
		rc = -errno;
		mfsd_why(why, strerror(errno));
		goto fail;
	}
	rc = -EINVAL;
	if (mfsd_not_regular(out->st_mode, why))
		goto fail;
	rc = -EAGAIN;
	mfsd_why(why, "replaced while it was being opened");
	if (out->st_dev != st->st_dev || out->st_ino != st->st_ino)
		goto fail;
	/* Reads of a regular file ignore O_NONBLOCK; clear it anyway, the
	 * descriptor lives as long as the model. */
	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
fail:
	close(fd);
	return rc;
}

/* Opens the container of @m, store entry @file_name that was the regular
 * file @st, on a descriptor of the budget.  0 or a negative errno with
 * @why set. */
static int mfsd_model_open(struct mfsd_table *s, struct mfsd_model *m,
			   const char *file_name, const struct stat *st,
			   char *why)
{
	char label[PATH_MAX];
	int fd, rc = mfsd_fd_get(s);

	if (rc < 0) {
		snprintf(why, MFSD_WHY_MAX, "waiting for a file descriptor "
			 "(%zu containers open, the most this daemon keeps)",
			 s->fd_budget);
		return rc;
	}
	fd = mfsd_open_entry(s, file_name, st, &m->st, why);
	if (fd < 0) {
		rc = fd;
		goto fail;
	}
	snprintf(label, sizeof(label), "%s/%s", s->dir_path, file_name);
	rc = mfs_container_open_fd(&m->container, fd, label);
	if (rc < 0) {
		mfsd_why(why, rc == -ENOMEM ? "out of memory"
					    : mfs_last_error());
		close(fd);
		goto fail;
	}
	return 0;
fail:
	mfsd_fd_put(s);
	return rc;
}

/* Loads container @file_name of the store, which fstatat found to be the
 * regular file @st, as model @key.  Returns 0 or a negative errno with
 * @why (MFSD_WHY_MAX bytes) naming the reason. */
static int mfsd_model_load(struct mfsd_table *s, const char *file_name,
			   const struct stat *st, const char *key,
			   struct mfsd_model **out, char *why)
{
	struct mfsd_model *m = calloc(1, sizeof(*m));
	int rc = -ENOMEM;

	mfsd_why(why, "out of memory");
	if (!m)
		return -ENOMEM;
	m->key = strdup(key);
	m->file_name = strdup(file_name);
	if (!m->key || !m->file_name)
		goto fail;
	rc = mfsd_model_open(s, m, file_name, st, why);
	if (rc < 0)
		goto fail;
	mfsd_model_set_perms(m, &m->st);
	/*
	 * No readahead on the backing file: requests can be served out of
	 * order by several threads, and readahead behind a late one would
	 * bring back pages already served and dropped, leaving a second
	 * copy in the page cache.  The mount's own readahead still makes
	 * the requests large.
	 */
	(void)posix_fadvise(mfs_container_fd(m->container), 0, 0,
			    POSIX_FADV_RANDOM);
	mfsd_lease_take(m);
	rc = mfsd_model_fill(m, why);
	if (rc < 0)
		goto fail;
	*out = m;
	return 0;
fail:
	mfsd_model_free(s, m);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Lifetime                                                            */
/* ------------------------------------------------------------------ */

static uint64_t mfsd_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * MFSD_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* True if @m is out of the namespace, no handle holds it and the kernel
 * remembers none of its files: only its directory may still be known.
 * Lock held. */
static bool mfsd_model_idle(const struct mfsd_model *m)
{
	return m->state != MFSD_MODEL_PUBLISHED && !m->nopen && !m->ndirs &&
	       !m->nlookup_files;
}

/*
 * After a count of @m changed: notes since when it is idle (for
 * mfsd_table_retire), and if nothing at all is left, takes it out of
 * by_gen and returns true (the caller frees it after dropping the
 * lock).  Lock held.
 */
static bool mfsd_table_reap(struct mfsd_table *s, struct mfsd_model *m)
{
	size_t pos;

	if (!m)
		return false;
	if (!mfsd_model_idle(m))
		m->idle_since_ns = 0;
	else if (!m->idle_since_ns)
		m->idle_since_ns = mfsd_now_ns();
	if (!mfsd_model_idle(m) || m->nbusy || m->nlookup_dir)
		return false;
	pos = mfsd_gen_pos(s, m->gen);
	if (pos < s->nlive && s->by_gen[pos] == m)
		mfsd_vec_remove(s->by_gen, &s->nlive, sizeof(*s->by_gen), pos);
	if (m->retired)
		s->nretired--;
	return true;
}

/* Drops the lock after a count of @m changed, then frees @m if that
 * change left it nothing.  Returns whether @m is idle (see
 * mfsd_model_idle) and still there. */
static bool mfsd_table_unlock_reap(struct mfsd_table *s, struct mfsd_model *m)
{
	bool dead = mfsd_table_reap(s, m);
	bool idle = m && !dead && !m->retired && mfsd_model_idle(m);

	pthread_mutex_unlock(&s->lock);
	if (dead) {
		mfsd_log(MFSD_LOG_DEBUG, "freed model %s (generation %llu)",
			 m->key, (unsigned long long)m->gen);
		mfsd_model_free(s, m);
	}
	return idle;
}

uint64_t mfsd_table_retire(struct mfsd_table *s, struct mfsd_model *m,
			   uint64_t grace_ns)
{
	uint64_t now = mfsd_now_ns(), due = 0;
	bool retire = false;

	pthread_mutex_lock(&s->lock);
	if (!m->retired && mfsd_model_idle(m) && m->idle_since_ns) {
		due = m->idle_since_ns + grace_ns;
		/* Only the caller's busy mark: no request is using it. */
		retire = now >= due && m->nbusy == 1;
		if (!retire && now >= due)
			due = now + MFSD_RETIRE_RETRY_NS;
	}
	if (retire) {
		m->retired = true;
		s->nretired++;
		due = 0;
	}
	pthread_mutex_unlock(&s->lock);
	if (retire) {
		mfsd_log(MFSD_LOG_DEBUG, "retired model %s (generation %llu)",
			 m->key, (unsigned long long)m->gen);
		mfsd_model_release_data(s, m, true);
	}
	return due;
}

/* Takes @m out of by_key as @state.  Lock held. */
static void mfsd_table_take_out(struct mfsd_table *s, struct mfsd_model *m,
				enum mfsd_model_state state)
{
	size_t pos = mfsd_key_pos(s, m->key);

	if (m->state != MFSD_MODEL_PUBLISHED)
		return;
	if (pos < s->npublished && s->by_key[pos] == m)
		mfsd_vec_remove(s->by_key, &s->npublished,
				sizeof(*s->by_key), pos);
	m->state = state;
	s->changes++;
}

/*
 * Gives @m the next generation and publishes it under its key in place
 * of @old (NULL: the key is new; else @old is busy and leaves as
 * replaced).  0 or -ENOMEM.
 */
static int mfsd_table_publish(struct mfsd_table *s, struct mfsd_model *m,
			      struct mfsd_model *old)
{
	size_t kpos;
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = mfsd_vec_reserve((void **)&s->by_gen, &s->live_cap, s->nlive + 1,
			      sizeof(*s->by_gen));
	if (rc == 0)
		rc = mfsd_vec_reserve((void **)&s->by_key, &s->published_cap,
				      s->npublished + 1, sizeof(*s->by_key));
	if (rc < 0) {
		pthread_mutex_unlock(&s->lock);
		return rc;
	}
	m->gen = s->next_gen++;
	m->state = MFSD_MODEL_PUBLISHED;
	/* Generations only grow, so the newest goes last. */
	mfsd_vec_insert(s->by_gen, &s->nlive, sizeof(m), s->nlive, &m);
	kpos = mfsd_key_pos(s, m->key);
	if (old && kpos < s->npublished && s->by_key[kpos] == old) {
		/* One step: a lookup finds the old or the new, never none. */
		s->by_key[kpos] = m;
		old->state = MFSD_MODEL_REPLACED;
	} else {
		mfsd_vec_insert(s->by_key, &s->npublished, sizeof(m), kpos,
				&m);
	}
	s->changes++;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Skipped containers                                                  */
/* ------------------------------------------------------------------ */

/* Orders name @key against skipped entry @elem. */
static int mfsd_skipped_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct mfsd_skipped *)elem)->file_name);
}

/* Index of the first skipped entry with name >= @name.  Lock held. */
static size_t mfsd_skipped_pos(const struct mfsd_table *s, const char *name)
{
	return mfsd_vec_lower_bound(s->skipped, s->nskipped,
				    sizeof(*s->skipped), name,
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
static bool mfsd_skipped_same(struct mfsd_table *s, const char *name,
			      const struct stat *st)
{
	const struct mfsd_skipped *k;
	bool same = false;
	size_t pos;

	pthread_mutex_lock(&s->lock);
	pos = mfsd_skipped_pos(s, name);
	k = pos < s->nskipped ? &s->skipped[pos] : NULL;
	if (k && strcmp(k->file_name, name) == 0 && k->has_id)
		same = mfsd_same_file(&k->st, st);
	pthread_mutex_unlock(&s->lock);
	return same;
}

/* Removes skipped entry @k (at @pos).  Lock held (s->lock). */
static void mfsd_skipped_remove(struct mfsd_table *s, size_t pos)
{
	struct mfsd_skipped *k = &s->skipped[pos];

	if (k->wants_fd)
		s->nwaiting--;
	free(k->file_name);
	free(k->reason);
	mfsd_vec_remove(s->skipped, &s->nskipped, sizeof(*k), pos);
}

/* Forgets that @name was skipped (it is gone or valid now). */
static void mfsd_skipped_drop(struct mfsd_table *s, const char *name)
{
	size_t pos;

	pthread_mutex_lock(&s->lock);
	pos = mfsd_skipped_pos(s, name);
	if (pos < s->nskipped && strcmp(s->skipped[pos].file_name, name) == 0)
		mfsd_skipped_remove(s, pos);
	pthread_mutex_unlock(&s->lock);
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
 * news for the log (not the same transient failure again).  Lock held
 * (s->lock). */
static bool mfsd_skipped_fill(struct mfsd_table *s, struct mfsd_skipped *k,
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
	s->nwaiting += (size_t)sk->wants_fd - (size_t)k->wants_fd;
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
static void mfsd_skipped_log(struct mfsd_table *s, const char *name,
			     const struct mfsd_skip *sk)
{
	int level = MFSD_LOG_WARNING;

	if (sk->wants_fd)
		level = atomic_load(&s->loaded) ? MFSD_LOG_INFO
						: MFSD_LOG_DEBUG;
	mfsd_log(level, "skipping %s/%s: %s%s", s->dir_path, name, sk->why,
		 sk->transient ? " (will retry)" : "");
}

/*
 * Records that @name is not served because of @sk and logs it (once for
 * the same transient failure); a file identified by sk->st is not loaded
 * again until it changes.  Best effort: without memory the entry is not
 * recorded (a later refresh of the name tries again).
 */
static void mfsd_skipped_set(struct mfsd_table *s, const char *name,
			     const struct mfsd_skip *sk)
{
	char *fname = strdup(name), *reason = strdup(sk->why);
	struct mfsd_skipped *k = NULL;
	bool news = true;
	size_t pos;

	if (!fname || !reason)
		goto out;
	pthread_mutex_lock(&s->lock);
	pos = mfsd_skipped_pos(s, name);
	if (pos < s->nskipped && strcmp(s->skipped[pos].file_name, name) == 0) {
		k = &s->skipped[pos];
	} else if (mfsd_vec_reserve((void **)&s->skipped, &s->skipped_cap,
				    s->nskipped + 1, sizeof(*s->skipped)) == 0) {
		struct mfsd_skipped fresh = {.file_name = fname};

		mfsd_vec_insert(s->skipped, &s->nskipped, sizeof(fresh), pos,
				&fresh);
		k = &s->skipped[pos];
		fname = NULL;
	}
	if (k) {
		news = mfsd_skipped_fill(s, k, reason, sk);
		reason = NULL;
	}
	pthread_mutex_unlock(&s->lock);
out:
	if (news)
		mfsd_skipped_log(s, name, sk);
	free(fname);
	free(reason);
}

/* ------------------------------------------------------------------ */
/* Following the directory                                             */
/* ------------------------------------------------------------------ */

/* Container names: not hidden, ending in ".mfs" with something before,
 * short enough to be a name. */
static bool mfsd_is_container_name(const char *name)
{
	size_t n = strnlen(name, NAME_MAX + 1);
	size_t sl = strlen(MFSD_CONTAINER_SUFFIX);

	return name[0] != '.' && n > sl && n <= NAME_MAX &&
	       strcmp(name + n - sl, MFSD_CONTAINER_SUFFIX) == 0;
}

/* Makes @m show the permissions of @st; true if they changed. */
static bool mfsd_update_perms(struct mfsd_model *m, const struct stat *st)
{
	bool changed = atomic_load(&m->mode) !=
			       ((unsigned)st->st_mode & MFSD_MODE_BITS) ||
		       atomic_load(&m->uid) != (unsigned)st->st_uid ||
		       atomic_load(&m->gid) != (unsigned)st->st_gid;

	if (changed)
		mfsd_model_set_perms(m, st);
	return changed;
}

/* Takes busy @m out of the namespace as removed; fills @c. */
static void mfsd_refresh_remove(struct mfsd_table *s, struct mfsd_model *m,
				struct mfsd_change *c)
{
	pthread_mutex_lock(&s->lock);
	mfsd_table_take_out(s, m, MFSD_MODEL_REMOVED);
	pthread_mutex_unlock(&s->lock);
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
static int mfsd_refresh_load(struct mfsd_table *s, const char *name,
			     const char *key, const struct stat *st,
			     struct mfsd_model *cur, struct mfsd_change *c)
{
	struct mfsd_model *m = NULL;
	char why[MFSD_WHY_MAX];
	struct mfsd_skip sk;
	int rc = mfsd_model_load(s, name, st, key, &m, why);

	if (rc == 0) {
		rc = mfsd_table_publish(s, m, cur);
		if (rc < 0)
			mfsd_model_free(s, m);
	}
	if (rc < 0) {
		sk = mfsd_load_skip(rc, why, st);
		mfsd_skipped_set(s, name, &sk);
		if (cur)
			mfsd_refresh_remove(s, cur, c);
		return rc == -ENOMEM ? rc : 0;
	}
	/* A break between the lease and now found no model to mark. */
	mfsd_lease_refresh(m);
	mfsd_skipped_drop(s, name);
	c->kind = cur ? MFSD_CHANGE_REPLACED : MFSD_CHANGE_ADDED;
	c->old_gen = cur ? cur->gen : 0;
	c->new_gen = m->gen;
	/* A store of thousands of models would flood the log at start:
	 * the initial scan is summed up in one line instead. */
	mfsd_log(atomic_load(&s->loaded) ? MFSD_LOG_INFO : MFSD_LOG_DEBUG,
		 "model %s %s (generation %llu): %zu arrays, "
		 "%llu raw bytes", key, cur ? "replaced" : "added",
		 (unsigned long long)m->gen, m->narrays,
		 (unsigned long long)m->raw_size);
	return 0;
}

/* Refreshes @name, whose key is not valid: it is never published, only
 * the skipped list follows it.  @serr: errno of fstatat (0: @st). */
static void mfsd_refresh_bad_key(struct mfsd_table *s, const char *name,
				 size_t klen, int serr, const struct stat *st)
{
	struct mfsd_skip sk = {.st = st};

	if (serr == ENOENT || serr == ENOTDIR) {
		mfsd_skipped_drop(s, name);
		return;
	}
	if (serr || mfsd_skipped_same(s, name, st))
		return;
	sk.why = klen > MFS_MAX_KEY_LEN ? "key longer than 128 bytes"
					: mfs_last_error();
	mfsd_skipped_set(s, name, &sk);
}

/* Refreshes @name, which exists with status @st but is not a regular
 * file: skipped (never opened), and its key is taken out. */
static void mfsd_refresh_irregular(struct mfsd_table *s, const char *name,
				   const struct stat *st,
				   struct mfsd_model *cur,
				   struct mfsd_change *c)
{
	char why[MFSD_WHY_MAX];
	struct mfsd_skip sk = {.why = why, .st = st};

	if (!mfsd_skipped_same(s, name, st) &&
	    mfsd_not_regular(st->st_mode, why))
		mfsd_skipped_set(s, name, &sk);
	if (cur)
		mfsd_refresh_remove(s, cur, c);
}

/* One refresh of @name by the thread that has it in flight; without
 * @may_load, a container to load is left alone and
 * MFSD_REFRESH_NEEDS_LOAD returned.  c->kind is left as -1 if nothing
 * changed. */
static int mfsd_refresh_name(struct mfsd_table *s, const char *name,
			     bool may_load, struct mfsd_change *c)
{
	size_t klen = strlen(name) - strlen(MFSD_CONTAINER_SUFFIX);
	struct mfsd_skip sk = {.transient = true};
	struct mfsd_model *cur;
	struct stat st;
	int rc = 0, serr = 0;

	memcpy(c->key, name, klen < MFS_MAX_KEY_LEN ? klen : MFS_MAX_KEY_LEN);
	c->key[klen < MFS_MAX_KEY_LEN ? klen : MFS_MAX_KEY_LEN] = '\0';
	/* Never through a link: one into the mount would make the daemon
	 * wait on itself. */
	if (fstatat(s->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		serr = errno;
	if (klen > MFS_MAX_KEY_LEN || mfs_check_key(c->key) < 0) {
		mfsd_refresh_bad_key(s, name, klen, serr, &st);
		return 0;
	}
	cur = mfsd_table_get_key(s, c->key);
	if (serr == ENOENT || serr == ENOTDIR) {
		mfsd_skipped_drop(s, name);
		if (cur)
			mfsd_refresh_remove(s, cur, c);
	} else if (serr) {
		sk.why = strerror(serr);
		mfsd_skipped_set(s, name, &sk);
		if (cur)
			mfsd_refresh_remove(s, cur, c);
	} else if (!S_ISREG(st.st_mode)) {
		mfsd_refresh_irregular(s, name, &st, cur, c);
	} else if (cur && mfsd_same_file(&cur->st, &st) &&
		   !mfsd_lease_rewritten(cur)) {
		/* A rewritten container is loaded again even if its size and
		 * mtime look the same: its bytes are not the generation's. */
		mfsd_lease_refresh(cur);
		if (mfsd_update_perms(cur, &st)) {
			c->kind = MFSD_CHANGE_ATTR;
			c->old_gen = cur->gen;
		}
	} else if (!mfsd_skipped_same(s, name, &st)) {
		rc = may_load ? mfsd_refresh_load(s, name, c->key, &st, cur, c)
			      : MFSD_REFRESH_NEEDS_LOAD;
	}
	if (cur)
		mfsd_table_put(s, cur);
	return rc;
}

/* Index of @name in the in-flight set, or ninflight.  Lock held
 * (s->lock). */
static size_t mfsd_inflight_find(const struct mfsd_table *s, const char *name)
{
	size_t i = 0;

	while (i < s->ninflight && strcmp(s->inflight[i].name, name) != 0)
		i++;
	return i;
}

/* Puts @name in flight for this thread: 1, or 0 if another thread has it
 * (it is told to refresh it again), or -ENOMEM. */
static int mfsd_inflight_enter(struct mfsd_table *s, const char *name)
{
	char *copy = NULL;
	size_t i;
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	i = mfsd_inflight_find(s, name);
	if (i < s->ninflight) {
		s->inflight[i].again = true;
		goto out;
	}
	copy = strdup(name);
	if (!copy || mfsd_vec_reserve((void **)&s->inflight, &s->inflight_cap,
			       s->ninflight + 1, sizeof(*s->inflight)) < 0) {
		free(copy);
		rc = -ENOMEM;
		goto out;
	}
	s->inflight[s->ninflight++] = (struct mfsd_inflight){.name = copy};
	rc = 1;
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* Takes @name, in flight for this thread, out of the set, unless it was
 * asked again meanwhile: then returns true and keeps it. */
static bool mfsd_inflight_leave(struct mfsd_table *s, const char *name)
{
	size_t i;
	bool again;

	pthread_mutex_lock(&s->lock);
	i = mfsd_inflight_find(s, name);
	again = s->inflight[i].again;
	s->inflight[i].again = false;
	if (!again) {
		free(s->inflight[i].name);
		s->inflight[i] = s->inflight[--s->ninflight];
		pthread_cond_broadcast(&s->settled);
	}
	pthread_mutex_unlock(&s->lock);
	return again;
}

/* Sets @deadline to @wait_ns from now, for pthread_cond_timedwait. */
static void mfsd_deadline(struct timespec *deadline, uint64_t wait_ns)
{
	uint64_t ns;

	clock_gettime(CLOCK_REALTIME, deadline);
	ns = (uint64_t)deadline->tv_nsec + wait_ns;
	deadline->tv_sec += (time_t)(ns / MFSD_NS_PER_SEC);
	deadline->tv_nsec = (long)(ns % MFSD_NS_PER_SEC);
}

/* Waits until @name is not in flight, at most @wait_ns; true if it is
 * not. */
static bool mfsd_inflight_wait(struct mfsd_table *s, const char *name,
			       uint64_t wait_ns)
{
	struct timespec deadline;
	bool settled;

	mfsd_deadline(&deadline, wait_ns);
	pthread_mutex_lock(&s->lock);
	while (mfsd_inflight_find(s, name) < s->ninflight &&
	       pthread_cond_timedwait(&s->settled, &s->lock, &deadline) == 0)
		;
	settled = mfsd_inflight_find(s, name) == s->ninflight;
	pthread_mutex_unlock(&s->lock);
	return settled;
}

/* mfsd_table_refresh; without @may_load as mfsd_refresh_name. */
static int mfsd_refresh(struct mfsd_table *s, const char *file_name,
			bool may_load, mfsd_change_fn cb, void *arg)
{
	int rc;

	if (!mfsd_is_container_name(file_name))
		return MFSD_REFRESH_DONE;
	rc = mfsd_inflight_enter(s, file_name);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return MFSD_REFRESH_DEFERRED;
	do {
		struct mfsd_change c = {.kind = (enum mfsd_change_kind)-1};

		rc = mfsd_refresh_name(s, file_name, may_load, &c);
		if ((int)c.kind != -1 && cb)
			cb(arg, &c);
	} while (mfsd_inflight_leave(s, file_name));
	return rc;
}

int mfsd_table_refresh(struct mfsd_table *s, const char *file_name,
		       mfsd_change_fn cb, void *arg)
{
	return mfsd_refresh(s, file_name, true, cb, arg);
}

int mfsd_table_refresh_quick(struct mfsd_table *s, const char *file_name,
			     mfsd_change_fn cb, void *arg)
{
	return mfsd_refresh(s, file_name, false, cb, arg);
}

/* True if @key is published now. */
static bool mfsd_key_published(struct mfsd_table *s, const char *key)
{
	struct mfsd_model *m = mfsd_table_get_key(s, key);

	if (m)
		mfsd_table_put(s, m);
	return m != NULL;
}

/* Waits, at most @wait_ns, until @key is published; woken whenever a
 * refresh ends. */
static void mfsd_key_wait(struct mfsd_table *s, const char *key,
			  uint64_t wait_ns)
{
	struct timespec deadline;
	size_t pos;
	bool found = false;

	mfsd_deadline(&deadline, wait_ns);
	pthread_mutex_lock(&s->lock);
	while (!found) {
		pos = mfsd_key_pos(s, key);
		found = pos < s->npublished &&
			strcmp(s->by_key[pos]->key, key) == 0;
		if (!found && pthread_cond_timedwait(&s->settled, &s->lock,
						     &deadline) != 0)
			break;
	}
	pthread_mutex_unlock(&s->lock);
}

int mfsd_table_refresh_key(struct mfsd_table *s, const char *key,
			   mfsd_change_fn cb, void *arg, mfsd_name_fn queue,
			   void *qarg)
{
	char name[NAME_MAX + 1];
	struct stat st;
	int rc;

	if (mfs_check_key(key) < 0 ||
	    snprintf(name, sizeof(name), "%s" MFSD_CONTAINER_SUFFIX, key) >=
		    (int)sizeof(name))
		return 0;
	/* The common miss costs one fstatat and no lock. */
	if (fstatat(s->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 &&
	    errno == ENOENT)
		return 0;
	/* Being refreshed by another thread: its result is the answer, if
	 * it comes soon. */
	if (!mfsd_inflight_wait(s, name, MFSD_LOOKUP_WAIT_NS) ||
	    mfsd_key_published(s, key))
		return 0;
	/* Everything but a load is quick and done here; a load, which may
	 * take seconds, goes to @queue's threads, and the lookup waits for
	 * it only briefly. */
	rc = mfsd_refresh(s, name, queue == NULL, cb, arg);
	if (rc != MFSD_REFRESH_NEEDS_LOAD)
		return rc < 0 ? rc : MFSD_REFRESH_DONE;
	queue(qarg, name);
	mfsd_key_wait(s, key, MFSD_LOOKUP_WAIT_NS);
	return 0;
}

void mfsd_table_refresh_root(struct mfsd_table *s, mfsd_change_fn cb,
			     void *arg)
{
	struct mfsd_change c = {.kind = MFSD_CHANGE_ROOT_ATTR};
	struct stat st;
	bool changed;

	if (fstat(s->dirfd, &st) < 0)
		return;
	changed = atomic_exchange(&s->dir_mode,
				  (unsigned)st.st_mode & MFSD_MODE_BITS) !=
			  ((unsigned)st.st_mode & MFSD_MODE_BITS);
	changed |= atomic_exchange(&s->dir_uid, (unsigned)st.st_uid) !=
		   (unsigned)st.st_uid;
	changed |= atomic_exchange(&s->dir_gid, (unsigned)st.st_gid) !=
		   (unsigned)st.st_gid;
	if (changed && cb)
		cb(arg, &c);
}

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
static int mfsd_names_dir(struct mfsd_table *s, char ***v, size_t *n,
			  size_t *cap)
{
	int fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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
static int mfsd_names_known(struct mfsd_table *s, char ***v, size_t *n,
			    size_t *cap)
{
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; rc == 0 && i < s->npublished; i++)
		rc = mfsd_names_add(v, n, cap, s->by_key[i]->file_name);
	for (size_t i = 0; rc == 0 && i < s->nskipped; i++)
		rc = mfsd_names_add(v, n, cap, s->skipped[i].file_name);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int mfsd_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int mfsd_table_scan_names(struct mfsd_table *s, mfsd_name_fn fn, void *arg)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = mfsd_names_dir(s, &names, &n, &cap);

	if (rc == 0)
		rc = mfsd_names_known(s, &names, &n, &cap);
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
	struct mfsd_table *s;
	mfsd_change_fn cb;
	void *arg;
	int rc; /* the first failure */
};

/* An mfsd_name_fn refreshing each name in this thread. */
static void mfsd_rescan_one(void *arg, const char *name)
{
	struct mfsd_rescan *r = arg;
	int rc = mfsd_table_refresh(r->s, name, r->cb, r->arg);

	if (r->rc == 0 && rc < 0)
		r->rc = rc;
}

int mfsd_table_rescan(struct mfsd_table *s, mfsd_change_fn cb, void *arg)
{
	struct mfsd_rescan r = {s, cb, arg, 0};
	int rc = mfsd_table_scan_names(s, mfsd_rescan_one, &r);

	return rc < 0 ? rc : r.rc;
}

/* True if transient entry @k is due for a retry.  Lock held (s->lock). */
static bool mfsd_retry_due(const struct mfsd_skipped *k, uint64_t now_ns,
			   bool fd_freed)
{
	return k->transient &&
	       (k->retry_ns <= now_ns || (fd_freed && k->wants_fd));
}

ssize_t mfsd_table_retries(struct mfsd_table *s, uint64_t now_ns,
			   bool fd_freed, char ***names, uint64_t *next_ns)
{
	char **v = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	*next_ns = 0;
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; rc == 0 && i < s->nskipped; i++) {
		struct mfsd_skipped *k = &s->skipped[i];

		if (mfsd_retry_due(k, now_ns, fd_freed)) {
			rc = mfsd_names_add(&v, &n, &cap, k->file_name);
			/* Not taken again before its refresh reschedules
			 * it. */
			k->retry_ns = now_ns + k->backoff_ns;
		}
		if (k->transient && (*next_ns == 0 || k->retry_ns < *next_ns))
			*next_ns = k->retry_ns;
	}
	pthread_mutex_unlock(&s->lock);
	if (rc < 0) {
		for (size_t i = 0; i < n; i++)
			free(v[i]);
		free(v);
		return rc;
	}
	*names = v;
	return (ssize_t)n;
}

void mfsd_table_skip_counts(struct mfsd_table *s, struct mfsd_skip_counts *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&s->lock);
	out->skipped = s->nskipped;
	for (size_t i = 0; i < s->nskipped; i++)
		out->transient += s->skipped[i].transient;
	out->waiting = s->nwaiting;
	pthread_mutex_unlock(&s->lock);
}

/* ------------------------------------------------------------------ */
/* Opening and closing                                                 */
/* ------------------------------------------------------------------ */

int mfsd_table_open(struct mfsd_table **out, const char *dir_path,
		    struct mfsd_cache *cache)
{
	struct mfsd_table *s = calloc(1, sizeof(*s));
	int rc = -ENOMEM;

	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->settled, NULL);
	s->cache = cache;
	s->next_gen = 1;
	s->dirfd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0 || fstat(s->dirfd, &s->dir_st) < 0) {
		rc = -errno;
		goto fail;
	}
	s->dir_path = strdup(dir_path);
	if (!s->dir_path)
		goto fail;
	atomic_store(&s->dir_mode, (unsigned)s->dir_st.st_mode &
					   MFSD_MODE_BITS);
	atomic_store(&s->dir_uid, (unsigned)s->dir_st.st_uid);
	atomic_store(&s->dir_gid, (unsigned)s->dir_st.st_gid);
	*out = s;
	return 0;
fail:
	mfsd_table_close(s);
	return rc;
}

void mfsd_table_close(struct mfsd_table *s)
{
	if (!s)
		return;
	/* Whoever waits for descriptors is going away too. */
	s->fd_freed = NULL;
	for (size_t i = 0; i < s->nlive; i++)
		mfsd_model_free(s, s->by_gen[i]);
	mfsd_table_free_skipped(s->skipped, s->nskipped);
	for (size_t i = 0; i < s->ninflight; i++)
		free(s->inflight[i].name);
	free(s->inflight);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->by_gen);
	free(s->by_key);
	free(s->dir_path);
	pthread_cond_destroy(&s->settled);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void mfsd_table_mark_loaded(struct mfsd_table *s)
{
	pthread_mutex_lock(&s->lock);
	s->changes = 0; /* counts the changes made live, after loading */
	pthread_mutex_unlock(&s->lock);
	atomic_store(&s->loaded, true);
}

/* ------------------------------------------------------------------ */
/* Counts                                                              */
/* ------------------------------------------------------------------ */

struct mfsd_model *mfsd_table_get_key(struct mfsd_table *s, const char *key)
{
	struct mfsd_model *m = NULL;
	size_t pos;

	pthread_mutex_lock(&s->lock);
	pos = mfsd_key_pos(s, key);
	if (pos < s->npublished && strcmp(s->by_key[pos]->key, key) == 0) {
		m = s->by_key[pos];
		m->nbusy++;
	}
	pthread_mutex_unlock(&s->lock);
	return m;
}

struct mfsd_model *mfsd_table_get_gen(struct mfsd_table *s, uint64_t gen)
{
	struct mfsd_model *m = NULL;
	size_t pos;

	pthread_mutex_lock(&s->lock);
	pos = mfsd_gen_pos(s, gen);
	if (pos < s->nlive && s->by_gen[pos]->gen == gen) {
		m = s->by_gen[pos];
		m->nbusy++;
	}
	pthread_mutex_unlock(&s->lock);
	return m;
}

void mfsd_table_put(struct mfsd_table *s, struct mfsd_model *m)
{
	pthread_mutex_lock(&s->lock);
	m->nbusy--;
	(void)mfsd_table_unlock_reap(s, m);
}

void mfsd_table_lookup(struct mfsd_table *s, struct mfsd_model *m,
		       uint64_t slot, uint64_t n)
{
	pthread_mutex_lock(&s->lock);
	if (slot == MFSD_SLOT_DIR)
		m->nlookup_dir += n;
	else
		m->nlookup_files += n;
	pthread_mutex_unlock(&s->lock);
}

/* Subtracts @n from *@count; the kernel never forgets more than it looked
 * up, but a bug must not wrap the count. */
static void mfsd_count_sub(uint64_t *count, uint64_t n)
{
	*count -= n < *count ? n : *count;
}

bool mfsd_table_forget(struct mfsd_table *s, uint64_t gen, uint64_t slot,
		       uint64_t n)
{
	struct mfsd_model *m = NULL;
	size_t pos;

	pthread_mutex_lock(&s->lock);
	pos = mfsd_gen_pos(s, gen);
	if (pos < s->nlive && s->by_gen[pos]->gen == gen) {
		m = s->by_gen[pos];
		mfsd_count_sub(slot == MFSD_SLOT_DIR ? &m->nlookup_dir
						     : &m->nlookup_files, n);
	}
	return mfsd_table_unlock_reap(s, m);
}

/* Orders the (pid, slot) of hold @key against hold @elem. */
static int mfsd_hold_cmp(const void *key, const void *elem)
{
	const struct mfsd_hold *a = key, *b = elem;

	if (a->pid != b->pid)
		return a->pid < b->pid ? -1 : 1;
	return (a->slot > b->slot) - (a->slot < b->slot);
}

/* Index of the first hold >= (@pid, @slot) in m->holds.  Lock held. */
static size_t mfsd_hold_pos(const struct mfsd_model *m, pid_t pid,
			    uint64_t slot)
{
	struct mfsd_hold key = {.pid = pid, .slot = slot};

	return mfsd_vec_lower_bound(m->holds, m->nholds, sizeof(*m->holds),
				    &key, mfsd_hold_cmp);
}

static bool mfsd_hold_at(const struct mfsd_model *m, size_t pos, pid_t pid,
			 uint64_t slot)
{
	return pos < m->nholds && m->holds[pos].pid == pid &&
	       m->holds[pos].slot == slot;
}

int mfsd_table_open_handle(struct mfsd_table *s, struct mfsd_model *m,
			   pid_t pid, uid_t uid, uint64_t slot)
{
	size_t pos;
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	pos = mfsd_hold_pos(m, pid, slot);
	if (!mfsd_hold_at(m, pos, pid, slot)) {
		struct mfsd_hold h = {.pid = pid, .slot = slot, .uid = uid};

		rc = mfsd_vec_reserve((void **)&m->holds, &m->holds_cap,
				      m->nholds + 1, sizeof(*m->holds));
		if (rc < 0)
			goto out;
		mfsd_vec_insert(m->holds, &m->nholds, sizeof(h), pos, &h);
	}
	m->holds[pos].handles++;
	m->nopen++;
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

bool mfsd_table_release_handle(struct mfsd_table *s, struct mfsd_model *m,
			       pid_t pid, uint64_t slot)
{
	size_t pos;
	bool last;

	pthread_mutex_lock(&s->lock);
	pos = mfsd_hold_pos(m, pid, slot);
	if (mfsd_hold_at(m, pos, pid, slot) && --m->holds[pos].handles == 0)
		mfsd_vec_remove(m->holds, &m->nholds, sizeof(*m->holds), pos);
	mfsd_count_sub(&m->nopen, 1);
	last = m->nopen == 0;
	if (last)
		m->released_seq = ++s->release_clock;
	(void)mfsd_table_unlock_reap(s, m);
	return last;
}

void mfsd_table_open_dir(struct mfsd_table *s, struct mfsd_model *m)
{
	pthread_mutex_lock(&s->lock);
	m->ndirs++;
	pthread_mutex_unlock(&s->lock);
}

bool mfsd_table_release_dir(struct mfsd_table *s, struct mfsd_model *m)
{
	pthread_mutex_lock(&s->lock);
	mfsd_count_sub(&m->ndirs, 1);
	return mfsd_table_unlock_reap(s, m);
}

void mfsd_table_unpublish(struct mfsd_table *s, struct mfsd_model *m)
{
	pthread_mutex_lock(&s->lock);
	mfsd_table_take_out(s, m, MFSD_MODEL_REMOVED);
	(void)mfsd_table_unlock_reap(s, m);
}

/* ------------------------------------------------------------------ */
/* Copies for listings and .status                                     */
/* ------------------------------------------------------------------ */

void mfsd_table_free_list(struct mfsd_dirent_model *list, size_t n)
{
	for (size_t i = 0; list && i < n; i++)
		free(list[i].key);
	free(list);
}

ssize_t mfsd_table_list(struct mfsd_table *s, struct mfsd_dirent_model **out)
{
	struct mfsd_dirent_model *list;
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->npublished;
	list = calloc(n ? n : 1, sizeof(*list));
	for (size_t i = 0; list && i < n; i++) {
		list[i].gen = s->by_key[i]->gen;
		list[i].key = strdup(s->by_key[i]->key);
		if (!list[i].key) {
			mfsd_table_free_list(list, i);
			list = NULL;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (!list)
		return -ENOMEM;
	*out = list;
	return (ssize_t)n;
}

/* Sums @u->holds per pid into @u->holders (allocated for nholds). */
static void mfsd_usage_holders(struct mfsd_model_usage *u)
{
	u->nholders = 0;
	for (size_t i = 0; i < u->nholds; i++) {
		struct mfsd_holder *last = u->nholders
						   ? &u->holders[u->nholders - 1]
						   : NULL;

		/* holds are sorted by pid, so one pid's holds are adjacent */
		if (!last || last->pid != u->holds[i].pid) {
			last = &u->holders[u->nholders++];
			*last = (struct mfsd_holder){.pid = u->holds[i].pid};
		}
		last->handles += u->holds[i].handles;
	}
}

/* Copies @m's counts into @out.  Lock held. */
static void mfsd_model_counts_locked(const struct mfsd_model *m,
				     struct mfsd_model_counts *out)
{
	out->state = m->state;
	out->retired = m->retired;
	out->nlookup_dir = m->nlookup_dir;
	out->nlookup_files = m->nlookup_files;
	out->nopen = m->nopen;
	out->ndirs = m->ndirs;
	out->released_seq = m->released_seq;
}

void mfsd_table_model_counts(struct mfsd_table *s, struct mfsd_model *m,
			     struct mfsd_model_counts *out)
{
	pthread_mutex_lock(&s->lock);
	mfsd_model_counts_locked(m, out);
	pthread_mutex_unlock(&s->lock);
}

int mfsd_table_usage(struct mfsd_table *s, struct mfsd_model *m,
		     struct mfsd_model_usage *u)
{
	size_t n;

	memset(u, 0, sizeof(*u));
	pthread_mutex_lock(&s->lock);
	n = m->nholds;
	u->holds = malloc((n ? n : 1) * sizeof(*u->holds));
	u->holders = malloc((n ? n : 1) * sizeof(*u->holders));
	if (u->holds && u->holders) {
		if (n) /* m->holds may be NULL then */
			memcpy(u->holds, m->holds, n * sizeof(*u->holds));
		u->nholds = n;
		mfsd_model_counts_locked(m, &u->c);
		u->in_store = m->state == MFSD_MODEL_PUBLISHED;
		u->nlookup = m->nlookup_dir + m->nlookup_files;
		u->nopen = m->nopen;
	}
	pthread_mutex_unlock(&s->lock);
	if (!u->holds || !u->holders) {
		mfsd_table_usage_free(u);
		return -ENOMEM;
	}
	mfsd_usage_holders(u);
	return 0;
}

void mfsd_table_usage_keep_uid(struct mfsd_model_usage *u, uid_t uid)
{
	size_t kept = 0;

	for (size_t i = 0; i < u->nholds; i++)
		if (u->holds[i].uid == uid)
			u->holds[kept++] = u->holds[i];
	u->nholds = kept;
	mfsd_usage_holders(u);
}

void mfsd_table_usage_free(struct mfsd_model_usage *u)
{
	free(u->holds);
	free(u->holders);
	u->holds = NULL;
	u->holders = NULL;
	u->nholds = u->nholders = 0;
}

ssize_t mfsd_table_get_all(struct mfsd_table *s, struct mfsd_model ***out)
{
	struct mfsd_model **v;
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->nlive;
	v = malloc((n ? n : 1) * sizeof(*v));
	for (size_t i = 0; v && i < n; i++) {
		v[i] = s->by_gen[i];
		v[i]->nbusy++;
	}
	pthread_mutex_unlock(&s->lock);
	if (!v)
		return -ENOMEM;
	*out = v;
	return (ssize_t)n;
}

void mfsd_table_put_all(struct mfsd_table *s, struct mfsd_model **models,
			size_t n)
{
	for (size_t i = 0; i < n; i++)
		mfsd_table_put(s, models[i]);
	free(models);
}

void mfsd_table_free_skipped(struct mfsd_skipped *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].file_name);
		free(v[i].reason);
	}
	free(v);
}

ssize_t mfsd_table_skipped(struct mfsd_table *s, struct mfsd_skipped **out)
{
	struct mfsd_skipped *v;
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->nskipped;
	v = calloc(n ? n : 1, sizeof(*v));
	for (size_t i = 0; v && i < n; i++) {
		v[i] = s->skipped[i];
		v[i].file_name = strdup(s->skipped[i].file_name);
		v[i].reason = strdup(s->skipped[i].reason);
		if (!v[i].file_name || !v[i].reason) {
			mfsd_table_free_skipped(v, i + 1);
			v = NULL;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (!v)
		return -ENOMEM;
	*out = v;
	return (ssize_t)n;
}

void mfsd_table_counts(struct mfsd_table *s, struct mfsd_table_counts *out)
{
	pthread_mutex_lock(&s->lock);
	out->published = s->npublished;
	out->live = s->nlive - s->nretired;
	out->retired = s->nretired;
	out->changes = s->changes;
	pthread_mutex_unlock(&s->lock);
}
