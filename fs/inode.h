/*
 * inode.h - inode numbers and attributes of the mount.
 *
 * Inode numbers are computed, not stored: a model's inodes are its
 * generation (never reused) shifted left by MFSD_SLOT_BITS, plus a slot:
 * 0 the model's directory, 1 manifest.json, 2 metadata.json, 3 + i array
 * i.  A replaced model therefore always gets new inode numbers, and an
 * inode number never names two different contents over the daemon's life.
 * The kernel's lookup counts are summed per model (table.h).
 */
#ifndef MFSD_INODE_H
#define MFSD_INODE_H

#include <fuse_lowlevel.h>

#include <stdint.h>
#include <sys/stat.h>

#include "table.h"

#define MFSD_ROOT_INO FUSE_ROOT_ID
#define MFSD_STATUS_INO ((fuse_ino_t)2)

/* Room for MFS_MAX_ARRAYS arrays and the fixed slots. */
#define MFSD_SLOT_BITS 20u
#define MFSD_SLOT_MASK ((UINT64_C(1) << MFSD_SLOT_BITS) - 1)
/* Generations that still fit in an inode number. */
#define MFSD_MAX_GEN (UINT64_MAX >> MFSD_SLOT_BITS)

/*
 * st_blksize: a page.  Buffered readers (Python's open, stdio) size their
 * first read by it, and np.load reads only the small NPY header first; the
 * kernel's readahead already makes large sequential FUSE requests.
 */
#define MFSD_BLKSIZE 4096u

static inline fuse_ino_t mfsd_ino(uint64_t gen, uint64_t slot)
{
	return (fuse_ino_t)((gen << MFSD_SLOT_BITS) | slot);
}

/* Generation of a model inode, 0 for the root and .status. */
static inline uint64_t mfsd_ino_gen(fuse_ino_t ino)
{
	return (uint64_t)ino >> MFSD_SLOT_BITS;
}

static inline uint64_t mfsd_ino_slot(fuse_ino_t ino)
{
	return (uint64_t)ino & MFSD_SLOT_MASK;
}

/* Number of slots (entries besides . and ..) of busy model @m's
 * directory, plus the directory itself; a retired model's directory is
 * empty. */
static inline uint64_t mfsd_slot_count(const struct mfsd_model *m)
{
	return m->retired ? MFSD_SLOT_DIR + 1 : MFSD_SLOT_ARRAY0 + m->narrays;
}

/* The file name of slot @slot (>= MFSD_SLOT_MANIFEST) of @m, or NULL. */
const char *mfsd_slot_name(const struct mfsd_model *m, uint64_t slot);

/* Finds the slot named @name in @m's directory.  0 or -ENOENT. */
int mfsd_slot_find(const struct mfsd_model *m, const char *name,
		   uint64_t *slot);

/* Attributes of the root, mirroring STORE_DIR read-only. */
void mfsd_stat_root(struct mfsd_table *s, struct stat *st);

/* Attributes of /.status. */
void mfsd_stat_status(const struct mfsd_table *s, struct stat *st);

/* Attributes of slot @slot of @m, mirroring the container file.
 * 0 or -ENOENT for a slot the model does not have. */
int mfsd_stat_slot(struct mfsd_model *m, uint64_t slot, struct stat *st);

/* Size of the file at @slot (>= MFSD_SLOT_MANIFEST) of @m. */
uint64_t mfsd_slot_size(const struct mfsd_model *m, uint64_t slot);

#endif /* MFSD_INODE_H */
