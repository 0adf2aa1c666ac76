/*
 * table.h - the model table: containers loaded from STORE_DIR, each a
 * model with a generation number that is never reused, the reference
 * counts that decide when a model's memory and descriptor may go, and
 * the live refresh that follows the directory while it is mounted.
 *
 * A model is published (found by key) until its container is removed,
 * replaced or becomes invalid.  After that it lives on while the kernel
 * holds lookups on any of its inodes (nlookup_dir, nlookup_files), a file
 * or directory handle is open on it (nopen, ndirs), or a request is
 * working on it (nbusy); when every count is zero it is freed.  This
 * lets a removed or replaced model stay readable by its holders until
 * the last one lets go.
 *
 * The kernel forgets a removed model's files soon (the watcher deletes
 * their entries), but may keep its directory inode until memory is
 * reclaimed.  So a model that has been idle (out of the namespace, no
 * handle, no file known to the kernel) for a grace period is *retired*
 * (mfsd_table_retire): its container is closed and its arrays freed, and
 * its directory looks empty from then on, like a removed directory.  The
 * grace period lets a process that was walking a path through the
 * directory when the model left finish its walk in the old version.
 *
 * One thread at a time refreshes a given container name (the in-flight
 * set below), but names are refreshed in parallel and no lock is held
 * while a container loads, so a slow container delays nothing else.
 *
 * Lock order: lock, then the chunk cache's lock.
 */
#ifndef MFSD_TABLE_H
#define MFSD_TABLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "modelfs.h"

struct mfsd_cache;

/*
 * The entries of a model directory: 0 the directory itself, 1
 * manifest.json, 2 metadata.json, 3 + i array i (inode.h turns them into
 * inode numbers).
 */
enum mfsd_slot {
	MFSD_SLOT_DIR = 0,
	MFSD_SLOT_MANIFEST = 1,
	MFSD_SLOT_METADATA = 2,
	MFSD_SLOT_ARRAY0 = 3,
};

/* Per-array serving state. */
struct mfsd_array {
	mfs_array_info info; /* immutable; name owned by the container */
	char *file_name;     /* immutable: "<name>.npy" */
	uint32_t header_len; /* immutable: NPY header bytes (data offset) */
	uint64_t file_size;  /* immutable: NPY header + raw bytes */
	size_t bitmap_words; /* immutable: words in each bitmap below */
	/* Bit per chunk, only ever set: the chunk's checksum was checked
	 * and matched, so its backing bytes may be served directly. */
	_Atomic uint64_t *verified;
	/* Bit per chunk, only ever set: a failure of the chunk has been
	 * logged and counted (so that is done once per chunk). */
	_Atomic uint64_t *reported;
};

/* Open handles of one process on one file (slot) of a model. */
struct mfsd_hold {
	pid_t pid;
	uint64_t slot;
	uint64_t handles;
	uid_t uid; /* of the open that made the hold: who may see it */
};

/* One process holding open handles on a model (a summary of its holds). */
struct mfsd_holder {
	pid_t pid;
	uint64_t handles;
};

/* Where a model stands in the namespace. */
enum mfsd_model_state {
	MFSD_MODEL_PUBLISHED, /* found by its key */
	MFSD_MODEL_REPLACED,  /* a newer container took its key */
	MFSD_MODEL_REMOVED,   /* its container was removed or became invalid */
};

struct mfsd_model {
	/* Immutable between load and the model's end: */
	char *key;
	char *file_name; /* name of the container in STORE_DIR */
	uint64_t gen;
	struct stat st; /* of the container file when it was loaded */
	uint64_t view_size; /* bytes of every file of its directory */

	/* Immutable while the model is not retired; freed by the thread
	 * that retires it, which holds a busy mark meanwhile (requests see
	 * `retired` first and never touch them then): */
	mfs_container *container;
	struct mfsd_array *arrays;
	size_t narrays;
	char *manifest;
	size_t manifest_len;
	const char *metadata; /* owned by the container */
	size_t metadata_len;
	uint64_t raw_size;
	uint64_t stored_size;

	/* Permissions shown, following chmod/chown of the container (a
	 * metadata change keeps the generation: the bytes are the same). */
	_Atomic unsigned mode; /* permission bits of the container */
	_Atomic unsigned uid;
	_Atomic unsigned gid;

	/* Trust in the container's bytes (lease.h): an enum mfsd_trust, set
	 * by the loader before the model is published, afterwards changed
	 * only in lease.c (the thread that handles a lease break, a refresh
	 * that leases it late); read by request threads without a lock. */
	_Atomic int trust;
	/* Why the loader could not lease the container (positive errno, 0
	 * if leased); afterwards read and cleared by refreshes only, which
	 * hold refresh_lock. */
	int lease_err;
	/* Reads serving the container's bytes unchecked (lease.h): a lease
	 * is released only when none is left. */
	_Atomic uint64_t direct_reads;

	/* Page-cache estimate: bytes served since the mount's pages of the
	 * model were last dropped (capped at view_size when read), and how
	 * often they were dropped for the budget.  Lock-free counters. */
	_Atomic uint64_t pc_bytes;
	_Atomic uint64_t pc_evictions;

	/* Protected by store->lock: */
	enum mfsd_model_state state;
	/* Container closed, arrays freed.  Set under the lock only while no
	 * other busy mark exists, so a holder of a busy mark may read it
	 * without the lock: it cannot change meanwhile. */
	bool retired;
	uint64_t nlookup_dir;   /* kernel lookups of the directory inode */
	uint64_t nlookup_files; /* kernel lookups summed over its files */
	uint64_t nopen;         /* open file handles */
	uint64_t ndirs;         /* open directory handles */
	uint64_t nbusy;         /* requests between mfsd_table_get and _put */
	uint64_t released_seq;  /* store->release_clock when nopen last
				   became 0; 0 = never released */
	uint64_t idle_since_ns; /* CLOCK_MONOTONIC when it became idle
				   (see above); 0 = not idle */
	struct mfsd_hold *holds; /* ascending (pid, slot) */
	size_t nholds;
	size_t holds_cap;

	/* Only touched by the watcher thread, while it holds a busy mark: */
	uint64_t sweep_due_ns;     /* next retry of deleting its entries */
	uint64_t sweep_backoff_ns; /* delay before the retry after that */
};

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

struct mfsd_table {
	/* Immutable after mfsd_table_open: */
	char *dir_path; /* the path given (realpath at start-up) */
	int dirfd;      /* the directory opened at start: all access is
			   relative to it, so a directory moved away is
			   still followed and a new one at the old path is
			   not */
	struct stat dir_st;       /* at open: times of the root */
	struct mfsd_cache *cache; /* entries of freed models are dropped */

	/* Permissions of the root, following chmod/chown of STORE_DIR. */
	_Atomic unsigned dir_mode;
	_Atomic unsigned dir_uid;
	_Atomic unsigned dir_gid;

	/* Most container descriptors open at once (0: no limit); the rest
	 * of RLIMIT_NOFILE is kept for the daemon's own work.  Set before
	 * any load. */
	size_t fd_budget;
	/* Called, with no lock held, when a container descriptor was
	 * closed after a load had to wait for one.  Set before threads. */
	void (*fd_freed)(void *arg);
	void *fd_freed_arg;

	/* Set once the initial scan is done; only its logging depends on
	 * it. */
	_Atomic bool loaded;

	pthread_mutex_t lock;
	/* Signalled (under lock) when a name leaves the in-flight set. */
	pthread_cond_t settled;
	/* Protected by lock: */
	uint64_t next_gen;
	struct mfsd_model **by_gen; /* every live model, ascending gen */
	size_t nlive;
	size_t live_cap;
	struct mfsd_model **by_key; /* published models, ascending key */
	size_t npublished;
	size_t published_cap;
	struct mfsd_skipped *skipped; /* ascending file_name */
	size_t nskipped;
	size_t skipped_cap;
	uint64_t release_clock; /* ticks at every last release of a model */
	size_t nretired;        /* live models that are retired */
	uint64_t changes;       /* models added, replaced or removed live */
	struct mfsd_inflight *inflight; /* names being refreshed */
	size_t ninflight;
	size_t inflight_cap;
	size_t nfds;      /* container descriptors open or being opened */
	bool fd_starved;  /* a load waits for a descriptor */
	size_t nwaiting;  /* skipped entries that wait for a descriptor */
};

/*
 * Opens STORE_DIR @dir_path; nothing is loaded yet (mfsd_table_rescan or
 * mfsd_table_scan_names does that).  Returns 0, or a negative errno if
 * the directory cannot be opened (or memory runs out).  *@out is freed
 * with mfsd_table_close.
 */
int mfsd_table_open(struct mfsd_table **out, const char *dir_path,
		    struct mfsd_cache *cache);

/* Ends the initial scan: from now on changes are counted as live ones
 * and logged one by one. */
void mfsd_table_mark_loaded(struct mfsd_table *s);

/* Frees the store and every model, whatever their counts. */
void mfsd_table_close(struct mfsd_table *s);

/* Finds a published model by key and marks it busy; NULL if none. */
struct mfsd_model *mfsd_table_get_key(struct mfsd_table *s, const char *key);

/* Finds a live model by generation and marks it busy; NULL if none. */
struct mfsd_model *mfsd_table_get_gen(struct mfsd_table *s, uint64_t gen);

/* Ends a busy mark from mfsd_table_get_*; may free the model. */
void mfsd_table_put(struct mfsd_table *s, struct mfsd_model *m);

/* Counts @n kernel lookups of slot @slot's inode of busy model @m. */
void mfsd_table_lookup(struct mfsd_table *s, struct mfsd_model *m,
		       uint64_t slot, uint64_t n);

/* The kernel forgot @n lookups of slot @slot of generation @gen (may
 * free the model).  Returns true if the model is now idle: the watcher
 * retires it after the grace period. */
bool mfsd_table_forget(struct mfsd_table *s, uint64_t gen, uint64_t slot,
		       uint64_t n);

/* Counts an open handle of process @pid, opened as user @uid, on file
 * @slot of busy model @m.  A hold is per (pid, slot): the user of its
 * first open stays its user.  0 or -ENOMEM. */
int mfsd_table_open_handle(struct mfsd_table *s, struct mfsd_model *m,
			   pid_t pid, uid_t uid, uint64_t slot);

/* Ends an open handle of @pid on @slot of @m (may free @m).  Returns
 * true if it was the model's last open handle. */
bool mfsd_table_release_handle(struct mfsd_table *s, struct mfsd_model *m,
			       pid_t pid, uint64_t slot);

/* Counts an open directory handle on busy model @m. */
void mfsd_table_open_dir(struct mfsd_table *s, struct mfsd_model *m);

/* Ends an open directory handle on @m (may free @m).  Returns true if
 * the model is now idle, as mfsd_table_forget. */
bool mfsd_table_release_dir(struct mfsd_table *s, struct mfsd_model *m);

/*
 * Retires @m (busy with the caller's mark only) if it has been idle for
 * @grace_ns: closes its container and frees its arrays.  Returns 0 if
 * it was retired or is not idle, else when (CLOCK_MONOTONIC ns) it may
 * be retired.
 */
uint64_t mfsd_table_retire(struct mfsd_table *s, struct mfsd_model *m,
			   uint64_t grace_ns);

/* Takes @m out of the store as removed: no longer found by key; it
 * lives on until its counts reach zero.  (For tests: the caller must
 * not refresh @m's name meanwhile.) */
void mfsd_table_unpublish(struct mfsd_table *s, struct mfsd_model *m);

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

/* Told about each change a refresh made, after the store's locks are
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
	/* (mfsd_table_refresh_quick) A container must be loaded. */
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
 * as transient and retried (mfsd_table_retries).  Names that are hidden
 * or not "*.mfs" are ignored.  No lock is held while a container loads.
 * Calls @cb (may be NULL) for each change made, with no lock held.
 * Returns MFSD_REFRESH_DONE, MFSD_REFRESH_DEFERRED (another thread had
 * the name), or -ENOMEM when memory ran out (the change may be partly
 * made; a later refresh retries).
 */
int mfsd_table_refresh(struct mfsd_table *s, const char *file_name,
		       mfsd_change_fn cb, void *arg);

/*
 * As mfsd_table_refresh, but without loading a container: if one must
 * be loaded, returns MFSD_REFRESH_NEEDS_LOAD and leaves it to the
 * caller to have the name refreshed (on a thread that may wait).  Never
 * opens a file: removals, skips and permission changes are applied at
 * once.  MFSD_REFRESH_DONE, _DEFERRED, _NEEDS_LOAD or -ENOMEM.
 */
int mfsd_table_refresh_quick(struct mfsd_table *s, const char *file_name,
			     mfsd_change_fn cb, void *arg);

/*
 * For a lookup of @key that found nothing: if "<key>.mfs" exists in
 * STORE_DIR now (one fstatat when it does not), refreshes it as
 * mfsd_table_refresh would, except that a container to load is handed
 * to @queue (@qarg, the file name; NULL: loaded here) and waited for at
 * most MFSD_LOOKUP_WAIT_NS, as is a refresh of it by another thread: a
 * lookup never waits long on a slow container (the refresh tells @cb
 * when the key appears).  Returns as mfsd_table_refresh.
 */
int mfsd_table_refresh_key(struct mfsd_table *s, const char *key,
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
int mfsd_table_scan_names(struct mfsd_table *s, mfsd_name_fn fn, void *arg);

/* mfsd_table_refresh of every name mfsd_table_scan_names visits, in
 * this thread.  0 or -ENOMEM or the scan's error. */
int mfsd_table_rescan(struct mfsd_table *s, mfsd_change_fn cb, void *arg);

/*
 * The names of transient skipped entries due for a retry at @now_ns
 * (and all that wait for a descriptor if @fd_freed), malloc'd in
 * *@names (free each and the array).  *@next_ns gets when the next
 * retry falls due (0: none pending).  Count or -ENOMEM.
 */
ssize_t mfsd_table_retries(struct mfsd_table *s, uint64_t now_ns,
			   bool fd_freed, char ***names, uint64_t *next_ns);

/* Counts of the skipped entries for the start-up summary. */
struct mfsd_skip_counts {
	size_t skipped;   /* all entries, transient ones included */
	size_t transient; /* failures retried later */
	size_t waiting;   /* of those, waiting for a descriptor */
};
void mfsd_table_skip_counts(struct mfsd_table *s, struct mfsd_skip_counts *out);

/* Re-reads the permissions of STORE_DIR itself; calls @cb with
 * MFSD_CHANGE_ROOT_ATTR if they changed. */
void mfsd_table_refresh_root(struct mfsd_table *s, mfsd_change_fn cb,
			     void *arg);

/* Name of a published model, for a directory listing. */
struct mfsd_dirent_model {
	char *key;
	uint64_t gen;
};

/* Copies the published models (ascending key) into a malloc'd array.
 * Returns the count or -ENOMEM.  Free with mfsd_table_free_list. */
ssize_t mfsd_table_list(struct mfsd_table *s, struct mfsd_dirent_model **out);
void mfsd_table_free_list(struct mfsd_dirent_model *list, size_t n);

/* The counts of one model, copied under the lock. */
struct mfsd_model_counts {
	enum mfsd_model_state state;
	bool retired;
	uint64_t nlookup_dir;
	uint64_t nlookup_files;
	uint64_t nopen;
	uint64_t ndirs;
	uint64_t released_seq;
};

/* Copies @m's counts (no allocation). */
void mfsd_table_model_counts(struct mfsd_table *s, struct mfsd_model *m,
			     struct mfsd_model_counts *out);

/* What .status shows of one model, copied under the lock. */
struct mfsd_model_usage {
	struct mfsd_model_counts c;
	bool in_store;    /* c.state == MFSD_MODEL_PUBLISHED */
	uint64_t nlookup; /* c.nlookup_dir + c.nlookup_files */
	uint64_t nopen;   /* c.nopen */
	struct mfsd_holder *holders; /* malloc'd, ascending pid */
	size_t nholders;
	struct mfsd_hold *holds; /* malloc'd, ascending (pid, slot) */
	size_t nholds;
};

/* Copies @m's counts and holders.  0 or -ENOMEM; free with
 * mfsd_table_usage_free. */
int mfsd_table_usage(struct mfsd_table *s, struct mfsd_model *m,
		     struct mfsd_model_usage *usage);
void mfsd_table_usage_free(struct mfsd_model_usage *usage);

/* Keeps in @usage only the holds made by user @uid, and the holders they
 * add up to; the model's counts (nopen, ...) are left whole. */
void mfsd_table_usage_keep_uid(struct mfsd_model_usage *usage, uid_t uid);

/* Marks every live model busy and returns them (ascending gen) in a
 * malloc'd array; release with mfsd_table_put_all.  Count or -ENOMEM. */
ssize_t mfsd_table_get_all(struct mfsd_table *s, struct mfsd_model ***out);
void mfsd_table_put_all(struct mfsd_table *s, struct mfsd_model **models,
			size_t n);

/* Copies the skipped containers (ascending name) for .status.  Count or
 * -ENOMEM; free with mfsd_table_free_skipped. */
ssize_t mfsd_table_skipped(struct mfsd_table *s, struct mfsd_skipped **out);
void mfsd_table_free_skipped(struct mfsd_skipped *v, size_t n);

/* Counters of the table for .status. */
struct mfsd_table_counts {
	size_t published;
	size_t live;
	size_t retired;
	uint64_t changes;
};
void mfsd_table_counts(struct mfsd_table *s, struct mfsd_table_counts *out);

/* True if chunk @chunk of @a has the bit set in @bitmap. */
static inline bool mfsd_bit_test(_Atomic uint64_t *bitmap, uint64_t chunk)
{
	uint64_t w = atomic_load_explicit(&bitmap[chunk / 64],
					  memory_order_acquire);

	return (w >> (chunk % 64)) & 1u;
}

/* Sets the bit of @chunk; returns true if this call set it. */
static inline bool mfsd_bit_set(_Atomic uint64_t *bitmap, uint64_t chunk)
{
	uint64_t bit = UINT64_C(1) << (chunk % 64);
	uint64_t old = atomic_fetch_or_explicit(&bitmap[chunk / 64], bit,
						memory_order_acq_rel);

	return !(old & bit);
}

/* Adds @n served bytes to @m's page-cache estimate. */
static inline void mfsd_model_served(struct mfsd_model *m, uint64_t n)
{
	atomic_fetch_add_explicit(&m->pc_bytes, n, memory_order_relaxed);
}

/* @m's page-cache estimate: bytes served since the last drop, at most
 * what its files hold. */
static inline uint64_t mfsd_model_cached(struct mfsd_model *m)
{
	uint64_t n = atomic_load_explicit(&m->pc_bytes, memory_order_relaxed);

	return n < m->view_size ? n : m->view_size;
}

#endif /* MFSD_TABLE_H */
