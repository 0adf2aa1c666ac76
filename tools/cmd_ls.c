/*
 * cmd_ls.c - "modelctl ls": the models of a store directory (each
 * container opened and validated) or of a modelfs mount (from the
 * daemon's /.status, with open handles).  Both are first gathered into
 * one JSON document, which --json prints and the table is drawn from.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "modelfs.h"
#include "modelctl.h"
#include "ctl_store.h"

const char ctl_usage_ls[] =
	"Usage: modelctl ls [--json] STORE_DIR|MOUNTPOINT\n"
	"\n"
	"Lists the models of a store directory or of a modelfs mount, sorted\n"
	"by key: file size and raw size (bytes of array data) in bytes, and\n"
	"the number of arrays.  On a mount (a fuse.modelfs entry in\n"
	"/proc/self/mountinfo) the daemon's /.status also gives the open\n"
	"file handles and the processes holding each model.\n"
	"\n"
	"In a store directory every non-hidden *.mfs file is opened and its\n"
	"structure validated (chunk checksums are 'modelctl verify''s job);\n"
	"one that is invalid, or whose name is no valid key, is listed after\n"
	"the table as 'invalid FILE: reason'.  Hidden files (temporaries of\n"
	"writers) are ignored.  On a mount, the containers the daemon\n"
	"skipped are listed so, and removed models that processes still hold\n"
	"as 'removed KEY: N open handles'.  The daemon shows users other\n"
	"than root only the models they may open, the skipped files they\n"
	"may read and the holders that are processes of their own user.\n"
	"\n"
	"Options:\n"
	"  --json      print one JSON object: {\"path\", \"mount\" (true on a\n"
	"              mount), \"models\": [{\"key\", \"file\", \"file_size\",\n"
	"              \"raw_size\", \"arrays\"; on a mount also\n"
	"              \"open_handles\", \"holders\" (pids), \"removed\"}],\n"
	"              \"invalid\": [{\"file\", \"error\"}]}; a file name that\n"
	"              is not UTF-8 is given escaped (\\xNN), as in the table\n"
	"  -h, --help  show this help\n"
	"\n"
	"Exit status: 0 listed (invalid containers included), 1 failed (no\n"
	"such directory, unreadable status), 2 usage error.\n";

enum { CTL_OPT_JSON = CTL_OPT_LONG_ONLY };

static const struct option ctl_ls_options[] = {
	{"json", no_argument, NULL, CTL_OPT_JSON},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* Columns of the table. */
enum { CTL_COL_KEY, CTL_COL_FILE, CTL_COL_RAW, CTL_COL_ARRAYS, CTL_COL_OPEN,
       CTL_COLS };
static const char *const ctl_ls_titles[CTL_COLS] = {
	"KEY", "FILE_SIZE", "RAW_SIZE", "ARRAYS", "OPEN",
};

/* ---------------------------------------------------------------- */
/* Gathering                                                         */
/* ---------------------------------------------------------------- */

/* Appends {"file", "error"} to @invalid; false when out of memory. */
static bool ctl_ls_invalid(json_t *invalid, const char *file,
			   const char *error)
{
	return json_array_append_new(invalid,
				     json_pack("{s:o, s:o}", "file",
					       ctl_json_text(file), "error",
					       ctl_json_text(error))) == 0;
}

/* The listing entry of the valid container @c stored as @file. */
static json_t *ctl_ls_entry(const mfs_container *c, const char *key,
			    const char *file)
{
	size_t n = mfs_container_array_count(c);
	uint64_t raw = 0;

	for (size_t i = 0; i < n; i++) {
		mfs_array_info a;

		if (mfs_container_array(c, i, &a) == 0)
			raw += a.raw_length;
	}
	return json_pack("{s:s, s:s, s:I, s:I, s:I}", "key", key, "file", file,
			 "file_size", (json_int_t)mfs_container_file_size(c),
			 "raw_size", (json_int_t)raw, "arrays",
			 (json_int_t)n);
}

/* @msg without a leading "@path: " (the library names the file, escaped;
 * the listing names it already). */
static const char *ctl_ls_reason(const char *msg, const char *path)
{
	struct ctl_text t;
	size_t n = strlen(ctl_text(&t, path));

	if (strncmp(msg, t.s, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
		return msg + n + 2;
	return msg;
}

/* Adds store file @name (in @dir) to @models or @invalid. */
static bool ctl_ls_dir_entry(const char *dir, const char *name,
			     json_t *models, json_t *invalid)
{
	char *key = ctl_stem(name, MFS_CONTAINER_SUFFIX), *path = NULL;
	mfs_container *c;
	bool ok = false;
	int rc;

	if (!key || asprintf(&path, "%s/%s", dir, name) < 0) {
		free(key);
		return false;
	}
	rc = mfs_check_key(key);
	if (rc < 0) {
		ok = ctl_ls_invalid(invalid, name, ctl_lib_error(rc));
	} else if ((rc = mfs_container_open_at(&c, AT_FDCWD, path,
					       MFS_OPEN_NOFOLLOW)) < 0) {
		ok = ctl_ls_invalid(invalid, name,
				    ctl_ls_reason(ctl_lib_error(rc), path));
	} else {
		ok = json_array_append_new(models,
					   ctl_ls_entry(c, key, name)) == 0;
		mfs_container_close(c);
	}
	free(path);
	free(key);
	return ok;
}

static int ctl_ls_cmp(const void *a, const void *b, const char *field)
{
	const char *x = json_string_value(json_object_get(
		*(json_t *const *)a, field));
	const char *y = json_string_value(json_object_get(
		*(json_t *const *)b, field));

	return strcmp(x ? x : "", y ? y : "");
}

static int ctl_ls_by_key(const void *a, const void *b)
{
	return ctl_ls_cmp(a, b, "key");
}

static int ctl_ls_by_file(const void *a, const void *b)
{
	return ctl_ls_cmp(a, b, "file");
}

/* Sorts JSON array @arr in place with @cmp (over json_t * elements). */
static bool ctl_ls_sort(json_t *arr, int (*cmp)(const void *, const void *))
{
	size_t n = json_array_size(arr);
	json_t **items = malloc((n ? n : 1) * sizeof(*items));
	bool ok = items != NULL;

	for (size_t i = 0; ok && i < n; i++)
		items[i] = json_incref(json_array_get(arr, i));
	if (ok) {
		qsort(items, n, sizeof(*items), cmp);
		json_array_clear(arr);
		for (size_t i = 0; i < n; i++)
			ok = json_array_append_new(arr, items[i]) == 0 && ok;
	}
	free(items);
	return ok;
}

/* Lists store directory @dir into @doc ("models", "invalid"). */
static int ctl_ls_store(const struct ctl_command *cmd, const char *dir,
			json_t *doc)
{
	json_t *models = json_object_get(doc, "models");
	json_t *invalid = json_object_get(doc, "invalid");
	struct dirent *de;
	bool ok = true;
	DIR *d = opendir(dir);

	if (!d) {
		ctl_err(cmd, "cannot open store directory '%s': %s", dir,
			strerror(errno));
		return CTL_EXIT_FAIL;
	}
	while (ok && (errno = 0, de = readdir(d)) != NULL) {
		if (ctl_is_container_name(de->d_name))
			ok = ctl_ls_dir_entry(dir, de->d_name, models,
					      invalid);
	}
	if (ok && errno != 0) {
		ctl_err(cmd, "cannot read store directory '%s': %s", dir,
			strerror(errno));
		closedir(d);
		return CTL_EXIT_FAIL;
	}
	closedir(d);
	if (!ok) {
		ctl_err(cmd, "out of memory");
		return CTL_EXIT_FAIL;
	}
	return CTL_EXIT_OK;
}

/* The pids of a .status model's "holders" as a JSON array. */
static json_t *ctl_ls_holder_pids(json_t *model)
{
	json_t *pids = json_array(), *h;
	size_t i;

	json_array_foreach(json_object_get(model, MFS_ST_HOLDERS), i, h)
		json_array_append_new(pids,
				      json_integer(ctl_json_int(h, MFS_ST_PID, -1)));
	return pids;
}

/*
 * True if a .status model is no longer published (removed or replaced,
 * still held): "in_store": false, or a "state" other than "published"
 * for daemons that tell the state.
 */
static bool ctl_ls_is_removed(json_t *m)
{
	const char *state = json_string_value(json_object_get(m, MFS_ST_STATE));

	if (state)
		return strcmp(state, "published") != 0;
	return json_is_false(json_object_get(m, MFS_ST_IN_STORE));
}

/* The listing entry of a .status model. */
static json_t *ctl_ls_mount_entry(json_t *m)
{
	const char *key = json_string_value(json_object_get(m, MFS_ST_KEY));
	const char *file = json_string_value(json_object_get(m, MFS_ST_FILE));

	/* The listing's keys are modelctl's; the values come from .status. */
	return json_pack("{s:s, s:s?, s:I, s:I, s:I, s:I, s:o, s:b}", "key",
			 key ? key : "", "file", file, "file_size",
			 (json_int_t)ctl_json_int(m, MFS_ST_FILE_SIZE, 0),
			 "raw_size",
			 (json_int_t)ctl_json_int(m, MFS_ST_RAW_SIZE, 0),
			 "arrays", (json_int_t)ctl_json_int(m, MFS_ST_ARRAYS, 0),
			 "open_handles",
			 (json_int_t)ctl_json_int(m, MFS_ST_OPEN_HANDLES, 0),
			 "holders", ctl_ls_holder_pids(m), "removed",
			 ctl_ls_is_removed(m));
}

/* The reason a daemon skipped @file, without the "STORE_DIR/FILE: "
 * the daemon's message starts with; @path is PATH_MAX bytes of room. */
static const char *ctl_ls_skip_reason(json_t *status, const char *file,
				      const char *error, char *path)
{
	const char *dir = json_string_value(json_object_get(status,
							    "store_dir"));

	if (!error)
		return "?";
	if (!dir || !file || snprintf(path, PATH_MAX, "%s/%s", dir, file) >=
				     PATH_MAX)
		return error;
	return ctl_ls_reason(error, path);
}

/* Lists mount @mnt into @doc from its /.status. */
static int ctl_ls_mount(const struct ctl_command *cmd, const char *mnt,
			json_t *doc)
{
	json_t *models = json_object_get(doc, "models");
	json_t *invalid = json_object_get(doc, "invalid");
	char path[PATH_MAX];
	json_t *status, *m;
	bool ok = true;
	size_t i;

	if (ctl_load_status(cmd, mnt, &status) != CTL_EXIT_OK)
		return CTL_EXIT_FAIL;
	json_array_foreach(json_object_get(status, MFS_ST_MODELS), i, m)
		ok = ok && json_array_append_new(models,
						 ctl_ls_mount_entry(m)) == 0;
	json_array_foreach(json_object_get(status, MFS_ST_SKIPPED), i, m) {
		const char *f = json_string_value(json_object_get(m, MFS_ST_FILE));
		const char *e = json_string_value(json_object_get(m, MFS_ST_ERROR));

		ok = ok && ctl_ls_invalid(invalid, f ? f : "?",
					  ctl_ls_skip_reason(status, f, e,
							     path));
	}
	json_decref(status);
	if (!ok) {
		ctl_err(cmd, "out of memory");
		return CTL_EXIT_FAIL;
	}
	return CTL_EXIT_OK;
}

/* ---------------------------------------------------------------- */
/* Printing                                                          */
/* ---------------------------------------------------------------- */

/* Longest cell: a key (numbers are shorter). */
#define CTL_LS_CELL_MAX MFS_KEY_BUFSIZE

/* The cells of one table row, as text. */
struct ctl_ls_cells {
	char text[CTL_COLS][CTL_LS_CELL_MAX];
};

static void ctl_ls_cells(json_t *m, struct ctl_ls_cells *c)
{
	static const char *const fields[CTL_COLS] = {
		NULL, "file_size", "raw_size", "arrays", "open_handles",
	};

	const char *key = json_string_value(json_object_get(m, "key"));

	/* Keys are checked names, but .status is another program's
	 * output: escaped all the same (and cut to the cell). */
	key = key ? key : "";
	mfs_escape(c->text[CTL_COL_KEY], CTL_LS_CELL_MAX, key, strlen(key),
		   MFS_ESCAPE_KEEP_BACKSLASH);
	for (int col = CTL_COL_FILE; col < CTL_COLS; col++)
		snprintf(c->text[col], CTL_LS_CELL_MAX, "%" PRId64,
			 ctl_json_int(m, fields[col], 0));
}

/* Prints one row; the key left-aligned, numbers right-aligned. */
static void ctl_ls_row(char text[][CTL_LS_CELL_MAX], const int *width,
		       int ncols)
{
	printf("%-*s", width[0], text[0]);
	for (int col = 1; col < ncols; col++)
		printf("  %*s", width[col], text[col]);
	putchar('\n');
}

/* Whether the table shows model @m: removed ones get their own line. */
static bool ctl_ls_in_table(json_t *m)
{
	return !json_is_true(json_object_get(m, "removed"));
}

static void ctl_ls_table(json_t *doc, bool mount)
{
	json_t *models = json_object_get(doc, "models"), *m;
	int ncols = mount ? CTL_COLS : CTL_COL_OPEN, width[CTL_COLS];
	char titles[CTL_COLS][CTL_LS_CELL_MAX];
	struct ctl_ls_cells cells;
	struct ctl_text t1, t2;
	size_t i;

	for (int col = 0; col < CTL_COLS; col++) {
		snprintf(titles[col], CTL_LS_CELL_MAX, "%s",
			 ctl_ls_titles[col]);
		width[col] = (int)strlen(titles[col]);
	}
	json_array_foreach(models, i, m) {
		ctl_ls_cells(m, &cells);
		for (int col = 0; ctl_ls_in_table(m) && col < ncols; col++) {
			int w = (int)strlen(cells.text[col]);
			width[col] = w > width[col] ? w : width[col];
		}
	}
	ctl_ls_row(titles, width, ncols);
	json_array_foreach(models, i, m) {
		if (!ctl_ls_in_table(m))
			continue;
		ctl_ls_cells(m, &cells);
		ctl_ls_row(cells.text, width, ncols);
	}
	json_array_foreach(models, i, m) {
		if (!ctl_ls_in_table(m))
			printf("removed %s: %" PRId64 " open handles\n",
			       ctl_json_text_value(m, "key", &t1),
			       ctl_json_int(m, "open_handles", 0));
	}
	json_array_foreach(json_object_get(doc, "invalid"), i, m)
		printf("invalid %s: %s\n", ctl_json_text_value(m, "file", &t1),
		       ctl_json_text_value(m, "error", &t2));
}

static int ctl_ls_print_json(const struct ctl_command *cmd, json_t *doc)
{
	char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (!text) {
		ctl_err(cmd, "out of memory");
		return CTL_EXIT_FAIL;
	}
	printf("%s\n", text);
	free(text);
	return CTL_EXIT_OK;
}

/* Gathers the listing of @path (a store directory or a mount) and prints
 * it as JSON or as a table. */
static int ctl_ls_run(const struct ctl_command *cmd, const char *path,
		      bool as_json)
{
	json_t *doc;
	bool mount;
	int rc = ctl_mount_state(cmd, path, &mount);

	if (rc != CTL_EXIT_OK)
		return rc;
	doc = json_pack("{s:o, s:b, s:[], s:[]}", "path", ctl_json_text(path),
			"mount", mount, "models", "invalid");
	if (!doc) {
		ctl_err(cmd, "out of memory");
		return CTL_EXIT_FAIL;
	}
	rc = mount ? ctl_ls_mount(cmd, path, doc) : ctl_ls_store(cmd, path, doc);
	if (rc == CTL_EXIT_OK &&
	    (!ctl_ls_sort(json_object_get(doc, "models"), ctl_ls_by_key) ||
	     !ctl_ls_sort(json_object_get(doc, "invalid"), ctl_ls_by_file))) {
		ctl_err(cmd, "out of memory");
		rc = CTL_EXIT_FAIL;
	}
	if (rc == CTL_EXIT_OK && as_json)
		rc = ctl_ls_print_json(cmd, doc);
	else if (rc == CTL_EXIT_OK)
		ctl_ls_table(doc, mount);
	json_decref(doc);
	return rc;
}

int ctl_cmd_ls(const struct ctl_command *self, int argc, char **argv)
{
	bool as_json = false;
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", ctl_ls_options, NULL)) !=
	       -1) {
		if (opt != CTL_OPT_JSON)
			return ctl_common_option(self, opt, argv);
		as_json = true;
	}
	if (optind >= argc)
		return ctl_usage_error(self, "missing STORE_DIR or MOUNTPOINT");
	if (optind + 1 < argc)
		return ctl_usage_error(self, "ls takes one STORE_DIR or "
				       "MOUNTPOINT, got %d", argc - optind);
	return ctl_ls_run(self, argv[optind], as_json);
}
