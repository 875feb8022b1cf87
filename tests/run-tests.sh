#!/bin/sh
# run-tests.sh BUILD_DIR [unit|replay|integration]...
#
# Runs the unit test runners, the fuzz-corpus replays and the integration
# scenarios.  Each prints "ok - name" / "not ok - name" lines; this script
# counts them and ends with one line "N passed, N failed".
# Exit status is non-zero when anything failed.
B=${1:-build}
shift
PARTS=${*:-unit replay integration}
TOP=$(cd "$(dirname "$0")/.." && pwd)
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT

run() {
	# run NAME COMMAND...: a command that crashes or exits non-zero
	# without printing "not ok" still counts as one failure.
	name=$1
	shift
	out=$("$@" 2>&1)
	rc=$?
	printf '%s\n' "$out" | grep -E '^(ok|not ok) - |^#' >>"$LOG"
	printf '%s\n' "$out" | grep -E '^(not ok - |#)' || true
	if [ $rc -ne 0 ] && ! printf '%s\n' "$out" | grep -q '^not ok - '; then
		echo "not ok - $name (exit status $rc)" | tee -a "$LOG"
		printf '%s\n' "$out" | tail -20
	fi
	echo "  $name: $(printf '%s\n' "$out" | grep -c '^ok - ') passed, $(printf '%s\n' "$out" | grep -c '^not ok - ') failed"
}

for part in $PARTS; do
	case $part in
	unit)
		for t in "$B"/tests/t-*; do
			[ -x "$t" ] || continue
			run "unit $(basename "$t")" "$t"
		done
		;;
	replay)
		for r in "$B"/fuzz/replay-*; do
			[ -x "$r" ] || continue
			name=${r##*/replay-}
			run "replay $name" "$r" "$TOP/tests/fuzz/corpus/$name"
		done
		;;
	integration)
		for s in "$TOP"/tests/integration/t-*.sh; do
			[ -f "$s" ] || continue
			run "integration $(basename "$s" .sh)" env EXPOSRD="$TOP/$B/exposrd" sh "$s"
		done
		;;
	esac
done

passed=$(grep -c '^ok - ' "$LOG")
failed=$(grep -c '^not ok - ' "$LOG")
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
