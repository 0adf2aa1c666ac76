#!/usr/bin/env bash
# bootstrap.sh - install modelfs's build dependencies (Debian 12), build it,
# and then either run the demo or run every test.
#
#   tools/bootstrap.sh demo     deps + build + mount a generated demo store
#   tools/bootstrap.sh test     deps + build + every test suite
#   tools/bootstrap.sh deps     only install dependencies
#
# Environment: BUILD_DIR (default build), MESON_ARGS (extra setup args),
# TEST_ARGS (extra `meson test` args, e.g. --no-suite bench).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
BUILD_DIR=${BUILD_DIR:-build}

# Everything modelfs builds, tests and demos with; all from Debian's archive.
DEPS=(gcc clang libclang-rt-14-dev pkg-config meson ninja-build
      liblz4-dev libxxhash-dev libjansson-dev libcmocka-dev
      libfuse3-dev fuse3 python3 python3-numpy attr locales
      python3-dev python3-pytest python3-pandas python3-scipy
      python3-sklearn python3-joblib
      libcurl4-openssl-dev nginx-light)

# Debian's nginx starts a system-wide server on port 80 when installed.
# The tests run their own nginx on loopback; the service is not wanted
# (and cannot start in a container without an init system).  A
# policy-rc.d that denies every start holds it off during the install.
POLICY_RC=/usr/sbin/policy-rc.d

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

install_deps() {
	local missing=()
	for p in "${DEPS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "bootstrap: installing ${missing[*]}"
	as_root apt-get update -qq
	# Ours only if there was none: an existing policy is left as it is.
	local own_policy=
	if [ ! -e "$POLICY_RC" ]; then
		printf '#!/bin/sh\n# bootstrap.sh: no service starts during its install\nexit 101\n' |
			as_root tee "$POLICY_RC" >/dev/null
		as_root chmod 755 "$POLICY_RC"
		own_policy=1
	fi
	local rc=0
	as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
		rc=$?
	if [ -n "$own_policy" ]; then
		as_root rm -f "$POLICY_RC"
	fi
	return $rc
}

build() {
	if [ -f "$BUILD_DIR/build.ninja" ]; then
		meson setup --reconfigure "$BUILD_DIR" ${MESON_ARGS:-} >/dev/null
	else
		meson setup "$BUILD_DIR" ${MESON_ARGS:-}
	fi
	ninja -C "$BUILD_DIR"
}

case "${1:-}" in
deps)
	install_deps ;;
demo)
	install_deps
	build
	# The demo runs the installed programs' Python package.
	as_root meson install -C "$BUILD_DIR" --quiet
	exec "$here/tools/demo.sh" "$BUILD_DIR" ;;
test)
	install_deps
	build
	meson test -C "$BUILD_DIR" --print-errorlogs --num-processes 2 ${TEST_ARGS:-} ;;
*)
	echo "usage: $0 demo|test|deps" >&2
	exit 2 ;;
esac
