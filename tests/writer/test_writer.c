/*
 * test_writer.c - containers written by mfs_writer_* read back through the
 * public reader API, plus byte-level checks of the layout the writer
 * produces (header, alignment, chunk tables, holes, permissions).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wtest.h"
#include "internal.h"
#include "layout.h"

#define KIB 1024u
/* A chunk size small enough that test arrays span several chunks. */
#define SMALL_CHUNK (4 * KIB)

/* Writes one array from @data and commits; asserts success. */
static void write_one(const char *path, const mfs_array_spec *spec,
		      const void *data, size_t len)
{
	mfs_writer *w;

	assert_int_equal(mfs_writer_create(&w, path), 0);
	assert_int_equal(mfs_writer_add_array_buffer(w, spec, data, len), 0);
	assert_int_equal(mfs_writer_commit(w), 0);
}

/* Asserts that array @i of @c is described by @spec and holds @data. */
static void check_array(const mfs_container *c, size_t i,
			const mfs_array_spec *spec, const void *data,
			size_t len)
{
	mfs_array_info info;
	uint32_t cs = spec->chunk_size ? spec->chunk_size
				       : MFS_DEFAULT_CHUNK_SIZE;
	uint8_t *buf = malloc(len + 1);
	size_t found;

	assert_non_null(buf);
	assert_int_equal(mfs_container_array(c, i, &info), 0);
	assert_string_equal(info.name, spec->name);
	assert_int_equal(mfs_container_find(c, spec->name, &found), 0);
	assert_int_equal(found, i);
	assert_int_equal(info.dtype, spec->dtype);
	assert_int_equal(info.ndim, spec->ndim);
	for (uint32_t d = 0; d < spec->ndim; d++)
		assert_int_equal(info.shape[d], spec->shape[d]);
	assert_int_equal(info.order, spec->order);
	assert_int_equal(info.codec, spec->codec);
	assert_int_equal(info.chunk_size, cs);
	assert_int_equal(info.raw_length, len);
	assert_int_equal(info.chunk_count, mfs_chunk_count(len, cs));
	assert_int_equal(info.data_offset % MFS_PAGE_SIZE, 0);
	assert_true(info.data_offset >= MFS_DATA_START);
	if (spec->codec == MFS_CODEC_NONE)
		assert_int_equal(info.stored_length, len);
	/* One byte more than the array: the read must stop at its end. */
	assert_int_equal(mfs_container_read(c, i, 0, buf, len + 1),
			 (ssize_t)len);
	if (len > 0)
		assert_memory_equal(buf, data, len);
	free(buf);
}

/* Every dtype, C and Fortran order, both codecs, several chunks each. */
static void test_all_dtypes(void **state)
{
	const struct wt_ctx *ctx = *state;
	const char *path = wt_path(ctx, "dtypes.mfs");
	mfs_array_spec specs[MFS_DTYPE_COUNT];
	uint8_t *data[MFS_DTYPE_COUNT];
	size_t lens[MFS_DTYPE_COUNT];
	char names[MFS_DTYPE_COUNT][32];
	mfs_container *c;
	mfs_writer *w;

	assert_int_equal(mfs_writer_create(&w, path), 0);
	for (int dt = MFS_DTYPE_BOOL; dt < MFS_DTYPE_COUNT; dt++) {
		mfs_array_spec *s = &specs[dt];

		snprintf(names[dt], sizeof(names[dt]), "a_%s",
			 mfs_dtype_name((mfs_dtype)dt));
		memset(s, 0, sizeof(*s));
		s->name = names[dt];
		s->dtype = (mfs_dtype)dt;
		s->ndim = 2;
		s->shape[0] = 7;
		s->shape[1] = 301 + (uint64_t)dt;
		s->order = dt % 2 ? MFS_ORDER_F : MFS_ORDER_C;
		s->codec = dt % 3 ? MFS_CODEC_LZ4 : MFS_CODEC_NONE;
		s->chunk_size = SMALL_CHUNK;
		lens[dt] = 7 * s->shape[1] * mfs_dtype_size((mfs_dtype)dt);
		data[dt] = malloc(lens[dt]);
		assert_non_null(data[dt]);
		/* Half random, half a ramp: both codecs paths get work. */
		wt_random(data[dt], lens[dt] / 2, (uint64_t)dt);
		for (size_t b = lens[dt] / 2; b < lens[dt]; b++)
			data[dt][b] = (uint8_t)(b / 64);
		assert_int_equal(mfs_writer_add_array_buffer(w, s, data[dt],
							     lens[dt]), 0);
	}
	assert_int_equal(mfs_writer_commit(w), 0);

	c = wt_open(path);
	assert_int_equal(mfs_container_array_count(c), MFS_DTYPE_COUNT - 1);
	for (int dt = MFS_DTYPE_BOOL; dt < MFS_DTYPE_COUNT; dt++) {
		check_array(c, (size_t)dt - 1, &specs[dt], data[dt], lens[dt]);
		free(data[dt]);
	}
	assert_int_equal(mfs_container_verify(c, NULL, NULL), 0);
	mfs_container_close(c);
}

/* 0-d scalars and arrays with a zero in their shape. */
static void test_scalar_and_empty(void **state)
{
	const struct wt_ctx *ctx = *state;
	const char *path = wt_path(ctx, "small.mfs");
	double pi = 3.141592653589793;
	mfs_array_spec scalar = wt_spec1("scalar", MFS_DTYPE_FLOAT64, 0,
					 MFS_CODEC_NONE, 0);
	mfs_array_spec scalar_lz4 = wt_spec1("scalar_lz4", MFS_DTYPE_FLOAT64,
					     0, MFS_CODEC_LZ4, 0);
	mfs_array_spec empty = wt_spec1("empty", MFS_DTYPE_INT32, 0,
					MFS_CODEC_NONE, 0);
	mfs_array_spec empty3 = wt_spec1("empty3", MFS_DTYPE_COMPLEX128, 4,
					 MFS_CODEC_LZ4, 0);
	mfs_array_info info;
	const void *map;
	size_t map_len;
	double back = 0;
	mfs_container *c;
	mfs_writer *w;

	scalar.ndim = 0;
	scalar_lz4.ndim = 0;
	empty3.ndim = 3;
	empty3.shape[1] = 0;
	empty3.shape[2] = 3;
	assert_int_equal(mfs_writer_create(&w, path), 0);
	assert_int_equal(mfs_writer_add_array_buffer(w, &empty, NULL, 0), 0);
	assert_int_equal(mfs_writer_add_array_buffer(w, &scalar, &pi,
						     sizeof(pi)), 0);
	assert_int_equal(mfs_writer_add_array_buffer(w, &empty3, NULL, 0), 0);
	assert_int_equal(mfs_writer_add_array_buffer(w, &scalar_lz4, &pi,
						     sizeof(pi)), 0);
	assert_int_equal(mfs_writer_commit(w), 0);

	c = wt_open(path);
	assert_int_equal(mfs_container_array_count(c), 4);
	check_array(c, 0, &empty, NULL, 0);
	check_array(c, 1, &scalar, &pi, sizeof(pi));
	check_array(c, 2, &empty3, NULL, 0);
	check_array(c, 3, &scalar_lz4, &pi, sizeof(pi));
	assert_int_equal(mfs_container_array(c, 0, &info), 0);
	assert_int_equal(info.chunk_count, 0);
	assert_int_equal(info.stored_length, 0);
	assert_int_equal(mfs_container_array(c, 1, &info), 0);
	assert_int_equal(info.chunk_count, 1);
	/* 8 bytes do not compress: the LZ4 scalar is stored verbatim. */
	assert_int_equal(mfs_container_array(c, 3, &info), 0);
	assert_int_equal(info.stored_length, sizeof(pi));
	assert_int_equal(mfs_container_map(c, 0, 0, &map, &map_len), 0);
	assert_null(map);
	assert_int_equal(map_len, 0);
	assert_int_equal(mfs_container_map(c, 1, MFS_MAP_VERIFY, &map,
					   &map_len), 0);
	assert_int_equal(map_len, sizeof(pi));
	memcpy(&back, map, sizeof(back));
	assert_true(back == pi);
	mfs_unmap(map, map_len);
	assert_int_equal(mfs_container_verify(c, NULL, NULL), 0);
	mfs_container_close(c);
}

/* Compressible chunks become LZ4 blocks; incompressible ones verbatim. */
static void test_lz4_verbatim_fallback(void **state)
{
	const struct wt_ctx *ctx = *state;
	const char *path = wt_path(ctx, "lz4.mfs");
	/* 8 chunks: even ones random (verbatim), odd ones constant. */
	const size_t nchunks = 8, len = nchunks * SMALL_CHUNK;
	uint8_t *data = malloc(len);
	uint8_t *chunk = malloc(SMALL_CHUNK);
	mfs_array_spec spec = wt_spec1("mixed", MFS_DTYPE_UINT8, len,
				       MFS_CODEC_LZ4, SMALL_CHUNK);
	mfs_array_info info;
	mfs_chunk_info ch;
	uint64_t stored_sum = 0, expect_off = 0;
	const void *map;
	size_t map_len;
	mfs_container *c;
	int fd;

	assert_non_null(data);
	assert_non_null(chunk);
	for (size_t i = 0; i < nchunks; i++) {
		if (i % 2 == 0)
			wt_random(data + i * SMALL_CHUNK, SMALL_CHUNK, i);
		else
			memset(data + i * SMALL_CHUNK, (int)i, SMALL_CHUNK);
	}
	write_one(path, &spec, data, len);
	c = wt_open(path);
	check_array(c, 0, &spec, data, len);
	assert_int_equal(mfs_container_array(c, 0, &info), 0);
	fd = mfs_container_fd(c);
	for (uint64_t i = 0; i < nchunks; i++) {
		assert_int_equal(mfs_container_chunk(c, 0, i, &ch), 0);
		assert_int_equal(ch.raw_offset, i * SMALL_CHUNK);
		assert_int_equal(ch.raw_length, SMALL_CHUNK);
		if (i % 2 == 0)
			assert_int_equal(ch.stored_length, SMALL_CHUNK);
		else
			assert_true(ch.stored_length < SMALL_CHUNK / 16);
		/* Chunks back to back; checksum of the stored bytes. */
		assert_int_equal(ch.file_offset, info.data_offset + expect_off);
		assert_int_equal(mfs_pread_full(fd, chunk, ch.stored_length,
						ch.file_offset), 0);
		assert_int_equal(ch.checksum,
				 mfs_checksum(chunk, ch.stored_length));
		expect_off += ch.stored_length;
		stored_sum += ch.stored_length;
		assert_int_equal(mfs_container_read_chunk(c, 0, i, chunk,
							  SMALL_CHUNK),
				 SMALL_CHUNK);
		assert_memory_equal(chunk, data + i * SMALL_CHUNK, SMALL_CHUNK);
	}
	assert_int_equal(info.stored_length, stored_sum);
	assert_true(info.stored_length < len);
	assert_int_equal(mfs_container_map(c, 0, 0, &map, &map_len),
			 -ENOTSUP);
	mfs_container_close(c);
	free(chunk);
	free(data);
}

/* Chunk sizes that divide the array and that leave a short last chunk. */
static void test_chunk_sizes(void **state)
{
	const struct wt_ctx *ctx = *state;
	const char *path = wt_path(ctx, "chunks.mfs");
	const size_t tail = 100, full = 4 * SMALL_CHUNK;
	uint8_t *data = malloc(full + tail);
	uint8_t *buf = malloc(MFS_DEFAULT_CHUNK_SIZE);
	mfs_array_spec specs[] = {
		wt_spec1("divides", MFS_DTYPE_UINT8, full, MFS_CODEC_NONE,
			 SMALL_CHUNK),
		wt_spec1("short_last", MFS_DTYPE_UINT8, full + tail,
			 MFS_CODEC_LZ4, SMALL_CHUNK),
		wt_spec1("default", MFS_DTYPE_UINT8, full + tail,
			 MFS_CODEC_NONE, 0),
		wt_spec1("big_chunk", MFS_DTYPE_UINT8, full + tail,
			 MFS_CODEC_LZ4, MFS_MAX_CHUNK_SIZE),
	};
	const size_t lens[] = {full, full + tail, full + tail, full + tail};
	const size_t n = sizeof(specs) / sizeof(specs[0]);
	mfs_chunk_info ch;
	mfs_container *c;
	mfs_writer *w;

	assert_non_null(data);
	assert_non_null(buf);
	wt_random(data, full + tail, 42);
	assert_int_equal(mfs_writer_create(&w, path), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(mfs_writer_add_array_buffer(w, &specs[i], data,
							     lens[i]), 0);
	assert_int_equal(mfs_writer_commit(w), 0);

	c = wt_open(path);
	for (size_t i = 0; i < n; i++)
		check_array(c, i, &specs[i], data, lens[i]);
	assert_int_equal(mfs_container_chunk(c, 0, 3, &ch), 0);
	assert_int_equal(ch.raw_length, SMALL_CHUNK);
	assert_int_equal(mfs_container_chunk(c, 0, 4, &ch), -ERANGE);
	assert_int_equal(mfs_container_chunk(c, 1, 4, &ch), 0);
	assert_int_equal(ch.raw_length, tail);
	assert_int_equal(mfs_container_read_chunk(c, 1, 4, buf, SMALL_CHUNK),
			 (ssize_t)tail);
	assert_memory_equal(buf, data + full, tail);
	/* The default chunk holds the whole array: one short chunk. */
	assert_int_equal(mfs_container_chunk(c, 2, 0, &ch), 0);
	assert_int_equal(ch.raw_length, full + tail);
	assert_int_equal(mfs_container_verify(c, NULL, NULL), 0);
	mfs_container_close(c);
	free(buf);
	free(data);
}

/* Arrays follow each other on page boundaries, padding zero; the index
 * follows the last array at the next multiple of 8. */
static void test_page_alignment(void **state)
{
	const struct wt_ctx *ctx = *state;
	const char *path = wt_path(ctx, "aligned.mfs");
	const size_t lens[] = {1, 4095, 4096, 4097, 0, 12345};
	const uint64_t offsets[] = {4096, 8192, 12288, 16384, 24576, 24576};
	const size_t n = sizeof(lens) / sizeof(lens[0]);
	uint8_t data[12345];
	char names[6][8];
	mfs_array_spec spec;
	mfs_array_info info;
	struct wt_header h;
	mfs_container *c;
	mfs_writer *w;
	size_t flen;
	uint8_t *f;

	wt_random(data, sizeof(data), 7);
	assert_int_equal(mfs_writer_create(&w, path), 0);
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "arr%zu", i);
		spec = wt_spec1(names[i], MFS_DTYPE_UINT8, lens[i],
				MFS_CODEC_NONE, SMALL_CHUNK);
		assert_int_equal(mfs_writer_add_array_buffer(w, &spec, data,
							     lens[i]), 0);
	}
	assert_int_equal(mfs_writer_commit(w), 0);

	wt_read_header(path, &h);
	assert_int_equal(h.version, MFS_FORMAT_VERSION);
	assert_int_equal(h.flags, 0);
	assert_int_equal(h.reserved, 0);
	assert_int_equal(h.array_count, n);
	/* Last array ends at 24576 + 12345 = 36921; next multiple of 8. */
	assert_int_equal(h.index_offset, 36928);
	f = wt_read_file(path, &flen);
	c = wt_open(path);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(mfs_container_array(c, i, &info), 0);
		assert_int_equal(info.data_offset, offsets[i]);
		/* Raw arrays are contiguous and verbatim in the file. */
		assert_memory_equal(f + info.data_offset, data, lens[i]);
		for (uint64_t b = info.data_offset + lens[i];
		     b < (i + 1 < n ? offsets[i + 1] : h.index_offset); b++)
			assert_int_equal(f[b], 0);
	}
	/* Index preamble as FORMAT.md lays it out. */
	assert_int_equal(mfs_get32(f + h.index_offset + MFS_IDX_METADATA_LENGTH),
			 2);
	assert_int_equal(mfs_get32(f + h.index_offset + MFS_IDX_ARRAY_COUNT), n);
	assert_int_equal(mfs_get64(f + h.index_offset + MFS_IDX_RESERVED), 0);
	assert_memory_equal(f + h.index_offset + MFS_IDX_PREAMBLE_SIZE, "{}", 2);
	mfs_container_close(c);
	free(f);
}

/* Metadata is stored verbatim; the last call wins; default is "{}". */
static void test_metadata(void **state)
{
	const struct wt_ctx *ctx = *state;
	const char *path = wt_path(ctx, "meta.mfs");
	const char *path2 = wt_path(ctx, "meta2.mfs");
	const char doc[] = "{\"model\": \"als\", \"k\": 64, "
			   "\"note\": \"caf\xc3\xa9 \xe2\x9c\x93\", "
			   "\"nested\": {\"a\": [1, 2.5, null]}}";
	const char *got;
	mfs_container *c;
	mfs_writer *w;
	size_t len;

	assert_int_equal(mfs_writer_create(&w, path), 0);
	assert_int_equal(mfs_writer_set_metadata(w, "{\"old\": 1}", 10), 0);
	assert_int_equal(mfs_writer_set_metadata(w, doc, strlen(doc)), 0);
	assert_int_equal(mfs_writer_commit(w), 0);
	c = wt_open(path);
	got = mfs_container_metadata(c, &len);
	assert_int_equal(len, strlen(doc));
	assert_string_equal(got, doc);
	assert_int_equal(mfs_container_array_count(c), 0);
	mfs_container_close(c);

	assert_int_equal(mfs_writer_create(&w, path2), 0);
	assert_int_equal(mfs_writer_commit(w), 0);
	c = wt_open(path2);
	assert_string_equal(mfs_container_metadata(c, &len), "{}");
	assert_int_equal(len, 2);
	mfs_container_close(c);
}

/* Zero chunks of a raw array are holes on disk yet read back as zeros. */
static void test_raw_zero_chunks_are_holes(void **state)
{
	const struct wt_ctx *ctx = *state;
	const char *path = wt_path(ctx, "sparse.mfs");
	/* 64 KiB chunks: data, zeros x 14, data (large enough for ext4). */
	const size_t chunk = 64 * KIB, nchunks = 16, len = chunk * nchunks;
	uint8_t *data = calloc(1, len);
	mfs_array_spec spec = wt_spec1("sparse", MFS_DTYPE_FLOAT32, len / 4,
				       MFS_CODEC_NONE, (uint32_t)chunk);
	mfs_array_info info;
	mfs_chunk_info ch;
	mfs_container *c;
	off_t data_at;
	int fd;

	assert_non_null(data);
	wt_random(data, chunk, 1);
	wt_random(data + len - chunk, chunk, 2);
	write_one(path, &spec, data, len);

	c = wt_open(path);
	check_array(c, 0, &spec, data, len);
	assert_int_equal(mfs_container_array(c, 0, &info), 0);
	/* Zero chunks keep their checksum: of the real zero bytes. */
	assert_int_equal(mfs_container_chunk(c, 0, 5, &ch), 0);
	assert_int_equal(ch.checksum, mfs_checksum(data + 5 * chunk, chunk));
	assert_int_equal(mfs_container_verify(c, NULL, NULL), 0);
	fd = mfs_container_fd(c);
	data_at = lseek(fd, (off_t)(info.data_offset + chunk), SEEK_DATA);
	assert_int_equal(data_at, (off_t)(info.data_offset + len - chunk));
	mfs_container_close(c);
	free(data);
}

/* add_array_fd reads from the given offset; tiny source pieces work. */
static void test_fd_and_piecewise_sources(void **state)
{
	const struct wt_ctx *ctx = *state;
	const char *path = wt_path(ctx, "fd.mfs");
	const char *src_path = wt_path(ctx, "source.bin");
	const size_t skip = 1000, len = 3 * SMALL_CHUNK + 17;
	uint8_t *data = malloc(skip + len);
	mfs_array_spec a = wt_spec1("from_fd", MFS_DTYPE_UINT8, len,
				    MFS_CODEC_LZ4, SMALL_CHUNK);
	mfs_array_spec b = wt_spec1("pieces", MFS_DTYPE_UINT8, len,
				    MFS_CODEC_NONE, SMALL_CHUNK);
	struct wt_mem_source ms;
	mfs_container *c;
	mfs_writer *w;
	int fd;

	assert_non_null(data);
	wt_random(data, skip + len, 9);
	wt_write_file(src_path, data, skip + len);
	fd = open(src_path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	memset(&ms, 0, sizeof(ms));
	ms.data = data + skip;
	ms.len = len;
	ms.step = 7;
	assert_int_equal(mfs_writer_create(&w, path), 0);
	assert_int_equal(mfs_writer_add_array_fd(w, &a, fd, (off_t)skip), 0);
	assert_int_equal(mfs_writer_add_array(w, &b, wt_mem_read, &ms), 0);
	assert_int_equal(mfs_writer_commit(w), 0);
	close(fd);
	/* Pieces of 7 bytes, cut at chunk ends; nothing asked past the end. */
	assert_int_equal(ms.calls, 3 * ((SMALL_CHUNK + 6) / 7) + (17 + 6) / 7);
	assert_int_equal(ms.pos, len);

	c = wt_open(path);
	check_array(c, 0, &a, data + skip, len);
	check_array(c, 1, &b, data + skip, len);
	mfs_container_close(c);
	free(data);
}

/* Committing over an existing container replaces it atomically: a new
 * inode at the path, the old one still readable through its fd. */
static void test_atomic_replace(void **state)
{
	const struct wt_ctx *ctx = *state;
	const char *path = wt_path(ctx, "model.mfs");
	uint8_t old_data[5000], new_data[7000], buf[7000];
	mfs_array_spec so = wt_spec1("x", MFS_DTYPE_UINT8, sizeof(old_data),
				     MFS_CODEC_LZ4, SMALL_CHUNK);
	mfs_array_spec sn = wt_spec1("x", MFS_DTYPE_UINT8, sizeof(new_data),
				     MFS_CODEC_NONE, SMALL_CHUNK);
	struct stat before, after;
	mfs_container *old_c, *new_c;

	wt_random(old_data, sizeof(old_data), 1);
	wt_random(new_data, sizeof(new_data), 2);
	write_one(path, &so, old_data, sizeof(old_data));
	assert_int_equal(stat(path, &before), 0);
	old_c = wt_open(path);
	write_one(path, &sn, new_data, sizeof(new_data));
	assert_int_equal(stat(path, &after), 0);
	assert_int_not_equal(before.st_ino, after.st_ino);
	assert_int_equal(wt_count_entries(ctx->dir), 1);

	assert_int_equal(mfs_container_read(old_c, 0, 0, buf, sizeof(buf)),
			 sizeof(old_data));
	assert_memory_equal(buf, old_data, sizeof(old_data));
	new_c = wt_open(path);
	assert_int_equal(mfs_container_read(new_c, 0, 0, buf, sizeof(buf)),
			 sizeof(new_data));
	assert_memory_equal(buf, new_data, sizeof(new_data));
	mfs_container_close(new_c);
	mfs_container_close(old_c);
}

/* The published file gets 0666 minus the umask, not mkstemp's 0600. */
static void test_permissions_follow_umask(void **state)
{
	const struct wt_ctx *ctx = *state;
	const mode_t masks[] = {022, 027, 0};
	const char *path = wt_path(ctx, "perm.mfs");
	mode_t saved = umask(0);
	struct stat st;
	mfs_writer *w;

	for (size_t i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
		umask(masks[i]);
		assert_int_equal(mfs_writer_create(&w, path), 0);
		assert_int_equal(mfs_writer_commit(w), 0);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0666 & ~masks[i]);
	}
	umask(saved);
}

/* A relative path resolves against the directory of create time, and
 * abort leaves nothing behind. */
static void test_relative_path_and_abort(void **state)
{
	const struct wt_ctx *ctx = *state;
	char cwd[PATH_MAX];
	mfs_writer *w;
	mfs_container *c;

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(ctx->dir), 0);
	assert_int_equal(mfs_writer_create(&w, "rel.mfs"), 0);
	assert_int_equal(wt_count_hidden(ctx->dir), 1);
	assert_int_equal(chdir(cwd), 0);
	assert_int_equal(mfs_writer_commit(w), 0);
	c = wt_open(wt_path(ctx, "rel.mfs"));
	mfs_container_close(c);

	assert_int_equal(mfs_writer_create(&w, wt_path(ctx, "gone.mfs")), 0);
	assert_int_equal(wt_count_hidden(ctx->dir), 1);
	mfs_writer_abort(w);
	mfs_writer_abort(NULL);
	assert_int_equal(wt_count_entries(ctx->dir), 1);
	wt_assert_absent(wt_path(ctx, "gone.mfs"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_all_dtypes, wt_setup,
						wt_teardown),
		cmocka_unit_test_setup_teardown(test_scalar_and_empty, wt_setup,
						wt_teardown),
		cmocka_unit_test_setup_teardown(test_lz4_verbatim_fallback,
						wt_setup, wt_teardown),
		cmocka_unit_test_setup_teardown(test_chunk_sizes, wt_setup,
						wt_teardown),
		cmocka_unit_test_setup_teardown(test_page_alignment, wt_setup,
						wt_teardown),
		cmocka_unit_test_setup_teardown(test_metadata, wt_setup,
						wt_teardown),
		cmocka_unit_test_setup_teardown(test_raw_zero_chunks_are_holes,
						wt_setup, wt_teardown),
		cmocka_unit_test_setup_teardown(test_fd_and_piecewise_sources,
						wt_setup, wt_teardown),
		cmocka_unit_test_setup_teardown(test_atomic_replace, wt_setup,
						wt_teardown),
		cmocka_unit_test_setup_teardown(test_permissions_follow_umask,
						wt_setup, wt_teardown),
		cmocka_unit_test_setup_teardown(test_relative_path_and_abort,
						wt_setup, wt_teardown),
	};

	return cmocka_run_group_tests_name("writer", tests, NULL, NULL);
}
