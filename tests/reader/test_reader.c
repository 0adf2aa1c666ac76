/*
 * test_reader.c - reading valid containers: array info, lookups, chunk
 * reads, ranges across chunks, mapping, manifest, verification; damaged
 * chunk data and bad LZ4 streams behind valid checksums; the argument
 * errors of every reading function; concurrent readers.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <lz4.h>
#include <xxhash.h>

#include "fixture.h"
#include "internal.h"
#include "layout.h"

#define READER_THREADS 4
#define READS_PER_THREAD 400
#define CORPUS_DIR "/tests/fuzz/corpus"

struct opened {
	struct enc_file f;
	mfs_container *c;
};

static int setup_open(void **state)
{
	struct opened *o = calloc(1, sizeof(*o));

	if (!o)
		return -1;
	std_build(&o->f);
	if (open_buf(o->f.buf, o->f.len, &o->c) != 0) {
		fprintf(stderr, "standard container: %s\n", mfs_last_error());
		return -1;
	}
	*state = o;
	return 0;
}

static int teardown_open(void **state)
{
	struct opened *o = *state;

	mfs_container_close(o->c);
	enc_free(&o->f);
	free(o);
	return 0;
}

static uint64_t raw_len(const struct enc_array *a)
{
	uint64_t n = mfs_dtype_size(a->dtype);

	for (uint32_t d = 0; d < a->ndim; d++)
		n *= a->shape[d];
	return n;
}

/* ------------------------------------------------------------------ */
/* Valid containers                                                    */
/* ------------------------------------------------------------------ */

static void test_array_info(void **state)
{
	struct opened *o = *state;
	const struct enc_array *want = std_arrays();
	mfs_array_info ai;
	size_t len;

	assert_int_equal(mfs_container_array_count(o->c), STD_COUNT);
	assert_int_equal(mfs_container_file_size(o->c), o->f.len);
	assert_int_equal(mfs_container_index_checksum(o->c),
			 XXH3_64bits(o->f.buf + o->f.index_offset,
				     o->f.index_length));
	assert_string_equal(mfs_container_label(o->c), STD_LABEL);
	assert_string_equal(mfs_container_metadata(o->c, &len), STD_META);
	assert_int_equal(len, strlen(STD_META));
	assert_true(mfs_container_fd(o->c) >= 0);
	for (size_t i = 0; i < STD_COUNT; i++) {
		const struct enc_array_pos *p = &o->f.pos[i];

		assert_int_equal(mfs_container_array(o->c, i, &ai), 0);
		assert_string_equal(ai.name, want[i].name);
		assert_int_equal(ai.dtype, want[i].dtype);
		assert_int_equal(ai.ndim, want[i].ndim);
		assert_memory_equal(ai.shape, want[i].shape,
				    want[i].ndim * sizeof(uint64_t));
		assert_int_equal(ai.order, want[i].order);
		assert_int_equal(ai.codec, want[i].codec);
		assert_int_equal(ai.chunk_size, STD_CHUNK);
		assert_int_equal(ai.raw_length, raw_len(&want[i]));
		assert_int_equal(ai.chunk_count, p->chunk_count);
		assert_int_equal(ai.stored_length, p->stored_length);
		assert_int_equal(ai.data_offset, p->data_offset);
		assert_int_equal(ai.data_offset % MFS_PAGE_SIZE, 0);
	}
	/* The lz4 array really is compressed, except its noisy chunk. */
	assert_true(o->f.pos[STD_SIM].stored_length < raw_len(&want[STD_SIM]));
	assert_true(enc_chunk_stored(&o->f, STD_SIM, 0) < STD_CHUNK);
	assert_int_equal(enc_chunk_stored(&o->f, STD_SIM, 2),
			 raw_len(&want[STD_SIM]) - 2 * STD_CHUNK);
	expect_error(mfs_container_array(o->c, STD_COUNT, &ai), -ERANGE,
		     "array index 5 is out of range (5 arrays)");
}

static void test_find(void **state)
{
	struct opened *o = *state;
	const struct enc_array *want = std_arrays();
	size_t idx;

	for (size_t i = 0; i < STD_COUNT; i++) {
		assert_int_equal(mfs_container_find(o->c, want[i].name, &idx), 0);
		assert_int_equal(idx, i);
	}
	expect_error(mfs_container_find(o->c, "sim", &idx), -ENOENT,
		     "no array named 'sim'");
	expect_error(mfs_container_find(o->c, "", &idx), -ENOENT, "no array");
	expect_error(mfs_container_find(o->c, NULL, &idx), -ENOENT,
		     "no array name given");
}

static void test_chunks(void **state)
{
	struct opened *o = *state;
	const struct enc_array *want = std_arrays();
	static uint8_t buf[STD_CHUNK];
	mfs_chunk_info ch;

	for (size_t i = 0; i < STD_COUNT; i++) {
		uint64_t raw = raw_len(&want[i]);

		for (uint64_t k = 0; k < o->f.pos[i].chunk_count; k++) {
			uint64_t left = raw - k * STD_CHUNK;
			uint32_t len = left < STD_CHUNK ? (uint32_t)left : STD_CHUNK;

			assert_int_equal(mfs_container_chunk(o->c, i, k, &ch), 0);
			assert_int_equal(ch.raw_offset, k * STD_CHUNK);
			assert_int_equal(ch.raw_length, len);
			assert_int_equal(ch.stored_length,
					 enc_chunk_stored(&o->f, i, k));
			assert_int_equal(ch.file_offset,
					 enc_chunk_file_offset(&o->f, i, k));
			memset(buf, 0xee, sizeof(buf));
			assert_int_equal(mfs_container_read_chunk(o->c, i, k, buf,
								  sizeof(buf)),
					 len);
			assert_memory_equal(buf, (const uint8_t *)want[i].data +
						    k * STD_CHUNK, len);
		}
		expect_error(mfs_container_chunk(o->c, i, o->f.pos[i].chunk_count,
						 &ch),
			     -ERANGE, "is out of range");
	}
	expect_error(mfs_container_read_chunk(o->c, STD_EMB, 5, buf, sizeof(buf)),
		     -ERANGE, "array 'emb' chunk 5 is out of range (5 chunks)");
	expect_error(mfs_container_read_chunk(o->c, 9, 0, buf, sizeof(buf)),
		     -ERANGE, "array index 9");
	expect_error(mfs_container_chunk(o->c, 9, 0, &ch), -ERANGE,
		     "array index 9");
	expect_error(mfs_container_read_chunk(o->c, STD_EMB, 4, buf, 3615),
		     -ENOBUFS, "array 'emb' chunk 4 needs 3616 bytes, the buffer "
			       "has 3615");
	expect_error(mfs_container_read_chunk(o->c, STD_SIM, 0, buf, 10),
		     -ENOBUFS, "array 'sim.data' chunk 0 needs 4096");
	/* A short last chunk fits a buffer of exactly its size. */
	assert_int_equal(mfs_container_read_chunk(o->c, STD_EMB, 4, buf, 3616),
			 3616);
}

/* Reads [off, off + len) of array @i and compares it with the source. */
static void check_range(mfs_container *c, size_t i, uint64_t off, size_t len)
{
	const struct enc_array *want = &std_arrays()[i];
	uint64_t raw = raw_len(want);
	size_t expect = off >= raw ? 0 : (size_t)(raw - off < len ? raw - off : len);
	uint8_t *buf = malloc(len + 1);
	ssize_t n;

	assert_non_null(buf);
	n = mfs_container_read(c, i, off, buf, len);
	if (n != (ssize_t)expect)
		print_error("array %zu off %llu len %zu: %zd (%s)\n", i,
			    (unsigned long long)off, len, n, mfs_last_error());
	assert_int_equal(n, expect);
	if (expect)
		assert_memory_equal(buf, (const uint8_t *)want->data + off,
				    expect);
	free(buf);
}

static void test_read_ranges(void **state)
{
	struct opened *o = *state;

	for (size_t i = 0; i < STD_COUNT; i++) {
		uint64_t raw = raw_len(&std_arrays()[i]);

		check_range(o->c, i, 0, (size_t)raw);
		check_range(o->c, i, 0, (size_t)raw + 100);
		check_range(o->c, i, raw, 10);
		check_range(o->c, i, raw + 1, 10);
		check_range(o->c, i, 0, 0);
	}
	/* Across boundaries: inside one chunk, across two, three, to the end. */
	for (size_t i = STD_EMB; i <= STD_SIM; i++) {
		check_range(o->c, i, 1, 10);
		check_range(o->c, i, STD_CHUNK - 3, 7);
		check_range(o->c, i, STD_CHUNK - 1, STD_CHUNK + 2);
		check_range(o->c, i, STD_CHUNK, STD_CHUNK);
		check_range(o->c, i, 100, 3 * STD_CHUNK);
		check_range(o->c, i, 2 * STD_CHUNK + 5, 1 << 20);
	}
	expect_error(mfs_container_read(o->c, STD_COUNT, 0, NULL, 0), -ERANGE,
		     "out of range");
}

static void test_map(void **state)
{
	struct opened *o = *state;
	const struct enc_array *want = std_arrays();
	const void *data;
	size_t len;

	for (unsigned flags = 0; flags <= MFS_MAP_VERIFY; flags++) {
		assert_int_equal(mfs_container_map(o->c, STD_EMB, flags, &data,
						   &len), 0);
		assert_int_equal(len, raw_len(&want[STD_EMB]));
		assert_memory_equal(data, want[STD_EMB].data, len);
		mfs_unmap(data, len);
		assert_int_equal(mfs_container_map(o->c, STD_FORT, flags, &data,
						   &len), 0);
		assert_int_equal(len, raw_len(&want[STD_FORT]));
		assert_memory_equal(data, want[STD_FORT].data, len);
		munmap((void *)(uintptr_t)data, len);
	}
	data = &len;
	assert_int_equal(mfs_container_map(o->c, STD_EMPTY, MFS_MAP_VERIFY,
					   &data, &len), 0);
	assert_null(data);
	assert_int_equal(len, 0);
	mfs_unmap(NULL, 0);
	expect_error(mfs_container_map(o->c, STD_SIM, 0, &data, &len), -ENOTSUP,
		     "array 'sim.data' has codec lz4");
	expect_error(mfs_container_map(o->c, STD_EMB, 2, &data, &len), -EINVAL,
		     "map flags 0x2");
	expect_error(mfs_container_map(o->c, 42, 0, &data, &len), -ERANGE,
		     "array index 42");
}

static void check_manifest_array(const mfs_container *c, size_t i,
				 json_t *a)
{
	const struct enc_array *want = &std_arrays()[i];
	mfs_array_info ai;
	mfs_chunk_info ch;
	char file[64], hex[17], hdr[MFS_NPY_HEADER_SIZE];
	json_t *sums = json_object_get(a, "chunk_checksums");
	int hdr_len;

	mfs_container_array(c, i, &ai);
	snprintf(file, sizeof(file), "%s.npy", want->name);
	assert_string_equal(json_string_value(json_object_get(a, "name")),
			    want->name);
	assert_string_equal(json_string_value(json_object_get(a, "file")), file);
	assert_string_equal(json_string_value(json_object_get(a, "dtype")),
			    mfs_dtype_name(want->dtype));
	assert_string_equal(json_string_value(json_object_get(a, "npy_descr")),
			    mfs_dtype_npy_descr(want->dtype));
	assert_int_equal(json_array_size(json_object_get(a, "shape")),
			 want->ndim);
	for (uint32_t d = 0; d < want->ndim; d++)
		assert_int_equal(json_integer_value(json_array_get(
					 json_object_get(a, "shape"), d)),
				 want->shape[d]);
	assert_string_equal(json_string_value(json_object_get(a, "order")),
			    want->order == MFS_ORDER_F ? "F" : "C");
	assert_string_equal(json_string_value(json_object_get(a, "codec")),
			    mfs_codec_name(want->codec));
	assert_int_equal(json_integer_value(json_object_get(a, "raw_size")),
			 ai.raw_length);
	assert_int_equal(json_integer_value(json_object_get(a, "stored_size")),
			 ai.stored_length);
	/* The .npy view's data offset is its header's length: 4096 bytes,
	 * or for the empty array NumPy's compact header, which for float64
	 * (0,) is 128 bytes. */
	hdr_len = mfs_npy_header(ai.dtype, ai.ndim, ai.shape, ai.order, hdr,
				 sizeof(hdr));
	assert_int_equal(ai.raw_length == 0, i == STD_EMPTY);
	assert_int_equal(hdr_len, i == STD_EMPTY ? 128 : MFS_NPY_HEADER_SIZE);
	assert_int_equal(json_integer_value(json_object_get(a, "data_offset")),
			 hdr_len);
	assert_int_equal(json_integer_value(json_object_get(a, "container_offset")),
			 ai.data_offset);
	assert_int_equal(json_integer_value(json_object_get(a, "chunk_size")),
			 STD_CHUNK);
	assert_int_equal(json_integer_value(json_object_get(a, "chunks")),
			 ai.chunk_count);
	/* One string: 16 hex digits per chunk, in chunk order. */
	assert_true(json_is_string(sums));
	assert_int_equal(json_string_length(sums), ai.chunk_count * 16);
	for (uint64_t k = 0; k < ai.chunk_count; k++) {
		mfs_container_chunk(c, i, k, &ch);
		snprintf(hex, sizeof(hex), "%016llx",
			 (unsigned long long)ch.checksum);
		assert_memory_equal(json_string_value(sums) + k * 16, hex, 16);
	}
}

static void test_manifest(void **state)
{
	struct opened *o = *state;
	json_error_t jerr;
	json_t *doc, *arrays;
	char *text;
	size_t len;
	uint64_t raw = 0, stored = 0;

	assert_int_equal(mfs_container_manifest(o->c, "demo-1", &text, &len), 0);
	assert_int_equal(len, strlen(text));
	doc = json_loads(text, 0, &jerr);
	assert_non_null(doc);
	assert_string_equal(json_string_value(json_object_get(doc, "key")),
			    "demo-1");
	assert_int_equal(json_integer_value(json_object_get(doc, "format_version")),
			 1);
	assert_int_equal(json_integer_value(json_object_get(doc, "file_size")),
			 o->f.len);
	arrays = json_object_get(doc, "arrays");
	assert_int_equal(json_array_size(arrays), STD_COUNT);
	for (size_t i = 0; i < STD_COUNT; i++) {
		check_manifest_array(o->c, i, json_array_get(arrays, i));
		raw += raw_len(&std_arrays()[i]);
		stored += o->f.pos[i].stored_length;
	}
	assert_int_equal(json_integer_value(json_object_get(doc, "total_raw_size")),
			 raw);
	assert_int_equal(json_integer_value(
				 json_object_get(doc, "total_stored_size")),
			 stored);
	json_decref(doc);
	free(text);

	assert_int_equal(mfs_container_manifest(o->c, NULL, &text, NULL), 0);
	doc = json_loads(text, 0, &jerr);
	assert_true(json_is_null(json_object_get(doc, "key")));
	json_decref(doc);
	free(text);
	expect_error(mfs_container_manifest(o->c, "../x", &text, NULL), -EINVAL,
		     "model key '../x'");
}

static void test_verify_clean(void **state)
{
	struct opened *o = *state;

	assert_int_equal(mfs_container_verify(o->c, NULL, NULL), 0);
	for (size_t a = 0; a < STD_COUNT; a++)
		for (uint64_t k = 0; k < o->f.pos[a].chunk_count; k++)
			assert_int_equal(mfs_container_check_chunk(o->c, a, k),
					 0);
	expect_error(mfs_container_check_chunk(o->c, STD_COUNT, 0), -ERANGE,
		     "array");
	expect_error(mfs_container_check_chunk(o->c, STD_EMB,
					       o->f.pos[STD_EMB].chunk_count),
		     -ERANGE, "chunk");
}

/* Opening by path: the label is the path; missing files keep errno. */
static void test_open_path(void **state)
{
	struct enc_file *f = &((struct opened *)*state)->f;
	char dir[] = "/tmp/mfs-reader-XXXXXX";
	char path[sizeof(dir) + 16];
	mfs_container *c;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/m.mfs", dir);
	expect_error(mfs_container_open(&c, path), -ENOENT, "m.mfs: open:");
	enc_write_file(path, f->buf, f->len);
	assert_int_equal(mfs_container_open(&c, path), 0);
	assert_string_equal(mfs_container_label(c), path);
	assert_int_equal(mfs_container_verify(c, NULL, NULL), 0);
	mfs_container_close(c);
	enc_write_file(path, f->buf, f->len - 1);
	expect_error(mfs_container_open(&c, path), -EBADMSG, "header file_size");
	unlink(path);
	rmdir(dir);
	expect_error(mfs_container_open(&c, NULL), -EINVAL, "no container path");
	expect_error(mfs_container_open_fd(&c, -1, "bad"), -EBADF, "bad: fstat");
	expect_error(mfs_container_open_fd(NULL, 0, NULL), -EINVAL,
		     "(container): no place");
	mfs_container_close(NULL);
}

/* ------------------------------------------------------------------ */
/* Damaged data                                                        */
/* ------------------------------------------------------------------ */

struct bad_seen {
	uint64_t mask[STD_COUNT]; /* bit k: chunk k reported */
	int errs[STD_COUNT];
	char last[256];
};

static void on_bad(void *ctx, size_t array, uint64_t chunk, int err,
		   const char *message)
{
	struct bad_seen *s = ctx;

	assert_true(array < STD_COUNT);
	assert_false(s->mask[array] & (1ull << chunk));
	s->mask[array] |= 1ull << chunk;
	s->errs[array] = err;
	snprintf(s->last, sizeof(s->last), "%s", message);
	assert_non_null(strstr(message, STD_LABEL ": array '"));
	assert_non_null(strstr(message, std_arrays()[array].name));
}

/* One damaged byte per chunk: opens, and every chunk fails alone. */
static void test_data_bit_flips(void **state)
{
	struct enc_file *f = &((struct opened *)*state)->f;
	struct bad_seen seen = {0};
	uint64_t total = 0;
	mfs_container *c;
	static uint8_t buf[STD_CHUNK];
	const void *data;
	size_t len;
	char want[96];

	for (size_t a = 0; a < STD_COUNT; a++) {
		for (uint64_t k = 0; k < f->pos[a].chunk_count; k++) {
			size_t at = enc_chunk_file_offset(f, a, k);

			f->buf[at + enc_chunk_stored(f, a, k) / 2] ^= 0x10;
			total++;
		}
	}
	assert_int_equal(open_buf(f->buf, f->len, &c), 0);
	for (size_t a = 0; a < STD_COUNT; a++) {
		for (uint64_t k = 0; k < f->pos[a].chunk_count; k++) {
			snprintf(want, sizeof(want), "array '%s' chunk %llu checksum",
				 std_arrays()[a].name, (unsigned long long)k);
			expect_error(mfs_container_read_chunk(c, a, k, buf,
							      sizeof(buf)),
				     -EIO, want);
			expect_error(mfs_container_check_chunk(c, a, k), -EIO,
				     want);
		}
	}
	expect_error(mfs_container_read(c, STD_EMB, STD_CHUNK - 1, buf, 2),
		     -EIO, "array 'emb' chunk 0 checksum");
	assert_int_equal(mfs_container_verify(c, on_bad, &seen), total);
	assert_int_equal(seen.mask[STD_EMB], 0x1f);
	assert_int_equal(seen.mask[STD_SIM], 0x7);
	assert_int_equal(seen.mask[STD_EMPTY], 0);
	assert_int_equal(seen.errs[STD_SIM], -EIO);
	expect_error(mfs_container_map(c, STD_EMB, MFS_MAP_VERIFY, &data, &len),
		     -EIO, "array 'emb' chunk 0 checksum");
	/* Without verification the caller gets the bytes, as documented. */
	assert_int_equal(mfs_container_map(c, STD_EMB, 0, &data, &len), 0);
	mfs_unmap(data, len);
	mfs_container_close(c);
}

/*
 * A compressed chunk replaced by bytes that are not a valid LZ4 block,
 * with its checksum updated: checksums pass, decoding must not.
 */
static void test_bad_lz4_stream(void **state)
{
	struct enc_file *f = &((struct opened *)*state)->f;
	size_t at = enc_chunk_file_offset(f, STD_SIM, 1);
	uint32_t n = enc_chunk_stored(f, STD_SIM, 1);
	struct bad_seen seen = {0};
	static uint8_t buf[2 * STD_CHUNK];
	mfs_container *c;

	assert_true(n < STD_CHUNK);
	memset(f->buf + at, 0xff, n);
	enc_fix_chunk(f, STD_SIM, 1);
	enc_fix_index(f);
	assert_int_equal(open_buf(f->buf, f->len, &c), 0);
	expect_error(mfs_container_read_chunk(c, STD_SIM, 1, buf, sizeof(buf)),
		     -EBADMSG, "array 'sim.data' chunk 1: stored_length");
	expect_error(mfs_container_check_chunk(c, STD_SIM, 1), -EBADMSG,
		     "array 'sim.data' chunk 1: stored_length");
	assert_non_null(strstr(mfs_last_error(), "is not a valid LZ4 block"));
	assert_int_equal(mfs_container_read_chunk(c, STD_SIM, 0, buf,
						  STD_CHUNK), STD_CHUNK);
	expect_error(mfs_container_read(c, STD_SIM, 0, buf, STD_CHUNK + 1),
		     -EBADMSG, "chunk 1");
	assert_int_equal(mfs_container_verify(c, on_bad, &seen), 1);
	assert_int_equal(seen.mask[STD_SIM], 0x2);
	assert_int_equal(seen.errs[STD_SIM], -EBADMSG);
	assert_non_null(strstr(seen.last, "LZ4"));
	mfs_container_close(c);
}

/* The file shrinks under an open container: reads fail with -EIO. */
static void test_truncated_after_open(void **state)
{
	struct enc_file *f = &((struct opened *)*state)->f;
	int fd = enc_memfd(f->buf, f->len);
	static uint8_t buf[STD_CHUNK];
	mfs_container *c;

	assert_int_equal(mfs_container_open_fd(&c, fd, STD_LABEL), 0);
	assert_int_equal(ftruncate(fd, MFS_DATA_START), 0);
	expect_error(mfs_container_read_chunk(c, STD_SIM, 0, buf, sizeof(buf)),
		     -EIO, "array 'sim.data' chunk 0: reading");
	expect_error(mfs_container_read_chunk(c, STD_EMB, 1, buf, sizeof(buf)),
		     -EIO, "unexpected end of file");
	assert_int_equal(mfs_container_verify(c, NULL, NULL),
			 f->pos[STD_EMB].chunk_count + f->pos[STD_SIM].chunk_count +
				 f->pos[STD_SCALAR].chunk_count +
				 f->pos[STD_FORT].chunk_count);
	mfs_container_close(c);
}

/* ------------------------------------------------------------------ */
/* mfs_chunk_decode on its own                                         */
/* ------------------------------------------------------------------ */

static void test_chunk_decode(void **state)
{
	static uint8_t raw[STD_CHUNK], out[STD_CHUNK], lz[STD_CHUNK * 2];
	mfs_chunk_info ch = {.raw_length = STD_CHUNK};
	int n;

	(void)state;
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)(i / 64);
	n = LZ4_compress_default((const char *)raw, (char *)lz, STD_CHUNK,
				 (int)sizeof(lz));
	assert_true(n > 0 && n < (int)STD_CHUNK);
	ch.stored_length = (uint32_t)n;
	ch.checksum = mfs_checksum(lz, (size_t)n);
	assert_int_equal(mfs_chunk_decode(MFS_CODEC_LZ4, &ch, lz, out, sizeof(out),
					  "f", "a", 0), STD_CHUNK);
	assert_memory_equal(out, raw, STD_CHUNK);
	expect_error(mfs_chunk_decode(MFS_CODEC_LZ4, &ch, lz, out, 100, "f", "a",
				      3),
		     -ENOBUFS, "f: array 'a' chunk 3 needs 4096 bytes");
	expect_error(mfs_chunk_decode(MFS_CODEC_NONE, &ch, lz, out, sizeof(out),
				      "f", "a", 0),
		     -EBADMSG, "stored_length");
	expect_error(mfs_chunk_decode((mfs_codec)7, &ch, lz, out, sizeof(out),
				      NULL, NULL, 2),
		     -EBADMSG, "(container): array '?' chunk 2 codec 7");
	/* A valid block of the wrong size: decodes to 4096, claims 4000. */
	ch.raw_length = 4000;
	expect_error(mfs_chunk_decode(MFS_CODEC_LZ4, &ch, lz, out, sizeof(out),
				      "f", "a", 1),
		     -EBADMSG, "is not a valid LZ4 block for raw length 4000");
	/* ... and one that decodes short. */
	ch.raw_length = STD_CHUNK;
	n = LZ4_compress_default((const char *)raw, (char *)lz, 1000,
				 (int)sizeof(lz));
	ch.stored_length = (uint32_t)n;
	ch.checksum = mfs_checksum(lz, (size_t)n);
	expect_error(mfs_chunk_decode(MFS_CODEC_LZ4, &ch, lz, out, sizeof(out),
				      "f", "a", 1),
		     -EBADMSG, "LZ4 block decoded to 1000 bytes, expected "
			       "raw_length 4096");
	/* Checksum first: a flipped stored byte is -EIO, not a decode error. */
	lz[0] ^= 1;
	expect_error(mfs_chunk_decode(MFS_CODEC_LZ4, &ch, lz, out, sizeof(out),
				      "f", "a", 1),
		     -EIO, "f: array 'a' chunk 1 checksum");
	/* Verbatim chunks are copied; lz4 may not be longer than raw. */
	ch.raw_length = ch.stored_length = 100;
	ch.checksum = mfs_checksum(raw, 100);
	memset(out, 0, sizeof(out));
	assert_int_equal(mfs_chunk_decode(MFS_CODEC_LZ4, &ch, raw, out, 100, "f",
					  "a", 0), 100);
	assert_memory_equal(out, raw, 100);
	assert_int_equal(mfs_chunk_decode(MFS_CODEC_NONE, &ch, raw, raw, 100, "f",
					  "a", 0), 100);
	ch.stored_length = 101;
	expect_error(mfs_chunk_decode(MFS_CODEC_LZ4, &ch, raw, out, sizeof(out),
				      "f", "a", 0),
		     -EBADMSG, "stored_length 101 exceeds raw_length 100 (lz4)");
	ch.raw_length = MFS_MAX_CHUNK_SIZE + 1;
	expect_error(mfs_chunk_decode(MFS_CODEC_LZ4, &ch, raw, out, sizeof(out),
				      "f", "a", 0),
		     -EBADMSG, "raw_length 67108865 exceeds the largest chunk");
}

/* mfs_chunk_check: stored bytes against the checksum, nothing decoded. */
static void test_chunk_check(void **state)
{
	static uint8_t stored[STD_CHUNK];
	mfs_chunk_info ch = {.raw_length = STD_CHUNK,
			     .stored_length = 1000, .file_offset = 8192};

	(void)state;
	for (size_t i = 0; i < sizeof(stored); i++)
		stored[i] = (uint8_t)(i * 7);
	ch.checksum = mfs_checksum(stored, 1000);
	assert_int_equal(mfs_chunk_check(&ch, stored, "f", "a", 2), 0);
	stored[999] ^= 0x10;
	expect_error(mfs_chunk_check(&ch, stored, "f", "a", 2), -EIO,
		     "f: array 'a' chunk 2 checksum");
	expect_error(mfs_chunk_check(&ch, stored, NULL, NULL, 5), -EIO,
		     "(container): array '?' chunk 5 checksum");
}

/* mfs_container_locate_index: the header page alone says where the
 * index is, and refuses what the open would refuse. */
static void test_locate_index(void **state)
{
	struct opened *o = *state;
	uint8_t page[MFS_HEADER_PAGE_SIZE];
	mfs_index_location loc;

	assert_int_equal(MFS_HEADER_PAGE_SIZE, MFS_DATA_START);
	memcpy(page, o->f.buf, sizeof(page));
	assert_int_equal(mfs_container_locate_index(page, sizeof(page), "c",
						    &loc), 0);
	assert_int_equal(loc.file_size, o->f.len);
	assert_int_equal(loc.file_size, mfs_container_file_size(o->c));
	assert_int_equal(loc.index_checksum,
			 mfs_container_index_checksum(o->c));
	assert_int_equal(loc.index_offset + loc.index_length, o->f.len);
	assert_int_equal(loc.index_checksum,
			 mfs_checksum(o->f.buf + loc.index_offset,
				      loc.index_length));
	expect_error(mfs_container_locate_index(page, sizeof(page) - 1, "c",
						&loc),
		     -EBADMSG, "c: 4095 bytes are less than the 4096-byte "
			       "header page");
	page[MFS_HDR_INDEX_OFFSET] ^= 1;
	expect_error(mfs_container_locate_index(page, sizeof(page), NULL,
						&loc),
		     -EBADMSG, "(container): header header_checksum");
	memcpy(page, o->f.buf, sizeof(page));
	page[100] = 1;
	expect_error(mfs_container_locate_index(page, sizeof(page), "c",
						&loc),
		     -EBADMSG, "c: header padding byte 100");
}

/*
 * An empty stored chunk is never LZ4 output for a raw length > 0 (FORMAT.md
 * rule 7): mfs_chunk_decode refuses it by its length, as the container
 * reader does, whatever its checksum says.
 */
static void test_chunk_decode_empty_lz4(void **state)
{
	static uint8_t out[STD_CHUNK];
	mfs_chunk_info ch = {.raw_length = STD_CHUNK, .stored_length = 0};

	(void)state;
	ch.checksum = mfs_checksum(out, 0) ^ 1;
	expect_error(mfs_chunk_decode(MFS_CODEC_LZ4, &ch, out, out, sizeof(out),
				      "f", "a", 0),
		     -EBADMSG, "f: array 'a' chunk 0 stored_length 0");
	ch.checksum = mfs_checksum(out, 0);
	expect_error(mfs_chunk_decode(MFS_CODEC_LZ4, &ch, out, out, sizeof(out),
				      "f", "a", 0),
		     -EBADMSG, "f: array 'a' chunk 0 stored_length 0");
}

/* ------------------------------------------------------------------ */
/* Concurrency                                                         */
/* ------------------------------------------------------------------ */

struct reader_arg {
	mfs_container *c;
	unsigned seed;
	int failures;
};

/* Random ranges of random arrays, compared with the source bytes. */
static void *reader_thread(void *p)
{
	struct reader_arg *r = p;
	static const size_t arrays[] = {STD_EMB, STD_SIM, STD_FORT, STD_SCALAR};
	uint8_t *buf = malloc(4 * STD_CHUNK);

	for (int i = 0; buf && i < READS_PER_THREAD; i++) {
		size_t a = arrays[rand_r(&r->seed) % 4];
		const struct enc_array *want = &std_arrays()[a];
		uint64_t raw = raw_len(want);
		uint64_t off = (uint64_t)rand_r(&r->seed) % raw;
		size_t len = (size_t)rand_r(&r->seed) % (4 * STD_CHUNK);
		size_t expect = raw - off < len ? (size_t)(raw - off) : len;
		ssize_t n = mfs_container_read(r->c, a, off, buf, len);

		if (n != (ssize_t)expect ||
		    memcmp(buf, (const uint8_t *)want->data + off, expect) != 0)
			r->failures++;
	}
	if (!buf)
		r->failures++;
	free(buf);
	return NULL;
}

static void test_concurrent_reads(void **state)
{
	struct opened *o = *state;
	pthread_t th[READER_THREADS];
	struct reader_arg args[READER_THREADS];

	for (int i = 0; i < READER_THREADS; i++) {
		args[i] = (struct reader_arg){.c = o->c, .seed = (unsigned)i + 1};
		assert_int_equal(pthread_create(&th[i], NULL, reader_thread,
						&args[i]), 0);
	}
	for (int i = 0; i < READER_THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(args[i].failures, 0);
	}
}

/* ------------------------------------------------------------------ */
/* The fuzz seed corpus stays valid                                    */
/* ------------------------------------------------------------------ */

static void test_fuzz_corpus_valid(void **state)
{
	const char *src = getenv("MODELFS_SOURCE_DIR");
	char dir[4096], path[4096 + 256];
	struct dirent *de;
	DIR *d;
	int files = 0;

	(void)state;
	if (!src)
		skip();
	snprintf(dir, sizeof(dir), "%s%s", src, CORPUS_DIR);
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d))) {
		mfs_container *c;
		int rc;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		rc = mfs_container_open(&c, path);
		if (rc != 0)
			print_error("%s\n", mfs_last_error());
		assert_int_equal(rc, 0);
		assert_int_equal(mfs_container_verify(c, NULL, NULL), 0);
		assert_true(mfs_container_file_size(c) <= 16384);
		mfs_container_close(c);
		files++;
	}
	closedir(d);
	assert_true(files >= 3);
}

/* The library's checksum (an AVX2 build of XXH3 where the CPU has it) is
 * libxxhash's XXH3-64 for every length class XXH3 treats apart (0-16,
 * 17-128, 129-240, longer: stripes, blocks and a partial last block) and
 * for unaligned starts. */
static void test_checksum_is_xxh3(void **state)
{
	enum { LONG_LEN = (1 << 20) + 7, SHORT_MAX = 4096, ALIGNS = 8 };
	uint8_t *buf = malloc(LONG_LEN + ALIGNS);
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	(void)state;
	assert_non_null(buf);
	for (size_t i = 0; i < LONG_LEN + ALIGNS; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		buf[i] = (uint8_t)x;
	}
	for (size_t len = 0; len <= SHORT_MAX; len++) {
		size_t off = len % ALIGNS;

		assert_int_equal(mfs_checksum(buf + off, len),
				 XXH3_64bits(buf + off, len));
	}
	for (size_t off = 0; off < ALIGNS; off++)
		assert_int_equal(mfs_checksum(buf + off, LONG_LEN - off),
				 XXH3_64bits(buf + off, LONG_LEN - off));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define OPEN_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup_open, teardown_open)
		OPEN_TEST(test_array_info),
		OPEN_TEST(test_find),
		OPEN_TEST(test_chunks),
		OPEN_TEST(test_read_ranges),
		OPEN_TEST(test_map),
		OPEN_TEST(test_manifest),
		OPEN_TEST(test_verify_clean),
		OPEN_TEST(test_open_path),
		OPEN_TEST(test_data_bit_flips),
		OPEN_TEST(test_bad_lz4_stream),
		OPEN_TEST(test_truncated_after_open),
		cmocka_unit_test(test_chunk_decode),
		cmocka_unit_test(test_chunk_decode_empty_lz4),
		cmocka_unit_test(test_chunk_check),
		OPEN_TEST(test_locate_index),
		OPEN_TEST(test_concurrent_reads),
		cmocka_unit_test(test_fuzz_corpus_valid),
		cmocka_unit_test(test_checksum_is_xxh3),
#undef OPEN_TEST
	};

	return cmocka_run_group_tests_name("reader", tests, NULL, NULL);
}
