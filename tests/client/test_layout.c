/*
 * test_layout.c - the mount store's reader on crafted files.  A model
 * directory laid out as the daemon serves it (manifest.json,
 * metadata.json, <array>.npy) is made from a container, then damaged one
 * way at a time; each damage must be refused with its errno and a message
 * naming the file and field.  Also: an .npy whose header is not 4096 bytes
 * (data where the header says, not at a fixed offset).  Needs no daemon:
 * mfs_client_open_layout skips the mount check.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "ctest.h"
#include "client_internal.h"

#define CT_KEY "m"
/* NumPy's own layout: a v1.0 header padded to a multiple of 64 bytes. */
#define CT_NPY_ALIGN 64u
#define CT_NPY_PREAMBLE 10u
#define CT_NPY_V1_MAJOR 1
#define CT_BYTE_BITS 8
#define CT_BIG_DIM (1ll << 62)

static char ct_base[PATH_MAX];

struct ct_layout {
	char root[PATH_MAX]; /* the "mount" */
	char model[PATH_MAX];
	mfs_client *c;
};

static int ct_layout_setup(void **state)
{
	struct ct_layout *l = calloc(1, sizeof(*l));

	assert_non_null(l);
	ct_scratch(ct_base, l->root);
	assert_true(snprintf(l->model, sizeof(l->model), "%s/" CT_KEY,
			     l->root) < (int)sizeof(l->model));
	ct_export_layout(ct_path(ct_base, "std.mfs"), l->model);
	assert_int_equal(mfs_client_open_layout(&l->c, l->root), 0);
	*state = l;
	return 0;
}

static int ct_layout_teardown(void **state)
{
	struct ct_layout *l = *state;

	assert_int_equal(mfs_client_close(l->c), 0);
	ct_rmtree(l->root);
	free(l);
	return 0;
}

/* Loads the manifest, lets @edit change it, writes it back. */
static void ct_edit_manifest(const struct ct_layout *l,
			     void (*edit)(json_t *array0))
{
	const char *path = ct_path(l->model, "manifest.json");
	json_t *doc = json_load_file(path, 0, NULL);

	assert_non_null(doc);
	edit(json_array_get(json_object_get(doc, "arrays"), 0));
	assert_int_equal(json_dump_file(doc, path, 0), 0);
	json_decref(doc);
}

static void ct_expect_get(const struct ct_layout *l, int err,
			  const char *needle)
{
	mfs_model *m = NULL;

	ct_expect(mfs_get_model(l->c, CT_KEY, &m), err, needle);
	assert_null(m);
}

/* The exported model reads back as the standard model. */
static void test_layout_ok(void **state)
{
	struct ct_layout *l = *state;
	mfs_model *m;

	assert_int_equal(mfs_get_model(l->c, CT_KEY, &m), 0);
	ct_check_std(m, 1, true);
	assert_int_equal(mfs_model_release(m), 0);
	ct_expect(mfs_get_model(l->c, "other", &m), -ENOENT, "other");
	/* The same directory opened without a client. */
	assert_int_equal(mfs_model_open(l->model, &m), 0);
	ct_check_std(m, 1, true);
	assert_string_equal(mfs_model_key(m), CT_KEY);
	assert_int_equal(mfs_model_release(m), 0);
}

/* "emb.npy" rewritten with NumPy's own short header: the data starts
 * where the header ends, not at 4096. */
static void test_layout_short_header(void **state)
{
	struct ct_layout *l = *state;
	const mfs_array_spec *s = ct_std_spec(CT_EMB);
	char dict[CT_NPY_ALIGN * 2], header[CT_NPY_ALIGN * 2];
	size_t len, hlen, total;
	const void *data = ct_std_data(CT_EMB, 1, &len);
	mfs_array_view a;
	mfs_model *m;
	int fd;

	hlen = (size_t)snprintf(dict, sizeof(dict),
				"{'descr': '<f4', 'fortran_order': False, "
				"'shape': (%llu, %llu), }",
				(unsigned long long)s->shape[0],
				(unsigned long long)s->shape[1]);
	total = (CT_NPY_PREAMBLE + hlen + 1 + CT_NPY_ALIGN - 1) /
		CT_NPY_ALIGN * CT_NPY_ALIGN;
	memset(header, ' ', total);
	memcpy(header, "\x93NUMPY", 6);
	header[6] = CT_NPY_V1_MAJOR;
	header[7] = 0;
	header[8] = (char)((total - CT_NPY_PREAMBLE) & 0xff);
	header[9] = (char)((total - CT_NPY_PREAMBLE) >> CT_BYTE_BITS);
	memcpy(header + CT_NPY_PREAMBLE, dict, hlen);
	header[total - 1] = '\n';
	fd = open(ct_path(l->model, "emb.npy"),
		  O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, header, total), (ssize_t)total);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	assert_int_equal(mfs_get_model(l->c, CT_KEY, &m), 0);
	assert_int_equal(mfs_model_array(m, "emb", &a), 0);
	assert_true(total < MFS_NPY_HEADER_SIZE);
	assert_memory_equal(a.data, data, len);
	assert_int_equal(mfs_model_release(m), 0);
}

static void ct_bad_name(json_t *a)
{
	json_object_set_new(a, "name", json_string(".hidden"));
}

static void ct_bad_file(json_t *a)
{
	json_object_set_new(a, "file", json_string("../escape.npy"));
}

static void ct_bad_dtype(json_t *a)
{
	json_object_set_new(a, "dtype", json_string("float128"));
}

static void ct_bad_order(json_t *a)
{
	json_object_set_new(a, "order", json_string("K"));
}

static void ct_bad_shape(json_t *a)
{
	json_object_set_new(a, "shape", json_string("(64, 33)"));
}

static void ct_negative_dim(json_t *a)
{
	json_object_set_new(a, "shape", json_pack("[i, i]", 64, -33));
}

static void ct_huge_shape(json_t *a)
{
	json_object_set_new(a, "shape",
			    json_pack("[I, I]", (json_int_t)CT_BIG_DIM,
				      (json_int_t)CT_BIG_DIM));
}

static void ct_other_shape(json_t *a)
{
	json_object_set_new(a, "shape", json_pack("[i, i]", 33, 64));
}

/* Every damage of the manifest, each refused with its field named. */
static void test_layout_manifest(void **state)
{
	static const struct {
		void (*edit)(json_t *a);
		const char *needle;
	} cases[] = {
		{ct_bad_name, "arrays[0].name"},
		{ct_bad_file, "arrays[0].file"},
		{ct_bad_dtype, "arrays[0].dtype"},
		{ct_bad_order, "arrays[0].order"},
		{ct_bad_shape, "arrays[0].shape"},
		{ct_negative_dim, "arrays[0].shape"},
		{ct_huge_shape, "overflows"},
		{ct_other_shape, "disagrees with the manifest"},
	};
	struct ct_layout *l = *state;
	const char *path = ct_path(l->model, "manifest.json");
	size_t len;
	char *good = ct_read_file(path, &len);

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		ct_edit_manifest(l, cases[i].edit);
		ct_expect_get(l, -EBADMSG, cases[i].needle);
		ct_write_file(path, good, len);
	}
	ct_write_file(path, "{\"arrays\": 3}", strlen("{\"arrays\": 3}"));
	ct_expect_get(l, -EBADMSG, "no \"arrays\" list");
	ct_write_file(path, "not json", strlen("not json"));
	ct_expect_get(l, -EBADMSG, "manifest.json");
	assert_int_equal(unlink(path), 0);
	ct_expect_get(l, -ENOENT, "manifest.json");
	free(good);
}

/* Damaged or missing files next to the manifest. */
static void test_layout_files(void **state)
{
	struct ct_layout *l = *state;
	const char *meta = ct_path(l->model, "metadata.json");
	char *big;
	int fd;

	assert_int_equal(truncate(ct_path(l->model, "big.npy"),
				  MFS_NPY_HEADER_SIZE + 1),
			 0);
	ct_expect_get(l, -EBADMSG, "big.npy");
	assert_int_equal(unlink(ct_path(l->model, "big.npy")), 0);
	ct_expect_get(l, -ENOENT, "big.npy");
	ct_rmtree(l->model);
	ct_export_layout(ct_path(ct_base, "std.mfs"), l->model);
	fd = open(meta, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_true(fd >= 0);
	big = calloc(1, MFS_MAX_METADATA + 1);
	assert_non_null(big);
	assert_int_equal(write(fd, big, MFS_MAX_METADATA + 1),
			 (ssize_t)MFS_MAX_METADATA + 1);
	close(fd);
	free(big);
	ct_expect_get(l, -EBADMSG, "larger than");
	assert_int_equal(unlink(meta), 0);
	ct_expect_get(l, -ENOENT, "metadata.json");
}


/* A version-stamped one-array model at @dir: metadata {"version": V} and
 * "w" = CT_SWAP_LEN float32 values equal to V. */
#define CT_SWAP_LEN 16
#define CT_SWAP_GETS 3000

static void ct_write_version(const char *dir, int version)
{
	uint64_t shape[1] = {CT_SWAP_LEN};
	float data[CT_SWAP_LEN];
	char hdr[MFS_NPY_HEADER_SIZE];
	int n = mfs_npy_header(MFS_DTYPE_FLOAT32, 1, shape, MFS_ORDER_C, hdr,
			       sizeof(hdr));
	FILE *f;

	assert_true(n > 0);
	assert_int_equal(mkdir(dir, 0755), 0);
	f = fopen(ct_path(dir, "manifest.json"), "w");
	assert_non_null(f);
	fprintf(f, "{\"arrays\": [{\"name\": \"w\", \"file\": \"w.npy\", "
		   "\"dtype\": \"float32\", \"order\": \"C\", "
		   "\"shape\": [%d]}]}", CT_SWAP_LEN);
	assert_int_equal(fclose(f), 0);
	f = fopen(ct_path(dir, "metadata.json"), "w");
	assert_non_null(f);
	fprintf(f, "{\"version\": %d}", version);
	assert_int_equal(fclose(f), 0);
	for (int i = 0; i < CT_SWAP_LEN; i++)
		data[i] = (float)version;
	f = fopen(ct_path(dir, "w.npy"), "w");
	assert_non_null(f);
	assert_int_equal(fwrite(hdr, 1, (size_t)n, f), (size_t)n);
	assert_int_equal(fwrite(data, sizeof(float), CT_SWAP_LEN, f),
			 CT_SWAP_LEN);
	assert_int_equal(fclose(f), 0);
}

struct ct_swapper {
	char a[PATH_MAX], b[PATH_MAX];
	atomic_int stop;
};

/* Swaps the two version directories as fast as it can, like a daemon
 * replacing the model behind the key between a client's opens. */
static void *ct_swap(void *arg)
{
	struct ct_swapper *sw = arg;

	while (!atomic_load(&sw->stop))
		(void)renameat2(AT_FDCWD, sw->a, AT_FDCWD, sw->b,
				RENAME_EXCHANGE);
	return NULL;
}

/* A get never mixes files of two versions of a model, however the key's
 * directory changes while it opens them. */
static void test_layout_replace_never_mixes(void **state)
{
	struct ct_layout *l = *state;
	struct ct_swapper sw = {0};
	int mixed = 0, got = 0;
	pthread_t t;

	assert_true(snprintf(sw.a, sizeof(sw.a), "%s/v", l->root) <
		    (int)sizeof(sw.a));
	assert_true(snprintf(sw.b, sizeof(sw.b), "%s/other", l->root) <
		    (int)sizeof(sw.b));
	ct_write_version(sw.a, 1);
	ct_write_version(sw.b, 2);
	assert_int_equal(pthread_create(&t, NULL, ct_swap, &sw), 0);
	for (int i = 0; i < CT_SWAP_GETS; i++) {
		const char *meta;
		mfs_array_view v;
		mfs_model *m;

		/* ENOENT: caught between the two halves of an exchange. */
		if (mfs_get_model(l->c, "v", &m) < 0)
			continue;
		got++;
		meta = mfs_model_metadata(m, NULL);
		assert_int_equal(mfs_model_array(m, "w", &v), 0);
		if ((int)((const float *)v.data)[0] !=
		    atoi(strchr(meta, ':') + 1))
			mixed++;
		assert_int_equal(mfs_model_release(m), 0);
	}
	atomic_store(&sw.stop, 1);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(got > 0);
	assert_int_equal(mixed, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_layout_ok, ct_layout_setup,
						ct_layout_teardown),
		cmocka_unit_test_setup_teardown(test_layout_short_header,
						ct_layout_setup,
						ct_layout_teardown),
		cmocka_unit_test_setup_teardown(test_layout_manifest,
						ct_layout_setup,
						ct_layout_teardown),
		cmocka_unit_test_setup_teardown(test_layout_files,
						ct_layout_setup,
						ct_layout_teardown),
		cmocka_unit_test_setup_teardown(test_layout_replace_never_mixes,
						ct_layout_setup,
						ct_layout_teardown),
	};
	int rc;

	ct_scratch("/var/tmp", ct_base);
	rc = cmocka_run_group_tests_name("mount-layout", tests, NULL, NULL);
	ct_rmtree(ct_base);
	return rc;
}
