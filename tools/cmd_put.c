/*
 * cmd_put.c - "modelctl put": publish a model in a store directory.
 *
 * Publishing is the library's (mfs_store_put_file for a container or one
 * .npy file, mfs_store_put for .npy files packed on the way), so the
 * temporary name, fsync, rename and directory fsync, the validation of
 * an imported container and the content key are the same as for every
 * other program using the store API.  Before publishing, temporaries of
 * killed writers are removed (mfs_store_gc).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl_inputs.h"
#include "ctl_store.h"

const char ctl_usage_put[] =
	"Usage: modelctl put STORE_DIR [--key KEY] FILE\n"
	"       modelctl put STORE_DIR [--key KEY] [PACK OPTIONS] "
	"NAME[:DTYPE]=FILE.npy ...\n"
	"       modelctl put STORE_DIR [--key KEY] [PACK OPTIONS] DIR\n"
	"\n"
	"Publishes a model in the store directory STORE_DIR as KEY.mfs and\n"
	"prints its key on stdout.  A FILE that is a container is checked\n"
	"(its structure and every chunk's checksum) and published as it is;\n"
	"a FILE that is one .npy file becomes a model of one array named\n"
	"after it.  .npy files given as NAME[:DTYPE]=FILE.npy, or every\n"
	"*.npy file of DIR, are packed as 'modelctl pack' does and\n"
	"published in one step.\n"
	"\n"
	"Publishing is atomic: the model is written under a hidden temporary\n"
	"name, synced, renamed to KEY.mfs and the directory synced.  A failed\n"
	"or killed put never leaves a partial model, and an existing KEY.mfs\n"
	"is only ever replaced by a complete, valid model.  Temporary files\n"
	"of killed writers are removed first (as 'modelctl gc' does; each is\n"
	"named on stderr).  STORE_DIR is created if it does not exist (one\n"
	"level).  Models put by modelctl are persistent.\n"
	"\n"
	"Options:\n"
	"  --key KEY             publish as KEY: [A-Za-z0-9][A-Za-z0-9._-]*,\n"
	"                        at most 128 bytes.  Default: the content key\n"
	"                        (the container's index checksum as 16 hex\n"
	"                        digits), so the same model gets the same key\n"
	"  --lz4                 \\\n"
	"  --chunk-size BYTES     } as in 'modelctl pack'; .npy inputs given\n"
	"  --metadata FILE.json  /  as NAME=FILE.npy or DIR only\n"
	"  -h, --help            show this help\n"
	"\n"
	"Exit status: 0 published, 1 failed (bad or corrupt input, I/O error,\n"
	"STORE_DIR is a modelfs mount; nothing was published), 2 usage error\n"
	"(unknown option, missing argument, malformed --chunk-size, pack\n"
	"options with a FILE, invalid KEY).\n";


enum {
	CTL_OPT_KEY = CTL_OPT_LONG_ONLY,
	CTL_OPT_LZ4,
	CTL_OPT_CHUNK,
	CTL_OPT_METADATA,
};

static const struct option ctl_put_options[] = {
	{"key", required_argument, NULL, CTL_OPT_KEY},
	{"lz4", no_argument, NULL, CTL_OPT_LZ4},
	{"chunk-size", required_argument, NULL, CTL_OPT_CHUNK},
	{"metadata", required_argument, NULL, CTL_OPT_METADATA},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

struct ctl_put;

/* Where the builder reads one input's array from. */
struct ctl_put_source {
	struct ctl_put *put;
	size_t index;      /* in put->in */
	uint64_t data_off; /* where the data starts in the file */
	uint64_t data_len; /* bytes of data */
};

struct ctl_put {
	const struct ctl_command *cmd;
	const char *store_dir;
	const char *key;           /* NULL: the content key */
	const char *metadata_path; /* NULL: "{}" */
	bool lz4;
	uint32_t chunk_size;       /* 0: the library default */
	struct ctl_inputs in;
	struct ctl_put_source *sources; /* one per input, while building */
	/* The builder reads the arrays one after the other: one input file
	 * is open at a time, so any number of arrays fits the fd limit. */
	int open_fd;
	size_t open_index;
	int read_errno; /* errno of a failed open/read, for the message */
};

/* ---------------------------------------------------------------- */
/* Options                                                           */
/* ---------------------------------------------------------------- */

/* Refuses a malformed --key before anything is touched. */
static int ctl_put_key(struct ctl_put *p, const char *key)
{
	int rc = mfs_check_key(key);

	if (rc < 0)
		return ctl_usage_error(p->cmd, "invalid key '%s': %s", key,
				       ctl_lib_error(rc));
	p->key = key;
	return CTL_EXIT_OK;
}

/* Parses the options; returns -1 to go on, else the exit status. */
static int ctl_put_options_parse(struct ctl_put *p, int argc, char **argv)
{
	int opt, rc = CTL_EXIT_OK;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", ctl_put_options,
				  NULL)) != -1) {
		switch (opt) {
		case CTL_OPT_KEY:
			rc = ctl_put_key(p, optarg);
			break;
		case CTL_OPT_LZ4:
			p->lz4 = true;
			break;
		case CTL_OPT_CHUNK:
			rc = ctl_parse_chunk_size(p->cmd, optarg,
						  &p->chunk_size);
			break;
		case CTL_OPT_METADATA:
			p->metadata_path = optarg;
			break;
		default:
			return ctl_common_option(p->cmd, opt, argv);
		}
		if (rc != CTL_EXIT_OK)
			return rc;
	}
	return -1;
}

/* ---------------------------------------------------------------- */
/* .npy inputs                                                       */
/* ---------------------------------------------------------------- */

static void ctl_put_free(struct ctl_put *p)
{
	ctl_inputs_free(&p->in);
	free(p->sources);
	if (p->open_fd >= 0)
		close(p->open_fd);
}

/* Checks input @i's file and fills @spec and its source. */
static int ctl_put_check_input(struct ctl_put *p, size_t i,
			       mfs_array_spec *spec)
{
	const struct ctl_input *in = &p->in.v[i];
	mfs_npy_info npy;
	int rc = ctl_input_open(p->cmd, in, &npy, NULL);

	if (rc != CTL_EXIT_OK)
		return rc;
	p->sources[i] = (struct ctl_put_source){
		.put = p, .index = i,
		.data_off = npy.data_offset, .data_len = npy.data_length};
	*spec = (mfs_array_spec){
		.name = in->name,
		.dtype = npy.dtype,
		.ndim = npy.ndim,
		.order = npy.order,
		.codec = p->lz4 ? MFS_CODEC_LZ4 : MFS_CODEC_NONE,
		.chunk_size = p->chunk_size,
	};
	memcpy(spec->shape, npy.shape, sizeof(spec->shape));
	return CTL_EXIT_OK;
}

/* mfs_read_at_fn: raw bytes of one input's array, from its .npy file. */
static ssize_t ctl_put_read_at(void *ctx, uint64_t off, void *buf, size_t len)
{
	struct ctl_put_source *src = ctx;
	struct ctl_put *p = src->put;
	ssize_t n;

	if (off >= src->data_len)
		return 0;
	if (len > src->data_len - off)
		len = (size_t)(src->data_len - off);
	if (p->open_fd < 0 || p->open_index != src->index) {
		if (p->open_fd >= 0)
			close(p->open_fd);
		p->open_index = src->index;
		p->open_fd = open(p->in.v[src->index].path,
				  O_RDONLY | O_CLOEXEC);
		if (p->open_fd < 0) {
			p->read_errno = errno;
			return -p->read_errno;
		}
	}
	do
		n = pread(p->open_fd, buf, len, (off_t)(src->data_off + off));
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		p->read_errno = errno;
		return -p->read_errno;
	}
	return n;
}

/* Reads --metadata into @b (the builder checks it). */
static int ctl_put_metadata(struct ctl_put *p, mfs_builder *b)
{
	char *json;
	size_t len;
	int rc = ctl_read_metadata(p->cmd, p->metadata_path, &json, &len);

	if (rc != CTL_EXIT_OK || !json)
		return rc;
	rc = mfs_builder_set_metadata(b, json, len);
	free(json);
	if (rc < 0) {
		ctl_err(p->cmd, "metadata file '%s': %s", p->metadata_path,
			ctl_lib_error(rc));
		return CTL_EXIT_FAIL;
	}
	return CTL_EXIT_OK;
}

/* A builder over every input (nothing read yet beyond the headers). */
static int ctl_put_build(struct ctl_put *p, mfs_builder **out)
{
	mfs_builder *b;
	int rc = mfs_builder_new(&b);

	if (rc < 0) {
		ctl_err(p->cmd, "%s", ctl_lib_error(rc));
		return CTL_EXIT_FAIL;
	}
	p->sources = calloc(p->in.count, sizeof(*p->sources));
	if (!p->sources) {
		ctl_err(p->cmd, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < p->in.count; i++) {
		mfs_array_spec spec;

		if (ctl_put_check_input(p, i, &spec) != CTL_EXIT_OK)
			goto fail;
		rc = mfs_builder_add_reader(b, &spec, ctl_put_read_at,
					    &p->sources[i], 0);
		if (rc < 0) {
			ctl_err(p->cmd, "'%s': %s", p->in.v[i].path,
				ctl_lib_error(rc));
			goto fail;
		}
	}
	if (ctl_put_metadata(p, b) != CTL_EXIT_OK)
		goto fail;
	*out = b;
	return CTL_EXIT_OK;

fail:
	mfs_builder_free(b);
	return CTL_EXIT_FAIL;
}

/* ---------------------------------------------------------------- */
/* Publishing                                                        */
/* ---------------------------------------------------------------- */

/* mfs_gc_fn: names each removed temporary on stderr. */
static void ctl_put_gc_note(void *ctx, const char *name)
{
	const struct ctl_put *p = ctx;

	ctl_err(p->cmd, "removed temporary file of a dead writer '%s/%s'",
		p->store_dir, name);
}

/* Removes dead writers' temporaries; a failure only warns: the put
 * itself does not depend on it. */
static void ctl_put_gc(struct ctl_put *p)
{
	int rc = mfs_store_gc(p->store_dir, NULL, ctl_put_gc_note, p);

	if (rc < 0)
		ctl_err(p->cmd, "warning: cleaning temporary files: %s",
			ctl_lib_error(rc));
}

/* Publishes the .npy inputs through a builder into @s. */
static int ctl_put_npy(struct ctl_put *p, mfs_store *s, char *key_out)
{
	mfs_builder *b;
	int rc;

	if (ctl_put_build(p, &b) != CTL_EXIT_OK)
		return CTL_EXIT_FAIL;
	rc = mfs_store_put(s, b, p->key, MFS_PUT_PERSISTENT, key_out);
	mfs_builder_free(b);
	if (rc < 0) {
		if (p->read_errno)
			ctl_err(p->cmd, "reading '%s': %s",
				p->in.v[p->open_index].path,
				strerror(p->read_errno));
		else
			ctl_err(p->cmd, "%s", ctl_lib_error(rc));
		return CTL_EXIT_FAIL;
	}
	return CTL_EXIT_OK;
}

/* Opens the store, cleans it, publishes (one FILE if @file, else the
 * .npy inputs) and prints the key. */
static int ctl_put_publish(struct ctl_put *p, const char *file)
{
	char key[MFS_KEY_BUFSIZE];
	mfs_store *s;
	int rc, status;

	rc = mfs_store_open_dir(&s, p->store_dir);
	if (rc < 0) {
		ctl_err(p->cmd, "%s", ctl_lib_error(rc));
		return CTL_EXIT_FAIL;
	}
	ctl_put_gc(p);
	if (file) {
		rc = mfs_store_put_file(s, file, p->key, MFS_PUT_PERSISTENT,
					key);
		status = rc < 0 ? CTL_EXIT_FAIL : CTL_EXIT_OK;
		if (rc < 0)
			ctl_err_about(p->cmd, file, ctl_lib_error(rc));
	} else {
		status = ctl_put_npy(p, s, key);
	}
	/* Persistent puts: the release removes nothing. */
	rc = mfs_store_release(s);
	if (rc < 0 && status == CTL_EXIT_OK) {
		ctl_err(p->cmd, "%s", ctl_lib_error(rc));
		status = CTL_EXIT_FAIL;
	}
	if (status == CTL_EXIT_OK)
		printf("%s\n", key);
	return status;
}

/* Sorts the positional inputs into one FILE (*@file) or .npy inputs. */
static int ctl_put_collect(struct ctl_put *p, int n, char **args,
			   const char **file)
{
	struct stat st;

	*file = NULL;
	if (n == 1 && !strchr(args[0], '=')) {
		if (stat(args[0], &st) != 0) {
			ctl_err(p->cmd, "'%s': %s", args[0], strerror(errno));
			return CTL_EXIT_FAIL;
		}
		if (S_ISDIR(st.st_mode))
			return ctl_inputs_scan_dir(&p->in, args[0]);
		/* The pack options given, if any, have nothing to apply to. */
		if (p->lz4 || p->chunk_size || p->metadata_path)
			return ctl_usage_error(p->cmd,
					       "--lz4, --chunk-size and "
					       "--metadata apply to .npy inputs "
					       "(NAME=FILE.npy or DIR), not to "
					       "FILE '%s'", args[0]);
		*file = args[0];
		return CTL_EXIT_OK;
	}
	return ctl_inputs_add_args(&p->in, n, args, "a FILE or directory");
}

int ctl_cmd_put(const struct ctl_command *self, int argc, char **argv)
{
	struct ctl_put p = {.cmd = self, .in = {.cmd = self}, .open_fd = -1};
	const char *file = NULL;
	struct stat st;
	int rc;

	rc = ctl_put_options_parse(&p, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind >= argc)
		return ctl_usage_error(self, "missing STORE_DIR");
	if (optind + 1 >= argc)
		return ctl_usage_error(self, "missing the model (FILE, "
				       "NAME=FILE.npy ... or a directory)");
	p.store_dir = argv[optind];
	rc = ctl_put_collect(&p, argc - optind - 1, argv + optind + 1, &file);
	/* A missing STORE_DIR is created; an existing one must be fit. */
	if (rc == CTL_EXIT_OK && stat(p.store_dir, &st) == 0)
		rc = ctl_check_store_dir(self, p.store_dir);
	if (rc == CTL_EXIT_OK)
		rc = ctl_put_publish(&p, file);
	ctl_put_free(&p);
	return rc;
}
