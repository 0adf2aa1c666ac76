/*
 * manifest.c - the manifest.json document of a container, built with
 * jansson from the container's public accessors.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "internal.h"
#include "layout.h"

/* Hex digits of one checksum in "chunk_checksums". */
#define MFS_HEX64_DIGITS 16u
/* Indentation of the document; it is read by people as much as programs. */
#define MFS_MANIFEST_INDENT 2

/* jansson integers are signed 64-bit; every size here is below 2^63. */
static json_t *mfs_json_u64(uint64_t v)
{
	return json_integer((json_int_t)v);
}

/* Offset of the data in the array's .npy view: the length of the header
 * mfs_npy_header gives it (4096, shorter for arrays with no elements). */
static json_t *mfs_manifest_npy_offset(const mfs_array_info *ai)
{
	char hdr[MFS_NPY_HEADER_SIZE];
	int n = mfs_npy_header(ai->dtype, ai->ndim, ai->shape, ai->order, hdr,
			       sizeof(hdr));

	return n < 0 ? NULL : mfs_json_u64((uint64_t)n);
}

/* Sets @key of @obj to @value (stolen); false when either is missing. */
static bool mfs_json_put(json_t *obj, const char *key, json_t *value)
{
	return value && json_object_set_new(obj, key, value) == 0;
}

static json_t *mfs_manifest_shape(const mfs_array_info *ai)
{
	json_t *shape = json_array();

	for (uint32_t d = 0; shape && d < ai->ndim; d++) {
		if (json_array_append_new(shape, mfs_json_u64(ai->shape[d]))) {
			json_decref(shape);
			return NULL;
		}
	}
	return shape;
}

/*
 * "chunk_checksums": one string of MFS_HEX64_DIGITS hex digits per chunk,
 * in chunk order.  One string rather than a list of thousands: every
 * client that gets the model parses the manifest, and a 1 GiB array's
 * 4096 list entries cost it a millisecond of allocation each time.
 */
static json_t *mfs_manifest_checksums(const mfs_container *c, size_t array,
				      const mfs_array_info *ai)
{
	size_t len = (size_t)ai->chunk_count * MFS_HEX64_DIGITS;
	char *text = malloc(len + 1);
	mfs_chunk_info ch;
	json_t *str;

	if (!text)
		return NULL;
	for (uint64_t k = 0; k < ai->chunk_count; k++) {
		mfs_container_chunk(c, array, k, &ch);
		snprintf(text + k * MFS_HEX64_DIGITS, MFS_HEX64_DIGITS + 1,
			 "%016" PRIx64, ch.checksum);
	}
	str = json_stringn_nocheck(text, len);
	free(text);
	return str;
}

/* "<name>.npy": the file the mount serves the array as. */
static json_t *mfs_manifest_file(const char *name)
{
	char file[MFS_MAX_NAME_LEN + sizeof(MFS_NPY_SUFFIX)];

	snprintf(file, sizeof(file), "%s%s", name, MFS_NPY_SUFFIX);
	return json_string(file);
}

/* One element of "arrays", or NULL when out of memory. */
static json_t *mfs_manifest_array(const mfs_container *c, size_t i)
{
	mfs_array_info ai;
	json_t *a = json_object();
	bool ok;

	mfs_container_array(c, i, &ai);
	ok = a && mfs_json_put(a, "name", json_string(ai.name)) &&
	     mfs_json_put(a, "file", mfs_manifest_file(ai.name)) &&
	     mfs_json_put(a, "dtype", json_string(mfs_dtype_name(ai.dtype))) &&
	     mfs_json_put(a, "npy_descr",
			  json_string(mfs_dtype_npy_descr(ai.dtype))) &&
	     mfs_json_put(a, "shape", mfs_manifest_shape(&ai)) &&
	     mfs_json_put(a, "order",
			  json_string(ai.order == MFS_ORDER_F ? "F" : "C")) &&
	     mfs_json_put(a, "codec", json_string(mfs_codec_name(ai.codec))) &&
	     mfs_json_put(a, "raw_size", mfs_json_u64(ai.raw_length)) &&
	     mfs_json_put(a, "stored_size", mfs_json_u64(ai.stored_length)) &&
	     mfs_json_put(a, "data_offset", mfs_manifest_npy_offset(&ai)) &&
	     mfs_json_put(a, "container_offset", mfs_json_u64(ai.data_offset)) &&
	     mfs_json_put(a, "chunk_size", mfs_json_u64(ai.chunk_size)) &&
	     mfs_json_put(a, "chunks", mfs_json_u64(ai.chunk_count)) &&
	     mfs_json_put(a, "chunk_checksums",
			  mfs_manifest_checksums(c, i, &ai));
	if (!ok) {
		json_decref(a);
		return NULL;
	}
	return a;
}

/* The "arrays" list, adding up the sizes; NULL when out of memory. */
static json_t *mfs_manifest_arrays(const mfs_container *c, uint64_t *raw,
				   uint64_t *stored)
{
	json_t *arrays = json_array();
	mfs_array_info ai;

	for (size_t i = 0; arrays && i < mfs_container_array_count(c); i++) {
		mfs_container_array(c, i, &ai);
		/* Sums stay far below 2^63: all chunk tables fit in a 1 GiB
		 * index, at most 64 MiB per 24-byte entry. */
		*raw += ai.raw_length;
		*stored += ai.stored_length;
		if (json_array_append_new(arrays, mfs_manifest_array(c, i))) {
			json_decref(arrays);
			return NULL;
		}
	}
	return arrays;
}

/* The whole document, or NULL when out of memory. */
static json_t *mfs_manifest_doc(const mfs_container *c, const char *key)
{
	uint64_t raw = 0, stored = 0;
	json_t *arrays = mfs_manifest_arrays(c, &raw, &stored);
	json_t *doc = json_object();
	bool ok;

	ok = arrays && doc &&
	     mfs_json_put(doc, "key", key ? json_string(key) : json_null()) &&
	     mfs_json_put(doc, "format_version",
			  mfs_json_u64(MFS_FORMAT_VERSION)) &&
	     mfs_json_put(doc, "file_size",
			  mfs_json_u64(mfs_container_file_size(c))) &&
	     mfs_json_put(doc, "total_raw_size", mfs_json_u64(raw)) &&
	     mfs_json_put(doc, "total_stored_size", mfs_json_u64(stored)) &&
	     mfs_json_put(doc, "arrays", json_incref(arrays));
	json_decref(arrays);
	if (!ok) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}

/*
 * Serializes @doc into a malloc'd string.  json_dumpb into a buffer we
 * size first, not json_dumps: the latter grows its own buffer and, in
 * jansson 2.14, can drop an object key when that growth fails and still
 * report success.  Writing into a big enough buffer cannot fail that way.
 */
static char *mfs_manifest_text(const json_t *doc, size_t *len)
{
	size_t flags = JSON_INDENT(MFS_MANIFEST_INDENT);
	size_t need = json_dumpb(doc, NULL, 0, flags);
	char *text;

	if (need == 0)
		return NULL;
	text = malloc(need + 1);
	if (!text)
		return NULL;
	if (json_dumpb(doc, text, need, flags) != need) {
		free(text);
		return NULL;
	}
	text[need] = '\0';
	*len = need;
	return text;
}

int mfs_container_manifest(const mfs_container *c, const char *key, char **out,
			   size_t *len)
{
	json_t *doc;
	char *text;
	size_t n = 0;

	mfs_clear_error();
	if (key && mfs_check_key(key) < 0)
		return -EINVAL;
	doc = mfs_manifest_doc(c, key);
	if (!doc)
		return mfs_fail(-ENOMEM, "%s: out of memory building the manifest",
				mfs_container_label(c));
	text = mfs_manifest_text(doc, &n);
	json_decref(doc);
	if (!text)
		return mfs_fail(-ENOMEM, "%s: out of memory writing the manifest",
				mfs_container_label(c));
	*out = text;
	if (len)
		*len = n;
	return 0;
}
