/*
 * bench.h - what the parts of mfsbench share: the subcommands, the
 * sample file, clocks, /proc readers and the page-touching scan.
 *
 * mfsbench only measures; tools/bench/run.sh prepares the data, mounts
 * and unmounts, and calls one subcommand per measurement.  Every
 * measurement appends lines to a sample file (TSV, one sample a line):
 *
 *     MEASURE \t SYSTEM \t METRIC \t VALUE \t UNIT
 *
 * and "mfsbench report" turns the file into the table of medians and
 * ratios and the JSON document.
 */
#ifndef MFSBENCH_H
#define MFSBENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Exit statuses of every subcommand. */
enum {
	BENCH_EXIT_OK = 0,
	BENCH_EXIT_FAIL = 1,  /* the measurement could not be made */
	BENCH_EXIT_USAGE = 2, /* called wrong */
};

#define BENCH_NS_PER_SEC 1000000000ull
#define BENCH_NS_PER_MS 1000000.0
#define BENCH_NS_PER_US 1000.0
#define BENCH_KIB 1024ull
#define BENCH_MIB (1024ull * 1024ull)
#define BENCH_GIB (1024ull * 1024ull * 1024ull)

/* Where samples go and under which names (from --samples, --measure,
 * --system; every measuring subcommand takes them). */
struct bench_rec {
	const char *path;    /* sample file, appended to */
	const char *measure; /* "warm", "cold", "cache", "workers", ... */
	const char *system;  /* "modelfs-raw", "squashfuse-lz4", ... */
};

/* Subcommands: argv[0] is the subcommand name.  Each returns an exit
 * status (BENCH_EXIT_*). */
int bench_cmd_gen_model(int argc, char **argv);
int bench_cmd_gen_wide(int argc, char **argv);
int bench_cmd_gen_many(int argc, char **argv);
int bench_cmd_waitmount(int argc, char **argv);
int bench_cmd_meminfo(int argc, char **argv);
int bench_cmd_scan(int argc, char **argv);
int bench_cmd_attach(int argc, char **argv);
int bench_cmd_ls(int argc, char **argv);
int bench_cmd_workers(int argc, char **argv);
int bench_cmd_report(int argc, char **argv);

/* ---- util.c ------------------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* Prints "mfsbench: message\n" on stderr. */
void bench_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Appends one sample line to @r->path.  0, or -1 (message printed). */
int bench_record(const struct bench_rec *r, const char *metric, double value,
		 const char *unit);

/* Takes --samples, --measure and --system from argv[*i] (and the value
 * after it) into @r.  True if argv[*i] was one of them; *@i is moved
 * past its value.  *@bad is set when the value is missing. */
bool bench_rec_option(struct bench_rec *r, int argc, char **argv, int *i,
		      bool *bad);

/* True if @r has all three fields. */
bool bench_rec_complete(const struct bench_rec *r);

/* Parses an unsigned decimal into *@out.  0 or -1 (message printed). */
int bench_parse_u64(const char *what, const char *s, uint64_t *out);

/* Sorts @v (@n > 0 values) and returns their median (the mean of the
 * two middle ones for an even @n). */
double bench_median(double *v, size_t n);

/* /proc/meminfo fields in bytes. */
struct bench_meminfo {
	uint64_t cached; /* Cached: page cache including tmpfs/shm */
	uint64_t mapped; /* Mapped: page cache pages mapped by someone */
};

/* Reads /proc/meminfo.  0 or -1 (message printed). */
int bench_read_meminfo(struct bench_meminfo *mi);

/* Bytes of file @path now in the page cache (mincore of a mapping that
 * is never touched).  0 or -1 (message printed). */
int bench_resident_bytes(const char *path, uint64_t *bytes);

/* Pss of process @pid from /proc/PID/smaps_rollup, in bytes.
 * 0 or -1 (message printed). */
int bench_read_pss(pid_t pid, uint64_t *pss);

/* The *.npy files of directory @dir, sorted by name, as malloc'd
 * "@dir/name" paths in *@out (free with bench_free_paths).  Returns the
 * count (0 is an error: message printed, -1 returned). */
ssize_t bench_list_npy(const char *dir, char ***out);
void bench_free_paths(char **paths, size_t n);

/* ---- scan.c ------------------------------------------------------- */

/* One file mapped read-only. */
struct bench_map {
	const unsigned char *base;
	size_t len;
};

/* Opens @path, maps all of it shared read-only and closes the fd (the
 * mapping keeps the file open).  0 or -1 (message printed). */
int bench_map_file(const char *path, struct bench_map *m);
void bench_unmap(struct bench_map *m);

/* Touches every page of @m: reads one 64-bit word per page and returns
 * their sum (so the compiler cannot drop the reads). */
uint64_t bench_touch_pages(const struct bench_map *m);

#endif /* MFSBENCH_H */
