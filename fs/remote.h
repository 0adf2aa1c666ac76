/*
 * remote.h - a store served from an HTTP(S) origin, fetched lazily into
 * a disk cache.
 *
 * The origin holds containers and an index (MOUNT.md, "Store index"):
 * URL + index.json names each key's object, size and index checksum.
 * The cache directory keeps, per origin, one *sparse* file per container
 * (objects/HEX-SIZE.mfs, named by content) that has the container's size
 * from the start and gets its header page and index when the model is
 * published, and each chunk when it is first read; and a view directory
 * (store/) of hard links KEY.mfs onto those files.  The daemon serves the
 * view directory exactly as it serves a local store (table.h, follow.h,
 * watch.h): publishing, replacing and removing a model are links,
 * renames and unlinks there, and a replaced model's holders keep their
 * descriptor on the old file.
 *
 * Before the read path reads chunks of such a container, it asks
 * mfsd_remote_ensure for them: each is fetched (adjacent ones in one
 * Range request, ahead of a sequential reader), checked against its
 * XXH3 checksum before a byte is written to the cache, and written in
 * place.  Nothing else records what is cached: after a restart a chunk
 * whose range holds data is checked on disk before it counts as cached,
 * so a torn write (a crash while writing) is found by its checksum and
 * fetched again.  The read path checks every chunk it serves again (such
 * models are never leased), so a chunk evicted under a reader is found
 * too, and fetched again by mfsd_remote_refetch.
 */
#ifndef MFSD_REMOTE_H
#define MFSD_REMOTE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "modelfs.h"

struct mfsd_remote;
struct mfsd_robj;

/* Defaults of the remote options (main.c's usage text shows them). */
#define MFSD_REMOTE_CACHE_DIR "/var/cache/modelfs"
#define MFSD_REMOTE_CONNECTIONS 8u
#define MFSD_REMOTE_DEADLINE_S 30u
#define MFSD_REMOTE_POLL_S 30u

struct mfsd_remote_options {
	const char *url;           /* http(s)://..., ending in '/' */
	const char *cache_dir;     /* the cache's root */
	uint64_t cache_size;       /* bytes of cache files; 0: no limit */
	unsigned poll_s;           /* between index polls; 0: never */
	bool prefetch;             /* fetch every model in the background */
	unsigned connections;      /* HTTP connections at once */
	unsigned deadline_ms;      /* per read, retries included */
	const char *const *headers; /* extra request headers, NULL-ended */
	const char *aws_sigv4;     /* CURLOPT_AWS_SIGV4 provider, or NULL */
};

/* Counters shown in .status; updated without locks. */
struct mfsd_remote_stats {
	_Atomic uint64_t cache_hits;   /* chunks found in the cache file */
	_Atomic uint64_t cache_misses; /* chunks fetched */
	_Atomic uint64_t bad_chunks;   /* fetched chunks failing their
					  checksum (never cached) */
	_Atomic uint64_t fetch_errors; /* reads failed for the origin */
	_Atomic uint64_t evicted;      /* bytes punched out of the cache */
	_Atomic uint64_t index_polls;  /* index fetches, 304s included */
	_Atomic uint64_t index_errors; /* index fetches that failed */
};

/*
 * Sets up the cache for origin @o->url under @o->cache_dir, fetches the
 * index (or, the origin unreachable, takes the last one cached, said in
 * the log) and brings the view directory in line with it: every model
 * listed whose header and index could be fetched is linked there.  No
 * thread is started (the daemon may fork after this).  0, or a negative
 * errno with the reason logged: -EINVAL for bad options, -ENOENT when
 * the origin has no index, the errno of the cache directory.
 */
int mfsd_remote_open(struct mfsd_remote **out,
		     const struct mfsd_remote_options *o);

/* The view directory the daemon serves (absolute). */
const char *mfsd_remote_store_dir(const struct mfsd_remote *r);

/* Starts polling the index (and prefetching); after daemonizing.  A
 * failure is logged: the mount serves what it has. */
void mfsd_remote_start(struct mfsd_remote *r);

/* Stops the threads and cancels fetches in progress (before unmount
 * returns, nobody waits out a deadline). */
void mfsd_remote_stop(struct mfsd_remote *r);

/* Frees @r (NULL is a no-op); nothing may use it any more. */
void mfsd_remote_close(struct mfsd_remote *r);

/*
 * The cache object behind container @c (opened on a file of the view
 * directory), with a reference; NULL if @c is not one of the cache's
 * files (or memory ran out: then the model is served as a local file
 * would be, and reads of chunks never fetched fail their checksum).
 */
struct mfsd_robj *mfsd_remote_attach(struct mfsd_remote *r,
				     const mfs_container *c);

/* Drops the reference of mfsd_remote_attach (NULL is a no-op). */
void mfsd_remote_detach(struct mfsd_robj *o);

/*
 * Makes the stored bytes of chunks [@first, @last] of array @array of
 * @o's container present and checked in the cache file, fetching what is
 * missing; at most one fetch per chunk is in flight, other readers wait
 * for it.  A sequential reader also has the chunks after it fetched in
 * the background.  0, or -EIO (a chunk failed its checksum twice),
 * -ETIMEDOUT, -ENOENT (the object is gone from the origin), -EACCES,
 * -ECANCELED (stopping), -ENOMEM.
 */
int mfsd_remote_ensure(struct mfsd_robj *o, size_t array, uint64_t first,
		       uint64_t last);

/* Chunk @chunk of @array failed its check when read from the cache file
 * (evicted or torn under the reader): fetches it again.  0 or an error
 * as mfsd_remote_ensure. */
int mfsd_remote_refetch(struct mfsd_robj *o, size_t array, uint64_t chunk);

/* Adds the remote store's state to .status object @st ("remote"). */
int mfsd_remote_status(struct mfsd_remote *r, json_t *st);

#endif /* MFSD_REMOTE_H */
