/*
 * follow.h - following STORE_DIR while it is mounted: the refresh of one
 * name (a container loaded, replaced or removed, skipped, or its
 * permissions changed), scans of the whole directory, and the skipped
 * list, kept for .status and retried when the failure was transient.
 *
 * One thread at a time refreshes a given container name (the in-flight
 * set), but names are refreshed in parallel and no lock is held while a
 * container loads, so a slow container delays nothing else.  The state
 * lives in struct mfsd_table (table.h), under its lock.
 */
#ifndef MFSD_FOLLOW_H
#define MFSD_FOLLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "modelfs.h"

struct mfsd_table;

/* A container that could not be served, kept for .status. */
struct mfsd_skipped {
	char *file_name;
	char *reason;
	bool has_id;    /* st is known: do not retry the same file */
	struct stat st; /* the file that was refused */
	/*
	 * The failure says nothing about the file (descriptors, memory or
	 * I/O ran short): it is retried when retry_ns (CLOCK_MONOTONIC) is
	 * due, the delay doubling up to a maximum, and at once when a
	 * descriptor is freed if @wants_fd.
	 */
	bool transient;
	bool wants_fd;
	uint64_t retry_ns;
	uint64_t backoff_ns;
};

/* A container name being refreshed by some thread. */
struct mfsd_inflight {
	char *name;
	bool again; /* changed meanwhile: refresh once more */
};

/* What a refresh changed in the namespace. */
enum mfsd_change_kind {
	MFSD_CHANGE_ADDED,     /* key appeared: new_gen */
	MFSD_CHANGE_REPLACED,  /* key now names new_gen instead of old_gen */
	MFSD_CHANGE_REMOVED,   /* key of old_gen disappeared */
	MFSD_CHANGE_ATTR,      /* permissions of old_gen changed */
	MFSD_CHANGE_ROOT_ATTR, /* permissions of STORE_DIR changed */
};

struct mfsd_change {
	enum mfsd_change_kind kind;
	char key[MFS_MAX_KEY_LEN + 1];
	uint64_t old_gen;
	uint64_t new_gen;
};

/* Told about each change a refresh made, after the table's lock is
 * dropped. */
typedef void (*mfsd_change_fn)(void *arg, const struct mfsd_change *c);

/* Visits a name of STORE_DIR. */
typedef void (*mfsd_name_fn)(void *arg, const char *file_name);

/* What a refresh did, when it did not fail. */
enum mfsd_refresh_result {
	MFSD_REFRESH_DONE = 0,
	/* Another thread was refreshing the name: it refreshes it once
	 * more, and so sees whatever made this call. */
	MFSD_REFRESH_DEFERRED = 1,
	/* (mfsd_follow_refresh_quick) A container must be loaded. */
	MFSD_REFRESH_NEEDS_LOAD = 2,
};

/*
 * Brings the entry @file_name of STORE_DIR up to date: a new or replaced
 * valid container is loaded and published under its key (a replaced
 * model stays alive for its holders), an invalid one is logged, listed as
 * skipped and its key removed, a vanished one is removed, a chmod or
 * chown changes the permissions shown.  Only regular files are
 * containers: anything else (symbolic link, FIFO, device, directory,
 * socket) is skipped with the reason, without being opened or followed.
 * A load that failed for want of descriptors, memory or I/O is skipped
 * as transient and retried (mfsd_follow_retries).  Names that are hidden
 * or not "*.mfs" are ignored.  No lock is held while a container loads.
 * Calls @cb (may be NULL) for each change made, with no lock held.
 * Returns MFSD_REFRESH_DONE, MFSD_REFRESH_DEFERRED (another thread had
 * the name), or -ENOMEM when memory ran out (the change may be partly
 * made; a later refresh retries).
 */
int mfsd_follow_refresh(struct mfsd_table *t, const char *file_name,
			mfsd_change_fn cb, void *arg);

/*
 * As mfsd_follow_refresh, but without loading a container: if one must
 * be loaded, returns MFSD_REFRESH_NEEDS_LOAD and leaves it to the
 * caller to have the name refreshed (on a thread that may wait).  Never
 * opens a file: removals, skips and permission changes are applied at
 * once.  MFSD_REFRESH_DONE, _DEFERRED, _NEEDS_LOAD or -ENOMEM.
 */
int mfsd_follow_refresh_quick(struct mfsd_table *t, const char *file_name,
			      mfsd_change_fn cb, void *arg);

/*
 * For a lookup of @key that found nothing: if "<key>.mfs" exists in
 * STORE_DIR now (one fstatat when it does not), refreshes it as
 * mfsd_follow_refresh would, except that a container to load is handed
 * to @queue (@qarg, the file name; NULL: loaded here) and waited for at
 * most MFSD_LOOKUP_WAIT_NS, as is a refresh of it by another thread: a
 * lookup never waits long on a slow container (the refresh tells @cb
 * when the key appears).  Returns as mfsd_follow_refresh.
 */
int mfsd_follow_refresh_key(struct mfsd_table *t, const char *key,
			    mfsd_change_fn cb, void *arg, mfsd_name_fn queue,
			    void *qarg);

/*
 * How long a lookup waits for its key's container to load.  A container
 * of ordinary size loads in well under a millisecond, so a lookup right
 * after a publish finds it even on a busy machine; one that is slow to
 * load holds the request (and the kernel's notifications on the root,
 * which wait for lookups there to end) only this long, and shows when
 * it is loaded.
 */
#define MFSD_LOOKUP_WAIT_NS (UINT64_C(50) * 1000000u)

/* Calls @fn for every container name in STORE_DIR and every published
 * and skipped one, each once, in ascending order.  0 or -errno (the
 * directory could not be read, or memory ran out). */
int mfsd_follow_scan_names(struct mfsd_table *t, mfsd_name_fn fn, void *arg);

/* mfsd_follow_refresh of every name mfsd_follow_scan_names visits, in
 * this thread.  0 or -ENOMEM or the scan's error. */
int mfsd_follow_rescan(struct mfsd_table *t, mfsd_change_fn cb, void *arg);

/*
 * The names of transient skipped entries due for a retry at @now_ns
 * (and all that wait for a descriptor if @fd_freed), malloc'd in
 * *@names (free each and the array).  *@next_ns gets when the next
 * retry falls due (0: none pending).  Count or -ENOMEM.
 */
ssize_t mfsd_follow_retries(struct mfsd_table *t, uint64_t now_ns,
			    bool fd_freed, char ***names, uint64_t *next_ns);

/* Counts of the skipped entries for the start-up summary. */
struct mfsd_skip_counts {
	size_t skipped;   /* all entries, transient ones included */
	size_t transient; /* failures retried later */
	size_t waiting;   /* of those, waiting for a descriptor */
};
void mfsd_follow_skip_counts(struct mfsd_table *t,
			     struct mfsd_skip_counts *out);

/* Re-reads the permissions of STORE_DIR itself; calls @cb with
 * MFSD_CHANGE_ROOT_ATTR if they changed. */
void mfsd_follow_refresh_root(struct mfsd_table *t, mfsd_change_fn cb,
			      void *arg);

/* Copies the skipped containers (ascending name) for .status.  Count or
 * -ENOMEM; free with mfsd_follow_free_skipped. */
ssize_t mfsd_follow_skipped(struct mfsd_table *t, struct mfsd_skipped **out);
void mfsd_follow_free_skipped(struct mfsd_skipped *v, size_t n);

/* Frees @t's skipped list and in-flight set (when the table closes). */
void mfsd_follow_free(struct mfsd_table *t);

#endif /* MFSD_FOLLOW_H */
