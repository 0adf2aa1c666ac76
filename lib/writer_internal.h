/*
 * writer_internal.h - what writer.c offers the stores beyond the public
 * writer: publishing without durability.  Internal.
 */
#ifndef MFS_WRITER_INTERNAL_H
#define MFS_WRITER_INTERNAL_H

#include <stdbool.h>

#include "internal.h"

/*
 * Whether mfs_writer_commit makes the container durable (the default):
 * fsync of the file before the rename and of the directory after.  Not
 * durable, the commit only starts writeback of what is still dirty, so
 * that the page cache can still be dropped soon after; the container is
 * as complete and atomic for readers, but a system crash may lose it or
 * leave it incomplete (readers refuse it by its checksums).  For models
 * a store removes at shutdown anyway.
 */
MFS_INTERNAL void mfs_writer_set_durable(mfs_writer *w, bool durable);

#endif /* MFS_WRITER_INTERNAL_H */
