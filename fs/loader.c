/*
 * loader.c - the loader pool (see loader.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"
#include "log.h"

/* First size of the queue; it doubles as needed (a rescan of a large
 * store queues every name at once). */
#define MFSD_LOADER_QUEUE_FIRST 64u

/* Takes the oldest queued name.  l->lock held, something queued. */
static char *mfsd_loader_pop(struct mfsd_loader *l)
{
	char *name = l->queue[l->head];

	l->head = (l->head + 1) % l->queue_cap;
	l->nqueued--;
	return name;
}

static void *mfsd_loader_main(void *arg)
{
	struct mfsd_loader *l = arg;
	char *name;

	pthread_mutex_lock(&l->lock);
	for (;;) {
		while (!l->stop && l->nqueued == 0) {
			if (++l->nidle == l->nthreads)
				pthread_cond_broadcast(&l->idle);
			pthread_cond_wait(&l->work, &l->lock);
			l->nidle--;
		}
		if (l->stop)
			break;
		name = mfsd_loader_pop(l);
		pthread_mutex_unlock(&l->lock);
		l->fn(l->arg, name);
		free(name);
		pthread_mutex_lock(&l->lock);
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

int mfsd_loader_init(struct mfsd_loader *l, mfsd_loader_fn fn, void *arg,
		     unsigned max_threads)
{
	memset(l, 0, sizeof(*l));
	l->fn = fn;
	l->arg = arg;
	l->max_threads = max_threads ? max_threads : 1;
	l->threads = calloc(l->max_threads, sizeof(*l->threads));
	if (!l->threads)
		return -ENOMEM;
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->work, NULL);
	pthread_cond_init(&l->idle, NULL);
	return 0;
}

/* Makes room for one more queued name.  0 or -ENOMEM.  l->lock held. */
static int mfsd_loader_reserve(struct mfsd_loader *l)
{
	size_t cap = l->queue_cap ? l->queue_cap * 2 : MFSD_LOADER_QUEUE_FIRST;
	char **q;

	if (l->nqueued < l->queue_cap)
		return 0;
	q = malloc(cap * sizeof(*q));
	if (!q)
		return -ENOMEM;
	/* Unrolls the ring so the queue starts at 0. */
	for (size_t i = 0; i < l->nqueued; i++)
		q[i] = l->queue[(l->head + i) % l->queue_cap];
	free(l->queue);
	l->queue = q;
	l->queue_cap = cap;
	l->head = 0;
	return 0;
}

/* Starts one more thread if a queued name has no idle thread to take it.
 * l->lock held. */
static void mfsd_loader_grow(struct mfsd_loader *l)
{
	int rc;

	if (l->nidle >= l->nqueued || l->nthreads >= l->max_threads)
		return;
	rc = pthread_create(&l->threads[l->nthreads], NULL, mfsd_loader_main,
			    l);
	if (rc == 0)
		l->nthreads++;
	else
		mfsd_log(MFSD_LOG_WARNING, "cannot start a loader thread (%u "
			 "running): %s", l->nthreads, strerror(rc));
}

int mfsd_loader_push(struct mfsd_loader *l, const char *name)
{
	char *copy = strdup(name);
	bool inline_run;

	if (!copy)
		return -ENOMEM;
	pthread_mutex_lock(&l->lock);
	if (mfsd_loader_reserve(l) < 0) {
		pthread_mutex_unlock(&l->lock);
		free(copy);
		return -ENOMEM;
	}
	l->queue[(l->head + l->nqueued) % l->queue_cap] = copy;
	l->nqueued++;
	mfsd_loader_grow(l);
	/* Without any thread the name would wait for ever: take it back
	 * and do the work here. */
	inline_run = l->nthreads == 0;
	if (inline_run)
		copy = mfsd_loader_pop(l);
	else
		pthread_cond_signal(&l->work);
	pthread_mutex_unlock(&l->lock);
	if (inline_run) {
		l->fn(l->arg, copy);
		free(copy);
	}
	return 0;
}

void mfsd_loader_wait(struct mfsd_loader *l)
{
	pthread_mutex_lock(&l->lock);
	while (l->nqueued > 0 || l->nidle < l->nthreads)
		pthread_cond_wait(&l->idle, &l->lock);
	pthread_mutex_unlock(&l->lock);
}

/* Tells every thread to stop and joins them (what is queued stays). */
static void mfsd_loader_join_all(struct mfsd_loader *l)
{
	pthread_mutex_lock(&l->lock);
	l->stop = true;
	pthread_cond_broadcast(&l->work);
	pthread_mutex_unlock(&l->lock);
	for (unsigned i = 0; i < l->nthreads; i++)
		pthread_join(l->threads[i], NULL);
}

void mfsd_loader_drain(struct mfsd_loader *l)
{
	mfsd_loader_wait(l);
	mfsd_loader_join_all(l);
	/* Every thread has left both condition variables: the pool is as
	 * mfsd_loader_init left it, with whatever queue room it grew. */
	l->nthreads = 0;
	l->nidle = 0;
	l->stop = false;
}

void mfsd_loader_destroy(struct mfsd_loader *l)
{
	if (!l->threads)
		return;
	mfsd_loader_join_all(l);
	while (l->nqueued > 0)
		free(mfsd_loader_pop(l));
	free(l->queue);
	free(l->threads);
	pthread_cond_destroy(&l->idle);
	pthread_cond_destroy(&l->work);
	pthread_mutex_destroy(&l->lock);
	memset(l, 0, sizeof(*l));
}
