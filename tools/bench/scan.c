/*
 * scan.c - "mfsbench scan": time a scan through mmap of every .npy file
 * of a directory, and "mfsbench meminfo".
 *
 * A scan maps each file whole (MAP_SHARED, read-only, as np.load with
 * mmap_mode="r" does) and reads one 64-bit word of every page, so every
 * page is faulted in exactly once and the cost measured is the file
 * system's (FUSE round trips, decoding, readahead), not memory
 * bandwidth.  Every system is scanned by this same code.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

int bench_map_file(const char *path, struct bench_map *m)
{
	struct stat st;
	void *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		bench_err("%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	m->len = (size_t)st.st_size;
	p = m->len ? mmap(NULL, m->len, PROT_READ, MAP_SHARED, fd, 0) : NULL;
	close(fd);
	if (p == MAP_FAILED) {
		bench_err("mmap %s: %s", path, strerror(errno));
		return -1;
	}
	m->base = p;
	return 0;
}

void bench_unmap(struct bench_map *m)
{
	if (m->base)
		munmap((void *)m->base, m->len);
	m->base = NULL;
}

uint64_t bench_touch_pages(const struct bench_map *m)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uint64_t sum = 0, w;

	for (size_t off = 0; off + sizeof(w) <= m->len; off += page) {
		/* memcpy: the file may not be 8-byte aligned at the end. */
		memcpy(&w, m->base + off, sizeof(w));
		sum += w;
	}
	return sum;
}

/* Maps, touches and unmaps each of @paths.  Bytes in *@bytes, the sum
 * of the words read in *@sum.  0 or -1 (message printed). */
static int bench_scan_files(char **paths, size_t n, uint64_t *bytes,
			    uint64_t *sum)
{
	*bytes = 0;
	for (size_t i = 0; i < n; i++) {
		struct bench_map m;

		if (bench_map_file(paths[i], &m) < 0)
			return -1;
		*sum += bench_touch_pages(&m);
		*bytes += m.len;
		bench_unmap(&m);
	}
	return 0;
}

/* Options of "scan". */
struct bench_scan_opts {
	struct bench_rec rec;
	const char *dir;
	bool warm;          /* one unrecorded pass first */
	bool cache;         /* record the page cache growth */
	uint64_t cached_before;
};

static int bench_scan_usage(void)
{
	fprintf(stderr,
		"usage: mfsbench scan --samples F --measure M --system S "
		"[--warm] [--cached-before BYTES] DIR\n");
	return BENCH_EXIT_USAGE;
}

static int bench_scan_parse(int argc, char **argv, struct bench_scan_opts *o)
{
	bool bad = false;

	for (int i = 1; i < argc && !bad; i++) {
		if (bench_rec_option(&o->rec, argc, argv, &i, &bad))
			continue;
		if (strcmp(argv[i], "--warm") == 0) {
			o->warm = true;
		} else if (strcmp(argv[i], "--cached-before") == 0 &&
			   i + 1 < argc) {
			o->cache = true;
			bad = bench_parse_u64(argv[i], argv[i + 1],
					      &o->cached_before) < 0;
			i++;
		} else if (argv[i][0] != '-' && !o->dir) {
			o->dir = argv[i];
		} else {
			bad = true;
		}
	}
	return bad || !o->dir || !bench_rec_complete(&o->rec) ? -1 : 0;
}

/* Records the page cache held now beyond @o->cached_before, as MiB and
 * as a multiple of @bytes (the size of what was scanned). */
static int bench_record_cache(const struct bench_scan_opts *o, uint64_t bytes)
{
	struct bench_meminfo mi;
	double grown;

	if (bench_read_meminfo(&mi) < 0)
		return -1;
	grown = (double)mi.cached - (double)o->cached_before;
	if (bench_record(&o->rec, "cache_mib", grown / BENCH_MIB, "MiB") < 0 ||
	    bench_record(&o->rec, "cache_x", grown / (double)bytes, "x") < 0)
		return -1;
	return 0;
}

int bench_cmd_scan(int argc, char **argv)
{
	struct bench_scan_opts o = {0};
	uint64_t bytes, sum = 0, t0, ns;
	char **paths;
	ssize_t n;
	int rc = BENCH_EXIT_FAIL;

	if (bench_scan_parse(argc, argv, &o) < 0)
		return bench_scan_usage();
	n = bench_list_npy(o.dir, &paths);
	if (n < 0)
		return BENCH_EXIT_FAIL;
	if (o.warm && bench_scan_files(paths, (size_t)n, &bytes, &sum) < 0)
		goto out;
	t0 = bench_now_ns();
	if (bench_scan_files(paths, (size_t)n, &bytes, &sum) < 0)
		goto out;
	ns = bench_now_ns() - t0;
	if (bench_record(&o.rec, "scan_ms", (double)ns / BENCH_NS_PER_MS,
			 "ms") < 0 ||
	    bench_record(&o.rec, "gibps",
			 (double)bytes / BENCH_GIB /
				 ((double)ns / BENCH_NS_PER_SEC),
			 "GiB/s") < 0)
		goto out;
	if (o.cache && bench_record_cache(&o, bytes) < 0)
		goto out;
	/* The sum keeps the reads alive; print it where it costs nothing. */
	if (sum == UINT64_MAX)
		fputs("(unlikely checksum)\n", stderr);
	rc = BENCH_EXIT_OK;
out:
	bench_free_paths(paths, (size_t)n);
	return rc;
}

/*
 * "meminfo [--uncount FILE...]": prints "CACHED MAPPED" (bytes) for the
 * script to pass back later as a baseline.  --uncount subtracts from
 * CACHED the cached pages of FILEs (inputs about to be read), so the
 * baseline is the one the cache would have without them, and no
 * drop_caches (and re-reading from disk) is needed to take it.
 */
int bench_cmd_meminfo(int argc, char **argv)
{
	struct bench_meminfo mi;
	uint64_t resident;
	int first = 1;

	if (argc > 1 && strcmp(argv[1], "--uncount") == 0)
		first = 2;
	else if (argc != 1) {
		fprintf(stderr,
			"usage: mfsbench meminfo [--uncount FILE...]\n");
		return BENCH_EXIT_USAGE;
	}
	if (bench_read_meminfo(&mi) < 0)
		return BENCH_EXIT_FAIL;
	for (int i = first; i < argc; i++) {
		if (bench_resident_bytes(argv[i], &resident) < 0)
			return BENCH_EXIT_FAIL;
		mi.cached -= resident < mi.cached ? resident : mi.cached;
	}
	printf("%llu %llu\n", (unsigned long long)mi.cached,
	       (unsigned long long)mi.mapped);
	return BENCH_EXIT_OK;
}
