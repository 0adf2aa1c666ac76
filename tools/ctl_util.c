/*
 * ctl_util.c - error reporting, option errors and file helpers shared by
 * the modelctl subcommands.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "modelfs.h"
#include "modelctl.h"

/* First read size of ctl_read_file; it doubles from there. */
#define CTL_READ_STEP 4096u

const char *ctl_text(struct ctl_text *t, const char *raw)
{
	mfs_escape(t->s, sizeof(t->s), raw, strlen(raw),
		   MFS_ESCAPE_KEEP_BACKSLASH);
	return t->s;
}

static void ctl_verr(const struct ctl_command *cmd, const char *fmt,
		     va_list ap)
{
	char raw[CTL_TEXT_MAX];
	struct ctl_text t;

	/* Messages quote paths and keys from the command line and the
	 * store; escaping the whole line covers every caller.  Library
	 * messages in it are escaped already and stay as they are. */
	vsnprintf(raw, sizeof(raw), fmt, ap);
	fputs("modelctl: ", stderr);
	if (cmd)
		fprintf(stderr, "%s: ", cmd->name);
	fprintf(stderr, "%s\n", ctl_text(&t, raw));
}

void ctl_err(const struct ctl_command *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ctl_verr(cmd, fmt, ap);
	va_end(ap);
}

int ctl_usage_error(const struct ctl_command *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ctl_verr(cmd, fmt, ap);
	va_end(ap);
	if (cmd)
		fprintf(stderr, "Try 'modelctl %s --help'.\n", cmd->name);
	else
		fputs("Try 'modelctl --help'.\n", stderr);
	return CTL_EXIT_USAGE;
}

/* getopt's '?': an unknown option, or an argument given to a flag. */
static int ctl_bad_option(const struct ctl_command *cmd, char **argv)
{
	const char *arg = argv[optind - 1];

	if (strncmp(arg, "--", 2) != 0)
		return ctl_usage_error(cmd, "unknown option '-%c'", optopt);
	/* getopt_long sets optopt only for a known long option, and then the
	 * only way to get '?' is "--flag=value" on an option without one. */
	if (optopt != 0)
		return ctl_usage_error(cmd, "option '%s' takes no argument",
				       arg);
	return ctl_usage_error(cmd, "unknown option '%s'", arg);
}

int ctl_common_option(const struct ctl_command *cmd, int opt, char **argv)
{
	switch (opt) {
	case 'h':
		fputs(cmd->usage, stdout);
		return CTL_EXIT_OK;
	case ':':
		return ctl_usage_error(cmd, "option '%s' needs an argument",
				       argv[optind - 1]);
	case '?':
		return ctl_bad_option(cmd, argv);
	default:
		return ctl_usage_error(cmd, "option code %d is not handled",
				       opt);
	}
}

const char *ctl_lib_error(int rc)
{
	const char *msg = mfs_last_error();

	return msg && *msg ? msg : strerror(-rc);
}

void ctl_print_about(FILE *out, const char *label, const char *msg)
{
	/* The library names the file escaped: compare like with like. */
	struct ctl_text l, m;
	size_t n;

	label = ctl_text(&l, label);
	msg = ctl_text(&m, msg);
	n = strlen(label);
	if (strncmp(msg, label, n) == 0 && msg[n] == ':')
		fprintf(out, "%s\n", msg);
	else
		fprintf(out, "%s: %s\n", label, msg);
}

void ctl_err_about(const struct ctl_command *cmd, const char *label,
		   const char *msg)
{
	fprintf(stderr, "modelctl: %s: ", cmd->name);
	ctl_print_about(stderr, label, msg);
}

int ctl_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads @fd to its end into *@buf (grown as needed, *@cap bytes),
 * refusing more than @max bytes. */
static int ctl_read_to_end(int fd, size_t max, char **buf, size_t *cap,
			   size_t *len)
{
	for (;;) {
		ssize_t n;

		if (*len == *cap) {
			size_t cap2 = *cap ? *cap * 2 : CTL_READ_STEP;
			char *b2;

			if (*cap > max)
				return -EFBIG;
			b2 = realloc(*buf, cap2 + 1);
			if (!b2)
				return -ENOMEM;
			*buf = b2;
			*cap = cap2;
		}
		n = read(fd, *buf + *len, *cap - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return *len > max ? -EFBIG : 0;
		*len += (size_t)n;
	}
}

int ctl_read_file(const char *path, size_t max, char **out, size_t *len)
{
	struct stat st;
	char *buf = NULL;
	size_t cap = 0, n = 0;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto out_close;
	}
	/* Refuse a large regular file before reading it; pipes and other
	 * streams are capped while reading. */
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
		rc = -EFBIG;
		goto out_close;
	}
	rc = ctl_read_to_end(fd, max, &buf, &cap, &n);
	if (rc < 0)
		goto out_free;
	if (!buf) {
		buf = malloc(1);
		if (!buf) {
			rc = -ENOMEM;
			goto out_close;
		}
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	close(fd);
	return 0;

out_free:
	free(buf);
out_close:
	close(fd);
	return rc;
}

char *ctl_stem(const char *path, const char *suffix)
{
	const char *base = strrchr(path, '/');
	size_t n, slen = strlen(suffix);

	base = base ? base + 1 : path;
	n = strlen(base);
	if (n > slen && strcmp(base + n - slen, suffix) == 0)
		n -= slen;
	return strndup(base, n);
}
