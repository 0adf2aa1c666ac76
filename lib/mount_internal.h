/*
 * mount_internal.h - telling a modelfs mount from a directory, and
 * what a mount says about itself.  Internal.
 */
#ifndef MFS_MOUNT_INTERNAL_H
#define MFS_MOUNT_INTERNAL_H

#include <stdbool.h>

#include "internal.h"

/* Where the mount table of this process is, and the daemon's fs type. */
#define MFS_MOUNTINFO "/proc/self/mountinfo"
#define MFS_FSTYPE "fuse.modelfs"

/* What is mounted on a directory, as far as modelfs is concerned. */
enum mfs_mount_state {
	MFS_MOUNT_NONE, /* no modelfs mount on top of it */
	MFS_MOUNT_LIVE, /* a modelfs daemon answers on it */
	MFS_MOUNT_DEAD, /* a modelfs mount whose daemon has exited */
};

/* The state of the mount on top of @path (errno set when DEAD). */
MFS_INTERNAL enum mfs_mount_state mfs_mount_probe(const char *path);
/* True if a live modelfs daemon serves the directory @path. */
MFS_INTERNAL bool mfs_is_modelfs_mount(const char *path);
/* The store directory the daemon on @mount serves, into @out (PATH_MAX
 * bytes), from its root's xattr or its .status file: 0 or -ENOTSUP
 * (message set). */
MFS_INTERNAL int mfs_mount_store_dir(const char *mount, char *out);
/* Fails with -ENOTCONN naming @path and how to recover from a daemon that
 * has exited (@what prefixes the message). */
MFS_INTERNAL int mfs_fail_dead_mount(const char *what, const char *path);

#endif /* MFS_MOUNT_INTERNAL_H */
