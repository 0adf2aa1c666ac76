/*
 * modelfs.h - the public interface of libmodelfs.
 *
 * libmodelfs writes, validates and reads modelfs containers (one model per
 * file: named n-dimensional arrays plus a JSON metadata document; see
 * FORMAT.md) and produces/parses NPY headers.
 *
 * Conventions for every function below:
 *  - Functions returning int return 0 (or a documented non-negative value)
 *    on success and a negative errno on failure.  -EBADMSG always means "the
 *    container (or .npy file) is malformed"; -EIO means a checksum mismatch
 *    or an I/O error.
 *  - After a failure, mfs_last_error() returns a message for the calling
 *    thread naming the file, the field and the violated bound.
 *  - Unless stated otherwise a function is thread-safe for distinct objects;
 *    read-only functions on one mfs_container may be called from several
 *    threads at once (the container is immutable once opened).
 */
#ifndef MODELFS_H
#define MODELFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MODELFS_VERSION_MAJOR 0
#define MODELFS_VERSION_MINOR 1
#define MODELFS_VERSION_PATCH 0
#define MODELFS_VERSION_STRING "0.1.0"

#if defined(__GNUC__)
#define MFS_API __attribute__((visibility("default")))
#else
#define MFS_API
#endif

/* ------------------------------------------------------------------ */
/* Limits (the validation bounds of FORMAT.md)                         */
/* ------------------------------------------------------------------ */

/** Page size arrays are aligned to in a container and in a .npy view. */
#define MFS_PAGE_SIZE 4096u
/** Size of the NPY header the mount serves: data starts at this offset. */
#define MFS_NPY_HEADER_SIZE 4096u
/** Most dimensions an array may have (NumPy's own limit). */
#define MFS_MAX_NDIM 32u
/** Longest array name in bytes; "<name>.npy" must fit in NAME_MAX. */
#define MFS_MAX_NAME_LEN 200u
/** Longest model key in bytes. */
#define MFS_MAX_KEY_LEN 128u
/** Most arrays in one container. */
#define MFS_MAX_ARRAYS 65536u
/** Largest metadata document in bytes. */
#define MFS_MAX_METADATA (16u << 20)
/** Chunk sizes are powers of two within these bounds. */
#define MFS_MIN_CHUNK_SIZE (4u << 10)
#define MFS_MAX_CHUNK_SIZE (64u << 20)
/** Default chunk size (see FORMAT.md, "Choosing the chunk size"). */
#define MFS_DEFAULT_CHUNK_SIZE (256u << 10)

/* ------------------------------------------------------------------ */
/* Version and errors                                                  */
/* ------------------------------------------------------------------ */

/** Returns the library version as "MAJOR.MINOR.PATCH" (static storage). */
MFS_API const char *mfs_version(void);

/**
 * Returns the message of the last failure on the calling thread, or "" if
 * none.  The string is thread-local and valid until the next libmodelfs
 * call on this thread.  It is one line of valid UTF-8: control characters
 * and invalid UTF-8 in the names it quotes are escaped as by mfs_escape
 * with MFS_ESCAPE_KEEP_BACKSLASH.
 */
MFS_API const char *mfs_last_error(void);

/* ------------------------------------------------------------------ */
/* The mount's protocol (lib/MOUNT.md)                                 */
/* ------------------------------------------------------------------ */

/*
 * Every name the daemon, the library and modelctl must agree on, once.
 * MOUNT.md says what each means; a mount test checks that /.status and
 * the extended attributes carry what it lists.
 */

/** A container in a store directory is named KEY MFS_CONTAINER_SUFFIX. */
#define MFS_CONTAINER_SUFFIX ".mfs"
/** An array is served as ARRAY MFS_NPY_SUFFIX in its model's directory. */
#define MFS_NPY_SUFFIX ".npy"
/** The files of a model directory beside its arrays. */
#define MFS_MANIFEST_FILE "manifest.json"
#define MFS_METADATA_FILE "metadata.json"
/** The daemon's state in the mount's root (hidden). */
#define MFS_STATUS_FILE ".status"
/** The index document of a store directory (MOUNT.md, "Store index"):
 *  its file name, its "format" and "version" values, and the
 *  subdirectory of content-named objects ("objects/KEY.HEX.mfs"), which
 *  the daemon does not serve from a local store (only the top level). */
#define MFS_INDEX_FILE "index.json"
#define MFS_INDEX_FORMAT "modelfs-index"
#define MFS_INDEX_VERSION 1
#define MFS_INDEX_OBJECTS_DIR "objects"
/** Suffix (after ".NAME") of a writer's temporary file; XXXXXX as for
 *  mkstemp.  Hidden names are never models. */
#define MFS_TMP_SUFFIX ".tmp.XXXXXX"

/** Extended attributes: of the root, */
#define MFS_XATTR_STORE_DIR "user.modelfs.store_dir"
/** of a model directory, */
#define MFS_XATTR_OPEN_HANDLES "user.modelfs.open_handles"
#define MFS_XATTR_HOLDERS "user.modelfs.holders"
/** of an array file. */
#define MFS_XATTR_DTYPE "user.modelfs.dtype"
#define MFS_XATTR_SHAPE "user.modelfs.shape"
#define MFS_XATTR_CODEC "user.modelfs.codec"

/** Client specs (mfs_store_client_spec, mfs_client_open). */
#define MFS_SPEC_MOUNT "mount:"
#define MFS_SPEC_DIR "dir:"
#define MFS_SPEC_INPROC "inproc:"

/** Keys of the /.status document (MOUNT.md, section 5). */
#define MFS_ST_PID "pid"
#define MFS_ST_SERVER_PID "server_pid"
#define MFS_ST_TAKEOVERS "takeovers"
#define MFS_ST_RESENT_REQUESTS "resent_requests"
#define MFS_ST_COMM "comm"
#define MFS_ST_HANDLES "handles"
#define MFS_ST_FILES "files"
#define MFS_ST_STATE "state"
#define MFS_ST_IN_STORE "in_store"
#define MFS_ST_OPEN_HANDLES "open_handles"
#define MFS_ST_DIR_HANDLES "dir_handles"
#define MFS_ST_LOOKUPS "lookups"
#define MFS_ST_HOLDERS "holders"
#define MFS_ST_PAGE_CACHE_BYTES "page_cache_bytes"
#define MFS_ST_PAGE_CACHE_EVICTIONS "page_cache_evictions"
#define MFS_ST_KEY "key"
#define MFS_ST_FILE "file"
#define MFS_ST_GENERATION "generation"
#define MFS_ST_INODE "inode"
#define MFS_ST_ARRAYS "arrays"
#define MFS_ST_RAW_SIZE "raw_size"
#define MFS_ST_STORED_SIZE "stored_size"
#define MFS_ST_FILE_SIZE "file_size"
#define MFS_ST_LEASE "lease"
#define MFS_ST_ERROR "error"
#define MFS_ST_PUBLISHED "published"
#define MFS_ST_WAITING_FOR_DESCRIPTORS "waiting_for_descriptors"
#define MFS_ST_RETRYING "retrying"
#define MFS_ST_CONTAINER_DESCRIPTORS "container_descriptors"
#define MFS_ST_RETIRED_MODELS "retired_models"
#define MFS_ST_STORE_CHANGES "store_changes"
#define MFS_ST_INOTIFY_EVENTS "inotify_events"
#define MFS_ST_INOTIFY_OVERFLOWS "inotify_overflows"
#define MFS_ST_NOTIFICATIONS "notifications"
#define MFS_ST_PAGE_CACHE_BUDGET "page_cache_budget"
#define MFS_ST_PAGE_CACHE_RELEASED_BYTES "page_cache_released_bytes"
#define MFS_ST_PAGE_CACHE_EVICTED_BYTES "page_cache_evicted_bytes"
#define MFS_ST_MODELS "models"
#define MFS_ST_BYTES_SERVED "bytes_served"
#define MFS_ST_CHUNKS_VERIFIED "chunks_verified"
#define MFS_ST_CHUNKS_DECODED "chunks_decoded"
#define MFS_ST_CHECKSUM_FAILURES "checksum_failures"
#define MFS_ST_READ_ERRORS "read_errors"
#define MFS_ST_CACHE_HITS "cache_hits"
#define MFS_ST_CACHE_MISSES "cache_misses"
#define MFS_ST_CACHE_EVICTIONS "cache_evictions"
#define MFS_ST_CACHE_BYTES "cache_bytes"
#define MFS_ST_CACHE_ENTRIES "cache_entries"
#define MFS_ST_CACHE_BUDGET "cache_budget"
#define MFS_ST_STORE_DIR "store_dir"
#define MFS_ST_VERSION "version"
#define MFS_ST_UPTIME_SECONDS "uptime_seconds"
#define MFS_ST_MOUNTPOINT "mountpoint"
#define MFS_ST_THREADS "threads"
#define MFS_ST_TOTALS "totals"
#define MFS_ST_SKIPPED "skipped"
/* A store served from an HTTP(S) origin: its fetches and cache
 * (MOUNT.md). */
#define MFS_ST_REMOTE "remote"

/* ------------------------------------------------------------------ */
/* Text for people and logs                                            */
/* ------------------------------------------------------------------ */

/**
 * mfs_escape flag: leave '\' as it is.  For a sink that receives text
 * some of whose parts are already escaped (a message that quotes another
 * message): escaping the whole of it again is then a no-op, so escapes
 * are never doubled.  Without it '\' becomes "\\" and the escaped text
 * can be read back unambiguously.
 */
#define MFS_ESCAPE_KEEP_BACKSLASH 0x1u
/** Most bytes one input byte can become: "\xNN". */
#define MFS_ESCAPE_MAX_EXPANSION 4u

/**
 * Escapes the @p len bytes at @p src (which may hold NUL bytes) into text
 * that is safe to print or log: valid UTF-8 with no control characters.
 * Newline, carriage return and tab become "\n", "\r" and "\t"; '\' becomes
 * "\\" (unless @p flags has MFS_ESCAPE_KEEP_BACKSLASH); every other C0
 * byte, DEL, each byte of a C1 control character (U+0080..U+009F) and
 * each byte that is not part of a valid UTF-8 sequence (overlong forms,
 * surrogates and code points above U+10FFFF are invalid) becomes "\xNN"
 * (lowercase hex).  Printable ASCII and valid multibyte UTF-8 are copied.
 *
 * @p dst receives at most @p size bytes including the terminating NUL; it
 * is always NUL-terminated when @p size > 0, and the text is cut only
 * between whole escapes or characters, so a truncated result is still
 * valid escaped text.  @p dst may be NULL when @p size is 0 (to measure).
 * @p src may be NULL when @p len is 0.  The buffers must not overlap.
 *
 * Returns the length of the whole escaped text, without the NUL, as
 * snprintf does: the output was truncated if the result is >= @p size.
 * The result is at most @p len * MFS_ESCAPE_MAX_EXPANSION.  Never fails,
 * allocates nothing and keeps no state: thread-safe, async-signal-safe.
 */
MFS_API size_t mfs_escape(char *dst, size_t size, const char *src, size_t len,
			  unsigned flags);

/* ------------------------------------------------------------------ */
/* Types                                                               */
/* ------------------------------------------------------------------ */

/** Element types.  Values are stored in the container: never renumber. */
typedef enum mfs_dtype {
	MFS_DTYPE_INVALID = 0,
	MFS_DTYPE_BOOL = 1,
	MFS_DTYPE_INT8 = 2,
	MFS_DTYPE_INT16 = 3,
	MFS_DTYPE_INT32 = 4,
	MFS_DTYPE_INT64 = 5,
	MFS_DTYPE_UINT8 = 6,
	MFS_DTYPE_UINT16 = 7,
	MFS_DTYPE_UINT32 = 8,
	MFS_DTYPE_UINT64 = 9,
	MFS_DTYPE_FLOAT16 = 10,
	MFS_DTYPE_BFLOAT16 = 11,
	MFS_DTYPE_FLOAT32 = 12,
	MFS_DTYPE_FLOAT64 = 13,
	MFS_DTYPE_COMPLEX64 = 14,
	MFS_DTYPE_COMPLEX128 = 15,
} mfs_dtype;
#define MFS_DTYPE_COUNT 16

/** Memory order of a multi-dimensional array. Stored: never renumber. */
typedef enum mfs_order { MFS_ORDER_C = 0, MFS_ORDER_F = 1 } mfs_order;

/** Chunk codec of an array. Stored: never renumber. */
typedef enum mfs_codec { MFS_CODEC_NONE = 0, MFS_CODEC_LZ4 = 1 } mfs_codec;

/** Size in bytes of one element, or 0 if @p dt is not a valid dtype. */
MFS_API size_t mfs_dtype_size(mfs_dtype dt);
/** Canonical name ("float32", "bfloat16", ...), or NULL if invalid. */
MFS_API const char *mfs_dtype_name(mfs_dtype dt);
/** Parses a canonical name. Returns 0, or -EINVAL for an unknown name. */
MFS_API int mfs_dtype_from_name(const char *name, mfs_dtype *out);
/** NPY descr string ("<f4", "|b1", ...; bfloat16 is "<u2"), or NULL. */
MFS_API const char *mfs_dtype_npy_descr(mfs_dtype dt);
/** "none" or "lz4", or NULL if invalid. */
MFS_API const char *mfs_codec_name(mfs_codec codec);

/**
 * Checks an array name: 1..MFS_MAX_NAME_LEN bytes of [A-Za-z0-9._-], not
 * starting with '.'.  Returns 0 or -EINVAL (message set).
 */
MFS_API int mfs_check_array_name(const char *name);
/**
 * Checks a model key: [A-Za-z0-9][A-Za-z0-9._-]{0,127}.
 * Returns 0 or -EINVAL (message set).
 */
MFS_API int mfs_check_key(const char *key);

/**
 * What a file of type @p mode (st_mode; only the S_IFMT bits count) is,
 * for messages: "regular file", "directory", "symbolic link", "FIFO",
 * "socket", "character device", "block device" or "file of unknown
 * type".  Static text; thread-safe.
 */
MFS_API const char *mfs_file_type_name(mode_t mode);

/** Flags of mfs_open_regular and mfs_container_open_at. */
enum {
	/** A symbolic link is refused, not followed (store entries: a
	 *  link could lead anywhere, even into a modelfs mount). */
	MFS_OPEN_NOFOLLOW = 1u << 0,
};

/**
 * Opens @p path (relative to directory @p dirfd, or AT_FDCWD) read-only
 * if it is a regular file, without blocking on a FIFO, acquiring a
 * terminal or keeping anything else open; a device is never read.
 * @p flags: MFS_OPEN_NOFOLLOW or 0.  @p label names the file in messages
 * (NULL: @p path).  Returns the descriptor (close-on-exec, blocking, the
 * caller owns it) or a negative errno with the message set: -EISDIR for
 * a directory, -EINVAL for anything else that is not a regular file
 * (the message names what it is; a link refused under MFS_OPEN_NOFOLLOW
 * too, never -ELOOP), else open's or fstat's errno.  Thread-safe.
 */
MFS_API int mfs_open_regular(int dirfd, const char *path, unsigned flags,
			     const char *label);

/**
 * Reads exactly @p len bytes at offset @p off of @p fd into @p buf
 * (caller-owned, at least @p len bytes), retrying on EINTR and short
 * reads.  Returns 0, -EIO if the file ends first, or pread's negative
 * errno; no message is set (the caller knows what the file is).
 * Thread-safe (pread does not move the file offset).
 */
MFS_API int mfs_pread_full(int fd, void *buf, size_t len, uint64_t off);

/**
 * Writes exactly @p len bytes of @p buf at offset @p off of @p fd,
 * retrying on EINTR and short writes (the twin of mfs_pread_full).
 * Returns 0 or pwrite's negative errno (-EIO for a write of 0 bytes).
 * Sets no message.  Thread-safe.
 */
MFS_API int mfs_pwrite_full(int fd, const void *buf, size_t len,
			    uint64_t off);

/**
 * Checks that @p json (@p len bytes, no NUL needed) is valid UTF-8 JSON
 * whose top level is an object, at most MFS_MAX_METADATA bytes.
 * Returns 0, or -EINVAL with a message giving line/column of the problem.
 */
MFS_API int mfs_check_metadata(const char *json, size_t len);

/** Description of an array to write. */
typedef struct mfs_array_spec {
	const char *name;             /**< checked by mfs_check_array_name */
	mfs_dtype dtype;
	uint32_t ndim;                /**< 0..MFS_MAX_NDIM (0 = scalar) */
	uint64_t shape[MFS_MAX_NDIM]; /**< first ndim entries used */
	mfs_order order;
	mfs_codec codec;
	uint32_t chunk_size; /**< 0 = MFS_DEFAULT_CHUNK_SIZE */
} mfs_array_spec;

/** Description of a stored array, as read back from a container. */
typedef struct mfs_array_info {
	const char *name; /**< owned by the container; valid until close */
	mfs_dtype dtype;
	uint32_t ndim;
	uint64_t shape[MFS_MAX_NDIM];
	mfs_order order;
	mfs_codec codec;
	uint32_t chunk_size;    /**< raw bytes per chunk (last may be short) */
	uint64_t chunk_count;   /**< ceil(raw_length / chunk_size) */
	uint64_t raw_length;    /**< product(shape) * itemsize */
	uint64_t stored_length; /**< bytes occupied in the file */
	uint64_t data_offset;   /**< file offset, multiple of MFS_PAGE_SIZE */
} mfs_array_info;

/** One chunk of a stored array. */
typedef struct mfs_chunk_info {
	uint64_t raw_offset;    /**< offset of the chunk in the raw array */
	uint32_t raw_length;    /**< decoded size (chunk_size, last shorter) */
	uint32_t stored_length; /**< bytes in the file; == raw_length: verbatim */
	uint64_t file_offset;   /**< absolute offset in the container file */
	uint64_t checksum;      /**< XXH3-64 of the stored bytes */
} mfs_chunk_info;

/* ------------------------------------------------------------------ */
/* Writing containers                                                  */
/* ------------------------------------------------------------------ */

typedef struct mfs_writer mfs_writer;

/**
 * Data source for an array: copy up to @p len bytes into @p buf and return
 * how many were copied (0 only at end of data), or a negative errno.  The
 * writer calls it until it has raw_length bytes; a short total is -EINVAL.
 */
typedef ssize_t (*mfs_source_fn)(void *ctx, void *buf, size_t len);

/**
 * Starts a container that will be published at @p path.  Data goes to a
 * temporary file "<dir>/.<basename>.tmp.XXXXXX" in the same directory;
 * nothing is visible at @p path before mfs_writer_commit succeeds.
 * Returns 0, -EINVAL (NULL argument, or a path without a file name such as
 * "dir/", "." or ".."), -ENAMETOOLONG, or the errno of creating the
 * temporary file.
 * A writer is used by one thread at a time.  Internally it compresses the
 * chunks of an LZ4 array on worker threads (one per usable CPU, at most
 * 8), which are joined before each add returns; the file is byte for byte
 * the one a single thread writes.  The environment variable
 * MODELFS_WRITER_THREADS=N, read here, sets the number of threads (1: no
 * worker threads); a value that is not a number >= 1 is ignored.  A
 * source callback is called from the calling thread only, so it need not
 * be thread-safe; the workers pread the descriptor of
 * mfs_writer_add_array_fd themselves.  Writeback of the file starts while
 * it is written, so the commit's fsync waits for the tail only.
 */
MFS_API int mfs_writer_create(mfs_writer **out, const char *path);

/**
 * Sets the metadata document (copied; checked by mfs_check_metadata).
 * Default is "{}".  May be called any time before commit.
 */
MFS_API int mfs_writer_set_metadata(mfs_writer *w, const char *json,
				    size_t len);

/**
 * Appends an array whose raw bytes (raw_length = product(shape)*itemsize,
 * in the spec's order) are pulled from @p src in pieces, so an array may
 * be larger than memory.  Checks the spec (name, duplicate name, dtype,
 * ndim, chunk size, codec, size overflow) before reading anything.
 * Returns 0, -EINVAL (bad spec or short source, message set), -EEXIST
 * (duplicate name), -E2BIG (too many arrays), -ENOMEM, or the source's/I/O
 * errno.
 * After a failure the writer can only be aborted.
 */
MFS_API int mfs_writer_add_array(mfs_writer *w, const mfs_array_spec *spec,
				 mfs_source_fn src, void *ctx);
/** As mfs_writer_add_array, from memory; @p len must equal raw_length. */
MFS_API int mfs_writer_add_array_buffer(mfs_writer *w,
					const mfs_array_spec *spec,
					const void *data, size_t len);
/** As mfs_writer_add_array, reading raw_length bytes of @p fd at @p off. */
MFS_API int mfs_writer_add_array_fd(mfs_writer *w, const mfs_array_spec *spec,
				    int fd, off_t off);

/**
 * Writes the index and header, fsyncs the file, renames it onto the final
 * path (replacing any file there atomically) and fsyncs the directory.
 * Frees @p w whatever the outcome; on failure the temporary file is
 * removed and nothing at the final path changed, with one exception: if
 * the rename succeeded but the directory fsync failed, the new container
 * is in place (not yet durable) and the error is still returned.
 */
MFS_API int mfs_writer_commit(mfs_writer *w);

/** Discards the temporary file and frees @p w (NULL is a no-op). */
MFS_API void mfs_writer_abort(mfs_writer *w);

/* ------------------------------------------------------------------ */
/* Reading containers                                                  */
/* ------------------------------------------------------------------ */

typedef struct mfs_container mfs_container;

/**
 * Opens and fully validates the container at @p path (every structural
 * rule of FORMAT.md; chunk data checksums are checked when chunks are
 * read, or by mfs_container_verify).  Returns 0, -EBADMSG (malformed,
 * message names file, field and bound), or the errno of open/read.
 */
MFS_API int mfs_container_open(mfs_container **out, const char *path);

/**
 * As mfs_container_open on @p path relative to directory @p dirfd (or
 * AT_FDCWD), opened with mfs_open_regular(@p flags): a FIFO, device or
 * other file that is not regular is refused (-EINVAL, a directory
 * -EISDIR) without being read or waited on, and with MFS_OPEN_NOFOLLOW
 * a symbolic link too.
 */
MFS_API int mfs_container_open_at(mfs_container **out, int dirfd,
				  const char *path, unsigned flags);

/**
 * As mfs_container_open on an open, readable descriptor of a regular
 * file (a directory is -EISDIR, anything else -EINVAL).  @p label names
 * the file in messages.
 * On success the container owns @p fd and closes it in
 * mfs_container_close; on failure the caller still owns it.
 */
MFS_API int mfs_container_open_fd(mfs_container **out, int fd,
				  const char *label);

/** Bytes at the start of a container that locate its index: the header
 * page (FORMAT.md). */
#define MFS_HEADER_PAGE_SIZE 4096u

/** Where a container's index lies, from its header page. */
typedef struct mfs_index_location {
	uint64_t file_size;      /**< the container's size in bytes */
	uint64_t index_offset;   /**< where its index starts */
	uint64_t index_length;   /**< the index's length, to the file's end */
	uint64_t index_checksum; /**< XXH3-64 of the index */
} mfs_index_location;

/**
 * Validates a container's header page (@p page, @p len >=
 * MFS_HEADER_PAGE_SIZE bytes: magic, version, header checksum, flags,
 * padding, index placement and bounds) and says where the index lies,
 * for a reader that fetches a container piece by piece (a remote store)
 * instead of opening a file.  0 or -EBADMSG (message names @p label and
 * the field).
 */
MFS_API int mfs_container_locate_index(const void *page, size_t len,
				       const char *label,
				       mfs_index_location *out);

/** Closes the file and frees everything (NULL is a no-op). */
MFS_API void mfs_container_close(mfs_container *c);

/** The backing descriptor (owned by the container). */
MFS_API int mfs_container_fd(const mfs_container *c);
/** Size of the container file in bytes. */
MFS_API uint64_t mfs_container_file_size(const mfs_container *c);
/**
 * The container's index checksum: XXH3-64 (seed 0) of its index, the
 * header field of FORMAT.md, verified at open.  It covers the metadata
 * and every array's description and chunk checksums, so it names the
 * content (a put without a key uses it, as 16 lowercase hex digits).
 * Thread-safe.
 */
MFS_API uint64_t mfs_container_index_checksum(const mfs_container *c);
/** The label given at open (the path for mfs_container_open). */
MFS_API const char *mfs_container_label(const mfs_container *c);

/** The metadata document, NUL-terminated; length in *@p len if non-NULL. */
MFS_API const char *mfs_container_metadata(const mfs_container *c,
					   size_t *len);

/** Number of arrays. */
MFS_API size_t mfs_container_array_count(const mfs_container *c);

/** Fills @p out for array @p index. Returns 0 or -ERANGE. */
MFS_API int mfs_container_array(const mfs_container *c, size_t index,
				mfs_array_info *out);

/** Finds an array by name. Returns 0 (index in *@p index) or -ENOENT
 * (also for a NULL name). */
MFS_API int mfs_container_find(const mfs_container *c, const char *name,
			       size_t *index);

/** Fills @p out for chunk @p chunk of array @p array; 0 or -ERANGE. */
MFS_API int mfs_container_chunk(const mfs_container *c, size_t array,
				uint64_t chunk, mfs_chunk_info *out);

/**
 * Reads chunk @p chunk of array @p array from the file, checks its XXH3-64
 * checksum and decodes it into @p buf (@p buf_len >= the chunk's
 * raw_length).  Returns the raw length, -ERANGE, -ENOBUFS (buffer too
 * small), -EIO (checksum mismatch or read error; message names file,
 * array and chunk), -EBADMSG (undecodable LZ4 stream) or -ENOMEM (the
 * per-thread scratch buffer for LZ4 chunks).
 */
MFS_API ssize_t mfs_container_read_chunk(const mfs_container *c, size_t array,
					 uint64_t chunk, void *buf,
					 size_t buf_len);

/**
 * Checks one chunk without handing out its bytes: reads it into a
 * per-thread scratch buffer, checks its checksum and, for LZ4, that it
 * decodes to its raw length.  What a server calls before it sends a
 * chunk's bytes straight from the file (e.g. by splice).  Returns 0 or an
 * error as mfs_container_read_chunk (-ERANGE, -EIO, -EBADMSG, -ENOMEM).
 */
MFS_API int mfs_container_check_chunk(const mfs_container *c, size_t array,
				      uint64_t chunk);

/**
 * Checks and decodes one chunk whose stored bytes the caller already has
 * (@p stored, ch->stored_length bytes) into @p out (@p out_len >=
 * ch->raw_length).  @p codec is the array's codec; @p label, @p array_name
 * name the chunk in messages.  Returns raw length, -ENOBUFS, -EIO
 * (checksum) or -EBADMSG (bad LZ4 stream or wrong decoded size).
 */
MFS_API ssize_t mfs_chunk_decode(mfs_codec codec, const mfs_chunk_info *ch,
				 const void *stored, void *out, size_t out_len,
				 const char *label, const char *array_name,
				 uint64_t chunk_index);

/**
 * Checks stored chunk bytes the caller already has (@p stored,
 * ch->stored_length bytes) against the chunk's checksum, without
 * decoding: what a fetcher calls before it keeps bytes from elsewhere.
 * 0 or -EIO (message names @p label, @p array_name and the chunk).
 */
MFS_API int mfs_chunk_check(const mfs_chunk_info *ch, const void *stored,
			    const char *label, const char *array_name,
			    uint64_t chunk_index);

/**
 * Copies @p len raw bytes of array @p array starting at raw offset @p off
 * into @p buf, decoding and checking every chunk it touches.  Returns the
 * number of bytes copied (short only at the end of the array), or an error
 * as mfs_container_read_chunk (including -ENOMEM).
 */
MFS_API ssize_t mfs_container_read(const mfs_container *c, size_t array,
				   uint64_t off, void *buf, size_t len);

/** Flags for mfs_container_map. */
#define MFS_MAP_VERIFY 1u /**< check every chunk's checksum first */

/**
 * Maps a raw (codec none) array read-only and shared, zero-copy.  An empty
 * array yields *data == NULL, *len == 0.  Returns 0, -ERANGE (bad index),
 * -EINVAL (unknown flags), -ENOTSUP for an LZ4 array, -EIO
 * (MFS_MAP_VERIFY and a bad chunk) or the errno of mmap.
 * Unmap with munmap(*data, *len) or mfs_unmap.
 */
MFS_API int mfs_container_map(const mfs_container *c, size_t array,
			      unsigned flags, const void **data, size_t *len);
/** Unmaps what mfs_container_map returned (NULL/0 is a no-op). */
MFS_API void mfs_unmap(const void *data, size_t len);

/** Called by mfs_container_verify for each bad chunk. */
typedef void (*mfs_verify_fn)(void *ctx, size_t array, uint64_t chunk,
			      int err, const char *message);

/**
 * Reads, checks and decodes every chunk of every array.  Calls @p cb (may
 * be NULL) for each bad chunk and continues.  Returns the number of bad
 * chunks (0 = all good) or a negative errno for an error that stopped it
 * (-ENOMEM for the scratch buffer).
 */
MFS_API int64_t mfs_container_verify(const mfs_container *c, mfs_verify_fn cb,
				     void *ctx);

/**
 * Builds the manifest JSON of the container served as model @p key:
 * {"key", "format_version", "file_size", "total_raw_size",
 *  "total_stored_size", "arrays": [{"name", "file", "dtype", "npy_descr",
 *  "shape", "order", "codec", "raw_size", "stored_size", "data_offset"
 *  (4096: the offset of data in the .npy view), "container_offset",
 *  "chunk_size", "chunks", "chunk_checksums" (one string: the XXH3-64
 *  of each chunk as 16 hex digits, in chunk order)}]}.
 * *@p out is malloc'd and NUL-terminated; caller frees.  A NULL @p key
 * gives "key": null.  Returns 0, -EINVAL (key fails mfs_check_key) or
 * -ENOMEM.
 */
MFS_API int mfs_container_manifest(const mfs_container *c, const char *key,
				   char **out, size_t *len);

/* ------------------------------------------------------------------ */
/* NPY                                                                 */
/* ------------------------------------------------------------------ */

/** What an NPY header says. */
typedef struct mfs_npy_info {
	mfs_dtype dtype; /**< "<u2" parses as UINT16 (bfloat16 is not marked) */
	uint32_t ndim;
	uint64_t shape[MFS_MAX_NDIM];
	mfs_order order;
	uint32_t version;     /**< major version: 1, 2 or 3 */
	uint64_t data_offset; /**< where the array data starts in the file */
	uint64_t data_length; /**< product(shape) * itemsize (checked) */
} mfs_npy_info;

/**
 * Lists the .npy files of directory @p dir (relative to directory fd
 * @p dirfd, or AT_FDCWD) that an import takes as arrays: names not
 * starting with '.' that end in ".npy" after at least one byte.  They come
 * in bytewise (strcmp) order of their array names (the name without
 * ".npy"), never the locale's collation, so that every importer of the
 * directory orders its arrays, and so names its content, alike.  Entries
 * are not stat'ed: the caller decides about those that are no regular
 * file.  On success *@p names is a malloc'd vector of *@p count malloc'd
 * file names (NULL when the count is 0), which the caller frees with
 * mfs_npy_dir_free.  Returns 0, -ENOMEM, or the errno of opening or
 * reading the directory, with the message set.  Thread-safe.
 */
MFS_API int mfs_npy_dir_list(int dirfd, const char *dir, char ***names,
			     size_t *count);

/** Frees @p count names of mfs_npy_dir_list and their vector. */
MFS_API void mfs_npy_dir_free(char **names, size_t count);

/**
 * Writes the NPY v1.0 header for the array into @p out: magic, version,
 * header length, the dict {'descr', 'fortran_order', 'shape'} exactly as
 * NumPy formats it, padded with spaces and ending in '\n' so that it is
 * exactly MFS_NPY_HEADER_SIZE bytes and the data is page-aligned.  An array
 * with no elements gets NumPy's compact header instead (a multiple of 64
 * bytes, under MFS_NPY_HEADER_SIZE), because NumPy cannot memory-map a file
 * whose data offset is its page-aligned end.  @p out_len must be at least
 * MFS_NPY_HEADER_SIZE.  Returns the header length, -EINVAL (bad
 * dtype/ndim/order/shape) or -ENOBUFS.
 */
MFS_API int mfs_npy_header(mfs_dtype dtype, uint32_t ndim,
			   const uint64_t *shape, mfs_order order, char *out,
			   size_t out_len);

/** Largest NPY header mfs_npy_parse accepts (bytes, including preamble). */
#define MFS_NPY_MAX_HEADER (1u << 20)

/**
 * Parses an NPY header (versions 1.0, 2.0, 3.0) from the first @p len
 * bytes of a file.  Accepts C and Fortran order and every dtype of this
 * library in little-endian or byte-order-free form.  Rejects object
 * ('|O'), structured and big-endian dtypes, and pickled data, with a
 * message saying so.  Returns 0, -EAGAIN (need more bytes: *@p need, if
 * non-NULL, says how many), -ENOTSUP (valid NPY, unsupported dtype) or
 * -EBADMSG (malformed; message names the field).  @p label names the file.
 */
MFS_API int mfs_npy_parse(const void *buf, size_t len, const char *label,
			  mfs_npy_info *out, size_t *need);

/**
 * Reads and parses the header of the .npy file open on @p fd (offset 0,
 * by pread) and checks that the file holds exactly data_offset +
 * data_length bytes.  Errors as mfs_npy_parse, plus I/O errnos.
 */
MFS_API int mfs_npy_read_fd(int fd, const char *label, mfs_npy_info *out);

/* ------------------------------------------------------------------ */
/* Client API: builders, sharing mode, stores, clients, shared models  */
/* ------------------------------------------------------------------ */

/*
 * The model-sharing API (the C counterpart of lenskit.sharing).  A program
 * builds a model with an mfs_builder, puts it into a store (mfs_store_put
 * returns a key), and hands the store's client spec and the key to worker
 * processes; each worker opens a client from the spec, gets the model
 * (zero-copy where the store allows it), reads its arrays, and releases
 * it.
 *
 * Store kinds:
 *  - mount store: a directory served by a running modelfs daemon.  Puts
 *    are published into the daemon's store directory (read from the
 *    mount's root xattr "user.modelfs.store_dir", else from "store_dir"
 *    in MOUNT/.status) and waited for (at most 2 s) until MOUNT/KEY is
 *    visible.  Models are read through MOUNT/KEY/<array>.npy, mapped.
 *  - directory store: a store directory of KEY.mfs containers and no
 *    daemon.  Raw arrays are mapped straight from the container
 *    (zero-copy, every chunk checksum checked first); LZ4 arrays are
 *    decoded into private memory.  On /dev/shm this is a shared-memory
 *    store.
 *  - in-process store: no file and no copy; keys resolve to the
 *    builders' own arrays.  Usable only inside the process that made it.
 *
 * Client spec syntax (mfs_store_client_spec, mfs_client_open):
 *    "mount:/ABS/PATH"      a modelfs mount
 *    "dir:/ABS/PATH"        a store directory
 *    "inproc:0xADDR:PID"    an in-process store; refused in any process
 *                           other than PID
 *    "/ABS/PATH"            (accepted by mfs_client_open) a mount if a
 *                           modelfs daemon serves PATH, else a directory
 *
 * Keys follow mfs_check_key.  A put without a key gets a content-derived
 * key of 16 lowercase hex digits, so putting the same model twice gives
 * the same key: for mount and directory stores it is the container's
 * index checksum (XXH3-64 of the index, which covers the metadata, every
 * array's name, dtype, shape, order, codec and every chunk checksum); for
 * in-process stores it is XXH3-64 of the metadata and of every array's
 * name, dtype, order, shape and raw bytes.
 *
 * Thread-safety: a builder is used by one thread at a time until an
 * in-process put freezes it.  Share context and the store stack are per
 * thread.  Stores, clients and models may be used from any number of
 * threads at once; each handle is released (closed) once, after which it
 * must not be used, though a second release is detected and refused with
 * -EINVAL.  Pointers got from a model stay valid until it is released.
 */

/* Model building ---------------------------------------------------- */

typedef struct mfs_builder mfs_builder;

/** Flags of mfs_builder_add and mfs_builder_add_reader. */
/** A derived array (cache, inverse index): kept when the model is put
 *  into a store or written in share context, dropped by mfs_builder_write
 *  outside share context. */
#define MFS_ARRAY_DERIVED 1u
/** Copy the data now (mfs_builder_add only); the builder owns the copy. */
#define MFS_ARRAY_COPY 2u

/**
 * Positional reader of an array's raw bytes: copy up to @p len bytes
 * starting at raw offset @p off into @p buf; return how many were copied
 * (0 only at or past the end) or a negative errno.  It may be called
 * several times for the same offsets (once per write or put), always
 * from the thread writing or putting the model.
 */
typedef ssize_t (*mfs_read_at_fn)(void *ctx, uint64_t off, void *buf,
				  size_t len);

/**
 * Creates an empty builder (metadata "{}", no arrays) holding one
 * reference, the caller's.  Returns 0 or -EINVAL (NULL @p out) or -ENOMEM.
 * A builder is used by one thread at a time (puts and writes count as
 * use) until it is put into an in-process store, which freezes it:
 * from then on it is read-only and safe to share.
 */
MFS_API int mfs_builder_new(mfs_builder **out);

/**
 * Adds an array described by @p spec (name, dtype, ndim, shape, order,
 * codec, chunk_size) whose raw bytes, product(shape) * itemsize of them
 * in the spec's order, are at @p data (may be NULL only when empty).
 * The data is borrowed and must stay valid and unchanged while the
 * builder lives, and, for a builder put into an in-process store, until
 * every model got from it is released; with MFS_ARRAY_COPY it is copied
 * now instead.  @p flags: MFS_ARRAY_DERIVED, MFS_ARRAY_COPY.
 * Returns 0, -EINVAL (NULL builder or spec, bad name, dtype, ndim, order,
 * codec, chunk size, size overflow, NULL data, unknown flag), -EEXIST
 * (duplicate name), -E2BIG (more than MFS_MAX_ARRAYS), -EBUSY (frozen by
 * an in-process put) or -ENOMEM.  Nothing is added on failure.
 */
MFS_API int mfs_builder_add(mfs_builder *b, const mfs_array_spec *spec,
			    const void *data, unsigned flags);

/**
 * As mfs_builder_add, but the bytes are pulled from @p fn (with @p ctx)
 * whenever the model is written or put, so an array may be larger than
 * memory (an in-process put reads it into memory once).  @p flags:
 * MFS_ARRAY_DERIVED.  @p fn and @p ctx must stay valid while the builder
 * lives.  Errors as mfs_builder_add (-EINVAL for a NULL @p fn).
 */
MFS_API int mfs_builder_add_reader(mfs_builder *b, const mfs_array_spec *spec,
				   mfs_read_at_fn fn, void *ctx,
				   unsigned flags);

/**
 * Sets the metadata document (copied; checked by mfs_check_metadata).
 * Returns 0, -EINVAL (NULL builder, bad JSON), -EBUSY (frozen), -ENOMEM.
 */
MFS_API int mfs_builder_set_metadata(mfs_builder *b, const char *json,
				     size_t len);

/**
 * Writes the model as a container at @p path (atomically, as
 * mfs_writer_commit).  Derived arrays are written only when the calling
 * thread is in share context (mfs_in_share_context), else dropped.
 * Returns 0, -EINVAL (NULL argument, a reader returning more than asked
 * or too few bytes) or the errno of the writer or of a reader callback.
 */
MFS_API int mfs_builder_write(const mfs_builder *b, const char *path);

/**
 * Drops the caller's reference (NULL is a no-op).  An in-process store
 * and the models got from it keep their own references, so the arrays
 * they use stay until they are done.
 */
MFS_API void mfs_builder_free(mfs_builder *b);

/* Sharing mode -------------------------------------------------------- */

/**
 * Enters share context on the calling thread (nestable: each begin needs
 * one end).  Share context means "this model is being shared, keep its
 * derived arrays".  Thread-local: other threads are not affected.
 */
MFS_API void mfs_sharing_begin(void);

/** Leaves one level of share context.  Returns 0, or -EINVAL if the
 *  calling thread is not in share context. */
MFS_API int mfs_sharing_end(void);

/** 1 if the calling thread is in share context, else 0. */
MFS_API int mfs_in_share_context(void);

/* Stores -------------------------------------------------------------- */

typedef struct mfs_store mfs_store;

/** Flags of mfs_store_get. */
/** Do not return the active store of this thread; make or find a new one. */
#define MFS_STORE_NO_REUSE 1u
/** Make an in-process store (unless an active store is reused). */
#define MFS_STORE_IN_PROCESS 2u

/** Default mountpoint of the daemon when MODELFS_MOUNT is not set. */
#define MFS_DEFAULT_MOUNT "/run/models"
/** Most store acquisitions one thread may hold at once (its stack). */
#define MFS_STORE_STACK_MAX 64u
/** How long a put through a mount store waits for MOUNT/KEY (ms). */
#define MFS_MOUNT_WAIT_MS 2000u
/** Size of a key buffer: the longest key and its NUL. */
#define MFS_KEY_BUFSIZE (MFS_MAX_KEY_LEN + 1u)

/**
 * Acquires a store, in this order of priority:
 *  1. unless MFS_STORE_NO_REUSE: the active store, i.e. the top of this
 *     thread's store stack (the store acquired last and not released);
 *  2. with MFS_STORE_IN_PROCESS: a new in-process store;
 *  3. a mount store on $MODELFS_MOUNT (default MFS_DEFAULT_MOUNT; empty
 *     means none) if a modelfs daemon serves it (a fuse.modelfs entry in
 *     /proc/self/mountinfo whose daemon answers: a mount left behind by a
 *     daemon that exited does not count, nor one of a store at a URL,
 *     whose models are published at the origin);
 *  4. a directory store on $MODELFS_STORE (created if missing), else on a
 *     new private directory $TMPDIR/modelfs-XXXXXX (TMPDIR default /tmp)
 *     which is removed at shutdown if only ephemeral models were in it.
 * Every acquisition (also by the mfs_store_open_* functions) counts one
 * reference and pushes the store onto the calling thread's stack; release
 * each with mfs_store_release.  Returns 0, -EINVAL (NULL @p out, unknown
 * flag), -EOVERFLOW (this thread already holds MFS_STORE_STACK_MAX),
 * -ENAMETOOLONG (TMPDIR too long), the errno of mkdtemp, or the errors
 * of the mfs_store_open_* function used.
 * Thread-safe; the stack is per thread.
 */
MFS_API int mfs_store_get(mfs_store **out, unsigned flags);

/**
 * Opens a mount store on @p mountpoint.  Returns 0, -EINVAL (NULL
 * argument), -ENODEV (no modelfs daemon serves it), -ENOTCONN (a modelfs
 * mount whose daemon has exited is left there), -ENOTSUP (the daemon
 * does not tell its store directory), -EROFS (the mount serves a store
 * at a URL: it takes no puts), -EOVERFLOW (stack full), -ENOMEM,
 * or the errno of resolving the paths.  Thread-safe, as are the other
 * mfs_store_open_* functions.
 */
MFS_API int mfs_store_open_mount(mfs_store **out, const char *mountpoint);

/**
 * Opens a directory store on @p dir, creating the directory (one level)
 * if it does not exist.  Returns 0, -EINVAL, -ENOTDIR, -EOVERFLOW,
 * -ENOMEM, or the errno of mkdir/realpath.
 */
MFS_API int mfs_store_open_dir(mfs_store **out, const char *dir);

/** Makes an in-process store.  Returns 0, -EINVAL, -EOVERFLOW, -ENOMEM. */
MFS_API int mfs_store_new_in_process(mfs_store **out);

/** Flags of mfs_store_put and mfs_store_put_file. */
/** Keep the model after the store shuts down (default: ephemeral). */
#define MFS_PUT_PERSISTENT 1u
/** mfs_store_put_file: decode and rewrite a container instead of
 *  publishing its bytes as they are. */
#define MFS_PUT_RESERIALIZE 2u

/**
 * Puts the model of @p b into @p s, in share context (derived arrays are
 * kept), under @p key, or under its content-derived key if @p key is
 * NULL; the key is copied to @p key_out (MFS_KEY_BUFSIZE bytes; may be
 * NULL).  An existing model under the key is replaced atomically.  The
 * model is ephemeral (removed when the store shuts down) unless
 * MFS_PUT_PERSISTENT is given, or the key was already in the store
 * directory before this put (it may belong to someone else).  Only
 * those others are durable (file and directory fsynced, as
 * mfs_builder_write): an ephemeral model is published atomically but not
 * fsynced, since a crash loses it as surely as the shutdown would (after
 * a system crash it may be left behind incomplete, which readers refuse
 * by its checksums); its writeback still starts as it is written.  An
 * in-process store freezes @p b and keeps a reference to it.
 * Returns 0, -EINVAL (NULL store or builder, bad key, unknown flag, store
 * handle not open), -ETIMEDOUT (mount store: MOUNT/KEY did not appear in
 * MFS_MOUNT_WAIT_MS; the container is published in the store directory
 * and counted as put; a key already on the mount counts as appeared),
 * -ENAMETOOLONG (the model's path would pass PATH_MAX), -ENOMEM, the
 * errors of mfs_builder_write, or the errno of publishing (rename, fsync
 * of the directory).  Thread-safe.
 */
MFS_API int mfs_store_put(mfs_store *s, mfs_builder *b, const char *key,
			  unsigned flags, char *key_out);

/**
 * Imports the model at @p path into @p s: a container file, a .npy file
 * (one array named after the file), or a directory of .npy files (one
 * array per non-hidden *.npy, plus metadata.json if present; a mounted
 * model directory is one).  A container is copied into the store and
 * validated there (structure and every chunk checksum) before it is
 * published as is, unless MFS_PUT_RESERIALIZE asks to decode and rewrite
 * it; .npy input is always written as a new container.  In an in-process
 * store the arrays are read into memory.  Key, flags and key_out as
 * mfs_store_put.  Returns 0, -EINVAL (as mfs_store_put, NULL path, a
 * file name that is no valid array name), -ENOENT (no such path),
 * -EBADMSG (not a container or .npy file, or malformed; metadata.json not
 * a JSON object or too large), -ENOTSUP (an .npy dtype this library does
 * not know), -EIO (bad chunk or I/O error), -ETIMEDOUT, -ENAMETOOLONG,
 * -ENOMEM, or another errno of the files (e.g. -EISDIR).  Durable as
 * mfs_store_put: an ephemeral import is not fsynced.  Thread-safe.
 */
MFS_API int mfs_store_put_file(mfs_store *s, const char *path,
			       const char *key, unsigned flags,
			       char *key_out);

/**
 * Removes model @p key from @p s (processes that hold it keep reading
 * it).  Returns 0, -EINVAL (bad key or store), -ENOENT (no such model),
 * -ENAMETOOLONG, or the errno of unlink or of the directory's fsync.
 * Thread-safe.
 */
MFS_API int mfs_store_remove(mfs_store *s, const char *key);

/**
 * The client spec of @p s (see the syntax above), owned by the store and
 * valid until its last release, or NULL for a NULL store.  Thread-safe.
 */
MFS_API const char *mfs_store_client_spec(const mfs_store *s);

/**
 * Releases one acquisition of @p s and removes the topmost occurrence of
 * @p s from the calling thread's store stack (release on the thread that
 * acquired; a store released elsewhere is skipped and dropped by the
 * acquiring thread's next mfs_store_get).  The last release shuts the
 * store down: the ephemeral models it put are removed (never persistent
 * ones nor models other stores put; a mount store waits, as
 * mfs_store_remove, until the mount no longer shows them), a private
 * directory is removed if it is then empty, an in-process store drops
 * its models (models already got stay valid).  The handle must not be
 * used after its last release.  Returns 0, -EINVAL (NULL, not an open
 * store, or released more often than acquired), -ETIMEDOUT (a removal
 * did not show on the mount in time), or the first error of removing
 * files at shutdown (the store is shut down anyway).  Thread-safe.
 */
MFS_API int mfs_store_release(mfs_store *s);

/* Temporaries of killed writers ------------------------------------- */

/*
 * Every mfs_writer (so every put and mfs_builder_write) writes into a
 * hidden temporary "<dir>/.<name>.tmp.XXXXXX" and holds an exclusive
 * flock(2) on it from creation until the file is renamed into place or
 * removed.  A writer killed in between leaves the temporary behind
 * (never a partial model: readers and the daemon ignore names starting
 * with '.'), unlocked once the process is gone.
 */

/** Called by mfs_store_gc with the name (in the directory) of each
 *  temporary file it removed. */
typedef void (*mfs_gc_fn)(void *ctx, const char *name);

/**
 * Removes from directory @p dir every regular file whose name matches
 * ".*.tmp.*" and whose flock(2) it can take at once (LOCK_EX|LOCK_NB):
 * temporaries of writers that died.  Files a live writer holds are kept,
 * as are symlinks, directories and names that change while checked.
 * Calls @p cb (may be NULL) for each removed file and stores the count
 * in *@p removed (may be NULL; set also on failure).  Goes on past a
 * file it cannot check or remove and then returns the first such error.
 * Returns 0, -EINVAL (NULL @p dir), or the errno of opendir/readdir or
 * of open/flock/unlink of a temporary file (message names it).
 * Thread-safe; safe against concurrent writers and gc runs in any
 * process.
 */
MFS_API int mfs_store_gc(const char *dir, size_t *removed, mfs_gc_fn cb,
			 void *ctx);

/* Mounts --------------------------------------------------------------- */

/** What is mounted on a directory, as far as modelfs is concerned. */
enum mfs_mount_state {
	MFS_MOUNT_NONE, /**< no modelfs mount on top of it */
	MFS_MOUNT_LIVE, /**< a modelfs daemon answers on it */
	MFS_MOUNT_DEAD, /**< a modelfs mount whose daemon has exited */
};

/**
 * The state of the mount on top of directory @p path: the last
 * "fuse.modelfs" entry of /proc/self/mountinfo on its real path, then one
 * statfs round trip to tell a live daemon from a dead one.  A NULL,
 * empty or unresolvable @p path is MFS_MOUNT_NONE.  Never blocks on
 * anything but that daemon; sets no message.  Thread-safe.
 */
MFS_API enum mfs_mount_state mfs_mount_probe(const char *path);

/**
 * Writes the store directory the daemon on @p mount serves into @p out
 * (caller-owned, PATH_MAX bytes, NUL-terminated), from the root's
 * "user.modelfs.store_dir" xattr or, for older daemons, the "store_dir"
 * key of its .status file.  Returns 0, -ENAMETOOLONG or -ENOTSUP (the
 * daemon does not tell it), with the message set.  Thread-safe.
 */
MFS_API int mfs_mount_store_dir(const char *mount, char *out);

/**
 * Sets the message for a modelfs mount at @p path whose daemon has exited
 * (mfs_mount_probe said MFS_MOUNT_DEAD), telling how to recover, with
 * @p what (not NULL; may be "") in front, and returns -ENOTCONN, so
 * callers write "return mfs_fail_dead_mount(...)".  Thread-safe.
 */
MFS_API int mfs_fail_dead_mount(const char *what, const char *path);

/* Clients and shared models ------------------------------------------ */

typedef struct mfs_client mfs_client;
typedef struct mfs_model mfs_model;

/**
 * Opens a client from a spec string (syntax above).  A client of an
 * in-process store keeps the store's memory alive until closed (the
 * store still shuts down at its last release).  Returns 0, -EINVAL
 * (NULL or malformed spec), -ENOENT (no such directory, no such
 * in-process store), -ENOTDIR, -ENODEV ("mount:" path not served by a
 * modelfs daemon), -ENOTCONN (the path is a modelfs mount whose daemon
 * has exited), -EXDEV (in-process spec of another process), -ENOMEM.
 * A client is immutable: every function may use it from any thread.
 */
MFS_API int mfs_client_open(mfs_client **out, const char *spec);

/**
 * Closes @p c.  Models got from it stay valid until released.
 * Returns 0, or -EINVAL (NULL or not an open client: closed twice).
 */
MFS_API int mfs_client_close(mfs_client *c);

/**
 * Gets model @p key: maps its arrays (mount: each MOUNT/KEY/<array>.npy;
 * directory: raw arrays from the container, LZ4 arrays decoded; in-process:
 * the builder's arrays) into *@p out.  Returns 0, -EINVAL (NULL argument,
 * bad key, client not open), -ENOENT (unknown key), -EBADMSG (malformed
 * container, .npy or manifest), -EIO (checksum mismatch or I/O error),
 * -ENOTSUP (an .npy of a dtype this library does not know),
 * -ENAMETOOLONG, -ENOMEM, or the errno of open/mmap.  Thread-safe.
 */
MFS_API int mfs_get_model(mfs_client *c, const char *key, mfs_model **out);

/**
 * Opens the model at @p path into *@p out, with no client.  @p path is
 * either a container file of any name (a regular file, never followed
 * through a symbolic link: raw arrays are mapped with their chunk
 * checksums checked, LZ4 arrays decoded into private read-only memory)
 * or a model directory of a modelfs mount (MOUNT/KEY, a directory holding
 * manifest.json: its .npy files are mapped as mfs_get_model does on a
 * mount).  The model's key (mfs_model_key) is the last component of
 * @p path, without the ".mfs" suffix for a file.  Release it with
 * mfs_model_release.  Returns 0, -EINVAL (NULL argument), -ENOENT,
 * -EBADMSG (neither a container file nor a directory with a manifest,
 * e.g. a FIFO; a malformed container, .npy or manifest), -EIO (checksum
 * mismatch or I/O error), -ENAMETOOLONG, -ENOMEM, or the errno of
 * open/mmap; the message names the path.  Thread-safe.
 */
MFS_API int mfs_model_open(const char *path, mfs_model **out);

/** One array of a shared model. */
typedef struct mfs_array_view {
	const char *name; /**< owned by the model */
	const void *data; /**< read-only; NULL when nbytes is 0 */
	mfs_dtype dtype;
	uint32_t ndim;
	uint64_t shape[MFS_MAX_NDIM];
	mfs_order order;
	size_t nbytes; /**< product(shape) * itemsize */
} mfs_array_view;

/** Fills @p out for the array named @p name.  Returns 0, -EINVAL (NULL
 *  argument) or -ENOENT.  Thread-safe. */
MFS_API int mfs_model_array(const mfs_model *m, const char *name,
			    mfs_array_view *out);

/** Number of arrays of @p m (0 for NULL). */
MFS_API size_t mfs_model_array_count(const mfs_model *m);

/** Fills @p out for array @p index (in store order).  Returns 0, -EINVAL
 *  or -ERANGE. */
MFS_API int mfs_model_array_at(const mfs_model *m, size_t index,
			       mfs_array_view *out);

/** The metadata document, NUL-terminated, length in *@p len if non-NULL;
 *  owned by the model.  NULL for a NULL model. */
MFS_API const char *mfs_model_metadata(const mfs_model *m, size_t *len);

/** The key the model was got under, owned by the model. */
MFS_API const char *mfs_model_key(const mfs_model *m);

/**
 * Releases @p m: its mappings are unmapped, or, if MODELFS_DEBUG=1 was
 * set when it was got, replaced by PROT_NONE guard regions (never
 * reused, so a stray pointer into the model faults at once; in-process
 * models have no mappings and are not guarded).  Every pointer from the
 * model becomes invalid.  Returns 0, or -EINVAL (NULL or not a live
 * model: released twice).  May be called from any thread, once.
 */
MFS_API int mfs_model_release(mfs_model *m);

#ifdef __cplusplus
}
#endif
#endif /* MODELFS_H */
