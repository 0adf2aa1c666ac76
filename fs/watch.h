/*
 * watch.h - the watcher thread: follows STORE_DIR with inotify, turns
 * the store's changes into kernel cache invalidations, and does the
 * maintenance that needs them (deleting the entries of removed models so
 * the kernel forgets their inodes, and the page-cache budget).
 *
 * It is the only thread that sends notifications to the kernel: a notify
 * call made inside a request handler (or while holding a lock a handler
 * may wait for) can deadlock, since the kernel may need that handler's
 * reply before it can apply the notification.  Request threads only post
 * changes and kicks to it.
 */
#ifndef MFSD_WATCH_H
#define MFSD_WATCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "evict.h"
#include "follow.h"
#include "loader.h"
#include "table.h"

/*
 * The kernel notifications the watcher sends: libfuse's in the daemon, a
 * recorder in the unit tests.  Each returns 0 or a negative errno
 * (-ENOENT when the kernel has nothing cached, which is fine).
 */
struct mfsd_notifier {
	/* Drops the cached entry @name of directory @parent. */
	int (*inval_entry)(void *arg, uint64_t parent, const char *name);
	/* As inval_entry, and if it names inode @child, that inode loses
	 * its link, so the kernel forgets it as soon as nothing uses it. */
	int (*delete_entry)(void *arg, uint64_t parent, uint64_t child,
			    const char *name);
	/* Drops cached pages of @ino from @off (@len bytes, 0 = all), or
	 * only its attributes if @off is negative. */
	int (*inval_inode)(void *arg, uint64_t ino, int64_t off, int64_t len);
	void *arg;
};

/* What the watcher did, for .status. */
struct mfsd_watch_stats {
	uint64_t events;        /* inotify events read */
	uint64_t overflows;     /* inotify queue overflows (full rescans) */
	uint64_t notifications; /* notify calls made */
	uint64_t evictions;     /* models whose pages the budget dropped */
	uint64_t evicted_bytes; /* their estimated page cache */
};

/* First room for changes posted by other threads (lookups of unknown
 * keys, loader threads); the queue grows as needed. */
#define MFSD_WATCH_QUEUE 64u

/*
 * How long a removed model stays whole after it became idle (table.h):
 * time for a process walking a path through its directory to finish the
 * walk in the old version, far more than a walk takes.
 */
#define MFSD_RETIRE_GRACE_NS (UINT64_C(2000) * 1000000u)

/*
 * Least time between two passes of the page-cache budget.  The budget
 * is a soft limit on memory the kernel may reclaim anyway, so a pass may
 * wait this long; meanwhile releases are noted without waking the
 * watcher, which under an open/close loop would otherwise wake at every
 * close.
 */
#define MFSD_BUDGET_PERIOD_NS (UINT64_C(10) * 1000000u)

struct mfsd_watch {
	/* Immutable after mfsd_watch_start: */
	struct mfsd_table *table;
	struct mfsd_notifier notifier;
	uint64_t budget; /* page cache of released models; 0 = no limit */
	uint64_t retire_grace_ns; /* MFSD_RETIRE_GRACE_NS; tests lower it */
	uint64_t budget_period_ns; /* MFSD_BUDGET_PERIOD_NS; tests lower it */
	/* Where names to refresh go (set before the thread starts); NULL:
	 * they are refreshed in the watcher's own thread (unit tests). */
	struct mfsd_loader *loader;
	int ifd;         /* inotify descriptor */
	int efd;         /* eventfd: wakes the thread for posts and stop */
	int sfd;         /* signalfd of lease breaks (lease.h), or -1 */
	pthread_t tid;
	bool started;

	_Atomic bool stop;

	pthread_mutex_t lock;
	/* Protected by lock: */
	struct mfsd_change *queue; /* posted changes */
	size_t nqueue;
	size_t queue_cap;
	bool lost;   /* no memory for the queue: a change was dropped */
	bool kicked; /* a removed model lost a count: maintain now */
	bool fd_freed; /* a descriptor was freed while loads waited */

	/* Only touched by the watcher thread: */
	uint64_t next_sweep_ns; /* earliest pending retry; 0 = none */
	/* The budget's candidates as of their release (models released
	 * and not opened since, with pages cached), ascending gen: a pass
	 * brings up to date only the models released since the last one,
	 * and re-reads them all only when they exceed the budget. */
	struct mfsd_evict_cand *tracked;
	size_t ntracked;
	size_t tracked_cap;
	bool budget_rescan; /* a release was missed: rebuild from all */
	uint64_t budget_next_ns; /* no budget pass before this */
	bool budget_waiting; /* a pass waits for budget_next_ns */

	/* Counters, read without the lock (see struct mfsd_watch_stats). */
	_Atomic uint64_t events;
	_Atomic uint64_t overflows;
	_Atomic uint64_t notifications;
	_Atomic uint64_t evictions;
	_Atomic uint64_t evicted_bytes;
};

/*
 * Watches the directory @s opened (through /proc/self/fd, so a directory
 * moved away is still followed and a new one at the old path is not).
 * Call it before the store is scanned, so that nothing changed after
 * the scan is missed, and before containers take the descriptors.
 * @budget as in struct mfsd_watch.  Returns 0 or a negative errno
 * (inotify or eventfd could not be set up; nothing to destroy then).
 */
int mfsd_watch_init(struct mfsd_watch *w, struct mfsd_table *s,
		    uint64_t budget);

/* Starts the thread, which sends notifications through @n (copied),
 * after pointing the store's lease breaks at the current process (it
 * may have daemonized since the store was loaded).  0 or a negative
 * errno. */
int mfsd_watch_start(struct mfsd_watch *w, const struct mfsd_notifier *n);

/*
 * Stops and joins the thread.  If it does not stop within a grace
 * period (a notification blocked in the kernel), returns false without
 * joining: call again after unmounting, which unblocks it.
 */
bool mfsd_watch_stop(struct mfsd_watch *w);

/* Frees what init set up (after mfsd_watch_stop returned true). */
void mfsd_watch_destroy(struct mfsd_watch *w);

/* An mfsd_change_fn for request threads: queues change @c for the
 * watcher (@arg is the struct mfsd_watch) and wakes it. */
void mfsd_watch_post(void *arg, const struct mfsd_change *c);

/* Tells the watcher that a model out of the namespace lost its last
 * handle or became idle: its sweep or retire may now proceed. */
void mfsd_watch_kick(struct mfsd_watch *w);

/* Tells the watcher that a release was noted for the budget
 * (MFSD_RELEASE_NOTED): its pass looks at the models released. */
void mfsd_watch_released(struct mfsd_watch *w);

/* For store->fd_freed (@arg is the struct mfsd_watch): a container
 * descriptor was closed while loads waited for one; they are retried. */
void mfsd_watch_fd_freed(void *arg);

/*
 * One round of the thread's loop: waits up to @timeout_ms (-1: until
 * something happens, but not past a pending retry) for inotify events
 * or posts, has the names changed refreshed (by the loader if set),
 * sends the notifications, and maintains (sweeps and retires removed
 * models, applies the budget, retries transient load failures).
 * Unit tests call it directly, without starting the thread, after
 * setting w->notifier.
 */
void mfsd_watch_run_once(struct mfsd_watch *w, int timeout_ms);

/* A snapshot of the counters. */
void mfsd_watch_get_stats(struct mfsd_watch *w, struct mfsd_watch_stats *out);

#endif /* MFSD_WATCH_H */
