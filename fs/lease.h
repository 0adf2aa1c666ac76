/*
 * lease.h - read leases on served containers, so that a container
 * rewritten in place never has its new bytes served as the old ones.
 *
 * A raw chunk whose checksum matched once is afterwards served straight
 * from the backing file (data.c).  That is only right while the file
 * cannot change, so each container is opened with a read lease
 * (fcntl F_SETLEASE F_RDLCK).  A process that opens the container for
 * writing, or truncates it, is held by the kernel until the daemon lets
 * the lease go: the watcher thread learns of the break through a
 * signalfd, marks the model rewritten, waits for the reads that serve
 * file bytes unchecked to end, and only then releases the lease.  From
 * then on every raw chunk of that generation is read, checked and served
 * from a buffer; a chunk whose bytes changed answers EIO.
 *
 * A container that cannot be leased (open for writing when it is loaded,
 * a file the daemon does not own without CAP_LEASE, a file system without
 * leases) is served the same re-verifying way from the start.  One that
 * could not be leased only because a writer had it open is leased later,
 * when a refresh of its name finds it unchanged (lib/writer.c renames a
 * container into place before it closes it).
 *
 * Lease breaks arrive as a realtime signal (queued, one per break, naming
 * the descriptor) sent to the process; mfsd_lease_setup blocks it in every
 * thread so that only the signalfd sees it.  Until setup is called no
 * lease is taken (the unit tests): the signal's default action would end
 * the process.
 */
#ifndef MFSD_LEASE_H
#define MFSD_LEASE_H

#include <stdatomic.h>
#include <stdbool.h>

#include "table.h"

/* How far the backing bytes of a model's raw chunks are trusted. */
enum mfsd_trust {
	/* Read lease held: a chunk checked once is served from the file. */
	MFSD_TRUST_LEASED,
	/* No lease: every chunk is checked each time it is served. */
	MFSD_TRUST_UNLEASED,
	/* The lease broke (opened for writing or truncated in place): every
	 * chunk is checked each time; the next refresh of the name loads
	 * the container again. */
	MFSD_TRUST_REWRITTEN,
};

/*
 * Enables leases for the process: blocks the lease signal and SIGIO (the
 * kernel's notice that the signal queue overflowed) in the calling
 * thread.  Call before any thread is created, so that every thread
 * inherits the mask.  0 or a negative errno (leases stay disabled).
 */
int mfsd_lease_setup(void);

/* A signalfd (non-blocking, close-on-exec) reading lease breaks, or a
 * negative errno (-ENOTSUP when leases are not set up). */
int mfsd_lease_signalfd(void);

/*
 * Takes a read lease on the container of model @m (loaded, not yet
 * published) and sets m->trust and m->lease_err; a container that cannot
 * be leased is logged with the reason.  Never fails.
 */
void mfsd_lease_take(struct mfsd_model *m);

/*
 * For a refresh that found published model @m's container unchanged:
 * leases it if it could not be leased at load only because a writer had
 * it open.  Then handles a break that came while no thread could find
 * @m (between its load and its publication).  The caller has @m's name
 * in flight (follow.h: one refresh per name at a time) and @m is
 * published (so not retired).
 */
void mfsd_lease_refresh(struct mfsd_model *m);

/* What .status shows of @m's lease: "held", "none" (served re-verified
 * from the start) or "broken" (rewritten in place; re-verified). */
const char *mfsd_lease_state_name(struct mfsd_model *m);

/* True once @m's lease broke: its container was opened for writing or
 * truncated in place, so the file no longer holds its generation. */
static inline bool mfsd_lease_rewritten(struct mfsd_model *m)
{
	return atomic_load(&m->trust) == MFSD_TRUST_REWRITTEN;
}

/*
 * For a read about to serve @m's backing file: true if it may serve
 * checked-before chunks from the file unchecked; the caller then calls
 * mfsd_lease_leave once those bytes are sent.  False: every chunk must
 * be checked in the buffer it is served from.
 */
static inline bool mfsd_lease_enter(struct mfsd_model *m)
{
	/* Counted before trust is read, and the watcher sets trust before it
	 * reads the count (both sequentially consistent): either this read
	 * sees the break or the watcher waits for it. */
	atomic_fetch_add(&m->direct_reads, 1);
	if (atomic_load(&m->trust) == MFSD_TRUST_LEASED)
		return true;
	atomic_fetch_sub(&m->direct_reads, 1);
	return false;
}

/* Ends a read for which mfsd_lease_enter returned true. */
static inline void mfsd_lease_leave(struct mfsd_model *m)
{
	atomic_fetch_sub(&m->direct_reads, 1);
}

/*
 * Reads the pending lease signals from @sfd and handles the breaks among
 * the live models of @s (every leased model when the signal queue
 * overflowed).  Watcher thread.
 */
void mfsd_lease_drain(int sfd, struct mfsd_table *s);

/*
 * Makes the current process receive the breaks of every leased model of
 * @s (leases taken before daemonizing named the parent), and handles
 * breaks that went to the parent.  Call after daemonizing.
 */
void mfsd_lease_adopt(struct mfsd_table *s);

#endif /* MFSD_LEASE_H */
