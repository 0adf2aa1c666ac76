/*
 * codec_internal.h - the chunk codecs of FORMAT.md, one table row each:
 * what the writer, the reader's validation and the chunk decoder know of
 * a codec comes from here only.  Internal.
 */
#ifndef MFS_CODEC_INTERNAL_H
#define MFS_CODEC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/*
 * One codec.  A chunk whose stored length equals its raw length is stored
 * verbatim under every codec; encode and decode deal only with chunks
 * stored in a smaller, encoded form.
 */
struct mfs_codec_ops {
	/* As the container's index and modelctl name it. */
	const char *name;
	/* Bytes an encoding of @raw_len bytes may need (>= @raw_len). */
	size_t (*bound)(uint32_t raw_len);
	/*
	 * Encodes @raw_len bytes of @raw into @out (@out_cap >= bound).
	 * Returns the encoded length if it is smaller than @raw_len, else 0
	 * (store the chunk verbatim).  NULL: always verbatim.
	 */
	uint32_t (*encode)(const void *raw, uint32_t raw_len, void *out,
			   size_t out_cap);
	/*
	 * Decodes @stored_len bytes into @out, producing at most @raw_len
	 * bytes.  Returns the number produced, or -1 for a malformed
	 * stream.  NULL: nothing but verbatim chunks are valid.
	 */
	int64_t (*decode)(const void *stored, uint32_t stored_len, void *out,
			  uint32_t raw_len);
	/*
	 * The stored lengths valid for a chunk of @raw_len bytes (@raw_len
	 * >= 1), FORMAT.md rule 7: [*@min, *@max].
	 */
	void (*stored_range)(uint32_t raw_len, uint32_t *min, uint32_t *max);
};

/* The row of @codec, or NULL for a codec the format does not define. */
MFS_INTERNAL const struct mfs_codec_ops *mfs_codec_ops(mfs_codec codec);

/* True if @stored is a valid stored length for a chunk of @raw_len bytes
 * under @ops (the one test of rule 7's per-codec bounds). */
MFS_INTERNAL bool mfs_codec_stored_ok(const struct mfs_codec_ops *ops,
				      uint32_t stored, uint32_t raw_len);

/* The largest bound of any codec for @raw_len bytes: the size of an
 * encoding buffer shared by arrays of every codec. */
MFS_INTERNAL size_t mfs_codec_bound_max(uint32_t raw_len);

#endif /* MFS_CODEC_INTERNAL_H */
