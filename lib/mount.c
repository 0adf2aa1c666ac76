/*
 * mount.c - telling a modelfs mount from a directory (the mount table and
 * one round trip to the daemon) and asking a mount which store directory
 * its daemon serves.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/xattr.h>

#include <jansson.h>

#include "mount_internal.h"

/* Field of a mountinfo line holding the mount point (1-based). */
#define MFS_MOUNTINFO_MOUNTPOINT 5
/* Separator of the optional fields from the fs type in mountinfo. */
#define MFS_MOUNTINFO_SEP " - "
/* Octal escape width of mountinfo ("\040" is a space). */
#define MFS_OCTAL_ESCAPE_LEN 4
#define MFS_OCTAL_BASE 8
/* Where the daemon tells its store directory. */
#define MFS_STATUS_STORE_DIR "store_dir"

/* Decodes mountinfo's octal escapes ("\040") in place. */
static void mfs_unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r;) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' &&
		    r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)strtol((char[]){r[1], r[2], r[3], 0}, NULL,
					    MFS_OCTAL_BASE);
			r += MFS_OCTAL_ESCAPE_LEN;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

/* Mount point and fs type of one mountinfo line (modified in place);
 * false if the line is malformed. */
static bool mfs_parse_mountinfo(char *line, char **mnt, char **fstype)
{
	char *sep = strstr(line, MFS_MOUNTINFO_SEP), *save = NULL, *tok;

	if (!sep)
		return false;
	*sep = '\0';
	tok = strtok_r(line, " ", &save);
	for (int f = 1; tok && f < MFS_MOUNTINFO_MOUNTPOINT; f++)
		tok = strtok_r(NULL, " ", &save);
	if (!tok)
		return false;
	*mnt = tok;
	mfs_unescape(*mnt);
	*fstype = strtok_r(sep + strlen(MFS_MOUNTINFO_SEP), " ", &save);
	return *fstype != NULL;
}

enum mfs_mount_state mfs_mount_probe(const char *path)
{
	char real[PATH_MAX], *line = NULL, *mnt, *fstype;
	size_t cap = 0;
	bool ours = false;
	struct statfs sfs;
	FILE *f;

	if (!path || !*path || !realpath(path, real))
		return MFS_MOUNT_NONE;
	f = fopen(MFS_MOUNTINFO, "re");
	if (!f)
		return MFS_MOUNT_NONE;
	/* The last entry on a mount point is the one on top. */
	while (getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\n")] = '\0';
		if (mfs_parse_mountinfo(line, &mnt, &fstype) &&
		    strcmp(mnt, real) == 0)
			ours = strcmp(fstype, MFS_FSTYPE) == 0;
	}
	free(line);
	fclose(f);
	if (!ours)
		return MFS_MOUNT_NONE;
	/* A killed daemon leaves its mount behind (mountinfo still lists
	 * it) and every request fails with ENOTCONN; statfs is always a
	 * round trip to the daemon, unlike stat, which the kernel may
	 * answer from its attribute cache. */
	if (statfs(real, &sfs) < 0 && errno == ENOTCONN)
		return MFS_MOUNT_DEAD;
	return MFS_MOUNT_LIVE;
}

bool mfs_is_modelfs_mount(const char *path)
{
	return mfs_mount_probe(path) == MFS_MOUNT_LIVE;
}

int mfs_fail_dead_mount(const char *what, const char *path)
{
	/* A lazy unmount (-z): processes that still map files of the dead
	 * mount make a plain 'fusermount3 -u' fail with EBUSY. */
	return mfs_fail(-ENOTCONN, "%s'%s' is a modelfs mount whose daemon has "
			"exited (%s); unmount it with 'fusermount3 -uz %s' and "
			"start the daemon again", what, path, strerror(ENOTCONN),
			path);
}

int mfs_mount_store_dir(const char *mount, char *out)
{
	char status[PATH_MAX];
	ssize_t n = getxattr(mount, MFS_XATTR_STORE_DIR, out, PATH_MAX - 1);
	json_t *root;
	const char *dir;
	int len = -1;

	if (n > 0) {
		out[n] = '\0';
		return 0;
	}
	/* Daemons before the xattr tell it only in .status. */
	if (snprintf(status, sizeof(status), "%s/" MFS_STATUS_FILE, mount) >=
	    (int)sizeof(status))
		return mfs_fail(-ENAMETOOLONG, "path of %s is too long (%d "
				"bytes at most) in mount '%s'", MFS_STATUS_FILE,
				PATH_MAX - 1, mount);
	root = json_load_file(status, 0, NULL);
	if (json_object_get(root, MFS_ST_REMOTE)) {
		json_decref(root);
		return mfs_fail(-EROFS, "mount '%s' serves a store at a URL: its "
				"models are published at the origin (upload "
				"the container, then modelctl index), not "
				"through the mount", mount);
	}
	dir = json_string_value(json_object_get(root, MFS_STATUS_STORE_DIR));
	if (dir)
		len = snprintf(out, PATH_MAX, "%s", dir);
	json_decref(root);
	if (len < 0 || len >= PATH_MAX)
		return mfs_fail(-ENOTSUP, "mount '%s': the daemon does not tell "
				"its store directory (no %s xattr on the root, "
				"no \"%s\" in %s)", mount, MFS_XATTR_STORE_DIR,
				MFS_STATUS_STORE_DIR, MFS_STATUS_FILE);
	return 0;
}
