/*
 * client_internal.h - what client.c offers the tests: a client over a
 * mount's layout without a daemon.  Internal.
 */
#ifndef MFS_CLIENT_INTERNAL_H
#define MFS_CLIENT_INTERNAL_H

#include "internal.h"

/*
 * Opens a client that reads @dir as a mount is laid out (KEY/manifest.json,
 * KEY/metadata.json, KEY/<array>.npy) without checking that a daemon
 * serves it, so the mount reader can be tested on crafted files.
 * Errors as mfs_client_open.
 */
MFS_INTERNAL int mfs_client_open_layout(mfs_client **out, const char *dir);

#endif /* MFS_CLIENT_INTERNAL_H */
