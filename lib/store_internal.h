/*
 * store_internal.h - what store.c offers the client: the models of
 * in-process stores.  Internal.
 */
#ifndef MFS_STORE_INTERNAL_H
#define MFS_STORE_INTERNAL_H

#include <stdint.h>

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

#endif /* MFS_STORE_INTERNAL_H */
