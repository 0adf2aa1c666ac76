/*
 * ops.c - FUSE low-level handlers: a thin adapter from requests to the
 * model table (table.c), the inode scheme (inode.c), the read path
 * (data.c) and the status document (status.c).  Every handler replies
 * exactly once, with a positive errno on failure.  The handler table is
 * at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "cred.h"
#include "daemon.h"
#include "inode.h"
#include "log.h"
#include "ops.h"
#include "proc.h"
#include "status.h"
#include "watch.h"

/*
 * The store is immutable per inode (a replaced model gets new inode
 * numbers), and the watcher thread invalidates names that appear, go
 * away or change owner (watch.c), so the kernel may keep entries,
 * attributes and negative entries for long.
 */
#define MFSD_ENTRY_TIMEOUT 86400.0
#define MFSD_ATTR_TIMEOUT 86400.0
#define MFSD_NEGATIVE_TIMEOUT 86400.0
/* .status changes all the time: never cache its attributes. */
#define MFSD_STATUS_ATTR_TIMEOUT 0.0

/* Longest shape text: MFS_MAX_NDIM numbers of 20 digits and commas. */
#define MFSD_SHAPE_TEXT_MAX (MFS_MAX_NDIM * 21 + 1)
#define MFSD_STATFS_BSIZE 4096u

/* Readdir offsets: 1-based positions; "." and ".." come first. */
#define MFSD_DIR_DOT 0u
#define MFSD_DIR_DOTDOT 1u
#define MFSD_DIR_FIRST 2u

enum mfsd_handle_kind {
	MFSD_H_STATUS,    /* /.status: a snapshot of the document */
	MFSD_H_FILE,      /* a file of a model directory */
	MFSD_H_ROOT_DIR,  /* the root: a snapshot of the published keys */
	MFSD_H_MODEL_DIR, /* a model directory */
};

/*
 * What fi->fh names: fi->fh is the handle's id in the handoff region
 * (handoff.h), where its record lets a successor rebuild it; the id
 * leads to this structure.  Immutable after open except refs.  A reply may
 * still be reading the handle's (or its model's) memory when the kernel
 * already woke the reader, who may close the file at once: so each read
 * holds a reference, and whichever of the release and the reads drops
 * the last one ends the handle.
 */
struct mfsd_handle {
	_Atomic unsigned refs; /* the open file's, plus one per request */
	uint64_t id;           /* fi->fh; 0 until the open is answered */
	enum mfsd_handle_kind kind;
	struct mfsd_model *m; /* FILE: open handle; MODEL_DIR: dir handle */
	uint64_t slot;        /* FILE */
	pid_t pid;            /* FILE: the opening process, a holder */
	char *text;           /* STATUS */
	size_t text_len;
	struct mfsd_dirent_model *keys; /* ROOT_DIR */
	size_t nkeys;
};

static struct mfsd_ctx *mfsd_ctx(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* The handle of @fi, NULL if the id names none (a release the kernel
 * sent again after a takeover, for a handle already gone). */
static struct mfsd_handle *mfsd_handle(fuse_req_t req,
				       const struct fuse_file_info *fi)
{
	return mfsd_handoff_handle_get(mfsd_ctx(req)->handoff, fi->fh);
}

/* ------------------------------------------------------------------ */
/* Inodes                                                              */
/* ------------------------------------------------------------------ */

/*
 * Resolves a model inode: *@m gets the model, marked busy (release with
 * mfsd_table_put), *@slot the slot.  -ENOENT (and *@m NULL) for the
 * root, .status, or an inode of a model that is gone.
 */
static int mfsd_resolve(struct mfsd_ctx *ctx, fuse_ino_t ino,
			struct mfsd_model **m, uint64_t *slot)
{
	uint64_t gen = mfsd_ino_gen(ino);

	*m = NULL;
	if (gen == 0)
		return -ENOENT;
	*m = mfsd_table_get_gen(ctx->table, gen);
	if (!*m)
		return -ENOENT;
	*slot = mfsd_ino_slot(ino);
	if (*slot >= mfsd_slot_count(*m)) {
		/* A file of a retired model: gone, as in a removed
		 * directory. */
		mfsd_table_put(ctx->table, *m);
		*m = NULL;
		return -ENOENT;
	}
	return 0;
}

/* Attributes of any inode; 0 or -ENOENT.  *@timeout gets the attribute
 * timeout to give the kernel. */
static int mfsd_getattr_ino(struct mfsd_ctx *ctx, fuse_ino_t ino,
			    struct stat *st, double *timeout)
{
	struct mfsd_model *m;
	uint64_t slot;
	int rc;

	*timeout = MFSD_ATTR_TIMEOUT;
	if (ino == MFSD_ROOT_INO) {
		mfsd_stat_root(ctx->table, st);
		return 0;
	}
	if (ino == MFSD_STATUS_INO) {
		mfsd_stat_status(ctx->table, st);
		*timeout = MFSD_STATUS_ATTR_TIMEOUT;
		return 0;
	}
	rc = mfsd_resolve(ctx, ino, &m, &slot);
	if (rc < 0)
		return rc;
	rc = mfsd_stat_slot(m, slot, st);
	mfsd_table_put(ctx->table, m);
	return rc;
}

/* Fills an entry for slot @slot of busy model @m and counts the lookup
 * the kernel takes when it receives it. */
static void mfsd_entry_model(struct mfsd_ctx *ctx, struct mfsd_model *m,
			     uint64_t slot, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	mfsd_stat_slot(m, slot, &e->attr);
	e->ino = e->attr.st_ino;
	e->generation = m->gen;
	e->attr_timeout = MFSD_ATTR_TIMEOUT;
	e->entry_timeout = MFSD_ENTRY_TIMEOUT;
	mfsd_table_lookup(ctx->table, m, slot, 1);
}

static void mfsd_entry_status(struct mfsd_ctx *ctx, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	mfsd_stat_status(ctx->table, &e->attr);
	e->ino = MFSD_STATUS_INO;
	e->attr_timeout = MFSD_STATUS_ATTR_TIMEOUT;
	e->entry_timeout = MFSD_ENTRY_TIMEOUT;
}

/* A negative entry the kernel caches, so misses cost one request. */
static void mfsd_reply_negative(fuse_req_t req)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.entry_timeout = MFSD_NEGATIVE_TIMEOUT;
	fuse_reply_entry(req, &e);
}

/* An mfsd_name_fn: hands a container a lookup found to the loader (a
 * request thread must not spend seconds loading one). */
static void mfsd_queue_load(void *arg, const char *file_name)
{
	(void)mfsd_loader_push(arg, file_name);
}

static void mfsd_lookup_root(fuse_req_t req, const char *name)
{
	struct mfsd_ctx *ctx = mfsd_ctx(req);
	struct fuse_entry_param e;
	struct mfsd_model *m;

	if (strcmp(name, MFS_STATUS_FILE) == 0) {
		mfsd_entry_status(ctx, &e);
		fuse_reply_entry(req, &e);
		return;
	}
	m = mfsd_table_get_key(ctx->table, name);
	if (!m) {
		/* Published a moment ago, before inotify told the watcher?
		 * The watcher is told of what this finds (it must not be
		 * notified from here), and the lookup answers at once. */
		(void)mfsd_follow_refresh_key(ctx->table, name, mfsd_watch_post,
					      &ctx->watch,
					      ctx->loading ? mfsd_queue_load
							   : NULL,
					      &ctx->loader);
		m = mfsd_table_get_key(ctx->table, name);
	}
	if (!m) {
		mfsd_reply_negative(req);
		return;
	}
	mfsd_entry_model(ctx, m, MFSD_SLOT_DIR, &e);
	fuse_reply_entry(req, &e);
	mfsd_table_put(ctx->table, m);
}

static void mfsd_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mfsd_ctx *ctx = mfsd_ctx(req);
	struct fuse_entry_param e;
	struct mfsd_model *m;
	uint64_t dslot, slot;

	if (parent == MFSD_ROOT_INO) {
		mfsd_lookup_root(req, name);
		return;
	}
	if (mfsd_resolve(ctx, parent, &m, &dslot) < 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (dslot != MFSD_SLOT_DIR)
		fuse_reply_err(req, ENOTDIR);
	else if (mfsd_slot_find(m, name, &slot) < 0)
		mfsd_reply_negative(req);
	else {
		mfsd_entry_model(ctx, m, slot, &e);
		fuse_reply_entry(req, &e);
	}
	mfsd_table_put(ctx->table, m);
}

/* Counts a forget; true if it left a removed model idle (the watcher
 * then retires it after its grace period). */
static bool mfsd_forget_one(struct mfsd_ctx *ctx, fuse_ino_t ino,
			    uint64_t nlookup)
{
	uint64_t gen = mfsd_ino_gen(ino);

	/* The root and .status are not counted: they never go away. */
	return gen != 0 && mfsd_table_forget(ctx->table, gen,
					     mfsd_ino_slot(ino), nlookup);
}

static void mfsd_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct mfsd_ctx *ctx = mfsd_ctx(req);

	if (mfsd_forget_one(ctx, ino, nlookup))
		mfsd_watch_kick(&ctx->watch);
	fuse_reply_none(req);
}

static void mfsd_forget_multi(fuse_req_t req, size_t count,
			      struct fuse_forget_data *forgets)
{
	struct mfsd_ctx *ctx = mfsd_ctx(req);
	bool idle = false;

	for (size_t i = 0; i < count; i++)
		idle |= mfsd_forget_one(ctx, forgets[i].ino,
					forgets[i].nlookup);
	if (idle)
		mfsd_watch_kick(&ctx->watch);
	fuse_reply_none(req);
}

static void mfsd_getattr(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	struct stat st;
	double timeout;
	int rc = mfsd_getattr_ino(mfsd_ctx(req), ino, &st, &timeout);

	(void)fi;
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, timeout);
}

/* ------------------------------------------------------------------ */
/* Files                                                               */
/* ------------------------------------------------------------------ */

static void mfsd_handle_free(struct mfsd_ctx *ctx, struct mfsd_handle *h)
{
	if (!h)
		return;
	mfsd_handoff_handle_end(ctx->handoff, h->id);
	free(h->text);
	mfsd_table_free_list(h->keys, h->nkeys);
	free(h);
}

/* A new handle with the open file's reference, or NULL. */
static struct mfsd_handle *mfsd_handle_new(void)
{
	struct mfsd_handle *h = calloc(1, sizeof(*h));

	if (h)
		atomic_init(&h->refs, 1);
	return h;
}

/* Tells the watcher what the end of a file handle changed: only a
 * model out of the namespace (its sweep or retire may now proceed) or a
 * release noted for the budget wakes it; the usual last close of a
 * published model costs it nothing. */
static void mfsd_report_release(struct mfsd_ctx *ctx, enum mfsd_release r)
{
	if (r == MFSD_RELEASE_LEFT)
		mfsd_watch_kick(&ctx->watch);
	else if (r == MFSD_RELEASE_NOTED)
		mfsd_watch_released(&ctx->watch);
}

/* Ends what a handle holds on its model, then frees it.  What the
 * watcher must know of it (retries and retiring of removed models,
 * page-cache budget) is reported. */
static void mfsd_handle_close(struct mfsd_ctx *ctx, struct mfsd_handle *h)
{
	if (h->kind == MFSD_H_FILE)
		mfsd_report_release(ctx, mfsd_table_release_handle(
						 ctx->table, h->m, h->pid,
						 h->slot));
	else if (h->kind == MFSD_H_MODEL_DIR &&
		 mfsd_table_release_dir(ctx->table, h->m))
		mfsd_watch_kick(&ctx->watch);
	mfsd_handle_free(ctx, h);
}

/* Takes a reference on @h for a request that uses its memory. */
static void mfsd_handle_get(struct mfsd_handle *h)
{
	atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
}

/* Drops a reference; the last one closes the handle. */
static void mfsd_handle_put(struct mfsd_ctx *ctx, struct mfsd_handle *h)
{
	if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1)
		mfsd_handle_close(ctx, h);
}

/* The kind of @h's record for a successor. */
static enum mfsd_handoff_kind mfsd_handle_kind(const struct mfsd_handle *h)
{
	switch (h->kind) {
	case MFSD_H_STATUS:
		return MFSD_HK_STATUS;
	case MFSD_H_FILE:
		return MFSD_HK_FILE;
	case MFSD_H_ROOT_DIR:
		return MFSD_HK_ROOT_DIR;
	default: /* MFSD_H_MODEL_DIR */
		return MFSD_HK_MODEL_DIR;
	}
}

/* Records @h, opened by the caller of @req, for a successor.  Its id
 * (the fh to give the kernel) or -EMFILE. */
static int64_t mfsd_handle_record(struct mfsd_ctx *ctx, fuse_req_t req,
				  struct mfsd_handle *h)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct mfsd_handoff_handle rec = {
		.kind = mfsd_handle_kind(h),
		.pid = (int32_t)h->pid,
		.uid = (uint32_t)c->uid,
		.gid = (uint32_t)c->gid,
		.gen = h->m ? h->m->gen : 0,
		.slot = h->slot,
	};

	return mfsd_handoff_handle_new(ctx->handoff, h, &rec);
}

/* Replies to an open with @h, or with error @rc (then @h is closed); if
 * the opener was interrupted meanwhile, the kernel will never release the
 * handle, so it is closed here. */
static void mfsd_reply_open(fuse_req_t req, struct fuse_file_info *fi,
			    struct mfsd_handle *h, int rc)
{
	struct mfsd_ctx *ctx = mfsd_ctx(req);
	int64_t id = 0;

	if (rc == 0) {
		id = mfsd_handle_record(ctx, req, h);
		rc = id < 0 ? (int)id : 0;
	}
	if (rc < 0) {
		mfsd_handle_close(ctx, h);
		fuse_reply_err(req, -rc);
		return;
	}
	h->id = (uint64_t)id;
	fi->fh = h->id;
	if (fuse_reply_open(req, fi) == -ENOENT)
		mfsd_handle_put(ctx, h);
}

static int mfsd_open_status(fuse_req_t req, struct mfsd_handle *h,
			    struct fuse_file_info *fi)
{
	struct mfsd_cred cred;
	int rc;

	h->kind = MFSD_H_STATUS;
	/* Each open sees one consistent snapshot, made for the opener;
	 * reads bypass the page cache so the next open sees a fresh one
	 * and no user reads another's. */
	fi->direct_io = 1;
	rc = mfsd_cred_of_req(req, &cred);
	if (rc < 0)
		return rc;
	rc = mfsd_status_snapshot(mfsd_ctx(req), &cred, &h->text,
				  &h->text_len);
	mfsd_cred_free(&cred);
	return rc;
}

/* Opens a file of busy model @m; the handle keeps the model alive. */
static int mfsd_open_file(fuse_req_t req, struct mfsd_model *m, uint64_t slot,
			  struct mfsd_handle *h, struct fuse_file_info *fi)
{
	int rc;

	if (slot == MFSD_SLOT_DIR)
		return -EISDIR;
	h->pid = mfsd_proc_tgid(fuse_req_ctx(req)->pid);
	/* The opener's user decides who is shown this holder. */
	rc = mfsd_table_open_handle(mfsd_ctx(req)->table, m, h->pid,
				    fuse_req_ctx(req)->uid, slot);
	if (rc < 0)
		return rc;
	/* Only now: a handle of kind FILE releases what it opened. */
	h->kind = MFSD_H_FILE;
	h->m = m;
	h->slot = slot;
	fi->keep_cache = 1;
	fi->noflush = 1;
	return 0;
}

static void mfsd_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfsd_ctx *ctx = mfsd_ctx(req);
	struct mfsd_handle *h;
	struct mfsd_model *m = NULL;
	uint64_t slot;
	int rc;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (ino == MFSD_ROOT_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	h = mfsd_handle_new();
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (ino == MFSD_STATUS_INO)
		rc = mfsd_open_status(req, h, fi);
	else {
		rc = mfsd_resolve(ctx, ino, &m, &slot);
		if (rc == 0)
			rc = mfsd_open_file(req, m, slot, h, fi);
		if (m)
			mfsd_table_put(ctx->table, m);
	}
	mfsd_reply_open(req, fi, h, rc);
}

/* Answers a read of handle @h (referenced by the caller). */
static void mfsd_read_handle(struct mfsd_ctx *ctx, fuse_req_t req,
			     struct mfsd_handle *h, size_t size, off_t off)
{
	struct mfsd_model *m = h->m;

	if (h->kind == MFSD_H_STATUS)
		mfsd_data_read_mem(&ctx->data, req, h->text, h->text_len, size,
				   off);
	else if (h->kind != MFSD_H_FILE)
		fuse_reply_err(req, EISDIR);
	else if (h->slot == MFSD_SLOT_MANIFEST)
		mfsd_model_served(m, mfsd_data_read_mem(&ctx->data, req,
							m->manifest,
							m->manifest_len, size,
							off));
	else if (h->slot == MFSD_SLOT_METADATA)
		mfsd_model_served(m, mfsd_data_read_mem(&ctx->data, req,
							m->metadata,
							m->metadata_len, size,
							off));
	else
		mfsd_data_read(&ctx->data, req, m, h->slot - MFSD_SLOT_ARRAY0,
			       size, off);
}

static void mfsd_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	struct mfsd_ctx *ctx = mfsd_ctx(req);
	struct mfsd_handle *h = mfsd_handle(req, fi);

	(void)ino;
	if (!h) {
		fuse_reply_err(req, EBADF);
		return;
	}
	/* The reply may still read the handle's memory after the kernel
	 * let the reader go on and close the file. */
	mfsd_handle_get(h);
	mfsd_read_handle(ctx, req, h, size, off);
	mfsd_handle_put(ctx, h);
}

/* Ends the open file's reference of @fi's handle.  A release sent again
 * after a takeover may name a handle its first sending ended. */
static void mfsd_release_handle(fuse_req_t req, struct fuse_file_info *fi)
{
	struct mfsd_handle *h = mfsd_handle(req, fi);

	if (h)
		mfsd_handle_put(mfsd_ctx(req), h);
	fuse_reply_err(req, 0);
}

static void mfsd_release(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	(void)ino;
	mfsd_release_handle(req, fi);
}

/* ------------------------------------------------------------------ */
/* Directories                                                         */
/* ------------------------------------------------------------------ */

static void mfsd_opendir(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	struct mfsd_ctx *ctx = mfsd_ctx(req);
	struct mfsd_handle *h = mfsd_handle_new();
	struct mfsd_model *m = NULL;
	uint64_t slot;
	ssize_t n;
	int rc = 0;

	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (ino == MFSD_ROOT_INO) {
		h->kind = MFSD_H_ROOT_DIR;
		n = mfsd_table_list(ctx->table, &h->keys);
		rc = n < 0 ? (int)n : 0;
		h->nkeys = n < 0 ? 0 : (size_t)n;
	} else if (ino == MFSD_STATUS_INO) {
		rc = -ENOTDIR;
	} else {
		rc = mfsd_resolve(ctx, ino, &m, &slot);
		if (rc == 0 && slot != MFSD_SLOT_DIR)
			rc = -ENOTDIR;
		if (rc == 0) {
			/* The directory handle keeps the model alive. */
			mfsd_table_open_dir(ctx->table, m);
			h->kind = MFSD_H_MODEL_DIR;
			h->m = m;
		}
		if (m)
			mfsd_table_put(ctx->table, m);
	}
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	mfsd_reply_open(req, fi, h, rc);
}

/* One directory entry to emit. */
struct mfsd_dirent {
	const char *name;
	struct fuse_entry_param e; /* e.ino 0: no lookup is taken */
	struct mfsd_model *m;      /* busy model whose lookup is counted */
	uint64_t slot;             /* the entry's slot of m */
};

/* Fills entry @pos of the root listing.  false past the end. */
static bool mfsd_root_entry(struct mfsd_ctx *ctx, struct mfsd_handle *h,
			    uint64_t pos, bool plus, struct mfsd_dirent *d)
{
	const struct mfsd_dirent_model *k;

	memset(d, 0, sizeof(*d));
	if (pos == MFSD_DIR_DOT || pos == MFSD_DIR_DOTDOT) {
		d->name = pos == MFSD_DIR_DOT ? "." : "..";
		mfsd_stat_root(ctx->table, &d->e.attr);
		return true;
	}
	if (pos == MFSD_DIR_FIRST) {
		d->name = MFS_STATUS_FILE;
		mfsd_entry_status(ctx, &d->e);
		return true;
	}
	if (pos - MFSD_DIR_FIRST - 1 >= h->nkeys)
		return false;
	d->slot = MFSD_SLOT_DIR;
	k = &h->keys[pos - MFSD_DIR_FIRST - 1];
	d->name = k->key;
	d->e.attr.st_ino = mfsd_ino(k->gen, MFSD_SLOT_DIR);
	d->e.attr.st_mode = S_IFDIR;
	if (plus) {
		/* The kernel caches the entry as a lookup: it must name what
		 * the key names now, not the model of the opendir snapshot
		 * (replaced since, and already invalidated).  A key removed
		 * since is listed without attributes (ino 0: no lookup). */
		d->m = mfsd_table_get_key(ctx->table, k->key);
		if (d->m) {
			mfsd_stat_slot(d->m, MFSD_SLOT_DIR, &d->e.attr);
			d->e.ino = d->e.attr.st_ino;
			d->e.generation = d->m->gen;
			d->e.attr_timeout = MFSD_ATTR_TIMEOUT;
			d->e.entry_timeout = MFSD_ENTRY_TIMEOUT;
		}
	}
	return true;
}

/* Fills entry @pos of a model directory listing.  false past the end. */
static bool mfsd_model_entry(struct mfsd_handle *h, uint64_t pos, bool plus,
			     struct mfsd_dirent *d)
{
	struct mfsd_model *m = h->m;
	uint64_t slot = pos - MFSD_DIR_FIRST + MFSD_SLOT_MANIFEST;

	memset(d, 0, sizeof(*d));
	if (pos == MFSD_DIR_DOT || pos == MFSD_DIR_DOTDOT) {
		d->name = pos == MFSD_DIR_DOT ? "." : "..";
		mfsd_stat_slot(m, MFSD_SLOT_DIR, &d->e.attr);
		if (pos == MFSD_DIR_DOTDOT)
			d->e.attr.st_ino = MFSD_ROOT_INO;
		return true;
	}
	if (slot >= mfsd_slot_count(m))
		return false;
	d->slot = slot;
	d->name = mfsd_slot_name(m, slot);
	mfsd_stat_slot(m, slot, &d->e.attr);
	if (plus) {
		d->e.ino = d->e.attr.st_ino;
		d->e.generation = m->gen;
		d->e.attr_timeout = MFSD_ATTR_TIMEOUT;
		d->e.entry_timeout = MFSD_ENTRY_TIMEOUT;
		d->m = m;
	}
	return true;
}

/* Adds @d at @buf (@room bytes left); returns the bytes it takes, more
 * than @room if it did not fit (and then was not added). */
static size_t mfsd_add_dirent(fuse_req_t req, char *buf, size_t room,
			      const struct mfsd_dirent *d, uint64_t next,
			      bool plus)
{
	if (plus)
		return fuse_add_direntry_plus(req, buf, room, d->name, &d->e,
					      (off_t)next);
	return fuse_add_direntry(req, buf, room, d->name, &d->e.attr,
				 (off_t)next);
}

/* Answers a readdir of handle @h (referenced by the caller). */
static void mfsd_readdir_handle(struct mfsd_ctx *ctx, fuse_req_t req,
				struct mfsd_handle *h, size_t size, off_t off,
				bool plus)
{
	char *buf = malloc(size ? size : 1);
	size_t used = 0;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (uint64_t pos = (uint64_t)off;; pos++) {
		struct mfsd_dirent d;
		bool more = h->kind == MFSD_H_ROOT_DIR
				    ? mfsd_root_entry(ctx, h, pos, plus, &d)
				    : mfsd_model_entry(h, pos, plus, &d);
		size_t n;

		if (!more)
			break;
		n = mfsd_add_dirent(req, buf + used, size - used, &d, pos + 1,
				    plus);
		/* The kernel takes a lookup of every entry it receives
		 * with a non-zero ino. */
		if (n <= size - used && d.e.ino != 0 && d.m)
			mfsd_table_lookup(ctx->table, d.m, d.slot, 1);
		if (d.m && h->kind == MFSD_H_ROOT_DIR)
			mfsd_table_put(ctx->table, d.m);
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void mfsd_readdir_common(fuse_req_t req, size_t size, off_t off,
				struct fuse_file_info *fi, bool plus)
{
	struct mfsd_ctx *ctx = mfsd_ctx(req);
	struct mfsd_handle *h = mfsd_handle(req, fi);

	if (!h) {
		fuse_reply_err(req, EBADF);
		return;
	}
	mfsd_handle_get(h);
	mfsd_readdir_handle(ctx, req, h, size, off, plus);
	mfsd_handle_put(ctx, h);
}

static void mfsd_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			 off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	mfsd_readdir_common(req, size, off, fi, false);
}

static void mfsd_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			     off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	mfsd_readdir_common(req, size, off, fi, true);
}

static void mfsd_releasedir(fuse_req_t req, fuse_ino_t ino,
			    struct fuse_file_info *fi)
{
	(void)ino;
	mfsd_release_handle(req, fi);
}

static void mfsd_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct mfsd_ctx *ctx = mfsd_ctx(req);
	struct mfsd_model **models;
	struct statvfs sv;
	uint64_t raw = 0, nmodels = 0;
	ssize_t n = mfsd_table_get_all(ctx->table, &models);

	(void)ino;
	if (n < 0) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		/* Busy: retired cannot change under us. */
		if (!models[i]->retired) {
			raw += models[i]->raw_size;
			nmodels++;
		}
	}
	mfsd_table_put_all(ctx->table, models, (size_t)n);
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = MFSD_STATFS_BSIZE;
	sv.f_frsize = MFSD_STATFS_BSIZE;
	sv.f_blocks = (fsblkcnt_t)((raw + MFSD_STATFS_BSIZE - 1) /
				   MFSD_STATFS_BSIZE);
	sv.f_files = (fsfilcnt_t)nmodels;
	sv.f_namemax = NAME_MAX;
	sv.f_flag = ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

/* ------------------------------------------------------------------ */
/* Extended attributes                                                 */
/* ------------------------------------------------------------------ */

/* Names listed per kind of inode, each with its NUL. */
static const char mfsd_array_xattrs[] =
	MFS_XATTR_DTYPE "\0" MFS_XATTR_SHAPE "\0" MFS_XATTR_CODEC;
static const char mfsd_dir_xattrs[] =
	MFS_XATTR_OPEN_HANDLES "\0" MFS_XATTR_HOLDERS;
static const char mfsd_root_xattrs[] = MFS_XATTR_STORE_DIR;

static void mfsd_shape_text(const mfs_array_info *ai, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (uint32_t i = 0; i < ai->ndim && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%llu",
					 i ? "," : "",
					 (unsigned long long)ai->shape[i]);
}

/* The value of xattr @name of slot @slot of busy @m for the caller of
 * @req, malloc'd in *@out.  0, -ENODATA or -ENOMEM. */
static int mfsd_xattr_value(fuse_req_t req, struct mfsd_model *m,
			    uint64_t slot, const char *name, char **out)
{
	char text[MFSD_SHAPE_TEXT_MAX];
	unsigned long long nopen;
	const mfs_array_info *ai;
	struct mfsd_cred cred;
	char *holders;

	if (slot == MFSD_SLOT_DIR) {
		if (strcmp(name, MFS_XATTR_HOLDERS) != 0 &&
		    strcmp(name, MFS_XATTR_OPEN_HANDLES) != 0)
			return -ENODATA;
		/* The kernel let the caller read the directory; which of
		 * its holders it is shown depends on its uid alone. */
		mfsd_cred_ids_of_req(req, &cred);
		if (mfsd_status_holders(mfsd_ctx(req)->table, m, &cred,
					&holders, &nopen) < 0)
			return -ENOMEM;
		if (strcmp(name, MFS_XATTR_HOLDERS) == 0) {
			*out = holders;
			return 0;
		}
		free(holders);
		snprintf(text, sizeof(text), "%llu", nopen);
	} else if (slot >= MFSD_SLOT_ARRAY0) {
		ai = &m->arrays[slot - MFSD_SLOT_ARRAY0].info;
		if (strcmp(name, MFS_XATTR_DTYPE) == 0)
			snprintf(text, sizeof(text), "%s",
				 mfs_dtype_name(ai->dtype));
		else if (strcmp(name, MFS_XATTR_CODEC) == 0)
			snprintf(text, sizeof(text), "%s",
				 mfs_codec_name(ai->codec));
		else if (strcmp(name, MFS_XATTR_SHAPE) == 0)
			mfsd_shape_text(ai, text, sizeof(text));
		else
			return -ENODATA;
	} else {
		return -ENODATA;
	}
	*out = strdup(text);
	return *out ? 0 : -ENOMEM;
}

/* Replies with @len bytes of @val: the size if @size is 0, ERANGE if it
 * does not fit. */
static void mfsd_reply_xattr_bytes(fuse_req_t req, const char *val,
				   size_t len, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, len);
}

/*
 * The kernel's namespaces modelfs has no attribute in at all: security
 * labels (SELinux, SMACK, capabilities) and system.* (POSIX ACLs).
 */
#define MFSD_XATTR_NS_SECURITY "security."
#define MFSD_XATTR_NS_SYSTEM "system."

/* Whether @name is in a namespace modelfs does not support (EOPNOTSUPP)
 * rather than a name it lacks (ENODATA). */
static bool mfsd_xattr_unsupported(const char *name)
{
	return strncmp(name, MFSD_XATTR_NS_SECURITY,
		       strlen(MFSD_XATTR_NS_SECURITY)) == 0 ||
	       strncmp(name, MFSD_XATTR_NS_SYSTEM,
		       strlen(MFSD_XATTR_NS_SYSTEM)) == 0;
}

/*
 * The kernel caches no negative getxattr answer (but ENOSYS, which would
 * turn off user.modelfs.* too), so `ls -l` asks for security.selinux and
 * both ACL names of every entry it shows, each a round trip.  ls(1) stops
 * asking a device once it answers EOPNOTSUPP, hence that answer for the
 * namespaces modelfs has nothing in (`ls -l` of 10,000 models sent
 * 30,003 GETXATTR the first time and 10,003 each time after; now 2).
 * Other names answer ENODATA.
 */
static void mfsd_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			  size_t size)
{
	struct mfsd_ctx *ctx = mfsd_ctx(req);
	struct mfsd_model *m;
	uint64_t slot;
	char *val = NULL;
	int rc;

	if (mfsd_xattr_unsupported(name)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (ino == MFSD_ROOT_INO && strcmp(name, MFS_XATTR_STORE_DIR) == 0 &&
	    !ctx->remote) {
		/* Where clients publish (lib/mount.c reads it).  A URL
		 * store's models are published at its origin: none here. */
		mfsd_reply_xattr_bytes(req, ctx->opt.store_dir,
				       strlen(ctx->opt.store_dir), size);
		return;
	}
	rc = mfsd_resolve(ctx, ino, &m, &slot);
	if (rc < 0) {
		/* The root and .status exist but have no other
		 * attributes. */
		fuse_reply_err(req, mfsd_ino_gen(ino) == 0 ? ENODATA : -rc);
		return;
	}
	rc = mfsd_xattr_value(req, m, slot, name, &val);
	mfsd_table_put(ctx->table, m);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		mfsd_reply_xattr_bytes(req, val, strlen(val), size);
	free(val);
}

static void mfsd_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct mfsd_ctx *ctx = mfsd_ctx(req);
	struct mfsd_model *m;
	uint64_t slot;

	if (ino == MFSD_ROOT_INO) {
		mfsd_reply_xattr_bytes(req, mfsd_root_xattrs,
				       sizeof(mfsd_root_xattrs), size);
		return;
	}
	if (mfsd_resolve(ctx, ino, &m, &slot) < 0) {
		if (mfsd_ino_gen(ino) == 0)
			mfsd_reply_xattr_bytes(req, "", 0, size);
		else
			fuse_reply_err(req, ENOENT);
		return;
	}
	mfsd_table_put(ctx->table, m);
	if (slot == MFSD_SLOT_DIR)
		mfsd_reply_xattr_bytes(req, mfsd_dir_xattrs,
				       sizeof(mfsd_dir_xattrs), size);
	else if (slot >= MFSD_SLOT_ARRAY0)
		mfsd_reply_xattr_bytes(req, mfsd_array_xattrs,
				       sizeof(mfsd_array_xattrs), size);
	else
		mfsd_reply_xattr_bytes(req, "", 0, size);
}

/* ------------------------------------------------------------------ */
/* Everything that would write: EROFS                                  */
/* ------------------------------------------------------------------ */

/*
 * The mount is made read-only ("ro"), and on it the kernel answers every
 * write-like call with EROFS itself: none of these requests is sent.
 * But root may remount it read-write (mount(2) with MS_REMOUNT and no
 * MS_RDONLY: FUSE accepts that), and then the kernel passes each of them
 * on; these handlers keep the answer EROFS.  WRITE, FALLOCATE and
 * COPY_FILE_RANGE need a handle opened for writing, which mfsd_open and
 * mfsd_create never give: they cannot arrive, and have no handler.
 */
static void mfsd_erofs(fuse_req_t req)
{
	fuse_reply_err(req, EROFS);
}

/* SETATTR: chmod, chown, utimes, truncate of a path. */
static void mfsd_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			 int to_set, struct fuse_file_info *fi)
{
	(void)ino, (void)attr, (void)to_set, (void)fi;
	mfsd_erofs(req);
}

/* MKNOD: mknod, mkfifo. */
static void mfsd_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode, dev_t rdev)
{
	(void)parent, (void)name, (void)mode, (void)rdev;
	mfsd_erofs(req);
}

/* MKDIR. */
static void mfsd_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode)
{
	(void)parent, (void)name, (void)mode;
	mfsd_erofs(req);
}

/* UNLINK and RMDIR (a rmdir of a model directory). */
static void mfsd_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent, (void)name;
	mfsd_erofs(req);
}

/* SYMLINK. */
static void mfsd_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			 const char *name)
{
	(void)link, (void)parent, (void)name;
	mfsd_erofs(req);
}

/* RENAME and RENAME2 (renameat2 flags). */
static void mfsd_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			fuse_ino_t newparent, const char *newname,
			unsigned int flags)
{
	(void)parent, (void)name, (void)newparent, (void)newname, (void)flags;
	mfsd_erofs(req);
}

/* LINK. */
static void mfsd_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		      const char *newname)
{
	(void)ino, (void)newparent, (void)newname;
	mfsd_erofs(req);
}

/* SETXATTR, of any name (the user.modelfs.* ones are read-only). */
static void mfsd_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			  const char *value, size_t size, int flags)
{
	(void)ino, (void)name, (void)value, (void)size, (void)flags;
	mfsd_erofs(req);
}

/* REMOVEXATTR. */
static void mfsd_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino, (void)name;
	mfsd_erofs(req);
}

/* CREATE: open(O_CREAT) of a name not known to exist, whatever the
 * access mode. */
static void mfsd_create(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode, struct fuse_file_info *fi)
{
	(void)parent, (void)name, (void)mode, (void)fi;
	mfsd_erofs(req);
}

/* ------------------------------------------------------------------ */
/* Takeover                                                            */
/* ------------------------------------------------------------------ */

/* Fills new handle @h as the predecessor's record @rec describes it.
 * 0, -ENOENT (its model is gone) or -ENOMEM. */
static int mfsd_adopt_fill(struct mfsd_ctx *ctx, struct mfsd_handle *h,
			   const struct mfsd_handoff_handle *rec)
{
	/* Without the opener's supplementary groups: shown less, never
	 * more than it may see. */
	struct mfsd_cred cred = {.uid = rec->uid, .gid = rec->gid};
	struct mfsd_model *m;
	ssize_t n;
	int rc = 0;

	switch (atomic_load(&rec->kind)) {
	case MFSD_HK_STATUS:
		return mfsd_status_snapshot(ctx, &cred, &h->text, &h->text_len);
	case MFSD_HK_ROOT_DIR:
		h->kind = MFSD_H_ROOT_DIR;
		n = mfsd_table_list(ctx->table, &h->keys);
		h->nkeys = n < 0 ? 0 : (size_t)n;
		return n < 0 ? (int)n : 0;
	default: /* FILE, MODEL_DIR */
		break;
	}
	m = mfsd_table_get_gen(ctx->table, rec->gen);
	if (!m)
		return -ENOENT;
	if (rec->kind == MFSD_HK_FILE) {
		rc = mfsd_table_open_handle(ctx->table, m, rec->pid, rec->uid,
					    rec->slot);
		if (rc == 0) {
			h->kind = MFSD_H_FILE;
			h->pid = rec->pid;
			h->slot = rec->slot;
			h->m = m;
		}
	} else {
		mfsd_table_open_dir(ctx->table, m);
		h->kind = MFSD_H_MODEL_DIR;
		h->m = m;
	}
	mfsd_table_put(ctx->table, m);
	return rc;
}

int mfsd_ops_adopt_handles(struct mfsd_ctx *ctx)
{
	struct mfsd_handoff_region *r = ctx->handoff->r;
	uint32_t used = atomic_load(&r->handles_used);
	size_t adopted = 0, lost = 0;

	for (uint32_t id = 1; id < used; id++) {
		struct mfsd_handoff_handle rec = r->handles[id];
		struct mfsd_handle *h;
		int rc = -ENOMEM;

		if (rec.kind == MFSD_HK_FREE)
			continue;
		h = mfsd_handle_new();
		if (h)
			rc = mfsd_adopt_fill(ctx, h, &rec);
		if (rc == -ENOMEM) {
			free(h ? h->text : NULL);
			free(h);
			return rc;
		}
		if (rc < 0) {
			/* Its model was lost: the kernel's reads of it fail
			 * (EBADF), its release ends nothing. */
			mfsd_handle_free(ctx, h);
			mfsd_handoff_handle_end(ctx->handoff, id);
			lost++;
			continue;
		}
		h->id = id;
		mfsd_handoff_handle_adopt(ctx->handoff, id, h);
		adopted++;
	}
	if (adopted || lost)
		mfsd_log(MFSD_LOG_INFO, "takeover: %zu open handles taken "
			 "over, %zu lost", adopted, lost);
	return 0;
}

void mfsd_ops_close_handles(struct mfsd_ctx *ctx)
{
	uint32_t used = atomic_load(&ctx->handoff->r->handles_used);

	for (uint32_t id = 1; id < used; id++) {
		struct mfsd_handle *h = mfsd_handoff_handle_get(ctx->handoff, id);

		if (h)
			mfsd_handle_close(ctx, h);
	}
}

/* ------------------------------------------------------------------ */
/* Session                                                             */
/* ------------------------------------------------------------------ */

static void mfsd_init(void *userdata, struct fuse_conn_info *conn)
{
	struct mfsd_ctx *ctx = userdata;

	/* Requests as large as the session buffer allows; max_write also
	 * sets the kernel's max_pages, which bounds reads and readahead. */
	conn->max_read = ctx->opt.max_read;
	conn->max_write = ctx->opt.max_read;
	conn->max_readahead = UINT_MAX;
	/* Contents never change under an inode: no invalidation on mtime. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	/* Always READDIRPLUS: `ls -l` of a large store then needs no LOOKUP
	 * per entry (10,000 models: 1.8 s -> 1.1 s), at the price of
	 * attributes a plain `ls` does not use (16 -> 50 ms). */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	if (ctx->opt.io == MFSD_IO_SPLICE &&
	    (conn->capable & FUSE_CAP_SPLICE_WRITE))
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	/*
	 * No POSIX ACLs: modelfs has none, and default_permissions checks
	 * the mode bits.  With the capability the kernel caches each
	 * inode's (absent) ACLs but fetches them first, and must then be
	 * answered ENODATA, not EOPNOTSUPP (an error from the ACL fetch
	 * would fail its permission checks): `ls -l` of 10,000 models sent
	 * 20,003 GETXATTR the first time, 1.6 s.  Without it, the ACL
	 * names answer EOPNOTSUPP like security.* (mfsd_getxattr) and ls
	 * stops asking: 2 GETXATTR, 0.16 s first and 0.09 s warm, where
	 * ext4 took 0.16 s warm on the same entries.
	 */
	conn->want &= ~FUSE_CAP_POSIX_ACL;
	/* Requests are read with plain reads, through the custom I/O that
	 * replays INIT to a successor (handoff.h). */
	conn->want &= ~FUSE_CAP_SPLICE_READ;
	mfsd_log(MFSD_LOG_DEBUG,
		 "init: protocol %u.%u, max_read %u, max_readahead %u, "
		 "capable 0x%x, want 0x%x",
		 conn->proto_major, conn->proto_minor, conn->max_read,
		 conn->max_readahead, conn->capable, conn->want);
}

const struct fuse_lowlevel_ops mfsd_ops = {
	.init = mfsd_init,
	.lookup = mfsd_lookup,
	.forget = mfsd_forget,
	.forget_multi = mfsd_forget_multi,
	.getattr = mfsd_getattr,
	.setattr = mfsd_setattr,
	.mknod = mfsd_mknod,
	.mkdir = mfsd_mkdir,
	.unlink = mfsd_unlink,
	.rmdir = mfsd_unlink,
	.symlink = mfsd_symlink,
	.rename = mfsd_rename,
	.link = mfsd_link,
	.open = mfsd_open,
	.read = mfsd_read,
	.release = mfsd_release,
	.opendir = mfsd_opendir,
	.readdir = mfsd_readdir,
	.readdirplus = mfsd_readdirplus,
	.releasedir = mfsd_releasedir,
	.statfs = mfsd_statfs,
	.setxattr = mfsd_setxattr,
	.getxattr = mfsd_getxattr,
	.listxattr = mfsd_listxattr,
	.removexattr = mfsd_removexattr,
	.create = mfsd_create,
};
