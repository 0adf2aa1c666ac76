/*
 * cmd_export.c - "modelctl export": a container's arrays as .npy files
 * and its metadata as metadata.json.
 *
 * Each file is written under a hidden temporary name in DIR and renamed
 * when complete, so DIR never holds a partial NAME.npy; arrays are copied
 * one chunk at a time, so memory use is one chunk whatever the array size.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "modelfs.h"
#include "modelctl.h"
#include "ctl_outfile.h"

const char ctl_usage_export[] =
	"Usage: modelctl export FILE.mfs DIR\n"
	"\n"
	"Writes DIR/NAME.npy for every array of FILE.mfs (NPY 1.0 with a\n"
	"4096-byte header, or NumPy's compact one for an array with no\n"
	"elements, as the mount serves them; bfloat16 arrays are written\n"
	"as '<u2') and DIR/metadata.json, the metadata verbatim.\n"
	"DIR is created if missing; files in it with these names are\n"
	"replaced.  Every chunk's checksum is checked on the way.\n"
	"\n"
	"Options:\n"
	"  -h, --help  show this help\n"
	"\n"
	"Exit status: 0 exported, 1 failed, 2 usage error.\n";

static const struct option ctl_export_options[] = {
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

struct ctl_export {
	const struct ctl_command *cmd;
	const mfs_container *c;
	const char *dir;
	mode_t file_mode; /* ctl_file_mode(), asked once */
};

/* Creates DIR unless it is already a directory. */
static int ctl_export_mkdir(struct ctl_export *e)
{
	struct stat st;

	if (mkdir(e->dir, CTL_DIR_MODE) == 0)
		return CTL_EXIT_OK;
	if (errno == EEXIST && stat(e->dir, &st) == 0 && S_ISDIR(st.st_mode))
		return CTL_EXIT_OK;
	if (errno == EEXIST)
		errno = ENOTDIR;
	ctl_err(e->cmd, "cannot create directory '%s': %s", e->dir,
		strerror(errno));
	return CTL_EXIT_FAIL;
}

/* Copies array @index chunk by chunk after its NPY header. */
static int ctl_export_data(struct ctl_export *e, size_t index,
			   const mfs_array_info *a, struct ctl_out_file *f)
{
	char header[MFS_NPY_HEADER_SIZE];
	void *buf = NULL;
	int rc;

	rc = mfs_npy_header(a->dtype, a->ndim, a->shape, a->order, header,
			    sizeof(header));
	if (rc < 0) {
		ctl_err(e->cmd, "array '%s': %s", a->name, ctl_lib_error(rc));
		return CTL_EXIT_FAIL;
	}
	if (ctl_out_write(f, header, (size_t)rc) != CTL_EXIT_OK)
		return CTL_EXIT_FAIL;
	if (a->chunk_count > 0) {
		buf = malloc(a->chunk_size);
		if (!buf) {
			ctl_err(e->cmd, "out of memory for a %u-byte chunk",
				a->chunk_size);
			return CTL_EXIT_FAIL;
		}
	}
	rc = CTL_EXIT_OK;
	for (uint64_t k = 0; k < a->chunk_count && rc == CTL_EXIT_OK; k++) {
		ssize_t n = mfs_container_read_chunk(e->c, index, k, buf,
						     a->chunk_size);
		if (n < 0) {
			ctl_err_about(e->cmd, mfs_container_label(e->c),
				      ctl_lib_error((int)n));
			rc = CTL_EXIT_FAIL;
		} else {
			rc = ctl_out_write(f, buf, (size_t)n);
		}
	}
	free(buf);
	return rc;
}

static int ctl_export_array(struct ctl_export *e, size_t index)
{
	struct ctl_out_file f;
	mfs_array_info a;
	char *file;
	int rc;

	rc = mfs_container_array(e->c, index, &a);
	if (rc < 0) {
		ctl_err_about(e->cmd, mfs_container_label(e->c),
			      ctl_lib_error(rc));
		return CTL_EXIT_FAIL;
	}
	if (asprintf(&file, "%s" MFS_NPY_SUFFIX, a.name) < 0) {
		ctl_err(e->cmd, "out of memory");
		return CTL_EXIT_FAIL;
	}
	rc = ctl_out_open(e->cmd, e->dir, file, &f);
	free(file);
	if (rc != CTL_EXIT_OK)
		return rc;
	if (ctl_export_data(e, index, &a, &f) != CTL_EXIT_OK) {
		ctl_out_abort(&f);
		return CTL_EXIT_FAIL;
	}
	return ctl_out_commit(&f, e->file_mode);
}

static int ctl_export_metadata(struct ctl_export *e)
{
	struct ctl_out_file f;
	size_t len = 0;
	const char *json = mfs_container_metadata(e->c, &len);

	if (ctl_out_open(e->cmd, e->dir, MFS_METADATA_FILE, &f) != CTL_EXIT_OK)
		return CTL_EXIT_FAIL;
	if (ctl_out_write(&f, json, len) != CTL_EXIT_OK) {
		ctl_out_abort(&f);
		return CTL_EXIT_FAIL;
	}
	return ctl_out_commit(&f, e->file_mode);
}

static int ctl_export_all(struct ctl_export *e)
{
	size_t n = mfs_container_array_count(e->c);
	int rc = ctl_export_mkdir(e);

	for (size_t i = 0; i < n && rc == CTL_EXIT_OK; i++)
		rc = ctl_export_array(e, i);
	if (rc == CTL_EXIT_OK)
		rc = ctl_export_metadata(e);
	return rc;
}

int ctl_cmd_export(const struct ctl_command *self, int argc, char **argv)
{
	struct ctl_export e = {.cmd = self};
	mfs_container *c;
	int opt, rc;

	opterr = 0;
	/* --help is the only option: any option ends the command. */
	opt = getopt_long(argc, argv, ":h", ctl_export_options, NULL);
	if (opt != -1)
		return ctl_common_option(self, opt, argv);
	if (argc - optind < 2)
		return ctl_usage_error(self, "missing %s",
				       argc == optind ? "FILE.mfs and DIR" :
							"DIR");
	if (argc - optind > 2)
		return ctl_usage_error(self, "export takes FILE.mfs and DIR, "
				       "got %d arguments", argc - optind);
	rc = mfs_container_open(&c, argv[optind]);
	if (rc < 0) {
		ctl_err_about(self, argv[optind], ctl_lib_error(rc));
		return CTL_EXIT_FAIL;
	}
	e.c = c;
	e.dir = argv[optind + 1];
	e.file_mode = ctl_file_mode();
	rc = ctl_export_all(&e);
	mfs_container_close(c);
	return rc;
}
