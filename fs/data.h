/*
 * data.h - the read path of array files: NPY header, checksum
 * verification of every chunk before its bytes are served, raw bytes
 * straight from the backing file, LZ4 chunks through the decoded-chunk
 * cache, and dropping the backing pages so the page cache holds each
 * byte once.
 */
#ifndef MFSD_DATA_H
#define MFSD_DATA_H

#include <fuse_lowlevel.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "chunkcache.h"
#include "model.h"

/* Bits in a word of a chunk bitmap. */
#define MFSD_BITS_PER_WORD 64u

/*
 * Allocates @a's chunk bitmaps (verified, reported: every bit clear) for
 * its a->info.chunk_count chunks.  0, or -ENOMEM with both left NULL.
 */
int mfsd_data_bitmaps_init(struct mfsd_array *a);

/* Frees @a's chunk bitmaps (either may be NULL). */
void mfsd_data_bitmaps_free(struct mfsd_array *a);

/* True if chunk @chunk has its bit set in @bitmap. */
static inline bool mfsd_bit_test(_Atomic uint64_t *bitmap, uint64_t chunk)
{
	uint64_t w = atomic_load_explicit(&bitmap[chunk / MFSD_BITS_PER_WORD],
					  memory_order_acquire);

	return (w >> (chunk % MFSD_BITS_PER_WORD)) & 1u;
}

/* Sets the bit of @chunk; returns true if this call set it. */
static inline bool mfsd_bit_set(_Atomic uint64_t *bitmap, uint64_t chunk)
{
	uint64_t bit = UINT64_C(1) << (chunk % MFSD_BITS_PER_WORD);
	_Atomic uint64_t *word = &bitmap[chunk / MFSD_BITS_PER_WORD];
	uint64_t old = atomic_fetch_or_explicit(word, bit,
						memory_order_acq_rel);

	return !(old & bit);
}

/* Daemon-wide counters shown in .status; updated without locks. */
struct mfsd_stats {
	_Atomic uint64_t bytes_served;      /* file bytes replied */
	_Atomic uint64_t chunks_verified;   /* raw chunks checksummed */
	_Atomic uint64_t chunks_decoded;    /* LZ4 chunks decoded */
	_Atomic uint64_t checksum_failures; /* distinct bad chunks */
	_Atomic uint64_t read_errors;       /* reads answered with an error */
};

/* How raw bytes travel from the backing file into a reply. */
enum mfsd_io_mode {
	MFSD_IO_PREAD,  /* pread into a buffer, reply with writev */
	MFSD_IO_SPLICE, /* splice from the backing file (fuse_reply_data) */
};

/* The read path's shared state; immutable after start-up except the
 * pieces that carry their own locks. */
struct mfsd_data {
	struct mfsd_cache *cache;
	struct mfsd_stats *stats;
	enum mfsd_io_mode io;
};

/*
 * Answers a read of @size bytes at @off of the .npy view of array
 * @index of model @m, which the caller keeps alive (until the reply is
 * sent and the backing range dropped).  Replies exactly once; the bytes
 * served count in @m's page-cache estimate.
 */
void mfsd_data_read(const struct mfsd_data *d, fuse_req_t req,
		    struct mfsd_model *m, size_t index, size_t size,
		    off_t off);

/* Answers a read of an in-memory file (@buf, @len bytes), which the
 * caller keeps alive.  Replies once; returns the bytes replied. */
size_t mfsd_data_read_mem(const struct mfsd_data *d, fuse_req_t req,
			  const char *buf, size_t len, size_t size, off_t off);

#endif /* MFSD_DATA_H */
