/*
 * cmd_pack.c - "modelctl pack": stream .npy files into a container.
 *
 * Every input is checked (name, duplicates, npy header, declared dtype,
 * metadata) before the writer is created, so most refusals cost nothing;
 * anything failing later aborts the writer, which removes its temporary
 * file: OUT.mfs is only ever replaced by a complete container.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl_inputs.h"

const char ctl_usage_pack[] =
	"Usage: modelctl pack OUT.mfs [OPTIONS] NAME[:DTYPE]=FILE.npy ...\n"
	"       modelctl pack OUT.mfs [OPTIONS] DIR\n"
	"\n"
	"Packs .npy files (NPY 1.0/2.0/3.0, C or Fortran order) into the\n"
	"container OUT.mfs, streaming the data.  OUT.mfs is written to a\n"
	"temporary file and renamed into place: a failed pack leaves any\n"
	"existing OUT.mfs untouched and nothing new behind.\n"
	"\n"
	"NAME=FILE.npy stores FILE.npy as array NAME (A-Z a-z 0-9 . _ -, not\n"
	"starting with '.').  NAME:DTYPE=FILE.npy declares the array's true\n"
	"dtype when it has the same item size as the file's, e.g.\n"
	"w:bfloat16=w.npy for bfloat16 bits that NumPy saved as uint16.\n"
	"A DIR packs every *.npy file in it (not hidden ones), sorted by\n"
	"name; the array name is the file name without .npy.\n"
	"\n"
	"Options:\n"
	"  --lz4                 compress chunks with LZ4 (default: raw)\n"
	"  --chunk-size BYTES    chunk size, a power of two from 4K to 64M;\n"
	"                        K and M (or KiB, MiB) multiply by 1024 and\n"
	"                        1024*1024 (default 256K)\n"
	"  --metadata FILE.json  the model's metadata, a JSON object\n"
	"                        (default {})\n"
	"  -h, --help            show this help\n"
	"\n"
	"On a terminal, packing more than 64 MiB shows progress on stderr.\n"
	"Exit status: 0 packed, 1 failed, 2 usage error (unknown option,\n"
	"missing argument, malformed --chunk-size).\n";

/* Inputs larger than this show a progress line on a terminal. */
#define CTL_PROGRESS_MIN_BYTES (64ull << 20)
/* Least time between two updates of the progress line. */
#define CTL_PROGRESS_INTERVAL_NS 200000000ll
#define CTL_NS_PER_S 1000000000ll
#define CTL_MIB (1024.0 * 1024.0)

enum { CTL_OPT_LZ4 = CTL_OPT_LONG_ONLY, CTL_OPT_CHUNK, CTL_OPT_METADATA };

static const struct option ctl_pack_options[] = {
	{"lz4", no_argument, NULL, CTL_OPT_LZ4},
	{"chunk-size", required_argument, NULL, CTL_OPT_CHUNK},
	{"metadata", required_argument, NULL, CTL_OPT_METADATA},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* The carriage-return progress line of a large pack on a terminal. */
struct ctl_progress {
	bool enabled;
	uint64_t done, total; /* bytes of array data */
	struct timespec start, last;
};

struct ctl_pack {
	const struct ctl_command *cmd;
	const char *out;
	const char *metadata_path; /* NULL: the writer's default "{}" */
	bool lz4;
	uint32_t chunk_size; /* 0: the library default */
	struct ctl_inputs in;
	struct ctl_progress progress;
};

/* What the writer's pull callback reads from: one .npy file's data. */
struct ctl_source {
	int fd;
	uint64_t off, left; /* next file offset, bytes still to give */
	int err;            /* errno of a failed read, for the message */
	struct ctl_progress *progress;
};

/* ---------------------------------------------------------------- */
/* Options                                                           */
/* ---------------------------------------------------------------- */

/* Parses the options; returns -1 to go on, else the exit status. */
static int ctl_pack_options_parse(struct ctl_pack *p, int argc, char **argv)
{
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", ctl_pack_options,
				  NULL)) != -1) {
		switch (opt) {
		case CTL_OPT_LZ4:
			p->lz4 = true;
			break;
		case CTL_OPT_CHUNK:
			rc = ctl_parse_chunk_size(p->cmd, optarg,
						  &p->chunk_size);
			if (rc != CTL_EXIT_OK)
				return rc;
			break;
		case CTL_OPT_METADATA:
			p->metadata_path = optarg;
			break;
		default:
			return ctl_common_option(p->cmd, opt, argv);
		}
	}
	return -1;
}

/* ---------------------------------------------------------------- */
/* Inputs                                                            */
/* ---------------------------------------------------------------- */

/* Turns the positional arguments after OUT.mfs into inputs. */
static int ctl_pack_collect(struct ctl_pack *p, int n, char **args)
{
	struct stat st;

	if (n == 1 && !strchr(args[0], '=')) {
		if (stat(args[0], &st) == 0 && !S_ISDIR(st.st_mode))
			return ctl_usage_error(p->cmd,
					       "'%s' is not a directory; give "
					       "files as NAME=FILE.npy",
					       args[0]);
		return ctl_inputs_scan_dir(&p->in, args[0]);
	}
	return ctl_inputs_add_args(&p->in, n, args, "a directory");
}

/* Refuses bad and duplicate array names (the writer would too, but only
 * after streaming the arrays before the offending one). */
static int ctl_pack_check_names(struct ctl_pack *p)
{
	struct ctl_input *sorted;
	int rc = CTL_EXIT_OK;

	for (size_t i = 0; i < p->in.count; i++) {
		int err = mfs_check_array_name(p->in.v[i].name);
		if (err < 0) {
			ctl_err(p->cmd, "'%s': %s", p->in.v[i].path,
				ctl_lib_error(err));
			return CTL_EXIT_FAIL;
		}
	}
	/* Sort a copy: the container keeps the command-line order. */
	sorted = malloc(p->in.count * sizeof(*sorted));
	if (!sorted) {
		ctl_err(p->cmd, "out of memory");
		return CTL_EXIT_FAIL;
	}
	memcpy(sorted, p->in.v, p->in.count * sizeof(*sorted));
	qsort(sorted, p->in.count, sizeof(*sorted), ctl_input_cmp);
	for (size_t i = 1; i < p->in.count; i++) {
		if (strcmp(sorted[i - 1].name, sorted[i].name) == 0) {
			ctl_err(p->cmd, "array name '%s' is given twice "
				"('%s' and '%s')", sorted[i].name,
				sorted[i - 1].path, sorted[i].path);
			rc = CTL_EXIT_FAIL;
			break;
		}
	}
	free(sorted);
	return rc;
}

/* Checks every input's file before anything is written; sums the bytes. */
static int ctl_pack_check_inputs(struct ctl_pack *p)
{
	for (size_t i = 0; i < p->in.count; i++) {
		struct ctl_input *in = &p->in.v[i];
		mfs_npy_info npy;
		int rc = ctl_input_open(p->cmd, in, &npy, NULL);

		if (rc != CTL_EXIT_OK)
			return rc;
		p->progress.total += npy.data_length;
	}
	return CTL_EXIT_OK;
}

/* Reads and checks --metadata into *@json (NULL if not given). */
static int ctl_pack_load_metadata(struct ctl_pack *p, char **json,
				  size_t *len)
{
	int rc = ctl_read_metadata(p->cmd, p->metadata_path, json, len);

	if (rc != CTL_EXIT_OK || !*json)
		return rc;
	rc = mfs_check_metadata(*json, *len);
	if (rc < 0) {
		ctl_err(p->cmd, "metadata file '%s': %s", p->metadata_path,
			ctl_lib_error(rc));
		free(*json);
		*json = NULL;
		return CTL_EXIT_FAIL;
	}
	return CTL_EXIT_OK;
}

/* ---------------------------------------------------------------- */
/* Progress                                                          */
/* ---------------------------------------------------------------- */

static int64_t ctl_elapsed_ns(const struct timespec *a,
			      const struct timespec *b)
{
	return (int64_t)(b->tv_sec - a->tv_sec) * CTL_NS_PER_S +
	       (b->tv_nsec - a->tv_nsec);
}

static void ctl_progress_start(struct ctl_progress *pr)
{
	pr->enabled = pr->total > CTL_PROGRESS_MIN_BYTES &&
		      isatty(STDERR_FILENO);
	clock_gettime(CLOCK_MONOTONIC, &pr->start);
	pr->last = pr->start;
}

/* Redraws the line: at most every CTL_PROGRESS_INTERVAL_NS unless @final. */
static void ctl_progress_draw(struct ctl_progress *pr, bool final)
{
	struct timespec now;
	double secs, rate;

	if (!pr->enabled)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!final && ctl_elapsed_ns(&pr->last, &now) < CTL_PROGRESS_INTERVAL_NS)
		return;
	pr->last = now;
	secs = (double)ctl_elapsed_ns(&pr->start, &now) / CTL_NS_PER_S;
	rate = secs > 0 ? (double)pr->done / CTL_MIB / secs : 0.0;
	/* Fixed-width numbers so a shorter line never leaves old digits. */
	fprintf(stderr, "\rmodelctl: pack: %10.1f / %.1f MiB, %8.1f MiB/s%s",
		(double)pr->done / CTL_MIB, (double)pr->total / CTL_MIB, rate,
		final ? "\n" : "");
	fflush(stderr);
}

/* mfs_source_fn: the next piece of one .npy file's data. */
static ssize_t ctl_pack_pull(void *ctx, void *buf, size_t len)
{
	struct ctl_source *s = ctx;
	ssize_t n;

	if (len > s->left)
		len = (size_t)s->left;
	do
		n = pread(s->fd, buf, len, (off_t)s->off);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		s->err = errno;
		return -s->err;
	}
	s->off += (uint64_t)n;
	s->left -= (uint64_t)n;
	s->progress->done += (uint64_t)n;
	ctl_progress_draw(s->progress, false);
	return n;
}

/* ---------------------------------------------------------------- */
/* Writing                                                           */
/* ---------------------------------------------------------------- */

/* Streams one input into the writer: straight from the descriptor, or
 * through ctl_pack_pull when a progress line needs the byte counts. */
static int ctl_pack_stream(struct ctl_pack *p, mfs_writer *w,
			   struct ctl_input *in)
{
	struct ctl_source src = {.fd = -1, .progress = &p->progress};
	mfs_array_spec spec = {0};
	mfs_npy_info npy;
	int rc;

	rc = ctl_input_open(p->cmd, in, &npy, &src.fd);
	if (rc != CTL_EXIT_OK)
		return rc;
	spec.name = in->name;
	spec.dtype = npy.dtype;
	spec.ndim = npy.ndim;
	memcpy(spec.shape, npy.shape, sizeof(spec.shape));
	spec.order = npy.order;
	spec.codec = p->lz4 ? MFS_CODEC_LZ4 : MFS_CODEC_NONE;
	spec.chunk_size = p->chunk_size;
	if (p->progress.enabled) {
		src.off = npy.data_offset;
		src.left = npy.data_length;
		rc = mfs_writer_add_array(w, &spec, ctl_pack_pull, &src);
	} else {
		rc = mfs_writer_add_array_fd(w, &spec, src.fd,
					     (off_t)npy.data_offset);
	}
	close(src.fd);
	if (rc < 0) {
		ctl_err(p->cmd, "array '%s' from '%s': %s", in->name,
			in->path, src.err ? strerror(src.err) :
			ctl_lib_error(rc));
		return CTL_EXIT_FAIL;
	}
	return CTL_EXIT_OK;
}

/* Creates the writer, streams every array and commits. */
static int ctl_pack_write(struct ctl_pack *p, const char *json, size_t len)
{
	mfs_writer *w;
	int rc;

	rc = mfs_writer_create(&w, p->out);
	if (rc < 0) {
		ctl_err(p->cmd, "cannot create '%s': %s", p->out,
			ctl_lib_error(rc));
		return CTL_EXIT_FAIL;
	}
	if (json) {
		rc = mfs_writer_set_metadata(w, json, len);
		if (rc < 0) {
			ctl_err(p->cmd, "metadata file '%s': %s",
				p->metadata_path, ctl_lib_error(rc));
			goto abort;
		}
	}
	ctl_progress_start(&p->progress);
	for (size_t i = 0; i < p->in.count; i++) {
		if (ctl_pack_stream(p, w, &p->in.v[i]) != CTL_EXIT_OK)
			goto abort;
	}
	ctl_progress_draw(&p->progress, true);
	rc = mfs_writer_commit(w);
	if (rc < 0) {
		ctl_err(p->cmd, "cannot write '%s': %s", p->out,
			ctl_lib_error(rc));
		return CTL_EXIT_FAIL;
	}
	return CTL_EXIT_OK;

abort:
	if (p->progress.enabled)
		fputc('\n', stderr);
	mfs_writer_abort(w);
	return CTL_EXIT_FAIL;
}

int ctl_cmd_pack(const struct ctl_command *self, int argc, char **argv)
{
	struct ctl_pack p = {.cmd = self, .in = {.cmd = self}};
	char *json = NULL;
	size_t json_len = 0;
	int rc;

	rc = ctl_pack_options_parse(&p, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind >= argc)
		return ctl_usage_error(self, "missing OUT.mfs");
	if (optind + 1 >= argc)
		return ctl_usage_error(self, "missing inputs (NAME=FILE.npy "
				       "... or a directory)");
	p.out = argv[optind];
	rc = ctl_pack_collect(&p, argc - optind - 1, argv + optind + 1);
	if (rc == CTL_EXIT_OK)
		rc = ctl_pack_check_names(&p);
	if (rc == CTL_EXIT_OK)
		rc = ctl_pack_check_inputs(&p);
	if (rc == CTL_EXIT_OK)
		rc = ctl_pack_load_metadata(&p, &json, &json_len);
	if (rc == CTL_EXIT_OK)
		rc = ctl_pack_write(&p, json, json_len);
	free(json);
	ctl_inputs_free(&p.in);
	return rc;
}
