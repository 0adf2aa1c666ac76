/*
 * proc.c - process facts from /proc (see proc.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "proc.h"

#define MFSD_PROC_PATH_MAX 64
/* "Tgid:" is on the fourth line of /proc/PID/status, well within this. */
#define MFSD_STATUS_HEAD 512
#define MFSD_TGID_FIELD "\nTgid:"

/* Reads up to @len - 1 bytes of /proc/@pid/@file into @buf, NUL-ended.
 * Returns the bytes read, 0 if it cannot be read. */
static size_t mfsd_proc_read(pid_t pid, const char *file, char *buf,
			     size_t len)
{
	char path[MFSD_PROC_PATH_MAX];
	ssize_t n = -1;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/%s", (long)pid, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, len - 1);
		close(fd);
	}
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	return (size_t)n;
}

/*
 * True if @tid is a thread-group leader (a process's first thread, the
 * usual opener): tgkill(tid, tid, 0) finds the thread only if its group
 * is @tid, and sends nothing (EPERM still means it was found).  One cheap
 * syscall on every open, where reading /proc/PID/status costs ~15 us.
 */
static bool mfsd_is_leader(pid_t tid)
{
	return syscall(SYS_tgkill, tid, tid, 0) == 0 || errno == EPERM;
}

pid_t mfsd_proc_tgid(pid_t tid)
{
	char buf[MFSD_STATUS_HEAD];
	const char *p;
	long tgid;

	if (mfsd_is_leader(tid))
		return tid;
	if (mfsd_proc_read(tid, "status", buf, sizeof(buf)) == 0)
		return tid;
	p = strstr(buf, MFSD_TGID_FIELD);
	if (!p)
		return tid;
	tgid = strtol(p + strlen(MFSD_TGID_FIELD), NULL, 10);
	return tgid > 0 ? (pid_t)tgid : tid;
}

void mfsd_proc_comm(pid_t pid, char *buf, size_t len)
{
	mfsd_proc_read(pid, "comm", buf, len);
	buf[strcspn(buf, "\n")] = '\0';
}
