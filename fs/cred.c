/*
 * cred.c - credentials of a request's caller (see cred.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cred.h"

#define MFSD_ROOT_UID ((uid_t)0)
/* Supplementary groups asked for first: most users have a few; more
 * costs a second read of /proc. */
#define MFSD_GROUPS_GUESS 32

/* Reads the supplementary groups of @req's caller into a malloc'd
 * *@out; their count, 0 when there are none or /proc cannot tell, or
 * -ENOMEM. */
static int mfsd_cred_groups(fuse_req_t req, gid_t **out)
{
	int cap = MFSD_GROUPS_GUESS, n;
	gid_t *groups = NULL;

	for (;;) {
		gid_t *bigger = realloc(groups, (size_t)cap * sizeof(*groups));

		if (!bigger) {
			free(groups);
			return -ENOMEM;
		}
		groups = bigger;
		n = fuse_req_getgroups(req, cap, groups);
		/* More than asked for: read again with room for all (the
		 * list may change meanwhile; NGROUPS_MAX bounds it). */
		if (n <= cap || n > NGROUPS_MAX)
			break;
		cap = n;
	}
	if (n <= 0) {
		free(groups);
		groups = NULL;
		n = 0;
	} else if (n > cap) {
		n = cap;
	}
	*out = groups;
	return n;
}

void mfsd_cred_ids_of_req(fuse_req_t req, struct mfsd_cred *cred)
{
	const struct fuse_ctx *fc = fuse_req_ctx(req);

	memset(cred, 0, sizeof(*cred));
	cred->uid = fc->uid;
	cred->gid = fc->gid;
}

int mfsd_cred_of_req(fuse_req_t req, struct mfsd_cred *cred)
{
	int n;

	mfsd_cred_ids_of_req(req, cred);
	if (mfsd_cred_is_root(cred))
		return 0; /* root is shown everything: groups do not matter */
	n = mfsd_cred_groups(req, &cred->groups);
	if (n < 0)
		return n;
	cred->ngroups = (size_t)n;
	return 0;
}

void mfsd_cred_free(struct mfsd_cred *cred)
{
	free(cred->groups);
	cred->groups = NULL;
	cred->ngroups = 0;
}

bool mfsd_cred_is_root(const struct mfsd_cred *cred)
{
	return cred->uid == MFSD_ROOT_UID;
}

/* True if @gid is the caller's group or one of its supplementary ones. */
static bool mfsd_cred_in_group(const struct mfsd_cred *cred, gid_t gid)
{
	if (cred->gid == gid)
		return true;
	for (size_t i = 0; i < cred->ngroups; i++)
		if (cred->groups[i] == gid)
			return true;
	return false;
}

bool mfsd_cred_may_read(const struct mfsd_cred *cred, mode_t mode, uid_t uid,
			gid_t gid)
{
	if (mfsd_cred_is_root(cred))
		return true;
	/* Only the first class that matches counts, as in the kernel: an
	 * owner without the owner read bit may not read even if the group
	 * or other bits would let others. */
	if (cred->uid == uid)
		return (mode & S_IRUSR) != 0;
	if (mfsd_cred_in_group(cred, gid))
		return (mode & S_IRGRP) != 0;
	return (mode & S_IROTH) != 0;
}
