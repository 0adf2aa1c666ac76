/*
 * test_mount.c - mount stores, through the real daemon.
 *
 * Phase 1 serves a store that already holds models (so it needs nothing
 * but a running daemon): mount clients, a child process from the spec, the
 * debug guard on mapped .npy files, mfs_model_open of a model directory,
 * mfs_store_get with a daemon present, and removing through a mount
 * store.  Phase 2 runs the shared cases on an
 * empty store: every put goes through the daemon's store directory and
 * waits for the model to appear on the mount, so it needs the daemon's
 * live store updates.  Skipped (exit 77) without fs/modelfs or /dev/fuse,
 * unless MODELFS_REQUIRE_FUSE=1.  The daemon is always unmounted and
 * stopped, also when a test fails or meson's timeout sends SIGTERM.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cases.h"
#include "mount_internal.h"

#define CT_OUT_MAX 8192
#define CT_SPEC_MAX (PATH_MAX + 16)

static char ct_base[PATH_MAX];
static struct ct_daemon ct_d;

/* Writes the standard model variant @v (with derived) to @path. */
static void ct_write_std(const char *path, unsigned v)
{
	mfs_builder *b = ct_std_builder(v);

	mfs_sharing_begin();
	assert_int_equal(mfs_builder_write(b, path), 0);
	assert_int_equal(mfs_sharing_end(), 0);
	mfs_builder_free(b);
}

static const char *ct_mount_spec(void)
{
	static char spec[CT_SPEC_MAX];

	snprintf(spec, sizeof(spec), "mount:%s", ct_d.mnt);
	return spec;
}

/* ------------------------------------------------------------------ */
/* Phase 1: a store with models in it before the daemon starts         */
/* ------------------------------------------------------------------ */

/* A mount client maps the served .npy files: same arrays, metadata. */
static void test_mount_get(void **state)
{
	mfs_client *c;
	mfs_model *m, *m2;

	(void)state;
	assert_int_equal(mfs_client_open(&c, ct_mount_spec()), 0);
	assert_int_equal(mfs_get_model(c, "std", &m), 0);
	ct_check_std(m, 1, true);
	assert_int_equal(mfs_get_model(c, "other", &m2), 0);
	ct_check_std(m2, 2, true);
	ct_expect(mfs_get_model(c, "missing", &m2), -ENOENT, "missing");
	assert_int_equal(mfs_model_release(m2), 0);
	assert_int_equal(mfs_model_release(m), 0);
	assert_int_equal(mfs_client_close(c), 0);
	/* A bare path served by the daemon opens a mount client too. */
	assert_int_equal(mfs_client_open(&c, ct_d.mnt), 0);
	assert_int_equal(mfs_get_model(c, "std", &m), 0);
	ct_check_std(m, 1, true);
	assert_int_equal(mfs_model_release(m), 0);
	assert_int_equal(mfs_client_close(c), 0);
}

/* mfs_model_open of a model directory on the mount, and of the file it
 * serves; the mount's root is no model directory. */
static void test_mount_model_open(void **state)
{
	char dir[PATH_MAX];
	mfs_model *m;

	(void)state;
	assert_true(snprintf(dir, sizeof(dir), "%s/std/", ct_d.mnt) <
		    (int)sizeof(dir));
	assert_int_equal(mfs_model_open(dir, &m), 0);
	ct_check_std(m, 1, true);
	assert_string_equal(mfs_model_key(m), "std");
	assert_int_equal(mfs_model_release(m), 0);
	assert_int_equal(mfs_model_open(ct_path(ct_d.store, "std.mfs"), &m), 0);
	ct_check_std(m, 1, true);
	assert_string_equal(mfs_model_key(m), "std");
	assert_int_equal(mfs_model_release(m), 0);
	ct_expect(mfs_model_open(ct_d.mnt, &m), -EBADMSG, "neither");
	ct_expect(mfs_model_open(ct_path(ct_d.mnt, "missing"), &m), -ENOENT,
		  "missing");
}

/* A separate process from the spec string alone sees the same model. */
static void test_mount_child(void **state)
{
	char out[CT_OUT_MAX], want[CT_OUT_MAX], child[PATH_MAX];
	char spec[CT_SPEC_MAX];
	mfs_client *c;
	mfs_model *m;
	int status;

	(void)state;
	snprintf(child, sizeof(child), "%s",
		 ct_build_path("tests/client/client_child"));
	snprintf(spec, sizeof(spec), "%s", ct_mount_spec());
	status = ct_run((char *[]){child, spec, "std", NULL}, out,
			sizeof(out));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(mfs_client_open(&c, spec), 0);
	assert_int_equal(mfs_get_model(c, "std", &m), 0);
	ct_digest(m, want, sizeof(want));
	assert_string_equal(out, want);
	assert_int_equal(mfs_model_release(m), 0);
	assert_int_equal(mfs_client_close(c), 0);
}

/* MODELFS_DEBUG=1: a read of a released mount mapping dies (SIGSEGV). */
static void test_mount_guard(void **state)
{
	static const char *const arrays[] = {"emb", "sim.data"};
	struct sigaction dfl = {.sa_handler = SIG_DFL};

	(void)state;
	for (size_t i = 0; i < sizeof(arrays) / sizeof(*arrays); i++) {
		int status;
		pid_t pid;
		fflush(NULL);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			const volatile uint8_t *p;
			mfs_array_view a;
			mfs_client *c;
			mfs_model *m;
			sigaction(SIGSEGV, &dfl, NULL);
			setenv("MODELFS_DEBUG", "1", 1);
			if (mfs_client_open(&c, ct_mount_spec()) ||
			    mfs_get_model(c, "std", &m) ||
			    mfs_model_array(m, arrays[i], &a))
				_exit(1);
			p = a.data;
			(void)p[0];
			mfs_model_release(m);
			(void)p[1]; /* the stray read */
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGSEGV);
	}
}

/* mfs_store_get picks the mount when the daemon serves MODELFS_MOUNT,
 * ahead of MODELFS_STORE; a remove goes to the store directory. */
static void test_mount_store(void **state)
{
	char want[CT_SPEC_MAX];
	mfs_store *s, *t;

	(void)state;
	snprintf(want, sizeof(want), "%s", ct_mount_spec());
	ct_setenv("MODELFS_MOUNT", ct_d.mnt);
	ct_setenv("MODELFS_STORE", ct_path(ct_base, "not-used"));
	assert_int_equal(mfs_store_get(&s, 0), 0);
	assert_string_equal(mfs_store_client_spec(s), want);
	assert_int_equal(mfs_store_get(&t, MFS_STORE_NO_REUSE), 0);
	assert_ptr_not_equal(s, t);
	assert_string_equal(mfs_store_client_spec(t), want);
	assert_int_equal(mfs_store_release(t), 0);
	assert_false(ct_exists(ct_path(ct_base, "not-used")));
	assert_int_equal(mfs_store_open_mount(&t, ct_d.mnt), 0);
	assert_string_equal(mfs_store_client_spec(t), want);
	assert_int_equal(mfs_store_remove(t, "other"), 0);
	assert_false(ct_exists(ct_path(ct_d.store, "other.mfs")));
	ct_expect(mfs_store_remove(t, "other"), -ENOENT, "other");
	assert_int_equal(mfs_store_release(t), 0);
	assert_int_equal(mfs_store_release(s), 0);
	assert_true(ct_exists(ct_path(ct_d.store, "std.mfs")));
	ct_setenv("MODELFS_MOUNT", NULL);
	ct_setenv("MODELFS_STORE", NULL);
}

/* A bind mount of a model directory is fuse.modelfs too, but its root
 * tells no store directory: -ENOTSUP. */
static void test_mount_without_store_dir(void **state)
{
	char bind[PATH_MAX];
	mfs_store *s;
	int rc;

	(void)state;
	assert_true(snprintf(bind, sizeof(bind), "%s/bind", ct_base) <
		    (int)sizeof(bind));
	assert_int_equal(mkdir(bind, 0755), 0);
	if (mount(ct_path(ct_d.mnt, "std"), bind, NULL, MS_BIND, NULL) < 0) {
		print_message("SKIP: bind mount: %s\n", strerror(errno));
		rmdir(bind);
		skip();
	}
	rc = mfs_store_open_mount(&s, bind);
	umount2(bind, MNT_DETACH);
	rmdir(bind);
	ct_expect(rc, -ENOTSUP, "store directory");
}

static int ct_phase1(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mount_get),
		cmocka_unit_test(test_mount_model_open),
		cmocka_unit_test(test_mount_child),
		cmocka_unit_test(test_mount_guard),
		cmocka_unit_test(test_mount_store),
		cmocka_unit_test(test_mount_without_store_dir),
	};
	char store[PATH_MAX], run[PATH_MAX];
	int fails;

	assert_true(snprintf(store, sizeof(store), "%s/store1", ct_base) <
		    (int)sizeof(store));
	assert_true(snprintf(run, sizeof(run), "%s/run1", ct_base) <
		    (int)sizeof(run));
	if (mkdir(store, 0755) < 0 || mkdir(run, 0755) < 0)
		return 1;
	ct_write_std(ct_path(store, "std.mfs"), 1);
	ct_write_std(ct_path(store, "other.mfs"), 2);
	if (ct_daemon_start(&ct_d, run, store) < 0)
		return 1;
	fails = cmocka_run_group_tests_name("mount-prepublished", tests, NULL,
					    NULL);
	ct_daemon_stop(&ct_d);
	return fails;
}

/* ------------------------------------------------------------------ */
/* Phase 2: puts through the mount                                     */
/* ------------------------------------------------------------------ */

/* A put the daemon cannot see (its store directory was moved away)
 * times out, stays published, and is removed at the last release. */
static void test_mount_put_timeout(void **state)
{
	char moved[PATH_MAX];
	mfs_builder *b = ct_std_builder(1);
	mfs_store *s;

	(void)state;
	assert_true(snprintf(moved, sizeof(moved), "%s.moved", ct_d.store) <
		    (int)sizeof(moved));
	assert_int_equal(mfs_store_open_mount(&s, ct_d.mnt), 0);
	assert_int_equal(rename(ct_d.store, moved), 0);
	assert_int_equal(mkdir(ct_d.store, 0755), 0);
	ct_expect(mfs_store_put(s, b, "lost", 0, NULL), -ETIMEDOUT,
		  "did not show on mount");
	assert_true(ct_exists(ct_path(ct_d.store, "lost.mfs")));
	assert_int_equal(mfs_store_release(s), 0);
	assert_int_equal(ct_count_entries(ct_d.store), 0);
	assert_int_equal(rmdir(ct_d.store), 0);
	assert_int_equal(rename(moved, ct_d.store), 0);
	mfs_builder_free(b);
}

static int ct_phase2(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mount_put_timeout),
	};
	struct ct_kind mount = {.name = "mount", .open = ct_open_mount,
				.cross_process = true};
	char store[PATH_MAX], run[PATH_MAX];
	int fails;

	assert_true(snprintf(store, sizeof(store), "%s/store2", ct_base) <
		    (int)sizeof(store));
	assert_true(snprintf(run, sizeof(run), "%s/run2", ct_base) <
		    (int)sizeof(run));
	if (mkdir(store, 0755) < 0 || mkdir(run, 0755) < 0)
		return 1;
	if (ct_daemon_start(&ct_d, run, store) < 0)
		return 1;
	snprintf(mount.location, sizeof(mount.location), "%s", ct_d.mnt);
	snprintf(mount.store_dir, sizeof(mount.store_dir), "%s", store);
	snprintf(mount.scratch, sizeof(mount.scratch), "%s", ct_base);
	fails = ct_run_cases("mount-store", &mount);
	fails += cmocka_run_group_tests_name("mount-put", tests, NULL, NULL);
	ct_daemon_stop(&ct_d);
	return fails;
}

/* ------------------------------------------------------------------ */
/* Phase 3: a mount left behind by a daemon that was killed            */
/* ------------------------------------------------------------------ */

/* How long the mount may take to die after its daemon: 5 s. */
#define CT_DEAD_POLLS 500
#define CT_DEAD_POLL_US 10000

/* Opening it names the dead daemon and the way out; mfs_store_get does
 * not count it as served and falls back to the directory store. */
static void test_mount_dead(void **state)
{
	char spec[CT_SPEC_MAX];
	mfs_client *c;
	mfs_store *s;

	(void)state;
	assert_int_equal(kill(ct_d.pid, SIGKILL), 0);
	assert_int_equal(waitpid(ct_d.pid, NULL, 0), ct_d.pid);
	ct_d.pid = 0;
	/* The serving process, the daemon's child, is killed with it; the
	 * mount is dead once that one is gone too. */
	for (int i = 0; i < CT_DEAD_POLLS &&
			mfs_mount_probe(ct_d.mnt) != MFS_MOUNT_DEAD; i++)
		usleep(CT_DEAD_POLL_US);
	assert_int_equal(mfs_mount_probe(ct_d.mnt), MFS_MOUNT_DEAD);
	assert_false(mfs_is_modelfs_mount(ct_d.mnt));
	ct_expect(mfs_store_open_mount(&s, ct_d.mnt), -ENOTCONN,
		  "fusermount3 -uz ");
	snprintf(spec, sizeof(spec), "%s", ct_mount_spec());
	ct_expect(mfs_client_open(&c, spec), -ENOTCONN, "daemon has exited");
	ct_expect(mfs_client_open(&c, ct_d.mnt), -ENOTCONN, "fusermount3 -uz ");
	ct_setenv("MODELFS_MOUNT", ct_d.mnt);
	ct_setenv("MODELFS_STORE", ct_path(ct_base, "fallback"));
	assert_int_equal(mfs_store_get(&s, 0), 0);
	assert_memory_equal(mfs_store_client_spec(s), "dir:", strlen("dir:"));
	assert_int_equal(mfs_store_release(s), 0);
	ct_setenv("MODELFS_MOUNT", NULL);
	ct_setenv("MODELFS_STORE", NULL);
}

static int ct_phase3(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mount_dead),
	};
	char store[PATH_MAX], run[PATH_MAX];
	int fails;

	assert_true(snprintf(store, sizeof(store), "%s/store3", ct_base) <
		    (int)sizeof(store));
	assert_true(snprintf(run, sizeof(run), "%s/run3", ct_base) <
		    (int)sizeof(run));
	if (mkdir(store, 0755) < 0 || mkdir(run, 0755) < 0)
		return 1;
	ct_write_std(ct_path(store, "std.mfs"), 1);
	if (ct_daemon_start(&ct_d, run, store) < 0)
		return 1;
	fails = cmocka_run_group_tests_name("mount-dead", tests, NULL, NULL);
	ct_daemon_stop(&ct_d);
	return fails;
}

int main(void)
{
	int fails;

	ct_require_daemon("client-mount");
	ct_scratch("/var/tmp", ct_base);
	fails = ct_phase1();
	fails += ct_phase2();
	fails += ct_phase3();
	ct_rmtree(ct_base);
	return fails ? 1 : 0;
}
