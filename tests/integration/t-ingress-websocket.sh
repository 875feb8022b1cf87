#!/bin/sh
# WebSocket (HTTP Upgrade) pass-through of the HTTP ingress
# (spec/ingress.md §2.8): wsclient.js -> exposrd -> ws-peer.js -> target.js
# /ws echo.  Echo of text and 100 KB binary messages, concurrent clients,
# the forwarded upgrade headers, and the raw error answers.
. "$(dirname "$0")/lib.sh"

need_peer
start_target
start_std
new_account || finish
start_peer p1 --account "$ACC" --tunnel wsi-one --target "$TARGET"
if [ $? -ne 0 ]; then
	fail "ws-peer connects (READY)" "$(peer_diag p1)"
	finish
fi
WSURL=ws://127.0.0.1:$API_PORT

# wsc ARGS...: wsclient.js, all output in $OUT, exit status in $RC
wsc() {
	OUT=$(node "$PEER_DIR/wsclient.js" --timeout 15000 "$@" 2>&1)
	RC=$?
}

wsc --url "$WSURL/ws" --host wsi-one.localhost --count 20 --size 100000 --expect-first 'ws echo connected'
[ $RC -eq 0 ] && [ "$OUT" = "ws echo connected
OK 20" ]
result "upgrade through the ingress: first message, 20 binary 100 KB echoes" $? "exit $RC" "$OUT"

wsc --url "$WSURL/ws" --host "wsi-one.localhost:$API_PORT" --count 20 --sequential --expect-first 'ws echo connected'
[ $RC -eq 0 ] && [ "$OUT" = "ws echo connected
OK 20" ]
result "upgrade with Host <tunnel>.localhost:PORT: 20 sequential text echoes" $? "exit $RC" "$OUT"

# five clients at once
PIDS=""
for i in 1 2 3 4 5; do
	node "$PEER_DIR/wsclient.js" --timeout 15000 --url "$WSURL/ws" --host wsi-one.localhost --count 10 \
		--size 20000 --expect-first 'ws echo connected' >"$T/wsc$i.out" 2>&1 &
	PIDS="$PIDS $!"
	ALL_PIDS="$ALL_PIDS $!"
done
NOK=0
for p in $PIDS; do
	wait_rc "$p" 20
	[ "$WAIT_RC" = 0 ] && NOK=$((NOK + 1))
done
[ $NOK -eq 5 ]
result "five concurrent WebSocket clients all echo intact" $? "$NOK of 5 ok" "$(cat "$T"/wsc*.out | head -10)"

# the upgrade request as the target sees it (§2.8: processed headers)
wsc --url "$WSURL/ws-headers" --host "wsi-one.localhost:$API_PORT" --count 1 --header 'Origin: http://wsi-one.localhost:'"$API_PORT"
BODY=$(printf '%s\n' "$OUT" | head -1)
expect_true "forwarded upgrade: X-Forwarded-For, X-Real-IP, Exposr-Via (node id), X-Forwarded-Host set" \
	'(h := j["headers"]) and h["x-forwarded-for"] == "127.0.0.1" and h["x-real-ip"] == "127.0.0.1" and __import__("re").fullmatch(r"[0-9a-f]{40}", h["exposr-via"]) and h["x-forwarded-host"] == "wsi-one.localhost:'"$API_PORT"'"'
expect_json "forwarded upgrade: Forwarded in the exact format" 'j["headers"]["forwarded"]' \
	"by=_exposr;for=127.0.0.1;host=wsi-one.localhost:$API_PORT;proto=http"
expect_true "forwarded upgrade: Host and Origin rewritten toward the target" \
	'j["headers"]["host"] == "127.0.0.1:'"$TARGET_PORT"'" and j["headers"]["origin"] == "http://127.0.0.1:'"$TARGET_PORT"'"'
expect_true "forwarded upgrade: Connection and Upgrade kept, no 'undefined' values" \
	'"upgrade" in j["headers"]["connection"].lower() and j["headers"]["upgrade"] == "websocket" and "undefined" not in json.dumps(j)'
NODE=$(jv 'j["headers"]["exposr-via"]')

# A WebSocket frame sent in the same packet as the upgrade request (bytes
# after the head) must reach the target too (§2.8 MUST).
OUT=$($PY - "$API_PORT" <<'PYEOF'
import base64, os, socket, struct, sys
port = int(sys.argv[1])
def frame(payload):
    mask = os.urandom(4)
    data = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + data
def read_frame(f):
    b0, b1 = f.read(2)
    n = b1 & 0x7f
    if n == 126:
        n = struct.unpack(">H", f.read(2))[0]
    return f.read(n)
try:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    head = ("GET /ws HTTP/1.1\r\nHost: wsi-one.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n" % key).encode()
    s.sendall(head + frame(b"early bird"))
    f = s.makefile("rb")
    status = f.readline().decode().strip()
    while f.readline() not in (b"\r\n", b""):
        pass
    first = read_frame(f).decode()
    echo = read_frame(f).decode()
    print("%s|%s|%s" % (status, first, echo))
except Exception as e:
    print("error: %r" % e)
PYEOF
)
[ "$OUT" = "HTTP/1.1 101 Switching Protocols|ws echo connected|early bird" ]
result "bytes sent right after the upgrade head reach the target" $? "$OUT"

# ---- errors: raw answers (§2.8) ----
wsc --url "$WSURL/ws" --host nope-tun.localhost --count 1
[ "$OUT" = 'UPGRADE-ERROR 404 {"error":"TUNNEL_NOT_FOUND"}' ]
result "upgrade to an unknown tunnel -> 404 TUNNEL_NOT_FOUND" $? "$OUT"

put_tunnel wsi-idle '{}'
wsc --url "$WSURL/ws" --host wsi-idle.localhost --count 1
[ "$OUT" = 'UPGRADE-ERROR 502 {"error":"TUNNEL_NOT_CONNECTED"}' ]
result "upgrade to a tunnel that is not connected -> 502 TUNNEL_NOT_CONNECTED" $? "$OUT"

wsc --url "$WSURL/ws" --host wsi-one.localhost --count 1 --header "Exposr-Via: $NODE"
[ "$OUT" = 'UPGRADE-ERROR 508 {"error":"HTTP_INGRESS_REQUEST_LOOP"}' ]
result "upgrade with our node id in Exposr-Via -> 508 HTTP_INGRESS_REQUEST_LOOP" $? "$OUT"

req_json PATCH "$API/v1/tunnel/wsi-one" '{"ingress":{"http":{"enabled":false}}}' -H "$AUTH"
wsc --url "$WSURL/ws" --host wsi-one.localhost --count 1
[ "$OUT" = 'UPGRADE-ERROR 403 {"error":"TUNNEL_HTTP_INGRESS_DISABLED"}' ]
result "upgrade with http ingress disabled -> 403 TUNNEL_HTTP_INGRESS_DISABLED" $? "$OUT"
req_json PATCH "$API/v1/tunnel/wsi-one" '{"ingress":{"http":{"enabled":true}}}' -H "$AUTH"

start_peer p2 --account "$ACC" --tunnel wsi-dead --target "http://127.0.0.1:$P3_PORT" --connections 1
result "peer for a tunnel with a closed target port READY" $? "$(peer_diag p2)"
wsc --url "$WSURL/ws" --host wsi-dead.localhost --count 1
[ "$OUT" = 'UPGRADE-ERROR 502 {"error":"TUNNEL_TARGET_CON_RESET"}' ]
result "upgrade to a refusing target -> 502 TUNNEL_TARGET_CON_RESET" $? "$OUT"

# still fine afterwards
wsc --url "$WSURL/ws" --host wsi-one.localhost --count 3 --expect-first 'ws echo connected'
[ $RC -eq 0 ]
result "upgrades work again after the errors" $? "$OUT"

stop_server
finish
