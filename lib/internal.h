/*
 * internal.h - helpers shared by libmodelfs modules.  Internal.
 */
#ifndef MFS_INTERNAL_H
#define MFS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "modelfs.h"

/* Internal functions are hidden; only MFS_API symbols are exported. */
#define MFS_INTERNAL __attribute__((visibility("hidden")))

/*
 * Records a printf-style message as the thread's last error and returns
 * @err (a negative errno), so failures read "return mfs_fail(-EBADMSG, ...)".
 */
MFS_INTERNAL int mfs_fail(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Clears the thread's last error (called at the start of public calls
 * whose success should not leave an old message behind). */
MFS_INTERNAL void mfs_clear_error(void);

/* Little-endian loads and stores on unaligned bytes. */
static inline uint16_t mfs_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t mfs_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}
static inline uint64_t mfs_get64(const uint8_t *p)
{
	return (uint64_t)mfs_get32(p) | ((uint64_t)mfs_get32(p + 4) << 32);
}
static inline void mfs_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void mfs_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void mfs_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Rounds @v up to a multiple of the power of two @align; false on overflow. */
static inline bool mfs_align_up(uint64_t v, uint64_t align, uint64_t *out)
{
	uint64_t r;
	if (__builtin_add_overflow(v, align - 1, &r))
		return false;
	*out = r & ~(align - 1);
	return true;
}

/*
 * raw_length of an array: product(shape) * itemsize.  Returns false on
 * overflow of uint64_t.
 */
MFS_INTERNAL bool mfs_shape_bytes(mfs_dtype dtype, uint32_t ndim,
				  const uint64_t *shape, uint64_t *out);

/* XXH3-64, seed 0, the only checksum of the format. */
MFS_INTERNAL uint64_t mfs_checksum(const void *data, size_t len);
#ifdef MFS_HAVE_AVX2
/* The same hash, compiled for AVX2: call only where the CPU has it. */
MFS_INTERNAL uint64_t mfs_checksum_avx2(const void *data, size_t len);
#endif

/* Chunk count for @raw_length bytes in chunks of @chunk_size. */
static inline uint64_t mfs_chunk_count(uint64_t raw_length, uint32_t chunk_size)
{
	return raw_length / chunk_size + (raw_length % chunk_size != 0);
}

/* True if @v is a valid chunk size (power of two within the bounds). */
static inline bool mfs_chunk_size_ok(uint32_t v)
{
	return v >= MFS_MIN_CHUNK_SIZE && v <= MFS_MAX_CHUNK_SIZE &&
	       (v & (v - 1)) == 0;
}

/* Mode a published container gets before the umask, as open(2) would
 * give a new file: the store directory's owner decides with the umask. */
#define MFS_FILE_MODE 0666

/*
 * The process umask, read without changing it: umask(2) can only be read
 * by setting it, which would race with other threads creating files.
 */
MFS_INTERNAL mode_t mfs_umask(void);

#endif /* MFS_INTERNAL_H */
