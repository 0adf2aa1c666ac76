/*
 * ctl_outfile.c - files written atomically: a locked hidden temporary in
 * the same directory, fsync, rename, fsync of the directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "modelfs.h"
#include "ctl_outfile.h"

/* What new files get before the umask. */
#define CTL_FILE_MODE 0666

/* Temporaries made before giving up when a gc keeps removing them
 * between their creation and our lock (a gc removes each only once). */
#define CTL_OUT_TRIES 8

static void ctl_out_free(struct ctl_out_file *f)
{
	free(f->tmp_path);
	free(f->final_path);
	free(f->dir);
	f->tmp_path = f->final_path = f->dir = NULL;
}

/*
 * Creates and locks a temporary from @f's template.  Returns 0, 1 when a
 * gc removed the new file before the lock was ours (try another name),
 * or -errno (@f->fd is then closed).
 */
static int ctl_out_create(struct ctl_out_file *f, const char *tmpl)
{
	struct stat st;
	int err;

	strcpy(f->tmp_path, tmpl);
	f->fd = mkostemp(f->tmp_path, O_CLOEXEC);
	if (f->fd < 0)
		return -errno;
	while (flock(f->fd, LOCK_EX) != 0) {
		if (errno != EINTR)
			goto fail;
	}
	if (fstat(f->fd, &st) != 0)
		goto fail;
	if (st.st_nlink > 0)
		return 0;
	close(f->fd);
	f->fd = -1;
	return 1;

fail:
	err = -errno;
	close(f->fd);
	unlink(f->tmp_path);
	f->fd = -1;
	return err;
}

int ctl_out_open(const struct ctl_command *cmd, const char *dir,
		 const char *file, struct ctl_out_file *f)
{
	char *tmpl = NULL;
	int rc = 1;

	*f = (struct ctl_out_file){.cmd = cmd, .fd = -1};
	if ((f->dir = strdup(dir)) == NULL ||
	    asprintf(&f->final_path, "%s/%s", dir, file) < 0 ||
	    asprintf(&tmpl, "%s/.%s" MFS_TMP_SUFFIX, dir, file) < 0 ||
	    (f->tmp_path = strdup(tmpl)) == NULL) {
		ctl_err(cmd, "out of memory");
		goto fail;
	}
	for (int i = 0; i < CTL_OUT_TRIES && rc == 1; i++)
		rc = ctl_out_create(f, tmpl);
	if (rc != 0) {
		ctl_err(cmd, "cannot create '%s': %s", tmpl,
			rc < 0 ? strerror(-rc) : "removed by a gc each time");
		goto fail;
	}
	free(tmpl);
	return CTL_EXIT_OK;

fail:
	free(tmpl);
	ctl_out_free(f);
	return CTL_EXIT_FAIL;
}

void ctl_out_abort(struct ctl_out_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	unlink(f->tmp_path);
	ctl_out_free(f);
}

int ctl_out_write(struct ctl_out_file *f, const void *buf, size_t len)
{
	int rc = ctl_write_all(f->fd, buf, len);

	if (rc < 0) {
		ctl_err(f->cmd, "cannot write '%s': %s", f->tmp_path,
			strerror(-rc));
		return CTL_EXIT_FAIL;
	}
	return CTL_EXIT_OK;
}

/* fsyncs directory @dir, so that a rename in it survives a crash. */
static int ctl_sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err;

	if (fd < 0)
		return -errno;
	err = fsync(fd) != 0 ? -errno : 0;
	close(fd);
	return err;
}

int ctl_out_commit(struct ctl_out_file *f, mode_t mode)
{
	const char *what = "set the mode of";
	int rc;

	if (fchmod(f->fd, mode) != 0)
		goto fail;
	what = "sync";
	if (fsync(f->fd) != 0)
		goto fail;
	what = "close";
	rc = close(f->fd);
	f->fd = -1;
	if (rc != 0)
		goto fail;
	what = "rename into place";
	if (rename(f->tmp_path, f->final_path) != 0)
		goto fail;
	rc = ctl_sync_dir(f->dir);
	if (rc < 0) {
		ctl_err(f->cmd, "cannot sync directory '%s' after writing "
			"'%s': %s", f->dir, f->final_path, strerror(-rc));
		ctl_out_free(f);
		return CTL_EXIT_FAIL;
	}
	ctl_out_free(f);
	return CTL_EXIT_OK;

fail:
	ctl_err(f->cmd, "cannot %s '%s': %s", what, f->final_path,
		strerror(errno));
	ctl_out_abort(f);
	return CTL_EXIT_FAIL;
}

mode_t ctl_file_mode(void)
{
	mode_t mask = umask(0);

	umask(mask);
	return CTL_FILE_MODE & ~mask;
}
