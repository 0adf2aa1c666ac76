/*
 * http.c - the remote store's fetcher over libcurl (see http.h).
 *
 * A pool of max_connections slots, each an easy handle driven by its own
 * multi handle: curl_multi_poll can be woken by curl_multi_wakeup, so a
 * cancel reaches a transfer that waits on a silent server at once, not at
 * the next progress tick.  A slot's multi handle keeps its connection
 * alive between transfers, and whichever thread takes the slot next
 * reuses it.  The slots share one CURLSH for the DNS cache and the TLS
 * sessions (a new connection resumes a session another slot made), but
 * not the connection cache: libcurl does not support sharing connections
 * between concurrent threads (CURLSHOPT_SHARE(3)), and a connection per
 * slot needs no sharing.  HTTP/1.1 only: one transfer per connection, so
 * max_connections bounds the connections to the origin.
 *
 * Redirects are not followed: a store is one prefix, and a redirect to
 * elsewhere would also carry the SigV4 credentials there.  A 3xx answer
 * is an error (-EIO) naming the status.
 *
 * A call runs attempts until one succeeds, one fails for good (404, 403,
 * 416, a protocol violation), or the deadline comes; between attempts it
 * sleeps with exponential backoff and jitter on the pool's condition
 * variable, so a cancel wakes it.  The connection is given back during
 * the sleep.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "http.h"
#include "log.h"

/* Bounds of the options, so a typo cannot ask for a million sockets. */
#define MFSD_HTTP_MAX_CONNECTIONS 256u
/* Backoff between attempts: doubled from the first to the cap, each
 * sleep drawn uniformly from [half, whole] of it (jitter spreads the
 * retries of many threads hit by one origin failure). */
#define MFSD_HTTP_BACKOFF_FIRST_MS 50u
#define MFSD_HTTP_BACKOFF_CAP_MS 1000u
/* Connecting is one small part of a call: leave the rest of the deadline
 * to the transfer and to a retry on another connection. */
#define MFSD_HTTP_CONNECT_MAX_MS 5000u
/* An attempt needs at least a round trip and some bytes: with less time
 * than this left before the deadline, none is started (and waiting for a
 * connection ends). */
#define MFSD_HTTP_MIN_ATTEMPT_MS 50u
/* A transfer slower than this many bytes per second over the stall time
 * is given up on (and retried), so a stalled connection does not use up
 * a long deadline.  Far below any working origin, and above the trickle
 * of a server that is stuck after its first bytes. */
#define MFSD_HTTP_STALL_BYTES_PER_S 1024L
#define MFSD_HTTP_STALL_S 5L
/* The longest a transfer waits in curl_multi_poll before looking at the
 * cancel flag again (a wakeup normally comes sooner). */
#define MFSD_HTTP_POLL_MS 200
/* Bytes of an error page read (and dropped) before the connection is
 * given up: small pages keep the connection alive, big ones do not cost
 * a download. */
#define MFSD_HTTP_DISCARD_MAX (64u << 10)
/* The first allocation of a whole object's body; doubled as needed. */
#define MFSD_HTTP_BODY_FIRST 4096u
/* Room for "Range: bytes=" and two 20-digit numbers. */
#define MFSD_HTTP_RANGE_LINE_MAX 64
/* Room for the reason of a failure in the log line. */
#define MFSD_HTTP_CAUSE_MAX 256
/* Identical log lines within this window are counted, not repeated. */
#define MFSD_HTTP_LOG_REPEAT_MS 10000u
#define MFSD_HTTP_LOG_LINE_MAX 1024

/* How a status line starts, telling it from a header line. */
#define MFSD_HTTP_STATUS_PREFIX "HTTP/"
/* ASCII bytes below the space are controls, and so is DEL. */
#define MFSD_ASCII_DEL 0x7f

#define MFSD_MS_PER_S 1000u
#define MFSD_NS_PER_MS 1000000L

/* HTTP statuses the fetcher tells apart. */
enum {
	MFSD_HTTP_OK = 200,
	MFSD_HTTP_PARTIAL = 206,
	MFSD_HTTP_REDIRECT_MIN = 300,
	MFSD_HTTP_REDIRECT_END = 400,
	MFSD_HTTP_NOT_MODIFIED = 304,
	MFSD_HTTP_UNAUTHORIZED = 401,
	MFSD_HTTP_FORBIDDEN = 403,
	MFSD_HTTP_NOT_FOUND = 404,
	MFSD_HTTP_REQUEST_TIMEOUT = 408,
	MFSD_HTTP_GONE = 410,
	MFSD_HTTP_RANGE_NOT_SATISFIABLE = 416,
	MFSD_HTTP_TOO_MANY_REQUESTS = 429,
	MFSD_HTTP_SERVER_ERROR_MIN = 500,
	MFSD_HTTP_SERVER_ERROR_END = 600,
};

/* One connection slot: an easy handle and the multi handle that drives
 * it.  Created on first use. */
struct mfsd_http_slot {
	CURL *easy;
	CURLM *multi;
	bool busy; /* protected by mfsd_http.lock */
};

struct mfsd_http {
	/* Immutable after mfsd_http_open: */
	char *base_url;
	unsigned max_connections;
	unsigned deadline_ms;
	char **headers;    /* the caller's extra headers, copied, NULL-ended */
	char *token_header; /* "x-amz-security-token: ...", or NULL */
	char *aws_sigv4;
	char *userpwd;     /* "key:secret" for SigV4, or NULL */
	char *ca_file;
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

	/* Set once by mfsd_http_cancel; read everywhere without a lock. */
	atomic_bool cancelled;

	pthread_mutex_t lock;
	/* Signalled when a slot is given back and on cancel. */
	pthread_cond_t wake;
	struct mfsd_http_slot *slots; /* [max_connections]; busy under lock */

	/* The last log line and how often it was held back; under
	 * log_lock. */
	pthread_mutex_t log_lock;
	char log_last[MFSD_HTTP_LOG_LINE_MAX];
	uint64_t log_last_ms;
	unsigned log_repeats;

	struct mfsd_http_stats stats;
};

enum mfsd_http_kind {
	MFSD_HTTP_RANGE,
	MFSD_HTTP_OBJECT,
	MFSD_HTTP_HEAD,
};

/* One call: what was asked, and what the current attempt received. */
struct mfsd_http_req {
	struct mfsd_http *h;
	enum mfsd_http_kind kind;
	char *url;
	uint64_t deadline; /* monotonic ms */
	CURL *easy;        /* of the current attempt */

	/* MFSD_HTTP_RANGE: */
	uint64_t off;
	size_t len;
	char *buf;

	/* MFSD_HTTP_OBJECT: */
	const char *etag_sent;
	size_t max_bytes;
	char *body;   /* malloc'ed, cap bytes */
	size_t cap;
	char *etag;   /* the answer's ETag, malloc'ed */
	curl_off_t content_length; /* of the last answer, -1 if none */

	/* Per attempt: */
	size_t got;        /* body bytes kept */
	size_t discarded;  /* bytes of an error page dropped */
	bool overflow;     /* more body than asked for */
	bool full;         /* a 200 to a range filled the buffer; rest cut */
	bool too_big;      /* an object over max_bytes */
	bool no_memory;
	bool ignored_range; /* 200 to a range not at 0 */
	bool dropped_rest;  /* an error page too long to read to its end */
	bool have_crange;
	uint64_t cr_first, cr_last, cr_total; /* cr_total UINT64_MAX: '*' */
	char cause[MFSD_HTTP_CAUSE_MAX];
};

static pthread_once_t mfsd_http_global_once = PTHREAD_ONCE_INIT;
static CURLcode mfsd_http_global_rc;

static void mfsd_http_global_init(void)
{
	mfsd_http_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Milliseconds on the monotonic clock. */
static uint64_t mfsd_http_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * MFSD_MS_PER_S +
	       (uint64_t)(ts.tv_nsec / MFSD_NS_PER_MS);
}

/* The monotonic timespec of @ms (as mfsd_http_now_ms), for timed waits. */
static struct timespec mfsd_http_abs_time(uint64_t ms)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ms / MFSD_MS_PER_S),
		.tv_nsec = (long)(ms % MFSD_MS_PER_S) * MFSD_NS_PER_MS,
	};
	return ts;
}

/* Logs one line, or counts it when it repeats the previous line within
 * MFSD_HTTP_LOG_REPEAT_MS (an origin that is down fails every call the
 * same way; one line says so). */
static void mfsd_http_log(struct mfsd_http *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void mfsd_http_log(struct mfsd_http *h, const char *fmt, ...)
{
	char line[MFSD_HTTP_LOG_LINE_MAX];
	uint64_t now = mfsd_http_now_ms();
	unsigned repeats = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&h->log_lock);
	if (strcmp(line, h->log_last) == 0 &&
	    now - h->log_last_ms < MFSD_HTTP_LOG_REPEAT_MS) {
		h->log_repeats++;
		pthread_mutex_unlock(&h->log_lock);
		return;
	}
	repeats = h->log_repeats;
	h->log_repeats = 0;
	h->log_last_ms = now;
	memcpy(h->log_last, line, sizeof(line));
	pthread_mutex_unlock(&h->log_lock);
	if (repeats)
		mfsd_log(MFSD_LOG_ERR, "http: previous message repeated %u times",
			 repeats);
	mfsd_log(MFSD_LOG_ERR, "http: %s", line);
}

/* ---- options ---------------------------------------------------------- */

/* True when @s has a byte curl would pass on that a URL or a header line
 * must not hold (controls, space, DEL); @space_ok for header values. */
static bool mfsd_http_has_bad_byte(const char *s, bool space_ok)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < ' ' || c == MFSD_ASCII_DEL || (c == ' ' && !space_ok))
			return true;
	}
	return false;
}

/* Checks @url: http:// or https://, a host, a trailing '/', no blanks.
 * 0 or -EINVAL, logged. */
static int mfsd_http_check_base(const char *url)
{
	static const char *const schemes[] = {"http://", "https://"};
	size_t n;

	if (!url) {
		mfsd_log(MFSD_LOG_ERR, "http: no base URL");
		return -EINVAL;
	}
	n = strlen(url);
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		size_t sl = strlen(schemes[i]);

		if (strncasecmp(url, schemes[i], sl) != 0)
			continue;
		if (n <= sl || url[sl] == '/') {
			mfsd_log(MFSD_LOG_ERR, "http: base URL '%s' has no host",
				 url);
			return -EINVAL;
		}
		if (url[n - 1] != '/') {
			mfsd_log(MFSD_LOG_ERR,
				 "http: base URL '%s' must end in '/'", url);
			return -EINVAL;
		}
		if (mfsd_http_has_bad_byte(url, false)) {
			mfsd_log(MFSD_LOG_ERR,
				 "http: base URL '%s' holds a blank or a control character",
				 url);
			return -EINVAL;
		}
		return 0;
	}
	mfsd_log(MFSD_LOG_ERR,
		 "http: base URL '%s' is not http:// or https://", url);
	return -EINVAL;
}

/* Checks the counts and headers of @o.  0 or -EINVAL, logged. */
static int mfsd_http_check_options(const struct mfsd_http_options *o)
{
	if (o->max_connections < 1 ||
	    o->max_connections > MFSD_HTTP_MAX_CONNECTIONS) {
		mfsd_log(MFSD_LOG_ERR,
			 "http: max_connections %u is not in 1..%u",
			 o->max_connections, MFSD_HTTP_MAX_CONNECTIONS);
		return -EINVAL;
	}
	if (o->deadline_ms < MFSD_HTTP_MIN_ATTEMPT_MS) {
		mfsd_log(MFSD_LOG_ERR,
			 "http: deadline_ms %u is shorter than one attempt (%u ms)",
			 o->deadline_ms, MFSD_HTTP_MIN_ATTEMPT_MS);
		return -EINVAL;
	}
	for (size_t i = 0; o->headers && o->headers[i]; i++) {
		const char *colon = strchr(o->headers[i], ':');

		/* A CR or LF would smuggle a second header (or request). */
		if (!colon || colon == o->headers[i] ||
		    mfsd_http_has_bad_byte(o->headers[i], true)) {
			mfsd_log(MFSD_LOG_ERR,
				 "http: header '%s' is not one 'Name: value' line",
				 o->headers[i]);
			return -EINVAL;
		}
	}
	return mfsd_http_check_base(o->base_url);
}

/* Copies the NULL-ended @src into *@dst.  0 or -ENOMEM. */
static int mfsd_http_copy_headers(char ***dst, const char *const *src)
{
	size_t n = 0;

	while (src && src[n])
		n++;
	*dst = calloc(n + 1, sizeof(**dst));
	if (!*dst)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		(*dst)[i] = strdup(src[i]);
		if (!(*dst)[i])
			return -ENOMEM;
	}
	return 0;
}

/* Frees a string that held a secret, wiping it first. */
static void mfsd_http_free_secret(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* Reads the SigV4 keys from the environment into @h.  0, -EINVAL (keys
 * missing, logged) or -ENOMEM. */
static int mfsd_http_load_aws_keys(struct mfsd_http *h)
{
	const char *key = getenv("AWS_ACCESS_KEY_ID");
	const char *secret = getenv("AWS_SECRET_ACCESS_KEY");
	const char *token = getenv("AWS_SESSION_TOKEN");

	if (!key || !*key || !secret || !*secret) {
		mfsd_log(MFSD_LOG_ERR,
			 "http: aws_sigv4 '%s' needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment",
			 h->aws_sigv4);
		return -EINVAL;
	}
	if (asprintf(&h->userpwd, "%s:%s", key, secret) < 0) {
		h->userpwd = NULL;
		return -ENOMEM;
	}
	if (token && *token) {
		if (mfsd_http_has_bad_byte(token, false)) {
			mfsd_log(MFSD_LOG_ERR,
				 "http: AWS_SESSION_TOKEN holds a blank or a control character");
			return -EINVAL;
		}
		if (asprintf(&h->token_header, "x-amz-security-token: %s",
			     token) < 0) {
			h->token_header = NULL;
			return -ENOMEM;
		}
	}
	return 0;
}

/* ---- the shared handle ------------------------------------------------ */

static void mfsd_http_share_lock(CURL *easy, curl_lock_data data,
				 curl_lock_access access, void *user)
{
	struct mfsd_http *h = user;

	(void)easy;
	(void)access;
	pthread_mutex_lock(&h->share_locks[data]);
}

static void mfsd_http_share_unlock(CURL *easy, curl_lock_data data,
				   void *user)
{
	struct mfsd_http *h = user;

	(void)easy;
	pthread_mutex_unlock(&h->share_locks[data]);
}

/* Creates h->share sharing the DNS cache and TLS sessions (connections
 * stay with their slot: see the top of this file).  0 or -ENOMEM. */
static int mfsd_http_share_init(struct mfsd_http *h)
{
	static const curl_lock_data shared[] = {
		CURL_LOCK_DATA_DNS,
		CURL_LOCK_DATA_SSL_SESSION,
	};

	h->share = curl_share_init();
	if (!h->share)
		return -ENOMEM;
	if (curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC,
			      mfsd_http_share_lock) != CURLSHE_OK ||
	    curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC,
			      mfsd_http_share_unlock) != CURLSHE_OK ||
	    curl_share_setopt(h->share, CURLSHOPT_USERDATA, h) != CURLSHE_OK)
		return -ENOMEM;
	for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++)
		if (curl_share_setopt(h->share, CURLSHOPT_SHARE, shared[i]) !=
		    CURLSHE_OK)
			return -ENOMEM;
	return 0;
}

/* ---- open, cancel, close ---------------------------------------------- */

/* Frees what mfsd_http_open allocated; the mutexes are initialised. */
static void mfsd_http_free(struct mfsd_http *h)
{
	if (h->slots) {
		for (unsigned i = 0; i < h->max_connections; i++) {
			struct mfsd_http_slot *s = &h->slots[i];

			/* Easy handles before the multi handles that keep
			 * their connections, and both before the share. */
			if (s->multi && s->easy)
				curl_multi_remove_handle(s->multi, s->easy);
			if (s->easy)
				curl_easy_cleanup(s->easy);
			if (s->multi)
				curl_multi_cleanup(s->multi);
		}
		free(h->slots);
	}
	if (h->share)
		curl_share_cleanup(h->share);
	for (size_t i = 0; h->headers && h->headers[i]; i++)
		free(h->headers[i]);
	free(h->headers);
	mfsd_http_free_secret(h->token_header);
	mfsd_http_free_secret(h->userpwd);
	free(h->aws_sigv4);
	free(h->ca_file);
	free(h->base_url);
	pthread_cond_destroy(&h->wake);
	pthread_mutex_destroy(&h->lock);
	pthread_mutex_destroy(&h->log_lock);
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&h->share_locks[i]);
	free(h);
}

/* Allocates @h with its locks initialised (the condition variable on the
 * monotonic clock).  NULL when out of memory. */
static struct mfsd_http *mfsd_http_alloc(void)
{
	struct mfsd_http *h = calloc(1, sizeof(*h));
	pthread_condattr_t attr;

	if (!h)
		return NULL;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&h->wake, &attr);
	pthread_condattr_destroy(&attr);
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_init(&h->log_lock, NULL);
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&h->share_locks[i], NULL);
	atomic_init(&h->cancelled, false);
	return h;
}

/* Copies @s into *@dst unless NULL.  0 or -ENOMEM. */
static int mfsd_http_dup(char **dst, const char *s)
{
	*dst = NULL;
	if (!s)
		return 0;
	*dst = strdup(s);
	return *dst ? 0 : -ENOMEM;
}

int mfsd_http_open(struct mfsd_http **out, const struct mfsd_http_options *o)
{
	struct mfsd_http *h;
	int rc;

	*out = NULL;
	rc = mfsd_http_check_options(o);
	if (rc)
		return rc;
	pthread_once(&mfsd_http_global_once, mfsd_http_global_init);
	if (mfsd_http_global_rc != CURLE_OK) {
		mfsd_log(MFSD_LOG_ERR, "http: curl_global_init: %s",
			 curl_easy_strerror(mfsd_http_global_rc));
		return -ENOMEM;
	}
	h = mfsd_http_alloc();
	if (!h)
		return -ENOMEM;
	h->max_connections = o->max_connections;
	h->deadline_ms = o->deadline_ms;
	rc = mfsd_http_dup(&h->base_url, o->base_url);
	if (!rc)
		rc = mfsd_http_dup(&h->aws_sigv4, o->aws_sigv4);
	if (!rc)
		rc = mfsd_http_dup(&h->ca_file, o->ca_file);
	if (!rc)
		rc = mfsd_http_copy_headers(&h->headers, o->headers);
	if (!rc && h->aws_sigv4)
		rc = mfsd_http_load_aws_keys(h);
	if (!rc) {
		h->slots = calloc(h->max_connections, sizeof(*h->slots));
		rc = h->slots ? 0 : -ENOMEM;
	}
	if (!rc)
		rc = mfsd_http_share_init(h);
	if (rc) {
		mfsd_http_free(h);
		return rc;
	}
	*out = h;
	return 0;
}

void mfsd_http_cancel(struct mfsd_http *h)
{
	atomic_store(&h->cancelled, true);
	pthread_mutex_lock(&h->lock);
	/* Transfers poll their multi handle: wake each one that exists
	 * (curl_multi_wakeup is thread-safe); waiters sleep on h->wake. */
	for (unsigned i = 0; i < h->max_connections; i++)
		if (h->slots[i].multi)
			curl_multi_wakeup(h->slots[i].multi);
	pthread_cond_broadcast(&h->wake);
	pthread_mutex_unlock(&h->lock);
}

void mfsd_http_close(struct mfsd_http *h)
{
	if (h)
		mfsd_http_free(h);
}

const struct mfsd_http_stats *mfsd_http_stats(const struct mfsd_http *h)
{
	return &h->stats;
}

void mfsd_http_body_free(struct mfsd_http_body *b)
{
	if (!b)
		return;
	free(b->data);
	free(b->etag);
	*b = (struct mfsd_http_body){0};
}

/* ---- the pool ----------------------------------------------------------- */

/* Creates the handles of @s.  Caller holds h->lock (creation is quick and
 * rare: once per slot).  0 or -ENOMEM. */
static int mfsd_http_slot_init(struct mfsd_http_slot *s)
{
	if (!s->easy)
		s->easy = curl_easy_init();
	if (!s->multi)
		s->multi = curl_multi_init();
	return s->easy && s->multi ? 0 : -ENOMEM;
}

/* The last moment at which an attempt of @r may start. */
static uint64_t mfsd_http_last_start(const struct mfsd_http_req *r)
{
	return r->deadline - MFSD_HTTP_MIN_ATTEMPT_MS;
}

/* Waits until @h has a free slot, no attempt can start any more before
 * the deadline, or @h is cancelled.  A slot free at once is taken even
 * at the last moment (the final attempt after a backoff); after a wait,
 * only while an attempt still has time.  0 with *@out taken,
 * -ETIMEDOUT, -ECANCELED or -ENOMEM, with the cause in @r. */
static int mfsd_http_acquire(struct mfsd_http_req *r,
			     struct mfsd_http_slot **out)
{
	struct mfsd_http *h = r->h;
	struct timespec until = mfsd_http_abs_time(mfsd_http_last_start(r));
	bool waited = false;
	int rc = -ETIMEDOUT;

	pthread_mutex_lock(&h->lock);
	for (;;) {
		if (atomic_load(&h->cancelled)) {
			snprintf(r->cause, sizeof(r->cause), "cancelled");
			rc = -ECANCELED;
			break;
		}
		if (waited && mfsd_http_now_ms() >= mfsd_http_last_start(r))
			break;
		for (unsigned i = 0; i < h->max_connections; i++) {
			if (h->slots[i].busy)
				continue;
			rc = mfsd_http_slot_init(&h->slots[i]);
			if (rc == 0) {
				h->slots[i].busy = true;
				*out = &h->slots[i];
			}
			goto out;
		}
		if (mfsd_http_now_ms() >= mfsd_http_last_start(r))
			break;
		pthread_cond_timedwait(&h->wake, &h->lock, &until);
		waited = true;
	}
out:
	pthread_mutex_unlock(&h->lock);
	if (rc == -ETIMEDOUT)
		snprintf(r->cause, sizeof(r->cause),
			 "no free connection (of %u) in time for an attempt",
			 h->max_connections);
	return rc;
}

/* Gives @s back to the pool. */
static void mfsd_http_release(struct mfsd_http *h, struct mfsd_http_slot *s)
{
	pthread_mutex_lock(&h->lock);
	s->busy = false;
	pthread_cond_broadcast(&h->wake);
	pthread_mutex_unlock(&h->lock);
}

/* Sleeps until @until_ms (monotonic) or a cancel. */
static void mfsd_http_sleep(struct mfsd_http *h, uint64_t until_ms)
{
	struct timespec until = mfsd_http_abs_time(until_ms);

	pthread_mutex_lock(&h->lock);
	while (!atomic_load(&h->cancelled) && mfsd_http_now_ms() < until_ms)
		pthread_cond_timedwait(&h->wake, &h->lock, &until);
	pthread_mutex_unlock(&h->lock);
}

/* The backoff before retry @attempt (1, 2, ...): the doubled base, capped,
 * with jitter in [half, whole]. */
static unsigned mfsd_http_backoff_ms(unsigned attempt)
{
	static _Thread_local unsigned seed;
	unsigned base = MFSD_HTTP_BACKOFF_FIRST_MS;

	if (!seed)
		seed = (unsigned)mfsd_http_now_ms() ^ (unsigned)(uintptr_t)&seed;
	for (unsigned i = 1; i < attempt && base < MFSD_HTTP_BACKOFF_CAP_MS; i++)
		base *= 2;
	if (base > MFSD_HTTP_BACKOFF_CAP_MS)
		base = MFSD_HTTP_BACKOFF_CAP_MS;
	return base / 2 + (unsigned)rand_r(&seed) % (base / 2 + 1);
}

/* ---- callbacks ---------------------------------------------------------- */

static long mfsd_http_status(CURL *easy)
{
	long status = 0;

	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

/* Parses "bytes FIRST-LAST/TOTAL" (TOTAL may be '*') into @r. */
static void mfsd_http_parse_crange(struct mfsd_http_req *r, const char *v)
{
	unsigned long long first, last, total;
	char star;

	if (sscanf(v, " bytes %llu-%llu/%llu", &first, &last, &total) == 3) {
		r->cr_total = total;
	} else if (sscanf(v, " bytes %llu-%llu/%c", &first, &last, &star) ==
			   3 && star == '*') {
		r->cr_total = UINT64_MAX;
	} else {
		return;
	}
	r->have_crange = true;
	r->cr_first = first;
	r->cr_last = last;
}

/* Copies the value of header line @line (@n bytes, "Name: value\r\n")
 * into a new string, blanks trimmed.  NULL when out of memory. */
static char *mfsd_http_header_value(const char *line, size_t n)
{
	const char *v = memchr(line, ':', n), *end = line + n;

	v++;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' ||
			   end[-1] == ' ' || end[-1] == '\t'))
		end--;
	return strndup(v, (size_t)(end - v));
}

/* True when @line (@n bytes) is header @name. */
static bool mfsd_http_is_header(const char *line, size_t n, const char *name)
{
	size_t nl = strlen(name);

	return n > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0;
}

/* Header callback: starts a new answer at each status line (a 100
 * Continue comes before the real one) and keeps Content-Range, ETag and,
 * for objects, refuses a Content-Length over max_bytes at once. */
static size_t mfsd_http_on_header(char *line, size_t size, size_t nmemb,
				  void *user)
{
	struct mfsd_http_req *r = user;
	size_t n = size * nmemb;
	char *v;

	if (n >= strlen(MFSD_HTTP_STATUS_PREFIX) &&
	    strncmp(line, MFSD_HTTP_STATUS_PREFIX,
		    strlen(MFSD_HTTP_STATUS_PREFIX)) == 0) {
		r->have_crange = false;
		free(r->etag);
		r->etag = NULL;
		return n;
	}
	if (!memchr(line, ':', n))
		return n;
	if (mfsd_http_is_header(line, n, "ETag")) {
		v = mfsd_http_header_value(line, n);
		if (!v) {
			r->no_memory = true;
			return 0;
		}
		free(r->etag);
		r->etag = v;
	} else if (mfsd_http_is_header(line, n, "Content-Range")) {
		v = mfsd_http_header_value(line, n);
		if (!v) {
			r->no_memory = true;
			return 0;
		}
		mfsd_http_parse_crange(r, v);
		free(v);
	} else if (r->kind == MFSD_HTTP_OBJECT &&
		   mfsd_http_is_header(line, n, "Content-Length") &&
		   mfsd_http_status(r->easy) == MFSD_HTTP_OK) {
		unsigned long long cl = 0;

		v = mfsd_http_header_value(line, n);
		if (!v) {
			r->no_memory = true;
			return 0;
		}
		if (sscanf(v, "%llu", &cl) == 1 && cl > r->max_bytes)
			r->too_big = true;
		free(v);
		if (r->too_big)
			return 0;
	}
	return n;
}

/* Takes body bytes of a 206 or 200 to a range: straight into the
 * caller's buffer, never past it. */
static size_t mfsd_http_take_range(struct mfsd_http_req *r, long status,
				   const char *data, size_t n)
{
	size_t room = r->len - r->got;

	if (status == MFSD_HTTP_OK && r->off != 0) {
		r->ignored_range = true;
		return 0;
	}
	if (n > room) {
		if (status == MFSD_HTTP_PARTIAL) {
			r->overflow = true;
			return 0;
		}
		/* A whole object for a range at 0: keep the head, stop the
		 * rest (the transfer ends with a write error we expect). */
		memcpy(r->buf + r->got, data, room);
		r->got += room;
		r->full = true;
		return 0;
	}
	memcpy(r->buf + r->got, data, n);
	r->got += n;
	return n;
}

/* Takes body bytes of a whole object, growing the body up to max_bytes
 * (plus the NUL). */
static size_t mfsd_http_take_object(struct mfsd_http_req *r, const char *data,
				    size_t n)
{
	/* got <= max_bytes < SIZE_MAX, so got + n + 1 cannot wrap. */
	if (n > r->max_bytes - r->got) {
		r->too_big = true;
		return 0;
	}
	if (r->got + n + 1 > r->cap) {
		size_t limit = r->max_bytes + 1; /* and the NUL */
		size_t cap = r->cap ? r->cap : MFSD_HTTP_BODY_FIRST;
		char *p;

		while (cap < r->got + n + 1)
			cap = cap > limit / 2 ? limit : cap * 2;
		if (cap > limit)
			cap = limit;
		p = realloc(r->body, cap);
		if (!p) {
			r->no_memory = true;
			return 0;
		}
		r->body = p;
		r->cap = cap;
	}
	memcpy(r->body + r->got, data, n);
	r->got += n;
	return n;
}

/* Write callback: the body of a success goes to the caller; that of
 * anything else (an error page) is dropped, up to a bound. */
static size_t mfsd_http_on_body(char *data, size_t size, size_t nmemb,
				void *user)
{
	struct mfsd_http_req *r = user;
	size_t n = size * nmemb;
	long status = mfsd_http_status(r->easy);

	atomic_fetch_add(&r->h->stats.bytes_fetched, n);
	if (status == MFSD_HTTP_PARTIAL && r->kind == MFSD_HTTP_RANGE)
		return mfsd_http_take_range(r, status, data, n);
	if (status == MFSD_HTTP_OK && r->kind == MFSD_HTTP_RANGE)
		return mfsd_http_take_range(r, status, data, n);
	if (status == MFSD_HTTP_OK && r->kind == MFSD_HTTP_OBJECT)
		return mfsd_http_take_object(r, data, n);
	r->discarded += n;
	if (r->discarded <= MFSD_HTTP_DISCARD_MAX)
		return n;
	r->dropped_rest = true;
	return 0;
}

/* Progress callback: stops the transfer when the fetcher is cancelled. */
static int mfsd_http_on_progress(void *user, curl_off_t dltotal,
				 curl_off_t dlnow, curl_off_t ultotal,
				 curl_off_t ulnow)
{
	struct mfsd_http_req *r = user;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return atomic_load(&r->h->cancelled) ? 1 : 0;
}

/* ---- one attempt -------------------------------------------------------- */

/* The request's header list: the caller's, the session token, and
 * @extra (Range or If-None-Match) when not NULL.  NULL when out of
 * memory, *@empty when there is nothing to send. */
static struct curl_slist *mfsd_http_header_list(struct mfsd_http *h,
						const char *extra, bool *empty)
{
	struct curl_slist *list = NULL, *next;
	const char *add[] = {h->token_header, extra};

	*empty = true;
	for (size_t i = 0; h->headers[i]; i++) {
		next = curl_slist_append(list, h->headers[i]);
		if (!next)
			goto fail;
		list = next;
	}
	for (size_t i = 0; i < sizeof(add) / sizeof(add[0]); i++) {
		if (!add[i])
			continue;
		next = curl_slist_append(list, add[i]);
		if (!next)
			goto fail;
		list = next;
	}
	*empty = list == NULL;
	return list;
fail:
	curl_slist_free_all(list);
	return NULL;
}

/* Sets every option of @easy for @r's next attempt (after a reset, which
 * keeps the connections and caches).  @remaining bounds the transfer.
 * 0 or -ENOMEM. */
static int mfsd_http_setup(struct mfsd_http_req *r, CURL *easy,
			   struct curl_slist *headers, uint64_t remaining)
{
	struct mfsd_http *h = r->h;
	uint64_t connect = remaining < MFSD_HTTP_CONNECT_MAX_MS ?
		remaining : MFSD_HTTP_CONNECT_MAX_MS;
	CURLcode c = CURLE_OK;

	curl_easy_reset(easy);
#define MFSD_SET(opt, val) \
	do { if (c == CURLE_OK) c = curl_easy_setopt(easy, opt, val); } while (0)
	MFSD_SET(CURLOPT_URL, r->url);
	MFSD_SET(CURLOPT_SHARE, h->share);
	MFSD_SET(CURLOPT_NOSIGNAL, 1L);
	MFSD_SET(CURLOPT_PROTOCOLS_STR, "http,https");
	MFSD_SET(CURLOPT_FOLLOWLOCATION, 0L);
	MFSD_SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	MFSD_SET(CURLOPT_TIMEOUT_MS, (long)remaining);
	MFSD_SET(CURLOPT_CONNECTTIMEOUT_MS, (long)connect);
	MFSD_SET(CURLOPT_LOW_SPEED_LIMIT, MFSD_HTTP_STALL_BYTES_PER_S);
	MFSD_SET(CURLOPT_LOW_SPEED_TIME, MFSD_HTTP_STALL_S);
	MFSD_SET(CURLOPT_HEADERFUNCTION, mfsd_http_on_header);
	MFSD_SET(CURLOPT_HEADERDATA, r);
	MFSD_SET(CURLOPT_WRITEFUNCTION, mfsd_http_on_body);
	MFSD_SET(CURLOPT_WRITEDATA, r);
	MFSD_SET(CURLOPT_NOPROGRESS, 0L);
	MFSD_SET(CURLOPT_XFERINFOFUNCTION, mfsd_http_on_progress);
	MFSD_SET(CURLOPT_XFERINFODATA, r);
	if (headers)
		MFSD_SET(CURLOPT_HTTPHEADER, headers);
	if (r->kind == MFSD_HTTP_HEAD)
		MFSD_SET(CURLOPT_NOBODY, 1L);
	if (h->aws_sigv4) {
		MFSD_SET(CURLOPT_AWS_SIGV4, h->aws_sigv4);
		MFSD_SET(CURLOPT_USERPWD, h->userpwd);
	}
	if (h->ca_file)
		MFSD_SET(CURLOPT_CAINFO, h->ca_file);
#undef MFSD_SET
	if (c != CURLE_OK) {
		snprintf(r->cause, sizeof(r->cause), "curl_easy_setopt: %s",
			 curl_easy_strerror(c));
		return c == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EIO;
	}
	return 0;
}

/* Runs the transfer of @s to its end or to a cancel, through its multi
 * handle.  The transfer's CURLcode. */
static CURLcode mfsd_http_perform(struct mfsd_http *h, struct mfsd_http_slot *s)
{
	CURLcode result = CURLE_ABORTED_BY_CALLBACK;
	CURLMcode mc;
	CURLMsg *msg;
	int running = 1, left;

	if (curl_multi_add_handle(s->multi, s->easy) != CURLM_OK)
		return CURLE_OUT_OF_MEMORY;
	while (running) {
		mc = curl_multi_perform(s->multi, &running);
		if (mc != CURLM_OK) {
			result = CURLE_RECV_ERROR;
			break;
		}
		if (!running)
			break;
		if (atomic_load(&h->cancelled))
			break;
		mc = curl_multi_poll(s->multi, NULL, 0, MFSD_HTTP_POLL_MS, NULL);
		if (mc != CURLM_OK) {
			result = CURLE_RECV_ERROR;
			break;
		}
	}
	while ((msg = curl_multi_info_read(s->multi, &left)))
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == s->easy)
			result = msg->data.result;
	curl_multi_remove_handle(s->multi, s->easy);
	return result;
}

/* True for the HTTP statuses worth another attempt. */
static bool mfsd_http_status_transient(long status)
{
	return status == MFSD_HTTP_REQUEST_TIMEOUT ||
	       status == MFSD_HTTP_TOO_MANY_REQUESTS ||
	       (status >= MFSD_HTTP_SERVER_ERROR_MIN &&
		status < MFSD_HTTP_SERVER_ERROR_END);
}

/* The errno of a final HTTP status that is not a success. */
static int mfsd_http_status_errno(long status)
{
	switch (status) {
	case MFSD_HTTP_NOT_FOUND:
	case MFSD_HTTP_GONE:
		return -ENOENT;
	case MFSD_HTTP_UNAUTHORIZED:
	case MFSD_HTTP_FORBIDDEN:
		return -EACCES;
	case MFSD_HTTP_RANGE_NOT_SATISFIABLE:
		return -ERANGE;
	default:
		return -EIO;
	}
}

/* The verdict of a transfer that ended in curl error @c, when no
 * callback of ours stopped it.  *@again for the transient ones. */
static int mfsd_http_curl_errno(struct mfsd_http_req *r, CURLcode c,
				bool *again)
{
	snprintf(r->cause, sizeof(r->cause), "%s", curl_easy_strerror(c));
	switch (c) {
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_HTTP3:
		*again = true;
		return -ETIMEDOUT;
	default:
		return -EIO;
	}
}

/* Checks a 206 (or a 200 at offset 0) against the range asked.  0, or an
 * error with *@again for a short body. */
static int mfsd_http_check_range(struct mfsd_http_req *r, long status,
				 bool *again)
{
	uint64_t last = r->off + r->len - 1;

	if (r->have_crange && r->cr_total != UINT64_MAX &&
	    r->off + r->len > r->cr_total) {
		snprintf(r->cause, sizeof(r->cause),
			 "the object has %" PRIu64 " bytes", r->cr_total);
		return -ERANGE;
	}
	if (status == MFSD_HTTP_PARTIAL && r->have_crange &&
	    (r->cr_first != r->off || r->cr_last != last)) {
		snprintf(r->cause, sizeof(r->cause),
			 "answer is Content-Range %" PRIu64 "-%" PRIu64,
			 r->cr_first, r->cr_last);
		return -EIO;
	}
	if (r->got == r->len)
		return 0;
	if (status == MFSD_HTTP_OK) {
		/* The whole object came, and it is shorter. */
		snprintf(r->cause, sizeof(r->cause),
			 "the object has %zu bytes", r->got);
		return -ERANGE;
	}
	snprintf(r->cause, sizeof(r->cause), "short body: %zu of %zu bytes",
		 r->got, r->len);
	*again = true;
	return -ETIMEDOUT;
}

/* The verdict of a finished range attempt.  *@again when worth
 * retrying. */
static int mfsd_http_range_verdict(struct mfsd_http_req *r, long status,
				   bool *again)
{
	if (r->ignored_range) {
		snprintf(r->cause, sizeof(r->cause),
			 "server ignored the Range header (HTTP 200)");
		return -EIO;
	}
	if (r->overflow) {
		snprintf(r->cause, sizeof(r->cause),
			 "body longer than the range");
		return -EIO;
	}
	if (status == MFSD_HTTP_PARTIAL || status == MFSD_HTTP_OK)
		return mfsd_http_check_range(r, status, again);
	return 1; /* not decided here */
}

/* The verdict of the finished attempt: 0 (or 1 for a 304), or an error
 * with *@again when worth retrying; the cause in @r. */
static int mfsd_http_verdict(struct mfsd_http_req *r, CURLcode c,
			     bool *again)
{
	long status = mfsd_http_status(r->easy);
	int rc;

	if (atomic_load(&r->h->cancelled)) {
		snprintf(r->cause, sizeof(r->cause), "cancelled");
		return -ECANCELED;
	}
	if (r->no_memory) {
		snprintf(r->cause, sizeof(r->cause), "out of memory");
		return -ENOMEM;
	}
	if (r->too_big) {
		snprintf(r->cause, sizeof(r->cause),
			 "object larger than %zu bytes", r->max_bytes);
		return -EFBIG;
	}
	/* A write error we caused on purpose is judged by what came. */
	if (c != CURLE_OK &&
	    !(c == CURLE_WRITE_ERROR && (r->full || r->ignored_range ||
					 r->overflow || r->dropped_rest)))
		return mfsd_http_curl_errno(r, c, again);
	if (r->kind == MFSD_HTTP_RANGE) {
		rc = mfsd_http_range_verdict(r, status, again);
		if (rc <= 0)
			return rc;
	}
	if (status == MFSD_HTTP_OK && r->kind != MFSD_HTTP_RANGE)
		return 0;
	if (status == MFSD_HTTP_NOT_MODIFIED && r->etag_sent)
		return 1;
	snprintf(r->cause, sizeof(r->cause), "HTTP %ld", status);
	if (status >= MFSD_HTTP_REDIRECT_MIN &&
	    status < MFSD_HTTP_REDIRECT_END)
		snprintf(r->cause, sizeof(r->cause),
			 "HTTP %ld (redirects are not followed)", status);
	if (mfsd_http_status_transient(status)) {
		*again = true;
		return -ETIMEDOUT;
	}
	return mfsd_http_status_errno(status);
}

/* Clears what an attempt received, so the next starts afresh. */
static void mfsd_http_req_reset(struct mfsd_http_req *r)
{
	r->got = 0;
	r->discarded = 0;
	r->overflow = r->full = r->too_big = false;
	r->no_memory = r->ignored_range = r->have_crange = false;
	r->dropped_rest = false;
	r->content_length = -1;
	free(r->etag);
	r->etag = NULL;
	r->cause[0] = '\0';
}

/* The Range header of @r's request, written into @line (@size bytes), or
 * NULL for a request without one. */
static const char *mfsd_http_req_header(const struct mfsd_http_req *r,
					char *line, size_t size)
{
	if (r->kind == MFSD_HTTP_RANGE) {
		snprintf(line, size, "Range: bytes=%" PRIu64 "-%" PRIu64,
			 r->off, r->off + r->len - 1);
		return line;
	}
	return NULL;
}

/* One attempt on a slot of the pool.  As mfsd_http_verdict; *@again when
 * another attempt may succeed. */
static int mfsd_http_attempt(struct mfsd_http_req *r, bool *again)
{
	struct mfsd_http *h = r->h;
	char range[MFSD_HTTP_RANGE_LINE_MAX];
	const char *extra = mfsd_http_req_header(r, range, sizeof(range));
	char *inm = NULL;
	struct mfsd_http_slot *s = NULL;
	struct curl_slist *headers = NULL;
	uint64_t now;
	bool empty;
	int rc;

	*again = false;
	mfsd_http_req_reset(r);
	if (r->etag_sent) {
		if (asprintf(&inm, "If-None-Match: %s", r->etag_sent) < 0)
			return -ENOMEM;
		extra = inm;
	}
	headers = mfsd_http_header_list(h, extra, &empty);
	rc = -ENOMEM;
	if (!headers && !empty)
		goto out_inm;
	rc = mfsd_http_acquire(r, &s);
	if (rc)
		goto out_headers;
	now = mfsd_http_now_ms();
	if (now >= r->deadline) {
		/* Late from the scheduler: a zero timeout would mean none. */
		snprintf(r->cause, sizeof(r->cause),
			 "deadline passed before the attempt");
		rc = -ETIMEDOUT;
		goto out_release;
	}
	r->easy = s->easy;
	rc = mfsd_http_setup(r, s->easy, headers, r->deadline - now);
	if (rc)
		goto out_release;
	atomic_fetch_add(&h->stats.requests, 1);
	rc = mfsd_http_verdict(r, mfsd_http_perform(h, s), again);
	curl_easy_getinfo(s->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
			  &r->content_length);
out_release:
	mfsd_http_release(h, s);
out_headers:
	curl_slist_free_all(headers);
out_inm:
	free(inm);
	return rc;
}

/* Runs attempts of @r until one decides or the deadline passes, then
 * counts and logs a failure.  What the last attempt returned. */
static int mfsd_http_run(struct mfsd_http_req *r, const char *what)
{
	struct mfsd_http *h = r->h;
	unsigned attempt = 0;
	uint64_t now, wake;
	bool again;
	int rc;

	r->deadline = mfsd_http_now_ms() + h->deadline_ms;
	for (;;) {
		rc = mfsd_http_attempt(r, &again);
		if (!again)
			break;
		/* The last backoff is cut short: one more attempt at the
		 * last moment beats giving up early. */
		now = mfsd_http_now_ms();
		if (now >= mfsd_http_last_start(r))
			break; /* rc is -ETIMEDOUT */
		wake = now + mfsd_http_backoff_ms(++attempt);
		if (wake > mfsd_http_last_start(r))
			wake = mfsd_http_last_start(r);
		mfsd_http_sleep(h, wake);
		if (atomic_load(&h->cancelled)) {
			snprintf(r->cause, sizeof(r->cause), "cancelled");
			rc = -ECANCELED;
			break;
		}
		atomic_fetch_add(&h->stats.retries, 1);
	}
	if (rc < 0) {
		atomic_fetch_add(&h->stats.errors, 1);
		mfsd_http_log(h, "%s %s: %s%s (%s)", what, r->url,
			      r->cause[0] ? r->cause : strerror(-rc),
			      again ? ", until the deadline" : "",
			      strerrorname_np(-rc));
	}
	return rc;
}

/* Sets up @r for object @name of @h: the full URL.  0, -EINVAL (a name
 * that is empty or holds a blank or control byte) or -ENOMEM. */
static int mfsd_http_req_init(struct mfsd_http_req *r, struct mfsd_http *h,
			      enum mfsd_http_kind kind, const char *name)
{
	*r = (struct mfsd_http_req){.h = h, .kind = kind};
	if (!name || !*name || mfsd_http_has_bad_byte(name, false)) {
		atomic_fetch_add(&h->stats.errors, 1);
		mfsd_http_log(h, "object name '%s' is empty or not URL-safe",
			      name ? name : "(null)");
		return -EINVAL;
	}
	if (asprintf(&r->url, "%s%s", h->base_url, name) < 0) {
		r->url = NULL;
		atomic_fetch_add(&h->stats.errors, 1);
		mfsd_http_log(h, "%s%s: out of memory (ENOMEM)", h->base_url,
			      name);
		return -ENOMEM;
	}
	return 0;
}

static void mfsd_http_req_free(struct mfsd_http_req *r)
{
	free(r->url);
	free(r->body);
	free(r->etag);
}

int mfsd_http_get_range(struct mfsd_http *h, const char *name, uint64_t off,
			size_t len, void *buf)
{
	char what[MFSD_HTTP_CAUSE_MAX];
	struct mfsd_http_req r;
	int rc;

	if (len == 0)
		return 0;
	rc = mfsd_http_req_init(&r, h, MFSD_HTTP_RANGE, name);
	if (rc)
		return rc;
	r.off = off;
	r.len = len;
	r.buf = buf;
	if (off > UINT64_MAX - len) {
		atomic_fetch_add(&h->stats.errors, 1);
		mfsd_http_log(h, "GET %s: range of %zu bytes at %" PRIu64
			      " is past 2^64 (ERANGE)", r.url, len, off);
		rc = -ERANGE;
		goto out;
	}
	snprintf(what, sizeof(what), "GET bytes=%" PRIu64 "-%" PRIu64, off,
		 off + len - 1);
	rc = mfsd_http_run(&r, what);
out:
	mfsd_http_req_free(&r);
	return rc;
}

int mfsd_http_get_object(struct mfsd_http *h, const char *name,
			 const char *etag, size_t max_bytes,
			 struct mfsd_http_body *out)
{
	struct mfsd_http_req r;
	int rc;

	rc = mfsd_http_req_init(&r, h, MFSD_HTTP_OBJECT, name);
	if (rc)
		return rc;
	if (etag && (!*etag || mfsd_http_has_bad_byte(etag, true))) {
		/* A CR or LF would smuggle a header into the request. */
		atomic_fetch_add(&h->stats.errors, 1);
		mfsd_http_log(h, "GET %s: ETag to send is empty or holds a control character (EINVAL)",
			      r.url);
		rc = -EINVAL;
		goto out;
	}
	r.etag_sent = etag;
	/* Room for the NUL: no body of SIZE_MAX bytes fits anyway. */
	r.max_bytes = max_bytes < SIZE_MAX ? max_bytes : SIZE_MAX - 1;
	rc = mfsd_http_run(&r, "GET");
	if (rc == 0) {
		if (!r.body) {
			/* An empty object: still a NUL-terminated body. */
			r.body = malloc(1);
			if (!r.body) {
				atomic_fetch_add(&h->stats.errors, 1);
				mfsd_http_log(h, "GET %s: out of memory (ENOMEM)",
					      r.url);
				rc = -ENOMEM;
				goto out;
			}
		}
		r.body[r.got] = '\0';
		*out = (struct mfsd_http_body){
			.data = r.body, .len = r.got, .etag = r.etag,
		};
		r.body = NULL;
		r.etag = NULL;
	}
out:
	mfsd_http_req_free(&r);
	return rc;
}

int mfsd_http_size(struct mfsd_http *h, const char *name, uint64_t *size)
{
	struct mfsd_http_req r;
	curl_off_t cl = -1;
	int rc;

	rc = mfsd_http_req_init(&r, h, MFSD_HTTP_HEAD, name);
	if (rc)
		return rc;
	rc = mfsd_http_run(&r, "HEAD");
	if (rc == 0) {
		/* Kept by the attempt: the handle is back in the pool. */
		cl = r.content_length;
		if (cl < 0) {
			atomic_fetch_add(&h->stats.errors, 1);
			mfsd_http_log(h, "HEAD %s: no Content-Length (EIO)",
				      r.url);
			rc = -EIO;
		} else {
			*size = (uint64_t)cl;
		}
	}
	mfsd_http_req_free(&r);
	return rc;
}
