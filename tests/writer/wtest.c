/* wtest.c - helpers of the writer tests (see wtest.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wtest.h"
#include "internal.h"
#include "layout.h"

/* Buffers wt_path rotates through, so a call can take two paths. */
#define WT_PATH_SLOTS 4
/* File descriptors nftw may keep open while walking. */
#define WT_NFTW_FDS 16

static int wt_rm_entry(const char *path, const struct stat *st, int flag,
		       struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

int wt_setup(void **state)
{
	struct wt_ctx *c = calloc(1, sizeof(*c));

	if (!c)
		return -1;
	snprintf(c->dir, sizeof(c->dir), "%s", WT_SCRATCH_TEMPLATE);
	if (!mkdtemp(c->dir)) {
		free(c);
		return -1;
	}
	*state = c;
	return 0;
}

int wt_teardown(void **state)
{
	struct wt_ctx *c = *state;
	int rc = nftw(c->dir, wt_rm_entry, WT_NFTW_FDS, FTW_DEPTH | FTW_PHYS);

	free(c);
	return rc;
}

const char *wt_path(const struct wt_ctx *c, const char *name)
{
	static char bufs[WT_PATH_SLOTS][PATH_MAX];
	static unsigned next;
	char *b = bufs[next++ % WT_PATH_SLOTS];

	/* Checked: a test asking for an over-long path gets it truncated. */
	if (snprintf(b, PATH_MAX, "%s/%s", c->dir, name) >= PATH_MAX)
		b[PATH_MAX - 1] = '\0';
	return b;
}

static size_t wt_count(const char *dir, bool hidden_only)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (!hidden_only || e->d_name[0] == '.')
			n++;
	}
	closedir(d);
	return n;
}

size_t wt_count_entries(const char *dir)
{
	return wt_count(dir, false);
}

size_t wt_count_hidden(const char *dir)
{
	return wt_count(dir, true);
}

void wt_write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(mfs_pwrite_full(fd, data, len, 0), 0);
	assert_int_equal(close(fd), 0);
}

uint8_t *wt_read_file(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(mfs_pread_full(fd, buf, (size_t)st.st_size, 0), 0);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

void wt_assert_file(const char *path, const void *data, size_t len)
{
	size_t got;
	uint8_t *buf = wt_read_file(path, &got);

	assert_int_equal(got, len);
	assert_memory_equal(buf, data, len);
	free(buf);
}

void wt_assert_absent(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(errno, ENOENT);
}

void wt_random(void *buf, size_t len, uint64_t seed)
{
	uint8_t *p = buf;
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;

	/* xorshift64*: cheap, and incompressible enough for LZ4. */
	for (size_t i = 0; i < len; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		p[i] = (uint8_t)((x * 0x2545F4914F6CDD1Dull) >> 56);
	}
}

mfs_array_spec wt_spec1(const char *name, mfs_dtype dt, uint64_t n,
			mfs_codec codec, uint32_t chunk_size)
{
	mfs_array_spec s;

	memset(&s, 0, sizeof(s));
	s.name = name;
	s.dtype = dt;
	s.ndim = 1;
	s.shape[0] = n;
	s.order = MFS_ORDER_C;
	s.codec = codec;
	s.chunk_size = chunk_size;
	return s;
}

ssize_t wt_mem_read(void *ctx, void *buf, size_t len)
{
	struct wt_mem_source *s = ctx;
	size_t n = s->len - s->pos;

	s->calls++;
	if (n > len)
		n = len;
	if (s->step && n > s->step)
		n = s->step;
	memcpy(buf, s->data + s->pos, n);
	s->pos += n;
	return (ssize_t)n;
}

void wt_read_header(const char *path, struct wt_header *h)
{
	uint8_t page[MFS_DATA_START];
	uint8_t *idx;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	/* pread only header and index: large test files are sparse GiBs. */
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(mfs_pread_full(fd, page, sizeof(page), 0), 0);
	assert_memory_equal(page + MFS_HDR_MAGIC, MFS_MAGIC, MFS_MAGIC_LEN);
	h->version = mfs_get32(page + MFS_HDR_VERSION);
	h->flags = mfs_get32(page + MFS_HDR_FLAGS);
	h->file_size = mfs_get64(page + MFS_HDR_FILE_SIZE);
	h->index_offset = mfs_get64(page + MFS_HDR_INDEX_OFFSET);
	h->index_length = mfs_get64(page + MFS_HDR_INDEX_LENGTH);
	h->index_checksum = mfs_get64(page + MFS_HDR_INDEX_CHECKSUM);
	h->array_count = mfs_get32(page + MFS_HDR_ARRAY_COUNT);
	h->reserved = mfs_get32(page + MFS_HDR_RESERVED);
	h->header_checksum = mfs_get64(page + MFS_HDR_CHECKSUM);
	assert_int_equal(h->header_checksum,
			 mfs_checksum(page, MFS_HDR_CHECKSUM));
	for (size_t i = MFS_HDR_SIZE; i < MFS_DATA_START; i++)
		assert_int_equal(page[i], 0);
	assert_int_equal(h->file_size, (uint64_t)st.st_size);
	assert_true(h->index_offset >= MFS_DATA_START);
	assert_int_equal(h->index_offset % MFS_INDEX_ALIGN, 0);
	assert_int_equal(h->index_offset + h->index_length, h->file_size);
	idx = malloc(h->index_length);
	assert_non_null(idx);
	assert_int_equal(mfs_pread_full(fd, idx, h->index_length,
					h->index_offset), 0);
	assert_int_equal(h->index_checksum, mfs_checksum(idx, h->index_length));
	free(idx);
	close(fd);
}

mfs_container *wt_open(const char *path)
{
	mfs_container *c = NULL;
	int rc = mfs_container_open(&c, path);

	if (rc != 0)
		print_error("open %s: %s\n", path, mfs_last_error());
	assert_int_equal(rc, 0);
	assert_non_null(c);
	return c;
}
