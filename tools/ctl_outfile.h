/*
 * ctl_outfile.h - writing a file atomically: under a hidden temporary
 * name in its directory, renamed onto its final name only when complete
 * and synced, so readers see the old file or the whole new one, never a
 * part.  Used by export and index.
 */
#ifndef CTL_OUTFILE_H
#define CTL_OUTFILE_H

#include <stddef.h>
#include <sys/types.h>

#include "modelctl.h"

/* New directories (DIR of export, objects/ of index): what the umask
 * leaves of this. */
#define CTL_DIR_MODE 0777

/* One file being written. */
struct ctl_out_file {
	const struct ctl_command *cmd; /* names the command in messages */
	char *dir;                     /* synced after the rename */
	char *final_path;
	char *tmp_path;                /* "DIR/.FILE.tmp.XXXXXX" */
	int fd;
};

/*
 * Creates the temporary "DIR/.FILE.tmp.XXXXXX" for DIR/FILE, holding the
 * flock that tells mfs_store_gc a live writer owns it (the file may be
 * in a store directory).  Reports failures; CTL_EXIT_OK or
 * CTL_EXIT_FAIL (then @f owns nothing).
 */
int ctl_out_open(const struct ctl_command *cmd, const char *dir,
		 const char *file, struct ctl_out_file *f);

/* Appends @len bytes of @buf.  Reports failures; does not abort @f. */
int ctl_out_write(struct ctl_out_file *f, const void *buf, size_t len);

/*
 * Gives the file @mode, syncs it, renames it onto its final name
 * (replacing any file there) and syncs the directory.  Frees @f; on
 * failure reports it and removes the temporary file (if the rename was
 * done and only the directory sync failed, the new file stays).
 */
int ctl_out_commit(struct ctl_out_file *f, mode_t mode);

/* Removes the temporary file and frees @f. */
void ctl_out_abort(struct ctl_out_file *f);

/* The mode new files get: what open(2) would give 0666 under the
 * process's umask. */
mode_t ctl_file_mode(void);

#endif /* CTL_OUTFILE_H */
