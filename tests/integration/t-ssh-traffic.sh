#!/bin/sh
# SSH transport: HTTP traffic through `ssh -R` (spec/transports.md §4.7):
# small requests, 10 MiB down and up with checksums, a slow reader and a
# slow client (flow control through the channel windows, bounded server
# memory), 50 parallel requests, and a WebSocket echo.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ssh-lib.sh"
ssh_prereqs

start_ssh_std
ssh_target
new_account || finish
H=ssh-traffic.localhost:$API_PORT
put_tunnel ssh-traffic '{"transport":{"ssh":{"enabled":true}},"ingress":{"http":{"enabled":true}},"target":{"url":"http://127.0.0.1"}}'
ssh_bg tun -N -R "0:127.0.0.1:$TPORT" "$(ssh_url ssh-traffic)"
wait_connections ssh-traffic 1
result "ssh -N -R connects" $? "$(cat "$T/tun.err")"

via_tunnel "$H" /hello
result "GET /hello" "$([ "$STATUS" = 200 ] && [ "$BODY" = hello ]; echo $?)" "$STATUS $BODY"

# 10 MiB down, checksum against the target's own.
N=10485760
curl -s -m 30 -H "Host: $H" "$API/bytes?n=$N&seed=11" | sha256sum | cut -d' ' -f1 >"$T/down.sum"
req GET "$API/bytes-sha256?n=$N&seed=11" -H "Host: $H"
result "10 MiB download: checksum matches" "$([ "$(cat "$T/down.sum")" = "${BODY%% *}" ]; echo $?)" \
	"got $(cat "$T/down.sum") want $BODY"
curl -s -m 30 -H "Host: $H" "$API/bytes-chunked?n=$N&seed=12" | sha256sum | cut -d' ' -f1 >"$T/down2.sum"
req GET "$API/bytes-sha256?n=$N&seed=12" -H "Host: $H"
result "10 MiB chunked download: checksum matches" "$([ "$(cat "$T/down2.sum")" = "${BODY%% *}" ]; echo $?)"

# 10 MiB up.
head -c "$N" /dev/urandom >"$T/up.bin"
WANT="$(sha256sum "$T/up.bin" | cut -d' ' -f1) $N"
GOT=$(curl -s -m 30 -T "$T/up.bin" -H "Host: $H" "$API/sha256")
result "10 MiB upload: the target got every byte" "$([ "$GOT" = "$WANT" ]; echo $?)" "got $GOT want $WANT"
GOT=$(curl -s -m 60 -T "$T/up.bin" -H "Host: $H" "$API/sha256?delay=1")
result "10 MiB upload to a slow reader" "$([ "$GOT" = "$WANT" ]; echo $?)" "got $GOT want $WANT"

# A slow client: the server's memory stays bounded while it waits.
RSS0=$(awk '/VmRSS/{print $2}' "/proc/$SRV_PID/status")
curl -s -m 60 --limit-rate 2M -H "Host: $H" "$API/bytes?n=8000000&seed=13" | sha256sum | cut -d' ' -f1 >"$T/slow.sum" &
SLOW=$!
PEAK=0
while kill -0 "$SLOW" 2>/dev/null; do
	R=$(awk '/VmRSS/{print $2}' "/proc/$SRV_PID/status")
	[ "$R" -gt "$PEAK" ] && PEAK=$R
	sleep 0.2
done
req GET "$API/bytes-sha256?n=8000000&seed=13" -H "Host: $H"
result "8 MB to a 2 MB/s client: checksum matches" "$([ "$(cat "$T/slow.sum")" = "${BODY%% *}" ]; echo $?)"
GROWTH=$((PEAK - RSS0))
if ldd "$EXPOSRD" 2>/dev/null | grep -q libasan; then
	echo "ok - $TNAME: slow client memory not measured under AddressSanitizer # skip"
else
	result "slow client: server RSS grew by less than 12 MiB" "$([ "$GROWTH" -lt 12288 ]; echo $?)" \
		"start ${RSS0} kB, peak ${PEAK} kB"
fi

# 50 parallel requests, each with its own body checked.
i=0
PIDS=
while [ $i -lt 50 ]; do
	(curl -s -m 30 -H "Host: $H" "$API/bytes?n=100000&seed=$i" | sha256sum | cut -d' ' -f1 >"$T/par.$i") &
	PIDS="$PIDS $!"
	i=$((i + 1))
done
for p in $PIDS; do
	wait "$p"
done
BAD=0
i=0
while [ $i -lt 50 ]; do
	W=$(node "$TOPDIR/tests/peer/target.js" --gen-bytes 100000 --seed $i | sha256sum | cut -d' ' -f1)
	[ "$W" = "$(cat "$T/par.$i")" ] || BAD=$((BAD + 1))
	i=$((i + 1))
done
result "50 parallel requests: every body intact" "$([ $BAD -eq 0 ]; echo $?)" "$BAD wrong"

# WebSocket through the tunnel.
node "$TOPDIR/tests/peer/wsclient.js" --url "ws://127.0.0.1:$API_PORT/ws" --host "$H" --count 20 --size 70000 \
	>"$T/ws.out" 2>&1
tail -1 "$T/ws.out" | grep -q '^OK 20$' && head -1 "$T/ws.out" | grep -q '^ws echo connected$'
result "WebSocket echo (20 x 70000 bytes) through the SSH tunnel" $? "$(cat "$T/ws.out")"

via_tunnel "$H" /hello
result "tunnel still works afterwards" "$([ "$STATUS" = 200 ]; echo $?)" "$STATUS"
kill -0 "$SSH_PID" 2>/dev/null
result "ssh is still running" $? "$(cat "$T/tun.err")"
stop_server
wait_exit "$SSH_PID" 5
result "server shutdown ends ssh" $?
grep -q 'Received disconnect from .*: Server shutting down' "$T/tun.err"
result "server shutdown: SSH_MSG_DISCONNECT 'Server shutting down'" $? "$(cat "$T/tun.err")"
finish
