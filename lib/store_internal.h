/*
 * store_internal.h - what store.c offers the client (the models of
 * in-process stores) and import.c (the steps of a publish).  Internal.
 */
#ifndef MFS_STORE_INTERNAL_H
#define MFS_STORE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "builder_internal.h"

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

/* The store directory of @s (dir, mount kinds); NULL in-process. */
MFS_INTERNAL const char *mfs_store_directory(const mfs_store *s);
/* True if @s is an in-process store. */
MFS_INTERNAL bool mfs_store_in_process(const mfs_store *s);

/*
 * One put into a store directory, from before its file is published to
 * its record: the ephemeral record is reserved first so that nothing can
 * fail once the model is visible.
 */
struct mfs_put {
	mfs_store *s;
	char key[MFS_KEY_BUFSIZE];
	char *record;   /* the key's copy, with room reserved for it */
	bool existed;   /* KEY.mfs was there before: not this store's */
	bool durable;   /* persistent, or replaces a model not ours */
	bool published; /* our file is at KEY.mfs now */
	ino_t mount_ino; /* inode of MOUNT/KEY before the put (0: none) */
};

/*
 * Starts a put of @key with @flags into directory or mount store @s:
 * fills @p and reserves the ephemeral record.  The put is durable unless
 * the model will be ephemeral: a store removes those at shutdown, so a
 * crash loses them either way.  0, -ENAMETOOLONG or -ENOMEM.
 */
MFS_INTERNAL int mfs_put_begin(struct mfs_put *p, mfs_store *s,
			       const char *key, unsigned flags);
/*
 * Ends a put with outcome @rc: records a published model (ephemeral
 * unless persistent, or the key was there before and is not one this
 * store put), waits for it on a mount, copies the key out.  Returns @rc
 * or the error of the wait.
 */
MFS_INTERNAL int mfs_put_end(struct mfs_put *p, int rc, unsigned flags,
			     char *key_out);
/* Renames staged file @from onto the model path of @p's key; durably if
 * @p is durable, fsyncing @from first unless it is already (@synced). */
MFS_INTERNAL int mfs_publish_rename(struct mfs_put *p, const char *from,
				    bool synced);
/* Common checks of the put functions: the store, @flags within @allowed
 * and @key (may be NULL).  0 or -EINVAL. */
MFS_INTERNAL int mfs_check_put(const mfs_store *s, const char *fn,
			       const char *key, unsigned flags,
			       unsigned allowed);
/* Puts @b into @s in share context, as every put into a store is. */
MFS_INTERNAL int mfs_put_builder(mfs_store *s, mfs_builder *b,
				 const char *key, unsigned flags,
				 char *key_out);
/* Content key of the container at @fd (its index checksum in hex) into
 * @key (MFS_CONTENT_KEY_LEN + 1 bytes): 0 or the read's errno. */
MFS_INTERNAL int mfs_container_key(int fd, const char *label, char *key);

#endif /* MFS_STORE_INTERNAL_H */
