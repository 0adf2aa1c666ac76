/*
 * store.h - the model table: containers loaded from STORE_DIR, each a
 * model with a generation number that is never reused, and the reference
 * counts that decide when a model's memory and descriptor may go.
 *
 * A model lives while it is published in the store (in_store), the kernel
 * holds lookups on any of its inodes (nlookup), a file handle is open on
 * it (nopen), or a request is working on it (nbusy).  When all four say
 * "no", it is freed.  This lets a removed or replaced model stay readable
 * by its holders until the last one lets go.
 */
#ifndef MFSD_STORE_H
#define MFSD_STORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "modelfs.h"

struct mfsd_cache;

/* Per-array serving state. */
struct mfsd_array {
	mfs_array_info info; /* immutable; name owned by the container */
	char *file_name;     /* immutable: "<name>.npy" */
	uint64_t file_size;  /* immutable: NPY header + raw bytes */
	size_t bitmap_words; /* immutable: words in each bitmap below */
	/* Bit per chunk, only ever set: the chunk's checksum was checked
	 * and matched, so its backing bytes may be served directly. */
	_Atomic uint64_t *verified;
	/* Bit per chunk, only ever set: a failure of the chunk has been
	 * logged and counted (so that is done once per chunk). */
	_Atomic uint64_t *reported;
};

/* One process holding open handles on a model. */
struct mfsd_holder {
	pid_t pid;
	uint64_t handles;
};

struct mfsd_model {
	/* Immutable between mfsd_store_scan and the model's end: */
	char *key;
	char *file_name; /* name of the container in STORE_DIR */
	uint64_t gen;
	mfs_container *container;
	struct stat st; /* of the container file */
	struct mfsd_array *arrays;
	size_t narrays;
	char *manifest;
	size_t manifest_len;
	const char *metadata; /* owned by the container */
	size_t metadata_len;
	uint64_t raw_size;
	uint64_t stored_size;

	/* Protected by store->lock: */
	bool in_store;
	uint64_t nlookup; /* kernel lookups summed over the model's inodes */
	uint64_t nopen;   /* open file handles */
	uint64_t nbusy;   /* requests between mfsd_store_get and _put */
	struct mfsd_holder *holders; /* one per pid with open handles */
	size_t nholders;
	size_t holders_cap;
};

/* A container that could not be served, kept for .status. */
struct mfsd_skipped {
	char *file_name;
	char *reason;
};

struct mfsd_store {
	/* Immutable after mfsd_store_open: */
	char *dir_path;
	struct stat dir_st;
	struct mfsd_cache *cache; /* entries of freed models are dropped */
	struct mfsd_skipped *skipped;
	size_t nskipped;

	pthread_mutex_t lock;
	/* Protected by lock: */
	uint64_t next_gen;
	struct mfsd_model **by_gen; /* every live model, ascending gen */
	size_t nlive;
	size_t live_cap;
	struct mfsd_model **by_key; /* published models, ascending key */
	size_t npublished;
	size_t published_cap;
};

/*
 * Opens STORE_DIR @dir_path and loads every valid "*.mfs" container in it;
 * bad ones are logged and listed in store->skipped.  Returns 0, or a
 * negative errno if the directory itself cannot be read (or memory runs
 * out).  *@out is freed with mfsd_store_close.
 */
int mfsd_store_open(struct mfsd_store **out, const char *dir_path,
		    struct mfsd_cache *cache);

/* Frees the store and every model, whatever their counts. */
void mfsd_store_close(struct mfsd_store *s);

/* Finds a published model by key and marks it busy; NULL if none. */
struct mfsd_model *mfsd_store_get_key(struct mfsd_store *s, const char *key);

/* Finds a live model by generation and marks it busy; NULL if none. */
struct mfsd_model *mfsd_store_get_gen(struct mfsd_store *s, uint64_t gen);

/* Ends a busy mark from mfsd_store_get_*; may free the model. */
void mfsd_store_put(struct mfsd_store *s, struct mfsd_model *m);

/* Counts @n kernel lookups of one of @m's inodes; @m must be busy. */
void mfsd_store_lookup(struct mfsd_store *s, struct mfsd_model *m, uint64_t n);

/* The kernel forgot @n lookups of an inode of generation @gen. */
void mfsd_store_forget(struct mfsd_store *s, uint64_t gen, uint64_t n);

/* Counts an open handle of process @pid on busy model @m.  0 or -ENOMEM. */
int mfsd_store_open_handle(struct mfsd_store *s, struct mfsd_model *m,
			   pid_t pid);

/* Ends an open handle of @pid on @m (may free @m). */
void mfsd_store_release_handle(struct mfsd_store *s, struct mfsd_model *m,
			       pid_t pid);

/* Takes @m out of the store: no longer found by key; it lives on until
 * its counts reach zero. */
void mfsd_store_unpublish(struct mfsd_store *s, struct mfsd_model *m);

/* Name of a published model, for a directory listing. */
struct mfsd_dirent_model {
	char *key;
	uint64_t gen;
};

/* Copies the published models (ascending key) into a malloc'd array.
 * Returns the count or -ENOMEM.  Free with mfsd_store_free_list. */
ssize_t mfsd_store_list(struct mfsd_store *s, struct mfsd_dirent_model **out);
void mfsd_store_free_list(struct mfsd_dirent_model *list, size_t n);

/* What .status shows of one model, copied under the lock. */
struct mfsd_model_usage {
	uint64_t nlookup;
	uint64_t nopen;
	bool in_store;
	struct mfsd_holder *holders; /* malloc'd copy, ascending pid */
	size_t nholders;
};

/* Copies @m's counts and holders.  0 or -ENOMEM; free usage->holders. */
int mfsd_store_usage(struct mfsd_store *s, struct mfsd_model *m,
		     struct mfsd_model_usage *usage);

/* Marks every live model busy and returns them (ascending gen) in a
 * malloc'd array; release with mfsd_store_put_all.  Count or -ENOMEM. */
ssize_t mfsd_store_get_all(struct mfsd_store *s, struct mfsd_model ***out);
void mfsd_store_put_all(struct mfsd_store *s, struct mfsd_model **models,
			size_t n);

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

#endif /* MFSD_STORE_H */
