#!/bin/sh
# Signals (spec/config.md §8): SIGTERM and SIGINT shut down gracefully with
# exit 0, also with idle and half-open client connections; SIGPIPE from
# clients that vanish mid-response does not kill the server.
. "$(dirname "$0")/lib.sh"

now_ms() {
	$PY -c 'import time; print(int(time.time() * 1000))'
}
# stop_timed NAME SIGNAL MAX_MS: stop the server, one check for exit 0 and
# one for the time taken.
stop_timed() {
	_t0=$(now_ms)
	stop_server "$1: exit status 0" "$2"
	_dt=$(($(now_ms) - _t0))
	result "$1: exits within $3 ms" "$([ "$_dt" -le "$3" ]; echo $?)" "took $_dt ms"
}

# ---- SIGTERM ----
start_std
new_account || finish
put_tunnel sig-tun '{}'
LOG1=$SRV_LOG
stop_timed "SIGTERM" TERM 3000
grep -q 'Shutdown initiated, signal=SIGTERM' "$LOG1"
result "SIGTERM: logs 'Shutdown initiated, signal=SIGTERM'" $? "$(tail -3 "$LOG1")"
grep -q 'Shutdown complete in' "$LOG1"
result "SIGTERM: logs 'Shutdown complete in <ms> ms'" $? "$(tail -3 "$LOG1")"

# ---- SIGINT ----
start_std
LOG2=$SRV_LOG
stop_timed "SIGINT" INT 3000
grep -q 'Shutdown initiated, signal=SIGINT' "$LOG2"
result "SIGINT: logs 'Shutdown initiated, signal=SIGINT'" $? "$(tail -3 "$LOG2")"

# ---- SIGTERM with idle keep-alive and half-sent requests ----
start_std
$PY - "$API_PORT" "$ADMIN_PORT" <<'PYEOF' &
import socket, sys, time
socks = []
for port in (int(sys.argv[1]), int(sys.argv[2])):
    for i in range(10):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if i % 2:
            s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n")  # half a head
        else:
            s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")  # then idle keep-alive
        socks.append(s)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"PUT /v1/tunnel/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")  # half a body
    socks.append(s)
time.sleep(6)
PYEOF
HOLDER=$!
ALL_PIDS="$ALL_PIDS $HOLDER"
sleep 0.5
check "server answers while 22 connections are held open" GET "$ADMIN/ping" 200
stop_timed "SIGTERM with idle, half-head and half-body connections" TERM 3000
kill "$HOLDER" 2>/dev/null
wait "$HOLDER" 2>/dev/null

# ---- SIGPIPE: clients that reset the connection mid-response ----
start_std
new_account || finish
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
	put_tunnel "pipe-tun-$i" '{"target":{"url":"http://example.com/some/long/path/to/make/the/answer/bigger"}}'
done
$PY - "$API_PORT" "$ADMIN_PORT" "$ADMIN_AUTH" <<'PYEOF'
import socket, struct, sys, time
api, admin, auth = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode()
req = b"GET /v1/admin/tunnel?count=100&verbose=true HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n\r\n"
for round in range(30):
    s = socket.create_connection(("127.0.0.1", admin), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.sendall(req * 40)  # many pipelined answers the client never reads
    if round % 3 == 0:
        time.sleep(0.01)
    # close with RST (linger 0): the server's next write fails (EPIPE/ECONNRESET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
time.sleep(0.3)
PYEOF
check "server survives clients resetting mid-response (SIGPIPE)" GET "$ADMIN/ping" 200
check "... and still serves the API" GET "$API/v1/tunnel/pipe-tun-1" 200 -H "$AUTH"
curl -s --max-time 5 -o /dev/null -H "$ADMIN_AUTH" "$ADMIN/v1/admin/tunnel?verbose=true" &
CURLPID=$!
sleep 0.001
kill -9 "$CURLPID" 2>/dev/null
wait "$CURLPID" 2>/dev/null
check "server survives a client killed while reading" GET "$ADMIN/ping" 200
stop_timed "SIGTERM after SIGPIPE storms" TERM 3000
finish
