/*
 * workers.c - "mfsbench workers": N processes attach one model (every
 * .npy file of a directory, mapped) and scan all of it; time to first
 * use, wall time and the memory they hold together.
 *
 * Protocol (tools/bench/workers.py follows the same for the Python
 * mechanisms, so the numbers compare):
 *   - t0 is taken in the parent just before the first fork;
 *   - each worker takes t_attach when it starts, maps the first array
 *     and reads its first page ("first use"), then maps the others and
 *     touches every page of every array, and reports (first use time,
 *     CLOCK_MONOTONIC at first use and when done) through a pipe;
 *   - first_use_ms = median over workers of attach -> first use;
 *     ready_ms = median of t0 -> first use (process start and, for the
 *     shared-memory store, the put included);
 *   - the parent waits for all reports (wall time = last done - t0),
 *     then, while every worker still holds its mappings, sums the Pss of
 *     the workers and of the serving process (the daemon) and reads
 *     /proc/meminfo, then lets the workers go.
 * Memory held = sum of Pss + growth of the page cache that nobody maps
 * (Cached - Mapped, against the value given by --before, read before
 * the inputs were cached).  Mapped page cache is already in the Pss, so
 * counting only the unmapped part avoids counting it twice.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define BENCH_MAX_WORKERS 64u

/* What a worker reports through the pipe. */
struct bench_report {
	uint64_t first_use_ns; /* attach start to first page read */
	uint64_t used_at_ns;   /* CLOCK_MONOTONIC at first use */
	uint64_t done_ns;      /* CLOCK_MONOTONIC when its scan ended */
	int ok;
};

struct bench_workers_opts {
	struct bench_rec rec;
	const char *dir;
	uint64_t n;
	uint64_t server_pid; /* 0: none */
	struct bench_meminfo before;
	bool have_before;
	uint64_t model_bytes;   /* raw model size, for total_x */
	bool model_bytes_given; /* else: the files' total size */
};

/* The worker: attach, first use, full scan, report, hold until the
 * parent closes @release_fd.  Never returns. */
static void bench_worker(char **paths, size_t n, int report_fd,
			 int release_fd)
{
	struct bench_report r = {.ok = 1};
	struct bench_map *maps = calloc(n, sizeof(*maps));
	uint64_t t_attach = bench_now_ns(), sum = 0;
	volatile uint64_t sink;
	char c;

	if (!maps || bench_map_file(paths[0], &maps[0]) < 0)
		_exit(BENCH_EXIT_FAIL);
	sink = maps[0].len ? maps[0].base[0] : 0;
	r.used_at_ns = bench_now_ns();
	r.first_use_ns = r.used_at_ns - t_attach;
	for (size_t i = 1; i < n && r.ok; i++)
		r.ok = bench_map_file(paths[i], &maps[i]) == 0;
	for (size_t i = 0; i < n && r.ok; i++)
		sum += bench_touch_pages(&maps[i]);
	sink = sum;
	(void)sink;
	r.done_ns = bench_now_ns();
	if (write(report_fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(BENCH_EXIT_FAIL);
	/* Hold the model until the parent has measured: EOF releases. */
	while (read(release_fd, &c, 1) > 0)
		;
	_exit(r.ok ? BENCH_EXIT_OK : BENCH_EXIT_FAIL);
}

/* Reads one report of each of @n workers into @r.  0 or -1. */
static int bench_collect(int fd, struct bench_report *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		ssize_t got = read(fd, &r[i], sizeof(r[i]));

		if (got != (ssize_t)sizeof(r[i]) || !r[i].ok) {
			bench_err("worker %zu failed", i);
			return -1;
		}
	}
	return 0;
}

/* Sums the Pss of @pids (and of the server if any).  0 or -1. */
static int bench_sum_pss(const struct bench_workers_opts *o,
			 const pid_t *pids, size_t n, uint64_t *total)
{
	uint64_t pss;

	*total = 0;
	for (size_t i = 0; i < n; i++) {
		if (bench_read_pss(pids[i], &pss) < 0)
			return -1;
		*total += pss;
	}
	if (o->server_pid) {
		if (bench_read_pss((pid_t)o->server_pid, &pss) < 0)
			return -1;
		*total += pss;
	}
	return 0;
}

/* Records the metrics of one run. */
static int bench_workers_record(const struct bench_workers_opts *o,
				struct bench_report *r, size_t n, uint64_t t0,
				uint64_t pss, const struct bench_meminfo *now)
{
	double first[BENCH_MAX_WORKERS], ready[BENCH_MAX_WORKERS];
	double unmapped, total;
	uint64_t last = t0;

	for (size_t i = 0; i < n; i++) {
		first[i] = (double)r[i].first_use_ns / BENCH_NS_PER_MS;
		ready[i] = (double)(r[i].used_at_ns - t0) / BENCH_NS_PER_MS;
		if (r[i].done_ns > last)
			last = r[i].done_ns;
	}
	unmapped = ((double)now->cached - (double)now->mapped) -
		   ((double)o->before.cached - (double)o->before.mapped);
	total = (double)pss + unmapped;
	if (bench_record(&o->rec, "first_use_ms", bench_median(first, n),
			 "ms") < 0 ||
	    bench_record(&o->rec, "ready_ms", bench_median(ready, n), "ms") <
		    0 ||
	    bench_record(&o->rec, "wall_ms",
			 (double)(last - t0) / BENCH_NS_PER_MS, "ms") < 0 ||
	    bench_record(&o->rec, "pss_mib", (double)pss / BENCH_MIB, "MiB") <
		    0 ||
	    bench_record(&o->rec, "cache_mib", unmapped / BENCH_MIB, "MiB") <
		    0 ||
	    bench_record(&o->rec, "total_mib", total / BENCH_MIB, "MiB") < 0 ||
	    bench_record(&o->rec, "total_x", total / (double)o->model_bytes,
			 "x") < 0)
		return -1;
	return 0;
}

/* Forks the workers, measures, releases them.  0 or -1. */
static int bench_run_workers(const struct bench_workers_opts *o, char **paths,
			     size_t nfiles)
{
	int rep[2], rel[2], rc = -1;
	pid_t pids[BENCH_MAX_WORKERS];
	struct bench_report r[BENCH_MAX_WORKERS];
	struct bench_meminfo now;
	size_t started = 0;
	uint64_t t0, pss;

	if (pipe2(rep, O_CLOEXEC) < 0 || pipe2(rel, O_CLOEXEC) < 0) {
		bench_err("pipe: %s", strerror(errno));
		return -1;
	}
	t0 = bench_now_ns();
	for (; started < o->n; started++) {
		pids[started] = fork();
		if (pids[started] < 0)
			break;
		if (pids[started] == 0) {
			close(rep[0]);
			close(rel[1]);
			bench_worker(paths, nfiles, rep[1], rel[0]);
		}
	}
	close(rep[1]);
	close(rel[0]);
	if (started == o->n && bench_collect(rep[0], r, started) == 0 &&
	    bench_sum_pss(o, pids, started, &pss) == 0 &&
	    bench_read_meminfo(&now) == 0)
		rc = bench_workers_record(o, r, started, t0, pss, &now);
	close(rel[1]); /* releases the workers */
	close(rep[0]);
	for (size_t i = 0; i < started; i++) {
		int status;

		if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			rc = -1;
	}
	return rc;
}

static int bench_workers_usage(void)
{
	fprintf(stderr,
		"usage: mfsbench workers --samples F --measure M --system S "
		"-n N --before 'CACHED MAPPED' [--server-pid PID] "
		"[--model-bytes B] DIR\n");
	return BENCH_EXIT_USAGE;
}

static int bench_workers_parse(int argc, char **argv,
			       struct bench_workers_opts *o)
{
	bool bad = false;

	for (int i = 1; i < argc && !bad; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		unsigned long long c, m;

		if (bench_rec_option(&o->rec, argc, argv, &i, &bad))
			continue;
		if (strcmp(a, "-n") == 0 && v)
			bad = bench_parse_u64(a, argv[++i], &o->n) < 0;
		else if (strcmp(a, "--server-pid") == 0 && v)
			bad = bench_parse_u64(a, argv[++i], &o->server_pid) < 0;
		else if (strcmp(a, "--model-bytes") == 0 && v) {
			bad = bench_parse_u64(a, argv[++i], &o->model_bytes) <
				      0 ||
			      o->model_bytes == 0;
			o->model_bytes_given = true;
		}
		else if (strcmp(a, "--before") == 0 && v) {
			bad = sscanf(argv[++i], "%llu %llu", &c, &m) != 2;
			o->before.cached = c;
			o->before.mapped = m;
			o->have_before = true;
		} else if (a[0] != '-' && !o->dir)
			o->dir = a;
		else
			bad = true;
	}
	if (o->n == 0 || o->n > BENCH_MAX_WORKERS || !o->have_before)
		bad = true;
	return bad || !o->dir || !bench_rec_complete(&o->rec) ? -1 : 0;
}

int bench_cmd_workers(int argc, char **argv)
{
	struct bench_workers_opts o = {0};
	struct stat st;
	char **paths;
	ssize_t n;
	int rc = BENCH_EXIT_FAIL;

	if (bench_workers_parse(argc, argv, &o) < 0)
		return bench_workers_usage();
	n = bench_list_npy(o.dir, &paths);
	if (n < 0)
		return BENCH_EXIT_FAIL;
	/* The model size defaults to the files' (headers included). */
	for (ssize_t i = 0; !o.model_bytes_given && i < n; i++) {
		if (stat(paths[i], &st) < 0) {
			bench_err("%s: %s", paths[i], strerror(errno));
			goto out;
		}
		o.model_bytes += (uint64_t)st.st_size;
	}
	if (bench_run_workers(&o, paths, (size_t)n) == 0)
		rc = BENCH_EXIT_OK;
out:
	bench_free_paths(paths, (size_t)n);
	return rc;
}
