#!/bin/sh
# static-check.sh - the static-build stage of the test suite (called by
# tests/check.sh; runs alone too).  Ends with one "N passed, N failed" line.
#
#   1. make static (x86_64, small flavour, every feature); 2 MiB budget
#   2. tests/integration/t-static.sh: the binary in an empty root
#      (start, /ping, account, tunnel, HTTP through the tunnel)
#   3. the API and tunnel integration scenarios against the static binary
#   4. cross builds (STATIC_ARCHS, default "aarch64 armv7") and the same
#      empty-root smoke test under qemu-user (Debian qemu-user-static)
#   5. the forced portable fallbacks (COMPAT_FORCE_FALLBACK=1): build,
#      unit tests and the API/tunnel scenarios
#
# Dependencies are cached in ~/.cache/exposrd-deps (EXPOSRD_DEPS_CACHE):
# a cold run builds them (about 1-1.5 min per architecture on 2 cores),
# later runs only compile exposrd.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP" || exit 1
ALL_FEATURES="WITH_SQLITE=1 WITH_PGSQL=1 WITH_REDIS=1 WITH_SSH=1 WITH_TLS=1"
CROSS=${STATIC_ARCHS-aarch64 armv7}
# the API and tunnel parts of the integration suite
SCENARIOS=${STATIC_SCENARIOS:-t-api-accounts t-api-tunnels t-api-validation t-admin t-sqlite t-ingress-http t-ws-transport}
npass=0
nfail=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

pass() {
	npass=$((npass + 1))
	echo "ok - static-check: $1"
}
failed() {
	nfail=$((nfail + 1))
	echo "not ok - static-check: $1"
	tail -30 "$log" | sed 's/^/# /'
}
# tests OUTPUT-FILE: count the ok/not ok lines of a test run
tests() {
	grep -E '^(not ok - |#)' "$1" | head -40
	p=$(grep -c '^ok - ' "$1")
	f=$(grep -c '^not ok - ' "$1")
	npass=$((npass + p))
	nfail=$((nfail + f))
}
# scenarios BINARY LABEL: the chosen integration scenarios against BINARY
scenarios() {
	for s in $SCENARIOS; do
		EXPOSRD=$TOP/$1 sh "tests/integration/$s.sh" >"$log" 2>&1
		rc=$?
		grep -q '^not ok - ' "$log" || [ $rc -eq 0 ] || echo "not ok - $2 $s (exit status $rc)" >>"$log"
		sed "s/^\(not \)\{0,1\}ok - /&$2 /" "$log" >"$log.2"
		tests "$log.2"
		rm -f "$log.2"
	done
}
# static ARCH: make static for ARCH with every feature; prints the size line
build_static() {
	t0=$(date +%s)
	if make --no-print-directory static ARCH="$1" $ALL_FEATURES >"$log" 2>&1; then
		grep '^static:' "$log"
		grep '^deps: .* ready' "$log"
		pass "make static ARCH=$1 (every feature) in $(($(date +%s) - t0)) s"
		return 0
	fi
	failed "make static ARCH=$1"
	return 1
}

# 1-3: x86_64
if build_static x86_64; then
	sh tests/integration/t-static.sh >"$log" 2>&1 || echo "not ok - t-static exit status $?" >>"$log"
	tests "$log"
	scenarios build-static/exposrd "[static]"
fi

# 4: cross builds under qemu-user
for arch in $CROSS; do
	case $arch in
	aarch64) qemu=qemu-aarch64-static bin=build-static-aarch64/exposrd ;;
	armv7) qemu=qemu-arm-static bin=build-static-armv7/exposrd ;;
	*) echo "# unknown arch $arch" && continue ;;
	esac
	if ! command -v "$qemu" >/dev/null 2>&1; then
		SUDO=
		[ "$(id -u)" -eq 0 ] || SUDO=sudo
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends qemu-user-static >"$log" 2>&1
	fi
	build_static "$arch" || continue
	STATIC_BIN=$bin STATIC_QEMU=$qemu sh tests/integration/t-static.sh >"$log" 2>&1 ||
		echo "not ok - t-static ($arch) exit status $?" >>"$log"
	tests "$log"
done

# 5: the portable fallbacks, forced (what a macOS build compiles)
# (the backends that need a server only when tests/check.sh started them)
FB_SW=
[ -n "${EXPOSRD_TEST_PGSQL_URL:-}" ] || FB_SW="$FB_SW WITH_PGSQL=0"
[ -n "${EXPOSRD_TEST_REDIS_URL:-}" ] || FB_SW="$FB_SW WITH_REDIS=0"
FB="COMPAT_FORCE_FALLBACK=1 (build-fallback/$FB_SW)"
# shellcheck disable=SC2086
if make --no-print-directory -j2 B=build-fallback "CFLAGS=-O2 -g -DCOMPAT_FORCE_FALLBACK=1" $FB_SW \
	build-fallback/exposrd unit >"$log" 2>&1; then
	pass "build with $FB"
	sh tests/run-tests.sh build-fallback unit >"$log" 2>&1
	sed 's/^\(not \)\{0,1\}ok - /&[fallback] /' "$log" >"$log.2"
	tests "$log.2"
	rm -f "$log.2"
	scenarios build-fallback/exposrd "[fallback]"
else
	failed "build with $FB"
fi

echo "$npass passed, $nfail failed"
[ "$nfail" -eq 0 ]
