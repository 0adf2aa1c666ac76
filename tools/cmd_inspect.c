/*
 * cmd_inspect.c - "modelctl inspect": a container's arrays as a table, or
 * its manifest as JSON.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "modelfs.h"
#include "modelctl.h"

const char ctl_usage_inspect[] =
	"Usage: modelctl inspect [--json] FILE.mfs\n"
	"\n"
	"Opens and validates FILE.mfs and prints a header line (file, size,\n"
	"array count, metadata size) and one row per array: name, dtype,\n"
	"shape, order (C or F), codec, raw size and stored size in bytes,\n"
	"and the compression ratio raw/stored ('-' for an empty array).\n"
	"Chunk data is not read: 'modelctl verify' checks it.\n"
	"\n"
	"Options:\n"
	"  --json      print the manifest the mount serves as manifest.json\n"
	"              (its key is the file name without .mfs)\n"
	"  -h, --help  show this help\n"
	"\n"
	"Exit status: 0 shown, 1 the file cannot be opened or is malformed,\n"
	"2 usage error.\n";

enum { CTL_OPT_JSON = CTL_OPT_LONG_ONLY };

static const struct option ctl_inspect_options[] = {
	{"json", no_argument, NULL, CTL_OPT_JSON},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* "(" + per dimension a number and "," + ")" + NUL. */
#define CTL_SHAPE_CHARS (MFS_MAX_NDIM * CTL_U64_CHARS + 3)

/* The table's columns in print order. */
enum {
	CTL_COL_NAME,
	CTL_COL_DTYPE,
	CTL_COL_SHAPE,
	CTL_COL_ORDER,
	CTL_COL_CODEC,
	CTL_COL_RAW,
	CTL_COL_STORED,
	CTL_COL_RATIO,
	CTL_COL_COUNT,
};

static const char *const ctl_col_titles[CTL_COL_COUNT] = {
	"ARRAY", "DTYPE", "SHAPE", "ORDER", "CODEC", "RAW", "STORED", "RATIO",
};

/* Numbers read best right-aligned. */
static const bool ctl_col_right[CTL_COL_COUNT] = {
	[CTL_COL_RAW] = true,
	[CTL_COL_STORED] = true,
	[CTL_COL_RATIO] = true,
};

/* One formatted row; cells point into the buffers or static strings. */
struct ctl_row {
	const char *cell[CTL_COL_COUNT];
	char shape[CTL_SHAPE_CHARS];
	char raw[CTL_U64_CHARS], stored[CTL_U64_CHARS], ratio[CTL_U64_CHARS];
};

/* NumPy's spelling of a shape without spaces: "()", "(5,)", "(3,4)". */
static void ctl_format_shape(const mfs_array_info *a, char *out, size_t len)
{
	size_t n = (size_t)snprintf(out, len, "(");

	for (uint32_t i = 0; i < a->ndim && n < len; i++)
		n += (size_t)snprintf(out + n, len - n, "%s%" PRIu64,
				      i ? "," : "", a->shape[i]);
	if (n < len)
		snprintf(out + n, len - n, "%s)", a->ndim == 1 ? "," : "");
}

static void ctl_format_row(const mfs_array_info *a, struct ctl_row *r)
{
	ctl_format_shape(a, r->shape, sizeof(r->shape));
	snprintf(r->raw, sizeof(r->raw), "%" PRIu64, a->raw_length);
	snprintf(r->stored, sizeof(r->stored), "%" PRIu64, a->stored_length);
	if (a->stored_length == 0)
		snprintf(r->ratio, sizeof(r->ratio), "-");
	else
		snprintf(r->ratio, sizeof(r->ratio), "%.2f",
			 (double)a->raw_length / (double)a->stored_length);
	r->cell[CTL_COL_NAME] = a->name;
	r->cell[CTL_COL_DTYPE] = mfs_dtype_name(a->dtype);
	r->cell[CTL_COL_SHAPE] = r->shape;
	r->cell[CTL_COL_ORDER] = a->order == MFS_ORDER_F ? "F" : "C";
	r->cell[CTL_COL_CODEC] = mfs_codec_name(a->codec);
	r->cell[CTL_COL_RAW] = r->raw;
	r->cell[CTL_COL_STORED] = r->stored;
	r->cell[CTL_COL_RATIO] = r->ratio;
}

static void ctl_print_row(const char *const cell[], const int width[])
{
	for (int c = 0; c < CTL_COL_COUNT; c++) {
		const char *sep = c + 1 < CTL_COL_COUNT ? "  " : "\n";

		if (ctl_col_right[c])
			printf("%*s%s", width[c], cell[c], sep);
		else if (c + 1 == CTL_COL_COUNT)
			printf("%s%s", cell[c], sep);
		else
			printf("%-*s%s", width[c], cell[c], sep);
	}
}

/* Widest cell of each column, titles included. */
static int ctl_table_widths(const mfs_container *c, int width[])
{
	size_t n = mfs_container_array_count(c);
	struct ctl_row row;
	mfs_array_info a;

	for (int k = 0; k < CTL_COL_COUNT; k++)
		width[k] = (int)strlen(ctl_col_titles[k]);
	for (size_t i = 0; i < n; i++) {
		int rc = mfs_container_array(c, i, &a);
		if (rc < 0)
			return rc;
		ctl_format_row(&a, &row);
		for (int k = 0; k < CTL_COL_COUNT; k++) {
			int w = (int)strlen(row.cell[k]);
			if (w > width[k])
				width[k] = w;
		}
	}
	return 0;
}

static int ctl_print_table(const struct ctl_command *cmd,
			   const mfs_container *c)
{
	size_t n = mfs_container_array_count(c), meta_len = 0;
	int width[CTL_COL_COUNT];
	struct ctl_text label;
	struct ctl_row row;
	mfs_array_info a;
	int rc;

	mfs_container_metadata(c, &meta_len);
	rc = ctl_table_widths(c, width);
	if (rc < 0)
		goto fail;
	printf("%s: %" PRIu64 " bytes, %zu arrays, metadata %zu bytes\n",
	       ctl_text(&label, mfs_container_label(c)),
	       mfs_container_file_size(c), n, meta_len);
	ctl_print_row(ctl_col_titles, width);
	for (size_t i = 0; i < n; i++) {
		rc = mfs_container_array(c, i, &a);
		if (rc < 0)
			goto fail;
		ctl_format_row(&a, &row);
		ctl_print_row(row.cell, width);
	}
	return CTL_EXIT_OK;

fail:
	ctl_err_about(cmd, mfs_container_label(c), ctl_lib_error(rc));
	return CTL_EXIT_FAIL;
}

static int ctl_print_manifest(const struct ctl_command *cmd,
			      const mfs_container *c, const char *path)
{
	char *key = ctl_stem(path, MFS_CONTAINER_SUFFIX);
	char *json = NULL;
	size_t len = 0;
	int rc = -ENOMEM;

	if (key)
		rc = mfs_container_manifest(c, key, &json, &len);
	free(key);
	if (rc < 0) {
		ctl_err_about(cmd, path, ctl_lib_error(rc));
		return CTL_EXIT_FAIL;
	}
	fwrite(json, 1, len, stdout);
	if (len == 0 || json[len - 1] != '\n')
		putchar('\n');
	free(json);
	return CTL_EXIT_OK;
}

int ctl_cmd_inspect(const struct ctl_command *self, int argc, char **argv)
{
	mfs_container *c;
	bool json = false;
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", ctl_inspect_options,
				  NULL)) != -1) {
		if (opt == CTL_OPT_JSON)
			json = true;
		else
			return ctl_common_option(self, opt, argv);
	}
	if (optind >= argc)
		return ctl_usage_error(self, "missing FILE.mfs");
	if (optind + 1 < argc)
		return ctl_usage_error(self, "inspect takes one FILE.mfs, got "
				       "%d arguments", argc - optind);
	rc = mfs_container_open(&c, argv[optind]);
	if (rc < 0) {
		ctl_err_about(self, argv[optind], ctl_lib_error(rc));
		return CTL_EXIT_FAIL;
	}
	if (json)
		rc = ctl_print_manifest(self, c, argv[optind]);
	else
		rc = ctl_print_table(self, c);
	mfs_container_close(c);
	return rc;
}
