/*
 * layout.h - byte offsets of the container format (FORMAT.md is the
 * authority; every number here is a row of its tables).  Internal.
 */
#ifndef MFS_LAYOUT_H
#define MFS_LAYOUT_H

#include <stdint.h>

#define MFS_MAGIC "\x89MFS\r\n\x1a\n"
#define MFS_MAGIC_LEN 8u
#define MFS_FORMAT_VERSION 1u

/* Header, at offset 0. */
#define MFS_HDR_MAGIC 0u
#define MFS_HDR_VERSION 8u
#define MFS_HDR_FLAGS 12u
#define MFS_HDR_FILE_SIZE 16u
#define MFS_HDR_INDEX_OFFSET 24u
#define MFS_HDR_INDEX_LENGTH 32u
#define MFS_HDR_INDEX_CHECKSUM 40u
#define MFS_HDR_ARRAY_COUNT 48u
#define MFS_HDR_RESERVED 52u
#define MFS_HDR_CHECKSUM 56u
#define MFS_HDR_SIZE 64u
/* The header checksum covers bytes [0, MFS_HDR_CHECKSUM). */

/* First byte any array may occupy; header padding before it is zero. */
#define MFS_DATA_START 4096u
/* Largest index a reader loads into memory. */
#define MFS_MAX_INDEX_LENGTH (1ull << 30)
/* Alignment of the index offset and of entries inside the index. */
#define MFS_INDEX_ALIGN 8u

/* Index preamble. */
#define MFS_IDX_METADATA_LENGTH 0u
#define MFS_IDX_ARRAY_COUNT 4u
#define MFS_IDX_RESERVED 8u
#define MFS_IDX_PREAMBLE_SIZE 16u

/* Array entry, relative to its start. */
#define MFS_ENT_NAME_LENGTH 0u
#define MFS_ENT_DTYPE 2u
#define MFS_ENT_ORDER 3u
#define MFS_ENT_CODEC 4u
#define MFS_ENT_NDIM 5u
#define MFS_ENT_RESERVED1 6u
#define MFS_ENT_CHUNK_SIZE 8u
#define MFS_ENT_RESERVED2 12u
#define MFS_ENT_DATA_OFFSET 16u
#define MFS_ENT_RAW_LENGTH 24u
#define MFS_ENT_STORED_LENGTH 32u
#define MFS_ENT_CHUNK_COUNT 40u
#define MFS_ENT_SHAPE 48u /* then u64 shape[ndim], name, pad, chunks */
#define MFS_ENT_FIXED_SIZE 48u

/* Chunk table entry. */
#define MFS_CHK_OFFSET 0u
#define MFS_CHK_STORED_LENGTH 8u
#define MFS_CHK_RESERVED 12u
#define MFS_CHK_CHECKSUM 16u
#define MFS_CHK_SIZE 24u

#endif /* MFS_LAYOUT_H */
