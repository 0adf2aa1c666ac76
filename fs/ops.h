/*
 * ops.h - the FUSE low-level handlers of the mount.
 */
#ifndef MFSD_OPS_H
#define MFSD_OPS_H

#include <fuse_lowlevel.h>

/* The handler table; the session's userdata is a struct mfsd_ctx *. */
extern const struct fuse_lowlevel_ops mfsd_ops;

#endif /* MFSD_OPS_H */
