/*
 * fuzz_container.c - libFuzzer target for the container reader: the
 * input is a container file.  Whatever it holds, open must either refuse
 * it with -EBADMSG or hand out a container whose every array and chunk can
 * be read, mapped and described without a crash or an out-of-bounds
 * access, and whose errors are the documented ones.
 *
 * Each input is tried twice: as it is, and with the header made to agree
 * with it (file_size, index_length, both checksums recomputed).  Random
 * mutations almost never keep a 64-bit checksum right, so without the
 * second pass the fuzzer would rarely get past the header into the index
 * walk, which is where the interesting rules are.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "layout.h"

/* Bytes read through mfs_container_read per array: enough to span chunks. */
#define FUZZ_READ_MAX (64u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A violated promise of the API: make the fuzzer report it. */
static void fuzz_require(int ok)
{
	if (!ok)
		__builtin_trap();
}

static int fuzz_read_error_ok(ssize_t n)
{
	return n == -EIO || n == -EBADMSG || n == -ENOMEM;
}

/* Every chunk, each into a buffer of exactly its raw length. */
static void fuzz_chunks(const mfs_container *c, size_t a,
			const mfs_array_info *ai)
{
	mfs_chunk_info ch;

	for (uint64_t k = 0; k < ai->chunk_count; k++) {
		uint8_t *buf;
		ssize_t n;

		fuzz_require(mfs_container_chunk(c, a, k, &ch) == 0);
		fuzz_require(ch.file_offset + ch.stored_length <=
			     mfs_container_file_size(c));
		buf = malloc(ch.raw_length ? ch.raw_length : 1);
		if (!buf)
			return;
		n = mfs_container_read_chunk(c, a, k, buf, ch.raw_length);
		fuzz_require(n == (ssize_t)ch.raw_length || fuzz_read_error_ok(n));
		free(buf);
	}
	fuzz_require(mfs_container_chunk(c, a, ai->chunk_count, &ch) == -ERANGE);
}

/* A range from an odd offset, crossing the first chunk boundary. */
static void fuzz_range(const mfs_container *c, size_t a,
		       const mfs_array_info *ai)
{
	uint64_t off = ai->raw_length > ai->chunk_size ? ai->chunk_size - 1 : 0;
	size_t want = ai->raw_length - off < FUZZ_READ_MAX ?
			      (size_t)(ai->raw_length - off) : FUZZ_READ_MAX;
	uint8_t *buf = malloc(FUZZ_READ_MAX);
	ssize_t n;

	if (!buf)
		return;
	n = mfs_container_read(c, a, off, buf, FUZZ_READ_MAX);
	fuzz_require(n == (ssize_t)want || fuzz_read_error_ok(n));
	free(buf);
}

static void fuzz_map(const mfs_container *c, size_t a, const mfs_array_info *ai)
{
	const void *p;
	size_t len;
	int rc = mfs_container_map(c, a, MFS_MAP_VERIFY, &p, &len);

	if (ai->codec == MFS_CODEC_LZ4) {
		fuzz_require(rc == -ENOTSUP);
		return;
	}
	fuzz_require(rc == 0 || rc == -EIO);
	if (rc == 0) {
		fuzz_require(len == ai->raw_length);
		mfs_unmap(p, len);
	}
}

static void fuzz_walk(const mfs_container *c)
{
	mfs_array_info ai;
	char *man;
	size_t idx, len;

	for (size_t a = 0; a < mfs_container_array_count(c); a++) {
		fuzz_require(mfs_container_array(c, a, &ai) == 0);
		fuzz_require(mfs_container_find(c, ai.name, &idx) == 0 && idx == a);
		fuzz_require(ai.data_offset % MFS_PAGE_SIZE == 0);
		fuzz_chunks(c, a, &ai);
		fuzz_range(c, a, &ai);
		fuzz_map(c, a, &ai);
	}
	if (mfs_container_manifest(c, "fuzz", &man, &len) == 0) {
		fuzz_require(strlen(man) == len);
		free(man);
	}
	fuzz_require(mfs_container_verify(c, NULL, NULL) >= 0);
	fuzz_require(strlen(mfs_container_metadata(c, &len)) == len);
}

/* Opens @size bytes of @data from a memfd and walks what opens. */
static void fuzz_one(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);
	mfs_container *c;
	int rc;

	if (fd < 0)
		return;
	if (mfs_pwrite_full(fd, data, size, 0) < 0) {
		close(fd);
		return;
	}
	rc = mfs_container_open_fd(&c, fd, "fuzz.mfs");
	if (rc < 0) {
		fuzz_require(rc == -EBADMSG || rc == -ENOMEM);
		fuzz_require(strncmp(mfs_last_error(), "fuzz.mfs: ", 10) == 0);
		close(fd);
		return;
	}
	fuzz_walk(c);
	mfs_container_close(c);
}

/* Makes the header of @buf agree with its size and contents. */
static void fuzz_fix_header(uint8_t *buf, size_t size)
{
	uint64_t io = mfs_get64(buf + MFS_HDR_INDEX_OFFSET);

	mfs_put64(buf + MFS_HDR_FILE_SIZE, size);
	if (io <= size) {
		mfs_put64(buf + MFS_HDR_INDEX_LENGTH, size - io);
		mfs_put64(buf + MFS_HDR_INDEX_CHECKSUM,
			  mfs_checksum(buf + io, size - (size_t)io));
	}
	mfs_put64(buf + MFS_HDR_CHECKSUM, mfs_checksum(buf, MFS_HDR_CHECKSUM));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *fixed;

	fuzz_one(data, size);
	if (size < MFS_DATA_START)
		return 0;
	fixed = malloc(size);
	if (!fixed)
		return 0;
	memcpy(fixed, data, size);
	fuzz_fix_header(fixed, size);
	if (memcmp(fixed, data, size) != 0)
		fuzz_one(fixed, size);
	free(fixed);
	return 0;
}
