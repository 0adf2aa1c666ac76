/*
 * test_writer_lock.c - the flock a writer holds on its temporary file and
 * mfs_store_gc, which removes only temporaries nobody holds: a live
 * writer's file survives a gc; a writer killed with SIGKILL mid-write
 * leaves its temporary (and no model) until a gc removes it.
 *
 * flock is wrapped at link time (-Wl,--wrap=flock) so that the race of a
 * gc removing a fresh temporary before the writer locks it, and a failing
 * flock, can be produced on demand; by default it passes through.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wtest.h"

#define KIB 1024u
#define SMALL_CHUNK (4 * KIB)
/* Elements of the test array: 16 chunks of SMALL_CHUNK bytes. */
#define ARRAY_ELEMS (16u * SMALL_CHUNK)
/* Source calls the child answers before it stops and waits to die. */
#define CHILD_CALLS_BEFORE_STOP 4
/* Most names mfs_store_gc reports in one test. */
#define MAX_REMOVED 8
/* The writer's attempts at a temporary file (MFS_TMP_ATTEMPTS). */
#define WRITER_TMP_ATTEMPTS 8

/* ------------------------------------------------------------------ */
/* Fault injection on flock                                            */
/* ------------------------------------------------------------------ */

/* Blocking LOCK_EX calls (the writer's) still to be preceded by an unlink
 * of the file, as if a gc had removed it just before. */
static int unlink_before_lock;
/* errno the next flock of each kind fails with (0 = pass through). */
static int fail_blocking_errno;
static int fail_nonblocking_errno;

int __real_flock(int fd, int op);
int __wrap_flock(int fd, int op);

/* Unlinks the file open on @fd by its /proc/self/fd name. */
static void unlink_fd_name(int fd)
{
	char link[64], target[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	assert_true(n > 0);
	target[n] = '\0';
	assert_int_equal(unlink(target), 0);
}

int __wrap_flock(int fd, int op)
{
	if (!(op & LOCK_NB) && fail_blocking_errno) {
		errno = fail_blocking_errno;
		fail_blocking_errno = 0;
		return -1;
	}
	if ((op & LOCK_NB) && fail_nonblocking_errno) {
		errno = fail_nonblocking_errno;
		fail_nonblocking_errno = 0;
		return -1;
	}
	if (!(op & LOCK_NB) && unlink_before_lock > 0) {
		unlink_before_lock--;
		unlink_fd_name(fd);
	}
	return __real_flock(fd, op);
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* What a gc callback saw. */
struct removed_names {
	size_t count;
	char names[MAX_REMOVED][NAME_MAX + 1];
};

static void record_removed(void *ctx, const char *name)
{
	struct removed_names *r = ctx;

	assert_true(r->count < MAX_REMOVED);
	snprintf(r->names[r->count++], NAME_MAX + 1, "%s", name);
}

/* The name of the only hidden entry of @dir, copied into @out. */
static void only_hidden_name(const char *dir, char *out)
{
	char cmd[PATH_MAX + 64];
	FILE *p;

	assert_int_equal(wt_count_hidden(dir), 1);
	snprintf(cmd, sizeof(cmd), "ls -A '%s' | grep '^\\.'", dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(out, NAME_MAX + 1, p));
	out[strcspn(out, "\n")] = '\0';
	pclose(p);
}

/* True if some other open file description holds a lock on @path. */
static bool is_locked(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool locked;

	assert_true(fd >= 0);
	locked = __real_flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	close(fd);
	return locked;
}

static mfs_array_spec test_spec(void)
{
	return wt_spec1("a", MFS_DTYPE_UINT8, ARRAY_ELEMS, MFS_CODEC_NONE,
			SMALL_CHUNK);
}

/* A source that tells the parent (one byte on @fd) after some calls and
 * then waits to be killed. */
struct stopping_source {
	int notify_fd;
	int calls;
};

static ssize_t stopping_read(void *ctx, void *buf, size_t len)
{
	struct stopping_source *s = ctx;

	if (++s->calls > CHILD_CALLS_BEFORE_STOP) {
		if (write(s->notify_fd, "x", 1) != 1)
			_exit(2);
		for (;;)
			pause();
	}
	memset(buf, s->calls, len);
	return (ssize_t)len;
}

/* Forks a child that writes @path and stops mid-array; returns its pid
 * once its temporary file holds some chunks. */
static pid_t fork_stopped_writer(const char *path)
{
	int fds[2];
	char byte;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct stopping_source src = {.notify_fd = fds[1]};
		mfs_array_spec spec = test_spec();
		mfs_writer *w;

		close(fds[0]);
		if (mfs_writer_create(&w, path) != 0)
			_exit(1);
		mfs_writer_add_array(w, &spec, stopping_read, &src);
		_exit(1); /* not reached: the source never returns */
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &byte, 1), 1);
	close(fds[0]);
	return pid;
}

static void kill_and_reap(pid_t pid)
{
	int status;

	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

/* A live writer's temporary is locked; gc keeps it; commit still works. */
static void test_live_writer_survives_gc(void **state)
{
	struct wt_ctx *c = *state;
	struct removed_names r = {0};
	mfs_array_spec spec = test_spec();
	uint8_t *data = calloc(1, ARRAY_ELEMS);
	char tmp[NAME_MAX + 1];
	size_t removed = 99;
	mfs_writer *w;

	assert_non_null(data);
	assert_int_equal(mfs_writer_create(&w, wt_path(c, "m.mfs")), 0);
	only_hidden_name(c->dir, tmp);
	assert_true(is_locked(wt_path(c, tmp)));
	assert_int_equal(mfs_store_gc(c->dir, &removed, record_removed, &r), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(r.count, 0);
	assert_int_equal(wt_count_hidden(c->dir), 1);
	assert_int_equal(mfs_writer_add_array_buffer(w, &spec, data,
						     ARRAY_ELEMS), 0);
	assert_int_equal(mfs_writer_commit(w), 0);
	mfs_container_close(wt_open(wt_path(c, "m.mfs")));
	assert_int_equal(wt_count_hidden(c->dir), 0);
	/* The lock went with the writer: the published file is free. */
	assert_false(is_locked(wt_path(c, "m.mfs")));
	free(data);
}

/* SIGKILL mid-write: no model, the temporary stays (unlocked) until gc. */
static void test_killed_writer_leaves_temp_for_gc(void **state)
{
	struct wt_ctx *c = *state;
	struct removed_names r = {0};
	char tmp[NAME_MAX + 1];
	size_t removed = 0;
	struct stat st;
	pid_t pid;

	pid = fork_stopped_writer(wt_path(c, "m.mfs"));
	only_hidden_name(c->dir, tmp);
	assert_int_equal(stat(wt_path(c, tmp), &st), 0);
	assert_true(st.st_size >= (off_t)(CHILD_CALLS_BEFORE_STOP *
					  SMALL_CHUNK));
	/* While the writer lives, gc keeps its file. */
	assert_int_equal(mfs_store_gc(c->dir, &removed, NULL, NULL), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(wt_count_hidden(c->dir), 1);
	kill_and_reap(pid);
	wt_assert_absent(wt_path(c, "m.mfs"));
	assert_int_equal(wt_count_entries(c->dir), 1);
	assert_false(is_locked(wt_path(c, tmp)));
	assert_int_equal(mfs_store_gc(c->dir, &removed, record_removed, &r), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(r.count, 1);
	assert_string_equal(r.names[0], tmp);
	assert_int_equal(wt_count_entries(c->dir), 0);
}

/* gc touches only unlocked regular files named ".*.tmp.*". */
static void test_gc_leaves_other_files(void **state)
{
	struct wt_ctx *c = *state;
	struct removed_names r = {0};
	size_t removed = 0;

	wt_write_file(wt_path(c, "m.mfs"), "x", 1);
	wt_write_file(wt_path(c, "x.tmp.abc"), "x", 1);  /* not hidden */
	wt_write_file(wt_path(c, ".keep"), "x", 1);      /* no ".tmp." */
	wt_write_file(wt_path(c, ".tmp.abc"), "x", 1);   /* nothing before */
	wt_write_file(wt_path(c, ".dead.mfs.tmp.Ab12Cd"), "x", 1);
	wt_write_file(wt_path(c, ".import.tmp.Zz9"), "x", 1);
	assert_int_equal(mkdir(wt_path(c, ".dir.tmp.1"), 0755), 0);
	assert_int_equal(symlink("m.mfs", wt_path(c, ".link.tmp.1")), 0);
	assert_int_equal(mkfifo(wt_path(c, ".fifo.tmp.1"), 0644), 0);
	assert_int_equal(mfs_store_gc(c->dir, &removed, record_removed, &r), 0);
	assert_int_equal(removed, 2);
	assert_int_equal(r.count, 2);
	wt_assert_absent(wt_path(c, ".dead.mfs.tmp.Ab12Cd"));
	wt_assert_absent(wt_path(c, ".import.tmp.Zz9"));
	wt_assert_file(wt_path(c, "m.mfs"), "x", 1);
	wt_assert_file(wt_path(c, "x.tmp.abc"), "x", 1);
	wt_assert_file(wt_path(c, ".keep"), "x", 1);
	wt_assert_file(wt_path(c, ".tmp.abc"), "x", 1);
	assert_int_equal(wt_count_entries(c->dir), 7);
	rmdir(wt_path(c, ".dir.tmp.1"));
}

static void test_gc_bad_arguments(void **state)
{
	struct wt_ctx *c = *state;
	size_t removed = 7;

	assert_int_equal(mfs_store_gc(NULL, &removed, NULL, NULL), -EINVAL);
	assert_int_equal(removed, 0);
	assert_non_null(strstr(mfs_last_error(), "NULL"));
	assert_int_equal(mfs_store_gc(wt_path(c, "missing"), NULL, NULL, NULL),
			 -ENOENT);
	assert_non_null(strstr(mfs_last_error(), "missing"));
	wt_write_file(wt_path(c, "file"), "x", 1);
	assert_int_equal(mfs_store_gc(wt_path(c, "file"), NULL, NULL, NULL),
			 -ENOTDIR);
}

/* A failing flock in gc is reported, and the other files still go. */
static void test_gc_flock_failure_reported(void **state)
{
	struct wt_ctx *c = *state;
	size_t removed = 0;

	wt_write_file(wt_path(c, ".a.tmp.1"), "x", 1);
	wt_write_file(wt_path(c, ".b.tmp.2"), "x", 1);
	fail_nonblocking_errno = ENOLCK;
	assert_int_equal(mfs_store_gc(c->dir, &removed, NULL, NULL), -ENOLCK);
	assert_int_equal(removed, 1);
	assert_int_equal(wt_count_entries(c->dir), 1);
	assert_non_null(strstr(mfs_last_error(), ".tmp."));
	assert_int_equal(mfs_store_gc(c->dir, &removed, NULL, NULL), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(wt_count_entries(c->dir), 0);
}

/* A gc removing the fresh temporary before the writer locks it: the
 * writer makes another one and succeeds. */
static void test_writer_retries_after_gc_race(void **state)
{
	struct wt_ctx *c = *state;
	mfs_array_spec spec = test_spec();
	uint8_t *data = calloc(1, ARRAY_ELEMS);
	mfs_writer *w;

	assert_non_null(data);
	unlink_before_lock = 2;
	assert_int_equal(mfs_writer_create(&w, wt_path(c, "m.mfs")), 0);
	assert_int_equal(unlink_before_lock, 0);
	assert_int_equal(wt_count_entries(c->dir), 1);
	assert_int_equal(mfs_writer_add_array_buffer(w, &spec, data,
						     ARRAY_ELEMS), 0);
	assert_int_equal(mfs_writer_commit(w), 0);
	mfs_container_close(wt_open(wt_path(c, "m.mfs")));
	assert_int_equal(wt_count_entries(c->dir), 1);
	free(data);
}

/* A gc winning every race: the writer gives up with -EAGAIN, leaving
 * nothing behind. */
static void test_writer_gives_up_after_repeated_races(void **state)
{
	struct wt_ctx *c = *state;
	mfs_writer *w = NULL;

	unlink_before_lock = WRITER_TMP_ATTEMPTS;
	assert_int_equal(mfs_writer_create(&w, wt_path(c, "m.mfs")), -EAGAIN);
	assert_null(w);
	assert_int_equal(unlink_before_lock, 0);
	assert_non_null(strstr(mfs_last_error(), "concurrent gc"));
	assert_int_equal(wt_count_entries(c->dir), 0);
}

/* flock itself failing: an error naming the file, nothing left. */
static void test_writer_lock_failure(void **state)
{
	struct wt_ctx *c = *state;
	mfs_writer *w = NULL;

	fail_blocking_errno = ENOLCK;
	assert_int_equal(mfs_writer_create(&w, wt_path(c, "m.mfs")), -ENOLCK);
	assert_null(w);
	assert_non_null(strstr(mfs_last_error(), "locking temporary file"));
	assert_int_equal(wt_count_entries(c->dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_live_writer_survives_gc,
						wt_setup, wt_teardown),
		cmocka_unit_test_setup_teardown(
			test_killed_writer_leaves_temp_for_gc, wt_setup,
			wt_teardown),
		cmocka_unit_test_setup_teardown(test_gc_leaves_other_files,
						wt_setup, wt_teardown),
		cmocka_unit_test_setup_teardown(test_gc_bad_arguments,
						wt_setup, wt_teardown),
		cmocka_unit_test_setup_teardown(test_gc_flock_failure_reported,
						wt_setup, wt_teardown),
		cmocka_unit_test_setup_teardown(
			test_writer_retries_after_gc_race, wt_setup,
			wt_teardown),
		cmocka_unit_test_setup_teardown(
			test_writer_gives_up_after_repeated_races, wt_setup,
			wt_teardown),
		cmocka_unit_test_setup_teardown(test_writer_lock_failure,
						wt_setup, wt_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
