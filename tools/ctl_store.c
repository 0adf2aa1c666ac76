/*
 * ctl_store.c - checking store directories, telling a modelfs mount from
 * a directory (by its entry in /proc/self/mountinfo, which, unlike
 * statfs, names the FUSE subtype) and reading the daemon's /.status.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "ctl_store.h"

#define CTL_MOUNTINFO "/proc/self/mountinfo"
/* Field of a mountinfo line holding the mount point (1-based). */
#define CTL_MOUNTINFO_MOUNTPOINT 5
/* Separates the optional fields from "FSTYPE SOURCE OPTIONS". */
#define CTL_MOUNTINFO_SEP " - "
/* mountinfo escapes space, tab, newline and backslash as "\ooo". */
#define CTL_OCTAL_ESCAPE_LEN 4
#define CTL_OCTAL_BASE 8
#define CTL_STATUS_FILE ".status"
/* Where the daemon tells its store directory (fs/ops.c). */
#define CTL_XATTR_STORE_DIR "user.modelfs.store_dir"

/* True if @s starts with an octal escape "\ooo" of one byte. */
static bool ctl_is_octal_escape(const char *s)
{
	return s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
	       s[2] <= '7' && s[3] >= '0' && s[3] <= '7';
}

/* Decodes mountinfo's octal escapes in place. */
static void ctl_unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r;) {
		if (ctl_is_octal_escape(r)) {
			*w++ = (char)strtol((char[]){r[1], r[2], r[3], 0}, NULL,
					    CTL_OCTAL_BASE);
			r += CTL_OCTAL_ESCAPE_LEN;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

/* Splits one mountinfo line (modified in place) into its mount point and
 * fs type; false if the line is malformed. */
static bool ctl_parse_mountinfo(char *line, char **mnt, char **fstype)
{
	char *sep = strstr(line, CTL_MOUNTINFO_SEP), *save = NULL, *tok;

	if (!sep)
		return false;
	*sep = '\0';
	tok = strtok_r(line, " ", &save);
	for (int f = 1; tok && f < CTL_MOUNTINFO_MOUNTPOINT; f++)
		tok = strtok_r(NULL, " ", &save);
	if (!tok)
		return false;
	*mnt = tok;
	ctl_unescape(*mnt);
	save = NULL;
	*fstype = strtok_r(sep + strlen(CTL_MOUNTINFO_SEP), " \n", &save);
	return *fstype != NULL;
}

bool ctl_is_modelfs_mount(const char *path)
{
	char real[PATH_MAX], *line = NULL, *mnt, *fstype;
	size_t cap = 0;
	bool served = false;
	FILE *f;

	if (!realpath(path, real))
		return false;
	f = fopen(CTL_MOUNTINFO, "re");
	if (!f)
		return false;
	/* Mounts stack: the last entry on a mount point is the visible one. */
	while (getline(&line, &cap, f) > 0) {
		if (ctl_parse_mountinfo(line, &mnt, &fstype) &&
		    strcmp(mnt, real) == 0)
			served = strcmp(fstype, CTL_MODELFS_FSTYPE) == 0;
	}
	free(line);
	fclose(f);
	return served;
}

int ctl_load_status(const struct ctl_command *cmd, const char *mount,
		    json_t **out)
{
	json_error_t jerr;
	char *path;
	json_t *root;

	if (asprintf(&path, "%s/" CTL_STATUS_FILE, mount) < 0) {
		ctl_err(cmd, "out of memory");
		return CTL_EXIT_FAIL;
	}
	root = json_load_file(path, 0, &jerr);
	if (!root) {
		ctl_err(cmd, "cannot read the daemon's status '%s': %s", path,
			jerr.text);
	} else if (!json_is_object(root) ||
		   !json_is_array(json_object_get(root, "models"))) {
		ctl_err(cmd, "'%s' is not a modelfs status document (no "
			"\"models\" array)", path);
		json_decref(root);
		root = NULL;
	}
	free(path);
	if (!root)
		return CTL_EXIT_FAIL;
	*out = root;
	return CTL_EXIT_OK;
}

int64_t ctl_json_int(const json_t *obj, const char *name, int64_t dflt)
{
	const json_t *v = json_object_get(obj, name);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

/* The store directory the daemon on @mount serves, into @out (PATH_MAX
 * bytes): from its root xattr, else from /.status.  False if unknown. */
static bool ctl_mount_store_dir(const char *mount, char *out)
{
	ssize_t n = getxattr(mount, CTL_XATTR_STORE_DIR, out, PATH_MAX - 1);
	const char *dir;
	char *path;
	json_t *status;
	int len = -1;

	if (n > 0) {
		out[n] = '\0';
		return true;
	}
	/* Quietly: this only improves a message. */
	if (asprintf(&path, "%s/" CTL_STATUS_FILE, mount) < 0)
		return false;
	status = json_load_file(path, 0, NULL);
	free(path);
	dir = json_string_value(json_object_get(status, "store_dir"));
	if (dir)
		len = snprintf(out, PATH_MAX, "%s", dir);
	json_decref(status);
	return len > 0 && len < PATH_MAX;
}

int ctl_check_store_dir(const struct ctl_command *cmd, const char *dir)
{
	char store[PATH_MAX];
	struct stat st;

	if (stat(dir, &st) != 0) {
		ctl_err(cmd, "store directory '%s': %s", dir, strerror(errno));
		return CTL_EXIT_FAIL;
	}
	if (!S_ISDIR(st.st_mode)) {
		ctl_err(cmd, "store directory '%s' is not a directory", dir);
		return CTL_EXIT_FAIL;
	}
	if (!ctl_is_modelfs_mount(dir))
		return CTL_EXIT_OK;
	if (ctl_mount_store_dir(dir, store))
		ctl_err(cmd, "'%s' is a modelfs mount (read-only); give its "
			"store directory '%s'", dir, store);
	else
		ctl_err(cmd, "'%s' is a modelfs mount (read-only); give its "
			"store directory", dir);
	return CTL_EXIT_FAIL;
}
