/*
 * writer.c - streaming, atomic writer of modelfs containers (FORMAT.md).
 *
 * Arrays are streamed chunk by chunk into a temporary file in the
 * destination directory, starting at MFS_DATA_START; only the chunk tables
 * stay in memory.  Commit appends the index, writes the header at offset 0,
 * fsyncs, renames the file onto its final name and fsyncs the directory,
 * so a reader sees either the old file or the complete new one.  A store's
 * ephemeral puts skip both fsyncs (writer_internal.h).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec_internal.h"
#include "encode_pool_internal.h"
#include "layout.h"
#include "staging_internal.h"
#include "writer_internal.h"

/* Temporary files a writer makes before giving up when a gc keeps
 * removing them between creation and lock (each race needs a gc run). */
#define MFS_TMP_ATTEMPTS 8
/* Default metadata document. */
#define MFS_EMPTY_METADATA "{}"
/* Largest file offset the writer produces (off_t is signed 64-bit). */
#define MFS_MAX_FILE_OFFSET ((uint64_t)INT64_MAX)
/* Initial capacities of the growable tables. */
#define MFS_INITIAL_ARRAYS 16u
#define MFS_INITIAL_CHUNKS 64u
/* Name hash table is kept at most half full. */
#define MFS_HASH_LOAD_DEN 2u
/* Room for a message of common.c that a writer message wraps. */
#define MFS_INNER_MSG_MAX 1024
/* Largest errno value; a "negative errno" below -this is not one. */
#define MFS_MAX_ERRNO 4095
/* Bytes of an over-long path quoted in its error message. */
#define MFS_PATH_SHOWN 64
/* Environment variable forcing the number of encoding threads (modelfs.h). */
#define MFS_ENV_WRITER_THREADS "MODELFS_WRITER_THREADS"
/* Most encoding threads: past this, writing the file is the bottleneck. */
#define MFS_MAX_ENCODE_THREADS 8u
/* Chunks in flight per encoding thread: one being encoded while the
 * writer reads the next and writes the last. */
#define MFS_SLOTS_PER_THREAD 2u
/* Most raw bytes in flight in the encoding pool, so that large chunk
 * sizes stay within memory (a 64 MiB chunk size encodes serially). */
#define MFS_POOL_MAX_INFLIGHT (64u << 20)
/* Base of the thread count in the environment. */
#define MFS_DECIMAL 10
/* Bytes written between two starts of writeback: the disk writes while
 * chunks are still being encoded, so the commit's fsync waits for the
 * last few MiB instead of the whole file. */
#define MFS_WRITEBACK_STEP (8u << 20)

/* One stored chunk; its offset is the sum of the stored lengths before. */
struct mfs_wchunk {
	uint64_t checksum;
	uint32_t stored_length;
};

/* One array already streamed to the file, waiting for the index. */
struct mfs_warray {
	char *name;      /* owned */
	uint64_t *shape; /* owned, ndim entries (NULL for ndim 0) */
	size_t name_len;
	mfs_dtype dtype;
	uint32_t ndim;
	mfs_order order;
	mfs_codec codec;
	uint32_t chunk_size;
	uint64_t data_offset;
	uint64_t raw_length;
	uint64_t stored_length;
	uint64_t chunk_count; /* chunks written so far, then all of them */
	uint64_t chunk_cap;
	struct mfs_wchunk *chunks; /* owned, chunk_cap entries */
};

/* A writer is used by one thread at a time (modelfs.h): no locks. */
struct mfs_writer {
	char *path;       /* final path, as given; for messages */
	char *final_name; /* basename of path, relative to dirfd */
	char *tmp_name;   /* basename of the temporary file */
	int dirfd;        /* destination directory; renameat/unlinkat/fsync */
	int fd;           /* temporary file */
	bool failed;      /* an add failed: only abort (or commit -> error) */

	char *metadata; /* owned; "{}" until set */
	size_t metadata_len;

	struct mfs_warray *arrays; /* owned, array_cap entries */
	size_t array_count;
	size_t array_cap;

	/* Open-addressed set of array indices + 1 (0 = empty), by name. */
	uint32_t *name_slots;
	size_t slot_count; /* power of two */

	uint64_t data_end;    /* end of the last array's stored bytes */
	uint64_t entries_len; /* index bytes the array entries take */

	/* One buffer pair reused by every chunk of every array. */
	uint8_t *raw_buf; /* buf_chunk_size bytes */
	char *enc_buf;    /* mfs_codec_bound_max(buf_chunk_size) bytes */
	uint32_t buf_chunk_size;

	/* Threads that encode chunks of compressed arrays; 1 = serially. */
	unsigned encode_threads;
	/* File offset up to which writeback has been started. */
	uint64_t writeback_start;
	/* Commit fsyncs file and directory (mfs_writer_set_durable). */
	bool durable;
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */
/* ------------------------------------------------------------------ */

static uint64_t mfs_align8(uint64_t v)
{
	/* Callers bound v far below UINT64_MAX, so this cannot overflow. */
	return (v + MFS_INDEX_ALIGN - 1) & ~(uint64_t)(MFS_INDEX_ALIGN - 1);
}

/* True if all @len bytes of @p are zero (memcmp against itself shifted). */
static bool mfs_all_zero(const uint8_t *p, size_t len)
{
	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

/* Where the next array starts: the first page boundary after the last. */
static uint64_t mfs_next_data_offset(const mfs_writer *w)
{
	/* data_end <= MFS_MAX_FILE_OFFSET (checked per array): no overflow. */
	return (w->data_end + MFS_PAGE_SIZE - 1) &
	       ~(uint64_t)(MFS_PAGE_SIZE - 1);
}

/* Bytes the index entry of an array takes (FORMAT.md "Array entry"). */
static uint64_t mfs_entry_len(uint32_t ndim, size_t name_len,
			      uint64_t chunk_count)
{
	return MFS_ENT_FIXED_SIZE + (uint64_t)ndim * sizeof(uint64_t) +
	       mfs_align8(name_len) + chunk_count * MFS_CHK_SIZE;
}

/* Fails with @rc, prefixing the thread's last message with the writer path
 * (the message is copied first: mfs_fail formats into the same buffer). */
static int mfs_fail_wrapped(int rc, const char *path)
{
	char inner[MFS_INNER_MSG_MAX];

	snprintf(inner, sizeof(inner), "%s", mfs_last_error());
	return mfs_fail(rc, "writer '%s': %s", path, inner);
}

/* 0 if @w can take more work, else -EINVAL (NULL or poisoned writer). */
static int mfs_writer_usable(const mfs_writer *w, const char *fn)
{
	if (!w)
		return mfs_fail(-EINVAL, "%s: NULL writer", fn);
	if (w->failed)
		return mfs_fail(-EINVAL,
				"writer '%s': an earlier add failed; the writer "
				"can only be aborted",
				w->path);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Create                                                               */
/* ------------------------------------------------------------------ */

/*
 * Splits @path into a malloc'd directory (*@dir) and basename (*@base).
 * Returns 0, -EINVAL for a path without a file name, -ENAMETOOLONG, or
 * -ENOMEM.
 */
static int mfs_split_path(const char *path, char **dir, char **base)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	size_t dir_len = slash ? (size_t)(slash - path) : 0;
	char *d, *b;

	if (*name == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return mfs_fail(-EINVAL,
				"writer '%s': path does not end in a file name",
				path);
	/* The temporary name "." + name + suffix must fit in one entry. */
	if (strlen(name) + 1 + strlen(MFS_TMP_SUFFIX) > NAME_MAX)
		return mfs_fail(-ENAMETOOLONG,
				"writer '%s': file name is %zu bytes; with the "
				"temporary prefix and suffix it must fit in "
				"NAME_MAX (%d)",
				path, strlen(name), NAME_MAX);
	/* Worst case "./" + "." + path + suffix + NUL.  The bound comes
	 * before the (cut) path so a long path cannot push it out. */
	if (strlen(path) + strlen(MFS_TMP_SUFFIX) + 4 > PATH_MAX)
		return mfs_fail(-ENAMETOOLONG,
				"writer: path of %zu bytes is too long: the "
				"temporary path must be shorter than PATH_MAX "
				"(%d): '%.*s...'",
				strlen(path), PATH_MAX, MFS_PATH_SHOWN, path);
	if (!slash)
		d = strdup(".");
	else if (dir_len == 0)
		d = strdup("/");
	else
		d = strndup(path, dir_len);
	b = strdup(name);
	if (!d || !b) {
		free(d);
		free(b);
		return mfs_fail(-ENOMEM, "writer '%s': out of memory", path);
	}
	*dir = d;
	*base = b;
	return 0;
}

/*
 * One attempt at the temporary file "<dir>/.<final_name>.tmp.XXXXXX"
 * (template @tmpl, rewritten by mkostemp): created, locked, given its
 * mode.  Returns 0 (w->fd, w->tmp_name set), 1 (a gc removed it before it
 * was locked: try again, nothing is left behind) or a negative errno.
 */
static int mfs_create_tmp_once(mfs_writer *w, char *tmpl, size_t len,
			       const char *dir, mode_t mode)
{
	int rc;

	snprintf(tmpl, len, "%s/.%s" MFS_TMP_SUFFIX, dir, w->final_name);
	w->fd = mkostemp(tmpl, O_CLOEXEC);
	if (w->fd < 0)
		return mfs_fail(-errno,
				"writer '%s': creating temporary file '%s': %s",
				w->path, tmpl, strerror(errno));
	rc = mfs_staging_lock(w->fd);
	if (rc != 0) {
		close(w->fd);
		w->fd = -1;
		if (rc == 1)
			return 1;
		unlink(tmpl);
		return mfs_fail(rc, "writer '%s': locking temporary file "
				"'%s': %s", w->path, tmpl, strerror(-rc));
	}
	w->tmp_name = strdup(strrchr(tmpl, '/') + 1);
	if (!w->tmp_name) {
		unlink(tmpl);
		return mfs_fail(-ENOMEM, "writer '%s': out of memory", w->path);
	}
	/* mkostemp gives 0600; a published model gets ordinary permissions. */
	if (fchmod(w->fd, mode) < 0)
		return mfs_fail(-errno, "writer '%s': fchmod of '%s' to %04o: %s",
				w->path, tmpl, (unsigned)mode, strerror(errno));
	return 0;
}

/*
 * Creates the temporary file in @dir; fills w->fd and w->tmp_name.  The
 * file stays flock'ed until mfs_writer_free closes it (after the rename
 * or the unlink), so a concurrent mfs_store_gc never removes it.
 */
static int mfs_create_tmp(mfs_writer *w, const char *dir)
{
	size_t len = strlen(dir) + strlen(w->final_name) +
		     strlen(MFS_TMP_SUFFIX) + 3; /* '/', '.', NUL */
	char *tmpl = malloc(len);
	mode_t mode = MFS_FILE_MODE & ~mfs_umask();
	int rc = 1;

	if (!tmpl)
		return mfs_fail(-ENOMEM, "writer '%s': out of memory", w->path);
	for (int i = 0; rc == 1 && i < MFS_TMP_ATTEMPTS; i++)
		rc = mfs_create_tmp_once(w, tmpl, len, dir, mode);
	if (rc == 1)
		rc = mfs_fail(-EAGAIN, "writer '%s': %d temporary files in '%s' "
			      "were removed by a concurrent gc before they "
			      "could be locked", w->path, MFS_TMP_ATTEMPTS,
			      dir);
	free(tmpl);
	return rc;
}

/* CPUs this thread may run on (at least 1). */
static unsigned mfs_usable_cpus(void)
{
	cpu_set_t set;
	long online = sysconf(_SC_NPROCESSORS_ONLN);

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	return online > 0 ? (unsigned)online : 1u;
}

/*
 * Encoding threads of a new writer: MODELFS_WRITER_THREADS if it is a
 * number >= 1 (capped; 1 is the serial writer), else the usable CPUs,
 * capped.  A malformed value is ignored rather than failing a write.
 */
static unsigned mfs_encode_thread_count(void)
{
	const char *v = getenv(MFS_ENV_WRITER_THREADS);
	unsigned n = mfs_usable_cpus();
	char *end;

	if (v && *v) {
		unsigned long forced;

		errno = 0;
		forced = strtoul(v, &end, MFS_DECIMAL);
		if (errno == 0 && *end == '\0' && forced >= 1 &&
		    isdigit((unsigned char)v[0]))
			n = forced > MFS_MAX_ENCODE_THREADS
				    ? MFS_MAX_ENCODE_THREADS
				    : (unsigned)forced;
	}
	return n > MFS_MAX_ENCODE_THREADS ? MFS_MAX_ENCODE_THREADS : n;
}

/* Releases everything @w owns; removes the temporary file if @unlink_tmp. */
static void mfs_writer_free(mfs_writer *w, bool unlink_tmp)
{
	if (w->fd >= 0)
		close(w->fd);
	if (unlink_tmp && w->tmp_name && w->dirfd >= 0)
		unlinkat(w->dirfd, w->tmp_name, 0);
	if (w->dirfd >= 0)
		close(w->dirfd);
	for (size_t i = 0; i < w->array_count; i++) {
		free(w->arrays[i].name);
		free(w->arrays[i].shape);
		free(w->arrays[i].chunks);
	}
	free(w->arrays);
	free(w->name_slots);
	free(w->raw_buf);
	free(w->enc_buf);
	free(w->metadata);
	free(w->tmp_name);
	free(w->final_name);
	free(w->path);
	free(w);
}

int mfs_writer_create(mfs_writer **out, const char *path)
{
	mfs_writer *w;
	char *dir = NULL;
	int rc;

	mfs_clear_error();
	if (!out)
		return mfs_fail(-EINVAL, "mfs_writer_create: NULL argument");
	*out = NULL;
	if (!path)
		return mfs_fail(-EINVAL, "mfs_writer_create: NULL path");
	w = calloc(1, sizeof(*w));
	if (!w)
		return mfs_fail(-ENOMEM, "writer '%s': out of memory", path);
	w->fd = -1;
	w->dirfd = -1;
	w->data_end = MFS_DATA_START;
	w->encode_threads = mfs_encode_thread_count();
	w->durable = true;
	w->path = strdup(path);
	w->metadata = strdup(MFS_EMPTY_METADATA);
	w->metadata_len = strlen(MFS_EMPTY_METADATA);
	if (!w->path || !w->metadata) {
		rc = mfs_fail(-ENOMEM, "writer '%s': out of memory", path);
		goto fail;
	}
	rc = mfs_split_path(path, &dir, &w->final_name);
	if (rc < 0)
		goto fail;
	w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dirfd < 0) {
		rc = mfs_fail(-errno, "writer '%s': opening directory '%s': %s",
			      path, dir, strerror(errno));
		goto fail;
	}
	rc = mfs_create_tmp(w, dir);
	if (rc < 0)
		goto fail;
	free(dir);
	*out = w;
	return 0;

fail:
	free(dir);
	mfs_writer_free(w, true);
	return rc;
}

void mfs_writer_set_durable(mfs_writer *w, bool durable)
{
	w->durable = durable;
}

void mfs_writer_abort(mfs_writer *w)
{
	if (w)
		mfs_writer_free(w, true);
}

/* ------------------------------------------------------------------ */
/* Metadata                                                             */
/* ------------------------------------------------------------------ */

int mfs_writer_set_metadata(mfs_writer *w, const char *json, size_t len)
{
	char *copy;
	int rc;

	mfs_clear_error();
	rc = mfs_writer_usable(w, "mfs_writer_set_metadata");
	if (rc < 0)
		return rc;
	if (!json && len > 0)
		return mfs_fail(-EINVAL, "writer '%s': NULL metadata of %zu "
				"bytes",
				w->path, len);
	rc = mfs_check_metadata(json ? json : "", len);
	if (rc < 0)
		return mfs_fail_wrapped(rc, w->path);
	/* A NUL after the copy keeps it usable as a C string in messages. */
	copy = malloc(len + 1);
	if (!copy)
		return mfs_fail(-ENOMEM, "writer '%s': out of memory", w->path);
	if (len > 0)
		memcpy(copy, json, len);
	copy[len] = '\0';
	free(w->metadata);
	w->metadata = copy;
	w->metadata_len = len;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Spec validation                                                      */
/* ------------------------------------------------------------------ */

/* Slot of @name in the name set: its array's slot, or the empty one. */
static size_t mfs_name_slot(const mfs_writer *w, const char *name,
			    size_t name_len)
{
	size_t mask = w->slot_count - 1;
	size_t i = (size_t)mfs_checksum(name, name_len) & mask;

	while (w->name_slots[i] != 0 &&
	       strcmp(w->arrays[w->name_slots[i] - 1].name, name) != 0)
		i = (i + 1) & mask;
	return i;
}

static bool mfs_name_taken(const mfs_writer *w, const char *name)
{
	if (w->slot_count == 0)
		return false;
	return w->name_slots[mfs_name_slot(w, name, strlen(name))] != 0;
}

/* Doubles the name set (or creates it) and re-inserts every array. */
static int mfs_grow_name_slots(mfs_writer *w)
{
	size_t count = w->slot_count ? w->slot_count * 2 : MFS_INITIAL_ARRAYS;
	uint32_t *slots = calloc(count, sizeof(*slots));

	if (!slots)
		return mfs_fail(-ENOMEM, "writer '%s': out of memory", w->path);
	free(w->name_slots);
	w->name_slots = slots;
	w->slot_count = count;
	for (size_t a = 0; a < w->array_count; a++) {
		const struct mfs_warray *arr = &w->arrays[a];
		w->name_slots[mfs_name_slot(w, arr->name, arr->name_len)] =
			(uint32_t)(a + 1);
	}
	return 0;
}

/*
 * Checks @spec against FORMAT.md and the writer's state; on success sets
 * *@raw_length and *@chunk_size (0 resolved to the default).
 *
 * Every bad spec is -EINVAL, including a raw length that overflows
 * uint64_t, an array that would run past the largest file offset, and a
 * chunk table that would push the index over MFS_MAX_INDEX_LENGTH: the
 * public contract names -EINVAL for "bad spec", so callers need not tell
 * overflow apart from other spec errors.  Duplicates are -EEXIST and one
 * array too many is -E2BIG.
 */
static int mfs_check_spec(const mfs_writer *w, const mfs_array_spec *spec,
			  uint64_t *raw_length, uint32_t *chunk_size)
{
	const char *name = spec->name;
	uint64_t chunks, entry, end, offset;
	uint32_t cs = spec->chunk_size ? spec->chunk_size
				       : MFS_DEFAULT_CHUNK_SIZE;
	int rc = mfs_check_array_name(name);

	if (rc < 0)
		return mfs_fail_wrapped(rc, w->path);
	if (mfs_name_taken(w, name))
		return mfs_fail(-EEXIST, "writer '%s': array '%s' already added",
				w->path, name);
	if (w->array_count >= MFS_MAX_ARRAYS)
		return mfs_fail(-E2BIG,
				"writer '%s': array '%s' would be array %zu; a "
				"container holds at most %u",
				w->path, name, w->array_count + 1,
				MFS_MAX_ARRAYS);
	if (mfs_dtype_size(spec->dtype) == 0)
		return mfs_fail(-EINVAL, "writer '%s': array '%s': dtype %d is "
				"not one of 1..%d",
				w->path, name, (int)spec->dtype,
				MFS_DTYPE_COUNT - 1);
	if (spec->ndim > MFS_MAX_NDIM)
		return mfs_fail(-EINVAL, "writer '%s': array '%s': ndim %u is "
				"more than %u",
				w->path, name, spec->ndim, MFS_MAX_NDIM);
	if (spec->order != MFS_ORDER_C && spec->order != MFS_ORDER_F)
		return mfs_fail(-EINVAL, "writer '%s': array '%s': order %d is "
				"neither C (0) nor Fortran (1)",
				w->path, name, (int)spec->order);
	if (!mfs_codec_name(spec->codec))
		return mfs_fail(-EINVAL, "writer '%s': array '%s': codec %d is "
				"neither none (0) nor lz4 (1)",
				w->path, name, (int)spec->codec);
	if (!mfs_chunk_size_ok(cs))
		return mfs_fail(-EINVAL, "writer '%s': array '%s': chunk_size "
				"%u is not a power of two in %u..%u",
				w->path, name, cs, MFS_MIN_CHUNK_SIZE,
				MFS_MAX_CHUNK_SIZE);
	if (!mfs_shape_bytes(spec->dtype, spec->ndim, spec->shape, raw_length))
		return mfs_fail(-EINVAL, "writer '%s': array '%s': shape x "
				"itemsize overflows 64 bits (raw_length bound "
				"%llu)",
				w->path, name, (unsigned long long)UINT64_MAX);
	/* Stored bytes never exceed raw bytes, so raw_length bounds the end. */
	offset = mfs_next_data_offset(w);
	if (__builtin_add_overflow(offset, *raw_length, &end) ||
	    end > MFS_MAX_FILE_OFFSET)
		return mfs_fail(-EINVAL, "writer '%s': array '%s': raw_length "
				"%llu at offset %llu would end past the largest "
				"file offset %llu",
				w->path, name, (unsigned long long)*raw_length,
				(unsigned long long)offset,
				(unsigned long long)MFS_MAX_FILE_OFFSET);
	/* Reserve room for the largest metadata, so set_metadata never fails
	 * on the index bound and commit never has to. */
	chunks = mfs_chunk_count(*raw_length, cs);
	entry = mfs_entry_len(spec->ndim, strlen(name), chunks);
	if (chunks > MFS_MAX_INDEX_LENGTH / MFS_CHK_SIZE ||
	    MFS_IDX_PREAMBLE_SIZE + mfs_align8(MFS_MAX_METADATA) +
			    w->entries_len + entry >
		    MFS_MAX_INDEX_LENGTH)
		return mfs_fail(-EINVAL, "writer '%s': array '%s': %llu chunks "
				"of %u bytes would make the index larger than "
				"%llu bytes",
				w->path, name, (unsigned long long)chunks, cs,
				(unsigned long long)MFS_MAX_INDEX_LENGTH);
	*chunk_size = cs;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Streaming                                                            */
/* ------------------------------------------------------------------ */

/* Makes the buffer pair hold chunks of @chunk_size; grows only. */
static int mfs_reserve_buffers(mfs_writer *w, uint32_t chunk_size)
{
	uint8_t *raw;
	char *enc;

	if (chunk_size <= w->buf_chunk_size)
		return 0;
	raw = malloc(chunk_size);
	enc = malloc(mfs_codec_bound_max(chunk_size));
	if (!raw || !enc) {
		free(raw);
		free(enc);
		return mfs_fail(-ENOMEM, "writer '%s': out of memory for "
				"chunk buffers of %u bytes",
				w->path, chunk_size);
	}
	free(w->raw_buf);
	free(w->enc_buf);
	w->raw_buf = raw;
	w->enc_buf = enc;
	w->buf_chunk_size = chunk_size;
	return 0;
}

/* Makes room in the arrays vector for one more entry. */
static int mfs_reserve_array(mfs_writer *w)
{
	size_t cap = w->array_cap ? w->array_cap * 2 : MFS_INITIAL_ARRAYS;
	struct mfs_warray *arrays;

	if (w->array_count < w->array_cap)
		return 0;
	arrays = realloc(w->arrays, cap * sizeof(*arrays));
	if (!arrays)
		return mfs_fail(-ENOMEM, "writer '%s': out of memory", w->path);
	w->arrays = arrays;
	w->array_cap = cap;
	return 0;
}

/* Appends one chunk record to @arr, growing its table geometrically. */
static int mfs_push_chunk(const mfs_writer *w, struct mfs_warray *arr,
			  uint32_t stored_length, uint64_t checksum)
{
	if (arr->chunk_count == arr->chunk_cap) {
		uint64_t cap = arr->chunk_cap ? arr->chunk_cap * 2
					      : MFS_INITIAL_CHUNKS;
		struct mfs_wchunk *c = realloc(arr->chunks, cap * sizeof(*c));
		if (!c)
			return mfs_fail(-ENOMEM, "writer '%s': array '%s': out "
					"of memory for the chunk table",
					w->path, arr->name);
		arr->chunks = c;
		arr->chunk_cap = cap;
	}
	arr->chunks[arr->chunk_count].stored_length = stored_length;
	arr->chunks[arr->chunk_count].checksum = checksum;
	arr->chunk_count++;
	return 0;
}

/* Fails for a source that gave out after @at bytes of @arr: with @rc
 * (a negative errno) if it failed, or -EINVAL if it ended (@rc 0). */
static int mfs_source_short(const mfs_writer *w, const struct mfs_warray *arr,
			    uint64_t at, int rc)
{
	if (rc < 0)
		return mfs_fail(rc, "writer '%s': array '%s': source failed at "
				"byte %llu: %s",
				w->path, arr->name, (unsigned long long)at,
				strerror(-rc));
	return mfs_fail(-EINVAL, "writer '%s': array '%s': source ended after "
			"%llu of %llu bytes",
			w->path, arr->name, (unsigned long long)at,
			(unsigned long long)arr->raw_length);
}

/*
 * Fills @buf with @want bytes from @src.  @done is the array offset of
 * the chunk (for messages).  Returns 0, -EINVAL for a source that ends
 * early or overfills, or the source's negative errno.
 */
static int mfs_fill_chunk(const mfs_writer *w, const struct mfs_warray *arr,
			  uint8_t *buf, size_t want, uint64_t done,
			  mfs_source_fn src, void *ctx)
{
	size_t got = 0;

	while (got < want) {
		ssize_t n = src(ctx, buf + got, want - got);
		if (n < -MFS_MAX_ERRNO)
			return mfs_fail(-EIO, "writer '%s': array '%s': source "
					"returned %zd, not a negative errno",
					w->path, arr->name, n);
		if (n <= 0)
			return mfs_source_short(w, arr, done + got, (int)n);
		if ((size_t)n > want - got)
			return mfs_fail(-EINVAL, "writer '%s': array '%s': "
					"source returned %zd bytes when asked "
					"for at most %zu",
					w->path, arr->name, n, want - got);
		got += (size_t)n;
	}
	return 0;
}

/*
 * Starts writeback of what was written up to @end once a step's worth
 * has gathered.  Only a hint: a failure is ignored, because the commit's
 * fsync writes everything anyway and reports any error.
 */
static void mfs_start_writeback(mfs_writer *w, uint64_t end)
{
	if (end - w->writeback_start < MFS_WRITEBACK_STEP)
		return;
	sync_file_range(w->fd, (off64_t)w->writeback_start,
			(off64_t)(end - w->writeback_start),
			SYNC_FILE_RANGE_WRITE);
	w->writeback_start = end;
}

/* Writes the encoded chunk @enc after the stored bytes of @arr so far
 * and records it in @arr. */
static int mfs_emit_chunk(mfs_writer *w, struct mfs_warray *arr,
			  const struct mfs_encoded *enc)
{
	uint64_t file_offset = arr->data_offset + arr->stored_length;
	int rc = mfs_pwrite_full(w->fd, enc->stored, enc->stored_length,
				 file_offset);

	if (rc < 0)
		return mfs_fail(rc, "writer '%s': array '%s': writing %u bytes "
				"at offset %llu of '%s': %s",
				w->path, arr->name, enc->stored_length,
				(unsigned long long)file_offset, w->tmp_name,
				strerror(-rc));
	mfs_start_writeback(w, file_offset + enc->stored_length);
	rc = mfs_push_chunk(w, arr, enc->stored_length, enc->checksum);
	if (rc < 0)
		return rc;
	arr->stored_length += enc->stored_length;
	return 0;
}

/*
 * Encodes the @len raw bytes in w->raw_buf as FORMAT.md says, writes them
 * after the array's stored bytes so far and records the chunk in @arr.
 */
static int mfs_store_chunk(mfs_writer *w, struct mfs_warray *arr,
			   uint32_t len)
{
	const struct mfs_codec_ops *ops = mfs_codec_ops(arr->codec);
	struct mfs_encoded enc;
	int rc;

	if (!ops->encode && mfs_all_zero(w->raw_buf, len)) {
		/* A hole reads back as zeros and costs no disk. */
		rc = mfs_push_chunk(w, arr, len,
				    mfs_checksum(w->raw_buf, len));
		if (rc == 0)
			arr->stored_length += len;
		return rc;
	}
	mfs_encode_chunk(ops, w->raw_buf, len, w->enc_buf, &enc);
	return mfs_emit_chunk(w, arr, &enc);
}

/* Raw bytes of the chunk of @arr that starts at raw offset @done. */
static uint32_t mfs_chunk_len(const struct mfs_warray *arr, uint64_t done)
{
	uint64_t left = arr->raw_length - done;

	return left < arr->chunk_size ? (uint32_t)left : arr->chunk_size;
}

/* Streams every chunk of @arr from @src, encoding in this thread. */
static int mfs_stream_serial(mfs_writer *w, struct mfs_warray *arr,
			     mfs_source_fn src, void *ctx)
{
	uint64_t done = 0;
	int rc;

	while (done < arr->raw_length) {
		uint32_t len = mfs_chunk_len(arr, done);

		rc = mfs_fill_chunk(w, arr, w->raw_buf, len, done, src, ctx);
		if (rc < 0)
			return rc;
		rc = mfs_store_chunk(w, arr, len);
		if (rc < 0)
			return rc;
		done += len;
	}
	return 0;
}

/*
 * Chunk slots for encoding @arr in a pool of w->encode_threads threads,
 * or 0 when serial encoding is the way: one thread, a codec that does
 * not encode, a single chunk, or chunks too large to hold two in flight.
 */
static unsigned mfs_pool_slots(const mfs_writer *w,
			       const struct mfs_warray *arr)
{
	uint64_t chunks = (arr->raw_length + arr->chunk_size - 1) /
			  arr->chunk_size;
	uint64_t slots = (uint64_t)w->encode_threads * MFS_SLOTS_PER_THREAD;

	if (w->encode_threads < 2 || !mfs_codec_ops(arr->codec)->encode)
		return 0;
	if (slots > chunks)
		slots = chunks;
	if (slots > MFS_POOL_MAX_INFLIGHT / arr->chunk_size)
		slots = MFS_POOL_MAX_INFLIGHT / arr->chunk_size;
	return slots < 2 ? 0 : (unsigned)slots;
}

/* The descriptor source's read, which the pool's workers can do
 * themselves (defined with the other sources below). */
static ssize_t mfs_fd_read(void *ctx, void *buf, size_t len);

struct mfs_fd_source {
	int fd;
	uint64_t off;
};

/*
 * Hands the next chunk (@len raw bytes at array offset @done) to @pool:
 * read here from @src into @buf, or by a worker when @src is a
 * descriptor.
 */
static int mfs_pool_feed(const mfs_writer *w, const struct mfs_warray *arr,
			 struct mfs_encode_pool *pool, uint8_t *buf,
			 uint64_t done, mfs_source_fn src, void *ctx)
{
	uint32_t len = mfs_chunk_len(arr, done);
	int rc;

	if (src == mfs_fd_read) {
		const struct mfs_fd_source *fds = ctx;

		mfs_encode_pool_submit_fd(pool, len, fds->fd, fds->off + done);
		return 0;
	}
	rc = mfs_fill_chunk(w, arr, buf, len, done, src, ctx);
	if (rc == 0)
		mfs_encode_pool_submit(pool, len);
	return rc;
}

/*
 * Streams @arr through @pool: chunks go into free slots in order and
 * this thread writes the encoded ones strictly in chunk order, so the
 * file is the serial writer's byte for byte.
 */
static int mfs_stream_pooled(mfs_writer *w, struct mfs_warray *arr,
			     struct mfs_encode_pool *pool, mfs_source_fn src,
			     void *ctx)
{
	struct mfs_encoded enc;
	uint64_t done = 0, written = 0;
	uint8_t *buf;
	int rc;

	for (;;) {
		buf = done < arr->raw_length ? mfs_encode_pool_next(pool)
					     : NULL;
		if (buf) {
			rc = mfs_pool_feed(w, arr, pool, buf, done, src, ctx);
			if (rc < 0)
				return rc;
			done += mfs_chunk_len(arr, done);
			continue;
		}
		if (!mfs_encode_pool_oldest(pool, &enc))
			return 0;
		if (enc.raw_got < mfs_chunk_len(arr, written))
			return mfs_source_short(w, arr, written + enc.raw_got,
						-enc.read_errno);
		written += mfs_chunk_len(arr, written);
		rc = mfs_emit_chunk(w, arr, &enc);
		if (rc < 0)
			return rc;
		mfs_encode_pool_release(pool);
	}
}

/* Streams every chunk of @arr from @src into the file, encoding on
 * several threads when that pays (mfs_pool_slots). */
static int mfs_stream_array(mfs_writer *w, struct mfs_warray *arr,
			    mfs_source_fn src, void *ctx)
{
	unsigned slots = mfs_pool_slots(w, arr);
	unsigned threads = w->encode_threads < slots ? w->encode_threads
						     : slots;
	struct mfs_encode_pool *pool = NULL;
	int rc;

	if (slots == 0)
		return mfs_stream_serial(w, arr, src, ctx);
	rc = mfs_encode_pool_create(&pool, mfs_codec_ops(arr->codec), threads,
				    slots, arr->chunk_size);
	if (rc < 0)
		return mfs_fail(rc, "writer '%s': array '%s': out of memory "
				"for %u encoding slots of %u bytes",
				w->path, arr->name, slots, arr->chunk_size);
	if (rc == 1)
		return mfs_stream_serial(w, arr, src, ctx);
	rc = mfs_stream_pooled(w, arr, pool, src, ctx);
	/* Joins the workers on every path, before the writer goes on. */
	mfs_encode_pool_destroy(pool);
	return rc;
}

/* Fills a new array record from a checked spec; allocates name, shape. */
static int mfs_init_array(const mfs_writer *w, struct mfs_warray *arr,
			  const mfs_array_spec *spec, uint64_t raw_length,
			  uint32_t chunk_size)
{
	memset(arr, 0, sizeof(*arr));
	arr->name = strdup(spec->name);
	if (spec->ndim > 0)
		arr->shape = malloc(spec->ndim * sizeof(uint64_t));
	if (!arr->name || (spec->ndim > 0 && !arr->shape)) {
		free(arr->name);
		free(arr->shape);
		return mfs_fail(-ENOMEM, "writer '%s': out of memory", w->path);
	}
	if (spec->ndim > 0)
		memcpy(arr->shape, spec->shape, spec->ndim * sizeof(uint64_t));
	arr->name_len = strlen(spec->name);
	arr->dtype = spec->dtype;
	arr->ndim = spec->ndim;
	arr->order = spec->order;
	arr->codec = spec->codec;
	arr->chunk_size = chunk_size;
	arr->raw_length = raw_length;
	arr->data_offset = mfs_next_data_offset(w);
	return 0;
}

/*
 * The body of every add: checks the spec, and for a source of known
 * length (@want_len non-NULL) that it matches raw_length, before reading.
 * The caller poisons @w on failure.
 */
static int mfs_add_array(mfs_writer *w, const mfs_array_spec *spec,
			 mfs_source_fn src, void *ctx, const uint64_t *want_len)
{
	struct mfs_warray *arr;
	uint64_t raw_length = 0;
	uint32_t chunk_size = 0;
	int rc;

	rc = mfs_check_spec(w, spec, &raw_length, &chunk_size);
	if (rc < 0)
		return rc;
	if (want_len && *want_len != raw_length)
		return mfs_fail(-EINVAL, "writer '%s': array '%s': buffer is "
				"%llu bytes but raw_length is %llu",
				w->path, spec->name,
				(unsigned long long)*want_len,
				(unsigned long long)raw_length);
	rc = mfs_reserve_array(w);
	if (rc < 0)
		return rc;
	if ((w->array_count + 1) * MFS_HASH_LOAD_DEN > w->slot_count) {
		rc = mfs_grow_name_slots(w);
		if (rc < 0)
			return rc;
	}
	rc = mfs_reserve_buffers(w, chunk_size);
	if (rc < 0)
		return rc;
	arr = &w->arrays[w->array_count];
	rc = mfs_init_array(w, arr, spec, raw_length, chunk_size);
	if (rc < 0)
		return rc;
	/* Counted now so that mfs_writer_free releases it on any failure. */
	w->array_count++;
	rc = mfs_stream_array(w, arr, src, ctx);
	if (rc < 0)
		return rc;
	w->name_slots[mfs_name_slot(w, arr->name, arr->name_len)] =
		(uint32_t)w->array_count;
	w->data_end = arr->data_offset + arr->stored_length;
	w->entries_len += mfs_entry_len(arr->ndim, arr->name_len,
					arr->chunk_count);
	return 0;
}

int mfs_writer_add_array(mfs_writer *w, const mfs_array_spec *spec,
			 mfs_source_fn src, void *ctx)
{
	int rc;

	mfs_clear_error();
	rc = mfs_writer_usable(w, "mfs_writer_add_array");
	if (rc < 0)
		return rc;
	if (!spec || !src)
		rc = mfs_fail(-EINVAL, "writer '%s': NULL spec or source",
			      w->path);
	else
		rc = mfs_add_array(w, spec, src, ctx, NULL);
	if (rc < 0)
		w->failed = true;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Sources over a buffer and a descriptor                               */
/* ------------------------------------------------------------------ */

struct mfs_buffer_source {
	const uint8_t *data;
	size_t left;
};

static ssize_t mfs_buffer_read(void *ctx, void *buf, size_t len)
{
	struct mfs_buffer_source *s = ctx;
	size_t n = len < s->left ? len : s->left;

	if (n > 0)
		memcpy(buf, s->data, n);
	s->data += n;
	s->left -= n;
	return (ssize_t)n;
}

int mfs_writer_add_array_buffer(mfs_writer *w, const mfs_array_spec *spec,
				const void *data, size_t len)
{
	struct mfs_buffer_source s = {data, len};
	uint64_t want = len;
	int rc;

	mfs_clear_error();
	rc = mfs_writer_usable(w, "mfs_writer_add_array_buffer");
	if (rc < 0)
		return rc;
	if (!spec || (!data && len > 0))
		rc = mfs_fail(-EINVAL, "writer '%s': NULL spec or buffer",
			      w->path);
	else
		rc = mfs_add_array(w, spec, mfs_buffer_read, &s, &want);
	if (rc < 0)
		w->failed = true;
	return rc;
}

static ssize_t mfs_fd_read(void *ctx, void *buf, size_t len)
{
	struct mfs_fd_source *s = ctx;
	ssize_t n;

	do
		n = pread(s->fd, buf, len, (off_t)s->off);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	s->off += (uint64_t)n;
	return n;
}

int mfs_writer_add_array_fd(mfs_writer *w, const mfs_array_spec *spec, int fd,
			    off_t off)
{
	struct mfs_fd_source s = {fd, (uint64_t)off};
	int rc;

	mfs_clear_error();
	rc = mfs_writer_usable(w, "mfs_writer_add_array_fd");
	if (rc < 0)
		return rc;
	if (!spec || off < 0)
		rc = mfs_fail(-EINVAL, "writer '%s': NULL spec or negative "
			      "source offset %lld",
			      w->path, (long long)off);
	else
		rc = mfs_add_array(w, spec, mfs_fd_read, &s, NULL);
	if (rc < 0)
		w->failed = true;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Commit                                                               */
/* ------------------------------------------------------------------ */

/* Encodes the entry of @arr at @p; returns the bytes written. */
static uint64_t mfs_encode_entry(const struct mfs_warray *arr, uint8_t *p)
{
	uint8_t *q = p + MFS_ENT_SHAPE;
	uint64_t off = 0;

	mfs_put16(p + MFS_ENT_NAME_LENGTH, (uint16_t)arr->name_len);
	p[MFS_ENT_DTYPE] = (uint8_t)arr->dtype;
	p[MFS_ENT_ORDER] = (uint8_t)arr->order;
	p[MFS_ENT_CODEC] = (uint8_t)arr->codec;
	p[MFS_ENT_NDIM] = (uint8_t)arr->ndim;
	mfs_put32(p + MFS_ENT_CHUNK_SIZE, arr->chunk_size);
	mfs_put64(p + MFS_ENT_DATA_OFFSET, arr->data_offset);
	mfs_put64(p + MFS_ENT_RAW_LENGTH, arr->raw_length);
	mfs_put64(p + MFS_ENT_STORED_LENGTH, arr->stored_length);
	mfs_put64(p + MFS_ENT_CHUNK_COUNT, arr->chunk_count);
	for (uint32_t d = 0; d < arr->ndim; d++, q += sizeof(uint64_t))
		mfs_put64(q, arr->shape[d]);
	memcpy(q, arr->name, arr->name_len);
	q += mfs_align8(arr->name_len); /* padding is already zero */
	for (uint64_t c = 0; c < arr->chunk_count; c++, q += MFS_CHK_SIZE) {
		mfs_put64(q + MFS_CHK_OFFSET, off);
		mfs_put32(q + MFS_CHK_STORED_LENGTH,
			  arr->chunks[c].stored_length);
		mfs_put64(q + MFS_CHK_CHECKSUM, arr->chunks[c].checksum);
		off += arr->chunks[c].stored_length;
	}
	return (uint64_t)(q - p);
}

/* Builds the whole index in a zeroed malloc'd buffer of *@len bytes. */
static int mfs_build_index(const mfs_writer *w, uint8_t **out, uint64_t *len)
{
	uint64_t meta_end = MFS_IDX_PREAMBLE_SIZE + mfs_align8(w->metadata_len);
	uint8_t *idx, *p;

	*len = meta_end + w->entries_len;
	idx = calloc(1, *len);
	if (!idx)
		return mfs_fail(-ENOMEM, "writer '%s': out of memory for an "
				"index of %llu bytes",
				w->path, (unsigned long long)*len);
	mfs_put32(idx + MFS_IDX_METADATA_LENGTH, (uint32_t)w->metadata_len);
	mfs_put32(idx + MFS_IDX_ARRAY_COUNT, (uint32_t)w->array_count);
	memcpy(idx + MFS_IDX_PREAMBLE_SIZE, w->metadata, w->metadata_len);
	p = idx + meta_end;
	for (size_t a = 0; a < w->array_count; a++)
		p += mfs_encode_entry(&w->arrays[a], p);
	*out = idx;
	return 0;
}

static void mfs_build_header(const mfs_writer *w, uint8_t *h,
			     uint64_t index_offset, uint64_t index_len,
			     uint64_t index_checksum)
{
	memset(h, 0, MFS_HDR_SIZE);
	memcpy(h + MFS_HDR_MAGIC, MFS_MAGIC, MFS_MAGIC_LEN);
	mfs_put32(h + MFS_HDR_VERSION, MFS_FORMAT_VERSION);
	mfs_put64(h + MFS_HDR_FILE_SIZE, index_offset + index_len);
	mfs_put64(h + MFS_HDR_INDEX_OFFSET, index_offset);
	mfs_put64(h + MFS_HDR_INDEX_LENGTH, index_len);
	mfs_put64(h + MFS_HDR_INDEX_CHECKSUM, index_checksum);
	mfs_put32(h + MFS_HDR_ARRAY_COUNT, (uint32_t)w->array_count);
	mfs_put64(h + MFS_HDR_CHECKSUM, mfs_checksum(h, MFS_HDR_CHECKSUM));
}

/*
 * Writes index and header to the temporary file and makes it durable
 * (or, not durable, starts its writeback).
 * Holes left by zero chunks need no ftruncate: the index always follows
 * the last array and is never empty, so its write sets the file size.
 */
static int mfs_write_index_and_header(mfs_writer *w)
{
	uint8_t header[MFS_HDR_SIZE];
	uint64_t index_offset = mfs_align8(w->data_end);
	uint64_t index_len;
	uint8_t *index = NULL;
	int rc;

	rc = mfs_build_index(w, &index, &index_len);
	if (rc < 0)
		return rc;
	rc = mfs_pwrite_full(w->fd, index, index_len, index_offset);
	mfs_build_header(w, header, index_offset, index_len,
			 mfs_checksum(index, index_len));
	free(index);
	if (rc < 0)
		return mfs_fail(rc, "writer '%s': writing the index (%llu bytes "
				"at offset %llu) of '%s': %s",
				w->path, (unsigned long long)index_len,
				(unsigned long long)index_offset, w->tmp_name,
				strerror(-rc));
	rc = mfs_pwrite_full(w->fd, header, sizeof(header), 0);
	if (rc < 0)
		return mfs_fail(rc, "writer '%s': writing the header of '%s': %s",
				w->path, w->tmp_name, strerror(-rc));
	if (!w->durable) {
		/* Dirty pages cannot be dropped from the page cache: start
		 * writing the tail and the header now (a hint, as the steps
		 * while writing; 0 bytes means to the end of the file). */
		sync_file_range(w->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
		return 0;
	}
	if (fsync(w->fd) < 0)
		return mfs_fail(-errno, "writer '%s': fsync of '%s': %s",
				w->path, w->tmp_name, strerror(errno));
	return 0;
}

int mfs_writer_commit(mfs_writer *w)
{
	int rc;

	mfs_clear_error();
	if (!w)
		return mfs_fail(-EINVAL, "mfs_writer_commit: NULL writer");
	if (w->failed) {
		rc = mfs_fail(-EINVAL, "writer '%s': not committed: an earlier "
			      "add failed",
			      w->path);
		goto fail;
	}
	rc = mfs_write_index_and_header(w);
	if (rc < 0)
		goto fail;
	if (renameat(w->dirfd, w->tmp_name, w->dirfd, w->final_name) < 0) {
		rc = mfs_fail(-errno, "writer '%s': renaming '%s' onto it: %s",
			      w->path, w->tmp_name, strerror(errno));
		goto fail;
	}
	/*
	 * The container is published now; the directory fsync only makes
	 * the rename durable.  If it fails the new file stays (it is
	 * complete and valid) and the error is still returned, because the
	 * caller asked for a durable publish.
	 */
	if (w->durable && fsync(w->dirfd) < 0) {
		rc = mfs_fail(-errno, "writer '%s': published, but fsync of "
			      "its directory failed: %s",
			      w->path, strerror(errno));
		mfs_writer_free(w, false);
		return rc;
	}
	mfs_writer_free(w, false);
	return 0;

fail:
	mfs_writer_free(w, true);
	return rc;
}
