/*
 * floorfs.c - the floor of the benchmark: the least a libfuse low-level
 * file system does to serve files, so that every per-request figure of
 * modelfs is read as a ratio to what FUSE itself costs on this machine,
 * measured beside it in the same run.
 *
 *   floorfs MOUNTPOINT FILES SIZE     (stays in the foreground)
 *
 * The root holds FILES read-only files "a000.npy", "a001.npy", ... of SIZE
 * bytes of zeros.  Like modelfs: long entry and attribute timeouts,
 * keep_cache on open, every open and release answered (no no-open mode),
 * read-only, default_permissions, the same multithreaded loop.  Unlike modelfs: no table, no holders,
 * no checksums, no watcher.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

/* As modelfs's: the names never change. */
#define FLOOR_TIMEOUT 86400.0
#define FLOOR_NAME_FMT "a%03u.npy"
#define FLOOR_NAME_MAX 16
#define FLOOR_MAX_FILES 1000u
#define FLOOR_MODE 0444
#define FLOOR_DIR_MODE 0555
/* Inode numbers: the root is FUSE_ROOT_ID (1), file i is i + 2. */
#define FLOOR_FIRST_INO 2u
#define FLOOR_MIN_THREADS 2

static unsigned floor_files;
static off_t floor_size;

/* File index of inode @ino, or -1 if it is not a file. */
static long floor_index(fuse_ino_t ino)
{
	if (ino < FLOOR_FIRST_INO || ino >= FLOOR_FIRST_INO + floor_files)
		return -1;
	return (long)(ino - FLOOR_FIRST_INO);
}

static void floor_stat(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | FLOOR_DIR_MODE;
		st->st_nlink = 2;
		return;
	}
	st->st_mode = S_IFREG | FLOOR_MODE;
	st->st_nlink = 1;
	st->st_size = floor_size;
}

static void floor_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	unsigned i;
	char want[FLOOR_NAME_MAX];

	memset(&e, 0, sizeof(e));
	e.entry_timeout = FLOOR_TIMEOUT;
	if (parent == FUSE_ROOT_ID && sscanf(name, "a%3u.npy", &i) == 1 &&
	    i < floor_files) {
		snprintf(want, sizeof(want), FLOOR_NAME_FMT, i);
		if (strcmp(want, name) == 0) {
			e.ino = FLOOR_FIRST_INO + i;
			e.attr_timeout = FLOOR_TIMEOUT;
			floor_stat(e.ino, &e.attr);
		}
	}
	fuse_reply_entry(req, &e); /* ino 0: a cached negative entry */
}

static void floor_getattr(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	if (ino != FUSE_ROOT_ID && floor_index(ino) < 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	floor_stat(ino, &st);
	fuse_reply_attr(req, &st, FLOOR_TIMEOUT);
}

static void floor_open(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	if (floor_index(ino) < 0) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void floor_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	static const char zeros[1 << 17];

	(void)ino, (void)fi;
	if (off >= floor_size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if ((off_t)size > floor_size - off)
		size = (size_t)(floor_size - off);
	if (size > sizeof(zeros))
		size = sizeof(zeros);
	fuse_reply_buf(req, zeros, size);
}

static void floor_release(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	(void)ino, (void)fi;
	fuse_reply_err(req, 0);
}

/* Entry @pos of the root: ".", "..", then the files.  false past the
 * end. */
static bool floor_dirent(unsigned pos, char *name, size_t len,
			 struct stat *st)
{
	if (pos >= floor_files + 2)
		return false;
	if (pos < 2) {
		snprintf(name, len, "%s", pos ? ".." : ".");
		floor_stat(FUSE_ROOT_ID, st);
		return true;
	}
	snprintf(name, len, FLOOR_NAME_FMT, pos - 2);
	floor_stat(FLOOR_FIRST_INO + pos - 2, st);
	return true;
}

static void floor_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			  off_t off, struct fuse_file_info *fi)
{
	char *buf = malloc(size ? size : 1), name[FLOOR_NAME_MAX];
	size_t used = 0;
	struct stat st;

	(void)ino, (void)fi;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (unsigned pos = (unsigned)off;
	     floor_dirent(pos, name, sizeof(name), &st); pos++) {
		size_t n = fuse_add_direntry(req, buf + used, size - used,
					     name, &st, (off_t)pos + 1);

		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static const struct fuse_lowlevel_ops floor_ops = {
	.readdir = floor_readdir,
	.lookup = floor_lookup,
	.getattr = floor_getattr,
	.open = floor_open,
	.read = floor_read,
	.release = floor_release,
};

/* The loop modelfs runs by default: multithreaded, one worker per
 * online CPU (at least FLOOR_MIN_THREADS), all kept; the single-threaded
 * loop would add a cross-CPU wake-up to every request and flatter
 * modelfs. */
static int floor_loop(struct fuse_session *se)
{
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned threads = n > FLOOR_MIN_THREADS ? (unsigned)n
						 : FLOOR_MIN_THREADS;
	int rc;

	if (!cfg)
		return -1;
	fuse_loop_cfg_set_max_threads(cfg, threads);
	fuse_loop_cfg_set_idle_threads(cfg, threads);
	rc = fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return rc;
}

int main(int argc, char **argv)
{
	char *args_v[] = {argv[0], "-o", "ro,default_permissions,fsname=floorfs",
			  NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, args_v);
	struct fuse_session *se;
	int rc = 1;

	if (argc != 4 || atoi(argv[2]) <= 0 ||
	    (unsigned)atoi(argv[2]) > FLOOR_MAX_FILES || atoll(argv[3]) < 0) {
		fprintf(stderr, "usage: floorfs MOUNTPOINT FILES SIZE\n");
		return 2;
	}
	floor_files = (unsigned)atoi(argv[2]);
	floor_size = (off_t)atoll(argv[3]);
	se = fuse_session_new(&args, &floor_ops, sizeof(floor_ops), NULL);
	if (!se)
		return 1;
	if (fuse_set_signal_handlers(se) == 0) {
		if (fuse_session_mount(se, argv[1]) == 0) {
			rc = floor_loop(se) < 0;
			fuse_session_unmount(se);
		}
		fuse_remove_signal_handlers(se);
	}
	fuse_session_destroy(se);
	return rc;
}
