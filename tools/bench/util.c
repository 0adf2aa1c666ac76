/*
 * util.c - clocks, the sample file, option and /proc helpers of mfsbench.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "modelfs.h"

#define BENCH_PROC_PATH_MAX 64
#define BENCH_LINE_MAX 256
#define BENCH_DECIMAL 10

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * BENCH_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

void bench_err(const char *fmt, ...)
{
	va_list ap;

	fputs("mfsbench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int bench_record(const struct bench_rec *r, const char *metric, double value,
		 const char *unit)
{
	char line[BENCH_LINE_MAX];
	int len, fd;
	bool ok;

	len = snprintf(line, sizeof(line), "%s\t%s\t%s\t%.6g\t%s\n",
		       r->measure, r->system, metric, value, unit);
	if (len < 0 || (size_t)len >= sizeof(line)) {
		bench_err("sample line too long (%s %s %s)", r->measure,
			  r->system, metric);
		return -1;
	}
	/* O_APPEND: one write per line, so concurrent writers never
	 * interleave within a line. */
	fd = open(r->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		bench_err("%s: %s", r->path, strerror(errno));
		return -1;
	}
	ok = write(fd, line, (size_t)len) == len;
	if (!ok)
		bench_err("%s: write failed", r->path);
	close(fd);
	/* Also on stderr, so a run shows its progress (stdout carries
	 * values the script reads, such as a daemon's pid). */
	fprintf(stderr, "  %-8s %-18s %-14s %12.4g %s\n", r->measure,
		r->system, metric, value, unit);
	return ok ? 0 : -1;
}

bool bench_rec_option(struct bench_rec *r, int argc, char **argv, int *i,
		      bool *bad)
{
	const char **field;

	if (strcmp(argv[*i], "--samples") == 0)
		field = &r->path;
	else if (strcmp(argv[*i], "--measure") == 0)
		field = &r->measure;
	else if (strcmp(argv[*i], "--system") == 0)
		field = &r->system;
	else
		return false;
	if (*i + 1 >= argc) {
		bench_err("%s needs a value", argv[*i]);
		*bad = true;
		return true;
	}
	*field = argv[++*i];
	return true;
}

bool bench_rec_complete(const struct bench_rec *r)
{
	if (r->path && r->measure && r->system)
		return true;
	bench_err("--samples, --measure and --system are needed");
	return false;
}

int bench_parse_u64(const char *what, const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	if (!s || !*s || *s == '-')
		goto bad;
	*out = strtoull(s, &end, BENCH_DECIMAL);
	if (errno == 0 && *end == '\0')
		return 0;
bad:
	bench_err("%s: not a number: '%s'", what, s ? s : "");
	return -1;
}

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), bench_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Value in kB of the "/proc" line "@name:   N kB" in @line, if it is one. */
static bool bench_kb_field(const char *line, const char *name, uint64_t *kb)
{
	size_t n = strlen(name);
	unsigned long long v;

	if (strncmp(line, name, n) != 0 || line[n] != ':')
		return false;
	if (sscanf(line + n + 1, "%llu", &v) != 1)
		return false;
	*kb = v;
	return true;
}

int bench_read_meminfo(struct bench_meminfo *mi)
{
	char line[BENCH_LINE_MAX];
	uint64_t kb;
	int found = 0;
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f) {
		bench_err("/proc/meminfo: %s", strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		if (bench_kb_field(line, "Cached", &kb)) {
			mi->cached = kb * BENCH_KIB;
			found++;
		} else if (bench_kb_field(line, "Mapped", &kb)) {
			mi->mapped = kb * BENCH_KIB;
			found++;
		}
	}
	fclose(f);
	if (found == 2)
		return 0;
	bench_err("/proc/meminfo: Cached or Mapped missing");
	return -1;
}

int bench_resident_bytes(const char *path, uint64_t *bytes)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), npages;
	unsigned char *vec = NULL;
	struct stat st;
	void *p = MAP_FAILED;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;

	*bytes = 0;
	if (fd < 0 || fstat(fd, &st) < 0)
		goto out;
	if (st.st_size == 0) {
		rc = 0;
		goto out;
	}
	npages = ((size_t)st.st_size + page - 1) / page;
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	vec = malloc(npages);
	if (p == MAP_FAILED || !vec ||
	    mincore(p, (size_t)st.st_size, vec) < 0)
		goto out;
	for (size_t i = 0; i < npages; i++)
		*bytes += (vec[i] & 1) ? page : 0;
	rc = 0;
out:
	if (rc < 0)
		bench_err("%s: %s", path, strerror(errno));
	if (p != MAP_FAILED)
		munmap(p, (size_t)st.st_size);
	free(vec);
	if (fd >= 0)
		close(fd);
	return rc;
}

int bench_read_pss(pid_t pid, uint64_t *pss)
{
	char path[BENCH_PROC_PATH_MAX], line[BENCH_LINE_MAX];
	uint64_t kb;
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	f = fopen(path, "re");
	if (!f) {
		bench_err("%s: %s", path, strerror(errno));
		return -1;
	}
	while (!found && fgets(line, sizeof(line), f))
		found = bench_kb_field(line, "Pss", &kb);
	fclose(f);
	if (!found) {
		bench_err("%s: no Pss line", path);
		return -1;
	}
	*pss = kb * BENCH_KIB;
	return 0;
}

void bench_free_paths(char **paths, size_t n)
{
	for (size_t i = 0; paths && i < n; i++)
		free(paths[i]);
	free(paths);
}

ssize_t bench_list_npy(const char *dir, char ***out)
{
	char **names = NULL, **paths;
	size_t n = 0, count = 0;
	int rc = mfs_npy_dir_list(AT_FDCWD, dir, &names, &n);

	if (rc < 0 || n == 0) {
		bench_err("%s: %s", dir, rc < 0 ? strerror(-rc) :
						"no .npy files");
		mfs_npy_dir_free(names, n);
		return -1;
	}
	paths = calloc(n, sizeof(*paths));
	for (size_t i = 0; paths && i < n; i++)
		if (asprintf(&paths[count], "%s/%s", dir, names[i]) >= 0)
			count++;
	mfs_npy_dir_free(names, n);
	if (!paths || count != n) {
		bench_err("out of memory");
		bench_free_paths(paths, (size_t)count);
		return -1;
	}
	*out = paths;
	return count;
}
