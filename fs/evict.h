/*
 * evict.h - the page-cache budget of released models: which models'
 * cached pages to drop, and the size syntax of --cache-budget.
 *
 * "Page cache held" by a model is estimated as the bytes the daemon
 * served for its files since their pages were last dropped, capped at
 * the size of those files.  The kernel does not tell a FUSE server what
 * it caches: mincore() would need the daemon to map its own mount (an
 * open handle, a holder, and requests to itself from inside the
 * server), and cachestat() likewise needs a descriptor of the mount.
 * Every byte the kernel caches for a file was first served by a read,
 * so the estimate never undercounts; it overcounts pages the kernel
 * reclaimed on its own, which only makes eviction come early.
 */
#ifndef MFSD_EVICT_H
#define MFSD_EVICT_H

#include <stddef.h>
#include <stdint.h>

/* A released model whose cached pages may be dropped. */
struct mfsd_evict_cand {
	uint64_t gen;
	uint64_t released_seq; /* smaller = released longer ago */
	uint64_t bytes;        /* estimated page cache held */
	size_t index;          /* the caller's, e.g. into its model list */
};

/* The bytes @c (@n candidates) hold in all, UINT64_MAX if more. */
uint64_t mfsd_evict_total(const struct mfsd_evict_cand *c, size_t n);

/*
 * Sorts @c (@n candidates) least recently released first and returns
 * how many of the first ones must be dropped so that the others hold at
 * most @budget bytes in all.
 */
size_t mfsd_evict_pick(struct mfsd_evict_cand *c, size_t n, uint64_t budget);

/*
 * Parses a size: a decimal number of bytes with an optional suffix K,
 * M, G or T (powers of 1024, either case, optionally followed by "B" or
 * "iB").  Returns 0, or -EINVAL for anything else or a value that does
 * not fit in 64 bits.
 */
int mfsd_parse_size(const char *text, uint64_t *out);

#endif /* MFSD_EVICT_H */
