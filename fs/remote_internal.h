/*
 * remote_internal.h - what remote.c (the index, the view directory, the
 * poller) and fetch.c (chunks into the cache files, eviction) share.
 */
#ifndef MFSD_REMOTE_INTERNAL_H
#define MFSD_REMOTE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "http.h"
#include "remote.h"

/* Directories under the origin's cache directory. */
#define MFSD_REMOTE_OBJECTS "objects"
#define MFSD_REMOTE_VIEW "store"
/* Most bytes one Range request asks for: big enough to amortise a round
 * trip, small enough that a reader waits for little it did not ask. */
#define MFSD_FETCH_MAX ((uint64_t)8 << 20)
/* Readahead of a sequential reader, fetched in the background: starts at
 * 1 MiB beyond what was asked, doubles while the reader keeps going, up
 * to two fetches' worth in flight ahead of it. */
#define MFSD_RA_START_BYTES ((uint64_t)1 << 20)
#define MFSD_RA_MAX_BYTES (2 * MFSD_FETCH_MAX)
/* Longest object name an index may give (a path under the URL). */
#define MFSD_OBJECT_MAX 1024
/* Hex digits of an index checksum. */
#define MFSD_HEX64_LEN 16u

struct mfsd_robj;

/* A background fetch of chunks [from, to] (global numbers) of one array
 * of an object, queued by a sequential reader.  Holds a reference. */
struct mfsd_ra_job {
	struct mfsd_robj *o;
	size_t array;
	uint64_t from;
	uint64_t to;
};

/* Threads that fetch ahead of sequential readers, and the most jobs
 * queued for them (more are dropped: readers fetch for themselves). */
#define MFSD_RA_THREADS 2u
#define MFSD_RA_QUEUE 64u

/* One container of the cache: a sparse file the size of the container.
 * Its descriptor and names are immutable while it is listed. */
struct mfsd_robj {
	struct mfsd_remote *r;
	char *file_name; /* under objects/: HEX-SIZE.mfs */
	uint64_t size;
	uint64_t index_checksum;
	uint64_t data_end; /* where its index starts: chunks lie below */
	dev_t dev;
	ino_t ino;
	int fd; /* read-write: chunks are written and punched here */

	pthread_mutex_t lock;
	pthread_cond_t done; /* a fetch ended (busy bits cleared) */
	/* Protected by lock: */
	char object[MFSD_OBJECT_MAX + 1]; /* its name at the origin, as the
					     latest index gives it ("":
					     not known yet) */
	bool listed;       /* the latest index names this content */
	unsigned refs;     /* the list's, one per attached model and one per
			      queued readahead or prefetch */
	bool has_layout;   /* the bitmaps below and c exist */
	mfs_container *c;  /* its own view of the container: chunk places */
	size_t narrays;
	uint64_t *first;   /* global number of each array's chunk 0 */
	uint64_t nchunks;
	uint64_t *present; /* bit per chunk: checked in the cache file */
	uint64_t *busy;    /* bit per chunk: a thread fetches or checks it */
	uint64_t next_seq; /* chunk after the last asked for (readahead) */
	size_t ra_array;   /* the array the reader goes through */
	uint64_t ra_bytes; /* readahead window of a sequential reader */
	uint64_t ra_end;   /* last chunk readahead was queued for */
	_Atomic uint64_t last_use; /* r->clock at its last ensure */
};

struct mfsd_remote {
	/* Immutable after open: */
	struct mfsd_remote_options opt; /* strings owned below */
	char *url;        /* as given: the fetcher's base */
	char *shown;      /* without credentials: for logs and .status */
	char *cache_dir;
	char *site_path;  /* cache_dir/SITE */
	char *view_path;  /* site_path/store */
	int site_fd;      /* locked: one daemon per origin and cache */
	int objects_fd;
	int view_fd;
	struct mfsd_http *http;
	struct mfsd_remote_stats stats;
	/* Most bytes read ahead of one reader: a quarter of what the cache
	 * may hold (--cache-size, the size of its file system), so that
	 * readahead never evicts what readers are about to read. */
	uint64_t ra_cap;

	pthread_mutex_t lock;
	pthread_cond_t wake; /* the poller: stop, or time to poll */
	/* Protected by lock: */
	struct mfsd_robj **objs; /* every cache file */
	size_t nobjs;
	size_t objs_cap;
	bool stopping;
	bool warned_small; /* said once that the cache is too small */
	bool warned_thrash; /* said once that readers evict each other */
	struct mfsd_ra_job ra_queue[MFSD_RA_QUEUE]; /* a ring */
	size_t ra_head;
	size_t ra_len;
	pthread_cond_t ra_wake; /* a job queued, or stopping */
	unsigned nra_threads;   /* running readahead threads */
	pthread_t ra_threads[MFSD_RA_THREADS];
	uint64_t prefetch_gen; /* bumped at each index change */

	/* Only the poller (or open, before it runs) touches these: */
	char *etag;
	_Atomic bool from_cache; /* the index served is the cached one (read
				    by .status) */

	/* CLOCK_MONOTONIC ns until which fetches fail at once: the origin
	 * gave no answer within a whole deadline just now. */
	_Atomic uint64_t down_until;
	_Atomic uint64_t clock;       /* ticks at every ensure: LRU */
	_Atomic uint64_t cache_bytes; /* allocated bytes of cache files */

	pthread_t poller;
	bool polling;
	pthread_t watcher; /* of the daemon's end (mfsd_remote_start) */
	bool watching;
	mfsd_exited_fn exited;
	void *exited_arg;
	/* Fetch failures are logged at most once a second; the others are
	 * counted into the next line. */
	_Atomic uint64_t fail_logged_ns;
	_Atomic uint64_t fail_unlogged;
	pthread_t prefetcher;
	bool prefetching;
};

/* Copies @o's origin name into @buf (MFSD_OBJECT_MAX + 1 bytes); false
 * if not known. */
bool mfsd_robj_name(struct mfsd_robj *o, char *buf);


/* What bringing the view in line with an index came to. */
struct mfsd_sync {
	size_t served; /* models linked */
	size_t failed; /* models whose content could not be fetched now */
};

/* Removes the cache files that no index entry names and nothing holds.
 * Takes r->lock. */
void mfsd_remote_gc(struct mfsd_remote *r);

/* Counts @n bytes gone from the cache's files. */
void mfsd_remote_uncount(struct mfsd_remote *r, uint64_t n);

/* The allocated bytes of @fd's file (st_blocks). */
uint64_t mfsd_robj_disk_bytes(int fd);

/* Frees @o's layout and closes it; the caller removed it from the list
 * (or never listed it). */
void mfsd_robj_free(struct mfsd_robj *o);

/* Fetches every chunk of @o not yet cached (prefetch).  0 or an error as
 * mfsd_remote_ensure. */
int mfsd_robj_fetch_all(struct mfsd_robj *o);

/* What a reader of @obj needs kept while the cache makes room: chunks
 * [@lo, @hi] (global numbers). */
struct mfsd_keep {
	struct mfsd_robj *obj;
	uint64_t lo;
	uint64_t hi;
};


/* The body of a readahead thread (arg: the remote). */
void *mfsd_readahead_main(void *arg);

/* Drops the queued readahead jobs (after the threads stopped). */
void mfsd_readahead_drop(struct mfsd_remote *r);

/* Brings the cache back within its size if it is over: whole objects,
 * least recently used first, then chunks of @keep's object outside its
 * range.  Takes r->lock. */
void mfsd_remote_evict(struct mfsd_remote *r, const struct mfsd_keep *keep);

#endif /* MFSD_REMOTE_INTERNAL_H */
