/*
 * modelctl.c - entry point: the dispatch table of subcommands, the global
 * --help/--version and "help CMD".
 *
 * Exit statuses (also printed by --help): 0 the operation succeeded,
 * 1 the operation failed, 2 usage error (unknown command or option,
 * missing or malformed argument).
 *
 * A new subcommand is one ctl_cmd_NAME handler plus its usage text in a
 * cmd_*.c file and one row in ctl_commands below.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "modelfs.h"
#include "modelctl.h"

static const struct ctl_command ctl_commands[] = {
	{"pack", ctl_cmd_pack, "pack .npy files into a container file",
	 ctl_usage_pack},
	{"inspect", ctl_cmd_inspect, "list the arrays of a container file",
	 ctl_usage_inspect},
	{"verify", ctl_cmd_verify, "check every chunk of container files",
	 ctl_usage_verify},
	{"export", ctl_cmd_export, "write a container's arrays as .npy files",
	 ctl_usage_export},
	{"put", ctl_cmd_put, "publish a model in a store directory",
	 ctl_usage_put},
	{"rm", ctl_cmd_rm, "remove models from a store directory",
	 ctl_usage_rm},
	{"ls", ctl_cmd_ls, "list the models of a store directory or mount",
	 ctl_usage_ls},
	{"holders", ctl_cmd_holders, "list the processes holding a model",
	 ctl_usage_holders},
	{"gc", ctl_cmd_gc, "remove temporary files of killed writers",
	 ctl_usage_gc},
	{"index", ctl_cmd_index, "write the index document of a store "
	 "directory", ctl_usage_index},
	{"prefetch", ctl_cmd_prefetch, "pull a model of a URL store's mount "
	 "into its disk cache", ctl_usage_prefetch},
};

#define CTL_COMMAND_COUNT (sizeof(ctl_commands) / sizeof(ctl_commands[0]))

static const struct ctl_command *ctl_find_command(const char *name)
{
	for (size_t i = 0; i < CTL_COMMAND_COUNT; i++) {
		if (strcmp(ctl_commands[i].name, name) == 0)
			return &ctl_commands[i];
	}
	return NULL;
}

static void ctl_main_usage(FILE *out)
{
	fprintf(out, "Usage: modelctl COMMAND [OPTIONS] [ARGS]\n"
		     "       modelctl help COMMAND | COMMAND --help\n"
		     "       modelctl --help | --version\n\n"
		     "modelctl packs, inspects, verifies and exports modelfs "
		     "container files,\nand manages store directories and "
		     "mounts.\n\nCommands:\n");
	for (size_t i = 0; i < CTL_COMMAND_COUNT; i++)
		fprintf(out, "  %-9s %s\n", ctl_commands[i].name,
			ctl_commands[i].summary);
	fprintf(out, "\nExit status: 0 success, 1 the operation failed, "
		     "2 usage error (unknown\ncommand or option, missing or "
		     "malformed argument).\n");
}

/* "modelctl help [CMD]": the help of the tool or of one command. */
static int ctl_help(int argc, char **argv)
{
	const struct ctl_command *cmd;

	if (argc < 2) {
		ctl_main_usage(stdout);
		return CTL_EXIT_OK;
	}
	if (argc > 2)
		return ctl_usage_error(NULL,
				       "help takes one command name, got %d",
				       argc - 1);
	cmd = ctl_find_command(argv[1]);
	if (!cmd)
		return ctl_usage_error(NULL,
				       "unknown command '%s'", argv[1]);
	fputs(cmd->usage, stdout);
	return CTL_EXIT_OK;
}

/* Dispatches argv[1]: a command, "help", --help or --version. */
static int ctl_main(int argc, char **argv)
{
	const struct ctl_command *cmd;

	if (argc < 2) {
		ctl_main_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		ctl_main_usage(stdout);
		return CTL_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("modelctl %s (libmodelfs %s)\n", MODELFS_VERSION_STRING,
		       mfs_version());
		return CTL_EXIT_OK;
	}
	if (strcmp(argv[1], "help") == 0)
		return ctl_help(argc - 1, argv + 1);
	cmd = ctl_find_command(argv[1]);
	if (!cmd) {
		if (argv[1][0] == '-')
			return ctl_usage_error(NULL,
					       "unknown option '%s'", argv[1]);
		return ctl_usage_error(NULL,
				       "unknown command '%s'", argv[1]);
	}
	return cmd->run(cmd, argc - 1, argv + 1);
}

int main(int argc, char **argv)
{
	int status = ctl_main(argc, argv);

	/* A failed write to stdout (full disk, closed pipe) must not pass for
	 * success in scripts that capture the output. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		ctl_err(NULL, "cannot write the output: %s",
			strerror(errno));
		return CTL_EXIT_FAIL;
	}
	return status;
}
