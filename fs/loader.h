/*
 * loader.h - the loader pool: threads that refresh store entries by name
 * for the watcher and for the initial scan, so that the watcher itself
 * never waits for a container to load.
 *
 * Loading a container costs what its index costs to read, check and
 * parse: microseconds for most, seconds for one with 16 MiB of metadata
 * or on a slow disk.  A name queued while every thread is busy starts a
 * new thread (up to max_threads), so a small container published next to
 * slow ones is not queued behind them.
 */
#ifndef MFSD_LOADER_H
#define MFSD_LOADER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

/* The work done for each name queued. */
typedef void (*mfsd_loader_fn)(void *arg, const char *name);

/*
 * Most loader threads.  Each waits on one container's disk reads and
 * checks at a time; past a handful they only contend for the CPUs, but a
 * store can hold a few slow containers at once.
 */
#define MFSD_LOADER_MAX_THREADS 16u

struct mfsd_loader {
	/* Immutable after mfsd_loader_init: */
	mfsd_loader_fn fn;
	void *arg;
	unsigned max_threads;

	pthread_mutex_t lock;
	pthread_cond_t work; /* a name was queued, or stop */
	pthread_cond_t idle; /* nothing queued and no thread busy */
	/* Protected by lock: */
	char **queue; /* ring of queue_cap names, queued from head */
	size_t head;
	size_t nqueued;
	size_t queue_cap;
	pthread_t *threads;
	unsigned nthreads;
	unsigned nidle; /* threads waiting for work */
	bool stop;
};

/* Sets up an empty pool calling @fn(@arg, name) for each name queued,
 * on at most @max_threads threads (started as needed).  0 or -ENOMEM. */
int mfsd_loader_init(struct mfsd_loader *l, mfsd_loader_fn fn, void *arg,
		     unsigned max_threads);

/* Queues @name (copied); starts a thread if none is idle and fewer than
 * max_threads run.  0 or -ENOMEM (nothing queued).  A pool that cannot
 * start any thread at all runs @fn in the caller instead. */
int mfsd_loader_push(struct mfsd_loader *l, const char *name);

/* Waits until every name queued so far has been handled. */
void mfsd_loader_wait(struct mfsd_loader *l);

/* Waits as mfsd_loader_wait, then ends every thread of the pool; the
 * next push starts new ones.  Call it before fork(): a child keeps no
 * threads, and a pool that still counted the parent's would neither
 * start any nor survive signalling the waiters that are gone. */
void mfsd_loader_drain(struct mfsd_loader *l);

/* Stops and joins the threads (names still queued are dropped) and frees
 * the pool. */
void mfsd_loader_destroy(struct mfsd_loader *l);

#endif /* MFSD_LOADER_H */
