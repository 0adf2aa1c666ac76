/*
 * ctl_store.c - checking store directories, telling a modelfs mount from
 * a directory (the library's probe) and reading the daemon's /.status.
 */
#include <errno.h>
#include <unistd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctl_store.h"
#include "modelfs.h"


bool ctl_is_container_name(const char *name)
{
	size_t n = strlen(name), s = strlen(MFS_CONTAINER_SUFFIX);

	return name[0] != '.' && n > s &&
	       strcmp(name + n - s, MFS_CONTAINER_SUFFIX) == 0;
}

int ctl_mount_state(const struct ctl_command *cmd, const char *path,
		    bool *mount)
{
	enum mfs_mount_state state = mfs_mount_probe(path);

	if (state == MFS_MOUNT_DEAD) {
		ctl_err(cmd, "%s", ctl_lib_error(mfs_fail_dead_mount("", path)));
		return CTL_EXIT_FAIL;
	}
	*mount = state == MFS_MOUNT_LIVE;
	return CTL_EXIT_OK;
}

int ctl_load_status(const struct ctl_command *cmd, const char *mount,
		    json_t **out)
{
	json_error_t jerr;
	char *path;
	json_t *root;

	if (asprintf(&path, "%s/" MFS_STATUS_FILE, mount) < 0) {
		ctl_err(cmd, "out of memory");
		return CTL_EXIT_FAIL;
	}
	root = json_load_file(path, 0, &jerr);
	if (!root) {
		ctl_err(cmd, "cannot read the daemon's status '%s': %s", path,
			jerr.text);
	} else if (!json_is_object(root) ||
		   !json_is_array(json_object_get(root, MFS_ST_MODELS))) {
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

int ctl_check_store_dir(const struct ctl_command *cmd, const char *dir)
{
	char store[PATH_MAX];
	struct stat st;
	bool mount;
	int rc = ctl_mount_state(cmd, dir, &mount);

	if (rc != CTL_EXIT_OK)
		return rc;
	if (stat(dir, &st) != 0) {
		ctl_err(cmd, "store directory '%s': %s", dir, strerror(errno));
		return CTL_EXIT_FAIL;
	}
	if (!S_ISDIR(st.st_mode)) {
		ctl_err(cmd, "store directory '%s' is not a directory", dir);
		return CTL_EXIT_FAIL;
	}
	if (!mount)
		return CTL_EXIT_OK;
	/* The store directory only improves the message. */
	if (mfs_mount_store_dir(dir, store) == 0)
		ctl_err(cmd, "'%s' is a modelfs mount (read-only); give its "
			"store directory '%s'", dir, store);
	else
		ctl_err(cmd, "'%s' is a modelfs mount (read-only); give its "
			"store directory", dir);
	return CTL_EXIT_FAIL;
}

json_t *ctl_json_text(const char *raw)
{
	json_t *j = json_string(raw);
	struct ctl_text t;

	return j ? j : json_string(ctl_text(&t, raw));
}

const char *ctl_json_text_value(const json_t *obj, const char *name,
				struct ctl_text *t)
{
	const char *s = json_string_value(json_object_get(obj, name));

	return ctl_text(t, s ? s : "?");
}

int ctl_mount_key_args(const struct ctl_command *cmd, int argc, char **argv)
{
	bool mount;
	int rc;

	if (optind + 2 > argc)
		return ctl_usage_error(cmd, "missing %s",
				       optind >= argc ? "MOUNTPOINT and KEY"
						      : "KEY");
	if (optind + 2 < argc)
		return ctl_usage_error(cmd, "%s takes MOUNTPOINT and KEY, got %d "
				       "arguments", cmd->name, argc - optind);
	rc = mfs_check_key(argv[optind + 1]);
	if (rc < 0)
		return ctl_usage_error(cmd, "invalid key '%s': %s",
				       argv[optind + 1], ctl_lib_error(rc));
	rc = ctl_mount_state(cmd, argv[optind], &mount);
	if (rc != CTL_EXIT_OK)
		return rc;
	if (!mount) {
		ctl_err(cmd, "'%s' is not a modelfs mount (no fuse.modelfs "
			"entry for it in /proc/self/mountinfo)", argv[optind]);
		return CTL_EXIT_FAIL;
	}
	return CTL_EXIT_OK;
}
