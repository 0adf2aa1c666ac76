/*
 * ctl_store.h - what the store subcommands (put, rm, ls, holders, gc)
 * share: checking a store directory, telling a modelfs mount from a
 * directory, and reading the daemon's /.status.
 */
#ifndef CTL_STORE_H
#define CTL_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "modelctl.h"

/*
 * Checks that @dir is an existing store directory, not a modelfs mount
 * (whose store directory is where models go).  Reports the problem as
 * @cmd and returns CTL_EXIT_FAIL; CTL_EXIT_OK if fine.
 */
int ctl_check_store_dir(const struct ctl_command *cmd, const char *dir);

/* True if @name is a container name the daemon would serve: not hidden,
 * "*.mfs" with something before the suffix (the key, still unchecked). */
bool ctl_is_container_name(const char *name);

/*
 * Sets *@mount to whether a modelfs daemon serves @path.  A modelfs mount
 * whose daemon has exited is reported (as @cmd, with how to recover) and
 * gives CTL_EXIT_FAIL; otherwise CTL_EXIT_OK.
 */
int ctl_mount_state(const struct ctl_command *cmd, const char *path,
		    bool *mount);

/*
 * The arguments MOUNTPOINT KEY at argv[optind] of a command that takes
 * only them: reports a missing or extra argument or an invalid key
 * (CTL_EXIT_USAGE), a path no live modelfs daemon serves (CTL_EXIT_FAIL);
 * CTL_EXIT_OK.
 */
int ctl_mount_key_args(const struct ctl_command *cmd, int argc, char **argv);

/*
 * Reads and parses MOUNT/.status into *@out (a JSON object; caller
 * json_decref's it).  Reports the failure itself (as @cmd) and returns
 * CTL_EXIT_FAIL; CTL_EXIT_OK on success.
 */
int ctl_load_status(const struct ctl_command *cmd, const char *mount,
		    json_t **out);

/*
 * A JSON string of @raw, a name from outside (store directory, /proc,
 * command line): verbatim if it is valid UTF-8 (JSON escapes control
 * characters), else escaped by ctl_text, as the daemon's /.status does;
 * json_string would refuse it.  NULL only when out of memory.
 */
json_t *ctl_json_text(const char *raw);

/* String member @name of @obj escaped by ctl_text into @t, for printing;
 * "?" if it is missing or not a string. */
const char *ctl_json_text_value(const json_t *obj, const char *name,
				struct ctl_text *t);

/* Integer member @name of @obj, or @dflt if missing or not an integer. */
int64_t ctl_json_int(const json_t *obj, const char *name, int64_t dflt);

#endif /* CTL_STORE_H */
