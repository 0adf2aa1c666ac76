/*
 * status.h - the daemon's state as JSON (/.status) and the usage xattrs
 * of a model directory.
 */
#ifndef MFSD_STATUS_H
#define MFSD_STATUS_H

#include <stddef.h>

#include "daemon.h"

/*
 * Builds the /.status document: pid, version, uptime, per-model usage
 * (open handles, holder pids and their command names), skipped
 * containers and the totals.  Text from outside (file names, command
 * names, paths) is given verbatim when it is valid UTF-8, else escaped by
 * mfs_escape, so that one odd name cannot make the document fail.  *@out
 * is malloc'd, NUL-terminated, *@len bytes.  Returns 0 or -ENOMEM.
 */
int mfsd_status_snapshot(struct mfsd_ctx *ctx, char **out, size_t *len);

/* The holders of @m as "PID,PID,..." (ascending; "" if none), and its
 * open handle count in *@nopen.  *@out is malloc'd.  0 or -ENOMEM. */
int mfsd_status_holders(struct mfsd_store *s, struct mfsd_model *m,
			char **out, unsigned long long *nopen);

#endif /* MFSD_STATUS_H */
