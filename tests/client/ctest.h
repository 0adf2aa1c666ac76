/*
 * ctest.h - helpers shared by the client API tests: scratch directories,
 * the standard model and its checks, model digests (compared across
 * processes), child processes, and the real daemon.
 */
#ifndef MFS_CTEST_H
#define MFS_CTEST_H

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <setjmp.h> /* cmocka.h needs these first */
#include <cmocka.h>

#include "modelfs.h"

/* Exit status meson reads as "skipped". */
#define CT_SKIP 77
/* Room for a digest of the standard model (a line per array). */
#define CT_DIGEST_MAX 8192

/* ------------------------------------------------------------------ */
/* Files                                                               */
/* ------------------------------------------------------------------ */

/* A new directory "<base>/mfs-client-XXXXXX" in @out (PATH_MAX). */
void ct_scratch(const char *base, char *out);
/* Removes @path and everything under it (missing is fine). */
void ct_rmtree(const char *path);
/* "<a>/<b>" in a rotating static buffer (valid for a few calls). */
const char *ct_path(const char *a, const char *b);
/* Number of entries of @dir (without . and ..); -1 if it is missing. */
int ct_count_entries(const char *dir);
bool ct_exists(const char *path);
/* Writes @len bytes to new file @path. */
void ct_write_file(const char *path, const void *data, size_t len);
/* Reads a whole file (NUL-terminated); caller frees. NULL if missing. */
char *ct_read_file(const char *path, size_t *len);
/* XORs @mask into the byte at @off of @path. */
void ct_flip_byte(const char *path, uint64_t off, uint8_t mask);

/* ------------------------------------------------------------------ */
/* The standard model                                                  */
/* ------------------------------------------------------------------ */

/*
 * The standard model, in builder order (variant v changes the bytes):
 *  emb      float32 [64, 33] C, raw
 *  sim.data int32 [50000] C, lz4, 4 KiB chunks (compressible)
 *  empty    float64 [0]
 *  scalar   int64 []
 *  fort     bfloat16 [3, 7] Fortran
 *  big      uint8 [12388] raw, 4 KiB chunks
 *  inv      int32 [64], DERIVED
 * metadata {"model": "std", "variant": v}
 */
enum ct_std {
	CT_EMB, CT_SIM, CT_EMPTY, CT_SCALAR, CT_FORT, CT_BIG, CT_INV,
	CT_STD_COUNT
};

/* Spec and bytes of standard array @i of variant @v (static storage). */
const mfs_array_spec *ct_std_spec(int i);
const void *ct_std_data(int i, unsigned v, size_t *len);
/* Metadata text of variant @v (static buffer). */
const char *ct_std_meta(unsigned v);
/* A builder of the standard model, variant @v (data borrowed). */
mfs_builder *ct_std_builder(unsigned v);
/* Asserts @m is the standard model of variant @v (with the derived
 * array iff @derived). */
void ct_check_std(const mfs_model *m, unsigned v, bool derived);
/* Asserts the data of array @name of @m equals @len bytes at @data. */
void ct_check_array(const mfs_model *m, const char *name, const void *data,
		    size_t len);

/* Writes a description of every array (name, dtype, shape, order, size,
 * XXH3 of the bytes) and of the metadata into @buf. */
void ct_digest(const mfs_model *m, char *buf, size_t cap);

/* Asserts @rc == @err and that mfs_last_error() contains @needle. */
void ct_expect(long rc, int err, const char *needle);

/* Writes an .npy file for standard array @i, variant @v, at @path. */
void ct_write_npy(const char *path, int i, unsigned v);

/*
 * Writes the standard model (variant 1, with the derived array) to
 * container @path unless it exists, then shows it in @dir the way the
 * daemon does: manifest.json, metadata.json and one <array>.npy each.
 */
void ct_export_layout(const char *path, const char *dir);

/* ------------------------------------------------------------------ */
/* Processes                                                           */
/* ------------------------------------------------------------------ */

/* $MODELFS_BUILD_DIR/<rel> (static buffer). */
const char *ct_build_path(const char *rel);
/*
 * Runs @argv (NULL-terminated) with stdout captured into @out (@cap bytes,
 * NUL-terminated; may be NULL) and returns the wait status.
 */
int ct_run(char *const argv[], char *out, size_t cap);
/* Sets (or, with NULL, unsets) an environment variable. */
void ct_setenv(const char *name, const char *value);

/* ------------------------------------------------------------------ */
/* The daemon                                                          */
/* ------------------------------------------------------------------ */

struct ct_daemon {
	pid_t pid; /* 0 when not running */
	char store[PATH_MAX];
	char mnt[PATH_MAX];
	char log[PATH_MAX];
};

/*
 * Whether the mount tests can run: 1 yes; 0 no (fs/modelfs not built or
 * /dev/fuse missing: @why says which).  Callers exit CT_SKIP on 0 unless
 * MODELFS_REQUIRE_FUSE=1 (ct_require_daemon does both).
 */
int ct_daemon_available(const char **why);
/* Exits the process with CT_SKIP (or fails with 1 if required) when the
 * daemon is not available. */
void ct_require_daemon(const char *test);

/*
 * Starts "modelfs -f STORE MNT" on @store (made under @scratch) and a new
 * mountpoint under @scratch, waiting until it is mounted.  Registers the
 * daemon so that it is unmounted and stopped at exit and on SIGTERM even
 * if a test fails.  Returns 0 or -1 (message printed).
 */
int ct_daemon_start(struct ct_daemon *d, const char *scratch,
		    const char *store);
/* Unmounts (fusermount3 -u, then -uz) and stops the daemon. */
void ct_daemon_stop(struct ct_daemon *d);

#endif /* MFS_CTEST_H */
