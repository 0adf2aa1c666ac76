#!/bin/bash
# run.sh - the modelfs benchmark (DESIGN.md section 6): modelfs against
# plain files, squashfuse_ll and Python shared memory, side by side in one
# run, each measure repeated; prints a table of medians and ratios and
# writes the same as JSON.
#
#   tools/bench/run.sh [--quick] [--keep] [--reps N] [--json FILE]
#                      [--data DIR] [--build-dir DIR | BUILD_DIR]
#
#   --quick      every measure once, on small data (CI: keeps the
#                benchmark working; no speed is asserted)
#   --keep       keep the data directory afterwards
#   --reps N     repetitions of each measure (default 5; --quick: 1;
#                warm scans, cheap and noisy, get 3 times as many)
#   --json FILE  default BUILD_DIR/bench-results.json
#   --data DIR   where data goes (default /var/tmp/modelfs-bench; must
#                not be tmpfs: page cache figures would be meaningless)
#   BUILD_DIR    the meson build directory (also MODELFS_BUILD_DIR or
#                MESON_BUILD_ROOT from the environment)
#
# Environment: MODELFS_BENCH_DAEMON_OPTS adds options to every modelfs
# daemon started (e.g. "-o read_ahead_kb=1024 --threads 1"), to try
# settings.
#
# Needs root (drop_caches, the mount's readahead) and /dev/fuse, else it
# exits 77 (skip).  Installs squashfuse and squashfs-tools with apt-get if
# they are missing.  Everything it mounts is unmounted on any exit
# (failure, Ctrl-C, SIGTERM).  Exit status: 0 when every measure ran.
#
# Measures (scan = map each .npy whole, MAP_SHARED, and read one 64-bit
# word per 4096-byte page; the same code for every system):
#   warm     mmap scan, page cache warm: modelfs raw and LZ4, squashfuse
#            LZ4, and the same .npy files as plain files on the same file
#            system
#   cold     first scan after a fresh mount, backing file (container or
#            squashfs image) already in the page cache; and the page
#            cache held after that full scan (dropped before the backing
#            file was read), divided by the model's size
#   workers  8 processes attach and scan the model: modelfs (C, and numpy
#            np.load mmap), shared_memory + pickle 5, private np.load
#   attach   open + mmap of the 100 arrays of a model, warm (median us);
#            the same on the floor (below)
#   open     open + close of a file, warm, per call: modelfs (a model of
#            100 arrays, and one of 10,000 models), the floor, plain files
#   ls       ls of a mount of 10,000 models: right after mount, again,
#            ls -l first, ls -l again; ls -l of the same names as empty
#            directories on the backing file system (first: after its
#            dentries and inodes were dropped)
#   put      modelctl put of the model's .npy files into a mounted store
#            until the mount shows it: counted in modelfs's time to ready
#            (shared memory's put is in its own)
#   pack     modelctl pack of the model, raw and LZ4 (MiB/s of .npy read)
#   takeover the pause a reader touching new pages of the LZ4 model sees
#            when the serving process is killed (SIGKILL; its successor
#            takes over) and when the supervisor is upgraded (SIGUSR2):
#            the longest gap between two successive page reads
#            (tools/bench/takeover.py)
#   python   a Python model (numpy arrays, a scipy CSR matrix, a pandas
#            DataFrame) shared by 8 workers (tools/bench/pyshare.py):
#            modelfs.sharing's MountModelStore on a daemon, shared_memory +
#            pickle 5 (LensKit's SHMModelStore mechanism), joblib's
#            mmap_mode="r" and private copies; put, get_model to first use,
#            time to ready (put included) and memory (workers' Pss growth +
#            the page cache of the model's files) / model
#   remote   the model at a URL (tools/bench/remote.py: a real nginx on
#            loopback): first use of one array, lazily vs downloading the
#            container and mounting it; bytes fetched for that array /
#            its size; cold scan through the URL mount vs the local
#            store's mount; warm scan once read vs plain files
#
# The floor is floorfs (tools/bench/floorfs.c): the least a libfuse
# file system does per request, so per-request figures are ratios to what
# FUSE itself costs here.
set -Eeuo pipefail

readonly SKIP=77
SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SRC_DIR
readonly PY=/usr/bin/python3
readonly MARKER=.modelfs-bench
readonly NWORKERS=8
# A warm scan takes ~0.1 s and varies by +-20% between runs on a VM: it
# gets this many times the repetitions so that its median settles.
readonly WARM_REPS_FACTOR=3
readonly WIDE_ARRAYS=100
readonly FLOOR_FILE_BYTES=65536
readonly UNMOUNT_WAIT_TENTHS=100  # 10 s for a server to exit
readonly UNMOUNT_TRIES=20         # plain unmounts, 0.1 s apart
# Full run: a 1 GiB model (four arrays) and 10,000 tiny models.
readonly FULL_MIB=1024 FULL_MANY=10000 FULL_REPS=5 FULL_ITERS=100
# Quick run: small data, once.
readonly QUICK_MIB=32 QUICK_MANY=1000 QUICK_REPS=1 QUICK_ITERS=20
# The Python model's array bytes (MiB), full and quick.
readonly FULL_PY_MIB=1024 QUICK_PY_MIB=64
# Disk needed per MiB of model: .npy, two containers, two images, the
# remote measures' disk cache and downloaded copy.
readonly DISK_FACTOR=7
# Disk needed per MiB of the Python model: its container or file.
readonly PY_DISK_FACTOR=2

QUICK=0 KEEP=0 REPS='' JSON='' DATA=/var/tmp/modelfs-bench
BUILD=${MODELFS_BUILD_DIR:-${MESON_BUILD_ROOT:-}}
declare -A MOUNTED=()  # mount name -> pid of its server

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }
skip() { printf 'run.sh: skipped: %s\n' "$*" >&2; exit $SKIP; }
usage() { sed -n '2,/^set -E/{/^set -E/d;s/^# \{0,1\}//;p}' "$0"; }

parse_args() {
	while [ $# -gt 0 ]; do
		case $1 in
		--quick) QUICK=1 ;;
		--keep) KEEP=1 ;;
		--reps) REPS=${2:?--reps needs a value}; shift ;;
		--json) JSON=${2:?--json needs a value}; shift ;;
		--data) DATA=${2:?--data needs a value}; shift ;;
		--build-dir) BUILD=${2:?--build-dir needs a value}; shift ;;
		-h|--help) usage; exit 0 ;;
		-*) usage >&2; exit 2 ;;
		*) BUILD=$1 ;;
		esac
		shift
	done
	[ -n "$BUILD" ] || { usage >&2; exit 2; }
	BUILD=$(cd "$BUILD" && pwd)
	if [ $QUICK = 1 ]; then
		MIB=$QUICK_MIB NMANY=$QUICK_MANY ITERS=$QUICK_ITERS
		PY_MIB=$QUICK_PY_MIB
		REPS=${REPS:-$QUICK_REPS}
	else
		MIB=$FULL_MIB NMANY=$FULL_MANY ITERS=$FULL_ITERS
		PY_MIB=$FULL_PY_MIB
		REPS=${REPS:-$FULL_REPS}
	fi
	JSON=${JSON:-$BUILD/bench-results.json}
	BENCH=$BUILD/tools/bench/mfsbench
	MODELFS=$BUILD/fs/modelfs
	MODELCTL=$BUILD/tools/modelctl
	FLOORFS=$BUILD/tools/bench/floorfs
	SAMPLES=$DATA/samples.tsv
}

# ---------------------------------------------------------------------------
# Mounts: every server is recorded in MOUNTED, and cleanup unmounts them.

is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }

# unmount NAME: unmounts $DATA/mnt/NAME (a plain unmount, retried while
# a late request keeps it busy, then a lazy one) and waits for its
# server to exit.
unmount() {
	local name=$1 mnt=$DATA/mnt/$1 pid=${MOUNTED[$1]:-} i
	for ((i = 0; i < UNMOUNT_TRIES; i++)); do
		is_mounted "$mnt" || break
		fusermount3 -u "$mnt" 2>/dev/null || sleep 0.1
	done
	if is_mounted "$mnt"; then
		echo "run.sh: $mnt busy: lazy unmount" >&2
		fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" || true
	fi
	if [ -n "$pid" ]; then
		for ((i = 0; i < UNMOUNT_WAIT_TENTHS; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null || true
	fi
	unset "MOUNTED[$name]"
}

# mount_server NAME [mfsbench record options] -- SERVER ARGS...: runs a
# FUSE server in the foreground at $DATA/mnt/NAME (its mount point being
# the last argument), as a child of this shell so that it is reaped, and
# waits until the mount answers.
mount_server() {
	local name=$1 mnt=$DATA/mnt/$1 rec=() pid
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do rec+=("$1"); shift; done
	shift
	mkdir -p "$mnt"
	"$@" </dev/null >>"$DATA/log/$name.log" 2>&1 &
	pid=$!
	MOUNTED[$name]=$pid
	"$BENCH" waitmount "${rec[@]}" --pid "$pid" "$mnt"
}

# mount_modelfs NAME STORE [record options]
mount_modelfs() {
	local name=$1 store=$2
	shift 2
	# shellcheck disable=SC2086  # the options are words on purpose
	mount_server "$name" "$@" -- "$MODELFS" -f \
		${MODELFS_BENCH_DAEMON_OPTS:-} "$store" "$DATA/mnt/$name"
}

# mount_sqfs NAME IMAGE
mount_sqfs() {
	mount_server "$1" -- squashfuse_ll -f "$2" "$DATA/mnt/$1"
}

cleanup() {
	local rc=$? name mnt left=0
	trap - EXIT INT TERM ERR
	set +eu  # clean up all that can be, whatever fails
	for name in "${!MOUNTED[@]}"; do unmount "$name"; done
	# A mount a failed step left behind without registering it.
	for mnt in "$DATA"/mnt/*; do
		if is_mounted "$mnt"; then
			fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" || true
		fi
		is_mounted "$mnt" && left=1
	done
	if [ $left = 1 ]; then
		echo "run.sh: a mount under $DATA/mnt is still there" >&2
		[ $rc = 0 ] && rc=1
	elif [ $KEEP = 0 ] && [ -f "$DATA/$MARKER" ]; then
		rm -rf "$DATA"
	fi
	exit $rc
}

# ---------------------------------------------------------------------------
# Preconditions

# ensure_cmd CMD PACKAGE: installs PACKAGE with apt-get when CMD is missing.
ensure_cmd() {
	command -v "$1" >/dev/null && return 0
	log "installing $2 (for $1)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q "$2" >/dev/null ||
		{ apt-get update -q >/dev/null && apt-get install -y -q "$2" >/dev/null; } ||
		die "cannot install $2"
	command -v "$1" >/dev/null || die "$1 still missing after installing $2"
}

check_env() {
	[ "$(id -u)" = 0 ] || skip "needs root (drop_caches, mount readahead)"
	[ -c /dev/fuse ] || skip "no /dev/fuse"
	local f
	for f in "$BENCH" "$MODELFS" "$MODELCTL" "$FLOORFS"; do
		[ -x "$f" ] || die "$f missing: build first (ninja -C $BUILD)"
	done
	ensure_cmd fusermount3 fuse3
	ensure_cmd squashfuse_ll squashfuse
	ensure_cmd mksquashfs squashfs-tools
	local mod
	for mod in numpy scipy pandas joblib; do
		"$PY" -c "import $mod" 2>/dev/null && continue
		log "installing python3-$mod (for $PY)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			"python3-$mod" >/dev/null ||
			die "$PY has no $mod and python3-$mod cannot be installed"
	done
	PYTHONPATH="$BUILD/lib/python" "$PY" -c 'import modelfs.sharing' ||
		die "$PY cannot import modelfs.sharing from $BUILD/lib/python"
}

prepare_data_dir() {
	local avail need
	if [ -e "$DATA" ] && [ ! -f "$DATA/$MARKER" ] &&
		[ -n "$(ls -A "$DATA" 2>/dev/null)" ]; then
		die "$DATA exists and is not a benchmark directory: not touching it"
	fi
	mkdir -p "$DATA"
	[ "$(stat -f -c %T "$DATA")" != tmpfs ] ||
		die "$DATA is tmpfs: page cache figures would mean nothing (--data)"
	touch "$DATA/$MARKER"
	# Data of an earlier --keep run is rebuilt.
	rm -rf "${DATA:?}"/{npy,store-raw,store-lz4,store-put,wide,many,many-dirs,pack,py,log,samples.tsv,*.img}
	mkdir -p "$DATA"/{npy,store-raw,store-lz4,wide/npy,wide/store,many/store,many-dirs,pack,mnt,log}
	avail=$(df --output=avail -B1M "$DATA" | tail -1)
	need=$((MIB * DISK_FACTOR + PY_MIB * PY_DISK_FACTOR))
	[ "$avail" -ge "$need" ] || die "$DATA: ${avail} MiB free, ${need} MiB needed"
}

# ---------------------------------------------------------------------------
# Helpers of the measures

# drop_caches: empties the page cache, then reads back the programs and
# libraries the next measure runs (the servers, mfsbench), so their pages
# are in the baseline and not charged to the model.
drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	{
		"$MODELFS" --version
		squashfuse_ll --help
		"$BENCH" meminfo
	} >/dev/null 2>&1 || true
}
precache() { cat "$@" >/dev/null; }
rec() {
	"$BENCH" record --samples "$SAMPLES" --measure "$1" --system "$2" \
		"$3" "$4" "$5"
}
# scan MEASURE SYSTEM DIR [scan options]
scan() {
	local m=$1 s=$2 d=$3
	shift 3
	"$BENCH" scan --samples "$SAMPLES" --measure "$m" --system "$s" "$@" "$d"
}

# The systems of the scans: mount name, how to mount, backing file.
mount_system() {
	case $1 in
	modelfs-raw) mount_modelfs raw "$DATA/store-raw" ;;
	modelfs-lz4) mount_modelfs lz4 "$DATA/store-lz4" ;;
	squashfuse-none) mount_sqfs sqnone "$DATA/sq-none.img" ;;
	squashfuse-lz4) mount_sqfs sqlz4 "$DATA/sq-lz4.img" ;;
	esac
}
system_name() {
	case $1 in
	modelfs-raw) echo raw ;; modelfs-lz4) echo lz4 ;;
	squashfuse-none) echo sqnone ;; squashfuse-lz4) echo sqlz4 ;;
	esac
}
system_dir() {
	case $1 in
	modelfs-*) echo "$DATA/mnt/$(system_name "$1")/big" ;;
	squashfuse-*) echo "$DATA/mnt/$(system_name "$1")" ;;
	esac
}
system_backing() {
	case $1 in
	modelfs-raw) echo "$DATA/store-raw/big.mfs" ;;
	modelfs-lz4) echo "$DATA/store-lz4/big.mfs" ;;
	squashfuse-none) echo "$DATA/sq-none.img" ;;
	squashfuse-lz4) echo "$DATA/sq-lz4.img" ;;
	esac
}
readonly SCAN_SYSTEMS="modelfs-raw modelfs-lz4 squashfuse-none squashfuse-lz4"

# ---------------------------------------------------------------------------
# The measures

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { print a / b }'; }

prepare() {
	local raw lz4 sqn sql
	log "preparing a $MIB MiB model, $NMANY tiny models in $DATA"
	"$BENCH" gen-model --mib "$MIB" "$DATA/npy"
	"$MODELCTL" pack "$DATA/store-raw/big.mfs" "$DATA/npy" >/dev/null
	"$MODELCTL" pack --lz4 "$DATA/store-lz4/big.mfs" "$DATA/npy" >/dev/null
	# squashfs with its defaults (128 KiB blocks), the same .npy files.
	mksquashfs "$DATA/npy" "$DATA/sq-lz4.img" -comp lz4 -noappend \
		-quiet -no-progress >/dev/null
	mksquashfs "$DATA/npy" "$DATA/sq-none.img" -noI -noD -noF -noX \
		-noappend -quiet -no-progress >/dev/null
	"$BENCH" gen-wide --arrays "$WIDE_ARRAYS" --npy-dir "$DATA/wide/npy" \
		"$DATA/wide/store/wide.mfs"
	"$BENCH" gen-many --count "$NMANY" "$DATA/many/store"
	# The same names as empty directories, for ls -l's reference.
	(cd "$DATA/many/store" && for f in *.mfs; do
		mkdir "$DATA/many-dirs/${f%.mfs}"; done)
	MODEL_BYTES=$(stat -c %s "$DATA"/npy/*.npy | awk '{ s += $1 } END { print s }')
	raw=$(stat -c %s "$DATA/store-raw/big.mfs")
	lz4=$(stat -c %s "$DATA/store-lz4/big.mfs")
	sqn=$(stat -c %s "$DATA/sq-none.img")
	sql=$(stat -c %s "$DATA/sq-lz4.img")
	rec data model model_mib "$((MODEL_BYTES / 1048576))" MiB
	rec data modelfs-lz4 stored_x "$(ratio "$lz4" "$raw")" x
	rec data squashfuse-lz4 stored_x "$(ratio "$sql" "$sqn")" x
}

measure_warm() {
	local r s
	log "warm mmap scans"
	mount_modelfs raw "$DATA/store-raw"
	mount_modelfs lz4 "$DATA/store-lz4"
	mount_sqfs sqlz4 "$DATA/sq-lz4.img"
	for ((r = 0; r < REPS * WARM_REPS_FACTOR; r++)); do
		scan warm plain "$DATA/npy" --warm
		for s in modelfs-raw modelfs-lz4 squashfuse-lz4; do
			scan warm "$s" "$(system_dir "$s")" --warm
		done
	done
	unmount raw
	unmount lz4
	unmount sqlz4
}

# measure_cold: per system and repetition, from a dropped page cache:
# cache the backing file (container or image), mount, scan.  The scan is
# the cold one (first touch after mount, backing file cached: FUSE and
# decoding are measured, not the disk), and the page cache grown since
# the drop is what the system holds after a full scan (the backing file
# included if the server leaves it cached).
measure_cold() {
	local r s before
	log "cold scans (fresh mount, backing file cached) and cache held"
	for ((r = 0; r < REPS; r++)); do
		for s in $SCAN_SYSTEMS; do
			drop_caches
			before=$("$BENCH" meminfo | cut -d' ' -f1)
			precache "$(system_backing "$s")"
			mount_system "$s"
			scan cold "$s" "$(system_dir "$s")" --cached-before "$before"
			unmount "$(system_name "$s")"
		done
	done
}

# workers_run SYSTEM: one run of the 8 workers of SYSTEM.  The memory
# baseline is the page cache without the inputs (container or .npy
# files), which are then cached, so that they are charged if they stay.
workers_run() {
	local s=$1 before
	local common=(--samples "$SAMPLES" --measure workers --system "$s"
		-n "$NWORKERS" --model-bytes "$MODEL_BYTES")
	case $s in
	modelfs-c | modelfs-numpy)
		before=$("$BENCH" meminfo --uncount "$DATA/store-raw/big.mfs")
		precache "$DATA/store-raw/big.mfs"
		mount_modelfs raw "$DATA/store-raw"
		if [ "$s" = modelfs-c ]; then
			"$BENCH" workers "${common[@]}" --before "$before" \
				--server-pid "${MOUNTED[raw]}" "$DATA/mnt/raw/big"
		else
			"$PY" "$SRC_DIR/workers.py" --mode mmap "${common[@]}" \
				--before "$before" --server-pid "${MOUNTED[raw]}" \
				"$DATA/mnt/raw/big"
		fi
		unmount raw
		;;
	shm-pickle5 | private)
		before=$("$BENCH" meminfo --uncount "$DATA"/npy/*.npy)
		precache "$DATA"/npy/*.npy
		"$PY" "$SRC_DIR/workers.py" \
			--mode "$([ "$s" = private ] && echo private || echo shm)" \
			"${common[@]}" --before "$before" "$DATA/npy"
		;;
	esac
}

measure_workers() {
	local r s
	log "$NWORKERS workers attach and scan the model"
	for ((r = 0; r < REPS; r++)); do
		for s in modelfs-c modelfs-numpy shm-pickle5 private; do
			workers_run "$s"
		done
	done
}

measure_attach() {
	local r common
	log "attach: open + mmap of $WIDE_ARRAYS arrays, warm"
	mount_modelfs wide "$DATA/wide/store"
	common=(--samples "$SAMPLES" --measure attach --iters "$ITERS")
	for ((r = 0; r < REPS; r++)); do
		"$BENCH" attach "${common[@]}" --system modelfs "$DATA/mnt/wide/wide"
		"$BENCH" attach "${common[@]}" --system modelfs-client \
			--client "mount:$DATA/mnt/wide" --key wide
		"$BENCH" attach "${common[@]}" --system plain "$DATA/wide/npy"
	done
	unmount wide
}

measure_ls() {
	local r n mnt=$DATA/mnt/many
	local common=(--samples "$SAMPLES" --measure ls --system modelfs)
	log "ls of $NMANY models"
	for ((r = 0; r < REPS; r++)); do
		mount_modelfs many "$DATA/many/store" "${common[@]}"
		"$BENCH" ls "${common[@]}" --metric cold_ms "$mnt"
		"$BENCH" ls "${common[@]}" --metric warm_ms "$mnt"
		"$BENCH" ls "${common[@]}" --metric long_first_ms --long "$mnt"
		"$BENCH" ls "${common[@]}" --metric long_warm_ms --long "$mnt"
		if [ "$r" = 0 ]; then
			n=$(find "$mnt" -mindepth 1 -maxdepth 1 -type d | wc -l)
			[ "$n" = "$NMANY" ] || die "ls shows $n models, not $NMANY"
		fi
		unmount many
		# ext4's first: its dentries and inodes dropped, its blocks
		# still cached, as modelfs's backing store is.
		sync
		echo 2 >/proc/sys/vm/drop_caches
		"$BENCH" ls --samples "$SAMPLES" --measure ls --system ext4 \
			--metric long_first_ms --long "$DATA/many-dirs"
		"$BENCH" ls --samples "$SAMPLES" --measure ls --system ext4 \
			--metric long_warm_ms --long "$DATA/many-dirs"
	done
}

# pack_once SYSTEM [--lz4]: times one modelctl pack of the model.
pack_once() {
	local sys=$1 t0 t1
	shift
	t0=$(date +%s%N)
	"$MODELCTL" pack "$@" "$DATA/pack/p.mfs" "$DATA/npy" >/dev/null
	t1=$(date +%s%N)
	rm -f "$DATA/pack/p.mfs"
	rec pack "$sys" mibps \
		"$(awk -v b="$MODEL_BYTES" -v ns="$((t1 - t0))" \
			'BEGIN { print b / 1048576 / (ns / 1e9) }')" MiB/s
}

measure_pack() {
	local r
	log "pack: modelctl pack of the model, raw and LZ4"
	for ((r = 0; r < REPS; r++)); do
		pack_once modelfs-raw
		pack_once modelfs-lz4 --lz4
	done
}

# Time to publish the model on a mount, to count in modelfs's time to
# ready as shared memory's put is counted in its own: modelctl put of the
# .npy files into the store (written, fsynced, renamed in) until the
# mount shows it.
measure_put() {
	local r t0 t1 mnt=$DATA/mnt/put
	log "put: publish the model until the mount shows it"
	rm -rf "$DATA/store-put"
	mkdir -p "$DATA/store-put"
	mount_modelfs put "$DATA/store-put"
	for ((r = 0; r < REPS; r++)); do
		precache "$DATA"/npy/*.npy
		t0=$(date +%s%N)
		"$MODELCTL" put "$DATA/store-put" --key big "$DATA/npy" >/dev/null
		until [ -e "$mnt/big/manifest.json" ]; do sleep 0.001; done
		t1=$(date +%s%N)
		rec put modelfs-numpy put_ms \
			"$(awk -v ns="$((t1 - t0))" 'BEGIN { print ns / 1e6 }')" ms
		"$MODELCTL" rm "$DATA/store-put" big >/dev/null
		while [ -e "$mnt/big" ]; do sleep 0.001; done
	done
	unmount put
}

# The Python section: pyshare.py puts and gets the model with each system
# in turn (the order rotating each repetition), dropping the page cache
# before each, the mount's daemon serving a store of its own.
measure_python() {
	log "python: put_model, get_model, memory of $NWORKERS workers"
	mkdir -p "$DATA/py/store" "$DATA/py/files"
	mount_modelfs py "$DATA/py/store"
	PYTHONPATH="$BUILD/lib/python${PYTHONPATH:+:$PYTHONPATH}" \
		"$PY" "$SRC_DIR/pyshare.py" --samples "$SAMPLES" \
		--mib "$PY_MIB" --rounds "$REPS" --workers "$NWORKERS" \
		--mount "$DATA/mnt/py" --store-dir "$DATA/py/store" \
		--server-pid "${MOUNTED[py]}" --files "$DATA/py/files"
	unmount py
}

# The remote section: remote.py serves the raw store with nginx and mounts
# it by URL, beside the local store.
measure_remote() {
	log "remote: the model at a URL, lazily, against download + mount"
	"$PY" "$SRC_DIR/remote.py" --samples "$SAMPLES" --data "$DATA" \
		--store "$DATA/store-raw" --npy "$DATA/npy" --model big \
		--array emb --reps "$REPS" --modelfs "$MODELFS" \
		--modelctl "$MODELCTL" --bench "$BENCH"
}

measure_open() {
	local r one common
	log "open + close: modelfs, the floor, plain files; attach on the floor"
	mount_modelfs wide "$DATA/wide/store"
	mount_server floor -- "$FLOORFS" "$DATA/mnt/floor" "$WIDE_ARRAYS" \
		"$FLOOR_FILE_BYTES"
	mount_modelfs many "$DATA/many/store"
	one=$(find "$DATA/mnt/many" -mindepth 1 -maxdepth 1 -type d -print -quit)
	common=(--samples "$SAMPLES" --iters "$ITERS")
	for ((r = 0; r < REPS; r++)); do
		"$BENCH" attach "${common[@]}" --measure open --system floor \
			--open-only "$DATA/mnt/floor"
		"$BENCH" attach "${common[@]}" --measure open --system modelfs \
			--open-only "$DATA/mnt/wide/wide"
		"$BENCH" attach "${common[@]}" --measure open --system plain \
			--open-only "$DATA/wide/npy"
		"$BENCH" attach --samples "$SAMPLES" \
			--iters "$((ITERS * WIDE_ARRAYS))" --measure open \
			--system modelfs-10k --open-only "$one"
		"$BENCH" attach "${common[@]}" --measure attach --system floor \
			"$DATA/mnt/floor"
	done
	unmount many
	unmount floor
	unmount wide
}

# The takeover section: a reader touches new pages of the LZ4 model while
# the serving process is killed, then while the supervisor is upgraded.
measure_takeover() {
	log "takeover: reader pause across a kill and an upgrade"
	mount_modelfs tko "$DATA/store-lz4"
	"$PY" "$SRC_DIR/takeover.py" --samples "$SAMPLES" --rounds "$REPS" \
		--supervisor "${MOUNTED[tko]}" --file "$DATA/mnt/tko/big/emb.npy"
	unmount tko
}

report() {
	local opts=${MODELFS_BENCH_DAEMON_OPTS:-}
	"$BENCH" report --json "$JSON" --require-all \
		--info "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		--info "kernel=$(uname -r)" \
		--info "cpus=$(nproc)" \
		--info "mem_gib=$(awk '/MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)" \
		--info "mode=$([ $QUICK = 1 ] && echo quick || echo full)" \
		--info "reps=$REPS (warm scans: $((REPS * WARM_REPS_FACTOR)))" \
		--info "model_bytes=$MODEL_BYTES (4 arrays: emb f4[R,96], sim.indptr i8, sim.indices i4, sim.data f4)" \
		--info "scan=mmap MAP_SHARED whole file, read one 8-byte word per 4096-byte page" \
		--info "daemon=modelfs -f ${opts:-(defaults)}" \
		--info "squashfuse=$(dpkg-query -W -f='${Version}' squashfuse 2>/dev/null || echo '?') squashfuse_ll, mksquashfs defaults (128 KiB blocks)" \
		--info "workers=$NWORKERS; memory = sum Pss (workers + server) + unmapped page cache growth" \
		--info "tiny_models=$NMANY; wide_model_arrays=$WIDE_ARRAYS" \
		--info "remote=the raw model served by nginx on 127.0.0.1 (its container in the page cache), one array = emb; download = urllib into a local store, then mount" \
		--info "python=$PY_MIB MiB model (dict: f4 item and user embeddings, scipy CSR i4/i4/f4, pandas DataFrame i4,i4,f4,i8), $NWORKERS forkserver workers, page cache dropped before each system; memory = workers' (and daemon's) Pss growth without the model's mappings + page cache of the model's files" \
		"$SAMPLES"
	log "JSON: $JSON"
}

main() {
	local t0=$SECONDS step t
	parse_args "$@"
	check_env
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'echo "run.sh: failed: line $LINENO: $BASH_COMMAND" >&2' ERR
	prepare_data_dir
	for step in prepare measure_warm measure_cold measure_workers \
		measure_put measure_python measure_remote measure_attach \
		measure_open measure_ls measure_pack measure_takeover; do
		t=$SECONDS
		$step
		log "$step: $((SECONDS - t)) s"
	done
	report
	log "done in $((SECONDS - t0)) s"
}

main "$@"
