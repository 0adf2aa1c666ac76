/*
 * model.c - turning a container into what the daemon serves (see
 * model.h): opening the store entry safely on a descriptor of the
 * budget, the .npy view of each array, the manifest and metadata.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunkcache.h"
#include "data.h"
#include "handoff.h"
#include "lease.h"
#include "model.h"
#include "remote.h"
#include "table.h"

/* Opening a store entry must not follow a link, block (a FIFO), or make
 * a terminal ours; only the regular files this admits are kept open. */
#define MFSD_CONTAINER_OPEN_FLAGS                                          \
	(O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)

void mfsd_why(char *why, const char *msg)
{
	snprintf(why, MFSD_WHY_MAX, "%s", msg);
}

/* ------------------------------------------------------------------ */
/* The descriptor budget                                              */
/* ------------------------------------------------------------------ */

/* Takes a descriptor from the budget for a container about to be opened.
 * 0, or -EMFILE when the budget is spent (the load then waits). */
static int mfsd_fd_get(struct mfsd_table *t)
{
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	if (t->fd_budget && t->nfds >= t->fd_budget) {
		t->fd_starved = true;
		rc = -EMFILE;
	} else {
		t->nfds++;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

/* Gives back a descriptor of the budget; if a load waits for one, tells
 * t->fd_freed. */
static void mfsd_fd_put(struct mfsd_table *t)
{
	bool wake;

	pthread_mutex_lock(&t->lock);
	t->nfds--;
	wake = t->fd_starved;
	t->fd_starved = false;
	pthread_mutex_unlock(&t->lock);
	if (wake && t->fd_freed)
		t->fd_freed(t->fd_freed_arg);
}

/* ------------------------------------------------------------------ */
/* One model                                                          */
/* ------------------------------------------------------------------ */

void mfsd_model_release_data(struct mfsd_table *t, struct mfsd_model *m,
				    bool drop_pages)
{
	bool had_fd = m->container != NULL;

	if (t->cache)
		mfsd_cache_drop_model(t->cache, m->gen);
	for (size_t i = 0; m->arrays && i < m->narrays; i++) {
		free(m->arrays[i].file_name);
		mfsd_data_bitmaps_free(&m->arrays[i]);
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
	mfsd_remote_detach(m->remote);
	m->remote = NULL;
	mfs_container_close(m->container);
	m->container = NULL;
	if (had_fd) {
		mfsd_fd_put(t);
		/* The supervisor closes its copy too. */
		mfsd_handoff_fd_closed(t, m);
	}
}

void mfsd_model_free(struct mfsd_table *t, struct mfsd_model *m)
{
	if (!m)
		return;
	mfsd_model_release_data(t, m, m->state != MFSD_MODEL_PUBLISHED);
	mfsd_handoff_model_end(t, m);
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
	if (asprintf(&a->file_name, "%s" MFS_NPY_SUFFIX, a->info.name) < 0) {
		a->file_name = NULL;
		mfsd_why(why, "out of memory");
		return -ENOMEM;
	}
	if (mfsd_data_bitmaps_init(a) < 0) {
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

bool mfsd_model_update_perms(struct mfsd_model *m, const struct stat *st)
{
	bool changed = atomic_load(&m->mode) !=
			       ((unsigned)st->st_mode & MFSD_MODE_BITS) ||
		       atomic_load(&m->uid) != (unsigned)st->st_uid ||
		       atomic_load(&m->gid) != (unsigned)st->st_gid;

	if (changed)
		mfsd_model_set_perms(m, st);
	return changed;
}

bool mfsd_not_regular(mode_t mode, char *why)
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
static int mfsd_open_entry(struct mfsd_table *t, const char *name,
			   const struct stat *st, struct stat *out, char *why)
{
	int fd = openat(t->dirfd, name, MFSD_CONTAINER_OPEN_FLAGS), rc;

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
static int mfsd_model_open(struct mfsd_table *t, struct mfsd_model *m,
			   const char *file_name, const struct stat *st,
			   char *why)
{
	char label[PATH_MAX];
	int fd, rc = mfsd_fd_get(t);

	if (rc < 0) {
		snprintf(why, MFSD_WHY_MAX, "waiting for a file descriptor "
			 "(%zu containers open, the most this daemon keeps)",
			 t->fd_budget);
		return rc;
	}
	fd = mfsd_open_entry(t, file_name, st, &m->st, why);
	if (fd < 0) {
		rc = fd;
		goto fail;
	}
	snprintf(label, sizeof(label), "%s/%s", t->dir_path, file_name);
	rc = mfs_container_open_fd(&m->container, fd, label);
	if (rc < 0) {
		mfsd_why(why, rc == -ENOMEM ? "out of memory"
					    : mfs_last_error());
		close(fd);
		goto fail;
	}
	return 0;
fail:
	mfsd_fd_put(t);
	return rc;
}

/* A model named @key with container @file_name, nothing loaded yet.
 * NULL when out of memory. */
static struct mfsd_model *mfsd_model_alloc(const char *key,
					   const char *file_name)
{
	struct mfsd_model *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->key = strdup(key);
	m->file_name = strdup(file_name);
	if (!m->key || !m->file_name) {
		free(m->key);
		free(m->file_name);
		free(m);
		return NULL;
	}
	return m;
}

/* Makes the serving state of @m, whose container is open.  0 or a
 * negative errno with @why set. */
static int mfsd_model_prepare(struct mfsd_table *t, struct mfsd_model *m,
			      char *why)
{
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
	if (t->remote)
		m->remote = mfsd_remote_attach(t->remote, m->container);
	/* A remote store's cache file changes under the model as chunks
	 * arrive and leave: every chunk is checked each time it is served,
	 * and no lease is needed to learn of a rewrite. */
	if (m->remote)
		atomic_store(&m->trust, MFSD_TRUST_UNLEASED);
	else
		mfsd_lease_take(m);
	return mfsd_model_fill(m, why);
}

int mfsd_model_load(struct mfsd_table *t, const char *file_name,
			   const struct stat *st, const char *key,
			   struct mfsd_model **out, char *why)
{
	struct mfsd_model *m = mfsd_model_alloc(key, file_name);
	int rc;

	mfsd_why(why, "out of memory");
	if (!m)
		return -ENOMEM;
	rc = mfsd_model_open(t, m, file_name, st, why);
	if (rc < 0)
		goto fail;
	rc = mfsd_model_prepare(t, m, why);
	if (rc < 0)
		goto fail;
	*out = m;
	return 0;
fail:
	mfsd_model_free(t, m);
	return rc;
}

/* Opens the container of recorded model @r again by its file name, if
 * that is still the recorded file.  The descriptor or a negative errno
 * with @why set (-ESTALE: another file has the name now). */
static int mfsd_model_reopen(struct mfsd_table *t,
			     const struct mfsd_model_record *r, char *why)
{
	struct stat st;
	int fd = openat(t->dirfd, r->file_name, MFSD_CONTAINER_OPEN_FLAGS);

	if (fd < 0) {
		int rc = -errno;

		mfsd_why(why, strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_dev != r->dev || (uint64_t)st.st_ino != r->ino) {
		close(fd);
		mfsd_why(why, "its container was replaced and no descriptor "
			 "of it was kept");
		return -ESTALE;
	}
	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

int mfsd_model_adopt(struct mfsd_table *t, const struct mfsd_model_record *r,
		     int fd, struct mfsd_model **out, char *why)
{
	struct mfsd_model *m = mfsd_model_alloc(r->key, r->file_name);
	char label[PATH_MAX];
	int rc = -ENOMEM;

	mfsd_why(why, "out of memory");
	if (!m)
		goto fail_fd;
	m->gen = r->gen;
	m->state = r->state;
	if (r->retired) {
		/* Nothing to load: its directory looks empty. */
		m->retired = true;
		*out = m;
		return 0;
	}
	if (fd < 0)
		fd = mfsd_model_reopen(t, r, why);
	if (fd < 0) {
		rc = fd;
		goto fail;
	}
	rc = mfsd_fd_get(t);
	if (rc < 0) {
		mfsd_why(why, "no file descriptor left for it");
		goto fail_fd;
	}
	if (fstat(fd, &m->st) < 0) {
		rc = -errno;
		mfsd_why(why, strerror(errno));
		mfsd_fd_put(t);
		goto fail_fd;
	}
	snprintf(label, sizeof(label), "%s/%s", t->dir_path, r->file_name);
	rc = mfs_container_open_fd(&m->container, fd, label);
	if (rc < 0) {
		mfsd_why(why, rc == -ENOMEM ? "out of memory"
					    : mfs_last_error());
		mfsd_fd_put(t);
		goto fail_fd;
	}
	rc = mfsd_model_prepare(t, m, why);
	if (rc < 0)
		goto fail;
	*out = m;
	return 0;
fail_fd:
	if (fd >= 0)
		close(fd);
fail:
	/* Not recorded as this model's any more: no message, no record. */
	if (m)
		m->gen = 0;
	mfsd_model_free(t, m);
	return rc;
}
