/*
 * test_writer_large.c - arrays past 4 GiB streamed from a callback with a
 * few hundred KiB of memory: once LZ4 (the file stays small), once raw
 * with zero chunks left as holes (the file is sparse).  Checks the 64-bit
 * lengths, the chunk counts and a few chunks read back, the last short.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "wtest.h"
#include "internal.h"

#define KIB 1024ull
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)
/* 4 GiB + 100 KiB + 12 bytes of float32: past 32 bits, short last chunk. */
#define LARGE_BYTES (4 * GIB + 100 * KIB + 12)
/* The LZ4 pattern changes value every PATTERN_RUN bytes. */
#define PATTERN_RUN MIB
/* Nonzero regions of the sparse array: its head, 2 GiB, its tail. */
#define REGION_LEN (64 * KIB)
#define REGION_MID (2 * GIB)
/* Upper bounds of what the files may occupy on disk. */
#define LZ4_FILE_MAX (64 * MIB)
#define SPARSE_DISK_MAX (8 * MIB)

/* A source of LARGE_BYTES generated on the fly. */
struct gen_source {
	uint64_t pos;
	uint8_t (*byte_at)(uint64_t off); /* the byte at raw offset off */
	bool sparse;
};

/* Byte at @off of the LZ4 array: constant runs, each a different value. */
static uint8_t run_byte(uint64_t off)
{
	return (uint8_t)(off / PATTERN_RUN * 37 + 1);
}

static bool in_region(uint64_t off)
{
	return off < REGION_LEN ||
	       (off >= REGION_MID && off < REGION_MID + REGION_LEN) ||
	       off >= LARGE_BYTES - REGION_LEN;
}

/* Byte at @off of the sparse array: zero outside the regions. */
static uint8_t sparse_byte(uint64_t off)
{
	return in_region(off) ? (uint8_t)((off * 131) | 1) : 0;
}

/* Fills the part of [pos, pos + len) that lies in [a, b) byte by byte. */
static void fill_region(uint8_t *p, uint64_t pos, size_t len, uint64_t a,
			uint64_t b)
{
	uint64_t lo = pos > a ? pos : a;
	uint64_t hi = pos + len < b ? pos + len : b;

	for (uint64_t off = lo; off < hi; off++)
		p[off - pos] = sparse_byte(off);
}

/* Fills runs with memset: a byte-wise loop over 4 GiB would be slow. */
static ssize_t gen_read(void *ctx, void *buf, size_t len)
{
	struct gen_source *s = ctx;
	uint8_t *p = buf;

	if (len > LARGE_BYTES - s->pos)
		len = (size_t)(LARGE_BYTES - s->pos);
	if (s->sparse) {
		memset(p, 0, len);
		fill_region(p, s->pos, len, 0, REGION_LEN);
		fill_region(p, s->pos, len, REGION_MID, REGION_MID + REGION_LEN);
		fill_region(p, s->pos, len, LARGE_BYTES - REGION_LEN,
			    LARGE_BYTES);
	} else {
		for (size_t i = 0; i < len;) {
			uint64_t off = s->pos + i;
			size_t run = (size_t)(PATTERN_RUN - off % PATTERN_RUN);
			if (run > len - i)
				run = len - i;
			memset(p + i, run_byte(off), run);
			i += run;
		}
	}
	s->pos += len;
	return (ssize_t)len;
}

/* Reads chunk @k of array 0 and compares it with the generator. */
static void check_chunk(const mfs_container *c, uint64_t k, uint8_t *buf,
			uint8_t (*byte_at)(uint64_t))
{
	mfs_chunk_info ch;
	ssize_t n;

	assert_int_equal(mfs_container_chunk(c, 0, k, &ch), 0);
	n = mfs_container_read_chunk(c, 0, k, buf, MFS_DEFAULT_CHUNK_SIZE);
	assert_int_equal(n, ch.raw_length);
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] != byte_at(ch.raw_offset + (uint64_t)i))
			fail_msg("chunk %llu byte %zd differs",
				 (unsigned long long)k, i);
	}
}

/* Writes the large array with @codec from the generator; checks it. */
static void write_large(const char *path, mfs_codec codec, bool sparse)
{
	struct gen_source src = {0, sparse ? sparse_byte : run_byte, sparse};
	mfs_array_spec s = wt_spec1("big", MFS_DTYPE_FLOAT32, LARGE_BYTES / 4,
				    codec, 0);
	const uint64_t chunks = LARGE_BYTES / MFS_DEFAULT_CHUNK_SIZE + 1;
	const uint64_t probe[] = {0, 1, REGION_MID / MFS_DEFAULT_CHUNK_SIZE,
				  chunks / 3, chunks - 2, chunks - 1};
	uint8_t *buf = malloc(MFS_DEFAULT_CHUNK_SIZE);
	struct wt_header h;
	mfs_array_info info;
	mfs_chunk_info last;
	mfs_container *c;
	mfs_writer *w;

	assert_non_null(buf);
	assert_int_equal(mfs_writer_create(&w, path), 0);
	assert_int_equal(mfs_writer_add_array(w, &s, gen_read, &src), 0);
	assert_int_equal(mfs_writer_commit(w), 0);
	assert_int_equal(src.pos, LARGE_BYTES);

	wt_read_header(path, &h);
	c = wt_open(path);
	assert_int_equal(mfs_container_array(c, 0, &info), 0);
	assert_int_equal(info.raw_length, LARGE_BYTES);
	assert_int_equal(info.shape[0], LARGE_BYTES / 4);
	assert_int_equal(info.chunk_count, chunks);
	assert_int_equal(mfs_container_chunk(c, 0, chunks - 1, &last), 0);
	assert_int_equal(last.raw_length, LARGE_BYTES % MFS_DEFAULT_CHUNK_SIZE);
	assert_int_equal(last.raw_offset, LARGE_BYTES - last.raw_length);
	for (size_t i = 0; i < sizeof(probe) / sizeof(probe[0]); i++)
		check_chunk(c, probe[i], buf, src.byte_at);
	print_message("%s: raw %llu, stored %llu, file %llu bytes\n", path,
		      (unsigned long long)info.raw_length,
		      (unsigned long long)info.stored_length,
		      (unsigned long long)h.file_size);
	if (codec == MFS_CODEC_LZ4) {
		assert_true(info.stored_length < LZ4_FILE_MAX);
		assert_true(h.file_size < LZ4_FILE_MAX);
	} else {
		struct stat st;

		assert_int_equal(info.stored_length, LARGE_BYTES);
		assert_true(h.file_size > LARGE_BYTES);
		assert_int_equal(stat(path, &st), 0);
		assert_true((uint64_t)st.st_blocks * 512 < SPARSE_DISK_MAX);
	}
	mfs_container_close(c);
	free(buf);
}

static void test_large_lz4(void **state)
{
	const struct wt_ctx *ctx = *state;

	write_large(wt_path(ctx, "large_lz4.mfs"), MFS_CODEC_LZ4, false);
}

static void test_large_raw_sparse(void **state)
{
	const struct wt_ctx *ctx = *state;

	write_large(wt_path(ctx, "large_raw.mfs"), MFS_CODEC_NONE, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_large_lz4, wt_setup,
						wt_teardown),
		cmocka_unit_test_setup_teardown(test_large_raw_sparse, wt_setup,
						wt_teardown),
	};

	return cmocka_run_group_tests_name("writer large", tests, NULL, NULL);
}
