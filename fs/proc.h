/*
 * proc.h - what /proc tells about the processes that use the mount.
 */
#ifndef MFSD_PROC_H
#define MFSD_PROC_H

#include <stddef.h>
#include <sys/types.h>

/* Room for a command name: /proc/PID/comm holds at most 16 bytes
 * (TASK_COMM_LEN) plus a newline. */
#define MFSD_COMM_MAX 64

/*
 * The process (thread group id) of thread @tid.  FUSE tells the thread
 * that made a request; holders are processes.  Returns @tid itself when
 * /proc cannot tell (the thread is gone).
 */
pid_t mfsd_proc_tgid(pid_t tid);

/* Command name of process @pid into @buf (@len bytes), "" once the
 * process is gone. */
void mfsd_proc_comm(pid_t pid, char *buf, size_t len);

#endif /* MFSD_PROC_H */
