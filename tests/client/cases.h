/*
 * cases.h - the test cases every store kind goes through (directory,
 * shared-memory directory, in-process, mount).
 */
#ifndef MFS_CASES_H
#define MFS_CASES_H

#include "ctest.h"

struct ct_kind {
	const char *name; /* prefix of the case names */
	/* Opens one acquisition of a store of this kind. */
	int (*open)(const struct ct_kind *k, mfs_store **out);
	char location[PATH_MAX];  /* store directory or mount point */
	char store_dir[PATH_MAX]; /* where containers land; "" in-process */
	bool cross_process;       /* other processes can use the spec */
	char scratch[PATH_MAX];   /* cases make their files under here */
};

/* Opening functions of the kinds. */
int ct_open_dir(const struct ct_kind *k, mfs_store **out);
int ct_open_inproc(const struct ct_kind *k, mfs_store **out);
int ct_open_mount(const struct ct_kind *k, mfs_store **out);

/* Runs every shared case on @k; returns the number of failures. */
int ct_run_cases(const char *group, struct ct_kind *k);

#endif /* MFS_CASES_H */
