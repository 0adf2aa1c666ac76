/*
 * enc.c - the tests' own container encoder (see enc.h).  It follows
 * FORMAT.md through layout.h only; lib/writer.c is not used, so a bug
 * shared by writer and reader cannot hide.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <lz4.h>
#include <xxhash.h>

#include "enc.h"
#include "internal.h"
#include "layout.h"

/* Growable byte buffer plus the list of field boundaries. */
struct enc_out {
	struct enc_file *f;
	size_t cap;
	size_t bcap;
};

static void *enc_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p) {
		fprintf(stderr, "enc: out of memory (%zu bytes)\n", n);
		abort();
	}
	return p;
}

/* Makes the file at least @len bytes long (new bytes are zero). */
static void enc_grow(struct enc_out *o, size_t len)
{
	struct enc_file *f = o->f;

	if (len > o->cap) {
		size_t cap = o->cap ? o->cap : 8192;

		while (cap < len)
			cap *= 2;
		f->buf = enc_xrealloc(f->buf, cap);
		memset(f->buf + o->cap, 0, cap - o->cap);
		o->cap = cap;
	}
	if (len > f->len)
		f->len = len;
}

static void enc_bound(struct enc_out *o, size_t at)
{
	struct enc_file *f = o->f;

	if (f->nbounds == o->bcap) {
		o->bcap = o->bcap ? 2 * o->bcap : 64;
		f->bounds = enc_xrealloc(f->bounds, o->bcap * sizeof(size_t));
	}
	f->bounds[f->nbounds++] = at;
}

static size_t enc_align(size_t v, size_t a)
{
	return (v + a - 1) / a * a;
}

static uint64_t enc_raw_length(const struct enc_array *a)
{
	uint64_t n = mfs_dtype_size(a->dtype);

	for (uint32_t d = 0; d < a->ndim; d++)
		n *= a->shape[d];
	return n;
}

/* Writes the chunks of @a at the page after @at; fills @p, the table. */
static size_t enc_data(struct enc_out *o, const struct enc_array *a,
		       struct enc_array_pos *p, size_t at, uint8_t **table)
{
	const uint8_t *src = a->data;
	size_t off = enc_align(at, MFS_PAGE_SIZE);
	char *tmp = enc_xrealloc(NULL, (size_t)LZ4_compressBound((int)a->chunk_size));

	p->data_offset = off;
	p->raw_length = enc_raw_length(a);
	p->chunk_count = (p->raw_length + a->chunk_size - 1) / a->chunk_size;
	*table = enc_xrealloc(NULL, p->chunk_count * MFS_CHK_SIZE + 1);
	enc_grow(o, off);
	for (uint64_t k = 0; k < p->chunk_count; k++) {
		uint64_t rest = p->raw_length - k * a->chunk_size;
		int raw = (int)(rest < a->chunk_size ? rest : a->chunk_size);
		const uint8_t *chunk = src + k * a->chunk_size;
		int n = 0;
		uint8_t *e = *table + k * MFS_CHK_SIZE;

		if (a->codec == MFS_CODEC_LZ4)
			n = LZ4_compress_default((const char *)chunk, tmp, raw,
						 LZ4_compressBound(raw));
		if (n <= 0 || n >= raw) { /* verbatim */
			n = raw;
			memcpy(tmp, chunk, (size_t)raw);
		}
		enc_grow(o, off + p->stored_length + (size_t)n);
		memcpy(o->f->buf + off + p->stored_length, tmp, (size_t)n);
		memset(e, 0, MFS_CHK_SIZE);
		mfs_put64(e + MFS_CHK_OFFSET, p->stored_length);
		mfs_put32(e + MFS_CHK_STORED_LENGTH, (uint32_t)n);
		mfs_put64(e + MFS_CHK_CHECKSUM, XXH3_64bits(tmp, (size_t)n));
		p->stored_length += (uint64_t)n;
	}
	free(tmp);
	/* Empty arrays still own their page start, so the index follows. */
	return off + p->stored_length;
}

/* Appends @n bytes at the end of the file, recording the boundary. */
static size_t enc_put(struct enc_out *o, const void *src, size_t n)
{
	size_t at = o->f->len;

	enc_grow(o, at + n);
	if (src)
		memcpy(o->f->buf + at, src, n);
	enc_bound(o, at + n);
	return at;
}

static void enc_pad8(struct enc_out *o)
{
	size_t end = enc_align(o->f->len, MFS_INDEX_ALIGN);

	if (end != o->f->len)
		enc_put(o, NULL, end - o->f->len);
}

/* Writes the index entry of array @i, field by field. */
static void enc_entry(struct enc_out *o, const struct enc_array *a,
		      struct enc_array_pos *p, const uint8_t *table)
{
	static const size_t fields[] = {
		MFS_ENT_DTYPE, MFS_ENT_ORDER, MFS_ENT_CODEC, MFS_ENT_NDIM,
		MFS_ENT_RESERVED1, MFS_ENT_CHUNK_SIZE, MFS_ENT_RESERVED2,
		MFS_ENT_DATA_OFFSET, MFS_ENT_RAW_LENGTH, MFS_ENT_STORED_LENGTH,
		MFS_ENT_CHUNK_COUNT,
	};
	uint8_t e[MFS_ENT_FIXED_SIZE] = {0};
	size_t nlen = strlen(a->name);

	mfs_put16(e + MFS_ENT_NAME_LENGTH, (uint16_t)nlen);
	e[MFS_ENT_DTYPE] = (uint8_t)a->dtype;
	e[MFS_ENT_ORDER] = (uint8_t)a->order;
	e[MFS_ENT_CODEC] = (uint8_t)a->codec;
	e[MFS_ENT_NDIM] = (uint8_t)a->ndim;
	mfs_put32(e + MFS_ENT_CHUNK_SIZE, a->chunk_size);
	mfs_put64(e + MFS_ENT_DATA_OFFSET, p->data_offset);
	mfs_put64(e + MFS_ENT_RAW_LENGTH, p->raw_length);
	mfs_put64(e + MFS_ENT_STORED_LENGTH, p->stored_length);
	mfs_put64(e + MFS_ENT_CHUNK_COUNT, p->chunk_count);
	p->entry = enc_put(o, e, MFS_ENT_FIXED_SIZE);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		enc_bound(o, p->entry + fields[i]);
	p->shape = o->f->len;
	for (uint32_t d = 0; d < a->ndim; d++) {
		uint8_t s[8];

		mfs_put64(s, a->shape[d]);
		enc_put(o, s, sizeof(s));
	}
	p->name = enc_put(o, a->name, nlen);
	enc_pad8(o);
	p->chunks = o->f->len;
	for (uint64_t k = 0; k < p->chunk_count; k++) {
		size_t at = enc_put(o, table + k * MFS_CHK_SIZE, MFS_CHK_SIZE);

		enc_bound(o, at + MFS_CHK_STORED_LENGTH);
		enc_bound(o, at + MFS_CHK_RESERVED);
		enc_bound(o, at + MFS_CHK_CHECKSUM);
	}
}

static void enc_header(struct enc_file *f, size_t narrays)
{
	uint8_t *h = f->buf;

	memcpy(h + MFS_HDR_MAGIC, MFS_MAGIC, MFS_MAGIC_LEN);
	mfs_put32(h + MFS_HDR_VERSION, MFS_FORMAT_VERSION);
	mfs_put32(h + MFS_HDR_FLAGS, 0);
	mfs_put64(h + MFS_HDR_FILE_SIZE, f->len);
	mfs_put64(h + MFS_HDR_INDEX_OFFSET, f->index_offset);
	mfs_put64(h + MFS_HDR_INDEX_LENGTH, f->index_length);
	mfs_put32(h + MFS_HDR_ARRAY_COUNT, (uint32_t)narrays);
	mfs_put32(h + MFS_HDR_RESERVED, 0);
	enc_fix_index(f);
}

void enc_build(struct enc_file *f, const char *meta, size_t meta_len,
	       const struct enc_array *arrays, size_t n)
{
	static const size_t hdr_fields[] = {
		MFS_HDR_VERSION, MFS_HDR_FLAGS, MFS_HDR_FILE_SIZE,
		MFS_HDR_INDEX_OFFSET, MFS_HDR_INDEX_LENGTH,
		MFS_HDR_INDEX_CHECKSUM, MFS_HDR_ARRAY_COUNT, MFS_HDR_RESERVED,
		MFS_HDR_CHECKSUM, MFS_HDR_SIZE, MFS_DATA_START,
	};
	struct enc_out o = {.f = f};
	uint8_t **tables;
	size_t end = MFS_DATA_START;
	uint8_t pre[MFS_IDX_PREAMBLE_SIZE] = {0};

	memset(f, 0, sizeof(*f));
	f->narrays = n;
	f->pos = enc_xrealloc(NULL, (n + 1) * sizeof(*f->pos));
	memset(f->pos, 0, (n + 1) * sizeof(*f->pos));
	tables = enc_xrealloc(NULL, (n + 1) * sizeof(*tables));
	enc_grow(&o, MFS_DATA_START);
	enc_bound(&o, 0);
	for (size_t i = 0; i < sizeof(hdr_fields) / sizeof(hdr_fields[0]); i++)
		enc_bound(&o, hdr_fields[i]);
	for (size_t i = 0; i < n; i++)
		end = enc_data(&o, &arrays[i], &f->pos[i], end, &tables[i]);
	f->len = end;
	enc_grow(&o, enc_align(end, MFS_INDEX_ALIGN));
	f->len = enc_align(end, MFS_INDEX_ALIGN);
	f->index_offset = f->len;
	enc_bound(&o, f->index_offset);
	mfs_put32(pre + MFS_IDX_METADATA_LENGTH, (uint32_t)meta_len);
	mfs_put32(pre + MFS_IDX_ARRAY_COUNT, (uint32_t)n);
	enc_put(&o, pre, MFS_IDX_PREAMBLE_SIZE);
	enc_bound(&o, f->index_offset + MFS_IDX_ARRAY_COUNT);
	enc_bound(&o, f->index_offset + MFS_IDX_RESERVED);
	f->metadata = enc_put(&o, meta, meta_len);
	enc_pad8(&o);
	for (size_t i = 0; i < n; i++) {
		enc_entry(&o, &arrays[i], &f->pos[i], tables[i]);
		free(tables[i]);
	}
	free(tables);
	f->index_length = f->len - f->index_offset;
	enc_header(f, n);
}

void enc_free(struct enc_file *f)
{
	free(f->buf);
	free(f->pos);
	free(f->bounds);
	memset(f, 0, sizeof(*f));
}

void enc_fix_header(struct enc_file *f)
{
	mfs_put64(f->buf + MFS_HDR_CHECKSUM,
		  XXH3_64bits(f->buf, MFS_HDR_CHECKSUM));
}

void enc_fix_index(struct enc_file *f)
{
	mfs_put64(f->buf + MFS_HDR_INDEX_CHECKSUM,
		  XXH3_64bits(f->buf + f->index_offset, f->index_length));
	enc_fix_header(f);
}

size_t enc_chunk_file_offset(const struct enc_file *f, size_t a, uint64_t k)
{
	const uint8_t *e = f->buf + f->pos[a].chunks + k * MFS_CHK_SIZE;

	return (size_t)(f->pos[a].data_offset + mfs_get64(e + MFS_CHK_OFFSET));
}

uint32_t enc_chunk_stored(const struct enc_file *f, size_t a, uint64_t k)
{
	const uint8_t *e = f->buf + f->pos[a].chunks + k * MFS_CHK_SIZE;

	return mfs_get32(e + MFS_CHK_STORED_LENGTH);
}

void enc_fix_chunk(struct enc_file *f, size_t a, uint64_t k)
{
	uint8_t *e = f->buf + f->pos[a].chunks + k * MFS_CHK_SIZE;
	size_t at = enc_chunk_file_offset(f, a, k);

	mfs_put64(e + MFS_CHK_CHECKSUM,
		  XXH3_64bits(f->buf + at, enc_chunk_stored(f, a, k)));
}

int enc_memfd(const void *buf, size_t len)
{
	int fd = memfd_create("enc", MFD_CLOEXEC);

	if (fd < 0 || (len && mfs_pwrite_full(fd, buf, len, 0) < 0)) {
		perror("enc: memfd");
		abort();
	}
	return fd;
}

void enc_write_file(const char *path, const void *buf, size_t len)
{
	FILE *fp = fopen(path, "wb");

	if (!fp || fwrite(buf, 1, len, fp) != len || fclose(fp) != 0) {
		perror(path);
		abort();
	}
}

void enc_random_bytes(void *buf, size_t len, uint64_t seed)
{
	uint8_t *p = buf;
	uint64_t x = seed ? seed : 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)(x >> 24);
	}
}
