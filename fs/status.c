/*
 * status.c - /.status and the usage xattrs (see status.h).
 *
 * Each document is built for one caller and tells it only what it could
 * reach itself through the mount (default_permissions is always on, so
 * the kernel checks the same modes): the models it may open, the
 * skipped files it may read, and of each listed model only the holders
 * that are processes of its own user.  Root is shown everything.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cred.h"
#include "follow.h"
#include "modelfs.h"
#include "inode.h"
#include "lease.h"
#include "proc.h"
#include "status.h"

/* "PID," per holder: a pid has at most 10 digits. */
#define MFSD_PID_TEXT_MAX 12
#define MFSD_NSEC_PER_SEC 1e9
#define MFSD_STATUS_INDENT 2

/* Sets @key of @obj to @val, taking the reference; false on failure. */
static bool mfsd_set(json_t *obj, const char *key, json_t *val)
{
	return val && json_object_set_new(obj, key, val) == 0;
}

/*
 * A JSON string of text that comes from outside (file names, process
 * names, paths): verbatim when it is valid UTF-8 (JSON escapes control
 * characters itself), else escaped as the log shows it, because
 * json_string refuses invalid UTF-8 and one such name must not make the
 * whole of /.status fail.  NULL only when out of memory.
 */
static json_t *mfsd_json_text(const char *s)
{
	json_t *j = json_string(s);
	size_t n;
	char *esc;

	if (j)
		return j;
	n = mfs_escape(NULL, 0, s, strlen(s), MFS_ESCAPE_KEEP_BACKSLASH);
	esc = malloc(n + 1);
	if (!esc)
		return NULL;
	mfs_escape(esc, n + 1, s, strlen(s), MFS_ESCAPE_KEEP_BACKSLASH);
	j = json_string(esc);
	free(esc);
	return j;
}

static json_t *mfsd_json_u64(uint64_t v)
{
	return json_integer((json_int_t)v);
}

/* The names of the files of busy @m that process @pid holds, from
 * @u->holds (sorted by pid, then slot). */
static json_t *mfsd_status_files_json(struct mfsd_model *m,
				      const struct mfsd_model_usage *u,
				      pid_t pid)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < u->nholds; i++) {
		const char *name;

		if (u->holds[i].pid != pid)
			continue;
		name = mfsd_slot_name(m, u->holds[i].slot);
		if (json_array_append_new(arr, mfsd_json_text(name ? name : "")) <
		    0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	return arr;
}

/* [{pid, comm, handles, files}] of the processes holding @m. */
static json_t *mfsd_status_holders_json(struct mfsd_model *m,
					const struct mfsd_model_usage *u)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < u->nholders; i++) {
		const struct mfsd_holder *hd = &u->holders[i];
		char comm[MFSD_COMM_MAX];
		json_t *h = json_object();

		mfsd_proc_comm(hd->pid, comm, sizeof(comm));
		if (!h || !mfsd_set(h, MFS_ST_PID, json_integer(hd->pid)) ||
		    !mfsd_set(h, MFS_ST_COMM, mfsd_json_text(comm)) ||
		    !mfsd_set(h, MFS_ST_HANDLES, mfsd_json_u64(hd->handles)) ||
		    !mfsd_set(h, MFS_ST_FILES,
			      mfsd_status_files_json(m, u, hd->pid)) ||
		    json_array_append_new(arr, h) < 0) {
			json_decref(h);
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static const char *mfsd_state_name(enum mfsd_model_state state)
{
	switch (state) {
	case MFSD_MODEL_PUBLISHED:
		return "published";
	case MFSD_MODEL_REPLACED:
		return "replaced";
	case MFSD_MODEL_REMOVED:
		return "removed";
	}
	return "unknown";
}

/* The usage fields of model @m's object. */
static bool mfsd_status_usage(json_t *o, struct mfsd_model *m,
			      const struct mfsd_model_usage *u)
{
	return mfsd_set(o, MFS_ST_STATE, json_string(mfsd_state_name(u->c.state))) &&
	       mfsd_set(o, MFS_ST_IN_STORE, json_boolean(u->in_store)) &&
	       mfsd_set(o, MFS_ST_OPEN_HANDLES, mfsd_json_u64(u->nopen)) &&
	       mfsd_set(o, MFS_ST_DIR_HANDLES, mfsd_json_u64(u->c.ndirs)) &&
	       mfsd_set(o, MFS_ST_LOOKUPS, mfsd_json_u64(u->nlookup)) &&
	       mfsd_set(o, MFS_ST_HOLDERS, mfsd_status_holders_json(m, u)) &&
	       mfsd_set(o, MFS_ST_PAGE_CACHE_BYTES,
			mfsd_json_u64(mfsd_model_cached(m))) &&
	       mfsd_set(o, MFS_ST_PAGE_CACHE_EVICTIONS,
			mfsd_json_u64(atomic_load(&m->pc_evictions)));
}

/* True if @cred may list the names of the store: read the mount's root,
 * which shows STORE_DIR's owner and mode. */
static bool mfsd_sees_root(struct mfsd_table *s, const struct mfsd_cred *cred)
{
	return mfsd_cred_may_read(cred, atomic_load(&s->dir_mode),
				  atomic_load(&s->dir_uid),
				  atomic_load(&s->dir_gid));
}

/* True if @cred could find busy model @m and open its files through the
 * mount (every file of a model shows the container's owner and mode). */
static bool mfsd_sees_model(struct mfsd_table *s, const struct mfsd_cred *cred,
			    struct mfsd_model *m)
{
	return mfsd_sees_root(s, cred) &&
	       mfsd_cred_may_read(cred, atomic_load(&m->mode),
				  atomic_load(&m->uid), atomic_load(&m->gid));
}

/* True if @cred could list and read skipped file @v in STORE_DIR; one
 * whose owner and mode are unknown is shown to root only. */
static bool mfsd_sees_skipped(struct mfsd_table *s,
			      const struct mfsd_cred *cred,
			      const struct mfsd_skipped *v)
{
	if (mfsd_cred_is_root(cred))
		return true;
	return v->has_id && mfsd_sees_root(s, cred) &&
	       mfsd_cred_may_read(cred, v->st.st_mode, v->st.st_uid,
				  v->st.st_gid);
}

/* Copies @m's usage as @cred may see it: root sees every holder, anyone
 * else only the holds its own uid made (a pid says who runs what).
 * 0 or -ENOMEM; free with mfsd_table_usage_free. */
static int mfsd_status_usage_for(struct mfsd_table *s, struct mfsd_model *m,
				 const struct mfsd_cred *cred,
				 struct mfsd_model_usage *u)
{
	int rc = mfsd_table_usage(s, m, u);

	if (rc == 0 && !mfsd_cred_is_root(cred))
		mfsd_table_usage_keep_uid(u, cred->uid);
	return rc;
}

/* The object of busy model @m for @cred; *@skip is set (and NULL
 * returned) for a retired model, which .status does not list, and for
 * a model @cred may not open. */
static json_t *mfsd_status_model(struct mfsd_table *s, struct mfsd_model *m,
				 const struct mfsd_cred *cred, bool *skip)
{
	struct mfsd_model_usage u;
	json_t *o;
	bool ok;

	*skip = m->retired || !mfsd_sees_model(s, cred, m);
	if (*skip || mfsd_status_usage_for(s, m, cred, &u) < 0)
		return NULL;
	o = json_object();
	ok = o && mfsd_set(o, MFS_ST_KEY, json_string(m->key)) &&
	     mfsd_set(o, MFS_ST_FILE, mfsd_json_text(m->file_name)) &&
	     mfsd_set(o, MFS_ST_GENERATION, mfsd_json_u64(m->gen)) &&
	     mfsd_set(o, MFS_ST_INODE,
		      mfsd_json_u64(mfsd_ino(m->gen, MFSD_SLOT_DIR))) &&
	     mfsd_set(o, MFS_ST_ARRAYS, mfsd_json_u64(m->narrays)) &&
	     mfsd_set(o, MFS_ST_RAW_SIZE, mfsd_json_u64(m->raw_size)) &&
	     mfsd_set(o, MFS_ST_STORED_SIZE, mfsd_json_u64(m->stored_size)) &&
	     mfsd_set(o, MFS_ST_FILE_SIZE,
		      mfsd_json_u64(mfs_container_file_size(m->container))) &&
	     mfsd_set(o, MFS_ST_LEASE, json_string(mfsd_lease_state_name(m))) &&
	     mfsd_status_usage(o, m, &u);
	mfsd_table_usage_free(&u);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Sums of the models listed, for the totals. */
struct mfsd_status_sums {
	uint64_t nopen;
	uint64_t released_bytes; /* page cache of models with no handle */
};

/* Every model still served (published, or removed and still held) that
 * @cred may open. */
static json_t *mfsd_status_models(struct mfsd_table *s,
				  const struct mfsd_cred *cred,
				  struct mfsd_status_sums *sums)
{
	struct mfsd_model **models;
	ssize_t n = mfsd_table_get_all(s, &models);
	json_t *arr = n >= 0 ? json_array() : NULL;

	for (ssize_t i = 0; arr && i < n; i++) {
		bool skip;
		json_t *o = mfsd_status_model(s, models[i], cred, &skip);
		uint64_t nopen;

		if (skip)
			continue;
		nopen = o ? (uint64_t)json_integer_value(
				    json_object_get(o, "open_handles"))
			  : 0;
		sums->nopen += nopen;
		if (nopen == 0)
			sums->released_bytes += mfsd_model_cached(models[i]);
		if (!o || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	if (n >= 0)
		mfsd_table_put_all(s, models, (size_t)n);
	return arr;
}

/* The skipped containers @cred may read, with the reasons. */
static json_t *mfsd_status_skipped(struct mfsd_table *s,
				   const struct mfsd_cred *cred)
{
	struct mfsd_skipped *v;
	ssize_t n = mfsd_follow_skipped(s, &v);
	json_t *arr = n >= 0 ? json_array() : NULL;

	for (ssize_t i = 0; arr && i < n; i++) {
		json_t *o;

		if (!mfsd_sees_skipped(s, cred, &v[i]))
			continue;
		o = json_object();
		if (!o || !mfsd_set(o, MFS_ST_FILE, mfsd_json_text(v[i].file_name)) ||
		    !mfsd_set(o, MFS_ST_ERROR, mfsd_json_text(v[i].reason)) ||
		    json_array_append_new(arr, o) < 0) {
			json_decref(o);
			json_decref(arr);
			arr = NULL;
		}
	}
	if (n >= 0)
		mfsd_follow_free_skipped(v, (size_t)n);
	return arr;
}

static uint64_t mfsd_load(_Atomic uint64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

/* The totals of the live updates and the page-cache budget. */
static bool mfsd_status_live(struct mfsd_ctx *ctx, json_t *o,
			     const struct mfsd_status_sums *sums)
{
	struct mfsd_table_counts sc;
	struct mfsd_skip_counts k;
	struct mfsd_watch_stats ws = {0};

	mfsd_table_counts(ctx->table, &sc);
	mfsd_follow_skip_counts(ctx->table, &k);
	if (ctx->watching)
		mfsd_watch_get_stats(&ctx->watch, &ws);
	return mfsd_set(o, MFS_ST_PUBLISHED, mfsd_json_u64(sc.published)) &&
	       mfsd_set(o, MFS_ST_WAITING_FOR_DESCRIPTORS,
			mfsd_json_u64(k.waiting)) &&
	       mfsd_set(o, MFS_ST_RETRYING, mfsd_json_u64(k.transient)) &&
	       mfsd_set(o, MFS_ST_CONTAINER_DESCRIPTORS,
			mfsd_json_u64(ctx->table->fd_budget)) &&
	       mfsd_set(o, MFS_ST_RETIRED_MODELS, mfsd_json_u64(sc.retired)) &&
	       mfsd_set(o, MFS_ST_STORE_CHANGES, mfsd_json_u64(sc.changes)) &&
	       mfsd_set(o, MFS_ST_INOTIFY_EVENTS, mfsd_json_u64(ws.events)) &&
	       mfsd_set(o, MFS_ST_INOTIFY_OVERFLOWS, mfsd_json_u64(ws.overflows)) &&
	       mfsd_set(o, MFS_ST_NOTIFICATIONS, mfsd_json_u64(ws.notifications)) &&
	       mfsd_set(o, MFS_ST_PAGE_CACHE_BUDGET,
			mfsd_json_u64(ctx->opt.page_budget)) &&
	       mfsd_set(o, MFS_ST_PAGE_CACHE_RELEASED_BYTES,
			mfsd_json_u64(sums->released_bytes)) &&
	       mfsd_set(o, MFS_ST_PAGE_CACHE_EVICTIONS,
			mfsd_json_u64(ws.evictions)) &&
	       mfsd_set(o, MFS_ST_PAGE_CACHE_EVICTED_BYTES,
			mfsd_json_u64(ws.evicted_bytes));
}

static json_t *mfsd_status_totals(struct mfsd_ctx *ctx, size_t nmodels,
				  const struct mfsd_status_sums *sums)
{
	struct mfsd_cache_stats cs;
	json_t *o = json_object();
	bool ok;

	mfsd_cache_get_stats(&ctx->cache, &cs);
	ok = o && mfsd_set(o, MFS_ST_MODELS, mfsd_json_u64(nmodels)) &&
	     mfsd_set(o, MFS_ST_OPEN_HANDLES, mfsd_json_u64(sums->nopen)) &&
	     mfsd_set(o, MFS_ST_BYTES_SERVED,
		      mfsd_json_u64(mfsd_load(&ctx->stats.bytes_served))) &&
	     mfsd_set(o, MFS_ST_CHUNKS_VERIFIED,
		      mfsd_json_u64(mfsd_load(&ctx->stats.chunks_verified))) &&
	     mfsd_set(o, MFS_ST_CHUNKS_DECODED,
		      mfsd_json_u64(mfsd_load(&ctx->stats.chunks_decoded))) &&
	     mfsd_set(o, MFS_ST_CHECKSUM_FAILURES,
		      mfsd_json_u64(mfsd_load(&ctx->stats.checksum_failures))) &&
	     mfsd_set(o, MFS_ST_READ_ERRORS,
		      mfsd_json_u64(mfsd_load(&ctx->stats.read_errors))) &&
	     mfsd_set(o, MFS_ST_CACHE_HITS, mfsd_json_u64(cs.hits)) &&
	     mfsd_set(o, MFS_ST_CACHE_MISSES, mfsd_json_u64(cs.misses)) &&
	     mfsd_set(o, MFS_ST_CACHE_EVICTIONS, mfsd_json_u64(cs.evictions)) &&
	     mfsd_set(o, MFS_ST_CACHE_BYTES, mfsd_json_u64(cs.bytes)) &&
	     mfsd_set(o, MFS_ST_CACHE_ENTRIES, mfsd_json_u64(cs.entries)) &&
	     mfsd_set(o, MFS_ST_CACHE_BUDGET, mfsd_json_u64(cs.budget)) &&
	     mfsd_status_live(ctx, o, sums);
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

/* "store_dir" for a caller who may read it (as its xattr on the root,
 * which the kernel only lets such callers read); nothing for others. */
static bool mfsd_status_store_dir(struct mfsd_ctx *ctx, json_t *root,
				  const struct mfsd_cred *cred)
{
	if (!mfsd_sees_root(ctx->table, cred))
		return true;
	return mfsd_set(root, MFS_ST_STORE_DIR, mfsd_json_text(ctx->opt.store_dir));
}

/* "pid" (the supervisor, or this process when none), "server_pid",
 * "takeovers" and "resent_requests". */
static bool mfsd_status_pids(struct mfsd_ctx *ctx, json_t *root)
{
	struct mfsd_handoff_region *r = ctx->handoff ? ctx->handoff->r : NULL;
	pid_t sup = r ? (pid_t)r->supervisor_pid : getpid();

	return mfsd_set(root, MFS_ST_PID, json_integer(sup)) &&
	       mfsd_set(root, MFS_ST_SERVER_PID, json_integer(getpid())) &&
	       mfsd_set(root, MFS_ST_TAKEOVERS,
			json_integer(r ? atomic_load(&r->takeovers) : 0)) &&
	       mfsd_set(root, MFS_ST_RESENT_REQUESTS,
			mfsd_json_u64(r ? atomic_load(&r->resent) : 0));
}

static json_t *mfsd_status_json(struct mfsd_ctx *ctx,
				const struct mfsd_cred *cred)
{
	struct mfsd_status_sums sums = {0};
	json_t *root = json_object(), *models;
	bool ok;

	models = mfsd_status_models(ctx->table, cred, &sums);
	ok = root && models &&
	     mfsd_status_pids(ctx, root) &&
	     mfsd_set(root, MFS_ST_VERSION, json_string(mfs_version())) &&
	     mfsd_set(root, MFS_ST_UPTIME_SECONDS, json_real(mfsd_uptime(ctx))) &&
	     (ctx->remote || mfsd_status_store_dir(ctx, root, cred)) &&
	     mfsd_set(root, MFS_ST_MOUNTPOINT, mfsd_json_text(ctx->opt.mountpoint)) &&
	     mfsd_set(root, MFS_ST_THREADS, json_integer(ctx->opt.threads)) &&
	     mfsd_set(root, MFS_ST_TOTALS,
		      mfsd_status_totals(ctx, json_array_size(models), &sums)) &&
	     mfsd_set(root, MFS_ST_MODELS, json_incref(models)) &&
	     mfsd_set(root, MFS_ST_SKIPPED, mfsd_status_skipped(ctx->table, cred)) &&
	     (!ctx->remote || mfsd_remote_status(ctx->remote, root) == 0);
	json_decref(models);
	if (!ok) {
		json_decref(root);
		return NULL;
	}
	return root;
}

/*
 * Serializes @root with a trailing newline (so `cat` leaves the prompt on
 * its own line) into a malloc'd, NUL-terminated string.  json_dumpb into
 * a buffer sized first, not json_dumps: jansson 2.14's json_dumps grows
 * its own buffer and can silently drop an object key when that growth
 * fails; a buffer that is big enough cannot fail that way.
 */
static int mfsd_status_text(const json_t *root, char **out, size_t *len)
{
	size_t flags = JSON_INDENT(MFSD_STATUS_INDENT) | JSON_PRESERVE_ORDER;
	size_t need = json_dumpb(root, NULL, 0, flags);
	char *text;

	if (need == 0)
		return -ENOMEM;
	text = malloc(need + 2);
	if (!text)
		return -ENOMEM;
	if (json_dumpb(root, text, need, flags) != need) {
		free(text);
		return -ENOMEM;
	}
	text[need] = '\n';
	text[need + 1] = '\0';
	*out = text;
	*len = need + 1;
	return 0;
}

int mfsd_status_snapshot(struct mfsd_ctx *ctx, const struct mfsd_cred *cred,
			 char **out, size_t *len)
{
	json_t *root = mfsd_status_json(ctx, cred);
	int rc;

	if (!root)
		return -ENOMEM;
	rc = mfsd_status_text(root, out, len);
	json_decref(root);
	return rc;
}

int mfsd_status_holders(struct mfsd_table *s, struct mfsd_model *m,
			const struct mfsd_cred *cred, char **out,
			unsigned long long *nopen)
{
	struct mfsd_model_usage u;
	char *text, *p;

	if (mfsd_status_usage_for(s, m, cred, &u) < 0)
		return -ENOMEM;
	text = malloc(u.nholders * MFSD_PID_TEXT_MAX + 1);
	if (!text) {
		mfsd_table_usage_free(&u);
		return -ENOMEM;
	}
	p = text;
	*p = '\0';
	for (size_t i = 0; i < u.nholders; i++)
		p += sprintf(p, "%s%ld", i ? "," : "", (long)u.holders[i].pid);
	*nopen = u.nopen;
	mfsd_table_usage_free(&u);
	*out = text;
	return 0;
}
