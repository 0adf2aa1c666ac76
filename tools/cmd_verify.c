/*
 * cmd_verify.c - "modelctl verify": read, checksum and decode every chunk
 * of container files, one report line per problem.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "modelfs.h"
#include "modelctl.h"

const char ctl_usage_verify[] =
	"Usage: modelctl verify FILE.mfs ...\n"
	"\n"
	"Validates each container's structure, then reads every chunk of\n"
	"every array, checks its XXH3-64 checksum and decodes it.  Prints on\n"
	"stdout one line per problem, naming the file, the array and the\n"
	"chunk:\n"
	"  m.mfs: array 'emb' chunk 3: checksum ...\n"
	"a container that cannot be opened is one line with the reason, and\n"
	"each file ends with a summary line:\n"
	"  m.mfs: ok, 12 arrays, 345 chunks\n"
	"\n"
	"Options:\n"
	"  -h, --help  show this help\n"
	"\n"
	"Exit status: 0 every file is good, 1 a problem was found, 2 usage\n"
	"error.\n";

static const struct option ctl_verify_options[] = {
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* What the per-chunk callback needs to name the chunk. */
struct ctl_verify_ctx {
	const mfs_container *c;
	const char *label; /* the path escaped, as the library names it */
};

/* Advances *@p past @lit if the text starts with it. */
static bool ctl_skip(const char **p, const char *lit)
{
	size_t n = strlen(lit);

	if (strncmp(*p, lit, n) != 0)
		return false;
	*p += n;
	return true;
}

/*
 * The library's chunk messages already begin "LABEL: array 'NAME' chunk K";
 * returns what follows that (separators skipped) so the report line names
 * the chunk once, or the whole message if it is worded otherwise.
 */
static const char *ctl_chunk_detail(const char *msg, const char *label,
				    const char *name, uint64_t chunk)
{
	char num[CTL_U64_CHARS];
	const char *p = msg;

	snprintf(num, sizeof(num), "%" PRIu64, chunk);
	if (!ctl_skip(&p, label) || !ctl_skip(&p, ": array '") ||
	    !ctl_skip(&p, name) || !ctl_skip(&p, "' chunk ") ||
	    !ctl_skip(&p, num) || (*p != ':' && *p != ' '))
		return msg;
	p += strspn(p, ": ");
	return *p ? p : msg;
}

/* mfs_verify_fn: one report line per bad chunk. */
static void ctl_verify_report(void *ctx, size_t array, uint64_t chunk,
			      int err, const char *message)
{
	struct ctl_verify_ctx *v = ctx;
	/* Copied first: the message may live in the library's error buffer,
	 * which the next library call may reuse. */
	char *msg = strdup(message && *message ? message : strerror(-err));
	const char *name = "?";
	mfs_array_info a;

	if (mfs_container_array(v->c, array, &a) == 0)
		name = a.name;
	printf("%s: array '%s' chunk %" PRIu64 ": %s\n", v->label, name, chunk,
	       msg ? ctl_chunk_detail(msg, v->label, name, chunk) :
		     strerror(-err));
	free(msg);
}

/* Sum of the chunk counts of every array. */
static uint64_t ctl_total_chunks(const mfs_container *c)
{
	uint64_t total = 0;
	mfs_array_info a;

	for (size_t i = 0; i < mfs_container_array_count(c); i++) {
		if (mfs_container_array(c, i, &a) == 0)
			total += a.chunk_count;
	}
	return total;
}

/* Verifies one file and prints its lines; true if it is good. */
static bool ctl_verify_file(const char *path)
{
	struct ctl_text label;
	struct ctl_verify_ctx v = {.label = ctl_text(&label, path)};
	mfs_container *c;
	uint64_t chunks;
	int64_t bad;
	int rc;

	rc = mfs_container_open(&c, path);
	if (rc < 0) {
		ctl_print_about(stdout, path, ctl_lib_error(rc));
		return false;
	}
	v.c = c;
	chunks = ctl_total_chunks(c);
	bad = mfs_container_verify(c, ctl_verify_report, &v);
	if (bad < 0)
		ctl_print_about(stdout, path, ctl_lib_error((int)bad));
	else if (bad == 0)
		printf("%s: ok, %zu arrays, %" PRIu64 " chunks\n", v.label,
		       mfs_container_array_count(c), chunks);
	else
		printf("%s: FAILED, %" PRId64 " of %" PRIu64 " chunks bad\n",
		       v.label, bad, chunks);
	mfs_container_close(c);
	return bad == 0;
}

int ctl_cmd_verify(const struct ctl_command *self, int argc, char **argv)
{
	int opt, failed = 0;

	opterr = 0;
	/* --help is the only option: any option ends the command. */
	opt = getopt_long(argc, argv, ":h", ctl_verify_options, NULL);
	if (opt != -1)
		return ctl_common_option(self, opt, argv);
	if (optind >= argc)
		return ctl_usage_error(self, "missing FILE.mfs");
	for (int i = optind; i < argc; i++) {
		if (!ctl_verify_file(argv[i]))
			failed++;
	}
	if (failed) {
		fflush(stdout);
		ctl_err(self, "%d of %d files failed verification", failed,
			argc - optind);
		return CTL_EXIT_FAIL;
	}
	return CTL_EXIT_OK;
}
