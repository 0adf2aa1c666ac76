/*
 * http.h - byte ranges and whole objects of a remote store, over HTTP(S)
 * (libcurl): a bounded pool of kept-alive connections shared by every
 * thread, retries with backoff until a deadline, conditional GETs.
 *
 * A call either delivers exactly what was asked or fails: a short body,
 * a reset or a timeout is retried while the deadline allows, and then
 * reported; a caller never sees part of a range.
 */
#ifndef MFSD_HTTP_H
#define MFSD_HTTP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct mfsd_http;

struct mfsd_http_options {
	const char *base_url;        /* http:// or https://, ending in '/' */
	unsigned max_connections;    /* transfers at once, kept alive; >= 1 */
	unsigned deadline_ms;        /* per call, retries included; >= 50
					(no attempt starts with less left) */
	const char *const *headers;  /* "Name: value" each, NULL-ended; or
					NULL */
	const char *aws_sigv4;       /* CURLOPT_AWS_SIGV4 provider string
					("aws:amz:REGION:s3"), or NULL; keys
					from AWS_ACCESS_KEY_ID,
					AWS_SECRET_ACCESS_KEY and
					AWS_SESSION_TOKEN */
	const char *ca_file;         /* NULL: the system's CAs */
};

/* Counters for .status; updated without locks. */
struct mfsd_http_stats {
	_Atomic uint64_t requests;      /* transfers started */
	_Atomic uint64_t bytes_fetched; /* body bytes received */
	_Atomic uint64_t retries;       /* transfers started again */
	_Atomic uint64_t errors;        /* calls that failed */
};

/* A whole object fetched by mfsd_http_get_object. */
struct mfsd_http_body {
	char *data;    /* len bytes plus a NUL */
	size_t len;
	char *etag;    /* the ETag sent, or NULL */
};

/*
 * Checks @o (scheme, trailing '/', counts) and sets up the pool; no
 * connection is made yet.  0, -EINVAL (with a log line naming what is
 * wrong) or -ENOMEM.  *@out is freed by mfsd_http_close.
 */
int mfsd_http_open(struct mfsd_http **out, const struct mfsd_http_options *o);

/* Makes every call in progress or to come fail at once with -ECANCELED
 * (for unmount: nobody waits out a deadline). */
void mfsd_http_cancel(struct mfsd_http *h);

/* Frees @h; no call may be in progress. */
void mfsd_http_close(struct mfsd_http *h);

/*
 * Reads exactly @len bytes at @off of object @name (a path relative to
 * the base URL, already URL-safe) into @buf with a Range request.
 * Thread-safe; waits for a free connection (within the deadline).
 * 0, or: -ENOENT (404, 410), -EACCES (401, 403), -ERANGE (416: the range
 * is past the object's end), -ETIMEDOUT (transient failures until the
 * deadline), -ECANCELED, -ENOMEM, -EIO (anything else).  @buf is
 * undefined after a failure.
 */
int mfsd_http_get_range(struct mfsd_http *h, const char *name, uint64_t off,
			size_t len, void *buf);

/*
 * Fetches object @name whole, refusing one larger than @max_bytes
 * (-EFBIG).  With @etag non-NULL, sends If-None-Match: @etag and returns
 * 1, leaving @out untouched, when the server answers 304.  Otherwise
 * 0 with @out filled (free with mfsd_http_body_free), or an error as for
 * mfsd_http_get_range.
 */
int mfsd_http_get_object(struct mfsd_http *h, const char *name,
			 const char *etag, size_t max_bytes,
			 struct mfsd_http_body *out);

void mfsd_http_body_free(struct mfsd_http_body *b);

/* The size of object @name (HEAD).  0 or an error as above. */
int mfsd_http_size(struct mfsd_http *h, const char *name, uint64_t *size);

/* @h's counters. */
const struct mfsd_http_stats *mfsd_http_stats(const struct mfsd_http *h);

#endif /* MFSD_HTTP_H */
