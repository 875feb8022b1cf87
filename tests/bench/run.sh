#!/bin/bash
# tests/bench/run.sh - exposrd benchmarks (make bench). Loopback only,
# about 3 minutes; not part of the test suite.
#
#   api.sh      startup time, RSS with 1,000 tunnels, API throughput
#               (wrk against GET /v1/tunnel/<id>, nginx as a baseline)
#   tunnel.sh   HTTP through a tunnel: nginx direct vs haproxy vs the
#               exposrd tunnel (tunnel-client.c, ws-multiplex), 1 KiB and
#               1 MiB responses, CPU per request, RSS idle / per idle
#               tunnel / peak, the issue's targets with PASS/FAIL
#   ssh.sh      the SSH transport (OpenSSH `ssh -R` as the tunnel client)
#               beside direct and the WebSocket tunnel: 1 KiB req/s, p99,
#               CPU per request, RSS per idle SSH tunnel (builds WITH_SSH)
#
# Progress goes to stderr; both tables are printed at the end and written
# to tests/bench/results-latest.txt.
# Arguments: the parts to run, tests/bench/<part>.sh (default: api tunnel ssh sni)
# each gets BENCH_RESULTS=<file> for its table.  Environment: see
# the two scripts (EXPOSRD, BENCH_DURATION, BENCH_CONNS, BENCH_THREADS, ...).
# Exit status 1 if a part could not run; targets missed do not count.
#
# Invoked as "sh tests/bench/run.sh": re-exec under bash.
if [ -z "${BASH_VERSION:-}" ]; then
	exec bash "$0" "$@"
fi
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/exposrd-benchall.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PARTS=("$@")
[ ${#PARTS[@]} -gt 0 ] || PARTS=(api tunnel ssh sni)
rc=0
for part in "${PARTS[@]}"; do
	if [ "$part" = run ] || [ ! -f "$HERE/$part.sh" ]; then
		echo "run.sh: unknown part '$part' (parts: tests/bench/<part>.sh, e.g. api tunnel)" >&2
		exit 2
	fi
	BENCH_RESULTS=$TMP/$part.txt bash "$HERE/$part.sh" >/dev/null || {
		echo "run.sh: $part.sh failed" >&2
		rc=1
	}
done

: >"$TMP/all"
for part in "${PARTS[@]}"; do
	if [ -s "$TMP/$part.txt" ]; then
		[ -s "$TMP/all" ] && echo >>"$TMP/all"
		cat "$TMP/$part.txt" >>"$TMP/all"
	fi
done
if [ -s "$TMP/all" ]; then
	cp "$TMP/all" "$HERE/results-latest.txt"
	echo
	echo "== results (tests/bench/results-latest.txt) =="
	cat "$TMP/all"
fi
exit "$rc"
