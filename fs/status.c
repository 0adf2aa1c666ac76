/*
 * status.c - /.status and the usage xattrs (see status.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "status.h"

/* /proc/PID/comm holds at most 16 bytes (TASK_COMM_LEN) plus a newline. */
#define MFSD_COMM_MAX 64
#define MFSD_PROC_PATH_MAX 64
/* "PID," per holder: a pid has at most 10 digits. */
#define MFSD_PID_TEXT_MAX 12
#define MFSD_NSEC_PER_SEC 1e9

/* Command name of @pid, or "" once the process is gone. */
static void mfsd_comm(pid_t pid, char *buf, size_t len)
{
	char path[MFSD_PROC_PATH_MAX];
	ssize_t n = -1;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/comm", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, len - 1);
		close(fd);
	}
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

/* Sets @key of @obj to @val, taking the reference; false on failure. */
static bool mfsd_set(json_t *obj, const char *key, json_t *val)
{
	return val && json_object_set_new(obj, key, val) == 0;
}

static json_t *mfsd_json_u64(uint64_t v)
{
	return json_integer((json_int_t)v);
}

static json_t *mfsd_status_holders_json(const struct mfsd_model_usage *u)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < u->nholders; i++) {
		char comm[MFSD_COMM_MAX];
		json_t *h = json_object();

		mfsd_comm(u->holders[i].pid, comm, sizeof(comm));
		if (!h || !mfsd_set(h, "pid", json_integer(u->holders[i].pid)) ||
		    !mfsd_set(h, "comm", json_string(comm)) ||
		    !mfsd_set(h, "handles", mfsd_json_u64(u->holders[i].handles)) ||
		    json_array_append_new(arr, h) < 0) {
			json_decref(h);
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static json_t *mfsd_status_model(struct mfsd_store *s, struct mfsd_model *m)
{
	struct mfsd_model_usage u;
	json_t *o = json_object();
	bool ok;

	if (!o || mfsd_store_usage(s, m, &u) < 0) {
		json_decref(o);
		return NULL;
	}
	ok = mfsd_set(o, "key", json_string(m->key)) &&
	     mfsd_set(o, "file", json_string(m->file_name)) &&
	     mfsd_set(o, "generation", mfsd_json_u64(m->gen)) &&
	     mfsd_set(o, "in_store", json_boolean(u.in_store)) &&
	     mfsd_set(o, "arrays", mfsd_json_u64(m->narrays)) &&
	     mfsd_set(o, "raw_size", mfsd_json_u64(m->raw_size)) &&
	     mfsd_set(o, "stored_size", mfsd_json_u64(m->stored_size)) &&
	     mfsd_set(o, "file_size",
		      mfsd_json_u64(mfs_container_file_size(m->container))) &&
	     mfsd_set(o, "open_handles", mfsd_json_u64(u.nopen)) &&
	     mfsd_set(o, "lookups", mfsd_json_u64(u.nlookup)) &&
	     mfsd_set(o, "holders", mfsd_status_holders_json(&u));
	free(u.holders);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Every live model (published or still held after removal). */
static json_t *mfsd_status_models(struct mfsd_store *s, uint64_t *nopen)
{
	struct mfsd_model **models;
	ssize_t n = mfsd_store_get_all(s, &models);
	json_t *arr = n >= 0 ? json_array() : NULL;

	for (ssize_t i = 0; arr && i < n; i++) {
		json_t *o = mfsd_status_model(s, models[i]);

		if (o)
			*nopen += json_integer_value(
				json_object_get(o, "open_handles"));
		if (!o || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	if (n >= 0)
		mfsd_store_put_all(s, models, (size_t)n);
	return arr;
}

static json_t *mfsd_status_skipped(const struct mfsd_store *s)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < s->nskipped; i++) {
		json_t *o = json_object();

		if (!o || !mfsd_set(o, "file", json_string(s->skipped[i].file_name)) ||
		    !mfsd_set(o, "error", json_string(s->skipped[i].reason)) ||
		    json_array_append_new(arr, o) < 0) {
			json_decref(o);
			json_decref(arr);
			arr = NULL;
		}
	}
	return arr;
}

static uint64_t mfsd_load(_Atomic uint64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static json_t *mfsd_status_totals(struct mfsd_ctx *ctx, size_t nmodels,
				  uint64_t nopen)
{
	struct mfsd_cache_stats cs;
	json_t *o = json_object();
	bool ok;

	mfsd_cache_get_stats(&ctx->cache, &cs);
	ok = o && mfsd_set(o, "models", mfsd_json_u64(nmodels)) &&
	     mfsd_set(o, "open_handles", mfsd_json_u64(nopen)) &&
	     mfsd_set(o, "bytes_served",
		      mfsd_json_u64(mfsd_load(&ctx->stats.bytes_served))) &&
	     mfsd_set(o, "chunks_verified",
		      mfsd_json_u64(mfsd_load(&ctx->stats.chunks_verified))) &&
	     mfsd_set(o, "chunks_decoded",
		      mfsd_json_u64(mfsd_load(&ctx->stats.chunks_decoded))) &&
	     mfsd_set(o, "checksum_failures",
		      mfsd_json_u64(mfsd_load(&ctx->stats.checksum_failures))) &&
	     mfsd_set(o, "read_errors",
		      mfsd_json_u64(mfsd_load(&ctx->stats.read_errors))) &&
	     mfsd_set(o, "cache_hits", mfsd_json_u64(cs.hits)) &&
	     mfsd_set(o, "cache_misses", mfsd_json_u64(cs.misses)) &&
	     mfsd_set(o, "cache_evictions", mfsd_json_u64(cs.evictions)) &&
	     mfsd_set(o, "cache_bytes", mfsd_json_u64(cs.bytes)) &&
	     mfsd_set(o, "cache_entries", mfsd_json_u64(cs.entries)) &&
	     mfsd_set(o, "cache_budget", mfsd_json_u64(cs.budget));
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static double mfsd_uptime(const struct mfsd_ctx *ctx)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - ctx->started.tv_sec) +
	       (double)(now.tv_nsec - ctx->started.tv_nsec) /
		       MFSD_NSEC_PER_SEC;
}

static json_t *mfsd_status_json(struct mfsd_ctx *ctx)
{
	uint64_t nopen = 0;
	json_t *root = json_object(), *models;
	bool ok;

	models = mfsd_status_models(ctx->store, &nopen);
	ok = root && models &&
	     mfsd_set(root, "pid", json_integer(getpid())) &&
	     mfsd_set(root, "version", json_string(mfs_version())) &&
	     mfsd_set(root, "uptime_seconds", json_real(mfsd_uptime(ctx))) &&
	     mfsd_set(root, "store_dir", json_string(ctx->opt.store_dir)) &&
	     mfsd_set(root, "mountpoint", json_string(ctx->opt.mountpoint)) &&
	     mfsd_set(root, "threads", json_integer(ctx->opt.threads)) &&
	     mfsd_set(root, "totals",
		      mfsd_status_totals(ctx, json_array_size(models), nopen)) &&
	     mfsd_set(root, "models", json_incref(models)) &&
	     mfsd_set(root, "skipped", mfsd_status_skipped(ctx->store));
	json_decref(models);
	if (!ok) {
		json_decref(root);
		return NULL;
	}
	return root;
}

int mfsd_status_snapshot(struct mfsd_ctx *ctx, char **out, size_t *len)
{
	json_t *root = mfsd_status_json(ctx);
	char *text;

	if (!root)
		return -ENOMEM;
	text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!text)
		return -ENOMEM;
	/* A trailing newline, so `cat` leaves the prompt on its own line. */
	*len = strlen(text);
	*out = realloc(text, *len + 2);
	if (!*out) {
		free(text);
		return -ENOMEM;
	}
	(*out)[(*len)++] = '\n';
	(*out)[*len] = '\0';
	return 0;
}

int mfsd_status_holders(struct mfsd_store *s, struct mfsd_model *m,
			char **out, unsigned long long *nopen)
{
	struct mfsd_model_usage u;
	char *text, *p;

	if (mfsd_store_usage(s, m, &u) < 0)
		return -ENOMEM;
	text = malloc(u.nholders * MFSD_PID_TEXT_MAX + 1);
	if (!text) {
		free(u.holders);
		return -ENOMEM;
	}
	p = text;
	*p = '\0';
	for (size_t i = 0; i < u.nholders; i++)
		p += sprintf(p, "%s%ld", i ? "," : "", (long)u.holders[i].pid);
	*nopen = u.nopen;
	free(u.holders);
	*out = text;
	return 0;
}
