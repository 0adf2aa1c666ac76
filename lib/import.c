/*
 * import.c - mfs_store_put_file: a container copied and validated, then
 * published as is, or .npy files (one, or a directory of them with its
 * metadata.json) and re-serialized containers read through a builder;
 * mfs_npy_dir_list, the one listing of such a directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layout.h"
#include "builder_internal.h"
#include "staging_internal.h"
#include "store_internal.h"

/* What a file needs to end with to be imported as an array. */
/* Metadata file of an imported .npy directory (as the mount shows it). */
/* Bytes copied per step when copy_file_range cannot be used. */
#define MFS_COPY_BUF (1u << 20)
/* Room for the first bad chunk's message of an import. */
#define MFS_VERIFY_MSG_MAX 512
/* First capacity of a .npy name list; it doubles from there. */
#define MFS_INITIAL_NAMES 16u

/* ------------------------------------------------------------------ */
/* Builders over .npy files                                            */
/* ------------------------------------------------------------------ */

/* One imported .npy file, as a positional reader of its data. */
struct mfs_npy_src {
	int fd;
	uint64_t data_offset;
	uint64_t data_length;
};

static ssize_t mfs_npy_read_at(void *ctx, uint64_t off, void *buf, size_t len)
{
	const struct mfs_npy_src *s = ctx;
	ssize_t n;

	if (off >= s->data_length)
		return 0;
	if (len > s->data_length - off)
		len = (size_t)(s->data_length - off);
	do
		n = pread(s->fd, buf, len, (off_t)(s->data_offset + off));
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/* The .npy sources of a builder, freed with it. */
struct mfs_npy_import {
	struct mfs_npy_src *srcs; /* cap entries, count used */
	size_t count;
};

static void mfs_npy_import_free(void *ctx)
{
	struct mfs_npy_import *imp = ctx;

	for (size_t i = 0; i < imp->count; i++)
		close(imp->srcs[i].fd);
	free(imp->srcs);
	free(imp);
}

/* Adds the .npy file @path (opened at @dirfd) as array @name. */
static int mfs_add_npy(mfs_builder *b, struct mfs_npy_import *imp, int dirfd,
		       const char *file, const char *label, const char *name)
{
	struct mfs_npy_src *s = &imp->srcs[imp->count];
	mfs_array_spec spec;
	mfs_npy_info info;
	int rc;

	s->fd = mfs_open_regular(dirfd, file, 0, label);
	if (s->fd < 0)
		return s->fd;
	rc = mfs_npy_read_fd(s->fd, label, &info);
	if (rc < 0) {
		close(s->fd);
		return rc;
	}
	imp->count++;
	s->data_offset = info.data_offset;
	s->data_length = info.data_length;
	memset(&spec, 0, sizeof(spec));
	spec.name = name;
	spec.dtype = info.dtype;
	spec.ndim = info.ndim;
	memcpy(spec.shape, info.shape, sizeof(spec.shape));
	spec.order = info.order;
	return mfs_builder_add_reader(b, &spec, mfs_npy_read_at, s, 0);
}

/* True if @name is what an import takes as an array file. */
static bool mfs_is_npy_name(const char *name)
{
	size_t n = strlen(name), sl = strlen(MFS_NPY_SUFFIX);

	return name[0] != '.' && n > sl &&
	       strcmp(name + n - sl, MFS_NPY_SUFFIX) == 0;
}

/* qsort order of .npy file names: bytewise by array name (the name
 * without ".npy"), so "a-b.npy" follows "a.npy" as "a-b" follows "a". */
static int mfs_npy_name_cmp(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	size_t nx = strlen(x) - strlen(MFS_NPY_SUFFIX);
	size_t ny = strlen(y) - strlen(MFS_NPY_SUFFIX);
	int c = memcmp(x, y, nx < ny ? nx : ny);

	return c ? c : (nx > ny) - (nx < ny);
}

/* Appends a copy of @name to vector *@v (*@n used, *@cap allocated):
 * 0 or -ENOMEM. */
static int mfs_names_push(char ***v, size_t *n, size_t *cap, const char *name)
{
	char *copy = strdup(name);
	char **grown;

	if (!copy)
		return -ENOMEM;
	if (*n == *cap) {
		size_t more = *cap ? 2 * *cap : MFS_INITIAL_NAMES;

		grown = realloc(*v, more * sizeof(**v));
		if (!grown) {
			free(copy);
			return -ENOMEM;
		}
		*v = grown;
		*cap = more;
	}
	(*v)[(*n)++] = copy;
	return 0;
}

/* The .npy names of open directory @d, unsorted: 0 or a negative errno. */
static int mfs_read_npy_names(DIR *d, char ***v, size_t *n)
{
	size_t cap = 0;
	struct dirent *de;
	int rc = 0;

	while (rc == 0 && (errno = 0, de = readdir(d)) != NULL)
		if (mfs_is_npy_name(de->d_name))
			rc = mfs_names_push(v, n, &cap, de->d_name);
	if (rc == 0 && errno != 0)
		rc = -errno;
	return rc;
}

void mfs_npy_dir_free(char **names, size_t count)
{
	for (size_t i = 0; names && i < count; i++)
		free(names[i]);
	free(names);
}

int mfs_npy_dir_list(int dirfd, const char *dir, char ***names,
		     size_t *count)
{
	char **v = NULL;
	size_t n = 0;
	DIR *d;
	int fd, rc;

	mfs_clear_error();
	if (!dir || !names || !count)
		return mfs_fail(-EINVAL, "mfs_npy_dir_list: NULL argument");
	fd = openat(dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return mfs_fail(-errno, "%s: open: %s", dir, strerror(errno));
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return mfs_fail(rc, "%s: opendir: %s", dir, strerror(-rc));
	}
	rc = mfs_read_npy_names(d, &v, &n);
	closedir(d);
	if (rc < 0) {
		mfs_npy_dir_free(v, n);
		return mfs_fail(rc, "%s: reading the directory: %s", dir,
				strerror(-rc));
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), mfs_npy_name_cmp);
	*names = v;
	*count = n;
	return 0;
}

/* Reads DIR/metadata.json into @b if it exists. */
static int mfs_import_metadata(mfs_builder *b, int dirfd, const char *dir)
{
	char label[PATH_MAX];
	struct stat st;
	char *text;
	int fd, rc;

	snprintf(label, sizeof(label), "%s/%s", dir, MFS_METADATA_FILE);
	fd = mfs_open_regular(dirfd, MFS_METADATA_FILE, 0, label);
	if (fd == -ENOENT) {
		mfs_clear_error();
		return 0;
	}
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		close(fd);
		return mfs_fail(rc, "%s: %s", label, strerror(-rc));
	}
	if ((uint64_t)st.st_size > MFS_MAX_METADATA) {
		close(fd);
		return mfs_fail(-EBADMSG, "%s/%s: %lld bytes, more than the "
				"metadata limit of %u", dir, MFS_METADATA_FILE,
				(long long)st.st_size, MFS_MAX_METADATA);
	}
	text = malloc((size_t)st.st_size + 1);
	rc = text ? mfs_pread_full(fd, text, (size_t)st.st_size, 0) : -ENOMEM;
	close(fd);
	if (rc == 0)
		rc = mfs_builder_set_metadata(b, text, (size_t)st.st_size);
	else
		rc = mfs_fail(rc, "%s/%s: read: %s", dir, MFS_METADATA_FILE,
			      strerror(-rc));
	free(text);
	return rc == -EINVAL ? -EBADMSG : rc;
}

/* Adds every *.npy of directory @dir in mfs_npy_dir_list's order. */
static int mfs_import_npy_dir(mfs_builder *b, struct mfs_npy_import *imp,
			      int dirfd, const char *dir)
{
	char label[PATH_MAX], name[NAME_MAX + 1];
	char **names;
	size_t n;
	int rc = mfs_npy_dir_list(dirfd, ".", &names, &n);

	if (rc < 0)
		return mfs_fail(rc, "%s: listing its .npy files: %s", dir,
				strerror(-rc));
	imp->srcs = calloc(n ? n : 1, sizeof(*imp->srcs));
	if (!imp->srcs)
		rc = mfs_fail(-ENOMEM, "%s: out of memory", dir);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const char *f = names[i];

		snprintf(label, sizeof(label), "%s/%s", dir, f);
		snprintf(name, sizeof(name), "%.*s",
			 (int)(strlen(f) - strlen(MFS_NPY_SUFFIX)), f);
		rc = mfs_add_npy(b, imp, dirfd, f, label, name);
	}
	mfs_npy_dir_free(names, n);
	if (rc == 0)
		rc = mfs_import_metadata(b, dirfd, dir);
	return rc;
}

/* Adds the single .npy file @path, named after the file. */
static int mfs_import_npy_file(mfs_builder *b, struct mfs_npy_import *imp,
			       const char *path)
{
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	size_t n = strlen(base), sl = strlen(MFS_NPY_SUFFIX);
	char name[NAME_MAX + 1];

	imp->srcs = calloc(1, sizeof(*imp->srcs));
	if (!imp->srcs)
		return mfs_fail(-ENOMEM, "%s: out of memory", path);
	if (n > sl && strcmp(base + n - sl, MFS_NPY_SUFFIX) == 0)
		n -= sl;
	snprintf(name, sizeof(name), "%.*s", (int)n, base);
	return mfs_add_npy(b, imp, AT_FDCWD, path, path, name);
}

/*
 * A builder importing @path: one .npy file, or a directory of .npy files
 * and an optional metadata.json.  0, -ENOENT, -EBADMSG, -EINVAL (bad
 * array name), -ENOMEM or an errno of the files.
 */
static int mfs_builder_from_npy(mfs_builder **out, const char *path,
				bool is_dir)
{
	struct mfs_npy_import *imp = calloc(1, sizeof(*imp));
	mfs_builder *b = NULL;
	int rc, dirfd = -1;

	if (!imp || mfs_builder_new(&b) < 0) {
		free(imp);
		return mfs_fail(-ENOMEM, "%s: out of memory importing", path);
	}
	mfs_builder_set_cleanup(b, mfs_npy_import_free, imp);
	if (!is_dir) {
		rc = mfs_import_npy_file(b, imp, path);
	} else {
		dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		rc = dirfd < 0 ? mfs_fail(-errno, "%s: open: %s", path,
					  strerror(errno))
			       : mfs_import_npy_dir(b, imp, dirfd, path);
		if (dirfd >= 0)
			close(dirfd);
	}
	if (rc < 0) {
		mfs_builder_free(b);
		return rc;
	}
	*out = b;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Containers and the public entry point                               */
/* ------------------------------------------------------------------ */


/* Copies all of @src into @dst (both at offset 0, @dst empty). */
static int mfs_copy_fd(int src, int dst)
{
	static const size_t step = MFS_COPY_BUF;
	char *buf = NULL;
	ssize_t n;
	off_t off = 0;

	for (;;) {
		n = copy_file_range(src, NULL, dst, NULL, step, 0);
		if (n == 0)
			return 0;
		if (n < 0)
			break;
		off += n;
	}
	if (errno != EXDEV && errno != ENOSYS && errno != EINVAL &&
	    errno != EOPNOTSUPP)
		return -errno;
	/* Not possible between these files: copy through a buffer. */
	buf = malloc(step);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		n = pread(src, buf, step, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (mfs_pwrite_full(dst, buf, (size_t)n, (uint64_t)off) < 0) {
			n = -1;
			break;
		}
		off += n;
	}
	free(buf);
	return n < 0 ? -errno : 0;
}

/* The first bad chunk's message of a verify run. */
struct mfs_verify_note {
	char msg[MFS_VERIFY_MSG_MAX];
	bool seen;
};

static void mfs_verify_cb(void *ctx, size_t array, uint64_t chunk, int err,
			  const char *message)
{
	struct mfs_verify_note *note = ctx;

	(void)array;
	(void)chunk;
	(void)err;
	if (!note->seen)
		snprintf(note->msg, sizeof(note->msg), "%s", message);
	note->seen = true;
}

/* Validates the copy at @fd (structure, every chunk) as @label. */
static int mfs_validate_copy(int fd, const char *label)
{
	struct mfs_verify_note note = {.seen = false};
	mfs_container *c;
	int64_t bad;
	int dupfd = dup(fd), rc;

	if (dupfd < 0)
		return mfs_fail(-errno, "%s: dup: %s", label, strerror(errno));
	rc = mfs_container_open_fd(&c, dupfd, label);
	if (rc < 0) {
		close(dupfd);
		return rc;
	}
	bad = mfs_container_verify(c, mfs_verify_cb, &note);
	mfs_container_close(c);
	if (bad > 0)
		return mfs_fail(-EIO, "%s: %lld bad chunk(s), not imported; "
				"first: %s", label, (long long)bad, note.msg);
	return bad < 0 ? (int)bad : 0;
}

/* Fills temporary @tmp (@dst) with the bytes of @path (@src), with the
 * mode of a published container, fsynced if @durable.  0 or a negative
 * errno. */
static int mfs_fill_tmp(int src, int dst, const char *path, const char *tmp,
			const char *dir, bool durable)
{
	int rc = mfs_copy_fd(src, dst);

	if (rc < 0)
		return mfs_fail(rc, "%s: copying into '%s': %s", path, tmp,
				strerror(-rc));
	if (fchmod(dst, MFS_FILE_MODE & ~mfs_umask()) < 0 ||
	    (durable && fsync(dst) < 0))
		return mfs_fail(-errno, "store '%s': '%s': %s", dir, tmp,
				strerror(errno));
	/* Not durable, writeback still starts now: the daemon drops the
	 * page cache of what it served, which dirty pages would escape.
	 * A hint only (0 bytes: to the end of the file). */
	if (!durable)
		sync_file_range(dst, 0, 0, SYNC_FILE_RANGE_WRITE);
	return 0;
}

/* Copies the container @path into the store, validates the copy, and
 * publishes it as is. */
static int mfs_import_copy(mfs_store *s, const char *path, const char *key,
			   unsigned flags, char *key_out)
{
	const char *dir = mfs_store_directory(s);
	char tmp[PATH_MAX], content[MFS_KEY_BUFSIZE];
	struct mfs_put p = {.s = s};
	int src, dst, rc;

	if (!mfs_import_tmp_template(tmp, dir))
		return mfs_fail(-ENAMETOOLONG, "path of a file being "
				"published is too long (%d bytes at most) in "
				"store '%s'", PATH_MAX - 1, dir);
	src = mfs_open_regular(AT_FDCWD, path, 0, NULL);
	if (src < 0)
		return src;
	dst = mkostemp(tmp, O_CLOEXEC);
	if (dst < 0) {
		rc = mfs_fail(-errno, "store '%s': creating '%s': %s", dir,
			      tmp, strerror(errno));
		goto out_src;
	}
	/* Held until published; a gc that removed it before the lock
	 * leaves it nameless (1), which this one-shot copy reports. */
	rc = mfs_staging_lock(dst);
	if (rc == 1)
		rc = -EAGAIN;
	if (rc < 0) {
		rc = mfs_fail(rc, "store '%s': locking '%s': %s", dir, tmp,
			      strerror(-rc));
		goto out_dst;
	}
	rc = mfs_fill_tmp(src, dst, path, tmp, dir,
			  flags & MFS_PUT_PERSISTENT);
	if (rc == 0)
		rc = mfs_validate_copy(dst, path);
	if (rc == 0 && !key)
		rc = mfs_container_key(dst, path, content);
	if (rc == 0)
		rc = mfs_put_begin(&p, s, key ? key : content, flags);
	if (rc == 0)
		rc = mfs_publish_rename(&p, tmp, flags & MFS_PUT_PERSISTENT);
out_dst:
	if (!p.published)
		unlink(tmp);
	close(dst); /* releases the lock, after the rename */
out_src:
	close(src);
	/* Also the end of a failure before mfs_put_begin: @p has no record
	 * then, and @rc comes back as it is. */
	return mfs_put_end(&p, rc, flags, key_out);
}

/* What mfs_store_put_file was given. */
enum mfs_input { MFS_INPUT_CONTAINER, MFS_INPUT_NPY, MFS_INPUT_NPY_DIR };

static int mfs_input_kind(const char *path, enum mfs_input *kind)
{
	static const char npy_magic[] = "\x93NUMPY";
	uint8_t head[MFS_MAGIC_LEN] = {0};
	struct stat st;
	int fd;

	if (stat(path, &st) < 0)
		return mfs_fail(-errno, "%s: %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		*kind = MFS_INPUT_NPY_DIR;
		return 0;
	}
	fd = mfs_open_regular(AT_FDCWD, path, 0, NULL);
	if (fd < 0)
		return fd;
	/* A short file leaves zeros, which match neither magic. */
	if (pread(fd, head, sizeof(head), 0) < 0) {
		close(fd);
		return mfs_fail(-errno, "%s: read: %s", path, strerror(errno));
	}
	close(fd);
	if (memcmp(head, MFS_MAGIC, MFS_MAGIC_LEN) == 0)
		*kind = MFS_INPUT_CONTAINER;
	else if (memcmp(head, npy_magic, sizeof(npy_magic) - 1) == 0)
		*kind = MFS_INPUT_NPY;
	else
		return mfs_fail(-EBADMSG, "%s: neither a modelfs container nor "
				"an .npy file (first bytes match neither magic)",
				path);
	return 0;
}

/* Imports through a builder: decoded, checked and rewritten. */
static int mfs_import_rewrite(mfs_store *s, const char *path,
			      enum mfs_input kind, const char *key,
			      unsigned flags, char *key_out)
{
	mfs_container *c;
	mfs_builder *b;
	int rc;

	if (kind == MFS_INPUT_CONTAINER) {
		rc = mfs_container_open(&c, path);
		if (rc == 0)
			rc = mfs_builder_from_container(&b, c);
	} else {
		rc = mfs_builder_from_npy(&b, path, kind == MFS_INPUT_NPY_DIR);
	}
	if (rc < 0)
		return rc;
	rc = mfs_put_builder(s, b, key, flags, key_out);
	mfs_builder_free(b);
	return rc;
}

int mfs_store_put_file(mfs_store *s, const char *path, const char *key,
		       unsigned flags, char *key_out)
{
	enum mfs_input kind;
	int rc;

	mfs_clear_error();
	rc = mfs_check_put(s, "mfs_store_put_file", key, flags,
			   MFS_PUT_PERSISTENT | MFS_PUT_RESERIALIZE);
	if (rc < 0)
		return rc;
	if (!path)
		return mfs_fail(-EINVAL, "mfs_store_put_file: NULL path");
	rc = mfs_input_kind(path, &kind);
	if (rc < 0)
		return rc;
	if (kind == MFS_INPUT_CONTAINER && !mfs_store_in_process(s) &&
	    !(flags & MFS_PUT_RESERIALIZE))
		return mfs_import_copy(s, path, key, flags, key_out);
	return mfs_import_rewrite(s, path, kind, key, flags, key_out);
}
