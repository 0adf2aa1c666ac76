/*
 * mount.c - "mfsbench waitmount": wait until a FUSE server that was just
 * started answers at its mount point, and record how long that took.
 *
 * run.sh starts the server itself, in the background, so that the shell
 * is its parent and reaps it (an orphan would be left to pid 1, which in
 * containers may reap late, and a zombie still answers kill -0), then
 * runs this at once: the time measured starts a fork later than the
 * server, well under a millisecond.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define BENCH_MOUNT_DEFAULT_TIMEOUT_S 120u
#define BENCH_MOUNT_POLL_NS 1000000L /* 1 ms between checks */
#define BENCH_PATH_MAX 4096
#define BENCH_STAT_LINE_MAX 512

/* True once @mnt is a mount point: its device differs from its
 * parent's. */
static bool bench_is_mounted(const char *mnt)
{
	char parent[BENCH_PATH_MAX];
	struct stat a, b;

	snprintf(parent, sizeof(parent), "%s/..", mnt);
	return stat(mnt, &a) == 0 && stat(parent, &b) == 0 &&
	       a.st_dev != b.st_dev;
}

/* True while process @pid exists and is not a zombie. */
static bool bench_alive(pid_t pid)
{
	char path[BENCH_PATH_MAX], line[BENCH_STAT_LINE_MAX], *p;
	FILE *f;
	bool alive = false;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	/* "PID (COMM) STATE ...": COMM may hold spaces and parentheses,
	 * so the state follows the last ')'. */
	if (fgets(line, sizeof(line), f)) {
		p = strrchr(line, ')');
		alive = p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
	}
	fclose(f);
	return alive;
}

/* Waits until @mnt is mounted, the server @pid (0: not watched) ends,
 * or @timeout_ns passes.  0 when mounted, else -1 (message printed). */
static int bench_wait_mount(const char *mnt, pid_t pid, uint64_t timeout_ns)
{
	const struct timespec poll = {.tv_nsec = BENCH_MOUNT_POLL_NS};
	uint64_t t0 = bench_now_ns();

	while (!bench_is_mounted(mnt)) {
		if (pid && !bench_alive(pid)) {
			bench_err("the server for %s (pid %d) ended", mnt,
				  (int)pid);
			return -1;
		}
		if (bench_now_ns() - t0 > timeout_ns) {
			bench_err("%s not mounted after %llu s", mnt,
				  (unsigned long long)(timeout_ns /
						       BENCH_NS_PER_SEC));
			return -1;
		}
		nanosleep(&poll, NULL);
	}
	return 0;
}

static int bench_waitmount_usage(void)
{
	fprintf(stderr,
		"usage: mfsbench waitmount [--samples F --measure M "
		"--system S] [--pid PID] [--timeout SECONDS] MOUNTPOINT\n");
	return BENCH_EXIT_USAGE;
}

int bench_cmd_waitmount(int argc, char **argv)
{
	struct bench_rec rec = {0};
	const char *mnt = NULL;
	uint64_t timeout_s = BENCH_MOUNT_DEFAULT_TIMEOUT_S, pid = 0;
	uint64_t t0 = bench_now_ns();
	bool bad = false;

	for (int i = 1; i < argc && !bad; i++) {
		const char *a = argv[i];

		if (bench_rec_option(&rec, argc, argv, &i, &bad))
			continue;
		if (strcmp(a, "--pid") == 0 && i + 1 < argc)
			bad = bench_parse_u64(a, argv[++i], &pid) < 0;
		else if (strcmp(a, "--timeout") == 0 && i + 1 < argc)
			bad = bench_parse_u64(a, argv[++i], &timeout_s) < 0;
		else if (a[0] != '-' && !mnt)
			mnt = a;
		else
			bad = true;
	}
	if (bad || !mnt)
		return bench_waitmount_usage();
	if (bench_wait_mount(mnt, (pid_t)pid, timeout_s * BENCH_NS_PER_SEC) <
	    0)
		return BENCH_EXIT_FAIL;
	if (rec.path && bench_rec_complete(&rec) &&
	    bench_record(&rec, "mount_ms",
			 (double)(bench_now_ns() - t0) / BENCH_NS_PER_MS,
			 "ms") < 0)
		return BENCH_EXIT_FAIL;
	return BENCH_EXIT_OK;
}
