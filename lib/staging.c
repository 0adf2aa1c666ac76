/*
 * staging.c - the hidden names files have in a store directory before
 * they are published, and mfs_store_gc, which must recognise every one of
 * them to remove those that dead processes left behind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "staging_internal.h"

/* What mfs_store_gc removes: temporaries of writers and imports (both
 * end in MFS_TMP_SUFFIX after a leading '.'). */
#define MFS_TMP_PATTERN ".*.tmp.*"
/* Finished containers a put staged under its pid before renaming them to
 * their content key; removed once that process is gone. */
#define MFS_STAGED_PREFIX ".put-"
#define MFS_STAGED_PATTERN MFS_STAGED_PREFIX "*-*" MFS_CONTAINER_SUFFIX
#define MFS_STAGED_FORMAT "%s/" MFS_STAGED_PREFIX "%ld-%lu" MFS_CONTAINER_SUFFIX
/* The copy of an imported container before it is published. */
#define MFS_IMPORT_TEMPLATE "%s/.import" MFS_TMP_SUFFIX
/* Base of the pid in a staged name. */
#define MFS_PID_BASE 10

/* Numbers the staging files of this process. */
static atomic_ulong mfs_staging_seq;

bool mfs_staging_path(char *buf, const char *dir)
{
	return snprintf(buf, PATH_MAX, MFS_STAGED_FORMAT, dir, (long)getpid(),
			atomic_fetch_add(&mfs_staging_seq, 1)) < PATH_MAX;
}

/* The lock mfs_gc_one tries (LOCK_NB) before it removes a temporary. */
int mfs_staging_lock(int fd)
{
	struct stat st;

	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (fstat(fd, &st) < 0)
		return -errno;
	/* gc unlinks only while holding the lock, so nlink is final here. */
	return st.st_nlink == 0 ? 1 : 0;
}

bool mfs_import_tmp_template(char *buf, const char *dir)
{
	return snprintf(buf, PATH_MAX, MFS_IMPORT_TEMPLATE, dir) < PATH_MAX;
}


/*
 * Removes temporary @name of directory @dfd if no live writer holds its
 * flock and the name still refers to the file locked.  Returns 1 when
 * removed, 0 when kept (live, gone, not a regular file), or -errno.
 */
static int mfs_gc_one(int dfd, const char *name)
{
	struct stat locked, now;
	int fd, rc = 0;

	/* O_NONBLOCK: never hang on a FIFO someone named like a temporary. */
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
				       O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ELOOP ? 0 : -errno;
	if (fstat(fd, &locked) < 0) {
		rc = -errno;
	} else if (!S_ISREG(locked.st_mode)) {
		rc = 0;
	} else if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		/* EWOULDBLOCK: a live writer holds it. */
		rc = errno == EWOULDBLOCK ? 0 : -errno;
	} else if (fstatat(dfd, name, &now, AT_SYMLINK_NOFOLLOW) < 0 ||
		   now.st_dev != locked.st_dev || now.st_ino != locked.st_ino) {
		/* Renamed away (a writer committed before we locked) or
		 * replaced by another file: not ours to judge. */
		rc = 0;
	} else if (unlinkat(dfd, name, 0) < 0) {
		rc = errno == ENOENT ? 0 : -errno;
	} else {
		rc = 1;
	}
	close(fd);
	return rc;
}

/*
 * Removes staged container @name (".put-PID-SEQ.mfs") if process PID no
 * longer exists: a live put renames it within moments, a dead one never
 * will.  Returns 1 if removed, 0 if kept, or -errno.
 */
static int mfs_gc_staged(int dfd, const char *name)
{
	char *end;
	long pid;

	errno = 0;
	pid = strtol(name + strlen(MFS_STAGED_PREFIX), &end, MFS_PID_BASE);
	if (errno != 0 || pid <= 0 || pid > INT32_MAX || *end != '-')
		return 0;
	if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
		return 0;
	if (unlinkat(dfd, name, 0) < 0)
		return errno == ENOENT ? 0 : -errno;
	return 1;
}

int mfs_store_gc(const char *dir, size_t *removed, mfs_gc_fn cb, void *ctx)
{
	struct dirent *de;
	size_t count = 0;
	int rc = 0;
	DIR *d;

	mfs_clear_error();
	if (removed)
		*removed = 0;
	if (!dir)
		return mfs_fail(-EINVAL, "mfs_store_gc: NULL directory");
	d = opendir(dir);
	if (!d)
		return mfs_fail(-errno, "store '%s': opendir: %s", dir,
				strerror(errno));
	while ((errno = 0, de = readdir(d)) != NULL) {
		int one;

		if (fnmatch(MFS_STAGED_PATTERN, de->d_name, 0) == 0)
			one = mfs_gc_staged(dirfd(d), de->d_name);
		else if (fnmatch(MFS_TMP_PATTERN, de->d_name, 0) == 0)
			one = mfs_gc_one(dirfd(d), de->d_name);
		else
			continue;
		if (one == 1) {
			count++;
			if (cb)
				cb(ctx, de->d_name);
		} else if (one < 0 && rc == 0) {
			/* Keep going: one stuck file must not shield others. */
			rc = mfs_fail(one, "store '%s': temporary file '%s': %s",
				      dir, de->d_name, strerror(-one));
		}
	}
	if (errno != 0 && rc == 0)
		rc = mfs_fail(-errno, "store '%s': readdir: %s", dir,
			      strerror(errno));
	closedir(d);
	if (removed)
		*removed = count;
	return rc;
}
