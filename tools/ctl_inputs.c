/*
 * ctl_inputs.c - the .npy inputs, --chunk-size and --metadata of pack and
 * put.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl_inputs.h"

#define CTL_KIB_SHIFT 10
#define CTL_MIB_SHIFT 20
/* First capacity of the input list; it doubles from there. */
#define CTL_INPUTS_INITIAL 16u

/* Multiplier of a --chunk-size suffix, 0 if @s is not one. */
static uint64_t ctl_size_suffix(const char *s)
{
	if (*s == '\0')
		return 1;
	if (strcasecmp(s, "K") == 0 || strcasecmp(s, "KiB") == 0)
		return 1ull << CTL_KIB_SHIFT;
	if (strcasecmp(s, "M") == 0 || strcasecmp(s, "MiB") == 0)
		return 1ull << CTL_MIB_SHIFT;
	return 0;
}

int ctl_parse_chunk_size(const struct ctl_command *cmd, const char *s,
			 uint32_t *out)
{
	unsigned long long n;
	uint64_t mult, v;
	char *end;

	errno = 0;
	n = strtoull(s, &end, 10);
	mult = ctl_size_suffix(end);
	if (s[0] < '0' || s[0] > '9' || errno != 0 || mult == 0)
		return ctl_usage_error(cmd,
				       "--chunk-size '%s' is not a size (bytes, "
				       "or a number with a K or M suffix)",
				       s);
	if (__builtin_mul_overflow((uint64_t)n, mult, &v) ||
	    v < MFS_MIN_CHUNK_SIZE || v > MFS_MAX_CHUNK_SIZE ||
	    (v & (v - 1)) != 0)
		return ctl_usage_error(cmd,
				       "--chunk-size '%s' must be a power of two "
				       "from %u (4K) to %u (64M) bytes",
				       s, MFS_MIN_CHUNK_SIZE,
				       MFS_MAX_CHUNK_SIZE);
	*out = (uint32_t)v;
	return CTL_EXIT_OK;
}

/* Appends an input taking ownership of @name and @path (freed here on
 * failure).  Reports a failure itself. */
static int ctl_inputs_add(struct ctl_inputs *ins, char *name, char *path)
{
	if (!name || !path)
		goto nomem;
	if (ins->count == ins->cap) {
		size_t cap = ins->cap ? ins->cap * 2 : CTL_INPUTS_INITIAL;
		struct ctl_input *v = realloc(ins->v, cap * sizeof(*v));

		if (!v)
			goto nomem;
		ins->v = v;
		ins->cap = cap;
	}
	ins->v[ins->count++] = (struct ctl_input){.name = name, .path = path};
	return CTL_EXIT_OK;

nomem:
	free(name);
	free(path);
	ctl_err(ins->cmd, "out of memory");
	return CTL_EXIT_FAIL;
}

void ctl_inputs_free(struct ctl_inputs *ins)
{
	for (size_t i = 0; i < ins->count; i++) {
		free(ins->v[i].name);
		free(ins->v[i].path);
	}
	free(ins->v);
	ins->v = NULL;
	ins->count = ins->cap = 0;
}

/* Adds "NAME[:DTYPE]=FILE": names cannot hold ':' or '=', so the first
 * '=' ends the name part and a ':' in it starts the dtype. */
static int ctl_inputs_add_arg(struct ctl_inputs *ins, const char *arg)
{
	const char *eq = strchr(arg, '=');
	const char *colon = memchr(arg, ':', (size_t)(eq - arg));
	size_t name_len = (size_t)((colon ? colon : eq) - arg);
	struct ctl_input *in;
	char *dtype_name;
	int rc;

	rc = ctl_inputs_add(ins, strndup(arg, name_len), strdup(eq + 1));
	if (rc != CTL_EXIT_OK || !colon)
		return rc;
	in = &ins->v[ins->count - 1];
	dtype_name = strndup(colon + 1, (size_t)(eq - colon - 1));
	if (!dtype_name) {
		ctl_err(ins->cmd, "out of memory");
		return CTL_EXIT_FAIL;
	}
	rc = mfs_dtype_from_name(dtype_name, &in->dtype);
	free(dtype_name);
	if (rc < 0) {
		ctl_err(ins->cmd, "'%s': %s", arg, ctl_lib_error(rc));
		return CTL_EXIT_FAIL;
	}
	in->declared = true;
	return CTL_EXIT_OK;
}

int ctl_inputs_add_args(struct ctl_inputs *ins, int n, char **args,
			const char *alone)
{
	for (int i = 0; i < n; i++) {
		int rc;

		if (!strchr(args[i], '='))
			return ctl_usage_error(ins->cmd,
					       "'%s' is not NAME=FILE.npy (%s "
					       "must be the only input)",
					       args[i], alone);
		rc = ctl_inputs_add_arg(ins, args[i]);
		if (rc != CTL_EXIT_OK)
			return rc;
	}
	return CTL_EXIT_OK;
}

/* Adds .npy entry @name of @dir (open as @dfd) if it is a regular file. */
static int ctl_inputs_dir_entry(struct ctl_inputs *ins, const char *dir,
				int dfd, const char *name)
{
	struct stat st;
	char *path;

	if (fstatat(dfd, name, &st, 0) != 0) {
		ctl_err(ins->cmd, "cannot stat '%s/%s': %s", dir, name,
			strerror(errno));
		return CTL_EXIT_FAIL;
	}
	if (!S_ISREG(st.st_mode))
		return CTL_EXIT_OK;
	if (asprintf(&path, "%s/%s", dir, name) < 0)
		path = NULL;
	return ctl_inputs_add(ins, ctl_stem(name, MFS_NPY_SUFFIX), path);
}

int ctl_input_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ctl_input *)a)->name,
		      ((const struct ctl_input *)b)->name);
}

int ctl_inputs_scan_dir(struct ctl_inputs *ins, const char *dir)
{
	int rc = CTL_EXIT_OK, lrc, dfd;
	char **names;
	size_t n;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		ctl_err(ins->cmd, "cannot open directory '%s': %s", dir,
			strerror(errno));
		return CTL_EXIT_FAIL;
	}
	/* The library's listing and order, so that `put DIR` and
	 * mfs_store_put_file(DIR) name the same model alike. */
	lrc = mfs_npy_dir_list(dfd, ".", &names, &n);
	if (lrc < 0) {
		ctl_err(ins->cmd, "cannot read directory '%s': %s", dir,
			strerror(-lrc));
		close(dfd);
		return CTL_EXIT_FAIL;
	}
	for (size_t i = 0; rc == CTL_EXIT_OK && i < n; i++)
		rc = ctl_inputs_dir_entry(ins, dir, dfd, names[i]);
	mfs_npy_dir_free(names, n);
	close(dfd);
	if (rc == CTL_EXIT_OK && ins->count == 0) {
		ctl_err(ins->cmd, "directory '%s' holds no .npy files", dir);
		rc = CTL_EXIT_FAIL;
	}
	return rc;
}

int ctl_input_open(const struct ctl_command *cmd, const struct ctl_input *in,
		   mfs_npy_info *npy, int *fd_out)
{
	int fd = open(in->path, O_RDONLY | O_CLOEXEC);
	int rc;

	if (fd < 0) {
		ctl_err(cmd, "cannot open '%s' (array '%s'): %s", in->path,
			in->name, strerror(errno));
		return CTL_EXIT_FAIL;
	}
	rc = mfs_npy_read_fd(fd, in->path, npy);
	if (rc < 0) {
		ctl_err(cmd, "array '%s': %s", in->name, ctl_lib_error(rc));
		goto fail;
	}
	if (in->declared) {
		if (mfs_dtype_size(in->dtype) != mfs_dtype_size(npy->dtype)) {
			ctl_err(cmd, "array '%s': cannot declare dtype %s "
				"(%zu bytes per item) for '%s', whose dtype %s "
				"has %zu bytes per item", in->name,
				mfs_dtype_name(in->dtype),
				mfs_dtype_size(in->dtype), in->path,
				mfs_dtype_name(npy->dtype),
				mfs_dtype_size(npy->dtype));
			goto fail;
		}
		npy->dtype = in->dtype;
	}
	if (fd_out)
		*fd_out = fd;
	else
		close(fd);
	return CTL_EXIT_OK;

fail:
	close(fd);
	return CTL_EXIT_FAIL;
}

int ctl_read_metadata(const struct ctl_command *cmd, const char *path,
		      char **json, size_t *len)
{
	int rc;

	*json = NULL;
	*len = 0;
	if (!path)
		return CTL_EXIT_OK;
	rc = ctl_read_file(path, MFS_MAX_METADATA, json, len);
	if (rc == -EFBIG) {
		ctl_err(cmd, "metadata file '%s' is larger than the limit of %u "
			"bytes", path, MFS_MAX_METADATA);
		return CTL_EXIT_FAIL;
	}
	if (rc < 0) {
		ctl_err(cmd, "cannot read metadata file '%s': %s", path,
			strerror(-rc));
		return CTL_EXIT_FAIL;
	}
	return CTL_EXIT_OK;
}
