/*
 * sharing_internal.h - what sharing.c offers the stores and the client:
 * registries of live handles and the per-thread store stack.  Internal.
 */
#ifndef MFS_SHARING_INTERNAL_H
#define MFS_SHARING_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

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
/* As mfs_live_has and mfs_live_remove, for a caller that holds
 * @set->lock (the set's own mutex, not a store's). */
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

#endif /* MFS_SHARING_INTERNAL_H */
