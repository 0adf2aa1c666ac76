/*
 * cred.h - who asks: the credentials of a request's caller, and the read
 * check the kernel makes for it under default_permissions, so that the
 * daemon's own reports (/.status, the holder xattrs) tell each caller
 * only about what it could open itself.
 */
#ifndef MFSD_CRED_H
#define MFSD_CRED_H

#include <fuse_lowlevel.h>

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The caller of one request.  groups is malloc'd (NULL when none). */
struct mfsd_cred {
	uid_t uid;
	gid_t gid;
	gid_t *groups; /* supplementary groups */
	size_t ngroups;
};

/*
 * The caller of @req with its supplementary groups (read from /proc by
 * libfuse).  When the groups cannot be read the caller gets none, so it
 * is shown less, never more.  Returns 0 or -ENOMEM; free with
 * mfsd_cred_free.
 */
int mfsd_cred_of_req(fuse_req_t req, struct mfsd_cred *cred);

/* The caller of @req without supplementary groups, for a decision that
 * depends on the uid only (which holders it is shown).  No
 * allocation. */
void mfsd_cred_ids_of_req(fuse_req_t req, struct mfsd_cred *cred);

void mfsd_cred_free(struct mfsd_cred *cred);

/* True for root, who is shown everything. */
bool mfsd_cred_is_root(const struct mfsd_cred *cred);

/*
 * True if @cred may read a file of permission bits @mode owned by
 * @uid:@gid, as the kernel's generic_permission decides for MAY_READ:
 * the owner bits if the caller owns it, else the group bits if the file's
 * group is one of the caller's, else the other bits; root always may.
 */
bool mfsd_cred_may_read(const struct mfsd_cred *cred, mode_t mode, uid_t uid,
			gid_t gid);

#endif /* MFSD_CRED_H */
