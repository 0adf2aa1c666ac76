/*
 * sdnotify.h - the two sides of systemd's service protocol the
 * supervisor uses, written from their documentation (sd_notify(3),
 * sd_listen_fds(3)) so that the daemon needs no libsystemd:
 *
 *   - notifications on $NOTIFY_SOCKET: READY=1, STOPPING=1, and the file
 *     descriptor store (FDSTORE=1 with FDNAME=, FDSTOREREMOVE=1), which
 *     keeps the /dev/fuse descriptor, the takeover state and the
 *     container descriptors while the service restarts;
 *   - the descriptors systemd passes back at start ($LISTEN_PID,
 *     $LISTEN_FDS from descriptor 3, $LISTEN_FDNAMES).
 *
 * Without $NOTIFY_SOCKET every call is a no-op.
 */
#ifndef MFSD_SDNOTIFY_H
#define MFSD_SDNOTIFY_H

#include <stdbool.h>
#include <stddef.h>

/* The first descriptor systemd passes (SD_LISTEN_FDS_START). */
#define MFSD_SD_LISTEN_FDS_START 3
/* Longest FDNAME systemd accepts. */
#define MFSD_SD_FDNAME_MAX 255

/* True when the process runs under systemd's notification protocol. */
bool mfsd_sd_enabled(void);

/* Sends @state (lines "KEY=VALUE"), with descriptor @fd attached if it
 * is >= 0.  0 or a negative errno (-ENOTCONN: no $NOTIFY_SOCKET). */
int mfsd_sd_notify(const char *state, int fd);

/* Stores @fd in the service's descriptor store as @name. */
int mfsd_sd_store(const char *name, int fd);

/* Removes the descriptors named @name from the store. */
int mfsd_sd_unstore(const char *name);

/* A descriptor systemd passed at start. */
struct mfsd_sd_fd {
	int fd;
	char name[MFSD_SD_FDNAME_MAX + 1];
};

/*
 * The descriptors systemd passed to this process ($LISTEN_PID must be
 * ours), with their names, in a malloc'd array (*@out, NULL if none);
 * each is made close-on-exec and the variables are unset.  Returns
 * their count, or -ENOMEM.
 */
int mfsd_sd_listen_fds(struct mfsd_sd_fd **out);

#endif /* MFSD_SDNOTIFY_H */
