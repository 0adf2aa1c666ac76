/*
 * staging_internal.h - the names of files not yet published in a store
 * directory (every one starts with '.', so readers and the daemon ignore
 * it); staging.c's mfs_store_gc matches them.  Internal.
 */
#ifndef MFS_STAGING_INTERNAL_H
#define MFS_STAGING_INTERNAL_H

#include <stdbool.h>

#include "internal.h"

/* mkostemp's template suffix of a writer's temporary ".<name>" and of an
 * import's copy; mfs_store_gc removes unlocked files named so. */

/*
 * A fresh staging name "DIR/.put-PID-SEQ.mfs" into @buf (PATH_MAX bytes)
 * for a container whose key is known only once it is written; removed by
 * mfs_store_gc once process PID is gone.  False if it does not fit.
 */
MFS_INTERNAL bool mfs_staging_path(char *buf, const char *dir);

/*
 * Takes the exclusive flock that marks @fd's temporary file as being
 * written, for as long as @fd is open (mfs_store_gc removes only
 * temporaries it can lock), waiting while a gc holds it.  Returns 0 when
 * locked and still linked, 1 when a gc removed the file before the lock
 * was ours (make another), or -errno.
 */
MFS_INTERNAL int mfs_staging_lock(int fd);

/* The mkostemp template of an imported container's copy in @dir into
 * @buf (PATH_MAX bytes).  False if it does not fit. */
MFS_INTERNAL bool mfs_import_tmp_template(char *buf, const char *dir);

#endif /* MFS_STAGING_INTERNAL_H */
