/*
 * data.c - the read path of array files (see data.h).
 *
 * A reply is assembled as a short list of pieces: the NPY header (made on
 * demand), decoded LZ4 chunks pinned in the cache, raw chunks just read
 * to check their checksum, or a range of the backing file for raw chunks
 * checked before (the verified bitmap), sent by splice or pread.  LZ4
 * chunks are checked each time they are decoded.  Raw chunks are served
 * from the backing file only while the model's container is leased
 * (lease.h); otherwise each is read, checked and served from a buffer
 * every time.  After the reply the backing pages read are dropped: the
 * mount's page cache holds the bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "data.h"
#include "modelfs.h"
#include "lease.h"
#include "log.h"
#include "remote.h"

#define MFSD_PAGE ((uint64_t)MFS_PAGE_SIZE)
/* A reply has the header piece and one piece per chunk at most; a range
 * of N bytes touches at most N / chunk_size + 2 chunks. */
#define MFSD_EXTRA_PIECES 3u

/* One part of a reply, in file order. */
struct mfsd_piece {
	const void *mem; /* memory piece, or NULL for a backing-file range */
	uint64_t pos;    /* backing file offset of a file piece */
	size_t len;
};

struct mfsd_reply {
	struct mfsd_piece *pieces;
	size_t npieces;
	size_t cap;
	struct mfsd_cache_entry **pins; /* cache entries the pieces point into */
	size_t npins;
	char **bufs; /* freshly verified raw chunks the pieces point into */
	size_t nbufs;
	char *header;  /* NPY header bytes, if the read covers any */
	struct mfsd_model *direct; /* model whose file bytes are served
				      unchecked (mfsd_lease_enter) */
	void *rawbuf;  /* pread buffer of the file piece (pread mode) */
	int fd;        /* backing descriptor of file pieces */
	uint64_t drop_start; /* backing range to drop after replying */
	uint64_t drop_end;
	uint64_t drop_limit; /* end of the array's stored bytes */
};

int mfsd_data_bitmaps_init(struct mfsd_array *a)
{
	a->bitmap_words = (size_t)((a->info.chunk_count + MFSD_BITS_PER_WORD -
				    1) / MFSD_BITS_PER_WORD);
	/* An array without chunks still gets a word: no case for none. */
	if (a->bitmap_words == 0)
		a->bitmap_words = 1;
	a->verified = calloc(a->bitmap_words, sizeof(*a->verified));
	a->reported = calloc(a->bitmap_words, sizeof(*a->reported));
	if (!a->verified || !a->reported) {
		mfsd_data_bitmaps_free(a);
		return -ENOMEM;
	}
	return 0;
}

void mfsd_data_bitmaps_free(struct mfsd_array *a)
{
	free((void *)a->verified);
	free((void *)a->reported);
	a->verified = NULL;
	a->reported = NULL;
}

/* Raw length of chunk @chunk of an array. */
static size_t mfsd_chunk_len(const mfs_array_info *ai, uint64_t chunk)
{
	uint64_t start = chunk * ai->chunk_size;
	uint64_t left = ai->raw_length - start;

	return (size_t)(left < ai->chunk_size ? left : ai->chunk_size);
}

/*
 * Reaching back this far when dropping backing pages covers the page cache's
 * largest folios (a PMD, 2 MiB on x86-64): the kernel only drops a folio
 * that lies entirely inside the range, and readahead builds large folios
 * that straddle the ranges of successive requests.
 */
#define MFSD_DROP_BACK ((uint64_t)4 << 20)

/*
 * Drops the backing pages of [@start, @end) of an array whose stored
 * bytes end at @limit, together with the MFSD_DROP_BACK bytes before
 * @start (served earlier in a forward scan; at worst re-read from the
 * disk).  The page holding @end stays for whoever reads the bytes after
 * it, unless the array ends there.  Together every page of a forward scan
 * is dropped once it has been served.
 */
static void mfsd_drop(int fd, uint64_t start, uint64_t end, uint64_t limit)
{
	uint64_t s = start > MFSD_DROP_BACK ? start - MFSD_DROP_BACK : 0;
	uint64_t e = end & ~(MFSD_PAGE - 1);

	s &= ~(MFSD_PAGE - 1);
	if (end >= limit)
		e = (end + MFSD_PAGE - 1) & ~(MFSD_PAGE - 1);
	if (e > s)
		(void)posix_fadvise(fd, (off_t)s, (off_t)(e - s),
				    POSIX_FADV_DONTNEED);
}

/* Logs and counts a chunk that failed its checksum or decoding, once. */
static void mfsd_chunk_failed(const struct mfsd_data *d, struct mfsd_model *m,
			      size_t index, uint64_t chunk, int err)
{
	struct mfsd_array *a = &m->arrays[index];

	if (err != -EIO && err != -EBADMSG)
		return;
	if (!mfsd_bit_set(a->reported, chunk))
		return;
	atomic_fetch_add_explicit(&d->stats->checksum_failures, 1,
				  memory_order_relaxed);
	mfsd_log(MFSD_LOG_ERR, "model %s, array %s, chunk %llu: %s",
		 m->key, a->info.name, (unsigned long long)chunk,
		 mfs_last_error());
}

/*
 * Reads chunk @chunk into @buf (its raw length), or with a NULL @buf
 * only checks it.  A remote store's chunk that fails is fetched again,
 * once: it was evicted or torn in the cache under the reader.
 */
static ssize_t mfsd_get_chunk(struct mfsd_model *m, size_t index,
			      uint64_t chunk, void *buf, size_t len)
{
	for (int again = 0;; again++) {
		ssize_t n = buf ? mfs_container_read_chunk(m->container, index,
							   chunk, buf, len)
				: mfs_container_check_chunk(m->container, index,
							    chunk);

		if (n != -EIO || !m->remote || again ||
		    mfsd_remote_refetch(m->remote, index, chunk) < 0)
			return n;
	}
}

/*
 * Checks raw chunk @chunk, read into @buf (its raw length), or, with a
 * NULL @buf, into a buffer of the library's so that its bytes then travel
 * to the kernel by splice straight from the backing file.  @remember:
 * mark it verified, so that it is served from the file from now on (only
 * while the container is leased).  0 or a negative errno (failure logged
 * once).
 */
static int mfsd_verify_chunk(const struct mfsd_data *d, struct mfsd_model *m,
			     size_t index, uint64_t chunk, void *buf,
			     size_t len, bool remember)
{
	struct mfsd_array *a = &m->arrays[index];
	ssize_t n = mfsd_get_chunk(m, index, chunk, buf, len);

	if (n < 0) {
		mfsd_chunk_failed(d, m, index, chunk, (int)n);
		return (int)n;
	}
	if (!remember || mfsd_bit_set(a->verified, chunk))
		atomic_fetch_add_explicit(&d->stats->chunks_verified, 1,
					  memory_order_relaxed);
	return 0;
}

static void mfsd_add_piece(struct mfsd_reply *r, const void *mem,
			   uint64_t pos, size_t len)
{
	struct mfsd_piece *last = r->npieces ? &r->pieces[r->npieces - 1] : NULL;

	/* Adjacent backing-file ranges travel as one. */
	if (!mem && last && !last->mem && last->pos + last->len == pos) {
		last->len += len;
		return;
	}
	r->pieces[r->npieces++] = (struct mfsd_piece){mem, pos, len};
}

/* Adds the part of the NPY header in [@off, @off + @size). */
static int mfsd_add_header(struct mfsd_reply *r, const struct mfsd_array *a,
			   uint64_t off, size_t size)
{
	size_t n = a->header_len - off;
	int rc;

	r->header = malloc(MFS_NPY_HEADER_SIZE);
	if (!r->header)
		return -ENOMEM;
	rc = mfs_npy_header(a->info.dtype, a->info.ndim, a->info.shape,
			    a->info.order, r->header, MFS_NPY_HEADER_SIZE);
	if (rc < 0)
		return -EIO;
	mfsd_add_piece(r, r->header + off, 0, n < size ? n : size);
	return 0;
}

/*
 * Adds raw range [@roff, @roff + @rlen) of a codec-none array.  Chunks
 * verified before are served from the backing file.  A chunk touched for
 * the first time is checked first: with splice, in a buffer of its own,
 * and then spliced from the file like a verified one (measured faster than
 * serving the buffer); with pread, read whole into a buffer that is then
 * served, instead of being read a second time.  Without a lease on the
 * container every chunk is served the pread way, each time.
 */
static int mfsd_add_raw(const struct mfsd_data *d, struct mfsd_reply *r,
			struct mfsd_model *m, size_t index, uint64_t roff,
			size_t rlen)
{
	struct mfsd_array *a = &m->arrays[index];
	const mfs_array_info *ai = &a->info;
	uint64_t end = roff + rlen;
	bool direct = mfsd_lease_enter(m);

	r->direct = direct ? m : NULL;
	r->fd = mfs_container_fd(m->container);
	r->drop_start = ai->data_offset + roff;
	r->drop_end = ai->data_offset + end;
	r->drop_limit = ai->data_offset + ai->stored_length;
	for (uint64_t c = roff / ai->chunk_size; c * ai->chunk_size < end;
	     c++) {
		uint64_t cstart = c * ai->chunk_size;
		size_t clen = mfsd_chunk_len(ai, c);
		uint64_t from = roff > cstart ? roff : cstart;
		uint64_t to = end < cstart + clen ? end : cstart + clen;
		char *buf;
		int rc;

		if (direct && !mfsd_bit_test(a->verified, c) &&
		    d->io == MFSD_IO_SPLICE) {
			rc = mfsd_verify_chunk(d, m, index, c, NULL, 0, true);
			if (rc < 0)
				return rc;
		}
		if (direct && mfsd_bit_test(a->verified, c)) {
			mfsd_add_piece(r, NULL, ai->data_offset + from,
				       (size_t)(to - from));
			continue;
		}
		buf = malloc(clen ? clen : 1);
		if (!buf)
			return -ENOMEM;
		r->bufs[r->nbufs++] = buf;
		rc = mfsd_verify_chunk(d, m, index, c, buf, clen, direct);
		if (rc < 0)
			return rc;
		mfsd_add_piece(r, buf + (from - cstart), 0,
			       (size_t)(to - from));
	}
	return 0;
}

/* What the cache loader needs to decode one LZ4 chunk. */
struct mfsd_load {
	const struct mfsd_data *d;
	struct mfsd_model *m;
	size_t index;
	uint64_t chunk;
};

/* mfsd_cache_load_fn: reads, checks and decodes one chunk, then drops
 * its stored bytes from the page cache (the decoded bytes are what the
 * mount's own page cache will hold).  Reading beats mapping the stored
 * bytes (see mfs_container_check_chunk): cold scan of 1 GiB of LZ4
 * arrays 1.06-1.28 s mapped, 0.82-0.97 s read. */
static ssize_t mfsd_lz4_load(void *arg, void *buf, size_t len)
{
	struct mfsd_load *l = arg;
	const mfs_array_info *ai = &l->m->arrays[l->index].info;
	mfs_chunk_info ci;
	ssize_t n = mfsd_get_chunk(l->m, l->index, l->chunk, buf, len);

	if (n < 0) {
		mfsd_chunk_failed(l->d, l->m, l->index, l->chunk, (int)n);
		return n;
	}
	atomic_fetch_add_explicit(&l->d->stats->chunks_decoded, 1,
				  memory_order_relaxed);
	if (mfs_container_chunk(l->m->container, l->index, l->chunk, &ci) == 0)
		mfsd_drop(mfs_container_fd(l->m->container), ci.file_offset,
			  ci.file_offset + ci.stored_length,
			  ai->data_offset + ai->stored_length);
	return n;
}

/* Adds raw range [@roff, @roff + @rlen) of an LZ4 array from pinned
 * decoded chunks. */
static int mfsd_add_lz4(const struct mfsd_data *d, struct mfsd_reply *r,
			struct mfsd_model *m, size_t index, uint64_t roff,
			size_t rlen)
{
	const mfs_array_info *ai = &m->arrays[index].info;
	uint64_t end = roff + rlen;

	for (uint64_t c = roff / ai->chunk_size; c * ai->chunk_size < end;
	     c++) {
		struct mfsd_cache_key key = {m->gen, index, c};
		struct mfsd_load l = {d, m, index, c};
		uint64_t cstart = c * ai->chunk_size, from, to;
		size_t clen = mfsd_chunk_len(ai, c);
		struct mfsd_cache_entry *e;
		int rc = mfsd_cache_get(d->cache, &key, clen, mfsd_lz4_load,
					&l, &e);

		if (rc < 0)
			return rc;
		r->pins[r->npins++] = e;
		from = roff > cstart ? roff : cstart;
		to = end < cstart + clen ? end : cstart + clen;
		mfsd_add_piece(r, (const char *)mfsd_cache_data(e) +
					  (from - cstart),
			       0, (size_t)(to - from));
	}
	return 0;
}

/* Sizes the piece and pin lists for a read of @size bytes of @a. */
static int mfsd_reply_init(struct mfsd_reply *r, const struct mfsd_array *a,
			   size_t size)
{
	memset(r, 0, sizeof(*r));
	r->fd = -1;
	r->cap = size / a->info.chunk_size + MFSD_EXTRA_PIECES;
	r->pieces = calloc(r->cap, sizeof(*r->pieces));
	r->pins = calloc(r->cap, sizeof(*r->pins));
	r->bufs = calloc(r->cap, sizeof(*r->bufs));
	return r->pieces && r->pins && r->bufs ? 0 : -ENOMEM;
}

/* Ends the unchecked read, unpins, drops the backing range served,
 * frees. */
static void mfsd_reply_finish(const struct mfsd_data *d, struct mfsd_reply *r)
{
	if (r->direct)
		mfsd_lease_leave(r->direct);
	for (size_t i = 0; i < r->npins; i++)
		mfsd_cache_put(d->cache, r->pins[i]);
	if (r->fd >= 0)
		mfsd_drop(r->fd, r->drop_start, r->drop_end, r->drop_limit);
	for (size_t i = 0; i < r->nbufs; i++)
		free(r->bufs[i]);
	free(r->bufs);
	free(r->rawbuf);
	free(r->header);
	free(r->pins);
	free(r->pieces);
}

/* Turns file pieces into memory pieces by pread (pread mode), into one
 * buffer for all of them. */
static int mfsd_reply_pread(struct mfsd_reply *r)
{
	size_t total = 0, used = 0;

	for (size_t i = 0; i < r->npieces; i++)
		total += r->pieces[i].mem ? 0 : r->pieces[i].len;
	r->rawbuf = malloc(total ? total : 1);
	if (!r->rawbuf)
		return -ENOMEM;
	for (size_t i = 0; i < r->npieces; i++) {
		struct mfsd_piece *p = &r->pieces[i];
		char *dst = (char *)r->rawbuf + used;
		int rc;

		if (p->mem)
			continue;
		rc = mfs_pread_full(r->fd, dst, p->len, p->pos);
		if (rc < 0)
			return rc;
		p->mem = dst;
		used += p->len;
	}
	return 0;
}

/* Sends memory pieces with one writev.  Returns 0 once @req is consumed,
 * or -ENOMEM (not answered). */
static int mfsd_reply_iov(fuse_req_t req, struct mfsd_reply *r)
{
	struct iovec *iov = calloc(r->npieces ? r->npieces : 1, sizeof(*iov));

	if (!iov)
		return -ENOMEM;
	for (size_t i = 0; i < r->npieces; i++)
		iov[i] = (struct iovec){(void *)r->pieces[i].mem,
					r->pieces[i].len};
	fuse_reply_iov(req, iov, (int)r->npieces);
	free(iov);
	return 0;
}

/* Sends pieces with a file range by fuse_reply_data, which splices the
 * backing bytes when the kernel allows.  Consumes @req. */
static int mfsd_reply_splice(fuse_req_t req, struct mfsd_reply *r)
{
	struct fuse_bufvec *bv = calloc(1, sizeof(*bv) + r->npieces *
						  sizeof(struct fuse_buf));

	if (!bv)
		return -ENOMEM;
	bv->count = r->npieces;
	for (size_t i = 0; i < r->npieces; i++) {
		struct mfsd_piece *p = &r->pieces[i];
		struct fuse_buf *b = &bv->buf[i];

		b->size = p->len;
		if (p->mem) {
			b->mem = (void *)p->mem;
			continue;
		}
		b->flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		b->fd = r->fd;
		b->pos = (off_t)p->pos;
	}
	fuse_reply_data(req, bv, 0);
	free(bv);
	return 0;
}

/* Sends the assembled reply.  Returns 0 once @req is consumed, or a
 * negative errno (request not answered). */
static int mfsd_reply_send(const struct mfsd_data *d, fuse_req_t req,
			   struct mfsd_reply *r)
{
	bool has_fd = false;
	int rc;

	for (size_t i = 0; i < r->npieces; i++)
		has_fd |= !r->pieces[i].mem;
	if (has_fd && d->io == MFSD_IO_SPLICE)
		return mfsd_reply_splice(req, r);
	if (has_fd) {
		rc = mfsd_reply_pread(r);
		if (rc < 0)
			return rc;
	}
	return mfsd_reply_iov(req, r);
}

/* Has the chunks under raw range [@roff, @roff + @rlen) of array @index
 * of a remote store's model @m fetched into the cache. */
static int mfsd_fetch_range(struct mfsd_model *m, size_t index, uint64_t roff,
			    uint64_t rlen)
{
	const mfs_array_info *ai = &m->arrays[index].info;
	int rc;

	if (!m->remote || rlen == 0 || ai->chunk_size == 0)
		return 0;
	rc = mfsd_remote_ensure(m->remote, index, roff / ai->chunk_size,
				  (roff + rlen - 1) / ai->chunk_size);
	/* Whatever kept the bytes from the cache (the origin, its answer,
	 * the cache's disk: logged), to the reader they could not be
	 * read. */
	return rc == -ENOMEM ? rc : rc < 0 ? -EIO : 0;
}

/* Fills @r for [@off, @off + @size) of array file @index. */
static int mfsd_reply_build(const struct mfsd_data *d, struct mfsd_reply *r,
			    struct mfsd_model *m, size_t index, uint64_t off,
			    size_t size)
{
	const struct mfsd_array *a = &m->arrays[index];
	uint64_t end = off + size, roff;
	int rc = mfsd_reply_init(r, a, size);

	if (rc == 0 && off < a->header_len)
		rc = mfsd_add_header(r, a, off, size);
	if (rc < 0 || end <= a->header_len)
		return rc;
	roff = off > a->header_len ? off - a->header_len : 0;
	rc = mfsd_fetch_range(m, index, roff, end - a->header_len - roff);
	if (rc < 0)
		return rc;
	if (a->info.codec == MFS_CODEC_LZ4)
		return mfsd_add_lz4(d, r, m, index, roff,
				    (size_t)(end - a->header_len - roff));
	return mfsd_add_raw(d, r, m, index, roff,
			    (size_t)(end - a->header_len - roff));
}

/* FUSE wants a positive errno; decoding and checksum trouble is EIO. */
static int mfsd_reply_errno(int rc)
{
	return rc == -EBADMSG ? EIO : -rc;
}

void mfsd_data_read(const struct mfsd_data *d, fuse_req_t req,
		    struct mfsd_model *m, size_t index, size_t size,
		    off_t off)
{
	const struct mfsd_array *a = &m->arrays[index];
	struct mfsd_reply r;
	int rc;

	if (off < 0 || (uint64_t)off >= a->file_size || size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > a->file_size - (uint64_t)off)
		size = (size_t)(a->file_size - (uint64_t)off);
	rc = mfsd_reply_build(d, &r, m, index, (uint64_t)off, size);
	if (rc == 0)
		rc = mfsd_reply_send(d, req, &r);
	if (rc < 0) {
		atomic_fetch_add_explicit(&d->stats->read_errors, 1,
					  memory_order_relaxed);
		fuse_reply_err(req, mfsd_reply_errno(rc));
	} else {
		atomic_fetch_add_explicit(&d->stats->bytes_served, size,
					  memory_order_relaxed);
		mfsd_model_served(m, size);
	}
	mfsd_reply_finish(d, &r);
}

size_t mfsd_data_read_mem(const struct mfsd_data *d, fuse_req_t req,
			  const char *buf, size_t len, size_t size, off_t off)
{
	size_t n = 0;

	if (off >= 0 && (uint64_t)off < len) {
		n = len - (size_t)off;
		if (n > size)
			n = size;
	}
	fuse_reply_buf(req, n ? buf + off : NULL, n);
	atomic_fetch_add_explicit(&d->stats->bytes_served, n,
				  memory_order_relaxed);
	return n;
}
