/*
 * daemon.h - the state one running daemon shares between its modules.
 */
#ifndef MFSD_DAEMON_H
#define MFSD_DAEMON_H

#include <stdbool.h>
#include <time.h>

#include "chunkcache.h"
#include "data.h"
#include "follow.h"
#include "handoff.h"
#include "loader.h"
#include "remote.h"
#include "table.h"
#include "watch.h"

/* Most --header options. */
#define MFSD_MAX_HEADERS 16

/* Options as given on the command line (immutable once running). */
struct mfsd_options {
	const char *store_dir;  /* absolute */
	const char *mountpoint; /* absolute */
	bool foreground;
	bool debug;
	bool allow_other;
	unsigned threads;       /* most worker threads */
	bool threads_given;     /* --threads was given */
	size_t cache_bytes;     /* decoded-chunk cache budget */
	uint64_t page_budget;   /* page cache of released models; 0 = any */
	unsigned read_ahead_kb; /* bdi readahead to set; 0 = leave it */
	unsigned max_read;      /* largest read request, bytes */
	enum mfsd_io_mode io;
	bool takeover;          /* a dead serving process is replaced */
	/* A store at an http(s):// URL (remote.h): store_dir is then the
	 * view directory of its cache. */
	bool remote;
	struct mfsd_remote_options ropt;
	const char *headers[MFSD_MAX_HEADERS + 1]; /* ropt.headers */
	unsigned nheaders;
	const char *remote_only; /* a remote option given, for the error */
};

struct mfsd_ctx {
	struct mfsd_options opt;   /* immutable */
	struct timespec started;   /* immutable, CLOCK_MONOTONIC */
	struct mfsd_table *table;  /* own lock */
	struct mfsd_cache cache;   /* own lock */
	struct mfsd_watch watch;   /* own lock; the watcher thread */
	bool watching;             /* immutable: watch was set up */
	struct mfsd_loader loader; /* own lock; refreshes names */
	bool loading;              /* immutable: loader was set up */
	/* Loads tell the watcher what changed (false during the initial
	 * scan, when the kernel has nothing cached yet). */
	_Atomic bool notify;
	struct mfsd_stats stats;   /* atomics */
	struct mfsd_remote *remote; /* own locks; NULL: a local store */
	struct mfsd_data data;     /* immutable, points into the above */
	/* Records for a successor, and the handles' ids (handoff.h); set
	 * before the session starts. */
	struct mfsd_handoff *handoff;
};

#endif /* MFSD_DAEMON_H */
