/*
 * gen.c - the benchmark's data: "gen-model" (one large model as .npy
 * files), "gen-wide" (a container of many small arrays) and "gen-many"
 * (a store of many tiny containers).
 *
 * The large model is an item model of R rows: float32 embeddings
 * [R, 96] and an item-item similarity matrix in CSR form (int64 indptr,
 * int32 indices, float32 data, 79 neighbours a row), 1024 bytes a row,
 * so R = 1024 * MiB gives a model of exactly that many MiB (plus the
 * 8 bytes of the last indptr entry).  Values are quantized the way
 * shipped models often are (embeddings to 1/256 steps, similarities to
 * 1/4096), which gives LZ4 something to do; the report prints the
 * compression obtained.  A fixed seed makes every run write the same
 * bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "modelfs.h"

#define GEN_ROWS_PER_MIB 1024u
#define GEN_EMB_DIM 96u
#define GEN_NEIGHBOURS 79u
#define GEN_EMB_STEPS 256.0f  /* embedding quantum: 1/256 */
#define GEN_SIM_STEPS 4096u   /* similarity quantum: 1/4096 */
#define GEN_BYTE_MASK 0xffu
#define GEN_BYTE_BITS 8u
#define GEN_NORMALISH_TERMS 4u
#define GEN_SEED 0x6d6f64656c667321ull /* "modelfs!" */
#define GEN_BUF_BYTES (4u << 20)       /* write in 4 MiB pieces */
#define GEN_NPY_ALIGN 64u              /* NumPy pads headers to 64 */
#define GEN_NPY_MAGIC "\x93NUMPY\x01\x00"
#define GEN_NPY_MAGIC_LEN 8u
#define GEN_NPY_LENFIELD 2u
#define GEN_NPY_DICT_MAX 192u
#define GEN_PATH_MAX 4096
#define GEN_KEY_DIGITS "%05u"
#define GEN_WIDE_ELEMS 1024u /* 4 KiB per array of the wide model */
#define GEN_WIDE_NAME_MAX 16
#define GEN_TINY_ELEMS 4u

/* ------------------------------------------------------------------ */
/* Random numbers: splitmix64 (fast, fixed sequence per seed)           */
/* ------------------------------------------------------------------ */

static uint64_t gen_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A roughly normal integer around 0 (sum of four random bytes). */
static int gen_normalish(uint64_t *s)
{
	uint64_t r = gen_next(s);
	int sum = 0;

	for (unsigned i = 0; i < GEN_NORMALISH_TERMS; i++)
		sum += (int)((r >> (i * GEN_BYTE_BITS)) & GEN_BYTE_MASK);
	return sum - (int)(GEN_NORMALISH_TERMS * GEN_BYTE_MASK / 2);
}

/* ------------------------------------------------------------------ */
/* .npy writing                                                         */
/* ------------------------------------------------------------------ */

/* An .npy file being written with a buffer. */
struct gen_npy {
	FILE *f;
	const char *path;
};

/* Creates @path with an NPY 1.0 header for a C-order array of @descr
 * ("<f4", ...) and shape @shape (@ndim 1 or 2), padded as NumPy does.
 * 0 or -1 (message printed). */
static int gen_npy_open(struct gen_npy *n, const char *path, const char *descr,
			unsigned ndim, const uint64_t *shape)
{
	char dict[GEN_NPY_DICT_MAX];
	size_t len, total;
	uint16_t hlen;

	if (ndim == 1)
		snprintf(dict, sizeof(dict),
			 "{'descr': '%s', 'fortran_order': False, "
			 "'shape': (%llu,), }",
			 descr, (unsigned long long)shape[0]);
	else
		snprintf(dict, sizeof(dict),
			 "{'descr': '%s', 'fortran_order': False, "
			 "'shape': (%llu, %llu), }",
			 descr, (unsigned long long)shape[0],
			 (unsigned long long)shape[1]);
	len = strlen(dict);
	total = GEN_NPY_MAGIC_LEN + GEN_NPY_LENFIELD + len + 1;
	total = (total + GEN_NPY_ALIGN - 1) / GEN_NPY_ALIGN * GEN_NPY_ALIGN;
	hlen = (uint16_t)(total - GEN_NPY_MAGIC_LEN - GEN_NPY_LENFIELD);
	n->path = path;
	n->f = fopen(path, "we");
	if (!n->f) {
		bench_err("%s: %s", path, strerror(errno));
		return -1;
	}
	setvbuf(n->f, NULL, _IOFBF, GEN_BUF_BYTES);
	/* The header: magic, little-endian length, dict, spaces, '\n'. */
	fwrite(GEN_NPY_MAGIC, 1, GEN_NPY_MAGIC_LEN, n->f);
	fputc(hlen & GEN_BYTE_MASK, n->f);
	fputc(hlen >> GEN_BYTE_BITS, n->f);
	fputs(dict, n->f);
	for (size_t i = len + 1; i < hlen; i++)
		fputc(' ', n->f);
	fputc('\n', n->f);
	return 0;
}

/* Closes @n; 0 or -1 if anything written failed (message printed). */
static int gen_npy_close(struct gen_npy *n)
{
	bool failed = ferror(n->f) != 0;

	if (fclose(n->f) != 0 || failed) {
		bench_err("%s: write failed", n->path);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* gen-model                                                            */
/* ------------------------------------------------------------------ */

static int gen_embeddings(const char *dir, uint64_t rows, uint64_t *seed)
{
	char path[GEN_PATH_MAX];
	uint64_t shape[2] = {rows, GEN_EMB_DIM};
	struct gen_npy n;

	snprintf(path, sizeof(path), "%s/emb.npy", dir);
	if (gen_npy_open(&n, path, "<f4", 2, shape) < 0)
		return -1;
	for (uint64_t i = 0; i < rows * GEN_EMB_DIM; i++) {
		float v = (float)gen_normalish(seed) / GEN_EMB_STEPS;

		fwrite_unlocked(&v, sizeof(v), 1, n.f);
	}
	return gen_npy_close(&n);
}

static int gen_indptr(const char *dir, uint64_t rows)
{
	char path[GEN_PATH_MAX];
	uint64_t shape[1] = {rows + 1};
	struct gen_npy n;

	snprintf(path, sizeof(path), "%s/sim.indptr.npy", dir);
	if (gen_npy_open(&n, path, "<i8", 1, shape) < 0)
		return -1;
	for (uint64_t i = 0; i <= rows; i++) {
		int64_t v = (int64_t)(i * GEN_NEIGHBOURS);

		fwrite_unlocked(&v, sizeof(v), 1, n.f);
	}
	return gen_npy_close(&n);
}

/* Column indices: per row GEN_NEIGHBOURS distinct ascending columns
 * below @rows (random gaps of at most rows / GEN_NEIGHBOURS). */
static int gen_indices(const char *dir, uint64_t rows, uint64_t *seed)
{
	char path[GEN_PATH_MAX];
	uint64_t shape[1] = {rows * GEN_NEIGHBOURS};
	uint64_t gap = rows / GEN_NEIGHBOURS;
	struct gen_npy n;

	snprintf(path, sizeof(path), "%s/sim.indices.npy", dir);
	if (gen_npy_open(&n, path, "<i4", 1, shape) < 0)
		return -1;
	for (uint64_t r = 0; r < rows; r++) {
		int64_t col = -1;

		for (unsigned k = 0; k < GEN_NEIGHBOURS; k++) {
			int32_t v;

			col += 1 + (int64_t)(gen_next(seed) % gap);
			v = (int32_t)col;
			fwrite_unlocked(&v, sizeof(v), 1, n.f);
		}
	}
	return gen_npy_close(&n);
}

static int gen_similarities(const char *dir, uint64_t rows, uint64_t *seed)
{
	char path[GEN_PATH_MAX];
	uint64_t shape[1] = {rows * GEN_NEIGHBOURS};
	struct gen_npy n;

	snprintf(path, sizeof(path), "%s/sim.data.npy", dir);
	if (gen_npy_open(&n, path, "<f4", 1, shape) < 0)
		return -1;
	for (uint64_t i = 0; i < rows * GEN_NEIGHBOURS; i++) {
		float v = (float)(gen_next(seed) % GEN_SIM_STEPS + 1) /
			  (float)GEN_SIM_STEPS;

		fwrite_unlocked(&v, sizeof(v), 1, n.f);
	}
	return gen_npy_close(&n);
}

/* "gen-model --mib N DIR": writes the four .npy files of the model. */
int bench_cmd_gen_model(int argc, char **argv)
{
	uint64_t mib = 0, seed = GEN_SEED, rows;
	const char *dir = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--mib") == 0 && i + 1 < argc) {
			if (bench_parse_u64("--mib", argv[++i], &mib) < 0)
				return BENCH_EXIT_USAGE;
		} else if (argv[i][0] != '-' && !dir) {
			dir = argv[i];
		} else {
			dir = NULL;
			break;
		}
	}
	/* At least GEN_NEIGHBOURS columns, so every row has distinct ones. */
	if (!dir || mib == 0) {
		fprintf(stderr, "usage: mfsbench gen-model --mib N DIR\n");
		return BENCH_EXIT_USAGE;
	}
	rows = mib * GEN_ROWS_PER_MIB;
	if (gen_embeddings(dir, rows, &seed) < 0 || gen_indptr(dir, rows) < 0 ||
	    gen_indices(dir, rows, &seed) < 0 ||
	    gen_similarities(dir, rows, &seed) < 0)
		return BENCH_EXIT_FAIL;
	return BENCH_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* gen-wide, gen-many                                                   */
/* ------------------------------------------------------------------ */

/* A 1-D float32 array spec named @name of @elems elements. */
static mfs_array_spec gen_spec(const char *name, uint64_t elems)
{
	mfs_array_spec s = {
		.name = name,
		.dtype = MFS_DTYPE_FLOAT32,
		.ndim = 1,
		.order = MFS_ORDER_C,
		.codec = MFS_CODEC_NONE,
	};

	s.shape[0] = elems;
	return s;
}

/* Writes container @path of @narrays float32 arrays of @elems elements
 * named a000, a001, ...; with @npy_dir, also each as @npy_dir/NAME.npy.
 * 0 or -1 (message printed). */
static int gen_container(const char *path, unsigned narrays, uint64_t elems,
			 const char *npy_dir)
{
	float *data = calloc(elems ? elems : 1, sizeof(*data));
	char name[GEN_WIDE_NAME_MAX], npy[GEN_PATH_MAX];
	mfs_writer *w = NULL;
	int rc = -1;

	if (!data || mfs_writer_create(&w, path) < 0)
		goto out;
	for (uint64_t i = 0; i < elems; i++)
		data[i] = (float)i;
	for (unsigned a = 0; a < narrays; a++) {
		mfs_array_spec s;
		struct gen_npy n;

		snprintf(name, sizeof(name), "a%03u", a);
		s = gen_spec(name, elems);
		if (mfs_writer_add_array_buffer(w, &s, data,
						elems * sizeof(*data)) < 0)
			goto out;
		if (!npy_dir)
			continue;
		snprintf(npy, sizeof(npy), "%s/%s.npy", npy_dir, name);
		if (gen_npy_open(&n, npy, "<f4", 1, &elems) < 0)
			goto out;
		fwrite(data, sizeof(*data), elems, n.f);
		if (gen_npy_close(&n) < 0)
			goto out;
	}
	rc = mfs_writer_commit(w);
	w = NULL;
out:
	if (rc < 0 && mfs_last_error()[0])
		bench_err("%s: %s", path, mfs_last_error());
	mfs_writer_abort(w);
	free(data);
	return rc < 0 ? -1 : 0;
}

/* "gen-wide --arrays N [--npy-dir DIR] OUT.mfs": one model of N small
 * arrays (for the attach latency). */
int bench_cmd_gen_wide(int argc, char **argv)
{
	uint64_t narrays = 0;
	const char *out = NULL, *npy_dir = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--arrays") == 0 && i + 1 < argc) {
			if (bench_parse_u64("--arrays", argv[++i], &narrays) <
			    0)
				return BENCH_EXIT_USAGE;
		} else if (strcmp(argv[i], "--npy-dir") == 0 && i + 1 < argc) {
			npy_dir = argv[++i];
		} else if (argv[i][0] != '-' && !out) {
			out = argv[i];
		} else {
			out = NULL;
			break;
		}
	}
	if (!out || narrays == 0 || narrays > MFS_MAX_ARRAYS) {
		fprintf(stderr, "usage: mfsbench gen-wide --arrays N "
				"[--npy-dir DIR] OUT.mfs\n");
		return BENCH_EXIT_USAGE;
	}
	return gen_container(out, (unsigned)narrays, GEN_WIDE_ELEMS, npy_dir) <
			       0
		       ? BENCH_EXIT_FAIL
		       : BENCH_EXIT_OK;
}

/* Reads all of @path into a malloc'd *@buf.  0 or -1. */
static int gen_slurp(const char *path, char **buf, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = -1;

	if (fd >= 0 && fstat(fd, &st) == 0) {
		*len = (size_t)st.st_size;
		*buf = malloc(*len ? *len : 1);
		if (*buf)
			n = read(fd, *buf, *len);
	}
	if (fd >= 0)
		close(fd);
	if (n < 0 || (size_t)n != *len) {
		bench_err("%s: cannot read", path);
		return -1;
	}
	return 0;
}

/* Writes @count copies of @buf as @dir/mNNNNN.mfs (no fsync: the files
 * are read back from the page cache).  0 or -1. */
static int gen_copies(const char *dir, unsigned count, const char *buf,
		      size_t len)
{
	char path[GEN_PATH_MAX];

	for (unsigned i = 0; i < count; i++) {
		int fd;
		bool ok;

		snprintf(path, sizeof(path), "%s/m" GEN_KEY_DIGITS MFS_CONTAINER_SUFFIX, dir,
			 i);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			  0644);
		ok = fd >= 0 && write(fd, buf, len) == (ssize_t)len;
		if (fd >= 0)
			close(fd);
		if (!ok) {
			bench_err("%s: %s", path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* "gen-many --count N DIR": a store of N tiny models m00000 ... */
int bench_cmd_gen_many(int argc, char **argv)
{
	char tmpl[GEN_PATH_MAX], *buf = NULL;
	uint64_t count = 0;
	const char *dir = NULL;
	size_t len;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
			if (bench_parse_u64("--count", argv[++i], &count) < 0)
				return BENCH_EXIT_USAGE;
		} else if (argv[i][0] != '-' && !dir) {
			dir = argv[i];
		} else {
			dir = NULL;
			break;
		}
	}
	if (!dir || count == 0 || count > UINT32_MAX) {
		fprintf(stderr, "usage: mfsbench gen-many --count N DIR\n");
		return BENCH_EXIT_USAGE;
	}
	/* A hidden name: the daemon ignores it if it were left behind. */
	snprintf(tmpl, sizeof(tmpl), "%s/.template.mfs", dir);
	rc = gen_container(tmpl, 1, GEN_TINY_ELEMS, NULL) == 0 &&
			     gen_slurp(tmpl, &buf, &len) == 0 &&
			     gen_copies(dir, (unsigned)count, buf, len) == 0
		     ? BENCH_EXIT_OK
		     : BENCH_EXIT_FAIL;
	unlink(tmpl);
	free(buf);
	return rc;
}
