/*
 * gen_corpus.c - writes the fuzz seed corpus: a few small valid
 * containers (< 16 KiB each) covering both codecs, verbatim and compressed
 * chunks, empty and scalar arrays, Fortran order, many dtypes, long names.
 * Built by the tests' encoder (tests/reader/enc.c), independent of the
 * writer.  Usage: gen_corpus DIR  (run once; the output is committed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enc.h"

/* Seeds must stay small so that the fuzzer mutates them quickly. */
#define SEED_MAX_BYTES (16u << 10)
#define CHUNK 4096u
#define MAX_SEED_ARRAYS 24

struct seed {
	const char *file;
	const char *meta;
	struct enc_array arrays[MAX_SEED_ARRAYS];
	size_t n;
};

static float f32[1400];
static int32_t i32[3000];
static uint8_t noise[300];
static int64_t one = 42;
static double c128[2 * 3 * 2];
static uint16_t half[2 * 3 * 1 * 2 * 2];
static char long_name[201];

static void fill(void)
{
	for (size_t i = 0; i < sizeof(f32) / sizeof(f32[0]); i++)
		f32[i] = (float)i / 8.0f;
	for (size_t i = 0; i < sizeof(i32) / sizeof(i32[0]); i++)
		i32[i] = (int32_t)(i / 32);
	enc_random_bytes(noise, sizeof(noise), 5);
	for (size_t i = 0; i < sizeof(c128) / sizeof(c128[0]); i++)
		c128[i] = (double)i - 3.5;
	enc_random_bytes(half, sizeof(half), 11);
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[0] = 'L';
}

static int write_seed(const char *dir, const struct seed *s)
{
	struct enc_file f;
	char path[4096];
	int rc = 0;

	enc_build(&f, s->meta, strlen(s->meta), s->arrays, s->n);
	if (f.len > SEED_MAX_BYTES) {
		fprintf(stderr, "%s: %zu bytes, over the %u-byte seed limit\n",
			s->file, f.len, SEED_MAX_BYTES);
		rc = 1;
	} else {
		snprintf(path, sizeof(path), "%s/%s", dir, s->file);
		enc_write_file(path, f.buf, f.len);
		printf("%s: %zu bytes, %zu arrays\n", path, f.len, s->n);
	}
	enc_free(&f);
	return rc;
}

int main(int argc, char **argv)
{
	static struct seed seeds[] = {
		{.file = "raw.mfs", .meta = "{\"model\": \"raw\", \"rank\": 2}",
		 .n = 1,
		 .arrays = {{.name = "emb", .dtype = MFS_DTYPE_FLOAT32, .ndim = 2,
			     .shape = {2, 700}, .chunk_size = CHUNK,
			     .data = f32}}},
		{.file = "lz4.mfs", .meta = "{\"codec\": [\"lz4\"]}", .n = 3,
		 .arrays = {{.name = "item_sim.data", .dtype = MFS_DTYPE_INT32,
			     .ndim = 1, .shape = {3000}, .codec = MFS_CODEC_LZ4,
			     .chunk_size = CHUNK, .data = i32},
			    {.name = "noise", .dtype = MFS_DTYPE_UINT8, .ndim = 1,
			     .shape = {300}, .codec = MFS_CODEC_LZ4,
			     .chunk_size = CHUNK, .data = noise},
			    {.name = "one", .dtype = MFS_DTYPE_INT64,
			     .codec = MFS_CODEC_LZ4, .chunk_size = CHUNK,
			     .data = &one}}},
		{.file = "empty.mfs", .meta = "{}", .n = 0},
		{.file = "shapes.mfs", .meta = "{\"a\": {\"b\": null}}", .n = 4,
		 .arrays = {{.name = "e", .dtype = MFS_DTYPE_BOOL, .ndim = 3,
			     .shape = {4, 0, 2}, .chunk_size = CHUNK},
			    {.name = "c_128", .dtype = MFS_DTYPE_COMPLEX128,
			     .ndim = 2, .shape = {3, 2}, .order = MFS_ORDER_F,
			     .chunk_size = 1u << 16, .data = c128},
			    {.name = "half-5d", .dtype = MFS_DTYPE_BFLOAT16,
			     .ndim = 5, .shape = {2, 3, 1, 2, 2},
			     .codec = MFS_CODEC_LZ4, .chunk_size = CHUNK,
			     .data = half},
			    {.name = long_name, .dtype = MFS_DTYPE_FLOAT16,
			     .ndim = 1, .shape = {0}, .chunk_size = CHUNK}}},
	};
	int rc = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	fill();
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
		rc |= write_seed(argv[1], &seeds[i]);
	return rc;
}
