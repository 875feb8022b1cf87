# lib.sh - helpers for the integration scenarios (sourced by t-*.sh).
#
# POSIX sh.  Every scenario drives the real binary ("$EXPOSRD") over
# loopback with curl and prints one "ok - name" / "not ok - name" line per
# check.  Diagnostics are printed as "# ..." lines (shown by run-tests.sh).
#
# Server handling:
#   start_server [ARGS...]   start "$EXPOSRD" ARGS in the background.  The
#                            tokens @API@, @ADMIN@ and @P3@ inside ARGS (and
#                            inside $SRV_ENV, a space-separated list of
#                            NAME=VALUE environment settings) are replaced by
#                            free ports, also left in $API_PORT, $ADMIN_PORT,
#                            $P3_PORT.  Waits (bounded) until the API port
#                            answers HTTP.  Retries with new ports when the
#                            listen fails.  Sets SRV_PID, SRV_LOG, API, ADMIN.
#   start_std [ARGS...]      start_server with the usual test setup: API,
#                            admin interface and admin API (key "secretkey"),
#                            registration and HTTP ingress on localhost, the
#                            ingress sharing the API port (its default, 8080,
#                            would be a second listener).
#   stop_server [NAME]       SIGTERM, bounded wait; one check: exit status 0
#                            (non-zero, e.g. LeakSanitizer 23, fails with the log).
#
# Requests:
#   req METHOD URL [curl args]   sets STATUS, BODY (also in $T/body),
#                                headers in $T/headers
#   check NAME METHOD URL STATUS [curl args]   req + ok/fail on the status
#   expect_status METHOD URL STATUS [curl args] the same, name made up
#   jv PYEXPR                    evaluate PYEXPR with j = parsed $BODY and
#                                print it (strings raw, others as JSON)
#   expect_json NAME PYEXPR EXPECTED   jv == EXPECTED
#   expect_true NAME PYEXPR            bool(PYEXPR) with j = parsed $BODY

TNAME=$(basename "$0" .sh)
TNAME=${TNAME#t-}
TOPDIR=$(cd "$(dirname "$0")/../.." && pwd)
: "${EXPOSRD:=$TOPDIR/build/exposrd}"
case $EXPOSRD in
/*) ;;
*) EXPOSRD=$(pwd)/$EXPOSRD ;;
esac
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
export PY
ADMIN_KEY=secretkey
ADMIN_AUTH="Authorization: Bearer $(printf %s "$ADMIN_KEY" | base64)"
# LeakSanitizer needs no ptrace here; keep reports on stderr (the log).
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export ASAN_OPTIONS

T=$(mktemp -d "${TMPDIR:-/tmp}/exposrd-it-$TNAME.XXXXXX") || exit 1
NPASS=0
NFAIL=0
ALL_PIDS=""
SRV_PID=""
SRV_LOG=""
SRV_N=0

lib_cleanup() {
	for _p in $ALL_PIDS; do
		kill -9 "$_p" 2>/dev/null
	done
	rm -rf "$T"
}
trap lib_cleanup EXIT
trap 'exit 1' INT TERM HUP

# ---- reporting ----

ok() {
	NPASS=$((NPASS + 1))
	echo "ok - $TNAME: $1"
}

diag() {
	printf '%s\n' "$@" | sed 's/^/# /'
}

# fail NAME [detail...]: one "not ok" line, the detail and the log tail.
fail() {
	NFAIL=$((NFAIL + 1))
	echo "not ok - $TNAME: $1"
	shift
	[ $# -gt 0 ] && diag "$@"
	if [ -n "$SRV_LOG" ] && [ -f "$SRV_LOG" ]; then
		echo "# --- server log tail ($SRV_LOG) ---"
		tail -8 "$SRV_LOG" | cut -c1-400 | sed 's/^/# /'
	fi
}

# result NAME CONDITION-EXIT-STATUS [detail...]
result() {
	_n=$1
	_rc=$2
	shift 2
	if [ "$_rc" -eq 0 ]; then ok "$_n"; else fail "$_n" "$@"; fi
}

finish() {
	[ -n "$SRV_PID" ] && stop_server
	[ "$NFAIL" -eq 0 ]
	exit $?
}

# ---- ports and servers ----

# Three distinct free TCP ports, space-separated.
free_ports() {
	$PY -c '
import socket
ss = []
for _ in range(3):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("", 0))
    ss.append(s)
print(" ".join(str(s.getsockname()[1]) for s in ss))
'
}

# shell-quote one word
shq() {
	printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
}

subst_ports() {
	printf '%s' "$1" | sed -e "s/@API@/$API_PORT/g" -e "s/@ADMIN@/$ADMIN_PORT/g" -e "s/@P3@/$P3_PORT/g"
}

# wait_http PORT [SECONDS]: until something answers HTTP on PORT.
wait_http() {
	_wp=$1
	_tries=$((${2:-5} * 20))
	while [ $_tries -gt 0 ]; do
		_code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$_wp/__ready__" 2>/dev/null)
		[ "$_code" != "000" ] && [ -n "$_code" ] && return 0
		if [ -n "$SRV_PID" ] && ! kill -0 "$SRV_PID" 2>/dev/null; then
			return 2
		fi
		sleep 0.05
		_tries=$((_tries - 1))
	done
	return 1
}

# launch_server ARGS...: start once with the current ports; no wait.
launch_server() {
	SRV_N=$((SRV_N + 1))
	SRV_LOG=$T/server-$SRV_N.log
	_cmd="exec env"
	for _e in ${SRV_ENV:-}; do
		_cmd="$_cmd $(shq "$(subst_ports "$_e")")"
	done
	_cmd="$_cmd $(shq "$EXPOSRD")"
	for _a in "$@"; do
		_cmd="$_cmd $(shq "$(subst_ports "$_a")")"
	done
	eval "$_cmd" >"$SRV_LOG" 2>&1 &
	SRV_PID=$!
	ALL_PIDS="$ALL_PIDS $SRV_PID"
}

start_server() {
	_attempt=0
	while [ $_attempt -lt 3 ]; do
		_attempt=$((_attempt + 1))
		_ports=$(free_ports)
		API_PORT=${_ports%% *}
		_rest=${_ports#* }
		ADMIN_PORT=${_rest%% *}
		P3_PORT=${_rest#* }
		API=http://127.0.0.1:$API_PORT
		ADMIN=http://127.0.0.1:$ADMIN_PORT
		launch_server "$@"
		wait_http "${SRV_WAIT_PORT:-$API_PORT}" "${SRV_WAIT_SECONDS:-8}"
		_wrc=$?
		[ $_wrc -eq 0 ] && return 0
		if [ $_wrc -eq 2 ] && grep -qi 'listen\|in use' "$SRV_LOG"; then
			wait "$SRV_PID" 2>/dev/null
			SRV_PID=""
			continue # port raced away: new ports
		fi
		break
	done
	fail "server starts ($*)" "server did not answer on port ${SRV_WAIT_PORT:-$API_PORT}"
	[ -n "$SRV_PID" ] && kill -9 "$SRV_PID" 2>/dev/null
	SRV_PID=""
	finish
}

start_std() {
	start_server --api-port @API@ --ingress-http-port @API@ --admin-enable --admin-port @ADMIN@ \
		--admin-api-enable --admin-api-port @ADMIN@ --admin-api-key "$ADMIN_KEY" \
		--allow-registration --ingress-http-url "http://localhost:@API@" "$@"
}

# wait_exit PID SECONDS: 0 when PID is gone in time.
wait_exit() {
	_tries=$(($2 * 20))
	while kill -0 "$1" 2>/dev/null; do
		[ $_tries -le 0 ] && return 1
		# a zombie still answers kill -0: check the state
		_st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null || ps -o stat= -p "$1" 2>/dev/null)
		case $_st in Z*) return 0 ;; esac
		sleep 0.05
		_tries=$((_tries - 1))
	done
	return 0
}

# stop_server [NAME] [SIGNAL]: stop the current server; one check.
stop_server() {
	_name=${1:-server exits 0 on SIGTERM}
	_sig=${2:-TERM}
	[ -n "$SRV_PID" ] || return 0
	_pid=$SRV_PID
	kill -"$_sig" "$_pid" 2>/dev/null
	if ! wait_exit "$_pid" 15; then
		kill -9 "$_pid" 2>/dev/null
		wait "$_pid" 2>/dev/null
		SRV_PID=""
		fail "$_name" "server still running 15 s after SIG$_sig"
		return 1
	fi
	wait "$_pid"
	_src=$?
	SRV_PID=""
	if [ $_src -eq 0 ] && ! grep -q 'Sanitizer\|runtime error:' "$SRV_LOG"; then
		ok "$_name"
		return 0
	fi
	fail "$_name" "exit status $_src"
	echo "# --- sanitizer report ---"
	grep -A25 'Sanitizer\|runtime error:' "$SRV_LOG" | head -60 | sed 's/^/# /'
	return 1
}

# ---- requests ----

req() {
	rm -f "$T/body" "$T/headers"
	_m=$1
	_u=$2
	shift 2
	if [ "$_m" = HEAD ]; then
		STATUS=$(curl -s -I -o "$T/body" -D "$T/headers" -w '%{http_code}' --max-time 5 "$@" "$_u")
	else
		STATUS=$(curl -s -o "$T/body" -D "$T/headers" -w '%{http_code}' --max-time 5 -X "$_m" "$@" "$_u")
	fi
	[ -f "$T/body" ] || : >"$T/body"
	BODY=$(cat "$T/body")
}

# req_json METHOD URL JSON [curl args]: JSON body with content type.
req_json() {
	_m=$1
	_u=$2
	_d=$3
	shift 3
	req "$_m" "$_u" -H 'Content-Type: application/json' --data-binary "$_d" "$@"
}

check() {
	_n=$1
	_want=$4
	shift
	_m=$1
	_u=$2
	shift 3
	req "$_m" "$_u" "$@"
	if [ "$STATUS" = "$_want" ]; then
		ok "$_n"
		return 0
	fi
	fail "$_n" "$_m $_u: expected status $_want, got $STATUS" "body: $(printf '%s' "$BODY" | head -c 600)"
	return 1
}

expect_status() {
	_p=${2#http://}
	_p=/${_p#*/}
	check "$1 $_p -> $3" "$@"
}

# header NAME: value of a response header of the last request (first one).
header() {
	tr -d '\r' <"$T/headers" | awk -v n="$1" 'BEGIN{n=tolower(n)} { i=index($0,":"); if (i && tolower(substr($0,1,i-1))==n) { v=substr($0,i+1); sub(/^[ \t]+/,"",v); print v; exit } }'
}

jv() {
	printf '%s' "$BODY" | $PY -c '
import json, sys
src = sys.stdin.read()
try:
    j = json.loads(src)
except Exception:
    j = None
try:
    v = eval(sys.argv[1])
except Exception as e:
    print("<error: %s: %s>" % (type(e).__name__, e))
    sys.exit(0)
print(v if isinstance(v, str) else json.dumps(v, separators=(",", ":")))
' "$1"
}

expect_json() {
	_got=$(jv "$2")
	if [ "$_got" = "$3" ]; then
		ok "$1"
		return 0
	fi
	fail "$1" "$2: expected $3, got $_got" "status $STATUS body: $(printf '%s' "$BODY" | head -c 600)"
	return 1
}

expect_true() {
	_got=$(jv "bool($2)")
	if [ "$_got" = "true" ]; then
		ok "$1"
		return 0
	fi
	fail "$1" "not true: $2 ($_got)" "status $STATUS body: $(printf '%s' "$BODY" | head -c 800)"
	return 1
}

# check_json NAME METHOD URL STATUS PYEXPR EXPECTED [curl args]: status and
# one JSON value as a single check.
check_json() {
	_n=$1
	_m=$2
	_u=$3
	_want=$4
	_ex=$5
	_exv=$6
	shift 6
	req "$_m" "$_u" "$@"
	_got=$(jv "$_ex")
	if [ "$STATUS" = "$_want" ] && [ "$_got" = "$_exv" ]; then
		ok "$_n"
		return 0
	fi
	fail "$_n" "$_m $_u: expected $_want with $_ex = $_exv; got $STATUS with $_got" \
		"body: $(printf '%s' "$BODY" | head -c 600)"
	return 1
}

# ---- API shortcuts ----

# new_account: creates an account through the admin API (works without
# registration).  Sets ACC (normalized id), ACC_HR, TOKEN, AUTH (header).
new_account() {
	req POST "$ADMIN/v1/admin/account" -H "$ADMIN_AUTH"
	if [ "$STATUS" != 201 ]; then
		fail "create account via admin API" "status $STATUS body $BODY"
		return 1
	fi
	ACC=$(jv 'j["account_id"]')
	ACC_HR=$(jv 'j["account_id_hr"]')
	TOKEN=$(printf %s "$ACC" | base64)
	AUTH="Authorization: Bearer $TOKEN"
}

# put_tunnel ID [JSON]: PUT as $AUTH; sets STATUS/BODY.
put_tunnel() {
	_pd=${2-}
	[ -n "$_pd" ] || _pd='{}'
	req_json PUT "$API/v1/tunnel/$1" "$_pd" -H "$AUTH"
}

# ---- Node test tools (tests/peer: ws-peer.js, target.js, wsclient.js) ----
#
#   need_peer                node and tests/peer/node_modules; runs the (bounded)
#                            npm ci when node_modules is missing; fails the
#                            scenario (and ends it) when that is not possible.
#   spawn NAME CMD...        CMD in the background, stdout in $T/NAME.out,
#                            stderr in $T/NAME.err, pid in SPAWN_PID (killed
#                            at exit like the servers).
#   wait_line NAME ERE [SECONDS]   until $T/NAME.out has a matching line.
#   wait_count NAME ERE N [SECONDS]   until it has N matching lines.
#   wait_rc PID SECONDS      bounded wait for a spawned PID; its exit status
#                            in WAIT_RC ("timeout" when still running).
#   stop_pid PID [SECONDS]   SIGTERM, bounded wait, then SIGKILL; WAIT_RC.
#   start_target [ARGS...]   target.js on a free port: TARGET_PID,
#                            TARGET_PORT, TARGET (http://127.0.0.1:PORT).
#   start_peer NAME ARGS...  ws-peer.js --api "$API" ARGS; waits (bounded) for
#                            its READY line, non-zero if none; PEER_PID.
#   peer_diag NAME           the tool's output as "# " lines.
#   proc_kb PID FIELD        a /proc/PID/status value in kB (VmHWM, VmRSS).
#   sha_of FILE|-            hex sha256.

PEER_DIR=$TOPDIR/tests/peer

need_peer() {
	if ! command -v node >/dev/null 2>&1; then
		fail "node is installed (the tests/peer tools need Node >= 18)"
		finish
	fi
	if [ -f "$PEER_DIR/node_modules/@exposr/ws-multiplex/package.json" ] &&
		[ -f "$PEER_DIR/node_modules/ws/package.json" ]; then
		return 0
	fi
	diag "tests/peer/node_modules is missing: running npm ci (at most 180 s)"
	if ! command -v npm >/dev/null 2>&1; then
		fail "npm is installed (needed once: cd tests/peer && npm ci --ignore-scripts --no-audit --no-fund)"
		finish
	fi
	(cd "$PEER_DIR" && timeout 180 npm ci --ignore-scripts --no-audit --no-fund) >"$T/npm-ci.log" 2>&1
	_np_rc=$?
	if [ $_np_rc -ne 0 ] || [ ! -f "$PEER_DIR/node_modules/@exposr/ws-multiplex/package.json" ]; then
		fail "npm ci in tests/peer (exit status $_np_rc)" "$(tail -15 "$T/npm-ci.log")"
		finish
	fi
}

spawn() {
	_sp_name=$1
	shift
	"$@" >"$T/$_sp_name.out" 2>"$T/$_sp_name.err" &
	SPAWN_PID=$!
	ALL_PIDS="$ALL_PIDS $SPAWN_PID"
}

wait_line() {
	_wl_tries=$((${3:-10} * 20))
	while [ $_wl_tries -gt 0 ]; do
		grep -Eq -- "$2" "$T/$1.out" 2>/dev/null && return 0
		sleep 0.05
		_wl_tries=$((_wl_tries - 1))
	done
	return 1
}

wait_count() {
	_wc_tries=$((${4:-10} * 20))
	while [ $_wc_tries -gt 0 ]; do
		[ "$(grep -Ec -- "$2" "$T/$1.out" 2>/dev/null)" -ge "$3" ] && return 0
		sleep 0.05
		_wc_tries=$((_wc_tries - 1))
	done
	return 1
}

wait_rc() {
	if wait_exit "$1" "$2"; then
		wait "$1"
		WAIT_RC=$?
	else
		WAIT_RC=timeout
	fi
}

stop_pid() {
	kill -TERM "$1" 2>/dev/null
	wait_rc "$1" "${2:-5}"
	if [ "$WAIT_RC" = timeout ]; then
		kill -9 "$1" 2>/dev/null
		wait "$1" 2>/dev/null
	fi
}

start_target() {
	spawn target node "$PEER_DIR/target.js" --port 0 "$@"
	TARGET_PID=$SPAWN_PID
	if ! wait_line target '^LISTENING [0-9]+$' 15; then
		fail "target.js starts" "$(cat "$T/target.out" "$T/target.err" 2>/dev/null | tail -10)"
		finish
	fi
	TARGET_PORT=$(awk '/^LISTENING/ { print $2; exit }' "$T/target.out")
	TARGET=http://127.0.0.1:$TARGET_PORT
}

start_peer() {
	_sp_peer=$1
	shift
	spawn "$_sp_peer" node "$PEER_DIR/ws-peer.js" --api "$API" "$@"
	PEER_PID=$SPAWN_PID
	wait_line "$_sp_peer" '^READY ' "${PEER_WAIT_SECONDS:-20}"
}

peer_diag() {
	echo "# --- $1 stdout ---"
	tail -12 "$T/$1.out" 2>/dev/null | cut -c1-300 | sed 's/^/# /'
	echo "# --- $1 stderr ---"
	tail -8 "$T/$1.err" 2>/dev/null | cut -c1-300 | sed 's/^/# /'
}

proc_kb() {
	awk -v f="$2:" '$1 == f { print $2; exit }' "/proc/$1/status" 2>/dev/null
}

sha_of() {
	if [ "$1" = - ]; then sha256sum; else sha256sum <"$1"; fi | cut -d' ' -f1
}
