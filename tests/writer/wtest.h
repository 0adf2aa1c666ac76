/*
 * wtest.h - helpers shared by the writer tests: scratch directories on
 * disk, directory checks, sources, and an independent decoder of the
 * container header (so layout checks do not depend on the reader).
 */
#ifndef MFS_WTEST_H
#define MFS_WTEST_H

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h> /* cmocka.h needs these three first */
#include <cmocka.h>

#include "modelfs.h"

/* Scratch directories live on disk (not tmpfs) so holes are real. */
#define WT_SCRATCH_TEMPLATE "/var/tmp/mfs-writer-test-XXXXXX"

/* Per-test state: a fresh scratch directory. */
struct wt_ctx {
	char dir[PATH_MAX];
};

/* cmocka setup/teardown creating and removing a wt_ctx. */
int wt_setup(void **state);
int wt_teardown(void **state);

/* "<dir>/<name>" in a static rotating buffer (valid for a few calls). */
const char *wt_path(const struct wt_ctx *c, const char *name);

/* Number of entries in @dir other than "." and "..". */
size_t wt_count_entries(const char *dir);
/* Number of entries whose name starts with '.' (temporary files). */
size_t wt_count_hidden(const char *dir);

/* Writes @len bytes to a new file @path (mode 0644). */
void wt_write_file(const char *path, const void *data, size_t len);
/* Reads a whole file; *len gets its size; caller frees. */
uint8_t *wt_read_file(const char *path, size_t *len);
/* Asserts @path holds exactly @len bytes equal to @data. */
void wt_assert_file(const char *path, const void *data, size_t len);
/* Asserts nothing exists at @path. */
void wt_assert_absent(const char *path);

/* Fills @buf with deterministic pseudo-random bytes from @seed. */
void wt_random(void *buf, size_t len, uint64_t seed);

/* A 1-D spec; other fields default (C order, default chunk size). */
mfs_array_spec wt_spec1(const char *name, mfs_dtype dt, uint64_t n,
			mfs_codec codec, uint32_t chunk_size);

/* Source over memory that hands out at most @step bytes per call. */
struct wt_mem_source {
	const uint8_t *data;
	size_t len;
	size_t pos;
	size_t step; /* 0 = whatever is asked */
	size_t calls;
};
ssize_t wt_mem_read(void *ctx, void *buf, size_t len);

/* The header fields, decoded by the test itself. */
struct wt_header {
	uint32_t version;
	uint32_t flags;
	uint64_t file_size;
	uint64_t index_offset;
	uint64_t index_length;
	uint64_t index_checksum;
	uint32_t array_count;
	uint32_t reserved;
	uint64_t header_checksum;
};

/*
 * Decodes the header of @path, asserting the magic, both checksums, that
 * bytes 64..4095 are zero and that file_size is the real size.
 */
void wt_read_header(const char *path, struct wt_header *h);

/* Opens @path with the reader, asserting success. */
mfs_container *wt_open(const char *path);

#endif /* MFS_WTEST_H */
