/*
 * ctest.c - helpers shared by the client API tests (see ctest.h).
 */
#include "ctest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "mount_internal.h"

#define CT_PATH_SLOTS 8
#define CT_NFTW_FDS 16
#define CT_EMB_ROWS 64
#define CT_EMB_COLS 33
#define CT_SIM_LEN 50000
#define CT_FORT_ROWS 3
#define CT_FORT_COLS 7
#define CT_BIG_LEN (3 * 4096 + 100)
#define CT_INV_LEN 64
#define CT_SMALL_CHUNK 4096u
#define CT_META_MAX 128
/* An empty array's .npy header is NumPy's, padded to a multiple of this. */
#define CT_NPY_COMPACT_ALIGN 64
/* The compressible pattern of sim.data repeats every so many values. */
#define CT_SIM_PERIOD 7
/* Seconds to wait for a mount to appear or a daemon to exit. */
#define CT_MOUNT_TIMEOUT_S 10
#define CT_POLL_NS 20000000L
#define CT_NS_PER_S 1000000000L
#define CT_POLLS_PER_S (CT_NS_PER_S / CT_POLL_NS)

/* ------------------------------------------------------------------ */
/* Files                                                               */
/* ------------------------------------------------------------------ */

void ct_scratch(const char *base, char *out)
{
	snprintf(out, PATH_MAX, "%s/mfs-client-XXXXXX", base);
	assert_non_null(mkdtemp(out));
}

static int ct_rm_one(const char *path, const struct stat *st, int flag,
		     struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void ct_rmtree(const char *path)
{
	nftw(path, ct_rm_one, CT_NFTW_FDS, FTW_DEPTH | FTW_PHYS);
}

const char *ct_path(const char *a, const char *b)
{
	static char bufs[CT_PATH_SLOTS][PATH_MAX];
	static int next;
	char *p = bufs[next++ % CT_PATH_SLOTS];

	assert_true(snprintf(p, PATH_MAX, "%s/%s", a, b) < PATH_MAX);
	return p;
}

int ct_count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

bool ct_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

void ct_write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

char *ct_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t cap = 0, n;

	if (!f)
		return NULL;
	FILE *out = open_memstream(&buf, &cap);
	char chunk[BUFSIZ];
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, n, out);
	fclose(out);
	fclose(f);
	if (len)
		*len = cap;
	return buf;
}

void ct_flip_byte(const char *path, uint64_t off, uint8_t mask)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	uint8_t b;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= mask;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

/* ------------------------------------------------------------------ */
/* The standard model                                                  */
/* ------------------------------------------------------------------ */

static const mfs_array_spec ct_specs[CT_STD_COUNT] = {
	[CT_EMB] = {.name = "emb", .dtype = MFS_DTYPE_FLOAT32, .ndim = 2,
		    .shape = {CT_EMB_ROWS, CT_EMB_COLS}},
	[CT_SIM] = {.name = "sim.data", .dtype = MFS_DTYPE_INT32, .ndim = 1,
		    .shape = {CT_SIM_LEN}, .codec = MFS_CODEC_LZ4,
		    .chunk_size = CT_SMALL_CHUNK},
	[CT_EMPTY] = {.name = "empty", .dtype = MFS_DTYPE_FLOAT64, .ndim = 1,
		      .shape = {0}},
	[CT_SCALAR] = {.name = "scalar", .dtype = MFS_DTYPE_INT64, .ndim = 0},
	[CT_FORT] = {.name = "fort", .dtype = MFS_DTYPE_BFLOAT16, .ndim = 2,
		     .shape = {CT_FORT_ROWS, CT_FORT_COLS},
		     .order = MFS_ORDER_F},
	[CT_BIG] = {.name = "big", .dtype = MFS_DTYPE_UINT8, .ndim = 1,
		    .shape = {CT_BIG_LEN}, .chunk_size = CT_SMALL_CHUNK},
	[CT_INV] = {.name = "inv", .dtype = MFS_DTYPE_INT32, .ndim = 1,
		    .shape = {CT_INV_LEN}},
};

const mfs_array_spec *ct_std_spec(int i)
{
	return &ct_specs[i];
}

static size_t ct_std_len(int i)
{
	uint64_t n;

	assert_true(mfs_shape_bytes(ct_specs[i].dtype, ct_specs[i].ndim,
				    ct_specs[i].shape, &n));
	return (size_t)n;
}

/* Deterministic bytes; sim.data is compressible on purpose. */
static void ct_fill(int i, unsigned v, uint8_t *p, size_t len)
{
	uint64_t s = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1) + v;

	if (i == CT_SIM) {
		int32_t *q = (int32_t *)p;
		for (size_t k = 0; k < len / sizeof(*q); k++)
			q[k] = (int32_t)(k / CT_SIM_PERIOD + v);
		return;
	}
	for (size_t k = 0; k < len; k++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		p[k] = (uint8_t)s;
	}
}

const void *ct_std_data(int i, unsigned v, size_t *len)
{
	/* Variants 0..3 are made once per array and kept. */
	enum { CT_VARIANTS = 4 };
	static uint8_t *cache[CT_STD_COUNT][CT_VARIANTS];
	size_t n = ct_std_len(i);

	assert_true(v < CT_VARIANTS);
	if (!cache[i][v] && n > 0) {
		cache[i][v] = malloc(n);
		assert_non_null(cache[i][v]);
		ct_fill(i, v, cache[i][v], n);
	}
	*len = n;
	return cache[i][v];
}

const char *ct_std_meta(unsigned v)
{
	static char buf[CT_META_MAX];

	snprintf(buf, sizeof(buf), "{\"model\": \"std\", \"variant\": %u}", v);
	return buf;
}

mfs_builder *ct_std_builder(unsigned v)
{
	mfs_builder *b;
	const char *meta = ct_std_meta(v);
	size_t len;

	assert_int_equal(mfs_builder_new(&b), 0);
	for (int i = 0; i < CT_STD_COUNT; i++) {
		const void *data = ct_std_data(i, v, &len);
		assert_int_equal(mfs_builder_add(b, &ct_specs[i], data,
						 i == CT_INV ? MFS_ARRAY_DERIVED
							     : 0),
				 0);
	}
	assert_int_equal(mfs_builder_set_metadata(b, meta, strlen(meta)), 0);
	return b;
}

void ct_check_array(const mfs_model *m, const char *name, const void *data,
		    size_t len)
{
	mfs_array_view a;

	assert_int_equal(mfs_model_array(m, name, &a), 0);
	assert_int_equal(a.nbytes, len);
	if (len == 0) {
		assert_null(a.data);
		return;
	}
	assert_non_null(a.data);
	assert_memory_equal(a.data, data, len);
}

void ct_check_std(const mfs_model *m, unsigned v, bool derived)
{
	size_t len, mlen, k = 0;
	const char *meta = mfs_model_metadata(m, &mlen);
	mfs_array_view a;

	assert_string_equal(meta, ct_std_meta(v));
	assert_int_equal(mlen, strlen(ct_std_meta(v)));
	assert_int_equal(mfs_model_array_count(m),
			 derived ? CT_STD_COUNT : CT_STD_COUNT - 1);
	for (int i = 0; i < CT_STD_COUNT; i++) {
		const mfs_array_spec *s = &ct_specs[i];
		const void *data = ct_std_data(i, v, &len);
		if (i == CT_INV && !derived) {
			assert_int_equal(mfs_model_array(m, s->name, &a),
					 -ENOENT);
			continue;
		}
		/* Iteration follows the builder's order. */
		assert_int_equal(mfs_model_array_at(m, k++, &a), 0);
		assert_string_equal(a.name, s->name);
		assert_int_equal(a.dtype, s->dtype);
		assert_int_equal(a.ndim, s->ndim);
		assert_memory_equal(a.shape, s->shape,
				    s->ndim * sizeof(uint64_t));
		assert_int_equal(a.order, s->order);
		ct_check_array(m, s->name, data, len);
	}
}

void ct_digest(const mfs_model *m, char *buf, size_t cap)
{
	size_t used = 0, mlen;
	const char *meta = mfs_model_metadata(m, &mlen);
	mfs_array_view a;

	for (size_t i = 0; i < mfs_model_array_count(m); i++) {
		mfs_model_array_at(m, i, &a);
		used += (size_t)snprintf(buf + used, cap - used, "%s %s %u [",
					 a.name, mfs_dtype_name(a.dtype),
					 a.ndim);
		for (uint32_t d = 0; d < a.ndim; d++)
			used += (size_t)snprintf(buf + used, cap - used,
						 "%s%" PRIu64, d ? "," : "",
						 a.shape[d]);
		used += (size_t)snprintf(buf + used, cap - used,
					 "] %c %zu %016" PRIx64 "\n",
					 a.order == MFS_ORDER_F ? 'F' : 'C',
					 a.nbytes,
					 (uint64_t)XXH3_64bits(a.data,
							       a.nbytes));
	}
	snprintf(buf + used, cap - used, "metadata %016" PRIx64 "\n",
		 (uint64_t)XXH3_64bits(meta, mlen));
}

void ct_expect(long rc, int err, const char *needle)
{
	if (rc != err || !strstr(mfs_last_error(), needle))
		print_error("expected %d with '%s', got %ld: '%s'\n", err,
			    needle, rc, mfs_last_error());
	assert_int_equal(rc, err);
	assert_non_null(strstr(mfs_last_error(), needle));
}

/* mfs_npy_header into @header, asserting its length: 4096 bytes for an
 * array of @nbytes > 0, NumPy's compact header (a multiple of 64 under
 * 4096) for an empty one.  Returns the length. */
static size_t ct_npy_header(mfs_dtype dtype, uint32_t ndim,
			    const uint64_t *shape, mfs_order order,
			    size_t nbytes, char header[MFS_NPY_HEADER_SIZE])
{
	int n = mfs_npy_header(dtype, ndim, shape, order, header,
			       MFS_NPY_HEADER_SIZE);

	if (nbytes) {
		assert_int_equal(n, (int)MFS_NPY_HEADER_SIZE);
	} else {
		assert_true(n > 0 && n < (int)MFS_NPY_HEADER_SIZE);
		assert_int_equal(n % CT_NPY_COMPACT_ALIGN, 0);
	}
	return (size_t)n;
}

void ct_write_npy(const char *path, int i, unsigned v)
{
	const mfs_array_spec *s = &ct_specs[i];
	char header[MFS_NPY_HEADER_SIZE];
	size_t len;
	const void *data = ct_std_data(i, v, &len);
	size_t hlen = ct_npy_header(s->dtype, s->ndim, s->shape, s->order, len,
				    header);
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, header, hlen), (ssize_t)hlen);
	if (len)
		assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* Writes array @i of @c as "<name>.npy" into @dir. */
static void ct_export_npy(mfs_container *c, size_t i, const char *dir)
{
	char header[MFS_NPY_HEADER_SIZE], file[PATH_MAX];
	mfs_array_info ai;
	uint8_t *data;
	size_t hlen;
	int fd;

	assert_int_equal(mfs_container_array(c, i, &ai), 0);
	hlen = ct_npy_header(ai.dtype, ai.ndim, ai.shape, ai.order,
			     (size_t)ai.raw_length, header);
	data = malloc(ai.raw_length ? ai.raw_length : 1);
	assert_non_null(data);
	assert_int_equal(mfs_container_read(c, i, 0, data, ai.raw_length),
			 (ssize_t)ai.raw_length);
	assert_true(snprintf(file, sizeof(file), "%s/%s.npy", dir, ai.name) <
		    (int)sizeof(file));
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, header, hlen), (ssize_t)hlen);
	if (ai.raw_length)
		assert_int_equal(write(fd, data, ai.raw_length),
				 (ssize_t)ai.raw_length);
	close(fd);
	free(data);
}

void ct_export_layout(const char *path, const char *dir)
{
	mfs_container *c;
	const char *meta;
	char *manifest;
	size_t len;

	if (!ct_exists(path)) {
		mfs_builder *b = ct_std_builder(1);
		mfs_sharing_begin();
		assert_int_equal(mfs_builder_write(b, path), 0);
		assert_int_equal(mfs_sharing_end(), 0);
		mfs_builder_free(b);
	}
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(mfs_container_open(&c, path), 0);
	assert_int_equal(mfs_container_manifest(c, "m", &manifest, &len),
			 0);
	ct_write_file(ct_path(dir, "manifest.json"), manifest, len);
	free(manifest);
	meta = mfs_container_metadata(c, &len);
	ct_write_file(ct_path(dir, "metadata.json"), meta, len);
	for (size_t i = 0; i < mfs_container_array_count(c); i++)
		ct_export_npy(c, i, dir);
	mfs_container_close(c);
}

/* ------------------------------------------------------------------ */
/* Processes                                                           */
/* ------------------------------------------------------------------ */

const char *ct_build_path(const char *rel)
{
	static char buf[PATH_MAX];
	const char *b = getenv("MODELFS_BUILD_DIR");

	assert_true(snprintf(buf, sizeof(buf), "%s/%s", b ? b : ".", rel) <
		    (int)sizeof(buf));
	return buf;
}

int ct_run(char *const argv[], char *out, size_t cap)
{
	int fds[2], status;
	size_t used = 0;
	ssize_t n;
	pid_t pid;
	char sink[BUFSIZ];

	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		char *dst = out && used + 1 < cap ? out + used : sink;
		size_t room = out && used + 1 < cap ? cap - 1 - used
						      : sizeof(sink);
		n = read(fds[0], dst, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (dst != sink)
			used += (size_t)n;
	}
	close(fds[0]);
	if (out)
		out[used] = '\0';
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

void ct_setenv(const char *name, const char *value)
{
	if (value)
		assert_int_equal(setenv(name, value, 1), 0);
	else
		assert_int_equal(unsetenv(name), 0);
}

/* ------------------------------------------------------------------ */
/* The daemon                                                          */
/* ------------------------------------------------------------------ */

/* The daemon to stop at exit or on SIGTERM (one per test program). */
static struct ct_daemon *ct_running;

int ct_daemon_available(const char **why)
{
	if (access(ct_build_path("fs/modelfs"), X_OK) != 0) {
		*why = "fs/modelfs is not built";
		return 0;
	}
	if (access("/dev/fuse", R_OK | W_OK) != 0) {
		*why = "/dev/fuse is missing";
		return 0;
	}
	return 1;
}

void ct_require_daemon(const char *test)
{
	const char *why, *req = getenv("MODELFS_REQUIRE_FUSE");

	if (ct_daemon_available(&why))
		return;
	if (req && strcmp(req, "1") == 0) {
		fprintf(stderr, "%s: FAIL: %s and MODELFS_REQUIRE_FUSE=1\n",
			test, why);
		exit(1);
	}
	fprintf(stderr, "%s: SKIP: %s (the mount-store cases need the real "
		"daemon)\n", test, why);
	exit(CT_SKIP);
}

static void ct_fusermount(const char *flag, const char *mnt)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		execlp("fusermount3", "fusermount3", flag, mnt, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, &status, 0);
}

/* Waits up to CT_MOUNT_TIMEOUT_S for @pid to exit; true if it did. */
static bool ct_wait_exit(pid_t pid)
{
	const struct timespec step = {0, CT_POLL_NS};
	int status;

	for (long i = 0; i < CT_MOUNT_TIMEOUT_S * CT_POLLS_PER_S; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return true;
		nanosleep(&step, NULL);
	}
	return false;
}

void ct_daemon_stop(struct ct_daemon *d)
{
	if (!d || !d->mnt[0])
		return;
	/* A killed daemon (pid 0) can leave its mount behind too. */
	if (d->pid > 0 || mfs_mount_probe(d->mnt) != MFS_MOUNT_NONE)
		ct_fusermount("-u", d->mnt);
	if (mfs_mount_probe(d->mnt) != MFS_MOUNT_NONE)
		ct_fusermount("-uz", d->mnt);
	if (d->pid > 0 && !ct_wait_exit(d->pid)) {
		kill(d->pid, SIGTERM);
		if (!ct_wait_exit(d->pid)) {
			kill(d->pid, SIGKILL);
			waitpid(d->pid, NULL, 0);
		}
	}
	d->pid = 0;
	rmdir(d->mnt);
	d->mnt[0] = '\0';
	if (ct_running == d)
		ct_running = NULL;
}

static void ct_daemon_atexit(void)
{
	ct_daemon_stop(ct_running);
}

static void ct_daemon_signal(int sig)
{
	ct_daemon_stop(ct_running);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void ct_daemon_exec(const struct ct_daemon *d)
{
	int log = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	/* If the test dies in a way no handler sees (SIGKILL), the daemon
	 * gets SIGTERM, on which it unmounts and exits. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (log >= 0) {
		dup2(log, STDOUT_FILENO);
		dup2(log, STDERR_FILENO);
	}
	execl(ct_build_path("fs/modelfs"), "modelfs", "-f", d->store, d->mnt,
	      (char *)NULL);
	_exit(127);
}

int ct_daemon_start(struct ct_daemon *d, const char *scratch,
		    const char *store)
{
	static bool hooked;
	const struct timespec step = {0, CT_POLL_NS};
	int status;

	memset(d, 0, sizeof(*d));
	snprintf(d->store, sizeof(d->store), "%s", store);
	assert_true(snprintf(d->mnt, sizeof(d->mnt), "%s/mnt", scratch) <
		    (int)sizeof(d->mnt));
	assert_true(snprintf(d->log, sizeof(d->log), "%s/daemon.log", scratch) <
		    (int)sizeof(d->log));
	mkdir(d->mnt, 0755);
	if (!hooked) {
		atexit(ct_daemon_atexit);
		signal(SIGTERM, ct_daemon_signal);
		signal(SIGINT, ct_daemon_signal);
		signal(SIGHUP, ct_daemon_signal);
		signal(SIGPIPE, ct_daemon_signal);
		hooked = true;
	}
	fflush(NULL);
	d->pid = fork();
	if (d->pid < 0)
		return -1;
	if (d->pid == 0)
		ct_daemon_exec(d);
	ct_running = d;
	for (long i = 0; i < CT_MOUNT_TIMEOUT_S * CT_POLLS_PER_S; i++) {
		if (mfs_is_modelfs_mount(d->mnt))
			return 0;
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			fprintf(stderr, "daemon exited early (status %d); see "
				"%s\n", status, d->log);
			d->pid = 0;
			return -1;
		}
		nanosleep(&step, NULL);
	}
	fprintf(stderr, "daemon did not mount %s in %d s\n", d->mnt,
		CT_MOUNT_TIMEOUT_S);
	ct_daemon_stop(d);
	return -1;
}
