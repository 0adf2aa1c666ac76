/*
 * fuzz_chunk.c - libFuzzer target for mfs_chunk_decode on arbitrary
 * stored bytes.  Input layout:
 *   byte 0     flags: FUZZ_LZ4, FUZZ_BAD_SUM, FUZZ_SHORT_OUT, FUZZ_HUGE
 *   bytes 1-3  raw length (low FUZZ_RAW_BITS bits used)
 *   rest       the stored bytes
 * The checksum is computed from the stored bytes unless FUZZ_BAD_SUM, so
 * the decoder itself is reached.  The result must be the raw length or a
 * documented error, and nothing may be written past the output buffer.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define FUZZ_LZ4 0x01u
#define FUZZ_BAD_SUM 0x02u
#define FUZZ_SHORT_OUT 0x04u
#define FUZZ_HUGE 0x08u
#define FUZZ_HEADER 4u
/* Raw lengths up to 1 MiB keep every run fast. */
#define FUZZ_RAW_BITS 20u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_require(int ok)
{
	if (!ok)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mfs_chunk_info ch = {0};
	const uint8_t *stored = data + FUZZ_HEADER;
	mfs_codec codec;
	size_t out_len;
	uint8_t *out;
	ssize_t n;

	if (size < FUZZ_HEADER || size - FUZZ_HEADER > UINT32_MAX)
		return 0;
	codec = (data[0] & FUZZ_LZ4) ? MFS_CODEC_LZ4 : MFS_CODEC_NONE;
	ch.raw_length = (mfs_get32(data) >> 8) & ((1u << FUZZ_RAW_BITS) - 1);
	if (data[0] & FUZZ_HUGE)
		ch.raw_length = MFS_MAX_CHUNK_SIZE + 1;
	ch.stored_length = (uint32_t)(size - FUZZ_HEADER);
	ch.checksum = mfs_checksum(stored, ch.stored_length);
	if (data[0] & FUZZ_BAD_SUM)
		ch.checksum ^= 1;
	out_len = ch.raw_length;
	if ((data[0] & FUZZ_SHORT_OUT) && out_len > 0)
		out_len--;
	if (out_len > (1u << FUZZ_RAW_BITS))
		out_len = 1u << FUZZ_RAW_BITS;
	/* Exactly out_len bytes, so ASan sees any write past the end. */
	out = malloc(out_len ? out_len : 1);
	if (!out)
		return 0;
	n = mfs_chunk_decode(codec, &ch, stored, out, out_len, "fuzz", "a", 0);
	if (n >= 0) {
		fuzz_require(n == (ssize_t)ch.raw_length && out_len >= ch.raw_length);
		fuzz_require(!(data[0] & FUZZ_BAD_SUM));
		if (ch.stored_length == ch.raw_length)
			fuzz_require(memcmp(out, stored, ch.raw_length) == 0);
	} else {
		fuzz_require(n == -EIO || n == -EBADMSG || n == -ENOBUFS);
	}
	free(out);
	return 0;
}
