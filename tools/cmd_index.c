/*
 * cmd_index.c - "modelctl index": the index document of a store
 * directory (lib/MOUNT.md, "Store index"), which an HTTP origin serves
 * beside the containers.  Every KEY.mfs is opened and validated as the
 * daemon would (no link followed, no FIFO or device opened); invalid
 * entries are skipped with a warning.  With --content-names each
 * container is also linked (or copied) under a name derived from its
 * index checksum in objects/, and the index points there.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "modelfs.h"
#include "modelctl.h"
#include "ctl_outfile.h"
#include "ctl_store.h"

const char ctl_usage_index[] =
	"Usage: modelctl index [--content-names] [--output FILE] STORE_DIR\n"
	"\n"
	"Writes the index document of STORE_DIR, STORE_DIR/" MFS_INDEX_FILE "\n"
	"unless --output says otherwise: a JSON object (keys sorted, 2-space\n"
	"indent) {\"format\": \"" MFS_INDEX_FORMAT "\", \"version\": 1, "
	"\"models\": {KEY:\n"
	"{\"object\", \"size\", \"index_checksum\", \"arrays\", "
	"\"raw_size\"}}}.  It is what\n"
	"an HTTP origin serves beside the containers (lib/MOUNT.md).  The file\n"
	"is written atomically: a hidden temporary, synced, renamed.\n"
	"\n"
	"Every regular, non-hidden KEY.mfs of STORE_DIR with a valid key is\n"
	"opened and its structure validated (symbolic links, FIFOs and devices\n"
	"are not followed or opened); any other KEY.mfs is skipped with a\n"
	"warning on stderr naming the file and the reason.\n"
	"\n"
	"Options:\n"
	"  --content-names  also link each container (or copy it, where a\n"
	"                   link is not possible) to STORE_DIR/" MFS_INDEX_OBJECTS_DIR
	"/KEY.HEX.mfs,\n"
	"                   HEX its index checksum, and give that name as\n"
	"                   its \"object\"; existing objects are kept, none is\n"
	"                   removed\n"
	"  --output FILE    write the document to FILE instead\n"
	"  -h, --help       show this help\n"
	"\n"
	"Exit status: 0 written (skipped entries included), 1 the directory\n"
	"cannot be read or an object or the index cannot be written, 2 usage\n"
	"error.\n";

enum {
	CTL_OPT_CONTENT_NAMES = CTL_OPT_LONG_ONLY,
	CTL_OPT_OUTPUT,
};

static const struct option ctl_index_options[] = {
	{"content-names", no_argument, NULL, CTL_OPT_CONTENT_NAMES},
	{"output", required_argument, NULL, CTL_OPT_OUTPUT},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* Index checksum in hex (16 lowercase digits) plus the NUL. */
#define CTL_HEX64_BUFSIZE 17
/* "objects/" KEY "." HEX ".mfs" plus the NUL. */
#define CTL_OBJECT_BUFSIZE                                                \
	(sizeof(MFS_INDEX_OBJECTS_DIR "/") + MFS_KEY_BUFSIZE +             \
	 CTL_HEX64_BUFSIZE + sizeof(MFS_CONTAINER_SUFFIX))
/* Bytes copied at a time when an object cannot be linked. */
#define CTL_COPY_STEP (1u << 20)
/* Indentation of the document: people diff it as much as programs read
 * it. */
#define CTL_INDEX_INDENT 2

struct ctl_index {
	const struct ctl_command *cmd;
	const char *dir;     /* STORE_DIR as given */
	int dirfd;           /* STORE_DIR, open */
	bool content_names;  /* --content-names */
	bool objects_ready;  /* objects/ made or found this run */
	json_t *models;      /* the document's "models" */
};

/* ---------------------------------------------------------------- */
/* Entries                                                           */
/* ---------------------------------------------------------------- */

/*
 * True if open error @rc is a verdict on the entry (not a container, not
 * readable, gone): the entry is skipped.  Any other error (no memory, no
 * descriptors, I/O) says nothing about it, and an index without a valid
 * model would be wrong, so it stops the command.
 */
static bool ctl_index_is_verdict(int rc)
{
	switch (-rc) {
	case EBADMSG:
	case EINVAL:
	case EISDIR:
	case ELOOP:
	case EACCES:
	case EPERM:
	case ENOENT:
	case ENXIO:
		return true;
	default:
		return false;
	}
}

/* Warns that entry @path is skipped because of @msg (a library message,
 * which may already start with "PATH: "). */
static void ctl_index_warn(const struct ctl_index *ix, const char *path,
			   const char *msg)
{
	fprintf(stderr, "modelctl: %s: warning: skipping ", ix->cmd->name);
	ctl_print_about(stderr, path, msg);
}

/* The index entry of valid container @c stored as @object. */
static json_t *ctl_index_entry(const mfs_container *c, const char *object)
{
	size_t n = mfs_container_array_count(c);
	char hex[CTL_HEX64_BUFSIZE];
	uint64_t raw = 0;

	for (size_t i = 0; i < n; i++) {
		mfs_array_info a;

		if (mfs_container_array(c, i, &a) == 0)
			raw += a.raw_length;
	}
	snprintf(hex, sizeof(hex), "%016" PRIx64,
		 mfs_container_index_checksum(c));
	return json_pack("{s:s, s:I, s:s, s:I, s:I}", "object", object, "size",
			 (json_int_t)mfs_container_file_size(c),
			 "index_checksum", hex, "arrays", (json_int_t)n,
			 "raw_size", (json_int_t)raw);
}

/* ---------------------------------------------------------------- */
/* Content-named objects                                             */
/* ---------------------------------------------------------------- */

/* Makes STORE_DIR/objects unless it is already a directory (a link to
 * one is refused: objects are written nowhere else). */
static int ctl_index_objects_dir(struct ctl_index *ix)
{
	struct stat st;

	if (ix->objects_ready)
		return CTL_EXIT_OK;
	if (mkdirat(ix->dirfd, MFS_INDEX_OBJECTS_DIR, CTL_DIR_MODE) != 0 &&
	    errno != EEXIST) {
		ctl_err(ix->cmd, "cannot create directory '%s/%s': %s", ix->dir,
			MFS_INDEX_OBJECTS_DIR, strerror(errno));
		return CTL_EXIT_FAIL;
	}
	if (fstatat(ix->dirfd, MFS_INDEX_OBJECTS_DIR, &st,
		    AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) {
		ctl_err(ix->cmd, "'%s/%s' is not a directory", ix->dir,
			MFS_INDEX_OBJECTS_DIR);
		return CTL_EXIT_FAIL;
	}
	ix->objects_ready = true;
	return CTL_EXIT_OK;
}

/* True if @object (relative to STORE_DIR) is already a valid container
 * with @c's size and index checksum, so it holds @c's content. */
static bool ctl_index_object_matches(const struct ctl_index *ix,
				     const char *object,
				     const mfs_container *c)
{
	mfs_container *have;
	bool same;

	if (mfs_container_open_at(&have, ix->dirfd, object,
				  MFS_OPEN_NOFOLLOW) < 0)
		return false;
	same = mfs_container_file_size(have) == mfs_container_file_size(c) &&
	       mfs_container_index_checksum(have) ==
		       mfs_container_index_checksum(c);
	mfs_container_close(have);
	return same;
}

/*
 * Hard-links the open file of @c (not its name, which may have been
 * replaced since it was validated) to @object.  Returns 0 or -errno of
 * linkat (-EEXIST: the name is taken).
 */
static int ctl_index_link(const struct ctl_index *ix, const mfs_container *c,
			  const char *object)
{
	char proc[sizeof("/proc/self/fd/") + CTL_U64_CHARS];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", mfs_container_fd(c));
	if (linkat(AT_FDCWD, proc, ix->dirfd, object, AT_SYMLINK_FOLLOW) != 0)
		return -errno;
	return 0;
}

/*
 * True if linkat's error @rc means "copy instead": another file system
 * (EXDEV), links not permitted (EPERM: protected_hardlinks on a file of
 * another user), the name taken by a wrong file (EEXIST), no /proc
 * (ENOENT) or too many links (EMLINK).
 */
static bool ctl_index_copy_instead(int rc)
{
	return rc == -EXDEV || rc == -EPERM || rc == -EEXIST ||
	       rc == -ENOENT || rc == -EMLINK;
}

/* Copies the file of @c into @f, which it commits (mode of the source). */
static int ctl_index_copy_into(const struct ctl_index *ix,
			       const mfs_container *c,
			       struct ctl_out_file *f)
{
	uint64_t size = mfs_container_file_size(c), off = 0;
	int fd = mfs_container_fd(c), rc = CTL_EXIT_OK;
	char *buf = malloc(CTL_COPY_STEP);
	struct stat st;

	if (!buf || fstat(fd, &st) != 0) {
		ctl_err(ix->cmd, "cannot copy '%s': %s",
			mfs_container_label(c), strerror(buf ? errno : ENOMEM));
		rc = CTL_EXIT_FAIL;
	}
	while (rc == CTL_EXIT_OK && off < size) {
		size_t n = size - off < CTL_COPY_STEP ? (size_t)(size - off) :
							CTL_COPY_STEP;
		int err = mfs_pread_full(fd, buf, n, off);

		if (err < 0) {
			ctl_err(ix->cmd, "cannot read '%s': %s",
				mfs_container_label(c), strerror(-err));
			rc = CTL_EXIT_FAIL;
		} else {
			rc = ctl_out_write(f, buf, n);
		}
		off += n;
	}
	free(buf);
	if (rc != CTL_EXIT_OK) {
		ctl_out_abort(f);
		return rc;
	}
	return ctl_out_commit(f, st.st_mode & (mode_t)ALLPERMS);
}

/* Copies the file of @c to objects/@name, replacing what is there. */
static int ctl_index_copy(const struct ctl_index *ix, const mfs_container *c,
			  const char *name)
{
	struct ctl_out_file f;
	char *objects;
	int rc;

	if (asprintf(&objects, "%s/%s", ix->dir, MFS_INDEX_OBJECTS_DIR) < 0) {
		ctl_err(ix->cmd, "out of memory");
		return CTL_EXIT_FAIL;
	}
	rc = ctl_out_open(ix->cmd, objects, name, &f);
	free(objects);
	if (rc != CTL_EXIT_OK)
		return rc;
	return ctl_index_copy_into(ix, c, &f);
}

/*
 * Makes objects/KEY.HEX.mfs hold @c's content, its name (relative to
 * STORE_DIR) into @object: kept if it already does, else hard-linked
 * when the name is free, else copied (another file system, links not
 * allowed, or a wrong file under the name).
 */
static int ctl_index_object(struct ctl_index *ix, const mfs_container *c,
			    const char *key, char *object)
{
	const char *name;
	int rc;

	snprintf(object, CTL_OBJECT_BUFSIZE,
		 MFS_INDEX_OBJECTS_DIR "/%s.%016" PRIx64 MFS_CONTAINER_SUFFIX,
		 key, mfs_container_index_checksum(c));
	name = object + strlen(MFS_INDEX_OBJECTS_DIR "/");
	if (ctl_index_objects_dir(ix) != CTL_EXIT_OK)
		return CTL_EXIT_FAIL;
	if (ctl_index_object_matches(ix, object, c))
		return CTL_EXIT_OK;
	rc = ctl_index_link(ix, c, object);
	if (rc == 0)
		return CTL_EXIT_OK;
	if (!ctl_index_copy_instead(rc)) {
		ctl_err(ix->cmd, "cannot link '%s/%s' to '%s': %s", ix->dir,
			object, mfs_container_label(c), strerror(-rc));
		return CTL_EXIT_FAIL;
	}
	return ctl_index_copy(ix, c, name);
}

/* ---------------------------------------------------------------- */
/* The directory                                                     */
/* ---------------------------------------------------------------- */

/*
 * Adds store entry @name to the index, or warns that it is skipped.
 * CTL_EXIT_FAIL only for what stops the command (reported).
 */
static int ctl_index_add(struct ctl_index *ix, const char *name)
{
	char *key = ctl_stem(name, MFS_CONTAINER_SUFFIX), *path = NULL;
	char object[CTL_OBJECT_BUFSIZE];
	mfs_container *c = NULL;
	int rc, fd, status = CTL_EXIT_FAIL;

	if (!key || asprintf(&path, "%s/%s", ix->dir, name) < 0) {
		path = NULL;
		ctl_err(ix->cmd, "out of memory");
		goto out;
	}
	rc = mfs_check_key(key);
	if (rc < 0) {
		ctl_index_warn(ix, path, ctl_lib_error(rc));
		status = CTL_EXIT_OK;
		goto out;
	}
	fd = mfs_open_regular(ix->dirfd, name, MFS_OPEN_NOFOLLOW, path);
	rc = fd < 0 ? fd : mfs_container_open_fd(&c, fd, path);
	if (rc < 0) {
		if (fd >= 0)
			close(fd);
		if (!ctl_index_is_verdict(rc)) {
			ctl_err_about(ix->cmd, path, ctl_lib_error(rc));
			goto out;
		}
		ctl_index_warn(ix, path, ctl_lib_error(rc));
		status = CTL_EXIT_OK;
		goto out;
	}
	/* A valid key keeps KEY.mfs well inside the buffer. */
	if (strlen(name) >= sizeof(object)) {
		ctl_index_warn(ix, path, "name too long");
		status = CTL_EXIT_OK;
		goto out;
	}
	memcpy(object, name, strlen(name) + 1);
	if (ix->content_names &&
	    ctl_index_object(ix, c, key, object) != CTL_EXIT_OK)
		goto out;
	if (json_object_set_new(ix->models, key,
				ctl_index_entry(c, object)) != 0) {
		ctl_err(ix->cmd, "out of memory");
		goto out;
	}
	status = CTL_EXIT_OK;
out:
	mfs_container_close(c);
	free(path);
	free(key);
	return status;
}

/* Adds every entry of STORE_DIR (ix->dirfd) to the index. */
static int ctl_index_scan(struct ctl_index *ix)
{
	int fd = dup(ix->dirfd), rc = CTL_EXIT_OK;
	struct dirent *de;
	DIR *d = fd < 0 ? NULL : fdopendir(fd);

	if (!d) {
		ctl_err(ix->cmd, "cannot read store directory '%s': %s",
			ix->dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return CTL_EXIT_FAIL;
	}
	while (rc == CTL_EXIT_OK && (errno = 0, de = readdir(d)) != NULL) {
		if (ctl_is_container_name(de->d_name))
			rc = ctl_index_add(ix, de->d_name);
	}
	if (rc == CTL_EXIT_OK && errno != 0) {
		ctl_err(ix->cmd, "cannot read store directory '%s': %s",
			ix->dir, strerror(errno));
		rc = CTL_EXIT_FAIL;
	}
	closedir(d);
	return rc;
}

/* ---------------------------------------------------------------- */
/* The document                                                      */
/* ---------------------------------------------------------------- */

/* Splits @path into its directory and last component, both malloc'd;
 * false when out of memory. */
static bool ctl_index_split(const char *path, char **dir, char **file)
{
	char *a = strdup(path), *b = strdup(path);

	/* dirname and basename may modify their argument: one copy each. */
	*dir = a ? strdup(dirname(a)) : NULL;
	*file = b ? strdup(basename(b)) : NULL;
	free(a);
	free(b);
	if (*dir && *file)
		return true;
	free(*dir);
	free(*file);
	return false;
}

/* Writes @doc to @output (NULL: STORE_DIR/index.json) atomically. */
static int ctl_index_write(const struct ctl_index *ix, const json_t *doc,
			   const char *output)
{
	char *text = json_dumps(doc, JSON_INDENT(CTL_INDEX_INDENT) |
					     JSON_SORT_KEYS);
	char *dir = NULL, *file = NULL;
	struct ctl_out_file f;
	int rc = CTL_EXIT_FAIL;
	bool named = output ? ctl_index_split(output, &dir, &file) :
			      asprintf(&dir, "%s", ix->dir) >= 0 &&
				      (file = strdup(MFS_INDEX_FILE)) != NULL;

	if (!text || !named) {
		ctl_err(ix->cmd, "out of memory");
		goto out;
	}
	rc = ctl_out_open(ix->cmd, dir, file, &f);
	if (rc != CTL_EXIT_OK)
		goto out;
	rc = ctl_out_write(&f, text, strlen(text));
	if (rc == CTL_EXIT_OK)
		rc = ctl_out_write(&f, "\n", 1);
	if (rc != CTL_EXIT_OK)
		ctl_out_abort(&f);
	else
		rc = ctl_out_commit(&f, ctl_file_mode());
out:
	free(file);
	free(dir);
	free(text);
	return rc;
}

/* Indexes STORE_DIR and writes the document. */
static int ctl_index_run(struct ctl_index *ix, const char *output)
{
	json_t *doc;
	int rc = ctl_check_store_dir(ix->cmd, ix->dir);

	if (rc != CTL_EXIT_OK)
		return rc;
	ix->dirfd = open(ix->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ix->dirfd < 0) {
		ctl_err(ix->cmd, "cannot open store directory '%s': %s",
			ix->dir, strerror(errno));
		return CTL_EXIT_FAIL;
	}
	doc = json_pack("{s:s, s:i, s:{}}", "format", MFS_INDEX_FORMAT,
			"version", MFS_INDEX_VERSION, "models");
	if (!doc) {
		ctl_err(ix->cmd, "out of memory");
		rc = CTL_EXIT_FAIL;
	} else {
		ix->models = json_object_get(doc, "models");
		rc = ctl_index_scan(ix);
	}
	if (rc == CTL_EXIT_OK)
		rc = ctl_index_write(ix, doc, output);
	json_decref(doc);
	close(ix->dirfd);
	return rc;
}

int ctl_cmd_index(const struct ctl_command *self, int argc, char **argv)
{
	struct ctl_index ix = {.cmd = self, .dirfd = -1};
	const char *output = NULL;
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", ctl_index_options,
				  NULL)) != -1) {
		if (opt == CTL_OPT_CONTENT_NAMES)
			ix.content_names = true;
		else if (opt == CTL_OPT_OUTPUT)
			output = optarg;
		else
			return ctl_common_option(self, opt, argv);
	}
	if (optind >= argc)
		return ctl_usage_error(self, "missing STORE_DIR");
	if (optind + 1 < argc)
		return ctl_usage_error(self, "index takes one STORE_DIR, got %d",
				       argc - optind);
	if (output && *output == '\0')
		return ctl_usage_error(self, "--output needs a file name");
	ix.dir = argv[optind];
	return ctl_index_run(&ix, output);
}
