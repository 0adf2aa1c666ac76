/*
 * table.h - the daemon's table of models: the containers of STORE_DIR
 * it serves, each a model (model.h) with a generation number that is
 * never reused, and the reference counts that decide when a model's
 * memory and descriptor may go.  Loading a container is model.h's,
 * following the directory while it is mounted follow.h's; both keep
 * their state here, under the table's lock.
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
 * Lock order: the table's lock, then the chunk cache's lock.
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

#include "model.h"
#include "modelfs.h"

struct mfsd_cache;
struct mfsd_handoff;
struct mfsd_inflight;
struct mfsd_skipped;

struct mfsd_table {
	/* Immutable after mfsd_table_open: */
	char *dir_path; /* the path given (realpath at start-up) */
	int dirfd;      /* the directory opened at start: all access is
			   relative to it, so a directory moved away is
			   still followed and a new one at the old path is
			   not */
	struct stat dir_st;       /* at open: times of the root */
	struct mfsd_cache *cache; /* entries of freed models are dropped */
	/* Note last releases for the budget (mfsd_table_take_released).
	 * Set before any handle is opened. */
	bool note_releases;

	/* Permissions of the root, following chmod/chown of STORE_DIR. */
	_Atomic unsigned dir_mode;
	_Atomic unsigned dir_uid;
	_Atomic unsigned dir_gid;

	/* The descriptor budget of model.c.  Most container descriptors
	 * open at once (0: no limit); the rest
	 * of RLIMIT_NOFILE is kept for the daemon's own work.  Set before
	 * any load. */
	size_t fd_budget;
	/* Called, with no lock held, when a container descriptor was
	 * closed after a load had to wait for one.  Set before threads. */
	void (*fd_freed)(void *arg);
	void *fd_freed_arg;

	/* Where the table is recorded for a successor (handoff.h); NULL:
	 * nowhere (unit tests).  Set before any load. */
	struct mfsd_handoff *handoff;

	/* The remote store whose view directory this is (remote.h), or
	 * NULL for a local store.  Set before any load. */
	struct mfsd_remote *remote;

	/* Set once the initial scan is done; only its logging depends on
	 * it. */
	_Atomic bool loaded;

	pthread_mutex_t lock;
	/* Signalled (under lock) when a name leaves the in-flight set
	 * (follow.c). */
	pthread_cond_t settled;

	/* The table.  Protected by lock: */
	uint64_t next_gen;
	struct mfsd_model **by_gen; /* every live model, ascending gen */
	size_t nlive;
	size_t live_cap;
	struct mfsd_model **by_key; /* published models, ascending key */
	size_t npublished;
	size_t published_cap;
	uint64_t release_clock; /* ticks at every last release of a model */
	/* Releases noted for the page-cache budget, so that its pass looks
	 * at the models released since the last one instead of at all. */
	uint64_t *released;     /* generations, each once per round */
	size_t nreleased;
	size_t released_cap;
	uint64_t release_round; /* bumped when the watcher takes the list;
				   starts at 1 (0 = never noted) */
	bool released_lost;     /* a release went unnoted (no memory) */
	size_t nretired;        /* live models that are retired */
	uint64_t changes;       /* models added, replaced or removed live */

	/* Following the directory (follow.c).  Protected by lock: */
	struct mfsd_skipped *skipped; /* ascending file_name */
	size_t nskipped;
	size_t skipped_cap;
	size_t nwaiting; /* skipped entries that wait for a descriptor */
	struct mfsd_inflight *inflight; /* names being refreshed */
	size_t ninflight;
	size_t inflight_cap;

	/* The descriptor budget (model.c).  Protected by lock: */
	size_t nfds;     /* container descriptors open or being opened */
	bool fd_starved; /* a load waits for a descriptor */
};

/*
 * Opens STORE_DIR @dir_path; nothing is loaded yet (mfsd_follow_rescan
 * or mfsd_follow_scan_names does that).  Returns 0, or a negative errno if
 * the directory cannot be opened (or memory runs out).  *@out is freed
 * with mfsd_table_close.
 */
int mfsd_table_open(struct mfsd_table **out, const char *dir_path,
		    struct mfsd_cache *cache);

/* Ends the initial scan: from now on changes are counted as live ones
 * and logged one by one. */
void mfsd_table_mark_loaded(struct mfsd_table *t);

/* Frees the table and every model, whatever their counts. */
void mfsd_table_close(struct mfsd_table *t);

/* Finds a published model by key and marks it busy; NULL if none. */
struct mfsd_model *mfsd_table_get_key(struct mfsd_table *t, const char *key);

/* Finds a live model by generation and marks it busy; NULL if none. */
struct mfsd_model *mfsd_table_get_gen(struct mfsd_table *t, uint64_t gen);

/* Ends a busy mark from mfsd_table_get_*; may free the model. */
void mfsd_table_put(struct mfsd_table *t, struct mfsd_model *m);

/* Counts @n kernel lookups of slot @slot's inode of busy model @m. */
void mfsd_table_lookup(struct mfsd_table *t, struct mfsd_model *m,
		       uint64_t slot, uint64_t n);

/* The kernel forgot @n lookups of slot @slot of generation @gen (may
 * free the model).  Returns true if the model is now idle: the watcher
 * retires it after the grace period. */
bool mfsd_table_forget(struct mfsd_table *t, uint64_t gen, uint64_t slot,
		       uint64_t n);

/* Counts an open handle of process @pid, opened as user @uid, on file
 * @slot of busy model @m.  A hold is per (pid, slot): the user of its
 * first open stays its user.  0 or -ENOMEM. */
int mfsd_table_open_handle(struct mfsd_table *t, struct mfsd_model *m,
			   pid_t pid, uid_t uid, uint64_t slot);

/* What the end of a handle means to the watcher (false: none). */
enum mfsd_release {
	MFSD_RELEASE_HELD = 0, /* other handles of the model remain */
	MFSD_RELEASE_LAST,     /* the last, of a published model: nothing
				  for the watcher to do now (noted for
				  the budget's pass if note_releases,
				  behind a note that woke it already) */
	MFSD_RELEASE_NOTED,    /* the last, the first noted for the
				  budget's next pass: wake the watcher */
	MFSD_RELEASE_LEFT,     /* the last, of a model out of the
				  namespace: its sweep or retire may now
				  proceed (and noted if note_releases) */
};

/* Ends an open handle of @pid on @slot of @m (may free @m).  Returns
 * whether it was the model's last open handle, and what the watcher
 * must be told. */
enum mfsd_release mfsd_table_release_handle(struct mfsd_table *t,
					    struct mfsd_model *m, pid_t pid,
					    uint64_t slot);

/*
 * Takes the generations of the models whose last handle was released
 * since the previous call (each once; some may be gone since) into
 * *@out, malloc'd or NULL when there are none.  Returns their count;
 * sets *@lost if a release could not be noted for want of memory, so
 * that the caller considers every model instead.
 */
size_t mfsd_table_take_released(struct mfsd_table *t, uint64_t **out,
				bool *lost);

/* Counts an open directory handle on busy model @m. */
void mfsd_table_open_dir(struct mfsd_table *t, struct mfsd_model *m);

/* Ends an open directory handle on @m (may free @m).  Returns true if
 * the model is now idle, as mfsd_table_forget. */
bool mfsd_table_release_dir(struct mfsd_table *t, struct mfsd_model *m);

/*
 * Retires @m (busy with the caller's mark only) if it has been idle for
 * @grace_ns: closes its container and frees its arrays.  Returns 0 if
 * it was retired or is not idle, else when (CLOCK_MONOTONIC ns) it may
 * be retired.
 */
uint64_t mfsd_table_retire(struct mfsd_table *t, struct mfsd_model *m,
			   uint64_t grace_ns);

/*
 * Puts back the model recorded by a predecessor (@r, handoff.h) with its
 * generation, state and lookup counts, loaded with mfsd_model_adopt from
 * @fd (taken; -1: reopened by name).  Returns 0, or a negative errno with
 * @why set (MFSD_WHY_MAX) when it cannot be loaded.
 */
int mfsd_table_adopt(struct mfsd_table *t, const struct mfsd_model_record *r,
		     int fd, char *why);

/*
 * Gives @m (loaded, not yet in the table) the next generation and
 * publishes it under its key in place of @old (NULL: the key is new;
 * else @old is busy and leaves as replaced).  0 or -ENOMEM.
 */
int mfsd_table_publish(struct mfsd_table *t, struct mfsd_model *m,
		       struct mfsd_model *old);

/* Takes busy @m out of the namespace as removed; the caller's busy mark
 * keeps it until mfsd_table_put. */
void mfsd_table_remove(struct mfsd_table *t, struct mfsd_model *m);

/* Waits, at most @wait_ns, until @key is published; woken whenever a
 * refresh ends (settled). */
void mfsd_table_wait_key(struct mfsd_table *t, const char *key,
			 uint64_t wait_ns);

/* Takes @m out of the table as removed: no longer found by key; it
 * lives on until its counts reach zero.  (For tests: the caller must
 * not refresh @m's name meanwhile.) */
void mfsd_table_unpublish(struct mfsd_table *t, struct mfsd_model *m);

/* Name of a published model, for a directory listing. */
struct mfsd_dirent_model {
	char *key;
	uint64_t gen;
};

/* Copies the published models (ascending key) into a malloc'd array.
 * Returns the count or -ENOMEM.  Free with mfsd_table_free_list. */
ssize_t mfsd_table_list(struct mfsd_table *t, struct mfsd_dirent_model **out);
void mfsd_table_free_list(struct mfsd_dirent_model *list, size_t n);

/* The counts of one model, copied under the table's lock. */
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
void mfsd_table_model_counts(struct mfsd_table *t, struct mfsd_model *m,
			     struct mfsd_model_counts *out);

/* What .status shows of one model, copied under the table's lock. */
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
int mfsd_table_usage(struct mfsd_table *t, struct mfsd_model *m,
		     struct mfsd_model_usage *usage);
void mfsd_table_usage_free(struct mfsd_model_usage *usage);

/* Keeps in @usage only the holds made by user @uid, and the holders they
 * add up to; the model's counts (nopen, ...) are left whole. */
void mfsd_table_usage_keep_uid(struct mfsd_model_usage *usage, uid_t uid);

/* Marks every live model busy and returns them (ascending gen) in a
 * malloc'd array; release with mfsd_table_put_all.  Count or -ENOMEM. */
ssize_t mfsd_table_get_all(struct mfsd_table *t, struct mfsd_model ***out);
void mfsd_table_put_all(struct mfsd_table *t, struct mfsd_model **models,
			size_t n);

/* Counters of the table for .status. */
struct mfsd_table_counts {
	size_t published;
	size_t live;
	size_t retired;
	uint64_t changes;
};
void mfsd_table_counts(struct mfsd_table *t, struct mfsd_table_counts *out);

#endif /* MFSD_TABLE_H */
