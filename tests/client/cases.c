/*
 * cases.c - the test cases every store kind goes through.  Each case
 * leaves the store directory without models (ephemeral models are removed
 * by the last release; persistent ones are removed explicitly), and the
 * check after each case proves it.
 */
#include "cases.h"
#include "builder_internal.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CT_THREADS 4
#define CT_THREAD_ROUNDS 25
#define CT_OUT_MAX 8192
/* Bytes a test reader hands out per call (odd, so calls straddle). */
#define CT_READER_STEP 1000u
#define CT_COPY_LEN 100
/* Exit statuses of the debug-guard child. */
#define CT_GUARD_REUSED 3
#define CT_GUARD_SETUP 4

int ct_open_dir(const struct ct_kind *k, mfs_store **out)
{
	return mfs_store_open_dir(out, k->location);
}

int ct_open_inproc(const struct ct_kind *k, mfs_store **out)
{
	(void)k;
	return mfs_store_new_in_process(out);
}

int ct_open_mount(const struct ct_kind *k, mfs_store **out)
{
	return mfs_store_open_mount(out, k->location);
}

static const struct ct_kind *ct_kind_of(void **state)
{
	return *state;
}

static bool ct_files(const struct ct_kind *k)
{
	return k->store_dir[0] != '\0';
}

/* "STORE_DIR/KEY.mfs" */
static const char *ct_model_file(const struct ct_kind *k, const char *key)
{
	static char buf[PATH_MAX];

	assert_true(snprintf(buf, sizeof(buf), "%s/%s.mfs", k->store_dir, key) <
		    (int)sizeof(buf));
	return buf;
}

/* Puts the standard model of variant @v under @key (NULL: content). */
static void ct_put_std(mfs_store *s, unsigned v, const char *key,
		       unsigned flags, char *key_out)
{
	mfs_builder *b = ct_std_builder(v);
	int rc = mfs_store_put(s, b, key, flags, key_out);

	if (rc)
		print_error("put: %s\n", mfs_last_error());
	assert_int_equal(rc, 0);
	mfs_builder_free(b);
}

/* Gets @key through a new client of @s and checks it is variant @v. */
static void ct_get_check(mfs_store *s, const char *key, unsigned v)
{
	mfs_client *c;
	mfs_model *m;

	assert_int_equal(mfs_client_open(&c, mfs_store_client_spec(s)), 0);
	assert_int_equal(mfs_get_model(c, key, &m), 0);
	ct_check_std(m, v, true);
	assert_int_equal(mfs_model_release(m), 0);
	assert_int_equal(mfs_client_close(c), 0);
}

static void ct_expect_absent(mfs_store *s, const char *key)
{
	mfs_client *c;
	mfs_model *m;

	assert_int_equal(mfs_client_open(&c, mfs_store_client_spec(s)), 0);
	ct_expect(mfs_get_model(c, key, &m), -ENOENT, key);
	assert_int_equal(mfs_client_close(c), 0);
}

/* After every case: no model may be left in the store directory.  What
 * a failed case left is removed, so the next case starts clean. */
static int ct_after_case(void **state)
{
	const struct ct_kind *k = ct_kind_of(state);
	int n = ct_files(k) ? ct_count_entries(k->store_dir) : 0;

	if (n == 0)
		return 0;
	print_error("%s: %d entries left in %s\n", k->name, n, k->store_dir);
	ct_rmtree(k->store_dir);
	mkdir(k->store_dir, 0755);
	return -1;
}

/* ------------------------------------------------------------------ */
/* Cases                                                               */
/* ------------------------------------------------------------------ */

/* Put with a content key, get from the spec, every array and field. */
static void case_roundtrip(void **state)
{
	const struct ct_kind *k = ct_kind_of(state);
	char key[MFS_KEY_BUFSIZE];
	mfs_store *s;

	assert_int_equal(k->open(k, &s), 0);
	ct_put_std(s, 1, NULL, 0, key);
	assert_int_equal(strlen(key), MFS_CONTENT_KEY_LEN);
	for (size_t i = 0; key[i]; i++)
		assert_true(isxdigit((unsigned char)key[i]) &&
			    !isupper((unsigned char)key[i]));
	if (ct_files(k))
		assert_true(ct_exists(ct_model_file(k, key)));
	ct_get_check(s, key, 1);
	assert_int_equal(mfs_store_release(s), 0);
	if (ct_files(k))
		assert_false(ct_exists(ct_model_file(k, key)));
}

/* The same model gets the same key; an explicit key is replaced. */
static void case_keys(void **state)
{
	const struct ct_kind *k = ct_kind_of(state);
	char k1[MFS_KEY_BUFSIZE], k2[MFS_KEY_BUFSIZE], k3[MFS_KEY_BUFSIZE];
	mfs_store *s;

	assert_int_equal(k->open(k, &s), 0);
	ct_put_std(s, 1, NULL, 0, k1);
	ct_put_std(s, 1, NULL, 0, k2);
	ct_put_std(s, 2, NULL, 0, k3);
	assert_string_equal(k1, k2);
	assert_string_not_equal(k1, k3);
	ct_put_std(s, 1, "named", 0, k2);
	assert_string_equal(k2, "named");
	ct_get_check(s, "named", 1);
	ct_put_std(s, 2, "named", 0, NULL);
	ct_get_check(s, "named", 2);
	ct_get_check(s, k3, 2);
	assert_int_equal(mfs_store_release(s), 0);
}

/* Every error a caller can provoke through a store and a client. */
static void case_errors(void **state)
{
	const struct ct_kind *k = ct_kind_of(state);
	mfs_builder *b = ct_std_builder(1);
	char key[MFS_KEY_BUFSIZE];
	mfs_array_view a;
	mfs_client *c;
	mfs_model *m;
	mfs_store *s;

	assert_int_equal(k->open(k, &s), 0);
	ct_expect(mfs_store_put(s, b, "-bad", 0, key), -EINVAL, "-bad");
	ct_expect(mfs_store_put(s, b, NULL, 0x80, key), -EINVAL, "flags");
	ct_expect(mfs_store_put(s, b, NULL, MFS_PUT_RESERIALIZE, key), -EINVAL,
		  "flags");
	ct_expect(mfs_store_put(s, NULL, NULL, 0, key), -EINVAL, "builder");
	ct_expect(mfs_store_put(NULL, b, NULL, 0, key), -EINVAL, "store");
	ct_expect(mfs_store_remove(s, "nosuch"), -ENOENT, "nosuch");
	ct_expect(mfs_store_remove(s, ".hidden"), -EINVAL, ".hidden");
	ct_expect(mfs_store_put_file(s, "/nonexistent/x.mfs", NULL, 0, key),
		  -ENOENT, "/nonexistent/x.mfs");
	ct_expect(mfs_store_put_file(s, NULL, NULL, 0, key), -EINVAL, "path");
	ct_expect(mfs_store_put_file(s, "/etc/hostname", NULL, 0x80, key),
		  -EINVAL, "flags");
	assert_int_equal(mfs_store_put(s, b, NULL, 0, key), 0);

	assert_int_equal(mfs_client_open(&c, mfs_store_client_spec(s)), 0);
	ct_expect(mfs_get_model(c, "unknown-key", &m), -ENOENT, "unknown-key");
	ct_expect(mfs_get_model(c, "bad/key", &m), -EINVAL, "bad/key");
	ct_expect(mfs_get_model(c, NULL, &m), -EINVAL, "empty");
	ct_expect(mfs_get_model(c, key, NULL), -EINVAL, "NULL");
	assert_int_equal(mfs_get_model(c, key, &m), 0);
	ct_expect(mfs_model_array(m, "nope", &a), -ENOENT, "nope");
	ct_expect(mfs_model_array(m, NULL, &a), -EINVAL, "NULL");
	ct_expect(mfs_model_array_at(m, CT_STD_COUNT, &a), -ERANGE,
		  "out of range");
	ct_expect(mfs_model_array_at(NULL, 0, &a), -EINVAL, "NULL");
	assert_int_equal(mfs_model_array_count(NULL), 0);
	assert_null(mfs_model_metadata(NULL, NULL));
	assert_null(mfs_model_key(NULL));
	assert_null(mfs_store_client_spec(NULL));
	assert_int_equal(mfs_model_release(m), 0);
	ct_expect(mfs_model_release(m), -EINVAL, "released twice");
	assert_int_equal(mfs_client_close(c), 0);
	ct_expect(mfs_client_close(c), -EINVAL, "closed twice");
	ct_expect(mfs_get_model(c, key, &m), -EINVAL, "not open");
	assert_int_equal(mfs_store_release(s), 0);
	ct_expect(mfs_store_release(s), -EINVAL, "released more often");
	ct_expect(mfs_store_put(s, b, NULL, 0, key), -EINVAL, "not open");
	ct_expect(mfs_store_put_file(s, "x", NULL, 0, key), -EINVAL,
		  "not open");
	ct_expect(mfs_store_remove(s, key), -EINVAL, "not open");
	mfs_builder_free(b);
}

/* A held model stays readable after its key is removed. */
static void case_remove_while_held(void **state)
{
	const struct ct_kind *k = ct_kind_of(state);
	mfs_client *c;
	mfs_model *m;
	mfs_store *s;

	assert_int_equal(k->open(k, &s), 0);
	ct_put_std(s, 1, "held", 0, NULL);
	assert_int_equal(mfs_client_open(&c, mfs_store_client_spec(s)), 0);
	assert_int_equal(mfs_get_model(c, "held", &m), 0);
	assert_int_equal(mfs_store_remove(s, "held"), 0);
	ct_expect(mfs_store_remove(s, "held"), -ENOENT, "held");
	if (ct_files(k))
		assert_false(ct_exists(ct_model_file(k, "held")));
	ct_check_std(m, 1, true);
	assert_int_equal(mfs_model_release(m), 0);
	assert_int_equal(mfs_client_close(c), 0);
	assert_int_equal(mfs_store_release(s), 0);
}

/* Ephemeral models go at the last release, persistent ones stay, and a
 * store never removes a model it did not create. */
static void case_ephemeral_persistent(void **state)
{
	const struct ct_kind *k = ct_kind_of(state);
	char ka[MFS_KEY_BUFSIZE], kc[MFS_KEY_BUFSIZE], spec[PATH_MAX];
	mfs_store *s, *s2, *s3;
	mfs_client *c;

	assert_int_equal(k->open(k, &s), 0);
	ct_put_std(s, 1, NULL, 0, ka);
	ct_put_std(s, 2, "keep", MFS_PUT_PERSISTENT, NULL);
	snprintf(spec, sizeof(spec), "%s", mfs_store_client_spec(s));
	if (!ct_files(k)) {
		assert_int_equal(mfs_store_release(s), 0);
		ct_expect(mfs_client_open(&c, spec), -ENOENT, "in-process");
		return;
	}
	/* A second store on the same directory. */
	assert_int_equal(k->open(k, &s2), 0);
	ct_put_std(s2, 1, NULL, 0, NULL); /* was there: not s2's */
	ct_put_std(s2, 3, NULL, 0, kc);
	assert_int_equal(mfs_store_release(s2), 0);
	assert_false(ct_exists(ct_model_file(k, kc)));
	assert_true(ct_exists(ct_model_file(k, ka)));
	assert_int_equal(mfs_store_release(s), 0);
	assert_false(ct_exists(ct_model_file(k, ka)));
	assert_true(ct_exists(ct_model_file(k, "keep")));

	assert_int_equal(k->open(k, &s3), 0);
	ct_expect_absent(s3, ka);
	ct_get_check(s3, "keep", 2);
	assert_int_equal(mfs_store_remove(s3, "keep"), 0);
	assert_int_equal(mfs_store_release(s3), 0);
}

/* A child process that gets only the spec and the key sees the same. */
static void case_child_process(void **state)
{
	const struct ct_kind *k = ct_kind_of(state);
	char key[MFS_KEY_BUFSIZE], out[CT_OUT_MAX], want[CT_OUT_MAX];
	char child[PATH_MAX], spec[PATH_MAX];
	mfs_client *c;
	mfs_model *m;
	mfs_store *s;
	int status;

	assert_int_equal(k->open(k, &s), 0);
	ct_put_std(s, 1, NULL, 0, key);
	snprintf(child, sizeof(child), "%s",
		 ct_build_path("tests/client/client_child"));
	snprintf(spec, sizeof(spec), "%s", mfs_store_client_spec(s));
	status = ct_run((char *[]){child, spec, key, NULL}, out, sizeof(out));
	assert_true(WIFEXITED(status));
	if (!k->cross_process) {
		/* In-process stores refuse other processes. */
		assert_int_equal(WEXITSTATUS(status), EXDEV);
	} else {
		assert_int_equal(WEXITSTATUS(status), 0);
		assert_int_equal(mfs_client_open(&c, spec), 0);
		assert_int_equal(mfs_get_model(c, key, &m), 0);
		ct_digest(m, want, sizeof(want));
		assert_string_equal(out, want);
		assert_int_equal(mfs_model_release(m), 0);
		assert_int_equal(mfs_client_close(c), 0);
	}
	assert_int_equal(mfs_store_release(s), 0);
}

/* What the threads of case_threads share. */
struct ct_thread_arg {
	mfs_store *store;
	mfs_client *client;
	const char *key;
	int index;
	atomic_int *failures;
};

static bool ct_same(const mfs_model *m, int i, unsigned v)
{
	size_t len;
	const void *data = ct_std_data(i, v, &len);
	mfs_array_view a;

	return mfs_model_array(m, ct_std_spec(i)->name, &a) == 0 &&
	       a.nbytes == len && memcmp(a.data, data, len) == 0;
}

/* Gets and releases the shared model, and puts and gets its own. */
static void *ct_thread(void *p)
{
	struct ct_thread_arg *t = p;
	char key[MFS_KEY_BUFSIZE];
	mfs_builder *b;
	mfs_model *m;
	bool ok = true;

	for (int r = 0; ok && r < CT_THREAD_ROUNDS; r++) {
		ok = mfs_get_model(t->client, t->key, &m) == 0;
		ok = ok && ct_same(m, CT_EMB, 1) && ct_same(m, CT_SIM, 1);
		ok = ok && mfs_model_release(m) == 0;
	}
	snprintf(key, sizeof(key), "thread-%d", t->index);
	ok = ok && mfs_builder_new(&b) == 0;
	if (ok) {
		size_t len;
		const void *d = ct_std_data(CT_SIM, 1, &len);
		ok = mfs_builder_add(b, ct_std_spec(CT_SIM), d, 0) == 0 &&
		     mfs_store_put(t->store, b, key, 0, NULL) == 0 &&
		     mfs_get_model(t->client, key, &m) == 0 &&
		     ct_same(m, CT_SIM, 1) && mfs_model_release(m) == 0;
		mfs_builder_free(b);
	}
	if (!ok)
		atomic_fetch_add(t->failures, 1);
	return NULL;
}

/* One client and one store used by several threads at once. */
static void case_threads(void **state)
{
	const struct ct_kind *k = ct_kind_of(state);
	struct ct_thread_arg args[CT_THREADS];
	pthread_t th[CT_THREADS];
	char key[MFS_KEY_BUFSIZE];
	atomic_int failures = 0;
	mfs_client *c;
	mfs_store *s;

	assert_int_equal(k->open(k, &s), 0);
	ct_put_std(s, 1, NULL, 0, key);
	assert_int_equal(mfs_client_open(&c, mfs_store_client_spec(s)), 0);
	for (int i = 0; i < CT_THREADS; i++) {
		args[i] = (struct ct_thread_arg){s, c, key, i, &failures};
		assert_int_equal(pthread_create(&th[i], NULL, ct_thread,
						&args[i]),
				 0);
	}
	for (int i = 0; i < CT_THREADS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(atomic_load(&failures), 0);
	assert_int_equal(mfs_client_close(c), 0);
	assert_int_equal(mfs_store_release(s), 0);
}

/* A positional reader over a buffer, CT_READER_STEP bytes per call. */
struct ct_buf_reader {
	const uint8_t *data;
	size_t len;
};

static ssize_t ct_buf_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	const struct ct_buf_reader *r = ctx;

	if (off >= r->len)
		return 0;
	if (len > r->len - off)
		len = r->len - (size_t)off;
	if (len > CT_READER_STEP)
		len = CT_READER_STEP;
	memcpy(buf, r->data + off, len);
	return (ssize_t)len;
}

/* Reader-backed and copied arrays reach the store intact. */
static void case_reader_and_copy(void **state)
{
	const struct ct_kind *k = ct_kind_of(state);
	mfs_array_spec spec = {.name = "copied", .dtype = MFS_DTYPE_UINT8,
			       .ndim = 1, .shape = {CT_COPY_LEN}};
	uint8_t local[CT_COPY_LEN], orig[CT_COPY_LEN];
	struct ct_buf_reader r;
	char key[MFS_KEY_BUFSIZE];
	mfs_builder *b;
	mfs_client *c;
	mfs_model *m;
	mfs_store *s;

	r.data = ct_std_data(CT_BIG, 1, &r.len);
	for (int i = 0; i < CT_COPY_LEN; i++)
		local[i] = orig[i] = (uint8_t)(i * 3);
	assert_int_equal(mfs_builder_new(&b), 0);
	assert_int_equal(mfs_builder_add_reader(b, ct_std_spec(CT_BIG),
						ct_buf_read, &r, 0),
			 0);
	assert_int_equal(mfs_builder_add(b, &spec, local, MFS_ARRAY_COPY), 0);
	memset(local, 0xEE, sizeof(local)); /* the builder has its copy */
	assert_int_equal(k->open(k, &s), 0);
	assert_int_equal(mfs_store_put(s, b, NULL, 0, key), 0);
	mfs_builder_free(b);
	assert_int_equal(mfs_client_open(&c, mfs_store_client_spec(s)), 0);
	assert_int_equal(mfs_get_model(c, key, &m), 0);
	ct_check_array(m, "big", r.data, r.len);
	ct_check_array(m, "copied", orig, sizeof(orig));
	assert_int_equal(mfs_model_release(m), 0);
	assert_int_equal(mfs_client_close(c), 0);
	assert_int_equal(mfs_store_release(s), 0);
}

/* Imports: a container as is and re-serialized (same key as a put of the
 * same model), a directory of .npy files, one .npy file. */
static void case_put_file(void **state)
{
	const struct ct_kind *k = ct_kind_of(state);
	char dir[PATH_MAX], kb[MFS_KEY_BUFSIZE], kf[MFS_KEY_BUFSIZE];
	char kr[MFS_KEY_BUFSIZE];
	const char *meta = ct_std_meta(2);
	mfs_builder *b = ct_std_builder(1);
	mfs_client *c;
	mfs_model *m;
	const void *data;
	mfs_store *s;
	size_t len;

	ct_scratch(k->scratch, dir);
	mfs_sharing_begin();
	assert_int_equal(mfs_builder_write(b, ct_path(dir, "std.mfs")), 0);
	assert_int_equal(mfs_sharing_end(), 0);
	assert_int_equal(k->open(k, &s), 0);
	assert_int_equal(mfs_store_put(s, b, NULL, 0, kb), 0);
	assert_int_equal(mfs_store_put_file(s, ct_path(dir, "std.mfs"), NULL, 0,
					    kf),
			 0);
	assert_int_equal(mfs_store_put_file(s, ct_path(dir, "std.mfs"), NULL,
					    MFS_PUT_RESERIALIZE, kr),
			 0);
	if (ct_files(k)) {
		assert_string_equal(kf, kb);
		assert_string_equal(kr, kb);
	}
	ct_get_check(s, kf, 1);
	ct_get_check(s, kr, 1);

	assert_int_equal(mkdir(ct_path(dir, "npy"), 0755), 0);
	ct_write_npy(ct_path(dir, "npy/emb.npy"), CT_EMB, 2);
	ct_write_npy(ct_path(dir, "npy/sim.data.npy"), CT_SIM, 2);
	ct_write_npy(ct_path(dir, "npy/scalar.npy"), CT_SCALAR, 2);
	ct_write_npy(ct_path(dir, "npy/empty.npy"), CT_EMPTY, 2);
	ct_write_file(ct_path(dir, "npy/metadata.json"), meta, strlen(meta));
	ct_write_file(ct_path(dir, "npy/notes.txt"), "x", 1);
	ct_write_npy(ct_path(dir, "npy/.hidden.npy"), CT_EMB, 1);
	assert_int_equal(mfs_store_put_file(s, ct_path(dir, "npy"), "npydir",
					    0, kf),
			 0);
	assert_string_equal(kf, "npydir");
	assert_int_equal(mfs_client_open(&c, mfs_store_client_spec(s)), 0);
	assert_int_equal(mfs_get_model(c, "npydir", &m), 0);
	assert_int_equal(mfs_model_array_count(m), 4);
	assert_string_equal(mfs_model_metadata(m, NULL), meta);
	for (int i = CT_EMB; i <= CT_SCALAR; i++) {
		data = ct_std_data(i, 2, &len);
		ct_check_array(m, ct_std_spec(i)->name, data, len);
	}
	assert_int_equal(mfs_model_release(m), 0);

	assert_int_equal(mfs_store_put_file(s, ct_path(dir, "npy/emb.npy"),
					    "one", 0, NULL),
			 0);
	assert_int_equal(mfs_get_model(c, "one", &m), 0);
	assert_int_equal(mfs_model_array_count(m), 1);
	data = ct_std_data(CT_EMB, 2, &len);
	ct_check_array(m, "emb", data, len);
	assert_string_equal(mfs_model_metadata(m, NULL), "{}");
	assert_int_equal(mfs_model_release(m), 0);
	assert_int_equal(mfs_client_close(c), 0);
	assert_int_equal(mfs_store_release(s), 0);
	mfs_builder_free(b);
	ct_rmtree(dir);
}

/* In a child: gets @array of @key with MODELFS_DEBUG=1, releases the
 * model, checks the range stays reserved, then reads it (must fault). */
static void ct_guard_child(const char *spec, const char *key,
			   const char *array)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	const volatile uint8_t *p;
	mfs_array_view a;
	mfs_client *c;
	mfs_model *m;
	void *q;

	/* cmocka catches SIGSEGV in tests: the child must really die. */
	sigaction(SIGSEGV, &dfl, NULL);
	sigaction(SIGBUS, &dfl, NULL);
	setenv("MODELFS_DEBUG", "1", 1);
	if (mfs_client_open(&c, spec) || mfs_get_model(c, key, &m) ||
	    mfs_model_array(m, array, &a) || !a.data)
		_exit(CT_GUARD_SETUP);
	p = a.data;
	if (p[0] != ((const uint8_t *)a.data)[0] || mfs_model_release(m))
		_exit(CT_GUARD_SETUP);
	/* The guard keeps the range: a new mapping cannot land on it. */
	q = mmap(NULL, a.nbytes, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (q != MAP_FAILED && (const uint8_t *)q < p + a.nbytes &&
	    p < (const uint8_t *)q + a.nbytes)
		_exit(CT_GUARD_REUSED);
	(void)p[a.nbytes / 2]; /* the stray read */
	_exit(0);
}

/* In-process models borrow the builder's memory: there is no mapping to
 * guard, and the bytes stay readable after release (the store holds
 * them).  The child of a fork is another process, so this runs here. */
static void ct_guard_inproc(mfs_store *s, const char *key)
{
	mfs_array_view a;
	mfs_client *c;
	mfs_model *m;
	size_t len;
	const void *data = ct_std_data(CT_EMB, 1, &len);

	ct_setenv("MODELFS_DEBUG", "1");
	assert_int_equal(mfs_client_open(&c, mfs_store_client_spec(s)), 0);
	assert_int_equal(mfs_get_model(c, key, &m), 0);
	assert_int_equal(mfs_model_array(m, "emb", &a), 0);
	assert_int_equal(mfs_model_release(m), 0);
	assert_memory_equal(a.data, data, len);
	assert_int_equal(mfs_client_close(c), 0);
	ct_setenv("MODELFS_DEBUG", NULL);
}

/* With MODELFS_DEBUG=1 a stray read after release dies with SIGSEGV. */
static void case_debug_guard(void **state)
{
	static const char *const arrays[] = {"emb", "sim.data"};
	const struct ct_kind *k = ct_kind_of(state);
	char key[MFS_KEY_BUFSIZE];
	mfs_store *s;
	int status;
	pid_t pid;

	assert_int_equal(k->open(k, &s), 0);
	ct_put_std(s, 1, NULL, 0, key);
	for (size_t i = 0; k->cross_process && i < sizeof(arrays) /
						     sizeof(*arrays); i++) {
		fflush(NULL);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			ct_guard_child(mfs_store_client_spec(s), key, arrays[i]);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFSIGNALED(status))
			print_error("%s: child exited with %d\n", arrays[i],
				    WEXITSTATUS(status));
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGSEGV);
	}
	if (!k->cross_process)
		ct_guard_inproc(s, key);
	assert_int_equal(mfs_store_release(s), 0);
}

/* ------------------------------------------------------------------ */
/* Runner                                                              */
/* ------------------------------------------------------------------ */

struct ct_case {
	const char *name;
	CMUnitTestFunction fn;
};

static const struct ct_case ct_cases[] = {
	{"roundtrip", case_roundtrip},
	{"keys", case_keys},
	{"errors", case_errors},
	{"remove_while_held", case_remove_while_held},
	{"ephemeral_persistent", case_ephemeral_persistent},
	{"child_process", case_child_process},
	{"threads", case_threads},
	{"reader_and_copy", case_reader_and_copy},
	{"put_file", case_put_file},
	{"debug_guard", case_debug_guard},
};

#define CT_NCASES (sizeof(ct_cases) / sizeof(ct_cases[0]))

int ct_run_cases(const char *group, struct ct_kind *k)
{
	static char names[CT_NCASES][PATH_MAX];
	struct CMUnitTest tests[CT_NCASES];

	for (size_t i = 0; i < CT_NCASES; i++) {
		snprintf(names[i], sizeof(names[i]), "%s/%s", k->name,
			 ct_cases[i].name);
		tests[i] = (struct CMUnitTest){names[i], ct_cases[i].fn, NULL,
					       ct_after_case, k};
	}
	return _cmocka_run_group_tests(group, tests, CT_NCASES, NULL, NULL);
}
