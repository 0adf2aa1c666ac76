/*
 * sdnotify.c - systemd's notification and descriptor-passing protocol
 * (see sdnotify.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sdnotify.h"

#define MFSD_SD_NOTIFY_ENV "NOTIFY_SOCKET"
#define MFSD_SD_STATE_MAX 512

bool mfsd_sd_enabled(void)
{
	const char *p = getenv(MFSD_SD_NOTIFY_ENV);

	return p && *p;
}

/* Fills @sa with the address in $NOTIFY_SOCKET ('@': abstract).  Its
 * length, or 0 if there is none or it does not fit. */
static socklen_t mfsd_sd_addr(struct sockaddr_un *sa)
{
	const char *p = getenv(MFSD_SD_NOTIFY_ENV);
	size_t n;

	if (!p || (*p != '/' && *p != '@'))
		return 0;
	n = strlen(p);
	if (n > sizeof(sa->sun_path))
		return 0;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, p, n);
	if (*p == '@')
		sa->sun_path[0] = '\0';
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

int mfsd_sd_notify(const char *state, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct sockaddr_un sa;
	struct iovec iov = {.iov_base = (void *)state,
			    .iov_len = strlen(state)};
	struct msghdr mh = {.msg_name = &sa, .msg_iov = &iov,
			    .msg_iovlen = 1};
	struct cmsghdr *c;
	int s, rc = 0;

	mh.msg_namelen = mfsd_sd_addr(&sa);
	if (mh.msg_namelen == 0)
		return -ENOTCONN;
	s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
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
	if (sendmsg(s, &mh, MSG_NOSIGNAL) < 0)
		rc = -errno;
	close(s);
	return rc;
}

int mfsd_sd_store(const char *name, int fd)
{
	char state[MFSD_SD_STATE_MAX];

	snprintf(state, sizeof(state), "FDSTORE=1\nFDNAME=%s", name);
	return mfsd_sd_notify(state, fd);
}

int mfsd_sd_unstore(const char *name)
{
	char state[MFSD_SD_STATE_MAX];

	snprintf(state, sizeof(state), "FDSTOREREMOVE=1\nFDNAME=%s", name);
	return mfsd_sd_notify(state, -1);
}

/* Copies the @i-th ':'-separated name of @names into @out. */
static void mfsd_sd_name(const char *names, int i, char *out)
{
	const char *p = names, *end;
	size_t n;

	for (; p && i > 0; i--) {
		p = strchr(p, ':');
		if (p)
			p++;
	}
	out[0] = '\0';
	if (!p)
		return;
	end = strchr(p, ':');
	n = end ? (size_t)(end - p) : strlen(p);
	if (n > MFSD_SD_FDNAME_MAX)
		n = MFSD_SD_FDNAME_MAX;
	memcpy(out, p, n);
	out[n] = '\0';
}

int mfsd_sd_listen_fds(struct mfsd_sd_fd **out)
{
	const char *pid = getenv("LISTEN_PID"), *nfds = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");
	struct mfsd_sd_fd *v;
	long n;

	*out = NULL;
	if (!pid || !nfds || strtol(pid, NULL, 10) != (long)getpid())
		return 0;
	n = strtol(nfds, NULL, 10);
	if (n <= 0 || n > INT_MAX - MFSD_SD_LISTEN_FDS_START)
		return 0;
	v = calloc((size_t)n, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (int i = 0; i < (int)n; i++) {
		v[i].fd = MFSD_SD_LISTEN_FDS_START + i;
		(void)fcntl(v[i].fd, F_SETFD, FD_CLOEXEC);
		mfsd_sd_name(names, i, v[i].name);
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	*out = v;
	return (int)n;
}
