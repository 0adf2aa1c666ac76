/*
 * sharing.c - sharing mode (thread-local, nestable share context), the
 * per-thread stack of acquired stores, and the registries of live handles
 * that let a double release fail cleanly with -EINVAL.
 */
#include <errno.h>
#include <stdlib.h>

#include "sharing_internal.h"

/* Smallest table of a live set; it doubles when half full. */
#define MFS_LIVE_MIN_CAP 16u
#define MFS_LIVE_LOAD_DEN 2u
/* Multiplier of Fibonacci hashing (2^64 / golden ratio). */
#define MFS_FIB_MULT 0x9E3779B97F4A7C15ull
/* The product's high half is the well-mixed one. */
#define MFS_FIB_SHIFT 32

/* Depth of share context of this thread: begin adds one, end takes one. */
static _Thread_local size_t mfs_share_depth;

/* The stores this thread acquired and has not released, last on top.
 * A fixed array: it needs no freeing when the thread exits. */
static _Thread_local mfs_store *mfs_stack[MFS_STORE_STACK_MAX];
static _Thread_local size_t mfs_stack_depth;

/* ------------------------------------------------------------------ */
/* Sharing mode                                                        */
/* ------------------------------------------------------------------ */

void mfs_sharing_begin(void)
{
	mfs_share_depth++;
}

int mfs_sharing_end(void)
{
	/* No mfs_clear_error: stores end share context after a failed put
	 * and its message must survive. */
	if (mfs_share_depth == 0)
		return mfs_fail(-EINVAL, "mfs_sharing_end: this thread is not "
				"in share context (more ends than begins)");
	mfs_share_depth--;
	return 0;
}

int mfs_in_share_context(void)
{
	return mfs_share_depth > 0;
}

/* ------------------------------------------------------------------ */
/* Store stack                                                         */
/* ------------------------------------------------------------------ */

int mfs_stack_push(mfs_store *s)
{
	if (mfs_stack_depth == MFS_STORE_STACK_MAX)
		return mfs_fail(-EOVERFLOW, "store stack: this thread already "
				"holds %u stores (MFS_STORE_STACK_MAX); release "
				"some first", MFS_STORE_STACK_MAX);
	mfs_stack[mfs_stack_depth++] = s;
	return 0;
}

void mfs_stack_remove(const mfs_store *s)
{
	for (size_t i = mfs_stack_depth; i-- > 0;) {
		if (mfs_stack[i] == s) {
			for (size_t j = i; j + 1 < mfs_stack_depth; j++)
				mfs_stack[j] = mfs_stack[j + 1];
			mfs_stack_depth--;
			return;
		}
	}
}

mfs_store *mfs_stack_top(void)
{
	return mfs_stack_depth ? mfs_stack[mfs_stack_depth - 1] : NULL;
}

/* ------------------------------------------------------------------ */
/* Live sets: open addressing with linear probing, backward-shift      */
/* deletion (no tombstones).                                           */
/* ------------------------------------------------------------------ */

static size_t mfs_live_home(const struct mfs_live_set *set, uintptr_t p)
{
	return (size_t)(((uint64_t)p * MFS_FIB_MULT) >> MFS_FIB_SHIFT) &
	       (set->cap - 1);
}

/* Slot of @p, or set->cap if absent. */
static size_t mfs_live_find(const struct mfs_live_set *set, uintptr_t p)
{
	if (set->cap == 0)
		return 0;
	for (size_t i = mfs_live_home(set, p);; i = (i + 1) & (set->cap - 1)) {
		if (set->slots[i] == p)
			return i;
		if (set->slots[i] == 0)
			return set->cap;
	}
}

static void mfs_live_insert(struct mfs_live_set *set, uintptr_t p)
{
	size_t i = mfs_live_home(set, p);

	while (set->slots[i] != 0)
		i = (i + 1) & (set->cap - 1);
	set->slots[i] = p;
	set->count++;
}

static int mfs_live_grow(struct mfs_live_set *set)
{
	size_t old_cap = set->cap;
	uintptr_t *old = set->slots;
	size_t cap = old_cap ? 2 * old_cap : MFS_LIVE_MIN_CAP;

	set->slots = calloc(cap, sizeof(*set->slots));
	if (!set->slots) {
		set->slots = old;
		return -ENOMEM;
	}
	set->cap = cap;
	set->count = 0;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i])
			mfs_live_insert(set, old[i]);
	free(old);
	return 0;
}

int mfs_live_add(struct mfs_live_set *set, const void *p)
{
	int rc = 0;

	pthread_mutex_lock(&set->lock);
	if ((set->count + 1) * MFS_LIVE_LOAD_DEN > set->cap)
		rc = mfs_live_grow(set);
	if (rc == 0)
		mfs_live_insert(set, (uintptr_t)p);
	pthread_mutex_unlock(&set->lock);
	return rc;
}

/* mfs_live_has with @set->lock held by the caller. */
bool mfs_live_has_locked(const struct mfs_live_set *set, const void *p)
{
	return p && mfs_live_find(set, (uintptr_t)p) < set->cap;
}

/* mfs_live_remove with @set->lock held by the caller. */
bool mfs_live_remove_locked(struct mfs_live_set *set, const void *p)
{
	size_t hole, i, home;

	hole = p ? mfs_live_find(set, (uintptr_t)p) : set->cap;
	if (hole >= set->cap)
		return false;
	set->slots[hole] = 0;
	set->count--;
	/* Shift back every later entry of the run that the hole would
	 * otherwise cut off from its home slot. */
	for (i = (hole + 1) & (set->cap - 1); set->slots[i];
	     i = (i + 1) & (set->cap - 1)) {
		home = mfs_live_home(set, set->slots[i]);
		if (((i - home) & (set->cap - 1)) >=
		    ((i - hole) & (set->cap - 1))) {
			set->slots[hole] = set->slots[i];
			set->slots[i] = 0;
			hole = i;
		}
	}
	return true;
}

bool mfs_live_has(struct mfs_live_set *set, const void *p)
{
	bool found;

	pthread_mutex_lock(&set->lock);
	found = mfs_live_has_locked(set, p);
	pthread_mutex_unlock(&set->lock);
	return found;
}

bool mfs_live_remove(struct mfs_live_set *set, const void *p)
{
	bool found;

	pthread_mutex_lock(&set->lock);
	found = mfs_live_remove_locked(set, p);
	pthread_mutex_unlock(&set->lock);
	return found;
}
