/*
 * main.c - mfsbench: the measuring half of the modelfs benchmark.
 *
 *   mfsbench COMMAND [ARGS...]
 *
 * tools/bench/run.sh prepares data and mounts, and calls one command per
 * measurement; see bench.h for the sample file they append to.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

struct bench_command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

/* "record METRIC VALUE UNIT": a sample measured elsewhere (data sizes,
 * settings), so that the report shows it beside the timings. */
static int bench_cmd_record(int argc, char **argv)
{
	struct bench_rec rec = {0};
	const char *pos[3];
	int npos = 0;
	bool bad = false;
	char *end;
	double v;

	for (int i = 1; i < argc && !bad; i++) {
		if (bench_rec_option(&rec, argc, argv, &i, &bad))
			continue;
		if (npos < 3)
			pos[npos++] = argv[i];
		else
			bad = true;
	}
	if (bad || npos != 3 || !bench_rec_complete(&rec)) {
		fprintf(stderr, "usage: mfsbench record --samples F --measure "
				"M --system S METRIC VALUE UNIT\n");
		return BENCH_EXIT_USAGE;
	}
	v = strtod(pos[1], &end);
	if (*end || end == pos[1]) {
		bench_err("not a number: '%s'", pos[1]);
		return BENCH_EXIT_USAGE;
	}
	return bench_record(&rec, pos[0], v, pos[2]) < 0 ? BENCH_EXIT_FAIL
							 : BENCH_EXIT_OK;
}

static const struct bench_command bench_commands[] = {
	{"gen-model", bench_cmd_gen_model, "write the large model as .npy"},
	{"gen-wide", bench_cmd_gen_wide, "write a model of many arrays"},
	{"gen-many", bench_cmd_gen_many, "write a store of tiny models"},
	{"waitmount", bench_cmd_waitmount, "wait until a mount answers"},
	{"meminfo", bench_cmd_meminfo, "print Cached and Mapped (bytes)"},
	{"scan", bench_cmd_scan, "time an mmap scan of a directory"},
	{"attach", bench_cmd_attach, "time attaching a model"},
	{"ls", bench_cmd_ls, "time ls(1) of a directory"},
	{"workers", bench_cmd_workers, "N processes attach and scan"},
	{"record", bench_cmd_record, "add a sample measured elsewhere"},
	{"report", bench_cmd_report, "table and JSON from samples"},
};

#define BENCH_NCOMMANDS (sizeof(bench_commands) / sizeof(bench_commands[0]))

static void bench_usage(FILE *f)
{
	fprintf(f, "usage: mfsbench COMMAND [ARGS...]\n\ncommands:\n");
	for (size_t i = 0; i < BENCH_NCOMMANDS; i++)
		fprintf(f, "  %-10s %s\n", bench_commands[i].name,
			bench_commands[i].summary);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		bench_usage(stderr);
		return BENCH_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		bench_usage(stdout);
		return BENCH_EXIT_OK;
	}
	for (size_t i = 0; i < BENCH_NCOMMANDS; i++) {
		if (!strcmp(argv[1], bench_commands[i].name))
			return bench_commands[i].run(argc - 1, argv + 1);
	}
	bench_err("unknown command '%s'", argv[1]);
	bench_usage(stderr);
	return BENCH_EXIT_USAGE;
}
