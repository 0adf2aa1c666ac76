/*
 * cmd_prefetch.c - "modelctl prefetch": pulls one model of a mount that
 * serves a store at a URL into the daemon's disk cache, by reading every
 * array file through the mount, with a progress line.
 *
 * Reading through the mount is what makes the daemon fetch, check and
 * cache each chunk; the mount's own pages of what was read are dropped as
 * the reading goes, so a prefetch fills the disk cache, not memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "modelfs.h"
#include "modelctl.h"
#include "ctl_store.h"

const char ctl_usage_prefetch[] =
	"Usage: modelctl prefetch [--quiet] MOUNTPOINT KEY\n"
	"\n"
	"Pulls model KEY of the modelfs mount MOUNTPOINT, which serves a\n"
	"store at a URL (modelfs URL MOUNTPOINT), into the daemon's disk\n"
	"cache: every array file is read through the mount, so that each\n"
	"chunk is fetched, checked and cached, and later reads need no\n"
	"origin.  A progress line shows the bytes read so far (on a\n"
	"terminal); a last line says how many bytes and how long.\n"
	"\n"
	"Options:\n"
	"  --quiet     no progress and no summary line\n"
	"  -h, --help  show this help\n"
	"\n"
	"Exit status: 0 every byte read, 1 failed (not a modelfs mount, a\n"
	"mount of a local store, no model KEY, a read failed: the origin\n"
	"could not deliver it within the daemon's deadline), 2 usage error.\n";

enum { CTL_OPT_QUIET = CTL_OPT_LONG_ONLY };

static const struct option ctl_prefetch_options[] = {
	{"quiet", no_argument, NULL, CTL_OPT_QUIET},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* Bytes read at a time: as much as the daemon fetches in one request. */
#define CTL_PREFETCH_BLOCK ((size_t)8 << 20)
/* Progress updates at most this often. */
#define CTL_PROGRESS_NS 200000000LL
#define CTL_NS_PER_S 1000000000LL
#define CTL_MIB ((double)(1 << 20))

struct ctl_progress {
	const struct ctl_command *cmd;
	const char *key;
	uint64_t done;
	uint64_t total;
	long long started; /* ns */
	long long shown;   /* ns of the last progress line */
	bool tty;
	bool quiet;
};

static long long ctl_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * CTL_NS_PER_S + ts.tv_nsec;
}

/* Redraws the progress line (terminal only, at most every 200 ms). */
static void ctl_progress_show(struct ctl_progress *p, bool last)
{
	long long now = ctl_now_ns();

	if (p->quiet || !p->tty || (!last && now - p->shown < CTL_PROGRESS_NS))
		return;
	p->shown = now;
	fprintf(stderr, "\r%s: %.1f of %.1f MiB (%.0f %%)%s", p->key,
		p->done / CTL_MIB, p->total / CTL_MIB,
		p->total ? 100.0 * (double)p->done / (double)p->total : 100.0,
		last ? "\n" : "");
}

/* Reads file @path whole, dropping its pages behind. */
static int ctl_prefetch_file(struct ctl_progress *p, const char *path,
			     char *buf)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct ctl_text t;
	uint64_t off = 0;
	ssize_t n;

	if (fd < 0) {
		ctl_err(p->cmd, "%s: %s", ctl_text(&t, path), strerror(errno));
		return CTL_EXIT_FAIL;
	}
	while ((n = pread(fd, buf, CTL_PREFETCH_BLOCK, (off_t)off)) > 0) {
		(void)posix_fadvise(fd, (off_t)off, n, POSIX_FADV_DONTNEED);
		off += (uint64_t)n;
		p->done += (uint64_t)n;
		ctl_progress_show(p, false);
	}
	if (n < 0) {
		if (p->tty && !p->quiet)
			fputc('\n', stderr);
		ctl_err(p->cmd, "%s: reading at byte %llu: %s%s",
			ctl_text(&t, path), (unsigned long long)off,
			strerror(errno),
			errno == EIO ? " (the origin did not deliver it: see "
				       "the daemon's log)" : "");
	}
	close(fd);
	return n < 0 ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}

/* The array files of @key's manifest, with their sizes summed into
 * p->total.  NULL (reported) on failure. */
static json_t *ctl_prefetch_files(struct ctl_progress *p, const char *mount)
{
	char path[PATH_MAX];
	json_error_t err;
	json_t *man, *arrays, *a;
	size_t i;

	snprintf(path, sizeof(path), "%s/%s/%s", mount, p->key,
		 MFS_MANIFEST_FILE);
	man = json_load_file(path, 0, &err);
	if (!man) {
		struct ctl_text t;

		ctl_err(p->cmd, "no model '%s' on %s (%s)", p->key,
			ctl_text(&t, mount), err.text);
		return NULL;
	}
	arrays = json_object_get(man, "arrays");
	json_array_foreach(arrays, i, a)
		p->total += (uint64_t)(ctl_json_int(a, "data_offset", 0) +
				       ctl_json_int(a, "raw_size", 0));
	json_incref(arrays);
	json_decref(man);
	return arrays;
}

/* Checks that @mount serves a store at a URL. */
static int ctl_check_remote(const struct ctl_command *cmd, const char *mount)
{
	json_t *st;
	int rc = ctl_load_status(cmd, mount, &st);
	struct ctl_text t;

	if (rc != CTL_EXIT_OK)
		return rc;
	if (!json_object_get(st, MFS_ST_REMOTE)) {
		ctl_err(cmd, "%s serves a local store: its models need no "
			"prefetch", ctl_text(&t, mount));
		rc = CTL_EXIT_FAIL;
	}
	json_decref(st);
	return rc;
}

static int ctl_prefetch_run(const struct ctl_command *cmd, const char *mount,
			    const char *key, bool quiet)
{
	struct ctl_progress p = {.cmd = cmd, .key = key, .quiet = quiet,
				 .tty = isatty(STDERR_FILENO)};
	char path[PATH_MAX], *buf;
	json_t *arrays, *a;
	int rc = ctl_check_remote(cmd, mount);
	size_t i;

	if (rc != CTL_EXIT_OK)
		return rc;
	arrays = ctl_prefetch_files(&p, mount);
	if (!arrays)
		return CTL_EXIT_FAIL;
	buf = malloc(CTL_PREFETCH_BLOCK);
	if (!buf) {
		json_decref(arrays);
		ctl_err(cmd, "out of memory");
		return CTL_EXIT_FAIL;
	}
	p.started = ctl_now_ns();
	json_array_foreach(arrays, i, a) {
		struct ctl_text t;

		snprintf(path, sizeof(path), "%s/%s/%s", mount, key,
			 ctl_json_text_value(a, "file", &t));
		rc = ctl_prefetch_file(&p, path, buf);
		if (rc != CTL_EXIT_OK)
			break;
	}
	if (rc == CTL_EXIT_OK) {
		ctl_progress_show(&p, true);
		if (!quiet)
			printf("%s: %llu bytes in %.2f s\n", key,
			       (unsigned long long)p.done,
			       (double)(ctl_now_ns() - p.started) / CTL_NS_PER_S);
	}
	free(buf);
	json_decref(arrays);
	return rc;
}

int ctl_cmd_prefetch(const struct ctl_command *self, int argc, char **argv)
{
	bool quiet = false;
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", ctl_prefetch_options,
				  NULL)) != -1) {
		if (opt != CTL_OPT_QUIET)
			return ctl_common_option(self, opt, argv);
		quiet = true;
	}
	rc = ctl_mount_key_args(self, argc, argv);
	if (rc != CTL_EXIT_OK)
		return rc;
	return ctl_prefetch_run(self, argv[optind], argv[optind + 1], quiet);
}
