/*
 * model.h - a model as the daemon serves it, and the turning of a
 * container into one: the container opened safely on a descriptor of
 * the table's budget, each array shown as a .npy file (header and
 * sizes), the manifest and the metadata.  The counts that keep a model
 * alive are the table's (table.h).
 */
#ifndef MFSD_MODEL_H
#define MFSD_MODEL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "modelfs.h"

struct mfsd_table;

/* Room for the library's message about a bad container. */
#define MFSD_WHY_MAX 1024
/* Permission bits of a mode (chmod changes only these). */
#define MFSD_MODE_BITS 07777u

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
	/* The read path's checksum state (data.h), allocated with the
	 * array by mfsd_data_bitmaps_init. */
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
	/* The cache object of a remote store's container (remote.h): the
	 * read path has its chunks fetched before it reads them.  NULL for
	 * a local store. */
	struct mfsd_robj *remote;
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
	 * if leased); afterwards read and cleared only by the refresh that
	 * has the model's name in flight (follow.h: one at a time). */
	int lease_err;
	/* Reads serving the container's bytes unchecked (lease.h): a lease
	 * is released only when none is left. */
	_Atomic uint64_t direct_reads;

	/* Page-cache estimate: bytes served since the mount's pages of the
	 * model were last dropped (capped at view_size when read), and how
	 * often they were dropped for the budget.  Lock-free counters. */
	_Atomic uint64_t pc_bytes;
	_Atomic uint64_t pc_evictions;

	/* Protected by the table's lock (struct mfsd_table, table.h): */
	enum mfsd_model_state state;
	/* Container closed, arrays freed.  Set under the table's lock only
	 * while no other busy mark exists, so a holder of a busy mark may
	 * read it without the lock: it cannot change meanwhile. */
	bool retired;
	uint64_t nlookup_dir;   /* kernel lookups of the directory inode */
	uint64_t nlookup_files; /* kernel lookups summed over its files */
	uint64_t nopen;         /* open file handles */
	uint64_t ndirs;         /* open directory handles */
	uint64_t nbusy;         /* requests between mfsd_table_get and _put */
	uint64_t released_seq;  /* table->release_clock when nopen last
				   became 0; 0 = never released */
	uint64_t release_round; /* table->release_round when its release was
				   last noted for the budget; 0 = never */
	uint64_t idle_since_ns; /* CLOCK_MONOTONIC when it became idle
				   (table.h); 0 = not idle */
	struct mfsd_hold *holds; /* ascending (pid, slot) */
	size_t nholds;
	size_t holds_cap;

	/* Its record in the handoff region (handoff.h), index + 1; 0: none.
	 * Set under the table's lock when published (or adopted), cleared
	 * when freed. */
	uint32_t handoff_idx;

	/* Only touched by the watcher thread, while it holds a busy mark: */
	uint64_t sweep_due_ns;     /* next retry of deleting its entries */
	uint64_t sweep_backoff_ns; /* delay before the retry after that */
};

/* Copies a reason for skipping a container into @why (MFSD_WHY_MAX). */
void mfsd_why(char *why, const char *msg);

/* Writes into @why (MFSD_WHY_MAX) why a store entry of type @mode is
 * not served; false (nothing written) for a regular file. */
bool mfsd_not_regular(mode_t mode, char *why);

/*
 * Loads container @file_name of @t's directory, which fstatat found to
 * be the regular file @st, as model @key (not yet in the table: see
 * mfsd_table_publish).  No lock is held while it loads.  Returns 0 with
 * *@out set, or a negative errno with @why (MFSD_WHY_MAX bytes) naming
 * the reason: -EMFILE when the descriptor budget is spent, -EAGAIN if
 * the file was replaced meanwhile, -EINVAL if it is not a regular file,
 * -ENOMEM, or the library's error for a bad container.
 */
int mfsd_model_load(struct mfsd_table *t, const char *file_name,
		    const struct stat *st, const char *key,
		    struct mfsd_model **out, char *why);

/* A model as a predecessor recorded it (handoff.h), for a successor. */
struct mfsd_model_record {
	uint64_t gen;
	enum mfsd_model_state state;
	bool retired;
	uint64_t nlookup_dir;
	uint64_t nlookup_files;
	const char *key;
	const char *file_name;
	uint64_t dev; /* of the container file */
	uint64_t ino;
	uint32_t handoff_idx;
};

/*
 * Loads recorded model @r again, not yet in the table: from container
 * descriptor @fd (taken, closed on failure), or when @fd is -1 from its
 * file name if that is still the recorded file; a retired model gets no
 * container.  Returns 0 with *@out set, or a negative errno with @why
 * set (-ESTALE: the name holds another file, -ENOMEM, the library's
 * error for a bad container).
 */
int mfsd_model_adopt(struct mfsd_table *t, const struct mfsd_model_record *r,
		     int fd, struct mfsd_model **out, char *why);

/*
 * Closes @m's container and frees its serving state, after dropping what
 * the chunk cache holds of it, and with @drop_pages the container's page
 * cache too (the model left the store; an unlinked container's space is
 * freed once its descriptor closes).  Idempotent.
 */
void mfsd_model_release_data(struct mfsd_table *t, struct mfsd_model *m,
			     bool drop_pages);

/* Frees @m (NULL: nothing); its state is read without the lock, so the
 * caller owns @m alone (no other thread can reach it any more). */
void mfsd_model_free(struct mfsd_table *t, struct mfsd_model *m);

/* Makes @m show the permissions of @st; true if they changed. */
bool mfsd_model_update_perms(struct mfsd_model *m, const struct stat *st);

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

#endif /* MFSD_MODEL_H */
