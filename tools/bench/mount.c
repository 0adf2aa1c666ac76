/*
 * mount.c - "mfsbench mount": start a FUSE server in the foreground, wait
 * until its mount answers, print its pid.
 *
 * The server runs as a child whose output goes to a log file (so that a
 * shell's $(...) around this command does not wait for the server), and
 * is left running when this command exits; run.sh unmounts it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define BENCH_MOUNT_DEFAULT_TIMEOUT_S 120u
#define BENCH_MOUNT_POLL_NS 1000000L /* 1 ms between checks */
#define BENCH_PATH_MAX 4096

extern char **environ;

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

/* Spawns @argv with stdin from /dev/null and stdout and stderr
 * appended to @log.  0 or -1 (message printed). */
static int bench_spawn_server(char **argv, const char *log, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	int rc;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null",
					 O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log,
					 O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
	rc = posix_spawnp(pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		bench_err("cannot run %s: %s", argv[0], strerror(rc));
		return -1;
	}
	return 0;
}

/* Waits until @mnt is mounted, the server @pid exits, or @timeout_ns
 * passes.  0 when mounted, else -1 (message printed; the server is
 * killed on timeout). */
static int bench_wait_mount(const char *mnt, pid_t pid, uint64_t timeout_ns)
{
	const struct timespec poll = {.tv_nsec = BENCH_MOUNT_POLL_NS};
	uint64_t t0 = bench_now_ns();
	int status;

	while (!bench_is_mounted(mnt)) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			bench_err("server for %s exited (status 0x%x)", mnt,
				  status);
			return -1;
		}
		if (bench_now_ns() - t0 > timeout_ns) {
			bench_err("%s not mounted after %llu s", mnt,
				  (unsigned long long)(timeout_ns /
						       BENCH_NS_PER_SEC));
			kill(pid, SIGTERM);
			return -1;
		}
		nanosleep(&poll, NULL);
	}
	return 0;
}

static int bench_mount_usage(void)
{
	fprintf(stderr,
		"usage: mfsbench mount [--samples F --measure M --system S] "
		"[--log FILE] [--timeout SECONDS] MOUNTPOINT -- COMMAND "
		"[ARGS...]\n");
	return BENCH_EXIT_USAGE;
}

int bench_cmd_mount(int argc, char **argv)
{
	struct bench_rec rec = {0};
	const char *mnt = NULL, *log = "/dev/null";
	uint64_t timeout_s = BENCH_MOUNT_DEFAULT_TIMEOUT_S, t0;
	bool bad = false;
	int i;
	pid_t pid;

	for (i = 1; i < argc && !bad && strcmp(argv[i], "--") != 0; i++) {
		if (bench_rec_option(&rec, argc, argv, &i, &bad))
			continue;
		if (strcmp(argv[i], "--log") == 0 && i + 1 < argc)
			log = argv[++i];
		else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			bad = bench_parse_u64(argv[i], argv[i + 1],
					      &timeout_s) < 0;
			i++;
		} else if (argv[i][0] != '-' && !mnt)
			mnt = argv[i];
		else
			bad = true;
	}
	if (bad || !mnt || i + 1 >= argc)
		return bench_mount_usage();
	t0 = bench_now_ns();
	if (bench_spawn_server(argv + i + 1, log, &pid) < 0 ||
	    bench_wait_mount(mnt, pid, timeout_s * BENCH_NS_PER_SEC) < 0)
		return BENCH_EXIT_FAIL;
	if (rec.path && bench_rec_complete(&rec) &&
	    bench_record(&rec, "mount_ms",
			 (double)(bench_now_ns() - t0) / BENCH_NS_PER_MS,
			 "ms") < 0)
		return BENCH_EXIT_FAIL;
	printf("%d\n", (int)pid);
	return BENCH_EXIT_OK;
}
