/*
 * codec.c - the table of chunk codecs (FORMAT.md, "Codecs"): none and
 * LZ4 block.  A new codec is one row here and one number in modelfs.h.
 */
#include <string.h>

#include <lz4.h>

#include "codec_internal.h"

/* Codec none: every chunk is its raw bytes. */
static size_t mfs_none_bound(uint32_t raw_len)
{
	return raw_len;
}

static void mfs_none_range(uint32_t raw_len, uint32_t *min, uint32_t *max)
{
	*min = raw_len;
	*max = raw_len;
}

/* LZ4 block format; LZ4_compressBound is its worst case. */
static size_t mfs_lz4_bound(uint32_t raw_len)
{
	return (size_t)LZ4_compressBound((int)raw_len);
}

static uint32_t mfs_lz4_encode(const void *raw, uint32_t raw_len, void *out,
			       size_t out_cap)
{
	int n = LZ4_compress_default(raw, out, (int)raw_len, (int)out_cap);

	/* Only a block strictly smaller than the raw chunk is kept: stored
	 * == raw length is how a reader knows "verbatim". */
	return n > 0 && (uint32_t)n < raw_len ? (uint32_t)n : 0;
}

static int64_t mfs_lz4_decode(const void *stored, uint32_t stored_len,
			      void *out, uint32_t raw_len)
{
	/* Capacity is the raw length, not the buffer: a stream that would
	 * produce more is as malformed as one that produces less. */
	int n = LZ4_decompress_safe(stored, out, (int)stored_len, (int)raw_len);

	return n < 0 ? -1 : n;
}

/*
 * An LZ4 block that decodes to at least one byte holds at least one
 * sequence token, so an empty stored chunk is never LZ4 output (and the
 * writer stores a chunk that does not shrink verbatim, never as 0 bytes):
 * 1..raw length.
 */
static void mfs_lz4_range(uint32_t raw_len, uint32_t *min, uint32_t *max)
{
	*min = 1;
	*max = raw_len;
}

static const struct mfs_codec_ops mfs_codecs[] = {
	[MFS_CODEC_NONE] = {"none", mfs_none_bound, NULL, NULL,
			    mfs_none_range},
	[MFS_CODEC_LZ4] = {"lz4", mfs_lz4_bound, mfs_lz4_encode,
			   mfs_lz4_decode, mfs_lz4_range},
};

#define MFS_CODEC_COUNT (sizeof(mfs_codecs) / sizeof(mfs_codecs[0]))

const struct mfs_codec_ops *mfs_codec_ops(mfs_codec codec)
{
	if ((unsigned)codec >= MFS_CODEC_COUNT || !mfs_codecs[codec].name)
		return NULL;
	return &mfs_codecs[codec];
}

bool mfs_codec_stored_ok(const struct mfs_codec_ops *ops, uint32_t stored,
			 uint32_t raw_len)
{
	uint32_t min, max;

	ops->stored_range(raw_len, &min, &max);
	return stored >= min && stored <= max;
}

size_t mfs_codec_bound_max(uint32_t raw_len)
{
	size_t most = raw_len;

	for (size_t i = 0; i < MFS_CODEC_COUNT; i++)
		if (mfs_codecs[i].name && mfs_codecs[i].bound(raw_len) > most)
			most = mfs_codecs[i].bound(raw_len);
	return most;
}
