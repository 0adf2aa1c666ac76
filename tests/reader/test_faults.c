/*
 * test_faults.c - failures the file system and the allocator rarely give:
 *  - allocation failure injected at every allocation of open, of the
 *    scratch buffers and of the manifest: each must fail cleanly with
 *    -ENOMEM (no crash, no leak under ASan) and succeed once memory
 *    returns;
 *  - pread failing for the header, the index and a chunk; mmap failing;
 *    no thread-specific key for the scratch buffers.
 *
 * Allocations fail through tests/support/fail_alloc.h (jansson's too,
 * through json_set_alloc_funcs); pread64, mmap64 and pthread_setspecific
 * are redirected here at link time (-Wl,--wrap).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>

#include <cmocka.h>
#include <jansson.h>

#include "fail_alloc.h"
#include "fixture.h"

/* No test needs more allocations than this; a loop reaching it is a bug. */
#define MAX_INJECTIONS 1000

/* Which pread/mmap/pthread_setspecific call fails (-1: none), and how. */
static long io_fail_at = -1;
static long io_calls;
static int io_errno = EIO;

ssize_t __real_pread64(int fd, void *buf, size_t n, off_t off);
ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t off);
void *__real_mmap64(void *addr, size_t len, int prot, int flags, int fd,
		    off_t off);
void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd,
		    off_t off);
int __real_pthread_setspecific(pthread_key_t key, const void *value);
int __wrap_pthread_setspecific(pthread_key_t key, const void *value);

static int io_inject(void)
{
	return io_fail_at >= 0 && io_calls++ == io_fail_at;
}

ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t off)
{
	if (io_inject()) {
		errno = io_errno;
		return -1;
	}
	return __real_pread64(fd, buf, n, off);
}

void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd,
		    off_t off)
{
	if (io_inject()) {
		errno = io_errno;
		return MAP_FAILED;
	}
	return __real_mmap64(addr, len, prot, flags, fd, off);
}

int __wrap_pthread_setspecific(pthread_key_t key, const void *value)
{
	return io_inject() ? io_errno : __real_pthread_setspecific(key, value);
}

static void io_arm(long n, int err)
{
	io_calls = 0;
	io_fail_at = n;
	io_errno = err;
}

/* jansson is a shared library, out of reach of -Wl,--wrap; this file's
 * malloc calls are wrapped. */
static void *json_failing_malloc(size_t n)
{
	return malloc(n);
}

static void test_open_oom(void **state)
{
	struct enc_file f;
	long n;

	(void)state;
	std_build(&f);
	for (n = 0; n < MAX_INJECTIONS; n++) {
		mfs_container *c;
		int rc;

		fail_alloc_arm(n);
		rc = open_buf(f.buf, f.len, &c);
		if (!fail_alloc_disarm()) {
			assert_int_equal(rc, 0);
			mfs_container_close(c);
			break;
		}
		expect_error(rc, -ENOMEM, STD_LABEL ": out of memory");
	}
	/* label, container, index, metadata, entries, names, lookup table */
	assert_true(n >= 7 && n < MAX_INJECTIONS);
	enc_free(&f);
}

struct scratch_case {
	mfs_container *c;
	int which;
	long rc;
	char msg[256];
};

/* Runs one read in a fresh thread, whose scratch buffers are empty. */
static void *scratch_thread(void *p)
{
	struct scratch_case *s = p;
	static uint8_t chunk[STD_CHUNK];
	uint8_t buf[64];

	switch (s->which) {
	case 0: /* compressed chunk: needs the stored-bytes buffer */
		s->rc = mfs_container_read_chunk(s->c, STD_SIM, 0, chunk,
						 sizeof(chunk));
		break;
	case 1: /* part of a chunk: needs the whole-chunk buffer */
		s->rc = mfs_container_read(s->c, STD_EMB, 10, buf, sizeof(buf));
		break;
	default:
		s->rc = mfs_container_verify(s->c, NULL, NULL);
		break;
	}
	strncpy(s->msg, mfs_last_error(), sizeof(s->msg) - 1);
	return NULL;
}

static void run_scratch(struct scratch_case *s)
{
	pthread_t th;

	assert_int_equal(pthread_create(&th, NULL, scratch_thread, s), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
}

static void test_scratch_oom(void **state)
{
	struct enc_file f;
	mfs_container *c;

	(void)state;
	std_build(&f);
	assert_int_equal(open_buf(f.buf, f.len, &c), 0);
	for (int which = 0; which < 3; which++) {
		struct scratch_case s = {.c = c, .which = which};

		fail_alloc_arm(0);
		run_scratch(&s);
		assert_true(fail_alloc_disarm());
		if (s.rc != -ENOMEM)
			print_error("case %d: %ld %s\n", which, s.rc, s.msg);
		assert_int_equal(s.rc, -ENOMEM);
		assert_non_null(strstr(s.msg, "out of memory for a"));
		run_scratch(&s);
		assert_true(s.rc >= 0);
	}
	mfs_container_close(c);
	enc_free(&f);
}

/* Checking a chunk needs a chunk-sized buffer: without one, -ENOMEM and
 * a message; with memory back, the same call succeeds. */
static void test_check_chunk_oom(void **state)
{
	struct enc_file f;
	mfs_container *c;

	(void)state;
	std_build(&f);
	assert_int_equal(open_buf(f.buf, f.len, &c), 0);
	fail_alloc_arm(0);
	assert_int_equal(mfs_container_check_chunk(c, 0, 0), -ENOMEM);
	assert_true(fail_alloc_disarm());
	assert_non_null(strstr(mfs_last_error(), "out of memory for a"));
	assert_int_equal(mfs_container_check_chunk(c, 0, 0), 0);
	mfs_container_close(c);
	enc_free(&f);
}

/*
 * jansson tolerates a few failed allocations inside json_dumps (its loop
 * detection table), so a failure may also end in the complete document.
 */
static void test_manifest_oom(void **state)
{
	struct enc_file f;
	mfs_container *c;
	char *want;
	long n, tolerated = 0;

	(void)state;
	std_build(&f);
	assert_int_equal(open_buf(f.buf, f.len, &c), 0);
	assert_int_equal(mfs_container_manifest(c, "k", &want, NULL), 0);
	json_set_alloc_funcs(json_failing_malloc, free);
	for (n = 0; n < MAX_INJECTIONS; n++) {
		char *text = NULL;
		int rc;

		fail_alloc_arm(n);
		rc = mfs_container_manifest(c, "k", &text, NULL);
		if (!fail_alloc_disarm()) {
			assert_int_equal(rc, 0);
			assert_string_equal(text, want);
			free(text);
			break;
		}
		if (rc == 0) {
			assert_string_equal(text, want);
			free(text);
			tolerated++;
			continue;
		}
		expect_error(rc, -ENOMEM, STD_LABEL ": out of memory");
		assert_null(text);
	}
	json_set_alloc_funcs(malloc, free);
	assert_true(n > 50 && n < MAX_INJECTIONS);
	assert_true(tolerated < n / 10);
	free(want);
	mfs_container_close(c);
	enc_free(&f);
}

/* pread failing for the header (call 0) and for the index (call 1). */
static void test_open_read_errors(void **state)
{
	struct enc_file f;
	mfs_container *c;

	(void)state;
	std_build(&f);
	io_arm(0, EIO);
	expect_error(open_buf(f.buf, f.len, &c), -EIO,
		     STD_LABEL ": reading the header: Input/output error");
	io_arm(1, ENOMEM);
	expect_error(open_buf(f.buf, f.len, &c), -ENOMEM,
		     STD_LABEL ": reading the index (");
	io_fail_at = -1;
	enc_free(&f);
}

static void test_chunk_read_and_map_errors(void **state)
{
	struct enc_file f;
	mfs_container *c;
	static uint8_t buf[STD_CHUNK];
	const void *data;
	size_t len;

	(void)state;
	std_build(&f);
	assert_int_equal(open_buf(f.buf, f.len, &c), 0);
	io_arm(0, EINTR); /* retried, not an error */
	assert_int_equal(mfs_container_read_chunk(c, STD_EMB, 0, buf,
						  sizeof(buf)), STD_CHUNK);
	io_arm(0, EIO);
	expect_error(mfs_container_read_chunk(c, STD_EMB, 1, buf, sizeof(buf)),
		     -EIO, "array 'emb' chunk 1: reading 4096 bytes at file "
			   "offset 8192");
	io_arm(0, ENOMEM);
	expect_error(mfs_container_map(c, STD_EMB, 0, &data, &len), -ENOMEM,
		     "array 'emb': mmap of 20000 bytes at 4096: Cannot allocate");
	io_fail_at = -1;
	mfs_container_close(c);
	enc_free(&f);
}

/* Without a thread-specific slot the scratch buffer would leak: refused. */
static void test_scratch_key_error(void **state)
{
	struct enc_file f;
	struct scratch_case s = {.which = 0};

	(void)state;
	std_build(&f);
	assert_int_equal(open_buf(f.buf, f.len, &s.c), 0);
	/* The buffer is registered (call 0) before the chunk is read. */
	io_arm(0, ENOMEM);
	run_scratch(&s);
	io_fail_at = -1;
	assert_int_equal(s.rc, -ENOMEM);
	assert_non_null(strstr(s.msg, "no thread-specific key"));
	run_scratch(&s);
	assert_int_equal(s.rc, STD_CHUNK);
	mfs_container_close(s.c);
	enc_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_oom),
		cmocka_unit_test(test_scratch_oom),
		cmocka_unit_test(test_check_chunk_oom),
		cmocka_unit_test(test_manifest_oom),
		cmocka_unit_test(test_open_read_errors),
		cmocka_unit_test(test_chunk_read_and_map_errors),
		cmocka_unit_test(test_scratch_key_error),
	};

	return cmocka_run_group_tests_name("reader_faults", tests, NULL, NULL);
}
