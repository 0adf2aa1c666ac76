/*
 * fixture.c - the standard container of the reader tests (see fixture.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"

#define EMB_ROWS 5
#define EMB_COLS 1000
#define SIM_LEN 3000
#define FORT_ROWS 3
#define FORT_COLS 7

static float emb[EMB_ROWS * EMB_COLS];
static int32_t sim[SIM_LEN];
static int64_t scalar = -1234567890123LL;
static uint16_t fort[FORT_ROWS * FORT_COLS];
static struct enc_array arrays[STD_COUNT];

static void std_fill(void)
{
	/* Last third of sim is noise, so that chunk stays verbatim. */
	size_t noisy = 2 * STD_CHUNK / sizeof(int32_t);

	for (size_t i = 0; i < EMB_ROWS * EMB_COLS; i++)
		emb[i] = (float)i * 0.5f - 7.0f;
	for (size_t i = 0; i < noisy; i++)
		sim[i] = (int32_t)(i / 16);
	enc_random_bytes(sim + noisy, (SIM_LEN - noisy) * sizeof(int32_t), 99);
	enc_random_bytes(fort, sizeof(fort), 7);
}

const struct enc_array *std_arrays(void)
{
	if (arrays[0].name)
		return arrays;
	std_fill();
	arrays[STD_EMB] = (struct enc_array){
		.name = "emb", .dtype = MFS_DTYPE_FLOAT32, .ndim = 2,
		.shape = {EMB_ROWS, EMB_COLS}, .chunk_size = STD_CHUNK,
		.data = emb};
	arrays[STD_SIM] = (struct enc_array){
		.name = "sim.data", .dtype = MFS_DTYPE_INT32, .ndim = 1,
		.shape = {SIM_LEN}, .codec = MFS_CODEC_LZ4,
		.chunk_size = STD_CHUNK, .data = sim};
	arrays[STD_EMPTY] = (struct enc_array){
		.name = "empty", .dtype = MFS_DTYPE_FLOAT64, .ndim = 1,
		.shape = {0}, .chunk_size = STD_CHUNK};
	arrays[STD_SCALAR] = (struct enc_array){
		.name = "scalar", .dtype = MFS_DTYPE_INT64, .ndim = 0,
		.codec = MFS_CODEC_LZ4, .chunk_size = STD_CHUNK,
		.data = &scalar};
	arrays[STD_FORT] = (struct enc_array){
		.name = "fort", .dtype = MFS_DTYPE_BFLOAT16, .ndim = 2,
		.shape = {FORT_ROWS, FORT_COLS}, .order = MFS_ORDER_F,
		.chunk_size = STD_CHUNK, .data = fort};
	return arrays;
}

void std_build(struct enc_file *f)
{
	enc_build(f, STD_META, strlen(STD_META), std_arrays(), STD_COUNT);
}

int open_buf(const void *buf, size_t len, mfs_container **c)
{
	int fd = enc_memfd(buf, len);
	int rc = mfs_container_open_fd(c, fd, STD_LABEL);

	if (rc < 0)
		close(fd);
	return rc;
}

void expect_error(long rc, int err, const char *needle)
{
	const char *msg = mfs_last_error();

	if (rc != err || !strstr(msg, needle))
		print_error("got %ld, want %d; message \"%s\" should contain "
			    "\"%s\"\n", rc, err, msg, needle);
	assert_int_equal(rc, err);
	assert_non_null(strstr(msg, needle));
}

void expect_open_fails(const void *buf, size_t len, int err,
		       const char *needle)
{
	mfs_container *c = NULL;
	int rc = open_buf(buf, len, &c);

	if (rc == 0)
		mfs_container_close(c);
	expect_error(rc, err, needle);
	assert_non_null(strstr(mfs_last_error(), STD_LABEL ": "));
}

void expect_file_fails(const struct enc_file *f, int err, const char *needle)
{
	expect_open_fails(f->buf, f->len, err, needle);
}
