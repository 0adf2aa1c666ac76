/*
 * attach.c - "mfsbench attach": latency of opening and mapping every
 * array of a model (with --open-only: of one open + close, averaged over
 * the files); "mfsbench ls": wall time of the real ls(1) on a directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "modelfs.h"

#define BENCH_ATTACH_DEFAULT_ITERS 200u
/* Iterations run before timing, so every lookup and attribute is in
 * the kernel's caches ("warm" attach). */
#define BENCH_ATTACH_WARMUP 3u

extern char **environ;

/* Options of "attach". */
struct bench_attach_opts {
	struct bench_rec rec;
	const char *dir;    /* POSIX mode: the model's .npy files */
	const char *client; /* libmodelfs mode: a client spec ... */
	const char *key;    /* ... and the model's key */
	uint64_t iters;
	bool open_only;     /* POSIX mode: open + close, no mapping */
};

/* One attach through POSIX calls: open, fstat, mmap and close every file
 * of @paths into @maps.  Returns its time in ns, or 0 on failure. */
static uint64_t bench_attach_posix(char **paths, size_t n,
				   struct bench_map *maps)
{
	uint64_t t0 = bench_now_ns(), ns;

	for (size_t i = 0; i < n; i++) {
		if (bench_map_file(paths[i], &maps[i]) < 0)
			return 0;
	}
	ns = bench_now_ns() - t0;
	for (size_t i = 0; i < n; i++)
		bench_unmap(&maps[i]);
	return ns ? ns : 1;
}

/* One attach through libmodelfs: mfs_get_model maps every array.
 * Returns its time in ns, or 0 on failure. */
static uint64_t bench_attach_client(mfs_client *c, const char *key)
{
	uint64_t t0 = bench_now_ns(), ns;
	mfs_model *m;
	int rc = mfs_get_model(c, key, &m);

	ns = bench_now_ns() - t0;
	if (rc < 0) {
		bench_err("mfs_get_model %s: %s", key, mfs_last_error());
		return 0;
	}
	mfs_model_release(m);
	return ns ? ns : 1;
}

/* One pass of open + close over @paths.  Returns its time in ns, or 0 on
 * failure. */
static uint64_t bench_open_close(char **paths, size_t n)
{
	uint64_t t0 = bench_now_ns(), ns;

	for (size_t i = 0; i < n; i++) {
		int fd = open(paths[i], O_RDONLY | O_CLOEXEC);

		if (fd < 0) {
			bench_err("open %s: %s", paths[i], strerror(errno));
			return 0;
		}
		close(fd);
	}
	ns = bench_now_ns() - t0;
	return ns ? ns : 1;
}

/* Runs the warm-up and @o->iters timed attaches; their times (µs) go
 * to @us, per file with --open-only.  0 or -1. */
static int bench_attach_loop(const struct bench_attach_opts *o, double *us)
{
	char **paths = NULL;
	struct bench_map *maps = NULL;
	mfs_client *c = NULL;
	ssize_t n = 0;
	int rc = -1;

	if (o->client && mfs_client_open(&c, o->client) < 0) {
		bench_err("client %s: %s", o->client, mfs_last_error());
		return -1;
	}
	if (!o->client) {
		n = bench_list_npy(o->dir, &paths);
		maps = n > 0 ? calloc((size_t)n, sizeof(*maps)) : NULL;
		if (!maps)
			goto out;
	}
	for (uint64_t i = 0; i < BENCH_ATTACH_WARMUP + o->iters; i++) {
		uint64_t ns = c ? bench_attach_client(c, o->key)
			      : o->open_only
				      ? bench_open_close(paths, (size_t)n)
				      : bench_attach_posix(paths, (size_t)n,
							   maps);
		double per = o->open_only ? (double)n : 1.0;

		if (ns == 0)
			goto out;
		if (i >= BENCH_ATTACH_WARMUP)
			us[i - BENCH_ATTACH_WARMUP] =
				(double)ns / BENCH_NS_PER_US / per;
	}
	rc = 0;
out:
	free(maps);
	if (n > 0)
		bench_free_paths(paths, (size_t)n);
	if (c)
		mfs_client_close(c);
	return rc;
}

static int bench_attach_usage(void)
{
	fprintf(stderr,
		"usage: mfsbench attach --samples F --measure M --system S "
		"[--iters N] (DIR [--open-only] | --client SPEC --key KEY)\n");
	return BENCH_EXIT_USAGE;
}

static int bench_attach_parse(int argc, char **argv,
			      struct bench_attach_opts *o)
{
	bool bad = false;

	o->iters = BENCH_ATTACH_DEFAULT_ITERS;
	for (int i = 1; i < argc && !bad; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (bench_rec_option(&o->rec, argc, argv, &i, &bad))
			continue;
		if (strcmp(a, "--iters") == 0 && v) {
			bad = bench_parse_u64(a, v, &o->iters) < 0 ||
			      o->iters == 0;
			i++;
		} else if (strcmp(a, "--client") == 0 && v) {
			o->client = v;
			i++;
		} else if (strcmp(a, "--key") == 0 && v) {
			o->key = v;
			i++;
		} else if (strcmp(a, "--open-only") == 0) {
			o->open_only = true;
		} else if (a[0] != '-' && !o->dir) {
			o->dir = a;
		} else {
			bad = true;
		}
	}
	if (!o->dir == !o->client || !o->client != !o->key ||
	    (o->open_only && o->client))
		bad = true;
	return bad || !bench_rec_complete(&o->rec) ? -1 : 0;
}

int bench_cmd_attach(int argc, char **argv)
{
	struct bench_attach_opts o = {0};
	double *us;
	int rc = BENCH_EXIT_FAIL;

	if (bench_attach_parse(argc, argv, &o) < 0)
		return bench_attach_usage();
	us = calloc(o.iters, sizeof(*us));
	if (!us) {
		bench_err("out of memory");
		return BENCH_EXIT_FAIL;
	}
	if (bench_attach_loop(&o, us) == 0 &&
	    bench_record(&o.rec, o.open_only ? "open_close_us" : "attach_us",
			 bench_median(us, o.iters), "us") == 0)
		rc = BENCH_EXIT_OK;
	free(us);
	return rc;
}

/* ------------------------------------------------------------------ */
/* ls                                                                  */
/* ------------------------------------------------------------------ */

/* Runs "ls [-l] @dir" with its output to /dev/null and waits.  Returns
 * the wall time in ns, or 0 if it could not run or failed. */
static uint64_t bench_run_ls(const char *dir, bool long_fmt)
{
	char *args[] = {"ls", long_fmt ? "-l" : "-1", "--", (char *)dir, NULL};
	posix_spawn_file_actions_t fa;
	uint64_t t0, ns;
	pid_t pid;
	int status, rc;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null",
					 O_WRONLY, 0);
	t0 = bench_now_ns();
	rc = posix_spawnp(&pid, "ls", &fa, NULL, args, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		bench_err("cannot run ls: %s", strerror(rc));
		return 0;
	}
	if (waitpid(pid, &status, 0) < 0) {
		bench_err("waitpid: %s", strerror(errno));
		return 0;
	}
	ns = bench_now_ns() - t0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		bench_err("ls %s failed (status 0x%x)", dir, status);
		return 0;
	}
	return ns ? ns : 1;
}

/* "mfsbench ls [--metric NAME] [--long] DIR": one timed ls; the caller
 * decides whether it is cold (first after mount) or warm by when it
 * calls, and names the metric accordingly. */
int bench_cmd_ls(int argc, char **argv)
{
	struct bench_rec rec = {0};
	const char *dir = NULL, *metric = "ms";
	bool long_fmt = false, bad = false;
	uint64_t ns;

	for (int i = 1; i < argc && !bad; i++) {
		if (bench_rec_option(&rec, argc, argv, &i, &bad))
			continue;
		if (strcmp(argv[i], "--long") == 0)
			long_fmt = true;
		else if (strcmp(argv[i], "--metric") == 0 && i + 1 < argc)
			metric = argv[++i];
		else if (argv[i][0] != '-' && !dir)
			dir = argv[i];
		else
			bad = true;
	}
	if (bad || !dir || !bench_rec_complete(&rec)) {
		fprintf(stderr, "usage: mfsbench ls --samples F --measure M "
				"--system S [--metric NAME] [--long] DIR\n");
		return BENCH_EXIT_USAGE;
	}
	ns = bench_run_ls(dir, long_fmt);
	if (ns == 0)
		return BENCH_EXIT_FAIL;
	if (bench_record(&rec, metric, (double)ns / BENCH_NS_PER_MS, "ms") < 0)
		return BENCH_EXIT_FAIL;
	return BENCH_EXIT_OK;
}
