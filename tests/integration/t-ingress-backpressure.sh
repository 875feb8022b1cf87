#!/bin/sh
# Backpressure through the HTTP ingress and the WebSocket transport
# (spec/transports.md §2.6, ingress.md §2.7): a public client reading a
# 100 MiB response slowly gets every byte while exposrd's memory stays
# bounded (it PAUSEs the peer instead of buffering), other requests are not
# starved meanwhile, and a slow target reading a 20 MiB upload gets it intact.
#
# Memory bound: the server documents about 9.5 MiB per WebSocket connection
# (transport-ws.h).  The checks allow 8 MiB of VmHWM (peak RSS) growth for
# the slow upload (run first; buffering it would cost 20 MiB) and 24 MiB for
# the slow download, over the value after a warm-up transfer.  Under
# AddressSanitizer freed memory sits in a quarantine (256 MiB by default),
# which would measure ASan rather than the server: there the quarantine is
# capped at 4 MiB and both bounds get 12 MiB more for it, the redzones and
# the shadow memory.
. "$(dirname "$0")/lib.sh"

BOUND_KB=$((24 * 1024))
UP_BOUND_KB=$((8 * 1024))
if grep -q __asan_init "$EXPOSRD" 2>/dev/null; then
	SRV_ENV="ASAN_OPTIONS=$ASAN_OPTIONS:quarantine_size_mb=4"
	BOUND_KB=$(((24 + 12) * 1024))
	UP_BOUND_KB=$(((8 + 12) * 1024))
fi

need_peer
start_target
start_std
new_account || finish
start_peer p1 --account "$ACC" --tunnel bp-one --target "$TARGET"
if [ $? -ne 0 ]; then
	fail "ws-peer connects (READY)" "$(peer_diag p1)"
	finish
fi
PEER1=$PEER_PID
H="Host: bp-one.localhost:$API_PORT"
MIB100=104857600

# warm-up: buffers, pools and the channel exist
curl -s --max-time 20 -H "$H" "$API/bytes?n=4194304&seed=1" -o /dev/null
BASE_KB=$(proc_kb "$SRV_PID" VmHWM)

# ---- slow target reading a 20 MiB upload ----
# exposrd must stop reading the public client while the peer PAUSEs it;
# buffering the upload would show as 20 MiB of growth.
head -c 20971520 /dev/urandom >"$T/up20.bin"
UPSUM=$(sha_of "$T/up20.bin")
OUT=$(curl -s --max-time 60 -H "$H" -T "$T/up20.bin" "$API/sha256?delay=5")
[ "$OUT" = "$UPSUM 20971520" ]
result "20 MiB upload to a slow reading target (delay 5 ms per chunk) intact" $? "want $UPSUM 20971520" "got $OUT"
HWM_KB=$(proc_kb "$SRV_PID" VmHWM)
GROWTH=$((HWM_KB - BASE_KB))
[ "$GROWTH" -lt "$UP_BOUND_KB" ]
result "the upload is not buffered (VmHWM growth $((GROWTH / 1024)) MiB < $((UP_BOUND_KB / 1024)) MiB)" $? \
	"VmHWM $BASE_KB -> $HWM_KB kB"

# ---- slow reader of 100 MiB (20 MiB/s: about 5 s) ----
WANT=$(curl -s --max-time 10 "$TARGET/bytes-sha256?n=$MIB100&seed=7")
(curl -s --max-time 60 --limit-rate 20M -H "$H" "$API/bytes?n=$MIB100&seed=7" | sha_of - >"$T/slow.sum") &
SLOW=$!
ALL_PIDS="$ALL_PIDS $SLOW"
sleep 1
# meanwhile other requests on the same tunnel answer promptly
FAST=$(for i in 1 2 3; do
	curl -s -o /dev/null --max-time 5 -w '%{http_code}:%{time_total} ' -H "$H" "$API/bytes?n=1000000&seed=$i"
done)
case $FAST in "200:"*" 200:"*" 200:"*) true ;; *) false ;; esac
result "requests during the slow download are answered" $? "$FAST"
wait_rc "$SLOW" 60
GOT=$(cat "$T/slow.sum" 2>/dev/null)
[ "$WAIT_RC" = 0 ] && [ "$WANT" = "$GOT $MIB100" ]
result "slow reader (20 MiB/s) gets all 100 MiB intact" $? "target says $WANT" "received $GOT (status $WAIT_RC)"
HWM_KB=$(proc_kb "$SRV_PID" VmHWM)
RSS_KB=$(proc_kb "$SRV_PID" VmRSS)
GROWTH=$((HWM_KB - BASE_KB))
[ "$GROWTH" -lt "$BOUND_KB" ]
result "memory stays bounded during the slow download (VmHWM growth $((GROWTH / 1024)) MiB < $((BOUND_KB / 1024)) MiB)" $? \
	"VmHWM $BASE_KB -> $HWM_KB kB"

kill -USR1 "$PEER1" 2>/dev/null
wait_line p1 '^STATS ' 5
grep '^STATS ' "$T/p1.out" | tail -1 | grep -Eq ' rx_pause=[1-9][0-9]* rx_resume=[1-9]'
result "exposrd sent WSM PAUSE and RESUME to the peer" $? "$(grep '^STATS' "$T/p1.out" | tail -1)"

check "the tunnel still answers" GET "$API/hello" 200 -H "$H"
stop_server
stop_pid "$PEER1"
finish
