/*
 * log.c - the daemon's log sink.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define FUSE_USE_VERSION 314
#include <fuse_log.h>

#include "log.h"

/* Set once by mfsd_log_init before threads exist; read-only afterwards. */
static bool mfsd_log_foreground = true;
static bool mfsd_log_debug;

/* Long enough for a path, a library message and some context. */
#define MFSD_LOG_LINE_MAX 2048

static void mfsd_log_vsink(int level, const char *fmt, va_list ap)
{
	char line[MFSD_LOG_LINE_MAX];
	size_t n;

	if (level == MFSD_LOG_DEBUG && !mfsd_log_debug)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	/* libfuse's messages end in a newline, ours do not: strip it so the
	 * sinks below add exactly one. */
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
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
