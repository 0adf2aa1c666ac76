/*
 * test_writer_errors.c - every error path of the writer, driven on
 * purpose.  After each failure: nothing new at the final path, no
 * temporary file left, and the container already there unchanged.
 *
 * System calls the tests cannot make fail from outside (fsync, fchmod,
 * a pwrite at one offset) are wrapped at link time (-Wl,--wrap=...) and
 * fail on demand; everything else passes through to the real call.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wtest.h"
#include "internal.h"
#include "layout.h"

#define KIB 1024u
#define SMALL_CHUNK (4 * KIB)
/* What the container already at the final path holds. */
static const char old_bytes[] = "the old container, which must survive";

/* ------------------------------------------------------------------ */
/* Fault injection                                                     */
/* ------------------------------------------------------------------ */

/* Which call fails: 0 = none, N = the Nth call from now. */
static int fsync_fail_at;
static bool fchmod_fail;
/* A pwrite at exactly this offset fails (-1 = none). */
static int64_t pwrite_fail_offset = -1;
static int fault_errno;

int __real_fsync(int fd);
int __wrap_fsync(int fd);
int __real_fchmod(int fd, mode_t mode);
int __wrap_fchmod(int fd, mode_t mode);
ssize_t __real_pwrite64(int fd, const void *buf, size_t len, off_t off);
ssize_t __wrap_pwrite64(int fd, const void *buf, size_t len, off_t off);

int __wrap_fsync(int fd)
{
	if (fsync_fail_at > 0 && --fsync_fail_at == 0) {
		errno = fault_errno;
		return -1;
	}
	return __real_fsync(fd);
}

int __wrap_fchmod(int fd, mode_t mode)
{
	if (fchmod_fail) {
		errno = fault_errno;
		return -1;
	}
	return __real_fchmod(fd, mode);
}

ssize_t __wrap_pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	if (pwrite_fail_offset >= 0 && off == pwrite_fail_offset) {
		errno = fault_errno;
		return -1;
	}
	return __real_pwrite64(fd, buf, len, off);
}

static void faults_off(void)
{
	fsync_fail_at = 0;
	fchmod_fail = false;
	pwrite_fail_offset = -1;
	fault_errno = 0;
}

/* ------------------------------------------------------------------ */
/* Fixture                                                             */
/* ------------------------------------------------------------------ */

/* A scratch directory holding model.mfs with old_bytes. */
static int err_setup(void **state)
{
	int rc = wt_setup(state);

	faults_off();
	if (rc == 0)
		wt_write_file(wt_path(*state, "model.mfs"), old_bytes,
			      sizeof(old_bytes));
	return rc;
}

static int err_teardown(void **state)
{
	faults_off();
	return wt_teardown(state);
}

/* Nothing changed: model.mfs intact, new.mfs absent, no temp files. */
static void assert_untouched(const struct wt_ctx *c)
{
	wt_assert_file(wt_path(c, "model.mfs"), old_bytes, sizeof(old_bytes));
	wt_assert_absent(wt_path(c, "new.mfs"));
	assert_int_equal(wt_count_hidden(c->dir), 0);
	assert_int_equal(wt_count_entries(c->dir), 1);
}

static void assert_msg(const char *needle)
{
	const char *msg = mfs_last_error();

	if (!strstr(msg, needle))
		print_error("message '%s' lacks '%s'\n", msg, needle);
	assert_non_null(strstr(msg, needle));
}

/* A source that must never be called. */
static ssize_t never_read(void *ctx, void *buf, size_t len)
{
	(void)ctx;
	(void)buf;
	(void)len;
	fail_msg("the writer read a source whose spec is bad");
	return -EIO;
}

/* After a failed add: every call but abort/commit refuses, commit fails
 * and cleans up. */
static void assert_poisoned_then_commit(mfs_writer *w)
{
	uint8_t one = 1;
	mfs_array_spec ok = wt_spec1("ok", MFS_DTYPE_UINT8, 1, MFS_CODEC_NONE,
				     0);

	assert_int_equal(mfs_writer_add_array_buffer(w, &ok, &one, 1),
			 -EINVAL);
	assert_msg("can only be aborted");
	assert_int_equal(mfs_writer_add_array(w, &ok, never_read, NULL),
			 -EINVAL);
	assert_int_equal(mfs_writer_add_array_fd(w, &ok, 0, 0), -EINVAL);
	assert_int_equal(mfs_writer_set_metadata(w, "{}", 2), -EINVAL);
	assert_int_equal(mfs_writer_commit(w), -EINVAL);
	assert_msg("model.mfs");
	assert_msg("earlier add failed");
}

/* ------------------------------------------------------------------ */
/* Bad specs                                                           */
/* ------------------------------------------------------------------ */

struct bad_spec {
	const char *name;
	int dtype;
	uint32_t ndim;
	uint64_t dim; /* every dimension */
	int order;
	int codec;
	uint32_t chunk_size;
	const char *msg;
};

static char long_name[MFS_MAX_NAME_LEN + 2];

static void test_bad_specs(void **state)
{
	const struct wt_ctx *ctx = *state;
	const struct bad_spec cases[] = {
		{NULL, MFS_DTYPE_UINT8, 1, 1, 0, 0, 0, "array name is empty"},
		{"", MFS_DTYPE_UINT8, 1, 1, 0, 0, 0, "array name is empty"},
		{".hidden", MFS_DTYPE_UINT8, 1, 1, 0, 0, 0, "starts with '.'"},
		{"a/b", MFS_DTYPE_UINT8, 1, 1, 0, 0, 0, "character 0x2f"},
		{long_name, MFS_DTYPE_UINT8, 1, 1, 0, 0, 0,
		 "longer than 200 bytes"},
		{"x", MFS_DTYPE_INVALID, 1, 1, 0, 0, 0, "dtype 0 is not"},
		{"x", MFS_DTYPE_COUNT, 1, 1, 0, 0, 0, "dtype 16 is not"},
		{"x", -1, 1, 1, 0, 0, 0, "dtype -1 is not"},
		{"x", MFS_DTYPE_UINT8, MFS_MAX_NDIM + 1, 1, 0, 0, 0,
		 "ndim 33 is more than 32"},
		{"x", MFS_DTYPE_UINT8, 1, 1, 2, 0, 0, "order 2"},
		{"x", MFS_DTYPE_UINT8, 1, 1, 0, 2, 0, "codec 2"},
		{"x", MFS_DTYPE_UINT8, 1, 1, 0, 0, 1000,
		 "chunk_size 1000 is not a power of two in 4096..67108864"},
		{"x", MFS_DTYPE_UINT8, 1, 1, 0, 0, MFS_MIN_CHUNK_SIZE / 2,
		 "chunk_size 2048"},
		{"x", MFS_DTYPE_UINT8, 1, 1, 0, 0, MFS_MAX_CHUNK_SIZE * 2,
		 "chunk_size 134217728"},
		{"x", MFS_DTYPE_INT16, 3, 1ull << 32, 0, 0, 0,
		 "overflows 64 bits"},
		{"x", MFS_DTYPE_UINT8, 1, 1ull << 63, 0, 0, 0,
		 "past the largest file offset 9223372036854775807"},
		{"x", MFS_DTYPE_UINT8, 1, 1ull << 52, 0, 0, MFS_MAX_CHUNK_SIZE,
		 "67108864 chunks of 67108864 bytes would make the index "
		 "larger than 1073741824"},
	};

	memset(long_name, 'a', MFS_MAX_NAME_LEN + 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad_spec *b = &cases[i];
		mfs_array_spec s;
		mfs_writer *w;

		memset(&s, 0, sizeof(s));
		s.name = b->name;
		s.dtype = (mfs_dtype)b->dtype;
		s.ndim = b->ndim;
		for (uint32_t d = 0; d < b->ndim && d < MFS_MAX_NDIM; d++)
			s.shape[d] = b->dim;
		s.order = (mfs_order)b->order;
		s.codec = (mfs_codec)b->codec;
		s.chunk_size = b->chunk_size;
		assert_int_equal(mfs_writer_create(&w, wt_path(ctx, "model.mfs")),
				 0);
		assert_int_equal(mfs_writer_add_array(w, &s, never_read, NULL),
				 -EINVAL);
		assert_msg(b->msg);
		assert_msg("model.mfs");
		assert_poisoned_then_commit(w);
		assert_untouched(ctx);
	}
}

static void test_duplicate_name(void **state)
{
	const struct wt_ctx *ctx = *state;
	uint8_t data[3] = {1, 2, 3};
	mfs_array_spec s = wt_spec1("dup", MFS_DTYPE_UINT8, 3, MFS_CODEC_NONE,
				    0);
	mfs_writer *w;

	assert_int_equal(mfs_writer_create(&w, wt_path(ctx, "model.mfs")), 0);
	assert_int_equal(mfs_writer_add_array_buffer(w, &s, data, 3), 0);
	s.codec = MFS_CODEC_LZ4;
	assert_int_equal(mfs_writer_add_array(w, &s, never_read, NULL),
			 -EEXIST);
	assert_msg("array 'dup' already added");
	assert_poisoned_then_commit(w);
	assert_untouched(ctx);
}

/* Adds @n empty arrays named a0, a1, ... */
static void add_empty_arrays(mfs_writer *w, size_t n)
{
	char name[16];

	for (size_t i = 0; i < n; i++) {
		mfs_array_spec s = wt_spec1(name, MFS_DTYPE_FLOAT32, 0,
					    MFS_CODEC_NONE, 0);
		snprintf(name, sizeof(name), "a%zu", i);
		assert_int_equal(mfs_writer_add_array_buffer(w, &s, NULL, 0),
				 0);
	}
}

/* MFS_MAX_ARRAYS arrays commit and open; one more is -E2BIG. */
static void test_too_many_arrays(void **state)
{
	const struct wt_ctx *ctx = *state;
	const char *path = wt_path(ctx, "full.mfs");
	mfs_array_spec s = wt_spec1("one_too_many", MFS_DTYPE_UINT8, 0,
				    MFS_CODEC_NONE, 0);
	mfs_container *c;
	mfs_writer *w;
	size_t idx;

	assert_int_equal(mfs_writer_create(&w, path), 0);
	add_empty_arrays(w, MFS_MAX_ARRAYS);
	assert_int_equal(mfs_writer_commit(w), 0);
	c = wt_open(path);
	assert_int_equal(mfs_container_array_count(c), MFS_MAX_ARRAYS);
	assert_int_equal(mfs_container_find(c, "a65535", &idx), 0);
	assert_int_equal(idx, MFS_MAX_ARRAYS - 1);
	mfs_container_close(c);
	assert_int_equal(unlink(path), 0);

	assert_int_equal(mfs_writer_create(&w, wt_path(ctx, "model.mfs")), 0);
	add_empty_arrays(w, MFS_MAX_ARRAYS);
	assert_int_equal(mfs_writer_add_array_buffer(w, &s, NULL, 0), -E2BIG);
	assert_msg("would be array 65537; a container holds at most 65536");
	assert_poisoned_then_commit(w);
	assert_untouched(ctx);
}

/* ------------------------------------------------------------------ */
/* Bad arguments                                                       */
/* ------------------------------------------------------------------ */

static void test_null_arguments(void **state)
{
	const struct wt_ctx *ctx = *state;
	mfs_array_spec s = wt_spec1("x", MFS_DTYPE_UINT8, 4, MFS_CODEC_NONE, 0);
	uint8_t data[4] = {0};
	mfs_writer *w;

	assert_int_equal(mfs_writer_create(NULL, "x"), -EINVAL);
	assert_int_equal(mfs_writer_create(&w, NULL), -EINVAL);
	assert_null(w);
	assert_int_equal(mfs_writer_add_array(NULL, &s, never_read, NULL),
			 -EINVAL);
	assert_int_equal(mfs_writer_add_array_buffer(NULL, &s, data, 4),
			 -EINVAL);
	assert_int_equal(mfs_writer_add_array_fd(NULL, &s, 0, 0), -EINVAL);
	assert_int_equal(mfs_writer_set_metadata(NULL, "{}", 2), -EINVAL);
	assert_int_equal(mfs_writer_commit(NULL), -EINVAL);
	assert_msg("NULL writer");

	/* Each of these poisons a fresh writer. */
	for (int i = 0; i < 5; i++) {
		int rc = 0;

		assert_int_equal(mfs_writer_create(&w,
						   wt_path(ctx, "model.mfs")),
				 0);
		switch (i) {
		case 0:
			rc = mfs_writer_add_array(w, NULL, never_read, NULL);
			break;
		case 1:
			rc = mfs_writer_add_array(w, &s, NULL, NULL);
			break;
		case 2:
			rc = mfs_writer_add_array_buffer(w, &s, NULL, 4);
			break;
		case 3:
			rc = mfs_writer_add_array_buffer(w, NULL, data, 4);
			break;
		case 4:
			rc = mfs_writer_add_array_fd(w, &s, 0, -1);
			assert_msg("negative source offset -1");
			break;
		}
		assert_int_equal(rc, -EINVAL);
		assert_poisoned_then_commit(w);
		assert_untouched(ctx);
	}
}

/* A buffer whose length is not raw_length is refused before reading. */
static void test_buffer_length_mismatch(void **state)
{
	const struct wt_ctx *ctx = *state;
	uint8_t data[16] = {0};
	mfs_array_spec s = wt_spec1("x", MFS_DTYPE_INT32, 4, MFS_CODEC_NONE,
				    0);

	for (size_t len = 15; len <= 17; len += 2) {
		mfs_writer *w;
		char msg[80];

		snprintf(msg, sizeof(msg),
			 "array 'x': buffer is %zu bytes but raw_length is 16",
			 len);
		assert_int_equal(mfs_writer_create(&w,
						   wt_path(ctx, "model.mfs")),
				 0);
		assert_int_equal(mfs_writer_add_array_buffer(w, &s, data, len),
				 -EINVAL);
		assert_msg(msg);
		assert_poisoned_then_commit(w);
		assert_untouched(ctx);
	}
}

/* ------------------------------------------------------------------ */
/* Metadata                                                            */
/* ------------------------------------------------------------------ */

/* Bad metadata is refused with the reason; the last good one is kept and
 * the writer stays usable (nothing was written). */
static void test_bad_metadata(void **state)
{
	const struct wt_ctx *ctx = *state;
	const char *path = wt_path(ctx, "new.mfs");
	const char good[] = "{\"v\": 1}";
	const struct {
		const char *json;
		size_t len;
		const char *msg;
	} cases[] = {
		{"{\"a\": ", 6, "not valid JSON"},
		{"[1, 2]", 6, "must be a JSON object"},
		{"\"str\"", 5, "not valid JSON"},
		{"{\"a\": \"\xff\xfe\"}", 11, "not valid JSON"},
		{"{\"a\": \"\0\"}", 10, "NUL byte"},
		{"", 0, "not valid JSON"},
		{NULL, 0, "not valid JSON"},
		{NULL, 3, "NULL metadata of 3 bytes"},
	};
	size_t big_len = MFS_MAX_METADATA + 1;
	char *big = malloc(big_len);
	mfs_container *c;
	mfs_writer *w;
	size_t len;

	assert_non_null(big);
	/* A valid object padded with spaces: only its size is wrong. */
	memset(big, ' ', big_len);
	memcpy(big, "{}", 2);
	assert_int_equal(mfs_writer_create(&w, path), 0);
	assert_int_equal(mfs_writer_set_metadata(w, good, strlen(good)), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(mfs_writer_set_metadata(w, cases[i].json,
							 cases[i].len),
				 -EINVAL);
		assert_msg(cases[i].msg);
		assert_msg("new.mfs");
	}
	assert_int_equal(mfs_writer_set_metadata(w, big, big_len), -EINVAL);
	assert_msg("metadata is 16777217 bytes, more than the limit of "
		   "16777216");
	free(big);
	assert_int_equal(mfs_writer_commit(w), 0);
	c = wt_open(path);
	assert_string_equal(mfs_container_metadata(c, &len), good);
	mfs_container_close(c);
}

/* ------------------------------------------------------------------ */
/* Sources                                                             */
/* ------------------------------------------------------------------ */

/* A source that gives @good_calls pieces of @piece bytes, then @result. */
struct scripted_source {
	size_t good_calls;
	size_t piece;
	ssize_t result;
};

static ssize_t scripted_read(void *ctx, void *buf, size_t len)
{
	struct scripted_source *s = ctx;

	if (s->good_calls == 0)
		return s->result;
	s->good_calls--;
	if (s->piece < len)
		len = s->piece;
	memset(buf, 0x5a, len);
	return (ssize_t)len;
}

static void test_source_failures(void **state)
{
	const struct wt_ctx *ctx = *state;
	const struct {
		struct scripted_source src;
		int rc;
		const char *msg;
	} cases[] = {
		{{2, 1000, -EIO}, -EIO, "source failed at byte 2000"},
		{{0, 0, -ENOSPC}, -ENOSPC, "source failed at byte 0"},
		{{4, 1000, 0}, -EINVAL, "source ended after 4000 of 8192 bytes"},
		{{0, 0, 8193}, -EINVAL, "source returned 8193 bytes when asked "
					"for at most 4096"},
		{{0, 0, -5000}, -EIO, "source returned -5000, not a negative "
				      "errno"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct scripted_source src = cases[i].src;
		mfs_array_spec s = wt_spec1("arr", MFS_DTYPE_UINT16, 4096,
					    i % 2 ? MFS_CODEC_LZ4
						  : MFS_CODEC_NONE,
					    SMALL_CHUNK);
		mfs_writer *w;

		assert_int_equal(mfs_writer_create(&w,
						   wt_path(ctx, "model.mfs")),
				 0);
		assert_int_equal(mfs_writer_add_array(w, &s, scripted_read,
						      &src),
				 cases[i].rc);
		assert_msg(cases[i].msg);
		assert_msg("array 'arr'");
		assert_poisoned_then_commit(w);
		assert_untouched(ctx);
	}
}

/* add_array_fd: a read error and a file shorter than the array. */
static void test_fd_source_failures(void **state)
{
	const struct wt_ctx *ctx = *state;
	const char *src_path = wt_path(ctx, "short.bin");
	uint8_t data[100] = {0};
	mfs_array_spec s = wt_spec1("arr", MFS_DTYPE_UINT8, 100,
				    MFS_CODEC_NONE, 0);
	mfs_writer *w;
	int fd;

	wt_write_file(src_path, data, 60);
	fd = open(src_path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(mfs_writer_create(&w, wt_path(ctx, "model.mfs")), 0);
	assert_int_equal(mfs_writer_add_array_fd(w, &s, fd, 10), -EINVAL);
	assert_msg("source ended after 50 of 100 bytes");
	assert_poisoned_then_commit(w);
	close(fd);
	assert_int_equal(unlink(src_path), 0);
	assert_untouched(ctx);

	fd = open(ctx->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(mfs_writer_create(&w, wt_path(ctx, "model.mfs")), 0);
	assert_int_equal(mfs_writer_add_array_fd(w, &s, fd, 0), -EISDIR);
	assert_msg("source failed at byte 0");
	assert_poisoned_then_commit(w);
	close(fd);
	assert_untouched(ctx);
}

/* ------------------------------------------------------------------ */
/* Create                                                              */
/* ------------------------------------------------------------------ */

static void test_create_failures(void **state)
{
	const struct wt_ctx *ctx = *state;
	char name[NAME_MAX + 1];
	char *long_path = malloc(PATH_MAX + 1);
	mfs_writer *w = NULL;
	int rc;

	assert_int_equal(mfs_writer_create(&w, wt_path(ctx, "no/such.mfs")),
			 -ENOENT);
	assert_null(w);
	assert_msg("opening directory");
	assert_msg("/no'");
	const char *no_name[] = {"/", "dir/", ".", "..", "x/.", "x/.."};
	for (size_t i = 0; i < sizeof(no_name) / sizeof(no_name[0]); i++) {
		assert_int_equal(mfs_writer_create(&w, no_name[i]), -EINVAL);
		assert_msg("does not end in a file name");
	}

	/* ".<name>.tmp.XXXXXX" must fit NAME_MAX: 243 bytes do, 244 not. */
	memset(name, 'n', sizeof(name));
	name[NAME_MAX - 12] = '\0';
	assert_int_equal(mfs_writer_create(&w, wt_path(ctx, name)), 0);
	assert_int_equal(mfs_writer_commit(w), 0);
	assert_int_equal(unlink(wt_path(ctx, name)), 0);
	memset(name, 'n', sizeof(name));
	name[NAME_MAX - 11] = '\0';
	assert_int_equal(mfs_writer_create(&w, wt_path(ctx, name)),
			 -ENAMETOOLONG);
	assert_msg("NAME_MAX (255)");

	assert_non_null(long_path);
	memset(long_path, 'p', PATH_MAX);
	for (size_t i = 1; i < PATH_MAX; i += 100)
		long_path[i] = '/';
	long_path[PATH_MAX] = '\0';
	assert_int_equal(mfs_writer_create(&w, long_path), -ENAMETOOLONG);
	assert_msg("path of 4096 bytes is too long: the temporary path must "
		   "be shorter than PATH_MAX (4096)");
	free(long_path);

	/* A directory where no file can be created (sysfs). */
	rc = mfs_writer_create(&w, "/sys/model.mfs");
	assert_true(rc == -EACCES || rc == -EROFS || rc == -EPERM);
	assert_msg("creating temporary file '/sys/.model.mfs.tmp.");

	fchmod_fail = true;
	fault_errno = EPERM;
	assert_int_equal(mfs_writer_create(&w, wt_path(ctx, "new.mfs")),
			 -EPERM);
	assert_msg("fchmod of");
	assert_null(w);
	faults_off();
	assert_untouched(ctx);
}

/* ------------------------------------------------------------------ */
/* Write failures                                                      */
/* ------------------------------------------------------------------ */

/* Largest file a child may write in the RLIMIT_FSIZE tests. */
#define FSIZE_LIMIT (64 * KIB)

/*
 * In a child limited to FSIZE_LIMIT bytes per file (SIGXFSZ ignored, so
 * writes past it fail with EFBIG), writes one raw array of @len random
 * bytes to model.mfs.  Exits with 1 if the add failed, 2 if the commit
 * failed, 0 on success; the errno comes back through a pipe.
 */
static void run_limited_writer(const struct wt_ctx *ctx, size_t len,
			       int *stage, int *err)
{
	struct rlimit lim = {FSIZE_LIMIT, FSIZE_LIMIT};
	int fds[2], status, code = 0;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		uint8_t *data = malloc(len);
		mfs_array_spec s = wt_spec1("big", MFS_DTYPE_UINT8, len,
					    MFS_CODEC_LZ4, SMALL_CHUNK);
		mfs_writer *w;
		int rc, st = 3;

		signal(SIGXFSZ, SIG_IGN);
		if (!data || setrlimit(RLIMIT_FSIZE, &lim) != 0)
			_exit(st);
		wt_random(data, len, 3);
		rc = mfs_writer_create(&w, wt_path(ctx, "model.mfs"));
		if (rc == 0) {
			rc = mfs_writer_add_array_buffer(w, &s, data, len);
			st = 1;
			if (rc == 0) {
				rc = mfs_writer_commit(w);
				st = 2;
			} else {
				mfs_writer_abort(w);
			}
		}
		if (write(fds[1], &rc, sizeof(rc)) != sizeof(rc))
			_exit(3);
		_exit(rc == 0 ? 0 : st);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &code, sizeof(code)), sizeof(code));
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	*stage = WEXITSTATUS(status);
	*err = code;
}

/* Message of the failure commit_with_fault saw (later calls replace
 * mfs_last_error()). */
static char fault_msg[1024];

static void assert_fault_msg(const char *needle)
{
	if (!strstr(fault_msg, needle))
		print_error("message '%s' lacks '%s'\n", fault_msg, needle);
	assert_non_null(strstr(fault_msg, needle));
}

/* The file limit is hit while streaming chunks, then while writing the
 * index: both fail with EFBIG and leave nothing behind. */
static void test_write_failure_efbig(void **state)
{
	const struct wt_ctx *ctx = *state;
	int stage, err;

	run_limited_writer(ctx, 4 * FSIZE_LIMIT, &stage, &err);
	assert_int_equal(stage, 1);
	assert_int_equal(err, -EFBIG);
	assert_untouched(ctx);

	/* Random data is stored verbatim: the array ends exactly at the
	 * limit, so the index is the first write past it. */
	run_limited_writer(ctx, FSIZE_LIMIT - MFS_PAGE_SIZE, &stage, &err);
	assert_int_equal(stage, 2);
	assert_int_equal(err, -EFBIG);
	assert_untouched(ctx);
}

/* Commits one small array to model.mfs with the armed fault; returns rc. */
static int commit_with_fault(const struct wt_ctx *ctx)
{
	uint8_t data[3 * SMALL_CHUNK];
	mfs_array_spec s = wt_spec1("arr", MFS_DTYPE_UINT8, sizeof(data),
				    MFS_CODEC_NONE, SMALL_CHUNK);
	mfs_writer *w;
	int rc;

	wt_random(data, sizeof(data), 5);
	assert_int_equal(mfs_writer_create(&w, wt_path(ctx, "model.mfs")), 0);
	rc = mfs_writer_add_array_buffer(w, &s, data, sizeof(data));
	if (rc == 0) {
		rc = mfs_writer_commit(w);
		snprintf(fault_msg, sizeof(fault_msg), "%s", mfs_last_error());
		return rc;
	}
	snprintf(fault_msg, sizeof(fault_msg), "%s", mfs_last_error());
	assert_poisoned_then_commit(w);
	return rc;
}

static void test_io_faults(void **state)
{
	const struct wt_ctx *ctx = *state;

	/* Disk full on the second chunk of the array. */
	fault_errno = ENOSPC;
	pwrite_fail_offset = MFS_DATA_START + SMALL_CHUNK;
	assert_int_equal(commit_with_fault(ctx), -ENOSPC);
	assert_fault_msg("array 'arr': writing 4096 bytes at offset 8192");
	assert_untouched(ctx);

	/* The header, written last, at offset 0. */
	fault_errno = EIO;
	pwrite_fail_offset = 0;
	assert_int_equal(commit_with_fault(ctx), -EIO);
	assert_fault_msg("writing the header of '.model.mfs.tmp.");
	assert_untouched(ctx);

	/* fsync of the file before the rename. */
	faults_off();
	fault_errno = EIO;
	fsync_fail_at = 1;
	assert_int_equal(commit_with_fault(ctx), -EIO);
	assert_fault_msg("fsync of '.model.mfs.tmp.");
	assert_untouched(ctx);
}

/* The rename fails when a directory sits at the final path. */
static void test_rename_failure(void **state)
{
	const struct wt_ctx *ctx = *state;
	const char *blocker = wt_path(ctx, "model.mfs");
	const char *inside = wt_path(ctx, "model.mfs/keep");
	int rc;

	assert_int_equal(unlink(blocker), 0);
	assert_int_equal(mkdir(blocker, 0755), 0);
	wt_write_file(inside, old_bytes, sizeof(old_bytes));
	rc = commit_with_fault(ctx);
	assert_int_equal(rc, -EISDIR);
	assert_fault_msg("renaming '.model.mfs.tmp.");
	wt_assert_file(inside, old_bytes, sizeof(old_bytes));
	assert_int_equal(wt_count_entries(ctx->dir), 1);
	assert_int_equal(unlink(inside), 0);
	assert_int_equal(rmdir(blocker), 0);
}

/* fsync of the directory fails after the rename: the complete container
 * is published, the error still reported, no temporary file left. */
static void test_directory_fsync_failure(void **state)
{
	const struct wt_ctx *ctx = *state;
	mfs_container *c;

	fault_errno = EIO;
	fsync_fail_at = 2;
	assert_int_equal(commit_with_fault(ctx), -EIO);
	assert_fault_msg("published, but fsync of its directory failed");
	faults_off();
	c = wt_open(wt_path(ctx, "model.mfs"));
	assert_int_equal(mfs_container_verify(c, NULL, NULL), 0);
	mfs_container_close(c);
	assert_int_equal(wt_count_entries(ctx->dir), 1);
}

#define ERR_TEST(fn) cmocka_unit_test_setup_teardown(fn, err_setup, err_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		ERR_TEST(test_bad_specs),
		ERR_TEST(test_duplicate_name),
		ERR_TEST(test_too_many_arrays),
		ERR_TEST(test_null_arguments),
		ERR_TEST(test_buffer_length_mismatch),
		ERR_TEST(test_bad_metadata),
		ERR_TEST(test_source_failures),
		ERR_TEST(test_fd_source_failures),
		ERR_TEST(test_create_failures),
		ERR_TEST(test_write_failure_efbig),
		ERR_TEST(test_io_faults),
		ERR_TEST(test_rename_failure),
		ERR_TEST(test_directory_fsync_failure),
	};

	return cmocka_run_group_tests_name("writer errors", tests, NULL, NULL);
}
