/*
 * test_malformed.c - every validation rule of FORMAT.md driven by a
 * crafted container: each case asserts -EBADMSG (or the documented errno)
 * and a message naming the file and the field.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"
#include "internal.h"
#include "layout.h"

#define MIB (1ull << 20)
#define GIB (1ull << 30)

/* A fresh standard container per test, in *state. */
static int setup_std(void **state)
{
	struct enc_file *f = malloc(sizeof(*f));

	if (!f)
		return -1;
	std_build(f);
	*state = f;
	return 0;
}

static int teardown_std(void **state)
{
	enc_free(*state);
	free(*state);
	return 0;
}

/* Entry field @off of array @a of @f. */
static uint8_t *ent(struct enc_file *f, size_t a, size_t off)
{
	return f->buf + f->pos[a].entry + off;
}

/* Chunk table field @off of chunk @k of array @a of @f. */
static uint8_t *chk(struct enc_file *f, size_t a, uint64_t k, size_t off)
{
	return f->buf + f->pos[a].chunks + k * MFS_CHK_SIZE + off;
}

/* ------------------------------------------------------------------ */
/* Truncation and size                                                 */
/* ------------------------------------------------------------------ */

/* Cutting the file at any field boundary trips the size rules first. */
static void test_truncate_every_boundary(void **state)
{
	struct enc_file *f = *state;
	size_t tried = 0;

	for (size_t i = 0; i < f->nbounds; i++) {
		size_t b = f->bounds[i];

		if (b >= f->len)
			continue;
		expect_open_fails(f->buf, b, -EBADMSG,
				  b < MFS_DATA_START ? "smaller than the 4096-byte"
						     : "header file_size");
		tried++;
	}
	/* Header fields, preamble, metadata and every entry field. */
	assert_true(tried > 60);
}

/*
 * Cutting the index at any boundary while keeping the header consistent
 * (file_size, index_length and both checksums fixed) reaches the index
 * walk, which must notice that a field runs past the end.
 */
static void test_short_index_every_boundary(void **state)
{
	struct enc_file *f = *state;
	size_t full = f->index_length, tried = 0;

	for (size_t i = 0; i < f->nbounds; i++) {
		size_t b = f->bounds[i];
		const char *msg;
		mfs_container *c;
		int rc;

		if (b <= f->index_offset || b >= f->index_offset + full)
			continue;
		f->index_length = b - f->index_offset;
		mfs_put64(f->buf + MFS_HDR_FILE_SIZE, b);
		mfs_put64(f->buf + MFS_HDR_INDEX_LENGTH, f->index_length);
		enc_fix_index(f);
		rc = open_buf(f->buf, b, &c);
		msg = mfs_last_error();
		if (rc != -EBADMSG ||
		    (!strstr(msg, "past the end of the index") &&
		     !strstr(msg, "16-byte index preamble")))
			print_error("cut at %zu: rc %d, %s\n", b, rc, msg);
		assert_int_equal(rc, -EBADMSG);
		assert_true(strstr(msg, "past the end of the index") ||
			    strstr(msg, "16-byte index preamble"));
		tried++;
	}
	assert_true(tried > 50);
}

static void test_trailing_garbage(void **state)
{
	struct enc_file *f = *state;
	uint8_t *big = calloc(1, f->len + 1);

	assert_non_null(big);
	memcpy(big, f->buf, f->len);
	expect_open_fails(big, f->len + 1, -EBADMSG,
			  "(truncated or has trailing data)");
	free(big);
}

/* Index bytes after the last entry, counted in a consistent header. */
static void test_index_trailing_bytes(void **state)
{
	struct enc_file *f = *state;
	size_t len = f->len + MFS_INDEX_ALIGN;
	uint8_t *big = calloc(1, len);

	assert_non_null(big);
	memcpy(big, f->buf, f->len);
	free(f->buf);
	f->buf = big;
	f->len = len;
	f->index_length += MFS_INDEX_ALIGN;
	mfs_put64(f->buf + MFS_HDR_FILE_SIZE, len);
	mfs_put64(f->buf + MFS_HDR_INDEX_LENGTH, f->index_length);
	enc_fix_index(f);
	expect_file_fails(f, -EBADMSG, "index has 8 bytes after the last array");
}

static void test_empty_and_tiny_files(void **state)
{
	(void)state;
	expect_open_fails("", 0, -EBADMSG, "file size 0 is smaller");
	expect_open_fails(MFS_MAGIC, MFS_MAGIC_LEN, -EBADMSG, "file size 8");
}

/* ------------------------------------------------------------------ */
/* Header                                                              */
/* ------------------------------------------------------------------ */

static const char *header_field_at(size_t off)
{
	static const struct { size_t end; const char *name; } fields[] = {
		{MFS_HDR_VERSION, "magic"},
		{MFS_HDR_FLAGS, "version"},
		{MFS_HDR_FILE_SIZE, "flags"},
		{MFS_HDR_INDEX_OFFSET, "file_size"},
		{MFS_HDR_INDEX_LENGTH, "index_offset"},
		{MFS_HDR_INDEX_CHECKSUM, "index_length"},
		{MFS_HDR_ARRAY_COUNT, "index_checksum"},
		{MFS_HDR_RESERVED, "array_count"},
		{MFS_HDR_CHECKSUM, "reserved"},
		{MFS_HDR_SIZE, "header_checksum"},
	};

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (off < fields[i].end)
			return fields[i].name;
	}
	return NULL;
}

/* Without fixing the checksum: magic, version, else the checksum trips. */
static void test_header_bit_flips(void **state)
{
	struct enc_file *f = *state;

	for (size_t off = 0; off < MFS_HDR_SIZE; off++) {
		for (int bit = 0; bit < 8; bit++) {
			const char *want = off < MFS_HDR_VERSION ? "magic" :
					   off < MFS_HDR_FLAGS ? "version" :
								"header_checksum";

			f->buf[off] ^= (uint8_t)(1u << bit);
			expect_file_fails(f, -EBADMSG, want);
			f->buf[off] ^= (uint8_t)(1u << bit);
		}
	}
}

/* With the header checksum fixed, the field itself is what trips. */
static void test_header_bit_flips_fixed(void **state)
{
	struct enc_file *f = *state;

	for (size_t off = 0; off < MFS_HDR_CHECKSUM; off++) {
		for (int bit = 0; bit < 8; bit++) {
			f->buf[off] ^= (uint8_t)(1u << bit);
			enc_fix_header(f);
			expect_file_fails(f, -EBADMSG, header_field_at(off));
			f->buf[off] ^= (uint8_t)(1u << bit);
		}
	}
}

/* Patches a u32 header field, fixes the checksum, expects @needle. */
static void header32_fails(struct enc_file *f, size_t off, uint32_t v,
			   const char *needle)
{
	uint32_t old = mfs_get32(f->buf + off);

	mfs_put32(f->buf + off, v);
	enc_fix_header(f);
	expect_file_fails(f, -EBADMSG, needle);
	mfs_put32(f->buf + off, old);
	enc_fix_header(f);
}

static void test_header_fields(void **state)
{
	struct enc_file *f = *state;

	header32_fails(f, MFS_HDR_VERSION, 2, "header version 2 is not supported");
	header32_fails(f, MFS_HDR_VERSION, 0, "header version 0");
	header32_fails(f, MFS_HDR_FLAGS, 1, "header flags 0x1 has unknown bits");
	header32_fails(f, MFS_HDR_FLAGS, 0x80000000u, "header flags 0x80000000");
	header32_fails(f, MFS_HDR_RESERVED, 3, "header reserved 3 must be 0");
	header32_fails(f, MFS_HDR_ARRAY_COUNT, MFS_MAX_ARRAYS + 1,
		       "header array_count 65537 exceeds the limit of 65536");
	header32_fails(f, MFS_HDR_ARRAY_COUNT, STD_COUNT + 1,
		       "index array_count 5 != header array_count 6");
	memcpy(f->buf, "\x89MFS\n\x1a\n\0", MFS_MAGIC_LEN);
	expect_file_fails(f, -EBADMSG, "header magic does not match");
}

static void test_header_padding(void **state)
{
	struct enc_file *f = *state;

	f->buf[100] = 0x20;
	expect_file_fails(f, -EBADMSG, "header padding byte 100 is 0x20");
	f->buf[100] = 0;
	f->buf[MFS_DATA_START - 1] = 1;
	expect_file_fails(f, -EBADMSG, "header padding byte 4095 is 0x01");
}

/* Patches index_offset and index_length together, checksum fixed. */
static void place_index(struct enc_file *f, uint64_t off, uint64_t len)
{
	mfs_put64(f->buf + MFS_HDR_INDEX_OFFSET, off);
	mfs_put64(f->buf + MFS_HDR_INDEX_LENGTH, len);
	enc_fix_header(f);
}

static void test_index_placement(void **state)
{
	struct enc_file *f = *state;
	uint64_t io = f->index_offset, il = f->index_length;
	char want[128];

	place_index(f, io + 4, il - 4);
	snprintf(want, sizeof(want), "index_offset %llu is not a multiple of 8",
		 (unsigned long long)io + 4);
	expect_file_fails(f, -EBADMSG, want);
	place_index(f, 8, f->len - 8);
	expect_file_fails(f, -EBADMSG, "header index_offset 8 is below 4096");
	place_index(f, io, il + 8);
	expect_file_fails(f, -EBADMSG, "+ index_length");
	place_index(f, io, UINT64_MAX - 8); /* the sum overflows */
	expect_file_fails(f, -EBADMSG, "!= file_size");
	place_index(f, f->len - 8, 8);
	expect_file_fails(f, -EBADMSG,
			  "index_length 8 is smaller than the 16-byte index "
			  "preamble");
}

/* An index over 1 GiB is refused before it is read (sparse file). */
static void test_index_too_long(void **state)
{
	struct enc_file *f = *state;
	uint64_t size = MFS_DATA_START + GIB + MFS_INDEX_ALIGN;
	mfs_container *c;
	int fd;

	mfs_put64(f->buf + MFS_HDR_FILE_SIZE, size);
	place_index(f, MFS_DATA_START, GIB + MFS_INDEX_ALIGN);
	fd = enc_memfd(f->buf, MFS_DATA_START);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	expect_error(mfs_container_open_fd(&c, fd, STD_LABEL), -EBADMSG,
		     "index_length 1073741832 exceeds the limit of 1073741824");
	close(fd);
}

/* ------------------------------------------------------------------ */
/* Index: checksum, preamble, metadata                                 */
/* ------------------------------------------------------------------ */

static void test_index_bit_flips(void **state)
{
	struct enc_file *f = *state;

	for (size_t i = f->index_offset; i < f->len; i++) {
		uint8_t bit = (uint8_t)(1u << (i % 8));

		f->buf[i] ^= bit;
		expect_file_fails(f, -EBADMSG, "header index_checksum");
		f->buf[i] ^= bit;
	}
}

/* True if index byte @at lies in a chunk checksum field. */
static bool in_chunk_checksum(const struct enc_file *f, size_t at)
{
	for (size_t a = 0; a < f->narrays; a++) {
		const struct enc_array_pos *p = &f->pos[a];

		if (at < p->chunks || at >= p->chunks + p->chunk_count * MFS_CHK_SIZE)
			continue;
		return (at - p->chunks) % MFS_CHK_SIZE >= MFS_CHK_CHECKSUM;
	}
	return false;
}

/* Reads everything of an opened container; damage must stay contained. */
static void walk_container(mfs_container *c)
{
	static uint8_t buf[STD_CHUNK * 8];
	char *man;
	mfs_array_info ai;

	assert_true(mfs_container_verify(c, NULL, NULL) >= 0);
	for (size_t a = 0; a < mfs_container_array_count(c); a++) {
		assert_int_equal(mfs_container_array(c, a, &ai), 0);
		if (ai.raw_length <= sizeof(buf)) {
			ssize_t n = mfs_container_read(c, a, 0, buf, sizeof(buf));

			assert_true(n == (ssize_t)ai.raw_length || n == -EIO ||
				    n == -EBADMSG);
		}
	}
	assert_int_equal(mfs_container_manifest(c, "k", &man, NULL), 0);
	free(man);
}

/*
 * Every bit of the index flipped with the index checksum fixed: the
 * container is either refused with -EBADMSG naming the file or opens and
 * reads safely (a flipped metadata digit can still be valid JSON).  A
 * flipped chunk checksum always opens and then fails exactly one chunk.
 */
static void test_index_bit_flips_fixed(void **state)
{
	struct enc_file *f = *state;
	size_t opened = 0, refused = 0;

	for (size_t i = f->index_offset; i < f->len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			mfs_container *c;
			int rc;

			f->buf[i] ^= (uint8_t)(1u << bit);
			enc_fix_index(f);
			rc = open_buf(f->buf, f->len, &c);
			if (in_chunk_checksum(f, i)) {
				assert_int_equal(rc, 0);
				assert_int_equal(mfs_container_verify(c, NULL, NULL),
						 1);
			}
			if (rc == 0) {
				walk_container(c);
				mfs_container_close(c);
				opened++;
			} else {
				expect_error(rc, -EBADMSG, STD_LABEL ": ");
				refused++;
			}
			f->buf[i] ^= (uint8_t)(1u << bit);
		}
	}
	enc_fix_index(f);
	print_message("index bit flips: %zu opened, %zu refused\n", opened,
		      refused);
	assert_true(refused > opened);
}

static void test_index_preamble(void **state)
{
	struct enc_file *f = *state;
	uint8_t *pre = f->buf + f->index_offset;

	mfs_put32(pre + MFS_IDX_ARRAY_COUNT, 4);
	enc_fix_index(f);
	expect_file_fails(f, -EBADMSG, "index array_count 4 != header array_count 5");
	mfs_put32(pre + MFS_IDX_ARRAY_COUNT, STD_COUNT);
	mfs_put64(pre + MFS_IDX_RESERVED, 1);
	enc_fix_index(f);
	expect_file_fails(f, -EBADMSG, "index reserved 1 must be 0");
}

static void test_metadata_length(void **state)
{
	struct enc_file *f = *state;
	uint8_t *len = f->buf + f->index_offset + MFS_IDX_METADATA_LENGTH;

	mfs_put32(len, MFS_MAX_METADATA + 1);
	enc_fix_index(f);
	expect_file_fails(f, -EBADMSG,
			  "index metadata_length 16777217 exceeds the limit of "
			  "16777216");
	mfs_put32(len, UINT32_MAX);
	enc_fix_index(f);
	expect_file_fails(f, -EBADMSG, "metadata_length 4294967295 exceeds");
	mfs_put32(len, (uint32_t)f->index_length);
	enc_fix_index(f);
	expect_file_fails(f, -EBADMSG, "metadata_length");
	expect_file_fails(f, -EBADMSG, "runs past the end of the index");
}

/* Builds the standard arrays with metadata @meta and expects @needle. */
static void metadata_fails(const char *meta, size_t len, const char *needle)
{
	struct enc_file f;

	enc_build(&f, meta, len, std_arrays(), STD_COUNT);
	expect_file_fails(&f, -EBADMSG, needle);
	enc_free(&f);
}

static void test_metadata_content(void **state)
{
	(void)state;
	metadata_fails("{\"a\": 1", 7, "index metadata: metadata is not valid JSON");
	metadata_fails("[1, 2]", 6, "must be a JSON object");
	metadata_fails("{\"a\": \"\xff\"}", 10, "not valid JSON");
	metadata_fails("{\"a\": \"\xc3\"}", 10, "not valid JSON");
	metadata_fails("{}\0 ", 4, "NUL byte");
	metadata_fails("", 0, "not valid JSON");
	metadata_fails("{\"a\":1,\"a\":2}", 13, "duplicate");
}

static void test_metadata_padding(void **state)
{
	struct enc_file *f = *state;
	size_t pad = f->metadata + strlen(STD_META);

	f->buf[pad + 2] = 'x';
	enc_fix_index(f);
	expect_file_fails(f, -EBADMSG, "index metadata padding byte");
}

/* ------------------------------------------------------------------ */
/* Array entries                                                       */
/* ------------------------------------------------------------------ */

/* Sets entry byte/u16/u32/u64 and fixes the index; then expects @needle. */
static void entry_fails(struct enc_file *f, size_t a, size_t off, int width,
			uint64_t v, const char *needle)
{
	uint8_t save[8];
	uint8_t *p = ent(f, a, off);

	memcpy(save, p, sizeof(save));
	switch (width) {
	case 1: p[0] = (uint8_t)v; break;
	case 2: mfs_put16(p, (uint16_t)v); break;
	case 4: mfs_put32(p, (uint32_t)v); break;
	default: mfs_put64(p, v); break;
	}
	enc_fix_index(f);
	expect_file_fails(f, -EBADMSG, needle);
	memcpy(p, save, sizeof(save));
	enc_fix_index(f);
}

static void test_entry_enums(void **state)
{
	struct enc_file *f = *state;

	entry_fails(f, STD_SIM, MFS_ENT_DTYPE, 1, 0,
		    "array #1 dtype 0 is unknown (valid: 1..15)");
	entry_fails(f, STD_SIM, MFS_ENT_DTYPE, 1, 16, "array #1 dtype 16");
	entry_fails(f, STD_SIM, MFS_ENT_DTYPE, 1, 255, "dtype 255 is unknown");
	entry_fails(f, STD_FORT, MFS_ENT_ORDER, 1, 2, "array #4 order 2 is unknown");
	entry_fails(f, STD_EMB, MFS_ENT_CODEC, 1, 2, "array #0 codec 2 is unknown");
	entry_fails(f, STD_EMB, MFS_ENT_NDIM, 1, MFS_MAX_NDIM + 1,
		    "array #0 ndim 33 exceeds the limit of 32");
	entry_fails(f, STD_EMB, MFS_ENT_NAME_LENGTH, 2, 0,
		    "array #0 name_length 0 is outside 1..200");
	entry_fails(f, STD_EMB, MFS_ENT_NAME_LENGTH, 2, MFS_MAX_NAME_LEN + 1,
		    "array #0 name_length 201 is outside 1..200");
	entry_fails(f, STD_EMB, MFS_ENT_RESERVED1, 2, 1,
		    "reserved field at entry offset 6 is 1");
	entry_fails(f, STD_SCALAR, MFS_ENT_RESERVED2, 4, 9,
		    "array #3 reserved field at entry offset 12 is 9");
}

static void test_entry_sizes(void **state)
{
	struct enc_file *f = *state;

	entry_fails(f, STD_EMB, MFS_ENT_RAW_LENGTH, 8, 20004,
		    "array 'emb' (#0) raw_length 20004 != product(shape) x "
		    "itemsize 20000");
	entry_fails(f, STD_EMB, MFS_ENT_CHUNK_SIZE, 4, 5000,
		    "array 'emb' (#0) chunk_size 5000 is not a power of two");
	entry_fails(f, STD_EMB, MFS_ENT_CHUNK_SIZE, 4, 2048, "chunk_size 2048");
	entry_fails(f, STD_EMB, MFS_ENT_CHUNK_SIZE, 4, 128u << 20,
		    "chunk_size 134217728");
	entry_fails(f, STD_EMB, MFS_ENT_CHUNK_SIZE, 4, 0, "chunk_size 0");
	entry_fails(f, STD_EMB, MFS_ENT_CHUNK_COUNT, 8, 4,
		    "array 'emb' (#0) chunk_count 4 != ceil(raw_length / "
		    "chunk_size) = 5");
	entry_fails(f, STD_EMB, MFS_ENT_STORED_LENGTH, 8, 20001,
		    "array 'emb' (#0) stored_length 20001 != sum of its chunks' "
		    "stored lengths 20000");
}

/* Shapes whose product overflows, and a huge but consistent one. */
static void test_shape_overflow(void **state)
{
	struct enc_file *f = *state;
	uint8_t *shape = f->buf + f->pos[STD_EMB].shape;
	char want[128];

	mfs_put64(shape, 1ull << 32);
	mfs_put64(shape + 8, 1ull << 32);
	enc_fix_index(f);
	expect_file_fails(f, -EBADMSG,
			  "array 'emb' (#0) shape product x itemsize overflows");
	/* 2^62 elements of 4 bytes: the itemsize multiplication overflows. */
	mfs_put64(shape, 1ull << 31);
	mfs_put64(shape + 8, 1ull << 31);
	enc_fix_index(f);
	expect_file_fails(f, -EBADMSG, "overflows 64 bits");
	/* Consistent sizes (2^62 bytes in 2^50 chunks): the chunk table
	 * cannot fit in the index, and the walk must not try to read it. */
	mfs_put64(shape, 1ull << 30);
	mfs_put64(shape + 8, 1ull << 30);
	mfs_put64(ent(f, STD_EMB, MFS_ENT_RAW_LENGTH), 1ull << 62);
	mfs_put64(ent(f, STD_EMB, MFS_ENT_CHUNK_COUNT), (1ull << 62) / STD_CHUNK);
	enc_fix_index(f);
	snprintf(want, sizeof(want), "array 'emb' (#0) chunk table (%llu bytes",
		 (unsigned long long)((1ull << 62) / STD_CHUNK * MFS_CHK_SIZE));
	expect_file_fails(f, -EBADMSG, want);
}

/* Array names: rule 5 with names from the encoder as given. */
static void name_fails(const char *name, const char *needle)
{
	struct enc_array arr[STD_COUNT];
	struct enc_file f;

	memcpy(arr, std_arrays(), sizeof(arr));
	arr[STD_FORT].name = name;
	enc_build(&f, STD_META, strlen(STD_META), arr, STD_COUNT);
	expect_file_fails(&f, -EBADMSG, needle);
	enc_free(&f);
}

static void test_names(void **state)
{
	char longest[MFS_MAX_NAME_LEN + 1];

	(void)state;
	name_fails(".hidden", "array #4 name '.hidden' is invalid");
	name_fails("a/b", "array #4 name 'a/b' is invalid");
	name_fails("a b", "name 'a b' is invalid");
	name_fails("\x80x", "name '?x' is invalid");
	name_fails("caf\xc3\xa9", "name 'caf?\?' is invalid");
	name_fails("emb", "array name 'emb' is used twice (#0 and #4)");
	name_fails("sim.data", "(#1 and #4)");
	memset(longest, 'n', MFS_MAX_NAME_LEN);
	longest[MFS_MAX_NAME_LEN] = '\0';
	{
		struct enc_array arr[STD_COUNT];
		struct enc_file f;
		mfs_container *c;
		size_t idx;

		memcpy(arr, std_arrays(), sizeof(arr));
		arr[STD_FORT].name = longest;
		enc_build(&f, STD_META, strlen(STD_META), arr, STD_COUNT);
		assert_int_equal(open_buf(f.buf, f.len, &c), 0);
		assert_int_equal(mfs_container_find(c, longest, &idx), 0);
		assert_int_equal(idx, STD_FORT);
		mfs_container_close(c);
		enc_free(&f);
	}
}

/* A NUL byte or nonzero padding around a valid-looking name. */
static void test_name_bytes(void **state)
{
	struct enc_file *f = *state;
	size_t name = f->pos[STD_EMB].name;

	f->buf[name + 1] = '\0';
	enc_fix_index(f);
	expect_file_fails(f, -EBADMSG, "array #0 name 'e?b' is invalid");
	f->buf[name + 1] = 'm';
	f->buf[name + 3] = 'x'; /* first padding byte after "emb" */
	enc_fix_index(f);
	expect_file_fails(f, -EBADMSG, "array 'emb' (#0) name padding byte");
}

/* ------------------------------------------------------------------ */
/* Chunk tables                                                        */
/* ------------------------------------------------------------------ */

static void chunk_fails(struct enc_file *f, size_t a, uint64_t k, size_t off,
			int width, uint64_t v, const char *needle)
{
	uint8_t save[8];
	uint8_t *p = chk(f, a, k, off);

	memcpy(save, p, sizeof(save));
	if (width == 4)
		mfs_put32(p, (uint32_t)v);
	else
		mfs_put64(p, v);
	enc_fix_index(f);
	expect_file_fails(f, -EBADMSG, needle);
	memcpy(p, save, sizeof(save));
	enc_fix_index(f);
}

static void test_chunk_table(void **state)
{
	struct enc_file *f = *state;
	uint32_t s0 = enc_chunk_stored(f, STD_SIM, 0);
	char want[160];

	chunk_fails(f, STD_EMB, 1, MFS_CHK_OFFSET, 8, STD_CHUNK + 1,
		    "array 'emb' (#0) chunk 1 offset 4097 != expected 4096");
	chunk_fails(f, STD_EMB, 0, MFS_CHK_OFFSET, 8, 8,
		    "chunk 0 offset 8 != expected 0");
	chunk_fails(f, STD_EMB, 4, MFS_CHK_OFFSET, 8, UINT64_MAX,
		    "chunk 4 offset 18446744073709551615 != expected 16384");
	chunk_fails(f, STD_EMB, 2, MFS_CHK_RESERVED, 4, 1,
		    "array 'emb' (#0) chunk 2 reserved 1 must be 0");
	chunk_fails(f, STD_EMB, 0, MFS_CHK_STORED_LENGTH, 4, STD_CHUNK - 1,
		    "chunk 0 stored_length 4095 != its raw length 4096 (codec "
		    "none");
	chunk_fails(f, STD_EMB, 4, MFS_CHK_STORED_LENGTH, 4, STD_CHUNK,
		    "chunk 4 stored_length 4096 != its raw length 3616");
	chunk_fails(f, STD_SIM, 0, MFS_CHK_STORED_LENGTH, 4, STD_CHUNK + 1,
		    "array 'sim.data' (#1) chunk 0 stored_length 4097 is outside "
		    "1..4096");
	chunk_fails(f, STD_SIM, 0, MFS_CHK_STORED_LENGTH, 4, 0,
		    "chunk 0 stored_length 0 is outside 1..4096");
	snprintf(want, sizeof(want), "chunk 1 offset %u != expected %u", s0,
		 s0 + 1);
	chunk_fails(f, STD_SIM, 0, MFS_CHK_STORED_LENGTH, 4, s0 + 1, want);
}

/* ------------------------------------------------------------------ */
/* Placement                                                           */
/* ------------------------------------------------------------------ */

static void test_data_offsets(void **state)
{
	struct enc_file *f = *state;
	uint64_t sim = f->pos[STD_SIM].data_offset;
	char want[200];

	entry_fails(f, STD_EMB, MFS_ENT_DATA_OFFSET, 8, MFS_DATA_START + 1,
		    "array 'emb' (#0) data_offset 4097 is not a multiple of 4096");
	entry_fails(f, STD_EMB, MFS_ENT_DATA_OFFSET, 8, 0,
		    "array 'emb' (#0) data_offset 0 is below 4096");
	/* sim.data on top of emb. */
	snprintf(want, sizeof(want),
		 "array 'sim.data' (#1) data_offset 4096 is before the end of "
		 "the previous array (%llu)",
		 (unsigned long long)(MFS_DATA_START + f->pos[STD_EMB].stored_length));
	entry_fails(f, STD_SIM, MFS_ENT_DATA_OFFSET, 8, MFS_DATA_START, want);
	/* emb moved one page on: it now runs into sim.data. */
	snprintf(want, sizeof(want),
		 "array 'sim.data' (#1) data_offset %llu is before the end of "
		 "the previous array (%llu)", (unsigned long long)sim,
		 (unsigned long long)(2 * MFS_PAGE_SIZE +
				      f->pos[STD_EMB].stored_length));
	entry_fails(f, STD_EMB, MFS_ENT_DATA_OFFSET, 8, 2 * MFS_PAGE_SIZE, want);
	snprintf(want, sizeof(want),
		 "array 'fort' (#4) data_offset %llu + stored_length 42 runs "
		 "past index_offset %zu",
		 (unsigned long long)(f->index_offset / MFS_PAGE_SIZE + 1) *
			 MFS_PAGE_SIZE, f->index_offset);
	entry_fails(f, STD_FORT, MFS_ENT_DATA_OFFSET, 8,
		    (f->index_offset / MFS_PAGE_SIZE + 1) * MFS_PAGE_SIZE, want);
	entry_fails(f, STD_FORT, MFS_ENT_DATA_OFFSET, 8,
		    UINT64_MAX - MFS_PAGE_SIZE + 1,
		    "data_offset 18446744073709547520 + stored_length 42 runs past");
	/* An empty array still may not sit past the index. */
	entry_fails(f, STD_EMPTY, MFS_ENT_DATA_OFFSET, 8,
		    (f->index_offset / MFS_PAGE_SIZE + 1) * MFS_PAGE_SIZE,
		    "array 'empty' (#2) data_offset");
}

/* ------------------------------------------------------------------ */
/* Array count                                                         */
/* ------------------------------------------------------------------ */

/* The most arrays a container may hold opens; lookups stay exact. */
static void test_max_arrays(void **state)
{
	static char names[MFS_MAX_ARRAYS][8];
	struct enc_array *arr = calloc(MFS_MAX_ARRAYS, sizeof(*arr));
	struct enc_file f;
	mfs_container *c;
	size_t idx;

	(void)state;
	assert_non_null(arr);
	for (size_t i = 0; i < MFS_MAX_ARRAYS; i++) {
		/* Reverse order, so the sorted table differs from file order. */
		snprintf(names[i], sizeof(names[i]), "a%05zu",
			 (size_t)MFS_MAX_ARRAYS - 1 - i);
		arr[i] = (struct enc_array){.name = names[i], .ndim = 1,
					    .dtype = MFS_DTYPE_UINT8,
					    .chunk_size = STD_CHUNK};
	}
	enc_build(&f, "{}", 2, arr, MFS_MAX_ARRAYS);
	assert_int_equal(open_buf(f.buf, f.len, &c), 0);
	assert_int_equal(mfs_container_array_count(c), MFS_MAX_ARRAYS);
	assert_int_equal(mfs_container_find(c, "a00000", &idx), 0);
	assert_int_equal(idx, MFS_MAX_ARRAYS - 1);
	assert_int_equal(mfs_container_find(c, "a65535", &idx), 0);
	assert_int_equal(idx, 0);
	assert_int_equal(mfs_container_find(c, "a1234", &idx), -ENOENT);
	mfs_container_close(c);
	enc_free(&f);

	/* The same with one duplicate far from its twin. */
	arr[MFS_MAX_ARRAYS - 1].name = names[0];
	enc_build(&f, "{}", 2, arr, MFS_MAX_ARRAYS);
	expect_file_fails(&f, -EBADMSG,
			  "array name 'a65535' is used twice (#0 and #65535)");
	enc_free(&f);
	free(arr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define STD_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup_std, teardown_std)
		STD_TEST(test_truncate_every_boundary),
		STD_TEST(test_short_index_every_boundary),
		STD_TEST(test_trailing_garbage),
		STD_TEST(test_index_trailing_bytes),
		cmocka_unit_test(test_empty_and_tiny_files),
		STD_TEST(test_header_bit_flips),
		STD_TEST(test_header_bit_flips_fixed),
		STD_TEST(test_header_fields),
		STD_TEST(test_header_padding),
		STD_TEST(test_index_placement),
		STD_TEST(test_index_too_long),
		STD_TEST(test_index_bit_flips),
		STD_TEST(test_index_bit_flips_fixed),
		STD_TEST(test_index_preamble),
		STD_TEST(test_metadata_length),
		cmocka_unit_test(test_metadata_content),
		STD_TEST(test_metadata_padding),
		STD_TEST(test_entry_enums),
		STD_TEST(test_entry_sizes),
		STD_TEST(test_shape_overflow),
		cmocka_unit_test(test_names),
		STD_TEST(test_name_bytes),
		STD_TEST(test_chunk_table),
		STD_TEST(test_data_offsets),
		cmocka_unit_test(test_max_arrays),
#undef STD_TEST
	};

	return cmocka_run_group_tests_name("reader_malformed", tests, NULL, NULL);
}
