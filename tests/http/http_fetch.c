/*
 * http_fetch.c - drives fs/http.c for the 'http' suite: one command per
 * run against a real server.
 *
 *   http_fetch [-c CONNS] [-d DEADLINE_MS] [-H 'Name: value']...
 *              [-s SIGV4_PROVIDER] [-C CA_FILE] BASE_URL COMMAND ARGS...
 *
 *   open                          mfsd_http_open only
 *   range NAME OFF LEN            the bytes on stdout
 *   object NAME MAX_BYTES [ETAG]  the body on stdout
 *   size NAME
 *   stress NAME FILE THREADS COUNT MAX_LEN SEED
 *                                 THREADS threads fetch COUNT random ranges
 *                                 each and compare them with FILE
 *   cancel NAME OFF LEN AFTER_MS THREADS
 *                                 THREADS range fetches at once, the
 *                                 fetcher cancelled after AFTER_MS
 *
 * Built a second time as http_fetch_oom, with allocation failures
 * injected (tests/support/fail_alloc.h): HF_FAIL_ALLOC=N makes the N-th
 * allocation from mfsd_http_open on fail, and result.alloc_hit says
 * whether it was reached.
 *
 * Results go to stderr as "result.KEY=VALUE" lines (rc as an errno name,
 * elapsed_ms, the counters, and what the command measured); the
 * fetcher's own log lines go there too.  Exit 0 when the command ran
 * (whatever rc), 2 for a usage error, 1 when the driver itself failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#ifdef HF_FAIL_ALLOC
#include "fail_alloc.h"
#endif

#define HF_MAX_HEADERS 16
#define HF_MAX_THREADS 256
#define HF_DEFAULT_CONNS 4
#define HF_DEFAULT_DEADLINE_MS 10000
#define HF_MS_PER_S 1000.0
#define HF_NS_PER_MS 1e6

static double hf_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * HF_MS_PER_S + ts.tv_nsec / HF_NS_PER_MS;
}

static const char *hf_rc_name(int rc)
{
	if (rc > 0)
		return "NOT_MODIFIED";
	if (rc == 0)
		return "OK";
	return strerrorname_np(-rc);
}

static void hf_print_stats(struct mfsd_http *h)
{
	const struct mfsd_http_stats *s = mfsd_http_stats(h);

	fprintf(stderr, "result.requests=%" PRIu64 "\n", atomic_load(&s->requests));
	fprintf(stderr, "result.retries=%" PRIu64 "\n", atomic_load(&s->retries));
	fprintf(stderr, "result.errors=%" PRIu64 "\n", atomic_load(&s->errors));
	fprintf(stderr, "result.bytes_fetched=%" PRIu64 "\n",
		atomic_load(&s->bytes_fetched));
}

static int hf_write_all(const void *p, size_t n)
{
	return fwrite(p, 1, n, stdout) == n && fflush(stdout) == 0 ? 0 : -EIO;
}

static unsigned long long hf_num(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || end == s) {
		fprintf(stderr, "http_fetch: '%s' is not a number\n", s);
		exit(2);
	}
	return v;
}

static int hf_range(struct mfsd_http *h, char **argv)
{
	size_t len = hf_num(argv[2]);
	char *buf = malloc(len ? len : 1);
	int rc;

	if (!buf)
		return -ENOMEM;
	rc = mfsd_http_get_range(h, argv[0], hf_num(argv[1]), len, buf);
	if (rc == 0 && hf_write_all(buf, len))
		rc = -EIO;
	free(buf);
	return rc;
}

static int hf_object(struct mfsd_http *h, char **argv, int argc)
{
	struct mfsd_http_body b = {0};
	int rc;

	rc = mfsd_http_get_object(h, argv[0], argc > 2 ? argv[2] : NULL,
				  hf_num(argv[1]), &b);
	if (rc == 0) {
		/* The contract: NUL-terminated. */
		if (b.data[b.len] != '\0')
			fprintf(stderr, "result.unterminated=1\n");
		fprintf(stderr, "result.etag=%s\n", b.etag ? b.etag : "");
		fprintf(stderr, "result.len=%zu\n", b.len);
		if (hf_write_all(b.data, b.len))
			rc = -EIO;
	}
	mfsd_http_body_free(&b);
	return rc;
}

static int hf_size(struct mfsd_http *h, char **argv)
{
	uint64_t size = 0;
	int rc = mfsd_http_size(h, argv[0], &size);

	if (rc == 0)
		fprintf(stderr, "result.size=%" PRIu64 "\n", size);
	return rc;
}

struct hf_stress {
	struct mfsd_http *h;
	const char *name;
	const unsigned char *file;
	size_t size;
	unsigned count;
	size_t max_len;
	unsigned seed;
	pthread_barrier_t *start; /* so that every thread begins at once */
	unsigned mismatches; /* written by the thread, read after join */
	unsigned failures;
	int first_error;
};

static void *hf_stress_thread(void *arg)
{
	struct hf_stress *t = arg;
	unsigned char *buf = malloc(t->max_len);

	pthread_barrier_wait(t->start);
	if (!buf) {
		t->failures = t->count;
		t->first_error = -ENOMEM;
		return NULL;
	}
	for (unsigned i = 0; i < t->count; i++) {
		size_t off = (size_t)rand_r(&t->seed) % t->size;
		size_t len = 1 + (size_t)rand_r(&t->seed) % t->max_len;
		int rc;

		if (len > t->size - off)
			len = t->size - off;
		rc = mfsd_http_get_range(t->h, t->name, off, len, buf);
		if (rc) {
			if (!t->first_error)
				t->first_error = rc;
			t->failures++;
		} else if (memcmp(buf, t->file + off, len) != 0) {
			t->mismatches++;
		}
	}
	free(buf);
	return NULL;
}

static int hf_stress(struct mfsd_http *h, char **argv)
{
	unsigned threads = hf_num(argv[2]);
	struct hf_stress t[HF_MAX_THREADS];
	pthread_t tid[HF_MAX_THREADS];
	unsigned mism = 0, fail = 0;
	pthread_barrier_t start;
	int first = 0, fd;
	struct stat st;
	void *map;

	if (threads < 1 || threads > HF_MAX_THREADS)
		return -EINVAL;
	fd = open(argv[1], O_RDONLY);
	if (fd < 0 || fstat(fd, &st) || st.st_size == 0) {
		perror(argv[1]);
		exit(1);
	}
	map = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	pthread_barrier_init(&start, NULL, threads);
	for (unsigned i = 0; i < threads; i++) {
		t[i] = (struct hf_stress){
			.start = &start,
			.h = h, .name = argv[0], .file = map,
			.size = st.st_size, .count = hf_num(argv[3]),
			.max_len = hf_num(argv[4]),
			.seed = (unsigned)hf_num(argv[5]) * 7919u + i,
		};
		if (pthread_create(&tid[i], NULL, hf_stress_thread, &t[i])) {
			perror("pthread_create");
			exit(1);
		}
	}
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(tid[i], NULL);
		mism += t[i].mismatches;
		fail += t[i].failures;
		if (!first)
			first = t[i].first_error;
	}
	pthread_barrier_destroy(&start);
	munmap(map, st.st_size);
	fprintf(stderr, "result.mismatches=%u\n", mism);
	fprintf(stderr, "result.failures=%u\n", fail);
	return first;
}

struct hf_cancel {
	struct mfsd_http *h;
	char **argv;
	int rc;            /* written by the thread, read after join */
	double returned_ms;
};

static void *hf_cancel_thread(void *arg)
{
	struct hf_cancel *c = arg;
	size_t len = hf_num(c->argv[2]);
	char *buf = malloc(len ? len : 1);

	c->rc = buf ? mfsd_http_get_range(c->h, c->argv[0],
					  hf_num(c->argv[1]), len, buf) :
		      -ENOMEM;
	c->returned_ms = hf_now_ms();
	free(buf);
	return NULL;
}

/* The threads' common answer, or -EPROTO when they differ; the slowest
 * return after the cancel is printed. */
static int hf_cancel(struct mfsd_http *h, char **argv)
{
	unsigned threads = hf_num(argv[4]);
	unsigned long long ms = hf_num(argv[3]);
	struct hf_cancel c[HF_MAX_THREADS];
	pthread_t tid[HF_MAX_THREADS];
	double cancelled, slowest = 0;
	struct timespec after;
	int rc = 0;

	if (threads < 1 || threads > HF_MAX_THREADS)
		return -EINVAL;
	for (unsigned i = 0; i < threads; i++) {
		c[i] = (struct hf_cancel){.h = h, .argv = argv};
		if (pthread_create(&tid[i], NULL, hf_cancel_thread, &c[i])) {
			perror("pthread_create");
			exit(1);
		}
	}
	after.tv_sec = ms / 1000;
	after.tv_nsec = (ms % 1000) * 1000000L;
	nanosleep(&after, NULL);
	cancelled = hf_now_ms();
	mfsd_http_cancel(h);
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(tid[i], NULL);
		if (c[i].returned_ms - cancelled > slowest)
			slowest = c[i].returned_ms - cancelled;
		if (i == 0)
			rc = c[i].rc;
		else if (c[i].rc != rc)
			rc = -EPROTO;
	}
	fprintf(stderr, "result.cancel_to_return_ms=%.1f\n", slowest);
	return rc;
}

static void hf_usage(void)
{
	fprintf(stderr,
		"usage: http_fetch [-c CONNS] [-d DEADLINE_MS] [-H HEADER]... [-s SIGV4] [-C CA_FILE] BASE_URL open|range|object|size|stress|cancel ARGS...\n");
	exit(2);
}

/* The number of arguments each command takes after BASE_URL COMMAND:
 * at least, at most. */
static void hf_check_args(const char *cmd, int n)
{
	static const struct {
		const char *cmd;
		int min, max;
	} table[] = {
		{"open", 0, 0}, {"range", 3, 3}, {"object", 2, 3},
		{"size", 1, 1}, {"stress", 6, 6}, {"cancel", 5, 5},
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strcmp(cmd, table[i].cmd) == 0) {
			if (n < table[i].min || n > table[i].max)
				hf_usage();
			return;
		}
	hf_usage();
}

int main(int argc, char **argv)
{
	const char *headers[HF_MAX_HEADERS + 1] = {0};
	struct mfsd_http_options o = {
		.max_connections = HF_DEFAULT_CONNS,
		.deadline_ms = HF_DEFAULT_DEADLINE_MS,
		.headers = headers,
	};
	struct mfsd_http *h = NULL;
	int nheaders = 0, opt, rc;
	double start;
	char *cmd;

	while ((opt = getopt(argc, argv, "c:d:H:s:C:")) != -1) {
		switch (opt) {
		case 'c': o.max_connections = hf_num(optarg); break;
		case 'd': o.deadline_ms = hf_num(optarg); break;
		case 'H':
			if (nheaders == HF_MAX_HEADERS)
				hf_usage();
			headers[nheaders++] = optarg;
			break;
		case 's': o.aws_sigv4 = optarg; break;
		case 'C': o.ca_file = optarg; break;
		default: hf_usage();
		}
	}
	if (argc - optind < 2)
		hf_usage();
	o.base_url = argv[optind];
	cmd = argv[optind + 1];
	argv += optind + 2;
	argc -= optind + 2;
	hf_check_args(cmd, argc);

#ifdef HF_FAIL_ALLOC
	if (getenv("HF_FAIL_ALLOC"))
		fail_alloc_arm(hf_num(getenv("HF_FAIL_ALLOC")));
#endif
	start = hf_now_ms();
	rc = mfsd_http_open(&h, &o);
	if (rc == 0) {
		if (strcmp(cmd, "range") == 0)
			rc = hf_range(h, argv);
		else if (strcmp(cmd, "object") == 0)
			rc = hf_object(h, argv, argc);
		else if (strcmp(cmd, "size") == 0)
			rc = hf_size(h, argv);
		else if (strcmp(cmd, "stress") == 0)
			rc = hf_stress(h, argv);
		else if (strcmp(cmd, "cancel") == 0)
			rc = hf_cancel(h, argv);
	}
#ifdef HF_FAIL_ALLOC
	fprintf(stderr, "result.alloc_hit=%d\n", fail_alloc_disarm());
#endif
	fprintf(stderr, "result.elapsed_ms=%.1f\n", hf_now_ms() - start);
	fprintf(stderr, "result.rc=%s\n", hf_rc_name(rc));
	if (h) {
		hf_print_stats(h);
		mfsd_http_close(h);
	}
	return 0;
}
