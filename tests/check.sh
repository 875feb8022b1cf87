#!/bin/sh
# check.sh - the full test suite: lint, the default build and the
# AddressSanitizer + UBSan build, each running unit tests, fuzz-corpus
# replays and integration tests.  Ends with one "N passed, N failed" line.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP" || exit 1
total_pass=0
total_fail=0

tally() {
	# tally LABEL LOGFILE: add the summary line of a run to the totals
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$2" | tail -1)
	if [ -z "$line" ]; then
		echo "not ok - $1 produced no summary"
		total_fail=$((total_fail + 1))
		return
	fi
	p=${line%% passed*}
	f=${line#*, }
	f=${f%% failed}
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	echo "== $1: $line"
}

log=$(mktemp)
# The real servers the storage tests need (PostgreSQL, redis-server).
eval "$(sh ci/services.sh start)"
trap 'rm -f "$log"; sh ci/services.sh stop' EXIT

if make lint >"$log" 2>&1; then
	echo "ok - lint"
	total_pass=$((total_pass + 1))
else
	cat "$log"
	echo "not ok - lint"
	total_fail=$((total_fail + 1))
fi

for san in 0 1; do
	label="build SAN=$san"
	if ! make -j2 SAN=$san all unit replay >"$log" 2>&1; then
		tail -40 "$log"
		echo "not ok - $label"
		total_fail=$((total_fail + 1))
		continue
	fi
	make --no-print-directory SAN=$san test 2>&1 | tee "$log"
	tally "tests SAN=$san" "$log"
done

# Static builds: make static (x86_64 with every feature, 2 MiB budget),
# the binary in an empty root, aarch64/armv7 under qemu-user, the forced
# portable fallbacks (ci/static-check.sh).  STATIC_CHECK=0 leaves them out.
if [ "${STATIC_CHECK:-1}" = 1 ]; then
	sh ci/static-check.sh 2>&1 | tee "$log"
	tally "static builds" "$log"
fi

echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
