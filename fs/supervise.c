/*
 * supervise.c - the supervisor: mount, /dev/fuse, the serving child, its
 * restarts and upgrades, the unmount (see supervise.h).
 *
 * The supervisor is single-threaded: one poll loop over a signalfd
 * (SIGCHLD and the stop and upgrade signals) and the socket on which the
 * child hands over container descriptors (handoff.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "sdnotify.h"
#include "supervise.h"
#include "vec.h"

/* How long a stopping child may take before the mount is pulled from
 * under it. */
#define MFSD_STOP_GRACE_MS 10000
#define MFSD_MS_PER_S 1000
#define MFSD_NS_PER_MS (MFSD_NS_PER_SEC / MFSD_MS_PER_S)
/* The daemonizing parent's report: one byte, the exit status. */
#define MFSD_REPORT_OK 0
#define MFSD_REPORT_FAIL 1
#define MFSD_FUSERMOUNT "fusermount3"
#define MFSD_DEV_NULL "/dev/null"
#define MFSD_FD_TEXT_MAX 16
/* Room for "killed by signal N (name)" or "exited with status N". */
#define MFSD_HOW_MAX 64
/* Names in systemd's descriptor store (FDNAME=). */
#define MFSD_SD_NAME_FUSE "fuse"
#define MFSD_SD_NAME_HANDOFF "handoff"
#define MFSD_SD_NAME_CONTAINER "c" /* + generation */

/* The descriptors systemd passed at start (mfsd_supervise_adopted):
 * the previous supervisor's, kept in the service's descriptor store. */
static struct mfsd_sd_fd *mfsd_sd_passed;
static int mfsd_sd_npassed;

struct mfsd_sup {
	const struct mfsd_supervise_opts *o;
	mfsd_serve_fn serve;
	void *serve_arg;
	char exe[PATH_MAX];    /* the binary to run again for an upgrade */
	char cwd[PATH_MAX];    /* where relative arguments were given */
	int region_fd;
	struct mfsd_handoff_region *r;
	/* The session that mounted (NULL after a re-execution); it owns
	 * fuse_fd and unmounts. */
	struct fuse_session *se;
	int fuse_fd;
	int sock;        /* our end */
	int child_sock;  /* the children's end */
	int sigfd;
	int report_fd;   /* the daemonizing parent waits on it; -1: none */
	pid_t child;     /* 0: none */
	unsigned spawned; /* children started by this image (a re-executed
			     supervisor counts the drained one) */
	bool child_ready;
	bool ever_ready;
	bool told_ready; /* the start was reported (parent, systemd) */
	bool stopping;
	bool upgrading;
	uint64_t stop_deadline_ns;
	uint64_t deaths[MFSD_RESPAWN_LIMIT]; /* ring of CLOCK_MONOTONIC */
	size_t ndeaths;
	/* The container descriptors the children handed over. */
	struct mfsd_handoff_fd *fds;
	size_t nfds;
	size_t fds_cap;
};

/* The signals the supervisor takes through its signalfd. */
static void mfsd_sup_sigset(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGCHLD);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR2);
}

/* ------------------------------------------------------------------ */
/* Container descriptors                                               */
/* ------------------------------------------------------------------ */

/* Keeps descriptor @fd of generation @gen.  Closes it if out of memory
 * (a successor then reopens the container by name). */
static void mfsd_sup_fd_add(struct mfsd_sup *s, uint64_t gen, int fd)
{
	struct mfsd_handoff_fd e = {.gen = gen, .fd = fd};

	if (s->nfds >= MFSD_HANDOFF_MAX_MODELS ||
	    mfsd_vec_reserve((void **)&s->fds, &s->fds_cap, s->nfds + 1,
			     sizeof(*s->fds)) < 0) {
		close(fd);
		return;
	}
	s->fds[s->nfds++] = e;
}

/* Closes the descriptor of generation @gen, if one is kept. */
static void mfsd_sup_fd_del(struct mfsd_sup *s, uint64_t gen)
{
	for (size_t i = 0; i < s->nfds; i++) {
		if (s->fds[i].gen == gen) {
			close(s->fds[i].fd);
			s->fds[i] = s->fds[--s->nfds];
			return;
		}
	}
}

/* Stores container descriptor @fd of generation @gen in systemd's
 * descriptor store, or removes it there (@fd -1). */
static void mfsd_sup_sd_container(uint64_t gen, int fd)
{
	char name[MFSD_SD_FDNAME_MAX + 1];

	if (!mfsd_sd_enabled())
		return;
	snprintf(name, sizeof(name), MFSD_SD_NAME_CONTAINER "%llu",
		 (unsigned long long)gen);
	if (fd >= 0)
		(void)mfsd_sd_store(name, fd);
	else
		(void)mfsd_sd_unstore(name);
}

/* Reads one message of the child.  1 if one was read, 0 if none is
 * waiting, negative errno on failure. */
static int mfsd_sup_recv(struct mfsd_sup *s)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct mfsd_handoff_msg msg;
	struct iovec iov = {.iov_base = &msg, .iov_len = sizeof(msg)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c;
	int fd = -1;
	ssize_t n = recvmsg(s->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if ((size_t)n != sizeof(msg)) {
		if (fd >= 0)
			close(fd);
		return 1;
	}
	if (msg.op == MFSD_HO_ADD && fd >= 0) {
		mfsd_sup_fd_add(s, msg.gen, fd);
		mfsd_sup_sd_container(msg.gen, fd);
	} else if (fd >= 0) {
		close(fd);
	}
	if (msg.op == MFSD_HO_DEL) {
		mfsd_sup_fd_del(s, msg.gen);
		mfsd_sup_sd_container(msg.gen, -1);
	}
	else if (msg.op == MFSD_HO_READY)
		s->child_ready = true;
	return 1;
}

/* Reads every message waiting (before a successor is started, so that
 * its inherited copy of the table is complete). */
static void mfsd_sup_drain(struct mfsd_sup *s)
{
	while (mfsd_sup_recv(s) > 0)
		;
}

/* ------------------------------------------------------------------ */
/* Mount and unmount                                                   */
/* ------------------------------------------------------------------ */

/* No request ever reaches the supervisor's session: it only mounts. */
static const struct fuse_lowlevel_ops mfsd_sup_ops;

/* Mounts, keeping the session in s->se and its device descriptor in
 * s->fuse_fd.  0 or -1 (logged by libfuse). */
static int mfsd_sup_mount(struct mfsd_sup *s)
{
	s->se = fuse_session_new(s->o->mount_args, &mfsd_sup_ops,
				 sizeof(mfsd_sup_ops), NULL);
	if (!s->se)
		return -1;
	if (fuse_session_mount(s->se, s->o->mountpoint) < 0)
		return -1;
	s->fuse_fd = fuse_session_fd(s->se);
	return 0;
}

void mfsd_unmount_lazy(const char *mnt)
{
	pid_t pid;

	if (geteuid() == 0) {
		if (umount2(mnt, MNT_DETACH) < 0 && errno != EINVAL &&
		    errno != ENOENT)
			mfsd_log(MFSD_LOG_WARNING, "cannot unmount %s: %s", mnt,
				 strerror(errno));
		return;
	}
	pid = fork();
	if (pid == 0) {
		execlp(MFSD_FUSERMOUNT, MFSD_FUSERMOUNT, "-u", "-q", "-z", "--",
		       mnt, (char *)NULL);
		_exit(MFSD_EXIT_FAIL);
	}
	if (pid > 0)
		(void)waitpid(pid, NULL, 0);
}

/*
 * Ends the mount: closes the device (the connection ends unless a child
 * still holds it) and unmounts lazily, unless the device says the mount
 * is gone already (fusermount3 -u, an abort).  As libfuse's unmount.
 */
static void mfsd_sup_unmount(struct mfsd_sup *s)
{
	struct pollfd pfd = {.fd = s->fuse_fd, .events = 0};
	bool gone;

	if (s->fuse_fd < 0)
		return;
	if (s->se) {
		/* The same steps, and libfuse frees what it kept. */
		fuse_session_unmount(s->se);
		s->fuse_fd = -1;
		return;
	}
	gone = poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR);
	close(s->fuse_fd);
	s->fuse_fd = -1;
	if (!gone)
		mfsd_unmount_lazy(s->o->mountpoint);
}

/* ------------------------------------------------------------------ */
/* The serving child                                                   */
/* ------------------------------------------------------------------ */

/* In a new child: drops what only the supervisor uses, and runs the
 * serving process.  Never returns. */
static void mfsd_sup_child_main(struct mfsd_sup *s, bool replay)
{
	struct mfsd_child c = {
		.fuse_fd = s->fuse_fd,
		.region = s->r,
		.sock = s->child_sock,
		.replay = replay,
		.resend = s->spawned > 0,
		.adopt = true,
		.fds = s->fds,
		.nfds = s->nfds,
	};
	pid_t sup = (pid_t)s->r->supervisor_pid;
	sigset_t set;

	/* The supervisor is the daemon: when it is killed, the mount dies
	 * with its last descriptor, as it did before there was a
	 * supervisor (README, "If the daemon dies"). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != sup)
		_exit(MFSD_CHILD_EXIT_FAILED);
	close(s->sigfd);
	close(s->sock);
	close(s->region_fd); /* the mapping stays */
	if (s->report_fd >= 0)
		close(s->report_fd);
	mfsd_sup_sigset(&set);
	signal(SIGCHLD, SIG_DFL);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	exit(s->serve(s->serve_arg, &c));
}

/* Starts a serving child.  0 or -1 (logged). */
static int mfsd_sup_spawn(struct mfsd_sup *s)
{
	bool replay = atomic_load(&s->r->init_len) != 0;
	pid_t pid;

	/* Everything the dead child sent is in s->fds before the next
	 * one inherits it. */
	mfsd_sup_drain(s);
	s->r->supervisor_pid = (int32_t)getpid(); /* after daemonizing */
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		mfsd_log(MFSD_LOG_ERR, "cannot start the serving process: %s",
			 strerror(errno));
		return -1;
	}
	if (pid == 0)
		mfsd_sup_child_main(s, replay);
	s->child = pid;
	s->spawned++;
	s->child_ready = false;
	atomic_store(&s->r->server_pid, pid);
	if (s->spawned > 1)
		atomic_fetch_add(&s->r->takeovers, 1);
	return 0;
}

/* Tells the daemonizing parent how the start went, once. */
static void mfsd_sup_report(struct mfsd_sup *s, unsigned char status)
{
	int fd;

	if (s->report_fd < 0)
		return;
	(void)!write(s->report_fd, &status, 1);
	close(s->report_fd);
	s->report_fd = -1;
	/* Detached from the terminal from now on. */
	fd = open(MFSD_DEV_NULL, O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
}

/* Ends the supervisor: unmounts, and returns @status to exit with. */
static int mfsd_sup_finish(struct mfsd_sup *s, int status)
{
	if (mfsd_sd_enabled()) {
		/* The mount ends: nothing is left for a restart to take. */
		(void)mfsd_sd_notify("STOPPING=1", -1);
		(void)mfsd_sd_unstore(MFSD_SD_NAME_FUSE);
		(void)mfsd_sd_unstore(MFSD_SD_NAME_HANDOFF);
		for (size_t i = 0; i < s->nfds; i++)
			mfsd_sup_sd_container(s->fds[i].gen, -1);
	}
	mfsd_sup_unmount(s);
	if (s->child > 0) {
		/* A child that did not stop in time; the unmount freed it
		 * from whatever it waited on. */
		kill(s->child, SIGKILL);
		(void)waitpid(s->child, NULL, 0);
		s->child = 0;
	}
	mfsd_sup_report(s, status == MFSD_EXIT_OK ? MFSD_REPORT_OK
						  : MFSD_REPORT_FAIL);
	return status;
}

/* Counts a death of the child at @now; true if that makes
 * MFSD_RESPAWN_LIMIT within MFSD_RESPAWN_WINDOW_NS. */
static bool mfsd_sup_death(struct mfsd_sup *s, uint64_t now)
{
	size_t oldest;

	s->deaths[s->ndeaths % MFSD_RESPAWN_LIMIT] = now;
	s->ndeaths++;
	if (s->ndeaths < MFSD_RESPAWN_LIMIT)
		return false;
	oldest = s->ndeaths % MFSD_RESPAWN_LIMIT;
	return now - s->deaths[oldest] <= MFSD_RESPAWN_WINDOW_NS;
}

/* Why a successor cannot take over (NULL: it can). */
static const char *mfsd_sup_no_takeover(struct mfsd_sup *s)
{
	uint32_t minor = mfsd_handoff_kernel_minor(s->r);

	if (!s->o->takeover)
		return "takeover is off (-o takeover=off)";
	if (minor && minor < MFSD_FUSE_RESEND_MINOR)
		return "the kernel lacks FUSE_NOTIFY_RESEND (FUSE protocol "
		       "7.40, Linux 6.9): requests the dead process had read "
		       "would never be answered";
	return NULL;
}

/* Describes wait status @ws in @buf. */
static const char *mfsd_sup_how(int ws, char *buf, size_t len)
{
	if (WIFSIGNALED(ws))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(ws),
			 strsignal(WTERMSIG(ws)));
	else
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(ws));
	return buf;
}

static int mfsd_sup_reexec(struct mfsd_sup *s);

/*
 * The child ended with wait status @ws: stop, upgrade or restart.
 * Returns -1 to go on supervising, else the exit status.
 */
static int mfsd_sup_child_ended(struct mfsd_sup *s, int ws)
{
	bool was_ready;
	char how[MFSD_HOW_MAX];
	const char *why;
	pid_t pid = s->child;

	s->child = 0;
	mfsd_sup_drain(s);
	was_ready = s->child_ready || s->ever_ready;
	if (s->stopping)
		return mfsd_sup_finish(s, MFSD_EXIT_OK);
	if (s->upgrading && WIFEXITED(ws) &&
	    WEXITSTATUS(ws) == MFSD_CHILD_EXIT_DRAINED)
		return mfsd_sup_reexec(s);
	if (WIFEXITED(ws) && WEXITSTATUS(ws) == MFSD_CHILD_EXIT_STOPPED) {
		mfsd_log(MFSD_LOG_INFO, "serving process %d ended; unmounting",
			 (int)pid);
		return mfsd_sup_finish(s, MFSD_EXIT_OK);
	}
	s->upgrading = false;
	mfsd_sup_how(ws, how, sizeof(how));
	if (!was_ready) {
		mfsd_log(MFSD_LOG_ERR, "the serving process %d %s before it "
			 "served; unmounting", (int)pid, how);
		return mfsd_sup_finish(s, MFSD_EXIT_FAIL);
	}
	mfsd_log(MFSD_LOG_WARNING, "serving process %d %s", (int)pid, how);
	why = mfsd_sup_no_takeover(s);
	if (why) {
		mfsd_log(MFSD_LOG_ERR, "no takeover: %s; unmounting", why);
		return mfsd_sup_finish(s, MFSD_EXIT_FAIL);
	}
	if (mfsd_sup_death(s, mfsd_now_ns())) {
		mfsd_log(MFSD_LOG_ERR, "giving up: the serving process died %u "
			 "times within %llu s; unmounting", MFSD_RESPAWN_LIMIT,
			 (unsigned long long)(MFSD_RESPAWN_WINDOW_NS /
					      MFSD_NS_PER_SEC));
		return mfsd_sup_finish(s, MFSD_EXIT_FAIL);
	}
	if (mfsd_sup_spawn(s) < 0)
		return mfsd_sup_finish(s, MFSD_EXIT_FAIL);
	mfsd_log(MFSD_LOG_INFO, "serving process %d takes over from %d",
		 (int)s->child, (int)pid);
	return -1;
}

/* Reaps children.  -1 to go on, else the exit status. */
static int mfsd_sup_reap(struct mfsd_sup *s)
{
	int ws;
	pid_t pid;

	while ((pid = waitpid(-1, &ws, WNOHANG)) > 0)
		if (pid == s->child)
			return mfsd_sup_child_ended(s, ws);
	return -1;
}

/* Begins the stop for good: the child is told to end its session. */
static int mfsd_sup_stop(struct mfsd_sup *s, int signo)
{
	if (s->stopping)
		return -1;
	mfsd_log(MFSD_LOG_INFO, "stopping (%s)", strsignal(signo));
	s->stopping = true;
	if (!s->child)
		return mfsd_sup_finish(s, MFSD_EXIT_OK);
	kill(s->child, SIGUSR1);
	s->stop_deadline_ns = mfsd_now_ns() +
			      (uint64_t)MFSD_STOP_GRACE_MS * MFSD_NS_PER_MS;
	return -1;
}

/* Begins an upgrade: the child drains, then the binary runs again. */
static void mfsd_sup_upgrade(struct mfsd_sup *s)
{
	const char *why = mfsd_sup_no_takeover(s);

	if (s->stopping || s->upgrading || !s->child)
		return;
	if (why || !s->child_ready) {
		mfsd_log(MFSD_LOG_ERR, "cannot upgrade now: %s",
			 why ? why : "the serving process is still starting");
		return;
	}
	mfsd_log(MFSD_LOG_INFO, "upgrade: draining serving process %d",
		 (int)s->child);
	s->upgrading = true;
	kill(s->child, SIGUSR2);
}

/* Handles the signals waiting on the signalfd.  -1 to go on, else the
 * exit status. */
static int mfsd_sup_signals(struct mfsd_sup *s)
{
	struct signalfd_siginfo si;
	int rc = -1;

	while (rc < 0 && read(s->sigfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			rc = mfsd_sup_reap(s);
			break;
		case SIGUSR2:
			mfsd_sup_upgrade(s);
			break;
		default: /* SIGTERM, SIGINT, SIGHUP */
			rc = mfsd_sup_stop(s, (int)si.ssi_signo);
			break;
		}
	}
	return rc;
}

/* The poll timeout: until the stop deadline, or none. */
static int mfsd_sup_timeout(const struct mfsd_sup *s)
{
	uint64_t now;

	if (!s->stopping || !s->child)
		return -1;
	now = mfsd_now_ns();
	if (now >= s->stop_deadline_ns)
		return 0;
	return (int)((s->stop_deadline_ns - now) / MFSD_NS_PER_MS) + 1;
}

/* The supervisor's loop.  Returns the exit status. */
static int mfsd_sup_loop(struct mfsd_sup *s)
{
	int rc = -1;

	while (rc < 0) {
		struct pollfd p[2] = {
			{.fd = s->sigfd, .events = POLLIN},
			{.fd = s->sock, .events = POLLIN},
		};
		int n = poll(p, 2, mfsd_sup_timeout(s));

		if (n < 0 && errno != EINTR) {
			mfsd_log(MFSD_LOG_ERR, "poll: %s", strerror(errno));
			return mfsd_sup_finish(s, MFSD_EXIT_FAIL);
		}
		if (n > 0 && (p[1].revents & POLLIN)) {
			mfsd_sup_drain(s);
			if (s->child_ready && !s->told_ready) {
				s->ever_ready = true;
				s->told_ready = true;
				mfsd_sup_report(s, MFSD_REPORT_OK);
				(void)mfsd_sd_notify("READY=1", -1);
			}
		}
		if (n > 0 && (p[0].revents & POLLIN))
			rc = mfsd_sup_signals(s);
		if (rc < 0 && s->stopping && s->child &&
		    mfsd_sup_timeout(s) == 0) {
			mfsd_log(MFSD_LOG_WARNING, "serving process %d did not "
				 "stop within %d s; unmounting under it",
				 (int)s->child, MFSD_STOP_GRACE_MS /
							MFSD_MS_PER_S);
			rc = mfsd_sup_finish(s, MFSD_EXIT_OK);
		}
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* Upgrade: the binary runs again                                      */
/* ------------------------------------------------------------------ */

/* Clears close-on-exec on @fd. */
static void mfsd_keep_fd(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl >= 0)
		(void)fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
}

/*
 * Executes the modelfs binary at the supervisor's path again, keeping
 * the device, the socket, the region and the container descriptors
 * (their numbers in the region).  On failure, logged, a child of this
 * image takes over instead.  Returns -1 (go on) or an exit status.
 */
static int mfsd_sup_reexec(struct mfsd_sup *s)
{
	char env[MFSD_FD_TEXT_MAX];

	s->upgrading = false;
	s->r->fuse_fd = s->fuse_fd;
	s->r->sock_fd = s->sock;
	s->r->child_sock_fd = s->child_sock;
	s->r->nsup_fds = (uint32_t)s->nfds;
	for (size_t i = 0; i < s->nfds; i++) {
		s->r->sup_fds[i] = s->fds[i];
		mfsd_keep_fd(s->fds[i].fd);
	}
	mfsd_keep_fd(s->fuse_fd);
	mfsd_keep_fd(s->sock);
	mfsd_keep_fd(s->child_sock);
	mfsd_keep_fd(s->region_fd);
	snprintf(env, sizeof(env), "%d", s->region_fd);
	mfsd_log(MFSD_LOG_INFO, "upgrade: executing %s", s->exe);
	if (setenv(MFSD_HANDOFF_ENV, env, 1) == 0 && chdir(s->cwd) == 0)
		execv(s->exe, s->o->argv);
	mfsd_log(MFSD_LOG_ERR, "upgrade: cannot execute %s: %s; this binary "
		 "goes on serving", s->exe, strerror(errno));
	unsetenv(MFSD_HANDOFF_ENV);
	if (chdir("/") < 0 || mfsd_sup_spawn(s) < 0)
		return mfsd_sup_finish(s, MFSD_EXIT_FAIL);
	return -1;
}

/* Parses the descriptor number @text (of MFSD_HANDOFF_ENV).  It, or -1
 * (logged). */
static int mfsd_sup_env_fd(const char *text)
{
	char *end;
	long fd = strtol(text, &end, 10);

	if (*text == '\0' || *end || fd < 0 || fd > INT_MAX) {
		mfsd_log(MFSD_LOG_ERR, "bad %s '%s'", MFSD_HANDOFF_ENV, text);
		return -1;
	}
	return (int)fd;
}

/* Maps the takeover state of memfd @fd into s->r.  0 or -1 (logged). */
static int mfsd_sup_map(struct mfsd_sup *s, int fd)
{
	int rc = mfsd_handoff_region_map(fd, &s->r);

	if (rc < 0) {
		mfsd_log(MFSD_LOG_ERR, "cannot take over the mount: the "
			 "previous binary's state is unreadable (%s)",
			 rc == -EPROTO ? "another version" : strerror(-rc));
		return -1;
	}
	s->region_fd = fd;
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	return 0;
}

/* Ends an adoption: the supervisor is this process now, and the serving
 * process it starts takes over from the previous one. */
static void mfsd_sup_adopted(struct mfsd_sup *s, const char *how)
{
	s->r->supervisor_pid = (int32_t)getpid();
	(void)fcntl(s->fuse_fd, F_SETFD, FD_CLOEXEC);
	for (size_t i = 0; i < s->nfds; i++)
		(void)fcntl(s->fds[i].fd, F_SETFD, FD_CLOEXEC);
	s->ever_ready = true;
	s->spawned = 1; /* the previous serving process */
	mfsd_log(MFSD_LOG_INFO, "%s: supervisor %d took over %s", how,
		 (int)getpid(), s->r->mountpoint);
}

/* After a re-execution: takes the descriptors named in the region of
 * memfd @text.  0 or -1 (logged). */
static int mfsd_sup_adopt(struct mfsd_sup *s, const char *text)
{
	int fd = mfsd_sup_env_fd(text);

	if (fd < 0 || mfsd_sup_map(s, fd) < 0)
		return -1;
	s->fuse_fd = s->r->fuse_fd;
	s->sock = s->r->sock_fd;
	s->child_sock = s->r->child_sock_fd;
	(void)fcntl(s->sock, F_SETFD, FD_CLOEXEC);
	(void)fcntl(s->child_sock, F_SETFD, FD_CLOEXEC);
	for (uint32_t i = 0; i < s->r->nsup_fds; i++)
		mfsd_sup_fd_add(s, s->r->sup_fds[i].gen, s->r->sup_fds[i].fd);
	s->r->nsup_fds = 0;
	mfsd_sup_adopted(s, "upgrade");
	return 0;
}

/* The descriptor systemd passed as @name, or -1. */
static int mfsd_sup_sd_fd(const char *name)
{
	for (int i = 0; i < mfsd_sd_npassed; i++)
		if (strcmp(mfsd_sd_passed[i].name, name) == 0)
			return mfsd_sd_passed[i].fd;
	return -1;
}

/* Under systemd, after the supervisor died: takes the mount over from
 * the descriptors of the service's store.  0, 1 if the store holds no
 * mount (a fresh start), or -1 (logged). */
static int mfsd_sup_adopt_sd(struct mfsd_sup *s)
{
	int fuse_fd = mfsd_sup_sd_fd(MFSD_SD_NAME_FUSE);
	int region_fd = mfsd_sup_sd_fd(MFSD_SD_NAME_HANDOFF);
	size_t plen = strlen(MFSD_SD_NAME_CONTAINER);
	int sv[2];

	if (fuse_fd < 0 || region_fd < 0)
		return 1;
	if (mfsd_sup_map(s, region_fd) < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		mfsd_log(MFSD_LOG_ERR, "socketpair: %s", strerror(errno));
		return -1;
	}
	s->sock = sv[0];
	s->child_sock = sv[1];
	s->fuse_fd = fuse_fd;
	for (int i = 0; i < mfsd_sd_npassed; i++) {
		const char *name = mfsd_sd_passed[i].name;

		if (strncmp(name, MFSD_SD_NAME_CONTAINER, plen) == 0 &&
		    name[plen] >= '0' && name[plen] <= '9')
			mfsd_sup_fd_add(s, strtoull(name + plen, NULL, 10),
					mfsd_sd_passed[i].fd);
	}
	mfsd_sup_adopted(s, "restart");
	return 0;
}

/* Closes what systemd passed and this process did not take. */
static void mfsd_sup_sd_close_unused(const struct mfsd_sup *s)
{
	for (int i = 0; i < mfsd_sd_npassed; i++) {
		int fd = mfsd_sd_passed[i].fd;
		bool used = fd == s->fuse_fd || fd == s->region_fd;

		for (size_t j = 0; !used && j < s->nfds; j++)
			used = s->fds[j].fd == fd;
		if (!used)
			close(fd);
	}
	free(mfsd_sd_passed);
	mfsd_sd_passed = NULL;
	mfsd_sd_npassed = 0;
}

int mfsd_supervise_adopted(char **mountpoint)
{
	const char *env = getenv(MFSD_HANDOFF_ENV);
	struct mfsd_handoff_region *r;
	int fd = -1, n;

	*mountpoint = NULL;
	if (env) {
		fd = mfsd_sup_env_fd(env);
	} else {
		n = mfsd_sd_listen_fds(&mfsd_sd_passed);
		if (n < 0)
			return n;
		mfsd_sd_npassed = n;
		if (mfsd_sup_sd_fd(MFSD_SD_NAME_FUSE) >= 0)
			fd = mfsd_sup_sd_fd(MFSD_SD_NAME_HANDOFF);
		else
			return 0;
	}
	if (fd < 0 || mfsd_handoff_region_map(fd, &r) < 0)
		return 0; /* mfsd_supervise says why */
	*mountpoint = strndup(r->mountpoint, sizeof(r->mountpoint));
	mfsd_handoff_region_unmap(r);
	return *mountpoint ? 1 : -ENOMEM;
}

/* ------------------------------------------------------------------ */
/* Start                                                               */
/* ------------------------------------------------------------------ */

/* Creates the region and the socket, and mounts.  0 or -1 (logged). */
static int mfsd_sup_setup(struct mfsd_sup *s)
{
	int sv[2];

	s->region_fd = mfsd_handoff_region_create(&s->r);
	if (s->region_fd < 0) {
		mfsd_log(MFSD_LOG_ERR, "cannot create the takeover state: %s",
			 strerror(-s->region_fd));
		return -1;
	}
	s->r->supervisor_pid = (int32_t)getpid();
	snprintf(s->r->mountpoint, sizeof(s->r->mountpoint), "%s",
		 s->o->mountpoint);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		mfsd_log(MFSD_LOG_ERR, "socketpair: %s", strerror(errno));
		return -1;
	}
	s->sock = sv[0];
	s->child_sock = sv[1];
	return mfsd_sup_mount(s);
}

/*
 * Goes into the background: the parent waits for the supervisor's
 * report (the first child serves, or the start failed) and exits with
 * it, so that `modelfs STORE MNT` returns once the mount answers.
 * 0 in the supervisor, or -1 (logged).
 */
static int mfsd_sup_daemonize(struct mfsd_sup *s)
{
	unsigned char status = MFSD_REPORT_FAIL;
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0) {
		mfsd_log(MFSD_LOG_ERR, "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		mfsd_log(MFSD_LOG_ERR, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &status, 1) != 1)
			status = MFSD_REPORT_FAIL;
		_exit(status);
	}
	close(p[0]);
	s->report_fd = p[1];
	(void)setsid();
	if (chdir("/") < 0)
		mfsd_log(MFSD_LOG_WARNING, "chdir /: %s", strerror(errno));
	return 0;
}

/* The signals are taken through a signalfd.  0 or -1 (logged). */
static int mfsd_sup_signalfd(struct mfsd_sup *s)
{
	sigset_t set;

	mfsd_sup_sigset(&set);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	s->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s->sigfd < 0) {
		mfsd_log(MFSD_LOG_ERR, "signalfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Frees what the supervisor holds. */
static void mfsd_sup_free(struct mfsd_sup *s)
{
	for (size_t i = 0; i < s->nfds; i++)
		close(s->fds[i].fd);
	free(s->fds);
	if (s->sigfd >= 0)
		close(s->sigfd);
	if (s->sock >= 0)
		close(s->sock);
	if (s->child_sock >= 0)
		close(s->child_sock);
	if (s->se)
		fuse_session_destroy(s->se); /* closes fuse_fd */
	else if (s->fuse_fd >= 0)
		close(s->fuse_fd);
	mfsd_handoff_region_unmap(s->r);
	if (s->region_fd >= 0)
		close(s->region_fd);
}

int mfsd_supervise(const struct mfsd_supervise_opts *o, mfsd_serve_fn serve,
		   void *arg)
{
	struct mfsd_sup s = {
		.o = o, .serve = serve, .serve_arg = arg,
		.region_fd = -1, .fuse_fd = -1, .sock = -1, .child_sock = -1,
		.sigfd = -1, .report_fd = -1,
	};
	const char *handoff = getenv(MFSD_HANDOFF_ENV);
	ssize_t n = readlink("/proc/self/exe", s.exe, sizeof(s.exe) - 1);
	int status = MFSD_EXIT_FAIL, adopted;

	if (n > 0)
		s.exe[n] = '\0';
	if (!getcwd(s.cwd, sizeof(s.cwd)))
		snprintf(s.cwd, sizeof(s.cwd), "/");
	if (mfsd_sup_signalfd(&s) < 0)
		goto out;
	if (handoff) {
		unsetenv(MFSD_HANDOFF_ENV);
		adopted = mfsd_sup_adopt(&s, handoff);
	} else {
		adopted = mfsd_sup_adopt_sd(&s);
	}
	mfsd_sup_sd_close_unused(&s);
	if (adopted < 0)
		goto out;
	if (adopted > 0) {
		if (mfsd_sup_setup(&s) < 0)
			goto out;
		if (!o->foreground && mfsd_sup_daemonize(&s) < 0) {
			status = mfsd_sup_finish(&s, MFSD_EXIT_FAIL);
			goto out;
		}
		/* Kept by systemd while the service restarts. */
		if (mfsd_sd_enabled() &&
		    (mfsd_sd_store(MFSD_SD_NAME_FUSE, s.fuse_fd) < 0 ||
		     mfsd_sd_store(MFSD_SD_NAME_HANDOFF, s.region_fd) < 0))
			mfsd_log(MFSD_LOG_WARNING, "cannot store the mount's "
				 "descriptors with systemd (FileDescriptorStoreMax=): "
				 "a restart of the service ends the mount");
	}
	if (mfsd_sup_spawn(&s) < 0) {
		status = mfsd_sup_finish(&s, MFSD_EXIT_FAIL);
		goto out;
	}
	status = mfsd_sup_loop(&s);
out:
	mfsd_sup_free(&s);
	return status;
}
