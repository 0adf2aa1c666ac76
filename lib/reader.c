/*
 * reader.c - opens a container and enforces every rule of FORMAT.md
 * "Validation" before any of it is used: header, index checksum, metadata,
 * every array entry and chunk table.  The index stays in memory as read;
 * chunk tables and shapes are decoded from it on demand.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec_internal.h"
#include "layout.h"

/* Room for one formatted detail before the label and array are added. */
#define MFS_DETAIL_MAX 512
/* Bytes of one shape dimension in an entry. */
#define MFS_DIM_SIZE sizeof(uint64_t)
/* Label used in messages when the caller gives none. */
#define MFS_NO_LABEL "(container)"

/*
 * One validated array entry.  Immutable after open, like everything the
 * container holds, so no field needs a lock.
 */
struct mfs_array_rec {
	const char *name;      /* NUL-terminated copy, in mfs_container.names */
	const uint8_t *shape;  /* ndim little-endian u64s inside the index */
	const uint8_t *chunks; /* chunk_count table entries inside the index */
	uint64_t data_offset;
	uint64_t raw_length;
	uint64_t stored_length;
	uint64_t chunk_count;
	uint32_t chunk_size;
	uint32_t name_length;
	uint8_t dtype;
	uint8_t order;
	uint8_t codec;
	uint8_t ndim;
};

/*
 * An open container.  Nothing changes after mfs_container_open_fd
 * returns, and the file is only read with pread, so every read-only call
 * may run on any number of threads without locking.
 */
struct mfs_container {
	int fd;
	uint64_t file_size;
	char *label;
	uint8_t *index; /* the whole index, checksum verified */
	uint64_t index_length;
	uint64_t index_checksum; /* XXH3-64 of index, as in the header */
	char *metadata; /* NUL-terminated copy */
	size_t metadata_length;
	size_t array_count;
	struct mfs_array_rec *arrays;   /* in index (= file) order */
	struct mfs_array_rec **by_name; /* sorted by name, for lookups */
	char *names;                    /* all names, NUL-separated */
};

/* Header fields that later stages need. */
struct mfs_header {
	uint64_t index_offset;
	uint64_t index_length;
	uint64_t index_checksum;
	uint32_t array_count;
};

/* State of the index walk: a cursor that never passes idx + len. */
struct mfs_parse {
	const char *label;
	const uint8_t *idx;
	uint64_t len;
	uint64_t pos;
	uint64_t index_offset;
	uint64_t prev_end; /* first file byte after the previous array */
	bool in_entries;   /* past the preamble and metadata */
	size_t entry;      /* number of the entry being parsed */
	char name[MFS_MAX_NAME_LEN + 1]; /* its name once known, else "" */
};

/* ------------------------------------------------------------------ */
/* Header (rules 1 and 2)                                              */
/* ------------------------------------------------------------------ */

/* Rule 1: the fixed header and its zero padding page. */
static int mfs_check_header_fixed(const char *label, const uint8_t *page)
{
	uint64_t want, got;
	uint32_t v;

	if (memcmp(page + MFS_HDR_MAGIC, MFS_MAGIC, MFS_MAGIC_LEN) != 0)
		return mfs_fail(-EBADMSG,
				"%s: header magic does not match (not a modelfs "
				"container, or damaged by a text-mode transfer)",
				label);
	/* Version before checksum: a newer format may checksum differently,
	 * and "unsupported version" is the useful message then. */
	v = mfs_get32(page + MFS_HDR_VERSION);
	if (v != MFS_FORMAT_VERSION)
		return mfs_fail(-EBADMSG,
				"%s: header version %u is not supported (this "
				"reader knows version %u)",
				label, v, MFS_FORMAT_VERSION);
	want = mfs_get64(page + MFS_HDR_CHECKSUM);
	got = mfs_checksum(page, MFS_HDR_CHECKSUM);
	if (want != got)
		return mfs_fail(-EBADMSG,
				"%s: header header_checksum %016llx != computed "
				"%016llx (header damaged)",
				label, (unsigned long long)want,
				(unsigned long long)got);
	v = mfs_get32(page + MFS_HDR_FLAGS);
	if (v != 0)
		return mfs_fail(-EBADMSG,
				"%s: header flags 0x%x has unknown bits set "
				"(must be 0)", label, v);
	v = mfs_get32(page + MFS_HDR_RESERVED);
	if (v != 0)
		return mfs_fail(-EBADMSG, "%s: header reserved %u must be 0",
				label, v);
	for (size_t i = MFS_HDR_SIZE; i < MFS_DATA_START; i++) {
		if (page[i] != 0)
			return mfs_fail(-EBADMSG,
					"%s: header padding byte %zu is 0x%02x "
					"(bytes %u..%u must be 0)",
					label, i, page[i], MFS_HDR_SIZE,
					MFS_DATA_START - 1);
	}
	return 0;
}

/* Rule 2 and the header's array_count bound: where the index is. */
static int mfs_check_header_layout(const char *label, const uint8_t *page,
				   uint64_t real_size, struct mfs_header *h)
{
	uint64_t file_size = mfs_get64(page + MFS_HDR_FILE_SIZE);
	uint64_t end;

	h->index_offset = mfs_get64(page + MFS_HDR_INDEX_OFFSET);
	h->index_length = mfs_get64(page + MFS_HDR_INDEX_LENGTH);
	h->index_checksum = mfs_get64(page + MFS_HDR_INDEX_CHECKSUM);
	h->array_count = mfs_get32(page + MFS_HDR_ARRAY_COUNT);
	if (file_size != real_size)
		return mfs_fail(-EBADMSG,
				"%s: header file_size %llu does not match the "
				"file size %llu (truncated or has trailing data)",
				label, (unsigned long long)file_size,
				(unsigned long long)real_size);
	if (h->index_offset % MFS_INDEX_ALIGN != 0)
		return mfs_fail(-EBADMSG,
				"%s: header index_offset %llu is not a multiple "
				"of %u", label,
				(unsigned long long)h->index_offset,
				MFS_INDEX_ALIGN);
	if (h->index_offset < MFS_DATA_START)
		return mfs_fail(-EBADMSG,
				"%s: header index_offset %llu is below %u (inside "
				"the header page)", label,
				(unsigned long long)h->index_offset,
				MFS_DATA_START);
	if (__builtin_add_overflow(h->index_offset, h->index_length, &end) ||
	    end != file_size)
		return mfs_fail(-EBADMSG,
				"%s: header index_offset %llu + index_length %llu "
				"!= file_size %llu", label,
				(unsigned long long)h->index_offset,
				(unsigned long long)h->index_length,
				(unsigned long long)file_size);
	if (h->index_length > MFS_MAX_INDEX_LENGTH)
		return mfs_fail(-EBADMSG,
				"%s: header index_length %llu exceeds the limit "
				"of %llu bytes", label,
				(unsigned long long)h->index_length,
				(unsigned long long)MFS_MAX_INDEX_LENGTH);
	if (h->index_length < MFS_IDX_PREAMBLE_SIZE)
		return mfs_fail(-EBADMSG,
				"%s: header index_length %llu is smaller than the "
				"%u-byte index preamble", label,
				(unsigned long long)h->index_length,
				MFS_IDX_PREAMBLE_SIZE);
	if (h->array_count > MFS_MAX_ARRAYS)
		return mfs_fail(-EBADMSG,
				"%s: header array_count %u exceeds the limit of %u",
				label, h->array_count, MFS_MAX_ARRAYS);
	return 0;
}

/* Reads the header page of @fd and applies rules 1 and 2. */
static int mfs_read_header(int fd, const char *label, uint64_t real_size,
			   struct mfs_header *h)
{
	uint8_t page[MFS_DATA_START];
	int rc;

	if (real_size < MFS_DATA_START)
		return mfs_fail(-EBADMSG,
				"%s: file size %llu is smaller than the %u-byte "
				"header page (truncated?)", label,
				(unsigned long long)real_size, MFS_DATA_START);
	rc = mfs_pread_full(fd, page, sizeof(page), 0);
	if (rc < 0)
		return mfs_fail(rc, "%s: reading the header: %s", label,
				strerror(-rc));
	rc = mfs_check_header_fixed(label, page);
	if (rc < 0)
		return rc;
	return mfs_check_header_layout(label, page, real_size, h);
}

int mfs_container_locate_index(const void *page, size_t len,
			       const char *label, mfs_index_location *out)
{
	struct mfs_header h;
	uint64_t file_size;
	int rc;

	mfs_clear_error();
	if (!label)
		label = "(container)";
	if (len < MFS_DATA_START)
		return mfs_fail(-EBADMSG, "%s: %zu bytes are less than the "
				"%u-byte header page", label, len,
				MFS_DATA_START);
	rc = mfs_check_header_fixed(label, page);
	if (rc < 0)
		return rc;
	file_size = mfs_get64((const uint8_t *)page + MFS_HDR_FILE_SIZE);
	rc = mfs_check_header_layout(label, page, file_size, &h);
	if (rc < 0)
		return rc;
	*out = (mfs_index_location){file_size, h.index_offset, h.index_length,
				    h.index_checksum};
	return 0;
}

/* ------------------------------------------------------------------ */
/* Index walk helpers                                                  */
/* ------------------------------------------------------------------ */

/*
 * Fails with "<label>: array '<name>' (#i) <detail>" (or "array #i" before
 * the name is known, or "index" before the first entry).
 */
static int mfs_entry_fail(const struct mfs_parse *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int mfs_entry_fail(const struct mfs_parse *p, const char *fmt, ...)
{
	char detail[MFS_DETAIL_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	if (!p->in_entries)
		return mfs_fail(-EBADMSG, "%s: index %s", p->label, detail);
	if (p->name[0])
		return mfs_fail(-EBADMSG, "%s: array '%s' (#%zu) %s", p->label,
				p->name, p->entry, detail);
	return mfs_fail(-EBADMSG, "%s: array #%zu %s", p->label, p->entry,
			detail);
}

/*
 * Takes @n bytes at the cursor (NULL if they are not all inside the
 * index: the cursor never passes the end, so no addition can overflow).
 */
static const uint8_t *mfs_take(struct mfs_parse *p, uint64_t n)
{
	const uint8_t *at = p->idx + p->pos;

	if (n > p->len - p->pos)
		return NULL;
	p->pos += n;
	return at;
}

/* Takes @n bytes of array field @what, failing with a bound message. */
static int mfs_take_field(struct mfs_parse *p, uint64_t n, const char *what,
			  const uint8_t **out)
{
	uint64_t at = p->pos;

	*out = mfs_take(p, n);
	if (!*out)
		return mfs_entry_fail(p,
				      "%s (%llu bytes at index offset %llu) runs "
				      "past the end of the index (index_length "
				      "%llu)", what, (unsigned long long)n,
				      (unsigned long long)at,
				      (unsigned long long)p->len);
	return 0;
}

/* Skips the zero padding up to the next multiple of 8; @what names it. */
static int mfs_take_padding(struct mfs_parse *p, const char *what)
{
	uint64_t start = p->pos;
	uint64_t n = (MFS_INDEX_ALIGN - start % MFS_INDEX_ALIGN) % MFS_INDEX_ALIGN;
	const uint8_t *pad = mfs_take(p, n);

	if (!pad)
		return mfs_entry_fail(p, "%s padding runs past the end of the "
				      "index (index_length %llu)", what,
				      (unsigned long long)p->len);
	for (uint64_t i = 0; i < n; i++) {
		if (pad[i] != 0)
			return mfs_entry_fail(p,
					      "%s padding byte at index offset "
					      "%llu is 0x%02x (must be 0)", what,
					      (unsigned long long)(start + i),
					      pad[i]);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Index preamble and metadata (rule 4)                                */
/* ------------------------------------------------------------------ */

/* Copies the metadata NUL-terminated into @c after checking it. */
static int mfs_parse_metadata(struct mfs_parse *p, mfs_container *c,
			      uint32_t length)
{
	const uint8_t *meta;
	int rc;

	if (length > MFS_MAX_METADATA)
		return mfs_fail(-EBADMSG,
				"%s: index metadata_length %u exceeds the limit "
				"of %u", p->label, length, MFS_MAX_METADATA);
	meta = mfs_take(p, length);
	if (!meta)
		return mfs_fail(-EBADMSG,
				"%s: index metadata_length %u runs past the end "
				"of the index (index_length %llu)", p->label,
				length, (unsigned long long)p->len);
	rc = mfs_check_metadata((const char *)meta, length);
	if (rc < 0) {
		char why[MFS_DETAIL_MAX];

		/* The message is rebuilt in the buffer it is read from. */
		snprintf(why, sizeof(why), "%s", mfs_last_error());
		return mfs_fail(-EBADMSG, "%s: index metadata: %s", p->label,
				why);
	}
	c->metadata = malloc((size_t)length + 1);
	if (!c->metadata)
		return mfs_fail(-ENOMEM, "%s: out of memory copying %u bytes "
				"of metadata", p->label, length);
	memcpy(c->metadata, meta, length);
	c->metadata[length] = '\0';
	c->metadata_length = length;
	return mfs_take_padding(p, "metadata");
}

/* The preamble: metadata_length, array_count, reserved; then metadata. */
static int mfs_parse_preamble(struct mfs_parse *p, mfs_container *c,
			      uint32_t header_count)
{
	const uint8_t *pre = mfs_take(p, MFS_IDX_PREAMBLE_SIZE);
	uint32_t count;
	uint64_t reserved;

	/* The header check guarantees the preamble fits. */
	count = mfs_get32(pre + MFS_IDX_ARRAY_COUNT);
	if (count != header_count)
		return mfs_fail(-EBADMSG,
				"%s: index array_count %u != header array_count %u",
				p->label, count, header_count);
	reserved = mfs_get64(pre + MFS_IDX_RESERVED);
	if (reserved != 0)
		return mfs_fail(-EBADMSG, "%s: index reserved %llu must be 0",
				p->label, (unsigned long long)reserved);
	return mfs_parse_metadata(p, c,
				  mfs_get32(pre + MFS_IDX_METADATA_LENGTH));
}

/* ------------------------------------------------------------------ */
/* Array entries (rules 5 to 8)                                        */
/* ------------------------------------------------------------------ */

/* Rule 5 for the fixed part: reserved fields zero, known enums, bounds. */
static int mfs_check_entry_fixed(struct mfs_parse *p, const uint8_t *e,
				 struct mfs_array_rec *a)
{
	uint32_t r1 = mfs_get16(e + MFS_ENT_RESERVED1);
	uint32_t r2 = mfs_get32(e + MFS_ENT_RESERVED2);

	if (r1 != 0 || r2 != 0)
		return mfs_entry_fail(p, "reserved field at entry offset %u is "
				      "%u (must be 0)",
				      r1 ? MFS_ENT_RESERVED1 : MFS_ENT_RESERVED2,
				      r1 ? r1 : r2);
	a->dtype = e[MFS_ENT_DTYPE];
	a->order = e[MFS_ENT_ORDER];
	a->codec = e[MFS_ENT_CODEC];
	a->ndim = e[MFS_ENT_NDIM];
	a->name_length = mfs_get16(e + MFS_ENT_NAME_LENGTH);
	if (mfs_dtype_size((mfs_dtype)a->dtype) == 0)
		return mfs_entry_fail(p, "dtype %u is unknown (valid: %d..%d)",
				      a->dtype, MFS_DTYPE_BOOL,
				      MFS_DTYPE_COUNT - 1);
	if (a->order != MFS_ORDER_C && a->order != MFS_ORDER_F)
		return mfs_entry_fail(p, "order %u is unknown (0 = C, 1 = "
				      "Fortran)", a->order);
	if (!mfs_codec_ops((mfs_codec)a->codec))
		return mfs_entry_fail(p, "codec %u is unknown (0 = none, 1 = "
				      "lz4)", a->codec);
	if (a->ndim > MFS_MAX_NDIM)
		return mfs_entry_fail(p, "ndim %u exceeds the limit of %u",
				      a->ndim, MFS_MAX_NDIM);
	if (a->name_length < 1 || a->name_length > MFS_MAX_NAME_LEN)
		return mfs_entry_fail(p, "name_length %u is outside 1..%u",
				      a->name_length, MFS_MAX_NAME_LEN);
	a->chunk_size = mfs_get32(e + MFS_ENT_CHUNK_SIZE);
	a->data_offset = mfs_get64(e + MFS_ENT_DATA_OFFSET);
	a->raw_length = mfs_get64(e + MFS_ENT_RAW_LENGTH);
	a->stored_length = mfs_get64(e + MFS_ENT_STORED_LENGTH);
	a->chunk_count = mfs_get64(e + MFS_ENT_CHUNK_COUNT);
	return 0;
}

/* Rule 5 for the name: bytes inside the index, allowed characters. */
static int mfs_parse_name(struct mfs_parse *p, struct mfs_array_rec *a)
{
	const uint8_t *name;
	int rc = mfs_take_field(p, a->name_length, "name", &name);

	if (rc < 0)
		return rc;
	/* Unterminated bytes in the index until mfs_index_names copies them. */
	a->name = (const char *)name;
	memcpy(p->name, name, a->name_length);
	p->name[a->name_length] = '\0';
	/* A NUL inside the name would hide the rest from the check. */
	if (strlen(p->name) != a->name_length || mfs_check_array_name(p->name)) {
		char shown[MFS_MAX_NAME_LEN + 1];

		for (uint32_t i = 0; i < a->name_length; i++)
			shown[i] = (name[i] >= ' ' && name[i] < 0x7f) ?
					   (char)name[i] : '?';
		shown[a->name_length] = '\0';
		p->name[0] = '\0';
		return mfs_entry_fail(p, "name '%s' is invalid (1..%u bytes of "
				      "[A-Za-z0-9._-], not starting with '.')",
				      shown, MFS_MAX_NAME_LEN);
	}
	return mfs_take_padding(p, "name");
}

/* Rule 6: raw_length, chunk_size and chunk_count agree with the shape. */
static int mfs_check_sizes(struct mfs_parse *p, struct mfs_array_rec *a)
{
	uint64_t shape[MFS_MAX_NDIM];
	uint64_t bytes, count;

	for (uint32_t d = 0; d < a->ndim; d++)
		shape[d] = mfs_get64(a->shape + MFS_DIM_SIZE * d);
	if (!mfs_shape_bytes((mfs_dtype)a->dtype, a->ndim, shape, &bytes))
		return mfs_entry_fail(p, "shape product x itemsize overflows "
				      "64 bits");
	if (bytes != a->raw_length)
		return mfs_entry_fail(p, "raw_length %llu != product(shape) x "
				      "itemsize %llu",
				      (unsigned long long)a->raw_length,
				      (unsigned long long)bytes);
	if (!mfs_chunk_size_ok(a->chunk_size))
		return mfs_entry_fail(p, "chunk_size %u is not a power of two "
				      "in %u..%u", a->chunk_size,
				      MFS_MIN_CHUNK_SIZE, MFS_MAX_CHUNK_SIZE);
	count = mfs_chunk_count(a->raw_length, a->chunk_size);
	if (a->chunk_count != count)
		return mfs_entry_fail(p, "chunk_count %llu != ceil(raw_length / "
				      "chunk_size) = %llu",
				      (unsigned long long)a->chunk_count,
				      (unsigned long long)count);
	return 0;
}

/* Rule 7 for chunk @k of @a; @expect is where it must start. */
static int mfs_check_chunk(struct mfs_parse *p, const struct mfs_array_rec *a,
			   uint64_t k, uint64_t expect, uint32_t *stored)
{
	const uint8_t *e = a->chunks + k * MFS_CHK_SIZE;
	uint64_t off = mfs_get64(e + MFS_CHK_OFFSET);
	uint32_t reserved = mfs_get32(e + MFS_CHK_RESERVED);
	uint64_t rest = a->raw_length - k * a->chunk_size;
	uint32_t raw = rest < a->chunk_size ? (uint32_t)rest : a->chunk_size;
	const struct mfs_codec_ops *ops = mfs_codec_ops((mfs_codec)a->codec);
	uint32_t min, max;

	*stored = mfs_get32(e + MFS_CHK_STORED_LENGTH);
	if (reserved != 0)
		return mfs_entry_fail(p, "chunk %llu reserved %u must be 0",
				      (unsigned long long)k, reserved);
	if (off != expect)
		return mfs_entry_fail(p, "chunk %llu offset %llu != expected "
				      "%llu (chunks are stored back to back)",
				      (unsigned long long)k,
				      (unsigned long long)off,
				      (unsigned long long)expect);
	if (mfs_codec_stored_ok(ops, *stored, raw))
		return 0;
	ops->stored_range(raw, &min, &max);
	if (min == max)
		return mfs_entry_fail(p, "chunk %llu stored_length %u != its raw "
				      "length %u (codec %s stores verbatim)",
				      (unsigned long long)k, *stored, raw,
				      ops->name);
	return mfs_entry_fail(p, "chunk %llu stored_length %u is outside "
			      "%u..%u (its raw length %u, codec %s)",
			      (unsigned long long)k, *stored, min, max, raw,
			      ops->name);
}

/* Rule 7: the chunk table is contiguous and sums to stored_length. */
static int mfs_parse_chunks(struct mfs_parse *p, struct mfs_array_rec *a)
{
	uint64_t bytes, sum = 0;
	uint32_t stored;
	int rc;

	/* chunk_count was checked against raw_length, but that can still be
	 * 2^52: the multiplication and the bound keep the walk in the index. */
	if (__builtin_mul_overflow(a->chunk_count, (uint64_t)MFS_CHK_SIZE,
				   &bytes))
		bytes = UINT64_MAX;
	rc = mfs_take_field(p, bytes, "chunk table", &a->chunks);
	if (rc < 0)
		return rc;
	for (uint64_t k = 0; k < a->chunk_count; k++) {
		rc = mfs_check_chunk(p, a, k, sum, &stored);
		if (rc < 0)
			return rc;
		sum += stored; /* <= 2^26 per chunk, < 2^26 chunks */
	}
	if (sum != a->stored_length)
		return mfs_entry_fail(p, "stored_length %llu != sum of its chunks' "
				      "stored lengths %llu",
				      (unsigned long long)a->stored_length,
				      (unsigned long long)sum);
	return 0;
}

/* Rule 8: the array's bytes are page-aligned, in order, before the index. */
static int mfs_check_placement(struct mfs_parse *p, const struct mfs_array_rec *a)
{
	uint64_t end;

	if (a->data_offset % MFS_PAGE_SIZE != 0)
		return mfs_entry_fail(p, "data_offset %llu is not a multiple of "
				      "%u", (unsigned long long)a->data_offset,
				      MFS_PAGE_SIZE);
	if (a->data_offset < MFS_DATA_START)
		return mfs_entry_fail(p, "data_offset %llu is below %u (inside "
				      "the header page)",
				      (unsigned long long)a->data_offset,
				      MFS_DATA_START);
	if (a->data_offset < p->prev_end)
		return mfs_entry_fail(p, "data_offset %llu is before the end of "
				      "the previous array (%llu): arrays overlap "
				      "or are out of file order",
				      (unsigned long long)a->data_offset,
				      (unsigned long long)p->prev_end);
	if (__builtin_add_overflow(a->data_offset, a->stored_length, &end) ||
	    end > p->index_offset)
		return mfs_entry_fail(p, "data_offset %llu + stored_length %llu "
				      "runs past index_offset %llu",
				      (unsigned long long)a->data_offset,
				      (unsigned long long)a->stored_length,
				      (unsigned long long)p->index_offset);
	p->prev_end = end;
	return 0;
}

/* Parses and validates entry number p->entry into @a. */
static int mfs_parse_entry(struct mfs_parse *p, struct mfs_array_rec *a)
{
	const uint8_t *e;
	int rc;

	p->name[0] = '\0';
	rc = mfs_take_field(p, MFS_ENT_FIXED_SIZE, "entry", &e);
	if (rc == 0)
		rc = mfs_check_entry_fixed(p, e, a);
	if (rc == 0)
		rc = mfs_take_field(p, (uint64_t)a->ndim * MFS_DIM_SIZE,
				    "shape", &a->shape);
	if (rc == 0)
		rc = mfs_parse_name(p, a);
	if (rc == 0)
		rc = mfs_check_sizes(p, a);
	if (rc == 0)
		rc = mfs_parse_chunks(p, a);
	if (rc == 0)
		rc = mfs_check_placement(p, a);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Names: copies and uniqueness (rule 5)                               */
/* ------------------------------------------------------------------ */

static int mfs_cmp_rec_name(const void *x, const void *y)
{
	const struct mfs_array_rec *a = *(const struct mfs_array_rec *const *)x;
	const struct mfs_array_rec *b = *(const struct mfs_array_rec *const *)y;

	return strcmp(a->name, b->name);
}

/*
 * Gives every array a NUL-terminated name (names sit in the index without
 * terminators; a->name points there until now) and builds the sorted
 * lookup table, refusing duplicates.
 */
static int mfs_index_names(mfs_container *c, size_t name_bytes)
{
	char *dst;

	c->names = malloc(name_bytes ? name_bytes : 1);
	c->by_name = malloc((c->array_count ? c->array_count : 1) *
			    sizeof(*c->by_name));
	if (!c->names || !c->by_name)
		return mfs_fail(-ENOMEM, "%s: out of memory for the names of %zu "
				"arrays", c->label, c->array_count);
	dst = c->names;
	for (size_t i = 0; i < c->array_count; i++) {
		struct mfs_array_rec *a = &c->arrays[i];

		memcpy(dst, a->name, a->name_length);
		dst[a->name_length] = '\0';
		a->name = dst;
		dst += a->name_length + 1;
		c->by_name[i] = a;
	}
	qsort(c->by_name, c->array_count, sizeof(*c->by_name),
	      mfs_cmp_rec_name);
	for (size_t i = 1; i < c->array_count; i++) {
		if (strcmp(c->by_name[i - 1]->name, c->by_name[i]->name) == 0)
			return mfs_fail(-EBADMSG,
					"%s: array name '%s' is used twice "
					"(#%zu and #%zu); names must be unique",
					c->label, c->by_name[i]->name,
					(size_t)(c->by_name[i - 1] - c->arrays),
					(size_t)(c->by_name[i] - c->arrays));
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The index as a whole (rules 3 to 9)                                 */
/* ------------------------------------------------------------------ */

/* Parses the checksum-verified index in c->index. */
static int mfs_parse_index(mfs_container *c, const struct mfs_header *h)
{
	struct mfs_parse p = {
		.label = c->label,
		.idx = c->index,
		.len = h->index_length,
		.index_offset = h->index_offset,
		.prev_end = MFS_DATA_START,
	};
	size_t name_bytes = 0;
	int rc = mfs_parse_preamble(&p, c, h->array_count);

	if (rc < 0)
		return rc;
	c->arrays = calloc(h->array_count ? h->array_count : 1,
			   sizeof(*c->arrays));
	if (!c->arrays)
		return mfs_fail(-ENOMEM, "%s: out of memory for %u array entries",
				c->label, h->array_count);
	p.in_entries = true;
	for (p.entry = 0; p.entry < h->array_count; p.entry++) {
		struct mfs_array_rec *a = &c->arrays[p.entry];

		rc = mfs_parse_entry(&p, a);
		if (rc < 0)
			return rc;
		name_bytes += a->name_length + 1;
	}
	c->array_count = h->array_count;
	if (p.pos != p.len)
		return mfs_fail(-EBADMSG,
				"%s: index has %llu bytes after the last array "
				"entry (index_length %llu)", c->label,
				(unsigned long long)(p.len - p.pos),
				(unsigned long long)p.len);
	return mfs_index_names(c, name_bytes);
}

/* Reads the index named by @h into c->index and checks rule 3. */
static int mfs_load_index(mfs_container *c, int fd, const struct mfs_header *h)
{
	uint64_t got;
	int rc;

	/* index_length <= 1 GiB was checked, so it fits in size_t. */
	c->index = malloc((size_t)h->index_length);
	if (!c->index)
		return mfs_fail(-ENOMEM, "%s: out of memory for the %llu-byte "
				"index", c->label,
				(unsigned long long)h->index_length);
	c->index_length = h->index_length;
	c->index_checksum = h->index_checksum;
	rc = mfs_pread_full(fd, c->index, (size_t)h->index_length,
			    h->index_offset);
	if (rc < 0)
		return mfs_fail(rc, "%s: reading the index (%llu bytes at %llu): "
				"%s", c->label,
				(unsigned long long)h->index_length,
				(unsigned long long)h->index_offset,
				strerror(-rc));
	got = mfs_checksum(c->index, (size_t)h->index_length);
	if (got != h->index_checksum)
		return mfs_fail(-EBADMSG,
				"%s: header index_checksum %016llx != computed "
				"%016llx (index damaged)", c->label,
				(unsigned long long)h->index_checksum,
				(unsigned long long)got);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Public: open and close                                              */
/* ------------------------------------------------------------------ */

void mfs_container_close(mfs_container *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->names);
	free(c->by_name);
	free(c->arrays);
	free(c->metadata);
	free(c->index);
	free(c->label);
	free(c);
}

/* A container with nothing loaded yet; the fd stays the caller's. */
static mfs_container *mfs_container_new(const char *label, uint64_t size)
{
	size_t n = strlen(label) + 1;
	mfs_container *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = -1;
	c->file_size = size;
	c->label = malloc(n);
	if (!c->label) {
		free(c);
		return NULL;
	}
	memcpy(c->label, label, n);
	return c;
}

int mfs_container_open_fd(mfs_container **out, int fd, const char *label)
{
	struct mfs_header h;
	struct stat st;
	mfs_container *c;
	int rc;

	mfs_clear_error();
	if (!label)
		label = MFS_NO_LABEL;
	if (!out)
		return mfs_fail(-EINVAL, "%s: no place to store the container",
				label);
	if (fstat(fd, &st) < 0)
		return mfs_fail(-errno, "%s: fstat: %s", label, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return mfs_fail(S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL,
				"%s: a %s, not a regular file", label,
				mfs_file_type_name(st.st_mode));
	rc = mfs_read_header(fd, label, (uint64_t)st.st_size, &h);
	if (rc < 0)
		return rc;
	c = mfs_container_new(label, (uint64_t)st.st_size);
	if (!c)
		return mfs_fail(-ENOMEM, "%s: out of memory opening the "
				"container", label);
	rc = mfs_load_index(c, fd, &h);
	if (rc == 0)
		rc = mfs_parse_index(c, &h);
	if (rc < 0) {
		mfs_container_close(c); /* c->fd is still -1: fd stays open */
		return rc;
	}
	c->fd = fd;
	*out = c;
	return 0;
}

int mfs_container_open_at(mfs_container **out, int dirfd, const char *path,
			  unsigned flags)
{
	int fd, rc;

	mfs_clear_error();
	if (!path)
		return mfs_fail(-EINVAL, "no container path given");
	fd = mfs_open_regular(dirfd, path, flags, NULL);
	if (fd < 0)
		return fd;
	rc = mfs_container_open_fd(out, fd, path);
	if (rc < 0)
		close(fd);
	return rc;
}

int mfs_container_open(mfs_container **out, const char *path)
{
	return mfs_container_open_at(out, AT_FDCWD, path, 0);
}

/* ------------------------------------------------------------------ */
/* Public: accessors                                                   */
/* ------------------------------------------------------------------ */

int mfs_container_fd(const mfs_container *c)
{
	return c->fd;
}

uint64_t mfs_container_file_size(const mfs_container *c)
{
	return c->file_size;
}

uint64_t mfs_container_index_checksum(const mfs_container *c)
{
	return c->index_checksum;
}

const char *mfs_container_label(const mfs_container *c)
{
	return c->label;
}

const char *mfs_container_metadata(const mfs_container *c, size_t *len)
{
	if (len)
		*len = c->metadata_length;
	return c->metadata;
}

size_t mfs_container_array_count(const mfs_container *c)
{
	return c->array_count;
}

int mfs_container_array(const mfs_container *c, size_t index,
			mfs_array_info *out)
{
	const struct mfs_array_rec *a;

	if (index >= c->array_count)
		return mfs_fail(-ERANGE, "%s: array index %zu is out of range "
				"(%zu arrays)", c->label, index, c->array_count);
	a = &c->arrays[index];
	memset(out, 0, sizeof(*out));
	out->name = a->name;
	out->dtype = (mfs_dtype)a->dtype;
	out->ndim = a->ndim;
	for (uint32_t d = 0; d < a->ndim; d++)
		out->shape[d] = mfs_get64(a->shape + MFS_DIM_SIZE * d);
	out->order = (mfs_order)a->order;
	out->codec = (mfs_codec)a->codec;
	out->chunk_size = a->chunk_size;
	out->chunk_count = a->chunk_count;
	out->raw_length = a->raw_length;
	out->stored_length = a->stored_length;
	out->data_offset = a->data_offset;
	return 0;
}

static int mfs_cmp_key_name(const void *key, const void *elem)
{
	const struct mfs_array_rec *a = *(const struct mfs_array_rec *const *)elem;

	return strcmp(key, a->name);
}

int mfs_container_find(const mfs_container *c, const char *name,
		       size_t *index)
{
	struct mfs_array_rec *const *hit;

	if (!name)
		return mfs_fail(-ENOENT, "%s: no array name given", c->label);
	hit = bsearch(name, c->by_name, c->array_count, sizeof(*c->by_name),
		      mfs_cmp_key_name);
	if (!hit)
		return mfs_fail(-ENOENT, "%s: no array named '%.*s'", c->label,
				(int)MFS_MAX_NAME_LEN, name);
	*index = (size_t)(*hit - c->arrays);
	return 0;
}

int mfs_container_chunk(const mfs_container *c, size_t array, uint64_t chunk,
			mfs_chunk_info *out)
{
	const struct mfs_array_rec *a;
	const uint8_t *e;
	uint64_t rest;

	if (array >= c->array_count)
		return mfs_fail(-ERANGE, "%s: array index %zu is out of range "
				"(%zu arrays)", c->label, array, c->array_count);
	a = &c->arrays[array];
	if (chunk >= a->chunk_count)
		return mfs_fail(-ERANGE, "%s: array '%s' chunk %llu is out of "
				"range (%llu chunks)", c->label, a->name,
				(unsigned long long)chunk,
				(unsigned long long)a->chunk_count);
	e = a->chunks + chunk * MFS_CHK_SIZE;
	out->raw_offset = chunk * a->chunk_size;
	rest = a->raw_length - out->raw_offset;
	out->raw_length = rest < a->chunk_size ? (uint32_t)rest : a->chunk_size;
	out->stored_length = mfs_get32(e + MFS_CHK_STORED_LENGTH);
	/* Validated at open: inside [data_offset, index_offset). */
	out->file_offset = a->data_offset + mfs_get64(e + MFS_CHK_OFFSET);
	out->checksum = mfs_get64(e + MFS_CHK_CHECKSUM);
	return 0;
}
