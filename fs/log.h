/*
 * log.h - the daemon's log: stderr in the foreground, syslog otherwise.
 */
#ifndef MFSD_LOG_H
#define MFSD_LOG_H

#include <stdbool.h>
#include <syslog.h>

/* Levels are syslog's, so the sink needs no translation. */
#define MFSD_LOG_ERR LOG_ERR
#define MFSD_LOG_WARNING LOG_WARNING
#define MFSD_LOG_INFO LOG_INFO
#define MFSD_LOG_DEBUG LOG_DEBUG

/*
 * Chooses the sink: stderr when @foreground, else syslog (with a copy on
 * stderr until it is detached by daemonizing).  @debug enables DEBUG
 * messages.  Also routes libfuse's own messages through mfsd_log.  Call
 * once, before any thread is started.
 */
void mfsd_log_init(bool foreground, bool debug);

/* Logs one line (no trailing newline needed).  Thread-safe. */
void mfsd_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Closes syslog if it was opened. */
void mfsd_log_close(void);

#endif /* MFSD_LOG_H */
