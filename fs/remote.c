/*
 * remote.c - a store at an HTTP(S) origin: the cache directory, the
 * index and the view directory the daemon serves, the poller and the
 * prefetcher (see remote.h; chunks are fetch.c's).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "log.h"
#include "remote_internal.h"

/* Largest index accepted (a store of ~100,000 models). */
#define MFSD_INDEX_MAX ((size_t)64 << 20)
/* Longest readable part of an origin in the name of its cache dir. */
#define MFSD_SITE_NAME_MAX 96u
#define MFSD_DIR_MODE 0755
#define MFSD_FILE_MODE 0644
#define MFSD_MS_PER_S 1000u
/* Temporaries in objects/ and store/ start with this (hidden names:
 * the daemon never serves them). */
#define MFSD_TMP_PREFIX ".tmp-"
/* Readahead takes at most this share of the cache (see ra_cap). */
#define MFSD_RA_CACHE_SHARE 4u
/* How often the watcher looks whether the daemon is stopping. */
#define MFSD_WATCH_TICK_NS 100000000L

/* One model of an index. */
struct mfsd_entry {
	const char *key;
	const char *object;
	uint64_t size;
	uint64_t index_checksum;
};

/* ------------------------------------------------------------------ */
/* The cache directory                                                 */
/* ------------------------------------------------------------------ */

/* The cache directory of origin @url: a readable part and a hash of the
 * whole URL, so that two origins never share one. */
static char *mfsd_site_name(const char *url)
{
	const char *p = strstr(url, "://");
	char name[MFSD_SITE_NAME_MAX + MFSD_HEX64_LEN + 2];
	size_t n = 0;

	for (p = p ? p + strlen("://") : url;
	     *p && n < MFSD_SITE_NAME_MAX; p++) {
		char ch = *p;
		bool plain = (ch >= 'a' && ch <= 'z') ||
			     (ch >= 'A' && ch <= 'Z') ||
			     (ch >= '0' && ch <= '9') || ch == '.' || ch == '-';

		name[n++] = plain ? ch : '_';
	}
	snprintf(name + n, sizeof(name) - n, "-%016" PRIx64,
		 (uint64_t)XXH3_64bits(url, strlen(url)));
	return strdup(name);
}

/* mkdir @path (one level) unless it exists as a directory. */
static int mfsd_mkdir_at(int dirfd, const char *path)
{
	struct stat st;

	if (mkdirat(dirfd, path, MFSD_DIR_MODE) == 0 || errno != EEXIST)
		return errno == EEXIST || errno == 0 ? 0 : -errno;
	if (fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* mkdir -p @path. */
static int mfsd_mkdir_p(const char *path)
{
	char *copy = strdup(path);
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	for (char *s = copy + 1; rc == 0; s++) {
		bool end = *s == '\0';

		if (*s != '/' && !end)
			continue;
		*s = '\0';
		errno = 0;
		rc = mfsd_mkdir_at(AT_FDCWD, copy);
		if (end)
			break;
		*s = '/';
	}
	free(copy);
	return rc;
}

/* Opens directory @name under @dirfd, creating it. */
static int mfsd_open_subdir(int dirfd, const char *name)
{
	int rc;

	errno = 0;
	rc = mfsd_mkdir_at(dirfd, name);
	if (rc < 0)
		return rc;
	rc = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC |
					 O_NOFOLLOW);
	return rc < 0 ? -errno : rc;
}

/* Creates and locks the origin's cache directory: one daemon at a time
 * writes it. */
static int mfsd_cache_dirs(struct mfsd_remote *r)
{
	char *site = mfsd_site_name(r->url);
	int rc = -ENOMEM;

	if (!site || asprintf(&r->site_path, "%s/%s", r->cache_dir, site) < 0) {
		r->site_path = NULL;
		goto out;
	}
	rc = mfsd_mkdir_p(r->site_path);
	if (rc < 0)
		goto fail;
	r->site_fd = open(r->site_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->site_fd < 0) {
		rc = -errno;
		goto fail;
	}
	if (flock(r->site_fd, LOCK_EX | LOCK_NB) < 0) {
		rc = -errno;
		mfsd_log(MFSD_LOG_ERR, "cache directory %s is in use by another "
			 "modelfs serving %s", r->site_path, r->shown);
		goto out;
	}
	r->objects_fd = mfsd_open_subdir(r->site_fd, MFSD_REMOTE_OBJECTS);
	if (r->objects_fd < 0) {
		rc = r->objects_fd;
		goto fail;
	}
	r->view_fd = mfsd_open_subdir(r->site_fd, MFSD_REMOTE_VIEW);
	if (r->view_fd < 0) {
		rc = r->view_fd;
		goto fail;
	}
	rc = asprintf(&r->view_path, "%s/%s", r->site_path,
		      MFSD_REMOTE_VIEW) < 0 ? -ENOMEM : 0;
	if (rc < 0)
		r->view_path = NULL;
	goto out;
fail:
	mfsd_log(MFSD_LOG_ERR, "cache directory %s: %s",
		 r->site_path ? r->site_path : r->cache_dir, strerror(-rc));
out:
	free(site);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Cache objects                                                       */
/* ------------------------------------------------------------------ */

/* "HEX-SIZE.mfs": the cache file of a container, named by content. */
static char *mfsd_object_file(uint64_t checksum, uint64_t size)
{
	char *s;

	if (asprintf(&s, "%016" PRIx64 "-%" PRIu64 "%s", checksum, size,
		     MFS_CONTAINER_SUFFIX) < 0)
		return NULL;
	return s;
}

/* The listed object with this content, under r->lock; NULL if none. */
static struct mfsd_robj *mfsd_find_obj(struct mfsd_remote *r,
				       uint64_t checksum, uint64_t size)
{
	for (size_t i = 0; i < r->nobjs; i++)
		if (r->objs[i]->index_checksum == checksum &&
		    r->objs[i]->size == size)
			return r->objs[i];
	return NULL;
}

/* A new object for cache file @fd (taken over), not yet listed. */
static struct mfsd_robj *mfsd_robj_new(struct mfsd_remote *r, int fd,
				       const char *file_name, uint64_t size,
				       uint64_t checksum, uint64_t data_end)
{
	struct mfsd_robj *o = calloc(1, sizeof(*o));
	struct stat st;

	if (!o || fstat(fd, &st) < 0)
		goto fail;
	o->r = r;
	o->fd = fd;
	o->size = size;
	o->index_checksum = checksum;
	o->data_end = data_end;
	o->dev = st.st_dev;
	o->ino = st.st_ino;
	o->refs = 1;
	o->file_name = strdup(file_name);
	if (!o->file_name)
		goto fail;
	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->done, NULL);
	return o;
fail:
	if (o)
		free(o->file_name);
	free(o);
	close(fd);
	return NULL;
}

/* Lists @o, under r->lock.  0 or -ENOMEM (@o freed). */
static int mfsd_list_obj(struct mfsd_remote *r, struct mfsd_robj *o)
{
	if (r->nobjs == r->objs_cap) {
		size_t cap = r->objs_cap ? 2 * r->objs_cap : 16;
		struct mfsd_robj **n = realloc(r->objs, cap * sizeof(*n));

		if (!n) {
			mfsd_robj_free(o);
			return -ENOMEM;
		}
		r->objs = n;
		r->objs_cap = cap;
	}
	r->objs[r->nobjs++] = o;
	atomic_fetch_add(&r->cache_bytes, mfsd_robj_disk_bytes(o->fd));
	return 0;
}

/*
 * Takes cache file @name found in objects/ at start: kept if its header
 * page and index are sound (its chunks are checked when read), else
 * removed.  Temporaries of a daemon that died are removed.
 */
static void mfsd_adopt_file(struct mfsd_remote *r, const char *name)
{
	mfs_container *c = NULL;
	struct mfsd_robj *o;
	mfs_index_location loc;
	uint8_t page[MFS_HEADER_PAGE_SIZE];
	int fd, cfd;

	if (name[0] == '.') {
		(void)unlinkat(r->objects_fd, name, 0);
		return;
	}
	fd = openat(r->objects_fd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		mfsd_log(MFSD_LOG_WARNING, "cache file %s/%s/%s: %s: not used",
			 r->site_path, MFSD_REMOTE_OBJECTS, name,
			 strerror(errno));
		return;
	}
	cfd = dup(fd);
	if (cfd < 0 || mfs_pread_full(fd, page, sizeof(page), 0) < 0 ||
	    mfs_container_locate_index(page, sizeof(page), name, &loc) < 0 ||
	    mfs_container_open_fd(&c, cfd, name) < 0) {
		mfsd_log(MFSD_LOG_INFO, "cache file %s/%s/%s is damaged: "
			 "removed", r->site_path, MFSD_REMOTE_OBJECTS, name);
		if (cfd >= 0)
			close(cfd);
		close(fd);
		(void)unlinkat(r->objects_fd, name, 0);
		return;
	}
	mfs_container_close(c);
	o = mfsd_robj_new(r, fd, name, loc.file_size, loc.index_checksum,
			  loc.index_offset);
	if (o)
		(void)mfsd_list_obj(r, o);
}

/* Lists the cache files of earlier runs. */
static int mfsd_adopt_all(struct mfsd_remote *r)
{
	int fd = dup(r->objects_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	rewinddir(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			mfsd_adopt_file(r, e->d_name);
	closedir(d);
	return 0;
}

/* Sets r->ra_cap from what the cache may hold. */
static void mfsd_set_ra_cap(struct mfsd_remote *r)
{
	struct statvfs sv;
	uint64_t room = UINT64_MAX;

	if (fstatvfs(r->site_fd, &sv) == 0)
		room = (uint64_t)sv.f_blocks * sv.f_frsize;
	if (r->opt.cache_size && r->opt.cache_size < room)
		room = r->opt.cache_size;
	r->ra_cap = room / MFSD_RA_CACHE_SHARE;
	if (r->ra_cap > MFSD_RA_MAX_BYTES)
		r->ra_cap = MFSD_RA_MAX_BYTES;
}

/* Fetches [@off, @off + @len) of @object into @fd at the same offset. */
static int mfsd_fetch_into(struct mfsd_remote *r, const char *object,
			   int fd, uint64_t off, uint64_t len, void *buf)
{
	int rc = mfsd_http_get_range(r->http, object, off, (size_t)len, buf);

	if (rc < 0)
		return rc;
	return mfs_pwrite_full(fd, buf, (size_t)len, off);
}

/* Header page and index of @e into the new cache file @fd; checks them
 * against the index entry.  0, or a negative errno with @why set. */
static int mfsd_fetch_skeleton(struct mfsd_remote *r,
			       const struct mfsd_entry *e, int fd,
			       mfs_index_location *loc, const char **why)
{
	uint8_t page[MFS_HEADER_PAGE_SIZE];
	void *idx;
	int rc;

	*why = "fetching its header";
	rc = mfsd_fetch_into(r, e->object, fd, 0, sizeof(page), page);
	if (rc < 0)
		return rc;
	*why = mfs_last_error();
	rc = mfs_container_locate_index(page, sizeof(page), e->object, loc);
	if (rc < 0)
		return rc;
	*why = "its header does not match the index (size or checksum)";
	if (loc->file_size != e->size ||
	    loc->index_checksum != e->index_checksum)
		return -EBADMSG;
	idx = malloc(loc->index_length ? loc->index_length : 1);
	if (!idx)
		return -ENOMEM;
	*why = "fetching its index";
	rc = mfsd_fetch_into(r, e->object, fd, loc->index_offset,
			     loc->index_length, idx);
	free(idx);
	return rc;
}

/* Validates the new cache file @fd as a container (index checksum
 * included). */
static int mfsd_check_skeleton(int fd, const char *label, const char **why)
{
	mfs_container *c;
	int cfd = dup(fd), rc;

	if (cfd < 0)
		return -errno;
	rc = mfs_container_open_fd(&c, cfd, label);
	if (rc < 0) {
		*why = mfs_last_error();
		close(cfd);
		return rc;
	}
	mfs_container_close(c);
	return 0;
}

/*
 * Makes the cache file of model @e: a sparse file of the container's
 * size holding its header page and index, renamed into place once both
 * are checked.  Returns the listed object, or NULL with the reason
 * logged (the model is skipped until the index changes or a poll
 * retries it).
 */
static struct mfsd_robj *mfsd_materialize(struct mfsd_remote *r,
					  const struct mfsd_entry *e)
{
	char tmp[sizeof(MFSD_TMP_PREFIX) + MFSD_HEX64_LEN + 24];
	char *name = mfsd_object_file(e->index_checksum, e->size);
	mfs_index_location loc;
	struct mfsd_robj *o = NULL;
	const char *why = "out of memory";
	int fd = -1, rc = -ENOMEM;

	if (!name)
		goto fail;
	snprintf(tmp, sizeof(tmp), "%s%016" PRIx64 "-%d", MFSD_TMP_PREFIX,
		 e->index_checksum, (int)gettid());
	fd = openat(r->objects_fd, tmp, O_RDWR | O_CREAT | O_TRUNC |
						O_CLOEXEC | O_NOFOLLOW,
		    MFSD_FILE_MODE);
	why = "creating its cache file";
	if (fd < 0 || ftruncate(fd, (off_t)e->size) < 0) {
		rc = -errno;
		goto fail;
	}
	rc = mfsd_fetch_skeleton(r, e, fd, &loc, &why);
	if (rc == 0)
		rc = mfsd_check_skeleton(fd, e->object, &why);
	if (rc == 0 && renameat(r->objects_fd, tmp, r->objects_fd, name) < 0) {
		why = "renaming its cache file";
		rc = -errno;
	}
	if (rc < 0)
		goto fail;
	o = mfsd_robj_new(r, fd, name, e->size, e->index_checksum,
			  loc.index_offset);
	fd = -1;
	why = "out of memory";
	rc = -ENOMEM;
	if (!o)
		goto fail;
	snprintf(o->object, sizeof(o->object), "%s", e->object);
	o->listed = true;
	pthread_mutex_lock(&r->lock);
	rc = mfsd_list_obj(r, o); /* frees @o if it fails */
	pthread_mutex_unlock(&r->lock);
	if (rc < 0)
		goto fail;
	free(name);
	return o;
fail:
	mfsd_log(MFSD_LOG_ERR, "model %s (%s%s) skipped: %s: %s", e->key,
		 r->shown, e->object, why, strerror(-rc));
	if (fd >= 0) {
		close(fd);
		(void)unlinkat(r->objects_fd, tmp, 0);
	}
	free(name);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The index                                                           */
/* ------------------------------------------------------------------ */

/* True if @s is a safe relative object name: no "..", no empty or
 * hidden component, characters that need no escaping in a URL path. */
static bool mfsd_object_name_ok(const char *s)
{
	const char *comp = s;

	if (!*s || *s == '/')
		return false;
	for (const char *p = s;; p++) {
		char ch = *p;

		if (ch == '/' || ch == '\0') {
			if (p == comp || *comp == '.')
				return false;
			if (ch == '\0')
				return true;
			comp = p + 1;
			continue;
		}
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
		      ch == '_'))
			return false;
	}
}

/* Reads model @key's entry of the index into @e.  0 or -EBADMSG with
 * @why set. */
static int mfsd_parse_entry(const char *key, json_t *v,
			    struct mfsd_entry *e, const char **why)
{
	json_t *obj = json_object_get(v, "object");
	json_t *size = json_object_get(v, "size");
	json_t *sum = json_object_get(v, "index_checksum");
	const char *hex;
	char *end;

	*why = "its key is not valid";
	if (mfs_check_key(key) < 0)
		return -EBADMSG;
	*why = "\"object\" is not a safe relative name";
	if (!json_is_string(obj) || !mfsd_object_name_ok(json_string_value(obj)) ||
	    strlen(json_string_value(obj)) > MFSD_OBJECT_MAX)
		return -EBADMSG;
	*why = "\"size\" is not a size";
	if (!json_is_integer(size) || json_integer_value(size) <
					      (json_int_t)MFS_HEADER_PAGE_SIZE)
		return -EBADMSG;
	*why = "\"index_checksum\" is not 16 hex digits";
	hex = json_is_string(sum) ? json_string_value(sum) : "";
	if (strlen(hex) != MFSD_HEX64_LEN)
		return -EBADMSG;
	errno = 0;
	e->index_checksum = strtoull(hex, &end, 16);
	if (errno || *end || hex[0] == '-' || hex[0] == '+')
		return -EBADMSG;
	e->key = key;
	e->object = json_string_value(obj);
	e->size = (uint64_t)json_integer_value(size);
	return 0;
}

/* Parses index document @buf; returns its "models" object (a new
 * reference) or NULL with the reason logged. */
static json_t *mfsd_parse_index(const char *buf, size_t len,
				const char *where)
{
	json_error_t err;
	json_t *doc = json_loadb(buf, len, 0, &err), *models;
	json_t *fmt = json_object_get(doc, "format");
	json_t *ver = json_object_get(doc, "version");

	if (!doc) {
		mfsd_log(MFSD_LOG_ERR, "%s%s: not JSON: %s (line %d)", where,
			 MFS_INDEX_FILE, err.text, err.line);
		return NULL;
	}
	models = json_object_get(doc, "models");
	if (!json_is_string(fmt) ||
	    strcmp(json_string_value(fmt), MFS_INDEX_FORMAT) != 0 ||
	    !json_is_integer(ver) ||
	    json_integer_value(ver) != MFS_INDEX_VERSION ||
	    !json_is_object(models)) {
		mfsd_log(MFSD_LOG_ERR, "%s%s: not a %s document of version %d "
			 "(\"format\", \"version\", \"models\")", where,
			 MFS_INDEX_FILE, MFS_INDEX_FORMAT, MFS_INDEX_VERSION);
		json_decref(doc);
		return NULL;
	}
	json_incref(models);
	json_decref(doc);
	return models;
}

/* ------------------------------------------------------------------ */
/* The view directory                                                  */
/* ------------------------------------------------------------------ */

/* True if view entry @name is already a link to @o's file. */
static bool mfsd_view_is(struct mfsd_remote *r, const char *name,
			 const struct mfsd_robj *o)
{
	struct stat st;

	return fstatat(r->view_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       st.st_dev == o->dev && st.st_ino == o->ino;
}

/* Links @o's file as view entry KEY.mfs: a hidden link renamed over the
 * old entry, so that the watcher sees one replace. */
static int mfsd_view_link(struct mfsd_remote *r, const char *key,
			  const struct mfsd_robj *o)
{
	char *name = NULL, *tmp = NULL;
	int rc = -ENOMEM;

	if (asprintf(&name, "%s%s", key, MFS_CONTAINER_SUFFIX) < 0 ||
	    asprintf(&tmp, "%s%s", MFSD_TMP_PREFIX, name) < 0)
		goto out;
	rc = 0;
	if (mfsd_view_is(r, name, o))
		goto out;
	(void)unlinkat(r->view_fd, tmp, 0);
	if (linkat(r->objects_fd, o->file_name, r->view_fd, tmp, 0) < 0 ||
	    renameat(r->view_fd, tmp, r->view_fd, name) < 0) {
		rc = -errno;
		(void)unlinkat(r->view_fd, tmp, 0);
		mfsd_log(MFSD_LOG_ERR, "model %s: linking it into %s: %s", key,
			 r->view_path, strerror(-rc));
	}
out:
	free(name);
	free(tmp);
	return rc;
}

/* Removes view entries that @models does not list (and temporaries). */
static void mfsd_view_prune(struct mfsd_remote *r, json_t *models)
{
	int fd = dup(r->view_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	size_t suffix = strlen(MFS_CONTAINER_SUFFIX);
	struct dirent *e;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	/* The duplicate shares the offset the last listing left at the
	 * end. */
	rewinddir(d);
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		char key[NAME_MAX + 1];

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (e->d_name[0] == '.' || n <= suffix ||
		    strcmp(e->d_name + n - suffix, MFS_CONTAINER_SUFFIX) != 0) {
			(void)unlinkat(r->view_fd, e->d_name, 0);
			continue;
		}
		memcpy(key, e->d_name, n - suffix);
		key[n - suffix] = '\0';
		if (!json_object_get(models, key))
			(void)unlinkat(r->view_fd, e->d_name, 0);
	}
	closedir(d);
}

/* Removes view entry KEY.mfs: the key shows nothing until its current
 * content can be fetched (its holders keep what they hold). */
static void mfsd_view_unlink(struct mfsd_remote *r, const char *key)
{
	char *name;

	if (asprintf(&name, "%s%s", key, MFS_CONTAINER_SUFFIX) < 0)
		return;
	if (unlinkat(r->view_fd, name, 0) == 0)
		mfsd_log(MFSD_LOG_WARNING, "model %s hidden until its new "
			 "version can be fetched", key);
	free(name);
}

/* Marks every object as not named by the index (sync names them). */
static void mfsd_unlist_all(struct mfsd_remote *r)
{
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->nobjs; i++) {
		pthread_mutex_lock(&r->objs[i]->lock);
		r->objs[i]->listed = false;
		pthread_mutex_unlock(&r->objs[i]->lock);
	}
	pthread_mutex_unlock(&r->lock);
}

/* The listed object for @e, now named as @e names it; NULL if none. */
static struct mfsd_robj *mfsd_take_listed(struct mfsd_remote *r,
					  const struct mfsd_entry *e)
{
	struct mfsd_robj *o;

	pthread_mutex_lock(&r->lock);
	o = mfsd_find_obj(r, e->index_checksum, e->size);
	if (o) {
		/* The same content may move to another name (a rename, or
		 * content names): fetch from the one the index gives. */
		pthread_mutex_lock(&o->lock);
		snprintf(o->object, sizeof(o->object), "%s", e->object);
		o->listed = true;
		pthread_mutex_unlock(&o->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return o;
}

void mfsd_remote_gc(struct mfsd_remote *r)
{
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->nobjs;) {
		struct mfsd_robj *o = r->objs[i];
		bool dead;

		pthread_mutex_lock(&o->lock);
		dead = !o->listed && o->refs == 1;
		pthread_mutex_unlock(&o->lock);
		if (!dead) {
			i++;
			continue;
		}
		/* References are taken under r->lock: none can appear. */
		r->objs[i] = r->objs[--r->nobjs];
		mfsd_remote_uncount(r, mfsd_robj_disk_bytes(o->fd));
		(void)unlinkat(r->objects_fd, o->file_name, 0);
		mfsd_log(MFSD_LOG_DEBUG, "cache file %s removed: no index "
			 "names it and no process holds it", o->file_name);
		mfsd_robj_free(o);
	}
	pthread_mutex_unlock(&r->lock);
}

/*
 * Brings the view directory in line with @models: each model whose cache
 * file exists or (with @fetch) can be made is linked (replacing what its
 * key showed); a key whose content cannot be fetched now shows nothing;
 * keys no longer listed are removed.  With @fetch (the index is the
 * origin's), cache files nothing names or holds any more are removed.
 * Fills @out.
 */
static void mfsd_sync_view(struct mfsd_remote *r, json_t *models, bool fetch,
			   struct mfsd_sync *out)
{
	const char *key;
	json_t *v;

	*out = (struct mfsd_sync){0};
	if (fetch)
		mfsd_unlist_all(r);
	json_object_foreach(models, key, v) {
		struct mfsd_entry e;
		struct mfsd_robj *o;
		const char *why;

		if (mfsd_parse_entry(key, v, &e, &why) < 0) {
			mfsd_log(MFSD_LOG_ERR, "%s%s: model \"%s\" skipped: %s",
				 r->shown, MFS_INDEX_FILE, key, why);
			continue;
		}
		o = mfsd_take_listed(r, &e);
		if (!o && fetch)
			o = mfsd_materialize(r, &e);
		if (!o && fetch) {
			out->failed++;
			mfsd_view_unlink(r, key);
			continue;
		}
		if (o && mfsd_view_link(r, key, o) == 0)
			out->served++;
		else if (o)
			out->failed++;
	}
	mfsd_view_prune(r, models);
	if (fetch)
		mfsd_remote_gc(r);
}

/* ------------------------------------------------------------------ */
/* Fetching the index                                                  */
/* ------------------------------------------------------------------ */

/* Writes @len bytes of @buf as file @name of the cache dir atomically. */
static void mfsd_save_file(struct mfsd_remote *r, const char *name,
			   const char *buf, size_t len)
{
	char tmp[NAME_MAX + 1];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s%s", MFSD_TMP_PREFIX, name);
	fd = openat(r->site_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    MFSD_FILE_MODE);
	if (fd < 0)
		return;
	if (mfs_pwrite_full(fd, buf, len, 0) < 0 || fsync(fd) < 0 ||
	    renameat(r->site_fd, tmp, r->site_fd, name) < 0)
		(void)unlinkat(r->site_fd, tmp, 0);
	close(fd);
}

/* Reads file @name of the cache dir (NUL-ended); NULL if absent. */
static char *mfsd_load_file(struct mfsd_remote *r, const char *name,
			    size_t *len)
{
	int fd = openat(r->site_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	char *buf = NULL;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size <= MFSD_INDEX_MAX) {
		buf = malloc((size_t)st.st_size + 1);
		if (buf && mfs_pread_full(fd, buf, (size_t)st.st_size, 0) < 0) {
			free(buf);
			buf = NULL;
		}
		if (buf) {
			buf[st.st_size] = '\0';
			*len = (size_t)st.st_size;
		}
	}
	close(fd);
	return buf;
}

/* An index was applied (@from_cache: the one cached): says so in
 * .status and has the prefetcher go over the models again. */
static void mfsd_index_applied(struct mfsd_remote *r, bool from_cache)
{
	r->from_cache = from_cache;
	pthread_mutex_lock(&r->lock);
	r->prefetch_gen++;
	pthread_cond_broadcast(&r->wake);
	pthread_mutex_unlock(&r->lock);
}

/*
 * Fetches the index if it changed (If-None-Match) and applies it.
 * Returns 1 if applied, 0 if unchanged, or a negative errno (logged).
 */
static int mfsd_poll_index(struct mfsd_remote *r)
{
	struct mfsd_http_body b = {0};
	struct mfsd_sync sync;
	json_t *models;
	int rc = mfsd_http_get_object(r->http, MFS_INDEX_FILE, r->etag,
				      MFSD_INDEX_MAX, &b);

	atomic_fetch_add(&r->stats.index_polls, 1);
	if (rc < 0) {
		atomic_fetch_add(&r->stats.index_errors, 1);
		return rc;
	}
	/* The origin answers: fetches need not fail at once any more. */
	atomic_store(&r->down_until, 0);
	if (rc == 1)
		return 0;
	models = mfsd_parse_index(b.data, b.len, r->shown);
	if (!models) {
		atomic_fetch_add(&r->stats.index_errors, 1);
		mfsd_http_body_free(&b);
		return -EBADMSG;
	}
	mfsd_sync_view(r, models, true, &sync);
	mfsd_save_file(r, MFS_INDEX_FILE, b.data, b.len);
	free(r->etag);
	/* A model that could not be fetched now is tried again at the next
	 * poll: without an ETag that poll fetches the index whole. */
	r->etag = sync.failed ? NULL : b.etag;
	if (!sync.failed)
		b.etag = NULL;
	mfsd_http_body_free(&b);
	mfsd_log(MFSD_LOG_INFO, "%s%s: %zu of %zu models served%s", r->shown,
		 MFS_INDEX_FILE, sync.served, json_object_size(models),
		 sync.failed ? "; the others are tried again at the next "
			       "poll" : "");
	json_decref(models);
	mfsd_index_applied(r, false);
	return 1;
}

/* The origin cannot be reached at start: serves the last index cached,
 * with the models whose cache files exist. */
static int mfsd_index_from_cache(struct mfsd_remote *r, int why)
{
	size_t len = 0;
	char *buf = mfsd_load_file(r, MFS_INDEX_FILE, &len);
	struct mfsd_sync sync;
	json_t *models = buf ? mfsd_parse_index(buf, len, r->site_path)
			     : NULL;

	free(buf);
	if (!models) {
		mfsd_log(MFSD_LOG_WARNING, "origin %s unreachable (%s) and no "
			 "index cached in %s: the mount starts empty and "
			 "polls the origin", r->shown, strerror(-why),
			 r->site_path);
		models = json_object();
		if (!models)
			return -ENOMEM;
	}
	mfsd_sync_view(r, models, false, &sync);
	mfsd_log(MFSD_LOG_WARNING, "origin %s unreachable (%s): serving the "
		 "%zu models of the index cached in %s", r->shown,
		 strerror(-why), sync.served, r->site_path);
	/* No ETag: the first poll that reaches the origin applies its
	 * index whatever it is. */
	json_decref(models);
	mfsd_index_applied(r, true);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Threads                                                             */
/* ------------------------------------------------------------------ */

/* Waits @s seconds or until woken for @what; false once stopping. */
static bool mfsd_nap(struct mfsd_remote *r, unsigned s, uint64_t *gen)
{
	struct timespec until;
	bool go;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += s;
	pthread_mutex_lock(&r->lock);
	while (!r->stopping && (!gen || *gen == r->prefetch_gen))
		if (pthread_cond_timedwait(&r->wake, &r->lock, &until) ==
		    ETIMEDOUT)
			break;
	go = !r->stopping;
	if (gen)
		*gen = r->prefetch_gen;
	pthread_mutex_unlock(&r->lock);
	return go;
}

/* The poller: the index every opt.poll_s seconds. */
static void *mfsd_poller_main(void *arg)
{
	struct mfsd_remote *r = arg;
	int last = 0;

	while (mfsd_nap(r, r->opt.poll_s, NULL)) {
		int rc = mfsd_poll_index(r);

		if (rc < 0 && last >= 0)
			mfsd_log(MFSD_LOG_WARNING, "%s%s: %s; cached models "
				 "keep serving, polling goes on", r->shown,
				 MFS_INDEX_FILE, strerror(-rc));
		else if (rc >= 0 && last < 0)
			mfsd_log(MFSD_LOG_INFO, "%s reachable again", r->shown);
		last = rc;
	}
	return NULL;
}

/* The prefetcher: every chunk of every listed object, again after each
 * index change. */
static void *mfsd_prefetcher_main(void *arg)
{
	struct mfsd_remote *r = arg;
	uint64_t gen = 0;

	do {
		for (size_t i = 0;; i++) {
			struct mfsd_robj *o = NULL;

			pthread_mutex_lock(&r->lock);
			if (i < r->nobjs && !r->stopping) {
				o = r->objs[i];
				pthread_mutex_lock(&o->lock);
				if (o->listed)
					o->refs++;
				else
					o = NULL; /* an old version */
				pthread_mutex_unlock(&r->objs[i]->lock);
			}
			if (i >= r->nobjs || r->stopping) {
				pthread_mutex_unlock(&r->lock);
				break;
			}
			pthread_mutex_unlock(&r->lock);
			if (!o)
				continue;
			(void)mfsd_robj_fetch_all(o);
			mfsd_remote_detach(o);
		}
	} while (mfsd_nap(r, UINT16_MAX, &gen));
	return NULL;
}

/* Sets @r stopping and cancels its fetches. */
static void mfsd_remote_halt(struct mfsd_remote *r)
{
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	pthread_cond_broadcast(&r->wake);
	pthread_cond_broadcast(&r->ra_wake);
	pthread_mutex_unlock(&r->lock);
	if (r->http)
		mfsd_http_cancel(r->http);
}

/* The watcher: halts @r once the daemon is stopping. */
static void *mfsd_watcher_main(void *arg)
{
	struct mfsd_remote *r = arg;
	const struct timespec tick = {0, MFSD_WATCH_TICK_NS};
	bool stop = false;

	while (!stop) {
		nanosleep(&tick, NULL);
		pthread_mutex_lock(&r->lock);
		stop = r->stopping;
		pthread_mutex_unlock(&r->lock);
		if (!stop && r->exited(r->exited_arg)) {
			mfsd_remote_halt(r);
			stop = true;
		}
	}
	return NULL;
}

void mfsd_remote_start(struct mfsd_remote *r, mfsd_exited_fn exited,
		       void *arg)
{
	int rc;

	r->exited = exited;
	r->exited_arg = arg;
	if (exited) {
		rc = pthread_create(&r->watcher, NULL, mfsd_watcher_main, r);
		r->watching = rc == 0;
		if (rc)
			mfsd_log(MFSD_LOG_WARNING, "cannot start the stop "
				 "watcher: %s (stopping waits for fetches)",
				 strerror(rc));
	}
	for (unsigned i = 0; i < MFSD_RA_THREADS; i++) {
		rc = pthread_create(&r->ra_threads[r->nra_threads], NULL,
				    mfsd_readahead_main, r);
		if (rc) {
			mfsd_log(MFSD_LOG_WARNING, "cannot start a readahead "
				 "thread: %s", strerror(rc));
			break;
		}
		pthread_mutex_lock(&r->lock);
		r->nra_threads++;
		pthread_mutex_unlock(&r->lock);
	}
	if (r->opt.poll_s) {
		rc = pthread_create(&r->poller, NULL, mfsd_poller_main, r);
		r->polling = rc == 0;
		if (rc)
			mfsd_log(MFSD_LOG_ERR, "cannot start the index poller: "
				 "%s", strerror(rc));
	}
	if (r->opt.prefetch) {
		rc = pthread_create(&r->prefetcher, NULL, mfsd_prefetcher_main,
				    r);
		r->prefetching = rc == 0;
		if (rc)
			mfsd_log(MFSD_LOG_ERR, "cannot start the prefetcher: "
				 "%s", strerror(rc));
	}
}

void mfsd_remote_stop(struct mfsd_remote *r)
{
	if (!r)
		return;
	mfsd_remote_halt(r);
	if (r->watching)
		pthread_join(r->watcher, NULL);
	r->watching = false;
	if (r->polling)
		pthread_join(r->poller, NULL);
	if (r->prefetching)
		pthread_join(r->prefetcher, NULL);
	r->polling = r->prefetching = false;
	for (unsigned i = 0; i < r->nra_threads; i++)
		pthread_join(r->ra_threads[i], NULL);
	r->nra_threads = 0;
	mfsd_readahead_drop(r);
}

/* ------------------------------------------------------------------ */
/* Open and close                                                      */
/* ------------------------------------------------------------------ */

/* @path made absolute against the working directory (the daemon changes
 * to / when it detaches, and the view's path is shown). */
static char *mfsd_absolute(const char *path)
{
	char cwd[PATH_MAX], *s;

	if (path[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		return strdup(path);
	if (asprintf(&s, "%s/%s", cwd, path) < 0)
		return NULL;
	return s;
}

/* @url as logs and .status show it: without a user and password. */
static char *mfsd_url_shown(const char *url)
{
	const char *host = strstr(url, "://");
	const char *at, *slash;
	char *s;

	if (!host)
		return strdup(url);
	host += strlen("://");
	at = strchr(host, '@');
	slash = strchr(host, '/');
	if (!at || (slash && slash < at))
		return strdup(url);
	if (asprintf(&s, "%.*s%s", (int)(host - url), url, at + 1) < 0)
		return NULL;
	return s;
}

/* Copies @o's strings into @r. */
static int mfsd_copy_options(struct mfsd_remote *r,
			     const struct mfsd_remote_options *o)
{
	r->opt = *o;
	r->url = strdup(o->url);
	r->shown = mfsd_url_shown(o->url);
	r->cache_dir = mfsd_absolute(o->cache_dir ? o->cache_dir
						  : MFSD_REMOTE_CACHE_DIR);
	if (!r->url || !r->shown || !r->cache_dir)
		return -ENOMEM;
	r->opt.url = r->url;
	r->opt.cache_dir = r->cache_dir;
	return 0;
}

/* The fetcher for @r's origin. */
static int mfsd_open_http(struct mfsd_remote *r)
{
	struct mfsd_http_options h = {
		.base_url = r->url,
		.max_connections = r->opt.connections,
		.deadline_ms = r->opt.deadline_ms,
		.headers = r->opt.headers,
		.aws_sigv4 = r->opt.aws_sigv4,
	};

	return mfsd_http_open(&r->http, &h);
}

int mfsd_remote_open(struct mfsd_remote **out,
		     const struct mfsd_remote_options *o)
{
	struct mfsd_remote *r = calloc(1, sizeof(*r));
	int rc = -ENOMEM;

	if (!r)
		return -ENOMEM;
	r->site_fd = r->objects_fd = r->view_fd = -1;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->wake, NULL);
	pthread_cond_init(&r->ra_wake, NULL);
	rc = mfsd_copy_options(r, o);
	if (rc == 0)
		rc = mfsd_open_http(r);
	if (rc == 0)
		rc = mfsd_cache_dirs(r);
	if (rc == 0)
		rc = mfsd_adopt_all(r);
	if (rc == 0)
		mfsd_set_ra_cap(r);
	if (rc < 0)
		goto fail;
	/* No ETag at start: the view may be behind the index cached (a
	 * crash between the two), so the index is fetched whole. */
	rc = mfsd_poll_index(r);
	if (rc == -ENOENT || rc == -EACCES || rc == -EBADMSG) {
		mfsd_log(MFSD_LOG_ERR, "%s%s: %s", r->shown, MFS_INDEX_FILE,
			 rc == -ENOENT ? "not found at the origin (publish "
					 "one with modelctl index)"
				       : strerror(-rc));
		goto fail;
	}
	rc = rc < 0 ? mfsd_index_from_cache(r, rc) : 0;
	if (rc < 0)
		goto fail;
	*out = r;
	return 0;
fail:
	mfsd_remote_close(r);
	return rc;
}

const char *mfsd_remote_store_dir(const struct mfsd_remote *r)
{
	return r->view_path;
}

void mfsd_remote_close(struct mfsd_remote *r)
{
	if (!r)
		return;
	mfsd_remote_stop(r);
	for (size_t i = 0; i < r->nobjs; i++)
		mfsd_robj_free(r->objs[i]);
	free(r->objs);
	if (r->http)
		mfsd_http_close(r->http);
	free(r->etag);
	if (r->view_fd >= 0)
		close(r->view_fd);
	if (r->objects_fd >= 0)
		close(r->objects_fd);
	if (r->site_fd >= 0)
		close(r->site_fd);
	pthread_cond_destroy(&r->ra_wake);
	pthread_cond_destroy(&r->wake);
	pthread_mutex_destroy(&r->lock);
	free(r->view_path);
	free(r->site_path);
	free(r->cache_dir);
	free(r->shown);
	free(r->url);
	free(r);
}

/* ------------------------------------------------------------------ */
/* .status                                                             */
/* ------------------------------------------------------------------ */

int mfsd_remote_status(struct mfsd_remote *r, json_t *st)
{
	const struct mfsd_http_stats *h = mfsd_http_stats(r->http);
	json_t *o = json_pack(
		"{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
		"s:I, s:I, s:I}",
		"url", r->shown, "cache_dir", r->site_path,
		"index_from_cache", r->from_cache,
		"bytes_fetched", (json_int_t)atomic_load(&h->bytes_fetched),
		"requests", (json_int_t)atomic_load(&h->requests),
		"retries", (json_int_t)atomic_load(&h->retries),
		"origin_errors", (json_int_t)atomic_load(&h->errors),
		"cache_hits", (json_int_t)atomic_load(&r->stats.cache_hits),
		"cache_misses",
		(json_int_t)atomic_load(&r->stats.cache_misses),
		"bad_chunks", (json_int_t)atomic_load(&r->stats.bad_chunks),
		"fetch_errors",
		(json_int_t)atomic_load(&r->stats.fetch_errors),
		"cache_disk_bytes", (json_int_t)atomic_load(&r->cache_bytes),
		"cache_disk_limit", (json_int_t)r->opt.cache_size,
		"evicted_bytes", (json_int_t)atomic_load(&r->stats.evicted),
		"index_polls", (json_int_t)atomic_load(&r->stats.index_polls),
		"index_errors",
		(json_int_t)atomic_load(&r->stats.index_errors));

	if (!o || json_object_set_new(st, MFS_ST_REMOTE, o) < 0)
		return -ENOMEM;
	return 0;
}
