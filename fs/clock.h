/*
 * clock.h - the daemon's two clocks: CLOCK_MONOTONIC nanoseconds for
 * its timers (grace periods, retries, sweeps), and CLOCK_REALTIME
 * deadlines, which pthread_cond_timedwait takes.
 */
#ifndef MFSD_CLOCK_H
#define MFSD_CLOCK_H

#include <stdint.h>
#include <time.h>

#define MFSD_NS_PER_SEC UINT64_C(1000000000)

/* Now on CLOCK_MONOTONIC, in nanoseconds. */
static inline uint64_t mfsd_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * MFSD_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Sets @deadline to @wait_ns from now, for pthread_cond_timedwait. */
static inline void mfsd_deadline(struct timespec *deadline, uint64_t wait_ns)
{
	uint64_t ns;

	clock_gettime(CLOCK_REALTIME, deadline);
	ns = (uint64_t)deadline->tv_nsec + wait_ns;
	deadline->tv_sec += (time_t)(ns / MFSD_NS_PER_SEC);
	deadline->tv_nsec = (long)(ns % MFSD_NS_PER_SEC);
}

#endif /* MFSD_CLOCK_H */
