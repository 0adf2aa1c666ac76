/*
 * ops.h - the FUSE low-level handlers of the mount.
 */
#ifndef MFSD_OPS_H
#define MFSD_OPS_H

#include <fuse_lowlevel.h>

/* The handler table; the session's userdata is a struct mfsd_ctx *. */
extern const struct fuse_lowlevel_ops mfsd_ops;

struct mfsd_ctx;

/* On a successor, rebuilds the open handles its predecessor recorded
 * (handoff.h), once the models are adopted.  0 or -ENOMEM. */
int mfsd_ops_adopt_handles(struct mfsd_ctx *ctx);

#endif /* MFSD_OPS_H */
