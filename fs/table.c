/*
 * table.c - the reference-counted table of models (see table.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "follow.h"
#include "handoff.h"
#include "log.h"
#include "model.h"
#include "table.h"
#include "vec.h"

/* A model due to retire that a request is using is tried again after
 * this long. */
#define MFSD_RETIRE_RETRY_NS (MFSD_NS_PER_SEC / 100)

/* ------------------------------------------------------------------ */
/* Sorted vectors                                                      */
/* ------------------------------------------------------------------ */

/* Orders key @key against the model pointer @elem (of by_key). */
static int mfsd_key_cmp(const void *key, const void *elem)
{
	return strcmp(key, (*(struct mfsd_model *const *)elem)->key);
}

/* Orders generation *@key against the model pointer @elem (of by_gen). */
static int mfsd_gen_cmp(const void *key, const void *elem)
{
	uint64_t gen = *(const uint64_t *)key;
	uint64_t other = (*(struct mfsd_model *const *)elem)->gen;

	return (gen > other) - (gen < other);
}

/* Index of the first model with key >= @key in by_key.  t->lock held. */
static size_t mfsd_key_pos(const struct mfsd_table *t, const char *key)
{
	return mfsd_vec_lower_bound(t->by_key, t->npublished,
				    sizeof(*t->by_key), key, mfsd_key_cmp);
}

/* Index of the first model with gen >= @gen in by_gen.  t->lock held. */
static size_t mfsd_gen_pos(const struct mfsd_table *t, uint64_t gen)
{
	return mfsd_vec_lower_bound(t->by_gen, t->nlive, sizeof(*t->by_gen),
				    &gen, mfsd_gen_cmp);
}

/* True if @m is out of the namespace, no handle holds it and the kernel
 * remembers none of its files: only its directory may still be known.
 * t->lock held (the counts it reads are under it). */
static bool mfsd_model_idle(const struct mfsd_model *m)
{
	return m->state != MFSD_MODEL_PUBLISHED && !m->nopen && !m->ndirs &&
	       !m->nlookup_files;
}

/*
 * After a count of @m changed: notes since when it is idle (for
 * mfsd_table_retire), and if nothing at all is left, takes it out of
 * by_gen and returns true (the caller frees it after dropping the
 * lock).  t->lock held.
 */
static bool mfsd_table_reap(struct mfsd_table *t, struct mfsd_model *m)
{
	size_t pos;

	if (!m)
		return false;
	if (!mfsd_model_idle(m))
		m->idle_since_ns = 0;
	else if (!m->idle_since_ns)
		m->idle_since_ns = mfsd_now_ns();
	if (!mfsd_model_idle(m) || m->nbusy || m->nlookup_dir)
		return false;
	pos = mfsd_gen_pos(t, m->gen);
	if (pos < t->nlive && t->by_gen[pos] == m)
		mfsd_vec_remove(t->by_gen, &t->nlive, sizeof(*t->by_gen), pos);
	if (m->retired)
		t->nretired--;
	return true;
}

/* Drops the lock after a count of @m changed, then frees @m if that
 * change left it nothing.  Returns whether @m is idle (see
 * mfsd_model_idle) and still there. */
static bool mfsd_table_unlock_reap(struct mfsd_table *t, struct mfsd_model *m)
{
	bool dead = mfsd_table_reap(t, m);
	bool idle = m && !dead && !m->retired && mfsd_model_idle(m);

	pthread_mutex_unlock(&t->lock);
	if (dead) {
		mfsd_log(MFSD_LOG_DEBUG, "freed model %s (generation %llu)",
			 m->key, (unsigned long long)m->gen);
		mfsd_model_free(t, m);
	}
	return idle;
}

uint64_t mfsd_table_retire(struct mfsd_table *t, struct mfsd_model *m,
			   uint64_t grace_ns)
{
	uint64_t now = mfsd_now_ns(), due = 0;
	bool retire = false;

	pthread_mutex_lock(&t->lock);
	if (!m->retired && mfsd_model_idle(m) && m->idle_since_ns) {
		due = m->idle_since_ns + grace_ns;
		/* Only the caller's busy mark: no request is using it. */
		retire = now >= due && m->nbusy == 1;
		if (!retire && now >= due)
			due = now + MFSD_RETIRE_RETRY_NS;
	}
	if (retire) {
		m->retired = true;
		t->nretired++;
		mfsd_handoff_model_sync(t, m);
		due = 0;
	}
	pthread_mutex_unlock(&t->lock);
	if (retire) {
		mfsd_log(MFSD_LOG_DEBUG, "retired model %s (generation %llu)",
			 m->key, (unsigned long long)m->gen);
		mfsd_model_release_data(t, m, true);
	}
	return due;
}

/* Takes @m out of by_key as @state.  t->lock held. */
static void mfsd_table_take_out(struct mfsd_table *t, struct mfsd_model *m,
				enum mfsd_model_state state)
{
	size_t pos = mfsd_key_pos(t, m->key);

	if (m->state != MFSD_MODEL_PUBLISHED)
		return;
	if (pos < t->npublished && t->by_key[pos] == m)
		mfsd_vec_remove(t->by_key, &t->npublished,
				sizeof(*t->by_key), pos);
	m->state = state;
	t->changes++;
	mfsd_handoff_model_sync(t, m);
}

int mfsd_table_publish(struct mfsd_table *t, struct mfsd_model *m,
			      struct mfsd_model *old)
{
	size_t kpos;
	int rc;

	pthread_mutex_lock(&t->lock);
	rc = mfsd_vec_reserve((void **)&t->by_gen, &t->live_cap, t->nlive + 1,
			      sizeof(*t->by_gen));
	if (rc == 0)
		rc = mfsd_vec_reserve((void **)&t->by_key, &t->published_cap,
				      t->npublished + 1, sizeof(*t->by_key));
	if (rc < 0) {
		pthread_mutex_unlock(&t->lock);
		return rc;
	}
	m->gen = t->next_gen++;
	m->state = MFSD_MODEL_PUBLISHED;
	/* Generations only grow, so the newest goes last. */
	mfsd_vec_insert(t->by_gen, &t->nlive, sizeof(m), t->nlive, &m);
	kpos = mfsd_key_pos(t, m->key);
	if (old && kpos < t->npublished && t->by_key[kpos] == old) {
		/* One step: a lookup finds the old or the new, never none. */
		t->by_key[kpos] = m;
		old->state = MFSD_MODEL_REPLACED;
		mfsd_handoff_model_sync(t, old);
	} else {
		mfsd_vec_insert(t->by_key, &t->npublished, sizeof(m), kpos,
				&m);
	}
	t->changes++;
	mfsd_handoff_model_new(t, m);
	pthread_mutex_unlock(&t->lock);
	/* The caller has @m's name in flight: no other refresh can take it
	 * out (and free it) meanwhile. */
	mfsd_handoff_send_fd(t, m);
	return 0;
}

int mfsd_table_adopt(struct mfsd_table *t, const struct mfsd_model_record *r,
		     int fd, char *why)
{
	bool reopened = fd < 0;
	struct mfsd_model *m;
	size_t kpos;
	int rc = mfsd_model_adopt(t, r, fd, &m, why);

	if (rc < 0)
		return rc;
	m->nlookup_dir = r->nlookup_dir;
	m->nlookup_files = r->nlookup_files;
	pthread_mutex_lock(&t->lock);
	rc = mfsd_vec_reserve((void **)&t->by_gen, &t->live_cap, t->nlive + 1,
			      sizeof(*t->by_gen));
	if (rc == 0)
		rc = mfsd_vec_reserve((void **)&t->by_key, &t->published_cap,
				      t->npublished + 1, sizeof(*t->by_key));
	if (rc < 0) {
		pthread_mutex_unlock(&t->lock);
		mfsd_why(why, "out of memory");
		m->gen = 0; /* its record stays, for the next successor */
		mfsd_model_free(t, m);
		return rc;
	}
	mfsd_vec_insert(t->by_gen, &t->nlive, sizeof(m),
			mfsd_gen_pos(t, m->gen), &m);
	kpos = mfsd_key_pos(t, m->key);
	if (m->state == MFSD_MODEL_PUBLISHED &&
	    !(kpos < t->npublished && strcmp(t->by_key[kpos]->key, m->key) == 0))
		mfsd_vec_insert(t->by_key, &t->npublished, sizeof(m), kpos,
				&m);
	else if (m->state == MFSD_MODEL_PUBLISHED)
		m->state = MFSD_MODEL_REPLACED; /* two records of one key */
	if (m->retired)
		t->nretired++;
	if (t->next_gen <= m->gen)
		t->next_gen = m->gen + 1;
	m->handoff_idx = r->handoff_idx;
	mfsd_handoff_model_sync(t, m);
	pthread_mutex_unlock(&t->lock);
	if (reopened)
		mfsd_handoff_send_fd(t, m);
	return 0;
}

void mfsd_table_remove(struct mfsd_table *t, struct mfsd_model *m)
{
	pthread_mutex_lock(&t->lock);
	mfsd_table_take_out(t, m, MFSD_MODEL_REMOVED);
	pthread_mutex_unlock(&t->lock);
}

void mfsd_table_wait_key(struct mfsd_table *t, const char *key,
			 uint64_t wait_ns)
{
	struct timespec deadline;
	size_t pos;
	bool found = false;

	mfsd_deadline(&deadline, wait_ns);
	pthread_mutex_lock(&t->lock);
	while (!found) {
		pos = mfsd_key_pos(t, key);
		found = pos < t->npublished &&
			strcmp(t->by_key[pos]->key, key) == 0;
		if (!found && pthread_cond_timedwait(&t->settled, &t->lock,
						     &deadline) != 0)
			break;
	}
	pthread_mutex_unlock(&t->lock);
}

/* ------------------------------------------------------------------ */
/* Opening and closing                                                 */
/* ------------------------------------------------------------------ */

int mfsd_table_open(struct mfsd_table **out, const char *dir_path,
		    struct mfsd_cache *cache)
{
	struct mfsd_table *t = calloc(1, sizeof(*t));
	int rc = -ENOMEM;

	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->settled, NULL);
	t->cache = cache;
	t->next_gen = 1;
	t->release_round = 1;
	t->dirfd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->dirfd < 0 || fstat(t->dirfd, &t->dir_st) < 0) {
		rc = -errno;
		goto fail;
	}
	t->dir_path = strdup(dir_path);
	if (!t->dir_path)
		goto fail;
	atomic_store(&t->dir_mode, (unsigned)t->dir_st.st_mode &
					   MFSD_MODE_BITS);
	atomic_store(&t->dir_uid, (unsigned)t->dir_st.st_uid);
	atomic_store(&t->dir_gid, (unsigned)t->dir_st.st_gid);
	*out = t;
	return 0;
fail:
	mfsd_table_close(t);
	return rc;
}

void mfsd_table_close(struct mfsd_table *t)
{
	if (!t)
		return;
	/* Whoever waits for descriptors is going away too. */
	t->fd_freed = NULL;
	for (size_t i = 0; i < t->nlive; i++)
		mfsd_model_free(t, t->by_gen[i]);
	mfsd_follow_free(t);
	if (t->dirfd >= 0)
		close(t->dirfd);
	free(t->by_gen);
	free(t->by_key);
	free(t->released);
	free(t->dir_path);
	pthread_cond_destroy(&t->settled);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

void mfsd_table_mark_loaded(struct mfsd_table *t)
{
	pthread_mutex_lock(&t->lock);
	t->changes = 0; /* counts the changes made live, after loading */
	pthread_mutex_unlock(&t->lock);
	atomic_store(&t->loaded, true);
}

/* ------------------------------------------------------------------ */
/* Counts                                                              */
/* ------------------------------------------------------------------ */

struct mfsd_model *mfsd_table_get_key(struct mfsd_table *t, const char *key)
{
	struct mfsd_model *m = NULL;
	size_t pos;

	pthread_mutex_lock(&t->lock);
	pos = mfsd_key_pos(t, key);
	if (pos < t->npublished && strcmp(t->by_key[pos]->key, key) == 0) {
		m = t->by_key[pos];
		m->nbusy++;
	}
	pthread_mutex_unlock(&t->lock);
	return m;
}

/* The live model of generation @gen, or NULL.  t->lock held. */
static struct mfsd_model *mfsd_gen_find(const struct mfsd_table *t,
					uint64_t gen)
{
	size_t pos = mfsd_gen_pos(t, gen);

	return pos < t->nlive && t->by_gen[pos]->gen == gen ? t->by_gen[pos]
							    : NULL;
}

struct mfsd_model *mfsd_table_get_gen(struct mfsd_table *t, uint64_t gen)
{
	struct mfsd_model *m;

	pthread_mutex_lock(&t->lock);
	m = mfsd_gen_find(t, gen);
	if (m)
		m->nbusy++;
	pthread_mutex_unlock(&t->lock);
	return m;
}

void mfsd_table_put(struct mfsd_table *t, struct mfsd_model *m)
{
	pthread_mutex_lock(&t->lock);
	m->nbusy--;
	(void)mfsd_table_unlock_reap(t, m);
}

void mfsd_table_lookup(struct mfsd_table *t, struct mfsd_model *m,
		       uint64_t slot, uint64_t n)
{
	pthread_mutex_lock(&t->lock);
	if (slot == MFSD_SLOT_DIR)
		m->nlookup_dir += n;
	else
		m->nlookup_files += n;
	mfsd_handoff_model_sync(t, m);
	pthread_mutex_unlock(&t->lock);
}

/* Subtracts @n from *@count; the kernel never forgets more than it looked
 * up, but a bug must not wrap the count. */
static void mfsd_count_sub(uint64_t *count, uint64_t n)
{
	*count -= n < *count ? n : *count;
}

bool mfsd_table_forget(struct mfsd_table *t, uint64_t gen, uint64_t slot,
		       uint64_t n)
{
	struct mfsd_model *m;

	pthread_mutex_lock(&t->lock);
	m = mfsd_gen_find(t, gen);
	if (m) {
		mfsd_count_sub(slot == MFSD_SLOT_DIR ? &m->nlookup_dir
						     : &m->nlookup_files, n);
		mfsd_handoff_model_sync(t, m);
	}
	return mfsd_table_unlock_reap(t, m);
}

/* Orders the (pid, slot) of hold @key against hold @elem. */
static int mfsd_hold_cmp(const void *key, const void *elem)
{
	const struct mfsd_hold *a = key, *b = elem;

	if (a->pid != b->pid)
		return a->pid < b->pid ? -1 : 1;
	return (a->slot > b->slot) - (a->slot < b->slot);
}

/* Index of the first hold >= (@pid, @slot) in m->holds.  t->lock
 * held. */
static size_t mfsd_hold_pos(const struct mfsd_model *m, pid_t pid,
			    uint64_t slot)
{
	struct mfsd_hold key = {.pid = pid, .slot = slot};

	return mfsd_vec_lower_bound(m->holds, m->nholds, sizeof(*m->holds),
				    &key, mfsd_hold_cmp);
}

static bool mfsd_hold_at(const struct mfsd_model *m, size_t pos, pid_t pid,
			 uint64_t slot)
{
	return pos < m->nholds && m->holds[pos].pid == pid &&
	       m->holds[pos].slot == slot;
}

int mfsd_table_open_handle(struct mfsd_table *t, struct mfsd_model *m,
			   pid_t pid, uid_t uid, uint64_t slot)
{
	size_t pos;
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	pos = mfsd_hold_pos(m, pid, slot);
	if (!mfsd_hold_at(m, pos, pid, slot)) {
		struct mfsd_hold h = {.pid = pid, .slot = slot, .uid = uid};

		rc = mfsd_vec_reserve((void **)&m->holds, &m->holds_cap,
				      m->nholds + 1, sizeof(*m->holds));
		if (rc < 0)
			goto out;
		mfsd_vec_insert(m->holds, &m->nholds, sizeof(h), pos, &h);
	}
	m->holds[pos].handles++;
	m->nopen++;
out:
	pthread_mutex_unlock(&t->lock);
	return rc;
}

/* Notes @m's release for the budget's next pass, once per round.
 * Returns true if it is the round's first note (or a lost one): only
 * that one needs to wake the watcher, which takes them all at once.
 * t->lock held. */
static bool mfsd_table_note_release(struct mfsd_table *t,
				    struct mfsd_model *m)
{
	bool first = t->nreleased == 0 && !t->released_lost;

	if (m->release_round == t->release_round)
		return false;
	if (mfsd_vec_reserve((void **)&t->released, &t->released_cap,
			     t->nreleased + 1, sizeof(*t->released)) < 0) {
		t->released_lost = true;
		return first;
	}
	t->released[t->nreleased++] = m->gen;
	m->release_round = t->release_round;
	return first;
}

enum mfsd_release mfsd_table_release_handle(struct mfsd_table *t,
					    struct mfsd_model *m, pid_t pid,
					    uint64_t slot)
{
	enum mfsd_release r = MFSD_RELEASE_HELD;
	size_t pos;

	pthread_mutex_lock(&t->lock);
	pos = mfsd_hold_pos(m, pid, slot);
	if (mfsd_hold_at(m, pos, pid, slot) && --m->holds[pos].handles == 0)
		mfsd_vec_remove(m->holds, &m->nholds, sizeof(*m->holds), pos);
	mfsd_count_sub(&m->nopen, 1);
	if (m->nopen == 0) {
		m->released_seq = ++t->release_clock;
		r = MFSD_RELEASE_LAST;
		if (t->note_releases && mfsd_table_note_release(t, m))
			r = MFSD_RELEASE_NOTED;
		if (m->state != MFSD_MODEL_PUBLISHED)
			r = MFSD_RELEASE_LEFT;
	}
	(void)mfsd_table_unlock_reap(t, m);
	return r;
}

size_t mfsd_table_take_released(struct mfsd_table *t, uint64_t **out,
				bool *lost)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	*out = t->released;
	n = t->nreleased;
	*lost = t->released_lost;
	t->released = NULL;
	t->nreleased = t->released_cap = 0;
	t->released_lost = false;
	/* Every model's note is now of a past round. */
	t->release_round++;
	pthread_mutex_unlock(&t->lock);
	return n;
}

void mfsd_table_open_dir(struct mfsd_table *t, struct mfsd_model *m)
{
	pthread_mutex_lock(&t->lock);
	m->ndirs++;
	pthread_mutex_unlock(&t->lock);
}

bool mfsd_table_release_dir(struct mfsd_table *t, struct mfsd_model *m)
{
	pthread_mutex_lock(&t->lock);
	mfsd_count_sub(&m->ndirs, 1);
	return mfsd_table_unlock_reap(t, m);
}

void mfsd_table_unpublish(struct mfsd_table *t, struct mfsd_model *m)
{
	pthread_mutex_lock(&t->lock);
	mfsd_table_take_out(t, m, MFSD_MODEL_REMOVED);
	(void)mfsd_table_unlock_reap(t, m);
}

/* ------------------------------------------------------------------ */
/* Copies for listings and .status                                     */
/* ------------------------------------------------------------------ */

void mfsd_table_free_list(struct mfsd_dirent_model *list, size_t n)
{
	for (size_t i = 0; list && i < n; i++)
		free(list[i].key);
	free(list);
}

ssize_t mfsd_table_list(struct mfsd_table *t, struct mfsd_dirent_model **out)
{
	struct mfsd_dirent_model *list;
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->npublished;
	list = calloc(n ? n : 1, sizeof(*list));
	for (size_t i = 0; list && i < n; i++) {
		list[i].gen = t->by_key[i]->gen;
		list[i].key = strdup(t->by_key[i]->key);
		if (!list[i].key) {
			mfsd_table_free_list(list, i);
			list = NULL;
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (!list)
		return -ENOMEM;
	*out = list;
	return (ssize_t)n;
}

/* Sums @u->holds per pid into @u->holders (allocated for nholds). */
static void mfsd_usage_holders(struct mfsd_model_usage *u)
{
	u->nholders = 0;
	for (size_t i = 0; i < u->nholds; i++) {
		struct mfsd_holder *last = u->nholders
						   ? &u->holders[u->nholders - 1]
						   : NULL;

		/* holds are sorted by pid, so one pid's holds are adjacent */
		if (!last || last->pid != u->holds[i].pid) {
			last = &u->holders[u->nholders++];
			*last = (struct mfsd_holder){.pid = u->holds[i].pid};
		}
		last->handles += u->holds[i].handles;
	}
}

/* Copies @m's counts into @out.  t->lock held. */
static void mfsd_model_counts_table_locked(const struct mfsd_model *m,
					   struct mfsd_model_counts *out)
{
	out->state = m->state;
	out->retired = m->retired;
	out->nlookup_dir = m->nlookup_dir;
	out->nlookup_files = m->nlookup_files;
	out->nopen = m->nopen;
	out->ndirs = m->ndirs;
	out->released_seq = m->released_seq;
}

void mfsd_table_model_counts(struct mfsd_table *t, struct mfsd_model *m,
			     struct mfsd_model_counts *out)
{
	pthread_mutex_lock(&t->lock);
	mfsd_model_counts_table_locked(m, out);
	pthread_mutex_unlock(&t->lock);
}

int mfsd_table_usage(struct mfsd_table *t, struct mfsd_model *m,
		     struct mfsd_model_usage *u)
{
	size_t n;

	memset(u, 0, sizeof(*u));
	pthread_mutex_lock(&t->lock);
	n = m->nholds;
	u->holds = malloc((n ? n : 1) * sizeof(*u->holds));
	u->holders = malloc((n ? n : 1) * sizeof(*u->holders));
	if (u->holds && u->holders) {
		if (n) /* m->holds may be NULL then */
			memcpy(u->holds, m->holds, n * sizeof(*u->holds));
		u->nholds = n;
		mfsd_model_counts_table_locked(m, &u->c);
		u->in_store = m->state == MFSD_MODEL_PUBLISHED;
		u->nlookup = m->nlookup_dir + m->nlookup_files;
		u->nopen = m->nopen;
	}
	pthread_mutex_unlock(&t->lock);
	if (!u->holds || !u->holders) {
		mfsd_table_usage_free(u);
		return -ENOMEM;
	}
	mfsd_usage_holders(u);
	return 0;
}

void mfsd_table_usage_keep_uid(struct mfsd_model_usage *u, uid_t uid)
{
	size_t kept = 0;

	for (size_t i = 0; i < u->nholds; i++)
		if (u->holds[i].uid == uid)
			u->holds[kept++] = u->holds[i];
	u->nholds = kept;
	mfsd_usage_holders(u);
}

void mfsd_table_usage_free(struct mfsd_model_usage *u)
{
	free(u->holds);
	free(u->holders);
	u->holds = NULL;
	u->holders = NULL;
	u->nholds = u->nholders = 0;
}

ssize_t mfsd_table_get_all(struct mfsd_table *t, struct mfsd_model ***out)
{
	struct mfsd_model **v;
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->nlive;
	v = malloc((n ? n : 1) * sizeof(*v));
	for (size_t i = 0; v && i < n; i++) {
		v[i] = t->by_gen[i];
		v[i]->nbusy++;
	}
	pthread_mutex_unlock(&t->lock);
	if (!v)
		return -ENOMEM;
	*out = v;
	return (ssize_t)n;
}

void mfsd_table_put_all(struct mfsd_table *t, struct mfsd_model **models,
			size_t n)
{
	for (size_t i = 0; i < n; i++)
		mfsd_table_put(t, models[i]);
	free(models);
}

void mfsd_table_counts(struct mfsd_table *t, struct mfsd_table_counts *out)
{
	pthread_mutex_lock(&t->lock);
	out->published = t->npublished;
	out->live = t->nlive - t->nretired;
	out->retired = t->nretired;
	out->changes = t->changes;
	pthread_mutex_unlock(&t->lock);
}
