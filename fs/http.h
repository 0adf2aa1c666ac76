/*
 * http.h - byte ranges and whole objects of a remote store, over HTTP(S)
 * (libcurl): a bounded pool of kept-alive connections used by every
 * thread, retries with backoff until a deadline, conditional GETs.
 *
 * A call either delivers exactly what was asked or fails: a short body,
 * a reset, a timeout, a 5xx, 408 or 429 is retried (backoff from 50 ms,
 * doubled up to 1 s, with jitter) while the deadline allows, and then
 * reported as -ETIMEDOUT; a caller never sees part of a range.  Every
 * failure returned counts in stats.errors and logs one line naming the
 * URL, the range and the cause (identical lines within 10 s are counted,
 * not repeated).
 *
 * HTTP/1.1 only, so max_connections bounds the connections to the
 * origin.  Redirects are not followed (3xx is -EIO): a redirect would
 * leave the store's prefix and carry its credentials along.  A transfer
 * slower than 1 KiB/s over 5 s is given up on and the request retried.
 * HTTPS checks the server against the system's CAs, or ca_file's.
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
 * Checks @o (scheme, host, trailing '/', no blank or control byte in the
 * URL or a header, counts; with aws_sigv4, the keys in the environment)
 * and sets up the pool; no connection is made yet.  The options' strings
 * are copied.  0, -EINVAL (with a log line naming what is wrong) or
 * -ENOMEM.  *@out is freed by mfsd_http_close.
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
 * Thread-safe; waits for a free connection (within the deadline).  A
 * server that ignores Range is accepted only for @off 0 (the first @len
 * bytes of its 200 are kept, the rest not downloaded).  @len 0 is 0
 * without a request.
 * 0, or: -ENOENT (404, 410), -EACCES (401, 403), -ERANGE (416, or a
 * range that crosses the object's end), -ETIMEDOUT (transient failures
 * until the deadline), -ECANCELED, -EINVAL (@name empty or holding a
 * blank or control byte), -ENOMEM, -EIO (anything else: another status,
 * an answer for other bytes than asked, a TLS failure).  @buf is
 * undefined after a failure.
 */
int mfsd_http_get_range(struct mfsd_http *h, const char *name, uint64_t off,
			size_t len, void *buf);

/*
 * Fetches object @name whole, refusing one larger than @max_bytes
 * (-EFBIG, as soon as Content-Length or the bytes received exceed it).
 * With @etag non-NULL, sends If-None-Match: @etag and returns 1, leaving
 * @out untouched, when the server answers 304.  Otherwise 0 with @out
 * filled (data NUL-terminated, even when empty; free with
 * mfsd_http_body_free), or an error as for mfsd_http_get_range (-EINVAL
 * also for an @etag that is empty or holds a control character).
 */
int mfsd_http_get_object(struct mfsd_http *h, const char *name,
			 const char *etag, size_t max_bytes,
			 struct mfsd_http_body *out);

void mfsd_http_body_free(struct mfsd_http_body *b);

/* The size of object @name (HEAD).  0 or an error as above (-EIO when
 * the answer has no Content-Length). */
int mfsd_http_size(struct mfsd_http *h, const char *name, uint64_t *size);

/* @h's counters. */
const struct mfsd_http_stats *mfsd_http_stats(const struct mfsd_http *h);

#endif /* MFSD_HTTP_H */
