/*
 * chunkcache.c - decoded-chunk cache (see chunkcache.h).
 *
 * Every entry is in one of three states.  LOADING: inserted by the thread
 * that missed, data being produced outside the lock; READY: data valid and
 * immutable, entry on the LRU list; FAILED: the load failed, waiters take
 * the error.  An entry is freed when it is neither hashed nor pinned.
 */
#include <errno.h>
#include <stdlib.h>

#include "chunkcache.h"

enum mfsd_cache_state {
	MFSD_CACHE_LOADING,
	MFSD_CACHE_READY,
	MFSD_CACHE_FAILED,
};

struct mfsd_cache_entry {
	struct mfsd_cache_key key; /* immutable */
	size_t len;                /* immutable */
	/* Written by the loading thread before it leaves LOADING (under
	 * the lock); read-only afterwards, so pinned readers use it
	 * without the lock. */
	void *data;
	int err;

	/* Protected by cache->lock: */
	enum mfsd_cache_state state;
	unsigned pins;
	bool hashed;
	bool on_lru;
	struct mfsd_cache_entry *hnext;
	struct mfsd_cache_entry *lru_prev;
	struct mfsd_cache_entry *lru_next;
	struct mfsd_cache_entry *free_next; /* for freeing after unlock */
};

/* One bucket per smallest chunk that fits the budget, within bounds. */
#define MFSD_CACHE_MIN_BUCKETS 256u
#define MFSD_CACHE_MAX_BUCKETS (1u << 16)
#define MFSD_CACHE_BUCKET_BYTES (64u << 10)

/* 64-bit mixing constants (splitmix64 / golden ratio). */
#define MFSD_HASH_K1 0x9e3779b97f4a7c15ull
#define MFSD_HASH_K2 0xbf58476d1ce4e5b9ull

static size_t mfsd_cache_bucket_count(size_t budget)
{
	size_t want = budget / MFSD_CACHE_BUCKET_BYTES;
	size_t n = MFSD_CACHE_MIN_BUCKETS;

	while (n < want && n < MFSD_CACHE_MAX_BUCKETS)
		n <<= 1;
	return n;
}

int mfsd_cache_init(struct mfsd_cache *c, size_t budget)
{
	*c = (struct mfsd_cache){.budget = budget};
	c->nbuckets = mfsd_cache_bucket_count(budget);
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	if (!c->buckets)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->loaded, NULL);
	return 0;
}

static void mfsd_cache_entry_free(struct mfsd_cache_entry *e)
{
	free(e->data);
	free(e);
}

void mfsd_cache_destroy(struct mfsd_cache *c)
{
	if (!c->buckets)
		return;
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct mfsd_cache_entry *e = c->buckets[i], *next;

		for (; e; e = next) {
			next = e->hnext;
			mfsd_cache_entry_free(e);
		}
	}
	free(c->buckets);
	c->buckets = NULL;
	pthread_cond_destroy(&c->loaded);
	pthread_mutex_destroy(&c->lock);
}

static size_t mfsd_cache_hash(const struct mfsd_cache *c,
			      const struct mfsd_cache_key *k)
{
	uint64_t h = k->gen * MFSD_HASH_K1;

	h = (h ^ k->array) * MFSD_HASH_K2;
	h = (h ^ k->chunk) * MFSD_HASH_K1;
	return (size_t)(h >> 32) & (c->nbuckets - 1);
}

static bool mfsd_cache_key_eq(const struct mfsd_cache_key *a,
			      const struct mfsd_cache_key *b)
{
	return a->gen == b->gen && a->array == b->array && a->chunk == b->chunk;
}

/* Caller holds c->lock. */
static struct mfsd_cache_entry *mfsd_cache_find(struct mfsd_cache *c,
						const struct mfsd_cache_key *k)
{
	struct mfsd_cache_entry *e = c->buckets[mfsd_cache_hash(c, k)];

	while (e && !mfsd_cache_key_eq(&e->key, k))
		e = e->hnext;
	return e;
}

/* Caller holds c->lock. */
static void mfsd_cache_unhash(struct mfsd_cache *c, struct mfsd_cache_entry *e)
{
	struct mfsd_cache_entry **pp = &c->buckets[mfsd_cache_hash(c, &e->key)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	e->hnext = NULL;
	e->hashed = false;
}

/* Caller holds c->lock. */
static void mfsd_cache_lru_unlink(struct mfsd_cache *c,
				  struct mfsd_cache_entry *e)
{
	if (!e->on_lru)
		return;
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		c->lru_head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		c->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
	e->on_lru = false;
}

/* Caller holds c->lock. */
static void mfsd_cache_lru_push(struct mfsd_cache *c, struct mfsd_cache_entry *e)
{
	e->lru_prev = NULL;
	e->lru_next = c->lru_head;
	if (c->lru_head)
		c->lru_head->lru_prev = e;
	else
		c->lru_tail = e;
	c->lru_head = e;
	e->on_lru = true;
}

/*
 * Takes @e out of the table and accounting; it goes on *@dead for freeing
 * after the lock is dropped unless a reader still pins it.  Caller holds
 * c->lock.
 */
static void mfsd_cache_retire(struct mfsd_cache *c, struct mfsd_cache_entry *e,
			      struct mfsd_cache_entry **dead)
{
	if (e->hashed)
		mfsd_cache_unhash(c, e);
	mfsd_cache_lru_unlink(c, e);
	if (e->pins == 0) {
		c->bytes -= e->len;
		c->entries--;
		e->free_next = *dead;
		*dead = e;
	}
}

/* Evicts least recently used unpinned entries over budget.  Caller holds
 * c->lock. */
static void mfsd_cache_evict(struct mfsd_cache *c,
			     struct mfsd_cache_entry **dead)
{
	struct mfsd_cache_entry *e = c->lru_tail, *prev;

	for (; e && c->bytes > c->budget; e = prev) {
		prev = e->lru_prev;
		if (e->pins > 0)
			continue;
		mfsd_cache_retire(c, e, dead);
		atomic_fetch_add_explicit(&c->evictions, 1,
					  memory_order_relaxed);
	}
}

static void mfsd_cache_free_list(struct mfsd_cache_entry *dead)
{
	struct mfsd_cache_entry *next;

	for (; dead; dead = next) {
		next = dead->free_next;
		mfsd_cache_entry_free(dead);
	}
}

/* Waits for a LOADING entry someone else is filling; @e is pinned by the
 * caller.  Returns its error, or 0.  Caller holds c->lock. */
static int mfsd_cache_wait(struct mfsd_cache *c, struct mfsd_cache_entry *e)
{
	while (e->state == MFSD_CACHE_LOADING)
		pthread_cond_wait(&c->loaded, &c->lock);
	return e->state == MFSD_CACHE_FAILED ? e->err : 0;
}

/* Inserts a pinned LOADING entry for @key.  Caller holds c->lock. */
static struct mfsd_cache_entry *
mfsd_cache_insert(struct mfsd_cache *c, const struct mfsd_cache_key *key,
		  size_t len)
{
	struct mfsd_cache_entry *e = calloc(1, sizeof(*e));
	size_t b;

	if (!e)
		return NULL;
	e->key = *key;
	e->len = len;
	e->state = MFSD_CACHE_LOADING;
	e->pins = 1;
	e->hashed = true;
	b = mfsd_cache_hash(c, key);
	e->hnext = c->buckets[b];
	c->buckets[b] = e;
	c->bytes += len;
	c->entries++;
	return e;
}

/* Runs the loader for a fresh entry outside the lock and publishes the
 * outcome.  Returns 0 or the loader's error. */
static int mfsd_cache_fill(struct mfsd_cache *c, struct mfsd_cache_entry *e,
			   mfsd_cache_load_fn load, void *ctx)
{
	struct mfsd_cache_entry *dead = NULL;
	void *data = malloc(e->len ? e->len : 1);
	ssize_t n = data ? load(ctx, data, e->len) : -ENOMEM;
	int err = 0;

	if (n >= 0 && (size_t)n != e->len)
		n = -EIO;
	if (n < 0) {
		err = (int)n;
		free(data);
		data = NULL;
	}
	pthread_mutex_lock(&c->lock);
	e->data = data;
	e->err = err;
	e->state = err ? MFSD_CACHE_FAILED : MFSD_CACHE_READY;
	if (err)
		mfsd_cache_retire(c, e, &dead);
	else if (e->hashed)
		mfsd_cache_lru_push(c, e);
	pthread_cond_broadcast(&c->loaded);
	mfsd_cache_evict(c, &dead);
	pthread_mutex_unlock(&c->lock);
	mfsd_cache_free_list(dead);
	return err;
}

int mfsd_cache_get(struct mfsd_cache *c, const struct mfsd_cache_key *key,
		   size_t len, mfsd_cache_load_fn load, void *ctx,
		   struct mfsd_cache_entry **out)
{
	struct mfsd_cache_entry *e;
	int err;

	pthread_mutex_lock(&c->lock);
	e = mfsd_cache_find(c, key);
	if (e) {
		e->pins++;
		atomic_fetch_add_explicit(&c->hits, 1, memory_order_relaxed);
		err = mfsd_cache_wait(c, e);
		if (!err && e->on_lru) {
			mfsd_cache_lru_unlink(c, e);
			mfsd_cache_lru_push(c, e);
		}
		pthread_mutex_unlock(&c->lock);
		if (err) {
			mfsd_cache_put(c, e);
			return err;
		}
		*out = e;
		return 0;
	}
	atomic_fetch_add_explicit(&c->misses, 1, memory_order_relaxed);
	e = mfsd_cache_insert(c, key, len);
	pthread_mutex_unlock(&c->lock);
	if (!e)
		return -ENOMEM;
	err = mfsd_cache_fill(c, e, load, ctx);
	if (err) {
		mfsd_cache_put(c, e);
		return err;
	}
	*out = e;
	return 0;
}

void mfsd_cache_put(struct mfsd_cache *c, struct mfsd_cache_entry *e)
{
	struct mfsd_cache_entry *dead = NULL;

	pthread_mutex_lock(&c->lock);
	e->pins--;
	if (e->pins == 0 && !e->hashed) {
		c->bytes -= e->len;
		c->entries--;
		e->free_next = NULL;
		dead = e;
	} else if (e->pins == 0 && c->bytes > c->budget) {
		mfsd_cache_evict(c, &dead);
	}
	pthread_mutex_unlock(&c->lock);
	mfsd_cache_free_list(dead);
}

const void *mfsd_cache_data(const struct mfsd_cache_entry *e)
{
	return e->data;
}

size_t mfsd_cache_len(const struct mfsd_cache_entry *e)
{
	return e->len;
}

void mfsd_cache_drop_model(struct mfsd_cache *c, uint64_t gen)
{
	struct mfsd_cache_entry *dead = NULL;

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct mfsd_cache_entry *e = c->buckets[i], *next;

		for (; e; e = next) {
			next = e->hnext;
			if (e->key.gen == gen)
				mfsd_cache_retire(c, e, &dead);
		}
	}
	pthread_mutex_unlock(&c->lock);
	mfsd_cache_free_list(dead);
}

void mfsd_cache_get_stats(struct mfsd_cache *c, struct mfsd_cache_stats *out)
{
	pthread_mutex_lock(&c->lock);
	out->bytes = c->bytes;
	out->entries = c->entries;
	pthread_mutex_unlock(&c->lock);
	out->budget = c->budget;
	out->hits = atomic_load_explicit(&c->hits, memory_order_relaxed);
	out->misses = atomic_load_explicit(&c->misses, memory_order_relaxed);
	out->evictions =
		atomic_load_explicit(&c->evictions, memory_order_relaxed);
}
