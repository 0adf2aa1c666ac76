/*
 * mmap_check - maps an array file served by the mount and compares it with
 * the original .npy file.
 *
 *   mmap_check MOUNTED.npy ORIGINAL.npy
 *
 * Checks, each reported on its own line (exit 1 if any fails):
 *  - the served file is a valid NPY whose data starts at 4096 and whose
 *    size is exactly 4096 + data length (mfs_npy_read_fd), with the same
 *    dtype, shape and order as the original -- except for an array with
 *    no elements, whose header is NumPy's compact one: byte for byte the
 *    header of the original (written by NumPy), and the whole file;
 *  - a read-only shared mapping of the whole served file shows the
 *    original's data bytes after the header, and two mappings agree;
 *  - open(O_RDWR) and open(O_WRONLY) fail with EROFS;
 *  - mmap(PROT_READ|PROT_WRITE, MAP_SHARED) fails;
 *  - a private writable mapping works, and writing to it leaves the file
 *    unchanged.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "modelfs.h"

static int failures;

#define FAIL(...)                                     \
	do {                                          \
		fprintf(stderr, "FAIL: " __VA_ARGS__); \
		fputc('\n', stderr);                  \
		failures++;                           \
	} while (0)

static int read_all(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
				  off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

static void check_open_fails(const char *path, int flags, const char *what)
{
	int fd = open(path, flags);
	if (fd >= 0) {
		FAIL("open(%s, %s) succeeded, expected EROFS", path, what);
		close(fd);
	} else if (errno != EROFS) {
		FAIL("open(%s, %s): %s, expected EROFS", path, what,
		     strerror(errno));
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s MOUNTED.npy ORIGINAL.npy\n",
			argv[0]);
		return 2;
	}
	const char *served = argv[1], *orig = argv[2];

	int ofd = open(orig, O_RDONLY | O_CLOEXEC);
	if (ofd < 0) {
		fprintf(stderr, "%s: %s\n", orig, strerror(errno));
		return 2;
	}
	mfs_npy_info oi, si;
	int rc = mfs_npy_read_fd(ofd, orig, &oi);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", orig, mfs_last_error());
		return 2;
	}
	unsigned char *want = malloc(oi.data_length ? oi.data_length : 1);
	if (!want || read_all(ofd, want, oi.data_length,
			      (off_t)oi.data_offset) < 0) {
		fprintf(stderr, "%s: cannot read data\n", orig);
		return 2;
	}
	/* The header the mount must serve: 4096 bytes, or for an empty array
	 * NumPy's own, which is what NumPy wrote for the original. */
	size_t hlen = MFS_NPY_HEADER_SIZE;
	unsigned char ohdr[MFS_NPY_HEADER_SIZE];
	if (oi.data_length == 0) {
		if (oi.data_offset >= MFS_NPY_HEADER_SIZE ||
		    read_all(ofd, ohdr, (size_t)oi.data_offset, 0) < 0) {
			fprintf(stderr, "%s: cannot read its header\n", orig);
			return 2;
		}
		hlen = (size_t)oi.data_offset;
	}
	close(ofd);

	int fd = open(served, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		FAIL("open(%s, O_RDONLY): %s", served, strerror(errno));
		return 1;
	}
	rc = mfs_npy_read_fd(fd, served, &si);
	if (rc < 0) {
		FAIL("%s is not a valid .npy of the right size: %s", served,
		     mfs_last_error());
		return 1;
	}
	if (si.data_offset != hlen)
		FAIL("%s: data offset %llu, expected %zu", served,
		     (unsigned long long)si.data_offset, hlen);
	if (si.version != 1)
		FAIL("%s: NPY version %u, expected 1", served, si.version);
	if (si.dtype != oi.dtype || si.ndim != oi.ndim ||
	    si.order != oi.order ||
	    memcmp(si.shape, oi.shape, sizeof(si.shape[0]) * si.ndim) != 0)
		FAIL("%s: header (dtype %d, ndim %u, order %d) differs from "
		     "the original (dtype %d, ndim %u, order %d) or shape differs",
		     served, si.dtype, si.ndim, si.order, oi.dtype, oi.ndim,
		     oi.order);
	if (si.data_length != oi.data_length) {
		FAIL("%s: data length %llu, expected %llu", served,
		     (unsigned long long)si.data_length,
		     (unsigned long long)oi.data_length);
		return 1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 ||
	    (uint64_t)st.st_size != hlen + si.data_length)
		FAIL("%s: st_size %lld, expected %llu", served,
		     (long long)st.st_size,
		     (unsigned long long)(hlen + si.data_length));

	size_t maplen = hlen + si.data_length;
	unsigned char *m1 = mmap(NULL, maplen, PROT_READ, MAP_SHARED, fd, 0);
	unsigned char *m2 = mmap(NULL, maplen, PROT_READ, MAP_SHARED, fd, 0);
	if (m1 == MAP_FAILED || m2 == MAP_FAILED) {
		FAIL("mmap(PROT_READ, MAP_SHARED) of %s: %s", served,
		     strerror(errno));
		return 1;
	}
	/* Touch the second mapping back to front, the first front to back. */
	size_t n = si.data_length;
	for (size_t i = n; i-- > 0;)
		if (m2[hlen + i] != want[i]) {
			FAIL("%s: mapped byte %zu is 0x%02x, expected 0x%02x",
			     served, i, m2[hlen + i], want[i]);
			break;
		}
	if (memcmp(m1 + hlen, want, n) != 0)
		FAIL("%s: mapped data differs from %s", served, orig);
	if (memcmp(m1, m2, maplen) != 0)
		FAIL("%s: two mappings of the file differ", served);
	/* The header mapped is the header read. */
	unsigned char hdr[MFS_NPY_HEADER_SIZE];
	if (read_all(fd, hdr, hlen, 0) < 0 || memcmp(hdr, m1, hlen) != 0)
		FAIL("%s: mapped header differs from the header read", served);
	/* An empty array's header is NumPy's own, byte for byte. */
	if (n == 0 && memcmp(m1, ohdr, hlen) != 0)
		FAIL("%s: header differs from NumPy's in %s", served, orig);
	/* A mapping of the data pages only (offset 4096) also matches. */
	if (n > 0) {
		unsigned char *d = mmap(NULL, n, PROT_READ, MAP_SHARED, fd,
					MFS_NPY_HEADER_SIZE);
		if (d == MAP_FAILED)
			FAIL("mmap at offset 4096: %s", strerror(errno));
		else {
			if (memcmp(d, want, n) != 0)
				FAIL("%s: mapping at offset 4096 differs",
				     served);
			munmap(d, n);
		}
	}

	/* Write access is refused. */
	check_open_fails(served, O_RDWR, "O_RDWR");
	check_open_fails(served, O_WRONLY, "O_WRONLY");
	void *w = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (w != MAP_FAILED) {
		FAIL("mmap(PROT_WRITE, MAP_SHARED) of %s succeeded", served);
		munmap(w, maplen);
	}
	/* Private copy-on-write mappings work and change nothing. */
	unsigned char *before = malloc(maplen);
	unsigned char *p = mmap(NULL, maplen, PROT_READ | PROT_WRITE,
				MAP_PRIVATE, fd, 0);
	if (!before) {
		fprintf(stderr, "out of memory\n");
		return 2;
	}
	memcpy(before, m1, maplen);
	if (p == MAP_FAILED) {
		FAIL("mmap(PROT_WRITE, MAP_PRIVATE): %s", strerror(errno));
	} else {
		memset(p + hlen, 0xA5, n);
		memset(p, 'X', 16);
		munmap(p, maplen);
		if (memcmp(m1, before, maplen) != 0)
			FAIL("%s: a private mapping's writes leaked into the "
			     "shared mapping", served);
		unsigned char *again = malloc(maplen);
		if (!again || read_all(fd, again, maplen, 0) < 0 ||
		    memcmp(again, before, maplen) != 0)
			FAIL("%s: file changed after writes to a private "
			     "mapping", served);
		free(again);
	}
	free(before);
	munmap(m1, maplen);
	munmap(m2, maplen);
	close(fd);
	free(want);
	if (failures == 0)
		printf("ok %s (%zu data bytes)\n", served, n);
	return failures ? 1 : 0;
}
