/*
 * handoff.c - the serving process's records for its successor, the
 * container descriptors it hands to the supervisor, and the session I/O
 * that replays INIT on a successor (see handoff.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <fuse_lowlevel.h>
#include <linux/fuse.h>

#include "daemon.h"
#include "handoff.h"
#include "log.h"
#include "model.h"
#include "table.h"

/* ------------------------------------------------------------------ */
/* The region                                                          */
/* ------------------------------------------------------------------ */

int mfsd_handoff_region_create(struct mfsd_handoff_region **out)
{
	size_t size = sizeof(struct mfsd_handoff_region);
	struct mfsd_handoff_region *r;
	int fd = memfd_create("modelfs-handoff", MFD_CLOEXEC), rc;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0)
		goto fail;
	r = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (r == MAP_FAILED)
		goto fail;
	r->magic = MFSD_HANDOFF_MAGIC;
	r->version = MFSD_HANDOFF_VERSION;
	atomic_store(&r->next_gen, 1);
	*out = r;
	return fd;
fail:
	rc = -errno;
	close(fd);
	return rc;
}

int mfsd_handoff_region_map(int fd, struct mfsd_handoff_region **out)
{
	size_t size = sizeof(struct mfsd_handoff_region);
	struct mfsd_handoff_region *r;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if ((size_t)st.st_size != size)
		return -EPROTO;
	r = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (r == MAP_FAILED)
		return -errno;
	if (r->magic != MFSD_HANDOFF_MAGIC ||
	    r->version != MFSD_HANDOFF_VERSION) {
		munmap(r, size);
		return -EPROTO;
	}
	*out = r;
	return 0;
}

void mfsd_handoff_region_unmap(struct mfsd_handoff_region *r)
{
	if (r)
		munmap(r, sizeof(*r));
}

uint32_t mfsd_handoff_kernel_minor(const struct mfsd_handoff_region *r)
{
	struct fuse_init_in in;
	size_t at = sizeof(struct fuse_in_header) + offsetof(struct fuse_init_in,
							     minor);

	if (atomic_load(&((struct mfsd_handoff_region *)r)->init_len) <
	    at + sizeof(in.minor))
		return 0;
	memcpy(&in.minor, r->init + at, sizeof(in.minor));
	return in.minor;
}

/* ------------------------------------------------------------------ */
/* The serving process's side                                          */
/* ------------------------------------------------------------------ */

int mfsd_handoff_init(struct mfsd_handoff *h, struct mfsd_handoff_region *r,
		      int sock, bool replay)
{
	uint32_t used = atomic_load(&r->models_used);

	memset(h, 0, sizeof(*h));
	h->r = r;
	h->sock = sock;
	h->replay = replay;
	h->next_handle = 1;
	h->handle_ptrs = calloc(MFSD_HANDOFF_MAX_HANDLES,
				sizeof(*h->handle_ptrs));
	h->free_models = malloc(MFSD_HANDOFF_MAX_MODELS *
				sizeof(*h->free_models));
	if (!h->handle_ptrs || !h->free_models) {
		free(h->handle_ptrs);
		free(h->free_models);
		return -ENOMEM;
	}
	/* Free records below the high-water mark, highest first, so that
	 * the lowest is reused first and the region stays compact. */
	for (uint32_t i = used; i-- > 0;)
		if (atomic_load(&r->models[i].gen) == 0)
			h->free_models[h->nfree_models++] = i;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->replayed, NULL);
	return 0;
}

void mfsd_handoff_destroy(struct mfsd_handoff *h)
{
	pthread_cond_destroy(&h->replayed);
	pthread_mutex_destroy(&h->lock);
	free(h->handle_ptrs);
	free(h->free_models);
}

/* A record index for a new model, or -1 when the region is full. */
static int64_t mfsd_handoff_model_slot(struct mfsd_handoff *h)
{
	struct mfsd_handoff_region *r = h->r;
	int64_t i = -1;

	pthread_mutex_lock(&h->lock);
	if (h->nfree_models)
		i = h->free_models[--h->nfree_models];
	else if (atomic_load(&r->models_used) < MFSD_HANDOFF_MAX_MODELS)
		i = atomic_fetch_add(&r->models_used, 1);
	pthread_mutex_unlock(&h->lock);
	return i;
}

void mfsd_handoff_model_new(struct mfsd_table *t, struct mfsd_model *m)
{
	struct mfsd_handoff *h = t->handoff;
	struct mfsd_handoff_model *rec;
	int64_t i;

	if (!h)
		return;
	atomic_store(&h->r->next_gen, t->next_gen);
	i = mfsd_handoff_model_slot(h);
	if (i < 0) {
		mfsd_log(MFSD_LOG_WARNING, "model %s: no room left to record "
			 "it for a takeover (%u live generations)", m->key,
			 MFSD_HANDOFF_MAX_MODELS);
		return;
	}
	rec = &h->r->models[i];
	snprintf(rec->key, sizeof(rec->key), "%s", m->key);
	snprintf(rec->file_name, sizeof(rec->file_name), "%s", m->file_name);
	rec->dev = (uint64_t)m->st.st_dev;
	rec->ino = (uint64_t)m->st.st_ino;
	m->handoff_idx = (uint32_t)i + 1;
	mfsd_handoff_model_sync(t, m);
	/* Last: only now does the record count. */
	atomic_store(&rec->gen, m->gen);
}

void mfsd_handoff_model_sync(struct mfsd_table *t, struct mfsd_model *m)
{
	struct mfsd_handoff_model *rec;

	if (!t->handoff || !m->handoff_idx)
		return;
	rec = &t->handoff->r->models[m->handoff_idx - 1];
	atomic_store_explicit(&rec->state, (uint32_t)m->state,
			      memory_order_relaxed);
	atomic_store_explicit(&rec->retired, m->retired, memory_order_relaxed);
	atomic_store_explicit(&rec->nlookup_dir, m->nlookup_dir,
			      memory_order_relaxed);
	atomic_store_explicit(&rec->nlookup_files, m->nlookup_files,
			      memory_order_relaxed);
}

void mfsd_handoff_model_end(struct mfsd_table *t, struct mfsd_model *m)
{
	struct mfsd_handoff *h = t->handoff;

	if (!h || !m->handoff_idx)
		return;
	atomic_store(&h->r->models[m->handoff_idx - 1].gen, 0);
	pthread_mutex_lock(&h->lock);
	h->free_models[h->nfree_models++] = m->handoff_idx - 1;
	pthread_mutex_unlock(&h->lock);
	m->handoff_idx = 0;
}

/* Sends @msg (with descriptor @fd if >= 0) to the supervisor.  0 or a
 * negative errno. */
static int mfsd_handoff_send(struct mfsd_handoff *h,
			     const struct mfsd_handoff_msg *msg, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = (void *)msg, .iov_len = sizeof(*msg)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;
	ssize_t n;

	if (h->sock < 0)
		return -ENOTCONN;
	if (fd >= 0) {
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		n = sendmsg(h->sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}

void mfsd_handoff_send_fd(struct mfsd_table *t, struct mfsd_model *m)
{
	struct mfsd_handoff_msg msg = {.op = MFSD_HO_ADD, .gen = m->gen};
	int rc;

	if (!t->handoff || !m->container)
		return;
	rc = mfsd_handoff_send(t->handoff, &msg, mfs_container_fd(m->container));
	if (rc < 0)
		mfsd_log(MFSD_LOG_WARNING, "model %s: cannot hand its "
			 "descriptor to the supervisor: %s", m->key,
			 strerror(-rc));
}

void mfsd_handoff_fd_closed(struct mfsd_table *t, struct mfsd_model *m)
{
	struct mfsd_handoff_msg msg = {.op = MFSD_HO_DEL, .gen = m->gen};

	if (t->handoff && m->gen)
		(void)mfsd_handoff_send(t->handoff, &msg, -1);
}

void mfsd_handoff_ready(struct mfsd_handoff *h)
{
	struct mfsd_handoff_msg msg = {.op = MFSD_HO_READY};

	(void)mfsd_handoff_send(h, &msg, -1);
}

/* ------------------------------------------------------------------ */
/* Handles                                                             */
/* ------------------------------------------------------------------ */

int64_t mfsd_handoff_handle_new(struct mfsd_handoff *h, void *ptr,
				const struct mfsd_handoff_handle *rec)
{
	struct mfsd_handoff_handle *d;
	int64_t id = -EMFILE;
	uint32_t i = h->next_handle;

	pthread_mutex_lock(&h->lock);
	/* Round robin from the last id given: an id freed a moment ago is
	 * not reused at once (a release re-sent after a takeover names a
	 * handle that is gone, never one that replaced it). */
	for (uint32_t n = 0; n < MFSD_HANDOFF_MAX_HANDLES; n++, i++) {
		if (i >= MFSD_HANDOFF_MAX_HANDLES)
			i = 1; /* 0 is never an id */
		if (!atomic_load(&h->handle_ptrs[i]) &&
		    atomic_load(&h->r->handles[i].kind) == MFSD_HK_FREE) {
			id = i;
			break;
		}
	}
	if (id > 0) {
		d = &h->r->handles[id];
		d->pid = rec->pid;
		d->uid = rec->uid;
		d->gid = rec->gid;
		d->gen = rec->gen;
		d->slot = rec->slot;
		atomic_store(&d->kind, rec->kind);
		atomic_store(&h->handle_ptrs[id], ptr);
		h->next_handle = (uint32_t)id + 1;
		if ((uint32_t)id >= atomic_load(&h->r->handles_used))
			atomic_store(&h->r->handles_used, (uint32_t)id + 1);
	}
	pthread_mutex_unlock(&h->lock);
	return id;
}

void mfsd_handoff_handle_adopt(struct mfsd_handoff *h, uint64_t id, void *ptr)
{
	atomic_store(&h->handle_ptrs[id], ptr);
}

void *mfsd_handoff_handle_get(struct mfsd_handoff *h, uint64_t id)
{
	if (id == 0 || id >= MFSD_HANDOFF_MAX_HANDLES)
		return NULL;
	return atomic_load(&h->handle_ptrs[id]);
}

void mfsd_handoff_handle_end(struct mfsd_handoff *h, uint64_t id)
{
	if (id == 0 || id >= MFSD_HANDOFF_MAX_HANDLES)
		return;
	pthread_mutex_lock(&h->lock);
	atomic_store(&h->r->handles[id].kind, MFSD_HK_FREE);
	atomic_store(&h->handle_ptrs[id], NULL);
	pthread_mutex_unlock(&h->lock);
}

/* ------------------------------------------------------------------ */
/* A successor's table                                                 */
/* ------------------------------------------------------------------ */

/* Takes the supervisor's descriptor of @gen out of @fds (-1: none). */
static int mfsd_handoff_take_fd(struct mfsd_handoff_fd *fds, size_t nfds,
				uint64_t gen)
{
	for (size_t i = 0; i < nfds; i++) {
		if (fds[i].gen == gen && fds[i].fd >= 0) {
			int fd = fds[i].fd;

			fds[i].fd = -1;
			return fd;
		}
	}
	return -1;
}

/* Rebuilds the model of record @i of @t's region, if it is valid.  0,
 * or -ENOMEM. */
static int mfsd_handoff_adopt_one(struct mfsd_table *t, uint32_t i,
				  struct mfsd_handoff_fd *fds, size_t nfds)
{
	struct mfsd_handoff_model *rec = &t->handoff->r->models[i];
	uint64_t gen = atomic_load(&rec->gen);
	struct mfsd_handoff_msg del = {.op = MFSD_HO_DEL, .gen = gen};
	struct mfsd_model_record r = {0};
	char why[MFSD_WHY_MAX];
	int fd, rc;

	if (gen == 0)
		return 0;
	r.gen = gen;
	r.state = (enum mfsd_model_state)atomic_load(&rec->state);
	r.retired = atomic_load(&rec->retired) != 0;
	r.nlookup_dir = atomic_load(&rec->nlookup_dir);
	r.nlookup_files = atomic_load(&rec->nlookup_files);
	r.key = rec->key;
	r.file_name = rec->file_name;
	r.dev = rec->dev;
	r.ino = rec->ino;
	r.handoff_idx = i + 1;
	fd = r.retired ? -1 : mfsd_handoff_take_fd(fds, nfds, gen);
	rc = mfsd_table_adopt(t, &r, fd, why);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		/* The kernel's inodes of it answer ENOENT from now on. */
		mfsd_log(MFSD_LOG_WARNING, "takeover: model %s (generation "
			 "%llu) is lost: %s", rec->key,
			 (unsigned long long)gen, why);
		atomic_store(&rec->gen, 0);
		(void)mfsd_handoff_send(t->handoff, &del, -1);
	}
	return 0;
}

int mfsd_handoff_adopt_models(struct mfsd_table *t,
			      const struct mfsd_handoff_fd *fds, size_t nfds)
{
	struct mfsd_handoff_region *r = t->handoff->r;
	uint32_t used = atomic_load(&r->models_used);
	struct mfsd_handoff_fd *left = NULL;
	int rc = 0;

	if (nfds) {
		left = malloc(nfds * sizeof(*left));
		if (!left)
			return -ENOMEM;
		memcpy(left, fds, nfds * sizeof(*left));
	}
	pthread_mutex_lock(&t->lock);
	t->next_gen = atomic_load(&r->next_gen);
	pthread_mutex_unlock(&t->lock);
	for (uint32_t i = 0; rc == 0 && i < used; i++)
		rc = mfsd_handoff_adopt_one(t, i, left, nfds);
	/* Descriptors of generations without a record (freed after the
	 * predecessor sent them): this process has no use for them. */
	for (size_t i = 0; i < nfds; i++)
		if (left[i].fd >= 0)
			close(left[i].fd);
	free(left);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Session I/O                                                         */
/* ------------------------------------------------------------------ */

/* Saves the INIT request @buf (@n bytes) once, for successors. */
static void mfsd_handoff_save_init(struct mfsd_handoff *h, const void *buf,
				   size_t n)
{
	struct fuse_in_header in;

	if (n < sizeof(in) || atomic_load(&h->r->init_len) != 0 ||
	    atomic_load(&h->r->init_read) != 0)
		return;
	/* The session's buffer need not be aligned for the header. */
	memcpy(&in, buf, sizeof(in));
	if (in.opcode != FUSE_INIT)
		return;
	if (n > MFSD_HANDOFF_INIT_MAX) {
		mfsd_log(MFSD_LOG_WARNING, "INIT request of %zu bytes is too "
			 "large to keep for a takeover", n);
		return;
	}
	memcpy(h->r->init, buf, n);
	atomic_store(&h->r->init_read, (uint32_t)n);
}

/* After a reply of @n bytes with unique id @unique went to the kernel:
 * if it answered the kept INIT, a successor may replay it from now on. */
static void mfsd_handoff_init_answered(struct mfsd_handoff *h, uint64_t unique,
				       ssize_t n)
{
	struct fuse_in_header init;
	uint32_t len = atomic_load(&h->r->init_read);

	if (n < 0 || len == 0 || atomic_load(&h->r->init_len) != 0)
		return;
	memcpy(&init, h->r->init, sizeof(init));
	if (init.unique == unique)
		atomic_store(&h->r->init_len, len);
}

/*
 * A successor's read: the saved INIT first, to one reader; the others
 * wait until its reply was swallowed (libfuse must be initialized
 * before it sees the requests the kernel queued meanwhile).  Returns
 * the bytes given, 0 if this reader must read the device.
 */
static ssize_t mfsd_handoff_replay(struct mfsd_handoff *h, void *buf,
				   size_t len)
{
	uint32_t n = atomic_load(&h->r->init_len);
	ssize_t given = 0;

	pthread_mutex_lock(&h->lock);
	if (!h->replay_given && n <= len) {
		memcpy(buf, h->r->init, n);
		h->replay_given = true;
		given = n;
	} else {
		while (!h->replay_done)
			pthread_cond_wait(&h->replayed, &h->lock);
	}
	pthread_mutex_unlock(&h->lock);
	return given;
}

/* fuse_custom_io.read: the device, after the INIT replay of a
 * successor; the first INIT is saved. */
static ssize_t mfsd_handoff_read(int fd, void *buf, size_t len, void *ud)
{
	struct mfsd_ctx *ctx = ud;
	struct mfsd_handoff *h = ctx->handoff;
	struct fuse_in_header in;
	ssize_t n;

	if (h->replay && !h->replay_done) {
		n = mfsd_handoff_replay(h, buf, len);
		if (n > 0)
			return n;
	}
	n = read(fd, buf, len);
	if (n >= (ssize_t)sizeof(in)) {
		memcpy(&in, buf, sizeof(in));
		if (in.unique & MFSD_FUSE_UNIQUE_RESEND)
			atomic_fetch_add_explicit(&h->r->resent, 1,
						  memory_order_relaxed);
	}
	if (n > 0 && !h->replay)
		mfsd_handoff_save_init(h, buf, (size_t)n);
	return n;
}

/* fuse_custom_io.writev: the device, except the reply to a replayed
 * INIT, which the kernel had from the predecessor already. */
static ssize_t mfsd_handoff_writev(int fd, struct iovec *iov, int count,
				   void *ud)
{
	struct mfsd_ctx *ctx = ud;
	struct mfsd_handoff *h = ctx->handoff;
	struct fuse_in_header init;
	struct fuse_out_header out;
	size_t total = 0;

	ssize_t n;

	if (iov[0].iov_len < sizeof(out))
		return writev(fd, iov, count);
	memcpy(&out, iov[0].iov_base, sizeof(out));
	if (!h->replay || h->replay_done) {
		n = writev(fd, iov, count);
		if (!h->replay)
			mfsd_handoff_init_answered(h, out.unique, n);
		return n;
	}
	memcpy(&init, h->r->init, sizeof(init));
	if (out.unique == init.unique) {
		for (int i = 0; i < count; i++)
			total += iov[i].iov_len;
		pthread_mutex_lock(&h->lock);
		h->replay_done = true;
		pthread_cond_broadcast(&h->replayed);
		pthread_mutex_unlock(&h->lock);
		return (ssize_t)total;
	}
	return writev(fd, iov, count);
}

const struct fuse_custom_io mfsd_handoff_io = {
	.read = mfsd_handoff_read,
	.writev = mfsd_handoff_writev,
};

int mfsd_handoff_resend(int fd)
{
	struct fuse_out_header oh = {
		.len = sizeof(oh),
		.error = MFSD_FUSE_NOTIFY_RESEND,
		.unique = 0,
	};
	ssize_t n = write(fd, &oh, sizeof(oh));

	if (n < 0)
		return -errno;
	return n == (ssize_t)sizeof(oh) ? 0 : -EIO;
}
