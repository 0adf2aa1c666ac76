/*
 * test_proc.c - unit tests of what the daemon reads from /proc: the
 * process of a thread (holders are processes, FUSE tells threads; a
 * non-leader's is cached, and a cached pair is checked before it is
 * used) and command names, for live and vanished pids.
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

/* What a thread reports to the test that waits for it. */
struct thread_probe {
	pid_t tid;
	pid_t first;  /* mfsd_proc_tgid of itself, from /proc */
	pid_t second; /* again, from the cache */
	uint64_t hits; /* cache hits the second call added */
	pid_t stale;  /* with a stale pair planted for it */
	uint64_t stale_hits; /* hits that call added (none) */
};

static void *thread_cached(void *arg)
{
	struct thread_probe *p = arg;
	uint64_t before;

	p->tid = (pid_t)syscall(SYS_gettid);
	p->first = mfsd_proc_tgid(p->tid);
	before = mfsd_proc_tgid_hits();
	p->second = mfsd_proc_tgid(p->tid);
	p->hits = mfsd_proc_tgid_hits() - before;
	/* As if this tid had belonged to another process (init) that the
	 * cache remembered: tgkill refuses the pair, /proc is read. */
	mfsd_proc_tgid_remember(p->tid, 1);
	before = mfsd_proc_tgid_hits();
	p->stale = mfsd_proc_tgid(p->tid);
	p->stale_hits = mfsd_proc_tgid_hits() - before;
	return NULL;
}

/* A non-leader thread is attributed to its process, the second time from
 * the cache; a cached pair the thread no longer matches is refused. */
static void test_tgid_cached(void **state)
{
	struct thread_probe p = {0};
	pthread_t t;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, thread_cached, &p), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(p.first, getpid());
	assert_int_equal(p.second, getpid());
	assert_int_equal(p.hits, 1);
	assert_int_equal(p.stale, getpid());
	assert_int_equal(p.stale_hits, 0);
	/* The thread is gone, its pair still cached: its tid is not ours
	 * any more.  (It is free, or already reused by a thread of another
	 * process: the answer is the tid itself or that process.) */
	assert_int_not_equal(mfsd_proc_tgid(p.tid), getpid());
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
		cmocka_unit_test(test_tgid_cached),
		cmocka_unit_test(test_gone),
		cmocka_unit_test(test_comm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
