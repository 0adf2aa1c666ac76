/*
 * test_npy.c - unit tests of the NPY module: the header (4096 bytes, or
 * NumPy's compact one for an array with no elements) against NumPy's own
 * writer and np.load, the parser against files NumPy writes, and every
 * rejection path with its errno and message.
 *
 * NumPy runs through tests/npy/npy_helper.py with $PYTHON_NUMPY
 * (default /usr/bin/python3).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "modelfs.h"

#define PREAMBLE_V1 10u
#define PREAMBLE_V2 12u
/* NumPy pads the headers it writes to a multiple of this. */
#define NUMPY_ALIGN 64u
#define MAX_DIMS_TEXT 64
#define LINE_MAX_LEN 4096
#define FNV_OFFSET 14695981039346656037ull
#define FNV_PRIME 1099511628211ull

/* The temporary directory holding NumPy-written files for this run. */
static char g_dir[PATH_MAX];

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static const char *python(void)
{
	const char *p = getenv("PYTHON_NUMPY");
	return p && *p ? p : "/usr/bin/python3";
}

/* Runs npy_helper.py with the given arguments; returns its exit status. */
static int run_helper(const char *a1, const char *a2, const char *a3)
{
	char cmd[3 * PATH_MAX];
	int st;

	snprintf(cmd, sizeof(cmd), "'%s' '%s/npy_helper.py' %s '%s' %s%s%s",
		 python(), MFS_TEST_SOURCE_DIR, a1, a2, a3 ? "'" : "",
		 a3 ? a3 : "", a3 ? "'" : "");
	st = system(cmd);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

static void path_in(char *out, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", g_dir, name);

	assert_true(n > 0 && n < PATH_MAX);
}

/* Asserts @rc == @err and that the thread's message contains @needle. */
#define assert_fails(rc, err, needle)                                        \
	do {                                                                 \
		int rc_ = (rc);                                              \
		if (rc_ != (err))                                            \
			print_error("got %d (%s), want %d for '%s'\n", rc_,  \
				    mfs_last_error(), (err), (needle));      \
		assert_int_equal(rc_, (err));                                \
		if (!strstr(mfs_last_error(), (needle)))                     \
			print_error("message '%s' lacks '%s'\n",             \
				    mfs_last_error(), (needle));             \
		assert_non_null(strstr(mfs_last_error(), (needle)));         \
	} while (0)

/* A malloc'd NPY file image: preamble of @major.0 + @dict + '\n' padding,
 * then @data_len bytes of data.  Exact size, so ASan sees over-reads. */
static uint8_t *make_npy(unsigned major, const char *dict, size_t data_len,
			 size_t *len)
{
	size_t pre = major == 1 ? PREAMBLE_V1 : PREAMBLE_V2;
	size_t dlen = strlen(dict);
	size_t hlen = dlen + 1;
	uint8_t *b = malloc(pre + hlen + data_len + 1);

	assert_non_null(b);
	memcpy(b, "\x93NUMPY", 6);
	b[6] = (uint8_t)major;
	b[7] = 0;
	if (major == 1) {
		assert_true(hlen <= UINT16_MAX);
		b[8] = (uint8_t)hlen;
		b[9] = (uint8_t)(hlen >> 8);
	} else {
		for (int i = 0; i < 4; i++)
			b[8 + i] = (uint8_t)(hlen >> (8 * i));
	}
	memcpy(b + pre, dict, dlen);
	b[pre + dlen] = '\n';
	memset(b + pre + hlen, 0xa5, data_len);
	*len = pre + hlen + data_len;
	return b;
}

static int parse_dict(unsigned major, const char *dict, mfs_npy_info *info)
{
	size_t len, need = 0;
	uint8_t *b = make_npy(major, dict, 0, &len);
	int rc = mfs_npy_parse(b, len, "t.npy", info, &need);

	free(b);
	return rc;
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static int read_fd_path(const char *path, mfs_npy_info *info)
{
	int fd = open(path, O_RDONLY);
	int rc;

	assert_true(fd >= 0);
	rc = mfs_npy_read_fd(fd, path, info);
	close(fd);
	return rc;
}

static uint8_t *read_whole(const char *path, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	uint8_t *b;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	b = malloc((size_t)st.st_size + 1);
	assert_non_null(b);
	assert_int_equal(read(fd, b, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

/* ------------------------------------------------------------------ */
/* Fixture                                                             */
/* ------------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int group_setup(void **state)
{
	const char *tmp = getenv("TMPDIR");

	(void)state;
	snprintf(g_dir, sizeof(g_dir), "%s/test_npy.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(g_dir))
		return -1;
	if (run_helper("write", g_dir, NULL) != 0) {
		fprintf(stderr, "npy_helper.py write failed (NumPy at %s?)\n",
			python());
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	return nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------------ */
/* mfs_npy_header                                                      */
/* ------------------------------------------------------------------ */

struct shape_case {
	uint32_t ndim;
	uint64_t shape[MFS_MAX_NDIM];
};

static const struct shape_case shape_cases[] = {
	{0, {0}},
	{1, {0}},
	{1, {1}},
	{1, {7}},
	{2, {3, 4}},
	{2, {0, 5}},
	{3, {2, 3, 5}},
	{4, {1, 1, 1, 6}},
	{2, {0, UINT64_MAX}},
	{3, {1ull << 40, 0, 123456789012345ull}},
	{32, {1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2,
	      1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 0}},
	/* Empty, with a dict long enough that NumPy's spare space for
	 * growing the first (C) or last (F) axis moves it to 192 bytes. */
	{16, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
	{9, {0, 99999, 99999, 99999, 99999, 99999, 99999, 99999, 0}},
};

#define N_SHAPES (sizeof(shape_cases) / sizeof(shape_cases[0]))

/* Elements of @sc: 0 gets the compact header, anything else 4096 bytes. */
static uint64_t shape_elements(const struct shape_case *sc)
{
	uint64_t n = 1;

	for (uint32_t i = 0; i < sc->ndim; i++)
		n *= sc->shape[i];
	return n;
}

/* The header length mfs_npy_header must return for @sc: MFS_NPY_HEADER_SIZE
 * unless the array is empty, else a multiple of 64 below it. */
static void assert_header_len(const struct shape_case *sc, int len)
{
	if (shape_elements(sc) != 0) {
		assert_int_equal(len, MFS_NPY_HEADER_SIZE);
		return;
	}
	assert_true(len >= (int)NUMPY_ALIGN);
	assert_true(len < (int)MFS_NPY_HEADER_SIZE);
	assert_int_equal(len % NUMPY_ALIGN, 0);
}

/* Every header is v1.0, space-padded, '\n'-terminated, 4096 bytes (a
 * multiple of 64 below that for an empty array), and parses back to what
 * it was made from with its data at the returned length. */
static void test_header_layout(void **state)
{
	char h[MFS_NPY_HEADER_SIZE];

	(void)state;
	for (int dt = MFS_DTYPE_BOOL; dt < MFS_DTYPE_COUNT; dt++) {
		for (size_t s = 0; s < N_SHAPES; s++) {
			for (int o = MFS_ORDER_C; o <= MFS_ORDER_F; o++) {
				const struct shape_case *sc = &shape_cases[s];
				mfs_npy_info info;
				uint64_t bytes = mfs_dtype_size((mfs_dtype)dt);
				char *close_brace;
				int len;

				memset(h, 0, sizeof(h));
				len = mfs_npy_header((mfs_dtype)dt, sc->ndim,
						     sc->shape, (mfs_order)o, h,
						     sizeof(h));
				assert_header_len(sc, len);
				assert_memory_equal(h, "\x93NUMPY\x01\x00", 8);
				assert_int_equal((uint8_t)h[8] | (uint8_t)h[9] << 8,
						 len - (int)PREAMBLE_V1);
				assert_int_equal(h[len - 1], '\n');
				close_brace = memchr(h, '}', (size_t)len);
				assert_non_null(close_brace);
				for (char *p = close_brace + 1; p < h + len - 1;
				     p++)
					assert_int_equal(*p, ' ');
				assert_int_equal(
					mfs_npy_parse(h, (size_t)len, "h", &info,
						      NULL),
					0);
				assert_int_equal(info.dtype,
						 dt == MFS_DTYPE_BFLOAT16
							 ? MFS_DTYPE_UINT16
							 : dt);
				assert_int_equal(info.ndim, sc->ndim);
				for (uint32_t i = 0; i < sc->ndim; i++) {
					assert_true(info.shape[i] == sc->shape[i]);
					bytes *= sc->shape[i];
				}
				assert_int_equal(info.order, o);
				assert_int_equal(info.version, 1);
				assert_int_equal(info.data_offset, len);
				assert_true(info.data_length == bytes);
			}
		}
	}
}

/* Decodes the hex text @hex (even length) into @out; returns the bytes. */
static size_t unhex(const char *hex, size_t hex_len, char *out, size_t cap)
{
	size_t n = hex_len / 2;

	assert_int_equal(hex_len % 2, 0);
	assert_true(n <= cap);
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (char)v;
	}
	return n;
}

/* Our dict text must be byte for byte what NumPy writes for the same
 * descr, order and shape; for an array with no elements the whole header
 * (preamble, dict, padding: its length) is NumPy's own. */
static void test_header_matches_numpy(void **state)
{
	char spec[PATH_MAX], expect[PATH_MAX], line[LINE_MAX_LEN];
	char h[MFS_NPY_HEADER_SIZE], numpy_h[MFS_NPY_HEADER_SIZE];
	FILE *f;
	size_t count = 0, empty = 0;

	(void)state;
	path_in(spec, "header_spec.txt");
	path_in(expect, "header_expect.txt");
	f = fopen(spec, "w");
	assert_non_null(f);
	for (int dt = MFS_DTYPE_BOOL; dt < MFS_DTYPE_COUNT; dt++) {
		for (size_t s = 0; s < N_SHAPES; s++) {
			for (int o = MFS_ORDER_C; o <= MFS_ORDER_F; o++) {
				const struct shape_case *sc = &shape_cases[s];
				fprintf(f, "%s %d", mfs_dtype_npy_descr((mfs_dtype)dt),
					o);
				for (uint32_t i = 0; i < sc->ndim; i++)
					fprintf(f, " %" PRIu64, sc->shape[i]);
				fputc('\n', f);
			}
		}
	}
	assert_int_equal(fclose(f), 0);
	assert_int_equal(run_helper("headers", spec, expect), 0);

	f = fopen(expect, "r");
	assert_non_null(f);
	for (int dt = MFS_DTYPE_BOOL; dt < MFS_DTYPE_COUNT; dt++) {
		for (size_t s = 0; s < N_SHAPES; s++) {
			for (int o = MFS_ORDER_C; o <= MFS_ORDER_F; o++) {
				const struct shape_case *sc = &shape_cases[s];
				size_t n, hex_len, numpy_len;
				char *dict;
				int len;

				/* "<NumPy's whole header in hex> <its dict>" */
				assert_non_null(fgets(line, sizeof(line), f));
				line[strcspn(line, "\n")] = '\0';
				hex_len = strcspn(line, " ");
				assert_int_equal(line[hex_len], ' ');
				dict = line + hex_len + 1;
				numpy_len = unhex(line, hex_len, numpy_h,
						  sizeof(numpy_h));
				len = mfs_npy_header((mfs_dtype)dt, sc->ndim,
						     sc->shape, (mfs_order)o, h,
						     sizeof(h));
				assert_header_len(sc, len);
				n = (size_t)len - PREAMBLE_V1;
				while (n > 0 && (h[PREAMBLE_V1 + n - 1] == ' ' ||
						 h[PREAMBLE_V1 + n - 1] == '\n'))
					n--;
				if (strlen(dict) != n ||
				    memcmp(dict, h + PREAMBLE_V1, n) != 0)
					print_error("numpy: %s\nours:  %.*s\n", dict,
						    (int)n, h + PREAMBLE_V1);
				assert_int_equal(strlen(dict), n);
				assert_memory_equal(dict, h + PREAMBLE_V1, n);
				if (shape_elements(sc) == 0) {
					if ((size_t)len != numpy_len)
						print_error("%s %d: header is %d "
							    "bytes, numpy's %zu\n",
							    dict, o, len,
							    numpy_len);
					assert_int_equal(len, numpy_len);
					assert_memory_equal(h, numpy_h, numpy_len);
					empty++;
				}
				count++;
			}
		}
	}
	assert_null(fgets(line, sizeof(line), f));
	fclose(f);
	assert_int_equal(count, (MFS_DTYPE_COUNT - 1) * N_SHAPES * 2);
	assert_true(empty > 0);
}

/* Deterministic bytes that are valid for every dtype (bool: 0 or 1). */
static void fill_data(uint8_t *p, size_t n, mfs_dtype dt, uint64_t seed)
{
	uint64_t h = FNV_OFFSET ^ seed;

	for (size_t i = 0; i < n; i++) {
		h = (h ^ i) * FNV_PRIME;
		p[i] = dt == MFS_DTYPE_BOOL ? (uint8_t)(h >> 60 & 1)
					    : (uint8_t)(h >> 56);
	}
}

/* np.load(mmap_mode='r') of our header + data gives the right array, with
 * its data at our header's length: empty arrays included, which NumPy
 * cannot map behind a 4096-byte header. */
static void test_header_np_load(void **state)
{
	static const struct shape_case small[] = {
		{0, {0}}, {1, {0}}, {1, {7}}, {2, {3, 4}}, {2, {0, 5}},
		{3, {2, 3, 5}}, {4, {1, 2, 1, 3}},
	};
	char manifest[PATH_MAX], path[PATH_MAX], name[64];
	char h[MFS_NPY_HEADER_SIZE];
	FILE *man;

	(void)state;
	path_in(manifest, "load_manifest.txt");
	man = fopen(manifest, "w");
	assert_non_null(man);
	for (int dt = MFS_DTYPE_BOOL; dt < MFS_DTYPE_COUNT; dt++) {
		for (size_t s = 0; s < sizeof(small) / sizeof(small[0]); s++) {
			for (int o = MFS_ORDER_C; o <= MFS_ORDER_F; o++) {
				const struct shape_case *sc = &small[s];
				size_t bytes = mfs_dtype_size((mfs_dtype)dt);
				uint8_t *file;
				FILE *f;
				int len;

				for (uint32_t i = 0; i < sc->ndim; i++)
					bytes *= sc->shape[i];
				len = mfs_npy_header((mfs_dtype)dt, sc->ndim,
						     sc->shape, (mfs_order)o, h,
						     sizeof(h));
				assert_header_len(sc, len);
				file = malloc((size_t)len + bytes);
				assert_non_null(file);
				memcpy(file, h, (size_t)len);
				fill_data(file + len, bytes, (mfs_dtype)dt,
					  (uint64_t)(dt * 100 + s * 2 + o));
				snprintf(name, sizeof(name), "ours_%d_%zu_%d.npy",
					 dt, s, o);
				path_in(path, name);
				f = fopen(path, "wb");
				assert_non_null(f);
				assert_int_equal(fwrite(file, 1, (size_t)len + bytes,
							f),
						 (size_t)len + bytes);
				assert_int_equal(fclose(f), 0);
				free(file);
				fprintf(man, "%s %s %d %d", path,
					mfs_dtype_npy_descr((mfs_dtype)dt), o,
					len);
				for (uint32_t i = 0; i < sc->ndim; i++)
					fprintf(man, " %" PRIu64, sc->shape[i]);
				fputc('\n', man);
			}
		}
	}
	assert_int_equal(fclose(man), 0);
	assert_int_equal(run_helper("load", manifest, NULL), 0);
}

static void test_header_errors(void **state)
{
	uint64_t shape[MFS_MAX_NDIM + 1] = {3, 4};
	uint64_t huge[2] = {UINT64_MAX / 2, 3};
	char h[MFS_NPY_HEADER_SIZE];

	(void)state;
	assert_fails(mfs_npy_header(MFS_DTYPE_INVALID, 1, shape, MFS_ORDER_C, h,
				    sizeof(h)),
		     -EINVAL, "dtype code 0");
	assert_fails(mfs_npy_header((mfs_dtype)MFS_DTYPE_COUNT, 1, shape,
				    MFS_ORDER_C, h, sizeof(h)),
		     -EINVAL, "dtype code 16");
	assert_fails(mfs_npy_header(MFS_DTYPE_FLOAT32, MFS_MAX_NDIM + 1, shape,
				    MFS_ORDER_C, h, sizeof(h)),
		     -EINVAL, "ndim 33 is more than the limit of 32");
	assert_fails(mfs_npy_header(MFS_DTYPE_FLOAT32, 2, NULL, MFS_ORDER_C, h,
				    sizeof(h)),
		     -EINVAL, "shape is NULL");
	assert_fails(mfs_npy_header(MFS_DTYPE_FLOAT32, 2, shape, (mfs_order)2, h,
				    sizeof(h)),
		     -EINVAL, "order code 2");
	assert_fails(mfs_npy_header(MFS_DTYPE_FLOAT32, 2, huge, MFS_ORDER_C, h,
				    sizeof(h)),
		     -EINVAL, "overflows 64 bits");
	assert_fails(mfs_npy_header(MFS_DTYPE_FLOAT32, 2, shape, MFS_ORDER_C, h,
				    sizeof(h) - 1),
		     -ENOBUFS, "4095 bytes is smaller than 4096");
	assert_fails(mfs_npy_header(MFS_DTYPE_FLOAT32, 2, shape, MFS_ORDER_C,
				    NULL, sizeof(h)),
		     -ENOBUFS, "smaller than 4096");
	/* A 0-d array needs no shape pointer. */
	assert_int_equal(mfs_npy_header(MFS_DTYPE_FLOAT32, 0, NULL, MFS_ORDER_C,
					h, sizeof(h)),
			 MFS_NPY_HEADER_SIZE);
	assert_string_equal(mfs_last_error(), "");
}

/* ------------------------------------------------------------------ */
/* Parsing NumPy's files                                               */
/* ------------------------------------------------------------------ */

/* Every file NumPy wrote (dtypes x shapes x orders x v1/v2/v3) parses to
 * what NumPy itself reads back from it. */
static void test_parse_numpy_files(void **state)
{
	char manifest[PATH_MAX], path[PATH_MAX], line[LINE_MAX_LEN];
	char name[256], dtname[32];
	unsigned count = 0;
	FILE *f;

	(void)state;
	path_in(manifest, "manifest.txt");
	f = fopen(manifest, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned version, fortran, ndim;
		uint64_t off, nbytes;
		mfs_npy_info info, info2;
		mfs_dtype dt;
		size_t len;
		uint8_t *whole;
		int pos;
		char *p;

		assert_int_equal(sscanf(line, "%255s %31s %u %u %" SCNu64
					" %" SCNu64 " %u%n",
					name, dtname, &version, &fortran, &off,
					&nbytes, &ndim, &pos),
				 7);
		path_in(path, name);
		assert_int_equal(mfs_dtype_from_name(dtname, &dt), 0);
		memset(&info, 0xff, sizeof(info));
		if (read_fd_path(path, &info) != 0)
			print_error("%s: %s\n", name, mfs_last_error());
		assert_int_equal(read_fd_path(path, &info), 0);
		assert_int_equal(info.dtype, dt);
		assert_int_equal(info.version, version);
		assert_int_equal(info.order, fortran ? MFS_ORDER_F : MFS_ORDER_C);
		assert_true(info.data_offset == off);
		assert_true(info.data_length == nbytes);
		assert_int_equal(info.ndim, ndim);
		p = line + pos;
		for (unsigned i = 0; i < ndim; i++)
			assert_true(info.shape[i] == strtoull(p, &p, 10));

		/* The in-memory parser agrees on the exact file image. */
		whole = read_whole(path, &len);
		assert_int_equal(mfs_npy_parse(whole, len, name, &info2, NULL), 0);
		assert_int_equal(info2.dtype, info.dtype);
		assert_int_equal(info2.ndim, info.ndim);
		assert_memory_equal(info2.shape, info.shape,
				    ndim * sizeof(uint64_t));
		assert_int_equal(info2.order, info.order);
		assert_int_equal(info2.version, info.version);
		assert_true(info2.data_offset == info.data_offset);
		assert_true(info2.data_length == info.data_length);
		free(whole);
		count++;
	}
	fclose(f);
	/* 14 dtypes x 8 shapes x 2 orders x 3 versions. */
	assert_int_equal(count, 14 * 8 * 2 * 3);
}

/* Files NumPy writes for dtypes the library does not store. */
static void test_parse_numpy_rejects(void **state)
{
	static const struct {
		const char *file;
		int err;
		const char *msg;
	} cases[] = {
		{"reject_object.npy", -ENOTSUP,
		 "object arrays (pickled data) are not supported"},
		{"reject_structured.npy", -ENOTSUP,
		 "structured dtypes are not supported"},
		{"reject_structured_v3.npy", -ENOTSUP,
		 "structured dtypes are not supported"},
		{"reject_bigendian_f4.npy", -ENOTSUP,
		 "big-endian dtype '>f4' is not supported; convert with "
		 "arr.astype('<f4')"},
		{"reject_bigendian_i8.npy", -ENOTSUP,
		 "big-endian dtype '>i8' is not supported; convert with "
		 "arr.astype('<i8')"},
		{"reject_unicode.npy", -ENOTSUP, "'<U2': string dtypes"},
		{"reject_bytes.npy", -ENOTSUP, "'|S2': string dtypes"},
		{"reject_datetime.npy", -ENOTSUP, "'<M8[ns]': datetime dtypes"},
		{"reject_timedelta.npy", -ENOTSUP, "'<m8[s]': timedelta dtypes"},
		{"reject_void.npy", -ENOTSUP, "'|V8': void dtypes"},
		{"reject_longdouble.npy", -ENOTSUP, "'<f16' is not supported"},
		{"reject_clongdouble.npy", -ENOTSUP, "'<c32' is not supported"},
	};
	char path[PATH_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mfs_npy_info info;
		path_in(path, cases[i].file);
		assert_fails(read_fd_path(path, &info), cases[i].err,
			     cases[i].msg);
		assert_non_null(strstr(mfs_last_error(), path));
	}
}

/* ------------------------------------------------------------------ */
/* Hand-written dicts                                                  */
/* ------------------------------------------------------------------ */

static void test_parse_variants(void **state)
{
	static const struct {
		unsigned major;
		const char *dict;
		mfs_dtype dtype;
		mfs_order order;
		uint32_t ndim;
		uint64_t shape[3];
	} ok[] = {
		{1, "{'shape': (3, 4), 'fortran_order': True, 'descr': '<f4'}",
		 MFS_DTYPE_FLOAT32, MFS_ORDER_F, 2, {3, 4, 0}},
		{1, "{\"descr\": \"<i8\", \"fortran_order\": False, "
		    "\"shape\": (5,)}",
		 MFS_DTYPE_INT64, MFS_ORDER_C, 1, {5, 0, 0}},
		{2, " \t{\n'descr' : '=f8' ,\r\n'fortran_order':False,"
		    "'shape':(\n2 ,3 , 4 , ) ,\f}\n\n  ",
		 MFS_DTYPE_FLOAT64, MFS_ORDER_C, 3, {2, 3, 4}},
		{3, "{'descr': '|b1', 'fortran_order': False, 'shape': ()}",
		 MFS_DTYPE_BOOL, MFS_ORDER_C, 0, {0, 0, 0}},
		{1, "{'descr': '<b1', 'fortran_order': False, 'shape': (1,)}",
		 MFS_DTYPE_BOOL, MFS_ORDER_C, 1, {1, 0, 0}},
		{1, "{'descr': '>u1', 'fortran_order': False, 'shape': (0,)}",
		 MFS_DTYPE_UINT8, MFS_ORDER_C, 1, {0, 0, 0}},
		{1, "{'descr': '=i1', 'fortran_order': False, 'shape': (2,)}",
		 MFS_DTYPE_INT8, MFS_ORDER_C, 1, {2, 0, 0}},
		{1, "{'descr': '<u2', 'fortran_order': False, 'shape': (2,)}",
		 MFS_DTYPE_UINT16, MFS_ORDER_C, 1, {2, 0, 0}},
		{1, "{'descr': '=c16', 'fortran_order': True, 'shape': (2, 2)}",
		 MFS_DTYPE_COMPLEX128, MFS_ORDER_F, 2, {2, 2, 0}},
		{1, "{'descr': '<f2', 'fortran_order': False, "
		    "'shape': (0, 18446744073709551615)}",
		 MFS_DTYPE_FLOAT16, MFS_ORDER_C, 2, {0, UINT64_MAX, 0}},
		{1, "{'descr': '|u1', 'fortran_order': False, "
		    "'shape': (9223372036854771000,)}",
		 MFS_DTYPE_UINT8, MFS_ORDER_C, 1, {9223372036854771000ull, 0, 0}},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		mfs_npy_info info;
		uint64_t bytes = mfs_dtype_size(ok[i].dtype);
		int rc = parse_dict(ok[i].major, ok[i].dict, &info);

		if (rc)
			print_error("%s: %s\n", ok[i].dict, mfs_last_error());
		assert_int_equal(rc, 0);
		assert_int_equal(info.dtype, ok[i].dtype);
		assert_int_equal(info.order, ok[i].order);
		assert_int_equal(info.ndim, ok[i].ndim);
		assert_int_equal(info.version, ok[i].major);
		for (uint32_t d = 0; d < ok[i].ndim; d++) {
			assert_true(info.shape[d] == ok[i].shape[d]);
			bytes *= ok[i].shape[d];
		}
		assert_true(info.data_length == bytes);
		assert_int_equal(info.data_offset,
				 (ok[i].major == 1 ? PREAMBLE_V1 : PREAMBLE_V2) +
					 strlen(ok[i].dict) + 1);
	}
}

struct bad_dict {
	const char *dict;
	int err;
	const char *msg;
};

static const struct bad_dict bad_dicts[] = {
	/* dict structure */
	{"", -EBADMSG, "dict: expected '{' at byte 11, found the end of the header"},
	{"[]", -EBADMSG, "dict: expected '{' at byte 10, found '['"},
	{"{'descr': '<f4', 'fortran_order': False}", -EBADMSG,
	 "missing key 'shape'"},
	{"{'descr': '<f4', 'shape': ()}", -EBADMSG,
	 "missing key 'fortran_order'"},
	{"{'fortran_order': False, 'shape': ()}", -EBADMSG,
	 "missing key 'descr'"},
	{"{}", -EBADMSG, "missing key 'descr'"},
	{"{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}",
	 -EBADMSG, "unknown key 'x' at byte 64"},
	{"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
	 "'shape': ()}",
	 -EBADMSG, "key 'descr' at byte 27 appears twice"},
	{"{'descr' '<f4', 'fortran_order': False, 'shape': ()}", -EBADMSG,
	 "dict: expected ':' after a key"},
	{"{'descr': '<f4' 'fortran_order': False, 'shape': ()}", -EBADMSG,
	 "dict: expected ',' or '}'"},
	{"{'descr': '<f4',, 'fortran_order': False, 'shape': ()}", -EBADMSG,
	 "dict key: expected a quoted string"},
	{"{'descr': '<f4', 'fortran_order': False, 'shape': ()} x", -EBADMSG,
	 "padding: expected only whitespace after the dict"},
	{"{'descr': '<f4', 'fortran_order': False, 'shape': ()", -EBADMSG,
	 "dict: expected ',' or '}' at byte 63, found the end of the "
	 "header"},
	{"{descr: '<f4', 'fortran_order': False, 'shape': ()}", -EBADMSG,
	 "dict key: expected a quoted string at byte 11"},
	/* strings */
	{"{'descr: '<f4'}", -EBADMSG, "unknown key 'descr: ' at byte 11"},
	{"{'descr': '<f4", -EBADMSG, "'descr': byte 0x0a at byte 24"},
	{"{'descr': '<f\\x34', 'fortran_order': False, 'shape': ()}",
	 -EBADMSG, "'descr': byte 0x5c at byte 23 is not allowed"},
	{"{'descr': '<f\xc3\xa9', 'fortran_order': False, 'shape': ()}",
	 -EBADMSG, "'descr': byte 0xc3"},
	{"{'descr': \"<f4', 'fortran_order': False, 'shape': ()}", -EBADMSG,
	 "'descr': byte 0x0a"},
	/* descr */
	{"{'descr': 5, 'fortran_order': False, 'shape': ()}", -EBADMSG,
	 "'descr': expected a quoted string"},
	{"{'descr': '', 'fortran_order': False, 'shape': ()}", -EBADMSG,
	 "descr '' does not start with a byte-order mark"},
	{"{'descr': 'f4', 'fortran_order': False, 'shape': ()}", -EBADMSG,
	 "descr 'f4' does not start with a byte-order mark"},
	{"{'descr': '<', 'fortran_order': False, 'shape': ()}", -EBADMSG,
	 "descr '<' does not start"},
	{"{'descr': '<x4', 'fortran_order': False, 'shape': ()}", -EBADMSG,
	 "descr '<x4' is not a NumPy type string"},
	{"{'descr': '<f', 'fortran_order': False, 'shape': ()}", -ENOTSUP,
	 "descr '<f' is not supported"},
	{"{'descr': '<i16', 'fortran_order': False, 'shape': ()}", -ENOTSUP,
	 "descr '<i16' is not supported"},
	{"{'descr': '<f4 ', 'fortran_order': False, 'shape': ()}", -ENOTSUP,
	 "descr '<f4 ' is not supported"},
	{"{'descr': '|f4', 'fortran_order': False, 'shape': ()}", -EBADMSG,
	 "byte order '|' (not applicable) on a 4-byte type"},
	{"{'descr': '>c16', 'fortran_order': False, 'shape': ()}", -ENOTSUP,
	 "big-endian dtype '>c16' is not supported; convert with "
	 "arr.astype('<c16')"},
	{"{'descr': '|O', 'fortran_order': False, 'shape': ()}", -ENOTSUP,
	 "object arrays (pickled data) are not supported"},
	{"{'descr': '|O8', 'fortran_order': False, 'shape': ()}", -ENOTSUP,
	 "object arrays (pickled data) are not supported"},
	{"{'descr': [('a', '<f4'), ('b', [('c', '|u1', (2, 3))])], "
	 "'fortran_order': False, 'shape': (3,)}",
	 -ENOTSUP, "descr is a list: structured dtypes are not supported"},
	{"{'descr': [('a\\'b]', '<f4')], 'fortran_order': False, "
	 "'shape': (3,)}",
	 -ENOTSUP, "structured dtypes are not supported"},
	{"{'descr': [('a', '<f4'), 'fortran_order': False, 'shape': (3,)}",
	 -EBADMSG, "'descr': expected a matching bracket at byte 72"},
	{"{'descr': [('a', '<f4')", -EBADMSG,
	 "'descr': expected a closing bracket"},
	{"{'descr': [('a, '<f4')]", -EBADMSG,
	 "'descr': expected the end of a string"},
	{"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), "
	 "'x': 1}",
	 -EBADMSG, "unknown key 'x'"},
	/* fortran_order */
	{"{'descr': '<f4', 'fortran_order': 1, 'shape': ()}", -EBADMSG,
	 "'fortran_order': expected True or False at byte 44"},
	{"{'descr': '<f4', 'fortran_order': 'True', 'shape': ()}", -EBADMSG,
	 "'fortran_order': expected True or False"},
	{"{'descr': '<f4', 'fortran_order': Truer, 'shape': ()}", -EBADMSG,
	 "'fortran_order': expected True or False"},
	{"{'descr': '<f4', 'fortran_order': false, 'shape': ()}", -EBADMSG,
	 "'fortran_order': expected True or False"},
	{"{'descr': '<f4', 'fortran_order': Fals", -EBADMSG,
	 "'fortran_order': expected True or False"},
	/* shape */
	{"{'descr': '<f4', 'fortran_order': False, 'shape': (5)}", -EBADMSG,
	 "'shape': expected ',' (a 1-tuple is written \"(n,)\")"},
	{"{'descr': '<f4', 'fortran_order': False, 'shape': 5}", -EBADMSG,
	 "'shape': expected '(' (a tuple)"},
	{"{'descr': '<f4', 'fortran_order': False, 'shape': [5]}", -EBADMSG,
	 "'shape': expected '(' (a tuple)"},
	{"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", -EBADMSG,
	 "'shape': dimension 0 at byte 61 is negative"},
	{"{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1)}",
	 -EBADMSG, "'shape': dimension 1 at byte 64 is negative"},
	{"{'descr': '<f4', 'fortran_order': False, 'shape': (1.5,)}",
	 -EBADMSG, "'shape': expected ',' or ')'"},
	{"{'descr': '<f4', 'fortran_order': False, 'shape': (01,)}", -EBADMSG,
	 "'shape': dimension 0 at byte 61 has a leading zero"},
	{"{'descr': '<f4', 'fortran_order': False, 'shape': (1_000,)}",
	 -EBADMSG, "'shape': expected ',' or ')'"},
	{"{'descr': '<f4', 'fortran_order': False, 'shape': (0x10,)}",
	 -EBADMSG, "'shape': expected ',' or ')'"},
	{"{'descr': '<f4', 'fortran_order': False, 'shape': (+3,)}", -EBADMSG,
	 "'shape': expected a non-negative integer at byte 61"},
	{"{'descr': '<f4', 'fortran_order': False, 'shape': (,)}", -EBADMSG,
	 "'shape': expected a non-negative integer"},
	{"{'descr': '<f4', 'fortran_order': False, 'shape': (3,,)}", -EBADMSG,
	 "'shape': expected a non-negative integer"},
	{"{'descr': '<f4', 'fortran_order': False, 'shape': (3 4)}", -EBADMSG,
	 "'shape': expected ',' or ')'"},
	{"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4 5)}",
	 -EBADMSG, "'shape': expected ',' or ')'"},
	{"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4",
	 -EBADMSG, "'shape': expected ',' or ')'"},
	{"{'descr': '<f4', 'fortran_order': False, "
	 "'shape': (18446744073709551616,)}",
	 -EBADMSG, "'shape': dimension 0 at byte 61 is larger than 2^64-1"},
	{"{'descr': '<f4', 'fortran_order': False, "
	 "'shape': (99999999999999999999999,)}",
	 -EBADMSG, "is larger than 2^64-1"},
	{"{'descr': '<f8', 'fortran_order': False, "
	 "'shape': (4294967296, 536870912)}",
	 -EBADMSG, "itemsize 8 overflows 64 bits"},
	{"{'descr': '|u1', 'fortran_order': False, "
	 "'shape': (18446744073709551615,)}",
	 -EBADMSG, "exceeds the largest file size"},
	{"{'descr': '|u1', 'fortran_order': False, "
	 "'shape': (9223372036854775807,)}",
	 -EBADMSG, "exceeds the largest file size"},
	{"{'descr': '<f4', 'fortran_order': False, "
	 "'shape': (1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
	 "1,1,1,1,1)}",
	 -ENOTSUP, "'shape' has 33 dimensions, more than the limit of 32"},
	/* a syntax error wins over an unsupported dtype */
	{"{'descr': '>f4', 'fortran_order': False, 'shape': (5)}", -EBADMSG,
	 "'shape': expected ','"},
};

static void test_parse_rejects(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_dicts) / sizeof(bad_dicts[0]); i++) {
		mfs_npy_info info;
		for (unsigned major = 1; major <= 3; major++) {
			const char *msg = bad_dicts[i].msg;
			char shifted[256];
			const char *at = strstr(msg, "at byte ");

			/* Offsets in messages count from the file start, so
			 * they move by 2 with the longer v2/v3 preamble. */
			if (major > 1 && at) {
				unsigned long off = strtoul(at + 8, NULL, 10);
				snprintf(shifted, sizeof(shifted), "%.*sat byte %lu",
					 (int)(at - msg), msg,
					 off + PREAMBLE_V2 - PREAMBLE_V1);
				msg = shifted;
			}
			assert_fails(parse_dict(major, bad_dicts[i].dict, &info),
				     bad_dicts[i].err, msg);
			assert_non_null(strstr(mfs_last_error(), "t.npy"));
		}
	}
}

/* Brackets nested deeper than the parser's bound. */
static void test_parse_deep_nesting(void **state)
{
	char dict[512];
	size_t n = 0;
	mfs_npy_info info;

	(void)state;
	n += (size_t)snprintf(dict, sizeof(dict), "{'descr': ");
	for (int i = 0; i < 70; i++)
		dict[n++] = '[';
	for (int i = 0; i < 70; i++)
		dict[n++] = ']';
	snprintf(dict + n, sizeof(dict) - n,
		 ", 'fortran_order': False, 'shape': ()}");
	assert_fails(parse_dict(1, dict, &info), -EBADMSG,
		     "brackets nested deeper than 64 at byte 84");
}

/* Magic, version, header length: the preamble. */
static void test_parse_preamble(void **state)
{
	static const char dict[] =
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
	mfs_npy_info info;
	size_t len, need;
	uint8_t *b;

	(void)state;
	b = make_npy(1, dict, 0, &len);
	b[1] = 'n';
	assert_fails(mfs_npy_parse(b, len, "t.npy", &info, NULL), -EBADMSG,
		     "t.npy: NPY magic: file does not start with \\x93NUMPY");
	/* A wrong first byte is refused with only one byte at hand. */
	assert_fails(mfs_npy_parse(b, 1, "t.npy", &info, NULL), -EAGAIN,
		     "needs 8 bytes, have 1");
	b[0] = 'P';
	assert_fails(mfs_npy_parse(b, 1, "t.npy", &info, NULL), -EBADMSG,
		     "NPY magic");
	free(b);

	b = make_npy(1, dict, 0, &len);
	b[6] = 4;
	assert_fails(mfs_npy_parse(b, len, "t.npy", &info, NULL), -EBADMSG,
		     "NPY version 4.0 is not supported (expected 1.0, 2.0 or "
		     "3.0)");
	b[6] = 0;
	assert_fails(mfs_npy_parse(b, len, "t.npy", &info, NULL), -EBADMSG,
		     "NPY version 0.0");
	b[6] = 1;
	b[7] = 1;
	assert_fails(mfs_npy_parse(b, len, "t.npy", &info, NULL), -EBADMSG,
		     "NPY version 1.1");
	free(b);

	/* A header length past the cap is refused before asking for it. */
	b = make_npy(2, dict, 0, &len);
	b[8] = 0xff;
	b[9] = 0xff;
	b[10] = 0x0f;
	b[11] = 0;
	need = 0;
	assert_fails(mfs_npy_parse(b, len, "t.npy", &info, &need), -EBADMSG,
		     "NPY header length 1048575 is more than the limit of "
		     "1048576 bytes");
	assert_int_equal(need, 0);
	/* Exactly at the cap is a matter of more bytes. */
	b[8] = 0xf4;
	assert_fails(mfs_npy_parse(b, len, "t.npy", &info, &need), -EAGAIN,
		     "needs 1048576 bytes");
	assert_int_equal(need, MFS_NPY_MAX_HEADER);
	b[8] = 0xff;
	b[11] = 0xff;
	assert_fails(mfs_npy_parse(b, len, "t.npy", &info, &need), -EBADMSG,
		     "NPY header length 4279238655");
	free(b);

	/* No buffer at all: ask for the version bytes. */
	assert_fails(mfs_npy_parse(NULL, 100, NULL, &info, &need), -EAGAIN,
		     "(npy): NPY header needs 8 bytes, have 0");
	assert_int_equal(need, 8);
}

/* Every prefix of a valid header: -EAGAIN asking for more, never a read
 * past the prefix (exact-size heap copies let ASan check that). */
static void check_prefixes(const uint8_t *file, size_t header_len)
{
	for (size_t n = 0; n < header_len; n++) {
		uint8_t *copy = malloc(n ? n : 1);
		size_t need = 0;
		int rc;

		assert_non_null(copy);
		memcpy(copy, file, n);
		rc = mfs_npy_parse(copy, n, "p.npy", NULL, &need);
		assert_int_equal(rc, -EAGAIN);
		assert_true(need > n && need <= header_len);
		assert_int_equal(mfs_npy_parse(copy, n, "p.npy", NULL, NULL),
				 -EAGAIN);
		free(copy);
	}
}

static void test_parse_truncated(void **state)
{
	static const char *const files[] = {
		"float32_3x4_F_v1.npy", "complex128_2x3x5_C_v2.npy",
		"bool_scalar_C_v3.npy", "uint16_0x3_F_v1.npy",
	};
	char path[PATH_MAX];
	char h[MFS_NPY_HEADER_SIZE];
	uint64_t shape[2] = {3, 4};
	mfs_npy_info info;
	int len;

	(void)state;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		size_t len;
		uint8_t *whole;

		path_in(path, files[i]);
		whole = read_whole(path, &len);
		assert_int_equal(mfs_npy_parse(whole, len, files[i], &info, NULL),
				 0);
		check_prefixes(whole, (size_t)info.data_offset);
		free(whole);
	}
	assert_int_equal(mfs_npy_header(MFS_DTYPE_FLOAT64, 2, shape,
					MFS_ORDER_C, h, sizeof(h)),
			 MFS_NPY_HEADER_SIZE);
	check_prefixes((const uint8_t *)h, sizeof(h));
	/* The compact header of an empty array: every proper prefix needs
	 * more, the whole is complete. */
	shape[0] = 0;
	len = mfs_npy_header(MFS_DTYPE_FLOAT64, 2, shape, MFS_ORDER_F, h,
			     sizeof(h));
	assert_true(len > 0 && len < (int)MFS_NPY_HEADER_SIZE);
	check_prefixes((const uint8_t *)h, (size_t)len);
}

/* Corrupting any byte of a header to a range of values never crashes or
 * over-reads, and whatever parses is self-consistent. */
static void test_parse_mutations(void **state)
{
	static const uint8_t values[] = {0x00, 0xff, 0x80, ' ', '\'', '"', '(',
					 ')', '[', ']', '{', '}', ',', ':',
					 '0', '9', '-', 'x', '\\', '\n'};
	char path[PATH_MAX];
	uint8_t *whole;
	size_t len, hdr;
	mfs_npy_info info;
	unsigned parsed = 0;

	(void)state;
	path_in(path, "int16_2x3x5_F_v1.npy");
	whole = read_whole(path, &len);
	assert_int_equal(mfs_npy_parse(whole, len, "m.npy", &info, NULL), 0);
	hdr = (size_t)info.data_offset;
	for (size_t pos = 0; pos < hdr; pos++) {
		for (size_t v = 0; v < sizeof(values); v++) {
			uint8_t *copy = malloc(hdr);
			size_t need = 0;
			int rc;

			assert_non_null(copy);
			memcpy(copy, whole, hdr);
			copy[pos] = values[v];
			rc = mfs_npy_parse(copy, hdr, "m.npy", &info, &need);
			assert_true(rc == 0 || rc == -EAGAIN || rc == -EBADMSG ||
				    rc == -ENOTSUP);
			assert_true(mfs_last_error()[0] != '\0' || rc == 0);
			if (rc == -EAGAIN)
				assert_true(need > hdr);
			if (rc == 0) {
				uint64_t bytes = mfs_dtype_size(info.dtype);
				for (uint32_t d = 0; d < info.ndim; d++)
					bytes *= info.shape[d];
				assert_true(info.data_length == bytes);
				assert_true(info.data_offset <= hdr);
				parsed++;
			}
			free(copy);
		}
	}
	/* Spaces in the padding and digit changes keep it valid. */
	assert_true(parsed > 0);
	free(whole);
}

/* ------------------------------------------------------------------ */
/* mfs_npy_read_fd                                                     */
/* ------------------------------------------------------------------ */

static void write_npy(const char *name, unsigned major, const char *dict,
		      size_t data_len, long adjust, char *path)
{
	size_t len;
	uint8_t *b = make_npy(major, dict, data_len, &len);

	path_in(path, name);
	write_file(path, b, (size_t)((long)len + adjust));
	free(b);
}

static void test_read_fd_sizes(void **state)
{
	static const char dict[] =
		"{'descr': '<i4', 'fortran_order': False, 'shape': (3, 5), }";
	char path[PATH_MAX];
	mfs_npy_info info;

	(void)state;
	write_npy("exact.npy", 1, dict, 60, 0, path);
	assert_int_equal(read_fd_path(path, &info), 0);
	assert_int_equal(info.data_length, 60);

	write_npy("short.npy", 1, dict, 60, -1, path);
	assert_fails(read_fd_path(path, &info), -EBADMSG,
		     "truncated: file is 129 bytes, the array needs 130 "
		     "(data_offset 70 + data_length 60)");

	write_npy("long.npy", 1, dict, 61, 0, path);
	assert_fails(read_fd_path(path, &info), -EBADMSG,
		     "1 trailing bytes after the array data (file is 131 "
		     "bytes, data ends at 130)");

	write_npy("nodata.npy", 1, dict, 0, 0, path);
	assert_fails(read_fd_path(path, &info), -EBADMSG,
		     "truncated: file is 70 bytes, the array needs 130");

	write_npy("halfheader.npy", 1, dict, 0, -20, path);
	assert_fails(read_fd_path(path, &info), -EBADMSG,
		     "truncated: file is 50 bytes, its NPY header needs 70");

	write_npy("fivebytes.npy", 1, dict, 0, -65, path);
	assert_fails(read_fd_path(path, &info), -EBADMSG,
		     "truncated: file is 5 bytes, its NPY header needs 8");

	write_npy("empty.npy", 1, dict, 0, -70, path);
	assert_fails(read_fd_path(path, &info), -EBADMSG,
		     "truncated: file is 0 bytes");

	write_npy("v2cut.npy", 2, dict, 0, -62, path);
	assert_fails(read_fd_path(path, &info), -EBADMSG,
		     "truncated: file is 10 bytes, its NPY header needs 12");

	write_npy("nokeys.npy", 1, "{}", 0, 0, path);
	assert_fails(read_fd_path(path, &info), -EBADMSG, "missing key");
}

/* A header longer than the first read makes the reader grow its buffer. */
static void test_read_fd_large_header(void **state)
{
	static const size_t pads[] = {MFS_NPY_HEADER_SIZE - PREAMBLE_V2 - 1,
				      MFS_NPY_HEADER_SIZE, 3 * MFS_NPY_HEADER_SIZE,
				      MFS_NPY_MAX_HEADER - 200};
	char path[PATH_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(pads) / sizeof(pads[0]); i++) {
		static const char head[] =
			"{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3)}";
		char *dict = malloc(pads[i] + 1);
		mfs_npy_info info;
		size_t dlen = pads[i] - 1; /* make_npy adds the '\n' */

		assert_non_null(dict);
		memset(dict, ' ', dlen);
		memcpy(dict, head, strlen(head));
		dict[dlen] = '\0';
		write_npy("big.npy", 2, dict, 48, 0, path);
		assert_int_equal(read_fd_path(path, &info), 0);
		assert_true(info.data_offset == PREAMBLE_V2 + pads[i]);
		assert_int_equal(info.order, MFS_ORDER_F);
		assert_int_equal(info.data_length, 48);
		free(dict);
	}
}

static void test_read_fd_errors(void **state)
{
	static const char dict[] =
		"{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }";
	char path[PATH_MAX];
	mfs_npy_info info;
	int pipefd[2], fd;

	(void)state;
	assert_int_equal(pipe(pipefd), 0);
	assert_fails(mfs_npy_read_fd(pipefd[0], "pipe", &info), -EINVAL,
		     "pipe: not a regular file");
	close(pipefd[0]);
	close(pipefd[1]);

	assert_fails(mfs_npy_read_fd(-1, NULL, &info), -EBADF, "(npy): fstat");

	write_npy("wronly.npy", 1, dict, 12, 0, path);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_fails(mfs_npy_read_fd(fd, "w.npy", &info), -EBADF,
		     "w.npy: reading the NPY header");
	close(fd);

	/* Over the cap: refused from the preamble, nothing more is read. */
	write_npy("huge.npy", 2, dict, 12, 0, path);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "\x00\x00\x10\x00", 4, 8), 4);
	assert_fails(mfs_npy_read_fd(fd, "huge.npy", &info), -EBADMSG,
		     "NPY header length 1048576 is more than the limit");
	close(fd);

	/* Success clears an earlier message. */
	write_npy("good.npy", 1, dict, 12, 0, path);
	assert_int_equal(read_fd_path(path, NULL), 0);
	assert_string_equal(mfs_last_error(), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_layout),
		cmocka_unit_test(test_header_matches_numpy),
		cmocka_unit_test(test_header_np_load),
		cmocka_unit_test(test_header_errors),
		cmocka_unit_test(test_parse_numpy_files),
		cmocka_unit_test(test_parse_numpy_rejects),
		cmocka_unit_test(test_parse_variants),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_parse_deep_nesting),
		cmocka_unit_test(test_parse_preamble),
		cmocka_unit_test(test_parse_truncated),
		cmocka_unit_test(test_parse_mutations),
		cmocka_unit_test(test_read_fd_sizes),
		cmocka_unit_test(test_read_fd_large_header),
		cmocka_unit_test(test_read_fd_errors),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
