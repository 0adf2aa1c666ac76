/*
 * status.h - the daemon's state as JSON (/.status) and the usage xattrs
 * of a model directory.
 */
#ifndef MFSD_STATUS_H
#define MFSD_STATUS_H

#include <stddef.h>

#include "cred.h"
#include "daemon.h"

/*
 * Builds the /.status document for caller @cred: pid, version, uptime,
 * per-model usage (open handles, holder pids and their command names),
 * skipped containers and the totals.  It lists only the models @cred may
 * open and the skipped files it may read, and of each model only the
 * holders of @cred's user; "store_dir" only if it may read the root
 * (all of it for root).  The totals of models and open handles sum the
 * listed models.  Text from outside (file names, command names, paths)
 * is given verbatim when it is valid UTF-8, else escaped by mfs_escape,
 * so that one odd name cannot make the document fail.  *@out is
 * malloc'd, NUL-terminated, *@len bytes.  Returns 0 or -ENOMEM.
 */
int mfsd_status_snapshot(struct mfsd_ctx *ctx, const struct mfsd_cred *cred,
			 char **out, size_t *len);

/* The holders of @m that @cred may see (its own user's; all for root) as
 * "PID,PID,..." (ascending; "" if none), and the model's open handle
 * count, every user's, in *@nopen.  *@out is malloc'd.  0 or -ENOMEM. */
int mfsd_status_holders(struct mfsd_table *s, struct mfsd_model *m,
			const struct mfsd_cred *cred, char **out,
			unsigned long long *nopen);

#endif /* MFSD_STATUS_H */
