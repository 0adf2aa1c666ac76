/*
 * proc.h - what /proc tells about the processes that use the mount.
 */
#ifndef MFSD_PROC_H
#define MFSD_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Room for a command name: /proc/PID/comm holds at most 16 bytes
 * (TASK_COMM_LEN) plus a newline. */
#define MFSD_COMM_MAX 64

/*
 * The process (thread group id) of thread @tid.  FUSE tells the thread
 * that made a request; holders are processes.  Returns @tid itself when
 * /proc cannot tell (the thread is gone).  A thread that is not its
 * process's leader is looked up in a small cache first, whose pair is
 * used only if the thread still belongs to that process (a tid reused
 * elsewhere is never misattributed); a miss reads /proc and fills it.
 * Thread-safe.
 */
pid_t mfsd_proc_tgid(pid_t tid);

/* Caches @tgid as the process of thread @tid, replacing what its slot
 * held (mfsd_proc_tgid's fill; tests plant stale pairs with it). */
void mfsd_proc_tgid_remember(pid_t tid, pid_t tgid);

/* How many mfsd_proc_tgid calls the cache answered. */
uint64_t mfsd_proc_tgid_hits(void);

/* Command name of process @pid into @buf (@len bytes), "" once the
 * process is gone. */
void mfsd_proc_comm(pid_t pid, char *buf, size_t len);

#endif /* MFSD_PROC_H */
