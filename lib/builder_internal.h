/*
 * builder_internal.h - what builder.c offers the stores and the client:
 * references, freezing, read access to the arrays, content keys.
 * Internal.
 */
#ifndef MFS_BUILDER_INTERNAL_H
#define MFS_BUILDER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "internal.h"

/* Hex digits of a content-derived key (one XXH3-64). */
#define MFS_CONTENT_KEY_LEN 16u

/* What an in-process model needs of one builder array. */
struct mfs_builder_view {
	const mfs_array_spec *spec; /* name owned by the builder */
	const void *data;           /* NULL when nbytes is 0 */
	size_t nbytes;
};

/* Takes one more reference to @b (any thread). */
MFS_INTERNAL void mfs_builder_ref(mfs_builder *b);
/* Drops one reference; the last frees @b (any thread). */
MFS_INTERNAL void mfs_builder_unref(mfs_builder *b);

/*
 * Reads every reader-backed array into memory the builder owns and marks
 * @b frozen (read-only from then on).  Idempotent.  0, -ENOMEM or the
 * error of a reader.
 */
MFS_INTERNAL int mfs_builder_freeze(mfs_builder *b);

/* Number of arrays (derived ones included). */
MFS_INTERNAL size_t mfs_builder_count(const mfs_builder *b);
/* Array @i of a frozen builder. */
MFS_INTERNAL void mfs_builder_view_at(const mfs_builder *b, size_t i,
				      struct mfs_builder_view *out);
/* The metadata document (NUL-terminated) and its length. */
MFS_INTERNAL const char *mfs_builder_metadata(const mfs_builder *b,
					      size_t *len);

/* Writes @b to @path keeping or dropping derived arrays, durably or not
 * (mfs_writer_set_durable). */
MFS_INTERNAL int mfs_builder_write_as(const mfs_builder *b, const char *path,
				      bool keep_derived, bool durable);

/* The in-process content key of frozen @b into @key (17 bytes). */
MFS_INTERNAL void mfs_builder_content_key(const mfs_builder *b, char *key);

/*
 * A builder whose arrays read (decoding and checking every chunk) from
 * @c, which it takes over and closes when freed.  Codecs, chunk sizes and
 * metadata are kept.  0 or -ENOMEM (then @c is closed too).
 */
MFS_INTERNAL int mfs_builder_from_container(mfs_builder **out,
					    mfs_container *c);

/*
 * Has @b call @fn(@ctx) when it is freed, after its arrays are gone: how
 * an import's sources (files, a container) live exactly as long as the
 * builder that reads them.  Replaces an earlier clean-up.
 */
MFS_INTERNAL void mfs_builder_set_cleanup(mfs_builder *b,
					  void (*fn)(void *ctx), void *ctx);

#endif /* MFS_BUILDER_INTERNAL_H */
