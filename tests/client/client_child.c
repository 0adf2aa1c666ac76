/*
 * client_child.c - a separate process that knows only a client spec and a
 * key: opens a client, gets the model and prints its digest (ct_digest),
 * so the parent can compare it with its own view.
 *
 *   client_child SPEC KEY
 *
 * Exit status: 0, 2 usage, or the errno of the failing call.
 */
#include <stdio.h>
#include <stdlib.h>

#include "ctest.h"

#define CHILD_USAGE 2

int main(int argc, char **argv)
{
	char digest[CT_DIGEST_MAX];
	mfs_client *c;
	mfs_model *m;
	int rc;

	if (argc != 3) {
		fprintf(stderr, "usage: client_child SPEC KEY\n");
		return CHILD_USAGE;
	}
	rc = mfs_client_open(&c, argv[1]);
	if (rc == 0) {
		rc = mfs_get_model(c, argv[2], &m);
		if (rc == 0) {
			ct_digest(m, digest, sizeof(digest));
			fputs(digest, stdout);
			mfs_model_release(m);
		}
		mfs_client_close(c);
	}
	if (rc < 0)
		fprintf(stderr, "client_child: %s\n", mfs_last_error());
	return -rc;
}
