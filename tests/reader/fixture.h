/*
 * fixture.h - the reader tests' standard container and helpers to open
 * byte buffers and check failures.
 */
#ifndef MFS_TEST_FIXTURE_H
#define MFS_TEST_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "enc.h"
#include "modelfs.h"

/* Label under which buffers are opened; every message must name it. */
#define STD_LABEL "m.mfs"
/* 25 bytes: not a multiple of 8, so metadata padding exists. */
#define STD_META "{\"model\": \"demo\", \"n\": 3}"
/* Chunk size of the standard arrays: the smallest, so arrays span chunks. */
#define STD_CHUNK 4096u

/*
 * The standard model, in file order:
 *  emb      float32 [5, 1000] C, none, 5 chunks (last one short)
 *  sim.data int32 [3000] C, lz4, chunks 0-1 compressed, chunk 2 verbatim
 *  empty    float64 [0], none, no chunks
 *  scalar   int64 [], lz4, one 8-byte verbatim chunk
 *  fort     bfloat16 [3, 7] Fortran, none, one 42-byte chunk
 */
enum std_array { STD_EMB, STD_SIM, STD_EMPTY, STD_SCALAR, STD_FORT, STD_COUNT };

/* The specs and raw bytes of the standard arrays (built once). */
const struct enc_array *std_arrays(void);
/* Encodes a fresh copy of the standard container into @f. */
void std_build(struct enc_file *f);

/* Opens @len bytes of @buf from a memfd as STD_LABEL (fd closed on error). */
int open_buf(const void *buf, size_t len, mfs_container **c);

/*
 * Asserts that opening @buf fails with @err and a message that names
 * STD_LABEL and contains @needle.
 */
void expect_open_fails(const void *buf, size_t len, int err,
		       const char *needle);

/* As expect_open_fails on the whole of @f. */
void expect_file_fails(const struct enc_file *f, int err, const char *needle);

/* Asserts @rc == @err and that mfs_last_error() contains @needle. */
void expect_error(long rc, int err, const char *needle);

#endif /* MFS_TEST_FIXTURE_H */
