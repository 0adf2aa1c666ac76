/*
 * handoff.h - what a serving process leaves for its successor, so that
 * the mount outlives it (README, "When the serving process dies").
 *
 * The supervisor (supervise.h) holds the /dev/fuse descriptor and runs
 * the serving process as its child.  A successor must answer the kernel
 * for the inode numbers and file handles its predecessor gave out, and
 * must not run the INIT handshake again.  Inode numbers are generation
 * << MFSD_SLOT_BITS | slot (inode.h) and generations come from a
 * counter, so they are not functions of the store: the serving process
 * keeps, as plain stores on the paths that change them, a table of what
 * a successor needs in a shared memory region (a memfd the supervisor
 * creates and every serving child inherits):
 *
 *   - the next generation, and for each live generation its key,
 *     container file name, state, whether it is retired, and the
 *     kernel's lookup counts;
 *   - each open handle, by a small integer id that is the fh the kernel
 *     was given: its kind, generation, slot and opener;
 *   - the raw FUSE_INIT request the kernel sent, which a successor
 *     replays to its own libfuse session (the reply is swallowed, so
 *     the kernel sees one INIT only).
 *
 * A record is written with its marker (gen, kind) stored last and
 * cleared first, so a process killed between two stores leaves either
 * the old or the new record, never a half one that looks valid.
 *
 * Container descriptors are handed to the supervisor (SCM_RIGHTS over a
 * socketpair) when a model is published, and it closes its copy when the
 * serving process closes the container.  A removed model still held
 * (its file unlinked) thus stays open across a takeover: the successor
 * inherits the supervisor's copy and serves the old bytes.
 *
 * Lock order: the table's lock, then the handoff's lock.
 */
#ifndef MFSD_HANDOFF_H
#define MFSD_HANDOFF_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <fuse_lowlevel.h>

#include "modelfs.h"

struct mfsd_model;
struct mfsd_table;

#define MFSD_HANDOFF_MAGIC UINT64_C(0x316b6e61686f666d) /* "mfohank1" */
#define MFSD_HANDOFF_VERSION 1u
/* Live generations and open handles a region has room for.  The memfd
 * is sparse: only the records in use take memory. */
#define MFSD_HANDOFF_MAX_MODELS (1u << 18)
#define MFSD_HANDOFF_MAX_HANDLES (1u << 18)
/* Room for the FUSE_INIT request (104 bytes in protocol 7.45). */
#define MFSD_HANDOFF_INIT_MAX 1024u
#define MFSD_HANDOFF_PATH_MAX PATH_MAX

/*
 * FUSE_NOTIFY_RESEND (protocol 7.40, Linux 6.9): the kernel puts the
 * requests a dead server had read but not answered back in its queue.
 * libfuse 3.14 (protocol 7.31) has no name for it.
 */
#define MFSD_FUSE_NOTIFY_RESEND 7
#define MFSD_FUSE_RESEND_MINOR 40u
/* The bit the kernel sets in the unique id of a request it sent again. */
#define MFSD_FUSE_UNIQUE_RESEND (UINT64_C(1) << 63)

/* One live generation (gen 0: a free record). */
struct mfsd_handoff_model {
	_Atomic uint64_t gen;
	_Atomic uint32_t state;   /* enum mfsd_model_state */
	_Atomic uint32_t retired; /* container closed */
	_Atomic uint64_t nlookup_dir;
	_Atomic uint64_t nlookup_files;
	uint64_t dev; /* of the container file: a successor reopening it */
	uint64_t ino; /* by name checks that it is still the same file */
	char key[MFS_MAX_KEY_LEN + 1];
	char file_name[NAME_MAX + 1];
};

/* Kinds of handle records (0: a free record). */
enum mfsd_handoff_kind {
	MFSD_HK_FREE = 0,
	MFSD_HK_STATUS,
	MFSD_HK_FILE,
	MFSD_HK_ROOT_DIR,
	MFSD_HK_MODEL_DIR,
};

/* One open handle; its index is the fh the kernel holds. */
struct mfsd_handoff_handle {
	_Atomic uint32_t kind; /* enum mfsd_handoff_kind */
	int32_t pid;           /* FILE: the holder */
	uint32_t uid;          /* the opener */
	uint32_t gid;
	uint64_t gen; /* FILE, MODEL_DIR */
	uint64_t slot; /* FILE */
};

/* The supervisor's copy of one container descriptor. */
struct mfsd_handoff_fd {
	uint64_t gen;
	int fd;
};

/* The region: one memfd, MAP_SHARED in the supervisor and each child. */
struct mfsd_handoff_region {
	uint64_t magic;
	uint32_t version;
	/* Written by the supervisor: */
	int32_t supervisor_pid;
	_Atomic int32_t server_pid;
	_Atomic uint32_t takeovers; /* serving processes that took over */
	_Atomic uint64_t resent;    /* requests read again after a
				       takeover (by the serving process) */
	int32_t fuse_fd;            /* the supervisor's /dev/fuse */
	int32_t sock_fd;            /* the supervisor's end of the socket */
	int32_t child_sock_fd;      /* the children's end */
	uint32_t nsup_fds;          /* sup_fds in use, at a re-exec */
	char mountpoint[MFSD_HANDOFF_PATH_MAX];
	/* Written by the serving process: */
	/* The INIT request, kept when read (init_read bytes) and counted
	 * (init_len) only once its reply went to the kernel: a process
	 * killed in between leaves the kernel waiting for a reply, which
	 * its successor gives to the INIT sent again. */
	_Atomic uint32_t init_read;
	_Atomic uint32_t init_len;
	unsigned char init[MFSD_HANDOFF_INIT_MAX];
	_Atomic uint64_t next_gen;
	_Atomic uint32_t models_used;  /* records below this may be valid */
	_Atomic uint32_t handles_used;
	struct mfsd_handoff_model models[MFSD_HANDOFF_MAX_MODELS];
	struct mfsd_handoff_handle handles[MFSD_HANDOFF_MAX_HANDLES];
	/* Written by the supervisor just before it re-executes itself: */
	struct mfsd_handoff_fd sup_fds[MFSD_HANDOFF_MAX_MODELS];
};

/* Messages of a serving process to the supervisor (SOCK_SEQPACKET). */
enum mfsd_handoff_op {
	MFSD_HO_ADD = 1, /* the container of gen, its descriptor attached */
	MFSD_HO_DEL,     /* the container of gen was closed */
	MFSD_HO_READY,   /* serving: the mount answers */
};

struct mfsd_handoff_msg {
	uint32_t op;
	uint64_t gen;
};

/* The serving process's side of the region. */
struct mfsd_handoff {
	struct mfsd_handoff_region *r; /* mapped */
	int sock;                      /* to the supervisor; -1: none */
	pthread_mutex_t lock;
	/* Protected by lock: */
	uint32_t *free_models; /* free record indexes below models_used */
	size_t nfree_models;
	uint32_t next_handle; /* where the search for a free id starts */
	/* The handle behind each id; NULL when free.  Set under lock, read
	 * by requests without it (the kernel uses an fh only while open). */
	void *_Atomic *handle_ptrs;
	/* INIT replay of a successor (mfsd_handoff_io): */
	bool replay;        /* immutable: a saved INIT is to be replayed */
	bool replay_given;  /* the saved INIT went to a reader */
	bool replay_done;   /* its reply was swallowed */
	pthread_cond_t replayed;
};

/* Creates the region in a new memfd: its descriptor, mapped at *@out.
 * Negative errno on failure. */
int mfsd_handoff_region_create(struct mfsd_handoff_region **out);

/* Maps the region of memfd @fd, checking its magic and version.  0 or a
 * negative errno (-EPROTO: not a region of this version). */
int mfsd_handoff_region_map(int fd, struct mfsd_handoff_region **out);

void mfsd_handoff_region_unmap(struct mfsd_handoff_region *r);

/* The kernel's protocol minor in the saved INIT, 0 if none is saved. */
uint32_t mfsd_handoff_kernel_minor(const struct mfsd_handoff_region *r);

/*
 * Sets up @h for a serving process on region @r, talking to the
 * supervisor on @sock.  With @replay, the saved INIT is replayed to the
 * session first (a successor).  0 or -ENOMEM.
 */
int mfsd_handoff_init(struct mfsd_handoff *h, struct mfsd_handoff_region *r,
		      int sock, bool replay);
void mfsd_handoff_destroy(struct mfsd_handoff *h);

/* Gives @m (just published, @t's lock held) a record. */
void mfsd_handoff_model_new(struct mfsd_table *t, struct mfsd_model *m);

/* Copies @m's state, retired flag and lookup counts to its record.
 * @t's lock held. */
void mfsd_handoff_model_sync(struct mfsd_table *t, struct mfsd_model *m);

/* Frees @m's record (the model is being freed; no lock needed: no other
 * thread can reach it). */
void mfsd_handoff_model_end(struct mfsd_table *t, struct mfsd_model *m);

/* Hands a copy of @m's container descriptor to the supervisor (after
 * publication, no lock held).  A failure is logged: a successor reopens
 * the container by its name. */
void mfsd_handoff_send_fd(struct mfsd_table *t, struct mfsd_model *m);

/* Tells the supervisor that @m's container descriptor was closed. */
void mfsd_handoff_fd_closed(struct mfsd_table *t, struct mfsd_model *m);

/* Tells the supervisor that the mount is served. */
void mfsd_handoff_ready(struct mfsd_handoff *h);

/*
 * Gives handle @ptr a record and an id (the fh for the kernel), with
 * @rec's fields.  The id, or -EMFILE when every id is in use.
 */
int64_t mfsd_handoff_handle_new(struct mfsd_handoff *h, void *ptr,
				const struct mfsd_handoff_handle *rec);

/* Puts @ptr in place of id @id, for a handle rebuilt from its record. */
void mfsd_handoff_handle_adopt(struct mfsd_handoff *h, uint64_t id, void *ptr);

/* The handle of id @id, NULL if none. */
void *mfsd_handoff_handle_get(struct mfsd_handoff *h, uint64_t id);

/* Frees id @id and its record. */
void mfsd_handoff_handle_end(struct mfsd_handoff *h, uint64_t id);

/*
 * Rebuilds @t's models from the region's records: each model that was
 * not retired is loaded again from the container descriptor in @fds
 * (the supervisor's copies, @nfds; those not used are closed) or, when
 * none was handed over, from its file name if that is still the same
 * file.  Called on a successor before anything else touches @t.  0 or
 * -ENOMEM.
 */
int mfsd_handoff_adopt_models(struct mfsd_table *t,
			      const struct mfsd_handoff_fd *fds, size_t nfds);

/* The custom I/O (fuse_session_custom_io) of a serving session whose
 * userdata is a struct mfsd_ctx. */
extern const struct fuse_custom_io mfsd_handoff_io;

/*
 * Writes FUSE_NOTIFY_RESEND on @fd: the kernel queues again the requests
 * the dead predecessor had read but not answered.  0 or a negative errno
 * (-EINVAL from a kernel without it).
 */
int mfsd_handoff_resend(int fd);

#endif /* MFSD_HANDOFF_H */
