/*
 * main.c - modelfs: options, start-up, the session loop, shutdown.
 *
 *   modelfs [-f] [-d] [-o OPTIONS] [--threads N] [--cache-budget SIZE]
 *           [remote options] STORE_DIR|URL MOUNTPOINT
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <pthread.h>

#include "daemon.h"
#include "evict.h"
#include "lease.h"
#include "log.h"
#include "ops.h"
#include "supervise.h"


/*
 * Defaults chosen by measurement: on 2 cores, 2 worker threads scanned
 * ~15 % faster than 3 or 4 (more threads only contend for the cores), so
 * the default is one per online CPU, at least MFSD_MIN_DEFAULT_THREADS.
 */
#define MFSD_MIN_DEFAULT_THREADS 2u
#define MFSD_MAX_DEFAULT_THREADS 16u
#define MFSD_MAX_THREADS 256u
#define MFSD_DEFAULT_CACHE_MB 64u
#define MFSD_DEFAULT_READ_AHEAD_KB 4096u
/*
 * Largest read request.  libfuse splices a reply through a pipe that must
 * hold the request plus a few pages, and an unprivileged pipe grows to
 * /proc/sys/fs/pipe-max-size (1 MiB by default) only; 1 MiB - 64 KiB
 * keeps splicing possible.  The session buffer caps it at 1 MiB.
 */
#define MFSD_DEFAULT_MAX_READ ((1u << 20) - (64u << 10))
#define MFSD_MAX_MAX_READ (1u << 20)
#define MFSD_MIN_MAX_READ 4096u
#define MFSD_MB (1u << 20)
/* glibc's largest mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX). */
#define MFSD_MALLOC_MMAP_THRESHOLD (32u << 20)
/* Heap kept beyond the chunk cache before glibc gives memory back. */
#define MFSD_MALLOC_TRIM_SLACK (16u << 20)
#define MFSD_SYSFS_PATH_MAX 96
/* How long the readahead thread waits for INIT: 10 s, polled. */
#define MFSD_RA_WAIT_POLLS 10000u
#define MFSD_RA_WAIT_POLL_US 1000u
#define MFSD_MOUNT_OPTS_MAX 512
/*
 * Descriptors kept out of the containers' budget: standard streams,
 * /dev/fuse, the store directory, inotify, eventfd, syslog and the
 * short-lived ones of directory listings and /proc reads; plus the
 * splice pipe (two descriptors) libfuse gives each worker thread.
 */
/* Bounds of the remote options. */
#define MFSD_MAX_POLL_S 86400u
#define MFSD_MAX_CONNECTIONS 64
#define MFSD_MAX_DEADLINE_S 3600u
#define MFSD_MS_PER_S 1000u
#define MFSD_STR_(x) #x
#define MFSD_STR(x) MFSD_STR_(x)
#define MFSD_FD_RESERVE 64u
#define MFSD_FD_PER_THREAD 2u

struct mfsd_ra_thread {
	pthread_t tid;
	bool started;
	struct mfsd_handoff_region *region;
	const char *mountpoint;
	unsigned read_ahead_kb;
};

static void mfsd_usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [-f] [-d] [-o OPTIONS] [--threads N]\n"
		"          [--cache-budget SIZE] [remote options]\n"
		"          STORE_DIR|URL MOUNTPOINT\n"
		"\n"
		"Serves the model containers (*.mfs) of STORE_DIR read-only at\n"
		"MOUNTPOINT: one directory per model with one .npy file per\n"
		"array, manifest.json and metadata.json; /.status is JSON.\n"
		"Containers published, replaced or removed in STORE_DIR show\n"
		"at once; processes holding an old version keep reading it.\n"
		"A URL (http:// or https://, ending in /) serves the store\n"
		"listed by URL/index.json (modelctl index), fetching chunks\n"
		"when first read into a disk cache.\n"
		"\n"
		"  -f              stay in the foreground, log to stderr\n"
		"  -d              debug: log every FUSE request (implies -f)\n"
		"  --threads N     most worker threads (default: one per "
		"CPU, %u..%u;\n"
		"                  a URL store: at least --connections)\n"
		"  --cache-budget SIZE\n"
		"                  page cache (K/M/G/T suffixes) that models no\n"
		"                  process holds open may keep; beyond it the\n"
		"                  least recently released are dropped from\n"
		"                  the page cache (default: no limit)\n"
		"  -h, --help      this text\n"
		"  -V, --version   print the version\n"
		"\n"
		"Remote options (a URL store only):\n"
		"  --cache-dir DIR        the disk cache (default %s)\n"
		"  --cache-size SIZE      most bytes it keeps (default: no "
		"limit)\n"
		"  --poll SECONDS         between index polls (default %u; 0 "
		"never)\n"
		"  --prefetch             fetch every model in the background\n"
		"  --connections N        HTTP connections at once (default "
		"%u)\n"
		"  --read-deadline SECONDS\n"
		"                         a read whose bytes the origin does "
		"not\n"
		"                         deliver by then fails with EIO "
		"(default %u)\n"
		"  --header 'NAME: VALUE' sent with every request (repeatable)\n"
		"  --aws-sigv4 PROVIDER   sign requests (S3: aws:amz:REGION:s3);"
		"\n"
		"                         keys from AWS_ACCESS_KEY_ID,\n"
		"                         AWS_SECRET_ACCESS_KEY, "
		"AWS_SESSION_TOKEN\n"
		"\n"
		"  -o allow_other       let other users use the mount\n"
		"  -o cache_mb=N        decoded LZ4 chunk cache (default %u)\n"
		"  -o read_ahead_kb=N   kernel readahead of the mount\n"
		"                       (default %u; 0 leaves the default)\n"
		"  -o max_read=N        largest read request in bytes "
		"(default %u)\n"
		"  -o io=splice|pread   how raw bytes reach the kernel\n"
		"                       (default splice)\n"
		"  -o cache_budget=SIZE as --cache-budget\n"
		"  -o takeover=on|off   when the serving process dies, a new\n"
		"                       one takes the mount over (default on;\n"
		"                       off: the mount ends with it)\n"
		"  ro, defaults, nodev, nosuid, noexec, noatime, _netdev,\n"
		"  nofail, auto, noauto, user, users, x-* are accepted and\n"
		"  ignored (the mount is always read-only).\n"
		"\n"
		"The process started (or left running in the background) is\n"
		"the supervisor: it holds the mount and runs the serving\n"
		"process as its child, replacing it if it dies.  Signals to\n"
		"the supervisor: SIGTERM, SIGINT, SIGHUP stop and unmount;\n"
		"SIGUSR2 upgrades: the binary at its path runs again and\n"
		"takes the mount over.\n",
		prog, MFSD_MIN_DEFAULT_THREADS, MFSD_MAX_DEFAULT_THREADS,
		MFSD_REMOTE_CACHE_DIR, MFSD_REMOTE_POLL_S,
		MFSD_REMOTE_CONNECTIONS, MFSD_REMOTE_DEADLINE_S,
		MFSD_DEFAULT_CACHE_MB,
		MFSD_DEFAULT_READ_AHEAD_KB, MFSD_DEFAULT_MAX_READ);
}

static unsigned mfsd_default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < (long)MFSD_MIN_DEFAULT_THREADS)
		return MFSD_MIN_DEFAULT_THREADS;
	if (n > (long)MFSD_MAX_DEFAULT_THREADS)
		return MFSD_MAX_DEFAULT_THREADS;
	return (unsigned)n;
}

/* Parses a decimal in [@min, @max].  0 or -EINVAL. */
static int mfsd_parse_uint(const char *s, unsigned long min,
			   unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* What each entry of mfsd_opt_table stands for (fuse_opt keys; libfuse's
 * own are negative, and 0 is none). */
enum mfsd_opt_key {
	MFSD_KEY_NONE = 0,
	MFSD_KEY_HELP,
	MFSD_KEY_VERSION,
	MFSD_KEY_FOREGROUND,
	MFSD_KEY_DEBUG,
	MFSD_KEY_THREADS,      /* --threads N, --threads=N */
	MFSD_KEY_CACHE_BUDGET, /* --cache-budget SIZE, --cache-budget=SIZE */
	MFSD_KEY_CACHE_DIR,    /* remote options from here on */
	MFSD_KEY_CACHE_SIZE,
	MFSD_KEY_POLL,
	MFSD_KEY_CONNECTIONS,
	MFSD_KEY_READ_DEADLINE,
	MFSD_KEY_HEADER,
	MFSD_KEY_AWS_SIGV4,
	MFSD_KEY_PREFETCH,     /* the one without a value */
	MFSD_KEY_ALLOW_OTHER,  /* -o options from here on */
	MFSD_KEY_CACHE_MB,
	MFSD_KEY_READ_AHEAD_KB,
	MFSD_KEY_MAX_READ,
	MFSD_KEY_IO,
	MFSD_KEY_OPT_CACHE_BUDGET,
	MFSD_KEY_TAKEOVER,
};

/*
 * The command line.  fuse_opt_parse matches each argument, and each
 * option of a -o list, against these templates and hands it to
 * mfsd_opt_proc with its key; "NAME=" matches "NAME=VALUE".  The options
 * that mount(8) or fstab may pass and that mean nothing here are
 * discarded (and x-*, in mfsd_opt_proc).
 */
static const struct fuse_opt mfsd_opt_table[] = {
	FUSE_OPT_KEY("-h", MFSD_KEY_HELP),
	FUSE_OPT_KEY("--help", MFSD_KEY_HELP),
	FUSE_OPT_KEY("-V", MFSD_KEY_VERSION),
	FUSE_OPT_KEY("--version", MFSD_KEY_VERSION),
	FUSE_OPT_KEY("-f", MFSD_KEY_FOREGROUND),
	FUSE_OPT_KEY("-d", MFSD_KEY_DEBUG),
	FUSE_OPT_KEY("--threads", MFSD_KEY_THREADS),
	FUSE_OPT_KEY("--threads=", MFSD_KEY_THREADS),
	FUSE_OPT_KEY("--cache-budget", MFSD_KEY_CACHE_BUDGET),
	FUSE_OPT_KEY("--cache-budget=", MFSD_KEY_CACHE_BUDGET),
	FUSE_OPT_KEY("--cache-dir", MFSD_KEY_CACHE_DIR),
	FUSE_OPT_KEY("--cache-dir=", MFSD_KEY_CACHE_DIR),
	FUSE_OPT_KEY("--cache-size", MFSD_KEY_CACHE_SIZE),
	FUSE_OPT_KEY("--cache-size=", MFSD_KEY_CACHE_SIZE),
	FUSE_OPT_KEY("--poll", MFSD_KEY_POLL),
	FUSE_OPT_KEY("--poll=", MFSD_KEY_POLL),
	FUSE_OPT_KEY("--connections", MFSD_KEY_CONNECTIONS),
	FUSE_OPT_KEY("--connections=", MFSD_KEY_CONNECTIONS),
	FUSE_OPT_KEY("--read-deadline", MFSD_KEY_READ_DEADLINE),
	FUSE_OPT_KEY("--read-deadline=", MFSD_KEY_READ_DEADLINE),
	FUSE_OPT_KEY("--header", MFSD_KEY_HEADER),
	FUSE_OPT_KEY("--header=", MFSD_KEY_HEADER),
	FUSE_OPT_KEY("--aws-sigv4", MFSD_KEY_AWS_SIGV4),
	FUSE_OPT_KEY("--aws-sigv4=", MFSD_KEY_AWS_SIGV4),
	FUSE_OPT_KEY("--prefetch", MFSD_KEY_PREFETCH),
	FUSE_OPT_KEY("allow_other", MFSD_KEY_ALLOW_OTHER),
	FUSE_OPT_KEY("cache_mb=", MFSD_KEY_CACHE_MB),
	FUSE_OPT_KEY("read_ahead_kb=", MFSD_KEY_READ_AHEAD_KB),
	FUSE_OPT_KEY("max_read=", MFSD_KEY_MAX_READ),
	FUSE_OPT_KEY("io=", MFSD_KEY_IO),
	FUSE_OPT_KEY("cache_budget=", MFSD_KEY_OPT_CACHE_BUDGET),
	FUSE_OPT_KEY("takeover=", MFSD_KEY_TAKEOVER),
	FUSE_OPT_KEY("ro", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("defaults", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("default_permissions", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nodev", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nosuid", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("noexec", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("noatime", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("relatime", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("_netdev", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nofail", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("auto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("noauto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("user", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("users", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("async", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_END,
};

enum mfsd_args_result {
	MFSD_ARGS_RUN,
	MFSD_ARGS_EXIT_OK,
	MFSD_ARGS_USAGE,
};

/* What mfsd_opt_proc gathers while fuse_opt_parse walks the line. */
struct mfsd_parse {
	struct mfsd_options *opt;
	const char *prog;
	const char *pos[2]; /* STORE_DIR and MOUNTPOINT, from argv */
	int npos;
	/* An option that takes a value given alone (--threads N): the next
	 * argument, whatever it is, is its value. */
	enum mfsd_opt_key pending;
	/* Set with the result when a handler ends the parse (its message
	 * printed); a failure without it is libfuse's. */
	bool stopped;
	enum mfsd_args_result result;
};

/* Ends the parse with @result: fuse_opt_parse stops at -1. */
static int mfsd_parse_stop(struct mfsd_parse *p, enum mfsd_args_result result)
{
	p->stopped = true;
	p->result = result;
	return -1;
}

/* Sets --threads from @v (NULL: none given).  0, or -1 with the parse
 * stopped. */
static int mfsd_set_threads(struct mfsd_parse *p, const char *v)
{
	unsigned long n;

	if (mfsd_parse_uint(v, 1, MFSD_MAX_THREADS, &n) < 0) {
		fprintf(stderr, "modelfs: --threads needs a number from 1 to "
				"%u\n", MFSD_MAX_THREADS);
		return mfsd_parse_stop(p, MFSD_ARGS_USAGE);
	}
	p->opt->threads = (unsigned)n;
	p->opt->threads_given = true;
	return 0;
}

/* Sets --cache-budget from @v (NULL: none given).  0, or -1 with the
 * parse stopped. */
static int mfsd_set_cache_budget(struct mfsd_parse *p, const char *v)
{
	if (mfsd_parse_size(v, &p->opt->page_budget) < 0) {
		fprintf(stderr, "modelfs: --cache-budget needs a size such as "
				"512M or 2G\n");
		return mfsd_parse_stop(p, MFSD_ARGS_USAGE);
	}
	return 0;
}

/* The name of remote option @key, for messages. */
static const char *mfsd_remote_option_name(int key)
{
	static const char *const names[] = {
		[MFSD_KEY_CACHE_DIR] = "--cache-dir",
		[MFSD_KEY_CACHE_SIZE] = "--cache-size",
		[MFSD_KEY_POLL] = "--poll",
		[MFSD_KEY_CONNECTIONS] = "--connections",
		[MFSD_KEY_READ_DEADLINE] = "--read-deadline",
		[MFSD_KEY_HEADER] = "--header",
		[MFSD_KEY_AWS_SIGV4] = "--aws-sigv4",
		[MFSD_KEY_PREFETCH] = "--prefetch",
	};

	return names[key];
}

/* Sets remote option @key from @v (NULL: none given).  0 or -EINVAL
 * (the caller names the option). */
static int mfsd_set_remote_value(struct mfsd_options *opt, int key,
				 const char *v)
{
	struct mfsd_remote_options *r = &opt->ropt;
	unsigned long n;

	opt->remote_only = mfsd_remote_option_name(key);
	if (!v || !*v)
		return -EINVAL;
	switch (key) {
	case MFSD_KEY_CACHE_DIR:
		r->cache_dir = v;
		return 0;
	case MFSD_KEY_CACHE_SIZE:
		return mfsd_parse_size(v, &r->cache_size);
	case MFSD_KEY_POLL:
		if (mfsd_parse_uint(v, 0, MFSD_MAX_POLL_S, &n) < 0)
			return -EINVAL;
		r->poll_s = (unsigned)n;
		return 0;
	case MFSD_KEY_CONNECTIONS:
		if (mfsd_parse_uint(v, 1, MFSD_MAX_CONNECTIONS, &n) < 0)
			return -EINVAL;
		r->connections = (unsigned)n;
		return 0;
	case MFSD_KEY_READ_DEADLINE:
		if (mfsd_parse_uint(v, 1, MFSD_MAX_DEADLINE_S, &n) < 0)
			return -EINVAL;
		r->deadline_ms = (unsigned)n * MFSD_MS_PER_S;
		return 0;
	case MFSD_KEY_HEADER:
		if (!strchr(v + 1, ':') || opt->nheaders == MFSD_MAX_HEADERS)
			return -EINVAL;
		opt->headers[opt->nheaders++] = v;
		r->headers = opt->headers;
		return 0;
	default: /* MFSD_KEY_AWS_SIGV4 */
		r->aws_sigv4 = v;
		return 0;
	}
}

/* The usage error of remote option @key's value. */
static const char *mfsd_remote_value_help(int key)
{
	switch (key) {
	case MFSD_KEY_CACHE_DIR:
		return "a directory";
	case MFSD_KEY_CACHE_SIZE:
		return "a size such as 512M or 20G";
	case MFSD_KEY_POLL:
		return "a number of seconds (0: never)";
	case MFSD_KEY_CONNECTIONS:
		return "a number from 1 to " MFSD_STR(MFSD_MAX_CONNECTIONS);
	case MFSD_KEY_READ_DEADLINE:
		return "a number of seconds, at least 1";
	case MFSD_KEY_HEADER:
		return "'NAME: VALUE' (at most " MFSD_STR(MFSD_MAX_HEADERS)
		       " of them)";
	default:
		return "a provider such as aws:amz:us-east-1:s3";
	}
}

/* Sets a command option that takes a value, @key, from @v (NULL: none
 * given).  0, or -1 with the parse stopped. */
static int mfsd_set_command_value(struct mfsd_parse *p, int key,
				  const char *v)
{
	if (key == MFSD_KEY_THREADS)
		return mfsd_set_threads(p, v);
	if (key == MFSD_KEY_CACHE_BUDGET)
		return mfsd_set_cache_budget(p, v);
	if (mfsd_set_remote_value(p->opt, key, v) == 0)
		return 0;
	fprintf(stderr, "modelfs: %s needs %s\n", mfsd_remote_option_name(key),
		mfsd_remote_value_help(key));
	return mfsd_parse_stop(p, MFSD_ARGS_USAGE);
}

/* Sets the option of @key from @v, the text after "name=".  0 or
 * -EINVAL. */
static int mfsd_set_value(struct mfsd_options *opt, int key, const char *v)
{
	unsigned long n;

	switch (key) {
	case MFSD_KEY_CACHE_MB:
		if (mfsd_parse_uint(v, 0, SIZE_MAX / MFSD_MB, &n) < 0)
			return -EINVAL;
		opt->cache_bytes = (size_t)n * MFSD_MB;
		return 0;
	case MFSD_KEY_READ_AHEAD_KB:
		if (mfsd_parse_uint(v, 0, UINT_MAX, &n) < 0)
			return -EINVAL;
		opt->read_ahead_kb = (unsigned)n;
		return 0;
	case MFSD_KEY_MAX_READ:
		if (mfsd_parse_uint(v, MFSD_MIN_MAX_READ, MFSD_MAX_MAX_READ,
				    &n) < 0)
			return -EINVAL;
		opt->max_read = (unsigned)n;
		return 0;
	case MFSD_KEY_OPT_CACHE_BUDGET:
		return mfsd_parse_size(v, &opt->page_budget);
	case MFSD_KEY_TAKEOVER:
		if (strcmp(v, "on") == 0)
			opt->takeover = true;
		else if (strcmp(v, "off") == 0)
			opt->takeover = false;
		else
			return -EINVAL;
		return 0;
	default: /* MFSD_KEY_IO */
		if (strcmp(v, "splice") == 0)
			opt->io = MFSD_IO_SPLICE;
		else if (strcmp(v, "pread") == 0)
			opt->io = MFSD_IO_PREAD;
		else
			return -EINVAL;
		return 0;
	}
}

/* Takes an argument no template matched: "-" or one after "--" is a
 * path, x-* (a -o option for other programs) is ignored.  0 or -1. */
static int mfsd_unmatched(struct mfsd_parse *p, const char *arg, int key)
{
	if (key == FUSE_OPT_KEY_NONOPT || strcmp(arg, "-") == 0) {
		if (p->npos == 2) {
			fprintf(stderr, "modelfs: too many arguments\n");
			return mfsd_parse_stop(p, MFSD_ARGS_USAGE);
		}
		p->pos[p->npos++] = arg;
		return 0;
	}
	/* An empty option of a -o list ("a,,b") says nothing. */
	if (arg[0] == '\0' || strncmp(arg, "x-", strlen("x-")) == 0)
		return 0;
	fprintf(stderr, "modelfs: unknown option '%s%s'\n",
		arg[0] == '-' ? "" : "-o ", arg);
	return mfsd_parse_stop(p, MFSD_ARGS_USAGE);
}

/* Prints the version line. */
static void mfsd_version(void)
{
	printf("modelfs %s (libmodelfs %s, libfuse %s)\n",
	       MODELFS_VERSION_STRING, mfs_version(), fuse_pkgversion());
}

/* Applies command-line option @arg of @key (MFSD_KEY_HELP ..
 * MFSD_KEY_CACHE_BUDGET).  0, or -1 with the parse stopped. */
static int mfsd_command_option(struct mfsd_parse *p, const char *arg, int key)
{
	const char *v = strchr(arg, '=');

	switch (key) {
	case MFSD_KEY_HELP:
		mfsd_usage(stdout, p->prog);
		return mfsd_parse_stop(p, MFSD_ARGS_EXIT_OK);
	case MFSD_KEY_VERSION:
		mfsd_version();
		return mfsd_parse_stop(p, MFSD_ARGS_EXIT_OK);
	case MFSD_KEY_DEBUG:
		p->opt->debug = true;
		p->opt->foreground = true; /* -d implies -f */
		return 0;
	case MFSD_KEY_FOREGROUND:
		p->opt->foreground = true;
		return 0;
	case MFSD_KEY_PREFETCH:
		p->opt->ropt.prefetch = true;
		p->opt->remote_only = mfsd_remote_option_name(key);
		return 0;
	default: /* the options that take a value */
		if (!v) { /* the value is the next argument */
			p->pending = (enum mfsd_opt_key)key;
			return 0;
		}
		return mfsd_set_command_value(p, key, v + 1);
	}
}

/* Applies -o option @arg of @key (MFSD_KEY_ALLOW_OTHER on).  0, or -1
 * with the parse stopped. */
static int mfsd_mount_option(struct mfsd_parse *p, const char *arg, int key)
{
	if (key == MFSD_KEY_ALLOW_OTHER) {
		p->opt->allow_other = true;
		return 0;
	}
	/* The template ("name=") matched: arg has an '='. */
	if (mfsd_set_value(p->opt, key, strchr(arg, '=') + 1) == 0)
		return 0;
	fprintf(stderr, "modelfs: bad value in '-o %s'\n", arg);
	return mfsd_parse_stop(p, MFSD_ARGS_USAGE);
}

/* A fuse_opt_proc_t: applies one argument or -o option of key @key.
 * Returns 0 (argument used up) or -1 (parse stopped). */
static int mfsd_opt_proc(void *data, const char *arg, int key,
			 struct fuse_args *outargs)
{
	struct mfsd_parse *p = data;
	enum mfsd_opt_key pending = p->pending;

	(void)outargs;
	p->pending = MFSD_KEY_NONE;
	if (pending != MFSD_KEY_NONE)
		return mfsd_set_command_value(p, pending, arg);
	if (key >= MFSD_KEY_ALLOW_OTHER)
		return mfsd_mount_option(p, arg, key);
	if (key >= MFSD_KEY_HELP)
		return mfsd_command_option(p, arg, key);
	return mfsd_unmatched(p, arg, key);
}

/* A fuse_log_func_t that drops libfuse's messages while the command line
 * is parsed: the one it gives there (a -o without its value) is told in
 * the daemon's words instead. */
static void mfsd_log_none(enum fuse_log_level level, const char *fmt,
			  va_list ap)
{
	(void)level, (void)fmt, (void)ap;
}

/* True if @s names a remote store. */
static bool mfsd_is_url(const char *s)
{
	return strncmp(s, "http://", strlen("http://")) == 0 ||
	       strncmp(s, "https://", strlen("https://")) == 0;
}

/* Takes STORE_DIR as a URL if it is one; remote options need one. */
static enum mfsd_args_result mfsd_check_url(struct mfsd_options *opt)
{
	size_t n = strlen(opt->store_dir);

	opt->remote = mfsd_is_url(opt->store_dir);
	if (!opt->remote && opt->remote_only) {
		fprintf(stderr, "modelfs: %s applies to a store at a URL only "
				"('%s' is a directory)\n",
			opt->remote_only, opt->store_dir);
		return MFSD_ARGS_USAGE;
	}
	if (opt->remote && opt->store_dir[n - 1] != '/') {
		fprintf(stderr, "modelfs: the store URL '%s' must end in '/' "
				"(objects are URL + KEY.mfs)\n",
			opt->store_dir);
		return MFSD_ARGS_USAGE;
	}
	opt->ropt.url = opt->store_dir;
	return MFSD_ARGS_RUN;
}

/* The command line into @opt (defaults filled in).  The messages of
 * usage errors are printed. */
static enum mfsd_args_result mfsd_parse_args(int argc, char **argv,
					     struct mfsd_options *opt)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct mfsd_parse p = {.opt = opt, .prog = argv[0]};
	int rc;

	fuse_set_log_func(mfsd_log_none);
	rc = fuse_opt_parse(&args, &p, mfsd_opt_table, mfsd_opt_proc);
	fuse_set_log_func(NULL);
	fuse_opt_free_args(&args);
	if (rc < 0 && p.stopped)
		return p.result;
	if (rc < 0) { /* only a -o at the very end, or memory */
		if (strcmp(argv[argc - 1], "-o") == 0)
			fprintf(stderr, "modelfs: -o needs a value\n");
		return MFSD_ARGS_USAGE;
	}
	/* An option that takes a value last, without it. */
	if (p.pending != MFSD_KEY_NONE)
		(void)mfsd_set_command_value(&p, p.pending, NULL);
	if (p.stopped)
		return p.result;
	if (p.npos != 2) {
		fprintf(stderr, "modelfs: STORE_DIR (or URL) and MOUNTPOINT are "
				"needed\n");
		return MFSD_ARGS_USAGE;
	}
	opt->store_dir = p.pos[0];
	opt->mountpoint = p.pos[1];
	return mfsd_check_url(opt);
}

/* Resolves @path to an absolute directory path (the daemon changes to /
 * when it detaches).  *@out is malloc'd.  0 or -1 (message printed). */
static int mfsd_check_dir(const char *what, const char *path, char **out)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "modelfs: %s '%s': %s\n", what, path,
			strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "modelfs: %s '%s' is not a directory\n", what,
			path);
		return -1;
	}
	*out = realpath(path, NULL);
	if (!*out) {
		fprintf(stderr, "modelfs: %s '%s': %s\n", what, path,
			strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * As mfsd_check_dir for MOUNTPOINT, but a dead mount left there (its
 * daemon gone: ENOTCONN) is lazily unmounted first, as `fusermount3 -uz`
 * would, so that a restart needs no cleaning up.  0 or -1.
 */
static int mfsd_check_mountpoint(const char *path, char **out)
{
	struct statfs sfs;

	/* statfs, not stat: the kernel may answer stat of a dead mount's
	 * root from its cache. */
	if (statfs(path, &sfs) < 0 && errno == ENOTCONN) {
		fprintf(stderr, "modelfs: MOUNTPOINT '%s' is a dead mount (its "
			"daemon is gone): unmounting it\n", path);
		mfsd_unmount_lazy(path);
	}
	return mfsd_check_dir("MOUNTPOINT", path, out);
}

/* Builds the libfuse argument vector: the mount is always read-only with
 * kernel permission checks, named modelfs. */
static int mfsd_fuse_args(const struct mfsd_options *opt, struct fuse_args *a)
{
	char mount_opts[MFSD_MOUNT_OPTS_MAX];

	snprintf(mount_opts, sizeof(mount_opts),
		 "ro,default_permissions,fsname=modelfs,subtype=modelfs,"
		 "max_read=%u%s",
		 opt->max_read, opt->allow_other ? ",allow_other" : "");
	if (fuse_opt_add_arg(a, "modelfs") < 0 ||
	    fuse_opt_add_arg(a, "-o") < 0 || fuse_opt_add_arg(a, mount_opts) < 0)
		return -ENOMEM;
	if (opt->debug && fuse_opt_add_arg(a, "-d") < 0)
		return -ENOMEM;
	return 0;
}

/* Decodes the octal escapes (\040 ...) of a mountinfo field in place. */
static void mfsd_mountinfo_unescape(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/* The device of the mount at @mnt (the last one there), from
 * /proc/self/mountinfo: no request reaches the mount.  0 or -1. */
static int mfsd_mount_dev(const char *mnt, unsigned *maj, unsigned *min)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, path[PATH_MAX];
	size_t cap = 0;
	unsigned a, b;
	int rc = -1;

	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0) {
		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &a, &b, path) != 3)
			continue;
		mfsd_mountinfo_unescape(path);
		if (strcmp(path, mnt) == 0) {
			*maj = a;
			*min = b;
			rc = 0;
		}
	}
	free(line);
	fclose(f);
	return rc;
}

/*
 * Raises the readahead of the mount's backing device info.  The kernel
 * clamps the value when INIT is answered, so this waits until the reply
 * went out (handoff.h counts the INIT then).  The device comes from
 * mountinfo, not from a stat of the mount point: a request in flight
 * would keep an unmount busy.
 */
static void *mfsd_ra_main(void *arg)
{
	struct mfsd_ra_thread *t = arg;
	char path[MFSD_SYSFS_PATH_MAX];
	unsigned maj, min;
	FILE *f;

	for (unsigned i = 0; !atomic_load(&t->region->init_len); i++) {
		if (i == MFSD_RA_WAIT_POLLS)
			return NULL; /* no INIT: nothing to set */
		usleep(MFSD_RA_WAIT_POLL_US);
	}
	if (mfsd_mount_dev(t->mountpoint, &maj, &min) < 0)
		return NULL;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb",
		 maj, min);
	f = fopen(path, "w");
	if (f) {
		bool ok = fprintf(f, "%u\n", t->read_ahead_kb) > 0;

		if (fclose(f) == 0 && ok) {
			mfsd_log(MFSD_LOG_DEBUG, "%s = %u", path,
				 t->read_ahead_kb);
			return NULL;
		}
	}
	/* Not root, or no sysfs: the kernel's default still works. */
	mfsd_log(MFSD_LOG_INFO, "cannot set %s to %u (%s)", path,
		 t->read_ahead_kb, strerror(errno));
	return NULL;
}

/* Starts the readahead thread, detached (the serving process may end
 * while it waits for INIT).  @t must outlive it. */
static void mfsd_ra_start(struct mfsd_ra_thread *t,
			  const struct mfsd_options *opt,
			  struct mfsd_handoff_region *region)
{
	t->region = region;
	t->mountpoint = opt->mountpoint;
	t->read_ahead_kb = opt->read_ahead_kb;
	if (opt->read_ahead_kb == 0)
		return;
	t->started = pthread_create(&t->tid, NULL, mfsd_ra_main, t) == 0;
	if (t->started)
		pthread_detach(t->tid);
}

/* Runs the multithreaded loop until a signal or unmount. */
static int mfsd_loop(struct fuse_session *se, const struct mfsd_options *opt)
{
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	int rc;

	if (!cfg)
		return -ENOMEM;
	fuse_loop_cfg_set_max_threads(cfg, opt->threads);
	/* Keep the workers: creating threads per burst costs more than
	 * their idle stacks. */
	fuse_loop_cfg_set_idle_threads(cfg, opt->threads);
	rc = fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return rc;
}

/* How many containers may be open at once: the descriptor limit less
 * what the daemon needs for itself. */
static size_t mfsd_fd_budget(const struct mfsd_options *opt)
{
	size_t reserve = MFSD_FD_RESERVE + MFSD_FD_PER_THREAD * opt->threads;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return 0;
	if (rl.rlim_cur <= reserve + 1) {
		mfsd_log(MFSD_LOG_WARNING, "the descriptor limit (%llu) leaves "
			 "room for one container only; raise it (ulimit -n, "
			 "LimitNOFILE=)", (unsigned long long)rl.rlim_cur);
		return 1;
	}
	return (size_t)rl.rlim_cur - reserve;
}

/* An mfsd_loader_fn: refreshes one store entry. */
static void mfsd_load_name(void *arg, const char *name)
{
	struct mfsd_ctx *ctx = arg;
	bool notify = atomic_load(&ctx->notify);

	(void)mfsd_follow_refresh(ctx->table, name,
				  notify ? mfsd_watch_post : NULL, &ctx->watch);
}

/* An mfsd_name_fn: queues a name of the initial scan (done here if it
 * cannot be queued). */
static void mfsd_scan_name(void *arg, const char *name)
{
	struct mfsd_ctx *ctx = arg;

	if (mfsd_loader_push(&ctx->loader, name) < 0)
		mfsd_load_name(ctx, name);
}

/* Loads the store on the loader's threads and says what came of it. */
static int mfsd_initial_scan(struct mfsd_ctx *ctx)
{
	struct mfsd_table_counts sc;
	struct mfsd_skip_counts k;
	int rc = mfsd_follow_scan_names(ctx->table, mfsd_scan_name, ctx);

	/* The scan is done when this returns (the mount then answers with
	 * the whole store). */
	mfsd_loader_drain(&ctx->loader);
	if (rc < 0) {
		mfsd_log(MFSD_LOG_ERR, "cannot read store %s: %s",
			 ctx->opt.store_dir, strerror(-rc));
		return rc;
	}
	mfsd_table_mark_loaded(ctx->table);
	mfsd_table_counts(ctx->table, &sc);
	mfsd_follow_skip_counts(ctx->table, &k);
	mfsd_log(MFSD_LOG_INFO, "%zu models loaded from %s, %zu skipped",
		 sc.published, ctx->opt.store_dir, k.skipped - k.transient);
	if (k.waiting)
		mfsd_log(MFSD_LOG_WARNING, "%zu containers wait for a file "
			 "descriptor: %zu are open, the most the descriptor "
			 "limit allows (raise it with ulimit -n or "
			 "LimitNOFILE=); they load as descriptors are freed",
			 k.waiting, ctx->table->fd_budget);
	if (k.transient > k.waiting)
		mfsd_log(MFSD_LOG_WARNING, "%zu containers could not be loaded "
			 "for now (see above); they are retried",
			 k.transient - k.waiting);
	return 0;
}

/*
 * On a successor: rebuilds the models and open handles the predecessor
 * recorded, before the store is scanned again (which then applies what
 * changed meanwhile, telling the kernel).  0 or a negative errno.
 */
static int mfsd_takeover(struct mfsd_ctx *ctx, const struct mfsd_child *c)
{
	struct mfsd_model **all;
	ssize_t n;
	int rc = mfsd_handoff_adopt_models(ctx->table, c->fds, c->nfds);

	if (rc == 0)
		rc = mfsd_ops_adopt_handles(ctx);
	if (rc < 0) {
		mfsd_log(MFSD_LOG_ERR, "takeover: %s", strerror(-rc));
		return rc;
	}
	/* A model left with no count (its last release was read but not
	 * answered, say) is freed now. */
	n = mfsd_table_get_all(ctx->table, &all);
	if (n > 0)
		mfsd_table_put_all(ctx->table, all, (size_t)n);
	else if (n == 0)
		free(all);
	/* The kernel knows the models: changes found by the scan are
	 * notified. */
	atomic_store(&ctx->notify, true);
	return 0;
}

static int mfsd_ctx_init(struct mfsd_ctx *ctx, const struct mfsd_child *c)
{
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &ctx->started);
	rc = mfsd_cache_init(&ctx->cache, ctx->opt.cache_bytes);
	if (rc < 0)
		return rc;
	rc = mfsd_table_open(&ctx->table, ctx->opt.store_dir, &ctx->cache);
	if (rc < 0) {
		mfsd_log(MFSD_LOG_ERR, "cannot read store %s: %s",
			 ctx->opt.store_dir, strerror(-rc));
		return rc;
	}
	ctx->table->fd_budget = mfsd_fd_budget(&ctx->opt);
	ctx->table->handoff = ctx->handoff;
	ctx->table->remote = ctx->remote;
	/* Before any container takes a descriptor, and before the scan so
	 * that no change is missed; the thread starts once the session can
	 * carry notifications. */
	rc = mfsd_watch_init(&ctx->watch, ctx->table, ctx->opt.page_budget);
	if (rc < 0)
		return rc;
	ctx->watching = true;
	ctx->table->fd_freed = mfsd_watch_fd_freed;
	ctx->table->fd_freed_arg = &ctx->watch;
	rc = mfsd_loader_init(&ctx->loader, mfsd_load_name, ctx,
			      MFSD_LOADER_MAX_THREADS);
	if (rc < 0)
		return rc;
	ctx->loading = true;
	ctx->watch.loader = &ctx->loader;
	if (c->adopt) {
		rc = mfsd_takeover(ctx, c);
		if (rc < 0)
			return rc;
	}
	rc = mfsd_initial_scan(ctx);
	if (rc < 0)
		return rc;
	atomic_store(&ctx->notify, true);
	ctx->data.cache = &ctx->cache;
	ctx->data.stats = &ctx->stats;
	ctx->data.io = ctx->opt.io;
	return 0;
}

static void mfsd_ctx_fini(struct mfsd_ctx *ctx)
{
	if (ctx->watching && ctx->watch.started) {
		/* The watcher could not be stopped: it may still use the
		 * store, so the process exits without freeing it. */
		mfsd_log(MFSD_LOG_WARNING, "watcher thread did not stop");
		return;
	}
	/* Loader threads use the store and post to the watcher. */
	if (ctx->loading)
		mfsd_loader_destroy(&ctx->loader);
	if (ctx->watching)
		mfsd_watch_destroy(&ctx->watch);
	mfsd_table_close(ctx->table);
	/* After the table: its models hold references to cache objects. */
	mfsd_remote_close(ctx->remote);
	mfsd_cache_destroy(&ctx->cache);
}

/* The notifier of the watcher thread: libfuse's notify calls on the
 * session @arg. */
static int mfsd_notify_inval_entry(void *arg, uint64_t parent,
				   const char *name)
{
	return fuse_lowlevel_notify_inval_entry(arg, (fuse_ino_t)parent, name,
						strlen(name));
}

static int mfsd_notify_delete(void *arg, uint64_t parent, uint64_t child,
			      const char *name)
{
	return fuse_lowlevel_notify_delete(arg, (fuse_ino_t)parent,
					   (fuse_ino_t)child, name,
					   strlen(name));
}

static int mfsd_notify_inval_inode(void *arg, uint64_t ino, int64_t off,
				   int64_t len)
{
	return fuse_lowlevel_notify_inval_inode(arg, (fuse_ino_t)ino,
						(off_t)off, (off_t)len);
}

/* Starts the watcher thread on session @se, which must exist first (the
 * thread sends notifications through it).  A failure is logged; the
 * mount still serves, and lookups still find new models. */
static void mfsd_watch_begin(struct mfsd_ctx *ctx, struct fuse_session *se)
{
	const struct mfsd_notifier n = {
		.inval_entry = mfsd_notify_inval_entry,
		.delete_entry = mfsd_notify_delete,
		.inval_inode = mfsd_notify_inval_inode,
		.arg = se,
	};
	int rc = mfsd_watch_start(&ctx->watch, &n);

	if (rc < 0)
		mfsd_log(MFSD_LOG_ERR, "cannot start the watcher thread: %s",
			 strerror(-rc));
}

/*
 * Raises the soft limit on descriptors to the hard one: the daemon keeps
 * one per model, including removed models still held, and the usual
 * soft limit of 1024 would refuse models long before memory runs out.
 */
static void mfsd_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * Decoded LZ4 chunks (256 KiB by default) and chunk check buffers are
 * allocated and freed at the rate of reads.  Above glibc's initial mmap
 * threshold each one could be a fresh mapping, paid for with page faults,
 * zeroing and, when freed, a TLB shootdown on every CPU running a daemon
 * thread; trimming the heap back costs the same.  Keeping them on a heap
 * that holds about the chunk cache's size halves the daemon's page
 * faults in a cold scan of 1 GiB of LZ4 arrays (41,000 -> 21,000).
 */
static void mfsd_tune_malloc(size_t cache_bytes)
{
	size_t trim = cache_bytes + MFSD_MALLOC_TRIM_SLACK;

	if (trim > INT_MAX || trim < cache_bytes)
		trim = INT_MAX;
	(void)mallopt(M_MMAP_THRESHOLD, (int)MFSD_MALLOC_MMAP_THRESHOLD);
	(void)mallopt(M_TRIM_THRESHOLD, (int)trim);
}

/* Set by the upgrade signal: the session ends so that a successor takes
 * over; nothing is torn down. */
static volatile sig_atomic_t mfsd_draining;
/* The session the supervisor's signals end (set before they are
 * handled). */
static struct fuse_session *mfsd_signal_session;

/* SIGUSR1 (stop for good) or SIGUSR2 (drain for an upgrade) in a serving
 * child: stop reading requests; those read are finished, those not read
 * stay in the kernel's queue. */
static void mfsd_end_handler(int signo)
{
	if (signo == SIGUSR2)
		mfsd_draining = 1;
	if (mfsd_signal_session)
		fuse_session_exit(mfsd_signal_session);
}

/*
 * The signals of a serving child.  Only the supervisor ends it on
 * purpose, with SIGUSR1 (stop) or SIGUSR2 (drain); any other signal
 * that ends it, SIGTERM included, is a death the supervisor recovers
 * from.  SIGINT and SIGHUP belong to the supervisor (a terminal's ^C
 * reaches both).  0 or -1.
 */
static int mfsd_child_signals(struct fuse_session *se)
{
	struct sigaction sa = {.sa_handler = mfsd_end_handler};

	mfsd_signal_session = se;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a worker blocked reading the device returns and
	 * sees the session end. */
	if (sigaction(SIGUSR1, &sa, NULL) < 0 ||
	    sigaction(SIGUSR2, &sa, NULL) < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	return 0;
}

/* On a successor: asks the kernel to send again the requests the
 * predecessor read but did not answer. */
static void mfsd_resend(const struct mfsd_child *c)
{
	int rc = mfsd_handoff_resend(c->fuse_fd);

	if (rc < 0)
		mfsd_log(MFSD_LOG_ERR, "takeover: FUSE_NOTIFY_RESEND failed "
			 "(%s): requests in flight at the takeover stay "
			 "unanswered", strerror(-rc));
	else
		mfsd_log(MFSD_LOG_INFO, "takeover: requests in flight sent "
			 "again");
}

/* Says once whether a serving process that dies can be taken over. */
static void mfsd_report_resend(const struct mfsd_child *c)
{
	uint32_t minor = mfsd_handoff_kernel_minor(c->region);

	if (c->replay || minor == 0)
		return;
	if (minor < MFSD_FUSE_RESEND_MINOR)
		mfsd_log(MFSD_LOG_WARNING, "the kernel's FUSE protocol is 7.%u: "
			 "it lacks FUSE_NOTIFY_RESEND (7.%u, Linux 6.9), so "
			 "if the serving process dies the mount ends with it",
			 minor, MFSD_FUSE_RESEND_MINOR);
}

/* An mfsd_exited_fn: the session loop is ending (a stop, an unmount) and
 * fetches may be cancelled; not while draining for an upgrade, when the
 * requests read are still to be answered. */
static bool mfsd_session_exited(void *se)
{
	return fuse_session_exited(se) != 0 && !mfsd_draining;
}

/* Runs the session on the supervisor's device.  Returns the child's
 * exit status; a drained child exits here, leaving its records. */
static int mfsd_serve(struct mfsd_ctx *ctx, const struct mfsd_child *c)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	static struct mfsd_ra_thread ra;
	struct fuse_session *se = NULL;
	int status = MFSD_CHILD_EXIT_FAILED;
	/* Its own copy: the session closes it. */
	int fd = fcntl(c->fuse_fd, F_DUPFD_CLOEXEC, 0);

	if (fd < 0 || mfsd_fuse_args(&ctx->opt, &args) < 0)
		goto out_args;
	se = fuse_session_new(&args, &mfsd_ops, sizeof(mfsd_ops), ctx);
	if (!se)
		goto out_args;
	if (fuse_session_custom_io(se, &mfsd_handoff_io, fd) < 0)
		goto out_session;
	fd = -1;
	if (mfsd_child_signals(se) < 0)
		goto out_signals;
	if (c->resend)
		mfsd_resend(c);
	mfsd_log(MFSD_LOG_INFO, "serving %s at %s (%u threads, pid %d)",
		 ctx->opt.store_dir, ctx->opt.mountpoint, ctx->opt.threads,
		 (int)getpid());
	if (!c->replay)
		mfsd_ra_start(&ra, &ctx->opt, c->region);
	mfsd_watch_begin(ctx, se);
	if (ctx->remote)
		mfsd_remote_start(ctx->remote, mfsd_session_exited, se);
	mfsd_handoff_ready(ctx->handoff);
	/* The loop returns the number of the signal that ended it, which is
	 * a clean shutdown, or a negative errno. */
	status = mfsd_loop(se, &ctx->opt) < 0 ? MFSD_CHILD_EXIT_FAILED
					      : MFSD_CHILD_EXIT_STOPPED;
	if (mfsd_draining) {
		/* The records stay as they are for the successor; the
		 * requests read are answered (the loop ended after them). */
		mfsd_log(MFSD_LOG_INFO, "drained for an upgrade");
		mfsd_log_close();
		_exit(MFSD_CHILD_EXIT_DRAINED);
	}
	mfsd_report_resend(c);
	/* Fetches in progress fail now instead of at their deadline. */
	mfsd_remote_stop(ctx->remote);
	(void)mfsd_watch_stop(&ctx->watch);
	mfsd_ops_close_handles(ctx);
out_signals:
	mfsd_signal_session = NULL;
out_session:
	fuse_session_destroy(se);
out_args:
	if (fd >= 0)
		close(fd);
	fuse_opt_free_args(&args);
	return status;
}

/* Detaches a background child from the terminal once it serves (the
 * supervisor does the same). */
static void mfsd_child_detach(const struct mfsd_ctx *ctx)
{
	int fd;

	if (ctx->opt.foreground)
		return;
	fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		return;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

/* An mfsd_serve_fn: the serving process.  Returns its exit status. */
static int mfsd_serve_child(void *arg, const struct mfsd_child *c)
{
	struct mfsd_ctx *ctx = arg;
	struct mfsd_handoff ho;
	int status = MFSD_CHILD_EXIT_FAILED;

	if (mfsd_handoff_init(&ho, c->region, c->sock, c->replay) < 0) {
		mfsd_log(MFSD_LOG_ERR, "out of memory");
		return status;
	}
	ctx->handoff = &ho;
	/* Here, not in the supervisor: its threads start with the session,
	 * and a fork keeps no threads. */
	if (ctx->opt.remote) {
		if (mfsd_remote_open(&ctx->remote, &ctx->opt.ropt) < 0)
			goto out_handoff;
		ctx->opt.store_dir = mfsd_remote_store_dir(ctx->remote);
	}
	/* Before any thread exists: they all inherit the blocked signal. */
	if (mfsd_lease_setup() < 0)
		mfsd_log(MFSD_LOG_WARNING, "cannot block the lease signal: "
			 "every chunk is re-verified each time it is served");
	if (mfsd_ctx_init(ctx, c) == 0) {
		mfsd_child_detach(ctx);
		status = mfsd_serve(ctx, c);
	}
	mfsd_ctx_fini(ctx);
out_handoff:
	mfsd_handoff_destroy(&ho);
	mfsd_log_close();
	return status;
}

int main(int argc, char **argv)
{
	struct mfsd_ctx ctx = {
		.opt = {
			.threads = mfsd_default_threads(),
			.cache_bytes = (size_t)MFSD_DEFAULT_CACHE_MB * MFSD_MB,
			.read_ahead_kb = MFSD_DEFAULT_READ_AHEAD_KB,
			.max_read = MFSD_DEFAULT_MAX_READ,
			.io = MFSD_IO_SPLICE,
			.takeover = true,
			.ropt = {
				.cache_dir = MFSD_REMOTE_CACHE_DIR,
				.poll_s = MFSD_REMOTE_POLL_S,
				.connections = MFSD_REMOTE_CONNECTIONS,
				.deadline_ms = MFSD_REMOTE_DEADLINE_S *
					       MFSD_MS_PER_S,
			},
		},
	};
	struct fuse_args margs = FUSE_ARGS_INIT(0, NULL);
	struct mfsd_supervise_opts so = {.argv = argv};
	char *store = NULL, *mnt = NULL;
	int status = MFSD_EXIT_FAIL, adopted;

	switch (mfsd_parse_args(argc, argv, &ctx.opt)) {
	case MFSD_ARGS_EXIT_OK:
		return MFSD_EXIT_OK;
	case MFSD_ARGS_USAGE:
		fprintf(stderr,
			"usage: %s [-f] [-d] [-o OPTIONS] [--threads N] "
			"[--cache-budget SIZE] [remote options]\n"
			"       STORE_DIR|URL MOUNTPOINT\n"
			"(try '%s --help')\n",
			argv[0], argv[0]);
		return MFSD_EXIT_USAGE;
	case MFSD_ARGS_RUN:
		break;
	}
	adopted = mfsd_supervise_adopted(&mnt);
	if (adopted < 0 ||
	    (!ctx.opt.remote &&
	     mfsd_check_dir("STORE_DIR", ctx.opt.store_dir, &store) < 0) ||
	    (!adopted && mfsd_check_mountpoint(ctx.opt.mountpoint, &mnt) < 0))
		goto out;
	if (store)
		ctx.opt.store_dir = store;
	/* A remote store's reads wait for the network, not for a CPU: as
	 * many threads as connections keep the connections busy. */
	if (ctx.opt.remote && !ctx.opt.threads_given &&
	    ctx.opt.threads < ctx.opt.ropt.connections)
		ctx.opt.threads = ctx.opt.ropt.connections;
	ctx.opt.mountpoint = mnt;
	mfsd_log_init(ctx.opt.foreground, ctx.opt.debug);
	/* Inherited by the serving process: before a remote store opens
	 * its cache files. */
	mfsd_raise_nofile();
	mfsd_tune_malloc(ctx.opt.cache_bytes);
	if (mfsd_fuse_args(&ctx.opt, &margs) < 0)
		goto out_log;
	so.mountpoint = mnt;
	so.foreground = ctx.opt.foreground;
	so.takeover = ctx.opt.takeover;
	so.mount_args = &margs;
	status = mfsd_supervise(&so, mfsd_serve_child, &ctx);
out_log:
	fuse_opt_free_args(&margs);
	mfsd_log_close();
out:
	free(store);
	free(mnt);
	return status;
}
