/*
 * test_proc.c - unit tests of what the daemon reads from /proc: the
 * process of a thread (holders are processes, FUSE tells threads) and
 * command names, for live and vanished pids.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "proc.h"

static void *thread_tgid(void *arg)
{
	pid_t *out = arg;
	pid_t tid = (pid_t)syscall(SYS_gettid);

	out[0] = tid;
	out[1] = mfsd_proc_tgid(tid);
	return NULL;
}

static void test_tgid(void **state)
{
	pid_t got[2];
	pthread_t t;

	(void)state;
	assert_int_equal(mfsd_proc_tgid(getpid()), getpid());
	assert_int_equal(pthread_create(&t, NULL, thread_tgid, got), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_not_equal(got[0], getpid());
	assert_int_equal(got[1], getpid());
}

/* A pid that is gone maps to itself, with no command name. */
static void test_gone(void **state)
{
	char comm[MFSD_COMM_MAX];
	pid_t child = fork();

	(void)state;
	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	assert_int_equal(waitpid(child, NULL, 0), child);
	assert_int_equal(mfsd_proc_tgid(child), child);
	strcpy(comm, "stale");
	mfsd_proc_comm(child, comm, sizeof(comm));
	assert_string_equal(comm, "");
}

static void test_comm(void **state)
{
	char comm[MFSD_COMM_MAX];

	(void)state;
	assert_int_equal(prctl(PR_SET_NAME, "mfsd-comm-test"), 0);
	mfsd_proc_comm(getpid(), comm, sizeof(comm));
	assert_string_equal(comm, "mfsd-comm-test");
	/* Init is another user's process: tgkill says EPERM or finds it. */
	assert_int_equal(mfsd_proc_tgid(1), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tgid),
		cmocka_unit_test(test_gone),
		cmocka_unit_test(test_comm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
