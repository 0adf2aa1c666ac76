/*
 * test_loader.c - unit tests of the loader pool: every name queued is
 * handled once and mfsd_loader_wait waits for all of them; names queued
 * behind jobs that block are handled by new threads at once, up to the
 * pool's limit and not beyond it; destroying a pool with blocked jobs
 * and queued names frees everything.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "loader.h"

#define NAMES 500
#define BLOCKERS 5
/* Long enough for a thread to start and take a name on a loaded
 * machine; a name that is not handled within it waits for a blocker. */
#define HANDLED_WITHIN_MS 5000
#define NOT_HANDLED_MS 300
#define MS_NS 1000000L

/* What the jobs of one test share. */
struct jobs {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	bool release;     /* blockers may return */
	unsigned blocked; /* blockers waiting */
	unsigned handled; /* names handled */
	bool fast_done;
	bool seen[NAMES];
};

static void jobs_init(struct jobs *j)
{
	memset(j, 0, sizeof(*j));
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->changed, NULL);
}

static void jobs_fini(struct jobs *j)
{
	pthread_cond_destroy(&j->changed);
	pthread_mutex_destroy(&j->lock);
}

/* mfsd_loader_fn: "block*" waits for release; "fast" is marked done;
 * a number marks its slot seen (twice is a failure). */
static void job(void *arg, const char *name)
{
	struct jobs *j = arg;

	pthread_mutex_lock(&j->lock);
	if (strncmp(name, "block", strlen("block")) == 0) {
		j->blocked++;
		pthread_cond_broadcast(&j->changed);
		while (!j->release)
			pthread_cond_wait(&j->changed, &j->lock);
		j->blocked--;
	} else if (strcmp(name, "fast") == 0) {
		j->fast_done = true;
	} else {
		int i = atoi(name);

		assert_false(j->seen[i]);
		j->seen[i] = true;
	}
	j->handled++;
	pthread_cond_broadcast(&j->changed);
	pthread_mutex_unlock(&j->lock);
}

/* Waits up to @ms for *@flag (under j->lock); returns it. */
static bool wait_flag(struct jobs *j, bool *flag, long ms)
{
	struct timespec deadline;
	bool v;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (ms % 1000) * MS_NS;
	if (deadline.tv_nsec >= 1000 * MS_NS) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000 * MS_NS;
	}
	pthread_mutex_lock(&j->lock);
	while (!*flag &&
	       pthread_cond_timedwait(&j->changed, &j->lock, &deadline) == 0)
		;
	v = *flag;
	pthread_mutex_unlock(&j->lock);
	return v;
}

/* Waits until @n blockers are blocked. */
static void wait_blocked(struct jobs *j, unsigned n)
{
	pthread_mutex_lock(&j->lock);
	while (j->blocked < n)
		pthread_cond_wait(&j->changed, &j->lock);
	pthread_mutex_unlock(&j->lock);
}

static void release(struct jobs *j)
{
	pthread_mutex_lock(&j->lock);
	j->release = true;
	pthread_cond_broadcast(&j->changed);
	pthread_mutex_unlock(&j->lock);
}

static void push(struct mfsd_loader *l, const char *name)
{
	assert_int_equal(mfsd_loader_push(l, name), 0);
}

/* Every name is handled exactly once; wait returns when all are. */
static void test_all_handled(void **state)
{
	struct mfsd_loader l;
	struct jobs j;
	char name[16];

	(void)state;
	jobs_init(&j);
	assert_int_equal(mfsd_loader_init(&l, job, &j, 4), 0);
	for (int i = 0; i < NAMES; i++) {
		snprintf(name, sizeof(name), "%d", i);
		push(&l, name);
	}
	mfsd_loader_wait(&l);
	assert_int_equal(j.handled, NAMES);
	for (int i = 0; i < NAMES; i++)
		assert_true(j.seen[i]);
	assert_true(l.nthreads >= 1 && l.nthreads <= 4);
	mfsd_loader_destroy(&l);
	jobs_fini(&j);
}

/* A name queued behind BLOCKERS blocked jobs is handled at once. */
static void test_not_behind_slow(void **state)
{
	struct mfsd_loader l;
	struct jobs j;
	char name[16];

	(void)state;
	jobs_init(&j);
	assert_int_equal(mfsd_loader_init(&l, job, &j,
					  MFSD_LOADER_MAX_THREADS), 0);
	for (int i = 0; i < BLOCKERS; i++) {
		snprintf(name, sizeof(name), "block%d", i);
		push(&l, name);
	}
	wait_blocked(&j, BLOCKERS);
	push(&l, "fast");
	assert_true(wait_flag(&j, &j.fast_done, HANDLED_WITHIN_MS));
	release(&j);
	mfsd_loader_wait(&l);
	assert_int_equal(j.handled, BLOCKERS + 1);
	mfsd_loader_destroy(&l);
	jobs_fini(&j);
}

/* No more threads than the limit: with all of them blocked, a name
 * waits; it is handled once one is free. */
static void test_limit(void **state)
{
	struct mfsd_loader l;
	struct jobs j;

	(void)state;
	jobs_init(&j);
	assert_int_equal(mfsd_loader_init(&l, job, &j, 2), 0);
	push(&l, "block0");
	push(&l, "block1");
	wait_blocked(&j, 2);
	push(&l, "fast");
	assert_false(wait_flag(&j, &j.fast_done, NOT_HANDLED_MS));
	assert_int_equal(l.nthreads, 2);
	release(&j);
	assert_true(wait_flag(&j, &j.fast_done, HANDLED_WITHIN_MS));
	mfsd_loader_wait(&l);
	mfsd_loader_destroy(&l);
	jobs_fini(&j);
}

/* Destroy joins blocked threads once they return and frees names still
 * queued (the sanitizer run checks for leaks). */
static void test_destroy_queued(void **state)
{
	struct mfsd_loader l;
	struct jobs j;

	(void)state;
	jobs_init(&j);
	assert_int_equal(mfsd_loader_init(&l, job, &j, 1), 0);
	push(&l, "block0");
	wait_blocked(&j, 1);
	push(&l, "1");
	push(&l, "2");
	release(&j);
	mfsd_loader_destroy(&l);
	assert_true(j.handled >= 1);
	jobs_fini(&j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_handled),
		cmocka_unit_test(test_not_behind_slow),
		cmocka_unit_test(test_limit),
		cmocka_unit_test(test_destroy_queued),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
