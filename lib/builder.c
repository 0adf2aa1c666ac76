/*
 * builder.c - models under construction: named arrays (borrowed, copied
 * or pulled from a reader callback) and a metadata document, written as a
 * container or handed to an in-process store.
 *
 * A builder is reference-counted because an in-process store and the
 * models got from it use the builder's arrays directly ("no copy"): the
 * caller's mfs_builder_free only drops its own reference.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* For XXH3_state_t on the stack (the layout of this libxxhash version). */
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "builder_internal.h"
#include "writer_internal.h"

/* Default metadata document. */
#define MFS_EMPTY_METADATA "{}"
/* First capacity of the array table; it doubles from there. */
#define MFS_INITIAL_ARRAYS 8u
/* The name table is kept at most half full. */
#define MFS_NAME_LOAD_DEN 2u
/* Where dtype and order go in the 64-bit word the content key hashes
 * per array (ndim takes the low byte). */
#define MFS_KEY_DTYPE_SHIFT 32
#define MFS_KEY_ORDER_SHIFT 8
/* Room for a reader's message kept across the writer's own. */
#define MFS_CURSOR_MSG_MAX 512

/* One array of a builder. */
struct mfs_barray {
	mfs_array_spec spec; /* spec.name is name below */
	char *name;          /* owned */
	unsigned flags;      /* MFS_ARRAY_DERIVED */
	uint64_t nbytes;     /* product(shape) * itemsize */
	const void *data;    /* borrowed, or owned; NULL while reader-backed */
	void *owned;         /* copy or materialized reader data, or NULL */
	mfs_read_at_fn read; /* NULL when data is set at add */
	void *read_ctx;
};

/*
 * Only the reference count changes once a builder is shared (frozen by
 * an in-process put); before that one thread at a time uses it, and
 * after it nothing but refs changes, so no lock is needed.
 */
struct mfs_builder {
	atomic_uint refs;
	bool frozen; /* set once, by the thread using the builder */

	char *metadata; /* owned, NUL-terminated */
	size_t metadata_len;

	struct mfs_barray *arrays; /* owned, cap entries */
	size_t count;
	size_t cap;

	/* Open-addressed array indices + 1 (0 = empty), by name hash. */
	uint32_t *name_slots;
	size_t slot_count; /* power of two, or 0 */

	/* Import state (an open container, .npy descriptors), freed last. */
	void (*cleanup)(void *ctx);
	void *cleanup_ctx;
};

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */
/* ------------------------------------------------------------------ */

int mfs_builder_new(mfs_builder **out)
{
	mfs_builder *b;

	mfs_clear_error();
	if (!out)
		return mfs_fail(-EINVAL, "mfs_builder_new: NULL argument");
	b = calloc(1, sizeof(*b));
	if (!b)
		return mfs_fail(-ENOMEM, "mfs_builder_new: out of memory");
	b->metadata = strdup(MFS_EMPTY_METADATA);
	if (!b->metadata) {
		free(b);
		return mfs_fail(-ENOMEM, "mfs_builder_new: out of memory");
	}
	b->metadata_len = strlen(MFS_EMPTY_METADATA);
	atomic_init(&b->refs, 1);
	*out = b;
	return 0;
}

static void mfs_builder_destroy(mfs_builder *b)
{
	for (size_t i = 0; i < b->count; i++) {
		free(b->arrays[i].name);
		free(b->arrays[i].owned);
	}
	if (b->cleanup)
		b->cleanup(b->cleanup_ctx);
	free(b->arrays);
	free(b->name_slots);
	free(b->metadata);
	free(b);
}

void mfs_builder_set_cleanup(mfs_builder *b, void (*fn)(void *ctx),
			     void *ctx)
{
	b->cleanup = fn;
	b->cleanup_ctx = ctx;
}

void mfs_builder_ref(mfs_builder *b)
{
	atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void mfs_builder_unref(mfs_builder *b)
{
	/* acq_rel: the last owner must see every other owner's writes. */
	if (b && atomic_fetch_sub_explicit(&b->refs, 1,
					   memory_order_acq_rel) == 1)
		mfs_builder_destroy(b);
}

void mfs_builder_free(mfs_builder *b)
{
	mfs_builder_unref(b);
}

/* ------------------------------------------------------------------ */
/* Adding arrays                                                       */
/* ------------------------------------------------------------------ */

static size_t mfs_name_slot(const mfs_builder *b, const char *name)
{
	return (size_t)XXH3_64bits(name, strlen(name)) & (b->slot_count - 1);
}

/* Index of the array called @name, or -1. */
static ssize_t mfs_find_name(const mfs_builder *b, const char *name)
{
	size_t mask = b->slot_count - 1;

	if (b->slot_count == 0)
		return -1;
	for (size_t s = mfs_name_slot(b, name);; s = (s + 1) & mask) {
		uint32_t v = b->name_slots[s];
		if (v == 0)
			return -1;
		if (strcmp(b->arrays[v - 1].name, name) == 0)
			return (ssize_t)(v - 1);
	}
}

static void mfs_insert_name(mfs_builder *b, size_t index)
{
	size_t s = mfs_name_slot(b, b->arrays[index].name);

	while (b->name_slots[s] != 0)
		s = (s + 1) & (b->slot_count - 1);
	b->name_slots[s] = (uint32_t)(index + 1);
}

/* Makes room for one more array in both tables: 0 or -ENOMEM. */
static int mfs_reserve(mfs_builder *b)
{
	size_t cap, slots;
	void *p;

	if (b->count == b->cap) {
		cap = b->cap ? 2 * b->cap : MFS_INITIAL_ARRAYS;
		p = realloc(b->arrays, cap * sizeof(*b->arrays));
		if (!p)
			return -ENOMEM;
		b->arrays = p;
		b->cap = cap;
	}
	if ((b->count + 1) * MFS_NAME_LOAD_DEN <= b->slot_count)
		return 0;
	slots = b->slot_count ? 2 * b->slot_count
			      : MFS_INITIAL_ARRAYS * MFS_NAME_LOAD_DEN;
	p = calloc(slots, sizeof(*b->name_slots));
	if (!p)
		return -ENOMEM;
	free(b->name_slots);
	b->name_slots = p;
	b->slot_count = slots;
	for (size_t i = 0; i < b->count; i++)
		mfs_insert_name(b, i);
	return 0;
}

/* Checks @spec as the writer will; sets *@nbytes.  0 or -EINVAL. */
static int mfs_check_spec(const mfs_array_spec *spec, uint64_t *nbytes)
{
	const char *n = spec->name;
	int rc = mfs_check_array_name(n);

	if (rc < 0)
		return rc;
	if (mfs_dtype_size(spec->dtype) == 0)
		return mfs_fail(-EINVAL, "builder: array '%s': dtype %d is not "
				"a valid dtype (1..%d)", n, (int)spec->dtype,
				MFS_DTYPE_COUNT - 1);
	if (spec->ndim > MFS_MAX_NDIM)
		return mfs_fail(-EINVAL, "builder: array '%s': ndim %u is more "
				"than %u", n, spec->ndim, MFS_MAX_NDIM);
	if (spec->order != MFS_ORDER_C && spec->order != MFS_ORDER_F)
		return mfs_fail(-EINVAL, "builder: array '%s': order %d is "
				"neither C (0) nor Fortran (1)", n,
				(int)spec->order);
	if (!mfs_codec_name(spec->codec))
		return mfs_fail(-EINVAL, "builder: array '%s': codec %d is "
				"neither none (0) nor lz4 (1)", n,
				(int)spec->codec);
	if (spec->chunk_size != 0 && !mfs_chunk_size_ok(spec->chunk_size))
		return mfs_fail(-EINVAL, "builder: array '%s': chunk_size %u is "
				"not a power of two from %u to %u", n,
				spec->chunk_size, MFS_MIN_CHUNK_SIZE,
				MFS_MAX_CHUNK_SIZE);
	if (!mfs_shape_bytes(spec->dtype, spec->ndim, spec->shape, nbytes) ||
	    *nbytes > SIZE_MAX)
		return mfs_fail(-EINVAL, "builder: array '%s': shape times "
				"itemsize overflows 64 bits", n);
	return 0;
}

/* Checks that @b may take an array under @spec: 0 or a negative errno. */
static int mfs_check_add(const mfs_builder *b, const mfs_array_spec *spec,
			 unsigned flags, unsigned allowed, uint64_t *nbytes)
{
	int rc;

	if (!b || !spec)
		return mfs_fail(-EINVAL, "builder: NULL builder or spec");
	if (b->frozen)
		return mfs_fail(-EBUSY, "builder: frozen by an in-process put; "
				"it can no longer change");
	if (flags & ~allowed)
		return mfs_fail(-EINVAL, "builder: unknown flags 0x%x (allowed "
				"0x%x)", flags & ~allowed, allowed);
	rc = mfs_check_spec(spec, nbytes);
	if (rc < 0)
		return rc;
	if (mfs_find_name(b, spec->name) >= 0)
		return mfs_fail(-EEXIST, "builder: array '%s' is already in the "
				"model", spec->name);
	if (b->count >= MFS_MAX_ARRAYS)
		return mfs_fail(-E2BIG, "builder: array '%s' would be array %zu; "
				"a model has at most %u", spec->name,
				b->count + 1, MFS_MAX_ARRAYS);
	return 0;
}

/* Appends @a (its name and owned data now belong to @b). */
static int mfs_append(mfs_builder *b, struct mfs_barray *a)
{
	if (mfs_reserve(b) < 0)
		return -ENOMEM;
	a->spec.name = a->name;
	b->arrays[b->count] = *a;
	mfs_insert_name(b, b->count);
	b->count++;
	return 0;
}

/* Fills @a for @spec, copying the name (and the data if asked). */
static int mfs_init_barray(struct mfs_barray *a, const mfs_array_spec *spec,
			   uint64_t nbytes, const void *data, unsigned flags)
{
	memset(a, 0, sizeof(*a));
	a->spec = *spec;
	a->nbytes = nbytes;
	a->flags = flags & MFS_ARRAY_DERIVED;
	a->data = nbytes ? data : NULL;
	a->name = strdup(spec->name);
	if (!a->name)
		return -ENOMEM;
	if ((flags & MFS_ARRAY_COPY) && nbytes > 0 && data) {
		a->owned = malloc(nbytes);
		if (!a->owned) {
			free(a->name);
			return -ENOMEM;
		}
		memcpy(a->owned, data, nbytes);
		a->data = a->owned;
	}
	return 0;
}

int mfs_builder_add(mfs_builder *b, const mfs_array_spec *spec,
		    const void *data, unsigned flags)
{
	struct mfs_barray a;
	uint64_t nbytes;
	int rc;

	mfs_clear_error();
	rc = mfs_check_add(b, spec, flags, MFS_ARRAY_DERIVED | MFS_ARRAY_COPY,
			   &nbytes);
	if (rc < 0)
		return rc;
	if (!data && nbytes > 0)
		return mfs_fail(-EINVAL, "builder: array '%s' has %llu bytes "
				"but NULL data", spec->name,
				(unsigned long long)nbytes);
	if (mfs_init_barray(&a, spec, nbytes, data, flags) < 0)
		return mfs_fail(-ENOMEM, "builder: array '%s': out of memory "
				"(%llu bytes)", spec->name,
				(unsigned long long)nbytes);
	if (mfs_append(b, &a) < 0) {
		free(a.owned);
		free(a.name);
		return mfs_fail(-ENOMEM, "builder: array '%s': out of memory",
				spec->name);
	}
	return 0;
}

int mfs_builder_add_reader(mfs_builder *b, const mfs_array_spec *spec,
			   mfs_read_at_fn fn, void *ctx, unsigned flags)
{
	struct mfs_barray a;
	uint64_t nbytes;
	int rc;

	mfs_clear_error();
	rc = mfs_check_add(b, spec, flags, MFS_ARRAY_DERIVED, &nbytes);
	if (rc < 0)
		return rc;
	if (!fn)
		return mfs_fail(-EINVAL, "builder: array '%s': NULL reader",
				spec->name);
	if (mfs_init_barray(&a, spec, nbytes, NULL, flags) < 0)
		return mfs_fail(-ENOMEM, "builder: array '%s': out of memory",
				spec->name);
	a.read = fn;
	a.read_ctx = ctx;
	if (mfs_append(b, &a) < 0) {
		free(a.name);
		return mfs_fail(-ENOMEM, "builder: array '%s': out of memory",
				spec->name);
	}
	return 0;
}

int mfs_builder_set_metadata(mfs_builder *b, const char *json, size_t len)
{
	char *copy;
	int rc;

	mfs_clear_error();
	if (!b || !json)
		return mfs_fail(-EINVAL, "builder: NULL builder or metadata");
	if (b->frozen)
		return mfs_fail(-EBUSY, "builder: frozen by an in-process put; "
				"it can no longer change");
	rc = mfs_check_metadata(json, len);
	if (rc < 0)
		return rc;
	copy = malloc(len + 1);
	if (!copy)
		return mfs_fail(-ENOMEM, "builder: metadata of %zu bytes: out "
				"of memory", len);
	memcpy(copy, json, len);
	copy[len] = '\0';
	free(b->metadata);
	b->metadata = copy;
	b->metadata_len = len;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Reading reader-backed arrays                                        */
/* ------------------------------------------------------------------ */

/* Sequential view of a positional reader, as the writer wants it. */
struct mfs_read_cursor {
	const struct mfs_barray *a;
	uint64_t off;
	/* The reader's failure in detail: the writer wraps a source error
	 * in a message of its own, which would lose it. */
	char msg[MFS_CURSOR_MSG_MAX];
};

static ssize_t mfs_cursor_read(void *ctx, void *buf, size_t len)
{
	struct mfs_read_cursor *cur = ctx;
	const struct mfs_barray *a = cur->a;
	ssize_t n = a->read(a->read_ctx, cur->off, buf, len);

	if (n < 0)
		n = mfs_fail((int)n, "builder: array '%s': reader failed at "
			     "offset %llu: %s", a->name,
			     (unsigned long long)cur->off, strerror((int)-n));
	else if ((size_t)n > len)
		n = mfs_fail(-EINVAL, "builder: array '%s': reader returned "
			     "%zd bytes at offset %llu, more than the %zu "
			     "asked", a->name, n,
			     (unsigned long long)cur->off, len);
	if (n < 0) {
		snprintf(cur->msg, sizeof(cur->msg), "%s", mfs_last_error());
		return n;
	}
	cur->off += (uint64_t)n;
	return n;
}

/* Reads all of reader-backed @a into owned memory. */
static int mfs_materialize(struct mfs_barray *a)
{
	struct mfs_read_cursor cur = {.a = a};
	uint8_t *buf;
	ssize_t n;

	if (a->nbytes == 0)
		return 0;
	buf = malloc(a->nbytes);
	if (!buf)
		return mfs_fail(-ENOMEM, "builder: array '%s': out of memory "
				"reading %llu bytes", a->name,
				(unsigned long long)a->nbytes);
	while (cur.off < a->nbytes) {
		n = mfs_cursor_read(&cur, buf + cur.off, a->nbytes - cur.off);
		if (n <= 0) {
			free(buf);
			if (n == 0)
				return mfs_fail(-EINVAL, "builder: array '%s': "
						"reader ended at %llu of %llu "
						"bytes", a->name,
						(unsigned long long)cur.off,
						(unsigned long long)a->nbytes);
			return (int)n;
		}
	}
	a->owned = buf;
	a->data = buf;
	return 0;
}

int mfs_builder_freeze(mfs_builder *b)
{
	int rc;

	for (size_t i = 0; i < b->count; i++) {
		struct mfs_barray *a = &b->arrays[i];
		if (a->read && !a->owned) {
			rc = mfs_materialize(a);
			if (rc < 0)
				return rc;
		}
	}
	b->frozen = true;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Accessors for the stores                                            */
/* ------------------------------------------------------------------ */

size_t mfs_builder_count(const mfs_builder *b)
{
	return b->count;
}

void mfs_builder_view_at(const mfs_builder *b, size_t i,
			 struct mfs_builder_view *out)
{
	out->spec = &b->arrays[i].spec;
	out->data = b->arrays[i].data;
	out->nbytes = (size_t)b->arrays[i].nbytes;
}

const char *mfs_builder_metadata(const mfs_builder *b, size_t *len)
{
	*len = b->metadata_len;
	return b->metadata;
}

/* Hashes @len bytes of @v, then the bytes themselves, so that fields of
 * different lengths can never run together into the same stream. */
static void mfs_hash_field(XXH3_state_t *st, const void *v, uint64_t len)
{
	uint8_t le[sizeof(uint64_t)];

	mfs_put64(le, len);
	XXH3_64bits_update(st, le, sizeof(le));
	if (len)
		XXH3_64bits_update(st, v, (size_t)len);
}

void mfs_builder_content_key(const mfs_builder *b, char *key)
{
	XXH3_state_t st;
	uint8_t le[sizeof(uint64_t)];

	XXH3_64bits_reset(&st);
	mfs_hash_field(&st, b->metadata, b->metadata_len);
	for (size_t i = 0; i < b->count; i++) {
		const struct mfs_barray *a = &b->arrays[i];
		mfs_hash_field(&st, a->name, strlen(a->name));
		mfs_put64(le, ((uint64_t)a->spec.dtype << MFS_KEY_DTYPE_SHIFT) |
				      ((uint64_t)a->spec.order
				       << MFS_KEY_ORDER_SHIFT) |
				      a->spec.ndim);
		XXH3_64bits_update(&st, le, sizeof(le));
		for (uint32_t d = 0; d < a->spec.ndim; d++) {
			mfs_put64(le, a->spec.shape[d]);
			XXH3_64bits_update(&st, le, sizeof(le));
		}
		mfs_hash_field(&st, a->data, a->nbytes);
	}
	snprintf(key, MFS_CONTENT_KEY_LEN + 1, "%016llx",
		 (unsigned long long)XXH3_64bits_digest(&st));
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

static int mfs_write_array(mfs_writer *w, const struct mfs_barray *a)
{
	struct mfs_read_cursor cur = {.a = a};
	char outer[MFS_CURSOR_MSG_MAX];
	int rc;

	if (!a->read || a->owned)
		return mfs_writer_add_array_buffer(w, &a->spec, a->data,
						   (size_t)a->nbytes);
	rc = mfs_writer_add_array(w, &a->spec, mfs_cursor_read, &cur);
	if (rc < 0 && cur.msg[0]) {
		snprintf(outer, sizeof(outer), "%s", mfs_last_error());
		return mfs_fail(rc, "%s (%s)", outer, cur.msg);
	}
	return rc;
}

int mfs_builder_write_as(const mfs_builder *b, const char *path,
			 bool keep_derived, bool durable)
{
	mfs_writer *w;
	int rc;

	rc = mfs_writer_create(&w, path);
	if (rc < 0)
		return rc;
	mfs_writer_set_durable(w, durable);
	rc = mfs_writer_set_metadata(w, b->metadata, b->metadata_len);
	for (size_t i = 0; rc == 0 && i < b->count; i++) {
		if ((b->arrays[i].flags & MFS_ARRAY_DERIVED) && !keep_derived)
			continue;
		rc = mfs_write_array(w, &b->arrays[i]);
	}
	if (rc < 0) {
		mfs_writer_abort(w);
		return rc;
	}
	return mfs_writer_commit(w);
}

int mfs_builder_write(const mfs_builder *b, const char *path)
{
	mfs_clear_error();
	if (!b || !path)
		return mfs_fail(-EINVAL, "mfs_builder_write: NULL builder or "
				"path");
	return mfs_builder_write_as(b, path, mfs_in_share_context() != 0,
				    true);
}

/* ------------------------------------------------------------------ */
/* Builders over existing files (mfs_store_put_file)                   */
/* ------------------------------------------------------------------ */

/* One array of an open container, as a positional reader. */
struct mfs_container_src {
	mfs_container *c;
	size_t index;
};

static ssize_t mfs_container_read_at(void *ctx, uint64_t off, void *buf,
				     size_t len)
{
	const struct mfs_container_src *s = ctx;

	return mfs_container_read(s->c, s->index, off, buf, len);
}

/* What a container-backed builder frees: the sources and the container. */
struct mfs_container_import {
	mfs_container *c;
	struct mfs_container_src *srcs;
};

static void mfs_container_import_free(void *ctx)
{
	struct mfs_container_import *imp = ctx;

	mfs_container_close(imp->c);
	free(imp->srcs);
	free(imp);
}

static int mfs_add_container_arrays(mfs_builder *b,
				    struct mfs_container_import *imp)
{
	size_t n = mfs_container_array_count(imp->c);
	mfs_array_info ai;
	mfs_array_spec spec;
	int rc;

	for (size_t i = 0; i < n; i++) {
		mfs_container_array(imp->c, i, &ai);
		memset(&spec, 0, sizeof(spec));
		spec.name = ai.name;
		spec.dtype = ai.dtype;
		spec.ndim = ai.ndim;
		memcpy(spec.shape, ai.shape, sizeof(spec.shape));
		spec.order = ai.order;
		spec.codec = ai.codec;
		spec.chunk_size = ai.chunk_size;
		imp->srcs[i].c = imp->c;
		imp->srcs[i].index = i;
		rc = mfs_builder_add_reader(b, &spec, mfs_container_read_at,
					    &imp->srcs[i], 0);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int mfs_builder_from_container(mfs_builder **out, mfs_container *c)
{
	struct mfs_container_import *imp = calloc(1, sizeof(*imp));
	size_t meta_len, n = mfs_container_array_count(c);
	const char *meta = mfs_container_metadata(c, &meta_len);
	mfs_builder *b = NULL;
	int rc;

	if (imp)
		imp->srcs = calloc(n ? n : 1, sizeof(*imp->srcs));
	if (!imp || !imp->srcs || mfs_builder_new(&b) < 0) {
		if (imp)
			free(imp->srcs);
		free(imp);
		rc = mfs_fail(-ENOMEM, "%s: out of memory importing",
			      mfs_container_label(c));
		mfs_container_close(c);
		return rc;
	}
	imp->c = c;
	mfs_builder_set_cleanup(b, mfs_container_import_free, imp);
	rc = mfs_builder_set_metadata(b, meta, meta_len);
	if (rc == 0)
		rc = mfs_add_container_arrays(b, imp);
	if (rc < 0) {
		mfs_builder_free(b);
		return rc;
	}
	*out = b;
	return 0;
}
