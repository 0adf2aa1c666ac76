/*
 * proc.c - process facts from /proc (see proc.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
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
/*
 * Slots of the cache from thread id to process id, for openers that are
 * not a thread-group leader (a loader's worker threads, say): enough for
 * the threads of the few processes that open files at once; a miss only
 * costs the /proc read.  A power of two, so a tid picks its slot by mask.
 */
#define MFSD_TGID_SLOTS 256u
#define MFSD_PID_BITS 32u

/* Each slot: (tid << 32) | tgid, or 0 when empty (no thread has id 0).
 * Lock-free: a pair is stored and read whole. */
static _Atomic uint64_t mfsd_tgid_cache[MFSD_TGID_SLOTS];
static _Atomic uint64_t mfsd_tgid_hits;

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

/* True if @tid is a thread of process @tgid right now: tgkill finds the
 * thread only if its group is @tgid (EPERM still means found). */
static bool mfsd_is_thread_of(pid_t tgid, pid_t tid)
{
	return syscall(SYS_tgkill, tgid, tid, 0) == 0 || errno == EPERM;
}

/* True if @tid is a thread-group leader (a process's first thread, the
 * usual opener).  One cheap syscall on every open, where reading
 * /proc/PID/status costs ~15 us. */
static bool mfsd_is_leader(pid_t tid)
{
	return mfsd_is_thread_of(tid, tid);
}

/* The cache slot of @tid. */
static _Atomic uint64_t *mfsd_tgid_slot(pid_t tid)
{
	return &mfsd_tgid_cache[(uint32_t)tid & (MFSD_TGID_SLOTS - 1)];
}

void mfsd_proc_tgid_remember(pid_t tid, pid_t tgid)
{
	atomic_store_explicit(mfsd_tgid_slot(tid),
			      (uint64_t)(uint32_t)tid << MFSD_PID_BITS |
				      (uint32_t)tgid,
			      memory_order_relaxed);
}

/*
 * The cached process of @tid, 0 if none.  A cached pair is checked
 * before it is trusted: the thread may have ended and its id been
 * reused by a thread of another process, which tgkill then refuses.
 */
static pid_t mfsd_tgid_cached(pid_t tid)
{
	uint64_t v = atomic_load_explicit(mfsd_tgid_slot(tid),
					  memory_order_relaxed);
	pid_t tgid = (pid_t)(uint32_t)v;

	if (v == 0 || (pid_t)(uint32_t)(v >> MFSD_PID_BITS) != tid ||
	    !mfsd_is_thread_of(tgid, tid))
		return 0;
	atomic_fetch_add_explicit(&mfsd_tgid_hits, 1, memory_order_relaxed);
	return tgid;
}

uint64_t mfsd_proc_tgid_hits(void)
{
	return atomic_load_explicit(&mfsd_tgid_hits, memory_order_relaxed);
}

/* The process of non-leader @tid from /proc/TID/status, 0 if /proc
 * cannot tell (the thread is gone). */
static pid_t mfsd_tgid_read(pid_t tid)
{
	char buf[MFSD_STATUS_HEAD];
	const char *p;
	long tgid;

	if (mfsd_proc_read(tid, "status", buf, sizeof(buf)) == 0)
		return 0;
	p = strstr(buf, MFSD_TGID_FIELD);
	if (!p)
		return 0;
	tgid = strtol(p + strlen(MFSD_TGID_FIELD), NULL, 10);
	return tgid > 0 ? (pid_t)tgid : 0;
}

pid_t mfsd_proc_tgid(pid_t tid)
{
	pid_t tgid;

	if (mfsd_is_leader(tid))
		return tid;
	tgid = mfsd_tgid_cached(tid);
	if (tgid)
		return tgid;
	tgid = mfsd_tgid_read(tid);
	if (!tgid)
		return tid;
	mfsd_proc_tgid_remember(tid, tgid);
	return tgid;
}

void mfsd_proc_comm(pid_t pid, char *buf, size_t len)
{
	mfsd_proc_read(pid, "comm", buf, len);
	buf[strcspn(buf, "\n")] = '\0';
}
