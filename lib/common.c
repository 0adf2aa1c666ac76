/*
 * common.c - version, thread-local errors, dtype table, name and key rules,
 * metadata check, checksum, the process umask and full-transfer I/O
 * helpers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <xxhash.h>

#include "codec_internal.h"

/* "Umask:" line of /proc/self/status (Linux >= 4.7). */
#define MFS_PROC_STATUS "/proc/self/status"
#define MFS_UMASK_TAG "Umask:"
#define MFS_STATUS_LINE_MAX 256
/* Long enough for a path, a field name and two bounds. */
#define MFS_ERROR_MAX 1024

static _Thread_local char mfs_errbuf[MFS_ERROR_MAX];

const char *mfs_version(void)
{
	return MODELFS_VERSION_STRING;
}

const char *mfs_last_error(void)
{
	return mfs_errbuf;
}

int mfs_fail(int err, const char *fmt, ...)
{
	char raw[MFS_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	/* Messages quote file names and keys, which may hold newlines or
	 * terminal controls; the whole message is escaped so no caller can
	 * forget.  Backslashes are kept: a message that quotes an earlier
	 * message (already escaped) must not have its escapes doubled. */
	mfs_escape(mfs_errbuf, sizeof(mfs_errbuf), raw, strlen(raw),
		   MFS_ESCAPE_KEEP_BACKSLASH);
	return err;
}

void mfs_clear_error(void)
{
	mfs_errbuf[0] = '\0';
}

struct mfs_dtype_row {
	const char *name;
	const char *npy;
	size_t size;
};

/* Indexed by mfs_dtype; FORMAT.md's dtype table. */
static const struct mfs_dtype_row mfs_dtypes[MFS_DTYPE_COUNT] = {
	[MFS_DTYPE_BOOL] = {"bool", "|b1", 1},
	[MFS_DTYPE_INT8] = {"int8", "|i1", 1},
	[MFS_DTYPE_INT16] = {"int16", "<i2", 2},
	[MFS_DTYPE_INT32] = {"int32", "<i4", 4},
	[MFS_DTYPE_INT64] = {"int64", "<i8", 8},
	[MFS_DTYPE_UINT8] = {"uint8", "|u1", 1},
	[MFS_DTYPE_UINT16] = {"uint16", "<u2", 2},
	[MFS_DTYPE_UINT32] = {"uint32", "<u4", 4},
	[MFS_DTYPE_UINT64] = {"uint64", "<u8", 8},
	[MFS_DTYPE_FLOAT16] = {"float16", "<f2", 2},
	[MFS_DTYPE_BFLOAT16] = {"bfloat16", "<u2", 2},
	[MFS_DTYPE_FLOAT32] = {"float32", "<f4", 4},
	[MFS_DTYPE_FLOAT64] = {"float64", "<f8", 8},
	[MFS_DTYPE_COMPLEX64] = {"complex64", "<c8", 8},
	[MFS_DTYPE_COMPLEX128] = {"complex128", "<c16", 16},
};

static const struct mfs_dtype_row *mfs_dtype_row(mfs_dtype dt)
{
	if ((int)dt <= MFS_DTYPE_INVALID || (int)dt >= MFS_DTYPE_COUNT)
		return NULL;
	return &mfs_dtypes[dt];
}

size_t mfs_dtype_size(mfs_dtype dt)
{
	const struct mfs_dtype_row *r = mfs_dtype_row(dt);
	return r ? r->size : 0;
}

const char *mfs_dtype_name(mfs_dtype dt)
{
	const struct mfs_dtype_row *r = mfs_dtype_row(dt);
	return r ? r->name : NULL;
}

const char *mfs_dtype_npy_descr(mfs_dtype dt)
{
	const struct mfs_dtype_row *r = mfs_dtype_row(dt);
	return r ? r->npy : NULL;
}

int mfs_dtype_from_name(const char *name, mfs_dtype *out)
{
	for (int i = MFS_DTYPE_BOOL; i < MFS_DTYPE_COUNT; i++) {
		if (name && strcmp(name, mfs_dtypes[i].name) == 0) {
			*out = (mfs_dtype)i;
			return 0;
		}
	}
	return mfs_fail(-EINVAL, "unknown dtype '%s' (expected one of bool, "
			"int8..int64, uint8..uint64, float16, bfloat16, "
			"float32, float64, complex64, complex128)",
			name ? name : "(null)");
}

const char *mfs_codec_name(mfs_codec codec)
{
	const struct mfs_codec_ops *ops = mfs_codec_ops(codec);

	return ops ? ops->name : NULL;
}

static bool mfs_name_char_ok(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	       (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
}

/* Shared rule of array names and keys; @what names the thing in errors. */
static int mfs_check_ident(const char *s, size_t max, const char *what)
{
	size_t n;

	if (!s || !*s)
		return mfs_fail(-EINVAL, "%s is empty", what);
	n = strnlen(s, max + 1);
	if (n > max)
		return mfs_fail(-EINVAL, "%s '%.40s...' is longer than %zu bytes",
				what, s, max);
	if (s[0] == '.')
		return mfs_fail(-EINVAL, "%s '%s' starts with '.'", what, s);
	for (size_t i = 0; i < n; i++) {
		if (!mfs_name_char_ok(s[i]))
			return mfs_fail(-EINVAL,
					"%s '%s' has character 0x%02x at byte %zu "
					"(allowed: A-Z a-z 0-9 . _ -)",
					what, s, (unsigned char)s[i], i);
	}
	return 0;
}

int mfs_check_array_name(const char *name)
{
	return mfs_check_ident(name, MFS_MAX_NAME_LEN, "array name");
}

int mfs_check_key(const char *key)
{
	int rc = mfs_check_ident(key, MFS_MAX_KEY_LEN, "model key");

	/* Keys become directory names: '-' first would read as an option
	 * and '.' first would hide the model, so the first must be alnum. */
	if (rc == 0 && (key[0] == '-' || key[0] == '_'))
		return mfs_fail(-EINVAL,
				"model key '%s' must start with a letter or digit",
				key);
	return rc;
}

int mfs_check_metadata(const char *json, size_t len)
{
	json_error_t jerr;
	json_t *root;
	bool is_object;

	if (len > MFS_MAX_METADATA)
		return mfs_fail(-EINVAL,
				"metadata is %zu bytes, more than the limit of %u",
				len, MFS_MAX_METADATA);
	if (len > 0 && memchr(json, '\0', len))
		return mfs_fail(-EINVAL, "metadata contains a NUL byte");
	/* jansson checks UTF-8 validity of the whole text. */
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return mfs_fail(-EINVAL,
				"metadata is not valid JSON: %s at line %d "
				"column %d",
				jerr.text, jerr.line, jerr.column);
	is_object = json_is_object(root);
	json_decref(root);
	if (!is_object)
		return mfs_fail(-EINVAL,
				"metadata must be a JSON object at the top level");
	return 0;
}

bool mfs_shape_bytes(mfs_dtype dtype, uint32_t ndim, const uint64_t *shape,
		     uint64_t *out)
{
	uint64_t n = mfs_dtype_size(dtype);

	/* An empty array holds no bytes whatever its other dimensions are,
	 * so (huge, 0) must not be refused where (0, huge) is accepted. */
	for (uint32_t i = 0; i < ndim; i++) {
		if (shape[i] == 0) {
			*out = 0;
			return true;
		}
	}
	for (uint32_t i = 0; i < ndim; i++) {
		if (__builtin_mul_overflow(n, shape[i], &n))
			return false;
	}
	*out = n;
	return true;
}

uint64_t mfs_checksum(const void *data, size_t len)
{
#ifdef MFS_HAVE_AVX2
	if (__builtin_cpu_supports("avx2"))
		return mfs_checksum_avx2(data, len);
#endif
	return XXH3_64bits(data, len);
}

const char *mfs_file_type_name(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return "regular file";
	case S_IFDIR:
		return "directory";
	case S_IFLNK:
		return "symbolic link";
	case S_IFIFO:
		return "FIFO";
	case S_IFSOCK:
		return "socket";
	case S_IFCHR:
		return "character device";
	case S_IFBLK:
		return "block device";
	}
	return "file of unknown type";
}

/* Opening a file that may be anything must not wait for a FIFO's writer
 * or make a terminal ours; regular files ignore O_NONBLOCK. */
#define MFS_OPEN_SAFE_FLAGS (O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)

/* The message and error for @label, a @mode file that is not regular. */
static int mfs_not_regular(const char *label, mode_t mode, bool link)
{
	return mfs_fail(S_ISDIR(mode) ? -EISDIR : -EINVAL,
			"%s: a %s, not a regular file%s", label,
			mfs_file_type_name(mode),
			link ? " (links are not followed)" : "");
}

int mfs_open_regular(int dirfd, const char *path, unsigned flags,
		     const char *label)
{
	bool nofollow = flags & MFS_OPEN_NOFOLLOW;
	struct stat before, st;
	int fd, rc;

	if (!label)
		label = path;
	/* Looked at first, so that nothing but a regular file is opened:
	 * opening a device can act on it. */
	if (fstatat(dirfd, path, &before, nofollow ? AT_SYMLINK_NOFOLLOW : 0) < 0)
		return mfs_fail(-errno, "%s: open: %s", label, strerror(errno));
	if (!S_ISREG(before.st_mode))
		return mfs_not_regular(label, before.st_mode,
				       S_ISLNK(before.st_mode));
	fd = openat(dirfd, path,
		    MFS_OPEN_SAFE_FLAGS | (nofollow ? O_NOFOLLOW : 0));
	if (fd < 0 && errno == ELOOP && nofollow)
		return mfs_not_regular(label, S_IFLNK, true);
	if (fd < 0)
		return mfs_fail(-errno, "%s: open: %s", label, strerror(errno));
	rc = fstat(fd, &st) < 0 ? -errno : 0;
	if (rc < 0)
		mfs_fail(rc, "%s: fstat: %s", label, strerror(-rc));
	else if (!S_ISREG(st.st_mode))
		rc = mfs_not_regular(label, st.st_mode, false);
	/* Back to blocking reads, as any descriptor the caller opens. */
	else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		rc = mfs_fail(-errno, "%s: fcntl: %s", label, strerror(errno));
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

/* Falls back to umask(2)'s race only on kernels without the status line. */
mode_t mfs_umask(void)
{
	char line[MFS_STATUS_LINE_MAX];
	FILE *f = fopen(MFS_PROC_STATUS, "re");
	unsigned int mask;
	mode_t old;

	if (f) {
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, MFS_UMASK_TAG " %o", &mask) == 1) {
				fclose(f);
				return (mode_t)mask;
			}
		}
		fclose(f);
	}
	old = umask(0);
	umask(old);
	return old;
}

int mfs_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int mfs_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* nothing written: never loop on it */
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}
