/*
 * watch.c - the watcher thread (see watch.h).
 *
 * A round: wait for inotify events, posts or a pending retry; refresh
 * every container name an event names (the event's kind does not
 * matter: a refresh compares the directory with the table, so events
 * seen late, twice or out of order do no harm); send the notifications
 * for what changed; then maintain the removed models and the budget.
 * No store or watcher lock is held while a notification is sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "evict.h"
#include "inode.h"
#include "lease.h"
#include "vec.h"
#include "clock.h"
#include "log.h"
#include "watch.h"

/* What changes a container's name in the directory, or its mode; and
 * IN_MODIFY, for a container rewritten in place without being opened for
 * writing (truncate(2)): the lease caught the change, the refresh that
 * follows takes the changed file in.  Writers' temporary files are
 * hidden, so their writes cost an event read and no more. */
#define MFSD_WATCH_MASK                                                  \
	(IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE | IN_DELETE |      \
	 IN_ATTRIB | IN_CREATE | IN_MODIFY | IN_DELETE_SELF |            \
	 IN_MOVE_SELF | IN_ONLYDIR)
/* Room for many events per read (each is 16 bytes plus its name). */
#define MFSD_INOTIFY_BUF (64u << 10)
#define MFSD_PROC_FD_PATH_MAX 64
/* Changes applied at once; a fuller round is applied in parts. */
#define MFSD_BATCH 64u
#define MFSD_NS_PER_MS UINT64_C(1000000)
/*
 * Entries of a removed model that the kernel looked up again after they
 * were deleted (a stat through an open directory, say) are deleted
 * again after this delay, doubling up to the maximum.
 */
#define MFSD_SWEEP_FIRST_NS (100 * MFSD_NS_PER_MS)
#define MFSD_SWEEP_MAX_NS (10000 * MFSD_NS_PER_MS)
/* Without memory for a maintenance round, try again after this. */
#define MFSD_RETRY_NS (1000 * MFSD_NS_PER_MS)
/* How long mfsd_watch_stop waits for the thread before giving up. */
#define MFSD_STOP_GRACE_SEC 2

static void mfsd_count(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* Notifications                                                       */
/* ------------------------------------------------------------------ */

static void mfsd_n_inval_entry(struct mfsd_watch *w, uint64_t parent,
			       const char *name)
{
	mfsd_count(&w->notifications, 1);
	(void)w->notifier.inval_entry(w->notifier.arg, parent, name);
}

static void mfsd_n_delete(struct mfsd_watch *w, uint64_t parent,
			  uint64_t child, const char *name)
{
	mfsd_count(&w->notifications, 1);
	(void)w->notifier.delete_entry(w->notifier.arg, parent, child, name);
}

static void mfsd_n_inval_inode(struct mfsd_watch *w, uint64_t ino,
			       int64_t off, int64_t len)
{
	mfsd_count(&w->notifications, 1);
	(void)w->notifier.inval_inode(w->notifier.arg, ino, off, len);
}

/* Deletes the kernel's entries of busy, unretired @m's files, so each
 * inode is forgotten as soon as no process uses it. */
static void mfsd_delete_files(struct mfsd_watch *w, struct mfsd_model *m)
{
	uint64_t dir = mfsd_ino(m->gen, MFSD_SLOT_DIR);

	for (uint64_t slot = MFSD_SLOT_MANIFEST; slot < mfsd_slot_count(m);
	     slot++)
		mfsd_n_delete(w, dir, mfsd_ino(m->gen, slot),
			      mfsd_slot_name(m, slot));
}

/*
 * A model left the namespace under @key: its files' entries are deleted
 * first (while the directory still leads to them), so the kernel forgets
 * each file inode as soon as no process uses it; then the key's entry is
 * invalidated.  The directory itself is not deleted: that would mark it
 * dead, and a process already walking a path through it (to the old
 * version of a replaced key, say) would get ENOENT instead of the old
 * files.  (The kernel drops the directory's invalidated entry, and so
 * forgets its inode, once nothing uses it; if something keeps it, the
 * model retires after a grace period once its files are forgotten, see
 * table.h, so the directory costs no descriptor.)  Retries are scheduled
 * for file entries the kernel looks up again.
 */
static void mfsd_model_left(struct mfsd_watch *w, uint64_t gen,
			    const char *key)
{
	struct mfsd_model *m = mfsd_table_get_gen(w->table, gen);
	struct mfsd_model_counts c;
	uint64_t now = mfsd_now_ns();

	if (m) {
		mfsd_table_model_counts(w->table, m, &c);
		if (!c.retired)
			mfsd_delete_files(w, m);
	}
	mfsd_n_inval_entry(w, MFSD_ROOT_INO, key);
	if (!m)
		return;
	m->sweep_backoff_ns = MFSD_SWEEP_FIRST_NS;
	m->sweep_due_ns = now + MFSD_SWEEP_FIRST_NS;
	if (w->next_sweep_ns == 0 || m->sweep_due_ns < w->next_sweep_ns)
		w->next_sweep_ns = m->sweep_due_ns;
	mfsd_table_put(w->table, m);
}

/* The permissions of model @gen changed: drop its cached attributes. */
static void mfsd_model_attr(struct mfsd_watch *w, uint64_t gen)
{
	struct mfsd_model *m = mfsd_table_get_gen(w->table, gen);

	if (!m)
		return;
	for (uint64_t slot = MFSD_SLOT_DIR; slot < mfsd_slot_count(m); slot++)
		mfsd_n_inval_inode(w, mfsd_ino(gen, slot), -1, 0);
	mfsd_table_put(w->table, m);
}

/* Changes waiting to be applied, gathered during one round. */
struct mfsd_batch {
	struct mfsd_watch *w;
	struct mfsd_change c[MFSD_BATCH];
	size_t n;
	bool root_dirty; /* the root's listing changed */
	size_t changes;  /* changes added this round */
};

/* Sends the notifications for the changes in @b and empties it. */
static void mfsd_batch_flush(struct mfsd_batch *b)
{
	struct mfsd_watch *w = b->w;

	for (size_t i = 0; i < b->n; i++) {
		const struct mfsd_change *c = &b->c[i];

		switch (c->kind) {
		case MFSD_CHANGE_ADDED:
			/* Drops a cached negative entry of the key. */
			mfsd_n_inval_entry(w, MFSD_ROOT_INO, c->key);
			b->root_dirty = true;
			break;
		case MFSD_CHANGE_REPLACED:
		case MFSD_CHANGE_REMOVED:
			mfsd_model_left(w, c->old_gen, c->key);
			b->root_dirty = true;
			break;
		case MFSD_CHANGE_ATTR:
			mfsd_model_attr(w, c->old_gen);
			break;
		case MFSD_CHANGE_ROOT_ATTR:
			mfsd_n_inval_inode(w, MFSD_ROOT_INO, -1, 0);
			break;
		}
	}
	b->n = 0;
	if (b->root_dirty)
		/* Drops the root's cached listing (its page cache). */
		mfsd_n_inval_inode(w, MFSD_ROOT_INO, 0, 0);
	b->root_dirty = false;
}

/* An mfsd_change_fn: adds @c to the batch, applying a full one first. */
static void mfsd_batch_add(void *arg, const struct mfsd_change *c)
{
	struct mfsd_batch *b = arg;

	if (b->n == MFSD_BATCH)
		mfsd_batch_flush(b);
	b->c[b->n++] = *c;
	b->changes++;
}

/* ------------------------------------------------------------------ */
/* Events                                                              */
/* ------------------------------------------------------------------ */

/* An event about STORE_DIR itself. */
static void mfsd_self_event(struct mfsd_watch *w, uint32_t mask,
			    struct mfsd_batch *b)
{
	if (mask & IN_ATTRIB)
		mfsd_follow_refresh_root(w->table, mfsd_batch_add, b);
	if (mask & (IN_DELETE_SELF | IN_MOVE_SELF))
		mfsd_log(MFSD_LOG_WARNING, "store directory %s was %s; still "
			 "serving the directory that was opened",
			 w->table->dir_path,
			 (mask & IN_DELETE_SELF) ? "deleted" : "moved");
	if (mask & IN_IGNORED)
		mfsd_log(MFSD_LOG_WARNING, "store directory %s is no longer "
			 "watched: it is gone", w->table->dir_path);
}

/* Refreshes store entry @name: here unless a container must be loaded,
 * which goes to the loader so that a slow one does not hold the
 * watcher. */
static void mfsd_refresh_later(struct mfsd_watch *w, const char *name,
			       struct mfsd_batch *b)
{
	int rc = mfsd_follow_refresh_quick(w->table, name, mfsd_batch_add, b);

	if (rc != MFSD_REFRESH_NEEDS_LOAD)
		return;
	if (w->loader && mfsd_loader_push(w->loader, name) == 0)
		return;
	/* No loader, or no memory to queue the name. */
	(void)mfsd_follow_refresh(w->table, name, mfsd_batch_add, b);
}

/* What an mfsd_name_fn of a rescan passes along. */
struct mfsd_rescan_ctx {
	struct mfsd_watch *w;
	struct mfsd_batch *b;
};

/* An mfsd_name_fn: refreshes each name of a rescan. */
static void mfsd_rescan_name(void *arg, const char *name)
{
	struct mfsd_rescan_ctx *r = arg;

	mfsd_refresh_later(r->w, name, r->b);
}

/* Reads the pending inotify events and refreshes what they name. */
static void mfsd_watch_read(struct mfsd_watch *w, struct mfsd_batch *b)
{
	char buf[MFSD_INOTIFY_BUF]
		__attribute__((aligned(__alignof__(struct inotify_event))));
	bool overflow = false;
	ssize_t n;

	while ((n = read(w->ifd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const void *)p;

			p += sizeof(*ev) + ev->len;
			mfsd_count(&w->events, 1);
			if (ev->mask & IN_Q_OVERFLOW)
				overflow = true;
			else if (ev->len == 0 || ev->name[0] == '\0')
				mfsd_self_event(w, ev->mask, b);
			else if (ev->name[0] != '.')
				/* Hidden names are writers' temporary
				 * files: never models. */
				mfsd_refresh_later(w, ev->name, b);
		}
	}
	if (overflow) {
		mfsd_count(&w->overflows, 1);
		mfsd_log(MFSD_LOG_WARNING, "inotify queue overflow: rescanning "
			 "%s", w->table->dir_path);
		struct mfsd_rescan_ctx r = {w, b};

		(void)mfsd_follow_scan_names(w->table, mfsd_rescan_name, &r);
	}
}

/* ------------------------------------------------------------------ */
/* Maintenance                                                         */
/* ------------------------------------------------------------------ */

/*
 * Maintains removed model @m that no handle holds: once the kernel has
 * forgotten its files (and no directory handle is open), retires it
 * after the grace period; else retries deleting the file entries the
 * kernel still remembers, right away after a kick (a model just lost its
 * last handle), else when its retry is due.  Returns when @m wants the
 * next round (0: none).
 */
static uint64_t mfsd_sweep(struct mfsd_watch *w, struct mfsd_model *m,
			   const struct mfsd_model_counts *c, bool kicked,
			   uint64_t now)
{
	if (c->retired || c->state == MFSD_MODEL_PUBLISHED || c->nopen)
		return 0;
	if (c->nlookup_files == 0)
		return c->ndirs ? 0
				: mfsd_table_retire(w->table, m,
						    w->retire_grace_ns);
	if (!kicked && now < m->sweep_due_ns)
		return m->sweep_due_ns;
	mfsd_delete_files(w, m);
	if (m->sweep_backoff_ns == 0)
		m->sweep_backoff_ns = MFSD_SWEEP_FIRST_NS;
	m->sweep_due_ns = now + m->sweep_backoff_ns;
	m->sweep_backoff_ns = m->sweep_backoff_ns * 2 > MFSD_SWEEP_MAX_NS
				      ? MFSD_SWEEP_MAX_NS
				      : m->sweep_backoff_ns * 2;
	return m->sweep_due_ns;
}

/* Drops the kernel's and the backing file's cached pages of busy model
 * @m, which had @bytes cached by the estimate, unless it is held now. */
static void mfsd_evict(struct mfsd_watch *w, struct mfsd_model *m,
		       uint64_t bytes)
{
	struct mfsd_model_counts c;

	mfsd_table_model_counts(w->table, m, &c);
	/* A handle opened since the choice: the model is in use again. */
	if (c.nopen || c.retired)
		return;
	for (uint64_t slot = MFSD_SLOT_MANIFEST; slot < mfsd_slot_count(m);
	     slot++)
		mfsd_n_inval_inode(w, mfsd_ino(m->gen, slot), 0, 0);
	(void)posix_fadvise(mfs_container_fd(m->container), 0, 0,
			    POSIX_FADV_DONTNEED);
	atomic_store(&m->pc_bytes, 0);
	mfsd_count(&m->pc_evictions, 1);
	mfsd_count(&w->evictions, 1);
	mfsd_count(&w->evicted_bytes, bytes);
	mfsd_log(MFSD_LOG_DEBUG, "page cache of model %s (generation %llu, "
		 "about %llu bytes) dropped for the budget", m->key,
		 (unsigned long long)m->gen, (unsigned long long)bytes);
}

/* Orders a generation against a tracked candidate (an
 * mfsd_vec_cmp_fn). */
static int mfsd_cand_gen_cmp(const void *key, const void *elem)
{
	uint64_t gen = *(const uint64_t *)key;
	const struct mfsd_evict_cand *c = elem;

	return (gen > c->gen) - (gen < c->gen);
}

/* Orders two tracked candidates by generation (for qsort). */
static int mfsd_cand_sort_gen(const void *a, const void *b)
{
	return mfsd_cand_gen_cmp(&((const struct mfsd_evict_cand *)a)->gen,
				 b);
}

/* Fills @out with what busy @m holds for the budget.  False if it is no
 * candidate: held, retired, never released or with nothing cached. */
static bool mfsd_budget_cand(struct mfsd_watch *w, struct mfsd_model *m,
			     struct mfsd_evict_cand *out)
{
	struct mfsd_model_counts c;
	uint64_t bytes = mfsd_model_cached(m);

	mfsd_table_model_counts(w->table, m, &c);
	if (c.retired || c.nopen || c.released_seq == 0 || bytes == 0)
		return false;
	*out = (struct mfsd_evict_cand){
		.gen = m->gen, .released_seq = c.released_seq, .bytes = bytes};
	return true;
}

/* Brings the tracked candidate of generation @gen, just released, up to
 * date: added, updated, or dropped if it is gone or no candidate.  0 or
 * -ENOMEM. */
static int mfsd_budget_track(struct mfsd_watch *w, uint64_t gen)
{
	size_t pos = mfsd_vec_lower_bound(w->tracked, w->ntracked,
					  sizeof(*w->tracked), &gen,
					  mfsd_cand_gen_cmp);
	bool found = pos < w->ntracked && w->tracked[pos].gen == gen;
	struct mfsd_model *m = mfsd_table_get_gen(w->table, gen);
	struct mfsd_evict_cand c;
	bool cand = m && mfsd_budget_cand(w, m, &c);
	int rc = 0;

	if (m)
		mfsd_table_put(w->table, m);
	if (cand && found) {
		w->tracked[pos] = c;
	} else if (cand) {
		rc = mfsd_vec_reserve((void **)&w->tracked, &w->tracked_cap,
				      w->ntracked + 1, sizeof(*w->tracked));
		if (rc == 0)
			mfsd_vec_insert(w->tracked, &w->ntracked,
					sizeof(*w->tracked), pos, &c);
	} else if (found) {
		mfsd_vec_remove(w->tracked, &w->ntracked, sizeof(*w->tracked),
				pos);
	}
	return rc;
}

/* Rebuilds the tracked candidates from every live model, after a
 * release went unnoted.  0 or -ENOMEM. */
static int mfsd_budget_rescan(struct mfsd_watch *w)
{
	struct mfsd_model **models;
	ssize_t n = mfsd_table_get_all(w->table, &models);
	int rc;

	if (n < 0)
		return (int)n;
	w->ntracked = 0;
	rc = mfsd_vec_reserve((void **)&w->tracked, &w->tracked_cap,
			      (size_t)n, sizeof(*w->tracked));
	/* get_all is in ascending gen, as tracked must be. */
	for (ssize_t i = 0; rc == 0 && i < n; i++)
		if (mfsd_budget_cand(w, models[i], &w->tracked[w->ntracked]))
			w->ntracked++;
	mfsd_table_put_all(w->table, models, (size_t)n);
	return rc;
}

/* Re-reads the tracked candidates (some may have been opened again
 * since their release, and hold no page cache for the budget then),
 * keeping those still candidates, in place. */
static void mfsd_budget_refresh(struct mfsd_watch *w)
{
	size_t keep = 0;

	for (size_t i = 0; i < w->ntracked; i++) {
		struct mfsd_model *m =
			mfsd_table_get_gen(w->table, w->tracked[i].gen);

		if (!m)
			continue;
		if (mfsd_budget_cand(w, m, &w->tracked[keep]))
			keep++;
		mfsd_table_put(w->table, m);
	}
	w->ntracked = keep;
}

/* If the tracked candidates exceed the budget, drops the pages of the
 * least recently released until the rest fit; they stop being tracked
 * (a model is tracked again at its next release). */
static void mfsd_budget_apply(struct mfsd_watch *w)
{
	size_t k;

	/* The common case: within budget, no model is touched. */
	if (mfsd_evict_total(w->tracked, w->ntracked) <= w->budget)
		return;
	mfsd_budget_refresh(w);
	k = mfsd_evict_pick(w->tracked, w->ntracked, w->budget);
	for (size_t i = 0; i < k; i++) {
		struct mfsd_model *m =
			mfsd_table_get_gen(w->table, w->tracked[i].gen);

		if (!m)
			continue;
		mfsd_evict(w, m, w->tracked[i].bytes);
		mfsd_table_put(w->table, m);
	}
	w->ntracked -= k;
	memmove(w->tracked, w->tracked + k, w->ntracked * sizeof(*w->tracked));
	/* pick sorted them by release; tracked is searched by gen. */
	qsort(w->tracked, w->ntracked, sizeof(*w->tracked),
	      mfsd_cand_sort_gen);
}

/*
 * Keeps the released models' page cache within the budget, the least
 * recently released going first.  Looks only at the models released
 * since the last pass, beside the candidates it tracks: a release
 * changes nothing for the others.  Passes are at least
 * w->budget_period_ns apart.  Without memory, every model is considered
 * again MFSD_RETRY_NS later.
 */
static void mfsd_budget(struct mfsd_watch *w, uint64_t now)
{
	uint64_t *gens;
	bool lost;
	size_t n;
	int rc = 0;

	/* Too soon after the last pass: the releases wait in the table
	 * (those that follow do not wake the thread) until the timer. */
	w->budget_waiting = now < w->budget_next_ns;
	if (w->budget_waiting)
		return;
	n = mfsd_table_take_released(w->table, &gens, &lost);
	if (n == 0 && !lost && !w->budget_rescan)
		return;
	w->budget_next_ns = now + w->budget_period_ns;
	if (lost || w->budget_rescan)
		rc = mfsd_budget_rescan(w);
	for (size_t i = 0; rc == 0 && !lost && i < n; i++)
		rc = mfsd_budget_track(w, gens[i]);
	free(gens);
	w->budget_rescan = rc < 0;
	if (rc == 0) {
		mfsd_budget_apply(w);
		return;
	}
	mfsd_log(MFSD_LOG_WARNING, "page-cache budget postponed: %s",
		 strerror(-rc));
	if (w->next_sweep_ns == 0 || now + MFSD_RETRY_NS < w->next_sweep_ns)
		w->next_sweep_ns = now + MFSD_RETRY_NS;
}

/* Has the transient load failures due now refreshed (all that wait for a
 * descriptor if @fd_freed).  Returns when the next falls due (0: none);
 * without memory, retries in MFSD_RETRY_NS. */
static uint64_t mfsd_retry_loads(struct mfsd_watch *w, bool fd_freed,
				 uint64_t now, struct mfsd_batch *b)
{
	char **names;
	uint64_t next;
	ssize_t n = mfsd_follow_retries(w->table, now, fd_freed, &names, &next);

	if (n < 0)
		return now + MFSD_RETRY_NS;
	for (ssize_t i = 0; i < n; i++) {
		mfsd_refresh_later(w, names[i], b);
		free(names[i]);
	}
	free(names);
	return next;
}

/* Sweeps and retires the removed models. */
static void mfsd_maintain(struct mfsd_watch *w, bool kicked)
{
	struct mfsd_model **models;
	uint64_t now = mfsd_now_ns(), next = 0;
	ssize_t n = mfsd_table_get_all(w->table, &models);

	for (ssize_t i = 0; i < n; i++) {
		struct mfsd_model_counts c;
		uint64_t due;

		mfsd_table_model_counts(w->table, models[i], &c);
		due = mfsd_sweep(w, models[i], &c, kicked, now);
		if (due && (next == 0 || due < next))
			next = due;
	}
	if (n >= 0) {
		mfsd_table_put_all(w->table, models, (size_t)n);
	} else {
		mfsd_log(MFSD_LOG_WARNING, "maintenance postponed: %s",
			 strerror((int)-n));
		next = now + MFSD_RETRY_NS;
	}
	w->next_sweep_ns = next;
}

/* ------------------------------------------------------------------ */
/* The loop                                                            */
/* ------------------------------------------------------------------ */

/* Poll timeout: until the next retry or waiting budget pass is due, or
 * @timeout_ms if sooner. */
static int mfsd_watch_timeout(const struct mfsd_watch *w, int timeout_ms)
{
	uint64_t now = mfsd_now_ns(), ms, due = w->next_sweep_ns;

	if (w->budget_waiting && (due == 0 || w->budget_next_ns < due))
		due = w->budget_next_ns;
	if (due == 0)
		return timeout_ms;
	ms = due > now ? (due - now + MFSD_NS_PER_MS - 1) / MFSD_NS_PER_MS
		       : 0;
	if (timeout_ms >= 0 && (uint64_t)timeout_ms < ms)
		return timeout_ms;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* What other threads asked of the watcher since the last round. */
struct mfsd_posts {
	struct mfsd_change *changes; /* malloc'd */
	size_t n;
	bool kicked;
	bool fd_freed;
};

/* Takes the posted changes and flags (applied after the lock is
 * dropped: a notification must never wait while a request thread waits
 * for the lock); a lost change dirties the root listing in @b. */
static void mfsd_take_posts(struct mfsd_watch *w, struct mfsd_posts *p,
			    struct mfsd_batch *b)
{
	pthread_mutex_lock(&w->lock);
	p->changes = w->queue;
	p->n = w->nqueue;
	w->queue = NULL;
	w->nqueue = w->queue_cap = 0;
	p->kicked = w->kicked;
	p->fd_freed = w->fd_freed;
	w->kicked = w->fd_freed = false;
	if (w->lost)
		b->root_dirty = true;
	w->lost = false;
	pthread_mutex_unlock(&w->lock);
}

/* True if a sweep, retire or load retry is due now. */
static bool mfsd_sweep_due(const struct mfsd_watch *w)
{
	return w->next_sweep_ns != 0 && mfsd_now_ns() >= w->next_sweep_ns;
}

void mfsd_watch_run_once(struct mfsd_watch *w, int timeout_ms)
{
	struct pollfd p[] = {{.fd = w->ifd, .events = POLLIN},
			     {.fd = w->efd, .events = POLLIN},
			     {.fd = w->sfd, .events = POLLIN}};
	struct mfsd_batch b = {.w = w};
	struct mfsd_posts posts;
	uint64_t drained, retry;

	if (poll(p, sizeof(p) / sizeof(p[0]),
		 mfsd_watch_timeout(w, timeout_ms)) > 0) {
		/* First: a writer waits for the lease to be let go. */
		if (p[2].revents & POLLIN)
			mfsd_lease_drain(w->sfd, w->table);
		if (p[1].revents & POLLIN)
			(void)!read(w->efd, &drained, sizeof(drained));
		if (p[0].revents & POLLIN)
			mfsd_watch_read(w, &b);
	}
	mfsd_take_posts(w, &posts, &b);
	for (size_t i = 0; i < posts.n; i++)
		mfsd_batch_add(&b, &posts.changes[i]);
	free(posts.changes);
	retry = mfsd_retry_loads(w, posts.fd_freed, mfsd_now_ns(), &b);
	mfsd_batch_flush(&b);
	/* A pass over every model, only when something can have changed
	 * what it does: not for events that changed nothing (the writes of
	 * a writer's temporary file, say), nor for the release of a
	 * published model. */
	if (posts.kicked || b.changes || mfsd_sweep_due(w))
		mfsd_maintain(w, posts.kicked);
	if (w->budget)
		mfsd_budget(w, mfsd_now_ns());
	if (retry && (w->next_sweep_ns == 0 || retry < w->next_sweep_ns))
		w->next_sweep_ns = retry;
}

static void *mfsd_watch_main(void *arg)
{
	struct mfsd_watch *w = arg;

	while (!atomic_load(&w->stop))
		mfsd_watch_run_once(w, -1);
	return NULL;
}

/* Wakes the thread (the eventfd counter only grows; never blocks). */
static void mfsd_watch_wake(struct mfsd_watch *w)
{
	uint64_t one = 1;

	(void)!write(w->efd, &one, sizeof(one));
}

int mfsd_watch_init(struct mfsd_watch *w, struct mfsd_table *s,
		    uint64_t budget)
{
	char path[MFSD_PROC_FD_PATH_MAX];
	int rc;

	memset(w, 0, sizeof(*w));
	w->table = s;
	w->budget = budget;
	w->retire_grace_ns = MFSD_RETIRE_GRACE_NS;
	w->budget_period_ns = MFSD_BUDGET_PERIOD_NS;
	w->efd = w->sfd = -1;
	/* Only the budget's pass needs to know which models were
	 * released. */
	s->note_releases = budget != 0;
	/* The open directory, not its path: see watch.h. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", s->dirfd);
	w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ifd < 0 || inotify_add_watch(w->ifd, path, MFSD_WATCH_MASK) < 0)
		goto fail;
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->efd < 0)
		goto fail;
	/* Without leases (unit tests) there are no breaks to wait for. */
	rc = mfsd_lease_signalfd();
	if (rc < 0 && rc != -ENOTSUP) {
		errno = -rc;
		goto fail;
	}
	w->sfd = rc < 0 ? -1 : rc;
	pthread_mutex_init(&w->lock, NULL);
	return 0;
fail:
	rc = -errno;
	mfsd_log(MFSD_LOG_ERR, "cannot watch %s: %s", s->dir_path,
		 strerror(errno));
	if (w->ifd >= 0)
		close(w->ifd);
	if (w->efd >= 0)
		close(w->efd);
	if (w->sfd >= 0)
		close(w->sfd);
	w->ifd = w->efd = w->sfd = -1;
	return rc;
}

int mfsd_watch_start(struct mfsd_watch *w, const struct mfsd_notifier *n)
{
	int rc;

	w->notifier = *n;
	mfsd_lease_adopt(w->table);
	rc = pthread_create(&w->tid, NULL, mfsd_watch_main, w);
	if (rc != 0)
		return -rc;
	w->started = true;
	return 0;
}

bool mfsd_watch_stop(struct mfsd_watch *w)
{
	struct timespec deadline;

	if (!w->started)
		return true;
	atomic_store(&w->stop, true);
	mfsd_watch_wake(w);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += MFSD_STOP_GRACE_SEC;
	if (pthread_timedjoin_np(w->tid, NULL, &deadline) != 0)
		return false;
	w->started = false;
	return true;
}

void mfsd_watch_destroy(struct mfsd_watch *w)
{
	if (w->ifd < 0)
		return;
	close(w->ifd);
	close(w->efd);
	if (w->sfd >= 0)
		close(w->sfd);
	w->ifd = w->efd = w->sfd = -1;
	free(w->queue);
	w->queue = NULL;
	free(w->tracked);
	w->tracked = NULL;
	w->ntracked = w->tracked_cap = 0;
	pthread_mutex_destroy(&w->lock);
}

/* Makes room for one more posted change.  0 or -ENOMEM.  w->lock
 * held. */
static int mfsd_watch_reserve(struct mfsd_watch *w)
{
	size_t cap = w->queue_cap ? w->queue_cap * 2 : MFSD_WATCH_QUEUE;
	struct mfsd_change *q;

	if (w->nqueue < w->queue_cap)
		return 0;
	q = realloc(w->queue, cap * sizeof(*q));
	if (!q)
		return -ENOMEM;
	w->queue = q;
	w->queue_cap = cap;
	return 0;
}

void mfsd_watch_post(void *arg, const struct mfsd_change *c)
{
	struct mfsd_watch *w = arg;

	pthread_mutex_lock(&w->lock);
	if (mfsd_watch_reserve(w) == 0)
		w->queue[w->nqueue++] = *c;
	else
		w->lost = true;
	pthread_mutex_unlock(&w->lock);
	mfsd_watch_wake(w);
}

void mfsd_watch_fd_freed(void *arg)
{
	struct mfsd_watch *w = arg;

	pthread_mutex_lock(&w->lock);
	w->fd_freed = true;
	pthread_mutex_unlock(&w->lock);
	mfsd_watch_wake(w);
}

void mfsd_watch_released(struct mfsd_watch *w)
{
	/* The pass takes the noted releases from the table itself. */
	mfsd_watch_wake(w);
}

void mfsd_watch_kick(struct mfsd_watch *w)
{
	pthread_mutex_lock(&w->lock);
	w->kicked = true;
	pthread_mutex_unlock(&w->lock);
	mfsd_watch_wake(w);
}

void mfsd_watch_get_stats(struct mfsd_watch *w, struct mfsd_watch_stats *out)
{
	out->events = atomic_load_explicit(&w->events, memory_order_relaxed);
	out->overflows =
		atomic_load_explicit(&w->overflows, memory_order_relaxed);
	out->notifications =
		atomic_load_explicit(&w->notifications, memory_order_relaxed);
	out->evictions =
		atomic_load_explicit(&w->evictions, memory_order_relaxed);
	out->evicted_bytes =
		atomic_load_explicit(&w->evicted_bytes, memory_order_relaxed);
}
