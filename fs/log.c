/*
 * log.c - the daemon's log sink.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <fuse_log.h>

#include "modelfs.h"
#include "log.h"

/* Set once by mfsd_log_init before threads exist; read-only afterwards. */
static bool mfsd_log_foreground = true;
static bool mfsd_log_debug;

/* Long enough for a path, a library message and some context. */
#define MFSD_LOG_LINE_MAX 2048
/* The escaped line: room for a message made of escapes only. */
#define MFSD_LOG_ESCAPED_MAX (MFSD_LOG_LINE_MAX * MFS_ESCAPE_MAX_EXPANSION)

/* Formats the message into @line (@size bytes) without the trailing
 * newlines libfuse's messages end in (ours have none), so the sinks add
 * exactly one. */
static void mfsd_log_format(char *line, size_t size, const char *fmt,
			    va_list ap)
{
	size_t n;

	vsnprintf(line, size, fmt, ap);
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
}

static void mfsd_log_vsink(int level, const char *fmt, va_list ap)
{
	char raw[MFSD_LOG_LINE_MAX], line[MFSD_LOG_ESCAPED_MAX];

	if (level == MFSD_LOG_DEBUG && !mfsd_log_debug)
		return;
	mfsd_log_format(raw, sizeof(raw), fmt, ap);
	/* One call, one line: a newline or terminal control in a store
	 * entry's name (or anything else quoted) must not forge a log line.
	 * Backslashes are kept, so library messages (escaped already) are
	 * not escaped twice. */
	mfs_escape(line, sizeof(line), raw, strlen(raw),
		   MFS_ESCAPE_KEEP_BACKSLASH);
	if (mfsd_log_foreground) {
		/* One fprintf per line: stdio locks the stream, so lines
		 * from different threads do not interleave. */
		fprintf(stderr, "modelfs: %s\n", line);
		return;
	}
	syslog(level, "%s", line);
}

static void mfsd_log_fuse(enum fuse_log_level level, const char *fmt,
			  va_list ap)
{
	/* fuse_log_level values are syslog's levels. */
	mfsd_log_vsink((int)level, fmt, ap);
}

void mfsd_log_init(bool foreground, bool debug)
{
	mfsd_log_foreground = foreground;
	mfsd_log_debug = debug;
	if (!foreground)
		openlog("modelfs", LOG_PID | LOG_PERROR, LOG_DAEMON);
	fuse_set_log_func(mfsd_log_fuse);
}

void mfsd_log(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mfsd_log_vsink(level, fmt, ap);
	va_end(ap);
}

void mfsd_log_close(void)
{
	if (!mfsd_log_foreground)
		closelog();
}
