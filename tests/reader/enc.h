/*
 * enc.h - a small container encoder for tests, written from layout.h and
 * independent of lib/writer.c, so that tests can build exact containers
 * and then damage any field of them on purpose.
 */
#ifndef MFS_TEST_ENC_H
#define MFS_TEST_ENC_H

#include <stddef.h>
#include <stdint.h>

#include "modelfs.h"

/* One array to encode; the name is written as given, valid or not. */
struct enc_array {
	const char *name;
	mfs_dtype dtype;
	mfs_order order;
	mfs_codec codec;
	uint32_t ndim;
	uint64_t shape[MFS_MAX_NDIM];
	uint32_t chunk_size;
	const void *data; /* product(shape) * itemsize bytes */
};

/* Where the encoder put one array (absolute file offsets). */
struct enc_array_pos {
	size_t entry;  /* start of the index entry */
	size_t shape;  /* first shape u64 */
	size_t name;   /* first name byte */
	size_t chunks; /* first chunk table entry */
	uint64_t data_offset;
	uint64_t raw_length;
	uint64_t stored_length;
	uint64_t chunk_count;
};

/* An encoded container and the positions of its fields. */
struct enc_file {
	uint8_t *buf;
	size_t len;
	size_t index_offset;
	size_t index_length;
	size_t metadata; /* first metadata byte */
	size_t narrays;
	struct enc_array_pos *pos;
	size_t *bounds; /* every field boundary of header and index */
	size_t nbounds;
};

/*
 * Encodes a valid container (as far as the inputs are valid): metadata
 * @meta (@meta_len bytes, written as is) and @n arrays.  Aborts the test
 * program on allocation failure.
 */
void enc_build(struct enc_file *f, const char *meta, size_t meta_len,
	       const struct enc_array *arrays, size_t n);
void enc_free(struct enc_file *f);

/* Recomputes the header checksum over the (possibly patched) header. */
void enc_fix_header(struct enc_file *f);
/* Recomputes the index checksum (the encoder's index range), then the
 * header checksum. */
void enc_fix_index(struct enc_file *f);
/* Recomputes the checksum of chunk @k of array @a from its stored bytes. */
void enc_fix_chunk(struct enc_file *f, size_t a, uint64_t k);
/* File offset of the stored bytes of chunk @k of array @a. */
size_t enc_chunk_file_offset(const struct enc_file *f, size_t a, uint64_t k);
/* Stored length of chunk @k of array @a, from the chunk table. */
uint32_t enc_chunk_stored(const struct enc_file *f, size_t a, uint64_t k);

/* A memfd holding @len bytes of @buf, offset 0; aborts on failure. */
int enc_memfd(const void *buf, size_t len);

/* Writes @len bytes of @buf to @path; aborts on failure. */
void enc_write_file(const char *path, const void *buf, size_t len);

/* Deterministic test bytes: xorshift64 stream from @seed. */
void enc_random_bytes(void *buf, size_t len, uint64_t seed);

#endif /* MFS_TEST_ENC_H */
