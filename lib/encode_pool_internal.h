/*
 * encode_pool_internal.h - chunks of one array encoded and checksummed by
 * a bounded set of worker threads, handed back strictly in submission
 * order, so a writer using it produces the bytes of the serial writer.
 * Internal.
 *
 * One thread (the writer's) submits and collects; the workers only encode.
 * Memory is bounded by the slot count: a chunk is submitted into a free
 * slot and its slot is free again once the chunk has been collected.
 */
#ifndef MFS_ENCODE_POOL_INTERNAL_H
#define MFS_ENCODE_POOL_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "codec_internal.h"

/* One encoded chunk: its stored form (FORMAT.md "Chunks and codecs"). */
struct mfs_encoded {
	const void *stored; /* the encoded bytes, or the raw ones verbatim */
	uint32_t stored_length;
	uint64_t checksum; /* XXH3-64 of the stored bytes */
	/* A chunk the worker read itself (mfs_encode_pool_submit_fd): the
	 * raw bytes it got and, if fewer than asked, the errno of the
	 * failed read (0: the file ended).  Nothing is encoded then. */
	uint32_t raw_got;
	int read_errno;
};

struct mfs_encode_pool;

/*
 * Encodes the @raw_len bytes of @raw with @ops into @enc (room for
 * ops->bound(@raw_len) bytes) and checksums the result; @out points into
 * @enc or at @raw.  The one encoder of the serial and the pooled writer.
 */
MFS_INTERNAL void mfs_encode_chunk(const struct mfs_codec_ops *ops,
				   const uint8_t *raw, uint32_t raw_len,
				   char *enc, struct mfs_encoded *out);

/*
 * Starts up to @threads workers encoding with @ops, with @slots chunk
 * slots of up to @chunk_size raw bytes each (@slots >= @threads >= 1).
 * Returns 0 (*@out set), 1 if no worker thread could be started (encode
 * serially instead; nothing is left behind) or -ENOMEM (no message set).
 */
MFS_INTERNAL int mfs_encode_pool_create(struct mfs_encode_pool **out,
					const struct mfs_codec_ops *ops,
					unsigned threads, unsigned slots,
					uint32_t chunk_size);

/* The raw buffer of the next chunk to submit, or NULL while every slot is
 * in flight (collect the oldest first). */
MFS_INTERNAL uint8_t *mfs_encode_pool_next(struct mfs_encode_pool *p);

/* Hands the @len bytes (1..chunk_size) filled into the buffer that
 * mfs_encode_pool_next gave to the workers. */
MFS_INTERNAL void mfs_encode_pool_submit(struct mfs_encode_pool *p,
					 uint32_t len);

/*
 * Has a worker read @len bytes (1..chunk_size) of @fd at @offset into the
 * buffer that mfs_encode_pool_next gave, then encode them: reading, too,
 * runs in parallel (pread is safe on a shared descriptor).
 */
MFS_INTERNAL void mfs_encode_pool_submit_fd(struct mfs_encode_pool *p,
					    uint32_t len, int fd,
					    uint64_t offset);

/*
 * Waits for the oldest chunk not yet collected and fills @out; its bytes
 * stay valid until mfs_encode_pool_release.  False if none is in flight.
 */
MFS_INTERNAL bool mfs_encode_pool_oldest(struct mfs_encode_pool *p,
					 struct mfs_encoded *out);

/* Frees the oldest chunk's slot for a new submission. */
MFS_INTERNAL void mfs_encode_pool_release(struct mfs_encode_pool *p);

/* Stops the workers (chunks still queued are dropped), joins every one of
 * them and frees the pool.  NULL is a no-op. */
MFS_INTERNAL void mfs_encode_pool_destroy(struct mfs_encode_pool *p);

#endif /* MFS_ENCODE_POOL_INTERNAL_H */
