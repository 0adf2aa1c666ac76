/*
 * fetch.c - chunks of a remote store into the cache files: lookup of a
 * container's cache object, fetching with one fetch per chunk in flight,
 * coalescing and readahead, checking before caching, eviction (see
 * remote.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "remote_internal.h"

#define MFSD_WORD_BITS 64u
/* A reader whose chunks are fetched more than this many times over gives
 * up (mfsd_ensure). */
#define MFSD_THRASH_FACTOR 4u
/* A read counts as sequential when it starts within this many reads'
 * length (plus the window) of where the last one ended. */
#define MFSD_RA_NEAR_READS 4u
/*
 * After a fetch found no answer within its whole deadline, fetches fail
 * at once for this long.  The kernel reads a page again by itself when
 * its readahead failed; without this a reader would wait out the deadline
 * twice, and every reader of an unreachable origin would keep its
 * threads busy.
 */
#define MFSD_DOWN_HOLD_NS ((uint64_t)1000000000)
/* Bytes in a st_blocks unit. */
#define MFSD_BLOCK_UNIT 512u

static bool mfsd_bget(const uint64_t *b, uint64_t i)
{
	return (b[i / MFSD_WORD_BITS] >> (i % MFSD_WORD_BITS)) & 1u;
}

static void mfsd_bput(uint64_t *b, uint64_t i, bool v)
{
	uint64_t bit = UINT64_C(1) << (i % MFSD_WORD_BITS);

	if (v)
		b[i / MFSD_WORD_BITS] |= bit;
	else
		b[i / MFSD_WORD_BITS] &= ~bit;
}

bool mfsd_robj_name(struct mfsd_robj *o, char *buf)
{
	pthread_mutex_lock(&o->lock);
	memcpy(buf, o->object, sizeof(o->object));
	pthread_mutex_unlock(&o->lock);
	return buf[0] != '\0';
}

uint64_t mfsd_robj_disk_bytes(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return 0;
	return (uint64_t)st.st_blocks * MFSD_BLOCK_UNIT;
}

void mfsd_robj_free(struct mfsd_robj *o)
{
	if (!o)
		return;
	if (o->fd >= 0)
		close(o->fd);
	pthread_cond_destroy(&o->done);
	pthread_mutex_destroy(&o->lock);
	mfs_container_close(o->c);
	free(o->first);
	free(o->present);
	free(o->busy);
	free(o->file_name);
	free(o);
}

/* Opens @o's own view of its container (readahead runs without a
 * model) and builds its chunk numbering and bitmaps.  Under o->lock.
 * 0 or a negative errno. */
static int mfsd_robj_layout(struct mfsd_robj *o)
{
	size_t n, words;
	uint64_t total = 0;
	mfs_array_info ai;
	mfs_container *c;
	int fd = dup(o->fd), rc;

	if (fd < 0)
		return -errno;
	rc = mfs_container_open_fd(&c, fd, o->file_name);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	n = mfs_container_array_count(c);
	o->first = calloc(n ? n : 1, sizeof(*o->first));
	if (!o->first) {
		mfs_container_close(c);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		(void)mfs_container_array(c, i, &ai);
		o->first[i] = total;
		total += ai.chunk_count;
	}
	words = (size_t)((total + MFSD_WORD_BITS - 1) / MFSD_WORD_BITS);
	o->present = calloc(words ? words : 1, sizeof(*o->present));
	o->busy = calloc(words ? words : 1, sizeof(*o->busy));
	if (!o->present || !o->busy) {
		free(o->first);
		free(o->present);
		free(o->busy);
		o->first = o->present = o->busy = NULL;
		mfs_container_close(c);
		return -ENOMEM;
	}
	o->c = c;
	o->narrays = n;
	o->nchunks = total;
	o->has_layout = true;
	return 0;
}

struct mfsd_robj *mfsd_remote_attach(struct mfsd_remote *r,
				     const mfs_container *c)
{
	struct mfsd_robj *found = NULL;
	struct stat st;

	if (fstat(mfs_container_fd(c), &st) < 0)
		return NULL;
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->nobjs && !found; i++)
		if (r->objs[i]->dev == st.st_dev && r->objs[i]->ino == st.st_ino)
			found = r->objs[i];
	if (found) {
		pthread_mutex_lock(&found->lock);
		if (found->has_layout || mfsd_robj_layout(found) == 0)
			found->refs++;
		else
			found = NULL;
		if (found)
			pthread_mutex_unlock(&found->lock);
	}
	pthread_mutex_unlock(&r->lock);
	if (!found)
		mfsd_log(MFSD_LOG_WARNING, "%s: not a file of the remote "
			 "store's cache (or out of memory): served as it is",
			 mfs_container_label(c));
	return found;
}

void mfsd_remote_detach(struct mfsd_robj *o)
{
	bool dead;

	if (!o)
		return;
	pthread_mutex_lock(&o->lock);
	o->refs--;
	dead = !o->listed && o->refs == 1;
	pthread_mutex_unlock(&o->lock);
	/* The last holder of a version no index names any more let go. */
	if (dead)
		mfsd_remote_gc(o->r);
}

/* Where chunk @k of @array lies in the file. */
static int mfsd_chunk_at(const mfs_container *c, size_t array, uint64_t k,
			 mfs_chunk_info *ci)
{
	return mfs_container_chunk(c, array, k, ci) < 0 ? -EIO : 0;
}

/* True if the cache file holds data (not a hole) at @off. */
static bool mfsd_has_data(int fd, uint64_t off)
{
	off_t d = lseek(fd, (off_t)off, SEEK_DATA);

	return d >= 0 && (uint64_t)d == off;
}

/* Checks chunk @k as it lies in the cache file, into @buf.  True if it
 * is there and matches. */
static bool mfsd_check_cached(struct mfsd_robj *o, const mfs_chunk_info *ci,
			      char *buf)
{
	if (ci->stored_length == 0)
		return true;
	if (!mfsd_has_data(o->fd, ci->file_offset))
		return false;
	if (mfs_pread_full(o->fd, buf, ci->stored_length,
			   ci->file_offset) < 0)
		return false;
	return mfs_chunk_check(ci, buf, NULL, NULL, 0) == 0;
}

static void mfsd_evict_to(struct mfsd_remote *r, const struct mfsd_keep *keep,
			  uint64_t limit);

/* Writes checked bytes into the cache file and waits for them to reach
 * the disk, so that the read path's drop of the pages it served leaves
 * no second copy in the page cache.  0 or a negative errno. */
static int mfsd_cache_write(struct mfsd_robj *o, const void *buf, size_t len,
			    uint64_t off, const struct mfsd_keep *keep)
{
	struct mfsd_remote *r = o->r;
	int rc = mfs_pwrite_full(o->fd, buf, len, off);

	if (rc == -ENOSPC) {
		/* The file system is fuller than --cache-size allows for:
		 * make room as if the cache were at its limit, once, keeping
		 * what the reader needs (the chunks being fetched are busy:
		 * never evicted either). */
		uint64_t used = atomic_load(&r->cache_bytes);

		mfsd_evict_to(r, keep, used > len ? used - len : 0);
		rc = mfs_pwrite_full(o->fd, buf, len, off);
	}
	if (rc < 0) {
		mfsd_log(MFSD_LOG_ERR, "cache file %s/%s/%s: writing %zu bytes: "
			 "%s%s", r->site_path, MFSD_REMOTE_OBJECTS,
			 o->file_name, len, strerror(-rc),
			 rc == -ENOSPC ? " (even after evicting: set "
					 "--cache-size below the free space)"
				       : "");
		return rc;
	}
	(void)sync_file_range(o->fd, (off_t)off, (off_t)len,
			      SYNC_FILE_RANGE_WAIT_BEFORE |
				      SYNC_FILE_RANGE_WRITE |
				      SYNC_FILE_RANGE_WAIT_AFTER);
	atomic_fetch_add(&o->r->cache_bytes, len);
	return 0;
}

/* Fetch failures logged at most this often (a dead origin fails every
 * read). */
#define MFSD_FAIL_LOG_NS ((uint64_t)1000000000)

static uint64_t mfsd_now_ns(void);

/* Logs a failed fetch, or counts it into the next line. */
static void mfsd_fetch_failed(struct mfsd_robj *o, const char *name,
			      uint64_t off, size_t len, int rc)
{
	struct mfsd_remote *r = o->r;
	uint64_t now = mfsd_now_ns(), last = atomic_load(&r->fail_logged_ns);
	uint64_t more;

	if (rc == -ECANCELED)
		return; /* stopping */
	if (last && now - last < MFSD_FAIL_LOG_NS) {
		atomic_fetch_add(&r->fail_unlogged, 1);
		return;
	}
	if (!atomic_compare_exchange_strong(&r->fail_logged_ns, &last, now)) {
		atomic_fetch_add(&r->fail_unlogged, 1);
		return;
	}
	more = atomic_exchange(&r->fail_unlogged, 0);
	mfsd_log(MFSD_LOG_ERR, "%s%s: bytes %llu-%llu: %s (%llu more failed "
		 "fetches since the last such line)", r->shown, name,
		 (unsigned long long)off, (unsigned long long)(off + len - 1),
		 rc == -ETIMEDOUT ? "no answer within the deadline"
				  : strerror(-rc),
		 (unsigned long long)more);
}

static uint64_t mfsd_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Fetches [@off, @off + @len) of @o's object into @buf with one Range
 * request. */
static int mfsd_fetch_span(struct mfsd_robj *o, uint64_t off, size_t len,
			   char *buf)
{
	struct mfsd_remote *r = o->r;
	char name[MFSD_OBJECT_MAX + 1];
	bool known = mfsd_robj_name(o, name);
	int rc;

	if (mfsd_now_ns() < atomic_load(&r->down_until))
		return -ETIMEDOUT; /* said when it started */
	rc = known ? mfsd_http_get_range(r->http, name, off, len, buf) : -ENOENT;
	if (rc == -ETIMEDOUT)
		atomic_store(&r->down_until, mfsd_now_ns() + MFSD_DOWN_HOLD_NS);
	if (rc < 0) {
		atomic_fetch_add(&r->stats.fetch_errors, 1);
		mfsd_fetch_failed(o, known ? name : o->file_name, off, len, rc);
	}
	return rc;
}

/* Logs and counts a fetched chunk that failed its checksum. */
static void mfsd_bad_chunk(struct mfsd_robj *o, size_t array, uint64_t k,
			   bool again)
{
	char name[MFSD_OBJECT_MAX + 1];

	(void)mfsd_robj_name(o, name);
	atomic_fetch_add(&o->r->stats.bad_chunks, 1);
	mfsd_log(MFSD_LOG_ERR, "%s%s: array #%zu chunk %llu as fetched fails "
		 "its checksum%s", o->r->shown, name, array,
		 (unsigned long long)k,
		 again ? " again: not cached, the read fails (EIO)"
		       : "; fetching it once more");
}

/* Takes a fetched chunk: checks it (fetching it alone once more if it
 * fails) and writes it into the cache.  0 or a negative errno. */
static int mfsd_take_chunk(struct mfsd_robj *o, size_t array, uint64_t k,
			   const mfs_chunk_info *ci, char *bytes,
			   const struct mfsd_keep *keep)
{
	int rc;

	if (mfs_chunk_check(ci, bytes, NULL, NULL, 0) < 0) {
		mfsd_bad_chunk(o, array, k, false);
		rc = mfsd_fetch_span(o, ci->file_offset, ci->stored_length,
				     bytes);
		if (rc < 0)
			return rc;
		if (mfs_chunk_check(ci, bytes, NULL, NULL, 0) < 0) {
			mfsd_bad_chunk(o, array, k, true);
			return -EIO;
		}
	}
	return mfsd_cache_write(o, bytes, ci->stored_length, ci->file_offset,
				keep);
}

/*
 * Brings chunks [@a, @b] of @array (claimed busy by the caller) into the
 * cache: those already in the file and sound count as hits; the rest
 * come in one Range request spanning them.  @ok gets a bit per chunk
 * (index k - @a) that is now present.  @force: do not trust the file.
 * Room made on a full disk spares @keep.  Returns 0 or the first error.
 */
static int mfsd_fetch_run(struct mfsd_robj *o, size_t array, uint64_t a,
			  uint64_t b, bool force, uint64_t *ok,
			  const struct mfsd_keep *keep)
{
	mfs_chunk_info first, last, ci;
	uint64_t lo = UINT64_MAX, hi = 0, base;
	char *buf;
	int rc = 0;

	if (mfsd_chunk_at(o->c, array, a, &first) < 0 ||
	    mfsd_chunk_at(o->c, array, b, &last) < 0)
		return -EIO;
	/* The run's stored bytes, at their offsets from its first chunk. */
	base = first.file_offset;
	buf = malloc(last.file_offset + last.stored_length - base + 1);
	if (!buf)
		return -ENOMEM;
	for (uint64_t k = a; k <= b; k++) {
		if (mfsd_chunk_at(o->c, array, k, &ci) < 0) {
			rc = -EIO;
			goto out;
		}
		if (!force &&
		    mfsd_check_cached(o, &ci, buf + (ci.file_offset - base))) {
			mfsd_bput(ok, k - a, true);
			atomic_fetch_add(&o->r->stats.cache_hits, 1);
			continue;
		}
		lo = k < lo ? k : lo;
		hi = k;
	}
	if (lo == UINT64_MAX)
		goto out;
	mfsd_chunk_at(o->c, array, lo, &first);
	mfsd_chunk_at(o->c, array, hi, &last);
	rc = mfsd_fetch_span(o, first.file_offset,
			     (size_t)(last.file_offset + last.stored_length -
				      first.file_offset),
			     buf + (first.file_offset - base));
	for (uint64_t k = lo; rc == 0 && k <= hi; k++) {
		if (mfsd_bget(ok, k - a))
			continue;
		mfsd_chunk_at(o->c, array, k, &ci);
		rc = mfsd_take_chunk(o, array, k, &ci,
				     buf + (ci.file_offset - base), keep);
		if (rc == 0) {
			mfsd_bput(ok, k - a, true);
			atomic_fetch_add(&o->r->stats.cache_misses, 1);
		}
	}
out:
	free(buf);
	return rc;
}

/* Claims, under o->lock, the longest run from the first chunk of
 * [@g0, @g1] (global numbers, one array) that is neither present nor
 * busy, up to MFSD_FETCH_MAX bytes and not past @g1.  Returns true with
 * [*@ra, *@rb] claimed, false if every missing chunk is busy (or none is
 * missing: *@missing false). */
static bool mfsd_claim(struct mfsd_robj *o, size_t array, uint64_t g0,
		       uint64_t g1, uint64_t *ra, uint64_t *rb, bool *missing)
{
	uint64_t base = o->first[array], start = UINT64_MAX, bytes = 0;
	mfs_chunk_info ci;

	*missing = false;
	for (uint64_t g = g0; g <= g1; g++) {
		if (mfsd_bget(o->present, g))
			continue;
		*missing = true;
		if (!mfsd_bget(o->busy, g)) {
			start = g;
			break;
		}
	}
	if (start == UINT64_MAX ||
	    mfsd_chunk_at(o->c, array, start - base, &ci) < 0)
		return false;
	for (uint64_t g = start; g <= g1; g++) {
		if (mfsd_bget(o->present, g) || mfsd_bget(o->busy, g))
			break;
		if (mfsd_chunk_at(o->c, array, g - base, &ci) < 0)
			break;
		if (bytes && bytes + ci.stored_length > MFSD_FETCH_MAX)
			break;
		bytes += ci.stored_length;
		mfsd_bput(o->busy, g, true);
		*rb = g;
	}
	*ra = start;
	return true;
}

/*
 * For a read of [@g0, @g1] of @array, the range to fetch ahead of it in
 * the background: the next chunks of the array while the reader goes
 * forward (several threads serve one reader out of order, so "forward"
 * is near the end of the last read, not exactly at it), a window that
 * doubles up to MFSD_RA_MAX_BYTES.  Under o->lock.  False if none.
 */
static bool mfsd_readahead(struct mfsd_robj *o, size_t array, uint64_t g0,
			   uint64_t g1, uint64_t *from, uint64_t *to)
{
	mfs_array_info ai;
	uint64_t last, near, end, ra_chunks;

	(void)mfs_container_array(o->c, array, &ai);
	if (ai.chunk_count == 0 || ai.chunk_size == 0)
		return false;
	last = o->first[array] + ai.chunk_count - 1;
	ra_chunks = o->ra_bytes / ai.chunk_size;
	near = ra_chunks + (g1 - g0 + 1) * MFSD_RA_NEAR_READS;
	/* A jump, or another array (its chunks may be of another size):
	 * not sequential (yet). */
	if (array != o->ra_array || g0 + near < o->next_seq ||
	    g0 > o->next_seq + near) {
		o->ra_bytes = 0;
		o->ra_array = array;
		o->next_seq = g1 + 1;
		o->ra_end = g1;
		return false;
	}
	if (o->ra_bytes == 0)
		o->ra_bytes = MFSD_RA_START_BYTES;
	else if (o->ra_bytes < MFSD_RA_MAX_BYTES)
		o->ra_bytes *= 2;
	if (o->ra_bytes > o->r->ra_cap)
		o->ra_bytes = o->r->ra_cap;
	ra_chunks = o->ra_bytes / ai.chunk_size;
	if (ra_chunks == 0)
		return false; /* a cache too small to read ahead in */
	if (g1 + 1 > o->next_seq)
		o->next_seq = g1 + 1;
	end = g1 + ra_chunks < last ? g1 + ra_chunks : last;
	/* Queued already far enough ahead: wait until the reader has used
	 * half of it, so that what is queued goes in large requests. */
	if (o->ra_end >= g1 + ra_chunks / 2 && o->ra_end < end)
		return false;
	*from = o->ra_end + 1 > g1 + 1 ? o->ra_end + 1 : g1 + 1;
	if (*from > end || *from < o->first[array])
		return false;
	*to = end;
	o->ra_end = end;
	return true;
}

/* Releases the claim [@ra, @rb], marking present what @ok says. */
static void mfsd_unclaim(struct mfsd_robj *o, uint64_t ra, uint64_t rb,
			 const uint64_t *ok)
{
	for (uint64_t g = ra; g <= rb; g++) {
		mfsd_bput(o->busy, g, false);
		if (ok && mfsd_bget(ok, g - ra))
			mfsd_bput(o->present, g, true);
	}
	pthread_cond_broadcast(&o->done);
}

/* Fetches the claimed run [@ra, @rb] of @array and brings the cache back
 * within its size before anyone sees the new chunks, keeping [@lo, @hi]
 * (what the reader asked for, and the run).  Drops o->lock while it
 * works; returns with it held. */
static int mfsd_fetch_claimed(struct mfsd_robj *o, size_t array, uint64_t ra,
			      uint64_t rb, uint64_t lo, uint64_t hi, bool force)
{
	uint64_t *ok = calloc((rb - ra) / MFSD_WORD_BITS + 1, sizeof(*ok));
	struct mfsd_keep keep = {o, lo < ra ? lo : ra, hi > rb ? hi : rb};
	int rc;

	pthread_mutex_unlock(&o->lock);
	rc = ok ? mfsd_fetch_run(o, array, ra - o->first[array],
				 rb - o->first[array], force, ok, &keep)
		: -ENOMEM;
	mfsd_remote_evict(o->r, &keep);
	pthread_mutex_lock(&o->lock);
	mfsd_unclaim(o, ra, rb, ok);
	free(ok);
	return rc;
}

/* Queues a background fetch of [@from, @to] of @array of @o (dropped if
 * the queue is full or no readahead thread runs). */
static void mfsd_queue_readahead(struct mfsd_robj *o, size_t array,
				 uint64_t from, uint64_t to)
{
	struct mfsd_remote *r = o->r;

	pthread_mutex_lock(&r->lock);
	if (r->nra_threads && !r->stopping &&
	    r->ra_len < MFSD_RA_QUEUE) {
		r->ra_queue[(r->ra_head + r->ra_len) % MFSD_RA_QUEUE] =
			(struct mfsd_ra_job){o, array, from, to};
		r->ra_len++;
		pthread_mutex_lock(&o->lock);
		o->refs++;
		pthread_mutex_unlock(&o->lock);
		pthread_cond_signal(&r->ra_wake);
	}
	pthread_mutex_unlock(&r->lock);
}

/* Stored bytes of chunks [@g0, @g1] (global numbers) of @array. */
static uint64_t mfsd_run_bytes(struct mfsd_robj *o, size_t array, uint64_t g0,
			       uint64_t g1)
{
	mfs_chunk_info a, b;

	if (mfsd_chunk_at(o->c, array, g0 - o->first[array], &a) < 0 ||
	    mfsd_chunk_at(o->c, array, g1 - o->first[array], &b) < 0)
		return 0;
	return b.file_offset + b.stored_length - a.file_offset;
}

/* Says, once, that reads fail because the cache cannot hold what is
 * read at once. */
static void mfsd_thrash(struct mfsd_robj *o)
{
	struct mfsd_remote *r = o->r;
	bool said;

	pthread_mutex_lock(&r->lock);
	said = r->warned_thrash;
	r->warned_thrash = true;
	pthread_mutex_unlock(&r->lock);
	if (!said)
		mfsd_log(MFSD_LOG_ERR, "cache file %s: its chunks were evicted "
			 "again before they could be read: the cache is too "
			 "small for what is read at once (raise --cache-size "
			 "or the cache's disk); such reads fail with EIO",
			 o->file_name);
}

/* mfsd_remote_ensure, with @force for chunks whose cached bytes failed. */
static int mfsd_ensure(struct mfsd_robj *o, size_t array, uint64_t first,
		       uint64_t last, bool force, bool ahead)
{
	uint64_t g0, g1, ra = 0, rb = 0, from = 0, to = 0, fetched_bytes = 0;
	bool missing, queue = false;
	mfs_array_info ai;
	int rc = 0;

	atomic_store(&o->last_use, atomic_fetch_add(&o->r->clock, 1) + 1);
	pthread_mutex_lock(&o->lock);
	if (!o->has_layout || array >= o->narrays || first > last ||
	    mfs_container_array(o->c, array, &ai) < 0 ||
	    last >= ai.chunk_count) {
		pthread_mutex_unlock(&o->lock);
		return -EIO;
	}
	g0 = o->first[array] + first;
	g1 = o->first[array] + last;
	if (ahead)
		queue = mfsd_readahead(o, array, g0, g1, &from, &to);
	if (queue) { /* before waiting: the fetches overlap */
		pthread_mutex_unlock(&o->lock);
		mfsd_queue_readahead(o, array, from, to);
		pthread_mutex_lock(&o->lock);
	}
	for (;;) {
		if (!mfsd_claim(o, array, g0, g1, &ra, &rb, &missing)) {
			if (!missing)
				break;
			pthread_cond_wait(&o->done, &o->lock);
			continue;
		}
		rc = mfsd_fetch_claimed(o, array, ra, rb, g0, g1, force);
		if (rc < 0)
			break;
		/* Each chunk fetched once should do; more means other
		 * readers evict them as fast as they arrive (a cache too
		 * small for what is read at once): give up, not spin. */
		fetched_bytes += mfsd_run_bytes(o, array, ra, rb);
		if (fetched_bytes > MFSD_THRASH_FACTOR *
					    mfsd_run_bytes(o, array, g0, g1)) {
			mfsd_thrash(o);
			rc = -EIO;
			break;
		}
	}
	pthread_mutex_unlock(&o->lock);
	return rc;
}

int mfsd_remote_ensure(struct mfsd_robj *o, size_t array, uint64_t first,
		       uint64_t last)
{
	return mfsd_ensure(o, array, first, last, false, true);
}

int mfsd_remote_refetch(struct mfsd_robj *o, size_t array, uint64_t chunk)
{
	pthread_mutex_lock(&o->lock);
	while (o->has_layout && array < o->narrays &&
	       mfsd_bget(o->busy, o->first[array] + chunk))
		pthread_cond_wait(&o->done, &o->lock);
	if (o->has_layout && array < o->narrays)
		mfsd_bput(o->present, o->first[array] + chunk, false);
	pthread_mutex_unlock(&o->lock);
	return mfsd_ensure(o, array, chunk, chunk, true, false);
}

/* A readahead job: fetches what is neither cached nor being fetched in
 * its range, and gives up at the first error (a reader that needs those
 * chunks fetches them itself and gets the error). */
static void mfsd_run_readahead(const struct mfsd_ra_job *j)
{
	struct mfsd_robj *o = j->o;
	uint64_t ra, rb, g = j->from;
	bool missing;

	pthread_mutex_lock(&o->lock);
	while (g <= j->to) {
		if (!mfsd_claim(o, j->array, g, j->to, &ra, &rb, &missing))
			break; /* the rest is cached or on its way */
		if (mfsd_fetch_claimed(o, j->array, ra, rb, j->from, j->to,
				       false) < 0)
			break;
		g = rb + 1;
	}
	pthread_mutex_unlock(&o->lock);
}

void *mfsd_readahead_main(void *arg)
{
	struct mfsd_remote *r = arg;
	struct mfsd_ra_job j;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		while (!r->stopping && r->ra_len == 0)
			pthread_cond_wait(&r->ra_wake, &r->lock);
		if (r->stopping)
			break;
		j = r->ra_queue[r->ra_head];
		r->ra_head = (r->ra_head + 1) % MFSD_RA_QUEUE;
		r->ra_len--;
		pthread_mutex_unlock(&r->lock);
		mfsd_run_readahead(&j);
		mfsd_remote_detach(j.o);
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

void mfsd_readahead_drop(struct mfsd_remote *r)
{
	pthread_mutex_lock(&r->lock);
	while (r->ra_len) {
		struct mfsd_robj *o = r->ra_queue[r->ra_head].o;

		r->ra_head = (r->ra_head + 1) % MFSD_RA_QUEUE;
		r->ra_len--;
		pthread_mutex_lock(&o->lock);
		o->refs--;
		pthread_mutex_unlock(&o->lock);
	}
	pthread_mutex_unlock(&r->lock);
}

int mfsd_robj_fetch_all(struct mfsd_robj *o)
{
	mfs_array_info ai;
	int rc;

	pthread_mutex_lock(&o->lock);
	rc = o->has_layout ? 0 : mfsd_robj_layout(o);
	pthread_mutex_unlock(&o->lock);
	for (size_t i = 0; rc == 0 && i < o->narrays; i++) {
		(void)mfs_container_array(o->c, i, &ai);
		if (ai.chunk_count)
			rc = mfsd_ensure(o, i, 0, ai.chunk_count - 1, false,
					 false);
	}
	return rc;
}

void mfsd_remote_uncount(struct mfsd_remote *r, uint64_t n)
{
	uint64_t cur = atomic_load(&r->cache_bytes);

	while (!atomic_compare_exchange_weak(&r->cache_bytes, &cur,
					     cur > n ? cur - n : 0))
		;
	atomic_fetch_add(&r->stats.evicted, n);
}

/* Punches every chunk of @o out of its file (header page and index
 * stay), unless a fetch is in progress.  Under r->lock.  True if done. */
static bool mfsd_robj_punch(struct mfsd_robj *o)
{
	uint64_t before, after;

	pthread_mutex_lock(&o->lock);
	for (uint64_t w = 0; o->has_layout &&
			     w < (o->nchunks + MFSD_WORD_BITS - 1) /
					 MFSD_WORD_BITS; w++) {
		if (o->busy[w]) {
			pthread_mutex_unlock(&o->lock);
			return false;
		}
	}
	before = mfsd_robj_disk_bytes(o->fd);
	if (o->data_end > MFS_HEADER_PAGE_SIZE)
		(void)fallocate(o->fd, FALLOC_FL_PUNCH_HOLE |
					       FALLOC_FL_KEEP_SIZE,
				MFS_HEADER_PAGE_SIZE,
				(off_t)(o->data_end - MFS_HEADER_PAGE_SIZE));
	if (o->has_layout)
		memset(o->present, 0, (size_t)((o->nchunks + MFSD_WORD_BITS -
						1) / MFSD_WORD_BITS) *
					      sizeof(*o->present));
	pthread_mutex_unlock(&o->lock);
	after = mfsd_robj_disk_bytes(o->fd);
	if (before > after)
		mfsd_remote_uncount(o->r, before - after);
	return true;
}

/* The least recently used object with chunks on disk other than @keep,
 * under r->lock; NULL if none. */
static struct mfsd_robj *mfsd_lru(struct mfsd_remote *r,
				  struct mfsd_robj *keep, bool *tried)
{
	struct mfsd_robj *best = NULL;
	size_t best_i = 0;

	for (size_t i = 0; i < r->nobjs; i++) {
		struct mfsd_robj *o = r->objs[i];

		if (o == keep || tried[i])
			continue;
		if (!best || atomic_load(&o->last_use) <
				     atomic_load(&best->last_use)) {
			best = o;
			best_i = i;
		}
	}
	if (best)
		tried[best_i] = true;
	return best;
}

/* Punches the whole blocks of [@start, @end) out of @fd (a partial block
 * at either end holds bytes of a neighbouring chunk). */
static void mfsd_punch_range(int fd, uint64_t start, uint64_t end)
{
	uint64_t s = (start + MFS_PAGE_SIZE - 1) & ~((uint64_t)MFS_PAGE_SIZE - 1);
	uint64_t e = end & ~((uint64_t)MFS_PAGE_SIZE - 1);

	if (e > s)
		(void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				(off_t)s, (off_t)(e - s));
}

/* Punches the cached chunks of @k's object outside [k->lo, k->hi] (not
 * being fetched) until the cache is within @limit. */
static void mfsd_evict_chunks(struct mfsd_remote *r, const struct mfsd_keep *k,
			      uint64_t limit)
{
	struct mfsd_robj *o = k->obj;
	uint64_t before = mfsd_robj_disk_bytes(o->fd), after;
	mfs_chunk_info ci;

	pthread_mutex_lock(&o->lock);
	for (size_t i = 0; o->has_layout && i < o->narrays; i++) {
		mfs_array_info ai;

		(void)mfs_container_array(o->c, i, &ai);
		for (uint64_t c = 0; c < ai.chunk_count; c++) {
			uint64_t g = o->first[i] + c;

			if ((g >= k->lo && g <= k->hi) ||
			    !mfsd_bget(o->present, g) || mfsd_bget(o->busy, g) ||
			    mfsd_chunk_at(o->c, i, c, &ci) < 0)
				continue;
			mfsd_punch_range(o->fd, ci.file_offset,
					 ci.file_offset + ci.stored_length);
			mfsd_bput(o->present, g, false);
			/* What the disk says, not the chunk's length: a
			 * chunk smaller than a page frees nothing. */
			after = mfsd_robj_disk_bytes(o->fd);
			if (before > after &&
			    atomic_load(&r->cache_bytes) <= limit + (before - after))
				goto out;
		}
	}
out:
	pthread_mutex_unlock(&o->lock);
	after = mfsd_robj_disk_bytes(o->fd);
	if (before > after)
		mfsd_remote_uncount(r, before - after);
}

void mfsd_remote_evict(struct mfsd_remote *r, const struct mfsd_keep *keep)
{
	if (r->opt.cache_size)
		mfsd_evict_to(r, keep, r->opt.cache_size);
}

/* Evicts until the cache files use at most @limit bytes, as
 * mfsd_remote_evict does for --cache-size. */
static void mfsd_evict_to(struct mfsd_remote *r, const struct mfsd_keep *keep,
			  uint64_t limit)
{
	bool *tried;
	uint64_t disk = 0;

	if (atomic_load(&r->cache_bytes) <= limit)
		return;
	pthread_mutex_lock(&r->lock);
	/* The running count adds what was written and takes off what the
	 * disk freed; allocation rounds it off.  Set it from the disk
	 * before deciding what to evict. */
	for (size_t i = 0; i < r->nobjs; i++)
		disk += mfsd_robj_disk_bytes(r->objs[i]->fd);
	atomic_store(&r->cache_bytes, disk);
	tried = calloc(r->nobjs ? r->nobjs : 1, sizeof(*tried));
	while (tried && atomic_load(&r->cache_bytes) > limit) {
		struct mfsd_robj *o = mfsd_lru(r, keep ? keep->obj : NULL,
					       tried);

		if (!o)
			break;
		(void)mfsd_robj_punch(o);
	}
	free(tried);
	if (keep && atomic_load(&r->cache_bytes) > limit)
		mfsd_evict_chunks(r, keep, limit);
	if (atomic_load(&r->cache_bytes) > limit && limit == r->opt.cache_size &&
	    !r->warned_small) {
		r->warned_small = true;
		mfsd_log(MFSD_LOG_WARNING, "the cache holds %llu bytes, more "
			 "than --cache-size %llu, all of them being read right "
			 "now; it shrinks when they are served",
			 (unsigned long long)atomic_load(&r->cache_bytes),
			 (unsigned long long)limit);
	}
	pthread_mutex_unlock(&r->lock);
}
