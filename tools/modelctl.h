/*
 * modelctl.h - what the modelctl subcommands share: exit statuses, the
 * command table entry, error reporting and small I/O helpers.
 */
#ifndef CTL_MODELCTL_H
#define CTL_MODELCTL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "modelfs.h"

/*
 * Exit statuses, the same for every subcommand (and listed by --help):
 * scripts tell "the model is bad" (1) from "I called it wrong" (2).
 */
enum {
	CTL_EXIT_OK = 0,    /* the operation succeeded */
	CTL_EXIT_FAIL = 1,  /* the operation failed (bad input, I/O, ...) */
	CTL_EXIT_USAGE = 2, /* unknown command/option, missing argument */
};

/* Longest decimal uint64_t, with the NUL. */
#define CTL_U64_CHARS 21

/* Value getopt_long returns for an option that has no short form. */
enum { CTL_OPT_LONG_ONLY = 256 };

struct ctl_command;

/* A subcommand: parses its own options from argv (argv[0] = its name). */
typedef int (*ctl_handler)(const struct ctl_command *self, int argc,
			   char **argv);

/* One row of the dispatch table in modelctl.c. */
struct ctl_command {
	const char *name;
	ctl_handler run;
	const char *summary; /* one line for the command list */
	const char *usage;   /* the full text of "modelctl help NAME" */
};

/* Handlers and help texts of the subcommands, one file per group. */
int ctl_cmd_pack(const struct ctl_command *self, int argc, char **argv);
int ctl_cmd_inspect(const struct ctl_command *self, int argc, char **argv);
int ctl_cmd_verify(const struct ctl_command *self, int argc, char **argv);
int ctl_cmd_export(const struct ctl_command *self, int argc, char **argv);
extern const char ctl_usage_pack[];
extern const char ctl_usage_inspect[];
extern const char ctl_usage_verify[];
extern const char ctl_usage_export[];
int ctl_cmd_put(const struct ctl_command *self, int argc, char **argv);
int ctl_cmd_rm(const struct ctl_command *self, int argc, char **argv);
int ctl_cmd_ls(const struct ctl_command *self, int argc, char **argv);
int ctl_cmd_holders(const struct ctl_command *self, int argc, char **argv);
int ctl_cmd_gc(const struct ctl_command *self, int argc, char **argv);
int ctl_cmd_index(const struct ctl_command *self, int argc, char **argv);
int ctl_cmd_prefetch(const struct ctl_command *self, int argc, char **argv);
extern const char ctl_usage_put[];
extern const char ctl_usage_rm[];
extern const char ctl_usage_ls[];
extern const char ctl_usage_holders[];
extern const char ctl_usage_gc[];
extern const char ctl_usage_index[];
extern const char ctl_usage_prefetch[];

/* Room for the escape of any path: each byte may become "\xNN". */
#define CTL_TEXT_MAX (PATH_MAX * MFS_ESCAPE_MAX_EXPANSION + 1)

/* A buffer for ctl_text. */
struct ctl_text {
	char s[CTL_TEXT_MAX];
};

/*
 * @raw (a name from the store directory, .status, /proc or the command
 * line) as text that is safe to print: escaped as mfs_last_error() is
 * (control characters and invalid UTF-8; '\' kept), so a name reads the
 * same in a library message and around it.  Returns @t->s.
 */
const char *ctl_text(struct ctl_text *t, const char *raw);

/* Prints "modelctl: CMD: message\n" on stderr ("modelctl: message" for a
 * NULL @cmd, the tool itself), escaped by ctl_text so that no name in it
 * can break the line. */
void ctl_err(const struct ctl_command *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Prints the message as ctl_err does, then a hint to run --help, and
 * returns CTL_EXIT_USAGE, so usage errors read "return ctl_usage_error(...)".
 */
int ctl_usage_error(const struct ctl_command *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Handles what every subcommand's getopt loop shares: 'h' (--help) prints
 * the usage on stdout and gives CTL_EXIT_OK; '?' and ':' (unknown option,
 * missing argument) give CTL_EXIT_USAGE with a message.  Any other @opt
 * is a programming error reported as CTL_EXIT_USAGE too.
 */
int ctl_common_option(const struct ctl_command *cmd, int opt, char **argv);

/*
 * The message of a failed libmodelfs call that returned @rc: the library's
 * mfs_last_error(), or strerror(-rc) when the library left none.
 */
const char *ctl_lib_error(int rc);

/*
 * Prints @msg, a library message about the file @label, on @out as one
 * line that starts with "LABEL: " (the library's messages already do;
 * others get the prefix added).  Both are escaped by ctl_text.
 */
void ctl_print_about(FILE *out, const char *label, const char *msg);

/* An error about the file @label: "modelctl: CMD: " then ctl_print_about
 * on stderr. */
void ctl_err_about(const struct ctl_command *cmd, const char *label,
		   const char *msg);

/* Writes all @len bytes to @fd at its offset, retrying on EINTR and short
 * writes.  Returns 0 or -errno. */
int ctl_write_all(int fd, const void *buf, size_t len);

/*
 * Reads the whole regular file @path (at most @max bytes) into a malloc'd
 * buffer, NUL-terminated.  Returns 0, -EFBIG (larger than @max), -ENOMEM
 * or -errno of open/read.
 */
int ctl_read_file(const char *path, size_t max, char **out, size_t *len);

/* The last path component of @path without @suffix (if it ends with it),
 * malloc'd; NULL on ENOMEM. */
char *ctl_stem(const char *path, const char *suffix);

#endif /* CTL_MODELCTL_H */
