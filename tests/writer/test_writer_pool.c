/*
 * test_writer_pool.c - LZ4 chunks encoded by the writer's thread pool:
 * the container is the serial writer's byte for byte (arrays of several
 * sizes, empty, shorter than a chunk, not a multiple of the chunk size,
 * incompressible, compressible, mixed, pulled in odd pieces, read from
 * a descriptor by the workers themselves), every
 * worker is joined on every path (commit, abort, source failure, write
 * failure), and a writer whose threads cannot start writes serially.
 *
 * MODELFS_WRITER_THREADS sets the thread count (modelfs.h); pwrite and
 * pthread_create are wrapped at link time to inject their failures.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "layout.h"
#include "wtest.h"

#define KIB 1024u
#define SMALL_CHUNK (4 * KIB)
#define THREADS_ENV "MODELFS_WRITER_THREADS"
/* More chunks than the pool has slots, so slots are reused many times. */
#define MANY_CHUNKS 300
/* A length that is not a multiple of any chunk size. */
#define ODD_TAIL 123
/* Pieces of a source that never hands out a whole chunk at once. */
#define ODD_STEP 1000
/* Thread counts compared with the serial writer (9: above the cap). */
static const char *const pool_threads[] = {"2", "3", "8", "9"};

/* A pwrite at exactly this offset fails (-1 = none). */
static int64_t pwrite_fail_offset = -1;
/* pthread_create calls that succeed before the rest fail (-1 = all). */
static int threads_allowed = -1;

ssize_t __real_pwrite64(int fd, const void *buf, size_t len, off_t off);
ssize_t __wrap_pwrite64(int fd, const void *buf, size_t len, off_t off);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *attr,
			  void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr,
			  void *(*fn)(void *), void *arg);

ssize_t __wrap_pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	if (pwrite_fail_offset >= 0 && off == pwrite_fail_offset) {
		errno = EIO;
		return -1;
	}
	return __real_pwrite64(fd, buf, len, off);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr,
			  void *(*fn)(void *), void *arg)
{
	if (threads_allowed == 0)
		return EAGAIN;
	if (threads_allowed > 0)
		threads_allowed--;
	return __real_pthread_create(t, attr, fn, arg);
}

/* Threads of the process before any writer (a sanitizer may run its
 * own), so that the writer's workers are counted alone. */
static int base_threads;

static void *idle_thread(void *arg)
{
	return arg;
}

/* Threads of this process, from /proc/self/status. */
static int thread_count(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int n = -1;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* Threads started by the writer still alive (0 once every one joined). */
static int writer_threads(void)
{
	return thread_count() - base_threads;
}

/* The test data: one buffer cut into arrays of different kinds. */
struct pool_data {
	uint8_t *random;       /* incompressible */
	uint8_t *compressible; /* small integers, runs */
	uint8_t *mixed;        /* alternating chunks of both */
	size_t len;
};

static void pool_data_init(struct pool_data *d)
{
	d->len = MANY_CHUNKS * SMALL_CHUNK + ODD_TAIL;
	d->random = malloc(d->len);
	d->compressible = malloc(d->len);
	d->mixed = malloc(d->len);
	assert_true(d->random && d->compressible && d->mixed);
	wt_random(d->random, d->len, 7);
	for (size_t i = 0; i < d->len; i++)
		d->compressible[i] = (uint8_t)(d->random[i] % 4 +
					       (i / 4096) % 3);
	for (size_t i = 0; i < d->len; i++)
		d->mixed[i] = (i / SMALL_CHUNK) % 2 ? d->random[i]
						     : d->compressible[i];
}

static void pool_data_free(struct pool_data *d)
{
	free(d->random);
	free(d->compressible);
	free(d->mixed);
}

/* Adds @len bytes of @data as LZ4 array @name through a buffer. */
static void add_lz4(mfs_writer *w, const char *name, const uint8_t *data,
		    size_t len, uint32_t chunk_size)
{
	mfs_array_spec s = wt_spec1(name, MFS_DTYPE_UINT8, len, MFS_CODEC_LZ4,
				    chunk_size);

	assert_int_equal(mfs_writer_add_array_buffer(w, &s, data, len), 0);
}

/* Adds the file @src_path from byte 1 on as LZ4 array "from-fd". */
static void add_lz4_fd(mfs_writer *w, const char *src_path, size_t len)
{
	mfs_array_spec s = wt_spec1("from-fd", MFS_DTYPE_UINT8, len,
				    MFS_CODEC_LZ4, SMALL_CHUNK);
	int fd = open(src_path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(mfs_writer_add_array_fd(w, &s, fd, 1), 0);
	close(fd);
}

/* Writes the test model to @path with MODELFS_WRITER_THREADS=@threads;
 * the descriptor source is a file beside it. */
static void write_model(const char *path, const char *threads,
			const struct pool_data *d)
{
	char src_path[PATH_MAX];
	struct wt_mem_source src = {d->mixed, d->len, 0, ODD_STEP, 0};
	mfs_array_spec s = wt_spec1("pieces", MFS_DTYPE_UINT8, d->len,
				    MFS_CODEC_LZ4, SMALL_CHUNK);
	mfs_array_spec raw = wt_spec1("raw", MFS_DTYPE_UINT8, d->len,
				      MFS_CODEC_NONE, SMALL_CHUNK);
	mfs_writer *w;

	snprintf(src_path, sizeof(src_path), "%s.src", path);
	wt_write_file(src_path, d->mixed, d->len);
	assert_int_equal(setenv(THREADS_ENV, threads, 1), 0);
	assert_int_equal(mfs_writer_create(&w, path), 0);
	add_lz4_fd(w, src_path, d->len - 1);
	add_lz4(w, "empty", d->compressible, 0, SMALL_CHUNK);
	add_lz4(w, "one", d->compressible, 1, SMALL_CHUNK);
	add_lz4(w, "two-chunks", d->compressible, SMALL_CHUNK + 1,
		SMALL_CHUNK);
	add_lz4(w, "random", d->random, d->len, SMALL_CHUNK);
	add_lz4(w, "compressible", d->compressible, d->len, SMALL_CHUNK);
	add_lz4(w, "exact", d->compressible, MANY_CHUNKS * SMALL_CHUNK,
		SMALL_CHUNK);
	add_lz4(w, "default-chunk", d->mixed, d->len, 0);
	add_lz4(w, "mixed", d->mixed, d->len, SMALL_CHUNK);
	assert_int_equal(mfs_writer_add_array(w, &s, wt_mem_read, &src), 0);
	assert_int_equal(mfs_writer_add_array_buffer(w, &raw, d->mixed,
						     d->len),
			 0);
	assert_int_equal(mfs_writer_commit(w), 0);
	assert_int_equal(writer_threads(), 0);
	assert_int_equal(unsetenv(THREADS_ENV), 0);
	assert_int_equal(unlink(src_path), 0);
}

static void test_pool_matches_serial(void **state)
{
	const struct wt_ctx *ctx = *state;
	const char *serial_path = wt_path(ctx, "serial.mfs");
	struct pool_data d;
	uint8_t *serial;
	size_t serial_len;
	mfs_container *c;

	pool_data_init(&d);
	write_model(serial_path, "1", &d);
	serial = wt_read_file(serial_path, &serial_len);
	c = wt_open(serial_path);
	assert_int_equal(mfs_container_verify(c, NULL, NULL), 0);
	mfs_container_close(c);
	for (size_t i = 0; i < sizeof(pool_threads) / sizeof(*pool_threads);
	     i++) {
		const char *path = wt_path(ctx, "pool.mfs");

		write_model(path, pool_threads[i], &d);
		wt_assert_file(path, serial, serial_len);
	}
	free(serial);
	pool_data_free(&d);
}

/* A source that counts the threads alive while the array streams. */
struct counting_source {
	struct wt_mem_source mem;
	int most_threads;
};

static ssize_t counting_read(void *ctx, void *buf, size_t len)
{
	struct counting_source *s = ctx;
	int n = writer_threads();

	if (n > s->most_threads)
		s->most_threads = n;
	return wt_mem_read(&s->mem, buf, len);
}

/* Most writer threads alive while writing one LZ4 array of @chunks chunks with
 * MODELFS_WRITER_THREADS=@threads (NULL: unset). */
static int threads_while_writing(const struct wt_ctx *ctx,
				 const char *threads, size_t chunks)
{
	size_t len = chunks * SMALL_CHUNK;
	uint8_t *data = calloc(1, len);
	struct counting_source src = {{data, len, 0, 0, 0}, 0};
	mfs_array_spec s = wt_spec1("a", MFS_DTYPE_UINT8, len, MFS_CODEC_LZ4,
				    SMALL_CHUNK);
	mfs_writer *w;

	assert_non_null(data);
	if (threads)
		assert_int_equal(setenv(THREADS_ENV, threads, 1), 0);
	else
		assert_int_equal(unsetenv(THREADS_ENV), 0);
	assert_int_equal(mfs_writer_create(&w, wt_path(ctx, "n.mfs")), 0);
	assert_int_equal(mfs_writer_add_array(w, &s, counting_read, &src), 0);
	mfs_writer_abort(w);
	assert_int_equal(writer_threads(), 0);
	assert_int_equal(unsetenv(THREADS_ENV), 0);
	free(data);
	return src.most_threads;
}

static void test_thread_count(void **state)
{
	const struct wt_ctx *ctx = *state;
	int automatic = threads_while_writing(ctx, NULL, MANY_CHUNKS);

	assert_int_equal(threads_while_writing(ctx, "1", MANY_CHUNKS), 0);
	assert_int_equal(threads_while_writing(ctx, "3", MANY_CHUNKS), 3);
	/* Capped at 8 workers. */
	assert_int_equal(threads_while_writing(ctx, "100", MANY_CHUNKS), 8);
	/* No more workers than chunks; one chunk is encoded serially. */
	assert_int_equal(threads_while_writing(ctx, "8", 3), 3);
	assert_int_equal(threads_while_writing(ctx, "8", 1), 0);
	/* Malformed values mean "not set". */
	assert_int_equal(threads_while_writing(ctx, "0", MANY_CHUNKS),
			 automatic);
	assert_int_equal(threads_while_writing(ctx, "-2", MANY_CHUNKS),
			 automatic);
	assert_int_equal(threads_while_writing(ctx, "4x", MANY_CHUNKS),
			 automatic);
	/* One worker per usable CPU, none on a single CPU. */
	assert_true(automatic == 0 || (automatic >= 2 && automatic <= 8));
}

/* A source that fails with -EIO after @good bytes. */
struct failing_source {
	size_t good;
};

static ssize_t failing_read(void *ctx, void *buf, size_t len)
{
	struct failing_source *s = ctx;

	if (s->good == 0)
		return -EIO;
	if (len > s->good)
		len = s->good;
	memset(buf, 0x33, len);
	s->good -= len;
	return (ssize_t)len;
}

/* Asserts the writer is poisoned, its commit cleans up, nothing is left
 * in the directory and no worker survives. */
static void assert_failed_cleanly(const struct wt_ctx *ctx, mfs_writer *w)
{
	assert_int_equal(writer_threads(), 0);
	assert_int_equal(mfs_writer_commit(w), -EINVAL);
	assert_int_equal(wt_count_entries(ctx->dir), 0);
}

static void test_source_failure_joins(void **state)
{
	const struct wt_ctx *ctx = *state;
	mfs_array_spec s = wt_spec1("a", MFS_DTYPE_UINT8,
				    MANY_CHUNKS * SMALL_CHUNK, MFS_CODEC_LZ4,
				    SMALL_CHUNK);
	/* Fails in the first window, and far into the array. */
	const size_t good[] = {0, SMALL_CHUNK + 7, 100 * SMALL_CHUNK};

	assert_int_equal(setenv(THREADS_ENV, "4", 1), 0);
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
		struct failing_source src = {good[i]};
		mfs_writer *w;

		assert_int_equal(mfs_writer_create(&w, wt_path(ctx, "f.mfs")),
				 0);
		assert_int_equal(mfs_writer_add_array(w, &s, failing_read,
						      &src),
				 -EIO);
		assert_non_null(strstr(mfs_last_error(), "source failed"));
		assert_failed_cleanly(ctx, w);
	}
	assert_int_equal(unsetenv(THREADS_ENV), 0);
}

/* A descriptor the workers read from: a file that ends early and a
 * directory fail as in the serial writer, with its messages. */
static void test_fd_failure_joins(void **state)
{
	const struct wt_ctx *ctx = *state;
	const char *src_path = wt_path(ctx, "short.bin");
	size_t len = MANY_CHUNKS * SMALL_CHUNK;
	uint8_t *data = calloc(1, len);
	mfs_array_spec s = wt_spec1("a", MFS_DTYPE_UINT8, len, MFS_CODEC_LZ4,
				    SMALL_CHUNK);
	mfs_writer *w;
	int fd;

	assert_non_null(data);
	assert_int_equal(setenv(THREADS_ENV, "4", 1), 0);
	/* 10 chunks and 100 bytes after the 10 bytes skipped. */
	wt_write_file(src_path, data, 10 + 10 * SMALL_CHUNK + 100);
	fd = open(src_path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(mfs_writer_create(&w, wt_path(ctx, "f.mfs")), 0);
	assert_int_equal(mfs_writer_add_array_fd(w, &s, fd, 10), -EINVAL);
	assert_non_null(strstr(mfs_last_error(),
			       "source ended after 41060 of 1228800 bytes"));
	close(fd);
	assert_int_equal(unlink(src_path), 0);
	assert_failed_cleanly(ctx, w);

	fd = open(ctx->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(mfs_writer_create(&w, wt_path(ctx, "f.mfs")), 0);
	assert_int_equal(mfs_writer_add_array_fd(w, &s, fd, 0), -EISDIR);
	assert_non_null(strstr(mfs_last_error(), "source failed at byte 0"));
	close(fd);
	assert_failed_cleanly(ctx, w);
	assert_int_equal(unsetenv(THREADS_ENV), 0);
	free(data);
}

static void test_write_failure_joins(void **state)
{
	const struct wt_ctx *ctx = *state;
	size_t len = MANY_CHUNKS * SMALL_CHUNK;
	uint8_t *data = malloc(len);
	mfs_writer *w;

	assert_non_null(data);
	wt_random(data, len, 3); /* verbatim chunks: offsets are known */
	assert_int_equal(setenv(THREADS_ENV, "4", 1), 0);
	pwrite_fail_offset = MFS_DATA_START + 10 * SMALL_CHUNK;
	assert_int_equal(mfs_writer_create(&w, wt_path(ctx, "w.mfs")), 0);
	{
		mfs_array_spec s = wt_spec1("a", MFS_DTYPE_UINT8, len,
					    MFS_CODEC_LZ4, SMALL_CHUNK);
		assert_int_equal(mfs_writer_add_array_buffer(w, &s, data, len),
				 -EIO);
	}
	pwrite_fail_offset = -1;
	assert_non_null(strstr(mfs_last_error(), "writing 4096 bytes"));
	assert_failed_cleanly(ctx, w);
	assert_int_equal(unsetenv(THREADS_ENV), 0);
	free(data);
}

/* Threads that cannot start: fewer workers, or none (serial), and the
 * same bytes either way. */
static void test_thread_start_failure(void **state)
{
	const struct wt_ctx *ctx = *state;
	const char *serial_path = wt_path(ctx, "serial.mfs");
	struct pool_data d;
	uint8_t *serial;
	size_t serial_len;

	pool_data_init(&d);
	write_model(serial_path, "1", &d);
	serial = wt_read_file(serial_path, &serial_len);
	for (int allowed = 0; allowed < 2; allowed++) {
		const char *path = wt_path(ctx, "pool.mfs");

		threads_allowed = allowed;
		write_model(path, "4", &d);
		threads_allowed = -1;
		wt_assert_file(path, serial, serial_len);
	}
	free(serial);
	pool_data_free(&d);
}

int main(void)
{
	pthread_t idle;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pool_matches_serial,
						wt_setup, wt_teardown),
		cmocka_unit_test_setup_teardown(test_thread_count, wt_setup,
						wt_teardown),
		cmocka_unit_test_setup_teardown(test_source_failure_joins,
						wt_setup, wt_teardown),
		cmocka_unit_test_setup_teardown(test_fd_failure_joins, wt_setup,
						wt_teardown),
		cmocka_unit_test_setup_teardown(test_write_failure_joins,
						wt_setup, wt_teardown),
		cmocka_unit_test_setup_teardown(test_thread_start_failure,
						wt_setup, wt_teardown),
	};

	/* ThreadSanitizer starts a helper thread at the first thread
	 * creation: let that happen before the baseline is taken. */
	if (pthread_create(&idle, NULL, idle_thread, NULL) != 0 ||
	    pthread_join(idle, NULL) != 0)
		return 1;
	base_threads = thread_count();
	return cmocka_run_group_tests_name("writer pool", tests, NULL, NULL);
}
