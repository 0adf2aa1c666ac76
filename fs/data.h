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
#include "table.h"

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
