/*
 * supervise.h - the process `modelfs` starts as: the supervisor.
 *
 * The supervisor mounts, holds the /dev/fuse descriptor for the life of
 * the mount, and runs the serving process as its child.  The kernel
 * keeps a FUSE connection while any process holds its descriptor and
 * queues requests meanwhile, so when the child dies the supervisor
 * starts another, which takes the mount over from the records the first
 * left (handoff.h): readers see a pause.  Process shape:
 *
 *   modelfs (supervisor: mount, /dev/fuse, container descriptors)
 *     \_ modelfs (serving child: the session loop, the store)
 *
 * Signals to the supervisor: SIGTERM, SIGINT or SIGHUP stop for good
 * (the child finishes, the supervisor unmounts); SIGUSR2 upgrades: the
 * child drains (stops reading, finishes what it read, exits), the
 * supervisor executes the modelfs binary found at its own path again,
 * keeping its descriptors, and the new image starts a child that takes
 * over.  A child that dies MFSD_RESPAWN_LIMIT times within
 * MFSD_RESPAWN_WINDOW_NS makes the supervisor unmount and exit 1.
 * When the child's session ends on its own (fusermount3 -u), the
 * supervisor unmounts (if still mounted) and exits 0.  The supervisor
 * tells the child to stop with SIGUSR1 and to drain with SIGUSR2; any
 * other death of the child (SIGKILL, SIGTERM, SIGSEGV, ...) is a crash,
 * and a successor takes over.
 */
#ifndef MFSD_SUPERVISE_H
#define MFSD_SUPERVISE_H

#include <stdbool.h>
#include <stddef.h>

#include <fuse_lowlevel.h>

#include "handoff.h"

/* Deaths of the serving child that end the mount: this many ... */
#define MFSD_RESPAWN_LIMIT 5u
/* ... within this window.  A serving process that dies at once on
 * start dies 5 times in a fraction of a second; one killed every 2 s
 * (3 deaths in any 5 s) goes on being replaced. */
#define MFSD_RESPAWN_WINDOW_NS (UINT64_C(5) * 1000000000u)

/* Exit statuses of the modelfs process. */
#define MFSD_EXIT_OK 0
#define MFSD_EXIT_FAIL 1
#define MFSD_EXIT_USAGE 2

/* Exit statuses of a serving child. */
#define MFSD_CHILD_EXIT_STOPPED 0 /* session ended: unmounted or SIGUSR1 */
#define MFSD_CHILD_EXIT_FAILED 1  /* could not start, or the loop failed */
#define MFSD_CHILD_EXIT_DRAINED 3 /* drained for an upgrade (SIGUSR2) */

/* The environment variable naming the region's descriptor across the
 * supervisor's re-execution for an upgrade. */
#define MFSD_HANDOFF_ENV "MODELFS_HANDOFF_FD"

/* What a serving child is given. */
struct mfsd_child {
	int fuse_fd;                       /* the session's device */
	struct mfsd_handoff_region *region;
	int sock;                          /* to the supervisor */
	bool replay;                       /* replay the saved INIT */
	bool resend;                       /* a predecessor may have died
					      with requests read */
	bool adopt;                        /* rebuild from the region */
	const struct mfsd_handoff_fd *fds; /* container copies (inherited) */
	size_t nfds;
};

/* Runs a serving child; returns its exit status (MFSD_CHILD_EXIT_*). */
typedef int (*mfsd_serve_fn)(void *arg, const struct mfsd_child *child);

/* How the supervisor is to run. */
struct mfsd_supervise_opts {
	const char *mountpoint; /* absolute */
	bool foreground;
	bool takeover; /* false (-o takeover=off): a dead child ends the
			  mount */
	struct fuse_args *mount_args; /* for fuse_session_mount */
	char **argv;                  /* as given, for the re-execution */
};

/* Detaches the mount at @mnt: umount2 as root, else fusermount3 -uz.
 * Failures are logged. */
void mfsd_unmount_lazy(const char *mnt);

/*
 * Whether this process takes over a mount instead of mounting: after its
 * re-execution for an upgrade, or under systemd when the service's
 * descriptor store holds the mount.  Then *@mountpoint gets the mount's
 * path (malloc'd), which must not be stat'ed: the mount has no serving
 * process yet.  1 (taking over), 0 (mounting), or -ENOMEM.  Call once,
 * before mfsd_supervise.
 */
int mfsd_supervise_adopted(char **mountpoint);

/*
 * Mounts (or, after a re-execution, takes the mount over), goes into the
 * background unless @o->foreground once the first child serves, and
 * supervises children running @serve(@arg) until the mount ends.
 * Returns the exit status of the process (0: stopped or unmounted; 1:
 * failed, the reason logged).
 */
int mfsd_supervise(const struct mfsd_supervise_opts *o, mfsd_serve_fn serve,
		   void *arg);

#endif /* MFSD_SUPERVISE_H */
