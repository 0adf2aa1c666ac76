/*
 * report.c - "mfsbench report": the table of medians and ratios, and the
 * same as JSON, from a sample file.
 *
 * Samples are grouped by (measure, system, metric); each group gives a
 * median, minimum, maximum and count.  Ratios are ratios of medians of
 * groups measured in the same run, with the target of the issue beside
 * each; a missed target is reported, never asserted.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define REPORT_LINE_MAX 512
#define REPORT_FIELDS 5
#define REPORT_MAX_INFO 32

/* All samples of one (measure, system, metric). */
struct report_group {
	char *measure, *system, *metric, *unit;
	double *v;
	size_t n, cap;
	double median, min, max;
};

struct report {
	struct report_group *g;
	size_t n, cap;
};

/* A ratio of medians: num / den, or num alone when den is NULL. */
struct report_ratio_spec {
	const char *name;
	const char *measure, *metric;
	const char *num, *den; /* systems */
	const char *op;        /* ">=", "<=", "<" or NULL: no target */
	double target;
	/* If set, the median of this metric of den's system (measure
	 * "put") is added to den's: a time to ready that counts the put
	 * measured apart from the workers. */
	const char *den_put_metric;
};

#define R_GE ">="
#define R_LE "<="
#define R_LT "<"
/* Targets of the issue (DESIGN.md section 6). */
#define T_WARM 0.9
#define T_COLD 2.0
#define T_CACHE 1.05
#define T_TOTAL 1.1
#define T_FASTER 1.0
#define T_ATTACH_US 1000.0
#define T_LS_MS 100.0
/* Per-request targets are ratios to the floor measured beside them. */
#define T_OPEN_FLOOR 1.2
/* The measure of the separately timed puts (den_put_metric). */
#define REPORT_PUT_MEASURE "put"
#define T_LS_EXT4 1.5
/* The pause a reader sees when the serving process is replaced. */
#define T_KILL_PAUSE_MS 200.0
#define T_UPGRADE_PAUSE_MS 50.0
/* The remote section: a cold scan through a URL mount at least half as
 * fast as through the local store's; bytes fetched for one array at most
 * 5 % over its size. */
#define T_REMOTE_COLD 0.5
#define T_FETCHED 1.05

static const struct report_ratio_spec report_ratios[] = {
	{"warm: modelfs-raw / plain", "warm", "gibps", "modelfs-raw", "plain",
	 R_GE, T_WARM, NULL},
	{"warm: modelfs-lz4 / plain", "warm", "gibps", "modelfs-lz4", "plain",
	 R_GE, T_WARM, NULL},
	{"warm: squashfuse-lz4 / plain", "warm", "gibps", "squashfuse-lz4",
	 "plain", NULL, 0, NULL},
	{"cold: modelfs-raw / squashfuse-lz4", "cold", "gibps", "modelfs-raw",
	 "squashfuse-lz4", R_GE, T_COLD, NULL},
	{"cold: modelfs-lz4 / squashfuse-lz4", "cold", "gibps", "modelfs-lz4",
	 "squashfuse-lz4", R_GE, T_COLD, NULL},
	{"cold: modelfs-raw / squashfuse-none", "cold", "gibps",
	 "modelfs-raw", "squashfuse-none", R_GE, T_COLD, NULL},
	{"cold: modelfs-lz4 / squashfuse-none", "cold", "gibps",
	 "modelfs-lz4", "squashfuse-none", NULL, 0, NULL},
	{"cache held / model: modelfs-raw", "cold", "cache_x", "modelfs-raw",
	 NULL, R_LE, T_CACHE, NULL},
	{"cache held / model: modelfs-lz4", "cold", "cache_x", "modelfs-lz4",
	 NULL, R_LE, T_CACHE, NULL},
	{"cache held / model: squashfuse-lz4", "cold", "cache_x",
	 "squashfuse-lz4", NULL, NULL, 0, NULL},
	{"cache held / model: squashfuse-none", "cold", "cache_x",
	 "squashfuse-none", NULL, NULL, 0, NULL},
	{"8 workers memory / model: modelfs (C)", "workers", "total_x",
	 "modelfs-c", NULL, R_LE, T_TOTAL, NULL},
	{"8 workers memory / model: modelfs (numpy)", "workers", "total_x",
	 "modelfs-numpy", NULL, R_LE, T_TOTAL, NULL},
	{"8 workers memory / model: shm+pickle5", "workers", "total_x",
	 "shm-pickle5", NULL, NULL, 0, NULL},
	{"8 workers memory / model: private", "workers", "total_x", "private",
	 NULL, NULL, 0, NULL},
	{"first use: shm+pickle5 / modelfs (numpy)", "workers",
	 "first_use_ms", "shm-pickle5", "modelfs-numpy", R_GE, T_FASTER, NULL},
	{"first use: private / modelfs (numpy)", "workers", "first_use_ms",
	 "private", "modelfs-numpy", R_GE, T_FASTER, NULL},
	{"ready (incl. start, put): shm / modelfs (numpy)", "workers",
	 "ready_ms", "shm-pickle5", "modelfs-numpy", R_GE, T_FASTER,
	 "put_ms"},
	{"ready (incl. start): private / modelfs (numpy)", "workers",
	 "ready_ms", "private", "modelfs-numpy", R_GE, T_FASTER, NULL},
	{"wall: shm+pickle5 / modelfs (numpy)", "workers", "wall_ms",
	 "shm-pickle5", "modelfs-numpy", NULL, 0, NULL},
	{"wall: private / modelfs (numpy)", "workers", "wall_ms", "private",
	 "modelfs-numpy", NULL, 0, NULL},
	{"attach 100 arrays, us: modelfs (POSIX)", "attach", "attach_us",
	 "modelfs", NULL, R_LT, T_ATTACH_US, NULL},
	{"attach 100 arrays, us: modelfs (libmodelfs)", "attach", "attach_us",
	 "modelfs-client", NULL, R_LT, T_ATTACH_US, NULL},
	{"ls tiny-model store, ms: cold", "ls", "cold_ms", "modelfs", NULL,
	 R_LT, T_LS_MS, NULL},
	{"ls tiny-model store, ms: warm", "ls", "warm_ms", "modelfs", NULL,
	 R_LT, T_LS_MS, NULL},
	{"ls -l tiny-model store, ms: first", "ls", "long_first_ms",
	 "modelfs", NULL, R_LT, T_LS_MS, NULL},
	{"ls -l tiny-model store, ms: warm", "ls", "long_warm_ms", "modelfs",
	 NULL, R_LT, T_LS_MS, NULL},
	{"open+close: modelfs / floor FUSE", "open", "open_close_us",
	 "modelfs", "floor", R_LE, T_OPEN_FLOOR, NULL},
	{"open+close: modelfs, 10,000 models / floor", "open",
	 "open_close_us", "modelfs-10k", "floor", R_LE, T_OPEN_FLOOR, NULL},
	{"open+close: plain / floor", "open", "open_close_us", "plain",
	 "floor", NULL, 0, NULL},
	{"attach 100 files: modelfs / floor FUSE", "attach", "attach_us",
	 "modelfs", "floor", NULL, 0, NULL},
	{"ls -l: modelfs / ext4 dirs, first", "ls", "long_first_ms",
	 "modelfs", "ext4", R_LE, T_LS_EXT4, NULL},
	{"ls -l: modelfs / ext4 dirs, warm", "ls", "long_warm_ms", "modelfs",
	 "ext4", R_LE, T_LS_EXT4, NULL},
	{"pack, MiB/s: raw", "pack", "mibps", "modelfs-raw", NULL, NULL, 0,
	 NULL},
	{"pack, MiB/s: LZ4", "pack", "mibps", "modelfs-lz4", NULL, NULL, 0,
	 NULL},
	/* The Python section (pyshare.py): modelfs.sharing's MountModelStore
	 * against shared_memory + pickle 5, joblib mmap, private copies. */
	{"py put: shm+pickle5 / modelfs", "python", "put_ms", "shm-pickle5",
	 "modelfs-mount", R_GE, T_FASTER, NULL},
	{"py get_model: shm+pickle5 / modelfs", "python", "get_ms",
	 "shm-pickle5", "modelfs-mount", R_GE, T_FASTER, NULL},
	{"py ready (put incl.): shm+pickle5 / modelfs", "python", "ready_ms",
	 "shm-pickle5", "modelfs-mount", NULL, 0, NULL},
	{"py 8 workers memory / model: modelfs", "python", "total_x",
	 "modelfs-mount", NULL, R_LE, T_TOTAL, NULL},
	{"py 8 workers memory / model: shm+pickle5", "python", "total_x",
	 "shm-pickle5", NULL, NULL, 0, NULL},
	{"py 8 workers memory / model: joblib mmap", "python", "total_x",
	 "joblib-mmap", NULL, NULL, 0, NULL},
	{"py 8 workers memory / model: private", "python", "total_x",
	 "private", NULL, NULL, 0, NULL},
	{"py put: joblib mmap / modelfs", "python", "put_ms", "joblib-mmap",
	 "modelfs-mount", NULL, 0, NULL},
	{"py get_model: joblib mmap / modelfs", "python", "get_ms",
	 "joblib-mmap", "modelfs-mount", NULL, 0, NULL},
	{"py ready (put incl.): joblib mmap / modelfs", "python", "ready_ms",
	 "joblib-mmap", "modelfs-mount", NULL, 0, NULL},
	{"py get_model: private / modelfs", "python", "get_ms", "private",
	 "modelfs-mount", NULL, 0, NULL},
	{"py ready (put incl.): private / modelfs", "python", "ready_ms",
	 "private", "modelfs-mount", NULL, 0, NULL},
	{"reader pause, ms: serving process killed", "takeover",
	 "kill_pause_ms", "modelfs", NULL, R_LT, T_KILL_PAUSE_MS, NULL},
	{"reader pause, ms: upgrade", "takeover", "upgrade_pause_ms",
	 "modelfs", NULL, R_LT, T_UPGRADE_PAUSE_MS, NULL},
	/* The remote section (remote.py): the model at a URL. */
	{"url first use, 1 array: download+mount / lazy", "remote",
	 "first_use_ms", "download-local", "modelfs-url", R_GE, T_FASTER,
	 NULL},
	{"url bytes fetched / size, 1 array of 4", "remote", "fetched_x",
	 "modelfs-url", NULL, R_LE, T_FETCHED, NULL},
	{"url cold scan: modelfs-url / local store", "remote-cold", "gibps",
	 "modelfs-url", "modelfs-local", R_GE, T_REMOTE_COLD, NULL},
	{"url warm scan: modelfs-url / plain", "remote-warm", "gibps",
	 "modelfs-url", "plain", R_GE, T_WARM, NULL},
};

#define REPORT_NRATIOS (sizeof(report_ratios) / sizeof(report_ratios[0]))

/* ------------------------------------------------------------------ */
/* Reading                                                             */
/* ------------------------------------------------------------------ */

static struct report_group *report_find(struct report *r, char **f)
{
	for (size_t i = 0; i < r->n; i++) {
		struct report_group *g = &r->g[i];

		if (!strcmp(g->measure, f[0]) && !strcmp(g->system, f[1]) &&
		    !strcmp(g->metric, f[2]))
			return g;
	}
	return NULL;
}

/* The group of fields @f (measure, system, metric, -, unit), created if
 * new.  NULL when out of memory. */
static struct report_group *report_group(struct report *r, char **f)
{
	struct report_group *g = report_find(r, f);

	if (g)
		return g;
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 16;
		struct report_group *ng = realloc(r->g, cap * sizeof(*ng));

		if (!ng)
			return NULL;
		r->g = ng;
		r->cap = cap;
	}
	g = &r->g[r->n];
	memset(g, 0, sizeof(*g));
	g->measure = strdup(f[0]);
	g->system = strdup(f[1]);
	g->metric = strdup(f[2]);
	g->unit = strdup(f[4]);
	r->n++;
	if (!g->measure || !g->system || !g->metric || !g->unit)
		return NULL;
	return g;
}

static int report_add(struct report_group *g, double v)
{
	if (g->n == g->cap) {
		size_t cap = g->cap ? 2 * g->cap : 8;
		double *nv = realloc(g->v, cap * sizeof(*nv));

		if (!nv)
			return -1;
		g->v = nv;
		g->cap = cap;
	}
	g->v[g->n++] = v;
	return 0;
}

/* Splits a TSV @line in place into REPORT_FIELDS fields.  0 or -1. */
static int report_split(char *line, char **f)
{
	char *save = NULL;

	line[strcspn(line, "\n")] = '\0';
	for (int i = 0; i < REPORT_FIELDS; i++) {
		f[i] = strtok_r(i ? NULL : line, "\t", &save);
		if (!f[i])
			return -1;
	}
	return 0;
}

static int report_read(struct report *r, const char *path)
{
	char line[REPORT_LINE_MAX], *f[REPORT_FIELDS], *end;
	unsigned lineno = 0;
	FILE *in = fopen(path, "re");
	int rc = 0;

	if (!in) {
		bench_err("%s: %s", path, strerror(errno));
		return -1;
	}
	while (rc == 0 && fgets(line, sizeof(line), in)) {
		struct report_group *g;
		double v;

		lineno++;
		if (report_split(line, f) < 0) {
			bench_err("%s:%u: not a sample line", path, lineno);
			rc = -1;
			break;
		}
		v = strtod(f[3], &end);
		g = report_group(r, f);
		if (*end || !g || report_add(g, v) < 0) {
			bench_err("%s:%u: bad value or out of memory", path,
				  lineno);
			rc = -1;
		}
	}
	fclose(in);
	return rc;
}

static void report_summarise(struct report *r)
{
	for (size_t i = 0; i < r->n; i++) {
		struct report_group *g = &r->g[i];

		g->median = bench_median(g->v, g->n); /* sorts g->v */
		g->min = g->v[0];
		g->max = g->v[g->n - 1];
	}
}

static void report_free(struct report *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->g[i].measure);
		free(r->g[i].system);
		free(r->g[i].metric);
		free(r->g[i].unit);
		free(r->g[i].v);
	}
	free(r->g);
}

/* ------------------------------------------------------------------ */
/* Ratios                                                              */
/* ------------------------------------------------------------------ */

static const struct report_group *report_get(const struct report *r,
					     const char *measure,
					     const char *system,
					     const char *metric)
{
	char *f[REPORT_FIELDS] = {(char *)measure, (char *)system,
				  (char *)metric, NULL, NULL};

	return report_find((struct report *)r, f);
}

/* Value of ratio @s, or NAN if a group is missing. */
static double report_ratio(const struct report *r,
			   const struct report_ratio_spec *s)
{
	const struct report_group *num, *den, *put;

	num = report_get(r, s->measure, s->num, s->metric);
	if (!num)
		return NAN;
	if (!s->den)
		return num->median;
	den = report_get(r, s->measure, s->den, s->metric);
	if (!den || den->median == 0)
		return NAN;
	if (s->den_put_metric) {
		put = report_get(r, REPORT_PUT_MEASURE, s->den,
				 s->den_put_metric);
		if (!put)
			return NAN;
		return num->median / (den->median + put->median);
	}
	return num->median / den->median;
}

/* "met", "missed" or "-" (no target, or no value). */
static const char *report_verdict(const struct report_ratio_spec *s, double v)
{
	bool met;

	if (!s->op || isnan(v))
		return "-";
	if (!strcmp(s->op, R_GE))
		met = v >= s->target;
	else if (!strcmp(s->op, R_LE))
		met = v <= s->target;
	else
		met = v < s->target;
	return met ? "met" : "MISSED";
}

/* ------------------------------------------------------------------ */
/* Output                                                              */
/* ------------------------------------------------------------------ */

static void report_print(const struct report *r, char **info, size_t ninfo)
{
	const char *last = "";

	for (size_t i = 0; i < ninfo; i++)
		printf("# %s\n", info[i]);
	printf("\n%-8s %-16s %-14s %12s %-6s %3s %12s %12s\n", "measure",
	       "system", "metric", "median", "unit", "n", "min", "max");
	for (size_t i = 0; i < r->n; i++) {
		const struct report_group *g = &r->g[i];

		if (strcmp(g->measure, last) != 0 && i > 0)
			putchar('\n');
		last = g->measure;
		printf("%-8s %-16s %-14s %12.4g %-6s %3zu %12.4g %12.4g\n",
		       g->measure, g->system, g->metric, g->median, g->unit,
		       g->n, g->min, g->max);
	}
	printf("\n%-48s %10s %-10s %s\n", "ratio (of medians) / value",
	       "value", "target", "");
	for (size_t i = 0; i < REPORT_NRATIOS; i++) {
		const struct report_ratio_spec *s = &report_ratios[i];
		double v = report_ratio(r, s);
		char target[32] = "-";

		if (s->op)
			snprintf(target, sizeof(target), "%s %g", s->op,
				 s->target);
		printf("%-48s %10.3f %-10s %s\n", s->name, v, target,
		       report_verdict(s, v));
	}
}

/* Writes @s as a JSON string (our names need only " and \ escaped). */
static void report_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		if ((unsigned char)*s >= ' ')
			fputc(*s, f);
	}
	fputc('"', f);
}

/* A number, or null for NaN (JSON has no NaN). */
static void report_json_num(FILE *f, double v)
{
	if (isnan(v) || isinf(v))
		fputs("null", f);
	else
		fprintf(f, "%.6g", v);
}

static void report_json_info(FILE *f, char **info, size_t ninfo)
{
	fputs("  \"config\": {", f);
	for (size_t i = 0; i < ninfo; i++) {
		char *eq = strchr(info[i], '=');

		if (!eq)
			continue;
		*eq = '\0';
		fputs(i ? ",\n    " : "\n    ", f);
		report_json_str(f, info[i]);
		fputs(": ", f);
		report_json_str(f, eq + 1);
		*eq = '=';
	}
	fputs("\n  },\n", f);
}

static void report_json_groups(FILE *f, const struct report *r)
{
	fputs("  \"results\": [", f);
	for (size_t i = 0; i < r->n; i++) {
		const struct report_group *g = &r->g[i];

		fputs(i ? ",\n    {" : "\n    {", f);
		fputs("\"measure\": ", f);
		report_json_str(f, g->measure);
		fputs(", \"system\": ", f);
		report_json_str(f, g->system);
		fputs(", \"metric\": ", f);
		report_json_str(f, g->metric);
		fputs(", \"unit\": ", f);
		report_json_str(f, g->unit);
		fputs(", \"median\": ", f);
		report_json_num(f, g->median);
		fprintf(f, ", \"n\": %zu, \"samples\": [", g->n);
		for (size_t k = 0; k < g->n; k++) {
			fputs(k ? ", " : "", f);
			report_json_num(f, g->v[k]);
		}
		fputs("]}", f);
	}
	fputs("\n  ],\n", f);
}

static void report_json_ratios(FILE *f, const struct report *r)
{
	fputs("  \"ratios\": [", f);
	for (size_t i = 0; i < REPORT_NRATIOS; i++) {
		const struct report_ratio_spec *s = &report_ratios[i];
		double v = report_ratio(r, s);

		fputs(i ? ",\n    {" : "\n    {", f);
		fputs("\"name\": ", f);
		report_json_str(f, s->name);
		fputs(", \"value\": ", f);
		report_json_num(f, v);
		fputs(", \"target\": ", f);
		if (s->op) {
			fputc('"', f);
			fprintf(f, "%s %g", s->op, s->target);
			fputc('"', f);
		} else {
			fputs("null", f);
		}
		fputs(", \"verdict\": ", f);
		report_json_str(f, report_verdict(s, v));
		fputc('}', f);
	}
	fputs("\n  ]\n", f);
}

static int report_write_json(const char *path, const struct report *r,
			     char **info, size_t ninfo)
{
	FILE *f = fopen(path, "we");
	bool failed;

	if (!f) {
		bench_err("%s: %s", path, strerror(errno));
		return -1;
	}
	fputs("{\n", f);
	report_json_info(f, info, ninfo);
	report_json_groups(f, r);
	report_json_ratios(f, r);
	fputs("}\n", f);
	failed = ferror(f) != 0;
	if (fclose(f) != 0 || failed) {
		bench_err("%s: write failed", path);
		return -1;
	}
	return 0;
}

/* Counts (and names on stderr) the ratios that have no value: a measure
 * that did not run. */
static size_t report_missing(const struct report *r)
{
	size_t missing = 0;

	for (size_t i = 0; i < REPORT_NRATIOS; i++) {
		if (!isnan(report_ratio(r, &report_ratios[i])))
			continue;
		bench_err("no value for '%s'", report_ratios[i].name);
		missing++;
	}
	return missing;
}

/* "report [--json OUT] [--require-all] [--info KEY=VALUE ...] SAMPLES":
 * with --require-all, fails if any ratio has no value. */
int bench_cmd_report(int argc, char **argv)
{
	char *info[REPORT_MAX_INFO];
	const char *json = NULL, *samples = NULL;
	struct report r = {0};
	bool require_all = false;
	size_t ninfo = 0;
	int rc = BENCH_EXIT_FAIL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json") && i + 1 < argc)
			json = argv[++i];
		else if (!strcmp(argv[i], "--require-all"))
			require_all = true;
		else if (!strcmp(argv[i], "--info") && i + 1 < argc &&
			 ninfo < REPORT_MAX_INFO)
			info[ninfo++] = argv[++i];
		else if (argv[i][0] != '-' && !samples)
			samples = argv[i];
		else {
			samples = NULL;
			break;
		}
	}
	if (!samples) {
		fprintf(stderr, "usage: mfsbench report [--json OUT] "
				"[--require-all] [--info KEY=VALUE ...] "
				"SAMPLES.tsv\n");
		return BENCH_EXIT_USAGE;
	}
	if (report_read(&r, samples) == 0) {
		report_summarise(&r);
		report_print(&r, info, ninfo);
		rc = json && report_write_json(json, &r, info, ninfo) < 0
			     ? BENCH_EXIT_FAIL
			     : BENCH_EXIT_OK;
		if (require_all && report_missing(&r) > 0)
			rc = BENCH_EXIT_FAIL;
	}
	report_free(&r);
	return rc;
}
