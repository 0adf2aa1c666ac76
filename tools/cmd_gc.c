/*
 * cmd_gc.c - "modelctl gc": remove the temporary files killed writers
 * left in a store directory (mfs_store_gc: only files no live writer
 * holds a flock on).
 */
#include <getopt.h>
#include <stdio.h>

#include "modelfs.h"
#include "modelctl.h"
#include "ctl_store.h"

const char ctl_usage_gc[] =
	"Usage: modelctl gc STORE_DIR\n"
	"\n"
	"Removes the temporary files ('.NAME.tmp.XXXXXX') that writers\n"
	"killed in the middle of a put or pack left in STORE_DIR, and prints\n"
	"the path of each file removed.  A writer holds an exclusive flock on\n"
	"its temporary file while it lives, so files still being written are\n"
	"never removed.  Models and other files are not touched.  'modelctl\n"
	"put' does the same before it publishes.\n"
	"\n"
	"Options:\n"
	"  -h, --help  show this help\n"
	"\n"
	"Exit status: 0 done (also when nothing was removed), 1 a file could\n"
	"not be checked or removed (the others were still removed), or no\n"
	"such store directory, 2 usage error.\n";

static const struct option ctl_gc_options[] = {
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* What the removal callback prints the names under. */
struct ctl_gc_ctx {
	const char *dir;
};

/* mfs_gc_fn: prints each removed file's path on stdout. */
static void ctl_gc_print(void *ctx, const char *name)
{
	const struct ctl_gc_ctx *g = ctx;
	struct ctl_text d, n;

	/* Removed files are writers' temporaries: any name a writer chose. */
	printf("%s/%s\n", ctl_text(&d, g->dir), ctl_text(&n, name));
}

int ctl_cmd_gc(const struct ctl_command *self, int argc, char **argv)
{
	struct ctl_gc_ctx g;
	int opt, rc;

	opterr = 0;
	/* -h is the only option: any option ends the parsing. */
	opt = getopt_long(argc, argv, ":h", ctl_gc_options, NULL);
	if (opt != -1)
		return ctl_common_option(self, opt, argv);
	if (optind >= argc)
		return ctl_usage_error(self, "missing STORE_DIR");
	if (optind + 1 < argc)
		return ctl_usage_error(self, "gc takes one STORE_DIR, got %d",
				       argc - optind);
	g.dir = argv[optind];
	rc = ctl_check_store_dir(self, g.dir);
	if (rc != CTL_EXIT_OK)
		return rc;
	rc = mfs_store_gc(g.dir, NULL, ctl_gc_print, &g);
	if (rc < 0) {
		ctl_err(self, "%s", ctl_lib_error(rc));
		return CTL_EXIT_FAIL;
	}
	return CTL_EXIT_OK;
}
