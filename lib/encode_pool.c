/*
 * encode_pool.c - worker threads encoding one array's chunks in parallel
 * (encode_pool_internal.h).  Chunks are independent (FORMAT.md), so only
 * the order of their results matters: chunk i lives in slot i % slots,
 * workers take chunks in submission order and the one collecting thread
 * waits for them in that same order.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "encode_pool_internal.h"

/* One chunk in flight. */
struct mfs_pool_slot {
	uint8_t *raw; /* chunk_size bytes; filled by the collecting thread */
	char *enc;    /* ops->bound(chunk_size) bytes; written by a worker */
	uint32_t raw_len;
	int fd;          /* >= 0: the worker reads the chunk from here */
	uint64_t offset; /* ... at this file offset */
	struct mfs_encoded result; /* valid once done */
	bool done;                 /* guarded by lock */
};

struct mfs_encode_pool {
	const struct mfs_codec_ops *ops;
	struct mfs_pool_slot *slots; /* slot_count entries */
	unsigned slot_count;
	pthread_t *threads; /* thread_count of them running */
	unsigned thread_count;

	pthread_mutex_t lock;
	pthread_cond_t work;     /* workers: a chunk was submitted, or stop */
	pthread_cond_t finished; /* collector: a chunk is done */
	/* Chunk sequence numbers, taken <= submitted; under lock.
	 * submitted and collected change only in the collecting thread. */
	uint64_t submitted, taken, collected;
	bool stopping; /* under lock */
};

void mfs_encode_chunk(const struct mfs_codec_ops *ops, const uint8_t *raw,
		      uint32_t raw_len, char *enc, struct mfs_encoded *out)
{
	/* 0: not smaller, so verbatim (stored == raw length). */
	uint32_t n = ops->encode ? ops->encode(raw, raw_len, enc,
					       ops->bound(raw_len))
				 : 0;

	out->stored = n > 0 ? (const void *)enc : (const void *)raw;
	out->stored_length = n > 0 ? n : raw_len;
	out->checksum = mfs_checksum(out->stored, out->stored_length);
	out->raw_got = raw_len;
	out->read_errno = 0;
}

/* Reads slot @s's chunk from its descriptor as the serial writer's
 * descriptor source does; true if all of it arrived, else the shortfall
 * is in s->result for the collector to report. */
static bool mfs_pool_read(struct mfs_pool_slot *s)
{
	uint32_t got = 0;

	while (got < s->raw_len) {
		ssize_t n = pread(s->fd, s->raw + got, s->raw_len - got,
				  (off_t)(s->offset + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			s->result.raw_got = got;
			s->result.read_errno = n < 0 ? errno : 0;
			return false;
		}
		got += (uint32_t)n;
	}
	return true;
}

/* A worker's job: read the chunk if asked to, then encode it. */
static void mfs_pool_job(const struct mfs_encode_pool *p,
			 struct mfs_pool_slot *s)
{
	if (s->fd >= 0 && !mfs_pool_read(s))
		return;
	mfs_encode_chunk(p->ops, s->raw, s->raw_len, s->enc, &s->result);
}

/* Worker: encodes chunks in the order they were submitted until stopped. */
static void *mfs_pool_worker(void *arg)
{
	struct mfs_encode_pool *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct mfs_pool_slot *s;

		while (!p->stopping && p->taken == p->submitted)
			pthread_cond_wait(&p->work, &p->lock);
		if (p->stopping)
			break;
		s = &p->slots[p->taken++ % p->slot_count];
		pthread_mutex_unlock(&p->lock);
		mfs_pool_job(p, s);
		pthread_mutex_lock(&p->lock);
		s->done = true;
		pthread_cond_signal(&p->finished);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Frees the slots and their buffers (the workers are gone). */
static void mfs_pool_free(struct mfs_encode_pool *p)
{
	for (unsigned i = 0; p->slots && i < p->slot_count; i++) {
		free(p->slots[i].raw);
		free(p->slots[i].enc);
	}
	free(p->slots);
	free(p->threads);
	free(p);
}

/* Allocates the slots' buffers; -ENOMEM if any is missing. */
static int mfs_pool_alloc_slots(struct mfs_encode_pool *p, uint32_t chunk_size)
{
	p->slots = calloc(p->slot_count, sizeof(*p->slots));
	if (!p->slots)
		return -ENOMEM;
	for (unsigned i = 0; i < p->slot_count; i++) {
		p->slots[i].raw = malloc(chunk_size);
		p->slots[i].enc = malloc(p->ops->bound(chunk_size));
		if (!p->slots[i].raw || !p->slots[i].enc)
			return -ENOMEM;
	}
	return 0;
}

/*
 * Starts up to @wanted workers; p->thread_count says how many run.  The
 * workers start with every signal blocked: a library thread must not
 * take the application's signals.
 */
static void mfs_pool_start(struct mfs_encode_pool *p, unsigned wanted)
{
	sigset_t all, old;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	while (p->thread_count < wanted &&
	       pthread_create(&p->threads[p->thread_count], NULL,
			      mfs_pool_worker, p) == 0)
		p->thread_count++;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int mfs_encode_pool_create(struct mfs_encode_pool **out,
			   const struct mfs_codec_ops *ops, unsigned threads,
			   unsigned slots, uint32_t chunk_size)
{
	struct mfs_encode_pool *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->ops = ops;
	p->slot_count = slots;
	p->threads = calloc(threads, sizeof(*p->threads));
	if (!p->threads || mfs_pool_alloc_slots(p, chunk_size) < 0) {
		mfs_pool_free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->finished, NULL);
	/* Fewer workers than asked (thread limits) still work; none: the
	 * caller encodes serially. */
	mfs_pool_start(p, threads);
	if (p->thread_count == 0) {
		mfs_encode_pool_destroy(p);
		return 1;
	}
	*out = p;
	return 0;
}

uint8_t *mfs_encode_pool_next(struct mfs_encode_pool *p)
{
	if (p->submitted - p->collected == p->slot_count)
		return NULL;
	return p->slots[p->submitted % p->slot_count].raw;
}

/* Queues the next slot's job: @len raw bytes, read from @fd at @offset
 * first if @fd >= 0. */
static void mfs_pool_queue(struct mfs_encode_pool *p, uint32_t len, int fd,
			   uint64_t offset)
{
	struct mfs_pool_slot *s = &p->slots[p->submitted % p->slot_count];

	pthread_mutex_lock(&p->lock);
	s->raw_len = len;
	s->fd = fd;
	s->offset = offset;
	p->submitted++;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
}

void mfs_encode_pool_submit(struct mfs_encode_pool *p, uint32_t len)
{
	mfs_pool_queue(p, len, -1, 0);
}

void mfs_encode_pool_submit_fd(struct mfs_encode_pool *p, uint32_t len,
			       int fd, uint64_t offset)
{
	mfs_pool_queue(p, len, fd, offset);
}

bool mfs_encode_pool_oldest(struct mfs_encode_pool *p, struct mfs_encoded *out)
{
	struct mfs_pool_slot *s = &p->slots[p->collected % p->slot_count];

	if (p->collected == p->submitted)
		return false;
	pthread_mutex_lock(&p->lock);
	while (!s->done)
		pthread_cond_wait(&p->finished, &p->lock);
	pthread_mutex_unlock(&p->lock);
	*out = s->result;
	return true;
}

void mfs_encode_pool_release(struct mfs_encode_pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->slots[p->collected % p->slot_count].done = false;
	p->collected++;
	pthread_mutex_unlock(&p->lock);
}

void mfs_encode_pool_destroy(struct mfs_encode_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->thread_count; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->finished);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->lock);
	mfs_pool_free(p);
}
