#!/bin/sh
# Self-test of the tools in tests/peer against selftest/fake-server.js (no C
# server needed).  Needs node, curl, sha256sum; run `npm ci` in tests/peer first.
# Prints "ok - ..." / "not ok - ..." lines; exit status 0 when all pass.

cd "$(dirname "$0")/.." || exit 1
curl() { command curl --max-time 30 "$@"; }
T=$(mktemp -d "${TMPDIR:-/tmp}/peer-selftest.XXXXXX") || exit 1
PIDS=""
NFAIL=0
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ok() { echo "ok - $1"; }
bad() { NFAIL=$((NFAIL + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "# $l"; done; }
check() { # NAME COND...
	_n=$1; shift
	if "$@"; then ok "$_n"; else bad "$_n"; fi
}

# bg NAME CMD...: start in background, stdout in $T/NAME.out, stderr $T/NAME.err
bg() {
	_n=$1; shift
	"$@" >"$T/$_n.out" 2>"$T/$_n.err" &
	eval "PID_$_n=$!"
	PIDS="$PIDS $!"
}
# wait_line NAME REGEX [TENTHS]: wait until $T/NAME.out has a matching line
wait_line() {
	_i=0
	while [ "$_i" -lt "${3:-50}" ]; do
		grep -Eq "$2" "$T/$1.out" 2>/dev/null && return 0
		sleep 0.1
		_i=$((_i + 1))
	done
	echo "# timeout waiting for /$2/ in $1:"; sed 's/^/#   /' "$T/$1.out" "$T/$1.err"
	return 1
}
# wait_exit PID [TENTHS]: wait for exit, status in $RC
wait_exit() {
	_i=0
	while kill -0 "$1" 2>/dev/null && [ "$_i" -lt "${2:-50}" ]; do sleep 0.1; _i=$((_i + 1)); done
	if kill -0 "$1" 2>/dev/null; then RC=timeout; return 1; fi
	wait "$1"; RC=$?
}

bg target node target.js --port 0
bg server node selftest/fake-server.js --port 0 --max-connections 2
wait_line target '^LISTENING' || exit 1
wait_line server '^LISTENING' || exit 1
TP=$(awk '/^LISTENING/{print $2}' "$T/target.out")
SP=$(awk '/^LISTENING/{print $2}' "$T/server.out")
API=http://127.0.0.1:$SP
H="Host: tun-one.localhost"

# --- basic connect, reuse-token, traffic ---
bg peer node ws-peer.js --api "$API" --tunnel tun-one --target "http://127.0.0.1:$TP" --reuse-token
check "peer READY" wait_line peer "^READY tun-one http://tun-one.localhost:$SP/\$"
check "reuse-token refused" grep -q '^REUSE-TOKEN 401 {"error":"PERMISSION_DENIED"}$' "$T/peer.out"
check "two CONNECTED lines" test "$(grep -c '^CONNECTED' "$T/peer.out")" -eq 2

check "GET /hello via tunnel" test "$(curl -s -H "$H" "$API/hello")" = hello
WANT=$(curl -s "http://127.0.0.1:$TP/bytes-sha256?n=3000001&seed=9" | cut -d' ' -f1)
GOT=$(curl -s -H "$H" "$API/bytes?n=3000001&seed=9" | sha256sum | cut -d' ' -f1)
check "3 MB download intact" test "$WANT" = "$GOT"
GOT=$(curl -s -H "$H" "$API/bytes-chunked?n=3000001&seed=9" | sha256sum | cut -d' ' -f1)
check "3 MB chunked download intact" test "$WANT" = "$GOT"
node target.js --gen-bytes 2000000 --seed 5 >"$T/up.bin"
UP=$(sha256sum <"$T/up.bin" | cut -d' ' -f1)
check "2 MB upload intact" test "$(curl -s -H "$H" -T "$T/up.bin" "$API/sha256")" = "$UP 2000000"
check "2 MB echo intact" test "$(curl -s -H "$H" --data-binary @"$T/up.bin" "$API/echo" | sha256sum | cut -d' ' -f1)" = "$UP"
# slow reader: curl limited to 8 MB/s for a 30 MB body -> the server PAUSEs us
WANT=$(curl -s "http://127.0.0.1:$TP/bytes-sha256?n=30000000&seed=1" | cut -d' ' -f1)
GOT=$(curl -s --limit-rate 8M -H "$H" "$API/bytes?n=30000000&seed=1" | sha256sum | cut -d' ' -f1)
check "slow reader download intact" test "$WANT" = "$GOT"
eval "kill -USR1 \$PID_peer"
check "peer saw PAUSE and RESUME" wait_line peer '^STATS .* rx_pause=[1-9][0-9]* rx_resume=[1-9]'
# slow target reader: upload 8 MB to /sha256?delay=5 -> we PAUSE the server
node target.js --gen-bytes 8000000 --seed 6 >"$T/up8.bin"
UP8=$(sha256sum <"$T/up8.bin" | cut -d' ' -f1)
check "upload to slow target intact" test "$(curl -s -H "$H" -T "$T/up8.bin" "$API/sha256?delay=5")" = "$UP8 8000000"
check "echo-headers via tunnel" sh -c "curl -s -H '$H' '$API/echo-headers' | grep -q '\"exposr-via\":\"fake\"'"
OUT=$(node wsclient.js --url "ws://127.0.0.1:$SP/ws" --host tun-one.localhost --count 20 --size 100000 --expect-first 'ws echo connected')
check "websocket through tunnel" test "$OUT" = "ws echo connected
OK 20"
OUT=$(node wsclient.js --url "ws://127.0.0.1:$SP/ws" --host nope.localhost --count 1)
check "wsclient UPGRADE-ERROR" sh -c "echo '$OUT' | grep -q '^UPGRADE-ERROR 502 '"

# --- a second peer over the cap: 1008 on every slot -> exit 3 ---
bg peer2 node ws-peer.js --api "$API" --account "$(awk '/^ACCOUNT/{print $2}' "$T/peer.out")" --tunnel tun-one --target "http://127.0.0.1:$TP"
eval "P2=\$PID_peer2"
wait_exit "$P2" 50
check "over-cap peer exits 3" test "$RC" = 3
check "over-cap peer saw CLOSED 1008" grep -q '^CLOSED 1008 unable to establish tunnel$' "$T/peer2.out"

# --- connections > cap: third slot refused, peer stays ---
bg peer3 node ws-peer.js --api "$API" --tunnel tun-three --target "http://127.0.0.1:$TP" --connections 3
check "3rd connection refused with 1008" wait_line peer3 '^CLOSED 1008 unable to establish tunnel$'
eval "P3=\$PID_peer3"
check "peer with 2/3 slots keeps running" kill -0 "$P3"
check "tunnel of 2/3 peer works" test "$(curl -s -H 'Host: tun-three.localhost' "$API/hello")" = hello

# --- disconnect: 1008 on all -> exit 3 ---
TOK=$(printf %s "$(awk '/^ACCOUNT/{print $2}' "$T/peer3.out")" | base64)
curl -s -X POST -H "Authorization: Bearer $TOK" -H 'Content-Type: application/json' -d '{}' "$API/v1/tunnel/tun-three/disconnect" >/dev/null
wait_exit "$P3" 30
check "disconnected peer exits 3" test "$RC" = 3

# --- target refused: 502 ---
bg peer4 node ws-peer.js --api "$API" --tunnel tun-four --target "http://127.0.0.1:1" --connections 1
wait_line peer4 '^READY' >/dev/null
check "refused target gives 502" test "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: tun-four.localhost' "$API/hello")" = 502
eval "P4=\$PID_peer4"
kill -TERM "$P4"
wait_exit "$P4" 30
check "SIGTERM exit status 0" test "$RC" = 0

# --- setup errors ---
node ws-peer.js --api "$API" --account CCCCCCCCCCCCCCCC --tunnel tun-five --target http://127.0.0.1:1 >"$T/p5.out" 2>&1
RC=$?
check "unknown account: exit 1 + API-ERROR" sh -c "[ $RC = 1 ] && grep -q '^API-ERROR GET /v1/account/CCCCCCCCCCCCCCCC/token 403' '$T/p5.out'"
node ws-peer.js --api "$API" >/dev/null 2>&1
check "usage error exit 2" test $? = 2

# --- server closes with 1001: the peer reconnects at once ---
eval "P1=\$PID_peer"
TOK1=$(printf %s "$(awk '/^ACCOUNT/{print $2}' "$T/peer.out")" | base64)
curl -s -X POST -H "Authorization: Bearer $TOK1" "$API/v1/tunnel/tun-one?kick=1001" >/dev/null
check "kicked peer prints CLOSED 1001" wait_line peer '^CLOSED 1001 kicked$'
check "kicked peer reconnects" wait_line peer '^CONNECTED 2/2$' 30
sleep 0.5
check "two reconnects" test "$(grep -c '^CONNECTED 2/2$' "$T/peer.out")" -ge 2
check "tunnel works after reconnect" test "$(curl -s -H "$H" "$API/hello")" = hello

# --- --no-reconnect: a 1001 close ends the slot; all ended, not all 1008 -> 4 ---
bg peer6 node ws-peer.js --api "$API" --tunnel tun-six --target "http://127.0.0.1:$TP" --no-reconnect
wait_line peer6 '^READY' >/dev/null
TOK6=$(printf %s "$(awk '/^ACCOUNT/{print $2}' "$T/peer6.out")" | base64)
curl -s -X POST -H "Authorization: Bearer $TOK6" "$API/v1/tunnel/tun-six?kick=1001" >/dev/null
eval "P6=\$PID_peer6"
wait_exit "$P6" 30
check "--no-reconnect peer exits 4 after 1001" test "$RC" = 4

# --- upgrade failures (second fake server) ---
bg server2 node selftest/fake-server.js --port 0 --ws-mode empty401
wait_line server2 '^LISTENING' >/dev/null
API2=http://127.0.0.1:$(awk '/^LISTENING/{print $2}' "$T/server2.out")
node ws-peer.js --api "$API2" --tunnel tun-seven --target "http://127.0.0.1:$TP" --no-reconnect --connections 1 >"$T/p7.out" 2>&1
RC=$?
check "empty 401: UPGRADE-ERROR 401, exit 4" sh -c "[ $RC = 4 ] && grep -q '^UPGRADE-ERROR 401 \$' '$T/p7.out'"
bg server3 node selftest/fake-server.js --port 0 --ws-mode silent
wait_line server3 '^LISTENING' >/dev/null
API3=http://127.0.0.1:$(awk '/^LISTENING/{print $2}' "$T/server3.out")
node ws-peer.js --api "$API3" --tunnel tun-eight --target "http://127.0.0.1:$TP" --no-reconnect --connections 1 >"$T/p8.out" 2>&1
RC=$?
check "silent server: handshake timeout, exit 4" sh -c "[ $RC = 4 ] && grep -q '^CONNECT-ERROR Opening handshake has timed out' '$T/p8.out'"

# --- first peer: SIGTERM -> 0 ---
eval "P1=\$PID_peer"
kill -TERM "$P1"
wait_exit "$P1" 30
check "first peer SIGTERM exit 0" test "$RC" = 0

[ "$NFAIL" -eq 0 ] && echo "# all passed" || echo "# $NFAIL failed"
[ "$NFAIL" -eq 0 ]
