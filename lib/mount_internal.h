/*
 * mount_internal.h - what mount.c offers the library beyond modelfs.h
 * (whose "Mounts" section has the probe).  Internal.
 */
#ifndef MFS_MOUNT_INTERNAL_H
#define MFS_MOUNT_INTERNAL_H

#include <stdbool.h>

#include "internal.h"

/* Where the mount table of this process is, and the daemon's fs type. */
#define MFS_MOUNTINFO "/proc/self/mountinfo"
#define MFS_FSTYPE "fuse.modelfs"

/* True if a live modelfs daemon serves the directory @path. */
MFS_INTERNAL bool mfs_is_modelfs_mount(const char *path);

#endif /* MFS_MOUNT_INTERNAL_H */
