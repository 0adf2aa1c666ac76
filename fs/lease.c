/*
 * lease.c - read leases on served containers (see lease.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "lease.h"
#include "log.h"

/* Breaks read from the signalfd at once; more are read in turns. */
#define MFSD_LEASE_BATCH 32u
/* Without memory to look for the broken leases, look again after this
 * (the writers wait meanwhile; the kernel's own limit is 45 s). */
#define MFSD_LEASE_RETRY_NS 10000000L
/* Pause between looks at the reads a break waits for: they end within a
 * reply's time, and the writer they hold up waits anyway. */
#define MFSD_LEASE_WAIT_NS 100000L

/*
 * The signal lease breaks are sent as, 0 until mfsd_lease_setup.
 * Process-wide like the signal mask; written once before any thread
 * exists, read-only afterwards.
 */
static int mfsd_lease_signo;

/* The lease signal and SIGIO, the signal the kernel sends instead when
 * the realtime queue is full. */
static void mfsd_lease_sigset(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, mfsd_lease_signo);
	sigaddset(set, SIGIO);
}

int mfsd_lease_setup(void)
{
	sigset_t set;
	int rc;

	/* Realtime: queued one per break with the descriptor in si_fd; a
	 * standard signal would merge breaks and not say which file. */
	mfsd_lease_signo = SIGRTMIN;
	mfsd_lease_sigset(&set);
	rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (rc != 0)
		mfsd_lease_signo = 0;
	return -rc;
}

int mfsd_lease_signalfd(void)
{
	sigset_t set;
	int fd;

	if (mfsd_lease_signo == 0)
		return -ENOTSUP;
	mfsd_lease_sigset(&set);
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Points the break signal of @fd at the current process. */
static int mfsd_lease_own(int fd)
{
	struct f_owner_ex owner = {.type = F_OWNER_PID, .pid = getpid()};

	if (fcntl(fd, F_SETSIG, mfsd_lease_signo) < 0 ||
	    fcntl(fd, F_SETOWN_EX, &owner) < 0)
		return -errno;
	return 0;
}

/* Takes a read lease on @fd, its breaks sent to this process.  0 or a
 * negative errno (-ENOTSUP when leases are not set up). */
static int mfsd_lease_lock(int fd)
{
	int rc;

	if (mfsd_lease_signo == 0)
		return -ENOTSUP;
	/* Owner first: a break right after F_SETLEASE must find it. */
	rc = mfsd_lease_own(fd);
	if (rc == 0 && fcntl(fd, F_SETLEASE, F_RDLCK) < 0)
		rc = -errno;
	return rc;
}

/* Why a container could not be leased, for the log. */
static const char *mfsd_lease_why(int err)
{
	switch (err) {
	case EAGAIN:
		return "a process has it open for writing";
	case EACCES:
		return "the daemon neither owns it nor has CAP_LEASE";
	case EINVAL:
		return "its file system has no leases";
	case ENOTSUP:
		return "leases are not set up";
	default:
		return strerror(err);
	}
}

const char *mfsd_lease_state_name(struct mfsd_model *m)
{
	switch (atomic_load(&m->trust)) {
	case MFSD_TRUST_LEASED:
		return "held";
	case MFSD_TRUST_UNLEASED:
		return "none";
	default:
		return "broken";
	}
}

void mfsd_lease_take(struct mfsd_model *m)
{
	int rc = mfsd_lease_lock(mfs_container_fd(m->container));

	m->lease_err = -rc;
	atomic_store(&m->trust, rc == 0 ? MFSD_TRUST_LEASED
					: MFSD_TRUST_UNLEASED);
	if (rc == 0)
		return;
	/* Without leases set up (unit tests) there is nothing to say; and
	 * every publish by lib/writer.c (which renames before it closes)
	 * comes here with -EAGAIN, then is leased when the writer closes
	 * (mfsd_lease_refresh): not news either. */
	mfsd_log(rc == -ENOTSUP || rc == -EAGAIN ? MFSD_LOG_DEBUG
						 : MFSD_LOG_INFO,
		 "container %s of model %s cannot be leased (%s): every chunk "
		 "is re-verified each time it is served", m->file_name, m->key,
		 mfsd_lease_why(-rc));
}

/*
 * Ends busy @m's lease after it broke: marks it rewritten, waits until
 * no read serves its file bytes unchecked, then releases the lease, which
 * lets the writer proceed.  Any thread; one of them does it once.
 */
static void mfsd_lease_broken(struct mfsd_model *m)
{
	const struct timespec pause = {0, MFSD_LEASE_WAIT_NS};
	int expected = MFSD_TRUST_LEASED;

	if (!atomic_compare_exchange_strong(&m->trust, &expected,
					    MFSD_TRUST_REWRITTEN))
		return;
	while (atomic_load(&m->direct_reads) != 0)
		nanosleep(&pause, NULL);
	(void)fcntl(mfs_container_fd(m->container), F_SETLEASE, F_UNLCK);
	mfsd_log(MFSD_LOG_WARNING, "container %s was opened for writing in "
		 "place; serving only re-verified bytes of model %s, "
		 "generation %llu", m->file_name, m->key,
		 (unsigned long long)m->gen);
}

/* Handles a break of busy @m's lease if one is pending: during a break
 * F_GETLEASE answers the type the lease is being broken to. */
static void mfsd_lease_check(struct mfsd_model *m)
{
	if (atomic_load(&m->trust) != MFSD_TRUST_LEASED)
		return;
	if (fcntl(mfs_container_fd(m->container), F_GETLEASE) != F_RDLCK)
		mfsd_lease_broken(m);
}

void mfsd_lease_refresh(struct mfsd_model *m)
{
	int expected = MFSD_TRUST_UNLEASED;

	if (m->lease_err == EAGAIN &&
	    mfsd_lease_lock(mfs_container_fd(m->container)) == 0) {
		/* No chunk was marked verified while unleased (data.c), so
		 * nothing read before the lease is trusted now. */
		m->lease_err = 0;
		(void)atomic_compare_exchange_strong(&m->trust, &expected,
						     MFSD_TRUST_LEASED);
		/* Every publish by lib/writer.c comes here: not news. */
		mfsd_log(MFSD_LOG_DEBUG, "container %s of model %s is leased "
			 "now that no process has it open for writing",
			 m->file_name, m->key);
	}
	mfsd_lease_check(m);
}

/* True if @fd is one of @fds[@n]. */
static bool mfsd_lease_fd_in(int fd, const int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] == fd)
			return true;
	return false;
}

/* Checks the leased live models of @s whose descriptor is in @fds[@n],
 * or all of them if @all; @adopt: point their breaks at this process
 * first. */
static void mfsd_lease_scan(struct mfsd_table *s, const int *fds, size_t n,
			    bool all, bool adopt)
{
	struct mfsd_model **models;
	ssize_t count = mfsd_table_get_all(s, &models);

	if (count < 0) {
		const struct timespec pause = {0, MFSD_LEASE_RETRY_NS};

		/* The signals are read: a SIGIO to ourselves makes the next
		 * round check every leased model. */
		mfsd_log(MFSD_LOG_WARNING, "lease breaks postponed: out of "
			 "memory");
		nanosleep(&pause, NULL);
		(void)kill(getpid(), SIGIO);
		return;
	}
	for (ssize_t i = 0; i < count; i++) {
		struct mfsd_model *m = models[i];
		struct mfsd_model_counts c;
		int fd;

		mfsd_table_model_counts(s, m, &c);
		/* A retired model's descriptor, and its lease, are gone. */
		if (c.retired || atomic_load(&m->trust) != MFSD_TRUST_LEASED)
			continue;
		fd = mfs_container_fd(m->container);
		if (!all && !mfsd_lease_fd_in(fd, fds, n))
			continue;
		if (adopt)
			(void)mfsd_lease_own(fd);
		mfsd_lease_check(m);
	}
	mfsd_table_put_all(s, models, (size_t)count);
}

void mfsd_lease_drain(int sfd, struct mfsd_table *s)
{
	struct signalfd_siginfo si[MFSD_LEASE_BATCH];
	int fds[MFSD_LEASE_BATCH];
	ssize_t got;

	while ((got = read(sfd, si, sizeof(si))) > 0) {
		size_t k = (size_t)got / sizeof(si[0]), n = 0;
		bool all = false;

		for (size_t i = 0; i < k; i++) {
			if ((int)si[i].ssi_signo == mfsd_lease_signo)
				fds[n++] = si[i].ssi_fd;
			else
				all = true; /* SIGIO: breaks were lost */
		}
		mfsd_lease_scan(s, fds, n, all, false);
	}
}

void mfsd_lease_adopt(struct mfsd_table *s)
{
	if (mfsd_lease_signo != 0)
		mfsd_lease_scan(s, NULL, 0, true, true);
}
