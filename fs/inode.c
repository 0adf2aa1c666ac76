/*
 * inode.c - inode numbers, names and attributes (see inode.h).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "inode.h"

/* st_blocks counts 512-byte units whatever the block size. */
#define MFSD_STAT_BLOCK 512u
#define MFSD_PERM_BITS (S_IRWXU | S_IRWXG | S_IRWXO)
#define MFSD_WRITE_BITS (S_IWUSR | S_IWGRP | S_IWOTH)
#define MFSD_STATUS_MODE 0444

const char *mfsd_slot_name(const struct mfsd_model *m, uint64_t slot)
{
	switch (slot) {
	case MFSD_SLOT_DIR:
		return NULL;
	case MFSD_SLOT_MANIFEST:
		return MFS_MANIFEST_FILE;
	case MFSD_SLOT_METADATA:
		return MFS_METADATA_FILE;
	}
	if (slot - MFSD_SLOT_ARRAY0 < m->narrays)
		return m->arrays[slot - MFSD_SLOT_ARRAY0].file_name;
	return NULL;
}

int mfsd_slot_find(const struct mfsd_model *m, const char *name,
		   uint64_t *slot)
{
	size_t n = strlen(name), sl = strlen(MFS_NPY_SUFFIX), index;
	char array[MFS_MAX_NAME_LEN + 1];

	if (m->retired)
		return -ENOENT;
	if (strcmp(name, MFS_MANIFEST_FILE) == 0) {
		*slot = MFSD_SLOT_MANIFEST;
		return 0;
	}
	if (strcmp(name, MFS_METADATA_FILE) == 0) {
		*slot = MFSD_SLOT_METADATA;
		return 0;
	}
	if (n <= sl || n - sl > MFS_MAX_NAME_LEN ||
	    strcmp(name + n - sl, MFS_NPY_SUFFIX) != 0)
		return -ENOENT;
	memcpy(array, name, n - sl);
	array[n - sl] = '\0';
	if (mfs_container_find(m->container, array, &index) < 0)
		return -ENOENT;
	*slot = MFSD_SLOT_ARRAY0 + index;
	return 0;
}

/* Permission bits of a read-only view of @mode. */
static mode_t mfsd_ro_mode(mode_t mode)
{
	return mode & MFSD_PERM_BITS & ~(mode_t)MFSD_WRITE_BITS;
}

/* A directory shown for a file or directory of mode @mode: read-only, and
 * searchable by whoever may read it. */
static mode_t mfsd_dir_mode(mode_t mode)
{
	mode_t m = mfsd_ro_mode(mode);

	if (m & S_IRUSR)
		m |= S_IXUSR;
	if (m & S_IRGRP)
		m |= S_IXGRP;
	if (m & S_IROTH)
		m |= S_IXOTH;
	return S_IFDIR | m;
}

static blkcnt_t mfsd_blocks(uint64_t bytes)
{
	return (blkcnt_t)((bytes + MFSD_STAT_BLOCK - 1) / MFSD_STAT_BLOCK);
}

/* Fills the fields every entry takes from a backing file's stat (the
 * owner is filled by the caller: it follows chown). */
static void mfsd_stat_from(const struct stat *src, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_atim = src->st_atim;
	st->st_mtim = src->st_mtim;
	st->st_ctim = src->st_ctim;
	st->st_blksize = MFSD_BLKSIZE;
}

void mfsd_stat_root(struct mfsd_table *s, struct stat *st)
{
	mfsd_stat_from(&s->dir_st, st);
	st->st_ino = MFSD_ROOT_INO;
	st->st_mode = mfsd_dir_mode(atomic_load(&s->dir_mode));
	st->st_uid = atomic_load(&s->dir_uid);
	st->st_gid = atomic_load(&s->dir_gid);
	st->st_nlink = 2;
}

void mfsd_stat_status(const struct mfsd_table *s, struct stat *st)
{
	mfsd_stat_from(&s->dir_st, st);
	st->st_ino = MFSD_STATUS_INO;
	st->st_mode = S_IFREG | MFSD_STATUS_MODE;
	st->st_nlink = 1;
	st->st_uid = geteuid();
	st->st_gid = getegid();
	/* The size is only known when a snapshot is taken at open; reads
	 * are direct, so readers go on to the end of the snapshot. */
	st->st_size = 0;
}

uint64_t mfsd_slot_size(const struct mfsd_model *m, uint64_t slot)
{
	switch (slot) {
	case MFSD_SLOT_DIR:
		return 0;
	case MFSD_SLOT_MANIFEST:
		return m->manifest_len;
	case MFSD_SLOT_METADATA:
		return m->metadata_len;
	}
	return m->arrays[slot - MFSD_SLOT_ARRAY0].file_size;
}

int mfsd_stat_slot(struct mfsd_model *m, uint64_t slot, struct stat *st)
{
	mode_t mode = atomic_load(&m->mode);

	if (slot >= mfsd_slot_count(m))
		return -ENOENT;
	mfsd_stat_from(&m->st, st);
	st->st_uid = atomic_load(&m->uid);
	st->st_gid = atomic_load(&m->gid);
	st->st_ino = mfsd_ino(m->gen, slot);
	if (slot == MFSD_SLOT_DIR) {
		st->st_mode = mfsd_dir_mode(mode);
		st->st_nlink = 2;
		return 0;
	}
	st->st_mode = S_IFREG | mfsd_ro_mode(mode);
	st->st_nlink = 1;
	st->st_size = (off_t)mfsd_slot_size(m, slot);
	st->st_blocks = mfsd_blocks((uint64_t)st->st_size);
	if (slot >= MFSD_SLOT_ARRAY0) {
		/* What the array occupies in the store: its stored (maybe
		 * compressed) bytes plus the header page of the view. */
		const struct mfsd_array *a = &m->arrays[slot - MFSD_SLOT_ARRAY0];

		st->st_blocks = mfsd_blocks(a->info.stored_length +
					    a->header_len);
	}
	return 0;
}
