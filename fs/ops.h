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

/* Once the session has ended for good: closes the handles the kernel
 * never released (files still open at a stop, and a handle whose open
 * a dead predecessor recorded but never answered: the kernel sent that
 * open again and got another). */
void mfsd_ops_close_handles(struct mfsd_ctx *ctx);

#endif /* MFSD_OPS_H */
