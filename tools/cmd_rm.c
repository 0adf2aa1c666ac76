/*
 * cmd_rm.c - "modelctl rm": remove models from a store directory through
 * the library's store API (unlink, then fsync of the directory).
 */
#include <getopt.h>
#include <stdio.h>

#include "modelfs.h"
#include "modelctl.h"
#include "ctl_store.h"

const char ctl_usage_rm[] =
	"Usage: modelctl rm STORE_DIR KEY ...\n"
	"\n"
	"Removes the models KEY (the files STORE_DIR/KEY.mfs) from the store\n"
	"directory.  A daemon serving STORE_DIR keeps a removed model\n"
	"readable for the processes that hold it until the last one lets go.\n"
	"Every KEY is checked before anything is removed.\n"
	"\n"
	"Options:\n"
	"  -h, --help  show this help\n"
	"\n"
	"Exit status: 0 every model removed, 1 a model could not be removed\n"
	"(no such model, no such store directory, I/O error), 2 usage error\n"
	"(unknown option, missing argument, invalid KEY).\n";

static const struct option ctl_rm_options[] = {
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* Refuses malformed keys (usage error) before anything is removed. */
static int ctl_rm_check_keys(const struct ctl_command *cmd, int n,
			     char **keys)
{
	for (int i = 0; i < n; i++) {
		int rc = mfs_check_key(keys[i]);

		if (rc < 0)
			return ctl_usage_error(cmd, "invalid key '%s': %s",
					       keys[i], ctl_lib_error(rc));
	}
	return CTL_EXIT_OK;
}

/* Removes every key it can; CTL_EXIT_FAIL if one could not be. */
static int ctl_rm_keys(const struct ctl_command *cmd, mfs_store *s, int n,
		       char **keys)
{
	int status = CTL_EXIT_OK;

	for (int i = 0; i < n; i++) {
		int rc = mfs_store_remove(s, keys[i]);

		if (rc < 0) {
			ctl_err(cmd, "%s", ctl_lib_error(rc));
			status = CTL_EXIT_FAIL;
		}
	}
	return status;
}

int ctl_cmd_rm(const struct ctl_command *self, int argc, char **argv)
{
	mfs_store *s;
	int opt, rc;

	opterr = 0;
	/* -h is the only option: any option ends the parsing. */
	opt = getopt_long(argc, argv, ":h", ctl_rm_options, NULL);
	if (opt != -1)
		return ctl_common_option(self, opt, argv);
	if (optind >= argc)
		return ctl_usage_error(self, "missing STORE_DIR");
	if (optind + 1 >= argc)
		return ctl_usage_error(self, "missing KEY");
	rc = ctl_rm_check_keys(self, argc - optind - 1, argv + optind + 1);
	if (rc == CTL_EXIT_OK)
		rc = ctl_check_store_dir(self, argv[optind]);
	if (rc != CTL_EXIT_OK)
		return rc;
	rc = mfs_store_open_dir(&s, argv[optind]);
	if (rc < 0) {
		ctl_err(self, "%s", ctl_lib_error(rc));
		return CTL_EXIT_FAIL;
	}
	rc = ctl_rm_keys(self, s, argc - optind - 1, argv + optind + 1);
	/* Nothing was put through @s: the release removes nothing. */
	mfs_store_release(s);
	return rc;
}
