/*
 * store_internal.h - what builder.c, sharing.c, store.c and client.c share
 * to implement the client API of modelfs.h.  Internal.
 */
#ifndef MFS_STORE_INTERNAL_H
#define MFS_STORE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Hex digits of a content-derived key (one XXH3-64). */
#define MFS_CONTENT_KEY_LEN 16u

/* ------------------------------------------------------------------ */
/* builder.c                                                           */
/* ------------------------------------------------------------------ */

/* What an in-process model needs of one builder array. */
struct mfs_builder_view {
	const mfs_array_spec *spec; /* name owned by the builder */
	const void *data;           /* NULL when nbytes is 0 */
	size_t nbytes;
};

/* Takes one more reference to @b (any thread). */
MFS_INTERNAL void mfs_builder_ref(mfs_builder *b);
/* Drops one reference; the last frees @b (any thread). */
MFS_INTERNAL void mfs_builder_unref(mfs_builder *b);

/*
 * Reads every reader-backed array into memory the builder owns and marks
 * @b frozen (read-only from then on).  Idempotent.  0, -ENOMEM or the
 * error of a reader.
 */
MFS_INTERNAL int mfs_builder_freeze(mfs_builder *b);

/* Number of arrays (derived ones included). */
MFS_INTERNAL size_t mfs_builder_count(const mfs_builder *b);
/* Array @i of a frozen builder. */
MFS_INTERNAL void mfs_builder_view_at(const mfs_builder *b, size_t i,
				      struct mfs_builder_view *out);
/* The metadata document (NUL-terminated) and its length. */
MFS_INTERNAL const char *mfs_builder_metadata(const mfs_builder *b,
					      size_t *len);

/* Writes @b to @path keeping or dropping derived arrays. */
MFS_INTERNAL int mfs_builder_write_as(const mfs_builder *b, const char *path,
				      bool keep_derived);

/* The in-process content key of frozen @b into @key (17 bytes). */
MFS_INTERNAL void mfs_builder_content_key(const mfs_builder *b, char *key);

/*
 * A builder whose arrays read (decoding and checking every chunk) from
 * @c, which it takes over and closes when freed.  Codecs, chunk sizes and
 * metadata are kept.  0 or -ENOMEM (then @c is closed too).
 */
MFS_INTERNAL int mfs_builder_from_container(mfs_builder **out,
					    mfs_container *c);

/*
 * A builder importing @path: one .npy file, or a directory of .npy files
 * and an optional metadata.json.  0, -ENOENT, -EBADMSG, -EINVAL (bad
 * array name), -ENOMEM or an errno of the files.
 */
MFS_INTERNAL int mfs_builder_from_npy(mfs_builder **out, const char *path,
				      bool is_dir);

/* ------------------------------------------------------------------ */
/* sharing.c: registries of live handles, the per-thread store stack   */
/* ------------------------------------------------------------------ */

/*
 * A set of live handle pointers, so a handle released twice is refused
 * with -EINVAL instead of being freed twice.  Every field is protected by
 * @lock.
 */
struct mfs_live_set {
	pthread_mutex_t lock;
	uintptr_t *slots; /* open addressing, 0 = empty; lock */
	size_t cap;       /* power of two or 0; lock */
	size_t count;     /* lock */
};

#define MFS_LIVE_SET_INIT {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0}

/* Adds @p (not yet in the set).  0 or -ENOMEM. */
MFS_INTERNAL int mfs_live_add(struct mfs_live_set *set, const void *p);
/* Removes @p; false if it was not there. */
MFS_INTERNAL bool mfs_live_remove(struct mfs_live_set *set, const void *p);
/* True if @p is in the set. */
MFS_INTERNAL bool mfs_live_has(struct mfs_live_set *set, const void *p);
/* As the above with set->lock already held by the caller. */
MFS_INTERNAL bool mfs_live_has_locked(const struct mfs_live_set *set,
				      const void *p);
MFS_INTERNAL bool mfs_live_remove_locked(struct mfs_live_set *set,
					 const void *p);

/* Pushes @s onto the calling thread's store stack: 0 or -EOVERFLOW. */
MFS_INTERNAL int mfs_stack_push(mfs_store *s);
/* Removes the topmost occurrence of @s from the thread's stack. */
MFS_INTERNAL void mfs_stack_remove(const mfs_store *s);
/* The top of the thread's stack, or NULL. */
MFS_INTERNAL mfs_store *mfs_stack_top(void);

/* ------------------------------------------------------------------ */
/* store.c, used by client.c                                           */
/* ------------------------------------------------------------------ */

/* What is mounted on a directory, as far as modelfs is concerned. */
enum mfs_mount_state {
	MFS_MOUNT_NONE, /* no modelfs mount on top of it */
	MFS_MOUNT_LIVE, /* a modelfs daemon answers on it */
	MFS_MOUNT_DEAD, /* a modelfs mount whose daemon has exited */
};

/* The state of the mount on top of @path (errno set when DEAD). */
MFS_INTERNAL enum mfs_mount_state mfs_mount_probe(const char *path);
/* True if a live modelfs daemon serves the directory @path. */
MFS_INTERNAL bool mfs_is_modelfs_mount(const char *path);
/* The store directory the daemon on @mount serves, into @out (PATH_MAX
 * bytes), from its root's xattr or its .status file: 0 or -ENOTSUP
 * (message set). */
MFS_INTERNAL int mfs_mount_store_dir(const char *mount, char *out);
/* Fails with -ENOTCONN naming @path and how to recover from a daemon that
 * has exited (@what prefixes the message). */
MFS_INTERNAL int mfs_fail_dead_mount(const char *what, const char *path);

/*
 * Takes a client reference on the live in-process store at @addr:
 * 0, -ENOENT (no such store, or shut down).
 */
MFS_INTERNAL int mfs_inproc_attach(uintptr_t addr, mfs_store **out);
/* Drops a reference taken by mfs_inproc_attach. */
MFS_INTERNAL void mfs_inproc_detach(mfs_store *s);
/*
 * Finds @key in in-process store @s and returns its builder with one
 * more reference: 0 or -ENOENT.
 */
MFS_INTERNAL int mfs_inproc_lookup(mfs_store *s, const char *key,
				   mfs_builder **out);

/* ------------------------------------------------------------------ */
/* client.c                                                            */
/* ------------------------------------------------------------------ */

/*
 * Opens a client that reads @dir as a mount is laid out (KEY/manifest.json,
 * KEY/metadata.json, KEY/<array>.npy) without checking that a daemon
 * serves it, so the mount reader can be tested on crafted files.
 * Errors as mfs_client_open.
 */
MFS_INTERNAL int mfs_client_open_layout(mfs_client **out, const char *dir);

#endif /* MFS_STORE_INTERNAL_H */
