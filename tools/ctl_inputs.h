/*
 * ctl_inputs.h - what pack and put share: the .npy inputs given as
 * NAME[:DTYPE]=FILE.npy or as a directory, --chunk-size and --metadata.
 */
#ifndef CTL_INPUTS_H
#define CTL_INPUTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modelfs.h"
#include "modelctl.h"

/* One array to store. */
struct ctl_input {
	char *name;       /* array name */
	char *path;       /* the .npy file */
	bool declared;    /* NAME:DTYPE= was given */
	mfs_dtype dtype;  /* the declared dtype if declared */
};

/* The inputs of one command, in the order given (a directory's sorted). */
struct ctl_inputs {
	const struct ctl_command *cmd; /* names the command in messages */
	struct ctl_input *v;
	size_t count, cap;
};

/* Parses --chunk-size: bytes, or a number with a K/M suffix; a power of
 * two within the format's bounds.  CTL_EXIT_OK or CTL_EXIT_USAGE. */
int ctl_parse_chunk_size(const struct ctl_command *cmd, const char *s,
			 uint32_t *out);

/* Adds @n arguments "NAME[:DTYPE]=FILE"; one without '=' is a usage
 * error saying that @alone ("a directory", ...) must be the only input.
 * Reports failures. */
int ctl_inputs_add_args(struct ctl_inputs *ins, int n, char **args,
			const char *alone);

/* Adds every regular, visible *.npy file of @dir in mfs_npy_dir_list's
 * order (bytewise by array name, the file name without .npy); none is an
 * error.  Reports failures. */
int ctl_inputs_scan_dir(struct ctl_inputs *ins, const char *dir);

void ctl_inputs_free(struct ctl_inputs *ins);

/* qsort order of inputs: by array name. */
int ctl_input_cmp(const void *a, const void *b);

/*
 * Opens @in's file and parses its header into @npy, applying a declared
 * dtype (which must have the file's item size).  The descriptor goes to
 * *@fd_out, or is closed if @fd_out is NULL.  Reports failures.
 */
int ctl_input_open(const struct ctl_command *cmd, const struct ctl_input *in,
		   mfs_npy_info *npy, int *fd_out);

/* Reads the --metadata file @path (NULL: *@json = NULL) into a malloc'd
 * *@json of *@len bytes, within the format's size limit; the caller
 * checks it is JSON.  Reports failures. */
int ctl_read_metadata(const struct ctl_command *cmd, const char *path,
		      char **json, size_t *len);

#endif /* CTL_INPUTS_H */
