/*
 * store.c - loading STORE_DIR and the reference-counted model table.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunkcache.h"
#include "log.h"
#include "store.h"

#define MFSD_CONTAINER_SUFFIX ".mfs"
#define MFSD_NPY_SUFFIX ".npy"
#define MFSD_BITS_PER_WORD 64u
#define MFSD_INITIAL_CAP 16u
/* Room for the library's message about a bad container. */
#define MFSD_WHY_MAX 1024

/* Copies a reason for skipping a container into @why (MFSD_WHY_MAX). */
static void mfsd_why(char *why, const char *msg)
{
	snprintf(why, MFSD_WHY_MAX, "%s", msg);
}

/* ------------------------------------------------------------------ */
/* Sorted pointer arrays                                               */
/* ------------------------------------------------------------------ */

/* Grows *@v (of *@cap pointers) to hold at least @need.  0 or -ENOMEM. */
static int mfsd_vec_reserve(struct mfsd_model ***v, size_t *cap, size_t need)
{
	size_t ncap = *cap ? *cap : MFSD_INITIAL_CAP;
	struct mfsd_model **nv;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	nv = realloc(*v, ncap * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap = ncap;
	return 0;
}

static void mfsd_vec_insert(struct mfsd_model **v, size_t *n, size_t pos,
			    struct mfsd_model *m)
{
	memmove(&v[pos + 1], &v[pos], (*n - pos) * sizeof(*v));
	v[pos] = m;
	(*n)++;
}

static void mfsd_vec_remove(struct mfsd_model **v, size_t *n, size_t pos)
{
	memmove(&v[pos], &v[pos + 1], (*n - pos - 1) * sizeof(*v));
	(*n)--;
}

/* Index of the first model with key >= @key in by_key.  Lock held. */
static size_t mfsd_key_pos(const struct mfsd_store *s, const char *key)
{
	size_t lo = 0, hi = s->npublished;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(s->by_key[mid]->key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Index of the first model with gen >= @gen in by_gen.  Lock held. */
static size_t mfsd_gen_pos(const struct mfsd_store *s, uint64_t gen)
{
	size_t lo = 0, hi = s->nlive;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->by_gen[mid]->gen < gen)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* ------------------------------------------------------------------ */
/* One model                                                           */
/* ------------------------------------------------------------------ */

static void mfsd_model_free(struct mfsd_store *s, struct mfsd_model *m)
{
	if (!m)
		return;
	if (s && s->cache)
		mfsd_cache_drop_model(s->cache, m->gen);
	for (size_t i = 0; m->arrays && i < m->narrays; i++) {
		free(m->arrays[i].file_name);
		free((void *)m->arrays[i].verified);
		free((void *)m->arrays[i].reported);
	}
	free(m->arrays);
	free(m->manifest);
	free(m->holders);
	free(m->key);
	free(m->file_name);
	mfs_container_close(m->container);
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
	if (__builtin_add_overflow(a->info.raw_length,
				   (uint64_t)MFS_NPY_HEADER_SIZE,
				   &a->file_size)) {
		mfsd_why(why, "array too large for a .npy view");
		return -EBADMSG;
	}
	if (asprintf(&a->file_name, "%s" MFSD_NPY_SUFFIX, a->info.name) < 0) {
		a->file_name = NULL;
		return -ENOMEM;
	}
	a->bitmap_words = (size_t)((a->info.chunk_count + MFSD_BITS_PER_WORD -
				    1) / MFSD_BITS_PER_WORD);
	if (a->bitmap_words == 0)
		a->bitmap_words = 1;
	a->verified = calloc(a->bitmap_words, sizeof(*a->verified));
	a->reported = calloc(a->bitmap_words, sizeof(*a->reported));
	if (!a->verified || !a->reported)
		return -ENOMEM;
	m->raw_size += a->info.raw_length;
	m->stored_size += a->info.stored_length;
	return 0;
}

/* Builds arrays, manifest and metadata of a model whose container is
 * open.  0 or negative errno with @why set. */
static int mfsd_model_fill(struct mfsd_model *m, char *why)
{
	char *hdr = malloc(MFS_NPY_HEADER_SIZE);
	int rc = -ENOMEM;

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
	rc = 0;
out:
	free(hdr);
	return rc;
}

/* Opens container @file_name of the store as model @key.  Returns 0 or a
 * negative errno with @why (MFSD_WHY_MAX bytes) naming the reason. */
static int mfsd_model_load(struct mfsd_store *s, int dirfd,
			   const char *file_name, const char *key,
			   struct mfsd_model **out, char *why)
{
	struct mfsd_model *m = calloc(1, sizeof(*m));
	char label[PATH_MAX];
	int fd = -1, rc = -ENOMEM;

	mfsd_why(why, "out of memory");
	if (!m)
		return -ENOMEM;
	m->key = strdup(key);
	m->file_name = strdup(file_name);
	if (!m->key || !m->file_name)
		goto fail;
	fd = openat(dirfd, file_name, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &m->st) < 0) {
		rc = -errno;
		mfsd_why(why, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(m->st.st_mode)) {
		rc = -EINVAL;
		mfsd_why(why, "not a regular file");
		goto fail;
	}
	snprintf(label, sizeof(label), "%s/%s", s->dir_path, file_name);
	rc = mfs_container_open_fd(&m->container, fd, label);
	if (rc < 0) {
		mfsd_why(why, mfs_last_error());
		goto fail;
	}
	fd = -1; /* owned by the container now */
	/*
	 * No readahead on the backing file: requests can be served out of
	 * order by several threads, and readahead behind a late one would
	 * bring back pages already served and dropped, leaving a second
	 * copy in the page cache.  The mount's own readahead still makes
	 * the requests large.
	 */
	(void)posix_fadvise(mfs_container_fd(m->container), 0, 0,
			    POSIX_FADV_RANDOM);
	rc = mfsd_model_fill(m, why);
	if (rc < 0)
		goto fail;
	*out = m;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	mfsd_model_free(NULL, m);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The table                                                           */
/* ------------------------------------------------------------------ */

/* Gives @m the next generation and publishes it under its key.
 * 0, -EEXIST (key taken) or -ENOMEM. */
static int mfsd_store_publish(struct mfsd_store *s, struct mfsd_model *m)
{
	size_t kpos;
	int rc;

	pthread_mutex_lock(&s->lock);
	kpos = mfsd_key_pos(s, m->key);
	rc = -EEXIST;
	if (kpos < s->npublished && strcmp(s->by_key[kpos]->key, m->key) == 0)
		goto out;
	rc = mfsd_vec_reserve(&s->by_gen, &s->live_cap, s->nlive + 1);
	if (rc == 0)
		rc = mfsd_vec_reserve(&s->by_key, &s->published_cap,
				      s->npublished + 1);
	if (rc < 0)
		goto out;
	m->gen = s->next_gen++;
	m->in_store = true;
	/* Generations only grow, so the newest goes last. */
	mfsd_vec_insert(s->by_gen, &s->nlive, s->nlive, m);
	mfsd_vec_insert(s->by_key, &s->npublished, kpos, m);
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static bool mfsd_model_dead(const struct mfsd_model *m)
{
	return !m->in_store && m->nlookup == 0 && m->nopen == 0 &&
	       m->nbusy == 0;
}

/* If @m has no reason to live, takes it out of by_gen and returns true:
 * the caller frees it after dropping the lock.  Lock held. */
static bool mfsd_store_reap(struct mfsd_store *s, struct mfsd_model *m)
{
	size_t pos;

	if (!mfsd_model_dead(m))
		return false;
	pos = mfsd_gen_pos(s, m->gen);
	if (pos < s->nlive && s->by_gen[pos] == m)
		mfsd_vec_remove(s->by_gen, &s->nlive, pos);
	return true;
}

/* Records a skipped container for .status (best effort). */
static void mfsd_store_skip(struct mfsd_store *s, const char *file_name,
			    const char *why)
{
	struct mfsd_skipped *v;

	mfsd_log(MFSD_LOG_WARNING, "skipping %s/%s: %s", s->dir_path,
		 file_name, why);
	v = realloc(s->skipped, (s->nskipped + 1) * sizeof(*v));
	if (!v)
		return;
	s->skipped = v;
	v[s->nskipped].file_name = strdup(file_name);
	v[s->nskipped].reason = strdup(why);
	if (!v[s->nskipped].file_name || !v[s->nskipped].reason) {
		free(v[s->nskipped].file_name);
		free(v[s->nskipped].reason);
		return;
	}
	s->nskipped++;
}

/* Container names: not hidden, ending in ".mfs" with something before. */
static int mfsd_scan_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name), sl = strlen(MFSD_CONTAINER_SUFFIX);

	return d->d_name[0] != '.' && n > sl &&
	       strcmp(d->d_name + n - sl, MFSD_CONTAINER_SUFFIX) == 0;
}

/* Loads and publishes one container; failures are logged and skipped.
 * Returns -ENOMEM only when the table itself cannot grow. */
static int mfsd_store_add_file(struct mfsd_store *s, int dirfd,
			       const char *file_name)
{
	size_t klen = strlen(file_name) - strlen(MFSD_CONTAINER_SUFFIX);
	char key[NAME_MAX + 1];
	struct mfsd_model *m = NULL;
	char why[MFSD_WHY_MAX];
	int rc;

	memcpy(key, file_name, klen);
	key[klen] = '\0';
	if (mfs_check_key(key) < 0) {
		mfsd_store_skip(s, file_name, mfs_last_error());
		return 0;
	}
	rc = mfsd_model_load(s, dirfd, file_name, key, &m, why);
	if (rc < 0) {
		mfsd_store_skip(s, file_name, why);
		return rc == -ENOMEM ? rc : 0;
	}
	rc = mfsd_store_publish(s, m);
	if (rc < 0) {
		mfsd_model_free(s, m);
		return rc;
	}
	mfsd_log(MFSD_LOG_DEBUG, "serving %s: %zu arrays, %llu raw bytes", key,
		 m->narrays, (unsigned long long)m->raw_size);
	return 0;
}

/* Loads every container of the store directory, in name order. */
static int mfsd_store_scan(struct mfsd_store *s, int dirfd)
{
	struct dirent **names = NULL;
	int n = scandirat(dirfd, ".", &names, mfsd_scan_filter, alphasort);
	int rc = 0;

	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++) {
		if (rc == 0)
			rc = mfsd_store_add_file(s, dirfd, names[i]->d_name);
		free(names[i]);
	}
	free(names);
	return rc;
}

int mfsd_store_open(struct mfsd_store **out, const char *dir_path,
		    struct mfsd_cache *cache)
{
	struct mfsd_store *s = calloc(1, sizeof(*s));
	int dirfd = -1, rc = -ENOMEM;

	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	s->cache = cache;
	s->next_gen = 1;
	s->dir_path = strdup(dir_path);
	if (!s->dir_path)
		goto fail;
	dirfd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0 || fstat(dirfd, &s->dir_st) < 0) {
		rc = -errno;
		goto fail;
	}
	rc = mfsd_store_scan(s, dirfd);
	if (rc < 0)
		goto fail;
	mfsd_log(MFSD_LOG_INFO, "%zu models loaded from %s, %zu skipped",
		 s->npublished, dir_path, s->nskipped);
	close(dirfd);
	*out = s;
	return 0;
fail:
	if (dirfd >= 0)
		close(dirfd);
	mfsd_store_close(s);
	return rc;
}

void mfsd_store_close(struct mfsd_store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nlive; i++)
		mfsd_model_free(s, s->by_gen[i]);
	for (size_t i = 0; i < s->nskipped; i++) {
		free(s->skipped[i].file_name);
		free(s->skipped[i].reason);
	}
	free(s->skipped);
	free(s->by_gen);
	free(s->by_key);
	free(s->dir_path);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

struct mfsd_model *mfsd_store_get_key(struct mfsd_store *s, const char *key)
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

struct mfsd_model *mfsd_store_get_gen(struct mfsd_store *s, uint64_t gen)
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

void mfsd_store_put(struct mfsd_store *s, struct mfsd_model *m)
{
	bool dead;

	pthread_mutex_lock(&s->lock);
	m->nbusy--;
	dead = mfsd_store_reap(s, m);
	pthread_mutex_unlock(&s->lock);
	if (dead)
		mfsd_model_free(s, m);
}

void mfsd_store_lookup(struct mfsd_store *s, struct mfsd_model *m, uint64_t n)
{
	pthread_mutex_lock(&s->lock);
	m->nlookup += n;
	pthread_mutex_unlock(&s->lock);
}

void mfsd_store_forget(struct mfsd_store *s, uint64_t gen, uint64_t n)
{
	struct mfsd_model *m = NULL;
	bool dead = false;
	size_t pos;

	pthread_mutex_lock(&s->lock);
	pos = mfsd_gen_pos(s, gen);
	if (pos < s->nlive && s->by_gen[pos]->gen == gen) {
		m = s->by_gen[pos];
		/* The kernel never forgets more than it looked up; clamp
		 * anyway so a bug cannot wrap the count. */
		m->nlookup -= n < m->nlookup ? n : m->nlookup;
		dead = mfsd_store_reap(s, m);
	}
	pthread_mutex_unlock(&s->lock);
	if (dead)
		mfsd_model_free(s, m);
}

/* Index of @pid in m->holders, or nholders.  Lock held. */
static size_t mfsd_holder_find(const struct mfsd_model *m, pid_t pid)
{
	size_t i = 0;

	while (i < m->nholders && m->holders[i].pid != pid)
		i++;
	return i;
}

int mfsd_store_open_handle(struct mfsd_store *s, struct mfsd_model *m,
			   pid_t pid)
{
	size_t i;
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	i = mfsd_holder_find(m, pid);
	if (i == m->nholders && m->nholders == m->holders_cap) {
		size_t cap = m->holders_cap ? 2 * m->holders_cap : 4;
		struct mfsd_holder *h = realloc(m->holders, cap * sizeof(*h));

		if (!h) {
			rc = -ENOMEM;
			goto out;
		}
		m->holders = h;
		m->holders_cap = cap;
	}
	if (i == m->nholders)
		m->holders[m->nholders++] = (struct mfsd_holder){.pid = pid};
	m->holders[i].handles++;
	m->nopen++;
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void mfsd_store_release_handle(struct mfsd_store *s, struct mfsd_model *m,
			       pid_t pid)
{
	bool dead;
	size_t i;

	pthread_mutex_lock(&s->lock);
	i = mfsd_holder_find(m, pid);
	if (i < m->nholders && --m->holders[i].handles == 0)
		m->holders[i] = m->holders[--m->nholders];
	m->nopen--;
	dead = mfsd_store_reap(s, m);
	pthread_mutex_unlock(&s->lock);
	if (dead)
		mfsd_model_free(s, m);
}

void mfsd_store_unpublish(struct mfsd_store *s, struct mfsd_model *m)
{
	bool dead;
	size_t pos;

	pthread_mutex_lock(&s->lock);
	pos = mfsd_key_pos(s, m->key);
	if (m->in_store && pos < s->npublished && s->by_key[pos] == m)
		mfsd_vec_remove(s->by_key, &s->npublished, pos);
	m->in_store = false;
	dead = mfsd_store_reap(s, m);
	pthread_mutex_unlock(&s->lock);
	if (dead)
		mfsd_model_free(s, m);
}

void mfsd_store_free_list(struct mfsd_dirent_model *list, size_t n)
{
	for (size_t i = 0; list && i < n; i++)
		free(list[i].key);
	free(list);
}

ssize_t mfsd_store_list(struct mfsd_store *s, struct mfsd_dirent_model **out)
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
			mfsd_store_free_list(list, i);
			list = NULL;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (!list)
		return -ENOMEM;
	*out = list;
	return (ssize_t)n;
}

static int mfsd_holder_cmp(const void *a, const void *b)
{
	const struct mfsd_holder *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

int mfsd_store_usage(struct mfsd_store *s, struct mfsd_model *m,
		     struct mfsd_model_usage *usage)
{
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	usage->nlookup = m->nlookup;
	usage->nopen = m->nopen;
	usage->in_store = m->in_store;
	usage->nholders = m->nholders;
	usage->holders = malloc((m->nholders ? m->nholders : 1) *
				sizeof(*usage->holders));
	if (!usage->holders)
		rc = -ENOMEM;
	else if (m->nholders)
		memcpy(usage->holders, m->holders,
		       m->nholders * sizeof(*usage->holders));
	pthread_mutex_unlock(&s->lock);
	if (rc == 0)
		qsort(usage->holders, usage->nholders, sizeof(*usage->holders),
		      mfsd_holder_cmp);
	return rc;
}

ssize_t mfsd_store_get_all(struct mfsd_store *s, struct mfsd_model ***out)
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

void mfsd_store_put_all(struct mfsd_store *s, struct mfsd_model **models,
			size_t n)
{
	for (size_t i = 0; i < n; i++)
		mfsd_store_put(s, models[i]);
	free(models);
}
