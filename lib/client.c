/*
 * client.c - clients (opened from a spec string) and shared models: the
 * arrays of a model mapped from a mount's .npy files, mapped from (or
 * decoded out of) a store directory's container, or borrowed from an
 * in-process store's builder.  With MODELFS_DEBUG=1 a released model's
 * mappings become PROT_NONE guard regions.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "builder_internal.h"
#include "client_internal.h"
#include "mount_internal.h"
#include "sharing_internal.h"
#include "store_internal.h"

/* Spec prefixes (modelfs.h documents the syntax). */
#define MFS_HEX_BASE 16
#define MFS_HEX_PREFIX "0x"
#define MFS_DEC_BASE 10
/* Files of a model on a mount and of a model in a store directory. */
/* Largest manifest read: chunk checksums of a full 1 GiB index. */
#define MFS_MAX_MANIFEST (1ull << 30)
/* First read size of a file whose size stat does not tell. */
#define MFS_READ_INITIAL 4096u
/* The switch of the guard regions. */
#define MFS_ENV_DEBUG "MODELFS_DEBUG"

enum mfs_client_kind {
	MFS_CLIENT_DIR,
	MFS_CLIENT_MOUNT,
	MFS_CLIENT_INPROC,
};

/* Immutable after mfs_client_open: any thread may use it. */
struct mfs_client {
	enum mfs_client_kind kind;
	char *path;      /* store directory or mount point; NULL in-process */
	mfs_store *store; /* in-process: one client reference */
};

/* One array of a model; the region to unmap or guard at release. */
struct mfs_marray {
	mfs_array_view view; /* view.name is name */
	char *name;          /* owned */
	void *map;           /* mapping start, or NULL */
	size_t map_len;
};

/* Immutable between mfs_get_model and mfs_model_release. */
struct mfs_model {
	char *key;
	char *metadata; /* owned, NUL-terminated */
	size_t metadata_len;
	struct mfs_marray *arrays;
	size_t count;
	size_t *by_name;      /* array indices sorted by name */
	mfs_builder *builder; /* in-process: one reference, else NULL */
	bool guard;           /* MODELFS_DEBUG=1 when got */
};

/* Open clients and live models (closing or releasing twice: -EINVAL). */
static struct mfs_live_set mfs_live_clients = MFS_LIVE_SET_INIT;
static struct mfs_live_set mfs_live_models = MFS_LIVE_SET_INIT;

/* "@a/@b" into @buf (PATH_MAX bytes): 0 or -ENAMETOOLONG. */
static int mfs_join(char *buf, const char *a, const char *b)
{
	int n = snprintf(buf, PATH_MAX, "%s/%s", a, b);

	if (n < 0 || n >= PATH_MAX)
		/* The bound first: a long directory fills the message. */
		return mfs_fail(-ENAMETOOLONG, "path of '%s' is longer than %d "
				"bytes in '%s'", b, PATH_MAX - 1, a);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Clients                                                             */
/* ------------------------------------------------------------------ */

/* A client on @path: a mount if @want_mount, a directory if not, and
 * whichever @path is if @any. */
static int mfs_client_path(struct mfs_client *cl, const char *spec,
			   const char *path, bool want_mount, bool any)
{
	enum mfs_mount_state state = mfs_mount_probe(path);
	char what[PATH_MAX + sizeof("client spec '': ")];
	struct stat st;

	if (!*path)
		return mfs_fail(-EINVAL, "client spec '%s': empty path", spec);
	if (state == MFS_MOUNT_DEAD) {
		snprintf(what, sizeof(what), "client spec '%s': ", spec);
		return mfs_fail_dead_mount(what, path);
	}
	if (any)
		want_mount = state == MFS_MOUNT_LIVE;
	if (want_mount && state != MFS_MOUNT_LIVE)
		return mfs_fail(-ENODEV, "client spec '%s': '%s' is not served "
				"by a modelfs daemon", spec, path);
	if (stat(path, &st) < 0)
		return mfs_fail(-errno, "client spec '%s': '%s': %s", spec, path,
				strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return mfs_fail(-ENOTDIR, "client spec '%s': '%s' is not a "
				"directory", spec, path);
	cl->kind = want_mount ? MFS_CLIENT_MOUNT : MFS_CLIENT_DIR;
	cl->path = strdup(path);
	return cl->path ? 0 : mfs_fail(-ENOMEM, "client: out of memory");
}

/* "inproc:0xADDR:PID": attaches to the store if this is process PID. */
static int mfs_client_inproc(struct mfs_client *cl, const char *spec,
			     const char *rest)
{
	char *end;
	uintptr_t addr;
	long pid;

	errno = 0;
	addr = (uintptr_t)strtoull(rest, &end, MFS_HEX_BASE);
	if (errno || end == rest || *end != ':' ||
	    strncmp(rest, MFS_HEX_PREFIX, strlen(MFS_HEX_PREFIX)) != 0)
		return mfs_fail(-EINVAL, "client spec '%s': expected "
				MFS_SPEC_INPROC "0xADDR:PID", spec);
	rest = end + 1;
	pid = strtol(rest, &end, MFS_DEC_BASE);
	if (errno || end == rest || *end || pid <= 0)
		return mfs_fail(-EINVAL, "client spec '%s': expected "
				MFS_SPEC_INPROC "0xADDR:PID", spec);
	if (pid != (long)getpid())
		return mfs_fail(-EXDEV, "client spec '%s': an in-process store "
				"of pid %ld cannot be used in pid %ld; use a "
				"mount or directory store to share with other "
				"processes", spec, pid, (long)getpid());
	cl->kind = MFS_CLIENT_INPROC;
	return mfs_inproc_attach(addr, &cl->store);
}

static int mfs_client_parse(struct mfs_client *cl, const char *spec)
{
	size_t lm = strlen(MFS_SPEC_MOUNT), ld = strlen(MFS_SPEC_DIR);
	size_t li = strlen(MFS_SPEC_INPROC);

	if (strncmp(spec, MFS_SPEC_MOUNT, lm) == 0)
		return mfs_client_path(cl, spec, spec + lm, true, false);
	if (strncmp(spec, MFS_SPEC_DIR, ld) == 0)
		return mfs_client_path(cl, spec, spec + ld, false, false);
	if (strncmp(spec, MFS_SPEC_INPROC, li) == 0)
		return mfs_client_inproc(cl, spec, spec + li);
	if (spec[0] == '/')
		return mfs_client_path(cl, spec, spec, false, true);
	return mfs_fail(-EINVAL, "client spec '%s': expected " MFS_SPEC_MOUNT
			"PATH, " MFS_SPEC_DIR "PATH, " MFS_SPEC_INPROC
			"0xADDR:PID or an absolute path", spec);
}

static void mfs_client_free(struct mfs_client *cl)
{
	if (cl->store)
		mfs_inproc_detach(cl->store);
	free(cl->path);
	free(cl);
}

/* Registers @cl (parsed with outcome @rc) or frees it. */
static int mfs_client_finish(struct mfs_client *cl, int rc, mfs_client **out)
{
	if (rc == 0 && mfs_live_add(&mfs_live_clients, cl) < 0)
		rc = mfs_fail(-ENOMEM, "client: out of memory");
	if (rc < 0) {
		mfs_client_free(cl);
		return rc;
	}
	*out = cl;
	return 0;
}

int mfs_client_open(mfs_client **out, const char *spec)
{
	struct mfs_client *cl;

	mfs_clear_error();
	if (!out || !spec)
		return mfs_fail(-EINVAL, "mfs_client_open: NULL argument");
	cl = calloc(1, sizeof(*cl));
	if (!cl)
		return mfs_fail(-ENOMEM, "client: out of memory");
	return mfs_client_finish(cl, mfs_client_parse(cl, spec), out);
}

int mfs_client_open_layout(mfs_client **out, const char *dir)
{
	struct mfs_client *cl = calloc(1, sizeof(*cl));
	int rc;

	if (!cl)
		return mfs_fail(-ENOMEM, "client: out of memory");
	rc = mfs_client_path(cl, dir, dir, false, false);
	cl->kind = MFS_CLIENT_MOUNT;
	return mfs_client_finish(cl, rc, out);
}

int mfs_client_close(mfs_client *c)
{
	mfs_clear_error();
	if (!mfs_live_remove(&mfs_live_clients, c))
		return mfs_fail(-EINVAL, "mfs_client_close: client %p is not "
				"open (closed twice?)", (void *)c);
	mfs_client_free(c);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Models: common parts                                                */
/* ------------------------------------------------------------------ */

static bool mfs_debug_guard(void)
{
	const char *v = getenv(MFS_ENV_DEBUG);

	return v && *v && strcmp(v, "0") != 0;
}

/* Unmaps @a's region, or covers it with an inaccessible guard region. */
static void mfs_unmap_array(const struct mfs_marray *a, bool guard)
{
	void *p;

	if (!a->map)
		return;
	if (guard) {
		/* MAP_FIXED replaces the mapping in one step, so no other
		 * mapping can take the range in between. */
		p = mmap(a->map, a->map_len, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
			 -1, 0);
		if (p != MAP_FAILED)
			return;
	}
	munmap(a->map, a->map_len);
}

static void mfs_model_free(struct mfs_model *m)
{
	for (size_t i = 0; i < m->count; i++) {
		mfs_unmap_array(&m->arrays[i], m->guard);
		free(m->arrays[i].name);
	}
	mfs_builder_unref(m->builder);
	free(m->arrays);
	free(m->by_name);
	free(m->metadata);
	free(m->key);
	free(m);
}

/* Frees a model that was never handed out: nothing to guard. */
static void mfs_model_discard(struct mfs_model *m)
{
	m->guard = false;
	mfs_model_free(m);
}

/* A model for @count arrays with key and metadata copied. */
static struct mfs_model *mfs_model_alloc(const char *key, size_t count,
					 const char *meta, size_t meta_len)
{
	struct mfs_model *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->guard = mfs_debug_guard();
	m->key = strdup(key);
	m->arrays = calloc(count ? count : 1, sizeof(*m->arrays));
	m->by_name = calloc(count ? count : 1, sizeof(*m->by_name));
	m->metadata = meta ? malloc(meta_len + 1) : NULL;
	if (!m->key || !m->arrays || !m->by_name || (meta && !m->metadata)) {
		mfs_model_discard(m);
		return NULL;
	}
	if (meta) {
		memcpy(m->metadata, meta, meta_len);
		m->metadata[meta_len] = '\0';
		m->metadata_len = meta_len;
	}
	return m;
}

/* Fills array @i's description (not its data) and names it. */
static int mfs_model_set(struct mfs_model *m, size_t i, const char *name,
			 mfs_dtype dtype, uint32_t ndim, const uint64_t *shape,
			 mfs_order order, uint64_t nbytes)
{
	struct mfs_marray *a = &m->arrays[i];

	a->name = strdup(name);
	if (!a->name)
		return -ENOMEM;
	m->count = i + 1;
	a->view.name = a->name;
	a->view.dtype = dtype;
	a->view.ndim = ndim;
	memcpy(a->view.shape, shape, ndim * sizeof(*shape));
	a->view.order = order;
	a->view.nbytes = (size_t)nbytes;
	return 0;
}

/* For qsort_r: orders array indices by name. */
static int mfs_cmp_index(const void *x, const void *y, void *ctx)
{
	const struct mfs_model *m = ctx;

	return strcmp(m->arrays[*(const size_t *)x].name,
		      m->arrays[*(const size_t *)y].name);
}

/* Completes @m: name index, live registration; frees it on failure. */
static int mfs_model_finish(struct mfs_model *m, mfs_model **out)
{
	for (size_t i = 0; i < m->count; i++)
		m->by_name[i] = i;
	qsort_r(m->by_name, m->count, sizeof(*m->by_name), mfs_cmp_index, m);
	if (mfs_live_add(&mfs_live_models, m) < 0) {
		mfs_fail(-ENOMEM, "model '%s': out of memory", m->key);
		mfs_model_discard(m);
		return -ENOMEM;
	}
	*out = m;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Models of a directory store                                         */
/* ------------------------------------------------------------------ */

/* Decodes LZ4 array @i into private memory made read-only afterwards. */
static int mfs_decode_array(const mfs_container *c, size_t i,
			    struct mfs_marray *a)
{
	size_t len = a->view.nbytes;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ssize_t n;

	if (p == MAP_FAILED)
		return mfs_fail(-errno, "%s: array '%s': mmap of %zu bytes: %s",
				mfs_container_label(c), a->name, len,
				strerror(errno));
	a->map = p;
	a->map_len = len;
	n = mfs_container_read(c, i, 0, p, len);
	if (n < 0)
		return (int)n;
	if ((size_t)n != len)
		return mfs_fail(-EIO, "%s: array '%s': decoded %zd of %zu bytes",
				mfs_container_label(c), a->name, n, len);
	if (mprotect(p, len, PROT_READ) < 0)
		return mfs_fail(-errno, "%s: array '%s': mprotect: %s",
				mfs_container_label(c), a->name,
				strerror(errno));
	return 0;
}

/* Maps (raw) or decodes (LZ4) every array of @c into @m. */
static int mfs_dir_arrays(const mfs_container *c, struct mfs_model *m)
{
	mfs_array_info ai;
	const void *data;
	size_t len;
	int rc;

	for (size_t i = 0; i < mfs_container_array_count(c); i++) {
		mfs_container_array(c, i, &ai);
		if (mfs_model_set(m, i, ai.name, ai.dtype, ai.ndim, ai.shape,
				  ai.order, ai.raw_length) < 0)
			return mfs_fail(-ENOMEM, "%s: out of memory",
					mfs_container_label(c));
		if (ai.raw_length == 0)
			continue;
		if (ai.codec == MFS_CODEC_LZ4) {
			rc = mfs_decode_array(c, i, &m->arrays[i]);
		} else {
			rc = mfs_container_map(c, i, MFS_MAP_VERIFY, &data,
					       &len);
			m->arrays[i].map = rc == 0 ? (void *)data : NULL;
			m->arrays[i].map_len = len;
		}
		if (rc < 0)
			return rc;
		m->arrays[i].view.data = m->arrays[i].map;
	}
	return 0;
}

/* Gets the container open at @fd (taken over; @path names it) as model
 * @key: raw arrays mapped with their chunks checked, LZ4 arrays decoded. */
static int mfs_container_model(int fd, const char *path, const char *key,
			       mfs_model **out)
{
	struct mfs_model *m;
	mfs_container *c;
	const char *meta;
	size_t meta_len;
	int rc;

	rc = mfs_container_open_fd(&c, fd, path);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	meta = mfs_container_metadata(c, &meta_len);
	m = mfs_model_alloc(key, mfs_container_array_count(c), meta, meta_len);
	rc = m ? mfs_dir_arrays(c, m) : mfs_fail(-ENOMEM, "%s: out of memory",
						 path);
	mfs_container_close(c); /* the mappings stay */
	if (rc < 0) {
		if (m)
			mfs_model_discard(m);
		return rc;
	}
	return mfs_model_finish(m, out);
}

static int mfs_get_dir(const struct mfs_client *cl, const char *key,
		       mfs_model **out)
{
	char path[PATH_MAX];
	char file[MFS_MAX_KEY_LEN + sizeof(MFS_CONTAINER_SUFFIX)];
	int fd, rc;

	snprintf(file, sizeof(file), "%s" MFS_CONTAINER_SUFFIX, key);
	rc = mfs_join(path, cl->path, file);
	if (rc < 0)
		return rc;
	/* A store entry: only a regular file is a container (as the daemon
	 * serves it), never followed through a link. */
	fd = mfs_open_regular(AT_FDCWD, path, MFS_OPEN_NOFOLLOW, NULL);
	if (fd == -ENOENT)
		return mfs_fail(-ENOENT, "no model '%s' in store '%s'", key,
				cl->path);
	if (fd < 0)
		return fd;
	return mfs_container_model(fd, path, key, out);
}

/* ------------------------------------------------------------------ */
/* Models of a mount                                                   */
/* ------------------------------------------------------------------ */

/* Reads file @name of directory @dfd (@path names it in messages), at
 * most @max bytes, into a malloc'd NUL-terminated buffer.  Files of a
 * mount may not know their size, so read to EOF. */
static int mfs_read_file(int dfd, const char *name, const char *path,
			 uint64_t max, char **out, size_t *len)
{
	int fd = mfs_open_regular(dfd, name, MFS_OPEN_NOFOLLOW, path), rc = 0;
	size_t cap = 0, used = 0, first = MFS_READ_INITIAL;
	char *buf = NULL, *p;
	struct stat st;
	ssize_t n;

	if (fd < 0)
		return fd;
	if (fstat(fd, &st) == 0 && st.st_size > 0 && (uint64_t)st.st_size <= max)
		first = (size_t)st.st_size + 1;
	for (;;) {
		if (used > max) {
			rc = mfs_fail(-EBADMSG, "%s: larger than %llu bytes",
				      path, (unsigned long long)max);
			break;
		}
		if (used + 1 >= cap) { /* room for a byte and the NUL */
			p = realloc(buf, cap ? 2 * cap : first);
			if (!p) {
				rc = mfs_fail(-ENOMEM, "%s: out of memory", path);
				break;
			}
			buf = p;
			cap = cap ? 2 * cap : first;
		}
		n = read(fd, buf + used, cap - 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = mfs_fail(-errno, "%s: read: %s", path,
				      strerror(errno));
		if (n <= 0)
			break;
		used += (size_t)n;
	}
	close(fd);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	buf[used] = '\0';
	*out = buf;
	*len = used;
	return 0;
}

/* The manifest's description of array @i, checked for what we use. */
struct mfs_manifest_entry {
	const char *name;
	const char *file;
	mfs_dtype dtype;
	uint32_t ndim;
	uint64_t shape[MFS_MAX_NDIM];
	mfs_order order;
};

static int mfs_manifest_shape(json_t *shape, struct mfs_manifest_entry *e)
{
	size_t n = json_array_size(shape);

	if (!json_is_array(shape) || n > MFS_MAX_NDIM)
		return -1;
	e->ndim = (uint32_t)n;
	for (size_t d = 0; d < n; d++) {
		json_t *v = json_array_get(shape, d);
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			return -1;
		e->shape[d] = (uint64_t)json_integer_value(v);
	}
	return 0;
}

static int mfs_manifest_entry(const char *label, json_t *a, size_t i,
			      struct mfs_manifest_entry *e)
{
	const char *order = json_string_value(json_object_get(a, "order"));
	const char *dtype = json_string_value(json_object_get(a, "dtype"));
	char want[MFS_MAX_NAME_LEN + sizeof(MFS_NPY_SUFFIX)];

	e->name = json_string_value(json_object_get(a, "name"));
	e->file = json_string_value(json_object_get(a, "file"));
	if (!e->name || mfs_check_array_name(e->name) < 0)
		return mfs_fail(-EBADMSG, "%s: arrays[%zu].name is missing or "
				"not a valid array name", label, i);
	snprintf(want, sizeof(want), "%s" MFS_NPY_SUFFIX, e->name);
	if (!e->file || strcmp(e->file, want) != 0)
		return mfs_fail(-EBADMSG, "%s: arrays[%zu].file is not '%s'",
				label, i, want);
	if (!dtype || mfs_dtype_from_name(dtype, &e->dtype) < 0)
		return mfs_fail(-EBADMSG, "%s: arrays[%zu].dtype is missing or "
				"unknown", label, i);
	if (!order || (strcmp(order, "C") && strcmp(order, "F")))
		return mfs_fail(-EBADMSG, "%s: arrays[%zu].order is not \"C\" "
				"or \"F\"", label, i);
	e->order = order[0] == 'F' ? MFS_ORDER_F : MFS_ORDER_C;
	if (mfs_manifest_shape(json_object_get(a, "shape"), e) < 0)
		return mfs_fail(-EBADMSG, "%s: arrays[%zu].shape is not a list "
				"of at most %u non-negative integers", label,
				i, MFS_MAX_NDIM);
	return 0;
}

/* Checks that the .npy header agrees with the manifest. */
static int mfs_npy_matches(const char *label, const mfs_npy_info *info,
			   const struct mfs_manifest_entry *e)
{
	bool same = info->ndim == e->ndim && info->order == e->order &&
		    mfs_dtype_size(info->dtype) == mfs_dtype_size(e->dtype) &&
		    memcmp(info->shape, e->shape,
			   e->ndim * sizeof(*e->shape)) == 0;

	if (!same)
		return mfs_fail(-EBADMSG, "%s: the NPY header (dtype %s, ndim "
				"%u, order %c) disagrees with the manifest "
				"(dtype %s, ndim %u, order %c)", label,
				mfs_dtype_name(info->dtype), info->ndim,
				info->order == MFS_ORDER_F ? 'F' : 'C',
				mfs_dtype_name(e->dtype), e->ndim,
				e->order == MFS_ORDER_F ? 'F' : 'C');
	return 0;
}

/* Maps MOUNT/KEY/<array>.npy; data starts at its parsed header's end. */
static int mfs_map_npy(const char *kdir, int dfd,
		       const struct mfs_manifest_entry *e, struct mfs_marray *a)
{
	char path[PATH_MAX];
	mfs_npy_info info;
	size_t total;
	void *p;
	int fd, rc;

	rc = mfs_join(path, kdir, e->file);
	if (rc < 0)
		return rc;
	fd = mfs_open_regular(dfd, e->file, MFS_OPEN_NOFOLLOW, path);
	if (fd < 0)
		return fd;
	rc = mfs_npy_read_fd(fd, path, &info);
	if (rc == 0)
		rc = mfs_npy_matches(path, &info, e);
	if (rc < 0 || info.data_length == 0) {
		close(fd);
		return rc;
	}
	total = (size_t)(info.data_offset + info.data_length);
	/* The mapping keeps the file handle: the daemon sees us as a holder
	 * until it is unmapped. */
	p = mmap(NULL, total, PROT_READ, MAP_SHARED, fd, 0);
	rc = p == MAP_FAILED ? mfs_fail(-errno, "%s: mmap of %zu bytes: %s",
					path, total, strerror(errno))
			     : 0;
	close(fd);
	if (rc == 0) {
		a->map = p;
		a->map_len = total;
		a->view.data = (const uint8_t *)p + info.data_offset;
	}
	return rc;
}

/* Maps every array the manifest @doc lists. */
static int mfs_mount_arrays(const char *kdir, int dfd, const char *label,
			    json_t *doc, struct mfs_model *m)
{
	json_t *arrays = json_object_get(doc, "arrays");
	struct mfs_manifest_entry e;
	uint64_t nbytes;
	int rc;

	for (size_t i = 0; i < json_array_size(arrays); i++) {
		rc = mfs_manifest_entry(label, json_array_get(arrays, i), i, &e);
		if (rc < 0)
			return rc;
		if (!mfs_shape_bytes(e.dtype, e.ndim, e.shape, &nbytes) ||
		    nbytes > SIZE_MAX)
			return mfs_fail(-EBADMSG, "%s: arrays[%zu]: shape "
					"overflows", label, i);
		if (mfs_model_set(m, i, e.name, e.dtype, e.ndim, e.shape,
				  e.order, nbytes) < 0)
			return mfs_fail(-ENOMEM, "%s: out of memory", label);
		rc = mfs_map_npy(kdir, dfd, &e, &m->arrays[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Loads MOUNT/KEY/manifest.json as a JSON object with an "arrays" list. */
static int mfs_load_manifest(const char *kdir, int dfd, char *label,
			     json_t **doc)
{
	json_error_t jerr;
	char *text;
	size_t len;
	int rc;

	rc = mfs_join(label, kdir, MFS_MANIFEST_FILE);
	if (rc == 0)
		rc = mfs_read_file(dfd, MFS_MANIFEST_FILE, label,
				   MFS_MAX_MANIFEST, &text, &len);
	if (rc < 0)
		return rc;
	*doc = json_loadb(text, len, 0, &jerr);
	free(text);
	if (!*doc || !json_is_array(json_object_get(*doc, "arrays"))) {
		rc = mfs_fail(-EBADMSG, "%s: not a manifest (%s)", label,
			      *doc ? "no \"arrays\" list" : jerr.text);
		json_decref(*doc);
		*doc = NULL;
		return rc;
	}
	return 0;
}

/*
 * Gets the model directory open at @dfd (@kdir names it) as model @key.
 * Every file of the model is opened relative to @dfd: the daemon gives
 * each container version its own directory inode, so a replace between
 * two opens cannot mix files of two versions (path walks would follow the
 * key to the new version midway).
 */
static int mfs_mount_model(int dfd, const char *kdir, const char *key,
			   mfs_model **out)
{
	char manifest[PATH_MAX], meta_path[PATH_MAX];
	struct mfs_model *m = NULL;
	char *meta = NULL;
	json_t *doc = NULL;
	size_t meta_len;
	int rc;

	rc = mfs_join(meta_path, kdir, MFS_METADATA_FILE);
	if (rc == 0)
		rc = mfs_load_manifest(kdir, dfd, manifest, &doc);
	if (rc == 0)
		rc = mfs_read_file(dfd, MFS_METADATA_FILE, meta_path,
				   MFS_MAX_METADATA, &meta, &meta_len);
	if (rc == 0) {
		m = mfs_model_alloc(key, json_array_size(json_object_get(doc,
								"arrays")),
				    meta, meta_len);
		rc = m ? mfs_mount_arrays(kdir, dfd, manifest, doc, m)
		       : mfs_fail(-ENOMEM, "%s: out of memory", kdir);
	}
	free(meta);
	json_decref(doc);
	if (rc < 0) {
		if (m)
			mfs_model_discard(m);
		return rc;
	}
	return mfs_model_finish(m, out);
}

static int mfs_get_mount(const struct mfs_client *cl, const char *key,
			 mfs_model **out)
{
	char kdir[PATH_MAX];
	int dfd, rc;

	rc = mfs_join(kdir, cl->path, key);
	if (rc < 0)
		return rc;
	dfd = open(kdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return mfs_fail(-errno, "no model '%s' on mount '%s': %s", key,
				cl->path, strerror(errno));
	rc = mfs_mount_model(dfd, kdir, key, out);
	close(dfd);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Models of an in-process store                                       */
/* ------------------------------------------------------------------ */

static int mfs_get_inproc(const struct mfs_client *cl, const char *key,
			  mfs_model **out)
{
	struct mfs_builder_view v;
	struct mfs_model *m;
	mfs_builder *b;
	const char *meta;
	size_t meta_len, n;
	int rc = mfs_inproc_lookup(cl->store, key, &b);

	if (rc < 0)
		return rc;
	meta = mfs_builder_metadata(b, &meta_len);
	n = mfs_builder_count(b);
	m = mfs_model_alloc(key, n, meta, meta_len);
	if (!m) {
		mfs_builder_unref(b);
		return mfs_fail(-ENOMEM, "model '%s': out of memory", key);
	}
	m->builder = b;
	m->guard = false; /* the builder's memory is not ours to guard */
	for (size_t i = 0; i < n; i++) {
		mfs_builder_view_at(b, i, &v);
		if (mfs_model_set(m, i, v.spec->name, v.spec->dtype,
				  v.spec->ndim, v.spec->shape, v.spec->order,
				  v.nbytes) < 0) {
			mfs_model_discard(m);
			return mfs_fail(-ENOMEM, "model '%s': out of memory",
					key);
		}
		m->arrays[i].view.data = v.data;
	}
	return mfs_model_finish(m, out);
}

/* ------------------------------------------------------------------ */
/* Public model functions                                              */
/* ------------------------------------------------------------------ */

int mfs_get_model(mfs_client *c, const char *key, mfs_model **out)
{
	int rc;

	mfs_clear_error();
	if (!out)
		return mfs_fail(-EINVAL, "mfs_get_model: NULL argument");
	if (!mfs_live_has(&mfs_live_clients, c))
		return mfs_fail(-EINVAL, "mfs_get_model: client %p is not open",
				(void *)c);
	rc = mfs_check_key(key);
	if (rc < 0)
		return rc;
	switch (c->kind) {
	case MFS_CLIENT_MOUNT:
		return mfs_get_mount(c, key, out);
	case MFS_CLIENT_INPROC:
		return mfs_get_inproc(c, key, out);
	case MFS_CLIENT_DIR:
		break;
	}
	return mfs_get_dir(c, key, out);
}

/*
 * The key of a model opened from @path into @key (NAME_MAX + 1 bytes):
 * its last component, without MFS_CONTAINER_SUFFIX if @file and there is
 * a name before it.  "/" for a path of slashes only.
 */
static void mfs_path_key(const char *path, bool file, char *key)
{
	size_t end = strlen(path), start, len, suffix;

	while (end > 1 && path[end - 1] == '/')
		end--;
	for (start = end; start > 0 && path[start - 1] != '/'; start--)
		;
	if (start == end) /* "/" (or "//...") */
		start = 0;
	len = end - start;
	suffix = strlen(MFS_CONTAINER_SUFFIX);
	if (file && len > suffix &&
	    memcmp(path + end - suffix, MFS_CONTAINER_SUFFIX, suffix) == 0)
		len -= suffix;
	/* Opened, so each component fits in NAME_MAX. */
	if (len > NAME_MAX)
		len = NAME_MAX;
	memcpy(key, path + start, len);
	key[len] = '\0';
}

/* Opens model directory @dfd at @path, refusing one without a manifest
 * as the wrong kind of path rather than a missing file. */
static int mfs_open_model_dir(int dfd, const char *path, mfs_model **out)
{
	char key[NAME_MAX + 1];
	struct stat st;

	if (fstatat(dfd, MFS_MANIFEST_FILE, &st, AT_SYMLINK_NOFOLLOW) < 0 &&
	    errno == ENOENT)
		return mfs_fail(-EBADMSG, "'%s' is neither a container file "
				"nor a model directory of a modelfs mount (a "
				"directory without " MFS_MANIFEST_FILE ")",
				path);
	mfs_path_key(path, false, key);
	return mfs_mount_model(dfd, path, key, out);
}

/* Opens container file @path, never followed through a link. */
static int mfs_open_model_file(const char *path, mfs_model **out)
{
	char key[NAME_MAX + 1];
	struct stat st;
	int fd;

	if (lstat(path, &st) < 0)
		return mfs_fail(-errno, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return mfs_fail(-EBADMSG, "'%s' is neither a container file "
				"nor a model directory of a modelfs mount (a "
				"%s%s)", path, mfs_file_type_name(st.st_mode),
				S_ISLNK(st.st_mode) ? "; links are followed to "
				"model directories only" : "");
	fd = mfs_open_regular(AT_FDCWD, path, MFS_OPEN_NOFOLLOW, NULL);
	if (fd < 0)
		return fd;
	mfs_path_key(path, true, key);
	return mfs_container_model(fd, path, key, out);
}

int mfs_model_open(const char *path, mfs_model **out)
{
	int dfd, rc;

	mfs_clear_error();
	if (!path || !out)
		return mfs_fail(-EINVAL, "mfs_model_open: NULL argument");
	/* O_DIRECTORY refuses anything else before opening it, so a FIFO
	 * or a device is never waited on or acted on. */
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 && errno == ENOTDIR)
		return mfs_open_model_file(path, out);
	if (dfd < 0)
		return mfs_fail(-errno, "%s: %s", path, strerror(errno));
	rc = mfs_open_model_dir(dfd, path, out);
	close(dfd);
	return rc;
}

static int mfs_cmp_name_index(const void *key, const void *elem, void *ctx)
{
	const struct mfs_model *m = ctx;

	return strcmp(key, m->arrays[*(const size_t *)elem].name);
}

int mfs_model_array(const mfs_model *m, const char *name, mfs_array_view *out)
{
	size_t lo = 0, hi, mid;
	int cmp;

	if (!m || !name || !out)
		return mfs_fail(-EINVAL, "mfs_model_array: NULL argument");
	/* Binary search of by_name (no bsearch_r in glibc). */
	for (hi = m->count; lo < hi;) {
		mid = lo + (hi - lo) / 2;
		cmp = mfs_cmp_name_index(name, &m->by_name[mid], (void *)m);
		if (cmp == 0) {
			*out = m->arrays[m->by_name[mid]].view;
			return 0;
		}
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return mfs_fail(-ENOENT, "model '%s' has no array named '%.*s'",
			m->key, (int)MFS_MAX_NAME_LEN, name);
}

size_t mfs_model_array_count(const mfs_model *m)
{
	return m ? m->count : 0;
}

int mfs_model_array_at(const mfs_model *m, size_t index, mfs_array_view *out)
{
	if (!m || !out)
		return mfs_fail(-EINVAL, "mfs_model_array_at: NULL argument");
	if (index >= m->count)
		return mfs_fail(-ERANGE, "model '%s': array index %zu is out of "
				"range (%zu arrays)", m->key, index, m->count);
	*out = m->arrays[index].view;
	return 0;
}

const char *mfs_model_metadata(const mfs_model *m, size_t *len)
{
	if (!m)
		return NULL;
	if (len)
		*len = m->metadata_len;
	return m->metadata;
}

const char *mfs_model_key(const mfs_model *m)
{
	return m ? m->key : NULL;
}

int mfs_model_release(mfs_model *m)
{
	mfs_clear_error();
	if (!mfs_live_remove(&mfs_live_models, m))
		return mfs_fail(-EINVAL, "mfs_model_release: model %p is not "
				"live (released twice?)", (void *)m);
	mfs_model_free(m);
	return 0;
}
