/*
 * cmd_holders.c - "modelctl holders": the processes holding a model of a
 * modelfs mount, from the daemon's /.status (pid, command, open handles).
 *
 * The files each process holds come from the holder's "files" list in
 * /.status when the daemon gives one; otherwise from the process's
 * /proc/PID/fd and /proc/PID/maps (as fuser does: a mapping keeps its
 * file handle after the descriptor is closed), which needs permission
 * to inspect that process.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "modelfs.h"
#include "modelctl.h"
#include "ctl_store.h"

const char ctl_usage_holders[] =
	"Usage: modelctl holders [--json] MOUNTPOINT KEY\n"
	"\n"
	"Lists the processes holding model KEY of the modelfs mount\n"
	"MOUNTPOINT (open files or mappings of MOUNTPOINT/KEY/*), one line\n"
	"each, sorted by pid:\n"
	"  PID  COMMAND  HANDLES  FILES\n"
	"HANDLES counts the open file handles the daemon tracks; FILES are\n"
	"the model's files the process holds (from the daemon if it tells,\n"
	"else from /proc/PID/fd and /proc/PID/maps; '-' when they cannot be\n"
	"read).  A model removed from the store but still held is listed\n"
	"too.  Users other than root are shown only the processes of their\n"
	"own user, and only for a model they may open.\n"
	"\n"
	"Options:\n"
	"  --json      print {\"key\", \"mount\", \"holders\": [{\"pid\",\n"
	"              \"command\", \"handles\", \"files\"}]}\n"
	"  -h, --help  show this help\n"
	"\n"
	"Exit status: 0 listed (also when nobody holds the model), 1 failed\n"
	"(not a modelfs mount, no model KEY on it or none the caller may\n"
	"open, unreadable status), 2 usage error (unknown option, missing\n"
	"argument, invalid KEY).\n";

enum { CTL_OPT_JSON = CTL_OPT_LONG_ONLY };

static const struct option ctl_holders_options[] = {
	{"json", no_argument, NULL, CTL_OPT_JSON},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* Room for "/proc/PID/..." paths. */
#define CTL_PROC_PATH_MAX 64
/* The kernel's mark on the path of an unlinked file in fd links/maps. */
#define CTL_DELETED_MARK " (deleted)"
/* Fields of a /proc/PID/maps line before the path. */
#define CTL_MAPS_FORMAT "%*s %*s %*s %*s %*s %n"

/* ---------------------------------------------------------------- */
/* Files from /proc                                                  */
/* ---------------------------------------------------------------- */

/* Appends string @s to JSON array @arr unless it is there already. */
static void ctl_add_unique(json_t *arr, const char *s)
{
	json_t *v;
	size_t i;

	json_array_foreach(arr, i, v) {
		if (strcmp(json_string_value(v), s) == 0)
			return;
	}
	json_array_append_new(arr, ctl_json_text(s));
}

/* Adds @path's file name to @files if @path is a file of the model
 * directory @prefix ("/MNT/KEY/"); a " (deleted)" mark is dropped. */
static void ctl_add_if_model_file(json_t *files, const char *prefix,
				  char *path)
{
	size_t n = strlen(path), plen = strlen(prefix),
	       mlen = strlen(CTL_DELETED_MARK);

	if (n > mlen && strcmp(path + n - mlen, CTL_DELETED_MARK) == 0)
		path[n - mlen] = '\0';
	if (strncmp(path, prefix, plen) == 0 && path[plen] != '\0' &&
	    !strchr(path + plen, '/'))
		ctl_add_unique(files, path + plen);
}

/* Model files open on descriptors of @pid.  False if unreadable. */
static bool ctl_proc_fds(long pid, const char *prefix, json_t *files)
{
	char dir[CTL_PROC_PATH_MAX], target[PATH_MAX];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%ld/fd", pid);
	d = opendir(dir);
	if (!d)
		return false;
	while ((de = readdir(d)) != NULL) {
		ssize_t n = readlinkat(dirfd(d), de->d_name, target,
				       sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		ctl_add_if_model_file(files, prefix, target);
	}
	closedir(d);
	return true;
}

/* Model files mapped by @pid.  False if unreadable. */
static bool ctl_proc_maps(long pid, const char *prefix, json_t *files)
{
	char path[CTL_PROC_PATH_MAX], *line = NULL;
	size_t cap = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (getline(&line, &cap, f) > 0) {
		int at = -1;

		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, CTL_MAPS_FORMAT, &at) >= 0 && at > 0)
			ctl_add_if_model_file(files, prefix, line + at);
	}
	free(line);
	fclose(f);
	return true;
}

static int ctl_str_cmp(const void *a, const void *b)
{
	return strcmp(json_string_value(*(json_t *const *)a),
		      json_string_value(*(json_t *const *)b));
}

/* Sorts a JSON array of strings in place. */
static void ctl_sort_strings(json_t *arr)
{
	size_t n = json_array_size(arr);
	json_t **items = malloc((n ? n : 1) * sizeof(*items));

	if (!items)
		return; /* unsorted is still right */
	for (size_t i = 0; i < n; i++)
		items[i] = json_incref(json_array_get(arr, i));
	qsort(items, n, sizeof(*items), ctl_str_cmp);
	json_array_clear(arr);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, items[i]);
	free(items);
}

/* ---------------------------------------------------------------- */
/* Gathering                                                         */
/* ---------------------------------------------------------------- */

/* The entry of @pid in @holders, made if missing (NULL: out of memory). */
static json_t *ctl_holder_entry(json_t *holders, json_int_t pid,
				const char *comm)
{
	json_t *h;
	size_t i;

	json_array_foreach(holders, i, h) {
		if (ctl_json_int(h, "pid", -1) == pid)
			return h;
	}
	h = json_pack("{s:I, s:o, s:I, s:n}", "pid", pid, "command",
		      ctl_json_text(comm ? comm : ""), "handles", (json_int_t)0,
		      "files");
	if (h && json_array_append_new(holders, h) < 0)
		return NULL;
	return h;
}

/* Adds the holders of one .status model (one generation of the key). */
static bool ctl_add_model_holders(json_t *holders, json_t *model)
{
	json_t *src, *h, *files, *f;
	size_t i, j;

	json_array_foreach(json_object_get(model, MFS_ST_HOLDERS), i, src) {
		h = ctl_holder_entry(
			holders, ctl_json_int(src, MFS_ST_PID, -1),
			json_string_value(json_object_get(src, MFS_ST_COMM)));
		if (!h)
			return false;
		json_object_set_new(h, "handles",
				    json_integer(ctl_json_int(h, "handles", 0) +
						 ctl_json_int(src, MFS_ST_HANDLES,
							      0)));
		files = json_object_get(src, MFS_ST_FILES);
		if (!json_is_array(files))
			continue;
		if (!json_is_array(json_object_get(h, "files")))
			json_object_set_new(h, "files", json_array());
		json_array_foreach(files, j, f) {
			if (json_is_string(f))
				ctl_add_unique(json_object_get(h, "files"),
					       json_string_value(f));
		}
	}
	return true;
}

/* Fills in "files" from /proc for holders the daemon gave none for;
 * leaves null where /proc cannot be read. */
static void ctl_files_from_proc(json_t *holders, const char *prefix)
{
	json_t *h, *files;
	size_t i;

	json_array_foreach(holders, i, h) {
		long pid = (long)ctl_json_int(h, "pid", -1);

		if (!json_is_null(json_object_get(h, "files")) || pid <= 0)
			continue;
		files = json_array();
		if (ctl_proc_fds(pid, prefix, files) &&
		    ctl_proc_maps(pid, prefix, files))
			json_object_set(h, "files", files);
		json_decref(files);
	}
}

static int ctl_holder_cmp(const void *a, const void *b)
{
	json_int_t x = ctl_json_int(*(json_t *const *)a, "pid", 0);
	json_int_t y = ctl_json_int(*(json_t *const *)b, "pid", 0);

	return (x > y) - (x < y);
}

/* Sorts @holders by pid and each one's files by name. */
static void ctl_sort_holders(json_t *holders)
{
	size_t n = json_array_size(holders);
	json_t **items = malloc((n ? n : 1) * sizeof(*items));

	for (size_t i = 0; i < n; i++)
		ctl_sort_strings(json_object_get(json_array_get(holders, i),
						 "files"));
	if (!items)
		return;
	for (size_t i = 0; i < n; i++)
		items[i] = json_incref(json_array_get(holders, i));
	qsort(items, n, sizeof(*items), ctl_holder_cmp);
	json_array_clear(holders);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(holders, items[i]);
	free(items);
}

/*
 * Says why @key is not in the /.status of mount @mnt: the daemon lists a
 * model only to callers who may open it, so a key that exists (its
 * directory can be looked up) is one the caller is not shown.
 */
static void ctl_not_listed(const struct ctl_command *cmd, const char *mnt,
			   const char *key)
{
	char *dir = NULL;
	struct stat st;

	if (asprintf(&dir, "%s/%s", mnt, key) >= 0 && stat(dir, &st) == 0)
		ctl_err(cmd, "model '%s' on mount '%s' is not shown to you: "
			"its holders are listed only to users who may open "
			"it", key, mnt);
	else
		ctl_err(cmd, "no model '%s' on mount '%s'", key, mnt);
	free(dir);
}

/*
 * The holders of @key on mount @mnt into @holders, from its /.status
 * (every model of that key: a replaced one may still be held).  The
 * daemon lists only the holders that are processes of the caller's
 * user (all for root).
 */
static int ctl_gather(const struct ctl_command *cmd, const char *mnt,
		      const char *key, json_t *holders)
{
	char real[PATH_MAX], *prefix = NULL;
	json_t *status, *m;
	bool found = false, ok = true;
	size_t i;

	if (ctl_load_status(cmd, mnt, &status) != CTL_EXIT_OK)
		return CTL_EXIT_FAIL;
	json_array_foreach(json_object_get(status, MFS_ST_MODELS), i, m) {
		const char *k = json_string_value(json_object_get(m, MFS_ST_KEY));

		if (k && strcmp(k, key) == 0) {
			found = true;
			ok = ok && ctl_add_model_holders(holders, m);
		}
	}
	json_decref(status);
	if (!found) {
		ctl_not_listed(cmd, mnt, key);
		return CTL_EXIT_FAIL;
	}
	if (!ok || !realpath(mnt, real) ||
	    asprintf(&prefix, "%s/%s/", real, key) < 0) {
		ctl_err(cmd, "mount '%s': %s", mnt,
			ok ? strerror(errno) : "out of memory");
		return CTL_EXIT_FAIL;
	}
	ctl_files_from_proc(holders, prefix);
	free(prefix);
	ctl_sort_holders(holders);
	return CTL_EXIT_OK;
}

/* ---------------------------------------------------------------- */
/* Printing                                                          */
/* ---------------------------------------------------------------- */

/* Prints the files of holder @h comma-separated, or "-". */
static void ctl_print_files(json_t *h)
{
	json_t *files = json_object_get(h, "files"), *f;
	struct ctl_text t;
	size_t i;

	if (json_array_size(files) == 0) {
		fputs("-", stdout);
		return;
	}
	json_array_foreach(files, i, f) {
		const char *name = json_string_value(f);

		printf("%s%s", i ? "," : "", ctl_text(&t, name ? name : "?"));
	}
}

static void ctl_holders_table(json_t *holders)
{
	struct ctl_text t;
	json_t *h;
	size_t i;

	printf("%-8s %-16s %7s  %s\n", "PID", "COMMAND", "HANDLES", "FILES");
	json_array_foreach(holders, i, h) {
		/* A process names itself (prctl PR_SET_NAME): any bytes. */
		printf("%-8lld %-16s %7lld  ",
		       (long long)ctl_json_int(h, "pid", -1),
		       ctl_json_text_value(h, "command", &t),
		       (long long)ctl_json_int(h, "handles", 0));
		ctl_print_files(h);
		putchar('\n');
	}
}

static int ctl_holders_run(const struct ctl_command *cmd, const char *mnt,
			   const char *key, bool as_json)
{
	json_t *doc = json_pack("{s:s, s:o, s:[]}", "key", key, "mount",
				ctl_json_text(mnt), "holders");
	json_t *holders = json_object_get(doc, "holders");
	char *text;
	int rc;

	if (!doc) {
		ctl_err(cmd, "out of memory");
		return CTL_EXIT_FAIL;
	}
	rc = ctl_gather(cmd, mnt, key, holders);
	if (rc == CTL_EXIT_OK && as_json) {
		text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (text)
			printf("%s\n", text);
		else
			ctl_err(cmd, "out of memory");
		rc = text ? CTL_EXIT_OK : CTL_EXIT_FAIL;
		free(text);
	} else if (rc == CTL_EXIT_OK) {
		ctl_holders_table(holders);
	}
	json_decref(doc);
	return rc;
}

int ctl_cmd_holders(const struct ctl_command *self, int argc, char **argv)
{
	bool as_json = false;
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", ctl_holders_options,
				  NULL)) != -1) {
		if (opt != CTL_OPT_JSON)
			return ctl_common_option(self, opt, argv);
		as_json = true;
	}
	rc = ctl_mount_key_args(self, argc, argv);
	if (rc != CTL_EXIT_OK)
		return rc;
	return ctl_holders_run(self, argv[optind], argv[optind + 1], as_json);
}
