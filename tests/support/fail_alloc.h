/*
 * fail_alloc.h - an allocation failure injected at a chosen allocation.
 *
 * A test program that uses fail_alloc_dep has malloc, calloc, realloc,
 * strdup, strndup and asprintf redirected here at link time
 * (-Wl,--wrap), for its own code and for the code it links statically.
 * Not thread-safe: arm and disarm while no other thread allocates.
 */
#ifndef MFS_FAIL_ALLOC_H
#define MFS_FAIL_ALLOC_H

#include <stdbool.h>

/* From now on allocations are counted from 0 and allocation @n fails. */
void fail_alloc_arm(long n);
/* Stops injecting; true if the armed allocation was reached (it failed). */
bool fail_alloc_disarm(void);
/* True if the allocation armed last was reached, also after disarming. */
bool fail_alloc_hit(void);
/* Stops (true) or resumes (false) counting, for the test's own
 * allocations between arming and disarming; returns the previous state. */
bool fail_alloc_pause(bool paused);

#endif /* MFS_FAIL_ALLOC_H */
