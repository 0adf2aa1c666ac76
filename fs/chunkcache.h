/*
 * chunkcache.h - decoded-chunk cache: LRU by bytes, shared by all request
 * threads, with single-flight loading (a chunk wanted by several threads
 * at once is decoded by one of them while the others wait).
 */
#ifndef MFSD_CHUNKCACHE_H
#define MFSD_CHUNKCACHE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Identifies one chunk; model generations are never reused, so a key
 * never names bytes of a replaced model. */
struct mfsd_cache_key {
	uint64_t gen;
	uint64_t array;
	uint64_t chunk;
};

struct mfsd_cache_entry;

/*
 * Fills @buf (@len bytes, the chunk's raw length) with the decoded chunk.
 * Returns the number of bytes written (must be @len) or a negative errno.
 * Called without the cache lock held.
 */
typedef ssize_t (*mfsd_cache_load_fn)(void *ctx, void *buf, size_t len);

struct mfsd_cache_stats {
	uint64_t hits;
	uint64_t misses;
	uint64_t evictions;
	uint64_t bytes;  /* decoded bytes held now */
	uint64_t budget;
	uint64_t entries;
};

struct mfsd_cache {
	size_t budget;   /* immutable: bytes kept when nothing is pinned */
	size_t nbuckets; /* immutable: power of two */

	pthread_mutex_t lock;
	/* Broadcast (under lock) whenever an entry leaves the LOADING state. */
	pthread_cond_t loaded;
	/* Protected by lock: */
	struct mfsd_cache_entry **buckets; /* chains of hashed entries */
	struct mfsd_cache_entry *lru_head; /* most recently used READY entry */
	struct mfsd_cache_entry *lru_tail; /* least recently used */
	size_t bytes;                      /* data of every live entry */
	size_t entries;                    /* live entries */

	/* Counters, updated without the lock. */
	_Atomic uint64_t hits;
	_Atomic uint64_t misses;
	_Atomic uint64_t evictions;
};

/* Sets up an empty cache keeping about @budget bytes.  0 or -ENOMEM. */
int mfsd_cache_init(struct mfsd_cache *c, size_t budget);

/* Frees every entry; no entry may be pinned and no thread inside. */
void mfsd_cache_destroy(struct mfsd_cache *c);

/*
 * Returns in *@out the entry for @key, pinned (valid until
 * mfsd_cache_put), loading it with @load(@ctx, buf, @len) if absent.  If
 * another thread is loading the same key, waits for it instead of loading
 * twice.  Returns 0, -ENOMEM, or the loader's error (the failed entry is
 * not kept, so a later call tries again).
 */
int mfsd_cache_get(struct mfsd_cache *c, const struct mfsd_cache_key *key,
		   size_t len, mfsd_cache_load_fn load, void *ctx,
		   struct mfsd_cache_entry **out);

/* Unpins an entry from mfsd_cache_get (may free it). */
void mfsd_cache_put(struct mfsd_cache *c, struct mfsd_cache_entry *e);

/* The decoded bytes of a pinned entry and their length. */
const void *mfsd_cache_data(const struct mfsd_cache_entry *e);
size_t mfsd_cache_len(const struct mfsd_cache_entry *e);

/* Forgets every entry of model generation @gen (pinned ones are freed
 * when unpinned). */
void mfsd_cache_drop_model(struct mfsd_cache *c, uint64_t gen);

/* A consistent snapshot of the counters. */
void mfsd_cache_get_stats(struct mfsd_cache *c, struct mfsd_cache_stats *out);

#endif /* MFSD_CHUNKCACHE_H */
